//! [`Repository`]: a repository reference without tag or digest, split into
//! registry host and path the way ggcr's `name.NewRepository` does.
//!
//! It lives here, below `config`, because every registry call needs it;
//! `config` re-exports it and maps [`RepositoryError`] to its own error that
//! names `source.repository`.
//!
//! Why not `oci_spec::distribution::Reference` (0.10): checked by
//! `oci_spec_reference_differs` below, it
//! - accepts `busybox:latest` and `x@sha256:…` (a reference, not a
//!   repository), and reports an absent tag as `latest`, so a tag typed into
//!   `repository` could not be refused with a pointer to `source.tag`;
//! - accepts `UPPER/x` as the Docker Hub repository `UPPER/x` (its grammar
//!   takes `UPPER/` as a domain, then `split_domain` decides it is not one),
//!   where docker and ggcr refuse an upper-case repository;
//! - names Docker Hub `docker.io`, where ggcr and registry-image (and our
//!   `image.tar` `RepoTags`) say `index.docker.io`.
//!
//! It agrees on `127.0.0.1:5000/a/b`, `localhost/x` and
//! `busybox` → `library/busybox`; wrapping it would take as much code as the
//! parser below, so the parser stays.

/// The host ggcr and docker use for Docker Hub repositories.
pub const DOCKER_HUB_HOST: &str = "index.docker.io";

/// Whether `host` is one of the names Docker Hub answers under (the
/// reference form, the index, the API, the token service): they all take
/// the same credentials.
pub fn is_docker_hub_host(host: &str) -> bool {
    matches!(
        host,
        "docker.io"
            | "index.docker.io"
            | "registry-1.docker.io"
            | "registry.docker.io"
            | "auth.docker.io"
    )
}

/// The host that actually serves Docker Hub's registry API (ggcr rewrites
/// `index.docker.io` to it for requests).
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// Why a repository reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    /// The reference is empty.
    #[error("repository is empty")]
    Empty,
    /// The reference is malformed; the text says how.
    #[error("{0}")]
    Invalid(&'static str),
}

/// A repository reference without tag, split like docker/ggcr do it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// Registry host (and port) as ggcr names it: `index.docker.io` for
    /// Docker Hub, else the first component as given.
    pub registry: String,
    /// Repository path on that registry, e.g. `library/busybox`.
    pub path: String,
    /// The text the user wrote, reported back verbatim in metadata.
    pub given: String,
}

impl Repository {
    /// Parses `text` (`busybox`, `docker.io/foo/bar`, `host:5000/x/y`).
    pub fn parse(text: &str) -> Result<Repository, RepositoryError> {
        if text.is_empty() {
            return Err(RepositoryError::Empty);
        }
        let (registry, path) = match text.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DOCKER_HUB_HOST.to_owned(), text.to_owned()),
        };
        if registry.is_empty() || registry.contains(|c: char| c.is_whitespace() || c == '@') {
            return Err(RepositoryError::Invalid("registry host is not valid"));
        }
        let registry = if registry == "docker.io" {
            DOCKER_HUB_HOST.to_owned()
        } else {
            registry
        };
        if path.is_empty()
            || path.starts_with('/')
            || path.ends_with('/')
            || path.contains("//")
            || !path
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-/".contains(c))
        {
            return Err(RepositoryError::Invalid(
                "repository can only contain the characters `abcdefghijklmnopqrstuvwxyz0123456789_-./` (give the tag in source.tag)",
            ));
        }
        if !path.split('/').all(valid_component) {
            return Err(RepositoryError::Invalid(
                "each `/`-separated part of the repository must be lower-case letters and digits, joined by single `.`, `_` or `__`, or runs of `-` (no `..`, no leading or trailing separator)",
            ));
        }
        let path = if registry == DOCKER_HUB_HOST && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(Repository {
            registry,
            path,
            given: text.to_owned(),
        })
    }

    /// Whether this is a Docker Hub repository (the only kind a
    /// `registry_mirror` applies to).
    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB_HOST
    }

    /// The host to send registry API requests to.
    pub fn api_host(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// Fully qualified name, `index.docker.io/library/busybox`.
    pub fn qualified(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }

    /// The same path on another registry (a mirror).
    pub fn on_registry(&self, host: &str) -> Repository {
        Repository {
            registry: host.to_owned(),
            path: self.path.clone(),
            given: format!("{host}/{}", self.path),
        }
    }
}

/// Whether `part` matches the distribution spec's path component,
/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`. Without it `a/../b` would
/// send requests outside `/v2/`.
fn valid_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // A run of letters and digits.
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // A separator: `.`, `_`, `__` or one or more `-`.
        let sep = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        match &part[sep..i] {
            "." | "_" | "__" => {}
            s if s.bytes().all(|b| b == b'-') => {}
            _ => return false,
        }
    }
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.given)
    }
}

#[cfg(test)]
mod tests;
