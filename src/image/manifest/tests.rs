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
