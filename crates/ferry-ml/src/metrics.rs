//! Evaluation metrics shared by every algorithm and the evaluation component.
//!
//! Binary metrics take scores (probabilities or any monotone score) and 0/1 labels.
//! Ties in scores are handled exactly: AUC counts a tied positive/negative pair as one half,
//! and ROC/KS curves step over all tied scores at once, as does the KS table
//! ([`score_bin_table`]), whose bins never split a group of tied scores.
//!
//! The population stability index lives in [`crate::stability`].

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricError {
    #[error("{0} scores for {1} labels")]
    LengthMismatch(usize, usize),
    #[error("no samples to evaluate")]
    Empty,
    #[error("{0} needs both positive and negative labels")]
    OneClass(&'static str),
    #[error("label {0} is not 0 or 1")]
    NotBinary(String),
    #[error("bins must be at least {min}, got {got}")]
    BadBins { got: usize, min: usize },
    #[error("bins must be at most {max}, got {got}")]
    TooManyBins { got: usize, max: usize },
    #[error("{what} at index {index} is {value}, not a finite number")]
    NotFinite {
        what: &'static str,
        index: usize,
        value: String,
    },
}

fn check(scores: &[f64], labels: &[f64]) -> Result<(), MetricError> {
    if scores.len() != labels.len() {
        return Err(MetricError::LengthMismatch(scores.len(), labels.len()));
    }
    if scores.is_empty() {
        return Err(MetricError::Empty);
    }
    if let Some(l) = labels.iter().find(|&&l| l != 0.0 && l != 1.0) {
        return Err(MetricError::NotBinary(l.to_string()));
    }
    Ok(())
}

/// One point of a ROC curve: false-positive rate, true-positive rate, and the score threshold
/// (samples with score ≥ threshold are predicted positive).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    pub fpr: f64,
    pub tpr: f64,
    pub threshold: f64,
}

/// ROC curve from the highest threshold down, starting at (0, 0) and ending at (1, 1).
pub fn roc_curve(scores: &[f64], labels: &[f64]) -> Result<Vec<RocPoint>, MetricError> {
    check(scores, labels)?;
    let pos = labels.iter().filter(|&&l| l == 1.0).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Err(MetricError::OneClass("ROC"));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = vec![RocPoint {
        fpr: 0.0,
        tpr: 0.0,
        threshold: f64::INFINITY,
    }];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if labels[order[i]] == 1.0 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        points.push(RocPoint {
            fpr: fp / neg,
            tpr: tp / pos,
            threshold: s,
        });
    }
    Ok(points)
}

/// Area under the ROC curve (trapezoids over tied groups = Mann–Whitney U with half credit
/// for ties).
pub fn auc(scores: &[f64], labels: &[f64]) -> Result<f64, MetricError> {
    let roc = roc_curve(scores, labels)?;
    Ok(roc
        .windows(2)
        .map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0)
        .sum())
}

/// One point of a KS curve: threshold and the cumulative positive / negative rates above it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KsPoint {
    pub threshold: f64,
    pub tpr: f64,
    pub fpr: f64,
}

/// Kolmogorov–Smirnov statistic `max(TPR - FPR)` and the curve it is read from.
pub fn ks(scores: &[f64], labels: &[f64]) -> Result<(f64, Vec<KsPoint>), MetricError> {
    let roc = roc_curve(scores, labels)?;
    let curve: Vec<KsPoint> = roc
        .iter()
        .map(|p| KsPoint {
            threshold: p.threshold,
            tpr: p.tpr,
            fpr: p.fpr,
        })
        .collect();
    let stat = curve.iter().map(|p| p.tpr - p.fpr).fold(0.0, f64::max);
    Ok((stat, curve))
}

/// Counts at one threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    pub fn_: u64,
}

