//! The Lake in the server: the feeder that moves selected events from the WAL into each event
//! data store (its own cursor, one Parquet file per flush and event date), retention, and the
//! API port (store changes recorded as `cloudtrail.amazonaws.com` management events).
//!
//! Durability: a flush writes its files (fsynced) before the store's cursor moves past their
//! events; a file is named by the WAL positions it holds (`wal-<from>-<to>.parquet`), and at start
//! every file from beyond the cursor is removed, so a crash between the two neither loses nor
//! duplicates an event.

use crate::ingest::IngestService;
use crate::security::{record, AuditEvent};
use cairn_api::lake::LakeAdmin;
use cairn_api::trails::Caller;
use cairn_api::{ApiError, BoxFuture};
use cairn_lake::query::{self, Queries};
use cairn_lake::store::{EventDataStore, StoreChanges, Stores};
use cairn_lake::LakeError;
use cairn_model::provenance::Provenance;
use cairn_model::Clock;
use cairn_wal::Wal;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events a store holds in memory before it writes a file regardless of time.
const FLUSH_EVENTS: usize = 200_000;

fn lake_error(e: LakeError) -> ApiError {
    let status = match &e {
        LakeError::NotFound(_) | LakeError::QueryNotFound(_) => axum::http::StatusCode::NOT_FOUND,
        LakeError::AlreadyExists(_) | LakeError::TerminationProtected(_) => {
            axum::http::StatusCode::CONFLICT
        }
        e if e.is_client_error() => axum::http::StatusCode::BAD_REQUEST,
        _ => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError {
        status,
        code: e.code(),
        message: e.to_string(),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("InvalidParameterException", message)
}

/// The store as the API shows it (times in epoch seconds, as the CloudTrail protocol does).
pub fn store_out(s: &EventDataStore) -> Value {
    json!({
        "EventDataStoreArn": s.event_data_store_arn,
        "Name": s.name,
        "Status": s.status,
        "AdvancedEventSelectors": s.advanced_event_selectors,
        "MultiRegionEnabled": s.multi_region_enabled,
        "OrganizationEnabled": s.organization_enabled,
        "RetentionPeriod": s.retention_period,
        "TerminationProtectionEnabled": s.termination_protection_enabled,
        "CreatedTimestamp": s.created_timestamp as f64 / 1000.0,
        "UpdatedTimestamp": s.updated_timestamp as f64 / 1000.0,
        "BillingMode": "EXTENDABLE_RETENTION_PRICING",
    })
}

/// Parses the changes of a CreateEventDataStore / UpdateEventDataStore body.
fn changes(request: &Value) -> Result<StoreChanges, ApiError> {
    let flag = |name: &str| -> Result<Option<bool>, ApiError> {
        match request.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(format!("{name} must be true or false"))),
        }
    };
    if flag("MultiRegionEnabled")? == Some(false) {
        return Err(invalid(
            "MultiRegionEnabled=false is not supported: Cairn's stores take events of every region (select by awsRegion in queries)",
        ));
    }
    let retention_period = match request.get("RetentionPeriod") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .ok_or_else(|| invalid("RetentionPeriod must be a number of days"))?,
        ),
    };
    let advanced_event_selectors = match request.get("AdvancedEventSelectors") {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| {
            ApiError::bad_request(
                "InvalidEventSelectorsException",
                format!("AdvancedEventSelectors: {e}"),
            )
        })?),
    };
    Ok(StoreChanges {
        advanced_event_selectors,
        retention_period,
        termination_protection_enabled: flag("TerminationProtectionEnabled")?,
        organization_enabled: flag("OrganizationEnabled")?,
    })
}

