use super::*;

fn samples_tree() -> tempfile::TempDir {
    // The sample corpus as a CloudTrail tree: one .json.gz per source, plus a digest to skip and
    // a damaged file to report.
    let dir = tempfile::tempdir().expect("tempdir");
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/cloudtrail-samples");
    let tree = dir
        .path()
        .join("AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01");
    std::fs::create_dir_all(&tree).expect("mkdir");
    for entry in std::fs::read_dir(root.join("_normalized")).expect("samples") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if !name.ends_with(".ndjson") || name.contains("digests") {
            continue;
        }
        let records: Vec<String> = std::fs::read_to_string(&path)
            .expect("read")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        std::fs::write(
            tree.join(format!(
                "111122223333_CloudTrail_us-east-1_20261201T0000Z_{}.json.gz",
                &format!("{name:X<16}")[..16]
            )),
            cairn_logfile::body::encode(&records),
        )
        .expect("write");
    }
    let trailscraper = root.join("trailscraper");
    for entry in std::fs::read_dir(&trailscraper).expect("trailscraper") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().ends_with(".json.gz") {
            std::fs::copy(&path, tree.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    std::fs::write(
        tree.join("111122223333_CloudTrail_us-east-1_20261201T0000Z_BROKENBROKENBROK.json.gz"),
        b"not gzip",
    )
    .expect("write");
    std::fs::write(
        dir.path()
            .join("111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20261201T000000Z.json.gz"),
        b"{}",
    )
    .expect("write");
    dir
}

/// Every record of the tree, read independently with serde_json.
fn oracle(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.to_string_lossy().into_owned();
            if !name.ends_with(".json.gz") || name.contains("Digest") {
                continue;
            }
            let Ok(json) =
                cairn_logfile::body::decompress(&std::fs::read(&path).expect("read"), 1 << 30)
            else {
                continue;
            };
            let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
            out.extend(
                value["Records"]
                    .as_array()
                    .expect("records")
                    .iter()
                    .cloned(),
            );
        }
    }
    out
}

fn column_u64(batches: &[RecordBatch], column: usize) -> Vec<u64> {
    use datafusion::arrow::array::{AsArray, Int64Array};
    batches
        .iter()
        .flat_map(|b| {
            let array = b.column(column);
            let ints: &Int64Array = array.as_primitive();
            ints.values().iter().map(|v| *v as u64).collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn raw_mode_answers_investigation_queries_over_the_sample_tree() {
    let dir = samples_tree();
    let records = oracle(dir.path());
    assert!(records.len() > 500);
    // Count.
    let (batches, report) = query_tree(dir.path(), "SELECT count(*) FROM events")
        .await
        .expect("query");
    assert_eq!(column_u64(&batches, 0), vec![records.len() as u64]);
    assert_eq!(report.records, records.len());
    assert_eq!(
        report.malformed.len(),
        1,
        "the damaged file is reported, not fatal"
    );
    assert!(report.skipped >= 1, "the digest is skipped");
    // Root activity.
    let roots = records
        .iter()
        .filter(|r| r["userIdentity"]["type"] == "Root")
        .count() as u64;
    let (batches, _) = query_tree(
        dir.path(),
        "SELECT count(*) FROM events WHERE userIdentity.type = 'Root'",
    )
    .await
    .expect("query");
    assert_eq!(column_u64(&batches, 0), vec![roots]);
    // Errors by code: the top one.
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for r in &records {
        if let Some(code) = r["errorCode"].as_str() {
            *counts.entry(code.to_owned()).or_default() += 1;
        }
    }
    let (top_code, top_count) = counts
        .iter()
        .max_by_key(|(c, n)| (**n, std::cmp::Reverse((*c).clone())))
        .expect("errors");
    let (batches, _) = query_tree(
        dir.path(),
        "SELECT errorCode, count(*) AS n FROM events WHERE errorCode IS NOT NULL GROUP BY errorCode ORDER BY n DESC, errorCode ASC LIMIT 1",
    )
    .await
    .expect("query");
    let table = to_table(&batches).expect("table");
    assert!(
        table.contains(top_code.as_str()) && table.contains(&top_count.to_string()),
        "{table}"
    );
    // Console logins without MFA (JSON text column).
    let no_mfa = records
        .iter()
        .filter(|r| r["eventName"] == "ConsoleLogin" && r["additionalEventData"]["MFAUsed"] == "No")
        .count() as u64;
    let (batches, _) = query_tree(
        dir.path(),
        "SELECT count(*) FROM events WHERE eventName = 'ConsoleLogin' AND additionalEventData LIKE '%\"MFAUsed\":\"No\"%'",
    )
    .await
    .expect("query");
    assert_eq!(column_u64(&batches, 0), vec![no_mfa]);
    // Time predicates on the timestamp column.
    let since = cairn_model::time::parse_utc("2020-01-01T00:00:00Z").expect("time");
    let recent = records
        .iter()
        .filter(|r| {
            r["eventTime"]
                .as_str()
                .and_then(|t| cairn_model::time::parse_utc(t).ok())
                .is_some_and(|t| t >= since)
        })
        .count() as u64;
    let (batches, _) = query_tree(
        dir.path(),
        "SELECT count(*) FROM events WHERE eventTime >= TIMESTAMP '2020-01-01T00:00:00Z'",
    )
    .await
    .expect("query");
    assert_eq!(column_u64(&batches, 0), vec![recent]);
    // A bad query is a clear error.
    assert!(query_tree(dir.path(), "SELECT nope FROM events")
        .await
        .is_err());
}
