//! Layer compression, recognised by magic bytes rather than by media type.
//!
//! Registries and builders mislabel layers (zstd layers under the docker
//! gzip media type broke registry-image: registry-image#390 and
//! registry-image#405), so the first bytes decide: `1f 8b` is gzip,
//! `28 b5 2f fd` is zstd, anything else is a plain tar.

use std::io::{self, BufRead, BufReader, Chain, Cursor, Read};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `1f 8b`
    Gzip,
    /// `28 b5 2f fd`
    Zstd,
    /// An uncompressed tar.
    None,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// Recognises the compression from (at least) the first four bytes.
    pub fn sniff(prefix: &[u8]) -> Compression {
        if prefix.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if prefix.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The file suffix `docker save` uses for a layer so compressed.
    pub fn tar_suffix(self) -> &'static str {
        match self {
            Compression::Gzip => ".tar.gz",
            Compression::Zstd => ".tar.zst",
            Compression::None => ".tar",
        }
    }
}

type Raw<R> = BufReader<Chain<Cursor<Vec<u8>>, R>>;

enum Kind<R: Read> {
    // Boxed: zlib-rs keeps its inflate state inline (346 bytes).
    Gzip(Box<flate2::bufread::MultiGzDecoder<Raw<R>>>),
    Zstd(zstd::stream::read::Decoder<'static, Raw<R>>),
    Plain(Raw<R>),
}

/// A decompressing reader over a layer blob.
///
/// Call [`Decoder::finish`] after the consumer is done: it reads both the
/// decompressed and the raw stream to their ends, so that a digest check at
/// the end of the raw stream and the gzip CRC check really happen.
pub struct Decoder<R: Read> {
    kind: Kind<R>,
    compression: Compression,
}

/// Reads the magic bytes of `reader` and returns a decoder for the rest.
pub fn decompress<R: Read>(mut reader: R) -> io::Result<Decoder<R>> {
    let mut prefix = Vec::with_capacity(4);
    // A network stream may hand out fewer than four bytes per read.
    while prefix.len() < 4 {
        let mut byte = [0u8; 4];
        let want = 4 - prefix.len();
        match reader.read(&mut byte[..want]) {
            Ok(0) => break,
            Ok(n) => prefix.extend_from_slice(&byte[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let compression = Compression::sniff(&prefix);
    let raw = BufReader::with_capacity(128 * 1024, Cursor::new(prefix).chain(reader));
    let kind = match compression {
        Compression::Gzip => Kind::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(raw))),
        Compression::Zstd => Kind::Zstd(zstd::stream::read::Decoder::with_buffer(raw)?),
        Compression::None => Kind::Plain(raw),
    };
    Ok(Decoder { kind, compression })
}

impl<R: Read> Decoder<R> {
    /// The compression that was recognised.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Drains the decompressed stream, then the raw stream, to their ends.
    pub fn finish(mut self) -> io::Result<()> {
        io::copy(&mut self, &mut io::sink())?;
        // Whatever follows the compressed stream (tar padding, nothing)
        // still belongs to the blob and must reach the digest check.
        self.drain_raw()
    }

    /// Reads the raw (compressed) stream to its end, ignoring whatever the
    /// decompressor would make of it: after a decoding error, this lets a
    /// verifying source report a digest mismatch.
    pub fn drain_raw(self) -> io::Result<()> {
        let mut raw = match self.kind {
            Kind::Gzip(d) => d.into_inner(),
            Kind::Zstd(d) => d.finish(),
            Kind::Plain(r) => r,
        };
        loop {
            let n = raw.fill_buf()?.len();
            if n == 0 {
                return Ok(());
            }
            raw.consume(n);
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.kind {
            Kind::Gzip(d) => d.read(buf),
            Kind::Zstd(d) => d.read(buf),
            Kind::Plain(r) => r.read(buf),
        }
    }
}

#[cfg(test)]
mod tests;
