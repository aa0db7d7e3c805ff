//! Running queries: the session (CloudTrail Lake's unquoted camelCase names, the JSON
//! functions, read-only SQL), statistics taken from the executed plan, and the
//! StartQuery / DescribeQuery / GetQueryResults bookkeeping.

use crate::store::{partition_date, EventDataStore, Stores, PARTITION_COLUMN};
use crate::LakeError;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::SQLOptions;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{ident, lit, DataFrame, SessionConfig, SessionContext};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A session as Cairn runs queries: identifiers case-sensitive (Lake's camelCase names written
/// unquoted), string columns as `Utf8`, the JSON functions registered.
pub fn session() -> SessionContext {
    session_on(shared_runtime())
}

/// [`session`] on `runtime` (a query's own memory pool: [`crate::limits::Budget::session`]).
pub fn session_on(runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>) -> SessionContext {
    let config = SessionConfig::new()
        // A recursive CTE can grow without end and ignores every bound (crate::limits).
        .set_bool("datafusion.execution.enable_recursive_ctes", false)
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
        .set_bool(
            "datafusion.execution.parquet.schema_force_view_types",
            false,
        )
        .set_bool("datafusion.execution.parquet.pushdown_filters", true)
        .set_bool("datafusion.execution.parquet.reorder_filters", true)
        // Cairn's stores are written without bloom filters; looking for them costs each file a
        // probe per row group and column a predicate names (8.5 ms of a 33 ms query).
        .set_bool("datafusion.execution.parquet.bloom_filter_on_read", false)
        // Statistics of every file and column, gathered at each plan, serve join ordering and
        // answering `count(*)` from footers; Cairn's queries filter and aggregate one store,
        // and gathering them took 6–9 ms of every plan (a 30 ms query spent 12 ms planning).
        .set_bool("datafusion.execution.collect_statistics", false);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    crate::udf::register(&ctx);
    ctx.add_optimizer_rule(Arc::new(crate::days::StoreDays));
    ctx.add_optimizer_rule(Arc::new(crate::members::IdentityMembers));
    ctx
}

/// The process's runtime: one memory pool and one cache of Parquet footers for every query, so
/// a store's files are not re-read for their metadata at each query (Cairn's files are written
/// once and never changed in place). File listings are not cached: files arrive (the feeder)
/// and go (retention, deletion) between queries, and a stale listing would hide new events or
/// name files that are gone.
pub fn shared_runtime() -> Arc<datafusion::execution::runtime_env::RuntimeEnv> {
    static RUNTIME: std::sync::OnceLock<Arc<datafusion::execution::runtime_env::RuntimeEnv>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
                .with_object_list_cache_limit(0)
                .build_arc()
                .expect("the default runtime builds")
        })
        .clone()
}

/// CloudTrail Lake's query text names a store by its ID unquoted (`FROM 4f7a…-…`), which no
/// SQL parser reads as one identifier (it starts with a digit and holds `-`). Each unquoted
/// occurrence of one of `ids` outside string literals and quoted identifiers is quoted; the
/// rest of the text is kept as written.
pub fn quote_store_ids(sql: &str, ids: &[&str]) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut i = 0;
    let mut quote: Option<u8> = None;
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    // The end of the character at `i` (its bytes are copied whole).
    let char_end = |i: usize| {
        (i + 1..=bytes.len())
            .find(|&j| sql.is_char_boundary(j))
            .unwrap_or(bytes.len())
    };
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                let next = char_end(i);
                out.push_str(&sql[i..next]);
                if b == q {
                    quote = None;
                }
                i = next;
                continue;
            }
            None if b == b'\'' || b == b'"' => {
                quote = Some(b);
                out.push(b as char);
                i += 1;
                continue;
            }
            None => {}
        }
        let starts_word = i == 0 || !word(bytes[i - 1]);
        let found = starts_word
            .then(|| {
                ids.iter().find(|id| {
                    sql[i..].starts_with(**id)
                        && bytes.get(i + id.len()).is_none_or(|&next| !word(next))
                })
            })
            .flatten();
        match found {
            Some(id) => {
                out.push('"');
                out.push_str(id);
                out.push('"');
                i += id.len();
            }
            None => {
                let next = char_end(i);
                out.push_str(&sql[i..next]);
                i = next;
            }
        }
    }
    out
}

