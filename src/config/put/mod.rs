//! `put` params: decoding the raw JSON into validated [`PutParams`].
//!
//! Three spellings are accepted so that users can copy their YAML over:
//! our typed form (`context`, `build_args`, ...), oci-build-task's upper-case
//! env-style names (`CONTEXT`, `BUILD_ARG_<name>`, ...) and docker-image's
//! `put` params (`build`, `target_name`, ...). Two spellings of one setting
//! are an error naming both; params that have no meaning for a put are
//! rejected with what to do instead; unknown names get a "did you mean".
//!
//! Paths are relative to the put's source directory and are checked here, and
//! small files (args, labels, target, tags) are read here, so that a typo
//! fails before any daemon starts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

#[path = "put_files.rs"]
mod put_files;
use put_files::FileProblem;

/// A failure to turn `params` into [`PutParams`].
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// `params` is not an object.
    #[error("params must be an object, not {0}")]
    NotAnObject(&'static str),
    /// A param name we do not know.
    #[error("unknown param {name:?}{}", hint.as_ref().map(|h| format!(" (did you mean {h:?}?)")).unwrap_or_default())]
    Unknown {
        /// The name as given.
        name: String,
        /// The closest known name, if any is close.
        hint: Option<String>,
    },
    /// Two spellings of the same setting.
    #[error("params {first:?} and {second:?} both set {what}: keep only one")]
    Conflict {
        /// The first spelling found.
        first: String,
        /// The second spelling found.
        second: String,
        /// What they both set.
        what: String,
    },
    /// A param of another tool that has no meaning for a put.
    #[error("param {param:?} has no meaning for a put: {advice}")]
    Rejected {
        /// The param.
        param: String,
        /// What to do instead.
        advice: &'static str,
    },
    /// A value of the wrong JSON type.
    #[error("param {param:?} must be {expected}, not {got}")]
    Type {
        /// The param (with a `.key` suffix inside maps).
        param: String,
        /// What was expected.
        expected: &'static str,
        /// The JSON type found.
        got: &'static str,
    },
    /// A path that does not exist.
    #[error("param {param:?}: {} does not exist", path.display())]
    MissingPath {
        /// The param.
        param: String,
        /// The path tried (source dir joined with the value).
        path: PathBuf,
    },
    /// A file that could not be read.
    #[error("param {param:?}: reading {}", path.display())]
    Read {
        /// The param.
        param: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file whose content is not in the expected format.
    #[error("param {param:?}: {}{}: {problem}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    FileSyntax {
        /// The param.
        param: String,
        /// The file.
        path: PathBuf,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        problem: String,
    },
    /// A value that is well-typed but not acceptable.
    #[error("param {param:?}: {problem}")]
    Invalid {
        /// The param.
        param: String,
        /// What is wrong.
        problem: String,
    },
}

type Result<T, E = ParamsError> = std::result::Result<T, E>;

/// A literal secret value (BuildKit `--secret` text), redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    /// The secret itself; only the BuildKit session should call this.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a build secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSpec {
    /// A file (absolute path, checked to exist).
    File(PathBuf),
    /// A literal value.
    Text(SecretText),
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

/// A cache import or export (`type=registry,ref=...,mode=max`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    /// `registry`, `inline`, `gha`, `s3`, ...
    pub kind: String,
    /// Everything but `type`.
    pub attrs: BTreeMap<String, String>,
}

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
    /// Reproducible timestamps.
    pub source_date_epoch: Option<u64>,
    /// Network for `RUN`.
    pub network: Network,
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
}

/// Tag inputs taken from params (the source's `tag`/`variant` join them in
/// `build::tags`).
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

/// Our typed names.
const TYPED: &[&str] = &[
    "context",
    "dockerfile",
    "target",
    "target_file",
    "build_args",
    "build_args_file",
    "labels",
    "labels_file",
    "annotations",
    "secrets",
    "ssh",
    "platforms",
    "add_hosts",
    "image_args",
    "registry_mirrors",
    "buildkit_extra_config",
    "no_cache",
    "cache_from",
    "cache_to",
    "cache",
    "source_date_epoch",
    "network",
    "tag_file",
    "tag_prefix",
    "tag_as_latest",
    "additional_tags",
    "version",
    "bump_aliases",
    "image",
];

/// docker-image's names that are not also typed names.
const DOCKER_IMAGE: &[&str] = &[
    "build",
    "target_name",
    "tag",
    "cache_tag",
    "load_base",
    "load_bases",
    "docker_buildkit",
    "load",
    "load_file",
    "load_repository",
    "load_tag",
];

/// oci-build-task's fixed names.
const OBT: &[&str] = &[
    "CONTEXT",
    "DOCKERFILE",
    "BUILD_ARGS_FILE",
    "BUILDKIT_SSH",
    "IMAGE_PLATFORM",
    "LABELS_FILE",
    "TARGET",
    "TARGET_FILE",
    "REGISTRY_MIRRORS",
    "BUILDKIT_ADD_HOSTS",
    "BUILDKIT_EXTRA_CONFIG",
];

/// oci-build-task's prefixed families.
const OBT_PREFIXES: &[&str] = &[
    "BUILD_ARG_",
    "BUILDKIT_SECRET_",
    "BUILDKIT_SECRETTEXT_",
    "IMAGE_ARG_",
    "LABEL_",
];

/// Params of other tools that mean nothing for a put, with what to do.
const REJECTED: &[(&str, &str)] = &[
    (
        "ADDITIONAL_TARGETS",
        "a put pushes one image; use one put per stage, each with its own `target` and repository",
    ),
    (
        "OUTPUT_OCI",
        "a put pushes to the registry; fetch an OCI layout afterwards with a get of this resource and `format: oci-layout`",
    ),
    (
        "UNPACK_ROOTFS",
        "a put pushes to the registry; fetch the rootfs afterwards with a get of this resource (the default `format: rootfs`)",
    ),
    (
        "DEBUG",
        "set `debug: true` in the resource's source for verbose logs",
    ),
    (
        "import_file",
        "importing a rootfs tarball is not supported; build it with a Dockerfile `FROM scratch` + `ADD rootfs.tar /`",
    ),
    (
        "pull_repository",
        "re-pushing another repository is not a build; use a get of that image and `params.image` here",
    ),
    (
        "pull_tag",
        "re-pushing another repository is not a build; use a get of that image and `params.image` here",
    ),
];