impl Confusion {
    pub fn at(scores: &[f64], labels: &[f64], threshold: f64) -> Result<Self, MetricError> {
        check(scores, labels)?;
        let mut c = Confusion::default();
        for (&s, &l) in scores.iter().zip(labels) {
            match (s >= threshold, l == 1.0) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        Ok(c)
    }

    pub fn accuracy(&self) -> f64 {
        (self.tp + self.tn) as f64 / (self.tp + self.tn + self.fp + self.fn_).max(1) as f64
    }

    /// Precision; 0 when nothing is predicted positive.
    pub fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            0.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        }
    }

    pub fn recall(&self) -> f64 {
        if self.tp + self.fn_ == 0 {
            0.0
        } else {
            self.tp as f64 / (self.tp + self.fn_) as f64
        }
    }

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

/// Mean binary cross-entropy of probabilities (clipped to `[1e-15, 1 - 1e-15]`).
pub fn log_loss(probs: &[f64], labels: &[f64]) -> Result<f64, MetricError> {
    check(probs, labels)?;
    let eps = 1e-15;
    let total: f64 = probs
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = p.clamp(eps, 1.0 - eps);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum();
    Ok(total / probs.len() as f64)
}

/// Lift of the top `fraction` of samples by score: their positive rate over the overall rate.
pub fn lift(scores: &[f64], labels: &[f64], fraction: f64) -> Result<f64, MetricError> {
    check(scores, labels)?;
    let pos = labels.iter().sum::<f64>();
    if pos == 0.0 {
        return Err(MetricError::OneClass("lift"));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let k = ((scores.len() as f64 * fraction).ceil() as usize).clamp(1, scores.len());
    let top_rate = order[..k].iter().map(|&i| labels[i]).sum::<f64>() / k as f64;
    Ok(top_rate / (pos / scores.len() as f64))
}

fn check_reg(pred: &[f64], truth: &[f64]) -> Result<(), MetricError> {
    if pred.len() != truth.len() {
        return Err(MetricError::LengthMismatch(pred.len(), truth.len()));
    }
    if pred.is_empty() {
        return Err(MetricError::Empty);
    }
    Ok(())
}

pub fn rmse(pred: &[f64], truth: &[f64]) -> Result<f64, MetricError> {
    check_reg(pred, truth)?;
    Ok((pred
        .iter()
        .zip(truth)
        .map(|(p, t)| (p - t).powi(2))
        .sum::<f64>()
        / pred.len() as f64)
        .sqrt())
}

pub fn mae(pred: &[f64], truth: &[f64]) -> Result<f64, MetricError> {
    check_reg(pred, truth)?;
    Ok(pred
        .iter()
        .zip(truth)
        .map(|(p, t)| (p - t).abs())
        .sum::<f64>()
        / pred.len() as f64)
}

/// Coefficient of determination; `1 - SS_res / SS_tot` (0 when the truth is constant and the
/// prediction matches it is reported as 1).
pub fn r2(pred: &[f64], truth: &[f64]) -> Result<f64, MetricError> {
    check_reg(pred, truth)?;
    let mean = truth.iter().sum::<f64>() / truth.len() as f64;
    let ss_tot: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
    let ss_res: f64 = pred.iter().zip(truth).map(|(p, t)| (p - t).powi(2)).sum();
    if ss_tot == 0.0 {
        return Ok(if ss_res == 0.0 { 1.0 } else { 0.0 });
    }
    Ok(1.0 - ss_res / ss_tot)
}

/// Fraction of rows whose highest-scoring class (row-major `n × k` scores) is the label.
pub fn multiclass_accuracy(
    scores: &[f64],
    n_classes: usize,
    labels: &[f64],
) -> Result<f64, MetricError> {
    if n_classes == 0 || scores.len() != labels.len() * n_classes {
        return Err(MetricError::LengthMismatch(
            scores.len(),
            labels.len() * n_classes.max(1),
        ));
    }
    if labels.is_empty() {
        return Err(MetricError::Empty);
    }
    let correct = scores
        .chunks_exact(n_classes)
        .zip(labels)
        .filter(|(row, y)| argmax(row) == **y as usize)
        .count();
    Ok(correct as f64 / labels.len() as f64)
}

/// Index of the largest value (the first one on ties).
pub fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// The probability at or above which a row counts as positive unless told otherwise.
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// The usual binary-classification report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinaryReport {
    pub auc: f64,
    pub ks: f64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub log_loss: f64,
    pub lift_top_decile: f64,
    /// The probability at or above which a row counts as positive for accuracy, precision,
    /// recall and F1 (AUC, KS, log loss and lift do not depend on it).
    pub threshold: f64,
}

