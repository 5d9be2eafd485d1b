//! Build params → what to ask BuildKit for: frontend attributes, the
//! exporter, cache imports/exports and entitlements, per backend.
//!
//! Two backends differ in what they can export (see `buildkit::info`'s capabilities):
//! a standalone buildkitd pushes the image itself (`image` exporter with
//! `push-by-digest`, so no tag moves until we put the manifest under each tag
//! at the very end), and exports registry caches. Docker Engine 20.10 only
//! has `moby` (its image store, one platform) and inline cache export, so
//! there we build into a uniquely named local image that the caller reads
//! back and pushes itself; `cache: true` falls back to inline cache there.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::buildkit::{CacheEntry, Exporter, SolveRequest};
use crate::config::put::{BuildParams, Network, NoCache};

/// The daemon family, which decides exporters and cache support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A standalone (or embedded) buildkitd.
    Buildkitd,
    /// BuildKit inside a Docker Engine (`/grpc` on its socket).
    DockerEngine,
}

/// Where the result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Repository as BuildKit dials it: `host[:port]/path` (`docker.io/...`
    /// for Docker Hub).
    pub repository: String,
    /// Send `registry.insecure=true` with the push and registry caches
    /// (decided by `run::request_insecure`: never with `ca_certs`, never on
    /// the embedded daemon, whose buildkitd.toml says it per host).
    pub insecure: bool,
    /// The tags that will be put last (the Engine's inline cache imports
    /// the first one).
    pub tags: Vec<String>,
    /// Name of the temporary image in the Engine's store (Engine only).
    pub engine_image: String,
}

/// References served by our loopback registry for preloaded images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preloaded {
    /// `IMAGE_ARG_<name>` → `127.0.0.1:<port>/<name lowercased>`.
    pub image_args: BTreeMap<String, String>,
    /// `FROM <name>` → served reference (named contexts).
    pub bases: BTreeMap<String, String>,
}

/// A build the chosen backend cannot do.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Several platforms on an Engine.
    #[error(
        "the Docker Engine backend builds one platform at a time, and {0} were asked for: use a standalone \
         buildkitd (the embedded one, or source.buildkit_host unix://, tcp:// or ssh:// to a buildkitd) for a \
         multi-platform image"
    )]
    MultiPlatformOnEngine(usize),
    /// Named-context overrides on an Engine.
    #[error(
        "load_base/load_bases need named build contexts, which Docker Engine 20.10's BuildKit lacks: use a \
         standalone buildkitd, or IMAGE_ARG_<name> with `ARG <name>` + `FROM ${{<name>}}`"
    )]
    LoadBaseOnEngine,
    /// A build arg that an image arg also sets.
    #[error("build arg {0:?} is also an image arg; image args set that build arg themselves")]
    ImageArgClash(String),
    /// `cache: true` and a `cache_to` entry both ask for one export type.
    #[error(
        "cache: true already exports a {kind:?} cache (to {reference}) and cache_to asks for another {kind:?} \
         cache export; BuildKit accepts one cache export per type: drop cache: true or that cache_to entry"
    )]
    DuplicateCacheExport {
        /// The cache type both ask for.
        kind: String,
        /// Where `cache: true` exports it.
        reference: String,
    },
    /// A `load_base` whose repository is no valid image reference.
    #[error(
        "load_base names {0:?}, which is no valid image reference (repository file, then tag file)"
    )]
    LoadBaseName(String),
    /// The Dockerfile path has no file name (cannot happen after param checks).
    #[error("dockerfile {} has no file name", .0.display())]
    DockerfileName(PathBuf),
}

