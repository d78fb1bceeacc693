//! Binning of one feature for scorecards: quantile, equal-width and optimal (monotonic bad
//! rate) bins for numbers, groups of categories for text, and always a bin of its own for
//! missing values.
//!
//! # Bins
//! A [`FeatureBinning`] has `n_bins()` bins; the **last one is always the missing-value bin**
//! ([`FeatureBinning::missing_bin`]), whether or not any row was missing when it was fitted.
//!
//! * Numeric ([`Bins::Numeric`]): `upper_edges = [e_0, …, e_{L-1}]`, finite and strictly
//!   increasing, make `L + 1` value bins, each closed on the right:
//!
//!   ```text
//!   bin 0     = (-inf, e_0]
//!   bin i     = (e_{i-1}, e_i]        for 1 ≤ i < L
//!   bin L     = (e_{L-1}, +inf)       (the whole line when L = 0)
//!   bin L + 1 = missing (NaN)
//!   ```
//!
//!   so a value `v` falls into bin `#{i : e_i < v}` (`+inf` into bin `L`, `-inf` into bin 0).
//!   The edges are values seen during fitting, never midpoints: `v ≤ e_i` is the whole rule.
//! * Categorical ([`Bins::Categorical`]): value bin `j` holds the categories of `groups[j]`;
//!   the bin after the groups is the missing bin (`None`). Categories rarer than
//!   `rare_category_share` at fitting time are put together in one group, whose index is
//!   `other`. A category **not seen when fitting** goes to the `other` group when there is one,
//!   and to the missing bin otherwise (it is as unknown as a missing value).
//!
//! # Methods
//! * [`BinMethod::Quantile`]: about equally many rows per bin, computed over distinct values
//!   with their multiplicities. A value shared by many rows is never split across bins and
//!   never swallows its neighbours: the cut points are chosen greedily so that each bin is as
//!   close as possible to `remaining rows / remaining bins`, recomputed after every cut. A
//!   column with 80% zeros thus gets a bin `(-inf, 0]` (or the zeros alone) and the remaining
//!   bins share the other 20%. A column with at most `max_bins` distinct values gets one bin
//!   per value.
//! * [`BinMethod::EqualWidth`]: `max_bins` bins of equal width between the smallest and the
//!   largest value (bins may be empty).
//! * [`BinMethod::Optimal`] (needs 0/1 labels): `fine_bins` quantile bins (or one group per
//!   category), then adjacent bins are merged — always the pair whose 2×2 chi-square statistic
//!   (bin × good/bad) is smallest, i.e. whose bad rates are the most alike (ChiMerge) — until
//!   the bad rate is strictly monotonic across the value bins (increasing or decreasing, see
//!   [`Trend`]), there are at most `max_bins` value bins and every value bin holds at least
//!   `min_bin_share` of the rows. Categories are first ordered by bad rate, so every merge of
//!   neighbours keeps the order and only the size rules apply. The missing bin is never merged.
//!
//! # Federated optimal binning
//! Merging needs only per-bin counts ([`BinStats`]): [`merge_plan`] computes, from counts
//! alone, which adjacent fine bins to join ([`MergePlan`]); [`apply_merge_plan`] turns a fine
//! binning into the merged one. So a host fits fine quantile bins on its own data without
//! labels, the guest learns the per-bin (total, bad) counts through the federated WOE protocol
//! ([`crate::woe::federated_woe`]), computes the plan and sends the host *only the plan*
//! ([`crate::woe::federated_merge`]). The plan reveals to the host which of its adjacent fine
//! bins have similar bad rates (they were joined) and, for categorical features, the order of
//! its categories' bad rates; the counts themselves never leave the guest.

use crate::woe::BinStats;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Largest `max_bins`.
pub const MAX_BINS: usize = 1000;

/// Largest `fine_bins` (the starting point of optimal binning).
pub const MAX_FINE_BINS: usize = 10_000;

/// How a numeric feature is cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BinMethod {
    /// About the same number of rows per bin.
    #[default]
    Quantile,
    /// Bins of the same width between the smallest and largest value.
    EqualWidth,
    /// Quantile bins merged until the bad rate is monotonic (needs labels).
    Optimal,
}

/// Direction of the bad rate across the value bins of an optimal binning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// The direction of the fine bins' overall trend (sign of the row-weighted covariance
    /// between bin position and bad rate; increasing when it is zero).
    #[default]
    Auto,
    /// Bad rate strictly increases with the value.
    Increasing,
    /// Bad rate strictly decreases with the value.
    Decreasing,
}

