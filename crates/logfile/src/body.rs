//! Log file bodies: `{"Records":[r1,r2,...]}` with every record's bytes unchanged, gzip with one
//! member and a fixed header (mtime 0), so the same records always give the same bytes.

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use serde_json::value::RawValue;
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
    let total: usize = records.iter().map(|r| r.as_ref().len() + 1).sum();
    let encoder: GzEncoder<Vec<u8>> = GzBuilder::new()
        .mtime(0)
        .write(Vec::with_capacity(total / 8 + 64), Compression::new(LEVEL));
    // Hand the compressor large blocks, not one call per record.
    let mut buffered = std::io::BufWriter::with_capacity(256 * 1024, encoder);
    let mut write = |bytes: &[u8]| {
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
    write(b"]}");
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
    let mut out = Vec::new();
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
    fn round_trip_keeps_record_bytes() {
        let file = encode(&[A, B]);
        assert_eq!(&file[..2], &[0x1f, 0x8b]);
        let json = decompress(&file, 1 << 20).expect("decompress");
        assert_eq!(
            json,
            br#"{"Records":[{"eventID":"a","x":[1, 2]},{ "eventID" : "b" }]}"#
        );
        assert_eq!(records(&json).expect("records"), vec![A, B]);
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
}
