//! HPACK decoding (RFC 7541) for the lab engine. Every field is classified once, when it
//! is decoded or enters the dynamic table (a pseudo-header, a valid lowercase name, a
//! connection-specific name, an invalid one; a value with forbidden bytes or surrounding
//! whitespace), so a field referenced by index, as most of a client's fields are after
//! its first request, costs a reference-count increment and no check.

use std::collections::VecDeque;
use std::sync::LazyLock;

use bytes::Bytes;
use h2lab_common::hpack::{get_integer, STATIC};
use http::HeaderName;

/// Why a block could not be decoded: a COMPRESSION_ERROR on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

/// The table size the engine allows (SETTINGS_HEADER_TABLE_SIZE is left at its default).
pub const TABLE_SIZE: usize = 4096;

/// What a field's name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// `:method`.
    Method,
    /// `:scheme`.
    Scheme,
    /// `:authority`.
    Authority,
    /// `:path`.
    Path,
    /// `:protocol` (RFC 8441).
    Protocol,
    /// `:status` or an unknown pseudo-header: malformed in a request.
    BadPseudo,
    /// A regular field with a valid lowercase name.
    Field(HeaderName),
    /// A connection-specific field (RFC 9113 §8.2.2): malformed in HTTP/2.
    ConnectionSpecific,
    /// A name with uppercase letters or bytes no field name may hold (§8.2.1).
    Invalid,
}

/// One decoded field.
#[derive(Debug, Clone)]
pub struct Field {
    /// The name, classified.
    pub name: Name,
    /// The value's bytes.
    pub value: Bytes,
    /// The value holds no NUL, CR, LF or other control byte (§8.2.1).
    pub value_ok: bool,
    /// The value starts or ends with a space or tab (§8.2.1 forbids it).
    pub padded: bool,
    /// Name and value lengths plus 32 (RFC 7541 §4.1, RFC 9113 §6.5.2).
    pub size: usize,
}

impl Field {
    /// Classifies a field from its raw name and value.
    pub fn new(name: &[u8], value: Bytes) -> Field {
        let ws = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
        Field {
            name: classify(name),
            value_ok: value.iter().all(|&b| b >= 0x20 && b != 0x7f || b == b'\t'),
            padded: ws(value.first()) || ws(value.last()),
            size: name.len() + value.len() + 32,
            value,
        }
    }
}

fn classify(name: &[u8]) -> Name {
    match name {
        b":method" => Name::Method,
        b":scheme" => Name::Scheme,
        b":authority" => Name::Authority,
        b":path" => Name::Path,
        b":protocol" => Name::Protocol,
        [b':', ..] => Name::BadPseudo,
        b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade" => {
            Name::ConnectionSpecific
        }
        _ if name.iter().any(u8::is_ascii_uppercase) => Name::Invalid,
        _ => HeaderName::from_bytes(name).map_or(Name::Invalid, Name::Field),
    }
}

static STATIC_FIELDS: LazyLock<Vec<Field>> = LazyLock::new(|| {
    STATIC
        .iter()
        .map(|(n, v)| Field::new(n.as_bytes(), Bytes::from_static(v.as_bytes())))
        .collect()
});

/// A connection's decoder.
#[derive(Debug)]
pub struct Decoder {
    table: VecDeque<Field>,
    size: usize,
    max_size: usize,
    name: Vec<u8>,
    value: Vec<u8>,
    /// Literals never indexed that came again: some clients never index a field (nghttp2
    /// sends `:path` as a Huffman literal in every request), so the same bytes are
    /// decoded, checked and allocated once, not per request.
    repeated: [(usize, Vec<u8>, Option<Field>); REPEATED],
    next_repeated: usize,
}

/// Literals remembered per connection.
const REPEATED: usize = 4;

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: TABLE_SIZE,
            name: Vec::new(),
            value: Vec::new(),
            repeated: Default::default(),
            next_repeated: 0,
        }
    }
}

/// What the caller says after each field: go on, or stop (the block is abandoned and the
/// connection with it, since the table is then out of step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Decode the next field.
    Go,
    /// Stop decoding.
    Stop,
}

