//! Shared helpers of the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The sample corpus (a copy of the shared one, see `testdata/cloudtrail-samples/README.md`).
pub fn samples_dir() -> PathBuf {
    repo_root().join("testdata/cloudtrail-samples")
}

/// An access key and its secret.
#[derive(Debug, Clone)]
pub struct Creds {
    pub id: String,
    pub secret: String,
}

impl Creds {
    /// The administrator credential a server wrote into its data directory at first start.
    pub fn admin(data_dir: &Path) -> Self {
        let text = std::fs::read_to_string(data_dir.join("admin-credentials"))
            .expect("admin-credentials written at first start");
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().trim_start_matches('=').trim().to_owned())
                .expect("credential line")
        };
        Self {
            id: value("aws_access_key_id"),
            secret: value("aws_secret_access_key"),
        }
    }
}

/// Signs a request with SigV4 (service `cloudtrail`, or `cloudtrail-data` for
/// `/PutAuditEvents`; region us-east-1) and sends it.
pub async fn send(builder: reqwest::RequestBuilder, creds: &Creds) -> reqwest::Response {
    let (client, request) = builder.build_split();
    let mut request = request.expect("request");
    sign(&mut request, creds, "us-east-1");
    client.execute(request).await.expect("request")
}

/// [`send`], returning transport errors (a server being killed) instead of panicking.
pub async fn try_send(
    builder: reqwest::RequestBuilder,
    creds: &Creds,
) -> Result<reqwest::Response, reqwest::Error> {
    let (client, request) = builder.build_split();
    let mut request = request?;
    sign(&mut request, creds, "us-east-1");
    client.execute(request).await
}

/// A GET of `url` signed `offset_ms` away from now; (status, `__type`).
pub async fn sign_at(server: &TestServer, url: &str, offset_ms: i64) -> (u16, String) {
    let mut request = server.client.get(url).build().expect("request");
    sign_with_time(&mut request, &server.creds, "us-east-1", offset_ms);
    let response = server.client.execute(request).await.expect("send");
    let status = response.status().as_u16();
    let body: serde_json::Value =
        serde_json::from_str(&response.text().await.unwrap_or_default()).unwrap_or_default();
    (status, body["__type"].as_str().unwrap_or("").to_owned())
}

/// Adds `host`, `x-amz-date` and `authorization` to `request`.
pub fn sign(request: &mut reqwest::Request, creds: &Creds, region: &str) {
    sign_with_time(request, creds, region, 0);
}

fn sign_with_time(request: &mut reqwest::Request, creds: &Creds, region: &str, offset_ms: i64) {
    let service = if request.url().path() == "/PutAuditEvents" {
        "cloudtrail-data"
    } else {
        "cloudtrail"
    };
    sign_as(request, creds, region, offset_ms, service);
}

/// [`sign`] with the credential scoped to `service`.
pub fn sign_as(
    request: &mut reqwest::Request,
    creds: &Creds,
    region: &str,
    offset_ms: i64,
    service: &str,
) {
    let url = request.url().clone();
    let host = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port_or_known_default().expect("port")
    );
    let body = request
        .body()
        .and_then(|b| b.as_bytes())
        .unwrap_or_default()
        .to_vec();
    let mut headers: Vec<(String, String)> = vec![("host".into(), host.clone())];
    for (name, value) in request.headers() {
        headers.push((
            name.as_str().to_owned(),
            value.to_str().expect("ascii").to_owned(),
        ));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("now")
        .as_millis() as i64
        + offset_ms;
    let hash = cairn_sigv4::sha256_hex(&body);
    let (date, authorization) = cairn_sigv4::sign(
        &cairn_sigv4::Request {
            method: request.method().as_str(),
            path: url.path(),
            query: url.query().unwrap_or(""),
            headers: &headers,
            body_sha256: &hash,
        },
        &cairn_sigv4::Credentials {
            access_key_id: &creds.id,
            secret_access_key: &creds.secret,
            region,
            service,
        },
        now,
    );
    let h = request.headers_mut();
    h.insert("host", host.parse().expect("host"));
    h.insert("x-amz-date", date.parse().expect("date"));
    h.insert("authorization", authorization.parse().expect("auth"));
}

