//! Crash test: SIGKILL the real `cairn serve` in the middle of concurrent ingest, many times.
//! After every restart, every acknowledged event is in Event history exactly once (and, at the
//! end, in an event data store and a trail's log group exactly once, their consumers killed
//! with the rest),
//! and the WAL
//! recovered (in some rounds what a power cut mid-write would leave is also appended to the WAL's
//! last segment: half a record, or half a header if the kill landed while a segment was being
//! made; recovery must cut or remove it and lose nothing else).

mod support;

use cairn_wal::record::{
    decode_record, encode_header, encode_record, parse_segment_name, segment_name, Decoded,
    HEADER_LEN,
};
use support::JsonValue;

use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

fn spawn(dir: &std::path::Path) -> Server {
    spawn_with(dir, None)
}

/// [`spawn`] with a test failpoint (`CAIRN_FAILPOINT`).
fn spawn_with(dir: &std::path::Path, failpoint: Option<&str>) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    if let Some(failpoint) = failpoint {
        command.env("CAIRN_FAILPOINT", failpoint);
    }
    let mut child = command
        .args(["serve", "--config"])
        .arg(dir.join("cairn.toml"))
        .env("CAIRN_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairn serve");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("cairn listening on ") {
                    let _ = tx.send(addr.split(' ').next().unwrap_or("").to_owned());
                }
                log.lock().expect("log").push(line);
            }
        });
    }
    let base = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("server did not start: {:?}", log.lock().expect("log")));
    Server { child, base, log }
}

fn event(id: &str, time: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.11","userIdentity":{{"type":"IAMUser","userName":"crash"}},"eventTime":"{time}","eventSource":"iam.amazonaws.com","eventName":"CreateUser","awsRegion":"us-east-1","eventID":"{id}","requestParameters":{{"userName":"{id}","padding":"{}"}}}}"#,
        "p".repeat(600)
    )
}

/// Writes the server's configuration: a data directory and a loopback port, then `extra`
/// (TOML lines, each ending in a newline).
fn write_config(dir: &std::path::Path, extra: &str) {
    std::fs::write(
        dir.join("cairn.toml"),
        format!(
            "data_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\n{extra}",
            dir.join("data").display()
        ),
    )
    .expect("config");
}

/// Creates the event data store `crashed` (ten years' retention).
async fn create_store(client: &reqwest::Client, base: &str, creds: &support::Creds) {
    let response = support::send(
        client
            .post(format!("{base}/v1/event-data-stores"))
            .header("content-type", "application/json")
            .body(r#"{"Name":"crashed","RetentionPeriod":3653}"#),
        creds,
    )
    .await;
    assert_eq!(response.status(), 200);
}

/// A JSON array of `n` events with ids `<prefix>0`, `<prefix>1`, ...
fn batch(prefix: &str, n: usize, time: &str) -> String {
    format!(
        "[{}]",
        (0..n)
            .map(|i| event(&format!("{prefix}{i}"), time))
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// Every item of a paged listing: `url`, then `url&<param>=<token>` for each next page; the
/// items under `items`, the next token under `next`.
async fn all_pages(
    client: &reqwest::Client,
    creds: &support::Creds,
    url: &str,
    (param, items, next): (&str, &str, &str),
) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut page_url = url.to_owned();
        if let Some(t) = &token {
            page_url.push_str(&format!("&{param}={}", support::encode(t)));
        }
        let page: serde_json::Value = support::send(client.get(page_url), creds)
            .await
            .json_value()
            .await;
        out.extend(page[items].as_array().expect("items").iter().cloned());
        match page[next].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return out,
        }
    }
}

/// Every id in Event history (us-east-1), each exactly once.
async fn history_ids(
    client: &reqwest::Client,
    base: &str,
    creds: &support::Creds,
) -> HashSet<String> {
    support::wait_indexed(client, base, creds).await;
    let url = format!("{base}/v1/event-history?region=us-east-1&max-results=50");
    let mut ids = HashSet::new();
    for event in all_pages(client, creds, &url, ("next-token", "Events", "NextToken")).await {
        let id = event["EventId"].as_str().expect("id").to_owned();
        assert!(
            ids.insert(id.clone()),
            "event {id} appears twice in history"
        );
    }
    ids
}

