//! What an event looks like inside a WAL record.
//!
//! ```text
//! payload v1 := 1u8 | digest [16] | record
//! payload v2 := 2u8 | digest [16] | fields length u32 LE | fields | record
//! payload v3 := 3u8 | digest [16] | fields length u32 LE | fields
//!                   | provenance length u16 LE | provenance | record
//! payload v4 := 4u8 | digest [16] | fields length u32 LE | fields
//!                   | provenance length u16 LE | provenance | view length u32 LE | view | record
//! ```
//!
//! `digest` is SHA-256/128 of the producer's payload (idempotent retries); `fields` are the
//! selection fields ([`crate::fields`]) extracted at ingest; `provenance` says who ingested
//! it ([`crate::provenance`]); `view` is what Event history indexes
//! ([`crate::view::EventView::encode_into`]), read at ingest so that the indexer does not parse
//! the record again; `record` is the stored record. Cairn writes v4 (v3 for a record whose view
//! ingest could not read without parsing it: the indexer parses those) and reads all four (v1
//! and v2 payloads have an unknown provenance).

use crate::event::ProducerDigest;
use crate::fields::SelectionFields;
use crate::provenance::Provenance;
use crate::view::EventView;

/// A decoded payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload<'a> {
    /// Digest of the producer's payload.
    pub digest: ProducerDigest,
    /// Encoded selection fields (v2), if any.
    pub fields: Option<&'a [u8]>,
    /// Encoded provenance (v3; empty before).
    pub provenance: &'a [u8],
    /// Encoded Event history view (v4), if any.
    pub view: Option<&'a [u8]>,
    /// The stored record.
    pub record: &'a [u8],
}

impl Payload<'_> {
    /// Who ingested the event.
    pub fn provenance(&self) -> Provenance {
        Provenance::decode(self.provenance)
    }
}

/// Encodes an event for the WAL (v4 with a view, v3 without).
pub fn encode(
    digest: &ProducerDigest,
    fields: &SelectionFields,
    provenance: &Provenance,
    view: Option<&EventView>,
    record: &[u8],
) -> Vec<u8> {
    let mut encoded_fields = Vec::with_capacity(128);
    fields.encode_into(&mut encoded_fields);
    let mut provenance = provenance.encode();
    // An ARN and key id are far below 64 KiB; a longer one would be cut, never misread.
    provenance.truncate(usize::from(u16::MAX));
    let mut encoded_view = Vec::new();
    if let Some(view) = view {
        view.encode_into(&mut encoded_view);
    }
    let mut out = Vec::with_capacity(
        27 + encoded_fields.len() + provenance.len() + encoded_view.len() + record.len(),
    );
    out.push(if view.is_some() { 4 } else { 3 });
    out.extend_from_slice(digest);
    out.extend_from_slice(
        &u32::try_from(encoded_fields.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&encoded_fields);
    out.extend_from_slice(&(provenance.len() as u16).to_le_bytes());
    out.extend_from_slice(&provenance);
    if view.is_some() {
        out.extend_from_slice(
            &u32::try_from(encoded_view.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        out.extend_from_slice(&encoded_view);
    }
    out.extend_from_slice(record);
    out
}

/// Decodes a WAL payload (v1 to v4); `None` if it is none of them.
pub fn decode(payload: &[u8]) -> Option<Payload<'_>> {
    let digest: ProducerDigest = payload.get(1..17)?.try_into().ok()?;
    match payload.first()? {
        1 => Some(Payload {
            digest,
            fields: None,
            provenance: &[],
            view: None,
            record: &payload[17..],
        }),
        2 => {
            let len = u32::from_le_bytes(payload.get(17..21)?.try_into().ok()?) as usize;
            let fields = payload.get(21..21 + len)?;
            Some(Payload {
                digest,
                fields: Some(fields),
                provenance: &[],
                view: None,
                record: &payload[21 + len..],
            })
        }
        version @ (3 | 4) => {
            let len = u32::from_le_bytes(payload.get(17..21)?.try_into().ok()?) as usize;
            let fields = payload.get(21..21 + len)?;
            let at = 21 + len;
            let plen = u16::from_le_bytes(payload.get(at..at + 2)?.try_into().ok()?) as usize;
            let provenance = payload.get(at + 2..at + 2 + plen)?;
            let mut at = at + 2 + plen;
            let view = if *version == 4 {
                let vlen = u32::from_le_bytes(payload.get(at..at + 4)?.try_into().ok()?) as usize;
                let view = payload.get(at + 4..at + 4 + vlen)?;
                at += 4 + vlen;
                Some(view)
            } else {
                None
            };
            Some(Payload {
                digest,
                fields: Some(fields),
                provenance,
                view,
                record: &payload[at..],
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
        let encoded = encode(&[7; 16], &fields, &writer, None, b"{}");
        let decoded = decode(&encoded).expect("v3");
        assert_eq!(decoded.view, None);
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
                view: None,
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
        // v4 carries the view between the provenance and the record.
        let view = EventView::from_record(
            br#"{"eventID":"e","eventTime":"2026-01-01T00:00:00Z","awsRegion":"r","eventCategory":"Management","eventSource":"s","eventName":"n"}"#,
        )
        .expect("view");
        let encoded = encode(&[7; 16], &fields, &writer, Some(&view), b"{}");
        let decoded = decode(&encoded).expect("v4");
        assert_eq!(encoded[0], 4);
        assert_eq!((decoded.record, decoded.provenance()), (&b"{}"[..], writer));
        assert_eq!(decoded.view.and_then(EventView::decode), Some(view));
        // Cut inside the view: not a payload.
        assert_eq!(decode(&encoded[..encoded.len() - 3]), None);
        assert_eq!(decode(b"short"), None);
        assert_eq!(decode(&[3; 40]), None);
        assert_eq!(decode(&[4; 40]), None);
    }
}
