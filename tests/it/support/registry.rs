//! The shared plain and TLS+htpasswd `docker-registry` instances: the
//! library's harness (`src/testutil/registry.rs`).

pub use oci_build_resource::testutil::registry::*;
