//! The simple-signing payload cosign signs: which image (its manifest
//! digest) in which repository, plus optional annotations (`cosign sign
//! -a`). The signature covers these exact bytes, so a verifier parses only
//! after the signature checked out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::registry::Repository;

/// `critical.type` of every cosign image signature.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// The payload bytes for `digest` in `repository` (written as cosign
/// writes it: the repository without tag or digest). `annotations` go into
/// `optional` (`null` when there are none, as cosign writes it).
pub fn build(
    repository: &Repository,
    digest: &str,
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let payload = Payload {
        critical: Critical {
            identity: Identity {
                docker_reference: repository.qualified(),
            },
            image: Image {
                docker_manifest_digest: digest.to_owned(),
            },
            kind: SIGNATURE_TYPE.to_owned(),
        },
        optional: (!annotations.is_empty()).then(|| annotations.clone()),
    };
    serde_json::to_vec(&payload).expect("a payload serialises")
}

/// What a verified payload says, when it is about `digest` in `repository`;
/// else why not.
pub fn check(bytes: &[u8], repository: &Repository, digest: &str) -> Result<(), String> {
    let payload: Payload = serde_json::from_slice(bytes)
        .map_err(|e| format!("the signed payload is not simple-signing JSON: {e}"))?;
    let critical = payload.critical;
    if critical.kind != SIGNATURE_TYPE {
        return Err(format!("the signed payload's type is {:?}", critical.kind));
    }
    if critical.image.docker_manifest_digest != digest {
        return Err(format!(
            "the signature is over {}, not this digest",
            critical.image.docker_manifest_digest
        ));
    }
    let named = &critical.identity.docker_reference;
    if !same_repository(named, repository) {
        return Err(format!("the signature names repository {named:?}"));
    }
    Ok(())
}

/// Whether a payload's `docker-reference` names `repository`: cosign writes
/// the repository alone, the `sigstore` crate with the tag it signed
/// through (`host/repo:v1`), others with a digest; the repository part is
/// what counts, as cosign's verifier compares it.
pub fn same_repository(reference: &str, repository: &Repository) -> bool {
    let without_digest = reference.split('@').next().unwrap_or_default();
    let name = match without_digest.rfind(':') {
        Some(colon) if colon > without_digest.rfind('/').unwrap_or(0) => &without_digest[..colon],
        _ => without_digest,
    };
    Repository::parse(name)
        .is_ok_and(|r| r.registry == repository.registry && r.path == repository.path)
}

#[derive(Serialize, Deserialize)]
struct Payload {
    critical: Critical,
    #[serde(default)]
    optional: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Serialize, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(text: &str) -> Repository {
        Repository::parse(text).unwrap()
    }

    #[test]
    fn the_payload_is_cosigns_shape() {
        let bytes = build(
            &repo("registry.example.com/team/app"),
            "sha256:ab",
            &BTreeMap::new(),
        );
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"registry.example.com/team/app"},"image":{"docker-manifest-digest":"sha256:ab"},"type":"cosign container image signature"},"optional":null}"#
        );
        let annotated = build(
            &repo("busybox"),
            "sha256:ab",
            &BTreeMap::from([("commit".to_string(), "abc".to_string())]),
        );
        let v: serde_json::Value = serde_json::from_slice(&annotated).unwrap();
        assert_eq!(v["optional"]["commit"], "abc");
        assert_eq!(
            v["critical"]["identity"]["docker-reference"],
            "index.docker.io/library/busybox"
        );
    }

    #[test]
    fn the_repository_part_of_a_reference_is_compared() {
        let r = repo("127.0.0.1:5000/team/app");
        for same in [
            "127.0.0.1:5000/team/app",
            "127.0.0.1:5000/team/app:v1",
            "127.0.0.1:5000/team/app@sha256:00",
            "127.0.0.1:5000/team/app:v1@sha256:00",
        ] {
            assert!(same_repository(same, &r), "{same}");
        }
        for other in [
            "127.0.0.1:5000/team/other",
            "127.0.0.1:5001/team/app",
            "team/app",
            "",
        ] {
            assert!(!same_repository(other, &r), "{other}");
        }
        assert!(same_repository(
            "docker.io/library/busybox:1",
            &repo("busybox")
        ));
    }

    #[test]
    fn check_names_what_does_not_match() {
        let r = repo("127.0.0.1:5000/app");
        let bytes = build(&r, "sha256:aa", &BTreeMap::new());
        assert_eq!(check(&bytes, &r, "sha256:aa"), Ok(()));
        assert!(
            check(&bytes, &r, "sha256:bb")
                .unwrap_err()
                .contains("sha256:aa")
        );
        assert!(
            check(&bytes, &repo("127.0.0.1:5000/b"), "sha256:aa")
                .unwrap_err()
                .contains("names repository")
        );
        assert!(check(b"{}", &r, "sha256:aa").is_err());
    }
}
