//! A shared BuildKit fleet (docs/put.md, "A shared BuildKit fleet"): two standalone buildkitd on loopback, each on `tcp://` with
//! mutual TLS as a Kubernetes Service would expose them, and puts
//! alternating between them with `cache: true`. The second daemon has never
//! run the build: only the registry cache can give it the RUN step, and it
//! reports that step CACHED and pushes the same digest.

use serde_json::{Value, json};

use crate::put::{Src, from_base, registry_digest};
use crate::put_main_path::{make_mtls_files, pem};
use crate::support;
use crate::support::buildkitd::{ServerTls, Standalone};
use crate::support::needs;

/// Runs `out` on `daemon` with the client certificate in `tls`.
fn out_on(daemon: &Standalone, tls: &Value, src: &Src, repo: &str) -> support::cmd::Output {
    let mut source = support::registry::plain().source(repo);
    source["buildkit_host"] = json!(daemon.address);
    source["buildkit_tls"] = tls.clone();
    let run = support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": {"context": "src", "cache": true}}),
        &[],
    );
    if !run.status.success() {
        panic!(
            "out on {} failed\n{}\n--- buildkitd log ---\n{}",
            daemon.address,
            run.details(),
            daemon.log_tail(40)
        );
    }
    run
}

/// Whether the progress output shows the step named `step` as CACHED
/// (`#N [2/2] RUN ...` then `#N CACHED`).
fn step_cached(stderr: &str, step: &str) -> bool {
    let ids: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(step))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.starts_with('#'))
        .collect();
    !ids.is_empty()
        && stderr
            .lines()
            .any(|l| ids.iter().any(|id| l == format!("{id} CACHED")))
}

fn digest(run: &support::cmd::Output) -> String {
    run.json()["version"]["digest"]
        .as_str()
        .expect("digest")
        .to_owned()
}

needs! { buildkitd;
    #[test]
    fn two_daemons_share_layers_through_the_registry_cache() {
        let binary = support::buildkitd::find();
        let certs = tempfile::tempdir().expect("certs dir");
        let files = make_mtls_files(certs.path());
        let server = ServerTls {
            ca_cert: files.ca.clone(),
            cert: files.server.clone(),
            key: files.server_key.clone(),
        };
        let first = Standalone::tcp_tls(&binary, &server);
        let second = Standalone::tcp_tls(&binary, &server);
        let tls = json!({"ca_cert": pem(&files.ca), "cert": pem(&files.client),
                         "key": pem(&files.client_key)});
        let reg = support::registry::plain();
        let repo = support::unique("fleet");
        // `date` makes the layer differ on every real run: the same digest
        // twice means the second daemon reused the first one's layer.
        let step = "RUN date +%s%N > /built-at";
        let src = Src::new(&[("src/Dockerfile", &from_base(reg, &format!("{step}\n")))]);

        let on_first = out_on(&first, &tls, &src, &repo);
        assert!(
            !step_cached(&on_first.stderr, step),
            "a fresh daemon and an empty cache run the step\n{}",
            on_first.details()
        );
        assert!(
            registry_digest(reg, &format!("{repo}:buildcache")).is_some(),
            "the registry cache was exported"
        );
        let on_second = out_on(&second, &tls, &src, &repo);
        assert!(
            step_cached(&on_second.stderr, step),
            "the second daemon took the RUN step from the registry cache\n{}",
            on_second.details()
        );
        assert_eq!(digest(&on_first), digest(&on_second));
        // And back: the first daemon, with its own and the registry's cache.
        let again = out_on(&first, &tls, &src, &repo);
        assert!(step_cached(&again.stderr, step), "{}", again.details());
        assert_eq!(digest(&again), digest(&on_first));
        assert_eq!(
            registry_digest(reg, &format!("{repo}:latest")),
            Some(digest(&on_first))
        );
    }
}
