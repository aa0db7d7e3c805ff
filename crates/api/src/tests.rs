//! Handler tests over fake ports: every kind of bad input gets a precise 4xx.

use super::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use cairn_model::event::ProducerDigest;
use cairn_model::lookup::LookupPage;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use tower::ServiceExt;

#[derive(Default)]
struct FakeIngest {
    recorded: Mutex<HashMap<String, (ProducerDigest, Vec<u8>)>>,
    unavailable: bool,
    account: Option<AccountId>,
}

impl Ingest for FakeIngest {
    fn account_id(&self) -> &AccountId {
        self.account.as_ref().expect("account set")
    }
    fn region(&self) -> &str {
        "us-east-1"
    }
    fn now_millis(&self) -> i64 {
        1_700_000_000_000
    }
    fn note_rejected(&self, _: RejectKind) {}
    fn record(
        &self,
        events: Vec<PreparedEvent>,
    ) -> BoxFuture<'_, Result<Vec<RecordOutcome>, ApiError>> {
        Box::pin(async move {
            if self.unavailable {
                return Err(ApiError::unavailable("disk full"));
            }
            let mut recorded = self.recorded.lock().expect("lock");
            Ok(events
                .into_iter()
                .map(|e| match recorded.get(&e.event_id) {
                    Some((digest, _)) if *digest == e.digest => RecordOutcome::Duplicate,
                    Some(_) => RecordOutcome::Conflict,
                    None => {
                        recorded.insert(e.event_id.clone(), (e.digest, e.record));
                        RecordOutcome::Accepted
                    }
                })
                .collect())
        })
    }
}

struct FakeQuery;

impl EventQuery for FakeQuery {
    fn lookup(
        &self,
        query: LookupQuery,
    ) -> BoxFuture<'_, Result<LookupPage, cairn_model::lookup::LookupError>> {
        Box::pin(async move {
            query
                .clone()
                .max_results
                .filter(|n| *n > 50)
                .map_or(Ok(()), |n| {
                    Err(cairn_model::lookup::QueryError::InvalidMaxResults(n))
                })?;
            Ok(LookupPage {
                events: Vec::new(),
                next_token: None,
            })
        })
    }
}

struct NoTrails;

fn trail_not_found(name: String) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "TrailNotFoundException",
        message: format!("unknown trail: {name}"),
    }
}

impl trails::TrailAdmin for NoTrails {
    fn create(
        &self,
        _: trails::Caller,
        settings: cairn_trail::TrailSettings,
    ) -> BoxFuture<'_, Result<cairn_trail::Trail, ApiError>> {
        Box::pin(async move {
            Err(ApiError::bad_request(
                "TrailAlreadyExistsException",
                format!("trail {} already exists", settings.name),
            ))
        })
    }
    fn update(
        &self,
        _: trails::Caller,
        name: String,
        _: cairn_trail::TrailSettings,
    ) -> BoxFuture<'_, Result<cairn_trail::Trail, ApiError>> {
        Box::pin(async move { Err(trail_not_found(name)) })
    }
    fn delete(&self, _: trails::Caller, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move { Err(trail_not_found(name)) })
    }
    fn list(&self) -> Vec<cairn_trail::Trail> {
        Vec::new()
    }
    fn get(&self, name: &str) -> Result<cairn_trail::Trail, ApiError> {
        Err(trail_not_found(name.to_owned()))
    }
    fn start_logging(
        &self,
        _: trails::Caller,
        name: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move { Err(trail_not_found(name)) })
    }
    fn stop_logging(&self, _: trails::Caller, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move { Err(trail_not_found(name)) })
    }
    fn put_event_selectors(
        &self,
        _: trails::Caller,
        name: String,
        _: cairn_selectors::Selectors,
    ) -> BoxFuture<'_, Result<cairn_trail::Trail, ApiError>> {
        Box::pin(async move { Err(trail_not_found(name)) })
    }
    fn flush(&self, name: String) -> BoxFuture<'_, Result<trails::FlushOut, ApiError>> {
        Box::pin(async move { Err(trail_not_found(name)) })
    }
}

