//! HPACK decoding (RFC 7541) for the lab engine: every field of a request's header block
//! handed to a callback as byte slices, the dynamic table kept exactly, and the decoded
//! list's size (RFC 9113 §6.5.2: name + value + 32 per field) counted.

use std::collections::VecDeque;

use h2lab_common::hpack::{get_integer, STATIC};

/// Why a block could not be decoded: a COMPRESSION_ERROR on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

/// The table size the engine allows (SETTINGS_HEADER_TABLE_SIZE is left at its default).
pub const TABLE_SIZE: usize = 4096;

/// A dynamic-table entry: name and value.
type Field = (Box<[u8]>, Box<[u8]>);

/// A connection's decoder.
#[derive(Debug)]
pub struct Decoder {
    table: VecDeque<Field>,
    size: usize,
    max_size: usize,
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: TABLE_SIZE,
            name: Vec::new(),
            value: Vec::new(),
        }
    }
}

fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + 32
}

impl Decoder {
    /// Decodes `block`, calling `field` for each field in order; answers the decoded
    /// list's size.
    pub fn decode(
        &mut self,
        mut block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<usize, DecodeError> {
        let mut listed = 0;
        let mut first = true;
        while let Some(&b) = block.first() {
            if b & 0x80 != 0 {
                let i = integer(&mut block, 7)?;
                let (n, v) = self.get(i)?;
                listed += entry_size(n, v);
                field(n, v);
            } else if b & 0xe0 == 0x20 {
                if !first {
                    return Err(DecodeError("table size update not at the start of a block"));
                }
                let size = integer(&mut block, 5)?;
                if size > TABLE_SIZE {
                    return Err(DecodeError(
                        "table size update above SETTINGS_HEADER_TABLE_SIZE",
                    ));
                }
                self.max_size = size;
                self.evict(0);
                continue;
            } else {
                // 01xxxxxx incremental indexing (6-bit index); 0000/0001 without or never
                // indexed (4-bit index).
                let indexing = b & 0xc0 == 0x40;
                let index = integer(&mut block, if indexing { 6 } else { 4 })?;
                let mut name = std::mem::take(&mut self.name);
                name.clear();
                if index == 0 {
                    string(&mut block, &mut name)?;
                } else {
                    name.extend_from_slice(self.get(index)?.0);
                }
                let mut value = std::mem::take(&mut self.value);
                value.clear();
                string(&mut block, &mut value)?;
                listed += entry_size(&name, &value);
                field(&name, &value);
                if indexing {
                    self.insert(&name, &value);
                }
                self.name = name;
                self.value = value;
            }
            first = false;
        }
        Ok(listed)
    }

    fn get(&self, index: usize) -> Result<(&[u8], &[u8]), DecodeError> {
        match index {
            0 => Err(DecodeError("index 0")),
            1..=61 => {
                let (n, v) = STATIC[index - 1];
                Ok((n.as_bytes(), v.as_bytes()))
            }
            _ => self
                .table
                .get(index - 62)
                .map(|(n, v)| (&n[..], &v[..]))
                .ok_or(DecodeError("index beyond the dynamic table")),
        }
    }

    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = entry_size(name, value);
        if size > self.max_size {
            // RFC 7541 §4.4: an entry larger than the table empties it.
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table.push_front((name.into(), value.into()));
    }

    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            match self.table.pop_back() {
                Some((n, v)) => self.size -= entry_size(&n, &v),
                None => break,
            }
        }
    }
}

fn integer(block: &mut &[u8], n: u8) -> Result<usize, DecodeError> {
    get_integer(block, n).map_err(DecodeError)
}

/// Reads a string literal into `out` (Huffman-decoded when marked so).
fn string(block: &mut &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let huffman = block.first().is_some_and(|b| b & 0x80 != 0);
    let len = integer(block, 7)?;
    if len > block.len() {
        return Err(DecodeError("string beyond the block"));
    }
    let (raw, rest) = block.split_at(len);
    *block = rest;
    if huffman {
        httlib_huffman::decode(raw, out, httlib_huffman::DecoderSpeed::FourBits)
            .map_err(|_| DecodeError("bad Huffman string"))
    } else {
        out.extend_from_slice(raw);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(d: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        d.decode(block, |n, v| {
            out.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        })
        .unwrap();
        out
    }

    #[test]
    fn the_rfc_request_examples_with_huffman_decode_in_step() {
        // RFC 7541 C.4.1-C.4.3.
        let mut d = Decoder::default();
        let c41 = [
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
            0x90, 0xf4, 0xff,
        ];
        let got = fields(&mut d, &c41);
        assert_eq!(got[3], (":authority".into(), "www.example.com".into()));
        let c42 = [
            0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
        ];
        let got = fields(&mut d, &c42);
        assert_eq!(got[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(got[4], ("cache-control".into(), "no-cache".into()));
        let c43 = [
            0x82, 0x87, 0x85, 0xbf, 0x40, 0x88, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f,
            0x89, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf,
        ];
        let got = fields(&mut d, &c43);
        assert_eq!(got[1], (":scheme".into(), "https".into()));
        assert_eq!(got[4], ("custom-key".into(), "custom-value".into()));
        assert_eq!(d.size, 164, "the table's size after C.4.3");
    }

    #[test]
    fn bad_blocks_are_compression_errors() {
        let mut d = Decoder::default();
        assert!(d.decode(&[0x80], |_, _| {}).is_err(), "index 0");
        assert!(d.decode(&[0xbe], |_, _| {}).is_err(), "empty dynamic table");
        assert!(
            d.decode(&[0x82, 0x3f, 0xe1, 0x1f], |_, _| {}).is_err(),
            "late size update"
        );
        assert!(
            d.decode(&[0x40, 0x05, b'a'], |_, _| {}).is_err(),
            "string beyond the block"
        );
    }
}
