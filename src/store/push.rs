//! Pushing images we hold (a `params.image` path, or what a Docker Engine
//! built) and putting manifests under tags.
//!
//! Every image we push is first an [`ImageStore`] (the same view the
//! loopback registry serves), so one walk pushes single images and indexes
//! alike: blobs first (each skipped when the registry has it), then the
//! manifests by digest. The tags move separately ([`move_tags`]), after
//! whatever must be in place before them (signatures).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use serde_json::Value;

use super::manifest::{DOCKER_MANIFEST_LIST, OCI_INDEX};
use super::{Error, Result};
use super::{ImageStore, ServedManifest};
use crate::oci::attestation::{is_attestation_json, predicate_types};
use crate::oci::{Digest, sha256_digest};
use crate::progress::Transfer;
use crate::registry;

/// What ended up in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Digest of the manifest or index under the tags.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Config digest (image ID) of a single image; of the first child for an index.
    pub config_digest: Option<String>,
    /// `os/arch[/variant]` of each image.
    pub platforms: Vec<String>,
    /// What the index's attestation manifests attest (`provenance`, `sbom`,
    /// or another in-toto predicate type), each once.
    pub attestations: Vec<String>,
    /// Digests of the index's image manifests (attestation manifests
    /// left out); empty for a single image.
    pub images: Vec<String>,
    /// The top manifest itself, for [`move_tags`].
    pub manifest: ServedManifest,
}

/// Blobs pushed at once: enough to overlap round trips, few enough for
/// small registries.
const PARALLEL_BLOBS: usize = 4;

fn is_index(media_type: &str, doc: &Value) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST || doc.get("manifests").is_some()
}

fn parse(m: &ServedManifest) -> Result<Value> {
    serde_json::from_slice(&m.bytes).map_err(|e| Error::BadManifest {
        digest: m.digest.clone(),
        problem: e.to_string(),
    })
}

/// `(digest, size)` of a descriptor.
fn descriptor(v: &Value) -> Option<(String, u64)> {
    Some((
        v.get("digest")?.as_str()?.to_string(),
        v.get("size")?.as_u64()?,
    ))
}

fn platform_text(p: &Value) -> Option<String> {
    let os = p.get("os")?.as_str()?;
    let arch = p.get("architecture")?.as_str()?;
    Some(match p.get("variant").and_then(Value::as_str) {
        Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
        _ => format!("{os}/{arch}"),
    })
}

/// Pushes everything in `store`, the top manifest by digest; no tag moves.
pub async fn push_store(client: &registry::Client, store: Arc<dyn ImageStore>) -> Result<Pushed> {
    let top = store.top().clone();
    let top_doc = parse(&top)?;
    let (images, attestations) = if is_index(&top.media_type, &top_doc) {
        index_children(store.as_ref(), &top, &top_doc)?
    } else {
        (vec![top.clone()], Vec::new())
    };

    let blobs = Blobs::of(store.as_ref(), &images)?;
    let unsent = blobs.unsent.clone();
    let unsent_by = |digest: &str| unsent.get(digest).map(Vec::as_slice).unwrap_or_default();
    blobs.push(client, &store).await?;

    if images.len() > 1 || images.first().map(|m| &m.digest) != Some(&top.digest) {
        for m in &images {
            put_manifest(client, &m.digest, m, unsent_by(&m.digest)).await?;
        }
    }
    put_manifest(client, &top.digest, &top, unsent_by(&top.digest)).await?;
    let description = describe(&images, &attestations, |digest| {
        let store = store.clone();
        async move {
            let mut reader = store.open_blob(&digest).await.ok()?;
            let mut buf = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut buf)
                .await
                .ok()?;
            serde_json::from_slice::<Value>(&buf).ok()
        }
    })
    .await?;
    let images = index_images(&top, &images, &attestations);
    Ok(Pushed {
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        config_digest: description.config_digest,
        platforms: description.platforms,
        attestations: description.attestations,
        images,
        manifest: top,
    })
}

/// The image manifests of index `top` (`children` less `attestations`);
/// none for a single image.
fn index_images(
    top: &ServedManifest,
    children: &[ServedManifest],
    attestations: &[String],
) -> Vec<String> {
    children
        .iter()
        .map(|m| m.digest.clone())
        .filter(|d| *d != top.digest && !attestations.contains(d))
        .collect()
}

