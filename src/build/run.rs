//! Running a put build: pick the daemon, preload images, solve, and move
//! the tags last.
//!
//! Daemon choice: `source.buildkit_host`, else `$BUILDKIT_HOST`, else the
//! embedded buildkitd (when `buildkitd` is on PATH), else an error naming
//! those three options. On a standalone buildkitd the image goes straight
//! from BuildKit to the registry by digest (credentials served from the
//! session); on a Docker Engine it is built into the Engine's store, read
//! back as a docker-save stream and pushed by us. Either way the manifest is
//! put under the tags only after every blob is in place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::buildkit::daemon::{self, DaemonConfig, EmbeddedDaemon, RegistryHost, StartOptions};
use crate::buildkit::{self, Address, DaemonKind};
use crate::config::Source;
use crate::config::put::{BuildParams, DaemonParams, Network, SecretSpec};
use crate::registry;

use super::Error;
use super::push::{self, Pushed};
use super::serve::{ImageRegistry, ImageStore};
use super::solve::{self, Backend, Destination, Preloaded};
use crate::Result;

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// The pushed manifest or index, and what it holds.
    pub pushed: Pushed,
    /// `buildkitd` version (or `docker <version>`).
    pub buildkit_version: String,
    /// Wall time of the solve (and, on an Engine, the read-back).
    pub duration: Duration,
}

/// The daemon we talk to; the embedded one stops when this drops.
enum Daemon {
    Remote(Address),
    Embedded(EmbeddedDaemon),
}

/// Builds `params` and pushes the result to `client`'s repository under `tags`.
pub async fn build_and_push(
    source: &Source,
    params: &BuildParams,
    daemon_params: &DaemonParams,
    client: &registry::Client,
    tags: &[String],
) -> Result<Built> {
    let mut daemon = choose_daemon(source, daemon_params).await?;
    let address = match &daemon {
        Daemon::Remote(a) => a.clone(),
        Daemon::Embedded(d) => Address::Unix(d.socket().to_path_buf()),
    };
    let result = build_on(&address, source, params, client, tags).await;
    if let Daemon::Embedded(d) = &mut daemon {
        if result.is_err() {
            tracing::warn!(
                "last lines of the embedded buildkitd's log:\n{}",
                d.log_tail(20)
            );
        }
        d.stop().await;
    }
    result
}

async fn choose_daemon(source: &Source, daemon_params: &DaemonParams) -> Result<Daemon> {
    if let Some(extra) = &daemon_params.extra_config {
        // Checked even when another daemon is used: a typo should not wait
        // for the day the embedded daemon runs.
        daemon::validate_extra(extra).map_err(Error::from)?;
    }
    if let Some(host) = source.buildkit_host.as_deref().filter(|h| !h.is_empty()) {
        let tls = source.buildkit_tls.as_ref().map(|t| buildkit::TlsConfig {
            ca_cert: t.ca_cert.clone(),
            cert: t.cert.clone(),
            key: t.key.as_ref().map(|k| k.expose().to_string()),
            server_name: t.server_name.clone(),
        });
        return Ok(Daemon::Remote(
            Address::parse(host, tls).map_err(Error::from)?,
        ));
    }
    if let Some(host) = std::env::var("BUILDKIT_HOST")
        .ok()
        .filter(|h| !h.is_empty())
    {
        return Ok(Daemon::Remote(
            Address::parse(&host, None).map_err(Error::from)?,
        ));
    }
    let Some(binary) = daemon::find_on_path() else {
        return Err(Error::from(daemon::DaemonError::NotConfigured).into());
    };
    let config = daemon_config(source, daemon_params);
    let embedded = EmbeddedDaemon::start(
        StartOptions::new(binary, config),
        |socket: PathBuf| async move {
            match buildkit::Client::connect(&Address::Unix(socket)).await {
                Ok(c) => c.info().await.is_ok(),
                Err(_) => false,
            }
        },
    )
    .await
    .map_err(Error::from)?;
    Ok(Daemon::Embedded(embedded))
}

