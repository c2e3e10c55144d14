//! HTTP/1.1 responses: any bytes, cut anywhere, read as back-to-back responses.
#![no_main]

#[path = "../../harness/tests/support/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|input: &[u8]| oracles::h1_input(input));
