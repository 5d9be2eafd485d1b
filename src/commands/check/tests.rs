use super::*;
use crate::config::semver::Constraint;

fn d(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

/// Runs semver mode over `tags` given as (tag, digest number).
fn run_semver(
    tags: &[(&str, u8)],
    options: SemverOptions<'_>,
    cursor: Option<Version>,
) -> (Vec<String>, Vec<String>) {
    let map: HashMap<String, String> = tags.iter().map(|(t, n)| (t.to_string(), d(*n))).collect();
    let looked = std::sync::Mutex::new(Vec::new());
    let list = tags.iter().map(|(t, _)| t.to_string()).collect();
    let out = futures::executor::block_on(semver_versions(list, &options, cursor.as_ref(), |t| {
        looked.lock().unwrap().push(t.clone());
        let r = map.get(&t).cloned();
        async move { Ok(r) }
    }))
    .unwrap();
    (
        out.into_iter().map(|v| v.tag).collect(),
        looked.into_inner().unwrap(),
    )
}

fn opts() -> SemverOptions<'static> {
    SemverOptions {
        variant: None,
        constraint: None,
        pre_releases: false,
        pre_release_prefixes: &[],
    }
}

#[test]
fn mixed_specificity_dedups_to_most_specific() {
    let tags = [
        ("1", 1),
        ("2", 2),
        ("2.1", 2),
        ("latest", 9),
        ("3", 9),
        ("3.2", 9),
        ("3.2.1", 9),
        ("3.1", 8),
        ("3.1.0", 8),
        ("3.0", 7),
        ("3.0.0", 7),
    ];
    // registry-image: `1, 2.1, 3.0.0, 3.1.0, 3.2.1` (latest == 3.2.1 dropped)
    assert_eq!(
        run_semver(&tags, opts(), None).0,
        ["1", "2.1", "3.0.0", "3.1.0", "3.2.1"]
    );
}

#[test]
fn bare_tag_only_without_any_semver_tag() {
    // registry-image would report `1.0.0, latest` here (registry-image#316, #351).
    let (out, looked) = run_semver(
        &[("1.0.0", 1), ("non-semver", 2), ("latest", 3)],
        opts(),
        None,
    );
    assert_eq!(out, ["1.0.0"]);
    assert_eq!(
        looked,
        ["1.0.0"],
        "the bare tag is not looked up needlessly"
    );
    let (out, _) = run_semver(&[("non-semver", 2), ("latest", 3)], opts(), None);
    assert_eq!(out, ["latest"]);
    let c = Constraint::parse("1.x").unwrap();
    let (out, _) = run_semver(
        &[("latest", 3)],
        SemverOptions {
            constraint: Some(&c),
            ..opts()
        },
        None,
    );
    assert!(out.is_empty());
    let (out, _) = run_semver(&[("x", 3)], opts(), None);
    assert!(out.is_empty());
}

#[test]
fn variant() {
    let tags = [
        ("foo", 1),
        ("1.0.0-foo", 2),
        ("0.9.0-foo", 3),
        ("bar", 4),
        ("1.0.0-bar", 5),
        ("1.0.0", 6),
    ];
    let o = SemverOptions {
        variant: Some("foo"),
        ..opts()
    };
    assert_eq!(run_semver(&tags, o, None).0, ["0.9.0-foo", "1.0.0-foo"]);
    let (out, _) = run_semver(&[("foo", 1), ("1.0.0", 2)], o, None);
    assert_eq!(out, ["foo"]);
}

#[test]
fn constraint_keeps_original_text() {
    let c = Constraint::parse("1.2.x").unwrap();
    let tags = [
        ("1.0.0", 1),
        ("1.2.1", 2),
        ("1.2.2", 3),
        ("v1.2.3", 4),
        ("2.0.0", 5),
        ("latest", 6),
    ];
    let o = SemverOptions {
        constraint: Some(&c),
        ..opts()
    };
    assert_eq!(run_semver(&tags, o, None).0, ["1.2.1", "1.2.2", "v1.2.3"]);
}

