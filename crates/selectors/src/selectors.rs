//! Event selectors, in CloudTrail's JSON shape (spec §5.4, §6.1–6.3).
//!
//! * A trail is in basic or advanced mode ([`Selectors`]); the default is one basic selector
//!   logging all management events.
//! * Basic: `ReadWriteType`, `IncludeManagementEvents`, `ExcludeManagementEventSources`,
//!   `DataResources` (S3 values are ARN prefixes; Lambda and DynamoDB values are either the
//!   service-wide prefix or an exact ARN).
//! * Advanced: field selectors ANDed within a selector, selectors ORed; a positive operator
//!   matches if any of its values matches, a negative one if none does; several operators in
//!   one field selector are ANDed; `resources.*` conditions must hold for one same resource.
//!
//! Cairn extension: integration events (`ActivityAuditLog`) are treated like management
//! events by basic selectors, and advanced selectors may name that category.

use crate::subject::{Resource, Subject};
use serde::{Deserialize, Serialize};

/// Most basic selectors per trail.
pub const MAX_BASIC_SELECTORS: usize = 5;
/// Most `DataResources` values across a trail's basic selectors (service-wide prefixes excluded).
pub const MAX_DATA_RESOURCE_VALUES: usize = 250;
/// Most values across all conditions of a trail's advanced selectors.
pub const MAX_ADVANCED_VALUES: usize = 500;

/// `ReadWriteType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ReadWriteType {
    /// Only `readOnly: true` events.
    ReadOnly,
    /// Only `readOnly: false` events.
    WriteOnly,
    /// Both.
    #[default]
    All,
}

fn yes() -> bool {
    true
}

/// A basic event selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EventSelector {
    /// Read, write or both (default `All`).
    #[serde(default)]
    pub read_write_type: ReadWriteType,
    /// Log management events (default true).
    #[serde(default = "yes")]
    pub include_management_events: bool,
    /// Data events to log.
    #[serde(default)]
    pub data_resources: Vec<DataResource>,
    /// Management event sources not to log (`kms.amazonaws.com`, `rdsdata.amazonaws.com`).
    #[serde(default)]
    pub exclude_management_event_sources: Vec<String>,
}

impl Default for EventSelector {
    fn default() -> Self {
        Self {
            read_write_type: ReadWriteType::All,
            include_management_events: true,
            data_resources: Vec::new(),
            exclude_management_event_sources: Vec::new(),
        }
    }
}

/// A `DataResources` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DataResource {
    /// `AWS::S3::Object`, `AWS::Lambda::Function` or `AWS::DynamoDB::Table`.
    #[serde(rename = "Type")]
    pub resource_type: String,
    /// ARN prefixes (S3) or ARNs.
    #[serde(default)]
    pub values: Vec<String>,
}

/// An advanced event selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AdvancedEventSelector {
    /// Optional label (≤ 1000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions, all of which must hold.
    pub field_selectors: Vec<FieldSelector>,
}

/// One condition on one field.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct FieldSelector {
    /// The record field: `eventCategory`, `eventSource`, `eventName`, `eventType`,
    /// `readOnly`, `resources.type`, `resources.ARN`, `sessionCredentialFromConsole`,
    /// `userIdentity.arn`, `errorCode`, `vpcEndpointId`.
    pub field: String,
    /// Matches if the field equals any value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equals: Vec<String>,
    /// Matches if the field starts with any value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub starts_with: Vec<String>,
    /// Matches if the field ends with any value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ends_with: Vec<String>,
    /// Matches if the field equals none of the values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_equals: Vec<String>,
    /// Matches if the field starts with none of the values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_starts_with: Vec<String>,
    /// Matches if the field ends with none of the values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ends_with: Vec<String>,
}

/// A trail's selectors: basic or advanced, never both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selectors {
    /// `EventSelectors`.
    #[serde(rename = "EventSelectors")]
    Basic(Vec<EventSelector>),
    /// `AdvancedEventSelectors`.
    #[serde(rename = "AdvancedEventSelectors")]
    Advanced(Vec<AdvancedEventSelector>),
}

