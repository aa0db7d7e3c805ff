//! Raw mode: a CloudTrail tree (`AWSLogs/...` of `{"Records":[...]}` `.json.gz` files, Cairn's
//! or AWS's layout, in a directory or under an S3 prefix) as the table `events`, with no import.
//!
//! Files are listed once; each query prunes them by account, region and time from their keys
//! (`<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz`), using the predicates
//! DataFusion hands the scan, then reads the rest as a stream: one partition per core (more for
//! object stores), each decompressing and parsing its files in turn into batches of at most
//! [`BATCH_ROWS`] rows, with at most two batches in flight per partition — memory stays bounded
//! whatever the size of the tree. Digest files are skipped; a file that cannot be read or parsed
//! is reported and the query goes on.
//!
//! ## How it reads fast
//!
//! The JSON functions take each path step with a checking scan of the text (`json_scan.rs`),
//! leaving what it does not judge the same way (an escaped name, deep nesting) to `serde_json`;
//! within a batch, a value met before is answered from a memo (a console login's
//! `additionalEventData` takes a dozen forms), which turns itself off when values seldom repeat.
//! Raw mode never copies: its table lists the tree (a local tree's directories of one depth in
//! parallel, one share per core, put back in name order; each directory once, known by its device
//! and inode, so a link back to an ancestor or to a listed directory adds nothing; a link to a file
//! of the tree is left out, files' inodes coming from the listing, without a `stat`), prunes files
//! by the account, region and minute in their keys, and streams the rest through per-core
//! partitions that parse only the columns the query reads. On Unix a local file is opened relative
//! to its directory, kept open while its files are read (`openat`: one name looked up, not the
//! whole path). A file is inflated whole with libdeflate when its gzip trailer vouches for a single
//! member (else by the streaming decoder, which names what is wrong), searched for the literals the
//! query compares text columns with (`prefilter`: a file or record without them is not parsed, one
//! with a JSON escape always is; records are delimited by a structural scan — strings skipped by
//! the marks described next, brackets counted — so that ruled-out records cost no parsing), and
//! otherwise read in one pass straight into Arrow builders by the same checking scan: each file's
//! quotes, backslashes and control characters are first marked in a bit per byte, sixteen bytes per
//! SSE2 instruction (through `safe_arch`: the workspace forbids `unsafe`; a byte-at-a-time loop
//! elsewhere than x86-64), so a string's end is a shift and a bit count; a record's member name is
//! first compared with the name that followed the previous member in the records before (records of
//! one source keep one order), then looked up in a collision-free hash table of the column names;
//! members no column takes are skipped (still checked), objects of struct columns (`userIdentity`,
//! `tlsDetails`) are read member by member (a member whose name's length is none of the members the
//! query reads is skipped without a comparison), other values go to the column code `serde_json`'s
//! path uses. An optimizer rule (`members.rs`) gives raw scans the members of `userIdentity` the
//! query reads when it reads the struct only by members with literal names (`userIdentity.arn`);
//! the other members are skipped and given as nulls, which nothing in that plan reads. A file the
//! scan refuses or does not judge is read by `serde_json`, which names the fault; a file that turns
//! out broken half-way is cut back out of the batch, so a damaged file adds nothing. The scan also
//! stops at a record whose `eventSource` may start with `aws:` (it does, or the value holds an
//! escape); that file is then read record by record, and the S3/SES notification records are left
//! out and counted. The inflate buffer of each partition only grows, so it is zeroed once, not per
//! file.

use crate::columns::{self, Added, EventsBuilder};
use crate::prefilter::Needles;
use crate::time_range::TimeRange;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

mod listing;
mod open;
pub use listing::*;
pub use open::*;

/// Rows per batch a partition emits.
pub const BATCH_ROWS: usize = 8192;

/// Largest uncompressed log file accepted (AWS's are far smaller).
const MAX_FILE_BYTES: usize = 1 << 30;

