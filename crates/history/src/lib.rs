//! Cairn's Event history: the last 90 days of management (and Insights, and integration)
//! events per region, searchable the way CloudTrail's `LookupEvents` is.
//!
//! The store is one [redb](https://docs.rs/redb) file, laid out per UTC day of `eventTime`
//! (see [`keys`]): the day's records compressed in blocks of about a hundred ([`block`]), and
//! for each lookup value the places of its events: a chunk per indexing batch for a common
//! value ([`postings`]), an entry in the batch's run for a rare one (`runs`). A batch of WAL
//! records costs its blocks, its eventIDs (for idempotency and `EventId` lookups, appended to a
//! log), a chunk per common value and day, and one run written in key order, not one entry per
//! event and value; a lookup reads chunks newest first and the day's runs, and decompresses at
//! most one block per result.
//! Expiry drops whole day tables. The index is fed from the WAL by the server; the last WAL
//! sequence number indexed is stored in the same transaction as the entries, so a crash never
//! indexes an event twice or skips one.
//!
//! A store written by the version-1 layout (uncompressed records, an index entry per event and
//! value) is migrated when it is opened ([`migrate`]).

pub mod block;
mod compact;
pub mod keys;
mod migrate;
pub mod postings;
pub mod query;
mod read;
mod recent;
mod runs;
mod write;

use cairn_model::event::ProducerDigest;
use cairn_model::provenance::Provenance;
use cairn_model::time::{utc_day, EpochMillis};
use cairn_model::{EventCategory, EventView};
use keys::{AttributeKey, Kind};
use query::QueryExt;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use cairn_model::lookup::{FoundEvent, LookupError, LookupPage};
pub use compact::{MERGED_POSTINGS, MERGE_WINDOW};
pub use query::{LookupQuery, QueryError, MAX_PAGE};
pub use recent::ID_MERGE_THRESHOLD;
/// The storage engine's error type, for callers that build [`HistoryError::Store`].
pub use redb::Error as RedbError;
pub use runs::{FANOUT, SPILL};

const IDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("ids");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
const TOKEN_KEY: &str = "next_token_key";
const APPLIED_SEQ: &str = "applied_seq";
const FORMAT: &str = "format";
/// The layout this version writes (see [`keys`]).
const CURRENT_FORMAT: u64 = 3;
/// Format 2 is format 3 before runs ([`runs`]) existed: a store in it is read as it is.
const FORMAT_WITHOUT_RUNS: u64 = 2;

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// History settings.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// How long events stay searchable (CloudTrail: 90 days).
    pub retention_days: i64,
    /// redb page cache, bytes.
    pub cache_bytes: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            retention_days: 90,
            cache_bytes: 256 * 1024 * 1024,
        }
    }
}

/// A failure of the history store.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The database file could not be opened or created.
    #[error("opening the history store at {path} failed")]
    Open {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: redb::DatabaseError,
    },
    /// A read or write of the store failed.
    #[error("history store {operation} failed")]
    Store {
        /// What was being done.
        operation: &'static str,
        /// The failure.
        #[source]
        source: Box<redb::Error>,
    },
    /// A lookup was invalid.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Stored data could not be read back (a damaged block).
    #[error("history store is damaged: {0}")]
    Damaged(String),
}

impl HistoryError {
    /// Whether the storage failed (an I/O error, a full disk) rather than the request: the
    /// store reopens by itself, so the caller may retry (503, not 500).
    pub fn is_storage_failure(&self) -> bool {
        match self {
            Self::Store { source, .. } => cairn_durable::is_io(source),
            Self::Open { .. } => true,
            Self::Query(_) | Self::Damaged(_) => false,
        }
    }
}

trait StoreResult<T> {
    fn during(self, operation: &'static str) -> Result<T, HistoryError>;
}

impl<T, E: Into<redb::Error>> StoreResult<T> for Result<T, E> {
    fn during(self, operation: &'static str) -> Result<T, HistoryError> {
        self.map_err(|e| HistoryError::Store {
            operation,
            source: Box::new(e.into()),
        })
    }
}

/// One WAL record handed to [`HistoryStore::index_batch`].
#[derive(Debug, Clone, Copy)]
pub struct IndexItem<'a> {
    /// Its WAL sequence number.
    pub seq: u64,
    /// The stored record.
    pub record: &'a [u8],
    /// The digest of the producer's payload.
    pub digest: ProducerDigest,
    /// Who ingested it ([`Provenance::encode`]; empty if unknown).
    pub provenance: &'a [u8],
    /// The record's view as ingest read it ([`EventView::encode_into`]), if the payload
    /// carries one; without it (or if it does not decode) the record is parsed here.
    pub view: Option<&'a [u8]>,
}

