//! `validate-logs` over a store (spec §3.10–3.12): lists the digests of one chain (trail,
//! account, source region) in a time window, reads them with their signature metadata, hashes
//! every log file they reference — streaming, several at once, on every core — lists the log
//! files present in the window, and runs [`cairn_digest::validate`] over what it found.

use cairn_digest::validate::{Chain, Finding, LogReadError, LogState, ReportLine, StoredDigest};
use cairn_digest::{DigestDocument, PublicKey};
use cairn_logfile::keys::{DigestKey, LogFileKey};
use cairn_store::MetadataStyle;
use futures::StreamExt;
use object_store::ObjectStore;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Largest digest accepted, decompressed.
const MAX_DIGEST_BYTES: usize = 64 << 20;
/// Files read at once.
const PARALLEL_READS: usize = 8;

/// Why validation could not run (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The store could not be listed or read.
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
    /// A worker task failed.
    #[error("a hashing task failed: {0}")]
    Task(String),
}

/// Which chain, where, and over which window.
pub struct Request {
    /// The store holding the trail's files.
    pub store: Arc<dyn ObjectStore>,
    /// How digest metadata is kept there.
    pub metadata: MetadataStyle,
    /// The bucket name digests must name.
    pub bucket: String,
    /// The trail's `S3KeyPrefix`.
    pub prefix: Option<String>,
    /// Organization id, for organization trails.
    pub org_id: Option<String>,
    /// Account of the files.
    pub account: String,
    /// Source region.
    pub region: String,
    /// Trail name.
    pub trail_name: String,
    /// Trail home region.
    pub home_region: String,
    /// Window start, epoch ms.
    pub start_ms: i64,
    /// Window end, epoch ms.
    pub end_ms: i64,
    /// Digest period.
    pub period_ms: i64,
    /// Digests are due for periods ending up to this time.
    pub due_until_ms: i64,
    /// Public keys by fingerprint.
    pub keys: HashMap<String, PublicKey>,
    /// The trail's logging state, when known (see [`cairn_digest::validate::Logging`]).
    pub logging: Option<cairn_digest::validate::Logging>,
}

/// Progress counters, readable while [`run`] works.
#[derive(Debug, Default)]
pub struct Progress {
    /// Log files to hash.
    pub files_total: AtomicU64,
    /// Log files hashed.
    pub files_done: AtomicU64,
    /// Compressed bytes read.
    pub bytes_read: AtomicU64,
}

/// What validation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// One line per digest, log file and missing period.
    pub lines: Vec<ReportLine>,
    /// Earliest `digestStartTime` and latest `digestEndTime` of valid digests.
    pub found: Option<(String, String)>,
    /// Compressed bytes of log files read.
    pub bytes_read: u64,
}

impl Outcome {
    /// Whether everything validated.
    pub fn is_valid(&self) -> bool {
        self.lines.iter().all(|(_, f)| !f.is_failure())
    }
}

fn root(request: &Request) -> String {
    let mut root = String::new();
    if let Some(prefix) = &request.prefix {
        root.push_str(prefix);
        root.push('/');
    }
    root.push_str("AWSLogs/");
    if let Some(org) = &request.org_id {
        root.push_str(org);
        root.push('/');
    }
    root.push_str(&request.account);
    root
}

/// UTC days (`YYYY/MM/DD`) touched by `[start, end]`.
fn days(start: i64, end: i64) -> Vec<String> {
    const DAY: i64 = 86_400_000;
    let mut out = Vec::new();
    let mut t = start.div_euclid(DAY) * DAY;
    while t <= end {
        let text = cairn_model::time::format_utc_seconds(t);
        out.push(format!("{}/{}/{}", &text[0..4], &text[5..7], &text[8..10]));
        t += DAY;
    }
    out
}

async fn list_days(
    request: &Request,
    kind: &str,
    start: i64,
    end: i64,
) -> Result<Vec<String>, ValidateError> {
    let base = format!("{}/{kind}/{}", root(request), request.region);
    let mut keys = Vec::new();
    for day in days(start, end) {
        keys.extend(cairn_store::list(request.store.as_ref(), &format!("{base}/{day}")).await?);
    }
    Ok(keys)
}

async fn read_digest(request: &Request, key: &str) -> Result<StoredDigest, ValidateError> {
    let Some((bytes, metadata)) =
        cairn_store::get_with_metadata(request.store.as_ref(), key, request.metadata).await?
    else {
        return Ok(StoredDigest {
            bytes: Err("not found".into()),
            signature: None,
            signature_algorithm: None,
            backfill_generation_timestamp: None,
        });
    };
    Ok(StoredDigest {
        bytes: cairn_logfile::body::decompress(&bytes, MAX_DIGEST_BYTES).map_err(|e| e.to_string()),
        signature: metadata.get("signature").cloned(),
        signature_algorithm: metadata.get("signature-algorithm").cloned(),
        backfill_generation_timestamp: metadata.get("backfill-generation-timestamp").cloned(),
    })
}

