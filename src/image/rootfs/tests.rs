//! Adversarial and behavioural tests of the rootfs unpacker.
//!
//! Hostile layers are built in memory; every test that feeds one asserts
//! both the outcome (error or in-root result) and that nothing outside the
//! root changed.

use super::entry::parse_pax_time;
use super::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// A layer under construction. Raw headers let us write names that
/// `tar::Builder::append_data` refuses (`..`, absolute paths).
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, name: &str, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_000_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h
    }

    fn raw(mut self, mut h: tar::Header, data: &[u8]) -> Self {
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Self {
        self.file_with(name, data, 0o644, 1_000_000_000)
    }

    fn file_with(self, name: &str, data: &[u8], mode: u32, mtime: u64) -> Self {
        let mut h = Self::header(EntryType::Regular, name, mode);
        h.set_mtime(mtime);
        self.raw(h, data)
    }

    fn dir(self, name: &str, mode: u32) -> Self {
        let h = Self::header(EntryType::Directory, name, mode);
        self.raw(h, b"")
    }

    fn link(self, kind: EntryType, name: &str, target: &str) -> Self {
        let mut h = Self::header(kind, name, 0o777);
        let raw = &mut h.as_old_mut().linkname;
        raw[..target.len()].copy_from_slice(target.as_bytes());
        self.raw(h, b"")
    }

    fn symlink(self, name: &str, target: &str) -> Self {
        self.link(EntryType::Symlink, name, target)
    }

    fn hardlink(self, name: &str, target: &str) -> Self {
        self.link(EntryType::Link, name, target)
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A root and an outside directory with a sentinel file, side by side.
struct World {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    outside: PathBuf,
}

impl World {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let root = base.join("root");
        let outside = base.join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("sentinel"), "original").unwrap();
        World {
            _tmp: tmp,
            base,
            root,
            outside,
        }
    }

    fn unpacker(&self, as_root: bool) -> Unpacker {
        Unpacker::new(&self.root, UnpackOptions { as_root }).unwrap()
    }

    fn apply(&self, layers: &[Vec<u8>]) -> Result<()> {
        let mut u = self.unpacker(false);
        for (i, l) in layers.iter().enumerate() {
            u.unpack_layer(&format!("layer{i}"), &l[..])?;
        }
        u.finish()
    }

    /// Nothing but `root/` and the untouched `outside/sentinel` exists.
    fn assert_outside_untouched(&self) {
        let mut top: Vec<_> = fs::read_dir(&self.base)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert_eq!(
            top,
            ["outside", "root"],
            "something appeared next to the root"
        );
        let mut out: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        out.sort();
        assert_eq!(out, ["sentinel"], "something appeared outside the root");
        assert_eq!(
            fs::read_to_string(self.outside.join("sentinel")).unwrap(),
            "original"
        );
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root.join(rel)).unwrap()
    }

    fn lstat(&self, rel: &str) -> Option<fs::Metadata> {
        fs::symlink_metadata(self.root.join(rel)).ok()
    }
}

fn expect_unsafe(res: Result<()>, want: &str) {
    match res {
        Err(Error::UnsafeEntry { reason, .. }) => {
            assert!(reason.contains(want), "reason {reason:?} lacks {want:?}")
        }
        other => panic!("expected an unsafe-entry error containing {want:?}, got {other:?}"),
    }
}

#[test]
fn parent_components_in_entry_names_are_errors() {
    for name in [
        "../x",
        "a/../../x",
        "./../outside/sentinel",
        "a/b/../../../outside/sentinel",
    ] {
        let w = World::new();
        let layer = Layer::new().dir("a", 0o755).file(name, b"pwned").bytes();
        expect_unsafe(w.apply(&[layer]), "..");
        w.assert_outside_untouched();
    }
}

#[test]
fn absolute_entry_names_land_inside_the_root() {
    // Like Go's archive/tar users (registry-image, dockerd, umoci): a name
    // naming a host path is joined under the root, never written there.
    let w = World::new();
    let name = format!("{}/sentinel", w.outside.display());
    let layer = Layer::new().file(&name, b"pwned").bytes();
    w.apply(&[layer]).unwrap();
    w.assert_outside_untouched();
    assert_eq!(w.read(name.trim_start_matches('/')), "pwned");
}