/// A server running in this process on an ephemeral loopback port.
pub struct TestServer {
    pub running: Option<cairn_server::Running>,
    pub base: String,
    pub client: reqwest::Client,
    /// The administrator's credential.
    pub creds: Creds,
}

impl TestServer {
    pub async fn start(
        data_dir: &Path,
        tweak: impl FnOnce(&mut cairn_server::config::RawConfig),
    ) -> Self {
        let mut raw = cairn_server::config::RawConfig {
            data_dir: Some(data_dir.to_path_buf()),
            listen: Some("127.0.0.1:0".to_owned()),
            ..Default::default()
        };
        tweak(&mut raw);
        let config = raw.resolve().expect("config");
        let running = cairn_server::start(config, Arc::new(cairn_model::SystemClock))
            .await
            .expect("start");
        let base = format!("http://{}", running.local_addr);
        Self {
            running: Some(running),
            base,
            client: reqwest::Client::new(),
            creds: Creds::admin(data_dir),
        }
    }

    /// Sends a request signed as the administrator.
    pub async fn send(&self, builder: reqwest::RequestBuilder) -> reqwest::Response {
        send(builder, &self.creds).await
    }

    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        let response = self
            .send(
                self.client
                    .post(format!("{}{path}", self.base))
                    .header("content-type", content_type)
                    .body(body),
            )
            .await;
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub async fn get(&self, path_and_query: &str) -> (u16, serde_json::Value) {
        let response = self
            .send(self.client.get(format!("{}{path_and_query}", self.base)))
            .await;
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// A metric's value (sum over its series).
    pub async fn metric(&self, name: &str) -> f64 {
        metric_value(
            &metrics_text(&self.client, &self.base, &self.creds).await,
            name,
        )
    }

    /// Waits until Event history has indexed every durable record.
    pub async fn wait_indexed(&self) {
        wait_indexed(&self.client, &self.base, &self.creds).await;
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

/// Creates the user `name` with the managed policy `policy` and an access key, through the
/// API as the administrator; its credential and ARN.
pub async fn user_with_key(server: &TestServer, name: &str, policy: &str) -> (Creds, String) {
    let json_ct = "application/json";
    let (status, user) = server
        .post(
            "/v1/iam/users",
            json_ct,
            serde_json::json!({ "UserName": name }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    let (status, body) = server
        .post(
            &format!("/v1/iam/users/{name}/attached-policies"),
            json_ct,
            serde_json::json!({ "PolicyArn": policy }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, key) = server
        .post(&format!("/v1/iam/users/{name}/access-keys"), json_ct, "")
        .await;
    assert_eq!(status, 200, "{key}");
    let text = |v: &serde_json::Value| v.as_str().expect("string").to_owned();
    (
        Creds {
            id: text(&key["AccessKey"]["AccessKeyId"]),
            secret: text(&key["AccessKey"]["SecretAccessKey"]),
        },
        text(&user["User"]["Arn"]),
    )
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whether `stored` is `sent` with zero or more members appended before its closing brace,
/// each of which is one Cairn adds, and none the producer already had.
pub fn is_sent_plus_appended(sent: &[u8], stored: &[u8]) -> bool {
    if sent == stored {
        return true;
    }
    let Some(end) = sent.iter().rposition(|&b| b == b'}') else {
        return false;
    };
    if !stored.starts_with(&sent[..end]) || !stored.ends_with(&sent[end..]) {
        return false;
    }
    let suffix = &stored[end..stored.len() - (sent.len() - end)];
    if suffix.first() != Some(&b',') {
        return false;
    }
    let added: serde_json::Map<String, serde_json::Value> =
        match serde_json::from_slice(&[b"{", &suffix[1..], b"}"].concat()) {
            Ok(map) => map,
            Err(_) => return false,
        };
    let original: serde_json::Value = serde_json::from_slice(sent).expect("sent is JSON");
    added.keys().all(|k| {
        [
            "eventID",
            "recipientAccountId",
            "eventCategory",
            "managementEvent",
            "readOnly",
        ]
        .contains(&k.as_str())
            && original.get(k).is_none_or(|v| v.is_null())
    })
}

/// A Python interpreter in a virtual environment under the target directory with `packages`
/// installed from PyPI (done once, on first use).
pub fn python_with(packages: &[&str]) -> PathBuf {
    use std::process::Command;
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("py-venv");
    let python = venv.join("bin/python3");
    if !python.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(
            status.success(),
            "creating a Python virtual environment failed"
        );
    }
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            let module = p.split('[').next().unwrap_or(p).replace('-', "_");
            !Command::new(&python)
                .args(["-c", &format!("import {module}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if !missing.is_empty() {
        let status = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(&missing)
            .status()
            .expect("pip install");
        assert!(status.success(), "installing {missing:?} from PyPI failed");
    }
    python
}

/// A real S3-compatible server (moto) on 127.0.0.1, killed on drop.
pub struct Moto {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        Self::start_on(port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    /// Stops the server (an outage); `start_on(port)` brings one back (empty: moto keeps
    /// everything in memory).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn start_on(port: u16) -> Self {
        let python = python_with(&["moto[server]"]);
        let mut child =
            std::process::Command::new(python.parent().expect("bin").join("moto_server"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { child, endpoint };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("moto_server did not start");
    }

    /// Creates a bucket (moto accepts unsigned requests).
    pub async fn create_bucket(&self, bucket: &str) {
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("create bucket");
        assert!(
            response.status().is_success(),
            "create bucket: {}",
            response.status()
        );
    }

    pub fn s3_config(&self) -> cairn_store::S3Config {
        cairn_store::S3Config {
            endpoint: self.endpoint.clone(),
            region: "us-east-1".into(),
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            allow_http: true,
            virtual_hosted_style: false,
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads an HTTP response body as JSON.
pub trait JsonValue {
    async fn json_value(self) -> serde_json::Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> serde_json::Value {
        serde_json::from_str(&self.text().await.expect("text")).expect("json")
    }
}

/// Every record delivered under `root` (a trail's local directory), by eventID, with the key
/// of the file holding it. Each file must be one complete gzip member holding `{"Records":[...]}`.
pub fn delivered(root: &Path) -> std::collections::HashMap<String, Vec<(String, Vec<u8>)>> {
    let mut out: std::collections::HashMap<String, Vec<(String, Vec<u8>)>> = Default::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.map(|e| e.expect("entry").path()) {
            if entry.is_dir() {
                // Digests (and their signature sidecars) are not log files.
                if entry.file_name().is_none_or(|n| n != "CloudTrail-Digest") {
                    stack.push(entry);
                }
                continue;
            }
            let key = entry
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&entry).expect("file");
            let json = cairn_logfile::body::decompress(&bytes, 64 << 20)
                .expect("one complete gzip member");
            for record in cairn_logfile::body::records(&json).expect("Records") {
                let value: serde_json::Value = serde_json::from_slice(record).expect("record");
                let id = value["eventID"].as_str().expect("id").to_owned();
                out.entry(id)
                    .or_default()
                    .push((key.clone(), record.to_vec()));
            }
        }
    }
    out
}

/// The server's `/metrics` text.
pub async fn metrics_text(client: &reqwest::Client, base: &str, creds: &Creds) -> String {
    send(client.get(format!("{base}/metrics")), creds)
        .await
        .text()
        .await
        .expect("text")
}

/// A metric's value in a `/metrics` text (sum over its series).
pub fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until Event history has indexed every durable record (it is eventually consistent,
/// typically within milliseconds).
pub async fn wait_indexed(client: &reqwest::Client, base: &str, creds: &Creds) {
    let started = std::time::Instant::now();
    loop {
        let text = metrics_text(client, base, creds).await;
        if metric_value(&text, "cairn_history_applied_seq")
            >= metric_value(&text, "cairn_wal_durable_seq")
        {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "event history did not catch up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
