//! Object keys, built and parsed in one place (spec §2.1).
//!
//! ```text
//! log:     [<prefix>/]AWSLogs/[<o-id>/]<acct>/CloudTrail/<region>/<YYYY>/<MM>/<DD>/<acct>_CloudTrail_<region>_<YYYYMMDD>T<HHmm>Z_<unique16>.json.gz
//! insight: [<prefix>/]AWSLogs/[<o-id>/]<acct>/CloudTrail-Insight/<region>/<YYYY>/<MM>/<DD>/<acct>_CloudTrail-Insight_<region>_<YYYYMMDD>T<HHmm>Z_<unique16>.json.gz
//! digest:  [<prefix>/]AWSLogs/[<o-id>/]<acct>/CloudTrail-Digest/<region>/<YYYY>/<MM>/<DD>/<acct>_CloudTrail-Digest_<region>_<trail>_<home-region>_<YYYYMMDD>T<HHmmss>Z[_backfill].json.gz
//! ```
//!
//! Dates are UTC: the delivery time for log and Insights files, the digest's end time for
//! digests. Trail names may contain `_`, so digest names are parsed from fixed offsets at
//! the end, never split on `_`.

use cairn_model::time::{civil_from_days, days_from_civil, EpochMillis};
use sha2::{Digest, Sha256};
use std::fmt;

/// Length of the unique part of a log file name.
pub const UNIQUE_LEN: usize = 16;

/// Which kind of records a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Management, data and network-activity records (`CloudTrail`).
    Log,
    /// Insights records (`CloudTrail-Insight`).
    Insight,
}

impl FileKind {
    fn folder(self) -> &'static str {
        match self {
            Self::Log => "CloudTrail",
            Self::Insight => "CloudTrail-Insight",
        }
    }
}

/// The key of a log or Insights file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileKey {
    /// The trail's `S3KeyPrefix`, if any (without trailing slash).
    pub prefix: Option<String>,
    /// The organization id, for organization trails.
    pub org_id: Option<String>,
    /// The account whose events the file holds.
    pub account: String,
    /// The region the events were recorded in.
    pub region: String,
    /// Log or Insights.
    pub kind: FileKind,
    /// Delivery time, truncated to the minute in the name.
    pub delivered_at: EpochMillis,
    /// 16 letters and digits.
    pub unique: String,
}

/// The key of a digest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestKey {
    /// The trail's `S3KeyPrefix`, if any.
    pub prefix: Option<String>,
    /// The organization id, for organization trails.
    pub org_id: Option<String>,
    /// The account whose files the digest covers.
    pub account: String,
    /// The source region the digest covers.
    pub region: String,
    /// The trail's name (not ARN).
    pub trail_name: String,
    /// The trail's home region.
    pub home_region: String,
    /// The digest's end time, truncated to the second in the name.
    pub end_time: EpochMillis,
    /// A backfill digest.
    pub backfill: bool,
}

/// Why a key does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key:?} is not a CloudTrail {what} key: {reason}")]
pub struct KeyParseError {
    /// The key.
    pub key: String,
    /// Log or digest.
    pub what: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
}

fn civil(millis: EpochMillis) -> Civil {
    let secs = millis.div_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    Civil {
        year,
        month,
        day,
        hour: sod / 3600,
        minute: (sod / 60) % 60,
        second: sod % 60,
    }
}

fn base(prefix: &Option<String>, org_id: &Option<String>, account: &str) -> String {
    let mut out = String::new();
    if let Some(prefix) = prefix.as_deref().filter(|p| !p.is_empty()) {
        out.push_str(prefix);
        out.push('/');
    }
    out.push_str("AWSLogs/");
    if let Some(org) = org_id {
        out.push_str(org);
        out.push('/');
    }
    out.push_str(account);
    out
}

/// A deterministic unique part: 16 letters and digits derived from `seed` (the same batch
/// always gets the same name, so a retried upload is recognised, never duplicated).
pub fn unique_from(seed: &[u8]) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    Sha256::digest(seed)
        .iter()
        .take(UNIQUE_LEN)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

