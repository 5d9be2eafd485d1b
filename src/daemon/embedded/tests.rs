use super::*;
use crate::daemon::config::*;
use crate::daemon::mode::Rootless;
use crate::daemon::root::*;

#[test]
fn config_with_mirrors_registries_and_merged_extra() {
    let cfg = DaemonConfig {
        mirrors: vec!["mirror.local:5000".into()],
        registries: vec![
            RegistryHost {
                host: "127.0.0.1:5443".into(),
                ca_pems: vec!["PEM".into()],
                ..Default::default()
            },
            RegistryHost {
                host: "plain.local:5000".into(),
                http: true,
                insecure: true,
                ..Default::default()
            },
        ],
        extra: Some("[registry.\"docker.io\"]\nhttp = true\n[worker.oci]\ngc = false\n".into()),
        debug: false,
        rootless: None,
        otel_socket: None,
    };
    let (text, files) = render_config(&cfg, Path::new("/r/certs")).unwrap();
    let parsed: toml::Table = text.parse().unwrap();
    let reg = parsed["registry"].as_table().unwrap();
    assert_eq!(
        reg["docker.io"]["mirrors"].as_array().unwrap()[0].as_str(),
        Some("mirror.local:5000")
    );
    // The extra config adds to the generated docker.io table instead of clashing.
    assert_eq!(reg["docker.io"]["http"].as_bool(), Some(true));
    assert_eq!(reg["127.0.0.1:5443"]["http"].as_bool(), Some(false));
    assert_eq!(
        reg["127.0.0.1:5443"]["ca"].as_array().unwrap()[0].as_str(),
        Some("/r/certs/127.0.0.1_5443-0.pem")
    );
    assert_eq!(reg["plain.local:5000"]["insecure"].as_bool(), Some(true));
    assert_eq!(parsed["worker"]["oci"]["gc"].as_bool(), Some(false));
    assert_eq!(
        files,
        vec![(
            PathBuf::from("/r/certs/127.0.0.1_5443-0.pem"),
            "PEM".to_string()
        )]
    );
}

#[test]
fn empty_config_is_empty_and_bad_extra_is_refused() {
    let (text, files) = render_config(&DaemonConfig::default(), Path::new("/c")).unwrap();
    assert_eq!(text, "");
    assert!(files.is_empty());
    let cfg = DaemonConfig {
        extra: Some("[registry\nbroken".into()),
        ..Default::default()
    };
    let err = render_config(&cfg, Path::new("/c")).unwrap_err();
    assert!(matches!(err, Error::ExtraConfig(_)), "{err}");
}

/// Writes a fake `buildkitd` that answers once its socket exists and
/// prints its arguments; returns its path.
/// A fake that prints its arguments, creates its socket and exits on TERM.
fn fake(dir: &Path) -> PathBuf {
    crate::daemon::fake_buildkitd(
        dir,
        "echo \"$ARGS\"\ntrap 'echo got TERM; exit 0' TERM; : > \"$SOCK\"; while :; do sleep 0.05; done",
    )
}

async fn socket_exists(p: PathBuf) -> bool {
    p.exists()
}

#[tokio::test]
async fn the_private_root_holds_config_certs_socket_and_log_and_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let config = DaemonConfig {
        registries: vec![RegistryHost {
            host: "127.0.0.1:5443".into(),
            ca_pems: vec!["PEM".into()],
            ..Default::default()
        }],
        debug: true,
        ..Default::default()
    };
    let opts = StartOptions {
        timeout: Duration::from_secs(5),
        stop_grace: Duration::from_millis(500),
        root_parents: vec![dir.path().to_path_buf()],
        ..StartOptions::new(fake(dir.path()), config)
    };
    let mut d = EmbeddedDaemon::start(opts, socket_exists).await.unwrap();
    let root = d.root().to_path_buf();
    assert!(root.starts_with(dir.path()));
    assert_eq!(d.socket(), root.join("buildkitd.sock"));
    let toml = std::fs::read_to_string(root.join("buildkitd.toml")).unwrap();
    assert!(toml.contains("debug = true"), "{toml}");
    // Its own OpenTelemetry socket, not the host-wide default.
    let parsed: toml::Table = toml.parse().unwrap();
    assert_eq!(
        parsed["otel"]["socketPath"].as_str(),
        root.join("otel.sock").to_str()
    );
    assert_eq!(
        std::fs::read_to_string(root.join("certs/127.0.0.1_5443-0.pem")).unwrap(),
        "PEM"
    );
    let args = format!(
        "--root {} --addr unix://{} --config {} --debug",
        root.join("state").display(),
        root.join("buildkitd.sock").display(),
        root.join("buildkitd.toml").display()
    );
    assert!(d.log_tail(5).contains(&args), "{}", d.log_tail(5));
    d.stop().await;
    assert!(d.log_tail(5).contains("got TERM"), "{}", d.log_tail(5));
    drop(d);
    assert!(!root.exists(), "private root removed");
}

