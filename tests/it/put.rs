//! Black-box tests of `out`: build on a real daemon, push to a real
//! registry, and check what landed with skopeo (an independent client) and
//! with our own `check`.
//!
//! Every scenario runs on the Docker Engine backend (`buildkit_host:
//! docker://<socket>`) and again on the embedded buildkitd (ignored where
//! build.rs found no `buildkitd`, failed under `CI=true`). Ported from oci-build-task's suite
//! (its cases: basic, Dockerfile path, target/target file, build
//! args inline/file/YAML, labels inline/file/layer, secrets text/file, add
//! hosts, image args) plus the put-only cases: push, tags, version aliases,
//! digest correctness, docker-image params, `params.image`, secrets absent
//! from the image, registry cache reuse, and "a failed build moves no tag".

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support;
use crate::support::needs;
use crate::support::registry::Registry;

/// Where a scenario builds.
#[derive(Clone)]
enum Daemon {
    /// `buildkit_host: docker://<socket>`.
    Engine(PathBuf),
    /// No buildkit_host: `out` starts `buildkitd` found on PATH.
    Embedded,
}

impl Daemon {
    fn engine() -> Daemon {
        Daemon::Engine(support::docker::shared().socket.clone())
    }

    fn embedded() -> Daemon {
        Daemon::Embedded
    }

    /// Adds `buildkit_host` to a source.
    fn source(&self, mut source: Value) -> Value {
        if let Daemon::Engine(socket) = self {
            source["buildkit_host"] = json!(format!("docker://{}", socket.display()));
        }
        source
    }

    /// PATH for `out`: the embedded case needs buildkitd (and its runc) on it.
    fn path_env(&self) -> String {
        match self {
            Daemon::Embedded => support::buildkitd::path_env(),
            Daemon::Engine(_) => std::env::var("PATH").unwrap_or_default(),
        }
    }

    fn is_engine(&self) -> bool {
        matches!(self, Daemon::Engine(_))
    }
}

/// Runs a scenario on each daemon; where build.rs found no dockerd or no
/// buildkitd, that daemon's tests are ignored (see build.rs).
macro_rules! on_each_daemon {
    ($($name:ident),* $(,)?) => {
        mod engine {
            $($crate::support::needs! { dockerd;
                #[test]
                fn $name() {
                    super::$name(&super::Daemon::engine());
                }
            })*
        }
        mod embedded {
            $($crate::support::needs! { buildkitd;
                #[test]
                fn $name() {
                    super::$name(&super::Daemon::embedded());
                }
            })*
        }
    };
}

on_each_daemon!(
    minimal_build_pushes_and_check_agrees,
    tags_from_every_source_move_together,
    source_tag_is_reported_whenever_pushed,
    version_with_bump_aliases,
    oci_build_task_params,
    docker_image_params,
    secrets_reach_run_but_not_the_image,
    failed_build_moves_no_tag,
    image_args_from_a_tarball,
    registry_cache_is_reused,
    tls_registry_with_credentials,
);

/// A source dir with files.
pub(crate) struct Src {
    dir: tempfile::TempDir,
}

impl Src {
    pub(crate) fn new(files: &[(&str, &str)]) -> Src {
        let dir = tempfile::tempdir().expect("temp dir");
        for (rel, content) in files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(p, content).expect("write fixture");
        }
        Src { dir }
    }
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs `out` and returns its parsed stdout.
fn out(d: &Daemon, src: &Src, source: Value, params: Value) -> Value {
    run_out(d, src, source, params, &[]).expect_success().json()
}

fn run_out(
    d: &Daemon,
    src: &Src,
    source: Value,
    params: Value,
    env: &[(&str, &str)],
) -> support::cmd::Output {
    let path = d.path_env();
    let mut all: Vec<(&str, &str)> = vec![("PATH", path.as_str())];
    all.extend_from_slice(env);
    support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": d.source(source), "params": params}),
        &all,
    )
}

/// `skopeo inspect --raw | sha256sum`: the digest as the registry serves it,
/// or `None` when the reference does not exist.
pub(crate) fn registry_digest(reg: &Registry, reference: &str) -> Option<String> {
    skopeo(reg, &["inspect", "--raw"], reference).map(|raw| sha256(&raw))
}

pub(crate) fn image_config(reg: &Registry, reference: &str) -> Value {
    let raw = skopeo(reg, &["inspect", "--config", "--raw"], reference).expect("image config");
    serde_json::from_slice(&raw).expect("config is JSON")
}

