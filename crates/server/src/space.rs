//! The free space of the data directory's filesystem, and the reserve ingest keeps.
//!
//! A full disk is a state, not a crash: once free space falls below the reserve
//! (`min_free_mib`), producers' ingest answers 503 with `Retry-After` and the reason, while the
//! consumers (history, trails, log groups, the lake) keep committing into the reserve and the
//! control plane's own audit records still go in. `/readyz` reports it and `/metrics` shows
//! the free bytes. Ingest resumes by itself when space returns.
//!
//! The reserve grows with the backlog: Event history and log groups write about
//! [`EXPANSION`] bytes for each WAL byte they index, and the WAL cannot shrink until they
//! have. So ingest also pauses while free space is below the reserve plus [`EXPANSION`]
//! times the WAL bytes they have yet to index; otherwise a burst faster than indexing fills
//! the disk with WAL that can then never be indexed (nor deleted) without more space.

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

    /// `Err` with the reason when free space is below the reserve plus room for indexing
    /// `backlog` WAL bytes.
    pub fn check(&self, backlog: u64) -> Result<(), String> {
        if self.reserve == 0 {
            return Ok(());
        }
        let headroom = backlog.saturating_mul(EXPANSION);
        match self.free() {
            Some(free) if free < self.reserve => Err(format!(
                "the data directory's disk is full: {free} bytes free, below the reserve of {} bytes (min_free_mib) kept for Event history, trails, log groups and the Lake (No space left on device); ingest resumes by itself once space returns",
                self.reserve
            )),
            Some(free) if free < self.reserve.saturating_add(headroom) => Err(format!(
                "the data directory's disk is nearly full: {free} bytes free, below the reserve of {} bytes (min_free_mib) plus {headroom} bytes Event history and log groups need to index the {backlog} WAL bytes they have not indexed yet; ingest resumes by itself as they catch up or space returns",
                self.reserve
            )),
            _ => Ok(()),
        }
    }
}

/// Bytes Event history and log groups write per WAL byte they index (history keeps about
/// 2.4 KB for a 1.2 KB event; log groups keep the event again).
pub const EXPANSION: u64 = 3;

/// The WAL bytes the slowest of Event history and the log groups has yet to index:
/// records between its durable position and the WAL's end, at the mean size of the records
/// ingested since start (2 KiB before any).
pub fn index_backlog(wal: &cairn_wal::Wal, metrics: &crate::metrics::Metrics) -> u64 {
    let durable = wal.durable_seq();
    let slowest = wal
        .consumers()
        .into_iter()
        .filter(|(name, _)| name == crate::indexer::CONSUMER || name == cairn_logs::CURSOR)
        .map(|(_, status)| status.position)
        .min()
        .unwrap_or(durable);
    let mean = metrics
        .bytes_accepted
        .get()
        .checked_div(metrics.events_accepted.get())
        .unwrap_or(2048);
    durable.saturating_sub(slowest).saturating_mul(mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_pauses_while_the_backlog_could_not_be_indexed_in_the_space_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let space = DiskSpace::new(dir.path().to_owned(), 1);
        let free = space.free().expect("statvfs");
        assert_eq!(space.check(0), Ok(()));
        // Indexing a backlog a third of the free space would take all of it.
        let reason = space
            .check(free / EXPANSION + 1)
            .expect_err("no room to index");
        assert!(reason.contains("nearly full"), "{reason}");
        assert!(reason.contains("have not indexed yet"), "{reason}");
        // With the reserve turned off nothing pauses ingest.
        let off = DiskSpace::new(dir.path().to_owned(), 0);
        assert_eq!(off.check(u64::MAX), Ok(()));
    }
}
