//! The typed view of a stored record: the fields Cairn reads to index, classify and route.

use crate::category::EventCategory;
use crate::time::{parse_utc, EpochMillis};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;

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
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `resources[]` as LookupEvents reports them: each object's type and ARN (or name); other
/// shapes have none.
fn resources_of(resources: Option<&Value>) -> Vec<ResourceRef> {
    match resources {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_object)
            .filter_map(|r| {
                Some(ResourceRef {
                    resource_type: str_of(r, "type").map(str::to_owned),
                    name: str_of(r, "ARN").or_else(|| str_of(r, "name"))?.to_owned(),
                })
            })
            .collect(),
        _ => Vec::new(),
    }
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
    str_of(identity, "principalId")
        .or_else(|| str_of(identity, "invokedBy"))
        .map(str::to_owned)
}

/// The fields of a record the view reads, deserialized without building a tree of the rest.
#[derive(serde::Deserialize)]
struct RawRecord<'a> {
    #[serde(borrow, rename = "eventID")]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventTime")]
    event_time: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventSource")]
    event_source: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventName")]
    event_name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "awsRegion")]
    aws_region: Option<Cow<'a, str>>,
    #[serde(rename = "readOnly")]
    read_only: Option<bool>,
    #[serde(borrow, rename = "eventCategory")]
    event_category: Option<Cow<'a, str>>,
    #[serde(rename = "userIdentity")]
    user_identity: Option<Map<String, Value>>,
    // Read leniently (any JSON type): only their well-formed parts matter.
    resources: Option<Value>,
    #[serde(borrow, rename = "insightDetails")]
    insight_details: Option<&'a RawValue>,
    #[serde(borrow, rename = "eventData")]
    event_data: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct RawSubject<'a> {
    #[serde(borrow, rename = "eventSource")]
    event_source: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventName")]
    event_name: Option<Cow<'a, str>>,
    #[serde(rename = "userIdentity")]
    user_identity: Option<Map<String, Value>>,
}

fn nested<'a>(raw: Option<&'a RawValue>) -> Option<RawSubject<'a>> {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
}

fn non_empty(text: Option<Cow<'_, str>>) -> Option<String> {
    text.filter(|t| !t.is_empty()).map(Cow::into_owned)
}

impl EventView {
    /// Reads the view from a stored record's bytes.
    pub fn from_record(record: &[u8]) -> Result<Self, ViewError> {
        let raw: RawRecord<'_> =
            serde_json::from_slice(record).map_err(|e| ViewError(e.to_string()))?;
        let missing = |field: &str| ViewError(format!("{field} is missing"));
        let category: EventCategory = raw
            .event_category
            .as_deref()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| missing("eventCategory"))?;
        let subject = match category {
            EventCategory::Insight => nested(raw.insight_details),
            EventCategory::ActivityAuditLog => nested(raw.event_data),
            _ => Some(RawSubject {
                event_source: raw.event_source,
                event_name: raw.event_name,
                user_identity: raw.user_identity,
            }),
        };
        let (event_source, event_name, identity) = match subject {
            Some(s) => (
                non_empty(s.event_source),
                non_empty(s.event_name),
                s.user_identity.unwrap_or_default(),
            ),
            None => (None, None, Map::new()),
        };
        let event_time_text = raw.event_time.ok_or_else(|| missing("eventTime"))?;
        let resources = resources_of(raw.resources.as_ref());
        Ok(Self {
            event_id: non_empty(raw.event_id).ok_or_else(|| missing("eventID"))?,
            event_time: parse_utc(&event_time_text).map_err(|e| ViewError(e.to_string()))?,
            event_source: event_source.unwrap_or_default(),
            event_name: event_name.unwrap_or_default(),
            aws_region: non_empty(raw.aws_region).ok_or_else(|| missing("awsRegion"))?,
            read_only: raw.read_only,
            category,
            username: username(&identity),
            access_key_id: str_of(&identity, "accessKeyId").map(str::to_owned),
            resources,
        })
    }
}

/// `map[key]` if it is absent, `null` or a string: what a field read as an optional string
/// accepts (`None` in the outer option: anything else, which the parse would refuse).
fn optional_str<'m>(map: &'m Map<String, Value>, key: &str) -> Option<Option<&'m str>> {
    match map.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(text)) => Some(Some(text)),
        Some(_) => None,
    }
}

/// `map[key]` if it is absent, `null` or an object (as [`optional_str`]).
fn optional_object<'m>(
    map: &'m Map<String, Value>,
    key: &str,
) -> Option<Option<&'m Map<String, Value>>> {
    match map.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(Value::Object(object)) => Some(Some(object)),
        Some(_) => None,
    }
}

fn owned_non_empty(text: Option<&str>) -> Option<String> {
    text.filter(|t| !t.is_empty()).map(str::to_owned)
}

