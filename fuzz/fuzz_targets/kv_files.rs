//! `cargo +nightly fuzz run kv_files`: see targets/kv_files.rs for the input format
//! and what is asserted.
#![no_main]

#[allow(dead_code)]
#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::kv_files::run(data));
