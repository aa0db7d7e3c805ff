//! CloudTrail's JSON 1.1 protocol (spec §5.1): `POST /` with
//! `X-Amz-Target: com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.<Operation>`.
//!
//! Operations served so far: `DescribeTrails` and `ListPublicKeys` — what
//! `aws cloudtrail validate-logs` calls. Every other operation answers 400
//! `UnknownOperationException` naming it. Requests are not authenticated yet (the server
//! listens on loopback only until SigV4 lands); a `ListPublicKeys` call takes its region from the
//! SigV4 credential scope the client sends, as AWS's regional endpoints do.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

const TARGET_PREFIX: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.";

/// The region of a SigV4 `Authorization` header's credential scope, if any.
fn scope_region(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    let scope = credential.split([',', ' ']).next()?;
    scope.split('/').nth(2).map(str::to_owned)
}

fn answer(body: Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    response
}

async fn dispatch(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "MissingAction",
                "the X-Amz-Target header is missing; CloudTrail operations are sent as POST / with X-Amz-Target",
            )
        })?;
    let operation = target.strip_prefix(TARGET_PREFIX).ok_or_else(|| {
        ApiError::bad_request(
            "UnknownOperationException",
            format!("{target} is not a CloudTrail 2013-11-01 operation"),
        )
    })?;
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request("SerializationException", format!("body is not JSON: {e}"))
        })?
    };
    if !request.is_object() {
        return Err(ApiError::bad_request(
            "SerializationException",
            "the request body must be a JSON object",
        ));
    }
    match operation {
        "DescribeTrails" => {
            let wanted: Option<Vec<String>> = match request.get("trailNameList") {
                None | Some(Value::Null) => None,
                Some(Value::Array(names)) => Some(
                    names
                        .iter()
                        .map(|n| n.as_str().map(str::to_owned))
                        .collect::<Option<_>>()
                        .ok_or_else(|| {
                            ApiError::bad_request(
                                "InvalidParameterException",
                                "trailNameList must hold strings",
                            )
                        })?,
                ),
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "InvalidParameterException",
                        "trailNameList must be a list",
                    ))
                }
            };
            let trails: Vec<Value> = state
                .trails
                .list()
                .iter()
                .filter(|t| {
                    wanted
                        .as_ref()
                        .is_none_or(|w| w.iter().any(|n| *n == t.name || *n == t.arn))
                })
                .map(|t| {
                    let mut out = crate::trails::trail_out(t);
                    if let Some(map) = out.as_object_mut() {
                        map.remove("LocalDirectory");
                        map.remove("OrganizationId");
                    }
                    out
                })
                .collect();
            Ok(json!({ "trailList": trails }))
        }
        "ListPublicKeys" => {
            let time = |name: &str| {
                request
                    .get(name)
                    .filter(|v| !v.is_null())
                    .map(|v| crate::keys::parse_time(name, v))
                    .transpose()
            };
            let region = scope_region(headers).unwrap_or_else(|| state.keys.default_region());
            crate::keys::list_public_keys(
                state.keys.as_ref(),
                &region,
                time("StartTime")?,
                time("EndTime")?,
            )
        }
        other => Err(ApiError::bad_request(
            "UnknownOperationException",
            format!("CloudTrail operation {other} is not served by this version of Cairn (served: DescribeTrails, ListPublicKeys)"),
        )),
    }
}

/// `POST /`.
pub async fn handle(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match dispatch(&state, &headers, &body).await {
        Ok(value) => answer(value),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_comes_from_the_credential_scope() {
        let mut headers = HeaderMap::new();
        assert_eq!(scope_region(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260302/eu-west-1/cloudtrail/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"),
        );
        assert_eq!(scope_region(&headers).as_deref(), Some("eu-west-1"));
    }
}
