//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1 in front of a plain-HTTP
//! registry (tokio + hyper), for the fault table (`tests/it/faults.rs`).
//!
//! Requests pass through untouched, `Host` included, so the registry's upload
//! `Location`s point back at the proxy, until a [`Rule`] matches: its method
//! (any when `None`) and path regex (path and query); it fires once, on the
//! first request it matches. That request then gets the rule's [`Fault`]
//! instead. Every request and every fault applied is
//! recorded, so a test can tell that its fault really fired.
//!
//! Faults that must not change the registry (a status, a reset) answer
//! without forwarding; faults on a response forward first, so the registry
//! did its part and only the answer is damaged. One runtime with two worker
//! threads serves every proxy of the test binary; proxies live until it exits.

use std::convert::Infallible;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_LENGTH, HeaderValue, RETRY_AFTER, TRANSFER_ENCODING};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use regex::Regex;
use tokio::sync::Notify;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// What a matching request gets instead of a clean pass-through.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Answered with `status`, a registry error body and, when given,
    /// `Retry-After: <secs>`; the request never reaches the registry.
    Status {
        /// 429, 500, 503, ...
        status: u16,
        /// Seconds for `Retry-After`.
        retry_after: Option<u64>,
    },
    /// The connection is closed with a TCP reset (`SO_LINGER` 0) before
    /// any answer; the request never reaches the registry.
    Reset,
    /// A request with a body (an upload chunk) reaches the registry with only
    /// its first half (Content-Length adjusted). Otherwise the response keeps
    /// its Content-Length but only its first half is sent before the
    /// connection closes.
    Truncate,
    /// The response head and the first half of its body are sent, then the
    /// connection idles for this long; a response without a body idles
    /// before its head.
    Stall(Duration),
    /// One byte in the middle of the request body (when there is one) or of
    /// the response body is inverted, the length unchanged.
    Corrupt,
    /// The registry's status and headers, then a body that never ends
    /// (chunked, no Content-Length).
    Endless,
    /// The registry's status and headers, then a body of this many bytes
    /// with a matching Content-Length.
    Oversized(usize),
}

impl Fault {
    /// A short name for tables.
    pub fn name(&self) -> String {
        match self {
            Fault::Status {
                status,
                retry_after: Some(s),
            } => format!("{status} (Retry-After: {s})"),
            Fault::Status { status, .. } => status.to_string(),
            Fault::Reset => "reset".into(),
            Fault::Truncate => "truncate".into(),
            Fault::Stall(_) => "stall".into(),
            Fault::Corrupt => "corrupt".into(),
            Fault::Endless => "endless body".into(),
            Fault::Oversized(n) => format!("oversized ({} MiB)", n >> 20),
        }
    }
}

/// One injection rule: which requests and which fault; it fires once.
#[derive(Clone, Debug)]
pub struct Rule {
    method: Option<String>,
    path: Regex,
    fault: Fault,
    fired: bool,
}

impl Rule {
    /// `fault` on the first request whose method is `method` (any when
    /// `None`) and whose path (with query) matches the regex `path`.
    pub fn new(method: Option<&str>, path: &str, fault: Fault) -> Rule {
        Rule {
            method: method.map(String::from),
            path: Regex::new(path).unwrap_or_else(|e| panic!("fault rule regex {path:?}: {e}")),
            fault,
            fired: false,
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method) && self.path.is_match(path)
    }
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    requests: Vec<String>,
    fired: Vec<String>,
}

/// A running proxy; lives until the test binary exits.
pub struct FaultProxy {
    /// `127.0.0.1:PORT` to use instead of the registry's host.
    pub host: String,
    state: Arc<Mutex<State>>,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .expect("starting the fault proxy runtime")
    })
}

