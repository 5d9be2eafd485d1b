//! `params.layers`: append layers built from the put's inputs to a base
//! image and push the result, with no daemon, no privileges, and without
//! unpacking the base.
//!
//! 1. Write each layer ([`crate::store::layer`]): deterministic tar + gzip, hashed
//!    while written. A bad input fails here, before any registry traffic.
//! 2. Read the base's manifest (or index and children) and configs: from
//!    its registry, or from a local `image.tar` / OCI layout
//!    ([`crate::store::prebuilt`]). Its layers are never downloaded here.
//! 3. For each platform image, write the new config and manifest
//!    ([`crate::store::edit`]); for a multi-platform base, the new index.
//! 4. Push: base layers on the same registry are mounted from the base's
//!    repository (one request each, no bytes), others are streamed from the
//!    base (registry or disk) to the target; then our layers and configs.
//!    Manifests are put by digest by [`push::push_store`], the walk every
//!    put uses; the tags move last, in `commands::put`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;

use super::{Error, Result as PutResult};
use crate::config::Source;
use crate::config::put::{LayersBase, LayersParams};
use crate::image::manifest;
use crate::oci::{Digest, media_types, sha256_digest};
use crate::put::Result;
use crate::registry::{self, Client, Repository};
use crate::store::edit;
use crate::store::layer::{BuiltLayer, write_layer};
use crate::store::push::{self, Pushed};
use crate::store::{BlobReader, ImageStore, OpenBlob, ServedManifest};

/// What a layers put pushed.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The pushed manifest or index.
    pub pushed: Pushed,
    /// The base's manifest or index digest, for the metadata.
    pub base_digest: String,
}

/// Where the base's blobs are read from.
#[derive(Clone)]
enum BaseBlobs {
    /// A registry repository; `mount_from` is its path when it is on the
    /// target's registry (blobs can then be mounted).
    Remote {
        client: Arc<Client>,
        mount_from: Option<String>,
    },
    /// An image on disk.
    Local(Arc<dyn ImageStore>),
}

/// The base, as far as we read it: manifests and configs, never layers.
struct Base {
    /// For messages: the reference or path given.
    name: String,
    top: ServedManifest,
    blobs: BaseBlobs,
}

fn base_error(name: &str, problem: impl Into<String>) -> Error {
    Error::Image {
        path: PathBuf::from(name),
        problem: problem.into(),
    }
}

fn parse(name: &str, m: &ServedManifest) -> Result<Value> {
    serde_json::from_slice(&m.bytes)
        .map_err(|e| base_error(name, format!("manifest {}: {e}", m.digest)))
}

impl Base {
    async fn open(source: &Source, target: &Client, params: &LayersParams) -> Result<Base> {
        match &params.base {
            LayersBase::Reference {
                repository,
                reference,
            } => {
                let repo = Repository::parse(repository)
                    .map_err(|e| base_error(repository, format!("params.layers.base: {e}")))?;
                let client = Arc::new(super::pull_client(source, &repo)?);
                let sep = if reference.starts_with("sha256:") {
                    '@'
                } else {
                    ':'
                };
                let name = format!("{repository}{sep}{reference}");
                let m = registry::retry_transient(&format!("fetching base {name}"), || {
                    client.fetch_manifest(reference)
                })
                .await
                .map_err(|e| Error::from(e).context(format!("reading the base image {name}")))?;
                let same_registry = repo.registry == target.repository().registry;
                let mount_from = (same_registry && repo.path != target.repository().path)
                    .then(|| repo.path.clone());
                Ok(Base {
                    name,
                    top: ServedManifest {
                        media_type: m.media_type,
                        digest: m.digest.into_string(),
                        bytes: m.bytes,
                    },
                    blobs: BaseBlobs::Remote { client, mount_from },
                })
            }
            LayersBase::Local(path) => {
                let store = crate::store::prebuilt::for_push(path, &BTreeMap::new()).await?;
                Ok(Base {
                    name: path.display().to_string(),
                    top: store.top().clone(),
                    blobs: BaseBlobs::Local(store),
                })
            }
        }
    }

