//! Comparing two unpacked root filesystems entry by entry: ours against a
//! peer's (umoci's unpack, or the rootfs of an image the peers built).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What besides type, mode, owner, content and link target is judged.
#[derive(Debug, Clone, Copy)]
pub struct Judge {
    /// Compare symlinks' mtimes as well as regular files' (a directory's
    /// mtime is never compared: it changes whenever an unpacker adds to it).
    pub link_mtimes: bool,
    /// Compare regular files' sizes and link counts (hardlinks).
    pub sizes_and_links: bool,
}

/// Everything a rootfs entry is judged by.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: char,
    mode: u32,
    uid: u32,
    gid: u32,
    size: Option<u64>,
    content: Option<String>,
    link: Option<PathBuf>,
    mtime: Option<i64>,
    nlink: Option<u64>,
}

fn tree(root: &Path, judge: Judge) -> BTreeMap<PathBuf, Entry> {
    let mut entries = BTreeMap::new();
    for item in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let item = item.unwrap_or_else(|e| panic!("walking {}: {e}", root.display()));
        let meta = item.path().symlink_metadata().expect("lstat");
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_file() {
            'f'
        } else if ft.is_symlink() {
            'l'
        } else {
            'o'
        };
        let file = kind == 'f';
        let timed = file || (kind != 'd' && judge.link_mtimes);
        entries.insert(
            item.path()
                .strip_prefix(root)
                .expect("under root")
                .to_path_buf(),
            Entry {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                size: (file && judge.sizes_and_links).then_some(meta.len()),
                content: file.then(|| {
                    super::sha256_digest(&std::fs::read(item.path()).expect("reading a file"))
                }),
                link: (kind == 'l').then(|| std::fs::read_link(item.path()).expect("readlink")),
                mtime: timed.then_some(meta.mtime()),
                nlink: (file && judge.sizes_and_links).then_some(meta.nlink()),
            },
        );
    }
    entries
}

/// Asserts the trees under `ours` and `peer` are equal entry by entry,
/// listing every difference (`peer_name` says whose the second is); returns
/// how many entries ours has.
#[track_caller]
pub fn assert_same_tree(ours: &Path, peer: &Path, peer_name: &str, judge: Judge) -> usize {
    let (a, b) = (tree(ours, judge), tree(peer, judge));
    let mut diffs = Vec::new();
    for (path, entry) in &a {
        match b.get(path) {
            None => diffs.push(format!("only in ours: {} {entry:?}", path.display())),
            Some(other) if other != entry => diffs.push(format!(
                "differs: {}\n  ours: {entry:?}\n  {peer_name}: {other:?}",
                path.display()
            )),
            Some(_) => {}
        }
    }
    for (path, entry) in &b {
        if !a.contains_key(path) {
            diffs.push(format!(
                "only in {peer_name}'s: {} {entry:?}",
                path.display()
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "rootfs differs from {peer_name}'s:\n{}",
        diffs.join("\n")
    );
    a.len()
}
