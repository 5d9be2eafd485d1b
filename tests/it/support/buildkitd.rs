//! Locating a standalone `buildkitd`. None is packaged for Debian 12, so it may
//! truly be absent: tests that need one carry
//! `#[cfg_attr(not(have_buildkitd), ignore = ...)]` (build.rs sets the cfg when
//! it finds one, and always under `CI=true`), and fail here when it is gone.

use std::path::PathBuf;

/// `$BUILDKITD`, else `buildkitd` on `PATH`; panics when there is neither.
pub fn find() -> PathBuf {
    match std::env::var_os("BUILDKITD") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "BUILDKITD={} does not name a file",
                path.display()
            );
            path
        }
        _ => super::which("buildkitd").unwrap_or_else(|| {
            panic!(
                "needs buildkitd: set BUILDKITD or put it on PATH \
                 (scripts/test uses ../shared/buildkit/buildkitd)"
            )
        }),
    }
}
