use super::*;

/// Every form of a remembered credential, and any Bearer or Basic
/// credential, is scrubbed; benign words survive.
#[test]
fn scrubs_every_credential_form() {
    use base64::Engine as _;
    remember_basic("scrub-user", "pa\"ss-Wörd-4711");
    remember("tok.en-abcdefghijklmnop-4711");
    let b64 = base64::engine::general_purpose::STANDARD.encode("scrub-user:pa\"ss-Wörd-4711");
    let text = format!(
        "plain pa\"ss-Wörd-4711 json pa\\\"ss-Wörd-4711 basic {b64} header Basic {b64} \
             token tok.en-abcdefghijklmnop-4711 jwt Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig \
             other Basic {} challenge Bearer realm=\"https://auth\" basic auth failed",
        base64::engine::general_purpose::STANDARD.encode("someone:else")
    );
    let out = scrub(&text);
    for leaked in [
        "ss-Wörd-4711",
        b64.trim_end_matches('='),
        "abcdefghijklmnop",
        "eyJhbGciOiJIUzI1NiJ9",
        "c29tZW9uZTplbHNl",
    ] {
        assert!(!out.contains(leaked), "{leaked:?} in {out}");
    }
    assert!(out.contains("Bearer realm=\"https://auth\""), "{out}");
    assert!(out.contains("basic auth failed"), "{out}");
    assert!(out.contains("header Basic <redacted>"), "{out}");
}

#[test]
fn scrub_writer_works_on_whole_lines() {
    remember("split-secret-value-0815");
    let mut out = Vec::new();
    {
        let mut w = ScrubWriter::new(&mut out);
        w.write_all(b"a split-secr").unwrap();
        w.write_all(b"et-value-0815 b\n\x1b[31mred\r\ttail")
            .unwrap();
    }
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out, "a <redacted> b\n\\u{1b}[31mred\\r\ttail");
}

/// The second guard against echoing a secret of the wrong JSON type,
/// for callers that skip `config::decode`'s shape check.
#[test]
fn wrong_type_error_does_not_echo_the_value() {
    for text in [
        "987654321",
        "-987654321",
        "987654321.5",
        "[987654321]",
        r#"{"987654321": 1}"#,
        "true",
    ] {
        let err = serde_json::from_str::<Secret>(text)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("987654321"), "{err}");
        assert!(err.contains("secret must be a string"), "{err}");
    }
    let s: Secret = serde_json::from_str(r#""pw""#).unwrap();
    assert_eq!(s.expose(), "pw");
}
