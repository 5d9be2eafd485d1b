//! Telling manifests from indexes, and parsing both into oci-spec types.
//!
//! Docker v2 manifests and manifest lists have the same JSON shape as their
//! OCI counterparts, so one pair of types serves both. The media type comes
//! from the registry's Content-Type when it is one we know, else from the
//! document's own `mediaType`, else from its shape (registry-image treats an
//! unknown type as an image manifest; we also recognise an index by its
//! `manifests` array).

use oci_spec::image::{ImageIndex, ImageManifest};
use serde::Deserialize;

use super::{Error, Result};

pub use crate::oci::media_types::{
    DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1, OCI_CONFIG,
    OCI_INDEX, OCI_MANIFEST,
};

/// What a manifest document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An image manifest (OCI or Docker v2).
    Image,
    /// An index / manifest list.
    Index,
}

/// Whether `media_type` names an index.
pub fn is_index_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// Whether `media_type` names an image manifest.
pub fn is_image_type(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

#[derive(Deserialize)]
struct Shape {
    #[serde(default, rename = "schemaVersion")]
    schema_version: Option<u64>,
    #[serde(default, rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    layers: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

fn kind_of_type(media_type: &str) -> Option<Kind> {
    if is_index_type(media_type) {
        Some(Kind::Index)
    } else if is_image_type(media_type) {
        Some(Kind::Image)
    } else {
        None
    }
}

fn described(kind: Kind) -> &'static str {
    match kind {
        Kind::Index => "an index (it has `manifests`)",
        Kind::Image => "an image manifest (it has `config` or `layers`)",
    }
}

/// Whether a manifest is Docker schema 1 (by media type or
/// `schemaVersion`). Check it before the digest: a signed schema 1
/// manifest's digest covers its payload without the signatures.
pub fn is_schema1(media_type: Option<&str>, bytes: &[u8]) -> bool {
    media_type.is_some_and(|t| DOCKER_SCHEMA1.contains(&t))
        || serde_json::from_slice::<Shape>(bytes).is_ok_and(|s| {
            s.schema_version == Some(1)
                || s.media_type
                    .is_some_and(|t| DOCKER_SCHEMA1.contains(&t.as_str()))
        })
}

/// At most this many manifests (indexes and images, each digest counted
/// once) are read below one version: an index that references the same
/// nested index many times, or thousands of distinct ones, would otherwise
/// be walked for ever.
pub const MAX_MANIFESTS: usize = 1000;

/// The error for an index tree with more than [`MAX_MANIFESTS`] manifests.
pub fn too_many_manifests(top: &str) -> Error {
    Error::Unsupported {
        what: top.to_owned(),
        reason: format!(
            "it references more than {MAX_MANIFESTS} manifests (nested indexes included); refusing to walk it"
        ),
    }
}

/// The error for a schema 1 manifest named `what`.
pub fn schema1_error(what: &str) -> Error {
    Error::Unsupported {
        what: what.to_owned(),
        reason: "docker schema 1 manifests are not supported".into(),
    }
}

/// Classifies a manifest document; `what` names it in errors.
///
/// Its structure (`manifests`, or `config`/`layers`) decides where it shows
/// one: a document whose own `mediaType` contradicts its structure is
/// refused, and a registry Content-Type that contradicts it is overruled
/// with a warning. Otherwise the Content-Type, then the `mediaType`, then
/// registry-image's default (an image manifest) decide.
pub fn classify(what: &str, media_type: Option<&str>, bytes: &[u8]) -> Result<Kind> {
    let shape: Shape = serde_json::from_slice(bytes).map_err(|e| Error::Parse {
        what: format!("manifest {what}"),
        message: e.to_string(),
    })?;
    if is_schema1(media_type, bytes) {
        return Err(schema1_error(what));
    }
    let structure = if shape.manifests.is_some() {
        Some(Kind::Index)
    } else if shape.layers.is_some() || shape.config.is_some() {
        Some(Kind::Image)
    } else {
        None
    };
    let own = shape.media_type.as_deref();
    if let (Some(t), Some(s)) = (own, structure)
        && kind_of_type(t).is_some_and(|k| k != s)
    {
        return Err(Error::Unsupported {
            what: what.to_owned(),
            reason: format!(
                "its mediaType {t:?} contradicts its content, which is {}",
                described(s)
            ),
        });
    }
    if let (Some(t), Some(s)) = (media_type, structure)
        && kind_of_type(t).is_some_and(|k| k != s)
    {
        tracing::warn!(
            "the registry sent manifest {what} as {t:?}, but it is {}; reading it as such",
            described(s)
        );
        return Ok(s);
    }
    if let Some(kind) = [media_type, own]
        .into_iter()
        .flatten()
        .find_map(kind_of_type)
    {
        return Ok(kind);
    }
    if let Some(t) = media_type.filter(|t| !t.is_empty()) {
        tracing::warn!(
            "manifest {what} has unexpected media type {t:?}; treating it by its content"
        );
    }
    Ok(structure.unwrap_or(Kind::Image))
}

/// Parses an image manifest. serde_json's own message names the field and
/// the position (oci-spec's reader says only "serde failed").
pub fn parse_image(what: &str, bytes: &[u8]) -> Result<ImageManifest> {
    serde_json::from_slice(bytes).map_err(|e| Error::Parse {
        what: format!("image manifest {what}"),
        message: format!("not an OCI or Docker image manifest: {e}"),
    })
}

/// Whether `media_type` is the config of a container image.
pub fn is_image_config_type(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

/// Refuses image manifest `image` (named `what`) when its config is not an
/// image config: OCI artifacts (a Helm chart, an OCI 1.1 artifact with the
/// empty config) share the manifest's shape, and taking one for an image
/// unpacks a chart as a rootfs or writes a non-tar "layer".
pub fn require_image_config(what: &str, image: &ImageManifest) -> Result<()> {
    let config_media_type = image.config().media_type().to_string();
    if is_image_config_type(&config_media_type) {
        Ok(())
    } else {
        Err(Error::NotAnImage {
            what: format!("manifest {what}"),
            config_media_type,
        })
    }
}

/// BuildKit's cache config media type: the config of an `image-manifest=true`
/// cache manifest, or one entry of the index a plain registry cache export
/// writes (BuildKit names it `CacheConfigMediaTypeV0`).
const BUILDKIT_CACHE_CONFIG: &str = "application/vnd.buildkit.cacheconfig.v0";

/// What a tagged document is, as far as `check` needs to know without
/// reading further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tagged {
    /// An image manifest or an index: a version.
    Image,
    /// A BuildKit registry cache (in either form), or the cache mounts a put
    /// saved (`cache_mounts`).
    BuildCache,
    /// An image manifest whose config is not an image config (its media
    /// type).
    Artifact(String),
}

/// Tells images from BuildKit caches and artifacts by `bytes` alone; a
/// document that does not parse counts as an image (the get that follows
/// says what is wrong with it).
pub fn tagged(bytes: &[u8]) -> Tagged {
    #[derive(Deserialize)]
    struct Descriptor {
        #[serde(default, rename = "mediaType")]
        media_type: String,
    }
    #[derive(Deserialize)]
    struct Document {
        #[serde(default)]
        config: Option<Descriptor>,
        #[serde(default)]
        manifests: Option<Vec<Descriptor>>,
    }
    let Ok(doc) = serde_json::from_slice::<Document>(bytes) else {
        return Tagged::Image;
    };
    let cache = |d: &Descriptor| d.media_type == BUILDKIT_CACHE_CONFIG;
    let cache_mounts =
        |d: &Descriptor| d.media_type == crate::oci::media_types::CACHE_MOUNTS_CONFIG;
    match (doc.config, doc.manifests) {
        (_, Some(entries)) if entries.iter().any(cache) => Tagged::BuildCache,
        (Some(config), None) if cache(&config) || cache_mounts(&config) => Tagged::BuildCache,
        (Some(config), None) if !is_image_config_type(&config.media_type) => {
            Tagged::Artifact(config.media_type)
        }
        _ => Tagged::Image,
    }
}

/// Parses an index.
pub fn parse_index(what: &str, bytes: &[u8]) -> Result<ImageIndex> {
    serde_json::from_slice(bytes).map_err(|e| Error::Parse {
        what: format!("index {what}"),
        message: format!("not an OCI index or Docker manifest list: {e}"),
    })
}

/// The media type to record for a manifest of `kind` when the registry did
/// not give a usable one.
pub fn media_type_or_default(kind: Kind, media_type: Option<&str>, bytes: &[u8]) -> String {
    if let Some(t) = media_type.filter(|t| is_index_type(t) || is_image_type(t)) {
        return t.to_owned();
    }
    if let Ok(Shape {
        media_type: Some(t),
        ..
    }) = serde_json::from_slice::<Shape>(bytes)
        && (is_index_type(&t) || is_image_type(&t))
    {
        return t;
    }
    match kind {
        Kind::Index => OCI_INDEX.to_owned(),
        Kind::Image => OCI_MANIFEST.to_owned(),
    }
}

#[cfg(test)]
mod tests;
