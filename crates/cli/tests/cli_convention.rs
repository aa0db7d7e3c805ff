//! One CLI convention (the AWS CLI's): every client command takes `--output json|table|text`,
//! prints times in ISO-8601 UTC, reads them as people type them, and numbers events from 1.

mod support;

use support::TestServer;

fn cairn(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_ENDPOINT", &server.base)
        .env("CAIRN_ACCESS_KEY_ID", &server.creds.id)
        .env("CAIRN_SECRET_ACCESS_KEY", &server.creds.secret)
        .env("CAIRN_CONFIG_FILE", "/dev/null")
        .output()
        .expect("run cairn");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every command and subcommand that talks to a server or prints a report.
const COMMANDS: &[&[&str]] = &[
    &["put-events"],
    &["lookup-events"],
    &["status"],
    &["trails", "list"],
    &["trails", "status"],
    &["validate-logs"],
    &["keys", "list"],
    &["keys", "rotate"],
    &["iam", "list-users"],
    &["iam", "whoami"],
    &["query"],
    &["stores", "list"],
    &["import"],
    &["logs", "describe-log-groups"],
    &["logs", "filter-log-events"],
    &["metrics", "get-statistics"],
    &["alarms", "list"],
    &["topics", "list"],
    &["filter", "test"],
    &["bench", "faults"],
];

#[test]
fn every_command_takes_output() {
    for command in COMMANDS {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(*command)
            .arg("--help")
            .output()
            .expect("help");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(
            help.contains("--output"),
            "{command:?} has no --output:\n{help}"
        );
        for format in ["json", "table", "text"] {
            assert!(
                help.contains(format),
                "{command:?} --output lacks {format}:\n{help}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_formats_print_the_same_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(&dir.path().join("data"), |_| {}).await;
    let events = dir.path().join("events.ndjson");
    std::fs::write(
        &events,
        concat!(
            r#"{"eventVersion":"1.11","userIdentity":{"type":"IAMUser","userName":"alice"},"eventTime":"2026-12-07T10:00:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser","awsRegion":"us-east-1","eventID":"conv-1"}"#,
            "\n",
            "{not json\n",
        ),
    )
    .expect("events");
    let path = events.to_str().expect("path");

    // put-events: counts in every format; a rejection numbered from 1 (the 2nd event).
    let (ok, out, err) = cairn(&server, &["put-events", "--output", "json", path]);
    assert!(!ok, "a rejected event exits 1");
    let summary: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(summary["Accepted"], 1, "{out} {err}");
    assert_eq!(summary["Rejections"][0]["Event"], 2, "{out}");
    let (_, out, err) = cairn(&server, &["put-events", "--output", "text", path]);
    assert_eq!(
        out, "0\t1\t1\n",
        "accepted 0 (a duplicate now), duplicates 1, rejected 1: {err}"
    );
    assert!(err.contains("#2: rejected"), "{err}");
    server.wait_indexed().await;

    // lookup-events: times in ISO-8601 UTC; read from a time with an offset.
    let (ok, out, err) = cairn(
        &server,
        &[
            "lookup-events",
            "--lookup-attribute",
            "EventId=conv-1",
            "--start-time",
            "2026-12-07T11:00+01:00",
        ],
    );
    assert!(ok, "{err}");
    let page: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        page["Events"][0]["EventTime"], "2026-12-07T10:00:00Z",
        "{out}"
    );
    let (ok, out, _) = cairn(
        &server,
        &[
            "lookup-events",
            "--lookup-attribute",
            "EventId=conv-1",
            "--start-time",
            "2026-12-07",
            "--output",
            "text",
        ],
    );
    assert!(ok);
    assert_eq!(
        out,
        "conv-1\tCreateUser\tiam.amazonaws.com\t2026-12-07T10:00:00Z\talice\n"
    );
    let (ok, out, _) = cairn(
        &server,
        &[
            "lookup-events",
            "--lookup-attribute",
            "EventId=conv-1",
            "--output",
            "table",
        ],
    );
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("EventId") && lines[0].contains("EventTime"),
        "{out}"
    );
    assert!(lines[2].contains("2026-12-07T10:00:00Z"), "{out}");

    // A command with a list answer: the same users in each format.
    let (ok, json_out, _) = cairn(&server, &["iam", "list-users"]);
    assert!(ok);
    let users: serde_json::Value = serde_json::from_str(&json_out).expect("json");
    let first = users["Users"][0]["UserName"]
        .as_str()
        .expect("a user")
        .to_owned();
    let (ok, text_out, _) = cairn(&server, &["iam", "list-users", "--output", "text"]);
    assert!(
        ok && text_out.lines().any(|l| l.split('\t').any(|c| c == first)),
        "{text_out}"
    );
    assert!(!text_out.contains('{'), "text is not JSON: {text_out}");
    let (ok, table_out, _) = cairn(&server, &["iam", "list-users", "--output", "table"]);
    assert!(
        ok && table_out
            .lines()
            .next()
            .is_some_and(|h| h.contains("UserName")),
        "{table_out}"
    );
    assert!(
        users["Users"][0]["CreateDate"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z') && d.contains('T')),
        "{json_out}"
    );

    // query: text is tab-separated rows without a header.
    let (ok, out, err) = cairn(
        &server,
        &["query", "--output", "text", "SELECT 1 AS a, 'x' AS b"],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "1\tx\n");

    // The request-body budget in use is a metric (the scrape itself holds a little of it).
    let text = support::metrics_text(&server.client, &server.base, &server.creds).await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("cairn_request_buffer_bytes ")),
        "{text}"
    );

    // Shell completions.
    let (ok, _, err) = cairn(&server, &["completions", "bash"]);
    assert!(ok, "{err}");
    server.stop().await;
}
