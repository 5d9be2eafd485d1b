//! `in`: fetch the version's image into the destination directory
//! (registry-image `commands/in.go`).
//!
//! The work is done by [`crate::image::fetch::download`] on the registry
//! client (its `BlobSource` impl is in `commands/mod.rs`); this file runs the
//! download through the mirror (if one applies) and then the origin, each inside registry-image's
//! retry loop, writes `tag`, `digest` and `repository`, and builds the
//! response metadata. The fetch is by digest only; the tag names things.
//! With `source.verify`, the version's signature is checked first, and
//! nothing is written unless one of the keys signed that digest.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use tracing::{info, warn};

use crate::concourse::{InRequest, InResponse, MetadataField};
use crate::config::{Format as ParamsFormat, Source};
use crate::error::{Error, Result, chain};
use crate::image::Error as ImageError;
use crate::image::fetch::{
    self, BlobSource, FetchError, FetchedManifest, Format, GetOptions, GetOutcome,
};
use crate::image::metadata::matching;
use crate::image::platform::WantedPlatform;
use crate::image::rootfs::UnpackOptions;
use crate::oci::Digest;
use crate::process::Interrupt;
use crate::progress::{Counting, Transfer};
use crate::registry::{Access, Client, retry_transient};

/// Layers downloading at once: enough to keep the unpacker fed, few enough
/// not to hammer a registry (Docker's default is 3).
const PARALLEL_LAYERS: usize = 3;

/// Fetches the version into `dest`. On SIGTERM/SIGINT (`interrupt`) the
/// download stops and what it wrote into `dest` is removed, as after a
/// failed download.
pub async fn run(req: InRequest, dest: &Path, interrupt: &Interrupt) -> Result<InResponse> {
    tokio::select! {
        result = fetch_into(req, dest) => result,
        signal = interrupt.wait() => Err(Error::Interrupted {
            signal,
            cleanup: remove_partial(dest).await,
        }),
    }
}

/// Writes `path` as a new file renamed over whatever is there: a symlink
/// already in the destination is replaced, never followed.
fn write_replacing(path: &Path, value: &str) -> Result<()> {
    use std::io::Write as _;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| ImageError::io("creating", &tmp, e))?;
    file.write_all(value.as_bytes())
        .map_err(|e| ImageError::io("writing", &tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| ImageError::io("renaming into place", path, e))?;
    fetch::made(path);
    Ok(())
}

/// Removes what an interrupted download wrote, and says so in a few words.
async fn remove_partial(dest: &Path) -> String {
    let result = fetch::clean_destination(dest).await;
    match result {
        Ok(()) => format!("removed the partial download from {}", dest.display()),
        Err(e) => format!("could not remove the partial download: {}", chain(&e)),
    }
}

async fn fetch_into(req: InRequest, dest: &Path) -> Result<InResponse> {
    let source = &req.source;
    let version = &req.version;
    let signed_by = verify_version(source, &version.digest).await?;
    info!("fetching {}@{}", source.repository, version.digest);
    let opts = options(&req);

    let mut outcome = None;
    if let Some(mirror) = super::mirror_client(source)? {
        let name = mirror.repository().given.clone();
        let mirror = Arc::new(mirror);
        match attempt_with_retries(&mirror, dest, &opts).await {
            Ok(o) => outcome = Some(o),
            Err(e) => warn!("download from mirror {name} failed: {}", chain(&e)),
        }
    }
    let outcome = match outcome {
        Some(o) => o,
        None => {
            let origin = Arc::new(super::origin_client(source, Access::Pull)?);
            attempt_with_retries(&origin, dest, &opts)
                .await
                .map_err(|e| e.context("download failed"))?
        }
    };

    for (name, value) in [
        ("tag", version.tag.as_str()),
        ("digest", version.digest.as_str()),
        ("repository", source.repository.given.as_str()),
    ] {
        write_replacing(&dest.join(name), value)?;
    }

    let mut metadata = metadata(source, &version.tag, &outcome);
    if let Some(key) = signed_by {
        metadata.push(MetadataField::new("signing_key", key));
    }
    Ok(InResponse {
        version: version.clone(),
        metadata,
    })
}

/// With `source.verify`: the fingerprint of the key whose signature over
/// `digest` (in the origin repository) checks out, before anything is
/// written; else the one-line error naming the digest and the keys.
async fn verify_version(source: &Source, digest: &str) -> Result<Option<String>> {
    let Some(verifier) = &source.verify else {
        return Ok(None);
    };
    let origin = super::origin_client(source, Access::Pull)?;
    let key = verifier.verify(&origin, &source.repository, digest).await?;
    info!("{}@{digest} is signed with key {key}", source.repository);
    Ok(Some(key))
}

