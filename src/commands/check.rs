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
/// being pushed or when a floating tag was rebuilt (registry-image#316,
/// registry-image#351).
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
        m.config.is_some_and(|c| {
            c.media_type == BUILDKIT_CACHE_CONFIG
                || c.media_type == crate::oci::media_types::CACHE_MOUNTS_CONFIG
        }) || m
            .manifests
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
mod tests;

/// check against scripted fake registries: request order and mirror
/// fallback. The docker-registry cases are in `tests/it/check.rs`.
#[cfg(test)]
mod fake_registry_tests;