pub(crate) fn skopeo(reg: &Registry, args: &[&str], reference: &str) -> Option<Vec<u8>> {
    let out = Command::new("skopeo")
        .args(args)
        .args(reg.skopeo_plain_args())
        .arg(format!("docker://{}/{reference}", reg.host))
        .output()
        .expect("skopeo runs");
    out.status.success().then_some(out.stdout)
}

fn sha256(bytes: &[u8]) -> String {
    support::sha256_digest(bytes)
}

pub(crate) fn metadata(resp: &Value, name: &str) -> Option<String> {
    resp["metadata"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["value"].as_str())
        .map(String::from)
}

/// A comma-separated metadata field (`platforms`, `attestations`) as a
/// sorted list; panics when the field is missing.
pub(crate) fn metadata_list(resp: &Value, name: &str) -> Vec<String> {
    let value = metadata(resp, name).unwrap_or_else(|| panic!("no {name} metadata in {resp}"));
    let mut items: Vec<String> = value.split(',').map(String::from).collect();
    items.sort();
    items
}

/// A Dockerfile starting from the shared busybox base (RUN needs a shell).
pub(crate) fn from_base(reg: &Registry, rest: &str) -> String {
    format!("FROM {}\n{rest}", support::fixtures::busybox_base(reg))
}

fn minimal_build_pushes_and_check_agrees(d: &Daemon) {
    let reg = support::registry::plain();
    let repo = support::unique("put-minimal");
    let src = Src::new(&[(
        "src/Dockerfile",
        &from_base(reg, "RUN echo hello > /hello\n"),
    )]);
    let source = reg.source(&repo);
    let resp = out(d, &src, source.clone(), json!({"context": "src"}));

    // No tag asked for: `latest`, and the digest is what the registry serves.
    assert_eq!(resp["version"]["tag"], "latest");
    let digest = resp["version"]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    assert_eq!(
        registry_digest(reg, &format!("{repo}:latest")).as_deref(),
        Some(digest.as_str())
    );
    for name in [
        "repository",
        "tags",
        "platforms",
        "config_digest",
        "buildkit_version",
        "build_duration",
    ] {
        assert!(
            metadata(&resp, name).is_some(),
            "metadata {name} missing: {resp}"
        );
    }
    let raw_config = skopeo(
        reg,
        &["inspect", "--config", "--raw"],
        &format!("{repo}:latest"),
    )
    .expect("config");
    assert_eq!(metadata(&resp, "config_digest"), Some(sha256(&raw_config)));

    // A following check with the same tag emits exactly this version.
    let mut check_source = source.clone();
    check_source["tag"] = json!("latest");
    let versions = support::cmd::run("check", &[], &json!({"source": check_source}), &[])
        .expect_success()
        .json();
    assert_eq!(versions, json!([{"tag": "latest", "digest": digest}]));
}

fn tags_from_every_source_move_together(d: &Daemon) {
    let reg = support::registry::plain();
    let repo = support::unique("put-tags");
    let src = Src::new(&[
        ("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n"),
        ("version/tag", "1.4.2\n"),
        ("version/more", "stable\nnightly  extra\n"),
    ]);
    let mut source = reg.source(&repo);
    source["tag"] = json!("dev");
    let resp = out(
        d,
        &src,
        source,
        json!({"context": "src", "tag_file": "version/tag", "tag_prefix": "v",
               "additional_tags": "version/more", "tag_as_latest": true}),
    );
    // tag_file replaces source.tag (docker-image); the prefix applies to both files.
    assert_eq!(resp["version"]["tag"], "v1.4.2");
    let digest = resp["version"]["digest"].as_str().expect("digest");
    for tag in ["v1.4.2", "vstable", "vnightly", "vextra", "latest"] {
        assert_eq!(
            registry_digest(reg, &format!("{repo}:{tag}")).as_deref(),
            Some(digest),
            "tag {tag}"
        );
    }
    assert_eq!(
        registry_digest(reg, &format!("{repo}:dev")),
        None,
        "source.tag was replaced by tag_file"
    );
    assert_eq!(
        metadata(&resp, "tags").as_deref(),
        Some("v1.4.2 vstable vnightly vextra latest")
    );
}

/// docker-image's migration example (`tag_file` plus `tag_as_latest`,
/// `source.tag: latest`) reports `latest`, the version the following
/// `check` reports, so Concourse holds one version per digest.
fn source_tag_is_reported_whenever_pushed(d: &Daemon) {
    let reg = support::registry::plain();
    let repo = support::unique("put-reported");
    let src = Src::new(&[
        ("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n"),
        ("version/tag", "1.4.2\n"),
    ]);
    let mut source = reg.source(&repo);
    source["tag"] = json!("latest");
    let resp = out(
        d,
        &src,
        source.clone(),
        json!({"context": "src", "tag_file": "version/tag", "tag_as_latest": true}),
    );
    assert_eq!(metadata(&resp, "tags").as_deref(), Some("1.4.2 latest"));
    let versions = support::cmd::run("check", &[], &json!({"source": source}), &[])
        .expect_success()
        .json();
    assert_eq!(versions, json!([resp["version"].clone()]));
    assert_eq!(resp["version"]["tag"], "latest");
}

