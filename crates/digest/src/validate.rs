//! Validation of one digest chain (one trail, account and source region) over a store's
//! contents, stricter than `aws cloudtrail validate-logs` (spec §3.10–3.12): besides every check
//! the AWS CLI makes, it requires a digest for every period up to the end of the window (so
//! deleting the newest digests is caught), compares `previousDigestHashValue` and
//! `previousDigestSignature` with the actual previous digest, checks that each digest starts
//! where the previous one ended, accepts only SHA256withRSA / SHA-256, reports every missing
//! digest individually and every log file no digest references. Pure: the caller lists the
//! store, reads digests, and hashes log files.
//!
//! **Which periods must have a digest.** Between two ordinary digests whose newer one links to
//! a previous digest, every period must have one (a link to an absent digest is `not found`,
//! each further absent period `missing`). A *starting* digest (null `previousDigest*`) may follow
//! a gap: logging was stopped or validation disabled. After the newest digest, digests are due
//! every period up to `due_until_ms`, unless the newest is a *final* digest: one covering less
//! than a period whose end is not on a period boundary (Cairn ends ordinary windows on
//! boundaries since the epoch and a final one at the StopLogging time). Digest times are
//! matched with a tolerance of a quarter period, so AWS's chains (about an hour apart) validate
//! too.
//!
//! **Log files no digest lists.** Keys give the delivery time to the minute, so a file is
//! required to be listed when its key's minute overlaps a period some digest covers and ends
//! before the newest digest does, or falls after the newest digest of a running chain in a
//! period whose digest is due. A file delivered in the same minute as validation was enabled,
//! just before it, is therefore reported too; one delivered in the minute a final digest ends,
//! after it, is not (it cannot be told from one delivered just before).

use crate::document::{sha256_hex, DigestDocument};
use crate::signing::{string_to_sign, PublicKey, SIGNATURE_ALGORITHM};
use cairn_logfile::keys::{DigestKey, LogFileKey};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A digest object as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDigest {
    /// The decompressed JSON, or why it could not be read.
    pub bytes: Result<Vec<u8>, String>,
    /// `signature` metadata.
    pub signature: Option<String>,
    /// `signature-algorithm` metadata.
    pub signature_algorithm: Option<String>,
    /// `backfill-generation-timestamp` metadata (backfill digests).
    pub backfill_generation_timestamp: Option<String>,
}

/// Why a log file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogReadError {
    /// Bytes after the end of the first gzip member.
    TrailingData,
    /// Not gzip, or damaged.
    InvalidFormat(String),
}

/// A log file as found in the store: the SHA-256 hex of its uncompressed bytes, or why it could
/// not be read.
pub type LogState = Result<String, LogReadError>;

/// What a validation found about one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Finding {
    /// The digest is intact and correctly linked.
    DigestValid,
    /// A digest the chain points to is absent.
    DigestNotFound,
    /// Not gzip, not JSON, or a required member missing.
    DigestInvalidFormat(String),
    /// The signature is missing or does not verify.
    DigestSignatureFailed(String),
    /// The digest names another location than where it is stored.
    DigestMoved,
    /// No public key with the digest's fingerprint.
    DigestPublicKeyNotFound(String),
    /// An algorithm other than SHA256withRSA / SHA-256.
    DigestWrongAlgorithm(String),
    /// `previousDigestHashValue` differs from the previous digest's hash.
    DigestPreviousHashMismatch,
    /// `previousDigestSignature` differs from the previous digest's signature.
    DigestPreviousSignatureMismatch,
    /// The digest does not start where the previous one ended.
    DigestTimeDiscontinuity,
    /// No digest for a period that must have one (including the newest periods).
    DigestMissing,
    /// The log file is intact.
    LogValid,
    /// A referenced log file is absent.
    LogNotFound,
    /// The log file's hash differs from the digest's.
    LogHashMismatch,
    /// Bytes after the end of the gzip member.
    LogTrailingData,
    /// Not readable as gzip.
    LogInvalidFormat(String),
    /// A log file no digest references (injected, or delivered without a digest).
    LogUnreferenced,
}

impl Finding {
    /// Whether the finding makes validation fail.
    pub fn is_failure(&self) -> bool {
        !matches!(self, Self::DigestValid | Self::LogValid)
    }

