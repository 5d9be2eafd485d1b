//! Generates the BuildKit gRPC bindings (`src/buildkit/proto.rs` includes
//! them) from our own minimal `.proto` files under `proto/`.
//!
//! The `.proto` files are parsed with `protox`, a pure-Rust protobuf compiler,
//! instead of a system `protoc`: building the crate then needs nothing but
//! cargo (no `protobuf-compiler` package in CI images, on developer machines or
//! in the Dockerfile's build stage), and the output cannot drift with the
//! `protoc` version a machine happens to have. tonic-prost-build then turns
//! the descriptor set into prost messages and tonic clients/servers.
//!
//! It records what `--version` prints (see `src/cli.rs`):
//! `OCI_BUILD_RESOURCE_GIT_COMMIT`, from the environment (the Dockerfile's
//! build stage has no `.git`) or `git rev-parse --short HEAD`, else
//! `unknown`; and `OCI_BUILD_RESOURCE_BUILDKIT_VERSION`, from the environment
//! (the Dockerfile passes its `BUILDKIT_VERSION` build arg) or the version
//! pinned in the Dockerfile, so a plain `cargo build` reports what the image
//! would bundle.
//!
//! It also sets one `have_<tool>` cfg per test prerequisite that is present
//! (see [`TEST_TOOLS`]): tests that need a tool carry
//! `#[cfg_attr(not(have_<tool>), ignore = "...")]`, so where the tool is
//! absent cargo's summary counts them as *ignored*, never as passed. Under
//! `CI=true` every cfg is set: the tests run, and a missing tool fails them.

/// Every file we compile, one per upstream proto (package in brackets).
const PROTO_FILES: &[&str] = &[
    // [moby.buildkit.v1] Control: Solve, Status, Session, ListWorkers, Info.
    "proto/moby/buildkit/v1/control.proto",
    // [moby.buildkit.v1.types] worker records.
    "proto/moby/buildkit/v1/types/worker.proto",
    // [pb] Platform only.
    "proto/pb/ops.proto",
    // [fsutil.types] DiffCopy packets and file stats.
    "proto/fsutil/types/stat.proto",
    "proto/fsutil/types/wire.proto",
    // [moby.filesync.v1] FileSync, FileSend and Auth (served in the session).
    "proto/moby/filesync/v1/filesync.proto",
    "proto/moby/filesync/v1/auth.proto",
    // [moby.buildkit.secrets.v1] Secrets (served in the session).
    "proto/moby/buildkit/secrets/v1/secrets.proto",
    // [moby.sshforward.v1] SSH agent forwarding (served in the session).
    "proto/moby/sshforward/v1/ssh.proto",
];

/// `(cfg, tools)`: `have_<cfg>` is set when every tool is on `PATH` (for
/// `buildkitd`, also when `$BUILDKITD` names a file) and, for daemons, the
/// build runs as root (dockerd and the OCI worker of buildkitd need it).
const TEST_TOOLS: &[(&str, &[&str], bool)] = &[
    ("buildkitd", &["buildkitd"], true),
    ("dockerd", &["dockerd", "docker"], true),
    ("docker_registry", &["docker-registry"], false),
    ("skopeo", &["skopeo"], false),
    ("umoci", &["umoci"], false),
    ("openssl", &["openssl"], false),
    ("htpasswd", &["htpasswd"], false),
    ("ssh_tools", &["ssh-agent", "ssh-add", "ssh-keygen"], false),
    // An OpenSSH server for `ssh://` build hosts; it lets root in, so root.
    ("sshd", &["sshd", "ssh", "ssh-keygen"], true),
    ("root", &[], true),
    // Rootless embedded buildkitd (tests/it/put_rootless.rs): case (b) runs
    // `out` under util-linux `unshare --map-users`, case (c) under
    // rootlesskit; both map subordinate ids through newuidmap/newgidmap,
    // and the tests set up users and /etc/subuid as root.
    ("unshare", &["unshare", "newuidmap", "newgidmap"], true),
    (
        "rootlesskit",
        &["rootlesskit", "newuidmap", "newgidmap"],
        true,
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    test_tool_cfgs();
    version_info();
    let descriptors = protox::compile(PROTO_FILES, ["proto"])?;
    tonic_prost_build::configure()
        // Payload fields become `bytes::Bytes`: upload chunks and session
        // traffic are passed along without copying.
        .bytes(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}

const GIT_COMMIT: &str = "OCI_BUILD_RESOURCE_GIT_COMMIT";
const BUILDKIT_VERSION: &str = "OCI_BUILD_RESOURCE_BUILDKIT_VERSION";

/// Sets [`GIT_COMMIT`] and [`BUILDKIT_VERSION`] for `env!`.
fn version_info() {
    for var in [GIT_COMMIT, BUILDKIT_VERSION] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let from_env = |var| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    let commit = from_env(GIT_COMMIT)
        .or_else(|| {
            // A commit moves the branch ref, not HEAD itself: watch both (and
            // packed-refs), as far as they exist (a missing path would make
            // cargo rerun this script on every build).
            for path in ["HEAD", "packed-refs"] {
                watch(git(&["rev-parse", "--git-path", path]));
            }
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                watch(git(&["rev-parse", "--git-path", &branch]));
            }
            git(&["rev-parse", "--short", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env={GIT_COMMIT}={commit}");
    println!("cargo:rerun-if-changed=Dockerfile");
    let buildkit = from_env(BUILDKIT_VERSION)
        .or_else(|| {
            std::fs::read_to_string("Dockerfile")
                .ok()?
                .lines()
                .find_map(|l| {
                    let v = l.trim().strip_prefix("ARG BUILDKIT_VERSION=")?.trim();
                    (!v.is_empty()).then(|| v.to_string())
                })
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env={BUILDKIT_VERSION}={buildkit}");
}

/// `git <args>`'s trimmed stdout, if git ran and succeeded.
fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

/// `rerun-if-changed` for `path` when it exists.
fn watch(path: Option<String>) {
    if let Some(path) = path.filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
}

/// Emits `have_<name>` for each present entry of [`TEST_TOOLS`] (all of them
/// under `CI=true`).
fn test_tool_cfgs() {
    for var in ["PATH", "BUILDKITD", "CI"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    });
    for (name, tools, needs_root) in TEST_TOOLS {
        println!("cargo:rustc-check-cfg=cfg(have_{name})");
        let present = tools.iter().all(|tool| on_path(tool)) && (root || !needs_root);
        if ci || present {
            println!("cargo:rustc-cfg=have_{name}");
        }
    }
}

/// Whether `tool` is an executable file on `PATH` (`buildkitd`: or at
/// `$BUILDKITD`, as tests/it/support/buildkitd.rs looks for it; `sshd`: or
/// at `/usr/sbin/sshd`).
fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if tool == "buildkitd"
        && let Some(path) = std::env::var_os("BUILDKITD").filter(|p| !p.is_empty())
    {
        return executable(std::path::Path::new(&path));
    }
    // Debian's sshd, in /usr/sbin, which a user's PATH may lack
    // (tests/it/support/sshd.rs runs it by that path).
    if tool == "sshd" && executable(std::path::Path::new("/usr/sbin/sshd")) {
        return true;
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(tool))))
}
