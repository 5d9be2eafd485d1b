//! What the ping decides for a [`super::Client`]'s run: the scheme and the
//! authorization every later request carries (made in `auth.rs`).

use reqwest::header::HeaderValue;

/// The per-run state decided by the ping: scheme and authorization.
pub(super) struct Session {
    /// `https://host` or `http://host`.
    pub(super) origin: String,
    /// `Authorization` header value (marked sensitive), if any.
    pub(super) authorization: Option<HeaderValue>,
}