    /// Whether it is about a digest (else a log file).
    pub fn is_digest(&self) -> bool {
        matches!(
            self,
            Self::DigestValid
                | Self::DigestNotFound
                | Self::DigestInvalidFormat(_)
                | Self::DigestSignatureFailed(_)
                | Self::DigestMoved
                | Self::DigestPublicKeyNotFound(_)
                | Self::DigestWrongAlgorithm(_)
                | Self::DigestPreviousHashMismatch
                | Self::DigestPreviousSignatureMismatch
                | Self::DigestTimeDiscontinuity
                | Self::DigestMissing
        )
    }

    /// A stable machine-readable class name.
    pub fn class(&self) -> &'static str {
        match self {
            Self::DigestValid => "digest_valid",
            Self::DigestNotFound => "digest_not_found",
            Self::DigestInvalidFormat(_) => "digest_invalid_format",
            Self::DigestSignatureFailed(_) => "digest_signature_failed",
            Self::DigestMoved => "digest_moved",
            Self::DigestPublicKeyNotFound(_) => "digest_public_key_not_found",
            Self::DigestWrongAlgorithm(_) => "digest_wrong_algorithm",
            Self::DigestPreviousHashMismatch => "digest_previous_hash_mismatch",
            Self::DigestPreviousSignatureMismatch => "digest_previous_signature_mismatch",
            Self::DigestTimeDiscontinuity => "digest_time_discontinuity",
            Self::DigestMissing => "digest_missing",
            Self::LogValid => "log_valid",
            Self::LogNotFound => "log_not_found",
            Self::LogHashMismatch => "log_hash_mismatch",
            Self::LogTrailingData => "log_trailing_data",
            Self::LogInvalidFormat(_) => "log_invalid_format",
            Self::LogUnreferenced => "log_unreferenced",
        }
    }
}

/// What to validate.
#[derive(Debug)]
pub struct Chain<'a> {
    /// The bucket (as written in digests).
    pub bucket: &'a str,
    /// Digests of this chain in the store, by key (ordinary and backfill).
    pub digests: &'a BTreeMap<String, StoredDigest>,
    /// The log files the digests reference, by key, as read (absent: not in the store).
    pub logs: &'a BTreeMap<String, LogState>,
    /// Keys of the log files of this (account, region) present in the validated window.
    pub present_logs: &'a BTreeSet<String>,
    /// Public keys by fingerprint.
    pub keys: &'a HashMap<String, PublicKey>,
    /// Digests are due every `period_ms` (an hour in production).
    pub period_ms: i64,
    /// Start of the validated window: a link to a digest ending before it is not followed.
    pub window_start_ms: i64,
    /// Digests are due for periods ending up to this time (epoch ms): the end of the window
    /// less the time a digest takes to be written.
    pub due_until_ms: i64,
    /// What the trail says of its logging, when it is known (validating through the server):
    /// it tells a final digest that must exist, and a chain that must go on, from what the
    /// files alone cannot.
    pub logging: Option<Logging>,
    /// The chain's digest key with any end time, to name missing digests when none is
    /// present to copy (`None`: they are named by their time only).
    pub key_template: Option<DigestKey>,
}

/// A trail's logging state, as its status reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logging {
    /// Whether the trail logs now (with log file validation enabled).
    pub is_logging: bool,
    /// When logging last started, epoch ms.
    pub started_at: Option<i64>,
    /// When logging last stopped (after it last started), epoch ms.
    pub stopped_at: Option<i64>,
}

/// One line of the report: where (`s3://bucket/key`), and what was found.
pub type ReportLine = (String, Finding);

fn location(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// A digest that verified, as the chain rules need it.
struct Verified {
    start: i64,
    end: i64,
    starting: bool,
}

/// Checks one digest on its own: format, metadata, location, key, signature. On success, its
/// document.
fn check_digest<'d>(
    chain: &Chain<'_>,
    key: &str,
    digest_key: &DigestKey,
    stored: &StoredDigest,
    document: Option<&'d DigestDocument>,
) -> Result<&'d DigestDocument, Finding> {
    let bytes = stored
        .bytes
        .as_ref()
        .map_err(|e| Finding::DigestInvalidFormat(e.clone()))?;
    let document =
        document.ok_or_else(|| Finding::DigestInvalidFormat("not a digest document".into()))?;
    let (Some(signature), Some(algorithm)) = (&stored.signature, &stored.signature_algorithm)
    else {
        return Err(Finding::DigestSignatureFailed(
            "signature metadata missing".into(),
        ));
    };
    if digest_key.backfill && stored.backfill_generation_timestamp.is_none() {
        return Err(Finding::DigestInvalidFormat(
            "backfill-generation-timestamp metadata missing".into(),
        ));
    }
    if algorithm != SIGNATURE_ALGORITHM
        || document.digest_signature_algorithm != SIGNATURE_ALGORITHM
    {
        return Err(Finding::DigestWrongAlgorithm(
            document.digest_signature_algorithm.clone(),
        ));
    }
    if document.digest_s3_bucket != chain.bucket || document.digest_s3_object != key {
        return Err(Finding::DigestMoved);
    }
    if document.aws_account_id != digest_key.account {
        return Err(Finding::DigestInvalidFormat(
            "awsAccountId is not the account in the digest's key".into(),
        ));
    }
    let public_key = chain
        .keys
        .get(&document.digest_public_key_fingerprint)
        .ok_or_else(|| {
            Finding::DigestPublicKeyNotFound(document.digest_public_key_fingerprint.clone())
        })?;
    let to_sign = string_to_sign(
        &document.digest_end_time,
        &document.digest_s3_bucket,
        &document.digest_s3_object,
        &sha256_hex(bytes),
        document.previous_digest_signature.as_deref(),
    );
    public_key
        .verify(&to_sign, signature)
        .map_err(|e| Finding::DigestSignatureFailed(e.to_string()))?;
    Ok(document)
}

