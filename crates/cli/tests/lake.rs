//! The Lake end to end: events flow from ingestion through the WAL into event data stores
//! chosen by advanced selectors (Parquet files), `cairn query` and the real boto3 client run
//! StartQuery / DescribeQuery / GetQueryResults over them, `cairn import` loads a CloudTrail tree
//! and reports what it did not take, termination protection holds, and a restart neither loses
//! nor duplicates a stored event.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::{python_with, TestServer};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("now")
        .as_millis() as i64
}

/// Sample records that say their own category and id (the first of each id: Cairn, like
/// CloudTrail, keeps one event per eventID), re-timed to the hour before `base` (one second
/// apart), so that Cairn's own control-plane records (timed now) stay apart.
fn sample_events(base: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    let dir = support::samples_dir().join("_normalized");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("samples")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for path in names {
        let name = path.to_string_lossy().into_owned();
        if !name.ends_with(".ndjson") || name.contains("digests") {
            continue;
        }
        for line in std::fs::read_to_string(&path).expect("read").lines() {
            let Ok(mut r) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let ok = r["eventID"].is_string()
                && matches!(r["eventCategory"].as_str(), Some("Management" | "Data"))
                && r["eventSource"].is_string()
                && r["eventName"].is_string()
                && r["awsRegion"].is_string()
                && ids.insert(r["eventID"].to_string());
            if !ok {
                continue;
            }
            let t = base - 3_600_000 + out.len() as i64 * 1000;
            r["eventTime"] = json!(cairn_model::time::format_utc_seconds(t));
            out.push(r);
        }
    }
    out
}

fn cairn() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cairn"))
}

