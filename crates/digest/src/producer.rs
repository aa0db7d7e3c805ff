//! One step of a digest chain (spec §3.9): from the log files delivered in an hour window and
//! the previous digest of the same (trail, source region), the next digest's key, bytes and
//! signature. Scheduling and storage are the caller's.

use crate::document::{sha256_hex, DigestDocument, LogFileEntry};
use crate::signing::{string_to_sign, SigningKey, SIGNATURE_ALGORITHM};
use cairn_logfile::keys::DigestKey;

/// A log file delivered in the window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveredLog {
    /// Its key.
    pub key: String,
    /// SHA-256 hex of its uncompressed bytes.
    pub sha256_hex: String,
    /// Latest `eventTime` in it.
    pub newest_event_time: String,
    /// Earliest `eventTime` in it.
    pub oldest_event_time: String,
}

/// The previous digest of the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreviousDigest {
    /// Its bucket.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// SHA-256 hex of its uncompressed bytes.
    pub sha256_hex: String,
    /// Its signature (hex).
    pub signature: String,
}

/// A digest ready to store: gzip `bytes` at `key` with metadata `signature` and
/// `signature-algorithm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducedDigest {
    /// Object key.
    pub key: String,
    /// Uncompressed JSON (what is hashed).
    pub bytes: Vec<u8>,
    /// Lowercase hex signature.
    pub signature: String,
    /// This digest as the next one's `previous`.
    pub as_previous: PreviousDigest,
}

/// Builds and signs the digest for `key` covering `logs`, linked to `previous` (a starting
/// digest when `None`).
pub fn produce(
    key: &DigestKey,
    bucket: &str,
    digest_start_time: &str,
    logs: &[DeliveredLog],
    previous: Option<&PreviousDigest>,
    signing_key: &SigningKey,
) -> ProducedDigest {
    let key_text = key.to_string();
    let digest_end_time = cairn_model::time::format_utc_seconds(key.end_time);
    let newest = logs.iter().map(|l| l.newest_event_time.clone()).max();
    let oldest = logs.iter().map(|l| l.oldest_event_time.clone()).min();
    let document = DigestDocument {
        aws_account_id: key.account.clone(),
        digest_start_time: digest_start_time.to_owned(),
        digest_end_time: digest_end_time.clone(),
        digest_s3_bucket: bucket.to_owned(),
        digest_s3_object: key_text.clone(),
        digest_public_key_fingerprint: signing_key.public_key().fingerprint(),
        digest_signature_algorithm: SIGNATURE_ALGORITHM.to_owned(),
        newest_event_time: newest,
        oldest_event_time: oldest,
        previous_digest_s3_bucket: previous.map(|p| p.bucket.clone()),
        previous_digest_s3_object: previous.map(|p| p.key.clone()),
        previous_digest_hash_value: previous.map(|p| p.sha256_hex.clone()),
        previous_digest_hash_algorithm: previous.map(|_| "SHA-256".to_owned()),
        previous_digest_signature: previous.map(|p| p.signature.clone()),
        log_files: logs
            .iter()
            .map(|l| LogFileEntry {
                s3_bucket: bucket.to_owned(),
                s3_object: l.key.clone(),
                hash_value: l.sha256_hex.clone(),
                hash_algorithm: "SHA-256".to_owned(),
                newest_event_time: l.newest_event_time.clone(),
                oldest_event_time: l.oldest_event_time.clone(),
            })
            .collect(),
    };
    let bytes = document.to_bytes();
    let hash = sha256_hex(&bytes);
    let to_sign = string_to_sign(
        &digest_end_time,
        bucket,
        &key_text,
        &hash,
        previous.map(|p| p.signature.as_str()),
    );
    let signature = signing_key.sign(&to_sign);
    ProducedDigest {
        as_previous: PreviousDigest {
            bucket: bucket.to_owned(),
            key: key_text.clone(),
            sha256_hex: hash,
            signature: signature.clone(),
        },
        key: key_text,
        bytes,
        signature,
    }
}

/// The digest key of the test chains: account 111122223333, trail `main`, eu-west-1.
#[cfg(test)]
pub(crate) fn test_digest_key(end: i64) -> DigestKey {
    DigestKey {
        prefix: None,
        org_id: None,
        account: "111122223333".into(),
        region: "eu-west-1".into(),
        trail_name: "main".into(),
        home_region: "eu-west-1".into(),
        end_time: end,
        backfill: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::string_to_sign;

    #[test]
    fn a_starting_digest_then_a_linked_one() {
        let signing_key = SigningKey::generate().expect("key");
        let public = signing_key.public_key();
        let end = 1_772_445_691_000; // 2026-03-02T10:01:31Z
        let first = produce(
            &test_digest_key(end),
            "audit-bucket",
            "2026-03-02T09:01:31Z",
            &[],
            None,
            &signing_key,
        );
        assert_eq!(
            first.key,
            "AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2026/03/02/111122223333_CloudTrail-Digest_eu-west-1_main_eu-west-1_20260302T100131Z.json.gz"
        );
        let document = DigestDocument::parse(&first.bytes).expect("json");
        assert_eq!(document.digest_end_time, "2026-03-02T10:01:31Z");
        assert_eq!(document.previous_digest_signature, None);
        assert_eq!(document.newest_event_time, None);
        assert_eq!(document.log_files, vec![]);
        // Same shape as the spec's vector, with this key's fingerprint.
        let text = String::from_utf8(first.bytes.clone()).expect("utf8");
        assert!(
            text.contains(r#""previousDigestSignature":null,"logFiles":[]}"#),
            "{text}"
        );
        let to_sign = string_to_sign(
            &document.digest_end_time,
            "audit-bucket",
            &first.key,
            &sha256_hex(&first.bytes),
            None,
        );
        public
            .verify(&to_sign, &first.signature)
            .expect("starting digest verifies");

        let logs = vec![DeliveredLog {
            key: "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/03/02/x.json.gz".into(),
            sha256_hex: sha256_hex(br#"{"Records":[]}"#),
            newest_event_time: "2026-03-02T10:30:00Z".into(),
            oldest_event_time: "2026-03-02T10:05:00Z".into(),
        }];
        let second = produce(
            &test_digest_key(end + 3_600_000),
            "audit-bucket",
            "2026-03-02T10:01:31Z",
            &logs,
            Some(&first.as_previous),
            &signing_key,
        );
        let document = DigestDocument::parse(&second.bytes).expect("json");
        assert_eq!(
            document.previous_digest_hash_value.as_deref(),
            Some(sha256_hex(&first.bytes).as_str())
        );
        assert_eq!(
            document.previous_digest_signature.as_deref(),
            Some(first.signature.as_str())
        );
        assert_eq!(
            document.log_files[0].hash_value,
            "26a792db36a3afba23b1dd277fcc9f15a7313c4a92e4e4cc0494846af345ecff"
        );
        assert_eq!(
            document.oldest_event_time.as_deref(),
            Some("2026-03-02T10:05:00Z")
        );
        let to_sign = string_to_sign(
            &document.digest_end_time,
            "audit-bucket",
            &second.key,
            &sha256_hex(&second.bytes),
            Some(&first.signature),
        );
        public
            .verify(&to_sign, &second.signature)
            .expect("linked digest verifies");
        // Any change to the stored bytes breaks the signature.
        let mut tampered = second.bytes.clone();
        tampered[10] ^= 1;
        let to_sign = string_to_sign(
            &document.digest_end_time,
            "audit-bucket",
            &second.key,
            &sha256_hex(&tampered),
            Some(&first.signature),
        );
        assert!(public.verify(&to_sign, &second.signature).is_err());
    }
}
