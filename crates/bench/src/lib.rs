//! `cairn bench`: reproducible measurements, each beside a baseline measured in the same run.
//!
//! * `ingest` starts the real server (`cairn serve`, a child process on loopback), drives
//!   `POST /v1/events` with concurrent clients, and reports sustained events/s, p50/p99
//!   acknowledgement latency and the server's peak memory, beside the raw fsync'd append rate
//!   of the same bytes to a file.
//! * `lookup` builds an Event history of N events and times lookup pages, beside the time of
//!   a bare point read from the same store.

mod bench_alert;
mod bench_faults;
mod bench_filter;
mod bench_lake;
mod bench_scan;
mod bench_soak;
mod bench_validate;

use anyhow::{bail, Context};
use cairn_history::keys::AttributeKey;
use cairn_history::{HistoryConfig, HistoryStore, IndexItem, LookupQuery};
use clap::Subcommand;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The benchmarks (`cairn bench <name>`).
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ingest throughput and acknowledgement latency through the real HTTP server.
    Ingest(IngestArgs),
    /// Event history lookup latency at a given history size.
    Lookup(LookupArgs),
    /// Trail delivery throughput from the WAL to gzip log files on local disk.
    Delivery(DeliveryArgs),
    /// validate-logs throughput over a generated tree of at least 1 GB, beside zcat | openssl
    /// and, optionally, the AWS CLI.
    Validate(crate::bench_validate::ValidateBenchArgs),
    /// Filter throughput: the CIS pack over sample-shaped events, beside a full JSON parse.
    Filter(crate::bench_filter::FilterBenchArgs),
    /// Alert latency: ingest acknowledgement to webhook delivery.
    Alert(crate::bench_alert::AlertBenchArgs),
    /// Lake: six investigation queries by Cairn and DuckDB over the same Parquet files and
    /// the same .json.gz trees.
    Lake(crate::bench_lake::LakeBenchArgs),
    /// Raw mode's JSON scan alone on one core, over log files inflated in memory, beside
    /// inflating them and checking them with serde_json in the same run.
    Scan(crate::bench_scan::ScanBenchArgs),
    /// The fault suite: SIGKILLs, a full disk, an S3 outage, runaway SQL and connection
    /// floods, each reporting acknowledged / in history / delivered / duplicated / lost / memory.
    Faults(crate::bench_faults::FaultsArgs),
    /// Sustained signed ingest at a steady rate (80% of the measured maximum by default) for
    /// minutes: events/s, ack p99, Event history's lag, WAL size, memory and disk per event over
    /// time.
    Soak(crate::bench_soak::SoakArgs),
}

/// `cairn bench delivery`.
#[derive(Debug, clap::Args)]
pub struct DeliveryArgs {
    /// Events in the WAL to deliver.
    #[arg(long, default_value_t = 300_000)]
    events: usize,
    /// Scratch directory (default: a fresh temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// `cairn bench ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Events to send.
    #[arg(long, default_value_t = 300_000)]
    events: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Scratch directory (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// `cairn bench lookup`.
#[derive(Debug, clap::Args)]
pub struct LookupArgs {
    /// Events in history.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Lookups per query shape.
    #[arg(long, default_value_t = 500)]
    lookups: usize,
    /// Store directory; an existing store of the same size is reused.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Days the events are spread over, ending now (1: every event in today's tables, as
    /// under sustained ingest).
    #[arg(long, default_value_t = 89, value_parser = clap::value_parser!(u32).range(1..=89))]
    span_days: u32,
    /// Events per indexed batch (the server's indexer takes up to 65,536).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    batch: u32,
}

/// Runs one benchmark and prints its figures.
pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest(args).await,
        BenchCommand::Lookup(args) => tokio::task::spawn_blocking(move || lookup(args)).await?,
        BenchCommand::Delivery(args) => tokio::task::spawn_blocking(move || delivery(args)).await?,
        BenchCommand::Validate(args) => crate::bench_validate::validate(args).await,
        BenchCommand::Alert(args) => crate::bench_alert::alert(args).await,
        BenchCommand::Lake(args) => crate::bench_lake::lake(args).await,
        BenchCommand::Scan(args) => crate::bench_scan::scan(args).await,
        BenchCommand::Faults(args) => crate::bench_faults::faults(args).await,
        BenchCommand::Soak(args) => crate::bench_soak::soak(args).await,
        BenchCommand::Filter(args) => {
            tokio::task::spawn_blocking(move || crate::bench_filter::filter(args)).await?
        }
    }
}

