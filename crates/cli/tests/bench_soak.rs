//! `cairn bench soak`, short: a steady signed load on the real server, sampled over time.

#[test]
fn a_short_soak_reports_each_sample_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "bench",
            "soak",
            "--minutes",
            "0.1",
            "--rate",
            "2000",
            "--sample-seconds",
            "2",
            "--clients",
            "2",
            "--batch",
            "50",
            "--output",
            "json",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .expect("cairn bench soak");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(report["targetEventsPerSecond"], 2000.0, "{report}");
    assert!(report["acknowledged"].as_u64().unwrap_or(0) > 0, "{report}");
    assert_eq!(report["refusedRequests"], 0, "{report}");
    let rows = report["rows"].as_array().expect("rows");
    assert!(rows.len() >= 2, "{report}");
    for row in rows {
        for field in [
            "eventsPerSecond",
            "ackP99Ms",
            "historyLagEvents",
            "walMib",
            "rssMib",
            "rssAnonMib",
            "dataBytesPerEvent",
        ] {
            assert!(row[field].as_f64().is_some(), "{field} in {row}");
        }
        assert!(row["rssMib"].as_f64().unwrap_or(0.0) > 0.0, "{row}");
    }
    // The scratch directory is removed with the run.
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}
