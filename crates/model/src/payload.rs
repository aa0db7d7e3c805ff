//! What an event looks like inside a WAL record.
//!
//! ```text
//! payload v1 := 1u8 | digest [16] | record
//! payload v2 := 2u8 | digest [16] | fields length u32 LE | fields | record
//! payload v3 := 3u8 | digest [16] | fields length u32 LE | fields
//!                   | provenance length u16 LE | provenance | record
//! ```
//!
//! `digest` is SHA-256/128 of the producer's payload (idempotent retries); `fields` are the
//! selection fields ([`crate::fields`]) extracted at ingest; `provenance` says who ingested
//! it ([`crate::provenance`]); `record` is the stored record. Cairn writes v3 and reads all
//! three (v1 and v2 payloads have an unknown provenance).

use crate::event::ProducerDigest;
use crate::fields::SelectionFields;
use crate::provenance::Provenance;

/// A decoded payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload<'a> {
    /// Digest of the producer's payload.
    pub digest: ProducerDigest,
    /// Encoded selection fields (v2), if any.
    pub fields: Option<&'a [u8]>,
    /// Encoded provenance (v3; empty before).
    pub provenance: &'a [u8],
    /// The stored record.
    pub record: &'a [u8],
}

impl Payload<'_> {
    /// Who ingested the event.
    pub fn provenance(&self) -> Provenance {
        Provenance::decode(self.provenance)
    }
}

/// Encodes an event for the WAL (v3).
pub fn encode(
    digest: &ProducerDigest,
    fields: &SelectionFields,
    provenance: &Provenance,
    record: &[u8],
) -> Vec<u8> {
    let mut encoded_fields = Vec::with_capacity(128);
    fields.encode_into(&mut encoded_fields);
    let mut provenance = provenance.encode();
    // An ARN and key id are far below 64 KiB; a longer one would be cut, never misread.
    provenance.truncate(usize::from(u16::MAX));
    let mut out = Vec::with_capacity(23 + encoded_fields.len() + provenance.len() + record.len());
    out.push(3);
    out.extend_from_slice(digest);
    out.extend_from_slice(
        &u32::try_from(encoded_fields.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&encoded_fields);
    out.extend_from_slice(&(provenance.len() as u16).to_le_bytes());
    out.extend_from_slice(&provenance);
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
            provenance: &[],
            record: &payload[17..],
        }),
        2 => {
            let len = u32::from_le_bytes(payload.get(17..21)?.try_into().ok()?) as usize;
            let fields = payload.get(21..21 + len)?;
            Some(Payload {
                digest,
                fields: Some(fields),
                provenance: &[],
                record: &payload[21 + len..],
            })
        }
        3 => {
            let len = u32::from_le_bytes(payload.get(17..21)?.try_into().ok()?) as usize;
            let fields = payload.get(21..21 + len)?;
            let at = 21 + len;
            let plen = u16::from_le_bytes(payload.get(at..at + 2)?.try_into().ok()?) as usize;
            let provenance = payload.get(at + 2..at + 2 + plen)?;
            Some(Payload {
                digest,
                fields: Some(fields),
                provenance,
                record: &payload[at + 2 + plen..],
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
        let writer = Provenance::Principal {
            arn: "arn:aws:iam::111122223333:user/w".into(),
            access_key_id: "AKIAW".into(),
        };
        let encoded = encode(&[7; 16], &fields, &writer, b"{}");
        let decoded = decode(&encoded).expect("v3");
        assert_eq!((decoded.digest, decoded.record), ([7; 16], &b"{}"[..]));
        assert_eq!(decoded.provenance(), writer);
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
                provenance: &[],
                record: b"{\"a\":1}"
            })
        );
        assert_eq!(decode(&v1).expect("v1").provenance(), Provenance::Unknown);
        // v2 (no provenance) still reads.
        let mut v2 = vec![2u8];
        v2.extend_from_slice(&[9; 16]);
        v2.extend_from_slice(&0u32.to_le_bytes());
        v2.extend_from_slice(b"{}");
        let decoded = decode(&v2).expect("v2");
        assert_eq!(
            (decoded.record, decoded.provenance()),
            (&b"{}"[..], Provenance::Unknown)
        );
        assert_eq!(decode(b"short"), None);
        assert_eq!(decode(&[3; 40]), None);
        assert_eq!(decode(&[4; 40]), None);
    }
}
