//! A scripted HTTP/1.1 server on 127.0.0.1 for registries that lie, answer
//! out of order or refuse: each test writes the raw responses
//! ([`response`]) and checks the requests it saw ([`FakeServer::log`]), as
//! registry-image's suite does with ghttp.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request as the fake server saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// `GET`, `HEAD`...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    /// A header value by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the fake server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Writes these raw bytes and closes the connection.
    Close(Vec<u8>),
    /// Writes these raw bytes (say, a head and part of a body), then sends
    /// nothing more until the client hangs up: a registry that stalls.
    Stall(Vec<u8>),
}

type Handler = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

/// A scripted HTTP/1.1 server on 127.0.0.1: `handler` returns the raw
/// response bytes for each request (one request per connection). Stops when
/// dropped.
pub struct FakeServer {
    /// `127.0.0.1:PORT`
    pub host: String,
    /// Every request received, in order.
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Starts serving with `handler`.
    pub async fn start(
        handler: impl Fn(&SeenRequest) -> Vec<u8> + Send + Sync + 'static,
    ) -> FakeServer {
        Self::start_with(move |req| Reply::Close(handler(req))).await
    }

    /// Starts serving with `handler`, which may also stall ([`Reply`]).
    pub async fn start_with(
        handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let host = listener.local_addr().expect("local addr").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let handler = handler.clone();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        // A TLS ClientHello (the client's https probe): hang
                        // up, as a plain-HTTP registry's failed handshake would.
                        if buf.first() == Some(&0x16) {
                            return;
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let mut lines = head.split("\r\n");
                    let mut first = lines.next().unwrap_or_default().split(' ');
                    let req = SeenRequest {
                        method: first.next().unwrap_or_default().to_owned(),
                        path: first.next().unwrap_or_default().to_owned(),
                        headers: lines
                            .take_while(|l| !l.is_empty())
                            .filter_map(|l| l.split_once(':'))
                            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                            .collect(),
                    };
                    seen.lock().expect("seen lock").push(req.clone());
                    match handler(&req) {
                        Reply::Close(resp) => {
                            let _ = sock.write_all(&resp).await;
                            let _ = sock.shutdown().await;
                        }
                        Reply::Stall(resp) => {
                            let _ = sock.write_all(&resp).await;
                            // Until the client gives up and closes.
                            while let Ok(n) = sock.read(&mut chunk).await {
                                if n == 0 {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        FakeServer { host, seen, task }
    }

    /// Requests seen so far as `METHOD path`.
    pub fn log(&self) -> Vec<String> {
        self.seen
            .lock()
            .expect("seen lock")
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

/// A raw HTTP response with `Connection: close`.
pub fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    let mut has_length = false;
    for (n, v) in headers {
        has_length |= n.eq_ignore_ascii_case("content-length");
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if !has_length {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn responses_get_a_content_length_unless_they_have_one() {
        let text = String::from_utf8(response("200 OK", &[("X-A", "b")], b"body")).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nConnection: close\r\nX-A: b\r\nContent-Length: 4\r\n\r\nbody"
        );
        let text = String::from_utf8(response("200 OK", &[("content-length", "9")], b"")).unwrap();
        assert_eq!(text.matches("ength").count(), 1, "{text}");
    }

    #[tokio::test]
    async fn answers_with_the_script_and_records_requests() {
        let server = FakeServer::start(|req| {
            let agent = req.header("user-agent").unwrap_or("none").to_owned();
            response("201 Created", &[], agent.as_bytes())
        })
        .await;
        let mut sock = tokio::net::TcpStream::connect(&server.host).await.unwrap();
        sock.write_all(b"PUT /v2/x?y=1 HTTP/1.1\r\nUser-Agent: test\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        sock.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 201 Created\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\ntest"), "{answer}");
        assert_eq!(server.log(), ["PUT /v2/x?y=1"]);
    }
}
