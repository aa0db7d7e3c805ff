//! Selecting and grouping events into files (pure).

use crate::Trail;
use cairn_logfile::keys::{unique_from, FileKind, LogFileKey};
use cairn_selectors::Subject;
use std::collections::BTreeMap;

/// One file about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBatch<'a> {
    /// Its object key.
    pub key: String,
    /// WAL sequence numbers of its records, ascending.
    pub seqs: Vec<u64>,
    /// The records, in the same order.
    pub records: Vec<&'a [u8]>,
    /// Who ingested each record ([`cairn_model::provenance::Provenance::encode`]), in the
    /// same order.
    pub ingested_by: Vec<&'a [u8]>,
}

/// The record's selection subject when `trail` logs the record at WAL position `seq` (its
/// logging periods, region scope and selectors).
fn selected<'a>(
    trail: &Trail,
    seq: u64,
    record: &'a [u8],
    fields: Option<&'a [u8]>,
) -> Option<Subject<'a>> {
    if !trail.logs_seq(seq) {
        return None;
    }
    let subject = match Subject::from_wal(record, fields) {
        Ok(subject) => subject,
        Err(e) => {
            tracing::error!(seq, error = %e, trail = %trail.name, "skipping unreadable record in delivery");
            return None;
        }
    };
    // Insights records are delivered by insight selectors, not event selectors.
    if subject.category == "Insight"
        || !trail.scope.covers(&subject.region, &subject.event_source)
        || !trail.selectors.matches(&subject)
    {
        return None;
    }
    Some(subject)
}

/// Whether `trail` delivers the record at WAL position `seq` (what its log group receives).
pub fn selects(trail: &Trail, seq: u64, record: &[u8], fields: Option<&[u8]>) -> bool {
    selected(trail, seq, record, fields).is_some()
}

/// A held record: its WAL sequence number, bytes and encoded provenance.
type Held = (u64, Vec<u8>, Vec<u8>);

/// Events selected by one trail and not yet delivered, grouped per (account, region).
#[derive(Debug, Default)]
pub struct Batcher {
    /// account -> region -> held records: one group per file (or more if large).
    groups: BTreeMap<String, BTreeMap<String, Vec<Held>>>,
    bytes: usize,
    max_file_bytes: usize,
}

impl Batcher {
    /// A batcher whose files hold at most `max_file_bytes` of uncompressed JSON (a file with one
    /// larger record holds just that record).
    pub fn new(max_file_bytes: usize) -> Self {
        Self {
            groups: BTreeMap::new(),
            bytes: 0,
            max_file_bytes,
        }
    }

    /// Keeps the record at WAL position `seq` if `trail` logs it; returns whether it did.
    /// `fields` are the selection fields extracted at ingest, if the payload carries them
    /// (otherwise the record's JSON is read).
    pub fn offer(
        &mut self,
        trail: &Trail,
        default_account: &str,
        seq: u64,
        record: &[u8],
        fields: Option<&[u8]>,
        provenance: &[u8],
    ) -> bool {
        let Some(subject) = selected(trail, seq, record, fields) else {
            return false;
        };
        let account = subject.account.as_deref().unwrap_or(default_account);
        self.bytes += record.len() + 1;
        // Look up by reference: no allocation per event once a group exists.
        if !self.groups.contains_key(account) {
            self.groups.insert(account.to_owned(), BTreeMap::new());
        }
        let regions = self.groups.get_mut(account).expect("inserted above");
        match regions.get_mut(subject.region.as_ref()) {
            Some(events) => events.push((seq, record.to_vec(), provenance.to_vec())),
            None => {
                regions.insert(
                    subject.region.into_owned(),
                    vec![(seq, record.to_vec(), provenance.to_vec())],
                );
            }
        }
        true
    }

