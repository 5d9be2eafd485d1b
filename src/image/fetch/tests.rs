//! End-to-end tests of [`download`] from local OCI layouts, checked against
//! the real tools: `umoci unpack` for rootfs contents, `skopeo inspect` for
//! the docker archive and the OCI layout.

use super::testutil::*;
use super::*;
use crate::image::layout::verify;
use crate::image::load::OciLayoutDir;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;

fn options(digest: &str, format: Format) -> GetOptions {
    GetOptions {
        digest: digest.to_owned(),
        tag: "latest".into(),
        format,
        skip_download: false,
        platform: WantedPlatform::new(Some("linux"), Some("amd64"), None),
        want_metadata: true,
        repo_tag: "registry.example:5000/test/image:latest".into(),
        unpack: UnpackOptions { as_root: false },
        parallel: 3,
    }
}

struct Fixture {
    tmp: tempfile::TempDir,
    source: Arc<OciLayoutDir>,
    digest: String,
}

impl Fixture {
    fn dest(&self) -> PathBuf {
        let d = self.tmp.path().join("dest");
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

/// Three layers, three compressions, a whiteout across layers.
async fn three_layer_image() -> Fixture {
    three_layer_image_with(true).await
}

/// As [`three_layer_image`]; without `zstd` the middle layer is gzip, for
/// tools (umoci 0.4) that know no zstd and check media types.
async fn three_layer_image_with(zstd: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    let w = LayoutWriter::create(&dir).await.unwrap();
    let layers = [
        TestLayer::gzip(&tar_of(&[
            ("etc/one", "1"),
            ("etc/gone", "g"),
            ("big", &"x".repeat(300_000)),
            // umoci resolves the config's user when it writes config.json.
            (
                "etc/passwd",
                "root:x:0:0::/root:/bin/sh\nsomeuser:x:1000:1000::/home:/bin/sh\n",
            ),
            ("etc/group", "root:x:0:\nsomeuser:x:1000:\n"),
        ])),
        if zstd {
            TestLayer::zstd(&tar_of(&[("etc/two", "2"), ("etc/.wh.gone", "")]))
        } else {
            TestLayer::gzip(&tar_of(&[("etc/two", "2"), ("etc/.wh.gone", "")]))
        },
        TestLayer::plain(&tar_of(&[("etc/three", "3"), ("etc/one", "1 again")])),
    ];
    let config = serde_json::json!({"config": {"Env": ["PATH=/bin", "FOO=1"], "User": "someuser", "Labels": {"z-label": "z", "a-label": "a"}}});
    let (digest, bytes) = add_image(&w, &layers, config, "amd64").await;
    w.write_index_bytes(&crate::image::layout::single_image_index(
        manifest::OCI_MANIFEST,
        &digest,
        bytes.len() as u64,
        Some("latest"),
    ))
    .await
    .unwrap();
    let source = Arc::new(OciLayoutDir::open(&dir).unwrap());
    Fixture {
        tmp,
        source,
        digest,
    }
}

#[tokio::test]
async fn rootfs_is_unpacked_with_metadata_streaming_and_spooling() {
    for parallel in [1, 3] {
        let f = three_layer_image().await;
        let dest = f.dest();
        let opts = GetOptions {
            parallel,
            ..options(&f.digest, Format::Rootfs)
        };
        let out = download(f.source.clone(), &dest, &opts).await.unwrap();
        let root = dest.join("rootfs");
        assert_eq!(
            std::fs::read_to_string(root.join("etc/one")).unwrap(),
            "1 again"
        );
        assert_eq!(std::fs::read_to_string(root.join("etc/two")).unwrap(), "2");
        assert_eq!(
            std::fs::read_to_string(root.join("etc/three")).unwrap(),
            "3"
        );
        assert!(!exists(&root.join("etc/gone")));
        assert_eq!(std::fs::metadata(root.join("big")).unwrap().len(), 300_000);
        assert_eq!(
            std::fs::read_to_string(dest.join("metadata.json")).unwrap(),
            "{\"cmd\":null,\"entrypoint\":null,\"env\":[\"PATH=/bin\",\"FOO=1\"],\"user\":\"someuser\"}\n"
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("labels.json")).unwrap(),
            "{\"a-label\":\"a\",\"z-label\":\"z\"}\n"
        );
        assert_eq!(out.labels.len(), 2);
        assert_eq!(
            out.annotations.get("org.example.note").map(String::as_str),
            Some("hello")
        );
        let mut left: Vec<_> = std::fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["labels.json", "metadata.json", "rootfs"],
            "no spool or partial files remain"
        );
    }
}

