//! `POST /v1/events`: native ingest.
//!
//! Body: a JSON array of events, a `{"Records":[...]}` object (a CloudTrail log file), or
//! NDJSON (one event per line; blank lines ignored). `Content-Type: application/json` for the
//! first two, `application/x-ndjson` (or `application/jsonl`) for NDJSON; gzip bodies by
//! `Content-Encoding: gzip` or by magic number. Every event is answered in `results`, in order:
//! `accepted` (with its eventID), `duplicate` (a retry of an event already recorded) or
//! `rejected` (with the field and reason). The response is sent only once every accepted
//! event is durable. Status: 200 if any event was accepted or a duplicate, 400 if all were
//! rejected.

use crate::body::{gunzip_limited, is_gzip, read_limited};
use crate::error::ApiError;
use crate::{fresh_event_id, AppState, RecordOutcome};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_model::provenance::Provenance;
use cairn_model::{prepare_event, AccountId, PrepareContext, PreparedEvent, Rejection};
use serde::Serialize;
use serde_json::value::RawValue;

/// How the body lists its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// A JSON array or a `{"Records":[...]}` object.
    Json,
    /// One JSON event per line.
    Ndjson,
}

/// The body format a content type names.
pub fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE) else {
        return Err(ApiError::unsupported_media_type(
            "Content-Type is required: application/json (array or {\"Records\":[...]}) or application/x-ndjson",
        ));
    };
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines" | "application/ndjson" => {
            Ok(BodyFormat::Ndjson)
        }
        other => Err(ApiError::unsupported_media_type(format!(
            "Content-Type {other:?} is not supported: use application/json (array or {{\"Records\":[...]}}) or application/x-ndjson"
        ))),
    }
}

#[derive(serde::Deserialize)]
struct RecordsFile<'a> {
    #[serde(borrow, rename = "Records")]
    records: Vec<&'a RawValue>,
}

/// Splits a body into the raw bytes of each event (unparsed; an NDJSON line that is not
/// JSON is still one event, rejected later with its index).
pub fn split_events(body: &[u8], format: BodyFormat) -> Result<Vec<&[u8]>, ApiError> {
    match format {
        BodyFormat::Ndjson => Ok(body
            .split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
            .collect()),
        BodyFormat::Json => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            let malformed = |e: serde_json::Error| {
                ApiError::bad_request(
                    "MalformedJson",
                    format!("request body is not valid JSON: {e}"),
                )
            };
            match first {
                Some(b'[') => {
                    let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(malformed)?;
                    Ok(items.into_iter().map(|r| r.get().as_bytes()).collect())
                }
                Some(b'{') => {
                    let file: RecordsFile<'_> = serde_json::from_slice(body).map_err(|e| {
                        ApiError::bad_request(
                            "MalformedJson",
                            format!("request body must be a JSON array of events or an object {{\"Records\":[...]}}: {e}"),
                        )
                    })?;
                    Ok(file
                        .records
                        .into_iter()
                        .map(|r| r.get().as_bytes())
                        .collect())
                }
                Some(_) => Err(ApiError::bad_request(
                    "MalformedJson",
                    "request body must be a JSON array of events or an object {\"Records\":[...]}",
                )),
                None => Err(ApiError::bad_request(
                    "MalformedJson",
                    "request body is empty",
                )),
            }
        }
    }
}

/// One event's answer.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct EventResult {
    /// Position of the event in the request (0-based).
    pub index: usize,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: &'static str,
    /// The event's id (accepted and duplicate events).
    #[serde(rename = "eventID", skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Rejection class (rejected events), serialized as its snake_case `code`.
    #[serde(
        rename = "code",
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_kind"
    )]
    pub kind: Option<cairn_model::RejectKind>,
    /// The offending field, when one field is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What was wrong (rejected events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn serialize_kind<S: serde::Serializer>(
    kind: &Option<cairn_model::RejectKind>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match kind {
        Some(kind) => serializer.serialize_str(kind.as_str()),
        None => serializer.serialize_none(),
    }
}

/// The whole answer.
#[derive(Debug, Serialize)]
pub struct PutEventsResponse {
    /// Events newly recorded.
    pub accepted: usize,
    /// Events already recorded with the same payload.
    pub duplicates: usize,
    /// Events refused.
    pub rejected: usize,
    /// One entry per event, in request order.
    pub results: Vec<EventResult>,
}

