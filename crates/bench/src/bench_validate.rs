//! `cairn bench validate`: `validate-logs` over a generated tree of at least 1 GB of log files
//! (uncompressed), beside the same work done with standard tools in the same run — each file
//! through `zcat FILE | openssl dgst -sha256`, one after another and two at a time — and,
//! when an S3-compatible endpoint and the AWS CLI are given, beside
//! `aws cloudtrail validate-logs` on the same tree served from that endpoint (with Cairn, in
//! this process, answering the CloudTrail calls).

use crate::{process_cpu, sample_event};
use anyhow::{bail, Context};
use cairn_digest::producer::{produce, DeliveredLog, PreviousDigest};
use cairn_digest::SigningKey;
use cairn_logfile::keys::{DigestKey, FileKind, LogFileKey};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOUR: i64 = 3_600_000;
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const TRAIL: &str = "bench";

#[derive(Debug, clap::Args)]
pub struct ValidateBenchArgs {
    /// Uncompressed bytes of log files to generate.
    #[arg(long, default_value_t = 1_100_000_000)]
    bytes: u64,
    /// Records per log file (about 1.2 KB each).
    #[arg(long, default_value_t = 4000)]
    records_per_file: usize,
    /// Scratch directory (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The AWS CLI (`aws`) to compare with; needs --s3-endpoint.
    #[arg(long)]
    aws_cli: Option<PathBuf>,
    /// An S3-compatible endpoint on this machine (e.g. `moto_server` on 127.0.0.1) to serve the
    /// tree to the AWS CLI, with any credentials accepted.
    #[arg(long)]
    s3_endpoint: Option<String>,
}

struct Tree {
    root: PathBuf,
    /// A fresh name per run, so a reused S3 endpoint never holds an older tree under it.
    bucket: String,
    start: i64,
    end: i64,
    files: Vec<String>,
    digests: Vec<(String, Vec<u8>, String)>,
    uncompressed: u64,
    compressed: u64,
}

/// Generates the tree: log files of `records_per_file` events, twelve per hour, hourly digests.
fn generate(args: &ValidateBenchArgs, root: &Path, key: &SigningKey) -> anyhow::Result<Tree> {
    let now = cairn_model::Clock::now_millis(&cairn_model::SystemClock);
    let end = now.div_euclid(HOUR) * HOUR;
    let mut rng = StdRng::seed_from_u64(7);
    let probe = sample_event(&mut rng, 0, "2026-01-01T00:00:00Z").len() as u64 + 1;
    let files = (args.bytes / (probe * args.records_per_file as u64)).max(1) as usize + 1;
    let hours = files.div_ceil(12) as i64;
    let start = end - hours * HOUR;
    let mut tree = Tree {
        root: root.to_owned(),
        bucket: format!("cairn-bench-{}", now / 1000),
        start,
        end,
        files: Vec::new(),
        digests: Vec::new(),
        uncompressed: 0,
        compressed: 0,
    };
    let mut previous: Option<PreviousDigest> = None;
    let mut n = 0u64;
    for hour in 0..hours {
        let window = start + hour * HOUR;
        let mut delivered = Vec::new();
        for slot in 0..12 {
            if tree.files.len() >= files {
                break;
            }
            let at = window + slot * 300_000 + 60_000;
            let time = cairn_model::time::format_utc_seconds(at);
            let records: Vec<String> = (0..args.records_per_file)
                .map(|_| {
                    n += 1;
                    sample_event(&mut rng, n, &time)
                })
                .collect();
            let key = LogFileKey {
                prefix: None,
                org_id: None,
                account: ACCOUNT.into(),
                region: REGION.into(),
                kind: FileKind::Log,
                delivered_at: at,
                unique: format!("{:016X}", tree.files.len()),
            }
            .to_string();
            let (gz, hash) = cairn_logfile::body::encode_hashed(&records);
            tree.uncompressed += records.iter().map(|r| r.len() as u64 + 1).sum::<u64>() + 13;
            tree.compressed += gz.len() as u64;
            let path = root.join(&key);
            std::fs::create_dir_all(path.parent().context("parent")?)?;
            std::fs::write(&path, &gz)?;
            delivered.push(DeliveredLog {
                key: key.clone(),
                sha256_hex: hash,
                newest_event_time: time.clone(),
                oldest_event_time: time,
            });
            tree.files.push(key);
        }
        let digest_key = DigestKey {
            prefix: None,
            org_id: None,
            account: ACCOUNT.into(),
            region: REGION.into(),
            trail_name: TRAIL.into(),
            home_region: REGION.into(),
            end_time: window + HOUR,
            backfill: false,
        };
        let produced = produce(
            &digest_key,
            &tree.bucket,
            &cairn_model::time::format_utc_seconds(window),
            &delivered,
            previous.as_ref(),
            key,
        );
        let path = root.join(&produced.key);
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        let gz = cairn_logfile::body::gzip(&produced.bytes);
        std::fs::write(&path, &gz)?;
        let sidecar = serde_json::json!({"signature": produced.signature, "signature-algorithm": "SHA256withRSA"});
        std::fs::write(
            format!("{}{}", path.display(), cairn_store::SIDECAR_SUFFIX),
            sidecar.to_string(),
        )?;
        tree.digests
            .push((produced.key.clone(), gz, produced.signature.clone()));
        previous = Some(produced.as_previous);
    }
    Ok(tree)
}