#[test]
fn leading_slashes_name_the_root() {
    // `umoci insert DIR /` writes `/` for the target itself, then `/bin/sh`.
    let w = World::new();
    let layer = Layer::new()
        .dir("/", 0o700)
        .dir("/etc", 0o750)
        .file("/etc/abs", b"abs")
        .file("//etc/double", b"double")
        .file("./dot", b"dot")
        .symlink("/etc/link", "/etc/abs")
        .hardlink("/etc/hard", "/etc/abs")
        .hardlink("rel-hard", "//etc/double")
        .bytes();
    w.apply(&[layer]).unwrap();
    w.assert_outside_untouched();
    assert_eq!(w.read("etc/abs"), "abs");
    assert_eq!(w.read("etc/double"), "double");
    assert_eq!(w.read("dot"), "dot");
    assert_eq!(
        fs::read_link(w.root.join("etc/link")).unwrap(),
        Path::new("/etc/abs")
    );
    assert_eq!(
        w.lstat("etc/hard").unwrap().ino(),
        w.lstat("etc/abs").unwrap().ino()
    );
    assert_eq!(
        w.lstat("rel-hard").unwrap().ino(),
        w.lstat("etc/double").unwrap().ino()
    );
    assert_eq!(w.lstat("etc").unwrap().mode() & 0o7777, 0o750);
    // The root's own metadata is the destination's, not the layer's.
    assert_eq!(w.lstat("").unwrap().mode() & 0o7777, 0o755);

    // `..` after a leading slash is still refused.
    let w = World::new();
    let layer = Layer::new().file("/../outside/sentinel", b"pwned").bytes();
    expect_unsafe(w.apply(&[layer]), "..");
    w.assert_outside_untouched();
}

#[test]
fn writing_through_an_absolute_symlink_stays_in_root() {
    let w = World::new();
    let outside = w.outside.to_str().unwrap().to_owned();
    let layer = Layer::new()
        .symlink("etc", &outside)
        .file("etc/sentinel", b"pwned")
        .file("etc/passwd", b"root:x:0:0")
        .bytes();
    w.apply(&[layer]).unwrap();
    w.assert_outside_untouched();
    // The absolute target was followed inside the root, like a chroot.
    let inside = w.root.join(outside.trim_start_matches('/'));
    assert_eq!(
        fs::read_to_string(inside.join("sentinel")).unwrap(),
        "pwned"
    );
    assert_eq!(
        fs::read_to_string(inside.join("passwd")).unwrap(),
        "root:x:0:0"
    );
    assert!(w.lstat("etc").unwrap().file_type().is_symlink());
}

#[test]
fn writing_through_a_relative_escaping_symlink_stays_in_root() {
    let w = World::new();
    let layer = Layer::new()
        .dir("a", 0o755)
        .symlink("a/link", "../../outside")
        .file("a/link/sentinel", b"pwned")
        .symlink("deep", "../../../../../../../../outside/sentinel")
        .bytes();
    w.apply(&[layer]).unwrap();
    w.assert_outside_untouched();
    assert_eq!(w.read("outside/sentinel"), "pwned");

    // Same through a second layer, and through the symlink to a file.
    let layer2 = Layer::new().file("a/link/second", b"pwned").bytes();
    let mut u = w.unpacker(false);
    u.unpack_layer("l2", &layer2[..]).unwrap();
    u.finish().unwrap();
    w.assert_outside_untouched();
    assert_eq!(w.read("outside/second"), "pwned");
}

#[test]
fn a_file_replacing_a_symlink_never_writes_through_it() {
    let w = World::new();
    let target = w.outside.join("sentinel");
    let layer1 = Layer::new()
        .symlink("f", target.to_str().unwrap())
        .symlink("g", "../outside/sentinel")
        .bytes();
    let layer2 = Layer::new()
        .file("f", b"replaced")
        .file("g", b"replaced")
        .bytes();
    w.apply(&[layer1, layer2]).unwrap();
    w.assert_outside_untouched();
    assert!(w.lstat("f").unwrap().is_file());
    assert_eq!(w.read("f"), "replaced");
    assert_eq!(w.read("g"), "replaced");

    // Within one layer too.
    let w = World::new();
    let layer = Layer::new()
        .symlink("f", target.to_str().unwrap())
        .file("f", b"replaced")
        .bytes();
    w.apply(&[layer]).unwrap();
    w.assert_outside_untouched();
    assert_eq!(w.read("f"), "replaced");
}

