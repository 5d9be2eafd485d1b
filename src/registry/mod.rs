//! TODO: module registry (owned by its issue).
