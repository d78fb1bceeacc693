//! Population stability index (PSI): how far a distribution has moved from a reference one,
//! e.g. a model's scores (or one feature) at prediction time against the training sample.
//!
//! ```text
//!     PSI = Σ_bins (a_b − e_b) · ln(a_b / e_b)
//! ```
//!
//! with `e_b` and `a_b` the shares of the expected (reference) and actual rows in bin `b`.
//! Every term is ≥ 0 (both factors have the sign of `a_b − e_b`), so PSI ≥ 0, and it is 0
//! exactly when every bin has the same share in both samples. It is the symmetrised
//! Kullback–Leibler divergence of the two binned distributions.
//!
//! Bins come from the *expected* sample's quantiles (as [`FeatureBins::fit`] computes them:
//! up to `bins` bins of about equal expected count; fewer when values repeat), plus a bin of
//! its own for missing values (`NaN`) when either sample has any.
//!
//! An empty bin would make a term infinite; its share is replaced by [`PSI_EMPTY_SHARE`] in
//! the PSI sum only (the reported shares stay the observed ones).
//!
//! Reading: [`PsiReading`] applies the rule of thumb widely used in credit scoring — below 0.1
//! the population is stable, 0.1 to 0.25 it has shifted somewhat, above 0.25 it has shifted
//! significantly (see e.g. N. Siddiqi, *Credit Risk Scorecards*, Wiley 2006). These are
//! conventions, not the thresholds of a statistical test: PSI grows with the number of bins
//! and is noisy on small samples.

use crate::binning::{FeatureBins, MAX_BINS};
use crate::metrics::MetricError;
use serde::{Deserialize, Serialize};

/// Bins of [`psi`] unless told otherwise.
pub const DEFAULT_PSI_BINS: usize = 10;

/// The share used in place of 0 for a bin that is empty in one of the samples.
pub const PSI_EMPTY_SHARE: f64 = 1e-4;

/// Below this PSI the population is read as stable (a convention; see the module docs).
pub const PSI_STABLE_BELOW: f64 = 0.1;

/// Above this PSI the population is read as significantly shifted (a convention).
pub const PSI_SIGNIFICANT_ABOVE: f64 = 0.25;

/// The conventional reading of a PSI value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PsiReading {
    /// PSI < 0.1.
    Stable,
    /// 0.1 ≤ PSI ≤ 0.25.
    SomeShift,
    /// PSI > 0.25.
    SignificantShift,
}

impl PsiReading {
    pub fn of(psi: f64) -> Self {
        if psi < PSI_STABLE_BELOW {
            PsiReading::Stable
        } else if psi <= PSI_SIGNIFICANT_ABOVE {
            PsiReading::SomeShift
        } else {
            PsiReading::SignificantShift
        }
    }
}

/// One bin of a [`PsiReport`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PsiBin {
    /// Values `v` with `lower < v ≤ upper`; `None` is unbounded. Both `None` for the missing
    /// bin.
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// The bin of missing values (`NaN`).
    pub missing: bool,
    pub expected_count: u64,
    pub actual_count: u64,
    /// Observed shares (0 for an empty bin).
    pub expected_share: f64,
    pub actual_share: f64,
    /// `(a − e) · ln(a / e)` with empty shares replaced by [`PSI_EMPTY_SHARE`].
    pub contribution: f64,
}

/// Population stability of `actual` against `expected`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PsiReport {
    pub bins: Vec<PsiBin>,
    /// Sum of the bins' contributions.
    pub psi: f64,
    pub reading: PsiReading,
    pub expected_count: u64,
    pub actual_count: u64,
}

