//! `params.layers`: the daemonless put mode that appends layers built from
//! the put's inputs to a base image, decoded into [`LayersParams`].
//!
//! Everything is checked here, before anything is read from a registry:
//! the base (a reference, or a path under the working directory), each
//! layer's source (exists, stays inside), destination (no `..`), owner,
//! modes and mtime, and the config changes. Errors name the field with its
//! place in the object (`layers.add[1].mode`), as the rest of the put
//! params do.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::access::{Decoder, scalar_text};
use super::errors::{ParamsError, Result, json_kind, type_error};
use super::values::{image_reference, validate_platform};

/// The fields of `params.layers`, for "unknown field" and "did you mean".
const FIELDS: &[&str] = &[
    "base",
    "base_image",
    "platform",
    "source_date_epoch",
    "add",
    "config",
];
/// The fields of one `params.layers.add` entry.
const ADD_FIELDS: &[&str] = &["src", "dest", "owner", "mode", "dir_mode", "mtime"];
/// The fields of `params.layers.config`.
const CONFIG_FIELDS: &[&str] = &[
    "env",
    "entrypoint",
    "cmd",
    "workdir",
    "user",
    "labels",
    "exposed_ports",
];

/// Where the base image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayersBase {
    /// A registry reference, pulled with the source's credentials when it
    /// is on the source's registry, else with `additional_registries`'.
    Reference {
        /// The repository, as [`crate::registry::Repository::parse`] takes it.
        repository: String,
        /// A tag or a `sha256:` digest.
        reference: String,
    },
    /// A local image: a docker-save tarball (`image.tar`) or an OCI layout
    /// directory (`oci/`), found in a get directory or named directly.
    Local(PathBuf),
}

/// One layer to append: `src` placed at `dest` in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSpec {
    /// The file or directory (absolute, checked to exist inside the
    /// working directory).
    pub src: PathBuf,
    /// Its path in the image, relative to `/` (empty: the root), without
    /// `.` or `..` components.
    pub dest: String,
    /// Owner of every entry.
    pub uid: u64,
    /// Group of every entry.
    pub gid: u64,
    /// Permission bits of regular files; `None` keeps the source's bits.
    pub mode: Option<u32>,
    /// Permission bits of directories; `None` keeps the source's bits.
    pub dir_mode: Option<u32>,
    /// Modification time of every entry, seconds since the epoch.
    pub mtime: u64,
}

/// Changes to the base's image config. `None` or empty leaves the base's
/// value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigChanges {
    /// `NAME=value` pairs: a name the base has is replaced in place, a new
    /// one appended.
    pub env: Vec<(String, String)>,
    /// Replaces the entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the command.
    pub cmd: Option<Vec<String>>,
    /// Replaces the working directory.
    pub workdir: Option<String>,
    /// Replaces the user.
    pub user: Option<String>,
    /// Added to (or replacing) the base's labels.
    pub labels: BTreeMap<String, String>,
    /// Added to the base's exposed ports (`80/tcp`).
    pub exposed_ports: Vec<String>,
}

/// Validated `params.layers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayersParams {
    /// The base image.
    pub base: LayersBase,
    /// `os/arch[/variant]`: take only this image of a multi-platform base.
    pub platform: Option<String>,
    /// Timestamp of the new config and history entries, and the default
    /// layer mtime.
    pub source_date_epoch: u64,
    /// The layers, in order (one layer each).
    pub add: Vec<LayerSpec>,
    /// Config changes.
    pub config: ConfigChanges,
}

