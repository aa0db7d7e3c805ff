//! Opening a WAL directory: scan, verify and repair what a crash can leave behind.

use crate::fs::WalFs;
use crate::record::{self, decode_header, decode_record, Decoded, HeaderError, HEADER_LEN};
use std::path::{Path, PathBuf};

/// Why a WAL could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A file-system operation failed.
    #[error("write-ahead log file operation on {path} failed")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A segment is damaged where a crash cannot have damaged it.
    #[error("write-ahead log segment {path} is damaged at byte {offset}: {reason}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

/// What recovery found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files kept.
    pub segments: usize,
    /// Complete records found.
    pub records: u64,
    /// The last sequence number (0 if none).
    pub last_seq: u64,
    /// Bytes of torn tail cut off the last segment.
    pub torn_bytes_cut: u64,
    /// Last segments removed because their header never became whole.
    pub incomplete_segments_removed: usize,
}

pub(crate) struct Recovered {
    pub(crate) segments: Vec<u64>,
    pub(crate) last_seq: u64,
    /// The segment to keep appending to: `(first_seq, valid length)`.
    pub(crate) active: Option<(u64, u64)>,
    pub(crate) report: RecoveryReport,
}

fn read_whole(fs: &dyn WalFs, path: &Path) -> Result<Vec<u8>, OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = fs.open_read(path).map_err(io)?;
    let len = usize::try_from(file.size().map_err(io)?).unwrap_or(usize::MAX);
    let mut bytes = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let n = file
            .read_at(filled as u64, &mut bytes[filled..])
            .map_err(io)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    bytes.truncate(filled);
    Ok(bytes)
}

pub(crate) fn recover(dir: &Path, fs: &dyn WalFs) -> Result<Recovered, OpenError> {
    let io = |source| OpenError::Io {
        path: dir.to_path_buf(),
        source,
    };
    fs.create_dir_all(dir).map_err(io)?;
    let mut firsts: Vec<u64> = fs
        .list(dir)
        .map_err(io)?
        .iter()
        .filter_map(|n| record::parse_segment_name(n))
        .collect();
    firsts.sort_unstable();

    let mut report = RecoveryReport::default();
    let mut kept = Vec::new();
    let mut expected_next: Option<u64> = None;
    let mut active = None;
    let count = firsts.len();
    for (index, first) in firsts.into_iter().enumerate() {
        let is_last = index + 1 == count;
        let path = dir.join(record::segment_name(first));
        let corrupt = |offset: usize, reason: String| OpenError::Corrupt {
            path: path.clone(),
            offset: offset as u64,
            reason,
        };
        let bytes = read_whole(fs, &path)?;
        match decode_header(&bytes) {
            Ok(header_first) if header_first == first => {}
            Ok(header_first) => {
                return Err(corrupt(
                    0,
                    format!("header says first sequence {header_first}, name says {first}"),
                ))
            }
            Err(HeaderError::UnsupportedVersion(v)) => {
                return Err(corrupt(
                    8,
                    format!("unsupported segment format version {v}"),
                ))
            }
            Err(e) if is_last && bytes.len() <= HEADER_LEN => {
                // Created during a roll, crashed before its header was durable: holds nothing.
                tracing::warn!(path = %path.display(), error = ?e, "removing last segment with an incomplete header");
                fs.remove(&path).map_err(|source| OpenError::Io {
                    path: path.clone(),
                    source,
                })?;
                fs.sync_dir(dir).map_err(io)?;
                report.incomplete_segments_removed += 1;
                continue;
            }
            Err(e) => return Err(corrupt(0, format!("bad segment header: {e:?}"))),
        }
        if let Some(expected) = expected_next {
            if first != expected {
                return Err(corrupt(
                    0,
                    format!("segment starts at sequence {first}, expected {expected}"),
                ));
            }
        }
        let mut next = first;
        let mut offset = HEADER_LEN;
        while offset < bytes.len() {
            match decode_record(&bytes[offset..]) {
                Decoded::Record {
                    seq, encoded_len, ..
                } => {
                    if seq != next {
                        return Err(corrupt(
                            offset,
                            format!("record has sequence {seq}, expected {next}"),
                        ));
                    }
                    next += 1;
                    offset += encoded_len;
                    report.records += 1;
                }
                Decoded::Incomplete { .. } | Decoded::Corrupt(_) if is_last => break,
                Decoded::Incomplete { .. } => {
                    return Err(corrupt(offset, "segment ends inside a record".to_owned()))
                }
                Decoded::Corrupt(reason) => return Err(corrupt(offset, reason.to_owned())),
            }
        }
        if offset < bytes.len() {
            let cut = (bytes.len() - offset) as u64;
            tracing::warn!(path = %path.display(), valid_len = offset, cut_bytes = cut, "cutting torn tail of the last segment");
            let mut file = fs
                .open_append(&path, false)
                .map_err(|source| OpenError::Io {
                    path: path.clone(),
                    source,
                })?;
            file.truncate(offset as u64)
                .map_err(|source| OpenError::Io {
                    path: path.clone(),
                    source,
                })?;
            report.torn_bytes_cut += cut;
        }
        expected_next = Some(next);
        kept.push(first);
        active = Some((first, offset as u64));
    }
    if let Some((first, _)) = active {
        // Records recovered from the page cache after a process crash are made durable now,
        // before anything is built on them.
        let path = dir.join(record::segment_name(first));
        let mut file = fs
            .open_append(&path, false)
            .map_err(|source| OpenError::Io {
                path: path.clone(),
                source,
            })?;
        file.sync()
            .map_err(|source| OpenError::Io { path, source })?;
    }
    let last_seq = expected_next.map_or(0, |next| next - 1);
    report.segments = kept.len();
    report.last_seq = last_seq;
    Ok(Recovered {
        segments: kept,
        last_seq,
        active,
        report,
    })
}
