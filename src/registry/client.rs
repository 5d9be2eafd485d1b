//! [`Client`]: one repository on one registry, with its auth, TLS and scheme.
//!
//! The token handshake (ping `/v2/`, parse the `WWW-Authenticate` challenge,
//! call the token realm with Basic credentials) is oci-client's
//! `Client::auth`. Everything else is done here on reqwest, because
//! oci-client 0.18 falls short of what registry-image (ggcr) does and what
//! Concourse users rely on:
//! - digests by HEAD with ggcr's fallback rules (its `fetch_manifest_digest`
//!   only falls back to GET when the digest header is missing, and hides 404);
//! - `Link`-header pagination of tag lists (it only takes `n`/`last`);
//! - the manifest media type (its raw pull drops `Content-Type`);
//! - blob streams verified for size *and* digest with an error at EOF;
//! - HTTPS-then-HTTP per host for `insecure` and loopback/RFC1918 registries
//!   (its `ClientProtocol` is fixed up front; we pick it from the ping).

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncRead;
use tracing::{debug, warn};

use super::blob::BlobReader;
use super::error::{Error, Result};
use crate::config::{Repository, Secret, Source};

/// Read size for streamed blob uploads.
const UPLOAD_CHUNK: usize = 256 * 1024;

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

/// TLS and scheme options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Extra trusted CA certificates (PEM), added to the system roots.
    pub ca_certs: Vec<String>,
    /// Allow plain HTTP to this registry when HTTPS fails. Never disables
    /// certificate verification.
    pub insecure: bool,
}

/// The repository a [`Client`] talks to (registry host, path, given text).
pub type RepositoryRef = Repository;

/// A fetched manifest, exactly as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The exact bytes (their sha256 is the digest).
    pub bytes: Bytes,
    /// `Content-Type` (parameters stripped), else the body's `mediaType`,
    /// else empty.
    pub media_type: String,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
}

/// Media types accepted for manifests, as ggcr sends them.
pub const MANIFEST_ACCEPT: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
];

/// Docker schema 1 manifest media types (signed and unsigned).
const SCHEMA1_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// Whether a manifest is Docker schema 1, by its `Content-Type` or, when the
/// registry sent a generic one, by its `schemaVersion`.
fn is_schema1(content_type: &str, bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Version {
        #[serde(default, rename = "schemaVersion")]
        schema_version: Option<u64>,
    }
    SCHEMA1_TYPES.contains(&content_type)
        || serde_json::from_slice::<Version>(bytes).is_ok_and(|v| v.schema_version == Some(1))
}

/// Page size for tag listing; registry-image asks for 1000.
const TAG_PAGE: usize = 1000;

/// The per-run state decided by the ping: scheme and authorization.
struct Session {
    /// `https://host` or `http://host`.
    origin: String,
    /// `Authorization` header value (marked sensitive), if any.
    authorization: Option<HeaderValue>,
}

