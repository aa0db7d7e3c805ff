use super::*;
use crate::view::EventView;

fn account() -> AccountId {
    "111122223333".parse().expect("valid account id")
}

fn prepare(raw: &str) -> Result<PreparedEvent, Rejection> {
    let account = account();
    let ctx = PrepareContext {
        account_id: &account,
        fresh_event_id: &|| "assigned-id".to_owned(),
    };
    prepare_event(raw.as_bytes(), &ctx)
}

const FULL: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","userName":"alice","accessKeyId":"AKIA1"},"eventTime":"2023-07-19T21:17:28Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"us-east-1","eventID":"e1","readOnly":false,"managementEvent":true,"recipientAccountId":"123456789012","eventCategory":"Management","resources":[{"ARN":"arn:aws:cloudtrail:us-east-1:123456789012:trail/main","type":"AWS::CloudTrail::Trail"}]}"#;

#[test]
fn complete_event_is_stored_byte_identical() {
    let prepared = prepare(FULL).expect("accepted");
    assert_eq!(prepared.record, FULL.as_bytes());
    assert_eq!(prepared.event_id, "e1");
    assert!(!prepared.event_id_assigned);
    assert_eq!(prepared.category, EventCategory::Management);
}

#[test]
fn whitespace_and_unknown_fields_are_kept() {
    let raw = "{ \"zzz\": [1, 2],\n \"eventVersion\":\"1.05\", \"userIdentity\":{}, \"eventTime\":\"2023-07-19T21:17:28Z\",\"eventSource\":\"s3.amazonaws.com\",\"eventName\":\"GetObject\",\"awsRegion\":\"eu-west-1\"\n}";
    let prepared = prepare(raw).expect("accepted");
    let text = String::from_utf8(prepared.record).expect("utf8");
    let (prefix, added) = text.split_at(raw.len() - 1);
    assert_eq!(prefix, &raw[..raw.len() - 1]);
    assert_eq!(
        added,
        r#","eventID":"assigned-id","recipientAccountId":"111122223333","eventCategory":"Data","managementEvent":false,"readOnly":true}"#
    );
    assert!(prepared.event_id_assigned);
    assert_eq!(prepared.category, EventCategory::Data);
}

#[test]
fn producer_classification_wins() {
    let raw = r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","managementEvent":true,"readOnly":false}"#;
    let prepared = prepare(raw).expect("accepted");
    assert_eq!(prepared.category, EventCategory::Management);
    let view = EventView::from_record(&prepared.record).expect("view");
    assert_eq!(view.read_only, Some(false));
    assert_eq!(view.category, EventCategory::Management);
}

#[test]
fn view_reads_lookup_fields() {
    let view = EventView::from_record(FULL.as_bytes()).expect("view");
    assert_eq!(view.event_name, "StopLogging");
    assert_eq!(view.username.as_deref(), Some("alice"));
    assert_eq!(view.access_key_id.as_deref(), Some("AKIA1"));
    assert_eq!(view.resources.len(), 1);
    assert_eq!(
        view.resources[0].resource_type.as_deref(),
        Some("AWS::CloudTrail::Trail")
    );
}

#[test]
fn insight_records_have_their_own_required_fields() {
    let raw = r#"{"eventVersion":"1.08","eventTime":"2023-07-19T21:00:00Z","awsRegion":"us-east-1","eventID":"i1","eventType":"AwsCloudTrailInsight","insightDetails":{"state":"Start","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","insightType":"ApiCallRateInsight"}}"#;
    let prepared = prepare(raw).expect("accepted");
    assert_eq!(prepared.category, EventCategory::Insight);
    let view = EventView::from_record(&prepared.record).expect("view");
    assert_eq!(view.event_name, "RunInstances");
}

