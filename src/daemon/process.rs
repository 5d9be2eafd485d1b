//! Running a `buildkitd` binary as a child process: spawn it with a given
//! root, socket and config file, wait until it answers, and stop it.
//!
//! Where the root lives, what the config says and how long to wait are the
//! caller's policy (the put's is in [`super::embedded`]). Here: the daemon
//! writes stdout and stderr to one log file, whose tail every start-up
//! failure quotes; readiness is a caller-given probe (the socket merely
//! existing is not enough, buildkitd creates it before its services are up,
//! see [`answers`]); stopping is SIGTERM, a grace period, then SIGKILL, by
//! pid.
//!
//! The child is a [`tokio::process::Child`], so waiting never blocks a
//! runtime thread. It gets `PR_SET_PDEATHSIG = SIGKILL` so that it dies with
//! us, and is forked from the one thread that lives as long as the process
//! (see `src/process.rs`).
//! Dropping a [`Buildkitd`] that was not stopped sends SIGKILL without
//! waiting (tokio reaps the process in the background).
//!
//! A daemon stopped mid-build may leave its runc containers (children of
//! runc, itself a child of buildkitd) running and their mounts under its
//! root: [`Buildkitd::stop`] kills the descendants that outlive the daemon,
//! and [`unmount_under`] detaches what is still mounted under a directory.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::error::{Error, Result};
use crate::buildkit::{Address, Client};

/// `buildkitd` on PATH, if any.
pub fn find_on_path() -> Option<PathBuf> {
    find_program("buildkitd")
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The readiness probe for a real buildkitd: it answers `Info` and
/// `ListWorkers` on `socket` (see [`Client::info`]).
pub async fn answers(socket: PathBuf) -> bool {
    match Client::connect(&Address::Unix(socket)).await {
        Ok(c) => c.info().await.is_ok(),
        Err(_) => false,
    }
}

/// How to run one buildkitd.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// The `buildkitd` binary.
    pub binary: PathBuf,
    /// A command that runs the daemon (program and its arguments, the
    /// daemon's command line follows), e.g. `rootlesskit --state-dir DIR`;
    /// empty runs the binary directly.
    pub wrapper: Vec<OsString>,
    /// Run the daemon as the init of its own PID and mount namespaces
    /// (util-linux `unshare`, when on PATH and `wrapper` is empty): when it
    /// dies, for any reason, the kernel kills every process of its builds
    /// and its mounts go with the namespace, so even a SIGKILL of the put
    /// leaves no RUN step running and nothing mounted. Needs CAP_SYS_ADMIN.
    pub isolate: bool,
    /// Environment variables added for the daemon.
    pub env: Vec<(OsString, OsString)>,
    /// Its state directory (`--root`).
    pub root: PathBuf,
    /// The unix socket it listens on (`--addr unix://...`).
    pub socket: PathBuf,
    /// Its `buildkitd.toml` (`--config`), if any.
    pub config: Option<PathBuf>,
    /// File receiving its stdout and stderr (created or truncated).
    pub log: PathBuf,
    /// Pass `--debug`.
    pub debug: bool,
    /// How long to wait for readiness.
    pub timeout: Duration,
    /// How long SIGTERM gets before SIGKILL.
    pub stop_grace: Duration,
}

/// A running buildkitd.
#[derive(Debug)]
pub struct Buildkitd {
    child: Option<Child>,
    /// `child` is `unshare`, and the daemon its only child.
    isolated: bool,
    socket: PathBuf,
    log: PathBuf,
    timeout: Duration,
    stop_grace: Duration,
}

impl Buildkitd {
    /// Starts the daemon and waits until `probe(socket)` says it answers
    /// (pass [`answers`] for a real buildkitd). On a timeout the daemon is
    /// stopped before the error is returned.
    pub async fn start<P, F>(opts: SpawnOptions, probe: P) -> Result<Buildkitd>
    where
        P: Fn(PathBuf) -> F,
        F: std::future::Future<Output = bool>,
    {
        let mut daemon = Buildkitd::spawn(opts)?;
        daemon.wait_ready(probe).await?;
        Ok(daemon)
    }

