//! `check`: the versions of the image, oldest first, in one of three modes
//! (registry-image `commands/check.go`):
//!
//! - **tag mode** (`source.tag`): the tag's digest, preceded by the given
//!   version when that digest changed but the old manifest still exists; `[]`
//!   while the tag does not exist.
//! - **semver mode** (no `tag`, no `tag_regex`): every tag that parses as a
//!   (loose) semantic version and passes `variant`, `semver_constraint` and
//!   the prerelease rules, one tag per digest, in version order; see
//!   [`semver_versions`].
//! - **regex mode** (`tag_regex`): every matching tag in registry order, or
//!   by image creation time with `created_at_sort`.
//!
//! Reported digests are always the top-level manifest's (an index digest
//! for multi-arch images). A Docker Hub mirror is tried first; its errors
//! only warn, and the origin's answer is authoritative. Check never retries.

use std::collections::HashMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use regex::Regex;
use tracing::{debug, warn};

use crate::concourse::{CheckRequest, Version};
use crate::config::semver::{SemverOptions, Version as SemVer, candidate_version};
use crate::config::{CheckMode, Source};
use crate::error::{Result, chain};
use crate::image::fetch::{self, FetchError};
use crate::image::platform::WantedPlatform;
use crate::oci::Digest;
use crate::registry::{Access, Client};

/// Runs check: mirror first (if any), then origin.
pub async fn run(req: CheckRequest) -> Result<Vec<Version>> {
    let source = &req.source;
    if let Some(mirror) = super::mirror_client(source)? {
        let name = mirror.repository().given.clone();
        match check_with(&mirror, source, req.version.as_ref()).await {
            Ok(versions) if !versions.is_empty() => return Ok(versions),
            Ok(_) => warn!("checking mirror {name} failed: tag not found"),
            Err(e) => warn!("checking mirror {name} failed: {}", chain(&e)),
        }
    }
    let origin = super::origin_client(source, Access::Pull)?;
    check_with(&origin, source, req.version.as_ref())
        .await
        .map_err(|e| e.context(format!("checking origin {} failed", source.repository)))
}

async fn check_with(
    client: &Client,
    source: &Source,
    version: Option<&Version>,
) -> Result<Vec<Version>> {
    match source.check_mode() {
        CheckMode::Tag(tag) => tag_versions(client, &tag, version).await,
        CheckMode::Regex(re) => regex_versions(client, source, &re).await,
        CheckMode::Semver => {
            let tags = list_tags(client).await?;
            let options = source.semver_options();
            semver_versions(tags, &options, version, |tag| async move {
                Ok(client.resolve_tag(&tag).await?.map(Digest::into_string))
            })
            .await
        }
    }
}

/// The registry's tags that are tags by the distribution grammar; others
/// (a hostile or broken registry's `../../v2/...`) are skipped with a debug
/// line, so they are never requested nor reported as versions.
async fn list_tags(client: &Client) -> Result<Vec<String>> {
    let tags = client
        .list_tags()
        .await
        .map_err(|e| crate::Error::from(e).context("list repository tags"))?;
    Ok(tags
        .into_iter()
        .filter(|tag| {
            let valid = crate::config::tag::is_valid(tag);
            if !valid {
                debug!(tag = %tag.escape_debug(), "skipping an invalid tag listed by the registry");
            }
            valid
        })
        .collect())
}

async fn tag_versions(
    client: &Client,
    tag: &str,
    version: Option<&Version>,
) -> Result<Vec<Version>> {
    let Some(digest) = client.resolve_tag(tag).await? else {
        debug!(tag, "tag not found");
        return Ok(Vec::new());
    };
    let current = Version {
        tag: tag.to_owned(),
        digest: digest.to_string(),
    };
    let Some(old) = version.filter(|v| v.digest != digest) else {
        return Ok(vec![current]);
    };
    // A malformed digest in the given version cannot exist in the registry;
    // treat it like a deleted one instead of failing (registry-image gets a
    // 404 for it).
    let old_exists = match Digest::parse(&old.digest) {
        Err(_) => false,
        Ok(old_digest) => client
            .manifest_exists(&old_digest)
            .await
            .unwrap_or_else(|e| {
                debug!(error = %chain(&e), "looking up the previous version failed");
                false
            }),
    };
    Ok(if old_exists {
        vec![
            Version {
                tag: tag.to_owned(),
                digest: old.digest.clone(),
            },
            current,
        ]
    } else {
        vec![current]
    })
}