/// Authentication is tested on its own (cairn-sigv4, the server's tests); these route tests
/// run as one administrator.
struct Everyone;

impl auth::Authenticator for Everyone {
    fn authenticate(
        &self,
        _: &cairn_sigv4::Request<'_>,
    ) -> Result<cairn_model::principal::Principal, cairn_sigv4::SigError> {
        Ok(cairn_model::principal::Principal {
            kind: "IAMUser",
            principal_id: "AIDATEST".into(),
            arn: "arn:aws:iam::111122223333:user/admin".into(),
            account_id: "111122223333".into(),
            access_key_id: "AKIATEST".into(),
            user_name: "admin".into(),
        })
    }
    fn authorize(&self, _: &cairn_model::principal::Principal, _: &str, _: &str) -> bool {
        true
    }
    fn record_call(&self, _: auth::CallRecord) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn public_metrics(&self) -> bool {
        false
    }
}

use serde_json::Value;

/// The Lake is tested through the server.
struct NoLake;

fn no_lake() -> ApiError {
    ApiError::bad_request("EventDataStoreNotFoundException", "no stores here")
}

impl lake::LakeAdmin for NoLake {
    fn create_store(&self, _: trails::Caller, _: Value) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async { Err(no_lake()) })
    }
    fn get_store(&self, _: &str) -> Result<Value, ApiError> {
        Err(no_lake())
    }
    fn list_stores(&self) -> Value {
        serde_json::json!({ "EventDataStores": [] })
    }
    fn update_store(
        &self,
        _: trails::Caller,
        _: String,
        _: Value,
    ) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async { Err(no_lake()) })
    }
    fn delete_store(&self, _: trails::Caller, _: String) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async { Err(no_lake()) })
    }
    fn import(
        &self,
        _: trails::Caller,
        _: String,
        _: axum::body::Bytes,
    ) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async { Err(no_lake()) })
    }
    fn start_query(
        &self,
        _: crate::trails::Caller,
        _: String,
    ) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async { Err(no_lake()) })
    }
    fn describe_query(&self, _: &str) -> Result<Value, ApiError> {
        Err(no_lake())
    }
    fn query_results(&self, _: &str, _: Option<&str>, _: Option<i64>) -> Result<Value, ApiError> {
        Err(no_lake())
    }
    fn cancel_query(&self, _: &str) -> Result<Value, ApiError> {
        Err(no_lake())
    }
    fn list_queries(&self) -> Value {
        serde_json::json!({ "Queries": [] })
    }
}

/// Log groups are tested through the server.
struct NoLogs;

