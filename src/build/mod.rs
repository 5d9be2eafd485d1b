//! The `put` build: params → BuildKit solve request, the tags to move, the
//! read-only registry that serves preloaded images to BuildKit, and pushing
//! results that do not go straight from BuildKit to the registry.

pub mod manifest;
pub mod serve;
pub mod solve;
pub mod tags;
