//! Black-box tests of `check`: the binary runs as a process with the request
//! on stdin, against real `docker-registry` instances, and its answer is
//! compared with what `skopeo` sees (digests are sha256 of the manifest bytes
//! `skopeo inspect --raw` prints). Cases follow registry-image's behaviour
//! (docs/source.md, "Versions reported by `check`"), except where
//! docs/migrating.md, "Differences from registry-image", says otherwise.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::support::cmd::{self, Output};
use crate::support::{fixtures, registry, unique};

fn check(request: &Value) -> Output {
    cmd::run("check", &[], request, &[])
}

/// Runs check and returns its versions as (tag, digest) pairs.
#[track_caller]
fn versions(request: &Value) -> Vec<(String, String)> {
    let out = check(request);
    out.expect_success();
    let json = out.json();
    let list = json
        .as_array()
        .unwrap_or_else(|| panic!("check must print an array\n{}", out.details()));
    list.iter()
        .map(|v| {
            let obj = v.as_object().expect("each version is an object");
            assert_eq!(obj.len(), 2, "a version has exactly tag and digest: {v}");
            (
                v["tag"].as_str().expect("tag is a string").to_string(),
                v["digest"]
                    .as_str()
                    .expect("digest is a string")
                    .to_string(),
            )
        })
        .collect()
}

/// Expected versions from tag names and the digests the fixture pushed.
fn expected(tags: &[&str], digests: &HashMap<String, String>) -> Vec<(String, String)> {
    tags.iter()
        .map(|t| (t.to_string(), digests[*t].clone()))
        .collect()
}

fn source_with(repo: &str, extra: Value) -> Value {
    let mut source = registry::plain().source(repo);
    for (k, v) in extra.as_object().expect("extra is an object") {
        source[k] = v.clone();
    }
    source
}

// ---- tag mode ----

#[test]
fn tag_mode_reports_the_digest_skopeo_sees() {
    let reg = registry::plain();
    let (repo, digests) = fixtures::tags(reg, "check-tag", &["latest"], &[], &[]);
    let out =
        check(&json!({"source": source_with(&repo, json!({"tag": "latest"})), "version": null}));
    out.expect_success();
    assert_eq!(
        out.json(),
        json!([{"tag": "latest", "digest": digests["latest"]}])
    );
    assert_eq!(digests["latest"], reg.digest_of(&format!("{repo}:latest")));
    assert!(
        out.stdout.ends_with('\n'),
        "one JSON line ending in a newline"
    );
}

#[test]
fn tag_mode_reports_the_index_digest_of_a_multi_platform_image() {
    let reg = registry::plain();
    let multi = fixtures::multi_platform(reg);
    let got =
        versions(&json!({"source": source_with(&multi.pushed.repo, json!({"tag": "multi"}))}));
    assert_eq!(got, [("multi".to_string(), multi.pushed.digest.clone())]);
    assert!(
        multi
            .children
            .iter()
            .all(|c| c.digest != multi.pushed.digest),
        "the index digest is not a child's"
    );
}

#[test]
fn tag_mode_reports_the_previous_digest_while_it_still_exists() {
    let reg = registry::plain();
    let (repo, digests) = fixtures::tags(reg, "check-cursor", &["old", "new"], &[], &[]);
    reg.retag(&repo, "new", "latest");
    let source = source_with(&repo, json!({"tag": "latest"}));
    let (old, new) = (digests["old"].clone(), digests["new"].clone());
    let got = versions(&json!({"source": source, "version": {"tag": "latest", "digest": old}}));
    assert_eq!(
        got,
        [
            ("latest".to_string(), old.clone()),
            ("latest".to_string(), new.clone())
        ]
    );
    // The current digest as cursor: only itself.
    let got = versions(&json!({"source": source, "version": {"tag": "latest", "digest": new}}));
    assert_eq!(got, [("latest".to_string(), new.clone())]);
    // The version's tag is ignored; an empty one still yields the tag.
    let got = versions(&json!({"source": source, "version": {"tag": "", "digest": new}}));
    assert_eq!(got, [("latest".to_string(), new.clone())]);
    // A digest the registry never had: only the current one.
    let bogus = format!("sha256:{}", "0".repeat(64));
    let got = versions(&json!({"source": source, "version": {"tag": "latest", "digest": bogus}}));
    assert_eq!(got, [("latest".to_string(), new.clone())]);
    // Once the old manifest is deleted: only the current one.
    reg.delete(&format!("{repo}@{old}"));
    let got = versions(&json!({"source": source, "version": {"tag": "latest", "digest": old}}));
    assert_eq!(got, [("latest".to_string(), new)]);
}

