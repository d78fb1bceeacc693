//! Fixed-point encoding of `f64` and encrypted numbers whose magnitude is tracked, so that an
//! overflow of the plaintext space is an error and never a wrong number.
//!
//! # Encoding
//! `x` is encoded as the integer `round(x · 2^f)` with `f` fractional bits
//! ([`FixedPoint::frac_bits`], default [`FixedPoint::DEFAULT_FRAC_BITS`] = 40). The absolute
//! error of one encoded value is at most `2^-(f+1)` (≈ 4.5e-13 for f = 40). Multiplying an
//! encoded value by an encoded scalar gives scale `2f`; [`EncryptedNumber::scale`] counts how
//! many factors of `2^f` a value carries and [`FixedPoint::decode_scaled`] divides them out.
//!
//! # Overflow
//! A scheme decrypts exactly while the true integer stays below `2^plaintext_bits` in magnitude
//! (2046 bits for Paillier-2048, 680 for OU-2048). [`EncryptedNumber`] carries an upper bound of
//! the magnitude of its plaintext (as log2); every operation updates the bound and refuses with
//! [`EncodingError::Overflow`] when it would reach the capacity. Sums of many values are fine:
//! a million values of magnitude up to 2^60 need only ~80 bits.

use crate::he::{HeError, HePublicKey, HeSecretKey};
use rand::CryptoRng;
use rug::Integer;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EncodingError {
    #[error("value {0} is not finite and cannot be encoded")]
    NotFinite(f64),
    #[error(
        "result may need {needed:.1} bits but the plaintext space holds {capacity} (signed): \
             use a larger key, fewer fractional bits, or split the computation"
    )]
    Overflow { needed: f64, capacity: u32 },
    #[error("cannot combine values with scales {0} and {1} (multiply the other operand first)")]
    ScaleMismatch(u32, u32),
    #[error("value has magnitude of {bits} bits but a slot holds at most {max} bits")]
    SlotOverflow { bits: u32, max: u32 },
    #[error("{given} values do not fit into {slots} slots")]
    TooManyValues { given: usize, slots: usize },
    #[error("a slot of {slot_bits} bits does not fit into a plaintext of {plaintext_bits} bits")]
    NoRoomForSlots { slot_bits: u32, plaintext_bits: u32 },
    #[error(transparent)]
    He(#[from] HeError),
}

/// Fixed-point codec with `frac_bits` fractional bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FixedPoint {
    frac_bits: u32,
}

impl Default for FixedPoint {
    fn default() -> Self {
        FixedPoint {
            frac_bits: Self::DEFAULT_FRAC_BITS,
        }
    }
}

impl FixedPoint {
    /// 40 fractional bits: precision 2^-41 ≈ 4.5e-13 per value, leaving plenty of headroom in
    /// OU's 680-bit plaintexts even for products (scale 2 = 80 bits).
    pub const DEFAULT_FRAC_BITS: u32 = 40;

    pub fn new(frac_bits: u32) -> Self {
        assert!(
            frac_bits <= 256,
            "more than 256 fractional bits is never useful for f64 inputs"
        );
        FixedPoint { frac_bits }
    }

    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// Largest rounding error of one encoded value.
    pub fn precision(&self) -> f64 {
        (-(self.frac_bits as f64) - 1.0).exp2()
    }

    /// `round(x · 2^f)`.
    pub fn encode(&self, x: f64) -> Result<Integer, EncodingError> {
        self.encode_scaled(x, 1)
    }

    /// `round(x · 2^(f·scale))`.
    pub fn encode_scaled(&self, x: f64, scale: u32) -> Result<Integer, EncodingError> {
        if !x.is_finite() {
            return Err(EncodingError::NotFinite(x));
        }
        // Scaling by a power of two is exact in f64 unless it overflows, which the check catches.
        let scaled = x * ((self.frac_bits * scale) as f64).exp2();
        if !scaled.is_finite() {
            // Exact route for huge magnitudes: the f64 is an integer already.
            let mut v = Integer::from_f64(x).ok_or(EncodingError::NotFinite(x))?;
            v <<= self.frac_bits * scale;
            return Ok(v);
        }
        Ok(Integer::from_f64(scaled.round()).expect("finite"))
    }

