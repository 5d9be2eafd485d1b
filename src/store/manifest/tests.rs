use super::*;
use crate::oci::sha256_digest;
use std::collections::BTreeMap;

#[test]
fn manifest_matches_registry_image_byte_for_byte() {
    let config = Descriptor {
        media_type: DOCKER_CONFIG.into(),
        digest: "sha256:c".into(),
        size: 10,
    };
    let layer = Descriptor {
        media_type: DOCKER_LAYER_GZIP.into(),
        digest: "sha256:l".into(),
        size: 20,
    };
    let got = String::from_utf8(docker_manifest(&config, &[layer], &BTreeMap::new())).unwrap();
    assert_eq!(
        got,
        r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":10,"digest":"sha256:c"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":20,"digest":"sha256:l"}]}"#
    );
}

#[test]
fn gzip_is_deterministic_and_hashes_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let a = gzip_to_file(&data[..], &dir.path().join("a")).unwrap();
    let b = gzip_to_file(&data[..], &dir.path().join("b")).unwrap();
    assert_eq!(a, b);
    let written = std::fs::read(dir.path().join("a")).unwrap();
    assert_eq!(a.0, sha256_digest(&written));
    assert_eq!(a.1, written.len() as u64);
    assert!(is_compressed(&written));
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&written[..])
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, data);
    assert!(!is_compressed(b"ustar"));
}

#[test]
fn block_parallel_gzip_is_one_valid_member_for_every_size() {
    let dir = tempfile::tempdir().unwrap();
    // Pseudo-random text-like data so blocks compress but not to nothing.
    let mut x: u32 = 1;
    let data: Vec<u8> = (0..(GZIP_BLOCK * 5 + 12345))
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            b"abcdefgh ij\n"[(x >> 16) as usize % 12]
        })
        .collect();
    for len in [0, 1, GZIP_BLOCK - 1, GZIP_BLOCK, GZIP_BLOCK + 1, data.len()] {
        let path = dir.path().join(format!("l{len}"));
        let (digest, size) = gzip_to_file(&data[..len], &path).unwrap();
        let written = std::fs::read(&path).unwrap();
        assert_eq!(digest, sha256_digest(&written));
        assert_eq!(size, written.len() as u64);
        // GzDecoder checks the CRC and size trailer, and that nothing
        // follows the member.
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&written[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back.len(), len);
        assert!(back == data[..len], "round trip of {len} bytes");
        if len > GZIP_BLOCK {
            // Independent blocks cost next to nothing in ratio.
            let mut one =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
            one.write_all(&data[..len]).unwrap();
            let one = one.finish().unwrap().len();
            assert!(
                written.len() < one + one / 100,
                "{len}: {} vs {one}",
                written.len()
            );
        }
    }
    // The system gzip agrees (when there is one).
    if let Ok(status) = std::process::Command::new("gzip")
        .arg("-t")
        .arg(dir.path().join(format!("l{}", data.len())))
        .status()
    {
        assert!(status.success());
    }
}
