//! SIGTERM to `out` and `in` mid-work, as Concourse sends it when a build is
//! aborted: the step exits non-zero within seconds and leaves nothing
//! behind. `out` on the embedded buildkitd: no buildkitd, runc or
//! RUN process, no mount and no root left; `in`: no partial download in the
//! destination. SIGKILL to `out`: no process or mount left, and the next
//! `out` removes the root it could not.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support;
use crate::support::needs;

/// Starts `bin` with `request` on stdin and `dir` as argv[1], output
/// captured into files under `logs` (read after the step ends).
fn spawn_step(bin: &str, dir: &Path, request: &Value, env: &[(&str, &str)], logs: &Path) -> Child {
    let mut child = Command::new(support::cmd::binary(bin))
        .arg(dir)
        .env_clear()
        .env("TEST", "true")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(logs.join("stdout")).expect("stdout file"))
        .stderr(std::fs::File::create(logs.join("stderr")).expect("stderr file"))
        .spawn()
        .expect("starting the step");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(request.to_string().as_bytes())
        .expect("writing the request");
    child
}

/// Waits up to `limit` for `child`; `None` when it is still running.
fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the step") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `ready` every 100 ms for up to `limit`.
fn poll(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn sigterm(child: &Child) {
    // SAFETY: plain syscall on our own, not yet reaped child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
}

/// Every process (pid, cmdline with NULs as spaces) whose cmdline matches.
fn processes(matching: impl Fn(&str) -> bool) -> Vec<(u32, String)> {
    crate::support::process::list()
        .into_iter()
        .filter(|p| !p.cmdline.is_empty() && matching(&p.cmdline))
        .map(|p| (p.pid as u32, p.cmdline))
        .collect()
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = dir.display().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&dir))
        .map(String::from)
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// An `out` on the embedded buildkitd whose RUN step sleeps, started and
/// waited for until the sleep runs; its root parent and logs in a temp dir.
struct SleepingBuild {
    out: Child,
    marker: String,
    root: PathBuf,
    logs: PathBuf,
    work: PathBuf,
    _top: tempfile::TempDir,
}

impl SleepingBuild {
    fn start(name: &str) -> SleepingBuild {
        let reg = support::registry::plain();
        let base = support::fixtures::busybox_base(reg);
        // A sleep whose length names it among the machine's processes.
        let secs = 30_000 + std::process::id() % 10_000 + name.len() as u32;
        let marker = format!("sleep {secs}");
        let top = tempfile::tempdir().expect("temp dir");
        let top_path = std::fs::canonicalize(top.path()).expect("canonical temp dir");
        let (work, root, logs) = (
            top_path.join("work"),
            top_path.join("root"),
            top_path.join("logs"),
        );
        for d in [&work, &root, &logs] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::create_dir_all(work.join("src")).expect("mkdir");
        std::fs::write(
            work.join("src/Dockerfile"),
            format!("FROM {base}\nRUN {marker}\n"),
        )
        .expect("Dockerfile");
        let mut build = SleepingBuild {
            out: Self::spawn(&work, &root, &logs, name),
            marker,
            root,
            logs,
            work,
            _top: top,
        };
        let running = poll(Duration::from_secs(180), || {
            !processes(|c| c.trim_end() == build.marker).is_empty()
        });
        if !running {
            let _ = build.out.kill();
            panic!(
                "the RUN step never started; out's stderr:\n{}",
                build.stderr()
            );
        }
        build
    }

