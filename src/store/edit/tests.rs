use super::*;
use std::path::PathBuf;

fn layer(n: u8) -> BuiltLayer {
    BuiltLayer {
        path: PathBuf::new(),
        digest: format!("sha256:{}", hex::encode([n; 32])),
        diff_id: format!("sha256:{}", hex::encode([n + 100; 32])),
        size: 10 + n as u64,
    }
}

#[test]
fn config_changes_merge_into_the_base() {
    let base = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Labels": {"x": "1"}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:b"]},
        "history": [{"created_by": "base"}],
    });
    let changes = ConfigChanges {
        env: vec![("A".into(), "2".into()), ("B".into(), "3".into())],
        entrypoint: Some(vec!["nginx".into()]),
        workdir: Some("/srv".into()),
        user: Some("101".into()),
        labels: [("y".to_string(), "2".to_string())].into(),
        exposed_ports: vec!["80/tcp".into()],
        ..Default::default()
    };
    let cfg = config(&base, &[(layer(1), "/x".into())], &changes, &rfc3339(0));
    assert_eq!(cfg["created"], "1970-01-01T00:00:00Z");
    assert_eq!(cfg["config"]["Env"], json!(["PATH=/bin", "A=2", "B=3"]));
    assert_eq!(cfg["config"]["Cmd"], json!(["sh"]));
    assert_eq!(cfg["config"]["Entrypoint"], json!(["nginx"]));
    assert_eq!(cfg["config"]["WorkingDir"], "/srv");
    assert_eq!(cfg["config"]["User"], "101");
    assert_eq!(cfg["config"]["Labels"], json!({"x": "1", "y": "2"}));
    assert_eq!(cfg["config"]["ExposedPorts"], json!({"80/tcp": {}}));
    assert_eq!(
        cfg["rootfs"]["diff_ids"],
        json!(["sha256:b", layer(1).diff_id])
    );
    assert_eq!(cfg["history"].as_array().unwrap().len(), 2);
    // Field order is the base's.
    let keys: Vec<&String> = cfg.as_object().unwrap().keys().collect();
    assert_eq!(keys[..2], ["architecture", "os"]);
}

#[test]
fn manifests_keep_their_media_types_and_indexes_drop_attestations() {
    let docker = json!({"schemaVersion": 2, "mediaType": media_types::DOCKER_MANIFEST,
            "config": {"mediaType": media_types::DOCKER_CONFIG, "size": 1, "digest": "sha256:c"},
            "layers": [{"mediaType": media_types::DOCKER_LAYER_GZIP, "size": 1, "digest": "sha256:l"}]});
    let m = manifest(&docker, "sha256:new", 7, &[layer(2)]);
    assert_eq!(m["config"]["digest"], "sha256:new");
    assert_eq!(m["config"]["size"], 7);
    assert_eq!(m["layers"][1]["mediaType"], media_types::DOCKER_LAYER_GZIP);
    let oci =
        json!({"schemaVersion": 2, "config": {"mediaType": media_types::OCI_CONFIG}, "layers": []});
    assert_eq!(
        manifest(&oci, "sha256:n", 1, &[layer(2)])["layers"][0]["mediaType"],
        media_types::OCI_LAYER_GZIP
    );
    let idx = json!({"schemaVersion": 2, "manifests": [
        {"digest": "sha256:a", "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:att", "size": 1, "platform": {"os": "unknown", "architecture": "unknown"}},
    ]});
    let out = index(&idx, &[("sha256:a".into(), "sha256:A".into(), 9)]);
    assert_eq!(
        out["manifests"],
        json!([{"digest": "sha256:A", "size": 9, "platform": {"os": "linux", "architecture": "amd64"}}])
    );
}
