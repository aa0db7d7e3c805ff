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
    // Every other record carries its view, as ingest's payloads do; the others are parsed.
    let views: Vec<Option<Vec<u8>>> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let view = EventView::from_record(r.as_bytes()).ok()?;
            (i % 2 == 0).then(|| {
                let mut out = Vec::new();
                view.encode_into(&mut out);
                out
            })
        })
        .collect();
    let items: Vec<_> = records
        .iter()
        .zip(&views)
        .enumerate()
        .map(|(i, (r, view))| IndexItem {
            seq: first_seq + i as u64,
            record: r.as_bytes(),
            digest: producer_digest(r.as_bytes()),
            provenance: &[],
            view: view.as_deref(),
        })
        .collect();
    store.index_batch(&items, now).expect("index")
}

/// Every page of `query` (its `max_results` each, checked), in order: (eventTime, eventID).
fn every_page(store: &HistoryStore, mut query: LookupQuery) -> Vec<(EpochMillis, String)> {
    let size = query.max_results.unwrap_or(MAX_PAGE);
    let mut seen = Vec::new();
    loop {
        let page = store.lookup(&query, now()).expect("lookup");
        assert!(page.events.len() <= size);
        seen.extend(
            page.events
                .iter()
                .map(|e| (e.view.event_time, e.view.event_id.clone())),
        );
        match page.next_token {
            Some(token) => query.next_token = Some(token),
            None => return seen,
        }
    }
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
        let seen = every_page(&store, query);
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
    // The old day closed: its runs folded, its chunks merged (a `merged_D` note in meta).
    let old_day = utc_day(parse_utc("2026-01-01T10:00:00Z").expect("time"));
    assert!(store.compact(now()).expect("compact") >= 1);
    assert!(store.meta_names().contains(&compact::merged_key(old_day)));
    // ...and then dropped from disk, ids, tables and notes included.
    assert!(store.expire(later).expect("expire") >= 1);
    let left: Vec<String> = store
        .table_names()
        .into_iter()
        .filter(|name| keys::day_of_table(name) == Some(old_day))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    assert!(!store.meta_names().contains(&compact::merged_key(old_day)));
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

fn stored_format(store: &HistoryStore) -> Option<u64> {
    let db = store.db.get().expect("db");
    let tx = db.begin_read().expect("read");
    let meta = tx.open_table(META).expect("meta");
    meta.get(FORMAT).expect("format").map(|v| v.value())
}

/// A store written before runs (format 2: every value in chunks) is read as it is when opened
/// — not migrated — and is format 3 once a batch may have written runs into it.
#[test]
fn a_format_2_store_is_read_as_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.redb");
    let users = |store: &HistoryStore, user: &str| {
        let mut query = LookupQuery::region("us-east-1");
        query.attribute = Some((AttributeKey::Username, user.to_owned()));
        ids(&store.lookup(&query, now()).expect("lookup"))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    {
        // Spilling at one posting: every value in a chunk, as format 2 wrote them.
        let store = HistoryStore::open(&path, &HistoryConfig::default())
            .expect("open")
            .with_run_shape(1, 16);
        index(
            &store,
            &[event(
                "old",
                "2026-02-27T10:00:00Z",
                "us-east-1",
                "A",
                "olga",
            )],
            1,
            now(),
        );
        assert!(!store.table_names().iter().any(|t| t.starts_with("run")));
        let db = store.db.get().expect("db");
        let tx = db.begin_write().expect("write");
        tx.open_table(META)
            .expect("meta")
            .insert(FORMAT, FORMAT_WITHOUT_RUNS)
            .expect("format");
        tx.commit().expect("commit");
    }
    let store = HistoryStore::open(&path, &HistoryConfig::default()).expect("reopen");
    assert_eq!(
        stored_format(&store),
        Some(FORMAT_WITHOUT_RUNS),
        "not migrated"
    );
    assert_eq!(users(&store, "olga"), ["old"]);
    index(
        &store,
        &[event(
            "new",
            "2026-02-27T11:00:00Z",
            "us-east-1",
            "A",
            "olga",
        )],
        2,
        now(),
    );
    assert!(store.table_names().iter().any(|t| t.starts_with("run_")));
    assert_eq!(stored_format(&store), Some(CURRENT_FORMAT));
    assert_eq!(users(&store, "olga"), ["new", "old"]);
}

/// The events of `testdata/v1-history.redb` (written by the version-1 layout).
fn v1_fixture_events() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for i in 0..40u32 {
        let day = 20 + i % 3;
        let region = if i % 4 == 0 { "eu-west-1" } else { "us-east-1" };
        let name = ["CreateUser", "GetUser", "DeleteUser", "PutUserPolicy"][(i % 4) as usize];
        let user = ["alice", "bob", "carol"][(i % 3) as usize];
        let mut record = event(
            &format!("v1-{i:02}"),
            &format!("2026-02-{day}T{:02}:{:02}:00Z", i % 24, i % 60),
            region,
            name,
            user,
        );
        if i % 10 == 9 {
            record = record.replace("\"Management\"", "\"Data\"");
        }
        let provenance = if i % 2 == 0 {
            Provenance::Principal {
                arn: format!("arn:aws:iam::123456789012:user/{user}"),
                access_key_id: format!("AKIA{user}"),
            }
            .encode()
        } else {
            Vec::new()
        };
        out.push((record, provenance));
    }
    out
}

