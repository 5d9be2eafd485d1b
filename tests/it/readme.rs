//! The documentation's examples cannot rot: every ```yaml block of README.md
//! and of each `docs/*.md` is parsed, and each `source`, put
//! `params`/`get_params` and get `params` that belongs to this resource type
//! goes through the decoders `check`, `in` and `out` use (`config::Source`,
//! `config::put::PutParams`, `config::GetParams`), so an unknown, misspelt or
//! mistyped key in an example fails here. Put param names are also checked
//! one by one against the param table (`config::put::is_known_name`), for a
//! message that names the key. Every message names the file and the line of
//! the block's fence (`docs/put.md block at line N`).
//!
//! Which blocks are ours: a `resource_types` entry whose image repository
//! ends in `oci-build-resource` names one of our types (the docs call them
//! `oci-build` and `oci-build-privileged`); the types are collected from the
//! blocks of all the files together, since most blocks in `docs/` use a type
//! that only the README declares. In a block, a resource declared with one of
//! those types is ours and one with another type (`git`, `registry-image`,
//! `docker-image`) is skipped together with its steps; a step whose resource
//! the block does not declare, or a bare `source:` mapping, is taken as ours
//! (the fragments only show ours).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use oci_build_resource::config::put::{Env, ParamsError, PutParams, is_known_name};
use oci_build_resource::config::{GetParams, Source};
use serde_json::{Map, Value};

/// One markdown file whose examples are checked: its path from the crate
/// root (`README.md`, `docs/put.md`), as messages name it, and its text.
struct Doc {
    name: String,
    text: String,
}

/// One ```yaml block: its file, where it starts (1-based line of the fence)
/// and its text.
struct Block {
    file: String,
    line: usize,
    text: String,
}

