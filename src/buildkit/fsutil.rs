//! The sending side of fsutil's DiffCopy protocol: how a local directory is
//! uploaded to the daemon (`FileSync.DiffCopy`).
//!
//! The listing is a depth-first, pre-order walk with each directory's entries
//! sorted byte-wise by name (the daemon rejects any other order with "changes
//! out of order"), one `PACKET_STAT` per entry, ended by a STAT packet without
//! a `stat`. Entry ids are positions in that listing. The daemon then asks for
//! regular files by id (`PACKET_REQ`), in any order and possibly before the
//! listing ends; each is answered with `PACKET_DATA` chunks and an empty DATA.
//! `PACKET_FIN` from the daemon is answered with FIN. Filtering follows
//! fsutil's `FilterFS` (include/exclude patterns, follow paths, directories
//! emitted lazily when only something below them is kept).
//!
//! Memory stays bounded: file contents are streamed in [`CHUNK_SIZE`] pieces
//! through a bounded channel; only one small record per listed entry is kept.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tonic::Status;

use crate::oci::error_chain;

use super::patterns::{MatchInfo, PatternError, PatternMatcher, clean_path};
use super::proto::fsutil::types::{Packet, Stat, packet::PacketType};

/// Size of the DATA chunks a file is sent in.
pub const CHUNK_SIZE: usize = 64 * 1024;

// Go os.FileMode bits (fsutil sends those, not POSIX st_mode).
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_DEVICE: u32 = 1 << 26;
const MODE_NAMED_PIPE: u32 = 1 << 25;
const MODE_SETUID: u32 = 1 << 23;
const MODE_SETGID: u32 = 1 << 22;
const MODE_CHAR_DEVICE: u32 = 1 << 21;
const MODE_STICKY: u32 = 1 << 20;

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read.
    #[error("reading {path}")]
    Read {
        /// The path on the host.
        path: PathBuf,
        /// The io error.
        #[source]
        source: std::io::Error,
    },
    /// A directory deeper than the system's path limit (`PATH_MAX`).
    #[error("{} is longer than PATH_MAX ({} bytes); the build context is nested too deeply", shortened(.0), libc::PATH_MAX)]
    PathTooLong(PathBuf),
    /// An include/exclude pattern is malformed.
    #[error("invalid filter pattern")]
    Pattern(#[source] PatternError),
    /// A file's size changed between listing and upload.
    #[error("{path} changed size during upload: listed with {listed} bytes, read {read}")]
    ChangedSize {
        /// The file on the host.
        path: PathBuf,
        /// Size at listing time.
        listed: u64,
        /// Bytes read (at least) when the change was noticed.
        read: u64,
    },
    /// The daemon asked for an id that is not a listed regular file.
    #[error("daemon requested unknown file id {0}")]
    UnknownId(u32),
    /// The daemon reported an error.
    #[error("error from receiver: {0}")]
    Receiver(String),
    /// The daemon's stream failed.
    #[error("upload stream failed")]
    Stream(#[source] Status),
    /// The daemon went away before the transfer finished.
    #[error("upload stream closed before the transfer finished")]
    Closed,
}

/// A path too long to print whole: its start, an ellipsis and its length.
fn shortened(path: &Path) -> String {
    let text = path.to_string_lossy();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
        None => text.into_owned(),
    }
}

/// Filters for one directory transfer, as the daemon sent them.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Keep only paths matching one of these (or below a match).
    pub include_patterns: Vec<String>,
    /// Drop paths matched by these (`.dockerignore` lines).
    pub exclude_patterns: Vec<String>,
    /// Paths added to the includes, symlinks resolved inside the root.
    pub follow_paths: Vec<String>,
}

/// A listed regular file that may be requested.
#[derive(Debug, Clone)]
struct FileRef {
    path: PathBuf,
    size: u64,
}

/// The listed entries by id (`None` for entries that are not requestable).
type FileTable = Arc<Mutex<Vec<Option<FileRef>>>>;

