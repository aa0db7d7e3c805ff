//! The fields of a record that selectors and delivery read.

use serde_json::value::RawValue;
use std::borrow::Cow;

/// One `resources[]` element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resource<'a> {
    /// `type`, e.g. `AWS::S3::Object`.
    pub resource_type: Option<Cow<'a, str>>,
    /// `ARN`.
    pub arn: Option<Cow<'a, str>>,
}

/// What selectors match on, borrowed from the record where it can be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subject<'a> {
    /// `eventCategory`.
    pub category: Cow<'a, str>,
    /// `eventSource` (`insightDetails.eventSource` for Insights, `eventData.eventSource` for
    /// integration events).
    pub event_source: Cow<'a, str>,
    /// `eventName` (same sources).
    pub event_name: Cow<'a, str>,
    /// `eventType`.
    pub event_type: Option<Cow<'a, str>>,
    /// `readOnly`.
    pub read_only: Option<bool>,
    /// `awsRegion`.
    pub region: Cow<'a, str>,
    /// `recipientAccountId`.
    pub account: Option<Cow<'a, str>>,
    /// `resources[]`.
    pub resources: Vec<Resource<'a>>,
    /// `sessionCredentialFromConsole`.
    pub session_credential_from_console: Option<Cow<'a, str>>,
    /// `userIdentity.arn`.
    pub user_identity_arn: Option<Cow<'a, str>>,
    /// `errorCode`.
    pub error_code: Option<Cow<'a, str>>,
    /// `vpcEndpointId`.
    pub vpc_endpoint_id: Option<Cow<'a, str>>,
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
    #[serde(borrow, default, deserialize_with = "lenient_resources")]
    resources: Vec<RawResource<'a>>,
    #[serde(borrow, rename = "sessionCredentialFromConsole")]
    session_credential_from_console: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "userIdentity")]
    user_identity: Option<RawIdentity<'a>>,
    #[serde(borrow, rename = "errorCode")]
    error_code: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "vpcEndpointId")]
    vpc_endpoint_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "insightDetails")]
    insight_details: Option<&'a RawValue>,
    #[serde(borrow, rename = "eventData")]
    event_data: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct RawIdentity<'a> {
    #[serde(borrow)]
    arn: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct RawResource<'a> {
    #[serde(borrow, rename = "type")]
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "ARN")]
    arn: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct RawNested<'a> {
    #[serde(borrow, rename = "eventSource")]
    event_source: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventName")]
    event_name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "userIdentity")]
    user_identity: Option<RawIdentity<'a>>,
}

/// `resources` as Cairn validated it (an array of objects with string or null `type`/`ARN`);
/// anything else reads as no resources rather than failing the record.
fn lenient_resources<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<RawResource<'de>>, D::Error> {
    use serde::Deserialize;
    let raw: Option<&'de RawValue> = Option::deserialize(deserializer)?;
    Ok(raw
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default())
}

impl<'a> Subject<'a> {
    /// Reads the subject of a stored record.
    pub fn from_record(record: &'a [u8]) -> Result<Self, String> {
        let raw: Raw<'a> = serde_json::from_slice(record).map_err(|e| e.to_string())?;
        let category = raw.category.unwrap_or_default();
        let nested_raw = match category.as_ref() {
            "Insight" => raw.insight_details,
            "ActivityAuditLog" => raw.event_data,
            _ => None,
        };
        let nested: Option<RawNested<'_>> =
            nested_raw.and_then(|r| serde_json::from_str(r.get()).ok());
        let resources = raw
            .resources
            .into_iter()
            .map(|r| Resource {
                resource_type: r.resource_type,
                arn: r.arn,
            })
            .collect();
        let (nested_source, nested_name, nested_identity) = match nested {
            Some(n) => (n.event_source, n.event_name, n.user_identity),
            None => (None, None, None),
        };
        let identity = nested_identity.or(raw.user_identity);
        Ok(Self {
            event_source: nested_source.or(raw.event_source).unwrap_or_default(),
            event_name: nested_name.or(raw.event_name).unwrap_or_default(),
            category,
            event_type: raw.event_type,
            read_only: raw.read_only,
            region: raw.region.unwrap_or_default(),
            account: raw.account,
            resources,
            session_credential_from_console: raw.session_credential_from_console,
            user_identity_arn: identity.and_then(|i| i.arn),
            error_code: raw.error_code,
            vpc_endpoint_id: raw.vpc_endpoint_id,
        })
    }
}

impl<'a> Subject<'a> {
    /// The subject of a WAL record: from the selection fields extracted at ingest when the
    /// payload carries them (no JSON parsing), else from the record itself.
    pub fn from_wal(record: &'a [u8], fields: Option<&'a [u8]>) -> Result<Self, String> {
        match fields.and_then(cairn_model::fields::FieldsRef::decode) {
            Some(fields) => Ok(Self::from_fields(fields)),
            None => Self::from_record(record),
        }
    }

    /// The subject from selection fields extracted at ingest (no JSON parsing).
    pub fn from_fields(fields: cairn_model::fields::FieldsRef<'a>) -> Self {
        Self {
            category: Cow::Borrowed(fields.category),
            event_source: Cow::Borrowed(fields.event_source),
            event_name: Cow::Borrowed(fields.event_name),
            event_type: fields.event_type.map(Cow::Borrowed),
            read_only: fields.read_only,
            region: Cow::Borrowed(fields.region),
            account: fields.account.map(Cow::Borrowed),
            resources: fields
                .resources
                .into_iter()
                .map(|(kind, arn)| Resource {
                    resource_type: kind.map(Cow::Borrowed),
                    arn: arn.map(Cow::Borrowed),
                })
                .collect(),
            session_credential_from_console: fields
                .session_credential_from_console
                .map(Cow::Borrowed),
            user_identity_arn: fields.user_identity_arn.map(Cow::Borrowed),
            error_code: fields.error_code.map(Cow::Borrowed),
            vpc_endpoint_id: fields.vpc_endpoint_id.map(Cow::Borrowed),
        }
    }
}