struct Candidate {
    tag: String,
    version: SemVer,
    digest: String,
}

fn dots(tag: &str) -> usize {
    tag.matches('.').count()
}

/// Whether candidate `new` should replace `old` for the same digest: a final
/// release beats a prerelease, else the more specific tag (more dots) wins;
/// ties keep the first.
fn better(new: &Candidate, old: &Candidate) -> bool {
    match (new.version.is_prerelease(), old.version.is_prerelease()) {
        (false, true) => true,
        (true, false) => false,
        _ => dots(&new.tag) > dots(&old.tag),
    }
}

/// Semver mode over `tags` (registry order), looking digests up with
/// `lookup` (`None` = tag vanished).
///
/// Follows registry-image except for one deliberate difference: the bare tag
/// (`latest`, or `variant` when set) is emitted **only when no semver tag
/// survives at all** (and no constraint is set). registry-image appends it,
/// last and therefore "newest", whenever its digest differs from every
/// emitted tag, which makes pipelines jump to `latest` while a release is
/// being pushed or when a floating tag was rebuilt (registry-image issues
/// #316 and #351).
///
/// With a `cursor` (the version Concourse has) whose tag still has the same
/// digest, only that version and newer ones are reported; tags not newer
/// than it are not even looked up.
pub async fn semver_versions<F, Fut>(
    tags: Vec<String>,
    options: &SemverOptions<'_>,
    cursor: Option<&Version>,
    mut lookup: F,
) -> Result<Vec<Version>>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<Option<String>>>,
{
    let bare = options.variant.unwrap_or("latest");
    let mut kept: Vec<Candidate> = Vec::new();
    let mut by_digest: HashMap<String, usize> = HashMap::new();
    let mut keep = |cand: Candidate| match by_digest.get(&cand.digest) {
        Some(&i) => {
            if better(&cand, &kept[i]) {
                kept[i] = cand;
            }
        }
        None => {
            by_digest.insert(cand.digest.clone(), kept.len());
            kept.push(cand);
        }
    };

    // The cursor's tag goes first: if it still points at the same digest,
    // nothing older needs a lookup.
    let mut cursor_version: Option<SemVer> = None;
    let cursor_tag = cursor.and_then(|c| {
        let version = candidate_version(&c.tag, options)?;
        tags.contains(&c.tag).then_some((c, version))
    });
    if let Some((c, version)) = cursor_tag
        && let Some(digest) = lookup(c.tag.clone()).await?
    {
        if digest == c.digest {
            cursor_version = Some(version.clone());
        }
        keep(Candidate {
            tag: c.tag.clone(),
            version,
            digest,
        });
    }

    let candidates: Vec<(String, SemVer)> = tags
        .iter()
        .filter(|t| *t != bare && cursor.is_none_or(|c| c.tag != **t))
        .filter_map(|t| candidate_version(t, options).map(|v| (t.clone(), v)))
        .filter(|(_, v)| cursor_version.as_ref().is_none_or(|cv| v > cv))
        .collect();
    // Digest lookups are independent HEADs: run a few at once, keeping
    // registry order for the de-duplication's "first wins" rule.
    let mut lookups = futures::stream::iter(candidates)
        .map(|(tag, version)| {
            let digest = lookup(tag.clone());
            async move { digest.await.map(|d| (tag, version, d)) }
        })
        .buffered(8);
    while let Some((tag, version, digest)) = lookups.try_next().await? {
        if let Some(digest) = digest {
            keep(Candidate {
                tag,
                version,
                digest,
            });
        }
    }
    drop(lookups);

    kept.sort_by(|a, b| a.version.cmp(&b.version));
    let mut out: Vec<Version> = kept
        .into_iter()
        .map(|c| Version {
            tag: c.tag,
            digest: c.digest,
        })
        .collect();
    // The bare tag is looked up only when it could be reported.
    if out.is_empty()
        && options.constraint.is_none()
        && tags.iter().any(|t| t == bare)
        && let Some(digest) = lookup(bare.to_owned()).await?
    {
        out.push(Version {
            tag: bare.to_owned(),
            digest,
        });
    }
    Ok(out)
}

