//! Local training (mini-batch SGD), evaluation, and the centralised baseline.

use crate::error::HflError;
use crate::model::{Model, Network, Prepared, Task, predict_rows, prepare};
use crate::params::FedAvgParams;
use ferry_data::Dataset;
use ferry_ml::metrics;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Local optimisation: plain mini-batch SGD on the mean loss of each batch plus an optional
/// L2 penalty `l2/2 · ‖w‖²` (biases included, for simplicity and so that it is the same
/// function everywhere).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LocalTraining {
    /// Passes over the local data per round (E).
    #[schemars(range(min = 1))]
    pub epochs: usize,
    /// Rows per SGD step (B).
    #[schemars(range(min = 1))]
    pub batch_size: usize,
    /// SGD step size, a finite number above 0.
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub learning_rate: f64,
    /// L2 penalty `l2/2 · ‖w‖²` (biases included), zero or positive.
    #[schemars(range(min = 0.0))]
    pub l2: f64,
}

impl Default for LocalTraining {
    fn default() -> Self {
        LocalTraining {
            epochs: 1,
            batch_size: 32,
            learning_rate: 0.1,
            l2: 0.0,
        }
    }
}

impl LocalTraining {
    pub(crate) fn validate(&self) -> Result<(), HflError> {
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(HflError::Config(
                "local epochs and batch size must be at least 1".into(),
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(HflError::Config(format!(
                "learning rate {} must be positive",
                self.learning_rate
            )));
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return Err(HflError::Config(format!(
                "l2 penalty {} must be zero or positive",
                self.l2
            )));
        }
        Ok(())
    }
}

/// Runs `epochs` passes of mini-batch SGD over `data` from `model`'s parameters, shuffling
/// with `rng` before each pass. Returns the mean training loss of the last pass (each sample's
/// loss measured when its batch was processed, before the batch's step).
///
/// With `trainable`, only those parameter indices move (gradient step and L2 decay); the rest
/// keep their values (random-k's structured updates).
pub(crate) fn sgd(
    model: &mut Model,
    data: &Prepared,
    cfg: &LocalTraining,
    epochs: usize,
    rng: &mut ChaCha8Rng,
    trainable: Option<&[u32]>,
) -> f64 {
    let mut order: Vec<usize> = (0..data.n).collect();
    let mut grad = vec![0.0; model.params.len()];
    let mut last_loss = f64::NAN;
    for _ in 0..epochs {
        order.shuffle(rng);
        let mut total = 0.0;
        for batch in order.chunks(cfg.batch_size) {
            grad.iter_mut().for_each(|g| *g = 0.0);
            {
                let mut net = Network::new(&model.spec, data.d, &model.params);
                for &i in batch {
                    net.forward(data.row(i));
                    total += net.loss(data.y[i]);
                    net.backward(data.y[i], &mut grad);
                }
            }
            let scale = cfg.learning_rate / batch.len() as f64;
            match trainable {
                None => {
                    for (w, g) in model.params.iter_mut().zip(&grad) {
                        *w -= scale * g + cfg.learning_rate * cfg.l2 * *w;
                    }
                }
                Some(idx) => {
                    for &i in idx {
                        let w = &mut model.params[i as usize];
                        *w -= scale * grad[i as usize] + cfg.learning_rate * cfg.l2 * *w;
                    }
                }
            }
        }
        last_loss = total / data.n.max(1) as f64;
    }
    last_loss
}

/// Quality of a model on labelled data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub n: usize,
    /// The training loss function's mean: cross-entropy (binary, multi-class) or mean squared
    /// error (regression).
    pub loss: f64,
    /// Classification accuracy (binary at threshold 0.5).
    pub accuracy: Option<f64>,
    /// Binary AUC, when both classes are present.
    pub auc: Option<f64>,
    /// Regression RMSE and R².
    pub rmse: Option<f64>,
    pub r2: Option<f64>,
}

impl EvalMetrics {
    /// The headline score used for contribution weighting: accuracy for classifiers,
    /// `1 / (1 + RMSE)` for regression (both in (0, 1], higher is better).
    pub fn quality(&self) -> f64 {
        match (self.accuracy, self.rmse) {
            (Some(a), _) => a,
            (None, Some(r)) => 1.0 / (1.0 + r),
            _ => 0.0,
        }
    }
}

