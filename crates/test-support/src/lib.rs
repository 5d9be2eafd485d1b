//! The test world of oci-build-resource, one copy for the library's unit
//! tests (`src/**`) and the integration tests (`tests/it/support/`
//! re-exports it): real peers (`docker-registry`, skopeo, umoci) started
//! once per test binary on private temp dirs and free loopback ports,
//! scripted fake registries, and the helpers that run peer tools.
//!
//! A crate of its own in the workspace, and only ever a dev-dependency of
//! the library, so a release build never contains it. It does not depend on
//! the library: the library's unit tests would then link a second copy of
//! it, whose types are not the ones under test. So it hands out plain data
//! (hosts, ports, paths, credentials, PEM text), and the tests build the
//! library's types (a registry client, say) from that themselves.
//!
//! - [`process`]: the per-run scratch root and [`process::Service`], a
//!   child stopped by pid when the test binary exits (or dies).
//! - [`registry`]: the shared plain and TLS+htpasswd registries.
//! - [`certs`]: a CA and the certificates it signs, made by openssl.
//! - [`fake_server`]: a scripted HTTP server for registries that lie.
//! - [`umoci_layout`]: a one-layer OCI layout built by umoci.

#![warn(missing_docs)]

pub mod certs;
pub mod fake_server;
pub mod process;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

pub use fake_server::{FakeServer, Reply, SeenRequest, response};

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
/// reduced to `[a-z0-9-]`, plus the pid and a counter. The registries are
/// shared by every test of a binary, so each test names its own.
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

/// sha256 of `bytes` as `sha256:<hex>`, as text.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// An OCI layout at `<dir>/layout` built with umoci: image `tag` with one
/// layer holding `/hello` = `content` (different content, different
/// digests) and the label `fixture=<content>`. More tags can be added to
/// the same layout.
pub fn umoci_layout(dir: &Path, tag: &str, content: &str) -> PathBuf {
    let umoci = require_tool("umoci", "umoci");
    let layout = dir.join("layout");
    if !layout.join("index.json").exists() {
        run_tool(
            Command::new(&umoci)
                .arg("init")
                .arg("--layout")
                .arg(&layout),
        );
    }
    let image = format!("{}:{tag}", layout.display());
    run_tool(Command::new(&umoci).args(["new", "--image", &image]));
    let bundle = dir.join(format!("bundle-{tag}"));
    run_tool(
        Command::new(&umoci)
            .args(["unpack", "--rootless", "--image", &image])
            .arg(&bundle),
    );
    std::fs::write(bundle.join("rootfs/hello"), content).expect("writing fixture file");
    run_tool(
        Command::new(&umoci)
            .args(["repack", "--image", &image])
            .arg(&bundle),
    );
    run_tool(Command::new(&umoci).args([
        "config",
        "--image",
        &image,
        "--config.label",
        &format!("fixture={content}"),
        "--created",
        "2020-01-01T00:00:00Z",
    ]));
    layout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_valid_repository_components() {
        let a = unique("Some Test/Name");
        let b = unique("Some Test/Name");
        assert_ne!(a, b);
        let pid = std::process::id().to_string();
        assert!(a.starts_with("some-test-name-"), "{a}");
        assert!(a.contains(&pid), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{a}"
        );
    }

    #[test]
    fn sha256_digest_is_the_oci_form() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn shown_commands_hide_credentials() {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--dest-creds=user:secret", "--creds=u:p", "a"]);
        assert_eq!(
            shown_command(&cmd),
            "skopeo copy --dest-creds=<redacted> --creds=<redacted> a"
        );
    }

    #[test]
    fn run_tool_returns_stdout_and_panics_with_stderr() {
        assert_eq!(run_tool(Command::new("echo").arg("hi")), b"hi\n");
        let failed = std::panic::catch_unwind(|| {
            run_tool(Command::new("sh").args(["-c", "echo oops >&2; exit 3"]))
        })
        .unwrap_err();
        let message = failed.downcast_ref::<String>().unwrap();
        assert!(message.contains("oops"), "{message}");
    }

    #[test]
    fn which_finds_tools_on_path() {
        assert!(which("sh").is_some());
        assert!(which("no-such-tool-anywhere").is_none());
    }
}
