//! The default path of `out`, end to end: scenarios that only a real
//! buildkitd can show, each run on the embedded daemon (no `buildkit_host`;
//! `buildkitd` put on PATH) and on a standalone buildkitd that the test
//! starts on `unix://` (`buildkit_host`).
//!
//! - a multi-platform index, and `check`/`in` picking each platform;
//! - the registry cache reused by a second, fresh daemon;
//! - `load_base` and `IMAGE_ARG_*` from `get` directories;
//! - push by digest with tags moved last, and failed pushes moving no tag
//!   (through `support::proxy`);
//! - a `tcp://` buildkitd with mutual TLS (standalone only);
//! - SIGTERM to `out` mid-build leaving no process or mount behind.
//!
//! Results are checked from the outside: skopeo reads the registry, our own
//! `check` and `in` read it as a pipeline would, `/proc` shows what runs.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::put::{Src, from_base, image_config, metadata, metadata_list, registry_digest, skopeo};
use crate::support;
use crate::support::buildkitd::Standalone;
use crate::support::needs;
use crate::support::registry::Registry;

/// Where a scenario builds.
enum Daemon {
    /// No buildkit_host: `out` starts the `buildkitd` found on PATH.
    Embedded(PathBuf),
    /// `buildkit_host: unix://…` of a buildkitd this test started.
    Standalone(PathBuf, Standalone),
}

impl Daemon {
    fn embedded() -> Daemon {
        Daemon::Embedded(support::buildkitd::find())
    }

    fn standalone() -> Daemon {
        let binary = support::buildkitd::find();
        let daemon = Standalone::unix(&binary);
        Daemon::Standalone(binary, daemon)
    }

    /// A daemon of the same kind with an empty state: the embedded one is
    /// fresh on every `out` anyway; a standalone one is started anew.
    fn fresh(&self) -> Daemon {
        match self {
            Daemon::Embedded(bin) => Daemon::Embedded(bin.clone()),
            Daemon::Standalone(bin, _) => Daemon::Standalone(bin.clone(), Standalone::unix(bin)),
        }
    }

    /// Adds `buildkit_host` to a source.
    fn source(&self, mut source: Value) -> Value {
        if let Daemon::Standalone(_, daemon) = self {
            source["buildkit_host"] = json!(daemon.address);
        }
        source
    }

    /// PATH for `out`: the embedded case needs buildkitd (and runc) on it.
    fn path_env(&self) -> String {
        match self {
            Daemon::Embedded(_) => support::buildkitd::path_env(),
            Daemon::Standalone(..) => std::env::var("PATH").unwrap_or_default(),
        }
    }

    /// The standalone daemon's log, for failure messages.
    fn log_tail(&self) -> String {
        match self {
            Daemon::Embedded(_) => String::new(),
            Daemon::Standalone(_, daemon) => {
                format!("\n--- buildkitd log ---\n{}", daemon.log_tail(40))
            }
        }
    }
}

/// Runs a scenario on the embedded daemon and on a standalone one.
macro_rules! on_each_daemon {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $($crate::support::needs! { buildkitd;
                #[test]
                fn $name() {
                    super::$name(&super::Daemon::embedded());
                }
            })*
        }
        mod standalone {
            $($crate::support::needs! { buildkitd;
                #[test]
                fn $name() {
                    super::$name(&super::Daemon::standalone());
                }
            })*
        }
    };
}

on_each_daemon!(
    multi_platform_index_and_check_and_in_pick_each_platform,
    registry_cache_is_reused_by_a_fresh_daemon,
    load_base_and_image_arg_from_get_directories,
    push_by_digest_then_tags_and_failed_pushes_move_no_tag,
    a_run_step_that_prints_its_secrets_shows_none_of_them,
    a_file_name_that_is_not_utf8_reaches_the_image_as_its_bytes,
);

fn run_out(d: &Daemon, src: &Src, source: Value, params: Value) -> support::cmd::Output {
    let path = d.path_env();
    support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": d.source(source), "params": params}),
        &[("PATH", path.as_str())],
    )
}

