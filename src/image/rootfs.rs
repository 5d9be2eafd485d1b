//! Unpacking image layers into a root filesystem, without ever writing
//! outside it.
//!
//! `tar`'s own `unpack_in` is not used: it resolves symlinks against the
//! host, so an absolute in-image symlink (`/etc/alternatives/x -> /usr/...`)
//! would point at the host, and it silently *skips* `..` entries. A container
//! rootfs needs chroot semantics instead, which [`Unpacker`] implements with
//! its own resolver:
//!
//! - every path is resolved component by component under the root; symlinks
//!   met on the way are expanded with absolute targets starting again at the
//!   root and `..` clamped at it, so nothing can name a host path;
//! - entry paths are relative to the root: a leading `/` is dropped (`/`,
//!   `/bin/sh` from `umoci insert DIR /` and other Go-written layers), as Go's
//!   archive/tar users (ggcr and so registry-image, dockerd, umoci) join
//!   every name under the rootfs; an entry path containing `..` is an error
//!   (a hostile or broken layer), as is a hard link whose source does;
//! - an existing path is removed before an entry is created in its place,
//!   unless both are directories, and files are created with `O_EXCL`, so a
//!   symlink planted by an earlier entry is never written through;
//! - whiteouts (`.wh.<name>`, `.wh..wh..opq`) are resolved the same way and
//!   only remove what earlier layers created;
//! - directory modes and mtimes are applied at the very end, deepest first,
//!   so read-only directories can still be filled and creating children does
//!   not disturb recorded mtimes;
//! - ownership is applied only as root, devices are created only as root,
//!   and extended attributes are best effort.

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use filetime::FileTime;
use tar::EntryType;

use super::compression;
use super::{Error, Result};

/// What the unpacker may do besides creating files.
#[derive(Debug, Clone, Copy)]
pub struct UnpackOptions {
    /// Apply owners from the layer and create device nodes. Only works as
    /// root; registry-image does the same.
    pub as_root: bool,
}

impl UnpackOptions {
    /// Options for the current process: `as_root` when the effective uid is 0.
    pub fn for_current_user() -> Self {
        UnpackOptions {
            as_root: nix::unistd::geteuid().is_root(),
        }
    }
}

/// Counts for one unpacked layer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LayerStats {
    /// Tar entries applied (files, directories, links, whiteouts).
    pub entries: u64,
    /// Entries skipped (devices as non-root, unknown types).
    pub skipped: u64,
}

#[derive(Debug, Clone, Copy)]
struct DirMeta {
    mode: u32,
    mtime: FileTime,
}

/// Applies layers, in order, to one root directory.
///
/// Call [`Unpacker::unpack_layer`] for each layer, then [`Unpacker::finish`]
/// to apply directory metadata.
pub struct Unpacker {
    root: PathBuf,
    opts: UnpackOptions,
    /// Directory metadata to apply at the end, by path relative to the root.
    dirs: BTreeMap<PathBuf, DirMeta>,
    /// Paths (relative, resolved) known to be real directories. Only we
    /// write under the root and every replacement goes through
    /// [`Unpacker::remove`], which forgets what it removes, so this saves
    /// an `lstat` per path component without going stale.
    known_dirs: HashSet<PathBuf>,
    /// Copy buffer, allocated once: layers have many small files.
    buf: Vec<u8>,
}

/// Unpacks a single layer (any compression) into `root` and applies its
/// directory metadata.
pub fn unpack_layer<R: Read>(reader: R, root: &Path) -> Result<LayerStats> {
    let mut unpacker = Unpacker::new(root, UnpackOptions::for_current_user())?;
    let stats = unpacker.unpack_layer("layer", reader)?;
    unpacker.finish()?;
    Ok(stats)
}

/// Why an entry was refused; becomes [`Error::UnsafeEntry`].
struct Refused(String);

