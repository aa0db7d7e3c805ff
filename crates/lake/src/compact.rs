//! Compaction: a store's small Parquet files merged into few large ones.
//!
//! Small files come from imports (one file per request batch and day) and from stores fed
//! slowly (one file per flush, each minute, per day). Queries pay per file opened (its footer,
//! statistics and page index), so a day of 1,440 one-minute files costs a query far more than
//! the same events in one file.
//!
//! Which files merge ([`plan_day`], pure): in a *closed* day (ended more than
//! [`CLOSED_AFTER_MS`] ago, so no late event is expected) every file under half of
//! [`TARGET_FILE_BYTES`] merges, into files of at most that size. In an *open* day (still
//! receiving events) files merge by size tier, eight of one tier into one of the next (tiers
//! grow eight-fold from 1 MiB), so that a day fed each minute is rewritten a logarithmic number
//! of times, not at each flush.
//!
//! How ([`Stores::compact`]): the chosen files are read and sorted again by `eventName`, then
//! `eventTime` (as every store file is) by DataFusion's sort, in a memory pool of
//! [`MEMORY_BYTES`] that spills to `<lake>/.compacting/spill`, and streamed into one new file
//! row group by row group. Then the swap, crash-safe and invisible to queries:
//! 1. the new file is written under a name no listing takes (`….parquet.tmp` beside the day's
//!    files; for a store in a bucket, a local file under `<lake>/.compacting/`), and fsynced;
//! 2. an intent (`<lake>/compaction-<store id>.json`: the new file, the files it replaces) is
//!    written durably;
//! 3. with every query's files held off (`Stores::exclusive`), the new file takes its name
//!    (rename and directory fsync; for a bucket, the upload) and the replaced files are removed;
//! 4. the intent is removed.
//!
//! At start ([`Stores::recover_compactions`]) an intent left by a crash is finished: if the new
//! file is in place, the files it replaces are removed (some may be gone already); if not, the
//! staged file is removed and the old files stay. Either way each event is in exactly one file.
//!
//! Only committed files merge: a feeder file beyond its store's committed WAL position (the
//! feeder rewrites those after a crash) is left alone, and imports hold [`Stores::writing`]
//! from writing their files to recording them in the import ledger, which compaction takes
//! while it chooses, so it never takes a file an import would write again.

use crate::store::{io, is_parquet, writer_properties, EventDataStore, Place, Stores, DAY_MS};
use crate::LakeError;
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{ident, ParquetReadOptions, SessionConfig, SessionContext};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest file compaction writes (the sum of the files it merges, compressed).
pub const TARGET_FILE_BYTES: u64 = 64 << 20;
/// The smallest size tier's bound: files under it are tier 0.
pub const FIRST_TIER_BYTES: u64 = 1 << 20;
/// How many files of one tier an open day merges at once (also the tier growth factor).
pub const TIER_FILES: usize = 8;
/// How long after its end a day counts as closed.
pub const CLOSED_AFTER_MS: i64 = 3_600_000;
/// The memory a merge's sort may hold before it spills to disk.
pub const MEMORY_BYTES: usize = 256 << 20;

/// One of a day's files: its path (or key) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFile {
    /// Path in the data directory, or key in the bucket.
    pub name: String,
    /// Bytes.
    pub bytes: u64,
}

/// Which of a day's `files` to merge, each group into one file (indices into `files`, two or
/// more per group). `closed`: the day receives no more events.
pub fn plan_day(files: &[DayFile], closed: bool) -> Vec<Vec<usize>> {
    let small: Vec<usize> = (0..files.len())
        .filter(|&i| files[i].bytes < TARGET_FILE_BYTES / 2)
        .collect();
    if closed {
        return pack(files, &small);
    }
    let mut tiers: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for i in small {
        tiers.entry(tier(files[i].bytes)).or_default().push(i);
    }
    tiers
        .into_values()
        .filter(|members| members.len() >= TIER_FILES)
        .flat_map(|members| pack(files, &members))
        .collect()
}