impl logs::LogsAdmin for NoLogs {
    fn delete_group(&self, _: trails::Caller, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move { Err(ApiError::bad_request("ResourceNotFoundException", name)) })
    }
    fn delete_filter(
        &self,
        _: trails::Caller,
        group: String,
        _: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move { Err(ApiError::bad_request("ResourceNotFoundException", group)) })
    }
    fn delete_alarms(
        &self,
        _: trails::Caller,
        _: Vec<String>,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async { Err(ApiError::bad_request("ResourceNotFoundException", "alarm")) })
    }
    fn delete_topic(&self, _: trails::Caller, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move { Err(ApiError::bad_request("ResourceNotFoundException", name)) })
    }
    fn put_group(
        &self,
        _: trails::Caller,
        name: String,
        _: String,
        _: u32,
    ) -> BoxFuture<'_, Result<serde_json::Value, ApiError>> {
        Box::pin(async move { Err(ApiError::bad_request("ResourceNotFoundException", name)) })
    }
    fn groups(&self) -> serde_json::Value {
        serde_json::json!({ "logGroups": [] })
    }
    fn put_filter(
        &self,
        _: trails::Caller,
        _: cairn_monitor::config::FilterConfig,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async { Err(ApiError::bad_request("ResourceNotFoundException", "none")) })
    }
    fn filters(&self, _: &str) -> serde_json::Value {
        serde_json::json!({ "metricFilters": [] })
    }
    fn filter_events(
        &self,
        group: String,
        _: String,
        _: i64,
        _: i64,
        _: usize,
        _: Option<String>,
    ) -> BoxFuture<'_, Result<serde_json::Value, ApiError>> {
        Box::pin(async move { Err(ApiError::bad_request("ResourceNotFoundException", group)) })
    }
    fn put_topic(
        &self,
        _: trails::Caller,
        t: cairn_monitor::config::Topic,
    ) -> BoxFuture<'_, Result<serde_json::Value, ApiError>> {
        Box::pin(async move { Err(ApiError::bad_request("ResourceNotFoundException", t.name)) })
    }
    fn topics(&self) -> serde_json::Value {
        serde_json::json!({ "topics": [] })
    }
    fn signing_key_pem(&self) -> Result<String, ApiError> {
        Err(ApiError::internal("no key in this test"))
    }
    fn put_alarm(
        &self,
        _: trails::Caller,
        a: cairn_monitor::config::AlarmConfig,
    ) -> BoxFuture<'_, Result<serde_json::Value, ApiError>> {
        Box::pin(async move { Err(ApiError::bad_request("ResourceNotFoundException", a.name)) })
    }
    fn alarms(&self) -> serde_json::Value {
        serde_json::json!({ "MetricAlarms": [] })
    }
    fn install_cis(
        &self,
        _: trails::Caller,
        g: String,
        _: String,
    ) -> BoxFuture<'_, Result<serde_json::Value, ApiError>> {
        Box::pin(async move { Err(ApiError::bad_request("ResourceNotFoundException", g)) })
    }
    fn statistics(
        &self,
        _: String,
        _: String,
        _: std::collections::BTreeMap<String, String>,
        _: i64,
        _: i64,
        _: i64,
        _: Vec<cairn_monitor::stats::Statistic>,
    ) -> Result<serde_json::Value, ApiError> {
        Ok(serde_json::json!({ "Datapoints": [] }))
    }
}

/// Identity administration is tested through the server.
struct NoIam;

fn no_iam() -> ApiError {
    ApiError::bad_request("NoSuchEntity", "no identities in this test")
}

impl iam::IamAdmin for NoIam {
    fn create_user(
        &self,
        _: trails::Caller,
        _: String,
    ) -> BoxFuture<'_, Result<serde_json::Value, ApiError>> {
        Box::pin(async { Err(no_iam()) })
    }
    fn list_users(&self) -> Result<serde_json::Value, ApiError> {
        Err(no_iam())
    }
    fn create_access_key(
        &self,
        _: trails::Caller,
        _: String,
    ) -> BoxFuture<'_, Result<serde_json::Value, ApiError>> {
        Box::pin(async { Err(no_iam()) })
    }
    fn list_access_keys(&self, _: &str) -> Result<serde_json::Value, ApiError> {
        Err(no_iam())
    }
    fn delete_access_key(
        &self,
        _: trails::Caller,
        _: String,
        _: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async { Err(no_iam()) })
    }
    fn attach_policy(
        &self,
        _: trails::Caller,
        _: String,
        _: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async { Err(no_iam()) })
    }
    fn put_user_policy(
        &self,
        _: trails::Caller,
        _: String,
        _: String,
        _: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async { Err(no_iam()) })
    }
    fn delete_user(&self, _: trails::Caller, _: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async { Err(no_iam()) })
    }
    fn update_access_key(
        &self,
        _: trails::Caller,
        _: String,
        _: String,
        _: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async { Err(no_iam()) })
    }
    fn list_attached_policies(&self, _: &str) -> Result<serde_json::Value, ApiError> {
        Err(no_iam())
    }
    fn detach_policy(
        &self,
        _: trails::Caller,
        _: String,
        _: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async { Err(no_iam()) })
    }
    fn list_user_policies(&self, _: &str) -> Result<serde_json::Value, ApiError> {
        Err(no_iam())
    }
    fn delete_user_policy(
        &self,
        _: trails::Caller,
        _: String,
        _: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async { Err(no_iam()) })
    }
}

