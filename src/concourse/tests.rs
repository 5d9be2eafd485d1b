use super::*;

#[test]
fn numeric_tags_keep_their_literal_text() {
    let r = CheckRequest::from_json(br#"{"source": {"repository": "a", "tag": 42.10}}"#).unwrap();
    assert_eq!(r.source.tag.as_deref(), Some("42.10"));
    let r = InRequest::from_json(
        br#"{"SOURCE": {"repository": "a", "Tag": 7}, "version": {"digest": "sha256:x"}}"#,
    )
    .unwrap();
    assert_eq!(r.source.tag.as_deref(), Some("7"));
    let r = OutRequest::from_json(br#"{"source": {"repository": "a", "tag": 1.0}}"#).unwrap();
    assert_eq!(r.source.tag.as_deref(), Some("1.0"));
}

#[test]
fn capitalised_top_level_keys_and_null_version() {
    let r =
        CheckRequest::from_json(br#"{"Source": {"repository": "a"}, "Version": null}"#).unwrap();
    assert_eq!(r.source.repository.path, "library/a");
    assert_eq!(r.version, None);
    let r = CheckRequest::from_json(
        br#"{"source": {"repository": "a"}, "version": {"Tag": "t", "digest": "sha256:x"}}"#,
    )
    .unwrap();
    assert_eq!(r.version.unwrap().tag, "t");
}

#[test]
fn in_request_needs_version_and_decodes_params() {
    let r = InRequest::from_json(
            br#"{"source": {"repository": "a"}, "Params": {"format": "oci"}, "version": {"digest": "sha256:x"}}"#,
        )
        .unwrap();
    assert_eq!(r.params.format, config::Format::Oci);
    assert_eq!(r.version.tag, "");
    let err = InRequest::from_json(br#"{"source": {"repository": "a"}}"#).unwrap_err();
    assert_eq!(err.to_string(), r#"missing field "version""#);
}

#[test]
fn out_params_keep_their_case() {
    let r = OutRequest::from_json(
        br#"{"source": {"repository": "a"}, "params": {"BUILD_ARG_Foo": "x"}}"#,
    )
    .unwrap();
    assert_eq!(r.params["BUILD_ARG_Foo"], "x");
}

#[test]
fn unknown_top_level_and_version_fields() {
    let err = CheckRequest::from_json(br#"{"source": {"repository": "a"}, "params": {}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(r#"json: unknown field "params" in request"#),
        "{err}"
    );
    let err = CheckRequest::from_json(
        br#"{"source": {"repository": "a"}, "version": {"tag": "t", "digets": "x"}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(r#"did you mean "digest""#), "{err}");
    let err = CheckRequest::from_json(b"not json")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "request is not valid JSON");
    let err = CheckRequest::from_json(b"[]").unwrap_err().to_string();
    assert_eq!(err, "request: expected a JSON object, got an array");
}
