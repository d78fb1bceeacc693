//! Quantile binning of numeric features, shared by tree learners and feature engineering.
//!
//! Each feature gets at most `max_bin` bins for its non-missing values plus one dedicated bin
//! for missing values (`NaN`). Bins are defined by sorted, strictly increasing *upper edges*
//! `e_0 < e_1 < … < e_{k-2}`: a value `v` falls into bin `b = #{i : e_i < v}`, so
//!
//! ```text
//!     bin(v) ≤ b   ⇔   v ≤ e_b        (for every non-missing v)
//! ```
//!
//! which is what lets a tree learner train on bin indices and predict with the plain threshold
//! `v ≤ e_b` on raw values: both give the same partition of the training data.
//!
//! # Edges
//! Edges are exact quantiles of the non-missing values (the data is in memory, so no sketch is
//! needed): with `m` sorted values, candidate `k` (for `k = 1 … max_bin-1`) is the value at
//! rank `⌈k·m/max_bin⌉`, duplicates are dropped and the largest value never becomes an edge (its
//! bin would be empty). A feature with at most `max_bin` distinct values gets one bin per
//! distinct value. The edges depend only on the multiset of a feature's values, so every party
//! that bins the same column gets the same bins — the property lossless federated training
//! relies on. [`QuantileSketch`] computes the same edges from data seen in pieces (exactly while
//! a feature has few distinct values, approximately beyond).

use serde::{Deserialize, Serialize};

/// Errors from fitting or applying a binning.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BinningError {
    #[error("max_bin must be between 2 and {max}, got {got}")]
    BadMaxBin { got: usize, max: usize },
    #[error("{values} values do not make {rows} rows of {features} features")]
    Shape {
        values: usize,
        rows: usize,
        features: usize,
    },
    #[error(
        "bin edges must be finite and strictly increasing (edge {index} breaks this): \
         the binning file is corrupt"
    )]
    BadEdges { index: usize },
    #[error("data has {got} features but the binning was fitted on {expected}")]
    FeatureCount { got: usize, expected: usize },
}

/// Largest `max_bin`: bin indices (including the missing bin) must fit in a `u16`.
pub const MAX_BINS: usize = u16::MAX as usize - 1;

/// The bins of one feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureBins {
    edges: Vec<f64>,
}

impl FeatureBins {
    /// Exact quantile edges of the non-missing values of one feature.
    pub fn fit(values: &[f64], max_bin: usize) -> Result<Self, BinningError> {
        check_max_bin(max_bin)?;
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        Ok(FeatureBins {
            edges: edges_of_weighted(&unit_points(&sorted), max_bin),
        })
    }

    /// Bins from known edges (a stored binning); they must be finite and strictly increasing.
    pub fn from_edges(edges: Vec<f64>) -> Result<Self, BinningError> {
        for (i, e) in edges.iter().enumerate() {
            if !e.is_finite() || (i > 0 && edges[i - 1] >= *e) {
                return Err(BinningError::BadEdges { index: i });
            }
        }
        if edges.len() + 1 > MAX_BINS {
            return Err(BinningError::BadMaxBin {
                got: edges.len() + 1,
                max: MAX_BINS,
            });
        }
        Ok(FeatureBins { edges })
    }

    /// The upper edges (inclusive) of every bin but the last.
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// Number of bins for non-missing values (at least 1).
    pub fn n_bins(&self) -> usize {
        self.edges.len() + 1
    }

    /// Index of the missing-value bin: the one after the last value bin.
    pub fn missing_bin(&self) -> usize {
        self.n_bins()
    }

    /// Number of bins including the missing bin.
    pub fn n_bins_with_missing(&self) -> usize {
        self.n_bins() + 1
    }

    /// The bin of a value (`NaN` goes to [`FeatureBins::missing_bin`]).
    pub fn bin(&self, v: f64) -> usize {
        if v.is_nan() {
            self.missing_bin()
        } else {
            self.edges.partition_point(|&e| e < v)
        }
    }

