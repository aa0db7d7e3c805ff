//! Server configuration: the raw TOML form (every field documented, unknown keys refused)
//! and the resolved form (validated, defaults applied).

use cairn_model::AccountId;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Default listen address: loopback.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7474";
/// Largest uncompressed log file (keeps compressed files under 50 MB).
pub const MAX_LOG_FILE_BYTES: usize = 48 * 1024 * 1024;
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./cairn-data";

/// The configuration file as written (`cairn serve --config cairn.toml`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Directory holding everything Cairn stores. Default `./cairn-data`.
    pub data_dir: Option<PathBuf>,
    /// Address to listen on. Default `127.0.0.1:7474`.
    pub listen: Option<String>,
    /// Serve `/metrics` without a signature (for Prometheus scrapers). Default `false`: it
    /// needs `cairn:GetMetrics`.
    pub public_metrics: Option<bool>,
    /// PEM certificate chain for HTTPS (with `tls_key`). Default: plain HTTP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS (with `tls_cert`).
    pub tls_key: Option<PathBuf>,
    /// The deployment's 12-digit account id. Default: a random one created at first start
    /// and kept in `<data_dir>/account-id`.
    pub account_id: Option<String>,
    /// Region this deployment records integration events in and searches by default.
    /// Default `us-east-1`.
    pub region: Option<String>,
    /// Write-ahead log segment size in bytes. Default 64 MiB.
    pub wal_segment_bytes: Option<u64>,
    /// Days events stay in Event history. Default 90.
    pub history_retention_days: Option<i64>,
    /// Event history page cache in MiB. Default 256.
    pub history_cache_mib: Option<usize>,
    /// Memory one Lake query may hold, in MiB. Default 512.
    pub query_memory_mib: Option<usize>,
    /// Memory every Lake query together may hold, in MiB. Default 1024.
    pub query_memory_total_mib: Option<usize>,
    /// Seconds a Lake query may run before it is stopped. Default 600.
    pub query_timeout_seconds: Option<u64>,
    /// Lake queries queued or running at once. Default 10 (CloudTrail Lake's).
    pub max_concurrent_queries: Option<usize>,
    /// Lake queries of one user queued or running at once. Default 5.
    pub max_queries_per_user: Option<usize>,
    /// Space kept free on the data directory's filesystem, in MiB: below it producers' ingest
    /// answers 503 while history, trails, log groups and the lake keep draining the WAL into
    /// it. Default 64; 0 turns the reserve off.
    pub min_free_mib: Option<u64>,
    /// Most MiB of write-ahead log kept for consumers that have not processed it (a trail whose
    /// destination is down, a stopped store): beyond it producers' ingest answers 503 naming
    /// the consumer. Default 16384; 0: no bound but the disk.
    pub max_wal_backlog_mib: Option<u64>,
    /// Most events acknowledged and not yet in Event history: their eventIDs are kept in
    /// memory for idempotent retries (about 230 bytes each) until history indexes them; beyond
    /// it producers' ingest answers 503 until history catches up. Default 1000000; 0: no bound.
    pub max_unindexed_events: Option<u64>,
    /// Largest request body in bytes (on the wire and decompressed). Default 10 MiB.
    pub max_request_bytes: Option<usize>,
    /// Most events in one `/v1/events` request. Default 10000.
    pub max_events_per_request: Option<usize>,
    /// MiB of memory for request bodies in flight, all connections together (each body
    /// counted three times: read, copied, parsed). A request finding no room waits up to
    /// 10 s, then gets 503. Default 512.
    pub request_buffer_mib: Option<usize>,
    /// Seconds between a trail's first undelivered event and the delivery of its batch.
    /// Default 300 (CloudTrail's 5 minutes); at least 1.
    pub delivery_interval_seconds: Option<u64>,
    /// Largest uncompressed log file in bytes. Default 48 MiB, which keeps every file under
    /// 50 MB compressed; at most that.
    pub max_log_file_bytes: Option<usize>,
    /// Organization id (`o-...`) for organization trails. Default: none (organization trails
    /// are refused).
    pub organization_id: Option<String>,
    /// The S3-compatible store trails with `S3BucketName` deliver to. Default: none.
    pub s3: Option<cairn_store::S3Config>,
    /// Seconds covered by each digest file of trails with log file validation. Default 3600
    /// (CloudTrail's hour); from 1 to 86400 (shorter periods are for tests and demonstrations).
    pub digest_period_seconds: Option<u64>,
    /// Operator-supplied digest signing keys, by region: PKCS#1 PEM files of RSA-2048 keys.
    /// At start each becomes its region's current key (a rotation) unless it already is.
    /// Regions not named get a generated key at first use. Default: none.
    pub signing_key_files: Option<std::collections::BTreeMap<String, PathBuf>>,
    /// Seconds an event data store gathers events before writing a Parquet file (sooner at
    /// 200,000 events). Default 60; from 1 to 3600. Events become queryable in a store when
    /// their file is written.
    pub lake_flush_seconds: Option<u64>,
    /// Seconds between two rounds of the Lake's upkeep: retention (expired days removed) and
    /// compaction (small Parquet files merged, see `cairn_lake::compact`). Default 60; from 1
    /// to 3600.
    pub lake_compaction_seconds: Option<u64>,
    /// A bucket of the `[s3]` store where event data stores created from now on keep their
    /// Parquet files (`s3://<lake_bucket>/<lake_prefix>/<store id>/date=…/`). Default: none,
    /// the data directory (`<data_dir>/lake/<store id>/`). Stores created before a change stay
    /// where they are.
    pub lake_bucket: Option<String>,
    /// Key prefix in `lake_bucket`. Default `cairn-lake`; empty for the bucket's root.
    pub lake_prefix: Option<String>,
}

