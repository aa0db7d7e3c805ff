//! Merging a closed day's posting chunks.
//!
//! Indexing writes one chunk per common value and batch, and merged runs (see `runs`) one per
//! value that reached a few dozen postings, so a lookup of a busy value reads many small
//! chunks. Once a day is over, its runs are folded into chunks and its chunks are merged:
//! per value, every posting of the day sorted newest first and cut into chunks of at most
//! [`MERGED_POSTINGS`], which do not overlap in time. A lookup then reads a value's day in
//! order and stops at the first chunk older than its page.
//!
//! A day is merged again when events that arrived late added as many chunks as the merge
//! left. Memory is bounded: a value with more than [`MERGE_WINDOW`] postings in a day is merged
//! window by window (chunks that may overlap each other, which lookups handle, only fewer).

use crate::postings::{self, Posting};
use crate::write::postings_def;
use crate::*;

/// Postings in one merged chunk (about 20 KiB encoded).
pub const MERGED_POSTINGS: usize = 4096;

/// Most postings of one value held in memory while merging.
pub const MERGE_WINDOW: usize = 1 << 20;

/// Set in the chunk number of a merged chunk: a merged chunk is named by its oldest posting's
/// sequence number with this bit, so that it never takes the name of a batch's chunk (named by
/// the batch's last sequence number, below 2^63) nor of another merged chunk (no two postings
/// of a value share a sequence number, and a posting is in one chunk).
pub(crate) const MERGED: u64 = 1 << 63;

/// The `meta` key recording how many chunks the last merge of `day` left.
pub(crate) fn merged_key(day: i64) -> String {
    format!("merged_{day}")
}

impl HistoryStore {
    /// Merges the posting chunks of every day before `now`'s that has not been merged since it
    /// last took new chunks. Returns the days merged.
    pub fn compact(&self, now: EpochMillis) -> Result<usize, HistoryError> {
        self.noted(self.compact_unnoted(now))
    }

    fn compact_unnoted(&self, now: EpochMillis) -> Result<usize, HistoryError> {
        let today = utc_day(now);
        let due: Vec<i64> = {
            let tx = self.db.begin_read().during("list days to merge")?;
            let meta = tx.open_table(META).during("list days to merge")?;
            let mut due = Vec::new();
            for table in tx.list_tables().during("list days to merge")? {
                let name = table.name();
                if let Some(day) = name
                    .strip_prefix("rundir_")
                    .and_then(|d| d.parse::<i64>().ok())
                {
                    // A closed day's runs are always folded into its chunks.
                    if day < today {
                        due.push(day);
                    }
                    continue;
                }
                let Some(day) = name
                    .strip_prefix("post_")
                    .and_then(|d| d.parse::<i64>().ok())
                else {
                    continue;
                };
                if day >= today {
                    continue;
                }
                let chunks = tx
                    .open_table(postings_def(name))
                    .during("list days to merge")?
                    .len()
                    .during("list days to merge")?;
                let merged = meta
                    .get(merged_key(day).as_str())
                    .during("list days to merge")?
                    .map(|v| v.value());
                // Merged before, and not many chunks since: leave it.
                if merged.is_some_and(|m| chunks < 2 * m + 64) {
                    continue;
                }
                due.push(day);
            }
            due.sort_unstable();
            due.dedup();
            due
        };
        for &day in &due {
            let (before, after) = self.merge_day(day)?;
            tracing::info!(
                day,
                chunks_before = before,
                chunks_after = after,
                "merged a day's posting chunks in Event history"
            );
        }
        Ok(due.len())
    }

    /// Merges one day's chunks in one transaction; returns the chunk counts before and after.
    fn merge_day(&self, day: i64) -> Result<(u64, u64), HistoryError> {
        let name = keys::postings_table(day);
        let tx = self.db.begin_write().during("merge posting chunks")?;
        crate::runs::fold_day(&tx, day)?;
        let (before, after) = {
            let mut table = tx
                .open_table(postings_def(&name))
                .during("merge posting chunks")?;
            let before = table.len().during("merge posting chunks")?;
            // Values of the day, each its key without the trailing `newest | chunk`.
            let mut prefixes: Vec<Vec<u8>> = Vec::new();
            for entry in table.iter().during("merge posting chunks")? {
                let (key, _) = entry.during("merge posting chunks")?;
                let key = key.value();
                let prefix = &key[..key.len().saturating_sub(16)];
                if prefixes.last().map(Vec::as_slice) != Some(prefix) {
                    prefixes.push(prefix.to_vec());
                }
            }
            for prefix in &prefixes {
                let lower = keys::with_position(prefix, i64::MIN, 0);
                let mut upper = keys::with_position(prefix, i64::MAX, u64::MAX);
                upper.push(0);
                let mut chunks: Vec<Vec<u8>> = Vec::new();
                for entry in table
                    .range(lower.as_slice()..upper.as_slice())
                    .during("merge posting chunks")?
                {
                    chunks.push(entry.during("merge posting chunks")?.0.value().to_vec());
                }
                if chunks.len() <= 1 {
                    continue;
                }
                // Window by window over the chunks as they were: merged chunks written here
                // are not read again in this pass.
                let mut next = chunks.iter();
                loop {
                    let mut window: Vec<Posting> = Vec::new();
                    for key in next.by_ref() {
                        let Some((newest, _)) = keys::position_of(key) else {
                            continue;
                        };
                        let Some(value) = table
                            .get(key.as_slice())
                            .during("merge posting chunks")?
                            .map(|v| v.value().to_vec())
                        else {
                            continue;
                        };
                        match postings::decode(&value, newest) {
                            Ok(list) => window.extend(list),
                            Err(e) => {
                                tracing::error!(day, error = %e, "unreadable posting chunk left as it is");
                                continue;
                            }
                        }
                        table
                            .remove(key.as_slice())
                            .during("merge posting chunks")?;
                        if window.len() >= MERGE_WINDOW {
                            break;
                        }
                    }
                    if window.is_empty() {
                        break;
                    }
                    window.sort_unstable_by(|a, b| b.cmp(a));
                    for run in window.chunks(MERGED_POSTINGS) {
                        let last = run.last().expect("chunks are not empty");
                        let key = keys::with_position(prefix, run[0].time, last.seq | MERGED);
                        table
                            .insert(key.as_slice(), postings::encode(run).as_slice())
                            .during("merge posting chunks")?;
                    }
                }
            }
            let after = table.len().during("merge posting chunks")?;
            (before, after)
        };
        tx.open_table(META)
            .during("merge posting chunks")?
            .insert(merged_key(day).as_str(), after)
            .during("merge posting chunks")?;
        tx.commit().during("merge posting chunks")?;
        Ok((before, after))
    }
}
