use super::*;

fn deployment() -> Deployment {
    Deployment {
        account_id: "111122223333".into(),
        region: "eu-west-1".into(),
        organization_id: Some("o-abc123".into()),
        s3_configured: false,
        data_dir: Some("/var/lib/cairn".into()),
    }
}

fn catalog(dir: &Path) -> Catalog {
    Catalog::open(&dir.join("catalog.json"), deployment()).expect("open")
}

fn local(name: &str) -> TrailSettings {
    TrailSettings {
        name: name.into(),
        local_directory: Some("/var/audit".into()),
        ..Default::default()
    }
}

#[test]
fn trail_names() {
    for good in ["main", "a.b-c_d", "Trail123", &"x".repeat(128)] {
        assert!(validate_trail_name(good).is_ok(), "{good}");
    }
    for bad in [
        "ab",
        "-main",
        "main-",
        "ma..in",
        "ma-_in",
        "has space",
        "192.168.1.10",
        &"x".repeat(129),
        "trail/x",
    ] {
        let err = validate_trail_name(bad).expect_err(bad);
        assert_eq!(err.code(), "InvalidTrailNameException");
    }
    assert!(validate_bucket_name("acme-audit.logs").is_ok());
    for bad in ["Acme", "ab", "a..b", "-ab", "10.0.0.1", "under_score"] {
        assert_eq!(
            validate_bucket_name(bad).expect_err(bad).code(),
            "InvalidS3BucketNameException"
        );
    }
    assert!(validate_prefix("team/audit").is_ok());
    for bad in ["/x", "x/", "a//b", &"p".repeat(201)] {
        assert_eq!(
            validate_prefix(bad).expect_err(bad).code(),
            "InvalidS3PrefixException"
        );
    }
}

#[test]
fn lifecycle_and_persistence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = catalog(dir.path());
    let trail = catalog.create(local("main")).expect("create");
    assert_eq!(
        trail.arn,
        "arn:aws:cloudtrail:eu-west-1:111122223333:trail/main"
    );
    assert!(!trail.is_logging(), "CreateTrail does not start logging");
    assert!(trail.scope.include_global_service_events);
    assert!(matches!(
        catalog.create(local("main")),
        Err(CatalogError::TrailAlreadyExists(_))
    ));

    catalog.start_logging("main", 10, 1000).expect("start");
    catalog
        .stop_logging(&trail.arn, 20, 2000)
        .expect("stop by ARN");
    catalog
        .start_logging("main", 30, 3000)
        .expect("start again");
    let trail = catalog.get("main").expect("get");
    assert!(trail.is_logging());
    let logged: Vec<u64> = (0..40).filter(|&s| trail.logs_seq(s)).collect();
    assert_eq!(logged, (11..=20).chain(31..40).collect::<Vec<_>>());
    assert_eq!(trail.stop_logging_time, Some(2000));

    let selectors: Selectors =
        serde_json::from_str(r#"{"EventSelectors":[{"ReadWriteType":"WriteOnly"}]}"#)
            .expect("json");
    catalog
        .put_selectors("main", selectors.clone())
        .expect("selectors");
    let bad: Selectors = serde_json::from_str(r#"{"EventSelectors":[]}"#).expect("json");
    assert_eq!(
        catalog
            .put_selectors("main", bad)
            .expect_err("invalid")
            .code(),
        "InvalidEventSelectorsException"
    );
    let updated = catalog
        .update(
            "main",
            TrailSettings {
                is_multi_region_trail: Some(true),
                s3_key_prefix: Some("p".into()),
                ..Default::default()
            },
        )
        .expect("update");
    assert!(updated.scope.is_multi_region_trail);
    assert_eq!(updated.s3_key_prefix.as_deref(), Some("p"));
    catalog
        .record_delivery(&updated.id, 5000, Some("store unreachable".into()))
        .expect("record");

    // Everything survives reopening.
    let reopened = Catalog::open(&dir.path().join("catalog.json"), deployment()).expect("reopen");
    let trail = reopened.get("main").expect("get");
    assert_eq!(trail.selectors, selectors);
    assert!(trail.has_custom_event_selectors());
    assert_eq!(trail.logging.len(), 2);
    assert_eq!(
        trail.latest_delivery_error.as_deref(),
        Some("store unreachable")
    );
    assert_eq!(trail.latest_delivery_attempt_time, Some(5000));
    reopened.delete("main").expect("delete");
    assert!(matches!(
        reopened.get("main"),
        Err(CatalogError::TrailNotFound(_))
    ));
    assert!(
        Catalog::open(&dir.path().join("catalog.json"), deployment())
            .expect("reopen")
            .list()
            .is_empty()
    );
}

#[test]
fn contradictions_and_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = catalog(dir.path());
    let code = |settings: TrailSettings| catalog.create(settings).expect_err("refused").code();
    assert_eq!(
        code(TrailSettings {
            name: "none".into(),
            ..Default::default()
        }),
        "InvalidParameterCombinationException"
    );
    assert_eq!(
        code(TrailSettings {
            s3_bucket_name: Some("bucket".into()),
            ..local("both")
        }),
        "InvalidParameterCombinationException"
    );
    assert_eq!(
        code(TrailSettings {
            name: "s3trail".into(),
            s3_bucket_name: Some("bucket".into()),
            ..Default::default()
        }),
        "S3BucketDoesNotExistException",
        "no S3 store configured"
    );
    assert_eq!(
        code(TrailSettings {
            is_multi_region_trail: Some(true),
            include_global_service_events: Some(false),
            ..local("multi")
        }),
        "InvalidParameterCombinationException"
    );
    assert_eq!(
        code(TrailSettings {
            local_directory: Some("relative".into()),
            ..local("rel")
        }),
        "InvalidParameterException"
    );
    // Escapes and Cairn's own data directory are refused at the door, not at each flush.
    for dir in [
        "/var/audit/../lib/cairn",
        "/var/audit/./x",
        "/var/lib/cairn",
        "/var/lib/cairn/wal",
    ] {
        assert_eq!(
            code(TrailSettings {
                local_directory: Some(dir.into()),
                ..local("esc")
            }),
            "InvalidParameterException",
            "{dir}"
        );
    }
    for prefix in ["a/../b", "..", "./x", "a/."] {
        assert_eq!(
            code(TrailSettings {
                s3_key_prefix: Some(prefix.into()),
                ..local("pre")
            }),
            "InvalidS3PrefixException",
            "{prefix}"
        );
    }
    let org = catalog
        .create(TrailSettings {
            is_organization_trail: Some(true),
            ..local("org")
        })
        .expect("org");
    assert_eq!(org.organization_id.as_deref(), Some("o-abc123"));
    for i in 0..4 {
        catalog.create(local(&format!("t{i}x"))).expect("create");
    }
    assert!(matches!(
        catalog.create(local("sixth")),
        Err(CatalogError::MaximumNumberOfTrailsExceeded)
    ));
    assert_eq!(
        catalog
            .update(
                "org",
                TrailSettings {
                    name: "renamed".into(),
                    ..Default::default()
                }
            )
            .expect_err("rename")
            .code(),
        "InvalidParameterException"
    );
}