/// `testdata/v1-history.redb.gz` was written by the version-1 layout (before compressed
/// blocks) from [`v1_fixture_events`], as seq 100.. in two batches at [`now`].
#[test]
fn a_version_1_store_is_migrated_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.redb");
    let fixture = std::fs::File::open(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/v1-history.redb.gz"),
    )
    .expect("fixture");
    let mut out = std::fs::File::create(&path).expect("create");
    std::io::copy(&mut flate2::read::GzDecoder::new(fixture), &mut out).expect("inflate");
    drop(out);
    let events = v1_fixture_events();
    let check = |store: &HistoryStore| {
        assert_eq!(store.applied_seq().expect("seq"), 139);
        assert_eq!(store.recorded_ids().expect("ids"), 40);
        for (record, provenance) in &events {
            let view = EventView::from_record(record.as_bytes()).expect("view");
            let recorded = store.recorded_id(&view.event_id).expect("id");
            assert_eq!(
                recorded.map(|r| r.digest),
                Some(producer_digest(record.as_bytes())),
                "{}",
                view.event_id
            );
            let mut query = LookupQuery::region(&view.aws_region);
            query.attribute = Some((AttributeKey::EventId, view.event_id.clone()));
            let page = store.lookup(&query, now()).expect("lookup");
            if view.category == EventCategory::Data {
                assert!(page.events.is_empty(), "{}", view.event_id);
                continue;
            }
            assert_eq!(page.events.len(), 1, "{}", view.event_id);
            assert_eq!(page.events[0].record, record.as_bytes());
            assert_eq!(page.events[0].provenance, Provenance::decode(provenance));
        }
        // Every attribute still finds its events, newest first, across the three days.
        let expected = |keep: &dyn Fn(&EventView) -> bool| -> Vec<String> {
            let mut views: Vec<EventView> = events
                .iter()
                .map(|(r, _)| EventView::from_record(r.as_bytes()).expect("view"))
                .filter(|v| v.category == EventCategory::Management && v.aws_region == "us-east-1")
                .filter(|v| keep(v))
                .collect();
            views.sort_by_key(|v| std::cmp::Reverse(v.event_time));
            views.into_iter().map(|v| v.event_id).collect()
        };
        let all_pages = |attribute: Option<(AttributeKey, &str)>| -> Vec<String> {
            let mut query = LookupQuery::region("us-east-1");
            query.attribute = attribute.map(|(k, v)| (k, v.to_owned()));
            query.max_results = Some(4);
            every_page(store, query)
                .into_iter()
                .map(|(_, id)| id)
                .collect()
        };
        assert_eq!(all_pages(None), expected(&|_| true));
        assert_eq!(
            all_pages(Some((AttributeKey::Username, "alice"))),
            expected(&|v| v.username.as_deref() == Some("alice"))
        );
        assert_eq!(
            all_pages(Some((AttributeKey::EventName, "DeleteUser"))),
            expected(&|v| v.event_name == "DeleteUser")
        );
        assert_eq!(
            all_pages(Some((
                AttributeKey::IngestedBy,
                "arn:aws:iam::123456789012:user/bob"
            ))),
            expected(&|v| v.username.as_deref() == Some("bob")
                && events.iter().any(|(r, p)| !p.is_empty()
                    && EventView::from_record(r.as_bytes()).expect("view").event_id == v.event_id))
        );
    };
    {
        let store = HistoryStore::open(&path, &HistoryConfig::default()).expect("migrate");
        check(&store);
        let tx = store.db.begin_read().expect("read");
        let names: Vec<String> = tx
            .list_tables()
            .expect("tables")
            .map(|t| t.name().to_owned())
            .collect();
        assert!(
            names.iter().all(|n| n != "event_ids"
                && !n.starts_with("events_")
                && !n.starts_with("index_")
                && !n.starts_with("ids_")),
            "{names:?}"
        );
    }
    // Opened again: nothing to migrate, the same answers; new events join the migrated ones.
    let store = HistoryStore::open(&path, &HistoryConfig::default()).expect("reopen");
    check(&store);
    let report = index(
        &store,
        &[event(
            "new",
            "2026-02-22T23:59:00Z",
            "us-east-1",
            "GetUser",
            "alice",
        )],
        140,
        now(),
    );
    assert_eq!(report.indexed, 1);
    let mut query = LookupQuery::region("us-east-1");
    query.attribute = Some((AttributeKey::Username, "alice".into()));
    let page = store.lookup(&query, now()).expect("lookup");
    assert_eq!(page.events[0].view.event_id, "new");
}

