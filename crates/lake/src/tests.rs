//! Golden investigation queries over the sample corpus: every answer is computed independently
//! from the records with serde_json, and the same queries run in raw mode (a CloudTrail tree)
//! and in store mode (Parquet written by [`store::Stores`]) must give the same rows.

use super::*;
use crate::query::file_scans;
use cairn_model::provenance::Provenance;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Every record of the sample corpus (CloudTrail records only).
pub(crate) fn sample_records() -> Vec<Value> {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/cloudtrail-samples");
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(root.join("_normalized"))
        .expect("samples")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for path in names {
        let name = path.to_string_lossy().into_owned();
        if !name.ends_with(".ndjson") || name.contains("digests") {
            continue;
        }
        for line in std::fs::read_to_string(&path).expect("read").lines() {
            if !line.trim().is_empty() {
                out.push(serde_json::from_str(line).expect("sample json"));
            }
        }
    }
    out
}

fn account_of(r: &Value) -> String {
    r["recipientAccountId"]
        .as_str()
        .unwrap_or("111122223333")
        .to_owned()
}

fn time_of(r: &Value) -> Option<i64> {
    // ISO-8601 or the `2024-01-01 00:00:00.000` form of Lake/Athena exports (UTC).
    let t = r["eventTime"].as_str()?;
    let iso = if t.as_bytes().get(10) == Some(&b' ') {
        format!("{}Z", t.replacen(' ', "T", 1))
    } else {
        t.to_owned()
    };
    cairn_model::time::parse_utc(&iso).ok()
}

/// Writes `records` as a CloudTrail tree: per (account, region, hour) files of at most five records,
/// keyed as AWS keys them (the delivery minute just after the newest event), plus a digest to
/// skip and a damaged file to report.
fn write_tree(dir: &std::path::Path, records: &[Value]) {
    // As CloudTrail delivers: a file holds one account's and region's events of a few minutes.
    let mut groups: BTreeMap<(String, String, i64), Vec<&Value>> = BTreeMap::new();
    for r in records {
        let region = r["awsRegion"].as_str().unwrap_or("us-east-1").to_owned();
        let hour = time_of(r).unwrap_or(0).div_euclid(3_600_000);
        groups
            .entry((account_of(r), region, hour))
            .or_default()
            .push(r);
    }
    for ((account, region, hour), group) in groups {
        for (n, chunk) in group.chunks(5).enumerate() {
            let newest = chunk.iter().filter_map(|r| time_of(r)).max().unwrap_or(0);
            let stamp = cairn_model::time::format_utc_seconds(newest + 60_000);
            let day = &stamp[..10];
            let minute = format!(
                "{}{}{}T{}{}Z",
                &stamp[0..4],
                &stamp[5..7],
                &stamp[8..10],
                &stamp[11..13],
                &stamp[14..16]
            );
            let dir = dir.join(format!(
                "AWSLogs/{account}/CloudTrail/{region}/{}",
                day.replace('-', "/")
            ));
            std::fs::create_dir_all(&dir).expect("mkdir");
            let lines: Vec<String> = chunk.iter().map(|r| r.to_string()).collect();
            std::fs::write(
                dir.join(format!(
                    "{account}_CloudTrail_{region}_{minute}_{hour:08}{n:08}.json.gz"
                )),
                cairn_logfile::body::encode(&lines),
            )
            .expect("write");
        }
    }
    let odd = dir.join("AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01");
    std::fs::create_dir_all(&odd).expect("mkdir");
    std::fs::write(
        odd.join("111122223333_CloudTrail_us-east-1_20261201T0000Z_BROKENBROKENBROK.json.gz"),
        b"not gzip",
    )
    .expect("write");
    let digests = dir.join("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/12/01");
    std::fs::create_dir_all(&digests).expect("mkdir");
    std::fs::write(
        digests
            .join("111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20261201T000000Z.json.gz"),
        cairn_logfile::body::encode(&["{}".to_owned()]),
    )
    .expect("write");
}

type Rows = Vec<Vec<String>>;

fn text_rows(batches: &[RecordBatch]) -> Rows {
    query::rows_as_text(batches)
        .expect("render")
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|(_, v)| v.unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .collect()
}

fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

fn count_rows(n: usize) -> Rows {
    vec![vec![n.to_string()]]
}

/// Sorted `(key, count)` rows: count descending, key ascending, at most `limit`.
fn top(counts: BTreeMap<String, usize>, limit: usize) -> Rows {
    let mut v: Vec<(String, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter()
        .take(limit)
        .map(|(k, n)| vec![k, n.to_string()])
        .collect()
}

fn json_member<'a>(r: &'a Value, column: &str, member: &str) -> Option<&'a str> {
    r.get(column)?.get(member)?.as_str()
}

struct Golden {
    name: &'static str,
    sql: String,
    expected: Rows,
}

