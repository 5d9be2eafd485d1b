//! The test world: real peers (docker-registry, dockerd, skopeo, umoci) started
//! and driven by the integration tests, and the runner for our three binaries.
//! The processes, registries and tool runners are the test-support crate's
//! (`crates/test-support/`), shared with the library's unit tests;
//! [`process`], [`registry`] and the functions below re-export it.
//!
//! Services are started once per test binary (`OnceLock`), on private temp
//! dirs and free loopback ports, and stopped by pid when the binary exits
//! (see [`process`]). Prerequisites that every test needs (docker-registry,
//! skopeo, umoci, openssl, htpasswd) make tests fail when missing. Tests that
//! need dockerd or buildkitd carry `#[cfg_attr(not(have_dockerd), ignore =
//! ...)]` (build.rs sets the cfgs): ignored where the daemon is absent, run
//! (and failed if it is missing) under `CI=true`; never counted as passed.

pub mod buildkitd;
pub mod cmd;
pub mod docker;
pub mod fault_proxy;
pub mod fixtures;
pub mod process;
pub mod proxy;
pub mod registry;
pub mod rootfs;
pub mod rootless;
mod selftest;
pub mod sshd;

pub use test_support::{require_tool, run_tool, sha256_digest, unique, which};
