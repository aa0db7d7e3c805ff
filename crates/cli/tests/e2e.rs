//! End to end, in process: idempotent retries, restart persistence, integration events, and a
//! disk that fills up under the WAL.

mod support;

use cairn_wal::fs::{AppendFile, ReadAt, StdFs, WalFs};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use support::TestServer;

fn event(id: &str) -> String {
    let time = cairn_model::time::format_utc_seconds(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("now")
            .as_millis() as i64,
    );
    format!(
        r#"{{"eventVersion":"1.11","userIdentity":{{"type":"IAMUser","userName":"e2e"}},"eventTime":"{time}","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"us-east-1","eventID":"{id}"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_idempotent_and_history_survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path(), |_| {}).await;
    // One fixed record: `event` stamps the current second, and a retry must be the same bytes.
    let keep = event("keep-1");
    let (status, body) = server
        .post("/v1/events", "application/json", format!("[{keep}]"))
        .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    // A retry (same bytes) is a duplicate; other bytes under the same id are refused.
    let (_, body) = server
        .post("/v1/events", "application/json", format!("[{keep}]"))
        .await;
    assert_eq!(body["results"][0]["status"], "duplicate");
    server.wait_indexed().await;
    let (_, body) = server
        .post(
            "/v1/events",
            "application/json",
            format!("[{}]", keep.replace("StopLogging", "StartLogging")),
        )
        .await;
    assert_eq!(body["results"][0]["code"], "duplicate_event_id");
    let account = server.running.as_ref().expect("running").account_id.clone();
    // A second process on the same data directory is refused before it touches the WAL.
    let second = cairn_server::config::RawConfig {
        data_dir: Some(dir.path().to_path_buf()),
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    }
    .resolve()
    .expect("config");
    let refused = cairn_server::start(second, Arc::new(cairn_model::SystemClock))
        .await
        .err()
        .expect("locked");
    assert!(
        matches!(refused, cairn_server::StartError::Locked(_)),
        "{refused}"
    );
    server.stop().await;

    let server = TestServer::start(dir.path(), |_| {}).await;
    assert_eq!(
        server.running.as_ref().expect("running").account_id,
        account,
        "account id is kept"
    );
    let (_, body) = server
        .post("/v1/events", "application/json", format!("[{keep}]"))
        .await;
    assert_eq!(
        body["results"][0]["status"], "duplicate",
        "idempotency survives restart"
    );
    let (status, page) = server
        .get("/v1/event-history?lookup-attribute=EventName%3DStopLogging")
        .await;
    assert_eq!(status, 200);
    let events = page["Events"].as_array().expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["CloudTrailEvent"].as_str().expect("record"), {
        let sent = keep.clone();
        format!("{},\"recipientAccountId\":\"{account}\",\"eventCategory\":\"Management\",\"managementEvent\":true,\"readOnly\":false}}", &sent[..sent.len() - 1])
    });
    assert_eq!(events[0]["Username"], "e2e");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_events_are_searchable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        TestServer::start(dir.path(), |c| c.account_id = Some("210987654321".into())).await;
    let time = cairn_model::time::format_utc_seconds(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("now")
            .as_millis() as i64,
    );
    let data = format!(
        r#"{{"version":"1.0","userIdentity":{{"type":"CustomUser","principalId":"u-4711"}},"eventSource":"billing.acme.example","eventName":"ApproveInvoice","eventTime":"{time}","UID":"inv-1","recipientAccountId":"210987654321"}}"#
    );
    let body = serde_json::json!({"auditEvents": [{"id": "one", "eventData": data}]}).to_string();
    let (status, answer) = server
        .post(
            "/PutAuditEvents?channelArn=billing",
            "application/json",
            body,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let event_id = answer["successful"][0]["eventID"]
        .as_str()
        .expect("eventID")
        .to_owned();
    server.wait_indexed().await;
    let (_, page) = server
        .get("/v1/event-history?lookup-attribute=Username%3Du-4711")
        .await;
    assert_eq!(page["Events"][0]["EventId"], event_id.as_str());
    assert_eq!(page["Events"][0]["EventSource"], "billing.acme.example");
    let record: serde_json::Value = serde_json::from_str(
        page["Events"][0]["CloudTrailEvent"]
            .as_str()
            .expect("record"),
    )
    .expect("json");
    assert_eq!(record["eventCategory"], "ActivityAuditLog");
    assert_eq!(
        record["metadata"]["channelARN"],
        "arn:aws:cloudtrail:us-east-1:210987654321:channel/billing"
    );
    server.stop().await;
}

/// The real file system, except that appends fail with ENOSPC while `full` is set.
#[derive(Debug)]
struct FillableFs {
    full: Arc<AtomicBool>,
}

#[derive(Debug)]
struct FillableFile {
    inner: Box<dyn AppendFile>,
    full: Arc<AtomicBool>,
}

impl AppendFile for FillableFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            // Part of the write lands, then the disk is full.
            self.inner.append(&buf[..buf.len() / 2])?;
            return Err(io::Error::from_raw_os_error(28));
        }
        self.inner.append(buf)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
}

