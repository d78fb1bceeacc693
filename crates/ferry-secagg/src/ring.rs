//! The ring `Z_{2^k}` the protocol sums in, its wire packing, and fixed-point encoding of reals.

use crate::error::SecAggError;
use serde::{Deserialize, Serialize};

/// Integers modulo `2^bits`, `bits` a multiple of 8 in `8..=64`, so elements pack into whole
/// bytes on the wire (`bits / 8` bytes each, little endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    bits: u32,
}

impl Ring {
    pub fn new(bits: u32) -> Result<Self, SecAggError> {
        if !(8..=64).contains(&bits) || !bits.is_multiple_of(8) {
            return Err(SecAggError::Config(format!(
                "ring size {bits} bits: use a multiple of 8 between 8 and 64"
            )));
        }
        Ok(Ring { bits })
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }

    pub fn mask(&self) -> u64 {
        if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        }
    }

    pub fn bytes_per_element(&self) -> usize {
        (self.bits / 8) as usize
    }

    pub fn add(&self, a: u64, b: u64) -> u64 {
        a.wrapping_add(b) & self.mask()
    }

    pub fn sub(&self, a: u64, b: u64) -> u64 {
        a.wrapping_sub(b) & self.mask()
    }

    /// `acc += sign * v` element-wise.
    pub(crate) fn accumulate(&self, acc: &mut [u64], v: &[u64], negate: bool) {
        for (a, &x) in acc.iter_mut().zip(v) {
            *a = if negate {
                self.sub(*a, x)
            } else {
                self.add(*a, x)
            };
        }
    }

    /// Checks every element is below `2^bits`.
    pub fn check(&self, values: &[u64]) -> Result<(), SecAggError> {
        let mask = self.mask();
        match values.iter().position(|&v| v & !mask != 0) {
            Some(index) => Err(SecAggError::InputRange {
                index,
                value: values[index],
                bits: self.bits,
            }),
            None => Ok(()),
        }
    }

    pub fn pack(&self, values: &[u64]) -> Vec<u8> {
        let width = self.bytes_per_element();
        let mut out = Vec::with_capacity(values.len() * width);
        for v in values {
            out.extend_from_slice(&v.to_le_bytes()[..width]);
        }
        out
    }

    /// Inverse of [`Ring::pack`]; `None` when the byte length is not `len` elements.
    pub fn unpack(&self, bytes: &[u8], len: usize) -> Option<Vec<u64>> {
        let width = self.bytes_per_element();
        if bytes.len() != len.checked_mul(width)? {
            return None;
        }
        Some(
            bytes
                .chunks_exact(width)
                .map(|chunk| {
                    let mut word = [0u8; 8];
                    word[..width].copy_from_slice(chunk);
                    u64::from_le_bytes(word)
                })
                .collect(),
        )
    }
}

/// Fixed-point encoding of reals into the ring, chosen so that a sum of up to
/// [`FixedPointRing::max_summands`] encoded values cannot wrap around.
///
/// A real `x` is clipped to `[-clip, clip]`, scaled by `2^frac_bits`, rounded to the nearest
/// integer and stored in two's complement modulo `2^ring_bits`. A sum of `m` such values lies
/// in `[-m·clip·2^f, m·clip·2^f]`; it decodes exactly as long as that stays inside the signed
/// range `(-2^(k-1), 2^(k-1))`, i.e. `m ≤ max_summands`. The rounding error is at most
/// `2^-(f+1)` per value, so `m·2^-(f+1)` for a sum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FixedPointRing {
    pub ring: Ring,
    pub frac_bits: u32,
    pub clip: f64,
}

impl FixedPointRing {
    pub fn new(ring_bits: u32, frac_bits: u32, clip: f64) -> Result<Self, SecAggError> {
        let ring = Ring::new(ring_bits)?;
        if !(clip.is_finite() && clip > 0.0) {
            return Err(SecAggError::Config(format!(
                "fixed-point clip {clip} must be a positive finite number"
            )));
        }
        let fp = FixedPointRing {
            ring,
            frac_bits,
            clip,
        };
        if fp.max_summands() < 1 {
            return Err(SecAggError::Config(format!(
                "clip {clip} with {frac_bits} fractional bits does not fit a {ring_bits}-bit ring: lower the clip or the fractional bits"
            )));
        }
        Ok(fp)
    }

    fn scale(&self) -> f64 {
        (self.frac_bits as f64).exp2()
    }

