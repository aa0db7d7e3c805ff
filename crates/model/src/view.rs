//! The typed view of a stored record: the fields Cairn reads to index, classify and route.

use crate::category::EventCategory;
use crate::time::{parse_utc, EpochMillis};
use serde_json::{Map, Value};

/// One entry of `resources[]`, as LookupEvents reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    /// `AWS::<Service>::<Type>`, if given.
    pub resource_type: Option<String>,
    /// The resource's ARN (or name, if no ARN was given).
    pub name: String,
}

/// What Cairn reads from a stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventView {
    /// `eventID`.
    pub event_id: String,
    /// `eventTime`, parsed.
    pub event_time: EpochMillis,
    /// `eventSource` (from `insightDetails` for Insights, `eventData` for integration events).
    pub event_source: String,
    /// `eventName` (same sources as `event_source`).
    pub event_name: String,
    /// `awsRegion`.
    pub aws_region: String,
    /// `readOnly`, if the record has it.
    pub read_only: Option<bool>,
    /// `eventCategory`.
    pub category: EventCategory,
    /// The caller's name, see [`username`].
    pub username: Option<String>,
    /// `userIdentity.accessKeyId`, if non-empty.
    pub access_key_id: Option<String>,
    /// `resources[]`.
    pub resources: Vec<ResourceRef>,
}

/// Why a stored record has no view (it was validated at ingest, so this means corruption or
/// a record written by something else).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored record is not a valid event: {0}")]
pub struct ViewError(pub String);

fn str_of<'m>(map: &'m Map<String, Value>, key: &str) -> Option<&'m str> {
    map.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The caller's name as LookupEvents' `Username` shows it: `userIdentity.userName`; for role
/// sessions and federated users the session name (last segment of the ARN); else the session
/// issuer's user name; `root` for the root identity; else `principalId`; else `invokedBy`.
pub fn username(identity: &Map<String, Value>) -> Option<String> {
    if let Some(name) = str_of(identity, "userName") {
        return Some(name.to_owned());
    }
    let kind = str_of(identity, "type");
    if matches!(kind, Some("AssumedRole" | "FederatedUser")) {
        if let Some(session) = str_of(identity, "arn").and_then(|arn| arn.rsplit('/').next()) {
            return Some(session.to_owned());
        }
    }
    let issuer_name = identity
        .get("sessionContext")
        .and_then(|c| c.get("sessionIssuer"))
        .and_then(Value::as_object)
        .and_then(|issuer| str_of(issuer, "userName"));
    if let Some(name) = issuer_name {
        return Some(name.to_owned());
    }
    if kind == Some("Root") {
        return Some("root".to_owned());
    }
    str_of(identity, "principalId").or_else(|| str_of(identity, "invokedBy")).map(str::to_owned)
}

impl EventView {
    /// Reads the view from a stored record's bytes.
    pub fn from_record(record: &[u8]) -> Result<Self, ViewError> {
        match serde_json::from_slice::<Value>(record) {
            Ok(Value::Object(map)) => Self::from_map(&map),
            Ok(_) => Err(ViewError("not a JSON object".to_owned())),
            Err(e) => Err(ViewError(e.to_string())),
        }
    }

    /// Reads the view from a parsed record.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self, ViewError> {
        let missing = |field: &str| ViewError(format!("{field} is missing"));
        let category = str_of(map, "eventCategory")
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| missing("eventCategory"))?;
        let empty = Map::new();
        // Where the subject's source, name and identity live.
        let subject = match category {
            EventCategory::Insight => map.get("insightDetails").and_then(Value::as_object),
            EventCategory::ActivityAuditLog => map.get("eventData").and_then(Value::as_object),
            _ => Some(map),
        }
        .unwrap_or(&empty);
        let identity = subject.get("userIdentity").and_then(Value::as_object).unwrap_or(&empty);
        let event_time_text = str_of(map, "eventTime").ok_or_else(|| missing("eventTime"))?;
        let resources = map
            .get("resources")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_object)
                    .filter_map(|r| {
                        Some(ResourceRef {
                            resource_type: str_of(r, "type").map(str::to_owned),
                            name: str_of(r, "ARN").or_else(|| str_of(r, "name"))?.to_owned(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            event_id: str_of(map, "eventID").ok_or_else(|| missing("eventID"))?.to_owned(),
            event_time: parse_utc(event_time_text).map_err(|e| ViewError(e.to_string()))?,
            event_source: str_of(subject, "eventSource").unwrap_or_default().to_owned(),
            event_name: str_of(subject, "eventName").unwrap_or_default().to_owned(),
            aws_region: str_of(map, "awsRegion").ok_or_else(|| missing("awsRegion"))?.to_owned(),
            read_only: map.get("readOnly").and_then(Value::as_bool),
            category,
            username: username(identity),
            access_key_id: str_of(identity, "accessKeyId").map(str::to_owned),
            resources,
        })
    }
}