    /// The threshold `t` with `bin(v) ≤ b ⇔ v ≤ t` for non-missing `v`; `None` for the last value
    /// bin (every non-missing value is at or below it) and for bins out of range.
    pub fn upper_edge(&self, bin: usize) -> Option<f64> {
        self.edges.get(bin).copied()
    }
}

fn check_max_bin(max_bin: usize) -> Result<(), BinningError> {
    if !(2..=MAX_BINS).contains(&max_bin) {
        return Err(BinningError::BadMaxBin {
            got: max_bin,
            max: MAX_BINS,
        });
    }
    Ok(())
}

/// A mergeable summary of one feature's values, for data that arrives in pieces (several files,
/// threads or batches) or does not fit in memory.
///
/// The sketch keeps sorted `(value, weight)` points. Values are buffered and merged in; equal
/// values share one point, so a feature with at most `capacity` distinct values is summarised
/// *exactly* and [`QuantileSketch::bins`] gives the same bins as [`FeatureBins::fit`] on all
/// the values. Beyond that, runs of adjacent points are merged into their largest value with
/// their total weight, at most `capacity` points remaining; each such compression moves a rank
/// by at most `count / capacity`, so with `capacity` well above `max_bin` (the default is 64 per
/// bin) bin edges stay close to the exact quantiles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantileSketch {
    capacity: usize,
    points: Vec<(f64, u64)>,
    buffer: Vec<f64>,
}

impl QuantileSketch {
    /// A sketch that keeps at most `capacity` points (at least 16).
    pub fn new(capacity: usize) -> Self {
        QuantileSketch {
            capacity: capacity.max(16),
            points: Vec::new(),
            buffer: Vec::new(),
        }
    }

    /// A sketch sized for `max_bin` bins.
    pub fn for_bins(max_bin: usize) -> Self {
        Self::new(max_bin.saturating_mul(64))
    }

    /// Adds a value; `NaN` (missing) is ignored.
    pub fn push(&mut self, v: f64) {
        if !v.is_nan() {
            self.buffer.push(v);
            if self.buffer.len() >= self.capacity {
                self.flush();
            }
        }
    }

    pub fn extend(&mut self, values: impl IntoIterator<Item = f64>) {
        for v in values {
            self.push(v);
        }
    }

    /// Adds everything `other` summarised.
    pub fn merge(&mut self, other: &QuantileSketch) {
        let mut theirs = other.points.clone();
        let mut buffered = other.buffer.clone();
        buffered.sort_by(f64::total_cmp);
        theirs = merge_points(&theirs, &unit_points(&buffered));
        self.flush();
        self.points = merge_points(&self.points, &theirs);
        self.compress();
    }

    /// Number of non-missing values summarised.
    pub fn count(&self) -> u64 {
        self.points.iter().map(|p| p.1).sum::<u64>() + self.buffer.len() as u64
    }

    /// Quantile bins of the summarised values, chosen by the same rule as
    /// [`FeatureBins::fit`].
    pub fn bins(&self, max_bin: usize) -> Result<FeatureBins, BinningError> {
        check_max_bin(max_bin)?;
        let mut all = self.clone();
        all.flush();
        Ok(FeatureBins {
            edges: edges_of_weighted(&all.points, max_bin),
        })
    }

    fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let mut buffered = std::mem::take(&mut self.buffer);
        buffered.sort_by(f64::total_cmp);
        self.points = merge_points(&self.points, &unit_points(&buffered));
        self.compress();
    }

    fn compress(&mut self) {
        if self.points.len() <= self.capacity {
            return;
        }
        let total: u64 = self.points.iter().map(|p| p.1).sum();
        // Runs of about total/capacity weight each, represented by their largest value, so the
        // rank of every kept value stays exact and only values inside a run lose resolution.
        let target = total.div_ceil(self.capacity as u64).max(1);
        let mut out: Vec<(f64, u64)> = Vec::with_capacity(self.capacity);
        let mut run = 0u64;
        for (i, &(v, w)) in self.points.iter().enumerate() {
            run += w;
            if run >= target || i + 1 == self.points.len() {
                out.push((v, run));
                run = 0;
            }
        }
        self.points = out;
    }
}

