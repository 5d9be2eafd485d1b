//! Digests: parsing `sha256:<hex>` safely (the hex becomes a file name, so it
//! is checked character by character) and verifying content while it streams.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

use super::{Error, Result};

/// Returns the 64-character hex part of `sha256:<hex>`.
///
/// Only lower-case hex is accepted: the hex names files in blob directories,
/// so anything else (a `/`, a `..`) must never get that far.
pub fn sha256_hex(digest: &str) -> Result<&str> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| Error::InvalidDigest(digest.to_owned()))?;
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(hex)
    } else {
        Err(Error::InvalidDigest(digest.to_owned()))
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Checks `bytes` against a digest and size.
pub fn verify_bytes(what: &str, bytes: &[u8], digest: &str, size: Option<u64>) -> Result<()> {
    if let Some(size) = size
        && bytes.len() as u64 != size
    {
        return Err(Error::SizeMismatch {
            what: what.to_owned(),
            expected: size,
            actual: bytes.len() as u64,
        });
    }
    let actual = sha256_digest(bytes);
    if actual != digest {
        return Err(Error::DigestMismatch {
            what: what.to_owned(),
            expected: digest.to_owned(),
            actual,
        });
    }
    Ok(())
}

/// Running sha256 and byte count over a stream.
#[derive(Default, Clone)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no bytes were seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `sha256:<hex>` of everything seen.
    pub fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.sha.finalize()))
    }

    /// Compares what was seen with the expected digest and size.
    pub fn verify(self, what: &str, digest: &str, size: u64) -> Result<()> {
        if self.len != size {
            return Err(Error::SizeMismatch {
                what: what.to_owned(),
                expected: size,
                actual: self.len,
            });
        }
        let actual = self.finish();
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: what.to_owned(),
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(())
    }
}

/// An [`AsyncRead`] that hashes what passes through and fails at EOF (or as
/// soon as too many bytes arrive) when the content is not what the
/// descriptor promised.
///
/// The failure is an `io::Error` of kind `InvalidData` wrapping our
/// [`Error`], so it travels through decompressors and tar parsers unchanged.
/// Readers of a blob must read it to EOF for the check to happen; the layer
/// pipeline drains what the tar parser leaves behind for that reason.
pub struct VerifyingReader<R> {
    inner: R,
    what: String,
    digest: String,
    size: u64,
    hasher: Option<Hasher>,
}

impl<R> VerifyingReader<R> {
    /// Wraps `inner`, which should yield exactly `size` bytes hashing to `digest`.
    pub fn new(inner: R, what: impl Into<String>, digest: impl Into<String>, size: u64) -> Self {
        VerifyingReader {
            inner,
            what: what.into(),
            digest: digest.into(),
            size,
            hasher: Some(Hasher::default()),
        }
    }
}

fn invalid(e: Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<R: AsyncRead + Unpin> AsyncRead for VerifyingReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let new = &buf.filled()[before..];
        let Some(hasher) = this.hasher.as_mut() else {
            // Already verified at EOF; a well-behaved inner reader keeps
            // returning EOF.
            return if new.is_empty() {
                Poll::Ready(Ok(()))
            } else {
                let extra = new.len() as u64;
                buf.set_filled(before);
                Poll::Ready(Err(invalid(Error::SizeMismatch {
                    what: this.what.clone(),
                    expected: this.size,
                    actual: this.size + extra,
                })))
            };
        };
        if new.is_empty() {
            let hasher = this.hasher.take().expect("checked just above");
            return Poll::Ready(
                hasher
                    .verify(&this.what, &this.digest, this.size)
                    .map_err(invalid),
            );
        }
        hasher.update(new);
        if hasher.len() > this.size {
            let actual = hasher.len();
            this.hasher = None;
            // Hand out nothing of a blob that is already known to be wrong.
            buf.set_filled(before);
            return Poll::Ready(Err(invalid(Error::SizeMismatch {
                what: this.what.clone(),
                expected: this.size,
                actual,
            })));
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn digest_parsing_refuses_paths() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(sha256_hex(&good).unwrap(), "a".repeat(64));
        for bad in [
            "sha256:../../etc/passwd".to_owned(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha512:{}", "a".repeat(64)),
            format!("sha256:{}/", "a".repeat(63)),
            String::new(),
        ] {
            assert!(
                matches!(sha256_hex(&bad), Err(Error::InvalidDigest(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn verifying_reader_accepts_and_rejects() {
        let data = b"hello world".to_vec();
        let digest = sha256_digest(&data);
        let mut out = Vec::new();
        VerifyingReader::new(&data[..], "blob", &digest, 11)
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert_eq!(out, data);

        let err = VerifyingReader::new(&b"hello worle"[..], "blob", &digest, 11)
            .read_to_end(&mut Vec::new())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("digest mismatch for blob"),
            "{err}"
        );

        let err = VerifyingReader::new(&b"hello"[..], "blob", &digest, 11)
            .read_to_end(&mut Vec::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("size mismatch"), "{err}");

        let err = VerifyingReader::new(&b"hello world!!"[..], "blob", &digest, 11)
            .read_to_end(&mut Vec::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("size mismatch"), "{err}");
    }
}