fn run_cairn(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(cairn())
        .args(args)
        .env("CAIRN_ENDPOINT", &server.base)
        .env("AWS_ACCESS_KEY_ID", &server.creds.id)
        .env("AWS_SECRET_ACCESS_KEY", &server.creds.secret)
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run cairn");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `cairn query --output json` rows.
fn json_rows(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json row"))
        .collect()
}

/// Per-eventSource counts, ordered as the queries order them.
fn by_source<'a>(records: impl Iterator<Item = &'a Value>) -> Vec<(String, u64)> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for r in records {
        *m.entry(r["eventSource"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

async fn count(server: &TestServer, sql: &str) -> u64 {
    let (ok, stdout, stderr) = {
        let sql = sql.to_owned();
        let args = ["query", "--output", "json", sql.as_str()];
        run_cairn(server, &args)
    };
    assert!(ok, "{sql}: {stderr}");
    let rows = json_rows(&stdout);
    rows[0]["n"].as_str().expect("n").parse().expect("number")
}

/// Waits until `sql` (a `count(*) AS n` query) answers `want`.
async fn wait_count(server: &TestServer, sql: &str, want: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let n = count(server, sql).await;
        if n == want {
            return;
        }
        assert!(n < want, "{sql}: {n} > {want}");
        assert!(
            std::time::Instant::now() < deadline,
            "{sql}: still {n}, want {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// The records as a tree keyed as CloudTrail keys files: delivered five minutes after the newest.
fn write_tree(dir: &Path, records: &[Value]) {
    let newest = records
        .iter()
        .filter_map(|r| r["eventTime"].as_str())
        .filter_map(|t| cairn_model::time::parse_utc(t).ok())
        .max()
        .expect("times");
    let stamp = cairn_model::time::format_utc_seconds(newest + 300_000);
    let minute = format!(
        "{}{}{}T{}{}Z",
        &stamp[0..4],
        &stamp[5..7],
        &stamp[8..10],
        &stamp[11..13],
        &stamp[14..16]
    );
    let day = dir.join(format!(
        "AWSLogs/111122223333/CloudTrail/us-east-1/{}",
        stamp[..10].replace('-', "/")
    ));
    std::fs::create_dir_all(&day).expect("mkdir");
    for (i, chunk) in records.chunks(7).enumerate() {
        let lines: Vec<String> = chunk.iter().map(Value::to_string).collect();
        std::fs::write(
            day.join(format!(
                "111122223333_CloudTrail_us-east-1_{minute}_{i:016}.json.gz"
            )),
            cairn_logfile::body::encode(&lines),
        )
        .expect("write");
    }
    // An S3 event notification that landed in the bucket, a damaged file, a digest.
    let notification = json!({"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-30T23:50:00.000Z", "eventName": "ObjectCreated:Put"});
    std::fs::write(
        day.join(format!(
            "111122223333_CloudTrail_us-east-1_{minute}_NOTIFICATION0000.json.gz"
        )),
        cairn_logfile::body::encode(&[notification.to_string()]),
    )
    .expect("write");
    std::fs::write(
        day.join(format!(
            "111122223333_CloudTrail_us-east-1_{minute}_DAMAGED000000000.json.gz"
        )),
        b"\x1f\x8b not really gzip",
    )
    .expect("write");
    let digests = dir.join("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/30");
    std::fs::create_dir_all(&digests).expect("mkdir");
    std::fs::write(
        digests
            .join("111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20261130T235959Z.json.gz"),
        cairn_logfile::body::encode(&["{}".to_owned()]),
    )
    .expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_into_stores_and_answer_queries() {
    let python = python_with(&["boto3"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let tweak = |c: &mut cairn_server::config::RawConfig| {
        c.account_id = Some("111122223333".into());
        c.lake_flush_seconds = Some(1);
        c.lake_compaction_seconds = Some(1);
    };
    let server = TestServer::start(&data, tweak).await;
    let json_ct = "application/json";
    let create = |body: Value| {
        let server = &server;
        async move {
            server
                .post("/v1/event-data-stores", json_ct, body.to_string())
                .await
        }
    };
    let (status, audit) = create(json!({"Name": "audit", "RetentionPeriod": 3653})).await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["TerminationProtectionEnabled"], true);
    assert_eq!(
        audit["AdvancedEventSelectors"][0]["FieldSelectors"][0]["Equals"][0],
        "Management"
    );
    let (status, s3data) = create(
        json!({"Name": "s3data", "TerminationProtectionEnabled": false,
        "AdvancedEventSelectors": [{"Name": "objects", "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]},
            {"Field": "resources.type", "Equals": ["AWS::S3::Object"]}]}]}),
    )
    .await;
    assert_eq!(status, 200, "{s3data}");
    // Bad input gets a precise 4xx.
    let (status, err) = create(json!({"Name": "audit"})).await;
    assert_eq!(
        (
            status,
            err["__type"].as_str().or(err["code"].as_str()).is_some()
        ),
        (409, true),
        "{err}"
    );
    let (status, err) = create(json!({"Name": "short", "RetentionPeriod": 6})).await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = create(json!({"Name": "x"})).await;
    assert_eq!(status, 400, "{err}");

    // Ingest the samples.
    let base = now_ms();
    let events = sample_events(base);
    assert!(events.len() > 100, "{}", events.len());
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let (status, put) = server
        .post("/v1/events", "application/x-ndjson", body)
        .await;
    assert_eq!(status, 200, "{put}");
    // Ingestion refuses some sample records (wrong member types, bad account ids); the stores
    // hold what it accepted.
    let accepted: Vec<bool> = put["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"] == "accepted")
        .collect();
    assert_eq!(accepted.len(), events.len());
    let events: Vec<Value> = events
        .into_iter()
        .zip(accepted)
        .filter_map(|(e, ok)| ok.then_some(e))
        .collect();
    let since = cairn_model::time::format_utc_seconds(base - 3_600_000);
    let until = cairn_model::time::format_utc_seconds(base - 60_000);
    let window = format!("eventTime >= TIMESTAMP '{since}' AND eventTime < TIMESTAMP '{until}'");
    let management: Vec<&Value> = events
        .iter()
        .filter(|e| e["eventCategory"] == "Management")
        .collect();
    let objects = events
        .iter()
        .filter(|e| {
            e["eventCategory"] == "Data"
                && e["resources"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|r| r["type"] == "AWS::S3::Object"))
        })
        .count() as u64;
    assert!(objects > 0);
    wait_count(
        &server,
        &format!("SELECT count(*) AS n FROM audit WHERE {window}"),
        management.len() as u64,
    )
    .await;
    wait_count(&server, "SELECT count(*) AS n FROM s3data", objects).await;

    // `cairn query`, grouped, against counts computed from the records.
    let sql = format!("SELECT eventSource, count(*) AS n FROM audit WHERE {window} GROUP BY eventSource ORDER BY n DESC, eventSource");
    let (ok, stdout, stderr) = run_cairn(&server, &["query", "--output", "json", &sql]);
    assert!(ok, "{stderr}");
    let got: Vec<(String, u64)> = json_rows(&stdout)
        .iter()
        .map(|r| {
            (
                r["eventSource"].as_str().expect("source").to_owned(),
                r["n"].as_str().expect("n").parse().expect("number"),
            )
        })
        .collect();
    let expected = by_source(management.iter().copied());
    assert_eq!(got, expected);
    assert!(stderr.contains("events scanned"), "{stderr}");
    // Cairn's own calls are in the store too (CreateEventDataStore, recorded as management).
    assert!(
        count(
            &server,
            "SELECT count(*) AS n FROM audit WHERE eventName = 'CreateEventDataStore'"
        )
        .await
            >= 2
    );
    // Who ingested each event (out of band of the record): the samples, the administrator's
    // signed ingest; the store's creation, Cairn itself.
    let sql = format!(
        "SELECT metadata.ingestedByType AS t, metadata.ingestedByArn AS arn, count(*) AS n FROM audit \
         WHERE {window} GROUP BY metadata.ingestedByType, metadata.ingestedByArn"
    );
    let (ok, stdout, stderr) = run_cairn(&server, &["query", "--output", "json", &sql]);
    assert!(ok, "{stderr}");
    let rows = json_rows(&stdout);
    assert_eq!(rows.len(), 1, "{stdout}");
    assert_eq!(rows[0]["t"], "Principal", "{stdout}");
    assert!(
        rows[0]["arn"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:iam::111122223333:user/")),
        "{stdout}"
    );
    assert_eq!(rows[0]["n"], management.len().to_string(), "{stdout}");
    let (ok, stdout, stderr) = run_cairn(
        &server,
        &[
            "query",
            "--output",
            "json",
            "SELECT DISTINCT metadata.ingestedByType AS t FROM audit WHERE eventName = 'CreateEventDataStore'",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(json_rows(&stdout).len(), 1, "{stdout}");
    assert_eq!(json_rows(&stdout)[0]["t"], "Cairn", "{stdout}");
    // Table and CSV output.
    let (ok, stdout, _) = run_cairn(
        &server,
        &[
            "query",
            "--output",
            "csv",
            "SELECT count(*) AS n FROM s3data",
        ],
    );
    assert!(ok);
    assert_eq!(stdout, format!("n\n{objects}\n"));
    let (ok, stdout, _) = run_cairn(&server, &["query", "SELECT count(*) AS n FROM s3data"]);
    assert!(ok && stdout.contains(&format!("| {objects}")), "{stdout}");
    // A bad query fails with the reason.
    let (ok, _, stderr) = run_cairn(&server, &["query", "SELECT nope FROM audit"]);
    assert!(
        !ok && stderr.contains("InvalidQueryStatementException"),
        "{stderr}"
    );

    // The real boto3 client, as a reader.
    let json_ct = "application/json";
    server
        .post(
            "/v1/iam/users",
            json_ct,
            json!({"UserName": "analyst"}).to_string(),
        )
        .await;
    server
        .post(
            "/v1/iam/users/analyst/attached-policies",
            json_ct,
            json!({"PolicyArn": "arn:aws:iam::aws:policy/CairnReader"}).to_string(),
        )
        .await;
    let (_, key) = server
        .post("/v1/iam/users/analyst/access-keys", json_ct, "")
        .await;
    let rid = key["AccessKey"]["AccessKeyId"]
        .as_str()
        .expect("id")
        .to_owned();
    let rsecret = key["AccessKey"]["SecretAccessKey"]
        .as_str()
        .expect("secret")
        .to_owned();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/lake_api.py");
    let (endpoint, creds) = (server.base.clone(), server.creds.clone());
    let (since_arg, until_arg) = (
        since.replace('T', " ").replace('Z', ""),
        until.replace('T', " ").replace('Z', ""),
    );
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args([
                &endpoint,
                &creds.id,
                &creds.secret,
                &rid,
                &rsecret,
                &since_arg,
                &until_arg,
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
    assert_eq!(out["create"]["Name"], "boto-store");
    assert!(out["create"]["Arn"]
        .as_str()
        .expect("arn")
        .starts_with("arn:aws:cloudtrail:us-east-1:111122223333:eventdatastore/"));
    assert_eq!(out["list"], json!(["audit", "boto-store", "s3data"]));
    assert_eq!(out["get_by_arn"], "boto-store");
    assert_eq!(out["update_retention"], 90);
    assert_eq!(out["bad_retention"]["code"], "InvalidParameterException");
    assert_eq!(
        out["missing_store"]["code"],
        "EventDataStoreNotFoundException"
    );
    assert_eq!(out["describe"]["QueryStatus"], "FINISHED");
    let scanned = out["describe"]["EventsScanned"].as_u64().expect("scanned");
    let matched = out["describe"]["EventsMatched"].as_u64().expect("matched");
    assert_eq!(matched, management.len() as u64);
    assert!(scanned >= matched, "{scanned} < {matched}");
    assert!(out["describe"]["BytesScanned"].as_u64().expect("bytes") > 0);
    assert_eq!(out["describe"]["HasTime"], true);
    let boto_rows: Vec<(String, u64)> = out["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            (
                row[0]["eventSource"].as_str().expect("source").to_owned(),
                row[1]["n"].as_str().expect("n").parse().expect("number"),
            )
        })
        .collect();
    assert_eq!(boto_rows, expected);
    assert_eq!(
        out["pages"].as_u64(),
        Some(expected.len().div_ceil(2) as u64)
    );
    for case in ["bad_sql", "unknown_table", "ddl"] {
        assert_eq!(
            out[case]["code"], "InvalidQueryStatementException",
            "{case}: {out}"
        );
        assert_eq!(out[case]["status"], 400, "{case}");
    }
    assert_eq!(out["unknown_query"]["code"], "QueryIdNotFoundException");
    assert_eq!(out["reader_cannot_create"]["code"], "AccessDeniedException");
    assert_eq!(
        out["protected"]["code"],
        "EventDataStoreTerminationProtectedException"
    );
    assert_eq!(out["after_delete"], json!(["audit", "s3data"]));

    // Import a tree into a store of its own: what is not taken is counted by reason.
    let (status, created) = create(json!({"Name": "imported", "RetentionPeriod": 3653})).await;
    assert_eq!(status, 200);
    let imported_dir = data.join("lake").join(
        created["EventDataStoreArn"]
            .as_str()
            .and_then(|arn| arn.rsplit('/').next())
            .expect("arn"),
    );
    let tree = dir.path().join("tree");
    // The samples, and one management event from before the store's retention (ten years).
    let mut in_tree = events.clone();
    in_tree.push(
        json!({"eventVersion": "1.05", "userIdentity": {"type": "Root"},
        "eventTime": "2010-01-04T10:00:00Z", "eventSource": "iam.amazonaws.com",
        "eventName": "CreateUser", "awsRegion": "us-east-1", "eventID": "older-than-retention",
        "eventType": "AwsApiCall", "recipientAccountId": "111122223333"}),
    );
    write_tree(&tree, &in_tree);
    let (ok, stdout, stderr) = run_cairn(
        &server,
        &[
            "import",
            tree.to_str().expect("path"),
            "--store",
            "imported",
            "--json",
            "--batch-bytes",
            "4000",
        ],
    );
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("report");
    // The store takes what its selectors choose (every management event, the default), as the
    // WAL feeder does, and nothing it could never show; the rest is counted by reason.
    let imported = report["eventsImported"].as_u64().expect("imported");
    let not_selected = report["notSelectedSkipped"].as_u64().expect("not selected");
    // Counted in the samples' hour: Cairn's own records of the import and of these queries
    // (timed now, management events) enter the store too, a second later.
    let imported_sql = format!("SELECT count(*) AS n FROM imported WHERE {window}");
    assert!(not_selected > 0, "the samples hold data events: {report}");
    assert_eq!(imported + not_selected, events.len() as u64, "{report}");
    assert_eq!(report["olderThanRetentionSkipped"], 1, "{report}");
    assert_eq!(report["digestFilesSkipped"], 1);
    assert_eq!(report["damagedFiles"].as_array().map(Vec::len), Some(1));
    assert_eq!(report["notificationRecordsSkipped"], 1);
    assert_eq!(report["malformedRecordsSkipped"], 0);
    assert_eq!(count(&server, &imported_sql).await, imported);
    assert_eq!(
        count(
            &server,
            "SELECT count(*) AS n FROM imported WHERE eventCategory = 'Data' OR eventID = 'older-than-retention'"
        )
        .await,
        0
    );
    // Importing the same tree again adds nothing: every event is already there.
    let (ok, stdout, stderr) = run_cairn(
        &server,
        &[
            "import",
            tree.to_str().expect("path"),
            "--store",
            "imported",
            "--output",
            "json",
            "--batch-bytes",
            "30000",
        ],
    );
    assert!(ok, "{stderr}");
    let again: Value = serde_json::from_str(&stdout).expect("report");
    assert_eq!(again["eventsImported"], 0, "{again}");
    assert_eq!(again["alreadyImportedSkipped"], imported, "{again}");
    assert_eq!(count(&server, &imported_sql).await, imported);
    // Compaction (each second here) merges the import's small files, one per request batch
    // and day: eight or more of a size in a day still receiving events become one. Queries
    // answer the same all along.
    let files_per_day = || -> BTreeMap<String, usize> {
        std::fs::read_dir(&imported_dir)
            .expect("store dir")
            .flatten()
            .map(|day| {
                let parquet = std::fs::read_dir(day.path())
                    .expect("day")
                    .flatten()
                    .filter(|f| f.file_name().to_string_lossy().ends_with(".parquet"))
                    .count();
                (day.file_name().to_string_lossy().into_owned(), parquet)
            })
            .collect()
    };
    let written = report["parquetFilesWritten"]
        .as_u64()
        .expect("files written") as usize;
    assert!(written >= 16, "{report}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let per_day = files_per_day();
        if per_day.values().all(|&n| n < 8) {
            assert!(per_day.values().sum::<usize>() < written, "{per_day:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not compacted: {per_day:?}"
        );
        assert_eq!(count(&server, &imported_sql).await, imported);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(count(&server, &imported_sql).await, imported);
    // A batch the size the import client sends by default (4 MiB) is taken (axum's own 2 MB
    // default refused every one of them).
    let now = cairn_model::time::format_utc_seconds(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("now")
            .as_millis() as i64,
    );
    let big: Vec<String> = (0..3500)
        .map(|i| {
            format!(
                r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","userName":"bulk"}},"eventTime":"{now}","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":"us-east-1","eventID":"bulk-{i:05}","eventType":"AwsApiCall","managementEvent":true,"eventCategory":"Management","requestParameters":{{"padding":"{}"}}}}"#,
                "p".repeat(1000)
            )
        })
        .collect();
    let body = format!(r#"{{"Records":[{}]}}"#, big.join(","));
    assert!(body.len() > 3 << 20, "{}", body.len());
    let (status, answer) = server
        .post(
            "/v1/event-data-stores/imported/import",
            "application/json",
            body,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["EventsImported"], 3500, "{answer}");
    // Imported events were ingested by the principal that imported them.
    let (ok, stdout, stderr) = run_cairn(
        &server,
        &[
            "query",
            "--output",
            "json",
            "SELECT metadata.ingestedByType AS t, count(*) AS n FROM imported WHERE eventID LIKE 'bulk-%' GROUP BY metadata.ingestedByType",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        json_rows(&stdout),
        [json!({"t": "Principal", "n": "3500"})],
        "{stdout}"
    );
    // The same events in raw mode over the tree and in the store: the same answer.
    let raw_sql = format!("SELECT eventSource, count(*) AS n FROM events WHERE eventCategory = 'Management' AND {window} GROUP BY eventSource ORDER BY n DESC, eventSource");
    let (ok, raw_out, stderr) = run_cairn(
        &server,
        &[
            "query",
            "--source",
            tree.to_str().expect("path"),
            "--output",
            "json",
            &raw_sql,
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("1 damaged files"), "{stderr}");
    let (ok, store_out, _) = run_cairn(
        &server,
        &[
            "query",
            "--output",
            "json",
            &raw_sql.replace("FROM events", "FROM imported"),
        ],
    );
    assert!(ok);
    assert_eq!(json_rows(&raw_out), json_rows(&store_out));

    // A restart: the stores, their files and cursors survive; nothing is stored twice.
    let before = count(
        &server,
        &format!("SELECT count(*) AS n FROM audit WHERE {window}"),
    )
    .await;
    server.stop().await;
    let server = TestServer::start(&data, tweak).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        count(
            &server,
            &format!("SELECT count(*) AS n FROM audit WHERE {window}")
        )
        .await,
        before
    );
    assert_eq!(
        count(&server, "SELECT count(*) AS n FROM s3data").await,
        objects
    );
    // Termination protection, then deletion.
    let response = server
        .send(
            server
                .client
                .delete(format!("{}/v1/event-data-stores/audit", server.base)),
        )
        .await;
    assert_eq!(response.status().as_u16(), 409);
    let err: Value = response.json().await.expect("json");
    assert!(
        err.to_string()
            .contains("EventDataStoreTerminationProtectedException"),
        "{err}"
    );
    let (ok, _, stderr) = run_cairn(
        &server,
        &[
            "stores",
            "update",
            "--store",
            "audit",
            "--termination-protection",
            "false",
        ],
    );
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run_cairn(&server, &["stores", "delete", "--store", "audit"]);
    assert!(ok, "{stderr}");
    let (ok, stdout, _) = run_cairn(&server, &["stores", "list"]);
    assert!(ok && !stdout.contains("\"audit\""), "{stdout}");
    server.stop().await;
}

/// Raw mode and import read a tree on a real S3-compatible server (moto) as they read a
/// directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_mode_and_import_read_an_s3_tree() {
    use object_store::ObjectStoreExt;
    let moto = support::Moto::start();
    moto.create_bucket("trail-copy").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(&dir.path().join("data"), |c| {
        c.account_id = Some("111122223333".into());
    })
    .await;
    let events = sample_events(now_ms());
    let tree = dir.path().join("tree");
    write_tree(&tree, &events);
    let bucket = cairn_store::s3(&moto.s3_config(), "trail-copy").expect("bucket");
    let mut stack = vec![tree.clone()];
    let mut uploaded = 0;
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let key = format!(
                "copy/{}",
                path.strip_prefix(&tree).expect("inside").display()
            );
            bucket
                .put(
                    &object_store::path::Path::from(key),
                    std::fs::read(&path).expect("read").into(),
                )
                .await
                .expect("upload");
            uploaded += 1;
        }
    }
    assert!(uploaded > 3);
    let with_s3 = |args: &[&str]| {
        let output = std::process::Command::new(cairn())
            .args(args)
            .env("CAIRN_ENDPOINT", &server.base)
            // moto accepts any credentials; Cairn needs its own.
            .env("AWS_ACCESS_KEY_ID", &server.creds.id)
            .env("AWS_SECRET_ACCESS_KEY", &server.creds.secret)
            .env("AWS_ENDPOINT_URL", &moto.endpoint)
            .env("AWS_REGION", "us-east-1")
            .output()
            .expect("run cairn");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let sql = "SELECT eventSource, count(*) AS n FROM events GROUP BY eventSource ORDER BY n DESC, eventSource";
    let (ok, from_s3, stderr) = with_s3(&[
        "query",
        "--source",
        "s3://trail-copy/copy",
        "--output",
        "json",
        sql,
    ]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("1 damaged files"), "{stderr}");
    let (ok, from_dir, stderr) = with_s3(&[
        "query",
        "--source",
        tree.to_str().expect("path"),
        "--output",
        "json",
        sql,
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(json_rows(&from_s3), json_rows(&from_dir));
    let total: u64 = json_rows(&from_s3)
        .iter()
        .map(|r| r["n"].as_str().expect("n").parse::<u64>().expect("number"))
        .sum();
    assert_eq!(total, events.len() as u64);

    let (status, _) = server
        .post(
            "/v1/event-data-stores",
            "application/json",
            json!({"Name": "from-s3", "RetentionPeriod": 3653}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let (ok, stdout, stderr) = with_s3(&[
        "import",
        "s3://trail-copy/copy",
        "--store",
        "from-s3",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("report");
    let imported = report["eventsImported"].as_u64().expect("imported");
    assert_eq!(
        imported + report["notSelectedSkipped"].as_u64().expect("not selected"),
        events.len() as u64,
        "{report}"
    );
    assert_eq!(report["digestFilesSkipped"], 1);
    assert_eq!(report["notificationRecordsSkipped"], 1);
    assert_eq!(
        count(&server, "SELECT count(*) AS n FROM \"from-s3\"").await,
        imported
    );
    server.stop().await;
}

/// With `lake_bucket`, a store's Parquet files live in a real S3-compatible server (moto):
/// queries read them there, nothing lands in the data directory, and events acknowledged while
/// the server is unreachable reach the store once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_in_a_bucket_answers_and_survives_an_outage() {
    let moto = support::Moto::start();
    moto.create_bucket("lake-data").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let s3 = moto.s3_config();
    let with_bucket = |c: &mut cairn_server::config::RawConfig| {
        c.account_id = Some("111122223333".into());
        c.lake_flush_seconds = Some(1);
        c.lake_compaction_seconds = Some(1);
        c.s3 = Some(s3.clone());
        c.lake_bucket = Some("lake-data".into());
    };
    let server = TestServer::start(&data, with_bucket).await;
    let (status, store) = server
        .post(
            "/v1/event-data-stores",
            "application/json",
            json!({"Name": "remote", "TerminationProtectionEnabled": false}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{store}");
    let id = store["EventDataStoreArn"]
        .as_str()
        .and_then(|a| a.rsplit('/').next())
        .expect("id")
        .to_owned();

    let base = now_ms();
    let events = sample_events(base);
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let (status, put) = server
        .post("/v1/events", "application/x-ndjson", body)
        .await;
    assert_eq!(status, 200, "{put}");
    let management = events
        .iter()
        .zip(put["results"].as_array().expect("results"))
        .filter(|(e, r)| r["status"] == "accepted" && e["eventCategory"] == "Management")
        .count() as u64;
    assert!(management > 50, "{management}");
    let since = cairn_model::time::format_utc_seconds(base - 3_600_000);
    let until = cairn_model::time::format_utc_seconds(base - 60_000);
    let window = format!("eventTime >= TIMESTAMP '{since}' AND eventTime < TIMESTAMP '{until}'");
    wait_count(
        &server,
        &format!("SELECT count(*) AS n FROM remote WHERE {window}"),
        management,
    )
    .await;
    let bucket = cairn_store::s3(&moto.s3_config(), "lake-data").expect("bucket");
    let keys = cairn_store::list(bucket.as_ref(), "").await.expect("list");
    assert!(!keys.is_empty());
    for key in &keys {
        let rest = key
            .strip_prefix(&format!("cairn-lake/{id}/date="))
            .unwrap_or_else(|| panic!("{key}"));
        assert!(
            rest.contains("/wal-") && rest.ends_with(".parquet"),
            "{key}"
        );
    }
    assert!(!data.join("lake").join(&id).exists());

    // Outage: events are still acknowledged (they wait in the WAL), queries say what failed.
    let port = moto.port();
    moto.stop();
    let during: Vec<Value> = (0..3)
        .map(|i| {
            json!({"eventVersion": "1.11", "userIdentity": {"type": "IAMUser"},
                "eventTime": cairn_model::time::format_utc_seconds(base - 30_000),
                "eventSource": "ec2.amazonaws.com", "eventName": "DuringOutage",
                "awsRegion": "us-east-1", "eventID": format!("during-{i}")})
        })
        .collect();
    let (status, put) = server
        .post(
            "/v1/events",
            "application/json",
            Value::from(during).to_string(),
        )
        .await;
    assert_eq!((status, put["accepted"].as_u64()), (200, Some(3)), "{put}");
    let (ok, _, stderr) = run_cairn(&server, &["query", "SELECT count(*) AS n FROM remote"]);
    assert!(!ok);
    assert!(
        stderr.contains("lake-data") || stderr.contains("127.0.0.1"),
        "{stderr}"
    );

    // The server returns (empty: moto keeps state in memory); the feeder catches up by itself.
    let moto = support::Moto::start_on(port);
    moto.create_bucket("lake-data").await;
    wait_count(
        &server,
        "SELECT count(*) AS n FROM remote WHERE eventName = 'DuringOutage'",
        3,
    )
    .await;

    // Compaction in the bucket: an import's small files (one per request batch and day) merge
    // there, and queries answer the same all along.
    // (Counted in the samples' hour: Cairn's own records of the import and the queries, timed
    // now, enter the store too.)
    let in_window = format!("SELECT count(*) AS n FROM remote WHERE {window}");
    let total = count(&server, &in_window).await;
    let tree = dir.path().join("tree");
    write_tree(&tree, &events);
    let (ok, stdout, stderr) = run_cairn(
        &server,
        &[
            "import",
            tree.to_str().expect("path"),
            "--store",
            "remote",
            "--output",
            "json",
            "--batch-bytes",
            "4000",
        ],
    );
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("report");
    let total = total + report["eventsImported"].as_u64().expect("imported");
    let written = report["parquetFilesWritten"].as_u64().expect("written") as usize;
    assert!(written >= 16, "{report}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        assert_eq!(count(&server, &in_window).await, total);
        let keys = cairn_store::list(bucket.as_ref(), "").await.expect("list");
        let mut per_day: BTreeMap<String, usize> = BTreeMap::new();
        for key in &keys {
            let day = key.split('/').nth(2).unwrap_or_default().to_owned();
            *per_day.entry(day).or_default() += 1;
        }
        if per_day.values().all(|&n| n < 8) && keys.iter().any(|k| k.contains("/compact-")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not compacted: {per_day:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // A server started without the bucket says where the store's files are, and still answers
    // queries that do not name the store; with the bucket back, the store is whole.
    server.stop().await;
    let server = TestServer::start(&data, |c| {
        c.account_id = Some("111122223333".into());
    })
    .await;
    let (ok, _, stderr) = run_cairn(&server, &["query", "SELECT count(*) AS n FROM remote"]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("s3://lake-data/cairn-lake/{id}"))
            && stderr.contains("lake_bucket"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = run_cairn(&server, &["query", "--output", "json", "SELECT 7 AS n"]);
    assert!(ok, "{stderr}");
    assert_eq!(json_rows(&stdout), [json!({"n": "7"})]);
    server.stop().await;
    let server = TestServer::start(&data, with_bucket).await;
    assert_eq!(
        count(
            &server,
            "SELECT count(*) AS n FROM remote WHERE eventName = 'DuringOutage'"
        )
        .await,
        3
    );

    // Deleting the store deletes its files in the bucket.
    let response = server
        .send(
            server
                .client
                .delete(format!("{}/v1/event-data-stores/remote", server.base)),
        )
        .await;
    let status = response.status().as_u16();
    assert_eq!(status, 200);
    let keys = cairn_store::list(bucket.as_ref(), "").await.expect("list");
    assert_eq!(keys, Vec::<String>::new());
    server.stop().await;
}

#[test]
fn bench_scan_measures_a_tree_of_the_sample_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = sample_events(now_ms());
    write_tree(dir.path(), &records);
    let out = std::process::Command::new(cairn())
        .args(["bench", "scan", "--files", "1000", "--runs", "1", "--tree"])
        .arg(dir.path())
        .output()
        .expect("run cairn bench scan");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every record met by each scan as serde_json counts them (the notification too, which
    // the scans leave out); the damaged file left out; the digest not a log file.
    let files = records.len().div_ceil(7) + 1;
    let counted = records.len() + 1;
    assert!(
        stdout.starts_with(&format!(
            "{files} log files (1 more left out: damaged or not log files)"
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&format!(" {counted} records;")), "{stdout}");
    for work in [
        "inflate (libdeflate",
        "check with serde_json",
        "Cairn scan, every column",
        "Cairn scan, userIdentity.arn + sourceIPAddress",
        "Cairn scan, no column (count(*))",
    ] {
        assert!(stdout.contains(work), "{work}: {stdout}");
    }
    // Nothing to measure is an error, not an empty table.
    let empty = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(cairn())
        .args(["bench", "scan", "--tree"])
        .arg(empty.path())
        .output()
        .expect("run cairn bench scan");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no log files under"));
}

/// `cairn bench lake` builds its store the way users do — `cairn serve`, a store created
/// through the API, `cairn import` of the busy tree, the server's own compaction — and checks
/// each store answer against DuckDB's on the same files and raw mode's on the tree.
#[test]
fn bench_lake_builds_its_store_by_import_and_agrees_with_duckdb_and_raw_mode() {
    let python = python_with(&["duckdb"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(cairn())
        .args(["bench", "lake", "--dir"])
        .arg(dir.path())
        .args(["--events", "20000", "--small-events", "2000", "--runs", "1"])
        .arg("--python")
        .arg(&python)
        .args(["--server-config", "lake_compaction_seconds = 1"])
        .env("CAIRN_SAMPLES", support::samples_dir().join("_normalized"))
        .output()
        .expect("cairn bench lake");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("WARNING"), "{stdout}");
    assert!(stdout.contains("store built by `cairn import`"), "{stdout}");
    let imported: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("imported.json")).expect("imported.json"),
    )
    .expect("json");
    // Every generated event is in the store (its selectors take what the generator makes).
    assert_eq!(imported["eventsImported"], 20000, "{imported}");
    assert_eq!(imported["notSelectedSkipped"], 0, "{imported}");
    // The import wrote a file per request batch and day; compaction left one per closed day.
    let mut files = 0;
    for store in std::fs::read_dir(dir.path().join("cairn-data/lake")).expect("lake") {
        let store = store.expect("entry").path();
        if !store.is_dir() || store.file_name().is_some_and(|n| n == ".compacting") {
            continue;
        }
        for day in std::fs::read_dir(&store).expect("store").flatten() {
            let parquet = std::fs::read_dir(day.path())
                .expect("day")
                .flatten()
                .filter(|f| f.file_name().to_string_lossy().ends_with(".parquet"))
                .count();
            assert_eq!(parquet, 1, "{}", day.path().display());
            files += 1;
        }
    }
    let written = imported["parquetFilesWritten"].as_u64().expect("written") as usize;
    assert!(
        files < written,
        "{files} files after compaction, {written} written"
    );
}
