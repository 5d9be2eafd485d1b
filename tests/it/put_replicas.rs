//! `source.replicate_to`: one put pushes the same image (same digest, same
//! tags) to the main repository (the TLS registry, with credentials and a
//! CA) and to replicas on the plain registry, reached through the fault
//! proxy, whose request log shows how each blob got there.

use serde_json::{Value, json};

use crate::put::{Src, metadata, registry_digest};
use crate::support;
use crate::support::fault_proxy::{Fault, FaultProxy, Rule};

/// A one-layer image as an OCI layout under `src/img` (umoci).
fn image_in(src: &Src, name: &str) {
    let layout = support::fixtures::Layout::new(name);
    let file = src.path().join("hello");
    std::fs::write(&file, format!("hello from {name}\n")).expect("write");
    layout.insert(&file, "/hello");
    support::run_tool(
        std::process::Command::new("cp")
            .arg("-r")
            .arg(&layout.dir)
            .arg(src.path().join("img")),
    );
}

fn replica(host: &str, repo: &str) -> Value {
    json!({"repository": format!("{host}/{repo}"), "insecure": true})
}

#[test]
fn every_repository_gets_the_image_and_the_tags_each_blob_once() {
    let main = support::registry::tls_auth();
    let plain = support::registry::plain();
    let proxy = FaultProxy::start(&plain.host);
    let (repo, b, c) = (
        support::unique("repl-main"),
        support::unique("repl-b"),
        support::unique("repl-c"),
    );
    let src = Src::new(&[("tags", "latest\n")]);
    image_in(&src, "repl-one");
    let mut source = main.source(&repo);
    source["tag"] = json!("1.0");
    source["debug"] = json!(true);
    source["replicate_to"] = json!([replica(&proxy.host, &b), replica(&proxy.host, &c)]);
    let run = support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": {"image": "img", "additional_tags": "tags"}}),
        &[],
    );
    run.expect_success()
        .expect_not_leaked(main.password.as_deref().unwrap_or("-"));
    let resp = run.json();
    let digest = resp["version"]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    assert_eq!(
        metadata(&resp, "replicas"),
        Some(format!("{0}/{b} {0}/{c}", proxy.host))
    );
    for tag in ["1.0", "latest"] {
        assert_eq!(
            registry_digest(main, &format!("{repo}:{tag}")).as_deref(),
            Some(digest.as_str())
        );
        for r in [&b, &c] {
            assert_eq!(
                registry_digest(plain, &format!("{r}:{tag}")).as_deref(),
                Some(digest.as_str()),
                "{r}:{tag}"
            );
        }
    }
    // b got each blob (a config and a layer) by upload, once; c mounted
    // both from b, on the same registry, and uploaded nothing.
    let requests = proxy.requests();
    let uploads = |r: &str| {
        requests
            .iter()
            .filter(|q| q.starts_with(&format!("POST /v2/{r}/blobs/uploads/")))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(uploads(&b).len(), 2, "{requests:#?}");
    assert!(
        uploads(&b).iter().all(|q| !q.contains("mount=")),
        "{requests:#?}"
    );
    assert_eq!(uploads(&c).len(), 2, "{requests:#?}");
    assert!(
        uploads(&c).iter().all(|q| q.contains(&format!("from={b}"))),
        "{requests:#?}"
    );
    assert!(
        !requests
            .iter()
            .any(|q| q.starts_with("PATCH") && q.contains(&format!("/v2/{c}/"))),
        "{requests:#?}"
    );
    // Every manifest everywhere before any tag anywhere: the first PUT
    // under a tag comes after the last PUT by digest.
    let puts: Vec<&String> = requests
        .iter()
        .filter(|q| q.starts_with("PUT") && q.contains("/manifests/"))
        .collect();
    let last_by_digest = puts
        .iter()
        .rposition(|q| q.contains("/manifests/sha256:"))
        .expect("by digest");
    let first_tag = puts
        .iter()
        .position(|q| !q.contains("/manifests/sha256:"))
        .expect("tags");
    assert!(last_by_digest < first_tag, "{puts:#?}");

    // check and get read only `repository`.
    let versions = support::cmd::run("check", &[], &json!({"source": source}), &[])
        .expect_success()
        .json();
    assert_eq!(versions, json!([{"tag": "1.0", "digest": digest}]));
    let before = proxy.requests().len();
    let dest = tempfile::tempdir().expect("dir");
    support::cmd::run(
        "in",
        &[dest.path()],
        &json!({"source": source, "version": {"tag": "1.0", "digest": digest},
            "params": {"skip_download": true}}),
        &[],
    )
    .expect_success();
    assert_eq!(
        proxy.requests().len(),
        before,
        "check or get reached a replica"
    );
}

