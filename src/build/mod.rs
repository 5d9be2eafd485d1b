//! TODO: module build (owned by its issue).