/// Two eu-west-1 keys: one valid 1000–2000 s, the current one from 2000 s; now is 3000 s.
struct TwoKeys;

impl keys::KeyAdmin for TwoKeys {
    fn list(
        &self,
        region: &str,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<Vec<cairn_model::signing_key::KeyInfo>, ApiError> {
        let (start, end) = (start.unwrap_or(3_000_000), end.unwrap_or(3_000_000));
        let key = |fingerprint: &str, valid_from, valid_until| cairn_model::signing_key::KeyInfo {
            region: "eu-west-1".into(),
            fingerprint: fingerprint.into(),
            public_key: "MIIBCgKCAQEA".into(),
            valid_from,
            valid_until,
            source: cairn_model::signing_key::KeySource::Generated,
        };
        Ok([
            key("old", 1_000_000, Some(2_000_000)),
            key("new", 2_000_000, None),
        ]
        .into_iter()
        .filter(|k| k.region == region && k.overlaps(start, end))
        .collect())
    }
    fn rotate(
        &self,
        _: trails::Caller,
        region: String,
    ) -> BoxFuture<'_, Result<cairn_model::signing_key::KeyInfo, ApiError>> {
        Box::pin(async move {
            Err(ApiError::bad_request(
                "InvalidParameterException",
                format!("no rotation in this test ({region})"),
            ))
        })
    }
    fn default_region(&self) -> String {
        "eu-west-1".into()
    }
    fn now_millis(&self) -> i64 {
        3_000_000
    }
}

#[tokio::test]
async fn public_keys_by_window_on_the_native_route_and_the_cloudtrail_protocol() {
    let router = router_with(fake());
    let get = |uri: &str| Request::get(uri).body(Body::empty()).expect("request");
    let (status, body) = call(router.clone(), get("/v1/public-keys")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = body["PublicKeyList"].as_array().expect("list");
    assert_eq!(list.len(), 1, "default window is now: the current key");
    assert_eq!(list[0]["Fingerprint"], "new");
    assert_eq!(list[0]["ValidityEndTime"], 3000.0);
    let (_, body) = call(
        router.clone(),
        get("/v1/public-keys?StartTime=1500&EndTime=2500"),
    )
    .await;
    assert_eq!(body["PublicKeyList"].as_array().map(Vec::len), Some(2));
    let (_, body) = call(
        router.clone(),
        get("/v1/public-keys?StartTime=1970-01-01T00:20:00Z&EndTime=1970-01-01T00:25:00Z"),
    )
    .await;
    assert_eq!(body["PublicKeyList"][0]["Fingerprint"], "old");
    let (status, body) = call(
        router.clone(),
        get("/v1/public-keys?StartTime=2500&EndTime=1500"),
    )
    .await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidTimeRangeException"))
    );
    let (status, _) = call(router.clone(), get("/v1/public-keys?Region=us-east-1&x=1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown parameter");
    let (_, body) = call(router.clone(), get("/v1/public-keys?Region=us-east-1")).await;
    assert_eq!(body["PublicKeyList"], serde_json::json!([]));

    let wire = |target: &str, body: &str| {
        Request::post("/")
            .header("x-amz-target", format!("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.{target}"))
            .header("content-type", "application/x-amz-json-1.1")
            .header("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260302/eu-west-1/cloudtrail/aws4_request, SignedHeaders=host, Signature=00")
            .body(Body::from(body.to_owned()))
            .expect("request")
    };
    let (status, body) = call(
        router.clone(),
        wire("ListPublicKeys", r#"{"StartTime":1500,"EndTime":1800}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["PublicKeyList"][0]["Fingerprint"], "old");
    let (status, body) = call(router.clone(), wire("DescribeTrails", "{}")).await;
    assert_eq!(
        (status, body["trailList"].clone()),
        (StatusCode::OK, serde_json::json!([]))
    );
    let (status, body) = call(
        router.clone(),
        wire("RegisterOrganizationDelegatedAdmin", "{}"),
    )
    .await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("UnknownOperationException"))
    );
    let (status, body) = call(
        router.clone(),
        wire(
            "CreateTrail",
            r#"{"Name":"t","S3BucketName":"b","KmsKeyId":"k"}"#,
        ),
    )
    .await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidParameterException"))
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("KmsKeyId")),
        "{body}"
    );
    let (status, body) = call(router.clone(), wire("ListPublicKeys", "[1]")).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("SerializationException"))
    );
}