impl Default for Selectors {
    /// All management events, read and write (CloudTrail's default).
    fn default() -> Self {
        Self::Basic(vec![EventSelector::default()])
    }
}

/// An invalid selector configuration (`InvalidEventSelectorsException`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

fn invalid(message: impl Into<String>) -> SelectorError {
    SelectorError(message.into())
}

const DATA_TYPES: &[(&str, &str)] = &[
    ("AWS::S3::Object", "s3"),
    ("AWS::Lambda::Function", "lambda"),
    ("AWS::DynamoDB::Table", "dynamodb"),
];
const EXCLUDABLE_SOURCES: &[&str] = &["kms.amazonaws.com", "rdsdata.amazonaws.com"];
const CATEGORIES: &[&str] = &["Management", "Data", "NetworkActivity", "ActivityAuditLog"];

/// Fields each category's advanced selectors may use.
fn allowed_fields(category: &str) -> &'static [&'static str] {
    match category {
        "Management" => &[
            "eventCategory",
            "eventSource",
            "readOnly",
            "eventName",
            "eventType",
            "sessionCredentialFromConsole",
            "userIdentity.arn",
        ],
        "Data" => &[
            "eventCategory",
            "resources.type",
            "eventName",
            "eventSource",
            "eventType",
            "readOnly",
            "resources.ARN",
            "sessionCredentialFromConsole",
            "userIdentity.arn",
        ],
        "NetworkActivity" => &[
            "eventCategory",
            "eventSource",
            "eventName",
            "errorCode",
            "vpcEndpointId",
            "userIdentity.arn",
        ],
        _ => &[
            "eventCategory",
            "eventSource",
            "eventName",
            "userIdentity.arn",
        ],
    }
}

/// The ARN parts `arn:<partition>:<service>:...`.
fn arn_service(value: &str) -> Option<&str> {
    let mut parts = value.split(':');
    (parts.next()? == "arn").then_some(())?;
    parts.next()?;
    parts.next()
}

/// Whether a data-resource value covers every resource of its service (`arn:aws:s3`,
/// `arn:aws:s3:::`, `arn:aws:lambda`, `arn:aws:dynamodb`).
fn is_service_wide(value: &str) -> bool {
    let parts: Vec<&str> = value.split(':').collect();
    parts.len() <= 3 || parts[3..].iter().all(|p| p.is_empty())
}

impl FieldSelector {
    fn operators(&self) -> [(&'static str, &Vec<String>); 6] {
        [
            ("Equals", &self.equals),
            ("StartsWith", &self.starts_with),
            ("EndsWith", &self.ends_with),
            ("NotEquals", &self.not_equals),
            ("NotStartsWith", &self.not_starts_with),
            ("NotEndsWith", &self.not_ends_with),
        ]
    }

    fn value_count(&self) -> usize {
        self.operators().iter().map(|(_, v)| v.len()).sum()
    }

    /// Whether `value` (absent = `None`) satisfies every operator of this condition.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let any = |values: &Vec<String>, test: &dyn Fn(&str, &str) -> bool| {
            value.is_some_and(|v| values.iter().any(|w| test(v, w)))
        };
        let eq = |v: &str, w: &str| v == w;
        let starts = |v: &str, w: &str| v.starts_with(w);
        let ends = |v: &str, w: &str| v.ends_with(w);
        (self.equals.is_empty() || any(&self.equals, &eq))
            && (self.starts_with.is_empty() || any(&self.starts_with, &starts))
            && (self.ends_with.is_empty() || any(&self.ends_with, &ends))
            && (self.not_equals.is_empty() || !any(&self.not_equals, &eq))
            && (self.not_starts_with.is_empty() || !any(&self.not_starts_with, &starts))
            && (self.not_ends_with.is_empty() || !any(&self.not_ends_with, &ends))
    }
}

fn read_write_ok(kind: ReadWriteType, read_only: Option<bool>) -> bool {
    match kind {
        ReadWriteType::All => true,
        ReadWriteType::ReadOnly => read_only == Some(true),
        ReadWriteType::WriteOnly => read_only == Some(false),
    }
}

