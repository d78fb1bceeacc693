//! Losses: label checks, initial scores, gradients and hessians, output transforms, and the
//! evaluation metric reported per tree.

use crate::error::SecureBoostError;
use crate::params::Objective;
use ferry_ml::metrics;

/// Hessians are floored here, as XGBoost does, so a confident row never has weight exactly 0.
const MIN_HESSIAN: f64 = 1e-16;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Checks the labels suit the objective; the error names the first bad row.
pub fn check_labels(objective: &Objective, labels: &[f64]) -> Result<(), SecureBoostError> {
    if labels.is_empty() {
        return Err(SecureBoostError::Data(
            "the training data has no rows".into(),
        ));
    }
    for (i, &y) in labels.iter().enumerate() {
        let ok = match objective {
            Objective::BinaryLogistic => y == 0.0 || y == 1.0,
            Objective::SquaredError => y.is_finite(),
            Objective::MultiSoftmax { num_class } => {
                y >= 0.0 && y.fract() == 0.0 && (y as usize) < *num_class
            }
        };
        if !ok {
            let expected = match objective {
                Objective::BinaryLogistic => "0 or 1".to_string(),
                Objective::SquaredError => "a finite number".to_string(),
                Objective::MultiSoftmax { num_class } => {
                    format!("an integer class in 0..{num_class}")
                }
            };
            return Err(SecureBoostError::Data(format!(
                "label of row {} is {y}, but the {} objective needs {expected}",
                i + 1,
                objective.name()
            )));
        }
    }
    Ok(())
}

/// Initial raw score per output: log-odds of the positive rate, the mean target, or log class
/// priors.
pub fn base_scores(objective: &Objective, labels: &[f64]) -> Vec<f64> {
    let n = labels.len().max(1) as f64;
    match objective {
        Objective::BinaryLogistic => {
            let p = (labels.iter().sum::<f64>() / n).clamp(1e-6, 1.0 - 1e-6);
            vec![(p / (1.0 - p)).ln()]
        }
        Objective::SquaredError => vec![labels.iter().sum::<f64>() / n],
        Objective::MultiSoftmax { num_class } => {
            let mut counts = vec![0.0; *num_class];
            for &y in labels {
                counts[y as usize] += 1.0;
            }
            counts
                .iter()
                .map(|&c| (c / n).clamp(1e-6, 1.0).ln())
                .collect()
        }
    }
}

/// Gradient and hessian of every row for output `class`, from raw scores (`n × k`, row-major).
pub fn gradients(
    objective: &Objective,
    scores: &[f64],
    labels: &[f64],
    class: usize,
) -> (Vec<f64>, Vec<f64>) {
    let k = objective.n_outputs();
    let n = labels.len();
    let mut g = Vec::with_capacity(n);
    let mut h = Vec::with_capacity(n);
    for (i, &y) in labels.iter().enumerate() {
        match objective {
            Objective::BinaryLogistic => {
                let p = sigmoid(scores[i]);
                g.push(p - y);
                h.push((p * (1.0 - p)).max(MIN_HESSIAN));
            }
            Objective::SquaredError => {
                g.push(scores[i] - y);
                h.push(1.0);
            }
            Objective::MultiSoftmax { .. } => {
                let row = &scores[i * k..(i + 1) * k];
                let p = softmax(row)[class];
                let target = if y as usize == class { 1.0 } else { 0.0 };
                g.push(p - target);
                // XGBoost's multi:softprob hessian.
                h.push((2.0 * p * (1.0 - p)).max(MIN_HESSIAN));
            }
        }
    }
    (g, h)
}