/// Runs a complete DiffCopy send: lists `root` into `out` and answers the
/// daemon's requests from `incoming` until FIN. Errors are also reported to
/// the daemon as `PACKET_ERR`.
pub async fn send<S>(
    root: PathBuf,
    options: WalkOptions,
    mut incoming: S,
    out: mpsc::Sender<Result<Packet, Status>>,
) -> Result<(), Error>
where
    S: futures::Stream<Item = Result<Packet, Status>> + Send + Unpin + 'static,
{
    use futures::StreamExt;

    let files: FileTable = Arc::default();
    // Set when the transfer failed: the listing stops at its next entry, so
    // that nothing follows the ERR packet (found by fuzz/targets/fsutil.rs).
    let cancel = Arc::new(AtomicBool::new(false));
    let walker = {
        let files = files.clone();
        let out = out.clone();
        let cancel = cancel.clone();
        tokio::task::spawn_blocking(move || walk(&root, &options, &files, &out, &cancel))
    };
    // Drain the daemon's packets eagerly: it may send thousands of tiny
    // REQ packets at once, and leaving them unread in HTTP/2 buffers while a
    // big file is streamed makes the server's small-frame protection (h2
    // "data frame budget") close the whole session connection.
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(packet) = incoming.next().await {
            let stop = !matches!(&packet, Ok(p) if p.r#type == PacketType::PacketReq as i32);
            if events_tx.send(packet).is_err() || stop {
                break;
            }
        }
    });
    let mut walker = Some(walker);
    let result = async {
        loop {
            let packet = tokio::select! {
                // Surface listing errors without waiting for the daemon.
                done = async { walker.as_mut().expect("polled only while set").await }, if walker.is_some() => {
                    walker = None;
                    match done {
                        Ok(result) => result?,
                        Err(join) => return Err(Error::Receiver(format!("listing task failed: {join}"))),
                    }
                    continue;
                }
                packet = events.recv() => packet,
            };
            let Some(packet) = packet else {
                return Err(Error::Closed);
            };
            let packet = packet.map_err(Error::Stream)?;
            match PacketType::try_from(packet.r#type) {
                Ok(PacketType::PacketReq) => {
                    let file = files
                        .lock()
                        .expect("file table lock is never poisoned")
                        .get(packet.id as usize)
                        .cloned()
                        .flatten()
                        .ok_or(Error::UnknownId(packet.id))?;
                    send_file(packet.id, &file, &out).await?;
                }
                Ok(PacketType::PacketFin) => {
                    if let Some(walker) = walker.take() {
                        walker
                            .await
                            .map_err(|e| Error::Receiver(format!("listing task failed: {e}")))??;
                    }
                    let _ = out.send(Ok(packet_of(PacketType::PacketFin))).await;
                    return Ok(());
                }
                Ok(PacketType::PacketErr) => {
                    return Err(Error::Receiver(String::from_utf8_lossy(&packet.data).into_owned()));
                }
                // STAT/DATA never flow towards the sender; ignore like fsutil.
                _ => {}
            }
        }
    }
    .await;
    reader.abort();
    if let Err(e) = &result {
        cancel.store(true, Ordering::Relaxed);
        if let Some(walker) = walker.take() {
            // Its own outcome no longer matters: the transfer has failed.
            let _ = walker.await;
        }
        let mut packet = packet_of(PacketType::PacketErr);
        packet.data = error_chain(e).into();
        let _ = out.send(Ok(packet)).await;
    }
    result
}

fn packet_of(kind: PacketType) -> Packet {
    Packet {
        r#type: kind as i32,
        ..Packet::default()
    }
}

async fn send_file(
    id: u32,
    file: &FileRef,
    out: &mpsc::Sender<Result<Packet, Status>>,
) -> Result<(), Error> {
    let read_err = |source| Error::Read {
        path: file.path.clone(),
        source,
    };
    let mut f = tokio::fs::File::open(&file.path).await.map_err(read_err)?;
    let mut sent: u64 = 0;
    loop {
        let mut buf = BytesMut::with_capacity(CHUNK_SIZE);
        let n = f.read_buf(&mut buf).await.map_err(read_err)?;
        if n == 0 {
            break;
        }
        sent += n as u64;
        if sent > file.size {
            return Err(Error::ChangedSize {
                path: file.path.clone(),
                listed: file.size,
                read: sent,
            });
        }
        let packet = Packet {
            r#type: PacketType::PacketData as i32,
            id,
            data: buf.freeze(),
            ..Packet::default()
        };
        out.send(Ok(packet)).await.map_err(|_| Error::Closed)?;
    }
    if sent != file.size {
        return Err(Error::ChangedSize {
            path: file.path.clone(),
            listed: file.size,
            read: sent,
        });
    }
    let eof = Packet {
        r#type: PacketType::PacketData as i32,
        id,
        ..Packet::default()
    };
    out.send(Ok(eof)).await.map_err(|_| Error::Closed)
}