/// The `Control.Solve` request for `params` on `backend` (the session's
/// directories are [`local_dirs`]).
pub fn plan(
    params: &BuildParams,
    backend: Backend,
    dest: &Destination,
    preloaded: &Preloaded,
) -> Result<SolveRequest, PlanError> {
    check_backend(params, backend)?;
    let mut attrs = frontend_attrs(params, preloaded)?;
    let entitlements = network_mode(params.network, &mut attrs);
    let exporter = exporter(params, backend, dest);
    let mut caches = Caches::for_cache_tag(params.cache_tag.as_deref(), backend, dest);
    caches.add_user_entries(params)?;
    if let Some(json) = caches.imports_attr() {
        attrs.insert("cache-imports".into(), json);
    }

    Ok(SolveRequest {
        frontend: "dockerfile.v0".into(),
        frontend_attrs: attrs,
        exporters: vec![exporter],
        cache_imports: caches.imports,
        cache_exports: caches.exports,
        entitlements,
    })
}

/// Refuses what an Engine's BuildKit cannot do before anything is asked of
/// it, with the way out in the message.
fn check_backend(params: &BuildParams, backend: Backend) -> Result<(), PlanError> {
    if backend == Backend::DockerEngine {
        if params.platforms.len() > 1 {
            return Err(PlanError::MultiPlatformOnEngine(params.platforms.len()));
        }
        if !params.load_bases.is_empty() {
            return Err(PlanError::LoadBaseOnEngine);
        }
    }
    Ok(())
}

/// The dockerfile frontend's attributes from the params and the preloaded
/// images (all but the network and the cache imports, which depend on more
/// than the params).
fn frontend_attrs(
    params: &BuildParams,
    preloaded: &Preloaded,
) -> Result<BTreeMap<String, String>, PlanError> {
    let mut attrs = BTreeMap::new();
    let filename = params
        .dockerfile
        .file_name()
        .ok_or_else(|| PlanError::DockerfileName(params.dockerfile.clone()))?;
    attrs.insert("filename".into(), filename.to_string_lossy().into_owned());
    if let Some(t) = &params.target {
        attrs.insert("target".into(), t.clone());
    }
    for (k, v) in &params.build_args {
        attrs.insert(format!("build-arg:{k}"), v.clone());
    }
    for (name, reference) in &preloaded.image_args {
        if params.build_args.contains_key(name) {
            return Err(PlanError::ImageArgClash(name.clone()));
        }
        attrs.insert(format!("build-arg:{name}"), reference.clone());
    }
    for (name, reference) in &preloaded.bases {
        attrs.insert(
            named_context_key(name)?,
            format!("docker-image://{reference}"),
        );
    }
    for (k, v) in &params.labels {
        attrs.insert(format!("label:{k}"), v.clone());
    }
    if !params.platforms.is_empty() {
        attrs.insert("platform".into(), params.platforms.join(","));
    }
    if !params.add_hosts.is_empty() {
        let hosts: Vec<String> = params
            .add_hosts
            .iter()
            .map(|(h, ip)| format!("{h}={ip}"))
            .collect();
        attrs.insert("add-hosts".into(), hosts.join(","));
    }
    match &params.no_cache {
        NoCache::Off => {}
        NoCache::All => {
            attrs.insert("no-cache".into(), String::new());
        }
        NoCache::Stages(s) => {
            attrs.insert("no-cache".into(), s.join(","));
        }
    }
    // Inserted last: it wins over a build arg of the same name.
    if let Some(epoch) = params.source_date_epoch {
        attrs.insert("build-arg:SOURCE_DATE_EPOCH".into(), epoch.to_string());
    }
    Ok(attrs)
}

/// Sets the frontend's network mode and returns the entitlements it needs:
/// the two go together, since a host network the daemon was not allowed
/// fails the solve.
fn network_mode(network: Network, attrs: &mut BTreeMap<String, String>) -> Vec<String> {
    let mut entitlements = Vec::new();
    match network {
        Network::Default => {}
        Network::None => {
            attrs.insert("force-network-mode".into(), "none".into());
        }
        Network::Host => {
            attrs.insert("force-network-mode".into(), "host".into());
            entitlements.push("network.host".to_string());
        }
    }
    entitlements
}