/// PSI of `actual` against `expected` over (at most) `bins` quantile bins of `expected`
/// (see the module docs). `NaN` is a missing value; infinities are errors.
pub fn psi(expected: &[f64], actual: &[f64], bins: usize) -> Result<PsiReport, MetricError> {
    if expected.is_empty() || actual.is_empty() {
        return Err(MetricError::Empty);
    }
    for (what, values) in [("expected value", expected), ("actual value", actual)] {
        if let Some(i) = values.iter().position(|v| v.is_infinite()) {
            return Err(MetricError::NotFinite {
                what,
                index: i,
                value: values[i].to_string(),
            });
        }
    }
    // FeatureBins::fit refuses only a bin count outside 2..=MAX_BINS.
    if bins < 2 {
        return Err(MetricError::BadBins { got: bins, min: 2 });
    }
    let bins_of = FeatureBins::fit(expected, bins).map_err(|_| MetricError::TooManyBins {
        got: bins,
        max: MAX_BINS,
    })?;
    let n_slots = bins_of.n_bins_with_missing();
    let count = |values: &[f64]| {
        let mut c = vec![0u64; n_slots];
        for &v in values {
            c[bins_of.bin(v)] += 1;
        }
        c
    };
    let (e_counts, a_counts) = (count(expected), count(actual));
    let has_missing = e_counts[bins_of.missing_bin()] + a_counts[bins_of.missing_bin()] > 0;
    let (ne, na) = (expected.len() as f64, actual.len() as f64);
    let edges = bins_of.edges();
    let mut out = Vec::with_capacity(n_slots);
    for b in 0..n_slots {
        let missing = b == bins_of.missing_bin();
        if missing && !has_missing {
            continue;
        }
        let (ec, ac) = (e_counts[b], a_counts[b]);
        let (es, as_) = (ec as f64 / ne, ac as f64 / na);
        let smooth = |count: u64, share: f64| if count == 0 { PSI_EMPTY_SHARE } else { share };
        let (e, a) = (smooth(ec, es), smooth(ac, as_));
        out.push(PsiBin {
            lower: if missing || b == 0 {
                None
            } else {
                Some(edges[b - 1])
            },
            upper: if missing { None } else { edges.get(b).copied() },
            missing,
            expected_count: ec,
            actual_count: ac,
            expected_share: es,
            actual_share: as_,
            contribution: (a - e) * (a / e).ln(),
        });
    }
    let total = out.iter().map(|b| b.contribution).sum::<f64>();
    Ok(PsiReport {
        bins: out,
        psi: total,
        reading: PsiReading::of(total),
        expected_count: expected.len() as u64,
        actual_count: actual.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::TestRng;

    #[test]
    fn psi_by_hand() {
        // Expected 1..=8 in 2 bins: edge 4, bins (-inf, 4] and (4, inf), half each.
        let expected: Vec<f64> = (1..=8).map(f64::from).collect();
        // Actual: 3 of 10 rows at or below 4.
        let actual = [1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0];
        let r = psi(&expected, &actual, 2).unwrap();
        assert_eq!(r.bins.len(), 2);
        assert_eq!((r.bins[0].lower, r.bins[0].upper), (None, Some(4.0)));
        assert_eq!((r.bins[1].lower, r.bins[1].upper), (Some(4.0), None));
        assert_eq!((r.bins[0].expected_count, r.bins[0].actual_count), (4, 3));
        let want = (0.3 - 0.5) * (0.3f64 / 0.5).ln() + (0.7 - 0.5) * (0.7f64 / 0.5).ln();
        assert!((r.psi - want).abs() < 1e-15, "{} vs {want}", r.psi);
        assert_eq!(r.reading, PsiReading::SomeShift); // 0.169
        assert_eq!((r.expected_count, r.actual_count), (8, 10));
    }

    #[test]
    fn empty_bins_use_the_named_share_and_missing_values_get_a_bin() {
        let expected = [1.0, 2.0, 3.0, 4.0];
        // Nothing at or below the edge 2, and one missing value the expected sample lacks.
        let actual = [3.0, 4.0, f64::NAN];
        let r = psi(&expected, &actual, 2).unwrap();
        assert_eq!(r.bins.len(), 3);
        assert!(r.bins[2].missing);
        assert_eq!(r.bins[0].actual_share, 0.0);
        let e = 0.5;
        let want0 = (PSI_EMPTY_SHARE - e) * (PSI_EMPTY_SHARE / e).ln();
        let want1 = (2.0 / 3.0 - e) * ((2.0 / 3.0) / e).ln();
        let want2 = (1.0 / 3.0 - PSI_EMPTY_SHARE) * ((1.0 / 3.0) / PSI_EMPTY_SHARE).ln();
        assert!((r.bins[0].contribution - want0).abs() < 1e-12);
        assert!((r.bins[1].contribution - want1).abs() < 1e-12);
        assert!((r.bins[2].contribution - want2).abs() < 1e-12);
        assert!(r.psi.is_finite());
        assert_eq!(r.reading, PsiReading::SignificantShift);
    }

    #[test]
    fn readings_follow_the_convention() {
        assert_eq!(PsiReading::of(0.0), PsiReading::Stable);
        assert_eq!(PsiReading::of(0.099), PsiReading::Stable);
        assert_eq!(PsiReading::of(0.1), PsiReading::SomeShift);
        assert_eq!(PsiReading::of(0.25), PsiReading::SomeShift);
        assert_eq!(PsiReading::of(0.2501), PsiReading::SignificantShift);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(psi(&[], &[1.0], 10).unwrap_err(), MetricError::Empty);
        assert_eq!(
            psi(&[1.0, 2.0], &[1.0], 1).unwrap_err(),
            MetricError::BadBins { got: 1, min: 2 }
        );
        assert_eq!(
            psi(&[1.0, 2.0], &[1.0], MAX_BINS + 1).unwrap_err(),
            MetricError::TooManyBins {
                got: MAX_BINS + 1,
                max: MAX_BINS
            }
        );
        assert_eq!(
            psi(&[1.0, 2.0], &[f64::INFINITY], 10).unwrap_err(),
            MetricError::NotFinite {
                what: "actual value",
                index: 0,
                value: "inf".into()
            }
        );
    }

    /// Seeded random samples (with ties and missing values): PSI of a sample with itself is 0,
    /// PSI is never negative, shares add up to 1, every row is counted once.
    #[test]
    fn psi_properties_on_random_data() {
        let mut rng = TestRng(7);
        for case in 0..300 {
            let draw = |rng: &mut TestRng, n: usize, shift: f64, scale: f64| -> Vec<f64> {
                (0..n)
                    .map(|_| {
                        if rng.uniform() < 0.05 {
                            f64::NAN
                        } else if rng.uniform() < 0.3 {
                            rng.below(5) as f64 // repeated values
                        } else {
                            shift + scale * rng.uniform()
                        }
                    })
                    .collect()
            };
            let bins = 2 + rng.below(20) as usize;
            let ne = 1 + rng.below(300) as usize;
            let na = 1 + rng.below(300) as usize;
            let expected = draw(&mut rng, ne, 0.0, 10.0);
            let (shift, scale) = (rng.uniform() * 5.0, 1.0 + rng.uniform() * 10.0);
            let actual = draw(&mut rng, na, shift, scale);

            let same = psi(&expected, &expected, bins).unwrap();
            assert_eq!(same.psi, 0.0, "case {case}");
            assert_eq!(same.reading, PsiReading::Stable);

            let r = psi(&expected, &actual, bins).unwrap();
            assert!(r.psi >= 0.0 && r.psi.is_finite(), "case {case}: {}", r.psi);
            assert!(r.bins.iter().all(|b| b.contribution >= 0.0));
            assert!(r.bins.len() <= bins + 1);
            let e: u64 = r.bins.iter().map(|b| b.expected_count).sum();
            let a: u64 = r.bins.iter().map(|b| b.actual_count).sum();
            assert_eq!((e, a), (ne as u64, na as u64), "case {case}");
            let es: f64 = r.bins.iter().map(|b| b.expected_share).sum();
            assert!((es - 1.0).abs() < 1e-12);
        }
    }
}