/// The API port.
pub struct LakeService {
    /// The stores.
    pub stores: Arc<Stores>,
    /// Queries and their results.
    pub queries: Arc<Queries>,
    /// The memory queries run in.
    pub budget: cairn_lake::limits::Budget,
    /// Query tasks alive (a cancelled or timed-out query's task ends, freeing its memory).
    pub running: prometheus_client::metrics::gauge::Gauge,
    /// For the WAL position a new store starts from.
    pub wal: Arc<Wal>,
    /// For the record of changes.
    pub ingest: Arc<IngestService>,
    /// Clock.
    pub clock: Arc<dyn Clock>,
    /// Which events imports wrote into each store.
    pub imports: Arc<cairn_lake::imported::ImportLedger>,
}

impl LakeService {
    async fn audit(
        &self,
        caller: &Caller,
        name: &str,
        arn: &str,
        request: Value,
        response: Value,
    ) -> Result<(), ApiError> {
        record(
            &self.ingest,
            self.clock.as_ref(),
            AuditEvent {
                caller,
                source: "cloudtrail.amazonaws.com",
                name,
                read_only: false,
                request,
                response,
                error: None,
                resource: Some((arn.to_owned(), "AWS::CloudTrail::EventDataStore")),
            },
        )
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Stores) -> Result<T, LakeError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let stores = self.stores.clone();
        tokio::task::spawn_blocking(move || f(&stores))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(lake_error)
    }
}

