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
//! oci-client does only the ping and token handshake ([`auth`]), so that
//! the `WWW-Authenticate` parsing and token-realm rules are not ours to
//! keep; what it costs is in `docs/decisions.md`.

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
pub use retry::{Transient, retry_transient, retry_transient_at_most};
#[cfg(test)]
pub(crate) mod test_registry;
#[cfg(test)]
mod tests;