impl Decoder {
    /// Decodes `block`, calling `field` for each field in order. `Ok(false)` when the
    /// callback stopped it.
    pub fn decode(
        &mut self,
        mut block: &[u8],
        mut field: impl FnMut(&Field) -> Next,
    ) -> Result<bool, DecodeError> {
        let mut first = true;
        while let Some(&b) = block.first() {
            if b & 0x80 != 0 {
                let i = integer(&mut block, 7)?;
                if field(self.get(i)?) == Next::Stop {
                    return Ok(false);
                }
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
                if !indexing && (1..=61).contains(&index) {
                    // A static name (its meaning never changes) and a value seen before.
                    let raw = raw_string(&mut block)?;
                    let f = self.repeated_literal(index, raw)?;
                    if field(&f) == Next::Stop {
                        return Ok(false);
                    }
                    first = false;
                    continue;
                }
                let mut value = std::mem::take(&mut self.value);
                value.clear();
                let f = if index == 0 {
                    let mut name = std::mem::take(&mut self.name);
                    name.clear();
                    string(&mut block, &mut name)?;
                    string(&mut block, &mut value)?;
                    let f = Field::new(&name, Bytes::copy_from_slice(&value));
                    self.name = name;
                    f
                } else {
                    let named = self.get(index)?;
                    // The indexed entry's size less its value: the name's length plus 32.
                    let (kind, name_cost) = (named.name.clone(), named.size - named.value.len());
                    string(&mut block, &mut value)?;
                    let mut f = Field::new(b"", Bytes::copy_from_slice(&value));
                    f.name = kind;
                    f.size += name_cost - 32;
                    f
                };
                self.value = value;
                let next = field(&f);
                if indexing {
                    self.insert(f);
                }
                if next == Next::Stop {
                    return Ok(false);
                }
            }
            first = false;
        }
        Ok(true)
    }

    /// The field of a literal without indexing, static name `index` and encoded value
    /// `raw`: from the remembered ones when it came before.
    fn repeated_literal(&mut self, index: usize, raw: &[u8]) -> Result<Field, DecodeError> {
        if let Some((_, _, Some(f))) = self
            .repeated
            .iter()
            .find(|(i, r, _)| *i == index && r.as_slice() == raw)
        {
            return Ok(f.clone());
        }
        let named = self.get(index)?;
        let (kind, name_cost) = (named.name.clone(), named.size - named.value.len());
        let mut value = std::mem::take(&mut self.value);
        value.clear();
        string(&mut &raw[..], &mut value)?;
        let mut f = Field::new(b"", Bytes::copy_from_slice(&value));
        self.value = value;
        f.name = kind;
        f.size += name_cost - 32;
        let slot = &mut self.repeated[self.next_repeated];
        self.next_repeated = (self.next_repeated + 1) % REPEATED;
        slot.0 = index;
        slot.1.clear();
        slot.1.extend_from_slice(raw);
        slot.2 = Some(f.clone());
        Ok(f)
    }

    fn get(&self, index: usize) -> Result<&Field, DecodeError> {
        match index {
            0 => Err(DecodeError("index 0")),
            1..=61 => Ok(&STATIC_FIELDS[index - 1]),
            _ => self
                .table
                .get(index - 62)
                .ok_or(DecodeError("index beyond the dynamic table")),
        }
    }

    fn insert(&mut self, f: Field) {
        if f.size > self.max_size {
            // RFC 7541 §4.4: an entry larger than the table empties it.
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(f.size);
        self.size += f.size;
        self.table.push_front(f);
    }

    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            match self.table.pop_back() {
                Some(f) => self.size -= f.size,
                None => break,
            }
        }
    }
}

fn integer(block: &mut &[u8], n: u8) -> Result<usize, DecodeError> {
    get_integer(block, n).map_err(DecodeError)
}