impl LakeAdmin for LakeService {
    fn create_store(
        &self,
        caller: Caller,
        request: Value,
    ) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            let name = request
                .get("Name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("Name is required"))?
                .to_owned();
            let changes = changes(&request)?;
            let now = self.clock.now_millis();
            // Events from here on enter the store. A placeholder holds the WAL from `start`
            // until the store's own position is registered and its cursor file written.
            let start = self.wal.durable_seq();
            let hold = format!("lake-new-{}", uuid::Uuid::new_v4().simple());
            self.wal
                .register(&hold, start)
                .map_err(ApiError::internal)?;
            let created = self
                .blocking(move |s| s.create(&name, changes, now, start))
                .await;
            let store = match created {
                Ok(store) => store,
                Err(e) => {
                    self.wal.unregister(&hold);
                    return Err(e);
                }
            };
            let registered = self.wal.register(&store.cursor(), start);
            self.wal.unregister(&hold);
            registered.map_err(ApiError::internal)?;
            if let Err(e) = self.wal.commit_cursor(&store.cursor(), start) {
                tracing::warn!(error = %e, store = %store.name, "committing the new store's cursor failed (its start position is kept in the store)");
            }
            let out = store_out(&store);
            self.audit(
                &caller,
                "CreateEventDataStore",
                &store.event_data_store_arn,
                request,
                out.clone(),
            )
            .await?;
            Ok(out)
        })
    }

    fn get_store(&self, key: &str) -> Result<Value, ApiError> {
        self.stores
            .get(key)
            .map(|s| store_out(&s))
            .map_err(lake_error)
    }

    fn list_stores(&self) -> Value {
        json!({ "EventDataStores": self.stores.list().iter().map(store_out).collect::<Vec<_>>() })
    }

    fn update_store(
        &self,
        caller: Caller,
        key: String,
        request: Value,
    ) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            let changes = changes(&request)?;
            let now = self.clock.now_millis();
            let store = self.blocking(move |s| s.update(&key, changes, now)).await?;
            let out = store_out(&store);
            self.audit(
                &caller,
                "UpdateEventDataStore",
                &store.event_data_store_arn,
                request,
                out.clone(),
            )
            .await?;
            Ok(out)
        })
    }

    fn delete_store(&self, caller: Caller, key: String) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            let request = json!({ "EventDataStore": key });
            let store = self.blocking(move |s| s.delete(&key)).await?;
            self.wal.unregister(&store.cursor());
            if let Err(e) = self.imports.drop_store(&store.id) {
                tracing::warn!(store = %store.name, error = %e, "forgetting the deleted store's imports failed");
            }
            self.audit(
                &caller,
                "DeleteEventDataStore",
                &store.event_data_store_arn,
                request,
                Value::Null,
            )
            .await?;
            Ok(json!({}))
        })
    }

    fn import(
        &self,
        caller: Caller,
        key: String,
        body: axum::body::Bytes,
    ) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            let store = self.stores.get(&key).map_err(lake_error)?;
            let ledger = self.imports.clone();
            // Imported records were ingested by the principal that imported them.
            let importer =
                caller
                    .identity
                    .as_ref()
                    .map_or(Provenance::Unknown, |p| Provenance::Principal {
                        arn: p.arn.clone(),
                        access_key_id: p.access_key_id.clone(),
                    });
            let target = store.clone();
            let now = self.clock.now_millis();
            let written = self
                .blocking(move |s| {
                    #[derive(serde::Deserialize)]
                    struct Batch<'a> {
                        #[serde(rename = "Records", borrow)]
                        records: Vec<&'a RawValue>,
                    }
                    let batch: Batch<'_> = serde_json::from_slice(&body).map_err(|e| {
                        LakeError::Invalid(format!("the body must be {{\"Records\":[...]}}: {e}"))
                    })?;
                    let mut left_out = LeftOut::default();
                    let mut taken = Vec::with_capacity(batch.records.len());
                    for record in batch.records {
                        if let Some(key) = left_out.takes(&target, record, now) {
                            taken.push((record, key));
                        }
                    }
                    // Events imported before (or twice in this batch) are left out.
                    let keys: Vec<(i64, &str)> = taken
                        .iter()
                        .filter_map(|(_, k)| k.as_ref().map(|(d, id)| (*d, id.as_str())))
                        .collect();
                    let fresh = ledger.fresh(&target.id, &keys)?;
                    let mut fresh = fresh.into_iter();
                    let mut written_keys = Vec::with_capacity(keys.len());
                    let mut records = Vec::with_capacity(taken.len());
                    for (record, key) in &taken {
                        match key {
                            Some((day, id)) => {
                                if fresh.next().unwrap_or(true) {
                                    written_keys.push((*day, id.as_str()));
                                    records.push((*record, importer.clone()));
                                } else {
                                    left_out.already_imported += 1;
                                }
                            }
                            None => records.push((*record, importer.clone())),
                        }
                    }
                    // Named by its events when every record has a key (a rerun replaces the
                    // file); otherwise a fresh name, so that no other batch's file is replaced.
                    let stem = if written_keys.len() == records.len() {
                        cairn_lake::imported::batch_stem(&written_keys)
                    } else {
                        format!("import-{}", uuid::Uuid::new_v4())
                    };
                    // Compaction takes only files the ledger knows (cairn_lake::compact).
                    let _writing = s.writing();
                    let (written, added) = if records.is_empty() {
                        Default::default()
                    } else {
                        s.write(&target, &records, &stem)?
                    };
                    let oldest_day = (now - i64::from(target.retention_period) * 86_400_000)
                        .div_euclid(86_400_000);
                    ledger.record(&target.id, &written_keys, oldest_day)?;
                    Ok((written, added, left_out))
                })
                .await?;
            let (written, added, left_out) = written;
            let out = json!({
                "EventsImported": written.events,
                "FilesWritten": written.files,
                "BytesWritten": written.bytes,
                "NotificationRecordsSkipped": added.foreign,
                "MalformedRecordsSkipped": added.malformed,
                "NotSelectedSkipped": left_out.not_selected,
                "OlderThanRetentionSkipped": left_out.older_than_retention,
                "AlreadyImportedSkipped": left_out.already_imported,
            });
            self.audit(
                &caller,
                "StartImport",
                &store.event_data_store_arn,
                json!({ "EventDataStore": store.name }),
                out.clone(),
            )
            .await?;
            Ok(out)
        })
    }

    fn start_query(
        &self,
        caller: Caller,
        statement: String,
    ) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            let now = self.clock.now_millis();
            let ctx = self.budget.session();
            for store in self.stores.list() {
                match query::register_store(&ctx, &self.stores, &store, now).await {
                    Ok(()) => {}
                    // A store whose files this server cannot reach (its bucket is no longer
                    // configured) fails the queries that name it, not every query.
                    Err(e)
                        if !statement.contains(&store.name) && !statement.contains(&store.id) =>
                    {
                        tracing::warn!(store = %store.name, error = %e, "event data store left out of the query session");
                    }
                    Err(e) => return Err(lake_error(e)),
                }
            }
            // Plan now: a statement that does not parse, names what does not exist or asks for
            // values beyond the limits is refused here, with InvalidQueryStatementException,
            // as StartQuery refuses it.
            let ids: Vec<String> = self.stores.list().into_iter().map(|s| s.id).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let sql = query::quote_store_ids(&statement, &ids);
            let frame = ctx
                .sql_with_options(&sql, query::read_only())
                .await
                .map_err(|e| lake_error(LakeError::InvalidQuery(e.to_string())))?;
            cairn_lake::limits::check_plan(frame.logical_plan()).map_err(lake_error)?;
            let user = caller
                .identity
                .as_ref()
                .map_or_else(|| caller.source_ip.clone(), |p| p.arn.clone());
            let id = self
                .queries
                .accept(&statement, now, &user)
                .map_err(lake_error)?;
            let queries = self.queries.clone();
            let query_id = id.clone();
            let timeout = self.queries.limits().timeout;
            let running = self.running.clone();
            let stores = self.stores.clone();
            let task = tokio::spawn(async move {
                let _running = RunningQuery::new(running);
                // No file this query lists is removed before it ends (compaction, retention).
                let _files = stores.reading().await;
                if !queries.running(&query_id) {
                    return;
                }
                let outcome = match tokio::time::timeout(
                    timeout,
                    query::run_frame(&ctx, frame, Instant::now()),
                )
                .await
                {
                    Ok(outcome) => outcome,
                    Err(_) => Err(LakeError::InvalidQuery(format!(
                        "the query ran longer than {} s (query_timeout_seconds) and was stopped",
                        timeout.as_secs()
                    ))),
                };
                queries.finish(&query_id, outcome);
            });
            self.queries.attach(&id, task.abort_handle());
            Ok(json!({ "QueryId": id }))
        })
    }

    fn describe_query(&self, id: &str) -> Result<Value, ApiError> {
        self.queries
            .get(id)
            .map(|q| query::describe(&q))
            .map_err(lake_error)
    }

    fn query_results(
        &self,
        id: &str,
        token: Option<&str>,
        max: Option<i64>,
    ) -> Result<Value, ApiError> {
        let max = match max {
            None => 1000,
            Some(m) if (1..=1000).contains(&m) => m as usize,
            Some(m) => {
                return Err(ApiError::bad_request(
                    "InvalidMaxResultsException",
                    format!("MaxQueryResults must be 1 to 1000, got {m}"),
                ))
            }
        };
        let q = self.queries.get(id).map_err(lake_error)?;
        let offset = token
            .map(|t| self.queries.parse_token(id, t))
            .transpose()
            .map_err(lake_error)?
            .unwrap_or(0);
        Ok(query::results_page(&self.queries, &q, offset, max))
    }

    fn cancel_query(&self, id: &str) -> Result<Value, ApiError> {
        let q = self.queries.cancel(id).map_err(lake_error)?;
        Ok(json!({ "QueryId": q.id, "QueryStatus": q.status.as_str() }))
    }

    fn list_queries(&self) -> Value {
        json!({
            "Queries": self.queries.list().iter().map(|q| json!({
                "QueryId": q.id,
                "QueryStatus": q.status.as_str(),
                "CreationTime": q.created as f64 / 1000.0,
            })).collect::<Vec<_>>()
        })
    }
}

