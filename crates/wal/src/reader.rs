//! Consumers' sequential readers.

use crate::fs::ReadAt;
use crate::record::{self, decode_record, Decoded, HEADER_LEN};
use crate::Shared;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Why reading failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The record wanted is no longer in the WAL (retired) or never was.
    #[error("sequence {0} is not in the write-ahead log")]
    Missing(u64),
    /// A segment could not be read.
    #[error("reading write-ahead log segment {path} failed")]
    Io {
        /// The segment.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A durable record is damaged.
    #[error("write-ahead log segment {path} is damaged at byte {offset}: {reason}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

struct OpenSegment {
    first: u64,
    path: PathBuf,
    file: Box<dyn ReadAt>,
    offset: u64,
    /// Sequence number of the record at `offset`.
    seq_at_offset: u64,
}

/// Reads durable records in order, starting at a given sequence number.
pub struct WalReader {
    shared: Arc<Shared>,
    next_seq: u64,
    segment: Option<OpenSegment>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for WalReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalReader")
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl WalReader {
    pub(crate) fn new(shared: Arc<Shared>, next_seq: u64) -> Self {
        Self {
            shared,
            next_seq,
            segment: None,
            buf: Vec::new(),
        }
    }

    /// The sequence number the next record read will have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn segment_for(&self, seq: u64) -> Option<(u64, Option<u64>)> {
        let segments = self
            .shared
            .segments
            .lock()
            .expect("wal segments lock poisoned");
        let index = segments
            .partition_point(|&first| first <= seq)
            .checked_sub(1)?;
        Some((segments[index], segments.get(index + 1).copied()))
    }

    fn open(&mut self, seq: u64) -> Result<(), ReadError> {
        let (first, _) = self.segment_for(seq).ok_or(ReadError::Missing(seq))?;
        let path = self.shared.dir.join(record::segment_name(first));
        let file = self
            .shared
            .fs
            .open_read(&path)
            .map_err(|source| ReadError::Io {
                path: path.clone(),
                source,
            })?;
        self.segment = Some(OpenSegment {
            first,
            path,
            file,
            offset: HEADER_LEN as u64,
            seq_at_offset: first,
        });
        Ok(())
    }

    /// Reads up to `max_records` durable records (and roughly at most `max_bytes` of payload;
    /// always at least one if one is durable). Empty when caught up.
    pub fn read_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<WalRecord>, ReadError> {
        let durable = self.shared.durable.load(Ordering::Acquire);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while self.next_seq <= durable && out.len() < max_records && bytes < max_bytes.max(1) {
            let (first, _) = self
                .segment_for(self.next_seq)
                .ok_or(ReadError::Missing(self.next_seq))?;
            let stale = self
                .segment
                .as_ref()
                .is_none_or(|s| s.first != first || s.seq_at_offset > self.next_seq);
            if stale {
                self.open(self.next_seq)?;
            }
            let segment = self.segment.as_mut().expect("opened above");
            let chunk = max_bytes.clamp(64 * 1024, 8 * 1024 * 1024);
            if self.buf.len() < chunk {
                self.buf.resize(chunk, 0);
            }
            let io = |source| ReadError::Io {
                path: segment.path.clone(),
                source,
            };
            let mut filled = segment
                .file
                .read_at(segment.offset, &mut self.buf)
                .map_err(io)?;
            let mut pos = 0;
            while out.len() < max_records && bytes < max_bytes.max(1) {
                match decode_record(&self.buf[pos..filled]) {
                    Decoded::Record {
                        seq,
                        payload,
                        encoded_len,
                    } => {
                        if seq != segment.seq_at_offset {
                            return Err(ReadError::Corrupt {
                                path: segment.path.clone(),
                                offset: segment.offset,
                                reason: "record out of sequence",
                            });
                        }
                        if seq > durable {
                            break;
                        }
                        if seq >= self.next_seq {
                            out.push(WalRecord {
                                seq,
                                payload: payload.to_vec(),
                            });
                            bytes += payload.len();
                            self.next_seq = seq + 1;
                        }
                        pos += encoded_len;
                        segment.offset += encoded_len as u64;
                        segment.seq_at_offset = seq + 1;
                    }
                    Decoded::Incomplete { needed } if pos == 0 && needed > self.buf.len() => {
                        // One record larger than the buffer: grow it and read again.
                        self.buf.resize(needed, 0);
                        filled = segment
                            .file
                            .read_at(segment.offset, &mut self.buf)
                            .map_err(io)?;
                    }
                    Decoded::Incomplete { .. } => break,
                    Decoded::Corrupt(reason) => {
                        return Err(ReadError::Corrupt {
                            path: segment.path.clone(),
                            offset: segment.offset,
                            reason,
                        });
                    }
                }
            }
            let (segment_first, seq_at_offset) = (segment.first, segment.seq_at_offset);
            if pos == 0 && seq_at_offset <= self.next_seq && self.next_seq <= durable {
                // The durable record `next_seq` belongs in this segment but is not there.
                if self.segment_for(seq_at_offset).map(|(f, _)| f) == Some(segment_first) {
                    return Err(ReadError::Missing(self.next_seq));
                }
            }
        }
        Ok(out)
    }
}