#[track_caller]
fn out(d: &Daemon, src: &Src, source: Value, params: Value) -> Value {
    let run = run_out(d, src, source, params);
    if !run.status.success() {
        panic!("out failed\n{}{}", run.details(), d.log_tail());
    }
    run.json()
}

fn version_digest(resp: &Value) -> String {
    resp["version"]["digest"]
        .as_str()
        .expect("version digest")
        .to_string()
}

/// `in` of `repository:tag@digest` into `dest` with `params`.
fn get(reg: &Registry, repo: &str, tag: &str, digest: &str, params: Value, dest: &Path) {
    // Concourse creates the destination before running `in`.
    std::fs::create_dir_all(dest).expect("creating the get directory");
    let mut source = reg.source(repo);
    source["tag"] = json!(tag);
    support::cmd::run(
        "in",
        &[dest],
        &json!({"source": source, "version": {"tag": tag, "digest": digest}, "params": params}),
        &[],
    )
    .expect_success();
}

/// A context file whose name is not UTF-8 is sent as its bytes (as
/// buildctl sends it), and `in` unpacks it under the same bytes.
fn a_file_name_that_is_not_utf8_reaches_the_image_as_its_bytes(d: &Daemon) {
    use std::os::unix::ffi::OsStrExt;
    let reg = support::registry::plain();
    let repo = support::unique("main-non-utf8");
    let src = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY . /ctx/\n")]);
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::write(src.path().join("src").join(name), "latin-1\n").expect("write");
    let mut source = reg.source(&repo);
    source["tag"] = json!("v1");
    let resp = out(d, &src, source, json!({"context": "src"}));
    let dest = tempfile::tempdir().expect("temp dir");
    get(
        reg,
        &repo,
        "v1",
        &version_digest(&resp),
        json!({}),
        dest.path(),
    );
    let copied = dest.path().join("rootfs/ctx").join(name);
    assert_eq!(
        std::fs::read_to_string(&copied).unwrap_or_else(|e| panic!("{}: {e}", copied.display())),
        "latin-1\n"
    );
}

fn multi_platform_index_and_check_and_in_pick_each_platform(d: &Daemon) {
    let reg = support::registry::plain();
    let repo = support::unique("main-multi-platform");
    let base = support::fixtures::busybox_base(reg);
    // The RUN stage runs on the build platform: no emulation is needed.
    let src = Src::new(&[(
        "src/Dockerfile",
        &format!(
            "FROM --platform=$BUILDPLATFORM {base} AS build\nARG TARGETARCH\n\
             RUN echo $TARGETARCH > /arch\nFROM scratch\nCOPY --from=build /arch /arch\n"
        ),
    )]);
    let resp = out(
        d,
        &src,
        reg.source(&repo),
        json!({"context": "src", "platforms": ["linux/amd64", "linux/arm64"]}),
    );
    let digest = version_digest(&resp);
    assert_eq!(
        registry_digest(reg, &format!("{repo}:latest")).as_deref(),
        Some(digest.as_str()),
        "the version is the index the registry serves"
    );
    let raw = skopeo(reg, &["inspect", "--raw"], &format!("{repo}:latest")).expect("index");
    let index: Value = serde_json::from_slice(&raw).expect("index is JSON");
    let mut archs = Vec::new();
    let mut attested = Vec::new();
    for child in index["manifests"].as_array().expect("an index") {
        // Provenance (on by default): one attestation per image, not a platform.
        if child["annotations"]["vnd.docker.reference.type"] == "attestation-manifest" {
            assert_eq!(child["platform"]["os"], "unknown", "{child}");
            attested.push(child["annotations"]["vnd.docker.reference.digest"].clone());
            continue;
        }
        let arch = child["platform"]["architecture"]
            .as_str()
            .expect("platform");
        let config = image_config(
            reg,
            &format!("{repo}@{}", child["digest"].as_str().unwrap()),
        );
        assert_eq!(config["architecture"], arch, "config of the {arch} image");
        assert_eq!(config["os"], "linux");
        archs.push(arch.to_string());
    }
    archs.sort();
    assert_eq!(archs, ["amd64", "arm64"], "{index}");
    assert_eq!(attested.len(), 2, "an attestation for each image: {index}");
    assert_eq!(
        metadata_list(&resp, "platforms"),
        ["linux/amd64", "linux/arm64"]
    );
    assert_eq!(
        metadata(&resp, "attestations").as_deref(),
        Some("provenance")
    );

    let mut check_source = reg.source(&repo);
    check_source["tag"] = json!("latest");
    let versions = support::cmd::run("check", &[], &json!({"source": check_source}), &[])
        .expect_success()
        .json();
    assert_eq!(versions, json!([{"tag": "latest", "digest": digest}]));

    for arch in ["arm64", "amd64"] {
        let dest = tempfile::tempdir().expect("dest");
        get(
            reg,
            &repo,
            "latest",
            &digest,
            json!({"platform": {"architecture": arch}}),
            dest.path(),
        );
        let got = std::fs::read_to_string(dest.path().join("rootfs/arch")).expect("rootfs/arch");
        assert_eq!(got, format!("{arch}\n"), "in picked the {arch} image");
    }
}

