//! Reading a small file a user names (a tag file, a build-args file, a
//! secret): only a regular file, opened without blocking, read up to a
//! bound. A FIFO would block `open` and `read` forever, a device or a large
//! file by mistake (`tag_file: build/app.tar`) would be read whole.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The most bytes of a build secret: what BuildKit itself accepts.
pub const SECRET_LIMIT: u64 = 500 << 10;

/// Why a small file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not a regular file; `kind` says what it is.
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular {
        /// The path.
        path: std::path::PathBuf,
        /// `a directory`, `a FIFO`, `a socket`, `a device`.
        kind: &'static str,
    },
    /// Larger than the bound.
    #[error("{} is larger than {}; expected a small text file", path.display(), human(*limit))]
    TooLarge {
        /// The path.
        path: std::path::PathBuf,
        /// The bound, in bytes.
        limit: u64,
    },
    /// Opening or reading failed.
    #[error("reading {}", path.display())]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn human(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// What a file type is, in words, for a file that is not a regular one.
pub fn kind(file_type: std::fs::FileType) -> Option<&'static str> {
    if file_type.is_file() {
        None
    } else if file_type.is_dir() {
        Some("a directory")
    } else if file_type.is_fifo() {
        Some("a FIFO")
    } else if file_type.is_socket() {
        Some("a socket")
    } else if file_type.is_block_device() || file_type.is_char_device() {
        Some("a device")
    } else {
        Some("not a file")
    }
}

/// Checks that `path` is a regular file (symlinks followed) of at most
/// `limit` bytes, without reading it: for a file read later by another part
/// (a secret the BuildKit session serves).
pub fn check(path: &Path, limit: u64) -> Result<(), Error> {
    open(path, limit).map(|_| ())
}

/// Reads `path`, a regular file (symlinks followed) of at most `limit` bytes.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let (file, len) = open(path, limit)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// Opens `path` and checks its type and size; returns it with its length.
fn open(path: &Path, limit: u64) -> Result<(std::fs::File, u64), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer. The type is checked on the open file, so a swap in between
    // cannot slip a FIFO past the check.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if let Some(kind) = kind(meta.file_type()) {
        return Err(Error::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    if meta.len() > limit {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok((file, meta.len()))
}

/// [`read`] as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> Result<String, Error> {
    String::from_utf8(read(path, limit)?).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

#[cfg(test)]
mod tests;
