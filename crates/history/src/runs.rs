//! Runs: the postings of rare values in today's busy tables, written in sorted runs.
//!
//! A batch holds thousands of values seen once or twice in it (users, access keys,
//! resources). Written into the day's `post_D` B-tree, whose keys start with the value, each
//! such chunk lands on a different page, and a copy-on-write B-tree rewrites every page a
//! transaction touches: once a busy day's table held a few hundred thousand chunks, a batch of
//! 16,384 events rewrote tens of thousands of pages, and indexing slowed from about 60,000 to
//! 15,000 events a second as the day went on (`cairn bench lookup --span-days 1`).
//!
//! So a batch writes a value's postings to `post_D` only when it has at least [`SPILL`] of
//! them (a handful of values per batch); the others go to a *run*: a table of its own, keyed
//! by value, written in key order, so that it costs as many pages as it holds. Runs are
//! merged as in a log-structured merge tree: when [`FANOUT`] runs of a level exist they become
//! one run of the next level, and a value whose merged postings reach [`SPILL`] leaves the
//! runs for a chunk in `post_D`. A lookup reads the value's entry in each run of the day (a
//! few dozen at most: fewer than [`FANOUT`] per level, and a level holds `FANOUT` times the
//! batches of the one below) besides its chunks. When the day is over, [`fold_day`] moves
//! what the runs hold into `post_D` (the day's merge then takes it as any chunk) and drops
//! them.
//!
//! ```text
//! rundir_D        key: level(u8) << 56 | run id     value: values in the run
//! run_D_L_ID      key: value prefix (see `keys`)    value: time key of the newest posting (u64)
//!                                                          | postings (see `postings`)
//! run id := the last WAL sequence number of its newest batch
//! ```

use crate::compact::MERGED;
use crate::postings::{self, Posting};
use crate::write::postings_def;
use crate::*;

/// Postings of one value that go to `post_D` as a chunk rather than to a run.
pub const SPILL: usize = 64;

/// Runs of one level merged into one of the next.
pub const FANOUT: usize = 16;

/// Run ids are WAL sequence numbers below this; the level takes the bits above.
const LEVEL_SHIFT: u32 = 56;

/// When values leave runs and when runs merge.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) spill: usize,
    pub(crate) fanout: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            spill: SPILL,
            fanout: FANOUT,
        }
    }
}

pub(crate) fn rundir_def(name: &str) -> TableDefinition<'_, u64, u64> {
    TableDefinition::new(name)
}

pub(crate) fn run_def(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

pub(crate) fn rundir_table(day: i64) -> String {
    format!("rundir_{day}")
}

fn run_table(day: i64, level: u8, id: u64) -> String {
    format!("run_{day}_{level}_{id}")
}

fn dir_key(level: u8, id: u64) -> u64 {
    (u64::from(level) << LEVEL_SHIFT) | id
}

fn from_dir_key(key: u64) -> (u8, u64) {
    ((key >> LEVEL_SHIFT) as u8, key & ((1 << LEVEL_SHIFT) - 1))
}

/// A run entry's value: the newest posting's time, then the postings.
fn encode_entry(list: &[Posting]) -> Vec<u8> {
    let newest = list.first().map_or(0, |p| p.time);
    let mut out = keys::time_key(newest).to_be_bytes().to_vec();
    out.extend_from_slice(&postings::encode(list));
    out
}

fn decode_entry(value: &[u8]) -> Result<Vec<Posting>, postings::ChunkError> {
    let Some((newest, list)) = value.split_first_chunk::<8>() else {
        return postings::decode(&[], 0);
    };
    postings::decode(list, keys::time_from_key(u64::from_be_bytes(*newest)))
}

/// The runs of `day`, as (level, id), in directory order (by level, then oldest first).
fn runs_of(
    dir: &impl ReadableTable<u64, u64>,
    during: &'static str,
) -> Result<Vec<(u8, u64)>, HistoryError> {
    let mut out = Vec::new();
    for entry in dir.iter().during(during)? {
        out.push(from_dir_key(entry.during(during)?.0.value()));
    }
    Ok(out)
}

/// The runs of `day`, in a write transaction.
fn day_runs(
    tx: &redb::WriteTransaction,
    day: i64,
    during: &'static str,
) -> Result<Vec<(u8, u64)>, HistoryError> {
    let dir = tx
        .open_table(rundir_def(&rundir_table(day)))
        .during(during)?;
    runs_of(&dir, during)
}

/// Where merged postings go: a value with [`SPILL`] or more (or every value, when the day's
/// runs are folded) becomes a chunk of `post_D`; the others an entry of the new run.
struct Sink<'a, 't> {
    spill: usize,
    chunks: &'a mut BytesTable<'t>,
    run: Option<&'a mut BytesTable<'t>>,
    entries: u64,
}

impl Sink<'_, '_> {
    fn put(&mut self, prefix: &[u8], mut list: Vec<Posting>) -> Result<(), HistoryError> {
        list.sort_unstable_by(|a, b| b.cmp(a));
        match &mut self.run {
            Some(run) if list.len() < self.spill => {
                run.insert(prefix, encode_entry(&list).as_slice())
                    .during("merge runs")?;
                self.entries += 1;
            }
            _ => {
                // Named like a merged chunk, by its oldest posting (no other chunk holds it).
                let oldest = list.last().map_or(0, |p| p.seq);
                let key = keys::with_position(prefix, list[0].time, oldest | MERGED);
                self.chunks
                    .insert(key.as_slice(), postings::encode(&list).as_slice())
                    .during("merge runs")?;
            }
        }
        Ok(())
    }
}

/// A table of byte keys and values (runs and `post_D`).
type BytesTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

/// A run being read in descending key order, its next entry copied out.
struct Cursor<'r> {
    range: std::iter::Rev<redb::Range<'r, &'static [u8], &'static [u8]>>,
    head: Option<(Vec<u8>, Vec<u8>)>,
}

