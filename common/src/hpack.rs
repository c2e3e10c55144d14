//! HPACK integer encoding (RFC 7541 §5.1), for the header blocks both binaries write by
//! hand: the load client's request blocks and the h2c upgrade's replayed request.

/// Appends `value` as an HPACK integer with an `n`-bit prefix; `flags` fill the first
/// byte's bits above the prefix.
pub fn put_integer(out: &mut Vec<u8>, flags: u8, n: u8, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_the_rfc_examples() {
        let mut out = Vec::new();
        put_integer(&mut out, 0, 5, 10);
        assert_eq!(out, [10]);
        out.clear();
        put_integer(&mut out, 0, 5, 1337);
        assert_eq!(out, [31, 154, 10]);
        out.clear();
        put_integer(&mut out, 0x80, 7, 42);
        assert_eq!(out, [0x80 | 42]);
    }
}
