//! Test images built by independent peers: rootfs trees staged on disk,
//! layered and configured with `umoci` into OCI layouts, pushed with `skopeo`.
//! Nothing here uses our own crate, so tests that compare our output with
//! these peers (`umoci unpack`, `skopeo inspect`) are not circular.
//!
//! Layouts are built once per test binary; pushes are cached per registry
//! where a fixture is read-only (busybox base, layered tree, metadata image,
//! multi-platform index).

use std::collections::HashMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

use super::registry::Registry;
use super::{process, require_tool, run_tool, sha256_digest, unique};

/// mtime given to the odd-mode file of the layered fixture: 1991-06-03T05:30:30Z.
pub const ODD_MTIME: i64 = 675_927_030;

/// An image that is in a registry.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// `<host>/<repo>` (what goes into `source.repository`).
    pub repository: String,
    /// The repository path on the registry, without host.
    pub repo: String,
    /// The tag it was pushed under.
    pub tag: String,
    /// Digest of the pushed manifest or index, as `skopeo inspect --raw` sees it.
    pub digest: String,
    /// The OCI layout it came from and the tag in that layout.
    pub layout: Layout,
}

impl Pushed {
    /// `<host>/<repo>:<tag>`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }

    /// The `{tag, digest}` version Concourse would hand to `in`.
    pub fn version(&self) -> Value {
        json!({ "tag": self.tag, "digest": self.digest })
    }
}

/// One image (or index) in an OCI layout directory, driven by `umoci`.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The layout directory.
    pub dir: PathBuf,
    /// The tag (`org.opencontainers.image.ref.name`) in the layout.
    pub tag: String,
}

fn umoci() -> PathBuf {
    require_tool("umoci", "umoci")
}

/// Serialises umoci runs and pushes from layouts: several images share one
/// layout directory, and umoci rewrites its `index.json` on every change.
fn layout_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs one umoci command under [`layout_lock`].
fn umoci_run(args: &mut Command) -> Vec<u8> {
    let _guard = layout_lock();
    run_tool(args)
}

impl Layout {
    /// An empty image (no layers, umoci's default config) in a new layout.
    pub fn new(name: &str) -> Layout {
        let dir = process::scratch_dir(name).join("layout");
        umoci_run(Command::new(umoci()).arg("init").arg("--layout").arg(&dir));
        let layout = Layout {
            dir,
            tag: "latest".into(),
        };
        umoci_run(
            Command::new(umoci())
                .arg("new")
                .arg("--image")
                .arg(layout.image()),
        );
        layout
    }

    /// `<dir>:<tag>` as umoci and skopeo's `oci:` transport want it.
    pub fn image(&self) -> String {
        format!("{}:{}", self.dir.display(), self.tag)
    }

    /// A copy of this image under another tag in the same layout.
    pub fn tagged(&self, tag: &str) -> Layout {
        let other = Layout {
            dir: self.dir.clone(),
            tag: tag.to_string(),
        };
        umoci_run(
            Command::new(umoci())
                .args(["tag", "--image"])
                .arg(self.image())
                .arg(tag),
        );
        other
    }

    /// Adds a layer holding `source` at `target` (`umoci insert`).
    pub fn insert(&self, source: &Path, target: &str) -> &Self {
        umoci_run(
            Command::new(umoci())
                .args(["insert", "--image"])
                .arg(self.image())
                .arg(source)
                .arg(target),
        );
        self
    }

    /// Adds a layer whose `target` directory is opaque and holds only `source`.
    pub fn insert_opaque(&self, source: &Path, target: &str) -> &Self {
        umoci_run(
            Command::new(umoci())
                .args(["insert", "--opaque", "--image"])
                .arg(self.image())
                .arg(source)
                .arg(target),
        );
        self
    }

    /// Adds a layer that deletes `target` (a `.wh.` whiteout).
    pub fn whiteout(&self, target: &str) -> &Self {
        umoci_run(
            Command::new(umoci())
                .args(["insert", "--whiteout", "--image"])
                .arg(self.image())
                .arg(target),
        );
        self
    }

    /// `umoci config` with the given options (e.g. `--config.env=FOO=1`).
    pub fn config(&self, args: &[&str]) -> &Self {
        umoci_run(
            Command::new(umoci())
                .args(["config", "--no-history", "--image"])
                .arg(self.image())
                .args(args),
        );
        self
    }

