//! What a daemon is and can do, found out by asking it: `Info` (absent
//! before v0.11, e.g. Docker 20.10), `ListWorkers` labels (containerd image
//! store on Engines) and, for Docker Engines, the Engine version.

use super::proto::moby::buildkit::v1 as control;
use super::{Address, Client, Error, Result, docker_engine};

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

/// What the first call failed at. A daemon that verifies client
/// certificates ends the TLS session of a client without one only after the
/// handshake, so the failure shows up here, as a closed connection, and not
/// when connecting.
fn first_call_failure(address: &Address, status: &tonic::Status) -> &'static str {
    let closed = matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown
    );
    match address {
        Address::Tcp { tls: Some(tls), .. } if closed && tls.cert.is_none() => {
            "asking buildkit for its version: the daemon closed the TLS connection; \
             a daemon that verifies clients needs a client certificate (buildkit_tls cert and key)"
        }
        _ => "asking buildkit for its version",
    }
}

impl Client {
    pub(super) async fn probe(&self) -> Result<DaemonInfo> {
        let mut control = self.control();
        let buildkit_version = match control.info(control::InfoRequest {}).await {
            Ok(r) => r.into_inner().buildkit_version.map(|v| v.version),
            Err(s) if s.code() == tonic::Code::Unimplemented => None,
            Err(source) => {
                return Err(Error::Rpc {
                    what: first_call_failure(self.address(), &source),
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
        let engine_version = match self.address().docker_socket() {
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
}

#[cfg(test)]
mod tests;
