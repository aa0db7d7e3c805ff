//! CloudTrail's JSON 1.1 protocol (spec §5.1–5.6): `POST /` with
//! `X-Amz-Target: com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.<Operation>`.
//!
//! Served: `CreateTrail`, `UpdateTrail`, `DeleteTrail`, `DescribeTrails`, `GetTrail`,
//! `GetTrailStatus`, `ListTrails`, `StartLogging`, `StopLogging`, `PutEventSelectors`,
//! `GetEventSelectors`, `LookupEvents`, `ListPublicKeys`, with CloudTrail's request and response
//! shapes and exception names. Every other operation answers 400 `UnknownOperationException`
//! naming it. Regional operations (`LookupEvents`, `ListPublicKeys`) take the region of the SigV4
//! credential scope, as AWS's regional endpoints do. Requests are authenticated and authorized
//! by [`crate::auth`] before they get here.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::auth::TARGET_PREFIX;

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

/// A trail in CloudTrail's shape (no Cairn-only members).
fn wire_trail(trail: &cairn_trail::Trail) -> Value {
    let mut out = crate::trails::trail_out(trail);
    if let Some(map) = out.as_object_mut() {
        map.remove("LocalDirectory");
        map.remove("OrganizationId");
    }
    out
}

/// CreateTrail / UpdateTrail members; the ones Cairn does not implement are refused by name.
fn trail_settings(request: &Value) -> Result<cairn_trail::TrailSettings, ApiError> {
    let mut request = request.clone();
    if let Some(map) = request.as_object_mut() {
        for unsupported in [
            "SnsTopicName",
            "CloudWatchLogsLogGroupArn",
            "CloudWatchLogsRoleArn",
            "KmsKeyId",
            "TagsList",
        ] {
            if map.get(unsupported).is_some_and(|v| !v.is_null()) {
                return Err(ApiError::bad_request(
                    "InvalidParameterException",
                    format!("{unsupported} is not supported by Cairn"),
                ));
            }
            map.remove(unsupported);
        }
    }
    serde_json::from_value(request).map_err(|e| {
        ApiError::bad_request(
            "InvalidParameterException",
            format!("trail settings are invalid: {e}"),
        )
    })
}

/// LookupEvents' request as a history query.
fn lookup_query(
    request: &Value,
    region: &str,
) -> Result<cairn_model::lookup::LookupQuery, ApiError> {
    use cairn_model::lookup::AttributeKey;
    let mut query = cairn_model::lookup::LookupQuery::region(region);
    if let Some(map) = request.as_object() {
        for key in map.keys() {
            if !matches!(
                key.as_str(),
                "LookupAttributes"
                    | "StartTime"
                    | "EndTime"
                    | "EventCategory"
                    | "MaxResults"
                    | "NextToken"
            ) {
                return Err(ApiError::bad_request(
                    "InvalidParameterException",
                    format!("unknown LookupEvents member {key}"),
                ));
            }
        }
    }
    let invalid_attributes =
        |m: String| ApiError::bad_request("InvalidLookupAttributesException", m);
    match request.get("LookupAttributes") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) if list.len() <= 1 => {
            if let Some(attribute) = list.first() {
                let key = attribute["AttributeKey"]
                    .as_str()
                    .ok_or_else(|| invalid_attributes("AttributeKey is required".into()))?;
                let value = attribute["AttributeValue"]
                    .as_str()
                    .ok_or_else(|| invalid_attributes("AttributeValue is required".into()))?;
                let parsed = AttributeKey::parse(key).ok_or_else(|| {
                    invalid_attributes(format!(
                        "unknown AttributeKey {key:?}; use one of {}",
                        AttributeKey::ALL.map(AttributeKey::as_str).join(", ")
                    ))
                })?;
                query.attribute = Some((parsed, value.to_owned()));
            }
        }
        Some(Value::Array(_)) => {
            return Err(invalid_attributes(
                "at most one LookupAttribute may be given".into(),
            ))
        }
        Some(_) => return Err(invalid_attributes("LookupAttributes must be a list".into())),
    }
    for (name, slot) in [
        ("StartTime", &mut query.start_time),
        ("EndTime", &mut query.end_time),
    ] {
        if let Some(v) = request.get(name).filter(|v| !v.is_null()) {
            *slot = Some(crate::keys::parse_time(name, v)?);
        }
    }
    match request.get("EventCategory").and_then(Value::as_str) {
        None => {}
        Some("insight") => query.insights = true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "InvalidEventCategoryException",
                format!("EventCategory must be insight, got {other:?}"),
            ))
        }
    }
    if let Some(n) = request.get("MaxResults").filter(|v| !v.is_null()) {
        let n = n.as_u64().ok_or_else(|| {
            ApiError::bad_request("InvalidMaxResultsException", "MaxResults must be 1 to 50")
        })?;
        query.max_results = Some(n as usize);
    }
    query.next_token = request
        .get("NextToken")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(query)
}

