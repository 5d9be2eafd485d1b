//! How the embedded buildkitd can run in the container `out` finds itself
//! in, decided before anything starts.
//!
//! - **Privileged** (case a): uid 0 with the whole uid range mapped
//!   (`/proc/self/uid_map` is `0 0 4294967295`) and mounting allowed. The
//!   daemon runs as root with its default, non-rootless worker.
//! - **User namespace** (case b): uid 0 with a partial uid map, i.e. root of
//!   an unprivileged user namespace (Concourse's containerd runtime without
//!   `privileged`, Kubernetes `hostUsers: false`). buildkitd runs with its
//!   OCI worker in rootless mode. Its snapshotter is `overlayfs` when an
//!   overlay mount works here (kernels from 5.11 allow it in a user
//!   namespace), else `native`; its process sandbox is turned off only when
//!   a fresh `/proc` cannot be mounted in a new pid namespace (a container
//!   whose `/proc` has masked paths).
//! - **rootlesskit** (case c): a non-root uid. buildkitd runs under
//!   `rootlesskit`, which maps the user's `/etc/subuid` and `/etc/subgid`
//!   ranges through `newuidmap`/`newgidmap`, as upstream's rootless image
//!   does; the same probes pick the snapshotter and sandbox, run in a user
//!   namespace of our own.
//!
//! When none fits, [`detect`] fails with one line that lists what was tried
//! and what the user can do instead (`privileged: true`, `buildkit_host`).
//!
//! The probes run in forked children (see [`in_child`]). The overlay and
//! `/proc` probes make their own namespaces, so nothing they mount is ever
//! visible to this process; the tmpfs probe mounts in this mount namespace
//! (where buildkitd's snapshots will go: a mount namespace owned by another
//! user namespace refuses them) and detaches the mount at once.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Which snapshotter the rootless worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshotter {
    /// Overlay mounts (fast; needs overlay in a user namespace, Linux ≥ 5.11).
    Overlayfs,
    /// Full copies of each layer (works everywhere, slow on big bases).
    Native,
}

impl Snapshotter {
    /// The name buildkitd.toml uses.
    pub fn name(self) -> &'static str {
        match self {
            Snapshotter::Overlayfs => "overlayfs",
            Snapshotter::Native => "native",
        }
    }
}

/// Worker settings of a rootless daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rootless {
    /// The snapshotter.
    pub snapshotter: Snapshotter,
    /// Whether RUN steps get their own pid namespace and `/proc`
    /// (`noProcessSandbox = false`).
    pub process_sandbox: bool,
}

/// How the embedded daemon runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Case (a): as root with every privilege, the default worker.
    Privileged,
    /// Case (b): as root of this user namespace, rootless worker.
    UserNamespace(Rootless),
    /// Case (c): under `rootlesskit` (this path), rootless worker.
    Rootlesskit {
        /// The `rootlesskit` binary.
        binary: PathBuf,
        /// Worker settings.
        worker: Rootless,
    },
}

impl Mode {
    /// The rootless worker settings, `None` when privileged.
    pub fn rootless(&self) -> Option<Rootless> {
        match self {
            Mode::Privileged => None,
            Mode::UserNamespace(w) | Mode::Rootlesskit { worker: w, .. } => Some(*w),
        }
    }
}

/// The mode chosen and, for the log, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The mode.
    pub mode: Mode,
    /// One line: the mode and the facts that chose it.
    pub reason: String,
}

/// What [`detect`] asks of the machine; [`System`] asks the real one.
pub trait Host {
    /// The effective uid.
    fn euid(&self) -> u32;
    /// `/proc/self/uid_map`.
    fn uid_map(&self) -> String;
    /// Mounting a tmpfs here: `Err` says why not.
    fn mount_tmpfs(&self) -> Result<(), String>;
    /// Whether an unprivileged user namespace can be created.
    fn user_namespace(&self) -> Result<(), String>;
    /// An overlay mount, in a new user namespace when `own_userns`.
    fn overlay(&self, own_userns: bool) -> Result<(), String>;
    /// A fresh `/proc` in a new pid namespace, in a new user namespace when
    /// `own_userns`.
    fn proc_mount(&self, own_userns: bool) -> Result<(), String>;
    /// A tool on PATH.
    fn which(&self, tool: &str) -> Option<PathBuf>;
    /// Whether `/etc/subuid` (`subgid == false`) or `/etc/subgid` has a range
    /// for this user.
    fn has_subid_range(&self, subgid: bool) -> Result<(), String>;
}

