//! Log groups, metric filters and statistics (CloudWatch Logs' and CloudWatch's member names).
//!
//! | Route | Operation |
//! |---|---|
//! | `PUT /v1/log-groups/{group}` | create a log group fed by a trail: `{"trailName", "retentionInDays"?}` (default 90) |
//! | `GET /v1/log-groups` | DescribeLogGroups |
//! | `GET /v1/log-groups/{group}/events?filterPattern=&startTime=&endTime=&limit=&nextToken=` | FilterLogEvents (times in epoch ms) |
//! | `PUT /v1/log-groups/{group}/metric-filters/{name}` | PutMetricFilter: `{"filterPattern", "metricTransformations":[{metricName, metricNamespace, metricValue, defaultValue?, dimensions?, unit?}]}` |
//! | `GET /v1/log-groups/{group}/metric-filters` | DescribeMetricFilters |
//! | `DELETE /v1/log-groups/{group}` | DeleteLogGroup (its metric filters and events too) |
//! | `DELETE /v1/log-groups/{group}/metric-filters/{name}` | DeleteMetricFilter |
//! | `DELETE /v1/alarms/{name}` | DeleteAlarms (one alarm) |
//! | `DELETE /v1/topics/{name}` | DeleteTopic (400 `InvalidParameterException` while an alarm notifies it) |
//! | `GET /v1/metrics/statistics?namespace=&metricName=&startTime=&endTime=&period=&statistics=Sum,Maximum&dimension=Name=Value` | GetMetricStatistics (times in epoch ms, period in seconds) |

use crate::error::ApiError;
use crate::routes::{change, read, Resource, Routes};
use crate::trails::Caller;
use crate::{AppState, BoxFuture};
use axum::extract::{Path, RawQuery, State};
use axum::http::Method;
use axum::Json;
use cairn_monitor::stats::Statistic;
use serde_json::Value;
use std::collections::BTreeMap;

/// The log-group port. Filled by the server (changes are recorded).
pub trait LogsAdmin: Send + Sync {
    /// Creates or updates a group.
    fn put_group(
        &self,
        caller: Caller,
        name: String,
        trail: String,
        retention_days: u32,
    ) -> BoxFuture<'_, Result<Value, ApiError>>;
    /// DescribeLogGroups.
    fn groups(&self) -> Value;
    /// PutMetricFilter.
    fn put_filter(
        &self,
        caller: Caller,
        filter: cairn_monitor::config::FilterConfig,
    ) -> BoxFuture<'_, Result<(), ApiError>>;
    /// DescribeMetricFilters.
    fn filters(&self, group: &str) -> Value;
    /// FilterLogEvents.
    fn filter_events(
        &self,
        group: String,
        pattern: String,
        start: i64,
        end: i64,
        limit: usize,
        token: Option<String>,
    ) -> BoxFuture<'_, Result<Value, ApiError>>;
    /// CreateTopic (with its subscriptions).
    fn put_topic(
        &self,
        caller: Caller,
        topic: cairn_monitor::config::Topic,
    ) -> BoxFuture<'_, Result<Value, ApiError>>;
    /// ListTopics, with each subscription's delivery status.
    fn topics(&self) -> Value;
    /// The public key notifications are signed with (PEM).
    fn signing_key_pem(&self) -> Result<String, ApiError>;
    /// PutMetricAlarm.
    fn put_alarm(
        &self,
        caller: Caller,
        alarm: cairn_monitor::config::AlarmConfig,
    ) -> BoxFuture<'_, Result<Value, ApiError>>;
    /// DescribeAlarms.
    fn alarms(&self) -> Value;
    /// The CIS pack on a log group: its metric filters and alarms notifying a topic.
    fn install_cis(
        &self,
        caller: Caller,
        group: String,
        topic: String,
    ) -> BoxFuture<'_, Result<Value, ApiError>>;
    /// DeleteLogGroup.
    fn delete_group(&self, caller: Caller, name: String) -> BoxFuture<'_, Result<(), ApiError>>;
    /// DeleteMetricFilter.
    fn delete_filter(
        &self,
        caller: Caller,
        group: String,
        name: String,
    ) -> BoxFuture<'_, Result<(), ApiError>>;
    /// DeleteAlarms.
    fn delete_alarms(
        &self,
        caller: Caller,
        names: Vec<String>,
    ) -> BoxFuture<'_, Result<(), ApiError>>;
    /// DeleteTopic.
    fn delete_topic(&self, caller: Caller, name: String) -> BoxFuture<'_, Result<(), ApiError>>;
    /// GetMetricStatistics.
    #[allow(clippy::too_many_arguments)]
    fn statistics(
        &self,
        namespace: String,
        metric: String,
        dimensions: BTreeMap<String, String>,
        start: i64,
        end: i64,
        period_seconds: i64,
        statistics: Vec<Statistic>,
    ) -> Result<Value, ApiError>;
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("InvalidParameterException", message)
}

