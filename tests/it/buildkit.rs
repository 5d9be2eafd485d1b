//! The BuildKit client (`oci_build_resource::buildkit`) against real daemons:
//! the Docker Engine 20.10 started by `support::docker` (its built-in
//! BuildKit v0.8, reached through `/grpc`), and a standalone buildkitd on PATH
//! or at `$BUILDKITD` (those tests are ignored where build.rs found none, and
//! fail under `CI=true`).
//!
//! Every scenario runs against each available daemon. Results are checked
//! from the outside: images are run and inspected with the docker CLI (for
//! buildkitd, its `docker` tarball is loaded into the test dockerd first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_build_resource::buildkit::Secret;
use oci_build_resource::buildkit::{
    self, Address, Client, DaemonKind, Exporter, SecretSource, SessionOptions, SolveOutcome,
    SolveRequest,
};
use sha2::Digest;

use crate::support::needs;
use crate::support::{self, docker::Docker};

/// A daemon under test, plus the dockerd used to look at results.
struct Target {
    address: Address,
    tunnel: buildkit::SessionTunnel,
    docker: &'static Docker,
    _buildkitd: Option<support::buildkitd::Standalone>,
    scratch: tempfile::TempDir,
}

fn docker_target() -> Target {
    let docker = support::docker::shared();
    Target {
        address: Address::DockerEngine(docker.socket.clone()),
        tunnel: buildkit::SessionTunnel::ControlSession,
        docker,
        _buildkitd: None,
        scratch: tempfile::tempdir().expect("scratch dir"),
    }
}

fn buildkitd_target() -> Target {
    let binary = support::buildkitd::find();
    let docker = support::docker::shared();
    let daemon = support::buildkitd::Standalone::unix(&binary);
    Target {
        address: Address::Unix(daemon.socket.clone().expect("a unix daemon has a socket")),
        tunnel: buildkit::SessionTunnel::ControlSession,
        docker,
        _buildkitd: Some(daemon),
        scratch: tempfile::tempdir().expect("scratch dir"),
    }
}

fn base_image() -> String {
    support::fixtures::busybox_base(support::registry::plain())
}

fn write(root: &Path, rel: &str, contents: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, contents).expect("write");
}

