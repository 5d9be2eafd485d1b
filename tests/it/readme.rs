//! README.md's examples cannot rot: every ```yaml block is parsed, and each
//! `source`, put `params`/`get_params` and get `params` that belongs to this
//! resource type goes through the decoders `check`, `in` and `out` use
//! (`config::Source`, `config::put::PutParams`, `config::GetParams`), so an
//! unknown, misspelt or mistyped key in an example fails here. Put param
//! names are also checked one by one against the param table
//! (`config::put::is_known_name`), for a message that names the key.
//!
//! Which blocks are ours: a `resource_types` entry whose image repository
//! ends in `oci-build-resource` names one of our types (the README calls them
//! `oci-build` and `oci-build-privileged`). In a block, a resource declared
//! with one of those types is ours and one with another type (`git`,
//! `registry-image`, `docker-image`) is skipped together with its steps; a
//! step whose resource the block does not declare, or a bare `source:`
//! mapping, is taken as ours (the README's fragments only show ours).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use oci_build_resource::config::put::{Env, ParamsError, PutParams, is_known_name};
use oci_build_resource::config::{GetParams, Source};
use serde_json::{Map, Value};

/// One ```yaml block: where it starts (1-based line of the fence) and its text.
struct Block {
    line: usize,
    text: String,
}

fn yaml_blocks(readme: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in readme.lines().enumerate() {
        let fence = line.trim_start();
        match current.as_mut() {
            None if fence == "```yaml" => {
                current = Some(Block {
                    line: i + 1,
                    text: String::new(),
                })
            }
            None => {}
            Some(_) if fence == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
        }
    }
    assert!(
        current.is_none(),
        "README.md: a ```yaml block is not closed"
    );
    blocks
}

fn parse(block: &Block) -> Value {
    serde_norway::from_str(&block.text).unwrap_or_else(|e| {
        panic!(
            "README.md line {}: the yaml block does not parse: {e}\n{}",
            block.line, block.text
        )
    })
}

/// The names of our resource types, from every block's `resource_types`.
fn our_types(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .filter_map(|d| d.get("resource_types")?.as_array())
        .flatten()
        .filter(|t| {
            t.pointer("/source/repository")
                .and_then(Value::as_str)
                .is_some_and(|r| r.ends_with("oci-build-resource"))
        })
        .filter_map(|t| Some(t.get("name")?.as_str()?.to_string()))
        .collect()
}

/// What the test looked at, so that it cannot pass on nothing.
#[derive(Default, Debug)]
struct Checked {
    sources: usize,
    put_params: usize,
    get_params: usize,
    failures: Vec<String>,
}

impl Checked {
    fn fail(&mut self, line: usize, what: &str, error: impl std::fmt::Display) {
        self.failures
            .push(format!("README.md block at line {line}, {what}: {error}"));
    }
}

fn check_block(block: &Block, doc: &Value, ours: &BTreeSet<String>, checked: &mut Checked) {
    // Resources the block declares, by name: their type is ours or not.
    let mut declared: BTreeMap<String, bool> = BTreeMap::new();
    for resource in doc
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = resource.get("name").and_then(Value::as_str).unwrap_or("");
        let kind = resource.get("type").and_then(Value::as_str).unwrap_or("");
        let is_ours = ours.contains(kind);
        declared.insert(name.to_string(), is_ours);
        if is_ours && let Some(source) = resource.get("source") {
            check_source(block.line, &format!("resource {name:?}"), source, checked);
        }
    }
    // A bare `source:` fragment (no resources around it).
    if doc.get("resources").is_none()
        && doc.get("type").is_none()
        && let Some(source) = doc.get("source")
    {
        check_source(block.line, "a `source:` fragment", source, checked);
    }
    let mut steps = Vec::new();
    collect_steps(doc, &mut steps);
    for step in steps {
        let (kind, named) = match (step.get("put"), step.get("get")) {
            (Some(Value::String(n)), _) => ("put", n),
            (_, Some(Value::String(n))) => ("get", n),
            _ => continue,
        };
        let resource = step
            .get("resource")
            .and_then(Value::as_str)
            .unwrap_or(named);
        if declared.get(resource) == Some(&false) {
            continue;
        }
        let what = format!("{kind}: {named}");
        match kind {
            "put" => {
                if let Some(params) = step.get("params") {
                    check_put_params(block.line, &what, params, checked);
                }
                if let Some(params) = step.get("get_params") {
                    check_get_params(block.line, &format!("{what} get_params"), params, checked);
                }
            }
            _ => {
                if let Some(params) = step.get("params") {
                    check_get_params(block.line, &format!("{what} params"), params, checked);
                }
            }
        }
    }
}

