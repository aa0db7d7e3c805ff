//! Validation of one digest chain (one trail, account and source region) over a store's
//! contents, stricter than `aws cloudtrail validate-logs` (spec §3.10–3.12): besides every check
//! the AWS CLI makes, it requires a digest for every period up to the end of the window (so
//! deleting the newest digests is caught), compares `previousDigestHashValue` and
//! `previousDigestSignature` with the actual previous digest, checks that each digest starts
//! where the previous one ended, accepts only SHA256withRSA / SHA-256, reports every missing
//! digest individually and every log file no digest references. Pure: the caller lists and
//! reads the store.

use crate::document::{sha256_hex, DigestDocument};
use crate::signing::{string_to_sign, PublicKey, SIGNATURE_ALGORITHM};
use cairn_logfile::keys::DigestKey;
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
}

/// Why a log file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogReadError {
    /// Bytes after the end of the first gzip member.
    TrailingData,
    /// Not gzip, or damaged.
    InvalidFormat(String),
}

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
}

/// What to validate.
#[derive(Debug)]
pub struct Chain<'a> {
    /// The bucket (as written in digests).
    pub bucket: &'a str,
    /// Digests of this chain in the store, by key.
    pub digests: &'a BTreeMap<String, StoredDigest>,
    /// Log files of this (account, region) in the store, by key: decompressed bytes.
    pub logs: &'a BTreeMap<String, Result<Vec<u8>, LogReadError>>,
    /// Public keys by fingerprint.
    pub keys: &'a HashMap<String, PublicKey>,
    /// Digests are due every `period_ms` (an hour in production).
    pub period_ms: i64,
    /// Validate digests ending up to this time (epoch ms); every period before it must have one.
    pub end_ms: i64,
}

/// One line of the report.
pub type ReportLine = (String, Finding);

fn location(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// Validates the chain; one line per digest, log file and missing period, ordered by object.
pub fn validate(chain: &Chain<'_>) -> Vec<ReportLine> {
    let mut report: Vec<ReportLine> = Vec::new();
    let mut referenced: BTreeSet<&str> = BTreeSet::new();
    let mut end_times: Vec<i64> = Vec::new();
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
    for (key, stored) in chain.digests {
        let here = location(chain.bucket, key);
        let Ok(digest_key) = key.parse::<DigestKey>() else {
            report.push((
                here,
                Finding::DigestInvalidFormat("not a digest key".into()),
            ));
            continue;
        };
        if digest_key.backfill {
            continue;
        }
        end_times.push(digest_key.end_time);
        let bytes = match &stored.bytes {
            Ok(bytes) => bytes,
            Err(e) => {
                report.push((here, Finding::DigestInvalidFormat(e.clone())));
                continue;
            }
        };
        let Some(document) = &parsed[key.as_str()] else {
            report.push((
                here,
                Finding::DigestInvalidFormat("not a digest document".into()),
            ));
            continue;
        };
        let (Some(signature), Some(algorithm)) = (&stored.signature, &stored.signature_algorithm)
        else {
            report.push((
                here,
                Finding::DigestSignatureFailed("signature metadata missing".into()),
            ));
            continue;
        };
        if algorithm != SIGNATURE_ALGORITHM
            || document.digest_signature_algorithm != SIGNATURE_ALGORITHM
        {
            report.push((
                here,
                Finding::DigestWrongAlgorithm(document.digest_signature_algorithm.clone()),
            ));
            continue;
        }
        if document.digest_s3_bucket != chain.bucket || document.digest_s3_object != *key {
            report.push((here, Finding::DigestMoved));
            continue;
        }
        let Some(public_key) = chain.keys.get(&document.digest_public_key_fingerprint) else {
            report.push((
                here,
                Finding::DigestPublicKeyNotFound(document.digest_public_key_fingerprint.clone()),
            ));
            continue;
        };
        let to_sign = string_to_sign(
            &document.digest_end_time,
            &document.digest_s3_bucket,
            &document.digest_s3_object,
            &sha256_hex(bytes),
            document.previous_digest_signature.as_deref(),
        );
        if let Err(e) = public_key.verify(&to_sign, signature) {
            report.push((here, Finding::DigestSignatureFailed(e.to_string())));
            continue;
        }
        // The link to the previous digest, checked against the actual previous digest.
        let mut finding = Finding::DigestValid;
        if let Some(previous_key) = &document.previous_digest_s3_object {
            match (
                chain.digests.get(previous_key),
                parsed.get(previous_key.as_str()).and_then(Option::as_ref),
            ) {
                (None, _) => report.push((
                    location(chain.bucket, previous_key),
                    Finding::DigestNotFound,
                )),
                (Some(previous), previous_document) => {
                    let previous_hash = previous.bytes.as_ref().ok().map(|b| sha256_hex(b));
                    if document.previous_digest_hash_algorithm.as_deref() != Some("SHA-256") {
                        finding = Finding::DigestWrongAlgorithm(
                            document
                                .previous_digest_hash_algorithm
                                .clone()
                                .unwrap_or_default(),
                        );
                    } else if previous_hash.as_ref() != document.previous_digest_hash_value.as_ref()
                    {
                        finding = Finding::DigestPreviousHashMismatch;
                    } else if previous.signature.as_ref().map(|s| s.to_lowercase())
                        != document
                            .previous_digest_signature
                            .as_ref()
                            .map(|s| s.to_lowercase())
                    {
                        finding = Finding::DigestPreviousSignatureMismatch;
                    } else if previous_document.map(|p| p.digest_end_time.as_str())
                        != Some(document.digest_start_time.as_str())
                    {
                        finding = Finding::DigestTimeDiscontinuity;
                    }
                }
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
                Some(Ok(bytes)) if sha256_hex(bytes) != entry.hash_value => {
                    Finding::LogHashMismatch
                }
                Some(Ok(_)) => Finding::LogValid,
            };
            report.push((log_here, log_finding));
        }
    }
    // Every period from the oldest digest to the end of the window must have a digest.
    end_times.sort_unstable();
    if let Some(&first) = end_times.first() {
        let present: BTreeSet<i64> = end_times.iter().copied().collect();
        let mut due = first + chain.period_ms;
        while due <= chain.end_ms {
            if !present.contains(&due) {
                let slot = cairn_model::time::format_utc_seconds(due);
                report.push((format!("digest due at {slot}"), Finding::DigestMissing));
            }
            due += chain.period_ms;
        }
    }
    // Log files older than the newest digest that no digest lists.
    let newest_end = end_times.last().copied().unwrap_or(i64::MIN);
    for key in chain.logs.keys() {
        let delivered = key
            .parse::<cairn_logfile::keys::LogFileKey>()
            .map(|k| k.delivered_at)
            .unwrap_or(i64::MIN);
        if !referenced.contains(key.as_str()) && delivered < newest_end {
            report.push((location(chain.bucket, key), Finding::LogUnreferenced));
        }
    }
    report.sort();
    report
}

#[cfg(test)]
#[path = "validate/tests.rs"]
mod tests;