    /// `umoci unpack` of this image into a fresh bundle; returns its rootfs.
    pub fn unpack(&self) -> PathBuf {
        let bundle = process::scratch_dir("umoci-bundle").join("bundle");
        umoci_run(
            Command::new(umoci())
                .args(["unpack", "--image"])
                .arg(self.image())
                .arg(&bundle),
        );
        bundle.join("rootfs")
    }

    /// The descriptor of this tag in the layout's `index.json`.
    pub fn descriptor(&self) -> Value {
        let index: Value = {
            let _guard = layout_lock();
            read_json(&self.dir.join("index.json"))
        };
        index["manifests"]
            .as_array()
            .and_then(|m| {
                m.iter()
                    .find(|d| {
                        d["annotations"]["org.opencontainers.image.ref.name"] == self.tag.as_str()
                    })
                    .cloned()
            })
            .unwrap_or_else(|| panic!("tag {} not in {}", self.tag, self.dir.display()))
    }

    /// A blob of the layout by digest.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        std::fs::read(self.dir.join("blobs/sha256").join(hex)).expect("reading a layout blob")
    }

    /// The image's manifest.
    pub fn manifest(&self) -> Value {
        let digest = self.descriptor()["digest"]
            .as_str()
            .expect("digest")
            .to_string();
        serde_json::from_slice(&self.blob(&digest)).expect("manifest is JSON")
    }

    /// The image's config.
    pub fn config_json(&self) -> Value {
        let digest = self.manifest()["config"]["digest"]
            .as_str()
            .expect("digest")
            .to_string();
        serde_json::from_slice(&self.blob(&digest)).expect("config is JSON")
    }

    /// Pushes this image converted to Docker schema 2 media types (an index
    /// becomes a Docker manifest list) as `<repo>:<tag>`.
    pub fn push_docker(&self, reg: &Registry, repo: &str, tag: &str) -> Pushed {
        {
            let _guard = layout_lock();
            reg.push_as(&format!("oci:{}", self.image()), repo, tag, "v2s2");
        }
        Pushed {
            repository: reg.repo(repo),
            repo: repo.to_string(),
            tag: tag.to_string(),
            digest: reg.digest_of(&format!("{repo}:{tag}")),
            layout: self.clone(),
        }
    }

    /// Pushes this image (or index, with all its children) as `<repo>:<tag>`.
    pub fn push(&self, reg: &Registry, repo: &str, tag: &str) -> Pushed {
        {
            let _guard = layout_lock();
            reg.push(&format!("oci:{}", self.image()), repo, tag, true);
        }
        Pushed {
            repository: reg.repo(repo),
            repo: repo.to_string(),
            tag: tag.to_string(),
            digest: reg.digest_of(&format!("{repo}:{tag}")),
            layout: self.clone(),
        }
    }
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn write(path: &Path, contents: &str, mode: u32) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("creating parent dirs");
    }
    std::fs::write(path, contents).expect("writing a fixture file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn set_mtime(path: &Path, secs: i64) {
    let time = filetime::FileTime::from_unix_time(secs, 0);
    filetime::set_symlink_file_times(path, time, time).expect("setting mtime");
}

/// Pushes once per registry, caching the result under `key`.
fn cached(reg: &Registry, key: &str, push: impl FnOnce() -> Pushed) -> Pushed {
    static CACHE: OnceLock<Mutex<HashMap<(String, String), Pushed>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let k = (reg.host.clone(), key.to_string());
    // Holding the lock while pushing serialises first pushes; they are quick.
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(k).or_insert_with(push).clone()
}

