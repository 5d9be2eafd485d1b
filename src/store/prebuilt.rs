//! Prebuilt images on disk (`image::load`: OCI layout dirs and docker-save
//! tarballs) as [`ImageStore`]s, the one view both the loopback registry
//! and our push walk use.
//!
//! A layout is taken as `image::load` reads it (a one-image layout is that
//! image, a multi-entry index goes up whole): its manifests go up byte for
//! byte. A docker-save tarball has no registry
//! manifest: for serving (IMAGE_ARG) its layers are described as stored;
//! for pushing we write registry-image's manifest with gzip layers,
//! compressing uncompressed layers into a temp dir first, in parallel.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::manifest::{
    self, DOCKER_CONFIG, DOCKER_LAYER_GZIP, Descriptor, OCI_INDEX, OCI_MANIFEST,
};
use super::{BlobReader, ImageStore, OpenBlob, ServedManifest};
use super::{Error, Result};
use crate::image::compression::Compression;
use crate::image::fetch::FetchedManifest;
use crate::image::load::{
    ArchiveBlob, BlobRef, DockerArchive, ImageSource, LayoutTop, OciLayoutDir,
};
use crate::oci::{media_types, sha256_digest};

/// Where one blob's bytes are.
#[derive(Debug, Clone)]
enum BlobLoc {
    /// In a layout (read with digest verification).
    Layout(Arc<OciLayoutDir>),
    /// An entry of a docker-save tarball.
    Entry(Arc<DockerArchive>, String),
    /// A file we wrote (a gzipped layer).
    File(PathBuf),
}

/// A local image, ready to serve or push.
#[derive(Debug)]
pub struct LocalImage {
    top: ServedManifest,
    manifests: Vec<ServedManifest>,
    blobs: BTreeMap<String, (BlobLoc, u64)>,
    /// Keeps compressed layers alive while the image is in use.
    _scratch: Option<tempfile::TempDir>,
}

fn io_error(e: crate::image::Error) -> std::io::Error {
    std::io::Error::other(e)
}

impl ImageStore for LocalImage {
    fn top(&self) -> &ServedManifest {
        &self.top
    }
    fn manifest(&self, digest: &str) -> Option<&ServedManifest> {
        std::iter::once(&self.top)
            .chain(&self.manifests)
            .find(|m| m.digest == digest)
    }
    fn blob_size(&self, digest: &str) -> Option<u64> {
        self.blobs.get(digest).map(|(_, size)| *size)
    }
    fn open_blob(&self, digest: &str) -> OpenBlob {
        let found = self.blobs.get(digest).cloned();
        let digest = digest.to_owned();
        Box::pin(async move {
            let (loc, size) =
                found.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
            Ok(match loc {
                BlobLoc::Layout(dir) => {
                    Box::new(dir.open_blob(&digest, size).await.map_err(io_error)?) as BlobReader
                }
                BlobLoc::Entry(archive, entry) => {
                    Box::new(archive.open_entry(&entry).await.map_err(io_error)?.0)
                }
                BlobLoc::File(path) => Box::new(tokio::fs::File::open(path).await?),
            })
        })
    }
}

fn served(m: FetchedManifest, default: &str) -> ServedManifest {
    let media_type = m
        .media_type
        .filter(|t| !t.is_empty())
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(&m.bytes)
                .ok()
                .and_then(|v| v["mediaType"].as_str().map(String::from))
        })
        .unwrap_or_else(|| default.to_string());
    ServedManifest {
        media_type,
        digest: m.digest.into_string(),
        bytes: m.bytes,
    }
}

