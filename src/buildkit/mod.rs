//! A BuildKit client written from BuildKit's wire protocol: connect to a
//! daemon (buildkitd on unix/TCP+mTLS, or a Docker Engine's built-in
//! BuildKit), probe it, and run a `dockerfile.v0` solve with a session that
//! uploads local directories, answers credential/secret/ssh requests and
//! receives exporter tarballs, while progress is printed to stderr.
//!
//! Sessions run over the `Control.Session` call by default (buildkitd, and
//! Docker Engines through `/grpc`); a Docker Engine's `POST /session`
//! endpoint can be chosen instead ([`SessionTunnel`]).
//!
//! Compatibility is by feature detection: `Info` (absent before v0.11, e.g.
//! Docker 20.10), `ListWorkers` labels (containerd image store on Engines)
//! and the Engine version. A request that needs something the daemon lacks
//! fails before the build with [`Error::Unsupported`] naming the feature and
//! the daemon version; the daemon's own "not found"/"unknown" answers for
//! exporters and caches become [`Error::Refused`], naming the daemon.
//!
//! ```no_run
//! # async fn build() -> Result<(), oci_build_resource::buildkit::Error> {
//! use std::collections::BTreeMap;
//! use oci_build_resource::buildkit::{Address, Client, Exporter, SessionOptions, SolveRequest};
//!
//! let client = Client::connect(&Address::parse("docker:///var/run/docker.sock", None)?).await?;
//! eprintln!("building on {}", client.info().await?.version);
//! let request = SolveRequest {
//!     frontend: "dockerfile.v0".into(),
//!     frontend_attrs: BTreeMap::from([("build-arg:VERSION".into(), "1.2".into())]),
//!     exporters: vec![Exporter {
//!         kind: "moby".into(),
//!         attrs: BTreeMap::from([("name".into(), "app:latest".into())]),
//!         output: None,
//!     }],
//!     ..SolveRequest::default()
//! };
//! let session = SessionOptions {
//!     local_dirs: BTreeMap::from([
//!         ("context".into(), "app".into()),
//!         ("dockerfile".into(), "app".into()),
//!     ]),
//!     ..SessionOptions::default()
//! };
//! let outcome = client.solve(request, session).await?;
//! println!("{:?}", outcome.exporter_response.get("containerimage.digest"));
//! # Ok(())
//! # }
//! ```

pub mod daemon;
pub mod docker_engine;
pub mod fsutil;
pub mod patterns;
pub mod progress;
pub mod proto;
mod session;
mod transport;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::Channel;

use crate::config::Secret;
use proto::moby::buildkit::v1 as control;
use proto::moby::buildkit::v1::control_client::ControlClient;

pub use session::SessionTunnel;
pub use transport::{Address, DEFAULT_DOCKER_SOCKET, TlsConfig};

