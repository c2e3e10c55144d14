//! The failures of the lab's own servers that are understood and accepted, each with the
//! RFC 9113 section it departs from and why it does no harm. They are those of the hyper
//! engine (`sut --h2-engine hyper`): the h2 crate under hyper, and the app answering
//! `GET /` before the request has ended. The lab's own engine, the default, fails none. A failure is accepted only when the suite's message matches what
//! the entry expects: the same case failing another way is a new failure.

use serde::Serialize;

/// Why a failure is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// The h2 crate closes the connection or stream, with PROTOCOL_ERROR instead of the
    /// more specific code the RFC names.
    H2ErrorCode,
    /// The app answered before the request ended and the server ended the stream with
    /// RST_STREAM NO_ERROR (RFC 9113 section 8.1 allows it); frames of a stream the
    /// server has reset are ignored, as section 5.1 requires.
    EarlyResponse,
    /// The h2 crate drops pseudo-header fields of trailers instead of rejecting them.
    H2Trailers,
    /// The cleartext port serves HTTP/1.1 and h2c: what is not the HTTP/2 preface is
    /// read as HTTP/1.1.
    SharedPort,
    /// hyper ends the connection once the client has sent GOAWAY and no stream is open.
    CloseAfterGoaway,
}

impl Cause {
    /// The reason in words.
    pub fn why(self) -> &'static str {
        match self {
            Cause::H2ErrorCode => "the h2 crate ends the connection or stream with PROTOCOL_ERROR, not the code the RFC names: the peer is stopped all the same, only the code it reads differs",
            Cause::EarlyResponse => "the app answers at once; the server then ends the stream with RST_STREAM NO_ERROR (section 8.1 allows a response before the request ends) and ignores what the client sends on it afterwards (section 5.1)",
            Cause::H2Trailers => "the h2 crate drops pseudo-header fields found in trailers instead of resetting the stream: the app never sees them, so they cannot be misread",
            Cause::SharedPort => "the cleartext port serves HTTP/1.1 and h2c alike: bytes that are not the HTTP/2 preface are read as HTTP/1.1 and answered 400 Bad Request, which the suite reads as a frame; section 3.4 asks that the connection end, and it does",
            Cause::CloseAfterGoaway => "hyper closes the connection once the client has sent GOAWAY and no stream is open, so the suite's PING after it finds the connection closed; the unknown code itself triggers nothing special, as section 7 asks",
        }
    }
}

/// One accepted deviation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Deviation {
    /// The case's name (after its chapter).
    pub case: &'static str,
    /// The RFC 9113 section, e.g. `6.5`.
    pub section: &'static str,
    /// What the RFC asks for.
    pub expected: &'static str,
    /// Why it is accepted.
    pub cause: Cause,
    /// What the suite's message must contain for the failure to be this deviation
    /// (any one of them), e.g. `but got ProtocolError`.
    #[serde(skip)]
    pub got: &'static [&'static str],
}

const PROTO: &[&str] = &["but got ProtocolError"];
const EITHER: &[&str] = &["but got ProtocolError", "but got NoError"];
const RESET: &[&str] = &["but got NoError"];
/// The app's greeting ended the stream and no stream error followed.
const ANSWERED: &[&str] =
    &["stream error, last frame: (Some(#1:Data { len: 13, flags: EndStream })"];

macro_rules! d {
    ($case:expr, $section:expr, $expected:expr, $cause:ident, $got:expr) => {
        Deviation {
            case: $case,
            section: $section,
            expected: $expected,
            cause: Cause::$cause,
            got: $got,
        }
    };
}

