//! Where delivered files go: one crate configures every backend (a local directory, the
//! embedded default, or any S3-compatible store) behind `object_store`'s trait, and owns the
//! rules for writing there.
//!
//! * **Create-only.** A delivered object is never overwritten: [`put_create_only`] asks the
//!   store for a create-only write and also checks for an existing object first, so backends
//!   without conditional writes keep the rule too. An object already present with the same bytes
//!   is a successful retry ([`PutOutcome::AlreadyPresent`]); with other bytes, an error.
//! * **No reliance on list order.** [`list`] sorts keys itself.
//! * No `Content-Encoding` is set: HTTP clients must see the stored gzip bytes unchanged.

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Deserialize;
use std::sync::Arc;

/// Settings of the S3-compatible store (the `[s3]` table of the server configuration).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// Signing region. Default `us-east-1`.
    #[serde(default = "default_region")]
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Allow `http://` endpoints. Default false.
    #[serde(default)]
    pub allow_http: bool,
    /// Use virtual-hosted-style URLs (`bucket.host`). Default false: path style, which every
    /// S3-compatible server supports.
    #[serde(default)]
    pub virtual_hosted_style: bool,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

/// A store failure, naming the operation and the key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be configured.
    #[error("configuring the {what} store failed")]
    Config {
        /// Which store.
        what: String,
        /// The failure.
        #[source]
        source: object_store::Error,
    },
    /// A key is not a valid object path.
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    /// Writing an object failed.
    #[error("writing {key} failed")]
    Put {
        /// The key.
        key: String,
        /// The failure.
        #[source]
        source: object_store::Error,
    },
    /// Reading an object failed.
    #[error("reading {key} failed")]
    Get {
        /// The key.
        key: String,
        /// The failure.
        #[source]
        source: object_store::Error,
    },
    /// Listing failed.
    #[error("listing {prefix} failed")]
    List {
        /// The prefix.
        prefix: String,
        /// The failure.
        #[source]
        source: object_store::Error,
    },
    /// The object exists with other content: it is never overwritten.
    #[error("{0} already exists with different content; delivered objects are never overwritten")]
    Conflict(String),
}

/// A local directory (created if missing).
pub fn local(root: &std::path::Path) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let config = |source| StoreError::Config {
        what: format!("local directory {}", root.display()),
        source,
    };
    std::fs::create_dir_all(root).map_err(|e| {
        config(object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        })
    })?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(root).map_err(config)?;
    Ok(Arc::new(store))
}

/// A bucket on the configured S3-compatible store.
pub fn s3(config: &S3Config, bucket: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&config.endpoint)
        .with_region(&config.region)
        .with_bucket_name(bucket)
        .with_access_key_id(&config.access_key_id)
        .with_secret_access_key(&config.secret_access_key)
        .with_allow_http(config.allow_http)
        .with_virtual_hosted_style_request(config.virtual_hosted_style)
        .with_retry(object_store::RetryConfig {
            max_retries: 2,
            retry_timeout: std::time::Duration::from_secs(10),
            ..Default::default()
        })
        .build()
        .map_err(|source| StoreError::Config {
            what: format!("S3 bucket {bucket} at {}", config.endpoint),
            source,
        })?;
    Ok(Arc::new(store))
}

fn path(key: &str) -> Result<Path, StoreError> {
    Path::parse(key).map_err(|_| StoreError::InvalidKey(key.to_owned()))
}

/// The outcome of a create-only write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Written now.
    Created,
    /// Already there with the same bytes (a retried delivery).
    AlreadyPresent,
}