/// `(description, event JSON, expected kind, expected field)`.
const REJECTIONS: &[(&str, &str, RejectKind, Option<&str>)] = &[
    (
        "not json",
        "{\"eventVersion\":",
        RejectKind::MalformedJson,
        None,
    ),
    ("array", "[1,2]", RejectKind::NotAnObject, None),
    (
        "no version",
        r#"{"userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","awsRegion":"us-east-1"}"#,
        RejectKind::MissingField,
        Some("eventVersion"),
    ),
    (
        "bad version",
        r#"{"eventVersion":"one","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","awsRegion":"us-east-1"}"#,
        RejectKind::InvalidValue,
        Some("eventVersion"),
    ),
    (
        "identity not object",
        r#"{"eventVersion":"1.08","userIdentity":"root","eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","awsRegion":"us-east-1"}"#,
        RejectKind::WrongType,
        Some("userIdentity"),
    ),
    (
        "panther time",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19 21:17:28","eventSource":"a","eventName":"b","awsRegion":"us-east-1"}"#,
        RejectKind::InvalidTimestamp,
        Some("eventTime"),
    ),
    (
        "offset time",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28+02:00","eventSource":"a","eventName":"b","awsRegion":"us-east-1"}"#,
        RejectKind::InvalidTimestamp,
        Some("eventTime"),
    ),
    (
        "numeric time",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":1689801448,"eventSource":"a","eventName":"b","awsRegion":"us-east-1"}"#,
        RejectKind::WrongType,
        Some("eventTime"),
    ),
    (
        "no source",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventName":"b","awsRegion":"us-east-1"}"#,
        RejectKind::MissingField,
        Some("eventSource"),
    ),
    (
        "null name",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":null,"awsRegion":"us-east-1"}"#,
        RejectKind::MissingField,
        Some("eventName"),
    ),
    (
        "no region",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b"}"#,
        RejectKind::MissingField,
        Some("awsRegion"),
    ),
    (
        "bad region",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","awsRegion":"US East"}"#,
        RejectKind::InvalidValue,
        Some("awsRegion"),
    ),
    (
        "readOnly string",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","awsRegion":"us-east-1","readOnly":"true"}"#,
        RejectKind::WrongType,
        Some("readOnly"),
    ),
    (
        "account number",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","awsRegion":"us-east-1","recipientAccountId":123456789012}"#,
        RejectKind::WrongType,
        Some("recipientAccountId"),
    ),
    (
        "params string",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","awsRegion":"us-east-1","requestParameters":"x"}"#,
        RejectKind::WrongType,
        Some("requestParameters"),
    ),
    (
        "resource not object",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","awsRegion":"us-east-1","resources":[1]}"#,
        RejectKind::WrongType,
        Some("resources[0]"),
    ),
    (
        "bad category",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","awsRegion":"us-east-1","eventCategory":"Other"}"#,
        RejectKind::InvalidValue,
        Some("eventCategory"),
    ),
    (
        "short account",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","awsRegion":"us-east-1","recipientAccountId":"001"}"#,
        RejectKind::InvalidValue,
        Some("recipientAccountId"),
    ),
    (
        "insight with identity string",
        r#"{"eventVersion":"1.08","eventTime":"2023-07-19T21:17:28Z","awsRegion":"us-east-1","eventType":"AwsCloudTrailInsight","userIdentity":"x","insightDetails":{"state":"Start","eventSource":"a","eventName":"b"}}"#,
        RejectKind::WrongType,
        Some("userIdentity"),
    ),
    (
        "null category",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","awsRegion":"us-east-1","eventCategory":null}"#,
        RejectKind::WrongType,
        Some("eventCategory"),
    ),
    (
        "duplicate member",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","eventName":"c","awsRegion":"us-east-1"}"#,
        RejectKind::MalformedJson,
        None,
    ),
    (
        "empty id",
        r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","awsRegion":"us-east-1","eventID":""}"#,
        RejectKind::InvalidValue,
        Some("eventID"),
    ),
    (
        "insight without details",
        r#"{"eventVersion":"1.08","eventTime":"2023-07-19T21:17:28Z","awsRegion":"us-east-1","eventType":"AwsCloudTrailInsight"}"#,
        RejectKind::MissingField,
        Some("insightDetails"),
    ),
    (
        "insight without state",
        r#"{"eventVersion":"1.08","eventTime":"2023-07-19T21:17:28Z","awsRegion":"us-east-1","eventType":"AwsCloudTrailInsight","insightDetails":{"eventSource":"a","eventName":"b"}}"#,
        RejectKind::MissingField,
        Some("insightDetails.state"),
    ),
];