fn data_value_matches(resource_type: &str, value: &str, arn: &str) -> bool {
    if resource_type == "AWS::S3::Object"
        || is_service_wide(value)
        || value.ends_with('/')
        || value.ends_with(':')
    {
        arn.starts_with(value)
    } else {
        arn == value
    }
}

impl EventSelector {
    /// Whether this basic selector logs `subject`.
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        if !read_write_ok(self.read_write_type, subject.read_only) {
            return false;
        }
        match subject.category.as_ref() {
            "Management" | "ActivityAuditLog" => {
                self.include_management_events
                    && !self
                        .exclude_management_event_sources
                        .iter()
                        .any(|s| *s == subject.event_source)
            }
            "Data" => self.data_resources.iter().any(|data| {
                subject.resources.iter().any(|r| {
                    r.resource_type.as_deref() == Some(data.resource_type.as_str())
                        && r.arn.as_deref().is_some_and(|arn| {
                            data.values
                                .iter()
                                .any(|v| data_value_matches(&data.resource_type, v, arn))
                        })
                })
            }),
            _ => false,
        }
    }
}

fn field_value<'a>(subject: &'a Subject<'_>, field: &str) -> Option<&'a str> {
    match field {
        "eventCategory" => Some(&subject.category),
        "eventSource" => Some(&subject.event_source),
        "eventName" => Some(&subject.event_name),
        "eventType" => subject.event_type.as_deref(),
        "readOnly" => subject.read_only.map(|b| if b { "true" } else { "false" }),
        "sessionCredentialFromConsole" => subject.session_credential_from_console.as_deref(),
        "userIdentity.arn" => subject.user_identity_arn.as_deref(),
        "errorCode" => subject.error_code.as_deref(),
        "vpcEndpointId" => subject.vpc_endpoint_id.as_deref(),
        _ => None,
    }
}

fn resource_value<'a>(resource: &'a Resource<'_>, field: &str) -> Option<&'a str> {
    match field {
        "resources.type" => resource.resource_type.as_deref(),
        _ => resource.arn.as_deref(),
    }
}

impl AdvancedEventSelector {
    /// Whether this advanced selector logs `subject`.
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        let (on_resources, on_event): (Vec<&FieldSelector>, Vec<&FieldSelector>) = self
            .field_selectors
            .iter()
            .partition(|f| f.field.starts_with("resources."));
        on_event
            .iter()
            .all(|f| f.matches(field_value(subject, &f.field)))
            && (on_resources.is_empty()
                || subject.resources.iter().any(|r| {
                    on_resources
                        .iter()
                        .all(|f| f.matches(resource_value(r, &f.field)))
                }))
    }

    fn validate(&self, index: usize) -> Result<usize, SelectorError> {
        let at = |message: String| invalid(format!("AdvancedEventSelectors[{index}]: {message}"));
        if self.name.as_ref().is_some_and(|n| n.chars().count() > 1000) {
            return Err(at("Name must be at most 1000 characters".into()));
        }
        if self.field_selectors.is_empty() {
            return Err(at("FieldSelectors must hold at least one condition".into()));
        }
        let category = self
            .field_selectors
            .iter()
            .find(|f| f.field == "eventCategory")
            .ok_or_else(|| at("a condition on eventCategory is required".into()))?;
        let category = match category.equals.as_slice() {
            [one] if CATEGORIES.contains(&one.as_str()) => one.as_str(),
            _ => {
                return Err(at(format!(
                    "eventCategory needs Equals with exactly one of {}",
                    CATEGORIES.join(", ")
                )))
            }
        };
        let allowed = allowed_fields(category);
        let mut seen = Vec::new();
        let mut values = 0;
        for f in &self.field_selectors {
            if !allowed.contains(&f.field.as_str()) {
                return Err(at(format!(
                    "field {:?} is not supported for {category} events; use {}",
                    f.field,
                    allowed.join(", ")
                )));
            }
            if seen.contains(&f.field.as_str()) {
                return Err(at(format!("field {} has more than one condition", f.field)));
            }
            seen.push(f.field.as_str());
            if f.value_count() == 0 {
                return Err(at(format!("field {} has no operator", f.field)));
            }
            for (operator, list) in f.operators() {
                if let Some(bad) = list
                    .iter()
                    .find(|v| v.is_empty() || v.chars().count() > 2048)
                {
                    return Err(at(format!(
                        "{} {operator} value {bad:?} must be 1 to 2048 characters",
                        f.field
                    )));
                }
            }
            let only_equals = f.value_count() == f.equals.len();
            if matches!(
                f.field.as_str(),
                "eventCategory" | "readOnly" | "resources.type"
            ) && !only_equals
            {
                return Err(at(format!("field {} supports only Equals", f.field)));
            }
            if f.field == "readOnly" && !f.equals.iter().all(|v| v == "true" || v == "false") {
                return Err(at("readOnly Equals must be \"true\" or \"false\"".into()));
            }
            if f.field == "resources.type" && f.equals.len() != 1 {
                return Err(at(
                    "resources.type needs Equals with exactly one resource type".into(),
                ));
            }
            values += f.value_count();
        }
        if category == "Data" && !seen.contains(&"resources.type") {
            return Err(at(
                "Data selectors need a condition on resources.type".into()
            ));
        }
        if category == "NetworkActivity" && !seen.contains(&"eventSource") {
            return Err(at(
                "NetworkActivity selectors need a condition on eventSource".into(),
            ));
        }
        Ok(values)
    }
}