fn softmax(row: &[f64]) -> Vec<f64> {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = row.iter().map(|&s| (s - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// Raw scores to outputs: probabilities of class 1, predicted values, or class probabilities.
pub fn transform(objective: &Objective, raw: &[f64]) -> Vec<f64> {
    match objective {
        Objective::BinaryLogistic => raw.iter().map(|&s| sigmoid(s)).collect(),
        Objective::SquaredError => raw.to_vec(),
        Objective::MultiSoftmax { num_class } => {
            raw.chunks_exact(*num_class).flat_map(softmax).collect()
        }
    }
}

/// The metric reported per tree and used for early stopping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricSpec {
    pub name: &'static str,
    pub higher_is_better: bool,
}

pub fn metric_spec(objective: &Objective) -> MetricSpec {
    match objective {
        Objective::BinaryLogistic => MetricSpec {
            name: "auc",
            higher_is_better: true,
        },
        Objective::SquaredError => MetricSpec {
            name: "rmse",
            higher_is_better: false,
        },
        Objective::MultiSoftmax { .. } => MetricSpec {
            name: "mlogloss",
            higher_is_better: false,
        },
    }
}

/// Evaluates [`metric_spec`] on raw scores; `None` when it is undefined (e.g. AUC of one class).
pub fn evaluate(objective: &Objective, raw: &[f64], labels: &[f64]) -> Option<f64> {
    let out = transform(objective, raw);
    match objective {
        Objective::BinaryLogistic => metrics::auc(&out, labels).ok(),
        Objective::SquaredError => metrics::rmse(&out, labels).ok(),
        Objective::MultiSoftmax { num_class } => {
            if labels.is_empty() {
                return None;
            }
            let eps = 1e-15;
            let total: f64 = labels
                .iter()
                .enumerate()
                .map(|(i, &y)| -out[i * num_class + y as usize].clamp(eps, 1.0).ln())
                .sum();
            Some(total / labels.len() as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_gradients_match_formula() {
        let (g, h) = gradients(&Objective::BinaryLogistic, &[0.0, 2.0], &[1.0, 0.0], 0);
        assert!((g[0] + 0.5).abs() < 1e-15);
        assert!((h[0] - 0.25).abs() < 1e-15);
        let p = 1.0 / (1.0 + (-2.0f64).exp());
        assert!((g[1] - p).abs() < 1e-15);
        assert!((h[1] - p * (1.0 - p)).abs() < 1e-15);
    }

    #[test]
    fn softmax_gradients_sum_to_zero_over_classes() {
        let obj = Objective::MultiSoftmax { num_class: 3 };
        let scores = [0.1, -0.4, 1.2];
        let total: f64 = (0..3)
            .map(|c| gradients(&obj, &scores, &[2.0], c).0[0])
            .sum();
        assert!(total.abs() < 1e-12);
    }

    #[test]
    fn labels_are_checked_per_objective() {
        assert!(check_labels(&Objective::BinaryLogistic, &[0.0, 1.0]).is_ok());
        let e = check_labels(&Objective::BinaryLogistic, &[0.0, 2.0]).unwrap_err();
        assert!(e.to_string().contains("row 2"), "{e}");
        let obj = Objective::MultiSoftmax { num_class: 3 };
        assert!(check_labels(&obj, &[0.0, 2.0]).is_ok());
        assert!(check_labels(&obj, &[3.0]).is_err());
        assert!(check_labels(&obj, &[1.5]).is_err());
        assert!(check_labels(&Objective::SquaredError, &[]).is_err());
    }

    #[test]
    fn base_scores_reproduce_the_label_mean() {
        let b = base_scores(&Objective::BinaryLogistic, &[1.0, 0.0, 0.0, 0.0]);
        assert!((sigmoid(b[0]) - 0.25).abs() < 1e-12);
        let b = base_scores(&Objective::SquaredError, &[1.0, 2.0, 6.0]);
        assert_eq!(b, vec![3.0]);
        let obj = Objective::MultiSoftmax { num_class: 2 };
        let p = transform(&obj, &base_scores(&obj, &[0.0, 1.0, 1.0, 1.0]));
        assert!((p[1] - 0.75).abs() < 1e-12);
    }
}
