//! What `get` tells the user about an image: `metadata.json` and
//! `labels.json` next to the rootfs, and label/annotation metadata fields.
//!
//! The config is read with a deliberately small, lenient struct rather than
//! a full `ImageConfiguration`: only these fields matter here, and a config
//! that other tools accept (no `rootfs`, odd `architecture`) must not fail a
//! get over fields we never use.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// The parts of an image config (`config` object) `get` reports.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `Cmd`
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// `Entrypoint`
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// `Env`, `K=V` strings
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// `User`
    #[serde(default)]
    pub user: Option<String>,
    /// `Labels`
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config: Option<RunConfig>,
}

impl RunConfig {
    /// Reads the `config` object of an image config blob.
    pub fn from_config_blob(what: &str, bytes: &[u8]) -> Result<RunConfig> {
        let file: ConfigFile = serde_json::from_slice(bytes).map_err(|e| Error::Parse {
            what: format!("image config {what}"),
            message: e.to_string(),
        })?;
        Ok(file.config.unwrap_or_default())
    }

    /// The labels, empty when the image has none.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.labels.clone().unwrap_or_default()
    }

    /// `metadata.json`: `{"cmd","entrypoint","env","user"}` (absent lists
    /// are `null`, absent user is `""`, as registry-image writes them) + `\n`.
    pub fn metadata_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Out<'a> {
            cmd: &'a Option<Vec<String>>,
            entrypoint: &'a Option<Vec<String>>,
            env: &'a Option<Vec<String>>,
            user: &'a str,
        }
        let mut v = serde_json::to_vec(&Out {
            cmd: &self.cmd,
            entrypoint: &self.entrypoint,
            env: &self.env,
            user: self.user.as_deref().unwrap_or(""),
        })
        .expect("serialising strings cannot fail");
        v.push(b'\n');
        v
    }

    /// `labels.json`: the labels map sorted by key (`{}` if none) + `\n`.
    pub fn labels_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(&self.labels()).expect("serialising strings cannot fail");
        v.push(b'\n');
        v
    }
}

/// Writes `metadata.json` into `dest`.
pub fn write_metadata_json(dest: &Path, config: &RunConfig) -> Result<()> {
    let path = dest.join("metadata.json");
    std::fs::write(&path, config.metadata_json()).map_err(|e| Error::io("writing", path, e))
}

/// Writes `labels.json` into `dest`.
pub fn write_labels_json(dest: &Path, config: &RunConfig) -> Result<()> {
    let path = dest.join("labels.json");
    std::fs::write(&path, config.labels_json()).map_err(|e| Error::io("writing", path, e))
}

/// The entries of `map` whose key `regex` matches anywhere, sorted by key.
///
/// Used for `label_regex` (config labels) and `annotation_regex` (manifest
/// annotations) in the `get` response metadata.
pub fn matching<'a, I>(map: I, regex: &Regex) -> Vec<(String, String)>
where
    I: IntoIterator<Item = (&'a String, &'a String)>,
{
    let mut out: Vec<_> = map
        .into_iter()
        .filter(|(k, _)| regex.is_match(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.sort();
    out
}

/// Annotations of an image manifest (empty when it has none or is not JSON).
pub fn manifest_annotations(manifest: &[u8]) -> HashMap<String, String> {
    #[derive(Deserialize)]
    struct M {
        #[serde(default)]
        annotations: Option<HashMap<String, String>>,
    }
    serde_json::from_slice::<M>(manifest)
        .ok()
        .and_then(|m| m.annotations)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
