//! What an event looks like inside a WAL record.
//!
//! ```text
//! payload := version u8 (=1) | digest [16] (SHA-256/128 of the producer's payload) | record
//! ```

use crate::event::ProducerDigest;

const VERSION: u8 = 1;

/// Encodes an event for the WAL.
pub fn encode(digest: &ProducerDigest, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + record.len());
    out.push(VERSION);
    out.extend_from_slice(digest);
    out.extend_from_slice(record);
    out
}

/// Decodes an event from a WAL payload.
pub fn decode(payload: &[u8]) -> Option<(ProducerDigest, &[u8])> {
    if payload.len() < 17 || payload[0] != VERSION {
        return None;
    }
    Some((payload[1..17].try_into().ok()?, &payload[17..]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let encoded = super::encode(&[7; 16], b"{}");
        assert_eq!(super::decode(&encoded), Some(([7; 16], &b"{}"[..])));
        assert_eq!(super::decode(b"short"), None);
    }
}
