//! Tests of the test world itself: the services start, the peers can use
//! them, and the fixtures are what the other tests assume they are.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use super::{cmd, docker, fixtures, needs, process, registry, run_tool, unique};

#[test]
fn plain_registry_answers_and_stores_skopeo_pushes() {
    let reg = registry::plain();
    assert_eq!(registry::http_status(&reg.host, "/v2/"), Some(200));
    let base = fixtures::busybox(reg);
    let raw = reg.inspect_raw(&base.reference());
    let manifest: serde_json::Value = serde_json::from_slice(&raw).expect("manifest JSON");
    assert_eq!(
        manifest["layers"].as_array().map(Vec::len),
        Some(1),
        "busybox base has one layer"
    );
    assert_eq!(super::sha256_digest(&raw), base.digest);
    assert!(reg.tags(&base.repo).contains(&base.tag));
}

#[test]
fn tls_registry_requires_its_ca_and_credentials() {
    let reg = registry::tls_auth();
    assert!(reg.is_tls());
    let base = fixtures::busybox(reg);
    assert_eq!(reg.digest_of(&base.reference()), base.digest);
    // Without credentials the registry refuses.
    let anon = Command::new(registry::skopeo())
        .args(["inspect", "--raw"])
        .arg(format!(
            "--cert-dir={}",
            reg.ca_path
                .as_ref()
                .expect("ca")
                .parent()
                .expect("dir")
                .display()
        ))
        .arg(format!("docker://{}", base.reference()))
        .output()
        .expect("running skopeo");
    assert!(!anon.status.success(), "anonymous pull must fail");
    // Without the CA the certificate is not trusted. An empty --cert-dir keeps
    // skopeo from reading /etc/docker/certs.d, where `docker::shared` puts it.
    let empty = super::process::scratch_dir("no-certs");
    let untrusted = Command::new(registry::skopeo())
        .args(["inspect", "--raw"])
        .arg(format!("--cert-dir={}", empty.display()))
        .arg(format!(
            "--creds={}:{}",
            reg.username.as_deref().expect("user"),
            reg.password.as_deref().expect("pass")
        ))
        .arg(format!("docker://{}", base.reference()))
        .output()
        .expect("running skopeo");
    assert!(
        !untrusted.status.success(),
        "an untrusted certificate must fail"
    );
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("certificate"),
        "{}",
        String::from_utf8_lossy(&untrusted.stderr)
    );
}

needs! { dockerd;
    #[test]
    fn dockerd_pulls_from_both_registries() {
        let docker = docker::shared();
        assert_eq!(docker.api_get("/_ping"), (200, b"OK".to_vec()));
        let plain = fixtures::busybox_base(registry::plain());
        let pull = docker.run(&["pull", "--quiet", &plain]);
        assert!(
            pull.status.success(),
            "docker pull {plain}: {}",
            String::from_utf8_lossy(&pull.stderr)
        );
        let tls = registry::tls_auth();
        let tls_ref = fixtures::busybox_base(tls);
        let mut login = docker.cli();
        login
            .args([
                "login",
                "--password-stdin",
                "--username",
                tls.username.as_deref().expect("user"),
                &tls.host,
            ])
            .stdin(std::process::Stdio::piped());
        let mut child = login
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("docker login");
        {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(tls.password.as_deref().expect("pass").as_bytes())
                .expect("password");
        }
        assert!(
            child.wait().expect("docker login").success(),
            "docker login to the TLS registry"
        );
        let pull = docker.run(&["pull", "--quiet", &tls_ref]);
        assert!(
            pull.status.success(),
            "docker pull {tls_ref}: {}",
            String::from_utf8_lossy(&pull.stderr)
        );
    }
}

needs! { dockerd;
    /// A test dockerd started while the machine has a `docker0` bridge (made
    /// here when it has none) leaves that bridge as it was, and forwarding too.
    #[test]
    fn a_test_dockerd_leaves_the_machines_docker0_alone() {
        let ifindex = || std::fs::read_to_string("/sys/class/net/docker0/ifindex").ok();
        let made_here = ifindex().is_none();
        if made_here {
            run_tool(Command::new("ip").args(["link", "add", "name", "docker0", "type", "bridge"]));
            process::delete_link_at_exit("docker0");
        }
        let before = ifindex().expect("docker0 exists");
        let forwarding = || std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").ok();
        let forwarding_before = forwarding();
        let bridge = docker::Bridge::shared().expect("the test bridge");
        let root = process::scratch_dir("dockerd-docker0");
        let (cmd, socket, _) =
            docker::dockerd_command(&root, Some(&bridge.name), &registry::plain().host)
                .expect("dockerd");
        let service = process::Service::spawn("dockerd", cmd, root.join("dockerd.log"))
            .expect("starting dockerd");
        let ready = service.wait_ready(std::time::Duration::from_secs(60), || docker::ping(&socket));
        let after = ifindex();
        service.stop(std::time::Duration::from_secs(20));
        if made_here {
            let _ = Command::new("ip")
                .args(["link", "delete", "docker0"])
                .status();
        }
        ready.expect("the second dockerd starts");
        assert_eq!(
            after.as_deref(),
            Some(before.as_str()),
            "the test dockerd deleted or replaced docker0 (bridge {})",
            bridge.name
        );
        assert_eq!(
            forwarding(),
            forwarding_before,
            "the test dockerd changed ip_forward"
        );
    }
}

