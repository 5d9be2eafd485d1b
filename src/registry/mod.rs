//! Registry access for check, get and put: the only module that talks to
//! registries (and the only importer of oci-client).
//!
//! - [`Client`] ([`client`]): one repository on one registry (auth, TLS,
//!   scheme); its session in [`auth`], and its calls by resource in
//!   [`manifests`], [`blobs`] and [`tags`].
//! - [`Repository`]: the parsed repository reference.
//! - [`retry_transient`]: registry-image's back-off for get and put.
//!
//! The caller builds a [`Client`] from its own configuration (the commands
//! do it from `config::Source`); nothing here reads the request config.
//! Which child of an index to use is [`crate::image::platform`]'s business.
//!
//! oci-client does only the ping and token handshake ([`auth`]). Kept, for
//! now, on these numbers (measured at the commit that wrote this): it adds
//! 13 of 213 unique crates (`oci-client`, `http-auth`, a second
//! `sha2`/`digest` 0.11 and their helpers, `olpc-cjson`,
//! `unicode-normalization`, `unicase`); `cargo tree -e normal` is 563 lines
//! with it and 530 with `--prune oci-client`; in the debug `in` binary
//! (31 MB text) its symbols (`oci_client::`, `http_auth::`) are about
//! 100 KB. It shares our reqwest 0.13 and rustls, so it is one HTTP/TLS
//! stack in code, with a second `reqwest::Client` (connection pool) for the
//! ping and token per session. A release build was not measured (too slow
//! on the shared build machine). Doing the bearer handshake on our own
//! client would save those crates and one TLS handshake per session, at the
//! cost of owning the `WWW-Authenticate` parsing and token-realm rules.

mod auth;
mod blobs;
mod client;
mod error;
mod manifests;
mod repository;
mod retry;
mod session;
mod tags;

pub use auth::implicitly_insecure;
pub use blobs::BlobReader;
pub use client::{Access, Client, Credentials, RepositoryRef, TlsOptions};
pub use error::{Error, Result, chain_is_transient};
pub use manifests::{MANIFEST_ACCEPT, Manifest};
pub use repository::{DOCKER_HUB_HOST, Repository, RepositoryError, is_docker_hub_host};
pub use retry::{Transient, retry_transient};
#[cfg(test)]
pub(crate) mod test_registry;
#[cfg(test)]
mod tests;
