//! Authentication (AWS SigV4) and authorization (IAM-style policies) of every route but
//! `/healthz` and `/readyz`, and the record of calls the handlers do not record themselves.
//!
//! Each request is mapped to an [`Operation`]: its IAM action (`cloudtrail:CreateTrail`,
//! `cloudtrail-data:PutAuditEvents`, `cairn:PutEvents`, `iam:CreateUser`, ...), the resource
//! ARN it acts on, whether it only reads, and who records it. The body is read once (within the
//! request limit) so its SHA-256 is part of the signature check, then handed on unchanged.
//!
//! **Recorded calls.** Changes record themselves in their handlers (with request parameters and
//! response elements, durable before the answer). This layer records, as management events with
//! the caller's identity: every denied call (`errorCode` `AccessDenied`), every failed call, and
//! every successful read. Successful ingestion (`PutAuditEvents`, `/v1/events`) is data-plane
//! traffic and is not recorded again; metrics scrapes are recorded only when denied.

use crate::error::ApiError;
use crate::trails::Caller;
use crate::{AppState, BoxFuture};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_iam::Principal;
use serde_json::{json, Map, Value};

/// Prefix of CloudTrail's `X-Amz-Target` values.
pub const TARGET_PREFIX: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.";

/// A call to record as a management event.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// Who called.
    pub caller: Caller,
    /// The operation.
    pub operation: Operation,
    /// Request parameters (never secrets).
    pub request_parameters: Value,
    /// The error code, if the call failed.
    pub error_code: Option<String>,
    /// The error message.
    pub error_message: Option<String>,
}

/// Verifies signatures, decides, records. Filled by the server.
pub trait Authenticator: Send + Sync {
    /// The signer's identity, or why the request is not authenticated.
    fn authenticate(
        &self,
        request: &cairn_sigv4::Request<'_>,
    ) -> Result<Principal, cairn_sigv4::SigError>;
    /// Whether `principal` may call `action` on `resource`.
    fn authorize(&self, principal: &Principal, action: &str, resource: &str) -> bool;
    /// Records a call (durably; failures are logged, not answered).
    fn record_call(&self, call: CallRecord) -> BoxFuture<'_, ()>;
    /// Whether `/metrics` may be read without signing (configuration).
    fn public_metrics(&self) -> bool;
}

/// What a request does, for authorization and the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// IAM action, `service:Operation`.
    pub action: String,
    /// The event's `eventSource`.
    pub event_source: &'static str,
    /// The event's `eventName`.
    pub event_name: String,
    /// The resource ARN (`*` when none applies).
    pub resource: String,
    /// Only reads.
    pub read_only: bool,
    /// The handler records successful calls itself.
    pub handler_records: bool,
    /// Ingestion or metrics: success is not recorded.
    pub data_plane: bool,
}

fn op(
    action: &str,
    resource: String,
    read_only: bool,
    handler_records: bool,
    data_plane: bool,
) -> Operation {
    let (service, name) = action.split_once(':').unwrap_or(("cairn", action));
    Operation {
        action: action.to_owned(),
        event_source: match service {
            "cloudtrail" => "cloudtrail.amazonaws.com",
            "cloudtrail-data" => "cloudtrail-data.amazonaws.com",
            "iam" => "iam.amazonaws.com",
            "logs" => "logs.amazonaws.com",
            "cloudwatch" => "monitoring.amazonaws.com",
            "sns" => "sns.amazonaws.com",
            _ => "cairn.amazonaws.com",
        },
        event_name: name.to_owned(),
        resource,
        read_only,
        handler_records,
        data_plane,
    }
}

