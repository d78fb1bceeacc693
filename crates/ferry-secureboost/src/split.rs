//! The arithmetic both trainers share: quantisation of gradients and hessians, histogram sums,
//! split gains and leaf values.
//!
//! Losslessness rests on this module: the federated guest decrypts *integer* histogram sums and
//! the centralised trainer adds the same integers in the clear, so both see bit-identical sums
//! and — running the same functions below on them — make identical decisions.

use crate::params::SecureBoostParams;
use serde::{Deserialize, Serialize};
use std::ops::{Add, AddAssign, Sub};

/// Quantised gradient and hessian sums of a set of rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GradPair {
    pub g: i64,
    pub h: i64,
}

impl Add for GradPair {
    type Output = GradPair;
    fn add(self, o: GradPair) -> GradPair {
        GradPair {
            g: self.g + o.g,
            h: self.h + o.h,
        }
    }
}

impl AddAssign for GradPair {
    fn add_assign(&mut self, o: GradPair) {
        self.g += o.g;
        self.h += o.h;
    }
}

impl Sub for GradPair {
    type Output = GradPair;
    fn sub(self, o: GradPair) -> GradPair {
        GradPair {
            g: self.g - o.g,
            h: self.h - o.h,
        }
    }
}

impl GradPair {
    pub const ZERO: GradPair = GradPair { g: 0, h: 0 };

    pub fn is_zero(&self) -> bool {
        self.g == 0 && self.h == 0
    }
}

/// Power-of-two scales that map one tree's gradients and hessians to integers of at most
/// `precision_bits` bits of magnitude: `q = round(x · 2^shift)`, `|q| ≤ 2^precision_bits`.
///
/// The scale is relative to the largest magnitude among the tree's rows, so precision does not
/// depend on the label range (regression targets in the millions quantise as well as logistic
/// gradients in [-1, 1]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GradScale {
    pub g_shift: i32,
    pub h_shift: i32,
    pub precision_bits: u32,
}

fn shift_for(max_abs: f64, precision_bits: u32) -> i32 {
    let p = precision_bits as i32;
    if !(max_abs.is_finite() && max_abs > 0.0) {
        return p;
    }
    let limit = (p as f64).exp2();
    let mut s = p - max_abs.log2().ceil() as i32;
    // log2 can be off by one ulp near powers of two; settle on the largest s that fits.
    while max_abs * (s as f64).exp2() > limit {
        s -= 1;
    }
    while max_abs * ((s + 1) as f64).exp2() <= limit {
        s += 1;
    }
    s
}

impl GradScale {
    /// The scale for the given rows of `g` and `h`.
    pub fn fit(g: &[f64], h: &[f64], rows: &[u32], precision_bits: u32) -> GradScale {
        let max_g = rows
            .iter()
            .map(|&r| g[r as usize].abs())
            .fold(0.0, f64::max);
        let max_h = rows
            .iter()
            .map(|&r| h[r as usize].abs())
            .fold(0.0, f64::max);
        GradScale {
            g_shift: shift_for(max_g, precision_bits),
            h_shift: shift_for(max_h, precision_bits),
            precision_bits,
        }
    }

    pub fn quantize(&self, g: f64, h: f64) -> GradPair {
        GradPair {
            g: (g * (self.g_shift as f64).exp2()).round() as i64,
            h: (h * (self.h_shift as f64).exp2()).round() as i64,
        }
    }

    /// Bits a quantised value may need (magnitude up to `2^precision_bits` inclusive).
    pub fn value_bits(&self) -> u32 {
        self.precision_bits + 1
    }

    pub fn g(&self, q: i64) -> f64 {
        q as f64 * (-self.g_shift as f64).exp2()
    }

    pub fn h(&self, q: i64) -> f64 {
        q as f64 * (-self.h_shift as f64).exp2()
    }
}

/// Largest magnitude a sum of `n` quantised values can reach.
pub fn max_sum(n: usize, precision_bits: u32) -> i128 {
    (n as i128) << precision_bits
}

/// The split-related parameters, in real units.
#[derive(Clone, Copy, Debug)]
pub struct SplitParams {
    pub lambda: f64,
    pub gamma: f64,
    pub min_child_weight: f64,
    pub max_depth: usize,
    pub learning_rate: f64,
}

impl From<&SecureBoostParams> for SplitParams {
    fn from(p: &SecureBoostParams) -> Self {
        SplitParams {
            lambda: p.lambda,
            gamma: p.gamma,
            min_child_weight: p.min_child_weight,
            max_depth: p.max_depth,
            learning_rate: p.learning_rate,
        }
    }
}

