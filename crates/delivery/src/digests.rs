//! The digest chains of one trail (spec §3.3, §3.9): which digests are due, and what each
//! covers. Pure planning over a small state that the worker persists durably beside the
//! delivery journal (`<trail id>.digests.json`); signing and storing are the worker's.
//!
//! **Chains.** One per (account, source region): the trail's own account and home region from
//! the moment validation is active, and every other (account, region) from its first log file.
//! **Windows** end on multiples of the digest period (an hour) since the epoch, so each
//! ordinary digest covers exactly one period; a chain's first window starts when the chain
//! starts (a *starting* digest, with null `previousDigest*`), its last one ends when logging
//! stops or validation is disabled (the *final* digest, shorter than a period). A window with
//! no log file still gets its (empty) digest.
//! **Backfill.** A log file whose delivery time falls in a window whose digest is already
//! written (the wall clock stepped back) is listed in a backfill digest
//! (`_backfill.json.gz`), linked only to the previous backfill digest of the same chain.
//! **Idempotence.** Digest bytes and PKCS#1 v1.5 signatures are deterministic, and log files
//! are recorded by key once, so redoing a step after a crash writes the same objects again.

use cairn_digest::producer::{DeliveredLog, PreviousDigest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One chain's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    /// Account of the files.
    pub account: String,
    /// Source region of the files.
    pub region: String,
    /// Start of the open window, epoch ms (whole seconds).
    pub window_start: i64,
    /// The last ordinary digest (`None`: the next one is a starting digest).
    pub previous: Option<PreviousDigest>,
    /// Log files delivered in the open window.
    pub pending: Vec<DeliveredLog>,
    /// Log files delivered into windows whose digest is already written.
    pub backfill: Vec<DeliveredLog>,
    /// The last backfill digest.
    pub backfill_previous: Option<PreviousDigest>,
}

/// What to write next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDigest {
    /// Chain id (`account/region`).
    pub chain: String,
    /// Account.
    pub account: String,
    /// Source region.
    pub region: String,
    /// Window start, epoch ms.
    pub start: i64,
    /// Window end, epoch ms (the time in the key and in `digestEndTime`).
    pub end: i64,
    /// The files it lists.
    pub logs: Vec<DeliveredLog>,
    /// The digest it links to.
    pub previous: Option<PreviousDigest>,
    /// A backfill digest.
    pub backfill: bool,
    /// The chain ends with it.
    pub last: bool,
}

/// The digest state of one trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestLedger {
    /// Whether chains are running (validation enabled while logging).
    pub active: bool,
    /// Chains by `account/region`.
    pub chains: BTreeMap<String, ChainState>,
}

fn floor_second(ms: i64) -> i64 {
    ms.div_euclid(1000) * 1000
}

/// The first window boundary after `t`.
pub fn boundary_after(t: i64, period_ms: i64) -> i64 {
    (t.div_euclid(period_ms) + 1) * period_ms
}

fn chain_id(account: &str, region: &str) -> String {
    format!("{account}/{region}")
}

impl DigestLedger {
    /// Starts the chains (validation became active at `now`) with the trail's home chain.
    pub fn activate(&mut self, account: &str, home_region: &str, now: i64) {
        if !self.active {
            self.active = true;
            self.chain_mut(account, home_region, now);
        }
    }

    fn chain_mut(&mut self, account: &str, region: &str, start: i64) -> &mut ChainState {
        self.chains
            .entry(chain_id(account, region))
            .or_insert_with(|| ChainState {
                account: account.to_owned(),
                region: region.to_owned(),
                window_start: floor_second(start),
                previous: None,
                pending: Vec::new(),
                backfill: Vec::new(),
                backfill_previous: None,
            })
    }

    /// Records a delivered log file (once per key); `delivered_at` is the time in its key.
    pub fn record(&mut self, account: &str, region: &str, delivered_at: i64, log: DeliveredLog) {
        if !self.active {
            return;
        }
        let chain = self.chain_mut(account, region, delivered_at);
        let known = |list: &[DeliveredLog]| list.iter().any(|l| l.key == log.key);
        if known(&chain.pending) || known(&chain.backfill) {
            return;
        }
        if delivered_at < chain.window_start && chain.previous.is_some() {
            chain.backfill.push(log);
        } else {
            chain.pending.push(log);
        }
    }