/// Only queries: no DDL, no DML, no `SET`.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Registers `store` on `ctx` under its name and its id, showing only events inside its
/// retention at `now_ms`.
pub async fn register_store(
    ctx: &SessionContext,
    stores: &Stores,
    store: &EventDataStore,
    now_ms: i64,
) -> Result<(), LakeError> {
    let (location, object_store) = stores.table_location(store)?;
    let url = ListingTableUrl::parse(location)?;
    if let Some(object_store) = object_store {
        ctx.register_object_store(url.object_store().as_ref(), object_store);
    }
    // The `date=` directories as a column, so that retention costs nothing on the rows of
    // days wholly inside it: those files are scanned with no retention predicate (a filter on
    // `date` alone is applied to the directory names when the files are listed), and only
    // the files of the day the cutoff falls in compare `eventTime`. Files of earlier days are
    // not even listed. When the cutoff's day holds no file (a store younger than its
    // retention, the usual case), the view is the one scan of the later days.
    // The format takes the session's Parquet options (a default `ParquetFormat` has its own,
    // and only `pushdown_filters` is also read from the session).
    let format = ParquetFormat::default().with_options(ctx.state().default_table_options().parquet);
    let options = ListingOptions::new(Arc::new(format))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![(PARTITION_COLUMN.to_owned(), DataType::Utf8)]);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(crate::columns::store_schema());
    let table = Arc::new(ListingTable::try_new(config)?);
    let cutoff = Stores::cutoff(store, now_ms);
    let cutoff_date = partition_date(cutoff);
    let cutoff_day = lit(cutoff_date.as_str());
    let columns = || {
        crate::columns::store_schema()
            .fields()
            .iter()
            .map(|f| ident(f.name()))
            .collect::<Vec<_>>()
    };
    let whole_days = ctx
        .read_table(table.clone())?
        .filter(ident(PARTITION_COLUMN).gt(cutoff_day.clone()))?
        .select(columns())?;
    let view = if !stores.day_has_files(store, &cutoff_date).await? {
        whole_days.into_view()
    } else {
        let cutoff_rows = ctx
            .read_table(table)?
            .filter(
                ident(PARTITION_COLUMN)
                    .eq(cutoff_day)
                    .and(
                        ident("eventTime").gt_eq(lit(ScalarValue::TimestampMillisecond(
                            Some(cutoff),
                            Some("UTC".into()),
                        ))),
                    ),
            )?
            .select(columns())?;
        whole_days.union(cutoff_rows)?.into_view()
    };
    ctx.register_table(store.name.as_str(), view.clone())?;
    if store.id != store.name {
        ctx.register_table(store.id.as_str(), view)?;
    }
    Ok(())
}

/// What a query read and matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryStatistics {
    /// Events that passed the query's filter on the scan (or every scanned event if none).
    pub events_matched: u64,
    /// Events read from storage.
    pub events_scanned: u64,
    /// Bytes read from storage (Parquet bytes fetched; compressed log bytes in raw mode).
    pub bytes_scanned: u64,
    /// Wall time.
    pub execution_ms: u64,
    /// Whether a scan that keeps no row counts of its own (raw mode's) fed the query with no
    /// filter above it: then every event it read matched.
    pub unfiltered_stream: bool,
}

fn is_scan(plan: &dyn ExecutionPlan) -> bool {
    matches!(plan.name(), "DataSourceExec" | "StreamingTableExec")
}

