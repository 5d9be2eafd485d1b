//! The edge of the program: argv/stdin in, one JSON document out.

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

/// Runs `step` and returns the process exit code.
pub fn main(step: Step) -> std::process::ExitCode {
    eprintln!("error: {step:?} is not implemented yet");
    std::process::ExitCode::FAILURE
}
