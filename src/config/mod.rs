//! TODO: module config (owned by its issue).