    /// Inverse of [`FixedPoint::encode`].
    pub fn decode(&self, v: &Integer) -> f64 {
        self.decode_scaled(v, 1)
    }

    /// Inverse of [`FixedPoint::encode_scaled`].
    pub fn decode_scaled(&self, v: &Integer, scale: u32) -> f64 {
        let shift = (self.frac_bits * scale) as i32;
        // Split off whole 2^1000 factors so neither the conversion nor the scaling overflows.
        let bits = v.significant_bits() as i32;
        if bits < 1000 {
            v.to_f64() * (-(shift as f64)).exp2()
        } else {
            let drop = bits - 900;
            let top = Integer::from(v >> drop as u32).to_f64();
            top * ((drop - shift) as f64).exp2()
        }
    }
}

/// `log2(2^a + 2^b)`, rounded up slightly so the bound stays an upper bound.
fn log2_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp2().ln_1p() / std::f64::consts::LN_2 + 1e-9
}

fn log2_of(v: &Integer) -> f64 {
    if *v == 0 {
        f64::NEG_INFINITY
    } else {
        // An upper bound: |v| < 2^bits.
        v.significant_bits() as f64
    }
}

/// A ciphertext of a fixed-point number with a tracked bound on its plaintext magnitude.
#[derive(Clone, Debug)]
pub struct EncryptedNumber<C> {
    pub ciphertext: C,
    /// Number of `2^f` factors in the plaintext.
    pub scale: u32,
    /// `|plaintext| < 2^bound_log2`.
    pub bound_log2: f64,
}

/// Fixed-point arithmetic on ciphertexts of one public key.
#[derive(Clone, Debug)]
pub struct FixedPointCipher<K: HePublicKey> {
    pub key: K,
    pub codec: FixedPoint,
}

impl<K: HePublicKey> FixedPointCipher<K> {
    pub fn new(key: K, codec: FixedPoint) -> Self {
        FixedPointCipher { key, codec }
    }

    fn check(&self, bound_log2: f64) -> Result<f64, EncodingError> {
        let capacity = self.key.plaintext_bits();
        if bound_log2 > capacity as f64 {
            return Err(EncodingError::Overflow {
                needed: bound_log2,
                capacity,
            });
        }
        Ok(bound_log2)
    }

