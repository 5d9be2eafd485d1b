use super::*;

fn m(patterns: &[&str], path: &str) -> bool {
    PatternMatcher::new(patterns)
        .expect("valid patterns")
        .matches_or_parent_matches(path)
}

#[test]
fn literal_and_parent_matches() {
    assert!(m(&["ignored.txt"], "ignored.txt"));
    assert!(!m(&["ignored.txt"], "sub/ignored.txt"));
    assert!(m(&["sub"], "sub/deep/file"));
    assert!(m(&["./sub/"], "sub/x"));
    assert!(!m(&["sub"], "subway"));
}

#[test]
fn single_star_does_not_cross_directories() {
    assert!(m(&["*.log"], "a.log"));
    assert!(!m(&["*.log"], "dir/a.log"));
    assert!(m(&["*/a.log"], "dir/a.log"));
    assert!(m(&["a?c"], "abc"));
    assert!(!m(&["a?c"], "a/c"));
}

#[test]
fn double_star_forms() {
    assert!(m(&["**/*.log"], "a.log"));
    assert!(m(&["**/*.log"], "x/y/a.log"));
    assert!(m(&["**/foo"], "foo"));
    assert!(m(&["**/foo"], "a/b/foo"));
    assert!(m(&["a/**/b"], "a/b"));
    assert!(m(&["a/**/b"], "a/x/y/b"));
    assert!(m(&["a**"], "abc/d"));
    assert!(m(&["**"], "anything/at/all"));
    assert!(m(&["dir/**"], "dir/x"));
}

#[test]
fn exceptions_and_last_match_wins() {
    let pats = ["**/*.log", "!sub/keep.log"];
    assert!(m(&pats, "a.log"));
    assert!(m(&pats, "sub/other.log"));
    assert!(!m(&pats, "sub/keep.log"));
    assert!(m(&["*", "!keep", "keep"], "keep"));
}

#[test]
fn regex_metacharacters_are_literal() {
    assert!(m(&["a+b(1).txt"], "a+b(1).txt"));
    assert!(!m(&["a.txt"], "abtxt"));
    assert!(m(&["file[0-9]"], "file7"));
    assert!(m(&["\\*star"], "*star"));
}

#[test]
fn unicode_names() {
    assert!(m(&["données/*.csv"], "données/été.csv"));
    assert!(m(&["?.txt"], "é.txt"));
    assert!(m(&["日本/**"], "日本/語/ファイル"));
}

#[test]
fn long_paths() {
    let deep: Vec<String> = (0..200).map(|i| format!("d{i}")).collect();
    let path = deep.join("/") + "/file.bin";
    assert!(m(&["d0"], &path));
    assert!(m(&["**/file.bin"], &path));
    assert!(!m(&["d1"], &path));
}

#[test]
fn invalid_patterns_are_errors() {
    assert!(PatternMatcher::new(&["!"]).is_err());
    assert!(PatternMatcher::new(&["[abc"]).is_err());
    assert!(
        PatternMatcher::new(&["", "  "])
            .expect("blank ok")
            .is_empty()
    );
}

#[test]
fn parent_results_agree_with_full_matching() {
    let pm = PatternMatcher::new(&["a", "!a/b", "a/b/c"]).expect("valid");
    let (m_a, info_a) = pm.matches_using_parent("a", &MatchInfo::default());
    let (m_ab, info_ab) = pm.matches_using_parent("a/b", &info_a);
    let (m_abc, _) = pm.matches_using_parent("a/b/c", &info_ab);
    let (m_abd, _) = pm.matches_using_parent("a/b/d", &info_ab);
    assert!(m_a && !m_ab && m_abc && !m_abd);
    assert_eq!(m_abc, pm.matches_or_parent_matches("a/b/c"));
    assert_eq!(m_abd, pm.matches_or_parent_matches("a/b/d"));
}

#[test]
fn clean_path_like_go() {
    assert_eq!(clean_path("./a//b/../c/"), "a/c");
    assert_eq!(clean_path("/a/.."), "/");
    assert_eq!(clean_path("../x"), "../x");
    assert_eq!(clean_path(""), ".");
}
