//! Native trail administration: `/v1/trails...`.
//!
//! | Route | Operation |
//! |---|---|
//! | `POST /v1/trails` | CreateTrail (body: trail settings) |
//! | `GET /v1/trails` | list trails |
//! | `GET /v1/trails/{name}` | describe one trail (name or ARN) |
//! | `PATCH /v1/trails/{name}` | UpdateTrail (only given settings change) |
//! | `DELETE /v1/trails/{name}` | DeleteTrail |
//! | `GET /v1/trails/{name}/status` | GetTrailStatus |
//! | `POST /v1/trails/{name}/start-logging`, `/stop-logging` | StartLogging, StopLogging |
//! | `PUT`/`GET /v1/trails/{name}/event-selectors` | PutEventSelectors, GetEventSelectors |
//! | `POST /v1/trails/{name}/flush` | deliver what is pending now |

use crate::error::ApiError;
use crate::routes::{call, change, read, Resource, Routes};
use crate::{AppState, BoxFuture};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::Method;

use axum::Json;
use cairn_selectors::Selectors;
use cairn_trail::{Trail, TrailSettings};
use serde::Serialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// Who called, for the self-audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The client's IP address.
    pub source_ip: String,
    /// Its `User-Agent`.
    pub user_agent: Option<String>,
    /// The signer (set by the authentication layer).
    pub identity: Option<cairn_model::principal::Principal>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let source_ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(1024).collect());
        Ok(Self {
            source_ip,
            user_agent,
            identity: parts
                .extensions
                .get::<cairn_model::principal::Principal>()
                .cloned(),
        })
    }
}

/// What a flush delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FlushOut {
    /// Files written.
    pub files: usize,
    /// Events in them.
    pub events: usize,
    /// Compressed bytes.
    pub bytes: usize,
    /// Object keys.
    pub keys: Vec<String>,
}

/// Trail administration. Filled by the server, which also records each change as a
/// management event.
pub trait TrailAdmin: Send + Sync {
    /// CreateTrail.
    fn create(
        &self,
        caller: Caller,
        settings: TrailSettings,
    ) -> BoxFuture<'_, Result<Trail, ApiError>>;
    /// UpdateTrail.
    fn update(
        &self,
        caller: Caller,
        name: String,
        settings: TrailSettings,
    ) -> BoxFuture<'_, Result<Trail, ApiError>>;
    /// DeleteTrail.
    fn delete(&self, caller: Caller, name: String) -> BoxFuture<'_, Result<(), ApiError>>;
    /// All trails.
    fn list(&self) -> Vec<Trail>;
    /// One trail.
    fn get(&self, name: &str) -> Result<Trail, ApiError>;
    /// StartLogging.
    fn start_logging(&self, caller: Caller, name: String) -> BoxFuture<'_, Result<(), ApiError>>;
    /// StopLogging.
    fn stop_logging(&self, caller: Caller, name: String) -> BoxFuture<'_, Result<(), ApiError>>;
    /// PutEventSelectors.
    fn put_event_selectors(
        &self,
        caller: Caller,
        name: String,
        selectors: Selectors,
    ) -> BoxFuture<'_, Result<Trail, ApiError>>;
    /// Delivers the trail's pending events now.
    fn flush(&self, name: String) -> BoxFuture<'_, Result<FlushOut, ApiError>>;
}

fn epoch_seconds(millis: Option<i64>) -> Value {
    millis.map_or(Value::Null, |m| json!(m as f64 / 1000.0))
}

/// The `Trail` shape (spec §5.2), plus Cairn's `LocalDirectory`.
pub fn trail_out(trail: &Trail) -> Value {
    let mut out = json!({
        "Name": trail.name,
        "TrailARN": trail.arn,
        "HomeRegion": trail.scope.home_region,
        "IsMultiRegionTrail": trail.scope.is_multi_region_trail,
        "IncludeGlobalServiceEvents": trail.scope.include_global_service_events,
        "LogFileValidationEnabled": trail.log_file_validation_enabled,
        "IsOrganizationTrail": trail.is_organization_trail,
        "HasCustomEventSelectors": trail.has_custom_event_selectors(),
        "HasInsightSelectors": false,
    });
    let fields = [
        ("S3BucketName", trail.s3_bucket_name.clone()),
        ("S3KeyPrefix", trail.s3_key_prefix.clone()),
        (
            "OrganizationId",
            trail
                .organization_id
                .clone()
                .filter(|_| trail.is_organization_trail),
        ),
        (
            "LocalDirectory",
            trail
                .local_directory
                .as_ref()
                .map(|d| d.display().to_string()),
        ),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            out[name] = Value::String(value);
        }
    }
    out
}