    pub fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        x: f64,
        rng: &mut R,
    ) -> Result<EncryptedNumber<K::Ciphertext>, EncodingError> {
        let v = self.codec.encode(x)?;
        let bound_log2 = self.check(log2_of(&v))?;
        Ok(EncryptedNumber {
            ciphertext: self.key.encrypt(&v, rng)?,
            scale: 1,
            bound_log2,
        })
    }

    /// Encrypts a slice on all cores.
    pub fn encrypt_many<R: CryptoRng + ?Sized>(
        &self,
        xs: &[f64],
        rng: &mut R,
    ) -> Result<Vec<EncryptedNumber<K::Ciphertext>>, EncodingError> {
        let encoded = xs
            .iter()
            .map(|&x| self.codec.encode(x))
            .collect::<Result<Vec<_>, _>>()?;
        let bounds = encoded
            .iter()
            .map(|v| self.check(log2_of(v)))
            .collect::<Result<Vec<_>, _>>()?;
        let cts = self.key.encrypt_many(&encoded, rng)?;
        Ok(cts
            .into_iter()
            .zip(bounds)
            .map(|(ciphertext, bound_log2)| EncryptedNumber {
                ciphertext,
                scale: 1,
                bound_log2,
            })
            .collect())
    }

    pub fn add(
        &self,
        a: &EncryptedNumber<K::Ciphertext>,
        b: &EncryptedNumber<K::Ciphertext>,
    ) -> Result<EncryptedNumber<K::Ciphertext>, EncodingError> {
        if a.scale != b.scale {
            return Err(EncodingError::ScaleMismatch(a.scale, b.scale));
        }
        let bound_log2 = self.check(log2_add(a.bound_log2, b.bound_log2))?;
        Ok(EncryptedNumber {
            ciphertext: self.key.add(&a.ciphertext, &b.ciphertext),
            scale: a.scale,
            bound_log2,
        })
    }

    pub fn sub(
        &self,
        a: &EncryptedNumber<K::Ciphertext>,
        b: &EncryptedNumber<K::Ciphertext>,
    ) -> Result<EncryptedNumber<K::Ciphertext>, EncodingError> {
        self.add(a, &self.neg(b))
    }

    pub fn neg(&self, a: &EncryptedNumber<K::Ciphertext>) -> EncryptedNumber<K::Ciphertext> {
        EncryptedNumber {
            ciphertext: self.key.neg(&a.ciphertext),
            scale: a.scale,
            bound_log2: a.bound_log2,
        }
    }

    /// Adds a plaintext `x`, encoded at the ciphertext's scale.
    pub fn add_plain(
        &self,
        a: &EncryptedNumber<K::Ciphertext>,
        x: f64,
    ) -> Result<EncryptedNumber<K::Ciphertext>, EncodingError> {
        let v = self.codec.encode_scaled(x, a.scale)?;
        let bound_log2 = self.check(log2_add(a.bound_log2, log2_of(&v)))?;
        Ok(EncryptedNumber {
            ciphertext: self.key.add_plain(&a.ciphertext, &v)?,
            scale: a.scale,
            bound_log2,
        })
    }

    /// Multiplies by a plaintext `x` (encoded with scale 1; the result's scale grows by one).
    pub fn mul_plain(
        &self,
        a: &EncryptedNumber<K::Ciphertext>,
        x: f64,
    ) -> Result<EncryptedNumber<K::Ciphertext>, EncodingError> {
        let k = self.codec.encode(x)?;
        let bound_log2 = self.check(a.bound_log2 + log2_of(&k))?;
        Ok(EncryptedNumber {
            ciphertext: self.key.mul_plain(&a.ciphertext, &k),
            scale: a.scale + 1,
            bound_log2,
        })
    }

    /// Multiplies by an exact integer (scale unchanged).
    pub fn mul_int(
        &self,
        a: &EncryptedNumber<K::Ciphertext>,
        k: &Integer,
    ) -> Result<EncryptedNumber<K::Ciphertext>, EncodingError> {
        let bound_log2 = self.check(a.bound_log2 + log2_of(k))?;
        Ok(EncryptedNumber {
            ciphertext: self.key.mul_plain(&a.ciphertext, k),
            scale: a.scale,
            bound_log2,
        })
    }

    /// Sum of many numbers of the same scale (`None` for an empty slice).
    pub fn sum(
        &self,
        items: &[EncryptedNumber<K::Ciphertext>],
    ) -> Result<Option<EncryptedNumber<K::Ciphertext>>, EncodingError> {
        let Some(first) = items.first() else {
            return Ok(None);
        };
        let mut bound = f64::NEG_INFINITY;
        for it in items {
            if it.scale != first.scale {
                return Err(EncodingError::ScaleMismatch(first.scale, it.scale));
            }
            bound = log2_add(bound, it.bound_log2);
        }
        let bound_log2 = self.check(bound)?;
        let cts: Vec<_> = items.iter().map(|i| i.ciphertext.clone()).collect();
        Ok(Some(EncryptedNumber {
            ciphertext: crate::batch::sum(&self.key, &cts),
            scale: first.scale,
            bound_log2,
        }))
    }

    /// Decrypts with the matching secret key.
    pub fn decrypt<S: HeSecretKey<Public = K>>(
        &self,
        sk: &S,
        a: &EncryptedNumber<K::Ciphertext>,
    ) -> f64 {
        self.codec
            .decode_scaled(&sk.decrypt(&a.ciphertext), a.scale)
    }
}
