//! Random integers and primes drawn from a cryptographically secure generator.
//!
//! GMP's own generators (Mersenne Twister) are not cryptographic, so every secret in Ferry
//! comes from a [`rand::CryptoRng`]: the OS-seeded thread generator in production, a seeded
//! ChaCha20 in tests.

use rand::{CryptoRng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rug::Integer;
use rug::integer::{IsPrime, Order};

/// Miller–Rabin repetitions after GMP's Baillie–PSW test. GMP runs BPSW first and then
/// `reps - 24` Miller–Rabin rounds with random bases; 40 gives a false-positive probability
/// far below 2^-100 for the prime sizes used here (FIPS 186-5, Table B.1, needs fewer).
pub const PRIMALITY_REPS: u32 = 40;

/// A uniformly random integer in `[0, 2^bits)`.
pub fn random_bits<R: CryptoRng + ?Sized>(rng: &mut R, bits: u32) -> Integer {
    let words = bits.div_ceil(64) as usize;
    let mut buf = vec![0u64; words];
    for w in buf.iter_mut() {
        *w = rng.next_u64();
    }
    let mut x = Integer::from_digits(&buf, Order::Lsf);
    x.keep_bits_mut(bits);
    x
}

/// A uniformly random integer in `[0, bound)` (rejection sampling; `bound > 0`).
pub fn random_below<R: CryptoRng + ?Sized>(rng: &mut R, bound: &Integer) -> Integer {
    assert!(*bound > 0, "random_below needs a positive bound");
    let bits = bound.significant_bits();
    loop {
        let x = random_bits(rng, bits);
        if x < *bound {
            return x;
        }
    }
}

/// A uniformly random unit of Z_n (gcd with n equal to 1).
pub fn random_unit<R: CryptoRng + ?Sized>(rng: &mut R, n: &Integer) -> Integer {
    loop {
        let x = random_below(rng, n);
        if x > 1 && Integer::from(x.gcd_ref(n)) == 1 {
            return x;
        }
    }
}

/// A random prime of exactly `bits` bits whose two top bits are set (so a product of two
/// such primes has exactly twice as many bits), congruent to `residue` modulo 4 when given.
pub fn random_prime<R: CryptoRng + ?Sized>(rng: &mut R, bits: u32, mod4: Option<u32>) -> Integer {
    assert!(bits >= 16, "primes below 16 bits are not supported");
    loop {
        let mut candidate = random_bits(rng, bits);
        candidate.set_bit(bits - 1, true);
        candidate.set_bit(bits - 2, true);
        candidate.set_bit(0, true);
        if let Some(r) = mod4 {
            candidate.set_bit(1, r & 2 != 0);
        }
        let step = Integer::from(if mod4.is_some() { 4 } else { 2 });
        if let Some(prime) = scan_for_prime(candidate, bits, &step) {
            return prime;
        }
    }
}

/// The first probable prime among `candidate`, `candidate + step`, … within 2048 steps that
/// still has `bits` bits, or `None` (the caller draws afresh). Why a short window: scanning
/// upward in steps that keep the residue class finds a prime after a few hundred steps, and
/// drawing afresh after a bounded window keeps the output close to uniform among primes of
/// the shape.
fn scan_for_prime(mut candidate: Integer, bits: u32, step: &Integer) -> Option<Integer> {
    for _ in 0..2048 {
        if candidate.significant_bits() != bits {
            return None;
        }
        if candidate.is_probably_prime(PRIMALITY_REPS) != IsPrime::No {
            return Some(candidate);
        }
        candidate += step;
    }
    None
}

/// A prime of exactly `bits` bits with its top two bits set and `≡ class (mod 2^class_bits)`
/// (`class` odd, below `2^class_bits`), drawn like [`random_prime`] among the numbers of
/// that shape: the bits above the class are random, then scanned upward within the class.
pub fn random_prime_in_class<R: CryptoRng + ?Sized>(
    rng: &mut R,
    bits: u32,
    class: &Integer,
    class_bits: u32,
) -> Integer {
    assert!(
        class.is_odd() && class.significant_bits() <= class_bits && class_bits + 18 <= bits,
        "the class must be odd and leave at least 16 random bits below the top two"
    );
    let step = Integer::from(Integer::u_pow_u(2, class_bits));
    loop {
        let mut candidate = random_bits(rng, bits - class_bits) << class_bits;
        candidate.set_bit(bits - 1, true);
        candidate.set_bit(bits - 2, true);
        candidate += class;
        if let Some(prime) = scan_for_prime(candidate, bits, &step) {
            return prime;
        }
    }
}

/// A ChaCha20 generator seeded from `rng`, for handing independent streams to worker threads.
pub fn fork_rng<R: CryptoRng + ?Sized>(rng: &mut R) -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    ChaCha20Rng::from_seed(seed)
}

/// Per-item generators for a parallel batch: item `i` gets stream `i` of one ChaCha20 key, so a
/// batch is reproducible from the caller's generator whatever the thread schedule.
pub fn stream_rng(seed: &[u8; 32], stream: u64) -> ChaCha20Rng {
    let mut r = ChaCha20Rng::from_seed(*seed);
    r.set_stream(stream);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_have_requested_shape() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for bits in [64u32, 256, 512] {
            let p = random_prime(&mut rng, bits, Some(3));
            assert_eq!(p.significant_bits(), bits);
            assert!(p.get_bit(bits - 2));
            assert_eq!(Integer::from(&p % 4u32), 3);
            assert_ne!(p.is_probably_prime(30), IsPrime::No);
        }
    }

    #[test]
    fn random_below_stays_below_and_covers_range() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let bound = Integer::from(10);
        let mut seen = [false; 10];
        for _ in 0..500 {
            let x = random_below(&mut rng, &bound);
            assert!((0..10).contains(&x));
            seen[x.to_usize().unwrap()] = true;
        }
        assert!(
            seen.iter().all(|s| *s),
            "all values 0..10 should appear in 500 draws"
        );
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        use rand::Rng;
        let seed = [9u8; 32];
        let a = stream_rng(&seed, 3).next_u64();
        let b = stream_rng(&seed, 3).next_u64();
        let c = stream_rng(&seed, 4).next_u64();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