impl Decoder<'_> {
    /// Decodes `params.<name>` (the `layers` row of the params table).
    pub(super) fn layers(&self, name: &str) -> Result<LayersParams> {
        let obj = object(name, self.map.get(name).unwrap_or(&Value::Null))?;
        unknown_fields(name, obj, FIELDS)?;
        let field = |f: &str| format!("{name}.{f}");
        let set = |f: &str| match obj.get(f) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(v) => Some(v),
        };
        let base = match (set("base"), set("base_image")) {
            (Some(_), Some(_)) => {
                return Err(ParamsError::Conflict {
                    first: field("base"),
                    second: field("base_image"),
                    what: "the base image".into(),
                });
            }
            (None, None) => {
                return Err(ParamsError::Invalid {
                    param: name.into(),
                    problem: "no base image: set `base` (an image reference) or `base_image` (a get directory or image path)".into(),
                });
            }
            (Some(v), None) => {
                let text = string(&field("base"), v)?;
                parse_reference(&field("base"), &text)?
            }
            (None, Some(v)) => {
                let text = string(&field("base_image"), v)?;
                LayersBase::Local(self.local_image(&field("base_image"), &text)?)
            }
        };
        let platform = match set("platform") {
            Some(v) => {
                let p = string(&field("platform"), v)?;
                validate_platform(&field("platform"), &p)?;
                Some(p)
            }
            None => None,
        };
        let source_date_epoch = match set("source_date_epoch") {
            Some(v) => seconds(&field("source_date_epoch"), v)?,
            None => match (self.env.var)("SOURCE_DATE_EPOCH").filter(|s| !s.is_empty()) {
                Some(s) => s.trim().parse().map_err(|_| ParamsError::Invalid {
                    param: field("source_date_epoch"),
                    problem: format!(
                        "not set, and $SOURCE_DATE_EPOCH ({}) is not a number of seconds",
                        super::files::excerpt(&s)
                    ),
                })?,
                None => 0,
            },
        };
        let add = match set("add") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.layer(&format!("{name}.add[{i}]"), item, source_date_epoch))
                .collect::<Result<Vec<_>>>()?,
            Some(Value::Array(_)) | None => {
                return Err(ParamsError::Invalid {
                    param: field("add"),
                    problem: "give at least one layer ({src, dest})".into(),
                });
            }
            Some(v) => return Err(type_error(&field("add"), "a list of layers", v)),
        };
        let config = match set("config") {
            Some(v) => config_changes(&field("config"), v)?,
            None => ConfigChanges::default(),
        };
        Ok(LayersParams {
            base,
            platform,
            source_date_epoch,
            add,
            config,
        })
    }

    /// A get directory (its `image.tar`, `oci/` or docker-image's `image`)
    /// or an image path.
    fn local_image(&self, param: &str, value: &str) -> Result<PathBuf> {
        let path = self.path(param, value)?;
        if !path.is_dir() || path.join("oci-layout").exists() {
            return Ok(path);
        }
        ["image.tar", "oci", "image"]
            .iter()
            .map(|f| path.join(f))
            .find(|p| p.exists())
            .ok_or_else(|| ParamsError::Invalid {
                param: param.into(),
                problem: format!(
                    "{} holds no image.tar, oci/ or image (get the base with `format: oci` or `format: oci-layout`; a rootfs has lost its layers)",
                    path.display()
                ),
            })
    }

    fn layer(&self, param: &str, item: &Value, default_mtime: u64) -> Result<LayerSpec> {
        let obj = object(param, item)?;
        unknown_fields(param, obj, ADD_FIELDS)?;
        let field = |f: &str| format!("{param}.{f}");
        let get = |f: &str| obj.get(f).filter(|v| !v.is_null());
        let src_text = match get("src") {
            Some(v) => string(&field("src"), v)?,
            None => return Err(missing(&field("src"))),
        };
        if src_text.is_empty() {
            return Err(missing(&field("src")));
        }
        let src = self.path(&field("src"), &src_text)?;
        let meta = std::fs::symlink_metadata(&src).map_err(|source| ParamsError::Read {
            param: field("src"),
            path: src.clone(),
            source,
        })?;
        if !(meta.is_dir() || meta.is_file()) {
            return Err(ParamsError::Invalid {
                param: field("src"),
                problem: format!("{} is not a file or directory", src.display()),
            });
        }
        let dest = match get("dest") {
            Some(v) => destination(&field("dest"), &string(&field("dest"), v)?)?,
            None => return Err(missing(&field("dest"))),
        };
        if dest.is_empty() && !meta.is_dir() {
            return Err(ParamsError::Invalid {
                param: field("dest"),
                problem: "only a directory can go at `/`; name the file's path in the image".into(),
            });
        }
        let (uid, gid) = match get("owner") {
            Some(v) => owner(&field("owner"), v)?,
            None => (0, 0),
        };
        let file_mode = get("mode").map(|v| mode(&field("mode"), v)).transpose()?;
        let dir_mode = get("dir_mode")
            .map(|v| mode(&field("dir_mode"), v))
            .transpose()?;
        let mtime = match get("mtime") {
            Some(v) => seconds(&field("mtime"), v)?,
            None => default_mtime,
        };
        Ok(LayerSpec {
            src,
            dest,
            uid,
            gid,
            mode: file_mode,
            dir_mode,
            mtime,
        })
    }
}

