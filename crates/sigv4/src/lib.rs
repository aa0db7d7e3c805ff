//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`), as AWS verifies it: the canonical request
//! (method, URI-encoded path, sorted canonical query, the signed headers lowercased and trimmed,
//! the payload hash), the string to sign over the credential scope
//! (`<date>/<region>/<service>/aws4_request`), the derived signing key, and a constant-time
//! comparison. Both forms: the `Authorization` header, and presigned query parameters
//! (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`,
//! `X-Amz-Signature`). Pure: the caller supplies the request parts, the body hash, the clock and
//! the secret lookup.
//!
//! Canonical URI: the path as received (already percent-encoded by the client) encoded once
//! more, keeping `/` — what botocore and the AWS SDKs do for every service but S3.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The only algorithm.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Largest clock difference accepted (AWS: 15 minutes).
pub const MAX_SKEW_MS: i64 = 15 * 60 * 1000;
/// Longest presigned validity (AWS: 7 days).
pub const MAX_EXPIRES_SECONDS: i64 = 7 * 24 * 3600;

/// A request as the verifier sees it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path as received, percent-encoded (`/v1/trails/my%3Atrail`).
    pub path: &'a str,
    /// The raw query string, without `?` (may be empty).
    pub query: &'a str,
    /// Headers as received (names in any case; repeated names allowed).
    pub headers: &'a [(String, String)],
    /// Lowercase hex SHA-256 of the body.
    pub body_sha256: &'a str,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The access key id that signed.
    pub access_key_id: String,
    /// Scope region.
    pub region: String,
    /// Scope service.
    pub service: String,
    /// Request time, epoch ms.
    pub signed_at: i64,
}

/// Why a request is not authenticated; each maps to AWS's error of the same name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No `Authorization` header and no presigned parameters.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// An authorization header or query that cannot be parsed, or lacks a part.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The access key is unknown (or inactive).
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// The signature does not match, the date is outside the allowed skew, or a presigned URL
    /// expired.
    #[error("{0}")]
    InvalidSignature(String),
}

impl SigError {
    /// AWS's `__type`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::IncompleteSignature(_) => "IncompleteSignature",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::InvalidSignature(_) => "InvalidSignatureException",
        }
    }
}

/// RFC 3986 percent-encoding, keeping unreserved characters (and `/` when `keep_slash`).
pub fn uri_encode(input: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query pairs, decoded (`+` is a literal plus, as in AWS's canonicalisation).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn canonical_query(query: &str, skip_signature: bool) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(query)
        .into_iter()
        .filter(|(k, _)| !(skip_signature && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn canonical_header_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request.
pub fn canonical_request(
    request: &Request<'_>,
    signed_headers: &[String],
    payload_hash: &str,
    presigned: bool,
) -> String {
    let path = if request.path.is_empty() {
        "/"
    } else {
        request.path
    };
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = header_values(request.headers, name)
            .into_iter()
            .map(canonical_header_value)
            .collect();
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        uri_encode(path, true),
        canonical_query(request.query, presigned),
        headers,
        signed_headers.join(";"),
        payload_hash
    )
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The signing key for a secret and scope.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date);
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, service);
    hmac(&k_service, "aws4_request")
}

/// The string to sign.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// Parses `YYYYMMDDTHHMMSSZ` to epoch ms.
pub fn parse_amz_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' || !text.is_ascii() {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    cairn_model::time::parse_utc(&iso).ok()
}

struct Parsed {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    presigned_expires: Option<i64>,
}

fn parse_credential(credential: &str) -> Result<(String, String, String, String), SigError> {
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5 || parts[4] != "aws4_request" || parts.iter().any(|p| p.is_empty()) {
        return Err(SigError::IncompleteSignature(format!(
            "Credential must be <access key>/<date>/<region>/<service>/aws4_request, got {credential:?}"
        )));
    }
    Ok((
        parts[0].to_owned(),
        parts[1].to_owned(),
        parts[2].to_owned(),
        parts[3].to_owned(),
    ))
}

