//! Cairn's HTTP API (axum).
//!
//! Routes:
//! * `POST /v1/events` — native ingest: a JSON array, `{"Records":[...]}` or NDJSON, gzip
//!   accepted ([`ingest`]).
//! * `POST /PutAuditEvents?channelArn=...` — the CloudTrail Lake `PutAuditEvents` shape
//!   ([`audit`]).
//! * `GET /v1/event-history` — LookupEvents over Event history ([`history`]).
//! * `/v1/trails...` — trail administration ([`trails`]).
//! * `GET /v1/public-keys`, `POST /v1/keys/rotate` — digest signing keys ([`keys`]).
//! * `/v1/iam/...` — users, access keys, policies ([`iam`]).
//! * `/v1/log-groups...`, `/v1/metrics/statistics` — log groups, metric filters ([`logs`]).
//! * `/v1/event-data-stores...`, `/v1/queries...` — the Lake ([`lake`]).
//! * `POST /` — CloudTrail's JSON 1.1 protocol, `DescribeTrails` and `ListPublicKeys` ([`wire`]).
//! * `GET /healthz`, `GET /readyz`, `GET /metrics`.
//!
//! The API owns no storage: it declares the ports it needs ([`Ingest`], [`EventQuery`],
//! [`Health`]) and the server fills them. Events are validated here (pure work, on a
//! blocking thread) and handed to [`Ingest::record`], which answers only once they are
//! durable.

pub mod audit;
pub mod auth;
pub mod body;
pub mod error;
pub mod gate;
pub mod history;
pub mod iam;
pub mod ingest;
pub mod keys;
pub mod lake;
pub mod logs;
pub mod routes;
pub mod trails;
pub mod wire;

