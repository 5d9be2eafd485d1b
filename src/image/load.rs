//! Reading local images: OCI layout directories and `docker save` tarballs.
//!
//! `put` pushes these (`params.image`, and IMAGE_ARG_* preloads). Both
//! readers list what there is to push with digests and sizes, and open
//! streaming readers over single blobs, so no image is ever held in memory.
//!
//! - [`OciLayoutDir`] descends while `index.json` holds exactly one entry
//!   that is itself an index (buildx `type=oci` output), as registry-image
//!   does; when that one entry is an image manifest (what umoci, skopeo and
//!   one-platform `buildctl --output type=oci` write), the image itself is
//!   meant, as skopeo and crane push it; with a `single-image-digest` file
//!   only that image is meant. It also implements [`BlobSource`], so a layout can be
//!   "downloaded" like a registry image (tests use that), and its blob
//!   readers verify digest and size as they stream.
//! - [`DockerArchive`] indexes the tar once (headers only, seeking over
//!   data) and serves each entry as a byte range of the file.
//!   [`DockerArchive::describe`] hashes the config and layer entries as
//!   stored, which is what a regenerated manifest needs; layers stored
//!   uncompressed must be compressed by the caller before pushing, since
//!   registry-image pushes gzip layers.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};

use super::compression::Compression;
use super::fetch::{BlobSource, FetchedManifest};
use super::manifest::{self, Kind};
use super::{Error, Result};
use crate::oci::{Digest, Hasher, VerifyingReader, sha256_digest, verify_bytes};

/// A local image as `put` finds it at `params.image` or an IMAGE_ARG path:
/// a directory is an OCI layout, a file a `docker save` tarball
/// (registry-image's rule; OCI layouts packed in a tarball are not accepted).
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// An OCI layout directory.
    Layout(OciLayoutDir),
    /// A `docker save` tarball.
    Archive(DockerArchive),
}

impl ImageSource {
    /// Opens `path` as a layout (directory) or a tarball (file).
    pub fn open(path: &Path) -> Result<ImageSource> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io("reading", path, e))?;
        if meta.is_dir() {
            OciLayoutDir::open(path).map(ImageSource::Layout)
        } else {
            DockerArchive::open(path).map(ImageSource::Archive)
        }
    }
}

/// A blob of a local image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// `sha256:<hex>`
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// The media type from the referencing descriptor.
    pub media_type: String,
}

/// One image manifest of a layout, with what it references.
#[derive(Debug, Clone)]
pub struct LayoutImage {
    /// The manifest itself (exact bytes, digest, media type).
    pub manifest: FetchedManifest,
    /// Its config.
    pub config: BlobRef,
    /// Its layers, in order.
    pub layers: Vec<BlobRef>,
}

/// What a layout asks to be pushed.
#[derive(Debug, Clone)]
pub enum LayoutTop {
    /// One image (a `single-image-digest` layout, or a one-image layout).
    Image(LayoutImage),
    /// An index, pushed whole: its exact bytes and everything below it.
    Index {
        /// The index (exact bytes, digest, media type).
        index: FetchedManifest,
        /// Nested indexes below it, children before parents.
        nested: Vec<FetchedManifest>,
        /// Every image manifest below it.
        images: Vec<LayoutImage>,
    },
}

impl LayoutTop {
    /// Digest of what will be tagged.
    pub fn digest(&self) -> &str {
        match self {
            LayoutTop::Image(i) => &i.manifest.digest,
            LayoutTop::Index { index, .. } => &index.digest,
        }
    }
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct OciLayoutDir {
    dir: PathBuf,
}

impl OciLayoutDir {
    /// Opens a layout, checking its `oci-layout` file.
    pub fn open(dir: &Path) -> Result<Self> {
        super::layout::marker_version(dir)?;
        Ok(OciLayoutDir {
            dir: dir.to_owned(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a blob (digest validated, so it stays in `blobs/sha256`).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self
            .dir
            .join("blobs")
            .join("sha256")
            .join(Digest::parse(digest)?.hex()))
    }

    /// Reads a small blob, verified.
    pub fn read_blob(&self, digest: &str, size: Option<u64>) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
        verify_bytes(&path.display().to_string(), &bytes, digest, size)?;
        Ok(bytes)
    }

    /// Opens a streaming reader over a blob that fails at EOF unless the
    /// content matches `digest` and `size`.
    pub async fn open_blob(
        &self,
        digest: &str,
        size: u64,
    ) -> Result<VerifyingReader<tokio::fs::File>> {
        let path = self.blob_path(digest)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Error::io("opening", &path, e))?;
        Ok(VerifyingReader::new(
            file,
            format!("blob {digest}"),
            digest,
            size,
        ))
    }

