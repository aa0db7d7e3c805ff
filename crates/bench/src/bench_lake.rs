//! `cairn bench lake`: six investigation queries over generated, sample-shaped events, by Cairn
//! and by DuckDB in the same run —
//! (a) Cairn on its event data store vs DuckDB on the same Parquet files, the store built the
//! way users build one from existing logs: `cairn serve` with its defaults, `cairn import` of the
//! busy tree, then the server's own compaction of the import's small files;
//! (b) Cairn's raw mode vs DuckDB's JSON reader (`read_json_objects` + `json_transform`) on the
//! same `.json.gz` trees: one of busy-account files (every account and region's events of five
//! minutes in one file) and one of many small files.

use anyhow::{bail, Context};
use cairn_lake::query::TextRow;
use cairn_lake::store::Stores;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct LakeBenchArgs {
    /// Working directory (trees, store and results are kept there for re-runs).
    #[arg(long)]
    dir: PathBuf,
    /// Events in the store and the busy-file tree.
    #[arg(long, default_value_t = 5_000_000)]
    events: usize,
    /// Events in the small-file tree (two to three per file, as a quiet account's trail writes).
    #[arg(long, default_value_t = 1_000_000)]
    small_events: usize,
    /// Python with the `duckdb` module (PyPI).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// DuckDB threads (the machine's cores by default, as Cairn uses).
    #[arg(long)]
    duckdb_threads: Option<usize>,
    /// Runs per Parquet query (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Runs per JSON query, by DuckDB and by Cairn (the median is reported). One by default:
    /// DuckDB takes half a minute per query over the busy tree.
    #[arg(long, default_value_t = 1)]
    json_runs: usize,
    /// Only generate the trees and build the store (run again to measure, so that the peak
    /// memory reported is the queries', not the generator's).
    #[arg(long)]
    generate_only: bool,
    /// Measure only `parquet` (a) or `json` (b).
    #[arg(long)]
    only: Option<String>,
    /// Print each store query's physical plan with its metrics (rows, time, pruning) after
    /// timing it.
    #[arg(long)]
    explain: bool,
    /// Run only the queries whose name contains this text (e.g. `root`).
    #[arg(long)]
    query: Option<String>,
    /// A setting added to the configuration of the server that imports the store, as a TOML
    /// line (`lake_compaction_seconds = 5`); repeatable. Default: none, the defaults users get.
    #[arg(long = "server-config", value_name = "TOML")]
    server_config: Vec<String>,
}

const ACCOUNTS: usize = 40;
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "sa-east-1",
];
const DAYS: i64 = 7;
const ERRORS: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "ThrottlingException",
    "NoSuchBucket",
    "ResourceNotFoundException",
    "ValidationException",
    "InvalidParameterValue",
];
const SG: &[&str] = &[
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
    "CreateSecurityGroup",
    "DeleteSecurityGroup",
];

fn templates() -> anyhow::Result<Vec<Value>> {
    let dir = std::env::var_os("CAIRN_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("testdata/cloudtrail-samples/_normalized"));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| {
        format!(
            "reading the sample corpus at {} (run from the repository or set CAIRN_SAMPLES)",
            dir.display()
        )
    })? {
        let path = entry?.path();
        let name = path.to_string_lossy().into_owned();
        if !name.ends_with(".ndjson") || name.contains("digests") {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                if v["eventSource"].is_string() && v["eventName"].is_string() {
                    out.push(v);
                }
            }
        }
    }
    // The store takes management events and the data events of each resource type the
    // samples hold (a data event selector names one type); the few samples it could not take
    // (data events naming no resource) are left out, so that the store holds every generated
    // event and its answers can be compared with raw mode's over the same tree.
    let selectors = cairn_selectors::Selectors::Advanced(store_selectors(&out));
    out.retain(|v| {
        let Some(map) = v.as_object() else {
            return false;
        };
        let mut encoded = Vec::new();
        cairn_model::event::derived_fields(map).encode_into(&mut encoded);
        cairn_model::fields::FieldsRef::decode(&encoded)
            .map(cairn_selectors::Subject::from_fields)
            .is_some_and(|subject| selectors.matches(&subject))
    });
    if out.is_empty() {
        bail!("no sample records in {}", dir.display());
    }
    Ok(out)
}

