//! HPACK (RFC 7541) for a load client: request header blocks encoded once, and a response
//! decoder that keeps the dynamic table in step but keeps only what a load client reads.
//!
//! The decoder tracks each dynamic-table entry's size (all that eviction needs) and, for
//! `:status` entries, the status; it never builds header names or values. Huffman strings
//! are decoded only where a length or a status is needed.

use std::collections::VecDeque;

use crate::server_timing::ServerTiming;
use h2lab_common::hpack::{get_integer, put_integer, STATIC};

/// Reads an HPACK integer, as a decode error.
fn integer(block: &mut &[u8], n: u8) -> Result<usize, DecodeError> {
    get_integer(block, n).map_err(DecodeError)
}

/// Why a header block could not be decoded (a COMPRESSION_ERROR on the connection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HPACK: {0}")]
pub struct DecodeError(pub &'static str);

/// [`STATIC`] as the decoder sees it, built once: responses index `:status 200` (8)
/// nearly every time, and comparing names and parsing "200" per response is waste.
static STATIC_ENTRIES: std::sync::LazyLock<[Entry; 61]> = std::sync::LazyLock::new(|| {
    STATIC.map(|(name, value)| {
        let status_name = name == ":status";
        Entry {
            size: 0,
            name_len: name.len(),
            status_name,
            status: if status_name {
                value.parse().ok()
            } else {
                None
            },
            timing_name: false,
            timing_value: None,
        }
    })
});

/// The table size this client's SETTINGS leave at the default (RFC 7541 §4.2).
pub const TABLE_SIZE: usize = 4096;

/// What the decoder remembers of one dynamic-table entry.
#[derive(Debug, Clone)]
struct Entry {
    /// name length + value length + 32 (RFC 7541 §4.1).
    size: usize,
    /// Length of the name, for a literal that reuses it.
    name_len: usize,
    /// Whether the name is `:status`.
    status_name: bool,
    /// The status, for a `:status` entry with a valid value.
    status: Option<u16>,
    /// Whether the name is `server-timing`.
    timing_name: bool,
    /// The value of a `server-timing` entry: an indexed field may repeat it.
    timing_value: Option<Box<[u8]>>,
}

/// A name as a field representation gives it.
struct Name {
    len: usize,
    status: bool,
    timing: bool,
}

const SERVER_TIMING: &[u8] = b"server-timing";

/// Response-side HPACK state of one connection.
#[derive(Debug)]
pub struct Decoder {
    table: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    scratch: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: TABLE_SIZE,
            scratch: Vec::new(),
        }
    }
}

impl Decoder {
    /// Decodes one complete header block; returns its `:status`, if it has one.
    pub fn decode(&mut self, block: &[u8]) -> Result<Option<u16>, DecodeError> {
        self.decode_timed(block, &mut ServerTiming::default())
    }

    /// [`Decoder::decode`], with the block's `server-timing` entries added to `timing`
    /// (the only header besides `:status` whose value is read).
    pub fn decode_timed(
        &mut self,
        mut block: &[u8],
        timing: &mut ServerTiming,
    ) -> Result<Option<u16>, DecodeError> {
        let mut status = None;
        while let Some(&first) = block.first() {
            if first & 0x80 != 0 {
                let index = integer(&mut block, 7)?;
                let entry = self.lookup(index)?;
                if entry.status_name && status.is_none() {
                    status = Some(entry.status.ok_or(DecodeError("bad :status"))?);
                }
                if let Some(v) = &entry.timing_value {
                    timing.add(v);
                }
            } else if first & 0xe0 == 0x20 {
                let size = integer(&mut block, 5)?;
                if size > TABLE_SIZE {
                    return Err(DecodeError("table size update above the limit"));
                }
                self.max_size = size;
                self.evict(0);
            } else {
                // 01: with incremental indexing (6-bit index); 0000 and 0001: without
                // indexing and never indexed (4-bit index).
                let indexing = first & 0xc0 == 0x40;
                let index = integer(&mut block, if indexing { 6 } else { 4 })?;
                let name = if index == 0 {
                    let len = self.string(&mut block, true)?;
                    Name {
                        status: &self.scratch[..] == b":status",
                        timing: &self.scratch[..] == SERVER_TIMING,
                        len,
                    }
                } else {
                    let e = self.lookup(index)?;
                    Name {
                        len: e.name_len,
                        status: e.status_name,
                        timing: e.timing_name,
                    }
                };
                let value_len = self.string(&mut block, indexing || name.status || name.timing)?;
                let value_status = if name.status {
                    Some(parse_status(&self.scratch[..value_len]))
                } else {
                    None
                };
                if let Some(s) = value_status {
                    if status.is_none() {
                        status = Some(s.ok_or(DecodeError("bad :status"))?);
                    }
                }
                if name.timing {
                    timing.add(&self.scratch[..value_len]);
                }
                if indexing {
                    let timing_value = name
                        .timing
                        .then(|| self.scratch[..value_len].to_vec().into_boxed_slice());
                    self.insert(Entry {
                        size: name.len + value_len + 32,
                        name_len: name.len,
                        status_name: name.status,
                        status: value_status.flatten(),
                        timing_name: name.timing,
                        timing_value,
                    });
                }
            }
        }
        Ok(status)
    }