async fn regex_versions(client: &Client, source: &Source, re: &Regex) -> Result<Vec<Version>> {
    let tags = list_tags(client).await?;
    let mut out = Vec::new();
    for tag in tags.into_iter().filter(|t| re.is_match(t)) {
        if let Some(digest) = image_digest(client, &tag).await? {
            out.push(Version {
                tag,
                digest: digest.into_string(),
            });
        }
    }
    if source.created_at_sort {
        let platform = source.platform.as_ref();
        let wanted = WantedPlatform::new(
            platform.and_then(|p| p.os.as_deref()),
            platform.and_then(|p| p.architecture.as_deref()),
            platform.and_then(|p| p.variant.as_deref()),
        );
        let mut keyed = Vec::with_capacity(out.len());
        for v in out {
            let created = created_at(client, &v.digest, &wanted).await?;
            keyed.push((created, v));
        }
        // Stable: equal times keep registry order. Unknown times sort first
        // (Go's zero time).
        keyed.sort_by_key(|(created, _)| *created);
        out = keyed.into_iter().map(|(_, v)| v).collect();
    }
    Ok(out)
}

/// The digest `tag` points at, or `None` when it does not exist or holds a
/// BuildKit registry cache (a put's `cache: true` writes `:buildcache` into
/// the image's own repository, and a `tag_regex` such as `.*` matches it;
/// a cache is not an image, so reporting it would make `get` fail). One GET
/// per tag instead of registry-image's HEAD: the same number of requests,
/// with the manifest's few kilobytes to tell a cache by.
async fn image_digest(client: &Client, tag: &str) -> Result<Option<Digest>> {
    match client.fetch_manifest(tag).await {
        Ok(manifest) if is_build_cache(&manifest.bytes) => {
            debug!(tag, "skipping a BuildKit cache manifest");
            Ok(None)
        }
        Ok(manifest) => Ok(Some(manifest.digest)),
        Err(e) if e.status() == Some(http::StatusCode::NOT_FOUND) => Ok(None),
        // Schema 1 cannot be fetched as bytes we use, but check only reports
        // its digest, as registry-image does.
        Err(crate::registry::Error::Schema1 { .. }) => Ok(client.resolve_tag(tag).await?),
        Err(e) => Err(e.into()),
    }
}

/// BuildKit's cache config media type: the config of an `image-manifest=true`
/// cache manifest, or one entry of the index a plain registry cache export
/// writes (BuildKit names it `CacheConfigMediaTypeV0`).
const BUILDKIT_CACHE_CONFIG: &str = "application/vnd.buildkit.cacheconfig.v0";

/// Whether manifest `bytes` are a BuildKit registry cache, in either form.
pub fn is_build_cache(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Descriptor {
        #[serde(default, rename = "mediaType")]
        media_type: String,
    }
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(default)]
        config: Option<Descriptor>,
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    serde_json::from_slice::<Manifest>(bytes).is_ok_and(|m| {
        m.config
            .is_some_and(|c| c.media_type == BUILDKIT_CACHE_CONFIG)
            || m.manifests
                .iter()
                .any(|d| d.media_type == BUILDKIT_CACHE_CONFIG)
    })
}

