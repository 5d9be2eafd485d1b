//! Fuzz target bodies, shared by the coverage-guided binaries in
//! fuzz/fuzz_targets/ (nightly, `cargo fuzz`) and the stable smoke pass in
//! tests/fuzz.rs. Each `run` takes arbitrary bytes, feeds them to one parser
//! of untrusted input, and panics when a property that must hold for every
//! input is broken (a panic in the code under test counts too).

pub mod fsutil;
pub mod image;
pub mod kv_files;
pub mod request;
pub mod rootfs;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A target: its name (that of its corpus dir) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target by name, as the corpus directories are named.
pub const TARGETS: &[Target] = &[
    ("request", request::run),
    ("image", image::run),
    ("rootfs", rootfs::run),
    ("kv_files", kv_files::run),
    ("fsutil", fsutil::run),
];

/// The directories of fixtures made once per process, by kind, for
/// [`remove_fixture`].
static FIXTURE_DIRS: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());

/// A temp directory for a fixture kept in a `static`, which is never
/// dropped: `oci-fuzz-<kind>-<pid>-*`. The directories of processes that are
/// gone (a killed run) are removed first; a run that ends normally calls
/// [`remove_fixture`].
pub fn fixture_dir(kind: &str) -> tempfile::TempDir {
    let prefix = format!("oci-fuzz-{kind}-");
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid
                && !Path::new("/proc").join(pid.to_string()).exists()
            {
                make_removable(&entry.path());
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempdir()
        .unwrap_or_else(|e| panic!("creating the {kind} fixture: {e}"));
    FIXTURE_DIRS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((kind.to_string(), dir.path().to_path_buf()));
    dir
}

/// Removes the fixture directory of `kind` that this process made. Its
/// fixture must not be used afterwards: each serves one smoke test.
pub fn remove_fixture(kind: &str) {
    let mut dirs = FIXTURE_DIRS.lock().unwrap_or_else(|p| p.into_inner());
    dirs.retain(|(k, dir)| {
        if k != kind {
            return true;
        }
        make_removable(dir);
        let _ = std::fs::remove_dir_all(dir);
        false
    });
}

/// One current-thread runtime per process (a fuzzer calls `run` millions
/// of times; building a runtime each time would dominate).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building the fuzz runtime")
    })
}

/// Splits `data` at every occurrence of `sep` (at most `max` parts; the
/// last part keeps any further separators).
pub fn split_parts<'a>(data: &'a [u8], sep: &[u8], max: usize) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() + 1 < max {
        match rest.windows(sep.len()).position(|w| w == sep) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + sep.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

/// A temp dir laid out as `work/` (what the code under test may write) next
/// to `outside/` (a file, a directory, and nothing else), for checking that
/// nothing escaped `work/`.
pub struct Sandbox {
    /// Holds the parent dir; removed on drop.
    pub parent: tempfile::TempDir,
    /// The directory handed to the code under test (not created yet).
    pub work: PathBuf,
    before: BTreeMap<PathBuf, (u64, u64, i64, u32, Vec<u8>)>,
}

/// A name the seeds write through a symlink to `/tmp`: if it ever exists on
/// the host, an absolute in-image symlink was followed outside the root.
pub const HOST_CANARY: &str = "/tmp/oci-build-resource-fuzz-canary";

impl Sandbox {
    /// A fresh sandbox whose work dir is called `work_name`.
    pub fn new(work_name: &str) -> Sandbox {
        let parent = tempfile::Builder::new()
            .prefix("oci-fuzz-")
            .tempdir()
            .expect("creating the sandbox");
        let outside = parent.path().join("outside");
        std::fs::create_dir_all(outside.join("dir")).expect("creating outside/dir");
        std::fs::write(outside.join("victim"), b"OUTSIDE-MARKER victim\n")
            .expect("writing outside/victim");
        let work = parent.path().join(work_name);
        let mut sandbox = Sandbox {
            before: BTreeMap::new(),
            work,
            parent,
        };
        sandbox.before = sandbox.outside_state();
        sandbox
    }

    /// `outside/`, entry by entry: (inode, links, mtime, mode, content).
    fn outside_state(&self) -> BTreeMap<PathBuf, (u64, u64, i64, u32, Vec<u8>)> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.parent.path().join("outside")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("listing outside/") {
                let path = entry.expect("listing outside/").path();
                let meta = std::fs::symlink_metadata(&path).expect("stat in outside/");
                let content = if meta.is_file() {
                    std::fs::read(&path).expect("reading in outside/")
                } else {
                    Vec::new()
                };
                if meta.is_dir() {
                    stack.push(path.clone());
                }
                out.insert(
                    path,
                    (meta.ino(), meta.nlink(), meta.mtime(), meta.mode(), content),
                );
            }
        }
        out
    }

    /// Panics unless the parent holds only `work/` (if it was created) and
    /// `outside/`, exactly as it was, and the host canary is absent.
    pub fn assert_contained(&self) {
        let work_name = self.work.file_name().expect("work has a name");
        for entry in std::fs::read_dir(self.parent.path()).expect("listing the sandbox") {
            let name = entry.expect("listing the sandbox").file_name();
            assert!(
                name == "outside" || name == work_name,
                "{name:?} was created next to the work dir"
            );
        }
        let after = self.outside_state();
        assert_eq!(
            self.before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "entries were added to or removed from outside/"
        );
        for (path, was) in &self.before {
            assert_eq!(was, &after[path], "{} was changed", path.display());
        }
        assert!(
            std::fs::symlink_metadata(HOST_CANARY).is_err(),
            "{HOST_CANARY} was written on the host"
        );
    }

    /// Every path under `dir` (not following symlinks), relative to it.
    pub fn tree(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(path.clone());
                }
                out.push(path.strip_prefix(dir).expect("under dir").to_path_buf());
            }
        }
        out.sort();
        out
    }
}

/// Makes every directory under `dir` writable again, so that the sandbox
/// can be removed after a layer left read-only directories (as root this
/// is moot; as a user it is not).
pub fn make_removable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755));
        if let Ok(entries) = std::fs::read_dir(&d) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
    }
}
