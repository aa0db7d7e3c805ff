//! The Lake: event data stores and queries (CloudTrail Lake's operations and member names; the
//! same PascalCase bodies as the CloudTrail JSON protocol operations of the same name).
//!
//! | Route | Operation |
//! |---|---|
//! | `POST /v1/event-data-stores` | CreateEventDataStore: `{"Name", "AdvancedEventSelectors"?, "RetentionPeriod"?, "TerminationProtectionEnabled"?, "MultiRegionEnabled"?, "OrganizationEnabled"?}` |
//! | `GET /v1/event-data-stores` | ListEventDataStores |
//! | `GET /v1/event-data-stores/{store}` | GetEventDataStore (name, id or ARN) |
//! | `PATCH /v1/event-data-stores/{store}` | UpdateEventDataStore |
//! | `DELETE /v1/event-data-stores/{store}` | DeleteEventDataStore (refused while termination protection is on) |
//! | `POST /v1/event-data-stores/{store}/import` | import `{"Records":[...]}` (CloudTrail records) into the store |
//! | `POST /v1/queries` | StartQuery: `{"QueryStatement"}` |
//! | `GET /v1/queries` | ListQueries |
//! | `GET /v1/queries/{id}` | DescribeQuery |
//! | `GET /v1/queries/{id}/results?nextToken=&maxResults=` | GetQueryResults (1–1000 rows a page) |
//! | `POST /v1/queries/{id}/cancel` | CancelQuery |

use crate::error::ApiError;
use crate::routes::{call, change, read, Resource, Routes};
use crate::trails::Caller;
use crate::{AppState, BoxFuture};
use axum::extract::{Path, RawQuery, State};
use axum::http::Method;
use axum::Json;
use serde_json::Value;

/// The Lake port. Filled by the server (store changes are recorded).
pub trait LakeAdmin: Send + Sync {
    /// CreateEventDataStore.
    fn create_store(
        &self,
        caller: Caller,
        request: Value,
    ) -> BoxFuture<'_, Result<Value, ApiError>>;
    /// GetEventDataStore.
    fn get_store(&self, store: &str) -> Result<Value, ApiError>;
    /// ListEventDataStores.
    fn list_stores(&self) -> Value;
    /// UpdateEventDataStore.
    fn update_store(
        &self,
        caller: Caller,
        store: String,
        request: Value,
    ) -> BoxFuture<'_, Result<Value, ApiError>>;
    /// DeleteEventDataStore.
    fn delete_store(&self, caller: Caller, store: String)
        -> BoxFuture<'_, Result<Value, ApiError>>;
    /// Imports CloudTrail records into a store.
    fn import(
        &self,
        caller: Caller,
        store: String,
        body: axum::body::Bytes,
    ) -> BoxFuture<'_, Result<Value, ApiError>>;
    /// StartQuery.
    fn start_query(
        &self,
        caller: Caller,
        statement: String,
    ) -> BoxFuture<'_, Result<Value, ApiError>>;
    /// DescribeQuery.
    fn describe_query(&self, id: &str) -> Result<Value, ApiError>;
    /// GetQueryResults.
    fn query_results(
        &self,
        id: &str,
        token: Option<&str>,
        max: Option<i64>,
    ) -> Result<Value, ApiError>;
    /// CancelQuery.
    fn cancel_query(&self, id: &str) -> Result<Value, ApiError>;
    /// ListQueries.
    fn list_queries(&self) -> Value;
}

fn body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            "InvalidParameterException",
            format!("body must be JSON: {e}"),
        )
    })
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.lake.create_store(caller, body(&bytes)?).await?))
}

async fn list(State(state): State<AppState>) -> Json<Value> {
    Json(state.lake.list_stores())
}

async fn get_one(
    State(state): State<AppState>,
    Path(store): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.lake.get_store(&store)?))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(store): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        state
            .lake
            .update_store(caller, store, body(&bytes)?)
            .await?,
    ))
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(store): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.lake.delete_store(caller, store).await?))
}

async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Path(store): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.lake.import(caller, store, bytes).await?))
}

async fn start(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request = body(&bytes)?;
    let statement = statement(&request)?;
    Ok(Json(state.lake.start_query(caller, statement).await?))
}

/// `QueryStatement`, checked as StartQuery checks it (1–10000 characters).
pub fn statement(request: &Value) -> Result<String, ApiError> {
    let text = request["QueryStatement"].as_str().ok_or_else(|| {
        ApiError::bad_request(
            "InvalidParameterException",
            "QueryStatement is required (QueryAlias is not supported)",
        )
    })?;
    if text.trim().is_empty() || text.len() > 10_000 {
        return Err(ApiError::bad_request(
            "InvalidQueryStatementException",
            format!(
                "QueryStatement must be 1 to 10000 characters, got {}",
                text.len()
            ),
        ));
    }
    Ok(text.to_owned())
}

async fn queries(State(state): State<AppState>) -> Json<Value> {
    Json(state.lake.list_queries())
}

async fn describe(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.lake.describe_query(&id)?))
}

async fn results(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let find = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let max = find("maxResults")
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::bad_request(
                    "InvalidMaxResultsException",
                    format!("maxResults must be 1 to 1000, got {v:?}"),
                )
            })
        })
        .transpose()?;
    Ok(Json(state.lake.query_results(
        &id,
        find("nextToken"),
        max,
    )?))
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.lake.cancel_query(&id)?))
}

/// The routes, each with the IAM action it needs.
pub fn routes() -> Routes<AppState> {
    use Resource::{Any, Store, StoreInBody};
    const STORE: Resource = Store("store");
    Routes::new()
        .route(
            Method::POST,
            "/v1/event-data-stores",
            change("cloudtrail:CreateEventDataStore", StoreInBody("Name")),
            create,
        )
        .route(
            Method::GET,
            "/v1/event-data-stores",
            read("cloudtrail:ListEventDataStores", Any),
            list,
        )
        .route(
            Method::GET,
            "/v1/event-data-stores/{store}",
            read("cloudtrail:GetEventDataStore", STORE),
            get_one,
        )
        .route(
            Method::PATCH,
            "/v1/event-data-stores/{store}",
            change("cloudtrail:UpdateEventDataStore", STORE),
            update,
        )
        .route(
            Method::DELETE,
            "/v1/event-data-stores/{store}",
            change("cloudtrail:DeleteEventDataStore", STORE),
            delete,
        )
        .route(
            Method::POST,
            "/v1/event-data-stores/{store}/import",
            change("cloudtrail:StartImport", STORE),
            import,
        )
        .route(
            Method::POST,
            "/v1/queries",
            read("cloudtrail:StartQuery", Any),
            start,
        )
        .route(
            Method::GET,
            "/v1/queries",
            read("cloudtrail:ListQueries", Any),
            queries,
        )
        .route(
            Method::GET,
            "/v1/queries/{id}",
            read("cloudtrail:DescribeQuery", Any),
            describe,
        )
        .route(
            Method::GET,
            "/v1/queries/{id}/results",
            read("cloudtrail:GetQueryResults", Any),
            results,
        )
        .route(
            Method::POST,
            "/v1/queries/{id}/cancel",
            call("cloudtrail:CancelQuery", Any),
            cancel,
        )
}