fn request(
    tree: &Tree,
    store: Arc<dyn object_store::ObjectStore>,
    metadata: cairn_store::MetadataStyle,
    key: &SigningKey,
) -> cairn_validate::Request {
    cairn_validate::Request {
        store,
        metadata,
        bucket: tree.bucket.clone(),
        prefix: None,
        org_id: None,
        account: ACCOUNT.into(),
        region: REGION.into(),
        trail_name: TRAIL.into(),
        home_region: REGION.into(),
        start_ms: tree.start,
        end_ms: tree.end,
        period_ms: HOUR,
        due_until_ms: tree.end,
        keys: HashMap::from([(key.public_key().fingerprint(), key.public_key())]),
        logging: None,
    }
}

async fn run_cairn(
    tree: &Tree,
    request: &cairn_validate::Request,
) -> anyhow::Result<(Duration, Duration)> {
    let cpu_before = process_cpu();
    let started = Instant::now();
    let outcome =
        cairn_validate::run(request, Arc::new(cairn_validate::Progress::default())).await?;
    let elapsed = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    let valid_logs = outcome
        .lines
        .iter()
        .filter(|(_, f)| *f == cairn_digest::validate::Finding::LogValid)
        .count();
    if !outcome.is_valid() || valid_logs != tree.files.len() {
        bail!(
            "the generated tree did not validate: {valid_logs} of {} log files valid",
            tree.files.len()
        );
    }
    Ok((elapsed, cpu))
}

/// `zcat FILE | openssl dgst -sha256` for each file, `parallel` at a time; checks the hashes.
fn standard_tools(tree: &Tree, parallel: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let chunks: Vec<Vec<String>> = (0..parallel)
        .map(|i| {
            tree.files
                .iter()
                .skip(i)
                .step_by(parallel)
                .cloned()
                .collect()
        })
        .collect();
    let results: Vec<anyhow::Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|files| {
                scope.spawn(move || -> anyhow::Result<()> {
                    for key in files {
                        let output = std::process::Command::new("sh")
                            .args(["-c", "zcat \"$1\" | openssl dgst -sha256", "sh"])
                            .arg(tree.root.join(key))
                            .output()
                            .context("running zcat | openssl")?;
                        if !output.status.success() || output.stdout.len() < 64 {
                            bail!("zcat | openssl failed on {key}");
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("thread panicked")))
            })
            .collect()
    });
    for result in results {
        result?;
    }
    Ok(started.elapsed())
}

