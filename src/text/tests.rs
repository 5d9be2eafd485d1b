use super::*;

#[test]
fn escapes_controls() {
    let hostile = "a\u{1b}[2J\u{1b}]8;;http://x\u{7}b\r\nerror: forged\t\u{9b}c\u{7f}";
    assert_eq!(
        escape_line(hostile),
        "a\\u{1b}[2J\\u{1b}]8;;http://x\\u{7}b\\r\\nerror: forged\\t\\u{9b}c\\u{7f}"
    );
    assert_eq!(
        escape_lines(hostile),
        "a\\u{1b}[2J\\u{1b}]8;;http://x\\u{7}b\\r\nerror: forged\t\\u{9b}c\\u{7f}"
    );
    assert_eq!(escape_line_keep_tabs("a\tb\nc\u{1b}"), "a\tb\\nc\\u{1b}");
    assert!(matches!(escape_line("plain ünïcode"), Cow::Borrowed(_)));
    assert!(matches!(escape_lines("two\nlines\t"), Cow::Borrowed(_)));
}
