//! TODO: module config (owned by its issue).

pub mod put;
