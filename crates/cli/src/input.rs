//! Reading event files for `put-events`: gzip by magic number, JSON array, `{"Records":[...]}`
//! or NDJSON, split into requests without re-encoding a single event.

use anyhow::Context;
use serde_json::value::RawValue;
use std::io::{BufRead, BufReader, Read};

/// Largest input file accepted (decompressed).
pub const MAX_INPUT_BYTES: u64 = 1024 * 1024 * 1024;

/// Decompresses gzip `bytes` of the input `name`, refusing (not cutting) more than
/// [`MAX_INPUT_BYTES`]: a small file that would inflate to gigabytes is an error, not a
/// machine out of memory.
pub fn gunzip_capped(bytes: &[u8], name: &str) -> anyhow::Result<Vec<u8>> {
    read_capped(flate2::read::MultiGzDecoder::new(bytes), name, || {
        format!(
            "{name} decompresses to more than {} MiB, the most a client command reads from one file; split it",
            MAX_INPUT_BYTES >> 20
        )
    })
}

/// Reads all of `reader` (the input `name`), refusing with `too_large` more than
/// [`MAX_INPUT_BYTES`].
fn read_capped(
    reader: impl Read,
    name: &str,
    too_large: impl FnOnce() -> String,
) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("reading {name}"))?;
    if out.len() as u64 > MAX_INPUT_BYTES {
        anyhow::bail!(too_large());
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

/// The events of one input, read a chunk at a time: NDJSON streams line by line (memory bounded
/// by a chunk whatever the file's size); a JSON array or a `{"Records":[...]}` file (a
/// CloudTrail log file, at most tens of MB) is read whole, up to [`MAX_INPUT_BYTES`].
pub enum Events {
    /// A whole JSON document's events, and how many were taken.
    Loaded {
        /// The document.
        bytes: Vec<u8>,
        /// The events' byte ranges in `bytes`.
        ranges: Vec<std::ops::Range<usize>>,
        /// Events handed out so far.
        next: usize,
    },
    /// NDJSON lines still to read.
    Lines(Box<dyn BufRead>),
}

impl Events {
    /// Opens `path` (`-`: standard input), decompressing gzip.
    pub fn open(path: &str) -> anyhow::Result<Self> {
        let raw: Box<dyn Read> = if path == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(path).with_context(|| format!("reading {path}"))?)
        };
        let mut raw = BufReader::with_capacity(1 << 20, raw);
        let gzip = raw
            .fill_buf()
            .with_context(|| format!("reading {path}"))?
            .starts_with(&[0x1f, 0x8b]);
        let mut reader: Box<dyn BufRead> = if gzip {
            Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::read::MultiGzDecoder::new(raw),
            ))
        } else {
            Box::new(raw)
        };
        // The first bytes tell a JSON document from NDJSON: `[`, or `{` whose first member
        // is `Records`.
        let head: Vec<u8> = {
            let buf = reader
                .fill_buf()
                .with_context(|| format!("reading {path}"))?;
            buf[..buf.len().min(4096)].to_vec()
        };
        let start = head.trim_ascii_start();
        let document = start.starts_with(b"[")
            || (start.starts_with(b"{")
                && start[1..].trim_ascii_start().starts_with(b"\"Records\""));
        if !document {
            return Ok(Self::Lines(reader));
        }
        let bytes = read_capped(reader, path, || {
            format!(
                "{path} is a JSON document of more than {} MiB; send it as NDJSON (one event per line), which is streamed",
                MAX_INPUT_BYTES >> 20
            )
        })?;
        let base = bytes.as_ptr() as usize;
        let ranges = json_events(&bytes, path)?
            .into_iter()
            .map(|e| {
                let at = e.as_ptr() as usize - base;
                at..at + e.len()
            })
            .collect();
        Ok(Self::Loaded {
            bytes,
            ranges,
            next: 0,
        })
    }

    /// How the chunks are encoded.
    pub fn shape(&self) -> Shape {
        match self {
            Self::Loaded { .. } => Shape::Json,
            Self::Lines(_) => Shape::Ndjson,
        }
    }

    /// The number of events, when known before reading them all.
    pub fn len_hint(&self) -> Option<usize> {
        match self {
            Self::Loaded { ranges, .. } => Some(ranges.len()),
            Self::Lines(_) => None,
        }
    }

    /// The next up to `n` events (empty at the end).
    pub fn next_chunk(&mut self, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
        match self {
            Self::Loaded {
                bytes,
                ranges,
                next,
            } => {
                let end = (*next + n).min(ranges.len());
                let chunk = ranges[*next..end]
                    .iter()
                    .map(|r| bytes[r.clone()].to_vec())
                    .collect();
                *next = end;
                Ok(chunk)
            }
            Self::Lines(reader) => {
                let mut chunk = Vec::with_capacity(n);
                let mut line = Vec::new();
                while chunk.len() < n {
                    line.clear();
                    if reader
                        .read_until(b'\n', &mut line)
                        .context("reading NDJSON")?
                        == 0
                    {
                        break;
                    }
                    let text = line.strip_suffix(b"\n").unwrap_or(&line);
                    let text = text.strip_suffix(b"\r").unwrap_or(text);
                    if text.iter().any(|b| !b.is_ascii_whitespace()) {
                        chunk.push(text.to_vec());
                    }
                }
                Ok(chunk)
            }
        }
    }
}