#[tokio::test]
async fn a_corrupted_layer_fails_the_download() {
    for (parallel, corrupt) in [(1, 0), (1, 2), (3, 2), (3, 1)] {
        let f = three_layer_image().await;
        let image =
            manifest::parse_image("m", &f.source.read_blob(&f.digest, None).unwrap()).unwrap();
        let layer = &image.layers()[corrupt];
        let path = f.source.blob_path(layer.digest().as_ref()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        // And one early, so the decompressor trips before the digest check.
        bytes[20] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let dest = f.dest();
        let opts = GetOptions {
            parallel,
            ..options(&f.digest, Format::Rootfs)
        };
        let err = download(f.source.clone(), &dest, &opts).await.unwrap_err();
        let chain = lower_chain(&err);
        assert!(
            chain.contains("digest mismatch"),
            "parallel {parallel}, layer {corrupt}: {chain}"
        );
        assert!(
            !exists(&dest.join("metadata.json")),
            "nothing reported for a failed download"
        );
    }
}

#[tokio::test]
async fn a_failed_download_leaves_nothing_behind() {
    // registry-image writes nothing until its download succeeded; a retry
    // (or the origin after a mirror) must find the destination clean.
    for format in [Format::Rootfs, Format::Oci, Format::OciLayout] {
        for parallel in [1, 3] {
            let f = three_layer_image().await;
            let image =
                manifest::parse_image("m", &f.source.read_blob(&f.digest, None).unwrap()).unwrap();
            // The last layer: the others are unpacked, spooled or written.
            let layer = &image.layers()[2];
            let path = f.source.blob_path(layer.digest().as_ref()).unwrap();
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            std::fs::write(&path, &bytes).unwrap();
            let dest = f.dest();
            std::fs::write(dest.join("unrelated"), "kept").unwrap();
            let opts = GetOptions {
                parallel,
                ..options(&f.digest, format)
            };
            let err = download(f.source.clone(), &dest, &opts).await.unwrap_err();
            assert!(
                lower_chain(&err).contains("digest mismatch"),
                "{format:?} parallel {parallel}: {err}"
            );
            let left: Vec<_> = std::fs::read_dir(&dest)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(left, ["unrelated"], "{format:?} parallel {parallel}");
        }
    }
}

/// Serves one manifest for any digest, as a registry serving a signed
/// schema 1 manifest does (its digest covers the payload only, so the bytes
/// never hash to the digest they are fetched by).
struct OneManifest(&'static [u8]);

impl BlobSource for OneManifest {
    type Error = Error;
    type Reader = std::io::Cursor<Vec<u8>>;

    async fn fetch_manifest(&self, digest: &Digest) -> Result<FetchedManifest> {
        Ok(FetchedManifest {
            bytes: Bytes::from_static(self.0),
            media_type: Some("application/vnd.docker.distribution.manifest.v1+prettyjws".into()),
            digest: digest.clone(),
        })
    }

    async fn fetch_blob(&self, digest: &Digest) -> Result<Bytes> {
        Err(Error::InvalidDigest(digest.to_string()))
    }

    async fn blob_reader(&self, digest: &Digest, _size: u64) -> Result<Self::Reader> {
        Err(Error::InvalidDigest(digest.to_string()))
    }
}

#[tokio::test]
async fn signed_schema1_manifests_are_unsupported_not_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Arc::new(OneManifest(
        br#"{"schemaVersion":1,"name":"x","tag":"v1","fsLayers":[],"signatures":[]}"#,
    ));
    let digest = crate::oci::sha256_digest(b"payload without signatures");
    let err = download(source, tmp.path(), &options(&digest, Format::Rootfs))
        .await
        .unwrap_err();
    let chain = lower_chain(&err);
    assert!(
        chain.contains("docker schema 1 manifests are not supported")
            && chain.contains(digest.as_str()),
        "{chain}"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// The error chain, lower-cased for matching.
fn lower_chain(e: &dyn std::error::Error) -> String {
    crate::oci::error_chain(e).to_lowercase()
}

#[tokio::test]
async fn wrong_manifest_digest_is_refused() {
    let f = three_layer_image().await;
    let other = crate::oci::sha256_digest(b"something else");
    // Make the source answer the manifest for another digest.
    let path = f.source.blob_path(&other).unwrap();
    std::fs::copy(f.source.blob_path(&f.digest).unwrap(), &path).unwrap();
    let err = download(
        f.source.clone(),
        &f.dest(),
        &options(&other, Format::Rootfs),
    )
    .await
    .unwrap_err();
    assert!(lower_chain(&err).contains("digest mismatch"), "{err}");
}

#[tokio::test]
async fn skip_download_writes_nothing_but_reports_metadata() {
    let f = three_layer_image().await;
    let dest = f.dest();
    let opts = GetOptions {
        skip_download: true,
        ..options(&f.digest, Format::Rootfs)
    };
    let out = download(f.source.clone(), &dest, &opts).await.unwrap();
    assert_eq!(out.labels.get("a-label").map(String::as_str), Some("a"));
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
}

#[tokio::test]
async fn platform_children_are_selected_and_oci_layout_keeps_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    let w = LayoutWriter::create(&dir).await.unwrap();
    let amd = add_image(
        &w,
        &[TestLayer::gzip(&tar_of(&[("arch", "amd64")]))],
        serde_json::json!({}),
        "amd64",
    )
    .await;
    let arm = add_image(
        &w,
        &[TestLayer::gzip(&tar_of(&[("arch", "arm64")]))],
        serde_json::json!({}),
        "arm64",
    )
    .await;
    let (index_d, index_bytes) = add_index(
        &w,
        &[
            (amd.0.clone(), amd.1, "amd64"),
            (arm.0.clone(), arm.1, "arm64"),
        ],
    )
    .await;
    let source = Arc::new(OciLayoutDir::open(&dir).unwrap());

    for (arch, want) in [
        ("arm64", "arm64"),
        ("arm64/v8", "arm64"),
        ("amd64", "amd64"),
    ] {
        let dest = tmp.path().join(format!("dest-{}", arch.replace('/', "-")));
        std::fs::create_dir(&dest).unwrap();
        let opts = GetOptions {
            platform: WantedPlatform::new(Some("linux"), Some(arch), None),
            ..options(&index_d, Format::Rootfs)
        };
        download(source.clone(), &dest, &opts).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("rootfs/arch")).unwrap(),
            want
        );
    }

    let dest = tmp.path().join("dest-none");
    std::fs::create_dir(&dest).unwrap();
    let opts = GetOptions {
        platform: WantedPlatform::new(Some("linux"), Some("s390x"), None),
        ..options(&index_d, Format::Rootfs)
    };
    let err = download(source.clone(), &dest, &opts).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no child with platform linux/s390x in index {index_d}")
    );

    let dest = tmp.path().join("dest-layout");
    std::fs::create_dir(&dest).unwrap();
    download(source.clone(), &dest, &options(&index_d, Format::OciLayout))
        .await
        .unwrap();
    let oci = dest.join("oci");
    assert_eq!(
        std::fs::read(oci.join("index.json")).unwrap(),
        index_bytes,
        "exact index bytes"
    );
    assert!(!exists(&oci.join("single-image-digest")));
    let report = verify(&oci).unwrap();
    assert_eq!(report.images, 2, "all platforms are kept");
    assert_eq!(report.blobs, 2 * 3);
}