    /// Starts the daemon without waiting for it: the caller owns it (and so
    /// can stop it) while [`Buildkitd::wait_ready`] runs.
    pub fn spawn(opts: SpawnOptions) -> Result<Buildkitd> {
        let log_error = |source| Error::Log {
            path: opts.log.clone(),
            source,
        };
        let log_file = File::create(&opts.log).map_err(log_error)?;
        let log_err = log_file.try_clone().map_err(log_error)?;

        let unshare = (opts.isolate && opts.wrapper.is_empty())
            .then(|| find_program("unshare"))
            .flatten();
        let isolated = unshare.is_some();
        let mut cmd = match (opts.wrapper.split_first(), unshare) {
            (Some((program, args)), _) => {
                let mut cmd = std::process::Command::new(program);
                cmd.args(args).arg(&opts.binary);
                cmd
            }
            (None, Some(unshare)) => {
                let mut cmd = std::process::Command::new(unshare);
                // --kill-child: SIGKILL to the daemon when unshare dies
                // (which dies with us, below); the daemon is the PID
                // namespace's init, whose death ends the namespace.
                cmd.args([
                    "--pid",
                    "--fork",
                    "--kill-child",
                    "--mount",
                    "--propagation",
                    "private",
                    "--mount-proc",
                ])
                .arg(&opts.binary);
                cmd
            }
            (None, None) => std::process::Command::new(&opts.binary),
        };
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)))
            .arg("--root")
            .arg(&opts.root)
            .arg("--addr")
            .arg(format!("unix://{}", opts.socket.display()))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        if let Some(config) = &opts.config {
            cmd.arg("--config").arg(config);
        }
        if opts.debug {
            cmd.arg("--debug");
        }
        crate::process::die_with_parent(&mut cmd, Signal::SIGKILL);
        let mut cmd = Command::from(cmd);
        cmd.kill_on_drop(true);
        // tokio registers the child with the runtime's SIGCHLD handling, so
        // the spawner thread enters this runtime for the call.
        let runtime = tokio::runtime::Handle::current();
        let child = crate::process::on_spawner_thread(move || {
            let _guard = runtime.enter();
            cmd.spawn()
        })
        .map_err(|source| Error::Spawn {
            binary: opts
                .wrapper
                .first()
                .map_or(opts.binary.clone(), PathBuf::from),
            source,
        })?;
        tracing::info!(pid = child.id(), root = %opts.root.display(), "started buildkitd");
        Ok(Buildkitd {
            child: Some(child),
            isolated,
            socket: opts.socket.clone(),
            log: opts.log.clone(),
            timeout: opts.timeout,
            stop_grace: opts.stop_grace,
        })
    }

    /// Waits until `probe(socket)` says the daemon answers (pass
    /// [`answers`] for a real buildkitd). On a timeout the daemon is stopped
    /// before the error is returned.
    pub async fn wait_ready<P, F>(&mut self, probe: P) -> Result<()>
    where
        P: Fn(PathBuf) -> F,
        F: std::future::Future<Output = bool>,
    {
        let daemon = self;
        let started = Instant::now();
        loop {
            if let Some(child) = daemon.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                daemon.child = None;
                return Err(Error::Exited {
                    status: status.to_string(),
                    tail: daemon.log_tail(30),
                });
            }
            if daemon.socket.exists() && probe(daemon.socket.clone()).await {
                tracing::info!(
                    "buildkitd ready after {:.1}s",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if started.elapsed() >= daemon.timeout {
                let err = Error::Timeout {
                    socket: daemon.socket.clone(),
                    secs: daemon.timeout.as_secs(),
                    tail: daemon.log_tail(30),
                };
                daemon.stop().await;
                return Err(err);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The last `lines` lines of the daemon's log (at most 64 KiB read).
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf);
            text = String::from_utf8_lossy(&buf).into_owned();
        }
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        if tail.is_empty() {
            "(empty)".into()
        } else {
            tail
        }
    }

    /// Stops the daemon: SIGTERM, then SIGKILL after the grace period, by
    /// pid; returns once the process is reaped. Its descendants (runc and
    /// the containers of a build it was running) that outlive it are killed
    /// too; returns how many.
    pub async fn stop(&mut self) -> usize {
        let Some(mut child) = self.child.take() else {
            return 0;
        };
        // `None` once tokio has reaped it: then there is nothing to signal.
        let Some(pid) = child.id().map(|id| Pid::from_raw(id as i32)) else {
            return 0;
        };
        // Taken before the signal: once the daemon is gone its orphans no
        // longer show it as their parent.
        let descendants = descendants(pid.as_raw());
        // unshare does not pass SIGTERM on: the daemon gets it directly.
        let target = match self.isolated {
            true => first_child(pid.as_raw()).map_or(pid, Pid::from_raw),
            false => pid,
        };
        let _ = kill(target, Signal::SIGTERM);
        if tokio::time::timeout(self.stop_grace, child.wait())
            .await
            .is_err()
        {
            tracing::warn!("buildkitd did not stop on SIGTERM; killing it");
            let _ = kill(pid, Signal::SIGKILL);
            let _ = child.wait().await;
        }
        let mut killed = 0;
        for (pid, start) in descendants {
            // Same pid and start time: the same process, not a reused pid.
            if proc_stat(pid).is_some_and(|s| s.start == start && s.state != 'Z')
                && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
            {
                killed += 1;
            }
        }
        if killed > 0 {
            tracing::warn!("killed {killed} process(es) buildkitd left running");
        }
        killed
    }
}

