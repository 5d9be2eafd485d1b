//! The one integration-test binary: black-box tests of the three commands
//! against real registries and daemons started by `support`.
//!
//! - `support`: the test world (services, peers, fixtures) and its self-tests.
//! - `check`: `/opt/resource/check` against real registries, asserted against
//!   what skopeo sees.
//! - `get`: `/opt/resource/in` in every format, asserted against umoci, skopeo
//!   and dockerd.
//! - `buildkit`: the BuildKit client library against dockerd's built-in
//!   BuildKit and, when present, a standalone buildkitd.
//! - `put`: `/opt/resource/out` building and pushing on each backend, checked
//!   with skopeo and a following `check`.
//! - `put_main_path`: `out` on the embedded and a standalone buildkitd:
//!   multi-platform, registry cache, named contexts, push order, mTLS, SIGTERM.
//! - `put_fleet`: two mTLS buildkitd on loopback sharing layers through the
//!   registry cache (README, "A shared BuildKit fleet").
//! - `put_ssh`: `out` on `ssh://` hosts (sshd in front of dockerd and of a
//!   standalone buildkitd): builds, refused keys and host keys, dropped
//!   connections.
//! - `signals`: SIGTERM to `out` and `in` mid-work leaves nothing behind.

mod support;

mod buildkit;
mod check;
mod get;
mod put;
mod put_fleet;
mod put_main_path;
mod put_ssh;
mod signals;
