//! [`Digest`]: a `sha256:<hex>` string checked once, when it is parsed.
//!
//! A newtype rather than `oci_spec::image::Digest`: that one also accepts
//! sha512 and unregistered algorithms, while everything here hashes with
//! sha256 only and uses the hex as a file name in blob directories, so only
//! `sha256:` plus 64 lower-case hex digits is accepted (never a `/` or `..`).

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use super::VerifyError;

/// A string that is not `sha256:<64 lower-case hex>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {0:?}: expected sha256:<64 lower-case hex characters>")]
pub struct DigestError(pub String);

/// A validated `sha256:<64 lower-case hex>` digest.
///
/// It dereferences to the `str` it was parsed from, so it goes into URLs,
/// JSON and messages unchanged.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `text`, which must be `sha256:` plus 64 lower-case hex digits.
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let valid = text.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if valid {
            Ok(Digest(text.to_owned()))
        } else {
            Err(DigestError(text.to_owned()))
        }
    }

    /// Whether `text` would parse.
    pub fn is_valid(text: &str) -> bool {
        Digest::parse(text).is_ok()
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64-character hex part, safe as a file name.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> Digest {
    Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
}

impl Deref for Digest {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Digest, DigestError> {
        Digest::parse(&s)
    }
}

impl TryFrom<&str> for Digest {
    type Error = DigestError;
    fn try_from(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Digest {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<Digest> for String {
    fn eq(&self, other: &Digest) -> bool {
        *self == other.0
    }
}

impl PartialEq<Digest> for &str {
    fn eq(&self, other: &Digest) -> bool {
        *self == other.0
    }
}

impl PartialEq<Digest> for str {
    fn eq(&self, other: &Digest) -> bool {
        self == other.0
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Running sha256 and byte count over a stream.
#[derive(Default, Clone)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no bytes were seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `sha256:<hex>` of everything seen.
    pub fn finish(self) -> Digest {
        Digest(format!("sha256:{}", hex::encode(self.sha.finalize())))
    }

    /// Compares what was seen with the expected digest and size; `what`
    /// names the content in the error.
    pub fn verify(self, what: &str, digest: &str, size: u64) -> Result<(), VerifyError> {
        if self.len < size {
            return Err(VerifyError::Truncated {
                what: what.to_owned(),
                expected: size,
                actual: self.len,
            });
        }
        if self.len > size {
            return Err(VerifyError::SizeMismatch {
                what: what.to_owned(),
                expected: size,
                actual: self.len,
            });
        }
        let actual = self.finish();
        if actual != digest {
            return Err(VerifyError::DigestMismatch {
                what: what.to_owned(),
                expected: digest.to_owned(),
                actual: actual.into_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
