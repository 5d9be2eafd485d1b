//! The session of a [`Client`]: the ping and token handshake, and sending
//! requests with the session's authorization.
//!
//! The token handshake (ping `/v2/`, parse the `WWW-Authenticate` challenge,
//! call the token realm with Basic credentials) is oci-client's
//! `Client::auth`. Everything else is done on reqwest, because oci-client
//! 0.18 falls short of what registry-image (ggcr) does and what Concourse
//! users rely on: see the other files of this module, and HTTPS-then-HTTP
//! per host for `insecure` and loopback/RFC1918 registries here (its
//! `ClientProtocol` is fixed up front; we pick it from the ping).

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use tracing::debug;

use super::client::{Access, Client, Credentials};
use super::error::{Error, Result};
use super::session::Session;

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

impl Client {
    fn oci_auth(&self) -> RegistryAuth {
        match &self.credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.expose().to_owned())
            }
        }
    }

    /// Pings the registry and authenticates (what every request does
    /// first), so a caller can surface TLS and credential errors early.
    pub async fn ping(&self) -> Result<()> {
        self.session().await.map(|_| ())
    }

    /// Pings the registry and authenticates once per client (= per attempt
    /// of a retried operation, like ggcr's per-attempt transport).
    pub(super) async fn session(&self) -> Result<Arc<Session>> {
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
            let oci = self.ping_client(&host, protocol, http_allowed)?;
            match oci.auth(&reference, &auth, op).await {
                Ok(token) => {
                    debug!(registry = %host, scheme, "registry session established");
                    return Ok(Session {
                        origin: format!("{scheme}://{host}"),
                        authorization: self.authorization(token, scheme, &host)?,
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
                        error = %crate::oci::error_chain(&e),
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

    /// The oci-client that pings `host` over one scheme. It only pings and
    /// fetches tokens, so its timeouts can be shorter than a registry
    /// read's when a plain-HTTP fallback is waiting.
    fn ping_client(
        &self,
        host: &str,
        protocol: ClientProtocol,
        http_allowed: bool,
    ) -> Result<oci_client::Client> {
        let config = ClientConfig {
            protocol,
            extra_root_certificates: self.certs.clone(),
            // An https probe of a plain-HTTP server that never answers
            // the ClientHello must not hang the run (ggcr races http
            // after 300 ms); this client only pings and fetches tokens.
            // Otherwise the idle timeout of every registry read.
            read_timeout: Some(if http_allowed {
                self.tls
                    .read_timeout()
                    .min(std::time::Duration::from_secs(10))
            } else {
                self.tls.read_timeout()
            }),
            // Go's default dial timeout, as registry-image has.
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            ..Default::default()
        };
        oci_client::Client::try_from(config).map_err(|e| Error::Setup {
            registry: host.to_owned(),
            source: Box::new(e),
        })
    }

    /// The `Authorization` every request of the session carries: the
    /// handshake's bearer token, or Basic credentials when the registry
    /// issued none, marked sensitive so that it never appears in a debug
    /// print of a request.
    fn authorization(
        &self,
        token: Option<String>,
        scheme: &str,
        host: &str,
    ) -> Result<Option<HeaderValue>> {
        let authorization = match (token, &self.credentials) {
            (Some(token), _) => {
                // A registry may echo the token in an error body.
                crate::secret::remember(&token);
                Some(format!("Bearer {token}"))
            }
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
        authorization
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
            })
    }

    /// URL of `/v2/<path>/<suffix>` for this session.
    pub(super) fn url(&self, session: &Session, suffix: &str) -> String {
        format!("{}/v2/{}/{suffix}", session.origin, self.repo.path)
    }

    pub(super) async fn send(
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
        // A streamed body (a blob upload) goes without reqwest's read
        // timeout; its caller bounds idle time itself.
        let http = match &body {
            Some(b) if b.as_bytes().is_none() => &self.upload_http,
            _ => &self.http,
        };
        let mut req = http.request(method.clone(), url).headers(headers.clone());
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
        let started = std::time::Instant::now();
        let resp = req.send().await.map_err(|source| Error::Transport {
            request: format!("{method} {url}"),
            source,
        })?;
        // `debug: true`: one line per request. The path only: upload
        // locations carry state in their query, and headers (credentials)
        // are never logged.
        debug!(
            "registry {method} {}{} -> {} ({} ms)",
            session.origin,
            reqwest::Url::parse(url).map_or_else(|_| String::new(), |u| u.path().to_string()),
            resp.status(),
            started.elapsed().as_millis()
        );
        Ok(resp)
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

/// Resolves `target` (absolute, host-relative or path-relative) against `base`.
pub(super) fn resolve_url(base: &str, target: &str) -> Option<String> {
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
}
