//! The fields trail selectors read, extracted once at ingest and carried in the WAL payload
//! next to the record, so that delivery never parses the record's JSON to select it.
//!
//! ```text
//! fields := str category | str eventSource | str eventName | opt eventType | u8 readOnly (0 false, 1 true, 2 absent)
//!           | str awsRegion | opt recipientAccountId | opt sessionCredentialFromConsole
//!           | opt userIdentity.arn | opt errorCode | opt vpcEndpointId
//!           | u16 count | (opt type | opt ARN)*count            (resources[])
//! str := u32 LE length | UTF-8 bytes;   opt := u8 (0 absent, 1 present) [str]
//! ```
//!
//! For Insights records `eventSource`/`eventName` come from `insightDetails`, for integration
//! events from `eventData` (with its `userIdentity.arn`), exactly as a reader of the JSON would.

use serde_json::{Map, Value};

/// The selection fields of one event (owned, as built at ingest).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelectionFields {
    /// `eventCategory`.
    pub category: String,
    /// `eventSource`.
    pub event_source: String,
    /// `eventName`.
    pub event_name: String,
    /// `eventType`.
    pub event_type: Option<String>,
    /// `readOnly`.
    pub read_only: Option<bool>,
    /// `awsRegion`.
    pub region: String,
    /// `recipientAccountId`.
    pub account: Option<String>,
    /// `sessionCredentialFromConsole`.
    pub session_credential_from_console: Option<String>,
    /// `userIdentity.arn`.
    pub user_identity_arn: Option<String>,
    /// `errorCode`.
    pub error_code: Option<String>,
    /// `vpcEndpointId`.
    pub vpc_endpoint_id: Option<String>,
    /// `resources[]`: (`type`, `ARN`).
    pub resources: Vec<(Option<String>, Option<String>)>,
}

/// The same fields, borrowed from an encoded payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldsRef<'a> {
    /// `eventCategory`.
    pub category: &'a str,
    /// `eventSource`.
    pub event_source: &'a str,
    /// `eventName`.
    pub event_name: &'a str,
    /// `eventType`.
    pub event_type: Option<&'a str>,
    /// `readOnly`.
    pub read_only: Option<bool>,
    /// `awsRegion`.
    pub region: &'a str,
    /// `recipientAccountId`.
    pub account: Option<&'a str>,
    /// `sessionCredentialFromConsole`.
    pub session_credential_from_console: Option<&'a str>,
    /// `userIdentity.arn`.
    pub user_identity_arn: Option<&'a str>,
    /// `errorCode`.
    pub error_code: Option<&'a str>,
    /// `vpcEndpointId`.
    pub vpc_endpoint_id: Option<&'a str>,
    /// `resources[]`: (`type`, `ARN`).
    pub resources: Vec<(Option<&'a str>, Option<&'a str>)>,
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl SelectionFields {
    /// Reads the fields from a stored record's parsed members.
    pub fn from_map(map: &Map<String, Value>) -> Self {
        let category = text(map, "eventCategory").unwrap_or_default();
        let nested = match category.as_str() {
            "Insight" => map.get("insightDetails").and_then(Value::as_object),
            "ActivityAuditLog" => map.get("eventData").and_then(Value::as_object),
            _ => None,
        };
        let subject = nested.unwrap_or(map);
        let identity = if nested.is_some() && subject.contains_key("userIdentity") {
            subject.get("userIdentity")
        } else {
            map.get("userIdentity")
        };
        let resources = match map.get("resources") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_object)
                .map(|r| (text(r, "type"), text(r, "ARN")))
                .collect(),
            _ => Vec::new(),
        };
        Self {
            event_source: nested
                .and_then(|n| text(n, "eventSource"))
                .or_else(|| text(map, "eventSource"))
                .unwrap_or_default(),
            event_name: nested
                .and_then(|n| text(n, "eventName"))
                .or_else(|| text(map, "eventName"))
                .unwrap_or_default(),
            category,
            event_type: text(map, "eventType"),
            read_only: map.get("readOnly").and_then(Value::as_bool),
            region: text(map, "awsRegion").unwrap_or_default(),
            account: text(map, "recipientAccountId"),
            session_credential_from_console: text(map, "sessionCredentialFromConsole"),
            user_identity_arn: identity
                .and_then(|i| i.get("arn"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            error_code: text(map, "errorCode"),
            vpc_endpoint_id: text(map, "vpcEndpointId"),
            resources,
        }
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        use codec::put;
        let opt = |out: &mut Vec<u8>, s: &Option<String>| codec::opt(out, s.as_deref());
        put(out, &self.category);
        put(out, &self.event_source);
        put(out, &self.event_name);
        opt(out, &self.event_type);
        codec::flag(out, self.read_only);
        put(out, &self.region);
        opt(out, &self.account);
        opt(out, &self.session_credential_from_console);
        opt(out, &self.user_identity_arn);
        opt(out, &self.error_code);
        opt(out, &self.vpc_endpoint_id);
        let count = self.resources.len().min(u16::MAX as usize);
        out.extend_from_slice(&(count as u16).to_le_bytes());
        for (kind, arn) in &self.resources[..count] {
            opt(out, kind);
            opt(out, arn);
        }
    }
}

