use super::*;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn bump(version: &str, variant: Option<&str>, existing: &[&str]) -> Vec<String> {
    let params = TagParams {
        version: Some(version.into()),
        bump_aliases: true,
        ..Default::default()
    };
    plan(None, variant, &params, &strings(existing))
        .unwrap()
        .tags
}

// registry-image's `out` tagging rules (docs/put.md, "Tags").
#[test]
fn bump_aliases_follow_registry_image() {
    assert_eq!(bump("1.2.3", None, &["1.3.0"]), strings(&["1.2.3", "1.2"]));
    assert_eq!(
        bump("1.2.3", None, &["2.0.0"]),
        strings(&["1.2.3", "1", "1.2"])
    );
    assert_eq!(bump("1.2.3", None, &["1.2.4"]), strings(&["1.2.3"]));
    assert_eq!(
        bump("1.2.3", None, &[]),
        strings(&["1.2.3", "latest", "1", "1.2"])
    );
    assert_eq!(
        bump("1.2.3", Some("lts"), &["1.3.0"]),
        strings(&["1.2.3-lts", "lts", "1-lts", "1.2-lts"])
    );
    assert_eq!(
        bump("1.2.3", Some("lts"), &["1.3.0-lts"]),
        strings(&["1.2.3-lts", "1.2-lts"])
    );
    assert_eq!(bump("1.2.3-rc.1", None, &[]), strings(&["1.2.3-rc.1"]));
    // Equal versions, aliases, prereleases and junk never block.
    assert_eq!(
        bump(
            "v1.2.3",
            None,
            &["1.2.3", "1.2", "1", "latest", "2.0.0-rc.1", "some-branch"]
        ),
        strings(&["1.2.3", "latest", "1", "1.2"])
    );
}

#[test]
fn order_and_sources() {
    let params = TagParams {
        tag_file: Some("from-file".into()),
        version: Some("2".into()),
        additional_tags: strings(&["a", "latest"]),
        tag_as_latest: true,
        ..Default::default()
    };
    let p = plan(Some("dev"), None, &params, &[]).unwrap();
    assert_eq!(p.tags, strings(&["from-file", "2.0.0", "a", "latest"]));
    assert!(!p.defaulted_to_latest);
    let p = plan(Some("dev"), None, &TagParams::default(), &[]).unwrap();
    assert_eq!(p.tags, strings(&["dev"]));
    let p = plan(None, None, &TagParams::default(), &[]).unwrap();
    assert_eq!(p.tags, strings(&["latest"]));
    assert!(p.defaulted_to_latest);
}

#[test]
fn bad_inputs_fail_before_pushing() {
    let params = TagParams {
        version: Some("hoogily-boogily".into()),
        ..Default::default()
    };
    let err = plan(None, None, &params, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid semantic version: \"hoogily-boogily\""
    );
    let params = TagParams {
        version: Some("1.0.0+build.5".into()),
        ..Default::default()
    };
    assert!(matches!(
        plan(None, None, &params, &[]),
        Err(TagError::InvalidTag {
            from: "version",
            ..
        })
    ));
    let params = TagParams {
        additional_tags: strings(&["no/slash"]),
        ..Default::default()
    };
    let err = plan(None, None, &params, &[]).unwrap_err();
    assert!(
        matches!(
            &err,
            TagError::InvalidTag {
                from: "additional_tags",
                ..
            }
        ),
        "{err:?}"
    );
}

/// The tags a put pushes and the one it reports, for `source`
/// (`tag`, `tag_regex`, `variant`) and the tag params.
fn reported(
    source_tag: Option<&str>,
    regex: Option<&str>,
    variant: Option<&str>,
    params: TagParams,
) -> (Vec<String>, String) {
    let tags = plan(source_tag, variant, &params, &[]).unwrap().tags;
    let mode = match (source_tag, regex) {
        (Some(t), _) => CheckMode::Tag(t.into()),
        (None, Some(re)) => CheckMode::Regex(regex::Regex::new(re).unwrap()),
        (None, None) => CheckMode::Semver,
    };
    let semver = SemverOptions {
        variant,
        constraint: None,
        pre_releases: false,
        pre_release_prefixes: &[],
    };
    let tag = reported_tag(&tags, &mode, &semver).to_string();
    (tags, tag)
}

fn p(
    tag_file: Option<&str>,
    version: Option<&str>,
    bump: bool,
    additional: &[&str],
    latest: bool,
) -> TagParams {
    TagParams {
        tag_file: tag_file.map(String::from),
        version: version.map(String::from),
        bump_aliases: bump,
        additional_tags: strings(additional),
        tag_as_latest: latest,
    }
}

/// One row: source.tag, tag_regex, variant, the tag params, the tags
/// pushed, and the tag the version reports.
type Case<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    TagParams,
    &'a [&'a str],
    &'a str,
);

