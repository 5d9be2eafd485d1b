use super::*;
use std::os::unix::fs::symlink;

fn spec(src: &Path, dest: &str) -> LayerSpec {
    LayerSpec {
        src: src.to_path_buf(),
        dest: dest.into(),
        uid: 101,
        gid: 102,
        mode: None,
        dir_mode: Some(0o750),
        mtime: 1_700_000_000,
    }
}

fn entries(layer: &Path) -> Vec<(String, u32, u64, u64, u64, Vec<u8>)> {
    let gz = flate2::read::GzDecoder::new(File::open(layer).unwrap());
    let mut archive = tar::Archive::new(gz);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                data,
            )
        })
        .collect()
}

#[test]
fn sorted_owned_timestamped_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("site");
    std::fs::create_dir_all(src.join("b")).unwrap();
    std::fs::write(src.join("b/z.html"), "z").unwrap();
    std::fs::write(src.join("a.html"), "a").unwrap();
    std::fs::set_permissions(src.join("a.html"), std::fs::Permissions::from_mode(0o604)).unwrap();
    symlink("a.html", src.join("index.html")).unwrap();
    let out = dir.path().join("1.tar.gz");
    let layer = write_layer(&spec(&src, "usr/share/nginx/html"), &out).unwrap();
    let got = entries(&out);
    let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "usr/share/nginx/html/",
            "usr/share/nginx/html/a.html",
            "usr/share/nginx/html/b/",
            "usr/share/nginx/html/b/z.html",
            "usr/share/nginx/html/index.html",
        ]
    );
    assert!(
        got.iter()
            .all(|e| (e.2, e.3, e.4) == (101, 102, 1_700_000_000))
    );
    assert_eq!(got[0].1, 0o750);
    assert_eq!(got[1].1, 0o604);
    assert_eq!(got[3].5, b"z");
    // Hashes are those of the bytes written.
    let gz = std::fs::read(&out).unwrap();
    assert_eq!(crate::oci::sha256_digest(&gz), layer.digest.as_str());
    assert_eq!(layer.size, gz.len() as u64);
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(crate::oci::sha256_digest(&tar), layer.diff_id.as_str());
    // No name or mtime in the gzip header.
    assert_eq!(&gz[3..8], &[0, 0, 0, 0, 0]);
    // Touching the inputs' times changes nothing.
    let t = filetime::FileTime::from_unix_time(1, 0);
    filetime::set_file_times(src.join("b/z.html"), t, t).unwrap();
    let again = write_layer(&spec(&src, "usr/share/nginx/html"), &dir.path().join("2")).unwrap();
    assert_eq!((again.digest, again.diff_id), (layer.digest, layer.diff_id));
}

#[test]
fn a_file_at_its_destination_and_a_fifo_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nginx.conf");
    std::fs::write(&file, "events {}\n").unwrap();
    let mut s = spec(&file, "etc/nginx/nginx.conf");
    s.mode = Some(0o640);
    write_layer(&s, &dir.path().join("l")).unwrap();
    let got = entries(&dir.path().join("l"));
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].0.as_str(), got[0].1),
        ("etc/nginx/nginx.conf", 0o640)
    );

    let src = dir.path().join("with-fifo");
    std::fs::create_dir(&src).unwrap();
    nix::unistd::mkfifo(&src.join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let err = write_layer(&spec(&src, "x"), &dir.path().join("f")).unwrap_err();
    assert!(err.to_string().contains("pipe"), "{err}");
}

/// A full disk under the layer file is reported as that: the layer file's
/// path and ENOSPC, not the input file and "the compressor stopped".
#[test]
fn a_full_disk_names_the_layer_file_and_enospc() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.bin");
    // Incompressible, so the compressor writes while the tar side still reads.
    let mut bytes = vec![0u8; 8 << 20];
    let mut x: u32 = 1;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(&input, &bytes).unwrap();
    let spec = spec(&input, "big.bin");
    // /dev/full: every write fails with ENOSPC, as on a full TMPDIR.
    let err = write_layer(&spec, std::path::Path::new("/dev/full")).unwrap_err();
    let chain = crate::oci::error_chain(&err);
    assert!(
        chain.starts_with("writing the layer to /dev/full: No space left on device"),
        "{chain}"
    );
}
