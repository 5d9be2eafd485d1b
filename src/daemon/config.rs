//! The generated `buildkitd.toml`: Docker Hub mirrors, and for the
//! registries the put talks to their CA and `http`/`insecure` settings,
//! merged with the user's extra TOML (theirs wins key by key, so redefining a
//! generated table does not clash).

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use super::mode::Rootless;

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
    extra.parse::<toml::Table>().map_err(Error::ExtraConfig)
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
    let text = toml::to_string(&root).map_err(Error::Render)?;
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