impl Target {
    /// Builds `context` into the image `tag` in the test dockerd.
    async fn build(
        &self,
        context: &Path,
        attrs: &[(&str, &str)],
        secrets: BTreeMap<String, SecretSource>,
        tag: &str,
    ) -> Result<SolveOutcome, buildkit::Error> {
        oci_build_resource::tls::install_crypto_provider();
        let client = Client::connect(&self.address)
            .await?
            .with_session_tunnel(self.tunnel);
        let info = client.info().await?;
        let mut frontend_attrs: BTreeMap<String, String> = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // The test dockerd runs with --bridge=none; buildkitd may lack CNI.
        frontend_attrs.insert("force-network-mode".into(), "none".into());
        let tarball = self
            .scratch
            .path()
            .join(format!("{tag}.tar").replace([':', '/'], "_"));
        let exporter = match info.kind {
            DaemonKind::DockerEngine => Exporter {
                kind: "moby".into(),
                attrs: BTreeMap::from([("name".into(), tag.into())]),
                output: None,
            },
            DaemonKind::Buildkitd => Exporter {
                kind: "docker".into(),
                attrs: BTreeMap::from([("name".into(), tag.into())]),
                output: Some(tarball.clone()),
            },
        };
        let request = SolveRequest {
            frontend: "dockerfile.v0".into(),
            frontend_attrs,
            exporters: vec![exporter],
            ..SolveRequest::default()
        };
        let session = SessionOptions {
            local_dirs: BTreeMap::from([
                ("context".into(), context.to_owned()),
                ("dockerfile".into(), context.to_owned()),
            ]),
            secrets,
            shared_key: support::unique("shared"),
            ..SessionOptions::default()
        };
        let outcome = client.solve(request, session).await?;
        if info.kind == DaemonKind::Buildkitd {
            let out = self
                .docker
                .run(&["load", "-i", tarball.to_str().expect("utf-8 path")]);
            assert!(
                out.status.success(),
                "docker load: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(outcome)
    }

    /// Runs a shell script in `image` (no network) and returns its stdout.
    fn sh(&self, image: &str, script: &str) -> String {
        let out = self.docker.run(&[
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "sh",
            "-c",
            script,
        ]);
        assert!(
            out.status.success(),
            "docker run {image} sh -c {script:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }
}

/// The context of the main scenario: nested dirs, an empty dir, a symlink,
/// a unicode name, files excluded by .dockerignore (one re-included), and a
/// 50 MB file.
fn main_context(dir: &Path, base: &str) -> String {
    let dockerfile = format!(
        "FROM {base} AS base\n\
         ARG GREETING=unset\n\
         RUN echo \"greeting=$GREETING\" > /greeting\n\
         COPY . /ctx/\n\
         RUN --mount=type=secret,id=token,required=true sha256sum /run/secrets/token | cut -c1-64 > /secret-sha\n\
         RUN cat /etc/hosts > /hosts-copy\n\
         FROM base AS final\n\
         RUN echo final > /stage\n\
         FROM base AS other\n\
         RUN echo other > /stage\n"
    );
    write(dir, "Dockerfile", dockerfile.as_bytes());
    write(
        dir,
        ".dockerignore",
        b"ignored.txt\n**/*.log\n!sub/keep.log\n",
    );
    write(dir, "a/b/c.txt", b"nested\n");
    // Unique per run: secrets are not part of cache keys, so two runs with
    // identical contexts would share the secret step's cached result.
    write(dir, "run-id", support::unique("run").as_bytes());
    write(dir, "a-b", b"dash\n");
    write(dir, "a.txt", b"dot\n");
    write(dir, "ignored.txt", b"must not be sent\n");
    write(dir, "sub/drop.log", b"dropped\n");
    write(dir, "sub/keep.log", b"kept\n");
    write(dir, "été/naïve.txt", b"unicode\n");
    std::fs::create_dir_all(dir.join("empty")).expect("mkdir");
    std::os::unix::fs::symlink("a/b/c.txt", dir.join("link")).expect("symlink");
    std::fs::hard_link(dir.join("a.txt"), dir.join("a/hard.txt")).expect("hard link");
    write(dir, "bin/tool.sh", b"#!/bin/sh\necho tool-ran\n");
    std::fs::set_permissions(
        dir.join("bin/tool.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .expect("chmod");
    // An extended attribute, where the filesystem supports user xattrs.
    let _ = xattr::set(dir.join("a.txt"), "user.oci-build-test", b"v");
    // 50 MB of non-repeating bytes, hashed for comparison.
    let mut big = Vec::with_capacity(50 << 20);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    while big.len() < 50 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        big.extend_from_slice(&state.to_le_bytes());
    }
    std::fs::write(dir.join("big.bin"), &big).expect("write big");
    hex::encode(sha2::Sha256::digest(&big))
}

async fn context_options_and_secret(target: Target) {
    let ctx = tempfile::tempdir().expect("context");
    let big_sha = main_context(ctx.path(), &base_image());
    let secret_value = format!("s3cret-{}", support::unique("value"));
    let tag = format!("bk-it/{}:1", support::unique("main"));
    let outcome = target
        .build(
            ctx.path(),
            &[
                ("build-arg:GREETING", "hello"),
                ("target", "final"),
                ("label:org.example.built-by", "buildkit-it"),
                ("add-hosts", "myhost=10.1.2.3"),
            ],
            BTreeMap::from([(
                "token".into(),
                SecretSource::Text(Secret::new(secret_value.clone())),
            )]),
            &tag,
        )
        .await
        .unwrap_or_else(|e| panic!("build failed: {e}: {:?}", std::error::Error::source(&e)));
    assert!(
        outcome
            .exporter_response
            .get("containerimage.digest")
            .is_some_and(|d| d.starts_with("sha256:")),
        "{:?}",
        outcome.exporter_response
    );
    assert!(outcome.total_steps >= 6, "{outcome:?}");

    assert_eq!(target.sh(&tag, "cat /greeting"), "greeting=hello\n");
    assert_eq!(
        target.sh(&tag, "cat /stage"),
        "final\n",
        "target selects the stage"
    );
    assert_eq!(target.sh(&tag, "cat /ctx/a/b/c.txt"), "nested\n");
    assert_eq!(target.sh(&tag, "readlink /ctx/link"), "a/b/c.txt\n");
    assert_eq!(
        target.sh(&tag, "cat /ctx/a/hard.txt"),
        "dot\n",
        "hard link content"
    );
    assert_eq!(
        target.sh(&tag, "stat -c %a /ctx/bin/tool.sh && /ctx/bin/tool.sh"),
        "750\ntool-ran\n",
        "file modes are kept"
    );
    assert_eq!(target.sh(&tag, "cat /ctx/été/naïve.txt"), "unicode\n");
    assert_eq!(target.sh(&tag, "test -d /ctx/empty && echo dir"), "dir\n");
    assert_eq!(
        target.sh(
            &tag,
            "ls /ctx/sub; test -e /ctx/ignored.txt || echo no-ignored"
        ),
        "keep.log\nno-ignored\n",
        ".dockerignore excludes with the exception re-included"
    );
    assert_eq!(
        target.sh(&tag, "sha256sum /ctx/big.bin | cut -c1-64"),
        format!("{big_sha}\n")
    );
    let secret_sha = hex::encode(sha2::Sha256::digest(secret_value.as_bytes()));
    assert_eq!(
        target.sh(&tag, "cat /secret-sha"),
        format!("{secret_sha}\n")
    );
    assert_eq!(
        target.sh(&tag, "test -e /run/secrets/token || echo absent"),
        "absent\n"
    );
    let hosts = target.sh(&tag, "cat /hosts-copy");
    assert!(
        hosts
            .lines()
            .any(|l| l.contains("10.1.2.3") && l.contains("myhost")),
        "{hosts}"
    );

    let labels = target
        .docker
        .run(&["image", "inspect", "-f", "{{json .Config.Labels}}", &tag]);
    let labels: serde_json::Value = serde_json::from_slice(&labels.stdout).expect("labels json");
    assert_eq!(labels["org.example.built-by"], "buildkit-it");

    // The secret value appears nowhere in the exported image.
    let mut export = buildkit::docker_engine::export_image(&target.docker.socket, &tag)
        .await
        .expect("exporting the image");
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut export, &mut bytes)
        .await
        .expect("reading export");
    assert!(bytes.len() > 50 << 20, "export holds the 50 MB layer");
    assert!(
        !bytes
            .windows(secret_value.len())
            .any(|w| w == secret_value.as_bytes()),
        "secret leaked into the image"
    );
}

async fn failing_run_reports_step_and_logs(target: Target) {
    let ctx = tempfile::tempdir().expect("context");
    write(
        ctx.path(),
        "Dockerfile",
        format!(
            "FROM {}\nRUN echo first-line && echo the-last-words >&2 && exit 3\n",
            base_image()
        )
        .as_bytes(),
    );
    let tag = format!("bk-it/{}:1", support::unique("fail"));
    let err = target
        .build(ctx.path(), &[], BTreeMap::new(), &tag)
        .await
        .expect_err("the RUN fails");
    match &err {
        buildkit::Error::BuildFailed { step, error, logs } => {
            assert!(step.contains("RUN echo first-line"), "{step}");
            assert!(error.contains("exit code: 3"), "{error}");
            assert!(
                logs.iter().any(|l| l.contains("the-last-words")),
                "{logs:?}"
            );
        }
        other => panic!("expected BuildFailed, got {other:?}"),
    }
    assert!(err.to_string().contains("the-last-words"), "{err}");
}

async fn info_and_feature_detection(target: Target) {
    oci_build_resource::tls::install_crypto_provider();
    let client = Client::connect(&target.address).await.expect("connect");
    let info = client.info().await.expect("info");
    match info.kind {
        DaemonKind::DockerEngine => {
            assert!(
                info.version.starts_with("docker engine 20.10"),
                "{}",
                info.version
            );
            assert!(
                info.capabilities.buildkit_version.is_none(),
                "20.10 has no Info"
            );
            assert!(!info.capabilities.exporters.contains(&"oci".to_owned()));
            let req = SolveRequest {
                frontend: "dockerfile.v0".into(),
                exporters: vec![Exporter {
                    kind: "oci".into(),
                    output: Some(target.scratch.path().join("x.tar")),
                    ..Exporter::default()
                }],
                ..SolveRequest::default()
            };
            let err = client
                .solve(req, SessionOptions::default())
                .await
                .expect_err("unsupported");
            assert_eq!(
                err.to_string(),
                format!("exporter \"oci\" is not supported by {}", info.version)
            );
        }
        DaemonKind::Buildkitd => {
            assert!(info.capabilities.buildkit_version.is_some(), "{info:?}");
            assert!(info.capabilities.exporters.contains(&"oci".to_owned()));
        }
    }
}

/// One `#[tokio::test]` per scenario and daemon: `docker_engine::<scenario>`
/// and `buildkitd::<scenario>`, each ignored where build.rs did not find its
/// daemon (results are always looked at through dockerd). `name if have_x`
/// adds a cfg the scenario needs on both daemons.
macro_rules! on_each_daemon {
    ($($scenario:ident $(if $needs:ident)?),* $(,)?) => {
        mod docker_engine {
            $(#[tokio::test(flavor = "multi_thread")]
            #[cfg_attr(
                not(all(have_dockerd $(, $needs)?)),
                ignore = concat!("needs dockerd and docker on PATH, as root", $(", and ", stringify!($needs))?)
            )]
            async fn $scenario() {
                super::$scenario(super::docker_target()).await;
            })*
        }
        mod buildkitd {
            $(#[tokio::test(flavor = "multi_thread")]
            #[cfg_attr(
                not(all(have_buildkitd, have_dockerd $(, $needs)?)),
                ignore = concat!(
                    "needs buildkitd (set BUILDKITD or put it on PATH) and dockerd, as root",
                    $(", and ", stringify!($needs))?
                )
            )]
            async fn $scenario() {
                super::$scenario(super::buildkitd_target()).await;
            })*
        }
    };
}

