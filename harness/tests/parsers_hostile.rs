//! The parsers that read what servers send, against hostile bytes: the properties of
//! `support/oracles.rs` (no panic, no loop, the same outcome however the bytes are cut)
//! on every input in `fuzz/seeds` and `fuzz/regressions` (inputs the fuzz targets once
//! failed on), then on inputs mutated from them with a fixed seed. The fuzz targets in
//! `fuzz/` search much further; this keeps what they found from coming back.

#[path = "support/oracles.rs"]
mod oracles;

use std::path::{Path, PathBuf};

/// Inputs saved for `target`: its seed corpus and its regressions.
fn saved(target: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            out.push(std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())));
        }
    }
    assert!(!out.is_empty(), "no saved inputs for {target}");
    out
}

/// xorshift64*: the same inputs on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes servers send that matter to the parsers, spliced in by the mutator.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Connection: close\r\n",
    b"ffffffffffffffffff\r\n",
    b"0\r\n\r\n",
    b"-1",
    b";ext=1",
    b"\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    b"\x00\x40\x00",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
];

/// One mutation of `input`: flip, insert, delete, duplicate or splice a token.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.insert(at, rng.next() as u8),
            2 if at < v.len() => {
                let end = (at + 1 + rng.below(16)).min(v.len());
                v.drain(at..end);
            }
            3 if at < v.len() => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                let copy = v[at..end].to_vec();
                let to = rng.below(v.len() + 1);
                v.splice(to..to, copy);
            }
            _ => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
        }
    }
    v.truncate(8192);
    v
}

/// Runs `check` on every saved input of `target`, then on `rounds` mutants of them.
fn hammer(target: &str, rounds: usize, check: impl Fn(&[u8])) {
    let seeds = saved(target);
    for s in &seeds {
        check(s);
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut pool = seeds;
    for _ in 0..rounds {
        let base = &pool[rng.below(pool.len())];
        let m = mutate(&mut rng, base);
        check(&m);
        if pool.len() < 256 {
            pool.push(m);
        }
    }
}

#[test]
fn h1_reader_reads_the_same_however_bytes_are_cut() {
    hammer("h1_response", 20_000, oracles::h1_input);
}

#[test]
fn h1_reader_cut_byte_by_byte() {
    for s in saved("h1_response") {
        oracles::check_h1(&s[s.len().min(5)..], &[1], false);
    }
}

#[test]
fn h2_client_reads_the_same_however_bytes_are_cut() {
    hammer("h2_client", 20_000, oracles::h2_input);
}

#[test]
fn hpack_decoder_survives_hostile_blocks() {
    hammer("hpack_decode", 20_000, oracles::check_hpack);
}

#[test]
fn scenario_diagnostics_point_into_the_text() {
    hammer("scenario", 2000, oracles::scenario_input);
}

#[test]
fn interval_logs_read_or_fail_cleanly() {
    hammer("hlog_read", 2000, oracles::check_hlog);
}
