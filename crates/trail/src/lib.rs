//! The trail domain, pure (no I/O, no clock): what a trail is (its settings, region scope,
//! selectors and logging periods, [`Trail`]), which WAL records it delivers ([`selects`]: the
//! logging periods in WAL positions, the scope, the selectors over the fields extracted at
//! ingest), and how a delivery groups them into files named under CloudTrail's key layout
//! ([`Batcher`]). Trail delivery (`cairn-delivery`), log groups (`cairn-logs`) and the
//! catalog that stores trails (`cairn-catalog`) share these rules.
//!
//! **Logging periods are WAL positions.** `StartLogging` records the WAL's durable sequence
//! number at that moment: the trail logs the events recorded after it; `StopLogging` records the
//! position up to which it logged. Delivery therefore never depends on when it happens to run:
//! an event acknowledged while a trail was logging is delivered by it, whenever delivery runs.

pub mod batch;

pub use batch::{selects, Batcher, FileBatch};

use cairn_selectors::{Selectors, TrailScope};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Trail settings as a client gives them (create) — CloudTrail's member names, plus
/// `LocalDirectory` for Cairn's embedded destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TrailSettings {
    /// Trail name.
    pub name: String,
    /// Deliver into this directory (exclusive with `S3BucketName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_directory: Option<PathBuf>,
    /// Deliver into this bucket of the configured S3-compatible store.
    #[serde(
        default,
        rename = "S3BucketName",
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_bucket_name: Option<String>,
    /// Key prefix (≤ 200 characters).
    #[serde(
        default,
        rename = "S3KeyPrefix",
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_key_prefix: Option<String>,
    /// Record every region (default false).
    #[serde(default)]
    pub is_multi_region_trail: Option<bool>,
    /// Record global services' events (default true).
    #[serde(default)]
    pub include_global_service_events: Option<bool>,
    /// Write signed digest files (default false).
    #[serde(default)]
    pub enable_log_file_validation: Option<bool>,
    /// Cover every account of the organization (default false).
    #[serde(default)]
    pub is_organization_trail: Option<bool>,
    /// Cairn's: write who ingested each event into the log files, as a `cairnIngestedBy` array
    /// beside `Records` (default false: the files are CloudTrail's format exactly).
    #[serde(default)]
    pub cairn_include_ingested_by: Option<bool>,
}

/// A logging period, in WAL sequence numbers: events with `after < seq <= through` are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggingPeriod {
    /// Logging started after this sequence number.
    pub after: u64,
    /// Logging stopped after this sequence number (`None`: still logging).
    pub through: Option<u64>,
}

/// A trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Trail {
    /// Stable internal id (names the trail's WAL cursor).
    pub id: String,
    /// Name.
    pub name: String,
    /// `arn:aws:cloudtrail:<home-region>:<account>:trail/<name>`.
    #[serde(rename = "TrailARN")]
    pub arn: String,
    /// Local destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_directory: Option<PathBuf>,
    /// S3 destination.
    #[serde(
        default,
        rename = "S3BucketName",
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_bucket_name: Option<String>,
    /// Key prefix.
    #[serde(
        default,
        rename = "S3KeyPrefix",
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_key_prefix: Option<String>,
    /// Region scope.
    #[serde(flatten)]
    pub scope: TrailScope,
    /// Digest files wanted.
    pub log_file_validation_enabled: bool,
    /// Cairn's: log files carry who ingested each event (`cairnIngestedBy`).
    #[serde(default)]
    pub cairn_include_ingested_by: bool,
    /// Organization trail.
    pub is_organization_trail: bool,
    /// Organization id, for organization trails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// Event selectors.
    pub selectors: Selectors,
    /// Logging periods, oldest first.
    pub logging: Vec<LoggingPeriod>,
    /// Epoch ms of the last StartLogging.
    #[serde(default)]
    pub start_logging_time: Option<i64>,
    /// Epoch ms of the last StopLogging.
    #[serde(default)]
    pub stop_logging_time: Option<i64>,
    /// Epoch ms of the last successful delivery.
    #[serde(default)]
    pub latest_delivery_time: Option<i64>,
    /// Epoch ms of the last delivery attempt.
    #[serde(default)]
    pub latest_delivery_attempt_time: Option<i64>,
    /// The last delivery error, cleared by a success.
    #[serde(default)]
    pub latest_delivery_error: Option<String>,
    /// Epoch ms of the last digest file stored.
    #[serde(default)]
    pub latest_digest_delivery_time: Option<i64>,
    /// The last digest delivery error, cleared by a success.
    #[serde(default)]
    pub latest_digest_delivery_error: Option<String>,
}

impl Trail {
    /// Whether the trail is logging now.
    pub fn is_logging(&self) -> bool {
        self.logging.last().is_some_and(|p| p.through.is_none())
    }

    /// Whether the event at WAL position `seq` falls in a logging period.
    pub fn logs_seq(&self, seq: u64) -> bool {
        self.logging
            .iter()
            .any(|p| seq > p.after && p.through.is_none_or(|t| seq <= t))
    }

    /// The WAL cursor name of this trail's delivery.
    pub fn cursor_name(&self) -> String {
        format!("trail-{}", self.id)
    }

    /// A new trail `name` (internal id `id`) of `account`, at home in `region`, as
    /// CloudTrail's `CreateTrail` leaves it before its settings apply: no destination, not
    /// logging, the default selectors, single-region with global services, no digests.
    pub fn new(id: &str, name: &str, account: &str, region: &str) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            arn: format!("arn:aws:cloudtrail:{region}:{account}:trail/{name}"),
            local_directory: None,
            s3_bucket_name: None,
            s3_key_prefix: None,
            scope: TrailScope {
                home_region: region.to_owned(),
                is_multi_region_trail: false,
                include_global_service_events: true,
            },
            log_file_validation_enabled: false,
            cairn_include_ingested_by: false,
            is_organization_trail: false,
            organization_id: None,
            selectors: Selectors::default(),
            logging: Vec::new(),
            start_logging_time: None,
            stop_logging_time: None,
            latest_delivery_time: None,
            latest_delivery_attempt_time: None,
            latest_delivery_error: None,
            latest_digest_delivery_time: None,
            latest_digest_delivery_error: None,
        }
    }

    /// [`Trail::new`] delivering to the local directory `directory` and logging every event
    /// from the WAL's start. A starting point that tests and benchmarks adjust (the catalog
    /// builds trails from their settings).
    pub fn logging_to_directory(
        id: &str,
        name: &str,
        account: &str,
        region: &str,
        directory: PathBuf,
    ) -> Self {
        Self {
            local_directory: Some(directory),
            logging: vec![LoggingPeriod {
                after: 0,
                through: None,
            }],
            ..Self::new(id, name, account, region)
        }
    }

    /// Whether the trail has custom (non-default) selectors.
    pub fn has_custom_event_selectors(&self) -> bool {
        self.selectors != Selectors::default()
    }
}

/// Partial settings for `UpdateTrail`: only given members change.
pub type TrailUpdate = TrailSettings;