/// A small deterministic generator (xorshift), so that a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Lookups agree with a plain model of the events — every page, page size and time range —
/// over events out of time order, many in the same millisecond, in batches from one event
/// (the open block is written again) to thousands (blocks fill and close), with replays.
#[test]
fn lookups_agree_with_a_model_across_blocks_batches_and_pages() {
    let (_dir, store) = store();
    agrees_with_model_throughout(store);
}

/// The same with runs that spill at 3 postings and merge in pairs: many levels of runs, values
/// spilled from merges, runs of closed days folded, late events into runs of closed days.
#[test]
fn lookups_agree_with_a_model_through_every_level_of_runs() {
    let (_dir, store) = store();
    let store = store.with_run_shape(3, 2);
    agrees_with_model_throughout(store);
}

fn run_tables(store: &HistoryStore) -> Vec<String> {
    store
        .table_names()
        .into_iter()
        .filter(|name| name.starts_with("run"))
        .collect()
}

fn agrees_with_model_throughout(store: HistoryStore) {
    // Recent ids merge into the `ids` table every 777 or so: many merges, mid-batch too.
    let store = store.with_id_merge_threshold(777);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let base = parse_utc("2026-02-24T00:00:00Z").expect("time");
    let users = ["alice", "bob", "carol", "dave", "erin"];
    let names = ["GetUser", "CreateUser", "DeleteUser", "PutRolePolicy"];
    let mut records = Vec::new();
    for i in 0..6_000u64 {
        // Three days in random order, often several in the same second.
        let time = base + (rng.below(3 * 86_400) as i64 / 600) * 600_000;
        let region = if rng.below(5) == 0 {
            "eu-west-1"
        } else {
            "us-east-1"
        };
        records.push(event(
            &format!("m{i:05}"),
            &cairn_model::time::format_utc_seconds(time),
            region,
            names[rng.below(4) as usize],
            users[rng.below(5) as usize],
        ));
    }
    let mut seq = 1u64;
    let mut at = 0usize;
    while at < records.len() {
        let size = match rng.below(4) {
            0 => 1,
            1 => 1 + rng.below(20) as usize,
            _ => 1 + rng.below(2_500) as usize,
        };
        let end = (at + size).min(records.len());
        index(&store, &records[at..end], seq, now());
        seq += (end - at) as u64;
        // A replay of part of the batch under new sequence numbers changes nothing.
        if rng.below(6) == 0 {
            let replay = &records[at..(at + 3).min(end)];
            let report = index(&store, replay, seq, now());
            assert_eq!(report.duplicates, replay.len());
            seq += replay.len() as u64;
        }
        at = end;
    }
    let views: Vec<EventView> = records
        .iter()
        .map(|r| EventView::from_record(r.as_bytes()).expect("view"))
        .collect();
    agrees_with_model(&store, &views, base, "as indexed");
    let runs = run_tables(&store);
    assert!(
        runs.iter().any(|name| name.starts_with("rundir_")),
        "rare values went to runs: {runs:?}"
    );
    if store.runs.fanout == 2 {
        assert!(
            runs.iter()
                .any(|name| name.starts_with("run_") && !name.contains("_0_")),
            "runs merged into higher levels: {runs:?}"
        );
    }
    // The three days closed: their runs fold into chunks, the chunks merge, and the answers
    // stay.
    let after = base + 4 * 86_400_000;
    assert_eq!(store.compact(after).expect("compact"), 3);
    assert_eq!(run_tables(&store), Vec::<String>::new(), "runs folded");
    agrees_with_model(&store, &views, base, "merged");
    assert_eq!(
        store.compact(after).expect("compact"),
        0,
        "nothing new to merge"
    );
    // Late events into merged days, some replayed: they join, and a second merge keeps them.
    let late: Vec<String> = (0..400u64)
        .map(|i| {
            let time = base + (rng.below(3 * 86_400) as i64 / 600) * 600_000;
            event(
                &format!("late{i:04}"),
                &cairn_model::time::format_utc_seconds(time),
                "us-east-1",
                names[rng.below(4) as usize],
                users[rng.below(5) as usize],
            )
        })
        .collect();
    for part in late.chunks(3) {
        index(&store, part, seq, now());
        seq += part.len() as u64;
    }
    let mut views = views;
    views.extend(
        late.iter()
            .map(|r| EventView::from_record(r.as_bytes()).expect("view")),
    );
    agrees_with_model(&store, &views, base, "late events after the merge");
    assert_eq!(
        store.compact(after).expect("compact"),
        3,
        "many new chunks: merged again"
    );
    agrees_with_model(&store, &views, base, "merged again");
    // Every event is found by its id, with its record.
    for (record, view) in records.iter().zip(&views).step_by(97) {
        let mut query = LookupQuery::region(&view.aws_region);
        query.attribute = Some((AttributeKey::EventId, view.event_id.clone()));
        let page = store.lookup(&query, now()).expect("lookup");
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.events[0].record, record.as_bytes());
    }
}

