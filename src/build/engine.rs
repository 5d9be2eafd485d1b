//! Docker Engine facts the build needs beyond BuildKit's `/grpc`.
//!
//! An Engine started with `--bridge=none` has no `bridge` network, and its
//! BuildKit then fails every `RUN` with "network bridge not found" unless the
//! build's network mode is `none` (test-world.md). We ask the Engine API
//! (`GET /networks/bridge` on its socket) once, so that a build that did not
//! choose a network still runs there.

use std::path::Path;

use unix_http::get_status;

/// Whether the Engine at `socket` has its default `bridge` network.
/// `None` when the Engine could not be asked (then nothing is changed).
pub async fn has_bridge(socket: &Path) -> Option<bool> {
    match get_status(socket, "/networks/bridge").await {
        Ok(200) => Some(true),
        Ok(404) => Some(false),
        Ok(other) => {
            tracing::debug!("GET /networks/bridge on the Engine answered {other}");
            None
        }
        Err(e) => {
            tracing::debug!("asking the Engine for its bridge network: {e}");
            None
        }
    }
}

/// A minimal HTTP/1 GET over a unix socket, returning only the status (the
/// body is drained and ignored). Kept here rather than pulling in another
/// client: one request per put.
mod unix_http {
    use std::path::Path;

    use hyper::body::Body;

    pub async fn get_status(socket: &Path, path: &str) -> std::io::Result<u16> {
        let stream = tokio::net::UnixStream::connect(socket).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty>(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)?;
        let driver = tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header("Host", "docker")
            .body(Empty)
            .map_err(std::io::Error::other)?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(std::io::Error::other)?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        while let Some(frame) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            if frame.is_err() {
                break;
            }
        }
        driver.abort();
        Ok(status)
    }

    /// An empty request body.
    pub struct Empty;

    impl Body for Empty {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>>
        {
            std::task::Poll::Ready(None)
        }
        fn is_end_stream(&self) -> bool {
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a dockerd this test does not start: set PUT_TEST_DOCKER_SOCK
    /// to a socket of one started with `--bridge=none` to run it.
    #[tokio::test]
    async fn engine_without_bridge_is_detected() {
        let Some(sock) = std::env::var_os("PUT_TEST_DOCKER_SOCK") else {
            eprintln!(
                "SKIP: set PUT_TEST_DOCKER_SOCK to a dockerd socket (started with --bridge=none)"
            );
            return;
        };
        assert_eq!(has_bridge(Path::new(&sock)).await, Some(false));
    }

    #[tokio::test]
    async fn no_engine_means_unknown() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(has_bridge(&dir.path().join("none.sock")).await, None);
    }
}
