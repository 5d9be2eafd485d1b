//! `out`: build on put (or push a prebuilt image, or append layers to a
//! base image), sign it, then move the tags.
//!
//! Order matters for users: params, tags and the signing key are validated
//! before any daemon starts or any byte is pushed; every action pushes by
//! digest only, then [`publish`] signs what was pushed (`source.sign`) and
//! only then puts the manifest under the tags, so a failed build, push or
//! signature leaves every tag where it was.

use std::path::Path;
use std::time::Duration;

use crate::concourse::{MetadataField, OutRequest, OutResponse, Version};
use crate::config::Source;
use crate::config::put::{Action, Env, PutParams};
use crate::process::Interrupt;
use crate::put::tags::TagPlan;
use crate::put::{self, run, tags};
use crate::registry::{self, Access};
use crate::store::push::{self, Pushed};
use crate::store::replicate::{self, Replica};

/// Runs `out` for `req` with the put's inputs under `src_dir`. SIGTERM or
/// SIGINT (`interrupt`) cancels the build and shuts the embedded daemon
/// down (see [`run::build_and_push`]), or stops a push (no tag is moved
/// after the signal).
pub async fn run(
    req: OutRequest,
    src_dir: &Path,
    interrupt: &Interrupt,
) -> crate::Result<OutResponse> {
    let params = decode_params(&req.params, src_dir)?;
    let source = &req.source;
    let client = super::origin_client(source, Access::Push)?;
    let (plan, reported) = plan_tags(source, &params, &client).await?;
    reach_registry(source, &client).await?;
    let replicas = reach_replicas(source).await?;
    if params.skip_existing
        && let Some(pushed) = already_pushed(&client, &replicas, &plan.tags).await?
    {
        let outcome = Outcome {
            pushed,
            tags_kept: true,
            extra: replica_field(&replicas),
            build: None,
        };
        return Ok(outcome.into_response(source, &plan.tags, reported, None));
    }

    if let Some(signal) = interrupt.fired() {
        return Err(crate::Error::Interrupted {
            signal,
            cleanup: "nothing was built or pushed".into(),
        });
    }

    // The action pushes by digest only; the tags move last, in publish,
    // once the signatures and every replica are there.
    let target = Target {
        source,
        client: &client,
        tags: &plan.tags,
        src_dir,
        interrupt,
    };
    let outcome = act(&params, &target).await?;
    let (outcome, signed_by) = tokio::select! {
        published = publish(outcome, &target, &replicas) => published?,
        signal = interrupt.wait() => return Err(crate::Error::Interrupted {
            signal,
            cleanup: "stopped after pushing the image by digest, before moving the tags".into(),
        }),
    };
    outcome.log(&plan.tags);
    Ok(outcome.into_response(source, &plan.tags, reported, signed_by))
}

/// The validated params, their notes (advice on params a put ignores)
/// logged before anything else happens.
fn decode_params(params: &serde_json::Value, src_dir: &Path) -> crate::Result<PutParams> {
    let lookup = |name: &str| std::env::var(name).ok();
    let params = PutParams::from_value(
        params,
        &Env {
            src_dir,
            var: &lookup,
        },
    )
    .map_err(put::Error::from)?;
    for note in &params.notes {
        tracing::warn!("{note}");
    }
    Ok(params)
}

/// The tags to move and the tag the new version reports, decided before
/// any daemon starts, so a bad tag input or a cache tag that would
/// overwrite a pushed tag fails the put with nothing built.
async fn plan_tags(
    source: &Source,
    params: &PutParams,
    client: &registry::Client,
) -> crate::Result<(TagPlan, String)> {
    let existing = if tags::needs_tag_list(&params.tags) {
        existing_tags(client).await?
    } else {
        Vec::new()
    };
    let plan = tags::plan(
        source.tag.as_deref(),
        source.variant.as_deref(),
        &params.tags,
        &existing,
    )
    .map_err(put::Error::from)?;
    let mode = source.check_mode();
    let semver = source.semver_options();
    if let Action::Build(b) = &params.action
        && let Some(cache_tag) = &b.cache_tag
    {
        tags::check_cache_tag(cache_tag, &plan.tags, &mode, &semver).map_err(put::Error::from)?;
    }
    let reported = tags::reported_tag(&plan.tags, &mode, &semver).to_string();
    if plan.defaulted_to_latest {
        tracing::info!(
            "no tag given (source.tag, version, tag_file, additional_tags or tag_as_latest): pushing `latest`"
        );
    }
    Ok((plan, reported))
}

