use super::*;
use serde_json::json;

#[test]
fn buildkit_attestation_entries_are_recognised() {
    let att = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:aa", "size": 1,
        "annotations": {
            "vnd.docker.reference.digest": "sha256:bb",
            "vnd.docker.reference.type": "attestation-manifest"
        },
        "platform": {"architecture": "unknown", "os": "unknown"}
    });
    assert!(is_attestation_json(&att));
    let unknown_only =
        json!({"digest": "sha256:aa", "platform": {"architecture": "unknown", "os": "unknown"}});
    assert!(is_attestation_json(&unknown_only));
    let marker_only = json!({"digest": "sha256:aa", "annotations": {"vnd.docker.reference.type": "attestation-manifest"}});
    assert!(is_attestation_json(&marker_only));
}

#[test]
fn images_are_not_attestations() {
    let image = json!({
        "digest": "sha256:bb", "size": 1,
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        "platform": {"architecture": "amd64", "os": "linux"}
    });
    assert!(!is_attestation_json(&image));
    // No platform at all is linux/amd64 by convention, not an attestation.
    assert!(!is_attestation_json(&json!({"digest": "sha256:bb"})));
}

#[test]
fn predicate_types_come_from_the_layers() {
    let m = json!({"layers": [
        {"annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}},
        {"annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}},
        {"annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}},
        {"digest": "sha256:cc"}
    ]});
    assert_eq!(
        predicate_types(&m),
        [
            "https://slsa.dev/provenance/v0.2",
            "https://spdx.dev/Document"
        ]
    );
}
