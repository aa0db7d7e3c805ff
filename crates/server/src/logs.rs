//! Log groups: the worker that feeds them from the WAL (its own cursor), and the API port, whose
//! changes are recorded as `logs.amazonaws.com` management events.

use crate::ingest::IngestService;
use crate::security::{record, AuditEvent};
use cairn_api::logs::LogsAdmin;
use cairn_api::trails::Caller;
use cairn_api::{ApiError, BoxFuture};
use cairn_catalog::Catalog;
use cairn_logs::{FilterConfig, LogGroup, Logs, LogsError};
use cairn_model::Clock;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The log-group consumer: puts the events of each group's trail into the group and through its
/// metric filters, and evaluates the alarms (about four times a second, and at once after new
/// datapoints), handing state changes to the notifier. Its position is the store's applied
/// sequence, written in the same transaction as the events.
pub struct LogsConsumer {
    logs: Arc<Logs>,
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    notifier: crate::notify::Notifier,
    position: u64,
    last_evaluation: Option<i64>,
    last_expiry: i64,
}

impl LogsConsumer {
    /// The consumer of `logs`.
    pub fn new(
        logs: Arc<Logs>,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        notifier: crate::notify::Notifier,
    ) -> Self {
        Self {
            logs,
            catalog,
            clock,
            notifier,
            position: 0,
            last_evaluation: None,
            last_expiry: 0,
        }
    }