fn version_with_bump_aliases(d: &Daemon) {
    let reg = support::registry::plain();
    let repo = support::unique("put-semver");
    let src = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    let params = |v: &str| json!({"context": "src", "version": v, "bump_aliases": true});
    let first = out(d, &src, reg.source(&repo), params("1.3.0"));
    let first_digest = first["version"]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    assert_eq!(first["version"]["tag"], "1.3.0");
    for tag in ["latest", "1", "1.3"] {
        assert_eq!(
            registry_digest(reg, &format!("{repo}:{tag}")).as_deref(),
            Some(first_digest.as_str())
        );
    }
    // An older patch line: only its own minor alias moves.
    let src2 = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /x\n")]);
    let second = out(d, &src2, reg.source(&repo), params("v1.2.7"));
    let second_digest = second["version"]["digest"].as_str().expect("digest");
    assert_eq!(second["version"]["tag"], "1.2.7");
    assert_eq!(
        registry_digest(reg, &format!("{repo}:1.2")).as_deref(),
        Some(second_digest)
    );
    for tag in ["latest", "1", "1.3"] {
        assert_eq!(
            registry_digest(reg, &format!("{repo}:{tag}")).as_deref(),
            Some(first_digest.as_str()),
            "{tag}"
        );
    }
}

fn oci_build_task_params(d: &Daemon) {
    let reg = support::registry::plain();
    let repo = support::unique("put-obt");
    let dockerfile = from_base(
        reg,
        "ARG foo\nARG bar\nARG from_yaml\n\
         RUN test \"$foo\" = \"fooval\" && test \"$bar\" = \"bar val\" && test \"$from_yaml\" = \"$(printf 'multi\\nline')\"\n\
         RUN grep -q '1.2.3.4[[:space:]]*test-host' /etc/hosts\n\
         LABEL from_layer=yes\n\
         FROM scratch AS broken\nRUN false\n\
         FROM scratch AS working-target\nCOPY --from=0 /bin/busybox /busybox\nLABEL target=working-target\n",
    );
    let src = Src::new(&[
        ("repo/docker/hello.Dockerfile", &dockerfile),
        ("repo/args.yml", "from_yaml: |-\n  multi\n  line\n"),
        ("repo/labels", "l2=two\n"),
        ("target", "working-target\n"),
    ]);
    let resp = out(
        d,
        &src,
        reg.source(&repo),
        json!({
            "CONTEXT": "repo",
            "DOCKERFILE": "repo/docker/hello.Dockerfile",
            "BUILD_ARG_foo": "fooval",
            "BUILD_ARG_bar": "bar val",
            "BUILD_ARGS_FILE": "repo/args.yml",
            "LABEL_l1": "one",
            "LABELS_FILE": "repo/labels",
            "TARGET_FILE": "target",
            "BUILDKIT_ADD_HOSTS": "test-host=1.2.3.4",
        }),
    );
    let tag = resp["version"]["tag"].as_str().expect("tag");
    let config = image_config(reg, &format!("{repo}:{tag}"));
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["l1"], "one");
    assert_eq!(labels["l2"], "two");
    assert_eq!(labels["target"], "working-target");
}

fn docker_image_params(d: &Daemon) {
    let reg = support::registry::plain();
    let repo = support::unique("put-dir");
    let src = Src::new(&[
        (
            "app/Dockerfile",
            "FROM scratch AS other\nFROM scratch AS main\nARG who\nLABEL who=$who\nCOPY Dockerfile /\n",
        ),
        (
            "app/labels.json",
            r#"{"pipeline": "$BUILD_PIPELINE_NAME", "url": "${ATC_EXTERNAL_URL}/builds/$BUILD_ID"}"#,
        ),
    ]);
    let resp = run_out(
        d,
        &src,
        reg.source(&repo),
        json!({"build": "app", "target_name": "main", "build_args": {"who": "$BUILD_TEAM_NAME"},
               "labels_file": "app/labels.json", "docker_buildkit": 1}),
        &[
            ("BUILD_ID", "42"),
            ("BUILD_PIPELINE_NAME", "pipe"),
            ("BUILD_TEAM_NAME", "team"),
            ("ATC_EXTERNAL_URL", "https://ci"),
        ],
    )
    .expect_success()
    .json();
    let config = image_config(
        reg,
        &format!("{repo}:{}", resp["version"]["tag"].as_str().expect("tag")),
    );
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["who"], "team");
    assert_eq!(labels["pipeline"], "pipe");
    assert_eq!(labels["url"], "https://ci/builds/42");
}

