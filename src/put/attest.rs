//! Which attestations to ask BuildKit for: `attest:provenance` and
//! `attest:sbom`, decided against what the daemon can attach.
//!
//! BuildKit v0.11 and later attaches attestations when its `image` exporter
//! pushes: the result becomes an index whose extra entries (platform
//! `unknown/unknown`) hold in-toto statements. The Docker Engine backend
//! cannot: 20.10's BuildKit (v0.8) predates them, and its `moby` exporter
//! keeps no attestations in the image store we read the image back from.
//! So an explicit `provenance` or `sbom` is refused there, and the default
//! (`min`, as buildx) quietly becomes none.
//!
//! An SBOM is made by running a scanner image on the result, which the
//! daemon pulls like a `FROM` image. Without one it can pull, the build
//! fails after all its steps ran, so `out` resolves the scanner first.

use std::collections::BTreeMap;

use super::solve::Backend;
use crate::buildkit::DaemonInfo;
use crate::config::Source;
use crate::config::put::{BuildParams, Provenance, Sbom};
use crate::registry::Repository;

/// An attestation that cannot be attached.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// The daemon cannot attach attestations at all.
    #[error(
        "{param}: {daemon} cannot attach attestations: they need BuildKit v0.11 or later pushing the image \
         itself, that is a standalone buildkitd (the embedded one, or buildkit_host unix://, tcp:// or ssh:// \
         to a buildkitd); set {param}: false to build here without one"
    )]
    Unsupported {
        /// `provenance` or `sbom`.
        param: &'static str,
        /// The daemon, as `out` logs it.
        daemon: String,
    },
    /// The SBOM scanner image cannot be resolved.
    #[error(
        "sbom: the scanner image {image} cannot be resolved from here ({reason}); BuildKit pulls it like a \
         FROM image to make the SBOM. Push a scanner (docker/buildkit-syft-scanner, or any image following \
         BuildKit's SBOM generator protocol) to a registry this put reaches and set sbom: <that image>, or \
         drop sbom"
    )]
    ScannerUnreachable {
        /// The scanner reference.
        image: String,
        /// Why it could not be resolved.
        reason: String,
    },
}

/// Whether `daemon`, used as `backend`, attaches attestations.
pub fn supported(backend: Backend, daemon: &DaemonInfo) -> bool {
    backend == Backend::Buildkitd
        && daemon
            .capabilities
            .buildkit_version
            .as_ref()
            .is_some_and(|v| v.major > 0 || v.minor >= 11)
}

/// The `attest:*` frontend attributes for `params` on this daemon.
pub fn frontend_attrs(
    params: &BuildParams,
    backend: Backend,
    daemon: &DaemonInfo,
) -> Result<BTreeMap<String, String>, AttestError> {
    let mut attrs = BTreeMap::new();
    let supported = supported(backend, daemon);
    let unsupported = |param| AttestError::Unsupported {
        param,
        daemon: daemon.version.clone(),
    };
    match (params.provenance, supported) {
        (Provenance::Off, _) => {}
        (Provenance::Default, false) => {
            tracing::info!(
                "no provenance attestation: {} cannot attach one",
                daemon.version
            );
        }
        (Provenance::Min | Provenance::Max, false) => return Err(unsupported("provenance")),
        (p, true) => {
            if let Some(mode) = p.mode() {
                attrs.insert("attest:provenance".into(), format!("mode={mode}"));
            }
        }
    }
    if let Some(sbom) = &params.sbom {
        if !supported {
            return Err(unsupported("sbom"));
        }
        attrs.insert(
            "attest:sbom".into(),
            format!("generator={}", sbom.generator()),
        );
    }
    Ok(attrs)
}

/// Resolves the SBOM scanner's manifest with the credentials a `FROM` pull
/// of that registry gets, so that a scanner nobody can pull fails the put
/// before any build step runs.
pub async fn check_scanner(source: &Source, sbom: &Sbom) -> Result<(), AttestError> {
    let image = sbom.generator();
    let unreachable = |reason: String| AttestError::ScannerUnreachable {
        image: image.clone(),
        reason,
    };
    let repo = Repository::parse(&sbom.repository).map_err(|e| unreachable(e.to_string()))?;
    let client =
        super::pull_client(source, &repo).map_err(|e| unreachable(crate::oci::error_chain(&e)))?;
    match client.fetch_manifest(&sbom.reference).await {
        Ok(_) => Ok(()),
        Err(e) if e.status() == Some(http::StatusCode::NOT_FOUND) => {
            Err(unreachable("the registry has no such image".into()))
        }
        Err(e) => Err(unreachable(crate::oci::error_chain(&e))),
    }
}

#[cfg(test)]
mod tests;
