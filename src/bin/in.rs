//! `/opt/resource/in`: see [`oci_build_resource::cli`].
fn main() -> std::process::ExitCode {
    oci_build_resource::cli::main(oci_build_resource::cli::Step::In)
}
