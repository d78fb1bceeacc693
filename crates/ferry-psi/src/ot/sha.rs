//! SHA-256 of short messages straight through the `sha2` crate's compression function (SHA-NI
//! when the CPU has it).
//!
//! KKRT hashes millions of short messages (an id under a domain tag; a row index and a 512-bit
//! row). Through the `Digest` interface each one pays for buffer management and several small
//! copies that cost more than the one or two compressions; padding the message on the stack
//! and calling the compression function directly gives the same digest (tests compare it with
//! `Sha256::digest`) at a fraction of the cost.

use sha2::block_api::compress256;

/// FIPS 180-4 §5.3.3: the initial hash value of SHA-256.
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Messages up to this many bytes are padded on the stack (longer ones in a heap buffer).
const STACK_BLOCKS: usize = 4;

/// SHA-256 of the concatenation of `parts`, as the first 16 bytes of the digest read
/// little-endian (what every caller keeps).
pub(crate) fn sha256_prefix128(parts: &[&[u8]]) -> u128 {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    // FIPS 180-4 §5.1.1: the message, 0x80, zeros, the bit length as 64-bit big-endian, to a
    // multiple of 64 bytes.
    let blocks = (len + 9).div_ceil(64);
    let mut stack = [[0u8; 64]; STACK_BLOCKS];
    let mut heap = Vec::new();
    let padded: &mut [[u8; 64]] = if blocks <= STACK_BLOCKS {
        &mut stack[..blocks]
    } else {
        heap.resize(blocks, [0u8; 64]);
        &mut heap
    };
    let flat = padded.as_flattened_mut();
    let mut at = 0;
    for p in parts {
        flat[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    flat[at] = 0x80;
    let end = flat.len();
    flat[end - 8..].copy_from_slice(&((len as u64) * 8).to_be_bytes());
    let mut state = IV;
    compress256(&mut state, padded);
    let mut out = [0u8; 16];
    for (chunk, word) in out.chunks_exact_mut(4).zip(&state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    u128::from_le_bytes(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn reference(parts: &[&[u8]]) -> u128 {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        u128::from_le_bytes(h.finalize()[..16].try_into().unwrap())
    }

    #[test]
    fn matches_sha256_at_every_padding_boundary() {
        let data: Vec<u8> = (0..400u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(
                sha256_prefix128(&[&data[..len]]),
                reference(&[&data[..len]]),
                "length {len}"
            );
        }
        // FIPS 180-2 Appendix B.1: SHA-256("abc").
        let abc = sha256_prefix128(&[b"abc"]).to_le_bytes();
        assert_eq!(
            abc,
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23
            ]
        );
    }

    proptest! {
        #[test]
        fn split_messages_hash_like_the_whole(a in prop::collection::vec(any::<u8>(), 0..100), b in prop::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(sha256_prefix128(&[&a, &b]), reference(&[&a, &b]));
        }
    }
}
