//! Which failed solves are worth one more try: a push (or a registry cache
//! export) that the registry broke off in a way that says nothing about the
//! build.
//!
//! BuildKit's pusher retries a blob upload on a reset or a 5xx, but not a
//! commit the registry refused with `DIGEST_INVALID`. The distribution
//! registry answers that when two uploads of the same blob into one
//! repository commit at once, which is what BuildKit's concurrent image push
//! and `cache: true` export do with every shared layer; the manifest PUT then
//! fails with `blob unknown to registry`. A second solve finds the steps in
//! the daemon's cache and the blobs already in the registry, so it is cheap,
//! and no tag moved in between: tags are put only after a solve succeeds.
//!
//! Only failures of the export steps count: a `RUN` step whose own download
//! got a 503 failed the build, not the push.

use crate::buildkit;

/// Why `error` is a transient push failure, or `None` when it is not.
pub fn push_failure(error: &buildkit::Error) -> Option<&'static str> {
    let text = match error {
        buildkit::Error::PushStalled { .. } => {
            return Some("the registry stalled the daemon's push");
        }
        buildkit::Error::BuildFailed { step, error, .. } if is_export_step(step) => error,
        buildkit::Error::Solve(message) if mentions_export(message) => message,
        _ => return None,
    };
    let text = text.to_ascii_lowercase();
    SIGNS
        .iter()
        .find(|(sign, _)| text.contains(sign))
        .map(|(_, why)| *why)
}

/// Lower-case text in BuildKit's (containerd's, the registry's) error, and
/// what it means.
const SIGNS: &[(&str, &str)] = &[
    (
        "provided digest did not match uploaded content",
        "the registry refused an upload's digest",
    ),
    ("digest_invalid", "the registry refused an upload's digest"),
    (
        "blob unknown to registry",
        "a blob the manifest names did not arrive",
    ),
    ("blob_unknown", "a blob the manifest names did not arrive"),
    ("too many requests", "the registry is rate limiting"),
    ("toomanyrequests", "the registry is rate limiting"),
    ("500 internal server error", "the registry answered 500"),
    ("502 bad gateway", "the registry answered 502"),
    ("503 service unavailable", "the registry answered 503"),
    ("504 gateway timeout", "the registry answered 504"),
    ("connection reset by peer", "the connection was reset"),
    ("broken pipe", "the connection was reset"),
    ("unexpected eof", "the connection ended early"),
];

/// The vertices BuildKit names for exports: `exporting to image`,
/// `exporting cache to registry`, `exporting to oci image format`, ...
fn is_export_step(step: &str) -> bool {
    step.trim_start().starts_with("exporting ")
}

/// Export failures that reach us without a failed vertex.
fn mentions_export(message: &str) -> bool {
    [
        "failed to push",
        "error writing layer blob",
        "error writing manifest blob",
        "exporting cache",
    ]
    .iter()
    .any(|m| message.contains(m))
}

#[cfg(test)]
mod tests;
