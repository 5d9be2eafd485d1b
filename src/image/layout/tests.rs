use super::*;
use crate::oci::{VerifyError, sha256_digest};

#[tokio::test]
async fn blobs_are_verified_before_they_get_their_name() {
    let tmp = tempfile::tempdir().unwrap();
    let w = LayoutWriter::create(&tmp.path().join("oci")).await.unwrap();
    let data = b"layer bytes".to_vec();
    let digest = sha256_digest(&data);

    let wrong = sha256_digest(b"other");
    let err = w
        .write_blob(&data[..], &wrong, data.len() as u64)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Verify(VerifyError::DigestMismatch { .. })),
        "{err:?}"
    );
    let err = w.write_blob(&data[..], &digest, 5).await.unwrap_err();
    assert!(
        matches!(err, Error::Verify(VerifyError::SizeMismatch { .. })),
        "{err:?}"
    );
    let err = w
        .write_blob(&data[..], "sha256:../../x", 5)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidDigest(_)), "{err:?}");
    let names: Vec<_> = std::fs::read_dir(tmp.path().join("oci/blobs/sha256"))
        .unwrap()
        .collect();
    assert!(names.is_empty(), "nothing may remain after failed writes");

    w.write_blob(&data[..], &digest, data.len() as u64)
        .await
        .unwrap();
    assert_eq!(std::fs::read(w.blob_path(&digest).unwrap()).unwrap(), data);
}

#[tokio::test]
async fn verify_walks_the_whole_layout_and_notices_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("oci");
    let w = LayoutWriter::create(&dir).await.unwrap();
    let layer = b"not really a tar".to_vec();
    let layer_d = sha256_digest(&layer);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let config_d = sha256_digest(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_d, "size": layer.len()}],
        }))
        .unwrap();
    let manifest_d = sha256_digest(&manifest);
    w.write_blob(&layer[..], &layer_d, layer.len() as u64)
        .await
        .unwrap();
    w.write_blob_bytes(&config, &config_d).await.unwrap();
    w.write_blob_bytes(&manifest, &manifest_d).await.unwrap();
    w.write_index_bytes(&single_image_index(
        manifest::OCI_MANIFEST,
        &manifest_d,
        manifest.len() as u64,
        Some("t"),
    ))
    .await
    .unwrap();
    assert_eq!(
        verify(&dir).unwrap(),
        VerifyReport {
            images: 1,
            blobs: 3
        }
    );

    let path = w.blob_path(&layer_d).unwrap();
    std::fs::write(&path, b"not really a taR").unwrap();
    assert!(matches!(
        verify(&dir),
        Err(Error::Verify(VerifyError::DigestMismatch { .. }))
    ));
    std::fs::write(&path, &layer).unwrap();
    assert!(verify(&dir).is_ok());
}
