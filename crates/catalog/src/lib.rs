//! Cairn's control-plane state: trails (spec §5.2–5.4), stored durably in one JSON file
//! (`catalog.json`: written to a temporary file, fsynced, renamed, directory fsynced). What a
//! trail is and which events it logs is the pure `cairn-trail` crate; this one checks the
//! changes CloudTrail's API allows (names, prefixes, destinations) and keeps the trails.

mod validate;

use cairn_selectors::Selectors;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use validate::{
    validate_bucket_name, validate_local_directory, validate_prefix, validate_trail_name,
};

/// Most trails per region (CloudTrail's limit).
pub const MAX_TRAILS: usize = 5;

/// A control-plane error, carrying CloudTrail's exception name.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// `TrailNotFoundException`.
    #[error("unknown trail: {0}")]
    TrailNotFound(String),
    /// `TrailAlreadyExistsException`.
    #[error("trail {0} already exists")]
    TrailAlreadyExists(String),
    /// `MaximumNumberOfTrailsExceededException`.
    #[error("at most {MAX_TRAILS} trails per region")]
    MaximumNumberOfTrailsExceeded,
    /// A value broke a rule; `code` is the CloudTrail exception name.
    #[error("{message}")]
    Invalid {
        /// e.g. `InvalidTrailNameException`.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The catalog file could not be read or written.
    #[error("catalog file {path} failed")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The catalog file is damaged.
    #[error("catalog file {path} is damaged")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: serde_json::Error,
    },
}

impl CatalogError {
    /// CloudTrail's exception name for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TrailNotFound(_) => "TrailNotFoundException",
            Self::TrailAlreadyExists(_) => "TrailAlreadyExistsException",
            Self::MaximumNumberOfTrailsExceeded => "MaximumNumberOfTrailsExceededException",
            Self::Invalid { code, .. } => code,
            Self::Io { .. } | Self::Damaged { .. } => "InternalFailure",
        }
    }

    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }
}

pub use cairn_trail::{LoggingPeriod, Trail, TrailSettings, TrailUpdate};

/// Deployment facts the catalog needs.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The account id.
    pub account_id: String,
    /// Home region of trails created here.
    pub region: String,
    /// Organization id, if organization trails are possible.
    pub organization_id: Option<String>,
    /// Whether an S3-compatible store is configured.
    pub s3_configured: bool,
    /// Cairn's data directory: no trail may deliver into it.
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CatalogFile {
    trails: Vec<Trail>,
}

/// The catalog.
#[derive(Debug)]
pub struct Catalog {
    path: PathBuf,
    deployment: Deployment,
    state: Mutex<CatalogFile>,
}

