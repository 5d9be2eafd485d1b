//! JSON decoding with Go `encoding/json` semantics, as registry-image applies
//! them: object keys match struct fields case-insensitively (an exact match
//! wins), explicit `null` means "unset", and unknown keys are rejected. We add
//! what Go lacks: the error names the whole path of the unknown key and, when
//! a known field is close (Jaro-Winkler via `strsim`), the field the user
//! probably meant (docker-image migrants write `insecure_registries`).
//!
//! Every accepted key set is described by a [`Shape`]; [`canonicalize`]
//! rewrites a `serde_json::Value` into canonical key spelling, after which
//! plain serde structs (with `deny_unknown_fields` as a second guard) decode it.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The accepted keys of a JSON value, recursively.
#[derive(Debug)]
pub enum Shape {
    /// Any value; not inspected further.
    Leaf,
    /// A secret (password, key): must be a string, and a value of another
    /// type is reported by its path and JSON type only, never echoed.
    Secret,
    /// An object with these fields (canonical spelling, shape of the value).
    Object(&'static [(&'static str, Shape)]),
    /// An array whose elements have this shape (non-arrays are left alone
    /// for serde to reject).
    List(&'static Shape),
    /// Either a scalar or an object of this shape (e.g. `ca_certs` entries,
    /// which are PEM strings or docker-image's `{domain, cert}`).
    ScalarOr(&'static Shape),
}

/// A payload that does not decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not JSON at all.
    #[error("request is not valid JSON")]
    Syntax(#[source] serde_json::Error),
    /// A key no field matches.
    #[error("json: unknown field {field:?} in {path}{}", suggestion_text(.suggestion))]
    UnknownField {
        /// The key as given.
        field: String,
        /// Where it was found, e.g. `source` or `source.registry_mirror`.
        path: String,
        /// The known field that is closest, if close enough.
        suggestion: Option<&'static str>,
    },
    /// A value of the wrong type or shape.
    #[error("{path}: {message}")]
    Type {
        /// Where, e.g. `source`.
        path: String,
        /// serde's description of the mismatch.
        message: String,
    },
    /// A required top-level key is missing.
    #[error("missing field {0:?}")]
    Missing(&'static str),
}

fn suggestion_text(suggestion: &Option<&'static str>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s:?}?)"),
        None => String::new(),
    }
}

/// Parses `bytes` as JSON.
pub fn parse(bytes: &[u8]) -> Result<Value, DecodeError> {
    serde_json::from_slice(bytes).map_err(DecodeError::Syntax)
}

/// Parses `bytes` as JSON like [`parse`], except that a number at one of
/// `paths` (keys matched as [`canonicalize`] matches them) becomes a string
/// holding its literal text, as Go's `json.Number` keeps it: registry-image
/// reads `"tag": 42.10` as tag `42.10`, where a parsed number would print
/// as `42.1`.
pub fn parse_keeping_number_text(bytes: &[u8], paths: &[&[&str]]) -> Result<Value, DecodeError> {
    let mut value = parse(bytes)?;
    for path in paths {
        if let Some(text) = number_text(bytes, path)
            && let Some(slot) = member_mut(&mut value, path)
            && slot.is_number()
        {
            *slot = Value::String(text);
        }
    }
    Ok(value)
}

/// The object members of a JSON text, raw, in document order.
struct RawMembers<'a>(Vec<(String, &'a serde_json::value::RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawMembers<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(RawMembers(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// The key [`canonicalize`] takes for field `name` among `keys` (document
/// order, `null` members already left out): the exact spelling, else the
/// first case-insensitive match.
fn pick_key<'k>(keys: impl Iterator<Item = &'k str> + Clone, name: &str) -> Option<&'k str> {
    keys.clone()
        .find(|k| *k == name)
        .or_else(|| keys.into_iter().find(|k| k.eq_ignore_ascii_case(name)))
}

/// The literal text of the number at `path` in the JSON text `bytes`.
fn number_text(bytes: &[u8], path: &[&str]) -> Option<String> {
    let (first, rest) = path.split_first()?;
    let members: RawMembers<'_> = serde_json::from_slice(bytes).ok()?;
    // Duplicate keys: the last one counts, as in `serde_json::Map`.
    let present = members.0.iter().filter(|(_, v)| v.get() != "null");
    let key = pick_key(present.clone().map(|(k, _)| k.as_str()), first)?;
    let raw = present.rev().find(|(k, _)| k == key)?.1.get();
    if rest.is_empty() {
        let is_number = raw.starts_with(|c: char| c == '-' || c.is_ascii_digit());
        return is_number.then(|| raw.to_owned());
    }
    number_text(raw.as_bytes(), rest)
}

/// The member of `value` at `path`, keys matched as [`number_text`] does.
fn member_mut<'v>(value: &'v mut Value, path: &[&str]) -> Option<&'v mut Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(value);
    };
    let map = value.as_object_mut()?;
    let key = pick_key(
        map.iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k.as_str()),
        first,
    )?
    .to_owned();
    member_mut(map.get_mut(&key)?, rest)
}

