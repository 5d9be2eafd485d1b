//! `source.sign` and `source.verify`: the signing key of put and the public
//! keys check and get accept, decoded and validated with the rest of
//! `source`. The private key is decrypted here, so a wrong password or a
//! key of another kind fails every step at once, before a build starts.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::decode::Shape;
use super::{Error, Secret};
use crate::sign::{PrivateKey, PublicKey, Signer, Verifier};

/// `source.sign`.
pub(super) const SIGN: Shape = Shape::Object(&[
    ("private_key", Shape::Secret),
    ("password", Shape::Secret),
    ("annotations", Shape::Leaf),
]);

/// `source.verify`.
pub(super) const VERIFY: Shape = Shape::Object(&[("public_keys", Shape::Leaf)]);

/// `source.sign` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSign {
    #[serde(default)]
    private_key: Secret,
    #[serde(default)]
    password: Secret,
    #[serde(default)]
    annotations: Option<BTreeMap<String, Value>>,
}

/// `source.verify` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVerify {
    #[serde(default)]
    public_keys: Option<Value>,
}

/// Passwords shorter than this are not handed to the output scrubber: a
/// two-letter password would blank every occurrence of those letters in
/// the log, and nothing we print contains the password in the first place.
const SCRUB_MIN_PASSWORD: usize = 6;

/// `source.sign`, validated: the signer, with its key decrypted, and the
/// key text and password as given, for the output scrubber only.
#[derive(Debug, Clone)]
pub struct Signing {
    /// Signs what put pushes.
    pub signer: Signer,
    key_text: Secret,
    password: Secret,
}

impl Signing {
    /// Hands the key's text and its password to the output scrubber.
    pub(super) fn remember_secrets(&self) {
        crate::secret::remember(self.key_text.expose());
        if self.password.expose().chars().count() >= SCRUB_MIN_PASSWORD {
            crate::secret::remember(self.password.expose());
        }
    }
}

/// `source.sign`, with its key decrypted.
pub(super) fn signing(raw: Option<RawSign>) -> Result<Option<Signing>, Error> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    if raw.private_key.is_empty() {
        return Err(key_error(
            "source.sign.private_key",
            "a PEM private key is required when source.sign is set (cosign generate-key-pair writes one to cosign.key)",
        ));
    }
    let key = PrivateKey::from_pem(&raw.private_key, &raw.password)
        .map_err(|e| key_error("source.sign.private_key", e))?;
    let annotations = annotations(raw.annotations.unwrap_or_default())?;
    Ok(Some(Signing {
        signer: Signer::new(key, annotations),
        key_text: raw.private_key,
        password: raw.password,
    }))
}

/// `sign.annotations`: text values; numbers and booleans as their JSON text
/// (YAML `build: 12` arrives as a number).
fn annotations(raw: BTreeMap<String, Value>) -> Result<BTreeMap<String, String>, Error> {
    raw.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            Value::Number(_) | Value::Bool(_) => Ok((k, v.to_string())),
            other => Err(Error::Invalid {
                field: "source.sign.annotations",
                value: k,
                reason: format!(
                    "an annotation's value must be text, not {}",
                    json_type(&other)
                ),
            }),
        })
        .collect()
}

/// The verifier of `source.verify`: at least one key, each a P-256 PKIX
/// public key.
pub(super) fn verifier(raw: Option<RawVerify>) -> Result<Option<Verifier>, Error> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    const FIELD: &str = "source.verify.public_keys";
    let texts: Vec<String> = match raw.public_keys {
        None | Some(Value::Null) => Vec::new(),
        // One key given without the list around it.
        Some(Value::String(one)) => vec![one],
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s),
                other => Err(key_error(
                    &format!("{FIELD}[{i}]"),
                    format!("expected PEM text, got {}", json_type(&other)),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(key_error(
                FIELD,
                format!(
                    "expected a list of PEM public keys, got {}",
                    json_type(&other)
                ),
            ));
        }
    };
    let texts: Vec<String> = texts.into_iter().filter(|t| !t.trim().is_empty()).collect();
    if texts.is_empty() {
        return Err(key_error(
            FIELD,
            "at least one PEM public key is required when source.verify is set (cosign.pub)",
        ));
    }
    let keys = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            PublicKey::from_pem(text).map_err(|e| key_error(&format!("{FIELD}[{i}]"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Verifier::new(keys)))
}

fn key_error(field: &str, reason: impl std::fmt::Display) -> Error {
    Error::Key {
        field: field.to_owned(),
        reason: reason.to_string(),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
