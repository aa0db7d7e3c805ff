//! The real boto3 `cloudtrail` client against Cairn: every CloudTrail operation Cairn serves,
//! paginators, and the errors — bad signatures, unknown keys, missing permissions, unknown
//! trails — with AWS's exception names. Trails deliver to a real S3-compatible server (moto).

mod support;

use serde_json::{json, Value};
use std::path::PathBuf;
use support::{python_with, JsonValue, Moto, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_every_cloudtrail_operation() {
    let python = python_with(&["boto3", "moto[server]"]);
    let moto = Moto::start();
    moto.create_bucket("boto-bucket").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = moto.s3_config();
    let server = TestServer::start(dir.path(), |c| {
        c.s3 = Some(s3);
        c.account_id = Some("111122223333".into());
    })
    .await;
    // A reader: CairnReader only.
    let json_ct = "application/json";
    let (status, _) = server
        .post(
            "/v1/iam/users",
            json_ct,
            json!({"UserName": "reader"}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .post(
            "/v1/iam/users/reader/attached-policies",
            json_ct,
            json!({"PolicyArn": "arn:aws:iam::aws:policy/CairnReader"}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let (status, key) = server
        .post("/v1/iam/users/reader/access-keys", json_ct, "")
        .await;
    assert_eq!(status, 200, "{key}");
    let reader_id = key["AccessKey"]["AccessKeyId"]
        .as_str()
        .expect("id")
        .to_owned();
    let reader_secret = key["AccessKey"]["SecretAccessKey"]
        .as_str()
        .expect("secret")
        .to_owned();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/cloudtrail_api.py");
    let (base, creds) = (server.base.clone(), server.creds.clone());
    let (rid, rsecret) = (reader_id.clone(), reader_secret.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args([
                &base,
                &creds.id,
                &creds.secret,
                &rid,
                &rsecret,
                "boto-bucket",
            ])
            .output()
    })
    .await
    .expect("join")
    .expect("python");
    assert!(
        output.status.success(),
        "boto3 script failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).expect("json");

    assert_eq!(out["create"]["Name"], "boto-trail");
    assert_eq!(
        out["create"]["TrailARN"],
        "arn:aws:cloudtrail:us-east-1:111122223333:trail/boto-trail"
    );
    assert_eq!(out["create"]["LogFileValidationEnabled"], true);
    assert_eq!(out["create"]["S3KeyPrefix"], "boto");
    assert_eq!(out["update"]["S3KeyPrefix"], "p2");
    assert_eq!(out["describe"].as_array().map(Vec::len), Some(2));
    assert_eq!(out["describe_one"].as_array().map(Vec::len), Some(1));
    assert!(out["describe"][0].get("LocalDirectory").is_none());
    assert_eq!(out["get"]["IsMultiRegionTrail"], true);
    assert_eq!(out["status_logging"], true);
    assert_eq!(out["status_has_start_time"], true);
    assert_eq!(out["status_stopped"], false);
    assert_eq!(out["list_trails"], json!(["boto-trail", "second-trail"]));
    assert_eq!(out["put_selectors"][0]["ReadWriteType"], "WriteOnly");
    assert_eq!(out["get_selectors"], out["put_selectors"]);
    assert_eq!(out["advanced"][0]["Name"], "writes");
    // Paginated LookupEvents over Cairn's own record of these calls.
    let names: Vec<&str> = out["lookup_names"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for wanted in [
        "CreateTrail",
        "UpdateTrail",
        "StartLogging",
        "StopLogging",
        "PutEventSelectors",
        "GetTrail",
        "DescribeTrails",
    ] {
        assert!(names.contains(&wanted), "{wanted} not in {names:?}");
    }
    assert!(
        out["lookup_pages"].as_u64().expect("pages") >= 3,
        "pages of 2"
    );
    // The record names the caller.
    let event = &out["create_event"];
    assert_eq!(event["userIdentity"]["type"], "IAMUser");
    assert_eq!(event["userIdentity"]["userName"], "admin");
    assert_eq!(
        event["userIdentity"]["accessKeyId"],
        server.creds.id.as_str()
    );
    assert_eq!(
        event["userIdentity"]["arn"],
        "arn:aws:iam::111122223333:user/admin"
    );
    assert!(
        event["userAgent"]
            .as_str()
            .is_some_and(|a| a.contains("Boto3")),
        "{event}"
    );
    assert_eq!(event["readOnly"], false);
    assert_eq!(out["public_keys"][0]["Value"], "MIIBCgKCAQEA");
    let e = &out["errors"];
    assert_eq!(e["unknown_trail"]["code"], "TrailNotFoundException");
    assert_eq!(e["bad_name"]["code"], "InvalidTrailNameException");
    assert_eq!(e["exists"]["code"], "TrailAlreadyExistsException");
    assert_eq!(e["wrong_secret"]["code"], "InvalidSignatureException");
    assert_eq!(e["unknown_key"]["code"], "UnrecognizedClientException");
    assert_eq!(e["denied"]["code"], "AccessDeniedException");
    assert_eq!(e["denied"]["status"], 403);
    assert_eq!(e["bad_time_range"]["code"], "InvalidTimeRangeException");
    assert_eq!(out["reader_can_read"], 2);
    assert_eq!(out["after_delete"], json!(["boto-trail"]));

    // The denial is on record with errorCode, for the CIS unauthorized-calls alarm.
    server.wait_indexed().await;
    let (_, page) = server
        .get("/v1/event-history?lookup-attribute=Username%3Dreader&max-results=50")
        .await;
    let denied: Vec<Value> = page["Events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            serde_json::from_str(e["CloudTrailEvent"].as_str().expect("record")).expect("json")
        })
        .filter(|r: &Value| r["errorCode"] == "AccessDenied")
        .collect();
    assert_eq!(denied.len(), 1, "{page}");
    assert_eq!(denied[0]["eventName"], "CreateTrail");
    assert!(denied[0]["errorMessage"]
        .as_str()
        .is_some_and(|m| m.contains("cloudtrail:CreateTrail")));
    // Secrets never appear in the record.
    let (_, all) = server
        .get("/v1/event-history?lookup-attribute=EventSource%3Diam.amazonaws.com")
        .await;
    let text = all.to_string();
    assert!(text.contains("CreateAccessKey"), "{text}");
    assert!(
        !text.contains(&reader_secret),
        "a secret leaked into the record"
    );
    let _ = server
        .send(server.client.get(format!("{}/v1/trails", server.base)))
        .await
        .json_value()
        .await;
    server.stop().await;
}
