//! Compatibility with the real AWS CLI: `aws cloudtrail validate-logs` (awscli from PyPI)
//! validates the digest chain a Cairn trail wrote to a real S3-compatible server (moto on
//! 127.0.0.1), with Cairn itself answering the CloudTrail calls the CLI makes
//! (`DescribeTrails`, `ListPublicKeys`). It exits 0 on Cairn's chain, and 1 once a log file is
//! altered.

mod support;

use object_store::ObjectStoreExt;
use serde_json::json;
use support::{python_with, Moto, TestServer};

const ARN: &str = "arn:aws:cloudtrail:us-east-1:111122223333:trail/s3trail";

fn now_text() -> String {
    cairn_model::time::format_utc_seconds(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("now")
            .as_millis() as i64,
    )
}

fn aws_validate(
    aws: &std::path::Path,
    s3: &str,
    cairn: &str,
    start: &str,
    creds: &support::Creds,
) -> (i32, String) {
    let output = std::process::Command::new(aws)
        .args(["cloudtrail", "validate-logs", "--trail-arn", ARN])
        .args(["--start-time", start, "--verbose", "--region", "us-east-1"])
        .env("AWS_ENDPOINT_URL_S3", s3)
        .env("AWS_ENDPOINT_URL_CLOUDTRAIL", cairn)
        // Cairn's administrator; moto accepts any credential.
        .env("AWS_ACCESS_KEY_ID", &creds.id)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run aws");
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_validates_cairns_digests() {
    let aws = python_with(&["awscli", "moto[server]"])
        .parent()
        .expect("bin")
        .join("aws");
    let moto = Moto::start();
    moto.create_bucket("audit-logs").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = moto.s3_config();
    let server = TestServer::start(dir.path(), |c| {
        c.s3 = Some(s3);
        c.account_id = Some("111122223333".into());
        c.digest_period_seconds = Some(2);
        c.delivery_interval_seconds = Some(1);
    })
    .await;
    let json_ct = "application/json";
    let settings = json!({"Name": "s3trail", "S3BucketName": "audit-logs", "S3KeyPrefix": "cairn", "EnableLogFileValidation": true});
    let (status, trail) = server
        .post("/v1/trails", json_ct, settings.to_string())
        .await;
    assert_eq!(status, 200, "{trail}");
    let start = now_text();
    server
        .post("/v1/trails/s3trail/start-logging", json_ct, "")
        .await;
    for n in 0..3 {
        let event = format!(
            r#"{{"eventVersion":"1.11","userIdentity":{{"type":"IAMUser"}},"eventTime":"{}","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","awsRegion":"us-east-1","eventID":"aws-cli-{n}"}}"#,
            now_text()
        );
        let (status, _) = server
            .post("/v1/events", json_ct, format!("[{event}]"))
            .await;
        assert_eq!(status, 200);
        let (status, report) = server.post("/v1/trails/s3trail/flush", json_ct, "").await;
        assert_eq!(status, 200, "{report}");
        tokio::time::sleep(std::time::Duration::from_millis(2_300)).await;
    }
    server
        .post("/v1/trails/s3trail/stop-logging", json_ct, "")
        .await;
    let (status, report) = server.post("/v1/trails/s3trail/flush", json_ct, "").await;
    assert_eq!(status, 200, "{report}");

    let base = server.base.clone();
    // `aws cloudtrail validate-logs` over the bucket, Cairn answering its CloudTrail calls.
    let aws_run = {
        let (aws, start, cairn, s3) = (
            aws.clone(),
            start.clone(),
            base.clone(),
            moto.endpoint.clone(),
        );
        let creds = server.creds.clone();
        move || aws_validate(&aws, &s3, &cairn, &start, &creds)
    };
    let (code, text) = tokio::task::spawn_blocking(aws_run.clone())
        .await
        .expect("aws");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("digest files valid"), "{text}");
    // The CLI walked the whole chain: every log file the trail delivered was checked.
    let store = cairn_store::s3(&moto.s3_config(), "audit-logs").expect("store");
    let logs = cairn_store::list(store.as_ref(), "cairn/AWSLogs/111122223333/CloudTrail/")
        .await
        .expect("list")
        .len();
    assert!(logs >= 3, "{logs} log files");
    assert!(
        text.contains(&format!("{logs}/{logs} log files valid")),
        "{text}"
    );
    assert!(!text.contains("INVALID"), "{text}");

    // Alter one log file in place (valid gzip, other content): the AWS CLI must fail.
    let key = cairn_store::list(store.as_ref(), "cairn/AWSLogs/111122223333/CloudTrail/")
        .await
        .expect("list")
        .into_iter()
        .next()
        .expect("a log file");
    let bytes = cairn_store::get(store.as_ref(), &key)
        .await
        .expect("get")
        .expect("object");
    let json = cairn_logfile::body::decompress(&bytes, 1 << 20).expect("gzip");
    let original = String::from_utf8(json).expect("utf8");
    let altered = original.replacen("\"eventVersion\"", "\"eventVersioN\"", 1);
    assert_ne!(altered, original, "the file was changed");
    store
        .put(
            &object_store::path::Path::from(key.as_str()),
            cairn_logfile::body::gzip(altered.as_bytes()).into(),
        )
        .await
        .expect("overwrite");
    let (code, text) = tokio::task::spawn_blocking(aws_run.clone())
        .await
        .expect("aws");
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("{key}\tINVALID: hash value doesn't match")),
        "{text}"
    );
    store
        .put(
            &object_store::path::Path::from(key.as_str()),
            cairn_logfile::body::gzip(original.as_bytes()).into(),
        )
        .await
        .expect("restore");

    // The attacks the AWS CLI misses, each run through both validators on the same bucket:
    // Cairn's (through the server, which knows the trail stopped) fails every one.
    let cairn_validate = {
        let (start, base, s3, data) = (
            start.clone(),
            base.clone(),
            moto.endpoint.clone(),
            dir.path().to_path_buf(),
        );
        let creds = server.creds.clone();
        move || {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
                .args(["validate-logs", "--trail-arn", ARN, "--start-time", &start])
                .args(["--digest-period-seconds", "2", "--output", "json"])
                .env("CAIRN_ENDPOINT", &base)
                .env("CAIRN_DATA_DIR", &data)
                .env("AWS_ENDPOINT_URL_S3", &s3)
                // Two services, two keys: the bucket's (AWS_*, moto's test key) and Cairn's
                // administrator for the calls to Cairn (CAIRN_*), which the AWS_* key would not
                // sign.
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("CAIRN_ACCESS_KEY_ID", &creds.id)
                .env("CAIRN_SECRET_ACCESS_KEY", &creds.secret)
                .env("CAIRN_CONFIG_FILE", "/dev/null")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .env_remove("AWS_PROFILE")
                .output()
                .expect("run cairn");
            let report: serde_json::Value =
                serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
            (output.status.code().unwrap_or(-1), report)
        }
    };
    let digests: Vec<String> = cairn_store::list(
        store.as_ref(),
        "cairn/AWSLogs/111122223333/CloudTrail-Digest/",
    )
    .await
    .expect("list")
    .into_iter()
    .filter(|k| k.ends_with(".json.gz"))
    .collect();
    assert!(digests.len() >= 3, "{digests:?}");
    let style = cairn_store::MetadataStyle::ObjectMetadata;
    let mut saved = Vec::new();
    for digest in &digests {
        let (bytes, metadata) = cairn_store::get_with_metadata(store.as_ref(), digest, style)
            .await
            .expect("get")
            .expect("digest");
        saved.push((digest.clone(), bytes, metadata));
    }
    let restore = |keep: Vec<(String, _, cairn_store::Metadata)>| {
        let store = store.clone();
        async move {
            for (digest, bytes, metadata) in keep {
                let _ = store
                    .delete(&object_store::path::Path::from(digest.as_str()))
                    .await;
                cairn_store::put_create_only_with_metadata(
                    store.as_ref(),
                    &digest,
                    bytes,
                    &metadata,
                    style,
                )
                .await
                .expect("restore digest");
            }
        }
    };
    // Everything under the prefix, to put back after each attack.
    let everything = {
        let mut all = Vec::new();
        for k in cairn_store::list(store.as_ref(), "cairn/")
            .await
            .expect("list")
        {
            let (bytes, metadata) = cairn_store::get_with_metadata(store.as_ref(), &k, style)
                .await
                .expect("get")
                .expect("object");
            all.push((k, bytes, metadata));
        }
        all
    };
    let put_back = || {
        let store = store.clone();
        let everything = everything.clone();
        async move {
            let keep: std::collections::HashSet<&String> =
                everything.iter().map(|(k, _, _)| k).collect();
            for k in cairn_store::list(store.as_ref(), "cairn/")
                .await
                .expect("list")
            {
                if !keep.contains(&k) {
                    store
                        .delete(&object_store::path::Path::from(k.as_str()))
                        .await
                        .expect("remove added");
                }
            }
            for (k, bytes, metadata) in &everything {
                let _ = store
                    .delete(&object_store::path::Path::from(k.as_str()))
                    .await;
                cairn_store::put_create_only_with_metadata(
                    store.as_ref(),
                    k,
                    bytes.clone(),
                    metadata,
                    style,
                )
                .await
                .expect("restore");
            }
        }
    };
    let _ = restore; // the digests alone: superseded by `put_back`
    let mut sorted = digests.clone();
    sorted.sort();
    let delete = |k: String| {
        let store = store.clone();
        async move {
            store
                .delete(&object_store::path::Path::from(k.as_str()))
                .await
                .expect("delete");
        }
    };
    let original_gzip = cairn_logfile::body::gzip(original.as_bytes());
    // (attack, the AWS CLI's exit code as observed); Cairn must fail every one.
    let mut table = Vec::new();
    for attack in [
        "every digest deleted, a log file edited",
        "the final digest deleted",
        "a log file injected",
        "a log file deleted",
        "a log file truncated",
        "a gzip member appended to a log file",
        "a middle digest deleted",
        "two digests in a row deleted",
        "a digest's signature forged",
        "a digest moved",
    ] {
        match attack {
            "every digest deleted, a log file edited" => {
                for digest in &digests {
                    delete(digest.clone()).await;
                }
                store
                    .put(
                        &object_store::path::Path::from(key.as_str()),
                        cairn_logfile::body::gzip(altered.as_bytes()).into(),
                    )
                    .await
                    .expect("edit");
            }
            "the final digest deleted" => delete(sorted[sorted.len() - 1].clone()).await,
            "a log file injected" => {
                let mut log: cairn_logfile::keys::LogFileKey = key.parse().expect("log key");
                log.unique = "INJECTEDzzzzzzzz".into();
                store
                    .put(
                        &object_store::path::Path::from(log.to_string().as_str()),
                        cairn_logfile::body::gzip(b"{\"Records\":[]}").into(),
                    )
                    .await
                    .expect("inject");
            }
            "a log file deleted" => delete(key.clone()).await,
            "a log file truncated" => {
                store
                    .put(
                        &object_store::path::Path::from(key.as_str()),
                        original_gzip[..original_gzip.len() / 2].to_vec().into(),
                    )
                    .await
                    .expect("truncate");
            }
            "a gzip member appended to a log file" => {
                let mut longer = original_gzip.to_vec();
                longer.extend_from_slice(&cairn_logfile::body::gzip(b"{\"Records\":[]}"));
                store
                    .put(&object_store::path::Path::from(key.as_str()), longer.into())
                    .await
                    .expect("append");
            }
            "a middle digest deleted" => delete(sorted[sorted.len() / 2].clone()).await,
            "two digests in a row deleted" => {
                delete(sorted[sorted.len() - 3].clone()).await;
                delete(sorted[sorted.len() - 2].clone()).await;
            }
            "a digest's signature forged" => {
                let target = &sorted[sorted.len() / 2];
                let (bytes, mut metadata) =
                    cairn_store::get_with_metadata(store.as_ref(), target, style)
                        .await
                        .expect("get")
                        .expect("digest");
                let signature = metadata.get_mut("signature").expect("signature metadata");
                let flipped = if signature.starts_with('0') { "1" } else { "0" };
                signature.replace_range(..1, flipped);
                delete(target.clone()).await;
                cairn_store::put_create_only_with_metadata(
                    store.as_ref(),
                    target,
                    bytes,
                    &metadata,
                    style,
                )
                .await
                .expect("forge");
            }
            _ => {
                // Moved: the same object, signature and all, under another key.
                let target = &sorted[sorted.len() / 2];
                let (bytes, metadata) =
                    cairn_store::get_with_metadata(store.as_ref(), target, style)
                        .await
                        .expect("get")
                        .expect("digest");
                delete(target.clone()).await;
                let moved = target.replace("/CloudTrail-Digest/", "/CloudTrail-Digest/moved/");
                cairn_store::put_create_only_with_metadata(
                    store.as_ref(),
                    &moved,
                    bytes,
                    &metadata,
                    style,
                )
                .await
                .expect("move");
            }
        }
        let (aws_code, aws_text) = tokio::task::spawn_blocking(aws_run.clone())
            .await
            .expect("aws");
        let (cairn_code, report) = tokio::task::spawn_blocking(cairn_validate.clone())
            .await
            .expect("cairn");
        assert_eq!(cairn_code, 1, "Cairn passed {attack}: {report:#}");
        eprintln!("{attack}: aws cloudtrail validate-logs exits {aws_code}; cairn validate-logs exits {cairn_code}\n{aws_text}");
        table.push((attack, aws_code));
        put_back().await;
    }
    // What the AWS CLI does with each (documented in RELIABILITY.md).
    assert_eq!(
        table,
        vec![
            ("every digest deleted, a log file edited", 0),
            ("the final digest deleted", 0),
            ("a log file injected", 0),
            ("a log file deleted", 1),
            ("a log file truncated", 1),
            ("a gzip member appended to a log file", 1),
            ("a middle digest deleted", 1),
            ("two digests in a row deleted", 1),
            ("a digest's signature forged", 1),
            ("a digest moved", 1),
        ],
        "the AWS CLI's verdicts changed: update RELIABILITY.md"
    );
    // Restored, both pass again.
    let (cairn_code, report) = tokio::task::spawn_blocking(cairn_validate.clone())
        .await
        .expect("cairn");
    assert_eq!(cairn_code, 0, "{report:#}");
    server.stop().await;
}
