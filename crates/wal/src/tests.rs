//! WAL tests: named recovery cases and a model test against an in-memory file system that
//! fails writes and fsyncs on demand and loses un-fsynced bytes on a simulated crash.

use super::*;
use crate::fs::{AppendFile, ReadAt, WalFs};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io;

#[derive(Debug, Default)]
struct SimFile {
    data: Vec<u8>,
    synced: usize,
}

#[derive(Debug, Default)]
struct SimState {
    files: BTreeMap<PathBuf, SimFile>,
    /// The next append writes this many bytes, then fails.
    fail_next_append: Option<usize>,
    fail_next_sync: bool,
}

#[derive(Debug, Default, Clone)]
struct SimFs(Arc<Mutex<SimState>>);

impl SimFs {
    fn state(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.0.lock().expect("sim lock")
    }

    /// Power loss: every file keeps its fsynced bytes plus a random prefix of the rest, whose
    /// last bytes may be garbage (a torn write).
    fn crash(&self, rng: &mut StdRng) {
        for file in self.state().files.values_mut() {
            let unsynced = file.data.len() - file.synced;
            let keep = if unsynced == 0 {
                0
            } else {
                rng.gen_range(0..=unsynced)
            };
            file.data.truncate(file.synced + keep);
            if keep > 0 && rng.gen_bool(0.3) {
                let at = file.data.len() - 1;
                file.data[at] ^= 0x5a;
            }
        }
    }
}

#[derive(Debug)]
struct SimAppend {
    fs: SimFs,
    path: PathBuf,
}