/// Puts the pushed top manifest under each of `tags`, in order: the last
/// step of a put.
pub async fn move_tags(client: &registry::Client, pushed: &Pushed, tags: &[String]) -> Result<()> {
    for tag in tags {
        put_manifest(client, tag, &pushed.manifest, &[]).await?;
    }
    Ok(())
}

/// The child manifests of index `top` (each once, and not without bound),
/// and the digests of those the index marks as attestations. A child the
/// store lacks fails here, before any blob is pushed.
fn index_children(
    store: &dyn ImageStore,
    top: &ServedManifest,
    top_doc: &Value,
) -> Result<(Vec<ServedManifest>, Vec<String>)> {
    let mut images: Vec<ServedManifest> = Vec::new();
    let mut attestations = Vec::new();
    for child in top_doc["manifests"].as_array().into_iter().flatten() {
        let Some((digest, _)) = descriptor(child) else {
            continue;
        };
        // Each child once, and not without bound.
        if images.iter().any(|m| m.digest == digest) {
            continue;
        }
        if is_attestation_json(child) {
            attestations.push(digest.clone());
        }
        if images.len() >= crate::image::manifest::MAX_MANIFESTS {
            return Err(crate::image::manifest::too_many_manifests(&top.digest).into());
        }
        match store.manifest(&digest) {
            Some(m) => images.push(m.clone()),
            None => {
                return Err(Error::BadManifest {
                    digest: top.digest.clone(),
                    problem: format!("child manifest {digest} is not in the image"),
                });
            }
        }
    }
    Ok((images, attestations))
}

/// The blobs of a push, deduplicated across images, in the images' order.
struct Blobs {
    /// Each blob to push with its size.
    blobs: Vec<(Digest, u64)>,
    /// Which of them are configs: small, and not shown as layer progress.
    configs: Vec<Digest>,
    /// Per manifest digest, the blobs it names that the store lacks
    /// (foreign or non-distributable layers), which are not sent.
    unsent: BTreeMap<String, Vec<String>>,
}

