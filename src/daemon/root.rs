//! Where the daemon's private root goes. On overlayfs (a Concourse
//! container's own root) BuildKit cannot stack its overlay snapshots and
//! falls back to the `native` snapshotter, which copies every layer, so the
//! root goes on the first of these that is not overlayfs:
//! `$OCI_BUILD_RESOURCE_BUILDKIT_ROOT`, the put's working directory (a volume
//! in Concourse), `/scratch`, the temp dir; see [`root_candidates`].

use std::path::{Path, PathBuf};

use super::process::{is_alive, own_start_time, unmount_under};

/// The prefix of every private root's directory name.
pub(super) const ROOT_PREFIX: &str = ".buildkitd-";

/// The file in a private root naming the `out` process that made it
/// (`<pid> <start time>`), so that a later put can tell a root whose owner
/// was killed (SIGKILL leaves no chance to clean up) from one in use.
const OWNER_FILE: &str = "owner";

/// Writes [`OWNER_FILE`] into `root` for this process.
pub(super) fn mark_owner(root: &Path) -> std::io::Result<()> {
    let start = own_start_time().unwrap_or_default();
    std::fs::write(
        root.join(OWNER_FILE),
        format!("{} {start}\n", std::process::id()),
    )
}

/// Removes the private roots under `parent` whose owner is gone, first
/// detaching whatever is still mounted under them (deepest first), and
/// returns how many went. A root without an owner file, or whose owner
/// runs, is left alone.
pub(super) fn sweep_stale_roots(parent: &Path) -> usize {
    let Ok(dir) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut swept = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(ROOT_PREFIX) {
            continue;
        }
        let root = entry.path();
        let Ok(owner) = std::fs::read_to_string(root.join(OWNER_FILE)) else {
            continue;
        };
        let mut fields = owner.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(start))) = (fields.next(), fields.next()) else {
            continue;
        };
        if i32::try_from(pid).is_ok_and(|pid| is_alive(pid, start)) {
            continue;
        }
        unmount_under(&root);
        match std::fs::remove_dir_all(&root) {
            Ok(()) => swept += 1,
            Err(e) => tracing::warn!(
                "removing the stale buildkitd root {} (its put is gone): {e}",
                root.display()
            ),
        }
    }
    if swept > 0 {
        tracing::info!(
            "removed {swept} buildkitd root(s) under {} left by puts that were killed",
            parent.display()
        );
    }
    swept
}

/// `/scratch` when it exists (oci-build-task's choice), else the temp dir.
pub(super) fn default_root_parent() -> PathBuf {
    let scratch = Path::new("/scratch");
    if scratch.is_dir() {
        scratch.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// `statfs(2)`'s `f_type` for overlayfs.
pub const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// The filesystem type (`statfs` `f_type`) of `path`, `None` when it does
/// not exist or cannot be asked.
pub fn fs_type(path: &Path) -> Option<i64> {
    nix::sys::statfs::statfs(path)
        .ok()
        // `f_type`'s width differs across targets (`__fsword_t`).
        .map(|s| {
            #[allow(clippy::unnecessary_cast)]
            let magic = s.filesystem_type().0 as i64;
            magic
        })
}

/// A readable name for an `f_type`.
pub fn fs_name(magic: i64) -> String {
    match magic {
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x2FC1_2FC1 => "zfs".into(),
        OVERLAYFS_SUPER_MAGIC => "overlay".into(),
        other => format!("filesystem 0x{other:x}"),
    }
}

/// Where the daemon's root may go, in order of preference, and a line
/// saying why the first was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootChoice {
    /// Directories to try, best first.
    pub parents: Vec<PathBuf>,
    /// For the log: `buildkitd root under <dir> (<fs>; / is <fs>)`.
    pub note: String,
}

/// Orders `candidates` (label, directory) for the daemon's root: those
/// whose filesystem (`fs_type`) is not overlayfs first, in the given order,
/// then `fallback`. Missing directories and directories inside `avoid` (the
/// build's local contexts: the root must not be uploaded as part of them)
/// are skipped.
pub fn root_candidates(
    candidates: &[(&str, PathBuf)],
    avoid: &[PathBuf],
    fallback: PathBuf,
    fs_type: impl Fn(&Path) -> Option<i64>,
) -> RootChoice {
    let root_fs = fs_type(Path::new("/")).map_or_else(|| "unknown".to_string(), fs_name);
    let mut parents = Vec::new();
    let mut first_note = None;
    let mut skipped = Vec::new();
    for (label, dir) in candidates {
        if avoid.iter().any(|a| dir.starts_with(a)) {
            skipped.push(format!("{label} {} is in the build context", dir.display()));
            continue;
        }
        match fs_type(dir) {
            None => {}
            Some(OVERLAYFS_SUPER_MAGIC) => {
                skipped.push(format!("{label} {} is overlay", dir.display()));
            }
            Some(magic) => {
                if first_note.is_none() {
                    first_note = Some(format!(
                        "buildkitd root under {} ({label}, {}; / is {root_fs})",
                        dir.display(),
                        fs_name(magic)
                    ));
                }
                if !parents.contains(dir) {
                    parents.push(dir.clone());
                }
            }
        }
    }
    let note = first_note.unwrap_or_else(|| {
        format!(
            "buildkitd root under {} ({}): no candidate is off overlayfs ({}), so BuildKit may fall \
             back to its slow `native` snapshotter; set OCI_BUILD_RESOURCE_BUILDKIT_ROOT to a volume",
            fallback.display(),
            fs_type(&fallback).map_or_else(|| "unknown".to_string(), fs_name),
            if skipped.is_empty() {
                "none exists".to_string()
            } else {
                skipped.join(", ")
            }
        )
    });
    if !parents.contains(&fallback) {
        parents.push(fallback);
    }
    RootChoice { parents, note }
}

/// The candidates for a put whose inputs are under `work_dir` (argv[1]).
pub fn put_root_candidates(work_dir: &Path, avoid: &[PathBuf]) -> RootChoice {
    let mut candidates: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(dir) =
        std::env::var_os("OCI_BUILD_RESOURCE_BUILDKIT_ROOT").filter(|d| !d.is_empty())
    {
        candidates.push(("$OCI_BUILD_RESOURCE_BUILDKIT_ROOT", PathBuf::from(dir)));
    }
    candidates.push(("the put's working directory", work_dir.to_path_buf()));
    candidates.push(("/scratch", PathBuf::from("/scratch")));
    candidates.push(("the temp dir", std::env::temp_dir()));
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let candidates: Vec<(&str, PathBuf)> = candidates
        .into_iter()
        .map(|(l, d)| (l, canon(&d)))
        .collect();
    let avoid: Vec<PathBuf> = avoid.iter().map(|a| canon(a)).collect();
    root_candidates(&candidates, &avoid, default_root_parent(), fs_type)
}
