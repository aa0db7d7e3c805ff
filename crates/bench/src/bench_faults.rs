//! `cairn bench faults`: the faults of RELIABILITY.md as one rerunnable report.
//!
//! Each case starts the real server (this binary's `cairn serve`, on loopback) in a scratch
//! directory, drives signed ingest of events whose IDs it knows, injects its fault, and counts
//! from outside what a user depends on: events acknowledged, found in Event history,
//! delivered in the trail's files, found twice, lost; and the server's memory. A client
//! resends a batch that was not acknowledged (connection refused, 503) until it is, as
//! producers do; a batch never acknowledged is not counted.
//!
//! Cases: `kill` (SIGKILL under load, N times), `disk-full` (the data directory on a small
//! tmpfs, filled; needs root to mount it), `s3-outage` (a trail to moto behind a proxy that
//! is switched off; needs `moto_server`), `runaway-query` (a reader's SQL that would take the
//! machine, under load), `flood` (N concurrent connections, memory before, during, after).

use anyhow::{bail, Context};
use cairn_client::output::Output;
use cairn_client::sign::{Credentials, SendSigned};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Case {
    /// SIGKILL of the server under concurrent ingest, `--kills` times.
    Kill,
    /// The data directory on a 64 MiB tmpfs, filled to the last byte, then freed.
    DiskFull,
    /// The S3-compatible store unreachable for `--seconds` during delivery.
    S3Outage,
    /// Runaway Lake SQL (huge values, unbounded memory, endless) under ingest.
    RunawayQuery,
    /// `--connections` concurrent connections sending events for `--seconds`.
    Flood,
}

#[derive(Debug, clap::Args)]
pub struct FaultsArgs {
    /// Faults to inject, in order (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',',
          default_values_t = [Case::Kill, Case::DiskFull, Case::S3Outage, Case::RunawayQuery, Case::Flood])]
    cases: Vec<Case>,
    /// SIGKILLs in the `kill` case.
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// Seconds of load in each phase (and of the S3 outage).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent connections in the `flood` case, one server each (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [200usize, 1000])]
    connections: Vec<usize>,
    /// `moto_server` for the `s3-outage` case [default: `moto_server` on PATH].
    #[arg(long)]
    moto_server: Option<PathBuf>,
    /// Scratch directory [default: a fresh temporary directory, removed afterwards].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A setting added to every server's configuration, as a TOML line
    /// (`history_cache_mib = 64`); repeatable.
    #[arg(long = "server-config", value_name = "TOML")]
    server_config: Vec<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// What one case showed.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    case: String,
    acknowledged: u64,
    /// Acknowledged events found in Event history (`None`: not counted in this case).
    in_history: Option<u64>,
    /// Acknowledged events found in the trail's files.
    delivered: Option<u64>,
    /// Events found more than once (history pages or delivered files).
    duplicated: u64,
    /// Acknowledged events missing from history or from the trail's files.
    lost: u64,
    /// Requests refused, by HTTP status, and attempts that found no server.
    refused: BTreeMap<String, u64>,
    rss_idle_mib: Option<f64>,
    rss_peak_mib: f64,
    rss_after_mib: Option<f64>,
    threads_peak: u64,
    /// What the case did and saw; why it was skipped.
    note: String,
    skipped: bool,
}

