//! Monitoring, the pure part: what a metric filter makes of an event (PutMetricFilter's
//! semantics, `../shared/spec/filter-patterns.md` §8–9), per-minute statistics, the alarm state
//! machine (PutMetricAlarm's semantics), and the SNS-shaped notification a topic sends with a
//! signature receivers can verify, and the configuration the API takes and the log store keeps
//! ([`config`]). Storage, scheduling and delivery (`cairn-logs`, the server) build on this
//! crate.

pub mod alarm;
pub mod config;
pub mod metric_filter;
pub mod notification;
pub mod stats;
