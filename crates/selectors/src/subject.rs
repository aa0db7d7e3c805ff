//! The fields of a record that selectors and delivery read.

use serde_json::Value;
use std::borrow::Cow;

/// One `resources[]` element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resource {
    /// `type`, e.g. `AWS::S3::Object`.
    pub resource_type: Option<String>,
    /// `ARN`.
    pub arn: Option<String>,
}

/// What selectors match on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subject {
    /// `eventCategory`.
    pub category: String,
    /// `eventSource` (`insightDetails.eventSource` for Insights, `eventData.eventSource` for
    /// integration events).
    pub event_source: String,
    /// `eventName` (same sources).
    pub event_name: String,
    /// `eventType`.
    pub event_type: Option<String>,
    /// `readOnly`.
    pub read_only: Option<bool>,
    /// `awsRegion`.
    pub region: String,
    /// `recipientAccountId`.
    pub account: Option<String>,
    /// `resources[]`.
    pub resources: Vec<Resource>,
    /// `sessionCredentialFromConsole`.
    pub session_credential_from_console: Option<String>,
    /// `userIdentity.arn`.
    pub user_identity_arn: Option<String>,
    /// `errorCode`.
    pub error_code: Option<String>,
    /// `vpcEndpointId`.
    pub vpc_endpoint_id: Option<String>,
}

#[derive(serde::Deserialize)]
struct Raw<'a> {
    #[serde(borrow, rename = "eventCategory")]
    category: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventSource")]
    event_source: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventName")]
    event_name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventType")]
    event_type: Option<Cow<'a, str>>,
    #[serde(rename = "readOnly")]
    read_only: Option<bool>,
    #[serde(borrow, rename = "awsRegion")]
    region: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "recipientAccountId")]
    account: Option<Cow<'a, str>>,
    resources: Option<Value>,
    #[serde(borrow, rename = "sessionCredentialFromConsole")]
    session_credential_from_console: Option<Cow<'a, str>>,
    #[serde(rename = "userIdentity")]
    user_identity: Option<Value>,
    #[serde(borrow, rename = "errorCode")]
    error_code: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "vpcEndpointId")]
    vpc_endpoint_id: Option<Cow<'a, str>>,
    #[serde(rename = "insightDetails")]
    insight_details: Option<Value>,
    #[serde(rename = "eventData")]
    event_data: Option<Value>,
}

fn owned(text: Option<Cow<'_, str>>) -> Option<String> {
    text.map(Cow::into_owned)
}

fn string_at(value: &Option<Value>, key: &str) -> Option<String> {
    value.as_ref()?.get(key)?.as_str().map(str::to_owned)
}

impl Subject {
    /// Reads the subject of a stored record.
    pub fn from_record(record: &[u8]) -> Result<Self, String> {
        let raw: Raw<'_> = serde_json::from_slice(record).map_err(|e| e.to_string())?;
        let category = owned(raw.category).unwrap_or_default();
        let nested = match category.as_str() {
            "Insight" => &raw.insight_details,
            "ActivityAuditLog" => &raw.event_data,
            _ => &None,
        };
        let resources = match &raw.resources {
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| Resource {
                    resource_type: item.get("type").and_then(Value::as_str).map(str::to_owned),
                    arn: item.get("ARN").and_then(Value::as_str).map(str::to_owned),
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Self {
            event_source: string_at(nested, "eventSource")
                .or(owned(raw.event_source))
                .unwrap_or_default(),
            event_name: string_at(nested, "eventName")
                .or(owned(raw.event_name))
                .unwrap_or_default(),
            category,
            event_type: owned(raw.event_type),
            read_only: raw.read_only,
            region: owned(raw.region).unwrap_or_default(),
            account: owned(raw.account),
            resources,
            session_credential_from_console: owned(raw.session_credential_from_console),
            user_identity_arn: string_at(&raw.user_identity, "arn"),
            error_code: owned(raw.error_code),
            vpc_endpoint_id: owned(raw.vpc_endpoint_id),
        })
    }
}
