//! Compaction: which files merge (as data), and that merging — finished, interrupted at each
//! step of its swap, or waiting for a query — never changes what a query answers.

use crate::compact::{self, crash, plan_day, DayFile, TARGET_FILE_BYTES};
use crate::store::{self, EventDataStore, Stores};
use crate::{query, to_table};
use cairn_model::provenance::Provenance;
use serde_json::Value;
use std::sync::Arc;

const MIB: u64 = 1 << 20;

fn day(sizes: &[u64]) -> Vec<DayFile> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &bytes)| DayFile {
            name: format!("f{i}"),
            bytes,
        })
        .collect()
}

/// A case of [`plan_day`]: the day's file sizes, whether it is closed, the groups that merge.
type Case<'a> = (&'a [u64], bool, &'a [&'a [usize]]);

#[test]
fn which_files_merge() {
    let cases: &[Case<'_>] = &[
        // A closed day merges every small file, whatever their number.
        (&[10, 20], true, &[&[0, 1]]),
        (&[10], true, &[]),
        // Files of half the target or more stay as they are.
        (&[TARGET_FILE_BYTES / 2, 10, 20], true, &[&[1, 2]]),
        // Groups stop at the target size.
        (
            &[30 * MIB, 30 * MIB, 30 * MIB, 30 * MIB, 1],
            true,
            &[&[0, 1], &[2, 3, 4]],
        ),
        // An open day waits for eight files of one tier...
        (&[1, 2, 3, 4, 5, 6, 7], false, &[]),
        (
            &[1, 2, 3, 4, 5, 6, 7, 8],
            false,
            &[&[0, 1, 2, 3, 4, 5, 6, 7]],
        ),
        // ...and merges only files of the same tier (under 1 MiB, then 1 to 8 MiB).
        (
            &[1, 2, 3, 4, 5, 6, 7, 2 * MIB, 8],
            false,
            &[&[0, 1, 2, 3, 4, 5, 6, 8]],
        ),
        (&[2 * MIB; 7], false, &[]),
    ];
    for (sizes, closed, groups) in cases {
        let got = plan_day(&day(sizes), *closed);
        let want: Vec<Vec<usize>> = groups.iter().map(|g| g.to_vec()).collect();
        assert_eq!(got, want, "sizes {sizes:?}, closed {closed}");
    }
    assert_eq!(compact::tier(0), 0);
    assert_eq!(compact::tier(MIB - 1), 0);
    assert_eq!(compact::tier(MIB), 1);
    assert_eq!(compact::tier(8 * MIB), 2);
    let start = cairn_model::time::parse_utc("2026-12-01T00:00:00Z").expect("t");
    assert!(!compact::closed(start, start + 86_400_000));
    assert!(compact::closed(start, start + 86_400_000 + 3_600_000));
}

/// The sample corpus and a day of generated events at `now`, for stores that keep ten years.
fn corpus(now: i64) -> Vec<Value> {
    let mut records = crate::tests::sample_records();
    records.extend((0..60).map(|i| {
        let name = ["DescribeInstances", "RunInstances", "GetObject"][i as usize % 3];
        serde_json::json!({
            "eventVersion": "1.08",
            "eventTime": cairn_model::time::format_utc_seconds(now - i * 60_000),
            "eventName": name,
            "eventSource": "ec2.amazonaws.com",
            "eventID": format!("generated-{i}"),
            "eventType": "AwsApiCall",
            "awsRegion": "us-east-1",
            "recipientAccountId": "111122223333",
        })
    }));
    records
}

fn ten_years(stores: &Stores, name: &str) -> EventDataStore {
    stores
        .create(
            name,
            store::StoreChanges {
                retention_period: Some(store::MAX_RETENTION_DAYS),
                ..Default::default()
            },
            0,
            0,
        )
        .expect("create")
}

/// `records` written `per_file` at a time, as an import writes them.
fn write_in_batches(stores: &Stores, eds: &EventDataStore, records: &[Value], per_file: usize) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    for (i, chunk) in records.chunks(per_file).enumerate() {
        let raws: Vec<Box<serde_json::value::RawValue>> = chunk
            .iter()
            .map(|r| serde_json::value::to_raw_value(r).expect("raw"))
            .collect();
        let refs: Vec<_> = raws
            .iter()
            .map(|r| (r.as_ref(), Provenance::Unknown))
            .collect();
        stores
            .write(eds, &refs, &format!("batch-{tag}-{i:04}"))
            .expect("write");
    }
}

