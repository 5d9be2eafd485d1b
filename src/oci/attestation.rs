//! Telling BuildKit's attestation manifests from images in an index.
//!
//! BuildKit stores provenance and SBOMs as extra index entries (its
//! "attestation storage"): an image manifest whose layers are in-toto
//! statements, with the platform `unknown/unknown` and the annotations
//! `vnd.docker.reference.type: attestation-manifest` and
//! `vnd.docker.reference.digest: <the image it describes>`. They are not
//! platforms: nothing may select, count or unpack one as an image.

use serde_json::Value;

/// The annotation naming what kind of reference an index entry is.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// [`REFERENCE_TYPE`]'s value on an attestation manifest.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// The annotation on an attestation manifest's entry naming the image it
/// describes.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// The annotation on an attestation layer naming its in-toto predicate type.
pub const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";

/// Whether an index entry with these annotations and platform is an
/// attestation: it has a `vnd.docker.reference.type` annotation (BuildKit's
/// marker; the value is `attestation-manifest` today, and any reference
/// entry is not an image), or its platform is `unknown/unknown`.
pub fn is_attestation_entry<'a>(
    mut annotations: impl Iterator<Item = (&'a str, &'a str)>,
    os_arch: Option<(&str, &str)>,
) -> bool {
    annotations.any(|(k, _)| k == REFERENCE_TYPE)
        || os_arch.is_some_and(|(os, arch)| os == "unknown" || arch == "unknown")
}

/// [`is_attestation_entry`] for an index entry as JSON.
pub fn is_attestation_json(entry: &Value) -> bool {
    let annotations = entry
        .get("annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()));
    let platform = entry.get("platform");
    let field = |name: &str| {
        platform
            .and_then(|p| p.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let os_arch = platform.map(|_| (field("os"), field("architecture")));
    is_attestation_entry(annotations, os_arch)
}

/// The predicate types (`https://slsa.dev/provenance/v0.2`,
/// `https://spdx.dev/Document`) of an attestation manifest's layers, in
/// order, each once.
pub fn predicate_types(manifest: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for layer in manifest
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = layer
            .get("annotations")
            .and_then(|a| a.get(PREDICATE_TYPE))
            .and_then(Value::as_str)
            && !out.iter().any(|o| o == t)
        {
            out.push(t.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests;