    /// What the layout asks to push: with `single-image-digest`, that image;
    /// else descend while the index holds exactly one entry; a single image
    /// manifest found so is pushed alone (skopeo's and crane's rule, not
    /// registry-image's, which pushes `index.json` itself), and an index with
    /// several entries is pushed whole.
    pub fn top(&self) -> Result<LayoutTop> {
        let path = self.dir.join("index.json");
        let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
        let mut current = FetchedManifest {
            digest: sha256_digest(&bytes),
            bytes: Bytes::from(bytes),
            media_type: Some(manifest::OCI_INDEX.to_owned()),
        };
        let single = self.dir.join("single-image-digest");
        if let Ok(digest) = std::fs::read_to_string(&single) {
            let digest = digest.trim().to_owned();
            let m = self.manifest(&digest, None, None)?;
            return Ok(LayoutTop::Image(self.image(m)?));
        }
        loop {
            let index = manifest::parse_index(&current.digest, &current.bytes)?;
            let [only] = index.manifests().as_slice() else {
                break;
            };
            let child = self.manifest(
                only.digest().as_ref(),
                Some(only.size()),
                Some(only.media_type().to_string()),
            )?;
            match manifest::classify(&child.digest, child.media_type.as_deref(), &child.bytes)? {
                Kind::Index => current = child,
                // One image: push the image itself, as skopeo and crane do,
                // so the version digest is the image manifest's digest and
                // not that of the layout's own index.json (which carries
                // local `ref.name` annotations).
                Kind::Image => return Ok(LayoutTop::Image(self.image(child)?)),
            }
        }
        let mut nested = Vec::new();
        let mut images = Vec::new();
        let mut seen = HashSet::new();
        self.walk_index(&current, &mut nested, &mut images, 0, &mut seen)?;
        Ok(LayoutTop::Index {
            index: current,
            nested,
            images,
        })
    }

    fn manifest(
        &self,
        digest: &str,
        size: Option<u64>,
        media_type: Option<String>,
    ) -> Result<FetchedManifest> {
        let bytes = self.read_blob(digest, size)?;
        Ok(FetchedManifest {
            bytes: Bytes::from(bytes),
            media_type,
            digest: Digest::parse(digest)?,
        })
    }

    fn walk_index(
        &self,
        index: &FetchedManifest,
        nested: &mut Vec<FetchedManifest>,
        images: &mut Vec<LayoutImage>,
        depth: u32,
        seen: &mut HashSet<String>,
    ) -> Result<()> {
        if depth > 8 {
            return Err(Error::Unsupported {
                what: index.digest.to_string(),
                reason: "indexes nested too deeply".into(),
            });
        }
        let parsed = manifest::parse_index(&index.digest, &index.bytes)?;
        for d in parsed.manifests() {
            // Each digest once: an index naming the same nested index many
            // times is walked once, and the total is capped.
            if !seen.insert(d.digest().to_string()) {
                continue;
            }
            if seen.len() > manifest::MAX_MANIFESTS {
                return Err(manifest::too_many_manifests(&index.digest));
            }
            let child = self.manifest(
                d.digest().as_ref(),
                Some(d.size()),
                Some(d.media_type().to_string()),
            )?;
            match manifest::classify(&child.digest, child.media_type.as_deref(), &child.bytes)? {
                Kind::Index => {
                    self.walk_index(&child, nested, images, depth + 1, seen)?;
                    nested.push(child);
                }
                Kind::Image => images.push(self.image(child)?),
            }
        }
        Ok(())
    }

