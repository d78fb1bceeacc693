//! The 2HashDH oblivious PRF over Ristretto255 (the construction of RFC 9497's OPRF mode,
//! with this crate's own domain separation), and what is derived from its output.
//!
//! `F_k(x) = SHA-256(DST_FINAL ‖ len(x) ‖ x ‖ enc(2·k·H(x)))` with
//! `H(x) = ristretto255 one-way map(SHA-512(DST_HASH ‖ x))` (RFC 9496 §4.3.4).
//!
//! The doubling is for speed: the encodings of `2P` for a batch of points share one field
//! inversion (`RistrettoPoint::double_and_compress_batch`), where encoding `P` costs an
//! inverse square root per point; that is a third of the provider's per-row preprocessing
//! (the hash to the group costs two more). Doubling is a bijection of the prime-order group,
//! so the PRF is as good.
//!
//! * Querier: draws `r ≠ 0`, sends `B = r·H(x)` (a uniformly random element, independent of x).
//! * Provider: returns `Z = k·B`.
//! * Querier: `N = r⁻¹·Z = k·H(x)`, then `F_k(x)`.
//!
//! From `F = F_k(x)` both sides derive, with SHA-256 under distinct labels: the bucket (with
//! the table's public bucket salt), the 8-byte tag, and the keystream that encrypts the value.

use crate::params::{ELEMENT_BYTES, OPRF_KEY_BYTES, TAG_BYTES};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand::CryptoRng;
use rayon::prelude::*;
use sha2::{Digest, Sha256, Sha512};

const DST_HASH: &[u8] = b"ferry/pir/v1/oprf/hash-to-group/ristretto255-sha512/";
const DST_FINAL: &[u8] = b"ferry/pir/v1/oprf/finalize/";
const DST_BUCKET: &[u8] = b"ferry/pir/v1/bucket/";
const DST_TAG: &[u8] = b"ferry/pir/v1/tag/";
const DST_PAD: &[u8] = b"ferry/pir/v1/pad/";

/// An OPRF output `F_k(x)`.
pub type OprfOutput = [u8; 32];

/// The provider's OPRF key: a non-zero scalar. No `Debug` output, no wire form.
#[derive(Clone)]
pub(crate) struct OprfKey(Scalar);

impl std::fmt::Debug for OprfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OprfKey(..)")
    }
}

impl OprfKey {
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        OprfKey(nonzero_scalar(rng))
    }

    pub fn to_bytes(&self) -> [u8; OPRF_KEY_BYTES] {
        self.0.to_bytes()
    }

    /// A stored key: canonical and non-zero.
    pub fn from_bytes(bytes: [u8; OPRF_KEY_BYTES]) -> Option<Self> {
        let s: Option<Scalar> = Scalar::from_canonical_bytes(bytes).into();
        s.filter(|s| *s != Scalar::ZERO).map(OprfKey)
    }

    /// `F_k(x)` computed directly (provider side; builds use [`OprfKey::evaluate_many`]).
    #[cfg(test)]
    pub fn evaluate(&self, x: &[u8]) -> OprfOutput {
        finalize_batch(&[x], &[hash_to_group(x) * self.0])[0]
    }

    /// `F_k(x)` for every key, on all cores, in batches that share the encoding's inversion.
    pub fn evaluate_many<K: AsRef<[u8]> + Sync>(&self, keys: &[K]) -> Vec<OprfOutput> {
        keys.par_chunks(BATCH)
            .flat_map_iter(|chunk| {
                let points: Vec<RistrettoPoint> = chunk
                    .iter()
                    .map(|x| hash_to_group(x.as_ref()) * self.0)
                    .collect();
                let xs: Vec<&[u8]> = chunk.iter().map(|x| x.as_ref()).collect();
                finalize_batch(&xs, &points)
            })
            .collect()
    }

    /// `(H(x), k·H(x), F_k(x))`, the first two encoded (for [`crate::ProviderTable::locate`]).
    pub fn evaluate_parts(&self, x: &[u8]) -> ([u8; 32], [u8; 32], OprfOutput) {
        let h = hash_to_group(x);
        let kh = h * self.0;
        (
            h.compress().to_bytes(),
            kh.compress().to_bytes(),
            finalize_batch(&[x], &[kh])[0],
        )
    }

    /// `k·B` for a blinded element from a querier; `None` if `bytes` is not a canonical
    /// encoding of a group element.
    pub fn evaluate_blinded(&self, bytes: &[u8]) -> Option<[u8; ELEMENT_BYTES]> {
        let encoded: [u8; ELEMENT_BYTES] = bytes.try_into().ok()?;
        let point = CompressedRistretto(encoded).decompress()?;
        Some((point * self.0).compress().to_bytes())
    }
}