on_each_daemon!(
    context_options_and_secret,
    failing_run_reports_step_and_logs,
    info_and_feature_detection,
    tar_exporter_writes_output_file,
    ssh_agent_is_forwarded if have_ssh_tools,
    registry_credentials_come_from_the_session,
    cache_options,
);

needs! { dockerd;
    /// The same scenario with the session attached through the Engine's
    /// `POST /session` endpoint instead of `Control.Session`.
    #[tokio::test(flavor = "multi_thread")]
    async fn docker_engine_session_endpoint() {
        let mut t = docker_target();
        t.tunnel = buildkit::SessionTunnel::DockerSessionEndpoint;
        context_options_and_secret(t).await;
    }
}

needs! { dockerd;
    /// `has_bridge` tells an Engine with a bridge network (the shared test
    /// dockerd) from one started with `--bridge=none` (put/run.rs then builds
    /// with network mode `none` on it). The second runs in a network namespace
    /// of its own, where `--bridge=none` has no `docker0` to delete.
    #[tokio::test(flavor = "multi_thread")]
    async fn docker_engine_bridge_or_none_is_detected() {
        let docker = support::docker::shared();
        assert_eq!(
            buildkit::docker_engine::has_bridge(&docker.socket).await,
            Some(true)
        );
        let root = support::process::scratch_dir("dockerd-no-bridge");
        let (dockerd, socket, _) =
            support::docker::dockerd_command(&root, None, &support::registry::plain().host)
                .expect("dockerd");
        let mut cmd = std::process::Command::new(support::require_tool("unshare", "util-linux"));
        cmd.args(["--net", "--"])
            .arg(dockerd.get_program())
            .args(dockerd.get_args());
        let service = support::process::Service::spawn("dockerd", cmd, root.join("dockerd.log"))
            .expect("starting dockerd");
        let ready = {
            let socket = socket.clone();
            tokio::task::spawn_blocking(move || {
                let ready = service.wait_ready(std::time::Duration::from_secs(60), || {
                    support::docker::ping(&socket)
                });
                (service, ready)
            })
            .await
            .expect("waiting for dockerd")
        };
        let (service, ready) = ready;
        let has_bridge = match ready {
            Ok(()) => buildkit::docker_engine::has_bridge(&socket).await,
            Err(why) => panic!("{why}"),
        };
        tokio::task::spawn_blocking(move || service.stop(std::time::Duration::from_secs(20)))
            .await
            .expect("stopping dockerd");
        assert_eq!(has_bridge, Some(false));
    }
}

