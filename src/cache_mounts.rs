//! Persistent cache mounts (`cache_mounts`): the contents of the build's
//! `RUN --mount=type=cache` directories are saved to the registry after a
//! successful build and restored into the daemon before the next one, so a
//! put on a fresh daemon starts warm.
//!
//! BuildKit keeps a cache mount as a mutable snapshot of its own, keyed by
//! the mount's id (its target when no id is given, within
//! `BUILDKIT_CACHE_MOUNT_NS`), and exports none of it: the registry cache
//! carries layers only. But any build that mounts the same id sees the same
//! directory. So both directions are small builds of their own on the same
//! daemon, on a helper image ([`helper`], a static busybox served from the
//! loopback registry):
//!
//! - restore, before the build: the saved archives are the context, and
//!   one `RUN` per mount binds the context and unpacks the archive into the
//!   cache mount (`sharing=locked`, with the owner and mode the Dockerfile
//!   gives the mount, which BuildKit applies when it creates the directory);
//! - save, after the build: one `RUN` per mount (run again each time by a
//!   build arg of a new value; BuildKit's `no-cache` would hand the steps
//!   fresh, empty cache mounts) measures the
//!   directory and packs it (`tar | gzip -1`) into the stage, and the `tar`
//!   exporter sends the archives back; each becomes one blob of an OCI
//!   manifest under `<cache_tag>-mounts` in the put's repository.
//!
//! Nothing here fails a put: a missing or broken saved cache, a helper that
//! cannot be served, a mount over `cache_mounts_max_size` are warnings, and
//! the build runs cold or the mount is left out.

mod helper;
mod spec;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::buildkit::{self, Exporter, SessionOptions, SolveRequest};
use crate::config::put::BuildParams;
use crate::oci::{Digest, sha256_digest};
use crate::registry;

pub use spec::MountSpec;

/// The config media type of a saved cache mount manifest (`check` skips
/// such tags, as it skips BuildKit's registry cache).
pub const CONFIG_MEDIA_TYPE: &str =
    "application/vnd.oci-build-resource.cache-mounts.config.v1+json";
/// Each archive's media type.
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Annotation naming the mount id of an archive.
const ID_ANNOTATION: &str = "org.oci-build-resource.cache-mount.id";
/// Annotations with what the archive unpacks to.
const FILES_ANNOTATION: &str = "org.oci-build-resource.cache-mount.files";
const BYTES_ANNOTATION: &str = "org.oci-build-resource.cache-mount.unpacked-size";

/// The cache mounts of one put and where they are kept.
pub struct MountCache {
    mounts: Vec<MountSpec>,
    max_size: u64,
    tag: String,
    namespace: Option<String>,
    helper: helper::Helper,
    work: tempfile::TempDir,
}

/// The put's cache mounts, when `cache_mounts` is set and they can be kept
/// (else a warning says why not). `remote`: the daemon is reached over the
/// network, and cannot pull the helper from this container's 127.0.0.1.
pub async fn prepare(params: &BuildParams, remote: bool) -> Option<MountCache> {
    let wanted = params.cache_mounts.as_ref()?;
    if remote {
        tracing::warn!(
            "cache_mounts: the daemon is reached over the network and cannot pull the save and restore \
             builds' helper image from this container's 127.0.0.1: the cache mounts are not kept"
        );
        return None;
    }
    let text = match std::fs::read_to_string(&params.dockerfile) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("cache_mounts: reading {}: {e}", params.dockerfile.display());
            return None;
        }
    };
    let mounts = spec::select(spec::find(&text), &wanted.only);
    if mounts.is_empty() {
        tracing::warn!("cache_mounts: the Dockerfile has no RUN --mount=type=cache to keep");
        return None;
    }
    let helper = match helper::serve().await {
        Ok(h) => h,
        Err(why) => {
            tracing::warn!("cache_mounts: cannot run the save and restore builds: {why}");
            return None;
        }
    };
    let work = tempfile::tempdir().ok()?;
    Some(MountCache {
        mounts,
        max_size: wanted.max_size,
        tag: format!(
            "{}-mounts",
            params.cache_tag.as_deref().unwrap_or("buildcache")
        ),
        namespace: params.build_args.get("BUILDKIT_CACHE_MOUNT_NS").cloned(),
        helper,
        work,
    })
}