/// What one [`HistoryStore::index_batch`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IndexReport {
    /// Events now searchable.
    pub indexed: usize,
    /// Events recorded for idempotency only (data events, or older than retention).
    pub ids_only: usize,
    /// Events whose eventID was already recorded (skipped).
    pub duplicates: usize,
    /// Records that are not valid events (skipped, logged).
    pub unreadable: usize,
}

/// An events-table value: the record alone (stored before provenance was kept, or with an
/// unknown one), or `0x00 | provenance length u16 BE | provenance | record`. A record is a
/// JSON object and starts with `{`, so the two cannot be confused.
fn stored_value(provenance: &[u8], record: &[u8]) -> Vec<u8> {
    if provenance.is_empty() {
        return record.to_vec();
    }
    let provenance = &provenance[..provenance.len().min(usize::from(u16::MAX))];
    let mut out = Vec::with_capacity(3 + provenance.len() + record.len());
    out.push(0);
    out.extend_from_slice(&(provenance.len() as u16).to_be_bytes());
    out.extend_from_slice(provenance);
    out.extend_from_slice(record);
    out
}

/// Splits an events-table value into provenance and record.
fn split_stored(value: &[u8]) -> (Provenance, &[u8]) {
    match value {
        [0, a, b, rest @ ..] => {
            let len = usize::from(u16::from_be_bytes([*a, *b]));
            match (rest.get(..len), rest.get(len..)) {
                (Some(p), Some(record)) => (Provenance::decode(p), record),
                _ => (Provenance::Unknown, value),
            }
        }
        _ => (Provenance::Unknown, value),
    }
}

/// What one part of the store holds ([`HistoryStore::space`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpaceUse {
    /// `blocks`, `postings`, `ids` or `id lists`.
    pub part: &'static str,
    /// Bytes of keys and values.
    pub stored_bytes: u64,
    /// Bytes of the pages' own structure.
    pub metadata_bytes: u64,
    /// Bytes of pages left unused.
    pub fragmented_bytes: u64,
    /// Pages (of 4 KiB).
    pub pages: u64,
}

/// What [`HistoryStore::id_status`] knows about an eventID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedId {
    /// Digest of the payload first recorded under the id.
    pub digest: ProducerDigest,
}

/// The Event history store.
#[derive(Debug)]
pub struct HistoryStore {
    /// Reopened after an I/O failure (a full disk), so the store recovers without a restart.
    db: cairn_durable::Db,
    retention_ms: i64,
    /// Authenticates NextTokens.
    token_key: query::TokenKey,
    /// The open (last) block of each day written to, as committed; cleared when a write fails.
    tails: std::sync::Mutex<HashMap<i64, write::Tail>>,
    /// Blocks read recently.
    blocks: read::BlockCache,
    /// Ids indexed since they were last merged into `ids` (see [`recent`]). Read by ingest's
    /// idempotency checks while a batch is written: the writer takes it for writing only to
    /// add a committed batch's ids (writers are serialised by `tails`).
    recent: std::sync::RwLock<recent::Recent>,
    /// How many gather before they are merged.
    id_merge_threshold: usize,
    /// The shape of the runs of rare values (see [`runs`]).
    runs: runs::Shape,
}

fn attribute_values(view: &EventView) -> Vec<(AttributeKey, String)> {
    let mut out = vec![
        (AttributeKey::EventName, view.event_name.clone()),
        (AttributeKey::EventSource, view.event_source.clone()),
    ];
    if let Some(read_only) = view.read_only {
        out.push((AttributeKey::ReadOnly, read_only.to_string()));
    }
    if let Some(name) = &view.username {
        out.push((AttributeKey::Username, name.clone()));
    }
    if let Some(key) = &view.access_key_id {
        out.push((AttributeKey::AccessKeyId, key.clone()));
    }
    for resource in &view.resources {
        if let Some(kind) = &resource.resource_type {
            out.push((AttributeKey::ResourceType, kind.clone()));
        }
        out.push((AttributeKey::ResourceName, resource.name.clone()));
        // Also findable by the short name (`main` for `arn:...:trail/main`).
        let short = resource.name.rsplit(['/', ':']).next().unwrap_or_default();
        if !short.is_empty() && short != resource.name {
            out.push((AttributeKey::ResourceName, short.to_owned()));
        }
    }
    out.retain(|(_, value)| !value.is_empty());
    out.sort();
    out.dedup();
    out
}