async fn dispatch(
    state: &AppState,
    caller: crate::trails::Caller,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, ApiError> {
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
    let trails = &state.trails;
    let field = |name: &str| -> Result<String, ApiError> {
        request
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::bad_request("InvalidTrailNameException", format!("{name} is required"))
            })
    };
    let time = |name: &str| {
        request
            .get(name)
            .filter(|v| !v.is_null())
            .map(|v| crate::keys::parse_time(name, v))
            .transpose()
    };
    match operation {
        "CreateTrail" | "UpdateTrail" => {
            let settings = trail_settings(&request)?;
            let trail = if operation == "CreateTrail" {
                trails.create(caller, settings).await?
            } else {
                let name = settings.name.clone();
                trails.update(caller, name, settings).await?
            };
            Ok(wire_trail(&trail))
        }
        "DeleteTrail" => {
            trails.delete(caller, field("Name")?).await?;
            Ok(json!({}))
        }
        "StartLogging" => {
            trails.start_logging(caller, field("Name")?).await?;
            Ok(json!({}))
        }
        "StopLogging" => {
            trails.stop_logging(caller, field("Name")?).await?;
            Ok(json!({}))
        }
        "GetTrail" => Ok(json!({ "Trail": wire_trail(&trails.get(&field("Name")?)?) })),
        "GetTrailStatus" => Ok(crate::trails::status_out(&trails.get(&field("Name")?)?)),
        "ListTrails" => {
            let list: Vec<Value> = trails
                .list()
                .iter()
                .map(|t| json!({ "TrailARN": t.arn, "Name": t.name, "HomeRegion": t.scope.home_region }))
                .collect();
            Ok(json!({ "Trails": list }))
        }
        "GetEventSelectors" => {
            Ok(crate::trails::selectors_out(&trails.get(&field("TrailName")?)?))
        }
        "PutEventSelectors" => {
            let name = field("TrailName")?;
            let mut rest = request.clone();
            if let Some(map) = rest.as_object_mut() {
                map.remove("TrailName");
            }
            let selectors: cairn_selectors::Selectors =
                serde_json::from_value(rest).map_err(|e| {
                    ApiError::bad_request(
                        "InvalidEventSelectorsException",
                        format!("EventSelectors or AdvancedEventSelectors are invalid: {e}"),
                    )
                })?;
            let trail = trails.put_event_selectors(caller, name, selectors).await?;
            Ok(crate::trails::selectors_out(&trail))
        }
        "LookupEvents" => {
            let region = scope_region(headers).unwrap_or_else(|| state.ingest.region().to_owned());
            let query = lookup_query(&request, &region)?;
            let page = state
                .query
                .lookup(query)
                .await
                .map_err(crate::history::history_error)?;
            Ok(serde_json::to_value(crate::history::page_out(page)).expect("page serializes"))
        }
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
            let region = scope_region(headers).unwrap_or_else(|| state.keys.default_region());
            crate::keys::list_public_keys(
                state.keys.as_ref(),
                &region,
                time("StartTime")?,
                time("EndTime")?,
            )
        }
        "CreateEventDataStore" => state.lake.create_store(caller, request).await,
        "GetEventDataStore" => state.lake.get_store(&store_field(&request)?),
        "ListEventDataStores" => Ok(state.lake.list_stores()),
        "UpdateEventDataStore" => {
            let store = store_field(&request)?;
            state.lake.update_store(caller, store, request).await
        }
        "DeleteEventDataStore" => {
            let store = store_field(&request)?;
            state.lake.delete_store(caller, store).await
        }
        "StartQuery" => {
            let statement = crate::lake::statement(&request)?;
            state.lake.start_query(caller, statement).await
        }
        "DescribeQuery" => state.lake.describe_query(&query_id(&request)?),
        "GetQueryResults" => {
            let max = match request.get("MaxQueryResults") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_i64().ok_or_else(|| {
                    ApiError::bad_request(
                        "InvalidMaxResultsException",
                        "MaxQueryResults must be 1 to 1000",
                    )
                })?),
            };
            state.lake.query_results(
                &query_id(&request)?,
                request.get("NextToken").and_then(Value::as_str),
                max,
            )
        }
        "CancelQuery" => state.lake.cancel_query(&query_id(&request)?),
        "ListQueries" => Ok(state.lake.list_queries()),
        other => Err(ApiError::bad_request(
            "UnknownOperationException",
            format!("CloudTrail operation {other} is not served by Cairn (served: CreateTrail, UpdateTrail, DeleteTrail, DescribeTrails, GetTrail, GetTrailStatus, ListTrails, StartLogging, StopLogging, PutEventSelectors, GetEventSelectors, LookupEvents, ListPublicKeys, CreateEventDataStore, GetEventDataStore, ListEventDataStores, UpdateEventDataStore, DeleteEventDataStore, StartQuery, DescribeQuery, GetQueryResults, CancelQuery, ListQueries)"),
        )),
    }
}

fn store_field(request: &Value) -> Result<String, ApiError> {
    request
        .get("EventDataStore")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::bad_request(
                "InvalidParameterException",
                "EventDataStore (its ARN, id or name) is required",
            )
        })
}

fn query_id(request: &Value) -> Result<String, ApiError> {
    request
        .get("QueryId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::bad_request("InvalidParameterException", "QueryId is required"))
}

/// `POST /`.
pub async fn handle(
    State(state): State<AppState>,
    caller: crate::trails::Caller,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match dispatch(&state, caller, &headers, &body).await {
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