/// The busybox base layout: `/bin/busybox`, a symlink per applet from
/// `busybox --list-full`, `/etc/passwd`, `/etc/group` and `/tmp`.
pub fn busybox_layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let busybox = require_tool("busybox", "busybox-static");
        let root = process::scratch_dir("busybox-rootfs").join("rootfs");
        std::fs::create_dir_all(root.join("bin")).expect("mkdir bin");
        std::fs::copy(&busybox, root.join("bin/busybox")).expect("copying busybox");
        std::fs::set_permissions(
            root.join("bin/busybox"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod busybox");
        let list = run_tool(Command::new(&busybox).arg("--list-full"));
        for applet in String::from_utf8_lossy(&list)
            .lines()
            .filter(|l| !l.is_empty())
        {
            let path = root.join(applet);
            if path.exists() {
                continue;
            }
            std::fs::create_dir_all(path.parent().expect("applet path has a parent"))
                .expect("mkdir");
            symlink("/bin/busybox", &path).expect("symlinking an applet");
        }
        write(
            &root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
            0o644,
        );
        write(
            &root.join("etc/group"),
            "root:x:0:\nnogroup:x:65534:\n",
            0o644,
        );
        std::fs::create_dir_all(root.join("tmp")).expect("mkdir tmp");
        std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .expect("chmod tmp");
        std::fs::create_dir_all(root.join("root")).expect("mkdir root");
        let layout = Layout::new("busybox");
        layout.insert(&root, "/");
        layout.config(&[
            "--os=linux",
            "--architecture=amd64",
            "--config.cmd=sh",
            "--config.env=PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        ]);
        layout
    })
}

/// Pushes the busybox base image to `reg` (once) and returns `<host>/<repo>:<tag>`.
pub fn busybox_base(reg: &Registry) -> String {
    busybox(reg).reference()
}

/// [`busybox_base`] with digest and layout.
pub fn busybox(reg: &Registry) -> Pushed {
    cached(reg, "busybox", || {
        busybox_layout().push(reg, &unique("base/busybox"), "1")
    })
}

/// The layered tree (see [`layered`]).
pub fn layered_layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let stage = process::scratch_dir("layered-stage");
        // Layer 1: the base tree.
        let base = stage.join("base");
        let top = base.join("top");
        write(&top.join("keep.txt"), "keep\n", 0o644);
        write(&top.join("gone.txt"), "gone\n", 0o644);
        write(&top.join("gonedir/inner/x"), "x\n", 0o644);
        write(&top.join("opaque/old1"), "old\n", 0o644);
        write(&top.join("opaque/sub/old2"), "old\n", 0o644);
        write(&top.join("odd"), "odd mode\n", 0o603);
        set_mtime(&top.join("odd"), ODD_MTIME);
        write(&top.join("exec.sh"), "#!/bin/sh\necho hi\n", 0o755);
        write(&top.join("setuid"), "s\n", 0o4755);
        write(&top.join("hard1"), "hard\n", 0o640);
        std::fs::hard_link(top.join("hard1"), top.join("hard2")).expect("hard link");
        write(&top.join("a"), "symlinked\n", 0o644);
        symlink("a", top.join("b")).expect("symlink b -> a");
        symlink("keep.txt", top.join("rel-link")).expect("symlink");
        symlink("/top/keep.txt", top.join("abs-link")).expect("symlink");
        symlink("does/not/exist", top.join("dangling")).expect("symlink");
        symlink("opaque", top.join("dir-link")).expect("symlink");
        std::fs::create_dir_all(top.join("private")).expect("mkdir");
        write(&top.join("private/secret"), "s\n", 0o600);
        std::fs::set_permissions(top.join("private"), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        write(&top.join("empty"), "", 0o644);
        std::fs::create_dir_all(top.join("emptydir")).expect("mkdir");
        let layout = Layout::new("layered");
        layout.insert(&base, "/");
        // Layer 2 and 3: whiteouts of a file and of a whole directory.
        layout.whiteout("/top/gone.txt");
        layout.whiteout("/top/gonedir");
        // Layer 4: an opaque directory with new contents only.
        let opaque = stage.join("opaque");
        write(&opaque.join("new"), "new\n", 0o644);
        layout.insert_opaque(&opaque, "/top/opaque");
        // Layer 5: a regular file replaces the symlink `b` (must not write through to `a`).
        let replaced = stage.join("replaced");
        write(&replaced, "replaced\n", 0o644);
        layout.insert(&replaced, "/top/b");
        layout.config(&[
            "--os=linux",
            "--architecture=amd64",
            "--config.label=fixture=layered",
        ]);
        layout
    })
}

/// The layered image in `reg`: whiteouts (file and directory), an opaque
/// directory, a symlink replaced by a file, hard links, absolute/relative/
/// dangling symlinks, modes 0603/4755/0700 and mtime [`ODD_MTIME`].
pub fn layered(reg: &Registry) -> Pushed {
    cached(reg, "layered", || {
        layered_layout().push(reg, &unique("fixture/layered"), "v1")
    })
}