impl Buildkitd {
    /// SIGKILL to the daemon and its descendants, without waiting (tokio
    /// reaps the daemon in the background). For drop paths, where nothing
    /// can be awaited.
    pub fn kill_now(&mut self) {
        let Some(pid) = self.child.as_ref().and_then(Child::id) else {
            return;
        };
        let descendants = descendants(pid as i32);
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        for (pid, start) in descendants {
            if proc_stat(pid).is_some_and(|s| s.start == start) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// `name` in a directory of `$PATH`, when it is an executable file there.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// Bytes written so far (`/proc/<pid>/io`, `wchar`: files, pipes and
/// sockets) by process `pid` and its descendants; `None` when `pid` is gone
/// or its io file cannot be read. It moves fast while a daemon pushes.
pub fn tree_io(pid: u32) -> Option<u64> {
    let pid = i32::try_from(pid).ok()?;
    let own = process_io(pid)?;
    Some(
        descendants(pid)
            .into_iter()
            .filter_map(|(p, _)| process_io(p))
            .fold(own, u64::saturating_add),
    )
}

fn process_io(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    field("wchar:")
}

/// The first child of `pid` (`/proc/<pid>/task/<pid>/children`).
fn first_child(pid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether process `pid` still runs and started at `start` (clock ticks
/// since boot): a pid alone may have been reused.
pub(super) fn is_alive(pid: i32, start: u64) -> bool {
    proc_stat(pid).is_some_and(|s| s.start == start && s.state != 'Z')
}

/// This process's start time (clock ticks since boot), for [`is_alive`].
pub(super) fn own_start_time() -> Option<u64> {
    proc_stat(std::process::id() as i32).map(|s| s.start)
}

/// What `/proc/<pid>/stat` says that matters here.
struct ProcStat {
    state: char,
    ppid: i32,
    /// Start time in clock ticks since boot: with the pid, names a process.
    start: u64,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses; the
    // fields after it start after the last ") ".
    let (_, rest) = text.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Every live descendant of `root`, as (pid, start time).
fn descendants(root: i32) -> Vec<(i32, u64)> {
    let mut all = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
                && let Some(stat) = proc_stat(pid)
            {
                all.push((pid, stat));
            }
        }
    }
    let mut found: Vec<(i32, u64)> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, stat) in &all {
            if stat.ppid == parent && !found.iter().any(|(p, _)| p == pid) {
                found.push((*pid, stat.start));
                frontier.push(*pid);
            }
        }
    }
    found
}

/// Mount points at or under `dir`, deepest first, from a
/// `/proc/self/mountinfo` text (field 5, with its octal escapes undone).
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// `\040` (space), `\011`, `\012`, `\134`: mountinfo's escapes.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detaches (`umount2(MNT_DETACH)`) every mount at or under `dir`, deepest
/// first, so the directory can be removed; returns how many were detached.
/// A daemon killed mid-build leaves its snapshot (overlay) mounts there.
pub fn unmount_under(dir: &Path) -> usize {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return 0;
    };
    let mut done = 0;
    for mount in mounts_under(&info, &dir) {
        match nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => done += 1,
            Err(e) => tracing::warn!("unmounting {}: {e}", mount.display()),
        }
    }
    done
}

#[cfg(test)]
mod tests;
