//! Producers written for CloudTrail Lake work by changing a URL: the real boto3
//! `cloudtrail-data` client calls `PutAuditEvents` on Cairn. boto3 is installed into a virtual
//! environment under the target directory on first use (from PyPI).

mod support;

use std::path::PathBuf;
use std::process::Command;
use support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_put_audit_events_works_unmodified() {
    let python = support::python_with(&["boto3"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        TestServer::start(dir.path(), |c| c.account_id = Some("210987654321".into())).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/put_audit_events.py");
    let base = server.base.clone();
    let creds = server.creds.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(base)
            .arg("210987654321")
            .arg(&creds.id)
            .arg(&creds.secret)
            .output()
    })
    .await
    .expect("join")
    .expect("run python");
    assert!(
        output.status.success(),
        "boto3 script failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("script prints JSON");
    assert_eq!(answer["successful"][0]["id"], "one");
    let event_id = answer["successful"][0]["eventID"]
        .as_str()
        .expect("eventID")
        .to_owned();
    assert_eq!(answer["failed"][0]["id"], "two");
    assert_eq!(answer["failed"][0]["errorCode"], "FieldNotFound");
    assert_eq!(
        answer["retry"][0]["eventID"],
        event_id.as_str(),
        "a retried entry keeps its eventID"
    );
    assert_eq!(answer["denied"], "ChannelInsufficientPermission");
    server.wait_indexed().await;
    let (_, page) = server
        .get("/v1/event-history?lookup-attribute=EventSource%3Dbilling.example")
        .await;
    let events = page["Events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "recorded once: {page}");
    assert_eq!(events[0]["EventId"], event_id.as_str());
    server.stop().await;
}