    fn lookup(&self, index: usize) -> Result<&Entry, DecodeError> {
        match index {
            0 => Err(DecodeError("index 0")),
            1..=61 => Ok(&STATIC_ENTRIES[index - 1]),
            _ => self
                .table
                .get(index - 62)
                .ok_or(DecodeError("index beyond the dynamic table")),
        }
    }

    /// Reads a string literal; when `keep`, returns its decoded length and leaves its
    /// bytes in `scratch` (otherwise the length may be returned as 0).
    fn string(&mut self, block: &mut &[u8], keep: bool) -> Result<usize, DecodeError> {
        let huffman = block.first().is_some_and(|b| b & 0x80 != 0);
        let len = integer(block, 7)?;
        if len > block.len() {
            return Err(DecodeError("string beyond the block"));
        }
        let (raw, rest) = block.split_at(len);
        *block = rest;
        self.scratch.clear();
        if !huffman {
            if keep {
                self.scratch.extend_from_slice(raw);
            }
            return Ok(len);
        }
        if !keep {
            // Neither inserted nor a status: neither its bytes nor its length are needed.
            return Ok(0);
        }
        httlib_huffman::decode(
            raw,
            &mut self.scratch,
            httlib_huffman::DecoderSpeed::FourBits,
        )
        .map_err(|_| DecodeError("bad Huffman string"))?;
        Ok(self.scratch.len())
    }

    fn insert(&mut self, entry: Entry) {
        if entry.size > self.max_size {
            // RFC 7541 §4.4: an entry larger than the table empties it.
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(entry.size);
        self.size += entry.size;
        self.table.push_front(entry);
    }

    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            match self.table.pop_back() {
                Some(e) => self.size -= e.size,
                None => break,
            }
        }
    }
}

