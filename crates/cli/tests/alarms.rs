//! Alerting end to end, with a manual clock: a trail streams into a log group, the CIS pack is
//! installed in one call, a root sign-in is ingested, the CloudWatch.1 alarm enters ALARM as soon
//! as the datapoint lands, and a webhook on 127.0.0.1 receives the SNS-shaped notification,
//! whose signature verifies with the published key; a file subscription gets the same message;
//! an unreachable endpoint shows its failures in the topic status and in metrics. When the
//! period passes without data the alarm returns to OK.

mod support;

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use support::{Creds, TestServer};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("now")
        .as_millis() as i64
}

/// A webhook receiver on 127.0.0.1 collecting request bodies; over TLS with `tls`.
async fn receiver(
    tls: Option<(&std::path::Path, &std::path::Path)>,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let store = store.clone();
            async move {
                store.lock().expect("lock").push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    match tls {
        None => {
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            (format!("http://{addr}/hook"), received)
        }
        Some((cert, key)) => {
            let config = cairn_server::tls::server_config(cert, key).expect("tls");
            tokio::spawn(async move {
                let _ =
                    axum::serve(cairn_server::tls::TlsListener::new(listener, config), app).await;
            });
            (format!("https://localhost:{}/hook", addr.port()), received)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_sign_in_fires_the_cis_alarm_and_the_webhook_gets_a_signed_notification() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // An https webhook with its own certificate, trusted through SSL_CERT_FILE (read when the
    // server's notifier builds its HTTP client).
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success());
    std::env::set_var("SSL_CERT_FILE", &cert);
    let (secure_hook, secure_received) = receiver(Some((&cert, &key))).await;
    let clock = Arc::new(cairn_model::ManualClock::new(now_ms()));
    let config = cairn_server::config::RawConfig {
        data_dir: Some(data.clone()),
        listen: Some("127.0.0.1:0".into()),
        account_id: Some("111122223333".into()),
        ..Default::default()
    }
    .resolve()
    .expect("config");
    let running = cairn_server::start(config, clock.clone())
        .await
        .expect("start");
    let server = TestServer {
        base: format!("http://{}", running.local_addr),
        running: Some(running),
        client: reqwest::Client::new(),
        creds: Creds::admin(&data),
    };
    let (hook, received) = receiver(None).await;
    let json_ct = "application/json";
    let put = |path: &str, body: Value| {
        server.send(
            server
                .client
                .put(format!("{}{path}", server.base))
                .header("content-type", json_ct)
                .body(body.to_string()),
        )
    };
    let settings = json!({"Name": "main", "LocalDirectory": dir.path().join("bucket"), "IsMultiRegionTrail": true});
    assert_eq!(
        server
            .post("/v1/trails", json_ct, settings.to_string())
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .post("/v1/trails/main/start-logging", json_ct, "")
            .await
            .0,
        200
    );
    assert_eq!(
        put("/v1/log-groups/audit", json!({"trailName": "main"}))
            .await
            .status(),
        200
    );
    let sink = dir.path().join("notifications.ndjson");
    let topic = json!({"subscriptions": [
        {"protocol": "http", "endpoint": hook},
        {"protocol": "https", "endpoint": secure_hook},
        {"protocol": "file", "endpoint": sink},
        {"protocol": "http", "endpoint": "http://127.0.0.1:9/unreachable"},
    ]});
    assert_eq!(put("/v1/topics/security", topic).await.status(), 200);
    let bad = put(
        "/v1/topics/x",
        json!({"subscriptions": [{"protocol": "sms", "endpoint": "1"}]}),
    )
    .await;
    assert_eq!(bad.status(), 400);
    let (status, installed) = server
        .post(
            "/v1/alarms/install-cis",
            json_ct,
            json!({"logGroupName": "audit", "topicName": "security"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{installed}");
    assert_eq!(installed["installed"].as_array().map(Vec::len), Some(15));
    let (_, filters) = server.get("/v1/log-groups/audit/metric-filters").await;
    assert_eq!(filters["metricFilters"].as_array().map(Vec::len), Some(15));

    // A trail change now that the filters exist (metric filters count events applied after
    // them, as CloudWatch's do: the StartLogging call above may have reached the log group
    // before the filters did).
    let updated = server
        .send(
            server
                .client
                .patch(format!("{}/v1/trails/main", server.base))
                .header("content-type", json_ct)
                .body(json!({"Name": "main", "IsMultiRegionTrail": true}).to_string()),
        )
        .await;
    assert_eq!(updated.status(), 200);

    // Every alarm is evaluated at once: missing data is not breaching, so OK — except the
    // CloudTrail-changes alarm (CloudWatch.5), which the trail's own UpdateTrail call fired.
    let started = std::time::Instant::now();
    loop {
        let (_, alarms) = server.get("/v1/alarms").await;
        let alarms = alarms["MetricAlarms"].as_array().expect("alarms").clone();
        let alarm: Vec<&str> = alarms
            .iter()
            .filter(|a| a["state"] == "Alarm")
            .filter_map(|a| a["name"].as_str())
            .collect();
        let ok = alarms.iter().filter(|a| a["state"] == "Ok").count();
        if alarm == ["CloudWatch.5-CloudTrailConfigChanges"] && ok == 14 {
            break;
        }
        assert!(started.elapsed().as_secs() < 30, "{alarms:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A root console sign-in, now.
    let time =
        cairn_model::time::format_utc_seconds(cairn_model::Clock::now_millis(clock.as_ref()));
    let root = format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"Root","principalId":"111122223333","arn":"arn:aws:iam::111122223333:root","accountId":"111122223333"}},"eventTime":"{time}","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","eventID":"root-1","responseElements":{{"ConsoleLogin":"Success"}},"eventType":"AwsConsoleSignIn"}}"#
    );
    assert_eq!(
        server
            .post("/v1/events", json_ct, format!("[{root}]"))
            .await
            .0,
        200
    );
    let started = std::time::Instant::now();
    let body = loop {
        let found = received
            .lock()
            .expect("lock")
            .iter()
            .find(|b| b.contains("RootAccountUsage"))
            .cloned();
        if let Some(body) = found {
            break body;
        }
        assert!(started.elapsed().as_secs() < 30, "no notification arrived");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let notification: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(notification["Type"], "Notification");
    assert_eq!(
        notification["TopicArn"],
        "arn:aws:sns:us-east-1:111122223333:security"
    );
    assert!(
        notification["Subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("ALARM: \"CloudWatch.1-RootAccountUsage\"")),
        "{notification}"
    );
    let message: Value =
        serde_json::from_str(notification["Message"].as_str().expect("message")).expect("json");
    assert_eq!(message["NewStateValue"], "ALARM");
    assert_eq!(message["Trigger"]["MetricName"], "RootAccountUsage");
    // The signature verifies with the published key (fetched without credentials).
    let pem = server
        .client
        .get(format!("{}/v1/topics/signing-key", server.base))
        .send()
        .await
        .expect("key")
        .text()
        .await
        .expect("text");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let key = cairn_digest::PublicKey::from_base64(&b64).expect("public key");
    assert!(
        cairn_monitor::notification::verify(&notification, &key),
        "signature"
    );
    let mut forged = notification.clone();
    forged["Message"] = Value::String("{}".into());
    assert!(!cairn_monitor::notification::verify(&forged, &key));
    // Two alarms fired: trail changes (StartLogging) and root activity.
    let subjects: Vec<String> = received
        .lock()
        .expect("lock")
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).expect("json")["Subject"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects
            .iter()
            .any(|s| s.contains("CloudWatch.5-CloudTrailConfigChanges")),
        "{subjects:?}"
    );
    // The file subscription got the same notification.
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&sink).unwrap_or_default();
        let ids: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json")["MessageId"].clone())
            .collect();
        if ids.contains(&notification["MessageId"]) {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "the file sink stayed empty"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The https webhook got both notifications too.
    let started = std::time::Instant::now();
    while secure_received.lock().expect("lock").len() < 2 {
        if started.elapsed().as_secs() > 30 {
            let (_, topics) = server.get("/v1/topics").await;
            panic!("the https webhook got nothing: {topics}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The unreachable endpoint: failures in the status and the metrics.
    let started = std::time::Instant::now();
    loop {
        let (_, topics) = server.get("/v1/topics").await;
        let failing = topics["topics"][0]["subscriptions"]
            .as_array()
            .expect("subscriptions")
            .iter()
            .find(|s| s["endpoint"] == "http://127.0.0.1:9/unreachable")
            .cloned()
            .expect("subscription");
        if failing["status"]["failedAttempts"].as_u64().unwrap_or(0) > 0 {
            assert!(failing["status"]["lastError"].is_string(), "{failing}");
            break;
        }
        assert!(started.elapsed().as_secs() < 30, "{topics}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(server.metric("cairn_notification_failures_total").await >= 1.0);
    let started = std::time::Instant::now();
    while server.metric("cairn_notifications_delivered_total").await < 6.0 {
        assert!(
            started.elapsed().as_secs() < 30,
            "two notifications x three working subscriptions"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Ten quiet minutes later the alarm is OK again, with both changes in its history.
    clock.advance(10 * 60_000);
    let started = std::time::Instant::now();
    loop {
        let (_, alarms) = server.get("/v1/alarms").await;
        let alarm = alarms["MetricAlarms"]
            .as_array()
            .expect("alarms")
            .iter()
            .find(|a| a["name"] == "CloudWatch.1-RootAccountUsage")
            .cloned()
            .expect("alarm");
        if alarm["state"] == "Ok" {
            let history: Vec<&str> = alarm["history"]
                .as_array()
                .expect("history")
                .iter()
                .filter_map(|h| h["new"].as_str())
                .collect();
            assert_eq!(history, ["Ok", "Alarm", "Ok"], "{alarm}");
            break;
        }
        assert!(started.elapsed().as_secs() < 30, "{alarm}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.stop().await;
}
