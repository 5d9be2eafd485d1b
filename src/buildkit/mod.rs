//! TODO: module buildkit (owned by its issue).