fn from_layout(dir: OciLayoutDir) -> Result<LocalImage> {
    let dir = Arc::new(dir);
    let mut blobs = BTreeMap::new();
    let mut add = |b: &BlobRef| {
        // A foreign layer the layout leaves out is not ours to push.
        let absent = || dir.blob_path(&b.digest).map_or(true, |p| !p.is_file());
        if media_types::is_non_distributable(&b.media_type) && absent() {
            return;
        }
        blobs.insert(b.digest.clone(), (BlobLoc::Layout(dir.clone()), b.size));
    };
    let (top, manifests) = match dir.top()? {
        LayoutTop::Image(img) => {
            std::iter::once(&img.config)
                .chain(&img.layers)
                .for_each(&mut add);
            (served(img.manifest, OCI_MANIFEST), Vec::new())
        }
        LayoutTop::Index {
            index,
            nested,
            images,
        } => {
            let mut manifests: Vec<ServedManifest> =
                nested.into_iter().map(|m| served(m, OCI_INDEX)).collect();
            for img in images {
                std::iter::once(&img.config)
                    .chain(&img.layers)
                    .for_each(&mut add);
                manifests.push(served(img.manifest, OCI_MANIFEST));
            }
            (served(index, OCI_INDEX), manifests)
        }
    };
    Ok(LocalImage {
        top,
        manifests,
        blobs,
        _scratch: None,
    })
}

/// How docker-save layers are described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// As stored, in an OCI manifest (for the loopback registry).
    Serve,
    /// gzip, registry-image's docker manifest (for a registry).
    Push,
}

fn layer_media_type(c: Compression, mode: Mode) -> &'static str {
    match (c, mode) {
        (Compression::Gzip, Mode::Push) => DOCKER_LAYER_GZIP,
        (Compression::Gzip, Mode::Serve) => media_types::OCI_LAYER_GZIP,
        (Compression::Zstd, _) => media_types::OCI_LAYER_ZSTD,
        (Compression::None, _) => media_types::OCI_LAYER,
    }
}

/// A docker-save tarball as a store: its one image hashed as stored, the
/// layers described (or, to push, uncompressed ones gzipped first) and a
/// manifest written for it, since the tarball has none a registry takes.
async fn from_archive(
    path: &Path,
    archive: DockerArchive,
    mode: Mode,
    annotations: &BTreeMap<String, String>,
) -> Result<LocalImage> {
    let image_problem = |p: String| Error::Image {
        path: path.to_path_buf(),
        problem: p,
    };
    if archive.images().len() != 1 {
        return Err(image_problem(format!(
            "holds {} images; a put pushes exactly one",
            archive.images().len()
        )));
    }
    let archive = Arc::new(archive);
    let info = {
        let archive = archive.clone();
        tokio::task::spawn_blocking(move || archive.describe(0))
            .await
            .map_err(|e| image_problem(format!("hashing its entries: {e}")))??
    };
    let mut blobs = BTreeMap::new();
    blobs.insert(
        info.config.digest.clone(),
        (
            BlobLoc::Entry(archive.clone(), info.config.entry.clone()),
            info.config.size,
        ),
    );
    let scratch = match mode {
        Mode::Push => Some(tempfile::tempdir().map_err(|e| Error::Io {
            what: "creating a temp dir for compressed layers".into(),
            source: e,
        })?),
        Mode::Serve => None,
    };

    let scratch_dir = scratch.as_ref().map(|d| d.path());
    let layers = ArchiveLayers::start(&archive, &info.layers, scratch_dir, mode, &mut blobs)
        .finish(path, &mut blobs)
        .await?;
    Ok(LocalImage {
        top: archive_manifest(mode, &info.config, &layers, annotations),
        manifests: Vec::new(),
        blobs,
        _scratch: scratch,
    })
}

/// A layer's gzip job: the file written, its digest and size.
type GzipJob = tokio::task::JoinHandle<Result<(PathBuf, String, u64)>>;

/// The layers of a docker-save image on their way into its manifest: as
/// stored, or (an uncompressed layer to push) gzipped into scratch first,
/// since registry-image's manifest lists gzip layers.
struct ArchiveLayers {
    /// In manifest order; a gzipped layer's digest and size are filled in
    /// when its job ends.
    descriptors: Vec<Descriptor>,
    /// The gzip jobs, by layer index.
    jobs: Vec<(usize, GzipJob)>,
}

