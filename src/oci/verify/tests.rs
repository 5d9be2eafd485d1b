use super::*;
use crate::oci::sha256_digest;
use tokio::io::AsyncReadExt;

async fn read(data: &[u8], eof: bool) -> io::Result<Vec<u8>> {
    let digest = sha256_digest(b"hello world");
    let mut r = VerifyingReader::new(data, "blob", digest.as_str(), 11);
    if eof {
        r = r.truncation_is_eof();
    }
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.map(|_| out)
}

#[tokio::test]
async fn accepts_and_rejects() {
    assert_eq!(read(b"hello world", false).await.unwrap(), b"hello world");

    let err = read(b"hello worle", false).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(
        err.to_string().contains("digest mismatch for blob"),
        "{err}"
    );

    let err = read(b"hello", false).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("truncated"), "{err}");
    let err = read(b"hello", true).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

    let err = read(b"hello world!!", true).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("size mismatch"), "{err}");
}

#[test]
fn whole_bytes() {
    let d = sha256_digest(b"abc");
    assert!(verify_bytes("x", b"abc", &d, Some(3)).is_ok());
    assert!(matches!(
        verify_bytes("x", b"ab", &d, Some(3)),
        Err(VerifyError::Truncated { .. })
    ));
    assert!(matches!(
        verify_bytes("x", b"abd", &d, None),
        Err(VerifyError::DigestMismatch { .. })
    ));
}
