//! Registry errors: each names the request (method and URL, never
//! credentials) or the reference it concerns, and can tell whether it is
//! worth retrying.

use std::error::Error as StdError;

use reqwest::StatusCode;

/// A failed registry operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry answered with an unexpected status.
    #[error("{request}: {}", status_text(.status, .codes, .body))]
    Status {
        /// `METHOD url` of the request.
        request: String,
        /// HTTP status.
        status: StatusCode,
        /// `errors[].code` of the registry's error body, if any.
        codes: Vec<String>,
        /// Registry error message(s) or the (truncated) body.
        body: String,
        /// The `Retry-After` delay the registry asked for, if any.
        retry_after: Option<std::time::Duration>,
    },
    /// The request did not complete (connection, TLS, protocol).
    #[error("{request}")]
    Transport {
        /// `METHOD url` of the request.
        request: String,
        /// What reqwest reported.
        #[source]
        source: reqwest::Error,
    },
    /// Neither HTTPS nor (where allowed) plain HTTP reached the registry.
    #[error("pinging registry {registry}")]
    Ping {
        /// Registry host.
        registry: String,
        /// What failed.
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    /// The token handshake failed.
    #[error("authenticating to {registry} for {scope}")]
    Auth {
        /// Registry host.
        registry: String,
        /// `pull` or `push,pull` on which repository.
        scope: String,
        /// What failed.
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    /// Content did not hash to the digest it was fetched by.
    #[error("{what} {reference}: digest mismatch: got {actual}")]
    DigestMismatch {
        /// `manifest` or `blob`.
        what: &'static str,
        /// The expected digest (as reference).
        reference: String,
        /// The digest of what was received.
        actual: String,
    },
    /// A Docker schema 1 manifest: nothing here can use one, and a signed
    /// one's digest does not even cover its bytes.
    #[error(
        "manifest {reference}: docker schema 1 manifests are not supported (push the image again with a current docker, or convert it with `skopeo copy --format v2s2`)"
    )]
    Schema1 {
        /// `repository@digest` or `repository:tag`.
        reference: String,
    },
    /// A digest string that is not `sha256:<64 hex>`.
    #[error("invalid digest {0:?}: only sha256 digests are supported")]
    InvalidDigest(String),
    /// The registry broke the protocol (missing Location, bad JSON...).
    #[error("{request}: {detail}")]
    Protocol {
        /// `METHOD url` of the request.
        request: String,
        /// What was wrong.
        detail: String,
    },
    /// The HTTP client could not be built (bad CA certificate...).
    #[error("configuring registry client for {registry}")]
    Setup {
        /// Registry host.
        registry: String,
        /// What failed.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// A streamed upload made no progress (the registry took no data) and
    /// the registry sent no answer for the idle timeout.
    #[error(
        "{request}: the registry took no data and sent no answer for {}s (source.registry_timeout)",
        idle.as_secs_f64()
    )]
    Stalled {
        /// `METHOD url` of the request.
        request: String,
        /// The idle timeout that passed.
        idle: std::time::Duration,
    },
    /// Reading the body to push failed.
    #[error("reading blob {digest} to push")]
    Read {
        /// The blob.
        digest: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

fn status_text(status: &StatusCode, codes: &[String], body: &str) -> String {
    if codes.is_empty() {
        if body.is_empty() {
            format!("unexpected status code {status}")
        } else {
            format!("unexpected status code {status}: {body}")
        }
    } else {
        // ggcr's form for an errors array: `MANIFEST_UNKNOWN: message`.
        body.to_owned()
    }
}

impl Error {
    /// The HTTP status, if the registry answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The registry error codes (`NAME_UNKNOWN`, `DENIED`...), if any.
    pub fn codes(&self) -> &[String] {
        match self {
            Error::Status { codes, .. } => codes,
            _ => &[],
        }
    }

    /// The delay a 429 or 503 asked for with `Retry-After`.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Status {
                status,
                retry_after,
                ..
            } if *status == StatusCode::TOO_MANY_REQUESTS
                || *status == StatusCode::SERVICE_UNAVAILABLE =>
            {
                *retry_after
            }
            _ => None,
        }
    }

    /// Whether retrying may help: 429, 5xx, connection resets, truncated
    /// responses and HTTP/2 stream errors (registry-image `isTransientError`
    /// plus 5xx, which ggcr's transport would retry).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Status { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            Error::Transport { source, .. } => chain_is_transient(source),
            Error::Ping { source, .. } | Error::Auth { source, .. } => chain_is_transient(source),
            Error::Read { source, .. } => io_is_transient(source),
            Error::Stalled { .. } => true,
            _ => false,
        }
    }
}

fn io_is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | UnexpectedEof | BrokenPipe | TimedOut
    )
}

/// Walks `err`'s source chain looking for a transient cause.
pub fn chain_is_transient(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(e) = e.downcast_ref::<Error>()
            && e.is_transient()
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io_is_transient(io)
        {
            return true;
        }
        // An idle-read timeout (`source.registry_timeout`): the registry
        // stalled; asking again (resuming a blob) may well succeed.
        if let Some(r) = e.downcast_ref::<reqwest::Error>()
            && r.is_timeout()
        {
            return true;
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_closed())
        {
            return true;
        }
        if let Some(r) = e.downcast_ref::<oci_client::errors::OciDistributionError>() {
            match r {
                oci_client::errors::OciDistributionError::ServerError { code, .. }
                    if *code == 429 || *code >= 500 =>
                {
                    return true;
                }
                _ => {}
            }
        }
        // h2 errors are not a dependency of ours; match on their text.
        let text = e.to_string();
        if text.contains("stream error") || text.contains("connection reset") {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Reads the registry's error body into (codes, message) for the error text.
pub(super) fn error_detail(body: &[u8]) -> (Vec<String>, String) {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body)
        && !env.errors.is_empty()
    {
        let codes = env.errors.iter().map(|e| e.code.clone()).collect();
        let text = env
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        // Remote text: kept on one line, with no terminal controls, so a
        // registry cannot forge a line of our output or drive the terminal.
        return (codes, crate::text::escape_line(&text).into_owned());
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let text: String = text.chars().take(300).collect();
    (Vec::new(), crate::text::escape_line(&text).into_owned())
}

impl Error {
    /// The error for a response with an unexpected status, body included.
    pub(super) async fn from_response(
        method: &reqwest::Method,
        url: &str,
        resp: reqwest::Response,
    ) -> Error {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(super::retry::parse_retry_after);
        let body = read_prefix(resp, MAX_ERROR_BODY_BYTES).await;
        let (codes, body) = error_detail(&body);
        Error::Status {
            request: format!("{method} {url}"),
            status,
            codes,
            body,
            retry_after,
        }
    }
}

impl From<crate::oci::DigestError> for Error {
    fn from(e: crate::oci::DigestError) -> Error {
        Error::InvalidDigest(e.0)
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Most bytes of an error response body kept (the rest is not read).
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// The first `limit` bytes of a response body (an error text), read no
/// further; a failed read keeps what arrived.
async fn read_prefix(mut resp: reqwest::Response, limit: usize) -> bytes::Bytes {
    let mut buf = bytes::BytesMut::new();
    while buf.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(limit - buf.len());
                buf.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    buf.freeze()
}

#[cfg(test)]
mod tests;