fn output_rows(plan: &dyn ExecutionPlan) -> u64 {
    plan.metrics().and_then(|m| m.output_rows()).unwrap_or(0) as u64
}

/// The scan below `plan` through pass-through operators, if any.
fn scan_below(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let mut node = plan.clone();
    loop {
        if is_scan(node.as_ref()) {
            return Some(node);
        }
        let children = node.children();
        if children.len() != 1
            || !matches!(
                node.name(),
                "CoalesceBatchesExec" | "RepartitionExec" | "ProjectionExec" | "CooperativeExec"
            )
        {
            return None;
        }
        node = children[0].clone();
    }
}

/// Statistics of an executed plan.
pub fn plan_statistics(plan: &Arc<dyn ExecutionPlan>) -> QueryStatistics {
    let mut stats = QueryStatistics::default();
    let mut filtered_scans: Vec<*const ()> = Vec::new();
    let mut stack = vec![plan.clone()];
    let mut scans = Vec::new();
    while let Some(node) = stack.pop() {
        if node.name() == "FilterExec" {
            if let Some(scan) = node.children().first().and_then(|c| scan_below(c)) {
                stats.events_matched += output_rows(node.as_ref());
                filtered_scans.push(Arc::as_ptr(&scan) as *const ());
            }
        }
        if is_scan(node.as_ref()) {
            scans.push(node.clone());
        }
        stack.extend(node.children().into_iter().cloned());
    }
    for scan in scans {
        let rows = output_rows(scan.as_ref());
        stats.events_scanned += rows;
        if !filtered_scans.contains(&(Arc::as_ptr(&scan) as *const ())) {
            stats.events_matched += rows;
            stats.unfiltered_stream |= scan.metrics().and_then(|m| m.output_rows()).is_none();
        }
        if let Some(metrics) = scan.metrics() {
            stats.bytes_scanned += metrics
                .sum_by_name("bytes_scanned")
                .map_or(0, |v| v.as_usize() as u64);
        }
    }
    stats
}

/// Runs a physical plan of `ctx` to its end: its result.
///
/// First, the store files its filtered scans will open are looked up in the process's cache of
/// Parquet footers with their page indexes, which the cache then keeps. DataFusion opens a file
/// asking for its footer without the page index (it may not be needed), caches that, and when a
/// predicate can use the page index reads and decodes it from the file for that query only:
/// about a tenth of a small store query's work went to decoding the same indexes every time.
pub async fn execute(
    ctx: &SessionContext,
    plan: Arc<dyn ExecutionPlan>,
) -> Result<Vec<RecordBatch>, LakeError> {
    use futures::StreamExt;
    warm_page_indexes(ctx, &plan).await?;
    // The result is held under the query's memory pool as it arrives: a result larger than
    // the query may hold fails the query rather than the server.
    let reservation = datafusion::execution::memory_pool::MemoryConsumer::new("query result")
        .register(&ctx.runtime_env().memory_pool);
    let mut stream = datafusion::physical_plan::execute_stream(plan, ctx.task_ctx())?;
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        reservation.try_grow(batch.get_array_memory_size())?;
        batches.push(batch);
    }
    Ok(batches)
}