impl BinaryReport {
    /// All binary metrics of probabilities at [`DEFAULT_THRESHOLD`].
    pub fn compute(probs: &[f64], labels: &[f64]) -> Result<Self, MetricError> {
        Self::compute_at(probs, labels, DEFAULT_THRESHOLD)
    }

    /// All binary metrics, with the confusion-based ones at `threshold`.
    pub fn compute_at(probs: &[f64], labels: &[f64], threshold: f64) -> Result<Self, MetricError> {
        let c = Confusion::at(probs, labels, threshold)?;
        Ok(BinaryReport {
            threshold,
            auc: auc(probs, labels)?,
            ks: ks(probs, labels)?.0,
            accuracy: c.accuracy(),
            precision: c.precision(),
            recall: c.recall(),
            f1: c.f1(),
            log_loss: log_loss(probs, labels)?,
            lift_top_decile: lift(probs, labels, 0.1)?,
        })
    }
}

/// Bins of the KS table unless told otherwise: deciles.
pub const DEFAULT_SCORE_BINS: usize = 10;

/// One row of the KS table ([`score_bin_table`]).
///
/// Rows go from the highest scores down, like the thresholds of [`ks`]: bin 0 holds the rows
/// with the highest scores, which are the riskiest when the score rises with the probability
/// of the positive (bad, label 1) class. The cumulative shares count this bin and every bin
/// above it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreBin {
    /// 0 for the highest scores.
    pub bin: usize,
    /// Lowest and highest score in the bin (both inclusive).
    pub min_score: f64,
    pub max_score: f64,
    pub count: u64,
    /// Rows with label 1.
    pub bad: u64,
    /// Rows with label 0.
    pub good: u64,
    /// `bad / count`.
    pub bad_rate: f64,
    /// Share of all bad rows in this bin and the bins above (the TPR at threshold
    /// `min_score`).
    pub cum_bad_share: f64,
    /// Share of all good rows in this bin and the bins above (the FPR at threshold
    /// `min_score`).
    pub cum_good_share: f64,
    /// `cum_bad_share - cum_good_share`: the KS distance at the lower edge of this bin. Signed:
    /// negative where the score has so far put more goods than bads above the threshold.
    pub ks: f64,
}