fn secrets_reach_run_but_not_the_image(d: &Daemon) {
    let reg = support::registry::plain();
    let repo = support::unique("put-secrets");
    let text = "hello-world-secret-text";
    let file = "file-secret-content";
    // Compare hashes, never the literal: a literal would land in the history.
    let dockerfile = from_base(
        reg,
        &format!(
            "RUN --mount=type=secret,id=t test \"$(sha256sum < /run/secrets/t | cut -c1-64)\" = \"{}\"\n\
             RUN --mount=type=secret,id=f cp /run/secrets/f /copied-hash-only && sha256sum /copied-hash-only > /h && rm /copied-hash-only\n",
            &sha256(text.as_bytes())[7..],
        ),
    );
    let src = Src::new(&[("src/Dockerfile", &dockerfile), ("secret.txt", file)]);
    let resp = out(
        d,
        &src,
        reg.source(&repo),
        json!({"context": "src", "BUILDKIT_SECRETTEXT_t": text, "secrets": {"f": {"file": "secret.txt"}}}),
    );
    let tag = resp["version"]["tag"].as_str().expect("tag");
    // Pull every blob and look for both secrets in the uncompressed bytes.
    let layout = tempfile::tempdir().expect("dir");
    let status = Command::new("skopeo")
        .arg("copy")
        .args(reg.skopeo_src_args())
        .arg(format!("docker://{}/{repo}:{tag}", reg.host))
        .arg(format!("oci:{}:x", layout.path().display()))
        .status()
        .expect("skopeo");
    assert!(status.success());
    for entry in walkdir::WalkDir::new(layout.path().join("blobs")) {
        let entry = entry.expect("walk");
        if !entry.file_type().is_file() {
            continue;
        }
        let raw = std::fs::read(entry.path()).expect("blob");
        let mut plain = Vec::new();
        if std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut plain)
            .is_err()
        {
            plain = raw;
        }
        let hay = String::from_utf8_lossy(&plain);
        assert!(
            !hay.contains(text) && !hay.contains(file),
            "secret found in {}",
            entry.path().display()
        );
    }
    run_out(
        d,
        &src,
        reg.source(&repo),
        json!({"context": "src", "BUILDKIT_SECRETTEXT_t": text, "secrets": {"f": {"file": "secret.txt"}}}),
        &[],
    )
    .expect_success()
    .expect_not_leaked(text)
    .expect_not_leaked(file);
}

fn failed_build_moves_no_tag(d: &Daemon) {
    let reg = support::registry::plain();
    let repo = support::unique("put-fail");
    let good = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    let mut source = reg.source(&repo);
    source["tag"] = json!("stable");
    let resp = out(d, &good, source.clone(), json!({"context": "src"}));
    let before = resp["version"]["digest"]
        .as_str()
        .expect("digest")
        .to_string();

    let bad = Src::new(&[(
        "src/Dockerfile",
        &from_base(reg, "RUN echo about to fail && false\n"),
    )]);
    let failed = run_out(d, &bad, source, json!({"context": "src"}), &[]);
    failed.expect_failure();
    assert!(
        failed.stderr.contains("about to fail"),
        "the failing step's log is shown\n{}",
        failed.details()
    );
    assert_eq!(
        registry_digest(reg, &format!("{repo}:stable")).as_deref(),
        Some(before.as_str())
    );
}

fn image_args_from_a_tarball(d: &Daemon) {
    let reg = support::registry::plain();
    let repo = support::unique("put-imgarg");
    let base = support::fixtures::busybox_base(reg);
    let src = Src::new(&[(
        "src/Dockerfile",
        "ARG first_image\nFROM ${first_image}\nRUN echo layered > /new-file\n",
    )]);
    // The base as a docker-save tarball, written by skopeo.
    let tar = src.path().join("base/image.tar");
    std::fs::create_dir_all(tar.parent().expect("parent")).expect("mkdir");
    let status = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{base}"))
        .arg(format!("docker-archive:{}:base:latest", tar.display()))
        .status()
        .expect("skopeo");
    assert!(status.success());
    let resp = out(
        d,
        &src,
        reg.source(&repo),
        json!({"context": "src", "IMAGE_ARG_first_image": "base/image.tar"}),
    );
    let tag = resp["version"]["tag"].as_str().expect("tag");
    let base_layers =
        image_config(reg, base.split_once('/').expect("host/repo").1)["rootfs"]["diff_ids"]
            .as_array()
            .expect("diff ids")
            .clone();
    let layers = image_config(reg, &format!("{repo}:{tag}"))["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff ids")
        .clone();
    assert_eq!(layers.len(), base_layers.len() + 1);
    assert_eq!(layers[..base_layers.len()], base_layers[..]);
}

