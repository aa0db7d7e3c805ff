//! The import ledger: which events imports have written into each store, so that importing
//! the same logs again (a rerun after a failure, an overlapping copy of a bucket) adds nothing.
//!
//! One redb table per store, keyed by the event's UTC day (so entries past the store's
//! retention can be dropped by range) and the SHA-256/128 of its `eventID`. An import checks its
//! records here before writing and records them after their Parquet file is durable. A crash
//! between the two leaves records written but not listed; the rerun writes the same records
//! under the same file name ([`batch_stem`]), replacing that file rather than adding to it.
//! Events that reached the store from the WAL are not in the ledger (they carry Cairn's own
//! eventIDs; an import of AWS's logs of the same calls is not detected as a duplicate).

use crate::LakeError;
use redb::{ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::Path;

/// An event's key in the ledger: its UTC day and its eventID.
pub type EventKey<'a> = (i64, &'a str);

/// The ledger of imported events.
#[derive(Debug)]
pub struct ImportLedger {
    db: cairn_durable::Db,
}

fn table_name(store_id: &str) -> String {
    format!("imported-{store_id}")
}

fn key(day: i64, event_id: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..4].copy_from_slice(&u32::try_from(day.max(0)).unwrap_or(u32::MAX).to_be_bytes());
    out[4..].copy_from_slice(&Sha256::digest(event_id.as_bytes())[..16]);
    out
}

fn failed(what: &str, e: impl std::fmt::Display) -> LakeError {
    LakeError::Read {
        path: "lake-imports.redb".to_owned(),
        message: format!("{what}: {e}"),
    }
}

impl ImportLedger {
    /// Opens or creates the ledger at `path`.
    pub fn open(path: &Path) -> Result<Self, LakeError> {
        let db = cairn_durable::Db::create(path, 16 * 1024 * 1024)
            .map_err(|e| failed("opening the import ledger", e))?;
        Ok(Self { db })
    }

    /// For each of `keys`, whether it is new: not imported into `store_id` before and not
    /// an earlier key of the same list.
    pub fn fresh(&self, store_id: &str, keys: &[EventKey<'_>]) -> Result<Vec<bool>, LakeError> {
        let name = table_name(store_id);
        let tx = self
            .db
            .begin_read()
            .map_err(|e| failed("reading the import ledger", e))?;
        let table = match tx.open_table(TableDefinition::<&[u8], ()>::new(&name)) {
            Ok(table) => Some(table),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(failed("reading the import ledger", e)),
        };
        let mut seen = HashSet::with_capacity(keys.len());
        keys.iter()
            .map(|(day, id)| {
                let k = key(*day, id);
                if !seen.insert(k) {
                    return Ok(false);
                }
                match &table {
                    Some(t) => t
                        .get(k.as_slice())
                        .map(|found| found.is_none())
                        .map_err(|e| failed("reading the import ledger", e)),
                    None => Ok(true),
                }
            })
            .collect()
    }

    /// Records `keys` as imported into `store_id` (durably), and forgets those of days
    /// before `oldest_day` (past the store's retention).
    pub fn record(
        &self,
        store_id: &str,
        keys: &[EventKey<'_>],
        oldest_day: i64,
    ) -> Result<(), LakeError> {
        let name = table_name(store_id);
        let write = || -> Result<(), Box<redb::Error>> {
            let tx = self.db.begin_write()?;
            {
                let mut table = tx
                    .open_table(TableDefinition::<&[u8], ()>::new(&name))
                    .map_err(redb::Error::from)?;
                for (day, id) in keys {
                    table
                        .insert(key(*day, id).as_slice(), ())
                        .map_err(redb::Error::from)?;
                }
                let below = key(oldest_day, "");
                let stale: Vec<Vec<u8>> = table
                    .range(..&below[..4])
                    .map_err(redb::Error::from)?
                    .map(|entry| entry.map(|(k, _)| k.value().to_vec()))
                    .collect::<Result<_, _>>()
                    .map_err(redb::Error::from)?;
                for k in stale {
                    table.remove(k.as_slice()).map_err(redb::Error::from)?;
                }
            }
            tx.commit().map_err(redb::Error::from)?;
            Ok(())
        };
        write().map_err(|e| {
            self.db.note(&e);
            failed("recording imported events", e)
        })
    }

    /// Forgets a deleted store.
    pub fn drop_store(&self, store_id: &str) -> Result<(), LakeError> {
        let name = table_name(store_id);
        let drop = || -> Result<(), Box<redb::Error>> {
            let tx = self.db.begin_write()?;
            tx.delete_table(TableDefinition::<&[u8], ()>::new(&name))
                .map_err(redb::Error::from)?;
            tx.commit().map_err(redb::Error::from)?;
            Ok(())
        };
        drop().map_err(|e| failed("forgetting a deleted store's imports", e))
    }
}

/// The file name of an import batch: the same records give the same name, so a batch written
/// again after a crash replaces its file instead of adding a second copy.
pub fn batch_stem(keys: &[EventKey<'_>]) -> String {
    let mut hash = Sha256::new();
    for (day, id) in keys {
        hash.update(day.to_be_bytes());
        hash.update(id.as_bytes());
        hash.update([0]);
    }
    format!("import-{}", &hex::encode(hash.finalize())[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_events_are_not_fresh_again_and_old_days_are_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = ImportLedger::open(&dir.path().join("l.redb")).expect("open");
        let keys = [(20_000, "a"), (20_000, "b"), (20_001, "a"), (20_000, "a")];
        // The same id on another day is another event; a repeat within the list is not new.
        assert_eq!(
            ledger.fresh("s1", &keys).expect("fresh"),
            [true, true, true, false]
        );
        ledger.record("s1", &keys[..3], 0).expect("record");
        assert_eq!(
            ledger.fresh("s1", &keys[..3]).expect("fresh"),
            [false, false, false]
        );
        // Another store has its own ledger.
        assert_eq!(ledger.fresh("s2", &keys[..1]).expect("fresh"), [true]);
        // Days before the retention are dropped at the next record.
        ledger
            .record("s1", &[(20_005, "c")], 20_001)
            .expect("record");
        assert_eq!(
            ledger
                .fresh("s1", &[(20_000, "a"), (20_001, "a")])
                .expect("fresh"),
            [true, false]
        );
        ledger.drop_store("s1").expect("drop");
        assert_eq!(ledger.fresh("s1", &[(20_001, "a")]).expect("fresh"), [true]);
        // Reopened, it remembers.
        ledger.record("s3", &[(20_010, "z")], 0).expect("record");
        drop(ledger);
        let ledger = ImportLedger::open(&dir.path().join("l.redb")).expect("reopen");
        assert_eq!(
            ledger.fresh("s3", &[(20_010, "z")]).expect("fresh"),
            [false]
        );
    }

    #[test]
    fn a_batch_is_named_by_its_events() {
        let a = batch_stem(&[(1, "x"), (1, "y")]);
        assert_eq!(a, batch_stem(&[(1, "x"), (1, "y")]));
        assert_ne!(a, batch_stem(&[(1, "x")]));
        assert_ne!(a, batch_stem(&[(1, "xy")]));
    }
}
