use super::*;
use serde_json::json;

#[test]
fn invocation_ids_and_times_are_ignored_and_nothing_else() {
    let statement = |id: &str, started: &str, arg: &str| {
        json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{"name": "x", "digest": {"sha256": "aa"}}],
            "predicate": {
                "invocation": {"parameters": {"args": {"build-arg:A": arg}}},
                "metadata": {"buildInvocationID": id, "buildStartedOn": started,
                             "buildFinishedOn": started, "completeness": {"parameters": true}},
                "runDetails": {"metadata": {"invocationId": id, "startedOn": started}}
            }
        })
    };
    let mut a = statement("one", "2026-01-01T00:00:00Z", "x");
    let mut b = statement("two", "2026-02-02T00:00:00Z", "x");
    let mut c = statement("two", "2026-02-02T00:00:00Z", "y");
    for s in [&mut a, &mut b, &mut c] {
        strip_volatile(s);
    }
    assert_eq!(a, b);
    assert_ne!(a, c, "another build arg is another build");
    assert_eq!(
        a["predicate"]["metadata"],
        json!({"completeness": {"parameters": true}})
    );
}

#[test]
fn sbom_document_names_and_dates_are_ignored_and_contents_are_not() {
    let spdx = |namespace: &str, created: &str, package: &str| {
        json!({
            "predicateType": "https://spdx.dev/Document",
            "predicate": {
                "documentNamespace": namespace,
                "creationInfo": {"created": created, "creators": ["Tool: syft-1.0"]},
                "packages": [{"name": package}]
            }
        })
    };
    let mut a = spdx(
        "https://anchore.com/syft/image/x-1111",
        "2026-01-01T00:00:00Z",
        "busybox",
    );
    let mut b = spdx(
        "https://anchore.com/syft/image/x-2222",
        "2026-02-02T00:00:00Z",
        "busybox",
    );
    let mut c = spdx(
        "https://anchore.com/syft/image/x-2222",
        "2026-02-02T00:00:00Z",
        "openssl",
    );
    for s in [&mut a, &mut b, &mut c] {
        strip_sbom_identity(s);
    }
    assert_eq!(a, b);
    assert_ne!(a, c, "another package list is another SBOM");
    assert_eq!(
        a["predicate"]["creationInfo"],
        json!({"creators": ["Tool: syft-1.0"]})
    );

    let cyclonedx = |serial: &str, time: &str| {
        json!({
            "predicateType": "https://cyclonedx.org/bom",
            "predicate": {"serialNumber": serial, "metadata": {"timestamp": time, "tools": []}}
        })
    };
    let (mut d, mut e) = (
        cyclonedx("urn:uuid:1", "2026-01-01T00:00:00Z"),
        cyclonedx("urn:uuid:2", "2026-01-02T00:00:00Z"),
    );
    strip_sbom_identity(&mut d);
    strip_sbom_identity(&mut e);
    assert_eq!(d, e);

    // Other statements keep those keys.
    let mut other =
        json!({"predicateType": "https://example.com/x", "predicate": {"serialNumber": "1"}});
    strip_sbom_identity(&mut other);
    assert_eq!(other["predicate"]["serialNumber"], "1");
}

#[test]
fn images_are_compared_whole_and_attestations_left_out() {
    let index = |image: &str, att: &str| {
        json!({"manifests": [
            {"digest": image, "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": att, "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                             "vnd.docker.reference.digest": image}}
        ]})
    };
    let (a, b, c) = (
        index("sha256:1", "sha256:a"),
        index("sha256:1", "sha256:b"),
        index("sha256:2", "sha256:a"),
    );
    assert!(has_attestations(&a));
    assert_eq!(images(&a), images(&b));
    assert_ne!(images(&a), images(&c));
    assert!(!has_attestations(
        &json!({"manifests": [{"digest": "sha256:1"}]})
    ));
}
