//! Why an image we hold could not be read, described or pushed.

use std::path::PathBuf;

use crate::registry::{Transient, chain_is_transient};

/// A failure of the image store or the pusher.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A local image (params.image, IMAGE_ARG_*) could not be read.
    #[error(transparent)]
    LocalImage(#[from] crate::image::Error),
    /// A registry call of the push.
    #[error(transparent)]
    Registry(#[from] crate::registry::Error),
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
    /// A manifest we were about to push is not valid.
    #[error("manifest {digest}: {problem}")]
    BadManifest {
        /// Its digest.
        digest: String,
        /// What is wrong.
        problem: String,
    },
    /// A blob could not be read for pushing.
    #[error("reading blob {digest}")]
    ReadBlob {
        /// Its digest.
        digest: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An attestation the put asked for is not in what BuildKit pushed.
    #[error(
        "the pushed index {digest} has no {kind} attestation (it has: {found}); no tag was moved. \
         For sbom, the scanner ran but wrote no SBOM: check that the scanner image implements \
         BuildKit's SBOM generator protocol"
    )]
    MissingAttestation {
        /// `sbom` or `provenance`.
        kind: String,
        /// The index pushed by digest.
        digest: String,
        /// The attestation kinds it has.
        found: String,
    },
    /// The registry refused a manifest that names blobs this push did not
    /// send (foreign or non-distributable layers the image does not hold).
    #[error(
        "the registry refused manifest {reference}, which names blobs this push did not send \
         because the image does not hold them ({blobs}: foreign or non-distributable layers); \
         no tag was moved. Push an image that holds those layers, or allow foreign layers on the \
         registry"
    )]
    UnsentBlobs {
        /// Tag or digest pushed.
        reference: String,
        /// The blobs not sent.
        blobs: String,
        /// The registry's answer.
        #[source]
        source: Box<crate::registry::Error>,
    },
    /// The registry's digest for a manifest differs from its bytes' digest.
    #[error("the registry stored {reference} as {got}, but the manifest pushed is {expected}")]
    DigestMismatch {
        /// Tag or digest pushed.
        reference: String,
        /// sha256 of the bytes.
        expected: String,
        /// What the registry said.
        got: String,
    },
    /// Copying to or tagging in a `replicate_to` repository failed.
    #[error("replica {repository}")]
    Replica {
        /// The replica's repository as written.
        repository: String,
        /// What failed there.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// `self`, as a failure in the replica `repository`.
    pub fn replica(self, repository: &str) -> Error {
        Error::Replica {
            repository: repository.to_string(),
            source: Box::new(self),
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Registry` and `LocalImage` are transparent, whose `source()` skips the
/// wrapped error itself: judge those before walking the chain.
impl Transient for Error {
    fn is_transient(&self) -> bool {
        match self {
            Error::Registry(e) => e.is_transient(),
            Error::LocalImage(e) => chain_is_transient(e),
            Error::UnsentBlobs { .. } => false,
            _ => chain_is_transient(self),
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Registry(e) => e.retry_after(),
            _ => None,
        }
    }
}