/// The investigation queries and their answers, computed from the records.
fn goldens(records: &[Value]) -> Vec<Golden> {
    let mut g = Vec::new();
    g.push(Golden {
        name: "every event",
        sql: "SELECT count(*) FROM events".into(),
        expected: count_rows(records.len()),
    });
    g.push(Golden {
        name: "root activity",
        sql: "SELECT eventName, count(*) AS n FROM events WHERE userIdentity.type = 'Root' GROUP BY eventName ORDER BY n DESC, eventName".into(),
        expected: top(
            records
                .iter()
                .filter(|r| r["userIdentity"]["type"] == "Root")
                .fold(BTreeMap::new(), |mut m, r| {
                    *m.entry(s(&r["eventName"]).unwrap_or("").to_owned()).or_default() += 1;
                    m
                }),
            usize::MAX,
        ),
    });
    g.push(Golden {
        name: "top API calls by error code",
        sql: "SELECT errorCode, count(*) AS n FROM events WHERE errorCode IS NOT NULL GROUP BY errorCode ORDER BY n DESC, errorCode LIMIT 5".into(),
        expected: top(
            records.iter().filter_map(|r| s(&r["errorCode"])).fold(
                BTreeMap::new(),
                |mut m, c| {
                    *m.entry(c.to_owned()).or_default() += 1;
                    m
                },
            ),
            5,
        ),
    });
    let mut no_mfa: Vec<String> = records
        .iter()
        .filter(|r| {
            r["eventName"] == "ConsoleLogin"
                && json_member(r, "additionalEventData", "MFAUsed") == Some("No")
        })
        .filter_map(|r| s(&r["eventID"]).map(str::to_owned))
        .collect();
    no_mfa.sort();
    g.push(Golden {
        name: "console logins without MFA",
        sql: "SELECT eventID FROM events WHERE eventName = 'ConsoleLogin' AND json_extract_scalar(additionalEventData, '$.MFAUsed') = 'No' AND eventID IS NOT NULL ORDER BY eventID".into(),
        expected: no_mfa.into_iter().map(|id| vec![id]).collect(),
    });
    g.push(Golden {
        name: "failed console logins",
        sql: "SELECT count(*) FROM events WHERE eventName = 'ConsoleLogin' AND json_extract_scalar(responseElements, '$.ConsoleLogin') = 'Failure'".into(),
        expected: count_rows(
            records
                .iter()
                .filter(|r| {
                    r["eventName"] == "ConsoleLogin"
                        && json_member(r, "responseElements", "ConsoleLogin") == Some("Failure")
                })
                .count(),
        ),
    });
    // The busiest access key, and everything it did.
    let keys = records
        .iter()
        .filter_map(|r| s(&r["userIdentity"]["accessKeyId"]))
        .fold(BTreeMap::<String, usize>::new(), |mut m, k| {
            *m.entry(k.to_owned()).or_default() += 1;
            m
        });
    let key = top(keys, 1)[0][0].clone();
    g.push(Golden {
        name: "everything one access key did",
        sql: format!("SELECT eventSource, eventName, count(*) AS n FROM events WHERE userIdentity.accessKeyId = '{key}' GROUP BY eventSource, eventName ORDER BY n DESC, eventSource, eventName"),
        expected: {
            let mut m: BTreeMap<(String, String), usize> = BTreeMap::new();
            for r in records
                .iter()
                .filter(|r| s(&r["userIdentity"]["accessKeyId"]) == Some(key.as_str()))
            {
                *m.entry((
                    s(&r["eventSource"]).unwrap_or("").to_owned(),
                    s(&r["eventName"]).unwrap_or("").to_owned(),
                ))
                .or_default() += 1;
            }
            let mut v: Vec<_> = m.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v.into_iter()
                .map(|((src, name), n)| vec![src, name, n.to_string()])
                .collect()
        },
    });
    const SG: &[&str] = &[
        "AuthorizeSecurityGroupIngress",
        "AuthorizeSecurityGroupEgress",
        "RevokeSecurityGroupIngress",
        "RevokeSecurityGroupEgress",
        "CreateSecurityGroup",
        "DeleteSecurityGroup",
    ];
    g.push(Golden {
        name: "security group changes per region",
        sql: format!(
            "SELECT awsRegion, count(*) AS n FROM events WHERE eventName IN ({}) GROUP BY awsRegion ORDER BY n DESC, awsRegion",
            SG.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
        ),
        expected: top(
            records
                .iter()
                .filter(|r| s(&r["eventName"]).is_some_and(|n| SG.contains(&n)))
                .fold(BTreeMap::new(), |mut m, r| {
                    *m.entry(s(&r["awsRegion"]).unwrap_or("").to_owned()).or_default() += 1;
                    m
                }),
            usize::MAX,
        ),
    });
    g.push(Golden {
        name: "distinct source IPs per user",
        sql: "SELECT userIdentity.arn AS who, count(DISTINCT sourceIPAddress) AS ips FROM events WHERE userIdentity.arn IS NOT NULL GROUP BY userIdentity.arn ORDER BY ips DESC, who LIMIT 10".into(),
        expected: {
            let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for r in records {
                if let Some(arn) = s(&r["userIdentity"]["arn"]) {
                    let set = m.entry(arn.to_owned()).or_default();
                    if let Some(ip) = s(&r["sourceIPAddress"]) {
                        set.insert(ip.to_owned());
                    }
                }
            }
            top(m.into_iter().map(|(k, v)| (k, v.len())).collect(), 10)
        },
    });
    const TAMPER: &[&str] = &[
        "StopLogging",
        "DeleteTrail",
        "UpdateTrail",
        "PutEventSelectors",
    ];
    g.push(Golden {
        name: "trail tampering",
        sql: "SELECT count(*) FROM events WHERE eventSource = 'cloudtrail.amazonaws.com' AND eventName IN ('StopLogging', 'DeleteTrail', 'UpdateTrail', 'PutEventSelectors')".into(),
        expected: count_rows(
            records
                .iter()
                .filter(|r| {
                    r["eventSource"] == "cloudtrail.amazonaws.com"
                        && s(&r["eventName"]).is_some_and(|n| TAMPER.contains(&n))
                })
                .count(),
        ),
    });
    g.push(Golden {
        name: "buckets touched",
        sql: "SELECT json_extract_scalar(requestParameters, '$.bucketName') AS bucket, count(*) AS n FROM events WHERE json_extract_scalar(requestParameters, '$.bucketName') IS NOT NULL GROUP BY json_extract_scalar(requestParameters, '$.bucketName') ORDER BY n DESC, bucket LIMIT 5".into(),
        expected: top(
            records
                .iter()
                .filter_map(|r| json_member(r, "requestParameters", "bucketName"))
                .fold(BTreeMap::new(), |mut m, b| {
                    *m.entry(b.to_owned()).or_default() += 1;
                    m
                }),
            5,
        ),
    });
    g.push(Golden {
        name: "resources by type",
        sql: "SELECT r['type'] AS t, count(*) AS n FROM (SELECT unnest(resources) AS r FROM events) WHERE r['type'] IS NOT NULL GROUP BY r['type'] ORDER BY n DESC, t LIMIT 5".into(),
        expected: top(
            records
                .iter()
                .flat_map(|r| r["resources"].as_array().cloned().unwrap_or_default())
                .filter_map(|res| res["type"].as_str().map(str::to_owned))
                .fold(BTreeMap::new(), |mut m, t| {
                    *m.entry(t).or_default() += 1;
                    m
                }),
            5,
        ),
    });
    let since = cairn_model::time::parse_utc("2021-01-01T00:00:00Z").expect("time");
    let until = cairn_model::time::parse_utc("2024-01-01T00:00:00Z").expect("time");
    g.push(Golden {
        name: "events in a time window per account",
        sql: "SELECT recipientAccountId, count(*) AS n FROM events WHERE eventTime >= TIMESTAMP '2021-01-01T00:00:00Z' AND eventTime < TIMESTAMP '2024-01-01T00:00:00Z' AND recipientAccountId IS NOT NULL GROUP BY recipientAccountId ORDER BY n DESC, recipientAccountId".into(),
        expected: top(
            records
                .iter()
                .filter(|r| time_of(r).is_some_and(|t| t >= since && t < until))
                .filter_map(|r| s(&r["recipientAccountId"]))
                .fold(BTreeMap::new(), |mut m, a| {
                    *m.entry(a.to_owned()).or_default() += 1;
                    m
                }),
            usize::MAX,
        ),
    });
    let denied = [
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
    ];
    g.push(Golden {
        name: "access denied per principal",
        sql: "SELECT coalesce(userIdentity.arn, userIdentity.type) AS who, count(*) AS n FROM events WHERE errorCode IN ('AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation') GROUP BY coalesce(userIdentity.arn, userIdentity.type) ORDER BY n DESC, who".into(),
        expected: top(
            records
                .iter()
                .filter(|r| s(&r["errorCode"]).is_some_and(|c| denied.contains(&c)))
                .fold(BTreeMap::new(), |mut m, r| {
                    let who = s(&r["userIdentity"]["arn"])
                        .or(s(&r["userIdentity"]["type"]))
                        .unwrap_or("NULL");
                    *m.entry(who.to_owned()).or_default() += 1;
                    m
                }),
            usize::MAX,
        ),
    });
    g
}

async fn run_raw(
    dir: &std::path::Path,
    sql: &str,
) -> (Rows, query::QueryStatistics, raw::ScanReport) {
    let (batches, stats, report) = query_tree(
        raw::TreeSource::Dir(dir.to_path_buf()),
        sql,
        raw::DEFAULT_DELIVERY_BOUND_MS,
    )
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
    (text_rows(&batches), stats, report)
}

#[tokio::test]
async fn golden_queries_agree_with_the_records_in_raw_and_store_mode() {
    // Records without an event time cannot enter a store (they are reported by import); the
    // comparison is over the rest.
    let records: Vec<Value> = sample_records()
        .into_iter()
        .filter(|r| time_of(r).is_some())
        .collect();
    assert!(records.len() > 500, "{}", records.len());
    let tree = tempfile::tempdir().expect("tempdir");
    write_tree(tree.path(), &records);

    // The store: the same records, written as Parquet.
    let data = tempfile::tempdir().expect("tempdir");
    let stores = store::Stores::open(data.path(), "us-east-1", "111122223333").expect("stores");
    let eds = stores
        .create("golden", store::StoreChanges::default(), 0, 0)
        .expect("create");
    let raws: Vec<Box<serde_json::value::RawValue>> = records
        .iter()
        .map(|r| serde_json::value::to_raw_value(r).expect("raw"))
        .collect();
    let refs: Vec<(&serde_json::value::RawValue, Provenance)> = raws
        .iter()
        .map(|r| (r.as_ref(), Provenance::Unknown))
        .collect();
    let (written, added) = stores.write(&eds, &refs, "golden").expect("write");
    assert_eq!((written.events, added.malformed), (records.len(), 0));
    // Retention long enough for the oldest sample (2014) at "now" (2016).
    let eds = stores
        .update(
            "golden",
            store::StoreChanges {
                retention_period: Some(store::MAX_RETENTION_DAYS),
                ..Default::default()
            },
            0,
        )
        .expect("update");
    let now = cairn_model::time::parse_utc("2016-01-01T00:00:00Z").expect("now");
    let ctx = query::session();
    query::register_store(&ctx, &stores, &eds, now)
        .await
        .expect("register");

    let goldens = goldens(&records);
    assert!(goldens.len() >= 10);
    for golden in goldens {
        assert!(
            !golden.expected.is_empty() && golden.expected != count_rows(0),
            "{}: the corpus must exercise the query",
            golden.name
        );
        let (raw_rows, _, report) = run_raw(tree.path(), &golden.sql).await;
        assert_eq!(raw_rows, golden.expected, "raw mode: {}", golden.name);
        assert!(
            report.malformed_files.len() <= 1,
            "only the damaged file fails"
        );
        let store_sql = golden.sql.replace("FROM events", "FROM golden");
        let (batches, stats) = query::run(&ctx, &store_sql)
            .await
            .unwrap_or_else(|e| panic!("{store_sql}: {e}"));
        assert_eq!(
            text_rows(&batches),
            golden.expected,
            "store mode: {}",
            golden.name
        );
        assert!(
            stats.events_matched <= stats.events_scanned,
            "{}",
            golden.name
        );
    }
}

