//! The lab's HTTP/2 server engine: any client bytes, cut into reads anywhere (the first
//! four bytes of the input are the read sizes).
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let (cuts, bytes) = input.split_at(input.len().min(4));
    sut::server::labh2::oracle::serve_bytes(bytes, cuts);
});
