//! Log groups (CloudWatch Logs' role for trails): a log group receives every event its trail
//! delivers, keeps it for its retention, answers FilterLogEvents with the filter pattern
//! language, and runs its metric filters on each event as it arrives, adding per-minute
//! datapoints that GetMetricStatistics reads.
//!
//! Storage: `<data_dir>/logs.redb` (events by (group, event time, WAL position); datapoints by
//! (metric key, minute); the last WAL position applied, in the same transaction as its effects,
//! so a crash neither loses nor doubles anything) and `<data_dir>/logs.json` (the groups and
//! filters, written durably). The worker reads the WAL through its own cursor `logs`.
//!
//! The parts: `config` (groups, filters, topics, alarms), `apply` (the WAL consumer's
//! transaction, retention), `alarms` (evaluation), `query` (FilterLogEvents, statistics).

use cairn_monitor::metric_filter::{MetricFilter, TransformationSpec};
use cairn_monitor::stats::Stats;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

const EVENTS: TableDefinition<(&str, i64, u64), &[u8]> = TableDefinition::new("events");
const DATAPOINTS: TableDefinition<(&str, i64), (f64, u64, f64, f64)> =
    TableDefinition::new("datapoints");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The WAL cursor of the log-group worker.
pub const CURSOR: &str = "logs";
/// Most events one FilterLogEvents page returns.
pub const MAX_PAGE: usize = 10_000;

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// The group does not exist (`ResourceNotFoundException`).
    #[error("The specified log group does not exist: {0}")]
    NotFound(String),
    /// A parameter is invalid (`InvalidParameterException`).
    #[error("{0}")]
    Invalid(String),
    /// A limit is reached (`LimitExceededException`).
    #[error("{0}")]
    Limit(String),
    /// Storage failed.
    #[error("log store: {0}")]
    Store(String),
}

impl LogsError {
    /// AWS's exception name.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "ResourceNotFoundException",
            Self::Invalid(_) => "InvalidParameterException",
            Self::Limit(_) => "LimitExceededException",
            Self::Store(_) => "ServiceUnavailableException",
        }
    }
}

fn store_error(e: impl std::fmt::Display) -> LogsError {
    LogsError::Store(e.to_string())
}

/// A log group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogGroup {
    /// Name.
    pub name: String,
    /// The trail whose events it receives.
    pub trail: String,
    /// Days events are kept.
    pub retention_days: u32,
    /// Creation, epoch ms.
    pub created: i64,
}

pub use cairn_monitor::config::{AlarmChange, AlarmConfig, FilterConfig, Subscription, Topic};

/// The metric filter `filter` configures, compiled.
fn compile(filter: &FilterConfig) -> Result<MetricFilter, LogsError> {
    MetricFilter::new(
        &filter.name,
        &filter.pattern,
        &TransformationSpec {
            metric_name: filter.metric_name.clone(),
            metric_namespace: filter.metric_namespace.clone(),
            metric_value: filter.metric_value.clone(),
            default_value: filter.default_value,
            dimensions: filter.dimensions.clone(),
            unit: filter.unit.clone(),
        },
    )
    .map_err(|e| LogsError::Invalid(e.0))
}

/// A state change to notify.
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    /// The alarm after the change.
    pub alarm: AlarmConfig,
    /// The change.
    pub change: AlarmChange,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Config {
    groups: Vec<LogGroup>,
    filters: Vec<FilterConfig>,
    #[serde(default)]
    topics: Vec<Topic>,
    #[serde(default)]
    alarms: Vec<AlarmConfig>,
}

/// The key of a metric series: namespace, name, and dimensions sorted.
pub fn metric_key(namespace: &str, name: &str, dimensions: &BTreeMap<String, String>) -> String {
    let mut key = format!("{namespace}\u{1f}{name}");
    for (k, v) in dimensions {
        key.push('\u{1f}');
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    key
}

/// Retention values CloudWatch Logs accepts.
pub const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Where a FilterLogEvents page ended: (event time, WAL position) of its last event.
pub type PageToken = (i64, u64);

/// One event of a FilterLogEvents answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FoundEvent {
    /// Log group.
    pub log_group_name: String,
    /// Event time, epoch ms.
    pub timestamp: i64,
    /// The record.
    pub message: String,
    /// WAL position, as text.
    pub event_id: String,
}

/// The store of log groups.
pub struct Logs {
    /// Reopened after an I/O failure (a full disk), so the store recovers without a restart.
    db: cairn_durable::Db,
    config_path: PathBuf,
    config: RwLock<Config>,
    compiled: RwLock<BTreeMap<String, Vec<Arc<MetricFilter>>>>,
    write: Mutex<()>,
}

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logs").finish_non_exhaustive()
    }
}

impl Logs {
    /// A store error, noted so that an I/O failure reopens the database at its next use.
    fn db_error(&self, e: impl Into<redb::Error>) -> LogsError {
        let e = e.into();
        self.db.note(&e);
        LogsError::Store(e.to_string())
    }

    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, LogsError> {
        let db = cairn_durable::Db::create(&dir.join("logs.redb"), 64 * 1024 * 1024)
            .map_err(store_error)?;
        {
            let txn = db
                .get()
                .map_err(store_error)?
                .begin_write()
                .map_err(store_error)?;
            txn.open_table(EVENTS).map_err(store_error)?;
            txn.open_table(DATAPOINTS).map_err(store_error)?;
            txn.open_table(META).map_err(store_error)?;
            txn.commit().map_err(store_error)?;
        }
        let config_path = dir.join("logs.json");
        let config: Config = match std::fs::read(&config_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(store_error)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => return Err(store_error(e)),
        };
        let logs = Self {
            db,
            config_path,
            config: RwLock::new(config),
            compiled: RwLock::new(BTreeMap::new()),
            write: Mutex::new(()),
        };
        logs.recompile()?;
        Ok(logs)
    }

    fn recompile(&self) -> Result<(), LogsError> {
        let config = self.config.read().expect("logs lock poisoned");
        let mut compiled: BTreeMap<String, Vec<Arc<MetricFilter>>> = BTreeMap::new();
        for filter in &config.filters {
            compiled
                .entry(filter.group.clone())
                .or_default()
                .push(Arc::new(compile(filter)?));
        }
        *self.compiled.write().expect("logs lock poisoned") = compiled;
        Ok(())
    }

    fn save(&self, config: &Config) -> Result<(), LogsError> {
        cairn_durable::file::write(
            &self.config_path,
            &serde_json::to_vec_pretty(config).expect("config serializes"),
        )
        .map_err(store_error)
    }
}

mod alarms;
mod apply;
mod config;
mod query;

#[cfg(test)]
mod tests;