impl AppendFile for SimAppend {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut state = self.fs.state();
        let fail = state.fail_next_append.take();
        let file = state
            .files
            .get_mut(&self.path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        match fail {
            Some(written) => {
                file.data.extend_from_slice(&buf[..written.min(buf.len())]);
                Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "injected: no space left on device",
                ))
            }
            None => {
                file.data.extend_from_slice(buf);
                Ok(())
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut state = self.fs.state();
        if std::mem::take(&mut state.fail_next_sync) {
            return Err(io::Error::other("injected: fsync failed"));
        }
        let file = state
            .files
            .get_mut(&self.path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        file.synced = file.data.len();
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut state = self.fs.state();
        let file = state
            .files
            .get_mut(&self.path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        file.data.truncate(len as usize);
        file.synced = file.synced.min(file.data.len());
        Ok(())
    }
}

#[derive(Debug)]
struct SimRead {
    fs: SimFs,
    path: PathBuf,
}

impl ReadAt for SimRead {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let state = self.fs.state();
        let file = state
            .files
            .get(&self.path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let start = (offset as usize).min(file.data.len());
        let n = buf.len().min(file.data.len() - start);
        buf[..n].copy_from_slice(&file.data[start..start + n]);
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        let state = self.fs.state();
        Ok(state
            .files
            .get(&self.path)
            .map_or(0, |f| f.data.len() as u64))
    }
}

impl WalFs for SimFs {
    fn create_dir_all(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state();
        Ok(state
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn open_append(&self, path: &Path, create_new: bool) -> io::Result<Box<dyn AppendFile>> {
        let mut state = self.state();
        if create_new {
            if state.files.contains_key(path) {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            state.files.insert(path.to_path_buf(), SimFile::default());
        } else if !state.files.contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(Box::new(SimAppend {
            fs: self.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadAt>> {
        if !self.state().files.contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(Box::new(SimRead {
            fs: self.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.state()
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn sync_dir(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }

    fn write_durable(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.state().files.insert(
            path.to_path_buf(),
            SimFile {
                data: bytes.to_vec(),
                synced: bytes.len(),
            },
        );
        Ok(())
    }

    fn read_small(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        Ok(self.state().files.get(path).map(|f| f.data.clone()))
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/sim/wal")
}

fn open(fs: &SimFs) -> (Wal, RecoveryReport) {
    Wal::open(
        &dir(),
        Arc::new(fs.clone()),
        WalConfig::test_config(),
        Arc::new(NoopObserver),
    )
    .expect("open")
}

fn read_all(wal: &Wal, after: u64) -> Vec<WalRecord> {
    let mut reader = wal.reader(after);
    let mut out = Vec::new();
    loop {
        let batch = reader.read_batch(7, 1000).expect("read");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

fn payload(rng: &mut StdRng, tag: u64) -> Vec<u8> {
    let len = rng.gen_range(0..600);
    let mut bytes = tag.to_le_bytes().to_vec();
    bytes.extend((0..len).map(|i| (i as u8).wrapping_mul(31)));
    bytes
}

#[test]
fn appends_are_read_back_in_order_across_segments() {
    let fs = SimFs::default();
    let (wal, report) = open(&fs);
    assert_eq!(report.last_seq, 0);
    let mut rng = StdRng::seed_from_u64(1);
    let mut expected = Vec::new();
    for tag in 0..200 {
        let p = payload(&mut rng, tag);
        let range = wal.append_blocking(vec![p.clone()]).expect("append");
        assert_eq!(
            range,
            SeqRange {
                first: tag + 1,
                last: tag + 1
            }
        );
        expected.push(p);
    }
    assert!(wal.segment_count() > 5, "test config should roll segments");
    let got: Vec<_> = read_all(&wal, 0).into_iter().map(|r| r.payload).collect();
    assert_eq!(got, expected);
    let tail = read_all(&wal, 150);
    assert_eq!(tail.first().map(|r| r.seq), Some(151));
    assert_eq!(tail.len(), 50);
}

#[test]
fn torn_tail_is_cut_and_appending_continues() {
    let fs = SimFs::default();
    let (wal, _) = open(&fs);
    wal.append_blocking(vec![b"one".to_vec(), b"two".to_vec()])
        .expect("append");
    wal.close();
    drop(wal);
    // Half a record after the durable ones.
    let path = dir().join(record::segment_name(1));
    let mut torn = Vec::new();
    record::encode_record(&mut torn, 3, b"three-three-three");
    fs.state()
        .files
        .get_mut(&path)
        .expect("segment")
        .data
        .extend_from_slice(&torn[..torn.len() - 4]);
    let (wal, report) = open(&fs);
    assert_eq!(report.last_seq, 2);
    assert_eq!(report.torn_bytes_cut, (torn.len() - 4) as u64);
    assert_eq!(
        wal.append_blocking(vec![b"three".to_vec()])
            .expect("append")
            .first,
        3
    );
    let got: Vec<_> = read_all(&wal, 0).into_iter().map(|r| r.payload).collect();
    assert_eq!(
        got,
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
}

#[test]
fn damage_in_an_older_segment_is_refused() {
    let fs = SimFs::default();
    let (wal, _) = open(&fs);
    for _ in 0..20 {
        wal.append_blocking(vec![vec![7u8; 500]]).expect("append");
    }
    assert!(wal.segment_count() > 2);
    wal.close();
    drop(wal);
    let first = dir().join(record::segment_name(1));
    fs.state().files.get_mut(&first).expect("segment").data[record::HEADER_LEN + 20] ^= 1;
    let err = open_refused(&fs, "damaged older segment must be refused");
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
}

/// Why opening the WAL on `fs` fails (`why`: what the test expects it to refuse).
fn open_refused(fs: &SimFs, why: &str) -> OpenError {
    match Wal::open(
        &dir(),
        Arc::new(fs.clone()),
        WalConfig::test_config(),
        Arc::new(NoopObserver),
    ) {
        // `expect_err` would need the WAL to be `Debug`.
        Ok(_) => panic!("{why}"),
        Err(e) => e,
    }
}

/// A WAL holding record 1 in its first segment, closed: the next segment would start at 2.
fn closed_wal_with_one_record() -> SimFs {
    let fs = SimFs::default();
    let (wal, _) = open(&fs);
    wal.append_blocking(vec![b"a".to_vec()]).expect("append");
    wal.close();
    drop(wal);
    fs
}

#[test]
fn incomplete_last_segment_header_is_removed() {
    let fs = closed_wal_with_one_record();
    let half = dir().join(record::segment_name(2));
    fs.state().files.insert(
        half,
        SimFile {
            data: b"CAIRN".to_vec(),
            synced: 0,
        },
    );
    let (wal, report) = open(&fs);
    assert_eq!(report.incomplete_segments_removed, 1);
    assert_eq!(
        wal.append_blocking(vec![b"b".to_vec()])
            .expect("append")
            .first,
        2
    );
}

/// The writer syncs a segment's header before it appends any record, so no crash leaves a last
/// segment whose header is not whole but which holds more bytes than a header: that is damage,
/// and the segment is kept for an operator to look at instead of being removed with what it holds.
#[test]
fn a_last_segment_with_a_bad_header_and_more_bytes_is_refused_and_kept() {
    let fs = closed_wal_with_one_record();
    let mut record = Vec::new();
    record::encode_record(&mut record, 2, &[9u8; 100]);
    let damaged = dir().join(record::segment_name(2));
    fs.state().files.insert(
        damaged.clone(),
        SimFile {
            data: record[..record.len() / 2].to_vec(),
            synced: 0,
        },
    );
    let err = open_refused(&fs, "a segment without its header must be refused");
    assert!(
        matches!(&err, OpenError::Corrupt { path, offset: 0, .. } if *path == damaged),
        "{err}"
    );
    assert!(
        fs.state().files.contains_key(&damaged),
        "the segment was removed"
    );
}

#[test]
fn failed_write_and_failed_fsync_are_reported_and_recovered_from() {
    let fs = SimFs::default();
    let (wal, _) = open(&fs);
    wal.append_blocking(vec![b"kept".to_vec()]).expect("append");
    fs.state().fail_next_append = Some(5);
    assert!(matches!(
        wal.append_blocking(vec![b"lost-1".to_vec()]),
        Err(AppendError::Io(_))
    ));
    assert!(wal.last_error().is_some());
    fs.state().fail_next_sync = true;
    assert!(matches!(
        wal.append_blocking(vec![b"lost-2".to_vec()]),
        Err(AppendError::Io(_))
    ));
    let range = wal
        .append_blocking(vec![b"after".to_vec()])
        .expect("recovers");
    assert_eq!(range.first, 2);
    assert!(wal.last_error().is_none());
    let got: Vec<_> = read_all(&wal, 0).into_iter().map(|r| r.payload).collect();
    assert_eq!(got, vec![b"kept".to_vec(), b"after".to_vec()]);
    wal.close();
    drop(wal);
    let (wal, report) = open(&fs);
    assert_eq!(report.last_seq, 2);
    assert_eq!(read_all(&wal, 0).len(), 2);
}

#[test]
fn cursors_and_retirement_follow_the_slowest_consumer() {
    let fs = SimFs::default();
    let (wal, _) = open(&fs);
    for _ in 0..40 {
        wal.append_blocking(vec![vec![1u8; 400]]).expect("append");
    }
    let before = wal.segment_count();
    // Nothing registered: nothing is deleted, whatever the cursor files say.
    wal.commit_cursor("history", 30).expect("commit");
    assert_eq!(wal.retire().expect("retire"), RetireReport::default());
    assert_eq!(wal.segment_count(), before);
    wal.register("history", 30).expect("register");
    wal.register("slow", 0).expect("register");
    assert_eq!(wal.load_cursor("history").expect("cursor"), 30);
    // A cursor commit of a registered consumer moves its position (and retires).
    wal.commit_cursor("slow", 5).expect("commit");
    assert_eq!(wal.position("slow"), 5);
    let report = wal.retire().expect("retire");
    assert_eq!(report.min_cursor, 5);
    let after_slow = wal.segment_count();
    // A position kept elsewhere (a database) moves with advance; positions never go back.
    wal.advance("slow", 40);
    wal.advance("slow", 2);
    assert_eq!(wal.position("slow"), 40);
    assert!(wal.segment_count() < after_slow && after_slow <= before);
    // Everything after the slowest position is still readable.
    let rest = read_all(&wal, 30);
    assert_eq!(rest.len(), 10);
    // A consumer needing retired records, or claiming records the WAL never had, is refused.
    let refused = wal.register("late", 1).expect_err("retired records");
    assert!(refused.contains("starts at"), "{refused}");
    let refused = wal.register("ahead", 41).expect_err("beyond the end");
    assert!(refused.contains("ends at 40"), "{refused}");
    // Unregistering the slowest lets the rest go.
    wal.advance("history", 40);
    wal.register("lagging", 40).expect("register");
    for _ in 0..40 {
        wal.append_blocking(vec![vec![1u8; 400]]).expect("append");
    }
    let held = wal.segment_count();
    wal.advance("history", 80);
    wal.advance("slow", 80);
    assert_eq!(wal.segment_count(), held);
    wal.unregister("lagging");
    assert!(wal.segment_count() < held);
    assert!(wal.commit_cursor("../escape", 1).is_err());
    // Retired WAL reopens at the right sequence.
    wal.close();
    drop(wal);
    let (wal, report) = open(&fs);
    assert_eq!(report.last_seq, 80);
    assert_eq!(
        wal.append_blocking(vec![b"x".to_vec()])
            .expect("append")
            .first,
        81
    );
}

#[test]
fn group_commit_shares_one_fsync() {
    #[derive(Default)]
    struct Counting(Mutex<Vec<usize>>);
    impl WalObserver for Counting {
        fn committed(&self, _: u64, records: usize, _: usize, _: Duration) {
            self.0.lock().expect("lock").push(records);
        }
        fn failed(&self, _: &str) {}
    }
    let counting = Arc::new(Counting::default());
    let fs = SimFs::default();
    let (wal, _) =
        Wal::open(&dir(), Arc::new(fs), WalConfig::default(), counting.clone()).expect("open");
    let wal = Arc::new(wal);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                for i in 0..200u64 {
                    wal.append_blocking(vec![(t * 1000 + i).to_le_bytes().to_vec()])
                        .expect("append");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let groups = counting.0.lock().expect("lock").clone();
    assert_eq!(groups.iter().sum::<usize>(), 1600);
    assert_eq!(read_all(&wal, 0).len(), 1600);
}

/// Random appends, injected failures and crashes against a model: after every crash, every
/// acknowledged record is present, in order, exactly once; only the group that failed last
/// (if no group succeeded since) may also reappear, as a prefix of itself.
#[test]
fn model_random_operations_with_failures_and_crashes() {
    for seed in 0..40 {
        let mut rng = StdRng::seed_from_u64(seed);
        let fs = SimFs::default();
        let (mut wal, _) = open(&fs);
        let mut acked: Vec<Vec<u8>> = Vec::new();
        let mut last_failed: Vec<Vec<u8>> = Vec::new();
        let mut tag = 0u64;
        for _ in 0..300 {
            match rng.gen_range(0..100) {
                0..=74 => {
                    let count = rng.gen_range(1..4);
                    let group: Vec<_> = (0..count)
                        .map(|_| {
                            tag += 1;
                            payload(&mut rng, tag)
                        })
                        .collect();
                    match rng.gen_range(0..20) {
                        0 => fs.state().fail_next_append = Some(rng.gen_range(0..40)),
                        1 => fs.state().fail_next_sync = true,
                        _ => {}
                    }
                    match wal.append_blocking(group.clone()) {
                        Ok(range) => {
                            assert_eq!(range.first, acked.len() as u64 + 1, "seed {seed}");
                            acked.extend(group);
                            last_failed.clear();
                        }
                        Err(_) => last_failed = group,
                    }
                }
                75..=89 => {
                    let got: Vec<_> = read_all(&wal, 0).into_iter().map(|r| r.payload).collect();
                    assert_eq!(got, acked, "seed {seed}: live read");
                }
                _ => {
                    wal.close();
                    drop(wal);
                    fs.state().fail_next_append = None;
                    fs.state().fail_next_sync = false;
                    fs.crash(&mut rng);
                    let (reopened, report) = open(&fs);
                    wal = reopened;
                    let got: Vec<_> = read_all(&wal, 0).into_iter().map(|r| r.payload).collect();
                    assert!(
                        got.len() >= acked.len(),
                        "seed {seed}: lost acknowledged records"
                    );
                    assert_eq!(got[..acked.len()], acked[..], "seed {seed}");
                    let extra = &got[acked.len()..];
                    assert!(
                        extra.len() <= last_failed.len(),
                        "seed {seed}: unexpected records"
                    );
                    assert_eq!(extra, &last_failed[..extra.len()], "seed {seed}");
                    assert_eq!(report.last_seq, got.len() as u64);
                    acked = got;
                    last_failed.clear();
                }
            }
        }
    }
}

/// A consumer whose durable effect is a list of sequence numbers; it can buffer (durable only
/// at idle) and fail once when handed a given record, after taking part of its batch.
struct Recorder {
    name: String,
    durable: Arc<Mutex<Vec<u64>>>,
    pending: Vec<u64>,
    fail_at: Option<u64>,
    buffered: bool,
}

impl Recorder {
    fn new(name: &str, buffered: bool, fail_at: Option<u64>) -> Self {
        Self {
            name: name.to_owned(),
            durable: Arc::default(),
            pending: Vec::new(),
            fail_at,
            buffered,
        }
    }

    fn position(&self) -> u64 {
        self.durable
            .lock()
            .expect("lock")
            .last()
            .copied()
            .unwrap_or(0)
    }
}

impl Consume for Recorder {
    fn name(&self) -> &str {
        &self.name
    }

    fn rewind(&mut self) -> Result<u64, String> {
        self.pending.clear();
        Ok(self.position())
    }

    fn apply(&mut self, records: Vec<WalRecord>) -> Result<u64, String> {
        for record in records {
            if self.fail_at == Some(record.seq) {
                self.fail_at = None;
                return Err(format!("disk full at {}", record.seq));
            }
            self.pending.push(record.seq);
        }
        if !self.buffered {
            self.durable.lock().expect("lock").append(&mut self.pending);
        }
        Ok(self.position())
    }

    fn idle(&mut self) -> Result<u64, String> {
        self.durable.lock().expect("lock").append(&mut self.pending);
        Ok(self.position())
    }
}

#[test]
fn a_failed_batch_is_read_again_never_skipped() {
    let fs = SimFs::default();
    let (wal, _) = open(&fs);
    let wal = Arc::new(wal);
    for i in 0..100u32 {
        wal.append_blocking(vec![i.to_le_bytes().to_vec()])
            .expect("append");
    }
    let consumer = Recorder::new("history", false, Some(35));
    let durable = consumer.durable.clone();
    let mut runner = Runner::new(wal.clone(), consumer)
        .expect("runner")
        .with_batch(10, 1 << 20);
    let error = runner.catch_up().expect_err("the batch holding 35 fails");
    assert!(error.contains("disk full at 35"), "{error}");
    let (_, status) = wal.consumers().into_iter().next().expect("registered");
    assert_eq!(status.failures, 1);
    assert_eq!(status.position, 30);
    assert_eq!(status.last_error.as_deref(), Some("disk full at 35"));
    runner.catch_up().expect("recovers");
    assert_eq!(
        *durable.lock().expect("lock"),
        (1..=100).collect::<Vec<_>>()
    );
    assert_eq!(wal.position("history"), 100);
    assert_eq!(
        wal.consumers()[0].1,
        ConsumerStatus {
            position: 100,
            last_error: None,
            failures: 0,
        }
    );
}

#[test]
fn segments_stay_until_a_buffering_consumer_made_them_durable() {
    let fs = SimFs::default();
    let (wal, _) = open(&fs);
    let wal = Arc::new(wal);
    for _ in 0..40 {
        wal.append_blocking(vec![vec![7u8; 400]]).expect("append");
    }
    let before = wal.segment_count();
    let mut fast = Runner::new(wal.clone(), Recorder::new("fast", false, None)).expect("fast");
    let mut lake = Runner::new(wal.clone(), Recorder::new("lake", true, None)).expect("lake");
    fast.catch_up().expect("fast");
    // The buffering consumer read everything; nothing of it is durable, so nothing goes.
    assert_eq!(lake.step().expect("read"), 40);
    assert_eq!(wal.position("lake"), 0);
    assert_eq!(wal.segment_count(), before);
    // A crash now: a new runner rewinds to the durable position and reads it all again.
    drop(lake);
    let mut lake = Runner::new(wal.clone(), Recorder::new("lake", true, None)).expect("lake");
    assert_eq!(lake.step().expect("read again"), 40);
    assert_eq!(lake.step().expect("idle flushes"), 0);
    assert_eq!(wal.position("lake"), 40);
    assert!(wal.segment_count() < before);
    assert_eq!(read_all(&wal, 39).len(), 1);
}

#[test]
fn a_waiting_consumer_wakes_when_a_record_becomes_durable() {
    let fs = SimFs::default();
    let (wal, _) = open(&fs);
    let wal = Arc::new(wal);
    let writer = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            wal.append_blocking(vec![b"x".to_vec()]).expect("append");
        })
    };
    // Waits for the append (a 60 s timeout would fail the test by hanging it).
    wal.wait_beyond(0, Duration::from_secs(60));
    assert_eq!(wal.durable_seq(), 1);
    writer.join().expect("writer");
    // Already beyond: no wait at all.
    wal.wait_beyond(0, Duration::from_secs(60));
}

#[test]
fn backoff_grows_to_its_ceiling_with_jitter_in_the_upper_half() {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    let waits: Vec<Duration> = (0..12).map(|_| backoff.next_wait()).collect();
    let mut ceiling = Duration::from_millis(100);
    for wait in &waits {
        assert!(
            *wait >= ceiling / 2 && *wait <= ceiling,
            "{wait:?} not in upper half of {ceiling:?}"
        );
        ceiling = (ceiling * 2).min(Duration::from_secs(30));
    }
    assert!(waits[11] >= Duration::from_secs(15));
    backoff.reset();
    assert!(backoff.next_wait() <= Duration::from_millis(100));
}

/// Counts the records of each batch it is handed.
struct Batches {
    sizes: Arc<Mutex<Vec<usize>>>,
    position: u64,
}

impl Consume for Batches {
    fn name(&self) -> &str {
        "batches"
    }

    fn rewind(&mut self) -> Result<u64, String> {
        Ok(self.position)
    }

    fn apply(&mut self, records: Vec<WalRecord>) -> Result<u64, String> {
        self.sizes.lock().expect("lock").push(records.len());
        self.position = records.last().map_or(self.position, |r| r.seq);
        Ok(self.position)
    }

    fn idle(&mut self) -> Result<u64, String> {
        Ok(self.position)
    }
}

type BatchesRun = (
    Arc<Mutex<Vec<usize>>>,
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
);

/// Runs a [`Batches`] consumer with `linger` from `from` records on its own thread: the batch
/// sizes it sees, its stop flag and the thread.
fn run_batches(wal: &Arc<Wal>, linger: Duration, from: usize) -> BatchesRun {
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let runner = Runner::new(
        wal.clone(),
        Batches {
            sizes: sizes.clone(),
            position: 0,
        },
    )
    .expect("runner")
    .with_linger(linger, from);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::spawn(move || runner.run(&stop))
    };
    (sizes, stop, thread)
}

/// Waits (up to 10 s) until the runner of `run_batches` has applied `n` records.
fn wait_applied(sizes: &Mutex<Vec<usize>>, n: usize, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sizes.lock().expect("lock").iter().sum::<usize>() < n {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Stops the runner of `run_batches` and waits for its thread.
fn stop_batches(
    wal: &Wal,
    stop: &std::sync::atomic::AtomicBool,
    thread: std::thread::JoinHandle<()>,
) {
    stop.store(true, std::sync::atomic::Ordering::Release);
    wal.wake_consumers();
    thread.join().expect("runner thread");
}

/// With a linger, records appended one by one while a batch is applied arrive in a few large
/// batches, not one each; the first record after an idle spell is applied at once, and every
/// record is applied exactly once. (Batches below the linger's threshold are applied as they
/// come: `no_linger_below_its_threshold`.)
#[test]
fn a_lingering_runner_gathers_records_into_few_batches() {
    let fs = SimFs::default();
    let (wal, _) = open(&fs);
    let wal = Arc::new(wal);
    let (sizes, stop, thread) = run_batches(&wal, Duration::from_millis(400), 1);
    for i in 0..60u32 {
        wal.append_blocking(vec![i.to_le_bytes().to_vec()])
            .expect("append");
        std::thread::sleep(Duration::from_millis(2));
    }
    // Wait until every record is applied (the linger ends within a second).
    wait_applied(&sizes, 60, "records not applied");
    stop_batches(&wal, &stop, thread);
    let sizes = sizes.lock().expect("lock").clone();
    assert_eq!(sizes.iter().sum::<usize>(), 60, "{sizes:?}");
    assert!(
        sizes.len() <= 6,
        "60 records in {} batches: {sizes:?}",
        sizes.len()
    );
}

/// A linger from 100 records leaves batches of one record alone: each is applied as it comes
/// (what a few control-plane calls need to be visible at once).
#[test]
fn no_linger_below_its_threshold() {
    let fs = SimFs::default();
    let (wal, _) = open(&fs);
    let wal = Arc::new(wal);
    let (sizes, stop, thread) = run_batches(&wal, Duration::from_secs(30), 100);
    for i in 0..5u32 {
        wal.append_blocking(vec![i.to_le_bytes().to_vec()])
            .expect("append");
        // Each record is applied long before a 30 s linger would end.
        wait_applied(&sizes, i as usize + 1, &format!("record {i} waited"));
    }
    stop_batches(&wal, &stop, thread);
}