needs! { dockerd;
    #[tokio::test(flavor = "multi_thread")]
    async fn docker_engine_image_export_and_removal() {
        let t = docker_target();
        let ctx = tempfile::tempdir().expect("context");
        write(
            ctx.path(),
            "Dockerfile",
            format!("FROM {}\nRUN echo x > /x\n", base_image()).as_bytes(),
        );
        let tag = format!("bk-it/{}:1", support::unique("export"));
        t.build(ctx.path(), &[], BTreeMap::new(), &tag)
            .await
            .expect("build");
        let reader = buildkit::docker_engine::export_image(&t.docker.socket, &tag)
            .await
            .expect("export");
        let bytes = {
            let mut r = reader;
            let mut v = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut r, &mut v)
                .await
                .expect("read");
            v
        };
        let mut archive = tar::Archive::new(&bytes[..]);
        let names: Vec<PathBuf> = archive
            .entries()
            .expect("tar")
            .map(|e| e.expect("entry").path().expect("path").into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n == Path::new("manifest.json")),
            "{names:?}"
        );
        buildkit::docker_engine::remove_image(&t.docker.socket, &tag)
            .await
            .expect("remove");
        assert!(!t.docker.run(&["image", "inspect", &tag]).status.success());
        let missing = buildkit::docker_engine::remove_image(&t.docker.socket, &tag)
            .await
            .expect_err("already removed");
        assert!(missing.to_string().contains("404"), "{missing}");
    }
}

