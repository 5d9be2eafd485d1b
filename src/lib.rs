//! oci-build-resource: a Concourse resource type that builds container images
//! with BuildKit on `put` and fetches them on `check`/`get`, compatible with
//! the registry-image resource.
//!
//! The three binaries (`check`, `in`, `out`) are thin: they call [`cli::main`],
//! which decodes the request, runs one of [`commands`] and prints the answer.
#![warn(missing_docs)]

pub mod buildkit;
pub mod cache_mounts;
pub mod cli;
pub mod commands;
pub mod concourse;
pub mod config;
pub mod daemon;
pub mod ecr;
pub mod error;
pub mod image;
pub mod oci;
pub mod process;
pub mod progress;
pub mod put;
pub mod registry;
pub mod secret;
pub mod sign;
pub mod small_file;
pub mod store;
pub mod text;
pub mod tls;

pub use error::{Error, Result};
