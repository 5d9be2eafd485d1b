//! [`Client`]: connect to a daemon, check a request against what it can do,
//! and run a solve with its session and progress.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::task::JoinHandle;
use tonic::transport::Channel;

use super::proto::moby::buildkit::v1 as control;
use super::proto::moby::buildkit::v1::control_client::ControlClient;
use super::{
    Address, CacheEntry, DaemonInfo, Error, Result, SessionOptions, SessionTunnel, SolveOutcome,
    SolveRequest, progress, session, transport,
};

/// Default deadline for [`Client::connect_and_probe`] (`source.buildkit_timeout`).
/// A running daemon accepts and answers `Info` within milliseconds, and over
/// a slow network or TLS within a few seconds; 30 s (Go's dial timeout,
/// which registry-image uses for registries) leaves room for a loaded
/// Docker Engine while still failing a dead host quickly.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// gRPC message size limit both ways, as the Go client and buildkitd use.
pub(crate) const MAX_MESSAGE_SIZE: usize = 16 << 20;

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

    /// Connects and probes the daemon ([`Client::info`]) within `timeout`,
    /// failing with [`Error::NoAnswer`] naming the address and the timeout
    /// when the daemon does not answer by then.
    pub async fn connect_and_probe(
        address: &Address,
        timeout: Duration,
    ) -> Result<(Client, DaemonInfo)> {
        let work = async {
            let client = Client::connect(address).await?;
            let info = client.info().await?;
            Ok::<_, Error>((client, info))
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| Error::NoAnswer {
                address: address.to_string(),
                timeout,
            })?
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
        self.solve_watched(req, session_options, printer, None)
            .await
    }

    /// [`Client::solve`], cancelled with [`Error::PushStalled`] when the
    /// daemon's own push stands still for `watch.idle` (see [`PushWatch`]).
    pub async fn solve_with_push_watch(
        &self,
        req: SolveRequest,
        session_options: SessionOptions,
        watch: PushWatch,
    ) -> Result<SolveOutcome> {
        self.solve_watched(
            req,
            session_options,
            progress::Printer::stderr(),
            Some(watch),
        )
        .await
    }

    async fn solve_watched(
        &self,
        req: SolveRequest,
        session_options: SessionOptions,
        printer: progress::Printer,
        watch: Option<PushWatch>,
    ) -> Result<SolveOutcome> {
        let info = self.info().await?;
        Self::check(&info, &req, &session_options)?;

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
        let solve_req = wire_request(&req, build_ref.clone(), session.id.clone());
        let status = StatusWatch::start(self.control.clone(), build_ref, printer);

        let mut control = self.control.clone();
        let solve = control.solve(solve_req);
        let result = match &watch {
            None => solve.await,
            Some(watch) => tokio::select! {
                result = solve => result,
                idle = status.push_stalled(watch) => {
                    session.close().await;
                    let _ = status.finish().await;
                    return Err(Error::PushStalled { idle });
                }
            },
        };
        tracing::debug!(ok = result.is_ok(), "solve returned");
        session.close().await;
        tracing::debug!("session closed");
        let printer = status.finish().await;
        Self::outcome(&info, result, printer)
    }

    /// The exporter response with the build's counts, or the solve's error;
    /// the failing step's logs are printed again first, since other
    /// vertices' output may have scrolled them away.
    fn outcome(
        info: &DaemonInfo,
        result: std::result::Result<tonic::Response<control::SolveResponse>, tonic::Status>,
        mut printer: Option<progress::Printer>,
    ) -> Result<SolveOutcome> {
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
                Err(Self::solve_error(info, status, summary))
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

/// The wire form of `req` for the build `build_ref` in `session`.
fn wire_request(req: &SolveRequest, build_ref: String, session: String) -> control::SolveRequest {
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
    control::SolveRequest {
        r#ref: build_ref,
        // Old daemons read only these two fields; new ones prefer 13.
        exporter_deprecated: exporters
            .first()
            .map(|e| e.r#type.clone())
            .unwrap_or_default(),
        exporter_attrs_deprecated: exporters
            .first()
            .map(|e| e.attrs.clone())
            .unwrap_or_default(),
        session,
        frontend: req.frontend.clone(),
        frontend_attrs: frontend_attrs(req).into_iter().collect(),
        cache: Some(control::CacheOptions {
            exports: req.cache_exports.iter().map(entry).collect(),
            imports: req.cache_imports.iter().map(entry).collect(),
        }),
        entitlements: req.entitlements.clone(),
        internal: false,
        exporters,
    }
}

/// The frontend attributes, with `cache-imports` filled in from the cache
/// imports unless the caller set it: the frontend resolves cache for its
/// own sub-solves from this attribute, and `Cache.Imports` alone is not
/// enough.
fn frontend_attrs(req: &SolveRequest) -> BTreeMap<String, String> {
    let mut frontend_attrs = req.frontend_attrs.clone();
    if !req.cache_imports.is_empty() && !frontend_attrs.contains_key("cache-imports") {
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
    frontend_attrs
}

/// The least a pushing daemon writes in `PushWatch::idle` to count as
/// moving: its session with us (health checks, progress) writes a few
/// hundred bytes a second on its own, and a push moves megabytes.
const PUSH_FLOOR: u64 = 64 << 10;

/// What tells a stalled push from a slow one on a daemon that pushes by
/// itself: BuildKit's progress shows a push only as started and finished,
/// so the watch reads a counter of the bytes the daemon writes while a push
/// runs, and gives up when fewer than [`PUSH_FLOOR`] went out in `idle`.
#[derive(Clone)]
pub struct PushWatch {
    /// How long a push may stand still (`source.registry_timeout`).
    pub idle: Duration,
    /// Bytes the daemon wrote so far, `None` when that cannot be read.
    pub activity: std::sync::Arc<dyn Fn() -> Option<u64> + Send + Sync>,
}

impl std::fmt::Debug for PushWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushWatch")
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

/// The build's `Status` stream, read and printed while the solve runs. The
/// printer is shared, so that its failure report survives a reader that is
/// cancelled or ended by a broken stream.
struct StatusWatch {
    task: JoinHandle<()>,
    printer: std::sync::Arc<std::sync::Mutex<progress::Printer>>,
}

impl StatusWatch {
    fn start(
        mut client: ControlClient<Channel>,
        build_ref: String,
        printer: progress::Printer,
    ) -> StatusWatch {
        let printer = std::sync::Arc::new(std::sync::Mutex::new(printer));
        let shared = printer.clone();
        let task = tokio::spawn(async move {
            let stream = client
                .status(control::StatusRequest { r#ref: build_ref })
                .await;
            let mut stream = match stream {
                Ok(stream) => stream.into_inner(),
                Err(status) => {
                    tracing::warn!(
                        "reading the build's progress failed ({}): the build goes on without it",
                        status.message()
                    );
                    return;
                }
            };
            loop {
                match stream.message().await {
                    Ok(Some(msg)) => shared
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .update(&msg),
                    Ok(None) => break,
                    Err(status) => {
                        tracing::warn!(
                            "the build's progress stream broke ({}): no more progress is shown, \
                             the build goes on",
                            status.message()
                        );
                        break;
                    }
                }
            }
        });
        StatusWatch { task, printer }
    }

    /// Returns (with the idle time) once a push has run for `watch.idle`
    /// while the daemon wrote less than [`PUSH_FLOOR`]; never while nothing
    /// is pushed.
    async fn push_stalled(&self, watch: &PushWatch) -> Duration {
        let mut still_since: Option<(std::time::Instant, u64)> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            let pushing = self
                .printer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pushing();
            if !pushing {
                still_since = None;
                continue;
            }
            let Some(now) = (watch.activity)() else {
                still_since = None;
                continue;
            };
            match still_since {
                Some((since, at)) if now.saturating_sub(at) < PUSH_FLOOR => {
                    if since.elapsed() >= watch.idle {
                        return watch.idle;
                    }
                }
                _ => still_since = Some((std::time::Instant::now(), now)),
            }
        }
    }

    /// The printer once the stream has ended, or once 10 s passed after the
    /// solve's answer (the reader is then cancelled; what it read stays).
    async fn finish(self) -> Option<progress::Printer> {
        // The status stream ends when the job ends; don't hang on it.
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(10), &mut task)
            .await
            .is_err()
        {
            task.abort();
            let _ = task.await;
        }
        let printer = std::sync::Arc::try_unwrap(self.printer).ok()?;
        Some(printer.into_inner().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildkit::{Capabilities, DaemonKind, Exporter};

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
    fn random_ids_are_like_the_go_clients() {
        let id = random_id();
        assert_eq!(id.len(), 25);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }

    /// A tcp:// host that accepts connections and never answers (no HTTP/2
    /// settings, no `Info` reply) fails within the deadline with a message
    /// naming the address and the timeout. Without the deadline the probe
    /// would wait forever (the outer timeout here turns that into a
    /// failure).
    #[tokio::test]
    async fn a_silent_tcp_daemon_fails_within_the_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                open.push(sock);
            }
        });
        let address = Address::parse(&format!("tcp://127.0.0.1:{port}"), None).unwrap();
        let start = std::time::Instant::now();
        let err = tokio::time::timeout(
            Duration::from_secs(20),
            Client::connect_and_probe(&address, Duration::from_millis(500)),
        )
        .await
        .expect("the probe of a silent daemon hung")
        .map(|_| ())
        .unwrap_err();
        assert!(matches!(err, Error::NoAnswer { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "buildkit_host tcp://127.0.0.1:{port} did not answer within 0.5s"
            )) && text.contains("source.buildkit_timeout"),
            "{text}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        held.abort();
    }
}
