//! The helper image of the cache mount save and restore builds: one layer
//! holding a static busybox (the `busybox-static` package of the resource
//! image, found on PATH), served from the loopback registry. No registry
//! outside this container is needed, and nothing of the user's image runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;

use crate::oci::media_types::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST};
use crate::oci::sha256_digest;
use crate::store::loopback::ImageRegistry;
use crate::store::{ImageStore, MemoryImage, ServedManifest};

/// The repository name the helper is served under.
const NAME: &str = "cache-mount-helper";

/// A static busybox: `busybox` on PATH, else `/bin/busybox`.
fn busybox() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("busybox"))
        .chain([PathBuf::from("/bin/busybox")])
        .find(|p| p.is_file())
}

/// Go's name for this machine's architecture.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The served helper: keep the registry alive while builds use the
/// reference.
pub struct Helper {
    /// `127.0.0.1:PORT/cache-mount-helper:latest`.
    pub reference: String,
    _registry: ImageRegistry,
}

/// Starts serving the helper, or says why it cannot.
pub async fn serve() -> Result<Helper, String> {
    let binary = busybox().ok_or("no busybox on PATH (the busybox-static package)")?;
    let bytes = std::fs::read(&binary).map_err(|e| format!("reading {}: {e}", binary.display()))?;
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "bin/busybox", bytes.as_slice())
        .map_err(|e| format!("writing the helper layer: {e}"))?;
    let layer = Bytes::from(
        tar.into_inner()
            .map_err(|e| format!("writing the helper layer: {e}"))?,
    );
    let config = Bytes::from(
        json!({
            "architecture": go_arch(),
            "os": "linux",
            "config": {"Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer).as_str()]},
        })
        .to_string(),
    );
    let manifest = Bytes::from(
        json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(&config).as_str(), "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256_digest(&layer).as_str(), "size": layer.len()}],
        })
        .to_string(),
    );
    let image = MemoryImage {
        top: ServedManifest {
            media_type: OCI_MANIFEST.into(),
            digest: sha256_digest(&manifest).into_string(),
            bytes: manifest,
        },
        children: Vec::new(),
        blobs: BTreeMap::from([
            (sha256_digest(&config).into_string(), config),
            (sha256_digest(&layer).into_string(), layer),
        ]),
    };
    let images: BTreeMap<String, Arc<dyn ImageStore>> =
        BTreeMap::from([(NAME.to_string(), Arc::new(image) as Arc<dyn ImageStore>)]);
    let registry = ImageRegistry::start(images)
        .await
        .map_err(|e| format!("starting the loopback registry: {e}"))?;
    Ok(Helper {
        reference: format!("{}/{NAME}:latest", registry.host()),
        _registry: registry,
    })
}