/// The `created` time of the image at `digest` (for an index, of the child
/// `get` would pick), by [`fetch`]'s own platform and config selection;
/// `None` when absent or not RFC 3339 (Go's zero time).
async fn created_at(
    client: &Client,
    digest: &str,
    wanted: &WantedPlatform,
) -> Result<Option<DateTime<Utc>>> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        created: Option<String>,
    }
    let fetched = async {
        let top = fetch::fetch_verified_manifest(client, digest).await?;
        let selected = fetch::select_image(client, top, wanted).await?;
        fetch::fetch_config(client, &selected.image).await
    };
    let (blob, _) = fetched.await.map_err(|e| match e {
        FetchError::Source(e) => crate::Error::Registry(e),
        FetchError::Image(e) => crate::Error::Image(e),
    })?;
    let config: Config = serde_json::from_slice(&blob).map_err(|e| {
        crate::Error::Other(format!(
            "parsing config of {}@{digest}: {e}",
            client.repository()
        ))
    })?;
    Ok(config
        .created
        .and_then(|c| DateTime::parse_from_rfc3339(&c).ok())
        .map(|t| t.to_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::semver::Constraint;

    fn d(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    /// Runs semver mode over `tags` given as (tag, digest number).
    fn run_semver(
        tags: &[(&str, u8)],
        options: SemverOptions<'_>,
        cursor: Option<Version>,
    ) -> (Vec<String>, Vec<String>) {
        let map: HashMap<String, String> =
            tags.iter().map(|(t, n)| (t.to_string(), d(*n))).collect();
        let looked = std::sync::Mutex::new(Vec::new());
        let list = tags.iter().map(|(t, _)| t.to_string()).collect();
        let out =
            futures::executor::block_on(semver_versions(list, &options, cursor.as_ref(), |t| {
                looked.lock().unwrap().push(t.clone());
                let r = map.get(&t).cloned();
                async move { Ok(r) }
            }))
            .unwrap();
        (
            out.into_iter().map(|v| v.tag).collect(),
            looked.into_inner().unwrap(),
        )
    }

    fn opts() -> SemverOptions<'static> {
        SemverOptions {
            variant: None,
            constraint: None,
            pre_releases: false,
            pre_release_prefixes: &[],
        }
    }

    #[test]
    fn build_caches_are_told_by_their_config_media_type() {
        let cache_manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.buildkit.cacheconfig.v0","digest":"sha256:00","size":1},"layers":[]}"#;
        let cache_index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:01","size":1},
            {"mediaType":"application/vnd.buildkit.cacheconfig.v0","digest":"sha256:00","size":1}]}"#;
        let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:00","size":1},"layers":[]}"#;
        let index = br#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:00","size":1}]}"#;
        assert!(is_build_cache(cache_manifest));
        assert!(is_build_cache(cache_index));
        assert!(!is_build_cache(image));
        assert!(!is_build_cache(index));
        assert!(!is_build_cache(b"not json"));
    }

    #[test]
    fn mixed_specificity_dedups_to_most_specific() {
        let tags = [
            ("1", 1),
            ("2", 2),
            ("2.1", 2),
            ("latest", 9),
            ("3", 9),
            ("3.2", 9),
            ("3.2.1", 9),
            ("3.1", 8),
            ("3.1.0", 8),
            ("3.0", 7),
            ("3.0.0", 7),
        ];
        // registry-image: `1, 2.1, 3.0.0, 3.1.0, 3.2.1` (latest == 3.2.1 dropped)
        assert_eq!(
            run_semver(&tags, opts(), None).0,
            ["1", "2.1", "3.0.0", "3.1.0", "3.2.1"]
        );
    }

    #[test]
    fn bare_tag_only_without_any_semver_tag() {
        // registry-image would report `1.0.0, latest` here (issues 316/351).
        let (out, looked) = run_semver(
            &[("1.0.0", 1), ("non-semver", 2), ("latest", 3)],
            opts(),
            None,
        );
        assert_eq!(out, ["1.0.0"]);
        assert_eq!(
            looked,
            ["1.0.0"],
            "the bare tag is not looked up needlessly"
        );
        let (out, _) = run_semver(&[("non-semver", 2), ("latest", 3)], opts(), None);
        assert_eq!(out, ["latest"]);
        let c = Constraint::parse("1.x").unwrap();
        let (out, _) = run_semver(
            &[("latest", 3)],
            SemverOptions {
                constraint: Some(&c),
                ..opts()
            },
            None,
        );
        assert!(out.is_empty());
        let (out, _) = run_semver(&[("x", 3)], opts(), None);
        assert!(out.is_empty());
    }

    #[test]
    fn variant() {
        let tags = [
            ("foo", 1),
            ("1.0.0-foo", 2),
            ("0.9.0-foo", 3),
            ("bar", 4),
            ("1.0.0-bar", 5),
            ("1.0.0", 6),
        ];
        let o = SemverOptions {
            variant: Some("foo"),
            ..opts()
        };
        assert_eq!(run_semver(&tags, o, None).0, ["0.9.0-foo", "1.0.0-foo"]);
        let (out, _) = run_semver(&[("foo", 1), ("1.0.0", 2)], o, None);
        assert_eq!(out, ["foo"]);
    }

    #[test]
    fn constraint_keeps_original_text() {
        let c = Constraint::parse("1.2.x").unwrap();
        let tags = [
            ("1.0.0", 1),
            ("1.2.1", 2),
            ("1.2.2", 3),
            ("v1.2.3", 4),
            ("2.0.0", 5),
            ("latest", 6),
        ];
        let o = SemverOptions {
            constraint: Some(&c),
            ..opts()
        };
        assert_eq!(run_semver(&tags, o, None).0, ["1.2.1", "1.2.2", "v1.2.3"]);
    }

    #[test]
    fn cursor() {
        let tags = [("1.0.0", 1), ("1.2.1", 2), ("2.0.0", 3)];
        let cursor = Version {
            tag: "1.2.1".into(),
            digest: d(2),
        };
        let (out, looked) = run_semver(&tags, opts(), Some(cursor));
        assert_eq!(out, ["1.2.1", "2.0.0"]);
        assert!(
            !looked.contains(&"1.0.0".to_string()),
            "older tags are not looked up"
        );
        let moved = Version {
            tag: "1.2.1".into(),
            digest: d(7),
        };
        assert_eq!(
            run_semver(&tags, opts(), Some(moved)).0,
            ["1.0.0", "1.2.1", "2.0.0"]
        );
        // `1.2` equals cursor `1.2.0` and is skipped
        let tags = [("1.2", 1), ("1.2.0", 2), ("1.3.0", 3)];
        let cursor = Version {
            tag: "1.2.0".into(),
            digest: d(2),
        };
        assert_eq!(
            run_semver(&tags, opts(), Some(cursor)).0,
            ["1.2.0", "1.3.0"]
        );
    }

    #[test]
    fn prereleases() {
        let tags = [
            ("1.0.0-alpha.1", 1),
            ("1.0.0-beta.1", 2),
            ("1.0.0-rc.1", 3),
            ("1.0.0-foo.1", 4),
            ("0.9.0", 5),
        ];
        assert_eq!(run_semver(&tags, opts(), None).0, ["0.9.0"]);
        let o = SemverOptions {
            pre_releases: true,
            ..opts()
        };
        assert_eq!(
            run_semver(&tags, o, None).0,
            ["0.9.0", "1.0.0-alpha.1", "1.0.0-beta.1", "1.0.0-rc.1"]
        );
        // same digest: the final release wins, then the more specific tag
        let tags = [
            ("1.0.0-rc.1", 1),
            ("1.0.0-rc1", 1),
            ("1.0.0-rc", 1),
            ("1.0.0", 1),
        ];
        assert_eq!(run_semver(&tags, o, None).0, ["1.0.0"]);
        let tags = [("1.0.0-rc", 1), ("1.0.0-rc.2", 1)];
        assert_eq!(run_semver(&tags, o, None).0, ["1.0.0-rc.2"]);
        let prefixes = ["build".to_string()];
        let o2 = SemverOptions {
            pre_releases: true,
            pre_release_prefixes: &prefixes,
            ..opts()
        };
        let tags = [("2.0.0-rc.1", 1), ("2.0.0-build.1", 2)];
        assert_eq!(
            run_semver(&tags, o2, None).0,
            ["2.0.0-build.1", "2.0.0-rc.1"]
        );
    }

    #[test]
    fn variant_and_prereleases() {
        let tags = [
            ("1.0.0-foo", 1),
            ("1.0.0-rc.1-foo", 2),
            ("1.0.0-bar-foo", 3),
            ("1.0.0-rc.1-bar-foo", 4),
        ];
        let o = SemverOptions {
            variant: Some("foo"),
            pre_releases: true,
            ..opts()
        };
        assert_eq!(
            run_semver(&tags, o, None).0,
            ["1.0.0-rc.1-foo", "1.0.0-foo"]
        );
        let prefixes = ["alpha".to_string()];
        let o = SemverOptions {
            pre_release_prefixes: &prefixes,
            ..o
        };
        assert_eq!(
            run_semver(&tags, o, None).0,
            ["1.0.0-rc.1-foo", "1.0.0-rc.1-bar-foo", "1.0.0-foo"]
        );
    }

    #[test]
    fn vanished_tags_are_skipped() {
        let map: HashMap<String, String> = [("1.0.0".to_string(), d(1))].into();
        let list = vec!["1.0.0".to_string(), "2.0.0".to_string()];
        let out = futures::executor::block_on(semver_versions(list, &opts(), None, |t| {
            let r = map.get(&t).cloned();
            async move { Ok(r) }
        }))
        .unwrap();
        assert_eq!(
            out,
            [Version {
                tag: "1.0.0".into(),
                digest: d(1)
            }]
        );
    }
}

