//! The crate's error type and the chain printer used by the binaries.

/// Any failure of a step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request on stdin could not be decoded.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// Some other failure, already described.
    #[error("{0}")]
    Other(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
