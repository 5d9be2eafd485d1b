//! Generated BuildKit protobuf and gRPC bindings (see `build.rs` and
//! `proto/`), one Rust module per protobuf package so that the `super::`
//! paths prost generates between packages resolve without rewriting.
//!
//! Lint allowances live here only: the generated code keeps upstream's field
//! names (`ExporterAttrsDeprecated`, `ID`) and has no doc comments.
#![allow(missing_docs, clippy::all, clippy::pedantic, non_snake_case)]

/// `moby.*` packages.
pub mod moby {
    /// `moby.buildkit.*`.
    pub mod buildkit {
        /// `moby.buildkit.v1`: the Control service.
        pub mod v1 {
            tonic::include_proto!("moby.buildkit.v1");
            /// `moby.buildkit.v1.types`: worker records.
            pub mod types {
                tonic::include_proto!("moby.buildkit.v1.types");
            }
        }
        /// `moby.buildkit.secrets.*`.
        pub mod secrets {
            /// `moby.buildkit.secrets.v1`: the Secrets service.
            pub mod v1 {
                tonic::include_proto!("moby.buildkit.secrets.v1");
            }
        }
    }
    /// `moby.filesync.*`.
    pub mod filesync {
        /// `moby.filesync.v1`: FileSync, FileSend and Auth.
        pub mod v1 {
            tonic::include_proto!("moby.filesync.v1");
        }
    }
    /// `moby.sshforward.*`.
    pub mod sshforward {
        /// `moby.sshforward.v1`: SSH agent forwarding.
        pub mod v1 {
            tonic::include_proto!("moby.sshforward.v1");
        }
    }
}

/// `pb`: LLB types (only `Platform`).
pub mod pb {
    tonic::include_proto!("pb");
}

/// `fsutil.*`.
pub mod fsutil {
    /// `fsutil.types`: DiffCopy packets and stats.
    pub mod types {
        tonic::include_proto!("fsutil.types");
    }
}