/// Reads an object; `None` if it does not exist.
pub async fn get(store: &dyn ObjectStore, key: &str) -> Result<Option<Bytes>, StoreError> {
    match store.get(&path(key)?).await {
        Ok(result) => Ok(Some(result.bytes().await.map_err(|source| {
            StoreError::Get {
                key: key.to_owned(),
                source,
            }
        })?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(StoreError::Get {
            key: key.to_owned(),
            source,
        }),
    }
}

/// Writes `bytes` at `key` unless an object is there already (see the crate docs).
pub async fn put_create_only(
    store: &dyn ObjectStore,
    key: &str,
    bytes: Bytes,
) -> Result<PutOutcome, StoreError> {
    let same = |existing: Option<Bytes>| match existing {
        Some(existing) if existing == bytes => Ok(PutOutcome::AlreadyPresent),
        Some(_) => Err(StoreError::Conflict(key.to_owned())),
        None => Err(StoreError::Conflict(key.to_owned())),
    };
    if let Some(existing) = get(store, key).await? {
        return same(Some(existing));
    }
    let options = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match store
        .put_opts(&path(key)?, PutPayload::from(bytes.clone()), options)
        .await
    {
        Ok(_) => Ok(PutOutcome::Created),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => same(get(store, key).await?),
        Err(source) => Err(StoreError::Put {
            key: key.to_owned(),
            source,
        }),
    }
}

/// Where an object's user metadata (`x-amz-meta-*`: a digest's `signature`) is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataStyle {
    /// As S3 object metadata (`x-amz-meta-<name>` headers), exactly as AWS stores it.
    ObjectMetadata,
    /// A local directory has no object metadata: a sidecar object `<key>.metadata.json` holds
    /// a JSON object of the same names and values (`{"signature":"…","signature-algorithm":…}`,
    /// boto3's `Metadata` shape). Written before the object, so an object never lacks it.
    Sidecar,
}

/// The suffix of a metadata sidecar object ([`MetadataStyle::Sidecar`]).
pub const SIDECAR_SUFFIX: &str = ".metadata.json";

/// User metadata of an object, by name (without `x-amz-meta-`).
pub type Metadata = std::collections::BTreeMap<String, String>;

/// [`put_create_only`] with user metadata, kept as `style` says. Retrying with the same bytes
/// and metadata succeeds.
pub async fn put_create_only_with_metadata(
    store: &dyn ObjectStore,
    key: &str,
    bytes: Bytes,
    metadata: &Metadata,
    style: MetadataStyle,
) -> Result<PutOutcome, StoreError> {
    match style {
        MetadataStyle::Sidecar => {
            let sidecar = serde_json::to_vec(metadata).expect("string map serializes");
            put_create_only(
                store,
                &format!("{key}{SIDECAR_SUFFIX}"),
                Bytes::from(sidecar),
            )
            .await?;
            put_create_only(store, key, bytes).await
        }
        MetadataStyle::ObjectMetadata => {
            if let Some(existing) = get(store, key).await? {
                return if existing == bytes {
                    Ok(PutOutcome::AlreadyPresent)
                } else {
                    Err(StoreError::Conflict(key.to_owned()))
                };
            }
            let mut attributes = object_store::Attributes::new();
            for (name, value) in metadata {
                attributes.insert(
                    object_store::Attribute::Metadata(name.clone().into()),
                    value.clone().into(),
                );
            }
            let options = PutOptions {
                mode: PutMode::Create,
                attributes,
                ..PutOptions::default()
            };
            match store
                .put_opts(&path(key)?, PutPayload::from(bytes.clone()), options)
                .await
            {
                Ok(_) => Ok(PutOutcome::Created),
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => match get(store, key).await? {
                    Some(existing) if existing == bytes => Ok(PutOutcome::AlreadyPresent),
                    _ => Err(StoreError::Conflict(key.to_owned())),
                },
                Err(source) => Err(StoreError::Put {
                    key: key.to_owned(),
                    source,
                }),
            }
        }
    }
}

/// Reads an object and its user metadata; `None` if the object does not exist. A missing
/// sidecar reads as no metadata.
pub async fn get_with_metadata(
    store: &dyn ObjectStore,
    key: &str,
    style: MetadataStyle,
) -> Result<Option<(Bytes, Metadata)>, StoreError> {
    let get_error = |source| StoreError::Get {
        key: key.to_owned(),
        source,
    };
    match style {
        MetadataStyle::Sidecar => {
            let Some(bytes) = get(store, key).await? else {
                return Ok(None);
            };
            let metadata = match get(store, &format!("{key}{SIDECAR_SUFFIX}")).await? {
                Some(sidecar) => serde_json::from_slice(&sidecar).unwrap_or_default(),
                None => Metadata::new(),
            };
            Ok(Some((bytes, metadata)))
        }
        MetadataStyle::ObjectMetadata => match store.get(&path(key)?).await {
            Ok(result) => {
                let metadata = result
                    .attributes
                    .iter()
                    .filter_map(|(attribute, value)| match attribute {
                        object_store::Attribute::Metadata(name) => {
                            Some((name.to_string(), value.to_string()))
                        }
                        _ => None,
                    })
                    .collect();
                let bytes = result.bytes().await.map_err(get_error)?;
                Ok(Some((bytes, metadata)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(get_error(source)),
        },
    }
}

/// Every key under `prefix`, sorted.
pub async fn list(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<String>, StoreError> {
    use futures_util::TryStreamExt;
    let prefix_path = if prefix.is_empty() {
        None
    } else {
        Some(path(prefix)?)
    };
    let mut keys: Vec<String> = store
        .list(prefix_path.as_ref())
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .map_err(|source| StoreError::List {
            prefix: prefix.to_owned(),
            source,
        })?;
    keys.sort();
    Ok(keys)
}

/// The names of the "directories" directly under `prefix` (common prefixes up to the next
/// `/`), sorted.
pub async fn children(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<String>, StoreError> {
    let prefix_path = if prefix.is_empty() {
        None
    } else {
        Some(path(prefix)?)
    };
    let listing = store
        .list_with_delimiter(prefix_path.as_ref())
        .await
        .map_err(|source| StoreError::List {
            prefix: prefix.to_owned(),
            source,
        })?;
    let mut names: Vec<String> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

/// The contract every backend must keep, run by each backend's tests.
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// Runs the store contract on `store`, whose metadata is kept as `style` says.
    pub async fn contract(store: &dyn ObjectStore, style: MetadataStyle) {
        metadata_contract(store, style).await;
        let key = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/02/11/111122223333_CloudTrail_us-east-1_20260211T0835Z_AAAAAAAAAAAAAAAA.json.gz";
        assert_eq!(get(store, key).await.expect("get"), None);
        let bytes = Bytes::from_static(b"\x1f\x8b one gzip member");
        assert_eq!(
            put_create_only(store, key, bytes.clone())
                .await
                .expect("put"),
            PutOutcome::Created
        );
        assert_eq!(
            get(store, key).await.expect("get"),
            Some(bytes.clone()),
            "raw bytes back"
        );
        assert_eq!(
            put_create_only(store, key, bytes.clone())
                .await
                .expect("retry"),
            PutOutcome::AlreadyPresent
        );
        let other = Bytes::from_static(b"other");
        assert!(matches!(
            put_create_only(store, key, other).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            get(store, key).await.expect("get"),
            Some(bytes),
            "never overwritten"
        );
        let second = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/02/10/x.json.gz";
        put_create_only(store, second, Bytes::from_static(b"2"))
            .await
            .expect("put");
        put_create_only(store, "elsewhere/y", Bytes::from_static(b"3"))
            .await
            .expect("put");
        assert_eq!(
            list(store, "AWSLogs/111122223333").await.expect("list"),
            vec![second.to_owned(), key.to_owned()]
        );
    }

    async fn metadata_contract(store: &dyn ObjectStore, style: MetadataStyle) {
        let key = "meta/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/02/11/d.json.gz";
        let metadata: Metadata = [
            ("signature".to_owned(), "ab01".to_owned()),
            ("signature-algorithm".to_owned(), "SHA256withRSA".to_owned()),
        ]
        .into();
        let bytes = Bytes::from_static(b"digest");
        assert_eq!(
            get_with_metadata(store, key, style).await.expect("get"),
            None
        );
        assert_eq!(
            put_create_only_with_metadata(store, key, bytes.clone(), &metadata, style)
                .await
                .expect("put"),
            PutOutcome::Created
        );
        assert_eq!(
            put_create_only_with_metadata(store, key, bytes.clone(), &metadata, style)
                .await
                .expect("retry"),
            PutOutcome::AlreadyPresent
        );
        assert_eq!(
            get_with_metadata(store, key, style).await.expect("get"),
            Some((bytes, metadata)),
            "bytes and metadata back"
        );
        assert!(matches!(
            put_create_only_with_metadata(
                store,
                key,
                Bytes::from_static(b"x"),
                &Metadata::new(),
                style
            )
            .await,
            Err(StoreError::Conflict(_))
        ));
    }
}

#[cfg(test)]
mod tests;

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one
/// ([`cairn_durable::file::write`]).
pub fn write_durable(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    cairn_durable::file::write(path, bytes)
}