#[test]
fn hard_links_out_of_the_root_are_errors() {
    let w = World::new();
    let layer = Layer::new().hardlink("h", "../outside/sentinel").bytes();
    expect_unsafe(w.apply(&[layer]), "..");
    w.assert_outside_untouched();

    // An absolute source names a path under the root, which does not exist
    // here: the link fails rather than linking the host file.
    let w = World::new();
    let abs = w.outside.join("sentinel");
    let layer = Layer::new().hardlink("h", abs.to_str().unwrap()).bytes();
    let err = w.apply(&[layer]).unwrap_err();
    assert!(matches!(err, Error::Unpack { .. }), "{err:?}");
    w.assert_outside_untouched();
    assert!(w.lstat("h").is_none());
}

#[test]
fn hard_link_through_a_symlinked_parent_stays_in_root() {
    let w = World::new();
    let outside = w.outside.to_str().unwrap().to_owned();
    // "d" points outside; "d/sentinel" must resolve to root/<outside>/sentinel,
    // which does not exist, so the link fails instead of linking the host file.
    let layer = Layer::new()
        .symlink("d", &outside)
        .hardlink("h", "d/sentinel")
        .bytes();
    let err = w.apply(&[layer]).unwrap_err();
    assert!(matches!(err, Error::Unpack { .. }), "{err:?}");
    w.assert_outside_untouched();
    assert!(w.lstat("h").is_none());
}

#[test]
fn hard_link_to_a_symlink_links_the_symlink_itself() {
    let w = World::new();
    let abs = w.outside.join("sentinel");
    let layer = Layer::new()
        .symlink("s", abs.to_str().unwrap())
        .hardlink("h", "s")
        .file("plain", b"data")
        .hardlink("h2", "./plain")
        .bytes();
    w.apply(&[layer]).unwrap();
    w.assert_outside_untouched();
    let h = w.lstat("h").unwrap();
    assert!(h.file_type().is_symlink());
    assert_eq!(h.ino(), w.lstat("s").unwrap().ino());
    assert_eq!(
        w.lstat("h2").unwrap().ino(),
        w.lstat("plain").unwrap().ino()
    );
    assert_eq!(w.read("h2"), "data");
}

#[test]
fn hard_link_to_a_directory_is_an_error() {
    let w = World::new();
    let layer = Layer::new().dir("d", 0o755).hardlink("h", "d").bytes();
    expect_unsafe(w.apply(&[layer]), "directory");
}

#[test]
fn whiteouts_naming_parents_are_errors() {
    for name in [".wh...", "a/.wh..", ".wh."] {
        let w = World::new();
        let layer = Layer::new().dir("a", 0o755).file(name, b"").bytes();
        expect_unsafe(w.apply(&[layer]), "whiteout");
        w.assert_outside_untouched();
    }
}

#[test]
fn whiteouts_through_symlinks_stay_in_root() {
    let w = World::new();
    let outside = w.outside.to_str().unwrap().to_owned();
    let layer1 = Layer::new()
        .symlink("etc", &outside)
        .symlink("up", "../outside")
        .bytes();
    let layer2 = Layer::new()
        .file("etc/.wh.sentinel", b"")
        .file("up/.wh.sentinel", b"")
        .file("etc/.wh..wh..opq", b"")
        .file("up/.wh..wh..opq", b"")
        .bytes();
    w.apply(&[layer1, layer2]).unwrap();
    w.assert_outside_untouched();
    assert!(w.lstat("etc").unwrap().file_type().is_symlink());
}