/// Our own client reaches the registry first (ping and token, as check
/// does): a TLS or credential problem is then reported as check reports
/// it (`UnknownIssuer` and the `ca_certs` hint), not as whatever the
/// daemon's resolver makes of it (BuildKit falls back to plain HTTP on
/// loopback hosts and reports a `400 Bad Request` from `http://...`).
async fn reach_registry(source: &Source, client: &registry::Client) -> crate::Result<()> {
    registry::retry_transient("reaching the registry", || client.ping())
        .await
        .map_err(|e| {
            crate::Error::from(e).context(format!(
                "reaching {} before the build failed",
                source.repository
            ))
        })?;
    Ok(())
}

/// The `replicate_to` repositories, each reached (ping and token) before
/// anything is built, so wrong credentials fail the put with nothing done.
async fn reach_replicas(source: &Source) -> crate::Result<Vec<Replica>> {
    let replicas = super::replica_clients(source).await?;
    for r in &replicas {
        registry::retry_transient("reaching the registry", || r.client.ping())
            .await
            .map_err(|e| {
                crate::Error::from(e).context(format!("reaching the replica {} failed", r.name))
            })?;
    }
    Ok(replicas)
}

/// `skip_existing`: the image every tag names, in the main repository and
/// in every replica alike, or `None` (logged: which tag is missing or
/// differs) when the put must run.
async fn already_pushed(
    client: &registry::Client,
    replicas: &[Replica],
    tags: &[String],
) -> crate::Result<Option<Pushed>> {
    use put::existing::{Existing, check};
    let pushed = match check(client, tags).await? {
        Existing::All(pushed) => pushed,
        Existing::Build(why) => {
            tracing::info!("skip_existing: {why}: building as usual");
            return Ok(None);
        }
    };
    for r in replicas {
        match check(&r.client, tags).await? {
            Existing::All(p) if p.digest == pushed.digest => {}
            Existing::All(p) => {
                tracing::info!(
                    "skip_existing: the replica {} holds {} under the tags: pushing as usual",
                    r.name,
                    p.digest
                );
                return Ok(None);
            }
            Existing::Build(why) => {
                tracing::info!(
                    "skip_existing: in the replica {}, {why}: pushing as usual",
                    r.name
                );
                return Ok(None);
            }
        }
    }
    tracing::info!(
        "skip_existing: {} already name{} {}: nothing built or pushed",
        tags.join(", "),
        if tags.len() == 1 { "s" } else { "" },
        pushed.digest
    );
    Ok(Some(pushed))
}

/// After an action that pushed by digest only: the image goes to every
/// replica, then the tags move in the main repository and in each replica.
/// When the tags already hold an equivalent index (an unchanged rebuild,
/// see `put::unchanged`), that index is what is copied and tagged.
async fn replicate(
    mut outcome: Outcome,
    client: &registry::Client,
    replicas: &[Replica],
    tags: &[String],
) -> crate::Result<Outcome> {
    let copied = replicate::copy(client, &outcome.pushed.digest, replicas).await?;
    replicate::move_tags(client, replicas, &copied, tags).await?;
    outcome.extra.extend(replica_field(replicas));
    Ok(outcome)
}

/// The `replicas` metadata field, when there are any.
fn replica_field(replicas: &[Replica]) -> Vec<MetadataField> {
    if replicas.is_empty() {
        return Vec::new();
    }
    let names: Vec<&str> = replicas.iter().map(|r| r.name.as_str()).collect();
    vec![field("replicas", names.join(" "))]
}

/// Where the put's image goes and what may stop it: the same for a push,
/// a layer append and a build.
struct Target<'a> {
    source: &'a Source,
    client: &'a registry::Client,
    /// The tags to move, in push order.
    tags: &'a [String],
    src_dir: &'a Path,
    interrupt: &'a Interrupt,
}

