//! Prime-order group operations for ECDH-based private set intersection.
//!
//! PSI needs two operations on a group where Decisional Diffie–Hellman is hard:
//! `blind(k, id) = k · H(id)` (hash an identifier to the group and multiply by a secret scalar)
//! and `reblind(k, P) = k · P` (multiply an element received from a peer). Commutativity
//! `k1·(k2·H(x)) = k2·(k1·H(x))` is what lets two parties compare doubly blinded sets.
//!
//! [`EcdhGroup`] is the seam: [`Ristretto255`] implements it today (RFC 9496, 128-bit
//! security, 32-byte canonical encodings with no cofactor pitfalls); an SM2 (GB/T 32918)
//! implementation can be added beside it without touching the PSI protocol.
//!
//! Hash to group: `H(id) = ristretto255 one-way map (SHA-512(DST || id))` (RFC 9496 §4.3.4),
//! with the domain-separation prefix [`Ristretto255::HASH_DST`].

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand::CryptoRng;
use rayon::prelude::*;
use sha2::{Digest, Sha512};

/// An element received from a peer did not decode to a group element.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("element {index} is not a valid {group} encoding")]
pub struct InvalidElement {
    pub index: usize,
    pub group: &'static str,
}

/// A prime-order group with hashing to the group, for ECDH-PSI.
pub trait EcdhGroup: Send + Sync + 'static {
    /// Canonical encoding of an element.
    type Element: Copy + Eq + Ord + std::hash::Hash + Send + Sync + AsRef<[u8]> + std::fmt::Debug;
    /// A secret scalar.
    type Key: Send + Sync;

    const NAME: &'static str;
    const ELEMENT_BYTES: usize;

    fn random_key<R: CryptoRng + ?Sized>(rng: &mut R) -> Self::Key;
    /// `k · H(id)`, encoded.
    fn blind(key: &Self::Key, id: &[u8]) -> Self::Element;
    /// `k · P` for an encoded `P` from a peer.
    fn reblind(key: &Self::Key, element: &Self::Element) -> Option<Self::Element>;
    /// Parses an element from bytes (length checked; group membership is checked by `reblind`).
    fn element_from_bytes(bytes: &[u8]) -> Option<Self::Element>;

    /// [`EcdhGroup::blind`] over a batch on all cores.
    fn blind_many<I: AsRef<[u8]> + Sync>(key: &Self::Key, ids: &[I]) -> Vec<Self::Element> {
        ids.par_iter()
            .with_min_len(256)
            .map(|id| Self::blind(key, id.as_ref()))
            .collect()
    }

    /// [`EcdhGroup::reblind`] over a batch on all cores; fails on the first invalid element.
    fn reblind_many(
        key: &Self::Key,
        elements: &[Self::Element],
    ) -> Result<Vec<Self::Element>, InvalidElement> {
        elements
            .par_iter()
            .with_min_len(256)
            .enumerate()
            .map(|(index, e)| {
                Self::reblind(key, e).ok_or(InvalidElement {
                    index,
                    group: Self::NAME,
                })
            })
            .collect()
    }
}

/// Ristretto255 (RFC 9496) on curve25519-dalek.
pub struct Ristretto255;

/// A Ristretto255 secret scalar (never zero).
pub struct RistrettoKey(Scalar);

impl RistrettoKey {
    /// Key bytes for a cached-key mode; store like any other secret.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Option<Self> {
        let s: Option<Scalar> = Scalar::from_canonical_bytes(bytes).into();
        s.filter(|s| *s != Scalar::ZERO).map(RistrettoKey)
    }
}

impl Ristretto255 {
    /// Domain separation for hashing identifiers.
    pub const HASH_DST: &'static [u8] = b"ferry/psi/v1/ristretto255-sha512/";

    /// `H(id)` as a group element.
    pub fn hash_to_group(id: &[u8]) -> RistrettoPoint {
        let mut h = Sha512::new();
        h.update(Self::HASH_DST);
        h.update(id);
        let digest: [u8; 64] = h.finalize().into();
        RistrettoPoint::from_uniform_bytes(&digest)
    }
}

impl EcdhGroup for Ristretto255 {
    type Element = [u8; 32];
    type Key = RistrettoKey;

    const NAME: &'static str = "ristretto255";
    const ELEMENT_BYTES: usize = 32;

    fn random_key<R: CryptoRng + ?Sized>(rng: &mut R) -> RistrettoKey {
        loop {
            let s = Scalar::random(rng);
            if s != Scalar::ZERO {
                return RistrettoKey(s);
            }
        }
    }

