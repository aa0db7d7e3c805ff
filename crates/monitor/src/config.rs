//! The configuration of log groups' metric filters, topics and alarms, as the API takes it
//! and the log store keeps it (`logs.json`). Pure data: the HTTP edge builds these without
//! depending on the store.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A metric filter as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterConfig {
    /// Log group.
    pub group: String,
    /// Filter name.
    pub name: String,
    /// Pattern.
    pub pattern: String,
    /// Metric name.
    pub metric_name: String,
    /// Namespace.
    pub metric_namespace: String,
    /// Value.
    pub metric_value: String,
    /// Default value.
    pub default_value: Option<f64>,
    /// Dimensions.
    pub dimensions: BTreeMap<String, String>,
    /// Unit.
    pub unit: Option<String>,
}

/// A topic subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// `http`/`https` (an SNS-shaped POST; https verified against the system's roots, or
    /// `SSL_CERT_FILE`) or `file` (one JSON line appended per notification).
    pub protocol: String,
    /// URL or file path.
    pub endpoint: String,
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Subscriptions.
    pub subscriptions: Vec<Subscription>,
}

/// One state change of an alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmChange {
    /// When, epoch ms.
    pub time: i64,
    /// Old state.
    pub old: crate::alarm::State,
    /// New state.
    pub new: crate::alarm::State,
    /// Why.
    pub reason: String,
}

/// An alarm on a metric, with its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmConfig {
    /// Name.
    pub name: String,
    /// Metric namespace.
    pub namespace: String,
    /// Metric name.
    pub metric: String,
    /// Dimensions of the series.
    pub dimensions: BTreeMap<String, String>,
    /// Evaluation.
    pub spec: crate::alarm::AlarmSpec,
    /// Topics notified on every state change.
    pub actions: Vec<String>,
    /// Current state.
    pub state: crate::alarm::State,
    /// Why it is in that state.
    pub reason: String,
    /// Recent changes, newest last (at most 100).
    pub history: Vec<AlarmChange>,
}
