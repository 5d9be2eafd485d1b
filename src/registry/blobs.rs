//! Blobs: whole small ones (configs) verified, streamed big ones through
//! [`BlobReader`], which hashes and counts while streaming (nothing buffered
//! beyond one network chunk) and turns any excess, truncation or digest
//! mismatch into an io error no later than EOF (oci-client checks neither
//! size nor digest of a stream); and pushes with ggcr's request pattern.
//! A consumer that reads to EOF without error has exactly the blob it asked
//! for.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use tokio::io::AsyncRead;
use tokio_util::io::StreamReader;
use tracing::debug;

use super::auth::resolve_url;
use super::client::Client;
use super::error::{Error, Result};
use crate::oci::{Digest, VerifyingReader, sha256_digest};

type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// A verified streaming blob download: [`VerifyingReader`] over the
/// response body, with a stream that ends early reported as
/// `UnexpectedEof` (a cut connection, which the retry loop retries).
pub type BlobReader = VerifyingReader<StreamReader<ByteStream, Bytes>>;

/// Wraps `stream`, expected to yield `size` bytes hashing to `digest`;
/// `name` (`repo@digest`) is used in errors.
pub fn blob_reader(stream: ByteStream, name: String, digest: &Digest, size: u64) -> BlobReader {
    VerifyingReader::new(StreamReader::new(stream), name, digest.as_str(), size).truncation_is_eof()
}

/// Read size for streamed blob uploads.
const UPLOAD_CHUNK: usize = 256 * 1024;

/// When a streamed upload last handed the registry a chunk.
struct Progress {
    start: Instant,
    last_ms: AtomicU64,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Runs an upload request until it answers, or fails it with
/// [`Error::Stalled`] (transient) once `idle` passed without the registry
/// taking a chunk of the body or, after the last one, answering: the idle
/// timeout of downloads, measured on upload progress.
async fn until_idle<T>(
    request: impl Future<Output = Result<T>>,
    progress: &Progress,
    idle: Duration,
    what: impl Fn() -> String,
) -> Result<T> {
    tokio::pin!(request);
    loop {
        let deadline = progress.last() + idle;
        tokio::select! {
            result = &mut request => return result,
            () = tokio::time::sleep_until(deadline.into()) => {
                if progress.last() + idle <= Instant::now() {
                    return Err(Error::Stalled { request: what(), idle });
                }
            }
        }
    }
}

impl Client {
    async fn blob_response(&self, digest: &Digest) -> Result<(String, reqwest::Response)> {
        let session = self.session().await?;
        let url = self.url(&session, &format!("blobs/{digest}"));
        let resp = self.send(Method::GET, &url, HeaderMap::new(), None).await?;
        if !resp.status().is_success() {
            return Err(Error::from_response(&Method::GET, &url, resp).await);
        }
        Ok((url, resp))
    }

    /// A small blob (config), whole and verified.
    pub async fn fetch_blob(&self, digest: &Digest) -> Result<Bytes> {
        let (url, resp) = self.blob_response(digest).await?;
        let bytes = super::client::read_limited(
            resp,
            &format!("GET {url}"),
            "blob",
            super::client::MAX_CONFIG_BYTES,
        )
        .await?;
        let actual = sha256_digest(&bytes);
        if actual != *digest {
            return Err(Error::DigestMismatch {
                what: "blob",
                reference: format!("{}@{digest}", self.repo.qualified()),
                actual: actual.into_string(),
            });
        }
        Ok(bytes)
    }

