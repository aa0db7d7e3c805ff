//! Event data stores: named sets of events, chosen by advanced event selectors, kept as
//! zstd-compressed Parquet files partitioned by event date (`<id>/date=YYYY-MM-DD/*.parquet`)
//! for a retention period of 7 days to 10 years, optionally protected against deletion.
//!
//! Files are written whole, durably (temporary file, fsync, rename, directory fsync), rows sorted
//! by `eventName`, then `eventTime`: the rows of one API call lie together, so that page and
//! row-group statistics let a scan skip what a filter on `eventName` excludes (the commonest
//! filter of investigations), and the day partitions bound time ranges.
//! Retention is exact for queries (a store's table never shows an event older than the cutoff)
//! and whole-day for storage (a day's directory is deleted once the whole day has expired).
//!
//! Files live in the data directory (`<data>/lake/<id>/…`), or — when the server names a bucket
//! for the Lake — in an S3-compatible store through `cairn-store` (`s3://<bucket>/<prefix>/<id>/…`),
//! where an upload that returned is durable. Each store records where it was created
//! ([`EventDataStore::location`]), so changing the setting later moves no data and loses none:
//! new stores go to the new place, existing ones stay where their files are.

use crate::columns::{self, EventsBuilder};
use crate::LakeError;
use cairn_model::provenance::Provenance;
use cairn_selectors::{AdvancedEventSelector, FieldSelector, Selectors, Subject};
use datafusion::arrow::array::{Array, RecordBatch, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Shortest retention (days).
pub const MIN_RETENTION_DAYS: u32 = 7;
/// Longest retention (days): ten years.
pub const MAX_RETENTION_DAYS: u32 = 3653;
/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// The partition column: a file lies in `<store>/date=YYYY-MM-DD/`, the UTC date of its events.
pub const PARTITION_COLUMN: &str = "date";

/// The partition value (`YYYY-MM-DD`) of the UTC day holding `ms`.
pub fn partition_date(ms: i64) -> String {
    cairn_model::time::format_utc_seconds(ms)[..10].to_owned()
}

/// Most stores.
pub const MAX_STORES: usize = 10;

pub(crate) const DAY_MS: i64 = 86_400_000;

/// One event data store's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventDataStore {
    /// Name (3–128 of `[A-Za-z0-9._-]`).
    pub name: String,
    /// Its id (the last part of the ARN; also a table name).
    pub id: String,
    /// `arn:aws:cloudtrail:<region>:<account>:eventdatastore/<id>`.
    pub event_data_store_arn: String,
    /// What enters.
    pub advanced_event_selectors: Vec<AdvancedEventSelector>,
    /// Days events are kept.
    pub retention_period: u32,
    /// Deletion refused while set.
    pub termination_protection_enabled: bool,
    /// Events of every region (Cairn's stores always are).
    pub multi_region_enabled: bool,
    /// Organization store.
    pub organization_enabled: bool,
    /// `ENABLED` (Cairn deletes at once, so there is no `PENDING_DELETION`).
    pub status: String,
    /// Epoch ms.
    pub created_timestamp: i64,
    /// Epoch ms.
    pub updated_timestamp: i64,
    /// Events after this WAL position enter (those before the store existed do not).
    pub start_seq: u64,
    /// Where the files are when not in the data directory: `s3://<bucket>/<prefix>/<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl EventDataStore {
    /// Whether the store takes `subject` (never Insights unless selected by category).
    pub fn selects(&self, subject: &Subject<'_>) -> bool {
        Selectors::Advanced(self.advanced_event_selectors.clone()).matches(subject)
    }

    /// The WAL cursor that feeds this store.
    pub fn cursor(&self) -> String {
        format!("lake-{}", self.id)
    }
}

/// The selectors a store gets when none are given: every management event (AWS's default).
pub fn default_selectors() -> Vec<AdvancedEventSelector> {
    vec![AdvancedEventSelector {
        name: Some("Default management events".into()),
        field_selectors: vec![FieldSelector {
            field: "eventCategory".into(),
            equals: vec!["Management".into()],
            ..FieldSelector::default()
        }],
    }]
}

/// What a create or update asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreChanges {
    /// Selectors.
    pub advanced_event_selectors: Option<Vec<AdvancedEventSelector>>,
    /// Retention (days).
    pub retention_period: Option<u32>,
    /// Termination protection.
    pub termination_protection_enabled: Option<bool>,
    /// Organization store.
    pub organization_enabled: Option<bool>,
}

