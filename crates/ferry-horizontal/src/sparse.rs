//! Update sparsification: top-k with error feedback, random-k as structured updates.

use crate::error::HflError;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which coordinates of its update a client sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sparsification {
    /// Every coordinate (dense `f64` vector).
    #[default]
    None,
    /// The `⌈fraction·P⌉` coordinates of largest magnitude, as (index, value) pairs. Each client
    /// picks its own coordinates, which reveals them, so this cannot be combined with secure
    /// aggregation.
    TopK {
        /// Share of the coordinates sent, in (0, 1].
        #[schemars(range(max = 1.0), extend("exclusiveMinimum" = 0.0))]
        fraction: f64,
    },
    /// `⌈fraction·P⌉` coordinates drawn at random per round from a seed every party knows, the
    /// same for all clients, so the values can be summed under secure aggregation. Clients
    /// train only those coordinates in that round (a structured update, Konečný et al. 2016:
    /// the others stay at the global values), so the update is exactly zero elsewhere and
    /// nothing is held back for later rounds. Rounds cycle through the coordinates without
    /// replacement (every coordinate at least once per `⌈1/fraction⌉` rounds).
    RandomK {
        /// Share of the coordinates trained and sent, in (0, 1].
        #[schemars(range(max = 1.0), extend("exclusiveMinimum" = 0.0))]
        fraction: f64,
    },
}

impl Sparsification {
    pub(crate) fn validate(&self) -> Result<(), HflError> {
        match self {
            Sparsification::None => Ok(()),
            Sparsification::TopK { fraction } | Sparsification::RandomK { fraction } => {
                if *fraction > 0.0 && *fraction <= 1.0 {
                    Ok(())
                } else {
                    Err(HflError::Config(format!(
                        "sparsification fraction {fraction} must be in (0, 1]"
                    )))
                }
            }
        }
    }

    /// Coordinates kept out of `len`.
    pub fn kept(&self, len: usize) -> usize {
        match self {
            Sparsification::None => len,
            Sparsification::TopK { fraction } | Sparsification::RandomK { fraction } => {
                ((fraction * len as f64).ceil() as usize).clamp(1, len)
            }
        }
    }
}

/// The shared coordinate set of random-k in round `round` (1-based), sorted.
///
/// Coordinates are drawn without replacement across rounds: the rounds walk through a seeded
/// permutation of `0..len`, `k` positions per round (the last block of a cycle wraps around to
/// the permutation's start), and a fresh permutation begins every `⌈len/k⌉` rounds. Every
/// coordinate is therefore trained at least once per cycle; independent draws per round would
/// leave each coordinate untouched for `R` rounds with probability `(1 − k/len)^R` (about a
/// third of the model after 10 rounds at `k/len = 0.1`).
pub(crate) fn random_k_indices(seed: u64, round: usize, len: usize, k: usize) -> Vec<u32> {
    let k = k.clamp(1, len.max(1));
    let rounds_per_cycle = len.div_ceil(k).max(1);
    let r = round.saturating_sub(1);
    let (cycle, slot) = (r / rounds_per_cycle, r % rounds_per_cycle);
    let mut permutation: Vec<u32> = (0..len as u32).collect();
    permutation.shuffle(&mut ChaCha8Rng::seed_from_u64(crate::fedavg::mix(
        seed,
        "random-k",
        cycle as u64,
    )));
    // k consecutive positions modulo len are distinct because k ≤ len.
    let mut idx: Vec<u32> = (0..k).map(|i| permutation[(slot * k + i) % len]).collect();
    idx.sort_unstable();
    idx
}

/// The `k` indices of largest magnitude (sorted; ties broken by lower index).
pub(crate) fn top_k_indices(v: &[f64], k: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..v.len() as u32).collect();
    if k < v.len() {
        order.select_nth_unstable_by(k, |&a, &b| {
            v[b as usize]
                .abs()
                .total_cmp(&v[a as usize].abs())
                .then(a.cmp(&b))
        });
        order.truncate(k);
    }
    order.sort_unstable();
    order
}

/// Error feedback (Seide et al. 2014; Stich et al. 2018) for top-k: what a client did not send
/// is kept and added to its next update, so every coordinate's contribution is delayed, not
/// lost. Top-k sends the largest accumulated values first, which keeps the residual bounded.
///
/// Random-k does not use it. There a coordinate waits `len/k` rounds on average, and each
/// round's update is a whole local-training displacement towards the client's optimum measured
/// from a global model that has not moved on that coordinate, so the residual would hold the
/// same displacement many times over and overshoot the optimum by that factor when the
/// coordinate's turn comes (the divergence of LR on default_credit_homo).
#[derive(Clone, Debug, Default)]
pub(crate) struct ErrorFeedback {
    residual: Vec<f64>,
}

