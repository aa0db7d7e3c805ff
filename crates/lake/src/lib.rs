//! SQL over CloudTrail events with Apache DataFusion. DataFusion, Arrow and Parquet are
//! dependencies of this crate only, so the rest of the workspace builds without them.
//!
//! This first part is **raw mode**: `cairn query --source DIR "SQL"` over a tree of CloudTrail
//! `{"Records":[...]}` `.json.gz` files (Cairn's or AWS's `AWSLogs/...` layout; digest files are
//! skipped), as the table `events` with CloudTrail Lake's column names. Files are read and parsed
//! on every core; the events are held in memory for the query (a tree larger than memory is not
//! supported yet). Event data stores, Parquet, retention, import and the query routes are not
//! built yet (issue 7).

pub mod raw;
pub mod schema;

pub use datafusion;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use std::path::Path;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// Reading the tree failed.
    #[error("reading {path}: {message}")]
    Read {
        /// The file or directory.
        path: String,
        /// What failed.
        message: String,
    },
    /// DataFusion refused or failed the query.
    #[error(transparent)]
    Query(#[from] datafusion::error::DataFusionError),
    /// Arrow failed.
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

/// What a raw-mode query read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Log files read.
    pub files: usize,
    /// Digest and other non-log files skipped.
    pub skipped: usize,
    /// Records loaded.
    pub records: usize,
    /// Compressed bytes read.
    pub bytes: u64,
    /// Files that could not be read, with why (reported, not fatal).
    pub malformed: Vec<(String, String)>,
}

/// Runs `sql` over the tree at `dir` (table `events`).
pub async fn query_tree(
    dir: &Path,
    sql: &str,
) -> Result<(Vec<RecordBatch>, ScanReport), LakeError> {
    let (batch, report) = raw::load(dir)?;
    // CloudTrail Lake's column names are camelCase and its queries write them unquoted.
    let config = datafusion::prelude::SessionConfig::new()
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_batch("events", batch)?;
    let frame = ctx.sql(sql).await?;
    Ok((frame.collect().await?, report))
}

/// Formats batches as a text table.
pub fn to_table(batches: &[RecordBatch]) -> Result<String, LakeError> {
    Ok(datafusion::arrow::util::pretty::pretty_format_batches(batches)?.to_string())
}

#[cfg(test)]
mod tests;