impl MountCache {
    /// Unpacks the saved archives into the daemon's cache mounts; a
    /// warning and a cold build when there are none or they are broken.
    pub async fn restore(&self, bk: &buildkit::Client, client: &registry::Client) {
        let started = Instant::now();
        match self.try_restore(bk, client).await {
            Ok(0) => tracing::info!(
                "cache_mounts: nothing saved under {} yet: the cache mounts start empty",
                self.tag
            ),
            Ok(n) => tracing::info!(
                "cache_mounts: restored {n} mount(s) in {:.1}s",
                started.elapsed().as_secs_f64()
            ),
            Err(why) => tracing::warn!(
                "cache_mounts: restoring from {} failed ({why}): the cache mounts start empty",
                self.tag
            ),
        }
    }

    /// Packs each cache mount and pushes the archives under the tag; only
    /// warnings on failure.
    pub async fn save(&self, bk: &buildkit::Client, client: &registry::Client) {
        let started = Instant::now();
        match self.try_save(bk, client).await {
            Ok(n) => tracing::info!(
                "cache_mounts: saved {n} mount(s) as {} in {:.1}s",
                self.tag,
                started.elapsed().as_secs_f64()
            ),
            Err(why) => {
                tracing::warn!("cache_mounts: saving failed ({why}); the next put starts cold")
            }
        }
    }

