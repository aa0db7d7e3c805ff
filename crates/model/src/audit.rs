//! Events received through the CloudTrail Lake `PutAuditEvents` shape.
//!
//! `eventData` is either a full CloudTrail record (it has `eventVersion`), prepared exactly
//! like an event sent to `/v1/events`, or an integration event (`version`, `UID`, ...) which is
//! wrapped as CloudTrail Lake stores it:
//!
//! ```text
//! {"eventVersion":"1.11","eventCategory":"ActivityAuditLog","eventType":"ActivityLog",
//!  "eventID":"<uuid>","eventTime":"<eventData.eventTime>","awsRegion":"<region>",
//!  "recipientAccountId":"<account>","metadata":{"ingestionTime":"<now>","channelARN":"<arn>"},
//!  "eventData":<the producer's eventData bytes, unchanged>}
//! ```
//!
//! The wrapped record's `eventID` is a name-based UUID (v5) of the channel and the event's
//! `UID`, so that a retried event gets the same id and is accepted once.

use crate::category::EventCategory;
use crate::event::{
    prepare_event, producer_digest, PrepareContext, PreparedEvent, RejectKind, Rejection,
};
use crate::ids::AccountId;
use crate::time::{format_utc_seconds, parse_utc, EpochMillis};
use serde_json::{Map, Value};

/// Namespace of the name-based ids of integration events.
const INTEGRATION_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6361_6972_6e00_4000_8000_6175_6469_7400);

/// What wrapping an integration event needs.
pub struct AuditContext<'a> {
    /// The deployment's account id: integration events must name it as recipient.
    pub account_id: &'a AccountId,
    /// Region the events are recorded in.
    pub region: &'a str,
    /// The channel the events arrived on.
    pub channel_arn: &'a str,
    /// When the request arrived.
    pub ingestion_time: EpochMillis,
    /// Makes a fresh event id, for full CloudTrail records without one.
    pub fresh_event_id: &'a dyn Fn() -> String,
}

