//! Registry access for check, get and put: the only module that talks to
//! registries (and the only importer of oci-client).
//!
//! - [`Client`]: one repository on one registry (auth, TLS, scheme), with
//!   digest resolution, tag listing, manifest/blob fetch and push.
//! - [`retry_transient`]: registry-image's back-off for get and put.
//!
//! Which child of an index to use is [`crate::image::platform`]'s business.

mod blob;
mod client;
mod error;
mod retry;
#[cfg(test)]
pub(crate) mod testutil;

pub use blob::BlobReader;
pub use client::{
    Access, Client, Credentials, MANIFEST_ACCEPT, Manifest, RepositoryRef, TlsOptions,
    implicitly_insecure, is_valid_digest, sha256_digest,
};
pub use error::{Error, Result, chain_is_transient};
pub use retry::{Transient, retry_transient};
#[cfg(test)]
mod tests;