/// Labels of the metadata image.
pub const METADATA_LABELS: &[(&str, &str)] = &[
    ("z-label", "z"),
    ("a-label", "a"),
    ("m-label", "m"),
    ("org.example.version", "1.2.3"),
];

/// Manifest annotations of the metadata image.
pub const METADATA_ANNOTATIONS: &[(&str, &str)] = &[
    ("z.note", "last"),
    ("org.opencontainers.image.source", "https://example.com/src"),
];

/// An image with labels, manifest annotations, env, user, entrypoint, cmd and
/// working dir.
pub fn metadata(reg: &Registry) -> Pushed {
    cached(reg, "metadata", || {
        static LAYOUT: OnceLock<Layout> = OnceLock::new();
        let layout = LAYOUT.get_or_init(|| {
            let layout = busybox_layout().tagged("metadata");
            let mut args: Vec<String> = vec![
                "--config.user=someuser".into(),
                "--config.env=FOO=1".into(),
                "--config.entrypoint=/bin/sh".into(),
                "--config.entrypoint=-c".into(),
                "--config.cmd=echo hello".into(),
                "--config.workingdir=/tmp".into(),
            ];
            args.extend(
                METADATA_ANNOTATIONS
                    .iter()
                    .map(|(k, v)| format!("--manifest.annotation={k}={v}")),
            );
            args.extend(
                METADATA_LABELS
                    .iter()
                    .map(|(k, v)| format!("--config.label={k}={v}")),
            );
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            layout.config(&refs);
            layout
        });
        layout.push(reg, &unique("fixture/metadata"), "v1")
    })
}

/// One platform of the multi-platform fixture.
#[derive(Clone, Debug)]
pub struct PlatformImage {
    /// The child manifest digest.
    pub digest: String,
}

/// The multi-platform fixture: linux/amd64, linux/arm64/v8 and linux/arm/v7
/// children (each with `/platform` naming itself), joined by a hand-written
/// OCI index.
pub struct MultiPlatform {
    /// The pushed index.
    pub pushed: Pushed,
    /// Its children, in index order.
    pub children: Vec<PlatformImage>,
}

/// The multi-platform index in `reg` (pushed once).
pub fn multi_platform(reg: &Registry) -> MultiPlatform {
    let layout = multi_platform_layout();
    let pushed = cached(reg, "multi", || {
        layout.0.push(reg, &unique("fixture/multi"), "multi")
    });
    MultiPlatform {
        pushed,
        children: layout.1.clone(),
    }
}

fn multi_platform_layout() -> &'static (Layout, Vec<PlatformImage>) {
    static LAYOUT: OnceLock<(Layout, Vec<PlatformImage>)> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let stage = process::scratch_dir("multi-stage");
        let base = Layout::new("multi");
        let specs: [(&str, &str, Option<&str>); 3] = [
            ("linux", "amd64", None),
            ("linux", "arm64", Some("v8")),
            ("linux", "arm", Some("v7")),
        ];
        let mut children = Vec::new();
        let mut entries = Vec::new();
        for (os, arch, variant) in specs {
            let name = format!("{arch}{}", variant.unwrap_or(""));
            let child = base.tagged(&name);
            let marker = format!(
                "{os}/{arch}{}\n",
                variant.map(|v| format!("/{v}")).unwrap_or_default()
            );
            let file = stage.join(&name);
            write(&file, &marker, 0o644);
            child.insert(&file, "/platform");
            child.config(&[
                &format!("--os={os}"),
                &format!("--architecture={arch}"),
                &format!("--config.label=platform={name}"),
            ]);
            let descriptor = child.descriptor();
            let mut platform = json!({ "architecture": arch, "os": os });
            if let Some(v) = variant {
                platform["variant"] = json!(v);
            }
            entries.push(json!({
                "mediaType": descriptor["mediaType"],
                "digest": descriptor["digest"],
                "size": descriptor["size"],
                "platform": platform,
            }));
            children.push(PlatformImage {
                digest: descriptor["digest"].as_str().expect("digest").to_string(),
            });
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        }))
        .expect("index JSON");
        let digest = sha256_digest(&index);
        std::fs::write(base.dir.join("blobs/sha256").join(&digest[7..]), &index)
            .expect("writing index blob");
        let _guard = layout_lock();
        let index_path = base.dir.join("index.json");
        let mut top: Value = read_json(&index_path);
        top["manifests"]
            .as_array_mut()
            .expect("manifests")
            .push(json!({
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest,
                "size": index.len(),
                "annotations": { "org.opencontainers.image.ref.name": "multi" },
            }));
        std::fs::write(&index_path, serde_json::to_vec(&top).expect("JSON"))
            .expect("writing index.json");
        let layout = Layout {
            dir: base.dir.clone(),
            tag: "multi".into(),
        };
        (layout, children)
    })
}