/// gRPC message size limit both ways, as the Go client and buildkitd use.
pub(crate) const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// Errors of the BuildKit client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A daemon address could not be parsed.
    #[error("invalid buildkit address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong.
        reason: String,
    },
    /// No address was given and `BUILDKIT_HOST` is unset.
    #[error("no buildkit address given and BUILDKIT_HOST is not set")]
    NoAddress,
    /// The daemon could not be reached.
    #[error("connecting to buildkit at {address}")]
    Connect {
        /// The address dialled.
        address: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A control call failed.
    #[error("{what}")]
    Rpc {
        /// What was being done.
        what: &'static str,
        /// The gRPC status.
        #[source]
        source: tonic::Status,
    },
    /// The request needs a feature this daemon does not have.
    #[error("{feature} is not supported by {daemon}")]
    Unsupported {
        /// The feature, e.g. `exporter "oci"`.
        feature: String,
        /// The daemon and version, e.g. `docker engine 20.10.24 (buildkit < v0.11)`.
        daemon: String,
    },
    /// The daemon refused a feature of the request (found out by asking:
    /// e.g. `exporter "oci" could not be found`).
    #[error("{daemon} refused the build: {message}")]
    Refused {
        /// The daemon's message.
        message: String,
        /// The daemon and version.
        daemon: String,
    },
    /// A request option is unusable.
    #[error("invalid build option {option}: {reason}")]
    InvalidOption {
        /// The option.
        option: String,
        /// Why.
        reason: String,
    },
    /// A local directory for the session is missing or not a directory.
    #[error("local directory {name:?} ({}) is not a readable directory", path.display())]
    LocalDir {
        /// Its name in the session (`context`, `dockerfile`, ...).
        name: String,
        /// The host path.
        path: PathBuf,
    },
    /// An ssh key file cannot be served by the in-process agent.
    #[error("loading ssh key for the build")]
    SshKey(#[source] session::agent::KeyError),
    /// The build itself failed at a step.
    #[error("build step {step} failed: {error}{}", tail(logs))]
    BuildFailed {
        /// The failing vertex name, e.g. `[stage-0 2/3] RUN make`.
        step: String,
        /// The daemon's error message.
        error: String,
        /// The step's last log lines.
        logs: Vec<String>,
    },
    /// The build failed without a failing step (frontend or export errors).
    #[error("build failed: {0}")]
    Solve(String),
    /// A Docker Engine API call failed at the transport level.
    #[error("{what}")]
    DockerEngine {
        /// The call.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The Docker Engine API answered with an error.
    #[error("{what}: engine answered {status}: {message}")]
    DockerApi {
        /// The call.
        what: String,
        /// HTTP status.
        status: u16,
        /// The Engine's message.
        message: String,
    },
}

fn tail(logs: &[String]) -> String {
    if logs.is_empty() {
        return String::new();
    }
    let mut s = String::from("\nlast log lines:");
    for l in logs {
        s.push_str("\n  ");
        s.push_str(l);
    }
    s
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Joins an error and its sources with `: `.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Which kind of daemon answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonKind {
    /// A standalone buildkitd.
    Buildkitd,
    /// A Docker Engine's built-in BuildKit.
    DockerEngine,
}

/// What the daemon can do, as detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The BuildKit version from `Info` (`None` before v0.11: no `Info`).
    pub buildkit_version: Option<semver::Version>,
    /// Exporter types the daemon has.
    pub exporters: Vec<String>,
    /// Whether several exporters can run in one solve (v0.13+).
    pub multiple_exporters: bool,
    /// Cache exporter types (`registry`, `inline`).
    pub cache_exports: Vec<String>,
    /// Whether `context:NAME` frontend attributes work (dockerfile 1.4+).
    pub named_contexts: bool,
    /// Whether several platforms can be built into one image index.
    pub multi_platform: bool,
}

/// The daemon's identity and features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonInfo {
    /// Human-readable version, e.g. `v0.23.1` or
    /// `docker engine 20.10.24+dfsg1 (buildkit < v0.11)`.
    pub version: String,
    /// buildkitd or Docker Engine.
    pub kind: DaemonKind,
    /// Detected features.
    pub capabilities: Capabilities,
}

/// One exporter of a solve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exporter {
    /// `image`, `oci`, `docker`, `tar`, `moby`.
    pub kind: String,
    /// Exporter attributes (`name`, `push`, ...); client-side keys like
    /// buildctl's `dest` are not sent.
    pub attrs: BTreeMap<String, String>,
    /// File receiving the tarball for `oci`/`docker`/`tar` (via FileSend).
    pub output: Option<PathBuf>,
}

/// A cache import or export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheEntry {
    /// `registry`, `inline`.
    pub kind: String,
    /// Attributes (`ref`, `mode`, ...).
    pub attrs: BTreeMap<String, String>,
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct SolveRequest {
    /// Frontend, `dockerfile.v0`.
    pub frontend: String,
    /// Frontend attributes: `filename`, `target`, `build-arg:*`, `label:*`,
    /// `platform`, `add-hosts`, `no-cache`, `force-network-mode`,
    /// `context:*`, ... (`cache-imports` is filled in from `cache_imports`).
    pub frontend_attrs: BTreeMap<String, String>,
    /// Exporters; the first is also sent in the pre-v0.13 fields, and is the
    /// only one old daemons run.
    pub exporters: Vec<Exporter>,
    /// Cache sources.
    pub cache_imports: Vec<CacheEntry>,
    /// Cache destinations.
    pub cache_exports: Vec<CacheEntry>,
    /// Entitlements (`network.host`, `security.insecure`).
    pub entitlements: Vec<String>,
}

/// Where a secret's value comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// Read from a file when the daemon asks.
    File(PathBuf),
    /// Given literally.
    Text(Secret),
    /// Read from an environment variable when the daemon asks.
    Env(String),
}

/// An ssh agent for `RUN --mount=type=ssh,id=...`.
#[derive(Debug, Clone)]
pub struct SshSource {
    /// The ssh id (`default` when the Dockerfile names none).
    pub id: String,
    /// Where the agent is.
    pub kind: SshKind,
}

