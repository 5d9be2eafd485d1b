//! The one integration-test binary: black-box tests of the three commands
//! against real registries and daemons started by `support`.
//!
//! - `support`: the test world (services, peers, fixtures) and its self-tests.
//! - `check`: `/opt/resource/check` against real registries, asserted against
//!   what skopeo sees.
//! - `ecr`: check, put and get with ECR auth through moto (STS, ECR).
//! - `get`: `/opt/resource/in` in every format, asserted against umoci, skopeo
//!   and dockerd.
//! - `buildkit`: the BuildKit client library against dockerd's built-in
//!   BuildKit and, when present, a standalone buildkitd.
//! - `put`: `/opt/resource/out` building and pushing on each backend, checked
//!   with skopeo and a following `check`.
//! - `put_main_path`: `out` on the embedded and a standalone buildkitd:
//!   multi-platform, registry cache, named contexts, push order, mTLS, SIGTERM.
//! - `signals`: SIGTERM to `out` and `in` mid-work leaves nothing behind.
//! - `readme`: every yaml example of README.md goes through the config
//!   decoders (no tools needed).

mod support;

mod buildkit;
mod check;
mod ecr;
mod get;
mod put;
mod put_main_path;
mod readme;
mod signals;