fn invalid(message: impl Into<String>) -> LakeError {
    LakeError::Invalid(message.into())
}

fn check_name(name: &str) -> Result<(), LakeError> {
    let ok = (3..=128).contains(&name.len())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "Name {name:?} must be 3 to 128 characters of letters, digits, '.', '_' and '-', starting with a letter or digit"
        )))
    }
}

fn apply(store: &mut EventDataStore, changes: StoreChanges) -> Result<(), LakeError> {
    if let Some(days) = changes.retention_period {
        if !(MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS).contains(&days) {
            return Err(invalid(format!(
                "RetentionPeriod must be {MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS} days, got {days}"
            )));
        }
        store.retention_period = days;
    }
    if let Some(selectors) = changes.advanced_event_selectors {
        let wrapped = Selectors::Advanced(selectors);
        wrapped
            .validate()
            .map_err(|e| LakeError::InvalidSelectors(e.0))?;
        let Selectors::Advanced(selectors) = wrapped else {
            unreachable!("wrapped above")
        };
        store.advanced_event_selectors = selectors;
    }
    if let Some(p) = changes.termination_protection_enabled {
        store.termination_protection_enabled = p;
    }
    if let Some(o) = changes.organization_enabled {
        store.organization_enabled = o;
    }
    Ok(())
}

/// What a write put on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Events written.
    pub events: usize,
    /// Files written.
    pub files: usize,
    /// Parquet bytes written.
    pub bytes: u64,
}

/// A bucket of an S3-compatible store where new event data stores keep their files.
#[derive(Clone)]
pub struct Remote {
    /// The bucket (from `cairn_store::s3`).
    pub store: Arc<dyn ObjectStore>,
    /// Its name.
    pub bucket: String,
    /// Key prefix under which each store has `<id>/` (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// The runtime that drives the store's requests for synchronous callers (the feeder thread,
    /// blocking API handlers). Never called from inside that runtime's async tasks.
    pub handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote(s3://{}/{})", self.bucket, self.prefix)
    }
}

impl Remote {
    pub(crate) fn run<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        self.handle.block_on(work)
    }

    /// The objects under `prefix` with their sizes, sorted by key.
    pub(crate) fn sized(&self, prefix: &str) -> Result<Vec<(String, u64)>, LakeError> {
        use futures::TryStreamExt;
        let path = ObjectPath::from(prefix);
        let mut out: Vec<(String, u64)> = self
            .run(
                self.store
                    .list(Some(&path))
                    .map_ok(|meta| (meta.location.to_string(), meta.size))
                    .try_collect(),
            )
            .map_err(|e| self.failed(prefix, e))?;
        out.sort();
        Ok(out)
    }

    fn keys(&self, prefix: &str) -> Result<Vec<String>, LakeError> {
        self.run(self.list(prefix))
    }

    /// The keys under `prefix`, for callers already in async code.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, LakeError> {
        cairn_store::list(self.store.as_ref(), prefix)
            .await
            .map_err(|e| self.failed(prefix, e))
    }

    pub(crate) fn remove(&self, key: &str) -> Result<(), LakeError> {
        match self.run(self.store.delete(&ObjectPath::from(key))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed(key, e)),
        }
    }

    pub(crate) fn failed(&self, key: &str, e: impl std::error::Error) -> LakeError {
        LakeError::Read {
            path: format!("s3://{}/{key}", self.bucket),
            message: cairn_model::error_chain(&e),
        }
    }
}

/// Where one store's files are.
pub(crate) enum Place<'a> {
    /// A directory.
    Dir(PathBuf),
    /// A key prefix (`<prefix>/<id>`, no trailing `/`) in a bucket.
    Bucket(&'a Remote, String),
}

