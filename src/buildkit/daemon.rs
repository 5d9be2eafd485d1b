//! The embedded buildkitd: what `out` runs when no daemon address is given.
//!
//! It gets a private root (under `/scratch` when that exists, as
//! oci-build-task does, else the temp dir) holding its state, its socket,
//! its log and a generated `buildkitd.toml`: Docker Hub mirrors, and for the
//! registries we talk to their CA and `http`/`insecure` settings, merged with
//! the user's extra TOML (theirs wins key by key, so redefining a generated
//! table does not clash). Startup waits for the socket to answer a probe,
//! with a timeout; every failure quotes the tail of the daemon's log. The
//! daemon is stopped with SIGTERM, then SIGKILL after a grace period, by pid,
//! on [`EmbeddedDaemon::stop`] or on drop; it also gets SIGKILL if `out`
//! itself dies (parent-death signal).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Why the embedded daemon could not be set up or started.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// No address configured and no `buildkitd` to run.
    #[error(
        "no BuildKit daemon to build with: set source.buildkit_host (unix:///path, tcp://host:port or \
         docker:///var/run/docker.sock), set BUILDKIT_HOST, or run this resource from an image with \
         `buildkitd` on PATH (the resource image has it) to use the embedded daemon"
    )]
    NotConfigured,
    /// The user's extra config is not TOML.
    #[error("buildkit_extra_config is not valid TOML")]
    ExtraConfig(#[source] toml::de::Error),
    /// The generated config could not be serialised (a bug).
    #[error("rendering buildkitd.toml")]
    Render(#[source] toml::ser::Error),
    /// The private root could not be prepared.
    #[error("preparing the buildkitd root {}", path.display())]
    Root {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The binary could not be started.
    #[error("starting {}", binary.display())]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The daemon exited while starting.
    #[error("buildkitd exited while starting ({status}); last lines of its log:\n{tail}")]
    Exited {
        /// Exit status.
        status: String,
        /// Log tail.
        tail: String,
    },
    /// The daemon did not answer in time.
    #[error("buildkitd did not answer on {} within {secs}s; last lines of its log:\n{tail}", socket.display())]
    Timeout {
        /// The socket polled.
        socket: PathBuf,
        /// The timeout.
        secs: u64,
        /// Log tail.
        tail: String,
    },
}

type Result<T, E = DaemonError> = std::result::Result<T, E>;

/// TLS/plain-HTTP settings for one registry host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryHost {
    /// `host[:port]` as BuildKit dials it (`docker.io` for Docker Hub).
    pub host: String,
    /// CA certificates (PEM) to trust for it.
    pub ca_pems: Vec<String>,
    /// Talk plain HTTP to it.
    pub http: bool,
    /// Skip TLS verification (BuildKit's `insecure`). The put params never
    /// set it (`source.insecure` means plain HTTP allowed, see
    /// `build::run::registry_host`); only a user's extra TOML can.
    pub insecure: bool,
}

/// What goes into the generated buildkitd.toml.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaemonConfig {
    /// Docker Hub mirrors, `host[:port]`.
    pub mirrors: Vec<String>,
    /// Per-registry settings.
    pub registries: Vec<RegistryHost>,
    /// The user's raw TOML, merged last.
    pub extra: Option<String>,
    /// `debug = true`.
    pub debug: bool,
}

/// Checks the user's extra TOML on its own, before anything starts.
pub fn validate_extra(extra: &str) -> Result<toml::Table> {
    extra
        .parse::<toml::Table>()
        .map_err(DaemonError::ExtraConfig)
}

