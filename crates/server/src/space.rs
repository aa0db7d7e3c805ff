//! The free space of the data directory's filesystem, and the reserve ingest keeps.
//!
//! A full disk is a state, not a crash: once free space falls below the reserve
//! (`min_free_mib`), producers' ingest answers 503 with `Retry-After` and the reason, while the
//! consumers (history, trails, log groups, the lake) keep committing into the reserve and the
//! control plane's own audit records still go in. `/readyz` reports it and `/metrics` shows
//! the free bytes. Ingest resumes by itself when space returns.

use std::path::PathBuf;

/// Watches the data directory's free space.
#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    reserve: u64,
}

impl DiskSpace {
    /// Watches the filesystem holding `dir`, keeping `reserve` bytes free.
    pub fn new(dir: PathBuf, reserve: u64) -> Self {
        Self { dir, reserve }
    }

    /// Bytes an unprivileged writer may still use (None if the filesystem cannot say).
    pub fn free(&self) -> Option<u64> {
        let stat = rustix::fs::statvfs(&self.dir).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// `Err` with the reason when free space is below the reserve.
    pub fn check(&self) -> Result<(), String> {
        if self.reserve == 0 {
            return Ok(());
        }
        match self.free() {
            Some(free) if free < self.reserve => Err(format!(
                "the data directory's disk is full: {free} bytes free, below the reserve of {} bytes (min_free_mib) kept for Event history, trails, log groups and the Lake (No space left on device); ingest resumes by itself once space returns",
                self.reserve
            )),
            _ => Ok(()),
        }
    }
}
