//! Which events a trail logs: event selectors (basic and advanced, spec §6) and the trail's
//! region scope (multi-region and global-service semantics, spec §2.4–2.5, §6.4). Pure.
//!
//! Selectors are written in CloudTrail's own JSON shape (`ReadWriteType`,
//! `FieldSelectors`, ...) so that configurations copied from AWS work unchanged.

pub mod scope;
pub mod selectors;
pub mod subject;

pub use scope::TrailScope;
pub use selectors::{
    AdvancedEventSelector, DataResource, EventSelector, FieldSelector, ReadWriteType,
    SelectorError, Selectors,
};
pub use subject::Subject;
