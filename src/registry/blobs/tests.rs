use super::*;
use tokio::io::AsyncReadExt;

fn reader(chunks: Vec<&'static [u8]>, digest_of: &[u8], size: u64) -> BlobReader {
    let stream = futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c))));
    let digest = sha256_digest(digest_of);
    blob_reader(Box::pin(stream), "r@d".into(), &digest, size)
}

#[tokio::test]
async fn verifies_while_streaming() {
    let mut out = Vec::new();
    reader(vec![b"hello ", b"world"], b"hello world", 11)
        .read_to_end(&mut out)
        .await
        .unwrap();
    assert_eq!(out, b"hello world");
}

#[tokio::test]
async fn rejects_truncation_mismatch_and_excess() {
    let mut out = Vec::new();
    let e = reader(vec![b"hello"], b"hello world", 11)
        .read_to_end(&mut out)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    let e = reader(vec![b"hellO world"], b"hello world", 11)
        .read_to_end(&mut out)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    let e = reader(vec![b"hello world!"], b"hello world", 11)
        .read_to_end(&mut out)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("size mismatch"), "{e}");
}
