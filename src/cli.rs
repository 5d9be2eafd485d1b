//! The edge of the program: argv/stdin in, one JSON document out.
//!
//! Each binary calls [`main`] with its step. We read the whole request from
//! stdin, decode it (errors are "invalid payload: ..."), set up logging to
//! stderr (debug when `source.debug`), run the step on a tokio runtime and
//! print its response as one JSON line on stdout. Nothing else writes to
//! stdout. Failure: `error: <chain>` (plus a hint when we know one) on
//! stderr and exit status 1. Everything written to stderr passes
//! [`crate::secret::scrub`] (the request's secrets are remembered right
//! after decoding) and control-character escaping. `in` and `out` handle SIGTERM and SIGINT (see
//! [`Interrupt`]): they clean up, print `<step>: interrupted by <signal>;
//! <what was cleaned>` and exit with 128 + the signal number.
//!
//! `--version` and `--help` (`-V`, `-h`) as the first argument print to
//! stdout and exit 0 without reading stdin: the Dockerfile's last stage runs
//! them to prove the copied binary starts. Concourse always passes an
//! absolute path, so they cannot clash with `in`/`out`'s directory argument.
//! Run by hand with stdin on a terminal, a binary prints what it expects on
//! stderr and exits 2 instead of waiting silently.

use std::ffi::OsStr;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::concourse::{CheckRequest, InRequest, OutRequest};
use crate::config::Source;
use crate::error::{Error, Result, chain, hint_with};
use crate::process::Interrupt;

/// Which resource step a binary runs.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// `/opt/resource/check`
    Check,
    /// `/opt/resource/in`
    In,
    /// `/opt/resource/out`
    Out,
}

impl Step {
    /// The file name Concourse runs this step by, under `/opt/resource`.
    pub fn name(self) -> &'static str {
        match self {
            Step::Check => "check",
            Step::In => "in",
            Step::Out => "out",
        }
    }

    /// The step a multi-call binary runs when started as `program` (its
    /// `argv[0]`): decided by the file name only, so `/opt/resource/out`
    /// and `./out` both run `out`.
    pub fn from_program(program: &OsStr) -> Option<Step> {
        match Path::new(program).file_name()?.to_str()? {
            "check" => Some(Step::Check),
            "in" => Some(Step::In),
            "out" => Some(Step::Out),
            _ => None,
        }
    }
}