    fn spawn(work: &Path, root: &Path, logs: &Path, name: &str) -> Child {
        let reg = support::registry::plain();
        let path = crate::support::buildkitd::path_env();
        let root_env = root.display().to_string();
        spawn_step(
            "out",
            work,
            &json!({"source": reg.source(&support::unique(name)), "params": {"context": "src"}}),
            &[
                ("PATH", path.as_str()),
                ("OCI_BUILD_RESOURCE_BUILDKIT_ROOT", root_env.as_str()),
            ],
            logs,
        )
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.logs.join("stderr")).unwrap_or_default()
    }

    /// Processes of the build left running (killed after being listed, so
    /// that a failing test leaves none) and mounts left under the root.
    fn leftovers(&self) -> (Vec<(u32, String)>, Vec<String>) {
        let root_env = self.root.display().to_string();
        let procs = processes(|c| c.contains(&root_env) || c.trim_end() == self.marker);
        for (pid, _) in &procs {
            // SAFETY: plain syscall; the pids were just listed.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        (procs, mounts_under(&self.root))
    }
}

needs! { buildkitd;
    #[test]
    fn sigterm_to_out_mid_run_leaves_no_daemon_process_or_mount() {
        let mut build = SleepingBuild::start("sigterm");
        let signalled = Instant::now();
        sigterm(&build.out);
        let status = wait_for(&mut build.out, Duration::from_secs(30));
        let (leftovers, mounts) = build.leftovers();
        let Some(status) = status else {
            let _ = build.out.kill();
            panic!(
                "out still running 30 s after SIGTERM; stderr:\n{}",
                build.stderr()
            );
        };
        let stderr = build.stderr();
        assert!(!status.success(), "out succeeded after SIGTERM:\n{stderr}");
        assert!(
            leftovers.is_empty(),
            "left running: {leftovers:?}\n{stderr}"
        );
        assert!(mounts.is_empty(), "left mounted: {mounts:?}\n{stderr}");
        assert!(
            entries(&build.root).is_empty(),
            "left in the root parent: {:?}\n{stderr}",
            entries(&build.root)
        );
        assert!(signalled.elapsed() < Duration::from_secs(30), "{stderr}");
    }

    /// SIGKILL gives `out` no chance to clean up: the daemon's namespaces
    /// must take the RUN step and the mounts with them, and the next put
    /// must remove the root the killed one left.
    #[test]
    fn sigkill_to_out_mid_run_orphans_nothing_and_the_next_put_sweeps_its_root() {
        let mut build = SleepingBuild::start("sigkill");
        build.out.kill().expect("SIGKILL to out");
        let _ = build.out.wait();
        let gone = poll(Duration::from_secs(15), || build.leftovers().0.is_empty());
        let (leftovers, mounts) = build.leftovers();
        let stderr = build.stderr();
        assert!(gone && leftovers.is_empty(), "left running after SIGKILL: {leftovers:?}\n{stderr}");
        assert!(mounts.is_empty(), "left mounted after SIGKILL: {mounts:?}\n{stderr}");
        let stale = entries(&build.root);
        assert_eq!(stale.len(), 1, "the killed put's root: {stale:?}");

        // The next put (a quick build) sweeps it before making its own.
        std::fs::write(build.work.join("src/Dockerfile"), "FROM scratch\nCOPY Dockerfile /\n")
            .expect("Dockerfile");
        let mut next = SleepingBuild::spawn(&build.work, &build.root, &build.logs, "sigkill-next");
        let status = wait_for(&mut next, Duration::from_secs(180));
        let stderr = build.stderr();
        let Some(status) = status else {
            let _ = next.kill();
            panic!("the next put did not finish; stderr:\n{stderr}");
        };
        assert!(status.success(), "the next put failed:\n{stderr}");
        assert!(
            stderr.contains("removed 1 buildkitd root(s) under"),
            "{stderr}"
        );
        assert!(
            entries(&build.root).is_empty(),
            "left in the root parent: {:?}\n{stderr}",
            entries(&build.root)
        );
    }
}

/// A registry serving one image whose only layer stalls half-way: the
/// manifest and config answer, the layer's first half arrives, then nothing.
struct StallingRegistry {
    host: String,
    manifest_digest: String,
}