/// The normal components of an entry path, relative to the root.
///
/// A leading `/` names the root itself, as in every Go tool that writes or
/// reads layers (`umoci insert DIR /` writes an entry named `/`). `..` is
/// refused rather than skipped, because no honest layer contains it.
fn entry_components(path: &Path) -> std::result::Result<Vec<&OsStr>, Refused> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            // `Path::components` yields these only first (Prefix never on Unix).
            Component::Prefix(_) | Component::RootDir => {}
            Component::ParentDir => return Err(Refused("path contains `..`".into())),
            Component::CurDir => {}
            Component::Normal(n) => out.push(n),
        }
    }
    Ok(out)
}

fn not_a_dir(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotADirectory,
        // The path holds entry names from the layer, which may hold
        // terminal controls: escaped.
        format!(
            "{} is not a directory",
            crate::text::escape_line(&path.display().to_string())
        ),
    )
}

impl Unpacker {
    /// Prepares to unpack into `root`, creating it if needed.
    pub fn new(root: &Path, opts: UnpackOptions) -> Result<Self> {
        fs::create_dir_all(root).map_err(|e| Error::io("creating rootfs directory", root, e))?;
        Ok(Unpacker {
            root: root.to_owned(),
            opts,
            dirs: BTreeMap::new(),
            known_dirs: HashSet::new(),
            buf: vec![0u8; 256 * 1024],
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves `components` under the root as the kernel would inside a
    /// chroot and returns a symlink-free path relative to the root.
    ///
    /// With `follow_last` a symlink in the last component is expanded too.
    /// With `create` the path names a directory: every missing component is
    /// created (0755) and any non-directory on the way is an error. Without
    /// it a missing last component is fine (the caller is about to create
    /// it), a missing intermediate one is `NotFound`.
    pub fn resolve(
        &mut self,
        components: &[&OsStr],
        follow_last: bool,
        create: bool,
    ) -> io::Result<PathBuf> {
        let mut resolved = PathBuf::new();
        let mut pending: VecDeque<OsString> = components.iter().map(|c| c.to_os_string()).collect();
        let mut hops = 0u32;
        while let Some(name) = pending.pop_front() {
            if name.is_empty() || name == "." {
                continue;
            }
            if name == ".." {
                // Only symlink targets get here; `..` at the root stays there.
                resolved.pop();
                continue;
            }
            let is_last = pending.is_empty();
            if is_last && !follow_last {
                resolved.push(&name);
                break;
            }
            let candidate = resolved.join(&name);
            if self.known_dirs.contains(&candidate) {
                resolved = candidate;
                continue;
            }
            let host = self.root.join(&candidate);
            match fs::symlink_metadata(&host) {
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > 40 {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!(
                                "too many levels of symbolic links at {}",
                                crate::text::escape_line(&host.display().to_string())
                            ),
                        ));
                    }
                    let target = fs::read_link(&host)?;
                    if target.is_absolute() {
                        resolved = PathBuf::new();
                    }
                    for c in target.components().rev() {
                        match c {
                            Component::Normal(n) => pending.push_front(n.to_os_string()),
                            Component::ParentDir => pending.push_front("..".into()),
                            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                        }
                    }
                }
                Ok(m) if m.is_dir() => {
                    self.known_dirs.insert(candidate);
                    resolved.push(&name);
                }
                Ok(_) if create => return Err(not_a_dir(&host)),
                Ok(_) if is_last => resolved.push(&name),
                Ok(_) => return Err(not_a_dir(&host)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if create {
                        fs::DirBuilder::new().mode(0o755).create(&host)?;
                        self.known_dirs.insert(candidate);
                    } else if !is_last {
                        return Err(e);
                    }
                    resolved.push(&name);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(resolved)
    }

    /// Applies one layer. `layer` names it in errors (its digest).
    ///
    /// A layer that ends early *inside its content* (a truncated gzip
    /// stream or tar whose blob was delivered completely) fails with
    /// `InvalidData`; only a failure of `reader` itself keeps its kind, so
    /// the retry loop retries broken downloads but not broken images.
    pub fn unpack_layer<R: Read>(&mut self, layer: &str, reader: R) -> Result<LayerStats> {
        let reader_failed = Rc::new(Cell::new(false));
        let classify = |e: io::Error| {
            if !reader_failed.get() && e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("layer content is truncated or corrupt: {e}"),
                )
            } else {
                e
            }
        };
        let stream_err = |source| Error::Unpack {
            layer: layer.to_owned(),
            entry: String::new(),
            source: classify(source),
        };
        let reader = Tap {
            inner: reader,
            failed: reader_failed.clone(),
        };
        let decoder = compression::decompress(reader).map_err(stream_err)?;
        let data_end = Rc::new(Cell::new(None));
        let mut archive = tar::Archive::new(UnpaddedEnd::new(decoder, data_end.clone()));
        let mut stats = LayerStats::default();
        let result = self.apply_all(layer, &mut archive, &data_end, &mut stats, &classify);
        let decoder = archive.into_inner().inner;
        match result {
            Ok(()) => decoder.finish().map_err(stream_err)?,
            Err(e) if !reader_failed.get() => {
                // A layer that does not parse may simply be a corrupt
                // download: read the rest so the source's digest check can
                // say so, which is the more useful (and retryable) error.
                if let Err(read) = decoder.drain_raw() {
                    return Err(stream_err(read));
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        Ok(stats)
    }

    fn apply_all<D: Read>(
        &mut self,
        layer: &str,
        archive: &mut tar::Archive<UnpaddedEnd<D>>,
        data_end: &Cell<Option<u64>>,
        stats: &mut LayerStats,
        classify: &dyn Fn(io::Error) -> io::Error,
    ) -> Result<()> {
        let stream_err = |source| Error::Unpack {
            layer: layer.to_owned(),
            entry: String::new(),
            source: classify(source),
        };
        // Paths this layer created: whiteouts only hide lower layers.
        let mut written: HashSet<PathBuf> = HashSet::new();
        for entry in archive.entries().map_err(stream_err)? {
            let mut entry = entry.map_err(stream_err)?;
            // A sparse entry's size is its logical size, not what follows
            // in the stream: it never gets its padding supplied.
            data_end.set(
                (entry.header().entry_type() != EntryType::GNUSparse)
                    .then(|| entry.raw_file_position().saturating_add(entry.size())),
            );
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            match self.apply(&mut entry, &raw, &mut written) {
                Ok(true) => stats.entries += 1,
                Ok(false) => stats.skipped += 1,
                Err(ApplyError::Refused(Refused(reason))) => {
                    return Err(Error::UnsafeEntry {
                        layer: layer.to_owned(),
                        entry: shown,
                        reason,
                    });
                }
                Err(ApplyError::Io(source)) => {
                    return Err(Error::Unpack {
                        layer: layer.to_owned(),
                        entry: shown,
                        source: classify(source),
                    });
                }
            }
        }
        Ok(())
    }

    /// Applies directory modes and mtimes, deepest first.
    pub fn finish(self) -> Result<()> {
        let mut dirs: Vec<_> = self.dirs.into_iter().collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (rel, meta) in dirs {
            let host = self.root.join(&rel);
            match fs::symlink_metadata(&host) {
                Ok(m) if m.is_dir() => {}
                // Removed or replaced by a later layer.
                _ => continue,
            }
            fs::set_permissions(&host, fs::Permissions::from_mode(meta.mode))
                .and_then(|()| filetime::set_symlink_file_times(&host, meta.mtime, meta.mtime))
                .map_err(|e| Error::io("setting directory metadata on", &host, e))?;
        }
        Ok(())
    }

    /// Applies one entry; `Ok(false)` when it was skipped.
    ///
    /// The order of the steps is what keeps writes inside the root: the
    /// path is checked for `..` before anything else, whiteouts go to
    /// [`Unpacker::whiteout`] before anything is created, and the parent is
    /// resolved in the root before the entry's kind decides what is created
    /// there.
    fn apply<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw_path: &[u8],
        written: &mut HashSet<PathBuf>,
    ) -> std::result::Result<bool, ApplyError> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(false);
        }
        let path = Path::new(OsStr::from_bytes(raw_path));
        let comps = entry_components(path)?;
        let Some((name, parent)) = comps.split_last() else {
            // The root itself (`./`): it exists; its metadata is ours.
            return Ok(false);
        };
        let name_bytes = name.as_bytes();
        if let Some(target) = name_bytes.strip_prefix(b".wh.") {
            return self.whiteout(parent, target, written);
        }

        let slot = self.slot(parent, name)?;
        let meta = EntryMeta::read(entry)?;
        let made = match kind {
            EntryType::Directory => self.make_dir(&slot, &meta)?,
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.make_file(entry, &slot, &meta)?
            }
            EntryType::Symlink => self.make_symlink(entry, &slot, &meta)?,
            EntryType::Link => self.make_hard_link(entry, &slot)?,
            EntryType::Fifo => self.make_fifo(&slot, &meta)?,
            EntryType::Char | EntryType::Block => {
                self.make_device(entry.header(), path, &slot, &meta)?
            }
            other => {
                tracing::debug!(entry = ?path, kind = ?other, "skipping unsupported tar entry");
                return Ok(false);
            }
        };
        match made {
            Made::Created => {
                written.insert(slot.rel);
                Ok(true)
            }
            Made::AlreadyThere => Ok(true),
            Made::Skipped => Ok(false),
        }
    }

