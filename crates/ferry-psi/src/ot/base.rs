//! Base OTs: the "Simplest OT" of Chou and Orlandi (LATINCRYPT 2015, ePrint 2015/267) over
//! Ristretto255, batched, semi-honest.
//!
//! ```text
//! sender                                   receiver (choice bits c_i)
//! a ← Z_ℓ, A = a·G          ── A ──▶
//!                                          b_i ← Z_ℓ, B_i = b_i·G + c_i·A
//!                           ◀── B_i ──     k_i = H(i, A, B_i, b_i·A)
//! k_i^0 = H(i, A, B_i, a·B_i)
//! k_i^1 = H(i, A, B_i, a·(B_i − A))
//! ```
//!
//! `k_i^{c_i} = k_i` because `a·(B_i − c_i·A) = a·b_i·G = b_i·A`; the other key needs
//! `a·b_i·G ± a²·G`, i.e. CDH in the group (the random-oracle argument of the paper). `B_i` is
//! uniform whatever `c_i` is, so the sender learns nothing about the choices. One `A` serves
//! the whole batch; the index and `A`, `B_i` in the hash keep the keys of different OTs and
//! runs apart. `H` is SHA-256 truncated to 128 bits (the keys seed AES PRGs).
//!
//! The known caveat of this protocol (a malicious receiver can choose `B_i` so that it learns
//! both keys' relation; it is not UC-secure against active adversaries) is outside Ferry's
//! semi-honest model.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

/// Bytes of a compressed Ristretto255 point.
pub(crate) const POINT_BYTES: usize = 32;

const KEY_DST: &[u8] = b"ferry-psi/base-ot/simplest-ot/v1";

/// A 128-bit key delivered by an OT.
pub(crate) type OtKey = [u8; 16];

fn random_scalar(rng: &mut impl rand::Rng) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

fn decode_point(bytes: &[u8]) -> Option<RistrettoPoint> {
    CompressedRistretto::from_slice(bytes).ok()?.decompress()
}

fn derive(i: usize, a: &[u8], b: &[u8], shared: &RistrettoPoint) -> OtKey {
    let mut h = Sha256::new();
    h.update(KEY_DST);
    h.update((i as u64).to_le_bytes());
    h.update(a);
    h.update(b);
    h.update(shared.compress().as_bytes());
    let digest = h.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The sender's state between its message and the receiver's answer.
pub(crate) struct OtSender {
    a: Scalar,
    big_a: RistrettoPoint,
    a_bytes: [u8; POINT_BYTES],
}

impl OtSender {
    /// Draws `a` and returns the state and `A` to send.
    pub fn start(rng: &mut impl rand::Rng) -> (Self, [u8; POINT_BYTES]) {
        let a = random_scalar(rng);
        let big_a = RistrettoPoint::mul_base(&a);
        let a_bytes = big_a.compress().to_bytes();
        (OtSender { a, big_a, a_bytes }, a_bytes)
    }

    /// Both keys of every OT from the receiver's points (`count` of them, back to back).
    pub fn finish(&self, points: &[u8], count: usize) -> Result<Vec<(OtKey, OtKey)>, String> {
        if points.len() != count * POINT_BYTES {
            return Err(format!(
                "base OT answer has {} bytes, expected {count} points of {POINT_BYTES} bytes",
                points.len()
            ));
        }
        points
            .par_chunks_exact(POINT_BYTES)
            .enumerate()
            .map(|(i, bytes)| {
                let b = decode_point(bytes).ok_or_else(|| {
                    format!("base OT point {i} is not a valid ristretto255 point")
                })?;
                let ab = self.a * b;
                let k0 = derive(i, &self.a_bytes, bytes, &ab);
                let k1 = derive(i, &self.a_bytes, bytes, &(ab - self.a * self.big_a));
                Ok((k0, k1))
            })
            .collect()
    }
}

/// The receiver's side: from the sender's `A` and the choice bits, the points to send back and
/// the chosen keys.
pub(crate) fn receive(
    a_bytes: &[u8],
    choices: &[bool],
    rng: &mut impl rand::Rng,
) -> Result<(Vec<u8>, Vec<OtKey>), String> {
    let big_a = decode_point(a_bytes)
        .ok_or("the base OT sender's point is not a valid ristretto255 point")?;
    if big_a == RistrettoPoint::default() {
        return Err("the base OT sender's point is the identity".into());
    }
    let scalars: Vec<Scalar> = choices.iter().map(|_| random_scalar(rng)).collect();
    let out: Vec<([u8; POINT_BYTES], OtKey)> = scalars
        .par_iter()
        .zip(choices.par_iter())
        .enumerate()
        .map(|(i, (b, &c))| {
            let mut point = RistrettoPoint::mul_base(b);
            if c {
                point += big_a;
            }
            let bytes = point.compress().to_bytes();
            let key = derive(i, a_bytes, &bytes, &(b * big_a));
            (bytes, key)
        })
        .collect();
    let mut points = Vec::with_capacity(out.len() * POINT_BYTES);
    let mut keys = Vec::with_capacity(out.len());
    for (p, k) in out {
        points.extend_from_slice(&p);
        keys.push(k);
    }
    Ok((points, keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn the_receiver_gets_exactly_the_chosen_keys() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let choices: Vec<bool> = (0..64).map(|i| i % 3 == 0).collect();
        let (sender, a) = OtSender::start(&mut rng);
        let (points, keys) = receive(&a, &choices, &mut rng).unwrap();
        let pairs = sender.finish(&points, choices.len()).unwrap();
        for ((pair, key), &c) in pairs.iter().zip(&keys).zip(&choices) {
            let (chosen, other) = if c {
                (pair.1, pair.0)
            } else {
                (pair.0, pair.1)
            };
            assert_eq!(*key, chosen);
            assert_ne!(*key, other);
        }
        // Keys of different OTs differ.
        assert_ne!(pairs[0].0, pairs[1].0);
    }

    #[test]
    fn malformed_points_are_errors() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (sender, a) = OtSender::start(&mut rng);
        let (points, _) = receive(&a, &[true, false], &mut rng).unwrap();
        let e = sender.finish(&points[..40], 2).unwrap_err();
        assert!(e.contains("40 bytes, expected 2 points"), "{e}");
        let mut bad = points.clone();
        bad[32..].fill(0xff);
        let e = sender.finish(&bad, 2).unwrap_err();
        assert!(e.contains("point 1 is not a valid"), "{e}");
        assert!(receive(&[0xff; 32], &[true], &mut rng).is_err());
        assert!(
            receive(&[0u8; 32], &[true], &mut rng)
                .unwrap_err()
                .contains("identity")
        );
        assert!(receive(&a[..31], &[true], &mut rng).is_err());
    }
}
