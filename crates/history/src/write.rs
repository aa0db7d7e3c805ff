//! Indexing: a batch of events becomes, in one transaction, an `ids` entry per event, records
//! appended to each day's open block, one posting chunk per lookup value and day, and the id
//! list expiry reads.

use crate::block::RawBlock;
use crate::postings::{self, Posting};
use crate::runs;
use crate::*;
use std::collections::BTreeMap;

pub(crate) fn blocks_def(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

pub(crate) fn postings_def(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

pub(crate) fn idlist_def(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

/// The open block of a day, as committed.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    number: u64,
    block: RawBlock,
}

/// An event's stored value and the postings prefixes it is found under.
pub(crate) type InHistory = (Vec<u8>, Vec<Vec<u8>>);

/// One event to write, with everything its entries need.
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) seq: u64,
    pub(crate) key: [u8; 16],
    pub(crate) digest: ProducerDigest,
    pub(crate) time: EpochMillis,
    /// The day whose tables hold it (and list its id, for expiry).
    pub(crate) day: i64,
    /// For an event in history: its stored value and the postings prefixes it is found under.
    pub(crate) history: Option<InHistory>,
}

/// The postings prefixes of an event: each lookup attribute's value, who ingested it, and
/// "every event of the scope".
pub(crate) fn prefixes(view: &EventView, provenance: &Provenance, scope: &[u8]) -> Vec<Vec<u8>> {
    let mut values = attribute_values(view);
    values.extend(
        provenance
            .lookup_values()
            .into_iter()
            .map(|v| (AttributeKey::IngestedBy, v.to_owned())),
    );
    let mut out: Vec<Vec<u8>> = values
        .iter()
        .map(|(attribute, value)| keys::attribute_prefix(*attribute, scope, value))
        .collect();
    out.push(keys::all_prefix(scope));
    out
}

/// What a batch writes into one day's tables.
struct DayWrite<'t> {
    blocks: redb::Table<'t, u64, &'static [u8]>,
    /// Whether the day's open block took entries not yet written.
    dirty: bool,
    ids: Vec<u8>,
    postings: HashMap<Vec<u8>, Vec<Posting>>,
}

fn damaged(e: impl std::fmt::Display) -> HistoryError {
    HistoryError::Damaged(e.to_string())
}

/// The open block of `day`: remembered, or the day's last block if it has room.
fn tail_of<'m>(
    tails: &'m mut HashMap<i64, Tail>,
    day: i64,
    blocks: &redb::Table<'_, u64, &'static [u8]>,
) -> Result<&'m mut Tail, HistoryError> {
    use std::collections::hash_map::Entry;
    let vacant = match tails.entry(day) {
        Entry::Occupied(tail) => return Ok(tail.into_mut()),
        Entry::Vacant(vacant) => vacant,
    };
    let tail = match blocks.last().during("index events")? {
        None => Tail {
            number: 0,
            block: RawBlock::new(),
        },
        Some((number, stored)) => {
            let block = RawBlock::decompress(stored.value()).map_err(damaged)?;
            if block.is_full() {
                Tail {
                    number: number.value() + 1,
                    block: RawBlock::new(),
                }
            } else {
                Tail {
                    number: number.value(),
                    block,
                }
            }
        }
    };
    Ok(vacant.insert(tail))
}

