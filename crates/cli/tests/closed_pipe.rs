//! `cairn ... | head`: a reader that goes away ends the command quietly (exit 0, no panic, no
//! backtrace), as it ends any Unix tool.

use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let day = dir
        .path()
        .join("AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01");
    std::fs::create_dir_all(&day).expect("mkdir");
    let records: Vec<String> = (0..20_000)
        .map(|i| {
            format!(
                r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser"}},"eventTime":"2026-12-01T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":"us-east-1","eventID":"pipe-{i:06}-padding-padding-padding"}}"#
            )
        })
        .collect();
    let body = format!(r#"{{"Records":[{}]}}"#, records.join(","));
    std::fs::write(
        day.join("111122223333_CloudTrail_us-east-1_20261201T0000Z_abcdefghijklmnop.json.gz"),
        cairn_logfile::body::gzip(body.as_bytes()),
    )
    .expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["query", "--source"])
        .arg(dir.path())
        .arg("SELECT eventID FROM events ORDER BY eventID")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read a little, then hang up, as `head -c 100` does.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).expect("some output");
    drop(stdout);
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

/// A pattern that starts with `-` (an exclusion) is a value, not an unknown option.
#[test]
fn a_pattern_may_start_with_a_dash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, "GET /health check ok\nPOST /login failed\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["filter", "test", "--pattern", "-\"health check\""])
        .arg(&events)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("unexpected argument") && !stderr.contains("error:"),
        "{stderr}"
    );
    assert!(!stdout.contains("/health"), "{stdout}");
}
