//! Long-lived helper processes and scratch directories of one test binary:
//! the library's harness (`src/testutil/process.rs`).

pub use oci_build_resource::testutil::process::*;
