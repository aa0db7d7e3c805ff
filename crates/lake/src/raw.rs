//! Reading a CloudTrail tree into one Arrow batch: every `*.json.gz` log file under the
//! directory (digest files skipped), decompressed and parsed on every core.

use crate::schema::{self, IDENTITY_FIELDS, JSON_COLUMNS, TEXT_COLUMNS};
use crate::{LakeError, ScanReport};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, StringBuilder, StructArray, TimestampMillisecondBuilder,
};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn files(dir: &Path) -> Result<(Vec<PathBuf>, usize), LakeError> {
    let mut out = Vec::new();
    let mut skipped = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| LakeError::Read {
            path: d.display().to_string(),
            message: e.to_string(),
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                if name.ends_with(".json.gz") && !name.contains("_CloudTrail-Digest_") {
                    out.push(path);
                } else {
                    skipped += 1;
                }
            }
        }
    }
    out.sort();
    Ok((out, skipped))
}

/// The records of one file and its compressed size, or why it could not be read.
type FileRead = Result<(Vec<Value>, u64), String>;

/// Records of one file: `(records, compressed bytes)` or why it could not be read.
fn read_file(path: &Path) -> FileRead {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let json = cairn_logfile::body::decompress(&bytes, 1 << 30).map_err(|e| e.to_string())?;
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(rename = "Records")]
        records: Vec<Value>,
    }
    let file: File =
        serde_json::from_slice(&json).map_err(|e| format!("not a Records file: {e}"))?;
    Ok((file.records, bytes.len() as u64))
}

/// Loads the tree under `dir`.
pub fn load(dir: &Path) -> Result<(RecordBatch, ScanReport), LakeError> {
    let (paths, skipped) = files(dir)?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    let chunks: Vec<Vec<PathBuf>> = (0..threads)
        .map(|i| paths.iter().skip(i).step_by(threads).cloned().collect())
        .collect();
    let results: Vec<Vec<(PathBuf, FileRead)>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| s.spawn(move || chunk.iter().map(|p| (p.clone(), read_file(p))).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut report = ScanReport {
        skipped,
        ..ScanReport::default()
    };
    let mut records: Vec<Value> = Vec::new();
    for (path, result) in results.into_iter().flatten() {
        match result {
            Ok((mut r, bytes)) => {
                report.files += 1;
                report.bytes += bytes;
                records.append(&mut r);
            }
            Err(e) => report.malformed.push((path.display().to_string(), e)),
        }
    }
    report.records = records.len();
    Ok((to_batch(&records)?, report))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Builds the batch of `records` in the schema of [`schema::schema`].
pub fn to_batch(records: &[Value]) -> Result<RecordBatch, LakeError> {
    let mut time = TimestampMillisecondBuilder::with_capacity(records.len()).with_timezone("UTC");
    let mut identity: Vec<StringBuilder> = IDENTITY_FIELDS
        .iter()
        .map(|_| StringBuilder::new())
        .collect();
    let mut texts: Vec<StringBuilder> = TEXT_COLUMNS.iter().map(|_| StringBuilder::new()).collect();
    let mut jsons: Vec<StringBuilder> = JSON_COLUMNS.iter().map(|_| StringBuilder::new()).collect();
    let mut read_only = BooleanBuilder::new();
    let mut management = BooleanBuilder::new();
    for record in records {
        time.append_option(
            record["eventTime"]
                .as_str()
                .and_then(|t| cairn_model::time::parse_utc(t).ok()),
        );
        for (i, f) in IDENTITY_FIELDS.iter().enumerate() {
            identity[i].append_option(record["userIdentity"].get(*f).and_then(text));
        }
        for (i, c) in TEXT_COLUMNS.iter().enumerate() {
            texts[i].append_option(record.get(*c).and_then(text));
        }
        for (i, c) in JSON_COLUMNS.iter().enumerate() {
            jsons[i].append_option(
                record
                    .get(*c)
                    .filter(|v| !v.is_null())
                    .map(Value::to_string),
            );
        }
        let boolean = |v: &Value| match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            _ => None,
        };
        read_only.append_option(boolean(&record["readOnly"]));
        management.append_option(boolean(&record["managementEvent"]));
    }
    let identity_fields = match schema::identity_type() {
        datafusion::arrow::datatypes::DataType::Struct(fields) => fields,
        _ => unreachable!("identity is a struct"),
    };
    let identity_array = StructArray::new(
        identity_fields,
        identity
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect(),
        None,
    );
    let mut columns: Vec<ArrayRef> = vec![Arc::new(time.finish()), Arc::new(identity_array)];
    columns.extend(texts.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.extend(jsons.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.push(Arc::new(read_only.finish()));
    columns.push(Arc::new(management.finish()));
    Ok(RecordBatch::try_new(schema::schema(), columns)?)
}