/// The size tier of a file of `bytes`: 0 under [`FIRST_TIER_BYTES`], then one more for each
/// eight-fold.
pub fn tier(bytes: u64) -> u32 {
    let mut bound = FIRST_TIER_BYTES;
    let mut tier = 0;
    while bytes >= bound {
        bound = bound.saturating_mul(TIER_FILES as u64);
        tier += 1;
    }
    tier
}

/// `members` in groups of at most [`TARGET_FILE_BYTES`], in order; groups of one are dropped.
fn pack(files: &[DayFile], members: &[usize]) -> Vec<Vec<usize>> {
    let mut groups = Vec::new();
    let mut group: Vec<usize> = Vec::new();
    let mut bytes = 0u64;
    for &i in members {
        if !group.is_empty() && bytes + files[i].bytes > TARGET_FILE_BYTES {
            groups.push(std::mem::take(&mut group));
            bytes = 0;
        }
        group.push(i);
        bytes += files[i].bytes;
    }
    groups.push(group);
    groups.retain(|g| g.len() >= 2);
    groups
}

/// Whether the day starting at `day_start_ms` is closed at `now_ms`.
pub fn closed(day_start_ms: i64, now_ms: i64) -> bool {
    now_ms >= day_start_ms + DAY_MS + CLOSED_AFTER_MS
}

/// What one compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Files merged (and removed).
    pub files_in: usize,
    /// Files written.
    pub files_out: usize,
    /// Events in the files written.
    pub events: u64,
    /// Bytes of the files merged.
    pub bytes_in: u64,
    /// Bytes of the files written.
    pub bytes_out: u64,
}

impl std::ops::AddAssign for Compacted {
    fn add_assign(&mut self, other: Self) {
        self.files_in += other.files_in;
        self.files_out += other.files_out;
        self.events += other.events;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }
}

/// A swap under way (`<lake>/compaction-<store id>.json`).
#[derive(Debug, Serialize, Deserialize)]
struct Intent {
    /// The store.
    store: String,
    /// Where the new file is until it takes its name (a local path).
    staged: String,
    /// The new file's path or key.
    merged: String,
    /// The files it replaces.
    replaces: Vec<String>,
}

/// Whether the store file `name` may merge: not a feeder file holding events beyond the
/// committed WAL position `committed` (`wal-<from>-<to>.parquet`).
fn committed_file(name: &str, committed: u64) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    match file
        .strip_prefix("wal-")
        .and_then(|r| r.split('-').next())
        .map(str::parse::<u64>)
    {
        Some(Ok(from)) => from <= committed,
        _ => true,
    }
}

impl Stores {
    fn intent_path(&self, store_id: &str) -> PathBuf {
        self.root.join(format!("compaction-{store_id}.json"))
    }

    fn staging(&self) -> PathBuf {
        self.root.join(".compacting")
    }

    /// Each day partition's files of `store` with their sizes.
    fn day_files(
        &self,
        store: &EventDataStore,
    ) -> Result<BTreeMap<String, Vec<DayFile>>, LakeError> {
        let mut days: BTreeMap<String, Vec<DayFile>> = BTreeMap::new();
        match self.place(store)? {
            Place::Dir(dir) => {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(d) => d,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(days),
                    Err(e) => return Err(io(&dir)(e)),
                };
                for day in entries.flatten() {
                    let partition = day.file_name().to_string_lossy().into_owned();
                    let Ok(files) = std::fs::read_dir(day.path()) else {
                        continue;
                    };
                    for file in files.flatten() {
                        let path = file.path();
                        let name = path.display().to_string();
                        if is_parquet(&name) {
                            let bytes = file.metadata().map_err(io(&path))?.len();
                            days.entry(partition.clone())
                                .or_default()
                                .push(DayFile { name, bytes });
                        }
                    }
                }
            }
            Place::Bucket(remote, key) => {
                let base = format!("{key}/");
                for (name, bytes) in remote.sized(&base)? {
                    if !is_parquet(&name) {
                        continue;
                    }
                    let partition = name[base.len()..].split('/').next().unwrap_or("");
                    days.entry(partition.to_owned())
                        .or_default()
                        .push(DayFile { name, bytes });
                }
            }
        }
        for files in days.values_mut() {
            files.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(days)
    }