fn percent_decode(text: &str) -> String {
    cairn_sigv4::query_pairs(&format!("x={text}"))
        .pop()
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// The trail ARN a name (or ARN) refers to.
pub fn trail_arn(name: &str, region: &str, account: &str) -> String {
    if name.starts_with("arn:") {
        name.to_owned()
    } else {
        format!("arn:aws:cloudtrail:{region}:{account}:trail/{name}")
    }
}

/// The event data store ARN a name, id (or ARN) refers to.
pub fn store_arn(name: &str, region: &str, account: &str) -> String {
    if name.starts_with("arn:") {
        name.to_owned()
    } else {
        format!("arn:aws:cloudtrail:{region}:{account}:eventdatastore/{name}")
    }
}

/// Maps a request to its operation; `None` for routes that do not exist (answered 404 later).
pub fn operation(
    method: &Method,
    path: &str,
    target: Option<&str>,
    body: &[u8],
    region: &str,
    account: &str,
) -> Option<Operation> {
    let trail = |name: &str| trail_arn(&percent_decode(name), region, account);
    let user = |name: &str| format!("arn:aws:iam::{account}:user/{}", percent_decode(name));
    let group = |name: &str| {
        format!(
            "arn:aws:logs:{region}:{account}:log-group:{}",
            percent_decode(name)
        )
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let any = || "*".to_owned();
    Some(match (method.as_str(), segments.as_slice()) {
        ("POST", [""]) => {
            let name = target?.strip_prefix(TARGET_PREFIX)?;
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let lake_op = name.contains("EventDataStore");
            let named = if lake_op {
                request
                    .get("EventDataStore")
                    .or_else(|| request.get("Name"))
                    .and_then(Value::as_str)
                    .map(|n| store_arn(n, region, account))
            } else {
                request
                    .get("Name")
                    .or_else(|| request.get("TrailName"))
                    .and_then(Value::as_str)
                    .map(|n| trail_arn(n, region, account))
            };
            let read_only = matches!(
                name,
                "DescribeTrails"
                    | "GetTrail"
                    | "GetTrailStatus"
                    | "ListTrails"
                    | "GetEventSelectors"
                    | "LookupEvents"
                    | "ListPublicKeys"
                    | "GetEventDataStore"
                    | "ListEventDataStores"
                    | "StartQuery"
                    | "DescribeQuery"
                    | "GetQueryResults"
                    | "ListQueries"
            );
            let writes = matches!(
                name,
                "CreateTrail"
                    | "UpdateTrail"
                    | "DeleteTrail"
                    | "StartLogging"
                    | "StopLogging"
                    | "PutEventSelectors"
                    | "CreateEventDataStore"
                    | "UpdateEventDataStore"
                    | "DeleteEventDataStore"
            );
            op(
                &format!("cloudtrail:{name}"),
                named.unwrap_or_else(any),
                read_only,
                writes,
                false,
            )
        }
        ("POST", ["PutAuditEvents"]) => {
            op("cloudtrail-data:PutAuditEvents", any(), false, false, true)
        }
        ("POST", ["v1", "events"]) => op("cairn:PutEvents", any(), false, false, true),
        ("GET", ["v1", "event-history"]) => {
            op("cloudtrail:LookupEvents", any(), true, false, false)
        }
        ("GET", ["metrics"]) => op("cairn:GetMetrics", any(), true, false, true),
        ("GET", ["v1", "status"]) => op("cairn:GetMetrics", any(), true, false, true),
        ("POST", ["v1", "trails"]) => {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let name = request.get("Name").and_then(Value::as_str).unwrap_or("*");
            op(
                "cloudtrail:CreateTrail",
                trail_arn(name, region, account),
                false,
                true,
                false,
            )
        }
        ("GET", ["v1", "trails"]) => op("cloudtrail:DescribeTrails", any(), true, false, false),
        ("GET", ["v1", "trails", name]) => {
            op("cloudtrail:GetTrail", trail(name), true, false, false)
        }
        ("PATCH", ["v1", "trails", name]) => {
            op("cloudtrail:UpdateTrail", trail(name), false, true, false)
        }
        ("DELETE", ["v1", "trails", name]) => {
            op("cloudtrail:DeleteTrail", trail(name), false, true, false)
        }
        ("GET", ["v1", "trails", name, "status"]) => {
            op("cloudtrail:GetTrailStatus", trail(name), true, false, false)
        }
        ("POST", ["v1", "trails", name, "start-logging"]) => {
            op("cloudtrail:StartLogging", trail(name), false, true, false)
        }
        ("POST", ["v1", "trails", name, "stop-logging"]) => {
            op("cloudtrail:StopLogging", trail(name), false, true, false)
        }
        ("PUT", ["v1", "trails", name, "event-selectors"]) => op(
            "cloudtrail:PutEventSelectors",
            trail(name),
            false,
            true,
            false,
        ),
        ("GET", ["v1", "trails", name, "event-selectors"]) => op(
            "cloudtrail:GetEventSelectors",
            trail(name),
            true,
            false,
            false,
        ),
        ("POST", ["v1", "trails", name, "flush"]) => {
            op("cairn:FlushTrail", trail(name), false, false, false)
        }
        ("GET", ["v1", "public-keys"]) => {
            op("cloudtrail:ListPublicKeys", any(), true, false, false)
        }
        ("POST", ["v1", "keys", "rotate"]) => {
            op("cairn:RotateSigningKey", any(), false, true, false)
        }
        ("POST", ["v1", "iam", "users"]) => {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let name = request
                .get("UserName")
                .and_then(Value::as_str)
                .unwrap_or("*");
            op("iam:CreateUser", user(name), false, true, false)
        }
        ("GET", ["v1", "iam", "users"]) => op("iam:ListUsers", any(), true, false, false),
        ("GET", ["v1", "iam", "whoami"]) => op("sts:GetCallerIdentity", any(), true, false, true),
        ("POST", ["v1", "iam", "users", name, "access-keys"]) => {
            op("iam:CreateAccessKey", user(name), false, true, false)
        }
        ("GET", ["v1", "iam", "users", name, "access-keys"]) => {
            op("iam:ListAccessKeys", user(name), true, false, false)
        }
        ("DELETE", ["v1", "iam", "users", name, "access-keys", _]) => {
            op("iam:DeleteAccessKey", user(name), false, true, false)
        }
        ("POST", ["v1", "iam", "users", name, "attached-policies"]) => {
            op("iam:AttachUserPolicy", user(name), false, true, false)
        }
        ("DELETE", ["v1", "iam", "users", name]) => {
            op("iam:DeleteUser", user(name), false, true, false)
        }
        ("PATCH", ["v1", "iam", "users", name, "access-keys", _]) => {
            op("iam:UpdateAccessKey", user(name), false, true, false)
        }
        ("GET", ["v1", "iam", "users", name, "attached-policies"]) => op(
            "iam:ListAttachedUserPolicies",
            user(name),
            true,
            false,
            false,
        ),
        ("DELETE", ["v1", "iam", "users", name, "attached-policies", _]) => {
            op("iam:DetachUserPolicy", user(name), false, true, false)
        }
        ("GET", ["v1", "iam", "users", name, "policies"]) => {
            op("iam:ListUserPolicies", user(name), true, false, false)
        }
        ("DELETE", ["v1", "iam", "users", name, "policies", _]) => {
            op("iam:DeleteUserPolicy", user(name), false, true, false)
        }
        ("PUT", ["v1", "iam", "users", name, "policies", _]) => {
            op("iam:PutUserPolicy", user(name), false, true, false)
        }
        ("GET", ["v1", "log-groups"]) => op("logs:DescribeLogGroups", any(), true, false, false),
        ("PUT", ["v1", "log-groups", name]) => {
            op("logs:CreateLogGroup", group(name), false, true, false)
        }
        ("GET", ["v1", "log-groups", name, "events"]) => {
            op("logs:FilterLogEvents", group(name), true, false, false)
        }
        ("GET", ["v1", "log-groups", name, "metric-filters"]) => op(
            "logs:DescribeMetricFilters",
            group(name),
            true,
            false,
            false,
        ),
        ("PUT", ["v1", "log-groups", name, "metric-filters", _]) => {
            op("logs:PutMetricFilter", group(name), false, true, false)
        }
        ("DELETE", ["v1", "log-groups", name, "metric-filters", _]) => {
            op("logs:DeleteMetricFilter", group(name), false, true, false)
        }
        ("DELETE", ["v1", "log-groups", name]) => {
            op("logs:DeleteLogGroup", group(name), false, true, false)
        }
        ("DELETE", ["v1", "topics", name]) => op(
            "sns:DeleteTopic",
            format!("arn:aws:sns:{region}:{account}:{}", percent_decode(name)),
            false,
            true,
            false,
        ),
        ("DELETE", ["v1", "alarms", name]) => op(
            "cloudwatch:DeleteAlarms",
            format!(
                "arn:aws:cloudwatch:{region}:{account}:alarm:{}",
                percent_decode(name)
            ),
            false,
            true,
            false,
        ),
        ("GET", ["v1", "topics"]) => op("sns:ListTopics", any(), true, false, false),
        ("PUT", ["v1", "topics", name]) => op(
            "sns:CreateTopic",
            format!("arn:aws:sns:{region}:{account}:{}", percent_decode(name)),
            false,
            true,
            false,
        ),
        ("GET", ["v1", "alarms"]) => op("cloudwatch:DescribeAlarms", any(), true, false, false),
        ("POST", ["v1", "alarms", "install-cis"]) => {
            op("cairn:InstallCisPack", any(), false, true, false)
        }
        ("PUT", ["v1", "alarms", name]) => op(
            "cloudwatch:PutMetricAlarm",
            format!(
                "arn:aws:cloudwatch:{region}:{account}:alarm:{}",
                percent_decode(name)
            ),
            false,
            true,
            false,
        ),
        ("POST", ["v1", "event-data-stores"]) => {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let name = request.get("Name").and_then(Value::as_str).unwrap_or("*");
            op(
                "cloudtrail:CreateEventDataStore",
                store_arn(name, region, account),
                false,
                true,
                false,
            )
        }
        ("GET", ["v1", "event-data-stores"]) => {
            op("cloudtrail:ListEventDataStores", any(), true, false, false)
        }
        ("GET", ["v1", "event-data-stores", name]) => op(
            "cloudtrail:GetEventDataStore",
            store_arn(&percent_decode(name), region, account),
            true,
            false,
            false,
        ),
        ("PATCH", ["v1", "event-data-stores", name]) => op(
            "cloudtrail:UpdateEventDataStore",
            store_arn(&percent_decode(name), region, account),
            false,
            true,
            false,
        ),
        ("DELETE", ["v1", "event-data-stores", name]) => op(
            "cloudtrail:DeleteEventDataStore",
            store_arn(&percent_decode(name), region, account),
            false,
            true,
            false,
        ),
        ("POST", ["v1", "event-data-stores", name, "import"]) => op(
            "cloudtrail:StartImport",
            store_arn(&percent_decode(name), region, account),
            false,
            true,
            false,
        ),
        ("POST", ["v1", "queries"]) => op("cloudtrail:StartQuery", any(), true, false, false),
        ("GET", ["v1", "queries"]) => op("cloudtrail:ListQueries", any(), true, false, false),
        ("GET", ["v1", "queries", _]) => op("cloudtrail:DescribeQuery", any(), true, false, false),
        ("GET", ["v1", "queries", _, "results"]) => {
            op("cloudtrail:GetQueryResults", any(), true, false, false)
        }
        ("POST", ["v1", "queries", _, "cancel"]) => {
            op("cloudtrail:CancelQuery", any(), false, false, false)
        }
        ("GET", ["v1", "metrics", "statistics"]) => {
            op("cloudwatch:GetMetricStatistics", any(), true, false, false)
        }
        _ => return None,
    })
}

/// The largest body any route reads: `max_request_bytes` (at least 1 MiB, for the control
/// plane's documents) and 64 KiB of envelope.
pub(crate) fn body_limit(limits: &crate::Limits) -> usize {
    limits.max_request_bytes.max(1 << 20) + 64 * 1024
}

fn sig_error(error: &cairn_sigv4::SigError) -> ApiError {
    let status = match error {
        cairn_sigv4::SigError::MissingAuthenticationToken => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError {
        status,
        code: error.code(),
        message: error.to_string(),
    }
}

/// Request parameters for the record: the JSON body of CloudTrail protocol calls, the query
/// of native reads; never bodies of identity calls (they may carry policy documents) beyond
/// their names.
fn request_parameters(parts: &axum::http::request::Parts, body: &[u8]) -> Value {
    if parts.uri.path() == "/" {
        return serde_json::from_slice(body).unwrap_or(Value::Null);
    }
    let mut map = Map::new();
    for (k, v) in cairn_sigv4::query_pairs(parts.uri.query().unwrap_or("")) {
        map.insert(k, Value::String(v));
    }
    map.insert("path".into(), Value::String(parts.uri.path().to_owned()));
    Value::Object(map)
}

/// The layer: authenticate, authorize, record; then the handler.
pub async fn layer(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    // Health, readiness, and the public key receivers verify notifications with.
    if path == "/healthz" || path == "/readyz" || path == "/v1/topics/signing-key" {
        return next.run(request).await;
    }
    if path == "/metrics" && state.auth.public_metrics() {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    // The wire limit of the largest route, plus room for a JSON envelope.
    let limit = body_limit(&state.limits);
    // Room in the memory budget for this body, held until the answer is made.
    let _admission = match state.gates.admit(&parts.headers, limit).await {
        Ok(admission) => admission,
        Err(e) => return e.into_response(),
    };
    let bytes = match crate::body::read_limited(body, limit).await {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(),
    };
    let mut headers: Vec<(String, String)> = Vec::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let Ok(value) = value.to_str() else {
            return ApiError::bad_request(
                "InvalidRequest",
                format!("header {name} is not visible ASCII"),
            )
            .into_response();
        };
        headers.push((name.as_str().to_owned(), value.to_owned()));
    }
    let body_sha256 = cairn_sigv4::sha256_hex(&bytes);
    let verified = state.auth.authenticate(&cairn_sigv4::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        body_sha256: &body_sha256,
    });
    let principal = match verified {
        Ok(principal) => principal,
        Err(e) => return sig_error(&e).into_response(),
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let region = state.ingest.region().to_owned();
    let account = state.ingest.account_id().to_string();
    let Some(operation) = operation(
        &parts.method,
        &path,
        target.as_deref(),
        &bytes,
        &region,
        &account,
    ) else {
        // Not a route: the router answers (404, or the protocol's UnknownOperation).
        parts.extensions.insert(principal);
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    let caller = {
        use axum::extract::FromRequestParts;
        let mut caller = Caller::from_request_parts(&mut parts, &())
            .await
            .unwrap_or_else(|never| match never {});
        caller.identity = Some(principal.clone());
        caller
    };
    // Like STS's GetCallerIdentity, asking who one is needs no permission.
    let always_allowed = operation.action == "sts:GetCallerIdentity";
    if !always_allowed
        && !state
            .auth
            .authorize(&principal, &operation.action, &operation.resource)
    {
        let message = format!(
            "User: {} is not authorized to perform: {} on resource: {}",
            principal.arn, operation.action, operation.resource
        );
        state
            .auth
            .record_call(CallRecord {
                caller,
                operation: operation.clone(),
                request_parameters: request_parameters(&parts, &bytes),
                error_code: Some("AccessDenied".into()),
                error_message: Some(message.clone()),
            })
            .await;
        return ApiError {
            status: StatusCode::FORBIDDEN,
            code: "AccessDeniedException",
            message,
        }
        .into_response();
    }
    let parameters = request_parameters(&parts, &bytes);
    parts.extensions.insert(principal);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let failed = !response.status().is_success();
    let record = if failed {
        operation.action != "cairn:GetMetrics"
    } else {
        operation.read_only && !operation.data_plane && !operation.handler_records
    };
    if !record {
        return response;
    }
    let (response_parts, response_body) = response.into_parts();
    let (error_code, error_message, response_body) = if failed {
        let bytes = crate::body::read_limited(response_body, 1 << 20)
            .await
            .unwrap_or_default();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (
            Some(
                value["__type"]
                    .as_str()
                    .unwrap_or(response_parts.status.as_str())
                    .to_owned(),
            ),
            value["message"].as_str().map(str::to_owned),
            Body::from(bytes),
        )
    } else {
        (None, None, response_body)
    };
    state
        .auth
        .record_call(CallRecord {
            caller,
            operation,
            request_parameters: parameters,
            error_code,
            error_message,
        })
        .await;
    Response::from_parts(response_parts, response_body)
}

/// The `userIdentity` of a caller's record.
pub fn user_identity(caller: &Caller, account: &str) -> Value {
    match &caller.identity {
        Some(p) => json!({
            "type": p.kind,
            "principalId": p.principal_id,
            "arn": p.arn,
            "accountId": p.account_id,
            "accessKeyId": p.access_key_id,
            "userName": p.user_name,
        }),
        None => json!({ "type": "Unknown", "principalId": "anonymous", "accountId": account }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_actions_and_resources() {
        let o = |m: &str, p: &str, t: Option<&str>, b: &str| {
            operation(
                &m.parse().expect("method"),
                p,
                t,
                b.as_bytes(),
                "us-east-1",
                "111122223333",
            )
        };
        let create = o("POST", "/v1/trails", None, r#"{"Name":"main"}"#).expect("op");
        assert_eq!(create.action, "cloudtrail:CreateTrail");
        assert_eq!(
            create.resource,
            "arn:aws:cloudtrail:us-east-1:111122223333:trail/main"
        );
        assert!(create.handler_records && !create.read_only);
        let status = o(
            "GET",
            "/v1/trails/arn%3Aaws%3Acloudtrail%3Aeu-west-1%3A111122223333%3Atrail%2Fx/status",
            None,
            "",
        )
        .expect("op");
        assert_eq!(
            status.resource,
            "arn:aws:cloudtrail:eu-west-1:111122223333:trail/x"
        );
        assert!(status.read_only);
        let wire = o(
            "POST",
            "/",
            Some("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.StopLogging"),
            r#"{"Name":"main"}"#,
        )
        .expect("op");
        assert_eq!(wire.action, "cloudtrail:StopLogging");
        assert_eq!(wire.event_source, "cloudtrail.amazonaws.com");
        let put = o("POST", "/PutAuditEvents", None, "").expect("op");
        assert_eq!(put.action, "cloudtrail-data:PutAuditEvents");
        assert!(put.data_plane);
        let key = o("POST", "/v1/iam/users/bob/access-keys", None, "").expect("op");
        assert_eq!(key.resource, "arn:aws:iam::111122223333:user/bob");
        assert_eq!(key.event_source, "iam.amazonaws.com");
        assert_eq!(o("GET", "/nowhere", None, ""), None);
        assert_eq!(o("POST", "/", Some("Other.Target"), ""), None);
    }
}