/// A `RUN` step that prints its secrets (`set -x` with an env mount, a
/// file mount and a text secret) and then fails: neither the progress nor
/// the failure's log tail shows a secret value.
fn a_run_step_that_prints_its_secrets_shows_none_of_them(d: &Daemon) {
    const TEXT: &str = "text-secret-value-4f1c";
    const FILE: &str = "file-secret-value-9a2e";
    const ENV: &str = "env-secret-value-7d3b";
    let reg = support::registry::plain();
    let src = Src::new(&[
        (
            "src/Dockerfile",
            &from_base(
                reg,
                "RUN --mount=type=secret,id=t,env=T --mount=type=secret,id=f --mount=type=secret,id=e,env=E \\\n    \
                 set -x; echo \"$T\"; cat /run/secrets/f; echo \"$E\"; echo \"t=$T f=$(cat /run/secrets/f)\"; exit 3\n",
            ),
        ),
        ("secret.txt", &format!("{FILE}\n")),
    ]);
    let path = d.path_env();
    let run = support::cmd::run(
        "out",
        &[src.path()],
        &json!({
            "source": d.source(reg.source(&support::unique("main-secrets"))),
            "params": {
                "context": "src",
                "secrets": {"t": {"text": TEXT}, "f": {"file": "secret.txt"}, "e": {"env": "SECRET_FROM_ENV"}},
            },
        }),
        &[("PATH", path.as_str()), ("SECRET_FROM_ENV", ENV)],
    );
    run.expect_failure()
        .expect_stderr("<redacted>")
        .expect_not_leaked(TEXT)
        .expect_not_leaked(FILE)
        .expect_not_leaked(ENV);
}

fn registry_cache_is_reused_by_a_fresh_daemon(d: &Daemon) {
    let reg = support::registry::plain();
    let repo = support::unique("main-cache");
    let src = Src::new(&[(
        "src/Dockerfile",
        &from_base(reg, "RUN sleep 3 && date > /slow\n"),
    )]);
    let params = json!({"context": "src", "cache": true});
    let started = Instant::now();
    let first = run_out(d, &src, reg.source(&repo), params.clone());
    let first_time = started.elapsed();
    assert!(
        first.status.success(),
        "{}{}",
        first.details(),
        d.log_tail()
    );
    assert!(
        registry_digest(reg, &format!("{repo}:buildcache")).is_some(),
        "cache manifest pushed"
    );
    // An empty daemon: only the registry cache can hit.
    let fresh = d.fresh();
    let started = Instant::now();
    let second = run_out(&fresh, &src, reg.source(&repo), params);
    let second_time = started.elapsed();
    assert!(
        second.status.success(),
        "{}{}",
        second.details(),
        fresh.log_tail()
    );
    assert!(
        second.stderr.contains("CACHED"),
        "second build did not use the cache:\n{}",
        second.details()
    );
    assert!(
        second_time + Duration::from_secs(2) < first_time,
        "cached build not faster: first {first_time:?} (build_duration {:?}), second {second_time:?} \
         (build_duration {:?})",
        metadata(&first.json(), "build_duration"),
        metadata(&second.json(), "build_duration"),
    );
    assert_eq!(
        version_digest(&first.json()),
        version_digest(&second.json()),
        "the cached build reproduces the image"
    );
}