/// Lists `root` into `out` (blocking; runs on the blocking pool).
fn walk(
    root: &Path,
    options: &WalkOptions,
    files: &FileTable,
    out: &mpsc::Sender<Result<Packet, Status>>,
    cancel: &AtomicBool,
) -> Result<(), Error> {
    let mut emit = |stat: Stat, file: Option<FileRef>| -> Result<(), Error> {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        files
            .lock()
            .expect("file table lock is never poisoned")
            .push(file);
        let packet = Packet {
            r#type: PacketType::PacketStat as i32,
            stat: Some(stat),
            ..Packet::default()
        };
        out.blocking_send(Ok(packet)).map_err(|_| Error::Closed)
    };
    list(root, options, &mut emit)?;
    // The end of the listing is a STAT packet with no stat at all.
    out.blocking_send(Ok(packet_of(PacketType::PacketStat)))
        .map_err(|_| Error::Closed)
}

/// Walks `root` in protocol order and calls `emit` for each entry to send.
/// Exposed within the crate for tests of the listing alone.
fn list(
    root: &Path,
    options: &WalkOptions,
    emit: &mut dyn FnMut(Stat, Option<FileRef>) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut includes = options.include_patterns.clone();
    if !options.follow_paths.is_empty() {
        for p in follow_links(root, &options.follow_paths) {
            if !includes.contains(&p) {
                includes.push(p);
            }
        }
    }
    let include = if includes.is_empty() {
        None
    } else {
        Some(PatternMatcher::new(&includes).map_err(Error::Pattern)?)
    };
    let exclude = if options.exclude_patterns.is_empty() {
        None
    } else {
        Some(PatternMatcher::new(&options.exclude_patterns).map_err(Error::Pattern)?)
    };
    let mut walker = Walker {
        root,
        only_prefix_includes: include.as_ref().is_none_or(|m| m.only_literal(false)),
        only_prefix_exclude_exceptions: exclude.as_ref().is_none_or(|m| m.only_literal(true)),
        include,
        exclude,
        pending: Vec::new(),
        inodes: HashMap::new(),
        emit,
    };
    walker.walk_dir()
}

/// Where a directory of the walk is: in the context (as text for the
/// filters, as bytes for the wire) and on the host.
struct FramePath {
    rel_dir: String,
    rel_bytes: Vec<u8>,
    abs_dir: PathBuf,
}

impl Frame {
    fn top(root: PathBuf) -> FramePath {
        FramePath {
            rel_dir: String::new(),
            rel_bytes: Vec::new(),
            abs_dir: root,
        }
    }
}

/// One open directory of the walk: its path and the names left to visit.
struct Frame {
    /// The path in the context as the filters see it (not UTF-8 parts
    /// replaced), and as it is sent (the name's own bytes).
    rel_dir: String,
    rel_bytes: Vec<u8>,
    abs_dir: PathBuf,
    names: std::vec::IntoIter<OsString>,
    inc: MatchInfo,
    exc: MatchInfo,
}

struct Walker<'a> {
    root: &'a Path,
    include: Option<PatternMatcher>,
    exclude: Option<PatternMatcher>,
    only_prefix_includes: bool,
    only_prefix_exclude_exceptions: bool,
    /// Ancestor directories of the current position, with whether they were
    /// sent already (filtered-out directories are sent lazily, right before
    /// their first kept descendant, as fsutil does).
    pending: Vec<(Stat, bool)>,
    /// (dev, ino) → first sent path, for hard links.
    inodes: HashMap<(u64, u64), bytes::Bytes>,
    emit: &'a mut dyn FnMut(Stat, Option<FileRef>) -> Result<(), Error>,
}