impl Catalog {
    /// Opens the catalog file at `path` (empty if it does not exist).
    pub fn open(path: &Path, deployment: Deployment) -> Result<Self, CatalogError> {
        let state = match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| CatalogError::Damaged {
                    path: path.to_path_buf(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CatalogFile::default(),
            Err(source) => {
                return Err(CatalogError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            deployment,
            state: Mutex::new(state),
        })
    }

    fn persist(&self, state: &CatalogFile) -> Result<(), CatalogError> {
        let bytes = serde_json::to_vec_pretty(state).expect("catalog serializes");
        cairn_durable::file::write(&self.path, &bytes).map_err(|source| CatalogError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Applies `change` to the trail named `name_or_arn` and stores the result durably.
    fn modify<T>(
        &self,
        name_or_arn: &str,
        change: impl FnOnce(&mut Trail) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        let mut state = self.state.lock().expect("catalog lock poisoned");
        let index = find(&state.trails, name_or_arn)?;
        let mut trail = state.trails[index].clone();
        let out = change(&mut trail)?;
        let previous = std::mem::replace(&mut state.trails[index], trail);
        if let Err(e) = self.persist(&state) {
            state.trails[index] = previous;
            return Err(e);
        }
        Ok(out)
    }

    /// Every trail.
    pub fn list(&self) -> Vec<Trail> {
        self.state
            .lock()
            .expect("catalog lock poisoned")
            .trails
            .clone()
    }

    /// One trail, by name or ARN.
    pub fn get(&self, name_or_arn: &str) -> Result<Trail, CatalogError> {
        let state = self.state.lock().expect("catalog lock poisoned");
        Ok(state.trails[find(&state.trails, name_or_arn)?].clone())
    }

    /// Creates a trail (not logging yet, as CloudTrail's `CreateTrail`).
    pub fn create(&self, settings: TrailSettings) -> Result<Trail, CatalogError> {
        validate_trail_name(&settings.name)?;
        let mut trail = Trail::new(
            &uuid::Uuid::new_v4().simple().to_string(),
            &settings.name,
            &self.deployment.account_id,
            &self.deployment.region,
        );
        if settings.local_directory.is_none() && settings.s3_bucket_name.is_none() {
            return Err(CatalogError::invalid(
                "InvalidParameterCombinationException",
                "a trail needs a destination: LocalDirectory or S3BucketName",
            ));
        }
        self.apply(&mut trail, settings)?;
        let mut state = self.state.lock().expect("catalog lock poisoned");
        if state.trails.iter().any(|t| t.name == trail.name) {
            return Err(CatalogError::TrailAlreadyExists(trail.name));
        }
        if state.trails.len() >= MAX_TRAILS {
            return Err(CatalogError::MaximumNumberOfTrailsExceeded);
        }
        state.trails.push(trail.clone());
        if let Err(e) = self.persist(&state) {
            state.trails.pop();
            return Err(e);
        }
        Ok(trail)
    }

    /// Changes the given settings of a trail (`Name` selects it; it cannot be renamed).
    pub fn update(&self, name_or_arn: &str, update: TrailUpdate) -> Result<Trail, CatalogError> {
        self.modify(name_or_arn, |trail| {
            if !update.name.is_empty() && update.name != trail.name && update.name != trail.arn {
                return Err(CatalogError::invalid(
                    "InvalidParameterException",
                    "a trail cannot be renamed",
                ));
            }
            self.apply(trail, update)?;
            Ok(trail.clone())
        })
    }

    fn apply(&self, trail: &mut Trail, settings: TrailSettings) -> Result<(), CatalogError> {
        match (settings.local_directory, settings.s3_bucket_name) {
            (Some(_), Some(_)) => {
                return Err(CatalogError::invalid(
                    "InvalidParameterCombinationException",
                    "give LocalDirectory or S3BucketName, not both",
                ))
            }
            (Some(dir), None) => {
                validate_local_directory(&dir, self.deployment.data_dir.as_deref())?;
                trail.local_directory = Some(dir);
                trail.s3_bucket_name = None;
            }
            (None, Some(bucket)) => {
                validate_bucket_name(&bucket)?;
                if !self.deployment.s3_configured {
                    return Err(CatalogError::invalid(
                        "S3BucketDoesNotExistException",
                        "no S3-compatible store is configured ([s3] in the server configuration); use LocalDirectory",
                    ));
                }
                trail.s3_bucket_name = Some(bucket);
                trail.local_directory = None;
            }
            (None, None) => {}
        }
        if let Some(prefix) = settings.s3_key_prefix {
            validate_prefix(&prefix)?;
            trail.s3_key_prefix = (!prefix.is_empty()).then_some(prefix);
        }
        if let Some(multi) = settings.is_multi_region_trail {
            trail.scope.is_multi_region_trail = multi;
        }
        if let Some(global) = settings.include_global_service_events {
            trail.scope.include_global_service_events = global;
        }
        if trail.scope.is_multi_region_trail && !trail.scope.include_global_service_events {
            return Err(CatalogError::invalid(
                "InvalidParameterCombinationException",
                "a multi-region trail must include global service events",
            ));
        }
        if let Some(validation) = settings.enable_log_file_validation {
            trail.log_file_validation_enabled = validation;
        }
        if let Some(include) = settings.cairn_include_ingested_by {
            trail.cairn_include_ingested_by = include;
        }
        if let Some(organization) = settings.is_organization_trail {
            if organization {
                let Some(org) = &self.deployment.organization_id else {
                    return Err(CatalogError::invalid(
                        "OrganizationsNotInUseException",
                        "organization trails need organization_id in the server configuration",
                    ));
                };
                trail.organization_id = Some(org.clone());
            } else {
                trail.organization_id = None;
            }
            trail.is_organization_trail = organization;
        }
        Ok(())
    }

    /// Deletes a trail, returning it.
    pub fn delete(&self, name_or_arn: &str) -> Result<Trail, CatalogError> {
        let mut state = self.state.lock().expect("catalog lock poisoned");
        let index = find(&state.trails, name_or_arn)?;
        let trail = state.trails.remove(index);
        if let Err(e) = self.persist(&state) {
            state.trails.insert(index, trail);
            return Err(e);
        }
        Ok(trail)
    }

    /// Starts logging events recorded after WAL position `after_seq` (no-op if logging).
    pub fn start_logging(
        &self,
        name_or_arn: &str,
        after_seq: u64,
        now: i64,
    ) -> Result<Trail, CatalogError> {
        self.modify(name_or_arn, |trail| {
            if !trail.is_logging() {
                trail.logging.push(LoggingPeriod {
                    after: after_seq,
                    through: None,
                });
                trail.start_logging_time = Some(now);
            }
            Ok(trail.clone())
        })
    }

    /// Stops logging after WAL position `through_seq` (no-op if not logging).
    pub fn stop_logging(
        &self,
        name_or_arn: &str,
        through_seq: u64,
        now: i64,
    ) -> Result<Trail, CatalogError> {
        self.modify(name_or_arn, |trail| {
            if let Some(period) = trail.logging.last_mut().filter(|p| p.through.is_none()) {
                period.through = Some(through_seq.max(period.after));
                trail.stop_logging_time = Some(now);
            }
            Ok(trail.clone())
        })
    }

    /// Replaces a trail's selectors.
    pub fn put_selectors(
        &self,
        name_or_arn: &str,
        selectors: Selectors,
    ) -> Result<Trail, CatalogError> {
        selectors
            .validate()
            .map_err(|e| CatalogError::invalid("InvalidEventSelectorsException", e.0))?;
        self.modify(name_or_arn, |trail| {
            trail.selectors = selectors;
            Ok(trail.clone())
        })
    }

    /// Records a delivery attempt's outcome.
    pub fn record_delivery(
        &self,
        id: &str,
        now: i64,
        error: Option<String>,
    ) -> Result<(), CatalogError> {
        let name = {
            let state = self.state.lock().expect("catalog lock poisoned");
            match state.trails.iter().find(|t| t.id == id) {
                Some(t) => t.name.clone(),
                None => return Ok(()),
            }
        };
        self.modify(&name, |trail| {
            trail.latest_delivery_attempt_time = Some(now);
            match error {
                None => {
                    trail.latest_delivery_time = Some(now);
                    trail.latest_delivery_error = None;
                }
                Some(e) => trail.latest_delivery_error = Some(e),
            }
            Ok(())
        })
    }
}

impl Catalog {
    /// Records a digest delivery (`error: None`) or a failed attempt in the trail's status.
    pub fn record_digest_delivery(
        &self,
        id: &str,
        now: i64,
        error: Option<String>,
    ) -> Result<(), CatalogError> {
        let name = {
            let state = self.state.lock().expect("catalog lock poisoned");
            match state.trails.iter().find(|t| t.id == id) {
                Some(t) => t.name.clone(),
                None => return Ok(()),
            }
        };
        self.modify(&name, |trail| {
            match error {
                None => {
                    trail.latest_digest_delivery_time = Some(now);
                    trail.latest_digest_delivery_error = None;
                }
                Some(e) => trail.latest_digest_delivery_error = Some(e),
            }
            Ok(())
        })
    }
}

fn find(trails: &[Trail], name_or_arn: &str) -> Result<usize, CatalogError> {
    trails
        .iter()
        .position(|t| t.name == name_or_arn || t.arn == name_or_arn)
        .ok_or_else(|| CatalogError::TrailNotFound(name_or_arn.to_owned()))
}

#[cfg(test)]
mod tests;
