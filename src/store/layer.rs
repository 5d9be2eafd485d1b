//! Writing one layer of `params.layers`: a tar of a file or directory from
//! the put's inputs, placed at its destination in the image, gzipped.
//!
//! The bytes depend on the inputs only: entries in byte order of their
//! names, every owner, mode and mtime from the params (never the host's
//! user or group names, which are left empty), no access or change times,
//! and the deterministic gzip of [`crate::store::manifest::gzip_to_file`]
//! (no name, mtime 0, fixed level and block size). The tar stream is hashed
//! on its way to the compressor (its `diff_id`) and the gzip stream on its
//! way to disk (its digest), so the layer is read once.
//!
//! Only the destination and what is below it are written: no entries for
//! its parent directories, so the base's `/usr`, `/usr/share`, ... keep
//! their owners and modes (as `umoci insert` does). Symlinks are stored as
//! links, with their target as written; a hard-linked file is stored as a
//! file each time it appears; sockets, FIFOs and devices are refused.

use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::config::put::LayerSpec;
use crate::oci::Hasher;

/// A layer on disk, with what its descriptor and the config need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltLayer {
    /// The gzipped tar.
    pub path: PathBuf,
    /// sha256 of the gzipped bytes.
    pub digest: String,
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    /// Size of the gzipped bytes.
    pub size: u64,
}

/// Why a layer could not be written, with the path involved.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// Reading the input.
    #[error("reading {}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An input that cannot go into a layer.
    #[error("{}: {problem}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What it is.
        problem: &'static str,
    },
    /// Adding an input file to the tar stream.
    #[error("adding {} to the layer", path.display())]
    Add {
        /// The input file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Writing the tar or the gzip file.
    #[error("writing the layer to {}", path.display())]
    Write {
        /// The layer file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Writes the layer for `spec` to `out` (blocking).
pub fn write_layer(spec: &LayerSpec, out: &Path) -> Result<BuiltLayer, LayerError> {
    let write_error = |source| LayerError::Write {
        path: out.to_path_buf(),
        source,
    };
    let (tx, rx) = sync_channel::<Vec<u8>>(8);
    std::thread::scope(|scope| {
        let gzip =
            scope.spawn(|| crate::store::manifest::gzip_to_file(ChannelReader::new(rx), out));
        let sink = HashingWriter {
            inner: ChannelWriter::new(tx),
            hasher: Hasher::default(),
        };
        let mut builder = tar::Builder::new(sink);
        let walked = walk(spec, &mut builder);
        // Close the channel whatever happened, so the compressor ends.
        let finished = walked.and_then(|()| {
            builder.finish().map_err(write_error)?;
            let mut sink = builder.into_inner().map_err(write_error)?;
            sink.inner.flush().map_err(write_error)?;
            Ok(sink.hasher.finish().into_string())
        });
        let gzipped = gzip
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the gzip thread panicked")));
        // A failed compressor (a full disk under `out`) is the cause: the tar
        // side then only saw the pipe close.
        let (digest, size) = gzipped.map_err(write_error)?;
        let diff_id = finished?;
        Ok(BuiltLayer {
            path: out.to_path_buf(),
            digest,
            diff_id,
            size,
        })
    })
}

/// Appends `spec.src` at `spec.dest`, then (for a directory) everything
/// below it, depth first, each directory's entries in byte order.
fn walk<W: Write>(spec: &LayerSpec, builder: &mut tar::Builder<W>) -> Result<(), LayerError> {
    let meta = metadata(&spec.src)?;
    if meta.is_dir() {
        if !spec.dest.is_empty() {
            append(spec, builder, &spec.src, &meta, &spec.dest)?;
        }
        walk_dir(spec, builder, &spec.src, &spec.dest)
    } else {
        append(spec, builder, &spec.src, &meta, &spec.dest)
    }
}

fn walk_dir<W: Write>(
    spec: &LayerSpec,
    builder: &mut tar::Builder<W>,
    dir: &Path,
    name: &str,
) -> Result<(), LayerError> {
    let read = |source| LayerError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut children: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
        .map_err(read)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(read)?;
    // Byte order of the names, whatever the directory's own order.
    children.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    for child in children {
        let path = dir.join(&child);
        let Some(child) = child.to_str() else {
            return Err(LayerError::Unsupported {
                path,
                problem: "the name is not UTF-8",
            });
        };
        let child_name = if name.is_empty() {
            child.to_string()
        } else {
            format!("{name}/{child}")
        };
        let meta = metadata(&path)?;
        append(spec, builder, &path, &meta, &child_name)?;
        if meta.is_dir() {
            walk_dir(spec, builder, &path, &child_name)?;
        }
    }
    Ok(())
}

fn metadata(path: &Path) -> Result<Metadata, LayerError> {
    std::fs::symlink_metadata(path).map_err(|source| LayerError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// One tar entry for `path`, named `name` (relative to the image root).
fn append<W: Write>(
    spec: &LayerSpec,
    builder: &mut tar::Builder<W>,
    path: &Path,
    meta: &Metadata,
    name: &str,
) -> Result<(), LayerError> {
    let mut header = tar::Header::new_gnu();
    header.set_uid(spec.uid);
    header.set_gid(spec.gid);
    header.set_mtime(spec.mtime);
    let bits = meta.permissions().mode() & 0o7777;
    let write_error = |source| LayerError::Add {
        path: path.to_path_buf(),
        source,
    };
    let kind = meta.file_type();
    if kind.is_dir() {
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(spec.dir_mode.unwrap_or(bits));
        header.set_size(0);
        builder
            .append_data(&mut header, format!("{name}/"), io::empty())
            .map_err(write_error)
    } else if kind.is_symlink() {
        let target = std::fs::read_link(path).map_err(|source| LayerError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        builder
            .append_link(&mut header, name, target)
            .map_err(write_error)
    } else if kind.is_file() {
        let size = meta.size();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(spec.mode.unwrap_or(bits));
        header.set_size(size);
        let file = File::open(path).map_err(|source| LayerError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // A file that changes size while it is read would corrupt the
        // archive (the header promised `size` bytes): refuse it instead.
        let mut counted = Exact {
            inner: file.take(size),
            left: size,
        };
        builder
            .append_data(&mut header, name, &mut counted)
            .map_err(write_error)?;
        if counted.left != 0 {
            return Err(LayerError::Unsupported {
                path: path.to_path_buf(),
                problem: "the file shrank while it was read",
            });
        }
        Ok(())
    } else {
        Err(LayerError::Unsupported {
            path: path.to_path_buf(),
            problem: "not a file, directory or symlink (sockets, FIFOs and devices cannot go into a layer)",
        })
    }
}

/// Reads at most `left` bytes and counts them down.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left -= n as u64;
        Ok(n)
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Chunk size handed from the tar writer to the compressor.
const CHUNK: usize = 256 * 1024;

/// The tar side of the pipe to the compressor thread.
struct ChannelWriter {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn new(tx: SyncSender<Vec<u8>>) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the compressor stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The compressor side: reads chunks until the writer is dropped.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl ChannelReader {
    fn new(rx: Receiver<Vec<u8>>) -> Self {
        ChannelReader {
            rx,
            current: Vec::new(),
            at: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