/// Checks a verified digest's link to its previous digest.
fn check_link(
    chain: &Chain<'_>,
    document: &DigestDocument,
    parsed: &BTreeMap<&str, Option<DigestDocument>>,
    report: &mut Vec<ReportLine>,
) -> Finding {
    let Some(previous_key) = &document.previous_digest_s3_object else {
        return Finding::DigestValid;
    };
    let Some(previous) = chain.digests.get(previous_key) else {
        let before_window = previous_key
            .parse::<DigestKey>()
            .is_ok_and(|k| k.end_time < chain.window_start_ms);
        if before_window {
            return Finding::DigestValid;
        }
        report.push((
            location(
                document
                    .previous_digest_s3_bucket
                    .as_deref()
                    .unwrap_or(chain.bucket),
                previous_key,
            ),
            Finding::DigestNotFound,
        ));
        return Finding::DigestValid;
    };
    let previous_document = parsed.get(previous_key.as_str()).and_then(Option::as_ref);
    let previous_hash = previous.bytes.as_ref().ok().map(|b| sha256_hex(b));
    if document.previous_digest_hash_algorithm.as_deref() != Some("SHA-256") {
        Finding::DigestWrongAlgorithm(
            document
                .previous_digest_hash_algorithm
                .clone()
                .unwrap_or_default(),
        )
    } else if previous_hash.as_ref() != document.previous_digest_hash_value.as_ref() {
        Finding::DigestPreviousHashMismatch
    } else if previous.signature.as_ref().map(|s| s.to_lowercase())
        != document
            .previous_digest_signature
            .as_ref()
            .map(|s| s.to_lowercase())
    {
        Finding::DigestPreviousSignatureMismatch
    } else if previous_document.map(|p| p.digest_end_time.as_str())
        != Some(document.digest_start_time.as_str())
    {
        Finding::DigestTimeDiscontinuity
    } else {
        Finding::DigestValid
    }
}

