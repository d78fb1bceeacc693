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

pub(crate) fn encrypt_many<K: HePublicKey, R: CryptoRng + ?Sized>(
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

/// Parses the elements of a ciphertext batch into residues of `ring`, checking that each is a
/// unit of the ciphertext space: `0 < c < ring.modulus()` and `gcd(c, n) = 1`.
///
/// The gcd is checked once for the whole batch, on the product of all elements modulo the
/// ring's modulus (`n` or `n²`): a prime factor of `n` divides the product exactly when it
/// divides some element. Only when that check fails is the first offending element located.
pub(crate) fn decode_units(
    batch: &crate::wire::CiphertextBatch,
    ring: &crate::arith::MontModulus,
    n: &Integer,
) -> Result<Vec<crate::arith::Residue>, crate::wire::WireError> {
    use crate::wire::WireError;
    let width = batch.element_bytes as usize;
    let elements: Vec<&[u8]> = batch.data.chunks_exact(width.max(1)).collect();
    let residues = elements
        .par_iter()
        .enumerate()
        .map(|(index, bytes)| {
            let v = Integer::from_digits(bytes, rug::integer::Order::Msf);
            if v == 0 || v >= *ring.modulus() {
                return Err(WireError::InvalidCiphertext { index });
            }
            Ok(ring.to_residue(&v))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let product = residues
        .par_iter()
        .fold(
            || ring.one(),
            |mut acc, r| {
                ring.mul_assign(&mut acc, r);
                acc
            },
        )
        .reduce(|| ring.one(), |a, b| ring.mul(&a, &b));
    if Integer::from(ring.to_integer(&product).gcd_ref(n)) != 1 {
        let index = residues
            .iter()
            .position(|r| Integer::from(ring.to_integer(r).gcd_ref(n)) != 1)
            .unwrap_or(0);
        return Err(WireError::InvalidCiphertext { index });
    }
    Ok(residues)
}
