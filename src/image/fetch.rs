//! Downloading an image from any [`BlobSource`] into the files `get` writes:
//! a rootfs, a `docker save` tarball or an OCI layout.
//!
//! Everything streams. A layer goes download → (source-side digest and size
//! check) → decompress → unpack in one pass on a blocking thread fed through
//! [`SyncIoBridge`]. While one layer unpacks, later layers download
//! concurrently and spool to a file in the destination ([`LayerFeed`]); a
//! layer is spooled only when it cannot be consumed yet, never just to hash
//! it. Peak memory is a few buffers per layer in flight, independent of image
//! size.
//!
//! The registry module is not used here: [`BlobSource`] is the few calls we
//! need, so tests can serve an image from a local OCI layout and
//! `commands/mod.rs` adapts the registry client in a few lines.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use oci_spec::image::ImageManifest;
use tokio::io::AsyncRead;
use tokio_util::io::SyncIoBridge;
use tokio_util::task::TaskTracker;

use super::docker_archive::DockerArchiveWriter;
use super::layout::{LayoutWriter, single_image_index};
use super::manifest::{self, Kind};
use super::metadata::{self, RunConfig};
use super::platform::WantedPlatform;
use super::rootfs::{UnpackOptions, Unpacker};
use super::{Error, Result};
use crate::oci::{Digest, verify_bytes};

/// A manifest as fetched: exact bytes, the media type the server gave, and
/// the digest it was fetched by (or computed).
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The exact bytes.
    pub bytes: Bytes,
    /// Content-Type from the registry, if any.
    pub media_type: Option<String>,
    /// `sha256:<hex>` of `bytes`.
    pub digest: Digest,
}

/// Where image content comes from (the registry client in production).
///
/// Contract for implementations: `blob_reader` must yield exactly the blob
/// and fail with an `io::Error` (at the latest at EOF) when its size or
/// digest is wrong, as the registry client does; wrap an untrusted stream in
/// [`crate::oci::VerifyingReader`]. `fetch_manifest` and `fetch_blob`
/// results are verified again here, since that is cheap for small documents.
pub trait BlobSource: Send + Sync + 'static {
    /// The source's error; kept intact so the caller's retry loop can judge it.
    type Error: std::error::Error + Send + Sync + 'static;
    /// A streaming blob body.
    type Reader: AsyncRead + Send + Unpin + 'static;

    /// Fetches a manifest or index by digest.
    fn fetch_manifest(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<FetchedManifest, Self::Error>> + Send;
    /// Fetches a small blob (a config) into memory.
    fn fetch_blob(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<Bytes, Self::Error>> + Send;
    /// Opens a verified stream over a blob.
    fn blob_reader(
        &self,
        digest: &Digest,
        size: u64,
    ) -> impl Future<Output = Result<Self::Reader, Self::Error>> + Send;
}

/// A download failure: from the source (network, registry) or from us.
#[derive(Debug, thiserror::Error)]
pub enum FetchError<E: std::error::Error + 'static> {
    /// The source failed.
    #[error(transparent)]
    Source(E),
    /// Verifying, parsing or writing failed.
    #[error(transparent)]
    Image(#[from] Error),
}

impl<E: std::error::Error + 'static> From<crate::oci::DigestError> for FetchError<E> {
    fn from(e: crate::oci::DigestError) -> Self {
        FetchError::Image(e.into())
    }
}

impl<E: std::error::Error + 'static> From<crate::oci::VerifyError> for FetchError<E> {
    fn from(e: crate::oci::VerifyError) -> Self {
        FetchError::Image(e.into())
    }
}

type FResult<T, S> = std::result::Result<T, FetchError<<S as BlobSource>::Error>>;

/// How `get` should write the image (`params.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `rootfs/`, `metadata.json`, `labels.json`.
    #[default]
    Rootfs,
    /// `image.tar` (docker save), `labels.json`.
    Oci,
    /// `oci/` with every platform.
    OciLayout,
}

/// What to download and how.
#[derive(Debug, Clone)]
pub struct GetOptions {
    /// The version digest (manifest or index).
    pub digest: String,
    /// The version tag: names the image in `image.tar` and `oci/index.json`.
    pub tag: String,
    /// Output format (an unknown `params.format` is rejected when the
    /// request is decoded, in config/get.rs).
    pub format: Format,
    /// `params.skip_download`.
    pub skip_download: bool,
    /// Platform used to pick a child of an index.
    pub platform: WantedPlatform,
    /// Whether labels/annotations are wanted even with `skip_download`
    /// (`label_regex` / `annotation_regex` set).
    pub want_metadata: bool,
    /// `RepoTags` entry of `image.tar`: the origin repository, normalised,
    /// with the tag (`index.docker.io/library/busybox:latest`).
    pub repo_tag: String,
    /// Owners and devices (see [`UnpackOptions`]).
    pub unpack: UnpackOptions,
    /// Layers downloading at once.
    pub parallel: usize,
}

