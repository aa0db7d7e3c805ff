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

/// Watches the data directory's free space, and the WAL held for slow consumers.
#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    reserve: u64,
    /// Size of a WAL segment, and the most WAL bytes held for consumers (0: no bound).
    wal_segment_bytes: u64,
    max_wal_backlog: u64,
}

impl DiskSpace {
    /// Watches the filesystem holding `dir`, keeping `reserve` bytes free.
    pub fn new(dir: PathBuf, reserve: u64) -> Self {
        Self {
            dir,
            reserve,
            wal_segment_bytes: 0,
            max_wal_backlog: 0,
        }
    }

    /// Also bounds the WAL kept for consumers to `max` bytes (segments of `segment_bytes`).
    pub fn with_wal_bound(self, segment_bytes: u64, max: u64) -> Self {
        Self {
            wal_segment_bytes: segment_bytes,
            max_wal_backlog: max,
            ..self
        }
    }

    /// `Err` with the reason when the WAL holds more than the bound for a consumer that has not
    /// processed it: which consumer, how far behind, and why if it says.
    pub fn check_wal(&self, wal: &cairn_wal::Wal) -> Result<(), String> {
        if self.max_wal_backlog == 0 {
            return Ok(());
        }
        let held = (wal.segment_count() as u64).saturating_mul(self.wal_segment_bytes);
        if held <= self.max_wal_backlog {
            return Ok(());
        }
        let durable = wal.durable_seq();
        let slowest = wal
            .consumers()
            .into_iter()
            .min_by_key(|(_, status)| status.position);
        let who = match slowest {
            Some((name, status)) => format!(
                "consumer {name} is {} records behind{}",
                durable.saturating_sub(status.position),
                status
                    .last_error
                    .map(|e| format!(" (failing: {e})"))
                    .unwrap_or_default()
            ),
            None => "no consumer is registered".to_owned(),
        };
        Err(format!(
            "the write-ahead log holds about {} MiB that consumers have not processed, above max_wal_backlog_mib ({} MiB): {who}; ingest resumes by itself as it catches up",
            held >> 20,
            self.max_wal_backlog >> 20
        ))
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

/// Bytes Event history and log groups write per WAL byte they index, with room to spare:
/// history keeps about 0.65 KB for a 1.2 KB event (BENCHMARKS.md; its pages grow in steps, and
/// indexing rewrites pages before it frees the old ones), log groups keep the event again.
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