/// Encodes a chunk of events as a request body.
pub fn encode_chunk<E: AsRef<[u8]>>(shape: Shape, events: &[E]) -> Vec<u8> {
    let events: Vec<&[u8]> = events.iter().map(AsRef::as_ref).collect();
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

    fn all(content: &[u8]) -> (Shape, Vec<Vec<u8>>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("input");
        std::fs::write(&path, content).expect("write");
        let mut events = Events::open(path.to_str().expect("path")).expect("open");
        let shape = events.shape();
        let mut out = Vec::new();
        loop {
            let chunk = events.next_chunk(2).expect("chunk");
            if chunk.is_empty() {
                break;
            }
            assert!(chunk.len() <= 2);
            out.extend(chunk);
        }
        (shape, out)
    }

    #[test]
    fn shapes() {
        let (shape, events) = all(br#"{"Records":[{"a":1}, {"b" : 2}, {"c":3}]}"#);
        assert_eq!(shape, Shape::Json);
        assert_eq!(
            events,
            vec![
                br#"{"a":1}"#.to_vec(),
                br#"{"b" : 2}"#.to_vec(),
                br#"{"c":3}"#.to_vec()
            ]
        );
        let (shape, events) = all(b"{\"a\":1}\r\n{\"b\":2}\n\nnot json\n{\"c\":3}");
        assert_eq!(shape, Shape::Ndjson);
        assert_eq!(events.len(), 4);
        assert_eq!(events[0], b"{\"a\":1}");
        let (shape, events) = all(b" [ {\"a\":1} ]");
        assert_eq!((shape, events.len()), (Shape::Json, 1));
        assert_eq!(encode_chunk(Shape::Json, &events), b"[{\"a\":1}]");
        // gzip is read through, NDJSON still streamed.
        let (shape, events) = all(&cairn_logfile::body::gzip(b"{\"a\":1}\n{\"b\":2}\n"));
        assert_eq!((shape, events.len()), (Shape::Ndjson, 2));
    }

    #[test]
    fn a_gzip_bomb_is_refused_not_inflated() {
        // 2 GiB of zeros would inflate past the cap: refused with the reason.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..1100 {
            std::io::Write::write_all(&mut encoder, &zeros).expect("write");
        }
        let bomb = encoder.finish().expect("gzip");
        let error = gunzip_capped(&bomb, "bomb.gz").expect_err("over the cap");
        assert!(error.to_string().contains("more than 1024 MiB"), "{error}");
    }
}
