//! The delivery journal: what a batch will write, recorded before writing it.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// One file of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalFile {
    /// Object key.
    pub key: String,
    /// WAL sequence numbers of its records, as inclusive ranges, ascending.
    pub ranges: Vec<(u64, u64)>,
}

impl JournalFile {
    /// The sequence numbers, expanded.
    pub fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| a..=b)
    }

    /// Compresses ascending sequence numbers into ranges.
    pub fn ranges_of(seqs: &[u64]) -> Vec<(u64, u64)> {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &seq in seqs {
            match ranges.last_mut() {
                Some(last) if last.1 + 1 == seq => last.1 = seq,
                _ => ranges.push((seq, seq)),
            }
        }
        ranges
    }
}

/// A batch about to be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// The cursor before the batch.
    pub from: u64,
    /// The cursor after the batch.
    pub to: u64,
    /// Delivery time (epoch ms) in the file names.
    pub delivered_at: i64,
    /// The files.
    pub files: Vec<JournalFile>,
    /// Whether the files carry who ingested each record (the trail's setting when the batch
    /// was made: a replay writes the same bytes even if the setting changed since).
    #[serde(default)]
    pub ingested_by: bool,
}

impl Journal {
    /// Writes the journal durably (temporary file, fsync, rename, directory fsync).
    pub fn store(&self, path: &Path) -> std::io::Result<()> {
        cairn_durable::file::write(path, &serde_json::to_vec(self).expect("journal serializes"))
    }

    /// Reads a journal, if there is one.
    pub fn load(path: &Path) -> std::io::Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the journal durably.
    pub fn clear(path: &Path) -> std::io::Result<()> {
        cairn_durable::file::remove(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_compress_and_expand() {
        let seqs = [1, 2, 3, 7, 9, 10];
        let ranges = JournalFile::ranges_of(&seqs);
        assert_eq!(ranges, vec![(1, 3), (7, 7), (9, 10)]);
        let file = JournalFile {
            key: "k".into(),
            ranges,
        };
        assert_eq!(file.seqs().collect::<Vec<_>>(), seqs);
    }

    #[test]
    fn store_load_clear() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j/t.journal");
        assert_eq!(Journal::load(&path).expect("load"), None);
        let journal = Journal {
            from: 1,
            to: 9,
            delivered_at: 5,
            files: vec![JournalFile {
                key: "a".into(),
                ranges: vec![(2, 3)],
            }],
            ingested_by: true,
        };
        journal.store(&path).expect("store");
        assert_eq!(Journal::load(&path).expect("load"), Some(journal));
        // A journal written before the setting existed reads as without it.
        std::fs::write(&path, r#"{"from":1,"to":2,"delivered_at":3,"files":[]}"#).expect("old");
        assert!(
            !Journal::load(&path)
                .expect("load")
                .expect("some")
                .ingested_by
        );
        Journal::clear(&path).expect("clear");
        assert_eq!(Journal::load(&path).expect("load"), None);
    }
}
