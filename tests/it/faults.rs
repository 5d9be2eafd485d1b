//! The fault table: every fault of [`FaultProxy`] against every operation —
//! `check`, `in` in each format, `out` pushing `params.image`, `out`
//! building on the Docker Engine (whose push goes through our registry
//! client after the read-back, see src/put/run.rs), and `out` building on
//! the embedded buildkitd (which pushes by itself) — with the real
//! binaries, through the proxy, in front of the plain test registry.
//!
//! Each row must end in one of two ways:
//! - success, the same result as without faults (a retry may come first);
//! - a clear failure: exit 1, nothing on stdout, a last stderr line saying
//!   what failed, `in`'s destination empty or removed, and the tag a push
//!   would have moved still on its old digest (`skopeo inspect` before and
//!   after).
//!
//! A status or a reset on `in` or `out` must be retried and succeed (those
//! are transient, `Retry-After: 1` is honoured); `check` never retries. On
//! the buildkitd build, BuildKit's pusher retries statuses and resets
//! itself, and a truncated or corrupted upload (the registry refuses its
//! digest) must be retried by `out` (one more solve, src/put/transient.rs).
//! Every successful push must leave a whole image: `skopeo copy --all`
//! reads and verifies each manifest and blob under the tag. Each
//! row also asserts that its fault really fired. The table (fault, operation,
//! faulted request, outcome) goes to stderr, and is appended to the file
//! `$FAULT_TABLE` when that is set.
//!
//! Which request each fault hits, per operation:
//! - `check` (`tag_regex`): the tag list, for every fault.
//! - `in`: the first layer blob; an endless or oversized body goes to the
//!   manifest instead, a read with a size limit.
//! - pushes: a status or a reset to the first manifest PUT (for our client
//!   the tag move; for buildkitd a manifest by digest), never forwarded;
//!   truncation, corruption and a stall to the first upload chunk (PATCH;
//!   buildkitd sends each blob in one PUT); an endless or oversized body to
//!   the answer to the upload POST. The buildkitd build has no stall row:
//!   BuildKit's pusher has no idle limit, and the put would wait for the
//!   step's timeout (docs/limits.md).
//!
//! The stall rows rely on the idle-read timeout (`source.registry_timeout`,
//! set short here); each is bounded by [`STALL_BOUND`].

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::fault_proxy::{Fault, FaultProxy, Rule};
use crate::support::needs;
use crate::support::registry::{self, Registry};
use crate::support::{self, cmd, fixtures, process};

/// How long a row's step may run before it counts as hung. Generous for
/// two shared cores; the slowest rows (a retry after `Retry-After: 1` on an
/// Engine build) take seconds.
const ROW_BOUND: Duration = Duration::from_secs(120);

/// How long a stall row's step may run: the idle timeout plus a retry must
/// fit in it.
const STALL_BOUND: Duration = Duration::from_secs(120);

/// `source.registry_timeout` for every row: short, so that a stall ends
/// soon, and still far above any idle gap of a healthy loopback transfer.
const IDLE_TIMEOUT: &str = "5s";

/// How long a stalled connection idles: longer than any bound.
const STALL_IDLE: Duration = Duration::from_secs(900);

/// Manifest bodies above 4 MiB are refused (src/registry/client.rs).
const OVERSIZED: usize = 5 << 20;

/// The faults of every table, in table order (stall has its own test).
fn table_faults() -> Vec<Fault> {
    vec![
        Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
        Fault::Status {
            status: 500,
            retry_after: Some(1),
        },
        Fault::Status {
            status: 503,
            retry_after: Some(1),
        },
        Fault::Reset,
        Fault::Truncate,
        Fault::Corrupt,
        Fault::Endless,
        Fault::Oversized(OVERSIZED),
    ]
}