#[test]
fn tag_mode_missing_tag_is_an_empty_list() {
    // registry-image#32: a tag that does not exist yet is not an error.
    let reg = registry::plain();
    let (repo, digests) = fixtures::tags(reg, "check-missing", &["other"], &[], &[]);
    let source = source_with(&repo, json!({"tag": "nope"}));
    let out = check(&json!({"source": source}));
    out.expect_success();
    assert_eq!(out.stdout, "[]\n");
    let with_version =
        json!({"source": source, "version": {"tag": "nope", "digest": digests["other"]}});
    assert_eq!(versions(&with_version), []);
    // A repository that does not exist at all behaves the same in tag mode.
    let absent = source_with(&unique("check-no-such-repo"), json!({"tag": "latest"}));
    assert_eq!(versions(&json!({"source": absent})), []);
}

#[test]
fn tag_given_as_a_number_is_kept_as_its_text() {
    let reg = registry::plain();
    let (repo, digests) = fixtures::tags(reg, "check-number", &["42", "1.5"], &[], &[]);
    let got = versions(&json!({"source": source_with(&repo, json!({"tag": 42}))}));
    assert_eq!(got, expected(&["42"], &digests));
    let got = versions(&json!({"source": source_with(&repo, json!({"tag": 1.5}))}));
    assert_eq!(got, expected(&["1.5"], &digests));
}

#[test]
fn keys_match_case_insensitively_and_zero_values_mean_unset() {
    let reg = registry::plain();
    let (repo, digests) = fixtures::tags(reg, "check-case", &["latest"], &[], &[]);
    // The upstream suite sends capitalised top-level keys; Go matches any case.
    let request = json!({
        "Source": {"Repository": reg.repo(&repo), "TAG": "latest", "insecure": false,
                   "username": "", "password": "", "tag_regex": null, "variant": "", "debug": false},
        "Version": null,
    });
    assert_eq!(versions(&request), expected(&["latest"], &digests));
}

// ---- request errors ----

#[test]
fn unknown_field_is_rejected_with_a_suggestion() {
    let source =
        json!({"repository": registry::plain().repo("x"), "tag": "latest", "repositroy": "typo"});
    let out = check(&json!({"source": source}));
    out.expect_failure().expect_error(
        "invalid payload: json: unknown field \"repositroy\" in source (did you mean \"repository\"?)",
    );
    // docker-image migrants' key (registry-image#29).
    let source =
        json!({"repository": registry::plain().repo("x"), "insecure_registries": ["a:5000"]});
    check(&json!({"source": source})).expect_failure().expect_error(
        "invalid payload: json: unknown field \"insecure_registries\" in source (did you mean \"insecure\"?)",
    );
    // Unknown top-level keys too.
    let out = check(&json!({"source": {"repository": "x"}, "params": {}}));
    out.expect_failure()
        .expect_error("invalid payload: json: unknown field \"params\" in request");
}

#[test]
fn malformed_payload_is_rejected() {
    let out = cmd::run_raw("check", &[], b"{\"source\": ", &[], "truncated JSON");
    out.expect_failure().expect_error(
        "invalid payload: request is not valid JSON: EOF while parsing a value at line 1 column 11",
    );
    let out = check(&json!({"source": {"repository": "x", "tag": ["not", "a", "string"]}}));
    out.expect_failure().expect_error(
        "invalid payload: source.tag: expected a string or a number, got [\"not\",\"a\",\"string\"]",
    );
}

#[test]
fn missing_repository_is_rejected() {
    let out = check(&json!({"source": {"tag": "latest"}}));
    out.expect_failure()
        .expect_error("invalid payload: source.repository is required");
}

#[test]
fn invalid_regex_is_rejected() {
    let source = source_with("x", json!({"tag_regex": "gr(a|e"}));
    check(&json!({"source": source}))
        .expect_failure()
        .expect_stderr("invalid regex pattern");
}

