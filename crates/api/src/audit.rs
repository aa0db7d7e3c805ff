//! `POST /PutAuditEvents?channelArn=...`: the CloudTrail Lake `PutAuditEvents` operation
//! (REST-JSON), so producers written for CloudTrail Lake work by changing the endpoint URL.
//!
//! Limits as AWS: 1 to 100 entries, a 1 MB body, entry ids of 1-128 `[-_A-Za-z0-9]`,
//! checksums verified when given. Cairn does not manage channels (yet): any channel id is
//! accepted and recorded in `metadata.channelARN`; a bare id is expanded to
//! `arn:aws:cloudtrail:<region>:<account>:channel/<id>`, and an ARN naming another account is
//! refused with `ChannelInsufficientPermission`.

use crate::body::{gunzip_limited, is_gzip, read_limited};
use crate::error::ApiError;
use crate::ingest::record_and_answer;
use crate::{fresh_event_id, AppState};
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use base64::Engine;
use cairn_model::audit::{prepare_audit_event, AuditContext};
use cairn_model::{RejectKind, Rejection};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Most entries in one request.
pub const MAX_AUDIT_EVENTS: usize = 100;
/// Largest request body.
pub const MAX_AUDIT_BODY: usize = 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditRequest {
    #[serde(rename = "auditEvents")]
    audit_events: Vec<AuditEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditEntry {
    id: String,
    #[serde(rename = "eventData")]
    event_data: String,
    #[serde(rename = "eventDataChecksum", default)]
    event_data_checksum: Option<String>,
}

/// One accepted entry.
#[derive(Debug, Serialize)]
pub struct Successful {
    /// The caller's entry id.
    pub id: String,
    /// The eventID Cairn recorded.
    #[serde(rename = "eventID")]
    pub event_id: String,
}

/// One refused entry.
#[derive(Debug, Serialize)]
pub struct Failed {
    /// The caller's entry id.
    pub id: String,
    /// AWS's per-event error code.
    #[serde(rename = "errorCode")]
    pub error_code: &'static str,
    /// What was wrong.
    #[serde(rename = "errorMessage")]
    pub error_message: String,
}

/// The response: both arrays always present.
#[derive(Debug, Serialize)]
pub struct PutAuditEventsResponse {
    /// Accepted entries.
    pub successful: Vec<Successful>,
    /// Refused entries.
    pub failed: Vec<Failed>,
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("ValidationException", message)
}

/// The per-event error code AWS uses for a rejection.
pub fn error_code(rejection: &Rejection) -> &'static str {
    match (rejection.kind, rejection.field.as_deref()) {
        (_, Some("recipientAccountId")) if rejection.kind == RejectKind::InvalidValue => {
            "InvalidRecipient"
        }
        (RejectKind::MissingField, _) => "FieldNotFound",
        (RejectKind::TooLarge, _) => "FieldTooLong",
        (RejectKind::InvalidChecksum, _) => "InvalidChecksum",
        _ => "InvalidData",
    }
}

fn channel_arn(query: Option<&str>, state: &AppState) -> Result<String, ApiError> {
    let channel = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "channelArn")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| {
            ApiError::bad_request(
                "InvalidChannelARN",
                "query parameter channelArn is required",
            )
        })?;
    let account = state.ingest.account_id();
    if let Some(rest) = channel.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let valid = parts.len() == 5
            && parts[1] == "cloudtrail"
            && parts[4]
                .strip_prefix("channel/")
                .is_some_and(|id| !id.is_empty());
        if !valid {
            return Err(ApiError::bad_request(
                "InvalidChannelARN",
                format!("channelArn {channel:?} must look like arn:aws:cloudtrail:<region>:<account>:channel/<id>"),
            ));
        }
        if parts[3] != account.as_str() {
            return Err(ApiError {
                status: StatusCode::FORBIDDEN,
                code: "ChannelInsufficientPermission",
                message: format!(
                    "channel {channel} belongs to account {}, not {account}",
                    parts[3]
                ),
            });
        }
        Ok(channel)
    } else if !channel.is_empty()
        && channel.len() <= 128
        && channel
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(format!(
            "arn:aws:cloudtrail:{}:{account}:channel/{channel}",
            state.ingest.region()
        ))
    } else {
        Err(ApiError::bad_request(
            "InvalidChannelARN",
            format!("channelArn {channel:?} is neither an ARN nor a channel id"),
        ))
    }
}

