//! Running a put build: pick the daemon, preload images, solve, and read
//! back what was pushed by digest (the tags move afterwards, in
//! `commands::put`).
//!
//! Daemon choice: `source.buildkit_host`, else `$BUILDKIT_HOST`, else the
//! embedded buildkitd (when `buildkitd` is on PATH), else an error naming
//! those three options. An `ssh://` host is reached through an
//! [`SshTunnel`](buildkit::SshTunnel) opened with `source.buildkit_ssh`, whose
//! local socket then serves as the Engine or buildkitd socket; when ssh
//! failed under a failed build, ssh's reason is the error. On a standalone buildkitd the image goes straight
//! from BuildKit to the registry by digest (credentials served from the
//! session); on a Docker Engine it is built into the Engine's store, read
//! back as a docker-save stream and pushed by us. Either way only digests
//! are pushed here: no tag moves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::buildkit::{self, Address, DaemonKind};
use crate::config::Source;
use crate::config::put::{BuildParams, DaemonParams, Network, SecretSpec};
use crate::process::Interrupt;
use crate::registry;

use super::Error;
use super::Result;
use super::attest;
use super::solve::{self, Backend, Destination, Preloaded};
use super::transient;
use super::unchanged;
use crate::daemon::config::{DaemonConfig, RegistryHost};
use crate::daemon::{self, EmbeddedDaemon, StartOptions};
use crate::store::loopback::ImageRegistry;
use crate::store::push::{self, Pushed};
use crate::store::{ImageStore, prebuilt};

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// The pushed manifest or index, and what it holds.
    pub pushed: Pushed,
    /// `buildkitd` version (or `docker <version>`).
    pub buildkit_version: String,
    /// Wall time of the solve (and, on an Engine, the read-back).
    pub duration: Duration,
    /// The tags already held an equal index and stayed on it
    /// (src/put/unchanged.rs): `pushed` is that index, and no tag moved.
    pub tags_kept: bool,
}

/// The daemon we talk to; the embedded one stops when this drops.
enum Daemon {
    Remote(Address),
    /// An `ssh://` host, through the tunnel's local socket.
    Ssh(buildkit::SshTunnel),
    Embedded(EmbeddedDaemon),
}

/// Builds `params` and pushes the result to `client`'s repository by
/// digest; `tags` are the tags the caller moves afterwards (an unchanged
/// build keeps the index they hold, and a Docker Engine's inline cache
/// reads them). `work_dir` is the put's working directory (argv[1]), a candidate
/// for the embedded daemon's root.
///
/// On SIGTERM/SIGINT (`interrupt`) the solve is cancelled (its future
/// dropped, which ends the session and the request), the embedded daemon is
/// shut down (see [`EmbeddedDaemon::shutdown`]) and
/// [`Error::Interrupted`] says what was cleaned.
pub async fn build_and_push(
    source: &Source,
    params: &BuildParams,
    daemon_params: &DaemonParams,
    client: &registry::Client,
    tags: &[String],
    work_dir: &Path,
    interrupt: &Interrupt,
) -> Result<Built> {
    let mut daemon = choose_daemon(source, daemon_params, params, work_dir)?;
    let address = match &mut daemon {
        Daemon::Remote(a) => a.clone(),
        Daemon::Ssh(t) => t.address().clone(),
        Daemon::Embedded(d) => {
            let ready = match race(d.wait_ready(daemon::process::answers), interrupt).await {
                Raced::Done(r) => r,
                Raced::Interrupted(signal) => return Err(abort(daemon, signal).await),
            };
            ready.map_err(Error::from)?;
            Address::Unix(d.socket().to_path_buf())
        }
    };
    let embedded = matches!(daemon, Daemon::Embedded(_));
    let watch = push_watch(&daemon, source);
    let result = match race(
        build_on(&address, embedded, watch, source, params, client, tags),
        interrupt,
    )
    .await
    {
        Raced::Done(r) => r,
        Raced::Interrupted(signal) => return Err(abort(daemon, signal).await),
    };
    if let (Err(e), Daemon::Ssh(tunnel)) = (&result, &daemon)
        && let Some(ssh) = tunnel.failure_error()
    {
        // The gRPC layer only saw the connection close; ssh said why.
        tracing::debug!("the build over ssh failed with: {e}");
        return Err(Error::from(ssh));
    }
    if let Daemon::Embedded(d) = daemon {
        if result.is_err() {
            tracing::warn!(
                "last lines of the embedded buildkitd's log:\n{}",
                d.log_tail(20)
            );
        }
        let done = d.shutdown().await;
        tracing::debug!("{done}");
    }
    result
}