/// A `tar` exporter streams the result filesystem back through the
/// session's FileSend service into the chosen file (both daemons have it).
async fn tar_exporter_writes_output_file(target: Target) {
    oci_build_resource::tls::install_crypto_provider();
    let ctx = tempfile::tempdir().expect("context");
    write(
        ctx.path(),
        "Dockerfile",
        format!("FROM {}\nRUN echo exported > /marker\n", base_image()).as_bytes(),
    );
    let output = target.scratch.path().join("rootfs.tar");
    let client = Client::connect(&target.address).await.expect("connect");
    let request = SolveRequest {
        frontend: "dockerfile.v0".into(),
        frontend_attrs: BTreeMap::from([("force-network-mode".into(), "none".into())]),
        exporters: vec![Exporter {
            kind: "tar".into(),
            attrs: BTreeMap::new(),
            output: Some(output.clone()),
        }],
        ..SolveRequest::default()
    };
    let session = SessionOptions {
        local_dirs: BTreeMap::from([
            ("context".into(), ctx.path().to_owned()),
            ("dockerfile".into(), ctx.path().to_owned()),
        ]),
        ..SessionOptions::default()
    };
    client.solve(request, session).await.expect("tar export");
    let file = std::fs::File::open(&output).expect("output file written");
    let mut archive = tar::Archive::new(file);
    let mut marker = None;
    for entry in archive.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        if entry.path().expect("path").as_os_str() == "marker" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut entry, &mut s).expect("read marker");
            marker = Some(s);
        }
    }
    assert_eq!(marker.as_deref(), Some("exported\n"));
}