    /// Resolves an entry's parent in the root, creating missing
    /// directories, and looks at what is at the entry's own path without
    /// following it: the last component is never resolved, so a symlink
    /// there is replaced, not written through.
    fn slot(&mut self, parent: &[&OsStr], name: &OsStr) -> io::Result<Slot> {
        let parent_rel = self.resolve(parent, true, true)?;
        let rel = parent_rel.join(name);
        let host = self.root.join(&rel);
        let existing = match fs::symlink_metadata(&host) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Slot {
            rel,
            host,
            existing,
        })
    }

    /// Removes what an entry replaces, if anything is there.
    fn clear(&mut self, slot: &Slot) -> io::Result<()> {
        if slot.existing.is_some() {
            self.remove(&slot.rel)?;
        }
        Ok(())
    }

    /// A directory entry keeps an existing directory (and what earlier
    /// layers put in it); its mode and mtime wait for [`Unpacker::finish`]
    /// so that later entries can still be created inside it.
    fn make_dir(&mut self, slot: &Slot, meta: &EntryMeta) -> io::Result<Made> {
        match &slot.existing {
            Some(m) if m.is_dir() => {}
            Some(_) => {
                self.remove(&slot.rel)?;
                fs::DirBuilder::new().mode(0o755).create(&slot.host)?;
            }
            None => fs::DirBuilder::new().mode(0o755).create(&slot.host)?,
        }
        self.known_dirs.insert(slot.rel.clone());
        self.chown(&slot.host, meta.uid, meta.gid)?;
        self.xattrs(&meta.pax, &slot.host);
        self.dirs.insert(
            slot.rel.clone(),
            DirMeta {
                mode: meta.mode,
                mtime: meta.mtime,
            },
        );
        Ok(Made::Created)
    }

    /// A regular file, created fresh so that nothing already at its path
    /// is written through.
    fn make_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        slot: &Slot,
        meta: &EntryMeta,
    ) -> io::Result<Made> {
        self.clear(slot)?;
        // O_EXCL|O_NOFOLLOW: never write through anything that
        // appeared at this path, even a racing symlink.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&slot.host)?;
        copy(entry, &mut file, &mut self.buf)?;
        if self.opts.as_root {
            std::os::unix::fs::fchown(&file, Some(meta.uid as u32), Some(meta.gid as u32))?;
        }
        // After chown, which clears set-id bits.
        file.set_permissions(fs::Permissions::from_mode(meta.mode))?;
        self.xattrs(&meta.pax, &slot.host);
        filetime::set_file_handle_times(&file, Some(meta.mtime), Some(meta.mtime))?;
        Ok(Made::Created)
    }

    /// A symlink, stored with its target as written: it is only ever
    /// followed by a resolver that keeps it inside the root.
    fn make_symlink<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        slot: &Slot,
        meta: &EntryMeta,
    ) -> std::result::Result<Made, ApplyError> {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| Refused("symlink without a target".into()))?
            .into_owned();
        self.clear(slot)?;
        // Stored as written: absolute targets are resolved inside
        // the root by whoever follows them (our resolver, a container).
        std::os::unix::fs::symlink(OsStr::from_bytes(&target), &slot.host)?;
        self.chown(&slot.host, meta.uid, meta.gid)?;
        filetime::set_symlink_file_times(&slot.host, meta.mtime, meta.mtime)?;
        Ok(Made::Created)
    }

    /// A hard link, whose source is an entry path like any other: refused
    /// with `..`, resolved in the root, and never a directory. Nothing is
    /// removed before the source has passed those checks.
    fn make_hard_link<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        slot: &Slot,
    ) -> std::result::Result<Made, ApplyError> {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| Refused("hard link without a source".into()))?
            .into_owned();
        let target_comps = entry_components(Path::new(OsStr::from_bytes(&target)))
            .map_err(|Refused(r)| Refused(format!("hard link source: {r}")))?;
        if target_comps.is_empty() {
            return Err(Refused("hard link to the root directory".into()).into());
        }
        let src_rel = self.resolve(&target_comps, false, false)?;
        let src = self.root.join(&src_rel);
        let src_meta = fs::symlink_metadata(&src)?;
        if src_meta.is_dir() {
            return Err(Refused("hard link to a directory".into()).into());
        }
        if src_rel == slot.rel {
            return Ok(Made::AlreadyThere);
        }
        self.clear(slot)?;
        // linkat without AT_SYMLINK_FOLLOW: a link to a symlink
        // links the symlink itself, which stays inside the root.
        fs::hard_link(&src, &slot.host)?;
        Ok(Made::Created)
    }

    /// A named pipe; its mode is set again after `mkfifo`, which applies
    /// the umask.
    fn make_fifo(&mut self, slot: &Slot, meta: &EntryMeta) -> io::Result<Made> {
        self.clear(slot)?;
        nix::unistd::mkfifo(
            &slot.host,
            nix::sys::stat::Mode::from_bits_truncate(meta.mode),
        )
        .map_err(io::Error::from)?;
        self.chown(&slot.host, meta.uid, meta.gid)?;
        fs::set_permissions(&slot.host, fs::Permissions::from_mode(meta.mode))?;
        filetime::set_symlink_file_times(&slot.host, meta.mtime, meta.mtime)?;
        Ok(Made::Created)
    }

    /// A character or block device: only root may create one, and root in
    /// a user namespace may still be refused; either way the entry is
    /// skipped (and counted as such) rather than failing the layer. `path`
    /// names the entry in the log.
    fn make_device(
        &mut self,
        header: &tar::Header,
        path: &Path,
        slot: &Slot,
        meta: &EntryMeta,
    ) -> io::Result<Made> {
        if !self.opts.as_root {
            tracing::debug!(entry = ?path, "skipping device node: not root");
            return Ok(Made::Skipped);
        }
        self.clear(slot)?;
        let kind_bits = if header.entry_type() == EntryType::Char {
            nix::sys::stat::SFlag::S_IFCHR
        } else {
            nix::sys::stat::SFlag::S_IFBLK
        };
        let major = header.device_major()?.unwrap_or(0);
        let minor = header.device_minor()?.unwrap_or(0);
        let dev = nix::sys::stat::makedev(major.into(), minor.into());
        match nix::sys::stat::mknod(
            &slot.host,
            kind_bits,
            nix::sys::stat::Mode::from_bits_truncate(meta.mode),
            dev,
        ) {
            Ok(()) => {}
            // Root in a user namespace may not create devices.
            Err(nix::errno::Errno::EPERM) => {
                tracing::warn!(entry = ?path, "skipping device node: not permitted");
                return Ok(Made::Skipped);
            }
            Err(e) => return Err(io::Error::from(e)),
        }
        self.chown(&slot.host, meta.uid, meta.gid)?;
        filetime::set_symlink_file_times(&slot.host, meta.mtime, meta.mtime)?;
        Ok(Made::Created)
    }

    fn whiteout(
        &mut self,
        parent: &[&OsStr],
        target: &[u8],
        written: &HashSet<PathBuf>,
    ) -> std::result::Result<bool, ApplyError> {
        let opaque = target == b".wh..opq";
        if !opaque {
            match target {
                b"" => return Err(Refused("whiteout without a name".into()).into()),
                b"." | b".." => {
                    return Err(Refused("whiteout names a parent directory".into()).into());
                }
                // aufs bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): not content.
                t if t.starts_with(b".wh.") => return Ok(false),
                _ => {}
            }
        }
        let parent_rel = match self.resolve(parent, true, false) {
            Ok(p) => p,
            // Nothing there to hide.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(true);
            }
            Err(e) => return Err(e.into()),
        };
        let dir = self.root.join(&parent_rel);
        if opaque {
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                _ => return Ok(true),
            }
            for child in fs::read_dir(&dir)? {
                let child = child?;
                if !written.contains(&parent_rel.join(child.file_name())) {
                    self.remove(&parent_rel.join(child.file_name()))?;
                }
            }
        } else {
            let rel = parent_rel.join(OsStr::from_bytes(target));
            if !written.contains(&rel) {
                self.remove(&rel)?;
            }
        }
        Ok(true)
    }

    /// Removes whatever is at `rel` without following a symlink there, and
    /// forgets pending metadata of directories that went with it.
    fn remove(&mut self, rel: &Path) -> io::Result<()> {
        let host = self.root.join(rel);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => {
                // std's remove_dir_all does not follow symlinks inside.
                fs::remove_dir_all(&host)?;
                self.dirs.retain(|k, _| !k.starts_with(rel));
                self.known_dirs.retain(|k| !k.starts_with(rel));
                Ok(())
            }
            Ok(_) => fs::remove_file(&host),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn chown(&self, path: &Path, uid: u64, gid: u64) -> io::Result<()> {
        if self.opts.as_root {
            std::os::unix::fs::lchown(path, Some(uid as u32), Some(gid as u32))?;
        }
        Ok(())
    }

    /// Sets `SCHILY.xattr.*` PAX records; failures (filesystems without
    /// xattr support, `security.*` as non-root) are only logged.
    fn xattrs(&self, pax: &Pax, path: &Path) {
        for (name, value) in &pax.xattrs {
            if let Err(e) = xattr::set(path, OsStr::from_bytes(name), value) {
                tracing::debug!(path = ?path, error = %e, "could not set extended attribute");
            }
        }
    }
}

