//! Starting the server: each step of [`start_with_fs`] is a named function below.

use crate::config::Config;
use crate::indexer::{self, HistoryConsumer};
use crate::ingest::IngestService;
use crate::metrics::Metrics;
use crate::{
    iam_service, lake, logs, notify, resolve_account_id, security, space, tls, trails,
    HistoryQuery, Observer, Running, ServerHealth, StartError,
};
use cairn_api::AppState;
use cairn_history::{HistoryConfig, HistoryStore};
use cairn_model::Clock;
use cairn_wal::{Wal, WalConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

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
///
/// The steps in order: bind (a start that cannot listen leaves nothing behind: no new data
/// directory, no administrator credentials), claim the data directory, open the WAL and every
/// store, register every consumer's position (before any consumer moves, so that no segment one
/// of them still needs is retired by another's progress), let Event history catch up, start the
/// consumers, and serve.
pub async fn start_with_fs(
    config: Config,
    clock: Arc<dyn Clock>,
    wal_fs: Arc<dyn cairn_wal::fs::WalFs>,
) -> Result<Running, StartError> {
    raise_open_file_limit();
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
    let (wal, recovery) = open_wal(&config, wal_fs, &metrics).await?;
    let history = Arc::new(
        HistoryStore::open(
            &data_dir.join("history.redb"),
            &HistoryConfig {
                retention_days: config.history_retention_days,
                cache_bytes: config.history_cache_bytes,
            },
        )
        .map_err(StartError::History)?,
    );
    let space = open_space(&config);
    let ingest = Arc::new(
        IngestService::new(
            wal.clone(),
            history.clone(),
            metrics.clone(),
            account_id.clone(),
            config.region.clone(),
            clock.clone(),
            space.clone(),
        )
        .with_max_unindexed(config.max_unindexed_events),
    );
    let core = Core {
        config,
        data_dir,
        clock,
        metrics,
        wal,
        ingest,
        account: account_id.to_string(),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let catalog = core.open_catalog()?;
    let keys = open_keys(&core.config, &core.data_dir, &core.clock)?;
    let (iam, admin_credentials) = core.open_iam()?;
    let stores = open_lake(&core.config, &core.data_dir, &core.account).await?;
    let log_store = Arc::new(
        cairn_logs::Logs::open(&core.data_dir)
            .map_err(|e| StartError::Keys(format!("log groups: {e}")))?,
    );
    let trail_service = core.trail_service(&catalog, keys);
    core.register_positions(&trail_service, &stores, &log_store)?;
    let indexer = core.start_history(history.clone()).await?;
    let monitoring = core.start_monitoring(&log_store, &catalog)?;
    let (lake_feeder, lake_upkeep) = core.start_lake(&stores)?;
    trail_service.start_all();

    let gates = Arc::new(cairn_api::gate::Gates::new(
        core.config.limits.request_buffer_bytes,
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    ));
    let state = AppState {
        gates: gates.clone(),
        trails: trail_service.clone(),
        keys: trail_service.clone(),
        auth: Arc::new(security::Security {
            iam: iam.clone(),
            ingest: core.ingest.clone(),
            clock: core.clock.clone(),
            public_metrics: core.config.public_metrics,
        }),
        logs: Arc::new(logs::LogsService {
            notifier: monitoring.notifier,
            notification_key: monitoring.key,
            logs: log_store,
            catalog,
            ingest: core.ingest.clone(),
            clock: core.clock.clone(),
        }),
        lake: core.lake_service(stores)?,
        iam: Arc::new(iam_service::IamService {
            iam,
            ingest: core.ingest.clone(),
            clock: core.clock.clone(),
        }),
        ingest: core.ingest.clone(),
        query: Arc::new(HistoryQuery {
            history,
            clock: core.clock.clone(),
            metrics: core.metrics.clone(),
        }),
        health: Arc::new(ServerHealth {
            wal: core.wal.clone(),
            metrics: core.metrics.clone(),
            space,
            gates,
        }),
        limits: core.config.limits.clone(),
    };
    let (local_addr, tls) = core.listening(&listener)?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let serve = serve(listener, cairn_api::app(state), tls, shutdown_rx);
    Ok(Running {
        local_addr,
        account_id,
        recovery,
        admin_credentials,
        shutdown: Some(shutdown_tx),
        serve,
        stop_indexer: core.stop,
        indexer: Some(indexer),
        logs_worker: Some(monitoring.logs_thread),
        lake_feeder: Some(lake_feeder),
        lake_upkeep: Some(lake_upkeep),
        notifier: Some(monitoring.notifier_thread),
        wal: core.wal,
        trails: trail_service,
        _lock: lock,
    })
}

/// The WAL, recovered.
async fn open_wal(
    config: &Config,
    wal_fs: Arc<dyn cairn_wal::fs::WalFs>,
    metrics: &Arc<Metrics>,
) -> Result<(Arc<Wal>, cairn_wal::RecoveryReport), StartError> {
    let observer = Arc::new(Observer {
        metrics: metrics.clone(),
    });
    let wal_config = WalConfig {
        segment_bytes: config.wal_segment_bytes,
        ..WalConfig::default()
    };
    let wal_dir = config.data_dir.join("wal");
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
    Ok((Arc::new(wal), recovery))
}

/// The free-space and WAL-backlog rules ingest obeys.
fn open_space(config: &Config) -> Arc<space::DiskSpace> {
    let space = Arc::new(
        space::DiskSpace::new(config.data_dir.clone(), config.min_free_bytes)
            .with_wal_bound(config.wal_segment_bytes, config.max_wal_backlog_bytes),
    );
    if let Err(reason) = space.check(0) {
        tracing::warn!(%reason, "starting on a full disk: reads are served, producers' ingest is refused until space returns");
    }
    space
}

/// What every later start step shares: the configuration, the clock, the WAL and ingest (which
/// every service records its own calls through), and the flag that stops the consumers.
struct Core {
    config: Config,
    data_dir: PathBuf,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    wal: Arc<Wal>,
    ingest: Arc<IngestService>,
    account: String,
    stop: Arc<AtomicBool>,
}

/// The notifier and the log groups' consumer, started.
struct Monitoring {
    notifier: notify::Notifier,
    key: Arc<notify::NotificationKey>,
    notifier_thread: std::thread::JoinHandle<()>,
    logs_thread: std::thread::JoinHandle<()>,
}

impl Core {
    fn open_catalog(&self) -> Result<Arc<cairn_catalog::Catalog>, StartError> {
        let catalog = cairn_catalog::Catalog::open(
            &self.data_dir.join("catalog.json"),
            cairn_catalog::Deployment {
                account_id: self.account.clone(),
                region: self.config.region.clone(),
                organization_id: self.config.organization_id.clone(),
                s3_configured: self.config.s3.is_some(),
                data_dir: Some(self.data_dir.clone()),
            },
        )
        .map_err(|e| StartError::Catalog(e.to_string()))?;
        Ok(Arc::new(catalog))
    }

    /// The identity store, with the administrator created at first start.
    fn open_iam(&self) -> Result<(Arc<cairn_iam::Iam>, Option<PathBuf>), StartError> {
        let iam = Arc::new(
            cairn_iam::Iam::open(&self.data_dir.join("iam.json"), &self.account)
                .map_err(|e| StartError::Keys(format!("identity store: {e}")))?,
        );
        let admin_credentials = security::bootstrap(&iam, &self.data_dir, self.clock.now_millis())
            .map_err(|e| StartError::Keys(format!("creating the administrator: {e}")))?;
        if let Some(path) = &admin_credentials {
            tracing::warn!(path = %path.display(), "first start: administrator credentials written (mode 0600); keep them safe");
        }
        Ok((iam, admin_credentials))
    }

    fn trail_service(
        &self,
        catalog: &Arc<cairn_catalog::Catalog>,
        keys: Arc<cairn_keys::KeyRing>,
    ) -> Arc<trails::TrailService> {
        let config = &self.config;
        Arc::new(trails::TrailService::new(
            catalog.clone(),
            self.wal.clone(),
            self.ingest.clone(),
            self.metrics.clone(),
            self.clock.clone(),
            trails::TrailsConfig {
                interval: config.delivery_interval,
                max_file_bytes: config.max_log_file_bytes,
                s3: config.s3.clone(),
                journal_dir: self.data_dir.join("delivery"),
                abort_after_upload: config.failpoint_abort_after_upload,
                keys,
                digest_period: config.digest_period,
            },
        ))
    }

    /// Every consumer's position, registered before any consumer moves. History registers
    /// itself when its runner is made (below).
    fn register_positions(
        &self,
        trails: &trails::TrailService,
        stores: &Arc<cairn_lake::store::Stores>,
        log_store: &cairn_logs::Logs,
    ) -> Result<(), StartError> {
        trails.register_all();
        lake::register_all(stores, &self.wal);
        let logs_position = log_store
            .applied_seq()
            .map_err(|e| StartError::Keys(format!("log groups: {e}")))?;
        self.wal
            .register(cairn_logs::CURSOR, logs_position)
            .map_err(StartError::CatchUp)?;
        // Positions once kept in cursor files beside the stores that keep them now.
        for stale in [indexer::CONSUMER, cairn_logs::CURSOR] {
            let _ = std::fs::remove_file(
                self.data_dir
                    .join("wal/cursors")
                    .join(format!("{stale}.cursor")),
            );
        }
        Ok(())
    }

    /// Event history catches up before the API opens (so that idempotency knows every durable
    /// eventID), then indexes on its own thread. If it cannot catch up (a full disk), the
    /// server still starts: reads are served, the unindexed eventIDs are noted from the WAL,
    /// and history catches up in the background.
    async fn start_history(
        &self,
        history: Arc<HistoryStore>,
    ) -> Result<std::thread::JoinHandle<()>, StartError> {
        let mut runner = cairn_wal::Runner::new(
            self.wal.clone(),
            HistoryConsumer::new(
                self.wal.clone(),
                history,
                self.ingest.clone(),
                self.metrics.clone(),
                self.clock.clone(),
            ),
        )
        .map_err(StartError::CatchUp)?
        .with_batch(indexer::BATCH_RECORDS, indexer::BATCH_BYTES)
        .with_linger(indexer::LINGER, indexer::LINGER_FROM);
        let (wal, ingest) = (self.wal.clone(), self.ingest.clone());
        let runner = tokio::task::spawn_blocking(move || {
            if let Err(e) = runner.catch_up() {
                let position = wal.position(indexer::CONSUMER);
                tracing::warn!(error = %e, position, "Event history could not catch up at start; serving reads, it catches up in the background");
                let noted = indexer::note_unindexed(&wal, position, &ingest)
                    .map_err(StartError::CatchUp)?;
                tracing::info!(events = noted, "noted the eventIDs not yet in Event history");
            }
            Ok::<_, StartError>(runner)
        })
        .await
        .map_err(|e| StartError::CatchUp(e.to_string()))??;
        let stop = self.stop.clone();
        spawn_thread("cairn-history-indexer", &self.data_dir, move || {
            runner.run(&stop)
        })
    }

    /// The notifier (alarm notifications, signed SNS-style) and the log groups' consumer that
    /// feeds it.
    fn start_monitoring(
        &self,
        log_store: &Arc<cairn_logs::Logs>,
        catalog: &Arc<cairn_catalog::Catalog>,
    ) -> Result<Monitoring, StartError> {
        let key = Arc::new(notify::NotificationKey::new(
            self.data_dir.join("notifications-key.pem"),
        ));
        let scheme = if self.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let (notifier, notifier_thread) = notify::spawn(notify::NotifierConfig {
            logs: log_store.clone(),
            key: key.clone(),
            region: self.config.region.clone(),
            account: self.account.clone(),
            signing_cert_url: format!("{scheme}://{}/v1/topics/signing-key", self.config.listen),
            metrics: self.metrics.clone(),
            clock: self.clock.clone(),
        })
        .map_err(|source| StartError::DataDir {
            path: self.data_dir.clone(),
            source,
        })?;
        let runner = cairn_wal::Runner::new(
            self.wal.clone(),
            logs::LogsConsumer::new(
                log_store.clone(),
                catalog.clone(),
                self.clock.clone(),
                notifier.clone(),
            ),
        )
        .map_err(StartError::CatchUp)?;
        let stop = self.stop.clone();
        let logs_thread = spawn_thread("cairn-log-groups", &self.data_dir, move || {
            runner.run(&stop)
        })?;
        Ok(Monitoring {
            notifier,
            key,
            notifier_thread,
            logs_thread,
        })
    }

    /// The Lake's feeds (one consumer per event data store, under a supervisor) and its upkeep
    /// (compaction and retention).
    fn start_lake(
        &self,
        stores: &Arc<cairn_lake::store::Stores>,
    ) -> Result<(std::thread::JoinHandle<()>, std::thread::JoinHandle<()>), StartError> {
        let feeder = {
            let (stores, wal, clock, stop) = (
                stores.clone(),
                self.wal.clone(),
                self.clock.clone(),
                self.stop.clone(),
            );
            let settings = lake::FeedSettings {
                flush_every: self.config.lake_flush,
                abort_after_write: self.config.failpoint_lake_abort_after_write,
            };
            spawn_thread("cairn-lake", &self.data_dir, move || {
                lake::run_feeder(stores, wal, clock, settings, stop)
            })?
        };
        let upkeep = {
            let (stores, wal, clock, stop, every) = (
                stores.clone(),
                self.wal.clone(),
                self.clock.clone(),
                self.stop.clone(),
                self.config.lake_compaction,
            );
            spawn_thread("cairn-lake-upkeep", &self.data_dir, move || {
                lake::run_upkeep(stores, wal, clock, every, stop)
            })?
        };
        Ok((feeder, upkeep))
    }

    fn lake_service(
        &self,
        stores: Arc<cairn_lake::store::Stores>,
    ) -> Result<Arc<lake::LakeService>, StartError> {
        let ledger = self.data_dir.join("lake-imports.redb");
        let imports =
            cairn_lake::imported::ImportLedger::open(&ledger).map_err(|e| StartError::DataDir {
                path: ledger.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let limits = self.config.query_limits.clone();
        Ok(Arc::new(lake::LakeService {
            imports: Arc::new(imports),
            stores,
            queries: Arc::new(cairn_lake::query::Queries::new(limits.clone())),
            budget: cairn_lake::limits::Budget::new(limits),
            running: self.metrics.lake_queries_running.clone(),
            wal: self.wal.clone(),
            ingest: self.ingest.clone(),
            clock: self.clock.clone(),
        }))
    }

    /// The bound address and the TLS configuration, with a warning for plain HTTP beyond
    /// loopback.
    fn listening(
        &self,
        listener: &tokio::net::TcpListener,
    ) -> Result<(SocketAddr, Option<Arc<tokio_rustls::rustls::ServerConfig>>), StartError> {
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: self.config.listen,
            source,
        })?;
        let tls = match &self.config.tls {
            Some((cert, key)) => Some(tls::server_config(cert, key).map_err(StartError::Tls)?),
            None => None,
        };
        tracing::info!(%local_addr, tls = tls.is_some(), "listening; every call but /healthz and /readyz must be signed (SigV4)");
        if tls.is_none() && !local_addr.ip().is_loopback() {
            tracing::warn!(%local_addr, "serving plain HTTP beyond loopback: signatures protect integrity, not confidentiality; use --tls-cert and --tls-key");
        }
        Ok((local_addr, tls))
    }
}
