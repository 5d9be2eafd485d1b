//! Checking content against a descriptor's digest and size: whole, or while
//! it streams ([`VerifyingReader`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::Hasher;

/// Content that is not what its descriptor promised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Content did not hash to the digest it was fetched or stored under.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being verified (a blob, a layout file).
        what: String,
        /// The digest the content should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },
    /// More bytes than the descriptor says.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was being verified.
        what: String,
        /// The size from the descriptor.
        expected: u64,
        /// The size read.
        actual: u64,
    },
    /// Fewer bytes than the descriptor says.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual} (truncated)")]
    Truncated {
        /// What was being verified.
        what: String,
        /// The size from the descriptor.
        expected: u64,
        /// The size read.
        actual: u64,
    },
}

/// Checks `bytes` against a digest and, when known, a size (the same
/// judgement, in the same order, as [`Hasher::verify`] on a stream).
pub fn verify_bytes(
    what: &str,
    bytes: &[u8],
    digest: &str,
    size: Option<u64>,
) -> Result<(), VerifyError> {
    let mut hasher = Hasher::default();
    hasher.update(bytes);
    hasher.verify(what, digest, size.unwrap_or(bytes.len() as u64))
}

/// An [`AsyncRead`] that hashes what passes through and fails at EOF (or as
/// soon as too many bytes arrive) when the content is not what the
/// descriptor promised. Nothing is buffered beyond the caller's buffer, and
/// nothing of a chunk that overflows the size is handed out.
///
/// The failure is an `io::Error` wrapping a [`VerifyError`], so it travels
/// through decompressors and tar parsers unchanged. Its kind is
/// `InvalidData`, except for a stream that ends early when
/// [`VerifyingReader::truncation_is_eof`] was set: that one is
/// `UnexpectedEof`, which the retry judgement treats as a cut connection.
/// Readers must read to EOF for the check to happen.
pub struct VerifyingReader<R> {
    inner: R,
    what: String,
    digest: String,
    size: u64,
    hasher: Option<Hasher>,
    truncation_kind: io::ErrorKind,
}

impl<R> std::fmt::Debug for VerifyingReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingReader")
            .field("what", &self.what)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl<R> VerifyingReader<R> {
    /// Wraps `inner`, which should yield exactly `size` bytes hashing to
    /// `digest`; `what` names the content in errors.
    pub fn new(inner: R, what: impl Into<String>, digest: impl Into<String>, size: u64) -> Self {
        VerifyingReader {
            inner,
            what: what.into(),
            digest: digest.into(),
            size,
            hasher: Some(Hasher::default()),
            truncation_kind: io::ErrorKind::InvalidData,
        }
    }

    /// Reports a stream that ends early as `UnexpectedEof` (a network
    /// download cut short), not `InvalidData`.
    pub fn truncation_is_eof(mut self) -> Self {
        self.truncation_kind = io::ErrorKind::UnexpectedEof;
        self
    }
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
                Poll::Ready(Err(invalid(VerifyError::SizeMismatch {
                    what: this.what.clone(),
                    expected: this.size,
                    actual: this.size + extra,
                })))
            };
        };
        if new.is_empty() {
            if buf.remaining() == 0 {
                // A zero-length read is not EOF.
                return Poll::Ready(Ok(()));
            }
            let hasher = this.hasher.take().expect("checked just above");
            return Poll::Ready(
                hasher
                    .verify(&this.what, &this.digest, this.size)
                    .map_err(|e| match e {
                        VerifyError::Truncated { .. } => io::Error::new(this.truncation_kind, e),
                        e => invalid(e),
                    }),
            );
        }
        hasher.update(new);
        if hasher.len() > this.size {
            let actual = hasher.len();
            this.hasher = None;
            // Hand out nothing of a blob that is already known to be wrong.
            buf.set_filled(before);
            return Poll::Ready(Err(invalid(VerifyError::SizeMismatch {
                what: this.what.clone(),
                expected: this.size,
                actual,
            })));
        }
        Poll::Ready(Ok(()))
    }
}

fn invalid(e: VerifyError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests;