#[test]
fn a_failing_replica_fails_the_put_names_it_and_moves_no_tag() {
    let main = support::registry::tls_auth();
    let plain = support::registry::plain();
    let proxy = FaultProxy::start(&plain.host);
    let (repo, good, bad) = (
        support::unique("repl-main"),
        support::unique("repl-good"),
        support::unique("repl-bad"),
    );
    // The second replica refuses its image manifest (not a transient error).
    proxy.inject(Rule::new(
        Some("PUT"),
        &format!("^/v2/{bad}/manifests/sha256:"),
        Fault::Status {
            status: 400,
            retry_after: None,
        },
    ));
    let src = Src::new(&[]);
    image_in(&src, "repl-two");
    let mut source = main.source(&repo);
    source["tag"] = json!("1.0");
    source["replicate_to"] = json!([replica(&plain.host, &good), replica(&proxy.host, &bad)]);
    let run = support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": {"image": "img"}}),
        &[],
    );
    run.expect_failure()
        .expect_stderr(&format!("replica {}/{bad}", proxy.host));
    assert_eq!(proxy.fired().len(), 1, "{}", run.details());
    assert_eq!(registry_digest(main, &format!("{repo}:1.0")), None);
    assert_eq!(registry_digest(plain, &format!("{good}:1.0")), None);
    assert_eq!(registry_digest(plain, &format!("{bad}:1.0")), None);
}

#[test]
fn a_bad_replica_entry_is_refused_naming_it() {
    let main = support::registry::plain();
    let src = Src::new(&[]);
    let mut source = main.source("never-pushed");
    source["replicate_to"] = json!([{"repository": "x.example/ok"}, {"username": "u"}]);
    support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": {"image": "img"}}),
        &[],
    )
    .expect_failure()
    .expect_stderr("source.replicate_to[1]")
    .expect_stderr("needs a repository");
}

crate::support::needs! { buildkitd;
    /// A build on the embedded buildkitd: BuildKit pushes by digest to the
    /// main repository, we copy and tag. The same build again is unchanged
    /// (only its provenance's invocation differs): the tags stay on the
    /// first index everywhere.
    #[test]
    fn a_build_on_the_embedded_buildkitd_lands_in_every_repository() {
        let plain = support::registry::plain();
        let (repo, copy) = (support::unique("repl-build"), support::unique("repl-build-copy"));
        let src = Src::new(&[
            ("ctx/Dockerfile", "FROM scratch\nCOPY hello /\n"),
            ("ctx/hello", "hello\n"),
        ]);
        let mut source = plain.source(&repo);
        source["tag"] = json!("1.0");
        source["replicate_to"] = json!([replica(&plain.host, &copy)]);
        let request = json!({"source": source, "params": {"context": "ctx", "source_date_epoch": 0}});
        let path = support::buildkitd::path_env();
        let first = support::cmd::run("out", &[src.path()], &request, &[("PATH", &path)]);
        first.expect_success();
        let digest = first.json()["version"]["digest"].as_str().expect("digest").to_string();
        for r in [&repo, &copy] {
            assert_eq!(
                registry_digest(plain, &format!("{r}:1.0")).as_deref(),
                Some(digest.as_str()),
                "{r}"
            );
        }
        let again = support::cmd::run("out", &[src.path()], &request, &[("PATH", &path)]);
        again.expect_success().expect_stderr("the tags stay on it");
        assert_eq!(again.json()["version"]["digest"].as_str(), Some(digest.as_str()));
        assert_eq!(registry_digest(plain, &format!("{copy}:1.0")).as_deref(), Some(digest.as_str()));
    }
}
