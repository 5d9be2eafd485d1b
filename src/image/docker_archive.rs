//! Writing `docker save` tarballs as a stream (`get` with `format: oci`).
//!
//! The layout follows registry-image (and ggcr's `tarball.Write`): the config
//! as an entry named `sha256:<hex>`, each layer as `<hex>.tar.gz`
//! (`.tar.zst`, `.tar` by content), then `manifest.json`:
//! `[{"Config":"sha256:..","RepoTags":["repo:tag"],"Layers":[..]}]`. Entries
//! are written with their size known up front from the descriptor, so a layer
//! goes from the network into the archive without being held anywhere; a
//! blob of another length is an error, not a corrupt archive.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::compression::Compression;
use super::{Error, Result};
use crate::oci::{Digest, VerifyError};

/// A streaming `docker save` tarball writer.
pub struct DockerArchiveWriter<W> {
    out: W,
    config: Option<String>,
    layers: Vec<String>,
}

fn entry_header(name: &str, size: u64) -> Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)
        .map_err(|e| Error::Stream(format!("naming archive entry {name}"), e))?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

impl<W: AsyncWrite + Unpin> DockerArchiveWriter<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        DockerArchiveWriter {
            out,
            config: None,
            layers: Vec::new(),
        }
    }

    async fn write(&mut self, what: &str, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .await
            .map_err(|e| Error::Stream(format!("writing {what} to image archive"), e))
    }

    /// Adds the image config blob.
    pub async fn append_config(&mut self, digest: &str, bytes: &[u8]) -> Result<()> {
        let name = Digest::parse(digest)?.into_string();
        let h = entry_header(&name, bytes.len() as u64)?;
        self.write(&name, h.as_bytes()).await?;
        self.write(&name, bytes).await?;
        self.write(&name, &vec![0u8; padding(bytes.len() as u64)])
            .await?;
        self.config = Some(name);
        Ok(())
    }

    /// Lists an already written layer again, at the next position. An image
    /// may hold one layer twice; `docker save` and ggcr store it once.
    /// Returns false when `digest` has not been written yet.
    pub fn repeat_layer(&mut self, digest: &str) -> Result<bool> {
        let digest = Digest::parse(digest)?;
        let hex = digest.hex();
        let Some(name) = self
            .layers
            .iter()
            .find(|n| n.split('.').next() == Some(hex))
            .cloned()
        else {
            return Ok(false);
        };
        self.layers.push(name);
        Ok(true)
    }

    /// Streams a layer of exactly `size` bytes into the archive; the entry
    /// suffix follows the compression found in its first bytes.
    pub async fn append_layer<R: AsyncRead + Unpin>(
        &mut self,
        digest: &str,
        size: u64,
        mut reader: R,
    ) -> Result<()> {
        let hex = Digest::parse(digest)?.hex().to_owned();
        let stream_err = |e| Error::Stream(format!("reading layer {digest}"), e);
        let mut prefix = [0u8; 4];
        let mut have = 0;
        while have < 4 && (have as u64) < size {
            let n = reader.read(&mut prefix[have..]).await.map_err(stream_err)?;
            if n == 0 {
                break;
            }
            have += n;
        }
        let name = format!("{hex}{}", Compression::sniff(&prefix[..have]).tar_suffix());
        let h = entry_header(&name, size)?;
        self.write(&name, h.as_bytes()).await?;
        self.write(&name, &prefix[..have]).await?;
        let mut written = have as u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf).await.map_err(stream_err)?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > size {
                break;
            }
            self.write(&name, &buf[..n]).await?;
        }
        if written != size {
            let (what, expected, actual) = (format!("layer {digest}"), size, written);
            return Err(Error::Verify(if written < size {
                VerifyError::Truncated {
                    what,
                    expected,
                    actual,
                }
            } else {
                VerifyError::SizeMismatch {
                    what,
                    expected,
                    actual,
                }
            }));
        }
        self.write(&name, &vec![0u8; padding(size)]).await?;
        self.layers.push(name);
        Ok(())
    }

    /// Writes `manifest.json` and the end-of-archive marker; returns the
    /// underlying writer, flushed.
    pub async fn finish(mut self, repo_tags: &[String]) -> Result<W> {
        let config = self.config.clone().ok_or_else(|| Error::Unsupported {
            what: "image archive".into(),
            reason: "no config was written".into(),
        })?;
        let manifest = serde_json::to_vec(&serde_json::json!([{
            "Config": config,
            "RepoTags": repo_tags,
            "Layers": self.layers,
        }]))
        .expect("serialising json values cannot fail");
        let h = entry_header("manifest.json", manifest.len() as u64)?;
        self.write("manifest.json", h.as_bytes()).await?;
        self.write("manifest.json", &manifest).await?;
        self.write("manifest.json", &vec![0u8; padding(manifest.len() as u64)])
            .await?;
        self.write("end of archive", &[0u8; 1024]).await?;
        self.out
            .flush()
            .await
            .map_err(|e| Error::Stream("flushing image archive".into(), e))?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests;
