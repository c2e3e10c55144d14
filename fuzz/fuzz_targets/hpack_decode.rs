//! HPACK: sequences of header blocks on one connection's decoder.
#![no_main]

#[path = "../../harness/tests/support/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|input: &[u8]| oracles::check_hpack(input));
