//! Trails: administration (the API's `TrailAdmin` port), self-audit of every change, and the
//! delivery workers.
//!
//! **Self-audit.** Every change is recorded as a management event from
//! `cloudtrail.amazonaws.com` (`CreateTrail`, `UpdateTrail`, `DeleteTrail`, `StartLogging`,
//! `StopLogging`, `PutEventSelectors`) with `requestParameters` and `responseElements`, made
//! durable before the API answers. `StopLogging` is recorded *before* the trail stops, so the
//! trail's own files end with the event that stopped it (as CloudTrail's do). The caller is the
//! signer the authentication layer identified.

use crate::ingest::IngestService;
use crate::metrics::Metrics;
use cairn_api::trails::{Caller, FlushOut, TrailAdmin};
use cairn_api::{ApiError, BoxFuture, Ingest};
use cairn_catalog::{Catalog, Trail, TrailSettings};
use cairn_delivery::{
    DeliveryConfig, DeliveryHandle, DeliveryObserver, DigestConfig, FlushReport, TrailWorker,
};
use cairn_model::Clock;
use cairn_selectors::Selectors;
use cairn_wal::Wal;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Delivery settings shared by every trail.
#[derive(Debug, Clone)]
pub struct TrailsConfig {
    /// Batching interval.
    pub interval: Duration,
    /// Largest uncompressed file.
    pub max_file_bytes: usize,
    /// The S3-compatible store, if configured.
    pub s3: Option<cairn_store::S3Config>,
    /// Delivery journals.
    pub journal_dir: PathBuf,
    /// Test failpoint.
    pub abort_after_upload: bool,
    /// Digest signing keys.
    pub keys: Arc<cairn_keys::KeyRing>,
    /// Digest period.
    pub digest_period: Duration,
}

/// Records delivery outcomes in the trail status and metrics.
struct StatusObserver {
    catalog: Arc<Catalog>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

impl DeliveryObserver for StatusObserver {
    fn delivered(&self, trail: &Trail, report: &FlushReport) {
        if report.files == 0 {
            return;
        }
        self.metrics
            .delivered(&trail.name, report.files, report.events, report.bytes);
        tracing::info!(trail = %trail.name, files = report.files, events = report.events, bytes = report.bytes, "delivered log files");
        if let Err(e) = self
            .catalog
            .record_delivery(&trail.id, self.clock.now_millis(), None)
        {
            tracing::warn!(trail = %trail.name, error = %e, "recording the delivery time failed");
        }
    }

    fn lag(&self, trail: &Trail, records: u64) {
        self.metrics.set_lag(&trail.cursor_name(), records);
    }

    fn digest_delivered(&self, trail: &Trail, key: &str) {
        self.metrics.digest_delivered(&trail.name);
        tracing::debug!(trail = %trail.name, key, "digest stored");
        if let Err(e) =
            self.catalog
                .record_digest_delivery(&trail.id, self.clock.now_millis(), None)
        {
            tracing::warn!(trail = %trail.name, error = %e, "recording the digest delivery failed");
        }
    }

    fn digest_failed(&self, trail: &Trail, error: &str) {
        self.metrics.digest_failed(&trail.name);
        if let Err(e) = self.catalog.record_digest_delivery(
            &trail.id,
            self.clock.now_millis(),
            Some(error.to_owned()),
        ) {
            tracing::warn!(trail = %trail.name, error = %e, "recording the digest error failed");
        }
    }

    fn failed(&self, trail: &Trail, error: &str) {
        self.metrics.delivery_failed(&trail.name);
        if let Err(e) =
            self.catalog
                .record_delivery(&trail.id, self.clock.now_millis(), Some(error.to_owned()))
        {
            tracing::warn!(trail = %trail.name, error = %e, "recording the delivery error failed");
        }
    }
}

/// The trail service.
pub struct TrailService {
    catalog: Arc<Catalog>,
    wal: Arc<Wal>,
    ingest: Arc<IngestService>,
    clock: Arc<dyn Clock>,
    config: TrailsConfig,
    workers: Mutex<HashMap<String, DeliveryHandle>>,
    observer: Arc<StatusObserver>,
}

impl TrailService {
    /// Creates the service; [`TrailService::start_all`] starts delivery.
    pub fn new(
        catalog: Arc<Catalog>,
        wal: Arc<Wal>,
        ingest: Arc<IngestService>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        config: TrailsConfig,
    ) -> Self {
        let observer = Arc::new(StatusObserver {
            catalog: catalog.clone(),
            metrics,
            clock: clock.clone(),
        });
        Self {
            catalog,
            wal,
            ingest,
            clock,
            config,
            workers: Mutex::new(HashMap::new()),
            observer,
        }
    }

