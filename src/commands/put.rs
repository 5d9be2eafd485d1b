//! `out`: build on put (or push a prebuilt image, or append layers to a
//! base image), then move the tags.
//!
//! Order matters for users: params and tags are validated before any daemon
//! starts or any byte is pushed, and the manifest goes under the tags last,
//! so a failed build or push leaves every tag where it was.

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
        return Ok(outcome.into_response(source, &plan.tags, reported));
    }

    if let Some(signal) = interrupt.fired() {
        return Err(crate::Error::Interrupted {
            signal,
            cleanup: "nothing was built or pushed".into(),
        });
    }

    // With replicas the action pushes by digest only: the tags move once
    // every repository has the image.
    let target = Target {
        source,
        client: &client,
        tags: if replicas.is_empty() { &plan.tags } else { &[] },
        src_dir,
        interrupt,
    };
    let mut outcome = act(&params, &target).await?;
    if !replicas.is_empty() {
        outcome = tokio::select! {
            replicated = replicate(outcome, &client, &replicas, &plan.tags) => replicated?,
            signal = interrupt.wait() => return Err(crate::Error::Interrupted {
                signal,
                cleanup: "stopped copying to the replicas; no tag was moved".into(),
            }),
        };
    }
    outcome.log(&plan.tags);
    Ok(outcome.into_response(source, &plan.tags, reported))
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
    if let Some(old) = put::unchanged::equivalent_index(client, &outcome.pushed.digest, tags).await
    {
        tracing::info!(
            "the images are unchanged since {old}: the tags stay on it (the new index {} is left untagged)",
            outcome.pushed.digest
        );
        outcome.pushed = push::tag_pushed(client, &old, &[], &[]).await?;
        outcome.tags_kept = true;
    }
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
                pushed = push::push_image_path(to.client, image, to.tags) => pushed?,
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
                pushed = merge_and_push(to.client, images, to.tags) => pushed?,
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
                appended = put::layers::append_and_push(to.source, l, to.client, to.tags) => appended?,
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
    fn into_response(self, source: &Source, tags: &[String], reported: String) -> OutResponse {
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

/// `params.images`: one index over the inputs, pushed under `tags`.
async fn merge_and_push(
    client: &registry::Client,
    images: &[std::path::PathBuf],
    tags: &[String],
) -> crate::Result<Pushed> {
    let merged = crate::store::merge::merge(images).await?;
    for path in images {
        tracing::info!("  {}", path.display());
    }
    Ok(push::push_store(client, std::sync::Arc::new(merged), tags).await?)
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
