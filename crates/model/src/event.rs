//! Validation and preparation of one producer-sent event.
//!
//! The producer's bytes are the record: Cairn never drops, renames or reorders a field.
//! When it must add one (`eventID`, `recipientAccountId`, `eventCategory`,
//! `managementEvent`, `readOnly`), it appends the member before the closing brace of the
//! producer's object, so the stored record is the producer's bytes with a suffix of new
//! members — and byte-identical when the producer sent them all.

use crate::category::EventCategory;
use crate::classify::{derive_read_only, is_known_data_plane_call};
use crate::ids::AccountId;
use crate::time::{parse_utc, EpochMillis};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;

/// Largest event accepted, in bytes of the producer's JSON (CloudTrail's 256 KB).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Deepest nesting of objects and arrays an event may have, the event object itself counting
/// as 1. CloudTrail's records are shallow (11 levels at most in the real samples); the limit
/// keeps every accepted event within what every reader of it handles in full — metric filters
/// (512), the Lake's JSON functions (`serde_json`, 128) — so that no accepted event can hide
/// from a filter or a query by its depth.
pub const MAX_EVENT_DEPTH: usize = 100;

/// Longest `eventID` a producer may set.
pub const MAX_EVENT_ID_LEN: usize = 128;

/// The class of a rejection; low-cardinality, used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectKind {
    /// The bytes are not JSON.
    MalformedJson,
    /// The JSON is not an object.
    NotAnObject,
    /// A required field is absent (or `null`).
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A field has the right type but an invalid value.
    InvalidValue,
    /// A timestamp is not UTC ISO-8601.
    InvalidTimestamp,
    /// The event is larger than [`MAX_EVENT_BYTES`].
    TooLarge,
    /// The event nests deeper than [`MAX_EVENT_DEPTH`].
    TooDeep,
    /// The `eventID` was already recorded with other content.
    DuplicateEventId,
    /// A PutAuditEvents checksum did not match.
    InvalidChecksum,
}

impl RejectKind {
    /// snake_case name for metrics and API responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::InvalidValue => "invalid_value",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::TooLarge => "too_large",
            Self::TooDeep => "too_deep",
            Self::DuplicateEventId => "duplicate_event_id",
            Self::InvalidChecksum => "invalid_checksum",
        }
    }
}

/// Why one event was not accepted: which field, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The class of problem.
    pub kind: RejectKind,
    /// Dotted path of the offending field (`userIdentity.type`), if one field is to blame.
    pub field: Option<String>,
    /// Human-readable reason.
    pub reason: String,
}

impl Rejection {
    /// A rejection blamed on `field`.
    pub fn field(kind: RejectKind, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            kind,
            field: Some(field.into()),
            reason: reason.into(),
        }
    }

    /// A rejection of the whole event.
    pub fn whole(kind: RejectKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            field: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// SHA-256 of a producer's payload, truncated to 128 bits: what idempotent retries compare.
pub type ProducerDigest = [u8; 16];

/// The digest of a producer's payload bytes.
pub fn producer_digest(bytes: &[u8]) -> ProducerDigest {
    let full = Sha256::digest(bytes);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// An accepted event, ready for the write-ahead log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedEvent {
    /// The event's id (the producer's, or the one Cairn assigned).
    pub event_id: String,
    /// Whether Cairn assigned `event_id`.
    pub event_id_assigned: bool,
    /// The record as stored and delivered.
    pub record: Vec<u8>,
    /// Digest of the producer's payload, for idempotent retries.
    pub digest: ProducerDigest,
    /// The record's category (as given or derived).
    pub category: EventCategory,
    /// `eventTime`, parsed.
    pub event_time: EpochMillis,
    /// What trail selectors read, extracted once here (carried in the WAL payload).
    pub fields: crate::fields::SelectionFields,
    /// Who ingests it: set by the ingest edge from the signed request (`Unknown` until then).
    pub provenance: crate::provenance::Provenance,
    /// What Event history indexes, read here from the parsed record (carried in the WAL
    /// payload); `None` when only a parse of the stored record reads it right.
    pub view: Option<crate::view::EventView>,
}

/// What preparation needs to know about the deployment.
pub struct PrepareContext<'a> {
    /// The deployment's account id, for a missing `recipientAccountId`.
    pub account_id: &'a AccountId,
    /// Makes a fresh event id (UUID v4 in production).
    pub fresh_event_id: &'a dyn Fn() -> String,
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn wrong_type(field: &str, expected: &str, value: &Value) -> Rejection {
    Rejection::field(
        RejectKind::WrongType,
        field,
        format!("must be {expected}, got {}", type_name(value)),
    )
}

fn required<'m>(map: &'m Map<String, Value>, field: &str) -> Result<&'m Value, Rejection> {
    match map.get(field) {
        None | Some(Value::Null) => Err(Rejection::field(
            RejectKind::MissingField,
            field,
            "is required",
        )),
        Some(value) => Ok(value),
    }
}

