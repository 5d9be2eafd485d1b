//! `cache_mounts`: two puts on two fresh daemons, the second sees what the
//! first wrote into its `RUN --mount=type=cache` directory (a counter that
//! the step increments; a build arg forces the step to run again). On the
//! embedded buildkitd (a new one per put) and on two standalone buildkitd
//! that never saw each other's builds.

use serde_json::{Value, json};

use crate::put::Src;
use crate::support;
use crate::support::needs;

const STEP: &str = "ARG RUN_ID\n\
RUN --mount=type=cache,id=counter,target=/var/cache/counter \
echo \"run $RUN_ID\" && n=$(cat /var/cache/counter/n 2>/dev/null || echo 0) && \
n=$((n+1)) && echo $n > /var/cache/counter/n && echo $n > /count\n";

/// The `/count` file of `<repo>:latest`, through `in`.
fn count(source: &Value, digest: &str) -> String {
    let dest = tempfile::tempdir().expect("dir");
    support::cmd::run(
        "in",
        &[dest.path()],
        &json!({"source": source, "version": {"tag": "latest", "digest": digest}, "params": {}}),
        &[],
    )
    .expect_success();
    std::fs::read_to_string(dest.path().join("rootfs/count"))
        .expect("count file")
        .trim()
        .to_string()
}

/// Two puts; `host` gives each its daemon (`None`: the embedded one).
fn counter_survives(host: &dyn Fn(usize) -> Option<String>) {
    let reg = support::registry::plain();
    let repo = support::unique("mounts");
    let src = Src::new(&[("ctx/Dockerfile", &crate::put::from_base(reg, STEP))]);
    let path = support::buildkitd::path_env();
    let mut counts = Vec::new();
    for run in 1..=2 {
        let mut source = reg.source(&repo);
        source["tag"] = json!("latest");
        if let Some(h) = host(run) {
            source["buildkit_host"] = json!(h);
        }
        let put = support::cmd::run(
            "out",
            &[src.path()],
            &json!({"source": source, "params": {"context": "ctx", "cache_mounts": true,
                "build_args": {"RUN_ID": run.to_string()}}}),
            &[("PATH", &path)],
        );
        put.expect_success()
            .expect_stderr("cache_mounts: saved 1 mount(s)");
        if run == 2 {
            put.expect_stderr("cache_mounts: restored 1 mount(s)");
        }
        eprintln!("{}", put.stderr);
        let digest = put.json()["version"]["digest"]
            .as_str()
            .expect("digest")
            .to_string();
        counts.push(count(&source, &digest));
        // check skips the saved mounts' tag as it skips BuildKit's cache.
        let mut regex = reg.source(&repo);
        regex["tag_regex"] = json!(".*");
        let versions = support::cmd::run("check", &[], &json!({"source": regex}), &[])
            .expect_success()
            .json();
        assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");
    }
    assert_eq!(counts, ["1", "2"]);
}

needs! { buildkitd;
    #[test]
    fn the_embedded_daemon_starts_warm_on_the_next_put() {
        counter_survives(&|_| None);
    }
}

needs! { buildkitd;
    #[test]
    fn a_standalone_buildkitd_that_never_saw_the_build_starts_warm() {
        let binary = support::buildkitd::find();
        let daemons = [
            support::buildkitd::Standalone::unix(&binary),
            support::buildkitd::Standalone::unix(&binary),
        ];
        counter_survives(&|run| Some(daemons[run - 1].address.clone()));
    }
}

#[test]
fn the_size_params_are_checked_before_any_daemon() {
    let src = Src::new(&[("ctx/Dockerfile", "FROM scratch\n")]);
    let reg = support::registry::plain();
    for (params, expected) in [
        (
            json!({"context": "ctx", "cache_mounts_max_size": "1G"}),
            "only applies with cache_mounts",
        ),
        (
            json!({"context": "ctx", "cache_mounts": true, "cache_mounts_max_size": "lots"}),
            "is not a size",
        ),
    ] {
        support::cmd::run(
            "out",
            &[src.path()],
            &json!({"source": reg.source("never-pushed"), "params": params}),
            &[],
        )
        .expect_failure()
        .expect_stderr(expected);
    }
}

needs! { buildkitd;
    /// Something else under the saved mounts' tag is a warning and a cold
    /// build; a mount over `cache_mounts_max_size` is left out with a
    /// warning; the put succeeds either way.
    #[test]
    fn a_broken_saved_cache_and_a_mount_over_the_limit_are_warnings() {
        let reg = support::registry::plain();
        let repo = support::unique("mounts-broken");
        let base = support::fixtures::busybox_base(reg);
        support::run_tool(
            std::process::Command::new("skopeo")
                .arg("copy")
                .args(reg.skopeo_src_args())
                .args(reg.skopeo_dest_args())
                .arg(format!("docker://{base}"))
                .arg(format!("docker://{}:buildcache-mounts", reg.repo(&repo))),
        );
        let src = Src::new(&[("ctx/Dockerfile", &crate::put::from_base(reg, STEP))]);
        let mut source = reg.source(&repo);
        source["tag"] = json!("latest");
        let put = support::cmd::run(
            "out",
            &[src.path()],
            &json!({"source": source, "params": {"context": "ctx", "cache_mounts": ["counter"],
                "cache_mounts_max_size": 1, "build_args": {"RUN_ID": "1"}}}),
            &[("PATH", &support::buildkitd::path_env())],
        );
        put.expect_success()
            .expect_stderr("is not a saved cache mount manifest")
            .expect_stderr("over cache_mounts_max_size")
            .expect_stderr("cache_mounts: saved 0 mount(s)");
    }
}

/// The figures of docs/decisions.md: a cache of 300 MB in 10,000 files
/// saved by one put and restored by the next, on fresh embedded daemons.
/// A benchmark, not a check: run it with `--ignored`.
#[test]
#[ignore = "benchmark: cargo test --test it put_mounts::bench -- --ignored --nocapture"]
fn bench_a_300_mb_cache_of_10000_files() {
    let reg = support::registry::plain();
    let repo = support::unique("mounts-bench");
    let step = "ARG RUN_ID\n\
RUN --mount=type=cache,id=modules,target=/cache \
echo \"run $RUN_ID\" && if [ ! -f /cache/done ]; then \
for d in $(seq 1 100); do mkdir -p /cache/$d; for f in $(seq 1 100); do \
head -c 30000 /dev/urandom > /cache/$d/$f; done; done; touch /cache/done; fi && \
ls /cache | wc -l > /count\n";
    let src = Src::new(&[("ctx/Dockerfile", &crate::put::from_base(reg, step))]);
    let mut source = reg.source(&repo);
    source["tag"] = json!("latest");
    for run in 1..=2 {
        let started = std::time::Instant::now();
        let put = support::cmd::run(
            "out",
            &[src.path()],
            &json!({"source": source, "params": {"context": "ctx", "cache_mounts": true,
                "build_args": {"RUN_ID": run.to_string()}}}),
            &[("PATH", &support::buildkitd::path_env())],
        );
        put.expect_success();
        for line in put.stderr.lines().filter(|l| l.contains("cache_mounts")) {
            eprintln!("run {run}: {line}");
        }
        eprintln!(
            "run {run}: whole put {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
}
