//! `cairn bench soak`: sustained signed ingest at a steady rate (by default 80% of the maximum
//! acknowledged rate, measured first in the same run), with what the server does over time:
//! per sample period the acknowledged events/s, acknowledgement p99, Event history's lag (events
//! acknowledged and not yet indexed), the WAL's size, the server's resident memory (and its
//! anonymous part), and the data
//! directory's bytes per event.

use crate::{ms, percentile, sample_event};
use anyhow::{bail, Context};
use cairn_client::sign::{Credentials, SendSigned};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `cairn bench soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// How long to hold the rate, in minutes (fractions allowed).
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Events per second to hold; default: 80% of the rate acknowledged in a first, unthrottled
    /// `--calibrate-seconds` of the same run.
    #[arg(long)]
    rate: Option<f64>,
    /// Length of the unthrottled calibration, seconds.
    #[arg(long, default_value_t = 20)]
    calibrate_seconds: u64,
    /// Seconds between two samples (a row each).
    #[arg(long, default_value_t = 60)]
    sample_seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Directory for the server's data (a fresh subdirectory; default: the system's temp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// `table` (default) or `json`.
    #[arg(long, default_value = "table")]
    output: String,
}

/// What the clients share.
struct Load {
    next_id: AtomicU64,
    acked: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
    failures: AtomicU64,
}

/// Sends signed batches until `stop`, each client pacing itself to `rate / clients` events/s
/// (`None`: as fast as acknowledged).
async fn drive(
    base: &str,
    credentials: &Credentials,
    args: &SoakArgs,
    rate: Option<f64>,
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let (client, url, credentials, load, stop) = (
            client.clone(),
            format!("{base}/v1/events"),
            credentials.clone(),
            load.clone(),
            stop.clone(),
        );
        let batch = args.batch;
        let interval =
            rate.map(|r| Duration::from_secs_f64(batch as f64 * args.clients as f64 / r));
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(c as u64 + 1);
            let mut ticker = interval.map(|i| {
                let mut t = tokio::time::interval(i);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            while !stop.load(Ordering::Relaxed) {
                if let Some(t) = ticker.as_mut() {
                    t.tick().await;
                }
                let now = cairn_model::time::format_utc_seconds(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64),
                );
                let first = load.next_id.fetch_add(batch as u64, Ordering::Relaxed);
                let events: Vec<String> = (first..first + batch as u64)
                    .map(|i| sample_event(&mut rng, i, &now))
                    .collect();
                let body = format!("[{}]", events.join(","));
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send_signed_with(&credentials)
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        load.acked.fetch_add(batch as u64, Ordering::Relaxed);
                        load.latencies
                            .lock()
                            .expect("latencies")
                            .push(sent.elapsed());
                    }
                    _ => {
                        // 503 (backpressure) and the like: counted; the load goes on.
                        load.failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(())
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The server's resident memory in MiB: all of it, and its anonymous part (heap and stacks;
/// the rest is file-backed pages, such as the WAL's and redb's, which the kernel can drop).
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// Events acknowledged and not yet in Event history, from the server's counters.
async fn history_lag(
    client: &reqwest::Client,
    credentials: &Credentials,
    base: &str,
) -> anyhow::Result<f64> {
    // One scrape for both counters, so that they are of the same moment.
    let counts = crate::metrics(
        client,
        credentials,
        base,
        &["cairn_events_accepted_total", "cairn_history_indexed_total"],
    )
    .await?;
    Ok((counts[0] - counts[1]).max(0.0))
}

/// Runs the soak.
type Driver = (
    Arc<Load>,
    Arc<AtomicBool>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

/// Starts [`drive`] against `server` at `rate` (`None`: unthrottled), numbering events from
/// `first_id`: its load counters, its stop flag and its task.
fn spawn_driver(
    server: &crate::bench_faults::Server,
    args: &SoakArgs,
    rate: Option<f64>,
    first_id: u64,
) -> Driver {
    let load = Arc::new(Load {
        next_id: AtomicU64::new(first_id),
        acked: AtomicU64::new(0),
        latencies: Mutex::new(Vec::new()),
        failures: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let (base, credentials, args) = (
        server.base.clone(),
        server.credentials.clone(),
        args.clone(),
    );
    let task = {
        let (load, stop) = (load.clone(), stop.clone());
        tokio::spawn(async move { drive(&base, &credentials, &args, rate, load, stop).await })
    };
    (load, stop, task)
}

pub async fn soak(args: SoakArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.batch == 0 || args.sample_seconds == 0 || args.minutes <= 0.0 {
        bail!("--clients, --batch, --sample-seconds and --minutes must be positive");
    }
    let scratch = tempfile::Builder::new()
        .prefix("cairn-soak-")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let data = scratch.path().join("data");
    let server = crate::bench_faults::Server::start(&[], scratch.path(), &data, "").await?;
    let pid = server.pid().context("the server has no process")?;
    let metrics_client = reqwest::Client::new();

    // Calibration: unthrottled, as fast as acknowledged.
    let target = match args.rate {
        Some(rate) => rate,
        None => {
            let started = Instant::now();
            let (load, stop, driver) = spawn_driver(&server, &args, None, 0);
            tokio::time::sleep(Duration::from_secs(args.calibrate_seconds)).await;
            stop.store(true, Ordering::Relaxed);
            driver.await??;
            let max = load.acked.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
            eprintln!("calibration: {max:.0} events/s acknowledged unthrottled; soaking at 80%");
            // Let history drain before the soak starts.
            let deadline = Instant::now() + Duration::from_secs(600);
            while history_lag(&metrics_client, &server.credentials, &server.base).await? > 0.0
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            0.8 * max
        }
    };

    // Event ids apart from the calibration's.
    let (load, stop, driver) = spawn_driver(&server, &args, Some(target), 1 << 40);
    let started = Instant::now();
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let mut rows: Vec<Value> = Vec::new();
    let mut all_latencies: Vec<Duration> = Vec::new();
    let mut lags: Vec<f64> = Vec::new();
    let mut acked_before = 0u64;
    let mut period_start = Instant::now();
    let mut next_sample = Instant::now() + Duration::from_secs(args.sample_seconds);
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        lags.push(history_lag(&metrics_client, &server.credentials, &server.base).await?);
        if Instant::now() < next_sample && started.elapsed() < duration {
            continue;
        }
        next_sample += Duration::from_secs(args.sample_seconds);
        let acked = load.acked.load(Ordering::Relaxed);
        let mut latencies = std::mem::take(&mut *load.latencies.lock().expect("latencies"));
        latencies.sort_unstable();
        let seconds = period_start.elapsed().as_secs_f64();
        period_start = Instant::now();
        let lag = *lags.last().unwrap_or(&0.0);
        let (rss, rss_anon) = rss_mib(pid);
        rows.push(json!({
            "elapsedSeconds": started.elapsed().as_secs(),
            "eventsPerSecond": (acked - acked_before) as f64 / seconds,
            "ackP99Ms": ms(percentile(&latencies, 99.0)),
            "historyLagEvents": lag,
            "walMib": dir_bytes(&data.join("wal")) as f64 / (1 << 20) as f64,
            "rssMib": rss,
            "rssAnonMib": rss_anon,
            "dataBytesPerEvent": dir_bytes(&data) as f64 / acked.max(1) as f64,
            "refusedRequests": load.failures.load(Ordering::Relaxed),
        }));
        acked_before = acked;
        all_latencies.extend(latencies);
    }
    stop.store(true, Ordering::Relaxed);
    driver.await??;
    all_latencies.sort_unstable();
    let mut sorted_lags = lags.clone();
    sorted_lags.sort_by(f64::total_cmp);
    let pick = |p: f64| -> f64 {
        if sorted_lags.is_empty() {
            0.0
        } else {
            sorted_lags[((sorted_lags.len() - 1) as f64 * p / 100.0).round() as usize]
        }
    };
    let acked = load.acked.load(Ordering::Relaxed);
    let summary = json!({
        "targetEventsPerSecond": target,
        "acknowledgedEventsPerSecond": acked as f64 / started.elapsed().as_secs_f64(),
        "acknowledged": acked,
        "ackP99Ms": ms(percentile(&all_latencies, 99.0)),
        "historyLagP99Events": pick(99.0),
        "historyLagMaxEvents": pick(100.0),
        "historyLagP99Seconds": pick(99.0) / target.max(1.0),
        "refusedRequests": load.failures.load(Ordering::Relaxed),
        "rows": rows,
    });
    drop(server);
    if args.output == "json" {
        println!("{summary}");
        return Ok(());
    }
    println!(
        "cairn bench soak: {:.1} min at {:.0} events/s ({} clients x {} events/request)",
        args.minutes, target, args.clients, args.batch
    );
    println!("| elapsed s | events/s | ack p99 ms | history lag (events) | WAL MiB | RSS MiB (anonymous) | data bytes/event | refused |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in summary["rows"].as_array().into_iter().flatten() {
        println!(
            "| {} | {:.0} | {:.1} | {:.0} | {:.1} | {:.0} ({:.0}) | {:.0} | {} |",
            r["elapsedSeconds"],
            r["eventsPerSecond"].as_f64().unwrap_or(0.0),
            r["ackP99Ms"].as_f64().unwrap_or(0.0),
            r["historyLagEvents"].as_f64().unwrap_or(0.0),
            r["walMib"].as_f64().unwrap_or(0.0),
            r["rssMib"].as_f64().unwrap_or(0.0),
            r["rssAnonMib"].as_f64().unwrap_or(0.0),
            r["dataBytesPerEvent"].as_f64().unwrap_or(0.0),
            r["refusedRequests"],
        );
    }
    println!(
        "acknowledged {:.0} events/s overall, ack p99 {:.1} ms; history lag p99 {:.0} events (≈ {:.1} s at the target rate), max {:.0}",
        summary["acknowledgedEventsPerSecond"].as_f64().unwrap_or(0.0),
        summary["ackP99Ms"].as_f64().unwrap_or(0.0),
        pick(99.0),
        pick(99.0) / target.max(1.0),
        pick(100.0)
    );
    Ok(())
}