/// The encoded bytes of the next string literal (its length prefix included), skipped.
fn raw_string<'a>(block: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let all: &'a [u8] = block;
    let len = integer(block, 7)?;
    if len > block.len() {
        return Err(DecodeError("string beyond the block"));
    }
    *block = &block[len..];
    Ok(&all[..all.len() - block.len()])
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

    fn name_of(n: &Name) -> String {
        match n {
            Name::Method => ":method".into(),
            Name::Scheme => ":scheme".into(),
            Name::Authority => ":authority".into(),
            Name::Path => ":path".into(),
            Name::Field(h) => h.as_str().into(),
            other => format!("{other:?}"),
        }
    }

    fn fields(d: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        d.decode(block, |f| {
            out.push((
                name_of(&f.name),
                String::from_utf8_lossy(&f.value).into_owned(),
            ));
            Next::Go
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
    fn fields_are_classified_once_and_sized_by_their_raw_name() {
        let mut d = Decoder::default();
        // Literal with incremental indexing, new names: an uppercase one, a connection
        // header, a padded value; then each again by index.
        let mut block = Vec::new();
        for (n, v) in [("X-Up", "a"), ("connection", "close"), ("x-pad", " v")] {
            block.push(0x40);
            block.push(n.len() as u8);
            block.extend_from_slice(n.as_bytes());
            block.push(v.len() as u8);
            block.extend_from_slice(v.as_bytes());
        }
        block.extend_from_slice(&[0xbe, 0xbf, 0xc0]);
        let mut seen = Vec::new();
        d.decode(&block, |f| {
            seen.push((f.name.clone(), f.padded, f.size));
            Next::Go
        })
        .unwrap();
        assert_eq!(seen[0], (Name::Invalid, false, 4 + 1 + 32));
        assert_eq!(seen[1], (Name::ConnectionSpecific, false, 10 + 5 + 32));
        assert!(seen[2].1);
        // By index, newest first: x-pad, connection, X-Up.
        assert_eq!(seen[3], seen[2]);
        assert_eq!(seen[4], seen[1]);
        assert_eq!(seen[5], seen[0]);
        // An indexed name with a new value keeps the name's class and raw length.
        let mut got = None;
        d.decode(&[0x04, 0x02, b'/', b'x'], |f| {
            got = Some((f.name.clone(), f.size));
            Next::Go
        })
        .unwrap();
        assert_eq!(got, Some((Name::Path, 5 + 2 + 32)));
        let mut nul = None;
        d.decode(&[0x00, 1, b'a', 2, b'x', 0], |f| {
            nul = Some(f.value_ok);
            Next::Go
        })
        .unwrap();
        assert_eq!(nul, Some(false));
    }

    #[test]
    fn a_literal_never_indexed_is_decoded_once_and_stays_right() {
        let mut d = Decoder::default();
        // `:path` (static 4) without indexing: the same value twice, another, the first.
        let block = |v: &str| {
            let mut b = vec![0x04, v.len() as u8];
            b.extend_from_slice(v.as_bytes());
            b
        };
        for v in ["/plaintext", "/plaintext", "/json", "/plaintext"] {
            let got = fields(&mut d, &block(v));
            assert_eq!(got, [(":path".to_string(), v.to_string())]);
        }
        // Huffman-coded (RFC 7541 C.4.1's www.example.com), as :authority (static 1).
        let h = [
            0x01, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        for _ in 0..2 {
            let got = fields(&mut d, &h);
            assert_eq!(got[0].1, "www.example.com");
        }
        assert!(d.decode(&[0x04, 0x05, b'a'], |_| Next::Go).is_err());
    }

    #[test]
    fn bad_blocks_are_compression_errors() {
        let mut d = Decoder::default();
        let go = |_: &Field| Next::Go;
        assert!(d.decode(&[0x80], go).is_err(), "index 0");
        assert!(d.decode(&[0xbe], go).is_err(), "empty dynamic table");
        assert!(
            d.decode(&[0x82, 0x3f, 0xe1, 0x1f], go).is_err(),
            "late size update"
        );
        assert!(
            d.decode(&[0x40, 0x05, b'a'], go).is_err(),
            "string beyond the block"
        );
    }
}
