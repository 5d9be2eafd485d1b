//! A recording, fault-injecting HTTP proxy in front of a plain registry, for
//! what a well-behaved peer cannot show: the requests a step makes, and how it
//! copes with `429 Too Many Requests` (registry-image's rate-limit
//! retry).
//!
//! Each request is forwarded with `Connection: close` so that the registry
//! ends its response by closing, and every request arrives on a fresh
//! connection where the proxy can see it; bodies are copied through untouched.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One injected failure rule.
struct Rule {
    method: Option<String>,
    path_contains: String,
    remaining: usize,
    status: u16,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    requests: Vec<String>,
}

/// A running proxy; lives until the test binary exits.
pub struct Proxy {
    /// `127.0.0.1:PORT` to use instead of the registry's host.
    pub host: String,
    state: Arc<Mutex<State>>,
}

impl Proxy {
    /// A proxy forwarding to the plain-HTTP registry at `upstream`.
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let host = listener.local_addr().expect("proxy address").to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let upstream = upstream.to_string();
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    let _ = serve(client, &upstream, &state);
                });
            }
        });
        Proxy { host, state }
    }

    /// Answers the next `times` requests whose method is `method` (any when
    /// `None`) and whose path contains `path_contains` with `status`.
    pub fn fail(&self, method: Option<&str>, path_contains: &str, times: usize, status: u16) {
        self.lock().rules.push(Rule {
            method: method.map(String::from),
            path_contains: path_contains.to_string(),
            remaining: times,
            status,
        });
    }

    /// Every request seen so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn serve(client: TcpStream, upstream: &str, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if !line.to_ascii_lowercase().starts_with("connection:") {
            headers.push(line);
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let injected = {
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        state.requests.push(format!("{method} {path}"));
        state
            .rules
            .iter_mut()
            .find(|r| {
                r.remaining > 0
                    && r.method.as_deref().is_none_or(|m| m == method)
                    && path.contains(&r.path_contains)
            })
            .map(|r| {
                r.remaining -= 1;
                r.status
            })
    };
    let mut out = client.try_clone()?;
    if let Some(status) = injected {
        let code = match status {
            429 => "TOOMANYREQUESTS",
            404 => "MANIFEST_UNKNOWN",
            401 => "UNAUTHORIZED",
            _ => "UNKNOWN",
        };
        let body = if method == "HEAD" {
            String::new()
        } else {
            format!(r#"{{"errors":[{{"code":"{code}","message":"injected by the test proxy"}}]}}"#)
        };
        write!(
            out,
            "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        out.flush()?;
        let _ = out.shutdown(Shutdown::Both);
        return Ok(());
    }
    let mut up = TcpStream::connect(upstream)?;
    let mut head = request_line;
    for h in headers {
        head.push_str(&h);
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes())?;
    // The rest of the client's stream (a request body) goes upstream as is.
    let mut up_writer = up.try_clone()?;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut up_writer);
    });
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
    }
    let _ = out.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
    Ok(())
}
