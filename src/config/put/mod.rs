//! `put` params: decoding the raw JSON into validated [`PutParams`].
//!
//! Three spellings are accepted so that users can copy their YAML over:
//! our typed form (`context`, `build_args`, ...), oci-build-task's upper-case
//! env-style names (`CONTEXT`, `BUILD_ARG_<name>`, ...) and docker-image's
//! `put` params (`build`, `target_name`, ...). Two spellings of one setting
//! are an error naming both; params that have no meaning for a put are
//! rejected with what to do instead; unknown names get a "did you mean".
//! All of that is read from one table, `params.rs`.
//!
//! Paths are relative to the put's source directory and are checked here, and
//! small files (args, labels, target, tags) are read here, so that a typo
//! fails before any daemon starts. The pieces: `params.rs` (the table),
//! `access.rs` (reading one value), `build.rs`, `tags.rs`, `errors.rs`, and
//! `files.rs` (the args/labels file formats and metadata expansion).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::secret::Secret;

mod access;
mod build;
mod errors;
// Public for the fuzz targets (fuzz/targets/kv_files.rs).
pub mod files;
mod layers;
mod mounts;
mod params;
mod tags;
#[cfg(test)]
mod tests;
mod values;

use access::{Decoder, glob_all, glob_one};
pub use build::parse_cache_spec;
pub use errors::ParamsError;
use errors::{Result, json_kind};
pub use layers::{ConfigChanges, LayerSpec, LayersBase, LayersParams};
pub use params::{is_known_name, known_names};
pub use tags::validate_tag;

/// Where a build secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSpec {
    /// A file (absolute path, checked to exist).
    File(PathBuf),
    /// A literal value.
    Text(Secret),
    /// An environment variable of the `out` process (checked to be set).
    Env(String),
}

/// One `--ssh` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSpec {
    /// The id used by `RUN --mount=type=ssh,id=...` (`default` when omitted).
    pub id: String,
    /// An agent socket or a private key file; `None` = `$SSH_AUTH_SOCK`.
    pub path: Option<PathBuf>,
}

/// A cache import or export (`type=registry,ref=...,mode=max`): BuildKit
/// request's own `{kind, attrs}` type, so a parsed spec goes into the solve
/// unchanged.
pub use crate::buildkit::CacheEntry as CacheSpec;

/// `no_cache`: off, every stage, or the named stages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NoCache {
    /// Use the cache.
    #[default]
    Off,
    /// Rebuild every stage.
    All,
    /// Rebuild these stages.
    Stages(Vec<String>),
}

/// The build's network mode for `RUN` steps (`force-network-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The daemon's default (a sandbox network).
    #[default]
    Default,
    /// No network at all.
    None,
    /// The host's network (needs the `network.host` entitlement).
    Host,
}

/// `provenance`: the SLSA provenance attestation BuildKit attaches
/// (`attest:provenance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provenance {
    /// Not set: `min` where the daemon can attach it, as buildx does, and
    /// none on a daemon that cannot.
    #[default]
    Default,
    /// `false`: none.
    Off,
    /// `min` (or `true`): what was built, from what, by which frontend.
    Min,
    /// `max`: also the build's steps, args and sources.
    Max,
}

impl Provenance {
    /// BuildKit's `mode=` value, `None` for no attestation.
    pub fn mode(self) -> Option<&'static str> {
        match self {
            Provenance::Default | Provenance::Min => Some("min"),
            Provenance::Off => None,
            Provenance::Max => Some("max"),
        }
    }
}

/// BuildKit's own SBOM generator, which `attest:sbom` runs when it names
/// none (buildx's default too).
pub const DEFAULT_SBOM_GENERATOR: &str = "docker.io/docker/buildkit-syft-scanner:stable-1";

/// `sbom`: an SPDX SBOM attestation, made by running a scanner image
/// (BuildKit's SBOM generator protocol) on the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbom {
    /// The scanner's repository (`host/path`, Docker Hub's spelt out).
    pub repository: String,
    /// Its tag or digest.
    pub reference: String,
}

impl Sbom {
    /// The reference BuildKit pulls: `repository:tag` or `repository@digest`.
    pub fn generator(&self) -> String {
        let sep = if self.reference.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        format!("{}{sep}{}", self.repository, self.reference)
    }
}

/// An image preloaded for `FROM`: docker-image's `load_base(s)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBase {
    /// The `FROM` name it stands for (`<repository>:<tag>`).
    pub name: String,
    /// The image: a docker-save tarball (a file) or an OCI layout (a
    /// directory); an OCI layout packed in a tarball is refused by
    /// `image::load`, as registry-image refuses it.
    pub image: PathBuf,
}