impl Walker<'_> {
    /// The walk, depth first, with an explicit stack of open directories
    /// rather than recursion: a context nested thousands of directories
    /// deep must not overflow the thread's stack.
    fn walk_dir(&mut self) -> Result<(), Error> {
        let top = Frame::top(self.root.to_path_buf());
        let mut stack = vec![self.open_dir(top, MatchInfo::default(), MatchInfo::default())?];
        while let Some(frame) = stack.last_mut() {
            let Some(name) = frame.names.next() else {
                stack.pop();
                if !stack.is_empty() {
                    // The directory just finished was pushed with its frame.
                    self.pending.pop();
                }
                continue;
            };
            if let Some(child) = self.visit(frame, name)? {
                stack.push(child);
            }
        }
        Ok(())
    }

    /// Reads one directory's names, sorted byte-wise, into a frame.
    fn open_dir(&self, at: FramePath, inc: MatchInfo, exc: MatchInfo) -> Result<Frame, Error> {
        let FramePath {
            rel_dir,
            rel_bytes,
            abs_dir,
        } = at;
        if abs_dir.as_os_str().len() >= libc::PATH_MAX as usize {
            return Err(Error::PathTooLong(abs_dir));
        }
        let read_err = |source| Error::Read {
            path: abs_dir.clone(),
            source,
        };
        let mut names: Vec<OsString> = std::fs::read_dir(&abs_dir)
            .map_err(read_err)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(read_err)?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(Frame {
            rel_dir,
            rel_bytes,
            abs_dir,
            names: names.into_iter(),
            inc,
            exc,
        })
    }

    /// Handles one entry of `frame`: filters it, sends it, and returns the
    /// frame of a directory to walk next.
    fn visit(&mut self, frame: &Frame, name: OsString) -> Result<Option<Frame>, Error> {
        let abs = frame.abs_dir.join(&name);
        if abs.as_os_str().len() >= libc::PATH_MAX as usize {
            return Err(Error::PathTooLong(abs));
        }
        // Filters see the name as text (a part that is not UTF-8 replaced);
        // the daemon gets the name's own bytes, as Go's fsutil sends them.
        let lossy = name.to_string_lossy();
        let rel = if frame.rel_dir.is_empty() {
            lossy.clone().into_owned()
        } else {
            format!("{}/{lossy}", frame.rel_dir)
        };
        let mut rel_bytes = frame.rel_bytes.clone();
        if !rel_bytes.is_empty() {
            rel_bytes.push(b'/');
        }
        rel_bytes.extend_from_slice(name.as_bytes());
        let meta = match std::fs::symlink_metadata(&abs) {
            Ok(m) => m,
            // Removed since the directory was read: nothing to send.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Read { path: abs, source }),
        };
        let is_dir = meta.is_dir();
        let mut skip = false;
        let mut child_inc = MatchInfo::default();
        let mut child_exc = MatchInfo::default();
        if let Some(m) = &self.include {
            let (hit, info) = m.matches_using_parent(&rel, &frame.inc);
            child_inc = info;
            if !hit {
                if is_dir && self.only_prefix_includes && !m.literal_prefix_below(&rel, false) {
                    return Ok(None);
                }
                skip = true;
            }
        }
        if let Some(m) = &self.exclude {
            let (hit, info) = m.matches_using_parent(&rel, &frame.exc);
            child_exc = info;
            if hit {
                if is_dir
                    && self.only_prefix_exclude_exceptions
                    && (!m.has_exclusions() || !m.literal_prefix_below(&rel, true))
                {
                    return Ok(None);
                }
                skip = true;
            }
        }
        if meta.file_type().is_socket() {
            // Sockets cannot be transferred; fsutil drops them too.
            return Ok(None);
        }
        if is_dir {
            let stat = self.stat(&abs, &rel_bytes, &meta)?;
            self.pending.push((stat, false));
            if !skip {
                self.flush_pending()?;
            }
            let at = FramePath {
                rel_dir: rel,
                rel_bytes,
                abs_dir: abs,
            };
            match self.open_dir(at, child_inc, child_exc) {
                Ok(child) => Ok(Some(child)),
                Err(e) => {
                    self.pending.pop();
                    Err(e)
                }
            }
        } else if !skip {
            let stat = self.stat(&abs, &rel_bytes, &meta)?;
            self.flush_pending()?;
            self.emit_entry(stat, &abs, &meta)?;
            Ok(None)
        } else {
            Ok(None)
        }
    }

    fn flush_pending(&mut self) -> Result<(), Error> {
        for i in 0..self.pending.len() {
            if !self.pending[i].1 {
                self.pending[i].1 = true;
                (self.emit)(self.pending[i].0.clone(), None)?;
            }
        }
        Ok(())
    }

    fn emit_entry(
        &mut self,
        mut stat: Stat,
        abs: &Path,
        meta: &std::fs::Metadata,
    ) -> Result<(), Error> {
        if !meta.file_type().is_file() {
            return (self.emit)(stat, None);
        }
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.inodes.get(&key) {
                // A hard link to a file sent earlier: no data of its own.
                stat.linkname = first.clone();
                stat.size = 0;
                return (self.emit)(stat, None);
            }
            self.inodes.insert(key, stat.path.clone());
        }
        let file = FileRef {
            path: abs.to_owned(),
            size: meta.len(),
        };
        (self.emit)(stat, Some(file))
    }

    fn stat(&self, abs: &Path, rel: &[u8], meta: &std::fs::Metadata) -> Result<Stat, Error> {
        let ft = meta.file_type();
        let mut stat = Stat {
            path: bytes::Bytes::copy_from_slice(rel),
            mode: go_file_mode(meta),
            // Like buildctl: ownership is not carried into the build.
            uid: 0,
            gid: 0,
            size: if ft.is_file() { meta.len() as i64 } else { 0 },
            mod_time: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ..Stat::default()
        };
        if ft.is_symlink() {
            let target = std::fs::read_link(abs).map_err(|source| Error::Read {
                path: abs.to_owned(),
                source,
            })?;
            let target = target.as_os_str().as_bytes();
            stat.size = target.len() as i64;
            stat.linkname = bytes::Bytes::copy_from_slice(target);
        }
        if ft.is_block_device() || ft.is_char_device() {
            let rdev = meta.rdev();
            stat.devmajor = ((rdev >> 8) & 0xfff) as i64;
            stat.devminor = ((rdev & 0xff) | ((rdev >> 12) & 0xfff00)) as i64;
        }
        // Extended attributes where the filesystem has them; a filesystem
        // without xattr support is not an error.
        if let Ok(names) = xattr::list(abs) {
            for name in names {
                let Some(key) = name.to_str() else { continue };
                if let Ok(Some(value)) = xattr::get(abs, &name) {
                    stat.xattrs.insert(key.to_owned(), value.into());
                }
            }
        }
        Ok(stat)
    }
}