pub async fn faults(args: FaultsArgs) -> anyhow::Result<()> {
    // The producers' connections are files of this process too.
    cairn_server::raise_open_file_limit();
    let scratch = tempfile::Builder::new()
        .prefix("cairn-faults-")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let mut rows = Vec::new();
    for (n, case) in args.cases.iter().enumerate() {
        let dir = scratch.path().join(format!("{n}"));
        std::fs::create_dir_all(&dir)?;
        eprintln!("bench faults: {case:?}...");
        // A case that cannot run to its end is a row saying why, not the end of the report.
        let failed = |name: String, e: anyhow::Error| Row {
            case: name,
            note: format!("FAILED: {e:#}"),
            ..Row::default()
        };
        let outcome = match case {
            Case::Kill => kill(&args, &dir).await,
            Case::DiskFull => disk_full(&args, &dir).await,
            Case::S3Outage => s3_outage(&args, &dir).await,
            Case::RunawayQuery => runaway_query(&args, &dir).await,
            Case::Flood => {
                for &connections in &args.connections {
                    let dir = dir.join(connections.to_string());
                    std::fs::create_dir_all(&dir)?;
                    let row = flood(&args, &dir, connections).await;
                    rows.push(row.unwrap_or_else(|e| failed(format!("flood-{connections}"), e)));
                }
                continue;
            }
        };
        let name = clap::ValueEnum::to_possible_value(case)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        rows.push(outcome.unwrap_or_else(|e| failed(name, e)));
    }
    print(&rows, args.output)?;
    Ok(())
}