fn parse_status(v: &[u8]) -> Option<u16> {
    match v {
        [a, b, c] if v.iter().all(u8::is_ascii_digit) && *a != b'0' => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// Appends a field as "literal without indexing" (RFC 7541 §6.2.2), with the name from
/// the static table when it is there. Nothing enters the server's dynamic table, so the
/// block can be sent on any connection, any number of times.
pub fn put_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    match STATIC.iter().position(|(n, _)| *n == name) {
        Some(i) => put_integer(out, 0, 4, i + 1),
        None => {
            out.push(0);
            put_integer(out, 0, 7, name.len());
            out.extend_from_slice(name.as_bytes());
        }
    }
    put_integer(out, 0, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// The header block of a request, encoded once and sent as is for every request.
/// `headers` names are lowercased; connection-specific ones (RFC 9113 §8.2.2) are left out.
pub fn request_block(
    method: &str,
    scheme: &str,
    authority: &str,
    path: &str,
    headers: &[(String, String)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    match method {
        "GET" => out.push(0x82),
        "POST" => out.push(0x83),
        m => put_literal(&mut out, ":method", m),
    }
    match scheme {
        "http" => out.push(0x86),
        "https" => out.push(0x87),
        s => put_literal(&mut out, ":scheme", s),
    }
    put_literal(&mut out, ":authority", authority);
    match path {
        "/" => out.push(0x84),
        p => put_literal(&mut out, ":path", p),
    }
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let connection_specific = matches!(
            name.as_str(),
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "transfer-encoding"
                | "upgrade"
                | "host"
        ) || (name == "te" && !value.eq_ignore_ascii_case("trailers"));
        if !connection_specific {
            put_literal(&mut out, &name, value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7541 C.3: three requests without Huffman coding, decoded in sequence.
    #[test]
    fn the_rfc_examples_keep_the_table_in_step() {
        let mut d = Decoder::default();
        let c31 = hex("828684410f7777772e6578616d706c652e636f6d");
        assert_eq!(d.decode(&c31), Ok(None));
        assert_eq!((d.table.len(), d.size), (1, 57));
        let c32 = hex("828684be58086e6f2d6361636865");
        d.decode(&c32).unwrap();
        assert_eq!((d.table.len(), d.size), (2, 110));
        let c33 = hex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565");
        d.decode(&c33).unwrap();
        assert_eq!((d.table.len(), d.size), (3, 164));
    }

    /// RFC 7541 C.6: responses with Huffman coding and a 256-byte table (evictions).
    #[test]
    fn huffman_responses_with_evictions_give_their_status() {
        let mut d = Decoder {
            max_size: 256,
            ..Decoder::default()
        };
        let c61 = hex(
            "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3",
        );
        assert_eq!(d.decode(&c61), Ok(Some(302)));
        assert_eq!((d.table.len(), d.size), (4, 222));
        let c62 = hex("4883640effc1c0bf");
        assert_eq!(d.decode(&c62), Ok(Some(307)));
        assert_eq!((d.table.len(), d.size), (4, 222));
        let c63 = hex(
            "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
        );
        assert_eq!(d.decode(&c63), Ok(Some(200)));
        assert_eq!((d.table.len(), d.size), (3, 215));
        assert_eq!(d.decode(&[0x88]), Ok(Some(200)));
    }

    #[test]
    fn server_timing_is_read_literal_and_indexed() {
        let mut d = Decoder::default();
        let mut block = vec![0x88, 0x40, 13];
        block.extend_from_slice(b"server-timing");
        block.push(11);
        block.extend_from_slice(b"app;dur=1.5");
        let mut t = ServerTiming::default();
        assert_eq!(d.decode_timed(&block, &mut t), Ok(Some(200)));
        assert_eq!(t.iter().map(|(_, us)| us).collect::<Vec<_>>(), [1500]);
        // The next response repeats it by index 62 (the newest dynamic entry).
        let mut t = ServerTiming::default();
        assert_eq!(d.decode_timed(&[0x88, 0xbe], &mut t), Ok(Some(200)));
        assert_eq!(
            t.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            [b"app".as_slice()]
        );
        // A literal without indexing, name by index 62: the value is the new one.
        let mut block = vec![0x88, 0x0f, 62 - 15, 8];
        block.extend_from_slice(b"db;dur=2");
        let mut t = ServerTiming::default();
        d.decode_timed(&block, &mut t).unwrap();
        assert_eq!(t.iter().map(|(_, us)| us).collect::<Vec<_>>(), [2000]);
    }

    #[test]
    fn broken_blocks_are_errors_not_panics() {
        let mut d = Decoder::default();
        for bad in [
            &[0x80][..],                                 // index 0
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], // integer overflow
            &[0xbe],                                     // empty dynamic table
            &[0x48, 0x05, b'2'],                         // string beyond the block
            &[0x48, 0x02, b'2', b'x'],                   // bad :status
            &[0x3f, 0xe2, 0x1f],                         // table size 4097
        ] {
            assert!(d.decode(bad).is_err(), "{bad:x?}");
        }
    }

    #[test]
    fn a_request_block_decodes_to_its_fields() {
        let block = request_block(
            "PUT",
            "https",
            "example.com:8443",
            "/a?b",
            &[
                ("X-Trace".into(), "1".into()),
                ("Connection".into(), "close".into()),
                ("user-agent".into(), "h2lab".into()),
            ],
        );
        // Decoded by the h2 crate's server side in the load tests; here: structure.
        let mut d = Decoder::default();
        assert_eq!(d.decode(&block), Ok(None));
        assert!(d.table.is_empty(), "nothing is indexed");
        assert!(!block.windows(10).any(|w| w == b"connection"));
        assert!(block.windows(7).any(|w| w == b"x-trace"));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
