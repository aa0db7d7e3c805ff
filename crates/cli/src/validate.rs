//! `cairn validate-logs` (the AWS CLI's arguments and output, stricter checks) and
//! `cairn keys list|rotate`.

use crate::client::{error_text, http, percent_encode};
use crate::sign::SendSigned;
use anyhow::{bail, Context};
use cairn_digest::validate::{Finding, ReportLine};
use cairn_digest::PublicKey;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValidateOutput {
    /// The AWS CLI's status lines and summary.
    Text,
    /// One JSON document.
    Json,
    /// The findings as a table (type, location, status, class), then each chain's verdict.
    Table,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The trail, `arn:<partition>:cloudtrail:<home-region>:<account>:trail/<name>`.
    #[arg(long)]
    trail_arn: String,
    /// Start of the window (`2026-03-02T10:00:00Z` or epoch seconds).
    #[arg(long)]
    start_time: String,
    /// End of the window [default: now].
    #[arg(long)]
    end_time: Option<String>,
    /// Bucket holding the files [default: the trail's, from the server].
    #[arg(long)]
    s3_bucket: Option<String>,
    /// Key prefix [default: the trail's].
    #[arg(long)]
    s3_prefix: Option<String>,
    /// Account whose files to validate (organization trails) [default: the ARN's].
    #[arg(long)]
    account_id: Option<String>,
    /// Source region to validate [default: the trail's home region].
    #[arg(long)]
    region: Option<String>,
    /// Organization id of an organization trail [default: the server's, for its trails].
    #[arg(long)]
    organization_id: Option<String>,
    /// Print every valid file too.
    #[arg(long)]
    verbose: bool,
    /// Validate a copied tree with no server: a directory (signatures in `<key>.metadata.json`
    /// sidecars, as Cairn writes local trails) or `s3://bucket[/prefix]` (S3 object metadata;
    /// endpoint and credentials from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
    #[arg(long)]
    source: Option<String>,
    /// Public keys from a file: the JSON `aws cloudtrail list-public-keys` (or
    /// `cairn keys list --output json`) prints [default: asked from the server].
    #[arg(long)]
    public_keys: Option<PathBuf>,
    /// Digest period of the trail's server (digest_period_seconds).
    #[arg(long, default_value_t = 3600)]
    digest_period_seconds: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ValidateOutput::Text)]
    output: ValidateOutput,
    /// Server endpoint (trail settings and public keys).
    #[arg(long, env = "CAIRN_ENDPOINT", default_value_t = crate::profile::endpoint())]
    endpoint: String,
}

/// Reads `2026-03-02T10:00:00Z`, `2026-03-02T10:00Z`, `2026-03-02` or epoch seconds.
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    parse_time_inner(text.trim()).with_context(|| {
        format!(
            "{text:?} is not a time like 2026-03-02, 2026-03-02T10:00:00Z, 2026-03-02T11:00+01:00 or epoch seconds"
        )
    })
}

/// ISO-8601 as people type it: a date alone (midnight UTC), or a date and time of day (`T` or a
/// space between; seconds and a fraction optional) with `Z`, an offset (`+01:00`, `-0500`) or
/// none (UTC); or epoch seconds.
fn parse_time_inner(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds.abs() < 1e13).then_some((seconds * 1000.0) as i64);
    }
    if text.len() == 10 {
        return cairn_model::time::parse_utc(&format!("{text}T00:00:00Z")).ok();
    }
    let text = text.replacen(' ', "T", 1);
    let time_part = text.get(11..)?;
    let (local, offset_ms) = if let Some(local) = text.strip_suffix('Z') {
        (local.to_owned(), 0)
    } else if let Some(at) = time_part.rfind(['+', '-']) {
        let (local, offset) = text.split_at(11 + at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let digits: String = offset[1..].chars().filter(char::is_ascii_digit).collect();
        if digits.len() != 2 && digits.len() != 4 {
            return None;
        }
        let hours: i64 = digits.get(..2)?.parse().ok()?;
        let minutes: i64 = digits
            .get(2..)
            .filter(|m| !m.is_empty())
            .map_or(Some(0), |m| m.parse().ok())?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        (local.to_owned(), sign * (hours * 60 + minutes) * 60_000)
    } else {
        (text.clone(), 0)
    };
    // HH:MM gets its seconds.
    let local = if local.len() == 16 {
        format!("{local}:00")
    } else {
        local
    };
    cairn_model::time::parse_utc(&format!("{local}Z"))
        .ok()
        .map(|millis| millis - offset_ms)
}

