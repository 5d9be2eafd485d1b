//! `cargo +nightly fuzz run image`: see targets/image.rs for the input format
//! and what is asserted.
#![no_main]

#[allow(dead_code)]
#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::image::run(data));
