//! The three resource steps, one module each: each takes the validated
//! request and returns the response value; [`crate::cli`] does the I/O.

pub mod check;
pub mod get;
pub mod put;