#[cfg(test)]
mod time_tests {
    use super::parse_time;

    #[test]
    fn times_are_read_as_people_type_them() {
        let noon = 1_772_452_800_000; // 2026-03-02T12:00:00Z
        for text in [
            "2026-03-02T12:00:00Z",
            "2026-03-02T12:00Z",
            "2026-03-02T12:00:00",
            "2026-03-02 12:00:00",
            "2026-03-02T13:00:00+01:00",
            "2026-03-02T07:00-0500",
            "2026-03-02T12:00:00.000Z",
            "1772452800",
        ] {
            assert_eq!(parse_time(text).expect(text), noon, "{text}");
        }
        assert_eq!(
            parse_time("2026-03-02").expect("date"),
            noon - 12 * 3_600_000
        );
        for bad in [
            "yesterday",
            "2026-03-02T25:00:00Z",
            "2026-02-30",
            "2026-03-02T12:00+1",
            "",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}

struct Arn {
    home_region: String,
    account: String,
    name: String,
}

fn parse_arn(arn: &str) -> anyhow::Result<Arn> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && parts[2] == "cloudtrail"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].starts_with("trail/")
        && parts[5].len() > "trail/".len();
    if !valid {
        bail!(
            "--trail-arn {arn:?} is not like arn:aws:cloudtrail:us-east-1:123456789012:trail/name"
        );
    }
    Ok(Arn {
        home_region: parts[3].to_owned(),
        account: parts[4].to_owned(),
        name: parts[5].rsplit('/').next().unwrap_or_default().to_owned(),
    })
}

fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

/// A bucket of an S3-compatible store. Its credentials are the store's, kept apart from the
/// Cairn key that signs calls to Cairn ([`crate::profile`]): `CAIRN_S3_ACCESS_KEY_ID` +
/// `CAIRN_S3_SECRET_ACCESS_KEY`, the Cairn profile's `s3_access_key_id` +
/// `s3_secret_access_key`, `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY`, the AWS shared
/// credentials file's profile. Endpoint: `CAIRN_S3_ENDPOINT`, the profile's `s3_endpoint`,
/// `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, else AWS's.
pub(crate) fn s3_from_env(bucket: &str) -> anyhow::Result<Arc<dyn object_store::ObjectStore>> {
    let profile = crate::profile::current()?;
    let from_profile = |key: &str| profile.get(key).cloned();
    let region = env_first(&["AWS_REGION", "AWS_DEFAULT_REGION"])
        .or_else(|| from_profile("region"))
        .unwrap_or("us-east-1".into());
    let endpoint = env_first(&["CAIRN_S3_ENDPOINT"])
        .or_else(|| from_profile("s3_endpoint"))
        .or_else(|| env_first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]))
        .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    let pair = |id: Option<String>, secret: Option<String>| id.zip(secret);
    let shared = || -> anyhow::Result<Option<(String, String)>> {
        let name = env_first(&["AWS_PROFILE"]).unwrap_or_else(|| "default".to_owned());
        let Some(path) = env_first(&["AWS_SHARED_CREDENTIALS_FILE"])
            .map(std::path::PathBuf::from)
            .or_else(|| {
                env_first(&["HOME"]).map(|h| std::path::PathBuf::from(h).join(".aws/credentials"))
            })
        else {
            return Ok(None);
        };
        Ok(crate::sign::from_file(&path, &name)?.map(|c| (c.access_key_id, c.secret_access_key)))
    };
    let (access_key_id, secret_access_key) = match pair(
        env_first(&["CAIRN_S3_ACCESS_KEY_ID"]),
        env_first(&["CAIRN_S3_SECRET_ACCESS_KEY"]),
    )
    .or_else(|| pair(from_profile("s3_access_key_id"), from_profile("s3_secret_access_key")))
    .or_else(|| pair(env_first(&["AWS_ACCESS_KEY_ID"]), env_first(&["AWS_SECRET_ACCESS_KEY"])))
    {
        Some(found) => found,
        None => shared()?.context(
            "no credentials for S3: set CAIRN_S3_ACCESS_KEY_ID and CAIRN_S3_SECRET_ACCESS_KEY, s3_access_key_id and s3_secret_access_key in ~/.cairn/config, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials",
        )?,
    };
    let config = cairn_store::S3Config {
        allow_http: endpoint.starts_with("http://"),
        endpoint,
        region,
        access_key_id,
        secret_access_key,
        virtual_hosted_style: false,
    };
    Ok(cairn_store::s3(&config, bucket)?)
}