/// Counts a query task while it is alive (dropped when it ends or is aborted).
struct RunningQuery(prometheus_client::metrics::gauge::Gauge);

impl RunningQuery {
    fn new(count: prometheus_client::metrics::gauge::Gauge) -> Self {
        count.inc();
        Self(count)
    }
}

impl Drop for RunningQuery {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Registers every store's WAL position (its cursor file, or its start) with the WAL, so that
/// no segment a store has not written to files is deleted.
pub fn register_all(stores: &Stores, wal: &Wal) {
    for store in stores.list() {
        let position = wal
            .load_cursor(&store.cursor())
            .map(|c| c.max(store.start_seq));
        match position
            .map_err(|e| e.to_string())
            .and_then(|p| wal.register(&store.cursor(), p))
        {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(store = %store.name, error = %e, "cannot register the store's WAL position")
            }
        }
    }
}

/// One event data store's feed, a WAL consumer named by the store's cursor (`lake-<id>`): it
/// holds the events the store's selectors choose and, every `flush_every` (or at
/// [`FLUSH_EVENTS`]), writes them as one Parquet file per event date, then commits its cursor.
/// Its position is that cursor file, written after the files; [`Consume::rewind`] removes the
/// files written beyond it (a crash or a failed flush), which are written again.
struct StoreFeed {
    /// The cursor's name.
    name: String,
    store_id: String,
    stores: Arc<Stores>,
    wal: Arc<Wal>,
    clock: Arc<dyn Clock>,
    flush_every_ms: i64,
    abort_after_write: bool,
    /// Events through this WAL position are in files (the committed cursor).
    committed: u64,
    /// The last WAL position given.
    read: u64,
    /// Records selected and not yet written, with who ingested them.
    held: Vec<(Vec<u8>, Provenance)>,
    /// When the held events started gathering (the injected clock's epoch ms).
    since: i64,
}