#[test]
fn whiteouts_remove_files_and_trees_of_lower_layers() {
    let w = World::new();
    let layer1 = Layer::new()
        .file("a", b"a")
        .dir("sub", 0o755)
        .file("sub/x", b"x")
        .dir("sub/deeper", 0o755)
        .file("sub/deeper/y", b"y")
        .symlink("sym", "/a")
        .file("keep", b"k")
        .bytes();
    let layer2 = Layer::new()
        .file(".wh.a", b"")
        .file(".wh.sub", b"")
        .file(".wh.sym", b"")
        .file(".wh.never-existed", b"")
        .file("missing-parent/.wh.x", b"")
        .bytes();
    w.apply(&[layer1, layer2]).unwrap();
    assert!(w.lstat("a").is_none());
    assert!(w.lstat("sub").is_none());
    assert!(w.lstat("sym").is_none());
    assert_eq!(w.read("keep"), "k");
    assert!(
        w.lstat(".wh.a").is_none(),
        "whiteout markers are not content"
    );
}

#[test]
fn opaque_directories_hide_only_lower_layers() {
    let w = World::new();
    let layer1 = Layer::new()
        .dir("d", 0o755)
        .file("d/a", b"a")
        .dir("d/sub", 0o755)
        .file("d/sub/c", b"c")
        .file("other", b"o")
        .bytes();
    // The marker comes after one of this layer's own children on purpose.
    let layer2 = Layer::new()
        .dir("d", 0o750)
        .file("d/new", b"n")
        .file("d/.wh..wh..opq", b"")
        .file("d/newer", b"n2")
        .bytes();
    w.apply(&[layer1, layer2]).unwrap();
    let mut names: Vec<_> = fs::read_dir(w.root.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["new", "newer"]);
    assert_eq!(w.read("other"), "o");
    assert_eq!(w.lstat("d").unwrap().mode() & 0o7777, 0o750);
}

#[test]
fn a_directory_replaces_a_file_and_a_file_replaces_a_directory() {
    let w = World::new();
    let layer1 = Layer::new()
        .file("d", b"file")
        .dir("f", 0o755)
        .file("f/inner", b"i")
        .bytes();
    let layer2 = Layer::new()
        .dir("d", 0o755)
        .file("d/x", b"x")
        .file("f", b"now a file")
        .bytes();
    w.apply(&[layer1, layer2]).unwrap();
    assert!(w.lstat("d").unwrap().is_dir());
    assert_eq!(w.read("d/x"), "x");
    assert_eq!(w.read("f"), "now a file");
}

#[test]
fn a_file_as_parent_is_an_error() {
    let w = World::new();
    let layer = Layer::new().file("f", b"x").file("f/child", b"y").bytes();
    let err = w.apply(&[layer]).unwrap_err();
    assert!(matches!(err, Error::Unpack { .. }), "{err:?}");
    w.assert_outside_untouched();
}

#[test]
fn symlink_loops_are_errors_not_hangs() {
    let w = World::new();
    let layer = Layer::new()
        .symlink("a", "b")
        .symlink("b", "a")
        .file("a/x", b"x")
        .bytes();
    let err = w.apply(&[layer]).unwrap_err();
    assert!(err.to_string().contains("a/x"), "{err}");
    w.assert_outside_untouched();
}

#[test]
fn devices_are_skipped_unless_root() {
    let w = World::new();
    let mut dev = Layer::header(EntryType::Char, "null", 0o666);
    dev.set_device_major(1).unwrap();
    dev.set_device_minor(3).unwrap();
    let blk = Layer::header(EntryType::Block, "sda", 0o660);
    let fifo = Layer::header(EntryType::Fifo, "pipe", 0o600);
    let layer = Layer::new()
        .raw(dev.clone(), b"")
        .raw(blk, b"")
        .raw(fifo, b"")
        .bytes();
    let mut u = w.unpacker(false);
    let stats = u.unpack_layer("l", &layer[..]).unwrap();
    u.finish().unwrap();
    assert_eq!(
        stats,
        LayerStats {
            entries: 1,
            skipped: 2
        }
    );
    assert!(w.lstat("null").is_none());
    assert!(w.lstat("sda").is_none());
    assert!(w.lstat("pipe").unwrap().file_type().is_fifo());

    if nix::unistd::geteuid().is_root() {
        let w = World::new();
        let layer = Layer::new().raw(dev, b"").bytes();
        let mut u = w.unpacker(true);
        let stats = u.unpack_layer("l", &layer[..]).unwrap();
        // mknod may be refused in a user namespace; then it is skipped.
        if stats.entries == 1 {
            let m = w.lstat("null").unwrap();
            assert!(m.file_type().is_char_device());
            assert_eq!(m.rdev(), nix::sys::stat::makedev(1, 3));
        }
    }
}

