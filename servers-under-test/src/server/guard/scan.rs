//! Follows HTTP/2 frame boundaries in a byte stream without buffering it: each frame's
//! nine-byte head and the first four bytes of its payload are seen, the rest is skipped.

/// Length of a frame head (RFC 9113 §4.1).
const HEAD: usize = h2lab_common::h2_frame::HEAD_LEN;
/// Payload bytes kept per frame: enough for WINDOW_UPDATE's increment and RST_STREAM's code.
const PREFIX: usize = 4;

/// One frame as the scanner saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier.
    pub stream: u32,
    /// Payload length.
    pub len: usize,
    /// The first four payload bytes, big-endian (zero-padded when the payload is shorter).
    pub prefix: u32,
}

pub use h2lab_common::h2_frame::{flag, kind};

/// Where a byte stream stands between frames.
#[derive(Debug, Default)]
pub struct Scanner {
    /// Bytes still to skip before the first frame (the client's connection preface).
    preface: usize,
    /// The current frame's head and payload prefix, as far as seen.
    head: [u8; HEAD + PREFIX],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: usize,
}

fn payload_len(h: &[u8]) -> usize {
    (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2])
}

fn frame_of(h: &[u8]) -> Frame {
    let len = payload_len(h);
    let mut prefix = [0u8; PREFIX];
    let kept = len.min(PREFIX);
    prefix[..kept].copy_from_slice(&h[HEAD..HEAD + kept]);
    Frame {
        kind: h[3],
        flags: h[4],
        stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        len,
        prefix: u32::from_be_bytes(prefix),
    }
}

impl Scanner {
    /// A scanner for a stream that starts with a frame (the server's side).
    pub fn frames() -> Scanner {
        Scanner::default()
    }

    /// A scanner for a stream that starts with `preface` bytes to skip (the client's
    /// 24-byte connection preface).
    pub fn after(preface: usize) -> Scanner {
        Scanner {
            preface,
            ..Scanner::default()
        }
    }

    /// Whether the bytes seen so far end exactly at a frame boundary.
    pub fn at_boundary(&self) -> bool {
        self.preface == 0 && self.have == 0 && self.skip == 0
    }

    /// Bytes that certainly still belong to the current frame (0 at a boundary). While a
    /// head is incomplete this is only the rest of the head; ask again after feeding it.
    pub fn to_boundary(&self) -> usize {
        if self.preface > 0 {
            return self.preface;
        }
        if self.have == 0 {
            return self.skip;
        }
        if self.have < HEAD {
            return HEAD - self.have;
        }
        let len = payload_len(&self.head);
        HEAD + len - self.have
    }

    /// Reads `data`, calling `on` for each frame once its head and prefix are in.
    pub fn feed(&mut self, data: &[u8], mut on: impl FnMut(Frame)) {
        let mut i = 0;
        while i < data.len() {
            let left = data.len() - i;
            if self.preface > 0 {
                let n = self.preface.min(left);
                self.preface -= n;
                i += n;
            } else if self.skip > 0 {
                let n = self.skip.min(left);
                self.skip -= n;
                i += n;
            } else if self.have == 0 && left >= HEAD + PREFIX {
                // The common case: a whole head and prefix in one piece.
                let f = frame_of(&data[i..]);
                let kept = f.len.min(PREFIX);
                i += HEAD + kept;
                self.skip = f.len - kept;
                on(f);
            } else {
                let need = if self.have < HEAD {
                    HEAD
                } else {
                    HEAD + payload_len(&self.head).min(PREFIX)
                };
                let n = (need - self.have).min(left);
                self.head[self.have..self.have + n].copy_from_slice(&data[i..i + n]);
                self.have += n;
                i += n;
                if self.have < HEAD {
                    continue;
                }
                let len = payload_len(&self.head);
                if self.have == HEAD + len.min(PREFIX) {
                    let f = frame_of(&self.head);
                    self.skip = len - len.min(PREFIX);
                    self.have = 0;
                    on(f);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn stream() -> Vec<u8> {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(kind::SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 1]));
        bytes.extend(frame(kind::PING, 0, 0, &[9; 8]));
        bytes.extend(frame(kind::DATA, 0, 1, &[]));
        bytes.extend(frame(kind::WINDOW_UPDATE, 0, 3, &[0, 0, 0, 7]));
        bytes.extend(frame(kind::HEADERS, flag::END_HEADERS, 5, &[0x82; 100]));
        bytes.extend(frame(kind::RST_STREAM, 0, 5, &[0, 0, 0, 8]));
        bytes
    }

    fn expected() -> Vec<(u8, u32, usize, u32)> {
        vec![
            (kind::SETTINGS, 0, 6, 0x0004_0000),
            (kind::PING, 0, 8, 0x0909_0909),
            (kind::DATA, 1, 0, 0),
            (kind::WINDOW_UPDATE, 3, 4, 7),
            (kind::HEADERS, 5, 100, 0x8282_8282),
            (kind::RST_STREAM, 5, 4, 8),
        ]
    }

    #[test]
    fn every_frame_is_seen_whatever_the_read_sizes() {
        let bytes = stream();
        for chunk in [1, 2, 3, 5, 9, 13, 17, 64, bytes.len()] {
            let mut s = Scanner::after(24);
            let mut seen = Vec::new();
            for piece in bytes.chunks(chunk) {
                s.feed(piece, |f| seen.push((f.kind, f.stream, f.len, f.prefix)));
            }
            assert_eq!(seen, expected(), "chunks of {chunk}");
            assert!(s.at_boundary());
        }
    }

    #[test]
    fn the_distance_to_the_next_boundary_is_known_inside_a_frame() {
        let bytes = frame(kind::DATA, 0, 1, &[0; 30]);
        let mut s = Scanner::frames();
        assert_eq!(s.to_boundary(), 0);
        s.feed(&bytes[..4], |_| {});
        assert_eq!(s.to_boundary(), 5, "only the head's rest is known");
        s.feed(&bytes[4..9], |_| {});
        assert_eq!(s.to_boundary(), 30);
        s.feed(&bytes[9..20], |_| {});
        assert_eq!(s.to_boundary(), 19);
        assert!(!s.at_boundary());
        s.feed(&bytes[20..], |_| {});
        assert!(s.at_boundary());
    }
}
