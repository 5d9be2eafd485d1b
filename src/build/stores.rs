//! Prebuilt images on disk as [`ImageStore`]s: an OCI layout directory, an
//! OCI layout tarball, or a docker-save tarball.
//!
//! Tarballs are not extracted: their entries are indexed (offset, size) and
//! blobs are read in place, so a big image costs no extra copy. A
//! docker-save tarball has no registry manifest: for serving (IMAGE_ARG) we
//! describe its layers as stored (uncompressed layers get the digest their
//! config's `diff_ids` already states); for pushing we write
//! registry-image's manifest with gzip layers, compressing uncompressed
//! layers into a temp dir first, in parallel.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::manifest::{
    self, DOCKER_CONFIG, DOCKER_LAYER_GZIP, Descriptor, OCI_INDEX, OCI_MANIFEST, sha256,
};
use super::serve::{BlobReader, ImageStore, OpenBlob, ServedManifest};
use super::{Error, Result};

/// Where a blob's bytes are: a whole file, or a range of a tarball.
#[derive(Debug, Clone)]
struct Location {
    path: PathBuf,
    offset: u64,
    size: u64,
}

impl Location {
    fn open_sync(&self) -> std::io::Result<std::io::Take<File>> {
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(self.offset))?;
        Ok(f.take(self.size))
    }
}

/// An image whose blobs live in files.
#[derive(Debug)]
pub struct FileImage {
    top: ServedManifest,
    manifests: Vec<ServedManifest>,
    blobs: BTreeMap<String, Location>,
    /// Keeps compressed layers alive while the image is in use.
    _scratch: Option<tempfile::TempDir>,
}

impl ImageStore for FileImage {
    fn top(&self) -> &ServedManifest {
        &self.top
    }
    fn manifest(&self, digest: &str) -> Option<&ServedManifest> {
        std::iter::once(&self.top)
            .chain(&self.manifests)
            .find(|m| m.digest == digest)
    }
    fn blob_size(&self, digest: &str) -> Option<u64> {
        self.blobs.get(digest).map(|l| l.size)
    }
    fn open_blob(&self, digest: &str) -> OpenBlob {
        let loc = self.blobs.get(digest).cloned();
        Box::pin(async move {
            let loc = loc.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
            let mut f = tokio::fs::File::open(&loc.path).await?;
            tokio::io::AsyncSeekExt::seek(&mut f, SeekFrom::Start(loc.offset)).await?;
            Ok(Box::new(tokio::io::AsyncReadExt::take(f, loc.size)) as BlobReader)
        })
    }
}

/// The files of a layout dir or a tarball, by relative name.
enum Files {
    Dir(PathBuf),
    Tar(BTreeMap<String, Location>),
}

impl Files {
    fn open(path: &Path) -> Result<Files> {
        if path.is_dir() {
            return Ok(Files::Dir(path.to_path_buf()));
        }
        let io = |e| Error::Image {
            path: path.to_path_buf(),
            problem: format!("reading it as a tarball: {e}"),
        };
        let mut archive = tar::Archive::new(File::open(path).map_err(io)?);
        let mut entries = BTreeMap::new();
        let mut links: Vec<(String, String)> = Vec::new();
        for entry in archive.entries().map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = normalize(&entry.path().map_err(io)?.to_string_lossy());
            let kind = entry.header().entry_type();
            if kind.is_file() {
                let loc = Location {
                    path: path.to_path_buf(),
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                };
                entries.insert(name, loc);
            } else if kind.is_symlink() || kind.is_hard_link() {
                // docker save links repeated layers to their first copy.
                if let Ok(Some(target)) = entry.link_name() {
                    let target = target.to_string_lossy().into_owned();
                    let resolved = if kind.is_symlink() {
                        let parent = Path::new(&name)
                            .parent()
                            .map(|p| p.to_string_lossy().into_owned());
                        normalize(&format!("{}/{target}", parent.unwrap_or_default()))
                    } else {
                        normalize(&target)
                    };
                    links.push((name, resolved));
                }
            }
        }
        for (name, target) in links {
            if let Some(loc) = entries.get(&target).cloned() {
                entries.insert(name, loc);
            }
        }
        Ok(Files::Tar(entries))
    }

    fn location(&self, name: &str) -> Option<Location> {
        match self {
            Files::Dir(root) => {
                let path = root.join(name);
                // Stay inside the layout even if it holds symlinks.
                let real = path.canonicalize().ok()?;
                if !real.starts_with(root.canonicalize().ok()?) {
                    return None;
                }
                let size = std::fs::metadata(&real).ok()?.len();
                Some(Location {
                    path: real,
                    offset: 0,
                    size,
                })
            }
            Files::Tar(entries) => entries.get(&normalize(name)).cloned(),
        }
    }

    fn read(&self, name: &str, limit: u64) -> Option<Vec<u8>> {
        let loc = self.location(name)?;
        if loc.size > limit {
            return None;
        }
        let mut buf = Vec::with_capacity(loc.size as usize);
        loc.open_sync().ok()?.read_to_end(&mut buf).ok()?;
        Some(buf)
    }
}