/// Runs `step` and returns the process exit code.
pub fn main(step: Step) -> ExitCode {
    match std::env::args_os()
        .nth(1)
        .as_deref()
        .and_then(OsStr::to_str)
    {
        Some("--version" | "-V") => return print_stdout(&version_of(step)),
        Some("--help" | "-h") => return print_stdout(&usage(step)),
        _ => {}
    }
    // Run by hand, a binary would wait for a request nobody is typing.
    if std::io::stdin().is_terminal() {
        eprintln!("{}", terminal_notice(step));
        return ExitCode::from(2);
    }
    crate::tls::install_crypto_provider();
    // The request's source, once decoded: the auth hint names the
    // credentials it holds for the registry that refused.
    let mut source = None;
    match run(step, &mut source) {
        Ok(json) => {
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "{json}").and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: writing the response to stdout: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(Error::Interrupted { signal, cleanup }) => {
            eprintln!("{}: interrupted by {signal}; {cleanup}", step.name());
            // The shell's convention for "ended by signal N".
            let signo = match signal {
                "SIGINT" => libc::SIGINT,
                _ => libc::SIGTERM,
            };
            ExitCode::from(128 + signo as u8)
        }
        Err(e) => {
            let message = chain(&e);
            // The one place errors are printed: no known secret, and no
            // terminal control from remote text, gets through.
            eprintln!("error: {}", crate::secret::for_stderr(&message));
            if let Some(hint) = hint_with(&message, source.as_ref()) {
                eprintln!("{hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The git commit the binary was built from (`build.rs`), or `unknown`.
pub const GIT_COMMIT: &str = env!("OCI_BUILD_RESOURCE_GIT_COMMIT");

/// The BuildKit version the resource image bundles: the Dockerfile's
/// `BUILDKIT_VERSION` at build time (`build.rs`).
pub const BUNDLED_BUILDKIT: &str = env!("OCI_BUILD_RESOURCE_BUILDKIT_VERSION");

/// Where the README documents each step, for `--help` and the terminal
/// notice: the repository's README.md and the section's anchor.
fn readme_section(step: Step) -> &'static str {
    match step {
        Step::Check => "README.md#versions-reported-by-check",
        Step::In => "README.md#get-params",
        Step::Out => "README.md#put",
    }
}

/// `oci-build-resource <crate version> (commit <short hash>)`.
pub fn version() -> String {
    format!(
        "{} {} (commit {GIT_COMMIT})",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION")
    )
}

/// What `<step> --version` prints: [`version`], and for `out` the BuildKit
/// the image bundles plus, when one is on `PATH`, what `buildkitd --version`
/// says (the binary an embedded build would start, which differs from the
/// bundled one outside the resource image).
pub fn version_of(step: Step) -> String {
    let mut text = version();
    if let Step::Out = step {
        text.push_str(&format!("\nbundled BuildKit: {BUNDLED_BUILDKIT}"));
        text.push_str(&format!("\n{}", buildkitd_on_path()));
    }
    text
}

/// `buildkitd on PATH: <its --version>`, or why there is none.
fn buildkitd_on_path() -> String {
    let Some(path) = crate::daemon::process::find_on_path() else {
        return "buildkitd on PATH: none (a put then needs source.buildkit_host or BUILDKIT_HOST)"
            .into();
    };
    let answer = std::process::Command::new(&path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output();
    match answer {
        Ok(out) if out.status.success() => format!(
            "buildkitd on PATH: {} ({})",
            String::from_utf8_lossy(&out.stdout).trim(),
            path.display()
        ),
        Ok(out) => format!(
            "buildkitd on PATH: {} did not answer --version ({})",
            path.display(),
            out.status
        ),
        Err(e) => format!("buildkitd on PATH: {} could not run: {e}", path.display()),
    }
}

/// The request, argument and answer of each step, for `--help` and the
/// terminal notice.
fn contract(step: Step) -> String {
    let (args, what, stdin, argv, stdout) = match step {
        Step::Check => (
            "",
            "lists the image's versions (resource `check`)",
            r#"{"source": {"repository": "registry.example.com/app", "tag": "latest"}, "version": null}"#,
            "",
            r#"[{"tag": "latest", "digest": "sha256:..."}], oldest first"#,
        ),
        Step::In => (
            " <destination dir>",
            "fetches one version into a directory (resource `get`)",
            r#"{"source": {"repository": "registry.example.com/app"}, "version": {"tag": "latest", "digest": "sha256:..."}, "params": {"format": "rootfs"}}"#,
            "\n  <destination dir>  where the image is written (Concourse passes the get's output dir)",
            r#"{"version": {...}, "metadata": [{"name": ..., "value": ...}]}"#,
        ),
        Step::Out => (
            " <sources dir>",
            "builds a Dockerfile with BuildKit (or pushes a prebuilt image, or appends layers to a base image with no daemon) and moves the tags (resource `put`)",
            r#"{"source": {"repository": "registry.example.com/app", "tag": "latest"}, "params": {"context": "src"}}"#,
            "\n  <sources dir>  the directory params paths are relative to (Concourse passes the build's working dir)",
            r#"{"version": {"tag": ..., "digest": "sha256:..."}, "metadata": [...]}"#,
        ),
    };
    let name = step.name();
    format!(
        "usage: {name}{args} < request.json\n       {name} --help | --version\n\n\
         `{name}` {what}. Concourse runs it as /opt/resource/{name}.\n\
         stdin:  one JSON request, e.g.\n  {stdin}{argv}\n\
         stdout: one JSON answer, {stdout}\n\
         stderr: progress and logs (`\"debug\": true` in source for more)\n\
         exit:   0 on success, 1 on error (the error and a hint on stderr)"
    )
}

fn usage(step: Step) -> String {
    format!(
        "{}\n{}\n\nEvery key: {}",
        version(),
        contract(step),
        readme_section(step)
    )
}

/// Printed instead of waiting when stdin is a terminal.
fn terminal_notice(step: Step) -> String {
    format!(
        "{}: stdin is a terminal; this binary reads a JSON request on stdin, it does not prompt.\n\
         Pipe one in, e.g. `echo '<request>' | {}`.\n\n{}\n\nEvery key: {} (`{} --help` prints this)",
        step.name(),
        match step {
            Step::Check => "check".to_string(),
            Step::In => "in /tmp/dest".to_string(),
            Step::Out => "out .".to_string(),
        },
        contract(step),
        readme_section(step),
        step.name()
    )
}

fn print_stdout(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(debug: bool) {
    let level = if debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    // Our own crate logs at the chosen level; dependencies (hyper, reqwest,
    // rustls, oci-client) only warn unless debugging, and never print
    // headers (no HTTP dumps: credentials must not reach the build log).
    let filter = tracing_subscriber::EnvFilter::new(format!(
        "warn,oci_build_resource={level}{}",
        if debug { ",oci_client=debug" } else { "" }
    ));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Every event passes the secret scrubber and control escaping.
        .with_writer(|| crate::secret::ScrubWriter::new(std::io::stderr()))
        .with_target(debug)
        .with_ansi(false)
        .without_time()
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Foreign {
            context: "starting the async runtime".into(),
            source: Box::new(e),
        })
}

fn read_stdin() -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| Error::Foreign {
            context: "reading the request from stdin".into(),
            source: Box::new(e),
        })?;
    Ok(buf)
}

fn path_arg(what: &str) -> Result<PathBuf> {
    std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or_else(|| Error::Other(format!("{what} path not specified")))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Foreign {
        context: "encoding the response".into(),
        source: Box::new(e),
    })
}

fn run(step: Step, source: &mut Option<Source>) -> Result<String> {
    match step {
        Step::Check => serve(source, |req: CheckRequest| crate::commands::check::run(req)),
        Step::In => {
            let dest = path_arg("destination")?;
            serve(source, |req: InRequest| async move {
                let interrupt = Interrupt::listen();
                crate::commands::get::run(req, &dest, &interrupt).await
            })
        }
        Step::Out => {
            let src = path_arg("source")?;
            serve(source, |req: OutRequest| async move {
                let interrupt = Interrupt::listen();
                crate::commands::put::run(req, &src, &interrupt).await
            })
        }
    }
}

/// A step's request: decoded from stdin, holding a `source`.
trait Request: Sized {
    fn decode(bytes: &[u8]) -> Result<Self>;
    fn source_mut(&mut self) -> &mut Source;
}

macro_rules! request {
    ($($t:ty),*) => {$(
        impl Request for $t {
            fn decode(bytes: &[u8]) -> Result<Self> {
                Ok(<$t>::from_json(bytes)?)
            }
            fn source_mut(&mut self) -> &mut Source {
                &mut self.source
            }
        }
    )*};
}
request!(CheckRequest, InRequest, OutRequest);

/// The steps every command shares, in order: decode the request, scrub its
/// secrets from all output, log as its source asks, authenticate with ECR
/// (whose token then is a secret too), run `command`, print its answer as
/// JSON. `source` keeps the request's source for the error hints.
fn serve<R, T, Fut>(source: &mut Option<Source>, command: impl FnOnce(R) -> Fut) -> Result<String>
where
    R: Request,
    T: serde::Serialize,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut req = R::decode(&read_stdin()?)?;
    req.source_mut().remember_secrets();
    *source = Some(req.source_mut().clone());
    init_logging(req.source_mut().debug);
    let answer = runtime()?.block_on(async {
        let given = req.source_mut().clone();
        *req.source_mut() = crate::ecr::authenticate(given).await?;
        req.source_mut().remember_secrets();
        command(req).await
    })?;
    to_json(&answer)
}

#[cfg(test)]
mod tests;
