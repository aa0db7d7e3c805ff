//! Log groups end to end: a trail streams into a log group, a CIS metric filter counts failed
//! console sign-ins per minute, FilterLogEvents finds the events with the filter language, and
//! GetMetricStatistics sums them over the CIS alarm's five-minute period.

mod support;

use serde_json::{json, Value};
use support::TestServer;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("now")
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trail_feeds_a_log_group_and_its_metric_filter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(&dir.path().join("data"), |c| {
        c.account_id = Some("111122223333".into());
    })
    .await;
    let json_ct = "application/json";
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
    let put = |path: String, body: Value| {
        let request = server
            .client
            .put(format!("{}{path}", server.base))
            .header("content-type", json_ct)
            .body(body.to_string());
        server.send(request)
    };
    let response = put("/v1/log-groups/audit".into(), json!({"trailName": "nope"})).await;
    assert_eq!(response.status().as_u16(), 404, "an unknown trail");
    let response = put(
        "/v1/log-groups/audit".into(),
        json!({"trailName": "main", "retentionInDays": 30}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    let failed_logins = cairn_filter::cis::CONTROLS
        .iter()
        .find(|c| c.id == "CloudWatch.6")
        .expect("control");
    let response = put(
        "/v1/log-groups/audit/metric-filters/failed-logins".into(),
        json!({"filterPattern": failed_logins.pattern, "metricTransformations": [{"metricName": failed_logins.metric, "metricNamespace": "LogMetrics", "metricValue": "1", "defaultValue": 0}]}),
    )
    .await;
    assert_eq!(
        response.status().as_u16(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let bad = put(
        "/v1/log-groups/audit/metric-filters/bad".into(),
        json!({"filterPattern": "ERR*", "metricTransformations": [{"metricName": "M", "metricNamespace": "N", "metricValue": "1"}]}),
    )
    .await;
    assert_eq!(bad.status().as_u16(), 400);
    let error: Value = serde_json::from_str(&bad.text().await.unwrap_or_default()).expect("json");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("position 3")),
        "{error}"
    );

    let time = cairn_model::time::format_utc_seconds(now_ms());
    let event = |id: &str, error: &str| {
        format!(
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","userName":"eve"}},"eventTime":"{time}","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","eventID":"{id}"{error},"responseElements":{{"ConsoleLogin":"Failure"}},"eventType":"AwsConsoleSignIn"}}"#
        )
    };
    let failed = r#","errorMessage":"Failed authentication""#;
    let body = format!(
        "[{},{},{}]",
        event("f1", failed),
        event("f2", failed),
        event("ok", "")
    );
    assert_eq!(server.post("/v1/events", json_ct, body).await.0, 200);

    // The worker is asynchronous: wait until the group holds the three events (the trail's
    // own control-plane records arrive there too, and may come first).
    let started = std::time::Instant::now();
    let all = loop {
        let (status, page) = server.get("/v1/log-groups/audit/events").await;
        assert_eq!(status, 200, "{page}");
        let text = page.to_string();
        if ["f1", "f2", "ok"]
            .iter()
            .all(|id| text.contains(&format!("\\\"eventID\\\":\\\"{id}\\\"")))
        {
            break page;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "the log group did not receive the events: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let ids: Vec<String> = all["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e["message"].as_str().expect("message")).expect("json")
                ["eventID"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    for id in ["f1", "f2", "ok"] {
        assert!(ids.contains(&id.to_owned()), "{ids:?}");
    }
    let pattern = support::encode(r#"{ $.errorMessage = "Failed*" }"#);
    let (_, failures) = server
        .get(&format!(
            "/v1/log-groups/audit/events?filterPattern={pattern}&limit=1"
        ))
        .await;
    assert_eq!(failures["events"].as_array().map(Vec::len), Some(1));
    let token = failures["nextToken"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let (_, second) = server
        .get(&format!(
            "/v1/log-groups/audit/events?filterPattern={pattern}&limit=1&nextToken={}",
            support::encode(&token)
        ))
        .await;
    assert_eq!(second["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(second["nextToken"], Value::Null);

    // Five-minute statistics around now: the two failures.
    let period = 300_000;
    let start = now_ms().div_euclid(period) * period - period;
    let (status, stats) = server
        .get(&format!(
            "/v1/metrics/statistics?namespace=LogMetrics&metricName={}&startTime={start}&endTime={}&period=300&statistics=Sum,SampleCount,Maximum",
            failed_logins.metric,
            start + 3 * period
        ))
        .await;
    assert_eq!(status, 200, "{stats}");
    let sum: f64 = stats["Datapoints"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["Sum"].as_f64().unwrap_or(0.0))
        .sum();
    let count: f64 = stats["Datapoints"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["SampleCount"].as_f64().unwrap_or(0.0))
        .sum();
    // Every other event of the trail (its own control-plane calls too) adds the default 0.
    assert_eq!(sum, 2.0, "{stats}");
    assert!(count >= 3.0, "{stats}");
    let (_, filters) = server.get("/v1/log-groups/audit/metric-filters").await;
    assert_eq!(
        filters["metricFilters"][0]["filterPattern"],
        failed_logins.pattern
    );
    // The changes are on record.
    server.wait_indexed().await;
    let (_, page) = server
        .get("/v1/event-history?lookup-attribute=EventSource%3Dlogs.amazonaws.com")
        .await;
    let names: Vec<&str> = page["Events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["EventName"].as_str())
        .collect();
    assert!(
        names.contains(&"CreateLogGroup") && names.contains(&"PutMetricFilter"),
        "{names:?}"
    );
    // The same through the commands.
    let (base, data) = (server.base.clone(), dir.path().join("data"));
    let sink = dir.path().join("alerts.ndjson");
    let start_text = cairn_model::time::format_utc_seconds(start);
    let end_text = cairn_model::time::format_utc_seconds(start + 3 * period);
    let metric = failed_logins.metric.to_owned();
    let outputs = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
                .args(args)
                .env("CAIRN_ENDPOINT", &base)
                .env("CAIRN_DATA_DIR", &data)
                .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .output()
                .expect("run cairn");
            assert!(
                output.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        (
            run(&[
                "logs",
                "filter-log-events",
                "--log-group",
                "audit",
                "--filter-pattern",
                r#"{ $.errorMessage = "Failed*" }"#,
            ]),
            run(&[
                "metrics",
                "get-statistics",
                "--namespace",
                "LogMetrics",
                "--metric-name",
                &metric,
                "--start-time",
                &start_text,
                "--end-time",
                &end_text,
                "--period",
                "300",
            ]),
            run(&[
                "topics",
                "create",
                "--name",
                "ops",
                "--file",
                sink.to_str().expect("utf8"),
                "--http",
                "https://127.0.0.1:9/hook",
            ]),
            run(&[
                "alarms",
                "install-cis",
                "--log-group",
                "audit",
                "--topic",
                "ops",
            ]),
            run(&["alarms", "list"]),
            run(&["logs", "describe-log-groups"]),
        )
    })
    .await
    .expect("cli");
    assert_eq!(outputs.0.lines().count(), 2, "{}", outputs.0);
    let stats: Value = serde_json::from_str(&outputs.1).expect("json");
    let sum: f64 = stats["Datapoints"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["Sum"].as_f64().unwrap_or(0.0))
        .sum();
    assert_eq!(sum, 2.0);
    assert!(
        outputs.2.contains("arn:aws:sns:us-east-1:111122223333:ops"),
        "{}",
        outputs.2
    );
    // An https endpoint is an https subscription.
    let topic: Value = serde_json::from_str(&outputs.2).expect("json");
    let https = topic["topic"]["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .find(|s| s["endpoint"] == "https://127.0.0.1:9/hook")
        .cloned()
        .expect("the https subscription");
    assert_eq!(https["protocol"], "https", "{topic}");
    let installed: Value = serde_json::from_str(&outputs.3).expect("json");
    assert_eq!(installed["installed"].as_array().map(Vec::len), Some(15));
    let alarms: Value = serde_json::from_str(&outputs.4).expect("json");
    assert_eq!(alarms["MetricAlarms"].as_array().map(Vec::len), Some(15));
    assert!(outputs.5.contains("\"audit\""), "{}", outputs.5);
    server.stop().await;
}

/// Monitoring can be taken down only on the record: DeleteMetricFilter, DeleteAlarms,
/// DeleteTopic (refused while an alarm notifies it) and DeleteLogGroup, each with AWS's shapes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_alarms_topics_and_groups_can_be_deleted_on_the_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(&dir.path().join("data"), |_| {}).await;
    let json_ct = "application/json";
    let settings = json!({"Name": "main", "LocalDirectory": dir.path().join("bucket")});
    assert_eq!(
        server
            .post("/v1/trails", json_ct, settings.to_string())
            .await
            .0,
        200
    );
    let send = |method: reqwest::Method, path: &str, body: Value| {
        let request = server
            .client
            .request(method, format!("{}{path}", server.base))
            .header("content-type", json_ct)
            .body(body.to_string());
        server.send(request)
    };
    let delete = |path: &str| send(reqwest::Method::DELETE, path, Value::Null);
    let code = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        (status, body["__type"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(
        send(
            reqwest::Method::PUT,
            "/v1/log-groups/audit",
            json!({"trailName": "main"})
        )
        .await
        .status(),
        200
    );
    let sink = dir.path().join("notifications.ndjson");
    let topic = json!({"subscriptions": [{"protocol": "file", "endpoint": sink}]});
    assert_eq!(
        send(reqwest::Method::PUT, "/v1/topics/security", topic)
            .await
            .status(),
        200
    );
    let (status, installed) = server
        .post(
            "/v1/alarms/install-cis",
            json_ct,
            json!({"logGroupName": "audit", "topicName": "security"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{installed}");
    // A topic an alarm notifies cannot go first.
    let (status, kind) = code(delete("/v1/topics/security").await).await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterException"));
    // Alarms: each deleted, then unknown.
    let (_, alarms) = server.get("/v1/alarms").await;
    let names: Vec<String> = alarms["MetricAlarms"]
        .as_array()
        .expect("alarms")
        .iter()
        .filter_map(|a| a["name"].as_str().map(str::to_owned))
        .collect();
    assert!(!names.is_empty());
    for name in &names {
        let path = format!("/v1/alarms/{}", support::encode(name));
        assert_eq!(delete(&path).await.status().as_u16(), 200, "{name}");
    }
    let (status, kind) =
        code(delete(&format!("/v1/alarms/{}", support::encode(&names[0]))).await).await;
    assert_eq!((status, kind.as_str()), (404, "ResourceNotFoundException"));
    let (_, alarms) = server.get("/v1/alarms").await;
    assert_eq!(alarms["MetricAlarms"].as_array().map(Vec::len), Some(0));
    assert_eq!(delete("/v1/topics/security").await.status().as_u16(), 200);
    let (_, topics) = server.get("/v1/topics").await;
    assert_eq!(topics["topics"].as_array().map(Vec::len), Some(0));
    // A metric filter, then the whole group with the rest.
    let (_, filters) = server.get("/v1/log-groups/audit/metric-filters").await;
    let filters = filters["metricFilters"]
        .as_array()
        .expect("filters")
        .clone();
    let first = filters[0]["filterName"].as_str().expect("name").to_owned();
    let path = format!(
        "/v1/log-groups/audit/metric-filters/{}",
        support::encode(&first)
    );
    assert_eq!(delete(&path).await.status().as_u16(), 200);
    let (_, after) = server.get("/v1/log-groups/audit/metric-filters").await;
    assert_eq!(
        after["metricFilters"].as_array().map(Vec::len),
        Some(filters.len() - 1)
    );
    assert_eq!(delete(&path).await.status().as_u16(), 404);
    assert_eq!(delete("/v1/log-groups/audit").await.status().as_u16(), 200);
    let (_, groups) = server.get("/v1/log-groups").await;
    assert_eq!(groups["logGroups"].as_array().map(Vec::len), Some(0));
    let (status, _) = server.get("/v1/log-groups/audit/metric-filters").await;
    let (_, remaining) = server.get("/v1/log-groups/audit/metric-filters").await;
    assert!(
        status == 404
            || remaining["metricFilters"]
                .as_array()
                .is_some_and(Vec::is_empty),
        "{remaining}"
    );
    let (status, kind) = code(delete("/v1/log-groups/audit").await).await;
    assert_eq!((status, kind.as_str()), (404, "ResourceNotFoundException"));
    // On the record.
    server.wait_indexed().await;
    for name in [
        "DeleteAlarms",
        "DeleteTopic",
        "DeleteMetricFilter",
        "DeleteLogGroup",
    ] {
        let (_, page) = server
            .get(&format!(
                "/v1/event-history?lookup-attribute=EventName%3D{name}"
            ))
            .await;
        assert!(
            page["Events"].as_array().is_some_and(|e| !e.is_empty()),
            "{name} not recorded: {page}"
        );
    }
    server.stop().await;
}
