//! The embedded buildkitd: what `out` runs when no daemon address is given.
//!
//! It gets a private root (placed by [`super::root`]) holding its state,
//! its socket, its log and the generated `buildkitd.toml` ([`super::config`]).
//! Startup waits up to 120 s for the daemon to answer (docker-image's
//! `startup_timeout`), and stopping gives SIGTERM 10 s before SIGKILL.
//! Running the process is [`super::process`]'s job.
//!
//! Before starting, [`super::mode`] decides how the daemon can run here;
//! where it cannot, `out` fails with one line before the build instead of
//! BuildKit's raw mount error. A rootless daemon gets `[worker.oci] rootless
//! = true`, the chosen snapshotter and sandbox, and `XDG_RUNTIME_DIR`/`HOME`
//! in its root.
//!
//! Every daemon gets its OpenTelemetry socket in its private root. The
//! default, `/run/buildkit/otel-grpc.sock`, is not writable for a rootless
//! daemon (buildkitd exits on it), and daemons sharing a host (several puts,
//! a test suite) race for it: one fails with "address already in use".

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::{DaemonConfig, RootlessWorker, render_config};
use super::error::{Error, Result};
use super::process::{self, Buildkitd, SpawnOptions};

use super::mode::Mode;
use super::root::{ROOT_PREFIX, default_root_parent, mark_owner, sweep_stale_roots};

/// How to start the daemon.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The `buildkitd` binary.
    pub binary: PathBuf,
    /// The generated config.
    pub config: DaemonConfig,
    /// How long to wait for readiness.
    pub timeout: Duration,
    /// How long SIGTERM gets before SIGKILL.
    pub stop_grace: Duration,
    /// Where the private root may go, best first (see [`super::root::root_candidates`]);
    /// empty = `/scratch` if present, else the temp dir.
    pub root_parents: Vec<PathBuf>,
    /// How the daemon runs (see [`super::mode`]).
    pub mode: Mode,
}

impl StartOptions {
    /// Defaults: 120 s to start (docker-image's `startup_timeout`), 10 s to stop.
    pub fn new(binary: PathBuf, config: DaemonConfig) -> StartOptions {
        StartOptions {
            binary,
            config,
            timeout: Duration::from_secs(120),
            stop_grace: Duration::from_secs(10),
            root_parents: Vec::new(),
            mode: Mode::Privileged,
        }
    }
}

/// A running embedded buildkitd and its private root. Dropping it without
/// [`EmbeddedDaemon::stop`] kills the daemon (SIGKILL, see
/// [`super::process`]) and removes the root.
#[derive(Debug)]
pub struct EmbeddedDaemon {
    // Declared before `root`: the process is signalled before its root goes.
    daemon: Buildkitd,
    root: tempfile::TempDir,
    mode: Mode,
}

impl EmbeddedDaemon {
    /// Prepares the private root and starts the daemon without waiting for
    /// it; [`EmbeddedDaemon::wait_ready`] waits. The caller owns the daemon
    /// from here on, so an interrupted wait can still [`shut it down`].
    ///
    /// [`shut it down`]: EmbeddedDaemon::shutdown
    pub fn spawn(opts: StartOptions) -> Result<EmbeddedDaemon> {
        let mut parents = opts.root_parents.clone();
        if parents.is_empty() {
            parents.push(default_root_parent());
        }
        let mut last = None;
        let mut root = None;
        for parent in &parents {
            sweep_stale_roots(parent);
            match tempfile::Builder::new()
                .prefix(ROOT_PREFIX)
                .tempdir_in(parent)
            {
                Ok(dir) => {
                    if let Err(e) = mark_owner(dir.path()) {
                        tracing::debug!("marking {} as this put's: {e}", dir.path().display());
                    }
                    root = Some(dir);
                    break;
                }
                Err(source) => {
                    tracing::debug!(
                        "buildkitd root cannot go under {}: {source}",
                        parent.display()
                    );
                    last = Some(Error::Root {
                        path: parent.clone(),
                        source,
                    });
                }
            }
        }
        let root = match (root, last) {
            (Some(root), _) => root,
            (None, Some(e)) => return Err(e),
            (None, None) => unreachable!("at least one parent was tried"),
        };
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Root { path, source }
        };
        let certs = root.path().join("certs");
        std::fs::create_dir_all(&certs).map_err(io(&certs))?;
        let mut config = opts.config.clone();
        config.otel_socket = Some(root.path().join("otel.sock"));
        let mut env = Vec::new();
        let mut wrapper = Vec::new();
        if let Some(worker) = opts.mode.rootless() {
            // A rootless buildkitd keeps runc state and sockets under
            // $XDG_RUNTIME_DIR and reads $HOME; neither may be shared or
            // root-owned, so both go in the private root.
            let run = root.path().join("run");
            let home = root.path().join("home");
            for dir in [&run, &home] {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            config.rootless = Some(RootlessWorker { worker });
            config.otel_socket = Some(run.join("otel.sock"));
            env.push(("XDG_RUNTIME_DIR".into(), run.into_os_string()));
            env.push(("HOME".into(), home.into_os_string()));
        }
        if let Mode::Rootlesskit { binary, .. } = &opts.mode {
            // --pidns: the daemon's builds end with it, as with `isolate`
            // (rootlesskit already gives it a mount namespace).
            wrapper = vec![
                binary.clone().into_os_string(),
                "--pidns".into(),
                "--state-dir".into(),
                root.path().join("rootlesskit").into_os_string(),
            ];
        }
        let (toml, files) = render_config(&config, &certs)?;
        for (path, pem) in files {
            std::fs::write(&path, pem).map_err(io(&path))?;
        }
        let config_path = root.path().join("buildkitd.toml");
        std::fs::write(&config_path, toml).map_err(io(&config_path))?;
        let daemon = Buildkitd::spawn(SpawnOptions {
            isolate: matches!(opts.mode, Mode::Privileged),
            binary: opts.binary,
            wrapper,
            env,
            root: root.path().join("state"),
            socket: root.path().join("buildkitd.sock"),
            config: Some(config_path),
            log: root.path().join("buildkitd.log"),
            debug: opts.config.debug,
            timeout: opts.timeout,
            stop_grace: opts.stop_grace,
        })?;
        Ok(EmbeddedDaemon {
            daemon,
            root,
            mode: opts.mode,
        })
    }