impl Blobs {
    /// The configs and layers `images` name. A blob the store lacks
    /// (foreign or non-distributable layers) is skipped with a warning.
    fn of(store: &dyn ImageStore, images: &[ServedManifest]) -> Result<Blobs> {
        let mut blobs: Vec<(Digest, u64)> = Vec::new();
        let mut configs: Vec<Digest> = Vec::new();
        let mut unsent: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in images {
            let doc = parse(m)?;
            let config = doc.get("config").and_then(descriptor);
            if let Some((d, _)) = &config
                && let Ok(d) = Digest::parse(d)
            {
                configs.push(d);
            }
            let layers = doc["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(descriptor);
            for (digest, size) in config.into_iter().chain(layers) {
                if store.blob_size(&digest).is_none() {
                    // Foreign / non-distributable layers live elsewhere.
                    tracing::warn!(
                        "blob {digest} of {} is not in the image; not pushing it",
                        m.digest
                    );
                    unsent.entry(m.digest.clone()).or_default().push(digest);
                    continue;
                }
                if !blobs.iter().any(|(d, _)| *d == digest) {
                    blobs.push((Digest::parse(&digest).map_err(registry::Error::from)?, size));
                }
            }
        }
        Ok(Blobs {
            blobs,
            configs,
            unsent,
        })
    }

    /// Pushes every blob the registry lacks, [`PARALLEL_BLOBS`] at once,
    /// with layer progress on stderr; each blob is retried on its own, so
    /// one transient failure does not resend the others.
    async fn push(self, client: &registry::Client, store: &Arc<dyn ImageStore>) -> Result<()> {
        let Blobs { blobs, configs, .. } = self;
        // Layer progress on stderr (configs are small and not layers).
        let transfer = Transfer::new("pushing", "pushed");
        for (digest, size) in &blobs {
            if !configs.contains(digest) {
                transfer.expect(digest.as_str(), *size);
            }
        }
        futures::stream::iter(blobs.into_iter().map(|(digest, size)| {
            let store = store.clone();
            let transfer = transfer.clone();
            let is_layer = !configs.contains(&digest);
            async move {
                registry::retry_transient(&format!("pushing blob {digest}"), || {
                    let store = store.clone();
                    let digest = digest.clone();
                    let transfer = transfer.clone();
                    async move {
                        if client.blob_exists(&digest).await? {
                            if is_layer {
                                transfer.skipped(digest.as_str(), size);
                            }
                            return Ok::<(), Error>(());
                        }
                        let reader =
                            store
                                .open_blob(&digest)
                                .await
                                .map_err(|e| Error::ReadBlob {
                                    digest: digest.to_string(),
                                    source: e,
                                })?;
                        if is_layer {
                            let reader = transfer.reader(digest.as_str(), size, reader);
                            client.upload_blob(&digest, size, reader).await?;
                            // The upload stops after `size` bytes, before the
                            // reader sees its EOF.
                            transfer.finish(digest.as_str());
                        } else {
                            client.upload_blob(&digest, size, reader).await?;
                        }
                        Ok(())
                    }
                })
                .await
            }
        }))
        .buffer_unordered(PARALLEL_BLOBS)
        .try_collect::<Vec<()>>()
        .await?;
        transfer.done();
        Ok(())
    }
}

/// How many times a manifest PUT is tried: a registry that keeps refusing
/// one with a 5xx is more likely refusing it for good than down, and the
/// blobs it names are already there.
const MANIFEST_ATTEMPTS: u32 = 5;

/// Puts a manifest under `reference` and checks the registry stored the
/// bytes we sent (the digest is what `check` and skopeo will see).
/// `unsent` are the blobs it names that this push did not send: a refusal
/// is then taken as final, since sending the manifest again cannot make
/// them appear.
async fn put_manifest(
    client: &registry::Client,
    reference: &str,
    m: &ServedManifest,
    unsent: &[String],
) -> Result<()> {
    let attempts = if unsent.is_empty() {
        MANIFEST_ATTEMPTS
    } else {
        1
    };
    let pushed = registry::retry_transient_at_most(
        &format!("pushing manifest {reference}"),
        attempts,
        || client.push_manifest(reference, &m.media_type, m.bytes.clone()),
    )
    .await;
    let got = match pushed {
        Ok(got) => got,
        Err(source @ registry::Error::Status { .. }) if !unsent.is_empty() => {
            return Err(Error::UnsentBlobs {
                reference: reference.to_owned(),
                blobs: unsent.join(", "),
                source: Box::new(source),
            });
        }
        Err(e) => return Err(e.into()),
    };
    if got != m.digest {
        return Err(Error::DigestMismatch {
            reference: reference.into(),
            expected: m.digest.clone(),
            got: got.into_string(),
        });
    }
    Ok(())
}

/// What [`describe`] finds in the pushed manifests.
struct Description {
    /// The first image's config digest.
    config_digest: Option<String>,
    /// Each image's platform, once.
    platforms: Vec<String>,
    /// [`attestation_kind`] of each attestation layer, once.
    attestations: Vec<String>,
}

/// Config digest, platforms and attestations of what is being pushed.
/// `attestations` are the digests the index marks as attestation
/// manifests: they are not images, so their `unknown/unknown` config is
/// neither a platform nor the image's ID.
async fn describe<F, Fut>(
    images: &[ServedManifest],
    attestations: &[String],
    config: F,
) -> Result<Description>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let mut out = Description {
        config_digest: None,
        platforms: Vec::new(),
        attestations: Vec::new(),
    };
    for m in images {
        let doc = parse(m)?;
        if attestations.contains(&m.digest) {
            for kind in predicate_types(&doc).iter().map(|t| attestation_kind(t)) {
                if !out.attestations.contains(&kind) {
                    out.attestations.push(kind);
                }
            }
            continue;
        }
        let Some((digest, _)) = doc.get("config").and_then(descriptor) else {
            continue;
        };
        if out.config_digest.is_none() {
            out.config_digest = Some(digest.clone());
        }
        // An index's own platform fields may be absent (umoci, skopeo): the
        // configs say it for sure.
        if let Some(cfg) = config(digest).await
            && let Some(p) = platform_text(&cfg)
            && !out.platforms.contains(&p)
        {
            out.platforms.push(p);
        }
    }
    Ok(out)
}

/// A short name for an in-toto predicate type: `provenance` for SLSA
/// provenance, `sbom` for SPDX, else the type itself.
fn attestation_kind(predicate_type: &str) -> String {
    if predicate_type.starts_with("https://slsa.dev/provenance/") {
        "provenance".into()
    } else if predicate_type.starts_with("https://spdx.dev/")
        || predicate_type.starts_with("https://cyclonedx.org/")
    {
        "sbom".into()
    } else {
        predicate_type.into()
    }
}