/// What a download learnt about the image, for the response metadata.
#[derive(Debug, Clone, Default)]
pub struct GetOutcome {
    /// Config labels of the (selected) image.
    pub labels: BTreeMap<String, String>,
    /// Annotations of the (selected) image manifest.
    pub annotations: HashMap<String, String>,
}

/// The image a get is about, after index resolution.
#[derive(Debug, Clone)]
pub struct SelectedImage {
    /// The manifest or index the version digest names.
    pub top: FetchedManifest,
    /// Whether `top` is an index.
    pub top_kind: Kind,
    /// The platform image manifest (== `top` for a single image).
    pub manifest: FetchedManifest,
    /// `manifest`, parsed.
    pub image: ImageManifest,
}

/// Fetches a manifest by digest and checks its bytes hash to it.
pub async fn fetch_verified_manifest<S: BlobSource>(
    source: &S,
    digest: &str,
) -> FResult<FetchedManifest, S> {
    let digest = Digest::parse(digest)?;
    let m = source
        .fetch_manifest(&digest)
        .await
        .map_err(FetchError::Source)?;
    if manifest::is_schema1(m.media_type.as_deref(), &m.bytes) {
        return Err(manifest::schema1_error(&digest).into());
    }
    verify_bytes(&format!("manifest {digest}"), &m.bytes, &digest, None)?;
    Ok(FetchedManifest { digest, ..m })
}

/// Resolves the version digest to one platform's image manifest.
pub async fn select_image<S: BlobSource>(
    source: &S,
    top: FetchedManifest,
    platform: &WantedPlatform,
) -> FResult<SelectedImage, S> {
    let top_kind = manifest::classify(&top.digest, top.media_type.as_deref(), &top.bytes)?;
    let manifest = match top_kind {
        Kind::Image => top.clone(),
        Kind::Index => select_from_index(source, &top, platform, 0, &mut Walked::new(&top.digest))
            .await?
            .ok_or_else(|| Error::NoMatchingPlatform {
                wanted: platform.to_string(),
                index: top.digest.to_string(),
            })?,
    };
    let image = manifest::parse_image(&manifest.digest, &manifest.bytes)?;
    manifest::require_image_config(&manifest.digest, &image)?;
    Ok(SelectedImage {
        top,
        top_kind,
        manifest,
        image,
    })
}

/// The manifests a walk below one version has read: each digest is read
/// once (a nested index that held no match the first time holds none the
/// next), and the total is capped at [`manifest::MAX_MANIFESTS`].
struct Walked {
    top: String,
    seen: HashSet<String>,
}

impl Walked {
    fn new(top: &str) -> Walked {
        Walked {
            top: top.to_owned(),
            seen: HashSet::new(),
        }
    }

    /// Whether `digest` is new; an error once too many were seen.
    fn first_visit(&mut self, digest: &str) -> Result<bool> {
        if !self.seen.insert(digest.to_owned()) {
            return Ok(false);
        }
        if self.seen.len() > manifest::MAX_MANIFESTS {
            return Err(manifest::too_many_manifests(&self.top));
        }
        Ok(true)
    }
}

fn select_from_index<'a, S: BlobSource>(
    source: &'a S,
    index: &'a FetchedManifest,
    platform: &'a WantedPlatform,
    depth: u32,
    walked: &'a mut Walked,
) -> std::pin::Pin<Box<dyn Future<Output = FResult<Option<FetchedManifest>, S>> + Send + 'a>> {
    Box::pin(async move {
        if depth > 8 {
            return Err(Error::Unsupported {
                what: index.digest.to_string(),
                reason: "indexes nested too deeply".into(),
            }
            .into());
        }
        let parsed = manifest::parse_index(&index.digest, &index.bytes)?;
        for d in platform.candidates(&parsed) {
            let digest = d.digest().to_string();
            if !walked.first_visit(&digest)? {
                continue;
            }
            let child = fetch_verified_manifest(source, &digest).await?;
            let media_type = child
                .media_type
                .clone()
                .or_else(|| Some(d.media_type().to_string()));
            match manifest::classify(&digest, media_type.as_deref(), &child.bytes)? {
                Kind::Image => return Ok(Some(child)),
                Kind::Index => {
                    if let Some(found) =
                        select_from_index(source, &child, platform, depth + 1, walked).await?
                    {
                        return Ok(Some(found));
                    }
                }
            }
        }
        Ok(None)
    })
}