fn parse(request: &Request<'_>) -> Result<Parsed, SigError> {
    let auth = header_values(request.headers, "authorization");
    let query = query_pairs(request.query);
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Some(auth) = auth.first() {
        if auth.len() > 4096 {
            return Err(SigError::IncompleteSignature(
                "Authorization header is too long".into(),
            ));
        }
        let rest = auth.strip_prefix(ALGORITHM).ok_or_else(|| {
            SigError::IncompleteSignature(format!(
                "Authorization header requires the {ALGORITHM} algorithm"
            ))
        })?;
        let mut credential = None;
        let mut signed = None;
        let mut signature = None;
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                signature = Some(v);
            }
        }
        let missing = |what: &str| {
            SigError::IncompleteSignature(format!(
                "Authorization header requires '{what}' parameter. Authorization={auth}"
            ))
        };
        let credential = credential.ok_or_else(|| missing("Credential"))?;
        let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
        let signature = signature.ok_or_else(|| missing("Signature"))?;
        let amz_date = header_values(request.headers, "x-amz-date")
            .first()
            .map(|d| (*d).to_owned())
            .ok_or_else(|| {
                SigError::IncompleteSignature(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header".into(),
                )
            })?;
        let (access_key_id, date, region, service) = parse_credential(credential)?;
        Ok(Parsed {
            access_key_id,
            date,
            region,
            service,
            signed_headers: signed.split(';').map(str::to_owned).collect(),
            signature: signature.to_owned(),
            amz_date,
            presigned_expires: None,
        })
    } else if let Some(algorithm) = param("X-Amz-Algorithm") {
        if algorithm != ALGORITHM {
            return Err(SigError::IncompleteSignature(format!(
                "X-Amz-Algorithm must be {ALGORITHM}"
            )));
        }
        let need = |name: &str| {
            param(name).ok_or_else(|| {
                SigError::IncompleteSignature(format!("presigned request lacks {name}"))
            })
        };
        let (access_key_id, date, region, service) = parse_credential(&need("X-Amz-Credential")?)?;
        let expires: i64 = need("X-Amz-Expires")?.parse().map_err(|_| {
            SigError::IncompleteSignature("X-Amz-Expires must be a number of seconds".into())
        })?;
        if !(1..=MAX_EXPIRES_SECONDS).contains(&expires) {
            return Err(SigError::IncompleteSignature(format!(
                "X-Amz-Expires must be 1 to {MAX_EXPIRES_SECONDS}"
            )));
        }
        Ok(Parsed {
            access_key_id,
            date,
            region,
            service,
            signed_headers: need("X-Amz-SignedHeaders")?
                .split(';')
                .map(str::to_owned)
                .collect(),
            signature: need("X-Amz-Signature")?,
            amz_date: need("X-Amz-Date")?,
            presigned_expires: Some(expires),
        })
    } else {
        Err(SigError::MissingAuthenticationToken)
    }
}

