//! Where the BuildKit daemon is and how to open a gRPC channel to it: a
//! buildkitd unix socket, TCP with optional mutual TLS, or the BuildKit built
//! into a Docker Engine, reached through the Engine API's `POST /grpc` (an
//! HTTP/1.1 upgrade to cleartext HTTP/2 on the Engine's unix socket), or
//! either of the last two on another host over `ssh://` (through the local
//! socket of an [`SshTunnel`](super::SshTunnel), `src/buildkit/ssh.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

use super::ssh::SshTarget;
use super::{Error, Secret};

/// Default Docker Engine socket for `docker://` without a path.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// TLS settings for `tcp://` addresses, as PEM text.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// CA certificate(s) that sign the daemon's certificate; without it the
    /// system roots are used.
    pub ca_cert: Option<String>,
    /// Client certificate for mutual TLS (with `key`).
    pub cert: Option<String>,
    /// Client private key for mutual TLS (with `cert`).
    pub key: Option<Secret>,
    /// Name to verify the daemon's certificate against (default: the host).
    pub server_name: Option<String>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Certificates are long; show only whether each is present (the key
        // prints as `<redacted>` on its own).
        f.debug_struct("TlsConfig")
            .field("ca_cert", &self.ca_cert.is_some())
            .field("cert", &self.cert.is_some())
            .field("key", &self.key)
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// A BuildKit daemon address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `unix://<path>`: a buildkitd socket.
    Unix(PathBuf),
    /// `tcp://<host>:<port>`, TLS when `tls` is set.
    Tcp {
        /// Host name or IP (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
        /// TLS settings; `None` is cleartext HTTP/2.
        tls: Option<TlsConfig>,
    },
    /// `docker://<socket path>`: a Docker Engine's built-in BuildKit.
    DockerEngine(PathBuf),
    /// `ssh://[user@]host[:port][/socket]`: a Docker Engine (no path) or a
    /// buildkitd (its socket path) on another host, dialled through an
    /// [`SshTunnel`](super::SshTunnel).
    Ssh(SshTarget),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::Tcp { host, port, .. } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Address::Tcp { host, port, .. } => write!(f, "tcp://{host}:{port}"),
            Address::DockerEngine(p) => write!(f, "docker://{}", p.display()),
            Address::Ssh(target) => target.fmt(f),
        }
    }
}

impl Address {
    /// Parses `unix://path`, `tcp://host:port`, `docker://path` or
    /// `ssh://[user@]host[:port][/socket]`. `tls` is only accepted with
    /// `tcp://`.
    pub fn parse(text: &str, tls: Option<TlsConfig>) -> Result<Address, Error> {
        let invalid = |reason: &str| Error::InvalidAddress {
            address: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| invalid("expected unix://, tcp://, docker:// or ssh://"))?;
        if scheme != "tcp" && tls.is_some() {
            return Err(invalid("tls settings apply only to tcp:// addresses"));
        }
        let address = match scheme {
            "unix" => {
                if rest.is_empty() {
                    return Err(invalid("missing socket path"));
                }
                Address::Unix(PathBuf::from(rest))
            }
            "docker" => Address::DockerEngine(PathBuf::from(if rest.is_empty() {
                DEFAULT_DOCKER_SOCKET
            } else {
                rest
            })),
            "tcp" => {
                let rest = rest.trim_end_matches('/');
                let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
                    let (host, port) = v6
                        .split_once("]:")
                        .ok_or_else(|| invalid("expected tcp://[ipv6]:port"))?;
                    (host, port)
                } else {
                    rest.rsplit_once(':')
                        .ok_or_else(|| invalid("expected tcp://host:port"))?
                };
                if host.is_empty() {
                    return Err(invalid("missing host"));
                }
                let port = port.parse().map_err(|_| invalid("invalid port"))?;
                Address::Tcp {
                    host: host.to_owned(),
                    port,
                    tls,
                }
            }
            "ssh" => Address::Ssh(SshTarget::parse(rest).map_err(invalid)?),
            _ => {
                return Err(invalid(
                    "unsupported scheme (use unix://, tcp://, docker:// or ssh://)",
                ));
            }
        };
        Ok(address)
    }

    /// The address from `BUILDKIT_HOST`, the fallback for local use.
    pub fn from_env(tls: Option<TlsConfig>) -> Result<Address, Error> {
        match std::env::var("BUILDKIT_HOST") {
            Ok(v) if !v.is_empty() => Address::parse(&v, tls),
            _ => Err(Error::NoAddress),
        }
    }

    /// The Engine API socket: the `docker://` path, or the tunnel's local
    /// socket for an `ssh://` Engine.
    pub fn docker_socket(&self) -> Option<&Path> {
        match self {
            Address::DockerEngine(p) => Some(p),
            Address::Ssh(target) if target.is_engine() => target.tunnel.as_deref(),
            _ => None,
        }
    }

    /// Whether the daemon is on another host, where this container's
    /// loopback (preloaded images are served there) is not ours.
    pub fn is_remote_host(&self) -> bool {
        matches!(self, Address::Tcp { .. } | Address::Ssh(_))
    }
}