/// The bench store's selectors: every management event, and the data events of each resource
/// type among `templates`.
fn store_selectors(templates: &[Value]) -> Vec<cairn_selectors::AdvancedEventSelector> {
    use cairn_selectors::{AdvancedEventSelector, FieldSelector};
    let equals = |field: &str, value: &str| FieldSelector {
        field: field.into(),
        equals: vec![value.into()],
        ..FieldSelector::default()
    };
    let types: std::collections::BTreeSet<&str> = templates
        .iter()
        .filter(|v| v["eventCategory"] == "Data")
        .flat_map(|v| v["resources"].as_array().into_iter().flatten())
        .filter_map(|r| r["type"].as_str())
        .collect();
    // Cairn's own records of the import (management events of `cloudtrail.amazonaws.com`,
    // timed now) are not the tree's events: they stay out of the store.
    std::iter::once(AdvancedEventSelector {
        name: Some("management".into()),
        field_selectors: vec![
            equals("eventCategory", "Management"),
            FieldSelector {
                field: "eventSource".into(),
                not_equals: vec!["cloudtrail.amazonaws.com".into()],
                ..FieldSelector::default()
            },
        ],
    })
    .chain(types.into_iter().map(|t| AdvancedEventSelector {
        name: Some(t.to_owned()),
        field_selectors: vec![equals("eventCategory", "Data"), equals("resources.type", t)],
    }))
    .collect()
}

fn account(i: usize) -> String {
    format!("{:012}", 100_000_000_000u64 + i as u64 * 7_919)
}

/// Generated events, shaped like the samples: a sample's members, with the who, where and when
/// varied (accounts, regions, users, keys, addresses, error codes), in time order.
struct Generator {
    templates: Vec<Value>,
    rng: rand::rngs::StdRng,
    start: i64,
    step: f64,
    n: usize,
}

impl Generator {
    fn new(templates: Vec<Value>, start: i64, events: usize) -> Self {
        Self {
            templates,
            rng: rand::rngs::StdRng::seed_from_u64(7),
            start,
            step: (DAYS * 86_400_000) as f64 / events as f64,
            n: 0,
        }
    }

    /// The next event and its (account, region).
    fn next(&mut self) -> (Value, usize, usize) {
        let r = &mut self.rng;
        let mut e = self.templates[r.gen_range(0..self.templates.len())].clone();
        let time = self.start + (self.n as f64 * self.step) as i64;
        self.n += 1;
        // Traffic is skewed as in real organizations: half of it in one busy account, most of
        // it in one or two regions; the rest spread thin.
        let mut acct = 0;
        while acct + 1 < ACCOUNTS && r.gen_bool(0.5) {
            acct += 1;
        }
        let mut region = 0;
        while region + 1 < REGIONS.len() && r.gen_bool(0.4) {
            region += 1;
        }
        let user = r.gen_range(0..400);
        let key = user * 3 + r.gen_range(0..3);
        let kind = r.gen_range(0..1000);
        let account_id = account(acct);
        let (type_, arn, name) = if kind < 3 {
            ("Root", format!("arn:aws:iam::{account_id}:root"), None)
        } else if kind < 600 {
            (
                "AssumedRole",
                format!(
                    "arn:aws:sts::{account_id}:assumed-role/Role{}/user{user}",
                    user % 25
                ),
                None,
            )
        } else {
            (
                "IAMUser",
                format!("arn:aws:iam::{account_id}:user/user{user}"),
                Some(format!("user{user}")),
            )
        };
        let mut identity = json!({
            "type": type_,
            "principalId": format!("AIDA{user:016}"),
            "arn": arn,
            "accountId": account_id,
            "accessKeyId": format!("AKIA{key:016}"),
        });
        if let Some(n) = name {
            identity["userName"] = json!(n);
        }
        e["userIdentity"] = identity;
        e["eventTime"] = json!(cairn_model::time::format_utc_seconds(time));
        e["awsRegion"] = json!(REGIONS[region]);
        e["recipientAccountId"] = json!(account_id);
        e["sourceIPAddress"] = json!(format!(
            "203.0.{}.{}",
            (user * 7 + r.gen_range(0..4)) % 256,
            r.gen_range(1..255)
        ));
        e["eventID"] = json!(format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            r.gen::<u32>(),
            r.gen::<u16>(),
            r.gen_range(0..0xfff),
            r.gen_range(0..0xfff),
            r.gen::<u64>() & 0xffff_ffff_ffff
        ));
        if let Some(map) = e.as_object_mut() {
            map.remove("errorCode");
            map.remove("errorMessage");
        }
        let roll = r.gen_range(0..1000);
        if roll < 60 {
            let code = ERRORS[r.gen_range(0..ERRORS.len())];
            e["errorCode"] = json!(code);
            e["errorMessage"] = json!(format!("{code} for user{user}"));
        } else if roll < 66 {
            e["eventName"] = json!(SG[r.gen_range(0..SG.len())]);
            e["eventSource"] = json!("ec2.amazonaws.com");
        } else if roll < 70 {
            e["eventName"] = json!("ConsoleLogin");
            e["eventSource"] = json!("signin.amazonaws.com");
            e["eventType"] = json!("AwsConsoleSignIn");
            e["additionalEventData"] = json!({
                "LoginTo": "https://console.aws.amazon.com/console/home",
                "MobileVersion": "No",
                "MFAUsed": if r.gen_bool(0.3) { "No" } else { "Yes" },
            });
            e["responseElements"] = json!({"ConsoleLogin": "Success"});
        }
        (e, acct, region)
    }
}