/// Where the files are.
struct Source {
    store: Arc<dyn object_store::ObjectStore>,
    metadata: cairn_store::MetadataStyle,
    bucket: String,
    /// Whether `bucket` is known (given, the trail's, an S3 URL's) rather than guessed from a
    /// copied directory's name: a guess is replaced by the bucket the digests were signed for.
    bucket_known: bool,
    prefix: Option<String>,
    org_id: Option<String>,
    /// The trail's logging state, when the server told it and validation is enabled.
    logging: Option<cairn_digest::validate::Logging>,
}

fn local_source(dir: &Path, bucket: Option<String>) -> anyhow::Result<Source> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let bucket_known = bucket.is_some();
    let bucket = bucket.unwrap_or_else(|| {
        dir.canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "local".into())
    });
    Ok(Source {
        store: cairn_store::local(dir)?,
        metadata: cairn_store::MetadataStyle::Sidecar,
        bucket,
        bucket_known,
        prefix: None,
        org_id: None,
        logging: None,
    })
}

async fn resolve_source(args: &ValidateArgs, arn: &Arn) -> anyhow::Result<Source> {
    let mut source = match (&args.source, &args.s3_bucket) {
        (Some(url), _) if url.starts_with("s3://") => {
            let rest = &url["s3://".len()..];
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket = args.s3_bucket.clone().unwrap_or(bucket.to_owned());
            Source {
                store: s3_from_env(bucket.as_str())?,
                metadata: cairn_store::MetadataStyle::ObjectMetadata,
                bucket,
                bucket_known: true,
                prefix: Some(prefix.trim_end_matches('/').to_owned()).filter(|p| !p.is_empty()),
                org_id: None,
                logging: None,
            }
        }
        (Some(dir), _) => local_source(Path::new(dir), args.s3_bucket.clone())?,
        (None, Some(bucket)) => Source {
            store: s3_from_env(bucket)?,
            metadata: cairn_store::MetadataStyle::ObjectMetadata,
            bucket: bucket.clone(),
            bucket_known: true,
            prefix: None,
            org_id: None,
            logging: None,
        },
        (None, None) => {
            let trail = trail_json(args, arn, "", "the trail").await?;
            let mut source = match (
                trail["LocalDirectory"].as_str(),
                trail["S3BucketName"].as_str(),
            ) {
                (Some(dir), _) => local_source(Path::new(dir), None)?,
                (None, Some(bucket)) => Source {
                    store: s3_from_env(bucket)?,
                    metadata: cairn_store::MetadataStyle::ObjectMetadata,
                    bucket: bucket.to_owned(),
                    bucket_known: true,
                    prefix: None,
                    org_id: None,
                    logging: None,
                },
                _ => bail!("trail {} has no destination", arn.name),
            };
            source.prefix = trail["S3KeyPrefix"].as_str().map(str::to_owned);
            source.org_id = trail["OrganizationId"].as_str().map(str::to_owned);
            if trail["LogFileValidationEnabled"].as_bool() == Some(true) {
                source.logging = Some(trail_logging(args, arn).await?);
            }
            source
        }
    };
    if let Some(prefix) = &args.s3_prefix {
        source.prefix = Some(prefix.trim_end_matches('/').to_owned()).filter(|p| !p.is_empty());
    }
    if let Some(org) = &args.organization_id {
        source.org_id = Some(org.clone());
    }
    Ok(source)
}

/// `GET /v1/trails/<arn><suffix>` from the server, as JSON (`what` names it in errors).
async fn trail_json(
    args: &ValidateArgs,
    arn: &Arn,
    suffix: &str,
    what: &str,
) -> anyhow::Result<Value> {
    let url = format!(
        "{}/v1/trails/{}{suffix}",
        args.endpoint.trim_end_matches('/'),
        percent_encode(&args.trail_arn)
    );
    let response = http()?
        .get(&url)
        .send_signed()
        .await
        .with_context(|| format!("asking {} for {what}", args.endpoint))?;
    if !response.status().is_success() {
        bail!(
            "{what} of trail {}: {}",
            arn.name,
            error_text(response).await
        );
    }
    serde_json::from_slice(&response.bytes().await?).with_context(|| format!("reading {what}"))
}