const NAMES: &[&str] = &[
    "DescribeInstances",
    "GetObject",
    "ListBuckets",
    "AssumeRole",
    "CreateUser",
    "PutBucketPolicy",
    "ConsoleLogin",
    "RunInstances",
    "StopLogging",
    "UpdateTrail",
    "AttachRolePolicy",
    "Decrypt",
];
const SOURCES: &[&str] = &[
    "ec2.amazonaws.com",
    "s3.amazonaws.com",
    "iam.amazonaws.com",
    "sts.amazonaws.com",
    "kms.amazonaws.com",
    "cloudtrail.amazonaws.com",
];
const REGIONS: &[&str] = &["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"];

/// A realistic management event of about 1.2 KB.
pub(crate) fn sample_event(rng: &mut StdRng, i: u64, time: &str) -> String {
    let user = format!("user-{:04}", rng.gen_range(0..2000));
    let name = NAMES[rng.gen_range(0..NAMES.len())];
    let source = SOURCES[rng.gen_range(0..SOURCES.len())];
    let region = REGIONS[rng.gen_range(0..REGIONS.len())];
    let key = format!("AKIA{:016X}", rng.gen::<u64>() % 5000);
    format!(
        concat!(
            r#"{{"eventVersion":"1.11","userIdentity":{{"type":"IAMUser","principalId":"AIDA{:016X}","arn":"arn:aws:iam::123456789012:user/{}","accountId":"123456789012","accessKeyId":"{}","userName":"{}","sessionContext":{{"attributes":{{"creationDate":"{}","mfaAuthenticated":"false"}}}}}},"#,
            r#""eventTime":"{}","eventSource":"{}","eventName":"{}","awsRegion":"{}","sourceIPAddress":"203.0.113.{}","userAgent":"aws-cli/2.15.30 Python/3.11.8 Linux/6.1 exe/x86_64.debian.12 prompt/off command/bench","#,
            r#""requestParameters":{{"bucketName":"bench-bucket-{}","instancesSet":{{"items":[{{"instanceId":"i-{:017x}"}}]}},"filter":"tag:Environment=production"}},"#,
            r#""responseElements":{{"requestId":"{:032x}","return":true}},"requestID":"{:032x}","eventID":"{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}","readOnly":false,"#,
            r#""resources":[{{"ARN":"arn:aws:iam::123456789012:user/{}","accountId":"123456789012","type":"AWS::IAM::User"}}],"#,
            r#""eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"123456789012","eventCategory":"Management","#,
            r#""tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"{}"}}}}"#
        ),
        rng.gen::<u64>(),
        user,
        key,
        user,
        time,
        time,
        source,
        name,
        region,
        rng.gen_range(1..255),
        rng.gen_range(0..100),
        rng.gen::<u64>(),
        rng.gen::<u128>(),
        rng.gen::<u128>(),
        (i >> 32) as u32,
        (i >> 16) as u16,
        rng.gen::<u16>() & 0xfff,
        rng.gen::<u16>() & 0xfff,
        i & 0xffff_ffff_ffff,
        user,
        source,
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Appends `bodies` to a file in 1 MiB writes with an fsync after each: the floor any
/// durable ingest path pays for the same bytes.
fn raw_append_baseline(path: &Path, bodies: &[Vec<u8>]) -> anyhow::Result<(Duration, u64)> {
    let mut file = std::fs::File::create(path)?;
    let started = Instant::now();
    let mut pending = 0usize;
    let mut total = 0u64;
    for body in bodies {
        file.write_all(body)?;
        pending += body.len();
        total += body.len() as u64;
        if pending >= 1 << 20 {
            file.sync_data()?;
            pending = 0;
        }
    }
    file.sync_data()?;
    Ok((started.elapsed(), total))
}

fn peak_memory_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct ChildServer(std::process::Child);

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn metric(
    client: &reqwest::Client,
    credentials: &cairn_client::sign::Credentials,
    base: &str,
    name: &str,
) -> anyhow::Result<f64> {
    Ok(metrics(client, credentials, base, &[name]).await?[0])
}

/// The sums of the samples of each of `names` in one scrape of `/metrics`.
async fn metrics(
    client: &reqwest::Client,
    credentials: &cairn_client::sign::Credentials,
    base: &str,
    names: &[&str],
) -> anyhow::Result<Vec<f64>> {
    use cairn_client::sign::SendSigned;
    let text = client
        .get(format!("{base}/metrics"))
        .send_signed_with(credentials)
        .await?
        .text()
        .await?;
    Ok(names
        .iter()
        .map(|name| {
            text.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        })
        .collect())
}

async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.batch == 0 || args.events == 0 {
        bail!("--events, --clients and --batch must be at least 1");
    }
    let scratch = tempfile::Builder::new()
        .prefix("cairn-bench-")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let mut rng = StdRng::seed_from_u64(42);
    let time = cairn_model::time::format_utc_seconds(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64,
    );
    eprintln!("generating {} events...", args.events);
    let events: Vec<String> = (0..args.events as u64)
        .map(|i| sample_event(&mut rng, i, &time))
        .collect();
    let event_bytes = events.iter().map(String::len).sum::<usize>() as f64 / events.len() as f64;
    let bodies: Vec<Vec<u8>> = events
        .chunks(args.batch)
        .map(|chunk| {
            let mut body = Vec::new();
            body.push(b'[');
            body.extend_from_slice(chunk.join(",").as_bytes());
            body.push(b']');
            body
        })
        .collect();
    drop(events);

    eprintln!("baseline: raw fsync'd append of the same bytes...");
    let (raw_elapsed, raw_bytes) =
        raw_append_baseline(&scratch.path().join("raw-append.bin"), &bodies)?;
    std::fs::remove_file(scratch.path().join("raw-append.bin"))?;

    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let exe = std::env::current_exe()?;
    let child = std::process::Command::new(exe)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(scratch.path().join("data"))
        .env("CAIRN_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting cairn serve")?;
    let server = ChildServer(child);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let started = Instant::now();
    loop {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("server did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server wrote its administrator credential at first start.
    let credentials =
        cairn_client::sign::from_file(&scratch.path().join("data/admin-credentials"), "default")?
            .context("the server wrote no admin-credentials")?;

    eprintln!(
        "sending {} requests of {} events from {} clients...",
        bodies.len(),
        args.batch,
        args.clients
    );
    let bodies = std::sync::Arc::new(bodies);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (client, bodies, next, url, credentials) = (
            client.clone(),
            bodies.clone(),
            next.clone(),
            format!("{base}/v1/events"),
            credentials.clone(),
        );
        tasks.push(tokio::spawn(async move {
            use cairn_client::sign::SendSigned;
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    return Ok::<_, anyhow::Error>(latencies);
                };
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send_signed_with(&credentials)
                    .await?;
                let status = response.status();
                let text = response.bytes().await?;
                if !status.is_success() {
                    bail!(
                        "request failed: {status}: {}",
                        String::from_utf8_lossy(&text)
                    );
                }
                latencies.push(sent.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let accepted = metric(&client, &credentials, &base, "cairn_events_accepted_total").await?;
    if accepted as usize != args.events {
        bail!(
            "server accepted {accepted} events, expected {}",
            args.events
        );
    }
    let index_started = Instant::now();
    while metric(&client, &credentials, &base, "cairn_history_indexed_total").await?
        < args.events as f64
    {
        if index_started.elapsed() > Duration::from_secs(600) {
            bail!("history indexing did not catch up");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let index_catch_up = index_started.elapsed();
    let peak = peak_memory_kib(server.0.id()).unwrap_or(0);
    drop(server);

    let rate = args.events as f64 / elapsed.as_secs_f64();
    let mb = raw_bytes as f64 / 1e6;
    let raw_rate_mb = mb / raw_elapsed.as_secs_f64();
    let raw_events = args.events as f64 / raw_elapsed.as_secs_f64();
    println!(
        "cairn bench ingest: {} events of {:.0} bytes, {} clients x {} events/request",
        args.events, event_bytes, args.clients, args.batch
    );
    println!("  cairn ingest:     {rate:>10.0} events/s  {:>7.1} MB/s  ack p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        mb / elapsed.as_secs_f64(), ms(percentile(&latencies, 50.0)), ms(percentile(&latencies, 99.0)), ms(percentile(&latencies, 100.0)));
    println!("  raw append+fsync: {raw_events:>10.0} events/s  {raw_rate_mb:>7.1} MB/s  (1 MiB writes, fsync per MiB, same bytes)");
    println!("  ratio cairn/raw:  {:.3}", rate / raw_events);
    println!(
        "  history indexing caught up {:.2} s after the last acknowledgement",
        index_catch_up.as_secs_f64()
    );
    println!(
        "  server peak memory (VmHWM): {:.1} MiB",
        peak as f64 / 1024.0
    );
    Ok(())
}

/// Makes one lookup of a shape from random inputs.
type QueryMaker = Box<dyn Fn(&mut StdRng) -> LookupQuery>;

fn lookup(args: LookupArgs) -> anyhow::Result<()> {
    let owned_dir;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            owned_dir = tempfile::Builder::new()
                .prefix("cairn-bench-lookup-")
                .tempdir()?;
            owned_dir.path().to_path_buf()
        }
    };
    let name = format!("history-{}-{}d-{}", args.events, args.span_days, args.batch);
    let path = dir.join(format!("{name}.redb"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let day = cairn_history::DAY_MS;
    let config = HistoryConfig::default();
    let reuse = path.exists() && std::fs::read_to_string(dir.join(format!("{name}.done"))).is_ok();
    let store = HistoryStore::open(&path, &config)?;
    if !reuse {
        eprintln!(
            "building a history of {} events over {} days (4 regions), {} per batch...",
            args.events, args.span_days, args.batch
        );
        let mut rng = StdRng::seed_from_u64(7);
        let started = Instant::now();
        // One day: from midnight UTC to now, every event in today's tables (as under
        // sustained ingest).
        let span = match args.span_days {
            1 => (now - now.div_euclid(day) * day).max(1),
            days => i64::from(days) * day,
        };
        let batch = args.batch as usize;
        let mut seq = store.applied_seq()?;
        let mut done = seq as usize;
        let mut last_line = (done, Instant::now());
        // The baseline for size: the same events gzipped at level 6, one batch in ten.
        let (mut sampled_events, mut sampled_json, mut sampled_gzip) = (0u64, 0u64, 0u64);
        while done < args.events {
            let n = batch.min(args.events - done);
            let records: Vec<String> = (0..n)
                .map(|i| {
                    let k = (done + i) as i64;
                    // Oldest first, evenly over the span.
                    let t = now - span + k * span / args.events as i64;
                    sample_event(
                        &mut rng,
                        (done + i) as u64,
                        &cairn_model::time::format_utc_seconds(t),
                    )
                })
                .collect();
            let items: Vec<IndexItem<'_>> = records
                .iter()
                .map(|r| {
                    seq += 1;
                    IndexItem {
                        seq,
                        record: r.as_bytes(),
                        digest: cairn_model::event::producer_digest(r.as_bytes()),
                        provenance: &[],
                        view: None,
                    }
                })
                .collect();
            store.index_batch(&items, now)?;
            if (done / batch).is_multiple_of(10) {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
                for r in &records {
                    std::io::Write::write_all(&mut gz, r.as_bytes())?;
                    std::io::Write::write_all(&mut gz, b"\n")?;
                }
                sampled_gzip += gz.finish()?.len() as u64;
                sampled_json += records.iter().map(|r| r.len() as u64 + 1).sum::<u64>();
                sampled_events += n as u64;
            }
            done += n;
            if done % 500_000 < batch {
                eprintln!(
                    "  {done} events, {:.0} events/s ({:.0} since the last line)",
                    done as f64 / started.elapsed().as_secs_f64(),
                    (done - last_line.0) as f64 / last_line.1.elapsed().as_secs_f64()
                );
                last_line = (done, Instant::now());
            }
        }
        let merging = Instant::now();
        let days = store.compact(now)?;
        eprintln!(
            "merged the posting chunks of {days} closed days in {:.1} s (as the server does hourly)",
            merging.elapsed().as_secs_f64()
        );
        std::fs::write(
            dir.join(format!("{name}.done")),
            format!("{sampled_events} {sampled_json} {sampled_gzip}"),
        )?;
        eprintln!("built in {:.1} s", started.elapsed().as_secs_f64());
    }
    let size = std::fs::metadata(&path)?.len();
    let sampled: Vec<u64> = std::fs::read_to_string(dir.join(format!("{name}.done")))?
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let mut rng = StdRng::seed_from_u64(9);
    // Ids of real events, from the newest page of each region and a page 40 days back.
    let mut known_ids = Vec::new();
    for region in REGIONS {
        for end in [now, now - 40 * day] {
            let mut query = LookupQuery::region(*region);
            query.end_time = Some(end);
            for event in store.lookup(&query, now)?.events {
                known_ids.push((region.to_string(), event.view.event_id));
            }
        }
    }
    if known_ids.is_empty() {
        bail!("the history store holds no events");
    }
    let shapes: Vec<(&str, QueryMaker)> = vec![
        (
            "newest page, no attribute",
            Box::new(|_| LookupQuery::region("us-east-1")),
        ),
        (
            "EventName (1 in 12)",
            Box::new(|rng: &mut StdRng| {
                let mut q = LookupQuery::region("us-east-1");
                q.attribute = Some((
                    AttributeKey::EventName,
                    NAMES[rng.gen_range(0..NAMES.len())].to_owned(),
                ));
                q
            }),
        ),
        (
            "Username (1 in 2000)",
            Box::new(|rng: &mut StdRng| {
                let mut q = LookupQuery::region("eu-west-1");
                q.attribute = Some((
                    AttributeKey::Username,
                    format!("user-{:04}", rng.gen_range(0..2000)),
                ));
                q
            }),
        ),
        (
            "EventName in a 1-hour window 30 days ago",
            Box::new(move |rng: &mut StdRng| {
                let mut q = LookupQuery::region("us-west-2");
                let end = now - 30 * day - rng.gen_range(0..day);
                q.start_time = Some(end - 3_600_000);
                q.end_time = Some(end);
                q.attribute = Some((
                    AttributeKey::EventName,
                    NAMES[rng.gen_range(0..NAMES.len())].to_owned(),
                ));
                q
            }),
        ),
        (
            "EventId (existing events)",
            Box::new(move |rng: &mut StdRng| {
                let (region, id) = &known_ids[rng.gen_range(0..known_ids.len())];
                let mut q = LookupQuery::region(region.clone());
                q.attribute = Some((AttributeKey::EventId, id.clone()));
                q
            }),
        ),
    ];
    println!("cairn bench lookup: {} events in history ({:.1} GiB store), {} lookups per shape, page size 50", args.events, size as f64 / (1u64 << 30) as f64, args.lookups);
    for part in store.space()? {
        println!(
            "  {:<9} {:>6.0} bytes/event in {:>8} pages: stored {:.0}, page structure {:.0}, unused {:.0}",
            part.part,
            // What the pages hold (a block's leaf is larger than 4 KiB: pages times 4 KiB
            // would undercount it).
            (part.stored_bytes + part.metadata_bytes + part.fragmented_bytes) as f64
                / args.events as f64,
            part.pages,
            part.stored_bytes as f64 / args.events as f64,
            part.metadata_bytes as f64 / args.events as f64,
            part.fragmented_bytes as f64 / args.events as f64,
        );
    }
    // A store built before this figure was kept has no sample.
    if let [events, json, gzip] = sampled[..] {
        let store = size as f64 / args.events as f64;
        let gzip = gzip as f64 / events as f64;
        println!(
            "  store {store:.0} bytes/event; the events as JSON {:.0} bytes/event, gzipped (level 6) {gzip:.0} bytes/event; store / gzip {:.2}",
            json as f64 / events as f64,
            store / gzip
        );
    }
    for (name, make) in &shapes {
        let mut times = Vec::with_capacity(args.lookups);
        let mut results = 0;
        for i in 0..args.lookups {
            let mut query = make(&mut rng);
            // Every fourth lookup fetches the second page, to include token paging.
            let first = store.lookup(&query, now)?;
            if i % 4 == 3 && first.next_token.is_some() {
                query.next_token = first.next_token;
            }
            let started = Instant::now();
            let page = store.lookup(&query, now)?;
            times.push(started.elapsed());
            results += page.events.len();
        }
        times.sort_unstable();
        println!(
            "  {name:<42} p50 {:>7.3} ms  p99 {:>7.3} ms  (avg {:.1} results/page)",
            ms(percentile(&times, 50.0)),
            ms(percentile(&times, 99.0)),
            results as f64 / args.lookups as f64
        );
    }
    // Baseline: a bare point read of one id from the same store.
    let mut times = Vec::new();
    for _ in 0..args.lookups {
        let id = format!("{:08x}", rng.gen::<u32>());
        let started = Instant::now();
        let _ = store.recorded_id(&id)?;
        times.push(started.elapsed());
    }
    times.sort_unstable();
    println!(
        "  baseline: one redb point read              p50 {:>7.3} ms  p99 {:>7.3} ms",
        ms(percentile(&times, 50.0)),
        ms(percentile(&times, 99.0))
    );
    Ok(())
}

/// CPU time (user + system) of this process so far.
pub(crate) fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

struct QuietObserver;

impl cairn_delivery::DeliveryObserver for QuietObserver {
    fn delivered(&self, _: &cairn_catalog::Trail, _: &cairn_delivery::FlushReport) {}
    fn failed(&self, trail: &cairn_catalog::Trail, error: &str) {
        eprintln!("delivery of {} failed: {error}", trail.name);
    }
    fn lag(&self, _: &cairn_catalog::Trail, _: u64) {}
    fn digest_delivered(&self, _: &cairn_catalog::Trail, _: &str) {}
    fn digest_failed(&self, trail: &cairn_catalog::Trail, error: &str) {
        eprintln!("digest delivery of {} failed: {error}", trail.name);
    }
}

fn delivery(args: DeliveryArgs) -> anyhow::Result<()> {
    use std::sync::Arc;
    let scratch = tempfile::Builder::new()
        .prefix("cairn-bench-delivery-")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let (wal, _) = cairn_wal::Wal::open(
        &scratch.path().join("wal"),
        Arc::new(cairn_wal::fs::StdFs),
        cairn_wal::WalConfig::default(),
        Arc::new(cairn_wal::NoopObserver),
    )?;
    let wal = Arc::new(wal);
    eprintln!("writing {} events to the WAL...", args.events);
    let mut rng = StdRng::seed_from_u64(11);
    let time = cairn_model::time::format_utc_seconds(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64,
    );
    let mut records = Vec::with_capacity(args.events);
    for chunk_start in (0..args.events).step_by(1000) {
        let chunk: Vec<Vec<u8>> = (chunk_start..(chunk_start + 1000).min(args.events))
            .map(|i| sample_event(&mut rng, i as u64, &time).into_bytes())
            .collect();
        let payloads = chunk
            .iter()
            .map(|r| {
                let map: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(r).expect("sample events are JSON objects");
                let fields = cairn_model::fields::SelectionFields::from_map(&map);
                cairn_model::payload::encode(
                    &cairn_model::event::producer_digest(r),
                    &fields,
                    &cairn_model::provenance::Provenance::Unknown,
                    None,
                    r,
                )
            })
            .collect();
        wal.append_blocking(payloads)?;
        records.extend(chunk);
    }
    let uncompressed: usize = records.iter().map(|r| r.len() + 1).sum();

    // Baseline: raw gzip, same level, same bytes, one core.
    // Measured before and after the delivery run; the mean is the baseline (this machine's
    // speed drifts between runs).
    let json = cairn_logfile::body::records_json(&records);
    let started = Instant::now();
    let gz = cairn_logfile::body::gzip(&json);
    let gzip_before = started.elapsed();

    let mut trail = cairn_trail::Trail::logging_to_directory(
        "bench",
        "bench",
        "123456789012",
        "us-east-1",
        scratch.path().join("bucket"),
    );
    trail.scope.is_multi_region_trail = true;
    let store = cairn_store::local(&scratch.path().join("bucket"))?;
    let config = cairn_delivery::DeliveryConfig {
        interval: Duration::from_secs(3600),
        max_file_bytes: 48 << 20,
        account_id: "123456789012".into(),
        journal_dir: scratch.path().join("journal"),
        abort_after_upload: false,
        // The benchmark trail has no log file validation.
        digests: None,
    };
    // Breakdown of the non-gzip stages, measured separately.
    let started = Instant::now();
    let mut reader = wal.reader(0);
    let mut read = 0;
    while read < args.events {
        read += reader.read_batch(4096, 8 << 20)?.len();
    }
    let wal_read = started.elapsed();
    let started = Instant::now();
    for record in &records {
        let subject =
            cairn_selectors::Subject::from_record(record).map_err(|e| anyhow::anyhow!(e))?;
        std::hint::black_box(cairn_selectors::Selectors::default().matches(&subject));
    }
    let select = started.elapsed();
    let per_event = |d: Duration| d.as_secs_f64() * 1e6 / args.events as f64;

    let cpu_before = process_cpu();
    let started = Instant::now();
    let handle = cairn_delivery::TrailWorker::spawn(
        trail,
        wal.clone(),
        store,
        Arc::new(cairn_model::SystemClock),
        config,
        Arc::new(QuietObserver),
    )?;
    let report = handle
        .flush()
        .recv_timeout(Duration::from_secs(600))?
        .map_err(|e| anyhow::anyhow!(e))?;
    let elapsed = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    handle.stop();
    let started = Instant::now();
    std::hint::black_box(cairn_logfile::body::gzip(&json));
    let gzip_after = started.elapsed();
    drop(json);
    let gzip_elapsed = (gzip_before + gzip_after) / 2;
    if report.events != args.events {
        bail!(
            "delivered {} events, expected {}",
            report.events,
            args.events
        );
    }
    let mb = uncompressed as f64 / 1e6;
    let cores = (cpu.as_secs_f64() / elapsed.as_secs_f64()).max(0.01);
    let delivery_mb_s = mb / elapsed.as_secs_f64();
    let gzip_mb_s = mb / gzip_elapsed.as_secs_f64();
    println!(
        "cairn bench delivery: {} events ({:.1} MB of JSON), gzip level {}, local directory",
        args.events,
        mb,
        cairn_logfile::body::LEVEL
    );
    println!(
        "  delivery (WAL -> select -> group -> gzip -> files): {:>9.0} events/s  {:>6.1} MB/s  {} files, {:.1} MB written, {:.2} cores used",
        args.events as f64 / elapsed.as_secs_f64(),
        delivery_mb_s,
        report.files,
        report.bytes as f64 / 1e6,
        cores
    );
    println!(
        "  raw gzip of the same bytes (one core, mean of before and after): {:>9.0} events/s  {:>6.1} MB/s  ({:.1} MB out)",
        args.events as f64 / gzip_elapsed.as_secs_f64(),
        gzip_mb_s,
        gz.len() as f64 / 1e6
    );
    println!(
        "  delivery per core / raw gzip: {:.2}",
        delivery_mb_s / cores / gzip_mb_s
    );
    println!(
        "  stages: gzip {:.2} us/event, WAL read {:.2} us/event, selection (parse + match) {:.2} us/event",
        per_event(gzip_elapsed),
        per_event(wal_read),
        per_event(select)
    );
    Ok(())
}
