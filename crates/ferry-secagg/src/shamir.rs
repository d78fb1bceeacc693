//! Shamir secret sharing over the Ristretto255 scalar field (prime order ℓ ≈ 2^252).
//!
//! The secrets shared are themselves scalars (a mask key and a self-mask seed), so the field
//! arithmetic of curve25519-dalek serves as is. Share `i` is the polynomial evaluated at
//! `x = i + 1`; any `threshold` shares determine the secret, fewer reveal nothing about it.

use curve25519_dalek::scalar::Scalar;
use rand::CryptoRng;

/// Splits `secret` into `n` shares, any `threshold` of which reconstruct it.
/// Share `i` (0-based) is the evaluation at `x = i + 1`.
pub(crate) fn share<R: CryptoRng + ?Sized>(
    secret: &Scalar,
    threshold: usize,
    n: usize,
    rng: &mut R,
) -> Vec<Scalar> {
    debug_assert!(threshold >= 1 && threshold <= n);
    let mut coefficients = Vec::with_capacity(threshold);
    coefficients.push(*secret);
    for _ in 1..threshold {
        coefficients.push(Scalar::random(rng));
    }
    (1..=n as u64)
        .map(|x| {
            let x = Scalar::from(x);
            // Horner's rule from the highest coefficient down.
            coefficients
                .iter()
                .rev()
                .fold(Scalar::ZERO, |acc, c| acc * x + c)
        })
        .collect()
}

/// The secret from `(x, share)` points with distinct non-zero `x` (Lagrange interpolation at 0).
/// Returns `None` for repeated or zero abscissae.
pub(crate) fn reconstruct(points: &[(u64, Scalar)]) -> Option<Scalar> {
    if points.is_empty() {
        return None;
    }
    for (i, (xi, _)) in points.iter().enumerate() {
        if *xi == 0 || points[..i].iter().any(|(xj, _)| xj == xi) {
            return None;
        }
    }
    let mut secret = Scalar::ZERO;
    for (i, (xi, yi)) in points.iter().enumerate() {
        let xi_s = Scalar::from(*xi);
        let mut numerator = Scalar::ONE;
        let mut denominator = Scalar::ONE;
        for (j, (xj, _)) in points.iter().enumerate() {
            if i != j {
                let xj_s = Scalar::from(*xj);
                numerator *= xj_s;
                denominator *= xj_s - xi_s;
            }
        }
        secret += yi * numerator * denominator.invert();
    }
    Some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn any_threshold_subset_reconstructs() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let secret = Scalar::random(&mut rng);
        let shares = share(&secret, 3, 5, &mut rng);
        for subset in [[0usize, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let points: Vec<(u64, Scalar)> =
                subset.iter().map(|&i| (i as u64 + 1, shares[i])).collect();
            assert_eq!(reconstruct(&points), Some(secret));
        }
        // More points than needed still interpolate the same polynomial.
        let all: Vec<(u64, Scalar)> = (0..5).map(|i| (i as u64 + 1, shares[i])).collect();
        assert_eq!(reconstruct(&all), Some(secret));
    }

    #[test]
    fn fewer_than_threshold_shares_give_a_different_value() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let secret = Scalar::random(&mut rng);
        let shares = share(&secret, 3, 4, &mut rng);
        let two = [(1, shares[0]), (2, shares[1])];
        assert_ne!(reconstruct(&two), Some(secret));
    }

    #[test]
    fn threshold_one_shares_are_the_secret_and_bad_points_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let secret = Scalar::random(&mut rng);
        assert!(share(&secret, 1, 3, &mut rng).iter().all(|s| *s == secret));
        assert_eq!(reconstruct(&[(1, secret), (1, secret)]), None);
        assert_eq!(reconstruct(&[(0, secret)]), None);
        assert_eq!(reconstruct(&[]), None);
    }
}
