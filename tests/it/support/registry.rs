//! The shared plain and TLS+htpasswd `docker-registry` instances: the
//! test-support crate's (`crates/test-support/src/registry.rs`).

pub use test_support::registry::*;