/// Every lookup shape, page size and range of `lookups_agree_with_a_model...`, against the model.
fn agrees_with_model(store: &HistoryStore, views: &[EventView], base: EpochMillis, when: &str) {
    for (attribute, page_size, range) in [
        (None, 50, None),
        (Some((AttributeKey::Username, "carol")), 7, None),
        (
            Some((AttributeKey::EventName, "DeleteUser")),
            50,
            Some((1, 2)),
        ),
        (Some((AttributeKey::ResourceName, "bob")), 13, None),
        (Some((AttributeKey::ReadOnly, "true")), 50, Some((0, 1))),
        (None, 1, Some((2, 3))),
    ] {
        let mut query = LookupQuery::region("us-east-1");
        query.attribute = attribute.map(|(k, v): (AttributeKey, &str)| (k, v.to_owned()));
        query.max_results = Some(page_size);
        if let Some((from, to)) = range {
            query.start_time = Some(base + from * 86_400_000 / 2);
            query.end_time = Some(base + to * 86_400_000 / 2);
        }
        let seen = every_page(store, query);
        let mut expected: Vec<(i64, String)> = views
            .iter()
            .filter(|v| v.aws_region == "us-east-1")
            .filter(|v| {
                range.is_none_or(|(from, to)| {
                    v.event_time >= base + from * 86_400_000 / 2
                        && v.event_time <= base + to * 86_400_000 / 2
                })
            })
            .filter(|v| match attribute {
                None => true,
                Some((AttributeKey::Username, u)) => v.username.as_deref() == Some(u),
                Some((AttributeKey::EventName, n)) => v.event_name == n,
                Some((AttributeKey::ResourceName, r)) => v
                    .resources
                    .iter()
                    .any(|x| x.name == r || x.name.rsplit(['/', ':']).next() == Some(r)),
                Some((AttributeKey::ReadOnly, r)) => {
                    v.read_only.map(|b| b.to_string()).as_deref() == Some(r)
                }
                Some(_) => unreachable!(),
            })
            .map(|v| (v.event_time, v.event_id.clone()))
            .collect();
        // Newest first; the order of equal times is the store's (by sequence number), so
        // compare times in order and the ids as sets.
        expected.sort_by(|a, b| b.cmp(a));
        assert_eq!(
            seen.iter().map(|s| s.0).collect::<Vec<_>>(),
            expected.iter().map(|s| s.0).collect::<Vec<_>>(),
            "{when}: {attribute:?} {page_size} {range:?}"
        );
        let mut seen_ids: Vec<_> = seen.into_iter().map(|s| s.1).collect();
        let mut expected_ids: Vec<_> = expected.into_iter().map(|s| s.1).collect();
        seen_ids.sort();
        expected_ids.sort();
        assert_eq!(
            seen_ids, expected_ids,
            "{when}: {attribute:?} {page_size} {range:?}"
        );
    }
}