    async fn manifest(&self, digest: &str) -> Result<ServedManifest> {
        match &self.blobs {
            BaseBlobs::Remote { client, .. } => {
                let m = registry::retry_transient(&format!("fetching manifest {digest}"), || {
                    client.fetch_manifest(digest)
                })
                .await?;
                Ok(ServedManifest {
                    media_type: m.media_type,
                    digest: m.digest.into_string(),
                    bytes: m.bytes,
                })
            }
            BaseBlobs::Local(store) => store.manifest(digest).cloned().ok_or_else(|| {
                base_error(
                    &self.name,
                    format!("child manifest {digest} is not in the image"),
                )
            }),
        }
    }

    async fn config(&self, digest: &str) -> Result<Value> {
        let parsed = Digest::parse(digest).map_err(registry::Error::from)?;
        let bytes = match &self.blobs {
            BaseBlobs::Remote { client, .. } => {
                registry::retry_transient(&format!("fetching config {digest}"), || {
                    client.fetch_blob(&parsed)
                })
                .await?
            }
            BaseBlobs::Local(store) => {
                let mut reader =
                    store
                        .open_blob(digest)
                        .await
                        .map_err(|source| Error::ReadBlob {
                            digest: digest.into(),
                            source,
                        })?;
                let mut buf = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut buf)
                    .await
                    .map_err(|source| Error::ReadBlob {
                        digest: digest.into(),
                        source,
                    })?;
                Bytes::from(buf)
            }
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| base_error(&self.name, format!("config {digest}: {e}")))
    }
}

/// `os/arch[/variant]` of an index entry, `None` for attestations and
/// other non-image entries.
fn entry_platform(entry: &Value) -> Option<String> {
    if crate::oci::attestation::is_attestation_json(entry) {
        return None;
    }
    let p = entry.get("platform")?;
    let os = p.get("os")?.as_str()?;
    let arch = p.get("architecture")?.as_str()?;
    Some(match p.get("variant").and_then(Value::as_str) {
        Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
        _ => format!("{os}/{arch}"),
    })
}

fn is_index(m: &ServedManifest, doc: &Value) -> bool {
    m.media_type == media_types::OCI_INDEX
        || m.media_type == media_types::DOCKER_LIST
        || doc.get("manifests").is_some()
}

/// The new image: manifests, configs and our layers; base layers are
/// read from the base when the registry does not have them yet.
struct Appending {
    top: ServedManifest,
    children: Vec<ServedManifest>,
    configs: BTreeMap<String, Bytes>,
    layers: BTreeMap<String, BuiltLayer>,
    base_layers: BTreeMap<String, u64>,
    base: BaseBlobs,
}

impl ImageStore for Appending {
    fn top(&self) -> &ServedManifest {
        &self.top
    }
    fn manifest(&self, digest: &str) -> Option<&ServedManifest> {
        std::iter::once(&self.top)
            .chain(&self.children)
            .find(|m| m.digest == digest)
    }
    fn blob_size(&self, digest: &str) -> Option<u64> {
        self.configs
            .get(digest)
            .map(|b| b.len() as u64)
            .or_else(|| self.layers.get(digest).map(|l| l.size))
            .or_else(|| self.base_layers.get(digest).copied())
    }
    fn open_blob(&self, digest: &str) -> OpenBlob {
        if let Some(bytes) = self.configs.get(digest).cloned() {
            return Box::pin(
                async move { Ok(Box::new(std::io::Cursor::new(bytes)) as BlobReader) },
            );
        }
        if let Some(layer) = self.layers.get(digest) {
            let path = layer.path.clone();
            return Box::pin(async move {
                Ok(Box::new(tokio::fs::File::open(path).await?) as BlobReader)
            });
        }
        let size = self.base_layers.get(digest).copied();
        let digest = digest.to_string();
        let base = self.base.clone();
        Box::pin(async move {
            let size = size.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
            match base {
                BaseBlobs::Local(store) => store.open_blob(&digest).await,
                BaseBlobs::Remote { client, .. } => {
                    let d = Digest::parse(&digest).map_err(std::io::Error::other)?;
                    let reader = client
                        .blob_reader(&d, size)
                        .await
                        .map_err(std::io::Error::other)?;
                    Ok(Box::new(reader) as BlobReader)
                }
            }
        })
    }
}