impl ArchiveLayers {
    /// Describes each layer, adding those kept as stored to `blobs`, and
    /// starts a gzip job for each one to compress into `scratch` (given
    /// only for a push).
    fn start(
        archive: &Arc<DockerArchive>,
        layers: &[ArchiveBlob],
        scratch: Option<&Path>,
        mode: Mode,
        blobs: &mut BTreeMap<String, (BlobLoc, u64)>,
    ) -> ArchiveLayers {
        let mut descriptors: Vec<Descriptor> = Vec::with_capacity(layers.len());
        let mut jobs = Vec::new();
        // Each layer's gzip already uses every core (manifest::gzip_to_file);
        // a second layer in flight fills the gaps between its batches while
        // bounding memory (two batches of 2 MiB per core).
        let parallel = Arc::new(tokio::sync::Semaphore::new(2));
        for (i, layer) in layers.iter().enumerate() {
            match (scratch, layer.compression) {
                (Some(dir), Compression::None) => {
                    let dest = dir.join(format!("layer-{i}.tar.gz"));
                    let (archive, entry, parallel) =
                        (archive.clone(), layer.entry.clone(), parallel.clone());
                    jobs.push((
                        i,
                        tokio::spawn(
                            async move { gzip_entry(&archive, &entry, dest, &parallel).await },
                        ),
                    ));
                    descriptors.push(Descriptor {
                        media_type: DOCKER_LAYER_GZIP.into(),
                        digest: String::new(),
                        size: 0,
                    });
                }
                _ => {
                    blobs.insert(
                        layer.digest.clone(),
                        (
                            BlobLoc::Entry(archive.clone(), layer.entry.clone()),
                            layer.size,
                        ),
                    );
                    descriptors.push(Descriptor {
                        media_type: layer_media_type(layer.compression, mode).into(),
                        digest: layer.digest.clone(),
                        size: layer.size,
                    });
                }
            }
        }
        ArchiveLayers { descriptors, jobs }
    }

    /// Waits for the gzip jobs in layer order, adding each file to `blobs`;
    /// `path` names the image in errors.
    async fn finish(
        self,
        path: &Path,
        blobs: &mut BTreeMap<String, (BlobLoc, u64)>,
    ) -> Result<Vec<Descriptor>> {
        let ArchiveLayers {
            descriptors: mut layers,
            jobs,
        } = self;
        for (i, job) in jobs {
            let (dest, digest, size) = job.await.map_err(|e| Error::Image {
                path: path.to_path_buf(),
                problem: format!("compressing layer {i}: {e}"),
            })??;
            layers[i].digest = digest.clone();
            layers[i].size = size;
            blobs.insert(digest, (BlobLoc::File(dest), size));
        }
        Ok(layers)
    }
}

/// The manifest written for a docker-save image: registry-image's docker
/// manifest (with `annotations`) to push, a plain OCI one to serve, whose
/// layers keep the media types they are stored in.
fn archive_manifest(
    mode: Mode,
    config: &ArchiveBlob,
    layers: &[Descriptor],
    annotations: &BTreeMap<String, String>,
) -> ServedManifest {
    let bytes = match mode {
        Mode::Push => manifest::docker_manifest(
            &Descriptor {
                media_type: DOCKER_CONFIG.into(),
                digest: config.digest.clone(),
                size: config.size,
            },
            layers,
            annotations,
        ),
        Mode::Serve => {
            let desc = |d: &Descriptor| serde_json::json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size});
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": media_types::OCI_CONFIG, "digest": config.digest, "size": config.size},
                "layers": layers.iter().map(desc).collect::<Vec<_>>(),
            })
            .to_string()
            .into_bytes()
        }
    };
    ServedManifest {
        media_type: if mode == Mode::Push {
            manifest::DOCKER_MANIFEST
        } else {
            OCI_MANIFEST
        }
        .into(),
        digest: sha256_digest(&bytes).into_string(),
        bytes: Bytes::from(bytes),
    }
}