impl EventView {
    /// The view of the record ingest stores, from the producer's record as ingest parsed it
    /// (`map`) and what ingest adds when absent (the eventID, the category, `readOnly`), so
    /// that the indexer need not parse the record again. `None` when the record holds
    /// anything [`EventView::from_record`] would read differently or refuse (a member of an
    /// unexpected type): the indexer then reads the stored record itself.
    pub fn from_parsed(
        map: &Map<String, Value>,
        event_id: &str,
        event_time: EpochMillis,
        category: EventCategory,
        read_only: Option<bool>,
    ) -> Option<Self> {
        // The members `from_record` reads by type: each must be what it expects.
        for key in [
            "eventID",
            "eventTime",
            "eventSource",
            "eventName",
            "awsRegion",
        ] {
            optional_str(map, key)?;
        }
        optional_str(map, "eventCategory")?;
        if !matches!(
            map.get("readOnly"),
            None | Some(Value::Null | Value::Bool(_))
        ) {
            return None;
        }
        let top_identity = optional_object(map, "userIdentity")?;
        let nested_subject = |key: &str| -> Option<Option<&Map<String, Value>>> {
            // A nested subject that is not an object of the expected types has none.
            let Some(Value::Object(subject)) = map.get(key) else {
                return Some(None);
            };
            let well_typed = optional_str(subject, "eventSource").is_some()
                && optional_str(subject, "eventName").is_some()
                && optional_object(subject, "userIdentity").is_some();
            // Any other shape: let the parse decide.
            well_typed.then_some(Some(subject))
        };
        let (event_source, event_name, identity) = match category {
            EventCategory::Insight | EventCategory::ActivityAuditLog => {
                let key = if category == EventCategory::Insight {
                    "insightDetails"
                } else {
                    "eventData"
                };
                match nested_subject(key)? {
                    Some(subject) => (
                        optional_str(subject, "eventSource")?,
                        optional_str(subject, "eventName")?,
                        optional_object(subject, "userIdentity")?,
                    ),
                    None => (None, None, None),
                }
            }
            _ => (
                optional_str(map, "eventSource")?,
                optional_str(map, "eventName")?,
                top_identity,
            ),
        };
        let empty = Map::new();
        let identity = identity.unwrap_or(&empty);
        let resources = resources_of(map.get("resources"));
        Some(Self {
            event_id: owned_non_empty(Some(event_id))?,
            event_time,
            event_source: owned_non_empty(event_source).unwrap_or_default(),
            event_name: owned_non_empty(event_name).unwrap_or_default(),
            aws_region: owned_non_empty(optional_str(map, "awsRegion")?)?,
            // A producer's `readOnly` (even `null`) stays in the record; ingest adds one only
            // where there is none.
            read_only: match map.get("readOnly") {
                Some(value) => value.as_bool(),
                None => read_only,
            },
            category,
            username: username(identity),
            access_key_id: str_of(identity, "accessKeyId").map(str::to_owned),
            resources,
        })
    }

    /// Appends the view's encoding (carried in the WAL payload, see [`crate::payload`]):
    ///
    /// ```text
    /// view := str eventID | i64 LE eventTime | str eventSource | str eventName | str awsRegion
    ///         | u8 readOnly (0 false, 1 true, 2 absent) | str eventCategory
    ///         | opt username | opt accessKeyId | u16 count | (opt type | str name)*count
    /// ```
    /// (`str` and `opt` as in [`crate::fields`]).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        use crate::fields::codec::{flag, opt, put};
        put(out, &self.event_id);
        out.extend_from_slice(&self.event_time.to_le_bytes());
        put(out, &self.event_source);
        put(out, &self.event_name);
        put(out, &self.aws_region);
        flag(out, self.read_only);
        put(out, self.category.as_str());
        opt(out, self.username.as_deref());
        opt(out, self.access_key_id.as_deref());
        let count = self.resources.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(count as u16).to_le_bytes());
        for resource in &self.resources[..count] {
            opt(out, resource.resource_type.as_deref());
            put(out, &resource.name);
        }
    }

    /// Decodes [`EventView::encode_into`]'s bytes; `None` if damaged.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut c = crate::fields::codec::Cursor { bytes };
        let event_id = c.str()?.to_owned();
        let event_time = i64::from_le_bytes(c.take(8)?.try_into().ok()?);
        let event_source = c.str()?.to_owned();
        let event_name = c.str()?.to_owned();
        let aws_region = c.str()?.to_owned();
        let read_only = c.flag()?;
        let category = c.str()?.parse().ok()?;
        let username = c.opt()?.map(str::to_owned);
        let access_key_id = c.opt()?.map(str::to_owned);
        let count = u16::from_le_bytes(c.take(2)?.try_into().ok()?);
        let mut resources = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            resources.push(ResourceRef {
                resource_type: c.opt()?.map(str::to_owned),
                name: c.str()?.to_owned(),
            });
        }
        c.bytes.is_empty().then_some(Self {
            event_id,
            event_time,
            event_source,
            event_name,
            aws_region,
            read_only,
            category,
            username,
            access_key_id,
            resources,
        })
    }
}