/// Where an entry goes: its path relative to the root (the parent
/// resolved, so symlink-free), the same path on the host, and what is
/// there now (not followed), which decides whether it is removed first.
struct Slot {
    rel: PathBuf,
    host: PathBuf,
    existing: Option<fs::Metadata>,
}

/// What applying an entry's kind did, which decides how it is counted and
/// whether it is recorded as written by this layer (which the layer's own
/// whiteouts then leave alone).
enum Made {
    /// Created at its path: counted, and recorded as written by this layer.
    Created,
    /// A hard link to itself: counted, but nothing was created.
    AlreadyThere,
    /// Not created (a device node we may not make): counted as skipped.
    Skipped,
}

/// Copies file content with a buffer large enough to keep syscalls rare.
fn copy<R: Read>(from: &mut R, to: &mut File, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0;
    loop {
        let n = match from.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

enum ApplyError {
    Refused(Refused),
    Io(io::Error),
}

impl From<Refused> for ApplyError {
    fn from(r: Refused) -> Self {
        ApplyError::Refused(r)
    }
}

impl From<io::Error> for ApplyError {
    fn from(e: io::Error) -> Self {
        ApplyError::Io(e)
    }
}

mod entry;
mod stream;
use entry::{EntryMeta, Pax};
use stream::{Tap, UnpaddedEnd};

#[cfg(test)]
mod tests;
