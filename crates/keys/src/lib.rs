//! Digest signing keys (spec §3.7–3.8): one RSA-2048 key per region, generated at first use,
//! kept in the data directory with 0600 permissions, rotated with validity windows, and
//! published the way `ListPublicKeys` publishes them.
//!
//! Layout under the key directory:
//! * `ring.json` — every key ever used: region, fingerprint, public key (base64 PKCS#1 DER),
//!   validity start and (once rotated out) end, and whether it was generated or supplied by
//!   the operator. Written durably (temporary file, fsync, rename).
//! * `<region>/<fingerprint>.pem` — the private key, PKCS#1 PEM, mode 0600, written before the
//!   ring names it.
//!
//! A region has at most one *current* key (no validity end). Rotation ends the current key's
//! validity now and starts a new key's; old keys stay listed so older digests still validate.
//! Private keys are never logged; only fingerprints are.

use cairn_digest::{PublicKey, SigningKey};
use cairn_model::Clock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key directory failed.
    #[error("key store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A key could not be generated or read.
    #[error(transparent)]
    Key(#[from] cairn_digest::SigningError),
    /// `ring.json` is damaged.
    #[error("key ring {path} is not readable: {message}")]
    Ring {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A region name that cannot be a directory name.
    #[error("invalid region {0:?}")]
    InvalidRegion(String),
    /// The operator's key is not a 2048-bit RSA key.
    #[error("the signing key must be RSA-2048 (PKCS#1 PEM); this one has {0} bits")]
    WrongSize(usize),
}

pub use cairn_model::signing_key::{KeyInfo, KeySource};

#[derive(Debug, Default, Serialize, Deserialize)]
struct RingFile {
    keys: Vec<KeyInfo>,
}

/// The key ring of a data directory.
pub struct KeyRing {
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    ring: Mutex<RingFile>,
    loaded: Mutex<HashMap<String, SigningKey>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

fn valid_region(region: &str) -> Result<(), KeyError> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(KeyError::InvalidRegion(region.to_owned()))
    }
}

/// Writes `bytes` durably at `path` with `mode` (temporary file, fsync, rename, dir fsync).
/// Writes a key or the ring durably, readable by the owner only.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    cairn_durable::file::write_private(path, bytes).map_err(io(path))
}

impl KeyRing {
    /// Opens (or creates) the key ring in `dir`.
    pub fn open(dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, KeyError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io(dir))?;
        }
        let path = dir.join("ring.json");
        let ring = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| KeyError::Ring {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RingFile::default(),
            Err(e) => return Err(io(&path)(e)),
        };
        Ok(Self {
            dir: dir.to_owned(),
            clock,
            ring: Mutex::new(ring),
            loaded: Mutex::new(HashMap::new()),
        })
    }

    fn pem_path(&self, region: &str, fingerprint: &str) -> PathBuf {
        self.dir.join(region).join(format!("{fingerprint}.pem"))
    }

    fn save(&self, ring: &RingFile) -> Result<(), KeyError> {
        let bytes = serde_json::to_vec_pretty(ring).expect("ring serializes");
        write_durably(&self.dir.join("ring.json"), &bytes)
    }

    fn load(&self, region: &str, fingerprint: &str) -> Result<SigningKey, KeyError> {
        if let Some(key) = self
            .loaded
            .lock()
            .expect("key cache poisoned")
            .get(fingerprint)
        {
            return Ok(key.clone());
        }
        let path = self.pem_path(region, fingerprint);
        let pem = std::fs::read_to_string(&path).map_err(io(&path))?;
        let key = SigningKey::from_pem(&pem)?;
        self.loaded
            .lock()
            .expect("key cache poisoned")
            .insert(fingerprint.to_owned(), key.clone());
        Ok(key)
    }

    /// Makes `key` the region's current key: stores it (0600), ends the previous key's validity.
    fn install(
        &self,
        ring: &mut RingFile,
        region: &str,
        key: SigningKey,
        source: KeySource,
    ) -> Result<KeyInfo, KeyError> {
        let public = key.public_key();
        let fingerprint = public.fingerprint();
        write_durably(
            &self.pem_path(region, &fingerprint),
            key.to_pem()?.as_bytes(),
        )?;
        let now = self.clock.now_millis();
        for old in ring
            .keys
            .iter_mut()
            .filter(|k| k.region == region && k.valid_until.is_none())
        {
            old.valid_until = Some(now);
        }
        let info = KeyInfo {
            region: region.to_owned(),
            fingerprint: fingerprint.clone(),
            public_key: public.to_base64(),
            valid_from: now,
            valid_until: None,
            source,
        };
        ring.keys.push(info.clone());
        self.save(ring)?;
        self.loaded
            .lock()
            .expect("key cache poisoned")
            .insert(fingerprint.clone(), key);
        tracing::info!(region, fingerprint, ?source, "new digest signing key");
        Ok(info)
    }

    /// The region's current signing key, generated (and stored) at first use.
    pub fn signing_key(&self, region: &str) -> Result<SigningKey, KeyError> {
        valid_region(region)?;
        let mut ring = self.ring.lock().expect("key ring poisoned");
        let current = ring
            .keys
            .iter()
            .find(|k| k.region == region && k.valid_until.is_none())
            .map(|k| k.fingerprint.clone());
        match current {
            Some(fingerprint) => self.load(region, &fingerprint),
            None => {
                let key = SigningKey::generate()?;
                self.install(&mut ring, region, key.clone(), KeySource::Generated)?;
                Ok(key)
            }
        }
    }

    /// Replaces the region's current key with a fresh one.
    pub fn rotate(&self, region: &str) -> Result<KeyInfo, KeyError> {
        valid_region(region)?;
        let key = SigningKey::generate()?;
        let mut ring = self.ring.lock().expect("key ring poisoned");
        self.install(&mut ring, region, key, KeySource::Generated)
    }

    /// Makes an operator's PKCS#1 PEM key the region's current key, unless it already is.
    pub fn adopt(&self, region: &str, pem: &str) -> Result<KeyInfo, KeyError> {
        valid_region(region)?;
        let key = SigningKey::from_pem(pem)?;
        if key.bits() != 2048 {
            return Err(KeyError::WrongSize(key.bits()));
        }
        let fingerprint = key.public_key().fingerprint();
        let mut ring = self.ring.lock().expect("key ring poisoned");
        if let Some(current) = ring
            .keys
            .iter()
            .find(|k| k.region == region && k.valid_until.is_none() && k.fingerprint == fingerprint)
        {
            return Ok(current.clone());
        }
        self.install(&mut ring, region, key, KeySource::Operator)
    }

    /// Keys whose validity overlaps `[start, end]` (epoch ms), of `region` or of every region,
    /// oldest first (`ListPublicKeys`).
    pub fn list(&self, region: Option<&str>, start: i64, end: i64) -> Vec<KeyInfo> {
        self.ring
            .lock()
            .expect("key ring poisoned")
            .keys
            .iter()
            .filter(|k| region.is_none_or(|r| r == k.region) && k.overlaps(start, end))
            .cloned()
            .collect()
    }

    /// Every public key of the ring by fingerprint (for validating on the server's machine).
    pub fn public_keys(&self) -> HashMap<String, PublicKey> {
        self.ring
            .lock()
            .expect("key ring poisoned")
            .keys
            .iter()
            .filter_map(|k| {
                PublicKey::from_base64(&k.public_key)
                    .ok()
                    .map(|p| (k.fingerprint.clone(), p))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