/// One repository on one registry.
pub struct Client {
    repo: Repository,
    credentials: Credentials,
    tls: TlsOptions,
    access: Access,
    http: reqwest::Client,
    certs: Vec<Certificate>,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    tag_page: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("repository", &self.repo.qualified())
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

/// Hosts for which ggcr allows plain HTTP without `insecure`: `localhost`,
/// `*.localhost`, loopback and RFC1918 addresses (any port).
pub fn implicitly_insecure(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private(),
        Ok(IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => false,
    }
}

/// Whether `digest` is `sha256:` plus 64 lower-case hex digits.
pub fn is_valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn valid_digest(digest: &str) -> Result<()> {
    if is_valid_digest(digest) {
        Ok(())
    } else {
        Err(Error::InvalidDigest(digest.to_owned()))
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn is_digest(reference: &str) -> bool {
    reference.contains(':')
}

/// Reads the registry's error body into (codes, message) for the error text.
fn error_detail(body: &[u8]) -> (Vec<String>, String) {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body)
        && !env.errors.is_empty()
    {
        let codes = env.errors.iter().map(|e| e.code.clone()).collect();
        let text = env
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        return (codes, text);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let text: String = text.chars().take(300).collect();
    (Vec::new(), text)
}

impl Client {
    /// Client for the origin repository of `source`.
    pub fn for_source(source: &Source, access: Access) -> Result<Client> {
        Client::new(
            &source.repository,
            Credentials::from_parts(source.username.as_deref(), source.password.as_ref()),
            &TlsOptions {
                ca_certs: source.ca_certs.clone(),
                insecure: source.insecure,
            },
            access,
        )
    }

    /// Client for the mirror of a Docker Hub repository, with the mirror's
    /// own credentials; `None` when no mirror applies.
    pub fn for_mirror(source: &Source) -> Result<Option<Client>> {
        let Some((repo, mirror)) = source.mirror_repository() else {
            return Ok(None);
        };
        Client::new(
            &repo,
            Credentials::from_parts(mirror.username.as_deref(), mirror.password.as_ref()),
            &TlsOptions {
                ca_certs: source.ca_certs.clone(),
                insecure: source.insecure,
            },
            Access::Pull,
        )
        .map(Some)
    }

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
        let http = reqwest::Client::builder()
            .user_agent(concat!("oci-build-resource/", env!("CARGO_PKG_VERSION")))
            .tls_certs_merge(roots)
            // Redirects to blob storage are followed; reqwest drops the
            // Authorization header when the host changes.
            .redirect(reqwest::redirect::Policy::limited(10))
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| setup(Box::new(e)))?;
        Ok(Client {
            repo: repo.clone(),
            credentials: auth,
            tls: tls.clone(),
            access,
            http,
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

    fn oci_auth(&self) -> RegistryAuth {
        match &self.credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.expose().to_owned())
            }
        }
    }

    /// Pings the registry and authenticates once per client (= per attempt
    /// of a retried operation, like ggcr's per-attempt transport).
    async fn session(&self) -> Result<Arc<Session>> {
        let mut current = self.session.lock().await;
        if let Some(session) = &*current {
            return Ok(session.clone());
        }
        let session = Arc::new(self.open_session().await?);
        *current = Some(session.clone());
        Ok(session)
    }

    /// Replaces `stale` (whose token the registry just refused, e.g. expired
    /// during a long pull) with a fresh session, once per stale session.
    async fn refresh(&self, stale: &Arc<Session>) -> Result<Arc<Session>> {
        let mut current = self.session.lock().await;
        if let Some(session) = &*current
            && !Arc::ptr_eq(session, stale)
        {
            return Ok(session.clone());
        }
        debug!(registry = %self.repo.api_host(), "token refused, authenticating again");
        let session = Arc::new(self.open_session().await?);
        *current = Some(session.clone());
        Ok(session)
    }

    async fn open_session(&self) -> Result<Session> {
        let host = self.repo.api_host().to_owned();
        let http_allowed = self.tls.insecure || implicitly_insecure(&host);
        let (op, scope) = match self.access {
            Access::Pull => (RegistryOperation::Pull, "pull"),
            Access::Push => (RegistryOperation::Push, "push,pull"),
        };
        let reference = Reference::with_tag(host.clone(), self.repo.path.clone(), "latest".into());
        let auth = self.oci_auth();
        let mut protocols = vec![("https", ClientProtocol::Https)];
        if http_allowed {
            protocols.push(("http", ClientProtocol::Http));
        }
        let mut last = None;
        for (scheme, protocol) in protocols {
            let config = ClientConfig {
                protocol,
                extra_root_certificates: self.certs.clone(),
                // An https probe of a plain-HTTP server that never answers
                // the ClientHello must not hang the run (ggcr races http
                // after 300 ms); this client only pings and fetches tokens.
                read_timeout: http_allowed.then_some(std::time::Duration::from_secs(10)),
                // Go's default dial timeout, as registry-image has.
                connect_timeout: Some(std::time::Duration::from_secs(30)),
                ..Default::default()
            };
            let oci = oci_client::Client::try_from(config).map_err(|e| Error::Setup {
                registry: host.clone(),
                source: Box::new(e),
            })?;
            match oci.auth(&reference, &auth, op).await {
                Ok(token) => {
                    debug!(registry = %host, scheme, "registry session established");
                    let authorization = match (token, &self.credentials) {
                        (Some(token), _) => Some(format!("Bearer {token}")),
                        (None, Credentials::Basic { username, password }) => {
                            use base64::Engine as _;
                            let raw = format!("{username}:{}", password.expose());
                            Some(format!(
                                "Basic {}",
                                base64::engine::general_purpose::STANDARD.encode(raw)
                            ))
                        }
                        (None, Credentials::Anonymous) => None,
                    };
                    let authorization = authorization
                        .map(|v| {
                            HeaderValue::from_str(&v).map(|mut v| {
                                v.set_sensitive(true);
                                v
                            })
                        })
                        .transpose()
                        .map_err(|_| Error::Protocol {
                            request: format!("GET {scheme}://{host}/v2/"),
                            detail: "credentials or token are not a valid header value".into(),
                        })?;
                    return Ok(Session {
                        origin: format!("{scheme}://{host}"),
                        authorization,
                    });
                }
                // A transport failure over HTTPS may mean a plain-HTTP
                // registry: try the next scheme if allowed. A certificate
                // that does not verify is final: falling back would hide the
                // real problem behind a 400 from the TLS port, and we never
                // skip verification. An answer that failed (token realm
                // refused us) is final too.
                Err(oci_client::errors::OciDistributionError::RequestError(e))
                    if scheme == "https" && http_allowed && !is_certificate_error(&e) =>
                {
                    debug!(
                        registry = %host,
                        error = %crate::error::chain(&e),
                        "https ping failed, trying plain http"
                    );
                    last = Some(oci_client::errors::OciDistributionError::RequestError(e));
                }
                Err(oci_client::errors::OciDistributionError::RequestError(e)) => {
                    return Err(Error::Ping {
                        registry: host,
                        source: oci_client::errors::OciDistributionError::RequestError(e),
                    });
                }
                Err(source) => {
                    return Err(Error::Auth {
                        registry: host,
                        scope: format!("repository:{}:{scope}", self.repo.path),
                        source,
                    });
                }
            }
        }
        Err(Error::Ping {
            registry: host,
            source: last.unwrap_or(oci_client::errors::OciDistributionError::GenericError(None)),
        })
    }

    /// URL of `/v2/<path>/<suffix>` for this session.
    fn url(&self, session: &Session, suffix: &str) -> String {
        format!("{}/v2/{}/{suffix}", session.origin, self.repo.path)
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<reqwest::Body>,
    ) -> Result<reqwest::Response> {
        let session = self.session().await?;
        // Bearer tokens expire (Docker Hub: 5 minutes); a request refused
        // with 401 is sent again once with a fresh token, as ggcr's bearer
        // transport does, when its body can be replayed.
        let replay = match &body {
            None => Some(None),
            Some(b) => b.as_bytes().map(|b| Some(Bytes::copy_from_slice(b))),
        };
        let resp = self
            .send_once(&method, url, &headers, body, &session)
            .await?;
        let bearer = session
            .authorization
            .as_ref()
            .is_some_and(|v| v.as_bytes().starts_with(b"Bearer "));
        match replay {
            Some(body) if bearer && resp.status() == StatusCode::UNAUTHORIZED => {
                let session = self.refresh(&session).await?;
                self.send_once(
                    &method,
                    url,
                    &headers,
                    body.map(reqwest::Body::from),
                    &session,
                )
                .await
            }
            _ => Ok(resp),
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        headers: &HeaderMap,
        body: Option<reqwest::Body>,
        session: &Session,
    ) -> Result<reqwest::Response> {
        let mut req = self
            .http
            .request(method.clone(), url)
            .headers(headers.clone());
        // Credentials go only to the registry itself, never to another host
        // a Location header points at (ggcr's transport does the same).
        if let Some(auth) = &session.authorization
            && same_origin(url, &session.origin)
        {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        debug!(%method, %url, "registry request");
        req.send().await.map_err(|source| Error::Transport {
            request: format!("{method} {url}"),
            source,
        })
    }

    async fn status_error(method: &Method, url: &str, resp: reqwest::Response) -> Error {
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        let (codes, body) = error_detail(&body);
        Error::Status {
            request: format!("{method} {url}"),
            status,
            codes,
            body,
        }
    }

    fn manifest_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_str(&MANIFEST_ACCEPT.join(", ")).expect("constant header value"),
        );
        h
    }

    /// Digest of `manifests/<reference>`, ggcr's "headOrGet": HEAD, and use
    /// its `Docker-Content-Digest` if it also has Content-Type and
    /// Content-Length; HEAD 404 is "not found"; any other HEAD outcome falls
    /// back to GET, whose body is hashed. `None` when not found.
    async fn head_or_get(&self, reference: &str) -> Result<Option<String>> {
        let session = self.session().await?;
        let url = self.url(&session, &format!("manifests/{reference}"));
        match self
            .send(Method::HEAD, &url, Self::manifest_headers(), None)
            .await
        {
            Ok(resp) if resp.status() == StatusCode::NOT_FOUND => return Ok(None),
            Ok(resp) if resp.status().is_success() => {
                let h = resp.headers();
                if h.contains_key(header::CONTENT_TYPE)
                    && h.contains_key(header::CONTENT_LENGTH)
                    && let Some(d) = h.get("docker-content-digest").and_then(|v| v.to_str().ok())
                    && valid_digest(d).is_ok()
                {
                    return Ok(Some(d.to_owned()));
                }
            }
            Ok(resp) => debug!(status = %resp.status(), %url, "HEAD failed, trying GET"),
            Err(e) => debug!(error = %e, "HEAD failed, trying GET"),
        }
        let resp = self
            .send(Method::GET, &url, Self::manifest_headers(), None)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(Self::status_error(&Method::GET, &url, resp).await);
        }
        let body = resp.bytes().await.map_err(|source| Error::Transport {
            request: format!("GET {url}"),
            source,
        })?;
        Ok(Some(sha256_digest(&body)))
    }