/// Ids indexed since the last merge live in memory and in the `idlog`: after a restart they are
/// known again (a replay is a duplicate, a lookup by id finds the event, the digest is the
/// same), they merge at the threshold, and expiry removes them like any other.
#[test]
fn recent_ids_survive_a_restart_merge_and_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.redb");
    let open = || {
        HistoryStore::open(&path, &HistoryConfig::default())
            .expect("open")
            .with_id_merge_threshold(10)
    };
    let records: Vec<String> = (0..25)
        .map(|i| {
            event(
                &format!("r{i:02}"),
                &format!("2026-02-2{}T10:00:{i:02}Z", i % 3),
                "us-east-1",
                "PutThing",
                "rita",
            )
        })
        .collect();
    let found = |store: &HistoryStore, id: &str| {
        let mut query = LookupQuery::region("us-east-1");
        query.attribute = Some((AttributeKey::EventId, id.to_owned()));
        store.lookup(&query, now()).expect("lookup").events.len()
    };
    {
        let store = open();
        // 6 ids: below the threshold, so only in memory and the log.
        assert_eq!(index(&store, &records[..6], 1, now()).indexed, 6);
        assert_eq!(store.recorded_ids().expect("count"), 6);
    }
    let store = open();
    assert_eq!(
        store.recorded_ids().expect("count"),
        6,
        "read back from the log"
    );
    assert_eq!(index(&store, &records[..6], 100, now()).duplicates, 6);
    assert_eq!(found(&store, "r03"), 1);
    assert_eq!(
        store.recorded_id("r03").expect("id").map(|r| r.digest),
        Some(producer_digest(records[3].as_bytes()))
    );
    // Past the threshold: merged into `ids`, the log emptied; still all known.
    assert_eq!(index(&store, &records[6..19], 200, now()).indexed, 13);
    assert_eq!(index(&store, &records[..19], 300, now()).duplicates, 19);
    drop(store);
    let store = open();
    assert_eq!(store.recorded_ids().expect("count"), 19);
    assert_eq!(index(&store, &records[19..], 400, now()).indexed, 6);
    for i in [0, 7, 18, 24] {
        assert_eq!(found(&store, &format!("r{i:02}")), 1, "r{i:02}");
    }
    // Expiry of every day removes recent and merged ids alike.
    let later = now() + 200 * DAY_MS;
    store.expire(later).expect("expire");
    assert_eq!(store.recorded_ids().expect("count"), 0);
    drop(store);
    assert_eq!(
        open().recorded_ids().expect("count"),
        0,
        "and the log is empty"
    );
}

/// Folding a closed day's runs into its chunks keeps pages packed: inserted in ascending
/// order just before existing keys, redb gave every folded value a 4 KiB page of its own (30
/// times the bytes stored, unused).
#[test]
fn folding_runs_keeps_pages_packed() {
    let (_dir, store) = store();
    let mut seq = 1;
    for batch in 0..5 {
        let records: Vec<String> = (0..4000)
            .map(|i| {
                event(
                    &format!("f{batch}-{i}"),
                    &format!("2026-02-21T10:{:02}:{:02}Z", batch * 10 + i % 10, i % 60),
                    "us-east-1",
                    "PutThing",
                    &format!("user-{}", (i * 7 + batch * 13) % 3000),
                )
            })
            .collect();
        index(&store, &records, seq, now());
        seq += 4000;
    }
    assert!(store.table_names().iter().any(|t| t.starts_with("run_")));
    assert_eq!(store.compact(now()).expect("compact"), 1);
    let postings = store
        .space()
        .expect("space")
        .into_iter()
        .find(|part| part.part == "postings")
        .expect("postings");
    assert!(
        postings.fragmented_bytes < 2 * postings.stored_bytes,
        "{postings:?}"
    );
}
