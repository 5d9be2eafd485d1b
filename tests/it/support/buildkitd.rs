//! Locating a standalone `buildkitd`. None is packaged for Debian 12, so it may
//! truly be absent: tests that need one skip loudly instead of failing.

use std::path::PathBuf;

/// `$BUILDKITD`, else `buildkitd` on `PATH`; prints a SKIP line when absent.
pub fn find() -> Option<PathBuf> {
    let found = match std::env::var_os("BUILDKITD") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "BUILDKITD={} does not name a file",
                path.display()
            );
            Some(path)
        }
        _ => super::which("buildkitd"),
    };
    if found.is_none() {
        super::skip("needs buildkitd (set BUILDKITD or put it on PATH)");
    }
    found
}