/// Kinds of ssh sources.
#[derive(Debug, Clone)]
pub enum SshKind {
    /// An ssh-agent socket.
    Agent(PathBuf),
    /// An unencrypted OpenSSH private key file (ed25519, rsa, ecdsa),
    /// served by an in-process agent.
    Key(PathBuf),
}

/// Credentials for one registry host.
#[derive(Debug, Clone)]
pub struct RegistryAuth {
    /// Registry host (`host:port`, or Docker Hub's names).
    pub host: String,
    /// User name (empty with an identity token as password).
    pub username: String,
    /// Password or token.
    pub password: Secret,
}

/// What the session serves during a solve.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Local directories by name: `context`, `dockerfile`, named contexts.
    pub local_dirs: BTreeMap<String, PathBuf>,
    /// Secrets by id.
    pub secrets: BTreeMap<String, SecretSource>,
    /// ssh agents.
    pub ssh: Vec<SshSource>,
    /// Registry credentials.
    pub registry_auth: Vec<RegistryAuth>,
    /// Stable per project: the daemon reuses earlier uploads under this key.
    pub shared_key: String,
}

/// The result of a successful solve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SolveOutcome {
    /// The exporter response (`containerimage.digest`,
    /// `containerimage.config.digest`, `image.name`, ...).
    pub exporter_response: BTreeMap<String, String>,
    /// Steps that were cached.
    pub cached_steps: usize,
    /// Steps that completed.
    pub total_steps: usize,
}

/// A connection to a BuildKit daemon.
#[derive(Debug, Clone)]
pub struct Client {
    address: Address,
    control: ControlClient<Channel>,
    info: std::sync::Arc<tokio::sync::OnceCell<DaemonInfo>>,
    tunnel: SessionTunnel,
}

/// A random id like the Go client's (25 base-36 characters).
pub(crate) fn random_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..25)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn semver_of(text: &str) -> Option<semver::Version> {
    let t = text.trim().trim_start_matches('v');
    semver::Version::parse(t).ok().or_else(|| {
        // Strip suffixes like "+unknown" or "-rc1-123-gabcdef" leniently.
        let core: String = t
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        semver::Version::parse(&core).ok()
    })
}

impl Client {
    /// Connects to the daemon (nothing is sent yet).
    pub async fn connect(address: &Address) -> Result<Client> {
        let channel = transport::connect(address).await?;
        let control = ControlClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        Ok(Client {
            address: address.clone(),
            control,
            info: Default::default(),
            tunnel: SessionTunnel::default(),
        })
    }

    /// Chooses how sessions reach the daemon (default `Control.Session`,
    /// which works on buildkitd and on Docker Engines through `/grpc`).
    pub fn with_session_tunnel(mut self, tunnel: SessionTunnel) -> Client {
        self.tunnel = tunnel;
        self
    }

    /// The address connected to.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The generated Control client, for calls the facade does not wrap.
    pub fn control(&self) -> ControlClient<Channel> {
        self.control.clone()
    }

    /// Probes the daemon (once; cached): `Info`, `ListWorkers` and, for
    /// Docker Engines, the Engine version.
    pub async fn info(&self) -> Result<DaemonInfo> {
        self.info.get_or_try_init(|| self.probe()).await.cloned()
    }

