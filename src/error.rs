//! The crate's error type and the chain printer used by the binaries.
//!
//! Each subsystem owns its error enum; [`Error`] wraps them transparently and
//! adds step-level context ("checking origin <repo> failed"). The edge
//! ([`crate::cli`]) prints `error: ` plus the whole chain joined by `: `.

use crate::registry::{Transient, chain_is_transient};

/// Any failure of a step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request on stdin could not be decoded or validated.
    #[error("invalid payload")]
    Config(#[source] crate::config::Error),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::Error),
    /// Reading, verifying, unpacking or writing image content failed.
    #[error(transparent)]
    Image(#[from] crate::image::Error),
    /// A step failed; `context` says which and on what.
    #[error("{context}")]
    Context {
        /// e.g. `checking origin busybox failed`.
        context: String,
        /// The underlying failure.
        #[source]
        source: Box<Error>,
    },
    /// A failure from a module without its own variant here yet.
    #[error("{context}")]
    Foreign {
        /// What was being done.
        context: String,
        /// The underlying failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// ECR authentication (`source.aws_*`) failed.
    #[error(transparent)]
    Ecr(#[from] crate::ecr::AuthError),
    /// Signing what put pushed, or verifying a version's signature, failed.
    #[error(transparent)]
    Sign(crate::sign::Error),
    /// A put-specific failure (params, tags, daemon, local images).
    #[error(transparent)]
    Put(crate::put::Error),
    /// Some other failure, already described.
    #[error("{0}")]
    Other(String),
    /// SIGTERM or SIGINT ended the step; `cleanup` says what was undone.
    #[error("interrupted by {signal}; {cleanup}")]
    Interrupted {
        /// `SIGTERM` or `SIGINT`.
        signal: &'static str,
        /// What the step released before exiting.
        cleanup: String,
    },
}

/// A registry failure of a push stays a registry error (its retry judgement
/// and hints are the registry's); the rest is a put failure.
impl From<crate::store::Error> for Error {
    fn from(e: crate::store::Error) -> Self {
        match e {
            crate::store::Error::Registry(e) => Error::Registry(e),
            e => Error::Put(crate::put::Error::Store(e)),
        }
    }
}

/// A registry failure while signing or verifying stays a registry error
/// (retries and hints are the registry's).
impl From<crate::sign::Error> for Error {
    fn from(e: crate::sign::Error) -> Self {
        match e {
            crate::sign::Error::Registry(e) => Error::Registry(e),
            e => Error::Sign(e),
        }
    }
}

/// The put's registry failures, context and interruption become the step's
/// own variants, so retries, hints and the exit on a signal treat them as
/// they treat check's and get's.
impl From<crate::put::Error> for Error {
    fn from(e: crate::put::Error) -> Self {
        use crate::put::Error as Put;
        match e {
            Put::Registry(e) => Error::Registry(e),
            Put::Store(e) => Error::from(e),
            Put::Context { context, source } => Error::from(*source).context(context),
            Put::Interrupted { signal, cleanup } => Error::Interrupted { signal, cleanup },
            e => Error::Put(e),
        }
    }
}

impl From<crate::config::Error> for Error {
    fn from(e: crate::config::Error) -> Self {
        Error::Config(e)
    }
}

impl Error {
    /// Wraps `self` with step context.
    pub fn context(self, context: impl Into<String>) -> Error {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

/// Retry judgement for a whole step's error: the retry loop
/// ([`crate::registry::retry_transient`]) runs around steps that fail with
/// this type, so it is implemented here rather than in the registry module.
impl Transient for Error {
    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Registry(e) => e.retry_after(),
            Error::Context { source, .. } => source.retry_after(),
            _ => None,
        }
    }

    fn is_transient(&self) -> bool {
        // `Registry` is `#[error(transparent)]`, whose `source()` skips the
        // registry error itself, so match the variants before walking.
        match self {
            Error::Registry(e) => e.is_transient(),
            // Transparent too: a download cut short surfaces as an io error
            // inside an image error (unpacking, spooling).
            Error::Image(e) => chain_is_transient(e),
            Error::Context { source, .. } => source.is_transient(),
            Error::Foreign { source, .. } => chain_is_transient(source.as_ref()),
            // Other variants: walk their sources (a wrapped io error from a
            // truncated download is transient).
            _ => chain_is_transient(self),
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `err` and all its sources, joined by `: ` (one joiner for the crate,
/// in the low-level [`crate::oci`] so that `buildkit` uses it too).
pub use crate::oci::error_chain as chain;

/// A hint for errors users can fix themselves, if `message` (a chain) shows
/// one; see [`hint_with`].
pub fn hint(message: &str) -> Option<String> {
    hint_with(message, None)
}

/// Like [`hint`], knowing the request's `source`: a refused login then names
/// the registry host that answered and the credentials this resource sent
/// there (source, registry_mirror, an additional_registries entry, or none).
pub fn hint_with(message: &str, source: Option<&crate::config::Source>) -> Option<String> {
    if is_auth_failure(message) {
        Some(auth_hint(message, source))
    } else if message.contains("connecting to buildkit at")
        && (message.contains("certificate") || message.contains("UnknownIssuer"))
    {
        // Checked before the registry case: the same rustls words, another fix.
        Some(
            "hint: the BuildKit daemon's TLS certificate is not trusted; set source.buildkit_tls.ca_cert to the CA that signed it (and server_name if the certificate names another host)".into(),
        )
    } else if message.contains("the daemon closed the TLS connection") {
        Some(
            "hint: the BuildKit daemon closed the connection on the first call; a tcp:// daemon that verifies clients needs a client certificate: set source.buildkit_tls.cert and source.buildkit_tls.key".into(),
        )
    } else if message.contains("(source.registry_timeout)")
        || (message.contains("operation timed out") && !message.contains("buildkit"))
    {
        Some(
            "hint: the registry stopped sending data for longer than source.registry_timeout (default 60s); raise it for a registry that is slow to start answering".into(),
        )
    } else if message.contains("certificate") || message.contains("UnknownIssuer") {
        Some(
            "hint: the registry's TLS certificate is not trusted; add its CA to source.ca_certs (plain HTTP needs source.insecure: true)".into(),
        )
    } else {
        None
    }
}

/// Words of a refused login: registry error codes and HTTP status lines
/// (ours and BuildKit's), which follow the request that got them.
const AUTH_STATUS: &[&str] = &[
    "UNAUTHORIZED",
    "DENIED",
    "401 Unauthorized",
    "403 Forbidden",
    "Authentication failure",
];

/// BuildKit's words for the same, which may come before the request's URL
/// (`failed to authorize: ... GET request to https://auth.../token: 401`).
const AUTH_PHRASES: &[&str] = &[
    "pull access denied",
    "insufficient_scope",
    "failed to authorize",
];

fn is_auth_failure(message: &str) -> bool {
    AUTH_STATUS
        .iter()
        .chain(AUTH_PHRASES)
        .any(|m| message.contains(m))
}

/// Docker Hub's several names as one, since they take the same credentials.
fn canonical_host(host: &str) -> &str {
    if crate::registry::is_docker_hub_host(host) {
        "docker.io"
    } else {
        host
    }
}

/// The registry host of a word of an error message: a URL's host, or the
/// host of an image reference (`host[:port]/path...`, the host having a `.`
/// or `:` or being `localhost`, as the reference grammar tells hosts from
/// path components).
fn host_of(word: &str) -> Option<&str> {
    let word = word.trim_matches(|c: char| "\"'`()[],;".contains(c));
    let (rest, url) = match word.split_once("://") {
        Some((_, rest)) => (rest, true),
        None => (word, false),
    };
    let host = rest.split('/').next()?;
    let host = host
        .rsplit_once('@')
        .map_or(host, |(_, h)| h)
        .trim_end_matches(':');
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    {
        return None;
    }
    let looks_like_host = host.contains('.') || host.contains(':') || host == "localhost";
    (url || (rest.contains('/') && looks_like_host)).then_some(host)
}

/// The host that refused: the last host named before the first auth marker
/// (the request that got the answer), else the first one named at all.
/// Besides URLs and references, the word after `authenticating to` (our
/// token handshake, [`crate::registry::Error::Auth`]) names a host.
fn refusing_host(message: &str) -> Option<&str> {
    let first = |markers: &[&str]| markers.iter().filter_map(|m| message.find(m)).min();
    let at = first(AUTH_STATUS)
        .or_else(|| first(AUTH_PHRASES))
        .unwrap_or(message.len());
    let mut hosts: Vec<(usize, &str)> = Vec::new();
    let mut offset = 0;
    for word in message.split(' ') {
        let host = host_of(word).or_else(|| {
            message[..offset]
                .ends_with("authenticating to ")
                .then(|| word.trim_end_matches(':'))
                .filter(|w| !w.is_empty())
        });
        if let Some(host) = host {
            hosts.push((offset, host));
        }
        offset += word.len() + 1;
    }
    hosts
        .iter()
        .rev()
        .find(|(pos, _)| *pos < at)
        .or_else(|| hosts.first())
        .map(|(_, h)| *h)
}

fn auth_hint(message: &str, source: Option<&crate::config::Source>) -> String {
    let generic = "hint: a registry refused the credentials; check source.username and source.password, \
        registry_mirror's, and (put) the additional_registries entry of the registry named above";
    let Some(host) = refusing_host(message) else {
        return generic.into();
    };
    let Some(source) = source else {
        return format!(
            "hint: the registry at {host} refused the request; check the credentials this resource has for {host} \
             (source.username/password for the source repository's registry, registry_mirror, or additional_registries)"
        );
    };
    let wanted = canonical_host(host);
    let same = |h: &str| canonical_host(h.trim_end_matches('/')) == wanted;
    let set = |user: &Option<String>| if user.is_some() { "check" } else { "set" };
    let repository = &source.repository;
    if same(&repository.registry) || same(repository.api_host()) {
        return format!(
            "hint: {host} (the registry of source.repository {}) refused the request; {} source.username and \
             source.password, and that this account may access {}",
            repository.given,
            set(&source.username),
            repository.path
        );
    }
    if let Some(mirror) = source.registry_mirror.as_ref().filter(|m| same(&m.host)) {
        return format!(
            "hint: {host} (source.registry_mirror) refused the request; {} source.registry_mirror.username and password",
            set(&mirror.username)
        );
    }
    if let Some(extra) = source.additional_registries.iter().find(|r| same(&r.host)) {
        return format!(
            "hint: {host} refused the request; {} the username and password of its source.additional_registries entry",
            set(&extra.username)
        );
    }
    format!(
        "hint: {host} refused the request, and this resource has no credentials for it (it is not the registry of \
         source.repository {}); if a FROM image, cache_from/cache_to ref or base image lives there, add \
         {{host: {host}, username, password}} to source.additional_registries",
        repository.given
    )
}

#[cfg(test)]
mod tests;