/// The stores of a data directory (`<data>/lake`).
#[derive(Debug)]
pub struct Stores {
    pub(crate) root: PathBuf,
    arn_prefix: String,
    state: Mutex<Vec<EventDataStore>>,
    remote: Option<Remote>,
    /// Held shared by each query from its planning (when its files are listed) to its end, and
    /// exclusively by whatever removes files (compaction's swap, retention), so that a query
    /// never sees a compacted file beside the files it replaces, nor misses a file it listed.
    pub(crate) files_lock: Arc<tokio::sync::RwLock<()>>,
    /// Held by an import from writing its files to recording them in the import ledger, and by
    /// compaction while it chooses files: compaction only takes files the ledger knows.
    pub(crate) writers: Mutex<()>,
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LakeError + '_ {
    move |e| LakeError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl Stores {
    /// Opens (or starts) the stores under `root`; ARNs are `arn:aws:cloudtrail:<region>:<account>:…`.
    pub fn open(root: &Path, region: &str, account: &str) -> Result<Self, LakeError> {
        std::fs::create_dir_all(root).map_err(io(root))?;
        let file = root.join("stores.json");
        let state = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LakeError::Read {
                path: file.display().to_string(),
                message: format!("damaged: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(&file)(e)),
        };
        Ok(Self {
            root: root.to_path_buf(),
            arn_prefix: format!("arn:aws:cloudtrail:{region}:{account}:eventdatastore/"),
            state: Mutex::new(state),
            remote: None,
            files_lock: Arc::default(),
            writers: Mutex::new(()),
        })
    }

    /// New stores keep their files in `remote` instead of the data directory.
    pub fn with_remote(mut self, remote: Remote) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Where `store`'s files are; an error if they are in a bucket this server is not set up for.
    pub(crate) fn place(&self, store: &EventDataStore) -> Result<Place<'_>, LakeError> {
        let Some(location) = &store.location else {
            return Ok(Place::Dir(self.root.join(&store.id)));
        };
        let unreachable = |why: &str| LakeError::Read {
            path: location.clone(),
            message: format!(
                "the files of event data store {} are here, but {why}",
                store.name
            ),
        };
        let (bucket, key) = location
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(|| unreachable("this is not an s3:// location"))?;
        match &self.remote {
            Some(remote) if remote.bucket == bucket => Ok(Place::Bucket(remote, key.to_owned())),
            Some(remote) => Err(unreachable(&format!(
                "the server's lake_bucket is now {}; set it back to {bucket} to reach them",
                remote.bucket
            ))),
            None => Err(unreachable(
                "the server has no lake_bucket (and [s3]) configured",
            )),
        }
    }

    /// The URL of a store's files (`file:///…/` or `s3://bucket/…/`) and, for a bucket, its
    /// object store, which the query session must know.
    pub fn table_location(
        &self,
        store: &EventDataStore,
    ) -> Result<(String, Option<Arc<dyn ObjectStore>>), LakeError> {
        match self.place(store)? {
            Place::Dir(dir) => {
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                Ok((format!("{}/", dir.display()), None))
            }
            Place::Bucket(remote, key) => Ok((
                format!("s3://{}/{key}/", remote.bucket),
                Some(remote.store.clone()),
            )),
        }
    }

    fn persist(&self, state: &[EventDataStore]) -> Result<(), LakeError> {
        let path = self.root.join("stores.json");
        let bytes = serde_json::to_vec_pretty(state).expect("stores serialize");
        cairn_store::write_durable(&path, &bytes).map_err(io(&path))
    }

    /// The directory of a store's files (stores in the data directory).
    pub fn dir(&self, store: &EventDataStore) -> PathBuf {
        self.root.join(&store.id)
    }

    /// Where a store's files are, for people: a directory or an `s3://` URL.
    pub fn describe_location(&self, store: &EventDataStore) -> String {
        store
            .location
            .clone()
            .unwrap_or_else(|| self.dir(store).display().to_string())
    }

    /// Every store.
    pub fn list(&self) -> Vec<EventDataStore> {
        self.state.lock().expect("stores lock").clone()
    }

    /// The store named `key` (name, id or ARN).
    pub fn get(&self, key: &str) -> Result<EventDataStore, LakeError> {
        self.list()
            .into_iter()
            .find(|s| s.name == key || s.id == key || s.event_data_store_arn == key)
            .ok_or_else(|| LakeError::NotFound(key.to_owned()))
    }

    /// CreateEventDataStore. Events after WAL position `start_seq` enter it.
    pub fn create(
        &self,
        name: &str,
        changes: StoreChanges,
        now_ms: i64,
        start_seq: u64,
    ) -> Result<EventDataStore, LakeError> {
        check_name(name)?;
        let mut state = self.state.lock().expect("stores lock");
        if state.iter().any(|s| s.name == name) {
            return Err(LakeError::AlreadyExists(name.to_owned()));
        }
        if state.len() >= MAX_STORES {
            return Err(LakeError::Limit(format!(
                "at most {MAX_STORES} event data stores"
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let mut store = EventDataStore {
            name: name.to_owned(),
            event_data_store_arn: format!("{}{id}", self.arn_prefix),
            id,
            advanced_event_selectors: default_selectors(),
            retention_period: 2557,
            termination_protection_enabled: true,
            multi_region_enabled: true,
            organization_enabled: false,
            status: "ENABLED".into(),
            created_timestamp: now_ms,
            updated_timestamp: now_ms,
            start_seq,
            location: None,
        };
        store.location = self.remote.as_ref().map(|r| {
            let key = if r.prefix.is_empty() {
                store.id.clone()
            } else {
                format!("{}/{}", r.prefix, store.id)
            };
            format!("s3://{}/{key}", r.bucket)
        });
        apply(&mut store, changes)?;
        if let Place::Dir(dir) = self.place(&store)? {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        state.push(store.clone());
        if let Err(e) = self.persist(&state) {
            state.pop();
            return Err(e);
        }
        Ok(store)
    }

    /// UpdateEventDataStore.
    pub fn update(
        &self,
        key: &str,
        changes: StoreChanges,
        now_ms: i64,
    ) -> Result<EventDataStore, LakeError> {
        let mut state = self.state.lock().expect("stores lock");
        let i = state
            .iter()
            .position(|s| s.name == key || s.id == key || s.event_data_store_arn == key)
            .ok_or_else(|| LakeError::NotFound(key.to_owned()))?;
        let mut store = state[i].clone();
        apply(&mut store, changes)?;
        store.updated_timestamp = now_ms;
        let previous = std::mem::replace(&mut state[i], store.clone());
        if let Err(e) = self.persist(&state) {
            state[i] = previous;
            return Err(e);
        }
        Ok(store)
    }

    /// DeleteEventDataStore: refused while termination protection is on; removes the files.
    pub fn delete(&self, key: &str) -> Result<EventDataStore, LakeError> {
        let mut state = self.state.lock().expect("stores lock");
        let i = state
            .iter()
            .position(|s| s.name == key || s.id == key || s.event_data_store_arn == key)
            .ok_or_else(|| LakeError::NotFound(key.to_owned()))?;
        if state[i].termination_protection_enabled {
            return Err(LakeError::TerminationProtected(state[i].name.clone()));
        }
        let store = state.remove(i);
        if let Err(e) = self.persist(&state) {
            state.insert(i, store);
            return Err(e);
        }
        match self.place(&store)? {
            Place::Dir(dir) => {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(io(&dir)(e));
                    }
                }
            }
            Place::Bucket(remote, key) => {
                for file in remote.keys(&format!("{key}/"))? {
                    remote.remove(&file)?;
                }
            }
        }
        Ok(store)
    }

    /// Writes `records` (CloudTrail JSON records) into `store` as Parquet, one file per event date
    /// named `<stem>.parquet`. Records without a valid `eventTime` are left out and counted as
    /// malformed in the returned [`columns::Added`].
    pub fn write(
        &self,
        store: &EventDataStore,
        records: &[(&RawValue, Provenance)],
        stem: &str,
    ) -> Result<(Written, columns::Added), LakeError> {
        let mut builder = EventsBuilder::new(None);
        let mut added = columns::Added::default();
        let mut ingested_by = Vec::with_capacity(records.len());
        for (r, provenance) in records {
            let one = builder.append_record(r);
            if one.records > 0 {
                ingested_by.push(provenance.clone());
            }
            added += one;
        }
        let batch = columns::with_metadata(&builder.finish(), &ingested_by)?;
        let (written, untimed) = self.write_batch(store, &batch, stem)?;
        added.records -= untimed;
        added.malformed += untimed;
        Ok((written, added))
    }

    /// Writes a batch of the full schema (with or without [`columns::with_metadata`]); returns what was written and how many rows had no
    /// event time (not written).
    pub fn write_batch(
        &self,
        store: &EventDataStore,
        batch: &RecordBatch,
        stem: &str,
    ) -> Result<(Written, usize), LakeError> {
        let time_index = columns::column_index("eventTime").expect("eventTime column");
        let name_index = columns::column_index("eventName").expect("eventName column");
        let times = batch
            .column(time_index)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("eventTime is a millisecond timestamp");
        let mut days: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        let mut untimed = 0;
        for row in 0..batch.num_rows() {
            if times.is_null(row) {
                untimed += 1;
            } else {
                days.entry(times.value(row).div_euclid(DAY_MS))
                    .or_default()
                    .push(row as u32);
            }
        }
        let mut written = Written::default();
        let place = self.place(store)?;
        for (day, rows) in days {
            let part = take_record_batch(batch, &UInt32Array::from(rows))?;
            // Rows of one API call together (then by time): a filter on `eventName` then skips
            // whole pages by their statistics instead of decoding every row.
            let order = lexsort_to_indices(
                &[
                    SortColumn {
                        values: part.column(name_index).clone(),
                        options: None,
                    },
                    SortColumn {
                        values: part.column(time_index).clone(),
                        options: None,
                    },
                ],
                None,
            )?;
            let part = take_record_batch(&part, &order)?;
            let bytes = encode_parquet(&part)?;
            let partition = format!("{PARTITION_COLUMN}={}", partition_date(day * DAY_MS));
            match &place {
                Place::Dir(dir) => {
                    let dir = dir.join(partition);
                    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                    let path = dir.join(format!("{stem}.parquet"));
                    cairn_store::write_durable(&path, &bytes).map_err(io(&path))?;
                }
                Place::Bucket(remote, key) => {
                    // A file the feeder writes again after a crash has the same name and the
                    // same events: replacing it is safe.
                    let key = format!("{key}/{partition}/{stem}.parquet");
                    let payload = PutPayload::from(bytes.clone());
                    remote
                        .run(remote.store.put(&ObjectPath::from(key.as_str()), payload))
                        .map_err(|e| remote.failed(&key, e))?;
                }
            }
            written.events += part.num_rows();
            written.files += 1;
            written.bytes += bytes.len() as u64;
        }
        Ok((written, untimed))
    }

    /// Removes the files a crash left behind: WAL files (`wal-<from>-<to>.parquet`) holding
    /// events after `cursor`, which the feeder will write again.
    pub fn remove_uncommitted(
        &self,
        store: &EventDataStore,
        cursor: u64,
    ) -> Result<usize, LakeError> {
        let beyond = |name: &str| {
            let file = name.rsplit('/').next().unwrap_or(name);
            file.strip_prefix("wal-")
                .and_then(|r| r.split('-').next())
                .and_then(|f| f.parse::<u64>().ok())
                .is_some_and(|from| from > cursor)
        };
        let mut removed = 0;
        let place = self.place(store)?;
        for file in self.files(store)?.iter().filter(|f| beyond(f)) {
            match &place {
                Place::Dir(_) => std::fs::remove_file(file).map_err(io(Path::new(file)))?,
                Place::Bucket(remote, _) => remote.remove(file)?,
            }
            removed += 1;
        }
        Ok(removed)
    }

    /// Every Parquet file of `store`: paths in the data directory, or keys in the bucket.
    pub fn files(&self, store: &EventDataStore) -> Result<Vec<String>, LakeError> {
        let mut out = Vec::new();
        match self.place(store)? {
            Place::Dir(dir) => {
                let days = match std::fs::read_dir(&dir) {
                    Ok(d) => d,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(io(&dir)(e)),
                };
                for day in days.flatten() {
                    if let Ok(files) = parquet_files(&day.path()) {
                        out.extend(files.map(|f| f.display().to_string()));
                    }
                }
            }
            Place::Bucket(remote, key) => {
                out = remote.keys(&format!("{key}/"))?;
                out.retain(|k| is_parquet(k));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Whether the day partition `date` (`YYYY-MM-DD`) of `store` holds a Parquet file.
    pub async fn day_has_files(
        &self,
        store: &EventDataStore,
        date: &str,
    ) -> Result<bool, LakeError> {
        match self.place(store)? {
            Place::Dir(dir) => {
                let day = dir.join(format!("{PARTITION_COLUMN}={date}"));
                match parquet_files(&day) {
                    Ok(mut files) => Ok(files.next().is_some()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(io(&day)(e)),
                }
            }
            Place::Bucket(remote, key) => {
                let prefix = format!("{key}/{PARTITION_COLUMN}={date}/");
                Ok(remote.list(&prefix).await?.iter().any(|k| is_parquet(k)))
            }
        }
    }

    /// The oldest event time a store still shows at `now_ms`.
    pub fn cutoff(store: &EventDataStore, now_ms: i64) -> i64 {
        now_ms - i64::from(store.retention_period) * DAY_MS
    }

    /// Deletes every day partition whose whole day is older than the retention cutoff; returns
    /// the files removed. A store whose files cannot be reached is skipped (and reported by
    /// its feeder and its queries).
    pub fn expire(&self, now_ms: i64) -> Result<usize, LakeError> {
        let mut dirs = Vec::new();
        let mut keys = Vec::new();
        for store in self.list() {
            let cutoff = Self::cutoff(&store, now_ms);
            let expired = |partition: &str| {
                partition
                    .strip_prefix(PARTITION_COLUMN)
                    .and_then(|p| p.strip_prefix('='))
                    .and_then(|date| {
                        cairn_model::time::parse_utc(&format!("{date}T00:00:00Z")).ok()
                    })
                    .is_some_and(|start| start + DAY_MS <= cutoff)
            };
            match self.place(&store) {
                Ok(Place::Dir(dir)) => {
                    let Ok(days) = std::fs::read_dir(&dir) else {
                        continue;
                    };
                    dirs.extend(
                        days.flatten()
                            .filter(|day| expired(&day.file_name().to_string_lossy()))
                            .map(|day| day.path()),
                    );
                }
                Ok(Place::Bucket(remote, key)) => {
                    let base = format!("{key}/");
                    for file in remote.keys(&base)? {
                        let partition = file[base.len()..].split('/').next().unwrap_or("");
                        if expired(partition) {
                            keys.push((remote, file));
                        }
                    }
                }
                Err(_) => continue,
            }
        }
        if dirs.is_empty() && keys.is_empty() {
            return Ok(0);
        }
        // No query may be reading what goes.
        let _exclusive = self.exclusive();
        let mut removed = 0;
        for dir in dirs {
            let count = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            removed += count;
        }
        for (remote, key) in keys {
            remote.remove(&key)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Shared access to every store's files, for a query from its planning to its end.
    pub async fn reading(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.files_lock.clone().read_owned().await
    }

    /// Exclusive access to every store's files, to remove some: waits for the queries running
    /// now to end. For 30 s it lets new queries start meanwhile; after that it queues ahead of
    /// them, so that a steady stream of overlapping queries cannot hold removals off for ever.
    pub(crate) fn exclusive(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        let patience = std::time::Instant::now();
        while patience.elapsed() < std::time::Duration::from_secs(30) {
            if let Ok(guard) = self.files_lock.clone().try_write_owned() {
                return guard;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        futures::executor::block_on(self.files_lock.clone().write_owned())
    }

    /// Held while an import writes files and records them in the import ledger.
    pub fn writing(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether a file name or key is a store's Parquet file.
pub(crate) fn is_parquet(name: &str) -> bool {
    name.ends_with(".parquet")
}

/// The Parquet files directly in `dir`.
fn parquet_files(dir: &Path) -> std::io::Result<impl Iterator<Item = PathBuf>> {
    Ok(std::fs::read_dir(dir)?
        .flatten()
        .map(|f| f.path())
        .filter(|p| is_parquet(&p.to_string_lossy())))
}

/// A batch of the table's schema as a zstd Parquet file in the store schema
/// ([`columns::store_schema`]).
pub fn encode_parquet(batch: &RecordBatch) -> Result<Vec<u8>, LakeError> {
    let batch = &columns::to_store_batch(batch)?;
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(writer_properties()))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

/// How store files are written: zstd, row groups of [`ROW_GROUP_ROWS`], the few-valued columns
/// uncompressed.
pub(crate) fn writer_properties() -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("zstd level 3 exists"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    // The few-valued columns are stored as dictionary indices, run-length and bit-packed,
    // which zstd hardly shrinks further; uncompressed, a reader needs no zstd context for them
    // (the `parquet` crate makes one per column chunk read: about a tenth of a short query
    // that filters on these columns, measured on the security group benchmark query).
    for path in columns::dictionary_paths() {
        props = props.set_column_compression(ColumnPath::new(path), Compression::UNCOMPRESSED);
    }
    props.build()
}
