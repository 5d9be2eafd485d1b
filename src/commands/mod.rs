//! The three resource steps, one module each: each takes the validated
//! request and returns the response value; [`crate::cli`] does the I/O.
//!
//! This file builds the registry access from `source` (the registry module
//! knows nothing of the request config) and adapts the registry client to
//! [`crate::image::fetch::BlobSource`] for check and get.

pub mod check;
pub mod get;
pub mod put;

use bytes::Bytes;

use crate::config::{RegistryCredentials, Source};
use crate::image::fetch::{BlobSource, FetchedManifest};
use crate::oci::Digest;
use crate::registry::{self, Access, Client, Credentials, Repository};
use crate::store::replicate::Replica;

/// Client for the origin repository of `source`.
pub(crate) fn origin_client(source: &Source, access: Access) -> registry::Result<Client> {
    client(
        &source.repository,
        source.username.as_deref(),
        source.password.as_ref(),
        source,
        access,
    )
}

/// Client for the mirror of a Docker Hub repository, with the mirror's own
/// credentials; `None` when no mirror applies.
pub(crate) fn mirror_client(source: &Source) -> registry::Result<Option<Client>> {
    let Some((repo, mirror)) = source.mirror_repository() else {
        return Ok(None);
    };
    let RegistryCredentials {
        username, password, ..
    } = mirror;
    client(
        &repo,
        username.as_deref(),
        password.as_ref(),
        source,
        Access::Pull,
    )
    .map(Some)
}

/// Push clients for `source.replicate_to`, with ECR credentials applied
/// where an entry asks for them, each with its own CA and `insecure`.
pub(crate) async fn replica_clients(source: &Source) -> crate::Result<Vec<Replica>> {
    let mut out = Vec::new();
    for given in &source.replicate_to {
        let name = given.given.clone();
        let r = crate::ecr::authenticate_replica(given.clone())
            .await
            .map_err(|e| crate::Error::from(e).context(format!("replica {name}")))?;
        let tls = registry::TlsOptions {
            ca_certs: r.ca_certs.clone(),
            insecure: r.insecure,
            read_timeout: source.registry_timeout,
        };
        let client = Client::new(
            &r.repository,
            Credentials::from_parts(r.username.as_deref(), r.password.as_ref()),
            &tls,
            Access::Push,
        )
        .map_err(|e| crate::Error::from(e).context(format!("replica {name}")))?;
        out.push(Replica { name, client });
    }
    Ok(out)
}

fn client(
    repo: &Repository,
    username: Option<&str>,
    password: Option<&crate::secret::Secret>,
    source: &Source,
    access: Access,
) -> registry::Result<Client> {
    Client::new(
        repo,
        Credentials::from_parts(username, password),
        &source.tls_options(),
        access,
    )
}

/// The registry client as a [`BlobSource`]. Its blob readers verify digest
/// and size while streaming, as the trait requires.
impl BlobSource for Client {
    type Error = registry::Error;
    type Reader = registry::BlobReader;

    async fn fetch_manifest(&self, digest: &Digest) -> Result<FetchedManifest, registry::Error> {
        let m = Client::fetch_manifest(self, digest).await?;
        Ok(FetchedManifest {
            media_type: (!m.media_type.is_empty()).then_some(m.media_type),
            bytes: m.bytes,
            digest: m.digest,
        })
    }

    async fn fetch_blob(&self, digest: &Digest) -> Result<Bytes, registry::Error> {
        Client::fetch_blob(self, digest).await
    }

    async fn blob_reader(
        &self,
        digest: &Digest,
        size: u64,
    ) -> Result<Self::Reader, registry::Error> {
        Client::blob_reader(self, digest, size).await
    }
}
