//! The Event history consumer: indexes WAL records into the history store.
//!
//! Its position is kept in one place: the history store records the last sequence number it
//! indexed in the same transaction as the index entries. The WAL's registry only mirrors it
//! (to retire segments), and after a failed transaction the [`cairn_wal::Runner`] reads again
//! from that position, so a batch that failed (a full disk) is indexed later, never skipped.

use crate::ingest::IngestService;
use crate::metrics::Metrics;
use cairn_history::{HistoryStore, IndexItem};
use cairn_model::payload;
use cairn_model::Clock;
use cairn_wal::{Consume, Wal, WalRecord};
use std::sync::Arc;

/// The registry name of the history consumer.
pub const CONSUMER: &str = "history";

/// Records read at once. Under load a batch is full, and each batch rewrites the pages its
/// random eventIDs land in: four times 16,384 doubled the rate history keeps beside ingest
/// (BENCHMARKS.md).
pub const BATCH_RECORDS: usize = 65_536;
/// After a batch that was not full, how long history waits for more before the next: a
/// batch is a transaction with its fsync and its rewritten pages, and one per group commit
/// took the cores ingest needed (BENCHMARKS.md). Event history trails ingest by this much more.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(250);
/// Batches smaller than this (a quiet spell, a few control-plane calls) are indexed as they
/// come: a lookup right after a call finds it.
pub const LINGER_FROM: usize = 256;
/// Payload bytes read at once (held with the batch's planned entries while it is written).
pub const BATCH_BYTES: usize = 96 * 1024 * 1024;

/// The consumer.
pub struct HistoryConsumer {
    wal: Arc<Wal>,
    history: Arc<HistoryStore>,
    ingest: Arc<IngestService>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// The position last read from or committed to the store.
    position: u64,
    last_expiry: Option<i64>,
}

impl HistoryConsumer {
    /// The consumer of `history`.
    pub fn new(
        wal: Arc<Wal>,
        history: Arc<HistoryStore>,
        ingest: Arc<IngestService>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            wal,
            history,
            ingest,
            metrics,
            clock,
            position: 0,
            last_expiry: None,
        }
    }

    fn report(&self) {
        self.metrics
            .history_applied_seq
            .set(i64::try_from(self.position).unwrap_or(i64::MAX));
        self.metrics.set_lag(
            CONSUMER,
            self.wal.durable_seq().saturating_sub(self.position),
        );
    }

    /// Drops expired history and merges the posting chunks of closed days, at most once an
    /// hour (on this thread: indexing waits for a merge, seconds for a day of a million events).
    fn expire(&mut self) {
        let now = self.clock.now_millis();
        if self.last_expiry.is_some_and(|t| now - t < 3_600_000) {
            return;
        }
        self.last_expiry = Some(now);
        if let Err(e) = self.history.expire(now) {
            tracing::warn!(error = %e, "expiring event history failed");
        }
        if let Err(e) = self.history.compact(now) {
            tracing::warn!(error = %e, "merging event history's closed days failed");
        }
    }
}

impl Consume for HistoryConsumer {
    fn name(&self) -> &str {
        CONSUMER
    }

    fn rewind(&mut self) -> Result<u64, String> {
        self.position = self
            .history
            .applied_seq()
            .map_err(|e| format!("reading the indexed position: {e}"))?;
        Ok(self.position)
    }

    fn apply(&mut self, records: Vec<WalRecord>) -> Result<u64, String> {
        let items: Vec<IndexItem<'_>> = records
            .iter()
            .filter_map(|r| match payload::decode(&r.payload) {
                Some(decoded) => Some(IndexItem {
                    seq: r.seq,
                    record: decoded.record,
                    digest: decoded.digest,
                    provenance: decoded.provenance,
                    view: decoded.view,
                }),
                None => {
                    tracing::error!(
                        seq = r.seq,
                        "skipping WAL record with an unknown payload format"
                    );
                    None
                }
            })
            .collect();
        let Some(last) = items.last().map(|i| i.seq) else {
            return Ok(self.position);
        };
        let report = self
            .history
            .index_batch(&items, self.clock.now_millis())
            .map_err(|e| format!("indexing: {e}"))?;
        self.metrics.history_indexed.inc_by(report.indexed as u64);
        self.ingest.indexed_through(last);
        self.position = last;
        self.report();
        // Also under a load that never leaves the indexer idle (hourly at most).
        self.expire();
        Ok(last)
    }

    fn idle(&mut self) -> Result<u64, String> {
        self.expire();
        self.report();
        Ok(self.position)
    }
}

/// Notes every durable event after `position` with the ingest service (see
/// [`IngestService::note_unindexed`]): what the catch-up before the API opens would have
/// done, when it could not (a start on a full disk). Returns how many.
pub fn note_unindexed(wal: &Wal, position: u64, ingest: &IngestService) -> Result<usize, String> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow, rename = "eventID")]
        event_id: std::borrow::Cow<'a, str>,
    }
    let mut reader = wal.reader(position);
    let mut noted = 0;
    loop {
        let records = reader
            .read_batch(BATCH_RECORDS, BATCH_BYTES)
            .map_err(|e| format!("reading the WAL: {e}"))?;
        if records.is_empty() {
            return Ok(noted);
        }
        for record in records {
            let Some(decoded) = payload::decode(&record.payload) else {
                continue;
            };
            if let Ok(id) = serde_json::from_slice::<Id<'_>>(decoded.record) {
                ingest.note_unindexed(record.seq, id.event_id.into_owned(), decoded.digest);
                noted += 1;
            }
        }
    }
}
