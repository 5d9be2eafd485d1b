//! Manifests: digests by HEAD with ggcr's fallback rules (oci-client's
//! `fetch_manifest_digest` only falls back to GET when the digest header is
//! missing, and hides 404), exact bytes with their media type (its raw pull
//! drops `Content-Type`), and pushes of exact bytes.

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use tracing::{debug, warn};

use super::client::Client;
use super::error::{Error, Result};
use crate::oci::media_types::{
    DOCKER_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1, OCI_INDEX, OCI_MANIFEST,
};
use crate::oci::{Digest, sha256_digest};

/// Whether a manifest reference is a digest rather than a tag.
fn is_digest(reference: &str) -> bool {
    reference.contains(':')
}
/// A fetched manifest, exactly as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The exact bytes (their sha256 is the digest).
    pub bytes: Bytes,
    /// `Content-Type` (parameters stripped), else the body's `mediaType`,
    /// else empty.
    pub media_type: String,
    /// `sha256:<hex>` of `bytes`.
    pub digest: Digest,
}

/// Media types accepted for manifests, as ggcr sends them.
pub const MANIFEST_ACCEPT: &[&str] = &[
    DOCKER_SCHEMA1[0],
    DOCKER_SCHEMA1[1],
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    DOCKER_LIST,
    OCI_INDEX,
];

/// Whether a manifest is Docker schema 1, by its `Content-Type` or, when the
/// registry sent a generic one, by its `schemaVersion`.
fn is_schema1(content_type: &str, bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Version {
        #[serde(default, rename = "schemaVersion")]
        schema_version: Option<u64>,
    }
    DOCKER_SCHEMA1.contains(&content_type)
        || serde_json::from_slice::<Version>(bytes).is_ok_and(|v| v.schema_version == Some(1))
}

impl Client {
    fn manifest_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_str(&MANIFEST_ACCEPT.join(", ")).expect("constant header value"),
        );
        h
    }

    /// Digest of `manifests/<reference>`, ggcr's "headOrGet": HEAD, and use
    /// its `Docker-Content-Digest` if it also has Content-Type and
    /// Content-Length; HEAD 404 is "not found"; any other HEAD outcome falls
    /// back to GET, whose body is hashed. `None` when not found.
    async fn head_or_get(&self, reference: &str) -> Result<Option<Digest>> {
        let session = self.session().await?;
        let url = self.url(&session, &format!("manifests/{reference}"));
        match self
            .send(Method::HEAD, &url, Self::manifest_headers(), None)
            .await
        {
            Ok(resp) if resp.status() == StatusCode::NOT_FOUND => return Ok(None),
            Ok(resp) if resp.status().is_success() => {
                let h = resp.headers();
                if h.contains_key(header::CONTENT_TYPE)
                    && h.contains_key(header::CONTENT_LENGTH)
                    && let Some(d) = h.get("docker-content-digest").and_then(|v| v.to_str().ok())
                    && let Ok(d) = Digest::parse(d)
                {
                    return Ok(Some(d));
                }
            }
            Ok(resp) => debug!(status = %resp.status(), %url, "HEAD failed, trying GET"),
            Err(e) => debug!(error = %e, "HEAD failed, trying GET"),
        }
        let resp = self
            .send(Method::GET, &url, Self::manifest_headers(), None)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(Error::from_response(&Method::GET, &url, resp).await);
        }
        let body = super::client::read_limited(
            resp,
            &format!("GET {url}"),
            "manifest",
            super::client::MAX_MANIFEST_BYTES,
        )
        .await?;
        Ok(Some(sha256_digest(&body)))
    }

    /// The digest `tag` points at (for an index: the index digest), or
    /// `None` when the tag does not exist.
    pub async fn resolve_tag(&self, tag: &str) -> Result<Option<Digest>> {
        self.head_or_get(tag).await
    }

    /// Whether a manifest with this digest exists in the repository.
    pub async fn manifest_exists(&self, digest: &Digest) -> Result<bool> {
        Ok(self.head_or_get(digest).await?.is_some())
    }

    /// The manifest `reference` (tag or digest) names, exact bytes. When it
    /// is a digest, the body must hash to it.
    pub async fn fetch_manifest(&self, reference: &str) -> Result<Manifest> {
        if is_digest(reference) {
            Digest::parse(reference)?;
        }
        let session = self.session().await?;
        let url = self.url(&session, &format!("manifests/{reference}"));
        let resp = self
            .send(Method::GET, &url, Self::manifest_headers(), None)
            .await?;
        if !resp.status().is_success() {
            return Err(Error::from_response(&Method::GET, &url, resp).await);
        }
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned())
            .unwrap_or_default();
        let bytes = super::client::read_limited(
            resp,
            &format!("GET {url}"),
            "manifest",
            super::client::MAX_MANIFEST_BYTES,
        )
        .await?;
        // Before the digest check: a signed schema 1 manifest's digest
        // covers its payload without the signatures, so it would look
        // corrupt rather than unsupported.
        if is_schema1(&content_type, &bytes) {
            let sep = if is_digest(reference) { '@' } else { ':' };
            return Err(Error::Schema1 {
                reference: format!("{}{sep}{reference}", self.repo.qualified()),
            });
        }
        let digest = sha256_digest(&bytes);
        if is_digest(reference) && digest != reference {
            return Err(Error::DigestMismatch {
                what: "manifest",
                reference: format!("{}@{reference}", self.repo.qualified()),
                actual: digest.into_string(),
            });
        }
        let media_type = if content_type.is_empty() || content_type == "application/json" {
            #[derive(serde::Deserialize)]
            struct Typed {
                #[serde(default, rename = "mediaType")]
                media_type: String,
            }
            serde_json::from_slice::<Typed>(&bytes)
                .map(|t| t.media_type)
                .unwrap_or_default()
        } else {
            content_type
        };
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Pushes manifest `bytes` unchanged under `reference` (tag or digest)
    /// and returns their digest.
    pub async fn push_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let digest = sha256_digest(&bytes);
        if is_digest(reference) && reference != digest {
            return Err(Error::DigestMismatch {
                what: "manifest",
                reference: format!("{}@{reference}", self.repo.qualified()),
                actual: digest.into_string(),
            });
        }
        let session = self.session().await?;
        let url = self.url(&session, &format!("manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| Error::Protocol {
                request: format!("PUT {url}"),
                detail: format!("media type {media_type:?} is not a valid header value"),
            })?,
        );
        let resp = self
            .send(Method::PUT, &url, headers, Some(reqwest::Body::from(bytes)))
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(Error::from_response(&Method::PUT, &url, resp).await);
        }
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && d != digest
        {
            warn!(expected = %digest, registry = %d, "registry reports a different manifest digest");
        }
        Ok(digest)
    }
}
