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

use crate::oci::Hasher;

pub use crate::oci::media_types::{
    DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_LIST as DOCKER_MANIFEST_LIST, DOCKER_MANIFEST,
    OCI_INDEX, OCI_MANIFEST,
};

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

/// Whether a layer stream starts with a compression magic (gzip or zstd),
/// i.e. can be pushed as stored.
pub fn is_compressed(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// Uncompressed bytes per independently deflated block (pgzip's default
/// block size is 1 MB too): large enough that the missing 32 KiB history at
/// block starts costs well under 1% of the ratio.
const GZIP_BLOCK: usize = 1 << 20;

/// The deflate level for layers we compress: 1, registry-image's (ggcr's
/// gzip uses `BestSpeed`). skopeo uses pgzip's default level, which costs
/// several times the time for output barely smaller (figures in
/// `docs/decisions.md`). A put pushes once; the compression is paid on
/// every put.
const GZIP_LEVEL: u32 = 1;

/// Gzips `input` into `dest` (blocking), returning the digest and size of
/// what was written.
///
/// Compression is the put's CPU cost for docker-save tarballs, so it runs
/// on every core, the way skopeo/containers-image do it with pgzip: the
/// input is cut into [`GZIP_BLOCK`] blocks, each deflated on its own thread
/// at [`GZIP_LEVEL`] and ended with a sync flush (byte-aligned, not final),
/// written in order behind one gzip header, then a final empty block and the
/// CRC-32/size trailer. The result is one ordinary gzip member, and
/// deterministic (no name, mtime 0, fixed level and block size), so the same
/// tarball gets the same layer digest every time. The input streams through:
/// at most two blocks per thread are in memory.
pub fn gzip_to_file(input: impl Read, dest: &Path) -> io::Result<(String, u64)> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let file = std::fs::File::create(dest)?;
    let mut out = HashingWriter {
        inner: io::BufWriter::with_capacity(256 * 1024, file),
        hasher: Hasher::default(),
        written: 0,
    };
    // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=4 (fastest) OS=255 (unknown).
    out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 0xff])?;
    let mut crc = flate2::Crc::new();
    let mut input = input;
    loop {
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(threads * 2);
        let mut at_end = false;
        while batch.len() < threads * 2 {
            let block = read_block(&mut input)?;
            if block.is_empty() {
                at_end = true;
                break;
            }
            crc.update(&block);
            let short = block.len() < GZIP_BLOCK;
            batch.push(block);
            if short {
                at_end = true;
                break;
            }
        }
        let compressed: Vec<io::Result<Vec<u8>>> = std::thread::scope(|scope| {
            let chunk = batch.len().div_ceil(threads).max(1);
            let handles: Vec<_> = batch
                .chunks(chunk)
                .map(|blocks| {
                    scope.spawn(move || blocks.iter().map(|b| deflate_block(b)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join()
                        .unwrap_or_else(|_| vec![Err(io::Error::other("a gzip thread panicked"))])
                })
                .collect()
        });
        for block in compressed {
            out.write_all(&block?)?;
        }
        if at_end {
            break;
        }
    }
    // A final empty block closes the deflate stream.
    out.write_all(
        &flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL))
            .finish()?,
    )?;
    out.write_all(&crc.sum().to_le_bytes())?;
    out.write_all(&crc.amount().to_le_bytes())?;
    out.inner.flush()?;
    Ok((out.hasher.finish().into_string(), out.written))
}

/// Reads up to [`GZIP_BLOCK`] bytes; shorter only at the end of `input`.
fn read_block(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut block = Vec::with_capacity(GZIP_BLOCK);
    input.take(GZIP_BLOCK as u64).read_to_end(&mut block)?;
    Ok(block)
}

/// Raw deflate of one block, ended by a sync flush: an empty stored block
/// that leaves the stream byte-aligned and open, so blocks concatenate.
fn deflate_block(block: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(block.len() / 2 + 1024),
        flate2::Compression::new(GZIP_LEVEL),
    );
    enc.write_all(block)?;
    enc.flush()?;
    // Take the bytes before the encoder's drop appends a final block.
    Ok(std::mem::take(enc.get_mut()))
}

struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
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
mod tests;