/// Fetches and verifies an image's config.
pub async fn fetch_config<S: BlobSource>(
    source: &S,
    image: &ImageManifest,
) -> FResult<(Bytes, RunConfig), S> {
    let desc = image.config();
    let digest = Digest::parse(desc.digest().as_ref())?;
    let bytes = source
        .fetch_blob(&digest)
        .await
        .map_err(FetchError::Source)?;
    verify_bytes(
        &format!("config {digest}"),
        &bytes,
        &digest,
        Some(desc.size()),
    )?;
    let config = RunConfig::from_config_blob(&digest, &bytes)?;
    Ok((bytes, config))
}

/// Runs a whole `get` download into `dest`. Does not write
/// `tag`/`digest`/`repository`.
///
/// A failed download removes everything it wrote (a partial rootfs, spooled
/// layers, a partial layout or tarball), as registry-image writes nothing
/// until its download succeeded; so the next attempt (the retry loop, the
/// origin after a mirror) and the user find the destination as it was. It
/// also starts by removing what an interrupted earlier run left.
pub async fn download<S: BlobSource>(
    source: Arc<S>,
    dest: &Path,
    opts: &GetOptions,
) -> FResult<GetOutcome, S> {
    clean_before(dest).await?;
    let result = download_into(source, dest, opts).await;
    if result.is_err()
        && let Err(e) = clean_attempt(dest).await
    {
        tracing::warn!("cleaning up after the failed download: {e}");
    }
    result
}

async fn download_into<S: BlobSource>(
    source: Arc<S>,
    dest: &Path,
    opts: &GetOptions,
) -> FResult<GetOutcome, S> {
    let top = fetch_verified_manifest(&*source, &opts.digest).await?;
    let format = opts.format;

    if opts.skip_download {
        if !opts.want_metadata {
            return Ok(GetOutcome::default());
        }
        let sel = select_image(&*source, top, &opts.platform).await?;
        let (_, config) = fetch_config(&*source, &sel.image).await?;
        return Ok(outcome(&sel, &config));
    }

    match format {
        Format::Rootfs => {
            let sel = select_image(&*source, top, &opts.platform).await?;
            let (_, config) = fetch_config(&*source, &sel.image).await?;
            if !sel.image.layers().is_empty() {
                made(&dest.join("rootfs"));
                unpack_rootfs(source.clone(), &sel.image, &dest.join("rootfs"), dest, opts).await?;
            }
            made(&dest.join("metadata.json"));
            metadata::write_metadata_json(dest, &config)?;
            made(&dest.join("labels.json"));
            metadata::write_labels_json(dest, &config)?;
            Ok(outcome(&sel, &config))
        }
        Format::Oci => {
            let sel = select_image(&*source, top, &opts.platform).await?;
            let (config_bytes, config) = fetch_config(&*source, &sel.image).await?;
            write_docker_archive(source.clone(), &sel.image, &config_bytes, dest, opts).await?;
            made(&dest.join("labels.json"));
            metadata::write_labels_json(dest, &config)?;
            Ok(outcome(&sel, &config))
        }
        Format::OciLayout => {
            made(&dest.join("oci"));
            write_oci_layout(source.clone(), &top, &dest.join("oci"), opts).await?;
            if !opts.want_metadata {
                return Ok(GetOutcome::default());
            }
            // The layout holds every platform; labels and annotations come
            // from the wanted one, and their absence is no reason to fail.
            let sel = match select_image(&*source, top, &opts.platform).await {
                Ok(sel) => sel,
                Err(FetchError::Image(e @ Error::NoMatchingPlatform { .. })) => {
                    tracing::warn!("no labels or annotations reported: {e}");
                    return Ok(GetOutcome::default());
                }
                Err(e) => return Err(e),
            };
            let (_, config) = fetch_config(&*source, &sel.image).await?;
            Ok(outcome(&sel, &config))
        }
    }
}

fn outcome(sel: &SelectedImage, config: &RunConfig) -> GetOutcome {
    GetOutcome {
        labels: config.labels(),
        annotations: metadata::manifest_annotations(&sel.manifest.bytes),
    }
}