/// Every accepted deviation of the lab's servers.
pub const ACCEPTED: &[Deviation] = &[
    d!("sends invalid connection preface", "3.4", "connection error, GOAWAY optional", SharedPort, &["the suite panicked: peer frame header, then incomplete payload"]),
    d!("frame exceeding max size", "4.2", "FRAME_SIZE_ERROR", H2ErrorCode, EITHER),
    d!("invalid header block fragment", "4.3", "COMPRESSION_ERROR", H2ErrorCode, PROTO),
    d!("half closed remote sends headers frame", "5.1", "STREAM_CLOSED", H2ErrorCode, EITHER),
    d!("half closed remote sends data frame", "5.1", "STREAM_CLOSED", H2ErrorCode, EITHER),
    d!("closed sends headers frame", "5.1", "STREAM_CLOSED", H2ErrorCode, EITHER),
    d!("closed sends data frame after rst stream", "5.1", "STREAM_CLOSED", EarlyResponse, EITHER),
    d!("closed sends headers frame after rst stream", "5.1", "STREAM_CLOSED", EarlyResponse, EITHER),
    d!("closed sends continuation frame after rst stream", "5.1", "STREAM_CLOSED", EarlyResponse, EITHER),
    d!("sends data frame on invalid stream state", "6.1", "STREAM_CLOSED", H2ErrorCode, EITHER),
    d!("sends priority frame with invalid length", "6.3", "FRAME_SIZE_ERROR", H2ErrorCode, EITHER),
    d!("sends rst stream frame with invalid length", "6.4", "FRAME_SIZE_ERROR", H2ErrorCode, EITHER),
    d!("sends settings frame with invalid length", "6.5", "FRAME_SIZE_ERROR", H2ErrorCode, PROTO),
    d!("sends settings frame with ack and payload", "6.5", "FRAME_SIZE_ERROR", H2ErrorCode, PROTO),
    d!("sends settings initial window size with invalid value", "6.5.2", "FLOW_CONTROL_ERROR", H2ErrorCode, PROTO),
    d!("sends settings initial window size with exceeded max window size value", "6.5.2", "FLOW_CONTROL_ERROR", H2ErrorCode, PROTO),
    d!("sends ping frame with invalid length", "6.7", "FRAME_SIZE_ERROR", H2ErrorCode, PROTO),
    d!("sends window update frame with invalid length", "6.9", "FRAME_SIZE_ERROR", H2ErrorCode, PROTO),
    d!("sends goaway frame with unknown error code", "7", "unknown code without special behaviour", CloseAfterGoaway, &["the suite panicked: Wanted (BitFlags<FrameT>(0b1000000, Ping)), peer hung up. Last frame: Some(Conn:GoAway"]),
    d!("sends multiple window update frames increasing flow control window above max on stream", "6.9.1", "FLOW_CONTROL_ERROR", EarlyResponse, EITHER),
    d!("sends second headers frame without end stream", "8.1", "PROTOCOL_ERROR", EarlyResponse, RESET),
    d!("sends headers frame with pseudo header in trailer", "8.1", "PROTOCOL_ERROR", H2Trailers, ANSWERED),
    d!("sends headers frame with incorrect content length single data frame", "8.1.1", "PROTOCOL_ERROR", EarlyResponse, RESET),
    d!("sends headers frame with incorrect content length multiple data frames", "8.1.1", "PROTOCOL_ERROR", EarlyResponse, RESET),
];

/// The accepted deviation a failure matches, if any.
pub fn accepted(case: &str, message: Option<&str>) -> Option<&'static Deviation> {
    let msg = message.unwrap_or("");
    ACCEPTED
        .iter()
        .find(|d| d.case == case && d.got.iter().any(|g| msg.contains(g)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_case_is_accepted_only_when_it_fails_the_known_way() {
        let got = |code: &str| {
            format!("Expected GOAWAY with one of BitFlags<ErrorC>(0b1000000, FrameSizeError), but got {code}")
        };
        let d = accepted(
            "sends ping frame with invalid length",
            Some(&got("ProtocolError")),
        )
        .expect("known");
        assert_eq!((d.section, d.expected), ("6.7", "FRAME_SIZE_ERROR"));
        assert!(accepted(
            "sends ping frame with invalid length",
            Some(&got("NoError"))
        )
        .is_none());
        assert!(accepted(
            "sends ping frame with invalid length",
            Some("Timed out while waiting for connection error")
        )
        .is_none());
        assert!(accepted("sends ping frame with ack", Some(&got("ProtocolError"))).is_none());
        let names: std::collections::HashSet<_> = ACCEPTED.iter().map(|d| d.case).collect();
        assert_eq!(names.len(), ACCEPTED.len(), "one entry per case");
    }
}
