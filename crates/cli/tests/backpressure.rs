//! A bounded WAL backlog: a consumer that cannot keep up (here a trail whose store is
//! unreachable) holds the write-ahead log until `max_wal_backlog_mib`, then producers' ingest
//! answers 503 naming it, `cairn status` shows which consumer holds the WAL and why, and
//! ingest resumes once the consumer is gone. Nothing acknowledged is dropped.

mod support;

use serde_json::{json, Value};
use support::TestServer;

fn event(i: usize) -> String {
    json!({
        "eventVersion": "1.11", "userIdentity": {"type": "IAMUser", "userName": "bp"},
        "eventTime": cairn_model::time::format_utc_seconds(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("now").as_millis() as i64),
        "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances", "awsRegion": "us-east-1",
        "eventID": format!("bp-{i:06}"), "requestParameters": {"pad": "p".repeat(2000)}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_cannot_keep_up_holds_the_wal_up_to_its_bound_and_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A store nobody listens on: every delivery attempt fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let server = TestServer::start(&dir.path().join("data"), |c| {
        c.wal_segment_bytes = Some(256 * 1024);
        c.max_wal_backlog_mib = Some(1);
        c.delivery_interval_seconds = Some(1);
        c.s3 = Some(cairn_store::S3Config {
            endpoint: format!("http://127.0.0.1:{closed}"),
            region: "us-east-1".into(),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            allow_http: true,
            virtual_hosted_style: false,
        });
    })
    .await;
    let json_ct = "application/json";
    let (status, body) = server
        .post(
            "/v1/trails",
            json_ct,
            json!({"Name": "stuck", "S3BucketName": "nowhere"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    server
        .post("/v1/trails/stuck/start-logging", json_ct, "")
        .await;

    // Ingest until the bound: every 200 acknowledged, then a 503 naming the trail's consumer.
    let mut acknowledged = 0;
    let mut refusal = None;
    for batch in 0..200 {
        let body = format!(
            "[{}]",
            (0..20)
                .map(|i| event(batch * 20 + i))
                .collect::<Vec<_>>()
                .join(",")
        );
        let (status, answer) = server.post("/v1/events", json_ct, body).await;
        match status {
            200 => acknowledged += answer["accepted"].as_u64().expect("accepted"),
            503 => {
                refusal = Some(answer);
                break;
            }
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    let refusal = refusal.expect("ingest stopped at the bound");
    let message = refusal["message"].as_str().expect("message");
    assert!(message.contains("max_wal_backlog_mib"), "{message}");
    assert!(message.contains("trail-"), "names the consumer: {message}");
    assert!(acknowledged > 0);

    // The status says who holds the WAL, and why.
    let (status, state) = server.get("/v1/status").await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["Ready"], false, "{state}");
    let stuck: Vec<&Value> = state["Consumers"]
        .as_array()
        .expect("consumers")
        .iter()
        .filter(|c| c["Name"].as_str().is_some_and(|n| n.starts_with("trail-")))
        .collect();
    assert_eq!(stuck.len(), 1, "{state}");
    assert!(stuck[0]["LagRecords"].as_u64() > Some(0), "{state}");

    // Without the stuck consumer the WAL is retired and ingest resumes; every acknowledged
    // event is in Event history.
    let response = server
        .send(
            server
                .client
                .delete(format!("{}/v1/trails/stuck", server.base)),
        )
        .await;
    assert_eq!(response.status(), 200);
    let mut resumed = false;
    for _ in 0..100 {
        let (status, _) = server
            .post("/v1/events", json_ct, format!("[{}]", event(999_999)))
            .await;
        if status == 200 {
            resumed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(resumed, "ingest resumed once the consumer was gone");
    server.wait_indexed().await;
    let mut found = 0;
    let mut token: Option<String> = None;
    loop {
        let mut path =
            "/v1/event-history?lookup-attribute=EventSource%3Dec2.amazonaws.com&max-results=50"
                .to_owned();
        if let Some(t) = &token {
            path.push_str(&format!("&next-token={}", support::encode(t)));
        }
        let (_, page) = server.get(&path).await;
        found += page["Events"].as_array().map_or(0, Vec::len) as u64;
        match page["NextToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(found, acknowledged + 1);
    server.stop().await;
}
