//! The `put` build: params → BuildKit solve request, the tags to move, the
//! read-only registry that serves preloaded images to BuildKit, and pushing
//! results that do not go straight from BuildKit to the registry.

pub mod attest;
pub mod engine;
pub mod existing;
pub mod layers;
pub mod run;
pub mod solve;
pub mod tags;
pub mod transient;
pub mod unchanged;

use std::path::PathBuf;

use crate::config::Source;
use crate::config::put::ParamsError;
use crate::daemon::Error as DaemonError;
use crate::registry::{self, Access, Client, Credentials, Repository};

/// A failure of the put-specific parts (params, tags, daemon, images,
/// pushes we do ourselves). Registry and BuildKit client errors keep their
/// own types.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid params.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// A local image (params.image, IMAGE_ARG_*) could not be read.
    #[error(transparent)]
    LocalImage(#[from] crate::image::Error),
    /// Invalid tags.
    #[error(transparent)]
    Tags(#[from] tags::TagError),
    /// A build the daemon cannot do.
    #[error(transparent)]
    Plan(#[from] solve::PlanError),
    /// An attestation that cannot be attached.
    #[error(transparent)]
    Attest(#[from] attest::AttestError),
    /// The embedded daemon.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// An image we hold: reading, describing or pushing it.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// A registry call of our own (tags, the base of a layer append).
    #[error(transparent)]
    Registry(#[from] crate::registry::Error),
    /// A step failed; `context` says which and on what.
    #[error("{context}")]
    Context {
        /// e.g. `reading the base image <name>`.
        context: String,
        /// The underlying failure.
        #[source]
        source: Box<Error>,
    },
    /// SIGTERM or SIGINT ended the put; `cleanup` says what was undone.
    #[error("interrupted by {signal}; {cleanup}")]
    Interrupted {
        /// `SIGTERM` or `SIGINT`.
        signal: &'static str,
        /// What the put released before exiting.
        cleanup: String,
    },
    /// The BuildKit client (connection, solve, Engine API).
    #[error(transparent)]
    Buildkit(#[from] crate::buildkit::Error),
    /// An image on disk that cannot be used.
    #[error("image {}: {problem}", path.display())]
    Image {
        /// The path given.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Local I/O.
    #[error("{what}")]
    Io {
        /// What we were doing.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The loopback registry could not listen.
    #[error("starting the loopback registry for preloaded images")]
    ImageRegistry(#[source] std::io::Error),
    /// A blob could not be read for pushing.
    #[error("reading blob {digest}")]
    ReadBlob {
        /// Its digest.
        digest: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// BuildKit finished without telling the pushed digest.
    #[error("BuildKit reported no image digest (its exporter response had: {0})")]
    NoDigest(String),
    /// Preloaded images that a remote daemon cannot reach.
    #[error(
        "{params} cannot be used with the buildkitd at {address}: their images are served on this \
         container's 127.0.0.1, which a daemon reached over TCP or ssh cannot reach; push them to a registry and \
         name them in FROM/build_args, or build on the embedded buildkitd or a unix:// or docker:// socket \
         on this host"
    )]
    PreloadUnreachable {
        /// The params that need the loopback registry.
        params: String,
        /// The daemon address.
        address: String,
    },
    /// `ssh: default` without an agent.
    #[error("ssh id {0:?} names no key or socket, and SSH_AUTH_SOCK is not set")]
    NoSshAgent(String),
}

impl Error {
    /// Wraps `self` with step context.
    pub fn context(self, context: impl Into<String>) -> Error {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A client pulling from `repo` as a build's `FROM` would (see
/// `put::run`): the source's credentials on the source's registry, an
/// `additional_registries` entry's on its host, else anonymous; the source's
/// CA and timeouts either way. For `params.layers`' base and the SBOM scanner.
pub(crate) fn pull_client(source: &Source, repo: &Repository) -> registry::Result<Client> {
    let same_host =
        |h: &str| h == repo.registry || (repo.is_docker_hub() && registry::is_docker_hub_host(h));
    let credentials = if same_host(&source.repository.registry) {
        Credentials::from_parts(source.username.as_deref(), source.password.as_ref())
    } else {
        source
            .additional_registries
            .iter()
            .find(|r| same_host(&r.host))
            .map(|r| Credentials::from_parts(r.username.as_deref(), r.password.as_ref()))
            .unwrap_or_default()
    };
    Client::new(repo, credentials, &source.tls_options(), Access::Pull)
}