/// check against scripted fake registries: request order and mirror
/// fallback. The docker-registry cases are in `tests/it/check.rs`.
#[cfg(test)]
mod fake_registry_tests {
    use serde_json::json;
    use test_support::{FakeServer, response};

    use super::*;

    fn request(source: serde_json::Value, version: Option<Version>) -> CheckRequest {
        CheckRequest {
            source: Source::from_value(source).unwrap(),
            version,
        }
    }

    #[tokio::test]
    async fn failing_mirror_falls_back_to_origin() {
        let mirror = FakeServer::start(|req| match req.path.as_str() {
            "/v2/" => response("200 OK", &[], b""),
            _ => response("500 Internal Server Error", &[], b"mirror broken"),
        })
        .await;
        // The origin (Docker Hub) is unreachable or refuses this name; what
        // matters is that the mirror was asked first and its failure led to
        // the origin, whose error is the one reported.
        let err = run(request(
            json!({"repository": "oci-build-resource-test/does-not-exist", "tag": "latest",
                   "registry_mirror": {"host": mirror.host}}),
            None,
        ))
        .await
        .unwrap_err();
        let text = chain(&err);
        assert!(
            text.starts_with("checking origin oci-build-resource-test/does-not-exist failed: "),
            "{text}"
        );
        assert!(!text.contains("mirror broken"), "{text}");
        let log = mirror.log();
        assert!(
            log.iter()
                .any(|l| l == "HEAD /v2/oci-build-resource-test/does-not-exist/manifests/latest"),
            "{log:?}"
        );
    }

