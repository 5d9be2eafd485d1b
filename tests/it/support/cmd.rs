//! Running our three binaries as Concourse does: JSON request on stdin, the
//! destination/source dir as argv[1], a cleared environment (plus `TEST=true`
//! for short retry back-offs, `PATH`, and what the test adds), stdout and
//! stderr captured.
//!
//! Binaries come from `$RESOURCE_BIN_DIR/{check,in,out}` when set (e.g.
//! `/opt/resource`, to test a shipped image like registry-image's suite does),
//! else from cargo's `CARGO_BIN_EXE_*`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

/// How long one step may run before the test gives up on it.
const STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// What a step did.
pub struct Output {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
    description: String,
}

/// The path of one of our binaries (`check`, `in`, `out`).
pub fn binary(bin: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("RESOURCE_BIN_DIR") {
        return Path::new(&dir).join(bin);
    }
    PathBuf::from(match bin {
        "check" => env!("CARGO_BIN_EXE_check"),
        "in" => env!("CARGO_BIN_EXE_in"),
        "out" => env!("CARGO_BIN_EXE_out"),
        other => panic!("unknown resource binary {other:?}"),
    })
}

/// Runs `bin` with `args`, `stdin_json` on stdin and `env` on top of the
/// minimal environment.
pub fn run(bin: &str, args: &[&Path], stdin_json: &Value, env: &[(&str, &str)]) -> Output {
    let stdin = serde_json::to_vec(stdin_json).expect("serialising the request");
    run_raw(bin, args, &stdin, env, &redacted(stdin_json).to_string())
}

/// Like [`run`] with arbitrary stdin bytes (for malformed payloads);
/// `shown` is what failure messages print instead of the payload.
pub fn run_raw(
    bin: &str,
    args: &[&Path],
    stdin: &[u8],
    env: &[(&str, &str)],
    shown: &str,
) -> Output {
    let path = binary(bin);
    let mut cmd = Command::new(&path);
    cmd.args(args)
        .env_clear()
        .env("TEST", "true")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_vec();
    // Written from a thread: a binary that fails before reading its whole
    // stdin must not block the test on a full pipe.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(STEP_TIMEOUT) {
        Ok(out) => out.expect("collecting the step's output"),
        Err(_) => {
            // SAFETY: plain syscall on our own not-yet-reaped child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!(
                "{} did not finish within {STEP_TIMEOUT:?}; request: {shown}",
                path.display()
            );
        }
    };
    let _ = writer.join();
    let mut description = format!(
        "{} {}",
        path.display(),
        args.iter()
            .map(|a| a.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = write!(description, "\nrequest: {shown}");
    let env_shown: Vec<String> = env.iter().map(|(k, _)| k.to_string()).collect();
    if !env_shown.is_empty() {
        let _ = write!(description, "\nextra env: {}", env_shown.join(", "));
    }
    for dir in args.iter().filter(|a| a.is_dir()) {
        let _ = write!(description, "\nfiles in {}:", dir.display());
        for entry in walkdir::WalkDir::new(dir)
            .min_depth(1)
            .max_depth(2)
            .into_iter()
            .flatten()
            .take(40)
        {
            let _ = write!(
                description,
                "\n  {}",
                entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap_or(entry.path())
                    .display()
            );
        }
    }
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        description,
    }
}

impl Output {
    /// Panics with everything unless the step exited 0.
    #[track_caller]
    pub fn expect_success(&self) -> &Self {
        if !self.status.success() {
            panic!("expected success, got {}\n{}", self.status, self.details());
        }
        self
    }

    /// Panics with everything unless the step exited 1 with nothing on stdout.
    #[track_caller]
    pub fn expect_failure(&self) -> &Self {
        if self.status.code() != Some(1) {
            panic!(
                "expected exit code 1, got {}\n{}",
                self.status,
                self.details()
            );
        }
        if !self.stdout.trim().is_empty() {
            panic!(
                "a failed step must not print a response on stdout\n{}",
                self.details()
            );
        }
        self
    }

    /// Panics unless stderr contains `needle`.
    #[track_caller]
    pub fn expect_stderr(&self, needle: &str) -> &Self {
        if !self.stderr.contains(needle) {
            panic!("expected stderr to contain {needle:?}\n{}", self.details());
        }
        self
    }

    /// Panics unless the step's error, the stderr text from its `error: `
    /// line up to any `hint: ` line, is exactly `message` (without the
    /// `error: ` prefix): where the whole message is the contract, a
    /// substring check would let it grow or lose parts unseen.
    #[track_caller]
    pub fn expect_error(&self, message: &str) -> &Self {
        let got = self
            .stderr
            .find("error: ")
            .map(|start| {
                let rest = &self.stderr[start + "error: ".len()..];
                let end = rest.find("\nhint: ").unwrap_or(rest.len());
                rest[..end].trim_end().to_string()
            })
            .unwrap_or_else(|| panic!("no `error: ` line on stderr\n{}", self.details()));
        if got != message {
            panic!(
                "the error is not the expected one\n  expected: {message:?}\n  got:      {got:?}\n{}",
                self.details()
            );
        }
        self
    }

    /// Panics if stderr or stdout contains `secret`.
    #[track_caller]
    pub fn expect_not_leaked(&self, secret: &str) -> &Self {
        if self.stderr.contains(secret) || self.stdout.contains(secret) {
            panic!("output contains a secret\n(status {})", self.status);
        }
        self
    }

    /// stdout parsed as one JSON document, which must be a single line.
    #[track_caller]
    pub fn json(&self) -> Value {
        let trimmed = self.stdout.trim_end_matches('\n');
        if trimmed.contains('\n') {
            panic!("stdout must be one JSON line\n{}", self.details());
        }
        serde_json::from_str(trimmed)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.details()))
    }

    /// Command, request, files, status, stdout and stderr for a failure message.
    pub fn details(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.description, self.status, self.stdout, self.stderr
        )
    }
}

/// `value` with every secret-looking field replaced by `<redacted>`.
pub fn redacted(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = k.to_ascii_lowercase();
                    let secret = ["password", "secret", "token", "key"]
                        .iter()
                        .any(|s| key.contains(s));
                    if secret && v.is_string() {
                        (k.clone(), Value::String("<redacted>".into()))
                    } else {
                        (k.clone(), redacted(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}