/// The eventIDs of the crash test's events in the `audit` log group, as often as it holds them.
async fn log_group_ids(
    client: &reqwest::Client,
    base: &str,
    creds: &support::Creds,
) -> Vec<String> {
    let url = format!("{base}/v1/log-groups/audit/events?limit=10000");
    all_pages(client, creds, &url, ("nextToken", "events", "nextToken"))
        .await
        .iter()
        .filter_map(|event| {
            let record: serde_json::Value =
                serde_json::from_str(event["message"].as_str().expect("message")).expect("json");
            record["eventID"]
                .as_str()
                .filter(|id| id.starts_with('r'))
                .map(str::to_owned)
        })
        .collect()
}

/// Rows and distinct eventIDs of the crash test's events in the `crashed` store.
fn store_count(base: &str, creds: &support::Creds) -> (u64, u64) {
    store_count_where(base, creds, "eventID LIKE 'r%'")
}

/// Rows and distinct eventIDs of the `crashed` store's events that `filter` chooses.
fn store_count_where(base: &str, creds: &support::Creds, filter: &str) -> (u64, u64) {
    let sql =
        format!("SELECT count(*) AS n, count(DISTINCT eventID) AS d FROM crashed WHERE {filter}");
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["query", "--output", "json", &sql])
        .env("CAIRN_ENDPOINT", base)
        .env("CAIRN_ACCESS_KEY_ID", &creds.id)
        .env("CAIRN_SECRET_ACCESS_KEY", &creds.secret)
        .env_remove("CAIRN_PROFILE")
        .output()
        .expect("cairn query");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One JSON object per row.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let row: serde_json::Value = stdout
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json row"))
        .unwrap_or_else(|| panic!("no row: {stdout}"));
    let number = |key: &str| -> u64 {
        row[key]
            .as_str()
            .and_then(|n| n.parse().ok())
            .or_else(|| row[key].as_u64())
            .unwrap_or_else(|| panic!("{key} in {row}"))
    };
    (number("n"), number("d"))
}

/// What the simulated power cut left at the end of the write-ahead log.
enum Tear {
    Record,
    Header,
}

/// Leaves at the end of the WAL what a power cut mid-write would, given its last `segment`.
/// Usually the kill landed between group commits: half a record (`payload`'s) is left at the
/// end of the segment. If it landed while a segment was being made, before its header was
/// written (the segment is shorter than a header, or `mid_roll` makes the next segment now),
/// only part of a header is left, never a record: the writer syncs a header before any record.
fn tear(segment: &std::path::Path, mid_roll: bool, payload: &[u8]) -> Tear {
    let bytes = std::fs::read(segment).expect("segment");
    let name = segment.file_name().and_then(|n| n.to_str()).expect("name");
    let first = parse_segment_name(name).expect("a segment's name");
    let append = |path: &std::path::Path, tail: &[u8]| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("segment");
        file.write_all(tail).expect("tear");
    };
    if bytes.len() < HEADER_LEN {
        append(segment, &encode_header(first)[bytes.len()..HEADER_LEN - 1]);
        return Tear::Header;
    }
    let mut next = first;
    let mut at = HEADER_LEN;
    while let Decoded::Record {
        seq, encoded_len, ..
    } = decode_record(&bytes[at..])
    {
        next = seq + 1;
        at += encoded_len;
    }
    // The writer rolls only from a segment that holds records, all of them whole.
    if mid_roll && next > first && at == bytes.len() {
        let made = segment.with_file_name(segment_name(next));
        append(&made, &encode_header(next)[..HEADER_LEN / 2]);
        return Tear::Header;
    }
    let mut record = Vec::new();
    encode_record(&mut record, u64::MAX / 2, payload);
    append(segment, &record[..record.len() / 2]);
    Tear::Record
}