#[test]
fn bad_ca_cert_is_rejected() {
    let source = source_with(
        "x",
        json!({"tag": "latest", "ca_certs": ["not a certificate"]}),
    );
    check(&json!({"source": source}))
        .expect_failure()
        .expect_stderr("failed to append registry certificate");
}

#[test]
fn unsupported_cloud_auth_is_rejected_by_name() {
    let source = source_with("x", json!({"tag": "latest", "azure_acr": true}));
    check(&json!({"source": source}))
        .expect_failure()
        .expect_error(
            "invalid payload: source.azure_acr (ACR authentication) is not supported yet",
        );
}

#[test]
fn unreachable_registry_fails_naming_the_repository() {
    // Nothing listens on port 1.
    let source = json!({"repository": "127.0.0.1:1/nowhere", "tag": "latest"});
    check(&json!({"source": source}))
        .expect_failure()
        .expect_stderr("checking origin 127.0.0.1:1/nowhere failed");
}

// ---- TLS and auth ----

#[test]
fn tls_registry_with_ca_certs_and_credentials() {
    let reg = registry::tls_auth();
    let base = fixtures::busybox(reg);
    let mut source = reg.source(&base.repo);
    source["tag"] = json!(base.tag);
    let out = check(&json!({"source": source}));
    out.expect_success()
        .expect_not_leaked(reg.password.as_deref().expect("password"));
    assert_eq!(
        out.json(),
        json!([{"tag": base.tag, "digest": base.digest}])
    );
}

#[test]
fn tls_registry_without_ca_certs_fails_on_the_certificate() {
    let reg = registry::tls_auth();
    let base = fixtures::busybox(reg);
    let mut source = reg.source(&base.repo);
    source["tag"] = json!(base.tag);
    source.as_object_mut().expect("object").remove("ca_certs");
    let out = check(&json!({"source": source}));
    out.expect_failure()
        .expect_not_leaked(reg.password.as_deref().expect("password"));
    assert!(
        out.stderr.to_lowercase().contains("certificate"),
        "the error names the certificate problem\n{}",
        out.details()
    );
}

#[test]
fn wrong_password_fails_without_printing_it() {
    let reg = registry::tls_auth();
    let base = fixtures::busybox(reg);
    let wrong = format!("wrong-{}", unique("pw"));
    let mut source = reg.source(&base.repo);
    source["tag"] = json!(base.tag);
    source["password"] = json!(wrong);
    let out = check(&json!({"source": source}));
    out.expect_failure()
        .expect_not_leaked(&wrong)
        .expect_stderr("checking origin");
    let lower = out.stderr.to_lowercase();
    assert!(
        lower.contains("401") || lower.contains("unauthorized"),
        "the error says the registry refused the credentials\n{}",
        out.details()
    );
    assert!(
        out.stderr.contains(&base.repository),
        "the error names the repository\n{}",
        out.details()
    );
}

#[test]
fn anonymous_access_to_an_auth_registry_fails() {
    let reg = registry::tls_auth();
    let base = fixtures::busybox(reg);
    let mut source = reg.source(&base.repo);
    source["tag"] = json!(base.tag);
    // Credentials are used only when both are non-empty.
    source["password"] = json!("");
    check(&json!({"source": source})).expect_failure();
}

// ---- semver mode ----

#[test]
fn semver_cursor_returns_it_and_newer_versions() {
    let reg = registry::plain();
    let (repo, d) = fixtures::tags(reg, "semver-cursor", &["1.0.0", "1.2.1", "2.0.0"], &[], &[]);
    let source = source_with(&repo, json!({}));
    let all = expected(&["1.0.0", "1.2.1", "2.0.0"], &d);
    assert_eq!(versions(&json!({"source": source})), all);
    let cursor = json!({"source": source, "version": {"tag": "1.2.1", "digest": d["1.2.1"]}});
    assert_eq!(versions(&cursor), expected(&["1.2.1", "2.0.0"], &d));
    // The cursor's digest no longer matches its tag: the full list.
    let moved = json!({"source": source, "version": {"tag": "1.2.1", "digest": d["1.0.0"]}});
    assert_eq!(versions(&moved), all);
}

