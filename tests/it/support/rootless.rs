//! The unprivileged worlds `out` must build in, set up on this machine as
//! root, idempotently, so that a fresh machine gets them too:
//!
//! - subordinate id ranges in `/etc/subuid` and `/etc/subgid` (appended
//!   after every range already there when a user has none);
//! - test users created with `useradd` (no home, no login shell);
//! - `out` run inside `unshare --user --map-users ... --mount --pid` as uid 0
//!   of a user namespace (case b), or as a plain user (case c), with the
//!   request on stdin and stdout/stderr captured.
//!
//! Files the step reads must be readable there: callers `chown` work dirs
//! to the namespace's root or the test user ([`chown_tree`]). The programs
//! it runs must be reachable too, and a checkout under `/root` (mode 0700)
//! or a `mktemp -d` directory is not: [`run_out`] runs a staged copy of `out`
//! and [`path_env`] puts a staged buildkitd on `PATH` ([`reachable`]).

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Serialises edits of `/etc/passwd`, `/etc/subuid`, `/etc/subgid` by
/// parallel tests.
static ETC: Mutex<()> = Mutex::new(());

/// How many subordinate ids a range gets.
pub const RANGE: u32 = 65536;

/// The subordinate range of `user` in the `/etc/subuid`-format `file`:
/// `(start, count)` of its first line, if any.
pub fn range_of(file: &str, user: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        (f.next()? == user).then_some(())?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

/// Makes sure `user` has a range in both `/etc/subuid` and `/etc/subgid`,
/// appending `user:<start>:65536` after the highest range present (at least
/// 100000) where it has none; returns its `/etc/subuid` range.
pub fn ensure_subids(user: &str) -> (u32, u32) {
    let _guard = ETC.lock().unwrap_or_else(|p| p.into_inner());
    for file in ["/etc/subuid", "/etc/subgid"] {
        if range_of(file, user).is_some() {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let end = text
            .lines()
            .filter_map(|l| {
                let mut f = l.trim().split(':').skip(1);
                let start: u64 = f.next()?.parse().ok()?;
                let count: u64 = f.next()?.parse().ok()?;
                Some(start + count)
            })
            .max()
            .unwrap_or(0)
            .max(100_000);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .unwrap_or_else(|e| panic!("opening {file} to add a range for {user}: {e}"));
        let sep = if text.is_empty() || text.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        writeln!(f, "{sep}{user}:{end}:{RANGE}")
            .unwrap_or_else(|e| panic!("adding a range for {user} to {file}: {e}"));
    }
    range_of("/etc/subuid", user).expect("the range was just added")
}

/// Creates `user` (and its group) unless it exists; returns `(uid, gid)`.
/// Debian's `useradd` gives a new non-system user subordinate ranges of its
/// own (`SUB_UID_COUNT` in `/etc/login.defs`); a `system` user gets none.
pub fn ensure_user(user: &str, system: bool) -> (u32, u32) {
    let _guard = ETC.lock().unwrap_or_else(|p| p.into_inner());
    if nix::unistd::User::from_name(user).ok().flatten().is_none() {
        let mut cmd = Command::new("useradd");
        if system {
            cmd.arg("--system");
        }
        super::run_tool(cmd.args([
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            user,
        ]));
    }
    let u = nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("user {user} missing after useradd"));
    (u.uid.as_raw(), u.gid.as_raw())
}

/// Removes every range of `user` (one of the tests' own users) from
/// `/etc/subuid` and `/etc/subgid`.
pub fn remove_subids(user: &str) {
    let _guard = ETC.lock().unwrap_or_else(|p| p.into_inner());
    let prefix = format!("{user}:");
    for file in ["/etc/subuid", "/etc/subgid"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        if !text.lines().any(|l| l.starts_with(&prefix)) {
            continue;
        }
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with(&prefix))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(file, kept)
            .unwrap_or_else(|e| panic!("removing {user}'s ranges from {file}: {e}"));
    }
}

/// `chown -R uid:gid dir` (without following symlinks).
pub fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.expect("walking the work dir");
        std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", entry.path().display()));
    }
}

