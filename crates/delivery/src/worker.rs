//! One trail's delivery: a WAL consumer (`trail-<id>`, driven by `cairn_wal::Runner` on a
//! thread of its own) that batches the records the trail selects and delivers a batch —
//! journal, create-only files, digest ledger, then the cursor — when it is due.

use crate::digests::{DigestLedger, PlannedDigest};
use crate::journal::{Journal, JournalFile};
use bytes::Bytes;
use cairn_model::{payload, Clock};
use cairn_trail::batch::Batcher;
use cairn_trail::Trail;
use cairn_wal::Wal;
use object_store::ObjectStore;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// A batch is delivered this long after its first event (CloudTrail: about 5 minutes).
    pub interval: Duration,
    /// Largest uncompressed log file; 48 MiB keeps every file under 50 MB compressed.
    pub max_file_bytes: usize,
    /// Account for records without `recipientAccountId`.
    pub account_id: String,
    /// Directory of the delivery journals.
    pub journal_dir: PathBuf,
    /// Test failpoint: abort the process after uploading a batch, before committing the cursor.
    pub abort_after_upload: bool,
    /// Digest production for trails with log file validation (`None`: validation unavailable).
    pub digests: Option<DigestConfig>,
}

/// How a trail's digests are produced and stored.
#[derive(Debug, Clone)]
pub struct DigestConfig {
    /// The region signing keys.
    pub keys: Arc<cairn_keys::KeyRing>,
    /// Digest period (an hour; shorter in tests).
    pub period: Duration,
    /// The bucket name written in digests (`digestS3Bucket`, `logFiles[].s3Bucket`).
    pub bucket: String,
    /// Where the signature metadata goes.
    pub metadata: cairn_store::MetadataStyle,
}

/// An object to store.
struct Upload {
    key: String,
    body: Vec<u8>,
    metadata: Option<cairn_store::Metadata>,
}

/// A log file of a delivery with what its digest entry needs.
struct Encoded {
    key: String,
    body: Vec<u8>,
    /// SHA-256 hex of the uncompressed JSON and the (oldest, newest) event times, when the
    /// trail's digests need them.
    digest: Option<(String, Option<(String, String)>)>,
}

/// What one delivery wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Files written.
    pub files: usize,
    /// Events in them.
    pub events: usize,
    /// Compressed bytes written.
    pub bytes: usize,
    /// Their keys.
    pub keys: Vec<String>,
}

/// Notified of deliveries and failures (metrics, trail status).
pub trait DeliveryObserver: Send + Sync {
    /// A batch was delivered (or, with no files, the cursor moved past unselected events).
    fn delivered(&self, trail: &Trail, report: &FlushReport);
    /// An attempt failed; it will be retried.
    fn failed(&self, trail: &Trail, error: &str);
    /// A digest file was stored.
    fn digest_delivered(&self, trail: &Trail, key: &str);
    /// Storing a digest failed; it will be retried.
    fn digest_failed(&self, trail: &Trail, error: &str);
    /// Durable WAL records the trail has not delivered yet (its consumer lag).
    fn lag(&self, trail: &Trail, records: u64);
}

#[derive(Default)]
struct Signals {
    flush_waiters: Vec<mpsc::Sender<Result<FlushReport, String>>>,
}

struct Shared {
    trail: Mutex<Trail>,
    stop: AtomicBool,
    signals: Mutex<Signals>,
    cond: Condvar,
}

impl Shared {
    /// Waits out `duration` (a retry backoff): new WAL records do not cut it short (they
    /// arrive many times a second under load); a stop or a flush request (someone waits for
    /// the outcome of an attempt) does.
    fn pause(&self, duration: Duration) {
        let deadline = std::time::Instant::now() + duration;
        let mut guard = self.signals.lock().expect("delivery lock poisoned");
        while !self.stop.load(Ordering::Acquire) && guard.flush_waiters.is_empty() {
            let now = std::time::Instant::now();
            if now >= deadline {
                return;
            }
            guard = self
                .cond
                .wait_timeout(guard, deadline - now)
                .expect("delivery lock poisoned")
                .0;
        }
    }