/// `./a//b/../c` → `a/c`.
fn normalize(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

const MAX_JSON: u64 = 16 * 1024 * 1024;

fn blob_name(digest: &str) -> Option<String> {
    let (alg, hex) = digest.split_once(':')?;
    (!alg.is_empty() && !hex.is_empty() && !hex.contains('/')).then(|| format!("blobs/{alg}/{hex}"))
}

fn problem(path: &Path, p: impl Into<String>) -> Error {
    Error::Image {
        path: path.to_path_buf(),
        problem: p.into(),
    }
}

/// Reads an OCI layout (dir or tarball): index.json, descending while it
/// holds exactly one index (buildx output), as registry-image does.
fn oci_layout(path: &Path, files: &Files) -> Result<FileImage> {
    let index_bytes = files
        .read("index.json", MAX_JSON)
        .ok_or_else(|| problem(path, "no index.json"))?;
    let index: Value = serde_json::from_slice(&index_bytes)
        .map_err(|e| problem(path, format!("index.json: {e}")))?;
    let read_manifest = |desc: &Value| -> Result<ServedManifest> {
        let digest = desc["digest"]
            .as_str()
            .ok_or_else(|| problem(path, "a descriptor has no digest"))?;
        let name =
            blob_name(digest).ok_or_else(|| problem(path, format!("bad digest {digest}")))?;
        let bytes = files
            .read(&name, MAX_JSON)
            .ok_or_else(|| problem(path, format!("missing {name}")))?;
        if sha256(&bytes) != digest {
            return Err(problem(path, format!("{name} does not match its digest")));
        }
        let doc: Value =
            serde_json::from_slice(&bytes).map_err(|e| problem(path, format!("{name}: {e}")))?;
        let media_type = desc["mediaType"]
            .as_str()
            .or(doc["mediaType"].as_str())
            .unwrap_or(if doc.get("manifests").is_some() {
                OCI_INDEX
            } else {
                OCI_MANIFEST
            })
            .to_string();
        Ok(ServedManifest {
            media_type,
            digest: digest.to_string(),
            bytes: Bytes::from(bytes),
        })
    };
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    let mut top = match entries.as_slice() {
        [] => return Err(problem(path, "index.json lists no image")),
        [one] => read_manifest(one)?,
        // Several images: the layout's own index is the image.
        _ => ServedManifest {
            media_type: OCI_INDEX.into(),
            digest: sha256(&index_bytes),
            bytes: Bytes::from(index_bytes.clone()),
        },
    };
    loop {
        let doc: Value =
            serde_json::from_slice(&top.bytes).map_err(|e| problem(path, e.to_string()))?;
        match doc["manifests"].as_array().map(Vec::as_slice) {
            Some([only])
                if only["mediaType"]
                    .as_str()
                    .is_some_and(|m| m.contains("index") || m.contains("list")) =>
            {
                top = read_manifest(only)?;
            }
            _ => break,
        }
    }
    let mut manifests = Vec::new();
    let mut blobs = BTreeMap::new();
    let top_doc: Value =
        serde_json::from_slice(&top.bytes).map_err(|e| problem(path, e.to_string()))?;
    let images: Vec<ServedManifest> = match top_doc["manifests"].as_array() {
        Some(children) => {
            let mut out = Vec::new();
            for c in children {
                let m = read_manifest(c)?;
                manifests.push(m.clone());
                out.push(m);
            }
            out
        }
        None => vec![top.clone()],
    };
    for m in &images {
        let doc: Value =
            serde_json::from_slice(&m.bytes).map_err(|e| problem(path, e.to_string()))?;
        let descs = doc
            .get("config")
            .into_iter()
            .chain(doc["layers"].as_array().into_iter().flatten());
        for d in descs {
            let Some(digest) = d["digest"].as_str() else {
                continue;
            };
            let Some(loc) = blob_name(digest).and_then(|n| files.location(&n)) else {
                continue;
            };
            blobs.insert(digest.to_string(), loc);
        }
    }
    Ok(FileImage {
        top,
        manifests,
        blobs,
        _scratch: None,
    })
}

/// How docker-save layers are described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// As stored (for the loopback registry).
    Serve,
    /// gzip, registry-image's manifest (for a registry).
    Push,
}

