//! `cargo +nightly fuzz run fsutil`: see targets/fsutil.rs for the input format
//! and what is asserted.
#![no_main]

#[allow(dead_code)]
#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::fsutil::run(data));
