//! Cairn's local write-ahead log: the one place an event becomes durable.
//!
//! * **Layout.** A directory of segment files (see [`record`] for the bytes), each opening
//!   with a magic number and version, each record carrying its sequence number and a CRC32C.
//!   Sequence numbers start at 1 and have no gaps; `0` means "nothing".
//! * **Group commit.** One writer thread takes every append request waiting in its queue,
//!   writes them with one `write` and makes them durable with one `fsync`, then completes
//!   each request. A request is never completed before its fsync returned: an
//!   acknowledgement means durable. The durable watermark ([`Wal::durable_seq`]) only moves
//!   after fsync.
//! * **Failure.** A failed write or fsync fails every request of that group; the file is cut
//!   back to its last durable length before the next group, and after a failed fsync the
//!   writer moves to a fresh segment (the kernel may have dropped the dirty pages). Nothing
//!   already durable is touched. The writer keeps trying with each new group, so ingest
//!   recovers when the disk does.
//! * **Recovery.** [`Wal::open`] scans every segment, keeps every complete record, cuts a torn
//!   tail off the last segment and removes a last segment whose header never became whole.
//!   Damage anywhere else is refused, never silently dropped.
//! * **Consumers.** Each consumer reads through its own [`WalReader`] and keeps its own durable
//!   position (in its store, or in a cursor file: [`Wal::load_cursor`], [`Wal::commit_cursor`]).
//!   The WAL's registry mirrors every registered consumer's durable position
//!   ([`Wal::register`], [`Wal::advance`]); [`Wal::retire`] deletes a segment only when every
//!   registered consumer has passed its last record. [`consumer::Runner`] drives a consumer.

pub mod consumer;
pub mod fs;
mod reader;
pub mod record;
mod recovery;
mod writer;

use fs::WalFs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub use consumer::{Backoff, Consume, ConsumerStatus, Runner};
pub use reader::{ReadError, WalReader, WalRecord};
pub use recovery::{OpenError, RecoveryReport};

/// Sizes and limits of a WAL.
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// A segment is closed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// At most this many payload bytes go into one group commit.
    pub max_group_bytes: usize,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            max_group_bytes: 16 * 1024 * 1024,
        }
    }
}

impl WalConfig {
    /// Tiny sizes, so tests roll segments often.
    pub fn test_config() -> Self {
        Self {
            segment_bytes: 4096,
            max_group_bytes: 64 * 1024,
        }
    }
}

/// The sequence numbers given to one appended group of payloads, `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    /// Sequence number of the first payload.
    pub first: u64,
    /// Sequence number of the last payload.
    pub last: u64,
}

/// Why an append did not become durable. Nothing of the request is acknowledged; it may or
/// may not be on disk, and a retry must be recognised by the caller (Cairn deduplicates on
/// eventID).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// Writing or syncing the segment failed (disk full, I/O error).
    #[error("write-ahead log write failed: {0}")]
    Io(String),
    /// A payload was larger than [`record::MAX_PAYLOAD`].
    #[error("payload of {0} bytes exceeds the write-ahead log record limit")]
    PayloadTooLarge(usize),
    /// The WAL is shutting down.
    #[error("write-ahead log is closed")]
    Closed,
}

/// Hooks the writer calls, for metrics and wake-ups.
pub trait WalObserver: Send + Sync {
    /// A group became durable: its last sequence number, size and fsync time.
    fn committed(&self, last_seq: u64, records: usize, bytes: usize, fsync: Duration);
    /// A group failed.
    fn failed(&self, error: &str);
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct NoopObserver;

impl WalObserver for NoopObserver {
    fn committed(&self, _: u64, _: usize, _: usize, _: Duration) {}
    fn failed(&self, _: &str) {}
}

/// Callback completing one append request.
pub type AppendCallback = Box<dyn FnOnce(Result<SeqRange, AppendError>) + Send>;

pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) fs: Arc<dyn WalFs>,
    /// `first_seq` of every live segment, ascending; the last one is being written.
    pub(crate) segments: Mutex<Vec<u64>>,
    pub(crate) durable: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
    /// Registered consumers and their durable positions.
    pub(crate) registry: Mutex<consumer::Registry>,
    /// Bumped (and waiters woken) whenever the durable watermark moves or waiters are nudged.
    pub(crate) watermark: Mutex<u64>,
    pub(crate) watermark_moved: std::sync::Condvar,
}