#[tokio::test]
async fn raw_mode_reports_damage_skips_digests_and_prunes_by_key() {
    let records = sample_records();
    let tree = tempfile::tempdir().expect("tempdir");
    write_tree(tree.path(), &records);
    let (rows, stats, report) = run_raw(tree.path(), "SELECT count(*) FROM events").await;
    assert_eq!(rows, count_rows(records.len()));
    assert_eq!(report.added.records, records.len());
    assert_eq!(report.malformed_files.len(), 1);
    assert!(report.malformed_files[0].0.contains("BROKEN"));
    assert_eq!(report.skipped, 1, "the digest is skipped");
    assert!(stats.bytes_scanned > 0);
    assert_eq!(report.files_pruned, 0);

    // Account and region predicates read only that account's and region's files.
    let (account, region) = ("777788889999", "us-east-1");
    let expected = records
        .iter()
        .filter(|r| r["recipientAccountId"] == account && r["awsRegion"] == region)
        .count();
    let (rows, _, report) = run_raw(
        tree.path(),
        &format!("SELECT count(*) FROM events WHERE recipientAccountId = '{account}' AND awsRegion = '{region}'"),
    )
    .await;
    assert_eq!(rows, count_rows(expected));
    assert!(report.files_pruned > 0 && report.files_read < report.files_listed);

    // A time window reads only the files delivered in it.
    let since = cairn_model::time::parse_utc("2023-01-01T00:00:00Z").expect("time");
    let expected = records
        .iter()
        .filter(|r| time_of(r).is_some_and(|t| t >= since))
        .count();
    let (rows, _, report) = run_raw(
        tree.path(),
        "SELECT count(*) FROM events WHERE eventTime >= TIMESTAMP '2023-01-01 00:00:00'",
    )
    .await;
    assert_eq!(rows, count_rows(expected));
    assert!(report.files_pruned > 0);

    // A comparison of the time rendered as text bounds no file: `'D 23:59:59'` sorts before
    // every rendering of a time on day D (`DTHH:MM:SSZ`), so the whole day matches.
    let mut times: Vec<i64> = records.iter().filter_map(time_of).collect();
    times.sort_unstable();
    let day = cairn_model::time::format_utc_seconds(times[times.len() / 2])[..10].to_owned();
    let midnight = cairn_model::time::parse_utc(&format!("{day}T00:00:00Z")).expect("day");
    let expected = times.iter().filter(|&&t| t >= midnight).count();
    let (rows, _, _) = run_raw(
        tree.path(),
        &format!(
            "SELECT count(*) FROM events WHERE CAST(eventTime AS VARCHAR) >= '{day} 23:59:59'"
        ),
    )
    .await;
    assert_eq!(rows, count_rows(expected), "{day}");

    // A bad query is an error naming the problem.
    let err = query_tree(
        raw::TreeSource::Dir(tree.path().to_path_buf()),
        "SELECT nope FROM events",
        None,
    )
    .await
    .expect_err("no such column");
    assert!(err.to_string().contains("nope"), "{err}");
    // Only queries.
    let err = query_tree(
        raw::TreeSource::Dir(tree.path().to_path_buf()),
        "CREATE TABLE x AS SELECT 1",
        None,
    )
    .await
    .expect_err("read-only");
    assert_eq!(err.code(), "InvalidQueryStatementException");
}