/// After BuildKit pushed by digest: what is at `digest`, read back. Each
/// attestation kind in `required` (`sbom`, `provenance`) must be in the
/// pushed index, else this fails (and no tag moves).
pub async fn describe_pushed(
    client: &registry::Client,
    digest: &str,
    required: &[&str],
) -> Result<Pushed> {
    let manifest = registry::retry_transient(&format!("fetching manifest {digest}"), || {
        client.fetch_manifest(digest)
    })
    .await?;
    let top = ServedManifest {
        media_type: manifest.media_type.clone(),
        digest: sha256_digest(&manifest.bytes).into_string(),
        bytes: manifest.bytes.clone(),
    };
    if top.digest != digest {
        return Err(Error::DigestMismatch {
            reference: digest.into(),
            expected: digest.into(),
            got: top.digest,
        });
    }
    let top_doc = parse(&top)?;
    let mut images = Vec::new();
    let mut attestations = Vec::new();
    if is_index(&top.media_type, &top_doc) {
        for child in top_doc["manifests"].as_array().into_iter().flatten() {
            let Some((d, _)) = descriptor(child) else {
                continue;
            };
            if is_attestation_json(child) {
                attestations.push(d.clone());
            }
            let m = registry::retry_transient(&format!("fetching manifest {d}"), || {
                client.fetch_manifest(&d)
            })
            .await?;
            images.push(ServedManifest {
                media_type: m.media_type,
                digest: m.digest.into_string(),
                bytes: m.bytes,
            });
        }
    } else {
        images.push(top.clone());
    }
    let description = describe(&images, &attestations, |d| async move {
        let blob = client.fetch_blob(&Digest::parse(&d).ok()?).await.ok()?;
        serde_json::from_slice::<Value>(&blob).ok()
    })
    .await?;
    if let Some(kind) = required
        .iter()
        .find(|k| !description.attestations.iter().any(|a| a == *k))
    {
        return Err(Error::MissingAttestation {
            kind: (*kind).to_string(),
            digest: top.digest,
            found: description.attestations.join(", "),
        });
    }
    let images = index_images(&top, &images, &attestations);
    Ok(Pushed {
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        config_digest: description.config_digest,
        platforms: description.platforms,
        attestations: description.attestations,
        images,
        manifest: top,
    })
}

