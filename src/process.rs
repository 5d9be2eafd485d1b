//! Child processes that die with us: the embedded buildkitd
//! (`src/daemon/process.rs`) and the buildkitd tests/it starts
//! (`tests/it/support/buildkitd.rs`). The test harness' services
//! (`crates/test-support/src/process.rs`) use their own copy of these
//! helpers, as that crate does not depend on this one.
//!
//! A child gets `PR_SET_PDEATHSIG` ([`die_with_parent`]) so that it is
//! signalled when we die, even by SIGKILL. That signal fires when the
//! *thread* that forked the child ends, not the process, and tokio (or a
//! test harness) may end its threads at will, so every such child is forked
//! from one dedicated thread that lives as long as the process
//! ([`on_spawner_thread`]).
//!
//! The signals that end a step early, SIGTERM and SIGINT, arrive as an
//! [`Interrupt`] the step races its work against.

use std::os::unix::process::CommandExt;
use std::sync::{Mutex, OnceLock, mpsc};

use nix::sys::signal::Signal;
use tokio::sync::watch;

/// Makes the child of `cmd` receive `signal` when the thread that forks it
/// ends. Fork from [`on_spawner_thread`] so that this means "when this
/// process ends". If we died before the child set this up, the spawn fails
/// (ESRCH) rather than leaving a child nobody will stop.
pub fn die_with_parent(cmd: &mut std::process::Command, signal: Signal) {
    let parent = nix::unistd::getpid();
    // SAFETY: between fork and exec only async-signal-safe syscalls run
    // (prctl, getppid), and nothing allocates.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(signal)?;
            // We may have died before prctl took effect; then nobody would
            // ever stop the child.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `job` on the one thread that forks every child tied to this
/// process (see the module docs), and returns its result.
pub fn on_spawner_thread<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("child-spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("starting the child spawner thread");
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
        .expect("the child spawner thread is alive");
    rx.recv().expect("the child spawner thread ran the job")
}

/// SIGTERM or SIGINT received while a step runs, as a future a step races
/// its work against.
///
/// Concourse sends SIGTERM when a build is aborted. A step that owns
/// something outside the process (`out`'s embedded buildkitd, its runc
/// containers and mounts; `in`'s partial destination) must release it before
/// exiting, so the signal cancels the work instead of ending the process:
/// the step drops its in-flight future, runs its cleanup, and returns
/// an `Interrupted` error.
#[derive(Debug, Clone)]
pub struct Interrupt {
    rx: watch::Receiver<Option<&'static str>>,
}

impl Interrupt {
    /// Listens for SIGTERM and SIGINT from now on. Must run inside a tokio
    /// runtime. If the handlers cannot be installed the step runs without
    /// them (the signal then ends the process as before) and a warning says so.
    pub fn listen() -> Interrupt {
        use tokio::signal::unix::{SignalKind, signal};
        let (tx, rx) = watch::channel(None);
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::spawn(async move {
                    let name = tokio::select! {
                        _ = term.recv() => "SIGTERM",
                        _ = int.recv() => "SIGINT",
                    };
                    let _ = tx.send(Some(name));
                    // Keep the handlers installed (and the channel open)
                    // while the cleanup runs: a second signal must not kill
                    // the process half-way through it.
                    std::future::pending::<()>().await;
                });
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("cannot handle SIGTERM/SIGINT, cleanup on abort is skipped: {e}");
            }
        }
        Interrupt { rx }
    }

    /// Never fires: for callers (tests, library users) without signals.
    pub fn never() -> Interrupt {
        let (tx, rx) = watch::channel(None);
        // Leak the sender so the receiver never sees the channel close.
        std::mem::forget(tx);
        Interrupt { rx }
    }

    /// An interrupt fired by hand (tests).
    pub fn manual() -> (watch::Sender<Option<&'static str>>, Interrupt) {
        let (tx, rx) = watch::channel(None);
        (tx, Interrupt { rx })
    }

    /// Resolves with the signal's name once one arrived; pends forever
    /// otherwise.
    pub async fn wait(&self) -> &'static str {
        let mut rx = self.rx.clone();
        loop {
            if let Some(name) = *rx.borrow_and_update() {
                return name;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// The signal's name if one already arrived.
    pub fn fired(&self) -> Option<&'static str> {
        *self.rx.borrow()
    }
}

#[cfg(test)]
mod tests;
