use super::*;
use crate::oci::sha256_digest;
use crate::store::{MemoryImage, ServedManifest};

fn image() -> MemoryImage {
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let layer = Bytes::from(vec![7u8; 200_000]);
    let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256_digest(&layer), "size": layer.len()}],
        })
        .to_string();
    MemoryImage {
        top: ServedManifest {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: sha256_digest(manifest.as_bytes()).into_string(),
            bytes: Bytes::from(manifest),
        },
        children: Vec::new(),
        blobs: BTreeMap::from([
            (sha256_digest(&config).into_string(), config),
            (sha256_digest(&layer).into_string(), layer),
        ]),
    }
}

#[tokio::test]
async fn serves_manifests_and_blobs_by_name() {
    crate::tls::install_crypto_provider();
    let img = image();
    let layer_digest = sha256_digest(&vec![7u8; 200_000]);
    let reg = ImageRegistry::start(BTreeMap::from([(
        "first_image".to_string(),
        Arc::new(img.clone()) as Arc<dyn ImageStore>,
    )]))
    .await
    .unwrap();
    let base = format!("http://{}", reg.host());
    let http = reqwest::Client::new();

    let ping = http.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(ping.status(), 200);

    let m = http
        .get(format!("{base}/v2/first_image/manifests/latest"))
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 200);
    assert_eq!(
        m.headers()["content-type"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        m.headers()["docker-content-digest"].to_str().unwrap(),
        img.top.digest
    );
    assert_eq!(m.bytes().await.unwrap(), img.top.bytes);

    let by_digest = http
        .head(format!(
            "{base}/v2/first_image/manifests/{}",
            img.top.digest
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(by_digest.status(), 200);
    assert_eq!(
        by_digest.headers()["content-length"],
        img.top.bytes.len().to_string().as_str()
    );

    let blob = http
        .get(format!("{base}/v2/first_image/blobs/{layer_digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(blob.status(), 200);
    let body = blob.bytes().await.unwrap();
    assert_eq!(sha256_digest(&body), layer_digest);

    for missing in [
        format!("{base}/v2/other/manifests/latest"),
        format!("{base}/v2/first_image/manifests/sha256:{}", "0".repeat(64)),
        format!("{base}/v2/first_image/blobs/sha256:{}", "0".repeat(64)),
    ] {
        assert_eq!(
            http.get(&missing).send().await.unwrap().status(),
            404,
            "{missing}"
        );
    }
    let put = http
        .put(format!("{base}/v2/first_image/manifests/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 405);
}

/// A real client pulls through it: skopeo copies the image into an OCI
/// layout and the manifest digest survives.
#[tokio::test]
#[cfg_attr(not(have_skopeo), ignore = "needs skopeo on PATH")]
async fn skopeo_can_pull_from_it() {
    let img = image();
    let reg = ImageRegistry::start(BTreeMap::from([(
        "lib/base".to_string(),
        Arc::new(img.clone()) as Arc<dyn ImageStore>,
    )]))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--preserve-digests"])
        .arg(format!("docker://{}/lib/base:some-tag", reg.host()))
        .arg(format!("oci:{}:t", dir.path().display()))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], img.top.digest.as_str());
}
