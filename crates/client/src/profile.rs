//! The client configuration file: `~/.cairn/config` (or `$CAIRN_CONFIG_FILE`), INI like the AWS
//! CLI's, one section per profile (`$CAIRN_PROFILE`, default `default`):
//!
//! ```ini
//! [default]
//! endpoint = https://cairn.example.com:7474
//! aws_access_key_id = AKIA...
//! aws_secret_access_key = ...
//! region = us-east-1
//! # Where `--source s3://...` and S3 trails are read from, if not AWS's own S3:
//! s3_endpoint = http://127.0.0.1:9000
//! s3_access_key_id = ...
//! s3_secret_access_key = ...
//! ```
//!
//! Two sets of credentials because a command such as `validate-logs` on an S3 trail talks to
//! two services: Cairn (signed with the Cairn key) and the bucket (the store's key).
//! Precedence, highest first — for Cairn: `CAIRN_ACCESS_KEY_ID`/`CAIRN_SECRET_ACCESS_KEY`, this
//! file, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, the AWS shared credentials file, the
//! administrator credential of a local data directory; for S3: `CAIRN_S3_ACCESS_KEY_ID`/
//! `CAIRN_S3_SECRET_ACCESS_KEY`, this file's `s3_*`, the AWS variables and shared file. The
//! endpoint: `--endpoint`, `CAIRN_ENDPOINT`, this file, `http://127.0.0.1:7474`.

use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where Cairn listens by default.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7474";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The configuration file's path.
pub fn path() -> Option<PathBuf> {
    env("CAIRN_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cairn/config")))
}

/// The section `profile` of the INI file at `path` (`[name]` or `[profile name]`), if both
/// exist.
pub fn ini_section(path: &Path, profile: &str) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut current: Option<String> = None;
    let mut found = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().trim_start_matches("profile ").trim().to_owned();
            if name == profile {
                found.get_or_insert_with(BTreeMap::new);
            }
            current = Some(name);
            continue;
        }
        if current.as_deref() != Some(profile) {
            continue;
        }
        if let (Some(section), Some((key, value))) = (found.as_mut(), line.split_once('=')) {
            section.insert(key.trim().to_owned(), value.trim().to_owned());
        }
    }
    Ok(found)
}

/// The selected profile of the configuration file (empty when there is none).
pub fn current() -> anyhow::Result<BTreeMap<String, String>> {
    let name = env("CAIRN_PROFILE").unwrap_or_else(|| "default".to_owned());
    let Some(path) = path() else {
        return Ok(BTreeMap::new());
    };
    match ini_section(&path, &name)? {
        Some(section) => Ok(section),
        None if env("CAIRN_PROFILE").is_some() => anyhow::bail!(
            "CAIRN_PROFILE={name}: no [{name}] section in {}",
            path.display()
        ),
        None => Ok(BTreeMap::new()),
    }
}

/// The endpoint when neither `--endpoint` nor `CAIRN_ENDPOINT` gives one: the profile's, else
/// the default. (A configuration file that cannot be read leaves the default; the command
/// reports the file's error when it reads credentials.)
pub fn endpoint() -> String {
    current()
        .ok()
        .and_then(|p| p.get("endpoint").cloned())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_read_by_name_and_comments_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config");
        std::fs::write(
            &file,
            "# comment\n[default]\nendpoint = http://a:1\n\n[profile prod]\nendpoint=https://b:2\naws_access_key_id = AKIAB\n[other]\nendpoint = x\n",
        )
        .expect("write");
        let default = ini_section(&file, "default")
            .expect("read")
            .expect("default");
        assert_eq!(
            default.get("endpoint").map(String::as_str),
            Some("http://a:1")
        );
        let prod = ini_section(&file, "prod").expect("read").expect("prod");
        assert_eq!(
            prod.get("endpoint").map(String::as_str),
            Some("https://b:2")
        );
        assert_eq!(
            prod.get("aws_access_key_id").map(String::as_str),
            Some("AKIAB")
        );
        assert_eq!(ini_section(&file, "nope").expect("read"), None);
        assert_eq!(
            ini_section(&dir.path().join("missing"), "default").expect("read"),
            None
        );
    }
}