use axum::Router;
use cairn_model::lookup::{LookupError, LookupPage, LookupQuery};
use cairn_model::{AccountId, PreparedEvent, RejectKind};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use error::ApiError;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What happened to one prepared event handed to [`Ingest::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Newly recorded and durable.
    Accepted,
    /// Already recorded with the same payload (a retry): durable, not recorded again.
    Duplicate,
    /// Its eventID is already recorded with a different payload: refused.
    Conflict,
}

/// Records events durably. Filled by the server.
pub trait Ingest: Send + Sync {
    /// The deployment's account id.
    fn account_id(&self) -> &AccountId;
    /// The region integration events are recorded in.
    fn region(&self) -> &str;
    /// Records `events`; resolves once every accepted one is durable. One outcome per
    /// event, in order. An error means nothing of the call was acknowledged.
    fn record(
        &self,
        events: Vec<PreparedEvent>,
    ) -> BoxFuture<'_, Result<Vec<RecordOutcome>, ApiError>>;
    /// The current time, from the server's clock.
    fn now_millis(&self) -> i64;
    /// Counts a rejected event (for metrics).
    fn note_rejected(&self, kind: RejectKind);
}

/// Searches Event history. Filled by the server.
pub trait EventQuery: Send + Sync {
    /// One page of a lookup.
    fn lookup(&self, query: LookupQuery) -> BoxFuture<'_, Result<LookupPage, LookupError>>;
}

/// Liveness, readiness and metrics. Filled by the server.
pub trait Health: Send + Sync {
    /// `Ok` when ingest can make events durable; the reason otherwise.
    fn ready(&self) -> Result<(), String>;
    /// Prometheus text exposition of the server's metrics.
    fn metrics(&self) -> String;
    /// The server's state as JSON: readiness and its reason, the WAL and each consumer's
    /// position, lag and failure, free space (`GET /v1/status`, `cairn status`).
    fn status(&self) -> serde_json::Value;
}

/// Request limits, documented in `docs/API.md`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, on the wire and after decompression.
    pub max_request_bytes: usize,
    /// Most events in one `/v1/events` request.
    pub max_events_per_request: usize,
    /// Memory for request bodies being read, copied and parsed, all requests together
    /// ([`gate`]).
    pub request_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 10 * 1024 * 1024,
            max_events_per_request: 10_000,
            request_buffer_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Ingest port.
    pub ingest: Arc<dyn Ingest>,
    /// History port.
    pub query: Arc<dyn EventQuery>,
    /// Health port.
    pub health: Arc<dyn Health>,
    /// Trail administration port.
    pub trails: Arc<dyn trails::TrailAdmin>,
    /// Signing-key port.
    pub keys: Arc<dyn keys::KeyAdmin>,
    /// Authentication, authorization and the record of calls.
    pub auth: Arc<dyn auth::Authenticator>,
    /// Identity administration.
    pub iam: Arc<dyn iam::IamAdmin>,
    /// Log groups, metric filters, statistics.
    pub logs: Arc<dyn logs::LogsAdmin>,
    /// Event data stores and queries.
    pub lake: Arc<dyn lake::LakeAdmin>,
    /// Limits.
    pub limits: Limits,
    /// Admission: the request-body budget and the parsing threads.
    pub gates: Arc<gate::Gates>,
}

/// Every route with the IAM action it needs.
fn all_routes() -> routes::Routes<AppState> {
    use axum::http::Method;
    use routes::{call, read, Resource::Any};
    routes::Routes::new()
        .route(
            Method::POST,
            "/v1/events",
            call("cairn:PutEvents", Any).data_plane(),
            ingest::put_events,
        )
        .route(
            Method::POST,
            "/PutAuditEvents",
            call("cloudtrail-data:PutAuditEvents", Any).data_plane(),
            audit::put_audit_events,
        )
        .route(
            Method::GET,
            "/v1/event-history",
            read("cloudtrail:LookupEvents", Any),
            history::lookup_events,
        )
        .public(Method::GET, "/healthz", || async { "ok\n" })
        .public(Method::GET, "/readyz", readyz)
        // Unsigned reads too when `public_metrics` is set (see `auth::layer`).
        .route(
            Method::GET,
            "/metrics",
            read("cairn:GetMetrics", Any).data_plane(),
            metrics,
        )
        .route(
            Method::GET,
            "/v1/status",
            read("cairn:GetMetrics", Any).data_plane(),
            status,
        )
        // CloudTrail's JSON protocol: the action is the `X-Amz-Target` operation.
        .route(
            Method::POST,
            "/",
            routes::Action {
                name: "cloudtrail:*",
                resource: routes::Resource::Protocol,
                read_only: false,
                handler_records: false,
                data_plane: false,
            },
            wire::handle,
        )
        .merge(trails::routes())
        .merge(keys::routes())
        .merge(iam::routes())
        .merge(logs::routes())
        .merge(lake::routes())
}

/// The actions of every route (what the authoriser reads).
pub fn route_table() -> routes::RouteTable {
    all_routes().into_parts().1
}

/// The router over `state`.
pub fn app(state: AppState) -> Router {
    let (router, table) = all_routes().into_parts();
    router
        .fallback(|| async {
            ApiError {
                status: axum::http::StatusCode::NOT_FOUND,
                code: "UnknownOperation",
                message: "no such route".to_owned(),
            }
        })
        // The authentication layer has already read the body within `max_request_bytes`;
        // handlers take it whole up to the same bound (axum's own default, 2 MB, refused the
        // import client's 4 MB batches).
        .layer(axum::extract::DefaultBodyLimit::max(auth::body_limit(
            &state.limits,
        )))
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), std::sync::Arc::new(table)),
            auth::layer,
        ))
        .with_state(state)
}

async fn readyz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<&'static str, ApiError> {
    state
        .health
        .ready()
        .map(|()| "ready\n")
        .map_err(ApiError::unavailable)
}

async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.health.metrics(),
    )
}

async fn status(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::Json<serde_json::Value> {
    axum::Json(state.health.status())
}

/// A fresh random event id.
pub(crate) fn fresh_event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests;
