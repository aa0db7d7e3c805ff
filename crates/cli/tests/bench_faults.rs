//! `cairn bench faults` itself: a short run of its cases reports every acknowledged event
//! found once, and a skipped case says why. (The figures of a full run are in
//! RELIABILITY.md; this only keeps the tool honest.)

use std::process::Command;

#[test]
fn a_short_fault_run_finds_every_acknowledged_event_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "bench",
            "faults",
            "--cases",
            "kill,disk-full,runaway-query,flood",
            "--kills",
            "2",
            "--seconds",
            "3",
            "--connections",
            "40",
            "--output",
            "json",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run cairn bench faults");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json report");
    let cases = report["Cases"].as_array().expect("cases");
    let names: Vec<&str> = cases.iter().filter_map(|c| c["case"].as_str()).collect();
    assert_eq!(names, ["kill", "disk-full", "runaway-query", "flood-40"]);
    for case in cases {
        if case["skipped"] == true {
            assert!(
                case["note"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("skipped: ")),
                "{case}"
            );
            continue;
        }
        assert!(case["acknowledged"].as_u64() > Some(0), "{case}");
        assert_eq!(case["lost"], 0, "{case}");
        assert_eq!(case["duplicated"], 0, "{case}");
        assert_eq!(case["inHistory"], case["acknowledged"], "{case}");
        assert!(case["rssPeakMib"].as_f64() > Some(0.0), "{case}");
    }
    let kill = &cases[0];
    assert_eq!(kill["delivered"], kill["acknowledged"], "{kill}");
    let runaway = &cases[2]["note"];
    assert!(
        runaway
            .as_str()
            .is_some_and(|n| n.contains("huge value: refused 400") && !n.contains("NOT enforced")),
        "{runaway}"
    );
}
