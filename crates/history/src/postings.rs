//! Posting chunks: where the events with one lookup value are, for one indexing batch.
//!
//! ```text
//! chunk   := varint count | posting*          (newest first: (time, seq) descending)
//! posting := varint (previous time - time) | zigzag varint (seq - previous seq)
//!            | zigzag varint (block - previous block) | varint slot
//! ```
//!
//! The first posting's "previous" values are the chunk's newest time (in its key) and zero.
//! A batch writes one chunk per value and day instead of one index entry per event and value:
//! the events of a batch are close in time and in blocks, so a posting takes a few bytes.

/// Where one event is, and when it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Posting {
    /// `eventTime`.
    pub time: i64,
    /// WAL sequence number.
    pub seq: u64,
    /// Block number in the day.
    pub block: u64,
    /// Slot in the block.
    pub slot: u32,
}

/// Why a chunk could not be read.
#[derive(Debug, thiserror::Error)]
#[error("damaged posting chunk: {0}")]
pub struct ChunkError(&'static str);

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Result<u64, ChunkError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .bytes
                .get(self.at)
                .ok_or(ChunkError("cut in a number"))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ChunkError("number longer than 64 bits"))
    }
}

/// Encodes postings sorted newest first; `newest` is the first one's time.
pub fn encode(postings: &[Posting]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + postings.len() * 6);
    put_varint(&mut out, postings.len() as u64);
    let (mut time, mut seq, mut block) = (postings.first().map_or(0, |p| p.time), 0u64, 0u64);
    for p in postings {
        debug_assert!(p.time <= time, "postings are newest first");
        put_varint(&mut out, time.wrapping_sub(p.time) as u64);
        put_varint(&mut out, zigzag(p.seq.wrapping_sub(seq) as i64));
        put_varint(&mut out, zigzag(p.block.wrapping_sub(block) as i64));
        put_varint(&mut out, u64::from(p.slot));
        (time, seq, block) = (p.time, p.seq, p.block);
    }
    out
}

/// Decodes a chunk whose newest time is `newest` (from its key).
pub fn decode(bytes: &[u8], newest: i64) -> Result<Vec<Posting>, ChunkError> {
    let mut r = Reader { bytes, at: 0 };
    let count = r.varint()?;
    // Every posting takes at least four bytes: a count beyond that is damage, not a request
    // for memory.
    if count > bytes.len() as u64 / 4 {
        return Err(ChunkError("count beyond the chunk's size"));
    }
    let mut out = Vec::with_capacity(count as usize);
    let (mut time, mut seq, mut block) = (newest, 0u64, 0u64);
    for _ in 0..count {
        time = time.wrapping_sub(r.varint()? as i64);
        seq = seq.wrapping_add(unzigzag(r.varint()?) as u64);
        block = block.wrapping_add(unzigzag(r.varint()?) as u64);
        let slot = u32::try_from(r.varint()?).map_err(|_| ChunkError("slot beyond 32 bits"))?;
        out.push(Posting {
            time,
            seq,
            block,
            slot,
        });
    }
    if r.at != bytes.len() {
        return Err(ChunkError("bytes after the last posting"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_round_trip_in_a_few_bytes_each() {
        let mut postings: Vec<Posting> = (0..1000u64)
            .map(|i| Posting {
                time: 1_700_000_000_000 + (i as i64 * 37) % 5_000,
                seq: 10_000 + i,
                block: 3 + i / 90,
                slot: (i % 90) as u32,
            })
            .collect();
        postings.sort_by(|a, b| b.cmp(a));
        let bytes = encode(&postings);
        assert!(bytes.len() < postings.len() * 8, "{}", bytes.len());
        assert_eq!(decode(&bytes, postings[0].time).expect("chunk"), postings);
        // Extremes survive.
        let extreme = [
            Posting {
                time: i64::MAX,
                seq: u64::MAX,
                block: u64::MAX,
                slot: u32::MAX,
            },
            Posting {
                time: i64::MIN,
                seq: 0,
                block: 0,
                slot: 0,
            },
        ];
        assert_eq!(decode(&encode(&extreme), i64::MAX).expect("chunk"), extreme);
    }

    #[test]
    fn damage_is_an_error() {
        let bytes = encode(&[Posting {
            time: 5,
            seq: 6,
            block: 7,
            slot: 8,
        }]);
        assert!(decode(&bytes[..bytes.len() - 1], 5).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, 5).is_err());
        assert!(decode(&[0xff, 0xff, 0xff, 0xff, 0x0f], 5).is_err());
        assert!(decode(&[0x80; 20], 5).is_err());
    }
}
