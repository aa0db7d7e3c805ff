//! The server's Prometheus metrics. Labels stay low-cardinality (reasons and consumer names
//! only).

use cairn_model::RejectKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrailLabel {
    trail: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Consumer {
    consumer: String,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Events newly recorded.
    pub events_accepted: Counter,
    /// Retries of events already recorded.
    pub events_duplicate: Counter,
    rejected: Family<Reason, Counter>,
    /// Bytes of records made durable.
    pub bytes_accepted: Counter,
    /// Requests that failed because the WAL could not make them durable.
    pub ingest_unavailable: Counter,
    wal_fsync: Histogram,
    wal_group_records: Histogram,
    wal_failures: Counter,
    /// Last durable WAL sequence number.
    pub wal_durable_seq: Gauge,
    lag: Family<Consumer, Gauge>,
    consumer_position: Family<Consumer, Gauge>,
    /// Bytes free on the data directory's filesystem.
    pub data_dir_free_bytes: Gauge,
    /// Lake query tasks alive.
    pub lake_queries_running: Gauge,
    /// Bytes of the request-body budget (`request_buffer_mib`) held now.
    pub request_buffer_bytes: Gauge,
    consumer_failures: Family<Consumer, Gauge>,
    /// Events made searchable in Event history.
    pub history_indexed: Counter,
    /// Lookups answered.
    pub lookups: Counter,
    /// Last WAL sequence number indexed into Event history.
    pub history_applied_seq: Gauge,
    delivered_files: Family<TrailLabel, Counter>,
    delivered_events: Family<TrailLabel, Counter>,
    delivered_bytes: Family<TrailLabel, Counter>,
    delivery_failures: Family<TrailLabel, Counter>,
    digests_delivered: Family<TrailLabel, Counter>,
    notifications_delivered: Counter,
    notification_failures: Counter,
    digest_failures: Family<TrailLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cairn");
        let metrics = Self {
            registry: Mutex::new(Registry::default()),
            events_accepted: Counter::default(),
            events_duplicate: Counter::default(),
            rejected: Family::default(),
            bytes_accepted: Counter::default(),
            ingest_unavailable: Counter::default(),
            wal_fsync: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            wal_group_records: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            wal_failures: Counter::default(),
            wal_durable_seq: Gauge::default(),
            lag: Family::default(),
            consumer_position: Family::default(),
            data_dir_free_bytes: Gauge::default(),
            lake_queries_running: Gauge::default(),
            request_buffer_bytes: Gauge::default(),
            consumer_failures: Family::default(),
            history_indexed: Counter::default(),
            lookups: Counter::default(),
            history_applied_seq: Gauge::default(),
            delivered_files: Family::default(),
            delivered_events: Family::default(),
            delivered_bytes: Family::default(),
            delivery_failures: Family::default(),
            digests_delivered: Family::default(),
            notifications_delivered: Counter::default(),
            notification_failures: Counter::default(),
            digest_failures: Family::default(),
        };
        registry.register(
            "delivery_files",
            "Log files delivered, by trail",
            metrics.delivered_files.clone(),
        );
        registry.register(
            "delivery_events",
            "Events delivered in log files, by trail",
            metrics.delivered_events.clone(),
        );
        registry.register(
            "delivery_bytes",
            "Compressed log file bytes delivered, by trail",
            metrics.delivered_bytes.clone(),
        );
        registry.register(
            "delivery_failures",
            "Failed delivery attempts (retried), by trail",
            metrics.delivery_failures.clone(),
        );
        registry.register(
            "notifications_delivered",
            "Alarm notifications delivered to subscriptions",
            metrics.notifications_delivered.clone(),
        );
        registry.register(
            "notification_failures",
            "Failed notification delivery attempts (retried up to 8 times)",
            metrics.notification_failures.clone(),
        );
        registry.register(
            "digest_files",
            "Digest files stored, by trail",
            metrics.digests_delivered.clone(),
        );
        registry.register(
            "digest_failures",
            "Failed digest delivery attempts (retried), by trail",
            metrics.digest_failures.clone(),
        );
        registry.register(
            "events_accepted",
            "Events newly recorded (durable)",
            metrics.events_accepted.clone(),
        );
        registry.register(
            "events_duplicate",
            "Retried events already recorded with the same content",
            metrics.events_duplicate.clone(),
        );
        registry.register(
            "events_rejected",
            "Events rejected, by reason",
            metrics.rejected.clone(),
        );
        registry.register(
            "ingest_bytes",
            "Bytes of event records made durable",
            metrics.bytes_accepted.clone(),
        );
        registry.register(
            "ingest_unavailable",
            "Ingest requests answered 503 because events could not be made durable",
            metrics.ingest_unavailable.clone(),
        );
        registry.register(
            "wal_fsync_seconds",
            "Write-ahead log fsync latency per group commit",
            metrics.wal_fsync.clone(),
        );
        registry.register(
            "wal_group_records",
            "Records per write-ahead log group commit",
            metrics.wal_group_records.clone(),
        );
        registry.register(
            "wal_failures",
            "Write-ahead log group commits that failed",
            metrics.wal_failures.clone(),
        );
        registry.register(
            "wal_durable_seq",
            "Last durable write-ahead log sequence number",
            metrics.wal_durable_seq.clone(),
        );
        registry.register(
            "consumer_lag_records",
            "Durable WAL records a consumer has not processed yet",
            metrics.lag.clone(),
        );
        registry.register(
            "request_buffer_bytes",
            "Bytes of the request-body budget (request_buffer_mib) held by requests in flight",
            metrics.request_buffer_bytes.clone(),
        );
        registry.register(
            "lake_queries_running",
            "Lake query tasks alive (a cancelled or timed-out query's task ends, freeing its memory)",
            metrics.lake_queries_running.clone(),
        );
        registry.register(
            "data_dir_free_bytes",
            "Bytes free on the data directory's filesystem (ingest pauses below min_free_mib)",
            metrics.data_dir_free_bytes.clone(),
        );
        registry.register(
            "consumer_position",
            "Last WAL sequence number whose effect a consumer made durable",
            metrics.consumer_position.clone(),
        );
        registry.register(
            "consumer_failures",
            "Consecutive failed attempts of a consumer (0 when healthy)",
            metrics.consumer_failures.clone(),
        );
        registry.register(
            "history_indexed",
            "Events made searchable in Event history",
            metrics.history_indexed.clone(),
        );
        registry.register(
            "history_applied_seq",
            "Last WAL sequence number indexed into Event history",
            metrics.history_applied_seq.clone(),
        );
        registry.register(
            "lookups",
            "Event history lookups answered",
            metrics.lookups.clone(),
        );
        *metrics.registry.lock().expect("metrics lock poisoned") = registry;
        metrics
    }

    /// Counts a rejected event.
    pub fn rejected(&self, kind: RejectKind) {
        self.rejected
            .get_or_create(&Reason {
                reason: kind.as_str(),
            })
            .inc();
    }

    /// Counts a delivery.
    pub fn delivered(&self, trail: &str, files: usize, events: usize, bytes: usize) {
        let label = TrailLabel {
            trail: trail.to_owned(),
        };
        self.delivered_files
            .get_or_create(&label)
            .inc_by(files as u64);
        self.delivered_events
            .get_or_create(&label)
            .inc_by(events as u64);
        self.delivered_bytes
            .get_or_create(&label)
            .inc_by(bytes as u64);
    }

    /// Counts a failed delivery attempt.
    pub fn delivery_failed(&self, trail: &str) {
        self.delivery_failures
            .get_or_create(&TrailLabel {
                trail: trail.to_owned(),
            })
            .inc();
    }

    /// Counts a notification delivery (or a failed attempt).
    pub fn notification(&self, delivered: bool) {
        if delivered {
            self.notifications_delivered.inc();
        } else {
            self.notification_failures.inc();
        }
    }

    /// Counts a stored digest file.
    pub fn digest_delivered(&self, trail: &str) {
        self.digests_delivered
            .get_or_create(&TrailLabel {
                trail: trail.to_owned(),
            })
            .inc();
    }

    /// Counts a failed digest delivery attempt.
    pub fn digest_failed(&self, trail: &str) {
        self.digest_failures
            .get_or_create(&TrailLabel {
                trail: trail.to_owned(),
            })
            .inc();
    }

    /// Sets a consumer's lag.
    pub fn set_lag(&self, consumer: &str, records: u64) {
        self.lag
            .get_or_create(&Consumer {
                consumer: consumer.to_owned(),
            })
            .set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    /// Sets every registered WAL consumer's position, lag and failures from the WAL's registry
    /// (history, log groups, each trail, each event data store, alike).
    pub fn observe_consumers(&self, wal: &cairn_wal::Wal) {
        let durable = wal.durable_seq();
        for (name, status) in wal.consumers() {
            let label = Consumer { consumer: name };
            let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.consumer_position
                .get_or_create(&label)
                .set(gauge(status.position));
            self.lag
                .get_or_create(&label)
                .set(gauge(durable.saturating_sub(status.position)));
            self.consumer_failures
                .get_or_create(&label)
                .set(i64::from(status.failures));
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics lock poisoned");
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

impl cairn_wal::WalObserver for Metrics {
    fn committed(&self, last_seq: u64, records: usize, _bytes: usize, fsync: Duration) {
        self.wal_fsync.observe(fsync.as_secs_f64());
        self.wal_group_records.observe(records as f64);
        self.wal_durable_seq
            .set(i64::try_from(last_seq).unwrap_or(i64::MAX));
    }

    fn failed(&self, _error: &str) {
        self.wal_failures.inc();
    }
}
