use super::*;

#[test]
fn classification() {
    assert_eq!(classify("m", Some(OCI_INDEX), b"{}").unwrap(), Kind::Index);
    assert_eq!(
        classify("m", Some(DOCKER_MANIFEST), b"{}").unwrap(),
        Kind::Image
    );
    assert_eq!(
        classify("m", None, br#"{"manifests":[]}"#).unwrap(),
        Kind::Index
    );
    assert_eq!(
        classify("m", Some("text/plain"), br#"{"layers":[]}"#).unwrap(),
        Kind::Image
    );
    assert_eq!(
        classify(
            "m",
            Some("application/octet-stream"),
            br#"{"mediaType":"application/vnd.oci.image.index.v1+json"}"#
        )
        .unwrap(),
        Kind::Index
    );
    assert!(matches!(
        classify("m", None, br#"{"schemaVersion":1}"#),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        classify("m", Some(DOCKER_SCHEMA1[1]), b"{}"),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        classify("m", None, b"not json"),
        Err(Error::Parse { .. })
    ));
}

/// A manifest whose Content-Type says index is read as what its body is,
/// and one whose own mediaType contradicts its body is refused naming both.
#[test]
fn structure_decides_against_a_wrong_media_type() {
    let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
    assert_eq!(classify("m", Some(OCI_INDEX), image).unwrap(), Kind::Image);
    let lying =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","layers":[]}"#;
    assert_eq!(
        classify("m", None, lying).unwrap_err().to_string(),
        "unsupported manifest m: its mediaType \"application/vnd.oci.image.index.v1+json\" contradicts its content, \
         which is an image manifest (it has `config` or `layers`)"
    );
}

/// A parse failure says what was expected and where the document differs.
#[test]
fn parse_errors_say_what_was_expected() {
    let err = parse_index("sha256:x", br#"{"schemaVersion":2,"layers":[]}"#).unwrap_err();
    let text = crate::oci::error_chain(&err);
    assert!(
        text.contains("not an OCI index or Docker manifest list: missing field `manifests`"),
        "{text}"
    );
    assert!(!text.contains("serde failed"), "{text}");
}

#[test]
fn caches_and_artifacts_are_told_by_their_config_media_type() {
    let cache_manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.buildkit.cacheconfig.v0","digest":"sha256:00","size":1},"layers":[]}"#;
    let cache_index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:01","size":1},
            {"mediaType":"application/vnd.buildkit.cacheconfig.v0","digest":"sha256:00","size":1}]}"#;
    let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:00","size":1},"layers":[]}"#;
    let index = br#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:00","size":1}]}"#;
    let helm = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:00","size":1},"layers":[]}"#;
    let artifact = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example+type",
            "config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44","size":2},"layers":[]}"#;
    assert_eq!(tagged(cache_manifest), Tagged::BuildCache);
    assert_eq!(tagged(cache_index), Tagged::BuildCache);
    assert_eq!(tagged(image), Tagged::Image);
    assert_eq!(tagged(index), Tagged::Image);
    assert_eq!(tagged(b"not json"), Tagged::Image);
    assert_eq!(
        tagged(helm),
        Tagged::Artifact("application/vnd.cncf.helm.config.v1+json".into())
    );
    assert_eq!(
        tagged(artifact),
        Tagged::Artifact("application/vnd.oci.empty.v1+json".into())
    );
}
