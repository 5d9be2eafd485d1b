//! The one integration-test binary: black-box tests of the three commands
//! against real registries and daemons started by `support`.
//!
//! - `support`: the test world (services, peers, fixtures) and its self-tests.
//! - `cli`: the binaries run by hand (`--help`, `--version`, a terminal).
//! - `check`: `/opt/resource/check` against real registries, asserted against
//!   what skopeo sees.
//! - `ecr`: check, put and get with ECR auth through moto (STS, ECR).
//! - `get`: `/opt/resource/in` in every format, asserted against umoci, skopeo
//!   and dockerd.
//! - `buildkit`: the BuildKit client library against dockerd's built-in
//!   BuildKit and, when present, a standalone buildkitd.
//! - `put`: `/opt/resource/out` building and pushing on each backend, checked
//!   with skopeo and a following `check`.
//! - `put_attestations`: provenance (default `min`, `max`, `false`) and SBOM
//!   attestations from `out`, and `check`/`in` on an index that holds them;
//!   their refusal on the Docker Engine and without a reachable scanner.
//! - `put_layers`: `out` with `params.layers` (no daemon), against the
//!   `skopeo` + `umoci insert` flow.
//! - `put_main_path`: `out` on the embedded and a standalone buildkitd:
//!   multi-platform, registry cache, named contexts, push order, mTLS, SIGTERM.
//! - `put_fleet`: two mTLS buildkitd on loopback sharing layers through the
//!   registry cache (docs/put.md, "A shared BuildKit fleet").
//! - `put_ssh`: `out` on `ssh://` hosts (sshd in front of dockerd and of a
//!   standalone buildkitd): builds, refused keys and host keys, dropped
//!   connections.
//! - `put_rootless`: `out` on the embedded buildkitd without privileges, as
//!   root of a user namespace and as a user through rootlesskit.
//! - `progress`: layer progress lines on stderr for a push and a get.
//! - `signals`: SIGTERM to `out` and `in` mid-work leaves nothing behind.
//! - `sign`: `out` signing what it pushes (a build, `params.image`,
//!   `params.layers`) and `check`/`in` verifying, both checked against the
//!   `sigstore` crate.
//! - `readme`: every yaml example of README.md and docs/ goes through the config
//!   decoders (no tools needed).
//! - `faults`: each operation through a fault-injecting proxy: a retry that
//!   succeeds, or a clear failure that leaves nothing behind.
//! - `artifacts`: Helm charts and OCI 1.1 artifacts refused by `in` and
//!   `params.layers`, and skipped by `check`.
//! - `load`: many concurrent `in` and `out` against one registry.

mod support;

mod artifacts;
mod buildkit;
mod check;
mod cli;
mod ecr;
mod faults;
mod get;
mod load;
mod progress;
mod put;
mod put_attestations;
mod put_existing;
mod put_fleet;
mod put_images;
mod put_layers;
mod put_main_path;
mod put_mounts;
mod put_replicas;
mod put_rootless;
mod put_ssh;
mod readme;
mod sign;
mod signals;