/// Where this run spools layers and writes the tarball before its rename:
/// names of its own (`.<what>.partial.<pid>`), so that two `in` into one
/// destination never share one.
const SPOOL_DIR: &str = ".layers.partial";
const ARCHIVE_PARTIAL: &str = ".image.tar.partial";

fn own(name: &str) -> String {
    format!("{name}.{}", std::process::id())
}

/// What this run wrote into destinations: a failed or interrupted run
/// removes these and its own partial files, never what another run made.
static MADE: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Records an output this run wrote (also the `in` step's own files).
pub fn made(path: &Path) {
    MADE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(path.to_path_buf());
}

/// The pids of other runs still writing into `dest` (their partial files).
fn live_runs(dest: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dest) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let pid = [SPOOL_DIR, ARCHIVE_PARTIAL]
                .iter()
                .find_map(|p| name.strip_prefix(p)?.strip_prefix('.')?.parse::<u32>().ok())?;
            (pid != std::process::id() && Path::new("/proc").join(pid.to_string()).exists())
                .then_some(pid)
        })
        .collect()
}

/// Removes everything [`download`] writes into `dest`: what `in` does when
/// a signal interrupts a download (its future dropped mid-write). A layer
/// being unpacked on a blocking thread goes on until its next read sees the
/// dropped download, so this waits for those threads first (at most
/// `UNPACK_STOP`), then removes what they wrote.
pub async fn clean_destination(dest: &Path) -> Result<()> {
    UNPACKS.close();
    if tokio::time::timeout(UNPACK_STOP, UNPACKS.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "a layer unpack did not stop within {}s; removing the destination anyway",
            UNPACK_STOP.as_secs()
        );
    }
    clean_attempt(dest).await
}

/// The blocking threads unpacking layers, so that [`clean_destination`] can
/// wait for them. One `in` runs one download per process.
static UNPACKS: std::sync::LazyLock<TaskTracker> = std::sync::LazyLock::new(TaskTracker::new);

/// How long [`clean_destination`] waits for an unpack to notice its
/// download is gone.
const UNPACK_STOP: std::time::Duration = std::time::Duration::from_secs(10);

/// Removes what this run wrote into `dest` (see [`MADE`]) and its partial
/// files.
async fn clean_attempt(dest: &Path) -> Result<()> {
    let made: Vec<std::path::PathBuf> = {
        let mut all = MADE.lock().unwrap_or_else(|p| p.into_inner());
        let (here, elsewhere) = all.drain(..).partition(|p| p.starts_with(dest));
        *all = elsewhere;
        here
    };
    remove_tree(&dest.join(own(SPOOL_DIR))).await?;
    remove_file(&dest.join(own(ARCHIVE_PARTIAL))).await?;
    for path in made {
        if path.is_dir() {
            remove_tree(&path).await?;
        } else {
            remove_file(&path).await?;
        }
    }
    Ok(())
}

/// Before a download: what an interrupted earlier run left in `dest` (its
/// outputs, and partial files of runs that are gone), unless another run
/// is writing there now, whose files are its own.
async fn clean_before(dest: &Path) -> Result<()> {
    if !live_runs(dest).is_empty() {
        return Ok(());
    }
    let Ok(mut entries) = tokio::fs::read_dir(dest).await else {
        return Ok(());
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(SPOOL_DIR) {
            remove_tree(&entry.path()).await?;
        } else if name.starts_with(ARCHIVE_PARTIAL) {
            remove_file(&entry.path()).await?;
        }
    }
    for dir in ["rootfs", "oci"] {
        remove_tree(&dest.join(dir)).await?;
    }
    for file in ["image.tar", "metadata.json", "labels.json"] {
        remove_file(&dest.join(file)).await?;
    }
    Ok(())
}

async fn remove_file(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path, e)),
    }
}

/// Removes a directory tree if it exists.
///
/// An abandoned blob write of the OCI layout writer (its future dropped
/// when another blob failed) may still be creating its temporary file on a
/// blocking thread, making the directory non-empty again for a moment: a
/// few retries cover that.
async fn remove_tree(path: &Path) -> Result<()> {
    let mut tries = 0;
    loop {
        match tokio::fs::remove_dir_all(path).await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && tries < 5 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => return Err(Error::io("removing", path, e)),
        }
    }
}

