//! [`Secret`]: a redacted string for passwords and keys, shared by the
//! request config and the registry client. It sits below both so that
//! `registry` need not import `config`.
//!
//! [`scrub`] is the second line of defence: whatever reaches stderr (the
//! error chain printed by [`crate::cli`], every log event, BuildKit's step
//! output) passes through it, and it removes every secret the process knows
//! ([`remember`], [`remember_basic`]: the request's passwords and keys, and
//! registry tokens as they are fetched) in every form a peer might echo: as
//! given, JSON-escaped, `base64(user:password)` (what a registry that quotes
//! the `Authorization: Basic` header prints), and any `Bearer <token>` or
//! `Basic <base64 of user:password>` at all. Messages are built not to
//! contain secrets in the first place; this catches what a remote peer
//! echoes back into them.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{LazyLock, RwLock};

/// A secret value (password, key). Its `Debug` never shows the value, so it
/// cannot leak through `{:?}` in logs or errors.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

/// Only a string is accepted; any other type is refused with its JSON type
/// but not its value (serde's own message would quote a numeric password).
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Secret;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string (a secret; its value is not shown)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(E::custom("a secret must be a string, not a boolean"))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(E::custom("a secret must be a string, not a number"))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(E::custom("a secret must be a string, not a number"))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(E::custom("a secret must be a string, not a number"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                Err(serde::de::Error::custom(
                    "a secret must be a string, not a list",
                ))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                Err(serde::de::Error::custom(
                    "a secret must be a string, not an object",
                ))
            }
        }
        // `deserialize_any`: `deserialize_string` would let serde_json build
        // its own "invalid type: integer `N`" message before we see the value.
        d.deserialize_any(Visit)
    }
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value; callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string (Go's zero value, "unset").
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `Display` is redacted too: a secret formatted into a message by mistake
/// shows as `<redacted>`.
impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What [`scrub`] replaces a secret with.
pub const REDACTED: &str = "<redacted>";

/// Every known secret form, longest first (so that no shorter form leaves
/// part of a longer one behind).
static KNOWN: RwLock<Vec<String>> = RwLock::new(Vec::new());

fn add_forms(forms: impl IntoIterator<Item = String>) {
    let mut known = KNOWN.write().unwrap_or_else(|p| p.into_inner());
    for form in forms {
        if !form.is_empty() && !known.contains(&form) {
            known.push(form);
        }
    }
    known.sort_by_key(|f| std::cmp::Reverse(f.len()));
}

/// `secret` as given and as JSON writes it inside a string (a registry
/// that echoes a request in a JSON error body escapes quotes and
/// backslashes).
fn plain_forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    if let Ok(json) = serde_json::to_string(secret) {
        forms.push(json[1..json.len() - 1].to_owned());
    }
    forms
}

/// Remembers a secret (a token, a key, a password without user name) for
/// [`scrub`]. A multi-line secret (a PEM key) is also remembered line by
/// line, for a message that quotes only part of it.
pub fn remember(secret: &str) {
    let mut forms = plain_forms(secret);
    if secret.contains('\n') {
        forms.extend(
            secret
                .lines()
                .map(str::trim)
                .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
                .map(String::from),
        );
    }
    add_forms(forms);
}

/// Remembers a password and the `base64(user:password)` of HTTP Basic
/// authentication (padded or not, standard or URL-safe alphabet) for
/// [`scrub`].
pub fn remember_basic(username: &str, password: &str) {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    if password.is_empty() {
        return;
    }
    let pair = format!("{username}:{password}");
    let mut forms = plain_forms(password);
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        forms.push(engine.encode(&pair));
    }
    add_forms(forms);
}

/// `Bearer <token>` (a token of 16 or more token characters, so that
/// `Bearer realm=...` in a challenge survives) and `Basic <base64>`.
static AUTH_VALUE: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"(?i)\b(bearer|basic)(\s+|%20|\+)([A-Za-z0-9._~+/=-]+)")
        .expect("a valid regex")
});

fn is_credential(scheme: &str, value: &str) -> bool {
    use base64::Engine as _;
    if scheme.eq_ignore_ascii_case("bearer") {
        return value.len() >= 16;
    }
    // `Basic <b64>` only when it decodes to `user:password`: "basic auth"
    // in a sentence is left alone.
    let trimmed = value.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .is_ok_and(|raw| raw.contains(&b':'))
}

/// `text` without any known secret form and without any `Bearer`/`Basic`
/// credential, each replaced by [`REDACTED`].
pub fn scrub(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    {
        let known = KNOWN.read().unwrap_or_else(|p| p.into_inner());
        for form in known.iter() {
            if out.contains(form.as_str()) {
                out = Cow::Owned(out.replace(form.as_str(), REDACTED));
            }
        }
    }
    if AUTH_VALUE.is_match(&out) {
        let replaced = AUTH_VALUE.replace_all(&out, |c: &regex::Captures<'_>| {
            if is_credential(&c[1], &c[3]) {
                format!("{}{}{REDACTED}", &c[1], &c[2])
            } else {
                c[0].to_owned()
            }
        });
        if let Cow::Owned(s) = replaced {
            out = Cow::Owned(s);
        }
    }
    out
}

/// Text as it may reach stderr: secrets scrubbed, then control characters
/// other than newline and tab escaped ([`crate::text::escape_lines`]).
pub fn for_stderr(text: &str) -> String {
    crate::text::escape_lines(&scrub(text)).into_owned()
}

/// A writer that passes whole lines through [`for_stderr`] to `inner`; a
/// last partial line is written on flush or drop. Used for every log event
/// and for BuildKit's progress, so a secret split over two writes of one
/// line is still found.
pub struct ScrubWriter<W: Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> ScrubWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        ScrubWriter {
            inner,
            pending: Vec::new(),
        }
    }

    fn emit(&mut self, upto: usize) -> std::io::Result<()> {
        let chunk: Vec<u8> = self.pending.drain(..upto).collect();
        let text = for_stderr(&String::from_utf8_lossy(&chunk));
        self.inner.write_all(text.as_bytes())
    }
}

impl<W: Write> Write for ScrubWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(last) = self.pending.iter().rposition(|b| *b == b'\n') {
            self.emit(last + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            self.emit(self.pending.len())?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for ScrubWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests;
