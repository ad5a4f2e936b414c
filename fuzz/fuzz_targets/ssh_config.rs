#![no_main]

// Each target uses one of the shared cases.
#[allow(dead_code)]
#[path = "../../tests/properties/cases.rs"]
mod cases;

libfuzzer_sys::fuzz_target!(|data: &[u8]| cases::ssh_config(data));
