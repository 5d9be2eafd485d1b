//! Locating a standalone `buildkitd`. None is packaged for Debian 12, so it may
//! truly be absent: tests that need one carry
//! `#[cfg_attr(not(have_buildkitd), ignore = ...)]` (build.rs sets the cfg when
//! it finds one, and always under `CI=true`), and fail here when it is gone.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `buildkitd` that only records being started and fails: for tests that
/// `out` refuses to start the embedded daemon. Put `dir` first on `PATH`;
/// `started` exists once anything ran it.
pub struct Recorder {
    /// The directory holding the fake `buildkitd`.
    pub dir: tempfile::TempDir,
    /// Created by the fake when it runs.
    pub started: PathBuf,
}

/// A new [`Recorder`].
pub fn recorder() -> Recorder {
    let dir = tempfile::tempdir().expect("dir");
    let started = dir.path().join("started");
    let fake = dir.path().join("buildkitd");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\n: > {}\nexit 1\n", started.display()),
    )
    .expect("fake buildkitd");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    Recorder { dir, started }
}

/// `$BUILDKITD`, else `buildkitd` on `PATH`; panics when there is neither.
pub fn find() -> PathBuf {
    match std::env::var_os("BUILDKITD") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "BUILDKITD={} does not name a file",
                path.display()
            );
            path
        }
        _ => super::which("buildkitd").unwrap_or_else(|| {
            panic!(
                "needs buildkitd: set BUILDKITD or put it on PATH \
                 (scripts/test uses ../shared/buildkit/buildkitd)"
            )
        }),
    }
}

/// `PATH` for an `out` that starts the embedded daemon: the directory of
/// [`find`]'s buildkitd first, then this process's `PATH` (for runc and the
/// rest of the system).
pub fn path_env() -> String {
    let binary = find();
    let dir = binary.parent().expect("buildkitd's directory");
    let system = std::env::var("PATH").unwrap_or_default();
    format!("{}:{system}", dir.display())
}

/// Server-side TLS files of a `tcp://` daemon (`--tlscacert` verifies
/// client certificates, so mutual TLS is required).
pub struct ServerTls {
    /// CA that signed the client certificates the daemon accepts.
    pub ca_cert: PathBuf,
    /// The daemon's certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

/// A buildkitd started for one test, stopped by pid on drop (SIGTERM, then
/// SIGKILL), its root removed with it.
pub struct Standalone {
    /// `unix:///…/buildkitd.sock` or `tcp://127.0.0.1:PORT`.
    pub address: String,
    /// The socket of a `unix://` daemon.
    pub socket: Option<PathBuf>,
    /// Its combined stdout/stderr.
    pub log: PathBuf,
    child: Child,
    /// Its temp root (state, socket, log), removed when this is dropped.
    _root: tempfile::TempDir,
}

impl Standalone {
    /// A daemon on a `unix://` socket in its own temp root.
    pub fn unix(binary: &Path) -> Standalone {
        let root = tempfile::tempdir().expect("buildkitd root");
        let socket = root.path().join("buildkitd.sock");
        let address = format!("unix://{}", socket.display());
        let mut daemon = Standalone::spawn(binary, root, address, &[]);
        let deadline = Instant::now() + Duration::from_secs(30);
        // The socket file appears before buildkitd accepts on it: wait for a
        // connection, or a client's first dial may be refused under load.
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            daemon.assert_alive_before(deadline, &format!("listening on {}", socket.display()));
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon.socket = Some(socket);
        daemon
    }

    /// A daemon on `tcp://127.0.0.1:<free port>` requiring mutual TLS.
    pub fn tcp_tls(binary: &Path, tls: &ServerTls) -> Standalone {
        let root = tempfile::tempdir().expect("buildkitd root");
        let port = super::process::free_port();
        let address = format!("tcp://127.0.0.1:{port}");
        let args = [
            "--tlscacert".into(),
            tls.ca_cert.display().to_string(),
            "--tlscert".into(),
            tls.cert.display().to_string(),
            "--tlskey".into(),
            tls.key.display().to_string(),
        ];
        let mut daemon = Standalone::spawn(binary, root, address, &args);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            daemon.assert_alive_before(deadline, &format!("listening on port {port}"));
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    fn spawn(
        binary: &Path,
        root: tempfile::TempDir,
        address: String,
        extra: &[String],
    ) -> Standalone {
        let log = root.path().join("buildkitd.log");
        let out = std::fs::File::create(&log).expect("buildkitd log");
        let err = out.try_clone().expect("buildkitd log");
        // Its own OpenTelemetry socket: daemons started at once by parallel
        // tests would otherwise race for /run/buildkit/otel-grpc.sock.
        let config = root.path().join("buildkitd.toml");
        std::fs::write(
            &config,
            format!(
                "[otel]\nsocketPath = {:?}\n",
                root.path().join("otel.sock").display().to_string()
            ),
        )
        .expect("buildkitd.toml");
        let mut cmd = Command::new(binary);
        cmd.arg("--root")
            .arg(root.path().join("state"))
            .arg("--addr")
            .arg(&address)
            .arg("--config")
            .arg(&config)
            .args(extra)
            // The OCI (runc) worker only: a containerd socket on the host must
            // not change what is tested.
            .args(["--oci-worker=true", "--containerd-worker=false"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // A test binary killed by a signal must not leave its daemons
        // running (see `src/process.rs`).
        oci_build_resource::process::die_with_parent(&mut cmd, nix::sys::signal::Signal::SIGTERM);
        let child = oci_build_resource::process::on_spawner_thread(move || cmd.spawn())
            .expect("starting buildkitd");
        Standalone {
            address,
            socket: None,
            log,
            child,
            _root: root,
        }
    }

    fn assert_alive_before(&mut self, deadline: Instant, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "buildkitd exited ({status}) before {what}; log:\n{}",
                self.log_tail(30)
            );
        }
        assert!(
            Instant::now() < deadline,
            "buildkitd not ready ({what}) after 30 s; log:\n{}",
            self.log_tail(30)
        );
    }

    /// The last `lines` lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: plain syscall on our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