/// The embedded daemon's registry settings: Docker Hub mirrors, and TLS /
/// plain-HTTP for the source registry (pushes and caches go there).
fn daemon_config(source: &Source, params: &DaemonParams) -> DaemonConfig {
    let mut mirrors = params.registry_mirrors.clone();
    if let Some(m) = &source.registry_mirror {
        mirrors.push(m.host.clone());
    }
    let repo = &source.repository;
    let mut registries = Vec::new();
    let host = buildkit_host(&repo.registry);
    if source.insecure || !source.ca_certs.is_empty() {
        registries.push(RegistryHost {
            host,
            ca_pems: source.ca_certs.clone(),
            // registry-image's `insecure` means "plain HTTP allowed".
            http: source.insecure && source.ca_certs.is_empty(),
            insecure: source.insecure,
        });
    }
    DaemonConfig {
        mirrors,
        registries,
        extra: params.extra_config.clone(),
        debug: source.debug,
    }
}

/// Docker Hub as BuildKit names it.
fn buildkit_host(registry: &str) -> String {
    match registry {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        other => other.into(),
    }
}

async fn build_on(
    address: &Address,
    source: &Source,
    params: &BuildParams,
    client: &registry::Client,
    tags: &[String],
) -> Result<Built> {
    let bk = buildkit::Client::connect(address)
        .await
        .map_err(Error::from)?;
    let info = bk.info().await.map_err(Error::from)?;
    // The Engine path needs the Engine's API socket (to read the image
    // back), so the address decides, not only what the daemon says it is.
    let engine_socket = match (address, info.kind) {
        (Address::DockerEngine(socket), _) => Some(socket.clone()),
        (_, DaemonKind::DockerEngine) => {
            return Err(Error::from(buildkit::Error::InvalidAddress {
                address: address.to_string(),
                reason: "this is a Docker Engine: give it as docker:///path/to/docker.sock".into(),
            })
            .into());
        }
        _ => None,
    };
    let backend = if engine_socket.is_some() {
        Backend::DockerEngine
    } else {
        Backend::Buildkitd
    };
    tracing::info!("building on {address} ({})", info.version);

    let mut params = params.clone();
    if let (Backend::DockerEngine, Address::DockerEngine(socket), Network::Default) =
        (backend, address, params.network)
        && super::engine::has_bridge(socket).await == Some(false)
    {
        tracing::info!(
            "the Docker Engine has no bridge network: RUN steps get network mode `none`"
        );
        params.network = Network::None;
    }
    let params = &params;
    let (preloaded, _registry) = preload(params).await?;
    let repo = client.repository();
    let dest = Destination {
        repository: format!("{}/{}", buildkit_host(&repo.registry), repo.path),
        insecure: source.insecure,
        tags: tags.to_vec(),
        engine_image: format!("oci-build-resource/put-{}:build", random_hex(12)),
    };
    let plan = solve::plan(params, backend, &dest, &preloaded).map_err(Error::from)?;
    let request = buildkit::SolveRequest {
        frontend: plan.frontend.clone(),
        frontend_attrs: plan.frontend_attrs.clone(),
        exporters: vec![buildkit::Exporter {
            kind: plan.exporter.kind.clone(),
            attrs: plan.exporter.attrs.clone(),
            output: None,
        }],
        cache_imports: plan
            .cache_imports
            .iter()
            .map(|c| buildkit::CacheEntry {
                kind: c.kind.clone(),
                attrs: c.attrs.clone(),
            })
            .collect(),
        cache_exports: plan
            .cache_exports
            .iter()
            .map(|c| buildkit::CacheEntry {
                kind: c.kind.clone(),
                attrs: c.attrs.clone(),
            })
            .collect(),
        entitlements: plan.entitlements.clone(),
    };
    let session = buildkit::SessionOptions {
        local_dirs: plan.local_dirs.clone(),
        secrets: params
            .secrets
            .iter()
            .map(|(id, s)| (id.clone(), secret_source(s)))
            .collect(),
        ssh: params.ssh.iter().map(ssh_source).collect::<Result<_>>()?,
        registry_auth: registry_auth(source),
        shared_key: shared_key(&params.context),
    };

    let started = Instant::now();
    let outcome = bk.solve(request, session).await.map_err(Error::from)?;
    let pushed = match &engine_socket {
        None => {
            let digest = outcome
                .exporter_response
                .get("containerimage.digest")
                .cloned()
                .ok_or_else(|| {
                    Error::NoDigest(
                        outcome
                            .exporter_response
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                })?;
            push::tag_pushed(client, &digest, tags).await?
        }
        Some(socket) => {
            let result = push::push_from_engine(
                client,
                socket,
                &dest.engine_image,
                tags,
                &params.annotations,
            )
            .await;
            if let Err(e) = buildkit::docker_engine::remove_image(socket, &dest.engine_image).await
            {
                tracing::warn!(
                    "removing the temporary image {} from the Engine: {e}",
                    dest.engine_image
                );
            }
            result?
        }
    };
    Ok(Built {
        pushed,
        buildkit_version: info.version,
        duration: started.elapsed(),
    })
}

/// Serves IMAGE_ARG and load_base images from a loopback registry.
async fn preload(params: &BuildParams) -> Result<(Preloaded, Option<ImageRegistry>)> {
    if params.image_args.is_empty() && params.load_bases.is_empty() {
        return Ok((Preloaded::default(), None));
    }
    let mut images: BTreeMap<String, Arc<dyn ImageStore>> = BTreeMap::new();
    let mut image_arg_names = BTreeMap::new();
    for (arg, path) in &params.image_args {
        let name = arg.to_ascii_lowercase();
        images.insert(name.clone(), push::open_store(path).await?);
        image_arg_names.insert(arg.clone(), name);
    }
    let mut base_names = BTreeMap::new();
    for (i, base) in params.load_bases.iter().enumerate() {
        let name = format!("load-base-{i}");
        images.insert(name.clone(), push::open_store(&base.image).await?);
        base_names.insert(base.name.clone(), name);
    }
    let registry = ImageRegistry::start(images)
        .await
        .map_err(Error::ImageRegistry)?;
    let host = registry.host();
    let preloaded = Preloaded {
        image_args: image_arg_names
            .into_iter()
            .map(|(arg, name)| (arg, format!("{host}/{name}")))
            .collect(),
        bases: base_names
            .into_iter()
            .map(|(from, name)| (from, format!("{host}/{name}:latest")))
            .collect(),
    };
    Ok((preloaded, Some(registry)))
}

fn secret_source(s: &SecretSpec) -> buildkit::SecretSource {
    match s {
        SecretSpec::File(p) => buildkit::SecretSource::File(p.clone()),
        SecretSpec::Text(t) => {
            buildkit::SecretSource::Text(crate::config::Secret::new(t.expose().to_string()))
        }
        SecretSpec::Env(v) => buildkit::SecretSource::Env(v.clone()),
    }
}

fn ssh_source(s: &crate::config::put::SshSpec) -> Result<buildkit::SshSource> {
    use std::os::unix::fs::FileTypeExt;
    let path = match &s.path {
        Some(p) => p.clone(),
        None => PathBuf::from(
            std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| Error::NoSshAgent(s.id.clone()))?,
        ),
    };
    let is_socket = std::fs::metadata(&path).is_ok_and(|m| m.file_type().is_socket());
    Ok(buildkit::SshSource {
        id: s.id.clone(),
        kind: if is_socket {
            buildkit::SshKind::Agent(path)
        } else {
            buildkit::SshKind::Key(path)
        },
    })
}