/// Opens an HTTP/2 channel to the daemon.
pub(crate) async fn connect(address: &Address) -> Result<Channel, Error> {
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| Error::Connect {
        address: address.to_string(),
        source,
    };
    // The URI of unix and Docker channels is only used for `:authority`.
    // No HTTP/2 keep-alive pings: grpc-go servers (buildkitd, dockerd) by
    // default answer pings more frequent than every 5 minutes with GOAWAY
    // "too_many_pings", which would kill builds with long silent steps.
    let local =
        || Endpoint::from_static("http://localhost").connect_timeout(Duration::from_secs(10));
    let socket = match address {
        Address::Ssh(target) => {
            let tunnel = target.tunnel.clone().ok_or_else(|| Error::InvalidAddress {
                address: address.to_string(),
                reason: "ssh:// needs source.buildkit_ssh (private_key and known_hosts)".into(),
            })?;
            if target.is_engine() {
                Address::DockerEngine(tunnel)
            } else {
                Address::Unix(tunnel)
            }
        }
        other => other.clone(),
    };
    match &socket {
        Address::Unix(path) => {
            let path = path.clone();
            local()
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(&path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
                .await
                .map_err(|e| fail(Box::new(e)))
        }
        Address::DockerEngine(path) => {
            let path = path.clone();
            local()
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { upgrade_docker(&path, "/grpc", &[]).await }
                }))
                .await
                .map_err(|e| fail(Box::new(e)))
        }
        Address::Ssh(_) => unreachable!("an ssh:// address dials its tunnel's socket"),
        Address::Tcp { host, port, tls } => {
            let authority = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            let mut endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))
                .map_err(|e| fail(Box::new(e)))?
                .connect_timeout(Duration::from_secs(10));
            if let Some(tls) = tls {
                let mut config = ClientTlsConfig::new();
                config = match &tls.ca_cert {
                    Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
                    None => config.with_native_roots(),
                };
                match (&tls.cert, &tls.key) {
                    (Some(cert), Some(key)) => {
                        config = config.identity(Identity::from_pem(cert, key.expose()));
                    }
                    (None, None) => {}
                    _ => {
                        return Err(Error::InvalidAddress {
                            address: address.to_string(),
                            reason: "mutual tls needs both a client certificate and a key".into(),
                        });
                    }
                }
                if let Some(name) = &tls.server_name {
                    config = config.domain_name(name.clone());
                    // Like buildctl, the server name is also the :authority.
                    let origin = format!("https://{name}:{port}")
                        .parse::<Uri>()
                        .map_err(|e| fail(Box::new(e)))?;
                    endpoint = endpoint.origin(origin);
                }
                crate::tls::install_crypto_provider();
                endpoint = endpoint.tls_config(config).map_err(|e| fail(Box::new(e)))?;
            }
            endpoint.connect().await.map_err(|e| fail(Box::new(e)))
        }
    }
}

/// Dials the Engine socket and upgrades one HTTP/1.1 request to a raw byte
/// stream: `POST /grpc` (then HTTP/2 with the Engine as server, the Control
/// API) or `POST /session` (then HTTP/2 with the Engine as *client*, calling
/// our session services). Both need `Upgrade: h2c` (anything else is
/// refused) and answer `101 Switching Protocols`. hyper's upgrade keeps bytes
/// the Engine sent right after the 101 (its SETTINGS frame arrives in the
/// same read).
pub(crate) async fn upgrade_docker(
    socket: &Path,
    path: &str,
    headers: &[(&str, String)],
) -> Result<hyper::upgrade::Upgraded, std::io::Error> {
    use std::io::{Error as IoError, ErrorKind};
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| IoError::new(ErrorKind::ConnectionRefused, e))?;
    tokio::spawn(async move {
        // Ends when the upgraded stream is dropped.
        let _ = conn.with_upgrades().await;
    });
    let mut request = http::Request::post(path)
        .header(http::header::HOST, "docker")
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "h2c");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Empty::new())
        .map_err(|e| IoError::new(ErrorKind::InvalidInput, e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| IoError::new(ErrorKind::ConnectionAborted, e))?;
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(IoError::other(format!(
            "docker engine refused the upgrade of POST {path} to h2c with status {}",
            response.status()
        )));
    }
    hyper::upgrade::on(response)
        .await
        .map_err(|e| IoError::new(ErrorKind::ConnectionAborted, e))
}

/// A request body with no data.
pub(crate) type Empty = http_body_util::Empty<bytes::Bytes>;

#[cfg(test)]
mod tests;