fn docker_archive(
    path: &Path,
    files: &Files,
    mode: Mode,
    annotations: &BTreeMap<String, String>,
) -> Result<FileImage> {
    let listing = files
        .read("manifest.json", MAX_JSON)
        .ok_or_else(|| problem(path, "no manifest.json"))?;
    let listing: Value = serde_json::from_slice(&listing)
        .map_err(|e| problem(path, format!("manifest.json: {e}")))?;
    let entry = match listing.as_array().map(Vec::as_slice) {
        Some([one]) => one,
        Some(many) => {
            return Err(problem(
                path,
                format!("holds {} images; push one image per put", many.len()),
            ));
        }
        None => return Err(problem(path, "manifest.json is not a list")),
    };
    let config_name = entry["Config"]
        .as_str()
        .ok_or_else(|| problem(path, "manifest.json has no Config"))?;
    let config = files
        .read(config_name, MAX_JSON)
        .ok_or_else(|| problem(path, format!("missing {config_name}")))?;
    let config_doc: Value = serde_json::from_slice(&config)
        .map_err(|e| problem(path, format!("{config_name}: {e}")))?;
    let diff_ids: Vec<String> = config_doc["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(String::from))
        .collect();
    let layer_names: Vec<String> = entry["Layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(String::from))
        .collect();
    if layer_names.len() != diff_ids.len() {
        return Err(problem(
            path,
            "manifest.json and the config disagree on the number of layers",
        ));
    }
    let config_loc = files
        .location(config_name)
        .ok_or_else(|| problem(path, format!("missing {config_name}")))?;
    let config_digest = sha256(&config);
    let mut blobs = BTreeMap::from([(config_digest.clone(), config_loc)]);
    let scratch = if mode == Mode::Push {
        Some(tempfile::tempdir().map_err(|e| problem(path, format!("creating a temp dir: {e}")))?)
    } else {
        None
    };

    // Sniff each layer; compress the uncompressed ones in parallel for a push.
    let mut layers: Vec<Option<Descriptor>> = vec![None; layer_names.len()];
    let mut to_gzip: Vec<(usize, Location)> = Vec::new();
    for (i, name) in layer_names.iter().enumerate() {
        let loc = files
            .location(name)
            .ok_or_else(|| problem(path, format!("missing layer {name}")))?;
        let mut head = [0u8; 4];
        let n = loc
            .open_sync()
            .and_then(|mut r| r.read(&mut head))
            .map_err(|e| problem(path, format!("{name}: {e}")))?;
        let compressed = manifest::is_compressed(&head[..n]);
        match (compressed, mode) {
            (false, Mode::Serve) => {
                let digest = diff_ids[i].clone();
                layers[i] = Some(Descriptor {
                    media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                    digest: digest.clone(),
                    size: loc.size,
                });
                blobs.insert(digest, loc);
            }
            (false, Mode::Push) => to_gzip.push((i, loc)),
            (true, _) => {
                let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
                let mut r = loc
                    .open_sync()
                    .map_err(|e| problem(path, format!("{name}: {e}")))?;
                std::io::copy(&mut r, &mut HashWrite(&mut hasher))
                    .map_err(|e| problem(path, format!("{name}: {e}")))?;
                let digest = format!("sha256:{}", hex::encode(sha2::Digest::finalize(hasher)));
                let media_type = if head.starts_with(&[0x1f, 0x8b]) {
                    DOCKER_LAYER_GZIP
                } else {
                    "application/vnd.oci.image.layer.v1.tar+zstd"
                };
                layers[i] = Some(Descriptor {
                    media_type: media_type.into(),
                    digest: digest.clone(),
                    size: loc.size,
                });
                blobs.insert(digest, loc);
            }
        }
    }
    if let Some(dir) = &scratch {
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(to_gzip.len().max(1));
        let queue = std::sync::Mutex::new(to_gzip);
        let results = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let Some((i, loc)) = queue.lock().ok().and_then(|mut q| q.pop()) else {
                            break;
                        };
                        let dest = dir.path().join(format!("layer-{i}.gz"));
                        let r = loc
                            .open_sync()
                            .and_then(|input| manifest::gzip_to_file(input, &dest));
                        if let Ok(mut out) = results.lock() {
                            out.push((i, dest, r));
                        }
                    }
                });
            }
        });
        for (i, dest, r) in results.into_inner().unwrap_or_default() {
            let (digest, size) =
                r.map_err(|e| problem(path, format!("compressing {}: {e}", layer_names[i])))?;
            layers[i] = Some(Descriptor {
                media_type: DOCKER_LAYER_GZIP.into(),
                digest: digest.clone(),
                size,
            });
            blobs.insert(
                digest,
                Location {
                    path: dest,
                    offset: 0,
                    size,
                },
            );
        }
    }
    let layers: Vec<Descriptor> = layers
        .into_iter()
        .collect::<Option<_>>()
        .ok_or_else(|| problem(path, "a layer was not prepared"))?;
    let (media_type, bytes) = match mode {
        Mode::Push => {
            let config_desc = Descriptor {
                media_type: DOCKER_CONFIG.into(),
                digest: config_digest,
                size: config.len() as u64,
            };
            (
                manifest::DOCKER_MANIFEST,
                manifest::docker_manifest(&config_desc, &layers, annotations),
            )
        }
        Mode::Serve => {
            let desc = |d: &Descriptor| serde_json::json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size});
            let doc = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
                "layers": layers.iter().map(desc).collect::<Vec<_>>(),
            });
            (OCI_MANIFEST, doc.to_string().into_bytes())
        }
    };
    Ok(FileImage {
        top: ServedManifest {
            media_type: media_type.into(),
            digest: sha256(&bytes),
            bytes: Bytes::from(bytes),
        },
        manifests: Vec::new(),
        blobs,
        _scratch: scratch,
    })
}