fn options(req: &InRequest) -> GetOptions {
    let platform = req
        .params
        .platform
        .as_ref()
        .or(req.source.platform.as_ref());
    let tag = if req.version.tag.is_empty() {
        "latest"
    } else {
        &req.version.tag
    };
    GetOptions {
        digest: req.version.digest.clone(),
        tag: req.version.tag.clone(),
        format: match req.params.format {
            ParamsFormat::Rootfs => Format::Rootfs,
            ParamsFormat::Oci => Format::Oci,
            ParamsFormat::OciLayout => Format::OciLayout,
        },
        skip_download: req.params.skip_download,
        platform: WantedPlatform::new(
            platform.and_then(|p| p.os.as_deref()),
            platform.and_then(|p| p.architecture.as_deref()),
            platform.and_then(|p| p.variant.as_deref()),
        ),
        want_metadata: req.source.label_regex.is_some() || req.source.annotation_regex.is_some(),
        // The origin's name, never the mirror's (registry-image test case).
        repo_tag: format!("{}:{tag}", req.source.repository.qualified()),
        unpack: UnpackOptions::for_current_user(),
        parallel: PARALLEL_LAYERS,
    }
}

async fn attempt_with_retries(
    source: &Arc<Client>,
    dest: &Path,
    opts: &GetOptions,
) -> Result<GetOutcome> {
    retry_transient("download", || async {
        let tracked = Arc::new(Tracked {
            client: source.clone(),
            transfer: Transfer::new("downloading", "downloaded"),
            configs: Mutex::new(HashSet::new()),
        });
        let result = fetch::download(tracked.clone(), dest, opts)
            .await
            .map_err(|e| match e {
                FetchError::Source(e) => Error::Registry(e),
                FetchError::Image(e) => Error::Image(e),
            });
        if result.is_ok() {
            tracked.transfer.done();
        }
        result
    })
    .await
}

/// The registry client as a [`BlobSource`] that reports layer progress
/// ([`crate::progress`]): each image manifest fetched announces its layers,
/// so the totals are known before the first byte; layer streams are counted
/// as they are read. Configs are small and not counted as layers.
struct Tracked {
    client: Arc<Client>,
    transfer: Transfer,
    configs: Mutex<HashSet<Digest>>,
}

impl BlobSource for Tracked {
    type Error = crate::registry::Error;
    type Reader = Counting<crate::registry::BlobReader>;

    async fn fetch_manifest(&self, digest: &Digest) -> Result<FetchedManifest, Self::Error> {
        let m = BlobSource::fetch_manifest(&*self.client, digest).await?;
        announce(&self.transfer, &self.configs, &m.bytes);
        Ok(m)
    }

    async fn fetch_blob(&self, digest: &Digest) -> Result<Bytes, Self::Error> {
        BlobSource::fetch_blob(&*self.client, digest).await
    }

    async fn blob_reader(&self, digest: &Digest, size: u64) -> Result<Self::Reader, Self::Error> {
        let reader = BlobSource::blob_reader(&*self.client, digest, size).await?;
        let is_config = self
            .configs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(digest);
        Ok(if is_config {
            Counting::untracked(reader)
        } else {
            self.transfer.reader(digest.as_str(), size, reader)
        })
    }
}

/// Announces the layers of an image manifest (an index has none) and notes
/// its config, which is not a layer.
fn announce(transfer: &Transfer, configs: &Mutex<HashSet<Digest>>, bytes: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Descriptor {
        digest: String,
        #[serde(default)]
        size: u64,
    }
    #[derive(serde::Deserialize)]
    struct Image {
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    let Ok(image) = serde_json::from_slice::<Image>(bytes) else {
        return;
    };
    if let Some(config) = image.config.and_then(|c| Digest::parse(&c.digest).ok()) {
        configs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(config);
    }
    for layer in image.layers {
        transfer.expect(&layer.digest, layer.size);
    }
}

fn metadata(source: &Source, tag: &str, outcome: &GetOutcome) -> Vec<MetadataField> {
    let mut out = vec![
        MetadataField::new("repository", source.repository.given.clone()),
        MetadataField::new("tag", tag),
    ];
    let add = |out: &mut Vec<MetadataField>, pairs: Vec<(String, String)>| {
        out.extend(pairs.into_iter().map(|(k, v)| MetadataField::new(k, v)));
    };
    if let Some(re) = &source.label_regex {
        add(&mut out, matching(&outcome.labels, re));
    }
    if let Some(re) = &source.annotation_regex {
        add(&mut out, matching(&outcome.annotations, re));
    }
    out
}
