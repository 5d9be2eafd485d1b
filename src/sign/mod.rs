//! Signing images on put and verifying them on check and get, in the
//! format cosign writes with `cosign sign --key` and every cosign verifier
//! reads (`cosign verify --key`, sigstore's policy-controller, Kyverno,
//! Harbor).
//!
//! - [`key`]: the key files (cosign's encrypted key, PKCS#8, SEC1, PKIX)
//!   and their fingerprints;
//! - [`payload`]: the simple-signing payload that is signed;
//! - [`storage`]: the `sha256-<hex>.sig` manifest that holds signatures;
//! - this file: [`Signer`] and [`Verifier`], which put signatures into a
//!   registry and check the ones there, through [`crate::registry`].
//!
//! It sits below `config` (which reads keys at validation time, so a wrong
//! password fails before a build starts) and `commands`, and above
//! `registry` and `oci`; it reads no request config.

pub mod key;
pub mod payload;
pub mod storage;

use std::collections::BTreeMap;

use bytes::Bytes;

pub use key::{KeyError, PrivateKey, PublicKey};
use storage::SignatureManifest;

use crate::oci::Digest;
use crate::registry::{self, Client, Repository, retry_transient};

/// Why signing or verifying failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry refused or failed a request.
    #[error(transparent)]
    Registry(#[from] registry::Error),
    /// What the registry holds under a signature tag is not a manifest we
    /// can read or extend.
    #[error("the signatures of {digest} ({tag}) cannot be read: {problem}")]
    BadSignatureManifest {
        /// The signed image's digest.
        digest: String,
        /// Its signature tag.
        tag: String,
        /// What is wrong.
        problem: String,
    },
    /// No signature over `digest` by any of the keys.
    #[error("{repository}@{digest} has no valid signature by {} ({found})", keys_text(.keys))]
    Unsigned {
        /// The image's digest.
        digest: String,
        /// The repository it was looked up in.
        repository: String,
        /// Fingerprints of the keys tried.
        keys: Vec<String>,
        /// What was found instead, e.g. "no signature tag" or "2
        /// signatures, none by these keys".
        found: String,
    },
}

fn keys_text(keys: &[String]) -> String {
    match keys {
        [one] => format!("key {one}"),
        many => format!("any of the keys {}", many.join(", ")),
    }
}

/// Signs digests with one key: `source.sign`.
#[derive(Debug, Clone)]
pub struct Signer {
    key: PrivateKey,
    annotations: BTreeMap<String, String>,
}

/// What [`Signer::sign`] did for each digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signed {
    /// Digests that got a new signature.
    pub added: Vec<String>,
    /// Digests that already carried a signature by this key.
    pub kept: Vec<String>,
}

impl Signer {
    /// A signer with `key`, writing `annotations` into each payload's
    /// `optional` section (as `cosign sign -a`).
    pub fn new(key: PrivateKey, annotations: BTreeMap<String, String>) -> Signer {
        Signer { key, annotations }
    }

    /// The signing key's fingerprint.
    pub fn fingerprint(&self) -> &str {
        self.key.public().fingerprint()
    }

    /// The public half, for checking our own signatures.
    pub fn public(&self) -> &PublicKey {
        self.key.public()
    }

    /// Signs each of `digests` in `client`'s repository, appending to its
    /// signature manifest; a digest that already carries a valid signature
    /// by this key is left as it is.
    pub async fn sign(&self, client: &Client, digests: &[String]) -> Result<Signed, Error> {
        let mut signed = Signed::default();
        for digest in digests {
            if self.sign_one(client, digest).await? {
                signed.added.push(digest.clone());
            } else {
                signed.kept.push(digest.clone());
            }
        }
        Ok(signed)
    }

    /// `true` when a signature was added.
    async fn sign_one(&self, client: &Client, digest: &str) -> Result<bool, Error> {
        let repository = client.repository();
        let existing = fetch_signatures(client, digest).await?;
        let mut manifest = existing.unwrap_or_default();
        let ours = std::slice::from_ref(self.key.public());
        if find_valid(client, &manifest, ours, repository, digest)
            .await?
            .is_some()
        {
            tracing::debug!(%digest, key = self.fingerprint(), "already signed by this key");
            return Ok(false);
        }
        let payload = payload::build(repository, digest, &self.annotations);
        let signature = self.key.sign_base64(&payload);
        let blob = manifest.add(payload, signature);
        let (config, bytes) = manifest.write();
        for b in [&blob, &config] {
            push_blob(client, &b.digest, &b.bytes).await?;
        }
        let tag = storage::signature_tag(digest);
        let bytes = Bytes::from(bytes);
        retry_transient(&format!("pushing signature manifest {tag}"), || {
            client.push_manifest(&tag, storage::MANIFEST, bytes.clone())
        })
        .await?;
        Ok(true)
    }
}