fn registry_cache_is_reused(d: &Daemon) {
    if d.is_engine() {
        // Engine 20.10 exports inline cache only; `cache: true` must still work.
        let reg = support::registry::plain();
        let repo = support::unique("put-cache-engine");
        let src = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
        out(
            d,
            &src,
            reg.source(&repo),
            json!({"context": "src", "cache": true}),
        );
        return;
    }
    let reg = support::registry::plain();
    let repo = support::unique("put-cache");
    let src = Src::new(&[(
        "src/Dockerfile",
        &from_base(reg, "RUN sleep 2 && date > /slow\n"),
    )]);
    let first = run_out(
        d,
        &src,
        reg.source(&repo),
        json!({"context": "src", "cache": true}),
        &[],
    );
    first.expect_success();
    assert!(
        registry_digest(reg, &format!("{repo}:buildcache")).is_some(),
        "cache manifest pushed"
    );
    // A regex matching every tag still reports only the image, not the cache.
    let mut all = reg.source(&repo);
    all["tag_regex"] = json!(".*");
    let versions = support::cmd::run("check", &[], &json!({"source": all}), &[])
        .expect_success()
        .json();
    assert_eq!(
        versions,
        json!([{"tag": "latest", "digest": first.json()["version"]["digest"]}]),
        "the cache manifest is not a version"
    );
    // Each `out` starts a fresh embedded daemon: only the registry cache can hit.
    let second = run_out(
        d,
        &src,
        reg.source(&repo),
        json!({"context": "src", "cache": true}),
        &[],
    );
    second.expect_success();
    assert!(
        second.stderr.contains("CACHED"),
        "second build did not use the cache:\n{}",
        second.details()
    );
    let (a, b) = (first.json(), second.json());
    assert_eq!(
        a["version"]["digest"], b["version"]["digest"],
        "cached build reproduces the image"
    );
}

fn tls_registry_with_credentials(d: &Daemon) {
    let reg = support::registry::tls_auth();
    let repo = support::unique("put-tls");
    let src = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    let resp = out(d, &src, reg.source(&repo), json!({"context": "src"}));
    let digest = resp["version"]["digest"].as_str().expect("digest");
    assert_eq!(
        registry_digest(reg, &format!("{repo}:latest")).as_deref(),
        Some(digest)
    );
    // Wrong password: the push fails and says so without echoing it.
    let mut bad = reg.source(&repo);
    bad["password"] = json!("not-the-password-xyz");
    run_out(d, &src, bad, json!({"context": "src"}), &[])
        .expect_failure()
        .expect_not_leaked("not-the-password-xyz");
}

// --- backend-independent cases ---------------------------------------------

/// Without `ca_certs`, a put to a TLS registry fails as check does, on our
/// own registry client before any daemon: `UnknownIssuer` and the
/// `ca_certs` hint, not BuildKit's plain-HTTP fallback error. No daemon is
/// configured at all, so reaching one would fail differently.
#[test]
fn tls_registry_without_ca_certs_fails_as_check_does_before_any_daemon() {
    let reg = support::registry::tls_auth();
    let src = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    let mut source = reg.source("never-pushed");
    source
        .as_object_mut()
        .expect("source is an object")
        .remove("ca_certs");
    let empty = tempfile::tempdir().expect("dir");
    let path = empty.path().display().to_string();
    for (bin, request) in [
        ("check", json!({"source": source})),
        (
            "out",
            json!({"source": source, "params": {"context": "src"}}),
        ),
    ] {
        support::cmd::run(bin, &[src.path()], &request, &[("PATH", path.as_str())])
            .expect_failure()
            .expect_stderr("UnknownIssuer")
            .expect_stderr("source.ca_certs")
            .expect_not_leaked(reg.password.as_deref().unwrap_or("-"));
    }
}