/// Validates the chain; one line per digest, log file and missing period, ordered by location.
pub fn validate(chain: &Chain<'_>) -> Vec<ReportLine> {
    let mut report: Vec<ReportLine> = Vec::new();
    let mut referenced: BTreeSet<&str> = BTreeSet::new();
    let parsed: BTreeMap<&str, Option<DigestDocument>> = chain
        .digests
        .iter()
        .map(|(k, d)| {
            (
                k.as_str(),
                d.bytes
                    .as_ref()
                    .ok()
                    .and_then(|b| DigestDocument::parse(b).ok()),
            )
        })
        .collect();
    // End times of every ordinary digest present (valid or not), and of the verified ones.
    let mut present_ends: Vec<i64> = Vec::new();
    let mut verified: Vec<Verified> = Vec::new();
    let mut template: Option<DigestKey> = None;
    let mut spans: Vec<(i64, i64)> = Vec::new();
    for (key, stored) in chain.digests {
        let here = location(chain.bucket, key);
        let Ok(digest_key) = key.parse::<DigestKey>() else {
            report.push((
                here,
                Finding::DigestInvalidFormat("not a digest key".into()),
            ));
            continue;
        };
        if !digest_key.backfill {
            present_ends.push(digest_key.end_time);
            template.get_or_insert_with(|| digest_key.clone());
        }
        let document = match check_digest(
            chain,
            key,
            &digest_key,
            stored,
            parsed[key.as_str()].as_ref(),
        ) {
            Ok(document) => document,
            Err(finding) => {
                report.push((here, finding));
                continue;
            }
        };
        let finding = check_link(chain, document, &parsed, &mut report);
        if let (Ok(start), Ok(end)) = (
            cairn_model::time::parse_utc(&document.digest_start_time),
            cairn_model::time::parse_utc(&document.digest_end_time),
        ) {
            spans.push((start, end));
            if !digest_key.backfill {
                verified.push(Verified {
                    start,
                    end,
                    starting: document.previous_digest_s3_object.is_none(),
                });
            }
        }
        report.push((here, finding));
        for entry in &document.log_files {
            referenced.insert(entry.s3_object.as_str());
            let log_here = location(&entry.s3_bucket, &entry.s3_object);
            let log_finding = match chain.logs.get(&entry.s3_object) {
                None => Finding::LogNotFound,
                Some(Err(LogReadError::TrailingData)) => Finding::LogTrailingData,
                Some(Err(LogReadError::InvalidFormat(e))) => Finding::LogInvalidFormat(e.clone()),
                Some(Ok(_)) if entry.hash_algorithm != "SHA-256" => Finding::LogHashMismatch,
                Some(Ok(hash)) if *hash != entry.hash_value => Finding::LogHashMismatch,
                Some(Ok(_)) => Finding::LogValid,
            };
            report.push((log_here, log_finding));
        }
    }
    let (tail_from, stopped) = report_missing(
        chain,
        &mut report,
        &mut present_ends,
        &mut verified,
        template.or_else(|| chain.key_template.clone()),
    );
    // Log files no digest lists though one must: delivered inside a digested span, or after
    // the newest digest of a running chain, in a period whose digest is already due.
    let period = chain.period_ms.max(1000);
    let tail_due = |delivered: i64| {
        tail_from.is_some_and(|from| {
            // Keys hold the delivery time to the minute only.
            if delivered < from.div_euclid(60_000) * 60_000 {
                return false;
            }
            // Delivered before a known stop: the final digest at the stop lists it.
            if stopped.is_some_and(|t| delivered + 60_000 <= t) {
                return true;
            }
            let periods = ((delivered.max(from) - from) + period - 1) / period;
            from + period * periods.max(1) + period / 4 <= chain.due_until_ms
        })
    };
    // A file whose minute reaches past the newest digest may have been delivered after it: in
    // a running chain a later digest lists it (the tail rule); after a final digest it may
    // never be (validation disabled), so it is not reported.
    let chain_end = spans.iter().map(|&(_, e)| e).max().unwrap_or(i64::MIN);
    let stopped_for_good = chain
        .logging
        .filter(|l| !l.is_logging)
        .and_then(|l| l.stopped_at);
    // No digest verified at all: nothing vouches for any log file in the window, so each is
    // reported (deleting every digest must not turn into "No digests found" and success).
    let unvouched = verified.is_empty();
    for key in chain.present_logs {
        if referenced.contains(key.as_str()) {
            continue;
        }
        if unvouched {
            report.push((location(chain.bucket, key), Finding::LogUnreferenced));
            continue;
        }
        let delivered = key.parse::<LogFileKey>().map(|k| k.delivered_at);
        // A key names its delivery minute: the file was delivered in [t, t + 1 min). In a
        // running chain, a file that may have been delivered after the newest digest is listed
        // by a later one: the tail rule decides.
        // When the trail's status says it stopped (and has not logged since), nothing was
        // delivered after the stop: a file of the chain's time up to the stop's minute must be
        // listed, even one in the minute the final digest ends.
        let stopped_listed = |t: i64| {
            stopped_for_good
                .is_some_and(|stop| t <= stop && spans.iter().any(|&(s, _)| t + 60_000 > s))
        };
        let inside = delivered.as_ref().is_ok_and(|&t| {
            let settled = t + 60_000 <= chain_end;
            (settled && spans.iter().any(|&(s, e)| t < e && t + 60_000 > s))
                || tail_due(t)
                || stopped_listed(t)
        });
        if inside {
            report.push((location(chain.bucket, key), Finding::LogUnreferenced));
        }
    }
    report.sort();
    report
}