/// Renders buildkitd.toml. CA files are named under `certs_dir`; the
/// returned list says which file gets which PEM.
pub fn render_config(
    cfg: &DaemonConfig,
    certs_dir: &Path,
) -> Result<(String, Vec<(PathBuf, String)>)> {
    use toml::{Table, Value};
    let mut root = Table::new();
    if cfg.debug {
        root.insert("debug".into(), Value::Boolean(true));
    }
    let mut registries = Table::new();
    let mut files = Vec::new();
    let entry = |registries: &mut Table, host: &str| -> Table {
        match registries.remove(host) {
            Some(Value::Table(t)) => t,
            _ => Table::new(),
        }
    };
    if !cfg.mirrors.is_empty() {
        let mut t = entry(&mut registries, "docker.io");
        t.insert(
            "mirrors".into(),
            Value::Array(cfg.mirrors.iter().cloned().map(Value::String).collect()),
        );
        registries.insert("docker.io".into(), Value::Table(t));
    }
    for reg in &cfg.registries {
        let mut t = entry(&mut registries, &reg.host);
        // BuildKit tries plain HTTP first for loopback hosts; a TLS registry
        // there needs `http = false` said explicitly (test-world.md).
        t.insert("http".into(), Value::Boolean(reg.http));
        if reg.insecure {
            t.insert("insecure".into(), Value::Boolean(true));
        }
        if !reg.ca_pems.is_empty() {
            let safe: String = reg
                .host
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let mut cas = Vec::new();
            for (i, pem) in reg.ca_pems.iter().enumerate() {
                let path = certs_dir.join(format!("{safe}-{i}.pem"));
                cas.push(Value::String(path.display().to_string()));
                files.push((path, pem.clone()));
            }
            t.insert("ca".into(), Value::Array(cas));
        }
        registries.insert(reg.host.clone(), Value::Table(t));
    }
    if !registries.is_empty() {
        root.insert("registry".into(), Value::Table(registries));
    }
    if let Some(extra) = &cfg.extra {
        merge(&mut root, validate_extra(extra)?);
    }
    let text = toml::to_string(&root).map_err(DaemonError::Render)?;
    Ok((text, files))
}

/// Deep-merges `over` into `base`: tables merge, everything else is replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// `buildkitd` on PATH, if any.
pub fn find_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("buildkitd"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

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
    /// Parent of the private root; `None` = `/scratch` if present, else the temp dir.
    pub root_parent: Option<PathBuf>,
}

impl StartOptions {
    /// Defaults: 120 s to start (docker-image's `startup_timeout`), 10 s to stop.
    pub fn new(binary: PathBuf, config: DaemonConfig) -> StartOptions {
        StartOptions {
            binary,
            config,
            timeout: Duration::from_secs(120),
            stop_grace: Duration::from_secs(10),
            root_parent: None,
        }
    }
}

/// A running embedded buildkitd.
#[derive(Debug)]
pub struct EmbeddedDaemon {
    child: Option<Child>,
    root: tempfile::TempDir,
    socket: PathBuf,
    log: PathBuf,
    stop_grace: Duration,
}

impl EmbeddedDaemon {
    /// Starts the daemon and waits until `probe(socket)` says it answers
    /// (the caller passes a real gRPC call; the socket merely existing is not
    /// enough, the daemon creates it before its services are up).
    pub async fn start<P, F>(opts: StartOptions, probe: P) -> Result<EmbeddedDaemon>
    where
        P: Fn(PathBuf) -> F,
        F: std::future::Future<Output = bool>,
    {
        let parent = opts.root_parent.clone().unwrap_or_else(|| {
            let scratch = Path::new("/scratch");
            if scratch.is_dir() {
                scratch.to_path_buf()
            } else {
                std::env::temp_dir()
            }
        });
        let root = tempfile::Builder::new()
            .prefix("buildkitd-")
            .tempdir_in(&parent)
            .map_err(|source| DaemonError::Root {
                path: parent.clone(),
                source,
            })?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DaemonError::Root { path, source }
        };
        let certs = root.path().join("certs");
        std::fs::create_dir_all(&certs).map_err(io(&certs))?;
        let (toml, files) = render_config(&opts.config, &certs)?;
        for (path, pem) in files {
            std::fs::write(&path, pem).map_err(io(&path))?;
        }
        let config_path = root.path().join("buildkitd.toml");
        std::fs::write(&config_path, toml).map_err(io(&config_path))?;
        let socket = root.path().join("buildkitd.sock");
        let log = root.path().join("buildkitd.log");
        let log_file = File::create(&log).map_err(io(&log))?;
        let log_err = log_file.try_clone().map_err(io(&log))?;

