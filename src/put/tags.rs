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
/// (`commands::check::is_build_cache`), so `tag_regex: .*` still works.
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
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn bump(version: &str, variant: Option<&str>, existing: &[&str]) -> Vec<String> {
        let params = TagParams {
            version: Some(version.into()),
            bump_aliases: true,
            ..Default::default()
        };
        plan(None, variant, &params, &strings(existing))
            .unwrap()
            .tags
    }

    // registry-image's `out` tagging rules (docs/put.md, "Tags").
    #[test]
    fn bump_aliases_follow_registry_image() {
        assert_eq!(bump("1.2.3", None, &["1.3.0"]), strings(&["1.2.3", "1.2"]));
        assert_eq!(
            bump("1.2.3", None, &["2.0.0"]),
            strings(&["1.2.3", "1", "1.2"])
        );
        assert_eq!(bump("1.2.3", None, &["1.2.4"]), strings(&["1.2.3"]));
        assert_eq!(
            bump("1.2.3", None, &[]),
            strings(&["1.2.3", "latest", "1", "1.2"])
        );
        assert_eq!(
            bump("1.2.3", Some("lts"), &["1.3.0"]),
            strings(&["1.2.3-lts", "lts", "1-lts", "1.2-lts"])
        );
        assert_eq!(
            bump("1.2.3", Some("lts"), &["1.3.0-lts"]),
            strings(&["1.2.3-lts", "1.2-lts"])
        );
        assert_eq!(bump("1.2.3-rc.1", None, &[]), strings(&["1.2.3-rc.1"]));
        // Equal versions, aliases, prereleases and junk never block.
        assert_eq!(
            bump(
                "v1.2.3",
                None,
                &["1.2.3", "1.2", "1", "latest", "2.0.0-rc.1", "some-branch"]
            ),
            strings(&["1.2.3", "latest", "1", "1.2"])
        );
    }

    #[test]
    fn order_and_sources() {
        let params = TagParams {
            tag_file: Some("from-file".into()),
            version: Some("2".into()),
            additional_tags: strings(&["a", "latest"]),
            tag_as_latest: true,
            ..Default::default()
        };
        let p = plan(Some("dev"), None, &params, &[]).unwrap();
        assert_eq!(p.tags, strings(&["from-file", "2.0.0", "a", "latest"]));
        assert!(!p.defaulted_to_latest);
        let p = plan(Some("dev"), None, &TagParams::default(), &[]).unwrap();
        assert_eq!(p.tags, strings(&["dev"]));
        let p = plan(None, None, &TagParams::default(), &[]).unwrap();
        assert_eq!(p.tags, strings(&["latest"]));
        assert!(p.defaulted_to_latest);
    }

    #[test]
    fn bad_inputs_fail_before_pushing() {
        let params = TagParams {
            version: Some("hoogily-boogily".into()),
            ..Default::default()
        };
        let err = plan(None, None, &params, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid semantic version: \"hoogily-boogily\""
        );
        let params = TagParams {
            version: Some("1.0.0+build.5".into()),
            ..Default::default()
        };
        assert!(matches!(
            plan(None, None, &params, &[]),
            Err(TagError::InvalidTag {
                from: "version",
                ..
            })
        ));
        let params = TagParams {
            additional_tags: strings(&["no/slash"]),
            ..Default::default()
        };
        assert!(plan(None, None, &params, &[]).is_err());
    }

    /// The tags a put pushes and the one it reports, for `source`
    /// (`tag`, `tag_regex`, `variant`) and the tag params.
    fn reported(
        source_tag: Option<&str>,
        regex: Option<&str>,
        variant: Option<&str>,
        params: TagParams,
    ) -> (Vec<String>, String) {
        let tags = plan(source_tag, variant, &params, &[]).unwrap().tags;
        let mode = match (source_tag, regex) {
            (Some(t), _) => CheckMode::Tag(t.into()),
            (None, Some(re)) => CheckMode::Regex(regex::Regex::new(re).unwrap()),
            (None, None) => CheckMode::Semver,
        };
        let semver = SemverOptions {
            variant,
            constraint: None,
            pre_releases: false,
            pre_release_prefixes: &[],
        };
        let tag = reported_tag(&tags, &mode, &semver).to_string();
        (tags, tag)
    }

    fn p(
        tag_file: Option<&str>,
        version: Option<&str>,
        bump: bool,
        additional: &[&str],
        latest: bool,
    ) -> TagParams {
        TagParams {
            tag_file: tag_file.map(String::from),
            version: version.map(String::from),
            bump_aliases: bump,
            additional_tags: strings(additional),
            tag_as_latest: latest,
        }
    }

    /// One row: source.tag, tag_regex, variant, the tag params, the tags
    /// pushed, and the tag the version reports.
    type Case<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        TagParams,
        &'a [&'a str],
        &'a str,
    );

    /// docs/put.md, "Output": the version is the tag `check` would report for
    /// the pushed digest, for every combination of the tag params.
    #[test]
    fn reported_tag_is_what_check_reports() {
        let none = || p(None, None, false, &[], false);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            // Tag mode: source.tag whenever it was pushed.
            (Some("dev"), None, None, none(), &["dev"], "dev"),
            (Some("latest"), None, None, p(Some("1.4"), None, false, &[], true), &["1.4", "latest"], "latest"),
            (Some("dev"), None, None, p(Some("1.4"), None, false, &[], false), &["1.4"], "1.4"),
            (Some("dev"), None, None, p(Some("dev"), None, false, &["x"], false), &["dev", "x"], "dev"),
            (Some("dev"), None, None, p(None, Some("1.2.3"), false, &[], false), &["dev", "1.2.3"], "dev"),
            (Some("latest"), None, None, p(None, Some("1.2.3"), true, &[], false), &["latest", "1.2.3", "1", "1.2"], "latest"),
            (Some("1"), None, None, p(None, Some("1.2.3"), true, &[], false), &["1", "1.2.3", "latest", "1.2"], "1"),
            (Some("stable"), None, None, p(Some("f"), None, false, &["stable"], false), &["f", "stable"], "stable"),
            (Some("main"), None, None, p(None, None, false, &[], true), &["main", "latest"], "main"),
            // Tag mode, source.tag not pushed: check does not see this image; the first tag.
            (Some("dev"), None, None, p(Some("f"), Some("2"), false, &["a"], true), &["f", "2.0.0", "a", "latest"], "f"),
            // Semver mode: the most specific final version pushed.
            (None, None, None, none(), &["latest"], "latest"),
            (None, None, None, p(None, Some("1.2.3"), false, &[], false), &["1.2.3"], "1.2.3"),
            (None, None, None, p(None, Some("v1.2"), true, &[], true), &["1.2.0", "latest", "1", "1.2"], "1.2.0"),
            (None, None, None, p(Some("build-7"), Some("1.2.3"), false, &[], false), &["build-7", "1.2.3"], "1.2.3"),
            (None, None, None, p(Some("1.2"), None, false, &["1.2.3", "x"], false), &["1.2", "1.2.3", "x"], "1.2.3"),
            (None, None, None, p(Some("build-7"), None, false, &[], true), &["build-7", "latest"], "latest"),
            (None, None, None, p(Some("build-7"), None, false, &["x"], false), &["build-7", "x"], "build-7"),
            (None, None, None, p(None, Some("2.0.0-rc.1"), false, &[], true), &["2.0.0-rc.1", "latest"], "latest"),
            (None, None, Some("lts"), p(None, Some("1.2.3"), true, &[], false), &["1.2.3-lts", "lts", "1-lts", "1.2-lts"], "1.2.3-lts"),
            (None, None, Some("lts"), p(Some("x"), None, false, &["lts"], false), &["x", "lts"], "lts"),
            // Regex mode: the first pushed tag the regex matches.
            (None, Some("^v"), None, p(Some("build-7"), None, false, &["v2", "v3"], false), &["build-7", "v2", "v3"], "v2"),
            (None, Some("^v"), None, p(Some("build-7"), None, false, &[], true), &["build-7", "latest"], "build-7"),
        ];
        for (tag, regex, variant, params, pushed, want) in cases {
            let what =
                format!("source.tag {tag:?}, tag_regex {regex:?}, variant {variant:?}, {params:?}");
            let (tags, got) = reported(tag, regex, variant, params);
            assert_eq!(tags, strings(pushed), "{what}");
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn cache_tag_may_not_be_seen_by_check() {
        let semver = |variant| SemverOptions {
            variant,
            constraint: None,
            pre_releases: false,
            pre_release_prefixes: &[],
        };
        let pushed = strings(&["1.2.3", "latest"]);
        let check = |cache: &str, mode: &CheckMode, variant| {
            check_cache_tag(cache, &pushed, mode, &semver(variant)).map_err(|e| e.to_string())
        };
        let tag = CheckMode::Tag("dev".into());
        let all = CheckMode::Regex(regex::Regex::new(".*").unwrap());
        assert!(check("buildcache", &CheckMode::Semver, None).is_ok());
        assert!(check("buildcache", &tag, None).is_ok());
        // Regex mode: check skips cache manifests by their content instead.
        assert!(check("buildcache", &all, None).is_ok());
        let err = check("latest", &all, None).unwrap_err();
        assert!(err.contains("also a tag this put pushes"), "{err}");
        assert!(check("dev", &tag, None).unwrap_err().contains("source.tag"));
        assert!(
            check("2.0", &CheckMode::Semver, None)
                .unwrap_err()
                .contains("version tag")
        );
        assert!(check("2.0", &tag, None).is_ok());
        assert!(check("2.0-cache", &CheckMode::Semver, None).is_ok());
        let err = check("1.0.0-lts", &CheckMode::Semver, Some("lts")).unwrap_err();
        assert!(err.contains("version tag"), "{err}");
        let err = check("lts", &CheckMode::Semver, Some("lts")).unwrap_err();
        assert!(
            err.contains("source.variant") && err.contains("choose another cache_tag"),
            "{err}"
        );
    }

    #[test]
    fn tag_list_is_needed_only_for_bump_aliases() {
        let mut p = TagParams {
            version: Some("1".into()),
            ..Default::default()
        };
        assert!(!needs_tag_list(&p));
        p.bump_aliases = true;
        assert!(needs_tag_list(&p));
    }
}
