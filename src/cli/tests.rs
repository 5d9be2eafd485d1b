use super::*;

/// GitHub's anchor for a README heading: lower-case, punctuation other
/// than `-` and `_` dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn help_points_at_readme_sections_that_exist() {
    let readme = include_str!("../../README.md");
    let anchors: Vec<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    for step in [Step::Check, Step::In, Step::Out] {
        let section = readme_section(step);
        let want = section.strip_prefix("README.md#").expect("a README anchor");
        assert!(
            anchors.iter().any(|a| a == want),
            "{section}: no such heading in README.md"
        );
        assert!(usage(step).contains(section));
        assert!(terminal_notice(step).contains(section));
    }
}

#[test]
fn from_program_uses_the_file_name() {
    for (program, want) in [
        ("/opt/resource/check", Some("check")),
        ("in", Some("in")),
        ("./out", Some("out")),
        ("/opt/resource/oci-build-resource", None),
        ("/opt/out/other", None),
        ("", None),
    ] {
        let got = Step::from_program(OsStr::new(program)).map(Step::name);
        assert_eq!(got, want, "{program}");
    }
}
