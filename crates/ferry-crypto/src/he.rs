//! The interface every additively homomorphic scheme in Ferry implements.
//!
//! Algorithms (SecureBoost, hetero LR) are generic over [`HeSecretKey`] / [`HePublicKey`] and
//! pick the scheme from configuration ([`SchemeKind`]) once, at the top of a job.
//!
//! Plaintexts are signed integers. A scheme guarantees that any value `v` with
//! `|v| < 2^plaintext_bits()` decrypts to exactly `v`, and that sums and scalar products decrypt
//! exactly as long as the *true* result also stays inside that range. Fixed-point encoding and
//! bound tracking on top of this ([`crate::encoding`]) turn "stays inside the range" into a
//! checked error instead of a silently wrong number.

use crate::wire::{CiphertextBatch, WireError};
use rand::CryptoRng;
use rug::Integer;
use serde::{Serialize, de::DeserializeOwned};
use std::fmt::Debug;

/// The homomorphic schemes Ferry ships.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SchemeKind {
    Paillier,
    #[serde(alias = "ou")]
    OkamotoUchiyama,
}

impl SchemeKind {
    pub fn name(self) -> &'static str {
        match self {
            SchemeKind::Paillier => "paillier",
            SchemeKind::OkamotoUchiyama => "ou",
        }
    }

    pub(crate) fn wire_id(self) -> u8 {
        match self {
            SchemeKind::Paillier => 1,
            SchemeKind::OkamotoUchiyama => 2,
        }
    }
}

impl std::str::FromStr for SchemeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "paillier" => Ok(SchemeKind::Paillier),
            "ou" | "okamoto_uchiyama" | "okamoto-uchiyama" => Ok(SchemeKind::OkamotoUchiyama),
            other => Err(format!(
                "unknown homomorphic scheme '{other}' (expected 'paillier' or 'ou')"
            )),
        }
    }
}

/// Errors from homomorphic operations on plaintext values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeError {
    #[error("plaintext needs {bits} bits but this key holds at most {capacity} (signed)")]
    PlaintextTooLarge { bits: u32, capacity: u32 },
}

/// The public half of a key: encryption and homomorphic operations.
///
/// Ciphertexts live in the scheme's fast internal representation; [`HePublicKey::encode_batch`]
/// and [`HePublicKey::decode_batch`] convert to and from the versioned wire format.
pub trait HePublicKey:
    Clone + Debug + Send + Sync + Serialize + DeserializeOwned + 'static
{
    type Ciphertext: Clone + Debug + Send + Sync + 'static;

    fn scheme(&self) -> SchemeKind;
    /// Size of the modulus that names the key (2048 for "Paillier-2048").
    fn key_bits(&self) -> u32;
    /// Signed plaintext capacity: `|v| < 2^plaintext_bits()` round-trips.
    fn plaintext_bits(&self) -> u32;
    /// Bytes of one ciphertext on the wire.
    fn ciphertext_bytes(&self) -> usize;
    /// Short identifier of the key (first bytes of a hash of its wire form).
    fn fingerprint(&self) -> [u8; 8];

    /// Encrypts a signed value with fresh randomness.
    fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        rng: &mut R,
    ) -> Result<Self::Ciphertext, HeError>;
    /// A deterministic encryption of zero (the identity for [`HePublicKey::add`]); it carries
    /// no randomness, so re-randomise before sending anything derived only from it.
    fn zero(&self) -> Self::Ciphertext;
    fn add(&self, a: &Self::Ciphertext, b: &Self::Ciphertext) -> Self::Ciphertext;
    fn add_assign(&self, a: &mut Self::Ciphertext, b: &Self::Ciphertext);
    fn sub(&self, a: &Self::Ciphertext, b: &Self::Ciphertext) -> Self::Ciphertext;
    fn add_plain(&self, a: &Self::Ciphertext, m: &Integer) -> Result<Self::Ciphertext, HeError>;
    /// Multiplies the plaintext by a signed scalar `k`.
    fn mul_plain(&self, a: &Self::Ciphertext, k: &Integer) -> Self::Ciphertext;
    fn neg(&self, a: &Self::Ciphertext) -> Self::Ciphertext;
    /// Multiplies in fresh randomness: same plaintext, unlinkable ciphertext.
    fn rerandomize<R: CryptoRng + ?Sized>(
        &self,
        a: &Self::Ciphertext,
        rng: &mut R,
    ) -> Self::Ciphertext;
    /// Multiplies the plaintext by `2^shift` (used to pack values into slots).
    fn shift_left(&self, a: &Self::Ciphertext, shift: u32) -> Self::Ciphertext {
        self.mul_plain(a, &(Integer::from(1) << shift))
    }

    fn encode_batch(&self, cts: &[Self::Ciphertext]) -> CiphertextBatch;
    fn decode_batch(&self, batch: &CiphertextBatch) -> Result<Vec<Self::Ciphertext>, WireError>;

    /// Encrypts every value on all cores; reproducible from `rng`'s state.
    fn encrypt_many<R: CryptoRng + ?Sized>(
        &self,
        ms: &[Integer],
        rng: &mut R,
    ) -> Result<Vec<Self::Ciphertext>, HeError> {
        crate::batch::encrypt_many(self, ms, rng)
    }
}

/// The secret half: decryption (and, where the scheme allows, faster encryption by the owner).
pub trait HeSecretKey: Debug + Send + Sync + 'static {
    type Public: HePublicKey;

    /// Generates a key whose public modulus has `bits` bits.
    fn generate<R: CryptoRng + ?Sized>(bits: u32, rng: &mut R) -> Result<Self, KeyGenError>
    where
        Self: Sized;
    fn public(&self) -> &Self::Public;
    /// Decrypts to the signed value in `(-2^plaintext_bits, 2^plaintext_bits)`.
    fn decrypt(&self, c: &<Self::Public as HePublicKey>::Ciphertext) -> Integer;
    /// Encryption by the key owner; schemes may use the factorisation to go faster.
    fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        rng: &mut R,
    ) -> Result<<Self::Public as HePublicKey>::Ciphertext, HeError> {
        self.public().encrypt(m, rng)
    }

    /// Decrypts every ciphertext on all cores.
    fn decrypt_many(&self, cts: &[<Self::Public as HePublicKey>::Ciphertext]) -> Vec<Integer> {
        use rayon::prelude::*;
        cts.par_iter().map(|c| self.decrypt(c)).collect()
    }

    /// Owner encryption of every value on all cores; reproducible from `rng`'s state.
    fn encrypt_many<R: CryptoRng + ?Sized>(
        &self,
        ms: &[Integer],
        rng: &mut R,
    ) -> Result<Vec<<Self::Public as HePublicKey>::Ciphertext>, HeError> {
        crate::batch::encrypt_many_owner(self, ms, rng)
    }
}

/// Errors from key generation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyGenError {
    #[error("key size {bits} bits is not supported: {reason}")]
    UnsupportedSize { bits: u32, reason: &'static str },
}

/// Checks `|m| < 2^capacity`.
pub(crate) fn check_plaintext(m: &Integer, capacity: u32) -> Result<(), HeError> {
    let bits = m.significant_bits();
    if bits > capacity {
        return Err(HeError::PlaintextTooLarge { bits, capacity });
    }
    Ok(())
}
