//! `skip_existing`: a put whose tags all name one image already pushes
//! nothing and starts no daemon. The daemon is a listening TCP socket that
//! must see no connection (`buildkit_host: tcp://...`): when a tag is
//! missing, the same put does reach it (and then fails, as nothing there
//! speaks gRPC), which shows the socket would have seen a skipped put's
//! contact.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::put::{Src, metadata, registry_digest};
use crate::support;

/// A TCP port that accepts and never answers, and says whether anyone
/// connected.
struct DeadDaemon {
    listener: TcpListener,
}

impl DeadDaemon {
    fn new() -> DeadDaemon {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        DeadDaemon { listener }
    }

    fn host(&self) -> String {
        format!("tcp://{}", self.listener.local_addr().expect("addr"))
    }

    fn contacted(&self) -> bool {
        match self.listener.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

#[test]
fn every_tag_present_skips_the_build_and_contacts_no_daemon() {
    let reg = support::registry::tls_auth();
    let repo = support::unique("put-skip");
    let src = Src::new(&[
        ("ctx/Dockerfile", "FROM scratch\nCOPY hello /\n"),
        ("ctx/hello", "hello\n"),
        ("git/ref", "c0ffee1\n"),
        ("tags", "stable\n"),
        ("more-tags", "stable also-new\n"),
    ]);
    let layout = support::fixtures::Layout::new("put-skip");
    copy_dir(&layout.dir, &src.path().join("img"));
    let mut source = reg.source(&repo);
    // Pushed first without a daemon, under the tags the build put would write.
    let pushed = support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": {
            "image": "img", "tag_file": "git/ref", "additional_tags": "tags"}}),
        &[],
    )
    .expect_success()
    .json();
    let digest = pushed["version"]["digest"]
        .as_str()
        .expect("digest")
        .to_string();

    let dead = DeadDaemon::new();
    source["buildkit_host"] = json!(dead.host());
    source["buildkit_timeout"] = json!("2s");
    let build = json!({"context": "ctx", "tag_file": "git/ref", "additional_tags": "tags",
        "skip_existing": true});
    let skipped = support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": build}),
        &[],
    );
    skipped
        .expect_success()
        .expect_stderr("nothing built or pushed");
    let resp = skipped.json();
    assert_eq!(resp["version"]["digest"].as_str(), Some(digest.as_str()));
    assert_eq!(resp["version"]["tag"], "c0ffee1");
    assert_eq!(metadata(&resp, "tags").as_deref(), Some("c0ffee1 stable"));
    assert_eq!(metadata(&resp, "platforms").as_deref(), Some("linux/amd64"));
    assert!(
        !dead.contacted(),
        "the daemon was contacted:\n{}",
        skipped.details()
    );

    // One tag more, which does not exist yet: the build goes ahead and
    // reaches the daemon (which fails it), and no tag moves.
    let mut more = build.clone();
    more["additional_tags"] = json!("more-tags");
    let built = support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": more}),
        &[],
    );
    built
        .expect_failure()
        .expect_stderr("tag also-new does not exist yet");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dead.contacted() {
        assert!(
            Instant::now() < deadline,
            "never contacted:\n{}",
            built.details()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(registry_digest(reg, &format!("{repo}:also-new")), None);
}

#[test]
fn tags_on_two_digests_build_as_usual() {
    let reg = support::registry::plain();
    let repo = support::unique("put-skip-two");
    let one = support::fixtures::Layout::new("put-skip-one");
    let two = support::fixtures::Layout::new("put-skip-two");
    two.config(&["--config.label", "two=yes"]);
    reg.push(&format!("oci:{}", one.image()), &repo, "a", false);
    reg.push(&format!("oci:{}", two.image()), &repo, "b", false);
    let dead = DeadDaemon::new();
    let mut source = reg.source(&repo);
    source["tag"] = json!("a");
    source["buildkit_host"] = json!(dead.host());
    source["buildkit_timeout"] = json!("2s");
    let src = Src::new(&[("ctx/Dockerfile", "FROM scratch\n"), ("t", "b\n")]);
    support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": {"context": "ctx", "additional_tags": "t",
            "skip_existing": true}}),
        &[],
    )
    .expect_failure()
    .expect_stderr("tag b names");
    assert!(dead.contacted(), "the build did not reach the daemon");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    support::run_tool(std::process::Command::new("cp").arg("-r").arg(from).arg(to));
}