#[test]
fn rejections_name_field_and_reason() {
    for (description, raw, kind, field) in REJECTIONS {
        let rejection = prepare(raw).expect_err(description);
        assert_eq!(rejection.kind, *kind, "{description}: {rejection}");
        assert_eq!(
            rejection.field.as_deref(),
            *field,
            "{description}: {rejection}"
        );
        assert!(!rejection.reason.is_empty());
    }
}

#[test]
fn oversize_event_is_rejected() {
    let padding = "x".repeat(MAX_EVENT_BYTES);
    let raw = format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{}},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","awsRegion":"us-east-1","pad":"{padding}"}}"#
    );
    assert_eq!(
        prepare(&raw).expect_err("too large").kind,
        RejectKind::TooLarge
    );
}

#[test]
fn nesting_beyond_the_limit_is_rejected_and_brackets_in_strings_do_not_count() {
    let event = |inner: &str| {
        format!(
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"Root"}},"eventTime":"2023-07-19T21:17:28Z","eventSource":"iam.amazonaws.com","eventName":"CreateAccessKey","awsRegion":"us-east-1","requestParameters":{inner}}}"#
        )
    };
    // requestParameters is level 2: 98 more levels make 100, the limit; one more is refused.
    let nest = |levels: usize, open: &str, close: &str| {
        format!("{}1{}", open.repeat(levels), close.repeat(levels))
    };
    prepare(&event(&format!("{{\"a\":{}}}", nest(98, "[", "]")))).expect("at the limit");
    let refused = prepare(&event(&format!("{{\"a\":{}}}", nest(99, "[", "]"))))
        .expect_err("one level too deep");
    assert_eq!(refused.kind, RejectKind::TooDeep);
    assert!(
        refused.reason.contains("limit is 100"),
        "{}",
        refused.reason
    );
    // The issue's cases: 600 levels of objects, 100,000 of arrays.
    let objects = format!("{}1{}", "{\"a\":".repeat(600), "}".repeat(600));
    assert_eq!(
        prepare(&event(&objects)).expect_err("deep").kind,
        RejectKind::TooDeep
    );
    let arrays = nest(100_000, "[", "]");
    assert_eq!(
        prepare(&event(&arrays)).expect_err("deep").kind,
        RejectKind::TooDeep
    );
    // Brackets inside strings (escaped quotes too) are text, not nesting.
    let text = format!(
        r#"{{"policy":"{}\"{}"}}"#,
        "[{".repeat(5000),
        "]}".repeat(5000)
    );
    prepare(&event(&text)).expect("brackets in a string");
}

mod audit {
    use crate::audit::{prepare_audit_event, AuditContext};
    use crate::event::RejectKind;
    use crate::view::EventView;
    use crate::EventCategory;

    fn ctx_prepare(data: &str) -> Result<crate::PreparedEvent, crate::Rejection> {
        let account = super::account();
        let ctx = AuditContext {
            account_id: &account,
            region: "us-east-1",
            channel_arn: "arn:aws:cloudtrail:us-east-1:111122223333:channel/c1",
            ingestion_time: 1_700_000_000_000,
            fresh_event_id: &|| "fresh".to_owned(),
        };
        prepare_audit_event(data, &ctx)
    }

    const DATA: &str = r#"{"version":"1.0","userIdentity":{"type":"CustomUser","principalId":"u-1"},"eventSource":"billing.example","eventName":"ApproveInvoice","eventTime":"2026-02-11T10:15:00Z","UID":"uid-1","recipientAccountId":"111122223333"}"#;

