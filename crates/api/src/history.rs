//! `GET /v1/event-history`: LookupEvents over Event history.
//!
//! Query parameters (all optional): `region` (default: the server's region),
//! `lookup-attribute=<Key>=<Value>` (at most one; keys as LookupEvents spells them),
//! `start-time`, `end-time` (inclusive; `2026-02-11T10:15:00Z` or epoch seconds),
//! `max-results` (1-50, default 50), `next-token`, `event-category=insight`. The answer has
//! LookupEvents' shape: `{"Events":[...],"NextToken":...}` with `EventTime` in epoch seconds,
//! `ReadOnly` as a string and `CloudTrailEvent` holding the stored record as a JSON string,
//! plus Cairn's `IngestedBy` (who ingested the event; also a lookup attribute).

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::Json;
use cairn_model::lookup::{
    AttributeKey, FoundEvent, LookupError, LookupPage, LookupQuery, QueryError,
};
use cairn_model::time::parse_utc;
use serde::Serialize;

/// A LookupEvents `Resource`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceOut {
    /// `AWS::<Service>::<Type>`, or null.
    pub resource_type: Option<String>,
    /// ARN or name.
    pub resource_name: String,
}

/// A LookupEvents `Event`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct EventOut {
    /// eventID.
    pub event_id: String,
    /// eventName.
    pub event_name: String,
    /// `"true"` / `"false"` (a string, as LookupEvents returns it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<String>,
    /// The access key that signed the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Epoch seconds.
    pub event_time: f64,
    /// eventSource.
    pub event_source: String,
    /// The caller's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Resources.
    pub resources: Vec<ResourceOut>,
    /// The stored record, as a JSON string.
    pub cloud_trail_event: String,
    /// Cairn's: who ingested the event (out of band of the record): `{"Type":"Cairn"}` for
    /// Cairn's own records, `{"Type":"Principal","Arn":...,"AccessKeyId":...}` for a signed
    /// ingest, `{"Type":"Unknown"}` for events recorded before Cairn kept it.
    pub ingested_by: serde_json::Value,
}

/// A LookupEvents response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupEventsResponse {
    /// Events, newest first.
    pub events: Vec<EventOut>,
    /// Token for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// Converts a found event to LookupEvents' shape.
pub fn event_out(found: FoundEvent) -> EventOut {
    let view = found.view;
    let ingested_by = found.provenance.to_json();
    EventOut {
        event_id: view.event_id,
        event_name: view.event_name,
        read_only: view.read_only.map(|b| b.to_string()),
        access_key_id: view.access_key_id,
        event_time: view.event_time as f64 / 1000.0,
        event_source: view.event_source,
        username: view.username,
        resources: view
            .resources
            .into_iter()
            .map(|r| ResourceOut {
                resource_type: r.resource_type,
                resource_name: r.name,
            })
            .collect(),
        cloud_trail_event: String::from_utf8(found.record)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ingested_by,
    }
}

/// Converts a page.
pub fn page_out(page: LookupPage) -> LookupEventsResponse {
    LookupEventsResponse {
        events: page.events.into_iter().map(event_out).collect(),
        next_token: page.next_token,
    }
}

/// Parses `2026-02-11T10:15:00Z` or epoch seconds.
pub fn parse_time(name: &str, text: &str) -> Result<i64, ApiError> {
    if let Ok(millis) = parse_utc(text) {
        return Ok(millis);
    }
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds.abs() < 1e13 => Ok((seconds * 1000.0).round() as i64),
        _ => Err(ApiError::bad_request(
            "InvalidParameterException",
            format!("{name} must be UTC ISO-8601 like 2026-02-11T10:15:00Z or epoch seconds, got {text:?}"),
        )),
    }
}

/// Maps a lookup error to the LookupEvents exception.
pub fn history_error(error: LookupError) -> ApiError {
    match error {
        LookupError::Query(query) => {
            let code = match query {
                QueryError::InvalidTimeRange { .. } => "InvalidTimeRangeException",
                QueryError::InvalidMaxResults(_) => "InvalidMaxResultsException",
                QueryError::InvalidNextToken => "InvalidNextTokenException",
                QueryError::InvalidLookupAttributes(_) => "InvalidLookupAttributesException",
            };
            ApiError::bad_request(code, query.to_string())
        }
        LookupError::Unavailable(why) => {
            tracing::warn!(error = %why, "event history lookup failed on storage");
            ApiError::unavailable(format!(
                "event history is unavailable while its storage fails (a full disk?); it reopens by itself once writes succeed: {why}"
            ))
        }
        LookupError::Failed(why) => {
            tracing::error!(error = %why, "event history lookup failed");
            ApiError::internal(format!("event history is unavailable: {why}"))
        }
    }
}

/// Builds the query from URL parameters.
pub fn parse_query(raw: Option<&str>, default_region: &str) -> Result<LookupQuery, ApiError> {
    let mut query = LookupQuery::region(default_region);
    let invalid = |message: String| ApiError::bad_request("InvalidParameterException", message);
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "region" => query.region = value.into_owned(),
            "lookup-attribute" => {
                if query.attribute.is_some() {
                    return Err(ApiError::bad_request(
                        "InvalidLookupAttributesException",
                        "at most one lookup-attribute may be given",
                    ));
                }
                let (name, wanted) = value.split_once('=').ok_or_else(|| {
                    ApiError::bad_request(
                        "InvalidLookupAttributesException",
                        "lookup-attribute must be <Key>=<Value>",
                    )
                })?;
                let attribute = AttributeKey::parse(name).ok_or_else(|| {
                    ApiError::bad_request(
                        "InvalidLookupAttributesException",
                        format!(
                            "unknown lookup attribute {name:?}; use one of {}",
                            AttributeKey::ALL.map(AttributeKey::as_str).join(", ")
                        ),
                    )
                })?;
                query.attribute = Some((attribute, wanted.to_owned()));
            }
            "start-time" => query.start_time = Some(parse_time("start-time", &value)?),
            "end-time" => query.end_time = Some(parse_time("end-time", &value)?),
            "max-results" => {
                let n = value.parse::<usize>().map_err(|_| {
                    ApiError::bad_request(
                        "InvalidMaxResultsException",
                        format!("max-results must be 1 to 50, got {value:?}"),
                    )
                })?;
                query.max_results = Some(n);
            }
            "next-token" => query.next_token = Some(value.into_owned()),
            "event-category" if value == "insight" => query.insights = true,
            "event-category" => {
                return Err(ApiError::bad_request(
                    "InvalidEventCategoryException",
                    format!("event-category must be \"insight\", got {value:?}"),
                ))
            }
            other => return Err(invalid(format!("unknown query parameter {other:?}"))),
        }
    }
    Ok(query)
}

/// The handler.
pub async fn lookup_events(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<LookupEventsResponse>, ApiError> {
    let query = parse_query(raw.as_deref(), state.ingest.region())?;
    let page = state.query.lookup(query).await.map_err(history_error)?;
    Ok(Json(page_out(page)))
}
