//! What a solve asks for ([`SolveRequest`]), what its session serves
//! ([`SessionOptions`]) and what it returns ([`SolveOutcome`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use crate::secret::Secret;

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

#[cfg(test)]
mod tests;
