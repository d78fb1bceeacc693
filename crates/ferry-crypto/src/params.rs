//! Named security parameters.
//!
//! Every size used by the schemes is derived here, so a reviewer can check one table:
//!
//! | modulus bits | security κ (NIST SP 800-57 Pt 1 Rev 5, Table 2) | randomizer exponent |
//! |---|---|---|
//! | 2048 | 112 | 256 |
//! | 3072 | 128 | 256 |
//! | 4096 | ~152 | 304 |
//!
//! The *randomizer exponent* is the bit length ℓ of the secret exponent `α` in the fast
//! encryption `h^α` of both schemes (see [`crate::paillier`] and [`crate::ou`]). The generic
//! attacks on a short exponent (Pollard's lambda / baby-step giant-step, van Oorschot–Wiener)
//! take about 2^(ℓ/2) group operations, so ℓ = 2κ matches the modulus; we use at least 256.

/// Default key size for both schemes.
pub const DEFAULT_KEY_BITS: u32 = 2048;

/// Smallest key the library accepts. Keys below 2048 bits are for tests and experiments only;
/// job configuration refuses them unless explicitly allowed.
pub const MIN_KEY_BITS: u32 = 256;

/// Largest key the library accepts (keeps parsing of peer-supplied keys bounded).
pub const MAX_KEY_BITS: u32 = 8192;

/// Key sizes offered to users.
pub const SUPPORTED_KEY_BITS: [u32; 2] = [2048, 3072];

/// Security level κ in bits of an integer-factorisation modulus of `modulus_bits` bits.
pub fn security_bits(modulus_bits: u32) -> u32 {
    match modulus_bits {
        0..=1023 => 64,
        1024..=2047 => 80,
        2048..=3071 => 112,
        3072..=4095 => 128,
        4096..=7679 => 152,
        7680..=15359 => 192,
        _ => 256,
    }
}

/// Bit length ℓ of the short randomizer exponent: `max(256, 2κ)`.
pub fn randomizer_exponent_bits(modulus_bits: u32) -> u32 {
    (2 * security_bits(modulus_bits)).max(256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_nist_levels() {
        assert_eq!(security_bits(2048), 112);
        assert_eq!(security_bits(3072), 128);
        assert_eq!(randomizer_exponent_bits(2048), 256);
        assert_eq!(randomizer_exponent_bits(3072), 256);
        assert_eq!(randomizer_exponent_bits(4096), 304);
    }
}
