//! The binaries run by hand: `--help`, `--version`, and a terminal on
//! stdin.

use std::process::{Command, Stdio};

use crate::support::cmd::binary;
use crate::support::needs;

const STEPS: [&str; 3] = ["check", "in", "out"];

fn run(bin: &str, arg: &str) -> (bool, String, String) {
    let out = Command::new(binary(bin))
        .arg(arg)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_says_what_each_binary_expects() {
    for (step, argv, anchor) in [
        (
            "check",
            "usage: check < request.json",
            "README.md#versions-reported-by-check",
        ),
        (
            "in",
            "usage: in <destination dir> < request.json",
            "README.md#get-params",
        ),
        (
            "out",
            "usage: out <sources dir> < request.json",
            "README.md#put",
        ),
    ] {
        for flag in ["--help", "-h"] {
            let (ok, stdout, stderr) = run(step, flag);
            assert!(ok, "{step} {flag} failed: {stderr}");
            for want in [argv, "stdin:", "\"source\"", "stdout:", anchor] {
                assert!(
                    stdout.contains(want),
                    "{step} {flag}: no {want:?} in\n{stdout}"
                );
            }
        }
    }
}

#[test]
fn version_names_crate_commit_and_for_out_buildkit() {
    let crate_version = format!("oci-build-resource {} (commit ", env!("CARGO_PKG_VERSION"));
    for step in STEPS {
        let (ok, stdout, stderr) = run(step, "--version");
        assert!(ok, "{step} --version failed: {stderr}");
        assert!(stdout.starts_with(&crate_version), "{step}: {stdout}");
        assert!(!stdout.contains("(commit )"), "{step}: {stdout}");
        assert_eq!(
            stdout.contains("bundled BuildKit"),
            step == "out",
            "{step}: {stdout}"
        );
    }
    // The pinned version comes from the Dockerfile (build.rs).
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile"))
        .expect("Dockerfile");
    let pinned = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG BUILDKIT_VERSION="))
        .expect("the Dockerfile pins BUILDKIT_VERSION");
    let (_, stdout, _) = run("out", "--version");
    assert!(
        stdout.contains(&format!("bundled BuildKit: {pinned}\n")),
        "{stdout}"
    );
    assert!(stdout.contains("buildkitd on PATH: "), "{stdout}");
}

needs! { buildkitd;
    /// A buildkitd on PATH is asked for its version.
    #[test]
    fn out_version_asks_the_buildkitd_on_path() {
        let buildkitd = crate::support::buildkitd::find();
        let dir = buildkitd.parent().expect("buildkitd has a directory");
        let out = Command::new(binary("out"))
            .arg("--version")
            .env("PATH", dir)
            .output()
            .expect("out runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("buildkitd on PATH: buildkitd github.com/moby/buildkit v"),
            "{stdout}"
        );
    }
}

/// With stdin on a terminal (a pty from util-linux `script`), each binary
/// says what it expects and exits 2 instead of waiting.
#[test]
fn a_terminal_on_stdin_gets_an_explanation_not_a_hang() {
    let dir = tempfile::tempdir().expect("temp dir");
    for step in STEPS {
        let command = format!("{} {}", binary(step).display(), dir.path().display());
        let out = Command::new("timeout")
            .args(["60", "script", "-qec", &command, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .expect("timeout and script (util-linux) run");
        let shown = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{step}: {shown}");
        for want in [
            "stdin is a terminal",
            "reads a JSON request on stdin",
            "README.md#",
        ] {
            assert!(shown.contains(want), "{step}: no {want:?} in\n{shown}");
        }
    }
}