/// The `GetTrailStatus` shape.
pub fn status_out(trail: &Trail) -> Value {
    json!({
        "IsLogging": trail.is_logging(),
        "LatestDeliveryTime": epoch_seconds(trail.latest_delivery_time),
        "LatestDeliveryAttemptTime": epoch_seconds(trail.latest_delivery_attempt_time),
        "LatestDeliveryError": trail.latest_delivery_error,
        "LatestDigestDeliveryTime": epoch_seconds(trail.latest_digest_delivery_time),
        "LatestDigestDeliveryError": trail.latest_digest_delivery_error,
        "StartLoggingTime": epoch_seconds(trail.start_logging_time),
        "StopLoggingTime": epoch_seconds(trail.stop_logging_time),
    })
}

/// The `GetEventSelectors` / `PutEventSelectors` answer.
pub fn selectors_out(trail: &Trail) -> Value {
    let mut out = serde_json::to_value(&trail.selectors).expect("selectors serialize");
    out["TrailARN"] = Value::String(trail.arn.clone());
    out
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            "InvalidParameterException",
            format!("{what} is invalid: {e}"),
        )
    })
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let settings: TrailSettings = body(&bytes, "trail settings")?;
    Ok(Json(trail_out(
        &state.trails.create(caller, settings).await?,
    )))
}

async fn list(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "Trails": state.trails.list().iter().map(trail_out).collect::<Vec<_>>() }))
}

async fn describe(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(trail_out(&state.trails.get(&name)?)))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let settings: TrailSettings = if bytes.is_empty() {
        TrailSettings::default()
    } else {
        body(&bytes, "trail settings")?
    };
    Ok(Json(trail_out(
        &state.trails.update(caller, name, settings).await?,
    )))
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.trails.delete(caller, name).await?;
    Ok(Json(json!({})))
}

async fn status(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(status_out(&state.trails.get(&name)?)))
}

async fn start_logging(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.trails.start_logging(caller, name).await?;
    Ok(Json(json!({})))
}

async fn stop_logging(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.trails.stop_logging(caller, name).await?;
    Ok(Json(json!({})))
}

async fn put_selectors(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let selectors: Selectors = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "InvalidEventSelectorsException",
            format!("body must be {{\"EventSelectors\":[...]}} or {{\"AdvancedEventSelectors\":[...]}}: {e}"),
        )
    })?;
    Ok(Json(selectors_out(
        &state
            .trails
            .put_event_selectors(caller, name, selectors)
            .await?,
    )))
}

async fn get_selectors(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(selectors_out(&state.trails.get(&name)?)))
}

async fn flush(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<FlushOut>, ApiError> {
    Ok(Json(state.trails.flush(name).await?))
}

/// The trail routes, each with the IAM action it needs.
pub fn routes() -> Routes<AppState> {
    use Resource::{Any, Trail, TrailInBody};
    const NAME: Resource = Trail("name");
    Routes::new()
        .route(
            Method::POST,
            "/v1/trails",
            change("cloudtrail:CreateTrail", TrailInBody("Name")),
            create,
        )
        .route(
            Method::GET,
            "/v1/trails",
            read("cloudtrail:DescribeTrails", Any),
            list,
        )
        .route(
            Method::GET,
            "/v1/trails/{name}",
            read("cloudtrail:GetTrail", NAME),
            describe,
        )
        .route(
            Method::PATCH,
            "/v1/trails/{name}",
            change("cloudtrail:UpdateTrail", NAME),
            update,
        )
        .route(
            Method::DELETE,
            "/v1/trails/{name}",
            change("cloudtrail:DeleteTrail", NAME),
            delete,
        )
        .route(
            Method::GET,
            "/v1/trails/{name}/status",
            read("cloudtrail:GetTrailStatus", NAME),
            status,
        )
        .route(
            Method::POST,
            "/v1/trails/{name}/start-logging",
            change("cloudtrail:StartLogging", NAME),
            start_logging,
        )
        .route(
            Method::POST,
            "/v1/trails/{name}/stop-logging",
            change("cloudtrail:StopLogging", NAME),
            stop_logging,
        )
        .route(
            Method::GET,
            "/v1/trails/{name}/event-selectors",
            read("cloudtrail:GetEventSelectors", NAME),
            get_selectors,
        )
        .route(
            Method::PUT,
            "/v1/trails/{name}/event-selectors",
            change("cloudtrail:PutEventSelectors", NAME),
            put_selectors,
        )
        .route(
            Method::POST,
            "/v1/trails/{name}/flush",
            call("cairn:FlushTrail", NAME),
            flush,
        )
}
