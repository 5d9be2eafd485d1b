//! `out` on `buildkit_host: ssh://…`: an OpenSSH server started by the test
//! on 127.0.0.1 (support::sshd) in front of the shared test dockerd
//! (`ssh://root@127.0.0.1:PORT`, `docker system dial-stdio`) and of a
//! standalone buildkitd (`ssh://root@127.0.0.1:PORT/<socket>`,
//! `buildctl dial-stdio`).
//!
//! - a put with a RUN step, a secret and a push, over each;
//! - a wrong key, an unknown host and a changed host key: refused by ssh,
//!   one error naming the ssh failure, no tag moved;
//! - the connection dropped mid-build (sshd's sessions killed by pid): one
//!   error naming the ssh failure, no tag moved.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::put::{Src, from_base, registry_digest};
use crate::support;
use crate::support::buildkitd::Standalone;
use crate::support::sshd::Sshd;

/// What sits behind sshd.
enum Behind {
    /// The shared test dockerd.
    Engine,
    /// A standalone buildkitd on a unix socket.
    Buildkitd(Standalone),
}

/// sshd in front of one daemon.
struct Host {
    sshd: Sshd,
    behind: Behind,
}

impl Host {
    fn engine() -> Host {
        let docker = support::docker::shared();
        let docker_cli = support::which("docker").expect("docker CLI");
        let path = remote_path(&[docker_cli.parent().expect("docker's dir").into()]);
        let sshd = Sshd::start(&path, &format!("unix://{}", docker.socket.display()));
        Host {
            sshd,
            behind: Behind::Engine,
        }
    }

    fn buildkitd() -> Host {
        let binary = support::buildkitd::find();
        let dir = binary.parent().expect("buildkitd's dir").to_path_buf();
        assert!(
            dir.join("buildctl").is_file() || support::which("buildctl").is_some(),
            "needs buildctl next to {} or on PATH (BuildKit's release archive has both)",
            binary.display()
        );
        let daemon = Standalone::unix(&binary);
        let sshd = Sshd::start(&remote_path(&[dir]), "unix:///nonexistent/docker.sock");
        Host {
            sshd,
            behind: Behind::Buildkitd(daemon),
        }
    }

    /// The `ssh://` address of the daemon behind sshd.
    fn address(&self) -> String {
        let base = format!("ssh://root@127.0.0.1:{}", self.sshd.port);
        match &self.behind {
            Behind::Engine => base,
            Behind::Buildkitd(d) => {
                format!(
                    "{base}{}",
                    d.socket.as_ref().expect("unix socket").display()
                )
            }
        }
    }

    /// `source` for `repo` on the plain registry, building over ssh with
    /// `key` and `known_hosts`.
    fn source(&self, repo: &str, key: &str, known_hosts: &str) -> Value {
        let mut source = support::registry::plain().source(repo);
        source["buildkit_host"] = json!(self.address());
        source["buildkit_ssh"] = json!({"private_key": key, "known_hosts": known_hosts});
        source
    }

    /// A source with the right key and host key.
    fn good_source(&self, repo: &str) -> Value {
        self.source(repo, &self.sshd.user_key, &self.sshd.known_hosts)
    }

    /// Logs for a failure message.
    fn logs(&self) -> String {
        let daemon = match &self.behind {
            Behind::Engine => support::docker::shared().log_tail(30),
            Behind::Buildkitd(d) => d.log_tail(30),
        };
        format!(
            "\n--- sshd log ---\n{}\n--- daemon log ---\n{daemon}",
            self.sshd.log_tail(30)
        )
    }
}

/// PATH for the remote commands: `dirs`, then the system's.
fn remote_path(dirs: &[PathBuf]) -> String {
    let mut parts: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    parts.push("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    parts.join(":")
}

fn out(src: &Src, source: &Value, params: &Value) -> support::cmd::Output {
    support::cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": params}),
        &[],
    )
}

/// A line of the user key's body, to look for in output.
fn key_line(key: &str) -> String {
    key.lines()
        .find(|l| !l.starts_with("-----") && l.len() > 20)
        .expect("key body")
        .to_string()
}

/// A put with a RUN step that checks a secret, pushed; the digest is what
/// the registry serves and neither the secret nor the key is printed.
fn run_secret_and_push(host: &Host) {
    let reg = support::registry::plain();
    let repo = support::unique("ssh-put");
    let text = "secret-text-sent-over-ssh";
    let hash = &support::sha256_digest(text.as_bytes())[7..];
    let src = Src::new(&[(
        "src/Dockerfile",
        &from_base(
            reg,
            &format!(
                "RUN --mount=type=secret,id=t test \"$(sha256sum < /run/secrets/t | cut -c1-64)\" = \"{hash}\" \
                 && echo built-over-ssh > /proof\n"
            ),
        ),
    )]);
    let source = host.good_source(&repo);
    let params = json!({"context": "src", "BUILDKIT_SECRETTEXT_t": text});
    let run = out(&src, &source, &params);
    if !run.status.success() {
        panic!("out over ssh failed\n{}{}", run.details(), host.logs());
    }
    run.expect_not_leaked(text)
        .expect_not_leaked(&key_line(&host.sshd.user_key));
    assert!(
        run.stderr
            .contains(&format!("building on {}", host.address())),
        "the daemon is named by its ssh:// address\n{}",
        run.details()
    );
    let resp = run.json();
    let digest = resp["version"]["digest"].as_str().expect("digest");
    assert_eq!(
        registry_digest(reg, &format!("{repo}:latest")).as_deref(),
        Some(digest)
    );
    // The whole exchange, for a reader of the test log (key redacted by
    // support::cmd's redaction of `*key*` fields).
    eprintln!(
        "--- request ---\n{}\n--- stderr ---\n{}\n--- stdout ---\n{}",
        serde_json::to_string_pretty(&support::cmd::redacted(
            &json!({"source": source, "params": params})
        ))
        .expect("json"),
        run.stderr,
        run.stdout
    );
}