fn yaml_blocks(doc: &Doc) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in doc.text.lines().enumerate() {
        let fence = line.trim_start();
        match current.as_mut() {
            None if fence == "```yaml" => {
                current = Some(Block {
                    file: doc.name.clone(),
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
        "{}: a ```yaml block is not closed",
        doc.name
    );
    blocks
}

fn parse(block: &Block) -> Value {
    serde_norway::from_str(&block.text).unwrap_or_else(|e| {
        panic!(
            "{} line {}: the yaml block does not parse: {e}\n{}",
            block.file, block.line, block.text
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

/// What the test looked at, so that it cannot pass on nothing: the counts
/// are over all the files, and `blocks` says how many yaml blocks each file
/// had.
#[derive(Default, Debug)]
struct Checked {
    blocks: BTreeMap<String, usize>,
    sources: usize,
    put_params: usize,
    get_params: usize,
    failures: Vec<String>,
}

impl Checked {
    fn fail(&mut self, at: &Block, what: &str, error: impl std::fmt::Display) {
        self.failures.push(format!(
            "{} block at line {}, {what}: {error}",
            at.file, at.line
        ));
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
            check_source(block, &format!("resource {name:?}"), source, checked);
        }
    }
    // A bare `source:` fragment (no resources around it).
    if doc.get("resources").is_none()
        && doc.get("type").is_none()
        && let Some(source) = doc.get("source")
    {
        check_source(block, "a `source:` fragment", source, checked);
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
                    check_put_params(block, &what, params, checked);
                }
                if let Some(params) = step.get("get_params") {
                    check_get_params(block, &format!("{what} get_params"), params, checked);
                }
            }
            _ => {
                if let Some(params) = step.get("params") {
                    check_get_params(block, &format!("{what} params"), params, checked);
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

fn check_source(at: &Block, what: &str, source: &Value, checked: &mut Checked) {
    checked.sources += 1;
    if let Err(e) = Source::from_value(with_test_keys(source)) {
        checked.fail(at, &format!("{what} source"), e);
    }
}

/// `source` with each `((var))` placeholder where a signing key, its
/// password or a public key goes replaced by a throwaway key pair (made by
/// the `sigstore` crate): the decoder reads and decrypts keys, so a
/// placeholder would never decode, whereas every other key's placeholder is
/// just text.
fn with_test_keys(source: &Value) -> Value {
    use std::sync::OnceLock;
    static KEYS: OnceLock<crate::support::cosign::KeyPair> = OnceLock::new();
    let placeholder = |v: &Value| v.as_str().is_some_and(|t| t.trim().starts_with("(("));
    let mut source = source.clone();
    if let Some(sign) = source.get_mut("sign").and_then(Value::as_object_mut)
        && sign.get("private_key").is_some_and(placeholder)
    {
        let keys = KEYS.get_or_init(crate::support::cosign::KeyPair::generate);
        sign.insert("private_key".into(), Value::from(keys.encrypted.clone()));
        sign.insert("password".into(), Value::from(keys.password.clone()));
    }
    if let Some(verify) = source.get_mut("verify").and_then(Value::as_object_mut)
        && let Some(public_keys) = verify.get_mut("public_keys")
    {
        let keys = KEYS.get_or_init(crate::support::cosign::KeyPair::generate);
        match public_keys {
            Value::Array(items) => {
                for item in items.iter_mut().filter(|i| placeholder(i)) {
                    *item = Value::from(keys.public.clone());
                }
            }
            one if placeholder(one) => *one = Value::from(keys.public.clone()),
            _ => {}
        }
    }
    source
}

fn check_get_params(at: &Block, what: &str, params: &Value, checked: &mut Checked) {
    checked.get_params += 1;
    if let Err(e) = GetParams::from_value(Some(params.clone())) {
        checked.fail(at, what, e);
    }
}

fn check_put_params(at: &Block, what: &str, params: &Value, checked: &mut Checked) {
    checked.put_params += 1;
    let Some(map) = params.as_object() else {
        checked.fail(at, what, "params is not a mapping");
        return;
    };
    for key in map.keys().filter(|k| !is_known_name(k)) {
        checked.fail(at, what, format!("{key:?} is not a known put param"));
    }
    // The real decoder wants the paths to exist: make each one it misses,
    // in a put directory of its own, and decode again.
    let dir = tempfile::tempdir().expect("temp dir");
    // Every variable an example may name (build args from the environment,
    // secrets' `env`) is set; SOURCE_DATE_EPOCH must be seconds.
    let var = |name: &str| match name {
        "SOURCE_DATE_EPOCH" => Some("0".to_string()),
        _ => Some("x".to_string()),
    };
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
            Err(e) => return checked.fail(at, &format!("{what} params"), e),
        }
    }
    checked.fail(at, what, "the decoder kept asking for more paths");
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

/// Checks the examples of every file together (see the module doc for why
/// the resource types are collected across files).
fn check_docs(files: &[Doc]) -> Checked {
    let blocks: Vec<Block> = files.iter().flat_map(yaml_blocks).collect();
    let docs: Vec<Value> = blocks.iter().map(parse).collect();
    let ours = our_types(&docs);
    let mut checked = Checked::default();
    for file in files {
        checked.blocks.insert(file.name.clone(), 0);
    }
    for block in &blocks {
        *checked.blocks.entry(block.file.clone()).or_default() += 1;
    }
    if ours.is_empty() {
        checked.failures.push(
            "resource_types: no block declares a resource type with an oci-build-resource image"
                .to_string(),
        );
    }
    for (block, doc) in blocks.iter().zip(&docs) {
        check_block(block, doc, &ours, &mut checked);
    }
    checked
}

/// README.md, then every `docs/*.md` in name order.
fn docs() -> Vec<Doc> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |name: String| {
        let text = std::fs::read_to_string(root.join(&name))
            .unwrap_or_else(|e| panic!("reading {name}: {e}"));
        Doc { name, text }
    };
    let mut names: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("reading docs/")
        .map(|entry| entry.expect("a docs/ entry").file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    names.sort();
    std::iter::once("README.md".to_string())
        .chain(names)
        .map(read)
        .collect()
}

/// The docs with `edit` applied to one file's text (which must exist).
fn edited(name: &str, edit: impl FnOnce(&str) -> String) -> Vec<Doc> {
    let mut files = docs();
    let file = files
        .iter_mut()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no {name} among the docs"));
    let text = edit(&file.text);
    assert_ne!(text, file.text, "the edit of {name} changed nothing");
    file.text = text;
    files
}

#[test]
fn every_readme_example_uses_known_keys_and_decodes() {
    let checked = check_docs(&docs());
    assert!(
        checked.failures.is_empty(),
        "examples in README.md and docs/ the resource would reject:\n{}",
        checked.failures.join("\n")
    );
    // README.md and docs/ have several pipelines between them: if the walk
    // found few of these, the recognition above broke (or a file went
    // unread), not the examples.
    assert!(
        checked.sources >= 6 && checked.put_params >= 4 && checked.get_params >= 3,
        "too few examples checked: {checked:?}"
    );
    let with_blocks = |prefix: &str| {
        checked
            .blocks
            .iter()
            .any(|(name, &n)| name.starts_with(prefix) && n > 0)
    };
    assert!(
        with_blocks("README.md") && with_blocks("docs/"),
        "README.md and docs/ should both hold yaml examples: {checked:?}"
    );
}

#[test]
fn a_readme_example_with_an_unknown_param_fails() {
    // The Quick start's put, with a slip a reader might copy.
    let files = edited("README.md", |readme| {
        readme.replacen(
            "params: { context: src }",
            "params: { context: src, build_arg: {A: b} }",
            1,
        )
    });
    let checked = check_docs(&files);
    assert!(
        checked
            .failures
            .iter()
            .any(|f| f.starts_with("README.md block at line ")
                && f.contains("\"build_arg\" is not a known put param")),
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
    let files = edited("README.md", |readme| {
        readme
            .replacen(
                "    tag: latest\n",
                "    tag: latest\n    insecure_registry: true\n",
                1,
            )
            .replacen(
                "params: { format: rootfs }",
                "params: { fromat: rootfs }",
                1,
            )
    });
    let checked = check_docs(&files);
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

#[test]
fn a_docs_example_with_an_unknown_param_fails_naming_its_file() {
    // The attestations example of docs/put.md, misspelt.
    let files = edited("docs/put.md", |put| {
        put.replacen("    provenance: max\n", "    provenanse: max\n", 1)
    });
    let checked = check_docs(&files);
    assert!(
        checked
            .failures
            .iter()
            .any(|f| f.starts_with("docs/put.md block at line ")
                && f.contains("\"provenanse\" is not a known put param")),
        "an unknown put param in docs/put.md went through: {checked:?}"
    );
}
