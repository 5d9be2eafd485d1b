//! Which tags a put moves.
//!
//! Sources, in push order: the tag from `tag_file` (docker-image: it replaces
//! `source.tag`) or else `source.tag`; the `version` tag (registry-image:
//! loose semver, normalised, `-<variant>` appended); its aliases when
//! `bump_aliases` is set and the version is the newest of its line; the
//! `additional_tags`; `latest` for `tag_as_latest`. Duplicates keep their
//! first position. No tag at all means `latest`, said out loud.
//!
//! Alias selection is a pure function of the repository's existing tags, so
//! the caller lists them (only when needed, see [`needs_tag_list`]).
//!
//! The version a put reports is the one `check` would report for the pushed
//! digest ([`reported_tag`]): otherwise Concourse holds two versions for one
//! image and downstream jobs trigger twice. For the same reason the registry
//! cache tag may not be one `check` could report ([`check_cache_tag`]).

use crate::config::CheckMode;
use crate::config::put::{TagParams, validate_tag};
use crate::config::semver::{SemverOptions, Version, candidate_version};

/// A tag problem, found before anything is pushed.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    /// `version` is not a (loose) semantic version.
    #[error("invalid semantic version: {0:?}")]
    InvalidVersion(String),
    /// A computed tag is not a valid tag.
    #[error(
        "tag {tag:?} (from {from}) is not a valid tag: letters, digits, `_`, `.`, `-`, at most 128"
    )]
    InvalidTag {
        /// The tag.
        tag: String,
        /// Which input produced it.
        from: &'static str,
    },
    /// `cache_tag` would put the cache manifest where `check` looks.
    #[error("cache_tag {tag:?} {problem}; choose another cache_tag (the default is `buildcache`)")]
    CacheTag {
        /// The cache tag.
        tag: String,
        /// Why `check` could see it.
        problem: String,
    },
}

/// The tags to push and how they were chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPlan {
    /// In push order, without duplicates: `tag_file` (else `source.tag`),
    /// the version's tag, its `bump_aliases`, `additional_tags`, then
    /// `latest` (from `tag_as_latest`, or alone when nothing asked for a tag).
    pub tags: Vec<String>,
    /// Nothing asked for a tag, so `latest` was chosen.
    pub defaulted_to_latest: bool,
}

/// Whether [`plan`] needs the repository's existing tags.
pub fn needs_tag_list(params: &TagParams) -> bool {
    params.bump_aliases && params.version.is_some()
}

