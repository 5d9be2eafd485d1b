//! OCI image layouts on disk: a writer that never lets an unverified blob
//! into `blobs/`, and a `verify` that re-checks a whole layout.
//!
//! A blob is streamed into a temporary file inside `blobs/sha256/` while
//! being hashed; only when digest and size match the descriptor is it
//! renamed to its final name (ocidir-rs' `BlobWriter` does the same). A
//! crash or a bad download therefore leaves at most a `.tmp-*` file, never a
//! blob whose name lies about its content.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::manifest::{self, Kind};
use super::{Error, Result};
use crate::oci::{Digest, Hasher, verify_bytes};

/// Contents of the `oci-layout` file.
pub const OCI_LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Writes an OCI image layout directory.
#[derive(Debug, Clone)]
pub struct LayoutWriter {
    dir: PathBuf,
    blobs: PathBuf,
}

impl LayoutWriter {
    /// Creates `dir` (and `blobs/sha256`) and writes the `oci-layout` file.
    pub async fn create(dir: &Path) -> Result<Self> {
        let blobs = dir.join("blobs").join("sha256");
        tokio::fs::create_dir_all(&blobs)
            .await
            .map_err(|e| Error::io("creating layout directory", &blobs, e))?;
        let marker = dir.join("oci-layout");
        tokio::fs::write(&marker, OCI_LAYOUT_FILE)
            .await
            .map_err(|e| Error::io("writing", &marker, e))?;
        Ok(LayoutWriter {
            dir: dir.to_owned(),
            blobs,
        })
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob with `digest` lives (the digest is validated, so the
    /// path cannot leave `blobs/sha256`).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.blobs.join(Digest::parse(digest)?.hex()))
    }

    /// Streams `reader` into the blob `digest`, verifying digest and size
    /// before the blob appears under its name. An existing blob is kept.
    pub async fn write_blob<R: AsyncRead + Unpin>(
        &self,
        mut reader: R,
        digest: &str,
        size: u64,
    ) -> Result<()> {
        let path = self.blob_path(digest)?;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            // Content-addressed: whoever wrote it verified it. Still drain
            // nothing; the caller's reader is simply dropped.
            return Ok(());
        }
        let tmp = self.temp_path(digest)?;
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| Error::io("creating", &tmp, e))?;
            let mut hasher = Hasher::default();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = reader
                    .read(&mut buf)
                    .await
                    .map_err(|e| Error::Stream(format!("downloading blob {digest}"), e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                if hasher.len() > size {
                    break;
                }
                file.write_all(&buf[..n])
                    .await
                    .map_err(|e| Error::io("writing", &tmp, e))?;
            }
            hasher.verify(&format!("blob {digest}"), digest, size)?;
            file.flush()
                .await
                .map_err(|e| Error::io("writing", &tmp, e))?;
            drop(file);
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(|e| Error::io("renaming blob into place at", &path, e))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// Writes a small blob held in memory, verified like any other.
    pub async fn write_blob_bytes(&self, bytes: &[u8], digest: &str) -> Result<()> {
        verify_bytes(&format!("blob {digest}"), bytes, digest, None)?;
        let path = self.blob_path(digest)?;
        let tmp = self.temp_path(digest)?;
        tokio::fs::write(&tmp, bytes)
            .await
            .map_err(|e| Error::io("writing", &tmp, e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| Error::io("renaming blob into place at", &path, e))
    }

    /// Writes `index.json` with exactly these bytes (atomically).
    pub async fn write_index_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.write_file("index.json", bytes).await
    }

    /// Writes a top-level file of the layout (atomically).
    pub async fn write_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, bytes)
            .await
            .map_err(|e| Error::io("writing", &tmp, e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| Error::io("renaming into place", &path, e))
    }

    fn temp_path(&self, digest: &str) -> Result<PathBuf> {
        let digest = Digest::parse(digest)?;
        let hex = digest.hex();
        let unique: u64 = rand::random();
        Ok(self.blobs.join(format!(".tmp-{hex}-{unique:016x}")))
    }
}