/// Gzips one tarball entry to `dest` on a blocking thread, fed from the
/// async entry reader through a small channel.
async fn gzip_entry(
    archive: &DockerArchive,
    entry: &str,
    dest: PathBuf,
    parallel: &tokio::sync::Semaphore,
) -> Result<(PathBuf, String, u64)> {
    let _permit = parallel.acquire().await.map_err(|e| Error::Io {
        what: "waiting to compress a layer".into(),
        source: std::io::Error::other(e),
    })?;
    let (mut reader, _) = archive.open_entry(entry).await?;
    // A tokio channel: the async side awaits room instead of blocking a
    // runtime thread while the compressor catches up.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let out = dest.clone();
    let worker = tokio::task::spawn_blocking(move || {
        manifest::gzip_to_file(
            ChannelReader {
                rx,
                current: Bytes::new(),
            },
            &out,
        )
    });
    loop {
        let mut buf = bytes::BytesMut::with_capacity(256 * 1024);
        match tokio::io::AsyncReadExt::read_buf(&mut reader, &mut buf).await {
            Ok(0) => break,
            Ok(_) => {
                if tx.send(Ok(buf.freeze())).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                break;
            }
        }
    }
    drop(tx);
    let io = |source| Error::Io {
        what: format!("compressing layer {entry}"),
        source,
    };
    let (digest, size) = worker
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;
    Ok((dest, digest, size))
}

struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            // Runs on a blocking thread (spawn_blocking), where this is allowed.
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

async fn load(
    path: &Path,
    mode: Mode,
    annotations: &BTreeMap<String, String>,
) -> Result<Arc<dyn ImageStore>> {
    let owned = path.to_path_buf();
    let source = tokio::task::spawn_blocking(move || ImageSource::open(&owned))
        .await
        .map_err(|e| Error::Image {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })??;
    let image = match source {
        ImageSource::Layout(dir) => {
            if !annotations.is_empty() {
                tracing::warn!(
                    "annotations are not added to a prebuilt OCI layout: its manifests are pushed as they are"
                );
            }
            let owned = path.to_path_buf();
            tokio::task::spawn_blocking(move || from_layout(dir))
                .await
                .map_err(|e| Error::Image {
                    path: owned,
                    problem: e.to_string(),
                })??
        }
        ImageSource::Archive(archive) => from_archive(path, archive, mode, annotations).await?,
    };
    Ok(Arc::new(image))
}

/// An image for the loopback registry, layers as stored.
pub async fn for_serving(path: &Path) -> Result<Arc<dyn ImageStore>> {
    load(path, Mode::Serve, &BTreeMap::new()).await
}

