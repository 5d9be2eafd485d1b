use super::*;

#[test]
fn registry_error_bodies() {
    let (codes, text) =
        error_detail(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#);
    assert_eq!(codes, ["MANIFEST_UNKNOWN"]);
    assert_eq!(text, "MANIFEST_UNKNOWN: manifest unknown");
    assert_eq!(error_detail(b"  oops \n").1, "oops");
}

/// Control characters in a registry's error text (JSON message or plain
/// body) are escaped, so a body cannot forge a line or send a terminal
/// sequence.
#[test]
fn registry_error_text_is_escaped() {
    let (_, text) =
        error_detail(br#"{"errors":[{"code":"DENIED","message":"no\nerror: forged \u001b[2J"}]}"#);
    assert_eq!(text, "DENIED: no\\nerror: forged \\u{1b}[2J");
    let (_, text) = error_detail(b"bad\r\n\x1b]0;title\x07gateway");
    assert_eq!(text, "bad\\r\\n\\u{1b}]0;title\\u{7}gateway");
}