fn minute_stamp(ms: i64) -> (String, String) {
    let s = cairn_model::time::format_utc_seconds(ms);
    (
        s[..10].replace('-', "/"),
        format!(
            "{}{}{}T{}{}Z",
            &s[0..4],
            &s[5..7],
            &s[8..10],
            &s[11..13],
            &s[14..16]
        ),
    )
}

/// Writes one log file of the tree.
fn write_log(
    root: &Path,
    acct: usize,
    region: usize,
    minute: i64,
    unique: &str,
    lines: &[String],
) -> anyhow::Result<u64> {
    let account_id = account(acct);
    let region = REGIONS[region];
    let (day, stamp) = minute_stamp(minute);
    let dir = root.join(format!("AWSLogs/{account_id}/CloudTrail/{region}/{day}"));
    std::fs::create_dir_all(&dir)?;
    let bytes = cairn_logfile::body::encode(lines);
    std::fs::write(
        dir.join(format!(
            "{account_id}_CloudTrail_{region}_{stamp}_{unique}.json.gz"
        )),
        &bytes,
    )?;
    Ok(bytes.len() as u64)
}

struct Generated {
    busy_files: usize,
    busy_bytes: u64,
    small_files: usize,
    small_bytes: u64,
}

fn generate(args: &LakeBenchArgs, start: i64) -> anyhow::Result<Generated> {
    let templates = templates()?;
    let busy = args.dir.join("tree-busy");
    let small = args.dir.join("tree-small");
    let mut g = Generated {
        busy_files: 0,
        busy_bytes: 0,
        small_files: 0,
        small_bytes: 0,
    };
    // Busy tree: five-minute files per (account, region).
    let mut generator = Generator::new(templates.clone(), start, args.events);
    let mut window: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
    let mut window_end = start + 300_000;
    let flush_window = |window: &mut BTreeMap<(usize, usize), Vec<String>>,
                        end: i64,
                        g: &mut Generated|
     -> anyhow::Result<()> {
        for ((a, r), lines) in std::mem::take(window) {
            g.busy_bytes += write_log(&busy, a, r, end, &format!("{:016}", end / 1000), &lines)?;
            g.busy_files += 1;
        }
        Ok(())
    };
    for i in 0..args.events {
        let (e, a, r) = generator.next();
        let time = cairn_model::time::parse_utc(e["eventTime"].as_str().unwrap_or_default())
            .unwrap_or(start);
        if time >= window_end {
            flush_window(&mut window, window_end, &mut g)?;
            window_end += 300_000;
        }
        window.entry((a, r)).or_default().push(e.to_string());
        if (i + 1) % 1_000_000 == 0 {
            eprintln!("  generated {} events", i + 1);
        }
    }
    flush_window(&mut window, window_end, &mut g)?;
    // Small-file tree: each account/region's events a few at a time, delivered within 15
    // minutes of the first (CloudTrail delivers in about five; raw mode relies on a day).
    let mut generator = Generator::new(templates, start, args.small_events);
    let mut pending: BTreeMap<(usize, usize), (i64, i64, Vec<String>)> = BTreeMap::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for i in 0..args.small_events {
        let (e, a, r) = generator.next();
        let time = cairn_model::time::parse_utc(e["eventTime"].as_str().unwrap_or_default())
            .unwrap_or(start);
        if pending
            .get(&(a, r))
            .is_some_and(|(first, _, _)| time - first > 900_000)
        {
            let (_, last, lines) = pending.remove(&(a, r)).unwrap_or_default();
            g.small_bytes += write_log(&small, a, r, last + 120_000, &format!("P{i:015}"), &lines)?;
            g.small_files += 1;
        }
        let (_, last, lines) = pending.entry((a, r)).or_insert((time, time, Vec::new()));
        *last = time;
        lines.push(e.to_string());
        if lines.len() >= rng.gen_range(1..=4) {
            let (_, _, lines) = pending.remove(&(a, r)).unwrap_or_default();
            g.small_bytes += write_log(&small, a, r, time + 120_000, &format!("{i:016}"), &lines)?;
            g.small_files += 1;
        }
    }
    for ((a, r), (_, last, lines)) in pending {
        g.small_bytes += write_log(
            &small,
            a,
            r,
            last + 120_000,
            &format!("END{a:05}{r:08}"),
            &lines,
        )?;
        g.small_files += 1;
    }
    Ok(g)
}