/// Where the tree is.
#[derive(Clone)]
pub enum TreeSource {
    /// A local directory.
    Dir(PathBuf),
    /// An object store (S3-compatible) and a key prefix.
    Objects {
        /// The bucket.
        store: Arc<dyn object_store::ObjectStore>,
        /// Key prefix (may be empty).
        prefix: String,
    },
}

impl std::fmt::Debug for TreeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(d) => write!(f, "Dir({})", d.display()),
            Self::Objects { prefix, .. } => write!(f, "Objects({prefix})"),
        }
    }
}

/// What a query read from a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Log files in the tree.
    pub files_listed: usize,
    /// Log files left out by account, region or time from their keys.
    pub files_pruned: usize,
    /// Log files read.
    pub files_read: usize,
    /// Digest and other non-log files skipped.
    pub skipped: usize,
    /// Compressed bytes read.
    pub bytes: u64,
    /// Records, foreign (`aws:*`) and malformed records.
    pub added: Added,
    /// Records not parsed because their text lacks the query's literals ([`Needles`]).
    pub records_ruled_out: usize,
    /// Files read but not parsed because their text lacks the query's literals.
    pub files_ruled_out: usize,
    /// Files that could not be read, with why (reported, not fatal).
    pub malformed_files: Vec<(String, String)>,
}

/// How far after its events a file may be delivered, for pruning by `eventTime < T`; `None`:
/// never prune on an upper time bound.
pub const DEFAULT_DELIVERY_BOUND_MS: Option<i64> = Some(24 * 3600 * 1000);

/// How far an event time may be after its file's delivery minute (producer clock skew).
const SKEW_MS: i64 = 15 * 60 * 1000 + 60 * 1000;

/// What the predicates allow: account and region sets, event-time bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruning {
    /// `recipientAccountId` in this set.
    pub accounts: Option<BTreeSet<String>>,
    /// `awsRegion` in this set.
    pub regions: Option<BTreeSet<String>>,
    /// The instants left open to `eventTime` (read as a store's day bounds are).
    pub(crate) time: TimeRange,
}

fn literal_text(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _) => Some(s.clone()),
        Expr::Cast(c) => literal_text(&c.expr),
        _ => None,
    }
}

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) => column_name(&c.expr),
        _ => None,
    }
}

impl Pruning {
    /// Collects what `filters` (ANDed) allow.
    pub fn from_filters(filters: &[Expr]) -> Self {
        let mut p = Pruning {
            time: TimeRange::of(filters),
            ..Pruning::default()
        };
        for f in filters {
            p.add(f);
        }
        p
    }

    fn restrict(set: &mut Option<BTreeSet<String>>, values: BTreeSet<String>) {
        *set = Some(match set.take() {
            None => values,
            Some(old) => old.intersection(&values).cloned().collect(),
        });
    }

