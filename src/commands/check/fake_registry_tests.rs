use serde_json::json;

use super::*;
use test_support::{FakeServer, response};

fn request(source: serde_json::Value, version: Option<Version>) -> CheckRequest {
    CheckRequest {
        source: Source::from_value(source).unwrap(),
        version,
    }
}

#[tokio::test]
async fn failing_mirror_falls_back_to_origin() {
    let mirror = FakeServer::start(|req| match req.path.as_str() {
        "/v2/" => response("200 OK", &[], b""),
        _ => response("500 Internal Server Error", &[], b"mirror broken"),
    })
    .await;
    // The origin (Docker Hub) is unreachable or refuses this name; what
    // matters is that the mirror was asked first and its failure led to
    // the origin, whose error is the one reported.
    let err = run(request(
        json!({"repository": "oci-build-resource-test/does-not-exist", "tag": "latest",
                   "registry_mirror": {"host": mirror.host}}),
        None,
    ))
    .await
    .unwrap_err();
    let text = chain(&err);
    assert!(
        text.starts_with("checking origin oci-build-resource-test/does-not-exist failed: "),
        "{text}"
    );
    assert!(!text.contains("mirror broken"), "{text}");
    let log = mirror.log();
    assert!(
        log.iter()
            .any(|l| l == "HEAD /v2/oci-build-resource-test/does-not-exist/manifests/latest"),
        "{log:?}"
    );
}

/// Tags a registry returns that are not tags by the
/// distribution grammar (`../../v2/...`, control characters) are skipped,
/// never looked up nor reported.
#[tokio::test]
async fn invalid_tags_from_the_registry_are_skipped() {
    let digest = crate::oci::sha256_digest(b"m");
    let d2 = digest.clone();
    let server = FakeServer::start(move |req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v2/") => response("200 OK", &[], b""),
        ("GET", p) if p.starts_with("/v2/img/tags/list") => response(
            "200 OK",
            &[("Content-Type", "application/json")],
            br#"{"name":"img","tags":["good","../../v2/evil/manifests/x","bad\u001b[31m","-x"]}"#,
        ),
        // Regex mode GETs each manifest (to skip BuildKit caches).
        (m, p) if p.starts_with("/v2/img/manifests/") => response(
            "200 OK",
            &[
                ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                ("Docker-Content-Digest", &d2),
            ],
            if m == "GET" { b"m" } else { b"" },
        ),
        _ => response("404 Not Found", &[], b""),
    })
    .await;
    let out = run(request(
        json!({"repository": format!("{}/img", server.host), "tag_regex": ".*"}),
        None,
    ))
    .await
    .unwrap();
    assert_eq!(
        out,
        [Version {
            tag: "good".into(),
            digest: digest.to_string()
        }]
    );
    let log = server.log();
    assert!(
        log.iter()
            .all(|l| !l.contains("evil") && !l.contains("bad")),
        "{log:?}"
    );
}

/// registry-image's suite scripts the exact request order for tag mode:
/// one ping, HEAD the tag, HEAD the previous digest.
#[tokio::test]
async fn tag_mode_request_sequence_matches_ggcr() {
    let new = crate::oci::sha256_digest(b"new");
    let old = crate::oci::sha256_digest(b"old");
    let (n2, o2) = (new.clone(), old.clone());
    let server = FakeServer::start(move |req| {
        let manifest = |d: &str| {
            response(
                "200 OK",
                &[
                    ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                    ("Docker-Content-Digest", d),
                ],
                b"",
            )
        };
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v2/") => response("200 OK", &[], b""),
            ("HEAD", "/v2/img/manifests/latest") => manifest(&n2),
            ("HEAD", p) if p == format!("/v2/img/manifests/{o2}") => manifest(&o2),
            _ => response("404 Not Found", &[], b""),
        }
    })
    .await;
    let v = Version {
        tag: "latest".into(),
        digest: old.to_string(),
    };
    let out = run(request(
        json!({"repository": format!("{}/img", server.host), "tag": "latest"}),
        Some(v),
    ))
    .await
    .unwrap();
    assert_eq!(
        out,
        [
            Version {
                tag: "latest".into(),
                digest: old.to_string()
            },
            Version {
                tag: "latest".into(),
                digest: new.to_string()
            }
        ]
    );
    assert_eq!(
        server.log(),
        [
            "GET /v2/",
            "HEAD /v2/img/manifests/latest",
            &format!("HEAD /v2/img/manifests/{old}")
        ]
    );
    // A malformed version digest cannot exist: no lookup, no error.
    let v = Version {
        tag: "latest".into(),
        digest: "sha256:bogus".into(),
    };
    let json = json!({"repository": format!("{}/img", server.host), "tag": "latest"});
    let out = run(request(json, Some(v))).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        server.log().len(),
        5,
        "one ping and one HEAD of the tag more"
    );
}