/// Builds the bench store the way users do: `cairn serve` on `data` with its defaults, a store
/// created through the API, `cairn import` of the busy tree (a child process, as typed), then
/// the server's own compaction until no day has files left to merge. What it did, with times.
async fn import_store(args: &LakeBenchArgs, data: &Path) -> anyhow::Result<Value> {
    if data.exists() {
        // A run stopped half way: start the store again.
        std::fs::remove_dir_all(data)?;
    }
    let mut server =
        crate::bench_faults::Server::start(&args.server_config, &args.dir, data, "").await?;
    let (status, created) = server
        .post(
            "/v1/event-data-stores",
            json!({
                "Name": "bench",
                "RetentionPeriod": 3653,
                "TerminationProtectionEnabled": false,
                "AdvancedEventSelectors": store_selectors(&templates()?),
            }),
        )
        .await?;
    if status != 200 {
        bail!("creating the store: {status} {created}");
    }
    let id = created["EventDataStoreArn"]
        .as_str()
        .and_then(|arn| arn.rsplit('/').next())
        .context("no store ARN")?
        .to_owned();
    let tree = args.dir.join("tree-busy");
    eprintln!("importing {} with cairn import...", tree.display());
    let started = Instant::now();
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("import")
        .arg(&tree)
        .args(["--store", "bench", "--output", "json"])
        .env("CAIRN_ENDPOINT", &server.base)
        .env("CAIRN_ACCESS_KEY_ID", &server.credentials.access_key_id)
        .env(
            "CAIRN_SECRET_ACCESS_KEY",
            &server.credentials.secret_access_key,
        )
        .env_remove("CAIRN_PROFILE")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cairn import")?;
    let import_seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("cairn import failed: {}", output.status);
    }
    let mut report: Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "cairn import's report: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    let store_dir = data.join("lake").join(&id);
    eprintln!(
        "imported in {import_seconds:.0} s; waiting for the server's compaction (every lake_compaction_seconds, 60 by default)..."
    );
    let started = Instant::now();
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        if nothing_to_merge(&store_dir, now)? {
            break;
        }
        if started.elapsed() > std::time::Duration::from_secs(3600) {
            bail!("the store was not compacted within an hour");
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let compaction_seconds = started.elapsed().as_secs_f64();
    server.kill();
    report["importSeconds"] = json!(import_seconds);
    report["compactionSeconds"] = json!(compaction_seconds);
    Ok(report)
}

