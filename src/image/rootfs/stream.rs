//! The layer stream below the tar reader: [`Tap`] notes whether the stream
//! itself failed, and [`UnpaddedEnd`] supplies the end blocks of a tar
//! stream that stops right after its last entry's data, as Go's archive/tar
//! reads it.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// Notes whether the layer stream itself failed (as opposed to the
/// decompressor or tar parser above it).
pub(super) struct Tap<R> {
    pub(super) inner: R,
    pub(super) failed: Rc<Cell<bool>>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed.set(true);
            }
        })
    }
}

/// Supplies the end of a tar stream that stops right after its last entry's
/// data, without the padding to a 512-byte block and the two zero blocks
/// that should follow (umoci 0.4.7 `insert` writes such layers).
///
/// Go's archive/tar, which ggcr (so registry-image), dockerd and umoci use,
/// reads a clean EOF exactly where the padding should start as the end of
/// the archive; `tar` calls it "unexpected EOF during skip". We accept the
/// same streams and nothing more: the padding and end blocks are supplied
/// only when the underlying stream ended cleanly (`Ok(0)`, not an error)
/// exactly at [`UnpaddedEnd::data_end`], the end of the current entry's
/// data. A stream cut inside an entry's data or inside its padding still
/// fails. The blob's digest is verified by the source independently, so
/// this only decides how a complete blob is read.
pub(super) struct UnpaddedEnd<R> {
    pub(super) inner: R,
    /// Bytes handed to the tar reader so far (its stream position).
    pos: u64,
    /// Where the data of the entry being read ends; set by the unpacker for
    /// each entry, `None` when unknown.
    data_end: Rc<Cell<Option<u64>>>,
    /// Zero bytes still to supply once the end was accepted.
    supplied: Option<u64>,
}

impl<R> UnpaddedEnd<R> {
    pub(super) fn new(inner: R, data_end: Rc<Cell<Option<u64>>>) -> Self {
        UnpaddedEnd {
            inner,
            pos: 0,
            data_end,
            supplied: None,
        }
    }
}

impl<R: Read> Read for UnpaddedEnd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.supplied.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.pos += n as u64;
                return Ok(n);
            }
            let partial = self.pos % BLOCK;
            if partial == 0 || self.data_end.get() != Some(self.pos) {
                // A clean end on a block boundary is `tar`'s to judge; one
                // anywhere else is a truncated entry.
                return Ok(0);
            }
            tracing::debug!(
                "layer stream ends without tar padding after {} bytes; treating it as the end of the archive",
                self.pos
            );
            self.supplied = Some(BLOCK - partial + 2 * BLOCK);
        }
        let left = self.supplied.unwrap_or(0);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        buf[..n].fill(0);
        self.supplied = Some(left - n as u64);
        self.pos += n as u64;
        Ok(n)
    }
}

/// The tar block size.
pub(super) const BLOCK: u64 = 512;