/// Params that only make sense for a build (an error with `image`).
const BUILD_ONLY_TYPED: &[&str] = &[
    "context",
    "dockerfile",
    "target",
    "target_file",
    "build_args",
    "build_args_file",
    "labels",
    "labels_file",
    "annotations",
    "secrets",
    "ssh",
    "platforms",
    "add_hosts",
    "image_args",
    "no_cache",
    "cache_from",
    "cache_to",
    "cache",
    "source_date_epoch",
    "network",
    "build",
    "target_name",
    "cache_tag",
    "load_base",
    "load_bases",
];

impl PutParams {
    /// Decodes and validates `params` (explicit `null`, and `""` for
    /// settings that are not values, mean "unset").
    pub fn from_value(params: &Value, env: &Env<'_>) -> Result<PutParams> {
        let map = match params {
            Value::Object(map) => map.clone(),
            Value::Null => Map::new(),
            other => return Err(ParamsError::NotAnObject(json_type(other))),
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

struct Decoder<'a> {
    map: Map<String, Value>,
    env: &'a Env<'a>,
    notes: Vec<String>,
}

impl Decoder<'_> {
    fn check_names(&self) -> Result<()> {
        for name in self.map.keys() {
            if let Some((_, advice)) = REJECTED.iter().find(|(n, _)| n == name) {
                if self.is_set(name) {
                    return Err(ParamsError::Rejected {
                        param: name.clone(),
                        advice,
                    });
                }
                continue;
            }
            let known = TYPED.contains(&name.as_str())
                || DOCKER_IMAGE.contains(&name.as_str())
                || OBT.contains(&name.as_str())
                || OBT_PREFIXES
                    .iter()
                    .any(|p| name.len() > p.len() && name.starts_with(p));
            if !known {
                return Err(ParamsError::Unknown {
                    name: name.clone(),
                    hint: suggest(name),
                });
            }
        }
        Ok(())
    }

    /// Present and not null/empty-string.
    fn is_set(&self, name: &str) -> bool {
        match self.map.get(name) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        }
    }

