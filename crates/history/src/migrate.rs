//! Migration of a version-1 store (one table entry per event and lookup value, records
//! uncompressed) to the current layout, when the store is opened.
//!
//! Every recorded eventID is written again with its digest, WAL sequence number and day, and
//! each event in history with its record and provenance, in batches; then the version-1 tables
//! are dropped and the format recorded, in one transaction. A migration cut short (a crash, a
//! full disk) starts again at the next open: what it wrote is recognised by eventID and
//! skipped, and the version-1 tables are still whole.

use crate::write::{prefixes, InHistory, Planned};
use crate::*;

const V1_IDS: TableDefinition<&str, &[u8]> = TableDefinition::new("event_ids");

/// Events written per transaction.
const BATCH: usize = 8192;

/// A version-1 `event_ids` value:
/// `digest(16) | day(8) | time(8) | seq(8) | in_history(1) | scope`.
struct V1Entry {
    digest: ProducerDigest,
    day: i64,
    time: EpochMillis,
    seq: u64,
    in_history: bool,
    scope: Vec<u8>,
}

fn decode_v1(bytes: &[u8]) -> Option<V1Entry> {
    Some(V1Entry {
        digest: bytes.get(..16)?.try_into().ok()?,
        day: i64::from_be_bytes(bytes.get(16..24)?.try_into().ok()?),
        time: i64::from_be_bytes(bytes.get(24..32)?.try_into().ok()?),
        seq: u64::from_be_bytes(bytes.get(32..40)?.try_into().ok()?),
        in_history: *bytes.get(40)? == 1,
        scope: bytes.get(41..)?.to_vec(),
    })
}

type V1Events = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// The stored value of an event in a version-1 day table, and the prefixes it is found under.
fn v1_history(
    tx: &redb::ReadTransaction,
    days: &mut HashMap<i64, Option<V1Events>>,
    entry: &V1Entry,
) -> Result<Option<InHistory>, HistoryError> {
    let events = match days.entry(entry.day) {
        std::collections::hash_map::Entry::Occupied(events) => events.into_mut(),
        std::collections::hash_map::Entry::Vacant(vacant) => {
            let name = keys::events_table(entry.day);
            let table = match tx.open_table(TableDefinition::<&[u8], &[u8]>::new(&name)) {
                Ok(table) => Some(table),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e).during("migrate history"),
            };
            vacant.insert(table)
        }
    };
    let Some(events) = events else {
        return Ok(None);
    };
    let key = keys::with_position(&entry.scope, entry.time, entry.seq);
    let Some(value) = events.get(key.as_slice()).during("migrate history")? else {
        return Ok(None);
    };
    let stored = value.value().to_vec();
    let (provenance, record) = split_stored(&stored);
    match EventView::from_record(record) {
        Ok(view) => {
            let prefixes = prefixes(&view, &provenance, &entry.scope);
            Ok(Some((stored, prefixes)))
        }
        Err(e) => {
            tracing::error!(seq = entry.seq, error = %e, "unreadable record in version-1 history; its id is kept");
            Ok(None)
        }
    }
}

pub(crate) fn from_v1(store: &HistoryStore) -> Result<(), HistoryError> {
    let tx = store.db.begin_read().during("migrate history")?;
    let old = match tx.open_table(V1_IDS) {
        Ok(table) => Some(table),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(e).during("migrate history"),
    };
    if let Some(old) = &old {
        let total = old.len().during("migrate history")?;
        tracing::info!(
            events = total,
            "migrating Event history to the compact layout"
        );
        let mut days = HashMap::new();
        let mut batch = Vec::with_capacity(BATCH);
        let mut migrated = 0u64;
        for item in old.iter().during("migrate history")? {
            let (id, value) = item.during("migrate history")?;
            let Some(entry) = decode_v1(value.value()) else {
                tracing::error!(id = id.value(), "unreadable version-1 id entry; skipped");
                continue;
            };
            let history = if entry.in_history {
                v1_history(&tx, &mut days, &entry)?
            } else {
                None
            };
            batch.push(Planned {
                seq: entry.seq,
                key: keys::id_key(id.value()),
                digest: entry.digest,
                time: entry.time,
                day: entry.day,
                history,
            });
            if batch.len() == BATCH {
                store.write_planned(&batch, None)?;
                migrated += batch.len() as u64;
                batch.clear();
                tracing::info!(migrated, total, "migrating Event history");
            }
        }
        store.write_planned(&batch, None)?;
    }
    drop(old);
    let old_tables: Vec<String> = tx
        .list_tables()
        .during("migrate history")?
        .map(|t| t.name().to_owned())
        .filter(|name| {
            name == "event_ids"
                || ["events_", "index_", "ids_"]
                    .iter()
                    .any(|p| name.starts_with(p))
        })
        .collect();
    drop(tx);
    let tx = store.db.begin_write().during("migrate history")?;
    for name in &old_tables {
        // The types of a table must match to delete it.
        let deleted = if name == "event_ids" {
            tx.delete_table(V1_IDS)
        } else if name.starts_with("events_") {
            tx.delete_table(TableDefinition::<&[u8], &[u8]>::new(name))
        } else if name.starts_with("index_") {
            tx.delete_table(TableDefinition::<&[u8], ()>::new(name))
        } else {
            tx.delete_table(TableDefinition::<&str, ()>::new(name))
        };
        deleted.during("migrate history")?;
    }
    tx.open_table(IDS).during("migrate history")?;
    tx.open_table(META)
        .during("migrate history")?
        .insert(FORMAT, CURRENT_FORMAT)
        .during("migrate history")?;
    tx.commit().during("migrate history")?;
    tracing::info!(
        tables = old_tables.len(),
        "Event history migrated; the version-1 tables are dropped"
    );
    Ok(())
}