impl StoreFeed {
    fn store(&self) -> Result<EventDataStore, String> {
        self.stores.get(&self.store_id).map_err(|e| e.to_string())
    }

    fn due(&self) -> bool {
        self.read > self.committed
            && (self.held.len() >= FLUSH_EVENTS
                || self.clock.now_millis() - self.since >= self.flush_every_ms)
    }

    /// Writes the held events (the files of positions `committed + 1 ..= read`), then commits
    /// the cursor to `read`.
    fn flush(&mut self, store: &EventDataStore) -> Result<(), String> {
        let (from, to) = (self.committed + 1, self.read);
        if !self.held.is_empty() {
            let raws: Vec<(&RawValue, Provenance)> = self
                .held
                .iter()
                .filter_map(|(r, p)| {
                    Some((serde_json::from_slice::<&RawValue>(r).ok()?, p.clone()))
                })
                .collect();
            self.stores
                .write(store, &raws, &format!("wal-{from:020}-{to:020}"))
                .map_err(|e| format!("writing the store's files: {e}"))?;
            if self.abort_after_write {
                tracing::error!(
                    "failpoint lake_abort_after_write: aborting between the store's files and its cursor commit"
                );
                std::process::abort();
            }
        }
        self.wal
            .commit_cursor(&self.name, to)
            .map_err(|e| format!("committing the store's cursor: {e}"))?;
        self.committed = to;
        self.held.clear();
        self.since = self.clock.now_millis();
        Ok(())
    }
}

impl cairn_wal::Consume for StoreFeed {
    fn name(&self) -> &str {
        &self.name
    }