/// The encoding's parts: `str := u32 LE length | UTF-8 bytes`, `opt := u8 (0 absent, 1
/// present) [str]`, an optional boolean a `u8` (shared with
/// [`crate::view::EventView::encode_into`]).
pub(crate) mod codec {
    pub(crate) fn put(out: &mut Vec<u8>, s: &str) {
        let len = s.len().min(u32::MAX as usize);
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&s.as_bytes()[..len]);
    }

    pub(crate) fn opt(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            Some(s) => {
                out.push(1);
                put(out, s);
            }
            None => out.push(0),
        }
    }

    /// An optional boolean: `u8` 0 false, 1 true, 2 absent.
    pub(crate) fn flag(out: &mut Vec<u8>, value: Option<bool>) {
        out.push(match value {
            Some(false) => 0,
            Some(true) => 1,
            None => 2,
        });
    }

    pub(crate) struct Cursor<'a> {
        pub(crate) bytes: &'a [u8],
    }

    impl<'a> Cursor<'a> {
        pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.bytes.len() < n {
                return None;
            }
            let (head, tail) = self.bytes.split_at(n);
            self.bytes = tail;
            Some(head)
        }

        pub(crate) fn byte(&mut self) -> Option<u8> {
            self.take(1).map(|b| b[0])
        }

        pub(crate) fn str(&mut self) -> Option<&'a str> {
            let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
            std::str::from_utf8(self.take(len)?).ok()
        }

        /// Reads [`flag`]'s byte: `None` if damaged.
        pub(crate) fn flag(&mut self) -> Option<Option<bool>> {
            match self.byte()? {
                0 => Some(Some(false)),
                1 => Some(Some(true)),
                2 => Some(None),
                _ => None,
            }
        }

        pub(crate) fn opt(&mut self) -> Option<Option<&'a str>> {
            match self.byte()? {
                0 => Some(None),
                1 => Some(Some(self.str()?)),
                _ => None,
            }
        }
    }
}

impl<'a> FieldsRef<'a> {
    /// Decodes fields encoded by [`SelectionFields::encode_into`]; `None` if damaged.
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        let mut c = codec::Cursor { bytes };
        let category = c.str()?;
        let event_source = c.str()?;
        let event_name = c.str()?;
        let event_type = c.opt()?;
        let read_only = c.flag()?;
        let region = c.str()?;
        let account = c.opt()?;
        let session_credential_from_console = c.opt()?;
        let user_identity_arn = c.opt()?;
        let error_code = c.opt()?;
        let vpc_endpoint_id = c.opt()?;
        let count = u16::from_le_bytes(c.take(2)?.try_into().ok()?);
        let mut resources = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            resources.push((c.opt()?, c.opt()?));
        }
        c.bytes.is_empty().then_some(Self {
            category,
            event_source,
            event_name,
            event_type,
            read_only,
            region,
            account,
            session_credential_from_console,
            user_identity_arn,
            error_code,
            vpc_endpoint_id,
            resources,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let record = r#"{"eventCategory":"Data","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventType":"AwsApiCall","readOnly":true,"awsRegion":"eu-west-1","recipientAccountId":"111122223333","userIdentity":{"arn":"arn:aws:iam::1:user/a"},"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::b/k"},{"ARN":"arn:aws:s3:::b"}]}"#;
        let map: Map<String, Value> = serde_json::from_str(record).expect("json");
        let fields = SelectionFields::from_map(&map);
        let mut bytes = Vec::new();
        fields.encode_into(&mut bytes);
        let decoded = FieldsRef::decode(&bytes).expect("decode");
        assert_eq!(decoded.category, "Data");
        assert_eq!(decoded.read_only, Some(true));
        assert_eq!(decoded.user_identity_arn, Some("arn:aws:iam::1:user/a"));
        assert_eq!(
            decoded.resources,
            vec![
                (Some("AWS::S3::Object"), Some("arn:aws:s3:::b/k")),
                (None, Some("arn:aws:s3:::b"))
            ]
        );
        assert!(
            FieldsRef::decode(&bytes[..bytes.len() - 1]).is_none(),
            "truncated"
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(FieldsRef::decode(&longer).is_none(), "trailing bytes");
    }
}