/// The trail's logging state from GetTrailStatus: a stop after the newest digest means a
/// final digest must exist; logging resumed after a final digest means the chain goes on.
async fn trail_logging(
    args: &ValidateArgs,
    arn: &Arn,
) -> anyhow::Result<cairn_digest::validate::Logging> {
    let status = trail_json(args, arn, "/status", "the trail's status").await?;
    let time = |name: &str| status[name].as_f64().map(|s| (s * 1000.0) as i64);
    let started_at = time("StartLoggingTime");
    Ok(cairn_digest::validate::Logging {
        is_logging: status["IsLogging"].as_bool().unwrap_or(false),
        started_at,
        // Only a stop after the last start matters.
        stopped_at: time("StopLoggingTime")
            .filter(|stop| started_at.is_none_or(|start| *stop >= start)),
    })
}

/// Public keys by their (computed) fingerprint.
async fn public_keys(
    args: &ValidateArgs,
    region: &str,
    start: i64,
    end: i64,
) -> anyhow::Result<HashMap<String, PublicKey>> {
    let list: Value = match &args.public_keys {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?
        }
        None => {
            let url = format!(
                "{}/v1/public-keys?Region={}&StartTime={}&EndTime={}",
                args.endpoint.trim_end_matches('/'),
                percent_encode(region),
                start / 1000,
                end / 1000
            );
            let response = http()?.get(&url).send_signed().await.with_context(|| {
                format!(
                    "asking {} for public keys (give --public-keys FILE to validate without a server)",
                    args.endpoint
                )
            })?;
            if !response.status().is_success() {
                bail!("listing public keys: {}", error_text(response).await);
            }
            serde_json::from_slice(&response.bytes().await?).context("reading the public keys")?
        }
    };
    let entries = list["PublicKeyList"]
        .as_array()
        .context("the public keys JSON has no PublicKeyList")?;
    let mut keys = HashMap::new();
    for entry in entries {
        let value = entry["Value"]
            .as_str()
            .context("a public key has no Value")?;
        let key = PublicKey::from_base64(value)
            .with_context(|| format!("Unable to load PKCS #1 key {}", entry["Fingerprint"]))?;
        keys.insert(key.fingerprint(), key);
    }
    Ok(keys)
}

fn status_text(finding: &Finding, region: &str, bucket: &str) -> String {
    match finding {
        Finding::DigestValid | Finding::LogValid => "valid".into(),
        Finding::DigestNotFound | Finding::LogNotFound => "INVALID: not found".into(),
        Finding::DigestInvalidFormat(_) | Finding::LogInvalidFormat(_) => {
            "INVALID: invalid format".into()
        }
        Finding::DigestSignatureFailed(_) => "INVALID: signature verification failed".into(),
        Finding::DigestMoved => format!(
            "INVALID: has been moved from its original location (validated as bucket {bucket}; the digest names another location)"
        ),
        Finding::DigestPublicKeyNotFound(fp) => {
            format!("INVALID: public key not found in region {region} for fingerprint {fp}")
        }
        Finding::DigestWrongAlgorithm(a) => {
            format!("INVALID: algorithm {a:?} is not SHA256withRSA / SHA-256")
        }
        Finding::DigestPreviousHashMismatch => {
            "INVALID: previousDigestHashValue does not match the previous digest".into()
        }
        Finding::DigestPreviousSignatureMismatch => {
            "INVALID: previousDigestSignature does not match the previous digest's signature".into()
        }
        Finding::DigestTimeDiscontinuity => {
            "INVALID: digestStartTime is not the previous digest's digestEndTime".into()
        }
        Finding::DigestMissing => "INVALID: missing (no digest for this period)".into(),
        Finding::LogHashMismatch => "INVALID: hash value doesn't match".into(),
        Finding::LogTrailingData => {
            "INVALID: unexpected data after end of compressed stream".into()
        }
        Finding::LogUnreferenced => "INVALID: not referenced by any digest".into(),
    }
}

fn detail(finding: &Finding) -> Option<&str> {
    match finding {
        Finding::DigestInvalidFormat(d)
        | Finding::LogInvalidFormat(d)
        | Finding::DigestSignatureFailed(d) => Some(d),
        _ => None,
    }
}

fn kind_of(location: &str, finding: &Finding) -> &'static str {
    match (finding.is_digest(), location.ends_with("_backfill.json.gz")) {
        (true, true) => "backfill-digest",
        (true, false) => "digest",
        (false, _) => "log",
    }
}

#[derive(Default)]
struct Counts {
    valid: usize,
    invalid: usize,
}

