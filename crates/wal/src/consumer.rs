//! Named WAL consumers: one way to read the log, apply it, and say how far it is durably applied.
//!
//! A consumer ([`Consume`]) turns WAL records into a durable effect (an index, files, a table).
//! Its *position* is the last sequence number whose effect is durable, and it is kept in one
//! place: where the consumer keeps its effect (the same database transaction as the effect, or a
//! cursor file written after the effect). The WAL only mirrors it in memory, in its registry
//! ([`Wal::register`], [`Wal::advance`]), and deletes a segment once every registered consumer's
//! position has passed its last record ([`Wal::retire`]).
//!
//! [`Runner`] drives a consumer: it reads a batch after the position, hands it over, and
//! reports the durable position the consumer returns. When anything fails it does not read on:
//! it asks the consumer to drop what it held that was not durable, starts reading again after
//! the durable position, and retries with exponential backoff and jitter, logging one line
//! when the consumer starts failing and one when it recovers. It sleeps on the WAL's durable
//! watermark ([`Wal::wait_beyond`]), not on a timer.

use crate::{ReadError, Wal, WalRecord};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A WAL consumer's work.
pub trait Consume: Send {
    /// The consumer's name: its registry entry, its label in metrics and logs.
    fn name(&self) -> &str;

    /// Drops whatever the consumer holds that is not yet durable and returns its durable
    /// position: the next records it is given are those after it. Called at start and after
    /// every failure.
    fn rewind(&mut self) -> Result<u64, String>;

    /// Takes the next records, in order, none skipped. Returns the durable position after them
    /// (behind the last record when the consumer buffers, never ahead of it).
    fn apply(&mut self, records: Vec<WalRecord>) -> Result<u64, String>;

    /// Time-driven work (flushing buffers, retention), called when there was nothing to read
    /// and at least every [`Consume::tick`]. Returns the durable position.
    fn idle(&mut self) -> Result<u64, String>;

    /// The longest the runner sleeps before calling [`Consume::idle`].
    fn tick(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// What the WAL knows of a registered consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerStatus {
    /// Last sequence number whose effect is durable.
    pub position: u64,
    /// The failure the consumer is retrying, if any.
    pub last_error: Option<String>,
    /// Consecutive failed attempts (0 when healthy).
    pub failures: u32,
}

/// The registry of consumers, inside the WAL.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) consumers: BTreeMap<String, ConsumerStatus>,
}

impl Registry {
    pub(crate) fn min_position(&self) -> Option<u64> {
        self.consumers.values().map(|c| c.position).min()
    }
}

/// Exponential backoff with jitter: 100 ms doubling to 30 s, each wait drawn uniformly from its
/// upper half, so that consumers failing together do not retry together.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    seed: u64,
}

impl Backoff {
    /// A backoff between `min` and `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.as_nanos() as u64)
            | 1;
        Self {
            min,
            max,
            next: min,
            seed,
        }
    }

    /// The next wait, and doubles the one after.
    pub fn next_wait(&mut self) -> Duration {
        // xorshift64: jitter needs no quality beyond spreading retries.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let ceiling = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = ceiling / 2;
        let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_micros(self.seed % span)
    }

    /// Back to the shortest wait (after a success).
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(30))
    }
}

/// Drives one consumer.
pub struct Runner<C: Consume> {
    wal: Arc<Wal>,
    consumer: C,
    reader: crate::WalReader,
    max_records: usize,
    max_bytes: usize,
    backoff: Backoff,
    linger: Duration,
    linger_from: usize,
}

impl<C: Consume> std::fmt::Debug for Runner<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("consumer", &self.consumer.name())
            .field("next_seq", &self.reader.next_seq())
            .finish_non_exhaustive()
    }
}

impl<C: Consume> Runner<C> {
    /// Registers `consumer` at its durable position. Fails when the WAL no longer holds the
    /// records after it (the consumer would skip them).
    pub fn new(wal: Arc<Wal>, mut consumer: C) -> Result<Self, String> {
        let position = consumer.rewind()?;
        wal.register(consumer.name(), position)?;
        let reader = wal.reader(position);
        Ok(Self {
            wal,
            consumer,
            reader,
            max_records: 4096,
            max_bytes: 8 << 20,
            backoff: Backoff::default(),
            linger: Duration::ZERO,
            linger_from: 1,
        })
    }