fn nonzero_scalar<R: CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
    loop {
        let mut wide = [0u8; 64];
        rng.fill_bytes(&mut wide);
        let s = Scalar::from_bytes_mod_order_wide(&wide);
        if s != Scalar::ZERO {
            return s;
        }
    }
}

/// `H(x)`.
pub(crate) fn hash_to_group(x: &[u8]) -> RistrettoPoint {
    let mut h = Sha512::new();
    h.update(DST_HASH);
    h.update(x);
    let digest: [u8; 64] = h.finalize().into();
    RistrettoPoint::from_uniform_bytes(&digest)
}

/// Points per batched encoding (the inversion is shared by this many points).
const BATCH: usize = 256;

/// `F` for each `(x, k·H(x))`.
fn finalize_batch(xs: &[&[u8]], unblinded: &[RistrettoPoint]) -> Vec<OprfOutput> {
    let encoded = RistrettoPoint::double_and_compress_batch(unblinded);
    xs.iter()
        .zip(encoded)
        .map(|(x, e)| {
            let mut h = Sha256::new();
            h.update(DST_FINAL);
            h.update((x.len() as u64).to_le_bytes());
            h.update(x);
            h.update(e.as_bytes());
            h.finalize().into()
        })
        .collect()
}

/// The querier's secret blinding factor for one id.
pub(crate) struct Blind(Scalar);

/// Blinds every id with a fresh factor: the elements to send (32 bytes each, concatenated)
/// and the factors to keep.
pub(crate) fn blind_many<K: AsRef<[u8]> + Sync, R: CryptoRng + ?Sized>(
    ids: &[K],
    rng: &mut R,
) -> (Vec<u8>, Vec<Blind>) {
    let blinds: Vec<Blind> = ids.iter().map(|_| Blind(nonzero_scalar(rng))).collect();
    let elements: Vec<[u8; ELEMENT_BYTES]> = ids
        .par_iter()
        .zip(blinds.par_iter())
        .map(|(id, r)| (hash_to_group(id.as_ref()) * r.0).compress().to_bytes())
        .collect();
    (elements.concat(), blinds)
}

/// Unblinds the provider's evaluations: `F_k(x_i)` for each id, or the index of the first
/// element that is not a valid encoding.
pub(crate) fn unblind_many<K: AsRef<[u8]> + Sync>(
    ids: &[K],
    blinds: &[Blind],
    evaluated: &[u8],
) -> Result<Vec<OprfOutput>, usize> {
    let points: Vec<RistrettoPoint> = blinds
        .par_iter()
        .zip(evaluated.par_chunks(ELEMENT_BYTES))
        .enumerate()
        .map(|(i, (r, bytes))| {
            let encoded: [u8; ELEMENT_BYTES] = bytes.try_into().map_err(|_| i)?;
            let z = CompressedRistretto(encoded).decompress().ok_or(i)?;
            Ok(z * r.0.invert())
        })
        .collect::<Result<_, usize>>()?;
    if points.len() != ids.len() {
        return Err(points.len());
    }
    let xs: Vec<&[u8]> = ids.iter().map(|x| x.as_ref()).collect();
    Ok(xs
        .par_chunks(BATCH)
        .zip(points.par_chunks(BATCH))
        .flat_map_iter(|(x, p)| finalize_batch(x, p))
        .collect())
}

/// The bucket of an OPRF output under the table's bucket salt (bias below `buckets / 2^64`).
pub(crate) fn bucket_of(f: &OprfOutput, salt: &[u8; 32], buckets: u32) -> u32 {
    let mut h = Sha256::new();
    h.update(DST_BUCKET);
    h.update(salt);
    h.update(f);
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_le_bytes(first) % buckets.max(1) as u64) as u32
}