fn load_base_and_image_arg_from_get_directories(d: &Daemon) {
    let reg = support::registry::plain();
    let shared_base = support::fixtures::busybox_base(reg);
    // A private copy of the base, fetched with `in`, then deleted from the
    // registry: the build can only get it from the `get` directories.
    let base_repo = support::unique("main-load-base");
    support::run_tool(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--preserve-digests"])
            .args(reg.skopeo_src_args())
            .args(reg.skopeo_dest_args())
            .arg(format!("docker://{shared_base}"))
            .arg(format!("docker://{}", reg.reference(&base_repo, "v1"))),
    );
    let base_digest = registry_digest(reg, &format!("{base_repo}:v1")).expect("copied base");
    let base_layers = image_config(reg, &format!("{base_repo}:v1"))["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff ids")
        .clone();
    let src = Src::new(&[(
        "src/Dockerfile",
        &format!(
            "ARG tool\nFROM ${{tool}} AS tool\nFROM {}\n\
             COPY --from=tool /bin/busybox /tool-busybox\nRUN echo layered > /new-file\n",
            reg.reference(&base_repo, "v1")
        ),
    )]);
    let base_get = src.path().join("base-get");
    let tool_get = src.path().join("tool-get");
    get(
        reg,
        &base_repo,
        "v1",
        &base_digest,
        json!({"format": "oci"}),
        &base_get,
    );
    assert!(base_get.join("image.tar").is_file());
    get(
        reg,
        &base_repo,
        "v1",
        &base_digest,
        json!({"format": "oci-layout"}),
        &tool_get,
    );
    reg.delete(&format!("{base_repo}:v1"));
    assert_eq!(
        registry_digest(reg, &format!("{base_repo}:v1")),
        None,
        "the base is gone from the registry"
    );

    let repo = support::unique("main-load-base-out");
    let resp = out(
        d,
        &src,
        reg.source(&repo),
        json!({"context": "src", "load_base": "base-get", "IMAGE_ARG_tool": "tool-get/oci"}),
    );
    let layers =
        image_config(reg, &format!("{repo}@{}", version_digest(&resp)))["rootfs"]["diff_ids"]
            .as_array()
            .expect("diff ids")
            .clone();
    assert_eq!(layers.len(), base_layers.len() + 2, "base + COPY + RUN");
    assert_eq!(layers[..base_layers.len()], base_layers[..]);
}

/// Index of the first request matching `pred`.
fn first(requests: &[String], pred: impl Fn(&str) -> bool) -> Option<usize> {
    requests.iter().position(|r| pred(r))
}