// The single-image oci-layout (index wrapper, `single-image-digest`, no
// other files, readable by skopeo) is checked end to end by
// `tests/it/get.rs` `oci_layout_of_a_single_image_wraps_it_in_an_index`.

#[tokio::test]
#[cfg_attr(not(have_skopeo), ignore = "needs skopeo on PATH")]
async fn docker_archive_satisfies_skopeo() {
    let f = three_layer_image().await;
    let dest = f.dest();
    download(f.source.clone(), &dest, &options(&f.digest, Format::Oci))
        .await
        .unwrap();
    let tarball = dest.join("image.tar");
    let mut left: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["image.tar", "labels.json"]);

    let archive = crate::image::load::DockerArchive::open(&tarball).unwrap();
    let image = manifest::parse_image("m", &f.source.read_blob(&f.digest, None).unwrap()).unwrap();
    let info = archive.describe(0).unwrap();
    let want: Vec<String> = image
        .layers()
        .iter()
        .map(|l| l.digest().to_string())
        .collect();
    let got: Vec<String> = info.layers.iter().map(|l| l.digest.clone()).collect();
    assert_eq!(got, want, "layers stored byte for byte");
    assert_eq!(
        archive.images()[0].repo_tags.as_deref(),
        Some(&["registry.example:5000/test/image:latest".to_owned()][..])
    );
    let names: Vec<&str> = archive.images()[0]
        .layers
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert!(
        names[0].ends_with(".tar.gz")
            && names[1].ends_with(".tar.zst")
            && names[2].ends_with(".tar")
    );

    let out = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}", tarball.display())));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let layers: Vec<String> = v["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    // docker-archive reports uncompressed digests: the config's diff_ids.
    let config: serde_json::Value =
        serde_json::from_slice(&archive.read_entry(&archive.images()[0].config).unwrap()).unwrap();
    assert_eq!(serde_json::json!(layers), config["rootfs"]["diff_ids"]);
    assert_eq!(v["Env"], serde_json::json!(["PATH=/bin", "FOO=1"]));
    // A full copy reads every layer back out of the archive.
    let copied = f.tmp.path().join("copied");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("docker-archive:{}", tarball.display()))
        .arg(format!("oci:{}:copied", copied.display())));
    assert_eq!(verify(&copied).unwrap().images, 1);
}