    fn store_for(&self, trail: &Trail) -> Result<Arc<dyn object_store::ObjectStore>, String> {
        match (
            &trail.local_directory,
            &trail.s3_bucket_name,
            &self.config.s3,
        ) {
            (Some(dir), _, _) => cairn_store::local(dir).map_err(|e| e.to_string()),
            (None, Some(bucket), Some(s3)) => {
                cairn_store::s3(s3, bucket).map_err(|e| e.to_string())
            }
            (None, Some(_), None) => Err("no S3-compatible store is configured".to_owned()),
            (None, None, _) => Err("the trail has no destination".to_owned()),
        }
    }

    fn spawn(&self, trail: &Trail) -> Result<(), String> {
        self.register_consumer(trail)?;
        let store = self.store_for(trail)?;
        let config = DeliveryConfig {
            interval: self.config.interval,
            max_file_bytes: self.config.max_file_bytes,
            account_id: self.ingest.account_id().to_string(),
            journal_dir: self.config.journal_dir.clone(),
            abort_after_upload: self.config.abort_after_upload,
            digests: Some(DigestConfig {
                keys: self.config.keys.clone(),
                period: self.config.digest_period,
                bucket: digest_bucket(trail),
                metadata: if trail.local_directory.is_some() {
                    cairn_store::MetadataStyle::Sidecar
                } else {
                    cairn_store::MetadataStyle::ObjectMetadata
                },
            }),
        };
        let handle = TrailWorker::spawn(
            trail.clone(),
            self.wal.clone(),
            store,
            self.clock.clone(),
            config,
            self.observer.clone(),
        )
        .map_err(|e| format!("starting the delivery thread: {e}"))?;
        let previous = self
            .workers
            .lock()
            .expect("workers lock poisoned")
            .insert(trail.id.clone(), handle);
        if let Some(previous) = previous {
            previous.stop();
        }
        Ok(())
    }

    /// Registers the trail's WAL position (its cursor file) with the WAL, so that no segment
    /// it has not delivered is deleted. Every trail is registered before any consumer runs.
    pub fn register_consumer(&self, trail: &Trail) -> Result<(), String> {
        let name = trail.cursor_name();
        let position = self
            .wal
            .load_cursor(&name)
            .map_err(|e| format!("reading the trail's WAL cursor: {e}"))?;
        self.wal.register(&name, position)
    }

    /// Registers every trail (see [`TrailService::register_consumer`]).
    pub fn register_all(&self) {
        for trail in self.catalog.list() {
            if let Err(e) = self.register_consumer(&trail) {
                tracing::error!(trail = %trail.name, error = %e, "cannot register the trail's WAL position");
            }
        }
    }

    /// Starts the delivery of every trail in the catalog.
    pub fn start_all(&self) {
        for trail in self.catalog.list() {
            if let Err(e) = self.spawn(&trail) {
                tracing::error!(trail = %trail.name, error = %e, "cannot start delivery");
                let _ = self
                    .catalog
                    .record_delivery(&trail.id, self.clock.now_millis(), Some(e));
            }
        }
    }

    /// Stops every worker.
    pub fn stop_all(&self) {
        let workers: Vec<DeliveryHandle> = self
            .workers
            .lock()
            .expect("workers lock poisoned")
            .drain()
            .map(|(_, h)| h)
            .collect();
        for handle in workers {
            handle.stop();
        }
    }

    /// Records a control-plane call as a management event and waits until it is durable.
    pub(crate) async fn audit(
        &self,
        caller: &Caller,
        event_name: &str,
        request_parameters: Value,
        response_elements: Value,
        resource: Option<&Trail>,
    ) -> Result<(), ApiError> {
        crate::security::record(
            &self.ingest,
            self.clock.as_ref(),
            crate::security::AuditEvent {
                caller,
                source: "cloudtrail.amazonaws.com",
                name: event_name,
                read_only: false,
                request: request_parameters,
                response: response_elements,
                error: None,
                resource: resource.map(|t| (t.arn.clone(), "AWS::CloudTrail::Trail")),
            },
        )
        .await
    }