#[test]
fn modes_and_mtimes_are_preserved_directories_last() {
    // 1991-06-03T05:30:30Z, the registry-image file-perms-mtime fixture.
    const OLD: u64 = 675_927_030;
    let w = World::new();
    let mut ro = Layer::header(EntryType::Directory, "ro", 0o555);
    ro.set_mtime(OLD);
    let layer = Layer::new()
        .raw(ro, b"")
        .file_with("ro/file", b"content", 0o603, OLD)
        .file_with("suid", b"#!", 0o4755, OLD)
        .bytes();
    let mut u = w.unpacker(false);
    u.unpack_layer("l", &layer[..]).unwrap();
    // A later layer writes into the read-only directory.
    let layer2 = Layer::new().file_with("ro/later", b"x", 0o644, OLD).bytes();
    u.unpack_layer("l2", &layer2[..]).unwrap();
    u.finish().unwrap();

    let f = w.lstat("ro/file").unwrap();
    assert_eq!(f.mode() & 0o7777, 0o603);
    assert_eq!(f.mtime() as u64, OLD);
    let d = w.lstat("ro").unwrap();
    assert_eq!(d.mode() & 0o7777, 0o555);
    assert_eq!(
        d.mtime() as u64,
        OLD,
        "directory mtime applied after its children"
    );
    assert_eq!(w.lstat("suid").unwrap().mode() & 0o7777, 0o4755);
    fs::set_permissions(w.root.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
#[cfg_attr(not(have_root), ignore = "needs root")]
fn ownership_is_applied_as_root() {
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    let w = World::new();
    let mut h = Layer::header(EntryType::Regular, "owned", 0o644);
    h.set_uid(1234);
    h.set_gid(5678);
    let mut s = Layer::header(EntryType::Symlink, "owned-link", 0o777);
    s.set_link_name("owned").unwrap();
    s.set_uid(4321);
    s.set_gid(8765);
    let layer = Layer::new().raw(h.clone(), b"x").raw(s, b"").bytes();
    let mut u = w.unpacker(true);
    u.unpack_layer("l", &layer[..]).unwrap();
    u.finish().unwrap();
    let m = w.lstat("owned").unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    let m = w.lstat("owned-link").unwrap();
    assert_eq!((m.uid(), m.gid()), (4321, 8765));

    // Not as root: owners are ignored.
    let w = World::new();
    let layer = Layer::new().raw(h, b"x").bytes();
    w.apply(&[layer]).unwrap();
    assert_eq!(
        w.lstat("owned").unwrap().uid(),
        nix::unistd::geteuid().as_raw()
    );
}

#[test]
fn extended_attributes_are_applied() {
    let w = World::new();
    let probe = w.root.join("probe");
    fs::write(&probe, "").unwrap();
    xattr::set(&probe, "user.probe", b"1")
        .expect("the temp dir's filesystem must support user xattrs (set TMPDIR to one that does)");
    fs::remove_file(&probe).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.user.greeting", &b"hello"[..])])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(2);
    b.append_data(&mut h, "withattr", &b"hi"[..]).unwrap();
    let layer = b.into_inner().unwrap();
    w.apply(&[layer]).unwrap();
    assert_eq!(
        xattr::get(w.root.join("withattr"), "user.greeting")
            .unwrap()
            .as_deref(),
        Some(&b"hello"[..])
    );
}

#[test]
fn long_names_and_dot_prefixes_work() {
    let w = World::new();
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(4);
    b.append_data(&mut h, &long, &b"long"[..]).unwrap();
    let mut layer = b.into_inner().unwrap();
    // Strip the end-of-archive blocks and append more entries.
    layer.truncate(layer.len() - 1024);
    let rest = Layer::new()
        .dir("./", 0o755)
        .file("./dot/x", b"dot")
        .bytes();
    layer.extend_from_slice(&rest);
    w.apply(&[layer]).unwrap();
    assert_eq!(w.read(&long), "long");
    assert_eq!(w.read("dot/x"), "dot");
}

#[test]
fn gzip_zstd_and_plain_layers_give_the_same_tree() {
    let tarball = Layer::new()
        .dir("d", 0o755)
        .file("d/f", b"content")
        .symlink("l", "d/f")
        .bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tarball).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&tarball[..], 3).unwrap();
    for blob in [tarball.clone(), gz, zst] {
        let w = World::new();
        w.apply(&[blob]).unwrap();
        assert_eq!(w.read("d/f"), "content");
        assert_eq!(fs::read_link(w.root.join("l")).unwrap(), Path::new("d/f"));
    }
}