/// Builds the layers, appends them to the base and pushes the result to
/// `target` by digest (the tags move later, in `commands::put`).
pub async fn append_and_push(
    source: &Source,
    params: &LayersParams,
    target: &Client,
) -> Result<Appended> {
    let scratch = tempfile::tempdir().map_err(|source| Error::Io {
        what: "creating a temp dir for the new layers".into(),
        source,
    })?;
    let started = std::time::Instant::now();
    // The layers are written on a blocking thread while the base's manifest
    // and config come from the registry: neither waits for the other.
    let building = spawn_layer_writes(params, scratch.path());
    let (built, base) = tokio::join!(building, Base::open(source, target, params));
    let built = built.map_err(|e| Error::Io {
        what: "building the layers".into(),
        source: std::io::Error::other(e),
    })??;
    log_built(&built, started);

    let base = base?;
    let top_doc = parse(&base.name, &base.top)?;
    let index = is_index(&base.top, &top_doc);
    let images = if index {
        index_images(&base, &top_doc, params.platform.as_deref()).await?
    } else {
        vec![base.top.clone()]
    };
    let mut edited = Edited::append(&base, &images, index, params, &built).await?;
    let top = edited.take_top(&base.top, &top_doc, index && params.platform.is_none());

    if let BaseBlobs::Remote {
        client: _,
        mount_from: Some(from),
    } = &base.blobs
    {
        mount_base_layers(target, from, &edited.base_layers).await?;
    }
    let store = edited.into_store(top, built, base.blobs.clone());
    let pushed = push::push_store(target, Arc::new(store)).await?;
    drop(scratch);
    Ok(Appended {
        pushed,
        base_digest: base.top.digest.clone(),
    })
}

/// Starts writing `params.layers.add` into `dir` on a blocking thread (tar
/// and gzip are CPU and disk work), each layer paired with its destination
/// for the logs and the history entries.
fn spawn_layer_writes(
    params: &LayersParams,
    dir: &Path,
) -> tokio::task::JoinHandle<PutResult<Vec<(BuiltLayer, String)>>> {
    let specs = params.add.clone();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> PutResult<Vec<(BuiltLayer, String)>> {
        specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let layer =
                    write_layer(spec, &dir.join(format!("layer-{i}.tar.gz"))).map_err(|e| {
                        Error::Io {
                            what: format!("params.layers.add[{i}]: building its layer"),
                            source: std::io::Error::other(e),
                        }
                    })?;
                Ok((layer, format!("/{}", spec.dest)))
            })
            .collect()
    })
}