struct HashWrite<'a>(&'a mut sha2::Sha256);

impl std::io::Write for HashWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn load(path: &Path, mode: Mode, annotations: &BTreeMap<String, String>) -> Result<FileImage> {
    let files = Files::open(path)?;
    let is_oci = files.location("index.json").is_some();
    let is_docker = files.location("manifest.json").is_some();
    match (is_oci, is_docker) {
        // A layout (docker 25+ saves both; the OCI side keeps digests).
        (true, _) if annotations.is_empty() || !is_docker => oci_layout(path, &files),
        (_, true) => docker_archive(path, &files, mode, annotations),
        _ => Err(problem(
            path,
            "neither an OCI layout (index.json) nor a docker-save tarball (manifest.json)",
        )),
    }
}

async fn load_async(
    path: &Path,
    mode: Mode,
    annotations: BTreeMap<String, String>,
) -> Result<Arc<dyn ImageStore>> {
    let path = path.to_path_buf();
    let image = tokio::task::spawn_blocking(move || load(&path, mode, &annotations))
        .await
        .map_err(|e| Error::Io {
            what: "reading an image".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
    Ok(Arc::new(image))
}

/// An image for the loopback registry, layers as stored.
pub async fn for_serving(path: &Path) -> Result<Arc<dyn ImageStore>> {
    load_async(path, Mode::Serve, BTreeMap::new()).await
}

/// An image to push: layouts as they are, docker-save with gzip layers.
pub async fn for_push(path: &Path) -> Result<Arc<dyn ImageStore>> {
    load_async(path, Mode::Push, BTreeMap::new()).await
}

/// Like [`for_push`], with manifest annotations (docker-save only: a
/// layout's manifests are pushed byte for byte).
pub async fn for_push_with_annotations(
    path: &Path,
    annotations: &BTreeMap<String, String>,
) -> Result<Arc<dyn ImageStore>> {
    load_async(path, Mode::Push, annotations.clone()).await
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "rootfs": {"type": "layers", "diff_ids": [sha256(&layer1), sha256(&layer1)]}
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
        assert_eq!(l[0]["digest"], sha256(&layer1).as_str());
        assert_eq!(l[0]["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(l[1]["digest"], sha256(&layer2).as_str());
        assert_eq!(l[1]["mediaType"], DOCKER_LAYER_GZIP);
        for d in l {
            let digest = d["digest"].as_str().unwrap();
            assert_eq!(sha256(&read_blob(store.as_ref(), digest).await), digest);
        }
    }

    #[tokio::test]
    async fn docker_save_for_push_gzips_and_writes_registry_image_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let (path, layer1, layer2) = docker_save(dir.path());
        let store = for_push(&path).await.unwrap();
        assert_eq!(store.top().media_type, manifest::DOCKER_MANIFEST);
        let doc: Value = serde_json::from_slice(&store.top().bytes).unwrap();
        let l = doc["layers"].as_array().unwrap();
        assert!(l.iter().all(|d| d["mediaType"] == DOCKER_LAYER_GZIP));
        // The uncompressed layer was gzipped; the gzip one is pushed as stored.
        let first = read_blob(store.as_ref(), l[0]["digest"].as_str().unwrap()).await;
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&first[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, layer1);
        assert_eq!(l[1]["digest"], sha256(&layer2).as_str());
        // Same input, same digest.
        let again = for_push(&path).await.unwrap();
        assert_eq!(again.top().digest, store.top().digest);
    }

    #[tokio::test]
    async fn oci_layout_descends_into_a_single_nested_index() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let blob = |bytes: &[u8]| {
            let d = sha256(bytes);
            let p = root.join("blobs/sha256").join(&d[7..]);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
            d
        };
        let config =
            br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let cd = blob(config);
        let m = serde_json::json!({"schemaVersion":2,"mediaType":OCI_MANIFEST,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":cd,"size":config.len()},"layers":[]}).to_string();
        let md = blob(m.as_bytes());
        let inner = serde_json::json!({"schemaVersion":2,"mediaType":OCI_INDEX,"manifests":[{"mediaType":OCI_MANIFEST,"digest":md,"size":m.len(),"platform":{"os":"linux","architecture":"arm64"}}]}).to_string();
        let id = blob(inner.as_bytes());
        let outer = serde_json::json!({"schemaVersion":2,"manifests":[{"mediaType":OCI_INDEX,"digest":id,"size":inner.len()}]}).to_string();
        std::fs::write(root.join("index.json"), outer).unwrap();
        std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let store = for_push(root).await.unwrap();
        assert_eq!(store.top().digest, id);
        assert_eq!(
            store.manifest(&md).map(|m| m.media_type.as_str()),
            Some(OCI_MANIFEST)
        );
        assert_eq!(store.blob_size(&cd), Some(config.len() as u64));
    }

    /// skopeo writes a docker-archive; we serve it; skopeo pulls it back
    /// through the loopback registry with the same layers.
    // Blocking skopeo calls: the registry must run on another thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn skopeo_docker_archive_round_trips_through_the_loopback_registry() {
        if std::process::Command::new("skopeo")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("SKIP: needs skopeo");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // An OCI layout with one gzip layer, made by hand.
        let layout = dir.path().join("layout");
        let blob = |bytes: &[u8]| {
            let d = sha256(bytes);
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
        let config = serde_json::json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[sha256(&layer1)]}}).to_string();
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
        let reg = super::super::serve::ImageRegistry::start(BTreeMap::from([(
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
        assert_eq!(cfg["rootfs"]["diff_ids"][0], sha256(&layer1).as_str());
    }
}
