//! Container images on disk: everything `get` writes and `put` reads.
//!
//! The registry module moves bytes; this module decides what they mean and
//! where they land. Layers are unpacked into a rootfs by our own in-root path
//! resolver ([`rootfs`]), written as an OCI image layout ([`layout`]) or as a
//! `docker save` tarball ([`docker_archive`]), and described to the user
//! ([`metadata`]). [`fetch`] drives a download from any [`fetch::BlobSource`]
//! (the registry client in production, a local layout in tests) in one
//! streaming pass; [`load`] reads the image files `put` is asked to push.

pub mod compression;
pub mod docker_archive;
pub mod fetch;
pub mod layout;
pub mod load;
pub mod manifest;
pub mod metadata;
pub mod platform;
pub mod rootfs;

use std::path::PathBuf;

/// A failure while reading, writing or unpacking image content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A digest string is not `sha256:<64 lower-case hex>`.
    #[error("invalid digest {0:?}: expected sha256:<64 hex characters>")]
    InvalidDigest(String),
    /// Content is not what its descriptor promised (digest or size).
    #[error(transparent)]
    Verify(#[from] crate::oci::VerifyError),
    /// A manifest, index or config could not be parsed.
    #[error("parsing {what}: {message}")]
    Parse {
        /// The document (with its digest or path).
        what: String,
        /// What was wrong with it.
        message: String,
    },
    /// A layer entry tried to leave the rootfs or is otherwise unacceptable.
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The layer digest (or a description of it).
        layer: String,
        /// The entry path as written in the tar.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// An I/O error while unpacking a layer into the rootfs.
    #[error("layer {layer}: {}", unpack_step(entry))]
    Unpack {
        /// The layer digest.
        layer: String,
        /// The entry being unpacked (empty when reading the stream itself).
        entry: String,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error on a named file or directory.
    // The path may hold a tar entry's name, which may hold terminal
    // controls: escaped.
    #[error("{action} {}", crate::text::escape_line(&path.display().to_string()))]
    Io {
        /// What was being done ("writing", "reading", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error on a stream that has no path (a download, a pipe).
    #[error("{0}")]
    Stream(String, #[source] std::io::Error),
    /// No manifest in an index matches the wanted platform.
    #[error("no child with platform {wanted} in index {index}")]
    NoMatchingPlatform {
        /// The wanted platform, `os/arch[/variant]`.
        wanted: String,
        /// The index digest.
        index: String,
    },
    /// A manifest is of a kind we cannot use.
    #[error("unsupported manifest {what}: {reason}")]
    Unsupported {
        /// The manifest digest or path.
        what: String,
        /// Why.
        reason: String,
    },
    /// A manifest whose config is not an image config: an artifact (a Helm
    /// chart, an OCI 1.1 artifact, a signature bundle), not a container image.
    #[error(
        "{what} is not a container image: its config is {config_media_type:?}, not an OCI or Docker \
         image config (an artifact such as a Helm chart cannot be unpacked or run)"
    )]
    NotAnImage {
        /// The manifest digest or path.
        what: String,
        /// The config's media type.
        config_media_type: String,
    },
    /// A background task panicked or was cancelled.
    #[error("{0}: background task failed")]
    Task(&'static str, #[source] tokio::task::JoinError),
}

fn unpack_step(entry: &str) -> String {
    if entry.is_empty() {
        "reading the layer stream".to_owned()
    } else {
        format!("unpacking {entry:?}")
    }
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The I/O error at the root of this failure, if any.
    ///
    /// The retry loop uses it: a download cut short (unexpected EOF,
    /// connection reset) surfaces here while unpacking, and is transient.
    pub fn io_source(&self) -> Option<&std::io::Error> {
        match self {
            Error::Unpack { source, .. } | Error::Io { source, .. } | Error::Stream(_, source) => {
                Some(source)
            }
            _ => None,
        }
    }
}

impl From<crate::oci::DigestError> for Error {
    fn from(e: crate::oci::DigestError) -> Error {
        Error::InvalidDigest(e.0)
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
