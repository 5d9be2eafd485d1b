//! The value accessors of the put decoder: how one param's JSON value is
//! read (a scalar as text, a flag, a list, a map, a path under the source
//! dir, a small file), and how a setting's spellings from the
//! [`params`](super::params) table are resolved to the one that is set.
//! `""` and `null` mean "unset" throughout, as copied YAML often says
//! `PARAM: ""` to switch something off.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::Env;
use super::errors::{ParamsError, Result, type_error};
use super::files::{self, FileProblem};
use super::params::{self, Param};

/// The most bytes of a small text file param (`tag_file`, `build_args_file`,
/// `labels_file`, `target_file`, `additional_tags`, a get directory's
/// `repository`/`tag`/`digest`).
pub(super) const SMALL_FILE_LIMIT: u64 = 1 << 20;

pub(super) use crate::small_file::SECRET_LIMIT as SECRET_FILE_LIMIT;

/// [`crate::small_file::read_text`] with the param named in its errors.
pub(super) fn read_small(param: &str, path: &Path, limit: u64) -> Result<String> {
    crate::small_file::read_text(path, limit).map_err(|e| small_file_error(param, e))
}

/// [`crate::small_file::check`] with the param named in its errors.
pub(super) fn check_small(param: &str, path: &Path, limit: u64) -> Result<()> {
    crate::small_file::check(path, limit).map_err(|e| small_file_error(param, e))
}

fn small_file_error(param: &str, e: crate::small_file::Error) -> ParamsError {
    match e {
        crate::small_file::Error::Io { path, source } => ParamsError::Read {
            param: param.into(),
            path,
            source,
        },
        source => ParamsError::NotSmallFile {
            param: param.into(),
            source,
        },
    }
}

/// The decoder's state: the params left to read, and notes for the log.
pub(super) struct Decoder<'a> {
    pub map: Map<String, Value>,
    pub env: &'a Env<'a>,
    pub notes: Vec<String>,
}

impl Decoder<'_> {
    /// Every key is a known spelling (or a family member); rejected ones
    /// are refused when set.
    pub fn check_names(&self) -> Result<()> {
        for name in self.map.keys() {
            params::check_name(name, self.is_set(name))?;
        }
        Ok(())
    }

    /// Present and not null/empty-string.
    pub fn is_set(&self, name: &str) -> bool {
        match self.map.get(name) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        }
    }

    /// The one set spelling of `param`, or a conflict naming two.
    pub fn one_of(&self, param: &Param) -> Result<Option<&'static str>> {
        let mut found: Option<&'static str> = None;
        for name in param.fixed() {
            if self.is_set(name) {
                if let Some(first) = found {
                    return Err(ParamsError::Conflict {
                        first: first.to_string(),
                        second: name.to_string(),
                        what: param.what.to_string(),
                    });
                }
                found = Some(name);
            }
        }
        Ok(found)
    }

    /// A scalar as text; `""` and null are unset.
    pub fn text(&self, name: &str) -> Result<Option<String>> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match scalar_text(v) {
                Some(s) if s.is_empty() => Ok(None),
                Some(s) => Ok(Some(s)),
                None => Err(type_error(name, "a string", v)),
            },
        }
    }

    /// The text of the one set spelling of `param`, with that spelling.
    pub fn first_text(&self, param: &Param) -> Result<Option<(String, String)>> {
        match self.one_of(param)? {
            Some(name) => Ok(self.text(name)?.map(|t| (name.to_string(), t))),
            None => Ok(None),
        }
    }

    pub fn flag(&self, name: &str) -> Result<bool> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "" | "false" | "0" | "no" => Ok(false),
                "true" | "1" | "yes" => Ok(true),
                _ => Err(ParamsError::Invalid {
                    param: name.into(),
                    problem: format!("{s:?} is not a boolean"),
                }),
            },
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(false),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(true),
            Some(v) => Err(type_error(name, "a boolean", v)),
        }
    }

    /// A string→scalar map param, as ordered pairs.
    pub fn string_map(&self, name: &str) -> Result<Vec<(String, String)>> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match scalar_text(v) {
                    Some(s) => Ok((k.clone(), s)),
                    None if v.is_null() => Ok((k.clone(), String::new())),
                    None => Err(type_error(&format!("{name}.{k}"), "a string", v)),
                })
                .collect(),
            Some(v) => Err(type_error(name, "an object", v)),
        }
    }

    /// A list param; a string is split on commas (oci-build-task's form).
    pub fn list(&self, name: &str) -> Result<Vec<String>> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(split_list(s)),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| scalar_text(v).ok_or_else(|| type_error(name, "a list of strings", v)))
                .filter(|r| !matches!(r, Ok(s) if s.is_empty()))
                .collect(),
            Some(v) => Err(type_error(name, "a list of strings", v)),
        }
    }

    /// Joins a relative path onto the source dir and checks it exists and
    /// stays inside (see [`inside`]).
    pub fn path(&self, param: &str, value: &str) -> Result<PathBuf> {
        inside(param, value)?;
        let path = self.env.src_dir.join(value);
        if path.exists() {
            resolves_inside(self.env.src_dir, param, &path)?;
            Ok(path)
        } else {
            Err(ParamsError::MissingPath {
                param: param.into(),
                path,
            })
        }
    }

    /// Reads a small text file param (a tag, args, labels, a target): a
    /// regular file of at most [`SMALL_FILE_LIMIT`].
    pub fn read(&self, param: &str, value: &str) -> Result<(PathBuf, String)> {
        let path = self.path(param, value)?;
        let text = read_small(param, &path, SMALL_FILE_LIMIT)?;
        Ok((path, text))
    }

    pub fn key_value_file(&self, param: &str, value: &str) -> Result<Vec<(String, String)>> {
        let (path, text) = self.read(param, value)?;
        files::parse_key_values(&path, &text).map_err(|FileProblem { line, problem }| {
            ParamsError::FileSyntax {
                param: param.into(),
                path,
                line,
                problem,
            }
        })
    }

    pub fn expand(&self, value: &str) -> String {
        files::expand_metadata(value, self.env.var)
    }

    /// All keys with `prefix`, as `(name-after-prefix, param, value)`.
    pub fn prefixed(&self, prefix: &str) -> Result<Vec<(String, String, String)>> {
        let mut out = Vec::new();
        for (key, v) in &self.map {
            if let Some(rest) = key.strip_prefix(prefix) {
                if rest.is_empty() || v.is_null() {
                    continue;
                }
                let text = scalar_text(v).ok_or_else(|| type_error(key, "a string", v))?;
                out.push((rest.to_string(), key.clone(), text));
            }
        }
        Ok(out)
    }

    /// Inline map + family params (conflict on the same key) + a file
    /// (inline wins over the file, as an explicit pipeline value should).
    /// `map` is a row with a typed map name and a family; `what` names one
    /// entry ("build arg").
    pub fn merged_map(
        &mut self,
        map: &Param,
        file: &Param,
        what: &str,
    ) -> Result<BTreeMap<String, String>> {
        let inline = map.fixed().next().expect("the row has a typed map name");
        let prefix = map.family();
        let mut from: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (k, v) in self.string_map(inline)? {
            from.insert(k.clone(), (format!("{inline}.{k}"), v));
        }
        for (k, param, v) in self.prefixed(prefix)? {
            if let Some((first, _)) = from.get(&k) {
                return Err(ParamsError::Conflict {
                    first: first.clone(),
                    second: param,
                    what: format!("{what} {k:?}"),
                });
            }
            from.insert(k, (param, v));
        }
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        if let Some((param, file)) = self.first_text(file)? {
            for (k, v) in self.key_value_file(&param, &file)? {
                if from.contains_key(&k) {
                    self.notes.push(format!(
                        "{what} {k:?} is set both inline and in {param}; the inline value wins"
                    ));
                }
                out.insert(k, v);
            }
        }
        for (k, (_, v)) in from {
            out.insert(k, v);
        }
        Ok(out
            .into_iter()
            .map(|(k, v)| {
                let v = self.expand(&v);
                (k, v)
            })
            .collect())
    }
}

