//! The Lake: SQL over CloudTrail events with Apache DataFusion. DataFusion, Arrow and Parquet are
//! dependencies of this crate only, so the rest of the workspace builds without them.
//!
//! * [`columns`] — the `events` schema (CloudTrail Lake's column names) and a one-pass record
//!   parser that builds only the columns a query reads.
//! * [`raw`] — raw mode: a CloudTrail `.json.gz` tree (directory or S3 prefix) as a streaming
//!   table, pruned by account, region and time from the file keys.
//! * [`prefilter`] — raw mode skips parsing records (and files) that lack the literals a
//!   query's filters compare with.
//! * [`compact`] — small store files merged into large ones, crash-safe and unseen by queries.
//! * [`store`] — event data stores: zstd Parquet partitioned by date, retention, termination
//!   protection.
//! * [`query`] — sessions, statistics, the StartQuery / GetQueryResults bookkeeping.
//! * [`udf`] — `json_extract_scalar` / `json_extract`.

/// The `Visitor` methods for JSON scalars (strings, numbers, booleans, null), each answering
/// `$value` (`$this` names `self` in it): for visitors that look only inside objects or arrays.
macro_rules! scalars_answer {
    (|$this:ident| $value:expr) => {
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            let $this = self;
            Ok($value)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            let $this = self;
            Ok($value)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            let $this = self;
            Ok($value)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            let $this = self;
            Ok($value)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            let $this = self;
            Ok($value)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            let $this = self;
            Ok($value)
        }
    };
}

pub mod columns;
pub mod compact;
mod days;
pub mod imported;
mod json_scan;
pub mod limits;
mod members;
pub mod prefilter;
pub mod query;
pub mod raw;
pub mod store;
mod time_range;
pub mod udf;

pub use datafusion;

use datafusion::arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// Why a lake operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// Reading or writing a file failed.
    #[error("reading {path}: {message}")]
    Read {
        /// The file or directory.
        path: String,
        /// What failed.
        message: String,
    },
    /// The SQL is not a valid read-only query over the tables there are.
    #[error("{0}")]
    InvalidQuery(String),
    /// A parameter is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The advanced event selectors are not valid.
    #[error("{0}")]
    InvalidSelectors(String),
    /// No such event data store.
    #[error("event data store {0} not found")]
    NotFound(String),
    /// The name is taken.
    #[error("an event data store named {0} already exists")]
    AlreadyExists(String),
    /// A limit was reached.
    #[error("{0}")]
    Limit(String),
    /// Deleting a protected store.
    #[error("event data store {0} has termination protection enabled; disable it before deleting the store")]
    TerminationProtected(String),
    /// No such query.
    #[error("query {0} not found")]
    QueryNotFound(String),
    /// The query cannot do that now.
    #[error("{0}")]
    InactiveQuery(String),
    /// A `NextToken` Cairn did not hand out.
    #[error("NextToken {0:?} is not valid")]
    InvalidToken(String),
    /// Too many queries are queued or running (in all, or of one user).
    #[error("{0}")]
    TooManyQueries(String),
    /// DataFusion refused or failed the query.
    #[error(transparent)]
    Query(#[from] datafusion::error::DataFusionError),
    /// Arrow failed.
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// Parquet failed.
    #[error(transparent)]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
}

impl LakeError {
    /// The CloudTrail error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidQuery(_) | Self::Query(_) | Self::Arrow(_) => {
                "InvalidQueryStatementException"
            }
            Self::Invalid(_) => "InvalidParameterException",
            Self::InvalidSelectors(_) => "InvalidEventSelectorsException",
            Self::NotFound(_) => "EventDataStoreNotFoundException",
            Self::AlreadyExists(_) => "EventDataStoreAlreadyExistsException",
            Self::Limit(_) => "EventDataStoreMaxLimitExceededException",
            Self::TerminationProtected(_) => "EventDataStoreTerminationProtectedException",
            Self::QueryNotFound(_) => "QueryIdNotFoundException",
            Self::InactiveQuery(_) => "InactiveQueryException",
            Self::InvalidToken(_) => "InvalidNextTokenException",
            Self::TooManyQueries(_) => "MaxConcurrentQueriesException",
            Self::Read { .. } | Self::Parquet(_) => "InternalFailure",
        }
    }

    /// Whether the caller is at fault (a 4xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Read { .. } | Self::Parquet(_))
    }
}

/// The cores to read with.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` of every item, in the items' order, on up to one thread per core with at least
/// `per_thread` items each (on the calling thread when that is one). Item `k` goes to thread
/// `k % threads`: neighbours, which tend to cost alike, are spread over the threads.
pub(crate) fn map_on_cores<T: Send, R: Send>(
    items: Vec<T>,
    per_thread: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let n = items.len();
    let threads = cores().min(n.div_ceil(per_thread.max(1))).max(1);
    if threads == 1 {
        return items.into_iter().map(f).collect();
    }
    let mut shares: Vec<Vec<T>> = (0..threads).map(|_| Vec::new()).collect();
    for (k, item) in items.into_iter().enumerate() {
        shares[k % threads].push(item);
    }
    let f = &f;
    let mut answers: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = shares
            .into_iter()
            .map(|share| scope.spawn(move || share.into_iter().map(f).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a worker thread").into_iter())
            .collect()
    });
    (0..n)
        .map(|k| answers[k % threads].next().expect("one answer per item"))
        .collect()
}

/// Runs `sql` over a tree (table `events`); the result, the statistics and what was read.
pub async fn query_tree(
    source: raw::TreeSource,
    sql: &str,
    delivery_bound: Option<i64>,
) -> Result<(Vec<RecordBatch>, query::QueryStatistics, raw::ScanReport), LakeError> {
    let table = Arc::new(raw::TreeTable::open(source, delivery_bound).await?);
    let ctx = query::session();
    ctx.register_table("events", table.clone())?;
    let (batches, mut stats) = query::run(&ctx, sql).await?;
    let report = table.report();
    stats.bytes_scanned = report.bytes;
    // Every record read, whether parsed or ruled out by the text search (records in files
    // ruled out whole are not counted: the file was searched, not split into records).
    stats.events_scanned = (report.added.records + report.records_ruled_out) as u64;
    if stats.unfiltered_stream {
        stats.events_matched = report.added.records as u64;
    }
    Ok((batches, stats, report))
}

/// Formats batches as a text table.
pub fn to_table(batches: &[RecordBatch]) -> Result<String, LakeError> {
    Ok(datafusion::arrow::util::pretty::pretty_format_batches(batches)?.to_string())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod compact_tests;