/// docs/put.md, "Output": the version is the tag `check` would report for
/// the pushed digest, for every combination of the tag params.
#[test]
fn reported_tag_is_what_check_reports() {
    let none = || p(None, None, false, &[], false);
    #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            // Tag mode: source.tag whenever it was pushed.
            (Some("dev"), None, None, none(), &["dev"], "dev"),
            (Some("latest"), None, None, p(Some("1.4"), None, false, &[], true), &["1.4", "latest"], "latest"),
            (Some("dev"), None, None, p(Some("1.4"), None, false, &[], false), &["1.4"], "1.4"),
            (Some("dev"), None, None, p(Some("dev"), None, false, &["x"], false), &["dev", "x"], "dev"),
            (Some("dev"), None, None, p(None, Some("1.2.3"), false, &[], false), &["dev", "1.2.3"], "dev"),
            (Some("latest"), None, None, p(None, Some("1.2.3"), true, &[], false), &["latest", "1.2.3", "1", "1.2"], "latest"),
            (Some("1"), None, None, p(None, Some("1.2.3"), true, &[], false), &["1", "1.2.3", "latest", "1.2"], "1"),
            (Some("stable"), None, None, p(Some("f"), None, false, &["stable"], false), &["f", "stable"], "stable"),
            (Some("main"), None, None, p(None, None, false, &[], true), &["main", "latest"], "main"),
            // Tag mode, source.tag not pushed: check does not see this image; the first tag.
            (Some("dev"), None, None, p(Some("f"), Some("2"), false, &["a"], true), &["f", "2.0.0", "a", "latest"], "f"),
            // Semver mode: the most specific final version pushed.
            (None, None, None, none(), &["latest"], "latest"),
            (None, None, None, p(None, Some("1.2.3"), false, &[], false), &["1.2.3"], "1.2.3"),
            (None, None, None, p(None, Some("v1.2"), true, &[], true), &["1.2.0", "latest", "1", "1.2"], "1.2.0"),
            (None, None, None, p(Some("build-7"), Some("1.2.3"), false, &[], false), &["build-7", "1.2.3"], "1.2.3"),
            (None, None, None, p(Some("1.2"), None, false, &["1.2.3", "x"], false), &["1.2", "1.2.3", "x"], "1.2.3"),
            (None, None, None, p(Some("build-7"), None, false, &[], true), &["build-7", "latest"], "latest"),
            (None, None, None, p(Some("build-7"), None, false, &["x"], false), &["build-7", "x"], "build-7"),
            (None, None, None, p(None, Some("2.0.0-rc.1"), false, &[], true), &["2.0.0-rc.1", "latest"], "latest"),
            (None, None, Some("lts"), p(None, Some("1.2.3"), true, &[], false), &["1.2.3-lts", "lts", "1-lts", "1.2-lts"], "1.2.3-lts"),
            (None, None, Some("lts"), p(Some("x"), None, false, &["lts"], false), &["x", "lts"], "lts"),
            // Regex mode: the first pushed tag the regex matches.
            (None, Some("^v"), None, p(Some("build-7"), None, false, &["v2", "v3"], false), &["build-7", "v2", "v3"], "v2"),
            (None, Some("^v"), None, p(Some("build-7"), None, false, &[], true), &["build-7", "latest"], "build-7"),
        ];
    for (tag, regex, variant, params, pushed, want) in cases {
        let what =
            format!("source.tag {tag:?}, tag_regex {regex:?}, variant {variant:?}, {params:?}");
        let (tags, got) = reported(tag, regex, variant, params);
        assert_eq!(tags, strings(pushed), "{what}");
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn cache_tag_may_not_be_seen_by_check() {
    let semver = |variant| SemverOptions {
        variant,
        constraint: None,
        pre_releases: false,
        pre_release_prefixes: &[],
    };
    let pushed = strings(&["1.2.3", "latest"]);
    let check = |cache: &str, mode: &CheckMode, variant| {
        check_cache_tag(cache, &pushed, mode, &semver(variant)).map_err(|e| e.to_string())
    };
    let tag = CheckMode::Tag("dev".into());
    let all = CheckMode::Regex(regex::Regex::new(".*").unwrap());
    assert!(check("buildcache", &CheckMode::Semver, None).is_ok());
    assert!(check("buildcache", &tag, None).is_ok());
    // Regex mode: check skips cache manifests by their content instead.
    assert!(check("buildcache", &all, None).is_ok());
    let err = check("latest", &all, None).unwrap_err();
    assert!(err.contains("also a tag this put pushes"), "{err}");
    assert!(check("dev", &tag, None).unwrap_err().contains("source.tag"));
    assert!(
        check("2.0", &CheckMode::Semver, None)
            .unwrap_err()
            .contains("version tag")
    );
    assert!(check("2.0", &tag, None).is_ok());
    assert!(check("2.0-cache", &CheckMode::Semver, None).is_ok());
    let err = check("1.0.0-lts", &CheckMode::Semver, Some("lts")).unwrap_err();
    assert!(err.contains("version tag"), "{err}");
    let err = check("lts", &CheckMode::Semver, Some("lts")).unwrap_err();
    assert!(
        err.contains("source.variant") && err.contains("choose another cache_tag"),
        "{err}"
    );
}

#[test]
fn tag_list_is_needed_only_for_bump_aliases() {
    let mut p = TagParams {
        version: Some("1".into()),
        ..Default::default()
    };
    assert!(!needs_tag_list(&p));
    p.bump_aliases = true;
    assert!(needs_tag_list(&p));
}