/// Without the privilege to mount (a user namespace, as an unprivileged
/// container is), `out` says the resource type needs `privileged: true`
/// before starting the embedded daemon, instead of BuildKit's raw mount error.
#[test]
fn without_mount_privileges_out_asks_for_privileged_before_starting_buildkitd() {
    let unshare = support::require_tool("unshare", "util-linux");
    let usable = Command::new(&unshare)
        .args(["--user", "--map-root-user", "true"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        usable,
        "unshare --user --map-root-user must work for this test"
    );
    let reg = support::registry::plain();
    let src = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    // A buildkitd that records being started.
    let support::buildkitd::Recorder { dir: bin, started } = support::buildkitd::recorder();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let request = json!({"source": reg.source("never-pushed"), "params": {"context": "src"}});
    let mut child = Command::new(&unshare)
        .args(["--user", "--map-root-user", "--"])
        .arg(support::cmd::binary("out"))
        .arg(src.path())
        .env_clear()
        .env("TEST", "true")
        .env("PATH", &path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting out under unshare");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        request.to_string().as_bytes(),
    )
    .expect("writing the request");
    let output = child.wait_with_output().expect("out finishes");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("privileged: true") && stderr.contains("buildkit_host"),
        "{stderr}"
    );
    assert!(!started.exists(), "buildkitd was started anyway:\n{stderr}");
}

/// Writes the busybox base as a docker-save tarball and as an OCI layout
/// under `src` (skopeo, an independent writer of both formats).
fn prebuilt(reg: &Registry, src: &Src) -> (PathBuf, PathBuf) {
    let base = support::fixtures::busybox_base(reg);
    let tar = src.path().join("img/image.tar");
    let layout = src.path().join("img/oci");
    std::fs::create_dir_all(src.path().join("img")).expect("mkdir");
    for dest in [
        format!("docker-archive:{}:x:latest", tar.display()),
        format!("oci:{}:t", layout.display()),
    ] {
        support::run_tool(
            Command::new("skopeo")
                .arg("copy")
                .args(reg.skopeo_src_args())
                .arg(format!("docker://{base}"))
                .arg(dest),
        );
    }
    (tar, layout)
}

/// Pushes the one-image OCI layout at `src/<rel>` and checks, against
/// skopeo, that the image manifest itself went up (not the layout's
/// index.json, whose `ref.name` annotation is local to the layout): the
/// version digest is `skopeo inspect --raw oci:<layout> | sha256sum` of the
/// image manifest, the registry serves that digest under the tag, and a
/// following `check` reports it. `oci_ref` is the `oci:` reference skopeo
/// reads the layout by.
fn one_image_layout_pushes_the_image(src: &Src, rel: &str, oci_ref: &str, what: &str) {
    let reg = support::registry::plain();
    let repo = support::unique(&format!("put-layout-{what}"));
    let mut source = reg.source(&repo);
    source["tag"] = json!("2.0.0");
    let resp = support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": {"image": rel, "version": "2.0"}}),
        &[],
    )
    .expect_success()
    .json();
    assert_eq!(resp["version"]["tag"], "2.0.0", "{what}");
    let raw = support::run_tool(Command::new("skopeo").args(["inspect", "--raw", oci_ref]));
    let manifest: Value = serde_json::from_slice(&raw).expect("the layout's manifest is JSON");
    assert!(
        manifest.get("config").is_some() && manifest.get("manifests").is_none(),
        "{what}: skopeo reads an image manifest from the layout: {manifest}"
    );
    let digest = sha256(&raw);
    assert_eq!(
        resp["version"]["digest"].as_str(),
        Some(digest.as_str()),
        "{what}: the version is the image manifest's digest, not index.json's"
    );
    assert_ne!(
        Some(sha256(
            &std::fs::read(src.path().join(rel).join("index.json")).expect("index.json")
        )),
        resp["version"]["digest"].as_str().map(String::from),
        "{what}"
    );
    assert_eq!(
        registry_digest(reg, &format!("{repo}:2.0.0")).as_deref(),
        Some(digest.as_str()),
        "{what}"
    );
    let versions = support::cmd::run("check", &[], &json!({"source": source}), &[])
        .expect_success()
        .json();
    assert_eq!(
        versions,
        json!([{"tag": "2.0.0", "digest": digest}]),
        "{what}"
    );
    assert_eq!(
        metadata(&resp, "platforms").as_deref(),
        Some("linux/amd64"),
        "{what}"
    );
}

/// A one-image layout written by skopeo (`skopeo copy ... oci:dir:tag`).
#[test]
fn push_mode_pushes_the_image_of_a_one_image_layout_from_skopeo() {
    let src = Src::new(&[]);
    let (_, layout) = prebuilt(support::registry::plain(), &src);
    let oci_ref = format!("oci:{}:t", layout.display());
    one_image_layout_pushes_the_image(&src, "img/oci", &oci_ref, "skopeo");
}