/// Smallest gain worth a split, as XGBoost's `kRtEps`.
const MIN_GAIN: f64 = 1e-6;

/// The best split of one feature of one node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FeatureSplit {
    pub gain: f64,
    /// Rows with a bin `≤ bin` go left.
    pub bin: usize,
    pub missing_left: bool,
    pub left: GradPair,
    pub right: GradPair,
}

impl SplitParams {
    fn score(&self, s: &GradScale, sum: GradPair) -> Option<f64> {
        let g = s.g(sum.g);
        let denom = s.h(sum.h) + self.lambda;
        (denom > 0.0).then(|| g * g / denom)
    }

    /// Whether a node may be split at all (depth, rows and hessian allow two children).
    pub fn may_split(
        &self,
        depth: usize,
        sampled_rows: usize,
        s: &GradScale,
        total: GradPair,
    ) -> bool {
        depth < self.max_depth && sampled_rows >= 2 && s.h(total.h) >= 2.0 * self.min_child_weight
    }

    /// Best split of one feature's histogram (`hist[..n]` value bins, `hist[n]` the missing bin).
    ///
    /// Candidates are scanned in bin order, "missing right" before "missing left", and a later
    /// candidate replaces the best only with a strictly larger gain, so ties resolve the same
    /// way everywhere.
    pub fn best_split_of_feature(
        &self,
        s: &GradScale,
        hist: &[GradPair],
        total: GradPair,
    ) -> Option<FeatureSplit> {
        let (&missing, values) = hist.split_last()?;
        let parent = self.score(s, total)?;
        let n = values.len();
        let mut best: Option<FeatureSplit> = None;
        let mut consider = |left: GradPair, bin: usize, missing_left: bool| {
            let right = total - left;
            if s.h(left.h) < self.min_child_weight || s.h(right.h) < self.min_child_weight {
                return;
            }
            let (Some(sl), Some(sr)) = (self.score(s, left), self.score(s, right)) else {
                return;
            };
            let gain = sl + sr - parent;
            if best.is_none_or(|b| gain > b.gain) {
                best = Some(FeatureSplit {
                    gain,
                    bin,
                    missing_left,
                    left,
                    right,
                });
            }
        };
        let mut cumulative = GradPair::ZERO;
        for (bin, &pair) in values.iter().enumerate() {
            cumulative += pair;
            let last = bin + 1 == n;
            // With every value bin on the left, only "missing right" separates anything.
            if !last || !missing.is_zero() {
                consider(cumulative, bin, false);
            }
            if !last && !missing.is_zero() {
                consider(cumulative + missing, bin, true);
            }
        }
        best
    }

    /// Whether the best split of a node is worth making.
    pub fn accept(&self, gain: f64) -> bool {
        gain > MIN_GAIN && gain > self.gamma
    }

    /// Leaf value (shrunk by the learning rate) for a node's sums.
    pub fn leaf_value(&self, s: &GradScale, total: GradPair) -> f64 {
        let denom = s.h(total.h) + self.lambda;
        if denom > 0.0 {
            -s.g(total.g) / denom * self.learning_rate
        } else {
            0.0
        }
    }
}

/// Histogram of one feature over `rows`: `n_bins_with_missing` sums, indexed by bin.
pub fn feature_histogram(
    bins: &[u16],
    quantized: &[GradPair],
    rows: &[u32],
    n_bins_with_missing: usize,
) -> Vec<GradPair> {
    let mut hist = vec![GradPair::ZERO; n_bins_with_missing];
    for &r in rows {
        hist[bins[r as usize] as usize] += quantized[r as usize];
    }
    hist
}

/// Sum of the quantised pairs of `rows`.
pub fn total_of(quantized: &[GradPair], rows: &[u32]) -> GradPair {
    rows.iter()
        .fold(GradPair::ZERO, |acc, &r| acc + quantized[r as usize])
}