    fn evaluate(&mut self, force: bool) {
        let now = self.clock.now_millis();
        if !force && self.last_evaluation.is_some_and(|t| now - t < 250) {
            return;
        }
        self.last_evaluation = Some(now);
        match self.logs.evaluate_alarms(now) {
            Ok(changes) => {
                for change in changes {
                    tracing::info!(alarm = %change.alarm.name, from = change.change.old.as_str(), to = change.change.new.as_str(), "alarm state changed");
                    // AlarmActions: notified on entering ALARM.
                    if change.change.new == cairn_monitor::alarm::State::Alarm {
                        self.notifier.send(change);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "evaluating alarms failed"),
        }
    }
}

impl cairn_wal::Consume for LogsConsumer {
    fn name(&self) -> &str {
        cairn_logs::CURSOR
    }

    fn rewind(&mut self) -> Result<u64, String> {
        self.position = self
            .logs
            .applied_seq()
            .map_err(|e| format!("reading the applied position: {e}"))?;
        Ok(self.position)
    }

    fn apply(&mut self, records: Vec<cairn_wal::WalRecord>) -> Result<u64, String> {
        let last = records.last().map_or(self.position, |r| r.seq);
        let batch: Vec<(u64, Vec<u8>)> = records.into_iter().map(|r| (r.seq, r.payload)).collect();
        self.logs
            .apply(&batch, &self.catalog.list())
            .map_err(|e| format!("applying events to log groups: {e}"))?;
        self.position = last;
        // New datapoints: an alarm may fire now, not at the next tick.
        self.evaluate(true);
        Ok(last)
    }

    fn idle(&mut self) -> Result<u64, String> {
        self.evaluate(false);
        let now = self.clock.now_millis();
        if now - self.last_expiry > 60_000 {
            if let Err(e) = self.logs.expire(now) {
                tracing::warn!(error = %e, "log groups: retention failed");
            }
            self.last_expiry = now;
        }
        Ok(self.position)
    }

    fn tick(&self) -> Duration {
        Duration::from_millis(250)
    }
}

/// The API port.
pub struct LogsService {
    /// Notifications (delivery status).
    pub notifier: crate::notify::Notifier,
    /// The notification signing key.
    pub notification_key: Arc<crate::notify::NotificationKey>,
    /// Store.
    pub logs: Arc<Logs>,
    /// Trails (a group names one).
    pub catalog: Arc<Catalog>,
    /// For the record of changes.
    pub ingest: Arc<IngestService>,
    /// Clock.
    pub clock: Arc<dyn Clock>,
}

fn logs_error(e: LogsError) -> ApiError {
    let status = match e {
        LogsError::NotFound(_) => axum::http::StatusCode::NOT_FOUND,
        LogsError::Store(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE,
        _ => axum::http::StatusCode::BAD_REQUEST,
    };
    ApiError {
        status,
        code: e.code(),
        message: e.to_string(),
    }
}

impl LogsService {
    async fn audit_as(
        &self,
        caller: &Caller,
        source: &str,
        name: &str,
        resource: String,
        kind: &'static str,
        request: Value,
    ) -> Result<(), ApiError> {
        record(
            &self.ingest,
            self.clock.as_ref(),
            AuditEvent {
                caller,
                source,
                name,
                read_only: false,
                request,
                response: Value::Null,
                error: None,
                resource: Some((resource, kind)),
            },
        )
        .await
    }

    fn arn(&self, service: &str, rest: &str) -> String {
        let account = cairn_api::Ingest::account_id(self.ingest.as_ref()).to_string();
        let region = cairn_api::Ingest::region(self.ingest.as_ref()).to_owned();
        format!("arn:aws:{service}:{region}:{account}:{rest}")
    }

    async fn audit(
        &self,
        caller: &Caller,
        name: &str,
        group: &str,
        request: Value,
    ) -> Result<(), ApiError> {
        let account = cairn_api::Ingest::account_id(self.ingest.as_ref()).to_string();
        let region = cairn_api::Ingest::region(self.ingest.as_ref()).to_owned();
        record(
            &self.ingest,
            self.clock.as_ref(),
            AuditEvent {
                caller,
                source: "logs.amazonaws.com",
                name,
                read_only: false,
                request,
                response: Value::Null,
                error: None,
                resource: Some((
                    format!("arn:aws:logs:{region}:{account}:log-group:{group}"),
                    "AWS::Logs::LogGroup",
                )),
            },
        )
        .await
    }
}

impl LogsAdmin for LogsService {
    fn put_group(
        &self,
        caller: Caller,
        name: String,
        trail: String,
        retention_days: u32,
    ) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            self.catalog
                .get(&trail)
                .map_err(crate::trails::catalog_error)?;
            let group = self
                .logs
                .put_group(LogGroup {
                    name: name.clone(),
                    trail: trail.clone(),
                    retention_days,
                    created: self.clock.now_millis(),
                })
                .map_err(logs_error)?;
            self.audit(
                &caller,
                "CreateLogGroup",
                &name,
                json!({ "logGroupName": name, "trailName": trail, "retentionInDays": retention_days }),
            )
            .await?;
            Ok(group_out(&group))
        })
    }

    fn groups(&self) -> Value {
        json!({ "logGroups": self.logs.groups().iter().map(group_out).collect::<Vec<_>>() })
    }