/// Every row of the store as a line of text, sorted. The query runs as of 2024-02-01, when a
/// ten-year retention shows every sample (the oldest is of March 2014, the newest of 2026).
fn answers(stores: &Stores, eds: &EventDataStore, _now: i64) -> Rows {
    let as_of = cairn_model::time::parse_utc("2024-02-01T00:00:00Z").expect("t");
    let mut lines: Vec<String> = table(stores, eds, as_of)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    Rows(lines)
}

/// Rows compared with a short report of the first difference.
#[derive(PartialEq, Eq)]
struct Rows(Vec<String>);

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} rows", self.0.len())
    }
}

#[track_caller]
fn assert_same(got: &Rows, want: &Rows, what: &str) {
    if got == want {
        return;
    }
    let first = got
        .0
        .iter()
        .zip(&want.0)
        .position(|(a, b)| a != b)
        .unwrap_or(got.0.len().min(want.0.len()));
    let cut = |line: Option<&String>| line.map(|l| l.chars().take(400).collect::<String>());
    panic!(
        "{what}: {} rows, expected {}; first difference at {first}:\n got  {:?}\n want {:?}",
        got.0.len(),
        want.0.len(),
        cut(got.0.get(first)),
        cut(want.0.get(first)),
    );
}

/// Every row of the store, as a text table.
fn table(stores: &Stores, eds: &EventDataStore, now: i64) -> String {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let ctx = query::session();
        query::register_store(&ctx, stores, eds, now)
            .await
            .expect("register");
        let sql = format!(
            "SELECT * FROM \"{}\" ORDER BY eventTime, eventID, eventName, requestParameters, responseElements",
            eds.name
        );
        let (batches, _) = query::run(&ctx, &sql).await.expect("query");
        to_table(&batches).expect("table")
    })
}

/// The files of each day of the store (names only, sorted).
fn days(stores: &Stores, eds: &EventDataStore) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for file in stores.files(eds).expect("files") {
        let mut parts = file.rsplit('/');
        let name = parts.next().expect("name").to_owned();
        let day = parts.next().expect("day").to_owned();
        out.entry(day).or_default().push(name);
    }
    out
}

/// Rows of a store file in `eventName`, then `eventTime` order, as every store file is.
fn assert_sorted(path: &str) {
    use datafusion::arrow::array::{Array, AsArray, DictionaryArray};
    use datafusion::arrow::datatypes::Int32Type;
    let file = std::fs::File::open(path).expect("open");
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .build()
            .expect("reader");
    let mut keys: Vec<(Option<String>, Option<i64>)> = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let names = batch
            .column_by_name("eventName")
            .expect("eventName")
            .as_any()
            .downcast_ref::<DictionaryArray<Int32Type>>()
            .expect("dictionary");
        let values = names.values().as_string::<i32>();
        let times = batch
            .column_by_name("eventTime")
            .expect("eventTime")
            .as_any()
            .downcast_ref::<datafusion::arrow::array::TimestampMillisecondArray>()
            .expect("time");
        for row in 0..batch.num_rows() {
            let name = names
                .keys()
                .is_valid(row)
                .then(|| values.value(names.keys().value(row) as usize).to_owned());
            keys.push((name, times.is_valid(row).then(|| times.value(row))));
        }
    }
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "{path} is not in eventName, eventTime order");
}

#[test]
fn compaction_merges_small_files_and_every_query_answers_the_same() {
    let now = cairn_model::time::parse_utc("2026-12-20T12:00:00Z").expect("now");
    let data = tempfile::tempdir().expect("tempdir");
    let stores = Stores::open(data.path(), "us-east-1", "111122223333").expect("stores");
    let eds = ten_years(&stores, "merged");
    let records = corpus(now);
    write_in_batches(&stores, &eds, &records, 5);
    let before = answers(&stores, &eds, now);
    let files_before = stores.files(&eds).expect("files").len();
    let rows_before = rows(&stores, &eds, |_| true);
    let today = format!("date={}", store::partition_date(now));
    assert!(days(&stores, &eds)[&today].len() >= 12);

    let done = stores.compact(&eds, now, 0).expect("compact");
    let after = days(&stores, &eds);
    // Each closed day is one file now; today (open) merged its twelve tier-0 files too.
    assert!(after.values().all(|files| files.len() == 1), "{after:?}");
    assert_eq!(done.files_in - done.files_out, files_before - after.len());
    let unmerged = rows(&stores, &eds, |name| !name.starts_with("compact-"));
    assert_eq!(done.events + unmerged, rows_before);
    assert_same(&answers(&stores, &eds, now), &before, "after compaction");
    for file in stores.files(&eds).expect("files") {
        assert_sorted(&file);
    }
    // Nothing left to merge.
    assert_eq!(
        stores.compact(&eds, now, 0).expect("again"),
        compact::Compacted::default()
    );
    assert!(!data
        .path()
        .join(format!("compaction-{}.json", eds.id))
        .exists());
}

