//! Per-tree row and feature sampling, seeded from the job's seed. The federated guest and the
//! centralised trainer draw from the same generator in the same order (rows, then features,
//! once per tree), so they pick the same rows and features.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

pub struct Sampler {
    rng: ChaCha20Rng,
}

impl Sampler {
    pub fn new(seed: u64) -> Self {
        Sampler {
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    /// Rows of one tree, ascending: each row is kept with probability `subsample`.
    pub fn rows(&mut self, n: usize, subsample: f64) -> Vec<u32> {
        if subsample >= 1.0 {
            return (0..n as u32).collect();
        }
        (0..n as u32)
            .filter(|_| self.rng.random::<f64>() < subsample)
            .collect()
    }

    /// Features of one tree over the joined feature list: `max(1, ⌊colsample·total⌋)` of them,
    /// chosen uniformly without replacement.
    pub fn features(&mut self, total: usize, colsample: f64) -> Vec<bool> {
        let mut keep = vec![true; total];
        if colsample >= 1.0 || total == 0 {
            return keep;
        }
        let k = ((colsample * total as f64).floor() as usize).clamp(1, total);
        let mut order: Vec<usize> = (0..total).collect();
        // Partial Fisher-Yates: the first k positions are a uniform sample.
        for i in 0..k {
            let j = self.rng.random_range(i..total);
            order.swap(i, j);
        }
        keep.iter_mut().for_each(|x| *x = false);
        for &f in &order[..k] {
            keep[f] = true;
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_reproducible_and_has_the_requested_size() {
        let mut a = Sampler::new(7);
        let mut b = Sampler::new(7);
        let ra = a.rows(10_000, 0.3);
        assert_eq!(ra, b.rows(10_000, 0.3));
        assert!((2_700..3_300).contains(&ra.len()), "{}", ra.len());
        assert!(ra.windows(2).all(|w| w[0] < w[1]));
        let fa = a.features(20, 0.5);
        assert_eq!(fa, b.features(20, 0.5));
        assert_eq!(fa.iter().filter(|&&x| x).count(), 10);
        assert_eq!(a.features(3, 0.1).iter().filter(|&&x| x).count(), 1);
        assert_eq!(a.rows(5, 1.0), vec![0, 1, 2, 3, 4]);
    }
}