/// Rewrites `value` to canonical key spelling per `shape`, dropping `null`
/// members (Go leaves the field at its zero value). `path` names `value` in
/// error messages.
pub fn canonicalize(value: Value, shape: &Shape, path: &str) -> Result<Value, DecodeError> {
    match (shape, value) {
        (Shape::Object(fields), Value::Object(map)) => {
            let mut out = Map::new();
            // Exact matches are placed first so that, as in Go, `{"tag":..}`
            // wins over a case-folded `{"Tag":..}` given in the same object.
            let (exact, folded): (Vec<_>, Vec<_>) = map
                .into_iter()
                .partition(|(k, _)| fields.iter().any(|(name, _)| name == k));
            for (key, member) in exact.into_iter().chain(folded) {
                if member.is_null() {
                    continue;
                }
                let Some((name, member_shape)) =
                    fields.iter().find(|(name, _)| *name == key).or_else(|| {
                        fields
                            .iter()
                            .find(|(name, _)| name.eq_ignore_ascii_case(&key))
                    })
                else {
                    return Err(DecodeError::UnknownField {
                        suggestion: suggest(&key, fields.iter().map(|(n, _)| *n)),
                        field: key,
                        path: path.to_owned(),
                    });
                };
                if out.contains_key(*name) {
                    // Go decodes both and the later one wins; keep the first
                    // (exact) spelling instead of silently mixing.
                    continue;
                }
                let child = canonicalize(member, member_shape, &format!("{path}.{name}"))?;
                out.insert((*name).to_owned(), child);
            }
            Ok(Value::Object(out))
        }
        (Shape::List(inner), Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| canonicalize(item, inner, &format!("{path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        (Shape::ScalarOr(inner), value @ Value::Object(_)) => canonicalize(value, inner, path),
        (Shape::Secret, value @ Value::String(_)) => Ok(value),
        (Shape::Secret, value) => Err(DecodeError::Type {
            path: path.to_owned(),
            message: format!(
                "expected a string, got {} (value not shown: it is a secret)",
                json_kind(&value)
            ),
        }),
        (_, value) => Ok(value),
    }
}

/// The JSON type of `value`, for messages that must not show the value.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Decodes an already canonical `value` into `T`, naming `path` on failure.
pub fn from_value<T: DeserializeOwned>(value: Value, path: &str) -> Result<T, DecodeError> {
    serde_json::from_value(value).map_err(|e| DecodeError::Type {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The known name closest to `key`, if it is close enough to be a likely
/// typo or a docker-image/oci-build-task spelling. The crate's one
/// "did you mean": source and get fields here, put params in `config::put`.
///
/// Names are compared case-insensitively (Jaro-Winkler, at least 0.8); when
/// two names score the same that way (put accepts both `context` and
/// `CONTEXT`), the one whose case is nearer the key wins.
pub fn suggest<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = key.to_ascii_lowercase();
    known
        .into_iter()
        .map(|name| {
            let name_lower = name.to_ascii_lowercase();
            let mut score = strsim::jaro_winkler(&lower, &name_lower);
            // `insecure_registries` → `insecure`: a known name that is a
            // whole prefix of the key is a strong hint even when long.
            if lower.starts_with(&name_lower) && name.len() >= 4 {
                score = score.max(0.9);
            }
            (name, score, strsim::jaro_winkler(key, name))
        })
        .filter(|(_, score, _)| *score >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1).then(a.2.total_cmp(&b.2)))
        .map(|(name, _, _)| name)
}

#[cfg(test)]
mod tests;
