use super::*;

#[test]
fn versions_parse_leniently() {
    assert_eq!(semver_of("v0.12.5"), Some(semver::Version::new(0, 12, 5)));
    assert_eq!(
        semver_of("v0.13.0-rc1"),
        semver::Version::parse("0.13.0-rc1").ok()
    );
    assert_eq!(semver_of("v0.23.0+unknown").map(|v| v.minor), Some(23));
}