    fn settings_json(settings: &TrailSettings) -> Value {
        serde_json::to_value(settings).expect("settings serialize")
    }
}

/// The bucket name digests name: the S3 bucket, or for a local directory its last component
/// (what the directory would be called as a bucket).
pub fn digest_bucket(trail: &Trail) -> String {
    match (&trail.s3_bucket_name, &trail.local_directory) {
        (Some(bucket), _) => bucket.clone(),
        (None, Some(dir)) => dir
            .file_name()
            .map_or_else(|| "local".to_owned(), |n| n.to_string_lossy().into_owned()),
        (None, None) => String::new(),
    }
}

fn trail_elements(trail: &Trail) -> Value {
    cairn_api::trails::trail_out(trail)
}

impl TrailAdmin for TrailService {
    fn create(
        &self,
        caller: Caller,
        settings: TrailSettings,
    ) -> BoxFuture<'_, Result<Trail, ApiError>> {
        Box::pin(async move {
            let request = Self::settings_json(&settings);
            let trail = self.catalog.create(settings).map_err(catalog_error)?;
            // Delivery starts at the current end of the WAL: nothing older belongs to the trail.
            // Registered before its cursor file exists, so no segment the trail needs is
            // deleted in between.
            let start = self.wal.durable_seq();
            if let Err(e) = self.wal.register(&trail.cursor_name(), start) {
                let _ = self.catalog.delete(&trail.name);
                return Err(ApiError::internal(format!(
                    "registering the trail's WAL position failed: {e}"
                )));
            }
            if let Err(e) = self.wal.commit_cursor(&trail.cursor_name(), start) {
                self.wal.unregister(&trail.cursor_name());
                let _ = self.catalog.delete(&trail.name);
                return Err(ApiError::internal(format!(
                    "creating the trail's WAL cursor failed: {e}"
                )));
            }
            if let Err(e) = self.spawn(&trail) {
                tracing::error!(trail = %trail.name, error = %e, "cannot start delivery");
            }
            self.audit(
                &caller,
                "CreateTrail",
                request,
                trail_elements(&trail),
                Some(&trail),
            )
            .await?;
            Ok(trail)
        })
    }

    fn update(
        &self,
        caller: Caller,
        name: String,
        settings: TrailSettings,
    ) -> BoxFuture<'_, Result<Trail, ApiError>> {
        Box::pin(async move {
            let mut request = Self::settings_json(&settings);
            request["Name"] = Value::String(name.clone());
            let trail = self
                .catalog
                .update(&name, settings)
                .map_err(catalog_error)?;
            if let Err(e) = self.spawn(&trail) {
                tracing::error!(trail = %trail.name, error = %e, "cannot restart delivery");
            }
            self.audit(
                &caller,
                "UpdateTrail",
                request,
                trail_elements(&trail),
                Some(&trail),
            )
            .await?;
            Ok(trail)
        })
    }

    fn delete(&self, caller: Caller, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let trail = self.catalog.get(&name).map_err(catalog_error)?;
            if trail.log_file_validation_enabled && trail.is_logging() {
                // The final digest (spec §3.3): stop, deliver what remains, close the chains.
                let stopped = self
                    .catalog
                    .stop_logging(&name, self.wal.durable_seq(), self.clock.now_millis())
                    .map_err(catalog_error)?;
                self.update_worker(&stopped);
                self.flush(name.clone()).await?;
            }
            let trail = self.catalog.delete(&name).map_err(catalog_error)?;
            let handle = self
                .workers
                .lock()
                .expect("workers lock poisoned")
                .remove(&trail.id);
            if let Some(handle) = handle {
                let _ = tokio::task::spawn_blocking(move || handle.stop()).await;
            }
            self.wal.unregister(&trail.cursor_name());
            self.audit(
                &caller,
                "DeleteTrail",
                json!({ "name": name }),
                Value::Null,
                Some(&trail),
            )
            .await
        })
    }

    fn list(&self) -> Vec<Trail> {
        self.catalog.list()
    }

    fn get(&self, name: &str) -> Result<Trail, ApiError> {
        self.catalog.get(name).map_err(catalog_error)
    }

    fn start_logging(&self, caller: Caller, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let trail = self
                .catalog
                .start_logging(&name, self.wal.durable_seq(), self.clock.now_millis())
                .map_err(catalog_error)?;
            self.update_worker(&trail);
            self.audit(
                &caller,
                "StartLogging",
                json!({ "name": name }),
                Value::Null,
                Some(&trail),
            )
            .await
        })
    }

    fn stop_logging(&self, caller: Caller, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let trail = self.catalog.get(&name).map_err(catalog_error)?;
            // Recorded first, so the trail's last file holds the call that stopped it.
            self.audit(
                &caller,
                "StopLogging",
                json!({ "name": name }),
                Value::Null,
                Some(&trail),
            )
            .await?;
            let trail = self
                .catalog
                .stop_logging(&name, self.wal.durable_seq(), self.clock.now_millis())
                .map_err(catalog_error)?;
            self.update_worker(&trail);
            Ok(())
        })
    }

    fn put_event_selectors(
        &self,
        caller: Caller,
        name: String,
        selectors: Selectors,
    ) -> BoxFuture<'_, Result<Trail, ApiError>> {
        Box::pin(async move {
            let mut request = serde_json::to_value(&selectors).expect("selectors serialize");
            request["TrailName"] = Value::String(name.clone());
            let trail = self
                .catalog
                .put_selectors(&name, selectors)
                .map_err(catalog_error)?;
            self.update_worker(&trail);
            self.audit(
                &caller,
                "PutEventSelectors",
                request,
                cairn_api::trails::selectors_out(&trail),
                Some(&trail),
            )
            .await?;
            Ok(trail)
        })
    }

    fn flush(&self, name: String) -> BoxFuture<'_, Result<FlushOut, ApiError>> {
        Box::pin(async move {
            let trail = self.catalog.get(&name).map_err(catalog_error)?;
            let receiver = {
                let workers = self.workers.lock().expect("workers lock poisoned");
                let handle = workers.get(&trail.id).ok_or_else(|| {
                    ApiError::unavailable(format!(
                        "delivery of trail {} is not running",
                        trail.name
                    ))
                })?;
                handle.flush()
            };
            let outcome = tokio::task::spawn_blocking(move || {
                receiver.recv_timeout(Duration::from_secs(120))
            })
            .await
            .map_err(|e| ApiError::internal(format!("flush task failed: {e}")))?;
            match outcome {
                Ok(Ok(report)) => Ok(FlushOut {
                    files: report.files,
                    events: report.events,
                    bytes: report.bytes,
                    keys: report.keys,
                }),
                Ok(Err(e)) => Err(ApiError::unavailable(format!(
                    "delivery failed and will be retried: {e}"
                ))),
                Err(_) => Err(ApiError::unavailable(
                    "delivery did not finish within 120 s; it goes on in the background",
                )),
            }
        })
    }
}

