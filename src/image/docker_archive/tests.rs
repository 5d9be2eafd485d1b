use super::*;
use crate::oci::sha256_digest;
use std::io::Read;

#[tokio::test]
async fn archive_layout_matches_docker_save() {
    let config = br#"{"architecture":"amd64"}"#.to_vec();
    let gz_layer = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, b"tar").unwrap();
        e.finish().unwrap()
    };
    let plain_layer = vec![0u8; 1536];
    let mut w = DockerArchiveWriter::new(Vec::new());
    w.append_config(&sha256_digest(&config), &config)
        .await
        .unwrap();
    w.append_layer(
        &sha256_digest(&gz_layer),
        gz_layer.len() as u64,
        &gz_layer[..],
    )
    .await
    .unwrap();
    w.append_layer(
        &sha256_digest(&plain_layer),
        plain_layer.len() as u64,
        &plain_layer[..],
    )
    .await
    .unwrap();
    let out = w.finish(&["example.com/repo:tag".into()]).await.unwrap();

    let mut archive = tar::Archive::new(&out[..]);
    let mut names = Vec::new();
    let mut manifest = String::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name == "manifest.json" {
            e.read_to_string(&mut manifest).unwrap();
        }
        names.push(name);
    }
    let cfg = format!("sha256:{}", sha256_digest(&config).hex());
    let l1 = format!("{}.tar.gz", sha256_digest(&gz_layer).hex());
    let l2 = format!("{}.tar", sha256_digest(&plain_layer).hex());
    assert_eq!(
        names,
        [cfg.clone(), l1.clone(), l2.clone(), "manifest.json".into()]
    );
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(
        m,
        serde_json::json!([{"Config": cfg, "RepoTags": ["example.com/repo:tag"], "Layers": [l1, l2]}])
    );
}

#[tokio::test]
async fn short_and_long_layers_are_errors() {
    let mut w = DockerArchiveWriter::new(Vec::new());
    let d = sha256_digest(b"abc");
    assert!(matches!(
        w.append_layer(&d, 4, &b"abc"[..]).await,
        Err(Error::Verify(VerifyError::Truncated { actual: 3, .. }))
    ));
    let mut w = DockerArchiveWriter::new(Vec::new());
    assert!(matches!(
        w.append_layer(&d, 2, &b"abc"[..]).await,
        Err(Error::Verify(VerifyError::SizeMismatch { .. }))
    ));
}