impl Selectors {
    /// Whether the trail logs `subject`. Insights records are never matched here (they follow
    /// insight selectors).
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        match self {
            Self::Basic(selectors) => selectors.iter().any(|s| s.matches(subject)),
            Self::Advanced(selectors) => selectors.iter().any(|s| s.matches(subject)),
        }
    }

    /// Checks AWS's rules and limits.
    pub fn validate(&self) -> Result<(), SelectorError> {
        match self {
            Self::Basic(selectors) => {
                if selectors.is_empty() || selectors.len() > MAX_BASIC_SELECTORS {
                    return Err(invalid(format!(
                        "EventSelectors must hold 1 to {MAX_BASIC_SELECTORS} selectors, got {}",
                        selectors.len()
                    )));
                }
                let mut counted = 0;
                for (i, selector) in selectors.iter().enumerate() {
                    for source in &selector.exclude_management_event_sources {
                        if !EXCLUDABLE_SOURCES.contains(&source.as_str()) {
                            return Err(invalid(format!(
                                "EventSelectors[{i}]: ExcludeManagementEventSources accepts only {}, got {source:?}",
                                EXCLUDABLE_SOURCES.join(", ")
                            )));
                        }
                    }
                    for data in &selector.data_resources {
                        let Some((_, service)) =
                            DATA_TYPES.iter().find(|(t, _)| *t == data.resource_type)
                        else {
                            return Err(invalid(format!(
                                "EventSelectors[{i}]: data resource type {:?} is not supported by basic selectors; use {} or advanced selectors",
                                data.resource_type,
                                DATA_TYPES.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ")
                            )));
                        };
                        if data.values.is_empty() {
                            return Err(invalid(format!(
                                "EventSelectors[{i}]: {} needs at least one value",
                                data.resource_type
                            )));
                        }
                        for value in &data.values {
                            if arn_service(value) != Some(service) {
                                return Err(invalid(format!(
                                    "EventSelectors[{i}]: value {value:?} is not an arn:<partition>:{service} ARN or prefix"
                                )));
                            }
                            if !is_service_wide(value) {
                                counted += 1;
                            }
                        }
                    }
                }
                if counted > MAX_DATA_RESOURCE_VALUES {
                    return Err(invalid(format!(
                        "at most {MAX_DATA_RESOURCE_VALUES} data resource values per trail, got {counted}"
                    )));
                }
                Ok(())
            }
            Self::Advanced(selectors) => {
                if selectors.is_empty() {
                    return Err(invalid(
                        "AdvancedEventSelectors must hold at least one selector",
                    ));
                }
                let mut values = 0;
                for (i, selector) in selectors.iter().enumerate() {
                    values += selector.validate(i)?;
                }
                if values > MAX_ADVANCED_VALUES {
                    return Err(invalid(format!(
                        "at most {MAX_ADVANCED_VALUES} values across all advanced selector conditions, got {values}"
                    )));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[path = "selectors/tests.rs"]
mod tests;
