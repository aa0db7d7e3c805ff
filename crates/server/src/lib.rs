//! Cairn's composition root: configuration in, a running server out.
//!
//! [`start`] opens (and recovers) the write-ahead log, opens Event history, lets the history
//! indexer catch up with every durable record, then binds the HTTP API. The indexer then runs
//! on its own thread, woken by each group commit. [`Running::shutdown`] stops accepting
//! requests, drains the indexer and closes the WAL.

pub mod config;
pub mod iam_service;
pub mod indexer;
pub mod ingest;
pub mod lake;
pub mod logs;
pub mod metrics;
pub mod notify;
pub mod security;
pub mod space;
pub mod tls;
pub mod trails;

use cairn_api::{AppState, BoxFuture, EventQuery, Health};
use cairn_history::{HistoryConfig, HistoryError, HistoryStore, LookupPage, LookupQuery};
use cairn_model::{AccountId, Clock};
use cairn_wal::{Wal, WalConfig, WalObserver};
use config::Config;
use indexer::HistoryConsumer;
use ingest::IngestService;
use metrics::Metrics;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be prepared.
    #[error("preparing data directory {path} failed")]
    DataDir {
        /// The path.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another cairn process")]
    Locked(PathBuf),
    /// The stored account id conflicts with the configured one, or is damaged.
    #[error("account id: {0}")]
    AccountId(String),
    /// The WAL could not be opened.
    #[error("opening the write-ahead log failed")]
    Wal(#[source] cairn_wal::OpenError),
    /// Event history could not be opened.
    #[error("opening event history failed")]
    History(#[source] HistoryError),
    /// The catalog could not be opened.
    #[error("opening the catalog failed: {0}")]
    Catalog(String),
    /// The TLS certificate or key is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The signing keys could not be read or installed.
    #[error("digest signing keys: {0}")]
    Keys(String),
    /// Catching up the history index failed.
    #[error("indexing event history at start failed: {0}")]
    CatchUp(String),
    /// The listen address could not be bound.
    #[error("binding {addr} failed")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// Reads the account id kept in the data directory, creating it at first start.
pub fn resolve_account_id(
    data_dir: &Path,
    configured: Option<&AccountId>,
) -> Result<AccountId, StartError> {
    let path = data_dir.join("account-id");
    let io = |source| StartError::DataDir {
        path: path.clone(),
        source,
    };
    let stored =
        match std::fs::read_to_string(&path) {
            Ok(text) => Some(text.trim().parse::<AccountId>().map_err(|e| {
                StartError::AccountId(format!("{} is damaged: {e}", path.display()))
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
    match (stored, configured) {
        (Some(stored), Some(configured)) if &stored != configured => Err(StartError::AccountId(format!(
            "configured account id {configured} differs from {stored}, the one this data directory was created with ({})",
            path.display()
        ))),
        (Some(stored), _) => Ok(stored),
        (None, configured) => {
            let id = configured.cloned().unwrap_or_else(|| AccountId::from_random(rand::random()));
            cairn_durable::file::write(&path, format!("{id}\n").as_bytes()).map_err(io)?;
            Ok(id)
        }
    }
}

struct Observer {
    metrics: Arc<Metrics>,
}

impl WalObserver for Observer {
    fn committed(&self, last_seq: u64, records: usize, bytes: usize, fsync: Duration) {
        self.metrics.committed(last_seq, records, bytes, fsync);
    }

    fn failed(&self, error: &str) {
        self.metrics.failed(error);
    }
}

struct HistoryQuery {
    history: Arc<HistoryStore>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl EventQuery for HistoryQuery {
    fn lookup(
        &self,
        query: LookupQuery,
    ) -> BoxFuture<'_, Result<LookupPage, cairn_history::LookupError>> {
        Box::pin(async move {
            use cairn_history::LookupError;
            let history = self.history.clone();
            let now = self.clock.now_millis();
            let page = match tokio::task::spawn_blocking(move || history.lookup(&query, now)).await
            {
                Ok(Ok(page)) => Ok(page),
                Ok(Err(HistoryError::Query(e))) => Err(LookupError::Query(e)),
                Ok(Err(e)) if e.is_storage_failure() => {
                    Err(LookupError::Unavailable(cairn_model::error_chain(&e)))
                }
                Ok(Err(e)) => Err(LookupError::Failed(cairn_model::error_chain(&e))),
                Err(e) => Err(LookupError::Failed(format!("the lookup task failed: {e}"))),
            };
            self.metrics.lookups.inc();
            page
        })
    }
}

struct ServerHealth {
    wal: Arc<Wal>,
    metrics: Arc<Metrics>,
    space: Arc<space::DiskSpace>,
    gates: Arc<cairn_api::gate::Gates>,
}

impl Health for ServerHealth {
    fn ready(&self) -> Result<(), String> {
        self.space
            .check(space::index_backlog(&self.wal, &self.metrics))?;
        self.space.check_wal(&self.wal)?;
        match self.wal.last_error() {
            None => Ok(()),
            Some(e) => Err(format!(
                "the write-ahead log cannot make events durable: {e}"
            )),
        }
    }

    fn status(&self) -> serde_json::Value {
        let durable = self.wal.durable_seq();
        let consumers: Vec<serde_json::Value> = self
            .wal
            .consumers()
            .into_iter()
            .map(|(name, status)| {
                serde_json::json!({
                    "Name": name,
                    "Position": status.position,
                    "LagRecords": durable.saturating_sub(status.position),
                    "Failures": status.failures,
                    "LastError": status.last_error,
                })
            })
            .collect();
        let ready = self.ready();
        serde_json::json!({
            "Ready": ready.is_ok(),
            "Reason": ready.err(),
            "WalDurableSeq": durable,
            "WalSegments": self.wal.segment_count(),
            "WalError": self.wal.last_error(),
            "DataDirFreeBytes": self.space.free(),
            "RequestBufferBytes": self.gates.buffer_in_use_kib().saturating_mul(1024),
            "Consumers": consumers,
        })
    }

    fn metrics(&self) -> String {
        self.metrics.observe_consumers(&self.wal);
        self.metrics.request_buffer_bytes.set(
            i64::try_from(self.gates.buffer_in_use_kib().saturating_mul(1024)).unwrap_or(i64::MAX),
        );
        if let Some(free) = self.space.free() {
            self.metrics
                .data_dir_free_bytes
                .set(i64::try_from(free).unwrap_or(i64::MAX));
        }
        self.metrics.encode()
    }
}

/// A started server.
pub struct Running {
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
    /// The account id in force.
    pub account_id: AccountId,
    /// Recovery report of the WAL.
    pub recovery: cairn_wal::RecoveryReport,
    /// The administrator's credential file, when this start created it.
    pub admin_credentials: Option<PathBuf>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    serve: tokio::task::JoinHandle<()>,
    stop_indexer: Arc<AtomicBool>,
    indexer: Option<std::thread::JoinHandle<()>>,
    logs_worker: Option<std::thread::JoinHandle<()>>,
    lake_feeder: Option<std::thread::JoinHandle<()>>,
    lake_upkeep: Option<std::thread::JoinHandle<()>>,
    notifier: Option<std::thread::JoinHandle<()>>,
    wal: Arc<Wal>,
    trails: Arc<trails::TrailService>,
    /// Held for the server's lifetime: the data directory's lock.
    _lock: std::fs::File,
}

impl Running {
    /// Stops accepting requests, finishes in-flight ones, drains the indexer, closes the WAL.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.serve).await;
        self.stop_indexer.store(true, Ordering::Release);
        self.wal.wake_consumers();
        if let Some(thread) = self.indexer.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Some(thread) = self.logs_worker.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Some(thread) = self.lake_feeder.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Some(thread) = self.lake_upkeep.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let trails = self.trails.clone();
        let _ = tokio::task::spawn_blocking(move || trails.stop_all()).await;
        self.wal.close();
        // The notifier ends once the services holding its queue are gone (above); wait for it
        // (bounded) so that a server started next on the same data directory finds the log
        // store released.
        if let Some(thread) = self.notifier.take() {
            let _ = tokio::task::spawn_blocking(move || {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
                while !thread.is_finished() && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                if thread.is_finished() {
                    let _ = thread.join();
                } else {
                    tracing::warn!("the notifier did not stop within 15 s");
                }
            })
            .await;
        }
    }

    /// Waits until the server stops by itself (it only does on a fatal error).
    pub async fn wait(&mut self) {
        let _ = (&mut self.serve).await;
    }
}

/// Makes the data directory Cairn's own and takes its lock. Everything Cairn writes there is
/// private: files 0600, directories 0700 (the umask covers every file created from here on,
/// whichever crate creates it), the directory itself 0700 even when an older version made it
/// readable. One process per data directory: a second one's WAL recovery would cut the first
/// one's in-flight writes; the lock lives as long as the returned file.
fn claim_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, StartError> {
    let data_dir = data_dir.to_path_buf();
    // Everything Cairn writes is its own: files 0600, directories 0700 (the umask covers every
    // file created from here on, whichever crate creates it), and the data directory itself
    // 0700 even when an older version made it readable.
    #[cfg(unix)]
    {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    }
    std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| StartError::DataDir {
                path: data_dir.clone(),
                source,
            },
        )?;
    }
    // One process per data directory: a second one's WAL recovery would cut the first one's
    // in-flight writes. The lock lives as long as the returned server.
    let lock_path = data_dir.join("LOCK");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| StartError::DataDir {
            path: lock_path.clone(),
            source,
        })?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(StartError::Locked(data_dir)),
        Err(std::fs::TryLockError::Error(source)) => {
            return Err(StartError::DataDir {
                path: lock_path,
                source,
            })
        }
    }
    Ok(lock)
}

/// Starts a named thread of the server; failing to is a start error about the data directory
/// it serves.
fn spawn_thread(
    name: &str,
    data_dir: &std::path::Path,
    work: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, StartError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
        .map_err(|source| StartError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })
}

/// The event data stores (in the data directory, or `lake_bucket`), with the compaction
/// swaps a stop interrupted finished before any query lists a store's files.
async fn open_lake(
    config: &Config,
    data_dir: &std::path::Path,
    account: &str,
) -> Result<Arc<cairn_lake::store::Stores>, StartError> {
    let mut stores =
        cairn_lake::store::Stores::open(&data_dir.join("lake"), &config.region, account)
            .map_err(|e| StartError::Keys(format!("event data stores: {e}")))?;
    if let (Some((bucket, prefix)), Some(s3)) = (&config.lake_bucket, &config.s3) {
        let store = cairn_store::s3(s3, bucket)
            .map_err(|e| StartError::Keys(format!("event data stores' bucket: {e}")))?;
        stores = stores.with_remote(cairn_lake::store::Remote {
            store,
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            handle: tokio::runtime::Handle::current(),
        });
    }
    let stores = Arc::new(stores);
    {
        let stores = stores.clone();
        match tokio::task::spawn_blocking(move || stores.recover_compactions()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(swaps = n, "finished Lake compactions a stop interrupted"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "a Lake compaction a stop interrupted is not finished yet; the next round retries it")
            }
            Err(e) => tracing::warn!(error = %e, "recovering Lake compactions failed"),
        }
    }
    Ok(stores)
}