/// Builds a multi-layer image with umoci (whiteouts, symlinks, hard links,
/// odd modes, old mtimes, a hand-made opaque-directory layer) and checks our
/// rootfs equals `umoci unpack --rootless` of it.
#[tokio::test]
#[cfg_attr(not(have_umoci), ignore = "needs umoci on PATH")]
async fn rootfs_matches_umoci_unpack() {
    compare_with_umoci(true).await;
}

/// The same as root, without `--rootless`: owners must match too.
#[tokio::test]
#[cfg_attr(
    not(all(have_root, have_umoci)),
    ignore = "needs root and umoci on PATH"
)]
async fn rootfs_matches_umoci_unpack_as_root() {
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    compare_with_umoci(false).await;
}

async fn compare_with_umoci(rootless: bool) {
    let unpack: &[&str] = if rootless {
        &["unpack", "--rootless", "--image"]
    } else {
        &["unpack", "--image"]
    };
    use filetime::{FileTime, set_file_mtime, set_symlink_file_times};
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let image = format!("{}:t", layout.display());
    let bundle = tmp.path().join("work");
    run(Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    run(Command::new("umoci").args(unpack).arg(&image).arg(&bundle));
    let r = bundle.join("rootfs");
    let old = FileTime::from_unix_time(675_927_030, 0);

    // Layer 1.
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::create_dir_all(r.join("dir/sub")).unwrap();
    std::fs::create_dir_all(r.join("gone/deep")).unwrap();
    std::fs::create_dir_all(r.join("opaque/lower")).unwrap();
    std::fs::write(r.join("etc/hostname"), "box\n").unwrap();
    std::fs::write(r.join("dir/sub/x"), "x").unwrap();
    std::fs::write(r.join("dir/keep"), "keep").unwrap();
    std::fs::write(r.join("gone/deep/f"), "f").unwrap();
    std::fs::write(r.join("opaque/lower/f"), "lower").unwrap();
    std::fs::write(r.join("opaque/old"), "old").unwrap();
    std::fs::write(r.join("perm"), "perm").unwrap();
    std::fs::set_permissions(r.join("perm"), std::fs::Permissions::from_mode(0o603)).unwrap();
    set_file_mtime(r.join("perm"), old).unwrap();
    std::fs::write(r.join("a"), "symlinked\n").unwrap();
    symlink("a", r.join("b")).unwrap();
    symlink("/etc/hostname", r.join("abslink")).unwrap();
    symlink("../etc", r.join("dir/rel")).unwrap();
    set_symlink_file_times(r.join("abslink"), old, old).unwrap();
    std::fs::hard_link(r.join("etc/hostname"), r.join("hard")).unwrap();
    std::fs::write(r.join("exec"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(r.join("exec"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    set_file_mtime(r.join("dir/keep"), old).unwrap();
    if !rootless {
        std::os::unix::fs::lchown(r.join("dir/keep"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(r.join("abslink"), Some(4321), Some(8765)).unwrap();
        std::os::unix::fs::lchown(r.join("dir/sub"), Some(42), Some(43)).unwrap();
    }
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));

    // Layer 2: deletions (whiteouts), a file replacing a symlink.
    std::fs::remove_dir_all(r.join("gone")).unwrap();
    std::fs::remove_file(r.join("dir/sub/x")).unwrap();
    std::fs::remove_file(r.join("b")).unwrap();
    std::fs::write(r.join("b"), "replaced\n").unwrap();
    std::fs::write(r.join("etc/hostname"), "renamed\n").unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));

    // Layer 3, by hand: an opaque directory, a hard link, a dir over a file.
    let mut b = tar::Builder::new(Vec::new());
    let mut entry =
        |kind: tar::EntryType, name: &str, data: &[u8], mode: u32, link: Option<&str>| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_mtime(675_927_030);
            h.set_size(data.len() as u64);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            b.append_data(&mut h, name, data).unwrap();
        };
    entry(tar::EntryType::Directory, "opaque/", b"", 0o750, None);
    entry(
        tar::EntryType::Regular,
        "opaque/.wh..wh..opq",
        b"",
        0o644,
        None,
    );
    entry(tar::EntryType::Regular, "opaque/new", b"new", 0o640, None);
    entry(
        tar::EntryType::Link,
        "opaque/hard2",
        b"",
        0o640,
        Some("opaque/new"),
    );
    entry(tar::EntryType::Directory, "perm-dir/", b"", 0o711, None);
    entry(tar::EntryType::Regular, "perm-dir/inner", b"i", 0o600, None);
    entry(tar::EntryType::Regular, "dir/.wh.rel", b"", 0o644, None);
    let layer3 = tmp.path().join("layer3.tar");
    std::fs::write(&layer3, b.into_inner().unwrap()).unwrap();
    run(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &image])
        .arg(&layer3));

    // umoci's reference unpack.
    let reference = tmp.path().join("reference");
    run(Command::new("umoci")
        .args(unpack)
        .arg(&image)
        .arg(&reference));

    // Ours, from the layout's blobs.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "t")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let source = Arc::new(OciLayoutDir::open(&layout).unwrap());
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let opts = GetOptions {
        unpack: UnpackOptions { as_root: !rootless },
        ..options(&digest, Format::Rootfs)
    };
    download(source, &dest, &opts).await.unwrap();

    let ours = tree(&dest.join("rootfs"), !rootless);
    let theirs = tree(&reference.join("rootfs"), !rootless);
    assert!(ours.len() > 15, "the fixture is not trivial: {ours:#?}");
    for (path, want) in &theirs {
        assert_eq!(ours.get(path), Some(want), "{path} differs");
    }
    assert_eq!(ours, theirs);
    assert!(
        !ours.contains_key("gone")
            && !ours.contains_key("opaque/lower")
            && !ours.contains_key("dir/rel")
    );
    assert_eq!(ours["perm"].mode, 0o603);
    assert_eq!(ours["perm"].mtime, Some(675_927_030));
    if !rootless {
        assert_eq!(ours["dir/keep"].owner, Some((1234, 5678)));
        assert_eq!(ours["abslink"].owner, Some((4321, 8765)));
        assert_eq!(ours["dir/sub"].owner, Some((42, 43)));
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    size: u64,
    nlink: u64,
    content: Option<Vec<u8>>,
    link: Option<PathBuf>,
    mtime: Option<i64>,
    owner: Option<(u32, u32)>,
}

fn tree(root: &Path, owners: bool) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.unwrap();
        let m = e.path().symlink_metadata().unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            "symlink"
        } else if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else {
            "other"
        };
        out.insert(
            rel,
            Node {
                kind,
                mode: if ft.is_symlink() {
                    0
                } else {
                    m.mode() & 0o7777
                },
                size: if ft.is_file() { m.len() } else { 0 },
                nlink: if ft.is_file() { m.nlink() } else { 0 },
                content: ft.is_file().then(|| std::fs::read(e.path()).unwrap()),
                link: ft
                    .is_symlink()
                    .then(|| std::fs::read_link(e.path()).unwrap()),
                mtime: ft.is_file().then(|| m.mtime()),
                owner: owners.then(|| (m.uid(), m.gid())),
            },
        );
    }
    out
}