fn required_str<'m>(map: &'m Map<String, Value>, field: &str) -> Result<&'m str, Rejection> {
    match required(map, field)? {
        Value::String(s) if s.is_empty() => Err(Rejection::field(
            RejectKind::InvalidValue,
            field,
            "must not be empty",
        )),
        Value::String(s) => Ok(s),
        other => Err(wrong_type(field, "a string", other)),
    }
}

fn optional_of(
    map: &Map<String, Value>,
    field: &str,
    expected: &str,
    ok: fn(&Value) -> bool,
) -> Result<(), Rejection> {
    match map.get(field) {
        Some(value) if !ok(value) => Err(wrong_type(field, expected, value)),
        _ => Ok(()),
    }
}

const OPTIONAL_STRINGS: &[&str] = &[
    "eventSource",
    "eventName",
    "sourceIPAddress",
    "userAgent",
    "errorCode",
    "errorMessage",
    "requestID",
    "eventType",
    "apiVersion",
    "recipientAccountId",
    "sharedEventID",
    "vpcEndpointId",
    "vpcEndpointAccountId",
    "sessionCredentialFromConsole",
];
const OPTIONAL_OBJECTS_OR_NULL: &[&str] = &["requestParameters", "responseElements"];
// `additionalEventData` is usually an object, but some services write a string (AWS's own
// Route 53 Domains example): any JSON value is kept as given.
const OPTIONAL_OBJECTS: &[&str] = &[
    "serviceEventDetails",
    "addendum",
    "edgeDeviceDetails",
    "tlsDetails",
    "eventContext",
];
const OPTIONAL_BOOLS: &[&str] = &["managementEvent", "readOnly"];

fn check_event_version(map: &Map<String, Value>) -> Result<(), Rejection> {
    let version = required_str(map, "eventVersion")?;
    let valid = version.split_once('.').is_some_and(|(major, minor)| {
        !major.is_empty()
            && !minor.is_empty()
            && major
                .bytes()
                .chain(minor.bytes())
                .all(|b| b.is_ascii_digit())
    });
    if valid {
        Ok(())
    } else {
        Err(Rejection::field(
            RejectKind::InvalidValue,
            "eventVersion",
            format!("must be \"<major>.<minor>\" like \"1.11\", got {version:?}"),
        ))
    }
}

fn check_region(map: &Map<String, Value>) -> Result<(), Rejection> {
    let region = required_str(map, "awsRegion")?;
    if region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Ok(())
    } else {
        Err(Rejection::field(
            RejectKind::InvalidValue,
            "awsRegion",
            format!("must be a region name of lower-case letters, digits and '-' like \"us-east-1\", got {region:?}"),
        ))
    }
}

fn check_event_time(map: &Map<String, Value>) -> Result<EpochMillis, Rejection> {
    let text = required_str(map, "eventTime")?;
    parse_utc(text).map_err(|e| {
        Rejection::field(
            RejectKind::InvalidTimestamp,
            "eventTime",
            format!("{e}, got {text:?}"),
        )
    })
}

fn check_event_id(map: &Map<String, Value>) -> Result<Option<&str>, Rejection> {
    match map.get("eventID") {
        None => Ok(None),
        Some(Value::String(id)) => {
            if id.is_empty() || id.len() > MAX_EVENT_ID_LEN || id.chars().any(char::is_control) {
                Err(Rejection::field(
                    RejectKind::InvalidValue,
                    "eventID",
                    format!("must be 1 to {MAX_EVENT_ID_LEN} bytes without control characters"),
                ))
            } else {
                Ok(Some(id))
            }
        }
        Some(other) => Err(wrong_type("eventID", "a string", other)),
    }
}