    async fn try_restore(
        &self,
        bk: &buildkit::Client,
        client: &registry::Client,
    ) -> Result<usize, String> {
        let manifest = match client.fetch_manifest(&self.tag).await {
            Ok(m) => m,
            Err(e) if e.status() == Some(http::StatusCode::NOT_FOUND) => return Ok(0),
            Err(e) => return Err(crate::oci::error_chain(&e)),
        };
        let doc: Value = serde_json::from_slice(&manifest.bytes).map_err(|e| e.to_string())?;
        if doc["config"]["mediaType"] != CONFIG_MEDIA_TYPE {
            return Err(format!("{} is not a saved cache mount manifest", self.tag));
        }
        let ctx = self.work.path().join("restore");
        std::fs::create_dir_all(&ctx).map_err(|e| e.to_string())?;
        let mut steps = Vec::new();
        for layer in doc["layers"].as_array().into_iter().flatten() {
            let id = layer["annotations"][ID_ANNOTATION]
                .as_str()
                .unwrap_or_default();
            let Some((i, mount)) = self.mounts.iter().enumerate().find(|(_, m)| m.id == id) else {
                continue;
            };
            let (digest, size) = (
                Digest::parse(layer["digest"].as_str().unwrap_or_default())
                    .map_err(|e| e.to_string())?,
                layer["size"].as_u64().unwrap_or_default(),
            );
            let file = ctx.join(format!("m{i}.tar.gz"));
            download(client, &digest, size, &file).await?;
            tracing::info!(
                "cache_mounts: restoring {id}: {} compressed, {} unpacked, {} files",
                human(size),
                human(
                    layer["annotations"][BYTES_ANNOTATION]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0)
                ),
                layer["annotations"][FILES_ANNOTATION]
                    .as_str()
                    .unwrap_or("?")
            );
            let script = format!("/bin/busybox tar -xzf /in/m{i}.tar.gz -C /c{i}");
            steps.push(run_line(&[bind_mount(), cache_mount(mount, i)], &script));
        }
        if steps.is_empty() {
            return Ok(0);
        }
        let dockerfile = format!("FROM {}\n{}\n", self.helper.reference, steps.join("\n"));
        self.solve(bk, "restore", &dockerfile, &ctx, None).await?;
        Ok(steps.len())
    }

    async fn try_save(
        &self,
        bk: &buildkit::Client,
        client: &registry::Client,
    ) -> Result<usize, String> {
        let ctx = self.work.path().join("save");
        std::fs::create_dir_all(&ctx).map_err(|e| e.to_string())?;
        let mut lines = vec![
            format!("FROM {} AS save", self.helper.reference),
            // A new value each time: the steps run again (`no-cache` would
            // not do: BuildKit gives an uncached step fresh cache mounts).
            "ARG SAVE_RUN".into(),
            run_line(
                &[],
                "/bin/busybox mkdir -p /out && echo $SAVE_RUN > /out/run",
            ),
        ];
        for (i, mount) in self.mounts.iter().enumerate() {
            let script = format!(
                "cd /c{i} && k=$(/bin/busybox du -sk . | /bin/busybox cut -f1) && \
                 n=$(/bin/busybox find . | /bin/busybox wc -l) && echo \"$k $n\" > /out/m{i}.info && \
                 if [ $((k * 1024)) -le {max} ]; then set -o pipefail; \
                 /bin/busybox tar -cf - . | /bin/busybox gzip -1 > /out/m{i}.tar.gz; fi",
                max = self.max_size
            );
            lines.push(run_line(&[cache_mount(mount, i)], &script));
        }
        lines.push("FROM scratch".into());
        lines.push("COPY --from=save /out/ /".into());
        let output = self.work.path().join("save.tar");
        self.solve(bk, "save", &lines.join("\n"), &ctx, Some(&output))
            .await?;
        let files = unpack_outer_tar(&output, &self.work.path().join("saved"))?;
        let layers = self.push_archives(client, &files).await?;
        let config = Bytes::from_static(b"{}");
        let config_digest = sha256_digest(&config);
        upload(client, &config_digest, config.clone()).await?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": crate::oci::media_types::OCI_MANIFEST,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest.as_str(), "size": config.len()},
            "layers": layers,
        });
        let bytes = Bytes::from(manifest.to_string());
        registry::retry_transient(&format!("pushing manifest {}", self.tag), || {
            client.push_manifest(
                &self.tag,
                crate::oci::media_types::OCI_MANIFEST,
                bytes.clone(),
            )
        })
        .await
        .map_err(|e| crate::oci::error_chain(&e))?;
        Ok(layers.len())
    }

    /// Pushes each mount's archive that fits, and answers the manifest's
    /// layer descriptors.
    async fn push_archives(
        &self,
        client: &registry::Client,
        files: &BTreeMap<String, Unpacked>,
    ) -> Result<Vec<Value>, String> {
        let mut layers = Vec::new();
        let mut budget = self.max_size;
        for (i, mount) in self.mounts.iter().enumerate() {
            let info = files
                .get(&format!("m{i}.info"))
                .and_then(|f| std::fs::read_to_string(&f.path).ok());
            let (kib, count) = info
                .as_deref()
                .and_then(|t| t.trim().split_once(' '))
                .map(|(k, n)| (k.parse::<u64>().unwrap_or(0), n.trim().to_string()))
                .unwrap_or((0, "?".into()));
            let Some(archive) = files.get(&format!("m{i}.tar.gz")) else {
                tracing::warn!(
                    "cache_mounts: {} holds {} (over cache_mounts_max_size {}): not saved",
                    mount.id,
                    human(kib * 1024),
                    human(self.max_size)
                );
                continue;
            };
            if archive.size > budget {
                tracing::warn!(
                    "cache_mounts: {} ({} compressed) does not fit in what is left of cache_mounts_max_size: not saved",
                    mount.id,
                    human(archive.size)
                );
                continue;
            }
            budget -= archive.size;
            tracing::info!(
                "cache_mounts: saving {}: {} unpacked, {count} files, {} compressed",
                mount.id,
                human(kib * 1024),
                human(archive.size)
            );
            upload_file(client, archive).await?;
            layers.push(json!({
                "mediaType": LAYER_MEDIA_TYPE,
                "digest": archive.digest.as_str(),
                "size": archive.size,
                "annotations": {
                    ID_ANNOTATION: mount.id,
                    FILES_ANNOTATION: count,
                    BYTES_ANNOTATION: (kib * 1024).to_string(),
                },
            }));
        }
        Ok(layers)
    }

    /// One helper build: `dockerfile` with `ctx` as its context, the tar
    /// exporter's output to `output` when given.
    async fn solve(
        &self,
        bk: &buildkit::Client,
        what: &str,
        dockerfile: &str,
        ctx: &Path,
        output: Option<&Path>,
    ) -> Result<(), String> {
        let dir = self.work.path().join(format!("{what}-dockerfile"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("Dockerfile"), dockerfile).map_err(|e| e.to_string())?;
        let mut attrs = BTreeMap::from([
            ("filename".to_string(), "Dockerfile".to_string()),
            ("force-network-mode".to_string(), "none".to_string()),
        ]);
        if output.is_some() {
            attrs.insert("build-arg:SAVE_RUN".into(), nonce());
        }
        if let Some(ns) = &self.namespace {
            attrs.insert("build-arg:BUILDKIT_CACHE_MOUNT_NS".into(), ns.clone());
        }
        let request = SolveRequest {
            frontend: "dockerfile.v0".into(),
            frontend_attrs: attrs,
            exporters: output
                .map(|o| Exporter {
                    kind: "tar".into(),
                    attrs: BTreeMap::new(),
                    output: Some(o.to_path_buf()),
                })
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let session = SessionOptions {
            local_dirs: BTreeMap::from([
                ("context".to_string(), ctx.to_path_buf()),
                ("dockerfile".to_string(), dir.clone()),
            ]),
            shared_key: format!("cache-mounts-{what}"),
            ..Default::default()
        };
        tracing::info!("cache_mounts: the {what} build");
        bk.solve(request, session)
            .await
            .map(|_| ())
            .map_err(|e| crate::oci::error_chain(&e))
    }
}

/// A value no earlier save build had.
fn nonce() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{now}-{}", std::process::id())
}

