//! `out` without privileges: the embedded buildkitd in the mode `out`
//! itself detects, run from the outside exactly as an unprivileged
//! container would run it.
//!
//! - case (b): `out` as uid 0 of `unshare --user --map-users=... --mount
//!   --pid --fork --mount-proc` (root's `/etc/subuid` range), which is what
//!   Concourse's containerd runtime gives a container without `privileged`;
//! - case (c): `out` as the non-root user `oci-build-test`, which has
//!   subordinate id ranges, so `out` goes through `rootlesskit`;
//! - neither: `out` as `oci-build-nosub`, a user without ranges, fails before
//!   starting any daemon with one line naming what was tried and what to do.
//!
//! Each build has RUN steps (one chowns and chmods a file), a text and a
//! file secret, and pushes to the TLS registry with htpasswd auth (CA and
//! credentials from the source). With `source_date_epoch` the result is
//! reproducible, so it must be the very image a privileged build of the same
//! context pushes: same manifest digest, and the same files (paths, types,
//! modes, owners, contents, link targets, mtimes) when both are unpacked
//! with umoci.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::put::Src;
use crate::support;
use crate::support::registry::Registry;
use crate::support::rootless::{As, ensure_subids, ensure_user, run_out};

/// The user of case (c).
const USER: &str = "oci-build-test";
/// A user without subordinate ranges.
const NO_RANGES_USER: &str = "oci-build-nosub";
const SECRET_TEXT: &str = "rootless-secret-text-value";
const SECRET_FILE: &str = "rootless-secret-file-value";
const EPOCH: u64 = 1_700_000_000;

/// The busybox base plus empty `/dev`, `/proc` and `/sys`, as every
/// distribution image has them, pushed once: on a base without `/sys`,
/// BuildKit's privileged worker leaves the RUN container's `/sys` mount
/// point in the layer and the rootless one does not (seen with v0.32.2),
/// which would make the images differ for a reason that is not ours.
fn base(reg: &'static Registry) -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let layout = support::fixtures::busybox_layout().tagged("rootless-base");
        let dirs = support::process::scratch_dir("rootless-base");
        for d in ["dev", "proc", "sys"] {
            std::fs::create_dir_all(dirs.join(d)).expect("mkdir");
        }
        layout.insert(&dirs, "/");
        let repo = support::unique("base/rootless");
        layout.push(reg, &repo, "1");
        reg.reference(&repo, "1")
    })
}

/// The build context: RUN steps, both kinds of secret, ownership and modes.
fn context(reg: &'static Registry) -> Src {
    let text_hash = &support::sha256_digest(SECRET_TEXT.as_bytes())[7..];
    // Compare hashes, never the literal: a literal lands in the history.
    let dockerfile = format!(
        "FROM {}\n{}",
        base(reg),
        &format!(
            "RUN --mount=type=secret,id=t test \"$(sha256sum < /run/secrets/t | cut -c1-64)\" = \"{text_hash}\"\n\
             RUN --mount=type=secret,id=f sha256sum < /run/secrets/f | cut -c1-64 > /file-secret.sha256\n\
             RUN mkdir -p /data/sub && echo hello > /data/hello && chown 1:2 /data/hello && \
             chmod 0640 /data/hello && ln -s hello /data/link && chmod 1777 /data/sub && id -u > /data/uid\n\
             COPY note.txt /data/note.txt\n"
        ),
    );
    Src::new(&[
        ("src/Dockerfile", &dockerfile),
        ("src/note.txt", "copied from the context\n"),
        ("secret.txt", SECRET_FILE),
    ])
}

fn params() -> Value {
    json!({
        "context": "src",
        "BUILDKIT_SECRETTEXT_t": SECRET_TEXT,
        "secrets": {"f": {"file": "secret.txt"}},
        "source_date_epoch": EPOCH,
    })
}

/// A pushed result: the image manifest's digest and the unpacked rootfs.
struct Built {
    image: String,
    rootfs: PathBuf,
}

