//! A read-only registry on 127.0.0.1 that serves preloaded images to
//! BuildKit: `IMAGE_ARG_<name>` (oci-build-task's mechanism, where the
//! Dockerfile says `ARG <name>` + `FROM ${<name>}`) and docker-image's
//! `load_base(s)` (served as named contexts).
//!
//! Only what a puller needs: `GET /v2/`, `GET|HEAD /v2/<name>/manifests/<ref>`
//! (a tag returns the image's top manifest or index, a digest any manifest
//! of that image) and `GET|HEAD /v2/<name>/blobs/<digest>`, streamed. Plain
//! HTTP on loopback, which BuildKit and dockerd both accept without any
//! insecure-registry setting. It listens only on 127.0.0.1 (oci-build-task
//! listens on all interfaces; nothing else needs to reach it).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use hyper::{Method, Request, Response, StatusCode};

use super::{BlobReader, ImageStore};

/// A running loopback registry; stops when dropped.
pub struct ImageRegistry {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl ImageRegistry {
    /// Serves `images` (repository name → image) on 127.0.0.1, random port.
    pub async fn start(
        images: BTreeMap<String, Arc<dyn ImageStore>>,
    ) -> std::io::Result<ImageRegistry> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let images = Arc::new(images);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let images = images.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let images = images.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&images, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(ImageRegistry { addr, task })
    }

    /// `127.0.0.1:<port>`, the registry part of the references to hand out.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for ImageRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    images: &BTreeMap<String, Arc<dyn ImageStore>>,
    req: Request<hyper::body::Incoming>,
) -> Response<ServeBody> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "read-only registry",
        );
    }
    let path = req.uri().path();
    if path == "/v2/" || path == "/v2" {
        return json(StatusCode::OK, "{}");
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "not a registry path");
    };
    let (name, kind, reference) = match (rest.rfind("/manifests/"), rest.rfind("/blobs/")) {
        (Some(i), _) => (&rest[..i], "manifests", &rest[i + "/manifests/".len()..]),
        (None, Some(i)) => (&rest[..i], "blobs", &rest[i + "/blobs/".len()..]),
        _ => return error(StatusCode::NOT_FOUND, "NOT_FOUND", "not a registry path"),
    };
    let Some(image) = images.get(name) else {
        return error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        );
    };
    if kind == "manifests" {
        let manifest = if reference.starts_with("sha256:") {
            image.manifest(reference)
        } else {
            Some(image.top())
        };
        let Some(m) = manifest else {
            return error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown",
            );
        };
        let body = if head {
            ServeBody::Empty
        } else {
            ServeBody::Full(Some(m.bytes.clone()))
        };
        return Response::builder()
            .status(StatusCode::OK)
            .header("Content-Type", &m.media_type)
            .header("Docker-Content-Digest", &m.digest)
            .header("Content-Length", m.bytes.len())
            .body(body)
            .unwrap_or_else(|_| Response::new(ServeBody::Empty));
    }
    let Some(size) = image.blob_size(reference) else {
        return error(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
        );
    };
    let body = if head {
        ServeBody::Empty
    } else {
        match image.open_blob(reference).await {
            Ok(reader) => ServeBody::Reader {
                reader,
                remaining: size,
            },
            Err(e) => {
                tracing::warn!("image registry: opening blob {reference}: {e}");
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    "blob unreadable",
                );
            }
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/octet-stream")
        .header("Docker-Content-Digest", reference)
        .header("Content-Length", size)
        .body(body)
        .unwrap_or_else(|_| Response::new(ServeBody::Empty))
}

fn json(status: StatusCode, body: &'static str) -> Response<ServeBody> {
    let mut r = Response::new(ServeBody::Full(Some(Bytes::from_static(body.as_bytes()))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        "Docker-Distribution-API-Version",
        hyper::header::HeaderValue::from_static("registry/2.0"),
    );
    r
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<ServeBody> {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string();
    let mut r = Response::new(ServeBody::Full(Some(Bytes::from(body))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Response bodies: nothing, bytes, or a streamed blob.
pub enum ServeBody {
    /// HEAD responses.
    Empty,
    /// Small bodies.
    Full(Option<Bytes>),
    /// A blob read in chunks.
    Reader {
        /// The blob.
        reader: BlobReader,
        /// Bytes still expected (a short blob is an error, not a short body).
        remaining: u64,
    },
}

impl Body for ServeBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            ServeBody::Empty => Poll::Ready(None),
            ServeBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ServeBody::Reader { reader, remaining } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let mut buf = BytesMut::with_capacity(64 * 1024);
                match tokio_util::io::poll_read_buf(Pin::new(reader), cx, &mut buf) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
                    Poll::Ready(Ok(0)) => Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "blob shorter than its descriptor",
                    )))),
                    Poll::Ready(Ok(n)) => {
                        *remaining = remaining.saturating_sub(n as u64);
                        Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ServeBody::Empty => true,
            ServeBody::Full(b) => b.is_none(),
            ServeBody::Reader { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ServeBody::Empty => SizeHint::with_exact(0),
            ServeBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ServeBody::Reader { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}

#[cfg(test)]
mod tests;
