//! AES-128 as a pseudo-random generator and a fixed-key permutation.
//!
//! The `aes` crate picks VAES (AVX-512 or AVX2 width), AES-NI or a constant-time software
//! fallback at run time, so one binary runs everywhere and uses the widest AES unit present.

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};

/// Blocks encrypted per call: enough for the AES pipeline to stay full, small enough to stay
/// on the stack.
const BATCH: usize = 64;

/// One expanded AES-128 key.
#[derive(Clone)]
pub(crate) struct Aes(Aes128);

impl Aes {
    pub fn new(key: [u8; 16]) -> Self {
        Aes(Aes128::new(&key.into()))
    }

    /// Encrypts 16-byte blocks in place.
    pub fn encrypt_in_place(&self, blocks: &mut [[u8; 16]]) {
        self.0
            .encrypt_blocks(aes::Block::cast_slice_from_core_mut(blocks));
    }

    /// `out[i] = AES_k(input[i])`, with 128-bit values read and written little-endian.
    pub fn encrypt_u128(&self, input: &[u128], out: &mut [u128]) {
        debug_assert_eq!(input.len(), out.len());
        let mut buf = [[0u8; 16]; BATCH];
        for (ins, outs) in input.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            let buf = &mut buf[..ins.len()];
            for (b, x) in buf.iter_mut().zip(ins) {
                *b = x.to_le_bytes();
            }
            self.encrypt_in_place(buf);
            for (o, b) in outs.iter_mut().zip(buf.iter()) {
                *o = u128::from_le_bytes(*b);
            }
        }
    }

    /// The counter-mode key stream: `out[i] = AES_k(start + i)`. Any stretch of the stream can
    /// be computed on its own, so a long PRG output is produced chunk by chunk.
    pub fn ctr(&self, start: u64, out: &mut [u128]) {
        let mut buf = [[0u8; 16]; BATCH];
        let mut counter = start as u128;
        for outs in out.chunks_mut(BATCH) {
            let buf = &mut buf[..outs.len()];
            for b in buf.iter_mut() {
                *b = counter.to_le_bytes();
                counter += 1;
            }
            self.encrypt_in_place(buf);
            for (o, b) in outs.iter_mut().zip(buf.iter()) {
                *o = u128::from_le_bytes(*b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex16(s: &str) -> [u8; 16] {
        let v: Vec<u8> = (0..32)
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        v.try_into().unwrap()
    }

    /// FIPS-197 Appendix C.1 (AES-128): whatever backend the CPU selects computes AES.
    #[test]
    fn fips_197_known_answer() {
        let aes = Aes::new(hex16("000102030405060708090a0b0c0d0e0f"));
        let mut block = [hex16("00112233445566778899aabbccddeeff")];
        aes.encrypt_in_place(&mut block);
        assert_eq!(block[0], hex16("69c4e0d86a7b0430d8cdb78070b4c55a"));
    }

    #[test]
    fn counter_mode_is_seekable_and_matches_single_blocks() {
        let aes = Aes::new([7; 16]);
        let mut long = vec![0u128; 200];
        aes.ctr(0, &mut long);
        let mut tail = vec![0u128; 50];
        aes.ctr(150, &mut tail);
        assert_eq!(&long[150..], &tail[..]);
        let mut one = [0u128];
        aes.encrypt_u128(&[3u128], &mut one);
        assert_eq!(one[0], long[3]);
        assert_ne!(long[0], long[1]);
    }
}