struct FakeHealth;

impl Health for FakeHealth {
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }
    fn metrics(&self) -> String {
        "# EOF\n".to_owned()
    }
    fn status(&self) -> serde_json::Value {
        serde_json::json!({"Ready": true})
    }
}

fn router_with(ingest: Arc<FakeIngest>) -> Router {
    app(AppState {
        ingest,
        query: Arc::new(FakeQuery),
        health: Arc::new(FakeHealth),
        trails: Arc::new(NoTrails),
        keys: Arc::new(TwoKeys),
        auth: Arc::new(Everyone),
        iam: Arc::new(NoIam),
        logs: Arc::new(NoLogs),
        lake: Arc::new(NoLake),
        limits: Limits {
            max_request_bytes: 512 * 1024,
            max_events_per_request: 50,
            request_buffer_bytes: 64 << 20,
        },
        gates: Arc::new(crate::gate::Gates::new(64 << 20, 2)),
    })
}

fn fake() -> Arc<FakeIngest> {
    Arc::new(FakeIngest {
        account: Some("111122223333".parse().expect("id")),
        ..FakeIngest::default()
    })
}

async fn call(router: Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = router.oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
        String::from_utf8_lossy(&bytes).into_owned(),
    ));
    (status, value)
}

fn post(uri: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::post(uri);
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(body.into()).expect("request")
}

const GOOD: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser"},"eventTime":"2026-02-11T10:15:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser","awsRegion":"us-east-1","eventID":"good-1"}"#;