/// A source whose blob readers hand out the first `open` bytes, then wait
/// for `gate` before the rest: a download in progress, frozen.
struct GatedSource {
    inner: OciLayoutDir,
    open: usize,
    gate: Arc<tokio::sync::Semaphore>,
}

struct GatedReader {
    data: std::io::Cursor<Vec<u8>>,
    open: usize,
    wait: Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl tokio::io::AsyncRead for GatedReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::io::Read;
        let pos = self.data.position() as usize;
        if pos >= self.open
            && let Some(w) = self.wait.as_mut()
        {
            match w.as_mut().poll(cx) {
                std::task::Poll::Pending => return std::task::Poll::Pending,
                std::task::Poll::Ready(()) => self.wait = None,
            }
        }
        let limit = if self.wait.is_some() {
            self.open - pos
        } else {
            buf.remaining()
        };
        let mut tmp = vec![0u8; limit.min(buf.remaining())];
        let n = self.data.read(&mut tmp)?;
        buf.put_slice(&tmp[..n]);
        std::task::Poll::Ready(Ok(()))
    }
}

impl BlobSource for GatedSource {
    type Error = Error;
    type Reader = GatedReader;

    async fn fetch_manifest(&self, digest: &Digest) -> Result<FetchedManifest> {
        self.inner.fetch_manifest(digest).await
    }

