//! The proxy-wasm "pairs" encoding of header maps: a little-endian u32
//! count, then count × (u32 name length, u32 value length), then each name
//! and value followed by a NUL.
//!
//! Why not the SDK's own: `proxy_wasm`'s deserializer indexes and unwraps
//! (`String::from_utf8(key).unwrap()`), so a malformed buffer or a non-UTF-8
//! name would panic and take the VM down; it also allocates a `String` and a
//! `Vec` per header. This reader borrows and returns errors.

use crate::pb::DecodeError;

/// One header: name and value bytes, borrowed.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

fn read_u32(buf: &[u8], at: usize) -> Result<usize, DecodeError> {
    let bytes = buf.get(at..at.checked_add(4).ok_or(DecodeError)?).ok_or(DecodeError)?;
    let bytes: [u8; 4] = bytes.try_into().map_err(|_| DecodeError)?;
    usize::try_from(u32::from_le_bytes(bytes)).map_err(|_| DecodeError)
}

/// Decodes a pairs buffer into borrowed (name, value) slices. An empty
/// buffer is an empty map.
pub fn parse(buf: &[u8]) -> Result<Vec<Pair<'_>>, DecodeError> {
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    let count = read_u32(buf, 0)?;
    // Each pair takes at least 8 bytes of sizes and 2 NULs.
    if count > buf.len() / 10 {
        return Err(DecodeError);
    }
    let mut pairs = Vec::with_capacity(count);
    let mut data = 4 + count * 8;
    for i in 0..count {
        let name_len = read_u32(buf, 4 + i * 8)?;
        let value_len = read_u32(buf, 8 + i * 8)?;
        let name = take(buf, &mut data, name_len)?;
        let value = take(buf, &mut data, value_len)?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Takes `len` bytes at `*at` and the NUL after them.
fn take<'a>(buf: &'a [u8], at: &mut usize, len: usize) -> Result<&'a [u8], DecodeError> {
    let end = at.checked_add(len).ok_or(DecodeError)?;
    let bytes = buf.get(*at..end).ok_or(DecodeError)?;
    if buf.get(end) != Some(&0) {
        return Err(DecodeError);
    }
    *at = end + 1;
    Ok(bytes)
}

/// Encodes (name, value) pairs.
pub fn serialize(pairs: &[Pair<'_>]) -> Vec<u8> {
    let size = 4 + pairs.iter().map(|(n, v)| n.len() + v.len() + 10).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    // Sizes are bounded by what the host can hand over (u32).
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len(pairs.len()));
    for (name, value) in pairs {
        out.extend_from_slice(&len(name.len()));
        out.extend_from_slice(&len(value.len()));
    }
    for (name, value) in pairs {
        out.extend_from_slice(name);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs: Vec<(&[u8], &[u8])> = vec![(b":path", b"/"), (b"x-a", b"\xff\xfe"), (b"e", b"")];
        assert_eq!(parse(&serialize(&pairs)).unwrap(), pairs);
        assert!(parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn malformed_is_an_error() {
        let good = serialize(&[(b"name", b"value")]);
        for cut in 1..good.len() {
            assert!(parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&huge).is_err());
        let mut no_nul = good;
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert!(parse(&no_nul).is_err());
    }
}