fn missing(param: &str) -> ParamsError {
    ParamsError::Invalid {
        param: param.into(),
        problem: "is required".into(),
    }
}

fn object<'v>(param: &str, v: &'v Value) -> Result<&'v Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(type_error(param, "an object", other)),
    }
}

fn unknown_fields(param: &str, obj: &Map<String, Value>, known: &[&str]) -> Result<()> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(ParamsError::Unknown {
            name: format!("{param}.{k}"),
            hint: crate::config::decode::suggest(k, known.iter().copied())
                .map(|h| format!("{param}.{h}")),
        }),
    }
}

fn string(param: &str, v: &Value) -> Result<String> {
    scalar_text(v).ok_or_else(|| type_error(param, "a string", v))
}

fn parse_reference(param: &str, text: &str) -> Result<LayersBase> {
    let (repository, reference) = image_reference(param, text)?;
    Ok(LayersBase::Reference {
        repository,
        reference,
    })
}

/// A path in the image: `/` or relative to it, without `..` (a layer
/// entry climbing out of the root is refused by every unpacker, or worse).
fn destination(param: &str, value: &str) -> Result<String> {
    if value.is_empty() {
        return Err(missing(param));
    }
    let mut parts = Vec::new();
    for c in Path::new(value).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().ok_or_else(|| ParamsError::Invalid {
                param: param.into(),
                problem: format!("{value:?} is not UTF-8"),
            })?),
            Component::ParentDir => {
                return Err(ParamsError::Invalid {
                    param: param.into(),
                    problem: format!(
                        "{value:?} has a `..` component; give the path in the image without it"
                    ),
                });
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(parts.join("/"))
}

/// `"uid:gid"` or `"uid"` (then gid = uid, as `COPY --chown` does), numeric
/// only: a name would need the image's `/etc/passwd`, and the host's means
/// nothing in the image.
fn owner(param: &str, v: &Value) -> Result<(u64, u64)> {
    let text = string(param, v)?;
    let id = |s: &str| {
        s.parse::<u64>()
            .ok()
            .filter(|n| *n <= u32::MAX as u64)
            .ok_or_else(|| ParamsError::Invalid {
                param: param.into(),
                problem: format!(
                    "{text:?} is not `uid:gid` (numbers; user and group names are not looked up)"
                ),
            })
    };
    match text.split_once(':') {
        Some((u, g)) => Ok((id(u)?, id(g)?)),
        None => {
            let u = id(&text)?;
            Ok((u, u))
        }
    }
}

/// Permission bits as an octal string (`"0644"`, `"755"`, `"0o2775"`). A
/// YAML number is refused: YAML 1.1 reads `0644` as 420 and YAML 1.2 as
/// 644, so its meaning depends on the parser that read the pipeline.
fn mode(param: &str, v: &Value) -> Result<u32> {
    let Value::String(s) = v else {
        return Err(ParamsError::Invalid {
            param: param.into(),
            problem: format!(
                "give the mode as a quoted octal string such as \"0644\", not {}",
                json_kind(v)
            ),
        });
    };
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(m),
        _ => Err(ParamsError::Invalid {
            param: param.into(),
            problem: format!("{s:?} is not an octal mode from \"0000\" to \"7777\""),
        }),
    }
}

