//! The test world: real peers (docker-registry, dockerd, skopeo, umoci) started
//! and driven by the integration tests, and the runner for our three binaries.
//!
//! Services are started once per test binary (`OnceLock`), on private temp
//! dirs and free loopback ports, and stopped by pid when the binary exits
//! (see [`process`]). Prerequisites that every test needs (docker-registry,
//! skopeo, umoci, openssl, htpasswd) make tests fail when missing. Tests that
//! need dockerd or buildkitd carry `#[cfg_attr(not(have_dockerd), ignore =
//! ...)]` (build.rs sets the cfgs): ignored where the daemon is absent, run
//! (and failed if it is missing) under `CI=true`; never counted as passed.

#![allow(dead_code)] // each test module uses a different part of the world

pub mod buildkitd;
pub mod cmd;
pub mod docker;
pub mod fixtures;
pub mod process;
pub mod proxy;
pub mod registry;
mod selftest;
pub mod sshd;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The path of `tool` on `PATH`, if any.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The path of a tool every test run needs; panics with the install hint.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    which(tool).unwrap_or_else(|| {
        panic!("needs `{tool}` on PATH (apt-get install {package}, or run scripts/test)")
    })
}

/// A repository or tag name unique to this test run: `name` in lower case,
/// reduced to `[a-z0-9-]`, plus the pid and a counter.
pub fn unique(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut base: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base.truncate(60);
    format!("{}-{}-{n}", base.trim_matches('-'), std::process::id())
}

/// Runs a peer tool and returns its stdout; panics with everything on failure.
pub fn run_tool(cmd: &mut Command) -> Vec<u8> {
    let shown = shown_command(cmd);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {shown}: {e}"));
    if !out.status.success() {
        panic!(
            "{shown} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.stdout
}

/// `cmd` for messages, with credential arguments (`--creds=u:p`,
/// `--dest-creds=...`) redacted.
fn shown_command(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        parts.push(match arg.split_once("creds=") {
            Some((flag, _)) => format!("{flag}creds=<redacted>"),
            None => arg.into_owned(),
        });
    }
    parts.join(" ")
}

/// sha256 of `bytes` as `sha256:<hex>`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}
