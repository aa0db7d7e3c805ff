//! Trail delivery: each trail reads the WAL through its own cursor, keeps the events its
//! logging periods, region scope and selectors select, batches them per (account, region) and
//! writes CloudTrail log files under CloudTrail's key layout.
//!
//! **Exactly once per trail.** Before the first byte of a batch is uploaded, a journal entry
//! is written durably: the WAL range the batch covers, its delivery time and, per file, the key
//! and the WAL sequence numbers it holds. Then the files are uploaded (create-only), the
//! cursor is committed, the journal entry removed. After a crash anywhere in between, the
//! journal is replayed: each file is rebuilt from the same WAL records (still there: the cursor
//! did not move) into the same bytes under the same key, and a create-only write of an
//! identical object counts as done. So a file is never written twice with the same events,
//! and no event is skipped.
//!
//! **Digests.** For a trail with log file validation, each delivered file's SHA-256 and event
//! times are recorded in the trail's digest ledger before the cursor moves, and signed digest
//! files are written per (account, source region) every period (see [`digests`]).
//!
//! **Failures.** An upload that fails (store unreachable, disk full, permission denied) is
//! retried with exponential backoff (1 s to 60 s); the trail's status shows the error and the
//! WAL keeps the events; delivery resumes where it stopped when the store returns.

pub mod digests;
mod journal;
mod worker;

pub use cairn_trail::batch::{selects, Batcher, FileBatch};
pub use journal::{Journal, JournalFile};
pub use worker::{
    DeliveryConfig, DeliveryHandle, DeliveryObserver, DigestConfig, FlushReport, TrailWorker,
};