async fn upload(tree: &Tree, store: &dyn object_store::ObjectStore) -> anyhow::Result<()> {
    use futures::StreamExt;
    let root = tree.root.clone();
    futures::stream::iter(tree.files.clone())
        .map(|key| {
            let root = root.clone();
            async move {
                let bytes = tokio::fs::read(root.join(&key)).await?;
                cairn_store::put_create_only(store, &key, bytes.into()).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    for (key, gz, signature) in &tree.digests {
        let metadata: cairn_store::Metadata = [
            ("signature".to_owned(), signature.clone()),
            ("signature-algorithm".to_owned(), "SHA256withRSA".to_owned()),
        ]
        .into();
        cairn_store::put_create_only_with_metadata(
            store,
            key,
            gz.clone().into(),
            &metadata,
            cairn_store::MetadataStyle::ObjectMetadata,
        )
        .await?;
    }
    Ok(())
}

pub async fn validate(args: ValidateBenchArgs) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("cairn-bench-validate-")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let root = scratch.path().join("tree");
    let key = SigningKey::generate()?;
    eprintln!(
        "generating a tree of {:.2} GB of log files...",
        args.bytes as f64 / 1e9
    );
    let tree = {
        let (args_bytes, records) = (args.bytes, args.records_per_file);
        let (root, key) = (root.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            generate(
                &ValidateBenchArgs {
                    bytes: args_bytes,
                    records_per_file: records,
                    dir: None,
                    aws_cli: None,
                    s3_endpoint: None,
                },
                &root,
                &key,
            )
        })
        .await??
    };
    let mb = tree.uncompressed as f64 / 1e6;
    println!(
        "cairn bench validate: {} log files, {:.1} MB uncompressed ({:.1} MB gzip), {} hourly digests",
        tree.files.len(),
        mb,
        tree.compressed as f64 / 1e6,
        tree.digests.len()
    );
    // Warm the page cache for every contender alike.
    standard_tools(&tree, 2)?;
    let local = request(
        &tree,
        cairn_store::local(&root)?,
        cairn_store::MetadataStyle::Sidecar,
        &key,
    );
    let (cairn_time, cairn_cpu) = run_cairn(&tree, &local).await?;
    let sequential = standard_tools(&tree, 1)?;
    let two = standard_tools(&tree, 2)?;
    let (cairn_again, _) = run_cairn(&tree, &local).await?;
    let cairn_best = cairn_time.min(cairn_again);
    let rate = |d: Duration| mb / d.as_secs_f64();
    println!(
        "  cairn validate-logs (local directory): {:>7.1} MB/s  {:.2} s (best of 2)  {:.2} cores used",
        rate(cairn_best),
        cairn_best.as_secs_f64(),
        cairn_cpu.as_secs_f64() / cairn_time.as_secs_f64()
    );
    println!(
        "  zcat FILE | openssl dgst -sha256, file by file: {:>7.1} MB/s  {:.2} s",
        rate(sequential),
        sequential.as_secs_f64()
    );
    println!(
        "  the same, two files at a time:                  {:>7.1} MB/s  {:.2} s",
        rate(two),
        two.as_secs_f64()
    );
    println!(
        "  cairn / standard tools file by file: {:.2}x; / two at a time: {:.2}x",
        sequential.as_secs_f64() / cairn_best.as_secs_f64(),
        two.as_secs_f64() / cairn_best.as_secs_f64()
    );
    if let (Some(aws), Some(endpoint)) = (&args.aws_cli, &args.s3_endpoint) {
        aws_cli(&tree, aws, endpoint, &key, scratch.path(), cairn_best).await?;
    }
    Ok(())
}

async fn aws_cli(
    tree: &Tree,
    aws: &Path,
    endpoint: &str,
    key: &SigningKey,
    scratch: &Path,
    cairn_local: Duration,
) -> anyhow::Result<()> {
    let mb = tree.uncompressed as f64 / 1e6;
    let s3 = cairn_store::S3Config {
        endpoint: endpoint.to_owned(),
        region: REGION.into(),
        access_key_id: "bench".into(),
        secret_access_key: "bench".into(),
        allow_http: true,
        virtual_hosted_style: false,
    };
    let created = reqwest::Client::new()
        .put(format!(
            "{}/{}",
            endpoint.trim_end_matches('/'),
            tree.bucket
        ))
        .send()
        .await
        .context("creating the bench bucket")?;
    if !created.status().is_success() && created.status().as_u16() != 409 {
        bail!("creating the bench bucket: {}", created.status());
    }
    let store = cairn_store::s3(&s3, &tree.bucket)?;
    eprintln!("uploading the tree to {endpoint}...");
    upload(tree, store.as_ref()).await?;
    // Cairn serves ListPublicKeys with the tree's key (an operator key file).
    let pem = scratch.join("key.pem");
    std::fs::write(&pem, key.to_pem()?)?;
    let raw = cairn_server::config::RawConfig {
        data_dir: Some(scratch.join("server")),
        listen: Some("127.0.0.1:0".into()),
        account_id: Some(ACCOUNT.into()),
        region: Some(REGION.into()),
        signing_key_files: Some([(REGION.to_owned(), pem)].into()),
        ..Default::default()
    };
    let running = cairn_server::start(raw.resolve()?, Arc::new(cairn_model::SystemClock)).await?;
    let cairn = format!("http://{}", running.local_addr);
    // The AWS CLI signs with Cairn's administrator (moto accepts any credential).
    let admin =
        cairn_client::sign::from_file(&scratch.join("server/admin-credentials"), "default")?
            .context("the server wrote no admin-credentials")?;
    let (cairn_s3, _) = run_cairn(
        tree,
        &request(tree, store, cairn_store::MetadataStyle::ObjectMetadata, key),
    )
    .await?;
    let display = cairn_model::time::format_utc_seconds;
    let started = Instant::now();
    let mut command = std::process::Command::new(aws);
    command
        .args(["cloudtrail", "validate-logs", "--trail-arn"])
        .arg(format!(
            "arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/{TRAIL}"
        ))
        .args([
            "--start-time",
            &display(tree.start),
            "--end-time",
            &display(tree.end),
        ])
        .args(["--s3-bucket", &tree.bucket, "--region", REGION])
        .env("AWS_ENDPOINT_URL_S3", endpoint)
        .env("AWS_ENDPOINT_URL_CLOUDTRAIL", &cairn)
        .env("AWS_ACCESS_KEY_ID", &admin.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &admin.secret_access_key)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .context("running the AWS CLI")?;
    let aws_time = started.elapsed();
    running.shutdown().await;
    let text = String::from_utf8_lossy(&output.stdout);
    let expected = format!("{0}/{0} log files valid", tree.files.len());
    if !output.status.success() || !text.contains(&expected) {
        bail!(
            "the AWS CLI did not validate the tree: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    println!(
        "  cairn validate-logs (same tree on {endpoint}): {:>7.1} MB/s  {:.2} s",
        mb / cairn_s3.as_secs_f64(),
        cairn_s3.as_secs_f64()
    );
    println!(
        "  aws cloudtrail validate-logs (same S3 tree):     {:>7.1} MB/s  {:.2} s",
        mb / aws_time.as_secs_f64(),
        aws_time.as_secs_f64()
    );
    println!(
        "  cairn / AWS CLI: {:.1}x on the same S3 tree, {:.1}x from the local directory",
        aws_time.as_secs_f64() / cairn_s3.as_secs_f64(),
        aws_time.as_secs_f64() / cairn_local.as_secs_f64()
    );
    Ok(())
}