    /// Waits until `probe(socket)` says the daemon answers (pass
    /// [`super::process::answers`]).
    pub async fn wait_ready<P, F>(&mut self, probe: P) -> Result<()>
    where
        P: Fn(PathBuf) -> F,
        F: std::future::Future<Output = bool>,
    {
        self.daemon.wait_ready(probe).await
    }

    /// [`EmbeddedDaemon::spawn`] and [`EmbeddedDaemon::wait_ready`].
    pub async fn start<P, F>(opts: StartOptions, probe: P) -> Result<EmbeddedDaemon>
    where
        P: Fn(PathBuf) -> F,
        F: std::future::Future<Output = bool>,
    {
        let mut d = EmbeddedDaemon::spawn(opts)?;
        d.wait_ready(probe).await?;
        Ok(d)
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &Path {
        self.daemon.socket()
    }

    /// The private root (state, config, log).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.log_tail(lines)
    }

    /// Stops the daemon: SIGTERM, then SIGKILL after the grace period.
    pub async fn stop(&mut self) {
        self.daemon.stop().await;
    }

    /// Stops the daemon (as [`EmbeddedDaemon::stop`], killing what it left
    /// running), detaches every mount left under its root and removes the
    /// root. Returns what was done, for the one-line report of an abort.
    pub async fn shutdown(mut self) -> String {
        let killed = self.daemon.stop().await;
        let root = self.root.path().to_path_buf();
        let unmounted = process::unmount_under(&root);
        let removed = match remove_root(&root, &self.mode) {
            Ok(()) => "removed its root".to_string(),
            Err(e) => format!("could not remove its root {}: {e}", root.display()),
        };
        let mut parts = vec!["stopped the embedded buildkitd".to_string()];
        if killed > 0 {
            parts.push(format!("killed {killed} process(es) it left"));
        }
        if unmounted > 0 {
            parts.push(format!("unmounted {unmounted} mount(s)"));
        }
        parts.push(removed);
        parts.join(", ")
    }
}

impl Drop for EmbeddedDaemon {
    /// A daemon dropped without [`EmbeddedDaemon::shutdown`] (a panic, an
    /// early return) is killed by [`Buildkitd`]'s own drop; detach what it
    /// left mounted so the root's removal does not walk into its mounts.
    fn drop(&mut self) {
        if self.daemon.pid().is_some() {
            self.daemon.kill_now();
        }
        process::unmount_under(self.root.path());
        if matches!(self.mode, Mode::Rootlesskit { .. }) && self.root.path().exists() {
            let _ = remove_root(self.root.path(), &self.mode);
        }
    }
}

/// Removes the daemon's root. Under `rootlesskit`, layers may hold files of
/// the user's subordinate ids, which only root of a user namespace with
/// those ids mapped may remove: a second `rootlesskit` runs `rm -rf` there.
fn remove_root(root: &Path, mode: &Mode) -> std::io::Result<()> {
    let first = match std::fs::remove_dir_all(root) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => e,
    };
    let Mode::Rootlesskit { binary, .. } = mode else {
        return Err(first);
    };
    let state = tempfile::Builder::new()
        .prefix(".rootlesskit-rm-")
        .tempdir()?;
    let status = std::process::Command::new(binary)
        .arg("--state-dir")
        .arg(state.path().join("s"))
        .args(["rm", "-rf", "--"])
        .arg(root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    if status.success() && !root.exists() {
        Ok(())
    } else {
        Err(first)
    }
}

#[cfg(test)]
mod tests;
