//! TODO: module commands (owned by its issue).