/// Why a configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {path} failed")]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path} is invalid")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: toml::de::Error,
    },
    /// A value is invalid.
    #[error("config value {field} is invalid: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// The configuration in force.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Whether `/metrics` is readable unsigned.
    pub public_metrics: bool,
    /// HTTPS certificate chain and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Configured account id (else the data directory's).
    pub account_id: Option<AccountId>,
    /// Default region.
    pub region: String,
    /// WAL segment size.
    pub wal_segment_bytes: u64,
    /// History retention.
    pub history_retention_days: i64,
    /// History cache.
    pub history_cache_bytes: usize,
    /// Free space below which producers' ingest pauses.
    pub min_free_bytes: u64,
    /// Bound on the WAL held for consumers, bytes (0: none).
    pub max_wal_backlog_bytes: u64,
    /// Bound on the events acknowledged and not yet indexed by history (0: none).
    pub max_unindexed_events: u64,
    /// Lake query limits.
    pub query_limits: cairn_lake::limits::QueryLimits,
    /// API limits.
    pub limits: cairn_api::Limits,
    /// Delivery batching interval.
    pub delivery_interval: std::time::Duration,
    /// Largest uncompressed log file.
    pub max_log_file_bytes: usize,
    /// Organization id.
    pub organization_id: Option<String>,
    /// S3-compatible store.
    pub s3: Option<cairn_store::S3Config>,
    /// Digest period.
    pub digest_period: std::time::Duration,
    /// How long an event data store gathers events before writing a file.
    pub lake_flush: std::time::Duration,
    /// Time between two rounds of the Lake's retention and compaction.
    pub lake_compaction: std::time::Duration,
    /// Bucket (of `s3`) and key prefix for new event data stores; none: the data directory.
    pub lake_bucket: Option<(String, String)>,
    /// Operator signing keys by region.
    pub signing_key_files: std::collections::BTreeMap<String, PathBuf>,
    /// Test failpoint (from the `CAIRN_FAILPOINT` environment variable, never from files):
    /// abort between uploading a batch and committing its cursor.
    pub failpoint_abort_after_upload: bool,
    /// Test failpoint (`CAIRN_FAILPOINT=lake_abort_after_write`): abort between writing an
    /// event data store's Parquet files and committing its cursor.
    pub failpoint_lake_abort_after_write: bool,
}

