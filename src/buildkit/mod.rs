//! A BuildKit client written from BuildKit's wire protocol: connect to a
//! daemon (buildkitd on unix/TCP+mTLS, or a Docker Engine's built-in
//! BuildKit, either also over `ssh://`), probe it, and run a `dockerfile.v0` solve with a session that
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

mod client;
pub mod docker_engine;
mod error;
pub mod fsutil;
mod info;
pub mod patterns;
pub mod progress;
pub mod proto;
mod request;
mod session;
mod ssh;
mod transport;

pub use client::{Client, DEFAULT_ANSWER_TIMEOUT, PushWatch};
pub(crate) use client::{MAX_MESSAGE_SIZE, random_id};
pub(crate) use error::error_chain;
pub use error::{Error, Result};
pub use info::{Capabilities, DaemonInfo, DaemonKind};
pub use request::{
    CacheEntry, Exporter, RegistryAuth, Secret, SecretSource, SessionOptions, SolveOutcome,
    SolveRequest, SshKind, SshSource,
};
pub use session::SessionTunnel;
pub use ssh::{SshCredentials, SshTarget, SshTunnel};
pub use transport::{Address, DEFAULT_DOCKER_SOCKET, TlsConfig};