#[test]
fn a_rootless_config_moves_the_otel_socket_and_sets_the_worker() {
    use crate::daemon::mode::Snapshotter;
    let cfg = DaemonConfig {
        rootless: Some(RootlessWorker {
            worker: Rootless {
                snapshotter: Snapshotter::Native,
                process_sandbox: false,
            },
        }),
        otel_socket: Some(PathBuf::from("/r/run/otel.sock")),
        // The user's extra TOML still wins key by key.
        extra: Some("[worker.oci]\ngc = false\n".into()),
        ..Default::default()
    };
    let (text, _) = render_config(&cfg, Path::new("/r/certs")).unwrap();
    let parsed: toml::Table = text.parse().unwrap();
    assert_eq!(
        parsed["otel"]["socketPath"].as_str(),
        Some("/r/run/otel.sock")
    );
    let oci = parsed["worker"]["oci"].as_table().unwrap();
    assert_eq!(oci["rootless"].as_bool(), Some(true));
    assert_eq!(oci["snapshotter"].as_str(), Some("native"));
    assert_eq!(oci["noProcessSandbox"].as_bool(), Some(true));
    assert_eq!(oci["gc"].as_bool(), Some(false));
    assert_eq!(
        parsed["worker"]["containerd"]["enabled"].as_bool(),
        Some(false)
    );
}

#[tokio::test]
async fn rootlesskit_mode_wraps_the_daemon_and_gives_it_a_runtime_dir() {
    use crate::daemon::mode::Snapshotter;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A fake rootlesskit: records its arguments and environment, then
    // runs the command after `--pidns --state-dir DIR` as the real one does.
    let kit = dir.path().join("rootlesskit");
    std::fs::write(
        &kit,
        "#!/bin/sh\necho \"kit: $* xdg=$XDG_RUNTIME_DIR home=$HOME\"\nshift 3\nexec \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&kit, std::fs::Permissions::from_mode(0o755)).unwrap();
    let worker = Rootless {
        snapshotter: Snapshotter::Overlayfs,
        process_sandbox: true,
    };
    let opts = StartOptions {
        timeout: Duration::from_secs(5),
        stop_grace: Duration::from_millis(500),
        root_parents: vec![dir.path().to_path_buf()],
        mode: Mode::Rootlesskit {
            binary: kit.clone(),
            worker,
        },
        ..StartOptions::new(fake(dir.path()), DaemonConfig::default())
    };
    let d = EmbeddedDaemon::start(opts, socket_exists).await.unwrap();
    let root = d.root().to_path_buf();
    let log = d.log_tail(5);
    assert!(
        log.contains(&format!(
            "kit: --pidns --state-dir {} {} --root",
            root.join("rootlesskit").display(),
            dir.path().join("buildkitd").display()
        )) && log.contains(&format!(
            "xdg={} home={}",
            root.join("run").display(),
            root.join("home").display()
        )),
        "{log}"
    );
    let toml = std::fs::read_to_string(root.join("buildkitd.toml")).unwrap();
    assert!(
        toml.contains("rootless = true") && toml.contains("snapshotter = \"overlayfs\""),
        "{toml}"
    );
    let done = d.shutdown().await;
    assert!(done.contains("removed its root"), "{done}");
    assert!(!root.exists());
}

const EXT4: i64 = 0xEF53;

/// A fake statfs: `/` and `/tmp` are overlay (a Concourse container's
/// root), the listed volumes are ext4, anything else does not exist.
fn concourse_like(volumes: &'static [&'static str]) -> impl Fn(&Path) -> Option<i64> {
    move |p: &Path| {
        if p == Path::new("/") || p == Path::new("/tmp") {
            Some(OVERLAYFS_SUPER_MAGIC)
        } else if volumes.iter().any(|v| p == Path::new(v)) {
            Some(EXT4)
        } else {
            None
        }
    }
}

