//! The tamper corpus: one good chain, then each kind of damage, each reported with its class.

use super::*;
use crate::producer::{produce, test_digest_key, DeliveredLog, PreviousDigest};
use crate::signing::SigningKey;
use cairn_logfile::keys::{FileKind, LogFileKey};

const HOUR: i64 = 3_600_000;
const START: i64 = 1_772_445_691_000; // 2026-03-02T10:01:31Z
const BUCKET: &str = "audit-bucket";

struct Store {
    digests: BTreeMap<String, StoredDigest>,
    logs: BTreeMap<String, Result<Vec<u8>, LogReadError>>,
    keys: HashMap<String, PublicKey>,
    digest_keys: Vec<String>,
    log_keys: Vec<String>,
}

fn log_key(delivered: i64, unique: &str) -> String {
    LogFileKey {
        prefix: None,
        org_id: None,
        account: "111122223333".into(),
        region: "eu-west-1".into(),
        kind: FileKind::Log,
        delivered_at: delivered,
        unique: unique.into(),
    }
    .to_string()
}

/// Four hourly digests, two log files each; the first is a starting digest.
fn good_chain(signing_key: &SigningKey) -> Store {
    let mut store = Store {
        digests: BTreeMap::new(),
        logs: BTreeMap::new(),
        keys: HashMap::from([(
            signing_key.public_key().fingerprint(),
            signing_key.public_key(),
        )]),
        digest_keys: Vec::new(),
        log_keys: Vec::new(),
    };
    let mut previous: Option<PreviousDigest> = None;
    for hour in 0..4i64 {
        let end = START + (hour + 1) * HOUR;
        let mut delivered = Vec::new();
        for n in 0..2i64 {
            let key = log_key(
                end - HOUR + (n + 1) * 600_000,
                &format!("H{hour}N{n}aaaaaaaaaaaaa")[..16],
            );
            let bytes = format!(r#"{{"Records":[{{"eventID":"h{hour}-{n}"}}]}}"#).into_bytes();
            delivered.push(DeliveredLog {
                key: key.clone(),
                sha256_hex: sha256_hex(&bytes),
                newest_event_time: "2026-03-02T10:00:00Z".into(),
                oldest_event_time: "2026-03-02T10:00:00Z".into(),
            });
            store.logs.insert(key.clone(), Ok(bytes));
            store.log_keys.push(key);
        }
        let start_text = cairn_model::time::format_utc_seconds(end - HOUR);
        let digest = produce(
            &test_digest_key(end),
            BUCKET,
            &start_text,
            &delivered,
            previous.as_ref(),
            signing_key,
        );
        store.digests.insert(
            digest.key.clone(),
            StoredDigest {
                bytes: Ok(digest.bytes.clone()),
                signature: Some(digest.signature.clone()),
                signature_algorithm: Some("SHA256withRSA".into()),
                backfill_generation_timestamp: None,
            },
        );
        store.digest_keys.push(digest.key.clone());
        previous = Some(digest.as_previous);
    }
    store
}

fn run(store: &Store) -> Vec<ReportLine> {
    run_until(store, START + 4 * HOUR)
}

fn failures(store: &Store) -> Vec<ReportLine> {
    run(store)
        .into_iter()
        .filter(|(_, f)| f.is_failure())
        .collect()
}

fn has(report: &[ReportLine], key: &str, wanted: fn(&Finding) -> bool) -> bool {
    report.iter().any(|(at, f)| at.ends_with(key) && wanted(f))
}

#[test]
fn the_good_chain_is_valid_in_every_part() {
    let key = SigningKey::generate().expect("key");
    let store = good_chain(&key);
    let report = run(&store);
    assert_eq!(
        report
            .iter()
            .filter(|(_, f)| *f == Finding::DigestValid)
            .count(),
        4,
        "{report:#?}"
    );
    assert_eq!(
        report
            .iter()
            .filter(|(_, f)| *f == Finding::LogValid)
            .count(),
        8,
        "{report:#?}"
    );
    assert!(failures(&store).is_empty(), "{report:#?}");
}

#[test]
fn every_tampering_is_reported_with_its_class() {
    let key = SigningKey::generate().expect("key");
    let other_key = SigningKey::generate().expect("key");
    let good = good_chain(&key);
    let d = |i: usize| good.digest_keys[i].clone();
    let l = |i: usize| good.log_keys[i].clone();

    type Tamper = Box<dyn Fn(&mut Store)>;
    type Expect = Box<dyn Fn(&[ReportLine]) -> bool>;
    let cases: Vec<(&str, Tamper, Expect)> = vec![
        (
            "flipped byte in a log file",
            Box::new({
                let k = l(2);
                move |s: &mut Store| {
                    if let Some(Ok(b)) = s.logs.get_mut(&k) {
                        b[3] ^= 1;
                    }
                }
            }),
            Box::new({
                let k = l(2);
                move |r: &[ReportLine]| has(r, &k, |f| *f == Finding::LogHashMismatch)
            }),
        ),
        (
            "truncated log file",
            Box::new({
                let k = l(3);
                move |s: &mut Store| {
                    s.logs.insert(
                        k.clone(),
                        Err(LogReadError::InvalidFormat("unexpected end of file".into())),
                    );
                }
            }),
            Box::new({
                let k = l(3);
                move |r: &[ReportLine]| has(r, &k, |f| matches!(f, Finding::LogInvalidFormat(_)))
            }),
        ),
        (
            "second gzip member appended",
            Box::new({
                let k = l(1);
                move |s: &mut Store| {
                    s.logs.insert(k.clone(), Err(LogReadError::TrailingData));
                }
            }),
            Box::new({
                let k = l(1);
                move |r: &[ReportLine]| has(r, &k, |f| *f == Finding::LogTrailingData)
            }),
        ),
        (
            "deleted log file",
            Box::new({
                let k = l(0);
                move |s: &mut Store| {
                    s.logs.remove(&k);
                }
            }),
            Box::new({
                let k = l(0);
                move |r: &[ReportLine]| has(r, &k, |f| *f == Finding::LogNotFound)
            }),
        ),
        (
            "one deleted digest",
            Box::new({
                let k = d(1);
                move |s: &mut Store| {
                    s.digests.remove(&k);
                }
            }),
            Box::new({
                let k = d(1);
                move |r: &[ReportLine]| {
                    has(r, &k, |f| *f == Finding::DigestNotFound)
                        && r.iter()
                            .filter(|(_, f)| *f == Finding::DigestMissing)
                            .count()
                            == 0
                }
            }),
        ),
        (
            "two consecutive deleted digests",
            Box::new({
                let (a, b) = (d(1), d(2));
                move |s: &mut Store| {
                    s.digests.remove(&a);
                    s.digests.remove(&b);
                }
            }),
            Box::new({
                let (a, b) = (d(1), d(2));
                move |r: &[ReportLine]| {
                    has(r, &b, |f| *f == Finding::DigestNotFound)
                        && has(r, &a, |f| *f == Finding::DigestMissing)
                        && r.iter().filter(|(_, f)| f.is_failure()).count() == 2
                }
            }),
        ),
        (
            "the newest digest deleted",
            Box::new({
                let k = d(3);
                move |s: &mut Store| {
                    s.digests.remove(&k);
                }
            }),
            Box::new(|r: &[ReportLine]| {
                r.iter().any(|(at, f)| {
                    *f == Finding::DigestMissing && at.ends_with("_20260302T140131Z.json.gz")
                })
            }),
        ),
        (
            "modified digest",
            Box::new({
                let k = d(2);
                move |s: &mut Store| {
                    if let Some(StoredDigest { bytes: Ok(b), .. }) = s.digests.get_mut(&k) {
                        let at = b.len() - 20;
                        b[at] ^= 1;
                    }
                }
            }),
            Box::new({
                let k = d(2);
                move |r: &[ReportLine]| {
                    has(r, &k, |f| {
                        matches!(
                            f,
                            Finding::DigestSignatureFailed(_) | Finding::DigestInvalidFormat(_)
                        )
                    })
                }
            }),
        ),
        (
            "digest moved to another key",
            Box::new({
                let k = d(2);
                move |s: &mut Store| {
                    let v = s.digests.remove(&k).expect("digest");
                    s.digests
                        .insert(k.replace("main_eu-west-1", "main2_eu-west-1"), v);
                }
            }),
            Box::new({
                let (k, moved) = (d(2), d(2).replace("main_eu-west-1", "main2_eu-west-1"));
                move |r: &[ReportLine]| {
                    has(r, &moved, |f| *f == Finding::DigestMoved)
                        && has(r, &k, |f| *f == Finding::DigestNotFound)
                }
            }),
        ),
        (
            "two digests swapped",
            Box::new({
                let (a, b) = (d(1), d(2));
                move |s: &mut Store| {
                    let x = s.digests.remove(&a).expect("a");
                    let y = s.digests.remove(&b).expect("b");
                    s.digests.insert(a.clone(), y);
                    s.digests.insert(b.clone(), x);
                }
            }),
            Box::new({
                let (a, b) = (d(1), d(2));
                move |r: &[ReportLine]| {
                    has(r, &a, |f| *f == Finding::DigestMoved)
                        && has(r, &b, |f| *f == Finding::DigestMoved)
                }
            }),
        ),
        (
            "digest signed with another key",
            Box::new({
                let k = d(2);
                let other = other_key.clone();
                move |s: &mut Store| {
                    resign(s, &k, &other, false);
                }
            }),
            Box::new({
                let k = d(2);
                move |r: &[ReportLine]| {
                    has(r, &k, |f| matches!(f, Finding::DigestPublicKeyNotFound(_)))
                }
            }),
        ),
        (
            "forged digest under the right fingerprint",
            Box::new({
                let k = d(2);
                let other = other_key.clone();
                move |s: &mut Store| {
                    resign(s, &k, &other, true);
                }
            }),
            Box::new({
                let k = d(2);
                move |r: &[ReportLine]| {
                    has(r, &k, |f| matches!(f, Finding::DigestSignatureFailed(_)))
                }
            }),
        ),
        (
            "injected log file",
            Box::new(|s: &mut Store| {
                s.logs.insert(
                    log_key(START + 90 * 60_000, "INJECTEDzzzzzzzz"),
                    Ok(b"{\"Records\":[]}".to_vec()),
                );
            }),
            Box::new(|r: &[ReportLine]| {
                r.iter()
                    .any(|(at, f)| at.contains("INJECTED") && *f == Finding::LogUnreferenced)
            }),
        ),
        (
            "missing signature",
            Box::new({
                let k = d(1);
                move |s: &mut Store| {
                    if let Some(d) = s.digests.get_mut(&k) {
                        d.signature = None;
                    }
                }
            }),
            Box::new({
                let k = d(1);
                move |r: &[ReportLine]| {
                    has(r, &k, |f| matches!(f, Finding::DigestSignatureFailed(_)))
                }
            }),
        ),
        (
            "other signature algorithm",
            Box::new({
                let k = d(1);
                move |s: &mut Store| {
                    if let Some(d) = s.digests.get_mut(&k) {
                        d.signature_algorithm = Some("SHA1withRSA".into());
                    }
                }
            }),
            Box::new({
                let k = d(1);
                move |r: &[ReportLine]| {
                    has(r, &k, |f| matches!(f, Finding::DigestWrongAlgorithm(_)))
                }
            }),
        ),
    ];
    for (name, tamper, expect) in cases {
        let mut store = good_chain(&key);
        // Same chain, freshly built: keys and names are deterministic for a given signing key.
        assert_eq!(store.digest_keys, good.digest_keys);
        tamper(&mut store);
        let report = failures(&store);
        assert!(!report.is_empty(), "{name}: passed validation");
        assert!(
            expect(&report),
            "{name}: not reported with its class: {report:#?}"
        );
    }
}

/// Re-signs digest `key` with `other`; `keep_fingerprint` forges it under the real key's name.
fn resign(store: &mut Store, key: &str, other: &SigningKey, keep_fingerprint: bool) {
    let stored = store.digests.get(key).expect("digest").clone();
    let mut document = DigestDocument::parse(stored.bytes.as_ref().expect("bytes")).expect("json");
    if !keep_fingerprint {
        document.digest_public_key_fingerprint = other.public_key().fingerprint();
    }
    document.log_files.clear();
    let bytes = document.to_bytes();
    let to_sign = string_to_sign(
        &document.digest_end_time,
        &document.digest_s3_bucket,
        &document.digest_s3_object,
        &sha256_hex(&bytes),
        document.previous_digest_signature.as_deref(),
    );
    let signature = other.sign(&to_sign);
    store.digests.insert(
        key.to_owned(),
        StoredDigest {
            bytes: Ok(bytes),
            signature: Some(signature),
            signature_algorithm: Some("SHA256withRSA".into()),
            backfill_generation_timestamp: None,
        },
    );
}

fn run_until(store: &Store, due_until_ms: i64) -> Vec<ReportLine> {
    run_with(store, due_until_ms, None)
}

/// Adds a digest `[start, end]` to the store, linked to `previous` (or starting).
fn add_digest(
    store: &mut Store,
    signing_key: &SigningKey,
    start: i64,
    end: i64,
    previous: Option<&str>,
) {
    let previous = previous.map(|key| {
        let stored = &store.digests[key];
        PreviousDigest {
            bucket: BUCKET.into(),
            key: key.to_owned(),
            sha256_hex: sha256_hex(stored.bytes.as_ref().expect("bytes")),
            signature: stored.signature.clone().expect("signature"),
        }
    });
    let digest = produce(
        &test_digest_key(end),
        BUCKET,
        &cairn_model::time::format_utc_seconds(start),
        &[],
        previous.as_ref(),
        signing_key,
    );
    store.digests.insert(
        digest.key.clone(),
        StoredDigest {
            bytes: Ok(digest.bytes),
            signature: Some(digest.signature),
            signature_algorithm: Some("SHA256withRSA".into()),
            backfill_generation_timestamp: None,
        },
    );
    store.digest_keys.push(digest.key);
}

#[test]
fn a_final_digest_ends_the_chain_and_a_starting_digest_may_follow_a_gap() {
    let key = SigningKey::generate().expect("key");
    let mut store = good_chain(&key);
    let end = START + 4 * HOUR;
    // Without a final digest, later periods are due.
    let report = run_until(&store, end + 3 * HOUR);
    assert_eq!(
        report
            .iter()
            .filter(|(_, f)| *f == Finding::DigestMissing)
            .count(),
        3,
        "{report:#?}"
    );
    // StopLogging 20 minutes later: the final digest; nothing is due after it.
    let last = store.digest_keys[3].clone();
    add_digest(&mut store, &key, end, end + 20 * 60_000, Some(&last));
    let report = run_until(&store, end + 3 * HOUR);
    assert!(report.iter().all(|(_, f)| !f.is_failure()), "{report:#?}");
    // Logging restarts two hours later with a starting digest: the gap is not a failure.
    let restart = end + 2 * HOUR + 10 * 60_000;
    add_digest(&mut store, &key, restart, restart + 50 * 60_000, None);
    let report = run_until(&store, restart + 50 * 60_000);
    assert!(report.iter().all(|(_, f)| !f.is_failure()), "{report:#?}");
}

fn run_with(store: &Store, due_until_ms: i64, logging: Option<Logging>) -> Vec<ReportLine> {
    let logs: BTreeMap<String, LogState> = store
        .logs
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_ref().map(|b| sha256_hex(b)).map_err(Clone::clone),
            )
        })
        .collect();
    let present: BTreeSet<String> = store.logs.keys().cloned().collect();
    validate(&Chain {
        bucket: BUCKET,
        digests: &store.digests,
        logs: &logs,
        present_logs: &present,
        keys: &store.keys,
        period_ms: HOUR,
        window_start_ms: 0,
        due_until_ms,
        logging,
        key_template: Some(test_digest_key(0)),
    })
}