fn push_by_digest_then_tags_and_failed_pushes_move_no_tag(d: &Daemon) {
    let reg = support::registry::plain();
    let repo = support::unique("main-push");
    let tag_path = format!("/v2/{repo}/manifests/stable");
    let source = |proxy: &support::proxy::Proxy| json!({"repository": format!("{}/{repo}", proxy.host), "tag": "stable"});

    // A good push: blobs and the manifest by digest, then the tag.
    let proxy = support::proxy::Proxy::start(&reg.host);
    let good = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    let old = version_digest(&out(d, &good, source(&proxy), json!({"context": "src"})));
    let requests = proxy.requests();
    let by_digest = format!("/v2/{repo}/manifests/{old}");
    let digest_put = first(&requests, |r| r == format!("PUT {by_digest}"))
        .unwrap_or_else(|| panic!("no PUT {by_digest}: {requests:#?}"));
    let tag_put = first(&requests, |r| r == format!("PUT {tag_path}"))
        .unwrap_or_else(|| panic!("no PUT {tag_path}: {requests:#?}"));
    let last_blob = requests
        .iter()
        .rposition(|r| !r.starts_with("GET ") && !r.starts_with("HEAD ") && r.contains("/blobs/"))
        .unwrap_or_else(|| panic!("no blob upload: {requests:#?}"));
    assert!(
        last_blob < digest_put && digest_put < tag_put,
        "blobs, then the manifest by digest, then the tag: {requests:#?}"
    );
    assert_eq!(
        registry_digest(reg, &format!("{repo}:stable")).as_deref(),
        Some(old.as_str())
    );

    let changed = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /other\n")]);
    // The tag cannot be written: the image lands by digest, the tag stays.
    let proxy = support::proxy::Proxy::start(&reg.host);
    // 400, not 5xx: a server error would be retried for an hour.
    proxy.fail(Some("PUT"), &tag_path, 1000, 400);
    let failed = run_out(d, &changed, source(&proxy), json!({"context": "src"}));
    failed.expect_failure().expect_stderr("stable");
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.starts_with(&format!("PUT /v2/{repo}/manifests/sha256:"))),
        "the new image was pushed by digest first: {:#?}",
        proxy.requests()
    );
    assert_eq!(
        registry_digest(reg, &format!("{repo}:stable")).as_deref(),
        Some(old.as_str()),
        "a failed tag write keeps the old image under the tag"
    );

    // The manifest cannot be pushed by digest: no tag is even tried. (A
    // new image: the one above is in the registry by digest already.)
    let third = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /third\n")]);
    let proxy = support::proxy::Proxy::start(&reg.host);
    proxy.fail(
        Some("PUT"),
        &format!("/v2/{repo}/manifests/sha256:"),
        1000,
        400,
    );
    let failed = run_out(d, &third, source(&proxy), json!({"context": "src"}));
    failed.expect_failure();
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.starts_with(&format!("PUT /v2/{repo}/manifests/sha256:"))),
        "the push by digest was tried: {:#?}",
        proxy.requests()
    );
    let requests = proxy.requests();
    assert!(
        first(&requests, |r| r == format!("PUT {tag_path}")).is_none(),
        "a tag was written after a failed push: {requests:#?}"
    );
    assert_eq!(
        registry_digest(reg, &format!("{repo}:stable")).as_deref(),
        Some(old.as_str())
    );
}

// --- mutual TLS --------------------------------------------------------------

/// PEM files made by openssl: a CA, a daemon certificate for 127.0.0.1
/// signed by it, a client certificate signed by it, and an unrelated CA.
pub(crate) struct MtlsFiles {
    pub(crate) ca: PathBuf,
    pub(crate) server: PathBuf,
    pub(crate) server_key: PathBuf,
    pub(crate) client: PathBuf,
    pub(crate) client_key: PathBuf,
    pub(crate) other_ca: PathBuf,
}

pub(crate) fn make_mtls_files(dir: &Path) -> MtlsFiles {
    use test_support::certs;
    let ca = certs::ca(dir, "ca");
    let other_ca = certs::ca(dir, "other-ca");
    let server = certs::leaf(
        dir,
        "server",
        &ca,
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    );
    let client = certs::leaf(dir, "client", &ca, "extendedKeyUsage=clientAuth\n");
    MtlsFiles {
        ca: ca.cert,
        server: server.cert,
        server_key: server.key,
        client: client.cert,
        client_key: client.key,
        other_ca: other_ca.cert,
    }
}

pub(crate) fn pem(path: &Path) -> String {
    std::fs::read_to_string(path).expect("PEM file")
}

/// A buildkitd on `tcp://` requiring client certificates, and a put
/// whose `buildkit_tls` can be varied.
struct Mtls {
    files: MtlsFiles,
    daemon: Standalone,
    src: Src,
    repo: String,
    /// A line of the client key's body: what a leak would show.
    key_line: String,
    _certs: tempfile::TempDir,
}

impl Mtls {
    fn start() -> Mtls {
        let binary = support::buildkitd::find();
        let certs = tempfile::tempdir().expect("certs dir");
        let files = make_mtls_files(certs.path());
        let daemon = Standalone::tcp_tls(
            &binary,
            &support::buildkitd::ServerTls {
                ca_cert: files.ca.clone(),
                cert: files.server.clone(),
                key: files.server_key.clone(),
            },
        );
        let reg = support::registry::plain();
        let src = Src::new(&[(
            "src/Dockerfile",
            &from_base(reg, "RUN echo over-mtls > /proof\n"),
        )]);
        let key_line = pem(&files.client_key)
            .lines()
            .find(|l| !l.starts_with("-----") && l.len() > 20)
            .expect("key body")
            .to_string();
        Mtls {
            files,
            daemon,
            src,
            repo: support::unique("main-mtls"),
            key_line,
            _certs: certs,
        }
    }