fn counts(lines: &[ReportLine], kind: &str) -> Counts {
    let mut counts = Counts::default();
    for (at, finding) in lines.iter().filter(|(at, f)| kind_of(at, f) == kind) {
        let _ = at;
        if finding.is_failure() {
            counts.invalid += 1;
        } else {
            counts.valid += 1;
        }
    }
    counts
}

fn progress_bar(progress: Arc<cairn_validate::Progress>) -> tokio::task::JoinHandle<()> {
    use std::sync::atomic::Ordering;
    tokio::spawn(async move {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "validating {pos}/{len} log files, {msg} read [{elapsed_precise}] {wide_bar}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let mut shown = false;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let total = progress.files_total.load(Ordering::Relaxed);
            if total == 0 {
                continue;
            }
            if !shown {
                bar.set_length(total);
                shown = true;
            }
            bar.set_position(progress.files_done.load(Ordering::Relaxed));
            bar.set_message(format!(
                "{:.1} MB",
                progress.bytes_read.load(Ordering::Relaxed) as f64 / 1e6
            ));
        }
    })
}

/// `[<prefix>/]AWSLogs[/<organization id>]`: where the accounts' directories are.
fn awslogs_root(source: &Source) -> String {
    let mut root = String::new();
    if let Some(prefix) = &source.prefix {
        root.push_str(prefix);
        root.push('/');
    }
    root.push_str("AWSLogs");
    if let Some(org) = &source.org_id {
        root.push('/');
        root.push_str(org);
    }
    root
}

/// The (account, region) pairs to validate: those given, else every pair with log files or
/// digests under the tree's `AWSLogs/` root (organization trails: every member account), else
/// the trail's own account and home region.
async fn pairs(
    args: &ValidateArgs,
    arn: &Arn,
    source: &Source,
) -> anyhow::Result<Vec<(String, String)>> {
    if let (Some(account), Some(region)) = (&args.account_id, &args.region) {
        return Ok(vec![(account.clone(), region.clone())]);
    }
    let root = awslogs_root(source);
    let store = source.store.as_ref();
    let mut found = std::collections::BTreeSet::new();
    for account in cairn_store::children(store, &root).await? {
        let is_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        if !is_account || args.account_id.as_ref().is_some_and(|a| *a != account) {
            continue;
        }
        for kind in ["CloudTrail", "CloudTrail-Digest"] {
            for region in cairn_store::children(store, &format!("{root}/{account}/{kind}")).await? {
                if args.region.as_ref().is_none_or(|r| *r == region) {
                    found.insert((account.clone(), region));
                }
            }
        }
    }
    if found.is_empty() {
        found.insert((
            args.account_id.clone().unwrap_or(arn.account.clone()),
            args.region.clone().unwrap_or(arn.home_region.clone()),
        ));
    }
    Ok(found.into_iter().collect())
}

/// The bucket the digests of a copied tree were signed for: the signed `digestS3Bucket` of
/// the first digest found (a digest claiming another bucket is then reported as moved).
async fn signed_bucket(source: &Source, pairs: &[(String, String)]) -> Option<String> {
    let root = awslogs_root(source);
    for (account, region) in pairs {
        let base = format!("{root}/{account}/CloudTrail-Digest/{region}");
        let keys = cairn_store::list(source.store.as_ref(), &base).await.ok()?;
        for key in keys.iter().filter(|k| k.ends_with(".json.gz")) {
            let Ok(Some(bytes)) = cairn_store::get(source.store.as_ref(), key).await else {
                continue;
            };
            let Ok(json) = cairn_logfile::body::decompress(&bytes, 64 << 20) else {
                continue;
            };
            if let Ok(document) = cairn_digest::DigestDocument::parse(&json) {
                return Some(document.digest_s3_bucket);
            }
        }
    }
    None
}

/// What one chain's validation found, for the summary.
struct ChainResult {
    account: String,
    region: String,
    outcome: cairn_validate::Outcome,
}

