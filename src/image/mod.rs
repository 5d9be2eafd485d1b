//! TODO: module image (owned by its issue).