    fn flush_wanted(&self) -> bool {
        !self
            .signals
            .lock()
            .expect("delivery lock poisoned")
            .flush_waiters
            .is_empty()
    }
}

/// Controls a running worker.
pub struct DeliveryHandle {
    shared: Arc<Shared>,
    wal: Arc<Wal>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DeliveryHandle {
    /// Gives the worker the trail's new settings.
    pub fn update(&self, trail: Trail) {
        *self.shared.trail.lock().expect("delivery lock poisoned") = trail;
        self.wal.wake_consumers();
    }

    /// Asks the worker to deliver everything durable now; the receiver gets the outcome.
    pub fn flush(&self) -> mpsc::Receiver<Result<FlushReport, String>> {
        let (tx, rx) = mpsc::channel();
        self.shared
            .signals
            .lock()
            .expect("delivery lock poisoned")
            .flush_waiters
            .push(tx);
        self.shared.cond.notify_one();
        self.wal.wake_consumers();
        rx
    }

    /// Stops the worker (pending events stay in the WAL for the next start).
    pub fn stop(mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.cond.notify_one();
        self.wal.wake_consumers();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for DeliveryHandle {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.cond.notify_one();
        self.wal.wake_consumers();
    }
}

/// The worker state.
pub struct TrailWorker {
    shared: Arc<Shared>,
    wal: Arc<Wal>,
    store: Arc<dyn ObjectStore>,
    clock: Arc<dyn Clock>,
    config: DeliveryConfig,
    observer: Arc<dyn DeliveryObserver>,
    runtime: tokio::runtime::Runtime,
}

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

impl TrailWorker {
    /// Starts the worker thread of `trail`.
    pub fn spawn(
        trail: Trail,
        wal: Arc<Wal>,
        store: Arc<dyn ObjectStore>,
        clock: Arc<dyn Clock>,
        config: DeliveryConfig,
        observer: Arc<dyn DeliveryObserver>,
    ) -> std::io::Result<DeliveryHandle> {
        let name = format!("cairn-trail-{}", trail.name);
        let shared = Arc::new(Shared {
            trail: Mutex::new(trail),
            stop: AtomicBool::new(false),
            signals: Mutex::new(Signals::default()),
            cond: Condvar::new(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let worker = Self {
            shared: shared.clone(),
            wal: wal.clone(),
            store,
            clock,
            config,
            observer,
            runtime,
        };
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || TrailConsumer::new(worker).run())?;
        Ok(DeliveryHandle {
            shared,
            wal,
            thread: Some(thread),
        })
    }

    fn trail(&self) -> Trail {
        self.shared
            .trail
            .lock()
            .expect("delivery lock poisoned")
            .clone()
    }

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    fn journal_path(&self, trail: &Trail) -> PathBuf {
        self.config
            .journal_dir
            .join(format!("{}.journal", trail.id))
    }

    fn ledger_path(&self, trail: &Trail) -> PathBuf {
        self.config
            .journal_dir
            .join(format!("{}.digests.json", trail.id))
    }

    /// Whether the files of this delivery must be listed in digests.
    fn digesting(&self, trail: &Trail, ledger: &DigestLedger) -> bool {
        self.config.digests.is_some() && trail.log_file_validation_enabled && ledger.active
    }

    /// Encodes a file's records (hashing them and reading their times if digests need it),
    /// with who ingested each (`cairnIngestedBy`) when `ingested_by` is given.
    fn encode(
        key: &str,
        records: &[&[u8]],
        ingested_by: Option<&[&[u8]]>,
        digesting: bool,
    ) -> Encoded {
        let (body, hash) = match ingested_by {
            Some(provenance) => {
                let objects: Vec<Vec<u8>> = provenance
                    .iter()
                    .map(|p| {
                        cairn_model::provenance::Provenance::decode(p)
                            .to_json()
                            .to_string()
                            .into_bytes()
                    })
                    .collect();
                cairn_logfile::body::encode_with_ingested_by(records, &objects, digesting)
            }
            None if digesting => {
                let (body, hash) = cairn_logfile::body::encode_hashed(records);
                (body, Some(hash))
            }
            None => (cairn_logfile::body::encode(records), None),
        };
        Encoded {
            key: key.to_owned(),
            body,
            digest: hash.map(|hash| (hash, cairn_logfile::body::event_time_range(records))),
        }
    }

    /// Lists delivered files in the digest ledger (durably, before the cursor moves).
    /// `delivered_at` is the delivery time (the keys hold it to the minute only).
    fn record_in_ledger(
        &self,
        trail: &Trail,
        ledger: &mut DigestLedger,
        files: &[Encoded],
        delivered_at: i64,
    ) -> Result<(), String> {
        let mut changed = false;
        for file in files {
            let Some((hash, times)) = &file.digest else {
                continue;
            };
            let Ok(key) = file.key.parse::<cairn_logfile::keys::LogFileKey>() else {
                continue;
            };
            let stamp = cairn_model::time::format_utc_seconds(key.delivered_at);
            let (oldest, newest) = times.clone().unwrap_or((stamp.clone(), stamp));
            ledger.record(
                &key.account,
                &key.region,
                delivered_at,
                cairn_digest::producer::DeliveredLog {
                    key: file.key.clone(),
                    sha256_hex: hash.clone(),
                    newest_event_time: newest,
                    oldest_event_time: oldest,
                },
            );
            changed = true;
        }
        if changed {
            ledger
                .store(&self.ledger_path(trail))
                .map_err(|e| format!("writing the digest ledger: {e}"))?;
        }
        Ok(())
    }

    /// Starts the digest chains when validation is enabled on a trail that is logging, or
    /// has events of a logging period still to deliver (`cursor` is the delivery position).
    fn activate(
        &self,
        trail: &Trail,
        ledger: &mut DigestLedger,
        cursor: u64,
    ) -> Result<(), String> {
        let undelivered = trail
            .logging
            .last()
            .and_then(|p| p.through)
            .is_some_and(|through| cursor < through);
        if self.config.digests.is_some()
            && trail.log_file_validation_enabled
            && (trail.is_logging() || undelivered)
            && !ledger.active
        {
            let now = self.clock.now_millis();
            ledger.activate(&self.config.account_id, &trail.scope.home_region, now);
            ledger
                .store(&self.ledger_path(trail))
                .map_err(|e| format!("writing the digest ledger: {e}"))?;
        }
        Ok(())
    }

    /// Writes every digest due now (starting, hourly, final, backfill).
    fn digest_tick(
        &self,
        trail: &Trail,
        ledger: &mut DigestLedger,
        cursor: u64,
    ) -> Result<(), String> {
        let Some(config) = &self.config.digests else {
            return Ok(());
        };
        let now = self.clock.now_millis();
        let path = self.ledger_path(trail);
        self.activate(trail, ledger, cursor)?;
        // Logging stopped and everything through the stop is delivered, or validation is off.
        let stopped_and_delivered = !trail.is_logging()
            && trail
                .logging
                .last()
                .and_then(|p| p.through)
                .is_none_or(|through| cursor >= through);
        let finish = !trail.log_file_validation_enabled || stopped_and_delivered;
        let period = i64::try_from(config.period.as_millis()).unwrap_or(i64::MAX);
        while let Some(planned) = ledger.next_due(now, period, finish) {
            let stored = self.write_digest(trail, config, &planned)?;
            ledger.written(&planned, stored);
            ledger
                .store(&path)
                .map_err(|e| format!("writing the digest ledger: {e}"))?;
        }
        Ok(())
    }

    fn write_digest(
        &self,
        trail: &Trail,
        config: &DigestConfig,
        planned: &PlannedDigest,
    ) -> Result<cairn_digest::producer::PreviousDigest, String> {
        let key = cairn_logfile::keys::DigestKey {
            prefix: trail.s3_key_prefix.clone(),
            org_id: trail
                .organization_id
                .clone()
                .filter(|_| trail.is_organization_trail),
            account: planned.account.clone(),
            region: planned.region.clone(),
            trail_name: trail.name.clone(),
            home_region: trail.scope.home_region.clone(),
            end_time: planned.end,
            backfill: planned.backfill,
        };
        let signing_key = config
            .keys
            .signing_key(&planned.region)
            .map_err(|e| format!("digest signing key: {e}"))?;
        let produced = cairn_digest::producer::produce(
            &key,
            &config.bucket,
            &cairn_model::time::format_utc_seconds(planned.start),
            &planned.logs,
            planned.previous.as_ref(),
            &signing_key,
        );
        let mut metadata = cairn_store::Metadata::new();
        metadata.insert("signature".into(), produced.signature.clone());
        metadata.insert(
            "signature-algorithm".into(),
            cairn_digest::signing::SIGNATURE_ALGORITHM.into(),
        );
        if planned.backfill {
            metadata.insert(
                "backfill-generation-timestamp".into(),
                cairn_model::time::format_utc_seconds(planned.end),
            );
        }
        let upload = Upload {
            key: produced.key.clone(),
            body: cairn_logfile::body::gzip(&produced.bytes),
            metadata: Some(metadata),
        };
        self.upload(trail, std::slice::from_ref(&upload))?;
        tracing::info!(trail = %trail.name, key = %produced.key, files = planned.logs.len(), "delivered digest file");
        self.observer.digest_delivered(trail, &produced.key);
        Ok(produced.as_previous)
    }

    fn answer_waiters(&self, result: &Result<FlushReport, String>) {
        let waiters = std::mem::take(
            &mut self
                .shared
                .signals
                .lock()
                .expect("delivery lock poisoned")
                .flush_waiters,
        );
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }

    /// Uploads `files`, retrying each with backoff until it is stored or the worker stops.
    fn upload(&self, trail: &Trail, files: &[Upload]) -> Result<(), String> {
        for Upload {
            key,
            body,
            metadata,
        } in files
        {
            let mut backoff = cairn_wal::Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
            let mut failures = 0u32;
            loop {
                let bytes = Bytes::from(body.clone());
                let result = self.runtime.block_on(async {
                    match (metadata, &self.config.digests) {
                        (Some(metadata), Some(config)) => {
                            cairn_store::put_create_only_with_metadata(
                                self.store.as_ref(),
                                key,
                                bytes,
                                metadata,
                                config.metadata,
                            )
                            .await
                        }
                        _ => cairn_store::put_create_only(self.store.as_ref(), key, bytes).await,
                    }
                });
                match result {
                    Ok(outcome) => {
                        if failures > 0 {
                            tracing::info!(trail = %trail.name, key, attempts = failures + 1, "delivery recovered");
                        }
                        tracing::debug!(trail = %trail.name, key, ?outcome, "delivered log file");
                        break;
                    }
                    Err(e) => {
                        let message = format!(
                            "{e}: {}",
                            std::error::Error::source(&e)
                                .map(|s| s.to_string())
                                .unwrap_or_default()
                        );
                        failures += 1;
                        let wait = backoff.next_wait();
                        // One line when the store starts failing; the rest at debug level (the
                        // status and the failure counter show every attempt).
                        if failures == 1 {
                            tracing::warn!(trail = %trail.name, key, error = %message, "delivery failed; retrying with backoff (1 s doubling to 60 s, with jitter)");
                        } else {
                            tracing::debug!(trail = %trail.name, key, error = %message, retry_in = ?wait, attempt = failures, "delivery failed again");
                        }
                        if metadata.is_some() {
                            self.observer.digest_failed(trail, &message);
                        } else {
                            self.observer.failed(trail, &message);
                        }
                        self.answer_waiters(&Err(message.clone()));
                        if self.stopping() {
                            return Err(message);
                        }
                        self.shared.pause(wait);
                        if self.stopping() {
                            return Err(message);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn commit(&self, trail: &Trail, to: u64) -> Result<(), String> {
        if self.config.abort_after_upload {
            tracing::error!(
                "failpoint abort_after_upload: aborting between upload and cursor commit"
            );
            std::process::abort();
        }
        self.wal
            .commit_cursor(&trail.cursor_name(), to)
            .map_err(|e| format!("committing the cursor: {e}"))?;
        Journal::clear(&self.journal_path(trail)).map_err(|e| format!("clearing the journal: {e}"))
    }

    /// Finishes a batch a previous run journaled but did not commit.
    fn recover(
        &self,
        trail: &Trail,
        ledger: &mut DigestLedger,
        cursor: u64,
    ) -> Result<u64, String> {
        let path = self.journal_path(trail);
        let Some(journal) =
            Journal::load(&path).map_err(|e| format!("reading journal {}: {e}", path.display()))?
        else {
            return Ok(cursor);
        };
        if journal.to <= cursor {
            Journal::clear(&path).map_err(|e| e.to_string())?;
            return Ok(cursor);
        }
        tracing::info!(trail = %trail.name, from = journal.from, to = journal.to, files = journal.files.len(), "replaying a journaled delivery");
        let mut wanted: std::collections::BTreeMap<u64, (Vec<u8>, Vec<u8>)> = journal
            .files
            .iter()
            .flat_map(JournalFile::seqs)
            .map(|s| (s, (Vec::new(), Vec::new())))
            .collect();
        if let Some(&first) = wanted.keys().next() {
            let last = *wanted.keys().next_back().expect("non-empty");
            let mut reader = self.wal.reader(first - 1);
            while reader.next_seq() <= last {
                let records = reader
                    .read_batch(4096, 8 << 20)
                    .map_err(|e| format!("re-reading the WAL: {e}"))?;
                if records.is_empty() {
                    return Err(format!(
                        "WAL ends before sequence {last} of the journaled batch"
                    ));
                }
                for record in records {
                    if let Some(slot) = wanted.get_mut(&record.seq) {
                        let decoded =
                            payload::decode(&record.payload).ok_or("unknown WAL payload format")?;
                        *slot = (decoded.record.to_vec(), decoded.provenance.to_vec());
                    }
                }
            }
        }
        let digesting = self.digesting(trail, ledger);
        let files: Vec<Encoded> = journal
            .files
            .iter()
            .map(|f| {
                let records: Vec<&[u8]> = f.seqs().map(|s| wanted[&s].0.as_slice()).collect();
                let ingested_by: Vec<&[u8]> = f.seqs().map(|s| wanted[&s].1.as_slice()).collect();
                Self::encode(
                    &f.key,
                    &records,
                    journal.ingested_by.then_some(ingested_by.as_slice()),
                    digesting,
                )
            })
            .collect();
        self.upload_encoded(trail, &files)?;
        self.record_in_ledger(trail, ledger, &files, journal.delivered_at)?;
        self.commit(trail, journal.to)?;
        let report = FlushReport {
            files: files.len(),
            events: journal.files.iter().map(|f| f.seqs().count()).sum(),
            bytes: files.iter().map(|f| f.body.len()).sum(),
            keys: files.into_iter().map(|f| f.key).collect(),
        };
        self.observer.delivered(trail, &report);
        Ok(journal.to)
    }

    fn upload_encoded(&self, trail: &Trail, files: &[Encoded]) -> Result<(), String> {
        // Moves nothing: the bodies are copied per attempt anyway.
        let uploads: Vec<Upload> = files
            .iter()
            .map(|f| Upload {
                key: f.key.clone(),
                body: f.body.clone(),
                metadata: None,
            })
            .collect();
        self.upload(trail, &uploads)
    }

    fn deliver(
        &self,
        trail: &Trail,
        ledger: &mut DigestLedger,
        batcher: &Batcher,
        from: u64,
        to: u64,
    ) -> Result<FlushReport, String> {
        let delivered_at = self.clock.now_millis();
        let batches = batcher.files(trail, from, to, delivered_at);
        self.activate(trail, ledger, from)?;
        let digesting = self.digesting(trail, ledger);
        let files: Vec<Encoded> = batches
            .iter()
            .map(|f| {
                Self::encode(
                    &f.key,
                    &f.records,
                    trail
                        .cairn_include_ingested_by
                        .then_some(f.ingested_by.as_slice()),
                    digesting,
                )
            })
            .collect();
        if !files.is_empty() {
            let journal = Journal {
                from,
                to,
                delivered_at,
                files: batches
                    .iter()
                    .map(|f| JournalFile {
                        key: f.key.clone(),
                        ranges: JournalFile::ranges_of(&f.seqs),
                    })
                    .collect(),
                ingested_by: trail.cairn_include_ingested_by,
            };
            journal
                .store(&self.journal_path(trail))
                .map_err(|e| format!("writing the delivery journal: {e}"))?;
            self.upload_encoded(trail, &files)?;
            self.record_in_ledger(trail, ledger, &files, delivered_at)?;
        }
        self.commit(trail, to)?;
        Ok(FlushReport {
            files: files.len(),
            events: batches.iter().map(|f| f.seqs.len()).sum(),
            bytes: files.iter().map(|f| f.body.len()).sum(),
            keys: files.into_iter().map(|f| f.key).collect(),
        })
    }
}

/// A trail's delivery as a WAL consumer. Its position is the trail's cursor file, committed
/// after the batch's files are stored and listed in the digest ledger; a batch in flight is
/// journaled first, so [`Consume::rewind`] (at start and after any failure) replays it under
/// the same keys with the same bytes.
struct TrailConsumer {
    worker: TrailWorker,
    name: String,
    ledger: DigestLedger,
    batcher: Batcher,
    /// Delivered through this WAL position (the committed cursor).
    cursor: u64,
    /// The last WAL position given.
    last_read: u64,
    /// When the batch's first selected event arrived (the injected clock's epoch ms).
    window_started: Option<i64>,
    /// When the cursor last moved.
    last_commit: i64,
    /// The delivery interval, ms.
    interval: i64,
    /// Whether deliveries are failing (one log line when they start, one when they recover).
    failing: bool,
}

impl TrailConsumer {
    fn new(worker: TrailWorker) -> Self {
        let trail = worker.trail();
        let interval = i64::try_from(worker.config.interval.as_millis()).unwrap_or(i64::MAX);
        let now = worker.clock.now_millis();
        let batcher = Batcher::new(worker.config.max_file_bytes);
        Self {
            name: trail.cursor_name(),
            worker,
            ledger: DigestLedger::default(),
            batcher,
            cursor: 0,
            last_read: 0,
            window_started: None,
            last_commit: now,
            interval,
            failing: false,
        }
    }

    /// Runs until the handle stops it: the journal replayed first (retried until it succeeds
    /// or the worker stops), then the runner, which re-reads from the cursor after a failure
    /// and retries with backoff (1 s doubling to 60 s, with jitter).
    fn run(mut self) {
        let shared = self.worker.shared.clone();
        let wal = self.worker.wal.clone();
        let trail_name = self.worker.trail().name;
        while let Err(e) = cairn_wal::Consume::rewind(&mut self) {
            if self.worker.stopping() {
                tracing::warn!(trail = %trail_name, error = %e, "stopping with a journaled delivery pending");
                return;
            }
            tracing::error!(trail = %trail_name, error = %e, "replaying the delivery journal failed; retrying");
            shared.pause(BACKOFF_MIN);
        }
        match cairn_wal::Runner::new(wal, self) {
            Ok(runner) => runner
                .with_backoff(cairn_wal::Backoff::new(BACKOFF_MIN, BACKOFF_MAX))
                .run(&shared.stop),
            Err(e) => {
                tracing::error!(trail = %trail_name, error = %e, "cannot start the trail's delivery");
            }
        }
    }

    /// Delivers the batch when it is due (or `force`d by a flush request), then the digests
    /// due; answers the flush requests.
    fn deliver_if_due(&mut self, trail: &Trail, now: i64, force: bool) -> Result<(), String> {
        let due = force
            || self.batcher.bytes() >= self.worker.config.max_file_bytes
            || self
                .window_started
                .is_some_and(|t| now - t >= self.interval)
            || (self.batcher.is_empty()
                && self.last_read > self.cursor
                && now - self.last_commit >= self.interval);
        if !due {
            return Ok(());
        }
        let result = self
            .worker
            .deliver(
                trail,
                &mut self.ledger,
                &self.batcher,
                self.cursor,
                self.last_read,
            )
            .and_then(|report| {
                self.worker
                    .digest_tick(trail, &mut self.ledger, self.last_read)?;
                Ok(report)
            });
        match &result {
            Ok(report) => {
                if self.failing {
                    tracing::info!(trail = %trail.name, "delivery recovered");
                    self.failing = false;
                }
                self.cursor = self.last_read;
                self.batcher.clear();
                self.window_started = None;
                self.last_commit = now;
                self.worker.observer.delivered(trail, report);
                self.report_lag(trail);
            }
            Err(e) => {
                if !self.failing {
                    tracing::error!(trail = %trail.name, error = %e, "delivery failed; retrying with backoff");
                }
                self.failing = true;
                self.worker.observer.failed(trail, e);
            }
        }
        if result.is_ok() || force {
            self.worker.answer_waiters(&result);
        }
        result.map(drop)
    }

    fn report_lag(&self, trail: &Trail) {
        self.worker.observer.lag(
            trail,
            self.worker.wal.durable_seq().saturating_sub(self.cursor),
        );
    }
}

impl cairn_wal::Consume for TrailConsumer {
    fn name(&self) -> &str {
        &self.name
    }

    fn rewind(&mut self) -> Result<u64, String> {
        let trail = self.worker.trail();
        let initial = self
            .worker
            .wal
            .load_cursor(&self.name)
            .map_err(|e| format!("reading the trail's WAL cursor: {e}"))?;
        self.ledger = DigestLedger::load(&self.worker.ledger_path(&trail))
            .map_err(|e| format!("reading the trail's digest ledger: {e}"))?;
        let cursor = self.worker.recover(&trail, &mut self.ledger, initial)?;
        self.cursor = cursor;
        self.last_read = cursor;
        self.batcher.clear();
        self.window_started = None;
        self.last_commit = self.worker.clock.now_millis();
        Ok(cursor)
    }

    fn apply(&mut self, records: Vec<cairn_wal::WalRecord>) -> Result<u64, String> {
        let trail = self.worker.trail();
        let now = self.worker.clock.now_millis();
        self.report_lag(&trail);
        for record in records {
            if let Some(decoded) = payload::decode(&record.payload) {
                if self.batcher.offer(
                    &trail,
                    &self.worker.config.account_id,
                    record.seq,
                    decoded.record,
                    decoded.fields,
                    decoded.provenance,
                ) {
                    self.window_started.get_or_insert(now);
                }
            }
            self.last_read = record.seq;
        }
        // A flush request reads everything durable first; the idle call then delivers it.
        if !self.worker.shared.flush_wanted() {
            self.deliver_if_due(&trail, now, false)?;
        }
        Ok(self.cursor)
    }

    fn idle(&mut self) -> Result<u64, String> {
        let trail = self.worker.trail();
        let now = self.worker.clock.now_millis();
        let force = self.worker.shared.flush_wanted();
        self.deliver_if_due(&trail, now, force)?;
        if let Err(e) = self
            .worker
            .digest_tick(&trail, &mut self.ledger, self.cursor)
        {
            if !self.failing {
                tracing::error!(trail = %trail.name, error = %e, "digest delivery failed; retrying with backoff");
            }
            self.failing = true;
            self.worker.observer.digest_failed(&trail, &e);
            return Err(e);
        }
        Ok(self.cursor)
    }

    fn tick(&self) -> Duration {
        if self.worker.shared.flush_wanted() {
            return Duration::from_millis(10);
        }
        let now = self.worker.clock.now_millis();
        let ms = self
            .window_started
            .map_or(1000, |t| (t + self.interval - now).clamp(10, 1000));
        Duration::from_millis(u64::try_from(ms).unwrap_or(1000))
    }
}