    /// The one set spelling among `names`, or a conflict naming two.
    fn one_of<'n>(&self, names: &[&'n str], what: &str) -> Result<Option<&'n str>> {
        let mut found: Option<&'n str> = None;
        for name in names {
            if self.is_set(name) {
                if let Some(first) = found {
                    return Err(ParamsError::Conflict {
                        first: first.to_string(),
                        second: name.to_string(),
                        what: what.to_string(),
                    });
                }
                found = Some(name);
            }
        }
        Ok(found)
    }

    /// A scalar as text; `""` and null are unset.
    fn text(&self, name: &str) -> Result<Option<String>> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match scalar_text(v) {
                Some(s) if s.is_empty() => Ok(None),
                Some(s) => Ok(Some(s)),
                None => Err(type_error(name, "a string", v)),
            },
        }
    }

    fn first_text(&self, names: &[&str], what: &str) -> Result<Option<(String, String)>> {
        match self.one_of(names, what)? {
            Some(name) => Ok(self.text(name)?.map(|t| (name.to_string(), t))),
            None => Ok(None),
        }
    }

    fn flag(&self, name: &str) -> Result<bool> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "" | "false" | "0" | "no" => Ok(false),
                "true" | "1" | "yes" => Ok(true),
                _ => Err(ParamsError::Invalid {
                    param: name.into(),
                    problem: format!("{s:?} is not a boolean"),
                }),
            },
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(false),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(true),
            Some(v) => Err(type_error(name, "a boolean", v)),
        }
    }

    /// A string→scalar map param, as ordered pairs.
    fn string_map(&self, name: &str) -> Result<Vec<(String, String)>> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match scalar_text(v) {
                    Some(s) => Ok((k.clone(), s)),
                    None if v.is_null() => Ok((k.clone(), String::new())),
                    None => Err(type_error(&format!("{name}.{k}"), "a string", v)),
                })
                .collect(),
            Some(v) => Err(type_error(name, "an object", v)),
        }
    }

    /// A list param; a string is split on commas (oci-build-task's form).
    fn list(&self, name: &str) -> Result<Vec<String>> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(split_list(s)),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| scalar_text(v).ok_or_else(|| type_error(name, "a list of strings", v)))
                .filter(|r| !matches!(r, Ok(s) if s.is_empty()))
                .collect(),
            Some(v) => Err(type_error(name, "a list of strings", v)),
        }
    }

    /// Joins a relative path onto the source dir and checks it exists.
    fn path(&self, param: &str, value: &str) -> Result<PathBuf> {
        let path = self.env.src_dir.join(value);
        if path.exists() {
            Ok(path)
        } else {
            Err(ParamsError::MissingPath {
                param: param.into(),
                path,
            })
        }
    }

    fn read(&self, param: &str, value: &str) -> Result<(PathBuf, String)> {
        let path = self.path(param, value)?;
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((path, text)),
            Err(source) => Err(ParamsError::Read {
                param: param.into(),
                path,
                source,
            }),
        }
    }

    fn key_value_file(&self, param: &str, value: &str) -> Result<Vec<(String, String)>> {
        let (path, text) = self.read(param, value)?;
        put_files::parse_key_values(&path, &text).map_err(|FileProblem { line, problem }| {
            ParamsError::FileSyntax {
                param: param.into(),
                path,
                line,
                problem,
            }
        })
    }

    fn expand(&self, value: &str) -> String {
        put_files::expand_metadata(value, self.env.var)
    }

    /// All keys with `prefix`, as `(name-after-prefix, param, value)`.
    fn prefixed(&self, prefix: &str) -> Result<Vec<(String, String, String)>> {
        let mut out = Vec::new();
        for (key, v) in &self.map {
            if let Some(rest) = key.strip_prefix(prefix) {
                if rest.is_empty() || v.is_null() {
                    continue;
                }
                let text = scalar_text(v).ok_or_else(|| type_error(key, "a string", v))?;
                out.push((rest.to_string(), key.clone(), text));
            }
        }
        Ok(out)
    }

    /// Inline map + prefixed params (conflict on the same key) + a file
    /// (inline wins over the file, as an explicit pipeline value should).
    fn merged_map(
        &mut self,
        inline: &str,
        prefix: &str,
        files: &[&str],
        what: &str,
    ) -> Result<BTreeMap<String, String>> {
        let mut from: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (k, v) in self.string_map(inline)? {
            from.insert(k.clone(), (format!("{inline}.{k}"), v));
        }
        for (k, param, v) in self.prefixed(prefix)? {
            if let Some((first, _)) = from.get(&k) {
                return Err(ParamsError::Conflict {
                    first: first.clone(),
                    second: param,
                    what: format!("{what} {k:?}"),
                });
            }
            from.insert(k, (param, v));
        }
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        if let Some((param, file)) = self.first_text(files, &format!("the {what}s file"))? {
            for (k, v) in self.key_value_file(&param, &file)? {
                if from.contains_key(&k) {
                    self.notes.push(format!(
                        "{what} {k:?} is set both inline and in {param}; the inline value wins"
                    ));
                }
                out.insert(k, v);
            }
        }
        for (k, (_, v)) in from {
            out.insert(k, v);
        }
        Ok(out
            .into_iter()
            .map(|(k, v)| {
                let v = self.expand(&v);
                (k, v)
            })
            .collect())
    }

    fn decode(&mut self) -> Result<PutParams> {
        let image = self.image()?;
        let tags = self.tags()?;
        let daemon = DaemonParams {
            registry_mirrors: match self.one_of(
                &["registry_mirrors", "REGISTRY_MIRRORS"],
                "registry mirrors",
            )? {
                Some(name) => self.list(name)?,
                None => Vec::new(),
            },
            extra_config: self
                .first_text(
                    &["buildkit_extra_config", "BUILDKIT_EXTRA_CONFIG"],
                    "extra buildkitd config",
                )?
                .map(|(_, t)| t),
        };
        if let Some(name) = ["docker_buildkit", "load_repository", "load_tag"]
            .into_iter()
            .find(|n| self.is_set(n))
        {
            self.notes.push(format!(
                "param {name:?} is ignored: builds always use BuildKit and pushes always go to the source repository"
            ));
        }
        let action = match image {
            Some(image) => {
                let obt_build = self.map.keys().find(|k| {
                    OBT.contains(&k.as_str())
                        && !matches!(k.as_str(), "REGISTRY_MIRRORS" | "BUILDKIT_EXTRA_CONFIG")
                        || OBT_PREFIXES.iter().any(|p| k.starts_with(p))
                });
                if let Some(name) = BUILD_ONLY_TYPED
                    .iter()
                    .find(|n| self.is_set(n))
                    .map(|n| n.to_string())
                    .or(obt_build.cloned())
                {
                    return Err(ParamsError::Conflict {
                        first: image.0,
                        second: name,
                        what: "what to push (a prebuilt image, or a build)".into(),
                    });
                }
                Action::Push { image: image.1 }
            }
            None => Action::Build(Box::new(self.build()?)),
        };
        Ok(PutParams {
            action,
            tags,
            daemon,
            notes: std::mem::take(&mut self.notes),
        })
    }

    /// `image` (registry-image), `load` / `load_file` (docker-image).
    fn image(&self) -> Result<Option<(String, PathBuf)>> {
        let Some(name) = self.one_of(&["image", "load", "load_file"], "the image to push")? else {
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
        Ok(Some((name.to_string(), path)))
    }

    fn tags(&mut self) -> Result<TagParams> {
        let prefix = self.text("tag_prefix")?.unwrap_or_default();
        let tag_file = match self.first_text(&["tag_file", "tag"], "the tag file")? {
            Some((param, file)) => {
                let (path, text) = self.read(&param, &file)?;
                let tag = text.trim();
                if tag.is_empty() {
                    return Err(ParamsError::Invalid {
                        param,
                        problem: format!("{} is empty", path.display()),
                    });
                }
                Some(format!("{prefix}{tag}"))
            }
            None => None,
        };
        let additional_tags = match self.text("additional_tags")? {
            Some(file) => {
                let (_, text) = self.read("additional_tags", &file)?;
                text.split_whitespace()
                    .map(|t| format!("{prefix}{t}"))
                    .collect()
            }
            None => Vec::new(),
        };
        if !prefix.is_empty() && tag_file.is_none() && !self.is_set("additional_tags") {
            return Err(ParamsError::Invalid {
                param: "tag_prefix".into(),
                problem: "it only applies to tags from `tag_file` or `additional_tags`, and neither is set"
                    .into(),
            });
        }
        let version = self.text("version")?;
        let bump_aliases = self.flag("bump_aliases")?;
        if bump_aliases && version.is_none() {
            return Err(ParamsError::Invalid {
                param: "bump_aliases".into(),
                problem: "it needs `version`".into(),
            });
        }
        Ok(TagParams {
            tag_file,
            additional_tags,
            tag_as_latest: self.flag("tag_as_latest")?,
            version,
            bump_aliases,
        })
    }

    fn build(&mut self) -> Result<BuildParams> {
        let context =
            match self.first_text(&["context", "build", "CONTEXT"], "the build context")? {
                Some((param, value)) => {
                    let path = self.path(&param, &value)?;
                    if !path.is_dir() {
                        return Err(ParamsError::Invalid {
                            param,
                            problem: format!("{} is not a directory", path.display()),
                        });
                    }
                    path
                }
                None => self.env.src_dir.to_path_buf(),
            };
        let dockerfile = match self.first_text(&["dockerfile", "DOCKERFILE"], "the Dockerfile")? {
            Some((param, value)) => self.path(&param, &value)?,
            None => {
                let path = context.join("Dockerfile");
                if !path.exists() {
                    return Err(ParamsError::MissingPath {
                        param: "dockerfile (default: <context>/Dockerfile)".into(),
                        path,
                    });
                }
                path
            }
        };
        if !dockerfile.is_file() {
            return Err(ParamsError::Invalid {
                param: "dockerfile".into(),
                problem: format!("{} is not a file", dockerfile.display()),
            });
        }

        let mut target = self
            .first_text(&["target", "target_name", "TARGET"], "the target stage")?
            .map(|(_, t)| t);
        if let Some((param, file)) =
            self.first_text(&["target_file", "TARGET_FILE"], "the target file")?
        {
            let (path, text) = self.read(&param, &file)?;
            let t = text.trim();
            if t.is_empty() {
                return Err(ParamsError::Invalid {
                    param,
                    problem: format!("{} is empty", path.display()),
                });
            }
            if target.is_some() {
                self.notes
                    .push(format!("{param} overrides the target stage set inline"));
            }
            target = Some(t.to_string());
        }

        let build_args = self.merged_map(
            "build_args",
            "BUILD_ARG_",
            &["build_args_file", "BUILD_ARGS_FILE"],
            "build arg",
        )?;
        let labels =
            self.merged_map("labels", "LABEL_", &["labels_file", "LABELS_FILE"], "label")?;
        let annotations = self.string_map("annotations")?.into_iter().collect();
        let secrets = self.secrets()?;
        let ssh = match self.one_of(&["ssh", "BUILDKIT_SSH"], "ssh forwarding")? {
            Some(name) => self
                .list_or_text(name)?
                .iter()
                .map(|s| self.ssh(name, s))
                .collect::<Result<_>>()?,
            None => Vec::new(),
        };
        let platforms =
            match self.one_of(&["platforms", "IMAGE_PLATFORM"], "the target platforms")? {
                Some(name) => {
                    let list = self.list(name)?;
                    for p in &list {
                        validate_platform(name, p)?;
                    }
                    list
                }
                None => Vec::new(),
            };
        let add_hosts = self.add_hosts()?;
        let image_args = self.image_args()?;
        let load_bases = self.load_bases()?;
        let no_cache = self.no_cache()?;
        let cache_from = self.cache_from()?;
        let cache_to = self
            .list("cache_to")?
            .iter()
            .map(|s| parse_cache_spec("cache_to", s))
            .collect::<Result<Vec<_>>>()?;
        let cache_tag = if self.flag("cache")? {
            let tag = self
                .text("cache_tag")?
                .unwrap_or_else(|| "buildcache".into());
            validate_tag("cache_tag", &tag)?;
            Some(tag)
        } else {
            if self.is_set("cache_tag") {
                return Err(ParamsError::Invalid {
                    param: "cache_tag".into(),
                    problem: "it only applies with `cache: true`".into(),
                });
            }
            None
        };
        let source_date_epoch = match self.text("source_date_epoch")? {
            Some(s) => Some(s.parse::<u64>().map_err(|_| ParamsError::Invalid {
                param: "source_date_epoch".into(),
                problem: format!("{s:?} is not a number of seconds since 1970"),
            })?),
            None => None,
        };
        let network = match self.text("network")?.as_deref() {
            None | Some("default" | "sandbox") => Network::Default,
            Some("none") => Network::None,
            Some("host") => Network::Host,
            Some(other) => {
                return Err(ParamsError::Invalid {
                    param: "network".into(),
                    problem: format!("{other:?} is not one of default, none, host"),
                });
            }
        };
        Ok(BuildParams {
            context,
            dockerfile,
            target,
            build_args,
            labels,
            annotations,
            secrets,
            ssh,
            platforms,
            add_hosts,
            image_args,
            load_bases,
            no_cache,
            cache_from,
            cache_to,
            cache_tag,
            source_date_epoch,
            network,
        })
    }

    /// A list, or one string taken whole (ssh specs contain commas).
    fn list_or_text(&self, name: &str) -> Result<Vec<String>> {
        match self.map.get(name) {
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            _ => self.list(name),
        }
    }

    fn ssh(&self, param: &str, spec: &str) -> Result<SshSpec> {
        let (id, path) = match spec.split_once('=') {
            Some((id, path)) => (id.trim(), Some(path.trim())),
            None => (spec.trim(), None),
        };
        if id.is_empty() {
            return Err(ParamsError::Invalid {
                param: param.into(),
                problem: format!("{spec:?} has no id (use `default` or `<id>=<key or socket>`)"),
            });
        }
        let path = match path {
            Some(p) if p.contains(',') => {
                return Err(ParamsError::Invalid {
                    param: param.into(),
                    problem: format!(
                        "id {id:?} lists several paths; give one key or socket per id"
                    ),
                });
            }
            Some(p) => Some(self.path(param, p)?),
            None => None,
        };
        Ok(SshSpec {
            id: id.to_string(),
            path,
        })
    }

    fn secrets(&self) -> Result<BTreeMap<String, SecretSpec>> {
        let mut out: BTreeMap<String, (String, SecretSpec)> = BTreeMap::new();
        let mut add = |id: String, param: String, spec: SecretSpec| -> Result<()> {
            if let Some((first, _)) = out.get(&id) {
                return Err(ParamsError::Conflict {
                    first: first.clone(),
                    second: param,
                    what: format!("secret {id:?}"),
                });
            }
            out.insert(id, (param, spec));
            Ok(())
        };
        match self.map.get("secrets") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (id, entry) in m {
                    let param = format!("secrets.{id}");
                    let Value::Object(entry) = entry else {
                        return Err(type_error(
                            &param,
                            "an object with `file`, `text` or `env`",
                            entry,
                        ));
                    };
                    let set: Vec<(&String, &Value)> =
                        entry.iter().filter(|(_, v)| !v.is_null()).collect();
                    let [(kind, value)] = set.as_slice() else {
                        return Err(ParamsError::Invalid {
                            param,
                            problem: "give exactly one of `file`, `text`, `env` (docker-image's `source` = `file`)"
                                .into(),
                        });
                    };
                    let text =
                        scalar_text(value).ok_or_else(|| type_error(&param, "a string", value))?;
                    let spec = match kind.as_str() {
                        "file" | "source" => {
                            SecretSpec::File(self.path(&format!("{param}.{kind}"), &text)?)
                        }
                        "text" => SecretSpec::Text(SecretText(text)),
                        "env" => self.env_secret(&param, &text)?,
                        other => {
                            return Err(ParamsError::Unknown {
                                name: format!("{param}.{other}"),
                                hint: closest(other, &["file", "text", "env", "source"]),
                            });
                        }
                    };
                    add(id.clone(), param, spec)?;
                }
            }
            Some(v) => return Err(type_error("secrets", "an object", v)),
        }
        for (id, param, path) in self.prefixed("BUILDKIT_SECRET_")? {
            let spec = SecretSpec::File(self.path(&param, &path)?);
            add(id, param, spec)?;
        }
        for (id, param, text) in self.prefixed("BUILDKIT_SECRETTEXT_")? {
            add(id, param, SecretSpec::Text(SecretText(text)))?;
        }
        Ok(out.into_iter().map(|(id, (_, spec))| (id, spec)).collect())
    }

    fn env_secret(&self, param: &str, var: &str) -> Result<SecretSpec> {
        if (self.env.var)(var).is_none() {
            return Err(ParamsError::Invalid {
                param: param.into(),
                problem: format!("environment variable {var:?} is not set"),
            });
        }
        Ok(SecretSpec::Env(var.to_string()))
    }

    fn add_hosts(&self) -> Result<Vec<(String, String)>> {
        let Some(name) = self.one_of(&["add_hosts", "BUILDKIT_ADD_HOSTS"], "extra hosts")? else {
            return Ok(Vec::new());
        };
        let entries: Vec<String> = match self.map.get(name) {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(h, ip)| {
                    scalar_text(ip)
                        .map(|ip| format!("{h}={ip}"))
                        .ok_or_else(|| type_error(&format!("{name}.{h}"), "an IP address", ip))
                })
                .collect::<Result<_>>()?,
            _ => self.list(name)?,
        };
        entries
            .iter()
            .map(|e| {
                // buildctl uses `host=ip`; docker's `--add-host` uses `host:ip`.
                let (host, ip) = e
                    .split_once('=')
                    .or_else(|| {
                        e.split_once(':')
                            .filter(|(_, ip)| ip.parse::<std::net::IpAddr>().is_ok())
                    })
                    .ok_or_else(|| ParamsError::Invalid {
                        param: name.into(),
                        problem: format!("{e:?} is not host=ip"),
                    })?;
                let (host, ip) = (host.trim(), ip.trim());
                if host.is_empty() || ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(ParamsError::Invalid {
                        param: name.into(),
                        problem: format!("{e:?} is not host=ip"),
                    });
                }
                Ok((host.to_string(), ip.to_string()))
            })
            .collect()
    }

    fn image_args(&self) -> Result<BTreeMap<String, PathBuf>> {
        let mut out: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
        let mut entries: Vec<(String, String, String)> = self
            .string_map("image_args")?
            .into_iter()
            .map(|(k, v)| (k.clone(), format!("image_args.{k}"), v))
            .collect();
        entries.extend(self.prefixed("IMAGE_ARG_")?);
        for (name, param, path) in entries {
            if let Some((first, _)) = out.get(&name) {
                return Err(ParamsError::Conflict {
                    first: first.clone(),
                    second: param,
                    what: format!("image arg {name:?}"),
                });
            }
            let path = self.path(&param, &path)?;
            out.insert(name, (param, path));
        }
        Ok(out.into_iter().map(|(k, (_, p))| (k, p)).collect())
    }

    /// docker-image's `load_base` (one dir) and `load_bases` (a list).
    fn load_bases(&self) -> Result<Vec<LoadBase>> {
        let mut dirs: Vec<(String, String)> = Vec::new();
        if let Some(d) = self.text("load_base")? {
            dirs.push(("load_base".into(), d));
        }
        for d in self.list("load_bases")? {
            dirs.push(("load_bases".into(), d));
        }
        dirs.iter()
            .map(|(param, d)| {
                let dir = self.path(param, d)?;
                let read = |file: &str| -> Result<String> {
                    let path = dir.join(file);
                    std::fs::read_to_string(&path)
                        .map(|s| s.trim().to_string())
                        .map_err(|source| ParamsError::Read {
                            param: param.clone(),
                            path,
                            source,
                        })
                };
                let repository = read("repository")?;
                let tag = if dir.join("tag").exists() {
                    read("tag")?
                } else {
                    "latest".into()
                };
                let image = ["image", "image.tar", "oci"]
                    .iter()
                    .map(|f| dir.join(f))
                    .find(|p| p.exists())
                    .ok_or_else(|| ParamsError::MissingPath {
                        param: param.clone(),
                        path: dir.join("image"),
                    })?;
                Ok(LoadBase {
                    name: format!("{repository}:{tag}"),
                    image,
                })
            })
            .collect()
    }

    fn no_cache(&self) -> Result<NoCache> {
        match self.map.get("no_cache") {
            None | Some(Value::Null) => Ok(NoCache::Off),
            Some(Value::Array(_)) => {
                let stages = self.list("no_cache")?;
                Ok(if stages.is_empty() {
                    NoCache::Off
                } else {
                    NoCache::Stages(stages)
                })
            }
            Some(_) => Ok(if self.flag("no_cache")? {
                NoCache::All
            } else {
                NoCache::Off
            }),
        }
    }

    /// Cache specs; docker-image's form (dirs from a `get`) becomes a
    /// registry import of the image they name.
    fn cache_from(&self) -> Result<Vec<CacheSpec>> {
        self.list("cache_from")?
            .iter()
            .map(|entry| {
                let dir = self.env.src_dir.join(entry);
                if !entry.contains('=') && dir.join("repository").is_file() {
                    let read = |f: &str| {
                        std::fs::read_to_string(dir.join(f))
                            .ok()
                            .map(|s| s.trim().to_string())
                    };
                    let repository = read("repository").unwrap_or_default();
                    let reference = match (read("digest"), read("tag")) {
                        (Some(d), _) if !d.is_empty() => format!("{repository}@{d}"),
                        (_, Some(t)) if !t.is_empty() => format!("{repository}:{t}"),
                        _ => format!("{repository}:latest"),
                    };
                    return Ok(CacheSpec {
                        kind: "registry".into(),
                        attrs: BTreeMap::from([("ref".to_string(), reference)]),
                    });
                }
                parse_cache_spec("cache_from", entry)
            })
            .collect()
    }
}

