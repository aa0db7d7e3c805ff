//! Log groups (CloudWatch Logs' role for trails): a log group receives every event its trail
//! delivers, keeps it for its retention, answers FilterLogEvents with the filter pattern
//! language, and runs its metric filters on each event as it arrives, adding per-minute
//! datapoints that GetMetricStatistics reads.
//!
//! Storage: `<data_dir>/logs.redb` (events by (group, event time, WAL position); datapoints by
//! (metric key, minute); the last WAL position applied, in the same transaction as its effects,
//! so a crash neither loses nor doubles anything) and `<data_dir>/logs.json` (the groups and
//! filters, written durably). The worker reads the WAL through its own cursor `logs`.

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

    /// Creates (or updates the trail and retention of) a log group.
    pub fn put_group(&self, group: LogGroup) -> Result<LogGroup, LogsError> {
        let valid_name = (1..=512).contains(&group.name.len())
            && group
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-/.#".contains(c));
        if !valid_name {
            return Err(LogsError::Invalid(format!(
                "log group name {:?} must be 1-512 of letters, digits and _-/.#",
                group.name
            )));
        }
        if !RETENTION_DAYS.contains(&group.retention_days) {
            return Err(LogsError::Invalid(format!(
                "RetentionInDays must be one of {RETENTION_DAYS:?}"
            )));
        }
        let _guard = self.write.lock().expect("logs lock poisoned");
        let mut config = self.config.read().expect("logs lock poisoned").clone();
        match config.groups.iter_mut().find(|g| g.name == group.name) {
            Some(existing) => {
                existing.trail = group.trail.clone();
                existing.retention_days = group.retention_days;
            }
            None => config.groups.push(group.clone()),
        }
        self.save(&config)?;
        let stored = config
            .groups
            .iter()
            .find(|g| g.name == group.name)
            .cloned()
            .expect("just stored");
        *self.config.write().expect("logs lock poisoned") = config;
        Ok(stored)
    }

    /// The groups.
    pub fn groups(&self) -> Vec<LogGroup> {
        self.config
            .read()
            .expect("logs lock poisoned")
            .groups
            .clone()
    }

    /// Adds or replaces a metric filter (at most 100 per group).
    pub fn put_filter(&self, filter: FilterConfig) -> Result<(), LogsError> {
        compile(&filter)?;
        let _guard = self.write.lock().expect("logs lock poisoned");
        let mut config = self.config.read().expect("logs lock poisoned").clone();
        if !config.groups.iter().any(|g| g.name == filter.group) {
            return Err(LogsError::NotFound(filter.group.clone()));
        }
        config
            .filters
            .retain(|f| !(f.group == filter.group && f.name == filter.name));
        if config
            .filters
            .iter()
            .filter(|f| f.group == filter.group)
            .count()
            >= 100
        {
            return Err(LogsError::Limit(
                "at most 100 metric filters per log group".into(),
            ));
        }
        config.filters.push(filter);
        self.save(&config)?;
        *self.config.write().expect("logs lock poisoned") = config;
        self.recompile()
    }

    /// The metric filters of a group (all groups with `None`).
    pub fn filters(&self, group: Option<&str>) -> Vec<FilterConfig> {
        self.config
            .read()
            .expect("logs lock poisoned")
            .filters
            .iter()
            .filter(|f| group.is_none_or(|g| g == f.group))
            .cloned()
            .collect()
    }

    /// Creates or replaces a topic.
    pub fn put_topic(&self, topic: Topic) -> Result<Topic, LogsError> {
        let valid = (1..=256).contains(&topic.name.len())
            && topic
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(LogsError::Invalid(
                "topic names are 1-256 letters, digits, - and _".into(),
            ));
        }
        for s in &topic.subscriptions {
            match s.protocol.as_str() {
                "http" | "https"
                    if s.endpoint.starts_with("http://") || s.endpoint.starts_with("https://") => {}
                "http" | "https" => {
                    return Err(LogsError::Invalid(format!(
                        "an http(s) subscription needs an http:// or https:// endpoint, got {:?}",
                        s.endpoint
                    )))
                }
                "file" if Path::new(&s.endpoint).is_absolute() => {}
                "file" => {
                    return Err(LogsError::Invalid(
                        "a file subscription needs an absolute path".into(),
                    ))
                }
                other => {
                    return Err(LogsError::Invalid(format!(
                        "protocol {other:?} is not supported (http, https, file)"
                    )))
                }
            }
        }
        self.modify(|config| {
            config.topics.retain(|t| t.name != topic.name);
            config.topics.push(topic.clone());
            Ok(topic.clone())
        })
    }

    /// The topics.
    pub fn topics(&self) -> Vec<Topic> {
        self.config
            .read()
            .expect("logs lock poisoned")
            .topics
            .clone()
    }

    /// Creates or replaces an alarm (its state starts as INSUFFICIENT_DATA).
    pub fn put_alarm(&self, mut alarm: AlarmConfig) -> Result<AlarmConfig, LogsError> {
        alarm.spec.validate().map_err(|e| LogsError::Invalid(e.0))?;
        if alarm.name.is_empty() || alarm.name.len() > 255 {
            return Err(LogsError::Invalid(
                "alarm names are 1-255 characters".into(),
            ));
        }
        self.modify(|config| {
            for action in &alarm.actions {
                if !config.topics.iter().any(|t| t.name == *action) {
                    return Err(LogsError::NotFound(format!("topic {action}")));
                }
            }
            alarm.state = cairn_monitor::alarm::State::InsufficientData;
            alarm.reason = "Unchecked: initial alarm creation".into();
            alarm.history.clear();
            config.alarms.retain(|a| a.name != alarm.name);
            config.alarms.push(alarm.clone());
            Ok(alarm.clone())
        })
    }

    /// The alarms.
    pub fn alarms(&self) -> Vec<AlarmConfig> {
        self.config
            .read()
            .expect("logs lock poisoned")
            .alarms
            .clone()
    }

    /// DeleteMetricFilter: the filter stops counting from the next event on.
    pub fn delete_filter(&self, group: &str, name: &str) -> Result<(), LogsError> {
        self.modify(|config| {
            let before = config.filters.len();
            config
                .filters
                .retain(|f| !(f.group == group && f.name == name));
            if config.filters.len() == before {
                return Err(LogsError::NotFound(format!(
                    "metric filter {name} of log group {group}"
                )));
            }
            Ok(())
        })?;
        self.recompile()
    }

    /// DeleteLogGroup: the group, its metric filters and its events (metrics already
    /// produced stay, as CloudWatch keeps them).
    pub fn delete_group(&self, name: &str) -> Result<(), LogsError> {
        self.modify(|config| {
            if !config.groups.iter().any(|g| g.name == name) {
                return Err(LogsError::NotFound(name.to_owned()));
            }
            config.groups.retain(|g| g.name != name);
            config.filters.retain(|f| f.group != name);
            Ok(())
        })?;
        self.recompile()?;
        let txn = self.db.begin_write().map_err(|e| self.db_error(e))?;
        {
            let mut events = txn.open_table(EVENTS).map_err(|e| self.db_error(e))?;
            self.remove_events(&mut events, name, i64::MAX)?;
        }
        txn.commit().map_err(|e| self.db_error(e))
    }

    /// Removes the events of `group` with times before `until`; returns how many.
    fn remove_events(
        &self,
        events: &mut redb::Table<'_, (&str, i64, u64), &[u8]>,
        group: &str,
        until: i64,
    ) -> Result<usize, LogsError> {
        let keys: Vec<(i64, u64)> = events
            .range((group, i64::MIN, 0)..(group, until, 0))
            .map_err(|e| self.db_error(e))?
            .filter_map(Result::ok)
            .map(|(k, _)| {
                let (_, t, s) = k.value();
                (t, s)
            })
            .collect();
        for &(t, s) in &keys {
            events.remove((group, t, s)).map_err(|e| self.db_error(e))?;
        }
        Ok(keys.len())
    }

    /// DeleteAlarms: every named alarm, or none when one does not exist.
    pub fn delete_alarms(&self, names: &[String]) -> Result<(), LogsError> {
        self.modify(|config| {
            if let Some(missing) = names
                .iter()
                .find(|n| !config.alarms.iter().any(|a| a.name == **n))
            {
                return Err(LogsError::NotFound(format!("alarm {missing}")));
            }
            config.alarms.retain(|a| !names.contains(&a.name));
            Ok(())
        })
    }

    /// DeleteTopic: refused while an alarm notifies it (delete or change the alarm first), so
    /// that no alarm is left notifying nobody without saying so.
    pub fn delete_topic(&self, name: &str) -> Result<(), LogsError> {
        self.modify(|config| {
            if !config.topics.iter().any(|t| t.name == name) {
                return Err(LogsError::NotFound(format!("topic {name}")));
            }
            if let Some(alarm) = config
                .alarms
                .iter()
                .find(|a| a.actions.iter().any(|t| t == name))
            {
                return Err(LogsError::Invalid(format!(
                    "topic {name} is an action of alarm {}; delete the alarm or change its actions first",
                    alarm.name
                )));
            }
            config.topics.retain(|t| t.name != name);
            Ok(())
        })
    }

    fn modify<T>(
        &self,
        f: impl FnOnce(&mut Config) -> Result<T, LogsError>,
    ) -> Result<T, LogsError> {
        let _guard = self.write.lock().expect("logs lock poisoned");
        let mut config = self.config.read().expect("logs lock poisoned").clone();
        let out = f(&mut config)?;
        self.save(&config)?;
        *self.config.write().expect("logs lock poisoned") = config;
        Ok(out)
    }

    /// Evaluates every alarm at `now`; returns the state changes (persisted).
    pub fn evaluate_alarms(&self, now: i64) -> Result<Vec<Notify>, LogsError> {
        let alarms = self.alarms();
        let mut changes = Vec::new();
        for alarm in &alarms {
            let period = alarm.spec.period_seconds as i64 * 1000;
            let lookup = |start: i64| {
                self.statistics(
                    &alarm.namespace,
                    &alarm.metric,
                    &alarm.dimensions,
                    start,
                    start + period,
                    period,
                )
                .ok()
                .and_then(|p| p.into_iter().next().map(|(_, s)| s))
            };
            let (state, reason) = alarm.spec.evaluate(now, alarm.state, true, lookup);
            if state != alarm.state {
                changes.push((
                    alarm.name.clone(),
                    AlarmChange {
                        time: now,
                        old: alarm.state,
                        new: state,
                        reason,
                    },
                ));
            }
        }
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        self.modify(|config| {
            let mut out = Vec::new();
            for (name, change) in &changes {
                if let Some(alarm) = config.alarms.iter_mut().find(|a| a.name == *name) {
                    alarm.state = change.new;
                    alarm.reason = change.reason.clone();
                    alarm.history.push(change.clone());
                    if alarm.history.len() > 100 {
                        alarm.history.remove(0);
                    }
                    out.push(Notify {
                        alarm: alarm.clone(),
                        change: change.clone(),
                    });
                }
            }
            Ok(out)
        })
    }

    /// The WAL position applied last.
    pub fn applied_seq(&self) -> Result<u64, LogsError> {
        let txn = self.db.begin_read().map_err(|e| self.db_error(e))?;
        let meta = txn.open_table(META).map_err(|e| self.db_error(e))?;
        Ok(meta
            .get("applied_seq")
            .map_err(|e| self.db_error(e))?
            .map_or(0, |v| v.value()))
    }

    /// Applies WAL records `(seq, payload)` ascending: each selected event goes to its groups
    /// and through their metric filters, in one transaction with the new applied position.
    pub fn apply(
        &self,
        records: &[(u64, Vec<u8>)],
        trails: &[cairn_trail::Trail],
    ) -> Result<usize, LogsError> {
        let Some(&(last, _)) = records.last() else {
            return Ok(0);
        };
        let groups = self.groups();
        let compiled = self.compiled.read().expect("logs lock poisoned").clone();
        let txn = self.db.begin_write().map_err(|e| self.db_error(e))?;
        let mut stored = 0;
        {
            let mut events = txn.open_table(EVENTS).map_err(|e| self.db_error(e))?;
            let mut points = txn.open_table(DATAPOINTS).map_err(|e| self.db_error(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.db_error(e))?;
            for (seq, payload) in records {
                let Some(decoded) = cairn_model::payload::decode(payload) else {
                    continue;
                };
                let record = decoded.record;
                for group in &groups {
                    let Some(trail) = trails.iter().find(|t| t.name == group.trail) else {
                        continue;
                    };
                    if !cairn_trail::selects(trail, *seq, record, decoded.fields) {
                        continue;
                    }
                    let Ok(message) = std::str::from_utf8(record) else {
                        continue;
                    };
                    let time = event_time(message).unwrap_or(0);
                    events
                        .insert((group.name.as_str(), time, *seq), record)
                        .map_err(|e| self.db_error(e))?;
                    stored += 1;
                    for filter in compiled.get(&group.name).into_iter().flatten() {
                        let Some(point) = filter.datapoint(message) else {
                            continue;
                        };
                        let key =
                            metric_key(&filter.namespace, &filter.metric_name, &point.dimensions);
                        let minute = time.div_euclid(60_000) * 60_000;
                        let mut stats = Stats::of(point.value);
                        if let Some(old) = points
                            .get((key.as_str(), minute))
                            .map_err(|e| self.db_error(e))?
                        {
                            let (sum, count, min, max) = old.value();
                            stats.merge(&Stats {
                                sum,
                                count,
                                min,
                                max,
                            });
                        }
                        points
                            .insert(
                                (key.as_str(), minute),
                                (stats.sum, stats.count, stats.min, stats.max),
                            )
                            .map_err(|e| self.db_error(e))?;
                    }
                }
            }
            meta.insert("applied_seq", last)
                .map_err(|e| self.db_error(e))?;
        }
        txn.commit().map_err(|e| self.db_error(e))?;
        Ok(stored)
    }

    /// FilterLogEvents: events of `group` in `[start, end]` (event time, ms) matching
    /// `pattern`, oldest first, at most `limit`, continuing after `after` (a previous answer's
    /// token).
    pub fn filter_events(
        &self,
        group: &str,
        pattern: &str,
        start: i64,
        end: i64,
        limit: usize,
        after: Option<PageToken>,
    ) -> Result<(Vec<FoundEvent>, Option<PageToken>), LogsError> {
        if !self.groups().iter().any(|g| g.name == group) {
            return Err(LogsError::NotFound(group.to_owned()));
        }
        let pattern =
            cairn_filter::parse(pattern).map_err(|e| LogsError::Invalid(e.to_string()))?;
        let limit = limit.clamp(1, MAX_PAGE);
        let txn = self.db.begin_read().map_err(|e| self.db_error(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.db_error(e))?;
        let from = match after {
            Some((t, s)) => (group, t, s.saturating_add(1)),
            None => (group, start, 0),
        };
        let mut found = Vec::new();
        for item in events
            .range(from..=(group, end, u64::MAX))
            .map_err(|e| self.db_error(e))?
        {
            let (key, value) = item.map_err(|e| self.db_error(e))?;
            let (_, time, seq) = key.value();
            let message = String::from_utf8_lossy(value.value()).into_owned();
            if !pattern.matches(&message) {
                continue;
            }
            if found.len() == limit {
                let last: &FoundEvent = found.last().expect("limit > 0");
                let token = (last.timestamp, last.event_id.parse().unwrap_or(0));
                return Ok((found, Some(token)));
            }
            found.push(FoundEvent {
                log_group_name: group.to_owned(),
                timestamp: time,
                message,
                event_id: seq.to_string(),
            });
        }
        Ok((found, None))
    }

    /// GetMetricStatistics: per period of `period_ms` from `start` to `end`, the merged minute
    /// statistics of the series (periods without data are left out).
    pub fn statistics(
        &self,
        namespace: &str,
        metric: &str,
        dimensions: &BTreeMap<String, String>,
        start: i64,
        end: i64,
        period_ms: i64,
    ) -> Result<Vec<(i64, Stats)>, LogsError> {
        if period_ms <= 0 || period_ms % 60_000 != 0 {
            return Err(LogsError::Invalid(
                "Period must be a multiple of 60 seconds".into(),
            ));
        }
        let key = metric_key(namespace, metric, dimensions);
        let txn = self.db.begin_read().map_err(|e| self.db_error(e))?;
        let points = txn.open_table(DATAPOINTS).map_err(|e| self.db_error(e))?;
        let mut out: BTreeMap<i64, Stats> = BTreeMap::new();
        let first = start.div_euclid(60_000) * 60_000;
        for item in points
            .range((key.as_str(), first)..(key.as_str(), end))
            .map_err(|e| self.db_error(e))?
        {
            let (k, v) = item.map_err(|e| self.db_error(e))?;
            let (_, minute) = k.value();
            let (sum, count, min, max) = v.value();
            let bucket = start + (minute - start).div_euclid(period_ms) * period_ms;
            let stats = Stats {
                sum,
                count,
                min,
                max,
            };
            out.entry(bucket)
                .and_modify(|s| s.merge(&stats))
                .or_insert(stats);
        }
        Ok(out.into_iter().collect())
    }

    /// Deletes events older than their group's retention.
    pub fn expire(&self, now: i64) -> Result<usize, LogsError> {
        let groups = self.groups();
        let txn = self.db.begin_write().map_err(|e| self.db_error(e))?;
        let mut removed = 0;
        {
            let mut events = txn.open_table(EVENTS).map_err(|e| self.db_error(e))?;
            for group in &groups {
                let cutoff = now - i64::from(group.retention_days) * 86_400_000;
                removed += self.remove_events(&mut events, &group.name, cutoff)?;
            }
        }
        txn.commit().map_err(|e| self.db_error(e))?;
        Ok(removed)
    }
}

fn event_time(message: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Time<'a> {
        #[serde(borrow, rename = "eventTime")]
        event_time: Option<&'a str>,
    }
    let time: Time<'_> = serde_json::from_str(message).ok()?;
    cairn_model::time::parse_utc(time.event_time?).ok()
}

#[cfg(test)]
mod tests;
