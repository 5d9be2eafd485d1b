//! Manifests, indexes, configs and layers as a registry serves them, through
//! the whole `get` download (src/image/fetch.rs, src/image/manifest.rs,
//! src/image/platform.rs, src/image/metadata.rs, and the three writers).
//!
//! Input: one selector byte (output format, `skip_download`, wanted
//! platform), then up to eight documents separated by [`DOC_SEP`]: the
//! first is the version's manifest or index, the others are what it may
//! reference. Since a fuzzer cannot compute sha256, a document may write
//! `@N` for the digest and `#N` for the size of document N (N > its own
//! position, one digit). The source serves each document under its digest.
//!
//! Asserted: a download either succeeds or leaves the destination empty
//! (nothing half-written), and nothing is written outside it.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use oci_build_resource::image::fetch::{BlobSource, FetchedManifest, Format, GetOptions, download};
use oci_build_resource::image::platform::WantedPlatform;
use oci_build_resource::image::rootfs::UnpackOptions;
use oci_build_resource::oci::{Digest, sha256_digest};

use super::{Sandbox, make_removable, runtime, split_parts};

/// Separates documents in the input.
pub const DOC_SEP: &[u8] = b"\n--doc--\n";

/// Blobs by digest.
struct Memory(HashMap<String, Bytes>);

impl Memory {
    fn get(&self, digest: &Digest) -> std::io::Result<Bytes> {
        self.0.get(digest.as_str()).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("{digest} not found"))
        })
    }
}

impl BlobSource for Memory {
    type Error = std::io::Error;
    type Reader = std::io::Cursor<Bytes>;

    async fn fetch_manifest(&self, digest: &Digest) -> std::io::Result<FetchedManifest> {
        Ok(FetchedManifest {
            bytes: self.get(digest)?,
            media_type: None,
            digest: digest.to_owned(),
        })
    }

    async fn fetch_blob(&self, digest: &Digest) -> std::io::Result<Bytes> {
        self.get(digest)
    }

    /// The contract says the reader must fail on a size mismatch; a
    /// complete in-memory blob can say so at once.
    async fn blob_reader(&self, digest: &Digest, size: u64) -> std::io::Result<Self::Reader> {
        let bytes = self.get(digest)?;
        if bytes.len() as u64 != size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{digest}: {} bytes, descriptor says {size}", bytes.len()),
            ));
        }
        Ok(std::io::Cursor::new(bytes))
    }
}

/// Replaces `@N`/`#N` (N > `own`) with document N's digest/size.
fn link(doc: &[u8], own: usize, done: &[Option<(Digest, usize)>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(doc.len());
    let mut i = 0;
    while i < doc.len() {
        let token = doc.get(i + 1).and_then(|d| {
            let n = d.checked_sub(b'0')? as usize;
            (n > own && n < done.len()).then_some(n)
        });
        match (doc[i], token.and_then(|n| done[n].as_ref())) {
            (b'@', Some((digest, _))) => out.extend_from_slice(digest.as_bytes()),
            (b'#', Some((_, size))) => out.extend_from_slice(size.to_string().as_bytes()),
            _ => {
                out.push(doc[i]);
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    out
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let docs = split_parts(rest, DOC_SEP, 8);
    let mut done: Vec<Option<(Digest, usize)>> = vec![None; docs.len()];
    let mut blobs = HashMap::new();
    for i in (0..docs.len()).rev() {
        let bytes = link(docs[i], i, &done);
        let digest = sha256_digest(&bytes);
        done[i] = Some((digest.clone(), bytes.len()));
        blobs.insert(digest.into_string(), Bytes::from(bytes));
    }
    let top = done[0].as_ref().expect("document 0 exists").0.clone();

    let format = match selector % 3 {
        0 => Format::Rootfs,
        1 => Format::Oci,
        _ => Format::OciLayout,
    };
    let platform = match (selector >> 4) % 3 {
        0 => WantedPlatform::new(Some("linux"), Some("amd64"), None),
        1 => WantedPlatform::new(Some("linux"), Some("arm64/v8"), None),
        _ => WantedPlatform::new(Some("linux"), Some("arm"), Some("v7")),
    };
    let opts = GetOptions {
        digest: top.into_string(),
        tag: "latest".into(),
        format,
        skip_download: selector & 0x04 != 0,
        platform,
        want_metadata: selector & 0x08 != 0,
        repo_tag: "registry.example/fuzz/image:latest".into(),
        unpack: UnpackOptions::for_current_user(),
        parallel: 2,
    };
    let sandbox = Sandbox::new("dest");
    std::fs::create_dir(&sandbox.work).expect("creating dest");
    let result = runtime().block_on(download(Arc::new(Memory(blobs)), &sandbox.work, &opts));
    let left = Sandbox::tree(&sandbox.work);
    match &result {
        Err(e) => assert!(
            left.is_empty(),
            "a failed download ({e}) left {left:?} in the destination"
        ),
        Ok(_) if format == Format::Rootfs && !opts.skip_download => assert!(
            sandbox.work.join("rootfs").is_dir(),
            "a rootfs download succeeded without rootfs/: {left:?}"
        ),
        Ok(_) => {}
    }
    sandbox.assert_contained();
    make_removable(&sandbox.work);
}