#[test]
fn layered_fixture_is_what_umoci_unpacks() {
    let rootfs = fixtures::layered_layout().unpack();
    let top = rootfs.join("top");
    assert!(!top.join("gone.txt").exists());
    assert!(!top.join("gonedir").exists());
    let opaque: Vec<String> = std::fs::read_dir(top.join("opaque"))
        .expect("opaque dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(opaque, ["new"]);
    assert_eq!(
        std::fs::read_to_string(top.join("a")).expect("a"),
        "symlinked\n"
    );
    assert_eq!(
        std::fs::read_to_string(top.join("b")).expect("b"),
        "replaced\n"
    );
    assert!(
        std::fs::symlink_metadata(top.join("b"))
            .expect("b")
            .is_file()
    );
    let odd = std::fs::metadata(top.join("odd")).expect("odd");
    assert_eq!(odd.permissions().mode() & 0o7777, 0o603);
    assert_eq!(odd.mtime(), fixtures::ODD_MTIME);
    let setuid = std::fs::metadata(top.join("setuid")).expect("setuid");
    assert_eq!(setuid.permissions().mode() & 0o7777, 0o4755);
    let h1 = std::fs::metadata(top.join("hard1")).expect("hard1");
    let h2 = std::fs::metadata(top.join("hard2")).expect("hard2");
    assert_eq!(h1.ino(), h2.ino(), "hard1 and hard2 are one inode");
    assert_eq!(
        std::fs::read_link(top.join("abs-link")).expect("link"),
        std::path::Path::new("/top/keep.txt")
    );
}

#[test]
fn multi_platform_index_keeps_its_children() {
    let reg = registry::plain();
    let multi = fixtures::multi_platform(reg);
    let raw = reg.inspect_raw(&multi.pushed.reference());
    let index: serde_json::Value = serde_json::from_slice(&raw).expect("index JSON");
    let digests: Vec<&str> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| m["digest"].as_str())
        .collect();
    let expected: Vec<&str> = multi.children.iter().map(|c| c.digest.as_str()).collect();
    assert_eq!(digests, expected);
    assert_eq!(index["manifests"][1]["platform"]["variant"], "v8");
}

#[test]
fn tags_fixture_makes_distinct_and_aliased_digests() {
    let reg = registry::plain();
    let (repo, digests) = fixtures::tags(
        reg,
        "selftest-tags",
        &["1.0.0", "2.0.0"],
        &[("latest", "2.0.0")],
        &[],
    );
    assert_ne!(digests["1.0.0"], digests["2.0.0"]);
    assert_eq!(digests["latest"], digests["2.0.0"]);
    let mut listed = reg.tags(&repo);
    listed.sort();
    assert_eq!(listed, ["1.0.0", "2.0.0", "latest"]);
}

#[test]
fn unique_names_are_valid_repository_components() {
    let a = unique("Some Test::name");
    let b = unique("Some Test::name");
    assert_ne!(a, b);
    assert!(
        a.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "{a}"
    );
}

#[test]
fn redaction_hides_secrets_in_failure_messages() {
    let shown = cmd::redacted(&serde_json::json!({
        "source": {"repository": "r", "password": "hunter2", "registry_mirror": {"password": "x"}},
        "params": {"build_args": {"K": "v"}},
    }));
    let text = shown.to_string();
    assert!(
        !text.contains("hunter2") && text.contains("<redacted>") && text.contains("\"K\":\"v\""),
        "{text}"
    );
}

#[test]
fn services_are_children_of_this_process() {
    // The exit handler can only reap (and so stop) its own children.
    let reg = registry::plain();
    let status = std::fs::read_to_string(format!("/proc/{}/status", reg.pid()))
        .expect("registry is running");
    let ppid = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .expect("PPid line")
        .trim()
        .to_string();
    assert_eq!(ppid, std::process::id().to_string());
    let _ = run_tool(Command::new("true").arg("ok"));
}

/// Whether `pid` is gone (or a zombie waiting for a reaper that never comes,
/// as under a container's PID 1 that does not reap).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Err(_) => true,
        Ok(status) => status
            .lines()
            .any(|l| l.starts_with("State:") && (l.contains("Z") || l.contains("X"))),
    }
}

#[test]
fn services_stop_when_the_test_binary_exits_or_dies() {
    const NAME: &str = "support::selftest::services_stop_when_the_test_binary_exits_or_dies";
    if let Ok(mode) = std::env::var("OCI_IT_CHILD") {
        // Child mode: start a service, report it, then end (once the parent
        // has seen the service run and closes our stdin) or wait to be killed.
        println!("REGISTRY_PID={}", registry::plain().pid());
        if mode == "hang" {
            std::thread::sleep(std::time::Duration::from_secs(120));
        } else {
            let _ = std::io::stdin().read_line(&mut String::new());
        }
        return;
    }
    use std::io::BufRead;
    for mode in ["exit", "killed"] {
        let mut child = Command::new(std::env::current_exe().expect("test binary path"))
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(
                "OCI_IT_CHILD",
                if mode == "killed" { "hang" } else { "exit" },
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting the test binary again");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let pid: u32 = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // libtest prints `test <name> ... ` on the same line first.
            .find_map(|l| {
                l.split("REGISTRY_PID=")
                    .nth(1)
                    .map(|p| p.trim().parse().expect("pid"))
            })
            .expect("the child reports its registry pid");
        assert!(!process_gone(pid), "the child's registry runs");
        if mode == "killed" {
            child.kill().expect("SIGKILL to the child test binary");
        }
        // The exiting child ends when its stdin closes.
        drop(stdin);
        let status = child.wait().expect("waiting for the child");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while !process_gone(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(
            process_gone(pid),
            "registry {pid} outlived its test binary ({mode}, {status})"
        );
        let root = std::env::temp_dir().join(format!("oci-it-{}", child.id()));
        if mode == "exit" {
            assert!(
                !root.exists(),
                "the exit handler removes {}",
                root.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}