/// How features are binned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BinningParams {
    /// `quantile`, `equal_width` or `optimal`.
    pub method: BinMethod,
    /// Most value bins per feature (the missing-value bin comes on top).
    #[schemars(range(min = 2, max = 1000))]
    pub max_bins: usize,
    /// Optimal binning and merging: smallest share of all rows (missing ones included) a value
    /// bin may hold; smaller bins are merged into their more similar neighbour.
    #[schemars(range(min = 0.0, max = 0.5))]
    pub min_bin_share: f64,
    /// Categories holding a smaller share of the rows are put together in one "other" bin.
    #[schemars(range(min = 0.0, max = 0.5))]
    pub rare_category_share: f64,
    /// Optimal binning: number of quantile bins it starts from (at least `max_bins`).
    #[schemars(range(min = 2, max = 10000))]
    pub fine_bins: usize,
    /// Optimal binning: direction of the bad rate.
    pub trend: Trend,
}

impl Default for BinningParams {
    fn default() -> Self {
        BinningParams {
            method: BinMethod::Quantile,
            max_bins: 10,
            min_bin_share: 0.05,
            rare_category_share: 0.01,
            fine_bins: 50,
            trend: Trend::Auto,
        }
    }
}

impl BinningParams {
    /// Range checks; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=MAX_BINS).contains(&self.max_bins) {
            return Err(format!(
                "max_bins must be between 2 and {MAX_BINS}, got {}",
                self.max_bins
            ));
        }
        if !(self.min_bin_share.is_finite() && (0.0..=0.5).contains(&self.min_bin_share)) {
            return Err(format!(
                "min_bin_share must be between 0 and 0.5, got {}",
                self.min_bin_share
            ));
        }
        if !(self.rare_category_share.is_finite()
            && (0.0..=0.5).contains(&self.rare_category_share))
        {
            return Err(format!(
                "rare_category_share must be between 0 and 0.5, got {}",
                self.rare_category_share
            ));
        }
        if self.fine_bins < self.max_bins || self.fine_bins > MAX_FINE_BINS {
            return Err(format!(
                "fine_bins must be between max_bins ({}) and {MAX_FINE_BINS}, got {}",
                self.max_bins, self.fine_bins
            ));
        }
        Ok(())
    }
}

/// Why a binning could not be fitted, merged or used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BinningError {
    #[error("binning parameters: {0}")]
    Params(String),
    #[error(
        "feature '{feature}': row {row} holds {value}; only finite numbers or NaN (missing) can be binned"
    )]
    NonFinite {
        feature: String,
        row: usize,
        value: f64,
    },
    #[error("feature '{feature}': optimal binning needs labels")]
    LabelsRequired { feature: String },
    #[error("feature '{feature}': {rows} values but {labels} labels")]
    LabelCount {
        feature: String,
        rows: usize,
        labels: usize,
    },
    #[error("feature '{feature}': label of row {row} is {value}; expected 0 (good) or 1 (bad)")]
    BadLabel {
        feature: String,
        row: usize,
        value: f64,
    },
    #[error("feature '{feature}': {got} bin statistics for a binning of {expected} bins")]
    StatsCount {
        feature: String,
        expected: usize,
        got: usize,
    },
    #[error("feature '{feature}': merge plan rejected: {reason}")]
    BadPlan { feature: String, reason: String },
    #[error("feature '{feature}': invalid binning: {reason}")]
    Invalid { feature: String, reason: String },
}

/// The value bins of a feature (the missing bin is implicit: always the last bin).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bins {
    /// `upper_edges.len() + 1` value bins: bin `i` is `(edge[i-1], edge[i]]`, the first
    /// starts at `-inf`, the last is `(edge[last], +inf)`.
    Numeric { upper_edges: Vec<f64> },
    /// One value bin per group of categories; `other` is the group of rare categories, which
    /// also receives categories never seen when fitting.
    Categorical {
        groups: Vec<Vec<String>>,
        other: Option<usize>,
    },
}

/// The fitted bins of one feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureBinning {
    pub feature: String,
    pub bins: Bins,
}