/// `params.image`: a docker-save tarball (a file) or an OCI layout (a
/// directory), pushed by digest.
pub async fn push_image_path(client: &registry::Client, path: &Path) -> Result<Pushed> {
    let store = super::prebuilt::for_push(path, &Default::default()).await?;
    push_store(client, store).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Access;
    use crate::registry::test_registry::TestRegistryExt;
    use crate::store::{MemoryImage, OpenBlob};
    use bytes::Bytes;
    use std::collections::BTreeMap;
    use std::process::Command;
    use test_support::{registry, run_tool, umoci_layout, unique};

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    crate::registry::test_registry::needs_test_registry! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_docker_save_tarball_lands_with_the_digest_skopeo_sees() {
            crate::tls::install_crypto_provider();
            let reg = registry::tls_auth();
            let repo = unique("pushed");
            let dir = tempfile::tempdir().unwrap();
            let layout = umoci_layout(dir.path(), "t", "hello from a tarball");
            let tar = dir.path().join("image.tar");
            run_tool(
                Command::new("skopeo")
                    .arg("copy")
                    .arg(format!("oci:{}:t", layout.display()))
                    .arg(format!("docker-archive:{}:x:latest", tar.display())),
            );
            let client = reg.client(&repo, Access::Push);
            let pushed = push_image_path(&client, &tar).await.unwrap();
            move_tags(&client, &pushed, &tags(&["1.0", "latest"]))
                .await
                .unwrap();
            for tag in ["1.0", "latest"] {
                assert_eq!(
                    sha256_digest(&reg.inspect_raw(&format!("{repo}:{tag}"))),
                    pushed.digest
                );
            }
            assert_eq!(pushed.platforms.len(), 1);
            assert!(pushed.config_digest.is_some());
            // Again: every blob is already there; same digest.
            let again = push_image_path(&client, &tar).await.unwrap();
            assert_eq!(again.digest, pushed.digest);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(all(have_docker_registry, have_skopeo, have_umoci)),
        ignore = "needs docker-registry, skopeo and umoci on PATH"
    )]
    async fn describe_pushed_then_move_tags_puts_an_existing_manifest_under_tags() {
        crate::tls::install_crypto_provider();
        let reg = registry::plain();
        let repo = unique("bd");
        let dir = tempfile::tempdir().unwrap();
        let layout = umoci_layout(dir.path(), "t", "by digest");
        reg.push(
            &format!("oci:{}:t", layout.display()),
            &repo,
            "untracked",
            false,
        );
        let digest = sha256_digest(&reg.inspect_raw(&format!("{repo}:untracked")));
        let client = reg.client(&repo, Access::Push);
        let pushed = describe_pushed(&client, &digest, &[]).await.unwrap();
        move_tags(&client, &pushed, &tags(&["a", "b"]))
            .await
            .unwrap();
        assert_eq!(pushed.digest, digest);
        assert_eq!(
            sha256_digest(&reg.inspect_raw(&format!("{repo}:b"))),
            digest
        );
    }

    /// An image whose layer cannot be read: the push fails before any tag.
    struct Broken(MemoryImage);

    impl ImageStore for Broken {
        fn top(&self) -> &ServedManifest {
            self.0.top()
        }
        fn manifest(&self, digest: &str) -> Option<&ServedManifest> {
            self.0.manifest(digest)
        }
        fn blob_size(&self, digest: &str) -> Option<u64> {
            self.0.blob_size(digest)
        }
        fn open_blob(&self, digest: &str) -> OpenBlob {
            if self.0.blobs.get(digest).is_some_and(|b| b.len() > 100) {
                return Box::pin(async { Err(std::io::Error::other("disk on fire")) });
            }
            self.0.open_blob(digest)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(have_docker_registry), ignore = "needs docker-registry on PATH")]
    async fn a_failed_push_moves_no_tag() {
        crate::tls::install_crypto_provider();
        let reg = registry::plain();
        let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
        let layer = Bytes::from(vec![1u8; 1000]);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256_digest(&layer), "size": layer.len()}],
        })
        .to_string();
        let image = MemoryImage {
            top: ServedManifest {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: sha256_digest(manifest.as_bytes()).into_string(),
                bytes: Bytes::from(manifest),
            },
            children: Vec::new(),
            blobs: BTreeMap::from([
                (sha256_digest(&config).into_string(), config),
                (sha256_digest(&layer).into_string(), layer),
            ]),
        };
        let client = reg.client(&unique("broken"), Access::Push);
        let err = push_store(&client, Arc::new(Broken(image)))
            .await
            .unwrap_err();
        assert!(
            crate::error::chain(&err).contains("disk on fire"),
            "{}",
            crate::error::chain(&err)
        );
        assert_eq!(client.resolve_tag("stable").await.unwrap(), None);
    }

    #[tokio::test]
    async fn attestation_manifests_are_no_platform_and_no_image_id() {
        let served = |doc: Value| {
            let bytes = Bytes::from(serde_json::to_vec(&doc).unwrap());
            ServedManifest {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: sha256_digest(&bytes).into_string(),
                bytes,
            }
        };
        let image = served(serde_json::json!({
            "config": {"digest": "sha256:image-config", "size": 2},
            "layers": [{"digest": "sha256:layer", "size": 3}]
        }));
        // As BuildKit writes it: listed after the image, its config saying
        // unknown/unknown, its layers in-toto statements.
        let attestation = served(serde_json::json!({
            "config": {"digest": "sha256:att-config", "size": 2},
            "layers": [{"digest": "sha256:statement", "size": 3, "annotations": {
                "in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}]
        }));
        let configs = |d: String| async move {
            Some(match d.as_str() {
                "sha256:image-config" => {
                    serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"})
                }
                _ => serde_json::json!({"os": "unknown", "architecture": "unknown"}),
            })
        };
        let d = describe(
            &[attestation.clone(), image.clone()],
            std::slice::from_ref(&attestation.digest),
            configs,
        )
        .await
        .unwrap();
        assert_eq!(d.config_digest.as_deref(), Some("sha256:image-config"));
        assert_eq!(d.platforms, ["linux/arm64/v8"]);
        assert_eq!(d.attestations, ["provenance"]);
        // Unmarked, the same manifest would count as a platform.
        let d = describe(&[image, attestation], &[], configs).await.unwrap();
        assert_eq!(d.platforms, ["linux/arm64/v8", "unknown/unknown"]);
    }
}