/// `repo:latest` holding a fixture image; returns its digest.
fn seeded_repo(name: &str) -> (String, String) {
    let reg = support::registry::plain();
    let repo = support::unique(name);
    let pushed = support::fixtures::tiny_layout().push(reg, &repo, "latest");
    (repo, pushed.digest)
}

#[track_caller]
fn assert_tag_unmoved(repo: &str, digest: &str) {
    let reg = support::registry::plain();
    assert_eq!(
        registry_digest(reg, &format!("{repo}:latest")).as_deref(),
        Some(digest),
        "the tag did not move"
    );
}

/// A failed put names the ssh failure once, with `needle` from ssh.
#[track_caller]
fn assert_ssh_failure(host: &Host, run: &support::cmd::Output, needle: &str) {
    run.expect_failure()
        .expect_not_leaked(&key_line(&host.sshd.user_key))
        .expect_not_leaked(&key_line(&host.sshd.other_key));
    let headline = format!("the ssh connection to {} failed", host.address());
    assert_eq!(
        run.stderr.matches(&headline).count(),
        1,
        "one error naming the ssh failure\n{}{}",
        run.details(),
        host.logs()
    );
    assert!(
        run.stderr.contains(needle),
        "ssh's reason ({needle}) is shown\n{}",
        run.details()
    );
    eprintln!("--- stderr of the failed put ---\n{}", run.stderr);
}

/// A wrong key, an unknown host and a changed host key are refused by ssh
/// before anything is built.
fn fails_closed(host: &Host) {
    let (repo, digest) = seeded_repo("ssh-closed");
    let src = Src::new(&[("src/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    let params = json!({"context": "src"});
    let sshd = &host.sshd;
    let other_host = format!(
        "[127.0.0.2]:{} {}",
        sshd.port,
        sshd.known_hosts.split_once(' ').expect("key").1
    );
    for (what, key, known_hosts, needle) in [
        (
            "wrong key",
            &sshd.other_key,
            &sshd.known_hosts,
            "Permission denied",
        ),
        (
            "unknown host",
            &sshd.user_key,
            &other_host,
            "Host key verification failed",
        ),
        (
            "changed host key",
            &sshd.user_key,
            &sshd.wrong_known_hosts,
            "Host key verification failed",
        ),
    ] {
        eprintln!("case: {what}");
        let run = out(&src, &host.source(&repo, key, known_hosts), &params);
        assert_ssh_failure(host, &run, needle);
        assert_tag_unmoved(&repo, &digest);
    }
}

/// The connection dropped while a RUN step runs: one ssh error, no tag
/// moved.
fn dropped_mid_build(host: &Host) {
    let reg = support::registry::plain();
    let (repo, digest) = seeded_repo("ssh-drop");
    let marker = support::unique("ssh-drop-marker");
    let src = Src::new(&[(
        "src/Dockerfile",
        // The trailing echo keeps the shell (whose command line names the
        // marker) running while it sleeps.
        &from_base(
            reg,
            &format!("RUN echo {marker} && sleep 30 && echo finished\n"),
        ),
    )]);
    let source = host.good_source(&repo);
    let run = std::thread::scope(|scope| {
        let running = scope.spawn(|| out(&src, &source, &json!({"context": "src"})));
        let deadline = Instant::now() + Duration::from_secs(180);
        while !step_running(&marker) {
            if running.is_finished() {
                let run = running.join().expect("out thread");
                panic!(
                    "out ended before the RUN step started\n{}{}",
                    run.details(),
                    host.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the RUN step did not start{}",
                host.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let killed = host.sshd.kill_sessions();
        assert!(killed > 0, "sshd had sessions");
        running.join().expect("out thread")
    });
    assert_ssh_failure(host, &run, "");
    assert_tag_unmoved(&repo, &digest);
}

/// Whether a RUN step whose command line names `marker` runs.
fn step_running(marker: &str) -> bool {
    crate::support::process::list()
        .iter()
        .any(|p| p.cmdline.contains(marker) && p.cmdline.contains("sleep 30"))
}

mod engine {
    use crate::support::needs;

    needs! { sshd, dockerd;
        #[test]
        fn run_step_secret_and_push() {
            super::run_secret_and_push(&super::Host::engine());
        }
    }

    needs! { sshd, dockerd;
        #[test]
        fn wrong_key_unknown_and_changed_host_key_fail_closed() {
            super::fails_closed(&super::Host::engine());
        }
    }

    needs! { sshd, dockerd;
        #[test]
        fn connection_dropped_mid_build_moves_no_tag() {
            super::dropped_mid_build(&super::Host::engine());
        }
    }
}

mod buildkitd {
    use crate::support::needs;

    needs! { sshd, buildkitd;
        #[test]
        fn run_step_secret_and_push() {
            super::run_secret_and_push(&super::Host::buildkitd());
        }
    }

    needs! { sshd, buildkitd;
        #[test]
        fn connection_dropped_mid_build_moves_no_tag() {
            super::dropped_mid_build(&super::Host::buildkitd());
        }
    }
}
