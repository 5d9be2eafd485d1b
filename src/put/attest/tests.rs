use super::*;
use crate::buildkit::{Capabilities, DaemonKind};

fn daemon(kind: DaemonKind, version: Option<&str>) -> DaemonInfo {
    DaemonInfo {
        version: match kind {
            DaemonKind::Buildkitd => version.unwrap_or("buildkit < v0.11").to_owned(),
            DaemonKind::DockerEngine => {
                "docker engine 20.10.24+dfsg1 (buildkit < v0.11)".to_owned()
            }
        },
        kind,
        capabilities: Capabilities {
            buildkit_version: version.map(|v| semver::Version::parse(v).unwrap()),
            exporters: Vec::new(),
            multiple_exporters: false,
            cache_exports: Vec::new(),
            named_contexts: false,
            multi_platform: false,
        },
    }
}

fn params(provenance: Provenance, sbom: Option<&str>) -> BuildParams {
    let mut p = crate::put::solve::tests::params();
    p.provenance = provenance;
    p.sbom = sbom.map(|s| {
        let (repository, reference) = s.split_once(':').unwrap();
        Sbom {
            repository: repository.into(),
            reference: reference.into(),
        }
    });
    p
}

#[test]
fn provenance_defaults_to_min_on_a_buildkitd() {
    let bk = daemon(DaemonKind::Buildkitd, Some("0.32.2"));
    let attrs = |p| frontend_attrs(&params(p, None), Backend::Buildkitd, &bk).unwrap();
    assert_eq!(attrs(Provenance::Default)["attest:provenance"], "mode=min");
    assert_eq!(attrs(Provenance::Min)["attest:provenance"], "mode=min");
    assert_eq!(attrs(Provenance::Max)["attest:provenance"], "mode=max");
    assert!(attrs(Provenance::Off).is_empty());
}

#[test]
fn sbom_names_its_generator() {
    let bk = daemon(DaemonKind::Buildkitd, Some("0.11.0"));
    let p = params(Provenance::Off, Some("127.0.0.1:5000/scanner:1"));
    let attrs = frontend_attrs(&p, Backend::Buildkitd, &bk).unwrap();
    assert_eq!(attrs["attest:sbom"], "generator=127.0.0.1:5000/scanner:1");
    assert!(!attrs.contains_key("attest:provenance"));
}

#[test]
fn the_engine_refuses_explicit_attestations_and_skips_the_default() {
    let engine = daemon(DaemonKind::DockerEngine, None);
    let run = |p: BuildParams| frontend_attrs(&p, Backend::DockerEngine, &engine);
    assert!(run(params(Provenance::Default, None)).unwrap().is_empty());
    assert!(run(params(Provenance::Off, None)).unwrap().is_empty());
    for p in [
        params(Provenance::Max, None),
        params(Provenance::Min, None),
        params(Provenance::Off, Some("127.0.0.1:5000/scanner:1")),
    ] {
        let err = run(p).unwrap_err().to_string();
        assert!(
            err.contains(
                "docker engine 20.10.24+dfsg1 (buildkit < v0.11) cannot attach attestations"
            ) && err.contains(": false to build here"),
            "{err}"
        );
    }
    // An old buildkitd is refused the same way.
    let old = daemon(DaemonKind::Buildkitd, Some("0.10.6"));
    assert!(frontend_attrs(&params(Provenance::Max, None), Backend::Buildkitd, &old).is_err());
    assert!(
        frontend_attrs(&params(Provenance::Default, None), Backend::Buildkitd, &old)
            .unwrap()
            .is_empty()
    );
}