impl FaultProxy {
    /// A proxy forwarding to the plain-HTTP registry at `upstream` (`host:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the fault proxy");
        let host = listener.local_addr().expect("proxy address").to_string();
        listener
            .set_nonblocking(true)
            .expect("nonblocking proxy listener");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let upstream: Arc<str> = upstream.into();
        let rt = runtime();
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(listener).expect("tokio proxy listener")
        };
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve_connection(
                    stream,
                    Arc::clone(&upstream),
                    Arc::clone(&shared),
                ));
            }
        });
        FaultProxy { host, state }
    }

    /// Adds a rule; rules are tried in the order they were added.
    pub fn inject(&self, rule: Rule) -> &Self {
        self.lock().rules.push(rule);
        self
    }

    /// Every request seen so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// Every fault applied so far, as `<fault> METHOD /path?query`.
    pub fn fired(&self) -> Vec<String> {
        self.lock().fired.clone()
    }

    /// Forgets rules, recorded requests and faults.
    pub fn reset(&self) {
        let mut state = self.lock();
        state.rules.clear();
        state.requests.clear();
        state.fired.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves one client connection; a [`Fault::Reset`] ends it with a RST.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    upstream: Arc<str>,
    state: Arc<Mutex<State>>,
) {
    let fd = stream.as_raw_fd();
    let reset = Arc::new(Notify::new());
    let signal = Arc::clone(&reset);
    let service = hyper::service::service_fn(move |req| {
        handle(
            req,
            Arc::clone(&upstream),
            Arc::clone(&state),
            Arc::clone(&signal),
        )
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = reset.notified() => {
            let linger = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: `fd` belongs to the stream owned by `conn`, which is
            // still alive here; SO_LINGER 0 makes the close below a RST.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        }
    }
}

/// The fault for this request, if a rule fires, after recording it.
fn pick(state: &Mutex<State>, method: &str, path: &str) -> Option<Fault> {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    state.requests.push(format!("{method} {path}"));
    let mut chosen = None;
    for rule in state.rules.iter_mut() {
        if !rule.matches(method, path) {
            continue;
        }
        if chosen.is_none() && !rule.fired {
            rule.fired = true;
            chosen = Some(rule.fault.clone());
        }
    }
    if let Some(fault) = &chosen {
        state
            .fired
            .push(format!("{} {method} {path}", fault.name()));
    }
    chosen
}

async fn handle(
    req: Request<Incoming>,
    upstream: Arc<str>,
    state: Arc<Mutex<State>>,
    reset: Arc<Notify>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let fault = pick(&state, &method, &path);
    let is_head = req.method() == hyper::Method::HEAD;
    let response = match fault {
        None => forward(&upstream, req.map(|b| b.map_err(BoxError::from).boxed())).await,
        Some(Fault::Status {
            status,
            retry_after,
        }) => Ok(status_response(status, retry_after, is_head)),
        Some(Fault::Reset) => {
            reset.notify_one();
            // The connection is dropped under this future.
            std::future::pending::<()>().await;
            unreachable!("a reset connection is never answered")
        }
        Some(fault @ (Fault::Truncate | Fault::Corrupt)) => {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map(|c| c.to_bytes());
            match body {
                Ok(body) if !body.is_empty() => {
                    let body = damage(&fault, body);
                    let mut parts = parts;
                    parts.headers.remove(TRANSFER_ENCODING);
                    parts.headers.insert(CONTENT_LENGTH, body.len().into());
                    forward(&upstream, Request::from_parts(parts, full(body))).await
                }
                Ok(_) => {
                    match forward(&upstream, Request::from_parts(parts, full(Bytes::new()))).await {
                        Ok(resp) => match damage_response(fault, resp).await {
                            Ok(Some(resp)) => Ok(resp),
                            // Nothing to damage: the connection ends unanswered.
                            Ok(None) => {
                                reset.notify_one();
                                std::future::pending::<()>().await;
                                unreachable!("a reset connection is never answered")
                            }
                            Err(e) => Err(e),
                        },
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e.into()),
            }
        }
        Some(Fault::Stall(idle)) => {
            match forward(&upstream, req.map(|b| b.map_err(BoxError::from).boxed())).await {
                Ok(resp) => Ok(stall(resp, idle).await),
                Err(e) => Err(e),
            }
        }
        Some(fault @ (Fault::Endless | Fault::Oversized(_))) => {
            match forward(&upstream, req.map(|b| b.map_err(BoxError::from).boxed())).await {
                Ok(resp) => {
                    let (mut parts, _) = resp.into_parts();
                    parts.headers.remove(CONTENT_LENGTH);
                    parts.headers.remove(TRANSFER_ENCODING);
                    let body = match fault {
                        Fault::Oversized(n) => {
                            parts.headers.insert(CONTENT_LENGTH, n.into());
                            full(Bytes::from(vec![b' '; n]))
                        }
                        _ => endless(),
                    };
                    Ok(Response::from_parts(parts, body))
                }
                Err(e) => Err(e),
            }
        }
    };
    Ok(response.unwrap_or_else(|e| {
        let mut resp = Response::new(full(Bytes::from(format!("fault proxy: {e}"))));
        *resp.status_mut() = StatusCode::BAD_GATEWAY;
        resp
    }))
}

/// Sends `req` to the registry on a fresh connection.
async fn forward(upstream: &str, req: Request<Body>) -> Result<Response<Body>, BoxError> {
    let tcp = tokio::net::TcpStream::connect(upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await?;
    Ok(resp.map(|b| b.map_err(BoxError::from).boxed()))
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn status_response(status: u16, retry_after: Option<u64>, is_head: bool) -> Response<Body> {
    let code = match status {
        429 => "TOOMANYREQUESTS",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    };
    let text =
        format!(r#"{{"errors":[{{"code":"{code}","message":"injected by the fault proxy"}}]}}"#);
    let len = text.len();
    let body = if is_head {
        Empty::new().map_err(|never| match never {}).boxed()
    } else {
        full(Bytes::from(text))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).expect("a valid status code");
    let headers = resp.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(CONTENT_LENGTH, len.into());
    if let Some(secs) = retry_after {
        headers.insert(RETRY_AFTER, secs.into());
    }
    resp
}

/// The first half of `body` (truncate) or `body` with its middle byte
/// inverted (corrupt).
fn damage(fault: &Fault, body: Bytes) -> Bytes {
    match fault {
        Fault::Truncate => body.slice(..body.len() / 2),
        Fault::Corrupt => {
            let mut bytes = body.to_vec();
            let middle = bytes.len() / 2;
            bytes[middle] = !bytes[middle];
            Bytes::from(bytes)
        }
        other => unreachable!("{other:?} does not damage a body"),
    }
}

/// A response with a truncated (Content-Length kept, connection closed
/// early) or corrupted body; `None` when the body is empty.
async fn damage_response(
    fault: Fault,
    resp: Response<Body>,
) -> Result<Option<Response<Body>>, BoxError> {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    if body.is_empty() {
        return Ok(None);
    }
    let damaged = damage(&fault, body);
    let body = match fault {
        Fault::Truncate => {
            // Content-Length still promises the whole body: the body ends in
            // an error after the first half, and hyper closes the connection.
            // The pause lets hyper flush the head and the half first, so the
            // client sees a short body rather than no answer at all.
            let head = futures::stream::iter([Ok::<_, BoxError>(Frame::data(damaged))]);
            let tail = futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Err::<Frame<Bytes>, BoxError>("truncated by the fault proxy".into())
            });
            BodyExt::boxed(StreamBody::new(head.chain(tail)))
        }
        _ => full(damaged),
    };
    Ok(Some(Response::from_parts(parts, body)))
}

/// The response head and the first half of the body, then `idle` of nothing
/// (the connection then closes); without a body, `idle` before the head.
async fn stall(resp: Response<Body>, idle: Duration) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let body = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if body.is_empty() {
        tokio::time::sleep(idle).await;
        return Response::from_parts(parts, full(body));
    }
    let first = body.slice(..body.len() / 2);
    let head = futures::stream::iter([Ok::<_, BoxError>(Frame::data(first))]);
    let tail = futures::stream::once(async move {
        tokio::time::sleep(idle).await;
        Err::<Frame<Bytes>, BoxError>("stalled by the fault proxy".into())
    });
    Response::from_parts(parts, BodyExt::boxed(StreamBody::new(head.chain(tail))))
}

/// A body of `{` that never ends, 64 KiB at a time.
fn endless() -> Body {
    let chunk = Bytes::from(vec![b'{'; 64 << 10]);
    let stream = futures::stream::repeat(chunk).map(|c| Ok::<_, BoxError>(Frame::data(c)));
    BodyExt::boxed(StreamBody::new(stream))
}