    fn put_filter(
        &self,
        caller: Caller,
        filter: FilterConfig,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let request = filter_out(&filter);
            let group = filter.group.clone();
            self.logs.put_filter(filter).map_err(logs_error)?;
            self.audit(&caller, "PutMetricFilter", &group, request)
                .await
        })
    }

    fn filters(&self, group: &str) -> Value {
        json!({ "metricFilters": self.logs.filters(Some(group)).iter().map(filter_out).collect::<Vec<_>>() })
    }

    fn filter_events(
        &self,
        group: String,
        pattern: String,
        start: i64,
        end: i64,
        limit: usize,
        token: Option<String>,
    ) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            let after = match token {
                None => None,
                Some(t) => Some(
                    t.split_once('-')
                        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                        .ok_or_else(|| {
                            ApiError::bad_request(
                                "InvalidParameterException",
                                "nextToken is not one this server gave",
                            )
                        })?,
                ),
            };
            let logs = self.logs.clone();
            let (events, next) = tokio::task::spawn_blocking(move || {
                logs.filter_events(&group, &pattern, start, end, limit, after)
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(logs_error)?;
            Ok(json!({
                "events": events,
                "nextToken": next.map(|(t, s)| format!("{t}-{s}")),
            }))
        })
    }

    fn put_topic(
        &self,
        caller: Caller,
        topic: cairn_logs::Topic,
    ) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            let stored = self.logs.put_topic(topic).map_err(logs_error)?;
            let request = serde_json::to_value(&stored).expect("topic serializes");
            let arn = self.arn("sns", &stored.name);
            self.audit_as(
                &caller,
                "sns.amazonaws.com",
                "CreateTopic",
                arn.clone(),
                "AWS::SNS::Topic",
                request.clone(),
            )
            .await?;
            Ok(json!({ "TopicArn": arn, "topic": request }))
        })
    }

    fn topics(&self) -> Value {
        let status = self
            .notifier
            .status
            .lock()
            .expect("status lock poisoned")
            .clone();
        let topics: Vec<Value> = self
            .logs
            .topics()
            .iter()
            .map(|t| {
                let subscriptions: Vec<Value> = t
                    .subscriptions
                    .iter()
                    .map(|s| {
                        json!({
                            "protocol": s.protocol,
                            "endpoint": s.endpoint,
                            "status": status.get(&format!("{}/{}", t.name, s.endpoint)).cloned().unwrap_or_default(),
                        })
                    })
                    .collect();
                json!({ "name": t.name, "topicArn": self.arn("sns", &t.name), "subscriptions": subscriptions })
            })
            .collect();
        json!({ "topics": topics })
    }

    fn signing_key_pem(&self) -> Result<String, ApiError> {
        self.notification_key
            .public_pem()
            .map_err(ApiError::internal)
    }

    fn put_alarm(
        &self,
        caller: Caller,
        alarm: cairn_logs::AlarmConfig,
    ) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            let stored = self.logs.put_alarm(alarm).map_err(logs_error)?;
            let request = serde_json::to_value(&stored).expect("alarm serializes");
            let arn = self.arn("cloudwatch", &format!("alarm:{}", stored.name));
            self.audit_as(
                &caller,
                "monitoring.amazonaws.com",
                "PutMetricAlarm",
                arn,
                "AWS::CloudWatch::Alarm",
                request.clone(),
            )
            .await?;
            Ok(request)
        })
    }

    fn alarms(&self) -> Value {
        json!({ "MetricAlarms": self.logs.alarms() })
    }

    fn delete_group(&self, caller: Caller, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let logs = self.logs.clone();
            let group = name.clone();
            tokio::task::spawn_blocking(move || logs.delete_group(&group))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(logs_error)?;
            self.audit(
                &caller,
                "DeleteLogGroup",
                &name,
                json!({ "logGroupName": name }),
            )
            .await
        })
    }

    fn delete_filter(
        &self,
        caller: Caller,
        group: String,
        name: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            self.logs.delete_filter(&group, &name).map_err(logs_error)?;
            self.audit(
                &caller,
                "DeleteMetricFilter",
                &group,
                json!({ "logGroupName": group, "filterName": name }),
            )
            .await
        })
    }

    fn delete_alarms(
        &self,
        caller: Caller,
        names: Vec<String>,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            self.logs.delete_alarms(&names).map_err(logs_error)?;
            let arn = self.arn(
                "cloudwatch",
                &format!("alarm:{}", names.first().cloned().unwrap_or_default()),
            );
            self.audit_as(
                &caller,
                "monitoring.amazonaws.com",
                "DeleteAlarms",
                arn,
                "AWS::CloudWatch::Alarm",
                json!({ "alarmNames": names }),
            )
            .await
        })
    }

    fn delete_topic(&self, caller: Caller, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            self.logs.delete_topic(&name).map_err(logs_error)?;
            let arn = self.arn("sns", &name);
            self.audit_as(
                &caller,
                "sns.amazonaws.com",
                "DeleteTopic",
                arn.clone(),
                "AWS::SNS::Topic",
                json!({ "topicArn": arn }),
            )
            .await
        })
    }

    fn install_cis(
        &self,
        caller: Caller,
        group: String,
        topic: String,
    ) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            use cairn_monitor::alarm::{AlarmSpec, Comparison, State, TreatMissing};
            if !self.logs.topics().iter().any(|t| t.name == topic) {
                return Err(logs_error(LogsError::NotFound(format!("topic {topic}"))));
            }
            let mut installed = Vec::new();
            for control in cairn_filter::cis::CONTROLS {
                self.logs
                    .put_filter(FilterConfig {
                        group: group.clone(),
                        name: control.metric.to_owned(),
                        pattern: control.pattern.to_owned(),
                        metric_name: control.metric.to_owned(),
                        metric_namespace: "LogMetrics".to_owned(),
                        metric_value: "1".to_owned(),
                        default_value: None,
                        dimensions: BTreeMap::new(),
                        unit: None,
                    })
                    .map_err(logs_error)?;
                let alarm = format!("{}-{}", control.id, control.metric);
                self.logs
                    .put_alarm(cairn_logs::AlarmConfig {
                        name: alarm.clone(),
                        namespace: "LogMetrics".to_owned(),
                        metric: control.metric.to_owned(),
                        dimensions: BTreeMap::new(),
                        spec: AlarmSpec {
                            statistic: cairn_monitor::stats::Statistic::Sum,
                            period_seconds: 300,
                            evaluation_periods: 1,
                            datapoints_to_alarm: 1,
                            threshold: 1.0,
                            comparison: Comparison::GreaterThanOrEqualToThreshold,
                            treat_missing: TreatMissing::NotBreaching,
                        },
                        actions: vec![topic.clone()],
                        state: State::InsufficientData,
                        reason: String::new(),
                        history: Vec::new(),
                    })
                    .map_err(logs_error)?;
                installed.push(json!({ "control": control.id, "metricFilter": control.metric, "alarm": alarm }));
            }
            self.audit(&caller, "PutMetricFilter", &group, json!({ "installCisPack": { "logGroupName": group, "topicName": topic, "controls": installed.len() } }))
                .await?;
            Ok(json!({ "installed": installed }))
        })
    }

    fn statistics(
        &self,
        namespace: String,
        metric: String,
        dimensions: BTreeMap<String, String>,
        start: i64,
        end: i64,
        period_seconds: i64,
        statistics: Vec<cairn_monitor::stats::Statistic>,
    ) -> Result<Value, ApiError> {
        let points = self
            .logs
            .statistics(
                &namespace,
                &metric,
                &dimensions,
                start,
                end,
                period_seconds * 1000,
            )
            .map_err(logs_error)?;
        let datapoints: Vec<Value> = points
            .iter()
            .map(|(t, s)| {
                let mut point = json!({ "Timestamp": *t as f64 / 1000.0 });
                for statistic in &statistics {
                    point[format!("{statistic:?}")] = json!(s.get(*statistic));
                }
                point
            })
            .collect();
        Ok(json!({ "Label": metric, "Datapoints": datapoints }))
    }
}

fn group_out(group: &LogGroup) -> Value {
    json!({
        "logGroupName": group.name,
        "trailName": group.trail,
        "retentionInDays": group.retention_days,
        "creationTime": group.created,
    })
}

fn filter_out(filter: &FilterConfig) -> Value {
    json!({
        "logGroupName": filter.group,
        "filterName": filter.name,
        "filterPattern": filter.pattern,
        "metricTransformations": [{
            "metricName": filter.metric_name,
            "metricNamespace": filter.metric_namespace,
            "metricValue": filter.metric_value,
            "defaultValue": filter.default_value,
            "dimensions": filter.dimensions,
            "unit": filter.unit,
        }],
    })
}
