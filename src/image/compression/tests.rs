use super::*;
use std::io::Write;

fn payload() -> Vec<u8> {
    (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect()
}

fn roundtrip(blob: Vec<u8>, expect: Compression) {
    // One byte per read: the sniffer must not depend on read sizes.
    struct Trickle(Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }
    let mut d = decompress(Trickle(Cursor::new(blob))).unwrap();
    assert_eq!(d.compression(), expect);
    let mut out = Vec::new();
    d.read_to_end(&mut out).unwrap();
    assert_eq!(out, payload());
    d.finish().unwrap();
}

#[test]
fn gzip_zstd_and_plain_are_recognised() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&payload()).unwrap();
    roundtrip(gz.finish().unwrap(), Compression::Gzip);
    roundtrip(
        zstd::encode_all(&payload()[..], 1).unwrap(),
        Compression::Zstd,
    );
    roundtrip(payload(), Compression::None);
}

#[test]
fn truncated_gzip_is_an_error() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&payload()).unwrap();
    let mut blob = gz.finish().unwrap();
    blob.truncate(blob.len() / 2);
    let mut d = decompress(Cursor::new(blob)).unwrap();
    assert!(d.read_to_end(&mut Vec::new()).is_err());
}

#[test]
fn truncated_zstd_is_an_error() {
    let mut blob = zstd::encode_all(&payload()[..], 1).unwrap();
    blob.truncate(blob.len() - 3);
    let mut d = decompress(Cursor::new(blob)).unwrap();
    assert!(d.read_to_end(&mut Vec::new()).is_err());
}

#[test]
fn short_and_empty_streams_are_plain() {
    assert_eq!(Compression::sniff(&[]), Compression::None);
    assert_eq!(Compression::sniff(&[0x1f]), Compression::None);
    let d = decompress(Cursor::new(vec![0x28, 0xb5])).unwrap();
    assert_eq!(d.compression(), Compression::None);
}
