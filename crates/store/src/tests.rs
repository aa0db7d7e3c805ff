//! The contract every backend must keep. The local directory runs it here; the S3 path runs
//! the same suite against a real S3-compatible server in `crates/cli/tests/s3.rs`.

use super::*;
use testing::contract;

#[tokio::test]
async fn local_directory_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = local(&dir.path().join("bucket")).expect("store");
    contract(store.as_ref(), MetadataStyle::Sidecar).await;
    // Files land under the exact key, byte for byte.
    let on_disk = dir
        .path()
        .join("bucket/AWSLogs/111122223333/CloudTrail/us-east-1/2026/02/10/x.json.gz");
    assert_eq!(std::fs::read(on_disk).expect("file"), b"2");
}