/// Rows in the store's files whose names `keep` chooses, from their footers.
fn rows(stores: &Stores, eds: &EventDataStore, keep: impl Fn(&str) -> bool) -> u64 {
    stores
        .files(eds)
        .expect("files")
        .iter()
        .filter(|f| keep(f.rsplit('/').next().unwrap_or("")))
        .map(|f| {
            let file = std::fs::File::open(f).expect("open");
            datafusion::parquet::file::reader::SerializedFileReader::new(file)
                .map(|r| {
                    use datafusion::parquet::file::reader::FileReader;
                    r.metadata().file_metadata().num_rows() as u64
                })
                .expect("footer")
        })
        .sum()
}

#[test]
fn an_open_day_waits_for_eight_files_of_a_tier() {
    let now = cairn_model::time::parse_utc("2026-12-20T12:00:00Z").expect("now");
    let data = tempfile::tempdir().expect("tempdir");
    let stores = Stores::open(data.path(), "us-east-1", "111122223333").expect("stores");
    let eds = ten_years(&stores, "open");
    let today: Vec<Value> = corpus(now).split_off(crate::tests::sample_records().len());
    write_in_batches(&stores, &eds, &today[..35], 5);
    assert_eq!(stores.compact(&eds, now, 0).expect("compact").files_in, 0);
    write_in_batches(&stores, &eds, &today[35..], 5);
    let before = answers(&stores, &eds, now);
    let done = stores.compact(&eds, now, 0).expect("compact");
    assert_eq!((done.files_in, done.files_out), (12, 1), "{done:?}");
    assert_same(&answers(&stores, &eds, now), &before, "after compaction");
}

#[test]
fn feeder_files_beyond_the_committed_position_are_left_alone() {
    let now = cairn_model::time::parse_utc("2026-12-20T12:00:00Z").expect("now");
    let data = tempfile::tempdir().expect("tempdir");
    let stores = Stores::open(data.path(), "us-east-1", "111122223333").expect("stores");
    let eds = ten_years(&stores, "fed");
    let old = now - 3 * 86_400_000;
    for (i, stem) in [
        "wal-00000000000000000001-00000000000000000005",
        "wal-00000000000000000006-00000000000000000009",
        "wal-00000000000000000010-00000000000000000012",
    ]
    .iter()
    .enumerate()
    {
        let raw = serde_json::value::to_raw_value(&serde_json::json!({
            "eventTime": cairn_model::time::format_utc_seconds(old + i as i64),
            "eventName": "PutObject",
            "eventID": format!("e{i}"),
        }))
        .expect("raw");
        stores
            .write(&eds, &[(raw.as_ref(), Provenance::Unknown)], stem)
            .expect("write");
    }
    let done = stores.compact(&eds, now, 9).expect("compact");
    assert_eq!((done.files_in, done.files_out), (2, 1));
    let files: Vec<String> = days(&stores, &eds).into_values().flatten().collect();
    assert_eq!(files.len(), 2);
    assert!(files
        .iter()
        .any(|f| f == "wal-00000000000000000010-00000000000000000012.parquet"));
    // The feeder's restart removes the uncommitted file and writes it again: still one copy.
    assert_eq!(stores.remove_uncommitted(&eds, 9).expect("remove"), 1);
}

/// A compaction stopped at `point` (a simulated crash), then the restart's recovery: the
/// answers are those of before, nothing staged or intended is left, and the next compaction
/// leaves each day in one file.
fn crash_and_recover(
    point: crash::Point,
    stores: &Stores,
    reopen: impl Fn() -> Stores,
    eds: &EventDataStore,
    data: &std::path::Path,
    now: i64,
) {
    let before = answers(stores, eds, now);
    crash::set(Some(point));
    let err = stores.compact(eds, now, 0).expect_err("crashed");
    crash::set(None);
    assert!(err.to_string().contains("simulated crash"), "{err}");
    assert!(data.join(format!("compaction-{}.json", eds.id)).exists());
    let restarted = reopen();
    assert_eq!(restarted.recover_compactions().expect("recover"), 1);
    assert!(!data.join(format!("compaction-{}.json", eds.id)).exists());
    assert!(!data.join(".compacting").exists());
    assert_same(
        &answers(&restarted, eds, now),
        &before,
        &format!("after {point:?}"),
    );
    restarted.compact(eds, now, 0).expect("compact");
    assert_same(
        &answers(&restarted, eds, now),
        &before,
        "compacted after recovery",
    );
    let after = days(&restarted, eds);
    assert!(after.values().all(|files| files.len() == 1), "{after:?}");
    if eds.location.is_none() {
        for day in std::fs::read_dir(data.join(&eds.id))
            .expect("dir")
            .flatten()
        {
            for file in std::fs::read_dir(day.path()).expect("day").flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                assert!(name.ends_with(".parquet"), "left behind: {name}");
            }
        }
    }
}

