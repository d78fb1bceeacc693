//! Packing several signed integers into one plaintext, so one ciphertext carries them all and
//! adding packed ciphertexts adds slot by slot.
//!
//! A packed plaintext is `x = Σ v_i · 2^(i·s)` for slot width `s`. Values are *signed*: the
//! packing is a plain integer sum, so negative slots borrow from the slot above, and
//! [`PackingLayout::unpack`] undoes that by reading centred remainders from the lowest slot up.
//! Decoding is exact as long as every slot's true value satisfies `|v| < 2^(s-1)`.
//!
//! A layout is built for values of at most `value_bits` bits that will be summed at most
//! `max_terms` times: `s = value_bits + ⌈log2(max_terms)⌉ + 1` (the `+1` is the sign). The
//! number of slots is `⌊(plaintext_bits - 1) / s⌋`, which keeps `|x| < 2^plaintext_bits`
//! (the scheme's signed capacity), so slot sums never wrap around the modulus.
//!
//! SecureBoost uses two levels: a sample's gradient and hessian share one ciphertext (2 slots),
//! and a host packs many histogram bins (each such 2-slot ciphertext) into one ciphertext with
//! [`PackingLayout::pack_ciphertexts`] before sending them back.

use crate::encoding::EncodingError;
use crate::he::HePublicKey;
use rug::Integer;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackingLayout {
    value_bits: u32,
    slot_bits: u32,
    slots: usize,
    max_terms: u64,
}

fn ceil_log2(x: u64) -> u32 {
    if x <= 1 {
        0
    } else {
        64 - (x - 1).leading_zeros()
    }
}

impl PackingLayout {
    /// A layout for values `|v| < 2^value_bits`, summed at most `max_terms` times, in a
    /// plaintext space of `plaintext_bits` signed bits.
    pub fn new(
        plaintext_bits: u32,
        value_bits: u32,
        max_terms: u64,
    ) -> Result<Self, EncodingError> {
        let slot_bits = value_bits + ceil_log2(max_terms.max(1)) + 1;
        let slots = (plaintext_bits.saturating_sub(1) / slot_bits) as usize;
        if slots == 0 {
            return Err(EncodingError::NoRoomForSlots {
                slot_bits,
                plaintext_bits,
            });
        }
        Ok(PackingLayout {
            value_bits,
            slot_bits,
            slots,
            max_terms,
        })
    }

    pub fn slot_bits(&self) -> u32 {
        self.slot_bits
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    pub fn value_bits(&self) -> u32 {
        self.value_bits
    }

    pub fn max_terms(&self) -> u64 {
        self.max_terms
    }

    /// Packs up to `slots()` values, the first in the lowest slot.
    pub fn pack(&self, values: &[Integer]) -> Result<Integer, EncodingError> {
        if values.len() > self.slots {
            return Err(EncodingError::TooManyValues {
                given: values.len(),
                slots: self.slots,
            });
        }
        let mut x = Integer::new();
        for v in values.iter().rev() {
            let bits = v.significant_bits();
            if bits > self.value_bits {
                return Err(EncodingError::SlotOverflow {
                    bits,
                    max: self.value_bits,
                });
            }
            x <<= self.slot_bits;
            x += v;
        }
        Ok(x)
    }

    /// Reads `count` slots of a (decrypted, centred) packed plaintext.
    pub fn unpack(&self, x: &Integer, count: usize) -> Vec<Integer> {
        let s = self.slot_bits;
        let half = Integer::from(1) << (s - 1);
        let full = Integer::from(1) << s;
        let mut rest = x.clone();
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            // Centred remainder modulo 2^s: the slot's signed value.
            let mut r = Integer::from(rest.keep_bits_ref(s));
            if r >= half {
                r -= &full;
            }
            rest -= &r;
            rest >>= s;
            out.push(r);
        }
        out
    }

    /// Packs ciphertexts that each occupy `slots_each` slots into one ciphertext (Horner's rule
    /// with homomorphic shifts): ciphertext `j` lands in slots `j·slots_each ..`.
    pub fn pack_ciphertexts<K: HePublicKey>(
        &self,
        key: &K,
        cts: &[K::Ciphertext],
        slots_each: usize,
    ) -> Result<K::Ciphertext, EncodingError> {
        if cts.len() * slots_each > self.slots {
            return Err(EncodingError::TooManyValues {
                given: cts.len() * slots_each,
                slots: self.slots,
            });
        }
        let shift = self.slot_bits * slots_each as u32;
        let mut iter = cts.iter().rev();
        let Some(last) = iter.next() else {
            return Ok(key.zero());
        };
        let mut acc = last.clone();
        for c in iter {
            acc = key.shift_left(&acc, shift);
            key.add_assign(&mut acc, c);
        }
        Ok(acc)
    }

    /// How many ciphertexts of `slots_each` slots fit into one packed ciphertext.
    pub fn ciphertexts_per_pack(&self, slots_each: usize) -> usize {
        self.slots / slots_each.max(1)
    }
}
