//! What the lab engine writes: frame heads, control frames, and response header blocks.
//! Header blocks use literals without indexing (a static-table name where there is one),
//! so the encoder has no table to keep in step with the client's decoder.

use h2lab_common::h2_frame::{flag, kind, HEAD_LEN};
use h2lab_common::hpack::{put_integer, static_name_index};
use http::{HeaderMap, StatusCode};

pub use h2lab_common::h2_frame::{
    put_goaway_last as put_goaway, put_head, put_rst_stream, put_settings, put_window_update,
};

/// Writes a frame head over the nine bytes at `at` (reserved before the payload was
/// appended).
pub fn fill_head(out: &mut [u8], at: usize, len: usize, ty: u8, flags: u8, stream: u32) {
    let l = (len as u32).to_be_bytes();
    let s = stream.to_be_bytes();
    out[at..at + HEAD_LEN].copy_from_slice(&[l[1], l[2], l[3], ty, flags, s[0], s[1], s[2], s[3]]);
}

/// Appends a literal field without indexing, with the static name `index`.
pub fn put_indexed_name(out: &mut Vec<u8>, index: usize, value: &[u8]) {
    put_integer(out, 0x00, 4, index);
    put_integer(out, 0, 7, value.len());
    out.extend_from_slice(value);
}

/// Appends a literal field without indexing.
pub fn put_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    match static_name_index(name) {
        Some(i) => put_indexed_name(out, i, value),
        None => {
            out.push(0x00);
            put_integer(out, 0, 7, name.len());
            out.extend_from_slice(name.as_bytes());
            put_integer(out, 0, 7, value.len());
            out.extend_from_slice(value);
        }
    }
}

/// Appends `:status`: indexed where the static table has it.
pub fn put_status(out: &mut Vec<u8>, status: StatusCode) {
    let index = match status.as_u16() {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => 0,
    };
    if index > 0 {
        out.push(0x80 | index);
    } else {
        put_indexed_name(out, 8, status.as_str().as_bytes());
    }
}

/// Appends every field of `headers` (names are lowercase in a `HeaderMap`).
pub fn put_fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        put_field(out, name.as_str(), value.as_bytes());
    }
}

/// Starts a header block for `stream`: reserves its frame head and returns where it is.
pub fn begin_block(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; HEAD_LEN]);
    at
}

/// Ends the header block begun at `at`: one HEADERS frame, or HEADERS and CONTINUATION
/// frames when the block is longer than `max_frame`.
pub fn end_block(out: &mut Vec<u8>, at: usize, stream: u32, end_stream: bool, max_frame: usize) {
    let len = out.len() - at - HEAD_LEN;
    let es = if end_stream { flag::END_STREAM } else { 0 };
    if len <= max_frame {
        fill_head(out, at, len, kind::HEADERS, flag::END_HEADERS | es, stream);
        return;
    }
    // Rare (a block over 16 KiB): moved out and written again in pieces.
    let block = out.split_off(at + HEAD_LEN);
    out.truncate(at);
    h2lab_common::h2_frame::put_headers(out, stream, &block, end_stream, max_frame);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_block_is_cut_into_headers_and_continuations() {
        let mut out = Vec::new();
        let at = begin_block(&mut out);
        out.extend_from_slice(&[7u8; 25]);
        end_block(&mut out, at, 3, true, 10);
        // HEADERS(10, END_STREAM) CONTINUATION(10) CONTINUATION(5, END_HEADERS)
        assert_eq!(
            &out[..9],
            &[0, 0, 10, kind::HEADERS, flag::END_STREAM, 0, 0, 0, 3]
        );
        assert_eq!(&out[19..28], &[0, 0, 10, kind::CONTINUATION, 0, 0, 0, 0, 3]);
        assert_eq!(
            &out[38..47],
            &[0, 0, 5, kind::CONTINUATION, flag::END_HEADERS, 0, 0, 0, 3]
        );
        assert_eq!(out.len(), 3 * 9 + 25);
    }

    #[test]
    fn statuses_and_names_use_the_static_table() {
        let mut out = Vec::new();
        put_status(&mut out, StatusCode::OK);
        put_status(&mut out, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(out, [0x88, 0x08, 3, b'4', b'3', b'1']);
        out.clear();
        put_field(&mut out, "content-type", b"a");
        put_field(&mut out, "x-y", b"b");
        // content-type is static name 31: a 4-bit prefix of 15, then 16.
        assert_eq!(out, [0x0f, 16, 1, b'a', 0, 3, b'x', b'-', b'y', 1, b'b']);
    }
}
