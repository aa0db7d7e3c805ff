//! The authorization matrix: every route × (no credentials, a bad signature, a valid signer
//! without permission, an authorized signer). Nothing unauthenticated or unauthorized gets
//! through, every denial is recorded with `errorCode` `AccessDenied`, and oversized or malformed
//! requests are refused early with a precise 4xx.

mod support;

use serde_json::{json, Value};
use support::{Creds, TestServer};

/// (method, path, CloudTrail operation for `POST /`, body).
fn routes() -> Vec<(&'static str, &'static str, Option<&'static str>, String)> {
    let event = r#"[{"eventVersion":"1.11","userIdentity":{"type":"IAMUser"},"eventTime":"2026-12-01T00:00:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser","awsRegion":"us-east-1"}]"#;
    let audit = json!({"auditEvents":[{"id":"1","eventData":"{\"version\":\"1.0\",\"userIdentity\":{\"type\":\"x\",\"principalId\":\"p\"},\"eventSource\":\"s\",\"eventName\":\"n\",\"eventTime\":\"2026-12-01T00:00:00Z\",\"UID\":\"u1\"}"}]});
    let mut out = vec![
        ("POST", "/v1/events", None, event.to_owned()),
        ("POST", "/PutAuditEvents?channelArn=c1", None, audit.to_string()),
        ("GET", "/v1/event-history", None, String::new()),
        ("GET", "/metrics", None, String::new()),
        ("GET", "/v1/trails", None, String::new()),
        ("POST", "/v1/trails", None, json!({"Name": "other", "LocalDirectory": "/tmp/cairn-authz-other"}).to_string()),
        ("GET", "/v1/trails/main", None, String::new()),
        ("PATCH", "/v1/trails/main", None, json!({"Name": "main"}).to_string()),
        ("GET", "/v1/trails/main/status", None, String::new()),
        ("POST", "/v1/trails/main/start-logging", None, String::new()),
        ("POST", "/v1/trails/main/stop-logging", None, String::new()),
        ("GET", "/v1/trails/main/event-selectors", None, String::new()),
        ("PUT", "/v1/trails/main/event-selectors", None, json!({"EventSelectors":[{"ReadWriteType":"All"}]}).to_string()),
        ("POST", "/v1/trails/main/flush", None, String::new()),
        ("GET", "/v1/public-keys", None, String::new()),
        ("POST", "/v1/keys/rotate", None, String::new()),
        ("GET", "/v1/iam/users", None, String::new()),
        ("POST", "/v1/iam/users", None, json!({"UserName": "made"}).to_string()),
        ("GET", "/v1/iam/users/nobody/access-keys", None, String::new()),
        ("POST", "/v1/iam/users/made/attached-policies", None, json!({"PolicyArn": "CairnReader"}).to_string()),
        ("PUT", "/v1/iam/users/made/policies/p", None, r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"cloudtrail:Get*","Resource":"*"}]}"#.to_owned()),
        ("POST", "/v1/iam/users/made/access-keys", None, String::new()),
        ("GET", "/v1/iam/users/made/attached-policies", None, String::new()),
        ("GET", "/v1/iam/users/made/policies", None, String::new()),
        ("PATCH", "/v1/iam/users/made/access-keys/AKIANOSUCHKEY0000000", None, json!({"Status": "Inactive"}).to_string()),
        ("DELETE", "/v1/iam/users/made/attached-policies/CairnReader", None, String::new()),
        ("DELETE", "/v1/iam/users/made/policies/p", None, String::new()),
        ("DELETE", "/v1/iam/users/nobody", None, String::new()),
        ("PUT", "/v1/log-groups/audit", None, json!({"trailName": "main", "retentionInDays": 7}).to_string()),
        ("GET", "/v1/log-groups", None, String::new()),
        ("PUT", "/v1/log-groups/audit/metric-filters/roots", None, json!({"filterPattern": "{ $.userIdentity.type = \"Root\" }", "metricTransformations": [{"metricName": "Root", "metricNamespace": "LogMetrics", "metricValue": "1"}]}).to_string()),
        ("GET", "/v1/log-groups/audit/metric-filters", None, String::new()),
        ("GET", "/v1/log-groups/audit/events?filterPattern=ERROR", None, String::new()),
        ("GET", "/v1/metrics/statistics?namespace=LogMetrics&metricName=Root&startTime=0&endTime=60000&period=60&statistics=Sum", None, String::new()),
        ("PUT", "/v1/topics/ops", None, json!({"subscriptions": [{"protocol": "file", "endpoint": "/tmp/cairn-authz-notifications.ndjson"}]}).to_string()),
        ("GET", "/v1/topics", None, String::new()),
        ("PUT", "/v1/alarms/roots", None, json!({"namespace": "LogMetrics", "metricName": "Root", "statistic": "Sum", "period": 300, "evaluationPeriods": 1, "threshold": 1, "comparisonOperator": "GreaterThanOrEqualToThreshold", "alarmActions": ["ops"]}).to_string()),
        ("GET", "/v1/alarms", None, String::new()),
        ("POST", "/v1/alarms/install-cis", None, json!({"logGroupName": "audit", "topicName": "ops"}).to_string()),
        ("POST", "/v1/event-data-stores", None, json!({"Name": "eds", "TerminationProtectionEnabled": false}).to_string()),
        ("GET", "/v1/event-data-stores", None, String::new()),
        ("GET", "/v1/event-data-stores/eds", None, String::new()),
        ("PATCH", "/v1/event-data-stores/eds", None, json!({"RetentionPeriod": 30}).to_string()),
        ("POST", "/v1/event-data-stores/eds/import", None, json!({"Records": []}).to_string()),
        ("POST", "/v1/queries", None, json!({"QueryStatement": "SELECT count(*) FROM eds"}).to_string()),
        ("GET", "/v1/queries", None, String::new()),
        ("GET", "/v1/queries/00000000-0000-0000-0000-000000000000", None, String::new()),
        ("GET", "/v1/queries/00000000-0000-0000-0000-000000000000/results", None, String::new()),
        ("POST", "/v1/queries/00000000-0000-0000-0000-000000000000/cancel", None, String::new()),
    ];
    for (op, body) in [
        ("DescribeTrails", "{}"),
        ("GetTrail", r#"{"Name":"main"}"#),
        ("GetTrailStatus", r#"{"Name":"main"}"#),
        ("ListTrails", "{}"),
        ("GetEventSelectors", r#"{"TrailName":"main"}"#),
        (
            "PutEventSelectors",
            r#"{"TrailName":"main","EventSelectors":[{"ReadWriteType":"All"}]}"#,
        ),
        ("StartLogging", r#"{"Name":"main"}"#),
        ("StopLogging", r#"{"Name":"main"}"#),
        ("UpdateTrail", r#"{"Name":"main"}"#),
        ("LookupEvents", "{}"),
        ("ListPublicKeys", "{}"),
        (
            "CreateTrail",
            r#"{"Name":"wire","LocalDirectory":"/tmp/cairn-authz-wire"}"#,
        ),
        ("DeleteTrail", r#"{"Name":"wire"}"#),
        (
            "CreateEventDataStore",
            r#"{"Name":"wire-eds","TerminationProtectionEnabled":false}"#,
        ),
        ("ListEventDataStores", "{}"),
        ("GetEventDataStore", r#"{"EventDataStore":"wire-eds"}"#),
        (
            "UpdateEventDataStore",
            r#"{"EventDataStore":"wire-eds","RetentionPeriod":30}"#,
        ),
        ("StartQuery", r#"{"QueryStatement":"SELECT 1"}"#),
        (
            "DescribeQuery",
            r#"{"QueryId":"00000000-0000-0000-0000-000000000000"}"#,
        ),
        (
            "GetQueryResults",
            r#"{"QueryId":"00000000-0000-0000-0000-000000000000"}"#,
        ),
        (
            "CancelQuery",
            r#"{"QueryId":"00000000-0000-0000-0000-000000000000"}"#,
        ),
        ("ListQueries", "{}"),
        ("DeleteEventDataStore", r#"{"EventDataStore":"wire-eds"}"#),
    ] {
        out.push(("POST", "/", Some(op), body.to_owned()));
    }
    for path in [
        "/v1/log-groups/nogroup/metric-filters/nofilter",
        "/v1/log-groups/nogroup",
        "/v1/alarms/noalarm",
        "/v1/topics/notopic",
    ] {
        out.push(("DELETE", path, None, String::new()));
    }
    out.push(("DELETE", "/v1/trails/other", None, String::new()));
    out.push(("DELETE", "/v1/event-data-stores/eds", None, String::new()));
    out
}

fn request(
    server: &TestServer,
    method: &str,
    path: &str,
    op: Option<&str>,
    body: &str,
) -> reqwest::RequestBuilder {
    let mut builder = server
        .client
        .request(
            method.parse().expect("method"),
            format!("{}{path}", server.base),
        )
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(op) = op {
        builder = builder
            .header(
                "x-amz-target",
                format!("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.{op}"),
            )
            .header("content-type", "application/x-amz-json-1.1");
    }
    builder
}

async fn outcome(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value =
        serde_json::from_str(&response.text().await.unwrap_or_default()).unwrap_or(Value::Null);
    (status, body["__type"].as_str().unwrap_or("").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_the_unauthenticated_and_the_unauthorized() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(&dir.path().join("data"), |c| {
        c.account_id = Some("111122223333".into());
    })
    .await;
    let json_ct = "application/json";
    let (status, _) = server
        .post(
            "/v1/trails",
            json_ct,
            json!({"Name": "main", "LocalDirectory": dir.path().join("b")}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    // A user with no permission at all.
    server
        .post(
            "/v1/iam/users",
            json_ct,
            json!({"UserName": "nobody"}).to_string(),
        )
        .await;
    let (_, key) = server
        .post("/v1/iam/users/nobody/access-keys", json_ct, "")
        .await;
    let nobody = Creds {
        id: key["AccessKey"]["AccessKeyId"]
            .as_str()
            .expect("id")
            .to_owned(),
        secret: key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .expect("secret")
            .to_owned(),
    };
    let forger = Creds {
        id: server.creds.id.clone(),
        secret: "forged-secret-forged-secret-forged-secre".into(),
    };
    let routes = routes();
    for (method, path, op, body) in &routes {
        let what = format!("{method} {path} {op:?}");
        // No credentials.
        let (status, code) = outcome(
            request(&server, method, path, *op, body)
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (403, "MissingAuthenticationTokenException"),
            "{what}"
        );
        // A signature made with the wrong secret.
        let (status, code) =
            outcome(support::send(request(&server, method, path, *op, body), &forger).await).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "InvalidSignatureException"),
            "{what}"
        );
        // Valid signature, no permission.
        let (status, code) =
            outcome(support::send(request(&server, method, path, *op, body), &nobody).await).await;
        assert_eq!(
            (status, code.as_str()),
            (403, "AccessDeniedException"),
            "{what}"
        );
        // The administrator gets past authentication and authorization.
        let (status, code) =
            outcome(support::send(request(&server, method, path, *op, body), &server.creds).await)
                .await;
        assert!(
            status < 400
                || !matches!(
                    code.as_str(),
                    "AccessDeniedException"
                        | "InvalidSignatureException"
                        | "MissingAuthenticationTokenException"
                        | "UnrecognizedClientException"
                ),
            "{what}: {status} {code}"
        );
        assert!(status < 500, "{what}: {status} {code}");
    }
    // Health, readiness and the notification public key need nothing.
    for path in ["/healthz", "/readyz", "/v1/topics/signing-key"] {
        let response = server
            .client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    // Every denial of `nobody` is on record.
    server.wait_indexed().await;
    let mut denied = 0;
    let mut token: Option<String> = None;
    loop {
        let mut path =
            "/v1/event-history?lookup-attribute=Username%3Dnobody&max-results=50".to_owned();
        if let Some(t) = &token {
            path.push_str(&format!("&next-token={}", support::encode(t)));
        }
        let (_, page) = server.get(&path).await;
        for event in page["Events"].as_array().expect("events") {
            let record: Value =
                serde_json::from_str(event["CloudTrailEvent"].as_str().expect("record"))
                    .expect("json");
            if record["errorCode"] == "AccessDenied" {
                assert_eq!(record["userIdentity"]["userName"], "nobody");
                denied += 1;
            }
        }
        match page["NextToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(denied, routes.len(), "one recorded denial per route");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_are_refused_early() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(&dir.path().join("data"), |c| {
        c.max_request_bytes = Some(64 * 1024);
    })
    .await;
    let url = format!("{}/v1/trails", server.base);
    let code_of = |r: reqwest::Response| outcome(r);
    for (authorization, expected) in [
        ("AWS4-HMAC-SHA256", "IncompleteSignature"),
        ("AWS4-HMAC-SHA256 Credential=", "IncompleteSignature"),
        ("AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=zz", "IncompleteSignature"),
        ("Bearer abc", "IncompleteSignature"),
        ("AWS4-HMAC-SHA256 Credential=AKIA/20261201/us-east-1/cloudtrail/aws4_request, SignedHeaders=host;x-amz-date, Signature=00", "IncompleteSignature"),
    ] {
        let response = server.client.get(&url).header("authorization", authorization).send().await.expect("send");
        let (status, code) = code_of(response).await;
        assert_eq!((status, code.as_str()), (400, expected), "{authorization}");
    }
    // An authorization header of 8 KB: refused by its length.
    let long = format!("AWS4-HMAC-SHA256 Credential={}", "A".repeat(8192));
    let (status, code) = outcome(
        server
            .client
            .get(&url)
            .header("authorization", long)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "IncompleteSignature"));
    // Headers beyond what the server reads at all: refused by the HTTP layer, no panic.
    let huge = "x".repeat(200 * 1024);
    let response = server.client.get(&url).header("x-huge", huge).send().await;
    assert!(response
        .map(|r| r.status().is_client_error())
        .unwrap_or(true));
    // A body over the largest route's limit: 413 before any signature work. The server closes
    // that connection without reading the rest, so it goes on a client of its own (a pooled
    // connection being closed must not carry the next request).
    // The client may still be writing the body when the answer comes and the connection
    // closes: then it sees the write cut off (a broken pipe) instead of the 413. Either way the
    // body is refused; at least one of a few attempts must read the 413 itself.
    let mut answered = 0;
    for _ in 0..5 {
        let body = vec![b'a'; 2 * 1024 * 1024];
        match reqwest::Client::new()
            .post(format!("{}/v1/events", server.base))
            .body(body)
            .send()
            .await
        {
            Ok(response) => {
                assert_eq!(response.status().as_u16(), 413);
                answered += 1;
            }
            Err(e) => {
                let text = format!("{e:?}");
                assert!(
                    text.contains("BodyWrite")
                        || text.contains("BrokenPipe")
                        || text.contains("reset"),
                    "{text}"
                );
            }
        }
    }
    assert!(answered > 0, "no attempt read the 413");
    // A bad date, a date too old (15 minutes of skew at most).
    let mut request = server.client.get(&url).build().expect("request");
    support::sign(&mut request, &server.creds, "us-east-1");
    request
        .headers_mut()
        .insert("x-amz-date", "20261301T000000Z".parse().expect("header"));
    let (status, code) = outcome(server.client.execute(request).await.expect("send")).await;
    assert_eq!((status, code.as_str()), (400, "IncompleteSignature"));
    let old = support::sign_at(&server, &url, -20 * 60 * 1000).await;
    assert_eq!(old, (400, "InvalidSignatureException".to_owned()));
    let fine = support::sign_at(&server, &url, -5 * 60 * 1000).await;
    assert_eq!(fine.0, 200, "{fine:?}");
    // A credential scoped to a service Cairn does not serve is refused, however valid the
    // signature; both services it serves are accepted.
    for (service, expected) in [
        ("s3", 400),
        ("foo", 400),
        ("iam", 400),
        ("cloudtrail", 200),
        ("cloudtrail-data", 200),
    ] {
        let mut request = server.client.get(&url).build().expect("request");
        support::sign_as(&mut request, &server.creds, "us-east-1", 0, service);
        let (status, code) = outcome(server.client.execute(request).await.expect("send")).await;
        assert_eq!(status, expected, "{service}: {code}");
        if expected == 400 {
            assert_eq!(code, "InvalidSignatureException", "{service}");
        }
    }
    // Still serving.
    let (status, _) = server.get("/v1/trails").await;
    assert_eq!(status, 200);
    server.stop().await;
}

/// `cairn iam ...` and the other commands signing with a profile's or the environment's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_administers_identities_and_signs_as_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = TestServer::start(&data, |c| c.account_id = Some("111122223333".into())).await;
    let base = server.base.clone();
    let run = move |args: &[&str], key: Option<(&str, &str)>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
        command
            .args(args)
            .env("CAIRN_ENDPOINT", &base)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        match key {
            Some((id, secret)) => {
                command
                    .env("AWS_ACCESS_KEY_ID", id)
                    .env("AWS_SECRET_ACCESS_KEY", secret)
                    .env("CAIRN_DATA_DIR", "/nonexistent");
            }
            None => {
                command.env("CAIRN_DATA_DIR", &data);
            }
        }
        let output = command.output().expect("run cairn");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let result = tokio::task::spawn_blocking(move || {
        let (ok, out, err) = run(&["iam", "create-user", "--user-name", "bob"], None);
        assert!(ok, "{out}{err}");
        assert!(out.contains("arn:aws:iam::111122223333:user/bob"), "{out}");
        let (ok, _, err) = run(
            &[
                "iam",
                "attach-policy",
                "--user-name",
                "bob",
                "--policy-arn",
                "CairnReader",
            ],
            None,
        );
        assert!(ok, "{err}");
        let (ok, out, err) = run(&["iam", "create-access-key", "--user-name", "bob"], None);
        assert!(ok, "{err}");
        let key: Value = serde_json::from_str(&out).expect("json");
        let id = key["AccessKey"]["AccessKeyId"]
            .as_str()
            .expect("id")
            .to_owned();
        let secret = key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .expect("secret")
            .to_owned();
        let (ok, out, _) = run(&["iam", "list-access-keys", "--user-name", "bob"], None);
        assert!(ok && out.contains(&id) && !out.contains(&secret), "{out}");
        let (ok, out, _) = run(&["iam", "list-users"], None);
        assert!(
            ok && out.contains("\"bob\"") && out.contains("\"admin\""),
            "{out}"
        );
        // As bob (the environment's keys): who am I, reads work, changes are denied.
        let bob = Some((id.as_str(), secret.as_str()));
        let (ok, out, err) = run(&["iam", "whoami"], bob);
        assert!(ok && out.contains("user/bob"), "{out}{err}");
        let (ok, out, err) = run(&["trails", "list"], bob);
        assert!(ok, "{out}{err}");
        let (ok, _, err) = run(
            &[
                "trails",
                "create",
                "--name",
                "bobs",
                "--local-directory",
                "/tmp/bobs",
            ],
            bob,
        );
        assert!(!ok && err.contains("AccessDeniedException"), "{err}");
        let (ok, _, err) = run(&["iam", "create-user", "--user-name", "eve"], bob);
        assert!(!ok && err.contains("AccessDeniedException"), "{err}");
        // Inactive key: unrecognized at once; active again: recognized.
        for (status, works) in [("Inactive", false), ("Active", true)] {
            let (ok, _, err) = run(
                &[
                    "iam",
                    "update-access-key",
                    "--user-name",
                    "bob",
                    "--access-key-id",
                    &id,
                    "--status",
                    status,
                ],
                None,
            );
            assert!(ok, "{err}");
            let (ok, _, err) = run(&["iam", "whoami"], bob);
            assert_eq!(ok, works, "{status}: {err}");
        }
        // Deleted key: unrecognized.
        let (ok, _, err) = run(
            &[
                "iam",
                "delete-access-key",
                "--user-name",
                "bob",
                "--access-key-id",
                &id,
            ],
            None,
        );
        assert!(ok, "{err}");
        let (ok, _, err) = run(&["iam", "whoami"], bob);
        assert!(!ok && err.contains("UnrecognizedClientException"), "{err}");
        // Then the policy and the user: DeleteUser is refused while a policy is attached.
        let (ok, _, err) = run(&["iam", "delete-user", "--user-name", "bob"], None);
        assert!(!ok && err.contains("DeleteConflict"), "{err}");
        let (ok, _, err) = run(
            &[
                "iam",
                "detach-policy",
                "--user-name",
                "bob",
                "--policy-arn",
                "CairnReader",
            ],
            None,
        );
        assert!(ok, "{err}");
        let (ok, out, err) = run(
            &["iam", "list-attached-policies", "--user-name", "bob"],
            None,
        );
        assert!(ok && !out.contains("CairnReader"), "{out}{err}");
        let (ok, _, err) = run(&["iam", "delete-user", "--user-name", "bob"], None);
        assert!(ok, "{err}");
        // No credentials anywhere: a clear error, nothing sent.
        let (ok, _, err) = run(&["iam", "whoami"], Some(("", "")));
        assert!(!ok && err.contains("no credentials"), "{err}");
    })
    .await;
    result.expect("cli session");
    server.stop().await;
}

/// `public_metrics = true` opens `/metrics` (only it) to unsigned scrapers, and an operator's
/// key in `signing_key_files` is the region's current digest signing key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_metrics_and_operator_signing_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = cairn_digest::SigningKey::generate().expect("key");
    let pem = dir.path().join("operator.pem");
    std::fs::write(&pem, key.to_pem().expect("pem")).expect("write");
    let server = TestServer::start(&dir.path().join("data"), |c| {
        c.public_metrics = Some(true);
        c.signing_key_files = Some([("us-east-1".to_owned(), pem.clone())].into());
    })
    .await;
    let unsigned = |path: &str| server.client.get(format!("{}{path}", server.base)).send();
    assert_eq!(
        unsigned("/metrics").await.expect("send").status().as_u16(),
        200
    );
    assert_eq!(
        unsigned("/v1/trails")
            .await
            .expect("send")
            .status()
            .as_u16(),
        403
    );
    let (_, keys) = server.get("/v1/public-keys?Region=us-east-1").await;
    assert_eq!(
        keys["PublicKeyList"][0]["Fingerprint"].as_str(),
        Some(key.public_key().fingerprint().as_str())
    );
    server.stop().await;
}

/// Revocation: every grant can be taken back, each takes effect on the very next request, and
/// each is recorded in the trail of Cairn's own calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grant_can_be_revoked_at_once_and_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(&dir.path().join("data"), |_| {}).await;
    let json_ct = "application/json";
    let (status, _) = server
        .post(
            "/v1/iam/users",
            json_ct,
            json!({"UserName": "mallory"}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let (_, key) = server
        .post("/v1/iam/users/mallory/access-keys", json_ct, "")
        .await;
    let mallory = support::Creds {
        id: key["AccessKey"]["AccessKeyId"]
            .as_str()
            .expect("id")
            .to_owned(),
        secret: key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .expect("secret")
            .to_owned(),
    };
    let as_mallory = |method: reqwest::Method, path: &str| {
        let request = server
            .client
            .request(method, format!("{}{path}", server.base))
            .header("content-type", json_ct);
        support::send(request, &mallory)
    };
    let status_of = |r: reqwest::Response| r.status().as_u16();
    // AdministratorAccess: everything, then detached: nothing.
    let (status, _) = server
        .post(
            "/v1/iam/users/mallory/attached-policies",
            json_ct,
            json!({"PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        status_of(as_mallory(reqwest::Method::GET, "/v1/iam/users").await),
        200
    );
    let (status, attached) = server.get("/v1/iam/users/mallory/attached-policies").await;
    assert_eq!(status, 200);
    assert_eq!(
        attached["AttachedPolicies"][0]["PolicyName"],
        "AdministratorAccess"
    );
    // DeleteUser refuses while keys and policies remain, with IAM's DeleteConflict.
    let response = server
        .send(
            server
                .client
                .delete(format!("{}/v1/iam/users/mallory", server.base)),
        )
        .await;
    assert_eq!(response.status().as_u16(), 409);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["__type"], "DeleteConflict", "{body}");
    let detach = format!(
        "{}/v1/iam/users/mallory/attached-policies/{}",
        server.base,
        support::encode("arn:aws:iam::aws:policy/AdministratorAccess")
    );
    let response = server.send(server.client.delete(&detach)).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        status_of(as_mallory(reqwest::Method::GET, "/v1/iam/users").await),
        403
    );
    // An inline Allow, then deleted.
    let allow = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}]});
    let response = server
        .send(
            server
                .client
                .put(format!(
                    "{}/v1/iam/users/mallory/policies/list",
                    server.base
                ))
                .body(allow.to_string()),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        status_of(as_mallory(reqwest::Method::GET, "/v1/iam/users").await),
        200
    );
    let (_, names) = server.get("/v1/iam/users/mallory/policies").await;
    assert_eq!(names["PolicyNames"], json!(["list"]));
    let response = server
        .send(server.client.delete(format!(
            "{}/v1/iam/users/mallory/policies/list",
            server.base
        )))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        status_of(as_mallory(reqwest::Method::GET, "/v1/iam/users").await),
        403
    );
    // The key made inactive: unrecognized at once; active again: recognized.
    let key_url = format!(
        "{}/v1/iam/users/mallory/access-keys/{}",
        server.base, mallory.id
    );
    let set_status = |status: &'static str| {
        server.send(
            server
                .client
                .patch(&key_url)
                .body(json!({"Status": status}).to_string()),
        )
    };
    assert_eq!(set_status("Inactive").await.status().as_u16(), 200);
    let (_, keys) = server.get("/v1/iam/users/mallory/access-keys").await;
    assert_eq!(keys["AccessKeyMetadata"][0]["Status"], "Inactive");
    let response = as_mallory(reqwest::Method::GET, "/v1/iam/whoami").await;
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["__type"], "UnrecognizedClientException");
    assert_eq!(set_status("Active").await.status().as_u16(), 200);
    assert_eq!(
        status_of(as_mallory(reqwest::Method::GET, "/v1/iam/whoami").await),
        200
    );
    assert_eq!(set_status("Dormant").await.status().as_u16(), 400);
    // The key deleted, then the user.
    assert_eq!(
        server
            .send(server.client.delete(&key_url))
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        status_of(as_mallory(reqwest::Method::GET, "/v1/iam/whoami").await),
        400
    );
    let response = server
        .send(
            server
                .client
                .delete(format!("{}/v1/iam/users/mallory", server.base)),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let (status, _) = server.get("/v1/iam/users/mallory/attached-policies").await;
    assert_eq!(status, 404);
    // Every change is in Event history under its IAM name.
    server.wait_indexed().await;
    for name in [
        "DetachUserPolicy",
        "DeleteUserPolicy",
        "UpdateAccessKey",
        "DeleteAccessKey",
        "DeleteUser",
    ] {
        let (status, page) = server
            .get(&format!(
                "/v1/event-history?lookup-attribute=EventName%3D{name}"
            ))
            .await;
        assert_eq!(status, 200);
        assert!(
            page["Events"].as_array().is_some_and(|e| !e.is_empty()),
            "{name} not recorded: {page}"
        );
    }
    server.stop().await;
}