/// `cairn validate-logs`.
pub async fn validate_logs(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let arn = parse_arn(&args.trail_arn)?;
    let start = parse_time(&args.start_time)?;
    let now = cairn_model::Clock::now_millis(&cairn_model::SystemClock);
    let end = match &args.end_time {
        Some(text) => parse_time(text)?,
        None => now,
    };
    if start > end {
        bail!("--start-time is after --end-time");
    }
    if args.digest_period_seconds == 0 {
        bail!("--digest-period-seconds must be at least 1");
    }
    let mut source = resolve_source(&args, &arn).await?;
    let pairs = pairs(&args, &arn, &source).await?;
    if !source.bucket_known {
        if let Some(bucket) = signed_bucket(&source, &pairs).await {
            source.bucket = bucket;
        }
    }
    let keys_until = end + 2 * 3_600_000;
    let display = cairn_model::time::format_utc_seconds;
    let period_ms = args.digest_period_seconds as i64 * 1000;
    // A digest is written shortly after its period ends: allow that long before calling it
    // missing.
    let grace = (period_ms / 2).min(5 * 60_000);
    let text = args.output == ValidateOutput::Text;
    let mut stdout = std::io::stdout().lock();
    if text {
        write!(
            stdout,
            "Validating log files for trail {} between {} and {}\n\n",
            args.trail_arn,
            display(start),
            display(end)
        )?;
        if pairs.len() > 1 {
            writeln!(
                stdout,
                "{} chains (account, region): {}\n",
                pairs.len(),
                pairs
                    .iter()
                    .map(|(a, r)| format!("{a} {r}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        stdout.flush()?;
    }
    let mut keys_by_region: HashMap<String, HashMap<String, PublicKey>> = HashMap::new();
    let mut results = Vec::new();
    for (account, region) in &pairs {
        if !keys_by_region.contains_key(region) {
            let keys = public_keys(&args, region, start, keys_until).await?;
            keys_by_region.insert(region.clone(), keys);
        }
        let keys = keys_by_region[region].clone();
        if keys.is_empty() && pairs.len() == 1 {
            eprintln!(
                "No public keys found between {} and {}",
                display(start),
                display(keys_until)
            );
            return Ok(ExitCode::from(255));
        }
        let request = cairn_validate::Request {
            store: source.store.clone(),
            metadata: source.metadata,
            bucket: source.bucket.clone(),
            prefix: source.prefix.clone(),
            org_id: source.org_id.clone(),
            account: account.clone(),
            region: region.clone(),
            trail_name: arn.name.clone(),
            home_region: arn.home_region.clone(),
            start_ms: start,
            end_ms: end,
            period_ms,
            due_until_ms: end.min(now) - grace,
            keys,
            logging: source.logging,
        };
        let progress = Arc::new(cairn_validate::Progress::default());
        let bar = text.then(|| progress_bar(progress.clone()));
        let outcome = cairn_validate::run(&request, progress).await;
        if let Some(bar) = bar {
            bar.abort();
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprint!("\r\x1b[2K");
            }
        }
        results.push(ChainResult {
            account: account.clone(),
            region: region.clone(),
            outcome: outcome?,
        });
    }
    let valid = results.iter().all(|r| r.outcome.is_valid());
    if text {
        for result in &results {
            if results.len() > 1 {
                writeln!(
                    stdout,
                    "== account {}, region {}",
                    result.account, result.region
                )?;
            }
            write_text(&mut stdout, &args, result, start, end, &source.bucket)?;
        }
        if results.len() > 1 {
            writeln!(stdout, "\nSummary: {} chains", results.len())?;
            for result in &results {
                let verdict = if result.outcome.is_valid() {
                    "valid".to_owned()
                } else {
                    let failures = result
                        .outcome
                        .lines
                        .iter()
                        .filter(|(_, f)| f.is_failure())
                        .count();
                    format!("INVALID ({failures} findings)")
                };
                writeln!(stdout, "  {} {}: {verdict}", result.account, result.region)?;
            }
        }
    } else if args.output == ValidateOutput::Table {
        let document = json_document(&args, &results, start, end, &source.bucket);
        stdout.flush()?;
        let findings: Vec<Value> = document["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                json!({"type": r["type"], "location": r["location"], "status": r["status"], "class": r["class"]})
            })
            .collect();
        crate::output::print(&Value::Array(findings), crate::output::Output::Table)?;
        let chains: Vec<Value> = document["chains"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| json!({"account": c["account"], "region": c["region"], "valid": c["valid"]}))
            .collect();
        crate::output::print(&Value::Array(chains), crate::output::Output::Table)?;
    } else {
        let document = json_document(&args, &results, start, end, &source.bucket);
        writeln!(stdout, "{}", serde_json::to_string_pretty(&document)?)?;
    }
    stdout.flush()?;
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Found times are clipped to the requested window, as the AWS CLI reports them.
fn found_window(
    outcome: &cairn_validate::Outcome,
    start: i64,
    end: i64,
) -> Option<(String, String)> {
    let display = cairn_model::time::format_utc_seconds;
    outcome.found.as_ref().map(|(s, e)| {
        let s = cairn_model::time::parse_utc(s).map_or(start, |t| t.max(start));
        let e = cairn_model::time::parse_utc(e).map_or(end, |t| t.min(end));
        (display(s), display(e))
    })
}

fn json_document(
    args: &ValidateArgs,
    results: &[ChainResult],
    start: i64,
    end: i64,
    bucket: &str,
) -> Value {
    let display = cairn_model::time::format_utc_seconds;
    let ratio = |c: &Counts| json!({ "valid": c.valid, "invalid": c.invalid });
    let mut all_lines = Vec::new();
    let mut chains = Vec::new();
    for result in results {
        let lines = &result.outcome.lines;
        for (at, f) in lines {
            all_lines.push(json!({
                "type": kind_of(at, f),
                "location": at,
                "status": status_text(f, &result.region, bucket),
                "class": f.class(),
                "detail": detail(f),
                "account": result.account,
                "region": result.region,
            }));
        }
        chains.push(json!({
            "account": result.account,
            "region": result.region,
            "valid": result.outcome.is_valid(),
            "found": found_window(&result.outcome, start, end)
                .map(|(s, e)| json!({ "start": s, "end": e })),
            "digests": ratio(&counts(lines, "digest")),
            "backfillDigests": ratio(&counts(lines, "backfill-digest")),
            "logs": ratio(&counts(lines, "log")),
        }));
    }
    let every: Vec<ReportLine> = results
        .iter()
        .flat_map(|r| r.outcome.lines.iter().cloned())
        .collect();
    let found = {
        let windows: Vec<(String, String)> = results
            .iter()
            .filter_map(|r| found_window(&r.outcome, start, end))
            .collect();
        windows
            .iter()
            .map(|(s, _)| s.clone())
            .min()
            .zip(windows.iter().map(|(_, e)| e.clone()).max())
    };
    json!({
        "trailArn": args.trail_arn,
        "region": (results.len() == 1).then(|| results[0].region.clone()),
        "requested": { "start": display(start), "end": display(end) },
        "found": found.map(|(s, e)| json!({ "start": s, "end": e })),
        "valid": results.iter().all(|r| r.outcome.is_valid()),
        "digests": ratio(&counts(&every, "digest")),
        "backfillDigests": ratio(&counts(&every, "backfill-digest")),
        "logs": ratio(&counts(&every, "log")),
        "bytesRead": results.iter().map(|r| r.outcome.bytes_read).sum::<u64>(),
        "chains": chains,
        "results": all_lines,
    })
}

/// One chain's report in the AWS CLI's text form (failures on stderr).
fn write_text(
    stdout: &mut impl Write,
    args: &ValidateArgs,
    result: &ChainResult,
    start: i64,
    end: i64,
    bucket: &str,
) -> anyhow::Result<()> {
    let display = cairn_model::time::format_utc_seconds;
    let outcome = &result.outcome;
    let digests = counts(&outcome.lines, "digest");
    let backfill = counts(&outcome.lines, "backfill-digest");
    let logs = counts(&outcome.lines, "log");
    let found = found_window(outcome, start, end);
    let mut stderr = std::io::stderr().lock();
    let mut double_spaced = false;
    for (at, finding) in &outcome.lines {
        let prefix = match kind_of(at, finding) {
            "backfill-digest" => "(backfill) Digest file",
            "digest" => "Digest file",
            _ => "Log file",
        };
        let line = format!(
            "{prefix}\t{at}\t{}",
            status_text(finding, &result.region, bucket)
        );
        if finding.is_failure() {
            if double_spaced {
                write!(stderr, "{line}\n\n")?;
            } else {
                write!(stderr, "\n{line}\n\n")?;
            }
            double_spaced = true;
        } else if args.verbose {
            double_spaced = false;
            writeln!(stdout, "{line}")?;
        }
    }
    stderr.flush()?;
    if !double_spaced {
        writeln!(stdout)?;
    }
    writeln!(
        stdout,
        "Results requested for {} to {}",
        display(start),
        display(end)
    )?;
    if digests.valid + digests.invalid + backfill.valid + backfill.invalid == 0 {
        writeln!(stdout, "No digests found")?;
        if logs.invalid > 0 {
            writeln!(
                stdout,
                "{} log files in the window are vouched for by no digest: INVALID",
                logs.invalid
            )?;
        }
    } else {
        match &found {
            Some((s, e)) => writeln!(stdout, "Results found for {s} to {e}:")?,
            None => writeln!(stdout, "No valid digests found in range")?,
        }
        for (c, name) in [
            (&digests, "digest"),
            (&backfill, "backfill digest"),
            (&logs, "log"),
        ] {
            let total = c.valid + c.invalid;
            if total > 0 {
                write!(stdout, "\n{}/{total} {name} files valid", c.valid)?;
                if c.invalid > 0 {
                    write!(stdout, ", {}/{total} {name} files INVALID", c.invalid)?;
                }
            }
        }
        writeln!(stdout)?;
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    /// Server endpoint.
    #[arg(long, env = "CAIRN_ENDPOINT", default_value_t = crate::profile::endpoint(), global = true)]
    endpoint: String,
    /// Output format: json (ListPublicKeys' answer, times in ISO-8601), table or text
    /// (fingerprint and validity of each key).
    #[arg(long, value_enum, default_value_t = crate::output::Output::Json, global = true)]
    output: crate::output::Output,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// The public keys whose validity overlaps a window, as ListPublicKeys lists them.
    List {
        /// Region [default: the server's].
        #[arg(long)]
        region: Option<String>,
        /// Window start [default: now].
        #[arg(long)]
        start_time: Option<String>,
        /// Window end [default: now].
        #[arg(long)]
        end_time: Option<String>,
    },
    /// End the region's current signing key now and start a new one.
    Rotate {
        /// Region [default: the server's].
        #[arg(long)]
        region: Option<String>,
    },
}

/// `cairn keys ...`.
pub async fn keys(args: KeysArgs) -> anyhow::Result<()> {
    let base = args.endpoint.trim_end_matches('/').to_owned();
    let output = args.output;
    match args.command {
        KeysCommand::List {
            region,
            start_time,
            end_time,
        } => {
            let mut params = Vec::new();
            if let Some(region) = region {
                params.push(format!("Region={}", percent_encode(&region)));
            }
            for (name, value) in [("StartTime", start_time), ("EndTime", end_time)] {
                if let Some(text) = value {
                    params.push(format!("{name}={}", parse_time(&text)? / 1000));
                }
            }
            let url = format!("{base}/v1/public-keys?{}", params.join("&"));
            let response = http()?
                .get(&url)
                .send_signed()
                .await
                .with_context(|| format!("connecting to {base}"))?;
            if !response.status().is_success() {
                bail!("{}", error_text(response).await);
            }
            let body: Value = serde_json::from_slice(&response.bytes().await?)?;
            if output == crate::output::Output::Json {
                crate::output::print(&body, output)?;
            } else {
                let rows: Vec<Value> = body["PublicKeyList"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| {
                        serde_json::json!({
                            "Fingerprint": k["Fingerprint"],
                            "ValidityStartTime": k["ValidityStartTime"],
                            "ValidityEndTime": k["ValidityEndTime"],
                        })
                    })
                    .collect();
                crate::output::print(&serde_json::json!({ "PublicKeyList": rows }), output)?;
            }
        }
        KeysCommand::Rotate { region } => {
            let mut url = format!("{base}/v1/keys/rotate");
            if let Some(region) = region {
                url.push_str(&format!("?Region={}", percent_encode(&region)));
            }
            let response = http()?
                .post(&url)
                .send_signed()
                .await
                .with_context(|| format!("connecting to {base}"))?;
            if !response.status().is_success() {
                bail!("{}", error_text(response).await);
            }
            let body: Value = serde_json::from_slice(&response.bytes().await?)?;
            crate::output::print(&body, output)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_arns() {
        assert_eq!(
            parse_time("2026-03-02T10:01:31Z").expect("iso"),
            1_772_445_691_000
        );
        assert_eq!(
            parse_time("2026-03-02T10:01Z").expect("minutes"),
            1_772_445_660_000
        );
        assert_eq!(parse_time("2026-03-02").expect("date"), 1_772_409_600_000);
        assert_eq!(parse_time("1772445691").expect("epoch"), 1_772_445_691_000);
        assert!(parse_time("yesterday").is_err());
        let arn = parse_arn("arn:aws:cloudtrail:eu-west-1:111122223333:trail/main").expect("arn");
        assert_eq!(
            (
                arn.home_region.as_str(),
                arn.account.as_str(),
                arn.name.as_str()
            ),
            ("eu-west-1", "111122223333", "main")
        );
        assert!(parse_arn("arn:aws:cloudtrail:eu-west-1:1111:trail/main").is_err());
        assert!(parse_arn("main").is_err());
    }
}
