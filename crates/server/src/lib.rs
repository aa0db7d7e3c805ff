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
mod start;
pub mod tls;
pub mod trails;

pub use start::{raise_open_file_limit, start, start_with_fs};

use cairn_api::{BoxFuture, EventQuery, Health};
use cairn_history::{HistoryError, HistoryStore, LookupPage, LookupQuery};
use cairn_model::{AccountId, Clock};
use cairn_wal::{Wal, WalObserver};
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
