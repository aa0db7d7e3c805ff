//! Log file bodies: `{"Records":[r1,r2,...]}` with every record's bytes unchanged, gzip with one
//! member and a fixed header (mtime 0), so the same records always give the same bytes.

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

/// The compression level CloudTrail-compatible files are written with.
pub const LEVEL: u32 = 6;

/// The uncompressed JSON of a log file holding `records`.
pub fn records_json<R: AsRef<[u8]>>(records: &[R]) -> Vec<u8> {
    let total: usize = records.iter().map(|r| r.as_ref().len() + 1).sum();
    let mut out = Vec::with_capacity(total + 14);
    out.extend_from_slice(b"{\"Records\":[");
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(record.as_ref());
    }
    out.extend_from_slice(b"]}");
    out
}

/// A gzip log file (one member, level [`LEVEL`], mtime 0) holding `records`: the same bytes
/// as `gzip(&records_json(records))`, streamed without building the uncompressed JSON.
pub fn encode<R: AsRef<[u8]>>(records: &[R]) -> Vec<u8> {
    encode_inner(records, None, None)
}

/// [`encode`], also returning the lowercase hex SHA-256 of the uncompressed JSON (what a digest
/// lists for the file), computed in the same pass.
pub fn encode_hashed<R: AsRef<[u8]>>(records: &[R]) -> (Vec<u8>, String) {
    let mut hasher = Sha256::new();
    let file = encode_inner(records, None, Some(&mut hasher));
    (file, hex::encode(hasher.finalize()))
}

/// The member Cairn adds beside `Records` when a trail asks for it: one JSON object per
/// record, in the same order, saying who ingested it. Readers of CloudTrail files read
/// `Records` and ignore it.
pub const INGESTED_BY_MEMBER: &str = "cairnIngestedBy";

/// [`encode`] or [`encode_hashed`] (with `hash`) with the [`INGESTED_BY_MEMBER`] array
/// `ingested_by` (JSON objects, one per record) after `Records`.
pub fn encode_with_ingested_by<R: AsRef<[u8]>, P: AsRef<[u8]>>(
    records: &[R],
    ingested_by: &[P],
    hash: bool,
) -> (Vec<u8>, Option<String>) {
    let parts: Vec<&[u8]> = ingested_by.iter().map(AsRef::as_ref).collect();
    if hash {
        let mut hasher = Sha256::new();
        let file = encode_inner(records, Some(&parts), Some(&mut hasher));
        (file, Some(hex::encode(hasher.finalize())))
    } else {
        (encode_inner(records, Some(&parts), None), None)
    }
}

fn encode_inner<R: AsRef<[u8]>>(
    records: &[R],
    ingested_by: Option<&[&[u8]]>,
    mut hasher: Option<&mut Sha256>,
) -> Vec<u8> {
    let total: usize = records.iter().map(|r| r.as_ref().len() + 1).sum();
    let encoder: GzEncoder<Vec<u8>> = GzBuilder::new()
        .mtime(0)
        .write(Vec::with_capacity(total / 8 + 64), Compression::new(LEVEL));
    // Hand the compressor large blocks, not one call per record.
    let mut buffered = std::io::BufWriter::with_capacity(256 * 1024, encoder);
    let mut write = |bytes: &[u8]| {
        if let Some(hasher) = hasher.as_deref_mut() {
            hasher.update(bytes);
        }
        buffered
            .write_all(bytes)
            .expect("writing to a Vec cannot fail")
    };
    write(b"{\"Records\":[");
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            write(b",");
        }
        write(record.as_ref());
    }
    write(b"]");
    if let Some(parts) = ingested_by {
        write(b",\"");
        write(INGESTED_BY_MEMBER.as_bytes());
        write(b"\":[");
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                write(b",");
            }
            write(part);
        }
        write(b"]");
    }
    write(b"}");
    let encoder = buffered
        .into_inner()
        .map_err(|e| e.into_error())
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// Gzips `bytes` as one member with a fixed header.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder: GzEncoder<Vec<u8>> = GzBuilder::new().mtime(0).write(
        Vec::with_capacity(bytes.len() / 4 + 64),
        Compression::new(LEVEL),
    );
    encoder
        .write_all(bytes)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// Why a log file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not gzip, or damaged.
    #[error("log file is not valid gzip")]
    Gzip(#[source] std::io::Error),
    /// More than one gzip member, or bytes after the first (AWS tools reject these).
    #[error("log file has data after the end of its gzip member")]
    TrailingData,
    /// Larger than allowed once decompressed.
    #[error("log file decompresses to more than {0} bytes")]
    TooLarge(usize),
    /// Not `{"Records":[...]}`.
    #[error("log file is not a {{\"Records\":[...]}} object")]
    NotRecords(#[source] serde_json::Error),
}

/// Decompresses a log file (refusing more than `limit` bytes or a second member) and returns
/// its JSON.
pub fn decompress(file: &[u8], limit: usize) -> Result<Vec<u8>, ReadError> {
    // `bufread` consumes exactly one member from the slice, leaving what follows it.
    let mut decoder = flate2::bufread::GzDecoder::new(file);
    // CloudTrail JSON compresses about tenfold: one allocation instead of a dozen doublings.
    let mut out = Vec::with_capacity(file.len().saturating_mul(10).min(limit.saturating_add(1)));
    (&mut decoder)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(ReadError::Gzip)?;
    if out.len() > limit {
        return Err(ReadError::TooLarge(limit));
    }
    if !decoder.into_inner().is_empty() {
        return Err(ReadError::TrailingData);
    }
    Ok(out)
}

/// The lowercase hex SHA-256 of a log file's uncompressed bytes, decompressing in a stream
/// (nothing is held): what a digest's `hashValue` must equal. Refuses bytes after the first
/// gzip member as AWS's validator does.
pub fn hash_file(file: &[u8]) -> Result<String, ReadError> {
    let mut decoder = flate2::bufread::GzDecoder::new(file);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        match decoder.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Gzip(e)),
        }
    }
    if !decoder.into_inner().is_empty() {
        return Err(ReadError::TrailingData);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[derive(serde::Deserialize)]
struct EventTimeOnly<'a> {
    #[serde(borrow, rename = "eventTime")]
    event_time: Option<&'a str>,
}

