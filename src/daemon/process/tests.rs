use super::*;
use crate::daemon::fake_buildkitd as fake;

/// Writes a fake `buildkitd` shell script; `body` sees `$SOCK`.
fn options(binary: PathBuf, dir: &Path) -> SpawnOptions {
    SpawnOptions {
        isolate: false,
        binary,
        wrapper: Vec::new(),
        env: Vec::new(),
        root: dir.join("state"),
        socket: dir.join("buildkitd.sock"),
        config: None,
        log: dir.join("buildkitd.log"),
        debug: false,
        timeout: Duration::from_secs(5),
        stop_grace: Duration::from_millis(500),
    }
}

async fn socket_exists(p: PathBuf) -> bool {
    p.exists()
}

/// Whether `pid` still exists (a zombie counts as gone: tokio reaps it
/// in the background, so give it a moment).
async fn alive(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        // Field 3 of /proc/<pid>/stat is the state; Z = zombie.
        let running = status.as_deref().is_some_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        });
        if !running || Instant::now() > deadline {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn starts_waits_for_readiness_and_stops_with_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake(
        dir.path(),
        "echo starting; trap 'echo got TERM; exit 0' TERM; sleep 0.3; : > \"$SOCK\"; while :; do sleep 0.05; done",
    );
    let mut d = Buildkitd::start(options(bin, dir.path()), socket_exists)
        .await
        .unwrap();
    assert!(d.socket().exists());
    let pid = d.pid().unwrap();
    assert!(kill(Pid::from_raw(pid as i32), None).is_ok());
    d.stop().await;
    assert!(!alive(pid).await);
    assert!(d.log_tail(5).contains("got TERM"), "{}", d.log_tail(5));
}

#[tokio::test]
async fn arguments_name_root_socket_config_and_debug() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("buildkitd");
    std::fs::write(&wrapper, "#!/bin/sh\necho \"$@\"\nexit 7\n").unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut opts = options(wrapper, dir.path());
    opts.config = Some(dir.path().join("buildkitd.toml"));
    opts.debug = true;
    let err = Buildkitd::start(opts, socket_exists).await.unwrap_err();
    let root = dir.path().join("state");
    let sock = dir.path().join("buildkitd.sock");
    let config = dir.path().join("buildkitd.toml");
    let expected = format!(
        "--root {} --addr unix://{} --config {} --debug",
        root.display(),
        sock.display(),
        config.display()
    );
    assert!(
        matches!(&err, Error::Exited { tail, .. } if tail.contains(&expected)),
        "{err}"
    );
}

#[tokio::test]
async fn a_daemon_that_dies_reports_its_log_tail() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake(
        dir.path(),
        "echo 'failed to mount overlay: permission denied' >&2; exit 3",
    );
    let err = Buildkitd::start(options(bin, dir.path()), socket_exists)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("exit status: 3") && msg.contains("permission denied"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_silent_daemon_times_out_and_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    // Ignores SIGTERM (inherited across exec), never opens its socket.
    let bin = fake(dir.path(), "echo stuck; trap '' TERM; exec sleep 60");
    let mut opts = options(bin, dir.path());
    opts.timeout = Duration::from_millis(600);
    let started = Instant::now();
    let err = Buildkitd::start(opts, socket_exists).await.unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { tail, .. } if tail.contains("stuck")),
        "{err}"
    );
    // 0.6 s wait + 0.5 s grace, then SIGKILL.
    assert!(started.elapsed() < Duration::from_secs(4));
    let stray = std::process::Command::new("pgrep")
        .args(["-f", &dir.path().join("buildkitd").display().to_string()])
        .output();
    if let Ok(out) = stray {
        assert!(out.stdout.is_empty(), "fake daemon still running");
    }
}

#[test]
fn mounts_under_a_dir_deepest_first_with_escapes_undone() {
    let info = "\
22 1 8:1 / / rw - ext4 /dev/sda1 rw
30 22 0:40 / /r/state/snap\\040one rw - overlay overlay rw
31 30 0:41 / /r/state/snap\\040one/rootfs/proc rw - proc proc rw
32 22 0:42 / /r/state/cache rw - tmpfs tmpfs rw
33 22 0:43 / /rr/other rw - tmpfs tmpfs rw
";
    assert_eq!(
        mounts_under(info, Path::new("/r")),
        vec![
            PathBuf::from("/r/state/snap one/rootfs/proc"),
            PathBuf::from("/r/state/snap one"),
            PathBuf::from("/r/state/cache"),
        ]
    );
}

#[tokio::test]
async fn descendants_that_outlive_the_daemon_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    // The daemon leaves a child that ignores SIGTERM, as runc's
    // containers outlive a daemon stopped mid-build.
    let bin = fake(
        dir.path(),
        "trap '' TERM; sh -c 'trap \"\" TERM; exec sleep 60' & echo $! > \"$SOCK.child\"; trap 'exit 0' TERM; : > \"$SOCK\"; while :; do sleep 0.05; done",
    );
    let mut d = Buildkitd::start(options(bin, dir.path()), socket_exists)
        .await
        .unwrap();
    let child: u32 = std::fs::read_to_string(dir.path().join("buildkitd.sock.child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(child).await);
    assert_eq!(d.stop().await, 1);
    assert!(!alive(child).await, "the daemon's child was killed");
}

#[tokio::test]
async fn drop_kills_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake(dir.path(), ": > \"$SOCK\"; trap '' TERM; exec sleep 60");
    let d = Buildkitd::start(options(bin, dir.path()), socket_exists)
        .await
        .unwrap();
    let pid = d.pid().unwrap();
    let started = Instant::now();
    drop(d);
    assert!(!alive(pid).await, "SIGKILL on drop");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "no grace period waited"
    );
}