    async fn fetch_blob(&self, digest: &Digest) -> Result<Bytes> {
        self.inner.fetch_blob(digest).await
    }

    async fn blob_reader(&self, digest: &Digest, _size: u64) -> Result<GatedReader> {
        let data = self.inner.read_blob(digest, None)?;
        let gate = self.gate.clone();
        Ok(GatedReader {
            open: self.open.min(data.len()),
            data: std::io::Cursor::new(data),
            wait: Some(Box::pin(async move {
                let _ = gate.acquire().await.map(|p| p.forget());
            })),
        })
    }
}

#[tokio::test]
async fn spooled_layers_are_read_while_they_download() {
    let f = three_layer_image().await;
    let image = manifest::parse_image("m", &f.source.read_blob(&f.digest, None).unwrap()).unwrap();
    let layers: Vec<(Digest, u64)> = image
        .layers()
        .iter()
        .map(|l| (Digest::parse(l.digest().as_ref()).unwrap(), l.size()))
        .collect();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let source = Arc::new(GatedSource {
        inner: OciLayoutDir::open(&f.tmp.path().join("src")).unwrap(),
        open: 100,
        gate: gate.clone(),
    });
    let spool = f.tmp.path().join("spool");
    let mut feed = LayerFeed::start(source, layers.clone(), &spool, 3)
        .await
        .unwrap();
    let first = feed.next().await.unwrap().unwrap();
    assert!(
        matches!(first, LayerInput::Stream(_)),
        "nobody downloaded layer 0 yet"
    );
    // Give the prefetcher a moment to claim layers 1 and 2.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let LayerInput::Spooled(second) = feed.next().await.unwrap().unwrap() else {
        panic!("layer 1 should have been prefetched");
    };
    // The first 100 bytes are readable while the download is stuck.
    let mut reader = second.reader().unwrap();
    let head = tokio::task::spawn_blocking(move || {
        let mut head = vec![0u8; 100];
        std::io::Read::read_exact(&mut reader, &mut head).unwrap();
        (head, reader)
    })
    .await
    .unwrap();
    let blob = f.source.read_blob(&layers[1].0, None).unwrap();
    assert_eq!(head.0, blob[..100]);
    // Released, the rest follows and the download completes.
    gate.add_permits(10);
    let mut reader = head.1;
    let rest = tokio::task::spawn_blocking(move || {
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut rest).unwrap();
        rest
    })
    .await
    .unwrap();
    assert_eq!(rest, blob[100..]);
    let path = second.finished().await.unwrap();
    assert_eq!(std::fs::read(path).unwrap(), blob);
}