#[test]
fn truncated_compressed_layers_are_errors() {
    let tarball = Layer::new().file("big", &vec![7u8; 1 << 20]).bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tarball).unwrap();
    let mut gz = gz.finish().unwrap();
    gz.truncate(gz.len() - 10);
    let w = World::new();
    let err = w.apply(&[gz]).unwrap_err();
    // Not a transient network failure: the blob itself is broken.
    match &err {
        Error::Unpack { source, .. } => {
            assert_eq!(source.kind(), io::ErrorKind::InvalidData, "{err:?}")
        }
        other => panic!("{other:?}"),
    }

    // A reader that fails mid-way keeps its error kind (retryable).
    struct Cut(Vec<u8>, usize);
    impl Read for Cut {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1 >= self.0.len() / 2 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            let n = buf.len().min(self.0.len() / 2 - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    let w = World::new();
    let mut u = w.unpacker(false);
    let whole = super::super::fetch::testutil::gzip(&tarball);
    match u.unpack_layer("l", Cut(whole, 0)) {
        Err(Error::Unpack { source, .. }) => {
            assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof)
        }
        other => panic!("{other:?}"),
    }

    // Cut inside the gzip trailer only: the tar parser has all it needs, the
    // CRC check must still fail the layer.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tarball).unwrap();
    let mut gz = gz.finish().unwrap();
    gz.truncate(gz.len() - 4);
    let w = World::new();
    assert!(w.apply(&[gz]).is_err());
}

#[test]
fn resolver_clamps_at_the_root() {
    let w = World::new();
    let layer = Layer::new()
        .symlink("up", "../../..")
        .symlink("abs", "/")
        .dir("real", 0o755)
        .symlink("real/back", "..")
        .bytes();
    w.apply(&[layer]).unwrap();
    let mut u = w.unpacker(false);
    let mut r = |p: &str| {
        let comps: Vec<&OsStr> = Path::new(p).iter().collect();
        u.resolve(&comps, true, false).unwrap()
    };
    assert_eq!(r("up"), PathBuf::new());
    assert_eq!(r("abs/real"), PathBuf::from("real"));
    assert_eq!(r("real/back/real/back/up/real"), PathBuf::from("real"));
    assert_eq!(r("up/outside"), PathBuf::from("outside"));
}

#[test]
fn removed_directories_forget_their_pending_metadata() {
    let w = World::new();
    let layer1 = Layer::new().dir("d", 0o700).dir("d/sub", 0o500).bytes();
    let layer2 = Layer::new().file(".wh.d", b"").file("d/x", b"x").bytes();
    w.apply(&[layer1, layer2]).unwrap();
    assert_eq!(
        w.lstat("d").unwrap().mode() & 0o7777,
        0o755,
        "recreated implicitly"
    );
    assert!(w.lstat("d/sub").is_none());
    assert_eq!(w.read("d/x"), "x");
}