    /// The largest number of encoded values whose sum decodes without wrapping.
    pub fn max_summands(&self) -> u64 {
        let half = ((self.ring.bits() - 1) as f64).exp2();
        let per_value = (self.clip * self.scale()).round().max(1.0);
        let m = ((half - 1.0) / per_value).floor();
        if m >= u64::MAX as f64 {
            u64::MAX
        } else {
            m as u64
        }
    }

    /// Encodes reals; returns the ring elements and how many values were clipped.
    pub fn encode(&self, values: &[f64]) -> Result<(Vec<u64>, usize), SecAggError> {
        let scale = self.scale();
        let mut clipped = 0;
        let mut out = Vec::with_capacity(values.len());
        for (index, &x) in values.iter().enumerate() {
            if !x.is_finite() {
                return Err(SecAggError::Encoding {
                    index,
                    value: x,
                    reason: "not a finite number".into(),
                });
            }
            if x.abs() > self.clip {
                clipped += 1;
            }
            let fixed = (x.clamp(-self.clip, self.clip) * scale).round() as i64;
            out.push((fixed as u64) & self.ring.mask());
        }
        Ok((out, clipped))
    }

    /// Decodes a sum of `summands` encoded values.
    pub fn decode_sum(&self, sum: &[u64], summands: usize) -> Result<Vec<f64>, SecAggError> {
        if summands as u64 > self.max_summands() {
            return Err(SecAggError::Config(format!(
                "a sum of {summands} values can wrap around the {}-bit ring (at most {} fit with clip {} and {} fractional bits)",
                self.ring.bits(),
                self.max_summands(),
                self.clip,
                self.frac_bits
            )));
        }
        let bits = self.ring.bits();
        let scale = self.scale();
        Ok(sum
            .iter()
            .map(|&v| {
                // Sign-extend the k-bit two's-complement value.
                let signed = ((v << (64 - bits)) as i64) >> (64 - bits);
                signed as f64 / scale
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_rejects_odd_sizes_and_packs_round_trip() {
        assert!(Ring::new(12).is_err());
        assert!(Ring::new(72).is_err());
        for bits in [8, 24, 48, 64] {
            let ring = Ring::new(bits).unwrap();
            let values: Vec<u64> = (0..50u64)
                .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & ring.mask())
                .collect();
            let bytes = ring.pack(&values);
            assert_eq!(bytes.len(), 50 * bits as usize / 8);
            assert_eq!(ring.unpack(&bytes, 50).unwrap(), values);
            assert!(ring.unpack(&bytes, 49).is_none());
        }
        let r16 = Ring::new(16).unwrap();
        assert_eq!(r16.add(0xffff, 2), 1);
        assert_eq!(r16.sub(1, 2), 0xffff);
        assert!(r16.check(&[0xffff]).is_ok());
        assert!(matches!(
            r16.check(&[1, 0x1_0000]),
            Err(SecAggError::InputRange { index: 1, .. })
        ));
    }

    #[test]
    fn fixed_point_sums_decode_exactly_within_rounding() {
        let fp = FixedPointRing::new(64, 20, 100.0).unwrap();
        let a = [1.5, -2.25, 99.0, -150.0];
        let b = [0.1, 0.2, -0.3, 7.0];
        let (ea, clipped_a) = fp.encode(&a).unwrap();
        let (eb, clipped_b) = fp.encode(&b).unwrap();
        assert_eq!((clipped_a, clipped_b), (1, 0));
        let sum: Vec<u64> = ea
            .iter()
            .zip(&eb)
            .map(|(x, y)| fp.ring.add(*x, *y))
            .collect();
        let decoded = fp.decode_sum(&sum, 2).unwrap();
        let expected = [1.6, -2.05, 98.7, -93.0];
        for (d, e) in decoded.iter().zip(expected) {
            assert!((d - e).abs() <= 2.0 * (-21f64).exp2(), "{d} vs {e}");
        }
        assert!(fp.encode(&[f64::NAN]).is_err());
    }

    #[test]
    fn summand_limit_prevents_wrap_around() {
        // 16-bit ring, 4 fractional bits, clip 10: one value spans ±160, the signed range is
        // ±32767, so 204 values fit (204·160 = 32640) and 205 do not.
        let fp = FixedPointRing::new(16, 4, 10.0).unwrap();
        assert_eq!(fp.max_summands(), 204);
        assert!(fp.decode_sum(&[0], 205).is_err());
        let (e, _) = fp.encode(&[10.0]).unwrap();
        let mut acc = 0u64;
        for _ in 0..204 {
            acc = fp.ring.add(acc, e[0]);
        }
        assert_eq!(fp.decode_sum(&[acc], 204).unwrap()[0], 2040.0);
        assert!(FixedPointRing::new(16, 14, 10.0).is_err());
    }
}