    fn rewind(&mut self) -> Result<u64, String> {
        let store = self.store()?;
        let cursor = self
            .wal
            .load_cursor(&self.name)
            .map_err(|e| e.to_string())?
            .max(store.start_seq);
        match self.stores.remove_uncommitted(&store, cursor) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(store = %store.name, files = n, "removed files written after the store's cursor (they are written again)")
            }
            Err(e) => return Err(format!("removing files beyond the store's cursor: {e}")),
        }
        self.held.clear();
        self.committed = cursor;
        self.read = cursor;
        self.since = self.clock.now_millis();
        Ok(cursor)
    }

    fn apply(&mut self, records: Vec<cairn_wal::WalRecord>) -> Result<u64, String> {
        let store = self.store()?;
        for r in records {
            self.read = r.seq;
            // Decoded once: the selection fields and the record come from the same view.
            let Some(decoded) = cairn_model::payload::decode(&r.payload) else {
                continue;
            };
            let subject = cairn_selectors::Subject::from_wal(decoded.record, decoded.fields);
            if subject.is_ok_and(|s| store.selects(&s)) {
                self.held
                    .push((decoded.record.to_vec(), decoded.provenance()));
            }
        }
        if self.due() {
            self.flush(&store)?;
        }
        Ok(self.committed)
    }

    fn idle(&mut self) -> Result<u64, String> {
        if self.due() {
            let store = self.store()?;
            self.flush(&store)?;
        }
        Ok(self.committed)
    }

    fn tick(&self) -> Duration {
        Duration::from_millis(
            u64::try_from(self.flush_every_ms)
                .unwrap_or(1000)
                .clamp(10, 1000),
        )
    }
}

/// How the stores' feeds run.
#[derive(Debug, Clone, Copy)]
pub struct FeedSettings {
    /// How long a feed holds events before it writes them (`lake_flush_seconds`).
    pub flush_every: Duration,
    /// Test failpoint: abort the process between a feed's files and its cursor commit.
    pub abort_after_write: bool,
}

