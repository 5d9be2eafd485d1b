//! Long-lived helper processes and scratch directories of one test binary.
//!
//! Services (registries, dockerd) are started once per test binary and shared
//! by all tests, so they outlive any single test thread. Two things make sure
//! nothing is left behind when `cargo test` ends:
//! - a `libc::atexit` handler stops every registered pid (SIGTERM, then
//!   SIGKILL after a grace period), deletes the network links the run made
//!   ([`delete_link_at_exit`]) and removes the scratch root; `exit()` runs
//!   it both on success and on the harness' `process::exit(101)`. A `Drop` on a
//!   static would never run.
//! - each child gets `PR_SET_PDEATHSIG = SIGTERM`, so a test binary killed by a
//!   signal still takes its services down; it is forked from one long-lived
//!   spawner thread (`die_with_parent`, `on_spawner_thread`), as the
//!   library's embedded buildkitd is.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// What the exit handler must undo, in reverse order of registration.
enum Cleanup {
    Pid(i32),
    Path(PathBuf),
    Link(String),
}

static CLEANUP: Mutex<Vec<Cleanup>> = Mutex::new(Vec::new());
static ATEXIT: Once = Once::new();

fn register(entry: Cleanup) {
    ATEXIT.call_once(|| {
        // SAFETY: `cleanup_at_exit` is a plain `extern "C" fn()` that never unwinds.
        let rc = unsafe { libc::atexit(cleanup_at_exit) };
        assert_eq!(rc, 0, "registering the test-world exit handler");
    });
    CLEANUP
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(entry);
}

/// Removes `path` (file or directory tree) when the test binary exits.
pub fn remove_at_exit(path: &Path) {
    register(Cleanup::Path(path.to_path_buf()));
}

/// The prefix of the network links a run makes: `oci-it-<pid>`, at most 15
/// bytes (`IFNAMSIZ`), so that a later run can tell whose they are.
pub const LINK_PREFIX: &str = "oci-it-";

/// Deletes the network link `name` (`ip link delete`) when the test binary
/// exits, after its services have stopped.
pub fn delete_link_at_exit(name: &str) {
    register(Cleanup::Link(name.to_string()));
}

