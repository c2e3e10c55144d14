//! How an attacking connection ended, read from what the server sent: GOAWAY with its
//! code and debug text, the streams it reset, an HTTP/1.1 status, or a close. Pure: the
//! driver feeds it the bytes it read and says how the socket ended.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::h2wire::frame::{kind, reason_name, Head, HEAD_LEN};

/// The way a connection was cut off, or that it was not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "how", rename_all = "kebab-case")]
pub enum Ending {
    /// The server sent GOAWAY.
    Goaway {
        /// Its error code, as RFC 9113 names it.
        code: String,
        /// Its debug data, as text.
        debug: String,
    },
    /// The server answered HTTP/1.1 with this status (408, 431, 503...).
    Status {
        /// The status code.
        status: u16,
    },
    /// The server closed the connection without a word.
    Closed,
    /// The server reset the TCP connection.
    Reset,
    /// The server stopped reading: writes blocked until the attack's end.
    Stalled,
    /// Still open when the attack ended: never cut off.
    Open,
    /// The attack ran out of what it can send on one connection (stream ids, `--attack-max`).
    Exhausted,
    /// Still connecting (TCP or TLS) when the attack ended: neither served nor refused.
    Connecting,
    /// The connection was never established (refused, TLS failed).
    ConnectFailed {
        /// The error class.
        class: String,
    },
}

impl Ending {
    /// Whether the server cut the attacker off.
    pub fn cut_off(&self) -> bool {
        matches!(
            self,
            Ending::Goaway { .. }
                | Ending::Status { .. }
                | Ending::Closed
                | Ending::Reset
                | Ending::ConnectFailed { .. }
        )
    }

    /// A short label for tables: `GOAWAY ENHANCE_YOUR_CALM`, `408`, `close`...
    pub fn label(&self) -> String {
        match self {
            Ending::Goaway { code, .. } => format!("GOAWAY {code}"),
            Ending::Status { status } => status.to_string(),
            Ending::Closed => "close".into(),
            Ending::Reset => "TCP reset".into(),
            Ending::Stalled => "server stopped reading".into(),
            Ending::Open => "never".into(),
            Ending::Exhausted => "attack exhausted".into(),
            Ending::Connecting => "still connecting".into(),
            Ending::ConnectFailed { class } => format!("connect failed ({class})"),
        }
    }
}

/// Reads the server's side of an attacking connection as it arrives.
#[derive(Debug, Default)]
pub struct Watcher {
    buf: Vec<u8>,
    /// Payload bytes of a DATA frame still to discard.
    skip: usize,
    http1: bool,
    /// Frames the server sent, by type name.
    pub frames: BTreeMap<String, u64>,
    /// Streams the server reset, by error code name.
    pub resets: BTreeMap<String, u64>,
    /// The GOAWAY, once seen.
    pub goaway: Option<Ending>,
    /// The first HTTP/1.1 status, once seen.
    pub status: Option<u16>,
}

/// Most bytes of GOAWAY debug data kept.
const KEEP: usize = 1024;

impl Watcher {
    /// A watcher for an HTTP/2 connection, or an HTTP/1.1 one.
    pub fn new(http1: bool) -> Watcher {
        Watcher {
            http1,
            ..Watcher::default()
        }
    }

    /// Takes bytes the server sent.
    pub fn feed(&mut self, mut data: &[u8]) {
        if self.http1 {
            if self.status.is_none() && self.buf.len() < 64 {
                self.buf.extend_from_slice(&data[..data.len().min(64)]);
                self.status = status_line(&self.buf);
            }
            return;
        }
        let skipped = self.skip.min(data.len());
        self.skip -= skipped;
        data = &data[skipped..];
        // Taken out while reading so each frame's payload is borrowed, not copied.
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(data);
        let mut at = 0;
        while let Some(h) = Head::parse(&buf[at..]) {
            let end = at + HEAD_LEN + h.len;
            if end > buf.len() {
                // DATA is counted, not read: skip its payload as it arrives.
                if h.kind == kind::DATA {
                    *self.frames.entry("DATA".into()).or_default() += 1;
                    self.skip = end - buf.len();
                    at = buf.len();
                }
                break;
            }
            self.frame(h, &buf[at + HEAD_LEN..end]);
            at = end;
        }
        buf.drain(..at);
        self.buf = buf;
    }