/// Copies `binary` and the shared libraries `ldd` lists into `dir/t`, so a
/// RUN step can execute the host's tool from a bind mount of the context
/// (the busybox base has no ssh client). `ldd` is part of Debian's
/// essential libc-bin.
fn stage_host_tool(binary: &Path, dir: &Path, name: &str) {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .expect("running ldd (libc-bin)");
    let lib = dir.join("t/lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libc.so.6 => /lib/.../libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = line
            .split("=>")
            .last()
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("");
        if path.starts_with('/') {
            let name = if path.contains("/ld-linux") {
                "ld.so".to_owned()
            } else {
                Path::new(path)
                    .file_name()
                    .expect("lib name")
                    .to_string_lossy()
                    .into_owned()
            };
            std::fs::copy(path, lib.join(name)).expect("copy lib");
        }
    }
    std::fs::copy(binary, dir.join("t").join(name)).expect("copy tool");
    assert!(
        lib.join("ld.so").exists(),
        "ldd {} listed no dynamic loader",
        binary.display()
    );
}

/// `RUN --mount=type=ssh` reaches the caller's agent through the session's
/// SSH service: the host's `ssh-add -l`, run inside the build, lists the key
/// of (1) a real ssh-agent socket and (2) a key file served by the
/// in-process agent, and `ssh-keygen -Y sign` inside the build signs with it
/// (checked on the host); (3) a build naming an ssh id the session lacks
/// fails.
async fn ssh_agent_is_forwarded(target: Target) {
    let agent = support::require_tool("ssh-agent", "openssh-client");
    let ssh_add = support::require_tool("ssh-add", "openssh-client");
    let keygen = support::require_tool("ssh-keygen", "openssh-client");
    let dir = tempfile::tempdir().expect("agent dir");
    let key = dir.path().join("id_ed25519");
    let status = Command::new(&keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bk-test", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    let fingerprint = String::from_utf8(
        Command::new(&keygen)
            .arg("-lf")
            .arg(dir.path().join("id_ed25519.pub"))
            .output()
            .expect("ssh-keygen -l")
            .stdout,
    )
    .expect("utf-8");
    let fingerprint = fingerprint
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_owned();

    let socket = dir.path().join("agent.sock");
    let mut child = Command::new(agent)
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting ssh-agent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let added = Command::new(&ssh_add)
        .arg(&key)
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .expect("ssh-add");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );

    let ctx = tempfile::tempdir().expect("context");
    stage_host_tool(&ssh_add, ctx.path(), "ssh-add");
    stage_host_tool(&keygen, ctx.path(), "ssh-keygen");
    write(
        ctx.path(),
        "Dockerfile",
        format!(
            "FROM {}\n\
             RUN --mount=type=ssh,id=deploy,required=true --mount=type=bind,target=/ctx \\\n    \
             /ctx/t/lib/ld.so --library-path /ctx/t/lib /ctx/t/ssh-add -l > /ssh-list 2>&1; \\\n    \
             echo payload > /msg && \\\n    \
             /ctx/t/lib/ld.so --library-path /ctx/t/lib /ctx/t/ssh-keygen -Y sign -n test@ns -f /ctx/key.pub /msg \\\n    \
             > /sign-log 2>&1; cat /ssh-list /sign-log; true\n",
            base_image()
        )
        .as_bytes(),
    );
    std::fs::copy(
        dir.path().join("id_ed25519.pub"),
        ctx.path().join("key.pub"),
    )
    .expect("copy pub");
    oci_build_resource::tls::install_crypto_provider();
    let client = Client::connect(&target.address).await.expect("connect");
    let scratch = target.scratch.path().to_owned();
    let run = |ssh: Vec<buildkit::SshSource>| {
        let client = client.clone();
        let ctx = ctx.path().to_owned();
        let output = scratch.join(format!("{}.tar", support::unique("ssh")));
        async move {
            let request = SolveRequest {
                frontend: "dockerfile.v0".into(),
                // no-cache: the ssh mount is not part of the cache key.
                frontend_attrs: BTreeMap::from([
                    ("force-network-mode".into(), "none".into()),
                    ("no-cache".into(), String::new()),
                ]),
                exporters: vec![Exporter {
                    kind: "tar".into(),
                    attrs: BTreeMap::new(),
                    output: Some(output.clone()),
                }],
                ..SolveRequest::default()
            };
            let session = SessionOptions {
                local_dirs: BTreeMap::from([
                    ("context".into(), ctx.clone()),
                    ("dockerfile".into(), ctx),
                ]),
                ssh,
                ..SessionOptions::default()
            };
            client
                .solve(request, session)
                .await
                .map(|_| file_in_tar(&output, "ssh-list"))
        }
    };
    let with_agent = run(vec![buildkit::SshSource {
        id: "deploy".into(),
        kind: buildkit::SshKind::Agent(socket.clone()),
    }])
    .await;
    let with_key = run(vec![buildkit::SshSource {
        id: "deploy".into(),
        kind: buildkit::SshKind::Key(key.clone()),
    }])
    .await;
    let without = run(Vec::new()).await;
    let _ = child.kill();
    let _ = child.wait();

    let listed = with_agent.unwrap_or_else(|e| panic!("build with the agent socket failed: {e}"));
    assert!(listed.contains(&fingerprint), "agent socket: {listed}");
    let listed = with_key.unwrap_or_else(|e| panic!("build with a key file failed: {e}"));
    assert!(
        listed.contains(&fingerprint) && listed.contains("ED25519"),
        "key file: {listed}"
    );
    let err = without.expect_err("no agent for id deploy");
    assert!(err.to_string().contains("deploy"), "{err}");
}