#[tokio::test]
async fn dropping_the_feed_wakes_blocked_spool_readers() {
    let f = three_layer_image().await;
    let image = manifest::parse_image("m", &f.source.read_blob(&f.digest, None).unwrap()).unwrap();
    let layers: Vec<(Digest, u64)> = image
        .layers()
        .iter()
        .map(|l| (Digest::parse(l.digest().as_ref()).unwrap(), l.size()))
        .collect();
    let source = Arc::new(GatedSource {
        inner: OciLayoutDir::open(&f.tmp.path().join("src")).unwrap(),
        open: 10,
        gate: Arc::new(tokio::sync::Semaphore::new(0)),
    });
    let mut feed = LayerFeed::start(source, layers, &f.tmp.path().join("spool"), 3)
        .await
        .unwrap();
    let _first = feed.next().await.unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let LayerInput::Spooled(second) = feed.next().await.unwrap().unwrap() else {
        panic!("layer 1 should have been prefetched");
    };
    let mut reader = second.reader().unwrap();
    let blocked = tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut all)
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    drop(feed);
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), blocked)
        .await
        .expect("the reader must not hang")
        .unwrap();
    assert!(result.unwrap_err().to_string().contains("cancelled"));
    assert!(second.finished().await.is_err());
}

#[tokio::test]
async fn closing_the_feed_waits_for_its_downloads() {
    let f = three_layer_image().await;
    let image = manifest::parse_image("m", &f.source.read_blob(&f.digest, None).unwrap()).unwrap();
    let layers: Vec<(Digest, u64)> = image
        .layers()
        .iter()
        .map(|l| (Digest::parse(l.digest().as_ref()).unwrap(), l.size()))
        .collect();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let source = Arc::new(GatedSource {
        inner: OciLayoutDir::open(&f.tmp.path().join("src")).unwrap(),
        open: 10,
        gate: gate.clone(),
    });
    let spool = f.tmp.path().join("spool");
    let mut feed = LayerFeed::start(source, layers, &spool, 3).await.unwrap();
    let _first = feed.next().await.unwrap().unwrap();
    // Layers 1 and 2 are spooling, stuck at the gate.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 2);
    tokio::time::timeout(std::time::Duration::from_secs(10), feed.close())
        .await
        .expect("close must not wait for blocked downloads");
    std::fs::remove_dir_all(&spool).unwrap();
    // Opening the gate now reaches no download: nothing writes again.
    gate.add_permits(10);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!exists(&spool));
}

#[tokio::test]
async fn nested_indexes_and_zero_layer_images() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    let w = LayoutWriter::create(&dir).await.unwrap();
    let empty = add_image(&w, &[], serde_json::json!({}), "arm64").await;
    let (inner, inner_bytes) = add_index(&w, &[(empty.0.clone(), empty.1.clone(), "arm64")]).await;
    // The outer entry has no platform: it says nothing about its children.
    let outer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": [{"mediaType": manifest::OCI_INDEX, "digest": inner, "size": inner_bytes.len()}],
    }))
    .unwrap();
    let outer_d = crate::oci::sha256_digest(&outer);
    w.write_blob_bytes(&outer, &outer_d).await.unwrap();
    let source = Arc::new(OciLayoutDir::open(&dir).unwrap());

    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let opts = GetOptions {
        platform: WantedPlatform::new(Some("linux"), Some("arm64"), None),
        ..options(&outer_d, Format::Rootfs)
    };
    download(source.clone(), &dest, &opts).await.unwrap();
    assert!(
        !exists(&dest.join("rootfs")),
        "zero layers: no rootfs directory"
    );
    assert!(exists(&dest.join("metadata.json")));

    let dest = tmp.path().join("dest-layout");
    std::fs::create_dir(&dest).unwrap();
    download(source, &dest, &options(&outer_d, Format::OciLayout))
        .await
        .unwrap();
    assert_eq!(std::fs::read(dest.join("oci/index.json")).unwrap(), outer);
    assert!(exists(
        &dest
            .join("oci/blobs/sha256")
            .join(inner.trim_start_matches("sha256:"))
    ));
    assert_eq!(verify(&dest.join("oci")).unwrap().images, 1);
}

/// Runs `f` on its own thread and runtime, failing the test when it takes
/// longer than `secs` (the walks below never yield, so a tokio timeout
/// could not interrupt them).
fn finishes_within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce(tokio::runtime::Runtime) -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _ = tx.send(f(rt));
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} did not finish within {secs}s"))
}