/// Whether `uid_map` maps the whole uid range onto itself (the initial user
/// namespace, or a privileged container sharing it).
pub fn is_full_map(uid_map: &str) -> bool {
    uid_map
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

/// Whether the `/etc/subuid`-format `text` has a range for `user` (by name
/// or by numeric uid, as shadow-utils accepts both) with a non-zero count.
pub fn subid_range_for(text: &str, user: Option<&str>, uid: u32) -> bool {
    let uid = uid.to_string();
    text.lines().any(|line| {
        let mut fields = line.trim().split(':');
        let (Some(who), Some(_start), Some(count)) = (fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        (Some(who) == user || who == uid) && count.trim().parse::<u64>().is_ok_and(|n| n > 0)
    })
}

/// The worker settings the probes allow, and a note on each.
fn rootless_worker(host: &dyn Host, own_userns: bool) -> (Rootless, String) {
    let (snapshotter, snap_note) = match host.overlay(own_userns) {
        Ok(()) => (Snapshotter::Overlayfs, "overlay mounts work".to_string()),
        Err(e) => (
            Snapshotter::Native,
            format!("native snapshotter: overlay mount refused ({e})"),
        ),
    };
    let (process_sandbox, proc_note) = match host.proc_mount(own_userns) {
        Ok(()) => (true, "/proc mountable".to_string()),
        Err(e) => (
            false,
            format!("no process sandbox: /proc not mountable ({e})"),
        ),
    };
    (
        Rootless {
            snapshotter,
            process_sandbox,
        },
        format!("{snap_note}, {proc_note}"),
    )
}

/// The mode the embedded daemon can run in here, or the one-line reason
/// none can (see the module docs).
pub fn detect(host: &dyn Host) -> Result<Choice, String> {
    let euid = host.euid();
    let uid_map = host.uid_map();
    if euid == 0 && is_full_map(&uid_map) {
        return match host.mount_tmpfs() {
            Ok(()) => Ok(Choice {
                mode: Mode::Privileged,
                reason: "privileged: uid 0 with the full uid map and mounts allowed".into(),
            }),
            Err(e) => Err(format!(
                "privileged mode: uid 0 with the full uid map, but mounting a tmpfs failed ({e}), \
                 so this container lacks CAP_SYS_ADMIN; rootless modes need a user namespace \
                 (Concourse's containerd runtime gives one) or a non-root user with /etc/subuid \
                 ranges"
            )),
        };
    }
    if euid == 0 {
        let map = uid_map.split_whitespace().collect::<Vec<_>>().join(" ");
        return match host.mount_tmpfs() {
            Ok(()) => {
                let (worker, note) = rootless_worker(host, false);
                Ok(Choice {
                    mode: Mode::UserNamespace(worker),
                    reason: format!(
                        "rootless in this user namespace: uid 0 with uid map `{map}`; {} snapshotter, {note}",
                        worker.snapshotter.name()
                    ),
                })
            }
            Err(e) => Err(format!(
                "rootless mode in this user namespace (uid map `{map}`): mounting a tmpfs failed \
                 ({e}), so nothing may mount here (no CAP_SYS_ADMIN in this namespace, a seccomp \
                 filter, or a mount namespace owned by another user namespace)"
            )),
        };
    }
    let mut missing = Vec::new();
    let rootlesskit = host.which("rootlesskit");
    if rootlesskit.is_none() {
        missing.push("`rootlesskit` is not on PATH (Debian package rootlesskit)".to_string());
    }
    for tool in ["newuidmap", "newgidmap"] {
        if host.which(tool).is_none() {
            missing.push(format!("`{tool}` is not on PATH (Debian package uidmap)"));
        }
    }
    for subgid in [false, true] {
        if let Err(e) = host.has_subid_range(subgid) {
            missing.push(e);
        }
    }
    if let Err(e) = host.user_namespace() {
        missing.push(format!("user namespaces cannot be created ({e})"));
    }
    match rootlesskit {
        Some(binary) if missing.is_empty() => {
            let (worker, note) = rootless_worker(host, true);
            Ok(Choice {
                reason: format!(
                    "rootless through {}: uid {euid} with subordinate id ranges; {} snapshotter, {note}",
                    binary.display(),
                    worker.snapshotter.name()
                ),
                mode: Mode::Rootlesskit { binary, worker },
            })
        }
        _ => Err(format!(
            "rootlesskit mode as uid {euid}: {}",
            missing.join(", ")
        )),
    }
}

/// The real machine. Mount probes work in temp dirs under `probe_dir` (where
/// the daemon's state will go: overlay support depends on that filesystem).
#[derive(Debug, Clone)]
pub struct System {
    /// Parent of the probes' temp dirs.
    pub probe_dir: PathBuf,
}

impl System {
    fn user_name(&self) -> Option<String> {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
    }

    /// A temp dir for a probe: under `probe_dir`, else the temp dir.
    fn probe_tempdir(&self) -> Result<tempfile::TempDir, String> {
        tempfile::Builder::new()
            .prefix(".rootless-probe-")
            .tempdir_in(&self.probe_dir)
            .or_else(|_| {
                tempfile::Builder::new()
                    .prefix(".rootless-probe-")
                    .tempdir()
            })
            .map_err(|e| format!("creating a probe dir: {e}"))
    }
}

impl Host for System {
    fn euid(&self) -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    fn uid_map(&self) -> String {
        std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default()
    }

    fn mount_tmpfs(&self) -> Result<(), String> {
        let dir = self.probe_tempdir()?;
        in_child(None, Probe::MountHere(Mount::tmpfs(dir.path())?))
    }

    fn user_namespace(&self) -> Result<(), String> {
        in_child(Some(IdMaps::own()), Probe::Nothing)
    }

    fn overlay(&self, own_userns: bool) -> Result<(), String> {
        let dir = self.probe_tempdir()?;
        let sub = |n: &str| {
            let p = dir.path().join(n);
            std::fs::create_dir(&p)
                .map(|()| p)
                .map_err(|e| format!("creating {n} for the overlay probe: {e}"))
        };
        let (lower, upper, work, merged) = (sub("l")?, sub("u")?, sub("w")?, sub("m")?);
        let maps = own_userns.then(IdMaps::own);
        let base = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        // In a user namespace overlay keeps its metadata in user.* xattrs
        // (`userxattr`, Linux ≥ 5.11); older kernels refuse the option.
        let result = in_child(
            maps.clone(),
            Probe::Mount(Mount::overlay(&merged, &format!("{base},userxattr"))?),
        )
        .or_else(|_| in_child(maps, Probe::Mount(Mount::overlay(&merged, &base)?)));
        // Overlay leaves `work/work` with mode 000: a non-root user could
        // not remove the probe dir without opening it up first.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(work.join("work"), std::fs::Permissions::from_mode(0o700));
        result
    }

    fn proc_mount(&self, own_userns: bool) -> Result<(), String> {
        let dir = self.probe_tempdir()?;
        in_child(
            own_userns.then(IdMaps::own),
            Probe::ProcInNewPidns(Mount::proc(dir.path())?),
        )
    }

    fn which(&self, tool: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(tool))
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    }

    fn has_subid_range(&self, subgid: bool) -> Result<(), String> {
        let file = if subgid { "/etc/subgid" } else { "/etc/subuid" };
        let name = self.user_name();
        let uid = self.euid();
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if subid_range_for(&text, name.as_deref(), uid) {
            Ok(())
        } else {
            Err(format!(
                "{file} has no range for {}",
                name.map_or_else(|| format!("uid {uid}"), |n| format!("user {n} (uid {uid})"))
            ))
        }
    }
}

/// A `mount(2)` call prepared before forking (no allocation after fork).
#[derive(Debug)]
struct Mount {
    source: CString,
    target: CString,
    fstype: CString,
    flags: libc::c_ulong,
    data: CString,
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("probe path {s:?} contains a NUL byte"))
}

