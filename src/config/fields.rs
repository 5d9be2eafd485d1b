//! Field readers shared by the source and its `replicate_to` entries (and
//! the `aws_*` keys of both): one rule for a repository, credentials and
//! CA certificates wherever they are given.

use serde::Deserialize;

use super::decode::Shape;
use super::{Error, Secret};
use crate::registry::{Repository, RepositoryError};

pub(super) const CA_CERT: Shape = Shape::Object(&[("domain", Shape::Leaf), ("cert", Shape::Leaf)]);

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawCaCert {
    Pem(String),
    /// docker-image's form; the domain is not used to scope the certificate
    /// (registry-image has no such scoping either): every CA is trusted for
    /// every registry this source talks to.
    Domain {
        #[allow(dead_code)]
        #[serde(default)]
        domain: String,
        cert: String,
    },
}

pub(super) fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// `repository`, required: every command needs one.
pub(super) fn repository(text: &str) -> Result<Repository, Error> {
    Repository::parse(text).map_err(|e| match e {
        RepositoryError::Empty => Error::Missing("repository"),
        RepositoryError::Invalid(reason) => Error::Invalid {
            field: "source.repository",
            value: text.to_owned(),
            reason: reason.to_owned(),
        },
    })
}

/// `username` and `password`, used only as a pair: one without the other
/// is treated as neither (anonymous access).
pub(super) fn basic_auth(username: String, password: Secret) -> (Option<String>, Option<Secret>) {
    if username.is_empty() || password.is_empty() {
        (None, None)
    } else {
        (Some(username), Some(password))
    }
}

/// `ca_certs` in either spelling, blank entries dropped and the rest
/// checked to be PEM before any connection depends on them.
pub(super) fn ca_certs(raw: Vec<RawCaCert>) -> Result<Vec<String>, Error> {
    raw.into_iter()
        .map(|c| match c {
            RawCaCert::Pem(pem) | RawCaCert::Domain { cert: pem, .. } => pem,
        })
        .filter(|pem| !pem.trim().is_empty())
        .map(|pem| validate_pem(&pem).map(|()| pem))
        .collect()
}

pub(super) fn validate_pem(pem: &str) -> Result<(), Error> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    if certs.is_empty() {
        Err(Error::Invalid {
            field: "source.ca_certs",
            value: pem.lines().next().unwrap_or_default().to_owned(),
            reason: "failed to append registry certificate: no PEM certificate found".into(),
        })
    } else {
        Ok(())
    }
}