/// The exporter: a push by digest on a buildkitd (so no tag moves until the
/// end), or a named image in an Engine's store that the caller reads back.
fn exporter(params: &BuildParams, backend: Backend, dest: &Destination) -> Exporter {
    match backend {
        Backend::Buildkitd => {
            // Untagged: BuildKit refuses to push a tagged name by digest
            // ("can't push tagged ref"), so provenance subjects name the
            // image `pkg:docker/<repository>@latest`; their digest is what
            // identifies it.
            let mut e = BTreeMap::from([
                ("name".to_string(), dest.repository.clone()),
                ("push".to_string(), "true".to_string()),
                // Blobs and the manifest go up by digest; tags are put last.
                ("push-by-digest".to_string(), "true".to_string()),
            ]);
            if dest.insecure {
                e.insert("registry.insecure".into(), "true".into());
            }
            if params.source_date_epoch.is_some() {
                e.insert("rewrite-timestamp".into(), "true".into());
            }
            if !params.annotations.is_empty() {
                // Docker media types cannot carry annotations.
                e.insert("oci-mediatypes".into(), "true".into());
                for (k, v) in &params.annotations {
                    e.insert(format!("annotation.{k}"), v.clone());
                    if params.platforms.len() > 1 {
                        e.insert(format!("annotation-index.{k}"), v.clone());
                    }
                }
            }
            Exporter {
                kind: "image".into(),
                attrs: e,
                output: None,
            }
        }
        Backend::DockerEngine => Exporter {
            kind: "moby".into(),
            attrs: BTreeMap::from([("name".to_string(), dest.engine_image.clone())]),
            output: None,
        },
    }
}

/// The solve's cache imports and exports, built in order: `cache: true`'s
/// entries first, then the user's `cache_from` and `cache_to`, which must
/// not clash with them.
#[derive(Debug, Default)]
struct Caches {
    imports: Vec<CacheEntry>,
    exports: Vec<CacheEntry>,
}

impl Caches {
    /// What `cache: true` (a `cache_tag`) means on each backend: a registry
    /// cache under that tag on a buildkitd, inline cache in the pushed image
    /// on an Engine, which can export nothing else.
    fn for_cache_tag(tag: Option<&str>, backend: Backend, dest: &Destination) -> Caches {
        let mut caches = Caches::default();
        let Some(tag) = tag else {
            return caches;
        };
        let reference = format!("{}:{tag}", dest.repository);
        caches.imports.push(insecure_if(
            dest.insecure,
            registry_cache(reference.clone()),
        ));
        match backend {
            Backend::Buildkitd => {
                let mut export = registry_cache(reference);
                export.attrs.extend([
                    ("mode".to_string(), "max".to_string()),
                    ("image-manifest".to_string(), "true".to_string()),
                    ("oci-mediatypes".to_string(), "true".to_string()),
                    // A cache that cannot be written must not fail the build.
                    ("ignore-error".to_string(), "true".to_string()),
                ]);
                if dest.insecure {
                    export
                        .attrs
                        .insert("registry.insecure".into(), "true".into());
                }
                caches.exports.push(export);
            }
            Backend::DockerEngine => {
                // Engine 20.10 exports only inline cache: it travels inside the
                // pushed image, so the next build imports the image itself.
                if let Some(first) = dest.tags.first() {
                    caches.imports.push(insecure_if(
                        dest.insecure,
                        registry_cache(format!("{}:{first}", dest.repository)),
                    ));
                }
                caches.exports.push(CacheEntry {
                    kind: "inline".into(),
                    attrs: BTreeMap::new(),
                });
            }
        }
        caches
    }

