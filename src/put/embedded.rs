//! The embedded buildkitd: what `out` runs when no daemon address is given.
//!
//! It gets a private root holding its state, its socket, its log and a
//! generated `buildkitd.toml`: Docker Hub mirrors, and for the registries we
//! talk to their CA and `http`/`insecure` settings, merged with the user's
//! extra TOML (theirs wins key by key, so redefining a generated table does
//! not clash). Startup waits up to 120 s for the daemon to answer
//! (docker-image's `startup_timeout`), and stopping gives SIGTERM 10 s before
//! SIGKILL. Running the process is [`crate::buildkit::daemon`]'s job.
//!
//! Where the root goes matters for speed: on overlayfs (a Concourse
//! container's own root) BuildKit cannot stack its overlay snapshots and
//! falls back to the `native` snapshotter, which copies every layer (a RUN
//! step on a 170 MB base took 6.2 s instead of 0.2 s). So the root goes on
//! the first of these that is not overlayfs: `$OCI_BUILD_RESOURCE_BUILDKIT_ROOT`,
//! the put's working directory (a volume in Concourse), `/scratch`, the temp
//! dir; see [`root_candidates`].
//!
//! Before starting, `src/put/rootless.rs` decides how the daemon can run
//! here: privileged as before, rootless as root of a user namespace, or
//! rootless under `rootlesskit` as a non-root user; where none can, `out`
//! fails with one line before the build instead of BuildKit's raw mount
//! error. A rootless daemon gets `[worker.oci] rootless = true`, the chosen
//! snapshotter and sandbox, and `XDG_RUNTIME_DIR`/`HOME` in its root.
//!
//! Every daemon gets its OpenTelemetry socket in its private root. The
//! default, `/run/buildkit/otel-grpc.sock`, is not writable for a rootless
//! daemon (buildkitd exits on it), and daemons sharing a host (several puts,
//! a test suite) race for it: one fails with "address already in use".

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::buildkit::daemon::{self, Buildkitd, SpawnOptions};

use super::rootless::{Mode, Rootless};

/// Why the embedded daemon could not be set up or started.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// No address configured and no `buildkitd` to run.
    #[error(
        "no BuildKit daemon to build with: set source.buildkit_host (unix:///path, tcp://host:port, \
         docker:///var/run/docker.sock or ssh://user@host), set BUILDKIT_HOST, or run this resource from an image with \
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
    /// The process could not be started or did not answer.
    #[error(transparent)]
    Start(#[from] daemon::DaemonError),
    /// No way to run the daemon here (see `src/put/rootless.rs`).
    #[error(
        "the embedded buildkitd cannot run in this container: tried {tried}; give the resource type \
         `privileged: true` in the pipeline's resource_types, or build on another daemon with \
         source.buildkit_host"
    )]
    Unavailable {
        /// What was tried and why it cannot work, on one line.
        tried: String,
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
    /// `put::run::registry_host`); only a user's extra TOML can.
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
    /// Rootless worker settings, `None` for a privileged daemon.
    pub rootless: Option<RootlessWorker>,
    /// `[otel] socketPath`; `start` puts it in the daemon's private root.
    pub otel_socket: Option<PathBuf>,
}

