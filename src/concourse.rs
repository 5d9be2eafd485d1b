//! Concourse protocol types: the requests the three steps read on stdin and
//! the responses they print on stdout (registry-image `types.go`).
//!
//! Top-level keys are matched case-insensitively and `null` means unset, as
//! Go's `encoding/json` does; unknown keys are rejected (see
//! [`crate::config::decode`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::decode::{self, DecodeError, Shape};
use crate::config::{self, GetParams, Source};

/// A version of the resource: one tag at one digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Tag name (may be empty in a request).
    #[serde(default)]
    pub tag: String,
    /// `sha256:<hex>` of the manifest or index.
    #[serde(default)]
    pub digest: String,
}

/// One `{name, value}` metadata entry shown in the Concourse UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataField {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

impl MetadataField {
    /// Builds an entry.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        MetadataField {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// `check`'s request.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    /// `source`.
    pub source: Source,
    /// The latest version Concourse knows, if any.
    pub version: Option<Version>,
}

/// `in`'s request.
#[derive(Debug, Clone)]
pub struct InRequest {
    /// `source`.
    pub source: Source,
    /// `params`.
    pub params: GetParams,
    /// The version to fetch.
    pub version: Version,
}

/// `out`'s request; `params` is decoded by `put` itself.
#[derive(Debug, Clone)]
pub struct OutRequest {
    /// `source`.
    pub source: Source,
    /// `params`, canonical key case not applied (put keeps e.g. `BUILD_ARG_Foo`).
    pub params: Value,
}

/// `in`'s response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InResponse {
    /// The version fetched (echoed).
    pub version: Version,
    /// Metadata entries.
    pub metadata: Vec<MetadataField>,
}

/// `out`'s response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutResponse {
    /// The version pushed.
    pub version: Version,
    /// Metadata entries.
    pub metadata: Vec<MetadataField>,
}

const VERSION: Shape = Shape::Object(&[("tag", Shape::Leaf), ("digest", Shape::Leaf)]);
// Nested objects are canonicalised by their own decoders (source, params),
// so only the top level is described here.
const CHECK: Shape = Shape::Object(&[("source", Shape::Leaf), ("version", VERSION)]);
const IN: Shape = Shape::Object(&[
    ("source", Shape::Leaf),
    ("params", Shape::Leaf),
    ("version", VERSION),
]);
const OUT: Shape = Shape::Object(&[("source", Shape::Leaf), ("params", Shape::Leaf)]);

fn top_level(bytes: &[u8], shape: &Shape) -> Result<Map<String, Value>, config::Error> {
    // `source.tag` keeps a number's literal text (registry-image's Tag is a
    // json.Number): `42.10` stays `42.10`.
    let value = decode::parse_keeping_number_text(bytes, &[&["source", "tag"]])?;
    match decode::canonicalize(value, shape, "request")? {
        Value::Object(map) => Ok(map),
        other => Err(DecodeError::Type {
            path: "request".into(),
            message: format!("expected a JSON object, got {}", kind(&other)),
        }
        .into()),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn source(map: &mut Map<String, Value>) -> Result<Source, config::Error> {
    let value = map.remove("source").ok_or(DecodeError::Missing("source"))?;
    Source::from_value(value)
}

fn version(value: Option<Value>) -> Result<Option<Version>, config::Error> {
    value
        .map(|v| decode::from_value(v, "version"))
        .transpose()
        .map_err(Into::into)
}

impl CheckRequest {
    /// Decodes and validates a check request.
    pub fn from_json(bytes: &[u8]) -> Result<CheckRequest, config::Error> {
        let mut map = top_level(bytes, &CHECK)?;
        Ok(CheckRequest {
            source: source(&mut map)?,
            version: version(map.remove("version"))?,
        })
    }
}

impl InRequest {
    /// Decodes and validates an in request.
    pub fn from_json(bytes: &[u8]) -> Result<InRequest, config::Error> {
        let mut map = top_level(bytes, &IN)?;
        Ok(InRequest {
            source: source(&mut map)?,
            params: GetParams::from_value(map.remove("params"))?,
            version: version(map.remove("version"))?.ok_or(DecodeError::Missing("version"))?,
        })
    }
}

impl OutRequest {
    /// Decodes and validates an out request (params left raw).
    pub fn from_json(bytes: &[u8]) -> Result<OutRequest, config::Error> {
        let mut map = top_level(bytes, &OUT)?;
        Ok(OutRequest {
            source: source(&mut map)?,
            params: map.remove("params").unwrap_or(Value::Object(Map::new())),
        })
    }
}

#[cfg(test)]
mod tests;