    fn add(&mut self, e: &Expr) {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                if *op == Operator::And {
                    self.add(left);
                    self.add(right);
                    return;
                }
                // Normalise to `column op literal`.
                let (col, op, lit) = match (column_name(left), column_name(right)) {
                    (Some(c), None) => (c, *op, right.as_ref()),
                    (None, Some(c)) => match op.swap() {
                        Some(swapped) => (c, swapped, left.as_ref()),
                        None => return,
                    },
                    _ => return,
                };
                match (col, op) {
                    ("recipientAccountId", Operator::Eq) => {
                        if let Some(v) = literal_text(lit) {
                            Self::restrict(&mut self.accounts, BTreeSet::from([v]));
                        }
                    }
                    ("awsRegion", Operator::Eq) => {
                        if let Some(v) = literal_text(lit) {
                            Self::restrict(&mut self.regions, BTreeSet::from([v]));
                        }
                    }
                    _ => {}
                }
            }
            Expr::InList(list) if !list.negated => {
                let values: Option<BTreeSet<String>> = list.list.iter().map(literal_text).collect();
                match (column_name(&list.expr), values) {
                    (Some("recipientAccountId"), Some(v)) => Self::restrict(&mut self.accounts, v),
                    (Some("awsRegion"), Some(v)) => Self::restrict(&mut self.regions, v),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Whether `file` may hold matching events. `bound`: the longest delivery delay assumed.
    pub fn keeps(&self, file: &LogFile, bound: Option<i64>) -> bool {
        if let (Some(set), Some(a)) = (&self.accounts, &file.account) {
            if !set.contains(a) {
                return false;
            }
        }
        if let (Some(set), Some(r)) = (&self.regions, &file.region) {
            if !set.contains(r) {
                return false;
            }
        }
        if let Some(minute) = file.minute {
            // A file holds events from before its delivery (up to `bound` before), never from
            // after it (beyond producer clock skew).
            if self.time.from.is_some_and(|from| minute + SKEW_MS < from) {
                return false;
            }
            if let (Some(to), Some(bound)) = (self.time.to, bound) {
                if minute - bound > to {
                    return false;
                }
            }
        }
        true
    }
}

/// The tree as a DataFusion table.
#[derive(Debug, Clone)]
pub struct TreeTable {
    source: TreeSource,
    files: Arc<[LogFile]>,
    skipped: usize,
    delivery_bound: Option<i64>,
    partitions: usize,
    report: Arc<Mutex<ScanReport>>,
    /// The only members of `userIdentity` the query reads, when it names them all (see
    /// [`crate::members`]); `None`: all.
    identity_members: Option<Arc<[String]>>,
}

impl TreeTable {
    /// Lists the tree. `delivery_bound`: see [`DEFAULT_DELIVERY_BOUND_MS`].
    pub async fn open(
        source: TreeSource,
        delivery_bound: Option<i64>,
    ) -> Result<Self, crate::LakeError> {
        let locations = list(&source).await?;
        // Object reads wait on the network: more of them in flight than cores.
        let partitions = match &source {
            TreeSource::Dir(_) => crate::cores(),
            TreeSource::Objects { .. } => crate::cores() * 8,
        };
        let total = locations.len();
        let files: Arc<[LogFile]> = classify_all(locations).into();
        Ok(Self {
            source,
            skipped: total - files.len(),
            files,
            delivery_bound,
            partitions,
            report: Arc::new(Mutex::new(ScanReport::default())),
            identity_members: None,
        })
    }

    /// What the scans so far read.
    pub fn report(&self) -> ScanReport {
        self.report.lock().expect("report lock").clone()
    }

    /// The log files listed.
    pub fn files(&self) -> &[LogFile] {
        &self.files
    }

    /// The members of `userIdentity` its scans build, if not all.
    pub(crate) fn identity_members(&self) -> Option<&[String]> {
        self.identity_members.as_deref()
    }

    /// The same table (its listing, and the report its scans add to), whose scans build only
    /// the members `read` of `userIdentity`.
    pub(crate) fn reading_identity_members(&self, read: Vec<String>) -> Self {
        Self {
            identity_members: Some(read.into()),
            ..self.clone()
        }
    }
}

#[async_trait::async_trait]
impl TableProvider for TreeTable {
    fn schema(&self) -> SchemaRef {
        columns::schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Used to prune files; DataFusion still applies every filter to the rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let pruning = Pruning::from_filters(filters);
        let needles = Arc::new(Needles::from_filters(filters));
        // Indexes into the listing, which the partitions share.
        let kept: Vec<usize> = (0..self.files.len())
            .filter(|&i| pruning.keeps(&self.files[i], self.delivery_bound))
            .collect();
        {
            let mut report = self.report.lock().expect("report lock");
            report.files_listed = self.files.len();
            report.skipped = self.skipped;
            report.files_pruned += self.files.len() - kept.len();
        }
        let projection: Option<Vec<usize>> = projection.cloned();
        let schema = EventsBuilder::new(projection.as_deref()).schema();
        let n = self.partitions.clamp(1, kept.len().max(1));
        let partitions: Vec<Arc<dyn PartitionStream>> = (0..n)
            .map(|i| {
                Arc::new(TreePartition {
                    source: self.source.clone(),
                    listing: self.files.clone(),
                    files: kept
                        .iter()
                        .skip(i)
                        .step_by(n)
                        .copied()
                        .collect::<Vec<_>>()
                        .into(),
                    projection: projection.clone(),
                    identity_members: self.identity_members.clone(),
                    needles: needles.clone(),
                    schema: schema.clone(),
                    report: self.report.clone(),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            partitions,
            None,
            Vec::new(),
            false,
            None,
        )?))
    }
}

/// One partition's share of the files.
#[derive(Debug)]
struct TreePartition {
    source: TreeSource,
    listing: Arc<[LogFile]>,
    /// This partition's files: indexes into `listing`.
    files: Arc<[usize]>,
    projection: Option<Vec<usize>>,
    identity_members: Option<Arc<[String]>>,
    needles: Arc<Needles>,
    schema: SchemaRef,
    report: Arc<Mutex<ScanReport>>,
}

impl PartitionStream for TreePartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), 2);
        let tx = builder.tx();
        let source = self.source.clone();
        let listing = self.listing.clone();
        let files = self.files.clone();
        let projection = self.projection.clone();
        let identity_members = self.identity_members.clone();
        let report = self.report.clone();
        let needles = self.needles.clone();
        let handle = tokio::runtime::Handle::current();
        builder.spawn_blocking(move || {
            let mut events = EventsBuilder::new(projection.as_deref());
            if let Some(read) = &identity_members {
                events = events.reading_members(columns::USER_IDENTITY, read);
            }
            let mut local = ScanReport::default();
            let mut inflater = Inflater::new();
            let mut buffer = Vec::new();
            let mut compressed = Vec::new();
            let mut opener = Opener::default();
            for file in files.iter().map(|&i| &listing[i]) {
                let fetched = match &source {
                    // Read into one buffer (no allocation, no `stat` for the size per file).
                    TreeSource::Dir(_) => opener.read_into(&file.location, &mut compressed),
                    TreeSource::Objects { .. } => handle
                        .block_on(fetch(&source, &file.location))
                        .map(|bytes| {
                            compressed = bytes;
                            compressed.as_slice()
                        }),
                };
                let outcome = fetched.and_then(|bytes| {
                    local.bytes += bytes.len() as u64;
                    let json = gunzip(bytes, &mut inflater, &mut buffer)?;
                    if !needles.admits(json) {
                        // Nothing in the file can match: not even split into records.
                        local.files_ruled_out += 1;
                        return Ok((Added::default(), 0));
                    }
                    let admit = |record: &[u8]| needles.admits(record);
                    let admits: Option<&columns::Admits<'_>> =
                        (!needles.is_empty()).then_some(&admit);
                    events.append_file_where(json, admits)
                });
                match outcome {
                    Ok((added, left_out)) => {
                        local.files_read += 1;
                        local.added += added;
                        local.records_ruled_out += left_out;
                    }
                    Err(e) => local.malformed_files.push((file.location.clone(), e)),
                }
                if events.rows() >= BATCH_ROWS && tx.blocking_send(Ok(events.finish())).is_err() {
                    break; // the query was cancelled
                }
            }
            if events.rows() > 0 {
                let _ = tx.blocking_send(Ok(events.finish()));
            }
            let mut shared = report
                .lock()
                .map_err(|e| DataFusionError::Execution(e.to_string()))?;
            shared.files_read += local.files_read;
            shared.bytes += local.bytes;
            shared.added += local.added;
            shared.records_ruled_out += local.records_ruled_out;
            shared.files_ruled_out += local.files_ruled_out;
            shared.malformed_files.append(&mut local.malformed_files);
            Ok(())
        });
        builder.build()
    }
}

#[cfg(test)]
mod tests;