/// An operation of the table.
#[derive(Clone, Copy, Debug)]
enum Op {
    Check,
    In(&'static str),
    PushImage,
    PushBuild,
    /// A build on the embedded buildkitd, which pushes by itself.
    PushBuildkitd,
}

impl Op {
    fn name(self) -> String {
        match self {
            Op::Check => "check".into(),
            Op::In(format) => format!("in ({format})"),
            Op::PushImage => "out (params.image)".into(),
            Op::PushBuild => "out (build, Engine)".into(),
            Op::PushBuildkitd => "out (build, buildkitd)".into(),
        }
    }

    fn is_push(self) -> bool {
        matches!(self, Op::PushImage | Op::PushBuild | Op::PushBuildkitd)
    }

    /// PATH for the step: the embedded daemon needs buildkitd on it.
    fn path(self) -> String {
        match self {
            Op::PushBuildkitd => support::buildkitd::path_env(),
            _ => std::env::var("PATH").unwrap_or_default(),
        }
    }
}

// ---- running a step with a wall-clock bound ----

/// What one bounded step did; `status` is `None` when it was killed at the bound.
struct Step {
    status: Option<std::process::ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Step {
    fn details(&self) -> String {
        format!(
            "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }

    /// The last non-empty stderr line: the message that names what failed.
    fn last_line(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
    }
}

/// Runs `bin` as Concourse does (request on stdin, `dir` as argv[1]), killing
/// it after `bound`. `support::cmd` waits up to ten minutes, too long for a
/// table where a hang is one of the outcomes.
fn run_bounded(
    bin: &str,
    dir: Option<&Path>,
    path: String,
    request: &Value,
    bound: Duration,
) -> Step {
    let mut command = Command::new(cmd::binary(bin));
    if let Some(dir) = dir {
        command.arg(dir);
    }
    let mut child = command
        .env_clear()
        .env("TEST", "true")
        .env("PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
    let input = serde_json::to_vec(request).expect("serialising the request");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let writer = std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut stdin, &input);
    });
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout is piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr is piped")));
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the step") {
            break Some(status);
        }
        if Instant::now() > deadline {
            // Our own child, not yet reaped.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Step {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

// ---- what each operation needs ----

/// One operation's world: its request, what a clean run gives, and how to
/// judge a row.
struct World {
    op: Op,
    reg: &'static Registry,
    proxy: FaultProxy,
    /// `in`: the image and its first layer's digest.
    pushed: Option<fixtures::Pushed>,
    layer: String,
    /// Pushes: the source dir, and an image to seed the tag with.
    src: Option<tempfile::TempDir>,
    old_image: String,
    /// What a clean run gives: check's versions, in's tree fingerprint, the
    /// pushed digest of `params.image`.
    expected: Value,
    /// `check`: the repository with tags v1, v2.
    check_repo: String,
}

impl World {
    fn new(op: Op) -> World {
        let reg = registry::plain();
        let proxy = FaultProxy::start(&reg.host);
        let (check_repo, _) = fixtures::tags(reg, "faults-check", &["v1", "v2"], &[], &[]);
        let old_image = format!("docker://{}", reg.reference(&check_repo, "v1"));
        let mut world = World {
            op,
            reg,
            proxy,
            pushed: None,
            layer: String::new(),
            src: None,
            old_image,
            expected: Value::Null,
            check_repo,
        };
        match op {
            Op::Check => {}
            Op::In(_) => {
                let pushed = fixtures::layered(reg);
                let manifest: Value = serde_json::from_slice(&reg.inspect_raw(&pushed.reference()))
                    .expect("manifest JSON");
                world.layer = manifest["layers"][0]["digest"]
                    .as_str()
                    .expect("a layer digest")
                    .to_string();
                world.pushed = Some(pushed);
            }
            Op::PushImage => {
                let src = tempfile::tempdir().expect("temp dir");
                std::fs::create_dir_all(src.path().join("img")).expect("mkdir img");
                let layered = fixtures::layered(reg);
                support::run_tool(
                    Command::new(registry::skopeo())
                        .args(["copy", "--quiet"])
                        .args(reg.skopeo_src_args())
                        .arg(format!("docker://{}", layered.reference()))
                        .arg(format!("oci:{}:t", src.path().join("img/oci").display())),
                );
                world.src = Some(src);
            }
            Op::PushBuild | Op::PushBuildkitd => {
                let src = tempfile::tempdir().expect("temp dir");
                std::fs::create_dir_all(src.path().join("src")).expect("mkdir");
                std::fs::write(
                    src.path().join("src/Dockerfile"),
                    "FROM scratch\nCOPY hello /hello\n",
                )
                .expect("Dockerfile");
                std::fs::write(src.path().join("src/hello"), "hello from the fault table\n")
                    .expect("hello");
                world.src = Some(src);
            }
        }
        // The clean run, through the same proxy without rules.
        let clean = world.attempt(&Fault::Reset, false, ROW_BOUND);
        assert!(
            clean.outcome.starts_with("ok"),
            "{}: the run without faults failed\n{}",
            op.name(),
            clean.details
        );
        world.expected = clean.result;
        world
    }

    /// The request, and for `in` the destination, for one run.
    fn request(&self, repo: &str) -> Value {
        match self.op {
            Op::Check => json!({"source": {
                "repository": format!("{}/{}", self.proxy.host, self.check_repo),
                "tag_regex": "^v",
                "registry_timeout": IDLE_TIMEOUT,
            }}),
            Op::In(format) => {
                let pushed = self.pushed.as_ref().expect("in has an image");
                json!({
                    "source": {
                        "repository": format!("{}/{}", self.proxy.host, pushed.repo),
                        "registry_timeout": IDLE_TIMEOUT,
                    },
                    "params": {"format": format},
                    "version": pushed.version(),
                })
            }
            Op::PushImage => json!({
                "source": {
                    "repository": format!("{}/{repo}", self.proxy.host),
                    "tag": "stable",
                    "registry_timeout": IDLE_TIMEOUT,
                },
                "params": {"image": "img/oci"},
            }),
            Op::PushBuild => json!({
                "source": {
                    "repository": format!("{}/{repo}", self.proxy.host),
                    "tag": "stable",
                    "registry_timeout": IDLE_TIMEOUT,
                    "buildkit_host": format!("docker://{}", support::docker::shared().socket.display()),
                },
                "params": {"context": "src"},
            }),
            Op::PushBuildkitd => json!({
                "source": {
                    "repository": format!("{}/{repo}", self.proxy.host),
                    "tag": "stable",
                    "registry_timeout": IDLE_TIMEOUT,
                    "insecure": true,
                },
                "params": {"context": "src"},
            }),
        }
    }

    /// The rule that puts `fault` on this operation's request (see the
    /// module docs); `repo` is the row's repository for pushes.
    fn rule(&self, fault: &Fault, repo: &str) -> (Rule, String) {
        let (method, path, shown) = match (self.op, fault) {
            (Op::Check, _) => (
                Some("GET"),
                format!("^/v2/{}/tags/list", self.check_repo),
                "GET tags/list",
            ),
            (Op::In(_), Fault::Endless | Fault::Oversized(_)) => (
                Some("GET"),
                format!(
                    "^/v2/{}/manifests/sha256:",
                    self.pushed.as_ref().expect("image").repo
                ),
                "GET manifest",
            ),
            (Op::In(_), _) => (
                Some("GET"),
                format!(
                    "^/v2/{}/blobs/{}$",
                    self.pushed.as_ref().expect("image").repo,
                    self.layer
                ),
                "GET layer blob",
            ),
            (_, Fault::Status { .. } | Fault::Reset) => (
                Some("PUT"),
                format!("^/v2/{repo}/manifests/"),
                "PUT manifest",
            ),
            // containerd's pusher sends each blob in one PUT after the POST.
            (Op::PushBuildkitd, Fault::Truncate | Fault::Corrupt | Fault::Stall(_)) => (
                Some("PUT"),
                format!("^/v2/{repo}/blobs/uploads/"),
                "PUT upload",
            ),
            (_, Fault::Truncate | Fault::Corrupt | Fault::Stall(_)) => (
                Some("PATCH"),
                format!("^/v2/{repo}/blobs/uploads/"),
                "PATCH upload",
            ),
            (_, Fault::Endless | Fault::Oversized(_)) => (
                Some("POST"),
                format!("^/v2/{repo}/blobs/uploads/"),
                "POST upload",
            ),
        };
        (Rule::new(method, &path, fault.clone()), shown.to_string())
    }

    /// One run of the operation, with `fault` injected when `inject`;
    /// judged against the module docs' rules (panics on a violation).
    fn attempt(&self, fault: &Fault, inject: bool, bound: Duration) -> Attempt {
        self.proxy.reset();
        let repo = support::unique("faults-push");
        let (rule, target) = self.rule(fault, &repo);
        let old_digest = self.op.is_push().then(|| self.seed_tag(&repo));
        let dest = process::scratch_dir("faults-dest");
        if inject {
            self.proxy.inject(rule);
        }
        let dir: Option<&Path> = match self.op {
            Op::Check => None,
            Op::In(_) => Some(&dest),
            Op::PushImage | Op::PushBuild | Op::PushBuildkitd => {
                Some(self.src.as_ref().expect("src").path())
            }
        };
        let started = Instant::now();
        let step = run_bounded(
            match self.op {
                Op::Check => "check",
                Op::In(_) => "in",
                _ => "out",
            },
            dir,
            self.op.path(),
            &self.request(&repo),
            bound,
        );
        let elapsed = started.elapsed();
        let fired = self.proxy.fired();
        let details = format!(
            "{} with {} on {target}\n{}\nrequests: {:#?}\nfaults fired: {fired:?}",
            self.op.name(),
            fault.name(),
            step.details(),
            self.proxy.requests()
        );
        if inject {
            assert!(!fired.is_empty(), "the fault never fired\n{details}");
        }
        let Some(status) = step.status else {
            panic!("hung: killed after {bound:?}\n{details}");
        };
        let tag_now = old_digest
            .as_ref()
            .map(|_| self.reg.digest_of(&format!("{repo}:stable")));
        let (outcome, result) = if status.success() {
            let response: Value = serde_json::from_str(step.stdout.trim())
                .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{details}"));
            let result = match self.op {
                Op::Check => response.clone(),
                Op::In(_) => {
                    assert_eq!(
                        response["version"],
                        self.pushed.as_ref().expect("image").version(),
                        "{details}"
                    );
                    json!(fingerprint(&dest))
                }
                Op::PushImage | Op::PushBuild | Op::PushBuildkitd => {
                    let digest = response["version"]["digest"].clone();
                    assert_eq!(
                        tag_now.as_deref(),
                        digest.as_str(),
                        "the tag holds what out reported\n{details}"
                    );
                    assert_ne!(
                        tag_now, old_digest,
                        "a successful push moved the tag\n{details}"
                    );
                    self.assert_whole(&repo, &details);
                    digest
                }
            };
            if inject && !matches!(self.op, Op::PushBuild | Op::PushBuildkitd) {
                // The Engine build's config has a fresh `created` time, a
                // buildkitd build's provenance the invocation's ID and times.
                assert_eq!(
                    result, self.expected,
                    "a faulted run that succeeds gives the clean result\n{details}"
                );
            }
            let how = if step.stderr.contains("transient error") {
                "ok after retry"
            } else {
                "ok"
            };
            (format!("{how} ({:.1} s)", elapsed.as_secs_f64()), result)
        } else {
            assert_eq!(status.code(), Some(1), "a failure exits 1\n{details}");
            assert!(
                step.stdout.trim().is_empty(),
                "a failed step prints no response\n{details}"
            );
            let message = step.last_line().to_string();
            assert!(!message.is_empty(), "a failure says why\n{details}");
            if matches!(self.op, Op::In(_)) {
                let empty = std::fs::read_dir(&dest).map_or(true, |mut d| d.next().is_none());
                assert!(empty, "a failed in leaves its destination empty\n{details}");
            }
            assert_eq!(tag_now, old_digest, "a failed push moves no tag\n{details}");
            (format!("failed: {}", excerpt(&message)), Value::Null)
        };
        Attempt {
            target,
            outcome,
            result,
            details,
            retried: step.stderr.contains("transient error"),
            succeeded: status.success(),
        }
    }

    /// Every manifest and blob under `<repo>:stable` is in the registry
    /// and matches its digest: skopeo copies it all and checks each one. A
    /// faulted request that a pusher took for a success would leave a hole.
    fn assert_whole(&self, repo: &str, details: &str) {
        let copy = tempfile::tempdir().expect("temp dir");
        let output = Command::new(registry::skopeo())
            .args(["copy", "--quiet", "--all"])
            .args(self.reg.skopeo_src_args())
            .arg(format!("docker://{}", self.reg.reference(repo, "stable")))
            .arg(format!("oci:{}:t", copy.path().join("oci").display()))
            .output()
            .expect("running skopeo");
        assert!(
            output.status.success(),
            "the pushed image is whole: skopeo copy --all failed: {}\n{details}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Tags `<repo>:stable` with the old image; returns its digest.
    fn seed_tag(&self, repo: &str) -> String {
        support::run_tool(
            Command::new(registry::skopeo())
                .args(["copy", "--quiet", "--preserve-digests"])
                .args(self.reg.skopeo_src_args())
                .args(self.reg.skopeo_dest_args())
                .arg(&self.old_image)
                .arg(format!("docker://{}", self.reg.reference(repo, "stable"))),
        );
        self.reg.digest_of(&format!("{repo}:stable"))
    }
}

/// One judged run.
struct Attempt {
    target: String,
    outcome: String,
    result: Value,
    details: String,
    retried: bool,
    succeeded: bool,
}

/// `text` for the table: its start and its end (the cause), at most 200
/// characters.
fn excerpt(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 200 {
        return text.to_string();
    }
    let head: String = chars[..60].iter().collect();
    let tail: String = chars[chars.len() - 139..].iter().collect();
    format!("{head}…{tail}")
}

/// Every entry under `dir` with its type and content digest (files) or
/// target (symlinks), sorted: two identical trees give the same list.
pub(crate) fn fingerprint(dir: &Path) -> Vec<String> {
    let mut entries = Vec::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.expect("walking the destination");
        let rel = entry
            .path()
            .strip_prefix(dir)
            .expect("under dir")
            .display()
            .to_string();
        let kind = entry.file_type();
        let what = if kind.is_symlink() {
            format!(
                "-> {}",
                std::fs::read_link(entry.path())
                    .expect("readlink")
                    .display()
            )
        } else if kind.is_file() {
            support::sha256_digest(&std::fs::read(entry.path()).expect("reading a file"))
        } else {
            "dir".to_string()
        };
        entries.push(format!("{rel} {what}"));
    }
    entries
}

/// Runs every fault of `faults` against `op` and prints the table.
fn table(op: Op, faults: &[Fault], bound: Duration) {
    let world = World::new(op);
    let mut rows = Vec::new();
    for fault in faults {
        let attempt = world.attempt(fault, true, bound);
        let status_or_reset = matches!(fault, Fault::Status { .. } | Fault::Reset);
        let damaged_upload = matches!(fault, Fault::Truncate | Fault::Corrupt);
        // Retried by us: status and reset on our registry client; on a
        // buildkitd build, the registry's refusal of a damaged upload's
        // digest, which BuildKit does not retry (src/put/transient.rs).
        // BuildKit retries 5xx and resets itself, so there a status or a
        // reset must succeed, by whichever retry.
        let (must_succeed, we_retry) = match op {
            Op::Check => (false, false),
            Op::PushBuildkitd => (status_or_reset || damaged_upload, damaged_upload),
            _ => (status_or_reset, status_or_reset),
        };
        if must_succeed {
            assert!(
                attempt.succeeded,
                "a transient fault is retried and the retry succeeds\n{}",
                attempt.details
            );
        }
        if we_retry {
            assert!(
                attempt.retried,
                "out logs its retry of a transient fault\n{}",
                attempt.details
            );
        }
        if matches!(op, Op::Check) {
            assert!(!attempt.retried, "check never retries\n{}", attempt.details);
        }
        rows.push((fault.name(), op.name(), attempt.target, attempt.outcome));
    }
    let mut text = String::new();
    for (fault, op, target, outcome) in &rows {
        text += &format!("{fault:<24} | {op:<20} | {target:<15} | {outcome}\n");
    }
    eprint!("{text}");
    if let Some(path) = std::env::var_os("FAULT_TABLE") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(PathBuf::from(path))
            .expect("opening $FAULT_TABLE");
        file.write_all(text.as_bytes())
            .expect("appending to $FAULT_TABLE");
    }
}

#[test]
fn check_through_each_fault() {
    table(Op::Check, &table_faults(), ROW_BOUND);
}

#[test]
fn in_rootfs_through_each_fault() {
    table(Op::In("rootfs"), &table_faults(), ROW_BOUND);
}

#[test]
fn in_oci_through_each_fault() {
    table(Op::In("oci"), &table_faults(), ROW_BOUND);
}

#[test]
fn in_oci_layout_through_each_fault() {
    table(Op::In("oci-layout"), &table_faults(), ROW_BOUND);
}

#[test]
fn push_image_through_each_fault() {
    table(Op::PushImage, &table_faults(), ROW_BOUND);
}

needs! { dockerd;
    #[test]
    fn push_build_on_engine_through_each_fault() {
        table(Op::PushBuild, &table_faults(), ROW_BOUND);
    }
}

needs! { buildkitd;
    #[test]
    fn push_build_on_buildkitd_through_each_fault() {
        table(Op::PushBuildkitd, &table_faults(), ROW_BOUND);
    }
}

// A stall mid-body (or before an answer) on each operation, one test each
// so that they wait out the idle timeout in parallel: the idle timeout ends
// the read, the retry succeeds for `in` and `out`, and `check` fails
// clearly; each within [`STALL_BOUND`]. Without the idle timeout `check`
// would hang with empty stderr until the bound killed it.

#[test]
fn stall_check() {
    table(Op::Check, &[Fault::Stall(STALL_IDLE)], STALL_BOUND);
}

#[test]
fn stall_in_rootfs() {
    table(Op::In("rootfs"), &[Fault::Stall(STALL_IDLE)], STALL_BOUND);
}

#[test]
fn stall_in_oci() {
    table(Op::In("oci"), &[Fault::Stall(STALL_IDLE)], STALL_BOUND);
}

#[test]
fn stall_in_oci_layout() {
    table(
        Op::In("oci-layout"),
        &[Fault::Stall(STALL_IDLE)],
        STALL_BOUND,
    );
}

#[test]
fn stall_push_image() {
    table(Op::PushImage, &[Fault::Stall(STALL_IDLE)], STALL_BOUND);
}

needs! { dockerd;
    #[test]
    fn stall_push_build_on_engine() {
        table(Op::PushBuild, &[Fault::Stall(STALL_IDLE)], STALL_BOUND);
    }
}

needs! { buildkitd;
    /// The embedded buildkitd pushes by itself and BuildKit's pusher has no
    /// idle limit: `out` watches the daemon's I/O while it pushes.
    #[test]
    fn stall_push_build_on_buildkitd() {
        table(Op::PushBuildkitd, &[Fault::Stall(STALL_IDLE)], STALL_BOUND);
    }
}

/// `out` pushing `params.image` (a layout made from `image`) through `proxy`
/// to `repo:stable`, with `TEST=true` (5 ms back-off steps).
fn push_layout_through(
    proxy: &FaultProxy,
    image: fixtures::RawImage,
    name: &str,
) -> (Step, String) {
    let layout = image.layout(name);
    let src = layout
        .dir
        .parent()
        .expect("the layout is in a scratch directory");
    let repo = support::unique(name);
    let request = json!({
        "source": {"repository": format!("{}/{repo}", proxy.host), "tag": "stable"},
        "params": {"image": "layout"},
    });
    let path = std::env::var("PATH").unwrap_or_default();
    let step = run_bounded("out", Some(src), path, &request, ROW_BOUND);
    (step, repo)
}

fn refuse_manifest_puts(proxy: &FaultProxy, times: usize) {
    for _ in 0..times {
        proxy.inject(Rule::new(
            Some("PUT"),
            "/manifests/",
            Fault::Status {
                status: 503,
                retry_after: None,
            },
        ));
    }
}

fn manifest_puts(proxy: &FaultProxy) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|r| r.starts_with("PUT") && r.contains("/manifests/"))
        .count()
}

/// A registry refusing a manifest that names a foreign layer the push did
/// not send: asking again cannot help, so the put fails at the first
/// refusal naming the blob, instead of backing off for over 10 minutes.
#[test]
fn a_refused_manifest_naming_an_unsent_foreign_layer_fails_at_once_saying_why() {
    let reg = registry::plain();
    let proxy = FaultProxy::start(&reg.host);
    refuse_manifest_puts(&proxy, 40);
    let foreign = b"a Windows base layer";
    let image = fixtures::RawImage::new()
        .layer(
            fixtures::RawTar::new().file("app", b"x\n", 0o644).finish(),
            "gzip",
            fixtures::LAYER_GZIP,
        )
        .foreign_layer(foreign);
    let started = Instant::now();
    let (step, repo) = push_layout_through(&proxy, image, "faults-foreign");
    assert!(step.status.is_some(), "out hung\n{}", step.details());
    assert!(
        !step.status.expect("exited").success(),
        "{}",
        step.details()
    );
    let blob = oci_build_resource::oci::sha256_digest(foreign);
    let last = step
        .stderr
        .lines()
        .rfind(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        last.starts_with("error: the registry refused manifest sha256:")
            && last.contains(", which names blobs this push did not send")
            && last.contains(&format!(
                "({blob}: foreign or non-distributable layers); no tag was moved"
            )),
        "{}",
        step.details()
    );
    assert_eq!(manifest_puts(&proxy), 1, "{:?}", proxy.requests());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        registry::http_status(&reg.host, &format!("/v2/{repo}/manifests/stable")),
        Some(404),
        "the tag moved"
    );
}

/// Otherwise a manifest PUT refused with a 5xx is tried a bounded number of
/// times (5), not for an hour.
#[test]
fn manifest_puts_refused_again_and_again_give_up_after_five_attempts() {
    let reg = registry::plain();
    let proxy = FaultProxy::start(&reg.host);
    refuse_manifest_puts(&proxy, 40);
    let image = fixtures::RawImage::new().layer(
        fixtures::RawTar::new().file("app", b"x\n", 0o644).finish(),
        "gzip",
        fixtures::LAYER_GZIP,
    );
    let (step, repo) = push_layout_through(&proxy, image, "faults-manifest-bound");
    assert!(step.status.is_some(), "out hung\n{}", step.details());
    assert!(
        !step.status.expect("exited").success(),
        "{}",
        step.details()
    );
    assert!(
        step.stderr
            .lines()
            .any(|l| l.contains("pushing manifest sha256:")
                && l.ends_with(": giving up after 5 attempts")),
        "{}",
        step.details()
    );
    assert_eq!(manifest_puts(&proxy), 5, "{:?}", proxy.requests());
    assert_eq!(
        registry::http_status(&reg.host, &format!("/v2/{repo}/manifests/stable")),
        Some(404),
        "the tag moved"
    );
}
