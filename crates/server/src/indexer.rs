//! The Event history consumer: reads the WAL from its cursor and indexes into the history
//! store, on its own thread (redb work is blocking).
//!
//! The history store records the last sequence number it indexed in the same transaction as
//! the index entries, so that is the consumer's true position; the WAL cursor file
//! (`history`) follows it, lazily, only to let the WAL retire segments.

use crate::ingest::IngestService;
use crate::metrics::Metrics;
use cairn_history::{HistoryStore, IndexItem};
use cairn_model::payload;
use cairn_model::Clock;
use cairn_wal::Wal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The WAL cursor name of the history consumer.
pub const CONSUMER: &str = "history";

const BATCH_RECORDS: usize = 16_384;
const BATCH_BYTES: usize = 32 * 1024 * 1024;

/// Wakes the indexer when the WAL has new durable records.
#[derive(Debug, Default)]
pub struct Wakeup {
    flag: Mutex<bool>,
    cond: Condvar,
}

impl Wakeup {
    /// Signals new work.
    pub fn notify(&self) {
        *self.flag.lock().expect("wakeup lock poisoned") = true;
        self.cond.notify_one();
    }

    fn wait(&self, timeout: Duration) {
        let guard = self.flag.lock().expect("wakeup lock poisoned");
        let (mut guard, _) = self
            .cond
            .wait_timeout_while(guard, timeout, |flag| !*flag)
            .expect("wakeup lock poisoned");
        *guard = false;
    }
}

/// The consumer.
pub struct Indexer {
    wal: Arc<Wal>,
    history: Arc<HistoryStore>,
    ingest: Arc<IngestService>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    reader: cairn_wal::WalReader,
    last_cursor_commit: Option<Instant>,
    last_expiry: Option<i64>,
    /// Every consumer whose cursor holds back WAL retirement (history and each trail).
    consumers: Arc<std::sync::RwLock<Vec<String>>>,
}

impl Indexer {
    /// A consumer starting where the history store left off.
    pub fn new(
        wal: Arc<Wal>,
        history: Arc<HistoryStore>,
        ingest: Arc<IngestService>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        consumers: Arc<std::sync::RwLock<Vec<String>>>,
    ) -> Result<Self, cairn_history::HistoryError> {
        let applied = history.applied_seq()?;
        let reader = wal.reader(applied);
        Ok(Self {
            wal,
            history,
            ingest,
            metrics,
            clock,
            reader,
            last_cursor_commit: None,
            last_expiry: None,
            consumers,
        })
    }

    /// Indexes one batch; returns how many records it consumed (0 when caught up).
    pub fn step(&mut self) -> Result<usize, String> {
        let records = self
            .reader
            .read_batch(BATCH_RECORDS, BATCH_BYTES)
            .map_err(|e| format!("reading the WAL: {e}"))?;
        let Some(last) = records.last().map(|r| r.seq) else {
            let position = self.reader.next_seq() - 1;
            self.metrics
                .history_applied_seq
                .set(i64::try_from(position).unwrap_or(i64::MAX));
            self.metrics
                .set_lag(CONSUMER, self.wal.durable_seq().saturating_sub(position));
            self.commit_cursor(false);
            return Ok(0);
        };
        let items: Vec<IndexItem<'_>> = records
            .iter()
            .filter_map(|r| match payload::decode(&r.payload) {
                Some(decoded) => Some(IndexItem {
                    seq: r.seq,
                    record: decoded.record,
                    digest: decoded.digest,
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
        let report = self
            .history
            .index_batch(&items, self.clock.now_millis())
            .map_err(|e| format!("indexing: {e}"))?;
        self.metrics.history_indexed.inc_by(report.indexed as u64);
        self.ingest.indexed_through(last);
        self.metrics
            .history_applied_seq
            .set(i64::try_from(last).unwrap_or(i64::MAX));
        self.metrics
            .set_lag(CONSUMER, self.wal.durable_seq().saturating_sub(last));
        self.commit_cursor(false);
        Ok(records.len())
    }

    /// Records the position in the WAL cursor (at most twice a second unless `force`) and
    /// retires WAL segments every consumer has passed.
    fn commit_cursor(&mut self, force: bool) {
        let due = self
            .last_cursor_commit
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500));
        if !(force || due) {
            return;
        }
        self.last_cursor_commit = Some(Instant::now());
        let position = self.reader.next_seq() - 1;
        if let Err(e) = self.wal.commit_cursor(CONSUMER, position) {
            tracing::warn!(error = %e, "committing the history WAL cursor failed");
            return;
        }
        let consumers = self
            .consumers
            .read()
            .expect("consumers lock poisoned")
            .clone();
        let names: Vec<&str> = consumers.iter().map(String::as_str).collect();
        match self.wal.retire(&names) {
            Ok(report) if report.segments_removed > 0 => {
                tracing::debug!(segments = report.segments_removed, "retired WAL segments");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retiring WAL segments failed"),
        }
    }

    /// Drops expired history, at most once an hour.
    fn expire(&mut self) {
        let now = self.clock.now_millis();
        if self.last_expiry.is_some_and(|t| now - t < 3_600_000) {
            return;
        }
        self.last_expiry = Some(now);
        if let Err(e) = self.history.expire(now) {
            tracing::warn!(error = %e, "expiring event history failed");
        }
    }

    /// Indexes until caught up with the WAL's durable records.
    pub fn catch_up(&mut self) -> Result<(), String> {
        while self.step()? > 0 {}
        self.commit_cursor(true);
        Ok(())
    }

    /// Runs until `stop` is set, sleeping on `wakeup` when caught up.
    pub fn run(mut self, wakeup: Arc<Wakeup>, stop: Arc<AtomicBool>) {
        let mut backoff = Duration::from_millis(100);
        while !stop.load(Ordering::Acquire) {
            self.expire();
            match self.step() {
                Ok(0) => wakeup.wait(Duration::from_secs(1)),
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::error!(error = %e, "event history indexing failed; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        let _ = self.catch_up();
    }
}