impl RawConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Validates and applies defaults.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let listen_text = self.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|e| ConfigError::Invalid {
            field: "listen",
            reason: format!("{listen_text:?} is not an ip:port address: {e}"),
        })?;
        let account_id =
            match self.account_id {
                Some(text) => Some(text.parse().map_err(
                    |e: cairn_model::ids::InvalidAccountId| ConfigError::Invalid {
                        field: "account_id",
                        reason: e.to_string(),
                    },
                )?),
                None => None,
            };
        let region = self.region.unwrap_or_else(|| "us-east-1".to_owned());
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ConfigError::Invalid {
                field: "region",
                reason: format!("{region:?} is not a region name like us-east-1"),
            });
        }
        let positive = |field: &'static str, value: Option<u64>, default: u64| match value {
            Some(0) => Err(ConfigError::Invalid {
                field,
                reason: "must be greater than 0".to_owned(),
            }),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let defaults = cairn_api::Limits::default();
        let max_log_file_bytes = self.max_log_file_bytes.unwrap_or(MAX_LOG_FILE_BYTES);
        if max_log_file_bytes == 0 || max_log_file_bytes > MAX_LOG_FILE_BYTES {
            return Err(ConfigError::Invalid {
                field: "max_log_file_bytes",
                reason: format!("must be 1 to {MAX_LOG_FILE_BYTES}"),
            });
        }
        let digest_period_seconds = self.digest_period_seconds.unwrap_or(3600);
        if !(1..=86_400).contains(&digest_period_seconds) {
            return Err(ConfigError::Invalid {
                field: "digest_period_seconds",
                reason: "must be 1 to 86400".to_owned(),
            });
        }
        let lake_flush_seconds = self.lake_flush_seconds.unwrap_or(60);
        if !(1..=3600).contains(&lake_flush_seconds) {
            return Err(ConfigError::Invalid {
                field: "lake_flush_seconds",
                reason: "must be 1 to 3600".to_owned(),
            });
        }
        let lake_compaction_seconds = self.lake_compaction_seconds.unwrap_or(60);
        if !(1..=3600).contains(&lake_compaction_seconds) {
            return Err(ConfigError::Invalid {
                field: "lake_compaction_seconds",
                reason: "must be 1 to 3600".to_owned(),
            });
        }
        let lake_bucket = match (self.lake_bucket, self.lake_prefix) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    field: "lake_prefix",
                    reason: "needs lake_bucket".to_owned(),
                })
            }
            (Some(bucket), prefix) => {
                if self.s3.is_none() {
                    return Err(ConfigError::Invalid {
                        field: "lake_bucket",
                        reason: "needs an [s3] table (endpoint and credentials)".to_owned(),
                    });
                }
                let valid = (3..=63).contains(&bucket.len())
                    && bucket.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.')
                    });
                if !valid {
                    return Err(ConfigError::Invalid {
                        field: "lake_bucket",
                        reason: format!(
                            "{bucket:?} is not an S3 bucket name (3 to 63 of a-z, 0-9, '-', '.')"
                        ),
                    });
                }
                let prefix = prefix.unwrap_or_else(|| "cairn-lake".to_owned());
                let prefix = prefix.trim_matches('/').to_owned();
                if !prefix.is_empty()
                    && prefix
                        .split('/')
                        .any(|p| p.is_empty() || p == "." || p == "..")
                {
                    return Err(ConfigError::Invalid {
                        field: "lake_prefix",
                        reason: format!("{prefix:?} has an empty, '.' or '..' part"),
                    });
                }
                Some((bucket, prefix))
            }
        };
        if let Some(org) = &self.organization_id {
            let valid = org.len() > 2
                && org.starts_with("o-")
                && org[2..]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !valid {
                return Err(ConfigError::Invalid {
                    field: "organization_id",
                    reason: format!("{org:?} is not like o-abc123"),
                });
            }
        }
        Ok(Config {
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            listen,
            public_metrics: self.public_metrics.unwrap_or(false),
            tls: match (self.tls_cert, self.tls_key) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => {
                    return Err(ConfigError::Invalid {
                        field: "tls_cert",
                        reason: "tls_cert and tls_key go together".to_owned(),
                    })
                }
            },
            account_id,
            region,
            wal_segment_bytes: positive(
                "wal_segment_bytes",
                self.wal_segment_bytes,
                64 * 1024 * 1024,
            )?,
            history_retention_days: positive(
                "history_retention_days",
                self.history_retention_days.map(|d| d.max(0) as u64),
                90,
            )? as i64,
            history_cache_bytes: positive(
                "history_cache_mib",
                self.history_cache_mib.map(|m| m as u64),
                256,
            )? as usize
                * 1024
                * 1024,
            min_free_bytes: self.min_free_mib.unwrap_or(64).saturating_mul(1024 * 1024),
            max_wal_backlog_bytes: self
                .max_wal_backlog_mib
                .unwrap_or(16 * 1024)
                .saturating_mul(1024 * 1024),
            max_unindexed_events: self.max_unindexed_events.unwrap_or(1_000_000),
            query_limits: {
                let defaults = cairn_lake::limits::QueryLimits::default();
                let mib = |field, value: Option<usize>, default: usize| {
                    positive(
                        field,
                        value.map(|v| v as u64),
                        (default / (1024 * 1024)) as u64,
                    )
                    .map(|v| (v as usize).saturating_mul(1024 * 1024))
                };
                let per_query = mib(
                    "query_memory_mib",
                    self.query_memory_mib,
                    defaults.memory_per_query,
                )?;
                let total = mib(
                    "query_memory_total_mib",
                    self.query_memory_total_mib,
                    defaults.memory_total,
                )?;
                if per_query > total {
                    return Err(ConfigError::Invalid {
                        field: "query_memory_mib",
                        reason: "must not exceed query_memory_total_mib".to_owned(),
                    });
                }
                cairn_lake::limits::QueryLimits {
                    memory_per_query: per_query,
                    memory_total: total,
                    timeout: std::time::Duration::from_secs(positive(
                        "query_timeout_seconds",
                        self.query_timeout_seconds,
                        defaults.timeout.as_secs(),
                    )?),
                    max_concurrent: positive(
                        "max_concurrent_queries",
                        self.max_concurrent_queries.map(|v| v as u64),
                        defaults.max_concurrent as u64,
                    )? as usize,
                    max_per_user: positive(
                        "max_queries_per_user",
                        self.max_queries_per_user.map(|v| v as u64),
                        defaults.max_per_user as u64,
                    )? as usize,
                }
            },
            limits: cairn_api::Limits {
                max_request_bytes: positive(
                    "max_request_bytes",
                    self.max_request_bytes.map(|v| v as u64),
                    defaults.max_request_bytes as u64,
                )? as usize,
                max_events_per_request: positive(
                    "max_events_per_request",
                    self.max_events_per_request.map(|v| v as u64),
                    defaults.max_events_per_request as u64,
                )? as usize,
                request_buffer_bytes: positive(
                    "request_buffer_mib",
                    self.request_buffer_mib.map(|v| v as u64),
                    (defaults.request_buffer_bytes >> 20) as u64,
                )? as usize
                    * 1024
                    * 1024,
            },
            delivery_interval: std::time::Duration::from_secs(positive(
                "delivery_interval_seconds",
                self.delivery_interval_seconds,
                300,
            )?),
            max_log_file_bytes,
            organization_id: self.organization_id,
            s3: self.s3,
            digest_period: std::time::Duration::from_secs(digest_period_seconds),
            lake_flush: std::time::Duration::from_secs(lake_flush_seconds),
            lake_compaction: std::time::Duration::from_secs(lake_compaction_seconds),
            lake_bucket,
            signing_key_files: self.signing_key_files.unwrap_or_default(),
            failpoint_abort_after_upload: false,
            failpoint_lake_abort_after_write: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_and_documented_values() {
        let config = RawConfig::default().resolve().expect("defaults");
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.region, "us-east-1");
        assert_eq!(config.history_retention_days, 90);
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn the_lake_bucket_needs_the_s3_table_and_a_bucket_name() {
        let s3 = "[s3]\nendpoint = \"http://127.0.0.1:9000\"\naccess_key_id = \"k\"\nsecret_access_key = \"s\"\n";
        let resolve = |text: &str| toml::from_str::<RawConfig>(text).expect("parses").resolve();
        let bucket = |text: &str| resolve(text).expect("valid").lake_bucket;
        assert_eq!(bucket(s3), None);
        assert_eq!(
            bucket(&format!("lake_bucket = \"audit-lake\"\n{s3}")),
            Some(("audit-lake".to_owned(), "cairn-lake".to_owned()))
        );
        assert_eq!(
            bucket(&format!(
                "lake_bucket = \"audit-lake\"\nlake_prefix = \"/a/b/\"\n{s3}"
            )),
            Some(("audit-lake".to_owned(), "a/b".to_owned()))
        );
        assert_eq!(
            bucket(&format!(
                "lake_bucket = \"audit-lake\"\nlake_prefix = \"\"\n{s3}"
            )),
            Some(("audit-lake".to_owned(), String::new()))
        );
        for (text, field) in [
            ("lake_bucket = \"audit-lake\"\n".to_owned(), "lake_bucket"),
            (format!("lake_prefix = \"p\"\n{s3}"), "lake_prefix"),
            (format!("lake_bucket = \"Audit_Lake\"\n{s3}"), "lake_bucket"),
            (format!("lake_bucket = \"ab\"\n{s3}"), "lake_bucket"),
            (
                format!("lake_bucket = \"audit-lake\"\nlake_prefix = \"a//b\"\n{s3}"),
                "lake_prefix",
            ),
            (
                format!("lake_bucket = \"audit-lake\"\nlake_prefix = \"a/../b\"\n{s3}"),
                "lake_prefix",
            ),
        ] {
            match resolve(&text) {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn any_address_may_be_bound_now_that_calls_are_signed() {
        let raw = RawConfig {
            listen: Some("0.0.0.0:7474".into()),
            ..RawConfig::default()
        };
        assert!(raw.resolve().is_ok());
        assert!(
            toml::from_str::<RawConfig>("allow_remote = true").is_err(),
            "gone"
        );
    }

    #[test]
    fn trail_settings_and_the_s3_table() {
        let raw: RawConfig = toml::from_str(
            "delivery_interval_seconds = 60\norganization_id = \"o-abc123\"\n[s3]\nendpoint = \"http://127.0.0.1:9000\"\naccess_key_id = \"k\"\nsecret_access_key = \"s\"\nallow_http = true\n",
        )
        .expect("parses");
        let config = raw.resolve().expect("valid");
        assert_eq!(config.delivery_interval, std::time::Duration::from_secs(60));
        let s3 = config.s3.expect("s3 table");
        assert_eq!(
            (s3.region.as_str(), s3.allow_http, s3.virtual_hosted_style),
            ("us-east-1", true, false)
        );
        assert!(
            toml::from_str::<RawConfig>("[s3]\nendpoint = \"x\"\nbucket = \"b\"\n").is_err(),
            "unknown s3 keys refused"
        );
        let raw: RawConfig = toml::from_str("organization_id = \"org\"").expect("parses");
        assert!(matches!(
            raw.resolve(),
            Err(ConfigError::Invalid {
                field: "organization_id",
                ..
            })
        ));
        let raw: RawConfig = toml::from_str("digest_period_seconds = 0").expect("parses");
        assert!(matches!(
            raw.resolve(),
            Err(ConfigError::Invalid {
                field: "digest_period_seconds",
                ..
            })
        ));
        let raw: RawConfig = toml::from_str(
            "digest_period_seconds = 5\n[signing_key_files]\n\"eu-west-1\" = \"/etc/cairn/eu.pem\"\n",
        )
        .expect("parses");
        let config = raw.resolve().expect("valid");
        assert_eq!(config.digest_period, std::time::Duration::from_secs(5));
        assert_eq!(
            config.signing_key_files["eu-west-1"],
            PathBuf::from("/etc/cairn/eu.pem")
        );
        let raw: RawConfig = toml::from_str("max_log_file_bytes = 60000000").expect("parses");
        assert!(matches!(
            raw.resolve(),
            Err(ConfigError::Invalid {
                field: "max_log_file_bytes",
                ..
            })
        ));
    }

    #[test]
    fn misspelled_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<RawConfig>("data_dri = \"x\"").is_err());
        let raw: RawConfig = toml::from_str("account_id = \"12\"").expect("parses");
        assert!(matches!(
            raw.resolve(),
            Err(ConfigError::Invalid {
                field: "account_id",
                ..
            })
        ));
        let raw: RawConfig = toml::from_str("max_events_per_request = 0").expect("parses");
        assert!(matches!(
            raw.resolve(),
            Err(ConfigError::Invalid {
                field: "max_events_per_request",
                ..
            })
        ));
    }
}