/// A running feed: its thread and its stop flag.
struct Running {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// Feeds every store from the WAL until `stop`: one [`StoreFeed`] per store, each driven by a
/// `cairn_wal::Runner` on its own thread (woken by the WAL's durable watermark, retried with
/// backoff, its lag and last error in the WAL's registry). Stores created later get a feed
/// within a second; a deleted store's feed is stopped and its WAL position forgotten.
pub fn run_feeder(
    stores: Arc<Stores>,
    wal: Arc<Wal>,
    clock: Arc<dyn Clock>,
    settings: FeedSettings,
    stop: Arc<AtomicBool>,
) {
    let flush_every_ms = i64::try_from(settings.flush_every.as_millis()).unwrap_or(i64::MAX);
    let mut feeds: BTreeMap<String, Running> = BTreeMap::new();
    let mut failing: BTreeMap<String, String> = BTreeMap::new();
    while !stop.load(Ordering::Acquire) {
        let list = stores.list();
        let gone: Vec<String> = feeds
            .keys()
            .filter(|id| !list.iter().any(|s| &s.id == *id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(feed) = feeds.remove(&id) {
                feed.stop.store(true, Ordering::Release);
                wal.wake_consumers();
                let _ = feed.thread.join();
            }
            wal.unregister(&format!("lake-{id}"));
        }
        for store in &list {
            if feeds.contains_key(&store.id) {
                continue;
            }
            let feed = StoreFeed {
                name: store.cursor(),
                store_id: store.id.clone(),
                stores: stores.clone(),
                wal: wal.clone(),
                clock: clock.clone(),
                flush_every_ms,
                abort_after_write: settings.abort_after_write,
                committed: 0,
                read: 0,
                held: Vec::new(),
                since: clock.now_millis(),
            };
            let runner = match cairn_wal::Runner::new(wal.clone(), feed) {
                Ok(runner) => runner,
                Err(e) => {
                    // Said once per cause; tried again each second (a bucket may come back).
                    if failing.get(&store.id) != Some(&e) {
                        tracing::error!(store = %store.name, error = %e, "cannot start feeding the store; retrying");
                        failing.insert(store.id.clone(), e);
                    }
                    continue;
                }
            };
            failing.remove(&store.id);
            let own_stop = Arc::new(AtomicBool::new(false));
            let thread = {
                let own_stop = own_stop.clone();
                std::thread::Builder::new()
                    .name(format!("cairn-lake-{}", &store.id[..8.min(store.id.len())]))
                    .spawn(move || runner.run(&own_stop))
            };
            match thread {
                Ok(thread) => {
                    feeds.insert(
                        store.id.clone(),
                        Running {
                            stop: own_stop,
                            thread,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(store = %store.name, error = %e, "cannot start the store's feed thread")
                }
            }
        }
        for _ in 0..10 {
            if stop.load(Ordering::Acquire) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for feed in feeds.values() {
        feed.stop.store(true, Ordering::Release);
    }
    wal.wake_consumers();
    for (_, feed) in feeds {
        let _ = feed.thread.join();
    }
}

/// The Lake's upkeep until `stop`, one round each `every`: expired days removed (retention),
/// then each store's small files merged (`cairn_lake::compact`). Feeder files beyond a store's
/// committed WAL position are left alone (the feeder writes them again after a crash).
pub fn run_upkeep(
    stores: Arc<Stores>,
    wal: Arc<Wal>,
    clock: Arc<dyn Clock>,
    every: Duration,
    stop: Arc<AtomicBool>,
) {
    let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    let mut last = i64::MIN;
    while !stop.load(Ordering::Acquire) {
        let now = clock.now_millis();
        if now.saturating_sub(last) < every_ms {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        last = now;
        match stores.expire(now) {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "lake retention removed expired days"),
            Err(e) => tracing::warn!(error = %e, "lake retention failed"),
        }
        for store in stores.list() {
            if stop.load(Ordering::Acquire) {
                break;
            }
            let committed = match wal.load_cursor(&store.cursor()) {
                Ok(c) => c.max(store.start_seq),
                Err(e) => {
                    tracing::warn!(store = %store.name, error = %e, "cannot read the store's WAL position; not compacting it");
                    continue;
                }
            };
            match stores.compact(&store, now, committed) {
                Ok(done) if done.files_in == 0 => {}
                Ok(done) => tracing::info!(
                    store = %store.name,
                    merged = done.files_in,
                    written = done.files_out,
                    events = done.events,
                    bytes_in = done.bytes_in,
                    bytes_out = done.bytes_out,
                    "lake compaction merged small files"
                ),
                Err(e) => {
                    tracing::warn!(store = %store.name, error = %e, "lake compaction failed; the next round retries")
                }
            }
        }
    }
}

/// What an import leaves out before writing, and why (the rest the writer counts).
#[derive(Debug, Default)]
struct LeftOut {
    /// Records the store's advanced event selectors do not choose.
    not_selected: u64,
    /// Records older than the store's retention (they could never be queried).
    older_than_retention: u64,
    /// Records an earlier import already wrote into the store.
    already_imported: u64,
}

impl LeftOut {
    /// Whether `store` takes `record` as of `now` (`None`, counted, if not), with its ledger
    /// key (its UTC day and eventID) when it has one. Records that are not events (not an
    /// object, `aws:*` notifications) go on to the writer, which counts them.
    fn takes(
        &mut self,
        store: &EventDataStore,
        record: &RawValue,
        now: i64,
    ) -> Option<Option<(i64, String)>> {
        let Ok(map) = serde_json::from_str::<serde_json::Map<String, Value>>(record.get()) else {
            return Some(None);
        };
        if map
            .get("eventSource")
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with("aws:"))
        {
            return Some(None);
        }
        let cutoff = now - i64::from(store.retention_period) * 86_400_000;
        let time = map
            .get("eventTime")
            .and_then(Value::as_str)
            .and_then(cairn_lake::columns::parse_time);
        if time.is_some_and(|t| t < cutoff) {
            self.older_than_retention += 1;
            return None;
        }
        let mut encoded = Vec::new();
        cairn_model::event::derived_fields(&map).encode_into(&mut encoded);
        let selected = cairn_model::fields::FieldsRef::decode(&encoded)
            .map(cairn_selectors::Subject::from_fields)
            .is_some_and(|subject| store.selects(&subject));
        if !selected {
            self.not_selected += 1;
            return None;
        }
        let id = map.get("eventID").and_then(Value::as_str);
        Some(
            time.zip(id)
                .map(|(t, id)| (t.div_euclid(86_400_000), id.to_owned())),
        )
    }
}
