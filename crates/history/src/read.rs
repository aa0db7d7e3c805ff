//! Lookups: posting chunks read newest first, then one block per result (most from cache).

use crate::block::RawBlock;
use crate::postings::{self, Posting};
use crate::runs;
use crate::write::{blocks_def, postings_def};
use crate::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};

/// Decompressed blocks kept for the next lookups (paging reads the same blocks again).
const CACHED_BLOCKS: usize = 256;

/// Blocks read recently, by day and number. A block only grows, so a cached copy serves every
/// slot it holds; a slot beyond it reads the block again.
#[derive(Debug, Default)]
pub(crate) struct BlockCache {
    blocks: Mutex<HashMap<(i64, u64), Arc<RawBlock>>>,
}

impl BlockCache {
    fn get(&self, day: i64, number: u64, slot: u32) -> Option<Arc<RawBlock>> {
        let blocks = self.blocks.lock().expect("block cache");
        blocks
            .get(&(day, number))
            .filter(|block| (slot as usize) < block.len())
            .cloned()
    }

    fn put(&self, day: i64, number: u64, block: Arc<RawBlock>) {
        let mut blocks = self.blocks.lock().expect("block cache");
        if blocks.len() >= CACHED_BLOCKS {
            blocks.clear();
        }
        blocks.insert((day, number), block);
    }

    pub(crate) fn forget_day(&self, day: i64) {
        self.blocks
            .lock()
            .expect("block cache")
            .retain(|(d, _), _| *d != day);
    }
}

type Found = Vec<(EpochMillis, u64, FoundEvent)>;

/// A block entry, copied out.
pub(crate) struct StoredEntry {
    pub(crate) seq: u64,
    pub(crate) time: EpochMillis,
    pub(crate) digest: ProducerDigest,
    pub(crate) value: Vec<u8>,
}

impl HistoryStore {
    /// Block `number` of `day`, holding at least `slot` (from the cache, or read).
    fn block_at(
        &self,
        blocks: &redb::ReadOnlyTable<u64, &'static [u8]>,
        day: i64,
        number: u64,
        slot: u32,
    ) -> Result<Option<Arc<RawBlock>>, HistoryError> {
        if let Some(block) = self.blocks.get(day, number, slot) {
            return Ok(Some(block));
        }
        let Some(stored) = blocks.get(number).during("lookup")? else {
            tracing::error!(day, block = number, "an entry names a missing block");
            return Ok(None);
        };
        match RawBlock::decompress(stored.value()) {
            Ok(block) => {
                let block = Arc::new(block);
                self.blocks.put(day, number, block.clone());
                Ok(Some(block))
            }
            Err(e) => {
                tracing::error!(day, block = number, error = %e, "unreadable block in event history");
                Ok(None)
            }
        }
    }

    /// The stored value a posting points at, if it is there.
    fn value_at(
        &self,
        blocks: &redb::ReadOnlyTable<u64, &'static [u8]>,
        day: i64,
        at: Posting,
    ) -> Result<Option<Vec<u8>>, HistoryError> {
        let Some(block) = self.block_at(blocks, day, at.block, at.slot)? else {
            return Ok(None);
        };
        match block.entry(at.slot) {
            Some(entry) if entry.seq == at.seq => Ok(Some(entry.value.to_vec())),
            _ => {
                tracing::error!(
                    day,
                    block = at.block,
                    slot = at.slot,
                    "a posting names a missing entry"
                );
                Ok(None)
            }
        }
    }

