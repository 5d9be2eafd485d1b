//! The few Docker Engine API calls the build needs, over the Engine's unix
//! socket with hyper's HTTP/1.1 client: the Engine version (to report the
//! daemon and pick features), whether it has a `bridge` network,
//! `GET /images/{name}/get` (a docker-save tarball streamed, never buffered:
//! Docker 20.10 can only export into its own image store) and
//! `DELETE /images/{name}` (clean-up of that intermediate image).

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncRead;

use super::Error;
use super::transport::Empty;

/// API version used in paths; 1.41 is Docker 20.10's and is served by all
/// later Engines.
const API: &str = "/v1.41";

async fn request(
    socket: &Path,
    method: http::Method,
    path: &str,
) -> Result<http::Response<Incoming>, Error> {
    let what = format!("{method} {path} on docker engine {}", socket.display());
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| Error::DockerEngine {
        what: what.clone(),
        source,
    };
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| fail(Box::new(e)))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(Box::new(e)))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::builder()
        .method(method)
        .uri(format!("{API}{path}"))
        .header(http::header::HOST, "docker")
        .body(Empty::new())
        .map_err(|e| fail(Box::new(e)))?;
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| fail(Box::new(e)))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = read_all(response.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        // The Engine's errors are `{"message": "..."}`.
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
        return Err(Error::DockerApi {
            what,
            status: status.as_u16(),
            message,
        });
    }
    Ok(response)
}

async fn read_all(mut body: Incoming, limit: usize) -> Result<Vec<u8>, hyper::Error> {
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            out.extend_from_slice(&data);
            if out.len() > limit {
                break;
            }
        }
    }
    Ok(out)
}

/// The Engine's version (`GET /version` → `Version`, e.g. `20.10.24+dfsg1`).
pub async fn version(socket: &Path) -> Result<String, Error> {
    let response = request(socket, http::Method::GET, "/version").await?;
    let body = read_all(response.into_body(), 1 << 20)
        .await
        .map_err(|e| Error::DockerEngine {
            what: format!("reading the version of docker engine {}", socket.display()),
            source: Box::new(e),
        })?;
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| Error::DockerEngine {
            what: format!("decoding the version of docker engine {}", socket.display()),
            source: Box::new(e),
        })?;
    Ok(value
        .get("Version")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown")
        .to_owned())
}

/// Whether the Engine at `socket` has its default `bridge` network
/// (`GET /networks/bridge`); `None` when the Engine could not be asked.
///
/// An Engine started with `--bridge=none` has none, and its BuildKit then
/// fails every `RUN` with "network bridge not found" unless the build's
/// network mode is `none` (frontend attribute `force-network-mode`,
/// seen with Engine 20.10.24): a caller can choose that mode
/// for a build that did not choose a network.
pub async fn has_bridge(socket: &Path) -> Option<bool> {
    match request(socket, http::Method::GET, "/networks/bridge").await {
        Ok(response) => {
            let _ = read_all(response.into_body(), 1 << 20).await;
            Some(true)
        }
        Err(Error::DockerApi { status: 404, .. }) => Some(false),
        Err(e) => {
            tracing::debug!("asking the Engine for its bridge network: {e}");
            None
        }
    }
}

/// Streams `docker save` output of one image (name or id).
pub async fn export_image(
    socket: &Path,
    name: &str,
) -> Result<impl AsyncRead + Send + Unpin + 'static, Error> {
    let response = request(socket, http::Method::GET, &format!("/images/{name}/get")).await?;
    Ok(tokio_util::io::StreamReader::new(BodyStream(
        response.into_body(),
    )))
}

/// Removes an image (name or id) from the Engine's store.
pub async fn remove_image(socket: &Path, name: &str) -> Result<(), Error> {
    let response = request(socket, http::Method::DELETE, &format!("/images/{name}")).await?;
    let _ = read_all(response.into_body(), 1 << 20).await;
    Ok(())
}

/// A response body as a stream of data chunks (trailers skipped).
struct BodyStream(Incoming);

impl futures::Stream for BodyStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match Pin::new(&mut self.0).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Err(std::io::Error::other(e))));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests;