    async fn probe(&self) -> Result<DaemonInfo> {
        let mut control = self.control.clone();
        let buildkit_version = match control.info(control::InfoRequest {}).await {
            Ok(r) => r.into_inner().buildkit_version.map(|v| v.version),
            Err(s) if s.code() == tonic::Code::Unimplemented => None,
            Err(source) => {
                return Err(Error::Rpc {
                    what: "asking buildkit for its version",
                    source,
                });
            }
        };
        let workers = control
            .list_workers(control::ListWorkersRequest::default())
            .await
            .map_err(|source| Error::Rpc {
                what: "listing buildkit workers",
                source,
            })?
            .into_inner()
            .record;
        let engine_version = match self.address.docker_socket() {
            Some(socket) => Some(docker_engine::version(socket).await?),
            None => None,
        };
        let kind = if engine_version.is_some() || workers.iter().any(|w| w.id == "moby") {
            DaemonKind::DockerEngine
        } else {
            DaemonKind::Buildkitd
        };
        let parsed = buildkit_version.as_deref().and_then(semver_of);
        let at_least = |minor: u64| {
            parsed
                .as_ref()
                .is_some_and(|v| v.major > 0 || v.minor >= minor)
        };
        let containerd_store = workers.iter().any(|w| {
            w.labels
                .contains_key("org.mobyproject.buildkit.worker.snapshotter")
        });
        let bk_text = buildkit_version
            .clone()
            .filter(|v| !v.is_empty())
            .map_or_else(
                || "buildkit < v0.11".to_owned(),
                |v| format!("buildkit {v}"),
            );
        let (version, capabilities) = match kind {
            DaemonKind::Buildkitd => (
                buildkit_version
                    .clone()
                    .filter(|v| !v.is_empty())
                    .unwrap_or(bk_text),
                Capabilities {
                    buildkit_version: parsed.clone(),
                    exporters: ["image", "oci", "docker", "tar"].map(String::from).to_vec(),
                    multiple_exporters: at_least(13),
                    cache_exports: ["registry", "inline"].map(String::from).to_vec(),
                    named_contexts: at_least(10),
                    multi_platform: true,
                },
            ),
            DaemonKind::DockerEngine => {
                let mut exporters = vec!["moby".to_owned(), "tar".to_owned()];
                let mut cache_exports = vec!["inline".to_owned()];
                if containerd_store {
                    exporters.extend(["image", "oci", "docker"].map(String::from));
                    cache_exports.push("registry".into());
                }
                (
                    format!(
                        "docker engine {} ({bk_text})",
                        engine_version.as_deref().unwrap_or("unknown")
                    ),
                    Capabilities {
                        buildkit_version: parsed.clone(),
                        exporters,
                        multiple_exporters: at_least(13),
                        cache_exports,
                        named_contexts: at_least(10),
                        multi_platform: containerd_store,
                    },
                )
            }
        };
        Ok(DaemonInfo {
            version,
            kind,
            capabilities,
        })
    }

    /// Checks a request against the daemon's features, before any work.
    fn check(info: &DaemonInfo, req: &SolveRequest, session: &SessionOptions) -> Result<()> {
        let caps = &info.capabilities;
        let unsupported = |feature: String| Error::Unsupported {
            feature,
            daemon: info.version.clone(),
        };
        if req.exporters.len() > 1 && !caps.multiple_exporters {
            return Err(unsupported("more than one exporter per build".into()));
        }
        for e in &req.exporters {
            if e.kind == "local" {
                return Err(Error::InvalidOption {
                    option: "exporter \"local\"".into(),
                    reason: "directory exports are not supported by this client; use \"tar\""
                        .into(),
                });
            }
            if !caps.exporters.contains(&e.kind) {
                return Err(unsupported(format!("exporter {:?}", e.kind)));
            }
            let file_exporter = matches!(e.kind.as_str(), "tar" | "oci" | "docker");
            if file_exporter && e.attrs.get("tar").is_some_and(|v| v == "false") {
                // The daemon would write into a content store served by the
                // client, which this client does not serve.
                return Err(Error::InvalidOption {
                    option: format!("exporter {:?}", e.kind),
                    reason: "tar=false (export into a client content store) is not supported"
                        .into(),
                });
            }
            if file_exporter && e.output.is_none() {
                return Err(Error::InvalidOption {
                    option: format!("exporter {:?}", e.kind),
                    reason: "a tarball exporter needs an output file".into(),
                });
            }
        }
        for c in &req.cache_exports {
            if !caps.cache_exports.contains(&c.kind) {
                return Err(unsupported(format!("cache export {:?}", c.kind)));
            }
        }
        if !caps.named_contexts
            && let Some(key) = req
                .frontend_attrs
                .keys()
                .find(|k| k.starts_with("context:"))
        {
            return Err(unsupported(format!("named build context ({key})")));
        }
        if !caps.multi_platform
            && req
                .frontend_attrs
                .get("platform")
                .is_some_and(|p| p.contains(','))
        {
            return Err(unsupported("building several platforms at once".into()));
        }
        for (name, path) in &session.local_dirs {
            if !path.is_dir() {
                return Err(Error::LocalDir {
                    name: name.clone(),
                    path: path.clone(),
                });
            }
        }
        Ok(())
    }