    #[test]
    fn integration_events_are_wrapped_with_stable_ids() {
        let first = ctx_prepare(DATA).expect("accepted");
        let again = ctx_prepare(DATA).expect("accepted");
        assert_eq!(first.event_id, again.event_id);
        assert_eq!(first.category, EventCategory::ActivityAuditLog);
        let record = String::from_utf8(first.record.clone()).expect("utf8");
        assert!(
            record.ends_with(&format!(",\"eventData\":{DATA}}}")),
            "{record}"
        );
        let view = EventView::from_record(&first.record).expect("view");
        assert_eq!(view.event_name, "ApproveInvoice");
        assert_eq!(view.username.as_deref(), Some("u-1"));
    }

    #[test]
    fn integration_events_are_validated() {
        let wrong_recipient = DATA.replace("111122223333", "999999999999");
        let rejection = ctx_prepare(&wrong_recipient).expect_err("wrong recipient");
        assert_eq!(rejection.field.as_deref(), Some("recipientAccountId"));
        let no_uid = DATA.replace("\"UID\"", "\"uid\"");
        assert_eq!(
            ctx_prepare(&no_uid).expect_err("no UID").kind,
            RejectKind::MissingField
        );
        let no_principal = DATA.replace("principalId", "principal");
        assert_eq!(
            ctx_prepare(&no_principal)
                .expect_err("no principal")
                .field
                .as_deref(),
            Some("userIdentity.principalId")
        );
    }
}

#[test]
fn null_optional_members_count_as_absent() {
    let raw = r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2023-07-19T21:17:28Z","eventSource":"a","eventName":"b","awsRegion":"us-east-1","resources":null,"requestParameters":null,"errorCode":null,"readOnly":null,"additionalEventData":null}"#;
    let prepared = prepare(raw).expect("accepted");
    // readOnly was null: Cairn does not overwrite it, and the view reads it as unknown.
    assert!(!String::from_utf8(prepared.record.clone())
        .expect("utf8")
        .contains("\"readOnly\":false"));
    let view = EventView::from_record(&prepared.record).expect("view");
    assert!(view.resources.is_empty());
}

#[test]
fn additional_event_data_may_be_a_string_as_real_records_have_it() {
    // AWS's own Route 53 Domains example.
    let raw = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser"},"eventTime":"2023-07-19T21:17:28Z","eventSource":"route53domains.amazonaws.com","eventName":"RegisterDomain","awsRegion":"us-east-1","additionalEventData":"Personally-identifying contact information is not logged"}"#;
    let prepared = prepare(raw).expect("accepted");
    let stored = std::str::from_utf8(&prepared.record).expect("utf8");
    assert!(
        stored.contains(
            r#""additionalEventData":"Personally-identifying contact information is not logged""#
        ),
        "{stored}"
    );
}

/// The view ingest reads from the parsed record (carried in the WAL so that Event history does
/// not parse the record again) is the view a parse of the stored record gives, or absent (the
/// indexer parses those). Checked on every record of the sample corpus and on records of
/// every odd shape the view reads differently.
fn view_at_ingest_agrees(raw: &str) -> Option<bool> {
    let prepared = prepare(raw).ok()?;
    let parsed = EventView::from_record(&prepared.record).ok();
    match &prepared.view {
        Some(view) => {
            assert_eq!(Some(view), parsed.as_ref(), "{raw}");
            let mut bytes = Vec::new();
            view.encode_into(&mut bytes);
            assert_eq!(EventView::decode(&bytes).as_ref(), Some(view), "{raw}");
            Some(true)
        }
        None => Some(false),
    }
}

