//! The one table of put params: every setting with its spellings in the
//! three tools users copy from (our typed names, docker-image's `put`
//! params, oci-build-task's upper-case env-style names and `PREFIX_<key>`
//! families), whether it is build-only, and what to do instead for the
//! params of other tools that mean nothing for a put.
//!
//! Name checks, conflicts between two spellings, the push-vs-build check and
//! "did you mean" all read this table; the decoder in `build.rs`/`tags.rs`
//! names a setting with several spellings by its row (`params::CONTEXT`),
//! never by a list of names of its own.

use std::collections::BTreeSet;

use super::ParamsError;

/// One spelling of a setting.
#[derive(Debug, Clone, Copy)]
pub(super) enum Name {
    /// Our typed name (`context`).
    Typed(&'static str),
    /// docker-image's `put` param (`build`).
    DockerImage(&'static str),
    /// oci-build-task's fixed name (`CONTEXT`).
    Obt(&'static str),
    /// oci-build-task's family: the prefix plus a key (`BUILD_ARG_<key>`).
    ObtFamily(&'static str),
}

impl Name {
    /// The fixed name, or `None` for a family.
    fn fixed(self) -> Option<&'static str> {
        match self {
            Name::Typed(n) | Name::DockerImage(n) | Name::Obt(n) => Some(n),
            Name::ObtFamily(_) => None,
        }
    }
}

/// What a setting is for, which decides where it may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Only a build reads it (an error next to `image`).
    Build,
    /// Read by builds and pushes alike (tags, daemon settings).
    Any,
    /// Accepted and ignored with a note (docker-image's knobs that our
    /// design makes moot).
    Ignored,
    /// Means nothing for a put: refused when set, with what to do instead.
    Rejected(&'static str),
}

/// One setting and all its spellings, in the order a conflict names them
/// (typed, docker-image, oci-build-task).
#[derive(Debug)]
pub(super) struct Param {
    /// What the spellings set, for conflict messages ("the build context").
    pub what: &'static str,
    /// The spellings.
    pub names: &'static [Name],
    /// Where it may appear.
    pub scope: Scope,
}

impl Param {
    /// The fixed spellings, in conflict order.
    pub fn fixed(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.names.iter().filter_map(|n| n.fixed())
    }

    /// The one family prefix of this setting (`BUILD_ARG_`).
    pub fn family(&self) -> &'static str {
        self.names
            .iter()
            .find_map(|n| match n {
                Name::ObtFamily(p) => Some(*p),
                _ => None,
            })
            .expect("the row has a family")
    }
}

use Name::{DockerImage, Obt, ObtFamily, Typed};

const fn build(what: &'static str, names: &'static [Name]) -> Param {
    Param {
        what,
        names,
        scope: Scope::Build,
    }
}

const fn any(what: &'static str, names: &'static [Name]) -> Param {
    Param {
        what,
        names,
        scope: Scope::Any,
    }
}

const fn ignored(names: &'static [Name]) -> Param {
    Param {
        what: "",
        names,
        scope: Scope::Ignored,
    }
}

const fn rejected(names: &'static [Name], advice: &'static str) -> Param {
    Param {
        what: "",
        names,
        scope: Scope::Rejected(advice),
    }
}

// Settings with typed names, in the order the typed names are checked when
// a push also names a build param (so the first one set is reported).
pub(super) const CONTEXT: Param = build(
    "the build context",
    &[Typed("context"), DockerImage("build"), Obt("CONTEXT")],
);
pub(super) const DOCKERFILE: Param =
    build("the Dockerfile", &[Typed("dockerfile"), Obt("DOCKERFILE")]);
pub(super) const TARGET: Param = build(
    "the target stage",
    &[Typed("target"), DockerImage("target_name"), Obt("TARGET")],
);
pub(super) const TARGET_FILE: Param = build(
    "the target file",
    &[Typed("target_file"), Obt("TARGET_FILE")],
);
pub(super) const BUILD_ARGS: Param = build(
    "build args",
    &[Typed("build_args"), ObtFamily("BUILD_ARG_")],
);
pub(super) const BUILD_ARGS_FILE: Param = build(
    "the build args file",
    &[Typed("build_args_file"), Obt("BUILD_ARGS_FILE")],
);
pub(super) const LABELS: Param = build("labels", &[Typed("labels"), ObtFamily("LABEL_")]);
pub(super) const LABELS_FILE: Param = build(
    "the labels file",
    &[Typed("labels_file"), Obt("LABELS_FILE")],
);
pub(super) const ANNOTATIONS: Param = build("annotations", &[Typed("annotations")]);
pub(super) const SECRETS: Param = build(
    "secrets",
    &[
        Typed("secrets"),
        ObtFamily("BUILDKIT_SECRET_"),
        ObtFamily("BUILDKIT_SECRETTEXT_"),
    ],
);
pub(super) const SSH: Param = build("ssh forwarding", &[Typed("ssh"), Obt("BUILDKIT_SSH")]);
pub(super) const PLATFORMS: Param = build(
    "the target platforms",
    &[Typed("platforms"), Obt("IMAGE_PLATFORM")],
);
pub(super) const ADD_HOSTS: Param = build(
    "extra hosts",
    &[Typed("add_hosts"), Obt("BUILDKIT_ADD_HOSTS")],
);
pub(super) const IMAGE_ARGS: Param = build(
    "image args",
    &[Typed("image_args"), ObtFamily("IMAGE_ARG_")],
);
pub(super) const REGISTRY_MIRRORS: Param = any(
    "registry mirrors",
    &[Typed("registry_mirrors"), Obt("REGISTRY_MIRRORS")],
);
pub(super) const EXTRA_CONFIG: Param = any(
    "extra buildkitd config",
    &[Typed("buildkit_extra_config"), Obt("BUILDKIT_EXTRA_CONFIG")],
);
pub(super) const NO_CACHE: Param = build("cache bypass", &[Typed("no_cache")]);
pub(super) const CACHE_FROM: Param = build("cache imports", &[Typed("cache_from")]);
pub(super) const CACHE_TO: Param = build("cache exports", &[Typed("cache_to")]);
pub(super) const CACHE: Param = build("the registry cache", &[Typed("cache")]);
pub(super) const CACHE_MOUNTS: Param = build("persistent cache mounts", &[Typed("cache_mounts")]);
pub(super) const CACHE_MOUNTS_MAX_SIZE: Param = build(
    "the cache mounts' size limit",
    &[Typed("cache_mounts_max_size")],
);
pub(super) const SOURCE_DATE_EPOCH: Param =
    build("reproducible timestamps", &[Typed("source_date_epoch")]);
pub(super) const NETWORK: Param = build("the network", &[Typed("network")]);
pub(super) const PROVENANCE: Param = build("the provenance attestation", &[Typed("provenance")]);
pub(super) const SBOM: Param = build("the SBOM attestation", &[Typed("sbom")]);
pub(super) const TAG_FILE: Param = any("the tag file", &[Typed("tag_file"), DockerImage("tag")]);
pub(super) const TAG_PREFIX: Param = any("the tag prefix", &[Typed("tag_prefix")]);
pub(super) const TAG_AS_LATEST: Param = any("the latest tag", &[Typed("tag_as_latest")]);
pub(super) const ADDITIONAL_TAGS: Param = any("more tags", &[Typed("additional_tags")]);
pub(super) const VERSION: Param = any("the version", &[Typed("version")]);
pub(super) const BUMP_ALIASES: Param = any("version aliases", &[Typed("bump_aliases")]);
pub(super) const SKIP_EXISTING: Param = any(
    "skipping an image already pushed",
    &[Typed("skip_existing")],
);
pub(super) const IMAGE: Param = any(
    "the image to push",
    &[
        Typed("image"),
        DockerImage("load"),
        DockerImage("load_file"),
    ],
);
pub(super) const IMAGES: Param = any("the images to merge", &[Typed("images")]);
pub(super) const LAYERS: Param = any("the layers to append", &[Typed("layers")]);
// docker-image's own settings.
pub(super) const CACHE_TAG: Param = build("the cache tag", &[DockerImage("cache_tag")]);
pub(super) const LOAD_BASE: Param = build("a base image", &[DockerImage("load_base")]);
pub(super) const LOAD_BASES: Param = build("base images", &[DockerImage("load_bases")]);

/// Every row: settings first (typed-name order, then docker-image's own),
/// then the ignored and the rejected params.
pub(super) const ALL: &[Param] = &[
    CONTEXT,
    DOCKERFILE,
    TARGET,
    TARGET_FILE,
    BUILD_ARGS,
    BUILD_ARGS_FILE,
    LABELS,
    LABELS_FILE,
    ANNOTATIONS,
    SECRETS,
    SSH,
    PLATFORMS,
    ADD_HOSTS,
    IMAGE_ARGS,
    REGISTRY_MIRRORS,
    EXTRA_CONFIG,
    NO_CACHE,
    CACHE_FROM,
    CACHE_TO,
    CACHE,
    CACHE_MOUNTS,
    CACHE_MOUNTS_MAX_SIZE,
    SOURCE_DATE_EPOCH,
    NETWORK,
    PROVENANCE,
    SBOM,
    TAG_FILE,
    TAG_PREFIX,
    TAG_AS_LATEST,
    ADDITIONAL_TAGS,
    VERSION,
    BUMP_ALIASES,
    SKIP_EXISTING,
    IMAGE,
    IMAGES,
    LAYERS,
    CACHE_TAG,
    LOAD_BASE,
    LOAD_BASES,
    ignored(&[
        DockerImage("docker_buildkit"),
        DockerImage("load_repository"),
        DockerImage("load_tag"),
    ]),
    rejected(
        &[Obt("ADDITIONAL_TARGETS")],
        "a put pushes one image; use one put per stage, each with its own `target` and repository",
    ),
    rejected(
        &[Obt("OUTPUT_OCI")],
        "a put pushes to the registry; fetch an OCI layout afterwards with a get of this resource and `format: oci-layout`",
    ),
    rejected(
        &[Obt("UNPACK_ROOTFS")],
        "a put pushes to the registry; fetch the rootfs afterwards with a get of this resource (the default `format: rootfs`)",
    ),
    rejected(
        &[Obt("DEBUG")],
        "set `debug: true` in the resource's source for verbose logs",
    ),
    rejected(
        &[DockerImage("import_file")],
        "importing a rootfs tarball is not supported; build it with a Dockerfile `FROM scratch` + `ADD rootfs.tar /`",
    ),
    rejected(
        &[DockerImage("pull_repository"), DockerImage("pull_tag")],
        "re-pushing another repository is not a build; use a get of that image and `params.image` here",
    ),
];

/// Rows whose params are accepted (not rejected).
fn accepted() -> impl Iterator<Item = &'static Param> {
    ALL.iter()
        .filter(|p| !matches!(p.scope, Scope::Rejected(_)))
}

/// The accepted fixed names: typed, then docker-image's, then
/// oci-build-task's (the order "did you mean" breaks ties in).
fn accepted_names() -> Vec<&'static str> {
    let of = |keep: fn(&Name) -> bool| {
        accepted()
            .flat_map(|p| p.names.iter())
            .filter(move |n| keep(n))
            .filter_map(|n| n.fixed())
    };
    of(|n| matches!(n, Typed(_)))
        .chain(of(|n| matches!(n, DockerImage(_))))
        .chain(of(|n| matches!(n, Obt(_))))
        .collect()
}