impl FeatureBinning {
    /// Numeric bins from known edges (checked: finite, strictly increasing).
    pub fn numeric(feature: &str, upper_edges: Vec<f64>) -> Result<Self, BinningError> {
        let b = FeatureBinning {
            feature: feature.to_string(),
            bins: Bins::Numeric { upper_edges },
        };
        b.validate()?;
        Ok(b)
    }

    /// Categorical bins from known groups (checked: no category twice, `other` in range).
    pub fn categorical(
        feature: &str,
        groups: Vec<Vec<String>>,
        other: Option<usize>,
    ) -> Result<Self, BinningError> {
        let b = FeatureBinning {
            feature: feature.to_string(),
            bins: Bins::Categorical { groups, other },
        };
        b.validate()?;
        Ok(b)
    }

    /// Checks a binning read from a file or a peer.
    pub fn validate(&self) -> Result<(), BinningError> {
        let invalid = |reason: String| BinningError::Invalid {
            feature: self.feature.clone(),
            reason,
        };
        match &self.bins {
            Bins::Numeric { upper_edges } => {
                for (i, e) in upper_edges.iter().enumerate() {
                    if !e.is_finite() || (i > 0 && upper_edges[i - 1] >= *e) {
                        return Err(invalid(format!(
                            "edge {i} ({e}) is not finite or not above the previous one"
                        )));
                    }
                }
                if upper_edges.len() + 2 > MAX_FINE_BINS + 1 {
                    return Err(invalid(format!("{} edges are too many", upper_edges.len())));
                }
            }
            Bins::Categorical { groups, other } => {
                let mut seen = HashSet::new();
                for (j, g) in groups.iter().enumerate() {
                    if g.is_empty() {
                        return Err(invalid(format!("group {j} is empty")));
                    }
                    for c in g {
                        if !seen.insert(c.as_str()) {
                            return Err(invalid(format!("category '{c}' is in two groups")));
                        }
                    }
                }
                if let Some(o) = other
                    && *o >= groups.len()
                {
                    return Err(invalid(format!(
                        "other group {o} does not exist ({} groups)",
                        groups.len()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether the value bins are ordered (numeric) rather than a set of groups.
    pub fn is_numeric(&self) -> bool {
        matches!(self.bins, Bins::Numeric { .. })
    }

    /// Number of value bins (every bin but the missing one).
    pub fn n_value_bins(&self) -> usize {
        match &self.bins {
            Bins::Numeric { upper_edges } => upper_edges.len() + 1,
            Bins::Categorical { groups, .. } => groups.len(),
        }
    }

    /// Number of bins, the missing-value bin included.
    pub fn n_bins(&self) -> usize {
        self.n_value_bins() + 1
    }

    /// The missing-value bin: always the last.
    pub fn missing_bin(&self) -> usize {
        self.n_value_bins()
    }

    /// The bin of a number. `NaN` goes to the missing bin. For a categorical binning the number
    /// is looked up as its text (`Display`: `3.0` is `"3"`), so numeric codes match categories.
    pub fn bin_of_number(&self, v: f64) -> usize {
        if v.is_nan() {
            return self.missing_bin();
        }
        match &self.bins {
            Bins::Numeric { upper_edges } => upper_edges.partition_point(|&e| e < v),
            Bins::Categorical { .. } => self.bin_of_text(Some(&v.to_string())),
        }
    }

    /// The bin of a text value. `None` goes to the missing bin. Categorical: a category never
    /// seen when fitting goes to the `other` group if there is one, else to the missing bin.
    /// Numeric: the text is parsed as a number; empty or unparseable text is missing.
    pub fn bin_of_text(&self, v: Option<&str>) -> usize {
        let Some(text) = v else {
            return self.missing_bin();
        };
        match &self.bins {
            Bins::Numeric { .. } => match text.trim().parse::<f64>() {
                Ok(x) => self.bin_of_number(x),
                Err(_) => self.missing_bin(),
            },
            Bins::Categorical { groups, other } => groups
                .iter()
                .position(|g| g.iter().any(|c| c == text))
                .or(*other)
                .unwrap_or(self.missing_bin()),
        }
    }

    /// Bin index of every value of a numeric column.
    pub fn bin_numbers(&self, values: &[f64]) -> Vec<u32> {
        values
            .iter()
            .map(|&v| self.bin_of_number(v) as u32)
            .collect()
    }

    /// Bin index of every value of a text column (one lookup table for the whole column).
    pub fn bin_texts<S: AsRef<str>>(&self, values: &[Option<S>]) -> Vec<u32> {
        match &self.bins {
            Bins::Numeric { .. } => values
                .iter()
                .map(|v| self.bin_of_text(v.as_ref().map(|s| s.as_ref())) as u32)
                .collect(),
            Bins::Categorical { groups, other } => {
                let table: HashMap<&str, usize> = groups
                    .iter()
                    .enumerate()
                    .flat_map(|(j, g)| g.iter().map(move |c| (c.as_str(), j)))
                    .collect();
                let unseen = other.unwrap_or(self.missing_bin());
                values
                    .iter()
                    .map(|v| match v {
                        None => self.missing_bin() as u32,
                        Some(s) => table.get(s.as_ref()).copied().unwrap_or(unseen) as u32,
                    })
                    .collect()
            }
        }
    }

    /// Human-readable bins, in bin order: `"(-inf, 3.5]"`, `"(3.5, 7]"`, `"(7, +inf)"`,
    /// `"{a, b}"`, `"{c, d} + other"` (the group of rare and unseen categories), `"missing"`.
    pub fn bin_labels(&self) -> Vec<String> {
        let mut out = match &self.bins {
            Bins::Numeric { upper_edges } => {
                let mut v = Vec::with_capacity(upper_edges.len() + 2);
                let mut lower = "-inf".to_string();
                for e in upper_edges {
                    v.push(format!("({lower}, {e}]"));
                    lower = e.to_string();
                }
                v.push(format!("({lower}, +inf)"));
                v
            }
            Bins::Categorical { groups, other } => groups
                .iter()
                .enumerate()
                .map(|(j, g)| {
                    let set = format!("{{{}}}", g.join(", "));
                    if *other == Some(j) {
                        format!("{set} + other")
                    } else {
                        set
                    }
                })
                .collect(),
        };
        out.push("missing".to_string());
        out
    }
}

fn check_labels(feature: &str, rows: usize, labels: &[f64]) -> Result<(), BinningError> {
    if labels.len() != rows {
        return Err(BinningError::LabelCount {
            feature: feature.to_string(),
            rows,
            labels: labels.len(),
        });
    }
    if let Some((row, &value)) = labels
        .iter()
        .enumerate()
        .find(|(_, y)| **y != 0.0 && **y != 1.0)
    {
        return Err(BinningError::BadLabel {
            feature: feature.to_string(),
            row,
            value,
        });
    }
    Ok(())
}

/// Per-bin counts of a binned column (labels already checked to be 0/1).
fn counts(bins: &[u32], labels: &[f64], n_bins: usize) -> Vec<BinStats> {
    let mut out = vec![BinStats::default(); n_bins];
    for (&b, &y) in bins.iter().zip(labels) {
        let s = &mut out[b as usize];
        s.total += 1;
        s.bad += (y == 1.0) as u64;
    }
    out
}

/// Fits the bins of a numeric feature (`NaN` = missing; infinite values are refused).
///
/// `labels` (0 = good, 1 = bad, one per value) are needed by [`BinMethod::Optimal`] only; the
/// other methods ignore them.
pub fn fit_numeric(
    feature: &str,
    values: &[f64],
    labels: Option<&[f64]>,
    params: &BinningParams,
) -> Result<FeatureBinning, BinningError> {
    params.validate().map_err(BinningError::Params)?;
    if let Some((row, &value)) = values.iter().enumerate().find(|(_, v)| v.is_infinite()) {
        return Err(BinningError::NonFinite {
            feature: feature.to_string(),
            row,
            value,
        });
    }
    if let Some(y) = labels {
        check_labels(feature, values.len(), y)?;
    }
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    let points = distinct_points(&sorted);
    let edges = match params.method {
        BinMethod::Quantile => quantile_edges(&points, params.max_bins),
        BinMethod::EqualWidth => equal_width_edges(&points, params.max_bins),
        BinMethod::Optimal => quantile_edges(&points, params.fine_bins),
    };
    let fine = FeatureBinning {
        feature: feature.to_string(),
        bins: Bins::Numeric { upper_edges: edges },
    };
    if params.method != BinMethod::Optimal {
        return Ok(fine);
    }
    let labels = labels.ok_or_else(|| BinningError::LabelsRequired {
        feature: feature.to_string(),
    })?;
    let stats = counts(&fine.bin_numbers(values), labels, fine.n_bins());
    merge_to_monotonic(&fine, &stats, params)
}

/// Fits the bins of a categorical feature (`None` = missing).
///
/// Quantile and equal width give one bin per category; categories below
/// `rare_category_share` of the rows go to one "other" group, and so do the least frequent
/// ones while there are more than `max_bins` groups. Value bins are in alphabetical order with
/// the other group last. Optimal (needs labels) merges groups by bad rate (see the module
/// documentation).
pub fn fit_categorical<S: AsRef<str>>(
    feature: &str,
    values: &[Option<S>],
    labels: Option<&[f64]>,
    params: &BinningParams,
) -> Result<FeatureBinning, BinningError> {
    params.validate().map_err(BinningError::Params)?;
    if let Some(y) = labels {
        check_labels(feature, values.len(), y)?;
    }
    let mut freq: HashMap<&str, u64> = HashMap::new();
    for v in values.iter().flatten() {
        *freq.entry(v.as_ref()).or_default() += 1;
    }
    let n = values.len() as f64;
    let limit = match params.method {
        BinMethod::Optimal => params.fine_bins,
        _ => params.max_bins,
    };
    let mut by_freq: Vec<(&str, u64)> = freq.into_iter().collect();
    // Most frequent first, ties by name: deterministic.
    by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut frequent: Vec<String> = Vec::new();
    let mut rare: Vec<String> = Vec::new();
    for (c, count) in &by_freq {
        if (*count as f64) < params.rare_category_share * n {
            rare.push(c.to_string());
        } else {
            frequent.push(c.to_string());
        }
    }
    // Room for the other group when there are rare categories or too many frequent ones.
    if frequent.len() > limit || (!rare.is_empty() && frequent.len() >= limit) {
        let keep = limit - 1;
        rare.extend(frequent.drain(keep..));
    }
    frequent.sort();
    rare.sort();
    let mut groups: Vec<Vec<String>> = frequent.into_iter().map(|c| vec![c]).collect();
    let other = if rare.is_empty() {
        None
    } else {
        groups.push(rare);
        Some(groups.len() - 1)
    };
    let fine = FeatureBinning {
        feature: feature.to_string(),
        bins: Bins::Categorical { groups, other },
    };
    if params.method != BinMethod::Optimal {
        return Ok(fine);
    }
    let labels = labels.ok_or_else(|| BinningError::LabelsRequired {
        feature: feature.to_string(),
    })?;
    let stats = counts(&fine.bin_texts(values), labels, fine.n_bins());
    merge_to_monotonic(&fine, &stats, params)
}

/// Sorted distinct values with their multiplicities.
fn distinct_points(sorted: &[f64]) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = Vec::new();
    for &v in sorted {
        match out.last_mut() {
            // -0.0 and 0.0 are one value.
            Some(last) if last.0 == v => last.1 += 1,
            _ => out.push((v, 1)),
        }
    }
    out
}

/// Quantile edges over distinct values with multiplicities (see the module documentation):
/// each bin is cut where its size is closest to `remaining rows / remaining bins`.
fn quantile_edges(points: &[(f64, u64)], max_bins: usize) -> Vec<f64> {
    if points.len() <= max_bins {
        return points
            .iter()
            .take(points.len().saturating_sub(1))
            .map(|p| p.0)
            .collect();
    }
    let mut remaining: u64 = points.iter().map(|p| p.1).sum();
    let mut edges: Vec<f64> = Vec::with_capacity(max_bins - 1);
    let mut current = 0u64;
    let last = points.len() - 1;
    for (i, &(v, w)) in points.iter().enumerate() {
        if max_bins - edges.len() <= 1 {
            break;
        }
        let target = remaining as f64 / (max_bins - edges.len()) as f64;
        // Cut before this value when the bin is closer to the target without it.
        let without = target - current as f64;
        let with = (current + w) as f64 - target;
        if current > 0 && with > 0.0 && without < with {
            edges.push(points[i - 1].0);
            remaining -= current;
            current = 0;
            if max_bins - edges.len() <= 1 {
                break;
            }
        }
        current += w;
        let target = remaining as f64 / (max_bins - edges.len()) as f64;
        if current as f64 >= target && i < last {
            edges.push(v);
            remaining -= current;
            current = 0;
        }
    }
    edges
}

fn equal_width_edges(points: &[(f64, u64)], max_bins: usize) -> Vec<f64> {
    let (Some(&(lo, _)), Some(&(hi, _))) = (points.first(), points.last()) else {
        return Vec::new();
    };
    if lo >= hi {
        return Vec::new();
    }
    let width = (hi - lo) / max_bins as f64;
    let mut edges: Vec<f64> = Vec::with_capacity(max_bins - 1);
    for k in 1..max_bins {
        let e = lo + width * k as f64;
        if e.is_finite() && e < hi && edges.last().is_none_or(|&l| l < e) {
            edges.push(e);
        }
    }
    edges
}

/// Which fine value bins form each merged value bin; the missing bin is kept as it is and comes
/// last, as always.
///
/// For a numeric binning every group is a run of consecutive bins and the groups are in order;
/// for a categorical one a group may join any fine groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergePlan {
    pub groups: Vec<Vec<usize>>,
}

impl MergePlan {
    /// Counts of the merged bins (value bins, then the missing bin) from the fine bins' counts
    /// (`fine` includes the missing bin, last). Fails when the plan does not fit the counts.
    pub fn merged_stats(&self, fine: &[BinStats]) -> Result<Vec<BinStats>, String> {
        let Some((missing, values)) = fine.split_last() else {
            return Err("no bins (not even the missing bin)".into());
        };
        self.check(values.len(), false)?;
        let mut out: Vec<BinStats> = self
            .groups
            .iter()
            .map(|g| {
                g.iter().fold(BinStats::default(), |acc, &i| BinStats {
                    total: acc.total + values[i].total,
                    bad: acc.bad + values[i].bad,
                })
            })
            .collect();
        out.push(*missing);
        Ok(out)
    }

    /// Checks that the groups partition `0..value_bins` (and are ordered runs if `ordered`).
    pub fn check(&self, value_bins: usize, ordered: bool) -> Result<(), String> {
        let mut seen = vec![false; value_bins];
        let mut next = 0usize;
        for (j, g) in self.groups.iter().enumerate() {
            if g.is_empty() {
                return Err(format!("group {j} is empty"));
            }
            for (k, &i) in g.iter().enumerate() {
                if i >= value_bins {
                    return Err(format!(
                        "group {j} names bin {i}, but there are {value_bins} value bins"
                    ));
                }
                if seen[i] {
                    return Err(format!("bin {i} is in two groups"));
                }
                seen[i] = true;
                if ordered && i != next {
                    return Err(format!(
                        "group {j} (position {k}) is not a run of consecutive bins in order"
                    ));
                }
                next = i + 1;
            }
        }
        if let Some(i) = seen.iter().position(|s| !s) {
            return Err(format!("bin {i} is in no group"));
        }
        Ok(())
    }
}

/// A run of fine bins being merged.
#[derive(Clone, Debug)]
struct Segment {
    members: Vec<usize>,
    total: u64,
    bad: u64,
}

impl Segment {
    fn rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.bad as f64 / self.total as f64
        }
    }
}

/// Chi-square statistic of the 2×2 table (two bins × bad/good); 0 when a margin is empty.
fn chi_square(a: &Segment, b: &Segment) -> f64 {
    let (a1, a0) = (a.bad as f64, (a.total - a.bad) as f64);
    let (b1, b0) = (b.bad as f64, (b.total - b.bad) as f64);
    let n = a1 + a0 + b1 + b0;
    let denom = (a1 + a0) * (b1 + b0) * (a1 + b1) * (a0 + b0);
    if denom == 0.0 {
        return 0.0;
    }
    let d = a1 * b0 - a0 * b1;
    n * d * d / denom
}

/// The merge plan of [`BinMethod::Optimal`], from per-bin counts only.
///
/// `stats` has one entry per bin of the fine binning, the missing bin last (its counts count
/// towards the total for `min_bin_share` but it is never merged). `ordered` is true for numeric
/// bins (only neighbours merge, the bad rate must become monotonic in the given [`Trend`]) and
/// false for categories (they are first sorted by bad rate, then merged as neighbours; the
/// trend does not apply). Empty bins are always merged. Deterministic: ties go to the lowest
/// position.
pub fn merge_plan(stats: &[BinStats], ordered: bool, params: &BinningParams) -> MergePlan {
    let Some((_, values)) = stats.split_last() else {
        return MergePlan { groups: Vec::new() };
    };
    let all_rows: u64 = stats.iter().map(|s| s.total).sum();
    let mut order: Vec<usize> = (0..values.len()).collect();
    if !ordered {
        let rate = |i: usize| {
            let s = values[i];
            if s.total == 0 {
                f64::INFINITY
            } else {
                s.bad as f64 / s.total as f64
            }
        };
        order.sort_by(|&a, &b| rate(a).total_cmp(&rate(b)).then(a.cmp(&b)));
    }
    let mut segs: Vec<Segment> = order
        .iter()
        .map(|&i| Segment {
            members: vec![i],
            total: values[i].total,
            bad: values[i].bad,
        })
        .collect();
    let merge = |segs: &mut Vec<Segment>, i: usize| {
        let right = segs.remove(i + 1);
        let left = &mut segs[i];
        left.members.extend(right.members);
        left.total += right.total;
        left.bad += right.bad;
    };
    // Empty bins first: into the left neighbour (the right one for the first bin).
    while segs.len() > 1 {
        match segs.iter().position(|s| s.total == 0) {
            Some(0) => merge(&mut segs, 0),
            Some(i) => merge(&mut segs, i - 1),
            None => break,
        }
    }
    let increasing = match (ordered, params.trend) {
        (false, _) | (true, Trend::Increasing) => true,
        (true, Trend::Decreasing) => false,
        (true, Trend::Auto) => {
            let n: f64 = segs.iter().map(|s| s.total as f64).sum();
            let mean_pos = segs
                .iter()
                .enumerate()
                .map(|(i, s)| i as f64 * s.total as f64)
                .sum::<f64>()
                / n.max(1.0);
            let mean_rate = segs.iter().map(|s| s.bad as f64).sum::<f64>() / n.max(1.0);
            let cov: f64 = segs
                .iter()
                .enumerate()
                .map(|(i, s)| s.total as f64 * (i as f64 - mean_pos) * (s.rate() - mean_rate))
                .sum();
            cov >= 0.0
        }
    };
    let min_rows = params.min_bin_share * all_rows as f64;
    loop {
        if segs.len() <= 1 {
            break;
        }
        let chi: Vec<f64> = segs.windows(2).map(|w| chi_square(&w[0], &w[1])).collect();
        let lowest = |candidates: &mut dyn Iterator<Item = usize>| {
            candidates.min_by(|&a, &b| chi[a].total_cmp(&chi[b]).then(a.cmp(&b)))
        };
        // 1. Monotonicity: the most similar violating pair.
        let violating = lowest(&mut (0..chi.len()).filter(|&i| {
            let (a, b) = (segs[i].rate(), segs[i + 1].rate());
            if increasing { a >= b } else { a <= b }
        }));
        if let Some(i) = violating {
            merge(&mut segs, i);
            continue;
        }
        // 2. Size: the smallest bin under the share joins its more similar neighbour.
        let small = (0..segs.len())
            .filter(|&i| (segs[i].total as f64) < min_rows)
            .min_by(|&a, &b| segs[a].total.cmp(&segs[b].total).then(a.cmp(&b)));
        if let Some(i) = small {
            let pair = if i == 0 {
                0
            } else if i == segs.len() - 1 || chi[i - 1] <= chi[i] {
                i - 1
            } else {
                i
            };
            merge(&mut segs, pair);
            continue;
        }
        // 3. Count: the most similar pair.
        if segs.len() > params.max_bins
            && let Some(i) = lowest(&mut (0..chi.len()))
        {
            merge(&mut segs, i);
            continue;
        }
        break;
    }
    let mut groups: Vec<Vec<usize>> = segs.into_iter().map(|s| s.members).collect();
    if !ordered {
        for g in &mut groups {
            g.sort_unstable();
        }
    }
    MergePlan { groups }
}

/// The binning made of `binning`'s value bins joined as `plan` says (missing bin unchanged).
///
/// Numeric: a group's upper edge is the upper edge of its last fine bin; groups must be ordered
/// runs. Categorical: a group's categories are those of its fine groups (in plan order), and
/// the group that receives the fine `other` group becomes `other`.
pub fn apply_merge_plan(
    binning: &FeatureBinning,
    plan: &MergePlan,
) -> Result<FeatureBinning, BinningError> {
    let bad = |reason: String| BinningError::BadPlan {
        feature: binning.feature.clone(),
        reason,
    };
    plan.check(binning.n_value_bins(), binning.is_numeric())
        .map_err(bad)?;
    let bins = match &binning.bins {
        Bins::Numeric { upper_edges } => Bins::Numeric {
            upper_edges: plan
                .groups
                .iter()
                .take(plan.groups.len().saturating_sub(1))
                .filter_map(|g| g.last().and_then(|&i| upper_edges.get(i).copied()))
                .collect(),
        },
        Bins::Categorical { groups, other } => Bins::Categorical {
            groups: plan
                .groups
                .iter()
                .map(|g| g.iter().flat_map(|&i| groups[i].iter().cloned()).collect())
                .collect(),
            other: other.and_then(|o| plan.groups.iter().position(|g| g.contains(&o))),
        },
    };
    Ok(FeatureBinning {
        feature: binning.feature.clone(),
        bins,
    })
}

/// [`merge_plan`] and [`apply_merge_plan`] in one step: the optimal binning made from a fine
/// binning and its per-bin counts (`stats`: one per bin, missing bin last).
pub fn merge_to_monotonic(
    binning: &FeatureBinning,
    stats: &[BinStats],
    params: &BinningParams,
) -> Result<FeatureBinning, BinningError> {
    params.validate().map_err(BinningError::Params)?;
    if stats.len() != binning.n_bins() {
        return Err(BinningError::StatsCount {
            feature: binning.feature.clone(),
            expected: binning.n_bins(),
            got: stats.len(),
        });
    }
    let plan = merge_plan(stats, binning.is_numeric(), params);
    apply_merge_plan(binning, &plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(b: &FeatureBinning) -> &[f64] {
        match &b.bins {
            Bins::Numeric { upper_edges } => upper_edges,
            _ => panic!("numeric"),
        }
    }

    #[test]
    fn few_distinct_values_get_one_bin_each_and_nan_the_last_bin() {
        let b = fit_numeric(
            "x",
            &[3.0, 1.0, 2.0, f64::NAN, 1.0],
            None,
            &BinningParams::default(),
        )
        .unwrap();
        assert_eq!(edges(&b), &[1.0, 2.0]);
        assert_eq!(b.n_bins(), 4);
        assert_eq!(b.missing_bin(), 3);
        assert_eq!(
            [1.0, 1.5, 2.0, 3.0, 99.0, f64::NAN].map(|v| b.bin_of_number(v)),
            [0, 1, 1, 2, 2, 3]
        );
        assert_eq!(
            b.bin_labels(),
            ["(-inf, 1]", "(1, 2]", "(2, +inf)", "missing"]
        );
    }

    #[test]
    fn quantile_bins_are_about_equal() {
        let values: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let b = fit_numeric("x", &values, None, &BinningParams::default()).unwrap();
        assert_eq!(b.n_value_bins(), 10);
        let mut sizes = vec![0; b.n_bins()];
        for &v in &values {
            sizes[b.bin_of_number(v)] += 1;
        }
        assert_eq!(&sizes[..10], &[100; 10]);
        assert_eq!(sizes[10], 0);
    }

    #[test]
    fn equal_width_edges() {
        let params = BinningParams {
            method: BinMethod::EqualWidth,
            max_bins: 4,
            ..BinningParams::default()
        };
        let b = fit_numeric("x", &[0.0, 1.0, 8.0, 2.0], None, &params).unwrap();
        assert_eq!(edges(&b), &[2.0, 4.0, 6.0]);
        assert_eq!(b.bin_of_number(2.0), 0);
        assert_eq!(b.bin_of_number(2.5), 1);
        assert_eq!(b.bin_of_number(8.0), 3);
    }

    #[test]
    fn infinite_values_are_refused_naming_feature_and_row() {
        let err = fit_numeric(
            "income",
            &[1.0, f64::INFINITY],
            None,
            &BinningParams::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "feature 'income': row 1 holds inf; only finite numbers or NaN (missing) can be binned"
        );
    }

    #[test]
    fn chi_square_of_identical_rates_is_zero() {
        let s = |total, bad| Segment {
            members: vec![],
            total,
            bad,
        };
        assert_eq!(chi_square(&s(10, 2), &s(20, 4)), 0.0);
        // a = 10 bad / 0 good, b = 0 bad / 10 good: N = 20, chi² = 20.
        assert!((chi_square(&s(10, 10), &s(10, 0)) - 20.0).abs() < 1e-12);
    }
}