    /// Merges `store`'s small files as [`plan_day`] chooses at `now_ms`; feeder files beyond
    /// the committed WAL position `committed` are left alone.
    pub fn compact(
        &self,
        store: &EventDataStore,
        now_ms: i64,
        committed: u64,
    ) -> Result<Compacted, LakeError> {
        self.resolve_intent(store)?;
        let chosen: Vec<(String, Vec<DayFile>)> = {
            let _writers = self.writing();
            self.day_files(store)?
                .into_iter()
                .flat_map(|(partition, files)| {
                    let files: Vec<DayFile> = files
                        .into_iter()
                        .filter(|f| committed_file(&f.name, committed))
                        .collect();
                    let start = partition
                        .strip_prefix("date=")
                        .and_then(|d| cairn_model::time::parse_utc(&format!("{d}T00:00:00Z")).ok());
                    let Some(start) = start else {
                        return Vec::new();
                    };
                    plan_day(&files, closed(start, now_ms))
                        .into_iter()
                        .map(|group| {
                            let group = group.into_iter().map(|i| files[i].clone()).collect();
                            (partition.clone(), group)
                        })
                        .collect()
                })
                .collect()
        };
        let mut done = Compacted::default();
        for (partition, group) in chosen {
            done += self.merge(store, &partition, &group)?;
        }
        Ok(done)
    }