/// Layer descriptors (digest, size), digests validated.
fn layer_list(image: &ImageManifest) -> Result<Vec<(Digest, u64)>> {
    image
        .layers()
        .iter()
        .map(|l| Ok((Digest::parse(l.digest().as_ref())?, l.size())))
        .collect()
}

/// Unpacks all layers of `image` into `rootfs` (spooling under `dest`).
pub async fn unpack_rootfs<S: BlobSource>(
    source: Arc<S>,
    image: &ImageManifest,
    rootfs: &Path,
    dest: &Path,
    opts: &GetOptions,
) -> FResult<(), S> {
    let layers = layer_list(image)?;
    let spool = dest.join(own(SPOOL_DIR));
    let mut feed = LayerFeed::start(source, layers.clone(), &spool, opts.parallel).await?;
    let result = unpack_layers(&mut feed, &layers, rootfs, opts).await;
    // Whatever happened: no download may outlive this, nor any spool file.
    feed.close().await;
    let removed = remove_tree(&spool).await;
    result?;
    removed?;
    Ok(())
}

async fn unpack_layers<S: BlobSource>(
    feed: &mut LayerFeed<S>,
    layers: &[(Digest, u64)],
    rootfs: &Path,
    opts: &GetOptions,
) -> FResult<(), S> {
    let mut unpacker = Unpacker::new(rootfs, opts.unpack)?;
    let total = layers.len();
    let mut index = 0;
    while let Some(input) = feed.next().await {
        let input = input?;
        let (digest, size) = layers[index].clone();
        index += 1;
        tracing::info!("extracting layer {index}/{total} {digest} ({size} bytes)");
        unpacker = match input {
            LayerInput::Stream(reader) => {
                let reader = SyncIoBridge::new(reader);
                let (unpacker, result) =
                    unpack_blocking(unpacker, digest.into_string(), reader).await?;
                result?;
                unpacker
            }
            LayerInput::Spooled(handle) => {
                let reader = handle
                    .reader()
                    .map_err(|e| Error::io("opening", handle.path(), e))?;
                let (unpacker, result) =
                    unpack_blocking(unpacker, digest.into_string(), reader).await?;
                // A failed download explains a failed read better, and keeps
                // the source's error type for the retry loop.
                let path = handle.finished().await?;
                result?;
                let _ = tokio::fs::remove_file(&path).await;
                unpacker
            }
        };
    }
    UNPACKS
        .spawn_blocking(move || unpacker.finish())
        .await
        .map_err(|e| Error::Task("applying directory metadata", e))??;
    Ok(())
}

/// Runs one layer through the unpacker on a blocking thread; hands the
/// unpacker back whatever happened.
async fn unpack_blocking<R: std::io::Read + Send + 'static>(
    mut unpacker: Unpacker,
    digest: String,
    reader: R,
) -> Result<(Unpacker, Result<()>)> {
    UNPACKS
        .spawn_blocking(move || {
            let result = unpacker.unpack_layer(&digest, reader).map(|_| ());
            (unpacker, result)
        })
        .await
        .map_err(|e| Error::Task("unpacking a layer", e))
}

/// Writes `dest/image.tar` for `image` (via a partial file renamed at the end).
pub async fn write_docker_archive<S: BlobSource>(
    source: Arc<S>,
    image: &ImageManifest,
    config_bytes: &[u8],
    dest: &Path,
    opts: &GetOptions,
) -> FResult<(), S> {
    let layers = layer_list(image)?;
    let partial = dest.join(own(ARCHIVE_PARTIAL));
    let file = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| Error::io("creating", &partial, e))?;
    let mut writer =
        DockerArchiveWriter::new(tokio::io::BufWriter::with_capacity(256 * 1024, file));
    writer
        .append_config(image.config().digest().as_ref(), config_bytes)
        .await?;
    // Each distinct layer is downloaded and stored once, listed at every
    // position it has in the manifest.
    let mut distinct = layers.clone();
    let mut seen = HashSet::new();
    distinct.retain(|(digest, _)| seen.insert(digest.clone()));
    let spool = dest.join(own(SPOOL_DIR));
    let mut feed = LayerFeed::start(source, distinct.clone(), &spool, opts.parallel).await?;
    let result = append_layers(&mut feed, &layers, &mut writer).await;
    feed.close().await;
    let removed = remove_tree(&spool).await;
    result?;
    removed?;
    let mut out = writer.finish(std::slice::from_ref(&opts.repo_tag)).await?;
    tokio::io::AsyncWriteExt::shutdown(&mut out)
        .await
        .map_err(|e| Error::io("writing", &partial, e))?;
    drop(out);
    let final_path = dest.join("image.tar");
    tokio::fs::rename(&partial, &final_path)
        .await
        .map_err(|e| Error::io("renaming into place", &final_path, e))?;
    made(&final_path);
    Ok(())
}

