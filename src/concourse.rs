//! Concourse protocol types.
