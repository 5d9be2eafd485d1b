//! Manifests we write ourselves, and layer compression for them.
//!
//! A docker-save tarball carries no registry manifest, only a config and
//! (usually uncompressed) layer tars, so pushing one means writing a manifest.
//! We write registry-image's exact shape (compact JSON, fixed field order,
//! gzip layers), so the same tarball pushed by either resource gets the same
//! digest when its layers were already gzipped, and a stable digest of ours
//! otherwise (deterministic gzip: no name, mtime 0, fixed level).

use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer media type.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
}

/// registry-image's manifest for a docker-save image: compact JSON in this
/// field order, `annotations` only when there are some.
pub fn docker_manifest(
    config: &Descriptor,
    layers: &[Descriptor],
    annotations: &std::collections::BTreeMap<String, String>,
) -> Vec<u8> {
    // serde_json's `preserve_order` keeps insertion order, which is the wire order.
    let desc = |d: &Descriptor| serde_json::json!({"mediaType": d.media_type, "size": d.size, "digest": d.digest});
    let mut m = serde_json::Map::new();
    m.insert("schemaVersion".into(), 2.into());
    m.insert("mediaType".into(), DOCKER_MANIFEST.into());
    m.insert("config".into(), desc(config));
    m.insert("layers".into(), layers.iter().map(desc).collect());
    if !annotations.is_empty() {
        m.insert(
            "annotations".into(),
            serde_json::to_value(annotations).unwrap_or_default(),
        );
    }
    serde_json::Value::Object(m).to_string().into_bytes()
}

/// `sha256:<hex>` of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Whether a layer stream starts with a compression magic (gzip or zstd),
/// i.e. can be pushed as stored.
pub fn is_compressed(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// Gzips `input` into `dest` (blocking), returning the digest and size of
/// what was written. Level 1: pushing is network-bound at most a few times
/// over, while compression time is paid on every put.
pub fn gzip_to_file(input: impl Read, dest: &Path) -> io::Result<(String, u64)> {
    let file = std::fs::File::create(dest)?;
    let hashing = HashingWriter {
        inner: io::BufWriter::with_capacity(256 * 1024, file),
        hasher: Sha256::new(),
        written: 0,
    };
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(hashing, flate2::Compression::new(1));
    let mut input = input;
    io::copy(&mut input, &mut gz)?;
    let mut hashing = gz.finish()?;
    hashing.inner.flush()?;
    Ok((
        format!("sha256:{}", hex::encode(hashing.hasher.finalize())),
        hashing.written,
    ))
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn manifest_matches_registry_image_byte_for_byte() {
        let config = Descriptor {
            media_type: DOCKER_CONFIG.into(),
            digest: "sha256:c".into(),
            size: 10,
        };
        let layer = Descriptor {
            media_type: DOCKER_LAYER_GZIP.into(),
            digest: "sha256:l".into(),
            size: 20,
        };
        let got = String::from_utf8(docker_manifest(&config, &[layer], &BTreeMap::new())).unwrap();
        assert_eq!(
            got,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":10,"digest":"sha256:c"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":20,"digest":"sha256:l"}]}"#
        );
    }

    #[test]
    fn gzip_is_deterministic_and_hashes_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let a = gzip_to_file(&data[..], &dir.path().join("a")).unwrap();
        let b = gzip_to_file(&data[..], &dir.path().join("b")).unwrap();
        assert_eq!(a, b);
        let written = std::fs::read(dir.path().join("a")).unwrap();
        assert_eq!(a.0, sha256(&written));
        assert_eq!(a.1, written.len() as u64);
        assert!(is_compressed(&written));
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&written[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert!(!is_compressed(b"ustar"));
    }
}
