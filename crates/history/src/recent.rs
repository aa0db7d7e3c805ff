//! Recently indexed eventIDs, kept apart from the `ids` B-tree until many have gathered.
//!
//! The `ids` table is keyed by a hash, so a batch's inserts land on random pages, and a
//! copy-on-write B-tree rewrites every page a transaction touches: a batch of 65,536 ids into a
//! tree of 30,000 pages rewrote all of them. So a batch's ids go, in its transaction, to the
//! `idlog` table (one value per batch, appended in order) and to memory; once
//! [`HistoryStore::id_merge_threshold`] of them have gathered they are inserted into `ids` in one
//! transaction, in key order, which rewrites each page at most once for all of them, and the log
//! is emptied. At open the log is read back into memory. Every reader of ids (idempotency,
//! lookups by id, counts, expiry) asks memory first.
//!
//! ```text
//! idlog  key: chunk (u64)   value: (id key [16] | entry length u8 | entry)*
//! ```

use crate::*;

pub(crate) const IDLOG: TableDefinition<u64, &[u8]> = TableDefinition::new("idlog");

/// Ids gathered before they are merged into `ids` (by default; about 60 MiB of memory).
pub const ID_MERGE_THRESHOLD: usize = 1 << 20;

/// The ids indexed since the last merge.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    pub(crate) ids: HashMap<[u8; 16], IdEntry>,
}

/// Appends one id to an `idlog` value.
pub(crate) fn log_entry(out: &mut Vec<u8>, key: &[u8; 16], entry: &IdEntry) {
    let bytes = entry.encode();
    out.extend_from_slice(key);
    out.push(bytes.len() as u8);
    out.extend_from_slice(&bytes);
}

/// Reads an `idlog` value.
fn log_entries(value: &[u8]) -> Option<Vec<([u8; 16], IdEntry)>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < value.len() {
        let key: [u8; 16] = value.get(at..at + 16)?.try_into().ok()?;
        let len = usize::from(*value.get(at + 16)?);
        let entry = IdEntry::decode(value.get(at + 17..at + 17 + len)?)?;
        out.push((key, entry));
        at += 17 + len;
    }
    Some(out)
}

impl HistoryStore {
    /// Reads the `idlog` back into memory (at open).
    pub(crate) fn load_recent(&self) -> Result<(), HistoryError> {
        let tx = self.db.begin_read().during("read recent ids")?;
        let log = match tx.open_table(IDLOG) {
            Ok(log) => log,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(e).during("read recent ids"),
        };
        let mut recent = self.recent.write().expect("recent ids");
        for item in log.iter().during("read recent ids")? {
            let (chunk, value) = item.during("read recent ids")?;
            let entries = log_entries(value.value()).ok_or_else(|| {
                HistoryError::Damaged(format!("id log entry {} is unreadable", chunk.value()))
            })?;
            recent.ids.extend(entries);
        }
        Ok(())
    }

    /// What memory knows of an id key: `Some(entry)` if it was indexed since the last merge.
    pub(crate) fn recent_entry(&self, key: &[u8; 16]) -> Option<IdEntry> {
        self.recent
            .read()
            .expect("recent ids")
            .ids
            .get(key)
            .copied()
    }

    /// The entry of an id key: from memory if indexed since the last merge, else from `ids`.
    pub(crate) fn id_entry(
        &self,
        ids: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
        key: &[u8; 16],
        operation: &'static str,
    ) -> Result<Option<IdEntry>, HistoryError> {
        if let Some(entry) = self.recent_entry(key) {
            return Ok(Some(entry));
        }
        Ok(ids
            .get(key.as_slice())
            .during(operation)?
            .and_then(|v| IdEntry::decode(v.value())))
    }

    /// Inserts every recent id into `ids` (in key order) and empties the log, in `tx`. The
    /// caller clears memory once `tx` is committed.
    pub(crate) fn merge_recent_in(
        &self,
        tx: &redb::WriteTransaction,
        recent: &Recent,
        fresh: &[([u8; 16], IdEntry)],
    ) -> Result<(), HistoryError> {
        let mut all: Vec<(&[u8; 16], &IdEntry)> = recent
            .ids
            .iter()
            .chain(fresh.iter().map(|(k, e)| (k, e)))
            .collect();
        all.sort_unstable_by_key(|(key, _)| **key);
        {
            let mut ids = tx.open_table(IDS).during("merge recent ids")?;
            for (key, entry) in all {
                ids.insert(key.as_slice(), entry.encode().as_slice())
                    .during("merge recent ids")?;
            }
        }
        tx.delete_table(IDLOG).during("merge recent ids")?;
        Ok(())
    }

    /// Merges the recent ids into `ids` now (before expiry, which removes ids from `ids`).
    pub(crate) fn merge_recent(&self) -> Result<(), HistoryError> {
        // Writers are serialised by `tails`.
        let _writer = self.tails.lock().expect("tails");
        {
            let recent = self.recent.read().expect("recent ids");
            if recent.ids.is_empty() {
                return Ok(());
            }
            let tx = self.db.begin_write().during("merge recent ids")?;
            self.merge_recent_in(&tx, &recent, &[])?;
            tx.commit().during("merge recent ids")?;
        }
        self.recent.write().expect("recent ids").ids.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_values_round_trip_and_damage_is_refused() {
        let entries = [
            (
                [1u8; 16],
                IdEntry::InHistory {
                    day: 20_000,
                    block: 7,
                    slot: 3,
                },
            ),
            ([2u8; 16], IdEntry::IdsOnly { digest: [9; 16] }),
        ];
        let mut value = Vec::new();
        for (key, entry) in &entries {
            log_entry(&mut value, key, entry);
        }
        assert_eq!(log_entries(&value), Some(entries.to_vec()));
        assert_eq!(log_entries(&value[..value.len() - 1]), None);
        assert_eq!(log_entries(&[]), Some(Vec::new()));
    }
}