/// Computes the tags. `existing` is the repository's tag list (empty for a
/// new repository); it is only read when [`needs_tag_list`] says so.
pub fn plan(
    source_tag: Option<&str>,
    variant: Option<&str>,
    params: &TagParams,
    existing: &[String],
) -> Result<TagPlan, TagError> {
    let mut tags: Vec<(String, &'static str)> = Vec::new();
    match (&params.tag_file, source_tag) {
        (Some(t), _) => tags.push((t.clone(), "tag_file")),
        (None, Some(t)) => tags.push((t.to_string(), "source.tag")),
        (None, None) => {}
    }
    if let Some(text) = &params.version {
        let version = Version::parse_loose(text.trim())
            .ok_or_else(|| TagError::InvalidVersion(text.clone()))?;
        tags.push((with_variant(&version.to_string(), variant), "version"));
        if params.bump_aliases {
            for alias in aliases(&version, variant, existing) {
                tags.push((alias, "bump_aliases"));
            }
        }
    }
    for t in &params.additional_tags {
        tags.push((t.clone(), "additional_tags"));
    }
    if params.tag_as_latest {
        tags.push(("latest".into(), "tag_as_latest"));
    }
    let defaulted_to_latest = tags.is_empty();
    if defaulted_to_latest {
        tags.push(("latest".into(), "the default"));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for (tag, from) in tags {
        if validate_tag("", &tag).is_err() {
            return Err(TagError::InvalidTag { tag, from });
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(TagPlan {
        tags: out,
        defaulted_to_latest,
    })
}

/// The tag of the version a put reports, among the `tags` it pushed (in push
/// order, never empty): the tag `check` would report the pushed digest under.
///
/// - tag mode (`source.tag`): `source.tag` when it was pushed;
/// - regex mode (`source.tag_regex`): the first pushed tag the regex matches;
/// - semver mode: the pushed tag semver mode would keep for this digest (a
///   final version over a prerelease, then the most specific: `1.2.3` over
///   `1.2` over `1`), else the bare tag (`latest`, or the variant) when
///   pushed, which check reports while the repository has no version tags.
///
/// When `check` would not report the digest under any pushed tag, the first
/// pushed tag: the put's `check` does not see this image at all then.
pub fn reported_tag<'a>(
    tags: &'a [String],
    mode: &CheckMode,
    semver: &SemverOptions<'_>,
) -> &'a str {
    let first = tags.first().map(String::as_str).unwrap_or("latest");
    let found = match mode {
        CheckMode::Tag(tag) => tags.iter().find(|t| *t == tag),
        CheckMode::Regex(re) => tags.iter().find(|t| re.is_match(t)),
        CheckMode::Semver => {
            let mut best: Option<(&String, Version)> = None;
            for tag in tags {
                let Some(version) = candidate_version(tag, semver) else {
                    continue;
                };
                let better = match &best {
                    None => true,
                    Some((old_tag, old)) => match (version.is_prerelease(), old.is_prerelease()) {
                        (false, true) => true,
                        (true, false) => false,
                        _ => tag.matches('.').count() > old_tag.matches('.').count(),
                    },
                };
                if better {
                    best = Some((tag, version));
                }
            }
            let bare = semver.variant.unwrap_or("latest");
            best.map(|(t, _)| t)
                .or_else(|| tags.iter().find(|t| *t == bare))
        }
    };
    found.map(String::as_str).unwrap_or(first)
}

/// Refuses a `cache_tag` that `check` could report as a version, or that
/// would overwrite a pushed tag: the cache manifest is not an image, and a
/// `get` of it fails. Tag mode: not `source.tag`. Semver mode: neither a
/// version under the source's filters (`1.2.3-buildcache` with
/// `variant: buildcache`) nor the bare tag. Regex mode needs no rule here:
/// `check` skips BuildKit cache manifests whatever their tag
/// (`image::manifest::tagged`), so `tag_regex: .*` still works.
pub fn check_cache_tag(
    cache_tag: &str,
    tags: &[String],
    mode: &CheckMode,
    semver: &SemverOptions<'_>,
) -> Result<(), TagError> {
    let problem = if tags.iter().any(|t| t == cache_tag) {
        Some("is also a tag this put pushes, so the cache would replace the image".to_string())
    } else {
        match mode {
            CheckMode::Tag(tag) if tag == cache_tag => {
                Some("is source.tag, the tag check follows".to_string())
            }
            CheckMode::Semver if cache_tag == semver.variant.unwrap_or("latest") => Some(format!(
                "is the bare tag check reports in semver mode ({})",
                if semver.variant.is_some() { "source.variant" } else { "`latest`" }
            )),
            CheckMode::Semver if candidate_version(cache_tag, semver).is_some() => Some(
                "is a version tag, which check reports in semver mode (source.tag and tag_regex unset)"
                    .to_string(),
            ),
            _ => None,
        }
    };
    match problem {
        Some(problem) => Err(TagError::CacheTag {
            tag: cache_tag.to_string(),
            problem,
        }),
        None => Ok(()),
    }
}

fn with_variant(tag: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) if !v.is_empty() => format!("{tag}-{v}"),
        _ => tag.to_string(),
    }
}

/// The aliases a final `version` may move: bare (`latest` or the variant),
/// `MAJOR`, `MAJOR.MINOR` (each with `-<variant>`), each only if no existing
/// final version of the same variant is newer within its scope. Prerelease
/// versions move no alias; equal versions never block.
pub fn aliases(version: &Version, variant: Option<&str>, existing: &[String]) -> Vec<String> {
    if !version.pre.is_empty() {
        return Vec::new();
    }
    let variant = variant.filter(|v| !v.is_empty());
    let key = |v: &Version| (v.major, v.minor, v.patch);
    let mine = key(version);
    let others: Vec<(u64, u64, u64)> = existing
        .iter()
        .filter_map(|tag| match variant {
            Some(var) => tag.strip_suffix(&format!("-{var}")),
            None => Some(tag.as_str()),
        })
        .filter_map(Version::parse_loose)
        .filter(|v| v.pre.is_empty())
        .map(|v| key(&v))
        .collect();
    let newer =
        |same: &dyn Fn(&(u64, u64, u64)) -> bool| others.iter().any(|o| same(o) && *o > mine);
    let mut out = Vec::new();
    if !newer(&|_| true) {
        out.push(variant.unwrap_or("latest").to_string());
    }
    if !newer(&|o| o.0 == mine.0) {
        out.push(with_variant(&mine.0.to_string(), variant));
    }
    if !newer(&|o| o.0 == mine.0 && o.1 == mine.1) {
        out.push(with_variant(&format!("{}.{}", mine.0, mine.1), variant));
    }
    out
}

#[cfg(test)]
mod tests;
