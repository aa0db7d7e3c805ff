//! Identities and authorization: users of one account, their access keys (an `AKIA…` id and a
//! secret), the policies attached to them (built-in ones by name, and inline documents), and the
//! decision for a call ([`policy::evaluate`]).
//!
//! Stored in `<data_dir>/iam.json`, mode 0600, written durably (temporary file, fsync, rename).
//! Secrets must be kept to verify SigV4 signatures (an HMAC needs the key); they are never
//! logged, never listed, and returned only once, when the key is created.

pub mod policy;

use policy::{Decision, Policy};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Why an identity operation failed; each maps to IAM's error of the same name.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// The user does not exist.
    #[error("The user with name {0} cannot be found.")]
    NoSuchEntity(String),
    /// The user exists already.
    #[error("User with name {0} already exists.")]
    EntityAlreadyExists(String),
    /// A name or value is invalid.
    #[error("{0}")]
    ValidationError(String),
    /// A policy document is refused.
    #[error(transparent)]
    MalformedPolicyDocument(#[from] policy::PolicyError),
    /// Too many keys for a user.
    #[error("Cannot exceed quota for AccessKeysPerUser: 2")]
    LimitExceeded,
    /// The user still has access keys or policies (DeleteUser).
    #[error("Cannot delete entity, must {0} first.")]
    DeleteConflict(&'static str),
    /// `iam.json` could not be read or written.
    #[error("identity store {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl IamError {
    /// IAM's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoSuchEntity(_) => "NoSuchEntity",
            Self::EntityAlreadyExists(_) => "EntityAlreadyExists",
            Self::ValidationError(_) => "ValidationError",
            Self::MalformedPolicyDocument(_) => "MalformedPolicyDocument",
            Self::LimitExceeded => "LimitExceeded",
            Self::DeleteConflict(_) => "DeleteConflict",
            Self::Io { .. } => "ServiceFailure",
        }
    }
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Name (IAM's rules: 1–64 of letters, digits, `+=,.@_-`).
    pub name: String,
    /// `AIDA…` id.
    pub user_id: String,
    /// Creation time, epoch ms.
    pub created: i64,
    /// Built-in policies attached, by name.
    pub attached: Vec<String>,
    /// Inline policies: (name, document text).
    pub inline: Vec<(String, String)>,
}

/// An access key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// `AKIA…` id.
    pub id: String,
    /// The secret (40 characters).
    pub secret: String,
    /// Its user.
    pub user: String,
    /// Creation time, epoch ms.
    pub created: i64,
    /// `Active`, or `Inactive`: an inactive key signs nothing (UpdateAccessKey).
    #[serde(default = "active")]
    pub status: String,
}

fn active() -> String {
    "Active".to_owned()
}

pub use cairn_model::principal::Principal;

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    users: Vec<User>,
    keys: Vec<AccessKey>,
}

/// The identity store.
#[derive(Debug)]
pub struct Iam {
    path: PathBuf,
    account_id: String,
    state: RwLock<State>,
}

fn random_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::thread_rng();
    let tail: String = (0..16)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{tail}")
}

fn random_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::thread_rng();
    (0..40)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn user_mut<'a>(state: &'a mut State, name: &str) -> Result<&'a mut User, IamError> {
    state
        .users
        .iter_mut()
        .find(|u| u.name == name)
        .ok_or_else(|| IamError::NoSuchEntity(name.to_owned()))
}

fn validate_user_name(name: &str) -> Result<(), IamError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(IamError::ValidationError(format!(
            "user name {name:?} must be 1-64 characters of letters, digits and +=,.@_-"
        )))
    }
}

impl Iam {
    /// Opens (or creates) the store at `path` for `account_id`.
    pub fn open(path: &Path, account_id: &str) -> Result<Self, IamError> {
        let io = |e: std::io::Error| IamError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let state = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| IamError::Io {
                path: path.to_owned(),
                message: format!("damaged: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io(e)),
        };
        Ok(Self {
            path: path.to_owned(),
            account_id: account_id.to_owned(),
            state: RwLock::new(state),
        })
    }

    fn persist(&self, state: &State) -> Result<(), IamError> {
        let io = |e: std::io::Error| IamError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        };
        cairn_durable::file::write_private(
            &self.path,
            &serde_json::to_vec_pretty(state).expect("state serializes"),
        )
        .map_err(io)?;
        Ok(())
    }