/// Every mapping with a `put` or `get` key, anywhere in the document.
fn collect_steps<'v>(value: &'v Value, out: &mut Vec<&'v Map<String, Value>>) {
    match value {
        Value::Object(map) => {
            if map.contains_key("put") || map.contains_key("get") {
                out.push(map);
            }
            map.values().for_each(|v| collect_steps(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_steps(v, out)),
        _ => {}
    }
}

fn check_source(line: usize, what: &str, source: &Value, checked: &mut Checked) {
    checked.sources += 1;
    if let Err(e) = Source::from_value(source.clone()) {
        checked.fail(line, &format!("{what} source"), e);
    }
}

fn check_get_params(line: usize, what: &str, params: &Value, checked: &mut Checked) {
    checked.get_params += 1;
    if let Err(e) = GetParams::from_value(Some(params.clone())) {
        checked.fail(line, what, e);
    }
}

fn check_put_params(line: usize, what: &str, params: &Value, checked: &mut Checked) {
    checked.put_params += 1;
    let Some(map) = params.as_object() else {
        checked.fail(line, what, "params is not a mapping");
        return;
    };
    for key in map.keys().filter(|k| !is_known_name(k)) {
        checked.fail(line, what, format!("{key:?} is not a known put param"));
    }
    // The real decoder wants the paths to exist: make each one it misses,
    // in a put directory of its own, and decode again.
    let dir = tempfile::tempdir().expect("temp dir");
    let var = |_: &str| Some("x".to_string());
    let env = Env {
        src_dir: dir.path(),
        var: &var,
    };
    for _ in 0..32 {
        match PutParams::from_value(params, &env) {
            Ok(_) => return,
            Err(ParamsError::MissingPath { param, path }) if path.starts_with(dir.path()) => {
                make_input(&param, &path)
            }
            Err(e) => return checked.fail(line, &format!("{what} params"), e),
        }
    }
    checked.fail(line, what, "the decoder kept asking for more paths");
}

/// Creates `path` as the input `param` points at: a directory for a build
/// context, else a file whose content that param accepts.
fn make_input(param: &str, path: &Path) {
    let name = param.split(['.', ' ']).next().unwrap_or(param);
    if matches!(
        name,
        "context" | "build" | "CONTEXT" | "load" | "load_base" | "load_bases" | "cache_from"
    ) {
        std::fs::create_dir_all(path).expect("creating an input directory");
        return;
    }
    let content = match name {
        "tag_file" | "tag" => "1.2.3\n",
        "additional_tags" => "extra\n",
        "target_file" | "TARGET_FILE" => "build\n",
        "build_args_file" | "BUILD_ARGS_FILE" | "labels_file" | "LABELS_FILE" => "A=1\n",
        "dockerfile" | "DOCKERFILE" => "FROM scratch\n",
        _ => "x\n",
    };
    std::fs::create_dir_all(path.parent().expect("an input path has a parent"))
        .expect("creating the input's directory");
    std::fs::write(path, content).expect("writing an input file");
}

fn check_readme(readme: &str) -> Checked {
    let blocks = yaml_blocks(readme);
    let docs: Vec<Value> = blocks.iter().map(parse).collect();
    let ours = our_types(&docs);
    let mut checked = Checked::default();
    if ours.is_empty() {
        checked.fail(
            0,
            "resource_types",
            "no block declares a resource type with an oci-build-resource image",
        );
    }
    for (block, doc) in blocks.iter().zip(&docs) {
        check_block(block, doc, &ours, &mut checked);
    }
    checked
}

fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    std::fs::read_to_string(path).expect("reading README.md")
}

#[test]
fn every_readme_example_uses_known_keys_and_decodes() {
    let checked = check_readme(&readme());
    assert!(
        checked.failures.is_empty(),
        "README.md examples the resource would reject:\n{}",
        checked.failures.join("\n")
    );
    // The README has several pipelines: if the walk found few of these, the
    // recognition above broke, not the examples.
    assert!(
        checked.sources >= 6 && checked.put_params >= 4 && checked.get_params >= 3,
        "too few examples checked: {checked:?}"
    );
}

#[test]
fn a_readme_example_with_an_unknown_param_fails() {
    // The Quick start's put, with a slip a reader might copy.
    let readme = readme().replacen(
        "params: { context: src }",
        "params: { context: src, build_arg: {A: b} }",
        1,
    );
    let checked = check_readme(&readme);
    assert!(
        checked
            .failures
            .iter()
            .any(|f| f.contains("\"build_arg\" is not a known put param")),
        "an unknown put param went through: {checked:?}"
    );
    assert!(
        checked
            .failures
            .iter()
            .any(|f| f.contains("unknown param \"build_arg\" (did you mean \"build_args\"?)")),
        "the decoder did not reject it: {checked:?}"
    );
}

#[test]
fn a_readme_example_with_an_unknown_source_or_get_key_fails() {
    let readme = readme()
        .replacen(
            "    tag: latest\n",
            "    tag: latest\n    insecure_registry: true\n",
            1,
        )
        .replacen(
            "params: { format: rootfs }",
            "params: { fromat: rootfs }",
            1,
        );
    let checked = check_readme(&readme);
    let text = checked.failures.join("\n");
    assert!(
        text.contains("\"insecure_registry\""),
        "an unknown source key went through: {checked:?}"
    );
    assert!(
        text.contains("\"fromat\""),
        "an unknown get param went through: {checked:?}"
    );
}