/// The family prefixes (`BUILD_ARG_`, ...).
fn families() -> impl Iterator<Item = &'static str> {
    ALL.iter().flat_map(|p| p.names).filter_map(|n| match n {
        ObtFamily(p) => Some(*p),
        _ => None,
    })
}

/// Whether `key` is a family member (`BUILD_ARG_x`; a bare prefix is not).
fn in_family(key: &str) -> bool {
    families().any(|p| key.len() > p.len() && key.starts_with(p))
}

/// Checks one key: rejected (when `set`), known, or unknown with a hint.
pub(super) fn check_name(key: &str, set: bool) -> Result<(), ParamsError> {
    let row = ALL.iter().find(|p| p.fixed().any(|n| n == key));
    match row.map(|p| p.scope) {
        Some(Scope::Rejected(advice)) if set => Err(ParamsError::Rejected {
            param: key.to_string(),
            advice,
        }),
        Some(_) => Ok(()),
        None if in_family(key) => Ok(()),
        None => Err(ParamsError::Unknown {
            name: key.to_string(),
            hint: suggest(key),
        }),
    }
}

/// The ignored params, in table order.
pub(super) fn ignored_names() -> impl Iterator<Item = &'static str> {
    ALL.iter()
        .filter(|p| p.scope == Scope::Ignored)
        .flat_map(|p| p.fixed())
}

