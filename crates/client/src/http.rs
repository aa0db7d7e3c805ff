//! HTTP helpers every client uses.

use serde_json::Value;

/// A failed answer as a line: its status, the error code and message of a JSON error body,
/// else the body as it came.
pub async fn error_text(response: reqwest::Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    match serde_json::from_str::<Value>(&body) {
        Ok(v) => format!(
            "{status}: {} {}",
            v["__type"].as_str().unwrap_or(""),
            v["message"].as_str().unwrap_or(&body)
        ),
        Err(_) => format!("{status}: {body}"),
    }
}

/// Percent-encodes a URL path segment or query value (unreserved characters stay).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
