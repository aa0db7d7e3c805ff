//! Monitoring, the pure part: what a metric filter makes of an event (PutMetricFilter's
//! semantics, `../shared/spec/filter-patterns.md` §8–9), per-minute statistics, the alarm state
//! machine (PutMetricAlarm's semantics), and the SNS-shaped notification a topic sends with a
//! signature receivers can verify. Storage, scheduling and delivery build on this crate; they
//! are not here yet (issue 6).

pub mod alarm;
pub mod metric_filter;
pub mod notification;
pub mod stats;