/// The digest signing keys, with the operator's key files adopted (each becomes its region's
/// current key unless it already is).
fn open_keys(
    config: &Config,
    data_dir: &std::path::Path,
    clock: &Arc<dyn Clock>,
) -> Result<Arc<cairn_keys::KeyRing>, StartError> {
    let keys = Arc::new(
        cairn_keys::KeyRing::open(&data_dir.join("keys"), clock.clone())
            .map_err(|e| StartError::Keys(e.to_string()))?,
    );
    for (region, file) in &config.signing_key_files {
        let pem = std::fs::read_to_string(file).map_err(|e| {
            StartError::Keys(format!("reading signing key file {}: {e}", file.display()))
        })?;
        let key = keys
            .adopt(region, &pem)
            .map_err(|e| StartError::Keys(format!("signing key file {}: {e}", file.display())))?;
        tracing::info!(region, fingerprint = %key.fingerprint, "operator signing key in use");
    }
    Ok(keys)
}

/// Serves `router` on `listener` (over TLS when `tls` is set) until `shutdown` fires.
fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    shutdown_rx: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    let shutdown = async move {
        let _ = shutdown_rx.await;
    };
    tokio::spawn(async move {
        let result = match tls {
            None => {
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
            Some(config) => {
                let router = router.layer(axum::middleware::map_request(tls::peer_as_socket_addr));
                axum::serve(
                    tls::TlsListener::new(listener, config),
                    router.into_make_service_with_connect_info::<tls::TlsPeer>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "HTTP server failed");
        }
    })
}

/// Starts Cairn with `config`, reading time from `clock`.
pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    start_with_fs(config, clock, Arc::new(cairn_wal::fs::StdFs)).await
}