fn kind_of(category: EventCategory) -> Kind {
    if category == EventCategory::Insight {
        Kind::Insights
    } else {
        Kind::Events
    }
}

/// An `ids` value: where an event in history is (`day i32 | block u32 | slot u16`, all
/// big-endian: its digest, time and sequence number are in the block entry), or the digest
/// alone of an event recorded for idempotency only. A lookup by id reads the record and
/// checks its id, region and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdEntry {
    InHistory { day: i32, block: u32, slot: u16 },
    IdsOnly { digest: ProducerDigest },
}

impl IdEntry {
    fn encode(&self) -> Vec<u8> {
        match self {
            Self::InHistory { day, block, slot } => {
                let mut out = Vec::with_capacity(10);
                out.extend_from_slice(&day.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(&slot.to_be_bytes());
                out
            }
            Self::IdsOnly { digest } => digest.to_vec(),
        }
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        match bytes.len() {
            10 => Some(Self::InHistory {
                day: i32::from_be_bytes(bytes[..4].try_into().ok()?),
                block: u32::from_be_bytes(bytes[4..8].try_into().ok()?),
                slot: u16::from_be_bytes(bytes[8..10].try_into().ok()?),
            }),
            16 => Some(Self::IdsOnly {
                digest: bytes.try_into().ok()?,
            }),
            _ => None,
        }
    }
}

fn push_found(
    found: &mut Vec<(EpochMillis, u64, FoundEvent)>,
    time: EpochMillis,
    seq: u64,
    value: &[u8],
) {
    let (provenance, record) = split_stored(value);
    match EventView::from_record(record) {
        Ok(view) => found.push((
            time,
            seq,
            FoundEvent {
                record: record.to_vec(),
                view,
                provenance,
            },
        )),
        Err(e) => tracing::error!(seq, error = %e, "unreadable record in event history"),
    }
}

impl HistoryStore {
    /// Notes a storage failure, so that the next use reopens the database.
    fn noted<T>(&self, result: Result<T, HistoryError>) -> Result<T, HistoryError> {
        if let Err(HistoryError::Store { source, .. }) = &result {
            self.db.note(source);
        }
        result
    }

