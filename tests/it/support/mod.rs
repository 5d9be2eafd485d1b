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
//! ...)]` (build.rs sets the cfgs), the common ones through [`needs!`]:
//! ignored where the daemon is absent, run (and failed if it is missing)
//! under `CI=true`; never counted as passed.

pub mod buildkitd;
pub mod cmd;
pub mod cosign;
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

/// One test fn that needs a tool build.rs looks for: `needs! { buildkitd;
/// #[test] fn name() { ... } }` is the fn with
/// `#[cfg_attr(not(have_buildkitd), ignore = "needs buildkitd: ...")]`
/// added after its own attributes, so that where the tool is missing
/// `cargo test` lists the test as ignored, with the reason (never as
/// passed), and under `CI=true` runs it. The prerequisites, before the `;`:
/// `buildkitd`, `dockerd`, `docker_registry, skopeo, umoci`,
/// `sshd, dockerd` and `sshd, buildkitd`. Tests with a prerequisite of
/// their own write the `cfg_attr` out.
macro_rules! needs {
    (buildkitd; $($test:tt)*) => {
        $crate::support::needs! {
            @ignore not(have_buildkitd),
            "needs buildkitd: set BUILDKITD or put it on PATH (as root)";
            $($test)*
        }
    };
    (dockerd; $($test:tt)*) => {
        $crate::support::needs! {
            @ignore not(have_dockerd),
            "needs dockerd and docker on PATH, as root";
            $($test)*
        }
    };
    (docker_registry, skopeo, umoci; $($test:tt)*) => {
        $crate::support::needs! {
            @ignore not(all(have_docker_registry, have_skopeo, have_umoci)),
            "needs docker-registry, skopeo and umoci on PATH";
            $($test)*
        }
    };
    (sshd, dockerd; $($test:tt)*) => {
        $crate::support::needs! {
            @ignore not(all(have_sshd, have_dockerd)),
            "needs sshd (apt-get install openssh-server) and dockerd, as root";
            $($test)*
        }
    };
    (sshd, buildkitd; $($test:tt)*) => {
        $crate::support::needs! {
            @ignore not(all(have_sshd, have_buildkitd)),
            "needs sshd (apt-get install openssh-server) and buildkitd with buildctl, as root";
            $($test)*
        }
    };
    (@ignore $cfg:meta, $reason:literal; $(#[$attr:meta])* fn $($rest:tt)*) => {
        $(#[$attr])*
        #[cfg_attr($cfg, ignore = $reason)]
        fn $($rest)*
    };
    (@ignore $cfg:meta, $reason:literal; $(#[$attr:meta])* async fn $($rest:tt)*) => {
        $(#[$attr])*
        #[cfg_attr($cfg, ignore = $reason)]
        async fn $($rest)*
    };
}
pub(crate) use needs;
