//! The crate's error type and the chain printer used by the binaries.
//!
//! Each subsystem owns its error enum; [`Error`] wraps them transparently and
//! adds step-level context ("checking origin <repo> failed"). The edge
//! ([`crate::cli`]) prints `error: ` plus the whole chain joined by `: `.

use crate::registry::{Transient, chain_is_transient};

/// Any failure of a step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request on stdin could not be decoded (free-form reason).
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// The request on stdin could not be decoded or validated.
    #[error("invalid payload")]
    Config(#[source] crate::config::Error),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::Error),
    /// Reading, verifying, unpacking or writing image content failed.
    #[error(transparent)]
    Image(#[from] crate::image::Error),
    /// A step failed; `context` says which and on what.
    #[error("{context}")]
    Context {
        /// e.g. `checking origin busybox failed`.
        context: String,
        /// The underlying failure.
        #[source]
        source: Box<Error>,
    },
    /// A failure from a module without its own variant here yet.
    #[error("{context}")]
    Foreign {
        /// What was being done.
        context: String,
        /// The underlying failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// ECR authentication (`source.aws_*`) failed.
    #[error("cannot authenticate with ECR")]
    Ecr(#[source] Box<crate::ecr::Error>),
    /// A put-specific failure (params, tags, daemon, local images).
    #[error(transparent)]
    Put(#[from] crate::put::Error),
    /// Some other failure, already described.
    #[error("{0}")]
    Other(String),
    /// SIGTERM or SIGINT ended the step; `cleanup` says what was undone.
    #[error("interrupted by {signal}; {cleanup}")]
    Interrupted {
        /// `SIGTERM` or `SIGINT`.
        signal: &'static str,
        /// What the step released before exiting.
        cleanup: String,
    },
}

impl From<crate::config::Error> for Error {
    fn from(e: crate::config::Error) -> Self {
        Error::Config(e)
    }
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

/// Retry judgement for a whole step's error: the retry loop
/// ([`crate::registry::retry_transient`]) runs around steps that fail with
/// this type, so it is implemented here rather than in the registry module.
impl Transient for Error {
    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Registry(e) => e.retry_after(),
            Error::Context { source, .. } => source.retry_after(),
            _ => None,
        }
    }

    fn is_transient(&self) -> bool {
        // `Registry` is `#[error(transparent)]`, whose `source()` skips the
        // registry error itself, so match the variants before walking.
        match self {
            Error::Registry(e) => e.is_transient(),
            // Transparent too: a download cut short surfaces as an io error
            // inside an image error (unpacking, spooling).
            Error::Image(e) => chain_is_transient(e),
            Error::Context { source, .. } => source.is_transient(),
            Error::Foreign { source, .. } => chain_is_transient(source.as_ref()),
            // Other variants: walk their sources (a wrapped io error from a
            // truncated download is transient).
            _ => chain_is_transient(self),
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `err` and all its sources, joined by `: ` (one joiner for the crate,
/// in the low-level [`crate::oci`] so that `buildkit` uses it too).
pub use crate::oci::error_chain as chain;

/// A hint for errors users can fix themselves, if `message` (a chain) shows
/// one.
pub fn hint(message: &str) -> Option<&'static str> {
    if message.contains("UNAUTHORIZED")
        || message.contains("DENIED")
        || message.contains("401 Unauthorized")
        || message.contains("403 Forbidden")
        || message.contains("Authentication failure")
    {
        Some(
            "hint: the registry refused the credentials; check source.username and source.password (and registry_mirror credentials)",
        )
    } else if message.contains("connecting to buildkit at")
        && (message.contains("certificate") || message.contains("UnknownIssuer"))
    {
        // Checked before the registry case: the same rustls words, another fix.
        Some(
            "hint: the BuildKit daemon's TLS certificate is not trusted; set source.buildkit_tls.ca_cert to the CA that signed it (and server_name if the certificate names another host)",
        )
    } else if message.contains("the daemon closed the TLS connection") {
        Some(
            "hint: the BuildKit daemon closed the connection on the first call; a tcp:// daemon that verifies clients needs a client certificate: set source.buildkit_tls.cert and source.buildkit_tls.key",
        )
    } else if message.contains("certificate") || message.contains("UnknownIssuer") {
        Some(
            "hint: the registry's TLS certificate is not trusted; add its CA to source.ca_certs (plain HTTP needs source.insecure: true)",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> crate::registry::Error {
        crate::registry::Error::Status {
            request: "GET http://r/v2/x/manifests/y".into(),
            status: reqwest::StatusCode::from_u16(code).unwrap(),
            codes: vec![],
            body: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn transient_classification_sees_through_wrappers() {
        let wrapped = Error::from(status(429)).context("download failed");
        assert!(Transient::is_transient(&wrapped));
        let wrapped = Error::from(status(401)).context("download failed");
        assert!(!Transient::is_transient(&wrapped));
        let io = Error::Foreign {
            context: "unpacking layer".into(),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        };
        assert!(Transient::is_transient(&io));
        let bad = Error::Foreign {
            context: "unpacking layer".into(),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::InvalidData)),
        };
        assert!(!Transient::is_transient(&bad));
        let unpack = |kind| {
            Error::from(crate::image::Error::Unpack {
                layer: "sha256:x".into(),
                entry: String::new(),
                source: std::io::Error::from(kind),
            })
            .context("download failed")
        };
        assert!(Transient::is_transient(&unpack(
            std::io::ErrorKind::ConnectionReset
        )));
        assert!(!Transient::is_transient(&unpack(
            std::io::ErrorKind::InvalidData
        )));
    }

    #[test]
    fn chain_joins_sources_once() {
        let inner = crate::config::Error::Missing("repository");
        let e = Error::from(inner).context("checking origin x failed");
        assert_eq!(
            chain(&e),
            "checking origin x failed: invalid payload: source.repository is required"
        );
    }

    #[test]
    fn hints() {
        assert!(
            hint("GET x: UNAUTHORIZED: authentication required")
                .unwrap()
                .contains("username")
        );
        assert!(hint("fine").is_none());
        let daemon = hint(
            "connecting to buildkit at tcp://127.0.0.1:1: transport error: invalid peer certificate: UnknownIssuer",
        )
        .unwrap();
        assert!(daemon.contains("buildkit_tls.ca_cert") && !daemon.contains("ca_certs"));
        let registry = hint("GET https://r/v2/: invalid peer certificate: UnknownIssuer").unwrap();
        assert!(registry.contains("source.ca_certs"));
        assert!(
            hint("asking buildkit for its version: the daemon closed the TLS connection; ...")
                .unwrap()
                .contains("buildkit_tls.cert")
        );
    }
}
