//! The README's shell examples, run as written against a live server, in order (the way doc
//! tests run), so that an example cannot rot.
//!
//! Every ```sh block runs in one working directory with `bash -eu -o pipefail`, beside the
//! files its examples name (`events.ndjson`, `trail-logs/`, `my-bucket-copy/`, ...: made here),
//! with `cairn` and the AWS CLI on `PATH`. What the test changes, and only this: the server is
//! the one it started (`cairn serve --data-dir ./cairn-data` on a free port instead of 7474, so
//! lines starting `cairn serve` are not run again), absolute paths under `/srv/` and
//! `/var/log/` are moved into the working directory, and `s3://audit-bucket` is a real
//! S3-compatible server (moto) holding a copy of `my-bucket-copy`. A block preceded by
//! `<!-- readme-test: skip: REASON -->` is not run; there is one (the two commands that build
//! and test Cairn itself).

mod support;

use serde_json::json;
use std::path::Path;
use std::process::Command;

/// A ```sh block and whether (and why) it is skipped.
struct Block {
    line: usize,
    text: String,
    skip: Option<String>,
}

fn blocks(readme: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let lines: Vec<&str> = readme.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "```sh" {
            let skip = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| l.trim().strip_prefix("<!-- readme-test: skip:"))
                .map(|r| r.trim_end_matches("-->").trim().to_owned());
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end].trim() != "```" {
                end += 1;
            }
            out.push(Block {
                line: i + 1,
                text: lines[start..end].join("\n"),
                skip,
            });
            i = end;
        }
        i += 1;
    }
    out
}

fn event(id: &str, name: &str, source: &str, user: &str, minutes_ago: i64) -> serde_json::Value {
    let time = cairn_model::time::format_utc_seconds(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("now")
            .as_millis() as i64
            - minutes_ago * 60_000,
    );
    json!({
        "eventVersion": "1.11",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAREADME", "arn": format!("arn:aws:iam::111122223333:user/{user}"),
                         "accountId": "111122223333", "accessKeyId": "AKIAREADMEEXAMPLE", "userName": user},
        "eventTime": time, "eventSource": source, "eventName": name, "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7", "userAgent": "readme", "requestParameters": null,
        "responseElements": null, "eventID": id, "readOnly": false, "eventType": "AwsApiCall",
        "managementEvent": true, "recipientAccountId": "111122223333", "eventCategory": "Management"
    })
}

fn records_file(records: &[serde_json::Value]) -> Vec<u8> {
    let lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    cairn_logfile::body::encode(&lines)
}