impl fmt::Display for LogFileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = civil(self.delivered_at);
        let folder = self.kind.folder();
        write!(
            f,
            "{}/{folder}/{region}/{:04}/{:02}/{:02}/{account}_{folder}_{region}_{:04}{:02}{:02}T{:02}{:02}Z_{}.json.gz",
            base(&self.prefix, &self.org_id, &self.account),
            c.year,
            c.month,
            c.day,
            c.year,
            c.month,
            c.day,
            c.hour,
            c.minute,
            self.unique,
            region = self.region,
            account = self.account,
        )
    }
}

impl fmt::Display for DigestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = civil(self.end_time);
        write!(
            f,
            "{}/CloudTrail-Digest/{region}/{:04}/{:02}/{:02}/{account}_CloudTrail-Digest_{region}_{}_{}_{:04}{:02}{:02}T{:02}{:02}{:02}Z{}.json.gz",
            base(&self.prefix, &self.org_id, &self.account),
            c.year,
            c.month,
            c.day,
            self.trail_name,
            self.home_region,
            c.year,
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second,
            if self.backfill { "_backfill" } else { "" },
            region = self.region,
            account = self.account,
        )
    }
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_org(s: &str) -> bool {
    s.len() > 2
        && s.starts_with("o-")
        && s[2..]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn number(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `YYYYMMDDTHHmm[ss]Z` → epoch millis.
fn parse_stamp(stamp: &str, with_seconds: bool) -> Option<EpochMillis> {
    let len = if with_seconds { 16 } else { 14 };
    if stamp.len() != len || stamp.as_bytes()[8] != b'T' || !stamp.ends_with('Z') {
        return None;
    }
    let (y, mo, d) = (
        number(&stamp[0..4])?,
        number(&stamp[4..6])?,
        number(&stamp[6..8])?,
    );
    let (h, mi) = (number(&stamp[9..11])?, number(&stamp[11..13])?);
    let s = if with_seconds {
        number(&stamp[13..15])?
    } else {
        0
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    Some((((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + s) * 1000)
}

/// Splits `[<prefix>/]AWSLogs/[<o-id>/]<acct>/<rest>`.
fn split_base(key: &str) -> Option<(Option<String>, Option<String>, &str, &str)> {
    let at = if key.starts_with("AWSLogs/") {
        0
    } else {
        key.find("/AWSLogs/")? + 1
    };
    let prefix = (at > 0).then(|| key[..at - 1].to_owned());
    let rest = &key[at + "AWSLogs/".len()..];
    let (first, rest) = rest.split_once('/')?;
    if is_org(first) {
        let (account, rest) = rest.split_once('/')?;
        is_account(account).then(|| (prefix, Some(first.to_owned()), account, rest))
    } else {
        is_account(first).then_some((prefix, None, first, rest))
    }
}

impl std::str::FromStr for LogFileKey {
    type Err = KeyParseError;

    fn from_str(key: &str) -> Result<Self, Self::Err> {
        let err = |reason| KeyParseError {
            key: key.to_owned(),
            what: "log file",
            reason,
        };
        let (prefix, org_id, account, rest) =
            split_base(key).ok_or_else(|| err("no AWSLogs/<account>/ part"))?;
        let (folder, rest) = rest.split_once('/').ok_or_else(|| err("no folder"))?;
        let kind = match folder {
            "CloudTrail" => FileKind::Log,
            "CloudTrail-Insight" => FileKind::Insight,
            _ => return Err(err("folder is not CloudTrail or CloudTrail-Insight")),
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let [region, year, month, day, name] = parts.as_slice() else {
            return Err(err("expected <region>/<YYYY>/<MM>/<DD>/<name>"));
        };
        let stem = name
            .strip_suffix(".json.gz")
            .ok_or_else(|| err("name does not end in .json.gz"))?;
        let expected_start = format!("{account}_{folder}_{region}_");
        let tail = stem
            .strip_prefix(&expected_start)
            .ok_or_else(|| err("name does not repeat account, folder and region"))?;
        let (stamp, unique) = tail.split_once('_').ok_or_else(|| err("no unique part"))?;
        if unique.len() != UNIQUE_LEN || !unique.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err("unique part is not 16 letters and digits"));
        }
        let delivered_at =
            parse_stamp(stamp, false).ok_or_else(|| err("bad YYYYMMDDTHHmmZ timestamp"))?;
        if format!("{year}{month}{day}") != stamp[..8] {
            return Err(err("date folders disagree with the file name"));
        }
        Ok(Self {
            prefix,
            org_id,
            account: account.to_owned(),
            region: (*region).to_owned(),
            kind,
            delivered_at,
            unique: unique.to_owned(),
        })
    }
}

impl std::str::FromStr for DigestKey {
    type Err = KeyParseError;

    fn from_str(key: &str) -> Result<Self, Self::Err> {
        let err = |reason| KeyParseError {
            key: key.to_owned(),
            what: "digest",
            reason,
        };
        let (prefix, org_id, account, rest) =
            split_base(key).ok_or_else(|| err("no AWSLogs/<account>/ part"))?;
        let rest = rest
            .strip_prefix("CloudTrail-Digest/")
            .ok_or_else(|| err("folder is not CloudTrail-Digest"))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [region, year, month, day, name] = parts.as_slice() else {
            return Err(err("expected <region>/<YYYY>/<MM>/<DD>/<name>"));
        };
        let stem = name
            .strip_suffix(".json.gz")
            .ok_or_else(|| err("name does not end in .json.gz"))?;
        let (stem, backfill) = match stem.strip_suffix("_backfill") {
            Some(stem) => (stem, true),
            None => (stem, false),
        };
        // Fixed offsets from the end: _YYYYMMDDTHHmmssZ.
        if stem.len() < 17 {
            return Err(err("name too short"));
        }
        let (head, stamp) = stem.split_at(stem.len() - 16);
        let head = head.strip_suffix('_').ok_or_else(|| err("no timestamp"))?;
        let end_time =
            parse_stamp(stamp, true).ok_or_else(|| err("bad YYYYMMDDTHHmmssZ timestamp"))?;
        if format!("{year}{month}{day}") != stamp[..8] {
            return Err(err("date folders disagree with the file name"));
        }
        let middle = head
            .strip_prefix(&format!("{account}_CloudTrail-Digest_{region}_"))
            .ok_or_else(|| err("name does not repeat account and region"))?;
        let (trail_name, home_region) = middle
            .rsplit_once('_')
            .ok_or_else(|| err("no trail name and home region"))?;
        if trail_name.is_empty() || home_region.is_empty() {
            return Err(err("empty trail name or home region"));
        }
        Ok(Self {
            prefix,
            org_id,
            account: account.to_owned(),
            region: (*region).to_owned(),
            trail_name: trail_name.to_owned(),
            home_region: home_region.to_owned(),
            end_time,
            backfill,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_model::time::parse_utc;

    fn t(text: &str) -> EpochMillis {
        parse_utc(text).expect("time")
    }

    /// `(key, prefix, org, account, region, kind, delivered (minute), unique)` — built and parsed.
    #[test]
    fn log_file_keys_table() {
        let cases = [
            (
                "AWSLogs/210987654321/CloudTrail/eu-west-1/2026/02/11/210987654321_CloudTrail_eu-west-1_20260211T0835Z_k3Jd9sQm2LpX0aBc.json.gz",
                None,
                None,
                FileKind::Log,
                "2026-02-11T08:35:00Z",
            ),
            (
                "trail/logs/AWSLogs/o-abc123def4/111122223333/CloudTrail/us-east-1/2025/12/31/111122223333_CloudTrail_us-east-1_20251231T2359Z_AAAAAAAAAAAAAAAA.json.gz",
                Some("trail/logs"),
                Some("o-abc123def4"),
                FileKind::Log,
                "2025-12-31T23:59:00Z",
            ),
            (
                "AWSLogs/123456789012/CloudTrail-Insight/ap-south-1/2024/02/29/123456789012_CloudTrail-Insight_ap-south-1_20240229T0000Z_0123456789abcdef.json.gz",
                None,
                None,
                FileKind::Insight,
                "2024-02-29T00:00:00Z",
            ),
        ];
        for (text, prefix, org, kind, minute) in cases {
            let key: LogFileKey = text.parse().expect(text);
            assert_eq!(key.prefix.as_deref(), prefix, "{text}");
            assert_eq!(key.org_id.as_deref(), org, "{text}");
            assert_eq!(key.kind, kind);
            assert_eq!(key.delivered_at, t(minute));
            assert_eq!(key.to_string(), text, "round trip");
        }
    }

    #[test]
    fn delivery_time_is_truncated_to_the_minute() {
        let key = LogFileKey {
            prefix: Some(String::new()),
            org_id: None,
            account: "210987654321".into(),
            region: "eu-west-1".into(),
            kind: FileKind::Log,
            delivered_at: t("2026-02-11T08:35:59.999Z"),
            unique: unique_from(b"seed"),
        };
        let text = key.to_string();
        assert!(text.starts_with("AWSLogs/210987654321/CloudTrail/eu-west-1/2026/02/11/210987654321_CloudTrail_eu-west-1_20260211T0835Z_"), "{text}");
        assert_eq!(unique_from(b"seed"), unique_from(b"seed"));
        assert_ne!(unique_from(b"seed"), unique_from(b"other"));
        assert_eq!(unique_from(b"seed").len(), UNIQUE_LEN);
    }

    #[test]
    fn digest_keys_table() {
        let cases = [
            ("AWSLogs/210987654321/CloudTrail-Digest/eu-west-1/2026/02/11/210987654321_CloudTrail-Digest_eu-west-1_main_us-east-1_20260211T090131Z.json.gz", "main", false),
            ("p/AWSLogs/o-x1/210987654321/CloudTrail-Digest/eu-west-1/2026/02/11/210987654321_CloudTrail-Digest_eu-west-1_my_trail.v2-x_us-east-1_20260211T090131Z_backfill.json.gz", "my_trail.v2-x", true),
        ];
        for (text, trail, backfill) in cases {
            let key: DigestKey = text.parse().expect(text);
            assert_eq!(key.trail_name, trail);
            assert_eq!(key.home_region, "us-east-1");
            assert_eq!(key.region, "eu-west-1");
            assert_eq!(key.backfill, backfill);
            assert_eq!(key.end_time, t("2026-02-11T09:01:31Z"));
            assert_eq!(key.to_string(), text, "round trip");
        }
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "",
            "AWSLogs/",
            "AWSLogs/12345/CloudTrail/eu-west-1/2026/02/11/12345_CloudTrail_eu-west-1_20260211T0835Z_k3Jd9sQm2LpX0aBc.json.gz",
            "AWSLogs/210987654321/CloudTrail/eu-west-1/2026/02/11/210987654321_CloudTrail_eu-west-1_20260211T0835Z_short.json.gz",
            "AWSLogs/210987654321/CloudTrail/eu-west-1/2026/02/12/210987654321_CloudTrail_eu-west-1_20260211T0835Z_k3Jd9sQm2LpX0aBc.json.gz",
            "AWSLogs/210987654321/CloudTrail/eu-west-1/2026/02/11/210987654321_CloudTrail_us-east-1_20260211T0835Z_k3Jd9sQm2LpX0aBc.json.gz",
            "AWSLogs/210987654321/CloudTrail/eu-west-1/2026/02/11/210987654321_CloudTrail_eu-west-1_20260211T0835Z_k3Jd9sQm2LpX0aBc.json",
            "AWSLogs/210987654321/Other/eu-west-1/2026/02/11/x.json.gz",
        ] {
            assert!(bad.parse::<LogFileKey>().is_err(), "{bad}");
        }
        assert!("AWSLogs/210987654321/CloudTrail-Digest/eu-west-1/2026/02/11/210987654321_CloudTrail-Digest_eu-west-1_20260211T090131Z.json.gz"
            .parse::<DigestKey>()
            .is_err());
    }
}
