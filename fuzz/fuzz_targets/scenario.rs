//! Scenario files: any text gives a plan or diagnostics that point into the text.
#![no_main]

#[path = "../../harness/tests/support/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|input: &[u8]| oracles::scenario_input(input));
