//! The digest document (spec §3.2).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of `bytes` (log files and digests are hashed uncompressed).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One log file a digest covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFileEntry {
    /// Bucket of the log file.
    pub s3_bucket: String,
    /// Full key of the log file.
    pub s3_object: String,
    /// Lowercase hex SHA-256 of the uncompressed log file.
    pub hash_value: String,
    /// `"SHA-256"`.
    pub hash_algorithm: String,
    /// Latest `eventTime` in the file.
    pub newest_event_time: String,
    /// Earliest `eventTime` in the file.
    pub oldest_event_time: String,
}

/// A digest file's JSON, members in AWS's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestDocument {
    /// Account the digest was delivered for.
    pub aws_account_id: String,
    /// Start of the covered window, `YYYY-MM-DDTHH:MM:SSZ`.
    pub digest_start_time: String,
    /// End of the window (signed verbatim).
    pub digest_end_time: String,
    /// Bucket of this digest.
    #[serde(rename = "digestS3Bucket")]
    pub digest_s3_bucket: String,
    /// Key of this digest.
    #[serde(rename = "digestS3Object")]
    pub digest_s3_object: String,
    /// MD5 fingerprint of the signing key.
    pub digest_public_key_fingerprint: String,
    /// `"SHA256withRSA"`.
    pub digest_signature_algorithm: String,
    /// Latest `eventTime` over the listed files; `null` when there are none.
    pub newest_event_time: Option<String>,
    /// Earliest `eventTime` over the listed files; `null` when there are none.
    pub oldest_event_time: Option<String>,
    /// Previous digest's bucket (`null` in a starting digest).
    #[serde(rename = "previousDigestS3Bucket")]
    pub previous_digest_s3_bucket: Option<String>,
    /// Previous digest's key.
    #[serde(rename = "previousDigestS3Object")]
    pub previous_digest_s3_object: Option<String>,
    /// SHA-256 of the previous digest's uncompressed bytes.
    pub previous_digest_hash_value: Option<String>,
    /// `"SHA-256"`.
    pub previous_digest_hash_algorithm: Option<String>,
    /// The previous digest's signature (hex).
    pub previous_digest_signature: Option<String>,
    /// The log files, possibly none.
    pub log_files: Vec<LogFileEntry>,
}

impl DigestDocument {
    /// The exact bytes to store (compact JSON, AWS's member order) — hash and sign these.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a digest document always serializes")
    }

    /// Reads a digest file's (uncompressed) JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Spec §3.6 test vector: these exact bytes.
#[cfg(test)]
pub(crate) fn tests_vector() -> &'static str {
    tests::VECTOR
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec §3.6 test vector: these exact bytes.
    pub(crate) const VECTOR: &str = r#"{"awsAccountId":"111122223333","digestStartTime":"2026-03-02T09:01:31Z","digestEndTime":"2026-03-02T10:01:31Z","digestS3Bucket":"audit-bucket","digestS3Object":"AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2026/03/02/111122223333_CloudTrail-Digest_eu-west-1_main_eu-west-1_20260302T100131Z.json.gz","digestPublicKeyFingerprint":"7f3f401420072e50a65a141430817ab3","digestSignatureAlgorithm":"SHA256withRSA","newestEventTime":null,"oldestEventTime":null,"previousDigestS3Bucket":null,"previousDigestS3Object":null,"previousDigestHashValue":null,"previousDigestHashAlgorithm":null,"previousDigestSignature":null,"logFiles":[]}"#;

    #[test]
    fn hashes_match_the_spec_vectors() {
        assert_eq!(
            sha256_hex(br#"{"Records":[]}"#),
            "26a792db36a3afba23b1dd277fcc9f15a7313c4a92e4e4cc0494846af345ecff"
        );
        assert_eq!(
            sha256_hex(VECTOR.as_bytes()),
            "c50f71a0f7a98ad98f96ba222bd9f8c820242e53fe70c0b65f3230f653e04e2f"
        );
    }

    #[test]
    fn serializes_byte_for_byte_like_the_vector() {
        let document = DigestDocument::parse(VECTOR.as_bytes()).expect("parse");
        assert_eq!(
            document.to_bytes(),
            VECTOR.as_bytes(),
            "member order, nulls and empty logFiles as AWS writes them"
        );
    }

    #[test]
    fn the_sample_digests_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/cloudtrail-samples/_normalized");
        let mut parsed = 0;
        for name in [
            "awsdocs-cloudtrail-user-guide.digests.ndjson",
            "otel-collector-contrib.digests.ndjson",
        ] {
            let text = std::fs::read_to_string(dir.join(name)).expect("sample digests");
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let document = DigestDocument::parse(line.as_bytes())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(document.digest_signature_algorithm, "SHA256withRSA");
                parsed += 1;
            }
        }
        assert_eq!(parsed, 4);
    }
}
