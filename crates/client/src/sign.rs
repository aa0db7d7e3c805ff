//! Signing the client commands' requests with AWS Signature Version 4.
//!
//! Credentials, first found wins: `CAIRN_ACCESS_KEY_ID` + `CAIRN_SECRET_ACCESS_KEY`; the
//! profile of `~/.cairn/config` ([`crate::profile`]); `AWS_ACCESS_KEY_ID` +
//! `AWS_SECRET_ACCESS_KEY`; the profile `AWS_PROFILE` (default `default`) of
//! `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`); the administrator credential a
//! local server wrote at first start, `$CAIRN_DATA_DIR/admin-credentials` (default
//! `./cairn-data`). Region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the Cairn profile's `region`,
//! else `us-east-1`. Service: `cloudtrail-data` for `PutAuditEvents`, `cloudtrail` otherwise.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// An access key and its secret.
#[derive(Clone)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret.
    pub secret_access_key: String,
    /// Signing region.
    pub region: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn region() -> String {
    env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| {
            crate::profile::current()
                .ok()
                .and_then(|p| p.get("region").cloned())
        })
        .unwrap_or_else(|| "us-east-1".to_owned())
}

/// Reads `profile` from an AWS credentials file (INI).
pub fn from_file(path: &Path, profile: &str) -> anyhow::Result<Option<Credentials>> {
    let Some(section) = crate::profile::ini_section(path, profile)? else {
        return Ok(None);
    };
    match (
        section.get("aws_access_key_id"),
        section.get("aws_secret_access_key"),
    ) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
            region: region(),
        })),
        _ => Ok(None),
    }
}

/// The credentials of the environment (see the module docs).
pub fn resolve() -> anyhow::Result<Credentials> {
    if let (Some(access_key_id), Some(secret_access_key)) =
        (env("CAIRN_ACCESS_KEY_ID"), env("CAIRN_SECRET_ACCESS_KEY"))
    {
        return Ok(Credentials {
            access_key_id,
            secret_access_key,
            region: region(),
        });
    }
    let profile = crate::profile::current()?;
    if let (Some(id), Some(secret)) = (
        profile.get("aws_access_key_id"),
        profile.get("aws_secret_access_key"),
    ) {
        return Ok(Credentials {
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
            region: region(),
        });
    }
    if let (Some(access_key_id), Some(secret_access_key)) =
        (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    {
        return Ok(Credentials {
            access_key_id,
            secret_access_key,
            region: region(),
        });
    }
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
    let shared = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")));
    if let Some(path) = &shared {
        if let Some(found) = from_file(path, &profile)? {
            return Ok(found);
        }
    }
    let data_dir = env("CAIRN_DATA_DIR").unwrap_or_else(|| "./cairn-data".to_owned());
    let admin = Path::new(&data_dir).join("admin-credentials");
    if let Some(found) = from_file(&admin, "default")? {
        return Ok(found);
    }
    bail!(
        "no credentials: set CAIRN_ACCESS_KEY_ID and CAIRN_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), a profile in ~/.cairn/config or in {} (AWS_PROFILE={profile}), or CAIRN_DATA_DIR to a data directory holding admin-credentials",
        shared.map_or_else(|| "~/.aws/credentials".to_owned(), |p| p.display().to_string())
    )
}

/// Signs `request` in place (adds `host`, `x-amz-date`, `authorization`).
pub fn sign(request: &mut reqwest::Request, credentials: &Credentials) -> anyhow::Result<()> {
    let url = request.url().clone();
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => bail!("{url} has no host"),
    };
    let body = match request.body() {
        None => Vec::new(),
        Some(body) => body
            .as_bytes()
            .context("streaming request bodies cannot be signed")?
            .to_vec(),
    };
    let mut headers: Vec<(String, String)> = vec![("host".to_owned(), host.clone())];
    for (name, value) in request.headers() {
        if name.as_str() != "host" {
            headers.push((name.as_str().to_owned(), value.to_str()?.to_owned()));
        }
    }
    let service = if url.path() == "/PutAuditEvents" {
        "cloudtrail-data"
    } else {
        "cloudtrail"
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let body_sha256 = cairn_sigv4::sha256_hex(&body);
    let (amz_date, authorization) = cairn_sigv4::sign(
        &cairn_sigv4::Request {
            method: request.method().as_str(),
            path: url.path(),
            query: url.query().unwrap_or(""),
            headers: &headers,
            body_sha256: &body_sha256,
        },
        &cairn_sigv4::Credentials {
            access_key_id: &credentials.access_key_id,
            secret_access_key: &credentials.secret_access_key,
            region: &credentials.region,
            service,
        },
        now,
    );
    let h = request.headers_mut();
    h.insert(reqwest::header::HOST, host.parse()?);
    h.insert("x-amz-date", amz_date.parse()?);
    h.insert(reqwest::header::AUTHORIZATION, authorization.parse()?);
    Ok(())
}

/// `send()` with a SigV4 signature. (Used by Cairn's own clients only, which need no `Send`
/// bound on the futures.)
#[allow(async_fn_in_trait)]
pub trait SendSigned {
    /// Signs with the environment's credentials and sends.
    async fn send_signed(self) -> anyhow::Result<reqwest::Response>;
    /// Signs with `credentials` and sends.
    async fn send_signed_with(self, credentials: &Credentials)
        -> anyhow::Result<reqwest::Response>;
}

impl SendSigned for reqwest::RequestBuilder {
    async fn send_signed(self) -> anyhow::Result<reqwest::Response> {
        let credentials = resolve()?;
        self.send_signed_with(&credentials).await
    }

    async fn send_signed_with(
        self,
        credentials: &Credentials,
    ) -> anyhow::Result<reqwest::Response> {
        let (client, request) = self.build_split();
        let mut request = request?;
        sign(&mut request, credentials)?;
        Ok(client.execute(request).await?)
    }
}
