//! The JSON edits of `params.layers`: the base's config with the new
//! layers and config changes, its manifest with the new config and layers,
//! and its index with the new manifests. Pure functions over
//! `serde_json::Value`, which keeps the base's field order
//! (`preserve_order`), so the output depends on the inputs only.
//!
//! Fields we do not change are kept as the base has them, unknown ones
//! included.

use serde_json::{Map, Value, json};

use super::layer::BuiltLayer;
use crate::config::put::ConfigChanges;
use crate::oci::media_types;

/// What the new config's history says of each added layer.
pub const CREATED_BY: &str = "oci-build-resource params.layers";

/// `secs` since the epoch as RFC 3339 (`1970-01-01T00:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn object(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("just made an object")
}

/// The base config with `layers` appended and `changes` applied; `created`
/// is the new config's `created` and its history entries' time.
pub fn config(
    base: &Value,
    layers: &[(BuiltLayer, String)],
    changes: &ConfigChanges,
    created: &str,
) -> Value {
    let mut cfg = base.clone();
    let top = object(&mut cfg);
    let base_layers = top
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let rootfs = object(top.entry("rootfs").or_insert_with(|| json!({})));
    rootfs
        .entry("type")
        .or_insert_with(|| Value::from("layers"));
    let diff_ids = rootfs
        .entry("diff_ids")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(ids) = diff_ids {
        ids.extend(layers.iter().map(|(l, _)| Value::from(l.diff_id.clone())));
    }
    // History only where it can stay aligned with the layers: a base with
    // layers but no history would get entries for the wrong layers.
    if top.get("history").is_some_and(Value::is_array) || base_layers == 0 {
        let history = top
            .entry("history")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(h) = history {
            h.extend(layers.iter().map(|(_, what)| {
                json!({"created": created, "created_by": format!("{CREATED_BY}: {what}")})
            }));
        }
    }
    top.insert("created".into(), Value::from(created));

    let c = object(top.entry("config").or_insert_with(|| json!({})));
    if !changes.env.is_empty() {
        let env = c.entry("Env").or_insert_with(|| Value::Array(Vec::new()));
        if !env.is_array() {
            *env = Value::Array(Vec::new());
        }
        let list = env.as_array_mut().expect("just made an array");
        for (name, value) in &changes.env {
            let entry = Value::from(format!("{name}={value}"));
            let prefix = format!("{name}=");
            match list.iter_mut().find(|e| {
                e.as_str()
                    .is_some_and(|s| s.starts_with(&prefix) || s == name)
            }) {
                Some(existing) => *existing = entry,
                None => list.push(entry),
            }
        }
    }
    let strings = |v: &[String]| Value::from(v.to_vec());
    if let Some(e) = &changes.entrypoint {
        c.insert("Entrypoint".into(), strings(e));
    }
    if let Some(cmd) = &changes.cmd {
        c.insert("Cmd".into(), strings(cmd));
    }
    if let Some(w) = &changes.workdir {
        c.insert("WorkingDir".into(), Value::from(w.clone()));
    }
    if let Some(u) = &changes.user {
        c.insert("User".into(), Value::from(u.clone()));
    }
    if !changes.labels.is_empty() {
        let labels = object(c.entry("Labels").or_insert_with(|| json!({})));
        for (k, v) in &changes.labels {
            labels.insert(k.clone(), Value::from(v.clone()));
        }
    }
    if !changes.exposed_ports.is_empty() {
        let ports = object(c.entry("ExposedPorts").or_insert_with(|| json!({})));
        for p in &changes.exposed_ports {
            ports.insert(p.clone(), json!({}));
        }
    }
    cfg
}

/// Whether a manifest uses Docker's media types (its new layers then do
/// too: registries and runtimes reject a mix).
fn is_docker(manifest: &Value) -> bool {
    manifest["mediaType"] == media_types::DOCKER_MANIFEST
        || manifest["config"]["mediaType"] == media_types::DOCKER_CONFIG
}

/// The base manifest pointing at the new config, with `layers` appended.
pub fn manifest(
    base: &Value,
    config_digest: &str,
    config_size: u64,
    layers: &[BuiltLayer],
) -> Value {
    let mut m = base.clone();
    let layer_type = if is_docker(base) {
        media_types::DOCKER_LAYER_GZIP
    } else {
        media_types::OCI_LAYER_GZIP
    };
    let top = object(&mut m);
    let config = object(top.entry("config").or_insert_with(|| json!({})));
    config.insert("digest".into(), Value::from(config_digest));
    config.insert("size".into(), Value::from(config_size));
    let list = top
        .entry("layers")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = list {
        list.extend(
            layers
                .iter()
                .map(|l| json!({"mediaType": layer_type, "digest": l.digest, "size": l.size})),
        );
    }
    m
}

/// The base index with each kept child replaced: `replaced` maps a base
/// child digest to the new manifest's `(digest, size)`. Children not in it
/// (attestations, which describe the base's images, not ours) are dropped.
pub fn index(base: &Value, replaced: &[(String, String, u64)]) -> Value {
    let mut idx = base.clone();
    let top = object(&mut idx);
    let children = top
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let kept: Vec<Value> = children
        .into_iter()
        .filter_map(|mut child| {
            let digest = child["digest"].as_str()?.to_string();
            let (_, new_digest, size) = replaced.iter().find(|(old, _, _)| *old == digest)?;
            let c = object(&mut child);
            c.insert("digest".into(), Value::from(new_digest.clone()));
            c.insert("size".into(), Value::from(*size));
            Some(child)
        })
        .collect();
    top.insert("manifests".into(), Value::Array(kept));
    idx
}

#[cfg(test)]
mod tests;