/// The tag that marks an id's slot.
pub(crate) fn tag_of(f: &OprfOutput) -> [u8; TAG_BYTES] {
    let mut h = Sha256::new();
    h.update(DST_TAG);
    h.update(f);
    let d = h.finalize();
    let mut tag = [0u8; TAG_BYTES];
    tag.copy_from_slice(&d[..TAG_BYTES]);
    tag
}

/// XORs the keystream of `f` into `data` (SHA-256 in counter mode).
pub(crate) fn apply_pad(f: &OprfOutput, data: &mut [u8]) {
    for (counter, block) in data.chunks_mut(32).enumerate() {
        let mut h = Sha256::new();
        h.update(DST_PAD);
        h.update(f);
        h.update((counter as u32).to_le_bytes());
        let pad = h.finalize();
        for (b, p) in block.iter_mut().zip(pad.iter()) {
            *b ^= p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn oblivious_evaluation_equals_direct_evaluation() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let key = OprfKey::random(&mut rng);
        let ids = [&b"alice"[..], b"", b"\x00\xffbytes", b"alice"];
        let (blinded, blinds) = blind_many(&ids, &mut rng);
        assert_eq!(blinded.len(), 4 * ELEMENT_BYTES);
        // Two blindings of the same id differ.
        assert_ne!(blinded[..32], blinded[96..]);
        let evaluated: Vec<u8> = blinded
            .chunks(32)
            .flat_map(|b| key.evaluate_blinded(b).unwrap())
            .collect();
        let out = unblind_many(&ids, &blinds, &evaluated).unwrap();
        for (id, f) in ids.iter().zip(&out) {
            assert_eq!(*f, key.evaluate(id));
        }
        assert_eq!(out[0], out[3]);
        assert_ne!(out[0], out[1]);
        let other = OprfKey::random(&mut rng);
        assert_ne!(other.evaluate(b"alice"), out[0]);
        // Batched evaluation (across batch boundaries) equals one at a time.
        let many: Vec<Vec<u8>> = (0..600).map(|i| format!("id-{i}").into_bytes()).collect();
        let batched = key.evaluate_many(&many);
        for (x, f) in many.iter().zip(&batched) {
            assert_eq!(*f, key.evaluate(x));
        }
        // F hashes the encoding of 2·k·H(x).
        let (_, kh, f) = key.evaluate_parts(b"alice");
        let p = CompressedRistretto(kh).decompress().unwrap();
        let mut h = Sha256::new();
        h.update(DST_FINAL);
        h.update(5u64.to_le_bytes());
        h.update(b"alice");
        h.update((p + p).compress().as_bytes());
        assert_eq!(f, <[u8; 32]>::from(h.finalize()));
    }

    #[test]
    fn bad_elements_are_reported_by_index() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let key = OprfKey::random(&mut rng);
        assert!(key.evaluate_blinded(&[0xff; 32]).is_none());
        assert!(key.evaluate_blinded(&[1; 31]).is_none());
        let ids = [b"a", b"b"];
        let (blinded, blinds) = blind_many(&ids, &mut rng);
        let mut evaluated: Vec<u8> = blinded
            .chunks(32)
            .flat_map(|b| key.evaluate_blinded(b).unwrap())
            .collect();
        evaluated[32..].fill(0xff);
        assert_eq!(unblind_many(&ids, &blinds, &evaluated).err(), Some(1));
    }

    #[test]
    fn key_bytes_round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let key = OprfKey::random(&mut rng);
        let again = OprfKey::from_bytes(key.to_bytes()).unwrap();
        assert_eq!(key.evaluate(b"x"), again.evaluate(b"x"));
        assert!(OprfKey::from_bytes([0; 32]).is_none());
        assert!(OprfKey::from_bytes([0xff; 32]).is_none());
        assert_eq!(format!("{key:?}"), "OprfKey(..)");
    }

    #[test]
    fn pad_is_an_involution_and_depends_on_the_output() {
        let f = [7u8; 32];
        let mut data: Vec<u8> = (0..=255).collect();
        apply_pad(&f, &mut data);
        assert_ne!(data, (0..=255).collect::<Vec<u8>>());
        apply_pad(&f, &mut data);
        assert_eq!(data, (0..=255).collect::<Vec<u8>>());
        assert_ne!(tag_of(&f), tag_of(&[8u8; 32]));
        assert!(bucket_of(&f, &[0; 32], 10) < 10);
    }
}