/// Whole seconds since the epoch, a number or a string of digits.
fn seconds(param: &str, v: &Value) -> Result<u64> {
    let parsed = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| ParamsError::Invalid {
        param: param.into(),
        problem: format!(
            "{} is not a whole number of seconds since 1970-01-01T00:00:00Z",
            super::files::excerpt(&scalar_text(v).unwrap_or_else(|| json_kind(v).into()))
        ),
    })
}

fn config_changes(param: &str, v: &Value) -> Result<ConfigChanges> {
    let obj = object(param, v)?;
    unknown_fields(param, obj, CONFIG_FIELDS)?;
    let field = |f: &str| format!("{param}.{f}");
    let get = |f: &str| obj.get(f).filter(|v| !v.is_null());
    let mut out = ConfigChanges::default();
    if let Some(v) = get("env") {
        out.env = pairs(&field("env"), v)?;
        for (k, _) in &out.env {
            if k.is_empty() || k.contains('=') {
                return Err(ParamsError::Invalid {
                    param: field("env"),
                    problem: format!("{k:?} is not a variable name"),
                });
            }
        }
    }
    if let Some(v) = get("entrypoint") {
        out.entrypoint = Some(strings(&field("entrypoint"), v)?);
    }
    if let Some(v) = get("cmd") {
        out.cmd = Some(strings(&field("cmd"), v)?);
    }
    if let Some(v) = get("workdir") {
        let w = string(&field("workdir"), v)?;
        if !w.starts_with('/') {
            return Err(ParamsError::Invalid {
                param: field("workdir"),
                problem: format!("{w:?} is not an absolute path"),
            });
        }
        out.workdir = Some(w);
    }
    if let Some(v) = get("user") {
        out.user = Some(string(&field("user"), v)?);
    }
    if let Some(v) = get("labels") {
        out.labels = match v {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| Ok((k.clone(), string(&format!("{}.{k}", field("labels")), v)?)))
                .collect::<Result<_>>()?,
            other => return Err(type_error(&field("labels"), "an object", other)),
        };
    }
    if let Some(v) = get("exposed_ports") {
        let items = match v {
            Value::Array(items) => items.clone(),
            one => vec![one.clone()],
        };
        for item in items {
            out.exposed_ports
                .push(port(&field("exposed_ports"), &item)?);
        }
    }
    Ok(out)
}

/// A map, or a list of `NAME=value`, as ordered pairs.
fn pairs(param: &str, v: &Value) -> Result<Vec<(String, String)>> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::Null => Ok((k.clone(), String::new())),
                v => Ok((k.clone(), string(&format!("{param}.{k}"), v)?)),
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let s = string(param, item)?;
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| ParamsError::Invalid {
                        param: param.into(),
                        problem: format!("{} is not NAME=value", super::files::excerpt(&s)),
                    })
            })
            .collect(),
        other => Err(type_error(
            param,
            "an object or a list of NAME=value",
            other,
        )),
    }
}

/// A list of strings (exec form); `[]` clears.
fn strings(param: &str, v: &Value) -> Result<Vec<String>> {
    match v {
        Value::Array(items) => items.iter().map(|i| string(param, i)).collect(),
        other => Err(type_error(param, "a list of strings (exec form)", other)),
    }
}

/// `80`, `"80"`, `"80/tcp"`, `"53/udp"` → `80/tcp`, `53/udp`.
fn port(param: &str, v: &Value) -> Result<String> {
    let text = string(param, v)?;
    let (num, proto) = text.split_once('/').unwrap_or((&text, "tcp"));
    let ok = num.parse::<u16>().is_ok_and(|n| n > 0) && matches!(proto, "tcp" | "udp" | "sctp");
    if ok {
        Ok(format!("{num}/{proto}"))
    } else {
        Err(ParamsError::Invalid {
            param: param.into(),
            problem: format!("{text:?} is not PORT[/tcp|udp|sctp]"),
        })
    }
}
