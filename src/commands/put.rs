//! `out`: build on put (or push a prebuilt image, or append layers to a
//! base image), then move the tags.
//!
//! Order matters for users: params and tags are validated before any daemon
//! starts or any byte is pushed, and the manifest goes under the tags last,
//! so a failed build or push leaves every tag where it was.

use std::path::Path;

use crate::concourse::{MetadataField, OutRequest, OutResponse, Version};
use crate::config::put::{Action, Env, PutParams};
use crate::process::Interrupt;
use crate::put::{self, run, tags};
use crate::registry::{self, Access};
use crate::store::push;

/// Runs `out` for `req` with the put's inputs under `src_dir`. SIGTERM or
/// SIGINT (`interrupt`) cancels the build and shuts the embedded daemon
/// down (see [`run::build_and_push`]), or stops a push (no tag is moved
/// after the signal).
pub async fn run(
    req: OutRequest,
    src_dir: &Path,
    interrupt: &Interrupt,
) -> crate::Result<OutResponse> {
    let lookup = |name: &str| std::env::var(name).ok();
    let params = PutParams::from_value(
        &req.params,
        &Env {
            src_dir,
            var: &lookup,
        },
    )
    .map_err(put::Error::from)?;
    for note in &params.notes {
        tracing::warn!("{note}");
    }
    let source = &req.source;
    let client = super::origin_client(source, Access::Push)?;

    let existing = if tags::needs_tag_list(&params.tags) {
        existing_tags(&client).await?
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

    // Our own client reaches the registry first (ping and token, as check
    // does): a TLS or credential problem is then reported as check reports
    // it (`UnknownIssuer` and the `ca_certs` hint), not as whatever the
    // daemon's resolver makes of it (BuildKit falls back to plain HTTP on
    // loopback hosts and reports a `400 Bad Request` from `http://...`).
    registry::retry_transient("reaching the registry", || client.ping())
        .await
        .map_err(|e| {
            crate::Error::from(e).context(format!(
                "reaching {} before the build failed",
                source.repository
            ))
        })?;

    if let Some(signal) = interrupt.fired() {
        return Err(crate::Error::Interrupted {
            signal,
            cleanup: "nothing was built or pushed".into(),
        });
    }

    let mut extra = Vec::new();
    let mut tags_kept = false;
    let (pushed, buildkit_version) = match &params.action {
        Action::Push { image } => {
            tracing::info!("pushing {} (no build)", image.display());
            let pushed = tokio::select! {
                pushed = push::push_image_path(&client, image, &plan.tags) => pushed?,
                signal = interrupt.wait() => return Err(crate::Error::Interrupted {
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
                appended = put::layers::append_and_push(source, l, &client, &plan.tags) => appended?,
                signal = interrupt.wait() => return Err(crate::Error::Interrupted {
                    signal,
                    cleanup: "stopped the push".into(),
                }),
            };
            extra.push(field("base_digest", appended.base_digest));
            (appended.pushed, None)
        }
        Action::Build(b) => {
            let built = run::build_and_push(
                source,
                b,
                &params.daemon,
                &client,
                &plan.tags,
                src_dir,
                interrupt,
            )
            .await?;
            tags_kept = built.tags_kept;
            (built.pushed, Some((built.buildkit_version, built.duration)))
        }
    };
    if tags_kept {
        tracing::info!(
            "kept {} on {} (unchanged)",
            plan.tags.join(", "),
            pushed.digest
        );
    } else {
        tracing::info!("pushed {} as {}", pushed.digest, plan.tags.join(", "));
    }

    let mut metadata = vec![
        field("repository", source.repository.given.clone()),
        field("tags", plan.tags.join(" ")),
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
    metadata.extend(extra);
    if let Some((version, duration)) = buildkit_version {
        metadata.push(field("buildkit_version", version));
        metadata.push(field(
            "build_duration",
            format!("{:.1}s", duration.as_secs_f64()),
        ));
    }
    Ok(OutResponse {
        version: Version {
            tag: reported,
            digest: pushed.digest,
        },
        metadata,
    })
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
