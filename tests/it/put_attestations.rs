//! Attestations: `out` on the embedded buildkitd attaches SLSA provenance
//! by default (`min`, as buildx), `max` and `false` on request, and an SBOM
//! from a scanner image in the registry; `check` and `in` treat the
//! attestation entries of the index as what they are, not platforms. The
//! Docker Engine backend refuses explicit attestations, and an unreachable
//! scanner fails the put before anything is built.
//!
//! What landed is read with skopeo (the index, and the attestation manifest
//! copied to a `dir:` as an image) and with our own `check` and `in`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::put::{Src, from_base, metadata, metadata_list, registry_digest, skopeo};
use crate::support;
use crate::support::needs;
use crate::support::registry::Registry;

const ATTESTATION: &str = "attestation-manifest";
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
const SLSA_V02: &str = "https://slsa.dev/provenance/v0.2";
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
const SPDX: &str = "https://spdx.dev/Document";

fn run_out(src: &Src, source: Value, params: Value) -> support::cmd::Output {
    let path = support::buildkitd::path_env();
    support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": params}),
        &[("PATH", path.as_str())],
    )
}

#[track_caller]
fn out(src: &Src, source: Value, params: Value) -> Value {
    run_out(src, source, params).expect_success().json()
}

fn version_digest(resp: &Value) -> String {
    resp["version"]["digest"]
        .as_str()
        .expect("version digest")
        .to_owned()
}

fn raw(reg: &Registry, reference: &str) -> Value {
    let bytes = skopeo(reg, &["inspect", "--raw"], reference).expect("skopeo inspect --raw");
    serde_json::from_slice(&bytes).expect("manifest JSON")
}

fn is_attestation(entry: &Value) -> bool {
    entry["annotations"][REFERENCE_TYPE] == ATTESTATION
}

/// The index's image entries and attestation entries.
fn split_index(index: &Value) -> (Vec<Value>, Vec<Value>) {
    index["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .cloned()
        .partition(|e| !is_attestation(e))
}

/// The in-toto statements of an attestation manifest: skopeo copies it as
/// an image into a `dir:`, whose layers are the statements.
fn statements(reg: &Registry, repo: &str, digest: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("temp dir");
    let dest = dir.path().join("att");
    let status = Command::new("skopeo")
        .arg("copy")
        .args(reg.skopeo_src_args())
        .arg(format!("docker://{}/{repo}@{digest}", reg.host))
        .arg(format!("dir:{}", dest.display()))
        .status()
        .expect("skopeo runs");
    assert!(status.success(), "skopeo copy of the attestation manifest");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dest.join("manifest.json")).expect("manifest.json"))
            .expect("manifest JSON");
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            let hex = l["digest"]
                .as_str()
                .and_then(|d| d.strip_prefix("sha256:"))
                .expect("sha256 digest");
            let statement: Value =
                serde_json::from_slice(&std::fs::read(dest.join(hex)).expect("statement blob"))
                    .expect("statement JSON");
            // The layer's annotation and the statement agree.
            assert_eq!(
                l["annotations"]["in-toto.io/predicate-type"],
                statement["predicateType"]
            );
            statement
        })
        .collect()
}

fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