/// Pushes a distinct small image (differing by a label, with config
/// `created` = `created[i]` when given) for each tag into a fresh repository
/// and returns the repository path and each tag's digest. Tags listed in
/// `aliases` as `(alias, target)` are pushed afterwards with the same digest
/// as `target`.
pub fn tags(
    reg: &Registry,
    name: &str,
    tags: &[&str],
    aliases: &[(&str, &str)],
    created: &[&str],
) -> (String, HashMap<String, String>) {
    let repo = unique(name);
    let digests = tags_in(reg, &repo, tags, aliases, created);
    (repo, digests)
}

/// [`tags`] into the repository path `repo` exactly (e.g. `library/<name>`
/// for a Docker Hub mirror); returns each tag's digest.
pub fn tags_in(
    reg: &Registry,
    repo: &str,
    tags: &[&str],
    aliases: &[(&str, &str)],
    created: &[&str],
) -> HashMap<String, String> {
    let repo = repo.to_string();
    let base = tiny_layout();
    let mut digests = HashMap::new();
    for (i, tag) in tags.iter().enumerate() {
        let layout = base.tagged(&unique("t"));
        let mut args = vec![format!("--config.label=fixture.tag={tag}")];
        if let Some(when) = created.get(i) {
            args.push(format!("--created={when}"));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        layout.config(&refs);
        let pushed = layout.push(reg, &repo, tag);
        digests.insert(tag.to_string(), pushed.digest);
    }
    for (alias, target) in aliases {
        reg.retag(&repo, target, alias);
        let digest = reg.digest_of(&format!("{repo}:{alias}"));
        assert_eq!(
            Some(&digest),
            digests.get(*target),
            "alias {alias} keeps the digest of {target}"
        );
        digests.insert(alias.to_string(), digest);
    }
    digests
}

/// A one-layer image with a single small file, the base of [`tags`].
pub fn tiny_layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let stage = process::scratch_dir("tiny-stage");
        write(&stage.join("hello"), "hello\n", 0o644);
        let layout = Layout::new("tiny");
        layout.insert(&stage.join("hello"), "/hello");
        layout.config(&["--os=linux", "--architecture=amd64"]);
        layout
    })
}

/// Media type of a gzip-compressed OCI layer.
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of a zstd-compressed OCI layer.
pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Media type of an uncompressed OCI layer.
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// An image written byte by byte, for what umoci cannot make: zstd and
/// uncompressed layers, mislabelled compression, hostile tar entries.
/// Written as an OCI layout and pushed with skopeo like the others.
#[derive(Default)]
pub struct RawImage {
    layers: Vec<(Vec<u8>, String, String)>, // (blob, media type, diff_id)
    /// An artifact's config (media type, bytes) instead of an image config.
    artifact_config: Option<(String, Vec<u8>)>,
    /// Layer descriptors whose blobs the layout does not hold (foreign
    /// layers: Windows base layers, fetched from their `urls`).
    foreign: Vec<Value>,
}