    /// The next digest due at `now`: ordinary windows that have ended, backfill digests, and
    /// when `finish` (logging stopped and delivered, or validation disabled) every chain's
    /// final digest. Apply it with [`DigestLedger::written`] once stored.
    pub fn next_due(&self, now: i64, period_ms: i64, finish: bool) -> Option<PlannedDigest> {
        for (id, chain) in &self.chains {
            let plan = |start, end, logs: &[DeliveredLog], previous: &Option<PreviousDigest>| {
                PlannedDigest {
                    chain: id.clone(),
                    account: chain.account.clone(),
                    region: chain.region.clone(),
                    start,
                    end,
                    logs: logs.to_vec(),
                    previous: previous.clone(),
                    backfill: false,
                    last: false,
                }
            };
            if !chain.backfill.is_empty() {
                let start = chain
                    .backfill
                    .iter()
                    .filter_map(|l| {
                        l.key
                            .parse::<cairn_logfile::keys::LogFileKey>()
                            .ok()
                            .map(|k| boundary_after(k.delivered_at, period_ms) - period_ms)
                    })
                    .min()
                    .unwrap_or(chain.window_start);
                let mut planned = plan(
                    start,
                    floor_second(now).max(start + 1000),
                    &chain.backfill,
                    &chain.backfill_previous,
                );
                planned.backfill = true;
                return Some(planned);
            }
            let end = boundary_after(chain.window_start, period_ms);
            if end <= now {
                return Some(plan(
                    chain.window_start,
                    end,
                    &chain.pending,
                    &chain.previous,
                ));
            }
            if finish {
                let mut planned = plan(
                    chain.window_start,
                    floor_second(now).max(chain.window_start + 1000),
                    &chain.pending,
                    &chain.previous,
                );
                planned.last = true;
                return Some(planned);
            }
        }
        None
    }

    /// Applies a stored digest: the chain moves on (or ends).
    pub fn written(&mut self, planned: &PlannedDigest, stored: PreviousDigest) {
        let Some(chain) = self.chains.get_mut(&planned.chain) else {
            return;
        };
        if planned.backfill {
            chain
                .backfill
                .retain(|l| !planned.logs.iter().any(|p| p.key == l.key));
            chain.backfill_previous = Some(stored);
            return;
        }
        chain
            .pending
            .retain(|l| !planned.logs.iter().any(|p| p.key == l.key));
        chain.window_start = planned.end;
        chain.previous = Some(stored);
        if planned.last {
            self.chains.remove(&planned.chain);
            if self.chains.is_empty() {
                self.active = false;
            }
        }
    }

