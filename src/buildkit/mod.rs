//! TODO: module buildkit (owned by its issue).

pub mod daemon;
