use super::*;

/// A scripted machine.
#[derive(Default)]
struct Fake {
    euid: u32,
    uid_map: &'static str,
    mount: Option<&'static str>,
    userns: Option<&'static str>,
    overlay: Option<&'static str>,
    proc_: Option<&'static str>,
    tools: Vec<&'static str>,
    subuid: bool,
    subgid: bool,
}

fn res(e: Option<&str>) -> Result<(), String> {
    e.map_or(Ok(()), |e| Err(e.to_string()))
}

impl Host for Fake {
    fn euid(&self) -> u32 {
        self.euid
    }
    fn uid_map(&self) -> String {
        self.uid_map.into()
    }
    fn mount_tmpfs(&self) -> Result<(), String> {
        res(self.mount)
    }
    fn user_namespace(&self) -> Result<(), String> {
        res(self.userns)
    }
    fn overlay(&self, _: bool) -> Result<(), String> {
        res(self.overlay)
    }
    fn proc_mount(&self, _: bool) -> Result<(), String> {
        res(self.proc_)
    }
    fn which(&self, tool: &str) -> Option<PathBuf> {
        self.tools
            .contains(&tool)
            .then(|| PathBuf::from(format!("/usr/bin/{tool}")))
    }
    fn has_subid_range(&self, subgid: bool) -> Result<(), String> {
        match (subgid, self.subuid, self.subgid) {
            (false, true, _) | (true, _, true) => Ok(()),
            (false, ..) => Err("/etc/subuid has no range for user u (uid 1000)".into()),
            (true, ..) => Err("/etc/subgid has no range for user u (uid 1000)".into()),
        }
    }
}

const FULL: &str = "         0          0 4294967295\n";
const PARTIAL: &str = "         0     100000      65536\n";

#[test]
fn full_map_root_that_may_mount_is_privileged() {
    let c = detect(&Fake {
        uid_map: FULL,
        ..Fake::default()
    })
    .unwrap();
    assert_eq!(c.mode, Mode::Privileged);
    assert_eq!(c.mode.rootless(), None);
}

#[test]
fn full_map_root_that_may_not_mount_fails_and_says_why() {
    let e = detect(&Fake {
        uid_map: FULL,
        mount: Some("EPERM"),
        ..Fake::default()
    })
    .unwrap_err();
    assert!(e.contains("EPERM") && !e.contains('\n'), "{e}");
}

#[test]
fn root_of_a_user_namespace_runs_rootless_with_what_the_probes_allow() {
    let c = detect(&Fake {
        uid_map: PARTIAL,
        ..Fake::default()
    })
    .unwrap();
    assert_eq!(
        c.mode,
        Mode::UserNamespace(Rootless {
            snapshotter: Snapshotter::Overlayfs,
            process_sandbox: true
        })
    );
    assert!(
        c.reason.contains("uid map `0 100000 65536`"),
        "{}",
        c.reason
    );
    let c = detect(&Fake {
        uid_map: PARTIAL,
        overlay: Some("EINVAL"),
        proc_: Some("EPERM"),
        ..Fake::default()
    })
    .unwrap();
    assert_eq!(
        c.mode.rootless(),
        Some(Rootless {
            snapshotter: Snapshotter::Native,
            process_sandbox: false
        })
    );
    assert!(
        c.reason.contains("overlay mount refused (EINVAL)")
            && c.reason.contains("/proc not mountable (EPERM)"),
        "{}",
        c.reason
    );
}

#[test]
fn root_of_a_user_namespace_without_a_mount_namespace_fails() {
    let e = detect(&Fake {
        uid_map: "0 0 1",
        mount: Some("EPERM"),
        tools: vec!["rootlesskit", "newuidmap", "newgidmap"],
        subuid: true,
        subgid: true,
        ..Fake::default()
    })
    .unwrap_err();
    assert!(e.contains("uid map `0 0 1`") && e.contains("EPERM"), "{e}");
}

#[test]
fn a_user_with_everything_goes_through_rootlesskit() {
    let c = detect(&Fake {
        euid: 1000,
        uid_map: FULL,
        tools: vec!["rootlesskit", "newuidmap", "newgidmap"],
        subuid: true,
        subgid: true,
        ..Fake::default()
    })
    .unwrap();
    assert_eq!(
        c.mode,
        Mode::Rootlesskit {
            binary: PathBuf::from("/usr/bin/rootlesskit"),
            worker: Rootless {
                snapshotter: Snapshotter::Overlayfs,
                process_sandbox: true
            }
        }
    );
}

#[test]
fn a_user_lacking_pieces_gets_every_missing_one_on_one_line() {
    let e = detect(&Fake {
        euid: 1000,
        uid_map: FULL,
        tools: vec!["newuidmap"],
        subgid: true,
        userns: Some("ENOSPC"),
        ..Fake::default()
    })
    .unwrap_err();
    for part in [
        "uid 1000",
        "`rootlesskit` is not on PATH",
        "`newgidmap` is not on PATH",
        "/etc/subuid has no range",
        "user namespaces cannot be created (ENOSPC)",
    ] {
        assert!(e.contains(part), "{part} missing from {e}");
    }
    assert!(!e.contains("newuidmap") && !e.contains("subgid") && !e.contains('\n'));
}

#[test]
fn full_maps_and_subid_lines_are_read_as_shadow_utils_writes_them() {
    assert!(is_full_map(FULL));
    assert!(!is_full_map(PARTIAL));
    assert!(!is_full_map("0 0 1\n"));
    let subuid = "root:100000:65536\nbkuser:165536:65536\n1234:300000:10\nzero:1:0\n";
    assert!(subid_range_for(subuid, Some("root"), 0));
    assert!(subid_range_for(subuid, Some("bkuser"), 1001));
    assert!(subid_range_for(subuid, None, 1234));
    assert!(!subid_range_for(subuid, Some("zero"), 5));
    assert!(!subid_range_for(subuid, Some("nobody"), 65534));
}

#[test]
fn probes_run_on_this_machine_and_leave_no_mount() {
    let dir = tempfile::tempdir().unwrap();
    let sys = System {
        probe_dir: dir.path().to_path_buf(),
    };
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    // Whatever the answers, they come back as values, not panics, and
    // the parent's mounts do not change.
    let _ = sys.mount_tmpfs();
    let _ = sys.user_namespace();
    let _ = sys.overlay(true);
    let _ = sys.proc_mount(true);
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(before, after);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    if sys.euid() == 0 && is_full_map(&sys.uid_map()) {
        // Root on the host (the test machine) may mount.
        assert_eq!(sys.mount_tmpfs(), Ok(()));
    }
}