    /// Pings the registry and authenticates (what every request does
    /// first), so a caller can surface TLS and credential errors early.
    pub async fn ping(&self) -> Result<()> {
        self.session().await.map(|_| ())
    }

    /// The digest `tag` points at (for an index: the index digest), or
    /// `None` when the tag does not exist.
    pub async fn resolve_tag(&self, tag: &str) -> Result<Option<String>> {
        self.head_or_get(tag).await
    }

    /// Whether a manifest with this digest exists in the repository.
    pub async fn manifest_exists(&self, digest: &str) -> Result<bool> {
        valid_digest(digest)?;
        Ok(self.head_or_get(digest).await?.is_some())
    }

    /// All tags, following `Link: <...>; rel="next"` pagination.
    pub async fn list_tags(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let session = self.session().await?;
        let mut url = format!("{}?n={}", self.url(&session, "tags/list"), self.tag_page);
        let mut tags = Vec::new();
        loop {
            let resp = self.send(Method::GET, &url, HeaderMap::new(), None).await?;
            if !resp.status().is_success() {
                return Err(Self::status_error(&Method::GET, &url, resp).await);
            }
            let next = resp
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body = resp.bytes().await.map_err(|source| Error::Transport {
                request: format!("GET {url}"),
                source,
            })?;
            let page: TagList = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                request: format!("GET {url}"),
                detail: format!("tag list is not valid JSON: {e}"),
            })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(next) => {
                    url = resolve_url(&url, &next).ok_or_else(|| Error::Protocol {
                        request: format!("GET {url}"),
                        detail: format!("invalid Link header target {next:?}"),
                    })?
                }
                None => return Ok(tags),
            }
        }
    }

    /// The manifest `reference` (tag or digest) names, exact bytes. When it
    /// is a digest, the body must hash to it.
    pub async fn fetch_manifest(&self, reference: &str) -> Result<Manifest> {
        if is_digest(reference) {
            valid_digest(reference)?;
        }
        let session = self.session().await?;
        let url = self.url(&session, &format!("manifests/{reference}"));
        let resp = self
            .send(Method::GET, &url, Self::manifest_headers(), None)
            .await?;
        if !resp.status().is_success() {
            return Err(Self::status_error(&Method::GET, &url, resp).await);
        }
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned())
            .unwrap_or_default();
        let bytes = resp.bytes().await.map_err(|source| Error::Transport {
            request: format!("GET {url}"),
            source,
        })?;
        // Before the digest check: a signed schema 1 manifest's digest
        // covers its payload without the signatures, so it would look
        // corrupt rather than unsupported.
        if is_schema1(&content_type, &bytes) {
            let sep = if is_digest(reference) { '@' } else { ':' };
            return Err(Error::Schema1 {
                reference: format!("{}{sep}{reference}", self.repo.qualified()),
            });
        }
        let digest = sha256_digest(&bytes);
        if is_digest(reference) && digest != reference {
            return Err(Error::DigestMismatch {
                what: "manifest",
                reference: format!("{}@{reference}", self.repo.qualified()),
                actual: digest,
            });
        }
        let media_type = if content_type.is_empty() || content_type == "application/json" {
            #[derive(serde::Deserialize)]
            struct Typed {
                #[serde(default, rename = "mediaType")]
                media_type: String,
            }
            serde_json::from_slice::<Typed>(&bytes)
                .map(|t| t.media_type)
                .unwrap_or_default()
        } else {
            content_type
        };
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    async fn blob_response(&self, digest: &str) -> Result<(String, reqwest::Response)> {
        valid_digest(digest)?;
        let session = self.session().await?;
        let url = self.url(&session, &format!("blobs/{digest}"));
        let resp = self.send(Method::GET, &url, HeaderMap::new(), None).await?;
        if !resp.status().is_success() {
            return Err(Self::status_error(&Method::GET, &url, resp).await);
        }
        Ok((url, resp))
    }

    /// A small blob (config), whole and verified.
    pub async fn fetch_blob(&self, digest: &str) -> Result<Bytes> {
        let (url, resp) = self.blob_response(digest).await?;
        let bytes = resp.bytes().await.map_err(|source| Error::Transport {
            request: format!("GET {url}"),
            source,
        })?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: "blob",
                reference: format!("{}@{digest}", self.repo.qualified()),
                actual,
            });
        }
        Ok(bytes)
    }

    /// A streaming reader of blob `digest` of `size` bytes; it fails with an
    /// io error (at the latest at EOF) on excess, truncation or digest
    /// mismatch, so a consumer never sees a silently wrong blob complete.
    pub async fn blob_reader(&self, digest: &str, size: u64) -> Result<BlobReader> {
        let (_, resp) = self.blob_response(digest).await?;
        let stream = resp.bytes_stream().map_err(std::io::Error::other);
        Ok(BlobReader::new(
            Box::pin(stream),
            format!("{}@{digest}", self.repo.qualified()),
            digest.to_owned(),
            size,
        ))
    }

    /// Whether blob `digest` exists in the repository.
    pub async fn blob_exists(&self, digest: &str) -> Result<bool> {
        valid_digest(digest)?;
        let session = self.session().await?;
        let url = self.url(&session, &format!("blobs/{digest}"));
        let resp = self
            .send(Method::HEAD, &url, HeaderMap::new(), None)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(Self::status_error(&Method::HEAD, &url, resp).await),
        }
    }

    /// Uploads blob `digest` (`size` bytes from `body`) unless the registry
    /// already has it: POST → PATCH (streamed) → PUT `?digest=`, the request
    /// pattern of ggcr. The registry verifies the digest on the final PUT.
    pub async fn push_blob(
        &self,
        digest: &str,
        size: u64,
        body: impl AsyncRead + Send + Unpin + 'static,
    ) -> Result<()> {
        if self.blob_exists(digest).await? {
            debug!(digest, "blob exists, skipping upload");
            return Ok(());
        }
        let session = self.session().await?;
        let url = self.url(&session, "blobs/uploads/");
        let resp = self
            .send(Method::POST, &url, HeaderMap::new(), None)
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Self::status_error(&Method::POST, &url, resp).await);
        }
        let location = self.location(&url, &Method::POST, &resp)?;

        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        let digest_owned = digest.to_owned();
        // 256 KiB reads: ReaderStream's 4 KiB default makes a large upload
        // tens of thousands of tiny body frames for a large layer.
        let stream = tokio_util::io::ReaderStream::with_capacity(body, UPLOAD_CHUNK).map_err(
            move |source| Error::Read {
                digest: digest_owned.clone(),
                source,
            },
        );
        let resp = self
            .send(
                Method::PATCH,
                &location,
                headers,
                Some(reqwest::Body::wrap_stream(stream)),
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Self::status_error(&Method::PATCH, &location, resp).await);
        }
        let location = self.location(&location, &Method::PATCH, &resp)?;

        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={digest}");
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
        let resp = self.send(Method::PUT, &put, headers, None).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(Self::status_error(&Method::PUT, &put, resp).await);
        }
        Ok(())
    }

    fn location(&self, url: &str, method: &Method, resp: &reqwest::Response) -> Result<String> {
        let missing = || Error::Protocol {
            request: format!("{method} {url}"),
            detail: "upload response has no valid Location header".into(),
        };
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(missing)?;
        resolve_url(url, loc).ok_or_else(missing)
    }

    /// Pushes manifest `bytes` unchanged under `reference` (tag or digest)
    /// and returns their digest.
    pub async fn push_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<String> {
        let digest = sha256_digest(&bytes);
        if is_digest(reference) && reference != digest {
            return Err(Error::DigestMismatch {
                what: "manifest",
                reference: format!("{}@{reference}", self.repo.qualified()),
                actual: digest,
            });
        }
        let session = self.session().await?;
        let url = self.url(&session, &format!("manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| Error::Protocol {
                request: format!("PUT {url}"),
                detail: format!("media type {media_type:?} is not a valid header value"),
            })?,
        );
        let resp = self
            .send(Method::PUT, &url, headers, Some(reqwest::Body::from(bytes)))
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(Self::status_error(&Method::PUT, &url, resp).await);
        }
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && d != digest
        {
            warn!(expected = %digest, registry = %d, "registry reports a different manifest digest");
        }
        Ok(digest)
    }
}