/// An index blob over `children` (no platforms), returned as (digest, bytes).
async fn add_plain_index(w: &LayoutWriter, children: &[(String, usize)]) -> (String, Vec<u8>) {
    let manifests: Vec<_> = children
        .iter()
        .map(|(d, size)| serde_json::json!({"mediaType": manifest::OCI_INDEX, "digest": d, "size": size}))
        .collect();
    let bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": manifests,
    }))
    .unwrap();
    let d = crate::oci::sha256_digest(&bytes);
    w.write_blob_bytes(&bytes, &d).await.unwrap();
    (d.to_string(), bytes)
}

/// 6 levels of indexes, each naming the one below 50 times, over one arm64
/// image: platform selection and the put layout walk must visit each index
/// once, not follow every reference (50^6 nodes).
#[test]
fn an_index_naming_a_nested_index_many_times_is_walked_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    let top = finishes_within(60, "writing the fixture", {
        let dir = dir.clone();
        move |rt| {
            rt.block_on(async {
                let w = LayoutWriter::create(&dir).await.unwrap();
                let img = add_image(&w, &[], serde_json::json!({}), "arm64").await;
                let mut level = add_index(&w, &[(img.0, img.1, "arm64")]).await;
                for _ in 0..6 {
                    let child = (level.0.clone(), level.1.len());
                    level = add_plain_index(&w, &vec![child; 50]).await;
                }
                w.write_index_bytes(&level.1).await.unwrap();
                level.0
            })
        }
    });
    // No amd64 image anywhere: every nested index is searched, once.
    let (source_dir, digest, dest) = (dir.clone(), top.clone(), tmp.path().join("d1"));
    let err = finishes_within(60, "platform selection", move |rt| {
        std::fs::create_dir(&dest).unwrap();
        let source = Arc::new(OciLayoutDir::open(&source_dir).unwrap());
        rt.block_on(download(source, &dest, &options(&digest, Format::Rootfs)))
    })
    .unwrap_err();
    assert!(err.to_string().contains("amd64"), "{err}");
    let (source_dir, digest, dest) = (dir.clone(), top.clone(), tmp.path().join("d2"));
    finishes_within(60, "platform selection", move |rt| {
        std::fs::create_dir(&dest).unwrap();
        let source = Arc::new(OciLayoutDir::open(&source_dir).unwrap());
        let opts = GetOptions {
            platform: WantedPlatform::new(Some("linux"), Some("arm64"), None),
            ..options(&digest, Format::Rootfs)
        };
        rt.block_on(download(source, &dest, &opts))
    })
    .unwrap();
    // put's layout walk: one image, 7 indexes.
    let source_dir = dir.clone();
    let layout_top = finishes_within(60, "the put layout walk", move |_| {
        OciLayoutDir::open(&source_dir).unwrap().top()
    })
    .unwrap();
    match layout_top {
        crate::image::load::LayoutTop::Index { nested, images, .. } => {
            assert_eq!((nested.len(), images.len()), (6, 1));
        }
        other => panic!("expected the index, got {other:?}"),
    }
}

/// More than `MAX_MANIFESTS` distinct manifests below one index are refused
/// with a message, by `in` (oci format) and by put's layout walk.
#[tokio::test]
async fn too_many_manifests_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    let w = LayoutWriter::create(&dir).await.unwrap();
    let mut children = Vec::new();
    for i in 0..=manifest::MAX_MANIFESTS {
        let (d, b) = add_image(&w, &[], serde_json::json!({"n": i}), "arm64").await;
        children.push((d, b.len()));
    }
    let manifests: Vec<_> = children
        .iter()
        .map(|(d, size)| serde_json::json!({"mediaType": manifest::OCI_MANIFEST, "digest": d, "size": size}))
        .collect();
    let bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": manifests,
    }))
    .unwrap();
    let top = crate::oci::sha256_digest(&bytes);
    w.write_blob_bytes(&bytes, &top).await.unwrap();
    w.write_index_bytes(&bytes).await.unwrap();
    let source = Arc::new(OciLayoutDir::open(&dir).unwrap());
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let err = download(source.clone(), &dest, &options(&top, Format::OciLayout))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than 1000 manifests"), "{err}");
    let err = source.top().unwrap_err().to_string();
    assert!(err.contains("more than 1000 manifests"), "{err}");
}
