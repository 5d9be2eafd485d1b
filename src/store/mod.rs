//! The image store and pusher: images we hold rather than BuildKit's
//! (a `params.image` tarball or layout, `IMAGE_ARG_*` and `load_base`
//! images, what a Docker Engine built, a daemonless layer append), each seen
//! through one view, [`ImageStore`].
//!
//! - [`prebuilt`]: OCI layouts and docker-save tarballs on disk as stores;
//! - [`manifest`]: the manifests we write ourselves, and layer gzip;
//! - [`layer`] and [`edit`]: a layer made of the put's files, and the base
//!   image's config, manifest and index edited to carry it (`params.layers`);
//! - [`merge`]: images of one platform each merged into one index;
//! - [`push`]: pushing a store to a registry, blobs first, tags last;
//! - [`replicate`]: copying a pushed image to more repositories, then the
//!   tags in all of them;
//! - [`loopback`]: a read-only registry on 127.0.0.1 serving stores to
//!   BuildKit;
//! - [`Error`]: why any of it failed.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tokio::io::AsyncRead;

pub mod edit;
mod error;
pub mod layer;
pub mod loopback;
pub mod manifest;
pub mod merge;
pub mod prebuilt;
pub mod push;
pub mod replicate;

pub use error::{Error, Result};

/// A manifest or index held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedManifest {
    /// Its media type (sent as Content-Type).
    pub media_type: String,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    /// The exact bytes.
    pub bytes: Bytes,
}

/// An open blob.
pub type BlobReader = Box<dyn AsyncRead + Send + Unpin>;

/// Future returned by [`ImageStore::open_blob`].
pub type OpenBlob = Pin<Box<dyn Future<Output = std::io::Result<BlobReader>> + Send>>;

/// One image as the registry sees it.
pub trait ImageStore: Send + Sync + 'static {
    /// What a tag resolves to: the top manifest or index.
    fn top(&self) -> &ServedManifest;
    /// A manifest or index of this image, by digest.
    fn manifest(&self, digest: &str) -> Option<&ServedManifest>;
    /// A blob's size, if this image has it.
    fn blob_size(&self, digest: &str) -> Option<u64>;
    /// Opens a blob that [`ImageStore::blob_size`] knows.
    fn open_blob(&self, digest: &str) -> OpenBlob;
}

/// An image held entirely in memory (tests, and small synthesized images).
#[derive(Debug, Clone)]
pub struct MemoryImage {
    /// The top manifest or index.
    pub top: ServedManifest,
    /// Child manifests of an index.
    pub children: Vec<ServedManifest>,
    /// Blobs by digest.
    pub blobs: BTreeMap<String, Bytes>,
}

impl ImageStore for MemoryImage {
    fn top(&self) -> &ServedManifest {
        &self.top
    }
    fn manifest(&self, digest: &str) -> Option<&ServedManifest> {
        std::iter::once(&self.top)
            .chain(&self.children)
            .find(|m| m.digest == digest)
    }
    fn blob_size(&self, digest: &str) -> Option<u64> {
        self.blobs.get(digest).map(|b| b.len() as u64)
    }
    fn open_blob(&self, digest: &str) -> OpenBlob {
        let blob = self.blobs.get(digest).cloned();
        Box::pin(async move {
            let blob = blob.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
            Ok(Box::new(std::io::Cursor::new(blob)) as BlobReader)
        })
    }
}
