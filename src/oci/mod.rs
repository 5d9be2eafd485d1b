//! OCI primitives that every layer shares: the [`Digest`] type and sha256
//! hashing, the media-type constants, telling attestations from images,
//! one verifying reader and the error-chain text.
//!
//! This module imports nothing from the rest of the crate, so `registry`,
//! `image`, `put` and `buildkit` all use it without reaching up.

pub mod attestation;
mod digest;
pub mod media_types;
mod verify;

pub use digest::{Digest, DigestError, Hasher, sha256_digest};
pub use verify::{VerifyError, VerifyingReader, verify_bytes};

/// `err` and all its sources, joined by `: `. A source whose text the
/// previous message already ends with (transparent wrappers repeat their
/// source's text) is skipped.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        if !text.is_empty() && !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests;