fn string_field<'m>(
    map: &'m Map<String, Value>,
    path: &str,
    name: &str,
    max: usize,
) -> Result<&'m str, Rejection> {
    let field = if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    };
    match map.get(name) {
        None | Some(Value::Null) => Err(Rejection::field(
            RejectKind::MissingField,
            field,
            "is required",
        )),
        Some(Value::String(s)) if s.is_empty() => Err(Rejection::field(
            RejectKind::InvalidValue,
            field,
            "must not be empty",
        )),
        Some(Value::String(s)) if s.len() > max => Err(Rejection::field(
            RejectKind::TooLarge,
            field,
            format!("is {} bytes, the limit is {max}", s.len()),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(Rejection::field(
            RejectKind::WrongType,
            field,
            format!(
                "must be a string, got {}",
                if other.is_number() {
                    "number"
                } else {
                    "non-string"
                }
            ),
        )),
    }
}

fn check_object_size(map: &Map<String, Value>, name: &str, max: usize) -> Result<(), Rejection> {
    if let Some(value) = map.get(name) {
        if !value.is_object() && !value.is_null() {
            return Err(Rejection::field(
                RejectKind::WrongType,
                name,
                "must be an object or null",
            ));
        }
        let size = value.to_string().len();
        if size > max {
            return Err(Rejection::field(
                RejectKind::TooLarge,
                name,
                format!("is {size} bytes, the limit is {max}"),
            ));
        }
    }
    Ok(())
}

/// Validates one `eventData` document and prepares the record to store.
///
/// The returned digest is that of `event_data` itself, so a retry of the same entry is
/// recognised as such.
pub fn prepare_audit_event(
    event_data: &str,
    ctx: &AuditContext<'_>,
) -> Result<PreparedEvent, Rejection> {
    let value: Value = serde_json::from_str(event_data).map_err(|e| {
        Rejection::field(
            RejectKind::MalformedJson,
            "eventData",
            format!("malformed JSON: {e}"),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(Rejection::field(
            RejectKind::NotAnObject,
            "eventData",
            "must be a JSON object",
        ));
    };
    if map.contains_key("eventVersion") {
        let prepare = PrepareContext {
            account_id: ctx.account_id,
            fresh_event_id: ctx.fresh_event_id,
        };
        return prepare_event(event_data.as_bytes(), &prepare);
    }
    string_field(&map, "", "version", 256)?;
    let identity = match map.get("userIdentity") {
        Some(Value::Object(identity)) => identity,
        None | Some(Value::Null) => {
            return Err(Rejection::field(
                RejectKind::MissingField,
                "userIdentity",
                "is required",
            ))
        }
        Some(_) => {
            return Err(Rejection::field(
                RejectKind::WrongType,
                "userIdentity",
                "must be an object",
            ))
        }
    };
    string_field(identity, "userIdentity", "type", 128)?;
    string_field(identity, "userIdentity", "principalId", 1024)?;
    string_field(&map, "", "eventSource", 1024)?;
    string_field(&map, "", "eventName", 1024)?;
    let event_time_text = string_field(&map, "", "eventTime", 1024)?;
    let event_time = parse_utc(event_time_text).map_err(|e| {
        Rejection::field(
            RejectKind::InvalidTimestamp,
            "eventTime",
            format!("{e}, got {event_time_text:?}"),
        )
    })?;
    let uid = string_field(&map, "", "UID", 1024)?;
    let recipient = string_field(&map, "", "recipientAccountId", 1024)?;
    if recipient != ctx.account_id.as_str() {
        return Err(Rejection::field(
            RejectKind::InvalidValue,
            "recipientAccountId",
            format!(
                "must be the channel owner's account {}, got {recipient:?}",
                ctx.account_id
            ),
        ));
    }
    for (name, max) in [
        ("errorCode", 256),
        ("errorMessage", 256),
        ("userAgent", 1024),
        ("sourceIPAddress", 1024),
    ] {
        if map.get(name).is_some_and(|v| !v.is_null()) {
            string_field(&map, "", name, max)?;
        }
    }
    check_object_size(&map, "requestParameters", 100 * 1024)?;
    check_object_size(&map, "responseElements", 100 * 1024)?;
    check_object_size(&map, "additionalEventData", 28 * 1024)?;

    let name = format!("{}\n{uid}", ctx.channel_arn);
    let event_id = uuid::Uuid::new_v5(&INTEGRATION_NAMESPACE, name.as_bytes()).to_string();
    let header = serde_json::json!({
        "eventID": event_id,
        "eventTime": format_utc_seconds(event_time),
        "awsRegion": ctx.region,
        "recipientAccountId": ctx.account_id.as_str(),
        "ingestionTime": format_utc_seconds(ctx.ingestion_time),
        "channelARN": ctx.channel_arn,
    });
    let s = |k: &str| header[k].to_string();
    let record = format!(
        "{{\"eventVersion\":\"1.11\",\"eventCategory\":\"ActivityAuditLog\",\"eventType\":\"ActivityLog\",\
         \"eventID\":{},\"eventTime\":{},\"awsRegion\":{},\"recipientAccountId\":{},\
         \"metadata\":{{\"ingestionTime\":{},\"channelARN\":{}}},\"eventData\":{}}}",
        s("eventID"),
        s("eventTime"),
        s("awsRegion"),
        s("recipientAccountId"),
        s("ingestionTime"),
        s("channelARN"),
        event_data.trim(),
    );
    let wrapper: serde_json::Map<String, Value> = serde_json::from_str(&record)
        .map_err(|e| Rejection::whole(RejectKind::MalformedJson, e.to_string()))?;
    Ok(PreparedEvent {
        fields: crate::fields::SelectionFields::from_map(&wrapper),
        view: crate::view::EventView::from_parsed(
            &wrapper,
            &event_id,
            event_time,
            EventCategory::ActivityAuditLog,
            None,
        ),
        event_id,
        event_id_assigned: true,
        record: record.into_bytes(),
        digest: producer_digest(event_data.as_bytes()),
        category: EventCategory::ActivityAuditLog,
        event_time,
        provenance: crate::provenance::Provenance::Unknown,
    })
}