    /// Uncompressed bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.groups
            .values()
            .flat_map(BTreeMap::values)
            .map(Vec::len)
            .sum()
    }

    /// The files of a delivery covering WAL positions `(from, to]`, named deterministically.
    pub fn files(
        &self,
        trail: &Trail,
        from: u64,
        to: u64,
        delivered_at: i64,
    ) -> Vec<FileBatch<'_>> {
        let mut out = Vec::new();
        let groups = self
            .groups
            .iter()
            .flat_map(|(account, regions)| regions.iter().map(move |(r, e)| (account, r, e)));
        for (account, region, events) in groups {
            // Split into chunks of at most max_file_bytes (a single larger record stands alone).
            let mut chunks: Vec<Vec<&Held>> = vec![Vec::new()];
            let mut chunk_bytes = 0;
            for event in events {
                let size = event.1.len() + 1;
                if chunk_bytes + size > self.max_file_bytes
                    && chunks.last().is_some_and(|c| !c.is_empty())
                {
                    chunks.push(Vec::new());
                    chunk_bytes = 0;
                }
                chunk_bytes += size;
                chunks.last_mut().expect("at least one chunk").push(event);
            }
            for (index, chunk) in chunks
                .into_iter()
                .enumerate()
                .filter(|(_, c)| !c.is_empty())
            {
                let key = LogFileKey {
                    prefix: trail.s3_key_prefix.clone(),
                    org_id: trail
                        .organization_id
                        .clone()
                        .filter(|_| trail.is_organization_trail),
                    account: account.clone(),
                    region: region.clone(),
                    kind: FileKind::Log,
                    delivered_at,
                    unique: unique_from(
                        format!("{}/{from}/{to}/{account}/{region}/{index}", trail.id).as_bytes(),
                    ),
                };
                out.push(FileBatch {
                    key: key.to_string(),
                    seqs: chunk.iter().map(|(s, _, _)| *s).collect(),
                    records: chunk.iter().map(|(_, r, _)| r.as_slice()).collect(),
                    ingested_by: chunk.iter().map(|(_, _, p)| p.as_slice()).collect(),
                });
            }
        }
        out
    }

    /// Forgets everything held (after a delivery).
    pub fn clear(&mut self) {
        self.groups.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LoggingPeriod, Trail};

    fn trail() -> Trail {
        Trail {
            s3_key_prefix: Some("audit".into()),
            ..Trail::logging_to_directory(
                "t1",
                "main",
                "111122223333",
                "us-east-1",
                "/tmp/x".into(),
            )
        }
    }

    fn record(account: &str, region: &str, category: &str, pad: usize) -> Vec<u8> {
        format!(
            r#"{{"eventCategory":"{category}","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","readOnly":false,"awsRegion":"{region}","recipientAccountId":"{account}","p":"{}"}}"#,
            "x".repeat(pad)
        )
        .into_bytes()
    }

    #[test]
    fn groups_per_account_and_region_and_names_files_deterministically() {
        let trail = trail();
        let mut batcher = Batcher::new(1 << 20);
        assert!(batcher.offer(
            &trail,
            "000000000000",
            1,
            &record("111122223333", "us-east-1", "Management", 0),
            None,
            b"c"
        ));
        assert!(batcher.offer(
            &trail,
            "000000000000",
            2,
            &record("444455556666", "us-east-1", "Management", 0),
            None,
            b"c"
        ));
        assert!(
            !batcher.offer(
                &trail,
                "000000000000",
                3,
                &record("111122223333", "eu-west-1", "Management", 0),
                None,
                b"c"
            ),
            "single-region trail"
        );
        assert!(
            !batcher.offer(
                &trail,
                "000000000000",
                4,
                &record("111122223333", "us-east-1", "Data", 0),
                None,
                b"c"
            ),
            "default selectors"
        );
        assert!(batcher.offer(
            &trail,
            "000000000000",
            5,
            &record("111122223333", "us-east-1", "Management", 0),
            None,
            b"c"
        ));
        let files = batcher.files(&trail, 0, 5, 1_770_798_900_000);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].seqs, vec![1, 5]);
        assert!(files[0].key.starts_with("audit/AWSLogs/111122223333/CloudTrail/us-east-1/2026/02/11/111122223333_CloudTrail_us-east-1_20260211T0835Z_"), "{}", files[0].key);
        assert!(files[0].key.parse::<LogFileKey>().is_ok());
        assert_eq!(files[1].seqs, vec![2]);
        assert_eq!(
            batcher.files(&trail, 0, 5, 1_770_798_900_000),
            files,
            "same batch, same names"
        );
        assert_ne!(
            batcher.files(&trail, 0, 6, 1_770_798_900_000)[0].key,
            files[0].key
        );
    }

    #[test]
    fn logging_periods_and_size_split() {
        let mut trail = trail();
        trail.logging = vec![LoggingPeriod {
            after: 10,
            through: Some(12),
        }];
        let mut batcher = Batcher::new(300);
        let offered: Vec<bool> = (9..=13)
            .map(|s| {
                batcher.offer(
                    &trail,
                    "0",
                    s,
                    &record("111122223333", "us-east-1", "Management", 150),
                    None,
                    b"c",
                )
            })
            .collect();
        assert_eq!(offered, vec![false, false, true, true, false]);
        let files = batcher.files(&trail, 0, 13, 0);
        assert_eq!(
            files.len(),
            2,
            "two records over the size limit go to two files"
        );
        assert_ne!(files[0].key, files[1].key);
        trail.is_organization_trail = true;
        trail.organization_id = Some("o-abc".into());
        assert!(batcher.files(&trail, 0, 13, 0)[0]
            .key
            .contains("/AWSLogs/o-abc/111122223333/CloudTrail/"));
    }
}
