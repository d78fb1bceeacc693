//! Parameters of a FedAvg job. Every party must run with the same parameters; the server checks
//! a fingerprint of them at the start.

use crate::dp::DpConfig;
use crate::error::HflError;
use crate::model::ModelSpec;
use crate::sparse::Sparsification;
use crate::train::LocalTraining;
use ferry_secagg::{FixedPointRing, SecAggConfig};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How clients are picked each round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectionMode {
    /// `max(⌈fraction·K⌉, minimum)` clients drawn uniformly without replacement (FedAvg's `C`).
    #[default]
    Fixed,
    /// Each client independently with probability `fraction` (what the DP accountant's
    /// subsampling bound assumes). A round with too few clients is skipped.
    Poisson,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientSelection {
    /// Fraction of the clients taking part in each round (FedAvg's `C`), in (0, 1].
    pub fraction: f64,
    pub mode: SelectionMode,
}

impl Default for ClientSelection {
    fn default() -> Self {
        ClientSelection {
            fraction: 1.0,
            mode: SelectionMode::Fixed,
        }
    }
}

/// How the server weighs the clients' updates.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AggregationWeighting {
    /// `w_i = n_i`, the client's number of training samples (FedAvg).
    #[default]
    SampleCount,
    /// `w_i = 1`.
    Uniform,
    /// Data volume × validation quality: `w_i = n_i · max(q_i, min_quality)`, where `q_i` is
    /// the quality of the client's locally trained model on its own held-out split (accuracy for
    /// classifiers, `1/(1 + RMSE)` for regression). Needs `validation_fraction > 0`.
    /// `min_quality` keeps a client with a poor round from being silenced entirely.
    Contribution { min_quality: f64 },
}

/// Secure aggregation settings: the protocol's threshold and ring, and the fixed-point encoding
/// of the (weighted) updates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecureAggregation {
    /// Ring size `k` (multiple of 8, at most 64).
    pub ring_bits: u32,
    /// Fractional bits `f` of the fixed-point encoding (resolution `2^-f`).
    pub frac_bits: u32,
    /// Each coordinate of a weighted update is clipped to `[-clip, clip]` before encoding, so a
    /// sum of `m` clients cannot wrap while `m·clip·2^f < 2^(k-1)`.
    pub clip: f64,
    /// Shamir threshold; `None`: a strict majority of the round's clients.
    pub threshold: Option<usize>,
    /// Seconds the server waits for each stage of the protocol before treating the clients
    /// whose message has not arrived as dropped ([`SecAggConfig::stage_timeout`]). The first
    /// stage starts once the weights are sent, after local training, so this covers only the
    /// clients' encoding and masking work plus latency.
    pub stage_timeout_seconds: f64,
}

impl Default for SecureAggregation {
    fn default() -> Self {
        SecureAggregation {
            ring_bits: 64,
            frac_bits: 32,
            clip: 1e4,
            threshold: None,
            stage_timeout_seconds: ferry_secagg::DEFAULT_STAGE_TIMEOUT.as_secs_f64(),
        }
    }
}

impl SecureAggregation {
    pub(crate) fn protocol(&self) -> SecAggConfig {
        SecAggConfig {
            ring_bits: self.ring_bits,
            threshold: self.threshold,
            // Checked by `FedAvgParams::validate`; a value that slipped past it becomes zero,
            // which `ferry_secagg::aggregate` refuses with an explanation.
            stage_timeout: Duration::try_from_secs_f64(self.stage_timeout_seconds)
                .unwrap_or(Duration::ZERO),
        }
    }

    pub(crate) fn encoding(&self) -> Result<FixedPointRing, HflError> {
        Ok(FixedPointRing::new(
            self.ring_bits,
            self.frac_bits,
            self.clip,
        )?)
    }
}

/// Everything a FedAvg job needs, the same on every party.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FedAvgParams {
    pub model: ModelSpec,
    /// Communication rounds `R`.
    pub rounds: usize,
    pub local: LocalTraining,
    /// The global model moves by `server_learning_rate ×` the weighted mean update (1: FedAvg).
    pub server_learning_rate: f64,
    pub selection: ClientSelection,
    pub weighting: AggregationWeighting,
    pub secure_aggregation: Option<SecureAggregation>,
    pub dp: Option<DpConfig>,
    pub sparsification: Sparsification,
    /// Fraction of each client's rows held out (never trained on) to evaluate the global model
    /// and, for contribution weighting, the local model.
    pub validation_fraction: f64,
    /// Seeds initialisation, shuffling, client selection, hold-out splits and random-k.
    pub seed: u64,
}

