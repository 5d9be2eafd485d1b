//! Where cosign keeps signatures: an OCI image manifest tagged
//! `sha256-<hex>.sig` in the image's repository, one layer per signature
//! (the payload as the blob, the base64 signature in an annotation). This
//! file is the manifest's model, without I/O: parse one, add a layer,
//! write it back with its config.

use serde_json::{Value, json};

use crate::oci::sha256_digest;

/// Media type of a signature layer (the payload blob).
pub const SIGNATURE_LAYER: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation that holds the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Media type of the signature manifest.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of its config.
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Layers read from a signature manifest: more are ignored (a signature
/// manifest with thousands of layers is not one we can check in a step).
pub const MAX_LAYERS: usize = 256;
/// Largest payload blob fetched: a simple-signing payload is a few hundred
/// bytes, with annotations a few kilobytes.
pub const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;

/// The tag of the signatures of `digest` (`sha256:<hex>`).
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// Whether `tag` is one cosign writes beside an image rather than an image:
/// `sha256-<hex>.sig` (signatures), `.att` (attestations), `.sbom`.
pub fn is_cosign_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let Some((hex, suffix)) = rest.rsplit_once('.') else {
        return false;
    };
    matches!(suffix, "sig" | "att" | "sbom")
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One signature layer: its payload blob and the base64 signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLayer {
    /// Digest of the payload blob.
    pub digest: String,
    /// Its size as the descriptor says.
    pub size: u64,
    /// The base64 signature annotation.
    pub signature: String,
}

/// A signature manifest: its layers as written (other signers' layers are
/// kept byte for byte, with whatever annotations they carry).
#[derive(Debug, Clone, Default)]
pub struct SignatureManifest {
    layers: Vec<Value>,
}

/// A blob of the manifest that must be in the registry before it.
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl SignatureManifest {
    /// Reads a manifest a registry holds under a signature tag.
    pub fn parse(bytes: &[u8]) -> Result<SignatureManifest, String> {
        let doc: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("the signature manifest is not JSON: {e}"))?;
        let layers = match doc.get("layers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(layers)) => layers.clone(),
            Some(_) => return Err("the signature manifest's layers are not a list".into()),
        };
        Ok(SignatureManifest { layers })
    }

    /// The signature layers (cosign's media type, with a signature
    /// annotation), at most [`MAX_LAYERS`].
    pub fn signatures(&self) -> Vec<SignatureLayer> {
        self.layers
            .iter()
            .take(MAX_LAYERS)
            .filter(|l| l["mediaType"] == SIGNATURE_LAYER)
            .filter_map(|l| {
                Some(SignatureLayer {
                    digest: l["digest"].as_str()?.to_owned(),
                    size: l["size"].as_u64()?,
                    signature: l["annotations"][SIGNATURE_ANNOTATION].as_str()?.to_owned(),
                })
            })
            .collect()
    }

    /// Adds a signature layer for `payload`; returns the payload blob.
    pub fn add(&mut self, payload: Vec<u8>, signature: String) -> Blob {
        let digest = sha256_digest(&payload).into_string();
        self.layers.push(json!({
            "mediaType": SIGNATURE_LAYER,
            "size": payload.len(),
            "digest": digest,
            "annotations": {SIGNATURE_ANNOTATION: signature},
        }));
        Blob {
            digest,
            bytes: payload,
        }
    }

    /// The config (ggcr's empty image with one history entry and diff ID
    /// per layer, as cosign's manifests have) and the manifest bytes.
    pub fn write(&self) -> (Blob, Vec<u8>) {
        let diff_ids: Vec<&Value> = self.layers.iter().map(|l| &l["digest"]).collect();
        let history: Vec<Value> = self
            .layers
            .iter()
            .map(|_| json!({"created": "0001-01-01T00:00:00Z"}))
            .collect();
        let config = json!({
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": history,
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        });
        let config = serde_json::to_vec(&config).expect("config serialises");
        let config_digest = sha256_digest(&config).into_string();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "size": config.len(), "digest": config_digest},
            "layers": self.layers,
        });
        (
            Blob {
                digest: config_digest,
                bytes: config,
            },
            serde_json::to_vec(&manifest).expect("manifest serialises"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_tags_and_their_kin() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", "ab".repeat(32)));
        for tag in [
            signature_tag(&d),
            format!("sha256-{}.att", "0".repeat(64)),
            "sha256-abc.sbom".into(),
        ] {
            assert!(is_cosign_tag(&tag), "{tag}");
        }
        for tag in [
            "sha256-.sig",
            "sha256-xyz.sig",
            "sha256-ab.sig2",
            "v1.sig",
            "sha256-ab",
            "latest",
        ] {
            assert!(!is_cosign_tag(tag), "{tag}");
        }
    }

    #[test]
    fn layers_of_others_are_kept_and_ours_appended() {
        let existing = json!({
            "schemaVersion": 2,
            "layers": [
                {"mediaType": SIGNATURE_LAYER, "size": 3, "digest": "sha256:00",
                 "annotations": {SIGNATURE_ANNOTATION: "c2ln", "dev.sigstore.cosign/bundle": "{}"}},
                {"mediaType": "text/plain", "size": 1, "digest": "sha256:11"},
            ]
        });
        let mut m = SignatureManifest::parse(existing.to_string().as_bytes()).unwrap();
        assert_eq!(m.signatures().len(), 1);
        let blob = m.add(b"payload".to_vec(), "bmV3".into());
        assert_eq!(blob.digest, sha256_digest(b"payload").into_string());
        let (config, bytes) = m.write();
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["layers"][0], existing["layers"][0]);
        assert_eq!(doc["layers"][1], existing["layers"][1]);
        assert_eq!(
            doc["layers"][2]["annotations"][SIGNATURE_ANNOTATION],
            "bmV3"
        );
        assert_eq!(doc["config"]["digest"], config.digest);
        assert_eq!(doc["mediaType"], MANIFEST);
        let cfg: Value = serde_json::from_slice(&config.bytes).unwrap();
        assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
        assert_eq!(m.signatures().len(), 2);
    }
}