fn last_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(dir.join("data/wal"))
        .expect("wal dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_ingest_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        "wal_segment_bytes = 262144\nlake_flush_seconds = 1\nlake_compaction_seconds = 1\n",
    );
    let client = reqwest::Client::new();
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let time = cairn_model::time::format_utc_seconds(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("now")
            .as_millis() as i64,
    );
    let rounds = 12;
    let mut torn: Option<Tear> = None;
    for round in 0..=rounds {
        let mut server = spawn(dir.path());
        let creds = support::Creds::admin(&dir.path().join("data"));
        if round == 0 {
            create_store(&client, &server.base, &creds).await;
            // A trail and a log group fed by it: two more consumers the kills interrupt.
            let trail = serde_json::json!({"Name": "main", "LocalDirectory": dir.path().join("bucket"), "IsMultiRegionTrail": true});
            for (method, path, body) in [
                ("POST", "/v1/trails", trail.to_string()),
                ("POST", "/v1/trails/main/start-logging", String::new()),
                (
                    "PUT",
                    "/v1/log-groups/audit",
                    r#"{"trailName":"main"}"#.to_owned(),
                ),
            ] {
                let url = format!("{}{path}", server.base);
                let request = match method {
                    "PUT" => client.put(url),
                    _ => client.post(url),
                };
                let response = support::send(
                    request
                        .header("content-type", "application/json")
                        .body(body),
                    &creds,
                )
                .await;
                assert_eq!(response.status(), 200, "{path}");
            }
        }
        let present = history_ids(&client, &server.base, &creds).await;
        let acked_now = acked.lock().expect("acked").clone();
        let missing: Vec<_> = acked_now.difference(&present).take(5).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged events lost: {missing:?}"
        );
        let log = server.log.lock().expect("log").join("\n");
        assert!(
            log.contains("write-ahead log recovered"),
            "round {round}: no recovery report:\n{log}"
        );
        assert!(
            log.contains("must be signed"),
            "round {round}: the signing requirement is not announced:\n{log}"
        );
        let reported = |field: &str| -> u64 {
            log.lines()
                .filter(|l| l.contains("write-ahead log recovered"))
                .filter_map(|l| {
                    l.split(&format!("{field}="))
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
                .next_back()
                .unwrap_or_else(|| panic!("round {round}: recovery report without {field}:\n{log}"))
        };
        match torn.take() {
            Some(Tear::Record) => assert!(
                reported("torn_bytes_cut") > 0,
                "round {round}: the torn tail was not cut:\n{log}"
            ),
            Some(Tear::Header) => assert!(
                reported("incomplete_segments_removed") > 0,
                "round {round}: the segment with half a header was not removed:\n{log}"
            ),
            None => {}
        }
        if round == rounds {
            // The store: every event in history (each acknowledged one, and those made durable
            // by a request whose answer the kill cut off) exactly once, whatever the kills
            // interrupted (a flush, a cursor commit, a compaction's swap).
            let total = present.iter().filter(|id| id.starts_with('r')).count() as u64;
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            loop {
                let (count, distinct) = store_count(&server.base, &creds);
                assert!(
                    count == distinct,
                    "events doubled in the store: {count} rows, {distinct} ids"
                );
                if count == total {
                    break;
                }
                assert!(
                    count < total && std::time::Instant::now() < deadline,
                    "the store holds {count} of the {total} events in history"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            // The log group: the same events, each once.
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            loop {
                let ids = log_group_ids(&client, &server.base, &creds).await;
                let distinct: HashSet<&String> = ids.iter().collect();
                assert_eq!(ids.len(), distinct.len(), "events doubled in the log group");
                if ids.len() as u64 == total {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the log group holds {} of the {total} events in history",
                    ids.len()
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let _ = server.child.kill();
            let _ = server.child.wait();
            break;
        }

        // Concurrent clients until the kill.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for task in 0..4 {
            let (client, base, acked, stop, time, creds) = (
                client.clone(),
                server.base.clone(),
                acked.clone(),
                stop.clone(),
                time.clone(),
                creds.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let ids: Vec<String> = (0..10)
                        .map(|i| format!("r{round}-t{task}-b{n}-e{i}"))
                        .collect();
                    n += 1;
                    let body = format!(
                        "[{}]",
                        ids.iter()
                            .map(|id| event(id, &time))
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                    let response = support::try_send(
                        client
                            .post(format!("{base}/v1/events"))
                            .header("content-type", "application/json")
                            .body(body),
                        &creds,
                    )
                    .await;
                    let Ok(response) = response else { return };
                    if response.status() != 200 {
                        continue;
                    }
                    let Ok(text) = response.text().await else {
                        return;
                    };
                    let answer: serde_json::Value =
                        serde_json::from_str(&text).expect("json answer");
                    let mut acked = acked.lock().expect("acked");
                    for result in answer["results"].as_array().expect("results") {
                        assert_ne!(result["status"], "rejected", "{result}");
                        acked.insert(result["eventID"].as_str().expect("id").to_owned());
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..600))).await;
        server.child.kill().expect("SIGKILL");
        let _ = server.child.wait();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in tasks {
            task.await.expect("client task");
        }
        if (round + 1) % 3 == 0 {
            // In every other of these rounds the kill is also taken to have landed while the
            // writer was making the next segment, which a real kill hits only by chance.
            torn = Some(tear(
                &last_segment(dir.path()),
                (round + 1) % 6 == 0,
                event("torn", &time).as_bytes(),
            ));
        }
    }
    let total = acked.lock().expect("acked").len();
    assert!(
        total > 500,
        "too few events acknowledged to mean anything: {total}"
    );
    eprintln!("{rounds} SIGKILLs, {total} acknowledged events, none lost or doubled");
}

/// A kill between an event data store's Parquet files and its cursor commit (the failpoint
/// aborts the server there, at its first flush): after the restart the file is written again,
/// not added to, and the store holds every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_a_store_file_and_its_cursor_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), "lake_flush_seconds = 1\n");
    let client = reqwest::Client::new();
    let mut server = spawn_with(dir.path(), Some("lake_abort_after_write"));
    let creds = support::Creds::admin(&dir.path().join("data"));
    create_store(&client, &server.base, &creds).await;
    let time = cairn_model::time::format_utc_seconds(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("now")
            .as_millis() as i64,
    );
    let body = batch("r-", 50, &time);
    let response = support::try_send(
        client
            .post(format!("{}/v1/events", server.base))
            .header("content-type", "application/json")
            .body(body),
        &creds,
    )
    .await;
    // The abort may come before or after this answer; either way the events are durable once
    // acknowledged, and a request cut off is sent again below.
    let acked = response.is_ok_and(|r| r.status() == 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the failpoint did not fire"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success(), "{status}");
    let log = server.log.lock().expect("log").join("\n");
    assert!(log.contains("failpoint lake_abort_after_write"), "{log}");
    // A file beyond the cursor was left behind.
    let lake = dir.path().join("data/lake");
    let written: Vec<String> = std::fs::read_dir(&lake)
        .expect("lake")
        .flatten()
        .filter(|s| s.path().is_dir())
        .flat_map(|s| std::fs::read_dir(s.path()).expect("store").flatten())
        .flat_map(|d| std::fs::read_dir(d.path()).expect("day").flatten())
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("wal-"))
        .collect();
    assert!(!written.is_empty(), "no file written before the abort");

    // The restart reads the left-behind range again together with newer events (sent at once,
    // within the restarted feed's first flush interval), so the file it writes is named by a
    // different range: only removing the old one keeps the events single.
    write_config(dir.path(), "lake_flush_seconds = 5\n");
    let mut server = spawn(dir.path());
    let mut bodies = vec![batch("s-", 10, &time)];
    if !acked {
        bodies.push(batch("r-", 50, &time));
    }
    for body in bodies {
        let response = support::send(
            client
                .post(format!("{}/v1/events", server.base))
                .header("content-type", "application/json")
                .body(body),
            &creds,
        )
        .await;
        assert_eq!(response.status(), 200);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (all, distinct) = store_count_where(&server.base, &creds, "true");
        assert_eq!(all, distinct, "events doubled in the store");
        let (ours, _) = store_count(&server.base, &creds);
        let (later, _) = store_count_where(&server.base, &creds, "eventID LIKE 's-%'");
        if ours == 50 && later == 10 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store holds {ours} of 50 events"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
}
