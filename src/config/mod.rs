//! Request configuration: decoding of the JSON Concourse sends on stdin into
//! validated types.
//!
//! Decoding happens in two phases (ripgrep's LowArgs/HiArgs split): [`decode`]
//! mirrors Go's `encoding/json` (case-insensitive keys, `null` as unset,
//! unknown keys rejected with a suggestion), and the `source`/`get` modules
//! turn the raw serde structs into validated values ([`Source`],
//! [`GetParams`]). `put` decodes its own params (see `config::put`).

mod aws;
pub mod decode;
mod fields;
pub mod get;
pub mod put;
pub mod replica;
pub mod semver;
pub mod signing;
pub mod source;
pub mod tag;

pub use crate::secret::Secret;
pub use decode::DecodeError;
pub use get::{Format, GetParams};
pub use replica::Replica;
pub use source::{
    BuildkitSsh, BuildkitTls, CheckMode, DOCKER_HUB_HOST, Ecr, Platform, RegistryCredentials,
    RegistryMirror, Repository, Source,
};

/// A request or source setting that is well-formed JSON but not acceptable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The payload does not decode (wrong type, unknown field, ...).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A required setting is missing.
    #[error("source.{0} is required")]
    Missing(&'static str),
    /// A setting has a value that cannot be used.
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        /// The setting, e.g. `source.repository`.
        field: &'static str,
        /// The offending value as given.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A key setting (`source.sign.private_key`, `source.verify.public_keys`)
    /// that cannot be used; `reason` never quotes the key.
    #[error("{field}: {reason}")]
    Key {
        /// The setting, e.g. `source.sign.private_key`.
        field: String,
        /// Why it is refused.
        reason: String,
    },
    /// A setting that registry-image supports but this resource does not yet.
    #[error("{0} is not supported yet")]
    Unsupported(String),
    /// A `replicate_to` entry is not valid.
    #[error("source.replicate_to[{index}] ({repository:?})")]
    Replica {
        /// Its position in the list.
        index: usize,
        /// Its `repository` as written.
        repository: String,
        /// What is wrong with it.
        #[source]
        source: Box<Error>,
    },
    /// A regular expression setting does not compile.
    #[error("invalid regex pattern in {field}")]
    Regex {
        /// The setting, e.g. `source.tag_regex`.
        field: &'static str,
        /// What the regex engine said.
        #[source]
        source: regex::Error,
    },
}