#[tokio::test]
async fn accepts_every_body_shape() {
    let second = GOOD.replace("good-1", "good-2");
    let third = GOOD.replace("good-1", "good-3");
    let ingest = fake();
    let router = router_with(ingest.clone());
    let (status, body) = call(
        router.clone(),
        post("/v1/events", Some("application/json"), format!("[{GOOD}]")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["results"][0]["eventID"], "good-1");
    let (status, body) = call(
        router.clone(),
        post(
            "/v1/events",
            Some("application/json"),
            format!("{{\"Records\":[{second}]}}"),
        ),
    )
    .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(format!("{third}\n\n{GOOD}\n").as_bytes())
        .expect("gzip");
    let (status, body) = call(
        router.clone(),
        post(
            "/v1/events",
            Some("application/x-ndjson"),
            gz.finish().expect("gzip"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    // Stored: the producer's bytes, with Cairn's members appended before the closing brace.
    let stored = ingest.recorded.lock().expect("lock")["good-3"].1.clone();
    assert!(stored.starts_with(&third.as_bytes()[..third.len() - 1]));
    assert!(String::from_utf8(stored).expect("utf8").ends_with(
        ",\"eventCategory\":\"Management\",\"managementEvent\":true,\"readOnly\":false}"
    ));
}

/// `(description, content type, body, expected status, expected code or field)`.
#[tokio::test]
async fn bad_input_gets_a_precise_4xx() {
    let big_event = GOOD.replace(
        "\"good-1\"",
        &format!("\"big\",\"pad\":\"{}\"", "x".repeat(300 * 1024)),
    );
    let many: Vec<String> = (0..51)
        .map(|i| GOOD.replace("good-1", &format!("m{i}")))
        .collect();
    let cases: Vec<(&str, Option<&str>, String, StatusCode, &str)> = vec![
        (
            "malformed json",
            Some("application/json"),
            "[{\"eventVersion\":".into(),
            StatusCode::BAD_REQUEST,
            "MalformedJson",
        ),
        (
            "not an array",
            Some("application/json"),
            "42".into(),
            StatusCode::BAD_REQUEST,
            "MalformedJson",
        ),
        (
            "records not array",
            Some("application/json"),
            "{\"Records\":5}".into(),
            StatusCode::BAD_REQUEST,
            "MalformedJson",
        ),
        (
            "empty",
            Some("application/json"),
            "[]".into(),
            StatusCode::BAD_REQUEST,
            "NoEvents",
        ),
        (
            "no content type",
            None,
            format!("[{GOOD}]"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
        ),
        (
            "form content type",
            Some("application/x-www-form-urlencoded"),
            format!("[{GOOD}]"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
        ),
        (
            "too many events",
            Some("application/json"),
            format!("[{}]", many.join(",")),
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
        ),
        (
            "request too large",
            Some("application/x-ndjson"),
            "x".repeat(600 * 1024),
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
        ),
        (
            "oversize event",
            Some("application/json"),
            format!("[{big_event}]"),
            StatusCode::BAD_REQUEST,
            "too_large",
        ),
        (
            "bad timestamp",
            Some("application/json"),
            format!(
                "[{}]",
                GOOD.replace("2026-02-11T10:15:00Z", "2026-02-11 10:15:00")
            ),
            StatusCode::BAD_REQUEST,
            "eventTime",
        ),
        (
            "wrong type",
            Some("application/json"),
            format!("[{}]", GOOD.replace("\"CreateUser\"", "7")),
            StatusCode::BAD_REQUEST,
            "eventName",
        ),
        (
            "bad ndjson line",
            Some("application/x-ndjson"),
            "{nope\n".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ];
    for (description, content_type, body, expected_status, expected) in cases {
        let (status, answer) =
            call(router_with(fake()), post("/v1/events", content_type, body)).await;
        assert_eq!(status, expected_status, "{description}: {answer}");
        let text = answer.to_string();
        assert!(
            text.contains(expected),
            "{description}: {expected} not in {text}"
        );
        if status == StatusCode::BAD_REQUEST && answer.get("results").is_none() {
            assert!(
                answer["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{description}"
            );
        }
    }
}

#[tokio::test]
async fn duplicate_event_ids_with_other_content_are_rejected() {
    let router = router_with(fake());
    let (status, _) = call(
        router.clone(),
        post("/v1/events", Some("application/json"), format!("[{GOOD}]")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let changed = GOOD.replace("CreateUser", "DeleteUser");
    let (status, body) = call(
        router.clone(),
        post(
            "/v1/events",
            Some("application/json"),
            format!("[{changed},{GOOD}]"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "rejected");
    assert_eq!(body["results"][0]["field"], "eventID");
    assert_eq!(body["results"][0]["code"], "duplicate_event_id");
    assert_eq!(body["results"][1]["status"], "duplicate");
}

#[tokio::test]
async fn unavailable_storage_is_a_503_with_the_reason() {
    let ingest = Arc::new(FakeIngest {
        unavailable: true,
        ..FakeIngest {
            account: Some("111122223333".parse().expect("id")),
            ..FakeIngest::default()
        }
    });
    let (status, body) = call(
        router_with(ingest),
        post("/v1/events", Some("application/json"), format!("[{GOOD}]")),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("disk full")));
}

fn audit_body(entries: &[(&str, &str, Option<String>)]) -> String {
    let events: Vec<_> = entries
        .iter()
        .map(|(id, data, checksum)| {
            let mut entry = serde_json::json!({ "id": id, "eventData": data });
            if let Some(c) = checksum {
                entry["eventDataChecksum"] = serde_json::Value::String(c.clone());
            }
            entry
        })
        .collect();
    serde_json::json!({ "auditEvents": events }).to_string()
}

const AUDIT: &str = r#"{"version":"1.0","userIdentity":{"type":"CustomUser","principalId":"u-1"},"eventSource":"billing.example","eventName":"ApproveInvoice","eventTime":"2026-02-11T10:15:00Z","UID":"uid-1","recipientAccountId":"111122223333"}"#;

#[tokio::test]
async fn put_audit_events_verifies_checksums_and_reports_per_entry() {
    use base64::Engine;
    use sha2::Digest;
    let good_sum =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(AUDIT.as_bytes()));
    let other = AUDIT.replace("uid-1", "uid-2");
    let no_uid = AUDIT.replace("\"UID\":\"uid-1\",", "");
    let wrong_account = AUDIT
        .replace("uid-1", "uid-3")
        .replace("111122223333", "999999999999");
    let body = audit_body(&[
        ("a", AUDIT, Some(good_sum)),
        ("b", &other, Some("AAAA".into())),
        ("c", &no_uid, None),
        ("d", &wrong_account, None),
    ]);
    let router = router_with(fake());
    let (status, answer) = call(
        router.clone(),
        post(
            "/PutAuditEvents?channelArn=arn:aws:cloudtrail:us-east-1:111122223333:channel/c1",
            Some("application/json"),
            body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["successful"].as_array().map(Vec::len), Some(1));
    assert_eq!(answer["successful"][0]["id"], "a");
    let failed: HashMap<String, String> = answer["failed"]
        .as_array()
        .expect("failed")
        .iter()
        .map(|f| {
            (
                f["id"].as_str().expect("id").to_owned(),
                f["errorCode"].as_str().expect("code").to_owned(),
            )
        })
        .collect();
    assert_eq!(failed["b"], "InvalidChecksum");
    assert_eq!(failed["c"], "FieldNotFound");
    assert_eq!(failed["d"], "InvalidRecipient");
    // A retry of the same entry is answered with the same eventID.
    let first_id = answer["successful"][0]["eventID"].clone();
    let (_, again) = call(
        router.clone(),
        post(
            "/PutAuditEvents?channelArn=c2",
            Some("application/json"),
            audit_body(&[("a", AUDIT, None)]),
        ),
    )
    .await;
    assert_ne!(
        again["successful"][0]["eventID"], first_id,
        "a different channel is a different event"
    );
    let (_, again) = call(
        router,
        post(
            "/PutAuditEvents?channelArn=arn:aws:cloudtrail:us-east-1:111122223333:channel/c1",
            Some("application/json"),
            audit_body(&[("a", AUDIT, None)]),
        ),
    )
    .await;
    assert_eq!(again["successful"][0]["eventID"], first_id);
}

#[tokio::test]
async fn put_audit_events_whole_request_errors() {
    let many: Vec<(String, &str, Option<String>)> =
        (0..101).map(|i| (format!("e{i}"), AUDIT, None)).collect();
    let many: Vec<(&str, &str, Option<String>)> = many
        .iter()
        .map(|(i, d, c)| (i.as_str(), *d, c.clone()))
        .collect();
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "/PutAuditEvents",
            audit_body(&[("a", AUDIT, None)]),
            StatusCode::BAD_REQUEST,
            "InvalidChannelARN",
        ),
        (
            "/PutAuditEvents?channelArn=arn:aws:s3:::bucket",
            audit_body(&[("a", AUDIT, None)]),
            StatusCode::BAD_REQUEST,
            "InvalidChannelARN",
        ),
        (
            "/PutAuditEvents?channelArn=arn:aws:cloudtrail:us-east-1:999999999999:channel/x",
            audit_body(&[("a", AUDIT, None)]),
            StatusCode::FORBIDDEN,
            "ChannelInsufficientPermission",
        ),
        (
            "/PutAuditEvents?channelArn=c1",
            audit_body(&[("a", AUDIT, None), ("a", AUDIT, None)]),
            StatusCode::BAD_REQUEST,
            "DuplicatedAuditEventId",
        ),
        (
            "/PutAuditEvents?channelArn=c1",
            audit_body(&[]),
            StatusCode::BAD_REQUEST,
            "ValidationException",
        ),
        (
            "/PutAuditEvents?channelArn=c1",
            audit_body(&many),
            StatusCode::BAD_REQUEST,
            "ValidationException",
        ),
        (
            "/PutAuditEvents?channelArn=c1",
            audit_body(&[("bad id!", AUDIT, None)]),
            StatusCode::BAD_REQUEST,
            "ValidationException",
        ),
        (
            "/PutAuditEvents?channelArn=c1",
            "{\"auditEvents\":[{\"id\":\"a\"}]}".into(),
            StatusCode::BAD_REQUEST,
            "ValidationException",
        ),
        (
            "/PutAuditEvents?channelArn=c1",
            "x".repeat(1024 * 1024 + 1),
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
        ),
    ];
    for (uri, body, expected_status, code) in cases {
        let (status, answer) = call(
            router_with(fake()),
            post(uri, Some("application/json"), body),
        )
        .await;
        assert_eq!(status, expected_status, "{uri}: {answer}");
        assert_eq!(answer["__type"], code, "{uri}: {answer}");
    }
}

#[tokio::test]
async fn event_history_parameters_are_checked() {
    let cases = [
        (
            "/v1/event-history?lookup-attribute=EventName=A&lookup-attribute=Username=b",
            "InvalidLookupAttributesException",
        ),
        (
            "/v1/event-history?lookup-attribute=Bogus=1",
            "InvalidLookupAttributesException",
        ),
        (
            "/v1/event-history?lookup-attribute=EventName",
            "InvalidLookupAttributesException",
        ),
        (
            "/v1/event-history?start-time=yesterday",
            "InvalidParameterException",
        ),
        (
            "/v1/event-history?max-results=abc",
            "InvalidMaxResultsException",
        ),
        (
            "/v1/event-history?max-results=51",
            "InvalidMaxResultsException",
        ),
        (
            "/v1/event-history?event-category=data",
            "InvalidEventCategoryException",
        ),
        ("/v1/event-history?colour=blue", "InvalidParameterException"),
    ];
    for (uri, code) in cases {
        let (status, answer) = call(
            router_with(fake()),
            Request::get(uri).body(Body::empty()).expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {answer}");
        assert_eq!(answer["__type"], code, "{uri}");
    }
    let (status, answer) = call(
        router_with(fake()),
        Request::get("/v1/event-history?start-time=1700000000&end-time=2026-02-11T10:15:00Z")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["Events"], serde_json::json!([]));
    let (status, _) = call(
        router_with(fake()),
        Request::get("/nope").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn trail_routes_check_bodies_and_map_errors() {
    let json = Some("application/json");
    let (status, answer) = call(router_with(fake()), post("/v1/trails", json, "{\"Name\":")).await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidParameterException")),
        "{answer}"
    );
    let (status, answer) = call(
        router_with(fake()),
        post("/v1/trails", json, "{\"Name\":\"main\",\"Colour\":1}"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown members are refused: {answer}"
    );
    let (status, answer) = call(
        router_with(fake()),
        post(
            "/v1/trails",
            json,
            "{\"Name\":\"main\",\"LocalDirectory\":\"/x\"}",
        ),
    )
    .await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("TrailAlreadyExistsException"))
    );
    let (status, answer) = call(
        router_with(fake()),
        Request::get("/v1/trails/nope/status")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (StatusCode::NOT_FOUND, Some("TrailNotFoundException"))
    );
    let request = Request::put("/v1/trails/main/event-selectors")
        .body(Body::from("{\"Selectors\":[]}"))
        .expect("request");
    let (status, answer) = call(router_with(fake()), request).await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("InvalidEventSelectorsException")
        )
    );
    let (status, answer) = call(
        router_with(fake()),
        Request::get("/v1/trails")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, serde_json::json!({"Trails": []}))
    );
}