fn cache_mount(m: &MountSpec, i: usize) -> String {
    let mut spec = format!("--mount=type=cache,id={},target=/c{i},sharing=locked", m.id);
    for (k, v) in &m.owner {
        spec.push_str(&format!(",{k}={v}"));
    }
    spec
}

fn bind_mount() -> String {
    "--mount=type=bind,target=/in".into()
}

/// `RUN <mounts> ["/bin/busybox", "sh", "-c", script]` (exec form: the
/// helper has no /bin/sh).
fn run_line(mounts: &[String], script: &str) -> String {
    let argv =
        serde_json::to_string(&["/bin/busybox", "sh", "-c", script]).expect("strings serialise");
    format!("RUN {} {argv}", mounts.join(" "))
}

/// A file of the tar exporter's output, written to disk.
struct Unpacked {
    path: PathBuf,
    size: u64,
    digest: Digest,
}

/// Writes the regular files of the tar exporter's output under `dir`,
/// hashing them on the way (the archives may be large: never in memory).
fn unpack_outer_tar(path: &Path, dir: &Path) -> Result<BTreeMap<String, Unpacked>, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let file = std::fs::File::open(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut archive = tar::Archive::new(file);
    let mut out = BTreeMap::new();
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        // Only the names the save build writes (`m<i>.info`, `m<i>.tar.gz`, `run`).
        if name.contains('/') || name.starts_with('.') {
            continue;
        }
        let target = dir.join(&name);
        let mut to = std::fs::File::create(&target).map_err(|e| e.to_string())?;
        let mut hasher = crate::oci::Hasher::default();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = entry.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            std::io::Write::write_all(&mut to, &buf[..n]).map_err(|e| e.to_string())?;
        }
        let size = hasher.len();
        out.insert(
            name,
            Unpacked {
                path: target,
                size,
                digest: hasher.finish(),
            },
        );
    }
    Ok(out)
}

async fn upload_file(client: &registry::Client, file: &Unpacked) -> Result<(), String> {
    registry::retry_transient(&format!("pushing blob {}", file.digest), || async {
        if client.blob_exists(&file.digest).await? {
            return Ok(());
        }
        let reader =
            tokio::fs::File::open(&file.path)
                .await
                .map_err(|source| crate::store::Error::Io {
                    what: format!("reading {}", file.path.display()),
                    source,
                })?;
        client.upload_blob(&file.digest, file.size, reader).await?;
        Ok::<(), crate::store::Error>(())
    })
    .await
    .map_err(|e| crate::oci::error_chain(&e))
}

async fn upload(client: &registry::Client, digest: &Digest, bytes: Bytes) -> Result<(), String> {
    registry::retry_transient(&format!("pushing blob {digest}"), || {
        let bytes = bytes.clone();
        async move {
            if client.blob_exists(digest).await? {
                return Ok(());
            }
            client
                .upload_blob(digest, bytes.len() as u64, std::io::Cursor::new(bytes))
                .await
        }
    })
    .await
    .map_err(|e| crate::oci::error_chain(&e))
}

async fn download(
    client: &registry::Client,
    digest: &Digest,
    size: u64,
    to: &PathBuf,
) -> Result<(), String> {
    let mut reader = client
        .blob_reader(digest, size)
        .await
        .map_err(|e| crate::oci::error_chain(&e))?;
    let mut file = tokio::fs::File::create(to)
        .await
        .map_err(|e| e.to_string())?;
    tokio::io::copy(&mut reader, &mut file)
        .await
        .map_err(|e| format!("downloading {digest}: {e}"))?;
    Ok(())
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