/// The handler.
pub async fn put_audit_events(
    State(state): State<AppState>,
    principal: Option<axum::Extension<cairn_model::principal::Principal>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PutAuditEventsResponse>, ApiError> {
    let channel = channel_arn(query.as_deref(), &state)?;
    let raw = read_limited(body, MAX_AUDIT_BODY).await?;
    let raw = if is_gzip(&headers, &raw)? {
        gunzip_limited(&raw, MAX_AUDIT_BODY)?
    } else {
        raw
    };
    let request: AuditRequest = serde_json::from_slice(&raw)
        .map_err(|e| validation(format!("body must be {{\"auditEvents\":[{{\"id\",\"eventData\",\"eventDataChecksum\"?}}]}}: {e}")))?;
    let count = request.audit_events.len();
    if !(1..=MAX_AUDIT_EVENTS).contains(&count) {
        return Err(validation(format!(
            "auditEvents must hold 1 to {MAX_AUDIT_EVENTS} entries, got {count}"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for entry in &request.audit_events {
        let valid_id = (1..=128).contains(&entry.id.len())
            && entry
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_id {
            return Err(validation(format!(
                "auditEvents id {:?} must be 1-128 characters of [-_A-Za-z0-9]",
                entry.id
            )));
        }
        if !seen.insert(entry.id.as_str()) {
            return Err(ApiError::bad_request(
                "DuplicatedAuditEventId",
                format!("id {:?} appears more than once", entry.id),
            ));
        }
    }
    let account = state.ingest.account_id().clone();
    let region = state.ingest.region().to_owned();
    let ingestion_time = state.ingest.now_millis();
    let ids: Vec<String> = request.audit_events.iter().map(|e| e.id.clone()).collect();
    let prepared = state.gates.parse(move || {
        let fresh: &dyn Fn() -> String = &fresh_event_id;
        let ctx = AuditContext { account_id: &account, region: &region, channel_arn: &channel, ingestion_time, fresh_event_id: fresh };
        request
            .audit_events
            .into_iter()
            .map(|entry| {
                if let Some(checksum) = &entry.event_data_checksum {
                    let actual = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(entry.event_data.as_bytes()));
                    if &actual != checksum {
                        return Err(Rejection::field(
                            RejectKind::InvalidChecksum,
                            "eventDataChecksum",
                            format!("checksum {checksum:?} does not match base64(sha256(eventData)) {actual:?}"),
                        ));
                    }
                }
                prepare_audit_event(&entry.event_data, &ctx)
            })
            .collect::<Vec<_>>()
    })
    .await?;
    let provenance = crate::ingest::provenance_of(principal.as_deref());
    let results = record_and_answer(&state, prepared, provenance).await?;
    let mut response = PutAuditEventsResponse {
        successful: Vec::new(),
        failed: Vec::new(),
    };
    for (result, id) in results.into_iter().zip(ids) {
        match result.event_id {
            Some(event_id) if result.status != "rejected" => {
                response.successful.push(Successful { id, event_id })
            }
            _ => {
                let rejection = Rejection {
                    kind: result.kind.unwrap_or(RejectKind::InvalidValue),
                    field: result.field,
                    reason: result.reason.unwrap_or_default(),
                };
                response.failed.push(Failed {
                    id,
                    error_code: error_code(&rejection),
                    error_message: rejection.to_string(),
                });
            }
        }
    }
    Ok(Json(response))
}