    fn modify<T>(&self, f: impl FnOnce(&mut State) -> Result<T, IamError>) -> Result<T, IamError> {
        let mut state = self.state.write().expect("iam lock poisoned");
        let before = serde_json::to_vec(&*state).expect("state serializes");
        let out = f(&mut state)?;
        if let Err(e) = self.persist(&state) {
            *state = serde_json::from_slice(&before).expect("own serialization");
            return Err(e);
        }
        Ok(out)
    }

    /// The user's ARN.
    pub fn user_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:user/{name}", self.account_id)
    }

    /// Whether there is no user yet (first start).
    pub fn is_empty(&self) -> bool {
        self.state
            .read()
            .expect("iam lock poisoned")
            .users
            .is_empty()
    }

    /// Creates a user.
    pub fn create_user(&self, name: &str, now: i64) -> Result<User, IamError> {
        validate_user_name(name)?;
        self.modify(|state| {
            if state
                .users
                .iter()
                .any(|u| u.name.eq_ignore_ascii_case(name))
            {
                return Err(IamError::EntityAlreadyExists(name.to_owned()));
            }
            let user = User {
                name: name.to_owned(),
                user_id: random_id("AIDA"),
                created: now,
                attached: Vec::new(),
                inline: Vec::new(),
            };
            state.users.push(user.clone());
            Ok(user)
        })
    }

    /// Every user, by name.
    pub fn list_users(&self) -> Vec<User> {
        let mut users = self.state.read().expect("iam lock poisoned").users.clone();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        users
    }

    /// One user.
    pub fn get_user(&self, name: &str) -> Result<User, IamError> {
        self.state
            .read()
            .expect("iam lock poisoned")
            .users
            .iter()
            .find(|u| u.name == name)
            .cloned()
            .ok_or_else(|| IamError::NoSuchEntity(name.to_owned()))
    }

    /// A new access key for `user` (at most two per user); the secret is in the answer only.
    pub fn create_access_key(&self, user: &str, now: i64) -> Result<AccessKey, IamError> {
        self.modify(|state| {
            if !state.users.iter().any(|u| u.name == user) {
                return Err(IamError::NoSuchEntity(user.to_owned()));
            }
            if state.keys.iter().filter(|k| k.user == user).count() >= 2 {
                return Err(IamError::LimitExceeded);
            }
            let key = AccessKey {
                id: random_id("AKIA"),
                secret: random_secret(),
                user: user.to_owned(),
                created: now,
                status: active(),
            };
            state.keys.push(key.clone());
            Ok(key)
        })
    }

    /// Deletes a user's access key.
    pub fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), IamError> {
        self.modify(|state| {
            let before = state.keys.len();
            state.keys.retain(|k| !(k.user == user && k.id == key_id));
            if state.keys.len() == before {
                return Err(IamError::NoSuchEntity(format!(
                    "access key {key_id} of user {user}"
                )));
            }
            Ok(())
        })
    }

    /// The access keys of `user` (ids and creation times; secrets blanked).
    pub fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKey>, IamError> {
        let state = self.state.read().expect("iam lock poisoned");
        if !state.users.iter().any(|u| u.name == user) {
            return Err(IamError::NoSuchEntity(user.to_owned()));
        }
        Ok(state
            .keys
            .iter()
            .filter(|k| k.user == user)
            .map(|k| AccessKey {
                secret: String::new(),
                ..k.clone()
            })
            .collect())
    }

    /// Attaches a built-in policy (`AdministratorAccess`, `CairnWriter`, `CairnReader`,
    /// `CairnAuditor`; an `arn:aws:iam::aws:policy/<name>` ARN also works).
    pub fn attach_policy(&self, user: &str, policy: &str) -> Result<(), IamError> {
        let name = policy.rsplit('/').next().unwrap_or(policy).to_owned();
        if policy::builtin(&name).is_none() {
            return Err(IamError::NoSuchEntity(format!(
                "policy {policy} (built-in policies: {})",
                policy::BUILTIN.join(", ")
            )));
        }
        self.modify(|state| {
            let user = user_mut(state, user)?;
            if !user.attached.contains(&name) {
                user.attached.push(name);
            }
            Ok(())
        })
    }

    /// Adds or replaces an inline policy of `user`.
    pub fn put_user_policy(&self, user: &str, name: &str, document: &str) -> Result<(), IamError> {
        Policy::parse(document)?;
        if name.is_empty() || name.len() > 128 {
            return Err(IamError::ValidationError(
                "policy name must be 1-128 characters".into(),
            ));
        }
        self.modify(|state| {
            let user = user_mut(state, user)?;
            user.inline.retain(|(n, _)| n != name);
            user.inline.push((name.to_owned(), document.to_owned()));
            Ok(())
        })
    }

    /// Sets an access key `Active` or `Inactive` (UpdateAccessKey); an inactive key is refused
    /// from the next request on, as if it did not exist.
    pub fn update_access_key(
        &self,
        user: &str,
        key_id: &str,
        status: &str,
    ) -> Result<(), IamError> {
        if status != "Active" && status != "Inactive" {
            return Err(IamError::ValidationError(format!(
                "Status must be Active or Inactive, got {status:?}"
            )));
        }
        self.modify(|state| {
            let key = state
                .keys
                .iter_mut()
                .find(|k| k.user == user && k.id == key_id)
                .ok_or_else(|| {
                    IamError::NoSuchEntity(format!("access key {key_id} of user {user}"))
                })?;
            key.status = status.to_owned();
            Ok(())
        })
    }

    /// Detaches a built-in policy (name or ARN) from `user` (DetachUserPolicy).
    pub fn detach_policy(&self, user: &str, policy: &str) -> Result<(), IamError> {
        let name = policy.rsplit('/').next().unwrap_or(policy).to_owned();
        self.modify(|state| {
            let user = user_mut(state, user)?;
            let before = user.attached.len();
            user.attached.retain(|p| *p != name);
            if user.attached.len() == before {
                return Err(IamError::NoSuchEntity(format!(
                    "policy {policy} is not attached to user {}",
                    user.name
                )));
            }
            Ok(())
        })
    }

    /// Deletes an inline policy of `user` (DeleteUserPolicy).
    pub fn delete_user_policy(&self, user: &str, name: &str) -> Result<(), IamError> {
        self.modify(|state| {
            let user = user_mut(state, user)?;
            let before = user.inline.len();
            user.inline.retain(|(n, _)| n != name);
            if user.inline.len() == before {
                return Err(IamError::NoSuchEntity(format!(
                    "The user policy with name {name} cannot be found."
                )));
            }
            Ok(())
        })
    }

    /// Deletes a user with no access keys and no policies left (DeleteUser; else
    /// `DeleteConflict`, as IAM answers).
    pub fn delete_user(&self, name: &str) -> Result<(), IamError> {
        self.modify(|state| {
            let user = state
                .users
                .iter()
                .find(|u| u.name == name)
                .ok_or_else(|| IamError::NoSuchEntity(name.to_owned()))?;
            if state.keys.iter().any(|k| k.user == name) {
                return Err(IamError::DeleteConflict("delete access keys"));
            }
            if !user.attached.is_empty() {
                return Err(IamError::DeleteConflict("detach all policies"));
            }
            if !user.inline.is_empty() {
                return Err(IamError::DeleteConflict("delete policies"));
            }
            state.users.retain(|u| u.name != name);
            Ok(())
        })
    }

    /// The secret of an active access key (SigV4 verification).
    pub fn secret_of(&self, key_id: &str) -> Option<String> {
        self.state
            .read()
            .expect("iam lock poisoned")
            .keys
            .iter()
            .find(|k| k.id == key_id && k.status == "Active")
            .map(|k| k.secret.clone())
    }

    /// Who an active access key belongs to.
    pub fn principal_of(&self, key_id: &str) -> Option<Principal> {
        let state = self.state.read().expect("iam lock poisoned");
        let key = state
            .keys
            .iter()
            .find(|k| k.id == key_id && k.status == "Active")?;
        let user = state.users.iter().find(|u| u.name == key.user)?;
        Some(Principal {
            kind: "IAMUser",
            principal_id: user.user_id.clone(),
            arn: self.user_arn(&user.name),
            account_id: self.account_id.clone(),
            access_key_id: key.id.clone(),
            user_name: user.name.clone(),
        })
    }

    /// The decision for `principal` calling `action` on `resource`.
    pub fn authorize(&self, principal: &Principal, action: &str, resource: &str) -> Decision {
        let state = self.state.read().expect("iam lock poisoned");
        let Some(user) = state.users.iter().find(|u| u.name == principal.user_name) else {
            return Decision::ImplicitDeny;
        };
        let policies: Vec<Policy> = user
            .attached
            .iter()
            .filter_map(|n| policy::builtin(n))
            .chain(
                user.inline
                    .iter()
                    .filter_map(|(_, d)| Policy::parse(d).ok()),
            )
            .collect();
        policy::evaluate(&policies, action, resource)
    }
}

#[cfg(test)]
mod tests;