    fn blind(key: &RistrettoKey, id: &[u8]) -> [u8; 32] {
        (Self::hash_to_group(id) * key.0).compress().to_bytes()
    }

    fn reblind(key: &RistrettoKey, element: &[u8; 32]) -> Option<[u8; 32]> {
        let point = CompressedRistretto(*element).decompress()?;
        Some((point * key.0).compress().to_bytes())
    }

    fn element_from_bytes(bytes: &[u8]) -> Option<[u8; 32]> {
        bytes.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 9496 Appendix A.3: the one-way map from 64 uniform bytes.
    #[test]
    fn one_way_map_matches_rfc_9496_vectors() {
        let vectors = [
            (
                "5d1be09e3d0c82fc538112490e35701979d99e06ca3e2b5b54bffe8b4dc772c14d98b696a1bbfb5ca32c436cc61c16563790306c79eaca7705668b47dffe5bb6",
                "3066f82a1a747d45120d1740f14358531a8f04bbffe6a819f86dfe50f44a0a46",
            ),
            (
                "f116b34b8f17ceb56e8732a60d913dd10cce47a6d53bee9204be8b44f6678b270102a56902e2488c46120e9276cfe54638286b9e4b3cdb470b542d46c2068d38",
                "f26e5b6f7d362d2d2a94c5d0e7602cb4773c95a2e5c31a64f133189fa76ed61b",
            ),
            (
                "165d697a1ef3d5cf3c38565beefcf88c0f282b8e7dbd28544c483432f1cec7675debea8ebb4e5fe7d6f6e5db15f15587ac4d4d4a1de7191e0c1ca6664abcc413",
                "ae81e7dedf20a497e10c304a765c1767a42d6e06029758d2d7e8ef7cc4c41179",
            ),
        ];
        for (input, expected) in vectors {
            let bytes: [u8; 64] = unhex(input).try_into().unwrap();
            let point = RistrettoPoint::from_uniform_bytes(&bytes);
            assert_eq!(point.compress().to_bytes().to_vec(), unhex(expected));
        }
    }

    /// RFC 9496 Appendix A.1: encodings of small multiples of the generator.
    #[test]
    fn generator_multiples_match_rfc_9496() {
        let b = curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
        assert_eq!(
            b.compress().to_bytes().to_vec(),
            unhex("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76")
        );
        assert_eq!(
            (b + b).compress().to_bytes().to_vec(),
            unhex("6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919")
        );
    }

    #[test]
    fn blinding_commutes() {
        let mut rng = ChaCha20Rng::seed_from_u64(42);
        let a = Ristretto255::random_key(&mut rng);
        let b = Ristretto255::random_key(&mut rng);
        for id in [&b"alice"[..], b"", b"\x00\xff id with bytes"] {
            let ab = Ristretto255::reblind(&b, &Ristretto255::blind(&a, id)).unwrap();
            let ba = Ristretto255::reblind(&a, &Ristretto255::blind(&b, id)).unwrap();
            assert_eq!(ab, ba);
        }
        assert_ne!(Ristretto255::blind(&a, b"x"), Ristretto255::blind(&a, b"y"));
        assert_ne!(Ristretto255::blind(&a, b"x"), Ristretto255::blind(&b, b"x"));
    }

    #[test]
    fn batches_match_single_calls_and_reject_bad_points() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let key = Ristretto255::random_key(&mut rng);
        let ids: Vec<String> = (0..600).map(|i| format!("id-{i}")).collect();
        let blinded = Ristretto255::blind_many(&key, &ids);
        assert_eq!(blinded[17], Ristretto255::blind(&key, b"id-17"));
        let mut bad = blinded.clone();
        bad[5] = [0xff; 32]; // not a canonical field element
        let err = Ristretto255::reblind_many(&key, &bad).unwrap_err();
        assert_eq!(err.index, 5);
        assert_eq!(
            Ristretto255::reblind_many(&key, &blinded).unwrap().len(),
            600
        );
    }

    #[test]
    fn key_bytes_round_trip_and_zero_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let key = Ristretto255::random_key(&mut rng);
        let again = RistrettoKey::from_bytes(key.to_bytes()).unwrap();
        assert_eq!(
            Ristretto255::blind(&key, b"q"),
            Ristretto255::blind(&again, b"q")
        );
        assert!(RistrettoKey::from_bytes([0u8; 32]).is_none());
    }
}
