//! Key agreement (Diffie–Hellman on Ristretto255), key derivation, authenticated encryption of
//! key shares (ChaCha20-Poly1305) and mask expansion (ChaCha20 as a PRG).

use crate::ring::Ring;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use ferry_context::PartyId;
use rand::{CryptoRng, Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha512};

/// Domain separation for every derived key of this protocol version.
const KDF_DST: &[u8] = b"ferry/secagg/v1/";

/// An ephemeral Diffie–Hellman key pair; the public key is `sk · B` compressed.
pub(crate) struct KeyPair {
    pub(crate) secret: Scalar,
    pub(crate) public: [u8; 32],
}

impl KeyPair {
    pub(crate) fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let secret = random_nonzero_scalar(rng);
        KeyPair {
            secret,
            public: public_key(&secret),
        }
    }
}

pub(crate) fn random_nonzero_scalar<R: CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
    loop {
        let s = Scalar::random(rng);
        if s != Scalar::ZERO {
            return s;
        }
    }
}

pub(crate) fn public_key(secret: &Scalar) -> [u8; 32] {
    RistrettoPoint::mul_base(secret).compress().to_bytes()
}

/// Whether `bytes` encode a Ristretto255 element other than the identity (a peer's public key
/// must be one, or the shared secret would be predictable).
pub(crate) fn valid_public_key(bytes: &[u8; 32]) -> bool {
    CompressedRistretto(*bytes)
        .decompress()
        .is_some_and(|p| p != RistrettoPoint::default())
}

/// The Diffie–Hellman shared element `secret · peer`, or `None` for an invalid peer key.
pub(crate) fn agree(secret: &Scalar, peer_public: &[u8; 32]) -> Option<[u8; 32]> {
    let point = CompressedRistretto(*peer_public).decompress()?;
    if point == RistrettoPoint::default() {
        return None;
    }
    Some((point * secret).compress().to_bytes())
}

/// A 32-byte key for `purpose`, bound to the two parties (in the given order) and the shared
/// element. Party names are length-prefixed so distinct pairs never hash the same input.
pub(crate) fn derive(purpose: &[u8], first: &PartyId, second: &PartyId, shared: &[u8]) -> [u8; 32] {
    let mut h = Sha512::new();
    h.update(KDF_DST);
    h.update((purpose.len() as u32).to_le_bytes());
    h.update(purpose);
    for name in [first.as_str(), second.as_str()] {
        h.update((name.len() as u32).to_le_bytes());
        h.update(name.as_bytes());
    }
    h.update(shared);
    let digest: [u8; 64] = h.finalize().into();
    let mut key = [0u8; 32];
    key.copy_from_slice(&digest[..32]);
    key
}

/// The PRG seed of a self mask `b_u` (a scalar, so it can be Shamir-shared).
pub(crate) fn self_mask_seed(b: &Scalar) -> [u8; 32] {
    let mut h = Sha512::new();
    h.update(KDF_DST);
    h.update(b"self-mask");
    h.update(b.to_bytes());
    let digest: [u8; 64] = h.finalize().into();
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&digest[..32]);
    seed
}

/// The pairwise mask seed of two parties: the same for both, whoever computes it.
pub(crate) fn pairwise_seed(a: &PartyId, b: &PartyId, shared: &[u8; 32]) -> [u8; 32] {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    derive(b"pairwise-mask", lo, hi, shared)
}

/// `len` ring elements expanded from `seed` with ChaCha20.
pub(crate) fn expand_mask(seed: &[u8; 32], ring: &Ring, len: usize) -> Vec<u64> {
    let mut prg = ChaCha20Rng::from_seed(*seed);
    let mask = ring.mask();
    (0..len).map(|_| prg.next_u64() & mask).collect()
}

/// Plaintext of one encrypted share message: the share of the sender's mask key and of its
/// self-mask seed, both for the recipient's evaluation point.
pub(crate) struct SharePair {
    pub(crate) mask_key_share: Scalar,
    pub(crate) self_mask_share: Scalar,
}

/// Each (sender, recipient) key encrypts exactly one message, so a fixed nonce is safe; the
/// direction is part of the key derivation, so the reverse message uses a different key.
fn share_cipher(sender: &PartyId, recipient: &PartyId, shared: &[u8; 32]) -> ChaCha20Poly1305 {
    let key = derive(b"share-encryption", sender, recipient, shared);
    ChaCha20Poly1305::new(&Key::from(key))
}