/// Expands a glob relative to `src_dir` to exactly one path.
pub(super) fn glob_one(src_dir: &Path, param: &str, pattern: &str) -> Result<PathBuf> {
    match glob_all(src_dir, param, pattern)?.as_slice() {
        [one] => Ok(one.clone()),
        many => Err(ParamsError::Invalid {
            param: param.into(),
            problem: format!(
                "too many files/directories match glob {pattern:?}: {}",
                many.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Every path `pattern` matches under `src_dir`, sorted; none is an error,
/// and each must resolve inside `src_dir`.
pub(super) fn glob_all(src_dir: &Path, param: &str, pattern: &str) -> Result<Vec<PathBuf>> {
    inside(param, pattern)?;
    let full = src_dir.join(pattern);
    let text = full.to_string_lossy();
    let matches: Vec<PathBuf> = glob::glob(&text)
        .map_err(|e| ParamsError::Invalid {
            param: param.into(),
            problem: format!("{pattern:?} is not a valid glob: {e}"),
        })?
        .filter_map(|r| r.ok())
        .collect();
    if matches.is_empty() {
        return Err(ParamsError::MissingPath {
            param: param.into(),
            path: full,
        });
    }
    for one in &matches {
        resolves_inside(src_dir, param, one)?;
    }
    Ok(matches)
}

/// Refuses a path param that is absolute or climbs out of the put's working
/// directory with `..`: the README promises paths relative to it, and a
/// pipeline (or an input it copied a param from) must not make `out` read
/// `/etc/shadow` or `../../secrets`.
pub(super) fn inside(param: &str, value: &str) -> Result<()> {
    let mut depth = 0usize;
    for part in Path::new(value).components() {
        match part {
            Component::Prefix(_) | Component::RootDir => {
                return Err(ParamsError::Invalid {
                    param: param.into(),
                    problem: format!(
                        "{value:?} is absolute; give a path relative to the put's working directory"
                    ),
                });
            }
            Component::ParentDir if depth == 0 => {
                return Err(ParamsError::Invalid {
                    param: param.into(),
                    problem: format!(
                        "{value:?} leaves the put's working directory (`..`); give a path inside it"
                    ),
                });
            }
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
        }
    }
    Ok(())
}

/// Refuses an existing `path` whose real location (symlinks followed) is
/// outside `src_dir`: an input may hold a symlink such as `tag -> /etc/shadow`.
fn resolves_inside(src_dir: &Path, param: &str, path: &Path) -> Result<()> {
    let (Ok(real), Ok(root)) = (path.canonicalize(), src_dir.canonicalize()) else {
        // Unreadable here: the read that follows reports it with its cause.
        return Ok(());
    };
    if real.starts_with(&root) {
        Ok(())
    } else {
        Err(ParamsError::Invalid {
            param: param.into(),
            problem: format!(
                "{} resolves to {}, outside the put's working directory",
                path.display(),
                real.display()
            ),
        })
    }
}

pub(super) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
