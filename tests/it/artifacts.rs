//! OCI artifacts (a Helm chart, an OCI 1.1 artifact with the empty config)
//! share an image manifest's shape: `in` must not unpack one as a rootfs or
//! write it as an image, `params.layers` must not append to one, and
//! `check` must not report one as a version.

use serde_json::{Value, json};

use crate::put::Src;
use crate::support::cmd;
use crate::support::fixtures::{LAYER_GZIP, Pushed, RawImage, RawTar};
use crate::support::registry;

const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const HELM_CHART: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// A Helm chart as `helm push` writes it: the chart's tarball as the only
/// layer and the chart's metadata as the config.
fn helm_chart(name: &str) -> Pushed {
    RawImage::new()
        .layer(
            RawTar::new()
                .file("app/Chart.yaml", b"apiVersion: v2\nname: app\n", 0o644)
                .finish(),
            "gzip",
            HELM_CHART,
        )
        .artifact_config(HELM_CONFIG, br#"{"name":"app","version":"0.1.0"}"#)
        .push(registry::plain(), name)
}

fn get(source: &Value, version: &Value, format: &str) -> (cmd::Output, std::path::PathBuf) {
    let dest = crate::support::process::scratch_dir("artifact-get").join("dest");
    std::fs::create_dir_all(&dest).expect("mkdir dest");
    let out = cmd::run(
        "in",
        &[&dest],
        &json!({"source": source, "version": version, "params": {"format": format}}),
        &[],
    );
    (out, dest)
}

#[test]
fn get_refuses_a_helm_chart_naming_its_config_media_type_and_writes_nothing() {
    let chart = helm_chart("artifact-helm");
    let source = registry::plain().source(&chart.repo);
    for format in ["rootfs", "oci"] {
        let (out, dest) = get(&source, &chart.version(), format);
        out.expect_failure().expect_error(&format!(
            "download failed: manifest {} is not a container image: its config is {HELM_CONFIG:?}, not an OCI or \
             Docker image config (an artifact such as a Helm chart cannot be unpacked or run)",
            chart.digest
        ));
        let left: Vec<_> = std::fs::read_dir(&dest).expect("read dest").collect();
        assert!(left.is_empty(), "{format}: {left:?}\n{}", out.details());
    }
}

#[test]
fn check_skips_artifact_tags_whatever_tag_regex_says() {
    let reg = registry::plain();
    let chart = helm_chart("artifact-check");
    let empty = RawImage::new()
        .artifact_config("application/vnd.oci.empty.v1+json", b"{}")
        .layout("artifact-empty");
    let empty = empty.push(reg, &chart.repo, "v2");
    let image = RawImage::new()
        .layer(
            RawTar::new().file("etc/os", b"x\n", 0o644).finish(),
            "gzip",
            LAYER_GZIP,
        )
        .layout("artifact-image")
        .push(reg, &chart.repo, "v3");
    let out = cmd::run(
        "check",
        &[],
        &json!({"source": {"repository": reg.repo(&chart.repo), "tag_regex": ".*"}}),
        &[],
    );
    out.expect_success();
    assert_eq!(
        out.json(),
        json!([{"tag": "v3", "digest": image.digest}]),
        "{}",
        out.details()
    );
    out.expect_stderr(&format!(
        "skipping tag v1: not a container image (its config is {HELM_CONFIG:?})"
    ))
    .expect_stderr(
        "skipping tag v2: not a container image (its config is \"application/vnd.oci.empty.v1+json\")",
    );
    assert_ne!(empty.digest, image.digest);
}

#[test]
fn layers_are_not_appended_to_an_artifact() {
    let chart = helm_chart("artifact-layers");
    let src = Src::new(&[("site/index.html", "<h1>hi</h1>\n")]);
    let mut source = registry::plain().source(&chart.repo);
    source["tag"] = json!("site");
    let out = cmd::run(
        "out",
        &[src.path()],
        &json!({
            "source": source,
            "params": {"layers": {
                "base": chart.reference(),
                "add": [{"src": "site", "dest": "/srv"}],
            }},
        }),
        &[],
    );
    out.expect_failure().expect_stderr(&format!(
        "manifest {} is not a container image: its config is {HELM_CONFIG:?}, not an OCI or \
         Docker image config, so layers cannot be appended to it",
        chart.digest
    ));
    assert!(
        !registry::plain()
            .tags(&chart.repo)
            .contains(&"site".to_string()),
        "{}",
        out.details()
    );
}
