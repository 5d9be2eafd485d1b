//! Generates the BuildKit gRPC bindings (`src/buildkit/proto.rs` includes
//! them) from our own minimal `.proto` files under `proto/`.
//!
//! The `.proto` files are parsed with `protox`, a pure-Rust protobuf compiler,
//! instead of a system `protoc`: building the crate then needs nothing but
//! cargo (no `protobuf-compiler` package in CI images, on developer machines or
//! in the Dockerfile's build stage), and the output cannot drift with the
//! `protoc` version a machine happens to have. tonic-prost-build then turns
//! the descriptor set into prost messages and tonic clients/servers.

/// Every file we compile, one per upstream proto (package in brackets).
const PROTO_FILES: &[&str] = &[
    // [moby.buildkit.v1] Control: Solve, Status, Session, ListWorkers, Info.
    "proto/moby/buildkit/v1/control.proto",
    // [moby.buildkit.v1.types] worker records.
    "proto/moby/buildkit/v1/types/worker.proto",
    // [pb] Platform only.
    "proto/pb/ops.proto",
    // [fsutil.types] DiffCopy packets and file stats.
    "proto/fsutil/types/stat.proto",
    "proto/fsutil/types/wire.proto",
    // [moby.filesync.v1] FileSync, FileSend and Auth (served in the session).
    "proto/moby/filesync/v1/filesync.proto",
    "proto/moby/filesync/v1/auth.proto",
    // [moby.buildkit.secrets.v1] Secrets (served in the session).
    "proto/moby/buildkit/secrets/v1/secrets.proto",
    // [moby.sshforward.v1] SSH agent forwarding (served in the session).
    "proto/moby/sshforward/v1/ssh.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTO_FILES, ["proto"])?;
    tonic_prost_build::configure()
        // Payload fields become `bytes::Bytes`: upload chunks and session
        // traffic are passed along without copying.
        .bytes(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