    /// Opens or creates the store at `path`, migrating a version-1 store.
    pub fn open(path: &Path, config: &HistoryConfig) -> Result<Self, HistoryError> {
        let db = cairn_durable::Db::create(path, config.cache_bytes).map_err(|source| {
            HistoryError::Open {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let handle = db.get().during("initialise")?;
        // A store that exists is only read here, so that a start on a full disk can serve it.
        let (existing, format) = {
            let tx = handle.begin_read().during("initialise")?;
            let key = match tx.open_table(SECRETS) {
                Ok(table) => table
                    .get(TOKEN_KEY)
                    .during("initialise")?
                    .and_then(|v| query::TokenKey::try_from(v.value()).ok()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e).during("initialise"),
            };
            let format = match tx.open_table(META) {
                Ok(table) => table.get(FORMAT).during("initialise")?.map(|v| v.value()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e).during("initialise"),
            };
            (key, format)
        };
        let token_key = match existing {
            Some(key) => key,
            None => {
                let key: query::TokenKey = rand::random();
                let tx = handle.begin_write().during("initialise")?;
                tx.open_table(IDS).during("initialise")?;
                tx.open_table(META)
                    .during("initialise")?
                    .insert(FORMAT, CURRENT_FORMAT)
                    .during("initialise")?;
                tx.open_table(SECRETS)
                    .during("initialise")?
                    .insert(TOKEN_KEY, key.as_slice())
                    .during("initialise")?;
                tx.commit().during("initialise")?;
                key
            }
        };
        drop(handle);
        let store = Self {
            db,
            retention_ms: config.retention_days * DAY_MS,
            token_key,
            tails: Default::default(),
            blocks: read::BlockCache::default(),
            recent: Default::default(),
            id_merge_threshold: recent::ID_MERGE_THRESHOLD,
            runs: runs::Shape::default(),
        };
        store.noted(store.load_recent())?;
        let current = [Some(CURRENT_FORMAT), Some(FORMAT_WITHOUT_RUNS)];
        if existing.is_some() && !current.contains(&format) {
            store.noted(migrate::from_v1(&store))?;
        }
        Ok(store)
    }

    /// Merges recent ids into the `ids` table once `n` have gathered (default
    /// [`ID_MERGE_THRESHOLD`]); tests use a few to see merges happen.
    pub fn with_id_merge_threshold(self, n: usize) -> Self {
        Self {
            id_merge_threshold: n.max(1),
            ..self
        }
    }

    /// Spills a value's postings from runs to a chunk at `spill` and merges `fanout` runs of
    /// a level (defaults [`SPILL`], [`FANOUT`]); tests use small ones to see every level.
    pub fn with_run_shape(self, spill: usize, fanout: usize) -> Self {
        Self {
            runs: runs::Shape {
                spill: spill.max(1),
                fanout: fanout.max(2),
            },
            ..self
        }
    }

    /// The last WAL sequence number indexed (0 if none).
    pub fn applied_seq(&self) -> Result<u64, HistoryError> {
        self.noted(self.applied_seq_unnoted())
    }

    fn applied_seq_unnoted(&self) -> Result<u64, HistoryError> {
        let tx = self.db.begin_read().during("read applied sequence")?;
        let meta = tx.open_table(META).during("read applied sequence")?;
        Ok(meta
            .get(APPLIED_SEQ)
            .during("read applied sequence")?
            .map_or(0, |v| v.value()))
    }

    /// The digest recorded for `event_id`, if the id is known.
    pub fn recorded_id(&self, event_id: &str) -> Result<Option<RecordedId>, HistoryError> {
        Ok(self.recorded_ids_batch(&[event_id])?.pop().flatten())
    }

    /// The digests recorded for each of `event_ids` (one read transaction).
    pub fn recorded_ids_batch(
        &self,
        event_ids: &[&str],
    ) -> Result<Vec<Option<RecordedId>>, HistoryError> {
        self.noted(self.recorded_ids_batch_unnoted(event_ids))
    }

    fn recorded_ids_batch_unnoted(
        &self,
        event_ids: &[&str],
    ) -> Result<Vec<Option<RecordedId>>, HistoryError> {
        let tx = self.db.begin_read().during("read event ids")?;
        let ids = tx.open_table(IDS).during("read event ids")?;
        event_ids
            .iter()
            .map(|id| {
                Ok(
                    match self.id_entry(&ids, &keys::id_key(id), "read event ids")? {
                        None => None,
                        Some(IdEntry::IdsOnly { digest }) => Some(RecordedId { digest }),
                        // Recorded ids are rare (retries): reading their block is the price of
                        // keeping the digest out of the `ids` table.
                        Some(IdEntry::InHistory { day, block, slot }) => self
                            .entry_at(&tx, i64::from(day), u64::from(block), u32::from(slot))?
                            .map(|entry| RecordedId {
                                digest: entry.digest,
                            }),
                    },
                )
            })
            .collect()
    }

    /// Indexes a batch of WAL records in one durable transaction, recording the last
    /// sequence number as applied. Items at or below the applied sequence are skipped.
    pub fn index_batch(
        &self,
        items: &[IndexItem<'_>],
        now: EpochMillis,
    ) -> Result<IndexReport, HistoryError> {
        self.noted(self.index_batch_unnoted(items, now))
    }

    /// One page of a lookup, newest first.
    pub fn lookup(
        &self,
        query: &LookupQuery,
        now: EpochMillis,
    ) -> Result<LookupPage, HistoryError> {
        self.noted(self.lookup_unnoted(query, now))
    }

    /// Drops every day older than the retention window, records, postings and ids alike.
    /// Returns the number of days dropped.
    pub fn expire(&self, now: EpochMillis) -> Result<usize, HistoryError> {
        self.noted(self.expire_unnoted(now))
    }

    fn expire_unnoted(&self, now: EpochMillis) -> Result<usize, HistoryError> {
        let cutoff_day = utc_day(now - self.retention_ms);
        // Expiry removes ids from `ids`: the recent ones must be there first.
        self.merge_recent()?;
        let expired_days: Vec<i64> = {
            let tx = self.db.begin_read().during("list history days")?;
            let mut days: Vec<i64> = tx
                .list_tables()
                .during("list history days")?
                .filter_map(|t| keys::day_of_table(t.name()))
                .filter(|&day| day < cutoff_day)
                .collect();
            days.sort_unstable();
            days.dedup();
            days
        };
        for &day in &expired_days {
            let tx = self.db.begin_write().during("expire history day")?;
            {
                let mut ids = tx.open_table(IDS).during("expire history day")?;
                let list = tx
                    .open_table(write::idlist_def(&keys::idlist_table(day)))
                    .during("expire history day")?;
                for entry in list.iter().during("expire history day")? {
                    let (_, keys) = entry.during("expire history day")?;
                    for key in keys.value().chunks_exact(16) {
                        ids.remove(key).during("expire history day")?;
                    }
                }
            }
            tx.delete_table(write::blocks_def(&keys::blocks_table(day)))
                .during("expire history day")?;
            tx.delete_table(write::postings_def(&keys::postings_table(day)))
                .during("expire history day")?;
            tx.delete_table(write::idlist_def(&keys::idlist_table(day)))
                .during("expire history day")?;
            runs::drop_runs(&tx, day)?;
            tx.open_table(META)
                .during("expire history day")?
                .remove(compact::merged_key(day).as_str())
                .during("expire history day")?;
            tx.commit().during("expire history day")?;
            self.tails.lock().expect("tails").remove(&day);
            self.blocks.forget_day(day);
            tracing::info!(day, "expired a day of event history");
        }
        Ok(expired_days.len())
    }

    /// Bytes each part of the store holds (what its tables' pages store, and what they use).
    pub fn space(&self) -> Result<Vec<SpaceUse>, HistoryError> {
        self.noted(self.space_unnoted())
    }

    fn space_unnoted(&self) -> Result<Vec<SpaceUse>, HistoryError> {
        let tx = self.db.begin_read().during("measure history")?;
        let mut parts: Vec<SpaceUse> = ["blocks", "postings", "ids", "id lists"]
            .into_iter()
            .map(|part| SpaceUse {
                part,
                ..SpaceUse::default()
            })
            .collect();
        let mut add = |part: usize, stats: redb::TableStats| {
            let p = &mut parts[part];
            p.stored_bytes += stats.stored_bytes();
            p.metadata_bytes += stats.metadata_bytes();
            p.fragmented_bytes += stats.fragmented_bytes();
            p.pages += stats.leaf_pages() + stats.branch_pages();
        };
        for table in tx.list_tables().during("measure history")? {
            let name = table.name();
            if name.starts_with("blocks_") {
                add(
                    0,
                    tx.open_table(write::blocks_def(name))
                        .during("measure history")?
                        .stats()
                        .during("measure history")?,
                );
            } else if name.starts_with("post_") || name.starts_with("run_") {
                add(
                    1,
                    tx.open_table(write::postings_def(name))
                        .during("measure history")?
                        .stats()
                        .during("measure history")?,
                );
            } else if name == "ids" {
                add(
                    2,
                    tx.open_table(IDS)
                        .during("measure history")?
                        .stats()
                        .during("measure history")?,
                );
            } else if name.starts_with("idlist_") {
                add(
                    3,
                    tx.open_table(write::idlist_def(name))
                        .during("measure history")?
                        .stats()
                        .during("measure history")?,
                );
            }
        }
        Ok(parts)
    }

    /// The names of the store's tables.
    #[cfg(test)]
    pub(crate) fn table_names(&self) -> Vec<String> {
        let tx = self.db.begin_read().expect("read");
        tx.list_tables()
            .expect("tables")
            .map(|t| t.name().to_owned())
            .collect()
    }

    /// The names in the `meta` table.
    #[cfg(test)]
    pub(crate) fn meta_names(&self) -> Vec<String> {
        let tx = self.db.begin_read().expect("read");
        let meta = tx.open_table(META).expect("meta");
        meta.iter()
            .expect("meta")
            .map(|entry| entry.expect("meta").0.value().to_owned())
            .collect()
    }

    /// Number of eventIDs recorded (all categories).
    pub fn recorded_ids(&self) -> Result<u64, HistoryError> {
        self.noted(self.recorded_ids_unnoted())
    }

    fn recorded_ids_unnoted(&self) -> Result<u64, HistoryError> {
        let recent = self.recent.read().expect("recent ids").ids.len() as u64;
        let tx = self.db.begin_read().during("count event ids")?;
        let merged = tx
            .open_table(IDS)
            .during("count event ids")?
            .len()
            .during("count event ids")?;
        Ok(merged + recent)
    }
}

#[cfg(test)]
mod tests;
