//! Keys made of several columns.

/// The key of a row identified by several columns (e.g. id type and id number): each column
/// is prefixed by its length in bytes (4 bytes, little-endian) and the parts are
/// concatenated, so no two different tuples give the same key (`("a", "bc")` and
/// `("ab", "c")` differ, as do tuples of different lengths). Provider and querier must build
/// keys the same way; a single column is prefixed too, so `key_of(&[x])` is not `x`.
pub fn key_of(columns: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(columns.iter().map(|c| c.len() + 4).sum());
    for c in columns {
        out.extend_from_slice(&(c.len() as u32).to_le_bytes());
        out.extend_from_slice(c.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_never_collide() {
        assert_ne!(key_of(&["a", "bc"]), key_of(&["ab", "c"]));
        assert_ne!(key_of(&["a", ""]), key_of(&["a"]));
        assert_ne!(key_of(&[""]), key_of(&[]));
        assert_eq!(key_of(&["ab"]), b"\x02\x00\x00\x00ab".to_vec());
    }
}