/// `program` as a file every user can reach and run: a hard link (a copy
/// across file systems) in a directory of the per-run scratch root, made once
/// per program and test process. The scratch root is removed at exit.
pub fn reachable(program: &Path) -> PathBuf {
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;
    static STAGED: Mutex<Option<HashMap<PathBuf, PathBuf>>> = Mutex::new(None);
    let mut staged = STAGED.lock().unwrap_or_else(|p| p.into_inner());
    let staged = staged.get_or_insert_with(HashMap::new);
    if let Some(path) = staged.get(program) {
        return path.clone();
    }
    let name = program.file_name().expect("a program has a file name");
    let dir = super::process::scratch_dir("reachable");
    let dest = dir.join(name);
    if std::fs::hard_link(program, &dest).is_err() {
        std::fs::copy(program, &dest)
            .unwrap_or_else(|e| panic!("staging {}: {e}", program.display()));
    }
    let temp = std::env::temp_dir();
    let dirs = dir.ancestors().take_while(|p| *p != temp);
    for path in std::iter::once(dest.as_path()).chain(dirs) {
        let meta = std::fs::metadata(path).expect("stat a staged path");
        let mode = meta.permissions().mode();
        let wanted = if meta.is_dir() { 0o001 } else { 0o005 };
        assert!(
            mode & wanted == wanted,
            "{} (mode {:o}) is not reachable by other users",
            path.display(),
            mode & 0o7777
        );
    }
    staged.insert(program.to_path_buf(), dest.clone());
    dest
}

/// `PATH` for an `out` run by another user that starts the embedded daemon:
/// a reachable copy of the tests' buildkitd first, then this process's `PATH`.
pub fn path_env() -> String {
    let buildkitd = reachable(&super::buildkitd::find());
    let dir = buildkitd.parent().expect("a staged file has a directory");
    let system = std::env::var("PATH").unwrap_or_default();
    format!("{}:{system}", dir.display())
}

/// Who runs `out`.
pub enum As {
    /// uid 0 of `unshare --user --map-users=<start>,0,<count> ... --mount
    /// --pid --fork --mount-proc` (root's `/etc/subuid` range).
    UserNamespace {
        /// Root's subordinate range.
        range: (u32, u32),
    },
    /// A plain user.
    User {
        /// Its uid.
        uid: u32,
        /// Its gid.
        gid: u32,
    },
}

/// What a step did.
pub struct Output {
    /// Exit status.
    pub status: ExitStatus,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
    /// The command line, for failure messages.
    pub command: String,
}

impl Output {
    /// Command, status, stdout and stderr for failure messages.
    pub fn details(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }

    /// stdout as one JSON document; panics with everything unless `out`
    /// succeeded.
    #[track_caller]
    pub fn json(&self) -> Value {
        if !self.status.success() {
            panic!("out failed\n{}", self.details());
        }
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.details()))
    }
}

/// Runs `out <work>` as `who` with `request` on stdin, a cleared
/// environment plus `TEST=true` and `PATH=path`; `out` is a
/// [`reachable`] copy of the binary under test.
pub fn run_out(who: &As, work: &Path, request: &Value, path: &str) -> Output {
    let out = reachable(&super::cmd::binary("out"));
    let mut cmd = match who {
        As::UserNamespace {
            range: (start, count),
        } => {
            let mut cmd = Command::new(super::require_tool("unshare", "util-linux"));
            cmd.arg("--user")
                .arg(format!("--map-users={start},0,{count}"))
                .arg(format!("--map-groups={start},0,{count}"))
                .args([
                    "--setuid",
                    "0",
                    "--setgid",
                    "0",
                    "--mount",
                    "--pid",
                    "--fork",
                    "--mount-proc",
                    "--",
                ])
                .arg(&out);
            cmd
        }
        As::User { uid, gid } => {
            use std::os::unix::process::CommandExt;
            let mut cmd = Command::new(&out);
            cmd.uid(*uid).gid(*gid);
            cmd
        }
    };
    cmd.arg(work)
        .current_dir("/")
        .env_clear()
        .env("TEST", "true")
        .env("PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut command = format!("{:?}", cmd.get_program());
    for a in cmd.get_args() {
        let _ = write!(command, " {}", a.to_string_lossy());
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command}: {e}"));
    let input = serde_json::to_vec(request).expect("request JSON");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(600)) {
        Ok(out) => out.expect("collecting out's output"),
        Err(_) => {
            // SAFETY: plain syscall on our own not-yet-reaped child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{command} did not finish within 600 s");
        }
    };
    let _ = writer.join();
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
        command,
    }
}
