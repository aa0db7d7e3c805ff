//! Reading event files for `put-events`: gzip by magic number, JSON array, `{"Records":[...]}`
//! or NDJSON, split into requests without re-encoding a single event.

use anyhow::Context;
use serde_json::value::RawValue;
use std::io::Read;

/// Largest input file accepted (decompressed).
pub const MAX_INPUT_BYTES: u64 = 1024 * 1024 * 1024;

/// Reads a file (or stdin for `-`), decompressing gzip.
pub fn read_input(path: &str) -> anyhow::Result<Vec<u8>> {
    let mut raw = Vec::new();
    if path == "-" {
        std::io::stdin()
            .read_to_end(&mut raw)
            .context("reading standard input")?;
    } else {
        raw = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    }
    if raw.starts_with(&[0x1f, 0x8b]) {
        return gunzip_capped(&raw, path);
    }
    Ok(raw)
}

/// Decompresses gzip `bytes` of the input `name`, refusing (not cutting) more than
/// [`MAX_INPUT_BYTES`]: a small file that would inflate to gigabytes is an error, not a
/// machine out of memory.
pub fn gunzip_capped(bytes: &[u8], name: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("decompressing {name}"))?;
    if out.len() as u64 > MAX_INPUT_BYTES {
        anyhow::bail!(
            "{name} decompresses to more than {} MiB, the most a client command reads from one file; split it",
            MAX_INPUT_BYTES >> 20
        );
    }
    Ok(out)
}

/// How a file lists its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// JSON array or Records object: chunks are sent as JSON arrays.
    Json,
    /// NDJSON: chunks are sent as NDJSON.
    Ndjson,
}

#[derive(serde::Deserialize)]
struct RecordsFile<'a> {
    #[serde(borrow, rename = "Records")]
    records: Vec<&'a RawValue>,
}

fn json_events<'a>(bytes: &'a [u8], name: &str) -> anyhow::Result<Vec<&'a [u8]>> {
    let items: Vec<&RawValue> = if bytes.trim_ascii_start().starts_with(b"[") {
        serde_json::from_slice(bytes)
            .with_context(|| format!("{name} is not a valid JSON array"))?
    } else {
        let file: RecordsFile<'_> = serde_json::from_slice(bytes)
            .with_context(|| format!("{name} is not a {{\"Records\":[...]}} file"))?;
        file.records
    };
    Ok(items.into_iter().map(|r| r.get().as_bytes()).collect())
}

/// Splits a file into its events' raw bytes.
pub fn split<'a>(bytes: &'a [u8], name: &str) -> anyhow::Result<(Shape, Vec<&'a [u8]>)> {
    match bytes.trim_ascii_start().first() {
        Some(b'[') => Ok((Shape::Json, json_events(bytes, name)?)),
        // A Records file, or NDJSON whose first line is an object.
        Some(b'{') => match json_events(bytes, name) {
            Ok(events) => Ok((Shape::Json, events)),
            Err(_) => Ok((Shape::Ndjson, ndjson_lines(bytes))),
        },
        _ => Ok((Shape::Ndjson, ndjson_lines(bytes))),
    }
}

fn ndjson_lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
        .collect()
}

/// Encodes a chunk of events as a request body.
pub fn encode_chunk(shape: Shape, events: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
    match shape {
        Shape::Json => {
            body.push(b'[');
            for (i, event) in events.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(event);
            }
            body.push(b']');
        }
        Shape::Ndjson => {
            for event in events {
                body.extend_from_slice(event);
                body.push(b'\n');
            }
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let (shape, events) = split(br#"{"Records":[{"a":1}, {"b" : 2}]}"#, "x").expect("records");
        assert_eq!(shape, Shape::Json);
        assert_eq!(events, vec![&br#"{"a":1}"#[..], &br#"{"b" : 2}"#[..]]);
        let (shape, events) = split(b"{\"a\":1}\n{\"b\":2}\n\nnot json\n", "x").expect("ndjson");
        assert_eq!(shape, Shape::Ndjson);
        assert_eq!(events.len(), 3);
        let (shape, events) = split(b" [ {\"a\":1} ]", "x").expect("array");
        assert_eq!((shape, events.len()), (Shape::Json, 1));
        assert_eq!(encode_chunk(Shape::Json, &events), b"[{\"a\":1}]");
    }
}