fn rejected(index: usize, rejection: Rejection) -> EventResult {
    EventResult {
        index,
        status: "rejected",
        event_id: None,
        kind: Some(rejection.kind),
        field: rejection.field,
        reason: Some(rejection.reason),
    }
}

/// Validates and prepares every event of a body.
pub fn prepare_body(
    body: Vec<u8>,
    gzip: bool,
    format: BodyFormat,
    account: &AccountId,
    limits: &crate::Limits,
) -> Result<Vec<Result<PreparedEvent, Rejection>>, ApiError> {
    let body = if gzip {
        gunzip_limited(&body, limits.max_request_bytes)?
    } else {
        body
    };
    let events = split_events(&body, format)?;
    if events.len() > limits.max_events_per_request {
        return Err(ApiError::too_large(format!(
            "request holds {} events, the limit is {}",
            events.len(),
            limits.max_events_per_request
        )));
    }
    if events.is_empty() {
        return Err(ApiError::bad_request("NoEvents", "request holds no events"));
    }
    let fresh: &dyn Fn() -> String = &fresh_event_id;
    let ctx = PrepareContext {
        account_id: account,
        fresh_event_id: fresh,
    };
    Ok(events
        .into_iter()
        .map(|raw| prepare_event(raw, &ctx))
        .collect())
}

/// Who signed the request, as the provenance of what it ingests.
pub(crate) fn provenance_of(principal: Option<&cairn_model::principal::Principal>) -> Provenance {
    principal.map_or(Provenance::Unknown, |p| Provenance::Principal {
        arn: p.arn.clone(),
        access_key_id: p.access_key_id.clone(),
    })
}

/// Records prepared events, ingested by `provenance`, and builds the per-event answer.
pub(crate) async fn record_and_answer(
    state: &AppState,
    prepared: Vec<Result<PreparedEvent, Rejection>>,
    provenance: Provenance,
) -> Result<Vec<EventResult>, ApiError> {
    let mut results = Vec::with_capacity(prepared.len());
    let mut to_record = Vec::new();
    let mut positions = Vec::new();
    for (index, slot) in prepared.into_iter().enumerate() {
        match slot {
            Ok(mut event) => {
                positions.push(index);
                event.provenance = provenance.clone();
                to_record.push(event);
                results.push(None);
            }
            Err(rejection) => {
                state.ingest.note_rejected(rejection.kind);
                results.push(Some(rejected(index, rejection)));
            }
        }
    }
    let ids: Vec<String> = to_record.iter().map(|e| e.event_id.clone()).collect();
    let outcomes = if to_record.is_empty() {
        Vec::new()
    } else {
        state.ingest.record(to_record).await?
    };
    for ((index, outcome), event_id) in positions.into_iter().zip(outcomes).zip(ids) {
        results[index] = Some(match outcome {
            RecordOutcome::Accepted | RecordOutcome::Duplicate => EventResult {
                index,
                status: if outcome == RecordOutcome::Accepted {
                    "accepted"
                } else {
                    "duplicate"
                },
                event_id: Some(event_id),
                kind: None,
                field: None,
                reason: None,
            },
            RecordOutcome::Conflict => {
                state
                    .ingest
                    .note_rejected(cairn_model::RejectKind::DuplicateEventId);
                rejected(
                    index,
                    Rejection::field(
                        cairn_model::RejectKind::DuplicateEventId,
                        "eventID",
                        format!("eventID {event_id:?} is already recorded with different content"),
                    ),
                )
            }
        });
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every slot answered"))
        .collect())
}

/// The handler.
pub async fn put_events(
    State(state): State<AppState>,
    principal: Option<axum::Extension<cairn_model::principal::Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let format = body_format(&headers)?;
    let raw = read_limited(body, state.limits.max_request_bytes).await?;
    let gzip = is_gzip(&headers, &raw)?;
    let account = state.ingest.account_id().clone();
    let limits = state.limits.clone();
    let prepared = state
        .gates
        .parse(move || prepare_body(raw, gzip, format, &account, &limits))
        .await??;
    let provenance = provenance_of(principal.as_deref());
    let results = record_and_answer(&state, prepared, provenance).await?;
    let count = |status| results.iter().filter(|r| r.status == status).count();
    let response = PutEventsResponse {
        accepted: count("accepted"),
        duplicates: count("duplicate"),
        rejected: count("rejected"),
        results,
    };
    let status = if response.rejected == response.results.len() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok((status, Json(response)).into_response())
}
