//! [`BlobReader`]: a blob download as `AsyncRead` that hashes and counts
//! while streaming (nothing buffered beyond one network chunk) and turns any
//! excess, truncation or digest mismatch into an io error no later than EOF.
//! A consumer that reads to EOF without error has exactly the blob it asked
//! for.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::io::StreamReader;

type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// A verified streaming blob download.
pub struct BlobReader {
    inner: StreamReader<ByteStream, Bytes>,
    hasher: Sha256,
    name: String,
    digest: String,
    size: u64,
    read: u64,
    verified: bool,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("blob", &self.name)
            .field("size", &self.size)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl BlobReader {
    /// Wraps `stream`, expected to yield `size` bytes hashing to `digest`;
    /// `name` (`repo@digest`) is used in errors.
    pub fn new(stream: ByteStream, name: String, digest: String, size: u64) -> BlobReader {
        BlobReader {
            inner: StreamReader::new(stream),
            hasher: Sha256::new(),
            name,
            digest,
            size,
            read: 0,
            verified: false,
        }
    }

    fn check_eof(&mut self) -> io::Result<()> {
        if self.read < self.size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "blob {} truncated: got {} of {} bytes",
                    self.name, self.read, self.size
                ),
            ));
        }
        let actual = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        if actual != self.digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {} digest mismatch: got {actual}", self.name),
            ));
        }
        self.verified = true;
        Ok(())
    }
}

impl AsyncRead for BlobReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.verified || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if new.is_empty() {
                    return Poll::Ready(self.check_eof());
                }
                let n = new.len() as u64;
                let this = &mut *self;
                this.hasher.update(new);
                this.read += n;
                if this.read > this.size {
                    // Hand out nothing of an oversized blob's excess chunk.
                    buf.set_filled(before);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "blob {} is larger than its descriptor's {} bytes",
                            this.name, this.size
                        ),
                    )));
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn reader(chunks: Vec<&'static [u8]>, digest_of: &[u8], size: u64) -> BlobReader {
        let stream = futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c))));
        let digest = super::super::client::sha256_digest(digest_of);
        BlobReader::new(Box::pin(stream), "r@d".into(), digest, size)
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
        assert!(e.to_string().contains("larger"), "{e}");
    }
}