/// The Parquet files that the scans of `plan` with a predicate will open, each looked up with
/// its page index in the runtime's footer cache (read from the file and kept when missing).
/// Files the cache already holds with their page index, the usual case, cost no lookup.
async fn warm_page_indexes(
    ctx: &SessionContext,
    plan: &Arc<dyn ExecutionPlan>,
) -> Result<(), LakeError> {
    use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
    use datafusion::datasource::physical_plan::{FileSource, ParquetSource};
    use datafusion::parquet::file::metadata::PageIndexPolicy;
    let cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
    for config in file_scans(plan) {
        let filtered = config
            .file_source()
            .downcast_ref::<ParquetSource>()
            .is_some_and(|source| source.filter().is_some());
        if !filtered {
            continue;
        }
        let store = ctx.runtime_env().object_store(&config.object_store_url)?;
        // Several files at once: a store in a bucket answers each lookup it misses after a
        // round trip or two (footer, then page index).
        let mut lookups = tokio::task::JoinSet::new();
        let missing = config
            .file_groups
            .iter()
            .flat_map(|group| group.files())
            .filter(|file| !page_index_cached(cache.as_ref(), &file.object_meta));
        for file in missing {
            if lookups.len() >= WARM_AT_ONCE {
                joined(lookups.join_next().await)?;
            }
            let (store, cache, meta) = (store.clone(), cache.clone(), file.object_meta.clone());
            lookups.spawn(async move {
                DFParquetMetadata::new(store.as_ref(), &meta)
                    .with_file_metadata_cache(Some(cache))
                    .with_page_index_policy(Some(PageIndexPolicy::Optional))
                    .fetch_metadata()
                    .await
                    .map(drop)
            });
        }
        while let Some(done) = lookups.join_next().await {
            joined(Some(done))?;
        }
    }
    Ok(())
}

/// The file scans of `plan` (its `DataSourceExec`s over files).
pub(crate) fn file_scans(
    plan: &Arc<dyn ExecutionPlan>,
) -> Vec<datafusion::datasource::physical_plan::FileScanConfig> {
    use datafusion::datasource::physical_plan::FileScanConfig;
    use datafusion::datasource::source::DataSourceExec;
    let mut stack = vec![plan.clone()];
    let mut found = Vec::new();
    while let Some(node) = stack.pop() {
        if let Some(config) = node
            .downcast_ref::<DataSourceExec>()
            .and_then(|s| s.data_source().downcast_ref::<FileScanConfig>())
        {
            found.push(config.clone());
        }
        stack.extend(node.children().into_iter().cloned());
    }
    found
}

/// Whether `cache` holds the footer of the file `meta` describes (as it is now) with its page
/// index.
pub(crate) fn page_index_cached(
    cache: &datafusion::execution::cache::cache_manager::FileMetadataCache,
    meta: &object_store::ObjectMeta,
) -> bool {
    use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
    cache.get(&meta.location).is_some_and(|entry| {
        entry.is_valid_for(meta)
            && entry
                .file_metadata
                .as_any()
                .downcast_ref::<CachedParquetMetaData>()
                .is_some_and(|m| {
                    let m = m.parquet_metadata();
                    m.column_index().is_some() && m.offset_index().is_some()
                })
    })
}

/// Footer lookups [`warm_page_indexes`] has in flight at most.
const WARM_AT_ONCE: usize = 16;

/// The outcome of a joined footer lookup.
fn joined(
    done: Option<Result<datafusion::error::Result<()>, tokio::task::JoinError>>,
) -> Result<(), LakeError> {
    match done {
        None => Ok(()),
        Some(Ok(outcome)) => Ok(outcome?),
        Some(Err(e)) => Err(datafusion::error::DataFusionError::External(Box::new(e)).into()),
    }
}

/// Runs `sql` on `ctx`: the result and what it read.
pub async fn run(
    ctx: &SessionContext,
    sql: &str,
) -> Result<(Vec<RecordBatch>, QueryStatistics), LakeError> {
    let started = std::time::Instant::now();
    let frame = ctx
        .sql_with_options(sql, read_only())
        .await
        .map_err(|e| LakeError::InvalidQuery(e.to_string()))?;
    run_frame(ctx, frame, started).await
}

/// Runs a planned query of `ctx` (started at `started`): the result and what it read.
pub async fn run_frame(
    ctx: &SessionContext,
    frame: DataFrame,
    started: std::time::Instant,
) -> Result<(Vec<RecordBatch>, QueryStatistics), LakeError> {
    let plan = frame.create_physical_plan().await?;
    let batches = execute(ctx, plan.clone()).await?;
    let mut stats = plan_statistics(&plan);
    stats.execution_ms = started.elapsed().as_millis() as u64;
    Ok((batches, stats))
}

