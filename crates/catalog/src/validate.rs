//! Names and prefixes, checked as CloudTrail checks them (spec §5.1).

use crate::CatalogError;

fn is_ip_form(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// 3–128 characters of letters, digits, `.`, `_`, `-`; starting and ending with a letter or
/// digit; no two adjacent `.`, `_`, `-`; not an IP address.
pub fn validate_trail_name(name: &str) -> Result<(), CatalogError> {
    let invalid = |why: &str| {
        CatalogError::invalid(
            "InvalidTrailNameException",
            format!("trail name {name:?} is invalid: {why}"),
        )
    };
    if !(3..=128).contains(&name.len()) {
        return Err(invalid("it must be 3 to 128 characters"));
    }
    let special = |b: u8| matches!(b, b'.' | b'_' | b'-');
    let bytes = name.as_bytes();
    if !bytes
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || special(b))
    {
        return Err(invalid(
            "only letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    if special(bytes[0]) || special(bytes[bytes.len() - 1]) {
        return Err(invalid("it must start and end with a letter or digit"));
    }
    if bytes.windows(2).any(|w| special(w[0]) && special(w[1])) {
        return Err(invalid("'.', '_' and '-' cannot be adjacent"));
    }
    if is_ip_form(name) {
        return Err(invalid("it cannot look like an IP address"));
    }
    Ok(())
}

/// S3 bucket naming rules: 3–63 characters of lower-case letters, digits, `.`, `-`, starting
/// and ending with a letter or digit, no `..`, not an IP address.
pub fn validate_bucket_name(bucket: &str) -> Result<(), CatalogError> {
    let invalid = |why: &str| {
        CatalogError::invalid(
            "InvalidS3BucketNameException",
            format!("bucket name {bucket:?} is invalid: {why}"),
        )
    };
    if !(3..=63).contains(&bucket.len()) {
        return Err(invalid("it must be 3 to 63 characters"));
    }
    let bytes = bucket.as_bytes();
    if !bytes
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err(invalid(
            "only lower-case letters, digits, '.' and '-' are allowed",
        ));
    }
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Err(invalid("it must start and end with a letter or digit"));
    }
    if bucket.contains("..") || is_ip_form(bucket) {
        return Err(invalid("no '..' and no IP address form"));
    }
    Ok(())
}

/// `S3KeyPrefix`: at most 200 characters; no leading or trailing `/`, no empty segment.
pub fn validate_prefix(prefix: &str) -> Result<(), CatalogError> {
    let invalid = |why: &str| {
        CatalogError::invalid(
            "InvalidS3PrefixException",
            format!("S3KeyPrefix {prefix:?} is invalid: {why}"),
        )
    };
    if prefix.chars().count() > 200 {
        return Err(invalid("it must be at most 200 characters"));
    }
    if prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains("//") {
        return Err(invalid(
            "no leading or trailing '/' and no empty path segment (Cairn adds the '/')",
        ));
    }
    if prefix.chars().any(|c| c.is_control() || c == '\\') {
        return Err(invalid("control characters and '\\' are not allowed"));
    }
    if prefix
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(invalid(
            "no '.' or '..' path segment (object stores refuse such keys)",
        ));
    }
    Ok(())
}

/// `LocalDirectory`: an absolute path without `.` or `..` segments, not inside Cairn's data
/// directory (followed through symbolic links where the path exists).
pub fn validate_local_directory(
    dir: &std::path::Path,
    data_dir: Option<&std::path::Path>,
) -> Result<(), CatalogError> {
    use std::path::Component;
    let invalid = |why: String| {
        CatalogError::invalid(
            "InvalidParameterException",
            format!("LocalDirectory {} is invalid: {why}", dir.display()),
        )
    };
    if !dir.is_absolute() {
        return Err(invalid("it must be an absolute path".to_owned()));
    }
    if dir.to_str().is_some_and(|s| {
        s.split('/')
            .any(|segment| segment == "." || segment == "..")
    }) || dir
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(invalid("no '.' or '..' path segment".to_owned()));
    }
    let Some(data_dir) = data_dir else {
        return Ok(());
    };
    // The data directory as given and as it resolves; the destination as given and as its
    // nearest existing ancestor resolves (the rest of it appended).
    let data = [
        data_dir.to_path_buf(),
        std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf()),
    ];
    let resolved = {
        let mut existing = dir.to_path_buf();
        let mut rest = Vec::new();
        loop {
            if let Ok(real) = std::fs::canonicalize(&existing) {
                break rest.iter().rev().fold(real, |path, part| path.join(part));
            }
            match (
                existing.file_name().map(ToOwned::to_owned),
                existing.parent(),
            ) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    existing = parent.to_path_buf();
                }
                _ => break dir.to_path_buf(),
            }
        }
    };
    for candidate in [dir.to_path_buf(), resolved] {
        for data in &data {
            if candidate.starts_with(data) {
                return Err(invalid(format!(
                    "it is inside Cairn's data directory {}",
                    data_dir.display()
                )));
            }
        }
    }
    Ok(())
}
