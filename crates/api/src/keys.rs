//! Digest signing keys: `ListPublicKeys` (spec §3.8, §5.6) on a native route, and rotation.
//!
//! | Route | Operation |
//! |---|---|
//! | `GET /v1/public-keys?StartTime=&EndTime=&Region=` | ListPublicKeys: every key of the region whose validity overlaps the window (times in epoch seconds or `YYYY-MM-DDTHH:MM:SSZ`; default: now) |
//! | `POST /v1/keys/rotate?Region=` | ends the region's current key now and starts a new one |

use crate::error::ApiError;
use crate::routes::{change, read, Resource, Routes};
use crate::trails::Caller;
use crate::{AppState, BoxFuture};
use axum::extract::{Query, State};
use axum::http::Method;
use axum::Json;
use cairn_model::signing_key::KeyInfo;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Signing-key administration. Filled by the server (rotations are audited).
pub trait KeyAdmin: Send + Sync {
    /// Keys of `region` overlapping `[start, end]` (epoch ms; `None`: now), oldest first.
    fn list(
        &self,
        region: &str,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<Vec<KeyInfo>, ApiError>;
    /// Rotates the region's key.
    fn rotate(&self, caller: Caller, region: String) -> BoxFuture<'_, Result<KeyInfo, ApiError>>;
    /// The deployment's region (the default).
    fn default_region(&self) -> String;
    /// Now, epoch ms.
    fn now_millis(&self) -> i64;
}

/// One `PublicKeyList` entry; a current key's validity ends "now".
pub fn public_key_out(key: &KeyInfo, now: i64) -> Value {
    json!({
        "Value": key.public_key,
        "ValidityStartTime": key.valid_from as f64 / 1000.0,
        "ValidityEndTime": key.valid_until.unwrap_or(now) as f64 / 1000.0,
        "Fingerprint": key.fingerprint,
    })
}

/// Reads a time parameter: epoch seconds (integer or fraction) or `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_time(name: &str, value: &Value) -> Result<i64, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "InvalidTimeRangeException",
            format!("{name} must be epoch seconds or YYYY-MM-DDTHH:MM:SSZ, got {value}"),
        )
    };
    match value {
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && s.abs() < 1e13)
            .map(|s| (s * 1000.0) as i64)
            .ok_or_else(invalid),
        Value::String(text) => match text.parse::<f64>() {
            Ok(s) if s.is_finite() && s.abs() < 1e13 => Ok((s * 1000.0) as i64),
            _ => cairn_model::time::parse_utc(text).map_err(|_| invalid()),
        },
        _ => Err(invalid()),
    }
}

/// ListPublicKeys over a window, shared by the native route and the CloudTrail protocol.
pub fn list_public_keys(
    keys: &dyn KeyAdmin,
    region: &str,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<Value, ApiError> {
    if let (Some(start), Some(end)) = (start, end) {
        if start > end {
            return Err(ApiError::bad_request(
                "InvalidTimeRangeException",
                "StartTime must not be after EndTime",
            ));
        }
    }
    let listed = keys.list(region, start, end)?;
    let now = keys.now_millis();
    let list: Vec<Value> = listed.iter().map(|k| public_key_out(k, now)).collect();
    Ok(json!({ "PublicKeyList": list }))
}

async fn public_keys(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    for name in params.keys() {
        if !matches!(name.as_str(), "StartTime" | "EndTime" | "Region") {
            return Err(ApiError::bad_request(
                "InvalidParameterException",
                format!("unknown parameter {name}; expected StartTime, EndTime, Region"),
            ));
        }
    }
    let time = |name: &str| {
        params
            .get(name)
            .map(|v| parse_time(name, &Value::String(v.clone())))
            .transpose()
    };
    let region = params
        .get("Region")
        .cloned()
        .unwrap_or_else(|| state.keys.default_region());
    Ok(Json(list_public_keys(
        state.keys.as_ref(),
        &region,
        time("StartTime")?,
        time("EndTime")?,
    )?))
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let region = params
        .get("Region")
        .cloned()
        .unwrap_or_else(|| state.keys.default_region());
    let key = state.keys.rotate(caller, region).await?;
    Ok(Json(public_key_out(&key, state.keys.now_millis())))
}

/// The key routes, each with the IAM action it needs.
pub fn routes() -> Routes<AppState> {
    Routes::new()
        .route(
            Method::GET,
            "/v1/public-keys",
            read("cloudtrail:ListPublicKeys", Resource::Any),
            public_keys,
        )
        .route(
            Method::POST,
            "/v1/keys/rotate",
            change("cairn:RotateSigningKey", Resource::Any),
            rotate,
        )
}
