use super::*;
use serde_json::json;

const INNER: Shape = Shape::Object(&[("host", Shape::Leaf), ("username", Shape::Leaf)]);
const OUTER: Shape = Shape::Object(&[
    ("tag", Shape::Leaf),
    ("insecure", Shape::Leaf),
    ("registry_mirror", INNER),
    ("list", Shape::List(&INNER)),
]);

#[test]
fn keys_fold_case_at_every_level() {
    let v = canonicalize(
        json!({"TAG": "x", "Registry_Mirror": {"HOST": "h"}, "list": [{"UserName": "u"}]}),
        &OUTER,
        "source",
    )
    .unwrap();
    assert_eq!(
        v,
        json!({"tag": "x", "registry_mirror": {"host": "h"}, "list": [{"username": "u"}]})
    );
}

#[test]
fn exact_spelling_wins_over_folded() {
    let v = canonicalize(json!({"Tag": "folded", "tag": "exact"}), &OUTER, "source").unwrap();
    assert_eq!(v, json!({"tag": "exact"}));
}

#[test]
fn numbers_at_given_paths_keep_their_text() {
    let parse =
        |text: &str| parse_keeping_number_text(text.as_bytes(), &[&["source", "tag"]]).unwrap();
    assert_eq!(
        parse(r#"{"source": {"tag": 42.10, "other": 42.10}}"#),
        json!({"source": {"tag": "42.10", "other": 42.1}})
    );
    assert_eq!(
        parse(r#"{"Source": {"TAG": 1e2}}"#),
        json!({"Source": {"TAG": "1e2"}})
    );
    assert_eq!(
        parse(r#"{"source": {"Tag": 1.50, "tag": 7}}"#),
        json!({"source": {"Tag": 1.5, "tag": "7"}}),
        "the exact spelling wins, as in canonicalize"
    );
    assert_eq!(
        parse(r#"{"source": {"tag": null, "Tag": -0.10}}"#),
        json!({"source": {"tag": null, "Tag": "-0.10"}}),
        "null members are skipped, as in canonicalize"
    );
    assert_eq!(
        parse(r#"{"source": {"tag": 1.0, "tag": 2.50}}"#),
        json!({"source": {"tag": "2.50"}}),
        "the last duplicate counts, as in serde_json"
    );
    for unchanged in [
        r#"{"source": {"tag": "1.10"}}"#,
        r#"{"source": {"tag": true}}"#,
        r#"{"source": "x"}"#,
        r#"[1, 2]"#,
    ] {
        assert_eq!(
            parse(unchanged),
            serde_json::from_str::<Value>(unchanged).unwrap()
        );
    }
    assert!(parse_keeping_number_text(b"{", &[&["source", "tag"]]).is_err());
}

#[test]
fn nulls_are_dropped() {
    let v = canonicalize(json!({"tag": null, "registry_mirror": null}), &OUTER, "s").unwrap();
    assert_eq!(v, json!({}));
}

#[test]
fn unknown_field_names_path_and_suggestion() {
    let err = canonicalize(json!({"insecure_registries": ["a"]}), &OUTER, "source")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        r#"json: unknown field "insecure_registries" in source (did you mean "insecure"?)"#
    );
    let err = canonicalize(json!({"registry_mirror": {"hots": "h"}}), &OUTER, "source")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        r#"json: unknown field "hots" in source.registry_mirror (did you mean "host"?)"#
    );
    let err = canonicalize(json!({"zzzzzz": 1}), &OUTER, "source")
        .unwrap_err()
        .to_string();
    assert_eq!(err, r#"json: unknown field "zzzzzz" in source"#);
}