/// The column names of a result.
pub fn column_names(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default()
}

/// A result row: `(column, value as text)` pairs, nulls as `None`.
pub type TextRow = Vec<(String, Option<String>)>;

/// Each row as `(column, value as text)` pairs (nulls as `None`); timestamps as
/// `YYYY-MM-DD HH:MM:SS.mmm` (CloudTrail Lake's rendering).
pub fn rows_as_text(batches: &[RecordBatch]) -> Result<Vec<TextRow>, LakeError> {
    let options = FormatOptions::default()
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.3f"))
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.3f"));
    let mut out = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            out.push(
                schema
                    .fields()
                    .iter()
                    .zip(&formatters)
                    .zip(batch.columns())
                    .map(|((field, f), column)| {
                        let value = (!column.is_null(row)).then(|| match field.data_type() {
                            DataType::Struct(_) | DataType::List(_) => {
                                json_value(column.as_ref(), row).to_string()
                            }
                            _ => f.value(row).to_string(),
                        });
                        (field.name().clone(), value)
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// A nested value as JSON (structs as objects, lists as arrays).
fn json_value(array: &dyn datafusion::arrow::array::Array, row: usize) -> Value {
    use datafusion::arrow::array::{Array, AsArray};
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Struct(fields) => {
            let s = array.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| (f.name().clone(), json_value(c.as_ref(), row)))
                    .filter(|(_, v)| !v.is_null())
                    .collect(),
            )
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let values = list.value(row);
            Value::Array(
                (0..values.len())
                    .map(|i| json_value(values.as_ref(), i))
                    .collect(),
            )
        }
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_owned()),
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        _ => ArrayFormatter::try_new(array, &FormatOptions::default())
            .map(|f| Value::String(f.value(row).to_string()))
            .unwrap_or(Value::Null),
    }
}

/// A query's state (`QueryStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Accepted, not started.
    Queued,
    /// Executing.
    Running,
    /// Done; results kept.
    Finished,
    /// Failed; `error` says why.
    Failed,
    /// Cancelled by CancelQuery.
    Cancelled,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

/// One query as DescribeQuery shows it.
#[derive(Debug, Clone)]
pub struct QueryRecord {
    /// UUID.
    pub id: String,
    /// The SQL.
    pub statement: String,
    /// State.
    pub status: Status,
    /// Statistics (when finished).
    pub statistics: QueryStatistics,
    /// Epoch ms.
    pub created: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// Result rows.
    pub rows: Arc<Vec<TextRow>>,
}

/// Most queries running at once (CloudTrail Lake's limit).
pub const MAX_CONCURRENT: usize = 10;
/// Finished queries kept for DescribeQuery / GetQueryResults (oldest forgotten first).
pub const KEPT_QUERIES: usize = 200;
/// Most result rows kept per query; beyond it the query fails and says so.
pub const MAX_RESULT_ROWS: usize = 1_000_000;

/// The queries of a server (in memory: results are not kept across restarts).
#[derive(Debug)]
pub struct Queries {
    state: Mutex<BTreeMap<String, QueryRecord>>,
    order: Mutex<Vec<String>>,
    /// Who started each query still queued or running, and how to stop its task.
    active: Mutex<BTreeMap<String, Active>>,
    limits: crate::limits::QueryLimits,
    /// Authenticates GetQueryResults' NextTokens.
    token_key: [u8; 32],
}

#[derive(Debug)]
struct Active {
    user: String,
    abort: Option<tokio::task::AbortHandle>,
}

impl Default for Queries {
    fn default() -> Self {
        Self::new(crate::limits::QueryLimits::default())
    }
}

