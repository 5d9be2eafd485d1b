//! [`Client`]: one repository on one registry, with its auth, TLS and scheme.
//!
//! This file holds the client and its constructor; what it does is split by
//! resource: [`super::auth`] (ping, token, authorized requests),
//! [`super::manifests`], [`super::blobs`] and [`super::tags`].

use std::sync::Arc;
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding};

use super::error::{Error, Result};
use super::repository::Repository;
use super::session::Session;
use crate::secret::Secret;

/// What the client will do; decides the token scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `repository:<path>:pull`
    Pull,
    /// `repository:<path>:pull,push`
    Push,
}

/// Registry credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials (tokens are still fetched anonymously).
    #[default]
    Anonymous,
    /// User name and password, sent to a Basic challenge or the token realm.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
}

impl Credentials {
    /// Basic credentials when both parts are present, else anonymous.
    pub fn from_parts(username: Option<&str>, password: Option<&Secret>) -> Credentials {
        match (username, password) {
            (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Credentials::Basic {
                username: u.to_owned(),
                password: p.clone(),
            },
            _ => Credentials::Anonymous,
        }
    }
}

/// TLS, scheme and timeout options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Extra trusted CA certificates (PEM), added to the system roots.
    pub ca_certs: Vec<String>,
    /// Allow plain HTTP to this registry when HTTPS fails. Never disables
    /// certificate verification.
    pub insecure: bool,
    /// Longest wait for the next bytes of a response (its head or any part
    /// of its body) before the request fails as transient and is retried;
    /// `None` is [`DEFAULT_READ_TIMEOUT`].
    pub read_timeout: Option<Duration>,
}

impl TlsOptions {
    /// The idle-read timeout in effect.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT)
    }
}

/// Default idle-read timeout (`source.registry_timeout`). It bounds silence,
/// not the length of a download: a healthy registry sends blob bytes
/// continuously, but one that builds a response first (a pull-through
/// mirror fetching upstream on a miss, a registry computing a large tag
/// list) may be silent for tens of seconds before its first byte, so the
/// default leaves room for that; and a registry that stalls mid-blob costs
/// a minute per attempt before the retry resumes, instead of hanging
/// forever.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository a [`Client`] talks to (registry host, path, given text).
pub type RepositoryRef = Repository;

/// Page size for tag listing; registry-image asks for 1000.
const TAG_PAGE: usize = 1000;

/// One repository on one registry.
pub struct Client {
    pub(super) repo: Repository,
    pub(super) credentials: Credentials,
    pub(super) tls: TlsOptions,
    pub(super) access: Access,
    pub(super) http: reqwest::Client,
    /// `http` without the idle-read timeout, for streamed uploads: reqwest
    /// starts that timer when the request starts and does not reset it
    /// while the body is sent, so a long upload would time out while busy.
    /// [`super::blobs`] watches upload progress itself instead.
    pub(super) upload_http: reqwest::Client,
    /// The extra CA certificates again, for oci-client's handshake.
    pub(super) certs: Vec<Certificate>,
    /// Set by the first request ([`super::auth`]).
    pub(super) session: tokio::sync::Mutex<Option<Arc<Session>>>,
    pub(super) tag_page: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("repository", &self.repo.qualified())
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Client for `repo`. No network traffic until the first request.
    pub fn new(
        repo: &RepositoryRef,
        auth: Credentials,
        tls: &TlsOptions,
        access: Access,
    ) -> Result<Client> {
        crate::tls::install_crypto_provider();
        let setup = |source: Box<dyn std::error::Error + Send + Sync>| Error::Setup {
            registry: repo.registry.clone(),
            source,
        };
        let mut certs = Vec::new();
        let mut roots = Vec::new();
        for pem in &tls.ca_certs {
            roots.extend(
                reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                    .map_err(|e| setup(Box::new(e)))?,
            );
            certs.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.as_bytes().to_vec(),
            });
        }
        let builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("oci-build-resource/", env!("CARGO_PKG_VERSION")))
                .tls_certs_merge(roots.clone())
                // Redirects to blob storage are followed; reqwest drops the
                // Authorization header when the host changes.
                .redirect(reqwest::redirect::Policy::limited(10))
                .connect_timeout(Duration::from_secs(30))
        };
        let http = builder()
            // Idle time before the response head and between body reads,
            // reset by every chunk: a stalled registry fails the request (a
            // transient error) instead of hanging the step.
            .read_timeout(tls.read_timeout())
            .build()
            .map_err(|e| setup(Box::new(e)))?;
        let upload_http = builder().build().map_err(|e| setup(Box::new(e)))?;
        Ok(Client {
            repo: repo.clone(),
            credentials: auth,
            tls: tls.clone(),
            access,
            http,
            upload_http,
            certs,
            session: tokio::sync::Mutex::new(None),
            tag_page: TAG_PAGE,
        })
    }

    /// The repository this client talks to.
    pub fn repository(&self) -> &RepositoryRef {
        &self.repo
    }

    /// Test hook: smaller tag-list pages to exercise `Link` pagination.
    #[cfg(test)]
    pub(crate) fn with_tag_page(mut self, n: usize) -> Client {
        self.tag_page = n;
        self
    }
}

/// Most bytes of a manifest (or index) read into memory; the OCI
/// distribution spec suggests registries accept at least 4 MiB.
pub(super) const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Most bytes of a small blob (an image config) read into memory.
pub(super) const MAX_CONFIG_BYTES: usize = 64 << 20;
/// Most bytes of one page of a tag list.
pub(super) const MAX_TAG_PAGE_BYTES: usize = 4 << 20;

/// Reads a response body into memory, refusing one of more than `limit`
/// bytes: an endless or huge body from a hostile registry must not grow
/// memory without bound. `what` names the body.
pub(super) async fn read_limited(
    mut resp: reqwest::Response,
    request: &str,
    what: &str,
    limit: usize,
) -> Result<bytes::Bytes> {
    let too_large = || Error::Protocol {
        request: request.to_owned(),
        detail: format!("the {what} is larger than {limit} bytes; refusing it"),
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|source| Error::Transport {
        request: request.to_owned(),
        source,
    })? {
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