impl WalFs for FillableFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdFs.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdFs.list(dir)
    }
    fn open_append(&self, path: &Path, create_new: bool) -> io::Result<Box<dyn AppendFile>> {
        Ok(Box::new(FillableFile {
            inner: StdFs.open_append(path, create_new)?,
            full: self.full.clone(),
        }))
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadAt>> {
        StdFs.open_read(path)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        StdFs.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        StdFs.sync_dir(dir)
    }
    fn write_durable(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        StdFs.write_durable(path, bytes)
    }
    fn read_small(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        StdFs.read_small(path)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_harms_nothing_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = Arc::new(AtomicBool::new(false));
    let server = fillable_server(dir.path(), full.clone()).await;

    let (status, _) = server
        .post(
            "/v1/events",
            "application/json",
            format!("[{}]", event("before-1")),
        )
        .await;
    assert_eq!(status, 200);
    full.store(true, Ordering::SeqCst);
    let (status, body) = server
        .post(
            "/v1/events",
            "application/json",
            format!("[{}]", event("during-1")),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["__type"], "ServiceUnavailable");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("os error 28"),
        "{body}"
    );
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(server.metric("cairn_ingest_unavailable_total").await >= 1.0);

    full.store(false, Ordering::SeqCst);
    // The refused event was not acknowledged: its retry is accepted, not a duplicate.
    let (status, body) = server
        .post(
            "/v1/events",
            "application/json",
            format!("[{},{}]", event("during-1"), event("after-1")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2);
    let (status, _) = server.get("/readyz").await;
    assert_eq!(status, 200);
    server.wait_indexed().await;
    let (_, page) = server.get("/v1/event-history?max-results=50").await;
    let mut ids: Vec<&str> = page["Events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["EventId"].as_str().expect("id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["after-1", "before-1", "during-1"]);
    server.stop().await;

    // And the WAL reopens cleanly: the half-written group was cut back.
    let (_, report) = cairn_wal::Wal::open(
        &dir.path().join("wal"),
        Arc::new(StdFs),
        cairn_wal::WalConfig::default(),
        Arc::new(cairn_wal::NoopObserver),
    )
    .expect("reopen");
    assert_eq!(report.torn_bytes_cut, 0);
}

/// A server whose WAL disk fills while `full` is set.
async fn fillable_server(data_dir: &Path, full: Arc<AtomicBool>) -> TestServer {
    let config = cairn_server::config::RawConfig {
        data_dir: Some(data_dir.to_path_buf()),
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    }
    .resolve()
    .expect("config");
    let running = cairn_server::start_with_fs(
        config,
        Arc::new(cairn_model::SystemClock),
        Arc::new(FillableFs { full }),
    )
    .await
    .expect("start");
    TestServer {
        base: format!("http://{}", running.local_addr),
        running: Some(running),
        client: reqwest::Client::new(),
        creds: support::Creds::admin(data_dir),
    }
}

/// `cairn put-events` retries a request answered 503 until the disk has room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_events_retries_while_the_server_is_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = Arc::new(AtomicBool::new(false));
    let server = fillable_server(&dir.path().join("data"), full.clone()).await;
    full.store(true, Ordering::SeqCst);
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, format!("{}\n", event("retried-1"))).expect("write");
    let base = server.base.clone();
    let data_dir = dir.path().join("data");
    let command = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("put-events")
            .arg(&file)
            .env("CAIRN_ENDPOINT", base)
            .env("CAIRN_DATA_DIR", data_dir)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .output()
            .expect("run cairn put-events")
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    full.store(false, Ordering::SeqCst);
    let output = command.await.expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout} {stderr}");
    assert!(
        stderr.contains("server unavailable") && stderr.contains("retrying"),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("json summary");
    assert_eq!(
        (
            summary["Accepted"].as_u64(),
            summary["Duplicates"].as_u64(),
            summary["Rejected"].as_u64()
        ),
        (Some(1), Some(0), Some(0)),
        "{stdout}"
    );
    server.stop().await;
}

/// Everything in the data directory is the server's alone, and a start that cannot listen
/// writes nothing.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private_and_a_failed_bind_leaves_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    // An older version's data directory, readable by all.
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("mkdir");
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let server = TestServer::start(&data_dir, |_| {}).await;
    let (status, _) = server
        .post(
            "/v1/events",
            "application/json",
            format!("[{}]", event("private-1")),
        )
        .await;
    assert_eq!(status, 200);
    let trails = dir.path().join("trails");
    let (status, body) = server
        .post(
            "/v1/trails",
            "application/json",
            serde_json::json!({"Name": "private", "LocalDirectory": trails, "EnableLogFileValidation": true})
                .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    server.wait_indexed().await;
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&data_dir), 0o700);
    let mut checked = 0;
    let mut stack = vec![data_dir.clone()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).expect("read_dir") {
            let path = entry.expect("entry").path();
            let m = mode(&path);
            assert_eq!(m & 0o077, 0, "{} is {m:o}", path.display());
            if path.is_dir() {
                stack.push(path);
            }
            checked += 1;
        }
    }
    assert!(checked > 5, "wal, history, catalog, iam, ...: {checked}");
    // The port is taken: the start fails and creates no data directory, no credentials.
    let taken = server.running.as_ref().expect("running").local_addr;
    let fresh = dir.path().join("fresh");
    let raw = cairn_server::config::RawConfig {
        data_dir: Some(fresh.clone()),
        listen: Some(taken.to_string()),
        ..Default::default()
    };
    let config = raw.resolve().expect("config");
    let started = cairn_server::start(config, Arc::new(cairn_model::SystemClock)).await;
    assert!(started.is_err(), "bound a taken port");
    assert!(!fresh.exists(), "a failed start left {}", fresh.display());
    server.stop().await;
}
