//! Weight updates shared by the federated protocol and the pooled reference.

use crate::params::{Optimizer, Penalty};

/// One party's optimiser state over its own weights. `penalised[i]` says whether weight `i`
/// is regularised (the intercept is not).
#[derive(Clone, Debug)]
pub struct OptimizerState {
    optimizer: Optimizer,
    penalty: Penalty,
    penalised: Vec<bool>,
    m: Vec<f64>,
    v: Vec<f64>,
    steps: u64,
}

impl OptimizerState {
    pub fn new(optimizer: Optimizer, penalty: Penalty, penalised: Vec<bool>) -> Self {
        let d = penalised.len();
        OptimizerState {
            optimizer,
            penalty,
            penalised,
            m: vec![0.0; d],
            v: vec![0.0; d],
            steps: 0,
        }
    }

    /// The moments and step count, for a checkpoint.
    pub fn moments(&self) -> (&[f64], &[f64], u64) {
        (&self.m, &self.v, self.steps)
    }

    /// Restores what [`moments`](Self::moments) returned; the lengths must be this state's.
    pub fn restore(&mut self, m: Vec<f64>, v: Vec<f64>, steps: u64) -> Result<(), String> {
        if m.len() != self.m.len() || v.len() != self.v.len() {
            return Err(format!(
                "optimiser state for {} weights, this party has {}",
                m.len(),
                self.m.len()
            ));
        }
        (self.m, self.v, self.steps) = (m, v, steps);
        Ok(())
    }

    /// The penalty term of the objective for these weights.
    pub fn penalty_value(&self, w: &[f64]) -> f64 {
        let masked = w.iter().zip(&self.penalised).filter(|(_, p)| **p);
        match self.penalty {
            Penalty::None => 0.0,
            Penalty::L1 { alpha } => alpha * masked.map(|(x, _)| x.abs()).sum::<f64>(),
            Penalty::L2 { alpha } => 0.5 * alpha * masked.map(|(x, _)| x * x).sum::<f64>(),
        }
    }

    /// Updates `w` in place from the mean loss gradient `grad` of one batch.
    pub fn step(&mut self, w: &mut [f64], grad: &[f64]) {
        debug_assert_eq!(w.len(), grad.len());
        self.steps += 1;
        let mut g: Vec<f64> = grad.to_vec();
        if let Penalty::L2 { alpha } = self.penalty {
            for ((gi, wi), p) in g.iter_mut().zip(w.iter()).zip(&self.penalised) {
                if *p {
                    *gi += alpha * wi;
                }
            }
        }
        let lr = self.optimizer.lr();
        match self.optimizer {
            Optimizer::Sgd { lr } => {
                for (wi, gi) in w.iter_mut().zip(&g) {
                    *wi -= lr * gi;
                }
            }
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                epsilon,
            } => {
                let t = self.steps as i32;
                let c1 = 1.0 - beta1.powi(t);
                let c2 = 1.0 - beta2.powi(t);
                for i in 0..w.len() {
                    self.m[i] = beta1 * self.m[i] + (1.0 - beta1) * g[i];
                    self.v[i] = beta2 * self.v[i] + (1.0 - beta2) * g[i] * g[i];
                    let m_hat = self.m[i] / c1;
                    let v_hat = self.v[i] / c2;
                    w[i] -= lr * m_hat / (v_hat.sqrt() + epsilon);
                }
            }
        }
        if let Penalty::L1 { alpha } = self.penalty {
            // Proximal step of the L1 term: soft-thresholding by lr·alpha.
            let t = lr * alpha;
            for (wi, p) in w.iter_mut().zip(&self.penalised) {
                if *p {
                    *wi = wi.signum() * (wi.abs() - t).max(0.0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_with_l2_matches_the_formula() {
        let mut s = OptimizerState::new(
            Optimizer::Sgd { lr: 0.5 },
            Penalty::L2 { alpha: 0.1 },
            vec![true, false],
        );
        let mut w = vec![1.0, 2.0];
        s.step(&mut w, &[0.2, 0.4]);
        assert!((w[0] - (1.0 - 0.5 * (0.2 + 0.1))).abs() < 1e-15);
        assert!((w[1] - (2.0 - 0.5 * 0.4)).abs() < 1e-15);
        assert!((s.penalty_value(&w) - 0.05 * w[0] * w[0]).abs() < 1e-15);
    }

    #[test]
    fn l1_soft_thresholds_small_weights_to_zero() {
        let mut s = OptimizerState::new(
            Optimizer::Sgd { lr: 1.0 },
            Penalty::L1 { alpha: 0.3 },
            vec![true, true, false],
        );
        let mut w = vec![0.2, -1.0, 0.1];
        s.step(&mut w, &[0.0, 0.0, 0.0]);
        assert_eq!(w[0], 0.0);
        assert!((w[1] + 0.7).abs() < 1e-15);
        assert_eq!(w[2], 0.1, "the intercept is not penalised");
    }

    #[test]
    fn adam_first_step_moves_by_lr_in_the_gradient_sign() {
        let mut s = OptimizerState::new(
            Optimizer::Adam {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
            },
            Penalty::None,
            vec![true, true],
        );
        let mut w = vec![0.0, 0.0];
        s.step(&mut w, &[3.0, -0.5]);
        assert!((w[0] + 0.01).abs() < 1e-8, "{w:?}");
        assert!((w[1] - 0.01).abs() < 1e-8, "{w:?}");
    }
}
