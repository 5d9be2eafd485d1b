//! Progress of long transfers on stderr: a push (`params.image`) and a get
//! of a ~20 MB image print plain progress lines (stderr is a pipe here, as
//! in Concourse), with layer counts and totals.

use std::process::Command;

use serde_json::json;

use crate::support;

/// An OCI layout at `dir/layout`, tag `t`, of two layers of 10 MB of random
/// bytes each (random, so compression leaves them about that size).
fn twenty_mb_layout(dir: &std::path::Path) {
    let layout = dir.join("layout");
    let run = |args: &[&str]| {
        let out = Command::new("umoci")
            .args(args)
            .output()
            .expect("umoci runs");
        assert!(
            out.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let image = format!("{}:t", layout.display());
    run(&["init", "--layout", &layout.display().to_string()]);
    run(&["new", "--image", &image]);
    for n in 1..=2 {
        let content = dir.join(format!("layer{n}"));
        std::fs::create_dir_all(&content).expect("mkdir");
        let bytes: Vec<u8> = (0..10_000_000).map(|_| rand_byte()).collect();
        std::fs::write(content.join("data"), bytes).expect("write layer data");
        run(&[
            "insert",
            "--image",
            &image,
            &content.display().to_string(),
            &format!("/l{n}"),
        ]);
        std::fs::remove_dir_all(&content).expect("rm");
    }
}

/// xorshift: incompressible enough, no extra crate.
fn rand_byte() -> u8 {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) });
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 24) as u8
    })
}

fn assert_lines(stderr: &str, wanted: &[&str]) {
    for want in wanted {
        assert!(
            stderr.lines().any(|l| l.contains(want)),
            "no line with {want:?} in stderr:\n{stderr}"
        );
    }
    // Plain lines for a build log: no cursor movement, no carriage returns.
    assert!(
        !stderr.contains('\r') && !stderr.contains("\u{1b}["),
        "{stderr}"
    );
}

#[test]
#[cfg_attr(
    not(all(have_docker_registry, have_umoci)),
    ignore = "needs docker-registry and umoci on PATH"
)]
fn a_20_mb_push_and_get_print_layer_progress() {
    let reg = support::registry::plain();
    let repo = support::unique("progress");
    let work = tempfile::tempdir().expect("temp dir");
    twenty_mb_layout(work.path());

    let pushed = support::cmd::run(
        "out",
        &[work.path()],
        &json!({"source": reg.source(&repo), "params": {"image": "layout"}}),
        &[],
    );
    pushed.expect_success();
    assert_lines(
        &pushed.stderr,
        &[
            "pushing: layer 1/2 ",
            "pushing: layer 2/2 ",
            "pushed 2/2 layers, ",
        ],
    );
    let summary = pushed
        .stderr
        .lines()
        .find(|l| l.contains("pushed 2/2 layers, "))
        .unwrap();
    assert!(
        summary.contains(" MB in ") && summary.ends_with("/s)"),
        "{summary}"
    );

    let version = pushed.json()["version"].clone();
    let dest = tempfile::tempdir().expect("dest");
    let got = support::cmd::run(
        "in",
        &[dest.path()],
        &json!({"source": reg.source(&repo), "version": version}),
        &[],
    );
    got.expect_success();
    assert_lines(
        &got.stderr,
        &[
            "downloading: layer 1/2 ",
            "downloading: layer 2/2 ",
            "downloaded 2/2 layers, ",
        ],
    );
    let summary = got
        .stderr
        .lines()
        .find(|l| l.contains("downloaded 2/2 layers, "))
        .unwrap();
    assert!(summary.contains(" MB in "), "{summary}");
    assert_eq!(
        std::fs::metadata(dest.path().join("rootfs/l2/data"))
            .map(|m| m.len())
            .ok(),
        Some(10_000_000)
    );

    // Again: every layer is in the registry already, and says so.
    let again = support::cmd::run(
        "out",
        &[work.path()],
        &json!({"source": reg.source(&repo), "params": {"image": "layout"}}),
        &[],
    );
    again.expect_success();
    assert_lines(
        &again.stderr,
        &["already in the registry", "pushed 2/2 layers, "],
    );
}
