//! The request JSON of `check`, `in` and `out` (src/concourse.rs,
//! src/config/*), including the `put` params decoder with its file reads.
//!
//! Input: one selector byte (check, in, out), then the request bytes as
//! Concourse would write them to stdin. For `out`, the params are decoded
//! against a source dir holding the files params may name. Asserted:
//! - a secret (`password`, `key`, AWS keys, at any depth) of 8 or more
//!   characters that the input holds only once never shows up in an error
//!   or in the decoded request's `Debug`;
//! - no error quotes the tail of a file (a file's text is quoted by a short
//!   excerpt only), and nothing is read from a file outside the source dir,
//!   even through a symlink.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use oci_build_resource::concourse::{CheckRequest, InRequest, OutRequest};
use oci_build_resource::config::put::{Env, PutParams};
use serde_json::Value;

/// In every file of the source dir, after the first 24 characters: an
/// error that shows it quoted more than a short excerpt.
const FILE_TAIL_MARKER: &str = "FILE-TAIL-MARKER";
/// In the file outside the source dir (reachable by `../outside.txt` and by
/// the `escape` symlink): must never be read.
const OUTSIDE_MARKER: &str = "OUTSIDE-MARKER";

/// Keys whose values are secrets (src/config/source.rs, `Shape::Secret`).
const SECRET_KEYS: [&str; 4] = [
    "password",
    "key",
    "aws_secret_access_key",
    "aws_session_token",
];

struct Fixture {
    _dir: tempfile::TempDir,
    src: PathBuf,
}

/// The put's source dir, made once per process: every small file a param
/// can point at, in each format, with the tail marker after 24 characters.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = super::fixture_dir("request");
        let src = dir.path().join("src");
        let pad = "# twenty-four characters\n";
        let files: [(&str, String); 9] = [
            (
                "Dockerfile",
                format!("{pad}FROM scratch # {FILE_TAIL_MARKER}\n"),
            ),
            (
                "ctx/Dockerfile",
                format!("{pad}FROM scratch # {FILE_TAIL_MARKER}\n"),
            ),
            ("args.env", format!("{pad}A=1\nB={FILE_TAIL_MARKER}\n")),
            ("args.yml", format!("{pad}A: 1\nB: {FILE_TAIL_MARKER}\n")),
            (
                "labels.json",
                format!("{{\"a\": \"{pad}\", \"b\": \"{FILE_TAIL_MARKER}\"}}"),
            ),
            ("tags", format!("{pad}v1 {FILE_TAIL_MARKER}\n")),
            ("target", format!("{pad}{FILE_TAIL_MARKER}\n")),
            ("bad-args", format!("{pad}not a pair {FILE_TAIL_MARKER}\n")),
            ("image/index.json", format!("{pad}{FILE_TAIL_MARKER}")),
        ];
        for (name, text) in files {
            let path = src.join(name);
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(path, text).expect("writing a fixture file");
        }
        std::fs::write(
            dir.path().join("outside.txt"),
            format!("{OUTSIDE_MARKER} A=1\n"),
        )
        .expect("writing outside.txt");
        std::os::unix::fs::symlink("../outside.txt", src.join("escape")).expect("symlink");
        std::os::unix::fs::symlink("/etc", src.join("etc")).expect("symlink");
        Fixture { _dir: dir, src }
    })
}

/// Secret values of 8+ characters that occur once in the input.
fn secrets(value: &Value, raw: &[u8], out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let lower = k.to_ascii_lowercase();
                if SECRET_KEYS.contains(&lower.as_str()) {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => String::new(),
                    };
                    let once = raw
                        .windows(text.len().max(1))
                        .filter(|w| *w == text.as_bytes())
                        .count()
                        == 1;
                    if text.len() >= 8 && once {
                        out.push(text);
                    }
                }
                secrets(v, raw, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| secrets(v, raw, out)),
        _ => {}
    }
}

/// What a decoded request or error must not show: the secrets, and the
/// markers unless the input itself spells them.
struct Forbidden {
    secrets: Vec<String>,
    markers: Vec<&'static str>,
}

fn assert_clean(what: &str, text: &str, forbidden: &Forbidden) {
    for s in &forbidden.secrets {
        assert!(!text.contains(s.as_str()), "{what} shows a secret: {text}");
    }
    for m in &forbidden.markers {
        assert!(!text.contains(m), "{what} shows {m}: {text}");
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&selector, raw)) = data.split_first() else {
        return;
    };
    let mut forbidden = Forbidden {
        secrets: Vec::new(),
        markers: Vec::new(),
    };
    if let Ok(value) = serde_json::from_slice::<Value>(raw) {
        secrets(&value, raw, &mut forbidden.secrets);
    }
    let lower = String::from_utf8_lossy(raw).to_ascii_lowercase();
    for marker in [FILE_TAIL_MARKER, OUTSIDE_MARKER] {
        if !lower.contains(&marker.to_ascii_lowercase()) {
            forbidden.markers.push(marker);
        }
    }
    match selector % 3 {
        0 => match CheckRequest::from_json(raw) {
            Ok(r) => assert_clean("check request", &format!("{r:?}"), &forbidden),
            Err(e) => assert_clean("check error", &chain(&e), &forbidden),
        },
        1 => match InRequest::from_json(raw) {
            Ok(r) => assert_clean("in request", &format!("{r:?}"), &forbidden),
            Err(e) => assert_clean("in error", &chain(&e), &forbidden),
        },
        _ => match OutRequest::from_json(raw) {
            Ok(r) => {
                assert_clean("out request source", &format!("{:?}", r.source), &forbidden);
                put_params(&r.params, &forbidden);
            }
            Err(e) => assert_clean("out error", &chain(&e), &forbidden),
        },
    }
}

fn put_params(params: &Value, forbidden: &Forbidden) {
    let fixture = fixture();
    let var = |name: &str| match name {
        "BUILD_ID" => Some("42".to_owned()),
        "BUILD_PIPELINE_NAME" => Some("pipe".to_owned()),
        "HOME" => Some("/root".to_owned()),
        _ => None,
    };
    let env = Env {
        src_dir: Path::new(&fixture.src),
        var: &var,
    };
    match PutParams::from_value(params, &env) {
        // Decoded params carry what files said (build args, tags), but
        // never anything from outside the source dir.
        Ok(p) => {
            let text = format!("{p:?}");
            if forbidden.markers.contains(&OUTSIDE_MARKER) {
                assert!(
                    !text.contains(OUTSIDE_MARKER),
                    "params read a file outside the source dir: {text}"
                );
            }
        }
        Err(e) => assert_clean("params error", &chain(&e), forbidden),
    }
}