fn candidates(explicit: Option<&str>) -> Vec<(&'static str, PathBuf)> {
    let mut c = Vec::new();
    if let Some(e) = explicit {
        c.push(("$OCI_BUILD_RESOURCE_BUILDKIT_ROOT", PathBuf::from(e)));
    }
    c.push((
        "the put's working directory",
        PathBuf::from("/tmp/build/put"),
    ));
    c.push(("/scratch", PathBuf::from("/scratch")));
    c.push(("the temp dir", PathBuf::from("/tmp")));
    c
}

#[test]
fn the_root_goes_on_the_first_candidate_off_overlayfs() {
    // The working-directory volume wins over /scratch; overlay /tmp is
    // only the fallback.
    let fs = concourse_like(&["/tmp/build/put", "/scratch"]);
    let c = root_candidates(&candidates(None), &[], PathBuf::from("/tmp"), &fs);
    assert_eq!(
        c.parents,
        vec![
            PathBuf::from("/tmp/build/put"),
            PathBuf::from("/scratch"),
            PathBuf::from("/tmp")
        ]
    );
    assert_eq!(
        c.note,
        "buildkitd root under /tmp/build/put (the put's working directory, ext4; / is overlay)"
    );
    // An explicit setting comes first when it is off overlayfs ...
    let fs = concourse_like(&["/tmp/build/put", "/data"]);
    let c = root_candidates(&candidates(Some("/data")), &[], PathBuf::from("/tmp"), &fs);
    assert_eq!(c.parents[0], PathBuf::from("/data"));
    assert!(
        c.note.contains("$OCI_BUILD_RESOURCE_BUILDKIT_ROOT"),
        "{}",
        c.note
    );
    // ... and is passed over when it is overlay too.
    let c = root_candidates(&candidates(Some("/tmp")), &[], PathBuf::from("/tmp"), &fs);
    assert_eq!(c.parents[0], PathBuf::from("/tmp/build/put"));
}

#[test]
fn a_working_directory_that_is_the_build_context_is_skipped() {
    let fs = concourse_like(&["/tmp/build/put", "/scratch"]);
    let c = root_candidates(
        &candidates(None),
        &[PathBuf::from("/tmp/build/put")],
        PathBuf::from("/tmp"),
        &fs,
    );
    assert_eq!(
        c.parents,
        vec![PathBuf::from("/scratch"), PathBuf::from("/tmp")]
    );
}

#[test]
fn all_overlay_falls_back_and_says_why() {
    let fs = concourse_like(&[]);
    let c = root_candidates(&candidates(None), &[], PathBuf::from("/tmp"), &fs);
    assert_eq!(c.parents, vec![PathBuf::from("/tmp")]);
    assert!(
        c.note.contains("no candidate is off overlayfs")
            && c.note.contains("the temp dir /tmp is overlay")
            && c.note.contains("OCI_BUILD_RESOURCE_BUILDKIT_ROOT"),
        "{}",
        c.note
    );
}

#[test]
fn fs_type_reads_a_real_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    assert!(fs_type(dir.path()).is_some());
    assert_eq!(fs_type(&dir.path().join("missing")), None);
    assert_eq!(fs_name(OVERLAYFS_SUPER_MAGIC), "overlay");
}

#[test]
fn not_configured_names_the_three_options() {
    let msg = Error::NotConfigured.to_string();
    assert!(
        msg.contains("buildkit_host") && msg.contains("BUILDKIT_HOST") && msg.contains("buildkitd")
    );
}
