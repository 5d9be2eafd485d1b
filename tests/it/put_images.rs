//! `params.images`: layouts of one platform each (made by umoci, and by
//! buildctl with a provenance attestation) merged into one index by `out`,
//! checked with skopeo and our `check`.

use std::process::Command;

use serde_json::{Value, json};

use crate::put::{Src, metadata, metadata_list, registry_digest, skopeo};
use crate::support;

/// A umoci layout of one image for `arch` at `<src>/<rel>`.
fn umoci_image(src: &Src, rel: &str, arch: &str) {
    let layout = support::fixtures::Layout::new(&format!("images-{arch}"));
    let file = src.path().join(format!("hello-{arch}"));
    std::fs::write(&file, format!("hello {arch}\n")).expect("write");
    layout.insert(&file, "/hello");
    layout.config(&["--os=linux", &format!("--architecture={arch}")]);
    let dest = src.path().join(rel);
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    support::run_tool(Command::new("cp").arg("-r").arg(&layout.dir).arg(&dest));
}

fn out(src: &Src, source: &Value, params: Value) -> support::cmd::Output {
    support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": params}),
        &[],
    )
}

fn index(reg: &support::registry::Registry, reference: &str) -> Value {
    serde_json::from_slice(&skopeo(reg, &["inspect", "--raw"], reference).expect("index"))
        .expect("JSON")
}

#[test]
fn two_single_platform_layouts_become_one_index() {
    let reg = support::registry::tls_auth();
    let repo = support::unique("images");
    let src = Src::new(&[]);
    umoci_image(&src, "amd64/oci", "amd64");
    umoci_image(&src, "arm64/oci", "arm64");
    let mut source = reg.source(&repo);
    source["tag"] = json!("multi");
    let run = out(&src, &source, json!({"images": ["amd64/oci", "arm64/*"]}));
    run.expect_success();
    let resp = run.json();
    let digest = resp["version"]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    assert_eq!(
        registry_digest(reg, &format!("{repo}:multi")).as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(
        metadata_list(&resp, "platforms"),
        ["linux/amd64", "linux/arm64"]
    );
    let idx = index(reg, &format!("{repo}:multi"));
    assert_eq!(idx["mediaType"], "application/vnd.oci.image.index.v1+json");
    let platforms: Vec<String> = idx["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    // Each entry is the layout's own image manifest, by digest.
    for (m, rel) in idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["amd64/oci", "arm64/oci"])
    {
        let raw = support::run_tool(
            Command::new("skopeo")
                .args(["inspect", "--raw"])
                .arg(format!("oci:{}:latest", src.path().join(rel).display())),
        );
        assert_eq!(
            m["digest"].as_str(),
            Some(support::sha256_digest(&raw).as_str()),
            "{rel}"
        );
    }
    let versions = support::cmd::run("check", &[], &json!({"source": source}), &[])
        .expect_success()
        .json();
    assert_eq!(versions, json!([{"tag": "multi", "digest": digest}]));
}

#[test]
fn two_images_of_one_platform_are_an_error_naming_both() {
    let reg = support::registry::plain();
    let repo = support::unique("images-dup");
    let src = Src::new(&[]);
    umoci_image(&src, "a/oci", "amd64");
    umoci_image(&src, "b/oci", "amd64");
    let run = out(&src, &reg.source(&repo), json!({"images": ["*/oci"]}));
    run.expect_failure()
        .expect_stderr(&src.path().join("a/oci").display().to_string())
        .expect_stderr(&src.path().join("b/oci").display().to_string())
        .expect_stderr("linux/amd64");
    assert_eq!(registry_digest(reg, &format!("{repo}:latest")), None);
    // And images is a push param: no build params beside it.
    out(
        &src,
        &reg.source(&repo),
        json!({"images": ["a/oci"], "context": "."}),
    )
    .expect_failure()
    .expect_stderr("images");
}

#[test]
#[cfg_attr(
    not(have_buildkitd),
    ignore = "needs buildkitd and buildctl: set BUILDKITD or put them on PATH (as root)"
)]
fn an_attestation_stays_beside_its_image() {
    let binary = support::buildkitd::find();
    let buildctl = binary
        .parent()
        .map(|d| d.join("buildctl"))
        .filter(|p| p.is_file())
        .expect("buildctl beside buildkitd");
    let daemon = support::buildkitd::Standalone::unix(&binary);
    let src = Src::new(&[
        ("ctx/Dockerfile", "FROM scratch\nCOPY hello.txt /\n"),
        ("ctx/hello.txt", "hello\n"),
    ]);
    let tarball = src.path().join("amd64.tar");
    support::run_tool(
        Command::new(&buildctl)
            .args([
                "--addr",
                &daemon.address,
                "build",
                "--frontend",
                "dockerfile.v0",
            ])
            .arg("--local")
            .arg(format!("context={}", src.path().join("ctx").display()))
            .arg("--local")
            .arg(format!("dockerfile={}", src.path().join("ctx").display()))
            .args([
                "--opt",
                "platform=linux/amd64",
                "--opt",
                "attest:provenance=mode=min",
                "--output",
            ])
            .arg(format!("type=oci,dest={}", tarball.display())),
    );
    let layout = src.path().join("amd64");
    std::fs::create_dir_all(&layout).expect("mkdir");
    support::run_tool(
        Command::new("tar")
            .arg("-xf")
            .arg(&tarball)
            .arg("-C")
            .arg(&layout),
    );
    umoci_image(&src, "arm64", "arm64");
    let reg = support::registry::plain();
    let repo = support::unique("images-att");
    let run = out(
        &src,
        &reg.source(&repo),
        json!({"images": ["amd64", "arm64"]}),
    );
    run.expect_success();
    let resp = run.json();
    assert_eq!(
        metadata(&resp, "attestations").as_deref(),
        Some("provenance")
    );
    assert_eq!(
        metadata_list(&resp, "platforms"),
        ["linux/amd64", "linux/arm64"]
    );
    let idx = index(reg, &format!("{repo}:latest"));
    let entries = idx["manifests"].as_array().expect("manifests");
    assert_eq!(entries.len(), 3, "{idx}");
    let att = &entries[1];
    assert_eq!(
        att["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        att["annotations"]["vnd.docker.reference.digest"],
        entries[0]["digest"]
    );
}