async fn append_layers<S: BlobSource, W: tokio::io::AsyncWrite + Unpin>(
    feed: &mut LayerFeed<S>,
    layers: &[(Digest, u64)],
    writer: &mut DockerArchiveWriter<W>,
) -> FResult<(), S> {
    for (digest, size) in layers {
        if writer.repeat_layer(digest)? {
            continue;
        }
        let Some(input) = feed.next().await else {
            break;
        };
        match input? {
            LayerInput::Stream(reader) => writer.append_layer(digest, *size, reader).await?,
            LayerInput::Spooled(handle) => {
                let path = handle.finished().await?;
                let file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| Error::io("opening", &path, e))?;
                writer.append_layer(digest, *size, file).await?;
                let _ = tokio::fs::remove_file(&path).await;
            }
        }
    }
    Ok(())
}

/// Writes an OCI layout of everything `top` references, all platforms.
pub async fn write_oci_layout<S: BlobSource>(
    source: Arc<S>,
    top: &FetchedManifest,
    dir: &Path,
    opts: &GetOptions,
) -> FResult<(), S> {
    let writer = LayoutWriter::create(dir).await?;
    // Walk manifests breadth-first, writing them; collect configs and layers.
    let mut blobs: Vec<(Digest, u64)> = Vec::new();
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut manifests = 0usize;
    let mut queue = vec![(top.clone(), true)];
    while let Some((m, is_top)) = queue.pop() {
        let kind = manifest::classify(&m.digest, m.media_type.as_deref(), &m.bytes)?;
        if !is_top {
            writer.write_blob_bytes(&m.bytes, &m.digest).await?;
        }
        match kind {
            Kind::Index => {
                let index = manifest::parse_index(&m.digest, &m.bytes)?;
                for d in index.manifests() {
                    let digest = Digest::parse(d.digest().as_ref())?;
                    if seen.insert(digest.clone()) {
                        manifests += 1;
                        if manifests > manifest::MAX_MANIFESTS {
                            return Err(manifest::too_many_manifests(&top.digest).into());
                        }
                        let mut child = fetch_verified_manifest(&*source, &digest).await?;
                        if child.media_type.is_none() {
                            child.media_type = Some(d.media_type().to_string());
                        }
                        queue.push((child, false));
                    }
                }
            }
            Kind::Image => {
                let image = manifest::parse_image(&m.digest, &m.bytes)?;
                let c = image.config();
                for (d, s) in std::iter::once((Digest::parse(c.digest().as_ref())?, c.size()))
                    .chain(layer_list(&image)?)
                {
                    if seen.insert(d.clone()) {
                        blobs.push((d, s));
                    }
                }
            }
        }
    }
    let parallel = opts.parallel.max(1);
    stream::iter(blobs)
        .map(|(digest, size)| {
            let source = source.clone();
            let writer = writer.clone();
            async move {
                let reader = source
                    .blob_reader(&digest, size)
                    .await
                    .map_err(FetchError::Source)?;
                writer.write_blob(reader, &digest, size).await?;
                Ok::<_, FetchError<S::Error>>(())
            }
        })
        .buffer_unordered(parallel)
        .try_collect::<Vec<()>>()
        .await?;

    let top_kind = manifest::classify(&top.digest, top.media_type.as_deref(), &top.bytes)?;
    match top_kind {
        // The exact bytes, so sha256(index.json) == the version digest.
        Kind::Index => writer.write_index_bytes(&top.bytes).await?,
        Kind::Image => {
            writer.write_blob_bytes(&top.bytes, &top.digest).await?;
            let media_type =
                manifest::media_type_or_default(Kind::Image, top.media_type.as_deref(), &top.bytes);
            let index = single_image_index(
                &media_type,
                &top.digest,
                top.bytes.len() as u64,
                Some(&opts.tag),
            );
            writer.write_index_bytes(&index).await?;
            writer
                .write_file("single-image-digest", top.digest.as_bytes())
                .await?;
        }
    }
    Ok(())
}

mod feed;

pub use feed::{LayerFeed, LayerInput, SpoolHandle, SpoolReader};

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;
