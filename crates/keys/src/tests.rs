use super::*;
use cairn_model::ManualClock;

fn ring(dir: &Path, clock: &Arc<ManualClock>) -> KeyRing {
    KeyRing::open(dir, clock.clone()).expect("open")
}

#[test]
fn generated_at_first_use_stored_private_and_reloaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(1_000));
    let keys = ring(dir.path(), &clock);
    assert!(keys.list(None, 0, i64::MAX).is_empty());
    let key = keys.signing_key("eu-west-1").expect("key");
    let fingerprint = key.public_key().fingerprint();
    assert_eq!(
        keys.signing_key("eu-west-1")
            .expect("again")
            .public_key()
            .fingerprint(),
        fingerprint,
        "one current key per region"
    );
    let other = keys.signing_key("us-east-1").expect("key");
    assert_ne!(other.public_key().fingerprint(), fingerprint);
    let pem = dir
        .path()
        .join("eu-west-1")
        .join(format!("{fingerprint}.pem"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pem).expect("pem").permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "private key readable by its owner only"
        );
    }
    let ring_text = std::fs::read_to_string(dir.path().join("ring.json")).expect("ring");
    assert!(!ring_text.contains("PRIVATE"), "the ring holds no secret");
    drop(keys);
    let reopened = ring(dir.path(), &clock);
    assert_eq!(
        reopened
            .signing_key("eu-west-1")
            .expect("reloaded")
            .public_key()
            .fingerprint(),
        fingerprint
    );
    assert!(matches!(
        reopened.signing_key("../etc"),
        Err(KeyError::InvalidRegion(_))
    ));
}

#[test]
fn rotation_keeps_old_keys_listed_with_validity_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(1_000));
    let keys = ring(dir.path(), &clock);
    let first = keys
        .signing_key("eu-west-1")
        .expect("key")
        .public_key()
        .fingerprint();
    clock.set(5_000);
    let second = keys.rotate("eu-west-1").expect("rotate");
    assert_ne!(second.fingerprint, first);
    assert_eq!(
        keys.signing_key("eu-west-1")
            .expect("current")
            .public_key()
            .fingerprint(),
        second.fingerprint
    );
    let all = keys.list(Some("eu-west-1"), 0, i64::MAX);
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0].valid_from, all[0].valid_until),
        (1_000, Some(5_000))
    );
    assert_eq!((all[1].valid_from, all[1].valid_until), (5_000, None));
    // Windows: only the keys overlapping the asked range.
    let early = keys.list(Some("eu-west-1"), 0, 2_000);
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].fingerprint, first);
    assert_eq!(keys.list(Some("eu-west-1"), 6_000, 9_000).len(), 1);
    assert_eq!(keys.list(Some("eu-west-1"), 4_000, 6_000).len(), 2);
    assert!(keys.list(Some("us-east-1"), 0, i64::MAX).is_empty());
    assert_eq!(keys.public_keys().len(), 2);
}

#[test]
fn an_operator_key_becomes_current_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(1_000));
    let keys = ring(dir.path(), &clock);
    let operator = SigningKey::generate().expect("key");
    let pem = operator.to_pem().expect("pem");
    let info = keys.adopt("eu-west-1", &pem).expect("adopt");
    assert_eq!(info.source, KeySource::Operator);
    assert_eq!(info.fingerprint, operator.public_key().fingerprint());
    assert_eq!(
        keys.adopt("eu-west-1", &pem).expect("again"),
        info,
        "adopting the current key again changes nothing"
    );
    assert_eq!(keys.list(None, 0, i64::MAX).len(), 1);
    assert!(keys.adopt("eu-west-1", "not a pem").is_err());
}
