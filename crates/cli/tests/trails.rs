//! Trails end to end, in process: create, start/stop logging, selectors, flush, files on disk
//! under CloudTrail's key layout, self-audit events, and every sample record delivered.

mod support;

use cairn_logfile::keys::LogFileKey;
use serde_json::{json, Value};
use std::collections::HashMap;
use support::{delivered, JsonValue, TestServer};

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("now")
        .as_millis() as i64
}

fn now_text() -> String {
    cairn_model::time::format_utc_seconds(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("now")
            .as_millis() as i64,
    )
}

fn event(id: &str, region: &str, source: &str, name: &str, extra: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.11","userIdentity":{{"type":"IAMUser","userName":"t"}},"eventTime":"{}","eventSource":"{source}","eventName":"{name}","awsRegion":"{region}","eventID":"{id}"{extra}}}"#,
        now_text()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trail_delivers_what_it_selects_while_logging_and_audits_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = dir.path().join("bucket");
    let server = TestServer::start(&dir.path().join("data"), |c| {
        c.account_id = Some("111122223333".into())
    })
    .await;
    let json_ct = "application/json";

    let before = event(
        "before-trail",
        "us-east-1",
        "iam.amazonaws.com",
        "CreateUser",
        "",
    );
    server
        .post("/v1/events", json_ct, format!("[{before}]"))
        .await;
    let settings = json!({"Name": "main", "LocalDirectory": bucket, "S3KeyPrefix": "audit", "IsMultiRegionTrail": true});
    let (status, trail) = server
        .post("/v1/trails", json_ct, settings.to_string())
        .await;
    assert_eq!(status, 200, "{trail}");
    assert_eq!(
        trail["TrailARN"],
        "arn:aws:cloudtrail:us-east-1:111122223333:trail/main"
    );
    let (_, status_body) = server.get("/v1/trails/main/status").await;
    assert_eq!(
        status_body["IsLogging"], false,
        "CreateTrail does not start logging"
    );
    let (status, _) = server
        .post("/v1/trails/main/start-logging", json_ct, "")
        .await;
    assert_eq!(status, 200);

    let events = [
        event(
            "mgmt-use1",
            "us-east-1",
            "ec2.amazonaws.com",
            "RunInstances",
            "",
        ),
        event(
            "mgmt-euw1",
            "eu-west-1",
            "ec2.amazonaws.com",
            "RunInstances",
            "",
        ),
        event(
            "global-iam",
            "us-east-1",
            "iam.amazonaws.com",
            "CreateRole",
            "",
        ),
        event(
            "other-account",
            "eu-west-1",
            "ec2.amazonaws.com",
            "StopInstances",
            r#","recipientAccountId":"444455556666""#,
        ),
        event(
            "data-s3",
            "us-east-1",
            "s3.amazonaws.com",
            "GetObject",
            r#","resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::photos/a.jpg"}]"#,
        ),
    ];
    let (status, body) = server
        .post("/v1/events", json_ct, format!("[{}]", events.join(",")))
        .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(5)),
        "{body}"
    );
    let (status, report) = server.post("/v1/trails/main/flush", json_ct, "").await;
    assert_eq!(status, 200, "{report}");

    let files = delivered(&bucket);
    for id in ["mgmt-use1", "mgmt-euw1", "global-iam", "other-account"] {
        let copies = files
            .get(id)
            .unwrap_or_else(|| panic!("{id} not delivered: {:?}", files.keys()));
        assert_eq!(copies.len(), 1, "{id} delivered once");
        let key: LogFileKey = copies[0].0.parse().expect("CloudTrail key");
        let record: Value = serde_json::from_slice(&copies[0].1).expect("record");
        assert_eq!(key.prefix.as_deref(), Some("audit"));
        assert_eq!(
            key.region,
            record["awsRegion"].as_str().expect("region"),
            "{id} in its region's file"
        );
        assert_eq!(
            key.account,
            record["recipientAccountId"].as_str().expect("account"),
            "{id} in its account's file"
        );
    }
    assert_eq!(
        files["other-account"][0].0.split('/').nth(2),
        Some("444455556666")
    );
    assert!(
        !files.contains_key("before-trail"),
        "events before the trail logged are not delivered"
    );
    assert!(
        !files.contains_key("data-s3"),
        "data events need a data selector"
    );
    // The record in the file is byte-identical to the one in Event history.
    server.wait_indexed().await;
    let (_, page) = server
        .get("/v1/event-history?region=eu-west-1&lookup-attribute=EventId%3Dmgmt-euw1")
        .await;
    assert_eq!(
        page["Events"][0]["CloudTrailEvent"]
            .as_str()
            .expect("record")
            .as_bytes(),
        files["mgmt-euw1"][0].1.as_slice()
    );
    // Self-audit: CreateTrail in history, StartLogging in the trail's own files.
    let (_, page) = server
        .get("/v1/event-history?lookup-attribute=EventName%3DCreateTrail")
        .await;
    let audit: Value = serde_json::from_str(
        page["Events"][0]["CloudTrailEvent"]
            .as_str()
            .expect("CreateTrail audited"),
    )
    .expect("json");
    assert_eq!(audit["eventSource"], "cloudtrail.amazonaws.com");
    assert_eq!(audit["requestParameters"]["Name"], "main");
    assert_eq!(
        audit["responseElements"]["TrailARN"],
        "arn:aws:cloudtrail:us-east-1:111122223333:trail/main"
    );
    let start_logging = files.values().flatten().filter(|(_, r)| {
        serde_json::from_slice::<Value>(r).expect("record")["eventName"] == "StartLogging"
    });
    assert_eq!(start_logging.count(), 1);

    // Data selector, then StopLogging: the StopLogging call is the trail's last event.
    let selectors = json!({"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": true,
        "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::photos/"]}]}]});
    let request = server
        .client
        .put(format!("{}/v1/trails/main/event-selectors", server.base))
        .body(selectors.to_string());
    let answer: Value = server.send(request).await.json_value().await;
    assert_eq!(
        answer["EventSelectors"][0]["DataResources"][0]["Values"][0], "arn:aws:s3:::photos/",
        "{answer}"
    );
    let data_again = event(
        "data-s3-2",
        "us-east-1",
        "s3.amazonaws.com",
        "PutObject",
        r#","resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::photos/b.jpg"}]"#,
    );
    server
        .post("/v1/events", json_ct, format!("[{data_again}]"))
        .await;
    server
        .post("/v1/trails/main/stop-logging", json_ct, "")
        .await;
    let after = event(
        "after-stop",
        "us-east-1",
        "ec2.amazonaws.com",
        "RunInstances",
        "",
    );
    server
        .post("/v1/events", json_ct, format!("[{after}]"))
        .await;
    let (status, report) = server.post("/v1/trails/main/flush", json_ct, "").await;
    assert_eq!(status, 200, "{report}");
    let files = delivered(&bucket);
    assert!(
        files.contains_key("data-s3-2"),
        "selected data event delivered"
    );
    assert!(
        !files.contains_key("after-stop"),
        "nothing after StopLogging"
    );
    let names: Vec<String> = files
        .values()
        .flatten()
        .map(|(_, r)| {
            serde_json::from_slice::<Value>(r).expect("record")["eventName"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert!(
        names.contains(&"StopLogging".to_owned())
            && names.contains(&"PutEventSelectors".to_owned()),
        "{names:?}"
    );
    assert!(
        files.values().all(|copies| copies.len() == 1),
        "every event delivered exactly once"
    );
    // The trail's consumer lag is exported beside history's, and delivery has caught up.
    let metrics = support::metrics_text(&server.client, &server.base, &server.creds).await;
    let trail_lag: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("cairn_consumer_lag_records{consumer=\"trail-"))
        .collect();
    assert_eq!(trail_lag.len(), 1, "{metrics}");
    assert!(trail_lag[0].ends_with(" 0"), "{}", trail_lag[0]);
    let (_, status_body) = server.get("/v1/trails/main/status").await;
    assert_eq!(status_body["IsLogging"], false);
    assert!(
        status_body["LatestDeliveryTime"].as_f64().is_some(),
        "{status_body}"
    );
    assert!(status_body["LatestDeliveryError"].is_null());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_record_is_delivered_byte_identical_in_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = dir.path().join("bucket");
    let server = TestServer::start(&dir.path().join("data"), |c| {
        c.history_retention_days = Some(36_500)
    })
    .await;
    let json_ct = "application/json";
    let settings = json!({"Name": "corpus", "LocalDirectory": bucket, "IsMultiRegionTrail": true});
    assert_eq!(
        server
            .post("/v1/trails", json_ct, settings.to_string())
            .await
            .0,
        200
    );
    let selectors = json!({"EventSelectors": [{"DataResources": [
        {"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]},
        {"Type": "AWS::Lambda::Function", "Values": ["arn:aws:lambda"]},
        {"Type": "AWS::DynamoDB::Table", "Values": ["arn:aws:dynamodb"]}]}]});
    let request = server
        .client
        .put(format!("{}/v1/trails/corpus/event-selectors", server.base))
        .body(selectors.to_string());
    assert!(server.send(request).await.status().is_success());
    assert_eq!(
        server
            .post("/v1/trails/corpus/start-logging", json_ct, "")
            .await
            .0,
        200
    );

    let mut expected: HashMap<String, Vec<u8>> = HashMap::new();
    let mut data_ids = Vec::new();
    let normalized = support::samples_dir().join("_normalized");
    for name in [
        "awsdocs-cloudtrail-user-guide",
        "awsdocs-service-guides",
        "cloudgrep",
        "otel-collector-contrib",
        "panther-analysis",
        "trailscraper",
    ] {
        let text = std::fs::read(normalized.join(format!("{name}.ndjson"))).expect("corpus");
        let (_, body) = server
            .post("/v1/events", "application/x-ndjson", text)
            .await;
        for result in body["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter(|r| r["status"] == "accepted")
        {
            let id = result["eventID"].as_str().expect("id").to_owned();
            expected.insert(id, Vec::new());
        }
    }
    // What was stored for each accepted event (history returns the stored bytes).
    server.wait_indexed().await;
    let before_flush = now_millis();
    let (status, report) = server.post("/v1/trails/corpus/flush", json_ct, "").await;
    assert_eq!(status, 200, "{report}");
    let after_flush = now_millis();
    let files = delivered(&bucket);
    let mut missing = Vec::new();
    for (id, _) in expected.iter_mut() {
        match files.get(id).map(Vec::as_slice) {
            Some([(key, record)]) => {
                let key: LogFileKey = key.parse().expect("CloudTrail key");
                let parsed: Value = serde_json::from_slice(record).expect("record");
                assert_eq!(
                    key.region,
                    parsed["awsRegion"].as_str().expect("region"),
                    "{id}"
                );
                assert_eq!(
                    key.account,
                    parsed["recipientAccountId"].as_str().expect("account"),
                    "{id}"
                );
                // The file's time is its delivery time (to the minute), as CloudTrail names files.
                assert!(
                    key.delivered_at >= before_flush - 60_000 && key.delivered_at <= after_flush,
                    "{id}: file time {} outside the delivery",
                    key.delivered_at
                );
                if parsed["eventCategory"] == "Data" {
                    data_ids.push(id.clone());
                }
            }
            Some(more) => panic!("{id} delivered {} times", more.len()),
            None => missing.push(id.clone()),
        }
    }
    // Byte identity: the delivered record is the stored record (read back through Event
    // history for management events; data events are compared with the WAL in corpus.rs).
    let mut compared = 0;
    for (id, copies) in &files {
        let record: Value = serde_json::from_slice(&copies[0].1).expect("record");
        if record["eventCategory"] != "Management"
            || record["eventSource"] == "cloudtrail.amazonaws.com"
        {
            continue;
        }
        let region = record["awsRegion"].as_str().expect("region");
        let (_, page) = server
            .get(&format!(
                "/v1/event-history?region={region}&lookup-attribute={}",
                support::encode(&format!("EventId={id}"))
            ))
            .await;
        assert_eq!(
            page["Events"][0]["CloudTrailEvent"]
                .as_str()
                .expect("in history")
                .as_bytes(),
            copies[0].1.as_slice(),
            "{id}"
        );
        compared += 1;
    }
    // Only data events of resource types basic selectors cannot name stay undelivered.
    for id in &missing {
        let (_, page) = server
            .get(&format!(
                "/v1/event-history?lookup-attribute={}",
                support::encode(&format!("EventId={id}"))
            ))
            .await;
        assert!(
            page["Events"].as_array().expect("events").is_empty(),
            "management event {id} was not delivered"
        );
    }
    eprintln!("{} accepted, {} delivered ({} data events), {compared} compared with history, {} not selected", expected.len(), expected.len() - missing.len(), data_ids.len(), missing.len());
    assert!(compared > 150);
    server.stop().await;
}

/// The `cairn trails` and `cairn put-events` commands against a running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_administers_trails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = dir.path().join("bucket");
    let server = TestServer::start(&dir.path().join("data"), |_| {}).await;
    let base = server.base.clone();
    let data_dir = dir.path().join("data");
    let bucket_arg = bucket.display().to_string();
    let cli = move |args: Vec<String>| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(&args)
            .env("CAIRN_ENDPOINT", &base)
            // The CLI signs with the administrator credential of the server's data directory.
            .env("CAIRN_DATA_DIR", &data_dir)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .output()
            .expect("run cairn");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let run = |args: &[&str]| {
        let cli = cli.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || cli(args))
                .await
                .expect("join")
        }
    };
    let (code, out, err) = run(&[
        "trails",
        "create",
        "--name",
        "cli",
        "--local-directory",
        &bucket_arg,
        "--is-multi-region-trail",
    ])
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).expect("json")["IsMultiRegionTrail"],
        true
    );
    assert_eq!(
        run(&["trails", "start-logging", "--name", "cli"]).await.0,
        Some(0)
    );
    let events = dir.path().join("events.ndjson");
    std::fs::write(
        &events,
        format!(
            "{}\n{}\n",
            event(
                "cli-1",
                "eu-west-1",
                "ec2.amazonaws.com",
                "RunInstances",
                ""
            ),
            "{not json"
        ),
    )
    .expect("write");
    let (code, out, err) = run(&[
        "put-events",
        "--output",
        "text",
        &events.display().to_string(),
    ])
    .await;
    assert_eq!(
        code,
        Some(1),
        "a rejected event makes the exit status 1: {err}"
    );
    assert!(
        out == "1\t0\t1\n" && err.contains("#2: rejected"),
        "{out} {err}"
    );
    let (code, err_out, err) = run(&[
        "trails",
        "put-event-selectors",
        "--name",
        "cli",
        "--event-selectors",
        r#"[{"ReadWriteType":"Sometimes"}]"#,
    ])
    .await;
    assert_eq!(code, Some(2), "{err_out}");
    assert!(err.contains("InvalidEventSelectorsException"), "{err}");
    let (code, out, err) = run(&["trails", "flush", "--name", "cli"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(serde_json::from_str::<Value>(&out).expect("json")["Files"].as_u64() >= Some(1));
    assert!(delivered(&bucket).contains_key("cli-1"));
    let (code, out, _) = run(&["trails", "status", "--name", "cli"]).await;
    assert_eq!(
        (
            code,
            serde_json::from_str::<Value>(&out).expect("json")["IsLogging"].clone()
        ),
        (Some(0), Value::Bool(true))
    );
    let (code, _, err) = run(&["trails", "describe", "--name", "nope"]).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("TrailNotFoundException"), "{err}");
    assert_eq!(run(&["trails", "delete", "--name", "cli"]).await.0, Some(0));
    let (_, out, _) = run(&["trails", "list"]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&out).expect("json"),
        json!({"Trails": []})
    );
    server.stop().await;
}
