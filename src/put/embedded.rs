//! The embedded buildkitd: what `out` runs when no daemon address is given.
//!
//! It gets a private root (under `/scratch` when that exists, as
//! oci-build-task does, else the temp dir) holding its state, its socket,
//! its log and a generated `buildkitd.toml`: Docker Hub mirrors, and for the
//! registries we talk to their CA and `http`/`insecure` settings, merged with
//! the user's extra TOML (theirs wins key by key, so redefining a generated
//! table does not clash). Startup waits up to 120 s for the daemon to answer
//! (docker-image's `startup_timeout`), and stopping gives SIGTERM 10 s before
//! SIGKILL. Running the process is [`crate::buildkit::daemon`]'s job.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::buildkit::daemon::{self, Buildkitd, SpawnOptions};

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
    /// The process could not be started or did not answer.
    #[error(transparent)]
    Start(#[from] daemon::DaemonError),
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

/// A running embedded buildkitd and its private root. Dropping it without
/// [`EmbeddedDaemon::stop`] kills the daemon (SIGKILL, see
/// [`crate::buildkit::daemon`]) and removes the root.
#[derive(Debug)]
pub struct EmbeddedDaemon {
    // Declared before `root`: the process is signalled before its root goes.
    daemon: Buildkitd,
    root: tempfile::TempDir,
}

impl EmbeddedDaemon {
    /// Prepares the private root, starts the daemon and waits until
    /// `probe(socket)` says it answers (pass
    /// [`crate::buildkit::daemon::answers`]).
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
        let daemon = Buildkitd::start(
            SpawnOptions {
                binary: opts.binary,
                root: root.path().join("state"),
                socket: root.path().join("buildkitd.sock"),
                config: Some(config_path),
                log: root.path().join("buildkitd.log"),
                debug: opts.config.debug,
                timeout: opts.timeout,
                stop_grace: opts.stop_grace,
            },
            probe,
        )
        .await?;
        Ok(EmbeddedDaemon { daemon, root })
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
            root_parent: Some(dir.path().to_path_buf()),
            ..StartOptions::new(fake(dir.path()), config)
        };
        let mut d = EmbeddedDaemon::start(opts, socket_exists).await.unwrap();
        let root = d.root().to_path_buf();
        assert!(root.starts_with(dir.path()));
        assert_eq!(d.socket(), root.join("buildkitd.sock"));
        let toml = std::fs::read_to_string(root.join("buildkitd.toml")).unwrap();
        assert!(toml.contains("debug = true"), "{toml}");
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
    fn not_configured_names_the_three_options() {
        let msg = DaemonError::NotConfigured.to_string();
        assert!(
            msg.contains("buildkit_host")
                && msg.contains("BUILDKIT_HOST")
                && msg.contains("buildkitd")
        );
    }
}
