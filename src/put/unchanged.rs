//! An unchanged image keeps its version, attestations or not.
//!
//! A provenance attestation records its build's invocation: an ID and the
//! start and finish times. So a rebuild whose every step was cached, which
//! pushes byte-identical images, still pushes a new index, and Concourse
//! would see a new version (and trigger everything downstream) on every
//! put, where docker-image reported the same digest. BuildKit's view is
//! that provenance is never reproducible (moby/buildkit#3421), and it is
//! right about the statement; but the old statement is just as true of the
//! same images.
//!
//! So before moving tags we compare: when every tag already holds one
//! index whose images are the very images just built, and whose
//! attestations say the same apart from the invocation's ID and times (and
//! an SBOM's document ID and creation time: a scanner names each document
//! it writes anew, syft with a random UUID), the tags stay and that index is
//! the version. Anything else (a new image, a new platform, `provenance:
//! max` instead of `min`, other build args, an SBOM that lists something
//! else) moves the tags as usual. The comparison never fails a
//! put: when it cannot be made, the tags move.

use serde_json::Value;

use crate::oci::Digest;
use crate::oci::attestation::{REFERENCE_DIGEST, is_attestation_json};

/// Where an SBOM names and dates its document, by predicate type: SPDX's
/// `documentNamespace` (unique per document, by the spec) and
/// `creationInfo.created`, CycloneDX's `serialNumber` and
/// `metadata.timestamp`. Paths inside the statement's `predicate`.
const SBOM_VOLATILE: &[(&str, &[&[&str]])] = &[
    (
        "https://spdx.dev/Document",
        &[&["documentNamespace"], &["creationInfo", "created"]],
    ),
    (
        "https://cyclonedx.org/bom",
        &[&["serialNumber"], &["metadata", "timestamp"]],
    ),
];
use crate::registry;

/// Keys of a provenance statement that differ between two invocations of
/// the same build: SLSA v0.2's `metadata.buildInvocationID`,
/// `buildStartedOn`, `buildFinishedOn`, and v1's `runDetails.metadata`
/// `invocationId` (BuildKit's spelling; the spec's is `invocationID`),
/// `startedOn`, `finishedOn`. With `source_date_epoch` BuildKit leaves the
/// times out, and only the ID differs.
const VOLATILE: &[&str] = &[
    "buildInvocationID",
    "buildStartedOn",
    "buildFinishedOn",
    "invocationId",
    "invocationID",
    "startedOn",
    "finishedOn",
];

/// The index every tag already holds, when it is `new`'s equal (see the
/// module doc); `None` when the tags must move.
pub async fn equivalent_index(
    client: &registry::Client,
    new: &str,
    tags: &[String],
) -> Option<String> {
    match find(client, new, tags).await {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(
                "comparing with the tagged index: {}",
                crate::oci::error_chain(&e)
            );
            None
        }
    }
}

async fn find(
    client: &registry::Client,
    new: &str,
    tags: &[String],
) -> registry::Result<Option<String>> {
    let new_index = json(&client.fetch_manifest(new).await?.bytes);
    if !has_attestations(&new_index) {
        // Without attestations a rebuild reproduces the digest itself.
        return Ok(None);
    }
    // What the tags hold now: one manifest, the same under every tag.
    let mut old: Option<registry::Manifest> = None;
    for tag in tags {
        let current = match client.fetch_manifest(tag).await {
            Ok(m) => m,
            Err(e) if e.status() == Some(http::StatusCode::NOT_FOUND) => return Ok(None),
            Err(e) => return Err(e),
        };
        match &old {
            Some(m) if m.digest != current.digest => return Ok(None),
            Some(_) => {}
            None => old = Some(current),
        }
    }
    let Some(old) = old else {
        return Ok(None);
    };
    let old_index = json(&old.bytes);
    let old = old.digest;
    if old.as_str() == new {
        return Ok(None);
    }
    if images(&old_index) != images(&new_index) || images(&new_index).is_empty() {
        tracing::debug!("tags move: the images differ from {old}'s");
        return Ok(None);
    }
    let (old_att, new_att) = (
        statements(client, &old_index).await?,
        statements(client, &new_index).await?,
    );
    if old_att != new_att {
        tracing::debug!("tags move: the attestations differ from {old}'s");
        return Ok(None);
    }
    Ok(Some(old.into_string()))
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

fn entries(index: &Value) -> impl Iterator<Item = &Value> {
    index
        .get("manifests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn has_attestations(index: &Value) -> bool {
    entries(index).any(is_attestation_json)
}

/// The image entries as they stand in the index (digest, platform, media
/// type, annotations), in order.
fn images(index: &Value) -> Vec<&Value> {
    entries(index).filter(|e| !is_attestation_json(e)).collect()
}

/// Each attestation entry's subject and its statements without the
/// volatile keys, in index order.
async fn statements(
    client: &registry::Client,
    index: &Value,
) -> registry::Result<Vec<(String, Vec<Value>)>> {
    let mut out = Vec::new();
    for entry in entries(index).filter(|e| is_attestation_json(e)) {
        let subject = entry
            .get("annotations")
            .and_then(|a| a.get(REFERENCE_DIGEST))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let digest = entry
            .get("digest")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let manifest = json(&client.fetch_manifest(digest).await?.bytes);
        let mut docs = Vec::new();
        for layer in manifest
            .get("layers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let digest = Digest::parse(
                layer
                    .get("digest")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            )?;
            let mut statement = json(&client.fetch_blob(&digest).await?);
            strip_volatile(&mut statement);
            strip_sbom_identity(&mut statement);
            docs.push(statement);
        }
        out.push((subject, docs));
    }
    Ok(out)
}

/// Removes [`VOLATILE`] keys at any depth.
fn strip_volatile(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !VOLATILE.contains(&k.as_str()));
            map.values_mut().for_each(strip_volatile);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_volatile),
        _ => {}
    }
}

/// Removes [`SBOM_VOLATILE`]'s paths from an SBOM statement's predicate.
fn strip_sbom_identity(statement: &mut Value) {
    let kind = statement
        .get("predicateType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some((_, paths)) = SBOM_VOLATILE.iter().find(|(t, _)| *t == kind) else {
        return;
    };
    for path in *paths {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let mut at = statement.get_mut("predicate");
        for key in parents {
            at = at.and_then(|v| v.get_mut(*key));
        }
        if let Some(Value::Object(map)) = at {
            map.remove(*last);
        }
    }
}

#[cfg(test)]
mod tests;
