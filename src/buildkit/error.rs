//! The BuildKit client's errors.

use std::path::PathBuf;

use super::session;

/// Errors of the BuildKit client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The daemon's own push stood still (see `PushWatch`): the solve was
    /// cancelled.
    #[error(
        "the daemon's push made no progress for {}s (source.registry_timeout): the registry \
         stopped taking data or answering; the build was cancelled and no tag moved",
        idle.as_secs()
    )]
    PushStalled {
        /// How long it stood still.
        idle: std::time::Duration,
    },
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
    /// The daemon did not accept the connection and answer its first call
    /// (`Info`) in time: a host that accepts but never speaks gRPC, or one
    /// that stopped responding, must not hang the step silently.
    #[error(
        "buildkit_host {address} did not answer within {}: connecting and asking for its version; \
         check that a BuildKit daemon is running there, or raise source.buildkit_timeout if it is only slow",
        seconds(.timeout)
    )]
    NoAnswer {
        /// The address dialled.
        address: String,
        /// The deadline that passed.
        timeout: std::time::Duration,
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
    /// The ssh client behind an `ssh://` address failed (its own words:
    /// host key, authentication, connection or remote command errors).
    #[error("the ssh connection to {address} failed: {message}")]
    Ssh {
        /// The `ssh://` address.
        address: String,
        /// What ssh (or the remote dial-stdio command) reported.
        message: String,
    },
    /// The local side of an `ssh://` tunnel could not be set up.
    #[error("setting up the ssh tunnel to {address}: {what}")]
    SshSetup {
        /// The `ssh://` address.
        address: String,
        /// The step that failed.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
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

fn seconds(d: &std::time::Duration) -> String {
    format!("{}s", d.as_secs_f64())
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

pub(crate) use crate::oci::error_chain;