    fn frame(&mut self, h: Head, payload: &[u8]) {
        let name = match h.kind {
            kind::DATA => "DATA",
            kind::HEADERS => "HEADERS",
            kind::RST_STREAM => "RST_STREAM",
            kind::SETTINGS => "SETTINGS",
            kind::PING => "PING",
            kind::GOAWAY => "GOAWAY",
            kind::WINDOW_UPDATE => "WINDOW_UPDATE",
            kind::CONTINUATION => "CONTINUATION",
            _ => "other",
        };
        *self.frames.entry(name.into()).or_default() += 1;
        let code = || {
            payload
                .get(..4)
                .map(|b| reason_name(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        };
        match h.kind {
            kind::RST_STREAM => {
                if let Some(c) = code() {
                    *self.resets.entry(c).or_default() += 1;
                }
            }
            kind::GOAWAY if self.goaway.is_none() && payload.len() >= 8 => {
                let c = &payload[4..8];
                self.goaway = Some(Ending::Goaway {
                    code: reason_name(u32::from_be_bytes([c[0], c[1], c[2], c[3]])),
                    debug: String::from_utf8_lossy(&payload[8..payload.len().min(8 + KEEP)])
                        .into_owned(),
                });
            }
            _ => {}
        }
    }

    /// How the connection ended, given how its socket ended: `eof` (the server closed),
    /// `reset` (ECONNRESET), or neither (still open when the attack stopped).
    pub fn ending(&self, eof: bool, reset: bool) -> Ending {
        if let Some(g) = &self.goaway {
            return g.clone();
        }
        if let Some(status) = self.status {
            return Ending::Status { status };
        }
        if reset {
            Ending::Reset
        } else if eof {
            Ending::Closed
        } else {
            Ending::Open
        }
    }
}

fn status_line(buf: &[u8]) -> Option<u16> {
    let line = buf.strip_prefix(b"HTTP/1.")?;
    let code = line.get(2..5)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2wire::frame::{self, put_head, put_rst_stream};

    #[test]
    fn a_goaway_is_read_with_its_code_and_debug_text_across_reads() {
        let mut out = Vec::new();
        frame::put_settings(&mut out, &[]);
        put_rst_stream(&mut out, 1, 0x7);
        put_head(&mut out, 8 + 11, kind::GOAWAY, 0, 0);
        out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0xb]);
        out.extend_from_slice(b"too_many_rs");
        let mut w = Watcher::new(false);
        for chunk in out.chunks(5) {
            w.feed(chunk);
        }
        let want = Ending::Goaway {
            code: "ENHANCE_YOUR_CALM".into(),
            debug: "too_many_rs".into(),
        };
        assert_eq!(w.ending(true, false), want);
        assert_eq!(w.resets.get("REFUSED_STREAM"), Some(&1));
        assert_eq!(w.frames.get("SETTINGS"), Some(&1));
        assert!(want.cut_off());
        assert_eq!(want.label(), "GOAWAY ENHANCE_YOUR_CALM");
    }

    #[test]
    fn large_data_frames_are_counted_and_skipped_without_keeping_them() {
        let mut out = Vec::new();
        put_head(&mut out, 100_000, kind::DATA, 0, 1);
        out.resize(out.len() + 100_000, 7);
        frame::put_settings(&mut out, &[]);
        let mut w = Watcher::new(false);
        for chunk in out.chunks(4096) {
            w.feed(chunk);
            assert!(w.buf.len() <= 4096 + HEAD_LEN, "kept {}", w.buf.len());
        }
        assert_eq!(w.frames.get("DATA"), Some(&1));
        assert_eq!(w.frames.get("SETTINGS"), Some(&1));
    }

    #[test]
    fn an_http1_status_or_the_socket_says_how_it_ended() {
        let mut w = Watcher::new(true);
        w.feed(b"HTTP/1.1 40");
        w.feed(b"8 Request Timeout\r\n");
        assert_eq!(w.ending(true, false), Ending::Status { status: 408 });
        let quiet = Watcher::new(true);
        assert_eq!(quiet.ending(true, false), Ending::Closed);
        assert_eq!(quiet.ending(false, true), Ending::Reset);
        assert_eq!(quiet.ending(false, false), Ending::Open);
        assert!(!Ending::Open.cut_off() && !Ending::Stalled.cut_off());
        assert!(!Ending::Connecting.cut_off(), "neither served nor refused");
    }
}
