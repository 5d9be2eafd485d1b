//! `params.images`: images of one platform each (tarballs or OCI layouts,
//! built on different workers) merged into one index, pushed as one
//! multi-platform image.
//!
//! Each input is read as `params.image` reads it ([`super::prebuilt`]).
//! Its top manifest is either one image, or an index of one image plus the
//! attestation manifests BuildKit writes beside it (provenance, SBOM):
//! those are kept, still pointing at their image by digest. The platform of
//! each entry is read from the image's config, not from the layout's index
//! (umoci and skopeo leave it out). Two inputs of one platform are an error
//! naming both paths. The new index's digest is the version.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Error, ImageStore, OpenBlob, Result, ServedManifest};
use crate::oci::attestation::is_attestation_json;
use crate::oci::media_types::OCI_INDEX;
use crate::oci::sha256_digest;

/// The merged index over its input stores.
pub struct Merged {
    top: ServedManifest,
    inputs: Vec<Arc<dyn ImageStore>>,
}

impl ImageStore for Merged {
    fn top(&self) -> &ServedManifest {
        &self.top
    }
    fn manifest(&self, digest: &str) -> Option<&ServedManifest> {
        if digest == self.top.digest {
            return Some(&self.top);
        }
        self.inputs.iter().find_map(|s| s.manifest(digest))
    }
    fn blob_size(&self, digest: &str) -> Option<u64> {
        self.inputs.iter().find_map(|s| s.blob_size(digest))
    }
    fn open_blob(&self, digest: &str) -> OpenBlob {
        match self.inputs.iter().find(|s| s.blob_size(digest).is_some()) {
            Some(s) => s.open_blob(digest),
            None => Box::pin(async { Err(std::io::Error::from(std::io::ErrorKind::NotFound)) }),
        }
    }
}

/// Reads every input and builds the index: one entry per image, in the
/// order of `paths`, each followed by its attestations.
pub async fn merge(paths: &[PathBuf]) -> Result<Merged> {
    let mut inputs = Vec::new();
    let mut entries: Vec<Value> = Vec::new();
    let mut seen: Vec<(String, &Path)> = Vec::new();
    for path in paths {
        let store = super::prebuilt::for_push(path, &Default::default()).await?;
        let (image, attestations) = image_of(store.as_ref(), path)?;
        let platform = platform_of(store.as_ref(), &image, path).await?;
        let text = platform_text(&platform);
        if let Some((_, first)) = seen.iter().find(|(p, _)| *p == text) {
            return Err(Error::Image {
                path: path.clone(),
                problem: format!(
                    "its platform {text} is also the platform of {}: params.images takes one image per platform",
                    first.display()
                ),
            });
        }
        seen.push((text, path));
        let mut entry = json!({
            "mediaType": image.media_type,
            "digest": image.digest,
            "size": image.bytes.len(),
        });
        entry["platform"] = platform;
        entries.push(entry);
        entries.extend(attestations);
        inputs.push(store);
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": entries,
    });
    let bytes = Bytes::from(serde_json::to_vec(&index).expect("an index serialises"));
    Ok(Merged {
        top: ServedManifest {
            media_type: OCI_INDEX.into(),
            digest: sha256_digest(&bytes).into_string(),
            bytes,
        },
        inputs,
    })
}

/// The one image of an input, and the descriptors of its attestation
/// manifests (as the input's index has them).
fn image_of(store: &dyn ImageStore, path: &Path) -> Result<(ServedManifest, Vec<Value>)> {
    let top = store.top();
    let doc = parse(top)?;
    let Some(children) = doc.get("manifests").and_then(Value::as_array) else {
        return Ok((top.clone(), Vec::new()));
    };
    let (attestations, images): (Vec<&Value>, Vec<&Value>) =
        children.iter().partition(|c| is_attestation_json(c));
    let [image] = images.as_slice() else {
        return Err(Error::Image {
            path: path.to_path_buf(),
            problem: format!(
                "it holds {} images; params.images takes one platform per image (a multi-platform \
                 layout goes to params.image)",
                images.len()
            ),
        });
    };
    let digest = image["digest"].as_str().unwrap_or_default();
    let image = store
        .manifest(digest)
        .cloned()
        .ok_or_else(|| Error::BadManifest {
            digest: top.digest.clone(),
            problem: format!("child manifest {digest} is not in the image"),
        })?;
    Ok((image, attestations.into_iter().cloned().collect()))
}

/// `{os, architecture[, variant]}` from the image's config.
async fn platform_of(store: &dyn ImageStore, image: &ServedManifest, path: &Path) -> Result<Value> {
    let bad = |problem: String| Error::Image {
        path: path.to_path_buf(),
        problem,
    };
    let doc = parse(image)?;
    let digest = doc["config"]["digest"]
        .as_str()
        .ok_or_else(|| bad("its manifest names no config".into()))?;
    let mut reader = store
        .open_blob(digest)
        .await
        .map_err(|e| bad(format!("reading its config {digest}: {e}")))?;
    let mut buf = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut buf)
        .await
        .map_err(|e| bad(format!("reading its config {digest}: {e}")))?;
    let config: Value = serde_json::from_slice(&buf)
        .map_err(|e| bad(format!("its config {digest} is not JSON: {e}")))?;
    let field = |k: &str| config[k].as_str().filter(|v| !v.is_empty());
    let (Some(os), Some(arch)) = (field("os"), field("architecture")) else {
        return Err(bad("its config names no os and architecture".into()));
    };
    let mut platform = json!({"os": os, "architecture": arch});
    if let Some(v) = field("variant") {
        platform["variant"] = json!(v);
    }
    Ok(platform)
}

fn platform_text(p: &Value) -> String {
    let mut text = format!(
        "{}/{}",
        p["os"].as_str().unwrap_or_default(),
        p["architecture"].as_str().unwrap_or_default()
    );
    if let Some(v) = p["variant"].as_str() {
        text.push('/');
        text.push_str(v);
    }
    text
}

fn parse(m: &ServedManifest) -> Result<Value> {
    serde_json::from_slice(&m.bytes).map_err(|e| Error::BadManifest {
        digest: m.digest.clone(),
        problem: e.to_string(),
    })
}