fn body(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| invalid(format!("body must be JSON: {e}")))
}

fn query(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn number(params: &[(String, String)], name: &str) -> Result<Option<i64>, ApiError> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| {
            v.parse::<i64>()
                .map_err(|_| invalid(format!("{name} must be an integer, got {v:?}")))
        })
        .transpose()
}

async fn put_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request = body(&bytes)?;
    let trail = request["trailName"]
        .as_str()
        .ok_or_else(|| invalid("trailName is required"))?
        .to_owned();
    let retention = match &request["retentionInDays"] {
        Value::Null => 90,
        v => v
            .as_u64()
            .and_then(|d| u32::try_from(d).ok())
            .ok_or_else(|| invalid("retentionInDays must be a number of days"))?,
    };
    Ok(Json(
        state.logs.put_group(caller, name, trail, retention).await?,
    ))
}

async fn groups(State(state): State<AppState>) -> Json<Value> {
    Json(state.logs.groups())
}

async fn put_filter(
    State(state): State<AppState>,
    caller: Caller,
    Path((group, name)): Path<(String, String)>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request = body(&bytes)?;
    let pattern = request["filterPattern"]
        .as_str()
        .ok_or_else(|| invalid("filterPattern is required"))?
        .to_owned();
    let transformations = request["metricTransformations"]
        .as_array()
        .filter(|t| t.len() == 1)
        .ok_or_else(|| invalid("metricTransformations must hold exactly one transformation"))?;
    let t = &transformations[0];
    let text = |name: &str| -> Result<String, ApiError> {
        t[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| invalid(format!("{name} is required")))
    };
    let dimensions: BTreeMap<String, String> = match &t["dimensions"] {
        Value::Null => BTreeMap::new(),
        v => serde_json::from_value(v.clone())
            .map_err(|_| invalid("dimensions must map names to references"))?,
    };
    let filter = cairn_monitor::config::FilterConfig {
        group,
        name,
        pattern,
        metric_name: text("metricName")?,
        metric_namespace: text("metricNamespace")?,
        metric_value: text("metricValue")?,
        default_value: match &t["defaultValue"] {
            Value::Null => None,
            v => Some(
                v.as_f64()
                    .ok_or_else(|| invalid("defaultValue must be a number"))?,
            ),
        },
        dimensions,
        unit: t["unit"].as_str().map(str::to_owned),
    };
    state.logs.put_filter(caller, filter).await?;
    Ok(Json(serde_json::json!({})))
}

async fn filters(State(state): State<AppState>, Path(group): Path<String>) -> Json<Value> {
    Json(state.logs.filters(&group))
}

async fn events(
    State(state): State<AppState>,
    Path(group): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = query(raw.as_deref());
    let pattern = params
        .iter()
        .find(|(k, _)| k == "filterPattern")
        .map_or(String::new(), |(_, v)| v.clone());
    let token = params
        .iter()
        .find(|(k, _)| k == "nextToken")
        .map(|(_, v)| v.clone());
    let limit = number(&params, "limit")?.unwrap_or(10_000);
    if !(1..=10_000).contains(&limit) {
        return Err(invalid("limit must be 1 to 10000"));
    }
    Ok(Json(
        state
            .logs
            .filter_events(
                group,
                pattern,
                number(&params, "startTime")?.unwrap_or(0),
                number(&params, "endTime")?.unwrap_or(i64::MAX),
                limit as usize,
                token,
            )
            .await?,
    ))
}