#[test]
fn semver_mixed_specificity_keeps_the_most_specific_tag_per_digest() {
    let reg = registry::plain();
    let (repo, d) = fixtures::tags(
        reg,
        "semver-specific",
        &["1", "2.1", "3.2.1", "3.1.0", "3.0.0"],
        &[
            ("2", "2.1"),
            ("3", "3.2.1"),
            ("3.2", "3.2.1"),
            ("latest", "3.2.1"),
            ("3.1", "3.1.0"),
            ("3.0", "3.0.0"),
        ],
        &[],
    );
    let got = versions(&json!({"source": source_with(&repo, json!({}))}));
    assert_eq!(got, expected(&["1", "2.1", "3.0.0", "3.1.0", "3.2.1"], &d));
}

#[test]
fn semver_bare_latest_only_when_no_semver_tag_exists() {
    // Differs from registry-image (registry-image#316, #351): there a
    // `latest` whose digest differs from every semver tag is appended last
    // and so becomes "newest".
    let reg = registry::plain();
    let (repo, d) = fixtures::tags(
        reg,
        "semver-latest",
        &["1.0.0", "non-semver", "latest"],
        &[],
        &[],
    );
    let got = versions(&json!({"source": source_with(&repo, json!({}))}));
    assert_eq!(got, expected(&["1.0.0"], &d));
    let got = versions(&json!({"source": source_with(&repo, json!({"semver_constraint": "1.x"}))}));
    assert_eq!(got, expected(&["1.0.0"], &d));
    // Only non-semver tags and `latest`: `latest` is the version.
    let (repo, d) = fixtures::tags(
        reg,
        "semver-only-latest",
        &["non-semver", "latest"],
        &[],
        &[],
    );
    let got = versions(&json!({"source": source_with(&repo, json!({}))}));
    assert_eq!(got, expected(&["latest"], &d));
    // No tags matching at all: empty.
    let (repo, _) = fixtures::tags(reg, "semver-none", &["non-semver"], &[], &[]);
    assert_eq!(
        versions(&json!({"source": source_with(&repo, json!({}))})),
        []
    );
}

#[test]
fn semver_constraint_filters_and_keeps_the_original_tag_text() {
    let reg = registry::plain();
    let (repo, d) = fixtures::tags(
        reg,
        "semver-constraint",
        &["1.0.0", "1.2.1", "1.2.2", "v1.2.3", "2.0.0", "latest"],
        &[],
        &[],
    );
    let got =
        versions(&json!({"source": source_with(&repo, json!({"semver_constraint": "1.2.x"}))}));
    assert_eq!(got, expected(&["1.2.1", "1.2.2", "v1.2.3"], &d));
    let got = versions(
        &json!({"source": source_with(&repo, json!({"semver_constraint": ">= 1.2 < 3.0.0 || >= 4.2.3"}))}),
    );
    assert_eq!(got, expected(&["1.2.1", "1.2.2", "v1.2.3", "2.0.0"], &d));
}

#[test]
fn semver_invalid_constraint_is_rejected() {
    let source = source_with("x", json!({"semver_constraint": "not a constraint"}));
    check(&json!({"source": source}))
        .expect_failure()
        .expect_stderr("semver_constraint");
}

#[test]
fn semver_prereleases_are_opt_in_and_limited_to_known_prefixes() {
    let reg = registry::plain();
    let (repo, d) = fixtures::tags(
        reg,
        "semver-pre",
        &[
            "1.0.0-alpha.1",
            "1.0.0-beta.1",
            "1.0.0-rc.1",
            "1.0.0-foo.1",
            "1.0.0",
        ],
        &[],
        &[],
    );
    let got = versions(&json!({"source": source_with(&repo, json!({}))}));
    assert_eq!(got, expected(&["1.0.0"], &d));
    let got = versions(&json!({"source": source_with(&repo, json!({"pre_releases": true}))}));
    assert_eq!(
        got,
        expected(
            &["1.0.0-alpha.1", "1.0.0-beta.1", "1.0.0-rc.1", "1.0.0"],
            &d
        )
    );
}