impl ErrorFeedback {
    /// What is held back so far (empty before the first top-k round), for checkpoints.
    pub(crate) fn residual(&self) -> &[f64] {
        &self.residual
    }

    /// Feedback holding `residual` (from a checkpoint).
    pub(crate) fn with_residual(residual: Vec<f64>) -> Self {
        ErrorFeedback { residual }
    }

    /// Adds `update` to the residual and returns the sum `u` the coordinates are chosen from.
    pub(crate) fn accumulate(&mut self, update: &[f64]) -> &[f64] {
        if self.residual.len() != update.len() {
            self.residual = vec![0.0; update.len()];
        }
        for (r, u) in self.residual.iter_mut().zip(update) {
            *r += u;
        }
        &self.residual
    }

    /// Takes the values at `indices` out of the residual (they are sent); the rest stays.
    pub(crate) fn take(&mut self, indices: &[u32]) -> Vec<f64> {
        indices
            .iter()
            .map(|&i| std::mem::take(&mut self.residual[i as usize]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_largest_magnitudes() {
        let v = [0.1, -5.0, 0.3, 2.0, -0.2, 2.0];
        assert_eq!(top_k_indices(&v, 2), vec![1, 3]);
        assert_eq!(top_k_indices(&v, 3), vec![1, 3, 5]);
        assert_eq!(top_k_indices(&v, 6).len(), 6);
    }

    #[test]
    fn error_feedback_delays_instead_of_dropping() {
        let mut ef = ErrorFeedback::default();
        let u = ef.accumulate(&[1.0, 0.5, -0.25]).to_vec();
        let first = ef.take(&top_k_indices(&u, 1));
        assert_eq!(first, vec![1.0]);
        // The unsent 0.5 and −0.25 come back with the next update.
        ef.accumulate(&[0.0, 0.5, 0.0]);
        let second = ef.take(&[1, 2]);
        assert_eq!(second, vec![1.0, -0.25]);
        assert_eq!(ef.residual, vec![0.0, 0.0, 0.0]);
    }

    #[test]
    fn random_k_is_shared_per_round_and_changes_between_rounds() {
        let a = random_k_indices(7, 3, 100, 10);
        assert_eq!(a, random_k_indices(7, 3, 100, 10));
        assert_ne!(a, random_k_indices(7, 4, 100, 10));
        assert_ne!(a, random_k_indices(8, 3, 100, 10));
        assert_eq!(a.len(), 10);
        assert_eq!(Sparsification::TopK { fraction: 0.3 }.kept(10), 3);
        assert_eq!(Sparsification::RandomK { fraction: 0.01 }.kept(10), 1);
        assert!(Sparsification::TopK { fraction: 0.0 }.validate().is_err());
    }

    /// Every coordinate comes up once per cycle of ⌈len/k⌉ rounds, including when k does not
    /// divide len (the cycle's last block wraps around), and each round's k are distinct.
    #[test]
    fn random_k_visits_every_coordinate_once_per_cycle() {
        for (len, k) in [(24usize, 3usize), (24, 5), (7, 7), (10, 1), (31, 4)] {
            let per_cycle = len.div_ceil(k);
            for cycle in 0..3 {
                let mut seen = vec![0usize; len];
                for slot in 1..=per_cycle {
                    let idx = random_k_indices(11, cycle * per_cycle + slot, len, k);
                    assert_eq!(idx.len(), k);
                    assert!(idx.windows(2).all(|w| w[0] < w[1]), "{idx:?}");
                    for i in idx {
                        seen[i as usize] += 1;
                    }
                }
                assert!(seen.iter().all(|&n| n >= 1), "len {len} k {k}: {seen:?}");
                assert_eq!(seen.iter().sum::<usize>(), per_cycle * k);
            }
            // A new cycle is a new permutation, not a replay of the first.
            if len > k {
                let first: Vec<_> = (1..=per_cycle)
                    .map(|r| random_k_indices(11, r, len, k))
                    .collect();
                let second: Vec<_> = (per_cycle + 1..=2 * per_cycle)
                    .map(|r| random_k_indices(11, r, len, k))
                    .collect();
                assert_ne!(first, second);
            }
        }
    }
}