async fn statistics(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = query(raw.as_deref());
    let text = |name: &str| -> Result<String, ApiError> {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| invalid(format!("{name} is required")))
    };
    let mut dimensions = BTreeMap::new();
    for (_, v) in params.iter().filter(|(k, _)| k == "dimension") {
        let (name, value) = v
            .split_once('=')
            .ok_or_else(|| invalid("dimension must be Name=Value"))?;
        dimensions.insert(name.to_owned(), value.to_owned());
    }
    let statistics = text("statistics")?
        .split(',')
        .map(|s| match s {
            "Sum" => Ok(Statistic::Sum),
            "Average" => Ok(Statistic::Average),
            "Minimum" => Ok(Statistic::Minimum),
            "Maximum" => Ok(Statistic::Maximum),
            "SampleCount" => Ok(Statistic::SampleCount),
            other => Err(invalid(format!("unknown statistic {other:?}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let period = number(&params, "period")?.ok_or_else(|| invalid("period is required"))?;
    Ok(Json(state.logs.statistics(
        text("namespace")?,
        text("metricName")?,
        dimensions,
        number(&params, "startTime")?.ok_or_else(|| invalid("startTime is required"))?,
        number(&params, "endTime")?.ok_or_else(|| invalid("endTime is required"))?,
        period,
        statistics,
    )?))
}

async fn put_topic(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request = body(&bytes)?;
    let subscriptions: Vec<cairn_monitor::config::Subscription> = match &request["subscriptions"] {
        Value::Null => Vec::new(),
        Value::Array(list) => list
            .iter()
            .map(|s| {
                Ok(cairn_monitor::config::Subscription {
                    protocol: s["protocol"]
                        .as_str()
                        .ok_or_else(|| invalid("protocol is required"))?
                        .to_owned(),
                    endpoint: s["endpoint"]
                        .as_str()
                        .ok_or_else(|| invalid("endpoint is required"))?
                        .to_owned(),
                })
            })
            .collect::<Result<_, ApiError>>()?,
        _ => return Err(invalid("subscriptions must be a list")),
    };
    Ok(Json(
        state
            .logs
            .put_topic(
                caller,
                cairn_monitor::config::Topic {
                    name,
                    subscriptions,
                },
            )
            .await?,
    ))
}

async fn topics(State(state): State<AppState>) -> Json<Value> {
    Json(state.logs.topics())
}

async fn signing_key(State(state): State<AppState>) -> Result<String, ApiError> {
    state.logs.signing_key_pem()
}

async fn put_alarm(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    use cairn_monitor::alarm::{AlarmSpec, Comparison, State as AlarmState, TreatMissing};
    let r = body(&bytes)?;
    let text = |n: &str| -> Result<String, ApiError> {
        r[n].as_str()
            .map(str::to_owned)
            .ok_or_else(|| invalid(format!("{n} is required")))
    };
    let int = |n: &str| -> Result<u64, ApiError> {
        r[n].as_u64()
            .ok_or_else(|| invalid(format!("{n} must be a positive integer")))
    };
    let statistic = match text("statistic")?.as_str() {
        "Sum" => Statistic::Sum,
        "Average" => Statistic::Average,
        "Minimum" => Statistic::Minimum,
        "Maximum" => Statistic::Maximum,
        "SampleCount" => Statistic::SampleCount,
        other => return Err(invalid(format!("unknown statistic {other:?}"))),
    };
    let comparison = match text("comparisonOperator")?.as_str() {
        "GreaterThanOrEqualToThreshold" => Comparison::GreaterThanOrEqualToThreshold,
        "GreaterThanThreshold" => Comparison::GreaterThanThreshold,
        "LessThanThreshold" => Comparison::LessThanThreshold,
        "LessThanOrEqualToThreshold" => Comparison::LessThanOrEqualToThreshold,
        other => return Err(invalid(format!("unknown comparisonOperator {other:?}"))),
    };
    let treat = match r["treatMissingData"].as_str().unwrap_or("missing") {
        "missing" => TreatMissing::Missing,
        "ignore" => TreatMissing::Ignore,
        "breaching" => TreatMissing::Breaching,
        "notBreaching" => TreatMissing::NotBreaching,
        other => return Err(invalid(format!("unknown treatMissingData {other:?}"))),
    };
    let evaluation_periods = int("evaluationPeriods")? as u32;
    let spec = AlarmSpec {
        statistic,
        period_seconds: int("period")?,
        evaluation_periods,
        datapoints_to_alarm: r["datapointsToAlarm"]
            .as_u64()
            .map_or(evaluation_periods, |v| v as u32),
        threshold: r["threshold"]
            .as_f64()
            .ok_or_else(|| invalid("threshold must be a number"))?,
        comparison,
        treat_missing: treat,
    };
    let dimensions: BTreeMap<String, String> = match &r["dimensions"] {
        Value::Null => BTreeMap::new(),
        v => serde_json::from_value(v.clone())
            .map_err(|_| invalid("dimensions must map names to values"))?,
    };
    let actions: Vec<String> = match &r["alarmActions"] {
        Value::Null => Vec::new(),
        v => serde_json::from_value(v.clone())
            .map_err(|_| invalid("alarmActions must be topic names"))?,
    };
    let alarm = cairn_monitor::config::AlarmConfig {
        name,
        namespace: text("namespace")?,
        metric: text("metricName")?,
        dimensions,
        spec,
        actions,
        state: AlarmState::InsufficientData,
        reason: String::new(),
        history: Vec::new(),
    };
    Ok(Json(state.logs.put_alarm(caller, alarm).await?))
}

async fn alarms(State(state): State<AppState>) -> Json<Value> {
    Json(state.logs.alarms())
}

async fn install_cis(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let r = body(&bytes)?;
    let group = r["logGroupName"]
        .as_str()
        .ok_or_else(|| invalid("logGroupName is required"))?;
    let topic = r["topicName"]
        .as_str()
        .ok_or_else(|| invalid("topicName is required"))?;
    Ok(Json(
        state
            .logs
            .install_cis(caller, group.to_owned(), topic.to_owned())
            .await?,
    ))
}

async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.logs.delete_group(caller, group).await?;
    Ok(Json(serde_json::json!({})))
}

async fn delete_filter(
    State(state): State<AppState>,
    caller: Caller,
    Path((group, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    state.logs.delete_filter(caller, group, name).await?;
    Ok(Json(serde_json::json!({})))
}

async fn delete_alarm(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.logs.delete_alarms(caller, vec![name]).await?;
    Ok(Json(serde_json::json!({})))
}

async fn delete_topic(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.logs.delete_topic(caller, name).await?;
    Ok(Json(serde_json::json!({})))
}

/// The routes, each with the IAM action it needs.
pub fn routes() -> Routes<AppState> {
    use Resource::{Alarm, Any, LogGroup, Topic};
    const GROUP: Resource = LogGroup("group");
    Routes::new()
        .route(
            Method::GET,
            "/v1/log-groups",
            read("logs:DescribeLogGroups", Any),
            groups,
        )
        .route(
            Method::PUT,
            "/v1/log-groups/{group}",
            change("logs:CreateLogGroup", GROUP),
            put_group,
        )
        .route(
            Method::DELETE,
            "/v1/log-groups/{group}",
            change("logs:DeleteLogGroup", GROUP),
            delete_group,
        )
        .route(
            Method::GET,
            "/v1/log-groups/{group}/events",
            read("logs:FilterLogEvents", GROUP),
            events,
        )
        .route(
            Method::GET,
            "/v1/log-groups/{group}/metric-filters",
            read("logs:DescribeMetricFilters", GROUP),
            filters,
        )
        .route(
            Method::PUT,
            "/v1/log-groups/{group}/metric-filters/{name}",
            change("logs:PutMetricFilter", GROUP),
            put_filter,
        )
        .route(
            Method::DELETE,
            "/v1/log-groups/{group}/metric-filters/{name}",
            change("logs:DeleteMetricFilter", GROUP),
            delete_filter,
        )
        .route(
            Method::GET,
            "/v1/metrics/statistics",
            read("cloudwatch:GetMetricStatistics", Any),
            statistics,
        )
        .route(
            Method::GET,
            "/v1/topics",
            read("sns:ListTopics", Any),
            topics,
        )
        // The public key receivers verify notifications with (like SNS's signing
        // certificate, fetched without credentials).
        .public(Method::GET, "/v1/topics/signing-key", signing_key)
        .route(
            Method::PUT,
            "/v1/topics/{name}",
            change("sns:CreateTopic", Topic("name")),
            put_topic,
        )
        .route(
            Method::DELETE,
            "/v1/topics/{name}",
            change("sns:DeleteTopic", Topic("name")),
            delete_topic,
        )
        .route(
            Method::GET,
            "/v1/alarms",
            read("cloudwatch:DescribeAlarms", Any),
            alarms,
        )
        .route(
            Method::POST,
            "/v1/alarms/install-cis",
            change("cairn:InstallCisPack", Any),
            install_cis,
        )
        .route(
            Method::PUT,
            "/v1/alarms/{name}",
            change("cloudwatch:PutMetricAlarm", Alarm("name")),
            put_alarm,
        )
        .route(
            Method::DELETE,
            "/v1/alarms/{name}",
            change("cloudwatch:DeleteAlarms", Alarm("name")),
            delete_alarm,
        )
}
