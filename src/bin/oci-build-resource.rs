//! The multi-call binary the resource image ships once, at
//! `/opt/resource/oci-build-resource`, with `check`, `in` and `out` as links
//! to it (see the Dockerfile): the name it is started by picks the step.
use std::process::ExitCode;

use oci_build_resource::cli::{self, Step};

fn main() -> ExitCode {
    let program = std::env::args_os().next().unwrap_or_default();
    match Step::from_program(&program) {
        Some(step) => cli::main(step),
        None if std::env::args_os().nth(1).is_some_and(|a| a == "--version") => {
            println!("{}", cli::version_of(Step::Out));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "error: started as {:?}: run this binary through a link named check, in or out \
                 (as /opt/resource has them)",
                program
            );
            ExitCode::from(2)
        }
    }
}
