//! What an event looks like inside a WAL record.
//!
//! ```text
//! payload v1 := 1u8 | digest [16] | record
//! payload v2 := 2u8 | digest [16] | fields length u32 LE | fields | record
//! ```
//!
//! `digest` is SHA-256/128 of the producer's payload (idempotent retries); `fields` are the
//! selection fields ([`crate::fields`]) extracted at ingest; `record` is the stored record.
//! Cairn writes v2 and reads both.

use crate::event::ProducerDigest;
use crate::fields::SelectionFields;

/// A decoded payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload<'a> {
    /// Digest of the producer's payload.
    pub digest: ProducerDigest,
    /// Encoded selection fields (v2), if any.
    pub fields: Option<&'a [u8]>,
    /// The stored record.
    pub record: &'a [u8],
}

/// Encodes an event for the WAL (v2).
pub fn encode(digest: &ProducerDigest, fields: &SelectionFields, record: &[u8]) -> Vec<u8> {
    let mut encoded_fields = Vec::with_capacity(128);
    fields.encode_into(&mut encoded_fields);
    let mut out = Vec::with_capacity(21 + encoded_fields.len() + record.len());
    out.push(2);
    out.extend_from_slice(digest);
    out.extend_from_slice(
        &u32::try_from(encoded_fields.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&encoded_fields);
    out.extend_from_slice(record);
    out
}

/// Decodes a WAL payload (v1 or v2); `None` if it is neither.
pub fn decode(payload: &[u8]) -> Option<Payload<'_>> {
    let digest: ProducerDigest = payload.get(1..17)?.try_into().ok()?;
    match payload.first()? {
        1 => Some(Payload {
            digest,
            fields: None,
            record: &payload[17..],
        }),
        2 => {
            let len = u32::from_le_bytes(payload.get(17..21)?.try_into().ok()?) as usize;
            let fields = payload.get(21..21 + len)?;
            Some(Payload {
                digest,
                fields: Some(fields),
                record: &payload[21 + len..],
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_v1_compatibility() {
        let fields = SelectionFields {
            category: "Management".into(),
            ..SelectionFields::default()
        };
        let encoded = encode(&[7; 16], &fields, b"{}");
        let decoded = decode(&encoded).expect("v2");
        assert_eq!((decoded.digest, decoded.record), ([7; 16], &b"{}"[..]));
        assert_eq!(
            crate::fields::FieldsRef::decode(decoded.fields.expect("fields"))
                .expect("fields")
                .category,
            "Management"
        );
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&[9; 16]);
        v1.extend_from_slice(b"{\"a\":1}");
        assert_eq!(
            decode(&v1),
            Some(Payload {
                digest: [9; 16],
                fields: None,
                record: b"{\"a\":1}"
            })
        );
        assert_eq!(decode(b"short"), None);
        assert_eq!(decode(&[3; 40]), None);
    }
}
