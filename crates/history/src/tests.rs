use super::*;
use cairn_model::event::producer_digest;
use cairn_model::time::parse_utc;

fn store() -> (tempfile::TempDir, HistoryStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = HistoryStore::open(&dir.path().join("history.redb"), &HistoryConfig::default())
        .expect("open");
    (dir, store)
}

fn event(id: &str, time: &str, region: &str, name: &str, user: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","userName":"{user}","accessKeyId":"AKIA{user}"}},"eventTime":"{time}","eventSource":"iam.amazonaws.com","eventName":"{name}","awsRegion":"{region}","eventID":"{id}","readOnly":{},"eventCategory":"Management","resources":[{{"ARN":"arn:aws:iam::123456789012:user/{user}","type":"AWS::IAM::User"}}]}}"#,
        name.starts_with("Get")
    )
}

fn index(
    store: &HistoryStore,
    records: &[String],
    first_seq: u64,
    now: EpochMillis,
) -> IndexReport {
    let items: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, r)| IndexItem {
            seq: first_seq + i as u64,
            record: r.as_bytes(),
            digest: producer_digest(r.as_bytes()),
            provenance: &[],
        })
        .collect();
    store.index_batch(&items, now).expect("index")
}

fn now() -> EpochMillis {
    parse_utc("2026-03-01T00:00:00Z").expect("time")
}

fn ids(page: &LookupPage) -> Vec<&str> {
    page.events
        .iter()
        .map(|e| e.view.event_id.as_str())
        .collect()
}

#[test]
fn lookups_by_every_attribute_newest_first() {
    let (_dir, store) = store();
    let records = vec![
        event(
            "a",
            "2026-02-20T10:00:00Z",
            "us-east-1",
            "CreateUser",
            "alice",
        ),
        event("b", "2026-02-21T10:00:00Z", "us-east-1", "GetUser", "bob"),
        event(
            "c",
            "2026-02-22T10:00:00Z",
            "eu-west-1",
            "CreateUser",
            "alice",
        ),
        event(
            "d",
            "2026-02-22T11:00:00Z",
            "us-east-1",
            "DeleteUser",
            "alice",
        ),
    ];
    let report = index(&store, &records, 1, now());
    assert_eq!(report.indexed, 4);
    assert_eq!(store.applied_seq().expect("seq"), 4);
    let lookup = |attribute: Option<(AttributeKey, &str)>| {
        let mut query = LookupQuery::region("us-east-1");
        query.attribute = attribute.map(|(k, v)| (k, v.to_owned()));
        store.lookup(&query, now()).expect("lookup")
    };
    assert_eq!(ids(&lookup(None)), ["d", "b", "a"]);
    assert_eq!(
        ids(&lookup(Some((AttributeKey::EventName, "CreateUser")))),
        ["a"]
    );
    assert_eq!(
        ids(&lookup(Some((AttributeKey::Username, "alice")))),
        ["d", "a"]
    );
    assert_eq!(ids(&lookup(Some((AttributeKey::ReadOnly, "true")))), ["b"]);
    assert_eq!(
        ids(&lookup(Some((AttributeKey::AccessKeyId, "AKIAbob")))),
        ["b"]
    );
    assert_eq!(
        ids(&lookup(Some((
            AttributeKey::EventSource,
            "iam.amazonaws.com"
        )))),
        ["d", "b", "a"]
    );
    assert_eq!(
        ids(&lookup(Some((
            AttributeKey::ResourceType,
            "AWS::IAM::User"
        )))),
        ["d", "b", "a"]
    );
    assert_eq!(
        ids(&lookup(Some((AttributeKey::ResourceName, "bob")))),
        ["b"]
    );
    assert_eq!(
        ids(&lookup(Some((
            AttributeKey::ResourceName,
            "arn:aws:iam::123456789012:user/bob"
        )))),
        ["b"]
    );
    assert_eq!(ids(&lookup(Some((AttributeKey::EventId, "d")))), ["d"]);
    assert_eq!(
        ids(&lookup(Some((AttributeKey::EventId, "c")))),
        Vec::<&str>::new(),
        "other region"
    );
    assert_eq!(
        ids(&lookup(Some((AttributeKey::EventName, "Nothing")))),
        Vec::<&str>::new()
    );
    let page = lookup(None);
    assert_eq!(
        page.events[0].record,
        records[3].as_bytes(),
        "records come back byte-identical"
    );
}

