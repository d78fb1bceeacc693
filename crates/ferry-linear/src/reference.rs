//! Centralised (pooled) linear and logistic regression in plain `f64`: the yardstick the
//! federated protocol is tested and benchmarked against. It uses the same batch order,
//! optimiser, penalty and stopping rule as the federated training (early stopping excepted).

use crate::data::Quadratic;
use crate::error::LinearError;
use crate::optim::OptimizerState;
use crate::params::{LinearParams, Task};
use crate::plan::epoch_batches;
use crate::train::{sigmoid, validation_loss};
use ferry_data::Dataset;

/// Which residual the pooled model follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferenceLoss {
    /// The true loss: `σ(u) − y` for logistic regression (plain centralised logistic
    /// regression).
    Exact,
    /// The quadratic (Taylor) loss the federated protocol optimises: `u/4 + 1/2 − y`. The
    /// federated model must match this one up to fixed-point rounding.
    Taylor,
}

/// A model trained on pooled data.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceModel {
    pub task: Task,
    pub weights: Vec<f64>,
    pub intercept: Option<f64>,
    /// True (not approximated) mean training loss after every epoch, penalty excluded.
    pub losses: Vec<f64>,
    /// Mean loss of the followed kind (exact or Taylor) over each epoch's batches, computed
    /// with the weights before each step, penalty included: the quantity the federated guest
    /// reports per epoch.
    pub training_losses: Vec<f64>,
}

impl ReferenceModel {
    /// Linear scores `w·x + b`.
    pub fn scores(&self, data: &Dataset) -> Vec<f64> {
        (0..data.n_rows())
            .map(|i| {
                data.row(i)
                    .iter()
                    .zip(&self.weights)
                    .map(|(x, w)| x * w)
                    .sum::<f64>()
                    + self.intercept.unwrap_or(0.0)
            })
            .collect()
    }

    /// Probabilities (logistic) or values (linear).
    pub fn predict(&self, data: &Dataset) -> Vec<f64> {
        let mut s = self.scores(data);
        if self.task == Task::Logistic {
            s.iter_mut().for_each(|v| *v = sigmoid(*v));
        }
        s
    }
}

/// Trains on the pooled table `data` (all parties' columns side by side, with labels).
pub fn train_pooled(
    data: &Dataset,
    params: &LinearParams,
    loss: ReferenceLoss,
) -> Result<ReferenceModel, LinearError> {
    params.validate()?;
    let local = crate::data::LocalData::prepare(data, true, params.task, "pooled")?;
    let y = local.labels.clone().unwrap_or_default();
    let d = local.d;
    let quad = Quadratic::of(params.task);
    let n_w = d + usize::from(params.fit_intercept);
    let mut penalised = vec![true; d];
    if params.fit_intercept {
        penalised.push(false);
    }
    let mut opt = OptimizerState::new(params.optimizer, params.penalty, penalised);
    let mut w = vec![0.0; n_w];
    let mut losses = Vec::new();
    let mut training_losses = Vec::new();
    let mut previous: Option<f64> = None;
    for epoch in 0..params.max_epochs {
        let batches = epoch_batches(
            local.n,
            params.batch_size,
            params.shuffle,
            params.seed,
            epoch,
        );
        let mut epoch_loss = 0.0;
        for rows in &batches {
            let b = if params.fit_intercept { w[d] } else { 0.0 };
            let u = local.scores(rows.iter().copied(), &w[..d], b);
            let mut grad = vec![0.0; n_w];
            for (&i, &ui) in rows.iter().zip(&u) {
                let r = match (params.task, loss) {
                    (Task::Logistic, ReferenceLoss::Exact) => sigmoid(ui) - y[i],
                    _ => quad.b(y[i]) + quad.c * ui,
                };
                let l = match (params.task, loss) {
                    (Task::Logistic, ReferenceLoss::Exact) => {
                        crate::train::softplus(ui) - y[i] * ui
                    }
                    _ => quad.a(y[i]) + quad.b(y[i]) * ui + 0.5 * quad.c * ui * ui,
                };
                epoch_loss += l;
                for (g, x) in grad.iter_mut().zip(local.row(i)) {
                    *g += x * r;
                }
                if params.fit_intercept {
                    grad[d] += r;
                }
            }
            let pen = opt.penalty_value(&w);
            epoch_loss += pen * rows.len() as f64;
            for g in grad.iter_mut() {
                *g /= rows.len() as f64;
            }
            opt.step(&mut w, &grad);
        }
        let epoch_loss = epoch_loss / local.n as f64;
        let b = if params.fit_intercept { w[d] } else { 0.0 };
        let all = local.scores(0..local.n, &w[..d], b);
        losses.push(validation_loss(params.task, &all, &y));
        training_losses.push(epoch_loss);
        if let Some(p) = previous
            && params.tolerance > 0.0
            && (p - epoch_loss).abs() < params.tolerance
        {
            break;
        }
        previous = Some(epoch_loss);
    }
    let intercept = params.fit_intercept.then(|| w.pop().unwrap_or(0.0));
    Ok(ReferenceModel {
        task: params.task,
        weights: w,
        intercept,
        losses,
        training_losses,
    })
}