fn cpath(p: &Path) -> Result<CString, String> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| format!("probe path {} contains a NUL byte", p.display()))
}

impl Mount {
    fn tmpfs(target: &Path) -> Result<Mount, String> {
        Ok(Mount {
            source: cstring("tmpfs")?,
            target: cpath(target)?,
            fstype: cstring("tmpfs")?,
            flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            data: cstring("size=4k")?,
        })
    }

    fn overlay(target: &Path, options: &str) -> Result<Mount, String> {
        Ok(Mount {
            source: cstring("overlay")?,
            target: cpath(target)?,
            fstype: cstring("overlay")?,
            flags: 0,
            data: cstring(options)?,
        })
    }

    fn proc(target: &Path) -> Result<Mount, String> {
        Ok(Mount {
            source: cstring("proc")?,
            target: cpath(target)?,
            fstype: cstring("proc")?,
            flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            data: cstring("")?,
        })
    }

    /// Mounts; 0 or the errno. Async-signal-safe.
    fn call(&self) -> libc::c_int {
        // SAFETY: every pointer is a live NUL-terminated string.
        let rc = unsafe {
            libc::mount(
                self.source.as_ptr(),
                self.target.as_ptr(),
                self.fstype.as_ptr(),
                self.flags,
                self.data.as_ptr().cast(),
            )
        };
        if rc == 0 { 0 } else { errno() }
    }
}