/// Whether compaction has nothing left to merge in the store at `store_dir` at `now`.
fn nothing_to_merge(store_dir: &Path, now: i64) -> anyhow::Result<bool> {
    use cairn_lake::compact::{closed, plan_day, DayFile};
    for day in std::fs::read_dir(store_dir)? {
        let day = day?;
        let name = day.file_name().to_string_lossy().into_owned();
        let Some(start) = name
            .strip_prefix("date=")
            .and_then(|d| cairn_model::time::parse_utc(&format!("{d}T00:00:00Z")).ok())
        else {
            continue;
        };
        let mut files = Vec::new();
        for file in std::fs::read_dir(day.path())? {
            let file = file?;
            let path = file.path().display().to_string();
            if path.ends_with(".parquet") {
                files.push(DayFile {
                    name: path,
                    bytes: file.metadata()?.len(),
                });
            }
        }
        if !plan_day(&files, closed(start, now)).is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The six queries: (name, Cairn SQL over `events`, DuckDB SQL over `events`).
fn queries(start: i64) -> Vec<(&'static str, String, String)> {
    let day = cairn_model::time::format_utc_seconds(start + 2 * 86_400_000);
    let next = cairn_model::time::format_utc_seconds(start + 3 * 86_400_000);
    let (day, next) = (
        day.replace(['T', 'Z'], " ").trim().to_owned(),
        next.replace(['T', 'Z'], " ").trim().to_owned(),
    );
    let key = format!("AKIA{:016}", 123 * 3 + 1);
    let sg = SG
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    vec![
        (
            "top API calls by error code over a day",
            format!("SELECT errorCode, eventName, count(*) AS n FROM events WHERE eventTime >= TIMESTAMP '{day}' AND eventTime < TIMESTAMP '{next}' AND errorCode IS NOT NULL GROUP BY errorCode, eventName ORDER BY n DESC, errorCode, eventName LIMIT 20"),
            format!("SELECT errorCode, eventName, count(*) AS n FROM events WHERE eventTime >= TIMESTAMPTZ '{day}+00' AND eventTime < TIMESTAMPTZ '{next}+00' AND errorCode IS NOT NULL GROUP BY errorCode, eventName ORDER BY n DESC, errorCode, eventName LIMIT 20"),
        ),
        (
            "everything one access key did",
            format!("SELECT eventTime, eventSource, eventName, sourceIPAddress FROM events WHERE userIdentity.accessKeyId = '{key}' ORDER BY eventTime, eventName"),
            format!("SELECT eventTime, eventSource, eventName, sourceIPAddress FROM events WHERE userIdentity.accessKeyId = '{key}' ORDER BY eventTime, eventName"),
        ),
        (
            "root activity",
            "SELECT recipientAccountId, eventName, count(*) AS n FROM events WHERE userIdentity.type = 'Root' GROUP BY recipientAccountId, eventName ORDER BY n DESC, recipientAccountId, eventName LIMIT 50".to_owned(),
            "SELECT recipientAccountId, eventName, count(*) AS n FROM events WHERE userIdentity.type = 'Root' GROUP BY recipientAccountId, eventName ORDER BY n DESC, recipientAccountId, eventName LIMIT 50".to_owned(),
        ),
        (
            "console logins without MFA",
            "SELECT userIdentity.arn AS who, count(*) AS n FROM events WHERE eventName = 'ConsoleLogin' AND json_extract_scalar(additionalEventData, '$.MFAUsed') = 'No' GROUP BY userIdentity.arn ORDER BY n DESC, who LIMIT 20".to_owned(),
            "SELECT userIdentity.arn AS who, count(*) AS n FROM events WHERE eventName = 'ConsoleLogin' AND json_extract_string(additionalEventData, '$.MFAUsed') = 'No' GROUP BY userIdentity.arn ORDER BY n DESC, who LIMIT 20".to_owned(),
        ),
        (
            "security group changes in a region",
            format!("SELECT eventName, count(*) AS n FROM events WHERE awsRegion = 'eu-west-1' AND eventName IN ({sg}) GROUP BY eventName ORDER BY n DESC, eventName"),
            format!("SELECT eventName, count(*) AS n FROM events WHERE awsRegion = 'eu-west-1' AND eventName IN ({sg}) GROUP BY eventName ORDER BY n DESC, eventName"),
        ),
        (
            "distinct source IPs per user",
            "SELECT userIdentity.arn AS who, count(DISTINCT sourceIPAddress) AS ips FROM events GROUP BY userIdentity.arn ORDER BY ips DESC, who LIMIT 20".to_owned(),
            "SELECT userIdentity.arn AS who, count(DISTINCT sourceIPAddress) AS ips FROM events GROUP BY userIdentity.arn ORDER BY ips DESC, who LIMIT 20".to_owned(),
        ),
    ]
}

const DUCKDB_SCRIPT: &str = r#"
import json, sys, time, duckdb
spec = json.load(open(sys.argv[1]))
con = duckdb.connect()
con.execute(f"SET threads={spec['threads']}")
con.execute("SET TimeZone='UTC'")
con.execute(spec["view"])
out = []
for sql in spec["queries"]:
    times = []
    rows = None
    for _ in range(spec["runs"]):
        t = time.perf_counter()
        rows = con.execute(sql).fetchall()
        times.append(time.perf_counter() - t)
    times.sort()
    out.append({"seconds": times[len(times) // 2], "rows": len(rows), "first": [str(c) for c in rows[0]] if rows else []})
print(json.dumps(out))
"#;

fn duckdb(
    args: &LakeBenchArgs,
    view: &str,
    sqls: &[String],
    runs: usize,
) -> anyhow::Result<Vec<Value>> {
    let spec = json!({
        "threads": args.duckdb_threads.unwrap_or_else(cairn_lake::cores),
        "view": view,
        "queries": sqls,
        "runs": runs,
    });
    let spec_path = args.dir.join("duckdb-spec.json");
    std::fs::write(&spec_path, spec.to_string())?;
    let script = args.dir.join("duckdb-bench.py");
    std::fs::write(&script, DUCKDB_SCRIPT)?;
    let output = std::process::Command::new(&args.python)
        .arg(&script)
        .arg(&spec_path)
        .output()
        .with_context(|| format!("running {}", args.python.display()))?;
    if !output.status.success() {
        bail!(
            "DuckDB failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

async fn cairn_store(
    stores: &Stores,
    now: i64,
    sql: &str,
    runs: usize,
) -> anyhow::Result<(f64, Vec<TextRow>, u64)> {
    let mut times = Vec::new();
    let mut rows = Vec::new();
    let mut bytes = 0;
    // One session for the runs, as DuckDB keeps one connection (the server builds one per
    // query; registering the store is not what is measured).
    let ctx = store_session(stores, now).await?;
    let sql = on_store(sql);
    for _ in 0..runs {
        let t = Instant::now();
        let (batches, stats) = cairn_lake::query::run(&ctx, &sql).await?;
        times.push(t.elapsed().as_secs_f64());
        rows = cairn_lake::query::rows_as_text(&batches)?;
        bytes = stats.bytes_scanned;
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], rows, bytes))
}

/// A session with the bench store registered, as the server's queries see it at `now`.
async fn store_session(
    stores: &Stores,
    now: i64,
) -> anyhow::Result<cairn_lake::datafusion::prelude::SessionContext> {
    let ctx = cairn_lake::query::session();
    cairn_lake::query::register_store(&ctx, stores, &stores.get("bench")?, now).await?;
    Ok(ctx)
}

/// A query written for the table `events`, on the bench store.
fn on_store(sql: &str) -> String {
    sql.replace("FROM events", "FROM bench")
}

/// The plan of a store query, run once, with its metrics.
async fn explain_store(stores: &Stores, now: i64, sql: &str) -> anyhow::Result<String> {
    let ctx = store_session(stores, now).await?;
    let plan = ctx
        .sql(&on_store(sql))
        .await?
        .create_physical_plan()
        .await?;
    cairn_lake::query::execute(&ctx, plan.clone()).await?;
    let text =
        cairn_lake::datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
            plan.as_ref(),
        )
        .indent(true)
        .to_string();
    Ok(text)
}

async fn cairn_raw(
    tree: &Path,
    sql: &str,
) -> anyhow::Result<(f64, Vec<TextRow>, cairn_lake::raw::ScanReport)> {
    let t = Instant::now();
    let (batches, _, report) = cairn_lake::query_tree(
        cairn_lake::raw::TreeSource::Dir(tree.to_path_buf()),
        sql,
        cairn_lake::raw::DEFAULT_DELIVERY_BOUND_MS,
    )
    .await?;
    let secs = t.elapsed().as_secs_f64();
    Ok((secs, cairn_lake::query::rows_as_text(&batches)?, report))
}

/// DuckDB's fastest JSON form here: objects read whole, then `json_transform` to the members
/// the queries use.
fn json_view(tree: &Path) -> String {
    let shape = r#"{"Records":[{"eventTime":"VARCHAR","eventSource":"VARCHAR","eventName":"VARCHAR","awsRegion":"VARCHAR","sourceIPAddress":"VARCHAR","errorCode":"VARCHAR","recipientAccountId":"VARCHAR","additionalEventData":"JSON","userIdentity":{"type":"VARCHAR","arn":"VARCHAR","accessKeyId":"VARCHAR"}}]}"#;
    format!(
        "CREATE VIEW events AS SELECT e.eventTime::TIMESTAMPTZ AS eventTime, e.eventSource AS eventSource, e.eventName AS eventName, e.awsRegion AS awsRegion, e.sourceIPAddress AS sourceIPAddress, e.errorCode AS errorCode, e.recipientAccountId AS recipientAccountId, e.additionalEventData AS additionalEventData, e.userIdentity AS userIdentity FROM (SELECT unnest(json_transform(json, '{shape}').Records) AS e FROM read_json_objects('{}/AWSLogs/*/CloudTrail/*/*/*/*/*.json.gz', format='auto', compression='gzip'))",
        tree.display()
    )
}

/// `cairn bench lake`.
pub async fn lake(args: LakeBenchArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let marker = args.dir.join("generated.json");
    let start = cairn_model::time::parse_utc("2026-11-01T00:00:00Z").expect("start");
    let now = start + (DAYS + 1) * 86_400_000;
    let generated: Value = if marker.exists() {
        serde_json::from_slice(&std::fs::read(&marker)?)?
    } else {
        eprintln!(
            "generating {} events (busy tree + store) and {} (small-file tree) in {}",
            args.events,
            args.small_events,
            args.dir.display()
        );
        let t = Instant::now();
        let a = args.dir.clone();
        let events = args.events;
        let small_events = args.small_events;
        let g = tokio::task::spawn_blocking(move || {
            generate(
                &LakeBenchArgs {
                    dir: a,
                    events,
                    small_events,
                    python: PathBuf::new(),
                    duckdb_threads: None,
                    runs: 1,
                    json_runs: 1,
                    generate_only: true,
                    only: None,
                    explain: false,
                    query: None,
                    server_config: Vec::new(),
                },
                start,
            )
        })
        .await??;
        let v = json!({
            "events": args.events, "small_events": args.small_events,
            "busy_files": g.busy_files, "busy_bytes": g.busy_bytes,
            "small_files": g.small_files, "small_bytes": g.small_bytes,
            "seconds": t.elapsed().as_secs_f64(),
        });
        std::fs::write(&marker, v.to_string())?;
        v
    };
    eprintln!("data: {generated}");
    let data = args.dir.join("cairn-data");
    let imported_marker = args.dir.join("imported.json");
    let imported: Value = if imported_marker.exists() {
        serde_json::from_slice(&std::fs::read(&imported_marker)?)?
    } else {
        let v = import_store(&args, &data).await?;
        std::fs::write(&imported_marker, v.to_string())?;
        v
    };
    eprintln!("store: {imported}");
    if args.generate_only {
        return Ok(());
    }
    let stores = Stores::open(&data.join("lake"), "us-east-1", "111122223333")?;
    let store = stores.get("bench")?;
    let (store_files, parquet_bytes) = stores
        .files(&store)?
        .iter()
        .try_fold((0usize, 0u64), |(n, bytes), f| -> anyhow::Result<_> {
            Ok((n + 1, bytes + std::fs::metadata(f)?.len()))
        })?;
    let qs: Vec<_> = queries(start)
        .into_iter()
        .filter(|(name, _, _)| args.query.as_deref().is_none_or(|q| name.contains(q)))
        .collect();
    let mut report = String::new();
    let mut line = |s: String| {
        println!("{s}");
        report.push_str(&s);
        report.push('\n');
    };
    line(format!(
        "cairn bench lake: {} events; DuckDB {} with {} threads; Cairn on {} cores",
        generated["events"],
        duckdb_version(&args.python),
        args.duckdb_threads.unwrap_or_else(cairn_lake::cores),
        cairn_lake::cores()
    ));

    let part = |name: &str| args.only.as_deref().is_none_or(|o| o == name);
    // The store's answers, which raw mode over the busy tree (the same events) must repeat.
    let mut store_results: BTreeMap<&str, Vec<TextRow>> = BTreeMap::new();
    // (a) Parquet.
    if part("parquet") {
        let parquet_glob = format!("{}/**/*.parquet", stores.dir(&store).display());
        let view = format!("CREATE VIEW events AS SELECT * FROM read_parquet('{parquet_glob}')");
        let duck = duckdb(
            &args,
            &view,
            &qs.iter().map(|q| q.2.clone()).collect::<Vec<_>>(),
            args.runs,
        )?;
        line(format!(
            "\n(a) store built by `cairn import` of the busy tree ({} events imported in {:.0} s, {} Parquet files written), then compacted by the server in {:.0} s: {store_files} Parquet files, {:.1} MB (zstd); median of {} runs",
            imported["eventsImported"],
            imported["importSeconds"].as_f64().unwrap_or(0.0),
            imported["parquetFilesWritten"],
            imported["compactionSeconds"].as_f64().unwrap_or(0.0),
            parquet_bytes as f64 / 1e6,
            args.runs
        ));
        line("| query | Cairn (store) | DuckDB (Parquet) | Cairn / DuckDB | rows |".into());
        line("|---|---|---|---|---|".into());
        for (i, (name, sql, _)) in qs.iter().enumerate() {
            let (secs, result, _) = cairn_store(&stores, now, sql, args.runs).await?;
            if args.explain {
                eprintln!("{name}:\n{}", explain_store(&stores, now, sql).await?);
            }
            let rows = result.len();
            store_results.insert(*name, result);
            let (d, mismatch) = duck_answer(&duck[i], name, rows);
            if let Some(warning) = mismatch {
                line(warning);
            }
            line(format!(
                "| {name} | {:.0} ms | {:.0} ms | {:.2}× | {rows} |",
                secs * 1e3,
                d * 1e3,
                secs / d
            ));
        }
    }
    // (b) JSON trees.
    for (label, tree, files_key, bytes_key, events_key) in [
        (
            "busy-account files",
            args.dir.join("tree-busy"),
            "busy_files",
            "busy_bytes",
            "events",
        ),
        (
            "small files",
            args.dir.join("tree-small"),
            "small_files",
            "small_bytes",
            "small_events",
        ),
    ] {
        if !part("json") {
            continue;
        }
        let json_runs = args.json_runs.max(1);
        let duck = duckdb(
            &args,
            &json_view(&tree),
            &qs.iter().map(|q| q.2.clone()).collect::<Vec<_>>(),
            json_runs,
        )?;
        line(format!(
            "\n(b) raw mode, {label}: {} events in {} files, {:.1} MB gzip; {}",
            generated[events_key],
            generated[files_key],
            generated[bytes_key].as_f64().unwrap_or(0.0) / 1e6,
            if json_runs == 1 {
                "one run each".to_owned()
            } else {
                format!("median of {json_runs} runs each")
            }
        ));
        line("| query | Cairn (raw) | DuckDB (read_json_objects + json_transform) | DuckDB / Cairn | files read | ruled out by text (files / records) | rows |".into());
        line("|---|---|---|---|---|---|---|".into());
        for (i, (name, sql, _)) in qs.iter().enumerate() {
            let mut times = Vec::new();
            let (mut result, mut scan) = (Vec::new(), cairn_lake::raw::ScanReport::default());
            for _ in 0..json_runs {
                let (secs, r, report) = cairn_raw(&tree, sql).await?;
                times.push(secs);
                (result, scan) = (r, report);
            }
            times.sort_by(f64::total_cmp);
            let secs = times[times.len() / 2];
            let rows = result.len();
            if events_key == "events" {
                if let Some(expected) = store_results.get(*name) {
                    if *expected != result {
                        line(format!(
                            "WARNING: {name}: raw mode and the store answer differently"
                        ));
                    }
                }
            }
            let (d, mismatch) = duck_answer(&duck[i], name, rows);
            if let Some(warning) = mismatch {
                line(warning);
            }
            line(format!(
                "| {name} | {:.2} s | {:.2} s | {:.1}× | {} of {} | {} / {} | {rows} |",
                secs,
                d,
                d / secs,
                scan.files_read,
                scan.files_listed,
                scan.files_ruled_out,
                scan.records_ruled_out
            ));
        }
        let (inflated, bytes) = floor(&tree, false).await?;
        let (checked, _) = floor(&tree, true).await?;
        line(format!(
            "Baselines, the same run, every log file of the tree on {} threads: read and inflated (libdeflate, as raw mode does), nothing parsed: {inflated:.2} s for {:.2} GB of JSON; read, inflated and its JSON checked by `serde_json` (nothing built): {checked:.2} s",
            cairn_lake::cores(),
            bytes as f64 / 1e9
        ));
    }
    line(format!(
        "\nCairn's peak resident memory over the whole run: {:.0} MB",
        peak_rss_mb()
    ));
    let mut f = std::fs::File::create(args.dir.join("report.md"))?;
    f.write_all(report.as_bytes())?;
    Ok(())
}

/// The floor under a raw-mode scan of `tree`: every log file read and inflated the way raw
/// mode does it (one thread per core, each reusing its buffers and libdeflate inflater);
/// with `check`, also its JSON checked by `serde_json` with nothing built (the cost of
/// checking alone, with Rust's usual JSON parser). Seconds, and bytes of JSON.
async fn floor(tree: &Path, check: bool) -> anyhow::Result<(f64, u64)> {
    let source = cairn_lake::raw::TreeSource::Dir(tree.to_path_buf());
    let t = Instant::now();
    let table = cairn_lake::raw::TreeTable::open(source, None).await?;
    let files: Vec<&str> = table.files().iter().map(|f| f.location.as_str()).collect();
    let threads = cairn_lake::cores();
    let bytes = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|k| {
                let files = &files;
                scope.spawn(move || -> anyhow::Result<u64> {
                    let mut inflater = cairn_lake::raw::Inflater::new();
                    let mut buffer = Vec::new();
                    let mut compressed = Vec::new();
                    let mut opener = cairn_lake::raw::Opener::default();
                    let mut total = 0u64;
                    for location in files.iter().skip(k).step_by(threads) {
                        let bytes = opener
                            .read_into(location, &mut compressed)
                            .map_err(|e| anyhow::anyhow!("{location}: {e}"))?;
                        let json = cairn_lake::raw::gunzip(bytes, &mut inflater, &mut buffer)
                            .map_err(|e| anyhow::anyhow!("{location}: {e}"))?;
                        if check {
                            serde_json::from_slice::<serde::de::IgnoredAny>(json)
                                .map_err(|e| anyhow::anyhow!("{location}: {e}"))?;
                        }
                        total += json.len() as u64;
                    }
                    Ok(total)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("an inflating thread"))
            .sum::<anyhow::Result<u64>>()
    })?;
    Ok((t.elapsed().as_secs_f64(), bytes))
}

/// DuckDB's time for one query, and a warning if its row count is not Cairn's `rows`.
fn duck_answer(duck: &Value, name: &str, rows: usize) -> (f64, Option<String>) {
    let drows = duck["rows"].as_u64().unwrap_or(0) as usize;
    (
        duck["seconds"].as_f64().unwrap_or(f64::NAN),
        (rows != drows).then(|| format!("WARNING: {name}: Cairn {rows} rows, DuckDB {drows}")),
    )
}

/// This process's peak resident set (Linux `VmHWM`), MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn duckdb_version(python: &Path) -> String {
    std::process::Command::new(python)
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into())
}