    /// Adds `cache_from` (skipping imports already there) and `cache_to`.
    fn add_user_entries(&mut self, params: &BuildParams) -> Result<(), PlanError> {
        for entry in &params.cache_from {
            if !self.imports.contains(entry) {
                self.imports.push(entry.clone());
            }
        }
        for entry in &params.cache_to {
            let entry = entry.clone();
            // BuildKit refuses two exports of one type (`duplicate cache
            // exports`); only an identical entry (e.g. a second `inline`) can be
            // folded into the one `cache: true` added.
            match self.exports.iter().find(|e| e.kind == entry.kind) {
                None => self.exports.push(entry),
                Some(existing) if *existing == entry => {}
                Some(existing) => {
                    return Err(PlanError::DuplicateCacheExport {
                        kind: entry.kind,
                        reference: existing
                            .attrs
                            .get("ref")
                            .cloned()
                            .unwrap_or_else(|| "the pushed image".into()),
                    });
                }
            }
        }
        Ok(())
    }

    /// The frontend's `cache-imports` attribute (none without imports): the
    /// frontend resolves cache for its own sub-solves from it.
    fn imports_attr(&self) -> Option<String> {
        if self.imports.is_empty() {
            return None;
        }
        let json: Vec<serde_json::Value> = self
            .imports
            .iter()
            .map(|c| serde_json::json!({"Type": c.kind, "Attrs": c.attrs}))
            .collect();
        Some(serde_json::Value::Array(json).to_string())
    }
}

/// The session's directories: `context`, and `dockerfile` (the Dockerfile's
/// directory).
pub fn local_dirs(params: &BuildParams) -> BTreeMap<String, PathBuf> {
    let dockerfile_dir = params
        .dockerfile
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| params.context.clone());
    BTreeMap::from([
        ("context".to_string(), params.context.clone()),
        ("dockerfile".to_string(), dockerfile_dir),
    ])
}

/// A registry cache entry at `reference`.
fn registry_cache(reference: String) -> CacheEntry {
    CacheEntry {
        kind: "registry".into(),
        attrs: BTreeMap::from([("ref".to_string(), reference)]),
    }
}

/// Adds `registry.insecure=true` to a registry cache entry when asked.
fn insecure_if(insecure: bool, mut entry: CacheEntry) -> CacheEntry {
    if insecure {
        entry
            .attrs
            .insert("registry.insecure".into(), "true".into());
    }
    entry
}

/// The `context:<name>` attribute the dockerfile frontend looks up for
/// `FROM <name>`: it parses the FROM reference as a normalised name and
/// takes its familiar form without a `:latest` suffix
/// (`strings.TrimSuffix(reference.FamiliarString(named), ":latest")` in
/// dockerfile2llb / dockerui since dockerfile 1.4). So `alpine`,
/// `alpine:latest` and `docker.io/library/alpine:latest` all look up
/// `context:alpine`, and a key spelt any other way is silently ignored.
pub fn named_context_key(name: &str) -> Result<String, PlanError> {
    let invalid = || PlanError::LoadBaseName(name.to_string());
    // Split off a digest, then a tag (a `:` after the last `/`).
    let (rest, digest) = match name.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (name, None),
    };
    let (repo, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if repo.is_empty() || tag == Some("") || digest == Some("") {
        return Err(invalid());
    }
    // Domain detection as in distribution/reference: the first component is
    // a registry when it has a `.` or `:`, is `localhost`, or has upper case.
    let (domain, path) = match repo.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => ("docker.io", repo),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let valid_path = !path.is_empty()
        && path.split('/').all(|c| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
        });
    if !valid_path {
        return Err(invalid());
    }
    let familiar = if domain == "docker.io" {
        match path.strip_prefix("library/") {
            Some(short) if !short.contains('/') => short.to_string(),
            _ => path.to_string(),
        }
    } else {
        format!("{domain}/{path}")
    };
    let mut key = format!("context:{familiar}");
    if let Some(t) = tag.filter(|t| *t != "latest" || digest.is_some()) {
        key.push(':');
        key.push_str(t);
    }
    if let Some(d) = digest {
        key.push('@');
        key.push_str(d);
    }
    Ok(key)
}

#[cfg(test)]
pub(crate) mod tests;
