//! `cargo +nightly fuzz run request`: see targets/request.rs for the input format
//! and what is asserted.
#![no_main]

#[allow(dead_code)]
#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::request::run(data));