    fn full(&self) -> Value {
        json!({"ca_cert": pem(&self.files.ca), "cert": pem(&self.files.client),
               "key": pem(&self.files.client_key)})
    }

    fn wrong_ca(&self) -> Value {
        let mut tls = self.full();
        tls["ca_cert"] = json!(pem(&self.files.other_ca));
        tls
    }

    fn no_client_cert(&self) -> Value {
        json!({"ca_cert": pem(&self.files.ca)})
    }

    fn out(&self, tls: Value) -> support::cmd::Output {
        let mut source = support::registry::plain().source(&self.repo);
        source["buildkit_host"] = json!(self.daemon.address);
        source["buildkit_tls"] = tls;
        support::cmd::run(
            "out",
            &[self.src.path()],
            &json!({"source": source, "params": {"context": "src"}}),
            &[],
        )
    }
}

needs! { buildkitd;
    #[test]
    fn tcp_buildkitd_with_mutual_tls() {
        let mtls = Mtls::start();
        let reg = support::registry::plain();
        let ok = mtls.out(mtls.full());
        if !ok.status.success() {
            panic!(
                "out over mTLS failed\n{}\n--- buildkitd log ---\n{}",
                ok.details(),
                mtls.daemon.log_tail(40)
            );
        }
        ok.expect_not_leaked(&mtls.key_line);
        let digest = version_digest(&ok.json());
        let latest = format!("{}:latest", mtls.repo);
        assert_eq!(
            registry_digest(reg, &latest).as_deref(),
            Some(digest.as_str())
        );
        // A daemon we cannot verify, or one that refuses us: no build, no leak.
        for tls in [mtls.wrong_ca(), mtls.no_client_cert()] {
            mtls.out(tls)
                .expect_failure()
                .expect_not_leaked(&mtls.key_line);
        }
        assert_eq!(
            registry_digest(reg, &latest).as_deref(),
            Some(digest.as_str())
        );
    }
}

needs! { buildkitd;
    #[test]
    fn tcp_buildkitd_tls_errors_name_buildkit_tls() {
        let mtls = Mtls::start();
        for tls in [mtls.wrong_ca(), mtls.no_client_cert()] {
            let run = mtls.out(tls);
            run.expect_failure()
                .expect_stderr("buildkit_tls")
                .expect_stderr("certificate")
                .expect_not_leaked(&mtls.key_line);
            assert!(
                !run.stderr.contains("source.ca_certs"),
                "the hint names the registry's CA, not the daemon's:\n{}",
                run.details()
            );
        }
    }
}

// --- shutdown ----------------------------------------------------------------

/// Processes (other than us) whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    support::process::list()
        .into_iter()
        .filter(|p| p.pid != me && p.cmdline.contains(needle))
        .map(|p| (p.pid, p.cmdline))
        .collect()
}

/// The RUN step's shell (its command line names `marker`) and its children.
fn run_step_processes(marker: &str) -> Vec<(i32, String)> {
    let all = support::process::list();
    let shells: Vec<i32> = all
        .iter()
        .filter(|p| p.cmdline.contains(marker) && p.cmdline.contains("sleep 30"))
        .map(|p| p.pid)
        .collect();
    all.into_iter()
        .filter(|p| shells.contains(&p.pid) || shells.contains(&p.ppid))
        .map(|p| (p.pid, p.cmdline))
        .collect()
}

/// Those of `procs` still running the same command (a reused pid is not).
fn still_running(procs: &[(i32, String)]) -> Vec<(i32, String)> {
    procs
        .iter()
        .filter(|(pid, cmd)| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ") == *cmd)
        })
        .cloned()
        .collect()
}

/// Mount points under `dir` in our mount namespace.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let prefix = dir.display().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(String::from)
        .collect()
}