    /// Runs one build: attaches a session, solves, prints progress to
    /// stderr, and returns the exporter response. A failing step becomes
    /// [`Error::BuildFailed`] with its last log lines.
    pub async fn solve(&self, req: SolveRequest, session: SessionOptions) -> Result<SolveOutcome> {
        self.solve_with_progress(req, session, progress::Printer::stderr())
            .await
    }

    /// [`Client::solve`] with a chosen progress printer.
    pub async fn solve_with_progress(
        &self,
        req: SolveRequest,
        session_options: SessionOptions,
        printer: progress::Printer,
    ) -> Result<SolveOutcome> {
        let info = self.info().await?;
        Self::check(&info, &req, &session_options)?;

        let mut frontend_attrs = req.frontend_attrs.clone();
        if !req.cache_imports.is_empty() && !frontend_attrs.contains_key("cache-imports") {
            // The frontend resolves cache for its own sub-solves from this
            // attribute; Cache.Imports alone is not enough.
            let json: Vec<serde_json::Value> = req
                .cache_imports
                .iter()
                .map(|c| serde_json::json!({"Type": c.kind, "Attrs": c.attrs}))
                .collect();
            frontend_attrs.insert(
                "cache-imports".into(),
                serde_json::Value::from(json).to_string(),
            );
        }
        let entry = |c: &CacheEntry| control::CacheOptionsEntry {
            r#type: c.kind.clone(),
            attrs: c.attrs.clone().into_iter().collect(),
        };
        let exporters: Vec<control::Exporter> = req
            .exporters
            .iter()
            .map(|e| control::Exporter {
                r#type: e.kind.clone(),
                attrs: e.attrs.clone().into_iter().collect(),
            })
            .collect();
        let outputs = req.exporters.iter().map(|e| e.output.clone()).collect();

        let session = session::Session::attach(
            &self.control,
            self.tunnel,
            self.address.docker_socket(),
            &session_options,
            outputs,
        )
        .await?;
        let build_ref = random_id();
        let solve_req = control::SolveRequest {
            r#ref: build_ref.clone(),
            // Old daemons read only these two fields; new ones prefer 13.
            exporter_deprecated: exporters
                .first()
                .map(|e| e.r#type.clone())
                .unwrap_or_default(),
            exporter_attrs_deprecated: exporters
                .first()
                .map(|e| e.attrs.clone())
                .unwrap_or_default(),
            session: session.id.clone(),
            frontend: req.frontend.clone(),
            frontend_attrs: frontend_attrs.into_iter().collect(),
            cache: Some(control::CacheOptions {
                exports: req.cache_exports.iter().map(entry).collect(),
                imports: req.cache_imports.iter().map(entry).collect(),
            }),
            entitlements: req.entitlements.clone(),
            internal: false,
            exporters,
        };

        let mut status_client = self.control.clone();
        let status_ref = build_ref.clone();
        let (printer_tx, printer_rx) = tokio::sync::oneshot::channel();
        let status_task = tokio::spawn(async move {
            let mut printer = printer;
            match status_client
                .status(control::StatusRequest { r#ref: status_ref })
                .await
            {
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    while let Ok(Some(msg)) = stream.message().await {
                        printer.update(&msg);
                    }
                }
                Err(status) => tracing::warn!(error = %status, "reading build progress failed"),
            }
            let _ = printer_tx.send(printer);
        });

        let mut control = self.control.clone();
        let result = control.solve(solve_req).await;
        tracing::debug!(ok = result.is_ok(), "solve returned");
        session.close().await;
        tracing::debug!("session closed");
        // The status stream ends when the job ends; don't hang on it.
        let mut printer = match tokio::time::timeout(Duration::from_secs(10), printer_rx).await {
            Ok(Ok(p)) => Some(p),
            _ => {
                status_task.abort();
                None
            }
        };
        let summary = printer.as_ref().map(|p| p.summary()).unwrap_or_default();
        match result {
            Ok(response) => Ok(SolveOutcome {
                exporter_response: response
                    .into_inner()
                    .exporter_response
                    .into_iter()
                    .collect(),
                cached_steps: summary.cached_steps,
                total_steps: summary.total_steps,
            }),
            Err(status) => {
                if let Some(p) = printer.as_mut() {
                    p.print_failure();
                }
                Err(Self::solve_error(&info, status, summary))
            }
        }
    }

    fn solve_error(info: &DaemonInfo, status: tonic::Status, summary: progress::Summary) -> Error {
        if let Some(failed) = summary.failed {
            return Error::BuildFailed {
                step: failed.name,
                error: failed.error,
                logs: failed.logs,
            };
        }
        let message = status.message();
        // Capability errors come back as UNKNOWN with plain text.
        let capability = [
            "could not be found",
            "unknown cache exporter",
            "not supported",
            "unsupported",
        ];
        if capability.iter().any(|c| message.contains(c)) {
            return Error::Refused {
                message: message.to_owned(),
                daemon: info.version.clone(),
            };
        }
        match status.code() {
            tonic::Code::Unknown
            | tonic::Code::InvalidArgument
            | tonic::Code::FailedPrecondition => Error::Solve(message.to_owned()),
            _ => Error::Rpc {
                what: "solving the build",
                source: status,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker_20_10() -> DaemonInfo {
        DaemonInfo {
            version: "docker engine 20.10.24 (buildkit < v0.11)".into(),
            kind: DaemonKind::DockerEngine,
            capabilities: Capabilities {
                buildkit_version: None,
                exporters: vec!["moby".into(), "tar".into()],
                multiple_exporters: false,
                cache_exports: vec!["inline".into()],
                named_contexts: false,
                multi_platform: false,
            },
        }
    }

    #[test]
    fn unsupported_features_name_feature_and_version() {
        let info = docker_20_10();
        let mut req = SolveRequest {
            exporters: vec![Exporter {
                kind: "oci".into(),
                output: Some("/tmp/x".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = Client::check(&info, &req, &SessionOptions::default()).expect_err("oci");
        assert_eq!(
            err.to_string(),
            "exporter \"oci\" is not supported by docker engine 20.10.24 (buildkit < v0.11)"
        );
        req.exporters = vec![Exporter {
            kind: "moby".into(),
            ..Default::default()
        }];
        req.cache_exports = vec![CacheEntry {
            kind: "registry".into(),
            ..Default::default()
        }];
        let err = Client::check(&info, &req, &SessionOptions::default()).expect_err("cache");
        assert!(
            err.to_string()
                .starts_with("cache export \"registry\" is not supported")
        );
        req.cache_exports.clear();
        req.frontend_attrs
            .insert("context:base".into(), "docker-image://x".into());
        assert!(Client::check(&info, &req, &SessionOptions::default()).is_err());
        req.frontend_attrs.clear();
        Client::check(&info, &req, &SessionOptions::default()).expect("plain moby build");
    }

    #[test]
    fn solve_errors_are_classified() {
        let info = docker_20_10();
        let refused = Client::solve_error(
            &info,
            tonic::Status::unknown("unknown cache exporter: \"registry\""),
            progress::Summary::default(),
        );
        assert_eq!(
            refused.to_string(),
            "docker engine 20.10.24 (buildkit < v0.11) refused the build: unknown cache exporter: \"registry\""
        );
        let failed = Client::solve_error(
            &info,
            tonic::Status::unknown("executor failed"),
            progress::Summary {
                failed: Some(progress::FailedStep {
                    name: "[1/1] RUN x".into(),
                    error: "exit code: 2".into(),
                    logs: vec![],
                }),
                ..Default::default()
            },
        );
        assert!(matches!(failed, Error::BuildFailed { .. }));
        let frontend = Client::solve_error(
            &info,
            tonic::Status::unknown("failed to parse dockerfile"),
            progress::Summary::default(),
        );
        assert_eq!(
            frontend.to_string(),
            "build failed: failed to parse dockerfile"
        );
        let transport = Client::solve_error(
            &info,
            tonic::Status::unavailable("gone"),
            progress::Summary::default(),
        );
        assert!(matches!(transport, Error::Rpc { .. }));
    }

    #[test]
    fn build_failure_message_has_step_and_logs() {
        let e = Error::BuildFailed {
            step: "[2/2] RUN false".into(),
            error: "exit code: 1".into(),
            logs: vec!["boom".into()],
        };
        assert_eq!(
            e.to_string(),
            "build step [2/2] RUN false failed: exit code: 1\nlast log lines:\n  boom"
        );
    }

    #[test]
    fn versions_parse_leniently() {
        assert_eq!(semver_of("v0.12.5"), Some(semver::Version::new(0, 12, 5)));
        assert_eq!(
            semver_of("v0.13.0-rc1"),
            semver::Version::parse("0.13.0-rc1").ok()
        );
        assert_eq!(semver_of("v0.23.0+unknown").map(|v| v.minor), Some(23));
        assert!(random_id().len() == 25);
    }
}
