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
use crate::routes::{Resource, RouteTable};
use crate::trails::Caller;
use crate::{AppState, BoxFuture};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_model::principal::Principal;
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

/// Maps a request to its operation through the route table (each route declares its action
/// where it is registered, `crate::routes`); `None` for routes that do not exist (answered 404
/// later) and public ones.
pub fn operation(
    table: &RouteTable,
    method: &Method,
    path: &str,
    target: Option<&str>,
    body: &[u8],
    region: &str,
    account: &str,
) -> Option<Operation> {
    let found = table.find(method, path)?;
    let action = found.action;
    let param = |name: &str| percent_decode(found.param(name).unwrap_or("*"));
    let member = |name: &str| -> String {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get(name)?.as_str().map(str::to_owned))
            .unwrap_or_else(|| "*".to_owned())
    };
    let user = |name: &str| format!("arn:aws:iam::{account}:user/{name}");
    let resource = match action.resource {
        Resource::Any => "*".to_owned(),
        Resource::Trail(p) => trail_arn(&param(p), region, account),
        Resource::TrailInBody(m) => trail_arn(&member(m), region, account),
        Resource::User(p) => user(&param(p)),
        Resource::UserInBody(m) => user(&percent_decode(&member(m))),
        Resource::LogGroup(p) => format!("arn:aws:logs:{region}:{account}:log-group:{}", param(p)),
        Resource::Topic(p) => format!("arn:aws:sns:{region}:{account}:{}", param(p)),
        Resource::Alarm(p) => format!("arn:aws:cloudwatch:{region}:{account}:alarm:{}", param(p)),
        Resource::Store(p) => store_arn(&param(p), region, account),
        Resource::StoreInBody(m) => store_arn(&member(m), region, account),
        Resource::Protocol => return protocol_operation(target, body, region, account),
    };
    Some(op(
        action.name,
        resource,
        action.read_only,
        action.handler_records,
        action.data_plane,
    ))
}

/// A call of CloudTrail's JSON protocol: the operation `X-Amz-Target` names, on the trail or
/// event data store its body names.
fn protocol_operation(
    target: Option<&str>,
    body: &[u8],
    region: &str,
    account: &str,
) -> Option<Operation> {
    let any = || "*".to_owned();
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
    Some(op(
        &format!("cloudtrail:{name}"),
        named.unwrap_or_else(any),
        read_only,
        writes,
        false,
    ))
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
    axum::extract::State((state, table)): axum::extract::State<(
        AppState,
        std::sync::Arc<RouteTable>,
    )>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    // Routes declared public: health, readiness, the key receivers verify notifications with.
    if table.is_public(request.method(), &path) {
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
        &table,
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

    /// Every route's operation — IAM action, resource, whether it only reads, who records it —
    /// as `testdata/route-actions.json` lists it (taken from the route match this table
    /// replaced): moving the actions to the routes changed none.
    #[test]
    fn every_route_keeps_its_action_and_resource() {
        let table = crate::route_table();
        let cases: Vec<Value> =
            serde_json::from_str(include_str!("../testdata/route-actions.json")).expect("json");
        assert!(cases.len() > 80);
        for case in cases {
            let method: Method = case["method"]
                .as_str()
                .expect("method")
                .parse()
                .expect("method");
            let path = case["path"].as_str().expect("path");
            let got = operation(
                &table,
                &method,
                path,
                case["target"].as_str(),
                case["body"].as_str().expect("body").as_bytes(),
                "us-east-1",
                "111122223333",
            )
            .map(|o| {
                json!({"action": o.action, "resource": o.resource, "readOnly": o.read_only,
                    "handlerRecords": o.handler_records, "dataPlane": o.data_plane,
                    "eventSource": o.event_source, "eventName": o.event_name})
            });
            assert_eq!(
                got.unwrap_or(Value::Null),
                case["expect"],
                "{method} {path}"
            );
            assert_eq!(
                table.is_public(&method, path),
                case["public"] == true,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn routes_map_to_actions_and_resources() {
        let o = |m: &str, p: &str, t: Option<&str>, b: &str| {
            operation(
                &crate::route_table(),
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