/// The earliest and latest `eventTime` of `records` (a digest's `oldestEventTime` and
/// `newestEventTime` for the file); `None` when no record has one. Times are compared as
/// text, which orders CloudTrail's fixed `YYYY-MM-DDTHH:MM:SSZ` form correctly.
pub fn event_time_range<R: AsRef<[u8]>>(records: &[R]) -> Option<(String, String)> {
    let mut range: Option<(&str, &str)> = None;
    let parsed: Vec<Option<String>> = records
        .iter()
        .map(|r| {
            serde_json::from_slice::<EventTimeOnly<'_>>(r.as_ref())
                .ok()
                .and_then(|t| t.event_time.map(str::to_owned))
        })
        .collect();
    for time in parsed.iter().flatten() {
        range = Some(match range {
            None => (time, time),
            Some((oldest, newest)) => (oldest.min(time), newest.max(time)),
        });
    }
    range.map(|(o, n)| (o.to_owned(), n.to_owned()))
}

#[derive(serde::Deserialize)]
struct RecordsFile<'a> {
    #[serde(borrow, rename = "Records")]
    records: Vec<&'a RawValue>,
}

/// The raw bytes of each record of a log file's JSON, unchanged.
pub fn records(json: &[u8]) -> Result<Vec<&[u8]>, ReadError> {
    let file: RecordsFile<'_> = serde_json::from_slice(json).map_err(ReadError::NotRecords)?;
    Ok(file
        .records
        .into_iter()
        .map(|r| r.get().as_bytes())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = br#"{"eventID":"a","x":[1, 2]}"#;
    const B: &[u8] = br#"{ "eventID" : "b" }"#;

    #[test]
    fn hashes_while_encoding_and_from_the_file() {
        let (file, hash) = encode_hashed(&[A, B]);
        assert_eq!(file, encode(&[A, B]), "hashing changes no byte");
        let json = records_json(&[A, B]);
        assert_eq!(hash, hex::encode(Sha256::digest(&json)));
        assert_eq!(hash_file(&file).expect("hash"), hash);
        let empty: [&[u8]; 0] = [];
        assert_eq!(
            encode_hashed(&empty).1,
            "26a792db36a3afba23b1dd277fcc9f15a7313c4a92e4e4cc0494846af345ecff",
            "spec 3.4 vector: {{\"Records\":[]}}"
        );
        let mut two = file.clone();
        two.extend_from_slice(&file);
        assert!(matches!(hash_file(&two), Err(ReadError::TrailingData)));
        assert!(matches!(hash_file(b"not gzip"), Err(ReadError::Gzip(_))));
        assert!(matches!(
            hash_file(&file[..file.len() - 9]),
            Err(ReadError::Gzip(_))
        ));
    }

    #[test]
    fn event_time_range_reads_top_level_times_only() {
        let records: [&[u8]; 3] = [
            br#"{"requestParameters":{"eventTime":"1999-01-01T00:00:00Z"},"eventTime":"2026-03-02T10:05:00Z"}"#,
            br#"{"eventTime":"2026-03-02T09:59:59Z"}"#,
            br#"{"eventName":"NoTime"}"#,
        ];
        assert_eq!(
            event_time_range(&records),
            Some((
                "2026-03-02T09:59:59Z".to_owned(),
                "2026-03-02T10:05:00Z".to_owned()
            ))
        );
        assert_eq!(event_time_range(&records[2..]), None);
    }

    #[test]
    fn round_trip_keeps_record_bytes() {
        let file = encode(&[A, B]);
        assert_eq!(&file[..2], &[0x1f, 0x8b]);
        let json = decompress(&file, 1 << 20).expect("decompress");
        assert_eq!(
            json,
            br#"{"Records":[{"eventID":"a","x":[1, 2]},{ "eventID" : "b" }]}"#
        );
        assert_eq!(super::records(&json).expect("records"), vec![A, B]);
        assert_eq!(encode(&[A, B]), file, "deterministic bytes");
        assert_eq!(
            gzip(&records_json(&[A, B])),
            file,
            "streamed and buffered encodings agree"
        );
        assert_eq!(
            decompress(&encode::<&[u8]>(&[]), 100).expect("empty"),
            br#"{"Records":[]}"#
        );
    }

    #[test]
    fn second_members_trailing_bytes_and_bombs_are_refused() {
        let mut two = encode(&[A]);
        two.extend_from_slice(&encode(&[B]));
        assert!(matches!(
            decompress(&two, 1 << 20),
            Err(ReadError::TrailingData)
        ));
        let mut garbage = encode(&[A]);
        garbage.extend_from_slice(b"junk");
        assert!(matches!(
            decompress(&garbage, 1 << 20),
            Err(ReadError::TrailingData)
        ));
        let big = gzip(&vec![b' '; 10_000]);
        assert!(matches!(
            decompress(&big, 1000),
            Err(ReadError::TooLarge(1000))
        ));
        assert!(matches!(
            decompress(b"not gzip", 1000),
            Err(ReadError::Gzip(_))
        ));
        assert!(matches!(records(b"[1]"), Err(ReadError::NotRecords(_))));
    }
}

#[cfg(test)]
mod real_files {
    use super::*;
    use crate::keys::LogFileKey;

    /// A log file AWS delivered (from trailscraper's test data, see testdata/cloudtrail-samples).
    #[test]
    fn reads_a_real_aws_log_file_and_its_name() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/cloudtrail-samples/trailscraper");
        let name = "111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U";
        let file = std::fs::read(dir.join(format!("{name}.json.gz"))).expect("sample file");
        let json = decompress(&file, 64 << 20).expect("decompress");
        assert_eq!(
            json,
            std::fs::read(dir.join(format!("{name}.json"))).expect("plain copy")
        );
        let records = records(&json).expect("records");
        assert!(!records.is_empty());
        for record in &records {
            serde_json::from_slice::<serde_json::Value>(record).expect("each record is JSON");
        }
        let key: LogFileKey =
            format!("AWSLogs/111111111111/CloudTrail/eu-central-1/2017/12/11/{name}.json.gz")
                .parse()
                .expect("AWS's own name parses");
        assert_eq!(key.unique, "A6kvhMoVeCsc7v8U");
        assert_eq!(key.region, "eu-central-1");
    }

    #[test]
    fn ingested_by_goes_beside_records_and_in_the_hash() {
        let events = [
            br#"{"eventID":"a"}"#.to_vec(),
            br#"{"eventID":"b"}"#.to_vec(),
        ];
        let by = [
            br#"{"Type":"Cairn"}"#.to_vec(),
            br#"{"Type":"Unknown"}"#.to_vec(),
        ];
        let (file, hash) = encode_with_ingested_by(&events, &by, true);
        let json = decompress(&file, 1 << 20).expect("gzip");
        assert_eq!(
            json,
            br#"{"Records":[{"eventID":"a"},{"eventID":"b"}],"cairnIngestedBy":[{"Type":"Cairn"},{"Type":"Unknown"}]}"#
        );
        assert_eq!(hash, Some(hex::encode(Sha256::digest(&json))));
        // Readers of Records are not disturbed.
        assert_eq!(
            super::records(&json).expect("records"),
            vec![&br#"{"eventID":"a"}"#[..], &br#"{"eventID":"b"}"#[..]]
        );
    }
}
