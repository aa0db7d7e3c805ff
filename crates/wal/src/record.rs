//! Segment and record byte layout.
//!
//! ```text
//! segment := header record*
//! header  := magic "CAIRNWAL" (8) | version u32 LE (=1) | reserved u32 (=0) | first_seq u64 LE   (24 bytes)
//! record  := len u32 LE | crc32c u32 LE | seq u64 LE | payload[len]
//!            crc32c covers seq (8 bytes LE) then payload
//! ```
//!
//! A segment is named `{first_seq:020}.wal`; its records carry consecutive sequence numbers
//! starting at `first_seq`.

/// First bytes of every segment.
pub const MAGIC: &[u8; 8] = b"CAIRNWAL";
/// The segment format version this crate writes and reads.
pub const VERSION: u32 = 1;
/// Bytes in a segment header.
pub const HEADER_LEN: usize = 24;
/// Bytes in a record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest payload a record may hold.
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// Encodes a segment header.
pub fn encode_header(first_seq: u64) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[16..24].copy_from_slice(&first_seq.to_le_bytes());
    out
}

/// Why a segment header is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes.
    Short,
    /// Wrong magic number.
    BadMagic,
    /// A format version this build does not read.
    UnsupportedVersion(u32),
}

/// Decodes a segment header, returning `first_seq`.
pub fn decode_header(bytes: &[u8]) -> Result<u64, HeaderError> {
    if bytes.len() < HEADER_LEN {
        return Err(HeaderError::Short);
    }
    if &bytes[..8] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(HeaderError::UnsupportedVersion(version));
    }
    Ok(u64::from_le_bytes(
        bytes[16..24].try_into().expect("8 bytes"),
    ))
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&seq.to_le_bytes()), payload)
}

/// Appends one encoded record to `out`.
pub fn encode_record(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("payload length checked against MAX_PAYLOAD");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// The outcome of decoding the record at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, valid record and its encoded length.
    Record {
        /// Its sequence number.
        seq: u64,
        /// Its payload.
        payload: &'a [u8],
        /// Bytes the record occupies.
        encoded_len: usize,
    },
    /// The buffer ends inside the record; `needed` bytes would complete it.
    Incomplete {
        /// Bytes the whole record occupies.
        needed: usize,
    },
    /// The bytes are not a valid record (bad length or checksum).
    Corrupt(&'static str),
}

/// Decodes the record at the start of `buf`.
pub fn decode_record(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < RECORD_HEADER_LEN {
        return Decoded::Incomplete {
            needed: RECORD_HEADER_LEN,
        };
    }
    let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD {
        return Decoded::Corrupt("record length exceeds the maximum payload");
    }
    let needed = RECORD_HEADER_LEN + len;
    if buf.len() < needed {
        return Decoded::Incomplete { needed };
    }
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let seq = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
    let payload = &buf[RECORD_HEADER_LEN..needed];
    if checksum(seq, payload) != crc {
        return Decoded::Corrupt("record checksum mismatch");
    }
    Decoded::Record {
        seq,
        payload,
        encoded_len: needed,
    }
}

/// The file name of the segment starting at `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.wal")
}

/// The `first_seq` a segment file name encodes, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    (stem.len() == 20).then(|| stem.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_corruption() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, b"hello");
        assert_eq!(
            decode_record(&buf),
            Decoded::Record {
                seq: 7,
                payload: b"hello",
                encoded_len: buf.len()
            }
        );
        assert_eq!(
            decode_record(&buf[..buf.len() - 1]),
            Decoded::Incomplete { needed: buf.len() }
        );
        for bit in 0..buf.len() * 8 {
            let mut flipped = buf.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(
                    decode_record(&flipped),
                    Decoded::Record {
                        seq: 7,
                        payload: b"hello",
                        ..
                    }
                ),
                "bit {bit} flip went unnoticed"
            );
        }
    }

    #[test]
    fn header_round_trip() {
        assert_eq!(decode_header(&encode_header(42)), Ok(42));
        assert_eq!(decode_header(b"short"), Err(HeaderError::Short));
        let mut bad = encode_header(1);
        bad[0] = b'X';
        assert_eq!(decode_header(&bad), Err(HeaderError::BadMagic));
        let mut future = encode_header(1);
        future[8] = 9;
        assert_eq!(
            decode_header(&future),
            Err(HeaderError::UnsupportedVersion(9))
        );
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_name(1), "00000000000000000001.wal");
        assert_eq!(parse_segment_name(&segment_name(123)), Some(123));
        assert_eq!(parse_segment_name("00000000000000000001.tmp"), None);
        assert_eq!(parse_segment_name("1.wal"), None);
    }
}