/// `in` of the version into a fresh directory; the run's output.
fn run_in(
    reg: &Registry,
    repo: &str,
    version: &Value,
    params: Value,
) -> (PathBuf, support::cmd::Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let dest = dir.path().join("get");
    std::fs::create_dir_all(&dest).expect("get dir");
    let mut source = reg.source(repo);
    source["tag"] = version["tag"].clone();
    let run = support::cmd::run(
        "in",
        &[&dest],
        &json!({"source": source, "version": version, "params": params}),
        &[],
    );
    (dest, run, dir)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

needs! { buildkitd;
    #[test]
    fn default_provenance_is_an_index_entry_that_check_and_in_never_take_for_an_image() {
        let reg = support::registry::plain();
        let repo = support::unique("attest-default");
        let src = Src::new(&[(
            "src/Dockerfile",
            &from_base(reg, "RUN echo built > /built\n"),
        )]);
        let resp = out(&src, reg.source(&repo), json!({"context": "src"}));
        let digest = version_digest(&resp);

        // The tag holds an index: one image, one attestation describing it.
        let reference = format!("{repo}:latest");
        assert_eq!(
            registry_digest(reg, &reference).as_deref(),
            Some(digest.as_str())
        );
        let index = raw(reg, &reference);
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        let (images, attestations) = split_index(&index);
        assert_eq!((images.len(), attestations.len()), (1, 1), "{index:#}");
        let image = &images[0];
        let image_digest = image["digest"].as_str().expect("image digest");
        let att = &attestations[0];
        assert_eq!(
            att["platform"],
            json!({"os": "unknown", "architecture": "unknown"})
        );
        assert_eq!(
            att["annotations"]["vnd.docker.reference.digest"],
            image_digest
        );
        let platform = image["platform"]["os"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
            + "/"
            + image["platform"]["architecture"]
                .as_str()
                .unwrap_or_default();
        assert_eq!(platform, host_platform());

        // `min` provenance, about this image.
        let statements = statements(reg, &repo, att["digest"].as_str().expect("digest"));
        assert_eq!(statements.len(), 1);
        let provenance = &statements[0];
        assert!(
            [SLSA_V02, SLSA_V1].contains(&provenance["predicateType"].as_str().unwrap_or_default()),
            "{provenance:#}"
        );
        assert_eq!(
            provenance["subject"][0]["digest"]["sha256"].as_str(),
            image_digest.strip_prefix("sha256:")
        );

        // Metadata: one platform, the image's config, and what is attested.
        assert_eq!(metadata(&resp, "platforms"), Some(host_platform()));
        assert_eq!(
            metadata(&resp, "attestations").as_deref(),
            Some("provenance")
        );
        let config = skopeo(
            reg,
            &["inspect", "--config", "--raw"],
            &format!("{repo}@{image_digest}"),
        )
        .expect("image config");
        assert_eq!(
            metadata(&resp, "config_digest"),
            Some(support::sha256_digest(&config))
        );

        // check reports the index digest, as for any multi-entry index.
        let mut check_source = reg.source(&repo);
        check_source["tag"] = json!("latest");
        let versions = support::cmd::run("check", &[], &json!({"source": check_source}), &[])
            .expect_success()
            .json();
        assert_eq!(versions, json!([{"tag": "latest", "digest": digest}]));

        // in unpacks the image, never the attestation.
        let version = json!({"tag": "latest", "digest": digest});
        let (dest, run, _keep) = run_in(reg, &repo, &version, json!({}));
        run.expect_success();
        assert_eq!(read(&dest.join("rootfs/built")), "built\n");
        assert_eq!(read(&dest.join("digest")).trim(), digest);
        let meta: Value = serde_json::from_str(&read(&dest.join("metadata.json"))).expect("metadata");
        assert!(meta["env"].is_array(), "{meta}");

        // Asked for the attestation's own "platform", in finds no image.
        let mut source = reg.source(&repo);
        source["tag"] = json!("latest");
        source["platform"] = json!({"os": "unknown", "architecture": "unknown"});
        let dir = tempfile::tempdir().expect("temp dir");
        let run = support::cmd::run(
            "in",
            &[dir.path()],
            &json!({"source": source, "version": version, "params": {}}),
            &[],
        );
        assert!(
            !run.status.success(),
            "in picked an attestation as an image"
        );
        let err = run.stderr.clone();
        assert!(err.contains("unknown/unknown"), "{err}");
        assert!(!dir.path().join("rootfs").exists());

        // An OCI layout keeps the whole index, attestation included (as
        // `skopeo copy --all` would): index.json is the version's index itself.
        let (dest, run, _keep) = run_in(reg, &repo, &version, json!({"format": "oci-layout"}));
        run.expect_success();
        let layout = dest.join("oci");
        let index_json = std::fs::read(layout.join("index.json")).expect("index.json");
        assert_eq!(support::sha256_digest(&index_json), digest);
        let blob = |d: &str| {
            layout
                .join("blobs/sha256")
                .join(d.strip_prefix("sha256:").unwrap())
        };
        for d in [att["digest"].as_str().unwrap(), image_digest] {
            let bytes = std::fs::read(blob(d)).expect("manifest blob in the layout");
            assert_eq!(support::sha256_digest(&bytes), d);
        }
    }
}

needs! { buildkitd;
    #[test]
    fn provenance_max_records_the_build_and_false_pushes_a_plain_manifest() {
        let reg = support::registry::plain();
        let repo = support::unique("attest-modes");
        let src = Src::new(&[(
            "src/Dockerfile",
            &from_base(reg, "ARG GREETING\nRUN echo $GREETING > /greeting\n"),
        )]);
        let params = |provenance: Value| json!({"context": "src", "build_args": {"GREETING": "hello-max"}, "provenance": provenance});

        let max = out(&src, reg.source(&repo), params(json!("max")));
        let index = raw(reg, &format!("{repo}@{}", version_digest(&max)));
        let (_, attestations) = split_index(&index);
        let statement = &statements(reg, &repo, attestations[0]["digest"].as_str().unwrap())[0];
        // max carries the build's inputs (args) that min leaves out.
        let text = statement["predicate"].to_string();
        assert!(text.contains("hello-max"), "{statement:#}");

        let min = out(&src, reg.source(&repo), params(json!("min")));
        let index = raw(reg, &format!("{repo}@{}", version_digest(&min)));
        let (_, attestations) = split_index(&index);
        let statement = &statements(reg, &repo, attestations[0]["digest"].as_str().unwrap())[0];
        assert!(!statement["predicate"].to_string().contains("hello-max"));

        let off = out(&src, reg.source(&repo), params(json!(false)));
        let manifest = raw(reg, &format!("{repo}@{}", version_digest(&off)));
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert!(manifest.get("manifests").is_none());
        assert_eq!(metadata(&off, "attestations"), None);
    }
}

needs! { buildkitd;
    #[test]
    fn an_unchanged_rebuild_keeps_its_version_and_other_attestations_move_it() {
        let reg = support::registry::plain();
        let repo = support::unique("attest-unchanged");
        let src = Src::new(&[(
            "src/Dockerfile",
            &from_base(
                reg,
                "RUN echo same > /same
",
            ),
        )]);
        // Reproducible images, so that each fresh embedded daemon rebuilds the
        // very same image.
        let params = |provenance: &str| json!({"context": "src", "source_date_epoch": 1700000000, "provenance": provenance});
        let first = out(&src, reg.source(&repo), params("min"));
        let again = run_out(&src, reg.source(&repo), params("min"));
        let again_resp = again.expect_success().json();
        assert_eq!(
            version_digest(&again_resp),
            version_digest(&first),
            "an unchanged image keeps its version
{}",
            again.details()
        );
        assert!(
            again.stderr.contains("the tags stay on it")
                && again.stderr.contains(&format!(
                    "kept latest on {} (unchanged)",
                    version_digest(&first)
                ))
                && !again.stderr.contains("pushed sha256:"),
            "{}",
            again.details()
        );
        assert_eq!(
            registry_digest(reg, &format!("{repo}:latest")),
            Some(version_digest(&first))
        );
        assert_eq!(
            metadata(&again_resp, "attestations").as_deref(),
            Some("provenance")
        );

        // The same image with other attestations (max records more) moves the tag.
        let max = out(&src, reg.source(&repo), params("max"));
        assert_ne!(version_digest(&max), version_digest(&first));
        assert_eq!(
            registry_digest(reg, &format!("{repo}:latest")),
            Some(version_digest(&max))
        );
        let image = |resp: &Value| {
            let (images, _) = split_index(&raw(reg, &format!("{repo}@{}", version_digest(resp))));
            images[0]["digest"].clone()
        };
        assert_eq!(image(&max), image(&first), "the image itself is the same");
    }
}

/// A scanner following BuildKit's SBOM generator protocol, in shell: one
/// SPDX document per scanned filesystem, noting whether the build's
/// `/built` was in what it was given. Like syft, it names each document
/// anew (a random UUID) and dates it.
const SCANNER: &str = r#"#!/bin/sh
set -eu
name=$(basename "$BUILDKIT_SCAN_SOURCE")
saw=no
if [ -f "$BUILDKIT_SCAN_SOURCE/built" ]; then saw=yes; fi
uuid=$(cat /proc/sys/kernel/random/uuid)
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cat > "$BUILDKIT_SCAN_DESTINATION/$name.spdx.json" <<EOF
{"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://spdx.dev/Document", "subject": [],
 "predicate": {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "test-scan",
  "dataLicense": "CC0-1.0", "documentNamespace": "https://scanner.invalid/$name-$uuid",
  "creationInfo": {"created": "$now", "creators": ["Tool: test-scanner"]},
  "comment": "saw-built=$saw", "packages": []}}
EOF
"#;

needs! { buildkitd;
    #[test]
    fn sbom_comes_from_a_scanner_the_daemon_can_pull() {
        let reg = support::registry::plain();
        let scanner_repo = support::unique("attest-scanner");
        let scanner_src = Src::new(&[
            (
                "src/Dockerfile",
                &from_base(
                    reg,
                    "COPY scan.sh /scan.sh\nENTRYPOINT [\"/bin/sh\", \"/scan.sh\"]\n",
                ),
            ),
            ("src/scan.sh", SCANNER),
        ]);
        out(
            &scanner_src,
            reg.source(&scanner_repo),
            json!({"context": "src", "provenance": false, "tag_as_latest": true}),
        );

        let repo = support::unique("attest-sbom");
        let src = Src::new(&[(
            "src/Dockerfile",
            &from_base(reg, "RUN echo built > /built\n"),
        )]);
        // Reproducible images: the rebuild below must give the same image.
        let params = json!({
            "context": "src",
            "sbom": format!("{}/{scanner_repo}:latest", reg.host),
            "source_date_epoch": 1700000000,
        });
        let resp = out(&src, reg.source(&repo), params.clone());
        assert_eq!(metadata_list(&resp, "attestations"), ["provenance", "sbom"]);
        let index = raw(reg, &format!("{repo}@{}", version_digest(&resp)));
        let (images, attestations) = split_index(&index);
        assert_eq!((images.len(), attestations.len()), (1, 1), "{index:#}");
        let statements = statements(reg, &repo, attestations[0]["digest"].as_str().unwrap());
        let sbom = statements
            .iter()
            .find(|s| s["predicateType"] == SPDX)
            .unwrap_or_else(|| panic!("no SPDX statement in {statements:#?}"));
        assert_eq!(sbom["predicate"]["comment"], "saw-built=yes");
        assert_eq!(
            sbom["subject"][0]["digest"]["sha256"].as_str(),
            images[0]["digest"]
                .as_str()
                .and_then(|d| d.strip_prefix("sha256:"))
        );

        // A rebuild scans anew: another document name and time, the same
        // contents. The version stays, as without an SBOM.
        let again = run_out(&src, reg.source(&repo), params);
        let again_resp = again.expect_success().json();
        assert_eq!(
            version_digest(&again_resp),
            version_digest(&resp),
            "an unchanged image with a re-scanned SBOM keeps its version\n{}",
            again.details()
        );
        assert!(
            again.stderr.contains("the tags stay on it"),
            "{}",
            again.details()
        );
    }
}

needs! { buildkitd;
    /// A scanner that runs and writes nothing: BuildKit pushes the index
    /// without an SBOM, and the put fails naming it, with no tag moved.
    #[test]
    fn a_scanner_that_writes_no_sbom_fails_the_put_and_moves_no_tag() {
        let reg = support::registry::plain();
        let scanner_repo = support::unique("attest-silent-scanner");
        let scanner_src = Src::new(&[(
            "src/Dockerfile",
            &from_base(reg, "ENTRYPOINT [\"/bin/true\"]\n"),
        )]);
        out(
            &scanner_src,
            reg.source(&scanner_repo),
            json!({"context": "src", "provenance": false, "tag_as_latest": true}),
        );
        let repo = support::unique("attest-no-sbom");
        let src = Src::new(&[(
            "src/Dockerfile",
            &from_base(reg, "RUN echo built > /built\n"),
        )]);
        let run = run_out(
            &src,
            reg.source(&repo),
            json!({"context": "src", "sbom": format!("{}/{scanner_repo}:latest", reg.host)}),
        );
        run.expect_failure()
            .expect_stderr("has no sbom attestation (it has: provenance); no tag was moved");
        assert_eq!(
            registry_digest(reg, &format!("{repo}:latest")),
            None,
            "the tag moved\n{}",
            run.details()
        );
    }
}

needs! { buildkitd;
    #[test]
    fn an_unreachable_sbom_scanner_fails_before_the_build() {
        let reg = support::registry::plain();
        let repo = support::unique("attest-no-scanner");
        let src = Src::new(&[(
            "src/Dockerfile",
            &from_base(reg, "RUN echo must-not-run > /x\n"),
        )]);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let closed_port = closed.local_addr().expect("addr").port();
        drop(closed);
        for (scanner, why) in [
            (
                format!("{}/no-such-scanner:1", reg.host),
                "the registry has no such image",
            ),
            (format!("127.0.0.1:{closed_port}/scanner:1"), "127.0.0.1"),
        ] {
            let run = run_out(
                &src,
                reg.source(&repo),
                json!({"context": "src", "sbom": scanner}),
            );
            assert!(!run.status.success(), "out succeeded without a scanner");
            let err = run.stderr.clone();
            assert!(
                err.contains(&format!(
                    "sbom: the scanner image {scanner} cannot be resolved from here"
                )) && err.contains(why),
                "{err}"
            );
            assert!(!err.contains("must-not-run"), "the build ran: {err}");
            assert_eq!(registry_digest(reg, &format!("{repo}:latest")), None);
        }
    }
}

needs! { dockerd;
    #[test]
    fn the_engine_refuses_explicit_attestations_and_builds_without_by_default() {
        let reg = support::registry::plain();
        let repo = support::unique("attest-engine");
        let src = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
        let mut source = reg.source(&repo);
        source["buildkit_host"] = json!(format!(
            "docker://{}",
            support::docker::shared().socket.display()
        ));
        let run = |params: Value| {
            support::cmd::run(
                "out",
                &[src.path()],
                &json!({"source": source, "params": params}),
                &[],
            )
        };
        for (params, param) in [
            (json!({"context": "src", "provenance": "max"}), "provenance"),
            (json!({"context": "src", "provenance": true}), "provenance"),
            (
                json!({"context": "src", "sbom": format!("{}/scanner:1", reg.host)}),
                "sbom",
            ),
        ] {
            let failed = run(params);
            assert!(!failed.status.success());
            let err = failed.stderr.clone();
            assert!(
                err.contains(&format!("{param}: docker engine"))
                    && err.contains("cannot attach attestations")
                    && err.contains(&format!("set {param}: false")),
                "{err}"
            );
            assert_eq!(registry_digest(reg, &format!("{repo}:latest")), None);
        }
        // Not asked for: built without one, a plain manifest.
        let resp = run(json!({"context": "src"})).expect_success().json();
        let manifest = raw(reg, &format!("{repo}@{}", version_digest(&resp)));
        assert!(manifest.get("manifests").is_none(), "{manifest:#}");
        assert_eq!(metadata(&resp, "attestations"), None);
    }
}