/// Verifies `request`, looking the secret up with `secret_of` (None: unknown key); `now` in
/// epoch ms.
pub fn verify(
    request: &Request<'_>,
    now: i64,
    secret_of: impl FnOnce(&str) -> Option<String>,
) -> Result<Verified, SigError> {
    let parsed = parse(request)?;
    let signed_at = parse_amz_date(&parsed.amz_date).ok_or_else(|| {
        SigError::IncompleteSignature(format!(
            "X-Amz-Date {:?} is not YYYYMMDDTHHMMSSZ",
            parsed.amz_date
        ))
    })?;
    if !parsed.amz_date.starts_with(&parsed.date) {
        return Err(SigError::InvalidSignature(
            "the credential scope's date is not the request's date".into(),
        ));
    }
    let mut sorted = parsed.signed_headers.clone();
    sorted.sort();
    if sorted != parsed.signed_headers
        || parsed
            .signed_headers
            .iter()
            .any(|h| h.is_empty() || *h != h.to_ascii_lowercase())
    {
        return Err(SigError::IncompleteSignature(
            "SignedHeaders must be lowercase and sorted".into(),
        ));
    }
    if !parsed.signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::InvalidSignature(
            "the host header must be signed".into(),
        ));
    }
    if parsed.presigned_expires.is_none()
        && !parsed.signed_headers.iter().any(|h| h == "x-amz-date")
    {
        return Err(SigError::InvalidSignature(
            "the x-amz-date header must be signed".into(),
        ));
    }
    let display = |ms: i64| {
        let s = ms / 1000;
        format!("{}", s)
    };
    match parsed.presigned_expires {
        None => {
            if (now - signed_at).abs() > MAX_SKEW_MS {
                return Err(SigError::InvalidSignature(format!(
                    "Signature expired: {} is now earlier than {} ({} - 15 min.) or later than {} (+15 min.) (epoch seconds)",
                    display(signed_at),
                    display(now - MAX_SKEW_MS),
                    display(now),
                    display(now + MAX_SKEW_MS)
                )));
            }
        }
        Some(expires) => {
            if signed_at - now > MAX_SKEW_MS {
                return Err(SigError::InvalidSignature(
                    "the presigned request is dated in the future".into(),
                ));
            }
            if now > signed_at + expires * 1000 {
                return Err(SigError::InvalidSignature("Request has expired".into()));
            }
        }
    }
    let secret = secret_of(&parsed.access_key_id).ok_or(SigError::UnrecognizedClient)?;
    let payload_hash = match header_values(request.headers, "x-amz-content-sha256").first() {
        Some(&"UNSIGNED-PAYLOAD") => "UNSIGNED-PAYLOAD".to_owned(),
        Some(claimed) => {
            if !claimed.eq_ignore_ascii_case(request.body_sha256) {
                return Err(SigError::InvalidSignature(
                    "x-amz-content-sha256 does not match the body".into(),
                ));
            }
            claimed.to_ascii_lowercase()
        }
        None => request.body_sha256.to_owned(),
    };
    let canonical = canonical_request(
        request,
        &parsed.signed_headers,
        &payload_hash,
        parsed.presigned_expires.is_some(),
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        parsed.date, parsed.region, parsed.service
    );
    let to_sign = string_to_sign(&parsed.amz_date, &scope, &canonical);
    let key = signing_key(&secret, &parsed.date, &parsed.region, &parsed.service);
    let expected = hmac(&key, &to_sign);
    let given = hex::decode(&parsed.signature).unwrap_or_default();
    let mut mac = HmacSha256::new_from_slice(&key).expect("any key length");
    mac.update(to_sign.as_bytes());
    if given.len() != expected.len() || mac.verify_slice(&given).is_err() {
        return Err(SigError::InvalidSignature(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.".into(),
        ));
    }
    Ok(Verified {
        access_key_id: parsed.access_key_id,
        region: parsed.region,
        service: parsed.service,
        signed_at,
    })
}

/// What a client needs to sign.
#[derive(Debug, Clone)]
pub struct Credentials<'a> {
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret_access_key: &'a str,
    /// Scope region.
    pub region: &'a str,
    /// Scope service.
    pub service: &'a str,
}

/// Signs a request (header form): returns the `x-amz-date` and `Authorization` values to add.
/// `headers` must include `host`; they and `x-amz-date` are signed.
pub fn sign(request: &Request<'_>, credentials: &Credentials<'_>, now: i64) -> (String, String) {
    let amz_date = format_amz_date(now);
    let mut headers: Vec<(String, String)> = request.headers.to_vec();
    headers.push(("x-amz-date".into(), amz_date.clone()));
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let with_date = Request {
        headers: &headers,
        ..request.clone()
    };
    let canonical = canonical_request(&with_date, &names, request.body_sha256, false);
    let date = &amz_date[..8];
    let scope = format!(
        "{date}/{}/{}/aws4_request",
        credentials.region, credentials.service
    );
    let to_sign = string_to_sign(&amz_date, &scope, &canonical);
    let key = signing_key(
        credentials.secret_access_key,
        date,
        credentials.region,
        credentials.service,
    );
    let signature = hex::encode(hmac(&key, &to_sign));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        credentials.access_key_id,
        names.join(";")
    );
    (amz_date, authorization)
}

/// Epoch ms as `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(ms: i64) -> String {
    cairn_model::time::format_utc_seconds(ms)
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests;