/// The KS (gains) table: rows sorted by score from the highest down and cut into about `bins`
/// groups of equal size (deciles for [`DEFAULT_SCORE_BINS`]), with counts, bad rates and the
/// cumulative bad and good shares at each cut.
///
/// Ties: a group of equal scores is never split, so every row is counted in exactly one bin
/// and each cut is a threshold of [`ks`]'s curve. A bin ends at the first tie-group boundary
/// at or after its target rank `⌈(k+1)·n/bins⌉`; a large tie group that crosses several
/// targets makes one bin, so the table can have fewer than `bins` rows (never more). Hence the
/// largest `ks` of the table is at most [`ks`]'s statistic, and equal to it when every group
/// of tied scores ends a bin, which `bins >= scores.len()` guarantees (then the targets step
/// by at most one row).
///
/// For scores that rise as risk falls (scorecard points), pass the negated scores.
pub fn score_bin_table(
    scores: &[f64],
    labels: &[f64],
    bins: usize,
) -> Result<Vec<ScoreBin>, MetricError> {
    check(scores, labels)?;
    if bins == 0 {
        return Err(MetricError::BadBins { got: bins, min: 1 });
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(MetricError::NotFinite {
            what: "score",
            index: i,
            value: scores[i].to_string(),
        });
    }
    let n = scores.len();
    // More bins than rows cut at every tie group, exactly as `n` bins do.
    let bins = bins.min(n);
    let total_bad = labels.iter().filter(|&&l| l == 1.0).count() as u64;
    let total_good = n as u64 - total_bad;
    if total_bad == 0 || total_good == 0 {
        return Err(MetricError::OneClass("the KS table"));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    // Row count at which bin k should end (ceil((k+1)·n / bins)).
    let target = |k: usize| ((k + 1) * n).div_ceil(bins);

    let mut table = Vec::new();
    let (mut cum_bad, mut cum_good) = (0u64, 0u64);
    let mut k = 0;
    let mut start = 0;
    let mut i = 0;
    while i < n {
        let s = scores[order[i]];
        while i < n && scores[order[i]] == s {
            i += 1;
        }
        if i < n && i < target(k) {
            continue;
        }
        let rows = &order[start..i];
        let bad = rows.iter().filter(|&&r| labels[r] == 1.0).count() as u64;
        let good = rows.len() as u64 - bad;
        cum_bad += bad;
        cum_good += good;
        let cum_bad_share = cum_bad as f64 / total_bad as f64;
        let cum_good_share = cum_good as f64 / total_good as f64;
        table.push(ScoreBin {
            bin: table.len(),
            min_score: scores[order[i - 1]],
            max_score: scores[order[start]],
            count: rows.len() as u64,
            bad,
            good,
            bad_rate: bad as f64 / rows.len() as f64,
            cum_bad_share,
            cum_good_share,
            ks: cum_bad_share - cum_good_share,
        });
        start = i;
        while k < bins && target(k) <= i {
            k += 1;
        }
    }
    Ok(table)
}

/// The usual regression report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegressionReport {
    pub rmse: f64,
    pub mae: f64,
    pub r2: f64,
}

