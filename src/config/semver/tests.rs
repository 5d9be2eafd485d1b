use super::*;

fn v(s: &str) -> Version {
    Version::parse_loose(s).unwrap()
}

fn m(c: &str, s: &str) -> bool {
    Constraint::parse(c).unwrap().matches(&v(s))
}

#[test]
fn loose_parsing() {
    assert_eq!(v("1").triple(), (1, 0, 0));
    assert_eq!(v("v1.2").triple(), (1, 2, 0));
    assert_eq!(v("1.2.3-rc.1+build").pre, "rc.1");
    assert_eq!(v("1.0.0-rc.1-foo").pre, "rc.1-foo");
    for bad in [
        "latest",
        "1.2.3.4",
        "1..2",
        "1.2-",
        "x1",
        "",
        "v",
        "1.2.3-a..b",
        "1.0.0-01",
    ] {
        assert!(Version::parse_loose(bad).is_none(), "{bad}");
    }
}

// The two parsers this one replaced disagreed on `V1.2.3`; Masterminds
// (registry-image) accepts only a lower-case `v`.
#[test]
fn loose_versions_normalise_as_registry_image() {
    let norm = |s: &str| Version::parse_loose(s).map(|v| v.to_string());
    assert_eq!(norm("v1.2.3").as_deref(), Some("1.2.3"));
    assert_eq!(norm("V1.2.3"), None);
    assert_eq!(norm("1.2").as_deref(), Some("1.2.0"));
    assert_eq!(norm("v1.2").as_deref(), Some("1.2.0"));
    assert_eq!(norm("1").as_deref(), Some("1.0.0"));
    assert_eq!(norm("1.0.0-rc.1").as_deref(), Some("1.0.0-rc.1"));
    assert_eq!(norm("1.0.0-rc.0+b.01").as_deref(), Some("1.0.0-rc.0+b.01"));
    assert_eq!(norm("01.2.3").as_deref(), Some("1.2.3"));
    assert_eq!(norm(" 1.2.3"), None);
    for bad in ["hoogily-boogily", "1.2.3.4", "latest", "vv1"] {
        assert_eq!(norm(bad), None, "{bad}");
    }
}

#[test]
fn precedence() {
    let mut vs = [
        "1.0.0",
        "1.0.0-rc.1",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-beta.11",
        "1.0.0-beta.2",
        "0.9",
    ]
    .map(v)
    .to_vec();
    vs.sort();
    let got: Vec<String> = vs
        .iter()
        .map(|x| {
            format!(
                "{}.{}.{}{}",
                x.major,
                x.minor,
                x.patch,
                if x.pre.is_empty() {
                    String::new()
                } else {
                    format!("-{}", x.pre)
                }
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "0.9.0",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0"
        ]
    );
    assert_eq!(v("1.2").cmp(&v("1.2.0")), Ordering::Equal);
    assert_eq!(v("1.2.0+a").cmp(&v("1.2.0+b")), Ordering::Equal);
}

#[test]
fn constraints() {
    assert!(
        m("1.2.x", "1.2.1") && m("1.2.x", "v1.2.3") && !m("1.2.x", "1.3.0") && !m("1.2.x", "1.0.0")
    );
    assert!(m("~1.2.3", "1.2.9") && !m("~1.2.3", "1.3.0") && !m("~1.2.3", "1.2.2"));
    assert!(m("~1", "1.9.0") && !m("~1", "2.0.0"));
    assert!(m("^1.2", "1.9.0") && !m("^1.2", "2.0.0") && !m("^1.2", "1.1.0"));
    assert!(m("^0.2.3", "0.2.9") && !m("^0.2.3", "0.3.0"));
    assert!(m("^0.0.3", "0.0.3") && !m("^0.0.3", "0.0.4"));
    let c = ">= 1.2 < 3.0.0 || >= 4.2.3";
    assert!(m(c, "1.2.0") && m(c, "2.9.9") && !m(c, "3.0.0") && !m(c, "4.2.2") && m(c, "5.0.0"));
    assert!(m(">=1.0, <2", "1.5.0") && !m(">=1.0, <2", "2.0.0"));
    assert!(m("!=1.2.3", "1.2.4") && !m("!=1.2.3", "1.2.3"));
    assert!(m("1.2.3", "1.2.3") && !m("=1.2.3", "1.2.4"));
    assert!(m("*", "7.0.0"));
    assert!(m(">1.2", "1.3.0") && !m(">1.2", "1.2.5"));
}

#[test]
fn prereleases_need_a_prerelease_in_the_constraint() {
    assert!(!m(">=1.0.0", "2.0.0-rc.1"));
    assert!(m(">=1.0.0-0", "2.0.0-rc.1"));
    assert!(!m(">=1.0.0-0 || >=1.0.0", "0.9.0-rc.1"));
}

#[test]
fn bad_constraints() {
    for bad in [">>1", "", "1.2.3.4", ">=", "abc"] {
        assert!(Constraint::parse(bad).is_err(), "{bad}");
    }
}