#[test]
fn semver_final_release_wins_over_prereleases_with_the_same_digest() {
    let reg = registry::plain();
    let (repo, d) = fixtures::tags(
        reg,
        "semver-pre-same",
        &["1.0.0"],
        &[
            ("1.0.0-rc.1", "1.0.0"),
            ("1.0.0-rc1", "1.0.0"),
            ("1.0.0-rc", "1.0.0"),
        ],
        &[],
    );
    let got = versions(&json!({"source": source_with(&repo, json!({"pre_releases": true}))}));
    assert_eq!(got, expected(&["1.0.0"], &d));
}

#[test]
fn semver_custom_prerelease_prefixes() {
    let reg = registry::plain();
    let (repo, d) = fixtures::tags(
        reg,
        "semver-prefix",
        &["2.0.0-rc.1", "2.0.0-build.1"],
        &[],
        &[],
    );
    let got = versions(&json!({"source": source_with(&repo, json!({"pre_releases": true}))}));
    assert_eq!(got, expected(&["2.0.0-rc.1"], &d));
    let got = versions(
        &json!({"source": source_with(&repo, json!({"pre_releases": true, "pre_release_prefixes": ["build"]}))}),
    );
    assert_eq!(got, expected(&["2.0.0-build.1", "2.0.0-rc.1"], &d));
}

#[test]
fn semver_variant_selects_suffixed_tags() {
    let reg = registry::plain();
    let (repo, d) = fixtures::tags(
        reg,
        "semver-variant",
        &["1.0.0-foo", "0.9.0-foo", "bar", "1.0.0", "1.1.0-bar"],
        &[("foo", "1.0.0-foo")],
        &[],
    );
    let got = versions(&json!({"source": source_with(&repo, json!({"variant": "foo"}))}));
    assert_eq!(got, expected(&["0.9.0-foo", "1.0.0-foo"], &d));
}

#[test]
fn semver_variant_with_prereleases() {
    let reg = registry::plain();
    let (repo, d) = fixtures::tags(
        reg,
        "semver-variant-pre",
        &[
            "1.0.0-foo",
            "1.0.0-rc.1-foo",
            "1.0.0-bar-foo",
            "1.0.0-rc.1-bar-foo",
        ],
        &[],
        &[],
    );
    let got = versions(
        &json!({"source": source_with(&repo, json!({"variant": "foo", "pre_releases": true}))}),
    );
    assert_eq!(got, expected(&["1.0.0-rc.1-foo", "1.0.0-foo"], &d));
    let got = versions(&json!({"source": source_with(&repo, json!({
        "variant": "foo", "pre_releases": true, "pre_release_prefixes": ["alpha"]
    }))}));
    // `rc.1` < `rc.1-bar` (numeric identifiers sort before alphanumeric ones).
    assert_eq!(
        got,
        expected(&["1.0.0-rc.1-foo", "1.0.0-rc.1-bar-foo", "1.0.0-foo"], &d)
    );
}

#[test]
fn semver_mode_on_a_missing_repository_fails_listing_tags() {
    let source = source_with(&unique("semver-no-repo"), json!({}));
    check(&json!({"source": source}))
        .expect_failure()
        .expect_stderr("list repository tags");
}

// ---- regex mode ----

/// `wanted` in the order the registry lists them (as skopeo sees it).
fn registry_order<'a>(reg: &registry::Registry, repo: &str, wanted: &[&'a str]) -> Vec<&'a str> {
    let listed = reg.tags(repo);
    let mut order: Vec<&str> = wanted.to_vec();
    order.sort_by_key(|t| listed.iter().position(|l| l == t).expect("tag is listed"));
    order
}

#[test]
fn regex_mode_keeps_matching_tags_in_registry_order() {
    let reg = registry::plain();
    let (repo, d) = fixtures::tags(reg, "regex", &["grey", "gray", "green", "1.0.0"], &[], &[]);
    // semver options are ignored in regex mode.
    let source = source_with(
        &repo,
        json!({"tag_regex": "gr(a|e)y", "semver_constraint": "1.x"}),
    );
    let got = versions(&json!({"source": source}));
    // docker-registry lists tags in storage (directory) order, not sorted.
    let order = registry_order(reg, &repo, &["gray", "grey"]);
    assert_eq!(got, expected(&order, &d));
    // The version is ignored: always the full matching set.
    let with_version = json!({"source": source, "version": {"tag": "grey", "digest": d["grey"]}});
    assert_eq!(versions(&with_version), expected(&order, &d));
    // Unanchored search.
    let got = versions(&json!({"source": source_with(&repo, json!({"tag_regex": "re"}))}));
    let order = registry_order(reg, &repo, &["green", "grey"]);
    assert_eq!(got, expected(&order, &d));
}

