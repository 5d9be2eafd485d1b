//! Copying an image already in one repository (the put's own) to more
//! repositories (`source.replicate_to`), then moving the tags in all of
//! them.
//!
//! The two halves are apart on purpose: [`copy`] puts every blob and
//! manifest into every replica, by digest, and only when all of them have
//! the whole image does [`move_tags`] put the top manifest under the tags,
//! first in the main repository, then in each replica. So a replica that
//! fails (refused credentials, a full disk) fails the put with no tag moved
//! anywhere.
//!
//! Each blob goes to each replica once: it is skipped when the replica has
//! it, mounted (cross-repository mount, no bytes sent) when a repository
//! that already has it is on the same registry, else streamed from the main
//! repository, verified on the way.

use futures::{StreamExt, TryStreamExt};
use serde_json::Value;

use super::{Error, Result};
use crate::oci::Digest;
use crate::registry::{self, Client};

/// Blobs copied at once per replica.
const PARALLEL_BLOBS: usize = 4;

/// One replica: its client, and how messages name it.
pub struct Replica {
    /// `source.replicate_to[i].repository` as written.
    pub name: String,
    /// A push client for it.
    pub client: Client,
}

/// The top manifest of the copied image, to put under the tags.
#[derive(Debug, Clone)]
pub struct Copied {
    /// Its exact bytes, media type and digest.
    pub top: registry::Manifest,
}

/// Copies image `digest` (a manifest or an index, with its children) from
/// `from` into every replica, by digest only. Tags move nowhere.
pub async fn copy(from: &Client, digest: &str, replicas: &[Replica]) -> Result<Copied> {
    let top = fetch(from, digest).await?;
    let top_doc = json(&top)?;
    let mut children = Vec::new();
    for d in top_doc["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["digest"].as_str())
    {
        if children
            .iter()
            .all(|m: &registry::Manifest| m.digest.as_str() != d)
        {
            children.push(fetch(from, d).await?);
        }
    }
    let images: Vec<&registry::Manifest> = if children.is_empty() {
        vec![&top]
    } else {
        children.iter().collect()
    };
    let mut blobs: Vec<(Digest, u64)> = Vec::new();
    for m in &images {
        for (d, size) in blob_descriptors(&json(m)?) {
            let d = Digest::parse(&d).map_err(registry::Error::from)?;
            if !blobs.iter().any(|(b, _)| *b == d) {
                blobs.push((d, size));
            }
        }
    }
    // Repositories holding the whole image, as mount sources.
    let mut holders: Vec<&Client> = vec![from];
    for replica in replicas {
        let to = &replica.client;
        let mount_from = holders
            .iter()
            .find(|h| h.repository().registry == to.repository().registry)
            .map(|h| h.repository().path.clone());
        copy_blobs(from, to, mount_from.as_deref(), &blobs)
            .await
            .map_err(|e| e.replica(&replica.name))?;
        for m in children.iter().chain(std::iter::once(&top)) {
            put(to, m.digest.as_str(), m)
                .await
                .map_err(|e| e.replica(&replica.name))?;
        }
        tracing::info!("copied {} to {}", top.digest, replica.name);
        holders.push(to);
    }
    Ok(Copied { top })
}

/// Puts `copied`'s top manifest under each tag in `main`, then in each
/// replica, in order.
pub async fn move_tags(
    main: &Client,
    replicas: &[Replica],
    copied: &Copied,
    tags: &[String],
) -> Result<()> {
    for tag in tags {
        put(main, tag, &copied.top).await?;
    }
    for replica in replicas {
        for tag in tags {
            put(&replica.client, tag, &copied.top)
                .await
                .map_err(|e| e.replica(&replica.name))?;
        }
    }
    Ok(())
}

/// Each blob `to` lacks: mounted from `mount_from` (a repository path on
/// `to`'s registry that has it) when given and accepted, else streamed from
/// `from`.
async fn copy_blobs(
    from: &Client,
    to: &Client,
    mount_from: Option<&str>,
    blobs: &[(Digest, u64)],
) -> Result<()> {
    futures::stream::iter(blobs.iter().map(|(digest, size)| async move {
        registry::retry_transient(&format!("copying blob {digest}"), || async move {
            if to.blob_exists(digest).await? {
                return Ok::<(), Error>(());
            }
            if let Some(path) = mount_from
                && to.mount_blob(digest, path).await?
            {
                tracing::debug!("{digest}: mounted from {path}");
                return Ok(());
            }
            let reader = from.blob_reader(digest, *size).await?;
            to.upload_blob(digest, *size, reader).await?;
            Ok(())
        })
        .await
    }))
    .buffer_unordered(PARALLEL_BLOBS)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

async fn fetch(client: &Client, reference: &str) -> Result<registry::Manifest> {
    Ok(
        registry::retry_transient(&format!("fetching manifest {reference}"), || {
            client.fetch_manifest(reference)
        })
        .await?,
    )
}

/// Puts `m` under `reference` and checks the registry kept its digest.
async fn put(client: &Client, reference: &str, m: &registry::Manifest) -> Result<()> {
    let got = registry::retry_transient(&format!("pushing manifest {reference}"), || {
        client.push_manifest(reference, &m.media_type, m.bytes.clone())
    })
    .await?;
    if got != m.digest {
        return Err(Error::DigestMismatch {
            reference: reference.into(),
            expected: m.digest.to_string(),
            got: got.into_string(),
        });
    }
    Ok(())
}

fn json(m: &registry::Manifest) -> Result<Value> {
    serde_json::from_slice(&m.bytes).map_err(|e| Error::BadManifest {
        digest: m.digest.to_string(),
        problem: e.to_string(),
    })
}

/// `(digest, size)` of a manifest's config and layers.
fn blob_descriptors(doc: &Value) -> Vec<(String, u64)> {
    let one = |v: &Value| Some((v["digest"].as_str()?.to_string(), v["size"].as_u64()?));
    doc.get("config")
        .and_then(one)
        .into_iter()
        .chain(
            doc["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(one),
        )
        .collect()
}