/// The stall watch of a daemon that pushes by itself, where its I/O can be
/// read: the embedded one (a remote daemon's push has no bound of ours).
fn push_watch(daemon: &Daemon, source: &Source) -> Option<buildkit::PushWatch> {
    let Daemon::Embedded(d) = daemon else {
        return None;
    };
    let pid = d.pid()?;
    Some(buildkit::PushWatch {
        idle: source.tls_options().read_timeout(),
        activity: Arc::new(move || daemon::process::tree_io(pid)),
    })
}

/// A future's output, or the signal that came first.
enum Raced<T> {
    Done(T),
    Interrupted(&'static str),
}

/// Runs `work` until it finishes or `interrupt` fires (then `work` is
/// dropped before this returns).
async fn race<T>(work: impl std::future::Future<Output = T>, interrupt: &Interrupt) -> Raced<T> {
    tokio::select! {
        out = work => Raced::Done(out),
        signal = interrupt.wait() => Raced::Interrupted(signal),
    }
}

/// The error for an interrupted build, after releasing the daemon.
async fn abort(daemon: Daemon, signal: &'static str) -> Error {
    let cleanup = match daemon {
        Daemon::Embedded(d) => d.shutdown().await,
        Daemon::Remote(address) => format!("cancelled the build on {address}"),
        Daemon::Ssh(tunnel) => format!(
            "cancelled the build on {} and closed its ssh connections",
            tunnel.address()
        ),
    };
    Error::Interrupted { signal, cleanup }
}

/// The daemon to build on; an embedded one is started (not yet answering:
/// the caller waits, so that it owns the daemon if a signal comes first).
fn choose_daemon(
    source: &Source,
    daemon_params: &DaemonParams,
    params: &BuildParams,
    work_dir: &Path,
) -> Result<Daemon> {
    if let Some(extra) = &daemon_params.extra_config {
        // Checked even when another daemon is used: a typo should not wait
        // for the day the embedded daemon runs.
        daemon::config::validate_extra(extra).map_err(Error::from)?;
    }
    let given_host = source.buildkit_host.as_deref().filter(|h| !h.is_empty());
    let env_host = std::env::var("BUILDKIT_HOST")
        .ok()
        .filter(|h| !h.is_empty());
    for warning in ineffective_params(
        source,
        daemon_params,
        given_host.is_some() || env_host.is_some(),
    ) {
        tracing::warn!("{warning}");
    }
    if let Some(host) = given_host {
        let tls = source.buildkit_tls.as_ref().map(|t| buildkit::TlsConfig {
            ca_cert: t.ca_cert.clone(),
            cert: t.cert.clone(),
            key: t.key.as_ref().map(|k| buildkit::Secret::new(k.expose())),
            server_name: t.server_name.clone(),
        });
        let address = Address::parse(host, tls).map_err(Error::from)?;
        return remote(address, source);
    }
    if let Some(host) = env_host {
        let address = Address::parse(&host, None).map_err(Error::from)?;
        return remote(address, source);
    }
    let Some(binary) = daemon::process::find_on_path() else {
        return Err(Error::from(daemon::Error::NotConfigured));
    };
    let avoid: Vec<PathBuf> = solve::local_dirs(params).into_values().collect();
    let roots = daemon::root::put_root_candidates(work_dir, &avoid);
    // The overlay probe runs where the daemon's state will go.
    let host = daemon::mode::System {
        probe_dir: roots.parents[0].clone(),
    };
    let choice = daemon::mode::detect(&host)
        .map_err(|tried| Error::from(daemon::Error::Unavailable { tried }))?;
    tracing::info!("embedded buildkitd mode: {}", choice.reason);
    tracing::info!("{}", roots.note);
    let config = daemon_config(source, daemon_params);
    let embedded = EmbeddedDaemon::spawn(StartOptions {
        root_parents: roots.parents,
        mode: choice.mode,
        ..StartOptions::new(binary, config)
    })
    .map_err(Error::from)?;
    Ok(Daemon::Embedded(embedded))
}

/// A daemon at `address`; for `ssh://`, its tunnel opened with
/// `source.buildkit_ssh`.
fn remote(address: Address, source: &Source) -> Result<Daemon> {
    let Address::Ssh(target) = &address else {
        return Ok(Daemon::Remote(address));
    };
    let Some(ssh) = &source.buildkit_ssh else {
        return Err(Error::from(buildkit::Error::InvalidAddress {
            address: address.to_string(),
            reason: "ssh:// needs source.buildkit_ssh with private_key (the user's key) and \
                     known_hosts (the host's key, e.g. from ssh-keyscan)"
                .into(),
        }));
    };
    let credentials = buildkit::SshCredentials {
        private_key: buildkit::Secret::new(ssh.private_key.expose()),
        known_hosts: ssh.known_hosts.clone(),
    };
    let tunnel = buildkit::SshTunnel::open(target, &credentials).map_err(Error::from)?;
    Ok(Daemon::Ssh(tunnel))
}

/// Params that only the embedded buildkitd honours (it is the only daemon
/// whose buildkitd.toml we write) or that only `source.buildkit_host` uses,
/// each with why it has no effect. These are warnings, not errors: one
/// `source` is often shared by pipelines that run on different daemons.
fn ineffective_params(source: &Source, params: &DaemonParams, remote: bool) -> Vec<String> {
    let mut out = Vec::new();
    if remote {
        let daemon = "a buildkitd or Docker Engine given by source.buildkit_host or $BUILDKIT_HOST \
                      uses its own configuration";
        if !params.registry_mirrors.is_empty() {
            out.push(format!(
                "params.registry_mirrors is ignored: it configures the embedded buildkitd only, and {daemon}"
            ));
        }
        if params.extra_config.is_some() {
            out.push(format!(
                "params.buildkit_extra_config is ignored: it configures the embedded buildkitd only, and {daemon}"
            ));
        }
        if source.registry_mirror.is_some() {
            out.push(format!(
                "source.registry_mirror does not apply to the build's pulls: {daemon}"
            ));
        }
    }
    if source.buildkit_tls.is_some() && source.buildkit_host.as_deref().is_none_or(str::is_empty) {
        out.push(
            "source.buildkit_tls is ignored: it is the client TLS for source.buildkit_host (tcp://), \
             which is not set"
                .to_string(),
        );
    }
    if source.buildkit_ssh.is_some()
        && !source
            .buildkit_host
            .as_deref()
            .is_some_and(|h| h.starts_with("ssh://"))
    {
        out.push(
            "source.buildkit_ssh is ignored: it is the key and known_hosts for an ssh:// \
             source.buildkit_host, which is not set"
                .to_string(),
        );
    }
    out
}

/// The embedded daemon's registry settings: Docker Hub mirrors, and TLS /
/// plain-HTTP for the source registry (pushes and caches go there) and for
/// every `additional_registries` host (FROM pulls, caches).
fn daemon_config(source: &Source, params: &DaemonParams) -> DaemonConfig {
    let mut mirrors = params.registry_mirrors.clone();
    if let Some(m) = &source.registry_mirror {
        mirrors.push(m.host.clone());
    }
    let mut hosts = vec![buildkit_host(&source.repository.registry)];
    for r in &source.additional_registries {
        let host = buildkit_host(&r.host);
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    let registries = hosts
        .into_iter()
        .filter_map(|host| registry_host(host, source))
        .collect();
    DaemonConfig {
        mirrors,
        registries,
        extra: params.extra_config.clone(),
        debug: source.debug,
        rootless: None,
        otel_socket: None,
    }
}

/// One `[registry."<host>"]` entry from `ca_certs` and `insecure`, or `None`
/// when BuildKit's defaults already fit.
///
/// BuildKit's resolver reads `http = true` as "speak plain HTTP to this
/// host" and `insecure = true` as "speak HTTPS without verifying the
/// certificate" (tried first, with a plain-HTTP fallback when `http` is also
/// set). registry-image's `insecure` means "plain HTTP is allowed", and TLS
/// is never left unverified. So:
/// - `ca_certs` given: `http = false` + `ca`, never `insecure`: a CA says the
///   registry speaks TLS, and it is verified against that CA. `http = false`
///   must be explicit, or BuildKit tries loopback hosts over plain HTTP
///   (and pulls fail with `400 Bad Request`).
/// - `insecure` without `ca_certs`: `http = true` only (plain HTTP), never
///   `insecure = true`.
/// - neither: no entry (HTTPS verified against the system roots).
fn registry_host(host: String, source: &Source) -> Option<RegistryHost> {
    if !source.ca_certs.is_empty() {
        Some(RegistryHost {
            host,
            ca_pems: source.ca_certs.clone(),
            http: false,
            insecure: false,
        })
    } else if source.insecure {
        Some(RegistryHost {
            host,
            ca_pems: Vec::new(),
            http: true,
            insecure: false,
        })
    } else {
        None
    }
}

/// Whether solve requests carry `registry.insecure=true` (pushes, registry
/// caches). The embedded daemon never needs it: its buildkitd.toml says
/// `http`/`ca` per host, and the attribute would override that with
/// "unverified HTTPS, then plain HTTP" for the host, dropping the CA. Another
/// daemon's configuration is not ours, so there `insecure` (without a CA)
/// maps to the attribute, the only per-request switch BuildKit has: for that
/// host it allows plain HTTP and, on HTTPS, skips verification. With
/// `ca_certs` it is never sent: that daemon must trust the CA itself.
fn request_insecure(source: &Source, embedded: bool) -> bool {
    !embedded && source.insecure && source.ca_certs.is_empty()
}

/// Preloaded images (`IMAGE_ARG_*`, `load_base(s)`) are served on this
/// container's 127.0.0.1, which a buildkitd reached over TCP resolves in its
/// own network namespace: the pull would hit the wrong host or nothing.
fn check_preload_reachable(address: &Address, params: &BuildParams) -> Result<(), Error> {
    let names: Vec<&str> = [
        (!params.image_args.is_empty()).then_some("IMAGE_ARG_* (image_args)"),
        (!params.load_bases.is_empty()).then_some("load_base/load_bases"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if names.is_empty() || !address.is_remote_host() {
        return Ok(());
    }
    Err(Error::PreloadUnreachable {
        params: names.join(" and "),
        address: address.to_string(),
    })
}

/// Docker Hub as BuildKit names it.
fn buildkit_host(host: &str) -> String {
    if registry::is_docker_hub_host(host) {
        "docker.io".into()
    } else {
        host.into()
    }
}

/// Builds on the daemon at `address` and pushes the result. Everything
/// that can fail with nothing built is checked first (reachability of the
/// preloads, the daemon's kind, attestations, the scanner), then the solve
/// (which pushes by digest on a buildkitd); no tag moves here.
async fn build_on(
    address: &Address,
    embedded: bool,
    watch: Option<buildkit::PushWatch>,
    source: &Source,
    params: &BuildParams,
    client: &registry::Client,
    tags: &[String],
) -> Result<Built> {
    // Before connecting: nothing about the daemon's answer changes this.
    check_preload_reachable(address, params)?;
    let (bk, info) = connect(address, source).await?;
    let engine_socket = engine_socket(address, &info)?;
    let backend = if engine_socket.is_some() {
        Backend::DockerEngine
    } else {
        Backend::Buildkitd
    };
    tracing::info!("building on {address} ({})", info.version);
    // Before preloading or building: a refused attestation or an
    // unreachable scanner fails the put with nothing built.
    let attest_attrs = attest::frontend_attrs(params, backend, &info).map_err(Error::from)?;
    if let Some(sbom) = &params.sbom {
        attest::check_scanner(source, sbom)
            .await
            .map_err(Error::from)?;
    }

    let params = &engine_network(params, backend, address).await;
    // Served until the build is over: the solve pulls from it.
    let (preloaded, _registry) = preload(params).await?;
    let dest = destination(client, source, embedded, tags, backend);
    let mut request = solve::plan(params, backend, &dest, &preloaded).map_err(Error::from)?;
    request.frontend_attrs.extend(attest_attrs);
    let session = session_options(params, source)?;

    let mounts = crate::cache_mounts::prepare(params, address.is_remote_host()).await;
    if let Some(m) = &mounts {
        m.restore(&bk, client).await;
    }
    let started = Instant::now();
    let outcome = solve_and_push(&bk, request, session, watch).await?;
    let (pushed, tags_kept) = match &engine_socket {
        None => {
            // An SBOM asked for must be there: a scanner that writes
            // nothing would otherwise pass unseen.
            let required: &[&str] = if params.sbom.is_some() {
                &["sbom"]
            } else {
                &[]
            };
            tag_solved(client, &outcome, tags, required).await?
        }
        Some(socket) => {
            let engine_image = &dest.engine_image;
            let pushed = push_from_engine(client, socket, engine_image, params).await?;
            (pushed, false)
        }
    };
    if let Some(m) = &mounts {
        m.save(&bk, client).await;
    }
    Ok(Built {
        pushed,
        buildkit_version: info.version,
        duration: started.elapsed(),
        tags_kept,
    })
}

/// A client to the daemon and what it is. One deadline covers connecting
/// and the first answer: a tcp:// host that accepts and never speaks must
/// fail with a message, not hang.
async fn connect(
    address: &Address,
    source: &Source,
) -> Result<(buildkit::Client, buildkit::DaemonInfo)> {
    buildkit::Client::connect_and_probe(
        address,
        source
            .buildkit_timeout
            .unwrap_or(buildkit::DEFAULT_ANSWER_TIMEOUT),
    )
    .await
    .map_err(Error::from)
}

/// The Engine's API socket when the build goes through a Docker Engine.
/// The Engine path needs that socket (to read the image back), so the
/// address decides, not only what the daemon says it is; an Engine given
/// without one is refused with the spelling that works.
fn engine_socket(address: &Address, info: &buildkit::DaemonInfo) -> Result<Option<PathBuf>> {
    match (address.docker_socket(), info.kind) {
        (Some(socket), _) => Ok(Some(socket.to_path_buf())),
        (None, DaemonKind::DockerEngine) => Err(Error::from(buildkit::Error::InvalidAddress {
            address: address.to_string(),
            reason: "this is a Docker Engine: give it as docker:///path/to/docker.sock, or as \
                     ssh://user@host without a socket path"
                .into(),
        })),
        _ => Ok(None),
    }
}

/// The params to build with: on an Engine without a `bridge` network, RUN
/// steps get network mode `none` instead of the default, which needs that
/// network.
async fn engine_network(params: &BuildParams, backend: Backend, address: &Address) -> BuildParams {
    let mut params = params.clone();
    if let (Backend::DockerEngine, Some(socket), Network::Default) =
        (backend, address.docker_socket(), params.network)
        && buildkit::docker_engine::has_bridge(socket).await == Some(false)
    {
        tracing::info!(
            "the Docker Engine has no bridge network: RUN steps get network mode `none`"
        );
        params.network = Network::None;
    }
    params
}

/// Where BuildKit pushes (or, on an Engine, which local image it writes),
/// with a warning in the one case where TLS may go unverified.
fn destination(
    client: &registry::Client,
    source: &Source,
    embedded: bool,
    tags: &[String],
    backend: Backend,
) -> Destination {
    let repo = client.repository();
    let dest = Destination {
        repository: format!("{}/{}", buildkit_host(&repo.registry), repo.path),
        insecure: request_insecure(source, embedded),
        tags: tags.to_vec(),
        engine_image: format!("oci-build-resource/put-{}:build", random_hex(12)),
    };
    if dest.insecure && backend == Backend::Buildkitd {
        // Not silent: this is the one case where TLS may go unverified.
        tracing::warn!(
            "source.insecure on a buildkitd this put did not start: BuildKit's registry.insecure allows plain \
             HTTP to {} and also skips TLS verification there; give source.ca_certs (and trust that CA in the \
             daemon's buildkitd.toml) to keep TLS verified",
            repo.registry
        );
    }
    dest
}

/// What the session serves the daemon: the context and Dockerfile
/// directories, secrets, ssh sockets or keys and registry credentials.
fn session_options(params: &BuildParams, source: &Source) -> Result<buildkit::SessionOptions> {
    Ok(buildkit::SessionOptions {
        local_dirs: solve::local_dirs(params),
        secrets: params
            .secrets
            .iter()
            .map(|(id, s)| (id.clone(), secret_source(s)))
            .collect(),
        ssh: params.ssh.iter().map(ssh_source).collect::<Result<_>>()?,
        registry_auth: registry_auth(source),
        shared_key: shared_key(&params.context),
    })
}

/// What a buildkitd pushed by digest, or the equivalent index `tags`
/// already hold (then `true`: the tags are to stay), so a rebuild of
/// unchanged images does not make a new version.
async fn tag_solved(
    client: &registry::Client,
    outcome: &buildkit::SolveOutcome,
    tags: &[String],
    required: &[&str],
) -> Result<(Pushed, bool)> {
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
    match unchanged::equivalent_index(client, &digest, tags).await {
        Some(old) => {
            tracing::info!(
                "the images are unchanged since {old}, and its attestations differ from this \
                 build's only in the invocation's ID and times: the tags stay on it (the new \
                 index {digest} is left untagged)"
            );
            Ok((push::describe_pushed(client, &old, required).await?, true))
        }
        None => Ok((
            push::describe_pushed(client, &digest, required).await?,
            false,
        )),
    }
}

/// Reads the Engine's image back and pushes it by digest, then removes
/// the temporary image whether or not the push worked (a failed removal is
/// only a warning: the image is pushed or the push's error matters more).
async fn push_from_engine(
    client: &registry::Client,
    socket: &Path,
    engine_image: &str,
    params: &BuildParams,
) -> Result<Pushed> {
    let result =
        super::engine::push_from_engine(client, socket, engine_image, &params.annotations).await;
    if let Err(e) = buildkit::docker_engine::remove_image(socket, engine_image).await {
        tracing::warn!("removing the temporary image {engine_image} from the Engine: {e}");
    }
    result
}

/// One solve, and a second when the first failed only in its push: see
/// src/put/transient.rs. No tag has moved after a failed solve.
async fn solve_and_push(
    bk: &buildkit::Client,
    request: buildkit::SolveRequest,
    session: buildkit::SessionOptions,
    watch: Option<buildkit::PushWatch>,
) -> Result<buildkit::SolveOutcome> {
    let solve = |request, session| {
        let watch = watch.clone();
        async move {
            match watch {
                Some(watch) => bk.solve_with_push_watch(request, session, watch).await,
                None => bk.solve(request, session).await,
            }
        }
    };
    let error = match solve(request.clone(), session.clone()).await {
        Ok(outcome) => return Ok(outcome),
        Err(e) => e,
    };
    let Some(why) = transient::push_failure(&error) else {
        return Err(Error::from(error));
    };
    tracing::warn!(
        "the push failed with a transient error ({why}): solving once more (the steps are cached, no tag has moved)"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    solve(request, session).await.map_err(Error::from)
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
        images.insert(name.clone(), prebuilt::for_serving(path).await?);
        image_arg_names.insert(arg.clone(), name);
    }
    let mut base_names = BTreeMap::new();
    for (i, base) in params.load_bases.iter().enumerate() {
        let name = format!("load-base-{i}");
        images.insert(name.clone(), prebuilt::for_serving(&base.image).await?);
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

/// The session's source of a build secret. Its value joins the secrets
/// scrubbed from all output first: a `RUN` step that prints it (`set -x`
/// with `--mount=type=secret,env=...`) must not show it in the progress or
/// in a failure's log tail.
fn secret_source(s: &SecretSpec) -> buildkit::SecretSource {
    remember_build_secret(s);
    match s {
        SecretSpec::File(p) => buildkit::SecretSource::File(p.clone()),
        SecretSpec::Text(t) => buildkit::SecretSource::Text(t.clone()),
        SecretSpec::Env(v) => buildkit::SecretSource::Env(v.clone()),
    }
}

/// Adds a build secret's value (text, an environment variable, a file's
/// contents) to [`crate::secret::scrub`]'s list, with and without a final
/// newline (`$(cat /run/secrets/x)` prints it without).
fn remember_build_secret(s: &SecretSpec) {
    let value = match s {
        SecretSpec::Text(t) => Some(t.expose().to_string()),
        SecretSpec::Env(var) => std::env::var(var).ok(),
        SecretSpec::File(path) => crate::small_file::read(path, crate::small_file::SECRET_LIMIT)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
    };
    if let Some(value) = value {
        crate::secret::remember(&value);
        crate::secret::remember(value.trim_end_matches(['\n', '\r']));
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

/// Credentials BuildKit may ask for: the source registry (push, cache),
/// `additional_registries` (FROM pulls, caches) and the `registry_mirror`
/// host (the embedded daemon pulls Docker Hub images through it).
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
                password: buildkit::Secret::new(pass.expose()),
            });
        }
    }
    for r in source
        .additional_registries
        .iter()
        .chain(source.registry_mirror.as_ref())
    {
        if let (Some(username), Some(password)) = (&r.username, &r.password) {
            out.push(buildkit::RegistryAuth {
                host: r.host.clone(),
                username: username.clone(),
                password: buildkit::Secret::new(password.expose()),
            });
        }
    }
    out
}

/// A stable key per context path, so the daemon's upload cache sends only
/// changed files on the next build of the same context.
fn shared_key(context: &Path) -> String {
    crate::oci::sha256_digest(context.to_string_lossy().as_bytes())
        .into_string()
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

#[cfg(test)]
mod tests;