/// Verifies digests against a set of public keys: `source.verify`.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<PublicKey>,
}

impl Verifier {
    /// A verifier accepting a signature by any of `keys` (at least one).
    pub fn new(keys: Vec<PublicKey>) -> Verifier {
        Verifier { keys }
    }

    /// The keys' fingerprints, in the order given.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.fingerprint().to_owned())
            .collect()
    }

    /// The fingerprint of a key whose valid signature over `digest` naming
    /// `repository` is in `client`'s repository, else [`Error::Unsigned`].
    /// `repository` is the source's (a mirror serves the same signatures
    /// but the payload names the origin).
    pub async fn verify(
        &self,
        client: &Client,
        repository: &Repository,
        digest: &str,
    ) -> Result<String, Error> {
        let unsigned = |found: String| Error::Unsigned {
            digest: digest.to_owned(),
            repository: repository.given.clone(),
            keys: self.fingerprints(),
            found,
        };
        let Some(manifest) = fetch_signatures(client, digest).await? else {
            return Err(unsigned(format!(
                "no signature tag {}",
                storage::signature_tag(digest)
            )));
        };
        match find_valid(client, &manifest, &self.keys, repository, digest).await? {
            Some(key) => Ok(key),
            None => Err(unsigned(match manifest.signatures().len() {
                0 => "the signature manifest has no signature layers".into(),
                n => format!("{n} signature(s), none valid for these keys and this repository"),
            })),
        }
    }
}

/// The signature manifest of `digest`, `None` when there is none.
async fn fetch_signatures(
    client: &Client,
    digest: &str,
) -> Result<Option<SignatureManifest>, Error> {
    let tag = storage::signature_tag(digest);
    let fetched = retry_transient(&format!("fetching signatures {tag}"), || {
        client.fetch_manifest(&tag)
    })
    .await;
    match fetched {
        Ok(m) => SignatureManifest::parse(&m.bytes)
            .map(Some)
            .map_err(|problem| Error::BadSignatureManifest {
                digest: digest.to_owned(),
                tag,
                problem,
            }),
        Err(e) if e.status() == Some(http::StatusCode::NOT_FOUND) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The fingerprint of the first of `keys` with a valid signature in
/// `manifest` over `digest` naming `repository`. A layer whose payload
/// cannot be fetched, is too large, or says something else is skipped
/// (with a debug line): it is somebody's signature, just not a valid one.
async fn find_valid(
    client: &Client,
    manifest: &SignatureManifest,
    keys: &[PublicKey],
    repository: &Repository,
    digest: &str,
) -> Result<Option<String>, Error> {
    for layer in manifest.signatures() {
        if layer.size > storage::MAX_PAYLOAD_BYTES {
            tracing::debug!(payload = %layer.digest, size = layer.size, "skipping an oversized signature payload");
            continue;
        }
        let Ok(payload_digest) = Digest::parse(&layer.digest) else {
            continue;
        };
        let fetched = retry_transient(
            &format!("fetching signature payload {payload_digest}"),
            || client.fetch_blob(&payload_digest),
        )
        .await;
        let payload = match fetched {
            Ok(payload) => payload,
            // A layer whose blob is gone is nobody's valid signature.
            Err(e) if e.status() == Some(http::StatusCode::NOT_FOUND) => {
                tracing::debug!(payload = %payload_digest, "skipping a signature layer whose payload is missing");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for key in keys {
            if !key.verifies(&payload, &layer.signature) {
                continue;
            }
            match payload::check(&payload, repository, digest) {
                Ok(()) => return Ok(Some(key.fingerprint().to_owned())),
                Err(why) => {
                    tracing::debug!(key = key.fingerprint(), %why, "a signature by a listed key does not cover this image");
                }
            }
        }
    }
    Ok(None)
}

async fn push_blob(client: &Client, digest: &str, bytes: &[u8]) -> Result<(), Error> {
    let digest = Digest::parse(digest).map_err(registry::Error::from)?;
    let bytes = Bytes::copy_from_slice(bytes);
    retry_transient(&format!("pushing signature blob {digest}"), || {
        let reader = std::io::Cursor::new(bytes.clone());
        client.push_blob(&digest, bytes.len() as u64, reader)
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