/// `recipientAccountId` names the account whose log files hold the event: 12 digits.
fn check_recipient(map: &Map<String, Value>) -> Result<(), Rejection> {
    match map.get("recipientAccountId") {
        Some(Value::String(id)) if id.parse::<AccountId>().is_err() => Err(Rejection::field(
            RejectKind::InvalidValue,
            "recipientAccountId",
            format!("must be a 12-digit account id, got {id:?}"),
        )),
        _ => Ok(()),
    }
}

fn check_resources(map: &Map<String, Value>) -> Result<(), Rejection> {
    let resources = match map.get("resources") {
        None | Some(Value::Null) => return Ok(()),
        Some(resources) => resources,
    };
    let Value::Array(items) = resources else {
        return Err(wrong_type("resources", "an array of objects", resources));
    };
    for (i, item) in items.iter().enumerate() {
        let Value::Object(resource) = item else {
            return Err(wrong_type(&format!("resources[{i}]"), "an object", item));
        };
        for key in ["ARN", "accountId", "type"] {
            if let Some(value) = resource.get(key) {
                if !value.is_string() && !value.is_null() {
                    return Err(wrong_type(
                        &format!("resources[{i}].{key}"),
                        "a string",
                        value,
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_optional_types(map: &Map<String, Value>) -> Result<(), Rejection> {
    optional_of(map, "userIdentity", "an object", |v| {
        v.is_object() || v.is_null()
    })?;
    for field in OPTIONAL_STRINGS {
        optional_of(map, field, "a string", |v| v.is_string() || v.is_null())?;
    }
    for field in OPTIONAL_OBJECTS_OR_NULL {
        optional_of(map, field, "an object or null", |v| {
            v.is_object() || v.is_null()
        })?;
    }
    for field in OPTIONAL_OBJECTS {
        optional_of(map, field, "an object", |v| v.is_object() || v.is_null())?;
    }
    for field in OPTIONAL_BOOLS {
        optional_of(map, field, "a boolean", |v| v.is_boolean() || v.is_null())?;
    }
    check_recipient(map)?;
    check_resources(map)
}

/// The top-level members of an object, in order, each as its raw JSON text.
struct Members<'a>(Vec<(std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(access.size_hint().unwrap_or(24));
                while let Some(member) = access.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// Members Cairn reads; every other member is kept in the record but never parsed.
const READ_MEMBERS: &[&str] = &[
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "eventID",
    "eventCategory",
    "resources",
    "insightDetails",
    "eventData",
];
/// Members whose content Cairn never reads: only their JSON type is checked.
const TYPE_ONLY_MEMBERS: &[&str] = &[
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "serviceEventDetails",
    "addendum",
    "edgeDeviceDetails",
    "tlsDetails",
    "eventContext",
];

/// Parses the event's top level once: detects members given twice, parses the members Cairn
/// reads, and stands in an empty value of the right JSON type for members only type-checked,
/// so that large request and response bodies are scanned, never built into a tree.
/// The nesting depth reached, if it exceeds `limit` (strings skipped; malformed JSON is left to
/// the parser).
fn deeper_than(raw: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in raw {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return Some(depth);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn parse_object(raw: &[u8]) -> Result<Map<String, Value>, Rejection> {
    if raw.len() > MAX_EVENT_BYTES {
        return Err(Rejection::whole(
            RejectKind::TooLarge,
            format!(
                "event is {} bytes, the limit is {MAX_EVENT_BYTES}",
                raw.len()
            ),
        ));
    }
    if let Some(depth) = deeper_than(raw, MAX_EVENT_DEPTH) {
        return Err(Rejection::whole(
            RejectKind::TooDeep,
            format!(
                "event nests objects and arrays {depth} levels deep or more, the limit is {MAX_EVENT_DEPTH}"
            ),
        ));
    }
    if raw.trim_ascii_start().first() != Some(&b'{') {
        return match serde_json::from_slice::<Value>(raw) {
            Ok(other) => Err(Rejection::whole(
                RejectKind::NotAnObject,
                format!("an event must be a JSON object, got {}", type_name(&other)),
            )),
            Err(e) => Err(Rejection::whole(
                RejectKind::MalformedJson,
                format!("malformed JSON: {e}"),
            )),
        };
    }
    let members: Members<'_> = serde_json::from_slice(raw)
        .map_err(|e| Rejection::whole(RejectKind::MalformedJson, format!("malformed JSON: {e}")))?;
    let mut names: Vec<&str> = members.0.iter().map(|(k, _)| k.as_ref()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Rejection::whole(
            RejectKind::MalformedJson,
            format!(
                "event is ambiguous: member {:?} appears more than once",
                pair[0]
            ),
        ));
    }
    let mut map = Map::new();
    for (name, value) in &members.0 {
        let name = name.as_ref();
        let text = value.get();
        let known_scalar = OPTIONAL_STRINGS.contains(&name) || OPTIONAL_BOOLS.contains(&name);
        let parsed = if TYPE_ONLY_MEMBERS.contains(&name) {
            match text.as_bytes().first() {
                Some(b'{') => Value::Object(Map::new()),
                Some(b'n') => Value::Null,
                _ => serde_json::from_str(text).unwrap_or(Value::Null),
            }
        } else if READ_MEMBERS.contains(&name) || known_scalar {
            serde_json::from_str(text).map_err(|e| {
                Rejection::field(
                    RejectKind::MalformedJson,
                    name,
                    format!("malformed JSON: {e}"),
                )
            })?
        } else {
            continue;
        };
        map.insert(name.to_owned(), parsed);
    }
    Ok(map)
}

/// Validates one event's producer bytes and prepares the record to store.
pub fn prepare_event(raw: &[u8], ctx: &PrepareContext<'_>) -> Result<PreparedEvent, Rejection> {
    let map = parse_object(raw)?;
    check_event_version(&map)?;
    let is_insight = map.get("eventType").and_then(Value::as_str) == Some("AwsCloudTrailInsight");
    let event_time = check_event_time(&map)?;
    check_region(&map)?;
    let (event_source, event_name) = if is_insight {
        let details = match required(&map, "insightDetails")? {
            Value::Object(details) => details,
            other => return Err(wrong_type("insightDetails", "an object", other)),
        };
        let source =
            required_str(details, "eventSource").map_err(|r| nested("insightDetails", r))?;
        let name = required_str(details, "eventName").map_err(|r| nested("insightDetails", r))?;
        required_str(details, "state").map_err(|r| nested("insightDetails", r))?;
        (source, name)
    } else {
        match required(&map, "userIdentity")? {
            Value::Object(_) => {}
            other => return Err(wrong_type("userIdentity", "an object", other)),
        }
        (
            required_str(&map, "eventSource")?,
            required_str(&map, "eventName")?,
        )
    };
    check_optional_types(&map)?;
    let given_id = check_event_id(&map)?;

    let category = match map.get("eventCategory") {
        Some(Value::String(text)) => text.parse::<EventCategory>().map_err(|()| {
            Rejection::field(
                RejectKind::InvalidValue,
                "eventCategory",
                format!(
                    "must be one of {}, got {text:?}",
                    EventCategory::ALL.map(EventCategory::as_str).join(", ")
                ),
            )
        })?,
        Some(other) => return Err(wrong_type("eventCategory", "a string", other)),
        None => derive_category(&map, is_insight, event_source, event_name),
    };

    let mut suffix = String::new();
    let event_id = match given_id {
        Some(id) => id.to_owned(),
        None => {
            let id = (ctx.fresh_event_id)();
            append_member(&mut suffix, "eventID", &Value::String(id.clone()));
            id
        }
    };
    // A member is appended only when its key is absent: a producer's `null` stays, and the
    // record never holds the same key twice.
    if !map.contains_key("recipientAccountId") {
        append_member(
            &mut suffix,
            "recipientAccountId",
            &Value::String(ctx.account_id.to_string()),
        );
    }
    if !map.contains_key("eventCategory") {
        append_member(
            &mut suffix,
            "eventCategory",
            &Value::String(category.as_str().to_owned()),
        );
    }
    if matches!(category, EventCategory::Management | EventCategory::Data) {
        if !map.contains_key("managementEvent") {
            append_member(
                &mut suffix,
                "managementEvent",
                &Value::Bool(category == EventCategory::Management),
            );
        }
        if !map.contains_key("readOnly") {
            append_member(
                &mut suffix,
                "readOnly",
                &Value::Bool(derive_read_only(event_source, event_name)),
            );
        }
    }

    let record = append_to_object(raw, &suffix);
    let mut fields = crate::fields::SelectionFields::from_map(&map);
    fields.category = category.as_str().to_owned();
    if !map.contains_key("recipientAccountId") {
        fields.account = Some(ctx.account_id.to_string());
    }
    if !map.contains_key("readOnly")
        && matches!(category, EventCategory::Management | EventCategory::Data)
    {
        fields.read_only = Some(derive_read_only(event_source, event_name));
    }
    let view = crate::view::EventView::from_parsed(
        &map,
        &event_id,
        event_time,
        category,
        matches!(category, EventCategory::Management | EventCategory::Data)
            .then(|| derive_read_only(event_source, event_name)),
    );
    Ok(PreparedEvent {
        event_id_assigned: given_id.is_none(),
        view,
        event_id,
        record,
        digest: producer_digest(raw),
        category,
        event_time,
        fields,
        provenance: crate::provenance::Provenance::Unknown,
    })
}

fn nested(parent: &str, mut rejection: Rejection) -> Rejection {
    rejection.field = rejection.field.map(|f| format!("{parent}.{f}"));
    rejection
}

/// The selection fields of a record as ingest derives them (`eventCategory` and `readOnly`
/// filled in when the record lacks them), for records that do not come through ingest: imports
/// of existing logs, whose older records (before eventVersion 1.07) have no `eventCategory`.
pub fn derived_fields(map: &Map<String, Value>) -> crate::fields::SelectionFields {
    let mut fields = crate::fields::SelectionFields::from_map(map);
    let is_insight = map.get("eventType").and_then(Value::as_str) == Some("AwsCloudTrailInsight");
    let source = map.get("eventSource").and_then(Value::as_str).unwrap_or("");
    let name = map.get("eventName").and_then(Value::as_str).unwrap_or("");
    let category = match map.get("eventCategory").and_then(Value::as_str) {
        Some(text) => text.parse::<EventCategory>().ok(),
        None => {
            let derived = derive_category(map, is_insight, source, name);
            fields.category = derived.as_str().to_owned();
            Some(derived)
        }
    };
    if fields.read_only.is_none()
        && matches!(
            category,
            Some(EventCategory::Management | EventCategory::Data)
        )
    {
        fields.read_only = Some(derive_read_only(source, name));
    }
    fields
}

fn derive_category(
    map: &Map<String, Value>,
    is_insight: bool,
    event_source: &str,
    event_name: &str,
) -> EventCategory {
    if is_insight {
        return EventCategory::Insight;
    }
    if map.get("eventType").and_then(Value::as_str) == Some("AwsVpceEvent") {
        return EventCategory::NetworkActivity;
    }
    match map.get("managementEvent").and_then(Value::as_bool) {
        Some(true) => EventCategory::Management,
        Some(false) => EventCategory::Data,
        None if is_known_data_plane_call(event_source, event_name) => EventCategory::Data,
        None => EventCategory::Management,
    }
}

/// Appends `,"name":value` to `suffix`.
fn append_member(suffix: &mut String, name: &str, value: &Value) {
    suffix.push(',');
    suffix.push_str(&Value::String(name.to_owned()).to_string());
    suffix.push(':');
    suffix.push_str(&value.to_string());
}

/// Inserts `suffix` (members, each starting with a comma) before the closing brace of the
/// JSON object in `raw`. `raw` must be a validated, non-empty JSON object.
fn append_to_object(raw: &[u8], suffix: &str) -> Vec<u8> {
    if suffix.is_empty() {
        return raw.to_vec();
    }
    let end = raw.iter().rposition(|&b| b == b'}').unwrap_or(raw.len());
    let mut out = Vec::with_capacity(raw.len() + suffix.len());
    out.extend_from_slice(&raw[..end]);
    out.extend_from_slice(suffix.as_bytes());
    out.extend_from_slice(&raw[end..]);
    out
}

#[cfg(test)]
#[path = "event/tests.rs"]
mod tests;
