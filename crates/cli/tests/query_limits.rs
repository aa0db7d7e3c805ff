//! A reader cannot take the server: runaway Lake queries are refused, stopped or cancelled,
//! and their tasks end (checked through `cairn_lake_queries_running`), against a real server.

mod support;

use serde_json::Value;
use support::TestServer;

async fn start_query(server: &TestServer, sql: &str) -> (u16, Value) {
    server
        .post(
            "/v1/queries",
            "application/json",
            serde_json::json!({ "QueryStatement": sql }).to_string(),
        )
        .await
}

async fn status_of(server: &TestServer, id: &str) -> Value {
    let (status, body) = server.get(&format!("/v1/queries/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits (bounded) until `done` holds for the query's description.
async fn wait_for(server: &TestServer, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let body = status_of(server, id).await;
        if done(&body) {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "query {id} never reached the awaited state: {}",
        status_of(server, id).await
    );
}

async fn wait_no_query_running(server: &TestServer) {
    for _ in 0..600 {
        if server.metric("cairn_lake_queries_running").await == 0.0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("a query task is still alive");
}

/// Never ends on its own: billions of rows through a filter that keeps none.
const ENDLESS: &str =
    "SELECT count(*) FROM generate_series(1, 9000000000000) WHERE value % 1000000007 = 999999999999";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_queries_are_refused_stopped_or_cancelled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(&dir.path().join("data"), |raw| {
        raw.query_timeout_seconds = Some(2);
        raw.query_memory_mib = Some(32);
        raw.max_queries_per_user = Some(2);
    })
    .await;

    // Values sized by an argument: refused before they run.
    let (status, body) = start_query(&server, "SELECT repeat('a', 1000000000)").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["__type"], "InvalidQueryStatementException", "{body}");
    let (status, body) = start_query(
        &server,
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Memory: fails with the limit named; the task ends.
    let (status, body) = start_query(
        &server,
        "SELECT array_agg(value) FROM generate_series(1, 50000000)",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body["QueryId"].as_str().expect("id").to_owned();
    let done = wait_for(&server, &id, |q| {
        q["QueryStatus"] != "RUNNING" && q["QueryStatus"] != "QUEUED"
    })
    .await;
    assert_eq!(done["QueryStatus"], "FAILED", "{done}");
    assert!(
        done["ErrorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("Resources exhausted"),
        "{done}"
    );

    // Cancel stops the work: the task ends, not only the status.
    wait_no_query_running(&server).await;
    let (_, body) = start_query(&server, ENDLESS).await;
    let cancelled = body["QueryId"].as_str().expect("id").to_owned();
    wait_for(&server, &cancelled, |q| q["QueryStatus"] == "RUNNING").await;
    assert_eq!(server.metric("cairn_lake_queries_running").await, 1.0);
    let (status, body) = server
        .post(
            &format!("/v1/queries/{cancelled}/cancel"),
            "application/json",
            "{}",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["QueryStatus"], "CANCELLED");
    wait_no_query_running(&server).await;

    // Per-user concurrency: two endless queries run, a third is refused until one ends.
    let (_, first) = start_query(&server, ENDLESS).await;
    let (_, second) = start_query(&server, ENDLESS).await;
    let (status, body) = start_query(&server, "SELECT 1").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["__type"], "MaxConcurrentQueriesException", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("max_queries_per_user"),
        "{body}"
    );

    // Time: both stop at the timeout, say why, and their tasks end.
    for query in [first, second] {
        let id = query["QueryId"].as_str().expect("id");
        let done = wait_for(&server, id, |q| q["QueryStatus"] == "FAILED").await;
        assert!(
            done["ErrorMessage"]
                .as_str()
                .unwrap_or("")
                .contains("query_timeout_seconds"),
            "{done}"
        );
    }
    wait_no_query_running(&server).await;
    let (status, body) = start_query(&server, "SELECT 1").await;
    assert_eq!(status, 200, "room again: {body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_page_tokens_cannot_be_edited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(&dir.path().join("data"), |_| {}).await;
    let (_, body) = start_query(&server, "SELECT value FROM generate_series(1, 25)").await;
    let id = body["QueryId"].as_str().expect("id").to_owned();
    wait_for(&server, &id, |q| q["QueryStatus"] == "FINISHED").await;
    let (status, page) = server
        .get(&format!("/v1/queries/{id}/results?maxResults=10"))
        .await;
    assert_eq!(status, 200, "{page}");
    let token = page["NextToken"].as_str().expect("a next page").to_owned();
    let (status, page) = server
        .get(&format!(
            "/v1/queries/{id}/results?maxResults=10&nextToken={token}"
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["QueryResultRows"][0][0]["value"], "11", "{page}");
    // Another offset under the same MAC, and a changed MAC, are refused.
    let forged = token.replacen("rows-10-", "rows-20-", 1);
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    for bad in [forged, flipped, "rows-10".to_owned()] {
        let (status, page) = server
            .get(&format!("/v1/queries/{id}/results?nextToken={bad}"))
            .await;
        assert_eq!(status, 400, "{bad}: {page}");
        assert_eq!(page["__type"], "InvalidNextTokenException", "{page}");
    }
    server.stop().await;
}

/// CloudTrail Lake's query text names a store by its ID, unquoted: it runs unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_id_runs_unquoted_as_cloudtrail_lake_writes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(&dir.path().join("data"), |_| {}).await;
    let (status, store) = server
        .post(
            "/v1/event-data-stores",
            "application/json",
            serde_json::json!({"Name": "audit", "TerminationProtectionEnabled": false}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{store}");
    let id = store["EventDataStoreArn"]
        .as_str()
        .and_then(|arn| arn.rsplit('/').next())
        .expect("id")
        .to_owned();
    let (status, body) = start_query(
        &server,
        &format!("SELECT count(*) AS n FROM {id} WHERE eventTime > '2020-01-01 00:00:00'"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let query = body["QueryId"].as_str().expect("id").to_owned();
    let done = wait_for(&server, &query, |q| {
        q["QueryStatus"] != "RUNNING" && q["QueryStatus"] != "QUEUED"
    })
    .await;
    assert_eq!(done["QueryStatus"], "FINISHED", "{done}");
    server.stop().await;
}