/// Kills what a failed shutdown left behind (processes of this test, by
/// pid) and unmounts its mounts, so that a failing test does not leak.
fn clean_up_leftovers(procs: &[(i32, String)], mounts: &[String]) {
    for (pid, _) in procs {
        // SAFETY: plain syscall on a pid found running this test's build.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(500));
    for m in mounts.iter().rev() {
        let _ = Command::new("umount").arg("-l").arg(m).status();
    }
}

fn sigterm_mid_build_leaves_nothing_behind(d: &Daemon) {
    let reg = support::registry::plain();
    let marker = support::unique("sigterm-marker");
    // `out`'s temp dir, where the embedded daemon's root goes.
    let tmp = tempfile::tempdir().expect("TMPDIR for out");
    let tmp_path = tmp.path().to_path_buf();
    let src = Src::new(&[(
        "src/Dockerfile",
        &from_base(
            reg,
            // The shell's command line names the marker; only the running
            // step prints `42-<marker>` (the step's title shows `$((6*7))`).
            &format!("RUN echo $((6*7))-{marker} && sleep 30 && echo finished\n"),
        ),
    )]);
    let request = json!({
        "source": d.source(reg.source(&support::unique("main-sigterm"))),
        "params": {"context": "src"},
    });
    let mut child = Command::new(support::cmd::binary("out"))
        .arg(src.path())
        .env_clear()
        .env("TEST", "true")
        .env("PATH", d.path_env())
        .env("TMPDIR", &tmp_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting out");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(&serde_json::to_vec(&request).expect("request"))
        .expect("writing the request");
    drop(stdin);
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let started = format!("42-{marker}");
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&started) {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let pid = child.id() as i32;
    if rx.recv_timeout(Duration::from_secs(180)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the RUN step never started:\n{}{}",
            reader.join().unwrap_or_default(),
            d.log_tail()
        );
    }
    // The RUN step's shell and its `sleep 30`, which must not outlive `out`.
    // The shell forks `sleep` right after the echo: poll a little.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut run_step = run_step_processes(&marker);
    while !run_step.iter().any(|(_, cmd)| cmd.trim() == "sleep 30") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        run_step = run_step_processes(&marker);
    }
    if !run_step.iter().any(|(_, cmd)| cmd.trim() == "sleep 30") {
        // Stop the build before failing: a daemon stopped mid-RUN leaks.
        let _ = child.kill();
        let _ = child.wait();
        panic!("the RUN step's processes are not visible: {run_step:#?}");
    }
    // SAFETY: plain syscall on our own child, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for out") {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let log = reader.join().unwrap_or_default();
    // Give the daemon (embedded: its own shutdown; standalone: the cancelled
    // solve) a moment to take the RUN step down.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (procs, mounts) = loop {
        let mut procs = processes_with(&tmp_path.display().to_string());
        procs.extend(still_running(&run_step));
        let mounts = mounts_under(&tmp_path);
        if (procs.is_empty() && mounts.is_empty()) || Instant::now() > deadline {
            break (procs, mounts);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    clean_up_leftovers(&procs, &mounts);
    let status =
        status.unwrap_or_else(|| panic!("out did not exit within 30 s of SIGTERM:\n{log}"));
    assert!(!status.success(), "out succeeded after SIGTERM:\n{log}");
    assert!(
        procs.is_empty() && mounts.is_empty(),
        "left behind after SIGTERM ({status}):\nprocesses: {procs:#?}\nmounts: {mounts:#?}\n--- out's stderr ---\n{log}{}",
        d.log_tail()
    );
}

mod shutdown {
    use crate::support::needs;

    needs! { buildkitd;
        #[test]
        fn embedded_sigterm_mid_build_leaves_nothing_behind() {
            super::sigterm_mid_build_leaves_nothing_behind(&super::Daemon::embedded());
        }
    }

    needs! { buildkitd;
        #[test]
        fn standalone_sigterm_mid_build_leaves_nothing_behind() {
            super::sigterm_mid_build_leaves_nothing_behind(&super::Daemon::standalone());
        }
    }
}
