//! Build-args and labels files (src/config/put/files.rs).
//!
//! Input: one selector byte that picks the file name (and so the format:
//! `k=v` lines, YAML or JSON), then the file's text (lossy UTF-8, as a user
//! file read with `read_to_string` could not be anything else but UTF-8).
//! Asserted: `k=v` names are non-empty and hold no whitespace or `=`; an
//! error quotes at most a short excerpt of the file; the metadata expansion
//! changes nothing without a `$` and expands only the known variables;
//! `excerpt` stays short.

use std::path::Path;

use oci_build_resource::config::put::files::{
    METADATA_VARS, excerpt, expand_metadata, parse_key_values,
};

const NAMES: [&str; 6] = [
    "build-args",
    "labels.env",
    "args.yml",
    "labels.YAML",
    "args.json",
    "labels",
];

/// The longest an error about a file may be: a fixed text plus one excerpt
/// (24 characters, each escaped to at most 10).
const MAX_PROBLEM_CHARS: usize = 160 + 24 * 10;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let name = NAMES[selector as usize % NAMES.len()];
    let text = String::from_utf8_lossy(rest);
    let structured = name.ends_with(".yml")
        || name.ends_with(".YAML")
        || name.ends_with(".json")
        || text.trim_start().starts_with('{');
    match parse_key_values(Path::new(name), &text) {
        Ok(pairs) if !structured => {
            for (key, _) in &pairs {
                assert!(!key.is_empty(), "empty name accepted");
                assert!(
                    !key.contains(char::is_whitespace) && !key.contains('='),
                    "name {key:?} accepted"
                );
            }
        }
        Ok(_) => {}
        Err(problem) => {
            let chars = problem.problem.chars().count();
            assert!(
                chars <= MAX_PROBLEM_CHARS,
                "the error quotes {chars} characters of the file: {:?}",
                problem.problem
            );
            if let Some(line) = problem.line {
                assert!(line >= 1, "line numbers are 1-based");
            }
        }
    }

    // Expansion: only the listed variables, each once, to a fixed value.
    let lookup = |name: &str| Some(format!("<{name}>"));
    let expanded = expand_metadata(&text, &lookup);
    if !text.contains('$') {
        assert_eq!(expanded, text, "text without `$` was changed");
    }
    let none = |_: &str| None;
    let emptied = expand_metadata(&text, &none);
    assert!(
        emptied.len() <= text.len(),
        "expanding unset variables made the text longer"
    );
    for var in METADATA_VARS {
        let bare = format!("${var}");
        let braced = format!("${{{var}}}");
        if !text.contains(&bare) && !text.contains(&braced) {
            assert!(
                !expanded.contains(&format!("<{var}>")) || text.contains(&format!("<{var}>")),
                "{var} was expanded though the text does not name it"
            );
        }
    }

    let quoted = excerpt(&text);
    assert!(
        quoted.chars().count() <= 3 + 24 * 10,
        "excerpt is {} characters long",
        quoted.chars().count()
    );
}
