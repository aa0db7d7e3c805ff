//! [`Db`]: a redb database that reopens after an I/O failure (see the crate's documentation).

// redb's own error type is returned as is: every caller converts it into its store's error.
#![allow(clippy::result_large_err)]

use redb::{Database, DatabaseError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The shortest time between two attempts to reopen a failed database.
pub const REOPEN_INTERVAL: Duration = Duration::from_millis(500);

type Opener = Box<dyn Fn() -> Result<Database, DatabaseError> + Send + Sync>;

/// A redb database that reopens itself after an I/O failure.
pub struct Db {
    path: PathBuf,
    opener: Opener,
    current: RwLock<Option<Arc<Database>>>,
    failed: AtomicBool,
    last_attempt: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .field("failed", &self.failed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Whether `error` means the storage failed (the handle must be reopened), as opposed to a
/// logical error (a missing table, a value too large).
pub fn is_io(error: &redb::Error) -> bool {
    matches!(error, redb::Error::Io(_) | redb::Error::PreviousIo)
}

impl Db {
    /// Opens or creates the database file at `path` with a page cache of `cache_bytes`.
    pub fn create(path: &Path, cache_bytes: usize) -> Result<Self, DatabaseError> {
        let file = path.to_path_buf();
        Self::with_opener(
            path,
            Box::new(move || {
                Database::builder()
                    .set_cache_size(cache_bytes)
                    .create(&file)
            }),
        )
    }

    /// A database opened (and reopened) by `opener`; `path` names it in messages. Tests give an
    /// opener over a failing storage backend.
    pub fn with_opener(path: &Path, opener: Opener) -> Result<Self, DatabaseError> {
        let db = opener()?;
        Ok(Self {
            path: path.to_path_buf(),
            opener,
            current: RwLock::new(Some(Arc::new(db))),
            failed: AtomicBool::new(false),
            last_attempt: Mutex::new(None),
        })
    }

    /// The database, reopened first if an I/O failure was noted. Fails while reopening fails
    /// (the disk is still full, or a transaction of the failed handle is still running).
    pub fn get(&self) -> Result<Arc<Database>, redb::Error> {
        if !self.failed.load(Ordering::Acquire) {
            if let Some(db) = self.current.read().expect("db lock poisoned").as_ref() {
                return Ok(db.clone());
            }
        }
        self.reopen()
    }

    fn reopen(&self) -> Result<Arc<Database>, redb::Error> {
        let mut current = self.current.write().expect("db lock poisoned");
        if !self.failed.load(Ordering::Acquire) {
            if let Some(db) = current.as_ref() {
                return Ok(db.clone());
            }
        }
        {
            let mut last = self.last_attempt.lock().expect("db lock poisoned");
            if last.is_some_and(|t| t.elapsed() < REOPEN_INTERVAL) {
                return Err(redb::Error::PreviousIo);
            }
            *last = Some(Instant::now());
        }
        // The failed handle must be gone before the file is opened again (it holds the lock).
        *current = None;
        match (self.opener)() {
            Ok(db) => {
                let db = Arc::new(db);
                *current = Some(db.clone());
                self.failed.store(false, Ordering::Release);
                tracing::info!(path = %self.path.display(), "database reopened after an I/O failure");
                Ok(db)
            }
            Err(e) => {
                self.failed.store(true, Ordering::Release);
                tracing::debug!(path = %self.path.display(), error = %e, "reopening the database failed");
                Err(e.into())
            }
        }
    }

    /// A read transaction on [`Db::get`]'s database.
    pub fn begin_read(&self) -> Result<redb::ReadTransaction, redb::Error> {
        Ok(self.get()?.begin_read()?)
    }

    /// A write transaction on [`Db::get`]'s database.
    pub fn begin_write(&self) -> Result<redb::WriteTransaction, redb::Error> {
        Ok(self.get()?.begin_write()?)
    }

    /// Notes the outcome of an operation: after an I/O failure the next [`Db::get`] reopens.
    pub fn note(&self, error: &redb::Error) {
        if is_io(error) && !self.failed.swap(true, Ordering::AcqRel) {
            tracing::warn!(path = %self.path.display(), error = %error, "database I/O failed; it is reopened at its next use");
        }
    }

    /// Whether the last operation failed on I/O and no reopen has succeeded since.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