impl TrailService {
    fn update_worker(&self, trail: &Trail) {
        if let Some(handle) = self
            .workers
            .lock()
            .expect("workers lock poisoned")
            .get(&trail.id)
        {
            handle.update(trail.clone());
        }
    }
}

impl cairn_api::keys::KeyAdmin for TrailService {
    fn list(
        &self,
        region: &str,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<Vec<cairn_keys::KeyInfo>, ApiError> {
        // A region always has a current key, as in AWS: the first listing creates it.
        self.config.keys.signing_key(region).map_err(|e| match e {
            cairn_keys::KeyError::InvalidRegion(_) => {
                ApiError::bad_request("InvalidParameterException", e.to_string())
            }
            other => ApiError::internal(other.to_string()),
        })?;
        let now = self.clock.now_millis();
        Ok(self
            .config
            .keys
            .list(Some(region), start.unwrap_or(now), end.unwrap_or(now)))
    }

    fn rotate(
        &self,
        caller: Caller,
        region: String,
    ) -> BoxFuture<'_, Result<cairn_keys::KeyInfo, ApiError>> {
        Box::pin(async move {
            let keys = self.config.keys.clone();
            let wanted = region.clone();
            let key = tokio::task::spawn_blocking(move || keys.rotate(&wanted))
                .await
                .map_err(|e| ApiError::internal(format!("key rotation task failed: {e}")))?
                .map_err(|e| match e {
                    cairn_keys::KeyError::InvalidRegion(_) => {
                        ApiError::bad_request("InvalidParameterException", e.to_string())
                    }
                    other => ApiError::internal(other.to_string()),
                })?;
            self.audit(
                &caller,
                "RotateDigestSigningKey",
                json!({ "region": region }),
                json!({ "fingerprint": key.fingerprint }),
                None,
            )
            .await?;
            Ok(key)
        })
    }

    fn default_region(&self) -> String {
        self.ingest.region().to_owned()
    }

    fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }
}

/// Maps a catalog error to the API error with CloudTrail's exception name.
pub(crate) fn catalog_error(error: cairn_catalog::CatalogError) -> ApiError {
    use cairn_catalog::CatalogError;
    match &error {
        CatalogError::TrailNotFound(_) => ApiError {
            status: axum::http::StatusCode::NOT_FOUND,
            code: error.code(),
            message: error.to_string(),
        },
        CatalogError::Io { .. } | CatalogError::Damaged { .. } => {
            tracing::error!(error = %error, "catalog failure");
            ApiError::internal(error.to_string())
        }
        _ => ApiError::bad_request(error.code(), error.to_string()),
    }
}