impl HistoryStore {
    pub(crate) fn index_batch_unnoted(
        &self,
        items: &[IndexItem<'_>],
        now: EpochMillis,
    ) -> Result<IndexReport, HistoryError> {
        let Some(last) = items.last() else {
            return Ok(IndexReport::default());
        };
        let applied = self.applied_seq_unnoted()?;
        let retention_start = now - self.retention_ms;
        let oldest_day = utc_day(retention_start);
        let mut unreadable = 0;
        let mut planned = Vec::with_capacity(items.len());
        for item in items.iter().filter(|item| item.seq > applied) {
            let decoded = item.view.and_then(EventView::decode);
            let view = match decoded.map_or_else(|| EventView::from_record(item.record), Ok) {
                Ok(view) => view,
                Err(e) => {
                    tracing::error!(seq = item.seq, error = %e, "skipping unreadable record in history indexing");
                    unreadable += 1;
                    continue;
                }
            };
            let in_history = view.category.in_event_history() && view.event_time >= retention_start;
            let scope = keys::scope(kind_of(view.category), &view.aws_region);
            let history = in_history.then(|| {
                let provenance = Provenance::decode(item.provenance);
                (
                    stored_value(item.provenance, item.record),
                    prefixes(&view, &provenance, &scope),
                )
            });
            planned.push(Planned {
                seq: item.seq,
                key: keys::id_key(&view.event_id),
                digest: item.digest,
                time: view.event_time,
                day: utc_day(view.event_time).max(oldest_day),
                history,
            });
        }
        let mut report = self.write_planned(&planned, Some(last.seq.max(applied)))?;
        report.unreadable = unreadable;
        Ok(report)
    }

    /// Writes `planned` in one transaction, recording `applied` as the last WAL sequence
    /// number indexed when given. An event whose eventID is recorded is skipped (counted as
    /// a duplicate).
    pub(crate) fn write_planned(
        &self,
        planned: &[Planned],
        applied: Option<u64>,
    ) -> Result<IndexReport, HistoryError> {
        let mut tails = self.tails.lock().expect("tails");
        let result = self.write_locked(&mut tails, planned, applied);
        if result.is_err() {
            // What was appended in memory was not committed: read the open blocks again.
            tails.clear();
        }
        result
    }

    fn write_locked(
        &self,
        tails: &mut HashMap<i64, Tail>,
        planned: &[Planned],
        applied: Option<u64>,
    ) -> Result<IndexReport, HistoryError> {
        let mut report = IndexReport::default();
        // Unique per batch: batches never share a record.
        let chunk = planned.iter().map(|p| p.seq).max().unwrap_or(0);
        // Read while the batch is written (ingest reads it too); written once committed.
        let recent = self.recent.read().expect("recent ids");
        // This batch's new ids, and its `idlog` value.
        let mut fresh: Vec<([u8; 16], IdEntry)> = Vec::new();
        let mut fresh_keys: std::collections::HashSet<[u8; 16]> = Default::default();
        let mut log = Vec::new();
        let tx = self.db.begin_write().during("index events")?;
        {
            let ids = tx.open_table(IDS).during("index events")?;
            let mut days: BTreeMap<i64, DayWrite<'_>> = BTreeMap::new();
            for p in planned {
                let day = match days.entry(p.day) {
                    std::collections::btree_map::Entry::Occupied(day) => day.into_mut(),
                    std::collections::btree_map::Entry::Vacant(vacant) => {
                        let blocks = tx
                            .open_table(blocks_def(&keys::blocks_table(p.day)))
                            .during("index events")?;
                        vacant.insert(DayWrite {
                            blocks,
                            dirty: false,
                            ids: Vec::new(),
                            postings: HashMap::new(),
                        })
                    }
                };
                let (block, slot) = match p.history {
                    Some(_) => {
                        let tail = tail_of(tails, p.day, &day.blocks)?;
                        (tail.number, tail.block.len() as u32)
                    }
                    None => (0, 0),
                };
                let (Ok(block_number), Ok(slot_number)) =
                    (u32::try_from(block), u16::try_from(slot))
                else {
                    return Err(HistoryError::Damaged(format!(
                        "day {} holds more blocks or entries than an id entry can name",
                        p.day
                    )));
                };
                let entry = match p.history {
                    Some(_) => IdEntry::InHistory {
                        day: i32::try_from(p.day).map_err(|_| {
                            HistoryError::Damaged(format!("day {} out of range", p.day))
                        })?,
                        block: block_number,
                        slot: slot_number,
                    },
                    None => IdEntry::IdsOnly { digest: p.digest },
                };
                let known = recent.ids.contains_key(&p.key)
                    || !fresh_keys.insert(p.key)
                    || ids.get(p.key.as_slice()).during("index events")?.is_some();
                if known {
                    // Recorded before (a replay, or a retry that raced): the first one stays.
                    report.duplicates += 1;
                    continue;
                }
                recent::log_entry(&mut log, &p.key, &entry);
                fresh.push((p.key, entry));
                day.ids.extend_from_slice(&p.key);
                let Some((value, prefixes)) = &p.history else {
                    report.ids_only += 1;
                    continue;
                };
                let tail = tails.get_mut(&p.day).expect("loaded above");
                tail.block.push(p.seq, p.time, &p.digest, value);
                day.dirty = true;
                let posting = Posting {
                    time: p.time,
                    seq: p.seq,
                    block,
                    slot,
                };
                for prefix in prefixes {
                    // Most values were seen before in the batch: no key copied for those.
                    match day.postings.get_mut(prefix.as_slice()) {
                        Some(list) => list.push(posting),
                        None => {
                            day.postings.insert(prefix.clone(), vec![posting]);
                        }
                    }
                }
                if tail.block.is_full() {
                    day.blocks
                        .insert(tail.number, tail.block.compress().as_slice())
                        .during("index events")?;
                    tail.number += 1;
                    tail.block = RawBlock::new();
                    day.dirty = false;
                }
                report.indexed += 1;
            }
            for (number, mut day) in days {
                if day.dirty {
                    let tail = &tails[&number];
                    day.blocks
                        .insert(tail.number, tail.block.compress().as_slice())
                        .during("index events")?;
                }
                // Values with many postings in the batch get a chunk each; the many rare
                // ones go to the day's run of this batch (see `runs`).
                let mut rare: Vec<(Vec<u8>, Vec<Posting>)> = Vec::new();
                let mut common: Vec<(Vec<u8>, Vec<Posting>)> = Vec::new();
                for (prefix, mut list) in day.postings {
                    list.sort_unstable_by(|a, b| b.cmp(a));
                    if list.len() < self.runs.spill {
                        rare.push((prefix, list));
                    } else {
                        common.push((prefix, list));
                    }
                }
                if !common.is_empty() {
                    let mut table = tx
                        .open_table(postings_def(&keys::postings_table(number)))
                        .during("index events")?;
                    for (prefix, list) in common {
                        let key = keys::with_position(&prefix, list[0].time, chunk);
                        table
                            .insert(key.as_slice(), postings::encode(&list).as_slice())
                            .during("index events")?;
                    }
                }
                rare.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                runs::write_run(&tx, self.runs, number, chunk, &rare)?;
                if !day.ids.is_empty() {
                    tx.open_table(idlist_def(&keys::idlist_table(number)))
                        .during("index events")?
                        .insert(chunk, day.ids.as_slice())
                        .during("index events")?;
                }
            }
            let mut meta = tx.open_table(META).during("index events")?;
            if let Some(applied) = applied {
                meta.insert(APPLIED_SEQ, applied).during("index events")?;
            }
            // A store opened in format 2 may hold runs from here on.
            meta.insert(FORMAT, CURRENT_FORMAT).during("index events")?;
        }
        let merge = recent.ids.len() + fresh.len() >= self.id_merge_threshold;
        if merge {
            self.merge_recent_in(&tx, &recent, &fresh)?;
        } else if !log.is_empty() {
            tx.open_table(recent::IDLOG)
                .during("index events")?
                .insert(chunk, log.as_slice())
                .during("index events")?;
        }
        drop(recent);
        tx.commit().during("commit indexed events")?;
        let mut recent = self.recent.write().expect("recent ids");
        if merge {
            recent.ids.clear();
        } else {
            recent.ids.extend(fresh);
        }
        Ok(report)
    }
}