    /// A streaming reader of blob `digest` of `size` bytes; it fails with an
    /// io error (at the latest at EOF) on excess, truncation or digest
    /// mismatch, so a consumer never sees a silently wrong blob complete.
    pub async fn blob_reader(&self, digest: &Digest, size: u64) -> Result<BlobReader> {
        let (url, resp) = self.blob_response(digest).await?;
        // A complete response of another length than the descriptor's is
        // wrong for good: asking again gets the same bytes, so fail now
        // rather than retry a truncation for an hour.
        if let Some(len) = resp.content_length()
            && len != size
        {
            return Err(Error::Protocol {
                request: format!("GET {url}"),
                detail: format!(
                    "the registry sends {len} bytes (Content-Length) for blob {digest}, whose descriptor says {size}"
                ),
            });
        }
        // A stall mid-blob (the client's idle-read timeout) is an io
        // `TimedOut`, which the retry loop treats as transient.
        let idle = self.tls.read_timeout();
        let stream = resp.bytes_stream().map_err(move |e| {
            if e.is_timeout() {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the registry sent nothing for {}s (source.registry_timeout)",
                        idle.as_secs_f64()
                    ),
                )
            } else {
                io::Error::other(e)
            }
        });
        Ok(blob_reader(
            Box::pin(stream),
            format!("{}@{digest}", self.repo.qualified()),
            digest,
            size,
        ))
    }

    /// Whether blob `digest` exists in the repository.
    pub async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        let session = self.session().await?;
        let url = self.url(&session, &format!("blobs/{digest}"));
        let resp = self
            .send(Method::HEAD, &url, HeaderMap::new(), None)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(Error::from_response(&Method::HEAD, &url, resp).await),
        }
    }

    /// Uploads blob `digest` (`size` bytes from `body`) unless the registry
    /// already has it (a HEAD first; see [`Client::upload_blob`]).
    pub async fn push_blob(
        &self,
        digest: &Digest,
        size: u64,
        body: impl AsyncRead + Send + Unpin + 'static,
    ) -> Result<()> {
        if self.blob_exists(digest).await? {
            debug!(%digest, "blob exists, skipping upload");
            return Ok(());
        }
        self.upload_blob(digest, size, body).await
    }

    /// Uploads blob `digest` (`size` bytes from `body`) without asking
    /// whether the registry has it, for callers that just did:
    /// POST → PATCH (streamed) → PUT `?digest=`, the request pattern of
    /// ggcr. The registry verifies the digest on the final PUT.
    pub async fn upload_blob(
        &self,
        digest: &Digest,
        size: u64,
        body: impl AsyncRead + Send + Unpin + 'static,
    ) -> Result<()> {
        let session = self.session().await?;
        let url = self.url(&session, "blobs/uploads/");
        let resp = self
            .send(Method::POST, &url, HeaderMap::new(), None)
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Error::from_response(&Method::POST, &url, resp).await);
        }
        let location = self.location(&url, &Method::POST, &resp)?;

        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        let digest_owned = digest.to_string();
        let progress = Arc::new(Progress::new());
        let touched = progress.clone();
        // 256 KiB reads: ReaderStream's 4 KiB default makes a large upload
        // tens of thousands of tiny body frames for a large layer.
        let stream = tokio_util::io::ReaderStream::with_capacity(body, UPLOAD_CHUNK)
            .inspect_ok(move |_| touched.touch())
            .map_err(move |source| Error::Read {
                digest: digest_owned.clone(),
                source,
            });
        let resp = until_idle(
            self.send(
                Method::PATCH,
                &location,
                headers,
                Some(reqwest::Body::wrap_stream(stream)),
            ),
            &progress,
            self.tls.read_timeout(),
            || format!("PATCH {location}"),
        )
        .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Error::from_response(&Method::PATCH, &location, resp).await);
        }
        let location = self.location(&location, &Method::PATCH, &resp)?;

        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={digest}");
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
        let resp = self.send(Method::PUT, &put, headers, None).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(Error::from_response(&Method::PUT, &put, resp).await);
        }
        Ok(())
    }

    /// Asks the registry to link blob `digest` from repository `from` (a
    /// path on the same registry) into this one, without sending its bytes
    /// (distribution spec, "Mounting a blob from another repository").
    /// `Ok(false)` when the registry declines (it may, for instance when the
    /// token does not cover `from`): it then opens an upload instead, which
    /// is cancelled here, and the caller uploads the blob.
    pub async fn mount_blob(&self, digest: &Digest, from: &str) -> Result<bool> {
        let session = self.session().await?;
        // `from` is a validated repository path (`[a-z0-9._/-]`) and the
        // digest is `sha256:<hex>`: neither needs escaping in a query.
        let url = format!(
            "{}?mount={digest}&from={from}",
            self.url(&session, "blobs/uploads/")
        );
        let resp = self
            .send(Method::POST, &url, HeaderMap::new(), None)
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Ok(upload) = self.location(&url, &Method::POST, &resp) {
                    // Best effort: an abandoned upload expires on its own.
                    let _ = self
                        .send(Method::DELETE, &upload, HeaderMap::new(), None)
                        .await;
                }
                Ok(false)
            }
            _ => Err(Error::from_response(&Method::POST, &url, resp).await),
        }
    }

    fn location(&self, url: &str, method: &Method, resp: &reqwest::Response) -> Result<String> {
        let missing = || Error::Protocol {
            request: format!("{method} {url}"),
            detail: "upload response has no valid Location header".into(),
        };
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(missing)?;
        resolve_url(url, loc).ok_or_else(missing)
    }
}

#[cfg(test)]
mod tests;