/// The generated part of a rootless daemon's buildkitd.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootlessWorker {
    /// Snapshotter and sandbox.
    pub worker: Rootless,
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
        // there needs `http = false` said explicitly (seen with v0.32.2:
        // pulls otherwise fail with `400 Bad Request` from the TLS port).
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
    if let Some(socket) = &cfg.otel_socket {
        let mut otel = Table::new();
        otel.insert(
            "socketPath".into(),
            Value::String(socket.display().to_string()),
        );
        root.insert("otel".into(), Value::Table(otel));
    }
    if let Some(rl) = &cfg.rootless {
        let mut oci = Table::new();
        oci.insert("enabled".into(), Value::Boolean(true));
        oci.insert("rootless".into(), Value::Boolean(true));
        oci.insert(
            "snapshotter".into(),
            Value::String(rl.worker.snapshotter.name().into()),
        );
        oci.insert(
            "noProcessSandbox".into(),
            Value::Boolean(!rl.worker.process_sandbox),
        );
        // The containerd worker would look for a containerd socket this
        // user cannot have.
        let mut containerd = Table::new();
        containerd.insert("enabled".into(), Value::Boolean(false));
        let mut worker = Table::new();
        worker.insert("oci".into(), Value::Table(oci));
        worker.insert("containerd".into(), Value::Table(containerd));
        root.insert("worker".into(), Value::Table(worker));
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
    /// Where the private root may go, best first (see [`root_candidates`]);
    /// empty = `/scratch` if present, else the temp dir.
    pub root_parents: Vec<PathBuf>,
    /// How the daemon runs (see `src/put/rootless.rs`).
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
/// [`crate::buildkit::daemon`]) and removes the root.
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
            match tempfile::Builder::new()
                .prefix(".buildkitd-")
                .tempdir_in(parent)
            {
                Ok(dir) => {
                    root = Some(dir);
                    break;
                }
                Err(source) => {
                    tracing::debug!(
                        "buildkitd root cannot go under {}: {source}",
                        parent.display()
                    );
                    last = Some(DaemonError::Root {
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
            move |source| DaemonError::Root { path, source }
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
            wrapper = vec![
                binary.clone().into_os_string(),
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
    /// [`crate::buildkit::daemon::answers`]).
    pub async fn wait_ready<P, F>(&mut self, probe: P) -> Result<()>
    where
        P: Fn(PathBuf) -> F,
        F: std::future::Future<Output = bool>,
    {
        Ok(self.daemon.wait_ready(probe).await?)
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
        let unmounted = daemon::unmount_under(&root);
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
        daemon::unmount_under(self.root.path());
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

/// `/scratch` when it exists (oci-build-task's choice), else the temp dir.
fn default_root_parent() -> PathBuf {
    let scratch = Path::new("/scratch");
    if scratch.is_dir() {
        scratch.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// `statfs(2)`'s `f_type` for overlayfs.
pub const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// The filesystem type (`statfs` `f_type`) of `path`, `None` when it does
/// not exist or cannot be asked.
pub fn fs_type(path: &Path) -> Option<i64> {
    nix::sys::statfs::statfs(path)
        .ok()
        // `f_type`'s width differs across targets (`__fsword_t`).
        .map(|s| {
            #[allow(clippy::unnecessary_cast)]
            let magic = s.filesystem_type().0 as i64;
            magic
        })
}

/// A readable name for an `f_type`.
pub fn fs_name(magic: i64) -> String {
    match magic {
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x2FC1_2FC1 => "zfs".into(),
        OVERLAYFS_SUPER_MAGIC => "overlay".into(),
        other => format!("filesystem 0x{other:x}"),
    }
}

/// Where the daemon's root may go, in order of preference, and a line
/// saying why the first was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootChoice {
    /// Directories to try, best first.
    pub parents: Vec<PathBuf>,
    /// For the log: `buildkitd root under <dir> (<fs>; / is <fs>)`.
    pub note: String,
}

/// Orders `candidates` (label, directory) for the daemon's root: those
/// whose filesystem (`fs_type`) is not overlayfs first, in the given order,
/// then `fallback`. Missing directories and directories inside `avoid` (the
/// build's local contexts: the root must not be uploaded as part of them)
/// are skipped.
pub fn root_candidates(
    candidates: &[(&str, PathBuf)],
    avoid: &[PathBuf],
    fallback: PathBuf,
    fs_type: impl Fn(&Path) -> Option<i64>,
) -> RootChoice {
    let root_fs = fs_type(Path::new("/")).map_or_else(|| "unknown".to_string(), fs_name);
    let mut parents = Vec::new();
    let mut first_note = None;
    let mut skipped = Vec::new();
    for (label, dir) in candidates {
        if avoid.iter().any(|a| dir.starts_with(a)) {
            skipped.push(format!("{label} {} is in the build context", dir.display()));
            continue;
        }
        match fs_type(dir) {
            None => {}
            Some(OVERLAYFS_SUPER_MAGIC) => {
                skipped.push(format!("{label} {} is overlay", dir.display()));
            }
            Some(magic) => {
                if first_note.is_none() {
                    first_note = Some(format!(
                        "buildkitd root under {} ({label}, {}; / is {root_fs})",
                        dir.display(),
                        fs_name(magic)
                    ));
                }
                if !parents.contains(dir) {
                    parents.push(dir.clone());
                }
            }
        }
    }
    let note = first_note.unwrap_or_else(|| {
        format!(
            "buildkitd root under {} ({}): no candidate is off overlayfs ({}), so BuildKit may fall \
             back to its slow `native` snapshotter; set OCI_BUILD_RESOURCE_BUILDKIT_ROOT to a volume",
            fallback.display(),
            fs_type(&fallback).map_or_else(|| "unknown".to_string(), fs_name),
            if skipped.is_empty() {
                "none exists".to_string()
            } else {
                skipped.join(", ")
            }
        )
    });
    if !parents.contains(&fallback) {
        parents.push(fallback);
    }
    RootChoice { parents, note }
}

/// The candidates for a put whose inputs are under `work_dir` (argv[1]).
pub fn put_root_candidates(work_dir: &Path, avoid: &[PathBuf]) -> RootChoice {
    let mut candidates: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(dir) =
        std::env::var_os("OCI_BUILD_RESOURCE_BUILDKIT_ROOT").filter(|d| !d.is_empty())
    {
        candidates.push(("$OCI_BUILD_RESOURCE_BUILDKIT_ROOT", PathBuf::from(dir)));
    }
    candidates.push(("the put's working directory", work_dir.to_path_buf()));
    candidates.push(("/scratch", PathBuf::from("/scratch")));
    candidates.push(("the temp dir", std::env::temp_dir()));
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let candidates: Vec<(&str, PathBuf)> = candidates
        .into_iter()
        .map(|(l, d)| (l, canon(&d)))
        .collect();
    let avoid: Vec<PathBuf> = avoid.iter().map(|a| canon(a)).collect();
    root_candidates(&candidates, &avoid, default_root_parent(), fs_type)
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
            rootless: None,
            otel_socket: None,
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

    /// Writes a fake `buildkitd` that answers once its socket exists and
    /// prints its arguments; returns its path.
    fn fake(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("buildkitd");
        let script = "#!/bin/sh\necho \"$@\"\nwhile [ $# -gt 0 ]; do case \"$1\" in --addr) SOCK=\"${2#unix://}\"; shift;; esac; shift; done\n\
                      trap 'echo got TERM; exit 0' TERM; : > \"$SOCK\"; while :; do sleep 0.05; done\n";
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    async fn socket_exists(p: PathBuf) -> bool {
        p.exists()
    }

    #[tokio::test]
    async fn the_private_root_holds_config_certs_socket_and_log_and_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let config = DaemonConfig {
            registries: vec![RegistryHost {
                host: "127.0.0.1:5443".into(),
                ca_pems: vec!["PEM".into()],
                ..Default::default()
            }],
            debug: true,
            ..Default::default()
        };
        let opts = StartOptions {
            timeout: Duration::from_secs(5),
            stop_grace: Duration::from_millis(500),
            root_parents: vec![dir.path().to_path_buf()],
            ..StartOptions::new(fake(dir.path()), config)
        };
        let mut d = EmbeddedDaemon::start(opts, socket_exists).await.unwrap();
        let root = d.root().to_path_buf();
        assert!(root.starts_with(dir.path()));
        assert_eq!(d.socket(), root.join("buildkitd.sock"));
        let toml = std::fs::read_to_string(root.join("buildkitd.toml")).unwrap();
        assert!(toml.contains("debug = true"), "{toml}");
        // Its own OpenTelemetry socket, not the host-wide default.
        let parsed: toml::Table = toml.parse().unwrap();
        assert_eq!(
            parsed["otel"]["socketPath"].as_str(),
            root.join("otel.sock").to_str()
        );
        assert_eq!(
            std::fs::read_to_string(root.join("certs/127.0.0.1_5443-0.pem")).unwrap(),
            "PEM"
        );
        let args = format!(
            "--root {} --addr unix://{} --config {} --debug",
            root.join("state").display(),
            root.join("buildkitd.sock").display(),
            root.join("buildkitd.toml").display()
        );
        assert!(d.log_tail(5).contains(&args), "{}", d.log_tail(5));
        d.stop().await;
        assert!(d.log_tail(5).contains("got TERM"), "{}", d.log_tail(5));
        drop(d);
        assert!(!root.exists(), "private root removed");
    }

    #[test]
    fn a_rootless_config_moves_the_otel_socket_and_sets_the_worker() {
        use crate::put::rootless::Snapshotter;
        let cfg = DaemonConfig {
            rootless: Some(RootlessWorker {
                worker: Rootless {
                    snapshotter: Snapshotter::Native,
                    process_sandbox: false,
                },
            }),
            otel_socket: Some(PathBuf::from("/r/run/otel.sock")),
            // The user's extra TOML still wins key by key.
            extra: Some("[worker.oci]\ngc = false\n".into()),
            ..Default::default()
        };
        let (text, _) = render_config(&cfg, Path::new("/r/certs")).unwrap();
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(
            parsed["otel"]["socketPath"].as_str(),
            Some("/r/run/otel.sock")
        );
        let oci = parsed["worker"]["oci"].as_table().unwrap();
        assert_eq!(oci["rootless"].as_bool(), Some(true));
        assert_eq!(oci["snapshotter"].as_str(), Some("native"));
        assert_eq!(oci["noProcessSandbox"].as_bool(), Some(true));
        assert_eq!(oci["gc"].as_bool(), Some(false));
        assert_eq!(
            parsed["worker"]["containerd"]["enabled"].as_bool(),
            Some(false)
        );
    }

    #[tokio::test]
    async fn rootlesskit_mode_wraps_the_daemon_and_gives_it_a_runtime_dir() {
        use crate::put::rootless::Snapshotter;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // A fake rootlesskit: records its arguments and environment, then
        // runs the command after `--state-dir DIR` as the real one does.
        let kit = dir.path().join("rootlesskit");
        std::fs::write(
            &kit,
            "#!/bin/sh\necho \"kit: $* xdg=$XDG_RUNTIME_DIR home=$HOME\"\nshift 2\nexec \"$@\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&kit, std::fs::Permissions::from_mode(0o755)).unwrap();
        let worker = Rootless {
            snapshotter: Snapshotter::Overlayfs,
            process_sandbox: true,
        };
        let opts = StartOptions {
            timeout: Duration::from_secs(5),
            stop_grace: Duration::from_millis(500),
            root_parents: vec![dir.path().to_path_buf()],
            mode: Mode::Rootlesskit {
                binary: kit.clone(),
                worker,
            },
            ..StartOptions::new(fake(dir.path()), DaemonConfig::default())
        };
        let d = EmbeddedDaemon::start(opts, socket_exists).await.unwrap();
        let root = d.root().to_path_buf();
        let log = d.log_tail(5);
        assert!(
            log.contains(&format!(
                "kit: --state-dir {} {} --root",
                root.join("rootlesskit").display(),
                dir.path().join("buildkitd").display()
            )) && log.contains(&format!(
                "xdg={} home={}",
                root.join("run").display(),
                root.join("home").display()
            )),
            "{log}"
        );
        let toml = std::fs::read_to_string(root.join("buildkitd.toml")).unwrap();
        assert!(
            toml.contains("rootless = true") && toml.contains("snapshotter = \"overlayfs\""),
            "{toml}"
        );
        let done = d.shutdown().await;
        assert!(done.contains("removed its root"), "{done}");
        assert!(!root.exists());
    }

    const EXT4: i64 = 0xEF53;

    /// A fake statfs: `/` and `/tmp` are overlay (a Concourse container's
    /// root), the listed volumes are ext4, anything else does not exist.
    fn concourse_like(volumes: &'static [&'static str]) -> impl Fn(&Path) -> Option<i64> {
        move |p: &Path| {
            if p == Path::new("/") || p == Path::new("/tmp") {
                Some(OVERLAYFS_SUPER_MAGIC)
            } else if volumes.iter().any(|v| p == Path::new(v)) {
                Some(EXT4)
            } else {
                None
            }
        }
    }

    fn candidates(explicit: Option<&str>) -> Vec<(&'static str, PathBuf)> {
        let mut c = Vec::new();
        if let Some(e) = explicit {
            c.push(("$OCI_BUILD_RESOURCE_BUILDKIT_ROOT", PathBuf::from(e)));
        }
        c.push((
            "the put's working directory",
            PathBuf::from("/tmp/build/put"),
        ));
        c.push(("/scratch", PathBuf::from("/scratch")));
        c.push(("the temp dir", PathBuf::from("/tmp")));
        c
    }

    #[test]
    fn the_root_goes_on_the_first_candidate_off_overlayfs() {
        // The working-directory volume wins over /scratch; overlay /tmp is
        // only the fallback.
        let fs = concourse_like(&["/tmp/build/put", "/scratch"]);
        let c = root_candidates(&candidates(None), &[], PathBuf::from("/tmp"), &fs);
        assert_eq!(
            c.parents,
            vec![
                PathBuf::from("/tmp/build/put"),
                PathBuf::from("/scratch"),
                PathBuf::from("/tmp")
            ]
        );
        assert_eq!(
            c.note,
            "buildkitd root under /tmp/build/put (the put's working directory, ext4; / is overlay)"
        );
        // An explicit setting comes first when it is off overlayfs ...
        let fs = concourse_like(&["/tmp/build/put", "/data"]);
        let c = root_candidates(&candidates(Some("/data")), &[], PathBuf::from("/tmp"), &fs);
        assert_eq!(c.parents[0], PathBuf::from("/data"));
        assert!(
            c.note.contains("$OCI_BUILD_RESOURCE_BUILDKIT_ROOT"),
            "{}",
            c.note
        );
        // ... and is passed over when it is overlay too.
        let c = root_candidates(&candidates(Some("/tmp")), &[], PathBuf::from("/tmp"), &fs);
        assert_eq!(c.parents[0], PathBuf::from("/tmp/build/put"));
    }

    #[test]
    fn a_working_directory_that_is_the_build_context_is_skipped() {
        let fs = concourse_like(&["/tmp/build/put", "/scratch"]);
        let c = root_candidates(
            &candidates(None),
            &[PathBuf::from("/tmp/build/put")],
            PathBuf::from("/tmp"),
            &fs,
        );
        assert_eq!(
            c.parents,
            vec![PathBuf::from("/scratch"), PathBuf::from("/tmp")]
        );
    }

    #[test]
    fn all_overlay_falls_back_and_says_why() {
        let fs = concourse_like(&[]);
        let c = root_candidates(&candidates(None), &[], PathBuf::from("/tmp"), &fs);
        assert_eq!(c.parents, vec![PathBuf::from("/tmp")]);
        assert!(
            c.note.contains("no candidate is off overlayfs")
                && c.note.contains("the temp dir /tmp is overlay")
                && c.note.contains("OCI_BUILD_RESOURCE_BUILDKIT_ROOT"),
            "{}",
            c.note
        );
    }

    #[test]
    fn fs_type_reads_a_real_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        assert!(fs_type(dir.path()).is_some());
        assert_eq!(fs_type(&dir.path().join("missing")), None);
        assert_eq!(fs_name(OVERLAYFS_SUPER_MAGIC), "overlay");
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