        let mut cmd = Command::new(&opts.binary);
        cmd.arg("--root")
            .arg(root.path().join("state"))
            .arg("--addr")
            .arg(format!("unix://{}", socket.display()))
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        if opts.config.debug {
            cmd.arg("--debug");
        }
        // SAFETY: prctl is async-signal-safe and touches no Rust state; it
        // makes the kernel SIGKILL the daemon if `out` dies without dropping it.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| DaemonError::Spawn {
            binary: opts.binary.clone(),
            source,
        })?;
        tracing::info!(pid = child.id(), root = %root.path().display(), "started buildkitd");
        let mut daemon = EmbeddedDaemon {
            child: Some(child),
            root,
            socket,
            log,
            stop_grace: opts.stop_grace,
        };

        let started = Instant::now();
        loop {
            if let Some(child) = daemon.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                daemon.child = None;
                return Err(DaemonError::Exited {
                    status: status.to_string(),
                    tail: daemon.log_tail(30),
                });
            }
            if daemon.socket.exists() && probe(daemon.socket.clone()).await {
                tracing::info!(
                    "buildkitd ready after {:.1}s",
                    started.elapsed().as_secs_f64()
                );
                return Ok(daemon);
            }
            if started.elapsed() >= opts.timeout {
                let err = DaemonError::Timeout {
                    socket: daemon.socket.clone(),
                    secs: opts.timeout.as_secs(),
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

    /// The private root (state, config, log).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
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

    /// Stops the daemon: SIGTERM, then SIGKILL after the grace period.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + self.stop_grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!("buildkitd did not stop on SIGTERM; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for EmbeddedDaemon {
    // Blocking, but only on error paths that skipped `stop`, at the end of
    // the process.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + self.stop_grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_with_mirrors_registries_and_merged_extra() {
        let cfg = DaemonConfig {
            mirrors: vec!["mirror.local:5000".into()],
            registries: vec![
                RegistryHost {
                    host: "127.0.0.1:5443".into(),
                    ca_pems: vec!["PEM".into()],
                    ..Default::default()
                },
                RegistryHost {
                    host: "plain.local:5000".into(),
                    http: true,
                    insecure: true,
                    ..Default::default()
                },
            ],
            extra: Some("[registry.\"docker.io\"]\nhttp = true\n[worker.oci]\ngc = false\n".into()),
            debug: false,
        };
        let (text, files) = render_config(&cfg, Path::new("/r/certs")).unwrap();
        let parsed: toml::Table = text.parse().unwrap();
        let reg = parsed["registry"].as_table().unwrap();
        assert_eq!(
            reg["docker.io"]["mirrors"].as_array().unwrap()[0].as_str(),
            Some("mirror.local:5000")
        );
        // The extra config adds to the generated docker.io table instead of clashing.
        assert_eq!(reg["docker.io"]["http"].as_bool(), Some(true));
        assert_eq!(reg["127.0.0.1:5443"]["http"].as_bool(), Some(false));
        assert_eq!(
            reg["127.0.0.1:5443"]["ca"].as_array().unwrap()[0].as_str(),
            Some("/r/certs/127.0.0.1_5443-0.pem")
        );
        assert_eq!(reg["plain.local:5000"]["insecure"].as_bool(), Some(true));
        assert_eq!(parsed["worker"]["oci"]["gc"].as_bool(), Some(false));
        assert_eq!(
            files,
            vec![(
                PathBuf::from("/r/certs/127.0.0.1_5443-0.pem"),
                "PEM".to_string()
            )]
        );
    }

    #[test]
    fn empty_config_is_empty_and_bad_extra_is_refused() {
        let (text, files) = render_config(&DaemonConfig::default(), Path::new("/c")).unwrap();
        assert_eq!(text, "");
        assert!(files.is_empty());
        let cfg = DaemonConfig {
            extra: Some("[registry\nbroken".into()),
            ..Default::default()
        };
        let err = render_config(&cfg, Path::new("/c")).unwrap_err();
        assert!(matches!(err, DaemonError::ExtraConfig(_)), "{err}");
    }

    /// Writes a fake `buildkitd` shell script; `body` sees `$SOCK`.
    fn fake(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("buildkitd");
        let script = format!(
            "#!/bin/sh\nwhile [ $# -gt 0 ]; do case \"$1\" in --addr) SOCK=\"${{2#unix://}}\"; shift;; esac; shift; done\n{body}\n"
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn options(binary: PathBuf, parent: &Path) -> StartOptions {
        StartOptions {
            timeout: Duration::from_secs(5),
            stop_grace: Duration::from_millis(500),
            root_parent: Some(parent.to_path_buf()),
            ..StartOptions::new(binary, DaemonConfig::default())
        }
    }

    async fn socket_exists(p: PathBuf) -> bool {
        p.exists()
    }

    fn alive(pid: u32) -> bool {
        kill(Pid::from_raw(pid as i32), None).is_ok()
    }

    #[tokio::test]
    async fn starts_waits_for_readiness_and_stops_with_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake(
            dir.path(),
            "echo starting; trap 'echo got TERM; exit 0' TERM; sleep 0.3; : > \"$SOCK\"; while :; do sleep 0.05; done",
        );
        let mut d = EmbeddedDaemon::start(options(bin, dir.path()), socket_exists)
            .await
            .unwrap();
        assert!(d.socket().exists());
        assert!(d.root().join("buildkitd.toml").exists());
        let pid = d.pid().unwrap();
        assert!(alive(pid));
        d.stop().await;
        assert!(!alive(pid));
        assert!(d.log_tail(5).contains("got TERM"), "{}", d.log_tail(5));
    }

    #[tokio::test]
    async fn a_daemon_that_dies_reports_its_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake(
            dir.path(),
            "echo 'failed to mount overlay: permission denied' >&2; exit 3",
        );
        let err = EmbeddedDaemon::start(options(bin, dir.path()), socket_exists)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("exit status: 3") && msg.contains("permission denied"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_silent_daemon_times_out_and_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        // Ignores SIGTERM (inherited across exec), never opens its socket.
        let bin = fake(dir.path(), "echo stuck; trap '' TERM; exec sleep 60");
        let mut opts = options(bin, dir.path());
        opts.timeout = Duration::from_millis(600);
        let started = Instant::now();
        let err = EmbeddedDaemon::start(opts, socket_exists)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DaemonError::Timeout { tail, .. } if tail.contains("stuck")),
            "{err}"
        );
        // 0.6 s wait + 0.5 s grace, then SIGKILL.
        assert!(started.elapsed() < Duration::from_secs(4));
        let stray = std::process::Command::new("pgrep")
            .args(["-f", &dir.path().join("buildkitd").display().to_string()])
            .output();
        if let Ok(out) = stray {
            assert!(out.stdout.is_empty(), "fake daemon still running");
        }
    }

    #[tokio::test]
    async fn drop_stops_the_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake(dir.path(), ": > \"$SOCK\"; exec sleep 60");
        let d = EmbeddedDaemon::start(options(bin, dir.path()), socket_exists)
            .await
            .unwrap();
        let pid = d.pid().unwrap();
        let root = d.root().to_path_buf();
        drop(d);
        assert!(!alive(pid));
        assert!(!root.exists(), "private root removed");
    }

    #[test]
    fn not_configured_names_the_three_options() {
        let msg = DaemonError::NotConfigured.to_string();
        assert!(
            msg.contains("buildkit_host")
                && msg.contains("BUILDKIT_HOST")
                && msg.contains("buildkitd")
        );
    }
}