/// A one-image layout written by umoci (`umoci init` + `new` + `insert`).
#[test]
fn push_mode_pushes_the_image_of_a_one_image_layout_from_umoci() {
    let umoci = support::require_tool("umoci", "umoci");
    let src = Src::new(&[("payload/hello.txt", "hello\n")]);
    let layout = src.path().join("img/umoci");
    let image = format!("{}:latest", layout.display());
    support::run_tool(
        Command::new(&umoci)
            .arg("init")
            .arg("--layout")
            .arg(&layout),
    );
    support::run_tool(Command::new(&umoci).args(["new", "--image", &image]));
    support::run_tool(
        Command::new(&umoci)
            .args(["insert", "--image", &image])
            .arg(src.path().join("payload/hello.txt"))
            .arg("/hello.txt"),
    );
    support::run_tool(Command::new(&umoci).args([
        "config",
        "--image",
        &image,
        "--os=linux",
        "--architecture=amd64",
    ]));
    one_image_layout_pushes_the_image(&src, "img/umoci", &format!("oci:{image}"), "umoci");
}

/// A one-platform layout written by `buildctl --output type=oci` (unpacked
/// from its tarball) on a standalone buildkitd, with `buildctl` from the
/// same directory as `$BUILDKITD`.
#[test]
#[cfg_attr(
    not(have_buildkitd),
    ignore = "needs buildkitd and buildctl: set BUILDKITD or put them on PATH (as root)"
)]
fn push_mode_pushes_the_image_of_a_one_image_layout_from_buildctl() {
    let binary = support::buildkitd::find();
    let buildctl = binary
        .parent()
        .map(|d| d.join("buildctl"))
        .filter(|p| p.is_file())
        .or_else(|| support::which("buildctl"))
        .expect("buildctl beside buildkitd or on PATH");
    let daemon = support::buildkitd::Standalone::unix(&binary);
    let src = Src::new(&[
        ("ctx/Dockerfile", "FROM scratch\nCOPY hello.txt /\n"),
        ("ctx/hello.txt", "hello\n"),
    ]);
    let tarball = src.path().join("img/buildctl.tar");
    let layout = src.path().join("img/buildctl");
    std::fs::create_dir_all(&layout).expect("mkdir");
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
            .args(["--opt", "platform=linux/amd64", "--output"])
            .arg(format!("type=oci,dest={}", tarball.display())),
    );
    support::run_tool(
        Command::new("tar")
            .arg("-xf")
            .arg(&tarball)
            .arg("-C")
            .arg(&layout),
    );
    let oci_ref = format!("oci:{}", layout.display());
    one_image_layout_pushes_the_image(&src, "img/buildctl", &oci_ref, "buildctl");
}

#[test]
fn push_mode_pushes_a_docker_save_tarball_and_check_agrees() {
    let reg = support::registry::tls_auth();
    let src = Src::new(&[("tags", "x1 x2\n")]);
    let (_, _) = prebuilt(support::registry::plain(), &src);
    let repo = support::unique("put-image-tar");
    let mut source = reg.source(&repo);
    source["tag"] = json!("stable");
    // docker-image's `load_file` spelling.
    let out = support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": {"load_file": "img/image.tar", "additional_tags": "tags"}}),
        &[],
    );
    out.expect_success()
        .expect_not_leaked(reg.password.as_deref().unwrap_or("-"));
    let resp = out.json();
    let digest = resp["version"]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    for tag in ["stable", "x1", "x2"] {
        assert_eq!(
            registry_digest(reg, &format!("{repo}:{tag}")).as_deref(),
            Some(digest.as_str()),
            "{tag}"
        );
    }
    let versions = support::cmd::run("check", &[], &json!({"source": source}), &[])
        .expect_success()
        .json();
    assert_eq!(versions, json!([{"tag": "stable", "digest": digest}]));
    // Pushing the same tarball again uploads nothing new and yields the same digest.
    let again = support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": {"image": "img/image.tar"}}),
        &[],
    );
    again.expect_success();
    assert_eq!(
        again.json()["version"]["digest"].as_str(),
        Some(digest.as_str())
    );
    assert!(
        again.stderr.contains("already in the registry"),
        "{}",
        again.details()
    );
}