impl RegressionReport {
    pub fn compute(pred: &[f64], truth: &[f64]) -> Result<Self, MetricError> {
        Ok(RegressionReport {
            rmse: rmse(pred, truth)?,
            mae: mae(pred, truth)?,
            r2: r2(pred, truth)?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const S: [f64; 6] = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4];
    const Y: [f64; 6] = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0];

    #[test]
    fn auc_by_hand() {
        // Positives at ranks 1, 2, 4 (from the top); pairs (pos, neg) ordered correctly:
        // 0.9 beats 3 negatives, 0.8 beats 3, 0.6 beats 2 → 8 of 9.
        assert!((auc(&S, &Y).unwrap() - 8.0 / 9.0).abs() < 1e-12);
        // A tie between a positive and a negative counts one half.
        assert!((auc(&[0.5, 0.5], &[1.0, 0.0]).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(
            auc(&[0.1, 0.2], &[1.0, 1.0]).unwrap_err(),
            MetricError::OneClass("ROC")
        );
    }

    #[test]
    fn ks_by_hand() {
        // Thresholds: after 0.8 → TPR 2/3, FPR 0 → 0.667; after 0.6 → 1 - 1/3 = 0.667.
        let (stat, curve) = ks(&S, &Y).unwrap();
        assert!((stat - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(curve.len(), 7);
        assert_eq!(curve.last().unwrap().tpr, 1.0);
    }

    #[test]
    fn confusion_metrics_by_hand() {
        // Threshold 0.65: predicted positive 0.9, 0.8, 0.7 → TP 2, FP 1, FN 1, TN 2.
        let c = Confusion::at(&S, &Y, 0.65).unwrap();
        assert_eq!(
            c,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 2,
                fn_: 1
            }
        );
        assert!((c.accuracy() - 4.0 / 6.0).abs() < 1e-12);
        assert!((c.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.recall() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.f1() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn log_loss_and_lift_by_hand() {
        let ll = log_loss(&[0.8, 0.3], &[1.0, 0.0]).unwrap();
        assert!((ll - (-(0.8f64.ln()) - 0.7f64.ln()) / 2.0).abs() < 1e-12);
        // Top 1/3 (2 samples: 0.9, 0.8) are both positive; base rate 1/2 → lift 2.
        assert!((lift(&S, &Y, 1.0 / 3.0).unwrap() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn regression_by_hand() {
        let p = [2.0, 4.0, 6.0];
        let t = [1.0, 4.0, 8.0];
        assert!((rmse(&p, &t).unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((mae(&p, &t).unwrap() - 1.0).abs() < 1e-12);
        // mean 13/3; SS_tot = (10/3)² + (1/3)² + (11/3)² = 222/9; SS_res = 5.
        assert!((r2(&p, &t).unwrap() - (1.0 - 5.0 / (222.0 / 9.0))).abs() < 1e-12);
    }

    #[test]
    fn multiclass_accuracy_by_hand() {
        let scores = [0.1, 0.7, 0.2, 0.5, 0.3, 0.2, 0.2, 0.2, 0.6];
        assert!(
            (multiclass_accuracy(&scores, 3, &[1.0, 0.0, 0.0]).unwrap() - 2.0 / 3.0).abs() < 1e-12
        );
    }

    #[test]
    fn mismatched_inputs_are_errors() {
        assert_eq!(
            auc(&[0.1], &[1.0, 0.0]).unwrap_err(),
            MetricError::LengthMismatch(1, 2)
        );
        assert_eq!(
            auc(&[0.1, 0.2], &[1.0, 2.0]).unwrap_err(),
            MetricError::NotBinary("2".into())
        );
        assert_eq!(rmse(&[], &[]).unwrap_err(), MetricError::Empty);
    }

    #[test]
    fn the_threshold_decides_the_confusion_metrics_only() {
        let probs = [0.1, 0.4, 0.6, 0.35, 0.8, 0.2];
        let labels = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0];
        let at_half = BinaryReport::compute(&probs, &labels).unwrap();
        let at_third = BinaryReport::compute_at(&probs, &labels, 0.3).unwrap();
        // At 0.5 the positive at 0.4 is missed; at 0.3 it is found, and 0.35 becomes a false
        // positive.
        assert_eq!(at_half.recall, 2.0 / 3.0);
        assert_eq!(at_third.recall, 1.0);
        assert_eq!(at_third.precision, 0.75);
        assert_eq!(at_third.threshold, 0.3);
        assert_eq!(at_half.auc, at_third.auc);
        assert_eq!(at_half.ks, at_third.ks);
    }

    /// SplitMix64: a seeded generator for the randomised tests (no dependency needed).
    pub(crate) struct TestRng(pub u64);

    impl TestRng {
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        pub fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n
        }
    }

    #[test]
    fn score_bin_table_by_hand() {
        // Scores 10, 9, ..., 1 with bads at 10, 9, 7, 4; two bins of five rows each.
        let scores: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let labels = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        let t = score_bin_table(&scores, &labels, 2).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].max_score, t[0].min_score), (10.0, 6.0));
        assert_eq!((t[0].count, t[0].bad, t[0].good), (5, 3, 2));
        assert_eq!(t[0].bad_rate, 0.6);
        assert_eq!(t[0].cum_bad_share, 0.75);
        assert!((t[0].cum_good_share - 2.0 / 6.0).abs() < 1e-15);
        assert!((t[0].ks - (0.75 - 2.0 / 6.0)).abs() < 1e-15);
        assert_eq!((t[1].max_score, t[1].min_score), (5.0, 1.0));
        assert_eq!((t[1].count, t[1].bad, t[1].good), (5, 1, 4));
        assert_eq!(
            (t[1].cum_bad_share, t[1].cum_good_share, t[1].ks),
            (1.0, 1.0, 0.0)
        );
        // Deciles of ten distinct scores: one row per bin, and the table's KS is ks()'s.
        let t = score_bin_table(&scores, &labels, DEFAULT_SCORE_BINS).unwrap();
        assert_eq!(t.len(), 10);
        let max_ks = t.iter().map(|b| b.ks).fold(0.0, f64::max);
        assert!((max_ks - ks(&scores, &labels).unwrap().0).abs() < 1e-15);
        // More bins than rows: the same table, and no overflow in the target ranks.
        assert_eq!(score_bin_table(&scores, &labels, usize::MAX).unwrap(), t);
    }

    #[test]
    fn score_bin_table_keeps_tied_scores_together() {
        // 8 rows in 4 bins: targets at ranks 2, 4, 6, 8. The three rows at 0.5 cross the
        // second target and stay in one bin, which ends at rank 5; the next bin (target 6)
        // takes only the 0.2.
        let scores = [0.9, 0.8, 0.5, 0.5, 0.5, 0.2, 0.1, 0.1];
        let labels = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let t = score_bin_table(&scores, &labels, 4).unwrap();
        let counts: Vec<u64> = t.iter().map(|b| b.count).collect();
        assert_eq!(counts, [2, 3, 1, 2]);
        assert_eq!((t[1].min_score, t[1].max_score), (0.5, 0.5));
        assert_eq!((t[2].min_score, t[2].max_score), (0.2, 0.2));
        assert_eq!(t.iter().map(|b| b.bad + b.good).sum::<u64>(), 8);

        // One tie group holding every row: one bin, whatever was asked for.
        let t = score_bin_table(&[0.3; 5], &[1.0, 0.0, 0.0, 1.0, 0.0], 10).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].count, t[0].bad, t[0].good), (5, 2, 3));
        assert_eq!(t[0].ks, 0.0);
    }

    #[test]
    fn score_bin_table_rejects_bad_input() {
        let y = [1.0, 0.0];
        assert_eq!(
            score_bin_table(&[0.1, 0.2], &y, 0).unwrap_err(),
            MetricError::BadBins { got: 0, min: 1 }
        );
        assert_eq!(
            score_bin_table(&[0.1, f64::NAN], &y, 2).unwrap_err(),
            MetricError::NotFinite {
                what: "score",
                index: 1,
                value: "NaN".into()
            }
        );
        assert_eq!(
            score_bin_table(&[0.1, 0.2], &[1.0, 1.0], 2).unwrap_err(),
            MetricError::OneClass("the KS table")
        );
        assert_eq!(
            score_bin_table(&[0.1], &y, 2).unwrap_err(),
            MetricError::LengthMismatch(1, 2)
        );
    }

    /// Seeded random cases: every row is counted once, the cumulative shares end at 1, there
    /// are at most `bins` rows, the table's KS never exceeds ks(), and it equals ks() when
    /// there are at least as many bins as rows.
    #[test]
    fn score_bin_table_properties_on_random_data() {
        let mut rng = TestRng(20240601);
        for case in 0..300 {
            let n = 2 + rng.below(200) as usize;
            let distinct = 1 + rng.below(30);
            let bins = 1 + rng.below(25) as usize;
            let scores: Vec<f64> = (0..n).map(|_| rng.below(distinct) as f64 / 7.0).collect();
            let mut labels: Vec<f64> = scores
                .iter()
                .map(|&s| f64::from(rng.uniform() < 0.2 + 0.1 * s))
                .collect();
            labels[0] = 1.0;
            labels[1] = 0.0;
            let t = score_bin_table(&scores, &labels, bins).unwrap();
            assert!(t.len() <= bins, "case {case}");
            assert_eq!(
                t.iter().map(|b| b.count).sum::<u64>(),
                n as u64,
                "case {case}"
            );
            assert_eq!(
                t.iter().map(|b| b.bad).sum::<u64>(),
                labels.iter().filter(|&&l| l == 1.0).count() as u64
            );
            let last = t.last().unwrap();
            assert!((last.cum_bad_share - 1.0).abs() < 1e-12);
            assert!((last.cum_good_share - 1.0).abs() < 1e-12);
            for w in t.windows(2) {
                assert!(w[0].min_score > w[1].max_score, "case {case}: bins overlap");
            }
            let table_ks = t.iter().map(|b| b.ks).fold(0.0, f64::max);
            let exact = ks(&scores, &labels).unwrap().0;
            assert!(table_ks <= exact + 1e-12, "case {case}");
            if bins >= n {
                assert!((table_ks - exact).abs() < 1e-12, "case {case}");
            }
            let fine = score_bin_table(&scores, &labels, n).unwrap();
            let fine_ks = fine.iter().map(|b| b.ks).fold(0.0, f64::max);
            assert!((fine_ks - exact).abs() < 1e-12, "case {case}");
        }
    }
}
