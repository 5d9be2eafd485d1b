use super::*;

#[test]
fn grammar() {
    for good in [
        "latest",
        "1.2.3",
        "_x",
        "A-b_c.d",
        "9",
        &"a".repeat(MAX_LEN),
    ] {
        assert!(is_valid(good), "{good}");
    }
    for bad in [
        "",
        ".x",
        "-x",
        "no/slash",
        "a:b",
        "ü",
        "a b",
        &"a".repeat(MAX_LEN + 1),
    ] {
        assert!(!is_valid(bad), "{bad}");
    }
}