#[test]
fn params_errors_fail_before_any_daemon() {
    let reg = support::registry::plain();
    let src = Src::new(&[("src/Dockerfile", "FROM scratch\n")]);
    let cases: &[(Value, &str)] = &[
        (json!({"context": "nope"}), "does not exist"),
        (json!({"context": "src", "CONTEXT": "src"}), "keep only one"),
        (
            json!({"context": "src", "OUTPUT_OCI": "true"}),
            "oci-layout",
        ),
        (json!({"contxt": "src"}), "did you mean \"context\""),
        (
            json!({"context": "src", "version": "hoogily-boogily"}),
            "invalid semantic version",
        ),
        (json!({"image": "missing/*.tar"}), "does not exist"),
        // Semver mode (no source.tag) would report a version-like cache tag.
        (
            json!({"context": "src", "cache": true, "cache_tag": "1.2.3"}),
            "cache_tag \"1.2.3\" is a version tag",
        ),
        (
            json!({"context": "src", "cache": true, "cache_tag": "latest", "tag_as_latest": true}),
            "is also a tag this put pushes",
        ),
    ];
    for (params, expected) in cases {
        support::cmd::run(
            "out",
            &[src.path()],
            &json!({"source": reg.source("never-pushed"), "params": params}),
            &[],
        )
        .expect_failure()
        .expect_stderr(expected);
    }
}

#[test]
fn no_daemon_configured_names_the_three_options() {
    let reg = support::registry::plain();
    let src = Src::new(&[("src/Dockerfile", "FROM scratch\n")]);
    // A PATH without buildkitd, no BUILDKIT_HOST, no buildkit_host.
    let empty = tempfile::tempdir().expect("dir");
    let path = empty.path().display().to_string();
    let failed = support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": reg.source("never-pushed"), "params": {"context": "src"}}),
        &[("PATH", path.as_str())],
    );
    failed.expect_failure();
    for word in ["buildkit_host", "BUILDKIT_HOST", "buildkitd"] {
        failed.expect_stderr(word);
    }
}

needs! { dockerd;
    #[test]
    fn multi_platform_on_the_engine_is_a_clear_error() {
        let d = Daemon::engine();
        let reg = support::registry::plain();
        let src = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
        run_out(
            &d,
            &src,
            reg.source("never-pushed"),
            json!({"context": "src", "IMAGE_PLATFORM": "linux/amd64,linux/arm64"}),
            &[],
        )
        .expect_failure()
        .expect_stderr("multi-platform");
    }
}

needs! { dockerd;
    #[test]
    fn params_the_engine_ignores_are_warned_about() {
        let d = Daemon::engine();
        let reg = support::registry::plain();
        let repo = support::unique("put-ignored-params");
        let src = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
        let mut source = reg.source(&repo);
        source["insecure"] = json!(true);
        let params = json!({
            "context": "src",
            "cache": true,
            "registry_mirrors": ["mirror.invalid:5000"],
            "buildkit_extra_config": "debug = true",
        });
        // Twice: the second build imports the first's pushed tag as inline cache
        // (with registry.insecure, the source being insecure).
        for _ in 0..2 {
            let run = run_out(&d, &src, source.clone(), params.clone(), &[]);
            run.expect_success();
            for warning in [
                "params.registry_mirrors is ignored",
                "params.buildkit_extra_config is ignored",
            ] {
                assert!(
                    run.stderr.contains(warning),
                    "no {warning:?} warning:\n{}",
                    run.details()
                );
            }
        }
    }
}

#[test]
fn preloaded_images_with_a_tcp_daemon_fail_before_connecting() {
    let reg = support::registry::plain();
    let src = Src::new(&[
        ("src/Dockerfile", "ARG base\nFROM ${base}\n"),
        ("base/image.tar", "not read: the check comes first"),
    ]);
    let mut source = reg.source("never-pushed");
    // Nothing listens on port 1: a connection attempt would fail differently.
    source["buildkit_host"] = json!("tcp://127.0.0.1:1");
    support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": {"context": "src", "IMAGE_ARG_base": "base/image.tar"}}),
        &[],
    )
    .expect_failure()
    .expect_stderr("cannot be used with the buildkitd at tcp://127.0.0.1:1");
}

/// A `tcp://` buildkit_host that accepts connections and never answers
/// fails `out` within `buildkit_timeout` with one message naming
/// buildkit_host and the timeout; without the timeout, `out` would hang
/// with an empty stderr.
#[test]
fn a_silent_tcp_buildkit_host_fails_within_buildkit_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    // Accepts and holds every connection, sending nothing; ends with the
    // test process.
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for sock in listener.incoming() {
            open.push(sock);
        }
    });
    let reg = support::registry::plain();
    let src = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    let mut source = reg.source("never-pushed");
    source["buildkit_host"] = json!(format!("tcp://127.0.0.1:{port}"));
    source["buildkit_timeout"] = json!("2s");
    let start = std::time::Instant::now();
    let run = support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": {"context": "src"}}),
        &[],
    );
    run.expect_failure().expect_stderr(&format!(
        "buildkit_host tcp://127.0.0.1:{port} did not answer within 2s"
    ));
    assert!(
        start.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}:\n{}",
        start.elapsed(),
        run.details()
    );
}