/// `cache_mounts`: which `RUN --mount=type=cache` mounts are saved to the
/// registry after the build and restored before the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMounts {
    /// Mount ids or targets; empty = every cache mount of the Dockerfile.
    pub only: Vec<String>,
    /// `cache_mounts_max_size`: the most this put saves, in bytes.
    pub max_size: u64,
}

/// `cache_mounts_max_size`'s default: 2 GiB per put.
pub const DEFAULT_CACHE_MOUNTS_MAX_SIZE: u64 = 2 << 30;

/// Everything a build needs, resolved against the source dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildParams {
    /// Build context directory.
    pub context: PathBuf,
    /// The Dockerfile (its directory becomes the `dockerfile` local).
    pub dockerfile: PathBuf,
    /// Final stage, if not the last.
    pub target: Option<String>,
    /// Build args after file merging and metadata expansion.
    pub build_args: BTreeMap<String, String>,
    /// Image labels after file merging and metadata expansion.
    pub labels: BTreeMap<String, String>,
    /// OCI manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// Build secrets by id.
    pub secrets: BTreeMap<String, SecretSpec>,
    /// SSH forwarding.
    pub ssh: Vec<SshSpec>,
    /// Target platforms (`os/arch[/variant]`); empty = the daemon's.
    pub platforms: Vec<String>,
    /// Extra `/etc/hosts` entries, `host=ip`.
    pub add_hosts: Vec<(String, String)>,
    /// Images for `ARG`-based `FROM`, by build-arg name.
    pub image_args: BTreeMap<String, PathBuf>,
    /// Images standing in for `FROM <name>`.
    pub load_bases: Vec<LoadBase>,
    /// Cache bypass.
    pub no_cache: NoCache,
    /// Extra cache imports.
    pub cache_from: Vec<CacheSpec>,
    /// Extra cache exports.
    pub cache_to: Vec<CacheSpec>,
    /// `cache: true`: import and export `<repository>:<cache_tag>`.
    pub cache_tag: Option<String>,
    /// Persistent cache mounts, when asked for.
    pub cache_mounts: Option<CacheMounts>,
    /// Reproducible timestamps.
    pub source_date_epoch: Option<u64>,
    /// Network for `RUN`.
    pub network: Network,
    /// The provenance attestation.
    pub provenance: Provenance,
    /// The SBOM attestation, if asked for.
    pub sbom: Option<Sbom>,
}

/// What a put does besides tagging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Build with BuildKit and push the result.
    Build(Box<BuildParams>),
    /// Push a prebuilt image: a docker-save tarball (a file) or an OCI
    /// layout (a directory); not an OCI layout packed in a tarball.
    Push {
        /// The one path the glob matched.
        image: PathBuf,
    },
    /// Merge images of one platform each into one index and push it
    /// (`params.images`).
    Merge {
        /// Every path the globs matched, in glob order, each a docker-save
        /// tarball or an OCI layout.
        images: Vec<PathBuf>,
    },
    /// Append layers built from the put's inputs to a base image, without
    /// a daemon (`params.layers`).
    Layers(Box<LayersParams>),
}

/// Tag inputs taken from params (the source's `tag`/`variant` join them in
/// `put::tags`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagParams {
    /// The tag read from `tag_file`, trimmed, with `tag_prefix`.
    pub tag_file: Option<String>,
    /// `additional_tags` file contents split on whitespace, with `tag_prefix`.
    pub additional_tags: Vec<String>,
    /// Also push `latest`.
    pub tag_as_latest: bool,
    /// A semver version to push (normalised later).
    pub version: Option<String>,
    /// Also move `latest`/major/minor aliases when this is the newest.
    pub bump_aliases: bool,
}

/// Settings for the embedded buildkitd.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaemonParams {
    /// Docker Hub mirrors (`host[:port]`).
    pub registry_mirrors: Vec<String>,
    /// Raw buildkitd.toml text merged into the generated one.
    pub extra_config: Option<String>,
}

/// Validated `put` params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutParams {
    /// Build or push.
    pub action: Action,
    /// Tag inputs.
    pub tags: TagParams,
    /// Embedded daemon settings.
    pub daemon: DaemonParams,
    /// `skip_existing`: when every tag already names one digest, push
    /// nothing and report that digest.
    pub skip_existing: bool,
    /// Things the user should know (ignored legacy params), for the log.
    pub notes: Vec<String>,
}

/// How the decoder sees the outside world.
pub struct Env<'a> {
    /// The put's source directory (argv[1]); relative paths start here.
    pub src_dir: &'a Path,
    /// Environment lookup (metadata expansion, `env` secrets).
    pub var: &'a dyn Fn(&str) -> Option<String>,
}

