//! Small text formats that `put` params point at, and the Concourse metadata
//! expansion applied to build args and labels.
//!
//! Build-arg and label files come from three tools with three formats:
//! oci-build-task reads `k=v` lines (or YAML when the name ends in `.yml` /
//! `.yaml`), docker-image reads a JSON object. All three are accepted here,
//! chosen by extension, then by whether the text looks like a JSON object.
//!
//! YAML is read with `serde_norway`, the maintained fork of the deprecated
//! `serde_yaml`: same API and the same scalar model (a number keeps
//! `serde_yaml`'s text, `1.5` → `1.5`, `3` → `3`), so files read as they did,
//! and its libyaml port (`unsafe-libyaml-norway`) is maintained too.
//! `serde_yaml_ng` still depends on the unmaintained `unsafe-libyaml`;
//! `serde-saphyr` (pure Rust) deserializes into typed structs; reading
//! mixed scalars would take our own visitor, and their text could change
//! (`1.0`, `1e3`).

use std::path::Path;

/// Why a key/value file could not be read as such.
#[derive(Debug, PartialEq, Eq)]
pub struct FileProblem {
    /// 1-based line, when the problem is on one line.
    pub line: Option<usize>,
    /// What is wrong, lower-case.
    pub problem: String,
}

/// Parses a build-args or labels file into ordered `(key, value)` pairs.
///
/// `.yml`/`.yaml`/`.json` names, or text starting with `{`, are read as a
/// YAML mapping (JSON is YAML); scalar values are kept as their text.
/// Anything else is `k=v` lines: empty lines and `#` comments are skipped,
/// a trailing `\r` is dropped, the value is everything after the first `=`
/// (not trimmed, as oci-build-task does).
pub fn parse_key_values(path: &Path, text: &str) -> Result<Vec<(String, String)>, FileProblem> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let structured = matches!(ext.as_deref(), Some("yml" | "yaml" | "json"))
        || text.trim_start().starts_with('{');
    if structured {
        parse_mapping(text)
    } else {
        parse_lines(text)
    }
}

/// At most this many characters of a file are quoted in an error.
const EXCERPT_CHARS: usize = 24;

/// A short, quoted, escaped excerpt of text read from a file, for errors:
/// a param may point at a file the user did not mean to publish, so a
/// message never quotes more than its first few characters.
pub fn excerpt(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    let more = if chars.next().is_some() { "…" } else { "" };
    format!("\"{}\"{more}", head.escape_debug())
}

fn parse_mapping(text: &str) -> Result<Vec<(String, String)>, FileProblem> {
    let value: serde_norway::Value = serde_norway::from_str(text).map_err(|e| FileProblem {
        line: e.location().map(|l| l.line()),
        problem: format!("not valid YAML/JSON: {e}"),
    })?;
    let map = match value {
        serde_norway::Value::Mapping(map) => map,
        serde_norway::Value::Null => return Ok(Vec::new()),
        _ => {
            return Err(FileProblem {
                line: None,
                problem: "expected a mapping of names to values".into(),
            });
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let key = yaml_scalar(&k).ok_or_else(|| FileProblem {
            line: None,
            problem: "a key is not a string".into(),
        })?;
        let value = yaml_scalar(&v).ok_or_else(|| FileProblem {
            line: None,
            problem: format!(
                "the value of {} is not a string, number or boolean",
                excerpt(&key)
            ),
        })?;
        out.push((key, value));
    }
    Ok(out)
}

fn yaml_scalar(v: &serde_norway::Value) -> Option<String> {
    match v {
        serde_norway::Value::String(s) => Some(s.clone()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        serde_norway::Value::Bool(b) => Some(b.to_string()),
        serde_norway::Value::Null => Some(String::new()),
        _ => None,
    }
}

fn parse_lines(text: &str) -> Result<Vec<(String, String)>, FileProblem> {
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(FileProblem {
                line: Some(i + 1),
                problem: "expected NAME=VALUE".into(),
            });
        };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(FileProblem {
                line: Some(i + 1),
                problem: format!("invalid name {}", excerpt(key)),
            });
        }
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

/// The Concourse build metadata variables that docker-image expanded in build
/// args and labels (and nothing else: `$HOME` stays literal).
pub const METADATA_VARS: [&str; 6] = [
    "BUILD_ID",
    "BUILD_NAME",
    "BUILD_JOB_NAME",
    "BUILD_PIPELINE_NAME",
    "BUILD_TEAM_NAME",
    "ATC_EXTERNAL_URL",
];

/// Replaces `$NAME` and `${NAME}` for the [`METADATA_VARS`] with their values
/// from `lookup` (unset → empty, as the shell does). A longer identifier such
/// as `$BUILD_IDX` is not one of them and is left as written.
pub fn expand_metadata(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    if !text.contains('$') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let (name, consumed) = if bytes.get(i + 1) == Some(&b'{') {
                match text[i + 2..].find('}') {
                    Some(end) => (&text[i + 2..i + 2 + end], end + 3),
                    None => ("", 0),
                }
            } else {
                let len = text[i + 1..]
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count();
                (&text[i + 1..i + 1 + len], len + 1)
            };
            if consumed > 0 && METADATA_VARS.contains(&name) {
                out.push_str(&lookup(name).unwrap_or_default());
                i += consumed;
                continue;
            }
        }
        // Copy one whole UTF-8 character.
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    out
}

#[cfg(test)]
mod tests;