/// The contents of one file in a tarball (the `tar` exporter's output);
/// empty when it is missing (the caller's assertion then shows the logs).
fn file_in_tar(tarball: &Path, name: &str) -> String {
    let mut archive = tar::Archive::new(std::fs::File::open(tarball).expect("tarball"));
    for entry in archive.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        if entry.path().expect("path").as_os_str() == name {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut entry, &mut s).expect("read");
            return s;
        }
    }
    String::new()
}

/// A plain-HTTP docker-registry with htpasswd auth, for this module only:
/// Docker 20.10's BuildKit talks plain HTTP to loopback registries (they are
/// insecure by default), so the shared TLS+auth registry cannot serve it.
struct AuthRegistry {
    host: String,
    user: String,
    password: String,
    child: Child,
    _root: tempfile::TempDir,
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn auth_registry() -> AuthRegistry {
    let root = tempfile::tempdir().expect("registry root");
    let user = "bk-user".to_owned();
    let password = format!("pw-{}", support::unique("bk"));
    let htpasswd = root.path().join("htpasswd");
    support::run_tool(
        Command::new(support::require_tool("htpasswd", "apache2-utils"))
            .arg("-Bbc")
            .arg(&htpasswd)
            .arg(&user)
            .arg(&password),
    );
    let port = support::process::free_port();
    let host = format!("127.0.0.1:{port}");
    let config = root.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n\
             auth:\n  htpasswd:\n    realm: bk-test\n    path: {}\n",
            root.path().join("data").display(),
            htpasswd.display()
        ),
    )
    .expect("registry config");
    let child = Command::new(support::require_tool("docker-registry", "docker-registry"))
        .arg("serve")
        .arg(&config)
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting docker-registry");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&host).is_err() {
        assert!(
            Instant::now() < deadline,
            "docker-registry did not listen on {host}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    AuthRegistry {
        host,
        user,
        password,
        child,
        _root: root,
    }
}