/// An index wrapping one image manifest, as written for a single-image
/// `oci-layout` get. `ref_name` (the tag) lets `umoci`/`skopeo` address it.
pub fn single_image_index(
    media_type: &str,
    digest: &str,
    size: u64,
    ref_name: Option<&str>,
) -> Vec<u8> {
    let mut desc = serde_json::json!({
        "mediaType": media_type,
        "digest": digest,
        "size": size,
    });
    if let Some(name) = ref_name.filter(|n| !n.is_empty()) {
        desc["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": name });
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": [desc],
    });
    serde_json::to_vec(&index).expect("serialising json values cannot fail")
}

/// What [`verify`] checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Image manifests reached from `index.json`.
    pub images: usize,
    /// Distinct blobs verified (manifests, indexes, configs, layers).
    pub blobs: usize,
}

/// The `imageLayoutVersion` of the layout's `oci-layout` file: the file is
/// what tells a layout from any other directory.
pub(crate) fn marker_version(dir: &Path) -> Result<String> {
    let marker = dir.join("oci-layout");
    let text = std::fs::read(&marker).map_err(|e| Error::io("reading", &marker, e))?;
    let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| Error::Parse {
        what: marker.display().to_string(),
        message: e.to_string(),
    })?;
    match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
        Some(version) => Ok(version.to_string()),
        None => Err(Error::Parse {
            what: marker.display().to_string(),
            message: "no imageLayoutVersion".into(),
        }),
    }
}

/// Re-verifies a whole layout: `oci-layout`, then every blob reachable from
/// `index.json` (nested indexes, manifests, configs, layers) against its
/// descriptor's digest and size. Reads blobs in a streaming fashion.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    if marker_version(dir)? != "1.0.0" {
        return Err(Error::Parse {
            what: dir.join("oci-layout").display().to_string(),
            message: "imageLayoutVersion is not 1.0.0".into(),
        });
    }
    let index_path = dir.join("index.json");
    let index_bytes =
        std::fs::read(&index_path).map_err(|e| Error::io("reading", &index_path, e))?;
    let mut report = VerifyReport::default();
    let mut seen = HashSet::new();
    verify_index(dir, "index.json", &index_bytes, &mut seen, &mut report)?;
    report.blobs = seen.len();
    Ok(report)
}

fn verify_index(
    dir: &Path,
    what: &str,
    bytes: &[u8],
    seen: &mut HashSet<String>,
    report: &mut VerifyReport,
) -> Result<()> {
    let index = manifest::parse_index(what, bytes)?;
    for d in index.manifests() {
        let digest = d.digest().to_string();
        let blob = read_verified(dir, &digest, d.size(), seen)?;
        let Some(blob) = blob else { continue };
        match manifest::classify(&digest, Some(d.media_type().as_ref()), &blob)? {
            Kind::Index => verify_index(dir, &digest, &blob, seen, report)?,
            Kind::Image => {
                report.images += 1;
                let m = manifest::parse_image(&digest, &blob)?;
                let c = m.config();
                read_verified(dir, c.digest().as_ref(), c.size(), seen)?;
                for l in m.layers() {
                    stream_verified(dir, l.digest().as_ref(), l.size(), seen)?;
                }
            }
        }
    }
    Ok(())
}

fn blob_file(dir: &Path, digest: &str) -> Result<PathBuf> {
    Ok(dir
        .join("blobs")
        .join("sha256")
        .join(Digest::parse(digest)?.hex()))
}

/// Reads a small blob and verifies it; `None` if already seen.
fn read_verified(
    dir: &Path,
    digest: &str,
    size: u64,
    seen: &mut HashSet<String>,
) -> Result<Option<Vec<u8>>> {
    let path = blob_file(dir, digest)?;
    let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
    verify_bytes(&path.display().to_string(), &bytes, digest, Some(size))?;
    Ok(seen.insert(digest.to_owned()).then_some(bytes))
}

fn stream_verified(dir: &Path, digest: &str, size: u64, seen: &mut HashSet<String>) -> Result<()> {
    if !seen.insert(digest.to_owned()) {
        return Ok(());
    }
    let path = blob_file(dir, digest)?;
    let mut file = std::fs::File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n =
            std::io::Read::read(&mut file, &mut buf).map_err(|e| Error::io("reading", &path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.verify(&path.display().to_string(), digest, size)?)
}

/// `sha256:<hex>` of a file on disk, streamed.
pub fn file_digest(path: &Path) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n =
            std::io::Read::read(&mut file, &mut buf).map_err(|e| Error::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let len = hasher.len();
    Ok((hasher.finish().into_string(), len))
}

#[cfg(test)]
mod tests;