impl Default for FedAvgParams {
    fn default() -> Self {
        FedAvgParams {
            model: ModelSpec::Logistic,
            rounds: 10,
            local: LocalTraining::default(),
            server_learning_rate: 1.0,
            selection: ClientSelection::default(),
            weighting: AggregationWeighting::SampleCount,
            secure_aggregation: None,
            dp: None,
            sparsification: Sparsification::None,
            validation_fraction: 0.0,
            seed: 42,
        }
    }
}

impl FedAvgParams {
    /// Checks the parameters on their own and against the number of clients.
    pub fn validate(&self, n_clients: usize) -> Result<(), HflError> {
        self.model.validate()?;
        self.local.validate()?;
        self.sparsification.validate()?;
        if self.rounds == 0 {
            return Err(HflError::Config("rounds must be at least 1".into()));
        }
        if !(self.server_learning_rate.is_finite() && self.server_learning_rate > 0.0) {
            return Err(HflError::Config(format!(
                "server learning rate {} must be positive",
                self.server_learning_rate
            )));
        }
        let f = self.selection.fraction;
        if !(f > 0.0 && f <= 1.0) {
            return Err(HflError::Config(format!(
                "client fraction {f} must be in (0, 1]"
            )));
        }
        if !(0.0..0.9).contains(&self.validation_fraction) {
            return Err(HflError::Config(format!(
                "validation fraction {} must be in [0, 0.9)",
                self.validation_fraction
            )));
        }
        if let AggregationWeighting::Contribution { min_quality } = self.weighting {
            if self.validation_fraction <= 0.0 {
                return Err(HflError::Config(
                    "contribution weighting measures validation quality: set validation_fraction > 0"
                        .into(),
                ));
            }
            if !(0.0..=1.0).contains(&min_quality) || min_quality == 0.0 {
                return Err(HflError::Config(format!(
                    "contribution min_quality {min_quality} must be in (0, 1]"
                )));
            }
        }
        if n_clients == 0 {
            return Err(HflError::Config(
                "horizontal FL needs at least one client (guest or host)".into(),
            ));
        }
        if let Some(sa) = &self.secure_aggregation {
            if matches!(self.sparsification, Sparsification::TopK { .. }) {
                return Err(HflError::Config(
                    "top-k sparsification cannot be combined with secure aggregation: each client would reveal which coordinates it sends, and masks only cancel on shared coordinates; use random-k sparsification".into(),
                ));
            }
            let t = sa.stage_timeout_seconds;
            if !(t.is_finite() && t > 0.0 && Duration::try_from_secs_f64(t).is_ok()) {
                return Err(HflError::Config(format!(
                    "secure aggregation stage timeout {t} s must be a positive number of seconds"
                )));
            }
            sa.protocol().threshold_for(n_clients.max(2))?;
            let enc = sa.encoding()?;
            if (enc.max_summands() as usize) < n_clients {
                return Err(HflError::Config(format!(
                    "secure aggregation encoding fits sums of {} clients, fewer than {n_clients}: lower clip or frac_bits",
                    enc.max_summands()
                )));
            }
            if n_clients < 2 {
                return Err(HflError::Config(
                    "secure aggregation needs at least 2 clients".into(),
                ));
            }
        }
        if let Some(dp) = &self.dp {
            dp.validate()?;
            if f < 1.0 && self.selection.mode == SelectionMode::Fixed {
                return Err(HflError::Config(
                    "with differential privacy and a client fraction below 1, use Poisson client selection: the accountant's subsampling bound assumes each client is picked independently".into(),
                ));
            }
        }
        Ok(())
    }

    /// A short fingerprint of the parameters, compared across parties at the start.
    pub fn fingerprint(&self) -> u64 {
        let text = serde_json::to_string(self).unwrap_or_default();
        // FNV-1a: stable across builds and platforms, which std's hasher is not.
        text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_aggregation_stage_timeout_is_passed_on_and_validated() {
        let sa = SecureAggregation::default();
        assert_eq!(sa.protocol().stage_timeout, Duration::from_secs(60));
        let quick = SecureAggregation {
            stage_timeout_seconds: 2.5,
            ..sa
        };
        assert_eq!(quick.protocol().stage_timeout, Duration::from_millis(2500));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            let params = FedAvgParams {
                secure_aggregation: Some(SecureAggregation {
                    stage_timeout_seconds: bad,
                    ..sa
                }),
                ..FedAvgParams::default()
            };
            let err = params.validate(3).unwrap_err().to_string();
            assert!(err.contains("stage timeout"), "{bad}: {err}");
        }
        let ok = FedAvgParams {
            secure_aggregation: Some(quick),
            ..FedAvgParams::default()
        };
        assert!(ok.validate(3).is_ok());
    }
}