/// Base images on a registry that needs credentials are pulled with the
/// credentials the session's Auth service hands out for that host, and
/// without them the pull is refused.
async fn registry_credentials_come_from_the_session(target: Target) {
    let reg = auth_registry();
    let base = format!("{}/{}:1", reg.host, support::unique("authed-base"));
    support::run_tool(
        Command::new(support::require_tool("skopeo", "skopeo"))
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("--dest-creds={}:{}", reg.user, reg.password))
            .arg(format!(
                "oci:{}",
                support::fixtures::busybox_layout().image()
            ))
            .arg(format!("docker://{base}")),
    );
    let ctx = tempfile::tempdir().expect("context");
    write(
        ctx.path(),
        "Dockerfile",
        format!("FROM {base}\nRUN echo authed > /auth\n").as_bytes(),
    );
    oci_build_resource::tls::install_crypto_provider();
    let client = Client::connect(&target.address).await.expect("connect");
    let run = |auth: Vec<buildkit::RegistryAuth>| {
        let client = client.clone();
        let ctx = ctx.path().to_owned();
        let output = target
            .scratch
            .path()
            .join(format!("{}.tar", support::unique("auth")));
        async move {
            let request = SolveRequest {
                frontend: "dockerfile.v0".into(),
                frontend_attrs: BTreeMap::from([
                    ("force-network-mode".into(), "none".into()),
                    ("no-cache".into(), String::new()),
                ]),
                exporters: vec![Exporter {
                    kind: "tar".into(),
                    attrs: BTreeMap::new(),
                    output: Some(output),
                }],
                ..SolveRequest::default()
            };
            let session = SessionOptions {
                local_dirs: BTreeMap::from([
                    ("context".into(), ctx.clone()),
                    ("dockerfile".into(), ctx),
                ]),
                registry_auth: auth,
                ..SessionOptions::default()
            };
            client.solve(request, session).await
        }
    };
    let denied = run(Vec::new())
        .await
        .expect_err("anonymous pull is refused");
    let text = denied.to_string();
    assert!(
        text.contains("401") || text.to_lowercase().contains("unauthorized"),
        "{text}"
    );
    run(vec![buildkit::RegistryAuth {
        host: reg.host.clone(),
        username: reg.user.clone(),
        password: Secret::new(reg.password.clone()),
    }])
    .await
    .unwrap_or_else(|e| panic!("pull with session credentials failed: {e}"));
}

/// Cache options in the shapes each daemon accepts: a registry import (sent
/// both as `Cache.Imports` and as the frontend's `cache-imports`; a missing
/// cache image is not an error), and a registry export, which Docker 20.10
/// lacks: refused before the build, naming the daemon.
async fn cache_options(target: Target) {
    oci_build_resource::tls::install_crypto_provider();
    let ctx = tempfile::tempdir().expect("context");
    write(
        ctx.path(),
        "Dockerfile",
        format!("FROM {}\nRUN echo cached > /c\n", base_image()).as_bytes(),
    );
    let client = Client::connect(&target.address).await.expect("connect");
    let info = client.info().await.expect("info");
    let registry = support::registry::plain();
    let request = |exports: Vec<buildkit::CacheEntry>| SolveRequest {
        frontend: "dockerfile.v0".into(),
        frontend_attrs: BTreeMap::from([("force-network-mode".into(), "none".into())]),
        exporters: vec![Exporter {
            kind: "tar".into(),
            attrs: BTreeMap::new(),
            output: Some(
                target
                    .scratch
                    .path()
                    .join(format!("{}.tar", support::unique("cache"))),
            ),
        }],
        cache_imports: vec![buildkit::CacheEntry {
            kind: "registry".into(),
            attrs: BTreeMap::from([(
                "ref".into(),
                format!("{}/{}:cache", registry.host, support::unique("nocache")),
            )]),
        }],
        cache_exports: exports,
        ..SolveRequest::default()
    };
    let session = || SessionOptions {
        local_dirs: BTreeMap::from([
            ("context".into(), ctx.path().to_owned()),
            ("dockerfile".into(), ctx.path().to_owned()),
        ]),
        ..SessionOptions::default()
    };
    client
        .solve(request(Vec::new()), session())
        .await
        .unwrap_or_else(|e| panic!("build importing a missing registry cache failed: {e}"));
    let registry_export = vec![buildkit::CacheEntry {
        kind: "registry".into(),
        attrs: BTreeMap::from([(
            "ref".into(),
            format!("{}/{}:cache", registry.host, support::unique("cache")),
        )]),
    }];
    let result = client.solve(request(registry_export), session()).await;
    match info.kind {
        DaemonKind::DockerEngine => {
            let err = result.expect_err("registry cache export on docker 20.10");
            assert_eq!(
                err.to_string(),
                format!(
                    "cache export \"registry\" is not supported by {}",
                    info.version
                )
            );
        }
        DaemonKind::Buildkitd => {
            result.unwrap_or_else(|e| panic!("registry cache export failed: {e}"));
        }
    }
}
