//! Evaluation metrics shared by every algorithm and the evaluation component.
//!
//! Binary metrics take scores (probabilities or any monotone score) and 0/1 labels.
//! Ties in scores are handled exactly: AUC counts a tied positive/negative pair as one half,
//! and ROC/KS curves step over all tied scores at once.

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
mod tests {
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
}
