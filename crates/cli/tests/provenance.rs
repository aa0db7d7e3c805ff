//! Provenance: every event says who ingested it, out of band of its record, and a producer
//! cannot pass off a record as Cairn's own (issue 25: "forged self-audit").

mod support;

use serde_json::{json, Value};
use support::TestServer;

async fn lookup(server: &TestServer, attribute: &str) -> Vec<Value> {
    let (status, page) = server
        .get(&format!(
            "/v1/event-history?lookup-attribute={}",
            support::encode(attribute)
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    page["Events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_says_who_ingested_it_and_cairns_own_records_cannot_be_forged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(&dir.path().join("data"), |_| {}).await;
    let json_ct = "application/json";

    // A producer with the writer policy.
    let (writer, writer_arn) = support::user_with_key(&server, "writer", "CairnWriter").await;

    // Cairn's own record of a real control-plane change.
    let trail_dir = dir.path().join("trail");
    let (status, body) = server
        .post(
            "/v1/trails",
            json_ct,
            json!({"Name": "main", "LocalDirectory": trail_dir}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server
        .post("/v1/trails/main/stop-logging", json_ct, "")
        .await;
    assert_eq!(status, 200);
    server.wait_indexed().await;
    let real: Vec<Value> = lookup(&server, "EventName=StopLogging").await;
    assert_eq!(real.len(), 1, "{real:?}");
    let real_record: Value =
        serde_json::from_str(real[0]["CloudTrailEvent"].as_str().expect("record")).expect("json");

    // The writer sends a copy of it, with a new eventID: a record that claims to be Cairn's.
    let mut forged = real_record.clone();
    forged["eventID"] = json!("f0f0f0f0-0000-4000-8000-000000000001");
    let response = support::send(
        server
            .client
            .post(format!("{}/v1/events", server.base))
            .header("content-type", json_ct)
            .body(format!("[{forged}]")),
        &writer,
    )
    .await;
    assert_eq!(response.status(), 200);
    server.wait_indexed().await;

    // Both are StopLogging by the administrator, byte for byte alike but for the id; what
    // tells them apart is who ingested them.
    let both = lookup(&server, "EventName=StopLogging").await;
    assert_eq!(both.len(), 2, "{both:?}");
    let by_id = |id: &str| {
        both.iter()
            .find(|e| e["EventId"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not found in {both:?}"))
    };
    assert_eq!(
        by_id(real_record["eventID"].as_str().expect("id"))["IngestedBy"],
        json!({"Type": "Cairn"})
    );
    assert_eq!(
        by_id("f0f0f0f0-0000-4000-8000-000000000001")["IngestedBy"],
        json!({"Type": "Principal", "Arn": writer_arn, "AccessKeyId": writer.id})
    );
    // The producer's record is kept as sent: provenance is beside it, not in it.
    let stored: Value = serde_json::from_str(
        by_id("f0f0f0f0-0000-4000-8000-000000000001")["CloudTrailEvent"]
            .as_str()
            .expect("record"),
    )
    .expect("json");
    assert_eq!(stored, forged);

    // Filterable: Cairn's own records, and everything one key or one principal ingested.
    let cairn = lookup(&server, "IngestedBy=cairn").await;
    assert!(cairn.iter().any(|e| e["EventName"] == "StopLogging"));
    assert!(cairn.iter().all(|e| e["IngestedBy"]["Type"] == "Cairn"));
    assert!(!cairn
        .iter()
        .any(|e| e["EventId"] == "f0f0f0f0-0000-4000-8000-000000000001"));
    for value in [&writer.id, &writer_arn] {
        let theirs = lookup(&server, &format!("IngestedBy={value}")).await;
        let ids: Vec<&str> = theirs
            .iter()
            .filter_map(|e| e["EventId"].as_str())
            .collect();
        assert_eq!(ids, ["f0f0f0f0-0000-4000-8000-000000000001"], "{value}");
    }
    // The AWS protocol's LookupEvents carries it too.
    let response = server
        .send(
            server
                .client
                .post(format!("{}/", server.base))
                .header(
                    "x-amz-target",
                    "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
                )
                .header("content-type", "application/x-amz-json-1.1")
                .body(
                    json!({"LookupAttributes": [{"AttributeKey": "IngestedBy", "AttributeValue": writer.id}]})
                        .to_string(),
                ),
        )
        .await;
    assert_eq!(response.status(), 200);
    let page: Value = serde_json::from_str(&response.text().await.expect("text")).expect("json");
    assert_eq!(
        page["Events"][0]["IngestedBy"]["Type"], "Principal",
        "{page}"
    );
    server.stop().await;
}
