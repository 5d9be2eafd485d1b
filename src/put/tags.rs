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

use crate::config::put::{TagParams, validate_tag};
use crate::config::semver::Version;

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

    // registry-image's `out` tagging rules (README.md, "Tags").
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