/// `type=registry,ref=r,mode=max`, or a bare reference for a registry cache.
pub fn parse_cache_spec(param: &str, spec: &str) -> Result<CacheSpec> {
    if !spec.contains('=') {
        return Ok(CacheSpec {
            kind: "registry".into(),
            attrs: BTreeMap::from([("ref".to_string(), spec.trim().to_string())]),
        });
    }
    let mut kind = None;
    let mut attrs = BTreeMap::new();
    for part in spec.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| ParamsError::Invalid {
            param: param.into(),
            problem: format!("{part:?} in {spec:?} is not key=value"),
        })?;
        if k.trim() == "type" {
            kind = Some(v.trim().to_string());
        } else {
            attrs.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let kind = kind.unwrap_or_else(|| "registry".into());
    match kind.as_str() {
        "registry" if !attrs.contains_key("ref") => Err(ParamsError::Invalid {
            param: param.into(),
            problem: format!("{spec:?} needs ref=<image reference>"),
        }),
        "local" => Err(ParamsError::Invalid {
            param: param.into(),
            problem: "type=local caches do not survive a put container; use type=registry (or `cache: true`)"
                .into(),
        }),
        _ => Ok(CacheSpec { kind, attrs }),
    }
}

/// Expands a glob relative to `src_dir` to exactly one path.
fn glob_one(src_dir: &Path, param: &str, pattern: &str) -> Result<PathBuf> {
    let full = src_dir.join(pattern);
    let text = full.to_string_lossy();
    let matches: Vec<PathBuf> = glob::glob(&text)
        .map_err(|e| ParamsError::Invalid {
            param: param.into(),
            problem: format!("{pattern:?} is not a valid glob: {e}"),
        })?
        .filter_map(|r| r.ok())
        .collect();
    match matches.as_slice() {
        [] => Err(ParamsError::MissingPath {
            param: param.into(),
            path: full,
        }),
        [one] => Ok(one.clone()),
        many => Err(ParamsError::Invalid {
            param: param.into(),
            problem: format!(
                "too many files/directories match glob {pattern:?}: {}",
                many.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

fn validate_platform(param: &str, p: &str) -> Result<()> {
    let parts: Vec<&str> = p.split('/').collect();
    let ok = (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if ok {
        Ok(())
    } else {
        Err(ParamsError::Invalid {
            param: param.into(),
            problem: format!("{p:?} is not os/arch[/variant]"),
        })
    }
}

/// Checks a tag against the distribution spec (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
pub fn validate_tag(param: &str, tag: &str) -> Result<()> {
    let mut chars = tag.chars();
    let ok = tag.len() <= 128
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ParamsError::Invalid {
            param: param.into(),
            problem: format!(
                "{tag:?} is not a valid tag (letters, digits, `_`, `.`, `-`; at most 128)"
            ),
        })
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn type_error(param: &str, expected: &'static str, got: &Value) -> ParamsError {
    ParamsError::Type {
        param: param.into(),
        expected,
        got: json_type(got),
    }
}

fn closest(name: &str, candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(name, c), *c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

/// The known name closest to an unknown one, including families such as
/// `BUILD_ARGS_FOO` → `BUILD_ARG_FOO` and case slips such as `Context`.
fn suggest(name: &str) -> Option<String> {
    let all: Vec<&str> = TYPED
        .iter()
        .chain(DOCKER_IMAGE)
        .chain(OBT)
        .copied()
        .collect();
    if let Some(same) = all.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        return Some(same.to_string());
    }
    // A slipped family prefix: the cut whose head is nearest the prefix.
    let mut best: Option<(usize, usize, String)> = None;
    for prefix in OBT_PREFIXES {
        for cut in prefix.len().saturating_sub(2)..=(prefix.len() + 2).min(name.len()) {
            if !name.is_char_boundary(cut) {
                continue;
            }
            let (head, rest) = name.split_at(cut);
            let rest = rest.trim_start_matches('_');
            let distance = strsim::levenshtein(head, prefix);
            // Prefer cuts just after an underscore, then the nearest length.
            let skew = usize::from(!head.ends_with('_')) * 10 + cut.abs_diff(prefix.len());
            if !rest.is_empty()
                && distance <= 2
                && best
                    .as_ref()
                    .is_none_or(|(d, s, _)| (distance, skew) < (*d, *s))
            {
                best = Some((distance, skew, format!("{prefix}{rest}")));
            }
        }
    }
    if let Some((_, _, hint)) = best {
        return Some(hint);
    }
    closest(name, &all)
}

/// Every param name we accept (for docs and tests).
pub fn known_names() -> BTreeSet<&'static str> {
    TYPED
        .iter()
        .chain(DOCKER_IMAGE)
        .chain(OBT)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("src")).unwrap();
            std::fs::write(dir.path().join("src/Dockerfile"), "FROM scratch\n").unwrap();
            Fixture { dir }
        }
        fn file(&self, rel: &str, content: &str) -> &Self {
            let p = self.dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
            self
        }
        fn decode(&self, params: Value) -> Result<PutParams> {
            let var = |name: &str| match name {
                "BUILD_ID" => Some("77".to_string()),
                "BUILD_PIPELINE_NAME" => Some("pipe".to_string()),
                "MY_TOKEN" => Some("t0ken".to_string()),
                _ => None,
            };
            PutParams::from_value(
                &params,
                &Env {
                    src_dir: self.dir.path(),
                    var: &var,
                },
            )
        }
        fn build(&self, params: Value) -> BuildParams {
            match self.decode(params).unwrap().action {
                Action::Build(b) => *b,
                other => panic!("expected a build, got {other:?}"),
            }
        }
        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }
    }

    #[test]
    fn minimal_typed_build() {
        let f = Fixture::new();
        let b = f.build(json!({"context": "src"}));
        assert_eq!(b.context, f.path("src"));
        assert_eq!(b.dockerfile, f.path("src/Dockerfile"));
        assert!(b.build_args.is_empty() && b.platforms.is_empty());
    }

    #[test]
    fn three_spellings_of_the_context_agree_and_conflict() {
        let f = Fixture::new();
        for key in ["context", "build", "CONTEXT"] {
            assert_eq!(f.build(json!({ key: "src" })).context, f.path("src"));
        }
        let err = f
            .decode(json!({"context": "src", "CONTEXT": "src"}))
            .unwrap_err();
        assert!(
            matches!(&err, ParamsError::Conflict { first, second, .. } if first == "context" && second == "CONTEXT"),
            "{err}"
        );
        let msg = f
            .decode(json!({"build": "src", "context": "src"}))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("\"context\"") && msg.contains("\"build\""),
            "{msg}"
        );
        // null and "" are unset, so they do not conflict.
        assert!(
            f.decode(json!({"context": "src", "CONTEXT": "", "build": null}))
                .is_ok()
        );
    }

    #[test]
    fn missing_paths_name_the_param_and_the_path_tried() {
        let f = Fixture::new();
        let err = f.decode(json!({"context": "nope"})).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("\"context\"") && msg.contains(&f.path("nope").display().to_string()),
            "{msg}"
        );
        let msg = f
            .decode(json!({"context": "src", "BUILD_ARGS_FILE": "args.txt"}))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("BUILD_ARGS_FILE") && msg.contains("args.txt"),
            "{msg}"
        );
        f.file("ctx/x", "");
        let msg = f.decode(json!({"context": "ctx"})).unwrap_err().to_string();
        assert!(msg.contains("ctx/Dockerfile"), "{msg}");
    }

    #[test]
    fn dockerfile_is_relative_to_the_source_dir() {
        let f = Fixture::new();
        f.file("src/hello.Dockerfile", "FROM scratch\n");
        let b = f.build(json!({"CONTEXT": "src", "DOCKERFILE": "src/hello.Dockerfile"}));
        assert_eq!(b.dockerfile, f.path("src/hello.Dockerfile"));
    }

    #[test]
    fn build_args_from_all_spellings_merge_and_expand() {
        let f = Fixture::new();
        f.file("args.yml", "from_file: one\ninline_wins: file\n");
        let b = f.build(json!({
            "context": "src",
            "build_args": {"a": "id=$BUILD_ID", "inline_wins": "inline", "n": 3},
            "BUILD_ARG_Mixed_Case": "${BUILD_PIPELINE_NAME}/$BUILD_JOB_NAME",
            "build_args_file": "args.yml",
        }));
        assert_eq!(
            b.build_args,
            BTreeMap::from([
                ("a".into(), "id=77".into()),
                ("Mixed_Case".into(), "pipe/".into()),
                ("from_file".into(), "one".into()),
                ("inline_wins".into(), "inline".into()),
                ("n".into(), "3".into()),
            ])
        );
        let err = f
            .decode(json!({"context": "src", "build_args": {"x": "1"}, "BUILD_ARG_x": "2"}))
            .unwrap_err();
        assert!(
            err.to_string().contains("build_args.x") && err.to_string().contains("BUILD_ARG_x"),
            "{err}"
        );
        let err = f
            .decode(json!({"context": "src", "build_args_file": "args.yml", "BUILD_ARGS_FILE": "args.yml"}))
            .unwrap_err();
        assert!(matches!(err, ParamsError::Conflict { .. }));
    }

    #[test]
    fn docker_image_json_files_and_obt_line_files() {
        let f = Fixture::new();
        f.file("labels.json", r#"{"team": "$BUILD_TEAM_NAME-x"}"#);
        f.file("labels_file", "a=b\nc=d\n");
        let b =
            f.build(json!({"build": "src", "labels_file": "labels.json", "labels": {"l": "1"}}));
        assert_eq!(
            b.labels,
            BTreeMap::from([("team".into(), "-x".into()), ("l".into(), "1".into())])
        );
        let b = f.build(json!({"CONTEXT": "src", "LABELS_FILE": "labels_file", "LABEL_z": "y"}));
        assert_eq!(
            b.labels,
            BTreeMap::from([
                ("a".into(), "b".into()),
                ("c".into(), "d".into()),
                ("z".into(), "y".into())
            ])
        );
        f.file("bad", "a=b\nbroken\n");
        let msg = f
            .decode(json!({"context": "src", "build_args_file": "bad"}))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("bad:2") && msg.contains("NAME=VALUE"), "{msg}");
    }

    #[test]
    fn target_and_target_file() {
        let f = Fixture::new();
        f.file("target_file", "working-target\n");
        assert_eq!(
            f.build(json!({"context": "src", "target_name": "t"}))
                .target
                .as_deref(),
            Some("t")
        );
        let p = f
            .decode(json!({"context": "src", "TARGET": "x", "TARGET_FILE": "target_file"}))
            .unwrap();
        let Action::Build(b) = p.action else { panic!() };
        assert_eq!(b.target.as_deref(), Some("working-target"));
        assert_eq!(p.notes.len(), 1);
        assert!(
            f.decode(json!({"context": "src", "target": "a", "TARGET": "b"}))
                .is_err()
        );
    }

    #[test]
    fn secrets_from_three_spellings() {
        let f = Fixture::new();
        f.file("secret.txt", "s3cret");
        let b = f.build(json!({
            "context": "src",
            "secrets": {"a": {"file": "secret.txt"}, "b": {"source": "secret.txt"}, "c": {"env": "MY_TOKEN"}, "d": {"text": "lit"}},
            "BUILDKIT_SECRET_e": "secret.txt",
            "BUILDKIT_SECRETTEXT_f": "hello-world",
        }));
        assert_eq!(b.secrets["a"], SecretSpec::File(f.path("secret.txt")));
        assert_eq!(b.secrets["b"], SecretSpec::File(f.path("secret.txt")));
        assert_eq!(b.secrets["c"], SecretSpec::Env("MY_TOKEN".into()));
        assert_eq!(b.secrets["d"], SecretSpec::Text(SecretText("lit".into())));
        assert_eq!(b.secrets["e"], SecretSpec::File(f.path("secret.txt")));
        assert_eq!(
            b.secrets["f"],
            SecretSpec::Text(SecretText("hello-world".into()))
        );
        // Text never shows in Debug output.
        assert!(!format!("{b:?}").contains("hello-world"));

        let err = f
            .decode(json!({"context": "src", "secrets": {"x": {"text": "1"}}, "BUILDKIT_SECRETTEXT_x": "2"}))
            .unwrap_err();
        assert!(
            err.to_string().contains("secrets.x")
                && err.to_string().contains("BUILDKIT_SECRETTEXT_x")
        );
        let err = f
            .decode(json!({"context": "src", "secrets": {"x": {"env": "UNSET_VAR"}}}))
            .unwrap_err();
        assert!(err.to_string().contains("UNSET_VAR"));
        let err = f
            .decode(json!({"context": "src", "secrets": {"x": {"text": "1", "env": "MY_TOKEN"}}}))
            .unwrap_err();
        assert!(err.to_string().contains("exactly one"));
    }

    #[test]
    fn obt_names_that_mean_nothing_for_a_put_are_rejected_with_advice() {
        let f = Fixture::new();
        for (name, word) in [
            ("ADDITIONAL_TARGETS", "target"),
            ("OUTPUT_OCI", "oci-layout"),
            ("UNPACK_ROOTFS", "rootfs"),
        ] {
            let err = f
                .decode(json!({"context": "src", name: "true"}))
                .unwrap_err();
            assert!(
                matches!(&err, ParamsError::Rejected { param, .. } if param == name),
                "{err}"
            );
            assert!(err.to_string().contains(word), "{err}");
        }
        // Explicitly off is fine (copied YAML often says `UNPACK_ROOTFS: ""`).
        assert!(
            f.decode(json!({"context": "src", "UNPACK_ROOTFS": ""}))
                .is_ok()
        );
    }

    #[test]
    fn unknown_names_get_suggestions() {
        let f = Fixture::new();
        let hint = |name: &str| match f.decode(json!({ name: "x" })).unwrap_err() {
            ParamsError::Unknown { hint, .. } => hint,
            other => panic!("{other}"),
        };
        assert_eq!(hint("contxt").as_deref(), Some("context"));
        assert_eq!(hint("Context").as_deref(), Some("context"));
        assert_eq!(hint("BUILD_ARGS_FOO").as_deref(), Some("BUILD_ARG_FOO"));
        assert_eq!(
            hint("BUILDKIT_SECRETTXT_x").as_deref(),
            Some("BUILDKIT_SECRETTEXT_x")
        );
        assert_eq!(hint("LABELS_x").as_deref(), Some("LABEL_x"));
        assert_eq!(hint("tag_as_lastest").as_deref(), Some("tag_as_latest"));
        assert_eq!(hint("zzzzqqq"), None);
        let msg = f.decode(json!({"dockerfle": "x"})).unwrap_err().to_string();
        assert_eq!(
            msg,
            "unknown param \"dockerfle\" (did you mean \"dockerfile\"?)"
        );
    }

    #[test]
    fn platforms_hosts_ssh_image_args() {
        let f = Fixture::new();
        f.file("key", "k");
        f.file("base.tar", "");
        let b = f.build(json!({
            "context": "src",
            "IMAGE_PLATFORM": "linux/arm64,linux/amd64",
            "BUILDKIT_ADD_HOSTS": "test-host=1.2.3.4,other:::1",
            "BUILDKIT_SSH": "my_ssh_key=key",
            "IMAGE_ARG_base_image": "base.tar",
        }));
        assert_eq!(b.platforms, vec!["linux/arm64", "linux/amd64"]);
        assert_eq!(
            b.add_hosts,
            vec![
                ("test-host".into(), "1.2.3.4".into()),
                ("other".into(), "::1".into())
            ]
        );
        assert_eq!(
            b.ssh,
            vec![SshSpec {
                id: "my_ssh_key".into(),
                path: Some(f.path("key"))
            }]
        );
        assert_eq!(b.image_args["base_image"], f.path("base.tar"));

        let b = f.build(json!({"context": "src", "platforms": ["linux/arm/v7"], "add_hosts": {"h": "10.0.0.1"}, "ssh": "default"}));
        assert_eq!(b.platforms, vec!["linux/arm/v7"]);
        assert_eq!(b.add_hosts, vec![("h".into(), "10.0.0.1".into())]);
        assert_eq!(
            b.ssh,
            vec![SshSpec {
                id: "default".into(),
                path: None
            }]
        );
        assert!(
            f.decode(json!({"context": "src", "platforms": ["arm64"]}))
                .is_err()
        );
        assert!(
            f.decode(json!({"context": "src", "add_hosts": ["h=notanip"]}))
                .is_err()
        );
        assert!(
            f.decode(
                json!({"context": "src", "image_args": {"b": "x"}, "IMAGE_ARG_b": "base.tar"})
            )
            .is_err()
        );
    }

    #[test]
    fn cache_params() {
        let f = Fixture::new();
        f.file("got/repository", "reg.example/app\n");
        f.file("got/digest", "sha256:abc\n");
        let b = f.build(json!({
            "context": "src",
            "cache": true,
            "cache_from": ["got", "reg.example/app:cache", "type=registry,ref=r:c"],
            "cache_to": ["type=inline"],
            "no_cache": ["stage1"],
        }));
        assert_eq!(b.cache_tag.as_deref(), Some("buildcache"));
        let refs: Vec<&str> = b
            .cache_from
            .iter()
            .map(|c| c.attrs["ref"].as_str())
            .collect();
        assert_eq!(
            refs,
            vec!["reg.example/app@sha256:abc", "reg.example/app:cache", "r:c"]
        );
        assert_eq!(
            b.cache_to,
            vec![CacheSpec {
                kind: "inline".into(),
                attrs: BTreeMap::new()
            }]
        );
        assert_eq!(b.no_cache, NoCache::Stages(vec!["stage1".into()]));
        assert_eq!(
            f.build(json!({"context": "src", "no_cache": true}))
                .no_cache,
            NoCache::All
        );
        assert!(
            f.decode(json!({"context": "src", "cache_to": ["type=local,dest=x"]}))
                .is_err()
        );
        assert!(
            f.decode(json!({"context": "src", "cache_tag": "c"}))
                .is_err()
        );
        assert_eq!(
            f.build(json!({"context": "src", "cache": "true", "cache_tag": "c"}))
                .cache_tag
                .as_deref(),
            Some("c")
        );
    }

    #[test]
    fn tags_from_files_with_prefix() {
        let f = Fixture::new();
        f.file("tag", " 1.2.3\n");
        f.file("more", "a b\nc\n");
        let p = f
            .decode(json!({"context": "src", "tag_file": "tag", "tag_prefix": "v", "additional_tags": "more", "tag_as_latest": true}))
            .unwrap();
        assert_eq!(p.tags.tag_file.as_deref(), Some("v1.2.3"));
        assert_eq!(p.tags.additional_tags, vec!["va", "vb", "vc"]);
        assert!(p.tags.tag_as_latest);
        assert!(
            f.decode(json!({"context": "src", "tag_prefix": "v"}))
                .is_err()
        );
        assert!(
            f.decode(json!({"context": "src", "bump_aliases": true}))
                .is_err()
        );
        assert_eq!(
            f.decode(json!({"context": "src", "version": 1.2}))
                .unwrap()
                .tags
                .version
                .as_deref(),
            Some("1.2")
        );
        assert!(
            f.decode(json!({"context": "src", "tag": "tag", "tag_file": "tag"}))
                .is_err()
        );
    }

    #[test]
    fn push_mode() {
        let f = Fixture::new();
        f.file("built/image.tar", "x");
        let p = f
            .decode(json!({"image": "built/*.tar", "version": "1.0.0"}))
            .unwrap();
        assert_eq!(
            p.action,
            Action::Push {
                image: f.path("built/image.tar")
            }
        );
        let p = f.decode(json!({"load": "built"})).unwrap();
        assert_eq!(
            p.action,
            Action::Push {
                image: f.path("built/image.tar")
            }
        );
        f.file("built/other.tar", "x");
        let msg = f
            .decode(json!({"image": "built/*.tar"}))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("too many"), "{msg}");
        let msg = f
            .decode(json!({"image": "nothing/*.tar"}))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("does not exist"), "{msg}");
        let err = f
            .decode(json!({"image": "built/image.tar", "context": "src"}))
            .unwrap_err();
        assert!(matches!(err, ParamsError::Conflict { .. }), "{err}");
        let err = f
            .decode(json!({"image": "built/image.tar", "BUILD_ARG_x": "1"}))
            .unwrap_err();
        assert!(matches!(err, ParamsError::Conflict { .. }), "{err}");
    }

    #[test]
    fn load_bases_name_their_from_image() {
        let f = Fixture::new();
        f.file("base/repository", "example.com/base\n");
        f.file("base/tag", "1.0\n");
        f.file("base/image", "");
        let b = f.build(json!({"context": "src", "load_bases": ["base"]}));
        assert_eq!(
            b.load_bases,
            vec![LoadBase {
                name: "example.com/base:1.0".into(),
                image: f.path("base/image")
            }]
        );
    }

    #[test]
    fn daemon_settings_and_ignored_legacy_params() {
        let f = Fixture::new();
        let p = f
            .decode(json!({"context": "src", "REGISTRY_MIRRORS": "m1:5000, m2", "BUILDKIT_EXTRA_CONFIG": "debug = true", "docker_buildkit": 1}))
            .unwrap();
        assert_eq!(p.daemon.registry_mirrors, vec!["m1:5000", "m2"]);
        assert_eq!(p.daemon.extra_config.as_deref(), Some("debug = true"));
        assert!(p.notes.iter().any(|n| n.contains("docker_buildkit")));
    }

    #[test]
    fn type_errors_name_the_param() {
        let f = Fixture::new();
        let msg = f
            .decode(json!({"context": "src", "build_args": ["a"]}))
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "param \"build_args\" must be an object, not a list");
        let msg = f
            .decode(json!({"context": "src", "labels": {"a": {"b": 1}}}))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("labels.a"), "{msg}");
        assert!(matches!(
            f.decode(json!("x")),
            Err(ParamsError::NotAnObject(_))
        ));
    }
}