fn delete_link(name: &str) {
    let _ = Command::new("ip")
        .args(["link", "delete", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

extern "C" fn cleanup_at_exit() {
    let entries = std::mem::take(&mut *CLEANUP.lock().unwrap_or_else(|p| p.into_inner()));
    let pids: Vec<i32> = entries
        .iter()
        .filter_map(|e| match e {
            Cleanup::Pid(pid) => Some(*pid),
            Cleanup::Path(_) | Cleanup::Link(_) => None,
        })
        .collect();
    for pid in &pids {
        // SAFETY: plain syscall on a pid this process forked and has not reaped.
        unsafe { libc::kill(*pid, libc::SIGTERM) };
    }
    // dockerd needs a few seconds to stop containerd and unmount its layers.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut alive = pids;
    while !alive.is_empty() && Instant::now() < deadline {
        alive.retain(|pid| {
            let mut status = 0;
            // SAFETY: as above; WNOHANG never blocks.
            let rc = unsafe { libc::waitpid(*pid, &mut status, libc::WNOHANG) };
            rc == 0
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in alive {
        // SAFETY: as above.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    for entry in entries.iter().rev() {
        match entry {
            Cleanup::Path(path) => {
                let _ = if path.is_dir() {
                    std::fs::remove_dir_all(path)
                } else {
                    std::fs::remove_file(path)
                };
            }
            Cleanup::Link(name) => delete_link(name),
            Cleanup::Pid(_) => {}
        }
    }
}

/// The per-run scratch root: `$TMPDIR/oci-it-<pid>`, removed at exit.
pub fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        remove_stale_roots();
        let root = std::env::temp_dir().join(format!("oci-it-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("creating the test scratch root");
        remove_at_exit(&root);
        root
    })
}

/// File in the scratch root listing paths outside it that the run created.
const OUTSIDE_PATHS: &str = "outside-paths";

/// Removes `path` (a directory outside the scratch root) at exit, and records
/// it so that a later run removes it if this one is killed.
pub fn remove_with_root(path: &Path) {
    use std::io::Write;
    let list = scratch_root().join(OUTSIDE_PATHS);
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(list)
    {
        let _ = writeln!(file, "{}", path.display());
    }
    remove_at_exit(path);
}

/// Whether `pid` names a live process.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks whether the pid exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Deletes the `oci-it-<pid>` links of earlier test binaries that were
/// killed (their exit handler never ran).
fn delete_stale_links() {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(pid) = name
            .strip_prefix(LINK_PREFIX)
            .and_then(|p| p.parse::<i32>().ok())
            && !alive(pid)
        {
            delete_link(name);
        }
    }
}

/// Removes scratch roots of earlier test binaries that were killed (their
/// exit handler never ran); their services died with them (PDEATHSIG).
fn remove_stale_roots() {
    delete_stale_links();
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("oci-it-"))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if !alive(pid) {
            // Paths outside the root it registered (see `remove_with_root`).
            if let Ok(list) = std::fs::read_to_string(entry.path().join(OUTSIDE_PATHS)) {
                for path in list.lines() {
                    let _ = std::fs::remove_dir_all(path);
                }
            }
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A fresh directory under [`scratch_root`], named after `name`.
pub fn scratch_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = scratch_root().join(format!("{safe}-{n}"));
    std::fs::create_dir_all(&dir).expect("creating a scratch dir");
    dir
}

// Children that die with the test binary. The library has the same two
// helpers for its embedded buildkitd (its `process` module); these are the
// test harness' own copy, because neither crate may depend on the other's
// internals: the library only ever has this crate as a dev-dependency, and
// this crate depending on the library would give the library's unit tests a
// second copy of its types.

/// Makes the child of `cmd` receive `signal` (`PR_SET_PDEATHSIG`) when the
/// thread that forks it ends. The kernel ties the death signal to the
/// forking *thread*, not the process, and the test harness ends its threads
/// when their test is done while services are shared by every test of the
/// binary: fork from [`on_spawner_thread`] so that this means "when the test
/// binary ends". If the test binary died before the child set this up, the
/// spawn fails (ESRCH) rather than leaving a child nobody will stop.
fn die_with_parent(cmd: &mut Command, signal: libc::c_int) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: between fork and exec only async-signal-safe syscalls run
    // (prctl, getppid), and nothing allocates.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // We may have died before prctl took effect; then nobody would
            // ever stop the child.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `job` on the one thread of the test binary that forks every service
/// (started on first use, never ended), and returns its result: see
/// [`die_with_parent`] for why.
fn on_spawner_thread<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("test-service-spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("starting the test service spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(job());
    });
    sender
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(job)
        .expect("the test service spawner thread is alive");
    rx.recv()
        .expect("the test service spawner thread ran the job")
}

/// A service process: output goes to `log`, stopped at exit.
pub struct Service {
    /// What it is, for messages.
    pub name: String,
    /// Its combined stdout/stderr.
    pub log: PathBuf,
    child: Mutex<Child>,
}

impl Service {
    /// Starts `cmd` with its output in `log`, tied to this process' life.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> io::Result<Service> {
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        die_with_parent(&mut cmd, libc::SIGTERM);
        let child = on_spawner_thread(move || cmd.spawn())?;
        register(Cleanup::Pid(child.id() as i32));
        Ok(Service {
            name: name.to_string(),
            log,
            child: Mutex::new(child),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|p| p.into_inner()).id()
    }

    /// `Some(status text)` once the process has exited.
    pub fn exited(&self) -> Option<String> {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        match child.try_wait() {
            Ok(Some(status)) => {
                // Reaped: its pid may be reused, so the exit handler must not signal it.
                let pid = child.id() as i32;
                CLEANUP
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|e| !matches!(e, Cleanup::Pid(p) if *p == pid));
                Some(status.to_string())
            }
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }

    /// Stops the process now: SIGTERM, then SIGKILL after `grace`; reaps it.
    pub fn stop(&self, grace: Duration) {
        let pid = self.pid() as i32;
        // SAFETY: plain syscall on our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while self.exited().is_none() {
            if Instant::now() > deadline {
                let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
                let _ = child.kill();
                let _ = child.wait();
                drop(child);
                self.exited();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Polls `ready` until it is true, the process dies, or `timeout` passes.
    pub fn wait_ready(
        &self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            if let Some(status) = self.exited() {
                return Err(format!(
                    "{} exited ({status}) before it was ready; log:\n{}",
                    self.name,
                    self.log_tail(30)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not ready after {timeout:?}; log:\n{}",
                    self.name,
                    self.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn jobs_run_on_one_long_lived_thread() {
        let first = on_spawner_thread(|| std::thread::current().id());
        let second = std::thread::spawn(|| on_spawner_thread(|| std::thread::current().id()))
            .join()
            .unwrap();
        assert_eq!(first, second);
        assert_ne!(first, std::thread::current().id());
    }

    /// A child forked from a short-lived thread is signalled when that
    /// thread ends; one forked from the spawner thread outlives it.
    #[test]
    fn children_die_with_their_forking_thread_unless_it_is_the_spawner() {
        let sleeper = || {
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            die_with_parent(&mut cmd, libc::SIGKILL);
            cmd
        };
        let mut cmd = sleeper();
        let mut short = std::thread::spawn(move || cmd.spawn().unwrap())
            .join()
            .unwrap();
        let status = short.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");

        let cmd = sleeper();
        let mut long = std::thread::spawn(move || {
            on_spawner_thread(move || {
                let mut cmd = cmd;
                cmd.spawn().unwrap()
            })
        })
        .join()
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(long.try_wait().unwrap().is_none(), "killed with its caller");
        long.kill().unwrap();
        long.wait().unwrap();
    }

    #[test]
    fn a_service_logs_reports_its_exit_and_stops() {
        let dir = scratch_dir("service test");
        assert!(dir.starts_with(scratch_root()));
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started; exec sleep 30"]);
        let service = Service::spawn("sleeper", cmd, dir.join("log")).unwrap();
        service
            .wait_ready(Duration::from_secs(10), || service.log_tail(1) == "started")
            .unwrap();
        assert_eq!(service.exited(), None);
        service.stop(Duration::from_secs(5));
        assert!(service.exited().is_some());

        let quick = Service::spawn("quick", Command::new("true"), dir.join("quick")).unwrap();
        let err = quick
            .wait_ready(Duration::from_secs(10), || false)
            .unwrap_err();
        assert!(err.starts_with("quick exited"), "{err}");
    }
}
