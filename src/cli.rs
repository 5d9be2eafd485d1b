//! The edge of the program: argv/stdin in, one JSON document out.
//!
//! Each binary calls [`main`] with its step. We read the whole request from
//! stdin, decode it (errors are "invalid payload: ..."), set up logging to
//! stderr (debug when `source.debug`), run the step on a tokio runtime and
//! print its response as one JSON line on stdout. Nothing else writes to
//! stdout. Failure: `error: <chain>` (plus a hint when we know one) on
//! stderr and exit status 1. `in` and `out` handle SIGTERM and SIGINT (see
//! [`Interrupt`]): they clean up, print `<step>: interrupted by <signal>;
//! <what was cleaned>` and exit with 128 + the signal number.
//!
//! `--version` and `--help` as the only argument print to stdout and exit 0
//! without reading stdin: the Dockerfile's last stage runs them to prove the
//! copied binary starts. Concourse always passes an absolute path, so they
//! cannot clash with `in`/`out`'s directory argument.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::commands::Interrupt;
use crate::concourse::{CheckRequest, InRequest, OutRequest};
use crate::error::{Error, Result, chain, hint};

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
        Some("--version") => return print_stdout(&version()),
        Some("--help") => return print_stdout(&usage(step)),
        _ => {}
    }
    crate::tls::install_crypto_provider();
    match run(step) {
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
            eprintln!("error: {message}");
            if let Some(hint) = hint(&message) {
                eprintln!("{hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// `oci-build-resource <crate version>`.
pub fn version() -> String {
    format!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
}

fn usage(step: Step) -> String {
    let args = match step {
        Step::Check => "",
        Step::In => " <destination dir>",
        Step::Out => " <sources dir>",
    };
    format!(
        "{}\nusage: {}{args} < request.json\n\
         The Concourse resource step `{}`: reads the request JSON on stdin and \
         writes one JSON response on stdout (see README.md).",
        version(),
        step.name(),
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
        .with_writer(std::io::stderr)
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

fn run(step: Step) -> Result<String> {
    match step {
        Step::Check => {
            let mut req = CheckRequest::from_json(&read_stdin()?)?;
            init_logging(req.source.debug);
            let versions = runtime()?.block_on(async {
                req.source = crate::ecr::authenticate(req.source).await?;
                crate::commands::check::run(req).await
            })?;
            to_json(&versions)
        }
        Step::In => {
            let dest = path_arg("destination")?;
            let mut req = InRequest::from_json(&read_stdin()?)?;
            init_logging(req.source.debug);
            let resp = runtime()?.block_on(async {
                req.source = crate::ecr::authenticate(req.source).await?;
                let interrupt = Interrupt::listen();
                crate::commands::get::run(req, &dest, &interrupt).await
            })?;
            to_json(&resp)
        }
        Step::Out => {
            let src = path_arg("source")?;
            let mut req = OutRequest::from_json(&read_stdin()?)?;
            init_logging(req.source.debug);
            let resp = runtime()?.block_on(async {
                req.source = crate::ecr::authenticate(req.source).await?;
                let interrupt = Interrupt::listen();
                crate::commands::put::run(req, &src, &interrupt).await
            })?;
            to_json(&resp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_program_uses_the_file_name() {
        for (program, want) in [
            ("/opt/resource/check", Some("check")),
            ("in", Some("in")),
            ("./out", Some("out")),
            ("/opt/resource/oci-build-resource", None),
            ("/opt/out/other", None),
            ("", None),
        ] {
            let got = Step::from_program(OsStr::new(program)).map(Step::name);
            assert_eq!(got, want, "{program}");
        }
    }
}