#[test]
fn pax_records_override_header_fields() {
    let w = World::new();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("mtime", &b"1500000000.25"[..]),
        ("uid", &b"3000000"[..]),
        ("gid", &b"3000001"[..]),
    ])
    .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o644);
    h.set_mtime(1);
    h.set_size(1);
    b.append_data(&mut h, "paxed", &b"p"[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let as_root = nix::unistd::geteuid().is_root();
    let mut u = w.unpacker(as_root);
    u.unpack_layer("l", &layer[..]).unwrap();
    u.finish().unwrap();
    let m = w.lstat("paxed").unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_500_000_000, 250_000_000));
    if as_root {
        assert_eq!((m.uid(), m.gid()), (3_000_000, 3_000_001));
    }
    assert_eq!(parse_pax_time("12"), Some(FileTime::from_unix_time(12, 0)));
    assert_eq!(parse_pax_time("12.5x"), None);
}

/// A tar of one directory and one short file, cut right after the file's
/// data: no padding, no end-of-archive blocks (umoci 0.4.7 `insert`).
fn unpadded_layer(data: &[u8]) -> Vec<u8> {
    let mut tar = Layer::new().dir("d", 0o755).file("d/short", data).bytes();
    tar.truncate(2 * 512 + data.len());
    tar
}

#[test]
fn a_layer_without_final_padding_ends_after_its_last_file() {
    let tarball = unpadded_layer(b"hello");
    let gz = super::super::fetch::testutil::gzip(&tarball);
    for blob in [tarball, gz] {
        let w = World::new();
        w.apply(&[blob]).unwrap();
        assert_eq!(w.read("d/short"), "hello");
    }
    // Data that fills its last block needs no padding: only the end blocks
    // are missing, which `tar` has always accepted.
    let w = World::new();
    w.apply(&[unpadded_layer(&[b'x'; 512])]).unwrap();
    assert_eq!(w.read("d/short").len(), 512);
}

#[test]
fn truncated_entries_are_still_errors() {
    let whole = Layer::new()
        .dir("d", 0o755)
        .file("d/short", &[b'x'; 510])
        .bytes();
    for (cut, what) in [
        // Inside the data, where the rest would fit in the missing padding.
        (2 * 512 + 505, "data short of the block end"),
        // Right after the header.
        (2 * 512, "data missing"),
        // Inside the padding.
        (2 * 512 + 511, "partial padding"),
        // Inside a header.
        (512 + 100, "partial header"),
    ] {
        let w = World::new();
        let res = w.apply(&[whole[..cut].to_vec()]);
        assert!(res.is_err(), "{what}: accepted");
    }
    // A reader that fails (rather than ending) gets no padding either.
    struct FailAtEnd(io::Cursor<Vec<u8>>);
    impl Read for FailAtEnd {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
                n => Ok(n),
            }
        }
    }
    let w = World::new();
    let mut u = w.unpacker(false);
    match u.unpack_layer("l", FailAtEnd(io::Cursor::new(unpadded_layer(b"hello")))) {
        Err(Error::Unpack { source, .. }) => {
            assert_eq!(source.kind(), io::ErrorKind::ConnectionReset)
        }
        other => panic!("{other:?}"),
    }
}

/// Control characters in entry names (an ANSI sequence, a newline that
/// would forge an `error:` line) reach no error message raw, whichever way
/// the entry fails.
#[test]
fn control_characters_in_entry_names_are_escaped_in_errors() {
    let hostile = "\u{1b}[2J\nerror: forged\r";
    let cases = [
        // A `..` component: refused as unsafe.
        Layer::new().file(&format!("../{hostile}"), b"x").bytes(),
        // A file as parent: the unpack step fails on the entry.
        Layer::new()
            .file(hostile, b"x")
            .file(&format!("{hostile}/child"), b"y")
            .bytes(),
        // A symlink loop under the hostile name.
        Layer::new()
            .symlink(hostile, "b")
            .symlink("b", hostile)
            .file(&format!("{hostile}/x"), b"x")
            .bytes(),
    ];
    for layer in cases {
        let w = World::new();
        let err = crate::error::chain(&w.apply(&[layer]).unwrap_err());
        assert!(!err.chars().any(char::is_control), "raw control in {err:?}");
        assert!(err.contains("\\u{1b}[2J"), "{err}");
        w.assert_outside_untouched();
    }
}
