//! Test helpers: OCI layouts built in memory-free steps, served as a
//! [`BlobSource`] through [`OciLayoutDir`], and a check for the external
//! tools some tests compare against.

use std::io::Write;
use std::path::Path;

use crate::image::layout::LayoutWriter;
use crate::image::manifest;
use crate::oci::sha256_digest;

/// A layer blob with its descriptor media type.
pub struct TestLayer {
    pub blob: Vec<u8>,
    pub media_type: &'static str,
    /// sha256 of the uncompressed tar (the config's diff_id).
    pub diff_id: String,
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

impl TestLayer {
    pub fn gzip(tar: &[u8]) -> Self {
        TestLayer {
            blob: gzip(tar),
            diff_id: sha256_digest(tar).into_string(),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }
    pub fn zstd(tar: &[u8]) -> Self {
        TestLayer {
            blob: zstd::encode_all(tar, 3).unwrap(),
            diff_id: sha256_digest(tar).into_string(),
            // Mislabelled on purpose: content sniffing must win.
            media_type: manifest::DOCKER_LAYER_GZIP,
        }
    }
    pub fn plain(tar: &[u8]) -> Self {
        TestLayer {
            blob: tar.to_vec(),
            diff_id: sha256_digest(tar).into_string(),
            media_type: "application/vnd.oci.image.layer.v1.tar",
        }
    }
}

/// Simple tar with regular files (name, content).
pub fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(1_500_000_000);
        h.set_size(content.len() as u64);
        b.append_data(&mut h, name, content.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// An image written into `w`; returns (manifest digest, manifest bytes).
pub async fn add_image(
    w: &LayoutWriter,
    layers: &[TestLayer],
    config_extra: serde_json::Value,
    arch: &str,
) -> (String, Vec<u8>) {
    let mut config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
    });
    if let (Some(c), Some(extra)) = (config.as_object_mut(), config_extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    let config = serde_json::to_vec(&config).unwrap();
    let config_d = sha256_digest(&config);
    w.write_blob_bytes(&config, &config_d).await.unwrap();
    let mut descs = Vec::new();
    for l in layers {
        let d = sha256_digest(&l.blob);
        w.write_blob_bytes(&l.blob, &d).await.unwrap();
        descs.push(
            serde_json::json!({"mediaType": l.media_type, "digest": d, "size": l.blob.len()}),
        );
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config.len()},
        "layers": descs,
        "annotations": {"org.example.note": "hello", "other": "x"},
    }))
    .unwrap();
    let d = sha256_digest(&manifest);
    w.write_blob_bytes(&manifest, &d).await.unwrap();
    (d.into_string(), manifest)
}

/// Writes an index over `children` (digest, bytes, arch) as a blob; returns its digest and bytes.
pub async fn add_index(
    w: &LayoutWriter,
    children: &[(String, Vec<u8>, &str)],
) -> (String, Vec<u8>) {
    let manifests: Vec<_> = children
        .iter()
        .map(|(d, b, arch)| {
            serde_json::json!({
                "mediaType": manifest::OCI_MANIFEST, "digest": d, "size": b.len(),
                "platform": {"os": "linux", "architecture": arch},
            })
        })
        .collect();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap();
    let d = sha256_digest(&index);
    w.write_blob_bytes(&index, &d).await.unwrap();
    (d.into_string(), index)
}

/// Runs a command, panicking with its output when it fails; stdout as text.
pub fn run(cmd: &mut std::process::Command) -> String {
    String::from_utf8_lossy(&test_support::run_tool(cmd)).into_owned()
}

/// Whether `path` exists (not following symlinks).
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}