fn count(report: &[ReportLine], finding: Finding) -> usize {
    report.iter().filter(|(_, f)| *f == finding).count()
}

#[test]
fn deleting_every_digest_does_not_pass() {
    let key = SigningKey::generate().expect("key");
    let mut store = good_chain(&key);
    store.digests.clear();
    let edited = store.log_keys[3].clone();
    store.logs.insert(
        edited.clone(),
        Ok(br#"{"Records":[{"eventID":"forged"}]}"#.to_vec()),
    );
    let report = run(&store);
    // Every log file is reported, the edited one among them: nothing vouches for any.
    assert_eq!(count(&report, Finding::LogUnreferenced), 8, "{report:#?}");
    assert!(has(&report, &edited, |f| *f == Finding::LogUnreferenced));
    // Knowing the trail logged with validation, every period it logged is missing its digest
    // too, named by its key.
    let logging = Logging {
        is_logging: true,
        started_at: Some(START),
        stopped_at: None,
    };
    let report = run_with(&store, START + 4 * HOUR, Some(logging));
    assert_eq!(count(&report, Finding::DigestMissing), 4, "{report:#?}");
    assert!(report
        .iter()
        .any(|(at, f)| *f == Finding::DigestMissing && at.contains("CloudTrail-Digest")));
}

#[test]
fn a_stopped_trail_whose_final_digest_was_deleted_fails() {
    let key = SigningKey::generate().expect("key");
    let mut store = good_chain(&key);
    let end = START + 4 * HOUR;
    let stop = end + 20 * 60_000;
    // Two files delivered after the last hourly digest, before the stop: the final digest
    // listed them, and it was deleted.
    for (n, at) in [(0, end + 5 * 60_000), (1, end + 15 * 60_000)] {
        let log = log_key(at, &format!("LATE{n}aaaaaaaaaaa")[..16]);
        store
            .logs
            .insert(log.clone(), Ok(b"{\"Records\":[]}".to_vec()));
    }
    let stopped = Logging {
        is_logging: false,
        started_at: Some(START),
        stopped_at: Some(stop),
    };
    // Without the trail's status nothing tells the deletion (the AWS CLI passes it too).
    assert!(
        run_with(&store, stop + 5 * 60_000, None)
            .iter()
            .all(|(_, f)| !f.is_failure()),
        "no status, no finding"
    );
    let report = run_with(&store, stop + 5 * 60_000, Some(stopped));
    assert_eq!(count(&report, Finding::DigestMissing), 1, "{report:#?}");
    assert_eq!(count(&report, Finding::LogUnreferenced), 2, "{report:#?}");
    // Later, only the final digest is missing: no period after the stop is due.
    let report = run_with(&store, stop + 5 * HOUR, Some(stopped));
    assert_eq!(count(&report, Finding::DigestMissing), 1, "{report:#?}");
    // With the final digest in place, the same status validates.
    let last = store.digest_keys[3].clone();
    let mut with_final = good_chain(&key);
    with_final.logs = store.logs.clone();
    add_digest(&mut with_final, &key, end, stop, Some(&last));
    let report = run_with(&with_final, stop + 5 * HOUR, Some(stopped));
    assert_eq!(count(&report, Finding::DigestMissing), 0, "{report:#?}");
    // The late files are listed by no digest here (add_digest lists none): reported. So is a
    // file injected in the very minute the final digest ends, which the files alone cannot
    // tell from one delivered after it, but a stopped trail delivers nothing after its stop.
    let injected = log_key(stop - 30_000, "INJECTEDzzzzzzzz");
    with_final
        .logs
        .insert(injected.clone(), Ok(b"{\"Records\":[]}".to_vec()));
    let report = run_with(&with_final, stop + 5 * HOUR, Some(stopped));
    assert!(
        has(&report, &injected, |f| *f == Finding::LogUnreferenced),
        "{report:#?}"
    );
    let report = run_with(&with_final, stop + 5 * HOUR, None);
    assert!(
        !has(&report, &injected, |f| *f == Finding::LogUnreferenced),
        "{report:#?}"
    );
}

#[test]
fn a_stop_in_the_second_a_period_ends_still_needs_its_final_digest() {
    // The status gives the stop to the second: the stop fell in the very second the last
    // hourly digest ended. That digest is not the final one (Cairn writes the final digest
    // after it); deleted, the final digest is missing.
    let key = SigningKey::generate().expect("key");
    let store = good_chain(&key);
    let end = START + 4 * HOUR;
    let stopped = Logging {
        is_logging: false,
        started_at: Some(START),
        stopped_at: Some(end),
    };
    let report = run_with(&store, end + 5 * 60_000, Some(stopped));
    assert_eq!(count(&report, Finding::DigestMissing), 1, "{report:#?}");
    // The final digest, ending a second later, completes the chain.
    let last = store.digest_keys[3].clone();
    let mut with_final = good_chain(&key);
    add_digest(&mut with_final, &key, end, end + 1_000, Some(&last));
    let report = run_with(&with_final, end + 5 * 60_000, Some(stopped));
    assert!(report.iter().all(|(_, f)| !f.is_failure()), "{report:#?}");
}

#[test]
fn a_chain_cut_after_a_final_digest_fails_while_the_trail_logs_again() {
    let key = SigningKey::generate().expect("key");
    let mut store = good_chain(&key);
    let end = START + 4 * HOUR;
    let last = store.digest_keys[3].clone();
    add_digest(&mut store, &key, end, end + 20 * 60_000, Some(&last));
    // Logging restarted an hour later; its starting digest and the ones after were deleted.
    let restart = end + 80 * 60_000;
    let resumed = Logging {
        is_logging: true,
        started_at: Some(restart),
        stopped_at: Some(end + 20 * 60_000),
    };
    let report = run_with(&store, restart + 3 * HOUR, Some(resumed));
    assert!(count(&report, Finding::DigestMissing) >= 3, "{report:#?}");
    // A trail that stays stopped ends its chain with the final digest.
    let stopped = Logging {
        is_logging: false,
        started_at: Some(START),
        stopped_at: Some(end + 20 * 60_000),
    };
    let report = run_with(&store, restart + 3 * HOUR, Some(stopped));
    assert!(report.iter().all(|(_, f)| !f.is_failure()), "{report:#?}");
}