    fn image(&self, m: FetchedManifest) -> Result<LayoutImage> {
        let parsed = manifest::parse_image(&m.digest, &m.bytes)?;
        let blob = |d: &oci_spec::image::Descriptor| BlobRef {
            digest: d.digest().to_string(),
            size: d.size(),
            media_type: d.media_type().to_string(),
        };
        Ok(LayoutImage {
            config: blob(parsed.config()),
            layers: parsed.layers().iter().map(blob).collect(),
            manifest: FetchedManifest {
                media_type: Some(manifest::media_type_or_default(
                    Kind::Image,
                    m.media_type.as_deref(),
                    &m.bytes,
                )),
                ..m
            },
        })
    }
}

impl BlobSource for OciLayoutDir {
    type Error = Error;
    type Reader = VerifyingReader<tokio::fs::File>;

    async fn fetch_manifest(&self, digest: &Digest) -> Result<FetchedManifest> {
        let bytes = self.read_blob(digest, None)?;
        Ok(FetchedManifest {
            bytes: Bytes::from(bytes),
            media_type: None,
            digest: digest.to_owned(),
        })
    }

    async fn fetch_blob(&self, digest: &Digest) -> Result<Bytes> {
        Ok(Bytes::from(self.read_blob(digest, None)?))
    }

    async fn blob_reader(&self, digest: &Digest, size: u64) -> Result<Self::Reader> {
        self.open_blob(digest, size).await
    }
}

/// One image listed in a docker-save `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ArchiveImage {
    /// Entry name of the config.
    #[serde(rename = "Config")]
    pub config: String,
    /// `repo:tag` names (may be empty or null).
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    /// Entry names of the layers, in order.
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

/// A blob of an archive, hashed as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveBlob {
    /// Entry name in the tarball.
    pub entry: String,
    /// `sha256:<hex>` of the entry as stored.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// Compression found in the first bytes (layers; `None` for the config).
    pub compression: Compression,
}

/// Digests and sizes of one archive image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveImageInfo {
    /// The config entry.
    pub config: ArchiveBlob,
    /// The layer entries, in order.
    pub layers: Vec<ArchiveBlob>,
}

/// A `docker save` tarball, indexed.
#[derive(Debug, Clone)]
pub struct DockerArchive {
    path: PathBuf,
    /// Entry name → (offset of data in the file, size).
    entries: HashMap<String, (u64, u64)>,
    images: Vec<ArchiveImage>,
}

fn normalise_entry(name: &str) -> &str {
    name.trim_start_matches("./")
}

impl DockerArchive {
    /// Indexes the tarball and parses its `manifest.json`.
    pub fn open(path: &Path) -> Result<Self> {
        let io_err = |e| Error::io("reading image archive", path, e);
        let file = std::fs::File::open(path).map_err(io_err)?;
        let mut archive = tar::Archive::new(file);
        let mut entries = HashMap::new();
        let mut links = Vec::new();
        let mut manifest = None;
        for entry in archive.entries_with_seek().map_err(io_err)? {
            let mut entry = entry.map_err(io_err)?;
            let name = normalise_entry(&String::from_utf8_lossy(&entry.path_bytes())).to_owned();
            match entry.header().entry_type() {
                tar::EntryType::Regular => {}
                // docker 25+ saves legacy `<id>/layer.tar` names as symlinks
                // into `blobs/sha256/`; keep them to resolve after the scan.
                tar::EntryType::Symlink => {
                    if let Some(target) = entry.link_name_bytes() {
                        links.push((name, String::from_utf8_lossy(&target).into_owned()));
                    }
                    continue;
                }
                _ => continue,
            }
            let offset = entry.raw_file_position();
            let size = entry.size();
            if name == "manifest.json" {
                let mut text = Vec::new();
                entry.read_to_end(&mut text).map_err(io_err)?;
                manifest = Some(text);
            }
            entries.insert(name, (offset, size));
        }
        for (name, target) in links {
            // Relative to the link's directory, lexically; only names of
            // regular entries can result, so nothing outside the tar is named.
            let mut parts: Vec<&str> = name.split('/').collect();
            parts.pop();
            for c in target.split('/') {
                match c {
                    "" | "." => {}
                    ".." => {
                        parts.pop();
                    }
                    c => parts.push(c),
                }
            }
            if let Some(&found) = entries.get(&parts.join("/")) {
                entries.entry(name).or_insert(found);
            }
        }
        let manifest = manifest.ok_or_else(|| Error::Parse {
            what: path.display().to_string(),
            message: "no manifest.json: not a docker save tarball".into(),
        })?;
        let images: Vec<ArchiveImage> =
            serde_json::from_slice(&manifest).map_err(|e| Error::Parse {
                what: format!("manifest.json in {}", path.display()),
                message: e.to_string(),
            })?;
        let archive = DockerArchive {
            path: path.to_owned(),
            entries,
            images,
        };
        for image in &archive.images {
            for name in std::iter::once(&image.config).chain(&image.layers) {
                archive.entry(name)?;
            }
        }
        Ok(archive)
    }

