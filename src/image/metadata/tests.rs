use super::*;

#[test]
fn metadata_json_matches_registry_image() {
    let cfg = RunConfig::from_config_blob(
            "c",
            br#"{"architecture":"amd64","config":{"Env":["PATH=/bin","FOO=1"],"User":"someuser","Labels":{"z":"1","a":"2"},"ExposedPorts":{"80/tcp":{}}}}"#,
        )
        .unwrap();
    assert_eq!(
        String::from_utf8(cfg.metadata_json()).unwrap(),
        "{\"cmd\":null,\"entrypoint\":null,\"env\":[\"PATH=/bin\",\"FOO=1\"],\"user\":\"someuser\"}\n"
    );
    assert_eq!(
        String::from_utf8(cfg.labels_json()).unwrap(),
        "{\"a\":\"2\",\"z\":\"1\"}\n"
    );

    let empty = RunConfig::from_config_blob("c", b"{}").unwrap();
    assert_eq!(
        String::from_utf8(empty.metadata_json()).unwrap(),
        "{\"cmd\":null,\"entrypoint\":null,\"env\":null,\"user\":\"\"}\n"
    );
    assert_eq!(empty.labels_json(), b"{}\n");
    assert!(RunConfig::from_config_blob("c", b"[").is_err());
}

#[test]
fn matching_sorts_by_key() {
    let labels: BTreeMap<String, String> = [
        ("z-label", "z"),
        ("a-label", "a"),
        ("m-label", "m"),
        ("other", "o"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let got = matching(&labels, &Regex::new("label").unwrap());
    let keys: Vec<_> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a-label", "m-label", "z-label"]);
    assert_eq!(matching(&labels, &Regex::new(".*").unwrap()).len(), 4);
}

#[test]
fn annotations_are_read_from_manifests() {
    let a = manifest_annotations(
        br#"{"schemaVersion":2,"annotations":{"org.opencontainers.image.source":"x"}}"#,
    );
    assert_eq!(
        a.get("org.opencontainers.image.source").map(String::as_str),
        Some("x")
    );
    assert!(manifest_annotations(b"{}").is_empty());
}