#[test]
fn regex_mode_created_at_sort_orders_oldest_first() {
    let reg = registry::plain();
    let (repo, d) = fixtures::tags(
        reg,
        "regex-created",
        &["gem-1337", "gem-1338", "gem-182", "other"],
        &[],
        &[
            "2024-01-01T05:00:00Z",
            "2024-01-01T04:00:00Z",
            "2024-01-01T00:00:00Z",
            "2024-01-01T06:00:00Z",
        ],
    );
    let unsorted = versions(&json!({"source": source_with(&repo, json!({"tag_regex": "^gem-"}))}));
    let order = registry_order(reg, &repo, &["gem-1337", "gem-1338", "gem-182"]);
    assert_eq!(unsorted, expected(&order, &d));
    let sorted = versions(
        &json!({"source": source_with(&repo, json!({"tag_regex": "^gem-", "created_at_sort": true}))}),
    );
    assert_eq!(sorted, expected(&["gem-182", "gem-1338", "gem-1337"], &d));
}

// ---- registry_mirror ----

#[test]
fn mirror_is_not_used_for_repositories_outside_docker_hub() {
    let reg = registry::plain();
    let (repo, d) = fixtures::tags(reg, "check-mirror-unused", &["latest"], &[], &[]);
    // A mirror that records connections: it must see none.
    let mirror = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a fake mirror");
    let host = mirror.local_addr().expect("address").to_string();
    let source = source_with(
        &repo,
        json!({"tag": "latest", "registry_mirror": {"host": host}}),
    );
    assert_eq!(
        versions(&json!({"source": source})),
        expected(&["latest"], &d)
    );
    mirror.set_nonblocking(true).expect("nonblocking");
    match mirror.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the mirror was contacted: {other:?}"),
    }
}

#[test]
fn mirror_serves_docker_hub_repositories_with_the_library_namespace() {
    // No internet here: the origin (Docker Hub) is unreachable, so success
    // means the mirror answered, under `library/<name>`.
    let reg = registry::plain();
    let name = unique("check-mirror-hub");
    let d = fixtures::tags_in(reg, &format!("library/{name}"), &["latest"], &[], &[]);
    let source =
        json!({"repository": name, "tag": "latest", "registry_mirror": {"host": reg.host}});
    let got = versions(&json!({"source": source}));
    assert_eq!(got, expected(&["latest"], &d));
}

// ---- request pattern (through a recording proxy) ----

#[test]
fn check_uses_head_for_digests_and_never_retries() {
    let reg = registry::plain();
    let (repo, d) = fixtures::tags(reg, "check-head", &["latest"], &[], &[]);
    let proxy = crate::support::proxy::Proxy::start(&reg.host);
    let source = json!({"repository": format!("{}/{repo}", proxy.host), "tag": "latest"});
    assert_eq!(
        versions(&json!({"source": source})),
        expected(&["latest"], &d)
    );
    let requests = proxy.requests();
    // registry-image#3 / Docker Hub pull limits: HEAD, no manifest GET.
    assert!(
        requests.contains(&format!("HEAD /v2/{repo}/manifests/latest")),
        "{requests:?}"
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with("GET") && r.contains("/manifests/")),
        "no manifest GET when HEAD gives the digest: {requests:?}"
    );
    // 429 on both HEAD and the GET fallback: check fails at once (no retries).
    proxy.fail(None, "/manifests/", 2, 429);
    let out = check(&json!({"source": source}));
    out.expect_failure().expect_stderr("checking origin");
    assert!(
        out.stderr.contains("429") || out.stderr.contains("TOOMANYREQUESTS"),
        "the error says the registry throttled\n{}",
        out.details()
    );
    assert!(
        !out.stderr.contains("transient error"),
        "check does not retry\n{}",
        out.details()
    );
}