fn print(rows: &[Row], output: Output) -> anyhow::Result<()> {
    let opt = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
    let mib = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "Cases": rows }))?
        ),
        Output::Text => {
            for r in rows {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.0}\t{}\t{}\t{}",
                    r.case,
                    r.acknowledged,
                    opt(r.in_history),
                    opt(r.delivered),
                    r.duplicated,
                    r.lost,
                    mib(r.rss_idle_mib),
                    r.rss_peak_mib,
                    mib(r.rss_after_mib),
                    r.threads_peak,
                    r.note
                );
            }
        }
        Output::Table => {
            println!(
                "{:<16} {:>9} {:>9} {:>9} {:>5} {:>5} {:>8} {:>8} {:>8} {:>7}",
                "case",
                "acked",
                "history",
                "delivered",
                "dup",
                "lost",
                "rss idle",
                "rss peak",
                "rss after",
                "threads"
            );
            for r in rows {
                println!(
                    "{:<16} {:>9} {:>9} {:>9} {:>5} {:>5} {:>8} {:>8.0} {:>8} {:>7}",
                    r.case,
                    r.acknowledged,
                    opt(r.in_history),
                    opt(r.delivered),
                    r.duplicated,
                    r.lost,
                    mib(r.rss_idle_mib),
                    r.rss_peak_mib,
                    mib(r.rss_after_mib),
                    r.threads_peak
                );
                let refused: Vec<String> =
                    r.refused.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                if !refused.is_empty() {
                    println!("    refused/retried: {}", refused.join(", "));
                }
                println!("    {}", r.note);
            }
            println!("(memory in MiB; rss peak is the highest resident size sampled every 100 ms during the case)");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The server under test.

pub(crate) struct Server {
    child: Option<Child>,
    config: PathBuf,
    pub(crate) base: String,
    client: reqwest::Client,
    pub(crate) credentials: Credentials,
}

impl Server {
    /// Starts `cairn serve` on a free loopback port with `data` as its data directory and
    /// `server_config` lines, then `extra`, appended to its configuration.
    pub(crate) async fn start(
        server_config: &[String],
        dir: &Path,
        data: &Path,
        extra: &str,
    ) -> anyhow::Result<Self> {
        let port = crate::free_port()?;
        let config = dir.join("cairn.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {}\nlisten = \"127.0.0.1:{port}\"\nregion = \"us-east-1\"\n{}\n{extra}",
                serde_json::to_string(&data.display().to_string())?,
                server_config.join("\n")
            ),
        )?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let mut server = Self {
            child: None,
            config,
            base: format!("http://127.0.0.1:{port}"),
            client,
            credentials: Credentials {
                access_key_id: String::new(),
                secret_access_key: String::new(),
                region: "us-east-1".to_owned(),
            },
        };
        server.spawn().await?;
        server.credentials =
            cairn_client::sign::from_file(&data.join("admin-credentials"), "default")?
                .context("the server wrote no admin-credentials")?;
        Ok(server)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new(std::env::current_exe()?)
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("CAIRN_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting cairn serve")?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            // Any answer will do: `/readyz` is 503 while the disk is below the reserve.
            if self
                .client
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok()
            {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("cairn serve exited at start: {status}");
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("cairn serve did not answer within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send_signed_with(&self.credentials)
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send_signed_with(&self.credentials)
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn metrics(&self) -> anyhow::Result<String> {
        Ok(self
            .client
            .get(format!("{}/metrics", self.base))
            .send_signed_with(&self.credentials)
            .await?
            .text()
            .await?)
    }

    async fn create_trail(&self, settings: Value) -> anyhow::Result<()> {
        let name = settings["Name"].as_str().unwrap_or_default().to_owned();
        let (status, body) = self.post("/v1/trails", settings).await?;
        if status != 200 {
            bail!("creating the trail: {status} {body}");
        }
        let (status, body) = self
            .post(&format!("/v1/trails/{name}/start-logging"), json!({}))
            .await?;
        if status != 200 {
            bail!("starting the trail: {status} {body}");
        }
        Ok(())
    }

    /// Waits until every WAL consumer has processed every durable record (bounded).
    async fn settle(&self, limit: Duration) -> anyhow::Result<bool> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(text) = self.metrics().await {
                let lag: f64 = text
                    .lines()
                    .filter(|l| l.starts_with("cairn_consumer_lag_records"))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum();
                if lag == 0.0 {
                    return Ok(true);
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(false)
    }

    /// Every event ID of this bench in Event history, paging through LookupEvents.
    async fn history_ids(&self) -> anyhow::Result<Vec<u64>> {
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = "/v1/event-history?max-results=50&lookup-attribute=EventSource%3Dfaults.cairn.example&start-time=2000-01-01T00%3A00%3A00Z".to_owned();
            if let Some(token) = &token {
                path.push_str("&next-token=");
                path.push_str(&cairn_client::http::percent_encode(token));
            }
            let (status, page) = self.get(&path).await?;
            if status != 200 {
                bail!("LookupEvents answered {status}: {page}");
            }
            for event in page["Events"].as_array().into_iter().flatten() {
                if let Some(id) = event["EventId"].as_str().and_then(parse_id) {
                    ids.push(id);
                }
            }
            match page["NextToken"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => return Ok(ids),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Resident memory, its peak and the thread count of a process, from `/proc`.
#[derive(Debug, Default, Clone, Copy)]
struct Memory {
    rss_kib: u64,
    /// Of which anonymous (heap, stacks), the rest being mapped files the kernel can drop.
    anon_kib: u64,
    hwm_kib: u64,
    threads: u64,
}

fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        anon_kib: field("RssAnon:")?,
        hwm_kib: field("VmHWM:")?,
        threads: field("Threads:")?,
    })
}

/// Samples a server's memory every 100 ms; the peaks survive restarts (the pid is re-read).
struct Sampler {
    peak_kib: Arc<AtomicU64>,
    threads: Arc<AtomicU64>,
    pid: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: Option<u32>) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let threads = Arc::new(AtomicU64::new(0));
        let pid = Arc::new(AtomicU64::new(pid.unwrap_or(0).into()));
        let task = tokio::spawn({
            let (peak_kib, threads, pid) = (peak_kib.clone(), threads.clone(), pid.clone());
            async move {
                loop {
                    let now = pid.load(Ordering::Relaxed);
                    if let Some(m) = u32::try_from(now).ok().and_then(memory) {
                        peak_kib.fetch_max(m.rss_kib.max(m.hwm_kib), Ordering::Relaxed);
                        threads.fetch_max(m.threads, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Self {
            peak_kib,
            threads,
            pid,
            task,
        }
    }

    /// Samples `pid` from now on, after keeping the peak of the process it replaces.
    fn follow(&self, old: Option<u32>, new: Option<u32>) {
        if let Some(m) = old.and_then(memory) {
            self.peak_kib.fetch_max(m.hwm_kib, Ordering::Relaxed);
        }
        self.pid.store(new.unwrap_or(0).into(), Ordering::Relaxed);
    }

    fn finish(self, row: &mut Row) {
        self.task.abort();
        row.rss_peak_mib = self.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0;
        row.threads_peak = self.threads.load(Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------
// The load: producers that resend what was not acknowledged.

const ID_PREFIX: &str = "fa017000-0000-4000-8000-";

fn event_id(i: u64) -> String {
    format!("{ID_PREFIX}{i:012x}")
}

fn parse_id(id: &str) -> Option<u64> {
    u64::from_str_radix(id.strip_prefix(ID_PREFIX)?, 16).ok()
}

/// A management event of about 900 bytes with a known ID.
fn event(i: u64, time: &str) -> String {
    json!({
        "eventVersion": "1.11",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAFAULTSBENCH", "arn": "arn:aws:iam::123456789012:user/faults",
                         "accountId": "123456789012", "accessKeyId": "AKIAFAULTSBENCH00001", "userName": "faults"},
        "eventTime": time,
        "eventSource": "faults.cairn.example",
        "eventName": "PutBucketPolicy",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "cairn-bench-faults",
        "requestParameters": {"bucketName": format!("faults-{}", i % 97),
                              "policy": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::faults/*\"}]}"},
        "responseElements": null,
        "requestID": format!("{i:032x}"),
        "eventID": event_id(i),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "123456789012",
        "eventCategory": "Management"
    })
    .to_string()
}

#[derive(Debug, Default)]
struct Tally {
    acked: Vec<u64>,
    refused: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.acked.extend(other.acked);
        for (k, v) in other.refused {
            *self.refused.entry(k).or_default() += v;
        }
    }
}

struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Load {
    /// `clients` producers, each on its own connection, sending `batch` events per request.
    fn start(server: &Server, clients: usize, batch: usize, next: Arc<AtomicU64>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let time = cairn_model::time::format_utc_seconds(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        );
        let tasks = (0..clients)
            .map(|_| {
                let (stop, next, time) = (stop.clone(), next.clone(), time.clone());
                let url = format!("{}/v1/events", server.base);
                let credentials = server.credentials.clone();
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    // One connection per producer, as separate processes would have.
                    let Ok(client) = reqwest::Client::builder()
                        .pool_max_idle_per_host(1)
                        .timeout(Duration::from_secs(60))
                        .build()
                    else {
                        return tally;
                    };
                    while !stop.load(Ordering::Relaxed) {
                        let first = next.fetch_add(batch as u64, Ordering::Relaxed);
                        let ids = first..first + batch as u64;
                        let body = format!(
                            "[{}]",
                            ids.clone()
                                .map(|i| event(i, &time))
                                .collect::<Vec<_>>()
                                .join(",")
                        );
                        loop {
                            let answer = client
                                .post(&url)
                                .header("content-type", "application/json")
                                .body(body.clone())
                                .send_signed_with(&credentials)
                                .await;
                            match answer {
                                Ok(r) if r.status().is_success() => {
                                    let _ = r.bytes().await;
                                    tally.acked.extend(ids.clone());
                                    break;
                                }
                                Ok(r) => {
                                    *tally
                                        .refused
                                        .entry(r.status().as_u16().to_string())
                                        .or_default() += 1;
                                }
                                Err(_) => {
                                    *tally.refused.entry("no answer".to_owned()).or_default() += 1;
                                }
                            }
                            if stop.load(Ordering::Relaxed) {
                                break; // never acknowledged: not counted
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    tally
                })
            })
            .collect();
        Self { stop, tasks }
    }

    async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut tally = Tally::default();
        for task in self.tasks {
            if let Ok(t) = task.await {
                tally.merge(t);
            }
        }
        tally.acked.sort_unstable();
        tally
    }
}

/// Fills `row` from what was acknowledged and what was found where.
fn account(row: &mut Row, tally: Tally, history: Option<Vec<u64>>, delivered: Option<Vec<u64>>) {
    row.acknowledged = tally.acked.len() as u64;
    row.refused = tally.refused;
    let mut lost: std::collections::HashSet<u64> = std::collections::HashSet::new();
    for found in [&history, &delivered].into_iter().flatten() {
        let mut counts: HashMap<u64, u64> = HashMap::with_capacity(found.len());
        for id in found {
            *counts.entry(*id).or_default() += 1;
        }
        row.duplicated += counts
            .values()
            .filter(|&&n| n > 1)
            .map(|n| n - 1)
            .sum::<u64>();
        lost.extend(
            tally
                .acked
                .iter()
                .copied()
                .filter(|id| !counts.contains_key(id)),
        );
    }
    row.lost = lost.len() as u64;
    let acked: std::collections::HashSet<u64> = tally.acked.iter().copied().collect();
    let count = |found: &Option<Vec<u64>>| {
        found.as_ref().map(|f| {
            let distinct: std::collections::HashSet<u64> =
                f.iter().copied().filter(|id| acked.contains(id)).collect();
            distinct.len() as u64
        })
    };
    row.in_history = count(&history);
    row.delivered = count(&delivered);
}

/// The event IDs in every log file under `root` (a local trail's directory).
fn local_delivered(root: &Path) -> anyhow::Result<Vec<u64>> {
    let mut ids = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "CloudTrail-Digest") {
                    stack.push(path);
                }
            } else if path.to_string_lossy().ends_with(".json.gz") {
                ids.extend(log_file_ids(&std::fs::read(&path)?)?);
            }
        }
    }
    Ok(ids)
}

fn log_file_ids(gzip: &[u8]) -> anyhow::Result<Vec<u64>> {
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(gzip).read_to_end(&mut text)?;
    let file: Value = serde_json::from_slice(&text)?;
    Ok(file["Records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["eventID"].as_str().and_then(parse_id))
        .collect())
}

// ---------------------------------------------------------------------------------------
// The cases.

/// A server with `extra` configuration and a multi-region trail delivering to `dir/trail`.
async fn start_with_local_trail(
    args: &FaultsArgs,
    dir: &Path,
    data: &Path,
    extra: &str,
) -> anyhow::Result<(Server, PathBuf)> {
    let trail_dir = dir.join("trail");
    let server = Server::start(&args.server_config, dir, data, extra).await?;
    server
        .create_trail(
            json!({"Name": "faults", "LocalDirectory": trail_dir, "IsMultiRegionTrail": true}),
        )
        .await?;
    Ok((server, trail_dir))
}

/// Waits for the consumers, then counts what history and the trail's files hold against what
/// was acknowledged; whether the consumers caught up.
async fn count_local(
    server: &Server,
    trail_dir: &Path,
    sampler: Sampler,
    row: &mut Row,
    tally: Tally,
) -> anyhow::Result<bool> {
    let settled = server.settle(Duration::from_secs(300)).await?;
    let history = server.history_ids().await?;
    let delivered = local_delivered(trail_dir)?;
    sampler.finish(row);
    account(row, tally, Some(history), Some(delivered));
    Ok(settled)
}

async fn kill(args: &FaultsArgs, dir: &Path) -> anyhow::Result<Row> {
    let mut row = Row {
        case: "kill".into(),
        ..Row::default()
    };
    let (mut server, trail_dir) = start_with_local_trail(
        args,
        dir,
        &dir.join("data"),
        "delivery_interval_seconds = 1\n",
    )
    .await?;
    let sampler = Sampler::start(server.pid());
    let next = Arc::new(AtomicU64::new(0));
    let load = Load::start(&server, 8, 100, next.clone());
    let mut rng = rand::thread_rng();
    let mut restarts = Vec::new();
    for _ in 0..args.kills {
        let pause = Duration::from_millis(rand::Rng::gen_range(
            &mut rng,
            200..=(args.seconds * 1000 / args.kills.max(1) as u64).max(201),
        ));
        tokio::time::sleep(pause).await;
        let old = server.pid();
        sampler.follow(old, None);
        server.kill();
        let started = Instant::now();
        server.spawn().await?;
        restarts.push(started.elapsed());
        sampler.follow(None, server.pid());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tally = load.stop().await;
    let settled = count_local(&server, &trail_dir, sampler, &mut row, tally).await?;
    let slowest = restarts.iter().max().copied().unwrap_or_default();
    row.note = format!(
        "{} SIGKILLs under 8 producers; slowest restart to a first answer {:.2} s{}",
        args.kills,
        slowest.as_secs_f64(),
        if settled {
            ""
        } else {
            "; consumers had NOT caught up after 300 s"
        }
    );
    Ok(row)
}

async fn disk_full(args: &FaultsArgs, dir: &Path) -> anyhow::Result<Row> {
    let mut row = Row {
        case: "disk-full".into(),
        ..Row::default()
    };
    let mount = dir.join("tmpfs");
    std::fs::create_dir_all(&mount)?;
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs"])
        .arg(&mount)
        .output();
    match mounted {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            row.skipped = true;
            row.note = format!(
                "skipped: mounting a 64 MiB tmpfs failed (needs root): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return Ok(row);
        }
        Err(e) => {
            row.skipped = true;
            row.note = format!("skipped: running mount failed: {e}");
            return Ok(row);
        }
    }
    let result = disk_full_on(args, dir, &mount, &mut row).await;
    let _ = Command::new("umount").arg("-l").arg(&mount).status();
    result?;
    Ok(row)
}

async fn disk_full_on(
    args: &FaultsArgs,
    dir: &Path,
    mount: &Path,
    row: &mut Row,
) -> anyhow::Result<()> {
    let (mut server, trail_dir) = start_with_local_trail(
        args,
        dir,
        &mount.join("data"),
        "delivery_interval_seconds = 1\nmin_free_mib = 8\nwal_segment_bytes = 4194304\n",
    )
    .await?;
    let sampler = Sampler::start(server.pid());
    let next = Arc::new(AtomicU64::new(0));
    let phase = Duration::from_secs(args.seconds.max(3) / 3);
    let load = Load::start(&server, 4, 50, next.clone());
    tokio::time::sleep(phase).await;

    // Fill the filesystem to the last byte.
    let filler = mount.join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler)?;
        let chunk = vec![0u8; 1 << 20];
        while file.write_all(&chunk).is_ok() {}
        let small = vec![0u8; 4096];
        while file.write_all(&small).is_ok() {}
        let _ = file.sync_all();
    }
    tokio::time::sleep(phase).await;
    let (lookup_status, _) = server
        .get("/v1/event-history?max-results=5")
        .await
        .unwrap_or((0, Value::Null));
    let (ready_status, _) = server.get("/readyz").await.unwrap_or((0, Value::Null));
    std::fs::remove_file(&filler)?;
    tokio::time::sleep(phase).await;
    let tally = load.stop().await;
    // A start after the full disk.
    let old = server.pid();
    server.kill();
    server.spawn().await?;
    sampler.follow(old, server.pid());
    let settled = count_local(&server, &trail_dir, sampler, row, tally).await?;
    row.note = format!(
        "64 MiB tmpfs filled to the last byte for {} s under 4 producers, then freed; while full: lookups {lookup_status}, /readyz {ready_status}; then SIGKILL and restart{}",
        phase.as_secs(),
        if settled { "" } else { "; consumers had NOT caught up after 300 s" }
    );
    Ok(())
}

fn moto_server(args: &FaultsArgs) -> Option<PathBuf> {
    if let Some(path) = &args.moto_server {
        return Some(path.clone());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("moto_server"))
            .find(|p| p.is_file())
    })
}

/// A TCP proxy to `target` that can be switched off: then it drops every connection and
/// refuses new ones, as an unreachable store does.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: u16) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let down = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let task = tokio::spawn({
            let (down, connections) = (down.clone(), connections.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if down.load(Ordering::Relaxed) {
                        continue; // dropped: the connection is reset
                    }
                    let forward = tokio::spawn(async move {
                        if let Ok(mut outbound) =
                            tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                        {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    if let Ok(mut list) = connections.lock() {
                        list.retain(|t| !t.is_finished());
                        list.push(forward);
                    }
                }
            }
        });
        Ok(Self {
            port,
            down,
            connections,
            task,
        })
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
        if down {
            if let Ok(mut list) = self.connections.lock() {
                for connection in list.drain(..) {
                    connection.abort();
                }
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.set_down(true);
    }
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every event ID in the log files of `bucket` on the S3-compatible server at `endpoint`,
/// and the keys of objects that are not readable log files.
async fn s3_delivered(endpoint: &str, bucket: &str) -> anyhow::Result<(Vec<u64>, Vec<String>)> {
    let config = cairn_store::S3Config {
        endpoint: endpoint.to_owned(),
        region: "us-east-1".into(),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        allow_http: true,
        virtual_hosted_style: false,
    };
    let store = cairn_store::s3(&config, bucket)?;
    let mut ids = Vec::new();
    let mut unreadable = Vec::new();
    for key in cairn_store::list(store.as_ref(), "").await? {
        if !key.ends_with(".json.gz") || key.contains("CloudTrail-Digest") {
            continue;
        }
        let Some(body) = cairn_store::get(store.as_ref(), &key).await? else {
            continue;
        };
        match log_file_ids(&body) {
            Ok(found) => ids.extend(found),
            Err(e) => unreadable.push(format!("{key} ({} bytes: {e})", body.len())),
        }
    }
    Ok((ids, unreadable))
}

async fn s3_outage(args: &FaultsArgs, dir: &Path) -> anyhow::Result<Row> {
    let mut row = Row {
        case: "s3-outage".into(),
        ..Row::default()
    };
    let Some(moto) = moto_server(args) else {
        row.skipped = true;
        row.note =
            "skipped: no moto_server (pip install 'moto[server]', or --moto-server PATH)".into();
        return Ok(row);
    };
    let moto_port = crate::free_port()?;
    let _moto = ChildGuard(
        Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", moto.display()))?,
    );
    let endpoint = format!("http://127.0.0.1:{moto_port}");
    let plain = reqwest::Client::new();
    let started = Instant::now();
    while plain
        .put(format!("{endpoint}/faults"))
        .send()
        .await
        .is_err()
    {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("moto_server did not start");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let proxy = Proxy::start(moto_port).await?;
    let server = Server::start(
        &args.server_config,
        dir,
        &dir.join("data"),
        &format!(
            "delivery_interval_seconds = 1\n[s3]\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\naccess_key_id = \"testing\"\nsecret_access_key = \"testing\"\nallow_http = true\n",
            proxy.port
        ),
    )
    .await?;
    server
        .create_trail(
            json!({"Name": "faults", "S3BucketName": "faults", "IsMultiRegionTrail": true}),
        )
        .await?;
    let sampler = Sampler::start(server.pid());
    let next = Arc::new(AtomicU64::new(0));
    let load = Load::start(&server, 4, 50, next.clone());
    let quarter = Duration::from_secs(args.seconds.max(4) / 4);
    tokio::time::sleep(quarter).await;
    proxy.set_down(true);
    let outage = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let failures = metric_sum(&server.metrics().await?, "cairn_delivery_failures");
    proxy.set_down(false);
    let outage = outage.elapsed();
    tokio::time::sleep(quarter).await;
    let tally = load.stop().await;
    let settled = server.settle(Duration::from_secs(300)).await?;
    let history = server.history_ids().await?;
    let (delivered, unreadable) = s3_delivered(&endpoint, "faults").await?;
    sampler.finish(&mut row);
    account(&mut row, tally, Some(history), Some(delivered));
    row.note = format!(
        "store unreachable for {:.0} s under 4 producers: {failures:.0} failed delivery attempts (backoff), ingest kept acknowledging{}{}",
        outage.as_secs_f64(),
        if unreadable.is_empty() {
            String::new()
        } else {
            format!("; UNREADABLE objects in the bucket: {}", unreadable.join(", "))
        },
        if settled { "" } else { "; delivery had NOT caught up after 300 s" }
    );
    Ok(row)
}

fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn runaway_query(args: &FaultsArgs, dir: &Path) -> anyhow::Result<Row> {
    let mut row = Row {
        case: "runaway-query".into(),
        ..Row::default()
    };
    let server = Server::start(
        &args.server_config,
        dir,
        &dir.join("data"),
        &format!("query_timeout_seconds = {}\n", args.seconds.max(2)),
    )
    .await?;
    let sampler = Sampler::start(server.pid());
    let idle = server.pid().and_then(memory).map(|m| m.rss_kib);
    let next = Arc::new(AtomicU64::new(0));
    let load = Load::start(&server, 4, 50, next.clone());
    let queries = [
        ("huge value", "SELECT repeat('a', 1000000000)"),
        (
            "recursive",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        ),
        (
            "memory",
            "SELECT array_agg(value) FROM generate_series(1, 500000000)",
        ),
        (
            "endless",
            "SELECT count(*) FROM generate_series(1, 9000000000000) WHERE value % 1000000007 = 999999999999",
        ),
    ];
    let mut outcomes = Vec::new();
    let mut running = Vec::new();
    for (name, sql) in queries {
        let (status, body) = server
            .post("/v1/queries", json!({ "QueryStatement": sql }))
            .await?;
        match body["QueryId"].as_str() {
            Some(id) if status == 200 => running.push((name, id.to_owned())),
            _ => outcomes.push(format!(
                "{name}: refused {status} {}",
                body["__type"].as_str().unwrap_or("")
            )),
        }
    }
    let started = Instant::now();
    for (name, id) in running {
        loop {
            let (_, body) = server.get(&format!("/v1/queries/{id}")).await?;
            let state = body["QueryStatus"].as_str().unwrap_or("").to_owned();
            if matches!(
                state.as_str(),
                "FINISHED" | "FAILED" | "CANCELLED" | "TIMED_OUT"
            ) {
                let reason = body["ErrorMessage"].as_str().unwrap_or("");
                let reason: String = reason.chars().take(80).collect();
                outcomes.push(format!(
                    "{name}: {state} after {:.1} s ({reason})",
                    started.elapsed().as_secs_f64()
                ));
                break;
            }
            if started.elapsed() > Duration::from_secs(args.seconds * 4 + 60) {
                outcomes.push(format!("{name}: still {state} (limit NOT enforced)"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let tally = load.stop().await;
    let settled = server.settle(Duration::from_secs(300)).await?;
    let history = server.history_ids().await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    row.rss_after_mib = server
        .pid()
        .and_then(memory)
        .map(|m| m.rss_kib as f64 / 1024.0);
    row.rss_idle_mib = idle.map(|k| k as f64 / 1024.0);
    sampler.finish(&mut row);
    account(&mut row, tally, Some(history), None);
    row.note = format!(
        "4 producers while a reader runs: {}{}",
        outcomes.join("; "),
        if settled {
            ""
        } else {
            "; history had NOT caught up after 300 s"
        }
    );
    Ok(row)
}

async fn flood(args: &FaultsArgs, dir: &Path, connections: usize) -> anyhow::Result<Row> {
    let mut row = Row {
        case: format!("flood-{connections}"),
        ..Row::default()
    };
    let server = Server::start(&args.server_config, dir, &dir.join("data"), "").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = server.pid().and_then(memory).map(|m| m.rss_kib);
    let sampler = Sampler::start(server.pid());
    let next = Arc::new(AtomicU64::new(0));
    let load = Load::start(&server, connections, 20, next.clone());
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let tally = load.stop().await;
    let settled = server.settle(Duration::from_secs(300)).await?;
    let history = server.history_ids().await?;
    // Idle again: connections closed, consumers caught up.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = server.pid().and_then(memory);
    row.rss_idle_mib = idle.map(|k| k as f64 / 1024.0);
    row.rss_after_mib = after.map(|m| m.rss_kib as f64 / 1024.0);
    sampler.finish(&mut row);
    account(&mut row, tally, Some(history), None);
    row.note = format!(
        "{connections} producers, one connection each, 20 events per request for {} s; 10 s after: {} threads, {:.0} MiB anonymous{}",
        args.seconds,
        after.map_or(0, |m| m.threads),
        after.map_or(0.0, |m| m.anon_kib as f64 / 1024.0),
        if settled { "" } else { "; history had NOT caught up after 300 s" }
    );
    Ok(row)
}