fn unit_points(sorted: &[f64]) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = Vec::new();
    for &v in sorted {
        match out.last_mut() {
            Some(last) if last.0 == v => last.1 += 1,
            _ => out.push((v, 1)),
        }
    }
    out
}

fn merge_points(a: &[(f64, u64)], b: &[(f64, u64)]) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let take_a = j == b.len() || (i < a.len() && a[i].0 <= b[j].0);
        let p = if take_a {
            i += 1;
            a[i - 1]
        } else {
            j += 1;
            b[j - 1]
        };
        match out.last_mut() {
            Some(last) if last.0 == p.0 => last.1 += p.1,
            _ => out.push(p),
        }
    }
    out
}

/// Quantile edges of sorted distinct values with their multiplicities: the value at rank
/// `⌈k·m/max_bin⌉` for `k = 1 … max_bin-1` (ranks counted with multiplicity), or every value but
/// the largest when there are at most `max_bin` of them.
fn edges_of_weighted(points: &[(f64, u64)], max_bin: usize) -> Vec<f64> {
    let Some(&(largest, _)) = points.last() else {
        return Vec::new();
    };
    if points.len() <= max_bin {
        return points[..points.len() - 1].iter().map(|p| p.0).collect();
    }
    let m: u128 = points.iter().map(|p| p.1 as u128).sum();
    let mut edges: Vec<f64> = Vec::with_capacity(max_bin - 1);
    let mut at = 0;
    let mut cumulative: u128 = points[0].1 as u128;
    for k in 1..max_bin as u128 {
        let rank = (k * m).div_ceil(max_bin as u128).max(1);
        while cumulative < rank && at + 1 < points.len() {
            at += 1;
            cumulative += points[at].1 as u128;
        }
        let v = points[at].0;
        if v < largest && edges.last().is_none_or(|&last| last < v) {
            edges.push(v);
        }
    }
    edges
}

/// Bins of every feature of a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binning {
    features: Vec<FeatureBins>,
}

/// A table of bin indices, stored column by column (tree learners scan one feature at a time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinnedMatrix {
    n_rows: usize,
    columns: Vec<Vec<u16>>,
}

impl BinnedMatrix {
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    pub fn n_features(&self) -> usize {
        self.columns.len()
    }

    /// Bin indices of feature `j`, one per row.
    pub fn column(&self, j: usize) -> &[u16] {
        &self.columns[j]
    }

    /// Keeps only the given columns, in that order.
    pub fn select_columns(&self, columns: &[usize]) -> BinnedMatrix {
        BinnedMatrix {
            n_rows: self.n_rows,
            columns: columns.iter().map(|&j| self.columns[j].clone()).collect(),
        }
    }

    /// Columns of `self` followed by the columns of `other` (same rows).
    pub fn hstack(&self, other: &BinnedMatrix) -> Option<BinnedMatrix> {
        if self.n_rows != other.n_rows {
            return None;
        }
        let mut columns = self.columns.clone();
        columns.extend(other.columns.iter().cloned());
        Some(BinnedMatrix {
            n_rows: self.n_rows,
            columns,
        })
    }
}