/// Converts POSIX mode bits into Go's `os.FileMode` encoding.
fn go_file_mode(meta: &std::fs::Metadata) -> u32 {
    let raw = meta.mode();
    let ft = meta.file_type();
    let mut mode = raw & 0o777;
    if ft.is_dir() {
        mode |= MODE_DIR;
    } else if ft.is_symlink() {
        mode |= MODE_SYMLINK;
    } else if ft.is_block_device() {
        mode |= MODE_DEVICE;
    } else if ft.is_char_device() {
        mode |= MODE_DEVICE | MODE_CHAR_DEVICE;
    } else if ft.is_fifo() {
        mode |= MODE_NAMED_PIPE;
    }
    if raw & 0o4000 != 0 {
        mode |= MODE_SETUID;
    }
    if raw & 0o2000 != 0 {
        mode |= MODE_SETGID;
    }
    if raw & 0o1000 != 0 {
        mode |= MODE_STICKY;
    }
    mode
}

/// fsutil `FollowLinks`: each path plus, for symlinks inside the root, the
/// paths they point to (resolved inside the root, chains followed).
fn follow_links(root: &Path, paths: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in paths {
        let mut current = clean_path(p.trim_start_matches('/'));
        for _ in 0..40 {
            if !out.contains(&current) {
                out.push(current.clone());
            }
            let abs = root.join(&current);
            let Ok(target) = std::fs::read_link(&abs) else {
                break;
            };
            let Some(target) = target.to_str() else { break };
            let next = if target.starts_with('/') {
                clean_path(target.trim_start_matches('/'))
            } else {
                let parent = current.rsplit_once('/').map_or("", |(d, _)| d);
                clean_path(format!("{parent}/{target}").trim_start_matches('/'))
            };
            if next.starts_with("..") || next == current {
                break;
            }
            current = next;
        }
    }
    out
}

#[cfg(test)]
mod tests;