/// The files the examples name.
fn fixtures(dir: &Path) -> Vec<u8> {
    let ndjson = |records: &[serde_json::Value]| -> String {
        records.iter().map(|r| format!("{r}\n")).collect()
    };
    std::fs::write(
        dir.join("events.ndjson"),
        ndjson(&[
            event(
                "readme-1",
                "ConsoleLogin",
                "signin.amazonaws.com",
                "alice",
                5,
            ),
            event("readme-2", "CreateUser", "iam.amazonaws.com", "alice", 4),
            event(
                "readme-3",
                "StopLogging",
                "cloudtrail.amazonaws.com",
                "bob",
                3,
            ),
        ]),
    )
    .expect("events.ndjson");
    std::fs::write(
        dir.join("new-events.ndjson"),
        ndjson(&[
            event("readme-4", "DeleteBucket", "s3.amazonaws.com", "carol", 2),
            event(
                "readme-5",
                "PutBucketPolicy",
                "s3.amazonaws.com",
                "carol",
                1,
            ),
        ]),
    )
    .expect("new-events.ndjson");
    let logs = [
        event("readme-6", "RunInstances", "ec2.amazonaws.com", "dave", 30),
        event(
            "readme-7",
            "ConsoleLogin",
            "signin.amazonaws.com",
            "erin",
            29,
        ),
    ];
    let gz = records_file(&logs);
    for sub in ["trail-logs", "trail"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        std::fs::write(
            dir.join(sub)
                .join("111122223333_CloudTrail_us-east-1_20261201T1000Z_readmeexample001.json.gz"),
            &gz,
        )
        .expect("log file");
    }
    let day = dir.join("my-bucket-copy/AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01");
    std::fs::create_dir_all(&day).expect("mkdir");
    let copied = records_file(&[
        event(
            "readme-8",
            "AttachRolePolicy",
            "iam.amazonaws.com",
            "frank",
            60,
        ),
        event("readme-9", "GetObject", "s3.amazonaws.com", "frank", 59),
    ]);
    std::fs::write(
        day.join("111122223333_CloudTrail_us-east-1_20261201T1000Z_readmeexample002.json.gz"),
        &copied,
    )
    .expect("tree");
    std::fs::write(
        dir.join("selectors.json"),
        r#"[{"Name":"management","FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]}]}]"#,
    )
    .expect("selectors");
    std::fs::write(
        dir.join("access.log"),
        "127.0.0.1 frank - 404 2326\n127.0.0.1 alice - 200 512\n10.0.0.9 bob - 403 77\n",
    )
    .expect("access.log");
    copied
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_run_as_written() {
    let readme = std::fs::read_to_string(support::repo_root().join("README.md")).expect("README");
    let blocks = blocks(&readme);
    assert!(blocks.len() >= 8, "README shell blocks: {}", blocks.len());
    let skipped: Vec<usize> = blocks
        .iter()
        .filter(|b| b.skip.is_some())
        .map(|b| b.line)
        .collect();
    assert_eq!(
        skipped.len(),
        1,
        "only the build-and-test block is skipped: lines {skipped:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path();
    let copied = fixtures(work);

    // S3: a real S3-compatible server holding a copy of the tree.
    let moto = support::Moto::start();
    moto.create_bucket("audit-bucket").await;
    let put = reqwest::Client::new()
        .put(format!(
            "{}/audit-bucket/AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01/111122223333_CloudTrail_us-east-1_20261201T1000Z_readmeexample002.json.gz",
            moto.endpoint
        ))
        .body(copied)
        .send()
        .await
        .expect("upload");
    assert!(put.status().is_success());

    // The server, as the first README command starts it (on a free port).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let address = format!("127.0.0.1:{port}");
    let cairn = Path::new(env!("CARGO_BIN_EXE_cairn"));
    let mut server = Command::new(cairn)
        .args(["serve", "--data-dir", "./cairn-data", "--listen", &address])
        .current_dir(work)
        .env("CAIRN_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cairn serve");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..600 {
        if client
            .get(format!("http://{address}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "cairn serve did not become ready");

    let aws_bin = support::python_with(&["awscli", "moto[server]"])
        .parent()
        .expect("bin")
        .to_path_buf();
    let path = format!(
        "{}:{}:{}",
        cairn.parent().expect("dir").display(),
        aws_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let prefix = work.display().to_string();
    let mut ran = 0;
    for block in &blocks {
        if block.skip.is_some() {
            continue;
        }
        ran += 1;
        let script: String = block
            .text
            .lines()
            .filter(|l| !l.trim_start().starts_with("cairn serve"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("127.0.0.1:7474", &address)
            .replace("localhost:7474", &address)
            .replace(" /srv/", &format!(" {prefix}/srv/"))
            .replace(" /var/log/", &format!(" {prefix}/var-log/"));
        std::fs::create_dir_all(work.join("srv")).expect("srv");
        std::fs::create_dir_all(work.join("var-log")).expect("var-log");
        let output = tokio::task::spawn_blocking({
            let (work, path, endpoint, s3) = (
                work.to_path_buf(),
                path.clone(),
                format!("http://{address}"),
                moto.endpoint.clone(),
            );
            move || {
                Command::new("bash")
                    .args(["-eu", "-o", "pipefail", "-c", &script])
                    .current_dir(&work)
                    .env_clear()
                    .env("PATH", path)
                    .env("HOME", &work)
                    .env("CAIRN_ENDPOINT", endpoint)
                    .env("CAIRN_S3_ENDPOINT", s3)
                    .env("CAIRN_S3_ACCESS_KEY_ID", "testing")
                    .env("CAIRN_S3_SECRET_ACCESS_KEY", "testing")
                    .env("AWS_EC2_METADATA_DISABLED", "true")
                    .output()
                    .expect("bash")
            }
        })
        .await
        .expect("join");
        assert!(
            output.status.success(),
            "README.md line {}: the block failed ({})\n{}\n--- stdout\n{}\n--- stderr\n{}",
            block.line,
            output.status,
            block.text,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The examples did what they say: the last blocks' files exist, the trail delivered.
    assert_eq!(ran, blocks.len() - 1);
    let listing = Command::new("find")
        .args(["srv", "copied-tree", "-maxdepth", "4"])
        .current_dir(work)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for made in [
        "keys.json",
        "copied-tree/AWSLogs",
        "srv/audit/AWSLogs",
        "srv/audited/AWSLogs",
    ] {
        assert!(
            work.join(made).exists(),
            "{made} was not made by the README's examples:\n{listing}"
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}
