//! HTTP/2 frames (RFC 9113 §4 and §6): the 9-byte header and the frames a client writes,
//! appended to an output buffer. They live in `h2lab-common`, where the lab's server
//! engine writes the same frames.

pub use h2lab_common::h2_frame::*;
