//! The build daemon `out` runs itself when no daemon address is given: a
//! `buildkitd` child process in a private root, started, supervised and
//! stopped here. `crate::buildkit` is the client that talks to it.
//!
//! - [`mode`]: how the daemon can run in this container, decided before
//!   anything starts (privileged, rootless as root of a user namespace, or
//!   under `rootlesskit` as a non-root user);
//! - [`root`]: where its private root goes (off overlayfs where possible);
//! - [`config`]: the generated `buildkitd.toml`;
//! - [`process`]: running a `buildkitd` binary: spawn, wait until it
//!   answers, stop by pid, unmount what it left;
//! - [`embedded`]: the put's daemon, which ties those together;
//! - [`Error`]: why any of it failed.

pub mod config;
pub mod embedded;
mod error;
pub mod mode;
pub mod process;
pub mod root;

pub use embedded::{EmbeddedDaemon, StartOptions};
pub use error::{Error, Result};

/// The unit tests' fake `buildkitd`: a shell script in `dir` that sets
/// `ARGS` to its arguments and `SOCK` to the path of its `--addr unix://`
/// socket, then runs `body`.
#[cfg(test)]
pub(crate) fn fake_buildkitd(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("buildkitd");
    let script = format!(
        "#!/bin/sh\nARGS=\"$*\"\nwhile [ $# -gt 0 ]; do case \"$1\" in --addr) SOCK=\"${{2#unix://}}\"; shift;; esac; shift; done\n{body}\n"
    );
    std::fs::write(&path, script).expect("writing the fake buildkitd");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("making the fake buildkitd executable");
    path
}