    /// issue 10 item 9: tags a registry returns that are not tags by the
    /// distribution grammar (`../../v2/...`, control characters) are skipped,
    /// never looked up nor reported.
    #[tokio::test]
    async fn invalid_tags_from_the_registry_are_skipped() {
        let digest = crate::oci::sha256_digest(b"m");
        let d2 = digest.clone();
        let server = FakeServer::start(move |req| match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v2/") => response("200 OK", &[], b""),
            ("GET", p) if p.starts_with("/v2/img/tags/list") => response(
                "200 OK",
                &[("Content-Type", "application/json")],
                br#"{"name":"img","tags":["good","../../v2/evil/manifests/x","bad\u001b[31m","-x"]}"#,
            ),
            // Regex mode GETs each manifest (to skip BuildKit caches).
            (m, p) if p.starts_with("/v2/img/manifests/") => response(
                "200 OK",
                &[
                    ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                    ("Docker-Content-Digest", &d2),
                ],
                if m == "GET" { b"m" } else { b"" },
            ),
            _ => response("404 Not Found", &[], b""),
        })
        .await;
        let out = run(request(
            json!({"repository": format!("{}/img", server.host), "tag_regex": ".*"}),
            None,
        ))
        .await
        .unwrap();
        assert_eq!(
            out,
            [Version {
                tag: "good".into(),
                digest: digest.to_string()
            }]
        );
        let log = server.log();
        assert!(
            log.iter()
                .all(|l| !l.contains("evil") && !l.contains("bad")),
            "{log:?}"
        );
    }

    /// registry-image's suite scripts the exact request order for tag mode:
    /// one ping, HEAD the tag, HEAD the previous digest.
    #[tokio::test]
    async fn tag_mode_request_sequence_matches_ggcr() {
        let new = crate::oci::sha256_digest(b"new");
        let old = crate::oci::sha256_digest(b"old");
        let (n2, o2) = (new.clone(), old.clone());
        let server = FakeServer::start(move |req| {
            let manifest = |d: &str| {
                response(
                    "200 OK",
                    &[
                        ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                        ("Docker-Content-Digest", d),
                    ],
                    b"",
                )
            };
            match (req.method.as_str(), req.path.as_str()) {
                ("GET", "/v2/") => response("200 OK", &[], b""),
                ("HEAD", "/v2/img/manifests/latest") => manifest(&n2),
                ("HEAD", p) if p == format!("/v2/img/manifests/{o2}") => manifest(&o2),
                _ => response("404 Not Found", &[], b""),
            }
        })
        .await;
        let v = Version {
            tag: "latest".into(),
            digest: old.to_string(),
        };
        let out = run(request(
            json!({"repository": format!("{}/img", server.host), "tag": "latest"}),
            Some(v),
        ))
        .await
        .unwrap();
        assert_eq!(
            out,
            [
                Version {
                    tag: "latest".into(),
                    digest: old.to_string()
                },
                Version {
                    tag: "latest".into(),
                    digest: new.to_string()
                }
            ]
        );
        assert_eq!(
            server.log(),
            [
                "GET /v2/",
                "HEAD /v2/img/manifests/latest",
                &format!("HEAD /v2/img/manifests/{old}")
            ]
        );
        // A malformed version digest cannot exist: no lookup, no error.
        let v = Version {
            tag: "latest".into(),
            digest: "sha256:bogus".into(),
        };
        let json = json!({"repository": format!("{}/img", server.host), "tag": "latest"});
        let out = run(request(json, Some(v))).await.unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            server.log().len(),
            5,
            "one ping and one HEAD of the tag more"
        );
    }
}