#[test]
fn ranges_outside_retention_are_empty_not_errors() {
    let (_dir, store) = store();
    index(
        &store,
        &[event("a", "2026-02-20T10:00:00Z", "us-east-1", "A", "u")],
        1,
        now(),
    );
    let mut query = LookupQuery::region("us-east-1");
    // Ends before the retention window starts, on the same UTC day.
    let retention_start = now() - 90 * DAY_MS;
    query.start_time = Some(retention_start - 7_200_000);
    query.end_time = Some(retention_start - 3_600_000);
    assert!(store
        .lookup(&query, now())
        .expect("lookup")
        .events
        .is_empty());
    query.attribute = Some((AttributeKey::Username, "u".into()));
    assert!(store
        .lookup(&query, now())
        .expect("lookup")
        .events
        .is_empty());
}

#[test]
fn time_range_is_inclusive() {
    let (_dir, store) = store();
    let records = vec![
        event("a", "2026-02-20T10:00:00Z", "us-east-1", "A", "u"),
        event("b", "2026-02-20T11:00:00Z", "us-east-1", "B", "u"),
        event("c", "2026-02-20T12:00:00Z", "us-east-1", "C", "u"),
    ];
    index(&store, &records, 1, now());
    let mut query = LookupQuery::region("us-east-1");
    query.start_time = Some(parse_utc("2026-02-20T11:00:00Z").expect("t"));
    query.end_time = Some(parse_utc("2026-02-20T12:00:00Z").expect("t"));
    assert_eq!(
        ids(&store.lookup(&query, now()).expect("lookup")),
        ["c", "b"]
    );
    query.attribute = Some((AttributeKey::Username, "u".into()));
    assert_eq!(
        ids(&store.lookup(&query, now()).expect("lookup")),
        ["c", "b"]
    );
}

#[test]
fn pages_cover_everything_once() {
    let (_dir, store) = store();
    let base = parse_utc("2026-02-01T00:00:00Z").expect("time");
    // 230 events over 9 days, several in the same second.
    let records: Vec<_> = (0..230)
        .map(|i| {
            let time = cairn_model::time::format_utc_seconds(base + (i / 3) * 3_600_000);
            event(
                &format!("e{i:03}"),
                &time,
                "us-east-1",
                "PutThing",
                if i % 2 == 0 { "even" } else { "odd" },
            )
        })
        .collect();
    index(&store, &records[..100], 1, now());
    index(&store, &records[100..], 101, now());
    for attribute in [None, Some((AttributeKey::Username, "even".to_owned()))] {
        let mut query = LookupQuery::region("us-east-1");
        query.attribute = attribute.clone();
        query.max_results = Some(17);
        let mut seen = Vec::new();
        loop {
            let page = store.lookup(&query, now()).expect("lookup");
            assert!(page.events.len() <= 17);
            seen.extend(
                page.events
                    .iter()
                    .map(|e| (e.view.event_time, e.view.event_id.clone())),
            );
            match page.next_token {
                Some(token) => query.next_token = Some(token),
                None => break,
            }
        }
        let expected = if attribute.is_some() { 115 } else { 230 };
        assert_eq!(seen.len(), expected);
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(
            seen.iter().map(|s| s.0).collect::<Vec<_>>(),
            sorted.iter().map(|s| s.0).collect::<Vec<_>>()
        );
        let mut unique: Vec<_> = seen.iter().map(|s| s.1.clone()).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), expected);
    }
}

