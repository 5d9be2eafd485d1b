use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "BUILD_ID" => Some("42".into()),
        "BUILD_TEAM_NAME" => Some("main".into()),
        _ => None,
    }
}

#[test]
fn expands_only_the_metadata_vars() {
    assert_eq!(expand_metadata("id-$BUILD_ID", &env), "id-42");
    assert_eq!(expand_metadata("${BUILD_ID}x", &env), "42x");
    assert_eq!(expand_metadata("$BUILD_IDX", &env), "$BUILD_IDX");
    assert_eq!(expand_metadata("$HOME/${HOME}", &env), "$HOME/${HOME}");
    assert_eq!(expand_metadata("$BUILD_NAME.", &env), ".");
    assert_eq!(
        expand_metadata("t=$BUILD_TEAM_NAME ü $", &env),
        "t=main ü $"
    );
    assert_eq!(expand_metadata("${BUILD_ID", &env), "${BUILD_ID");
}

#[test]
fn key_value_lines_keep_values_verbatim() {
    let got = parse_key_values(Path::new("args"), "a=1\n\n# comment\nb= two = 2 \r\nc=\n").unwrap();
    assert_eq!(
        got,
        vec![
            ("a".into(), "1".into()),
            ("b".into(), " two = 2 ".into()),
            ("c".into(), "".into())
        ]
    );
}

#[test]
fn key_value_line_without_equals_names_the_line() {
    let err = parse_key_values(Path::new("args"), "a=1\nnope\n").unwrap_err();
    assert_eq!(err.line, Some(2));
}

#[test]
fn yaml_and_json_files_are_mappings() {
    let yaml = parse_key_values(Path::new("a.yaml"), "a: |\n  multi\n  line\nb: 3\n").unwrap();
    assert_eq!(
        yaml,
        vec![
            ("a".into(), "multi\nline\n".into()),
            ("b".into(), "3".into())
        ]
    );
    // docker-image's JSON, without a telling extension.
    let json = parse_key_values(Path::new("args"), r#"{"x": "y", "n": 1.5}"#).unwrap();
    assert_eq!(
        json,
        vec![("x".into(), "y".into()), ("n".into(), "1.5".into())]
    );
    assert!(parse_key_values(Path::new("a.json"), "[1]").is_err());
}