impl Shared {
    /// Wakes every consumer waiting on the watermark.
    pub(crate) fn notify_watermark(&self) {
        *self.watermark.lock().expect("wal watermark lock poisoned") += 1;
        self.watermark_moved.notify_all();
    }
}

/// Why a cursor could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    /// The cursor file could not be read or written.
    #[error("cursor file {path} failed")]
    Io {
        /// The cursor file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The cursor file is damaged.
    #[error("cursor file {0} is damaged")]
    Damaged(PathBuf),
    /// The name is not usable as a cursor name.
    #[error("cursor name {0:?} must be 1-64 letters, digits, '-' or '_'")]
    BadName(String),
}

/// What [`Wal::retire`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetireReport {
    /// Segments deleted.
    pub segments_removed: usize,
    /// The slowest consumer's cursor.
    pub min_cursor: u64,
}

/// The write-ahead log.
pub struct Wal {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<writer::Request>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens (recovering) or creates the WAL in `dir` and starts its writer thread.
    pub fn open(
        dir: &Path,
        fs: Arc<dyn WalFs>,
        config: WalConfig,
        observer: Arc<dyn WalObserver>,
    ) -> Result<(Self, RecoveryReport), OpenError> {
        let recovered = recovery::recover(dir, fs.as_ref())?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            fs,
            segments: Mutex::new(recovered.segments.clone()),
            durable: AtomicU64::new(recovered.last_seq),
            last_error: Mutex::new(None),
            registry: Mutex::new(consumer::Registry::default()),
            watermark: Mutex::new(0),
            watermark_moved: std::sync::Condvar::new(),
        });
        let (sender, receiver) = mpsc::channel();
        let state = writer::WriterState::new(
            shared.clone(),
            config,
            observer,
            recovered.active,
            recovered.last_seq,
        )?;
        let thread = std::thread::Builder::new()
            .name("cairn-wal-writer".to_owned())
            .spawn(move || state.run(receiver))
            .map_err(|source| OpenError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        let wal = Self {
            shared,
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        };
        Ok((wal, recovered.report))
    }

    /// Queues `payloads` for the next group commit; `done` runs once they are durable (or
    /// failed). Payloads get consecutive sequence numbers.
    pub fn append(&self, payloads: Vec<Vec<u8>>, done: AppendCallback) {
        if let Some(len) = payloads
            .iter()
            .map(Vec::len)
            .find(|&len| len > record::MAX_PAYLOAD)
        {
            return done(Err(AppendError::PayloadTooLarge(len)));
        }
        if payloads.is_empty() {
            let last = self.durable_seq();
            return done(Ok(SeqRange {
                first: last + 1,
                last,
            }));
        }
        let guard = self.sender.lock().expect("wal sender lock poisoned");
        match guard.as_ref() {
            Some(sender) => {
                if let Err(mpsc::SendError(request)) =
                    sender.send(writer::Request { payloads, done })
                {
                    (request.done)(Err(AppendError::Closed));
                }
            }
            None => done(Err(AppendError::Closed)),
        }
    }

    /// [`Wal::append`] that waits for the outcome.
    pub fn append_blocking(&self, payloads: Vec<Vec<u8>>) -> Result<SeqRange, AppendError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.append(
            payloads,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.recv().unwrap_or(Err(AppendError::Closed))
    }

    /// The last sequence number known durable (0 if none).
    pub fn durable_seq(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// The error of the last failed group, cleared by the next successful one.
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .expect("wal error lock poisoned")
            .clone()
    }

    /// A reader of the records after `after_seq`.
    pub fn reader(&self, after_seq: u64) -> WalReader {
        WalReader::new(self.shared.clone(), after_seq + 1)
    }

    fn cursor_path(&self, name: &str) -> Result<PathBuf, CursorError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(CursorError::BadName(name.to_owned()));
        }
        Ok(self
            .shared
            .dir
            .join("cursors")
            .join(format!("{name}.cursor")))
    }

    /// The last sequence number consumer `name` has durably processed (0 if none yet).
    pub fn load_cursor(&self, name: &str) -> Result<u64, CursorError> {
        let path = self.cursor_path(name)?;
        let bytes = self
            .shared
            .fs
            .read_small(&path)
            .map_err(|source| CursorError::Io {
                path: path.clone(),
                source,
            })?;
        let Some(bytes) = bytes else { return Ok(0) };
        if bytes.len() != 12 {
            return Err(CursorError::Damaged(path));
        }
        let seq = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if crc32c::crc32c(&bytes[..8]) != crc {
            return Err(CursorError::Damaged(path));
        }
        Ok(seq)
    }

    /// Durably records that consumer `name` has processed everything up to `seq`.
    pub fn commit_cursor(&self, name: &str, seq: u64) -> Result<(), CursorError> {
        let path = self.cursor_path(name)?;
        let dir = self.shared.dir.join("cursors");
        let io = |source| CursorError::Io {
            path: path.clone(),
            source,
        };
        self.shared.fs.create_dir_all(&dir).map_err(io)?;
        let mut bytes = seq.to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc32c::crc32c(&seq.to_le_bytes()).to_le_bytes());
        self.shared.fs.write_durable(&path, &bytes).map_err(io)?;
        self.advance(name, seq);
        Ok(())
    }

    /// Registers consumer `name` at its durable `position`: from now on no segment holding a
    /// record after it is deleted. Refused when the records after `position` are already gone,
    /// or when `position` lies beyond the end of the WAL (the log was replaced or lost).
    pub fn register(&self, name: &str, position: u64) -> Result<(), String> {
        let durable = self.durable_seq();
        if position > durable {
            return Err(format!(
                "consumer {name} has applied records through sequence {position}, but the write-ahead log ends at {durable}: the log in {} is not the one this consumer read",
                self.shared.dir.display()
            ));
        }
        let segments = self
            .shared
            .segments
            .lock()
            .expect("wal segments lock poisoned");
        let first = segments.first().copied().unwrap_or(durable + 1);
        if position < durable && position + 1 < first {
            return Err(format!(
                "consumer {name} needs records from sequence {} on, but the write-ahead log starts at {first}",
                position + 1
            ));
        }
        let mut registry = self
            .shared
            .registry
            .lock()
            .expect("wal registry lock poisoned");
        let entry = registry.consumers.entry(name.to_owned()).or_default();
        entry.position = position;
        Ok(())
    }

    /// Removes consumer `name` from the registry (its trail or store was deleted).
    pub fn unregister(&self, name: &str) {
        self.shared
            .registry
            .lock()
            .expect("wal registry lock poisoned")
            .consumers
            .remove(name);
        self.retire_logged();
    }

    /// Records that consumer `name`'s effects are durable through `position` (never moves
    /// back), and deletes segments every registered consumer has passed. A name not
    /// registered is ignored.
    pub fn advance(&self, name: &str, position: u64) {
        let moved_min = {
            let mut registry = self
                .shared
                .registry
                .lock()
                .expect("wal registry lock poisoned");
            let before = registry.min_position();
            match registry.consumers.get_mut(name) {
                Some(entry) if position > entry.position => entry.position = position,
                _ => return,
            }
            registry.min_position() != before
        };
        if moved_min {
            self.retire_logged();
        }
    }

    fn retire_logged(&self) {
        match self.retire() {
            Ok(report) if report.segments_removed > 0 => {
                tracing::debug!(segments = report.segments_removed, "retired WAL segments");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retiring WAL segments failed"),
        }
    }

    /// The registered position of `name` (0 when not registered).
    pub fn position(&self, name: &str) -> u64 {
        self.shared
            .registry
            .lock()
            .expect("wal registry lock poisoned")
            .consumers
            .get(name)
            .map_or(0, |c| c.position)
    }

    /// Every registered consumer and its status.
    pub fn consumers(&self) -> Vec<(String, ConsumerStatus)> {
        self.shared
            .registry
            .lock()
            .expect("wal registry lock poisoned")
            .consumers
            .iter()
            .map(|(name, status)| (name.clone(), status.clone()))
            .collect()
    }

    /// Records a failed attempt of `name`; returns how many in a row.
    pub fn consumer_failed(&self, name: &str, error: &str) -> u32 {
        let mut registry = self
            .shared
            .registry
            .lock()
            .expect("wal registry lock poisoned");
        match registry.consumers.get_mut(name) {
            Some(entry) => {
                entry.failures = entry.failures.saturating_add(1);
                entry.last_error = Some(error.to_owned());
                entry.failures
            }
            None => 1,
        }
    }

    /// Records a successful attempt of `name`; true when it had been failing.
    pub fn consumer_recovered(&self, name: &str) -> bool {
        let mut registry = self
            .shared
            .registry
            .lock()
            .expect("wal registry lock poisoned");
        match registry.consumers.get_mut(name) {
            Some(entry) if entry.failures > 0 => {
                entry.failures = 0;
                entry.last_error = None;
                true
            }
            _ => false,
        }
    }

    /// Waits until a record after `seq` is durable, waiters are nudged ([`Wal::wake_consumers`])
    /// or `timeout` passes.
    pub fn wait_beyond(&self, seq: u64, timeout: Duration) {
        let guard = self
            .shared
            .watermark
            .lock()
            .expect("wal watermark lock poisoned");
        if self.durable_seq() > seq {
            return;
        }
        let generation = *guard;
        let _ = self
            .shared
            .watermark_moved
            .wait_timeout_while(guard, timeout, |g| *g == generation)
            .expect("wal watermark lock poisoned");
    }

    /// Sleeps for `duration` unless `stop` is set and waiters are nudged meanwhile.
    pub fn sleep_unless_woken(&self, duration: Duration, stop: &std::sync::atomic::AtomicBool) {
        let deadline = std::time::Instant::now() + duration;
        let mut guard = self
            .shared
            .watermark
            .lock()
            .expect("wal watermark lock poisoned");
        while !stop.load(Ordering::Acquire) {
            let now = std::time::Instant::now();
            if now >= deadline {
                return;
            }
            guard = self
                .shared
                .watermark_moved
                .wait_timeout(guard, deadline - now)
                .expect("wal watermark lock poisoned")
                .0;
        }
    }

    /// Wakes every consumer waiting in [`Wal::wait_beyond`] or [`Wal::sleep_unless_woken`]
    /// (to see a stop flag).
    pub fn wake_consumers(&self) {
        self.shared.notify_watermark();
    }

    /// Deletes every segment whose records all precede the slowest registered consumer's
    /// position. With no consumer registered nothing is deleted. The segment being written is
    /// never deleted.
    pub fn retire(&self) -> Result<RetireReport, CursorError> {
        // Segments before registry, as in `register`: a consumer registering meanwhile is
        // either seen here or sees the segments as they are left.
        let mut segments = self
            .shared
            .segments
            .lock()
            .expect("wal segments lock poisoned");
        let Some(min_cursor) = self
            .shared
            .registry
            .lock()
            .expect("wal registry lock poisoned")
            .min_position()
        else {
            return Ok(RetireReport::default());
        };
        let mut removable = 0;
        // Segment i ends where segment i+1 begins.
        while removable + 1 < segments.len() && segments[removable + 1] - 1 <= min_cursor {
            removable += 1;
        }
        let mut removed = 0;
        for &first in &segments[..removable] {
            let path = self.shared.dir.join(record::segment_name(first));
            match self.shared.fs.remove(&path) {
                Ok(()) => removed += 1,
                Err(source) => {
                    segments.drain(..removed);
                    return Err(CursorError::Io { path, source });
                }
            }
        }
        segments.drain(..removed);
        drop(segments);
        if removed > 0 {
            let _ = self.shared.fs.sync_dir(&self.shared.dir);
        }
        Ok(RetireReport {
            segments_removed: removed,
            min_cursor,
        })
    }

    /// Number of live segment files.
    pub fn segment_count(&self) -> usize {
        self.shared
            .segments
            .lock()
            .expect("wal segments lock poisoned")
            .len()
    }

    /// Stops the writer after it finished the requests already queued.
    pub fn close(&self) {
        self.sender.lock().expect("wal sender lock poisoned").take();
        if let Some(thread) = self.thread.lock().expect("wal thread lock poisoned").take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests;