/// Credentials BuildKit may ask for: the source registry (push, cache) and
/// `additional_registries` (FROM pulls, caches).
fn registry_auth(source: &Source) -> Vec<buildkit::RegistryAuth> {
    let mut out = Vec::new();
    if let (Some(user), Some(pass)) = (&source.username, &source.password) {
        let repo = &source.repository;
        let mut hosts = vec![repo.registry.clone()];
        if buildkit_host(&repo.registry) == "docker.io" {
            hosts.extend([
                "docker.io".to_string(),
                "registry-1.docker.io".to_string(),
                "index.docker.io".to_string(),
            ]);
        }
        for host in hosts {
            out.push(buildkit::RegistryAuth {
                host,
                username: user.clone(),
                password: pass.clone(),
            });
        }
    }
    for r in &source.additional_registries {
        if let (Some(username), Some(password)) = (&r.username, &r.password) {
            out.push(buildkit::RegistryAuth {
                host: r.host.clone(),
                username: username.clone(),
                password: password.clone(),
            });
        }
    }
    out
}

/// A stable key per context path, so the daemon's upload cache sends only
/// changed files on the next build of the same context.
fn shared_key(context: &Path) -> String {
    super::manifest::sha256(context.to_string_lossy().as_bytes())
        .trim_start_matches("sha256:")
        .chars()
        .take(32)
        .collect()
}

fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| format!("{:x}", rng.gen_range(0..16u8)))
        .collect()
}