/// What the put's action left in the registry, and what the response says
/// about it beyond the image itself.
struct Outcome {
    pushed: Pushed,
    /// The tags already held an equal image and none moved.
    tags_kept: bool,
    /// Metadata only this action has (a layer append's `base_digest`).
    extra: Vec<MetadataField>,
    /// The daemon's version and the build's duration, for a build.
    build: Option<(String, Duration)>,
}

/// Pushes the prebuilt image, appends the layers or builds, as the params
/// say; the pushes without a daemon stop on a signal, the build stops
/// itself (see [`run::build_and_push`]).
async fn act(params: &PutParams, to: &Target<'_>) -> crate::Result<Outcome> {
    let mut extra = Vec::new();
    let mut tags_kept = false;
    let (pushed, build) = match &params.action {
        Action::Push { image } => {
            tracing::info!("pushing {} (no build)", image.display());
            let pushed = tokio::select! {
                pushed = push::push_image_path(to.client, image) => pushed?,
                signal = to.interrupt.wait() => return Err(crate::Error::Interrupted {
                    signal,
                    cleanup: "stopped the push".into(),
                }),
            };
            (pushed, None)
        }
        Action::Merge { images } => {
            tracing::info!(
                "merging {} image(s) into one index (no build)",
                images.len()
            );
            let pushed = tokio::select! {
                pushed = merge_and_push(to.client, images) => pushed?,
                signal = to.interrupt.wait() => return Err(crate::Error::Interrupted {
                    signal,
                    cleanup: "stopped the push".into(),
                }),
            };
            (pushed, None)
        }
        Action::Layers(l) => {
            tracing::info!(
                "appending {} layer(s) to a base image (no build daemon)",
                l.add.len()
            );
            let appended = tokio::select! {
                appended = put::layers::append_and_push(to.source, l, to.client) => appended?,
                signal = to.interrupt.wait() => return Err(crate::Error::Interrupted {
                    signal,
                    cleanup: "stopped the push".into(),
                }),
            };
            extra.push(field("base_digest", appended.base_digest));
            (appended.pushed, None)
        }
        Action::Build(b) => {
            let built = run::build_and_push(
                to.source,
                b,
                &params.daemon,
                to.client,
                to.tags,
                to.src_dir,
                to.interrupt,
            )
            .await?;
            tags_kept = built.tags_kept;
            (built.pushed, Some((built.buildkit_version, built.duration)))
        }
    };
    Ok(Outcome {
        pushed,
        tags_kept,
        extra,
        build,
    })
}

/// What every action ends with, once its image is in the registry by
/// digest: its signatures (with `source.sign`; checked with `source.verify`
/// when both are set), then the tags. A signing failure moves no tag.
/// Returns the signing key's fingerprint when the image was signed.
async fn publish(
    mut outcome: Outcome,
    to: &Target<'_>,
    replicas: &[Replica],
) -> crate::Result<(Outcome, Option<String>)> {
    let pushed = &outcome.pushed;
    let signed_by = match &to.source.sign {
        Some(sign) => Some(sign_pushed(&sign.signer, pushed, to).await.map_err(|e| {
            e.context(format!(
                "signing {}@{} failed; no tag was moved",
                to.source.repository, pushed.digest
            ))
        })?),
        None => None,
    };
    if !replicas.is_empty() {
        outcome = replicate(outcome, to.client, replicas, to.tags).await?;
    } else if !outcome.tags_kept {
        push::move_tags(to.client, &outcome.pushed, to.tags).await?;
    }
    Ok((outcome, signed_by))
}