#[test]
fn a_crash_at_any_step_of_the_swap_loses_and_duplicates_nothing() {
    let now = cairn_model::time::parse_utc("2026-12-20T12:00:00Z").expect("now");
    for point in [crash::Point::IntentWritten, crash::Point::InPlace] {
        let data = tempfile::tempdir().expect("tempdir");
        let open = || Stores::open(data.path(), "us-east-1", "111122223333").expect("stores");
        let stores = open();
        let eds = ten_years(&stores, "crashy");
        write_in_batches(&stores, &eds, &corpus(now), 9);
        // A staged file from a crash before any intent is simply removed.
        let today = data
            .path()
            .join(&eds.id)
            .join(format!("date={}", store::partition_date(now)));
        std::fs::write(today.join("compact-orphan.parquet.tmp"), b"half").expect("orphan");
        crash_and_recover(point, &stores, open, &eds, data.path(), now);
    }
}

#[test]
fn a_crash_during_a_swap_in_a_bucket_loses_and_duplicates_nothing() {
    let now = cairn_model::time::parse_utc("2026-12-20T12:00:00Z").expect("now");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for point in [crash::Point::IntentWritten, crash::Point::InPlace] {
        let data = tempfile::tempdir().expect("tempdir");
        let bucket: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        let remote = store::Remote {
            store: bucket,
            bucket: "lake-bucket".into(),
            prefix: "lake".into(),
            handle: rt.handle().clone(),
        };
        let open = || {
            Stores::open(data.path(), "us-east-1", "111122223333")
                .expect("stores")
                .with_remote(remote.clone())
        };
        let stores = open();
        let eds = ten_years(&stores, "bucketed");
        assert!(eds.location.is_some());
        write_in_batches(&stores, &eds, &corpus(now), 9);
        crash_and_recover(point, &stores, open, &eds, data.path(), now);
    }
}

#[test]
fn the_swap_waits_for_the_queries_reading_the_files() {
    let now = cairn_model::time::parse_utc("2026-12-20T12:00:00Z").expect("now");
    let data = tempfile::tempdir().expect("tempdir");
    let stores = Arc::new(Stores::open(data.path(), "us-east-1", "111122223333").expect("stores"));
    let eds = ten_years(&stores, "busy");
    write_in_batches(&stores, &eds, &corpus(now), 9);
    let files_before = stores.files(&eds).expect("files");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let reading = rt.block_on(stores.reading());
    let compaction = {
        let (stores, eds) = (stores.clone(), eds.clone());
        std::thread::spawn(move || stores.compact(&eds, now, 0))
    };
    // The merge is written and its intent durable, but no file moves while the query reads.
    let intent = data.path().join(format!("compaction-{}.json", eds.id));
    let waited = std::time::Instant::now();
    while !intent.exists() && waited.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(intent.exists());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(stores.files(&eds).expect("files"), files_before);
    drop(reading);
    let done = compaction.join().expect("thread").expect("compact");
    assert!(done.files_in > done.files_out);
    assert!(stores.files(&eds).expect("files").len() < files_before.len());
}

/// An import holds the writers' lock from writing its files to recording them in the ledger;
/// compaction chooses its files under that lock, so it never takes a file an import may still
/// write again.
#[test]
fn compaction_chooses_no_file_while_an_import_is_writing() {
    let now = cairn_model::time::parse_utc("2026-12-20T12:00:00Z").expect("now");
    let data = tempfile::tempdir().expect("tempdir");
    let stores = Arc::new(Stores::open(data.path(), "us-east-1", "111122223333").expect("stores"));
    let eds = ten_years(&stores, "importing");
    write_in_batches(&stores, &eds, &corpus(now), 9);
    let files_before = stores.files(&eds).expect("files");
    let writing = stores.writing();
    let compaction = {
        let (stores, eds) = (stores.clone(), eds.clone());
        std::thread::spawn(move || stores.compact(&eds, now, 0))
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!compaction.is_finished());
    assert!(!data
        .path()
        .join(format!("compaction-{}.json", eds.id))
        .exists());
    assert_eq!(stores.files(&eds).expect("files"), files_before);
    drop(writing);
    let done = compaction.join().expect("thread").expect("compact");
    assert!(done.files_in > done.files_out);
}
