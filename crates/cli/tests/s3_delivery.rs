//! Trail delivery to a real S3-compatible server (moto on 127.0.0.1), with an outage in the
//! middle of delivery: the error shows in the trail status and metrics, nothing is lost, and
//! delivery catches up when the store returns.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{Moto, TestServer};

fn event(id: &str) -> String {
    let time = cairn_model::time::format_utc_seconds(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("now")
            .as_millis() as i64,
    );
    format!(
        r#"{{"eventVersion":"1.11","userIdentity":{{"type":"IAMUser"}},"eventTime":"{time}","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","awsRegion":"us-east-1","eventID":"{id}"}}"#
    )
}

async fn delivered_ids(moto: &Moto, bucket: &str) -> Vec<String> {
    let store = cairn_store::s3(&moto.s3_config(), bucket).expect("store");
    let mut ids = Vec::new();
    for key in cairn_store::list(store.as_ref(), "").await.expect("list") {
        assert!(
            key.parse::<cairn_logfile::keys::LogFileKey>().is_ok(),
            "{key}"
        );
        let bytes = cairn_store::get(store.as_ref(), &key)
            .await
            .expect("get")
            .expect("object");
        let json =
            cairn_logfile::body::decompress(&bytes, 64 << 20).expect("raw gzip bytes, one member");
        for record in cairn_logfile::body::records(&json).expect("Records") {
            let value: Value = serde_json::from_slice(record).expect("record");
            ids.push(value["eventID"].as_str().expect("id").to_owned());
        }
    }
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_delivery_survives_an_outage() {
    let moto = Moto::start();
    moto.create_bucket("audit-logs").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = moto.s3_config();
    let server = TestServer::start(dir.path(), |c| c.s3 = Some(s3)).await;
    let json_ct = "application/json";
    let settings = json!({"Name": "s3trail", "S3BucketName": "audit-logs", "S3KeyPrefix": "cairn"});
    let (status, trail) = server
        .post("/v1/trails", json_ct, settings.to_string())
        .await;
    assert_eq!(status, 200, "{trail}");
    server
        .post("/v1/trails/s3trail/start-logging", json_ct, "")
        .await;
    server
        .post(
            "/v1/events",
            json_ct,
            format!("[{}]", event("before-outage")),
        )
        .await;
    let (status, report) = server.post("/v1/trails/s3trail/flush", json_ct, "").await;
    assert_eq!(status, 200, "{report}");
    assert!(
        report["Keys"][0]
            .as_str()
            .expect("key")
            .starts_with("cairn/AWSLogs/"),
        "{report}"
    );
    assert!(delivered_ids(&moto, "audit-logs")
        .await
        .contains(&"before-outage".to_owned()));

    // Outage: the store goes away in the middle of delivery.
    let port = moto.port();
    moto.stop();
    let (status, body) = server
        .post(
            "/v1/events",
            json_ct,
            format!("[{},{}]", event("during-1"), event("during-2")),
        )
        .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(2)),
        "ingest does not depend on the store"
    );
    let (status, answer) = server.post("/v1/trails/s3trail/flush", json_ct, "").await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .expect("message")
            .contains("will be retried"),
        "{answer}"
    );
    let (_, status_body) = server.get("/v1/trails/s3trail/status").await;
    assert!(
        status_body["LatestDeliveryError"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{status_body}"
    );
    assert!(server.metric("cairn_delivery_failures_total").await >= 1.0);
    // Retries back off: new events arriving all through the outage (each used to wake the
    // worker into another attempt, about 4 a second) do not cut the waits short. Over 4 s the
    // waits of 0.5-1, 1-2 and 2-4 s leave room for 3 attempts, whatever the machine's speed.
    let failures_before = server.metric("cairn_delivery_failures_total").await;
    for i in 0..20 {
        server
            .post(
                "/v1/events",
                json_ct,
                format!("[{}]", event(&format!("during-outage-{i}"))),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let attempts = server.metric("cairn_delivery_failures_total").await - failures_before;
    assert!(
        attempts <= 4.0,
        "{attempts} failed attempts in 4 s: retries do not back off"
    );

    // The store returns (empty: moto keeps state in memory); delivery catches up by itself.
    let moto = Moto::start_on(port);
    moto.create_bucket("audit-logs").await;
    let started = Instant::now();
    loop {
        let ids = delivered_ids(&moto, "audit-logs").await;
        let distinct: std::collections::HashSet<&String> =
            ids.iter().filter(|i| i.starts_with("during-")).collect();
        if distinct.len() == 22 {
            assert_eq!(
                ids.iter().filter(|i| i.starts_with("during-")).count(),
                22,
                "each once: {ids:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "delivery did not catch up: {ids:?}"
        );
        // The batch pending when the store went away is retried by itself; what arrived
        // later waits for the delivery interval (5 minutes) unless flushed.
        if ids.iter().any(|i| i == "during-1") {
            server.post("/v1/trails/s3trail/flush", json_ct, "").await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let started = Instant::now();
    loop {
        let (_, status_body) = server.get("/v1/trails/s3trail/status").await;
        if status_body["LatestDeliveryError"].is_null() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "error not cleared: {status_body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}
