//! HTTP/2 client: any server bytes, cut anywhere, with three requests in flight.
#![no_main]

#[path = "../../harness/tests/support/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|input: &[u8]| oracles::h2_input(input));
