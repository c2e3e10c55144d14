//! HdrHistogram interval logs, as the report reads them from run folders.
#![no_main]

#[path = "../../harness/tests/support/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|input: &[u8]| oracles::check_hlog(input));