/// One line per layer and the total time, so a slow or surprisingly large
/// layer shows in the build log before the push starts.
fn log_built(built: &[(BuiltLayer, String)], started: std::time::Instant) {
    for (layer, dest) in built {
        tracing::info!(
            "layer {dest}: {} ({} bytes gzipped)",
            layer.digest,
            layer.size
        );
    }
    tracing::info!(
        "built {} layer(s) in {:.2}s",
        built.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The platform images of an index base to append to: every image (or only
/// `platform`'s), attestations skipped. An index nested in the index and
/// an empty selection are refused, naming what the base has, rather than
/// pushing an image with nothing appended.
async fn index_images(
    base: &Base,
    top_doc: &Value,
    platform: Option<&str>,
) -> Result<Vec<ServedManifest>> {
    let mut images: Vec<ServedManifest> = Vec::new();
    let mut available = Vec::new();
    for entry in top_doc["manifests"].as_array().into_iter().flatten() {
        let Some(entry_platform) = entry_platform(entry) else {
            continue;
        };
        let Some(digest) = entry["digest"].as_str() else {
            continue;
        };
        available.push(entry_platform.clone());
        if platform.is_some_and(|p| p != entry_platform) {
            continue;
        }
        if images.iter().any(|m| m.digest == digest) {
            continue;
        }
        if images.len() >= crate::image::manifest::MAX_MANIFESTS {
            return Err(crate::image::manifest::too_many_manifests(&base.top.digest).into());
        }
        let child = base.manifest(digest).await?;
        if is_index(&child, &parse(&base.name, &child)?) {
            return Err(base_error(
                &base.name,
                format!("{digest} is an index inside an index; name one of its images as the base"),
            ));
        }
        images.push(child);
    }
    if images.is_empty() {
        return Err(base_error(
            &base.name,
            match platform {
                Some(p) => format!(
                    "has no image for params.layers.platform {p:?}; it has: {}",
                    available.join(", ")
                ),
                None => "its index lists no image with a platform".into(),
            },
        ));
    }
    Ok(images)
}

/// Base manifest `m` (parsed as `doc`) pointing at the new config, with
/// `layers` appended. It keeps the base's media type, so a Docker base stays
/// Docker; one given without a type is served as OCI.
fn new_manifest(
    m: &ServedManifest,
    doc: &Value,
    config_digest: &str,
    config_size: u64,
    layers: &[BuiltLayer],
) -> ServedManifest {
    let manifest = edit::manifest(doc, config_digest, config_size, layers);
    let bytes = Bytes::from(serde_json::to_vec(&manifest).expect("JSON values serialise"));
    ServedManifest {
        media_type: if m.media_type.is_empty() {
            media_types::OCI_MANIFEST.into()
        } else {
            m.media_type.clone()
        },
        digest: sha256_digest(&bytes).into_string(),
        bytes,
    }
}

/// The base's images with our layers appended: what the new image needs
/// besides our layers, gathered in one pass over the base's images.
#[derive(Default)]
struct Edited {
    /// The new configs by digest.
    configs: BTreeMap<String, Bytes>,
    /// The new image manifests, in the base's order.
    children: Vec<ServedManifest>,
    /// (base manifest digest, new digest, new size), for the new index.
    replaced: Vec<(String, String, u64)>,
    /// The base's layers (digest → size), mounted or copied to the target.
    base_layers: BTreeMap<String, u64>,
}

impl Edited {
    /// Writes each image's new config and manifest. `index` says the base
    /// is an index: a platform asked of a single-image base is only
    /// warned about, since that image is what the user named.
    async fn append(
        base: &Base,
        images: &[ServedManifest],
        index: bool,
        params: &LayersParams,
        built: &[(BuiltLayer, String)],
    ) -> Result<Edited> {
        let created = edit::rfc3339(params.source_date_epoch);
        let new_layers: Vec<BuiltLayer> = built.iter().map(|(l, _)| l.clone()).collect();
        let mut edited = Edited::default();
        for m in images {
            let doc = parse(&base.name, m)?;
            let Some(config_digest) = doc["config"]["digest"].as_str() else {
                return Err(base_error(
                    &base.name,
                    format!("manifest {} has no config", m.digest),
                ));
            };
            let config_type = doc["config"]["mediaType"].as_str().unwrap_or_default();
            if !manifest::is_image_config_type(config_type) {
                return Err(base_error(
                    &base.name,
                    format!(
                        "manifest {} is not a container image: its config is {config_type:?}, not \
                         an OCI or Docker image config, so layers cannot be appended to it",
                        m.digest
                    ),
                ));
            }
            for l in doc["layers"].as_array().into_iter().flatten() {
                if let (Some(d), Some(size)) = (l["digest"].as_str(), l["size"].as_u64()) {
                    edited.base_layers.insert(d.to_string(), size);
                }
            }
            let base_config = base.config(config_digest).await?;
            if let (false, Some(want)) = (index, &params.platform)
                && let Some(got) = platform_of(&base_config)
                && got != *want
            {
                tracing::warn!(
                    "params.layers.platform is {want}, but the base {} is a single image for {got}; appending to it",
                    base.name
                );
            }
            let config = edit::config(&base_config, built, &params.config, &created);
            let config_bytes =
                Bytes::from(serde_json::to_vec(&config).expect("JSON values serialise"));
            let config_digest = sha256_digest(&config_bytes).into_string();
            let new = new_manifest(
                m,
                &doc,
                &config_digest,
                config_bytes.len() as u64,
                &new_layers,
            );
            edited.configs.insert(config_digest, config_bytes);
            edited
                .replaced
                .push((m.digest.clone(), new.digest.clone(), new.bytes.len() as u64));
            edited.children.push(new);
        }
        Ok(edited)
    }

    /// The manifest the tags will name: a new index over the new images
    /// when the whole index was appended to (`whole_index`), else the one
    /// new image, which then leaves `children`.
    fn take_top(
        &mut self,
        base_top: &ServedManifest,
        top_doc: &Value,
        whole_index: bool,
    ) -> ServedManifest {
        if whole_index {
            let bytes = Bytes::from(
                serde_json::to_vec(&edit::index(top_doc, &self.replaced))
                    .expect("JSON values serialise"),
            );
            ServedManifest {
                media_type: base_top.media_type.clone(),
                digest: sha256_digest(&bytes).into_string(),
                bytes,
            }
        } else {
            self.children.remove(0)
        }
    }

    /// The new image as a store [`push::push_store`] can walk: base layers
    /// are read from `base` only for blobs the target still lacks.
    fn into_store(
        self,
        top: ServedManifest,
        built: Vec<(BuiltLayer, String)>,
        base: BaseBlobs,
    ) -> Appending {
        Appending {
            top,
            children: self.children,
            configs: self.configs,
            layers: built
                .into_iter()
                .map(|(l, _)| (l.digest.clone(), l))
                .collect(),
            base_layers: self.base_layers,
            base,
        }
    }
}

fn platform_of(config: &Value) -> Option<String> {
    let os = config.get("os")?.as_str()?;
    let arch = config.get("architecture")?.as_str()?;
    Some(match config.get("variant").and_then(Value::as_str) {
        Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
        _ => format!("{os}/{arch}"),
    })
}

/// Blobs mounted at once.
const PARALLEL_MOUNTS: usize = 4;

/// Mounts each base layer the target lacks from `from` on the same
/// registry. A declined or failed mount is only logged: the push that
/// follows copies that blob.
async fn mount_base_layers(
    target: &Client,
    from: &str,
    layers: &BTreeMap<String, u64>,
) -> Result<()> {
    futures::stream::iter(layers.keys().map(|digest| async move {
        let d = Digest::parse(digest).map_err(registry::Error::from)?;
        if registry::retry_transient(&format!("checking blob {digest}"), || {
            target.blob_exists(&d)
        })
        .await?
        {
            return Ok::<(), Error>(());
        }
        match registry::retry_transient(&format!("mounting blob {digest}"), || {
            target.mount_blob(&d, from)
        })
        .await
        {
            Ok(true) => tracing::info!("{digest}: mounted from {from}"),
            Ok(false) => {
                tracing::info!("{digest}: the registry declined to mount it from {from}; copying")
            }
            Err(e) => tracing::warn!(
                "{digest}: mounting from {from} failed ({}); copying",
                crate::oci::error_chain(&e)
            ),
        }
        Ok(())
    }))
    .buffer_unordered(PARALLEL_MOUNTS)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}