/// A tar stream built entry by entry, names written verbatim (so `..` and
/// absolute names are possible).
pub struct RawTar {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for RawTar {
    fn default() -> Self {
        Self::new()
    }
}

impl RawTar {
    /// An empty archive.
    pub fn new() -> RawTar {
        RawTar {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(ODD_MTIME as u64);
        header.set_uid(0);
        header.set_gid(0);
        // Written raw: `set_path` refuses `..`, which hostile tests need.
        let bytes = name.as_bytes();
        assert!(bytes.len() < 100, "short names only");
        let old = header.as_old_mut();
        old.name = [0; 100];
        old.name[..bytes.len()].copy_from_slice(bytes);
        header.set_cksum();
        header
    }

    /// A regular file.
    pub fn file(mut self, name: &str, contents: &[u8], mode: u32) -> Self {
        let header = Self::header(name, tar::EntryType::Regular, mode, contents.len() as u64);
        self.builder.append(&header, contents).expect("tar append");
        self
    }

    /// A directory.
    pub fn dir(mut self, name: &str, mode: u32) -> Self {
        let header = Self::header(name, tar::EntryType::Directory, mode, 0);
        self.builder
            .append(&header, std::io::empty())
            .expect("tar append");
        self
    }

    /// A symlink `name -> target`.
    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        let mut header = Self::header(name, tar::EntryType::Symlink, 0o777, 0);
        header.set_link_name(target).expect("link name");
        header.set_cksum();
        self.builder
            .append(&header, std::io::empty())
            .expect("tar append");
        self
    }

    /// The finished archive.
    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().expect("finishing tar")
    }
}

impl RawImage {
    /// An image without layers.
    pub fn new() -> RawImage {
        RawImage::default()
    }

    /// Adds `tar` compressed as `compression` ("gzip", "zstd" or "none"),
    /// declared with `media_type` (which may lie on purpose).
    pub fn layer(mut self, tar: Vec<u8>, compression: &str, media_type: &str) -> Self {
        let diff_id = sha256_digest(&tar);
        let blob = match compression {
            "gzip" => {
                use std::io::Write;
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&tar).expect("gzip");
                enc.finish().expect("gzip")
            }
            "zstd" => zstd::encode_all(&tar[..], 3).expect("zstd"),
            "none" => tar,
            other => panic!("unknown compression {other}"),
        };
        self.layers.push((blob, media_type.to_string(), diff_id));
        self
    }

    /// Makes this an artifact: its config is `bytes` of `media_type` (a Helm
    /// chart's config, OCI 1.1's empty config) instead of an image config.
    pub fn artifact_config(mut self, media_type: &str, bytes: &[u8]) -> Self {
        self.artifact_config = Some((media_type.to_string(), bytes.to_vec()));
        self
    }

    /// Adds a foreign layer: a descriptor with `urls`, its blob not in the
    /// layout (as `docker save` leaves Windows base layers out).
    pub fn foreign_layer(mut self, contents: &[u8]) -> Self {
        self.foreign.push(json!({
            "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "digest": sha256_digest(contents),
            "size": contents.len(),
            "urls": ["https://example.invalid/layer.tar.gz"],
        }));
        self
    }

    /// Writes the image as an OCI layout (tag `latest`).
    pub fn layout(&self, name: &str) -> Layout {
        let dir = process::scratch_dir(name).join("layout");
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).expect("mkdir blobs");
        let put = |bytes: &[u8]| -> (String, usize) {
            let digest = sha256_digest(bytes);
            std::fs::write(blobs.join(&digest[7..]), bytes).expect("writing blob");
            (digest, bytes.len())
        };
        let config = serde_json::to_vec(&json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": self.layers.iter().map(|l| l.2.clone()).collect::<Vec<_>>()},
        }))
        .expect("config JSON");
        let (config_type, config) = match &self.artifact_config {
            Some((media_type, bytes)) => (media_type.as_str(), bytes.clone()),
            None => ("application/vnd.oci.image.config.v1+json", config),
        };
        let (config_digest, config_size) = put(&config);
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|(blob, media_type, _)| {
                let (digest, size) = put(blob);
                json!({"mediaType": media_type, "digest": digest, "size": size})
            })
            .chain(self.foreign.iter().cloned())
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config_type, "digest": config_digest, "size": config_size},
            "layers": layers,
        }))
        .expect("manifest JSON");
        let (manifest_digest, manifest_size) = put(&manifest);
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("oci-layout");
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }],
        });
        std::fs::write(
            dir.join("index.json"),
            serde_json::to_vec(&index).expect("JSON"),
        )
        .expect("index.json");
        Layout {
            dir,
            tag: "latest".into(),
        }
    }

    /// Writes and pushes the image to a fresh repository named after `name`.
    pub fn push(&self, reg: &Registry, name: &str) -> Pushed {
        self.layout(name).push(reg, &unique(name), "v1")
    }
}