/// The build-only typed and docker-image names, typed first, for the
/// push-vs-build check.
pub(super) fn build_only_names() -> impl Iterator<Item = &'static str> {
    let of = |keep: fn(&Name) -> bool| {
        ALL.iter()
            .filter(|p| p.scope == Scope::Build)
            .flat_map(|p| p.names.iter())
            .filter(move |n| keep(n))
            .filter_map(|n| n.fixed())
    };
    of(|n| matches!(n, Typed(_))).chain(of(|n| matches!(n, DockerImage(_))))
}

/// Whether `key` is an oci-build-task spelling of a build-only setting
/// (a fixed name, or anything starting with a family prefix).
pub(super) fn is_obt_build_key(key: &str) -> bool {
    ALL.iter()
        .filter(|p| p.scope == Scope::Build)
        .flat_map(|p| p.names)
        .any(|n| match n {
            Obt(name) => *name == key,
            ObtFamily(prefix) => key.starts_with(prefix),
            _ => false,
        })
}

/// The known name closest to an unknown one, including families such as
/// `BUILD_ARGS_FOO` → `BUILD_ARG_FOO` and case slips such as `Context`;
/// plain typos go to the crate's one suggester, `config::decode::suggest`.
fn suggest(name: &str) -> Option<String> {
    let all = accepted_names();
    if let Some(same) = all.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        return Some(same.to_string());
    }
    // A slipped family prefix: the cut whose head is nearest the prefix.
    let mut best: Option<(usize, usize, String)> = None;
    for prefix in families() {
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
    crate::config::decode::suggest(name, all).map(str::to_string)
}

/// Every param name we accept (for docs and tests).
pub fn known_names() -> BTreeSet<&'static str> {
    accepted_names().into_iter().collect()
}

/// Whether `name` is a param we accept: a fixed name in any of the three
/// spellings, or a member of an oci-build-task family (`BUILD_ARG_<key>`).
/// The README test (tests/it/readme.rs) checks every example key with it.
pub fn is_known_name(name: &str) -> bool {
    accepted_names().contains(&name) || in_family(name)
}