pub(crate) fn evaluate_prepared(model: &Model, data: &Prepared) -> Result<EvalMetrics, HflError> {
    if data.n == 0 {
        return Err(HflError::Data("cannot evaluate on zero rows".into()));
    }
    let pred = predict_rows(model, &data.x);
    let err = |e: metrics::MetricError| HflError::Data(format!("evaluation: {e}"));
    let mut m = EvalMetrics {
        n: data.n,
        loss: 0.0,
        accuracy: None,
        auc: None,
        rmse: None,
        r2: None,
    };
    match model.spec.task() {
        Task::Binary => {
            m.loss = metrics::log_loss(&pred, &data.y).map_err(err)?;
            m.accuracy = Some(
                metrics::Confusion::at(&pred, &data.y, 0.5)
                    .map_err(err)?
                    .accuracy(),
            );
            m.auc = metrics::auc(&pred, &data.y).ok();
        }
        Task::Regression => {
            let rmse = metrics::rmse(&pred, &data.y).map_err(err)?;
            m.loss = rmse * rmse;
            m.rmse = Some(rmse);
            m.r2 = Some(metrics::r2(&pred, &data.y).map_err(err)?);
        }
        Task::Multiclass { n_classes } => {
            m.accuracy =
                Some(metrics::multiclass_accuracy(&pred, n_classes, &data.y).map_err(err)?);
            m.loss = pred
                .chunks_exact(n_classes)
                .zip(&data.y)
                .map(|(p, &y)| -p[y as usize].max(1e-15).ln())
                .sum::<f64>()
                / data.n as f64;
        }
    }
    Ok(m)
}

/// Evaluates `model` on a labelled dataset.
pub fn evaluate(model: &Model, data: &Dataset) -> Result<EvalMetrics, HflError> {
    model.check()?;
    let prepared = prepare(data, &model.feature_names, model.spec.task())?;
    evaluate_prepared(model, &prepared)
}

/// The centralised baseline: the same model, initialisation and optimiser trained on one
/// (pooled) dataset for `rounds × local epochs` epochs, the number of passes each sample gets
/// in FedAvg with full participation.
pub fn train_centralised(data: &Dataset, params: &FedAvgParams) -> Result<Model, HflError> {
    params.local.validate()?;
    let mut model = Model::init(
        params.model.clone(),
        data.feature_names.clone(),
        params.seed,
    )?;
    let prepared = prepare(data, &model.feature_names, model.spec.task())?;
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed ^ 0x63656e74_72616c00);
    let epochs = params.rounds * params.local.epochs;
    sgd(&mut model, &prepared, &params.local, epochs, &mut rng, None);
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSpec;

    /// Two separable clusters: SGD must drive the loss down and classify them.
    #[test]
    fn sgd_learns_a_separable_problem() {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let t = i as f64 / 200.0;
            let label = (i % 2) as f64;
            x.extend([label * 2.0 - 1.0 + 0.3 * (t * 17.0).sin(), (t * 5.0).cos()]);
            y.push(label);
        }
        let data = Prepared { x, y, n: 200, d: 2 };
        for spec in [
            ModelSpec::Logistic,
            ModelSpec::Mlp {
                hidden: vec![4],
                task: Task::Binary,
            },
        ] {
            let mut model = Model::init(spec, vec!["a".into(), "b".into()], 1).unwrap();
            let before = evaluate_prepared(&model, &data).unwrap();
            let cfg = LocalTraining {
                epochs: 20,
                batch_size: 16,
                learning_rate: 0.5,
                l2: 0.0,
            };
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            sgd(&mut model, &data, &cfg, cfg.epochs, &mut rng, None);
            let after = evaluate_prepared(&model, &data).unwrap();
            assert!(after.loss < before.loss * 0.5, "{before:?} -> {after:?}");
            assert_eq!(after.accuracy, Some(1.0));
        }
    }

    /// One full-batch step of linear regression from zero, by hand: with x = (1, 2), y = 3,
    /// the prediction is 0, the gradient of ½(ŷ − y)² is (ŷ − y)·(x, 1) = (−3, −6, −3), so
    /// with learning rate 0.1 the weights become (0.3, 0.6) and the bias 0.3.
    #[test]
    fn one_sgd_step_by_hand() {
        let data = Prepared {
            x: vec![1.0, 2.0],
            y: vec![3.0],
            n: 1,
            d: 2,
        };
        let mut model = Model::init(ModelSpec::Linear, vec!["a".into(), "b".into()], 0).unwrap();
        let cfg = LocalTraining {
            epochs: 1,
            batch_size: 1,
            learning_rate: 0.1,
            l2: 0.0,
        };
        let loss = sgd(
            &mut model,
            &data,
            &cfg,
            1,
            &mut ChaCha8Rng::seed_from_u64(0),
            None,
        );
        assert_eq!(loss, 4.5);
        let expected = [0.3, 0.6, 0.3];
        for (p, e) in model.params.iter().zip(expected) {
            assert!((p - e).abs() < 1e-15, "{:?}", model.params);
        }
    }
}