/// Raises the soft limit on open files to the hard one: each connection is a file, and a
/// default soft limit of 1024 would refuse the thousandth producer while the machine allows
/// far more.
pub fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum {
        if limit.current.is_some_and(|soft| soft < hard) {
            match setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                },
            ) {
                Ok(()) => {
                    tracing::debug!(from = ?limit.current, to = hard, "raised the open-file limit")
                }
                Err(e) => tracing::warn!(error = %e, "raising the open-file limit failed"),
            }
        }
    }
}

/// [`start`] with the WAL reaching the disk through `wal_fs` (tests inject failures here).
pub async fn start_with_fs(
    config: Config,
    clock: Arc<dyn Clock>,
    wal_fs: Arc<dyn cairn_wal::fs::WalFs>,
) -> Result<Running, StartError> {
    raise_open_file_limit();
    // The address first: a start that cannot listen leaves nothing behind (no new data
    // directory, no administrator credentials).
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let data_dir = config.data_dir.clone();
    let lock = claim_data_dir(&data_dir)?;
    let account_id = resolve_account_id(&data_dir, config.account_id.as_ref())?;
    let metrics = Arc::new(Metrics::new());
    let observer = Arc::new(Observer {
        metrics: metrics.clone(),
    });
    let wal_config = WalConfig {
        segment_bytes: config.wal_segment_bytes,
        ..WalConfig::default()
    };
    let wal_dir = data_dir.join("wal");
    let (wal, recovery) =
        tokio::task::spawn_blocking(move || Wal::open(&wal_dir, wal_fs, wal_config, observer))
            .await
            .map_err(|e| StartError::CatchUp(e.to_string()))?
            .map_err(StartError::Wal)?;
    tracing::info!(
        segments = recovery.segments,
        records = recovery.records,
        last_seq = recovery.last_seq,
        torn_bytes_cut = recovery.torn_bytes_cut,
        incomplete_segments_removed = recovery.incomplete_segments_removed,
        "write-ahead log recovered"
    );
    let wal = Arc::new(wal);
    let history_config = HistoryConfig {
        retention_days: config.history_retention_days,
        cache_bytes: config.history_cache_bytes,
    };
    let history = Arc::new(
        HistoryStore::open(&data_dir.join("history.redb"), &history_config)
            .map_err(StartError::History)?,
    );
    let space = Arc::new(
        space::DiskSpace::new(data_dir.clone(), config.min_free_bytes)
            .with_wal_bound(config.wal_segment_bytes, config.max_wal_backlog_bytes),
    );
    if let Err(reason) = space.check(0) {
        tracing::warn!(%reason, "starting on a full disk: reads are served, producers' ingest is refused until space returns");
    }
    let ingest = Arc::new(IngestService::new(
        wal.clone(),
        history.clone(),
        metrics.clone(),
        account_id.clone(),
        config.region.clone(),
        clock.clone(),
        space.clone(),
    ));
    let catalog = Arc::new(
        cairn_catalog::Catalog::open(
            &data_dir.join("catalog.json"),
            cairn_catalog::Deployment {
                account_id: account_id.to_string(),
                region: config.region.clone(),
                organization_id: config.organization_id.clone(),
                s3_configured: config.s3.is_some(),
                data_dir: Some(data_dir.clone()),
            },
        )
        .map_err(|e| StartError::Catalog(e.to_string()))?,
    );
    let keys = open_keys(&config, &data_dir, &clock)?;
    let iam = Arc::new(
        cairn_iam::Iam::open(&data_dir.join("iam.json"), &account_id.to_string())
            .map_err(|e| StartError::Keys(format!("identity store: {e}")))?,
    );
    let admin_credentials = security::bootstrap(&iam, &data_dir, clock.now_millis())
        .map_err(|e| StartError::Keys(format!("creating the administrator: {e}")))?;
    if let Some(path) = &admin_credentials {
        tracing::warn!(path = %path.display(), "first start: administrator credentials written (mode 0600); keep them safe");
    }
    let stores = open_lake(&config, &data_dir, &account_id.to_string()).await?;
    let log_store = Arc::new(
        cairn_logs::Logs::open(&data_dir)
            .map_err(|e| StartError::Keys(format!("log groups: {e}")))?,
    );
    let trail_service = Arc::new(trails::TrailService::new(
        catalog.clone(),
        wal.clone(),
        ingest.clone(),
        metrics.clone(),
        clock.clone(),
        trails::TrailsConfig {
            interval: config.delivery_interval,
            max_file_bytes: config.max_log_file_bytes,
            s3: config.s3.clone(),
            journal_dir: data_dir.join("delivery"),
            abort_after_upload: config.failpoint_abort_after_upload,
            keys: keys.clone(),
            digest_period: config.digest_period,
        },
    ));
    // Every consumer's position is registered before any consumer moves, so that no segment
    // one of them still needs is retired by another's progress.
    trail_service.register_all();
    lake::register_all(&stores, &wal);
    let logs_position = log_store
        .applied_seq()
        .map_err(|e| StartError::Keys(format!("log groups: {e}")))?;
    wal.register(cairn_logs::CURSOR, logs_position)
        .map_err(StartError::CatchUp)?;
    let mut history_runner = cairn_wal::Runner::new(
        wal.clone(),
        HistoryConsumer::new(
            wal.clone(),
            history.clone(),
            ingest.clone(),
            metrics.clone(),
            clock.clone(),
        ),
    )
    .map_err(StartError::CatchUp)?
    .with_batch(indexer::BATCH_RECORDS, indexer::BATCH_BYTES);
    // Positions once kept in cursor files beside the stores that keep them now.
    for stale in [indexer::CONSUMER, cairn_logs::CURSOR] {
        let _ = std::fs::remove_file(data_dir.join("wal/cursors").join(format!("{stale}.cursor")));
    }
    // Event history catches up before the API opens (so that idempotency knows every durable
    // eventID). If it cannot (a full disk), the server still starts: reads are served, the
    // unindexed eventIDs are noted from the WAL, and history catches up in the background.
    let history_runner = {
        let (wal, ingest) = (wal.clone(), ingest.clone());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = history_runner.catch_up() {
                let position = wal.position(indexer::CONSUMER);
                tracing::warn!(error = %e, position, "Event history could not catch up at start; serving reads, it catches up in the background");
                let noted = indexer::note_unindexed(&wal, position, &ingest)
                    .map_err(StartError::CatchUp)?;
                tracing::info!(events = noted, "noted the eventIDs not yet in Event history");
            }
            Ok::<_, StartError>(history_runner)
        })
        .await
        .map_err(|e| StartError::CatchUp(e.to_string()))??
    };
    let stop_indexer = Arc::new(AtomicBool::new(false));
    let indexer_thread = {
        let stop = stop_indexer.clone();
        spawn_thread("cairn-history-indexer", &data_dir, move || {
            history_runner.run(&stop)
        })?
    };

    let notification_key = Arc::new(notify::NotificationKey::new(
        data_dir.join("notifications-key.pem"),
    ));
    let signing_cert_url = format!(
        "{}://{}/v1/topics/signing-key",
        if config.tls.is_some() {
            "https"
        } else {
            "http"
        },
        config.listen
    );
    let (notifier, notifier_thread) = notify::spawn(notify::NotifierConfig {
        logs: log_store.clone(),
        key: notification_key.clone(),
        region: config.region.clone(),
        account: account_id.to_string(),
        signing_cert_url,
        metrics: metrics.clone(),
        clock: clock.clone(),
    })
    .map_err(|source| StartError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let logs_runner = cairn_wal::Runner::new(
        wal.clone(),
        logs::LogsConsumer::new(
            log_store.clone(),
            catalog.clone(),
            clock.clone(),
            notifier.clone(),
        ),
    )
    .map_err(StartError::CatchUp)?;
    let logs_thread = {
        let stop = stop_indexer.clone();
        spawn_thread("cairn-log-groups", &data_dir, move || {
            logs_runner.run(&stop)
        })?
    };
    let lake_thread = {
        let (stores, wal, clock, stop) = (
            stores.clone(),
            wal.clone(),
            clock.clone(),
            stop_indexer.clone(),
        );
        let settings = lake::FeedSettings {
            flush_every: config.lake_flush,
            abort_after_write: config.failpoint_lake_abort_after_write,
        };
        spawn_thread("cairn-lake", &data_dir, move || {
            lake::run_feeder(stores, wal, clock, settings, stop)
        })?
    };
    let upkeep_thread = {
        let (stores, wal, clock, stop, every) = (
            stores.clone(),
            wal.clone(),
            clock.clone(),
            stop_indexer.clone(),
            config.lake_compaction,
        );
        spawn_thread("cairn-lake-upkeep", &data_dir, move || {
            lake::run_upkeep(stores, wal, clock, every, stop)
        })?
    };
    trail_service.start_all();

    let parsers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let gates = Arc::new(cairn_api::gate::Gates::new(
        config.limits.request_buffer_bytes,
        parsers,
    ));
    let state = AppState {
        gates: gates.clone(),
        trails: trail_service.clone(),
        keys: trail_service.clone(),
        auth: Arc::new(security::Security {
            iam: iam.clone(),
            ingest: ingest.clone(),
            clock: clock.clone(),
            public_metrics: config.public_metrics,
        }),
        logs: Arc::new(logs::LogsService {
            notifier,
            notification_key,
            logs: log_store,
            catalog,
            ingest: ingest.clone(),
            clock: clock.clone(),
        }),
        lake: Arc::new(lake::LakeService {
            imports: Arc::new(
                cairn_lake::imported::ImportLedger::open(&data_dir.join("lake-imports.redb"))
                    .map_err(|e| StartError::DataDir {
                        path: data_dir.join("lake-imports.redb"),
                        source: std::io::Error::other(e.to_string()),
                    })?,
            ),
            stores,
            queries: Arc::new(cairn_lake::query::Queries::new(config.query_limits.clone())),
            budget: cairn_lake::limits::Budget::new(config.query_limits.clone()),
            running: metrics.lake_queries_running.clone(),
            wal: wal.clone(),
            ingest: ingest.clone(),
            clock: clock.clone(),
        }),
        iam: Arc::new(iam_service::IamService {
            iam: iam.clone(),
            ingest: ingest.clone(),
            clock: clock.clone(),
        }),
        ingest: ingest.clone(),
        query: Arc::new(HistoryQuery {
            history,
            clock,
            metrics: metrics.clone(),
        }),
        health: Arc::new(ServerHealth {
            wal: wal.clone(),
            metrics,
            space,
            gates,
        }),
        limits: config.limits.clone(),
    };
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls::server_config(cert, key).map_err(StartError::Tls)?),
        None => None,
    };
    tracing::info!(%local_addr, tls = tls.is_some(), "listening; every call but /healthz and /readyz must be signed (SigV4)");
    if tls.is_none() && !local_addr.ip().is_loopback() {
        tracing::warn!(%local_addr, "serving plain HTTP beyond loopback: signatures protect integrity, not confidentiality; use --tls-cert and --tls-key");
    }
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let serve = serve(listener, cairn_api::app(state), tls, shutdown_rx);
    Ok(Running {
        local_addr,
        account_id,
        recovery,
        admin_credentials,
        shutdown: Some(shutdown_tx),
        serve,
        stop_indexer,
        indexer: Some(indexer_thread),
        logs_worker: Some(logs_thread),
        lake_feeder: Some(lake_thread),
        lake_upkeep: Some(upkeep_thread),
        notifier: Some(notifier_thread),
        wal,
        trails: trail_service,
        _lock: lock,
    })
}