/// The digest of the one image under `repo@digest`: the version is an index
/// holding it and its provenance attestation, which records each build's
/// own invocation and times and so differs between any two builds.
fn image_digest(reg: &Registry, repo: &str, digest: &str) -> String {
    let raw = reg.inspect_raw(&format!("{repo}@{digest}"));
    let doc: Value = serde_json::from_slice(&raw).expect("manifest JSON");
    let Some(entries) = doc["manifests"].as_array() else {
        return digest.to_owned();
    };
    let images: Vec<&Value> = entries
        .iter()
        .filter(|e| e["annotations"]["vnd.docker.reference.type"].is_null())
        .collect();
    assert_eq!(images.len(), 1, "one image in {doc}");
    images[0]["digest"].as_str().expect("digest").to_owned()
}

/// Copies `repo@digest` into an OCI layout and unpacks it with umoci (as
/// root, so owners are kept); returns the rootfs.
fn unpack(reg: &Registry, repo: &str, digest: &str) -> PathBuf {
    let dir = support::process::scratch_dir(repo);
    let layout = dir.join("layout");
    support::run_tool(
        Command::new("skopeo")
            .arg("copy")
            .args(reg.skopeo_src_args())
            .arg(format!("docker://{}/{repo}@{digest}", reg.host))
            .arg(format!("oci:{}:x", layout.display())),
    );
    let bundle = dir.join("bundle");
    support::run_tool(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:x", layout.display()))
            .arg(&bundle),
    );
    bundle.join("rootfs")
}

fn version_digest(resp: &Value) -> String {
    resp["version"]["digest"]
        .as_str()
        .expect("version digest")
        .to_string()
}

/// The privileged build of the same context, once per test binary: `out`
/// as the test's own root, on the embedded daemon.
fn privileged() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let reg = support::registry::tls_auth();
        let repo = support::unique("rootless-reference");
        let src = context(reg);
        let run = support::cmd::run(
            "out",
            &[src.path()],
            &json!({"source": reg.source(&repo), "params": params()}),
            &[("PATH", support::buildkitd::path_env().as_str())],
        );
        run.expect_success()
            .expect_stderr("embedded buildkitd mode: privileged")
            .expect_not_leaked(SECRET_TEXT)
            .expect_not_leaked(SECRET_FILE);
        eprintln!("--- privileged out: stderr ---\n{}", run.stderr);
        let digest = version_digest(&run.json());
        let rootfs = unpack(reg, &repo, &digest);
        let image = image_digest(reg, &repo, &digest);
        Built { image, rootfs }
    })
}

/// Every entry under `root`: path → type, mode, owner, size, content hash
/// or link target, mtime.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.expect("walking a rootfs");
        let meta = entry.path().symlink_metadata().expect("lstat");
        let ft = meta.file_type();
        let what = if ft.is_symlink() {
            format!(
                "link -> {}",
                std::fs::read_link(entry.path())
                    .expect("readlink")
                    .display()
            )
        } else if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_file() {
            let bytes = std::fs::read(entry.path()).expect("read");
            format!("file {} {}", bytes.len(), support::sha256_digest(&bytes))
        } else {
            format!("special {:o}", meta.mode() & 0o170000)
        };
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("inside")
            .display()
            .to_string();
        out.insert(
            rel,
            format!(
                "{what} mode {:o} owner {}:{} mtime {}",
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid(),
                if ft.is_symlink() { 0 } else { meta.mtime() }
            ),
        );
    }
    out
}

