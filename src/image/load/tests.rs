use super::*;
use crate::image::docker_archive::DockerArchiveWriter;
use crate::oci::sha256_digest;

#[tokio::test]
async fn docker_archives_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("image.tar");
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = zstd::encode_all(&b"layer content"[..], 1).unwrap();
    let file = tokio::fs::File::create(&path).await.unwrap();
    let mut w = DockerArchiveWriter::new(file);
    w.append_config(&sha256_digest(&config), &config)
        .await
        .unwrap();
    w.append_layer(&sha256_digest(&layer), layer.len() as u64, &layer[..])
        .await
        .unwrap();
    w.finish(&["r:t".into()]).await.unwrap();

    let a = DockerArchive::open(&path).unwrap();
    assert_eq!(a.images().len(), 1);
    assert_eq!(
        a.images()[0].repo_tags.as_deref(),
        Some(&["r:t".to_owned()][..])
    );
    let info = a.describe(0).unwrap();
    assert_eq!(info.config.digest, sha256_digest(&config));
    assert_eq!(info.layers[0].digest, sha256_digest(&layer));
    assert_eq!(info.layers[0].size, layer.len() as u64);
    assert_eq!(info.layers[0].compression, Compression::Zstd);
    assert_eq!(a.read_entry(&a.images()[0].config).unwrap(), config);
    let (mut r, size) = a.open_entry(&a.images()[0].layers[0]).await.unwrap();
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap();
    assert_eq!((got, size), (layer.clone(), layer.len() as u64));
}

#[tokio::test]
async fn image_sources_are_told_apart_by_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("oci");
    crate::image::layout::LayoutWriter::create(&dir)
        .await
        .unwrap();
    assert!(matches!(
        ImageSource::open(&dir),
        Ok(ImageSource::Layout(_))
    ));
    let file = tmp.path().join("x.tar");
    std::fs::write(&file, b"").unwrap();
    let err = ImageSource::open(&file).unwrap_err();
    assert!(err.to_string().contains("no manifest.json"), "{err}");
    assert!(ImageSource::open(&tmp.path().join("missing")).is_err());
}

#[test]
fn layouts_follow_registry_image_rules() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("oci");
    rt.block_on(async {
            use crate::image::fetch::testutil::*;
            let w = crate::image::layout::LayoutWriter::create(&dir).await.unwrap();
            let a = add_image(&w, &[TestLayer::gzip(&tar_of(&[("a", "a")]))], serde_json::json!({}), "amd64").await;
            let b = add_image(&w, &[TestLayer::gzip(&tar_of(&[("b", "b")]))], serde_json::json!({}), "arm64").await;
            let (idx, idx_bytes) = add_index(&w, &[(a.0.clone(), a.1.clone(), "amd64"), (b.0.clone(), b.1, "arm64")]).await;
            // buildx type=oci: index.json holds one entry, the real index.
            let outer = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "manifests": [{"mediaType": manifest::OCI_INDEX, "digest": idx, "size": idx_bytes.len()}],
            }))
            .unwrap();
            w.write_index_bytes(&outer).await.unwrap();
        });
    let layout = OciLayoutDir::open(&dir).unwrap();
    match layout.top().unwrap() {
        LayoutTop::Index {
            index,
            images,
            nested,
        } => {
            assert_eq!(index.digest, sha256_digest(&index.bytes));
            assert_eq!(images.len(), 2);
            assert!(nested.is_empty());
            assert_eq!(images[0].layers.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    // With single-image-digest only that image is meant.
    let first = match layout.top().unwrap() {
        LayoutTop::Index { images, .. } => images[0].manifest.digest.clone(),
        _ => unreachable!(),
    };
    std::fs::write(dir.join("single-image-digest"), first.as_str()).unwrap();
    match layout.top().unwrap() {
        LayoutTop::Image(image) => {
            assert_eq!(image.manifest.digest, first);
            assert_eq!(
                image.manifest.media_type.as_deref(),
                Some(manifest::OCI_MANIFEST)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn symlinked_entries_of_new_docker_saves_are_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("new.tar");
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("blobs/sha256/aa", b"layer");
    add("blobs/sha256/cc", b"{}");
    let m = br#"[{"Config":"blobs/sha256/cc","RepoTags":["x:y"],"Layers":["abc/layer.tar"]}]"#;
    add("manifest.json", m);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "abc/layer.tar", "../blobs/sha256/aa")
        .unwrap();
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();
    let a = DockerArchive::open(&path).unwrap();
    let info = a.describe(0).unwrap();
    assert_eq!(info.layers[0].digest, sha256_digest(b"layer"));
}

#[test]
fn archives_naming_missing_entries_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.tar");
    let mut b = tar::Builder::new(Vec::new());
    let m = br#"[{"Config":"c.json","RepoTags":null,"Layers":["../../etc/passwd"]}]"#;
    let mut h = tar::Header::new_gnu();
    h.set_size(m.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "manifest.json", &m[..]).unwrap();
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();
    let err = DockerArchive::open(&path).unwrap_err();
    assert!(err.to_string().contains("not in the archive"), "{err}");
}