    /// Merges `group` (files of the day `partition`) into one file and swaps it in.
    fn merge(
        &self,
        store: &EventDataStore,
        partition: &str,
        group: &[DayFile],
    ) -> Result<Compacted, LakeError> {
        let staging = self.staging();
        std::fs::create_dir_all(staging.join("spill")).map_err(io(&staging))?;
        let stem = format!("compact-{}", uuid::Uuid::new_v4());
        let place = self.place(store)?;
        let (staged, merged) = match &place {
            Place::Dir(dir) => {
                let day = dir.join(partition);
                (
                    day.join(format!("{stem}.parquet.tmp")),
                    day.join(format!("{stem}.parquet")).display().to_string(),
                )
            }
            Place::Bucket(_, key) => (
                staging.join(format!("{stem}.parquet")),
                format!("{key}/{partition}/{stem}.parquet"),
            ),
        };
        let inputs: Vec<String> = group
            .iter()
            .map(|f| match &place {
                Place::Dir(_) => f.name.clone(),
                Place::Bucket(remote, _) => format!("s3://{}/{}", remote.bucket, f.name),
            })
            .collect();
        let sort = async {
            let events = self.sorted_into(&place, inputs, &staged).await;
            if events.is_err() {
                let _ = std::fs::remove_file(&staged);
            }
            events
        };
        let events = match &place {
            Place::Dir(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(io(&staged))?
                .block_on(sort)?,
            Place::Bucket(remote, _) => remote.run(sort)?,
        };
        let bytes_out = std::fs::metadata(&staged).map_err(io(&staged))?.len();
        let intent = Intent {
            store: store.id.clone(),
            staged: staged.display().to_string(),
            merged,
            replaces: group.iter().map(|f| f.name.clone()).collect(),
        };
        let intent_path = self.intent_path(&store.id);
        let text = serde_json::to_vec_pretty(&intent).expect("an intent serializes");
        cairn_durable::file::write(&intent_path, &text).map_err(io(&intent_path))?;
        crash::at(crash::Point::IntentWritten)?;
        {
            let _exclusive = self.exclusive();
            self.finish(&place, &intent)?;
        }
        cairn_durable::file::remove(&intent_path).map_err(io(&intent_path))?;
        Ok(Compacted {
            files_in: group.len(),
            files_out: 1,
            events,
            bytes_in: group.iter().map(|f| f.bytes).sum(),
            bytes_out,
        })
    }

    /// Reads `inputs` (paths or `s3://` URLs of store files), sorts their rows as store files
    /// are sorted and writes them to the local file `out`, fsynced; the number of rows.
    async fn sorted_into(
        &self,
        place: &Place<'_>,
        inputs: Vec<String>,
        out: &Path,
    ) -> Result<u64, LakeError> {
        use futures::StreamExt;
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(MEMORY_BYTES)))
            .with_temp_file_path(self.staging().join("spill"))
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(
            SessionConfig::new().with_target_partitions(1).set_bool(
                "datafusion.execution.parquet.schema_force_view_types",
                false,
            ),
            runtime,
        );
        if let Place::Bucket(remote, _) = place {
            let url = datafusion::execution::object_store::ObjectStoreUrl::parse(format!(
                "s3://{}",
                remote.bucket
            ))?;
            ctx.register_object_store(url.as_ref(), remote.store.clone());
        }
        let schema = crate::columns::store_schema();
        let frame = ctx
            .read_parquet(inputs, ParquetReadOptions::default().schema(&schema))
            .await?
            .sort(vec![
                ident("eventName").sort(true, true),
                ident("eventTime").sort(true, true),
            ])?;
        let mut stream = frame.execute_stream().await?;
        let file = std::fs::File::create(out).map_err(io(out))?;
        let mut writer = ArrowWriter::try_new(
            std::io::BufWriter::new(file),
            schema.clone(),
            Some(writer_properties()),
        )?;
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = crate::columns::to_store_batch(&batch?)?;
            rows += batch.num_rows() as u64;
            writer.write(&batch)?;
        }
        let file = writer
            .into_inner()?
            .into_inner()
            .map_err(|e| io(out)(e.into_error()))?;
        file.sync_all().map_err(io(out))?;
        Ok(rows)
    }

    /// Steps 3 of the swap (and recovery's): the new file in place, the replaced files gone.
    fn finish(&self, place: &Place<'_>, intent: &Intent) -> Result<(), LakeError> {
        let staged = Path::new(&intent.staged);
        match place {
            Place::Dir(_) => {
                let merged = Path::new(&intent.merged);
                std::fs::rename(staged, merged).map_err(io(merged))?;
                let day = merged.parent().unwrap_or(Path::new("."));
                cairn_durable::file::sync_dir(day).map_err(io(day))?;
                crash::at(crash::Point::InPlace)?;
                for old in &intent.replaces {
                    match std::fs::remove_file(old) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io(Path::new(old))(e)),
                    }
                }
                cairn_durable::file::sync_dir(day).map_err(io(day))?;
            }
            Place::Bucket(remote, _) => {
                let bytes = std::fs::read(staged).map_err(io(staged))?;
                let key = ObjectPath::from(intent.merged.as_str());
                remote
                    .run(remote.store.put(&key, PutPayload::from(bytes)))
                    .map_err(|e| remote.failed(&intent.merged, e))?;
                crash::at(crash::Point::InPlace)?;
                for old in &intent.replaces {
                    remote.remove(old)?;
                }
                let _ = std::fs::remove_file(staged);
            }
        }
        Ok(())
    }

    /// Finishes the swaps a crash (or a failed upload) interrupted, as the module's
    /// documentation describes, and removes staged files no intent names; the number of swaps
    /// finished. Call before the first query. A store whose swap cannot be finished now (its
    /// bucket unreachable) keeps its intent, which its next compaction finishes first.
    pub fn recover_compactions(&self) -> Result<usize, LakeError> {
        let mut recovered = 0;
        let mut first_error = None;
        for store in self.list() {
            match self.resolve_intent(&store) {
                Ok(true) => recovered += 1,
                Ok(false) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            }
            self.remove_staged(&store)?;
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let staging = self.staging();
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
        }
        Ok(recovered)
    }

    /// Finishes `store`'s interrupted swap, if there is one (whether there was).
    fn resolve_intent(&self, store: &EventDataStore) -> Result<bool, LakeError> {
        let intent_path = self.intent_path(&store.id);
        let text = match std::fs::read(&intent_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(&intent_path)(e)),
        };
        let place = self.place(store)?;
        // A damaged intent was never acted on: it is written whole before the swap starts.
        if let Ok(intent) = serde_json::from_slice::<Intent>(&text) {
            let _exclusive = self.exclusive();
            let in_place = match &place {
                Place::Dir(_) => Path::new(&intent.merged).exists(),
                Place::Bucket(remote, _) => remote
                    .run(remote.store.head(&ObjectPath::from(intent.merged.as_str())))
                    .is_ok(),
            };
            if in_place {
                // The new file took its name: remove what it replaces (some may be gone).
                let _ = std::fs::remove_file(&intent.staged);
                self.remove_replaced(&place, &intent)?;
            } else if Path::new(&intent.staged).exists() {
                // Staged and fsynced before the intent was written, so whole: finish.
                self.finish(&place, &intent)?;
            }
        }
        cairn_durable::file::remove(&intent_path).map_err(io(&intent_path))?;
        Ok(true)
    }

    fn remove_replaced(&self, place: &Place<'_>, intent: &Intent) -> Result<(), LakeError> {
        for old in &intent.replaces {
            match place {
                Place::Dir(_) => match std::fs::remove_file(old) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(Path::new(old))(e)),
                },
                Place::Bucket(remote, _) => remote.remove(old)?,
            }
        }
        if let (Place::Dir(_), Some(day)) = (place, Path::new(&intent.merged).parent()) {
            cairn_durable::file::sync_dir(day).map_err(io(day))?;
        }
        Ok(())
    }

    /// Removes `….parquet.tmp` files a crash left in `store`'s day directories.
    fn remove_staged(&self, store: &EventDataStore) -> Result<(), LakeError> {
        let Ok(Place::Dir(dir)) = self.place(store) else {
            return Ok(());
        };
        let Ok(days) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for day in days.flatten() {
            let Ok(files) = std::fs::read_dir(day.path()) else {
                continue;
            };
            for file in files.flatten() {
                if file.file_name().to_string_lossy().ends_with(".parquet.tmp") {
                    std::fs::remove_file(file.path()).map_err(io(&file.path()))?;
                }
            }
        }
        Ok(())
    }
}

/// Simulated crashes for the tests: a compaction stops at a chosen step of its swap, as if the
/// process died there (in other builds, [`crash::at`] never stops).
pub(crate) mod crash {
    use crate::LakeError;

    /// Steps of the swap.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) enum Point {
        /// The staged file and the intent are durable; nothing has moved.
        IntentWritten,
        /// The new file took its name; the files it replaces are still there.
        InPlace,
    }

    #[cfg(test)]
    thread_local! {
        static AT: std::cell::Cell<Option<Point>> = const { std::cell::Cell::new(None) };
    }

    /// Stops this thread's next compaction at `point` (tests).
    #[cfg(test)]
    pub(crate) fn set(point: Option<Point>) {
        AT.with(|at| at.set(point));
    }

    /// An error if the test stops here.
    #[cfg(test)]
    pub(crate) fn at(point: Point) -> Result<(), LakeError> {
        if AT.with(|at| at.get()) == Some(point) {
            AT.with(|at| at.set(None));
            return Err(LakeError::Invalid(format!("simulated crash at {point:?}")));
        }
        Ok(())
    }

    #[cfg(not(test))]
    #[inline(always)]
    pub(crate) fn at(_: Point) -> Result<(), LakeError> {
        Ok(())
    }
}