impl StallingRegistry {
    fn start() -> StallingRegistry {
        // Incompressible-ish files, so the first half of the layer holds
        // whole files that the unpacker writes out before the stall.
        let mut tar = support::fixtures::RawTar::new();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..16 {
            let data: Vec<u8> = (0..64 * 1024)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            tar = tar.file(&format!("f{i:02}"), &data, 0o644);
        }
        let layer = tar.finish();
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [support::sha256_digest(&layer)]},
            "config": {}
        }))
        .expect("config");
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": support::sha256_digest(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": support::sha256_digest(&layer), "size": layer.len()}]
        }))
        .expect("manifest");
        let manifest_digest = support::sha256_digest(&manifest);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let blobs = std::sync::Arc::new((manifest, config, layer));
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let blobs = blobs.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &blobs.0, &blobs.1, &blobs.2);
                });
            }
        });
        StallingRegistry {
            host,
            manifest_digest,
        }
    }
}

fn serve(conn: TcpStream, manifest: &[u8], config: &[u8], layer: &[u8]) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            // Not HTTP (a TLS ClientHello): close, so the client falls back.
            return Ok(());
        };
        let (method, path) = (method.to_string(), path.to_string());
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" {
                break;
            }
        }
        let respond = |out: &mut TcpStream, ctype: &str, body: &[u8]| -> std::io::Result<()> {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nDocker-Content-Digest: {}\r\n\r\n",
                body.len(),
                support::sha256_digest(body)
            )?;
            if method != "HEAD" {
                out.write_all(body)?;
            }
            out.flush()
        };
        if path == "/v2/" {
            respond(&mut out, "application/json", b"{}")?;
        } else if path.contains("/manifests/") {
            respond(
                &mut out,
                "application/vnd.oci.image.manifest.v1+json",
                manifest,
            )?;
        } else if path.ends_with(&support::sha256_digest(config)) {
            respond(&mut out, "application/octet-stream", config)?;
        } else if path.ends_with(&support::sha256_digest(layer)) {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                layer.len()
            )?;
            out.write_all(&layer[..layer.len() / 2])?;
            out.flush()?;
            // The stall: hold the connection, send nothing more.
            let mut sink = [0u8; 1];
            let _ = reader.read(&mut sink);
            std::thread::sleep(Duration::from_secs(600));
            return Ok(());
        } else {
            write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
        }
    }
}

#[test]
fn sigterm_to_in_mid_download_removes_the_partial_destination() {
    let reg = StallingRegistry::start();
    let top = tempfile::tempdir().expect("temp dir");
    let (dest, logs) = (top.path().join("dest"), top.path().join("logs"));
    std::fs::create_dir_all(&dest).expect("mkdir");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let mut step = spawn_step(
        "in",
        &dest,
        &json!({
            "source": {"repository": format!("{}/stall", reg.host)},
            "version": {"tag": "latest", "digest": reg.manifest_digest},
            "params": {}
        }),
        &[],
        &logs,
    );
    let stderr = || std::fs::read_to_string(logs.join("stderr")).unwrap_or_default();
    // Some of the layer is on disk (spooled or unpacked) before the signal.
    let partial = poll(Duration::from_secs(30), || {
        walkdir::WalkDir::new(&dest)
            .into_iter()
            .flatten()
            .any(|e| e.file_type().is_file())
    });
    if !partial {
        let _ = step.kill();
        panic!(
            "nothing was written before the stall; stderr:\n{}",
            stderr()
        );
    }
    sigterm(&step);
    let Some(status) = wait_for(&mut step, Duration::from_secs(30)) else {
        let _ = step.kill();
        panic!("in still running 30 s after SIGTERM; stderr:\n{}", stderr());
    };
    let stderr = stderr();
    assert!(!status.success(), "{stderr}");
    let left: Vec<PathBuf> = walkdir::WalkDir::new(&dest)
        .min_depth(1)
        .into_iter()
        .flatten()
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(left.is_empty(), "partial download left: {left:?}\n{stderr}");
    assert!(
        stderr.contains("in: interrupted by SIGTERM"),
        "no interruption line:\n{stderr}"
    );
}