#[test]
fn views_read_at_ingest_match_a_parse_of_the_stored_record() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/cloudtrail-samples/_normalized");
    let (mut accepted, mut with_view) = (0, 0);
    for entry in std::fs::read_dir(&root).expect("samples") {
        let path = entry.expect("entry").path();
        let name = path.to_string_lossy().into_owned();
        if !name.ends_with(".ndjson") || name.contains("digests") {
            continue;
        }
        for line in std::fs::read_to_string(&path).expect("read").lines() {
            if let Some(has_view) = view_at_ingest_agrees(line) {
                accepted += 1;
                with_view += usize::from(has_view);
            }
        }
    }
    assert!(accepted > 100, "{accepted} sample records accepted");
    // Real records take the fast path.
    assert_eq!(with_view, accepted, "records without a view at ingest");

    // Odd shapes: each is read alike, or left to the indexer's parse.
    let base =
        r#""eventVersion":"1.08","eventTime":"2023-07-19T21:17:28Z","awsRegion":"us-east-1""#;
    for members in [
        // Derived members: eventID, category, readOnly.
        r#""userIdentity":{"type":"Root","principalId":"1"},"eventSource":"s3.amazonaws.com","eventName":"ListBuckets""#,
        r#""userIdentity":{},"eventSource":"s3.amazonaws.com","eventName":"GetObject","readOnly":null"#,
        r#""userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/r/sess"},"eventSource":"iam.amazonaws.com","eventName":"CreateUser","eventID":"x1","readOnly":true"#,
        // Resources: ARN, name, empty type.
        r#""userIdentity":{"accessKeyId":""},"eventSource":"a","eventName":"B","resources":[{"ARN":"arn:1","type":""},{"name":"n"},{"type":"T"}]"#,
        r#""userIdentity":{"sessionContext":{"sessionIssuer":{"userName":"issuer"}}},"eventSource":"a","eventName":"B","eventCategory":"Management""#,
        // Insights: the subject in insightDetails, with or without its own identity.
        r#""eventType":"AwsCloudTrailInsight","eventCategory":"Insight","insightDetails":{"state":"Start","eventSource":"iam.amazonaws.com","eventName":"DeleteUser"}"#,
        r#""eventType":"AwsCloudTrailInsight","eventCategory":"Insight","eventSource":"top","insightDetails":{"state":"Start","eventSource":"s","eventName":"n","userIdentity":{"userName":"in"}}"#,
        r#""eventType":"AwsCloudTrailInsight","eventCategory":"Insight","insightDetails":{"state":"End","eventSource":"s","eventName":"n","userIdentity":"odd"}"#,
        // Integration events: the subject in eventData, or none.
        r#""userIdentity":{"userName":"top"},"eventSource":"a","eventName":"B","eventCategory":"ActivityAuditLog","eventData":{"eventSource":"ext","eventName":"Do","userIdentity":{"userName":"inner"}}"#,
        r#""userIdentity":{"userName":"top"},"eventSource":"a","eventName":"B","eventCategory":"ActivityAuditLog","eventData":"not an object""#,
        r#""userIdentity":{"userName":"top"},"eventSource":"a","eventName":"B","eventCategory":"ActivityAuditLog","eventData":{"eventSource":5}"#,
        r#""userIdentity":{"userName":"top"},"eventSource":"a","eventName":"B","eventCategory":"ActivityAuditLog""#,
        // Empty strings read as absent.
        r#""userIdentity":{"userName":"","accessKeyId":"","principalId":""},"eventSource":"a","eventName":"B","eventID":"e""#,
    ] {
        let raw = format!("{{{base},{members}}}");
        assert!(
            view_at_ingest_agrees(&raw).is_some(),
            "a test record was refused: {raw}"
        );
    }
}

#[test]
fn a_damaged_view_does_not_decode() {
    let prepared = prepare(FULL).expect("accepted");
    let mut bytes = Vec::new();
    prepared.view.expect("view").encode_into(&mut bytes);
    for cut in 0..bytes.len() {
        assert_eq!(EventView::decode(&bytes[..cut]), None, "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(EventView::decode(&longer), None);
}