/// Whether `err` failed because the server's certificate did not verify.
fn is_certificate_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        if e.to_string().contains("invalid peer certificate") {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Whether `url` has the scheme, host and port of `origin`.
fn same_origin(url: &str, origin: &str) -> bool {
    match (reqwest::Url::parse(url), reqwest::Url::parse(origin)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// The target of `rel="next"` in a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_owned())
    })
}

/// Resolves `target` (absolute, host-relative or path-relative) against `base`.
fn resolve_url(base: &str, target: &str) -> Option<String> {
    let base = reqwest::Url::parse(base).ok()?;
    base.join(target).ok().map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_plain_http_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "a.localhost",
            "127.0.0.1:5000",
            "[::1]:5000",
            "10.1.2.3",
            "192.168.0.1:80",
            "172.16.0.1",
        ] {
            assert!(implicitly_insecure(h), "{h}");
        }
        for h in [
            "registry-1.docker.io",
            "8.8.8.8",
            "172.32.0.1",
            "example.com:5000",
        ] {
            assert!(!implicitly_insecure(h), "{h}");
        }
    }

    #[test]
    fn credentials_stay_on_the_registry_origin() {
        assert!(same_origin(
            "http://127.0.0.1:5000/v2/x/blobs/uploads/u?_state=1",
            "http://127.0.0.1:5000"
        ));
        assert!(!same_origin(
            "https://storage.example.com/upload",
            "https://registry.example.com"
        ));
        assert!(!same_origin(
            "http://127.0.0.1:5001/v2/",
            "http://127.0.0.1:5000"
        ));
        assert!(!same_origin(
            "https://127.0.0.1:5000/v2/",
            "http://127.0.0.1:5000"
        ));
    }

    #[test]
    fn link_header() {
        assert_eq!(
            next_link(r#"</v2/r/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/r/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(
            resolve_url(
                "http://h:5/v2/r/tags/list?n=2",
                "/v2/r/tags/list?last=b&n=2"
            )
            .as_deref(),
            Some("http://h:5/v2/r/tags/list?last=b&n=2")
        );
    }

    #[test]
    fn registry_error_bodies() {
        let (codes, text) = error_detail(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        );
        assert_eq!(codes, ["MANIFEST_UNKNOWN"]);
        assert_eq!(text, "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(error_detail(b"  oops \n").1, "oops");
    }

    #[test]
    fn digests_are_validated() {
        assert!(valid_digest(&sha256_digest(b"x")).is_ok());
        assert!(valid_digest("sha256:abc").is_err());
        assert!(valid_digest("").is_err());
    }
}