#[test]
fn notification_records_and_non_objects_are_not_taken() {
    let mut b = columns::EventsBuilder::new(None);
    let added = b
        .append_file(
            br#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put"},
            {"eventSource":"s3.amazonaws.com","eventName":"GetObject","eventTime":"2026-12-01T00:00:00Z","requestParameters":{"policy":"{\"aws:SourceIp\":1}"}},
            7]}"#,
        )
        .expect("file");
    assert_eq!(
        added,
        columns::Added {
            records: 1,
            foreign: 1,
            malformed: 1
        }
    );
    assert_eq!(b.finish().num_rows(), 1);
    // However the member is spaced or spelled, a notification is recognised; a file whose only
    // `"aws:` is inside a value is read in one pass and keeps every record.
    for (file, records, foreign) in [
        (&br#"{"Records":[{"eventSource" :	"aws:ses","eventName":"x"},{"eventName":"y"}]}"#[..], 2, 1),
        (br#"{"Records":[{"eventSourc\u0065":"aws:s3"},{"eventName":"y"}]}"#, 2, 1),
        (br#"{"Records":[{"eventSource":"iam.amazonaws.com","requestParameters":{"k":"aws:x","c":"\"aws:y\""}},{"eventName":"y"}]}"#, 2, 0),
        (br#"{"Records":[{"eventName":"y"},{"eventSource":"\u0061ws:sns"}]}"#, 2, 1),
        (br#"{"Records":[{"eventName":"y"},{"eventSource":"s3.amazonaws.com","eventName":"x"},{"eventName":"z","eventSource":"aws:s3"}]}"#, 3, 1),
        (br#"{"Records":[{"eventSource":"s\u0033.amazonaws.com"},{"eventName":"y"}]}"#, 2, 0),
    ] {
        let added = b.append_file(file).expect("file");
        assert_eq!(
            (added.records, added.foreign),
            (records - foreign, foreign),
            "{}",
            String::from_utf8_lossy(file)
        );
        // The same when the query reads only `eventName`: the scan then builds no `eventSource`.
        let mut names = columns::EventsBuilder::new(Some(&[4]));
        let added = names.append_file(file).expect("file");
        assert_eq!((added.records, added.foreign), (records - foreign, foreign));
        assert_eq!(names.finish().num_rows(), records - foreign);
    }
    assert_eq!(b.finish().num_rows(), 9);
    assert!(b
        .append_file("{\"Records\":[{\"eventName\":\"\u{e9}\"}]}".as_bytes())
        .is_ok());
    let mut latin1 = br#"{"Records":[{"eventName":"x"}]}"#.to_vec();
    latin1[24] = 0xe9;
    assert!(b
        .append_file(&latin1)
        .expect_err("not UTF-8")
        .contains("invalid UTF-8 at byte 24"));
    assert!(b.append_file(b"[1,2]").is_err());
}

/// A store named `name` (default settings) in a new data directory, holding `records` in one
/// write; the directory lives as long as the first value.
fn store_holding(
    name: &str,
    records: &[Box<serde_json::value::RawValue>],
) -> (tempfile::TempDir, store::Stores, store::EventDataStore) {
    let data = tempfile::tempdir().expect("tempdir");
    let stores = store::Stores::open(data.path(), "us-east-1", "111122223333").expect("stores");
    let eds = stores
        .create(name, store::StoreChanges::default(), 0, 0)
        .expect("create");
    let refs: Vec<_> = records
        .iter()
        .map(|r| (r.as_ref(), Provenance::Unknown))
        .collect();
    stores.write(&eds, &refs, "w").expect("write");
    (data, stores, eds)
}

/// Records of the given ages (ms before `now`), named `age<hours>`.
fn aged_records(now: i64, ages: &[i64]) -> Vec<Box<serde_json::value::RawValue>> {
    ages.iter()
        .map(|age| {
            serde_json::value::to_raw_value(&serde_json::json!({
                "eventTime": cairn_model::time::format_utc_seconds(now - age),
                "eventName": format!("age{}", age / 3_600_000),
                "eventSource": "ec2.amazonaws.com",
            }))
            .expect("raw")
        })
        .collect()
}

/// The life of a store, the same wherever its files are: retention deletes exactly the expired
/// days, a file written after a query shows in the next one, files a crash left beyond the
/// cursor are removed, protection refuses deletion, deletion removes every file.
fn store_lifecycle(stores: &store::Stores, rt: &tokio::runtime::Runtime) -> store::EventDataStore {
    let err = stores
        .create(
            "short",
            store::StoreChanges {
                retention_period: Some(6),
                ..Default::default()
            },
            0,
            0,
        )
        .expect_err("below 7 days");
    assert_eq!(err.code(), "InvalidParameterException");
    let eds = stores
        .create(
            "week",
            store::StoreChanges {
                retention_period: Some(7),
                ..Default::default()
            },
            0,
            0,
        )
        .expect("create");
    let day = 86_400_000i64;
    let now = cairn_model::time::parse_utc("2026-12-20T12:00:00Z").expect("now");
    // Events 10, 8, 7.5 and 7 less 2 hours (the cutoff's day, before and after it), 6 and 1
    // days old.
    let records = aged_records(
        now,
        &[
            10 * day,
            8 * day,
            7 * day + day / 2,
            7 * day - 2 * 3_600_000,
            6 * day,
            day,
        ],
    );
    let refs: Vec<_> = records
        .iter()
        .map(|r| (r.as_ref(), Provenance::Unknown))
        .collect();
    stores
        .write(&eds, &refs, "wal-00000000000000000001-00000000000000000006")
        .expect("write");
    assert_eq!(stores.files(&eds).expect("files").len(), 5);
    // Queries never show an expired event: from days not yet swept, nor from the cutoff's day.
    // What a query at `at` shows, and how many file scans its plan has: two when the cutoff's
    // day holds files (that day's files compare eventTime), else one.
    let shown_at = |eds: &store::EventDataStore, at: i64| {
        rt.block_on(async {
            let ctx = query::session();
            query::register_store(&ctx, stores, eds, at)
                .await
                .expect("register");
            let sql = "SELECT eventName FROM week ORDER BY eventTime";
            let plan = ctx
                .sql(sql)
                .await
                .expect("plan")
                .create_physical_plan()
                .await
                .expect("physical plan");
            let (batches, _) = query::run(&ctx, sql).await.expect("query");
            (text_rows(&batches).concat(), file_scans(&plan).len())
        })
    };
    let names = |eds: &store::EventDataStore| {
        let (names, scans) = shown_at(eds, now);
        assert_eq!(scans, 2, "the cutoff's day holds a file");
        names
    };
    assert_eq!(names(&eds), ["age166", "age144", "age24"]);
    // A query of the whole cutoff day (its bounds on eventTime are implied by the day and
    // dropped) still hides the expired event of that day.
    let cutoff_day = rt.block_on(async {
        let ctx = query::session();
        query::register_store(&ctx, stores, &eds, now)
            .await
            .expect("register");
        let sql = "SELECT eventName FROM week WHERE eventTime >= TIMESTAMP '2026-12-13 00:00:00' \
                   AND eventTime < TIMESTAMP '2026-12-14 00:00:00' ORDER BY eventTime";
        let (batches, _) = query::run(&ctx, sql).await.expect("query");
        text_rows(&batches).concat()
    });
    assert_eq!(cutoff_day, ["age166"]);
    // Two days earlier the cutoff (nine days before `now`) falls on a day without files: one
    // scan, of the days after it, shows every event after the cutoff.
    assert_eq!(
        shown_at(&eds, now - 2 * day),
        (
            ["age192", "age180", "age166", "age144", "age24"]
                .map(String::from)
                .to_vec(),
            1
        )
    );
    // The two whole days before the cutoff go; the cutoff's own day stays.
    assert_eq!(stores.expire(now).expect("expire"), 2);
    assert_eq!(stores.files(&eds).expect("files").len(), 3);
    assert_eq!(names(&eds), ["age166", "age144", "age24"]);
    // A file written after a query is in the next query.
    let late = aged_records(now, &[2 * day]);
    let refs: Vec<_> = late
        .iter()
        .map(|r| (r.as_ref(), Provenance::Unknown))
        .collect();
    stores
        .write(&eds, &refs, "wal-00000000000000000007-00000000000000000007")
        .expect("write");
    assert_eq!(names(&eds), ["age166", "age144", "age48", "age24"]);
    // Files holding events beyond the committed cursor (a crash before the commit) go.
    stores
        .write(&eds, &refs, "wal-00000000000000000008-00000000000000000008")
        .expect("write");
    assert_eq!(stores.remove_uncommitted(&eds, 7).expect("remove"), 1);
    assert_eq!(stores.files(&eds).expect("files").len(), 4);
    assert_eq!(names(&eds), ["age166", "age144", "age48", "age24"]);

    // Termination protection (on by default) refuses deletion until turned off.
    assert_eq!(
        stores.delete("week").expect_err("protected").code(),
        "EventDataStoreTerminationProtectedException"
    );
    stores
        .update(
            "week",
            store::StoreChanges {
                termination_protection_enabled: Some(false),
                ..Default::default()
            },
            1,
        )
        .expect("update");
    stores.delete("week").expect("delete");
    assert_eq!(
        stores.get("week").expect_err("gone").code(),
        "EventDataStoreNotFoundException"
    );
    eds
}

#[test]
fn a_store_file_holds_each_api_call_together_in_time_order() {
    use datafusion::arrow::array::{AsArray, DictionaryArray};
    use datafusion::arrow::datatypes::Int32Type;
    let records: Vec<Box<serde_json::value::RawValue>> = [("B", 1), ("A", 2), ("B", 0), ("A", 3)]
        .iter()
        .map(|(name, minute)| {
            serde_json::value::to_raw_value(&serde_json::json!({
                "eventTime": format!("2026-12-01T00:0{minute}:00Z"),
                "eventName": name,
            }))
            .expect("raw")
        })
        .collect();
    let (_data, stores, eds) = store_holding("order", &records);
    let files = stores.files(&eds).expect("files");
    let file = std::fs::File::open(&files[0]).expect("open");
    let batch =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .build()
            .expect("reader")
            .next()
            .expect("a batch")
            .expect("read");
    let names = batch
        .column_by_name("eventName")
        .expect("eventName")
        .as_any()
        .downcast_ref::<DictionaryArray<Int32Type>>()
        .expect("dictionary");
    let values = names.values().as_string::<i32>();
    let order: Vec<&str> = names
        .keys()
        .iter()
        .map(|k| values.value(k.expect("key") as usize))
        .collect();
    assert_eq!(order, ["A", "A", "B", "B"]);
    let times = batch
        .column_by_name("eventTime")
        .expect("eventTime")
        .as_any()
        .downcast_ref::<datafusion::arrow::array::TimestampMillisecondArray>()
        .expect("time");
    let minutes: Vec<i64> = times.values().iter().map(|t| t / 60_000 % 60).collect();
    assert_eq!(minutes, [2, 3, 0, 1]);
}

#[test]
fn a_store_file_stores_its_few_valued_columns_uncompressed_and_zstds_the_rest() {
    use datafusion::parquet::basic::Compression;
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let records: Vec<Box<serde_json::value::RawValue>> = (0..3)
        .map(|i| {
            serde_json::value::to_raw_value(&serde_json::json!({
                "eventTime": format!("2026-12-01T00:0{i}:00Z"),
                "eventName": "GetObject",
                "awsRegion": "eu-west-1",
                "eventID": format!("id-{i}"),
                "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::1:user/u{i}")},
            }))
            .expect("raw")
        })
        .collect();
    let (_data, stores, eds) = store_holding("codecs", &records);
    let files = stores.files(&eds).expect("files");
    let reader =
        SerializedFileReader::new(std::fs::File::open(&files[0]).expect("open")).expect("parquet");
    let row_group = reader.metadata().row_group(0);
    let codec = |path: &str| {
        row_group
            .columns()
            .iter()
            .find(|c| c.column_path().string() == path)
            .unwrap_or_else(|| panic!("no column {path}"))
            .compression()
    };
    for few_valued in columns::dictionary_paths().map(|path| path.join(".")) {
        assert_eq!(
            codec(&few_valued),
            Compression::UNCOMPRESSED,
            "{few_valued}"
        );
    }
    for other in [
        "eventID",
        "eventTime",
        "userIdentity.arn",
        "requestParameters",
    ] {
        assert!(matches!(codec(other), Compression::ZSTD(_)), "{other}");
    }
}

#[test]
fn retention_deletes_exactly_the_expired_days() {
    let data = tempfile::tempdir().expect("tempdir");
    let stores = store::Stores::open(data.path(), "us-east-1", "111122223333").expect("stores");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let eds = store_lifecycle(&stores, &rt);
    assert_eq!(eds.location, None);
    assert!(!data.path().join(&eds.id).exists());
}

#[test]
fn a_store_in_a_bucket_keeps_its_files_there() {
    let data = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let bucket: Arc<dyn object_store::ObjectStore> =
        Arc::new(object_store::memory::InMemory::new());
    let remote = store::Remote {
        store: bucket.clone(),
        bucket: "lake-bucket".into(),
        prefix: "cairn/lake".into(),
        handle: rt.handle().clone(),
    };
    let stores = store::Stores::open(data.path(), "us-east-1", "111122223333")
        .expect("stores")
        .with_remote(remote.clone());
    let keys = || {
        rt.block_on(cairn_store::list(bucket.as_ref(), ""))
            .expect("list")
    };
    // Files go to the bucket, under the prefix and the store's id, never to the data directory.
    let eds = stores
        .create("probe", store::StoreChanges::default(), 0, 0)
        .expect("create");
    let location = format!("s3://lake-bucket/cairn/lake/{}", eds.id);
    assert_eq!(eds.location.as_deref(), Some(location.as_str()));
    let one = aged_records(
        cairn_model::time::parse_utc("2026-12-20T12:00:00Z").expect("t"),
        &[0],
    );
    let refs: Vec<_> = one
        .iter()
        .map(|r| (r.as_ref(), Provenance::Unknown))
        .collect();
    stores.write(&eds, &refs, "first").expect("write");
    assert_eq!(
        keys(),
        [format!(
            "cairn/lake/{}/date=2026-12-20/first.parquet",
            eds.id
        )]
    );
    assert!(!data.path().join(&eds.id).exists());
    // A server set up without the bucket says where the files are instead of losing them.
    let reopened = store::Stores::open(data.path(), "us-east-1", "111122223333").expect("stores");
    let err = reopened
        .files(&reopened.get("probe").expect("kept"))
        .expect_err("no bucket");
    assert!(err.to_string().contains(&location), "{err}");
    assert!(err.to_string().contains("lake_bucket"), "{err}");
    let reopened = reopened.with_remote(remote);
    assert_eq!(reopened.files(&eds).expect("files").len(), 1);
    stores
        .update(
            "probe",
            store::StoreChanges {
                termination_protection_enabled: Some(false),
                ..Default::default()
            },
            1,
        )
        .expect("update");
    stores.delete("probe").expect("delete");

    let eds = store_lifecycle(&stores, &rt);
    assert!(eds.location.is_some());
    assert_eq!(keys(), Vec::<String>::new());
}

#[test]
fn records_are_delimited_by_structure_without_parsing() {
    let texts = |json: &str| {
        columns::record_spans(json.as_bytes(), &mut Vec::new()).map(|spans| {
            spans
                .into_iter()
                .map(|r| json[r].to_owned())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        texts(r#"{"Records":[{"a":"x\"}]"},{"b":[1,{"c":"]"}]}]}"#),
        Some(vec![
            r#"{"a":"x\"}]"}"#.to_owned(),
            r#"{"b":[1,{"c":"]"}]}"#.to_owned()
        ])
    );
    assert_eq!(
        texts(" { \"Other\": {\"x\":[1,2]}, \"Records\" : [ {} , 7 , \"s\\\\\" ] }\n"),
        Some(vec![
            "{}".to_owned(),
            "7".to_owned(),
            "\"s\\\\\"".to_owned()
        ])
    );
    assert_eq!(texts(r#"{"Records":[]}"#), Some(vec![]));
    // A control character inside a string (not valid JSON, judged when the record is parsed)
    // does not end the string for this scan.
    assert_eq!(
        texts("{\"Records\":[{\"a\":\"x\ny\\\"}]\"},{}]}"),
        Some(vec!["{\"a\":\"x\ny\\\"}]\"}".to_owned(), "{}".to_owned()])
    );
    // Strings longer than the 64-byte words of the scan's bits, escapes on either side of a
    // word's end.
    for at in [50, 62, 63, 64, 65, 127, 128, 200] {
        let long = format!(
            r#"{}\"{}\\{}"#,
            "x".repeat(at),
            "y".repeat(70),
            "z".repeat(3)
        );
        let record = format!(r#"{{"a":"{long}","b":["{long}",{{"c":"]"}}]}}"#);
        assert_eq!(
            texts(&format!(r#"{{"Records":[{record},{{}}]}}"#)),
            Some(vec![record.clone(), "{}".to_owned()]),
            "{at}"
        );
        assert_eq!(texts(&format!(r#"{{"Records":[{{"a":"{long}"#)), None);
    }
    for not_a_log in [
        "{\"Records\":[{\"a\":\"\\",
        r#"{"Records":[{"a":1}]} x"#,
        r#"{"Records":[{"a":1}"#,
        r#"{"Records":[{"a":"open}]}"#,
        r#"{"Records":[{"a":1}}"#,
        r#"{"Records":[1],"Records":[2]}"#,
        r#"{"records":[]}"#,
        r#"{}"#,
        r#"[1]"#,
        "",
    ] {
        assert_eq!(texts(not_a_log), None, "{not_a_log}");
    }
}

#[test]
fn a_file_that_breaks_half_way_adds_nothing() {
    let good =
        br#"{"Records":[{"eventName":"A","eventTime":"2026-12-01T00:00:00Z"},{"eventName":"B"}]}"#;
    let broken = br#"{"Records":[{"eventName":"C"},{"eventName":"D","userIdentity":{"type":"Root"}},{"eventName":"E",]}"#;
    let admit_all = |_: &[u8]| true;
    // One pass straight into the columns (`None`) and record by record (`Some`) agree.
    for admits in [None, Some(&admit_all as &columns::Admits<'_>)] {
        let mut b = columns::EventsBuilder::new(None);
        let (added, _) = b.append_file_where(good, admits).expect("good file");
        assert_eq!(added.records, 2);
        assert!(b.append_file_where(broken, admits).is_err());
        assert_eq!(b.rows(), 2, "the broken file's records are cut off again");
        assert!(b
            .append_file_where(br#"{"Records":[],"Records":[]}"#, admits)
            .is_err());
        assert!(b.append_file_where(br#"{"records":[]}"#, admits).is_err());
        // Broken inside nested structs (read member by member in one pass).
        let inside = br#"{"Records":[{"eventName":"G","userIdentity":{"type":"IAMUser","sessionContext":{"attributes":{"mfaAuthenticated":"true",}}}}]}"#;
        assert!(b.append_file_where(inside, admits).is_err());
        let cut = br#"{"Records":[{"eventName":"H","userIdentity":{"type":"IAMUser","sessionContext":{"sessionIssuer":{"arn":"#;
        assert!(b.append_file_where(cut, admits).is_err());
        // A record taken, then a broken one: the first is cut off again.
        let second = br#"{"Records":[{"eventName":"I"},{"eventName":"J",}]}"#;
        assert!(b.append_file_where(second, admits).is_err());
        assert_eq!(b.rows(), 2);
        let (added, _) = b
            .append_file_where(br#"{"Records":[{"eventName":"F","userIdentity":{"type":"Root","sessionContext":"odd","invokedBy":7}}, "x", [1]]}"#, admits)
            .expect("file with non-objects");
        assert_eq!((added.records, added.malformed), (1, 2));
        let batch = b.finish();
        let identity = batch
            .column_by_name("userIdentity")
            .expect("userIdentity")
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StructArray>()
            .expect("struct");
        let member = |name: &str| {
            identity
                .column_by_name(name)
                .expect("member")
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .map(|a| a.iter().map(|v| v.map(str::to_owned)).collect::<Vec<_>>())
        };
        assert_eq!(
            member("type"),
            Some(vec![None, None, Some("Root".to_owned())])
        );
        assert_eq!(
            member("invokedBy"),
            Some(vec![None, None, Some("7".to_owned())])
        );
        let session = identity
            .column_by_name("sessionContext")
            .expect("sessionContext");
        assert_eq!((session.len(), session.null_count()), (3, 3));
        let names = batch
            .column_by_name("eventName")
            .expect("eventName")
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StringArray>()
            .expect("text")
            .iter()
            .map(|v| v.unwrap_or("-").to_owned())
            .collect::<Vec<_>>();
        assert_eq!(names, ["A", "B", "F"]);
        assert_eq!(b.rows(), 0);
    }
}

#[tokio::test]
async fn the_text_search_rules_out_records_without_changing_answers() {
    let records = sample_records();
    let tree = tempfile::tempdir().expect("tempdir");
    write_tree(tree.path(), &records);
    // With no filter every event read matches.
    let (_, stats, report) = run_raw(tree.path(), "SELECT count(*) FROM events").await;
    assert_eq!(stats.events_scanned, records.len() as u64);
    assert_eq!(stats.events_matched, records.len() as u64);
    assert_eq!((report.files_ruled_out, report.records_ruled_out), (0, 0));

    let name = "ConsoleLogin";
    let expected = records.iter().filter(|r| r["eventName"] == name).count();
    assert!(expected > 0 && expected < records.len());
    let (rows, stats, report) = run_raw(
        tree.path(),
        &format!("SELECT count(*) FROM events WHERE eventName = '{name}'"),
    )
    .await;
    assert_eq!(rows, count_rows(expected));
    assert!(report.files_ruled_out > 0, "{report:?}");
    assert!(
        report.added.records < records.len(),
        "not every record parsed"
    );
    assert_eq!(
        stats.events_scanned,
        (report.added.records + report.records_ruled_out) as u64
    );
    assert_eq!(stats.events_matched, expected as u64);

    // A record that spells the literal with a JSON escape is still found.
    let escaped = tempfile::tempdir().expect("tempdir");
    let dir = escaped
        .path()
        .join("AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("111122223333_CloudTrail_us-east-1_20261201T0005Z_ESCAPEDESCAPEDE.json.gz"),
        cairn_logfile::body::encode(&[
            r#"{"eventName":"Consol\u0065Login","eventTime":"2026-12-01T00:00:00Z"}"#.to_owned(),
            r#"{"eventName":"GetObject","eventTime":"2026-12-01T00:01:00Z"}"#.to_owned(),
        ]),
    )
    .expect("write");
    let (rows, _, _) = run_raw(
        escaped.path(),
        "SELECT count(*) FROM events WHERE eventName = 'ConsoleLogin'",
    )
    .await;
    assert_eq!(rows, count_rows(1));
}

/// A session with `eds` registered as the server's queries see it at `now`.
async fn store_session(
    stores: &store::Stores,
    eds: &store::EventDataStore,
    now: i64,
) -> datafusion::prelude::SessionContext {
    let ctx = query::session();
    query::register_store(&ctx, stores, eds, now)
        .await
        .expect("register");
    ctx
}

/// The physical plan of `sql` on `ctx`.
async fn physical_plan(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
) -> Arc<dyn datafusion::physical_plan::ExecutionPlan> {
    ctx.sql(sql)
        .await
        .expect("sql")
        .create_physical_plan()
        .await
        .expect("plan")
}

/// The files the scans of `plan` will open.
fn scanned_files(
    plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
) -> Vec<datafusion::datasource::listing::PartitionedFile> {
    file_scans(plan)
        .iter()
        .flat_map(|c| c.file_groups.iter().flat_map(|g| g.files().to_vec()))
        .collect()
}

/// A store's scans run with the session's Parquet options (a `ParquetFormat` built on its own
/// carries defaults: filters not reordered, bloom filters looked for in files that have none).
#[test]
fn store_scans_take_the_session_parquet_options() {
    use datafusion::datasource::physical_plan::ParquetSource;
    let now = cairn_model::time::parse_utc("2026-12-20T12:00:00Z").expect("now");
    let (_data, stores, eds) = store_holding("opts", &aged_records(now, &[86_400_000]));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let options = rt.block_on(async {
        let ctx = store_session(&stores, &eds, now).await;
        let plan =
            physical_plan(&ctx, "SELECT eventName FROM opts WHERE eventName = 'age24'").await;
        file_scans(&plan)
            .iter()
            .filter_map(|c| c.file_source().downcast_ref::<ParquetSource>())
            .map(|source| source.table_parquet_options().global.clone())
            .collect::<Vec<_>>()
    });
    assert!(!options.is_empty(), "no Parquet scan in the plan");
    for o in options {
        assert!(
            o.pushdown_filters && o.reorder_filters && !o.bloom_filter_on_read,
            "{o:?}"
        );
    }
}

/// A store query with a predicate leaves each file it opened in the process's footer cache with
/// its page index (DataFusion caches footers without it, and decoded the index again at every
/// query); a query without one leaves the cache as it was, and answers are unchanged.
#[test]
fn store_queries_keep_the_page_indexes_of_the_files_they_filter() {
    let now = cairn_model::time::parse_utc("2026-12-20T12:00:00Z").expect("now");
    let (_data, stores, eds) = store_holding(
        "indexes",
        &aged_records(now, &[86_400_000, 2 * 86_400_000, 2 * 86_400_000 + 1]),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let ctx = store_session(&stores, &eds, now).await;
        let plan = |sql| physical_plan(&ctx, sql);
        let files: Vec<_> = scanned_files(&plan("SELECT eventName FROM indexes").await)
            .into_iter()
            .map(|f| f.object_meta)
            .collect();
        assert_eq!(files.len(), 2, "one file a day");
        let cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
        let indexed = || {
            files
                .iter()
                .map(|meta| query::page_index_cached(cache.as_ref(), meta))
                .collect::<Vec<_>>()
        };
        assert_eq!(indexed(), [false, false], "cached before any query");
        let all = plan("SELECT count(*) AS n FROM indexes").await;
        let rows = text_rows(&query::execute(&ctx, all).await.expect("run"));
        assert_eq!(rows, count_rows(3));
        assert_eq!(indexed(), [false, false], "no predicate, no page index");
        for _ in 0..2 {
            let filtered =
                plan("SELECT count(*) AS n FROM indexes WHERE eventName = 'age48'").await;
            let rows = text_rows(&query::execute(&ctx, filtered).await.expect("run"));
            assert_eq!(rows, count_rows(2));
            assert_eq!(indexed(), [true, true]);
        }
    });
}

/// A file gone between planning and running, its footer never read (so the page-index lookup
/// before the scan meets the missing file first), fails the query with an error that names it.
#[test]
fn a_store_file_gone_before_the_query_runs_fails_it_by_name() {
    let now = cairn_model::time::parse_utc("2026-12-20T12:00:00Z").expect("now");
    let (_data, stores, eds) = store_holding("gone", &aged_records(now, &[86_400_000]));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (error, name) = rt.block_on(async {
        let ctx = store_session(&stores, &eds, now).await;
        let plan = physical_plan(&ctx, "SELECT count(*) FROM gone WHERE eventName = 'age24'").await;
        let files = scanned_files(&plan);
        assert_eq!(files.len(), 1);
        let name = files[0]
            .object_meta
            .location
            .filename()
            .expect("name")
            .to_owned();
        let path = std::path::Path::new("/").join(files[0].object_meta.location.as_ref());
        std::fs::remove_file(&path).expect("remove the file");
        (
            query::execute(&ctx, plan)
                .await
                .expect_err("a file is gone"),
            name,
        )
    });
    assert!(error.to_string().contains(&name), "{error}");
}

/// A store query bounded in time lists and opens only the days its range touches (the rule in
/// `days.rs`), and answers exactly as the time predicate says.
#[test]
fn a_time_bounded_store_query_opens_only_the_days_it_touches() {
    let at = |t: &str| cairn_model::time::parse_utc(t).expect("time");
    // Two events a day, at its first and its last second, from December 1 to 5.
    let times: Vec<i64> = (1..=5)
        .flat_map(|d| {
            [
                at(&format!("2026-12-0{d}T00:00:00Z")),
                at(&format!("2026-12-0{d}T23:59:59Z")),
            ]
        })
        .collect();
    let records: Vec<_> = times
        .iter()
        .map(|t| {
            serde_json::value::to_raw_value(&serde_json::json!({
                "eventTime": cairn_model::time::format_utc_seconds(*t),
                "eventName": "DescribeInstances",
                "eventSource": "ec2.amazonaws.com",
            }))
            .expect("raw")
        })
        .collect();
    let (_data, stores, eds) = store_holding("days", &records);
    type Admits = Box<dyn Fn(i64) -> bool>;
    // The predicate, the days it opens, whether the plan still compares `eventTime` (not for a
    // range of whole days bounded on both sides: the days' directories already apply it), and
    // which times it admits.
    let cases: Vec<(&str, &[u8], bool, Admits)> = vec![
        (
            "eventTime >= TIMESTAMP '2026-12-02 00:00:00' AND eventTime < TIMESTAMP '2026-12-04 00:00:00'",
            &[2, 3],
            false,
            Box::new(move |t| t >= at("2026-12-02T00:00:00Z") && t < at("2026-12-04T00:00:00Z")),
        ),
        (
            "eventTime >= TIMESTAMP '2026-12-02 00:00:00' AND eventTime < TIMESTAMP '2026-12-03 12:00:00'",
            &[2, 3],
            true,
            Box::new(move |t| t >= at("2026-12-02T00:00:00Z") && t < at("2026-12-03T12:00:00Z")),
        ),
        (
            "eventTime > TIMESTAMPTZ '2026-12-02 23:59:59+00'",
            &[2, 3, 4, 5],
            true,
            Box::new(move |t| t > at("2026-12-02T23:59:59Z")),
        ),
        (
            "eventTime BETWEEN TIMESTAMP '2026-12-03 00:00:00' AND TIMESTAMP '2026-12-03 23:59:59'",
            &[3],
            true,
            Box::new(move |t| (at("2026-12-03T00:00:00Z")..=at("2026-12-03T23:59:59Z")).contains(&t)),
        ),
        (
            "eventTime BETWEEN TIMESTAMP '2026-12-04 00:00:00' AND TIMESTAMP '2026-12-05 23:59:59.999'",
            &[4, 5],
            false,
            Box::new(move |t| t >= at("2026-12-04T00:00:00Z")),
        ),
        (
            "eventTime = TIMESTAMP '2026-12-05 00:00:00'",
            &[5],
            true,
            Box::new(move |t| t == at("2026-12-05T00:00:00Z")),
        ),
        // Open on one side: the bound stays (a day directory outside the years 0000–9999,
        // which only such a range could reach, would need it).
        (
            "TIMESTAMP '2026-12-02 00:00:00' > eventTime AND eventName = 'DescribeInstances'",
            &[1],
            true,
            Box::new(move |t| t < at("2026-12-02T00:00:00Z")),
        ),
        // Not a bound: every day is read.
        (
            "eventTime < TIMESTAMP '2026-12-02 00:00:00' OR eventName = 'RunInstances'",
            &[1, 2, 3, 4, 5],
            true,
            Box::new(move |t| t < at("2026-12-02T00:00:00Z")),
        ),
        ("eventName = 'DescribeInstances'", &[1, 2, 3, 4, 5], false, Box::new(|_| true)),
    ];
    let now = at("2026-12-20T12:00:00Z");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for (predicate, days, compares_time, admits) in cases {
        let sql = format!("SELECT count(*) AS n FROM days WHERE {predicate}");
        let (count, mut opened, text) = rt.block_on(async {
            let ctx = query::session();
            query::register_store(&ctx, &stores, &eds, now)
                .await
                .expect("register");
            let plan = ctx
                .sql(&sql)
                .await
                .expect("sql")
                .create_physical_plan()
                .await
                .expect("plan");
            let mut opened = Vec::new();
            for config in file_scans(&plan) {
                for file in config.file_groups.iter().flat_map(|g| g.iter()) {
                    let path = file.object_meta.location.to_string();
                    let day = path.split("date=2026-12-0").nth(1).expect("a day");
                    opened.push(day.as_bytes()[0] - b'0');
                }
            }
            let text = datafusion::physical_plan::displayable(plan.as_ref())
                .indent(true)
                .to_string();
            let batches = datafusion::physical_plan::collect(plan, ctx.task_ctx())
                .await
                .expect("run");
            let rows = query::rows_as_text(&batches).expect("rows");
            (rows[0][0].1.clone(), opened, text)
        });
        opened.sort_unstable();
        opened.dedup();
        assert_eq!(opened, days, "{predicate}");
        let expected = times.iter().filter(|t| admits(**t)).count();
        assert_eq!(count, Some(expected.to_string()), "{predicate}");
        assert_eq!(
            text.contains("eventTime@"),
            compares_time,
            "{predicate}\n{text}"
        );
    }
    // When whole days drop the bounds, a directory whose name is not of the day shape is not
    // read (with the bounds kept, it would be read and its rows compared): a copy of
    // December 2's file under `date=99999-12-31` (a name the retention view's comparison of
    // day names lets through) adds nothing.
    let december_2 = stores
        .files(&eds)
        .expect("files")
        .into_iter()
        .find(|f| f.contains("date=2026-12-02"))
        .expect("a file of December 2");
    let december_2 = std::path::Path::new(&december_2);
    let odd = december_2
        .parent()
        .and_then(|day| day.parent())
        .expect("the store's directory")
        .join("date=99999-12-31");
    std::fs::create_dir_all(&odd).expect("odd day");
    std::fs::copy(december_2, odd.join("copy.parquet")).expect("copy");
    let whole_days = rt.block_on(async {
        let ctx = query::session();
        query::register_store(&ctx, &stores, &eds, now)
            .await
            .expect("register");
        let sql =
            "SELECT count(*) AS n FROM days WHERE eventTime >= TIMESTAMP '2026-12-02 00:00:00' \
                   AND eventTime < TIMESTAMP '2026-12-04 00:00:00'";
        let (batches, _) = query::run(&ctx, sql).await.expect("query");
        query::rows_as_text(&batches).expect("rows")[0][0].1.clone()
    });
    assert_eq!(whole_days, Some("4".to_owned()));
}

/// A log file read by the checking scan (`json_scan`) gives exactly what reading it with
/// `serde_json` gives: the same rows and counts, and the same verdict on broken files; a file
/// the scan refuses or leaves to `serde_json` adds nothing. On the samples (compact and
/// pretty, whole and cut short) and on odd files, with every column and with a projection.
#[test]
fn a_log_file_reads_the_same_by_the_scan_and_by_serde_json() {
    let records = sample_records();
    let mut files: Vec<String> = records
        .chunks(40)
        .map(|chunk| serde_json::json!({ "Records": chunk }).to_string())
        .collect();
    // Every record in one file: more records than the scan's nesting limit, which each
    // record's object must leave as it found it.
    assert!(records.len() > 150, "{} sample records", records.len());
    files.push(serde_json::json!({ "Records": &records }).to_string());
    let pretty = serde_json::to_string_pretty(&serde_json::json!({ "Records": &records[..20] }))
        .expect("pretty");
    files.push(pretty[..pretty.len() / 2].to_owned());
    files.push(files[0][..files[0].len() * 2 / 3].to_owned());
    files.push(pretty);
    let odd = [
        r#"{"Records":[]}"#,
        r#" { "Records" : [ ] } "#,
        r#"{"Records":[1,"x",null,true,[],{}]}"#,
        r#"{"a":1,"Records":[{"eventName":"X"}],"b":[2,{"c":"d"}]}"#,
        r#"{"Records":[{"eventName":"X","eventName":"Y","awsRegion":"r"}]}"#,
        r#"{"Records":[{"userIdentity":{"type":"Root","arn":"a","type":"IAMUser"}}]}"#,
        r#"{"Records":[{"userIdentity":"not an object","readOnly":"true"}]}"#,
        r#"{"Records":[{"userIdentity":["an","array"]},{"userIdentity":null},{"userIdentity":{}}]}"#,
        r#"{"Records":[{"userIdentity":{"arn":"a","x":{"y":[1]},"sessionContext":{"attributes":{"mfaAuthenticated":"true","mfaAuthenticated":"false"},"sessionIssuer":"s"}}}]}"#,
        r#"{"Records":[{"userIdentity":{"arn":"a","sessionContext":{"attributes":{"creationDate":"d"},"sessionIssuer":{"arn":tru}}}}]}"#,
        r#"{"Records":[{"eventName":"X"},{"userIdentity":{"type":"Root","sessionContext":{"attributes":{}}},"tlsDetails":{"tlsVersion":1"#,
        r#"{"Records":[{"tlsDetails":{"tlsVersion":"TLSv1.3","cipherSuite":7},"userIdentity":{"arn":"a"},"userIdentity":{"arn":"b"}}]}"#,
        r#"{"Records":[{"eventTime":"2026-01-01T00:00:00Z","requestParameters":{"a":[1,2.5e3,{"b":null}]},"readOnly":false,"resources":[{"ARN":"x","type":"t"}]}]}"#,
        r#"{"Records":[{"eventName":"caf\u00e9 \"q\"","errorMessage":"a\nb"}]}"#,
        // Member orders that change from record to record (the scan guesses the next name
        // from the last records), a name that another begins with, a repeated member.
        r#"{"Records":[{"eventName":"A","awsRegion":"r"},{"awsRegion":"s","eventName":"B"},{"eventNameX":"C","eventName":"D","awsRegion":"t"},{"eventName":"E","eventName":"F","awsRegion":"u"},{"eventName":"G","awsRegion":"v","awsRegion":"w"}]}"#,
        r#"{"Records":[{"eventName" : "A" , "awsRegion":"r"},{ "eventName"  :"B","eventName":1}]}"#,
        r#"{"Records":[{"eventName":"A","awsRegion":"r"},{"eventName":"B","awsRegion" "s"}]}"#,
        r#"{"Records":[{"eventName":"A","awsRegion":"r"},{"eventName":"B","awsRegion"}]}"#,
        r#"{"Records":[{"eventName":"A","awsRegion":"r"},{"eventName":"B","awsRegio"#,
        // Identity member orders that change from record to record, duplicate and unknown
        // identity members, and an identity member whose opening quote is something else.
        r#"{"Records":[{"userIdentity":{"type":"A","arn":"x"}},{"userIdentity":{"arn":"y","type":"B"}},{"userIdentity":{"type":"C","arnX":"z","arn":"w","arn":"u"}},{"userIdentity":{"type":"D","type":"E"}}]}"#,
        r#"{"Records":[{"userIdentity":{"type":"A","arn":"x"}},{"userIdentity":{"type":"D",Xarn":"v"}}]}"#,
        // A guessed name whose opening quote is something else.
        r#"{"Records":[{"eventName":"A","awsRegion":"r"},{"eventName":"B",XawsRegion":"s"}]}"#,
        // Names of the length of a column's or an identity member's that are not it, and names
        // longer than any: skipped (identity members by their length) and checked all the same.
        r#"{"Records":[{"eventVersiom":"1","userIdentitx":{"arn":"n"},"sourceIPAddresz":"i","eventSourcf":"aws:s3","userIdentity":{"arm":"m","arn":"a","typf":"t"},"sourceIPAddress":"1.2.3.4"}]}"#,
        r#"{"Records":[{"anEventNameLongerThanSixtyFourBytesWhichNoColumnOfTheTableCanEverHave":"x","eventName":"X"}]}"#,
        r#"{"Records":[{"userIdentity":{"anIdentityMemberNameLongerThanSixtyFourBytesWhichNoMemberCanHave":"x","arn":"a"}}]}"#,
        r#"{"Records":[{"userIdentity":{"anIdentityMemberNameLongerThanSixtyFourBytesWhichNoMemberCanHave":tru,"arn":"a"}}]}"#,
        r#"{"Records":[{"userIdentity":{"typ":1,"arm":[tru]},"sourceIPAddress":"1.2.3.4"}]}"#,
        // What ends a scalar, bytes outside strings, runs of backslashes.
        r#"{"Records":[{"readOnly":true"x"}]}"#,
        r#"{"Records":[{"readOnly":truex}]}"#,
        r#"{"Records":[{"n":1"a":2}]}"#,
        r#"{"Records":[{"n":1 ,"a":-2.5E+3 }]}"#,
        r#"{"Records":[{"eventName":"A"\"}]}"#,
        "{\"Records\":[{\"eventName\":\"A\"}\u{1},{}]}",
        "{\"Records\":[{\"eventName\":\"A\"}\u{1}]}",
        r#"{"Records":[{"eventName":"a\\\\","awsRegion":"b\\\"c","userAgent":"\\"}]}"#,
        r#"{"Records":[{"eventName":"X"}],"Records":[]}"#,
        r#"{"Records":[{"eventName":"X"},]}"#,
        r#"{"Records":[{"eventName":"X"}]} x"#,
        r#"{"Records":[{"eventName":"X"}]"#,
        r#"{"Records":{}}"#,
        r#"{"Records":[{"eventName":"X","n":01}]}"#,
        r#"{"Records":[{"eventName":"X","n":tru}]}"#,
        "{\"Records\":[{\"eventName\":\"tab\there\"}]}",
        r#"{"Records":[{"eventName":"X","s":"\q"}]}"#,
        r#"{}"#,
        r#"[]"#,
        r#"{"records":[{"eventName":"X"}]}"#,
        // Left to serde_json by the scan: an escaped name.
        r#"{"Records":[{"ev\u0065ntName":"X"}]}"#,
        r#"{"Rec\u006frds":[{"eventName":"X"}]}"#,
    ];
    files.extend(odd.iter().map(|s| s.to_string()));
    let mut projection = [
        columns::column_index("userIdentity").expect("userIdentity"),
        columns::column_index("sourceIPAddress").expect("sourceIPAddress"),
        columns::column_index("eventTime").expect("eventTime"),
    ];
    projection.sort_unstable();
    let mut answered = 0;
    let read = ["arn".to_owned(), "sessionContext".to_owned()];
    for file in &files {
        for (projection, limited) in [
            (None, false),
            (Some(&projection[..]), false),
            (Some(&projection[..]), true),
        ] {
            let builder = || {
                let b = columns::EventsBuilder::new(projection);
                if limited {
                    b.reading_members(columns::USER_IDENTITY, &read)
                } else {
                    b
                }
            };
            let mut scanned = builder();
            let mut parsed = builder();
            // A file before, whose rows must stay whatever happens to this one.
            let first = &files[1];
            let before = scanned.append_file_scanned(first).expect("a sample file");
            assert_eq!(Ok(before), parsed.append_file_direct(first));
            let by_scan = scanned.append_file_scanned(file);
            let by_serde = parsed.append_file_direct(file);
            match by_scan {
                Some(added) => {
                    answered += 1;
                    assert_eq!(Ok(added), by_serde, "{file}");
                    let batch = scanned.finish();
                    assert_eq!(batch, parsed.finish(), "{file}");
                    if limited {
                        use datafusion::arrow::array::{Array, AsArray};
                        // The members read are as a whole build gives them; the others null.
                        let mut whole = columns::EventsBuilder::new(projection);
                        whole.append_file_direct(first).expect("a sample file");
                        whole.append_file_direct(file).expect("read above");
                        let whole = whole.finish();
                        let identity = |b: &RecordBatch| {
                            b.column_by_name("userIdentity")
                                .expect("userIdentity")
                                .as_struct()
                                .clone()
                        };
                        let (limited, whole) = (identity(&batch), identity(&whole));
                        assert_eq!(limited.nulls(), whole.nulls(), "{file}");
                        for (i, field) in whole.fields().iter().enumerate() {
                            if read.contains(field.name()) {
                                assert_eq!(limited.column(i), whole.column(i), "{file}");
                            } else {
                                let column = limited.column(i);
                                assert_eq!(column.null_count(), column.len(), "{file}");
                            }
                        }
                    }
                }
                None => {
                    let escaped = file.contains("\\u0065") || file.contains("\\u006f");
                    assert!(escaped || by_serde.is_err(), "{file}: {by_serde:?}");
                    assert_eq!(scanned.finish().num_rows(), before.records, "{file}");
                }
            }
        }
    }
    assert!(answered > files.len(), "only {answered} answers");
}

/// A store's files written before `userIdentity.type` was stored dictionary-encoded (text), and
/// before the `metadata` column existed, read the same as the files written since, side by side
/// in one query (their `metadata` is null).
#[test]
fn files_written_before_a_member_was_dictionary_encoded_read_the_same() {
    use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema};
    let now = cairn_model::time::parse_utc("2026-12-20T12:00:00Z").expect("now");
    let record = |kind: &str, name: &str, day: u32| {
        serde_json::value::to_raw_value(&serde_json::json!({
            "eventTime": format!("2026-12-0{day}T10:00:00Z"),
            "eventName": name,
            "eventSource": "iam.amazonaws.com",
            "userIdentity": {"type": kind, "arn": format!("arn:aws:iam::111122223333:{kind}")},
        }))
        .expect("raw")
    };
    let new = [
        record("Root", "CreateUser", 2),
        record("IAMUser", "ListUsers", 2),
    ];
    let (_data, stores, eds) = store_holding("mixed", &new);
    // The same kind of events, in a file of the earlier layout, on another day.
    let old_records = [
        record("Root", "DeleteUser", 1),
        record("Root", "ListUsers", 1),
        record("AssumedRole", "ListUsers", 1),
    ];
    let mut builder = columns::EventsBuilder::new(None);
    for r in &old_records {
        builder.append_record(r);
    }
    let batch = builder.finish();
    let earlier = Arc::new(Schema::new(
        columns::store_schema()
            .fields()
            .iter()
            .filter(|f| f.name() != columns::METADATA_COLUMN)
            .map(|f| match f.data_type() {
                DataType::Struct(members) => Field::new(
                    f.name(),
                    DataType::Struct(
                        members
                            .iter()
                            .map(|m| {
                                if matches!(m.data_type(), DataType::Dictionary(..)) {
                                    Arc::new(Field::new(m.name(), DataType::Utf8, true))
                                } else {
                                    m.clone()
                                }
                            })
                            .collect::<Fields>(),
                    ),
                    true,
                ),
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ));
    assert_ne!(
        earlier,
        columns::store_schema(),
        "no member is dictionary-encoded"
    );
    let columns_now: Vec<_> = batch
        .columns()
        .iter()
        .zip(earlier.fields())
        .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()).expect("cast"))
        .collect();
    let old_batch = RecordBatch::try_new(earlier, columns_now).expect("batch");
    let dir = stores.dir(&eds).join("date=2026-12-01");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut bytes = Vec::new();
    let mut writer =
        datafusion::parquet::arrow::ArrowWriter::try_new(&mut bytes, old_batch.schema(), None)
            .expect("writer");
    writer.write(&old_batch).expect("write");
    writer.close().expect("close");
    std::fs::write(dir.join("earlier.parquet"), bytes).expect("file");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let answer = |sql: &str| {
        rt.block_on(async {
            let ctx = query::session();
            query::register_store(&ctx, &stores, &eds, now)
                .await
                .expect("register");
            let (batches, _) = query::run(&ctx, sql).await.expect("query");
            query::rows_as_text(&batches)
                .expect("rows")
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .map(|(_, v)| v.unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        answer("SELECT eventName FROM mixed WHERE userIdentity.type = 'Root' ORDER BY eventName"),
        ["CreateUser", "DeleteUser", "ListUsers"]
    );
    assert_eq!(
        answer("SELECT userIdentity.type AS t, count(*) AS n FROM mixed GROUP BY userIdentity.type ORDER BY t"),
        ["AssumedRole 1", "IAMUser 1", "Root 3"]
    );
    assert_eq!(
        answer("SELECT count(*) AS n FROM mixed WHERE metadata.ingestedByType IS NULL"),
        ["3"]
    );
    assert_eq!(
        answer("SELECT metadata.ingestedByType AS t, count(*) AS n FROM mixed WHERE metadata.ingestedByType IS NOT NULL GROUP BY metadata.ingestedByType"),
        ["Unknown 2"]
    );
}

/// A raw scan builds only the members of `userIdentity` a query reads, when it reads the
/// struct only by members; any other use of the struct keeps it whole. (That the answers are
/// the same is checked by the golden queries, which compare raw mode with the store.)
#[tokio::test]
async fn a_raw_scan_builds_only_the_identity_members_a_query_reads() {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::datasource::source_as_provider;
    use datafusion::logical_expr::LogicalPlan;

    let tree = tempfile::tempdir().expect("tempdir");
    write_tree(tree.path(), &sample_records()[..50]);
    let table = raw::TreeTable::open(raw::TreeSource::Dir(tree.path().to_path_buf()), None)
        .await
        .expect("open");
    let ctx = query::session();
    ctx.register_table("events", Arc::new(table))
        .expect("register");
    let members = |names: &[&str]| Some(names.iter().map(|n| n.to_string()).collect::<Vec<_>>());
    let cases = [
        (
            "SELECT userIdentity.arn AS who, count(DISTINCT sourceIPAddress) FROM events GROUP BY userIdentity.arn",
            vec![members(&["arn"])],
        ),
        (
            "SELECT eventName FROM events WHERE userIdentity.type = 'Root'",
            vec![members(&["type"])],
        ),
        (
            "SELECT eventName FROM events WHERE userIdentity['arn'] = 'x'",
            vec![members(&["arn"])],
        ),
        (
            "SELECT userIdentity.sessionContext.attributes.mfaAuthenticated, userIdentity.arn FROM events",
            vec![members(&["arn", "sessionContext"])],
        ),
        (
            "SELECT a.userIdentity.arn FROM events a JOIN events b ON a.eventID = b.eventID WHERE b.userIdentity.type = 'Root'",
            vec![members(&["arn", "type"]), members(&["arn", "type"])],
        ),
        (
            "SELECT eventName FROM events WHERE eventID IN (SELECT eventID FROM events WHERE userIdentity.accountId = '1')",
            vec![members(&["accountId"]), members(&["accountId"])],
        ),
        // DataFusion folds the alias away: the plan reads the member of the column.
        (
            "SELECT u.arn FROM (SELECT userIdentity AS u FROM events)",
            vec![members(&["arn"])],
        ),
        // The whole struct.
        ("SELECT * FROM events WHERE userIdentity.type = 'Root'", vec![None]),
        ("SELECT userIdentity FROM events", vec![None]),
        ("SELECT u FROM (SELECT userIdentity AS u FROM events)", vec![None]),
        ("SELECT userIdentity.arn, userIdentity FROM events", vec![None]),
        ("SELECT count(*) FROM events WHERE userIdentity IS NULL", vec![None]),
        ("SELECT count(*) FROM (SELECT DISTINCT * FROM events)", vec![None]),
        (
            "SELECT count(DISTINCT userIdentity) FROM events WHERE userIdentity.type = 'Root'",
            vec![None],
        ),
        (
            "SELECT eventName FROM events ORDER BY userIdentity.arn, userIdentity",
            vec![None],
        ),
        (
            "SELECT eventName FROM events WHERE eventID IN (SELECT eventID FROM events WHERE userIdentity IS NULL) AND userIdentity.arn = 'x'",
            vec![None, None],
        ),
        // Not read at all.
        ("SELECT count(*) FROM events", vec![None]),
    ];
    for (sql, expected) in cases {
        let plan = ctx
            .sql(sql)
            .await
            .and_then(|df| df.into_optimized_plan())
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut built = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let provider = source_as_provider(&scan.source)?;
                let tree = provider.downcast_ref::<raw::TreeTable>().expect("a tree");
                built.push(tree.identity_members().map(<[String]>::to_vec));
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .expect("walk");
        assert_eq!(built, expected, "{sql}");
        // And the query runs.
        query::run(&ctx, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[test]
fn store_ids_are_quoted_as_cloudtrail_lake_writes_them_unquoted() {
    let id = "4f7a8c9e-1234-4bcd-9ef0-0123456789ab";
    let ids = [id];
    let q = |sql: &str| query::quote_store_ids(sql, &ids);
    assert_eq!(
        q(&format!("SELECT count(*) FROM {id} WHERE eventName = 'x'")),
        format!("SELECT count(*) FROM \"{id}\" WHERE eventName = 'x'")
    );
    // Already quoted, inside a literal, or part of a longer word: left alone.
    for kept in [
        format!("SELECT * FROM \"{id}\""),
        format!("SELECT * FROM x WHERE a = 'from {id} on'"),
        format!("SELECT * FROM x{id}"),
        format!("SELECT * FROM {id}0"),
        "SELECT 'é', \"ü\" FROM events".to_owned(),
    ] {
        assert_eq!(q(&kept), kept);
    }
    // Twice, and joined.
    assert_eq!(
        q(&format!(
            "SELECT a.eventID FROM {id} a JOIN {id} b ON a.eventID = b.eventID"
        )),
        format!("SELECT a.eventID FROM \"{id}\" a JOIN \"{id}\" b ON a.eventID = b.eventID")
    );
}
