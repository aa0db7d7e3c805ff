//! Reading request bodies: size limits before and after decompression, gzip by header or
//! by magic number.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::HeaderMap;
use std::io::Read;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads the whole body, refusing more than `limit` bytes on the wire.
pub async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(format!(
            "request body exceeds the limit of {limit} bytes"
        ))),
        Err(e) => Err(ApiError::bad_request(
            "InvalidRequest",
            format!("reading the request body failed: {e}"),
        )),
    }
}

/// Whether the request says, or the bytes show, that the body is gzip.
pub fn is_gzip(headers: &HeaderMap, body: &[u8]) -> Result<bool, ApiError> {
    match headers
        .get(axum::http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or(""))
    {
        None | Some("") | Some("identity") => Ok(body.starts_with(&GZIP_MAGIC)),
        Some("gzip") | Some("x-gzip") => Ok(true),
        Some(other) => Err(ApiError::unsupported_media_type(format!(
            "content encoding {other:?} is not supported; send gzip or identity"
        ))),
    }
}

/// Decompresses a gzip body, refusing more than `limit` decompressed bytes.
pub fn gunzip_limited(body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| {
        ApiError::bad_request(
            "InvalidRequest",
            format!("request body is not valid gzip: {e}"),
        )
    })?;
    if out.len() > limit {
        return Err(ApiError::too_large(format!(
            "decompressed request body exceeds the limit of {limit} bytes"
        )));
    }
    Ok(out)
}
