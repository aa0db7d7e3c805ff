//! A delivery worker with log file validation under a manual clock: a starting digest, hourly
//! digests, and — after the clock steps back — a backfill digest for the file delivered into an
//! hour whose digest was already written. The result validates, backfill chain included.

use cairn_catalog::Trail;
use cairn_delivery::{DeliveryConfig, DeliveryObserver, DigestConfig, FlushReport, TrailWorker};
use cairn_model::ManualClock;
use std::sync::Arc;
use std::time::Duration;

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_772_445_630_000; // 2026-03-02T10:00:30Z

struct Quiet;

impl DeliveryObserver for Quiet {
    fn delivered(&self, _: &Trail, _: &FlushReport) {}
    fn failed(&self, trail: &Trail, error: &str) {
        panic!("delivery of {} failed: {error}", trail.name);
    }
    fn lag(&self, _: &Trail, _: u64) {}
    fn digest_delivered(&self, _: &Trail, _: &str) {}
    fn digest_failed(&self, trail: &Trail, error: &str) {
        panic!("digest delivery of {} failed: {error}", trail.name);
    }
}

fn trail(dir: &std::path::Path) -> Trail {
    Trail {
        log_file_validation_enabled: true,
        ..Trail::logging_to_directory("t1", "main", "111122223333", "us-east-1", dir.to_owned())
    }
}

fn append(wal: &cairn_wal::Wal, id: &str, time: i64) {
    let record = format!(
        r#"{{"eventVersion":"1.11","userIdentity":{{"type":"IAMUser"}},"eventTime":"{}","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","awsRegion":"us-east-1","eventID":"{id}","recipientAccountId":"111122223333","eventCategory":"Management","managementEvent":true,"readOnly":false}}"#,
        cairn_model::time::format_utc_seconds(time)
    );
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&record).expect("record");
    let fields = cairn_model::fields::SelectionFields::from_map(&map);
    let payload = cairn_model::payload::encode(
        &cairn_model::event::producer_digest(record.as_bytes()),
        &fields,
        &cairn_model::provenance::Provenance::Unknown,
        None,
        record.as_bytes(),
    );
    wal.append_blocking(vec![payload]).expect("append");
}

#[test]
fn hourly_digests_and_a_backfill_digest_after_the_clock_steps_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = dir.path().join("bucket");
    let (wal, _) = cairn_wal::Wal::open(
        &dir.path().join("wal"),
        Arc::new(cairn_wal::fs::StdFs),
        cairn_wal::WalConfig::test_config(),
        Arc::new(cairn_wal::NoopObserver),
    )
    .expect("wal");
    let wal = Arc::new(wal);
    let clock = Arc::new(ManualClock::new(T0));
    let keys =
        Arc::new(cairn_keys::KeyRing::open(&dir.path().join("keys"), clock.clone()).expect("keys"));
    let config = DeliveryConfig {
        interval: Duration::from_secs(3600),
        max_file_bytes: 1 << 20,
        account_id: "111122223333".into(),
        journal_dir: dir.path().join("journal"),
        abort_after_upload: false,
        digests: Some(DigestConfig {
            keys: keys.clone(),
            period: Duration::from_secs(3600),
            bucket: "bucket".into(),
            metadata: cairn_store::MetadataStyle::Sidecar,
        }),
    };
    let store = cairn_store::local(&bucket).expect("store");
    let handle = TrailWorker::spawn(
        trail(&bucket),
        wal.clone(),
        store.clone(),
        clock.clone(),
        config,
        Arc::new(Quiet),
    )
    .expect("spawn");
    let flush = || {
        handle
            .flush()
            .recv_timeout(Duration::from_secs(30))
            .expect("flush answered")
            .expect("flush succeeded")
    };
    append(&wal, "e1", T0);
    assert_eq!(flush().files, 1);
    clock.set(T0 + HOUR); // 11:00:30: the 11:00 digest is due
    flush();
    clock.set(T0 + 50 * 60_000); // 10:50:30: the clock stepped back
    append(&wal, "e2", T0 + 50 * 60_000);
    assert_eq!(flush().files, 1);
    clock.set(T0 + 2 * HOUR); // 12:00:30
    flush();
    handle.stop();

    let keys_listed: Vec<String> = std::fs::read_dir(
        bucket.join("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/03/02"),
    )
    .expect("digests")
    .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
    .filter(|n| n.ends_with(".json.gz"))
    .collect::<std::collections::BTreeSet<_>>()
    .into_iter()
    .collect();
    assert_eq!(keys_listed.len(), 3, "{keys_listed:?}");
    // Sorted by name: the backfill digest is stamped with its (stepped back) generation time.
    assert!(
        keys_listed[0].ends_with("_20260302T105030Z_backfill.json.gz"),
        "{keys_listed:?}"
    );
    assert!(
        keys_listed[1].ends_with("_20260302T110000Z.json.gz"),
        "{keys_listed:?}"
    );
    assert!(
        keys_listed[2].ends_with("_20260302T120000Z.json.gz"),
        "{keys_listed:?}"
    );
    let sidecar = std::fs::read_to_string(bucket.join(format!(
        "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/03/02/{}.metadata.json",
        keys_listed[0]
    )))
    .expect("sidecar");
    assert!(
        sidecar.contains("\"backfill-generation-timestamp\":\"2026-03-02T10:50:30Z\""),
        "{sidecar}"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = runtime
        .block_on(cairn_validate::run(
            &cairn_validate::Request {
                store,
                metadata: cairn_store::MetadataStyle::Sidecar,
                bucket: "bucket".into(),
                prefix: None,
                org_id: None,
                account: "111122223333".into(),
                region: "us-east-1".into(),
                trail_name: "main".into(),
                home_region: "us-east-1".into(),
                start_ms: T0 - HOUR,
                end_ms: T0 + 2 * HOUR,
                period_ms: HOUR,
                due_until_ms: T0 + 2 * HOUR - 60_000,
                keys: keys.public_keys(),
                logging: None,
            },
            Arc::new(cairn_validate::Progress::default()),
        ))
        .expect("validate");
    assert!(outcome.is_valid(), "{:#?}", outcome.lines);
    let logs_valid = outcome
        .lines
        .iter()
        .filter(|(_, f)| *f == cairn_digest::validate::Finding::LogValid)
        .count();
    assert_eq!(
        logs_valid, 2,
        "both files listed, one by the backfill digest"
    );
    assert!(outcome
        .lines
        .iter()
        .any(|(at, f)| at.ends_with("_backfill.json.gz")
            && *f == cairn_digest::validate::Finding::DigestValid));
}