impl Cursor<'_> {
    fn advance(&mut self) -> Result<(), HistoryError> {
        self.head = match self.range.next() {
            None => None,
            Some(entry) => {
                let (key, value) = entry.during("merge runs")?;
                Some((key.value().to_vec(), value.value().to_vec()))
            }
        };
        Ok(())
    }
}

/// Merges `sources` (run tables, each sorted by value) into `sink`, value by value, from the
/// last value to the first: redb splits a full leaf where a key goes in, so keys inserted in
/// ascending order just before an existing key each take a leaf of their own (a fold of a
/// day's runs into its chunks took a 4 KiB page per value), while descending inserts fill
/// leaves about half.
fn merge_into(
    day: i64,
    sources: &[BytesTable<'_>],
    sink: &mut Sink<'_, '_>,
) -> Result<(), HistoryError> {
    let mut cursors = Vec::with_capacity(sources.len());
    for table in sources {
        let mut cursor = Cursor {
            range: table.iter().during("merge runs")?.rev(),
            head: None,
        };
        cursor.advance()?;
        cursors.push(cursor);
    }
    loop {
        // The largest value any run has next.
        let Some(prefix) = cursors
            .iter()
            .filter_map(|c| c.head.as_ref().map(|(key, _)| key))
            .max()
            .cloned()
        else {
            return Ok(());
        };
        let mut list = Vec::new();
        for cursor in &mut cursors {
            let Some((key, value)) = &cursor.head else {
                continue;
            };
            if *key != prefix {
                continue;
            }
            match decode_entry(value) {
                Ok(postings) => list.extend(postings),
                Err(e) => {
                    tracing::error!(day, error = %e, "unreadable run entry in event history left out")
                }
            }
            cursor.advance()?;
        }
        if !list.is_empty() {
            sink.put(&prefix, list)?;
        }
    }
}

/// Writes a batch's rare values of `day` as a run of level 0 (`entries` sorted by value, each
/// with fewer than `shape.spill` postings, newest first), then merges full levels.
pub(crate) fn write_run(
    tx: &redb::WriteTransaction,
    shape: Shape,
    day: i64,
    id: u64,
    entries: &[(Vec<u8>, Vec<Posting>)],
) -> Result<(), HistoryError> {
    if entries.is_empty() {
        return Ok(());
    }
    if id >> LEVEL_SHIFT != 0 {
        return Err(HistoryError::Damaged(format!(
            "WAL sequence number {id} is beyond what a run id holds"
        )));
    }
    {
        let mut run = tx
            .open_table(run_def(&run_table(day, 0, id)))
            .during("index events")?;
        for (prefix, list) in entries {
            run.insert(prefix.as_slice(), encode_entry(list).as_slice())
                .during("index events")?;
        }
    }
    tx.open_table(rundir_def(&rundir_table(day)))
        .during("index events")?
        .insert(dir_key(0, id), entries.len() as u64)
        .during("index events")?;
    // Merge every level that holds FANOUT runs into one run of the next.
    loop {
        let runs = day_runs(tx, day, "merge runs")?;
        let mut levels: Vec<u8> = runs.iter().map(|(level, _)| *level).collect();
        levels.dedup();
        let full = levels
            .into_iter()
            .find(|&level| runs.iter().filter(|(l, _)| *l == level).count() >= shape.fanout);
        let Some(level) = full else {
            return Ok(());
        };
        let merged: Vec<(u8, u64)> = runs.into_iter().filter(|(l, _)| *l == level).collect();
        let newest = merged
            .iter()
            .map(|(_, id)| *id)
            .max()
            .expect("a full level has runs");
        let next = level.checked_add(1).ok_or_else(|| {
            HistoryError::Damaged(format!("day {day} holds runs beyond the last level"))
        })?;
        merge_runs(tx, shape.spill, day, &merged, Some((next, newest)))?;
    }
}

/// Moves everything the runs of `day` hold into `post_D` and drops them (once the day is
/// over, before its chunks are merged).
pub(crate) fn fold_day(tx: &redb::WriteTransaction, day: i64) -> Result<(), HistoryError> {
    let runs = day_runs(tx, day, "fold runs")?;
    merge_runs(tx, 0, day, &runs, None)?;
    tx.delete_table(rundir_def(&rundir_table(day)))
        .during("fold runs")?;
    Ok(())
}

/// Merges `runs` into run `into` (level, id), or, without one, every value into `post_D`;
/// drops the merged runs.
fn merge_runs(
    tx: &redb::WriteTransaction,
    spill: usize,
    day: i64,
    runs: &[(u8, u64)],
    into: Option<(u8, u64)>,
) -> Result<(), HistoryError> {
    let entries = {
        let mut sources = Vec::with_capacity(runs.len());
        for &(level, id) in runs {
            sources.push(
                tx.open_table(run_def(&run_table(day, level, id)))
                    .during("merge runs")?,
            );
        }
        let mut chunks = tx
            .open_table(postings_def(&keys::postings_table(day)))
            .during("merge runs")?;
        let mut run = match into {
            Some((level, id)) => Some(
                tx.open_table(run_def(&run_table(day, level, id)))
                    .during("merge runs")?,
            ),
            None => None,
        };
        let mut sink = Sink {
            spill,
            chunks: &mut chunks,
            run: run.as_mut(),
            entries: 0,
        };
        merge_into(day, &sources, &mut sink)?;
        sink.entries
    };
    let mut dir = tx
        .open_table(rundir_def(&rundir_table(day)))
        .during("merge runs")?;
    for &(level, id) in runs {
        tx.delete_table(run_def(&run_table(day, level, id)))
            .during("merge runs")?;
        dir.remove(dir_key(level, id)).during("merge runs")?;
    }
    if let Some((level, id)) = into {
        if entries == 0 {
            tx.delete_table(run_def(&run_table(day, level, id)))
                .during("merge runs")?;
        } else {
            dir.insert(dir_key(level, id), entries)
                .during("merge runs")?;
        }
    }
    Ok(())
}

/// The postings of `prefix` in the runs of `day` (newest first within each run).
pub(crate) fn run_postings(
    tx: &redb::ReadTransaction,
    day: i64,
    prefix: &[u8],
) -> Result<Vec<Posting>, HistoryError> {
    let runs = match tx.open_table(rundir_def(&rundir_table(day))) {
        Ok(dir) => runs_of(&dir, "lookup")?,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e).during("lookup"),
    };
    let mut out = Vec::new();
    for (level, id) in runs {
        let run = tx
            .open_table(run_def(&run_table(day, level, id)))
            .during("lookup")?;
        let Some(value) = run.get(prefix).during("lookup")? else {
            continue;
        };
        match decode_entry(value.value()) {
            Ok(list) => out.extend(list),
            Err(e) => tracing::error!(day, error = %e, "unreadable run entry in event history"),
        }
    }
    Ok(out)
}

/// Drops the runs of `day` and their directory (expiry).
pub(crate) fn drop_runs(tx: &redb::WriteTransaction, day: i64) -> Result<(), HistoryError> {
    let runs = day_runs(tx, day, "expire history day")?;
    for (level, id) in runs {
        tx.delete_table(run_def(&run_table(day, level, id)))
            .during("expire history day")?;
    }
    tx.delete_table(rundir_def(&rundir_table(day)))
        .during("expire history day")?;
    Ok(())
}