/// Signs the pushed digest and, for an index, each image in it (as `cosign
/// sign --recursive`), so a verifier that resolves a platform's digest
/// finds a signature too; then checks the new signature with
/// `source.verify`, when set, as check and get will.
async fn sign_pushed(
    signer: &crate::sign::Signer,
    pushed: &Pushed,
    to: &Target<'_>,
) -> crate::Result<String> {
    let digests: Vec<String> = std::iter::once(pushed.digest.clone())
        .chain(pushed.images.iter().cloned())
        .collect();
    let signed = signer.sign(to.client, &digests).await?;
    let key = signer.fingerprint();
    if !signed.added.is_empty() {
        tracing::info!(
            "signed {} with key {key}",
            describe_digests(&signed.added, &pushed.digest)
        );
    }
    if !signed.kept.is_empty() {
        tracing::info!(
            "{} already signed with key {key}",
            describe_digests(&signed.kept, &pushed.digest)
        );
    }
    if let Some(verifier) = &to.source.verify {
        let by = verifier
            .verify(to.client, &to.source.repository, &pushed.digest)
            .await
            .map_err(|e| {
                crate::Error::from(e)
                    .context("checking the new signature with source.verify failed")
            })?;
        tracing::info!("verified the signature of {} with key {by}", pushed.digest);
    }
    Ok(key.to_owned())
}

/// `sha256:… and 2 platform images` for a log line.
fn describe_digests(digests: &[String], top: &str) -> String {
    let children = digests.iter().filter(|d| *d != top).count();
    let has_top = digests.iter().any(|d| d == top);
    match (has_top, children) {
        (true, 0) => top.to_owned(),
        (true, n) => format!("{top} and {n} platform image(s)"),
        (false, n) => format!("{n} platform image(s) of {top}"),
    }
}

impl Outcome {
    /// The one line that says where the tags now point.
    fn log(&self, tags: &[String]) {
        if self.tags_kept {
            tracing::info!(
                "kept {} on {} (unchanged)",
                tags.join(", "),
                self.pushed.digest
            );
        } else {
            tracing::info!("pushed {} as {}", self.pushed.digest, tags.join(", "));
        }
    }

    /// The version `reported` at the pushed digest, and the metadata in a
    /// fixed order: the image's own fields, then the action's, then the
    /// build's, so one pipeline's puts read alike in the UI.
    fn into_response(
        self,
        source: &Source,
        tags: &[String],
        reported: String,
        signed_by: Option<String>,
    ) -> OutResponse {
        let pushed = self.pushed;
        let mut metadata = vec![
            field("repository", source.repository.given.clone()),
            field("tags", tags.join(" ")),
        ];
        if !pushed.platforms.is_empty() {
            metadata.push(field("platforms", pushed.platforms.join(",")));
        }
        if !pushed.attestations.is_empty() {
            metadata.push(field("attestations", pushed.attestations.join(",")));
        }
        if let Some(c) = &pushed.config_digest {
            metadata.push(field("config_digest", c.clone()));
        }
        if let Some(key) = signed_by {
            metadata.push(field("signing_key", key));
        }
        metadata.extend(self.extra);
        if let Some((version, duration)) = self.build {
            metadata.push(field("buildkit_version", version));
            metadata.push(field(
                "build_duration",
                format!("{:.1}s", duration.as_secs_f64()),
            ));
        }
        OutResponse {
            version: Version {
                tag: reported,
                digest: pushed.digest,
            },
            metadata,
        }
    }
}

/// `params.images`: one index over the inputs, pushed by digest.
async fn merge_and_push(
    client: &registry::Client,
    images: &[std::path::PathBuf],
) -> crate::Result<Pushed> {
    let merged = crate::store::merge::merge(images).await?;
    for path in images {
        tracing::info!("  {}", path.display());
    }
    Ok(push::push_store(client, std::sync::Arc::new(merged)).await?)
}

/// The repository's tags; a repository that does not exist yet has none
/// (404 with NAME_UNKNOWN or NOT_FOUND, as registry-image treats it).
async fn existing_tags(client: &registry::Client) -> crate::Result<Vec<String>> {
    match registry::retry_transient("listing tags", || client.list_tags()).await {
        Ok(tags) => Ok(tags),
        Err(e)
            if e.status() == Some(http::StatusCode::NOT_FOUND)
                && e.codes()
                    .first()
                    .is_some_and(|c| c == "NAME_UNKNOWN" || c == "NOT_FOUND") =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(e.into()),
    }
}

fn field(name: &str, value: String) -> MetadataField {
    MetadataField {
        name: name.into(),
        value,
    }
}