    /// The entry an `ids` entry names, if it is there.
    pub(crate) fn entry_at(
        &self,
        tx: &redb::ReadTransaction,
        day: i64,
        block: u64,
        slot: u32,
    ) -> Result<Option<StoredEntry>, HistoryError> {
        let blocks = match tx.open_table(blocks_def(&keys::blocks_table(day))) {
            Ok(blocks) => blocks,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e).during("lookup"),
        };
        let Some(raw) = self.block_at(&blocks, day, block, slot)? else {
            return Ok(None);
        };
        Ok(raw.entry(slot).map(|entry| StoredEntry {
            seq: entry.seq,
            time: entry.time,
            digest: entry.digest,
            value: entry.value.to_vec(),
        }))
    }

    pub(crate) fn lookup_unnoted(
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
        let mut found: Found = Vec::with_capacity(page + 1);
        let wanted = |time: EpochMillis, seq: u64| {
            time >= start && time <= end && token.is_none_or(|t| (time, seq) < (t.time, t.seq))
        };

        if let Some((AttributeKey::EventId, id)) = &query.attribute {
            let ids = tx.open_table(IDS).during("lookup")?;
            let entry = self.id_entry(&ids, &keys::id_key(id), "lookup")?;
            if let Some(IdEntry::InHistory { day, block, slot }) = entry {
                let stored =
                    self.entry_at(&tx, i64::from(day), u64::from(block), u32::from(slot))?;
                if let Some(stored) = stored.filter(|e| wanted(e.time, e.seq)) {
                    push_found(&mut found, stored.time, stored.seq, &stored.value);
                }
                // The id key is a hash, and the entry does not say the region: the record
                // must carry the id, region and kind asked for.
                found.retain(|(_, _, e)| {
                    e.view.event_id == *id
                        && e.view.aws_region == query.region
                        && (e.view.category == EventCategory::Insight) == query.insights
                });
            }
            return Ok(LookupPage {
                events: found.into_iter().map(|(_, _, e)| e).collect(),
                next_token: None,
            });
        }

        let prefix = match &query.attribute {
            Some((attribute, value)) => keys::attribute_prefix(*attribute, &scope, value),
            None => keys::all_prefix(&scope),
        };
        let newest = token.map_or(end, |t| t.time.min(end));
        if start > newest {
            // Empty range (e.g. an end time before the retention window): nothing to scan.
            return Ok(LookupPage {
                events: Vec::new(),
                next_token: None,
            });
        }
        // Chunks whose newest event is at or after `start`; older chunks hold nothing wanted.
        let lower = keys::with_position(&prefix, start, 0);
        let mut upper = keys::with_position(&prefix, i64::MAX, u64::MAX);
        upper.push(0);
        let first_day = utc_day(start);
        let mut day = utc_day(newest);
        while day >= first_day && found.len() <= page {
            let need = page + 1 - found.len();
            let chunks = match tx.open_table(postings_def(&keys::postings_table(day))) {
                Ok(table) => Some(table),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e).during("lookup"),
            };
            // The `need` newest wanted postings of the day: first those of the day's runs
            // (rare values of today's batches), then the chunks.
            let mut best: BinaryHeap<Reverse<Posting>> = BinaryHeap::with_capacity(need + 1);
            let keep = |best: &mut BinaryHeap<Reverse<Posting>>, posting: Posting| {
                if best.len() < need {
                    best.push(Reverse(posting));
                } else if best.peek().is_some_and(|b| posting > b.0) {
                    best.pop();
                    best.push(Reverse(posting));
                }
            };
            for posting in runs::run_postings(&tx, day, &prefix)? {
                if wanted(posting.time, posting.seq) {
                    keep(&mut best, posting);
                }
            }
            let chunks = match &chunks {
                Some(table) => Some(
                    table
                        .range(lower.as_slice()..upper.as_slice())
                        .during("lookup")?,
                ),
                None => None,
            };
            for chunk in chunks.into_iter().flatten().rev() {
                let (key, value) = chunk.during("lookup")?;
                let Some((chunk_newest, _)) = keys::position_of(key.value()) else {
                    continue;
                };
                // Chunks come newest first: once the oldest kept is newer than all of this
                // chunk, no later chunk can change the page.
                if best.len() == need && best.peek().is_some_and(|b| chunk_newest < b.0.time) {
                    break;
                }
                let list = match postings::decode(value.value(), chunk_newest) {
                    Ok(list) => list,
                    Err(e) => {
                        tracing::error!(day, error = %e, "unreadable posting chunk in event history");
                        continue;
                    }
                };
                for posting in list.into_iter().filter(|p| wanted(p.time, p.seq)) {
                    keep(&mut best, posting);
                }
            }
            if !best.is_empty() {
                let blocks = tx
                    .open_table(blocks_def(&keys::blocks_table(day)))
                    .during("lookup")?;
                let mut picked: Vec<Posting> = best.into_iter().map(|r| r.0).collect();
                picked.sort_unstable_by(|a, b| b.cmp(a));
                for at in picked {
                    if let Some(value) = self.value_at(&blocks, day, at)? {
                        push_found(&mut found, at.time, at.seq, &value);
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
}