#[test]
fn duplicates_and_replays_are_indexed_once() {
    let (_dir, store) = store();
    let records = vec![event("a", "2026-02-20T10:00:00Z", "us-east-1", "A", "u")];
    assert_eq!(index(&store, &records, 1, now()).indexed, 1);
    // Replay of an applied sequence number: skipped.
    assert_eq!(index(&store, &records, 1, now()), IndexReport::default());
    // Same eventID at a new sequence number: recorded as a duplicate.
    assert_eq!(index(&store, &records, 2, now()).duplicates, 1);
    assert_eq!(
        store
            .lookup(&LookupQuery::region("us-east-1"), now())
            .expect("lookup")
            .events
            .len(),
        1
    );
    let digest = producer_digest(records[0].as_bytes());
    assert_eq!(
        store.recorded_id("a").expect("id"),
        Some(RecordedId { digest })
    );
    assert_eq!(store.recorded_id("zzz").expect("id"), None);
}

#[test]
fn data_events_are_not_in_history_and_insights_only_on_request() {
    let (_dir, store) = store();
    let data = r#"{"eventVersion":"1.08","userIdentity":{},"eventTime":"2026-02-20T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","eventID":"data-1","eventCategory":"Data"}"#.to_owned();
    let insight = r#"{"eventVersion":"1.08","eventTime":"2026-02-20T10:00:00Z","awsRegion":"us-east-1","eventID":"ins-1","eventType":"AwsCloudTrailInsight","eventCategory":"Insight","insightDetails":{"state":"Start","eventSource":"ec2.amazonaws.com","eventName":"RunInstances"}}"#.to_owned();
    let report = index(&store, &[data, insight], 1, now());
    assert_eq!((report.indexed, report.ids_only), (1, 1));
    assert!(store
        .lookup(&LookupQuery::region("us-east-1"), now())
        .expect("lookup")
        .events
        .is_empty());
    let mut query = LookupQuery::region("us-east-1");
    query.insights = true;
    assert_eq!(
        ids(&store.lookup(&query, now()).expect("lookup")),
        ["ins-1"]
    );
    query.attribute = Some((AttributeKey::EventName, "RunInstances".into()));
    assert_eq!(
        ids(&store.lookup(&query, now()).expect("lookup")),
        ["ins-1"]
    );
    assert!(
        store.recorded_id("data-1").expect("id").is_some(),
        "data events are still deduplicated"
    );
}

#[test]
fn expired_events_go_away() {
    let (_dir, store) = store();
    let records = vec![
        event("old", "2026-01-01T10:00:00Z", "us-east-1", "A", "u"),
        event("new", "2026-02-27T10:00:00Z", "us-east-1", "A", "u"),
    ];
    index(&store, &records, 1, now());
    assert_eq!(
        store
            .lookup(&LookupQuery::region("us-east-1"), now())
            .expect("lookup")
            .events
            .len(),
        2
    );
    let later = now() + 70 * DAY_MS;
    // Not searchable once older than 90 days, even before the day is dropped...
    assert_eq!(
        ids(&store
            .lookup(&LookupQuery::region("us-east-1"), later)
            .expect("lookup")),
        ["new"]
    );
    // ...and then dropped from disk, ids included.
    assert!(store.expire(later).expect("expire") >= 1);
    assert_eq!(store.recorded_id("old").expect("id"), None);
    assert!(store.recorded_id("new").expect("id").is_some());
    assert_eq!(store.recorded_ids().expect("count"), 1);
    // Events already older than retention when indexed are only recorded for idempotency.
    let ancient = vec![event(
        "ancient",
        "2020-01-01T00:00:00Z",
        "us-east-1",
        "A",
        "u",
    )];
    assert_eq!(index(&store, &ancient, 3, later).ids_only, 1);
}

#[test]
fn state_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.redb");
    {
        let store = HistoryStore::open(&path, &HistoryConfig::default()).expect("open");
        index(
            &store,
            &[event("a", "2026-02-20T10:00:00Z", "us-east-1", "A", "u")],
            7,
            now(),
        );
    }
    let store = HistoryStore::open(&path, &HistoryConfig::default()).expect("reopen");
    assert_eq!(store.applied_seq().expect("seq"), 7);
    assert_eq!(
        store
            .lookup(&LookupQuery::region("us-east-1"), now())
            .expect("lookup")
            .events
            .len(),
        1
    );
}
