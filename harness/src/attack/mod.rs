//! Attack profiles: the frames and bytes of each known HTTP/1.1 and HTTP/2 attack, built
//! on the lab's own frame code (a library that refuses to misbehave cannot send them).
//!
//! Which attacks exist ([`Kind`]), what each one writes ([`recipe`], pure), how it is
//! sent and paced ([`driver`]), how a connection was cut off ([`ending`], pure), the
//! target's memory and CPU ([`procstat`]) and whether it held ([`judge`], pure).
//! `h2lab attack` (cli/attack.rs) runs them beside a legitimate load.

pub mod driver;
pub mod ending;
pub mod judge;
pub mod procstat;
pub mod recipe;
pub mod session;

use std::fmt;
use std::str::FromStr;

/// The attacks the lab knows, with the variant where one attack has several primitives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HEADERS then RST_STREAM(CANCEL) at once, on stream after stream (CVE-2023-44487).
    RapidReset,
    /// A complete request, then a frame that makes the server reset the stream
    /// (CVE-2025-8671).
    MadeYouReset(ResetPrimitive),
    /// HEADERS without END_HEADERS, then CONTINUATION frames that never end.
    ContinuationFlood(Continuation),
    /// One large header in the dynamic table, referenced again and again by 1-byte
    /// indexed fields (CVE-2016-6581).
    HpackBomb,
    /// Endless PING frames (CVE-2019-9512).
    PingFlood,
    /// Endless empty SETTINGS frames (CVE-2019-9515).
    SettingsFlood,
    /// Endless zero-length DATA frames on an open stream (CVE-2019-9518).
    EmptyFrames,
    /// Requests with a malformed header, each answered with RST_STREAM (CVE-2019-9514).
    ResetFlood,
    /// Stream windows of one byte, opened a byte at a time (CVE-2019-9511).
    DataDribble,
    /// Large responses asked for with the HTTP/2 window open and the socket never read
    /// (CVE-2019-9517).
    ZeroWindow,
    /// Streams opened up to the server's limit and held.
    StreamExhaustion,
    /// HTTP/1.1 header lines trickled, never the blank line.
    Slowloris,
    /// HTTP/1.1 with a large Content-Length and the body sent a byte at a time.
    SlowPost,
    /// More connections than the server's limit, held open.
    ConnectionFlood,
}

/// The frames that make a server reset a stream it has fully received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetPrimitive {
    /// Each of the others in turn.
    All,
    /// WINDOW_UPDATE with increment 0 (PROTOCOL_ERROR).
    WindowUpdateZero,
    /// WINDOW_UPDATE taking the stream's window past 2^31-1 (FLOW_CONTROL_ERROR).
    WindowOverflow,
    /// DATA on a stream the client already half-closed (STREAM_CLOSED).
    HalfClosed,
}

/// What the CONTINUATION frames of a flood carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuation {
    /// A header block that grows by a few KiB a frame (memory).
    Growing,
    /// Zero-length frames that slip past byte limits (CPU).
    Empty,
}

/// The protocol an attack speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// HTTP/2 frames, over h2c or TLS with ALPN h2.
    H2,
    /// HTTP/1.1 bytes, cleartext or TLS.
    H1,
    /// Connections alone (after TLS when the target is https).
    Connections,
}

/// Every kind with its name, for parsing and for `--help`.
pub const KINDS: [(&str, Kind); 19] = [
    ("rapid-reset", Kind::RapidReset),
    ("made-you-reset", Kind::MadeYouReset(ResetPrimitive::All)),
    (
        "made-you-reset:window-update-0",
        Kind::MadeYouReset(ResetPrimitive::WindowUpdateZero),
    ),
    (
        "made-you-reset:window-overflow",
        Kind::MadeYouReset(ResetPrimitive::WindowOverflow),
    ),
    (
        "made-you-reset:half-closed",
        Kind::MadeYouReset(ResetPrimitive::HalfClosed),
    ),
    (
        "continuation-flood",
        Kind::ContinuationFlood(Continuation::Growing),
    ),
    (
        "continuation-flood:empty",
        Kind::ContinuationFlood(Continuation::Empty),
    ),
    ("hpack-bomb", Kind::HpackBomb),
    ("ping-flood", Kind::PingFlood),
    ("settings-flood", Kind::SettingsFlood),
    ("empty-frames", Kind::EmptyFrames),
    ("reset-flood", Kind::ResetFlood),
    ("data-dribble", Kind::DataDribble),
    ("zero-window", Kind::ZeroWindow),
    ("stream-exhaustion", Kind::StreamExhaustion),
    ("slowloris", Kind::Slowloris),
    ("slow-post", Kind::SlowPost),
    ("connection-flood", Kind::ConnectionFlood),
    (
        "continuation-flood:growing",
        Kind::ContinuationFlood(Continuation::Growing),
    ),
];

impl Kind {
    /// The protocol the attack speaks.
    pub fn wire(self) -> Wire {
        match self {
            Kind::Slowloris | Kind::SlowPost => Wire::H1,
            Kind::ConnectionFlood => Wire::Connections,
            _ => Wire::H2,
        }
    }

    /// Whether the attacker reads what the server sends. Zero window never does: a
    /// closed TCP window is the attack.
    pub fn reads(self) -> bool {
        !matches!(self, Kind::ZeroWindow)
    }

    /// What one unit of `--attack-rate` and `--attack-max` counts.
    pub fn unit(self) -> &'static str {
        match self {
            Kind::RapidReset
            | Kind::MadeYouReset(_)
            | Kind::HpackBomb
            | Kind::ResetFlood
            | Kind::ZeroWindow => "requests",
            Kind::StreamExhaustion => "streams",
            Kind::Slowloris => "header lines",
            Kind::SlowPost => "body bytes",
            Kind::ConnectionFlood => "connections",
            _ => "frames",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = KINDS
            .iter()
            .find(|(_, k)| k == self)
            .map(|(n, _)| *n)
            .unwrap_or("?");
        f.write_str(name)
    }
}

/// An attack name that is not one of [`KINDS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown attack `{0}`; known: {known}", known = known_names())]
pub struct UnknownKind(pub String);

fn known_names() -> String {
    KINDS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        KINDS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s.trim()))
            .map(|(_, k)| *k)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_to_its_kind_and_prints_back_to_a_name_of_it() {
        for (name, kind) in KINDS {
            assert_eq!(name.parse::<Kind>(), Ok(kind));
            assert_eq!(kind.to_string().parse::<Kind>(), Ok(kind));
        }
        let err = "ping".parse::<Kind>().unwrap_err().to_string();
        assert!(err.contains("unknown attack `ping`") && err.contains("ping-flood"));
    }

    #[test]
    fn each_kind_speaks_its_protocol() {
        assert_eq!(Kind::Slowloris.wire(), Wire::H1);
        assert_eq!(Kind::ConnectionFlood.wire(), Wire::Connections);
        assert_eq!(Kind::PingFlood.wire(), Wire::H2);
        assert!(!Kind::ZeroWindow.reads() && Kind::PingFlood.reads());
    }
}