    /// The images of `manifest.json`.
    pub fn images(&self) -> &[ArchiveImage] {
        &self.images
    }

    fn entry(&self, name: &str) -> Result<(u64, u64)> {
        self.entries
            .get(normalise_entry(name))
            .copied()
            .ok_or_else(|| Error::Parse {
                what: self.path.display().to_string(),
                message: format!("manifest.json names {name:?}, which is not in the archive"),
            })
    }

    /// Reads a small entry (a config) into memory.
    pub fn read_entry(&self, name: &str) -> Result<Vec<u8>> {
        let (offset, size) = self.entry(name)?;
        let io_err = |e| Error::io("reading image archive", &self.path, e);
        let mut file = std::fs::File::open(&self.path).map_err(io_err)?;
        file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        let mut out = Vec::with_capacity(size as usize);
        file.take(size).read_to_end(&mut out).map_err(io_err)?;
        Ok(out)
    }

    /// A streaming reader over one entry, and its size.
    pub async fn open_entry(
        &self,
        name: &str,
    ) -> Result<(impl AsyncRead + Send + Unpin + use<>, u64)> {
        let (offset, size) = self.entry(name)?;
        let io_err = |e| Error::io("reading image archive", &self.path, e);
        let mut file = tokio::fs::File::open(&self.path).await.map_err(io_err)?;
        file.seek(SeekFrom::Start(offset)).await.map_err(io_err)?;
        Ok((file.take(size), size))
    }

    /// Hashes the config and layers of image `index` as stored (streaming).
    pub fn describe(&self, index: usize) -> Result<ArchiveImageInfo> {
        let image = self.images.get(index).ok_or_else(|| Error::Parse {
            what: self.path.display().to_string(),
            message: format!("no image {index} in manifest.json"),
        })?;
        let io_err = |e| Error::io("reading image archive", &self.path, e);
        let mut file = std::fs::File::open(&self.path).map_err(io_err)?;
        let mut blob = |name: &str| -> Result<ArchiveBlob> {
            let (offset, size) = self.entry(name)?;
            file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
            let mut hasher = Hasher::default();
            let mut prefix = Vec::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut rest = (&mut file).take(size);
            loop {
                let n = rest.read(&mut buf).map_err(io_err)?;
                if n == 0 {
                    break;
                }
                if prefix.len() < 4 {
                    prefix.extend_from_slice(&buf[..n.min(4 - prefix.len())]);
                }
                hasher.update(&buf[..n]);
            }
            Ok(ArchiveBlob {
                entry: name.to_owned(),
                digest: hasher.finish().into_string(),
                size,
                compression: Compression::sniff(&prefix),
            })
        };
        let config = blob(&image.config)?;
        let layers = image
            .layers
            .iter()
            .map(|l| blob(l))
            .collect::<Result<_>>()?;
        Ok(ArchiveImageInfo { config, layers })
    }
}

#[cfg(test)]
mod tests;