fn share_aad(sender: &PartyId, recipient: &PartyId) -> Vec<u8> {
    let mut aad = Vec::new();
    for name in [sender.as_str(), recipient.as_str()] {
        aad.extend_from_slice(&(name.len() as u32).to_le_bytes());
        aad.extend_from_slice(name.as_bytes());
    }
    aad
}

pub(crate) fn seal_shares(
    sender: &PartyId,
    recipient: &PartyId,
    shared: &[u8; 32],
    shares: &SharePair,
) -> Vec<u8> {
    let mut plaintext = Vec::with_capacity(64);
    plaintext.extend_from_slice(&shares.mask_key_share.to_bytes());
    plaintext.extend_from_slice(&shares.self_mask_share.to_bytes());
    let aad = share_aad(sender, recipient);
    share_cipher(sender, recipient, shared)
        .encrypt(
            &Nonce::default(),
            Payload {
                msg: &plaintext,
                aad: &aad,
            },
        )
        // Encryption fails only for messages beyond 2^38 bytes; an empty result would be
        // refused by the server's length check anyway.
        .unwrap_or_default()
}

/// Decrypts and parses a share message; `None` when authentication fails or a share is not
/// a canonical scalar.
pub(crate) fn open_shares(
    sender: &PartyId,
    recipient: &PartyId,
    shared: &[u8; 32],
    ciphertext: &[u8],
) -> Option<SharePair> {
    let aad = share_aad(sender, recipient);
    let plaintext = share_cipher(sender, recipient, shared)
        .decrypt(
            &Nonce::default(),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .ok()?;
    if plaintext.len() != 64 {
        return None;
    }
    Some(SharePair {
        mask_key_share: scalar_from_slice(&plaintext[..32])?,
        self_mask_share: scalar_from_slice(&plaintext[32..])?,
    })
}

pub(crate) fn scalar_from_slice(bytes: &[u8]) -> Option<Scalar> {
    let array: [u8; 32] = bytes.try_into().ok()?;
    Scalar::from_canonical_bytes(array).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(name: &str) -> PartyId {
        PartyId::new(name).unwrap()
    }

    #[test]
    fn both_sides_agree_on_the_pairwise_seed() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let a = KeyPair::generate(&mut rng);
        let b = KeyPair::generate(&mut rng);
        let ab = agree(&a.secret, &b.public).unwrap();
        let ba = agree(&b.secret, &a.public).unwrap();
        assert_eq!(ab, ba);
        let (pa, pb) = (party("alice"), party("bob"));
        assert_eq!(pairwise_seed(&pa, &pb, &ab), pairwise_seed(&pb, &pa, &ba));
        assert!(
            agree(&a.secret, &[0u8; 32]).is_none(),
            "identity is refused"
        );
        assert!(!valid_public_key(&[0u8; 32]));
        assert!(valid_public_key(&a.public));
    }

    #[test]
    fn shares_open_only_for_the_right_pair_and_direction() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let shared = [7u8; 32];
        let shares = SharePair {
            mask_key_share: Scalar::random(&mut rng),
            self_mask_share: Scalar::random(&mut rng),
        };
        let (u, v, w) = (party("u"), party("v"), party("w"));
        let ct = seal_shares(&u, &v, &shared, &shares);
        assert_eq!(ct.len(), 64 + 16);
        let opened = open_shares(&u, &v, &shared, &ct).unwrap();
        assert_eq!(opened.mask_key_share, shares.mask_key_share);
        assert_eq!(opened.self_mask_share, shares.self_mask_share);
        assert!(
            open_shares(&v, &u, &shared, &ct).is_none(),
            "reverse direction"
        );
        assert!(
            open_shares(&u, &w, &shared, &ct).is_none(),
            "other recipient"
        );
        assert!(open_shares(&u, &v, &[8u8; 32], &ct).is_none(), "other key");
        let mut tampered = ct.clone();
        tampered[3] ^= 1;
        assert!(open_shares(&u, &v, &shared, &tampered).is_none());
    }

    #[test]
    fn masks_are_deterministic_per_seed_and_fit_the_ring() {
        let ring = Ring::new(24).unwrap();
        let m1 = expand_mask(&[1u8; 32], &ring, 100);
        assert_eq!(m1, expand_mask(&[1u8; 32], &ring, 100));
        assert_ne!(m1, expand_mask(&[2u8; 32], &ring, 100));
        assert!(m1.iter().all(|v| *v < 1 << 24));
    }
}