/// Builds the context as `who` and checks the result against the
/// privileged build.
fn build_as(who: As, case: &str, owner: (u32, u32), expect_mode: &str) {
    let reference = privileged();
    let reg = support::registry::tls_auth();
    let repo = support::unique(&format!("rootless-{case}"));
    let src = context(reg);
    support::rootless::chown_tree(src.path(), owner.0, owner.1);
    let run = run_out(
        &who,
        src.path(),
        &json!({"source": reg.source(&repo), "params": params()}),
        &support::rootless::path_env(),
    );
    let resp = run.json();
    assert!(
        run.stderr.contains(expect_mode),
        "expected mode {expect_mode:?}\n{}",
        run.details()
    );
    let password = reg.password.as_deref().expect("the TLS registry has auth");
    for secret in [SECRET_TEXT, SECRET_FILE, password] {
        assert!(
            !run.stderr.contains(secret) && !run.stdout.contains(secret),
            "out printed a secret"
        );
    }
    eprintln!(
        "--- case ({case}) out, {:.1} s: {} ---\n{}",
        run.elapsed.as_secs_f64(),
        run.command,
        run.stderr
    );
    // The daemon's root and the probes' dirs went into the working
    // directory; all of it is gone, even files of subordinate ids.
    let mut left: Vec<String> = std::fs::read_dir(src.path())
        .expect("the working directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["secret.txt", "src"], "out left files behind");
    let digest = version_digest(&resp);
    let rootfs = unpack(reg, &repo, &digest);
    let (want, got) = (tree(&reference.rootfs), tree(&rootfs));
    assert_eq!(
        got.get("data/hello").map(String::as_str),
        Some(
            format!(
                "file 6 {} mode 640 owner 1:2 mtime {EPOCH}",
                support::sha256_digest(b"hello\n")
            )
            .as_str()
        ),
        "the RUN step's chown and chmod survive"
    );
    let differ: Vec<String> = want
        .keys()
        .chain(got.keys())
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| {
            format!(
                "{k}: privileged {:?}, case ({case}) {:?}",
                want.get(k),
                got.get(k)
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "the images differ file by file:\n{}",
        differ.join("\n")
    );
    let image = image_digest(reg, &repo, &digest);
    assert_eq!(
        image, reference.image,
        "a reproducible build pushes the same image manifest as the privileged one"
    );
    eprintln!("case ({case}): {image}, equal to the privileged build file for file");
}

#[test]
#[cfg_attr(
    not(all(have_buildkitd, have_unshare, have_umoci)),
    ignore = "needs buildkitd, unshare, newuidmap/newgidmap (uidmap) and umoci, as root"
)]
fn case_b_root_of_a_user_namespace_builds_the_privileged_image() {
    let range = ensure_subids("root");
    build_as(
        As::UserNamespace { range },
        "b",
        (range.0, range.0),
        "embedded buildkitd mode: rootless in this user namespace",
    );
}

#[test]
#[cfg_attr(
    not(all(have_buildkitd, have_rootlesskit, have_umoci)),
    ignore = "needs buildkitd, rootlesskit, newuidmap/newgidmap (uidmap) and umoci, as root"
)]
fn case_c_a_user_with_subordinate_ids_builds_through_rootlesskit() {
    let (uid, gid) = ensure_user(USER, false);
    ensure_subids(USER);
    build_as(
        As::User { uid, gid },
        "c",
        (uid, gid),
        "embedded buildkitd mode: rootless through",
    );
}

/// A user without subordinate ranges: one line, before any daemon starts.
#[test]
#[cfg_attr(
    not(all(have_rootlesskit, have_root)),
    ignore = "needs rootlesskit and newuidmap/newgidmap (uidmap), as root"
)]
fn a_user_without_subordinate_ids_gets_one_line_before_any_daemon_starts() {
    let (uid, gid) = ensure_user(NO_RANGES_USER, true);
    // Ours alone: an older run (or useradd's defaults) may have given it some.
    support::rootless::remove_subids(NO_RANGES_USER);
    let reg = support::registry::plain();
    let src = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    // A buildkitd that records being started.
    let support::buildkitd::Recorder { dir: bin, started } = support::buildkitd::recorder();
    for dir in [bin.path(), src.path()] {
        support::rootless::chown_tree(dir, uid, gid);
    }
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = run_out(
        &As::User { uid, gid },
        src.path(),
        &json!({"source": reg.source("never-pushed"), "params": {"context": "src"}}),
        &path,
    );
    assert_eq!(run.status.code(), Some(1), "{}", run.details());
    assert!(run.stdout.trim().is_empty(), "{}", run.details());
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("cannot run in this container"))
        .unwrap_or_else(|| panic!("no refusal line\n{}", run.details()));
    for part in [
        &format!("rootlesskit mode as uid {uid}"),
        "/etc/subuid has no range for user oci-build-nosub",
        "/etc/subgid has no range",
        "privileged: true",
        "buildkit_host",
    ] {
        assert!(
            line.contains(part),
            "{part:?} missing from the line: {line}"
        );
    }
    assert!(
        !started.exists(),
        "buildkitd was started anyway\n{}",
        run.details()
    );
    eprintln!("--- no subordinate ids ---\n{line}");
}