    /// Reads the ledger (empty if there is none).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the ledger durably.
    pub fn store(&self, path: &Path) -> std::io::Result<()> {
        cairn_durable::file::write(path, &serde_json::to_vec(self).expect("ledger serializes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const T0: i64 = 1_772_445_691_000; // 2026-03-02T10:01:31Z

    fn log(key_time: &str, name: &str) -> DeliveredLog {
        DeliveredLog {
            key: format!("AWSLogs/111122223333/CloudTrail/eu-west-1/2026/03/02/111122223333_CloudTrail_eu-west-1_{key_time}_{name:A>16}.json.gz"),
            sha256_hex: "00".repeat(32),
            newest_event_time: "2026-03-02T10:30:00Z".into(),
            oldest_event_time: "2026-03-02T10:05:00Z".into(),
        }
    }

    fn stored(planned: &PlannedDigest) -> PreviousDigest {
        PreviousDigest {
            bucket: "b".into(),
            key: format!("digest-{}", planned.end),
            sha256_hex: "11".repeat(32),
            signature: "22".repeat(256),
        }
    }

    fn drain(ledger: &mut DigestLedger, now: i64, finish: bool) -> Vec<PlannedDigest> {
        let mut out = Vec::new();
        while let Some(planned) = ledger.next_due(now, HOUR, finish) {
            ledger.written(&planned, stored(&planned));
            out.push(planned);
        }
        out
    }

    #[test]
    fn starting_ordinary_empty_and_final_digests() {
        let mut ledger = DigestLedger::default();
        ledger.record("111122223333", "eu-west-1", T0, log("20260302T1005Z", "a"));
        assert!(
            ledger.chains.is_empty(),
            "nothing is digested before activation"
        );
        ledger.activate("111122223333", "eu-west-1", T0);
        assert_eq!(ledger.next_due(T0 + 1000, HOUR, false), None);
        ledger.record(
            "111122223333",
            "eu-west-1",
            T0 + 60_000,
            log("20260302T1005Z", "a"),
        );
        ledger.record(
            "111122223333",
            "eu-west-1",
            T0 + 60_000,
            log("20260302T1005Z", "a"),
        );
        // 11:00 ends the starting window; 12:00 and 13:00 are empty.
        let due = drain(&mut ledger, T0 + 3 * HOUR, false);
        assert_eq!(due.len(), 3);
        assert_eq!(due[0].start, T0);
        assert_eq!(due[0].end, 1_772_445_600_000 + HOUR, "11:00:00Z");
        assert_eq!(due[0].previous, None, "a starting digest");
        assert_eq!(due[0].logs.len(), 1, "recorded once");
        assert_eq!(due[1].start, due[0].end, "continuous");
        assert_eq!(due[1].end - due[1].start, HOUR);
        assert!(
            due[1].logs.is_empty() && due[2].logs.is_empty(),
            "empty digests"
        );
        assert_eq!(due[2].previous, Some(stored(&due[1])), "linked");
        // Stop at 13:20:05.5: the final digest ends then, and the chain ends.
        let stop = due[2].end + 20 * 60_000 + 5_500;
        let last = drain(&mut ledger, stop, true);
        assert_eq!(last.len(), 1);
        assert!(last[0].last);
        assert_eq!(last[0].end, stop - 500, "whole seconds");
        assert_eq!(ledger, DigestLedger::default(), "inactive, no chain");
        // Restarting begins a new chain with a starting digest.
        ledger.activate("111122223333", "eu-west-1", stop + HOUR);
        let due = drain(&mut ledger, stop + 3 * HOUR, false);
        assert_eq!(due[0].previous, None);
    }

    #[test]
    fn other_regions_chain_from_their_first_file() {
        let mut ledger = DigestLedger::default();
        ledger.activate("111122223333", "eu-west-1", T0);
        ledger.record(
            "444455556666",
            "us-east-1",
            T0 + 5_000,
            log("20260302T1005Z", "x"),
        );
        let due = drain(&mut ledger, T0 + HOUR, false);
        let chains: Vec<&str> = due.iter().map(|d| d.chain.as_str()).collect();
        assert_eq!(chains, ["111122223333/eu-west-1", "444455556666/us-east-1"]);
        assert_eq!(due[1].start, T0 + 5_000);
        assert_eq!(due[1].logs.len(), 1);
    }

    #[test]
    fn a_file_delivered_into_a_digested_window_goes_to_a_backfill_digest() {
        let mut ledger = DigestLedger::default();
        ledger.activate("111122223333", "eu-west-1", T0);
        let due = drain(&mut ledger, T0 + HOUR, false);
        assert_eq!(due.len(), 1);
        // The clock stepped back: a file stamped 10:55 arrives after the 11:00 digest.
        ledger.record(
            "111122223333",
            "eu-west-1",
            T0 + 54 * 60_000,
            log("20260302T1055Z", "late"),
        );
        let backfill = drain(&mut ledger, T0 + HOUR + 60_000, false);
        assert_eq!(backfill.len(), 1);
        assert!(backfill[0].backfill);
        assert_eq!(
            backfill[0].previous, None,
            "first backfill digest of the chain"
        );
        assert_eq!(backfill[0].start, 1_772_445_600_000, "the file's window");
        assert_eq!(backfill[0].logs.len(), 1);
        assert_eq!(
            ledger.chains["111122223333/eu-west-1"].previous,
            Some(stored(&due[0])),
            "the ordinary chain is untouched"
        );
    }

    #[test]
    fn stores_and_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.digests.json");
        assert_eq!(
            DigestLedger::load(&path).expect("load"),
            DigestLedger::default()
        );
        let mut ledger = DigestLedger::default();
        ledger.activate("111122223333", "eu-west-1", T0);
        ledger.record("111122223333", "eu-west-1", T0, log("20260302T1005Z", "a"));
        ledger.store(&path).expect("store");
        assert_eq!(DigestLedger::load(&path).expect("load"), ledger);
    }
}