async fn hash_log(
    store: Arc<dyn ObjectStore>,
    key: String,
    progress: Arc<Progress>,
) -> Result<Option<LogState>, ValidateError> {
    let Some(bytes) = cairn_store::get(store.as_ref(), &key).await? else {
        return Ok(None);
    };
    progress
        .bytes_read
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    let state = tokio::task::spawn_blocking(move || {
        cairn_logfile::body::hash_file(&bytes).map_err(|e| match e {
            cairn_logfile::body::ReadError::TrailingData => LogReadError::TrailingData,
            other => LogReadError::InvalidFormat(other.to_string()),
        })
    })
    .await
    .map_err(|e| ValidateError::Task(e.to_string()))?;
    progress.files_done.fetch_add(1, Ordering::Relaxed);
    Ok(Some(state))
}

/// Validates the chain `request` names.
pub async fn run(request: &Request, progress: Arc<Progress>) -> Result<Outcome, ValidateError> {
    // Digests ending from the window start to one period after its end (AWS: end + 1 h), and
    // a minute more: a file whose key (to the minute) is in the window may have been delivered
    // up to a minute later, and its digest ends up to a period after that.
    let digests_until = request.end_ms + request.period_ms + 60_000;
    let listed = list_days(
        request,
        "CloudTrail-Digest",
        request.start_ms,
        digests_until,
    )
    .await?;
    let wanted: Vec<String> = listed
        .into_iter()
        .filter(|key| {
            key.parse::<DigestKey>().is_ok_and(|k| {
                k.trail_name == request.trail_name
                    && k.home_region == request.home_region
                    && k.account == request.account
                    && k.region == request.region
                    && k.end_time >= request.start_ms
                    && k.end_time <= digests_until
            })
        })
        .collect();
    let digests: BTreeMap<String, StoredDigest> = futures::stream::iter(wanted)
        .map(|key| async move {
            let stored = read_digest(request, &key).await?;
            Ok::<_, ValidateError>((key, stored))
        })
        .buffer_unordered(PARALLEL_READS)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    // Every log file a digest references, hashed.
    let referenced: BTreeSet<String> = digests
        .values()
        .filter_map(|d| d.bytes.as_ref().ok())
        .filter_map(|b| DigestDocument::parse(b).ok())
        .flat_map(|d| d.log_files.into_iter().map(|l| l.s3_object))
        .collect();
    progress
        .files_total
        .store(referenced.len() as u64, Ordering::Relaxed);
    let logs: BTreeMap<String, LogState> = futures::stream::iter(referenced)
        .map(|key| {
            let (store, progress) = (request.store.clone(), progress.clone());
            async move {
                let state = hash_log(store, key.clone(), progress).await?;
                Ok::<_, ValidateError>(state.map(|s| (key, s)))
            }
        })
        .buffer_unordered(PARALLEL_READS)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .filter_map(Result::transpose)
        .collect::<Result<_, _>>()?;
    // Log files present in the window, for the unreferenced-file check.
    let present: BTreeSet<String> =
        list_days(request, "CloudTrail", request.start_ms, request.end_ms)
            .await?
            .into_iter()
            .filter(|key| {
                key.parse::<LogFileKey>().is_ok_and(|k| {
                    k.account == request.account
                        && k.region == request.region
                        // The key holds the minute: [t, t + 1 min) may reach into the window.
                    && k.delivered_at + 60_000 > request.start_ms
                        && k.delivered_at <= request.end_ms
                })
            })
            .collect();
    let lines = cairn_digest::validate::validate(&Chain {
        bucket: &request.bucket,
        digests: &digests,
        logs: &logs,
        present_logs: &present,
        keys: &request.keys,
        period_ms: request.period_ms,
        window_start_ms: request.start_ms,
        due_until_ms: request.due_until_ms,
        logging: request.logging,
        key_template: Some(DigestKey {
            prefix: request.prefix.clone(),
            org_id: request.org_id.clone(),
            account: request.account.clone(),
            region: request.region.clone(),
            trail_name: request.trail_name.clone(),
            home_region: request.home_region.clone(),
            end_time: 0,
            backfill: false,
        }),
    });
    let valid_windows: Vec<(String, String)> = lines
        .iter()
        .filter(|(_, f)| *f == Finding::DigestValid)
        .filter_map(|(at, _)| {
            let key = at.strip_prefix("s3://")?.split_once('/')?.1;
            let document = DigestDocument::parse(digests.get(key)?.bytes.as_ref().ok()?).ok()?;
            Some((document.digest_start_time, document.digest_end_time))
        })
        .collect();
    let found = valid_windows
        .iter()
        .map(|(s, _)| s.clone())
        .min()
        .zip(valid_windows.iter().map(|(_, e)| e.clone()).max());
    Ok(Outcome {
        lines,
        found,
        bytes_read: progress.bytes_read.load(Ordering::Relaxed),
    })
}