impl PutParams {
    /// Decodes and validates `params` (explicit `null`, and `""` for
    /// settings that are not values, mean "unset").
    pub fn from_value(params: &Value, env: &Env<'_>) -> Result<PutParams> {
        let map = match params {
            Value::Object(map) => map.clone(),
            Value::Null => Map::new(),
            other => return Err(ParamsError::NotAnObject(json_kind(other))),
        };
        let mut d = Decoder {
            map,
            env,
            notes: Vec::new(),
        };
        d.check_names()?;
        d.decode()
    }
}

impl Decoder<'_> {
    fn decode(&mut self) -> Result<PutParams> {
        let image = self.image()?;
        let tags = self.tags()?;
        let skip_existing = self.flag("skip_existing")?;
        let daemon = DaemonParams {
            registry_mirrors: match self.one_of(&params::REGISTRY_MIRRORS)? {
                Some(name) => self.list(name)?,
                None => Vec::new(),
            },
            extra_config: self.first_text(&params::EXTRA_CONFIG)?.map(|(_, t)| t),
        };
        if let Some(name) = params::ignored_names().find(|n| self.is_set(n)) {
            self.notes.push(format!(
                "param {name:?} is ignored: builds always use BuildKit and pushes always go to the source repository"
            ));
        }
        let layers = self.one_of(&params::LAYERS)?;
        let images = self.images()?;
        let pushed: Vec<String> = [
            image.as_ref().map(|(name, _)| name.clone()),
            images.as_ref().map(|_| "images".to_string()),
            layers.map(String::from),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let [first, second, ..] = pushed.as_slice() {
            return Err(ParamsError::Conflict {
                first: first.clone(),
                second: second.clone(),
                what: "what to push (a prebuilt image, images to merge, or layers on a base image)"
                    .into(),
            });
        }
        let not_built = pushed.first().cloned();
        if let Some(first) = not_built {
            let obt_build = self.map.keys().find(|k| params::is_obt_build_key(k));
            if let Some(name) = params::build_only_names()
                .find(|n| self.is_set(n))
                .map(str::to_string)
                .or(obt_build.cloned())
            {
                let what = if layers.is_some() {
                    "what to push (layers on a base image, or a build)"
                } else {
                    "what to push (a prebuilt image, or a build)"
                };
                return Err(ParamsError::Conflict {
                    first,
                    second: name,
                    what: what.into(),
                });
            }
        }
        let action = match (image, images, layers) {
            (Some(image), _, _) => Action::Push { image: image.1 },
            (None, Some(images), _) => Action::Merge { images },
            (None, None, Some(name)) => Action::Layers(Box::new(self.layers(name)?)),
            (None, None, None) => Action::Build(Box::new(self.build()?)),
        };
        Ok(PutParams {
            action,
            tags,
            daemon,
            skip_existing,
            notes: std::mem::take(&mut self.notes),
        })
    }

    /// `images`: a list of globs, each matching one or more images (a
    /// docker-save tarball or an OCI layout directory, one platform each).
    /// A path matched twice counts once.
    fn images(&self) -> Result<Option<Vec<PathBuf>>> {
        if !self.is_set("images") {
            return Ok(None);
        }
        let mut paths: Vec<PathBuf> = Vec::new();
        for pattern in self.list("images")? {
            for path in glob_all(self.env.src_dir, "images", &pattern)? {
                self.image_kind("images", &path)?;
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
        Ok(Some(paths))
    }

    /// Refuses a FIFO, device or socket where an image is expected.
    fn image_kind(&self, name: &str, path: &Path) -> Result<()> {
        let kind = std::fs::metadata(path)
            .ok()
            .and_then(|m| crate::small_file::kind(m.file_type()))
            .filter(|kind| *kind != "a directory");
        match kind {
            Some(kind) => Err(ParamsError::NotAnImage {
                param: name.into(),
                path: path.to_path_buf(),
                kind,
            }),
            None => Ok(()),
        }
    }

    /// `image` (registry-image), `load` / `load_file` (docker-image).
    fn image(&self) -> Result<Option<(String, PathBuf)>> {
        let Some(name) = self.one_of(&params::IMAGE)? else {
            return Ok(None);
        };
        let value = self.text(name)?.unwrap_or_default();
        let path = if name == "load" {
            // docker-image's `load`: a get dir holding `image` (docker save);
            // ours writes `image.tar` or an `oci` layout.
            let dir = self.path(name, &value)?;
            ["image", "image.tar", "oci"]
                .iter()
                .map(|f| dir.join(f))
                .find(|p| p.exists())
                .ok_or_else(|| ParamsError::MissingPath {
                    param: name.into(),
                    path: dir.join("image"),
                })?
        } else {
            glob_one(self.env.src_dir, name, &value)?
        };
        self.image_kind(name, &path)?;
        Ok(Some((name.to_string(), path)))
    }
}
