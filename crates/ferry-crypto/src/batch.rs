//! Batch operations over slices that use every core.
//!
//! Randomness for a batch comes from one 32-byte seed drawn from the caller's generator; item
//! `i` uses ChaCha20 stream `i` of that seed, so results do not depend on how rayon schedules
//! the work (tests stay reproducible) and no generator is shared between threads.

use crate::he::{HeError, HePublicKey, HeSecretKey};
use crate::random::stream_rng;
use rand::CryptoRng;
use rayon::prelude::*;
use rug::Integer;

fn batch_seed<R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; 32] {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    seed
}

pub(crate) fn encrypt_many<K: HePublicKey + ?Sized, R: CryptoRng + ?Sized>(
    pk: &K,
    ms: &[Integer],
    rng: &mut R,
) -> Result<Vec<K::Ciphertext>, HeError> {
    let seed = batch_seed(rng);
    ms.par_iter()
        .enumerate()
        .map(|(i, m)| pk.encrypt(m, &mut stream_rng(&seed, i as u64)))
        .collect()
}

pub(crate) fn encrypt_many_owner<K: HeSecretKey + ?Sized, R: CryptoRng + ?Sized>(
    sk: &K,
    ms: &[Integer],
    rng: &mut R,
) -> Result<Vec<<K::Public as HePublicKey>::Ciphertext>, HeError> {
    let seed = batch_seed(rng);
    ms.par_iter()
        .enumerate()
        .map(|(i, m)| sk.encrypt(m, &mut stream_rng(&seed, i as u64)))
        .collect()
}

/// Element-wise sums `a[i] + b[i]` on all cores.
pub fn add_many<K: HePublicKey>(
    pk: &K,
    a: &[K::Ciphertext],
    b: &[K::Ciphertext],
) -> Vec<K::Ciphertext> {
    assert_eq!(a.len(), b.len(), "add_many needs slices of equal length");
    a.par_iter()
        .zip(b.par_iter())
        .map(|(x, y)| pk.add(x, y))
        .collect()
}

/// Element-wise scalar products `a[i] * k[i]` on all cores.
pub fn mul_plain_many<K: HePublicKey>(
    pk: &K,
    a: &[K::Ciphertext],
    k: &[Integer],
) -> Vec<K::Ciphertext> {
    assert_eq!(
        a.len(),
        k.len(),
        "mul_plain_many needs slices of equal length"
    );
    a.par_iter()
        .zip(k.par_iter())
        .map(|(x, s)| pk.mul_plain(x, s))
        .collect()
}

/// Sum of all ciphertexts (a parallel tree reduction).
pub fn sum<K: HePublicKey>(pk: &K, cts: &[K::Ciphertext]) -> K::Ciphertext {
    cts.par_iter()
        .fold(
            || pk.zero(),
            |mut acc, c| {
                pk.add_assign(&mut acc, c);
                acc
            },
        )
        .reduce(|| pk.zero(), |a, b| pk.add(&a, &b))
}

/// Re-randomises every ciphertext on all cores.
pub fn rerandomize_many<K: HePublicKey, R: CryptoRng + ?Sized>(
    pk: &K,
    cts: &[K::Ciphertext],
    rng: &mut R,
) -> Vec<K::Ciphertext> {
    let seed = batch_seed(rng);
    cts.par_iter()
        .enumerate()
        .map(|(i, c)| pk.rerandomize(c, &mut stream_rng(&seed, i as u64)))
        .collect()
}