/// The id maps of an unprivileged user namespace of our own: our uid and
/// gid as 0, the only mapping a non-root process may write itself.
#[derive(Debug, Clone)]
struct IdMaps {
    uid_map: CString,
    gid_map: CString,
}

impl IdMaps {
    fn own() -> IdMaps {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        IdMaps {
            uid_map: CString::new(format!("0 {uid} 1")).expect("digits have no NUL"),
            gid_map: CString::new(format!("0 {gid} 1")).expect("digits have no NUL"),
        }
    }
}

/// What a probe child does after making its namespaces.
#[derive(Debug)]
enum Probe {
    /// Nothing (the user namespace alone is the probe).
    Nothing,
    /// One mount in the current mount namespace (where buildkitd's
    /// snapshots will be mounted), detached at once.
    MountHere(Mount),
    /// One mount in a private mount namespace.
    Mount(Mount),
    /// A `proc` mount by the first process of a new pid namespace.
    ProcInNewPidns(Mount),
}

fn errno() -> libc::c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

/// Writes `data` to the file `path`; 0 or the errno. Async-signal-safe.
fn write_file(path: &CString, data: &[u8]) -> libc::c_int {
    // SAFETY: plain syscalls on a NUL-terminated path and a live buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return errno();
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = if n < 0 { errno() } else { 0 };
        libc::close(fd);
        err
    }
}

/// Waits for `pid`; its exit code, or `EINTR`-safe failure as `ECHILD`.
fn wait_code(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        if rc < 0 && errno() != libc::EINTR {
            return libc::ECHILD;
        }
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        libc::ECHILD
    }
}

/// The child's side: namespaces, then the probe; 0 or an errno.
/// Async-signal-safe: only system calls on data prepared before the fork.
fn child_side(maps: Option<&IdMaps>, probe: &Probe, paths: &[CString; 3]) -> libc::c_int {
    // SAFETY: plain system calls in a single-threaded child.
    unsafe {
        if let Some(maps) = maps {
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                return errno();
            }
            // setgroups must be denied before an unprivileged gid_map write.
            let rc = write_file(&paths[0], b"deny");
            if rc != 0 {
                return rc;
            }
            let rc = write_file(&paths[1], maps.uid_map.as_bytes());
            if rc != 0 {
                return rc;
            }
            let rc = write_file(&paths[2], maps.gid_map.as_bytes());
            if rc != 0 {
                return rc;
            }
        }
        let mount = match probe {
            Probe::Nothing => return 0,
            Probe::MountHere(m) => {
                let rc = m.call();
                if rc == 0 {
                    libc::umount2(m.target.as_ptr(), libc::MNT_DETACH);
                }
                return rc;
            }
            Probe::Mount(m) => {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return errno();
                }
                m
            }
            Probe::ProcInNewPidns(m) => {
                if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWPID) != 0 {
                    return errno();
                }
                m
            }
        };
        // Nothing mounted here may propagate back to the parent namespace.
        let root = c"/";
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return errno();
        }
        match probe {
            Probe::ProcInNewPidns(_) => {
                // The new pid namespace applies to children only.
                let pid = libc::fork();
                if pid < 0 {
                    return errno();
                }
                if pid == 0 {
                    libc::_exit(mount.call());
                }
                wait_code(pid)
            }
            _ => mount.call(),
        }
    }
}

/// Runs `probe` in a forked child, in a user namespace of its own when
/// `maps` is given; `Err` names the errno it failed with.
fn in_child(maps: Option<IdMaps>, probe: Probe) -> Result<(), String> {
    let paths = [
        c"/proc/self/setgroups".to_owned(),
        c"/proc/self/uid_map".to_owned(),
        c"/proc/self/gid_map".to_owned(),
    ];
    // SAFETY: the child only makes async-signal-safe system calls on data
    // allocated before the fork, then `_exit`s (no destructors, no atexit).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let code = child_side(maps.as_ref(), &probe, &paths);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    match wait_code(pid) {
        0 => Ok(()),
        code => Err(nix::errno::Errno::from_raw(code).to_string()),
    }
}

#[cfg(test)]
mod tests;