impl Binning {
    /// Fits every feature of a dense row-major table (`NaN` = missing).
    pub fn fit(
        features: &[f64],
        n_rows: usize,
        n_features: usize,
        max_bin: usize,
    ) -> Result<Self, BinningError> {
        check_max_bin(max_bin)?;
        check_shape(features, n_rows, n_features)?;
        let features = (0..n_features)
            .map(|j| {
                let column: Vec<f64> = (0..n_rows).map(|i| features[i * n_features + j]).collect();
                FeatureBins::fit(&column, max_bin)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Binning { features })
    }

    pub fn from_features(features: Vec<FeatureBins>) -> Self {
        Binning { features }
    }

    pub fn features(&self) -> &[FeatureBins] {
        &self.features
    }

    pub fn feature(&self, j: usize) -> &FeatureBins {
        &self.features[j]
    }

    pub fn n_features(&self) -> usize {
        self.features.len()
    }

    /// Bin indices of a dense row-major table with the features this binning was fitted on.
    pub fn transform(&self, features: &[f64], n_rows: usize) -> Result<BinnedMatrix, BinningError> {
        let d = self.features.len();
        check_shape(features, n_rows, d)?;
        let columns = self
            .features
            .iter()
            .enumerate()
            .map(|(j, bins)| {
                (0..n_rows)
                    .map(|i| bins.bin(features[i * d + j]) as u16)
                    .collect()
            })
            .collect();
        Ok(BinnedMatrix { n_rows, columns })
    }
}

fn check_shape(features: &[f64], n_rows: usize, n_features: usize) -> Result<(), BinningError> {
    if n_rows.checked_mul(n_features) != Some(features.len()) {
        return Err(BinningError::Shape {
            values: features.len(),
            rows: n_rows,
            features: n_features,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_one_bin_each() {
        let bins = FeatureBins::fit(&[3.0, 1.0, 2.0, 1.0, 3.0, f64::NAN], 8).unwrap();
        assert_eq!(bins.edges(), &[1.0, 2.0]);
        assert_eq!(bins.n_bins(), 3);
        assert_eq!(bins.bin(1.0), 0);
        assert_eq!(bins.bin(2.0), 1);
        assert_eq!(bins.bin(3.0), 2);
        assert_eq!(bins.bin(f64::NAN), 3);
        assert_eq!(bins.missing_bin(), 3);
        assert_eq!(bins.n_bins_with_missing(), 4);
    }

    #[test]
    fn quantile_edges_split_uniform_data_evenly() {
        // 1..=100 into 4 bins: ranks 25, 50, 75 -> values 25, 50, 75.
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let bins = FeatureBins::fit(&values, 4).unwrap();
        assert_eq!(bins.edges(), &[25.0, 50.0, 75.0]);
        let mut counts = [0usize; 4];
        for &v in &values {
            counts[bins.bin(v)] += 1;
        }
        assert_eq!(counts, [25, 25, 25, 25]);
    }

    #[test]
    fn heavy_ties_never_create_empty_or_duplicate_bins() {
        // 90 zeros and 10 distinct positives: quantile ranks mostly land on 0.
        let mut values = vec![0.0; 90];
        values.extend((1..=10).map(f64::from));
        let bins = FeatureBins::fit(&values, 5).unwrap();
        let e = bins.edges();
        assert!(e.windows(2).all(|w| w[0] < w[1]), "edges {e:?}");
        assert!(
            e.iter().all(|&x| x < 10.0),
            "the largest value is never an edge"
        );
        let mut counts = vec![0usize; bins.n_bins()];
        for &v in &values {
            counts[bins.bin(v)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 0), "counts {counts:?}");
        assert!(bins.n_bins() <= 5);
    }

    #[test]
    fn bin_order_matches_threshold_rule() {
        let values: Vec<f64> = (0..997)
            .map(|i| ((i * 7919) % 997) as f64 * 0.37 - 50.0)
            .collect();
        let bins = FeatureBins::fit(&values, 16).unwrap();
        assert_eq!(bins.n_bins(), 16);
        for b in 0..bins.n_bins() {
            for &v in &values {
                let by_bin = bins.bin(v) <= b;
                let by_threshold = bins.upper_edge(b).is_none_or(|t| v <= t);
                assert_eq!(by_bin, by_threshold, "value {v}, bin {b}");
            }
        }
    }

    #[test]
    fn all_missing_or_constant_columns_have_one_value_bin() {
        let bins = FeatureBins::fit(&[f64::NAN, f64::NAN], 10).unwrap();
        assert_eq!(bins.n_bins(), 1);
        assert_eq!(bins.bin(5.0), 0);
        assert_eq!(bins.bin(f64::NAN), 1);
        let bins = FeatureBins::fit(&[2.0; 5], 10).unwrap();
        assert_eq!(bins.n_bins(), 1);
        assert_eq!(bins.upper_edge(0), None);
    }

    #[test]
    fn binning_a_table_is_per_column_and_independent_of_other_columns() {
        // Column 0 is the same in both tables; its bins must not depend on column 1.
        let a = [1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, f64::NAN];
        let b = [1.0, -1.0, 2.0, -5.0, 3.0, 7.0, 4.0, 0.5];
        let ba = Binning::fit(&a, 4, 2, 2).unwrap();
        let bb = Binning::fit(&b, 4, 2, 2).unwrap();
        assert_eq!(ba.feature(0), bb.feature(0));
        let m = ba.transform(&a, 4).unwrap();
        assert_eq!(m.n_rows(), 4);
        assert_eq!(m.column(0), &[0, 0, 1, 1]);
        // Three values into two bins: the median (20) closes bin 0.
        assert_eq!(m.column(1), &[0, 0, 1, 2], "NaN goes to the missing bin");
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert_eq!(
            FeatureBins::fit(&[1.0], 1),
            Err(BinningError::BadMaxBin {
                got: 1,
                max: MAX_BINS
            })
        );
        assert!(matches!(
            Binning::fit(&[1.0, 2.0, 3.0], 2, 2, 4),
            Err(BinningError::Shape { .. })
        ));
        assert_eq!(
            FeatureBins::from_edges(vec![1.0, 1.0]),
            Err(BinningError::BadEdges { index: 1 })
        );
        assert_eq!(
            FeatureBins::from_edges(vec![f64::INFINITY]),
            Err(BinningError::BadEdges { index: 0 })
        );
        let fitted = Binning::fit(&[1.0, 2.0], 1, 2, 4).unwrap();
        assert!(matches!(
            fitted.transform(&[1.0, 2.0, 3.0], 1),
            Err(BinningError::Shape { .. })
        ));
    }

    #[test]
    fn merged_sketches_match_exact_bins_when_nothing_was_compressed() {
        // 3000 values with 40 distinct ones, summarised in three pieces.
        let values: Vec<f64> = (0..3000).map(|i| ((i * 7) % 40) as f64 * 0.5).collect();
        let mut pieces: Vec<QuantileSketch> = (0..3).map(|_| QuantileSketch::new(64)).collect();
        for (i, &v) in values.iter().enumerate() {
            pieces[i % 3].push(v);
        }
        pieces[1].push(f64::NAN);
        let mut merged = pieces[0].clone();
        merged.merge(&pieces[1]);
        merged.merge(&pieces[2]);
        assert_eq!(merged.count(), 3000);
        for max_bin in [4, 16, 32, 64] {
            assert_eq!(
                merged.bins(max_bin).unwrap(),
                FeatureBins::fit(&values, max_bin).unwrap(),
                "max_bin {max_bin}"
            );
        }
    }

    #[test]
    fn compressed_sketch_edges_stay_near_exact_quantiles() {
        // 100,000 distinct values in a scrambled order, 256 points kept.
        let n = 100_000usize;
        let values: Vec<f64> = (0..n).map(|i| ((i * 7919) % n) as f64).collect();
        let mut a = QuantileSketch::new(256);
        let mut b = QuantileSketch::new(256);
        a.extend(values[..n / 2].iter().copied());
        b.extend(values[n / 2..].iter().copied());
        a.merge(&b);
        assert_eq!(a.count(), n as u64);
        let approx = a.bins(8).unwrap();
        let exact = FeatureBins::fit(&values, 8).unwrap();
        assert_eq!(approx.n_bins(), exact.n_bins());
        for (x, y) in approx.edges().iter().zip(exact.edges()) {
            // Values are their own ranks here: the rank error is at most a few n/capacity.
            assert!((x - y).abs() <= 4.0 * n as f64 / 256.0, "{x} vs {y}");
        }
    }
}