impl Queries {
    /// No queries yet, under `limits`' concurrency.
    pub fn new(limits: crate::limits::QueryLimits) -> Self {
        Self {
            state: Mutex::default(),
            order: Mutex::default(),
            active: Mutex::default(),
            limits,
            token_key: rand::random(),
        }
    }

    /// Accepts a query of `user`: `Err` at once if too many are queued or running, in all or
    /// of that user.
    pub fn accept(&self, statement: &str, now_ms: i64, user: &str) -> Result<String, LakeError> {
        let mut state = self.state.lock().expect("queries lock");
        let mut active = self.active.lock().expect("queries lock");
        active.retain(|id, _| {
            state
                .get(id)
                .is_some_and(|q| matches!(q.status, Status::Queued | Status::Running))
        });
        if active.len() >= self.limits.max_concurrent {
            return Err(LakeError::TooManyQueries(format!(
                "at most {} queries may be queued or running at once (max_concurrent_queries)",
                self.limits.max_concurrent
            )));
        }
        if active.values().filter(|a| a.user == user).count() >= self.limits.max_per_user {
            return Err(LakeError::TooManyQueries(format!(
                "at most {} queries of one user may be queued or running at once (max_queries_per_user)",
                self.limits.max_per_user
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        active.insert(
            id.clone(),
            Active {
                user: user.to_owned(),
                abort: None,
            },
        );
        state.insert(
            id.clone(),
            QueryRecord {
                id: id.clone(),
                statement: statement.to_owned(),
                status: Status::Queued,
                statistics: QueryStatistics::default(),
                created: now_ms,
                error: None,
                rows: Arc::new(Vec::new()),
            },
        );
        let mut order = self.order.lock().expect("queries lock");
        order.push(id.clone());
        while order.len() > KEPT_QUERIES {
            let old = order.remove(0);
            state.remove(&old);
        }
        Ok(id)
    }

    /// The task running query `id`: CancelQuery aborts it.
    pub fn attach(&self, id: &str, abort: tokio::task::AbortHandle) {
        if let Some(active) = self.active.lock().expect("queries lock").get_mut(id) {
            active.abort = Some(abort);
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &crate::limits::QueryLimits {
        &self.limits
    }

    /// GetQueryResults' token for rows from `offset` of query `id`.
    pub fn token(&self, id: &str, offset: usize) -> String {
        format!("rows-{offset}-{}", self.token_mac(id, offset))
    }

    fn token_mac(&self, id: &str, offset: usize) -> String {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.token_key)
            .expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(&(offset as u64).to_be_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// The row offset a `NextToken` of query `id` stands for; a token not handed out for
    /// that query (changed, or of another query) is refused.
    pub fn parse_token(&self, id: &str, token: &str) -> Result<usize, LakeError> {
        let invalid = || LakeError::InvalidToken(token.to_owned());
        let (offset, mac) = token
            .strip_prefix("rows-")
            .and_then(|rest| rest.split_once('-'))
            .ok_or_else(invalid)?;
        let offset: usize = offset.parse().map_err(|_| invalid())?;
        let expected = self.token_mac(id, offset);
        let differs = expected
            .bytes()
            .zip(mac.bytes())
            .fold(u8::from(expected.len() != mac.len()), |acc, (a, b)| {
                acc | (a ^ b)
            });
        if differs != 0 {
            return Err(invalid());
        }
        Ok(offset)
    }

    /// Marks a query running; false if it was cancelled meanwhile.
    pub fn running(&self, id: &str) -> bool {
        let mut state = self.state.lock().expect("queries lock");
        match state.get_mut(id) {
            Some(q) if q.status == Status::Queued => {
                q.status = Status::Running;
                true
            }
            _ => false,
        }
    }

    /// Records the outcome (ignored if the query was cancelled).
    pub fn finish(
        &self,
        id: &str,
        outcome: Result<(Vec<RecordBatch>, QueryStatistics), LakeError>,
    ) {
        self.active.lock().expect("queries lock").remove(id);
        let rendered = outcome.and_then(|(batches, stats)| {
            let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
            if total > MAX_RESULT_ROWS {
                return Err(LakeError::InvalidQuery(format!(
                    "the result has {total} rows; at most {MAX_RESULT_ROWS} are kept — add a LIMIT or aggregate"
                )));
            }
            Ok((rows_as_text(&batches)?, stats))
        });
        let mut state = self.state.lock().expect("queries lock");
        let Some(q) = state.get_mut(id) else {
            return;
        };
        if q.status == Status::Cancelled {
            return;
        }
        match rendered {
            Ok((rows, stats)) => {
                q.status = Status::Finished;
                q.statistics = stats;
                q.rows = Arc::new(rows);
            }
            Err(e) => {
                q.status = Status::Failed;
                q.error = Some(e.to_string());
            }
        }
    }

    /// CancelQuery: only a queued or running query.
    pub fn cancel(&self, id: &str) -> Result<QueryRecord, LakeError> {
        let mut state = self.state.lock().expect("queries lock");
        let q = state
            .get_mut(id)
            .ok_or_else(|| LakeError::QueryNotFound(id.to_owned()))?;
        if !matches!(q.status, Status::Queued | Status::Running) {
            return Err(LakeError::InactiveQuery(format!(
                "query {id} is {} and cannot be cancelled",
                q.status.as_str()
            )));
        }
        q.status = Status::Cancelled;
        let record = q.clone();
        drop(state);
        // The task stops at its next await and drops its streams and memory.
        if let Some(active) = self.active.lock().expect("queries lock").remove(id) {
            if let Some(abort) = active.abort {
                abort.abort();
            }
        }
        Ok(record)
    }

    /// A query.
    pub fn get(&self, id: &str) -> Result<QueryRecord, LakeError> {
        self.state
            .lock()
            .expect("queries lock")
            .get(id)
            .cloned()
            .ok_or_else(|| LakeError::QueryNotFound(id.to_owned()))
    }

    /// Every kept query, newest first.
    pub fn list(&self) -> Vec<QueryRecord> {
        let state = self.state.lock().expect("queries lock");
        let order = self.order.lock().expect("queries lock");
        order
            .iter()
            .rev()
            .filter_map(|id| state.get(id).cloned())
            .collect()
    }
}

/// DescribeQuery's answer.
pub fn describe(q: &QueryRecord) -> Value {
    json!({
        "QueryId": q.id,
        "QueryString": q.statement,
        "QueryStatus": q.status.as_str(),
        "QueryStatistics": {
            "EventsMatched": q.statistics.events_matched,
            "EventsScanned": q.statistics.events_scanned,
            "BytesScanned": q.statistics.bytes_scanned,
            "ExecutionTimeInMillis": q.statistics.execution_ms,
            "CreationTime": q.created as f64 / 1000.0,
        },
        "ErrorMessage": q.error,
    })
}

/// GetQueryResults' answer for rows `[offset, offset + max)`.
pub fn results_page(queries: &Queries, q: &QueryRecord, offset: usize, max: usize) -> Value {
    let total = q.rows.len();
    let end = (offset + max).min(total);
    let rows: Vec<Value> = q.rows[offset.min(total)..end]
        .iter()
        .map(|row| {
            Value::Array(
                row.iter()
                    .map(|(name, value)| json!({ name: value }))
                    .collect(),
            )
        })
        .collect();
    let mut out = json!({
        "QueryStatus": q.status.as_str(),
        "QueryStatistics": {
            "ResultsCount": rows.len(),
            "TotalResultsCount": total,
            "BytesScanned": q.statistics.bytes_scanned,
        },
        "QueryResultRows": rows,
    });
    if end < total {
        out["NextToken"] = Value::String(queries.token(&q.id, end));
    }
    if let Some(e) = &q.error {
        out["ErrorMessage"] = Value::String(e.clone());
    }
    out
}