#[test]
fn cursor() {
    let tags = [("1.0.0", 1), ("1.2.1", 2), ("2.0.0", 3)];
    let cursor = Version {
        tag: "1.2.1".into(),
        digest: d(2),
    };
    let (out, looked) = run_semver(&tags, opts(), Some(cursor));
    assert_eq!(out, ["1.2.1", "2.0.0"]);
    assert!(
        !looked.contains(&"1.0.0".to_string()),
        "older tags are not looked up"
    );
    let moved = Version {
        tag: "1.2.1".into(),
        digest: d(7),
    };
    assert_eq!(
        run_semver(&tags, opts(), Some(moved)).0,
        ["1.0.0", "1.2.1", "2.0.0"]
    );
    // `1.2` equals cursor `1.2.0` and is skipped
    let tags = [("1.2", 1), ("1.2.0", 2), ("1.3.0", 3)];
    let cursor = Version {
        tag: "1.2.0".into(),
        digest: d(2),
    };
    assert_eq!(
        run_semver(&tags, opts(), Some(cursor)).0,
        ["1.2.0", "1.3.0"]
    );
}

#[test]
fn prereleases() {
    let tags = [
        ("1.0.0-alpha.1", 1),
        ("1.0.0-beta.1", 2),
        ("1.0.0-rc.1", 3),
        ("1.0.0-foo.1", 4),
        ("0.9.0", 5),
    ];
    assert_eq!(run_semver(&tags, opts(), None).0, ["0.9.0"]);
    let o = SemverOptions {
        pre_releases: true,
        ..opts()
    };
    assert_eq!(
        run_semver(&tags, o, None).0,
        ["0.9.0", "1.0.0-alpha.1", "1.0.0-beta.1", "1.0.0-rc.1"]
    );
    // same digest: the final release wins, then the more specific tag
    let tags = [
        ("1.0.0-rc.1", 1),
        ("1.0.0-rc1", 1),
        ("1.0.0-rc", 1),
        ("1.0.0", 1),
    ];
    assert_eq!(run_semver(&tags, o, None).0, ["1.0.0"]);
    let tags = [("1.0.0-rc", 1), ("1.0.0-rc.2", 1)];
    assert_eq!(run_semver(&tags, o, None).0, ["1.0.0-rc.2"]);
    let prefixes = ["build".to_string()];
    let o2 = SemverOptions {
        pre_releases: true,
        pre_release_prefixes: &prefixes,
        ..opts()
    };
    let tags = [("2.0.0-rc.1", 1), ("2.0.0-build.1", 2)];
    assert_eq!(
        run_semver(&tags, o2, None).0,
        ["2.0.0-build.1", "2.0.0-rc.1"]
    );
}

#[test]
fn variant_and_prereleases() {
    let tags = [
        ("1.0.0-foo", 1),
        ("1.0.0-rc.1-foo", 2),
        ("1.0.0-bar-foo", 3),
        ("1.0.0-rc.1-bar-foo", 4),
    ];
    let o = SemverOptions {
        variant: Some("foo"),
        pre_releases: true,
        ..opts()
    };
    assert_eq!(
        run_semver(&tags, o, None).0,
        ["1.0.0-rc.1-foo", "1.0.0-foo"]
    );
    let prefixes = ["alpha".to_string()];
    let o = SemverOptions {
        pre_release_prefixes: &prefixes,
        ..o
    };
    assert_eq!(
        run_semver(&tags, o, None).0,
        ["1.0.0-rc.1-foo", "1.0.0-rc.1-bar-foo", "1.0.0-foo"]
    );
}

#[test]
fn vanished_tags_are_skipped() {
    let map: HashMap<String, String> = [("1.0.0".to_string(), d(1))].into();
    let list = vec!["1.0.0".to_string(), "2.0.0".to_string()];
    let out = futures::executor::block_on(semver_versions(list, &opts(), None, |t| {
        let r = map.get(&t).cloned();
        async move { Ok(r) }
    }))
    .unwrap();
    assert_eq!(
        out,
        [Version {
            tag: "1.0.0".into(),
            digest: d(1)
        }]
    );
}
