//! Why a build daemon could not be set up, started or run: one type for the
//! whole part, from the config file to the process.

use std::path::PathBuf;

/// Why the daemon could not be set up or started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No address configured and no `buildkitd` to run.
    #[error(
        "no BuildKit daemon to build with: set source.buildkit_host (unix:///path, tcp://host:port, \
         docker:///var/run/docker.sock or ssh://user@host), set BUILDKIT_HOST, or run this resource from an image with \
         `buildkitd` on PATH (the resource image has it) to use the embedded daemon"
    )]
    NotConfigured,
    /// The user's extra config is not TOML.
    #[error("buildkit_extra_config is not valid TOML")]
    ExtraConfig(#[source] toml::de::Error),
    /// The generated config could not be serialised (a bug).
    #[error("rendering buildkitd.toml")]
    Render(#[source] toml::ser::Error),
    /// The private root could not be prepared.
    #[error("preparing the buildkitd root {}", path.display())]
    Root {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No way to run the daemon here (see [`super::mode`]).
    #[error(
        "the embedded buildkitd cannot run in this container: tried {tried}; give the resource type \
         `privileged: true` in the pipeline's resource_types, or build on another daemon with \
         source.buildkit_host"
    )]
    Unavailable {
        /// What was tried and why it cannot work, on one line.
        tried: String,
    },

    /// The log file could not be created.
    #[error("creating the buildkitd log {}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The binary could not be started.
    #[error("starting {}", binary.display())]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The daemon exited while starting.
    #[error("buildkitd exited while starting ({status}); last lines of its log:\n{tail}")]
    Exited {
        /// Exit status.
        status: String,
        /// Log tail.
        tail: String,
    },
    /// The daemon did not answer in time.
    #[error("buildkitd did not answer on {} within {secs}s; last lines of its log:\n{tail}", socket.display())]
    Timeout {
        /// The socket polled.
        socket: PathBuf,
        /// The timeout.
        secs: u64,
        /// Log tail.
        tail: String,
    },
}

/// A result of this part.
pub type Result<T, E = Error> = std::result::Result<T, E>;
