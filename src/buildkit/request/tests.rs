use super::*;

#[test]
fn secrets_never_print() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
    let source = SecretSource::Text(s.clone());
    assert!(!format!("{source:?}").contains("hunter2"));
    assert_eq!(s.expose(), "hunter2");
}