/// An image to push: layouts as they are, docker-save with gzip layers and
/// `annotations` in the manifest we write.
pub async fn for_push(
    path: &Path,
    annotations: &BTreeMap<String, String>,
) -> Result<Arc<dyn ImageStore>> {
    load(path, Mode::Push, annotations).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::fs::File;

    /// Builds a docker-save tarball with one uncompressed and one gzip layer,
    /// the second stored twice via a symlink as docker save does.
    fn docker_save(dir: &Path) -> (PathBuf, Vec<u8>, Vec<u8>) {
        let layer1 = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(5);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, "hello", &b"world"[..]).unwrap();
            b.into_inner().unwrap()
        };
        let layer2 = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &layer1).unwrap();
            gz.finish().unwrap()
        };
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer1), sha256_digest(&layer1)]}
        })
        .to_string();
        let listing = serde_json::json!([{"Config": "cfg.json", "RepoTags": ["x:latest"], "Layers": ["a/layer.tar", "b/layer.tar"]}]).to_string();
        let path = dir.join("image.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        };
        add("manifest.json", listing.as_bytes());
        add("cfg.json", config.as_bytes());
        add("a/layer.tar", &layer1);
        add("c/layer.tar", &layer2);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, "b/layer.tar", "../c/layer.tar")
            .unwrap();
        b.into_inner().unwrap();
        (path, layer1, layer2)
    }

    async fn read_blob(store: &dyn ImageStore, digest: &str) -> Vec<u8> {
        let mut r = store.open_blob(digest).await.unwrap();
        let mut buf = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut buf)
            .await
            .unwrap();
        buf
    }

    #[tokio::test]
    async fn docker_save_for_serving_keeps_layers_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (path, layer1, layer2) = docker_save(dir.path());
        let store = for_serving(&path).await.unwrap();
        let doc: Value = serde_json::from_slice(&store.top().bytes).unwrap();
        assert_eq!(doc["mediaType"], OCI_MANIFEST);
        let l = doc["layers"].as_array().unwrap();
        assert_eq!(l[0]["digest"], sha256_digest(&layer1).as_str());
        assert_eq!(l[0]["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(l[1]["digest"], sha256_digest(&layer2).as_str());
        for d in l {
            let digest = d["digest"].as_str().unwrap();
            assert_eq!(
                sha256_digest(&read_blob(store.as_ref(), digest).await),
                digest
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn docker_save_for_push_gzips_and_writes_registry_image_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let (path, layer1, layer2) = docker_save(dir.path());
        let store = for_push(&path, &BTreeMap::new()).await.unwrap();
        assert_eq!(store.top().media_type, manifest::DOCKER_MANIFEST);
        let doc: Value = serde_json::from_slice(&store.top().bytes).unwrap();
        let l = doc["layers"].as_array().unwrap();
        assert!(l.iter().all(|d| d["mediaType"] == DOCKER_LAYER_GZIP));
        // The uncompressed layer was gzipped; the gzip one is pushed as stored.
        let first = read_blob(store.as_ref(), l[0]["digest"].as_str().unwrap()).await;
        assert_eq!(sha256_digest(&first), l[0]["digest"].as_str().unwrap());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&first[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, layer1);
        assert_eq!(l[1]["digest"], sha256_digest(&layer2).as_str());
        // Same input, same digest.
        let again = for_push(&path, &BTreeMap::new()).await.unwrap();
        assert_eq!(again.top().digest, store.top().digest);
    }

    /// skopeo writes a docker-archive; we serve it; skopeo pulls it back
    /// through the loopback registry with the same layers.
    // Blocking skopeo calls: the registry must run on another thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(have_skopeo), ignore = "needs skopeo on PATH")]
    async fn skopeo_docker_archive_round_trips_through_the_loopback_registry() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        let blob = |bytes: &[u8]| {
            let d = sha256_digest(bytes);
            let p = layout.join("blobs/sha256").join(&d[7..]);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
            d
        };
        let (tar_path, layer1, _) = docker_save(dir.path());
        std::fs::remove_file(&tar_path).unwrap();
        let gz = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &layer1).unwrap();
            gz.finish().unwrap()
        };
        let ld = blob(&gz);
        let config = serde_json::json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[sha256_digest(&layer1)]}}).to_string();
        let cd = blob(config.as_bytes());
        let m = serde_json::json!({"schemaVersion":2,"mediaType":OCI_MANIFEST,
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":cd,"size":config.len()},
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":ld,"size":gz.len()}]}).to_string();
        let md = blob(m.as_bytes());
        std::fs::write(
            layout.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        std::fs::write(
            layout.join("index.json"),
            serde_json::json!({"schemaVersion":2,"manifests":[{"mediaType":OCI_MANIFEST,"digest":md,"size":m.len(),"annotations":{"org.opencontainers.image.ref.name":"t"}}]}).to_string(),
        )
        .unwrap();
        let archive = dir.path().join("image.tar");
        let run = |args: &[String]| {
            let out = std::process::Command::new("skopeo")
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "skopeo {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "copy".into(),
            format!("oci:{}:t", layout.display()),
            format!("docker-archive:{}:x:latest", archive.display()),
        ]);

        let store = for_serving(&archive).await.unwrap();
        let reg = super::super::loopback::ImageRegistry::start(BTreeMap::from([(
            "base".to_string(),
            store,
        )]))
        .await
        .unwrap();
        let pulled = dir.path().join("pulled");
        run(&[
            "copy".into(),
            "--src-tls-verify=false".into(),
            format!("docker://{}/base:latest", reg.host()),
            format!("oci:{}:p", pulled.display()),
        ]);
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--config", "--raw"])
            .arg(format!("oci:{}:p", pulled.display()))
            .output()
            .unwrap();
        let cfg: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            cfg["rootfs"]["diff_ids"][0],
            sha256_digest(&layer1).as_str()
        );

        // A one-image layout serves (and pushes) the image itself, as skopeo
        // and crane push it: not index.json, whose `ref.name` annotation is
        // local to the layout.
        let store = for_serving(&layout).await.unwrap();
        assert_eq!(store.top().media_type, OCI_MANIFEST);
        assert_eq!(store.top().digest, md);
        assert_eq!(store.top().bytes.as_ref(), m.as_bytes());
        assert_eq!(store.blob_size(&ld), Some(gz.len() as u64));
    }
}
