use super::*;
use cairn_trail::Trail;

fn trail() -> Trail {
    let mut trail =
        Trail::logging_to_directory("t1", "main", "111122223333", "us-east-1", "/tmp/x".into());
    trail.scope.is_multi_region_trail = true;
    trail
}

fn record(seq: u64, name: &str, time: &str, extra: &str) -> (u64, Vec<u8>) {
    let text = format!(
        r#"{{"eventVersion":"1.11","userIdentity":{{"type":"IAMUser"}},"eventTime":"{time}","eventSource":"signin.amazonaws.com","eventName":"{name}","awsRegion":"us-east-1","eventID":"e{seq}","eventCategory":"Management","managementEvent":true,"readOnly":false{extra}}}"#
    );
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("record");
    let fields = cairn_model::fields::SelectionFields::from_map(&map);
    (
        seq,
        cairn_model::payload::encode(
            &cairn_model::event::producer_digest(text.as_bytes()),
            &fields,
            &cairn_model::provenance::Provenance::Unknown,
            None,
            text.as_bytes(),
        ),
    )
}

#[test]
fn a_group_receives_its_trails_events_and_counts_with_its_filters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = Logs::open(dir.path()).expect("open");
    assert!(matches!(
        logs.put_filter(FilterConfig {
            group: "audit".into(),
            name: "f".into(),
            pattern: "{ $.a = 1 }".into(),
            metric_name: "M".into(),
            metric_namespace: "N".into(),
            metric_value: "1".into(),
            default_value: None,
            dimensions: BTreeMap::new(),
            unit: None,
        }),
        Err(LogsError::NotFound(_))
    ));
    assert!(
        logs.put_group(LogGroup {
            name: "audit".into(),
            trail: "main".into(),
            retention_days: 2,
            created: 0,
        })
        .is_err(),
        "2 days is not a CloudWatch retention"
    );
    logs.put_group(LogGroup {
        name: "audit".into(),
        trail: "main".into(),
        retention_days: 1,
        created: 0,
    })
    .expect("group");
    logs.put_filter(FilterConfig {
        group: "audit".into(),
        name: "failed-logins".into(),
        pattern: cairn_filter::cis::CONTROLS[5].pattern.into(),
        metric_name: "ConsoleAuthenticationFailures".into(),
        metric_namespace: "LogMetrics".into(),
        metric_value: "1".into(),
        default_value: Some(0.0),
        dimensions: BTreeMap::new(),
        unit: None,
    })
    .expect("filter");
    let failed = r#","errorMessage":"Failed authentication""#;
    let records = vec![
        record(1, "ConsoleLogin", "2026-12-01T10:00:05Z", failed),
        record(2, "ConsoleLogin", "2026-12-01T10:00:45Z", failed),
        record(3, "ConsoleLogin", "2026-12-01T10:01:10Z", ""),
        record(4, "ConsoleLogin", "2026-12-01T10:03:00Z", failed),
    ];
    assert_eq!(logs.apply(&records, &[trail()]).expect("apply"), 4);
    assert_eq!(logs.applied_seq().expect("seq"), 4);
    let t = |s: &str| cairn_model::time::parse_utc(s).expect("time");
    // FilterLogEvents, paged.
    let (page, token) = logs
        .filter_events(
            "audit",
            r#"{ $.errorMessage = "Failed*" }"#,
            0,
            i64::MAX,
            2,
            None,
        )
        .expect("filter");
    assert_eq!(page.len(), 2);
    let (rest, end) = logs
        .filter_events(
            "audit",
            r#"{ $.errorMessage = "Failed*" }"#,
            0,
            i64::MAX,
            2,
            token,
        )
        .expect("next");
    assert_eq!((rest.len(), end), (1, None));
    assert_eq!(rest[0].event_id, "4");
    // Per minute: 2 failures at 10:00, a default 0 at 10:01, 1 at 10:03; five-minute sum 3.
    let none = BTreeMap::new();
    let minutes = logs
        .statistics(
            "LogMetrics",
            "ConsoleAuthenticationFailures",
            &none,
            t("2026-12-01T10:00:00Z"),
            t("2026-12-01T10:05:00Z"),
            60_000,
        )
        .expect("stats");
    let sums: Vec<(i64, f64, u64)> = minutes
        .iter()
        .map(|(s, st)| (*s, st.sum, st.count))
        .collect();
    assert_eq!(
        sums,
        vec![
            (t("2026-12-01T10:00:00Z"), 2.0, 2),
            (t("2026-12-01T10:01:00Z"), 0.0, 1),
            (t("2026-12-01T10:03:00Z"), 1.0, 1)
        ]
    );
    let five = logs
        .statistics(
            "LogMetrics",
            "ConsoleAuthenticationFailures",
            &none,
            t("2026-12-01T10:00:00Z"),
            t("2026-12-01T10:05:00Z"),
            300_000,
        )
        .expect("stats");
    assert_eq!(five.len(), 1);
    assert_eq!((five[0].1.sum, five[0].1.count), (3.0, 4));
    // Retention: a day later the events are gone; datapoints stay.
    assert_eq!(logs.expire(t("2026-12-02T10:02:00Z")).expect("expire"), 3);
    let (left, _) = logs
        .filter_events("audit", "", 0, i64::MAX, 100, None)
        .expect("all");
    assert_eq!(left.len(), 1);
    // Reopened: groups, filters and data are there.
    drop(logs);
    let logs = Logs::open(dir.path()).expect("reopen");
    assert_eq!(logs.groups().len(), 1);
    assert_eq!(logs.filters(Some("audit")).len(), 1);
    assert_eq!(logs.applied_seq().expect("seq"), 4);
    assert!(matches!(
        logs.filter_events("nope", "", 0, 1, 1, None),
        Err(LogsError::NotFound(_))
    ));
    assert!(matches!(
        logs.filter_events("audit", "ERR*", 0, 1, 1, None),
        Err(LogsError::Invalid(_))
    ));
}
