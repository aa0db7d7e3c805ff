//! Record blocks: the bodies of a day's events, compressed together.
//!
//! ```text
//! raw block := entry*
//! entry     := u32 LE length of value | u64 LE seq | i64 LE eventTime (ms)
//!              | digest of the producer's payload [16] | value
//! stored    := zstd(raw block)
//! ```
//!
//! `value` is an events value (the record, with its provenance when known; see
//! `stored_value`). An entry is addressed by its block number and its slot (its index in the
//! block). Blocks only grow: the open block of a day takes more entries until its raw size
//! reaches [`BLOCK_TARGET`], so an address, once given, stays valid.
//!
//! Records of one source look alike, so a block of about a hundred of them compresses well
//! (CloudTrail records shrink to about a tenth); a page of lookup results decompresses at most
//! one block per result.

/// Raw size at which a block is closed.
pub const BLOCK_TARGET: usize = 64 * 1024;

/// zstd level: 3 is zstd's default, the best ratio for the speed indexing needs.
const LEVEL: i32 = 3;

/// Per-entry header bytes.
const HEADER: usize = 4 + 8 + 8 + 16;

/// A block being filled (or read back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawBlock {
    bytes: Vec<u8>,
    /// Start of each entry in `bytes`.
    starts: Vec<u32>,
}

/// One entry of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// WAL sequence number of the event.
    pub seq: u64,
    /// Its `eventTime`.
    pub time: i64,
    /// The digest of the producer's payload (idempotent retries).
    pub digest: [u8; 16],
    /// The stored value.
    pub value: &'a [u8],
}

/// Why a stored block could not be read.
#[derive(Debug, thiserror::Error)]
#[error("damaged history block: {0}")]
pub struct BlockError(String);

impl RawBlock {
    /// An empty block.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Whether it has reached its target size.
    pub fn is_full(&self) -> bool {
        self.bytes.len() >= BLOCK_TARGET
    }

    /// Appends an entry; returns its slot.
    pub fn push(&mut self, seq: u64, time: i64, digest: &[u8; 16], value: &[u8]) -> u32 {
        let slot = self.starts.len() as u32;
        self.starts.push(self.bytes.len() as u32);
        self.bytes
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(&seq.to_le_bytes());
        self.bytes.extend_from_slice(&time.to_le_bytes());
        self.bytes.extend_from_slice(digest);
        self.bytes.extend_from_slice(value);
        slot
    }

    /// The entry at `slot`.
    pub fn entry(&self, slot: u32) -> Option<Entry<'_>> {
        let at = *self.starts.get(slot as usize)? as usize;
        let header = self.bytes.get(at..at + HEADER)?;
        let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
        Some(Entry {
            seq: u64::from_le_bytes(header[4..12].try_into().ok()?),
            time: i64::from_le_bytes(header[12..20].try_into().ok()?),
            digest: header[20..36].try_into().ok()?,
            value: self.bytes.get(at + HEADER..at + HEADER + len)?,
        })
    }

    /// The block as stored.
    pub fn compress(&self) -> Vec<u8> {
        thread_local! {
            // A compression context costs more to make than a small block to compress: one
            // per indexing thread, kept.
            static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
                const { std::cell::RefCell::new(None) };
        }
        // Compressing a byte slice in memory fails only on allocation failure.
        COMPRESSOR.with_borrow_mut(|compressor| {
            let compressor = match compressor {
                Some(compressor) => compressor,
                None => compressor.insert(
                    zstd::bulk::Compressor::new(LEVEL).expect("a zstd compression context"),
                ),
            };
            compressor
                .compress(&self.bytes)
                .expect("zstd compresses a buffer in memory")
        })
    }

    /// Reads a stored block back.
    pub fn decompress(stored: &[u8]) -> Result<Self, BlockError> {
        let size = zstd::zstd_safe::get_frame_content_size(stored)
            .ok()
            .flatten()
            .ok_or_else(|| BlockError("no content size".into()))?;
        if size > 16 * BLOCK_TARGET as u64 {
            return Err(BlockError(format!("{size} bytes is beyond any block")));
        }
        let bytes =
            zstd::bulk::decompress(stored, size as usize).map_err(|e| BlockError(e.to_string()))?;
        let mut starts = Vec::new();
        let mut at = 0usize;
        while at < bytes.len() {
            let header = bytes
                .get(at..at + HEADER)
                .ok_or_else(|| BlockError(format!("entry header cut at byte {at}")))?;
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
            let end = at + HEADER + len;
            if end > bytes.len() {
                return Err(BlockError(format!(
                    "entry at byte {at} runs past the block"
                )));
            }
            starts.push(at as u32);
            at = end;
        }
        Ok(Self { bytes, starts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_compression() {
        let mut block = RawBlock::new();
        let record = br#"{"eventVersion":"1.08","eventName":"ConsoleLogin"}"#;
        let mut slots = Vec::new();
        for i in 0..500u64 {
            slots.push(block.push(i + 7, 1_700_000_000_000 + i as i64, &[9; 16], record));
        }
        assert_eq!(slots, (0..500).collect::<Vec<u32>>());
        let stored = block.compress();
        assert!(stored.len() * 10 < block.bytes.len(), "{}", stored.len());
        let back = RawBlock::decompress(&stored).expect("block");
        assert_eq!(back, block);
        assert_eq!(
            back.entry(499),
            Some(Entry {
                seq: 506,
                time: 1_700_000_000_499,
                digest: [9; 16],
                value: record
            })
        );
        assert_eq!(back.entry(500), None);
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let mut block = RawBlock::new();
        block.push(1, 2, &[0; 16], b"{}");
        let stored = block.compress();
        assert!(RawBlock::decompress(&stored[..stored.len() - 1]).is_err());
        assert!(RawBlock::decompress(b"not zstd").is_err());
        // A frame whose content is not entries.
        let bad = zstd::bulk::compress(&[1, 0, 0, 0, 9], 3).expect("compress");
        assert!(RawBlock::decompress(&bad).is_err());
        // An entry header cut short.
        let bad = zstd::bulk::compress(&[0; 30], 3).expect("compress");
        assert!(RawBlock::decompress(&bad).is_err());
    }
}