/// Whether a row with this bin goes left under the rule `(bin, missing_left)`.
pub fn goes_left(row_bin: usize, missing_bin: usize, split_bin: usize, missing_left: bool) -> bool {
    if row_bin == missing_bin {
        missing_left
    } else {
        row_bin <= split_bin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SplitParams {
        SplitParams {
            lambda: 1.0,
            gamma: 0.0,
            min_child_weight: 0.0,
            max_depth: 3,
            learning_rate: 1.0,
        }
    }

    #[test]
    fn scale_uses_full_precision_and_never_exceeds_it() {
        for max in [1.0, 0.25, 0.3, 1e-9, 123456.7, 2f64.powi(20)] {
            let s = shift_for(max, 32);
            let q = (max * (s as f64).exp2()).round();
            assert!(q <= 2f64.powi(32), "max {max}: q {q}");
            assert!(q > 2f64.powi(31), "max {max}: q {q} wastes a bit");
        }
        assert_eq!(shift_for(0.0, 32), 32);
    }

    #[test]
    fn quantisation_round_trips_within_half_a_step() {
        let g = [0.7, -0.3, 0.01];
        let h = [0.21, 0.2, 0.0099];
        let s = GradScale::fit(&g, &h, &[0, 1, 2], 24);
        for i in 0..3 {
            let q = s.quantize(g[i], h[i]);
            assert!((s.g(q.g) - g[i]).abs() <= (-(s.g_shift as f64) - 1.0).exp2());
            assert!((s.h(q.h) - h[i]).abs() <= (-(s.h_shift as f64) - 1.0).exp2());
            assert!(q.g.unsigned_abs() <= 1 << 24);
        }
    }

    #[test]
    fn best_split_separates_opposite_gradients() {
        let s = GradScale {
            g_shift: 0,
            h_shift: 0,
            precision_bits: 32,
        };
        // Bins 0,1 have negative gradients, bins 2,3 positive: the split is after bin 1.
        let hist = [
            GradPair { g: -10, h: 5 },
            GradPair { g: -8, h: 5 },
            GradPair { g: 9, h: 5 },
            GradPair { g: 11, h: 5 },
            GradPair::ZERO,
        ];
        let total = hist.iter().fold(GradPair::ZERO, |a, &b| a + b);
        let best = params().best_split_of_feature(&s, &hist, total).unwrap();
        assert_eq!(best.bin, 1);
        assert!(!best.missing_left);
        assert_eq!(best.left, GradPair { g: -18, h: 10 });
        // gain = 18²/11 + 20²/11 - 2²/21
        let expected = 324.0 / 11.0 + 400.0 / 11.0 - 4.0 / 21.0;
        assert!((best.gain - expected).abs() < 1e-12);
    }

    #[test]
    fn missing_values_are_sent_where_they_help() {
        let s = GradScale {
            g_shift: 0,
            h_shift: 0,
            precision_bits: 32,
        };
        // Missing rows look like bin 0 (negative gradients): they should go left.
        let hist = [
            GradPair { g: -10, h: 5 },
            GradPair { g: 10, h: 5 },
            GradPair { g: 10, h: 5 },
            GradPair { g: -10, h: 5 },
        ];
        let total = hist.iter().fold(GradPair::ZERO, |a, &b| a + b);
        let best = params().best_split_of_feature(&s, &hist, total).unwrap();
        assert_eq!((best.bin, best.missing_left), (0, true));
        assert_eq!(best.left, GradPair { g: -20, h: 10 });
    }

    #[test]
    fn min_child_weight_blocks_light_children_and_gamma_blocks_small_gains() {
        let s = GradScale {
            g_shift: 0,
            h_shift: 0,
            precision_bits: 32,
        };
        let hist = [
            GradPair { g: -10, h: 1 },
            GradPair { g: 10, h: 9 },
            GradPair::ZERO,
        ];
        let total = GradPair { g: 0, h: 10 };
        let mut p = params();
        assert!(p.best_split_of_feature(&s, &hist, total).is_some());
        p.min_child_weight = 2.0;
        assert!(p.best_split_of_feature(&s, &hist, total).is_none());
        p.min_child_weight = 0.0;
        let gain = p.best_split_of_feature(&s, &hist, total).unwrap().gain;
        p.gamma = gain + 1.0;
        assert!(!p.accept(gain));
        p.gamma = gain - 1.0;
        assert!(p.accept(gain));
    }

    #[test]
    fn leaf_value_is_newton_step() {
        let s = GradScale {
            g_shift: 1,
            h_shift: 2,
            precision_bits: 32,
        };
        let mut p = params();
        p.learning_rate = 0.5;
        // G = 6/2 = 3, H = 8/4 = 2: w = -3/(2+1)·0.5
        let w = p.leaf_value(&s, GradPair { g: 6, h: 8 });
        assert!((w + 0.5).abs() < 1e-15);
    }

    #[test]
    fn routing_rule_matches_bins() {
        assert!(goes_left(0, 4, 0, false));
        assert!(!goes_left(1, 4, 0, false));
        assert!(goes_left(4, 4, 0, true));
        assert!(!goes_left(4, 4, 3, false));
    }
}