    /// After applying a batch of at least `from` records that was not full, waits `linger` for
    /// more before the next (default: never). A consumer whose every batch costs a fixed price
    /// (a transaction and its fsync) then applies a few large batches a second under load
    /// instead of one per group commit, at the price of that much more lag; small batches (a
    /// quiet spell, a few control-plane calls) are applied as they come.
    pub fn with_linger(mut self, linger: Duration, from: usize) -> Self {
        self.linger = linger;
        self.linger_from = from.max(1);
        self
    }

    /// Sets the backoff between failed attempts (default 100 ms doubling to 30 s).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the most records and payload bytes read at once.
    pub fn with_batch(mut self, max_records: usize, max_bytes: usize) -> Self {
        self.max_records = max_records.max(1);
        self.max_bytes = max_bytes.max(1);
        self
    }

    /// Reads and applies one batch (or, when there is nothing to read, does the idle work).
    /// Returns how many records were applied. On failure nothing is skipped: the reader goes
    /// back to the consumer's durable position before the error is returned.
    pub fn step(&mut self) -> Result<usize, String> {
        let outcome = self.try_step();
        match &outcome {
            Ok(_) => {
                if self.wal.consumer_recovered(self.consumer.name()) {
                    tracing::info!(consumer = self.consumer.name(), "WAL consumer recovered");
                }
                self.backoff.reset();
            }
            Err(e) => {
                let failures = self.wal.consumer_failed(self.consumer.name(), e);
                if failures == 1 {
                    tracing::error!(consumer = self.consumer.name(), error = %e, "WAL consumer failing; retrying with backoff");
                }
                match self.consumer.rewind() {
                    Ok(position) => self.reader = self.wal.reader(position),
                    Err(e2) => {
                        // The consumer cannot say where it is: read again from the position the
                        // registry last heard from it (durable by definition).
                        self.reader = self.wal.reader(self.wal.position(self.consumer.name()));
                        tracing::debug!(consumer = self.consumer.name(), error = %e2, "rewinding failed");
                    }
                }
            }
        }
        outcome
    }

    fn try_step(&mut self) -> Result<usize, String> {
        let records = self
            .reader
            .read_batch(self.max_records, self.max_bytes)
            .map_err(|e| match e {
                ReadError::Missing(seq) => format!(
                    "reading the WAL: sequence {seq} is not in the write-ahead log (retired before this consumer passed it)"
                ),
                e => format!("reading the WAL: {e}"),
            })?;
        let count = records.len();
        let position = if records.is_empty() {
            self.consumer.idle()?
        } else {
            let last = records.last().map_or(0, |r| r.seq);
            let position = self.consumer.apply(records)?;
            if position > last {
                return Err(format!(
                    "consumer reported position {position} beyond the last record given, {last}"
                ));
            }
            position
        };
        self.wal.advance(self.consumer.name(), position);
        Ok(count)
    }

    /// Applies every durable record, failing on the first error.
    pub fn catch_up(&mut self) -> Result<(), String> {
        while self.step()? > 0 {}
        Ok(())
    }

    /// Runs until `stop` is set: reads whatever becomes durable, retries failures with
    /// backoff. On stop, tries once more to apply what is durable.
    pub fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            match self.step() {
                Ok(0) => {
                    let seen = self.reader.next_seq().saturating_sub(1);
                    self.wal.wait_beyond(seen, self.consumer.tick());
                }
                Ok(n) => {
                    if n >= self.linger_from && n < self.max_records && !self.linger.is_zero() {
                        self.wal.sleep_unless_woken(self.linger, stop);
                    }
                }
                Err(_) => {
                    let wait = self.backoff.next_wait();
                    self.wal.sleep_unless_woken(wait, stop);
                }
            }
        }
        let _ = self.step();
    }
}