/// Adds a `DigestMissing` line for every period that must have a digest and has none; returns
/// the end of the newest digest when the chain goes on after it (it is not a final digest), and
/// the stop after it that a final digest must close, when the trail's status tells of one.
fn report_missing(
    chain: &Chain<'_>,
    report: &mut Vec<ReportLine>,
    present_ends: &mut [i64],
    verified: &mut [Verified],
    template: Option<DigestKey>,
) -> (Option<i64>, Option<i64>) {
    let period = chain.period_ms.max(1000);
    let tolerance = period / 4;
    present_ends.sort_unstable();
    verified.sort_by_key(|v| v.end);
    // Ends already reported as `not found` through a link.
    let not_found: Vec<i64> = report
        .iter()
        .filter(|(_, f)| *f == Finding::DigestNotFound)
        .filter_map(|(at, _)| {
            at.strip_prefix("s3://")?
                .split_once('/')?
                .1
                .parse::<DigestKey>()
                .ok()
        })
        .map(|k| k.end_time)
        .collect();
    let covered = |t: i64| {
        present_ends
            .iter()
            .chain(not_found.iter())
            .any(|&e| (e - t).abs() <= tolerance)
    };
    let mut missing: Vec<i64> = Vec::new();
    let expect = |from: i64, until: i64, missing: &mut Vec<i64>| {
        let mut due = from + period;
        while due <= until + tolerance {
            if !covered(due) {
                missing.push(due);
            }
            due += period;
        }
    };
    for pair in verified.windows(2) {
        let (older, newer) = (&pair[0], &pair[1]);
        if !newer.starting {
            expect(older.end, newer.start, &mut missing);
        }
    }
    let mut tail_from = None;
    let mut final_missing = None;
    let mut stopped_after = None;
    if let Some(newest) = verified.last() {
        let short = newest.end - newest.start < period - tolerance;
        let on_boundary = newest.end.rem_euclid(period) == 0;
        // A final digest ends the chain, unless the trail logs again since it ended: then the
        // later digests (a starting one, at least) must be there.
        let resumed = chain.logging.is_some_and(|l| {
            l.is_logging && l.started_at.is_none_or(|s| s >= newest.end - tolerance)
        });
        // The trail stopped (and did not start again): the chain ends with a final digest at
        // or after the stop (Cairn ends it at the second it finished delivering, a second at
        // least after the previous digest).
        let stop = chain
            .logging
            .and_then(|l| l.stopped_at.filter(|_| !l.is_logging));
        // A digest ending at the stop's second is its final one only if it is short: a
        // period's digest can end in that second just before the stop (the stop time may be
        // known to the second only, so a period's digest ending exactly then proves nothing).
        let ends_at_stop = stop.is_some_and(|t| {
            newest.end > t
                || (newest.end == t && short)
                || (short && newest.end >= t.div_euclid(1000) * 1000)
        });
        let is_final = (short && !on_boundary && !resumed) || ends_at_stop;
        // Stopped at or after the newest digest's end: digests are due up to the stop, and then
        // the final digest (unless a later digest is present but failed its checks: reported
        // already).
        let later_present = present_ends.iter().any(|&e| e > newest.end);
        let stopped = stop
            .filter(|&t| !is_final && t >= newest.end && t <= chain.due_until_ms && !later_present);
        if !is_final {
            let until = stopped.map_or(chain.due_until_ms, |t| t.min(chain.due_until_ms));
            expect(newest.end, until - tolerance, &mut missing);
            tail_from = Some(newest.end);
        }
        if let Some(t) = stopped.filter(|_| !is_final) {
            final_missing = Some(t);
            stopped_after = Some(t);
        }
    } else if let Some(logging) = chain.logging {
        // No digest at all, though the trail logged with validation in the window.
        let logged = logging.is_logging || logging.stopped_at.is_some();
        if logged {
            let from = logging
                .started_at
                .unwrap_or(chain.window_start_ms)
                .max(chain.window_start_ms);
            let until = logging
                .stopped_at
                .filter(|_| !logging.is_logging)
                .map_or(chain.due_until_ms, |t| t.min(chain.due_until_ms));
            let first = from.div_euclid(period) * period;
            expect(first, until - tolerance, &mut missing);
            if let Some(t) = logging.stopped_at.filter(|&t| {
                !logging.is_logging && t >= chain.window_start_ms && t <= chain.due_until_ms
            }) {
                final_missing = Some(t);
            }
        }
    }
    if let Some(t) = final_missing {
        if !missing.contains(&t) {
            missing.push(t);
        }
    }
    for due in missing {
        let at = match &template {
            Some(key) => location(
                chain.bucket,
                &DigestKey {
                    end_time: due,
                    backfill: false,
                    ..key.clone()
                }
                .to_string(),
            ),
            None => format!(
                "digest due at {}",
                cairn_model::time::format_utc_seconds(due)
            ),
        };
        report.push((at, Finding::DigestMissing));
    }
    (tail_from, stopped_after)
}

#[cfg(test)]
#[path = "validate/tests.rs"]
mod tests;
