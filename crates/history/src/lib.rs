//! Cairn's Event history: the last 90 days of management (and Insights, and integration)
//! events per region, searchable the way CloudTrail's `LookupEvents` is.
//!
//! The store is one [redb](https://docs.rs/redb) file. Events and their lookup-attribute
//! index entries live in tables per UTC day of `eventTime` (see [`keys`] for the exact
//! layout), so a lookup is a reverse range scan over a few day tables — never a scan of
//! everything — and expiry drops whole day tables. The index is fed from the WAL by the
//! server; the last WAL sequence number indexed is stored in the same transaction as the
//! index entries, so a crash never indexes an event twice or skips one.
//!
//! `event_ids` keeps every recorded eventID (of every category) with the digest of the
//! producer's payload, for idempotent ingest and `EventId` lookups.

pub mod keys;
pub mod query;

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
pub use query::{LookupQuery, QueryError, MAX_PAGE};
/// The storage engine's error type, for callers that build [`HistoryError::Store`].
pub use redb::Error as RedbError;

const EVENT_IDS: TableDefinition<&str, &[u8]> = TableDefinition::new("event_ids");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
const TOKEN_KEY: &str = "next_token_key";
const APPLIED_SEQ: &str = "applied_seq";

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
}

impl HistoryError {
    /// Whether the storage failed (an I/O error, a full disk) rather than the request: the
    /// store reopens by itself, so the caller may retry (503, not 500).
    pub fn is_storage_failure(&self) -> bool {
        match self {
            Self::Store { source, .. } => cairn_durable::is_io(source),
            Self::Open { .. } => true,
            Self::Query(_) => false,
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

fn encode_id_entry(
    digest: &ProducerDigest,
    day: i64,
    time: EpochMillis,
    seq: u64,
    in_history: bool,
    scope: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(41 + scope.len());
    out.extend_from_slice(digest);
    out.extend_from_slice(&day.to_be_bytes());
    out.extend_from_slice(&time.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.push(u8::from(in_history));
    out.extend_from_slice(scope);
    out
}

struct IdEntry {
    digest: ProducerDigest,
    day: i64,
    time: EpochMillis,
    seq: u64,
    in_history: bool,
    scope: Vec<u8>,
}

fn decode_id_entry(bytes: &[u8]) -> Option<IdEntry> {
    if bytes.len() < 41 {
        return None;
    }
    Some(IdEntry {
        digest: bytes[..16].try_into().ok()?,
        day: i64::from_be_bytes(bytes[16..24].try_into().ok()?),
        time: i64::from_be_bytes(bytes[24..32].try_into().ok()?),
        seq: u64::from_be_bytes(bytes[32..40].try_into().ok()?),
        in_history: bytes[40] == 1,
        scope: bytes[41..].to_vec(),
    })
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

    /// Opens or creates the store at `path`.
    pub fn open(path: &Path, config: &HistoryConfig) -> Result<Self, HistoryError> {
        let db = cairn_durable::Db::create(path, config.cache_bytes).map_err(|source| {
            HistoryError::Open {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let handle = db.get().during("initialise")?;
        // A store that exists is only read here, so that a start on a full disk can serve it.
        let existing = {
            let tx = handle.begin_read().during("initialise")?;
            let secrets = match tx.open_table(SECRETS) {
                Ok(table) => Some(table),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e).during("initialise"),
            };
            match secrets {
                Some(table) => table
                    .get(TOKEN_KEY)
                    .during("initialise")?
                    .and_then(|v| query::TokenKey::try_from(v.value()).ok()),
                None => None,
            }
        };
        let token_key = match existing {
            Some(key) => key,
            None => {
                let key: query::TokenKey = rand::random();
                let tx = handle.begin_write().during("initialise")?;
                tx.open_table(EVENT_IDS).during("initialise")?;
                tx.open_table(META).during("initialise")?;
                tx.open_table(SECRETS)
                    .during("initialise")?
                    .insert(TOKEN_KEY, key.as_slice())
                    .during("initialise")?;
                tx.commit().during("initialise")?;
                key
            }
        };
        drop(handle);
        Ok(Self {
            db,
            retention_ms: config.retention_days * DAY_MS,
            token_key,
        })
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
        self.noted(self.recorded_id_unnoted(event_id))
    }

    fn recorded_id_unnoted(&self, event_id: &str) -> Result<Option<RecordedId>, HistoryError> {
        let tx = self.db.begin_read().during("read event id")?;
        let ids = tx.open_table(EVENT_IDS).during("read event id")?;
        let entry = ids.get(event_id).during("read event id")?;
        Ok(entry
            .and_then(|v| decode_id_entry(v.value()))
            .map(|e| RecordedId { digest: e.digest }))
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
        let ids = tx.open_table(EVENT_IDS).during("read event ids")?;
        event_ids
            .iter()
            .map(|id| {
                let entry = ids.get(*id).during("read event ids")?;
                Ok(entry
                    .and_then(|v| decode_id_entry(v.value()))
                    .map(|e| RecordedId { digest: e.digest }))
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

    fn index_batch_unnoted(
        &self,
        items: &[IndexItem<'_>],
        now: EpochMillis,
    ) -> Result<IndexReport, HistoryError> {
        let mut report = IndexReport::default();
        let Some(last) = items.last() else {
            return Ok(report);
        };
        let applied = self.applied_seq()?;
        let retention_start = now - self.retention_ms;
        let oldest_day = utc_day(retention_start);
        let tx = self.db.begin_write().during("index events")?;
        {
            let mut ids = tx.open_table(EVENT_IDS).during("index events")?;
            let mut meta = tx.open_table(META).during("index events")?;
            let views: Vec<(&IndexItem<'_>, Result<EventView, _>)> = items
                .iter()
                .filter(|item| item.seq > applied)
                .map(|item| (item, EventView::from_record(item.record)))
                .collect();
            let names: HashMap<i64, [String; 3]> = views
                .iter()
                .filter_map(|(_, view)| view.as_ref().ok())
                .map(|view| utc_day(view.event_time).max(oldest_day))
                .map(|day| {
                    (
                        day,
                        [
                            keys::events_table(day),
                            keys::index_table(day),
                            keys::ids_table(day),
                        ],
                    )
                })
                .collect();
            let mut tables = HashMap::new();
            for (day, [events, index, day_ids]) in &names {
                let events = tx
                    .open_table(TableDefinition::<&[u8], &[u8]>::new(events))
                    .during("index events")?;
                let index = tx
                    .open_table(TableDefinition::<&[u8], ()>::new(index))
                    .during("index events")?;
                let day_ids = tx
                    .open_table(TableDefinition::<&str, ()>::new(day_ids))
                    .during("index events")?;
                tables.insert(*day, (events, index, day_ids));
            }
            for (item, view) in views {
                let view = match view {
                    Ok(view) => view,
                    Err(e) => {
                        tracing::error!(seq = item.seq, error = %e, "skipping unreadable record in history indexing");
                        report.unreadable += 1;
                        continue;
                    }
                };
                if ids
                    .get(view.event_id.as_str())
                    .during("index events")?
                    .is_some()
                {
                    report.duplicates += 1;
                    continue;
                }
                let day = utc_day(view.event_time).max(oldest_day);
                let (events, index, day_ids) = tables
                    .get_mut(&day)
                    .expect("tables opened for every day of the batch");
                let in_history =
                    view.category.in_event_history() && view.event_time >= retention_start;
                let scope = keys::scope(kind_of(view.category), &view.aws_region);
                if in_history {
                    let key = keys::with_position(&scope, view.event_time, item.seq);
                    events
                        .insert(
                            key.as_slice(),
                            stored_value(item.provenance, item.record).as_slice(),
                        )
                        .during("index events")?;
                    let mut values = attribute_values(&view);
                    let provenance = Provenance::decode(item.provenance);
                    values.extend(
                        provenance
                            .lookup_values()
                            .into_iter()
                            .map(|v| (AttributeKey::IngestedBy, v.to_owned())),
                    );
                    for (attribute, value) in values {
                        let prefix = keys::attribute_prefix(attribute, &scope, &value);
                        let key = keys::with_position(&prefix, view.event_time, item.seq);
                        index.insert(key.as_slice(), ()).during("index events")?;
                    }
                    report.indexed += 1;
                } else {
                    report.ids_only += 1;
                }
                let entry = encode_id_entry(
                    &item.digest,
                    day,
                    view.event_time,
                    item.seq,
                    in_history,
                    &scope,
                );
                ids.insert(view.event_id.as_str(), entry.as_slice())
                    .during("index events")?;
                day_ids
                    .insert(view.event_id.as_str(), ())
                    .during("index events")?;
            }
            meta.insert(APPLIED_SEQ, last.seq.max(applied))
                .during("index events")?;
        }
        tx.commit().during("commit indexed events")?;
        Ok(report)
    }

    /// One page of a lookup, newest first.
    pub fn lookup(
        &self,
        query: &LookupQuery,
        now: EpochMillis,
    ) -> Result<LookupPage, HistoryError> {
        self.noted(self.lookup_unnoted(query, now))
    }

    fn lookup_unnoted(
        &self,
        query: &LookupQuery,
        now: EpochMillis,
    ) -> Result<LookupPage, HistoryError> {
        let retention_start = now - self.retention_ms;
        let (start, end, page, token) = query.resolve(now, retention_start, &self.token_key)?;
        let kind = if query.insights {
            Kind::Insights
        } else {
            Kind::Events
        };
        let scope = keys::scope(kind, &query.region);
        let tx = self.db.begin_read().during("lookup")?;
        let mut found: Vec<(EpochMillis, u64, FoundEvent)> = Vec::with_capacity(page + 1);

        if let Some((AttributeKey::EventId, id)) = &query.attribute {
            let ids = tx.open_table(EVENT_IDS).during("lookup")?;
            let entry = ids
                .get(id.as_str())
                .during("lookup")?
                .and_then(|v| decode_id_entry(v.value()));
            if let Some(entry) = entry {
                let after_token = token.is_none_or(|t| (entry.time, entry.seq) < (t.time, t.seq));
                if entry.in_history
                    && entry.scope == scope
                    && entry.time >= start
                    && entry.time <= end
                    && after_token
                {
                    let events = tx
                        .open_table(TableDefinition::<&[u8], &[u8]>::new(&keys::events_table(
                            entry.day,
                        )))
                        .during("lookup")?;
                    let key = keys::with_position(&scope, entry.time, entry.seq);
                    if let Some(value) = events.get(key.as_slice()).during("lookup")? {
                        push_found(&mut found, entry.time, entry.seq, value.value());
                    }
                }
            }
            return Ok(LookupPage {
                events: found.into_iter().map(|(_, _, e)| e).collect(),
                next_token: None,
            });
        }

        let prefix = match &query.attribute {
            Some((attribute, value)) => keys::attribute_prefix(*attribute, &scope, value),
            None => scope.clone(),
        };
        let lower = keys::with_position(&prefix, start, 0);
        let upper = match token {
            // Exclusive: strictly before the last event already returned.
            Some(t) if (t.time, t.seq) <= (end, u64::MAX) => {
                keys::with_position(&prefix, t.time, t.seq)
            }
            _ => {
                let mut inclusive_end = keys::with_position(&prefix, end, u64::MAX);
                inclusive_end.push(0);
                inclusive_end
            }
        };
        if lower >= upper {
            // Empty range (e.g. an end time before the retention window): nothing to scan.
            return Ok(LookupPage {
                events: Vec::new(),
                next_token: None,
            });
        }
        let first_day = utc_day(start);
        let mut day = utc_day(token.map_or(end, |t| t.time.min(end)));
        'days: while day >= first_day && found.len() <= page {
            let events_name = keys::events_table(day);
            let events = match tx.open_table(TableDefinition::<&[u8], &[u8]>::new(&events_name)) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => {
                    day -= 1;
                    continue;
                }
                Err(e) => return Err(e).during("lookup"),
            };
            if query.attribute.is_none() {
                for entry in events
                    .range(lower.as_slice()..upper.as_slice())
                    .during("lookup")?
                    .rev()
                {
                    let (key, value) = entry.during("lookup")?;
                    let Some((time, seq)) = keys::position_of(key.value()) else {
                        continue;
                    };
                    push_found(&mut found, time, seq, value.value());
                    if found.len() > page {
                        break 'days;
                    }
                }
            } else {
                let index_name = keys::index_table(day);
                let index = match tx.open_table(TableDefinition::<&[u8], ()>::new(&index_name)) {
                    Ok(table) => table,
                    Err(redb::TableError::TableDoesNotExist(_)) => {
                        day -= 1;
                        continue;
                    }
                    Err(e) => return Err(e).during("lookup"),
                };
                for entry in index
                    .range(lower.as_slice()..upper.as_slice())
                    .during("lookup")?
                    .rev()
                {
                    let (key, _) = entry.during("lookup")?;
                    let Some((time, seq)) = keys::position_of(key.value()) else {
                        continue;
                    };
                    let event_key = keys::with_position(&scope, time, seq);
                    if let Some(record) = events.get(event_key.as_slice()).during("lookup")? {
                        push_found(&mut found, time, seq, record.value());
                    }
                    if found.len() > page {
                        break 'days;
                    }
                }
            }
            day -= 1;
        }
        let next_token = if found.len() > page {
            found.truncate(page);
            found.last().map(|(time, seq, _)| {
                query.encode_token(
                    &self.token_key,
                    query::PageToken {
                        time: *time,
                        seq: *seq,
                    },
                )
            })
        } else {
            None
        };
        Ok(LookupPage {
            events: found.into_iter().map(|(_, _, e)| e).collect(),
            next_token,
        })
    }

    /// Drops every day older than the retention window, events, index and ids alike.
    /// Returns the number of days dropped.
    pub fn expire(&self, now: EpochMillis) -> Result<usize, HistoryError> {
        self.noted(self.expire_unnoted(now))
    }

    fn expire_unnoted(&self, now: EpochMillis) -> Result<usize, HistoryError> {
        let cutoff_day = utc_day(now - self.retention_ms);
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
                let ids_name = keys::ids_table(day);
                let mut ids = tx.open_table(EVENT_IDS).during("expire history day")?;
                let day_ids = tx
                    .open_table(TableDefinition::<&str, ()>::new(&ids_name))
                    .during("expire history day")?;
                for entry in day_ids.iter().during("expire history day")? {
                    let (id, _) = entry.during("expire history day")?;
                    ids.remove(id.value()).during("expire history day")?;
                }
            }
            tx.delete_table(TableDefinition::<&[u8], &[u8]>::new(&keys::events_table(
                day,
            )))
            .during("expire history day")?;
            tx.delete_table(TableDefinition::<&[u8], ()>::new(&keys::index_table(day)))
                .during("expire history day")?;
            tx.delete_table(TableDefinition::<&str, ()>::new(&keys::ids_table(day)))
                .during("expire history day")?;
            tx.commit().during("expire history day")?;
            tracing::info!(day, "expired a day of event history");
        }
        Ok(expired_days.len())
    }

    /// Number of eventIDs recorded (all categories).
    pub fn recorded_ids(&self) -> Result<u64, HistoryError> {
        self.noted(self.recorded_ids_unnoted())
    }

    fn recorded_ids_unnoted(&self) -> Result<u64, HistoryError> {
        let tx = self.db.begin_read().during("count event ids")?;
        tx.open_table(EVENT_IDS)
            .during("count event ids")?
            .len()
            .during("count event ids")
    }
}

#[cfg(test)]
mod tests;
