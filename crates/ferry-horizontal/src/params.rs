//! Parameters of a FedAvg job. Every party must run with the same parameters; the server checks
//! a fingerprint of them at the start.

use crate::dp::{ClearStatistic, DpConfig, NoisePlacement, PrivacyReport};
use crate::error::HflError;
use crate::model::ModelSpec;
use crate::sparse::Sparsification;
use crate::train::LocalTraining;
use ferry_secagg::{FixedPointRing, SecAggConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How clients are picked each round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelectionMode {
    /// `max(⌈fraction·K⌉, minimum)` clients drawn uniformly without replacement (FedAvg's `C`).
    #[default]
    Fixed,
    /// Each client independently with probability `fraction` (what the DP accountant's
    /// subsampling bound assumes). A round with too few clients is skipped. Under DP the
    /// server draws the sample from operating-system randomness, not from the job seed, and
    /// each client learns only whether it was selected itself.
    Poisson,
}

/// Which clients take part in each round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ClientSelection {
    /// Fraction of the clients taking part in each round (FedAvg's `C`), in (0, 1].
    #[schemars(range(max = 1.0), extend("exclusiveMinimum" = 0.0))]
    pub fraction: f64,
    /// `fixed` (a fixed-size sample) or `poisson` (each client independently).
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
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
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
    Contribution {
        /// Floor of the quality factor, in (0, 1].
        #[schemars(range(max = 1.0), extend("exclusiveMinimum" = 0.0))]
        min_quality: f64,
    },
}

/// Secure aggregation settings: the protocol's threshold and ring, and the fixed-point encoding
/// of the (weighted) updates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SecureAggregation {
    /// Ring size `k` (multiple of 8, at most 64).
    #[schemars(range(min = 8, max = 64), extend("multipleOf" = 8))]
    pub ring_bits: u32,
    /// Fractional bits `f` of the fixed-point encoding (resolution `2^-f`).
    pub frac_bits: u32,
    /// Each coordinate of a weighted update is clipped to `[-clip, clip]` before encoding, so a
    /// sum of `m` clients cannot wrap while `m·clip·2^f < 2^(k-1)`.
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub clip: f64,
    /// Shamir threshold; `None`: a strict majority of the round's clients. At least 2 and at
    /// most the number of clients.
    #[schemars(range(min = 2))]
    pub threshold: Option<usize>,
    /// Seconds the server waits for each stage of the protocol before treating the clients
    /// whose message has not arrived as dropped ([`SecAggConfig::stage_timeout`]). The first
    /// stage starts once the weights are sent, after local training, so this covers only the
    /// clients' encoding and masking work plus latency.
    #[schemars(extend("exclusiveMinimum" = 0.0))]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct FedAvgParams {
    /// The model family: `{kind: logistic}`, `{kind: linear}`, `{kind: softmax, n_classes}` or
    /// `{kind: mlp, hidden: [...], task: ...}`.
    pub model: ModelSpec,
    /// Communication rounds `R`.
    #[schemars(range(min = 1))]
    pub rounds: usize,
    /// Each selected client's local training per round.
    pub local: LocalTraining,
    /// The global model moves by `server_learning_rate ×` the weighted mean update (1: FedAvg).
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub server_learning_rate: f64,
    /// Which clients take part in each round.
    pub selection: ClientSelection,
    /// How the server weighs the clients' updates.
    pub weighting: AggregationWeighting,
    /// Sum the clients' updates with secure aggregation (the server sees only the sum).
    pub secure_aggregation: Option<SecureAggregation>,
    /// Client-level differential privacy: clipping, Gaussian noise and an `(ε, δ)` accountant.
    pub dp: Option<DpConfig>,
    /// Which coordinates of its update a client sends.
    pub sparsification: Sparsification,
    /// Fraction of each client's rows held out (never trained on) to evaluate the global model
    /// and, for contribution weighting, the local model. In [0, 0.9).
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 0.9))]
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
        self.validate_ranges()?;
        if n_clients == 0 {
            return Err(HflError::Config(
                "horizontal FL needs at least one client (guest or host)".into(),
            ));
        }
        if let Some(sa) = &self.secure_aggregation {
            if n_clients < 2 {
                return Err(HflError::Config(
                    "secure aggregation needs at least 2 clients".into(),
                ));
            }
            sa.protocol().threshold_for(n_clients)?;
            let enc = sa.encoding()?;
            if (enc.max_summands() as usize) < n_clients {
                return Err(HflError::Config(format!(
                    "secure aggregation encoding fits sums of {} clients, fewer than {n_clients}: lower clip or frac_bits",
                    enc.max_summands()
                )));
            }
        }
        if let Some(dp) = &self.dp {
            check_signal_exceeds_noise(dp, self.selection.fraction, n_clients, self.rounds)?;
        }
        Ok(())
    }

    /// The checks that need no roster (every range, and the combinations that are refused
    /// whatever the number of clients): what a node can check when a job is submitted.
    /// [`FedAvgParams::validate`] runs these and the checks against the number of clients.
    pub fn validate_ranges(&self) -> Result<(), HflError> {
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
            if let Some(t) = sa.threshold
                && t < 2
            {
                return Err(HflError::Config(format!(
                    "secure aggregation threshold {t} must be at least 2"
                )));
            }
            sa.encoding()?;
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

    /// The client sampling rate the DP accountant charges a round at.
    ///
    /// Amplification by subsampling holds only against someone who does not know the sample.
    /// With Poisson selection and no secure aggregation the sample is drawn from the server's
    /// operating-system randomness and each client learns only its own selection, so a round
    /// costs what the sampled Gaussian mechanism at rate `fraction` costs — against clients and
    /// outsiders; the server, which sees every update under central noise, is not protected
    /// anyway. Secure aggregation names the round's participants to each other in its key
    /// directory, and its distributed noise is meant to protect against the server, which
    /// drew the sample: there the rate is 1 (no amplification). Full participation is rate 1.
    pub fn accounted_sampling_rate(&self) -> f64 {
        match (self.selection.mode, &self.secure_aggregation) {
            (SelectionMode::Poisson, None) => self.selection.fraction,
            _ => 1.0,
        }
    }

    /// The per-client values that cross the wire in the clear with these parameters (with or
    /// without DP); under DP they are outside the guarantee.
    pub fn cleartext_statistics(&self) -> Vec<ClearStatistic> {
        let stat = |name: &str, description: &str, recipients: &str, when: &str| ClearStatistic {
            name: name.into(),
            description: description.into(),
            recipients: recipients.into(),
            when: when.into(),
        };
        let each_round = "every round the client is selected for";
        let mut out = vec![
            stat(
                "feature_names",
                "the names of the client's feature columns (the same on every client)",
                "server",
                "once, at the start",
            ),
            stat(
                "sample_count",
                "the client's number of training rows (after the hold-out split)",
                "server",
                "at the start and every round the client is selected for",
            ),
            stat(
                "train_loss",
                "the client's mean loss over its local training in the round",
                "server",
                each_round,
            ),
            stat(
                "test_metrics",
                "if the client has a test file: the global model evaluated on it (row count, loss, accuracy and AUC or RMSE and R²)",
                "server",
                "every round the client is selected for, and after training",
            ),
        ];
        if self.validation_fraction > 0.0 {
            out.push(stat(
                "holdout_metrics",
                "the global model evaluated on the client's held-out rows (row count, loss, accuracy and AUC or RMSE and R²)",
                "server",
                "every round the client is selected for, and after training",
            ));
        }
        if let AggregationWeighting::Contribution { .. } = self.weighting {
            out.push(stat(
                "validation_quality",
                "the quality of the client's locally trained model on its held-out rows (accuracy, or 1/(1 + RMSE))",
                "server",
                each_round,
            ));
        }
        match &self.secure_aggregation {
            None => out.push(stat(
                "update",
                match self.sparsification {
                    Sparsification::TopK { .. } => {
                        "the client's weighted, clipped model update: its largest coordinates and their indices (noise, if any, is added by the server to the sum)"
                    }
                    _ => {
                        "the client's weighted, clipped model update (noise, if any, is added by the server to the sum)"
                    }
                },
                "server",
                each_round,
            )),
            Some(_) => out.push(stat(
                "participation",
                "that the client takes part in the round's secure aggregation (its name and ephemeral public keys in the protocol's directory)",
                "server and the round's other participants",
                each_round,
            )),
        }
        out
    }

    /// Under DP, the job's privacy report with the `ε` spent; `None` without DP.
    pub fn privacy_report(&self, epsilon: Option<f64>) -> Option<PrivacyReport> {
        let dp = self.dp.as_ref()?;
        let q = self.accounted_sampling_rate();
        let f = self.selection.fraction;
        let poisson = self.selection.mode == SelectionMode::Poisson && f < 1.0;
        let amplification_reason = if q < 1.0 {
            format!(
                "each round is charged as the Poisson-subsampled Gaussian mechanism at rate q = {q}: the server draws the sample from operating-system randomness and each client learns only whether it was selected itself; the guarantee holds against the clients and outsiders (under central noise the server sees every update)"
            )
        } else if poisson {
            format!(
                "no amplification: with secure aggregation the round's participants learn each other from the protocol's key directory, and the server the distributed noise protects against drew the sample; each round is charged at q = 1 although clients are selected with probability {f}"
            )
        } else {
            "no amplification: every client takes part in every round (q = 1)".into()
        };
        Some(PrivacyReport {
            epsilon: epsilon.filter(|e| e.is_finite()),
            delta: dp.delta,
            clip_norm: dp.clip_norm,
            noise: match self.secure_aggregation {
                Some(_) => NoisePlacement::Distributed,
                None => NoisePlacement::Central,
            },
            accounted_sampling_rate: q,
            amplification: q < 1.0,
            amplification_reason,
            cleartext: self.cleartext_statistics(),
        })
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

/// Refuses a noise multiplier under which the noise would swamp what the clipped updates can
/// say.
///
/// Each contribution is clipped to L2 norm `S`, so it moves any single coordinate of the sum
/// by at most `S`, and the `m = fraction · n_clients` participants a round expects move it by
/// at most `m·S` together (weights `ω ≤ 1`). The noise on that coordinate has standard
/// deviation `σ·S`. At `σ ≥ m` even updates that all agree and all sit on one coordinate are
/// within one standard deviation of the noise, and on a model of `P` coordinates the
/// per-coordinate signal is typically `√P` times smaller still: training would follow the
/// noise. The clip cancels from the comparison, so the rule is `σ < m` for every stage of the
/// schedule that starts within the job's rounds. The fixed normaliser divides signal and noise
/// alike and does not change it. (`σ = 0`, no noise, always passes.)
fn check_signal_exceeds_noise(
    dp: &DpConfig,
    fraction: f64,
    n_clients: usize,
    rounds: usize,
) -> Result<(), HflError> {
    let expected = fraction * n_clients as f64;
    let swamped = dp
        .noise
        .stages
        .iter()
        .filter(|s| s.from_round <= rounds)
        .find(|s| s.noise_multiplier > 0.0 && s.noise_multiplier >= expected);
    if let Some(stage) = swamped {
        let sigma = stage.noise_multiplier;
        return Err(HflError::Config(format!(
            "DP noise would swamp the clipped updates: noise multiplier {sigma} (dp.noise, from round {}) adds noise of standard deviation {sigma} × dp.clip_norm = {} to each coordinate of the summed updates, while the {expected} clients expected per round (selection.fraction {fraction} × {n_clients} clients), each clipped to dp.clip_norm = {}, can move a coordinate by at most {expected} × dp.clip_norm = {} together; use a noise multiplier below {expected}, more clients, or a larger selection.fraction",
            stage.from_round,
            sigma * dp.clip_norm,
            dp.clip_norm,
            expected * dp.clip_norm,
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_describes_job_parameters_only() {
        /// Every property name anywhere in the schema.
        fn property_names(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                        out.extend(props.keys().cloned());
                    }
                    map.values().for_each(|x| property_names(x, out));
                }
                serde_json::Value::Array(items) => {
                    items.iter().for_each(|x| property_names(x, out))
                }
                _ => {}
            }
        }
        let schema = serde_json::to_value(schemars::schema_for!(FedAvgParams)).unwrap();
        let mut names = Vec::new();
        property_names(&schema, &mut names);
        // The DP settings' own fields are there; the test-only seed is not (the description
        // may still say that a job cannot set it).
        assert!(names.iter().any(|n| n == "clip_norm"), "{names:?}");
        assert!(!names.iter().any(|n| n == "noise_seed"), "{names:?}");
        let props = &schema["properties"];
        assert_eq!(props["rounds"]["default"], 10);
        assert_eq!(props["rounds"]["minimum"], 1);
        assert_eq!(props["seed"]["default"], 42);
        assert_eq!(
            props["model"]["default"],
            serde_json::json!({"kind": "logistic"})
        );
        assert_eq!(props["validation_fraction"]["exclusiveMaximum"], 0.9);
        let defs = &schema["$defs"];
        assert_eq!(
            defs["ClientSelection"]["properties"]["fraction"]["maximum"],
            1.0
        );
        assert_eq!(
            defs["ClientSelection"]["properties"]["fraction"]["exclusiveMinimum"],
            0.0
        );
        assert_eq!(
            defs["LocalTraining"]["properties"]["batch_size"]["default"],
            32
        );
        assert_eq!(
            defs["SecureAggregation"]["properties"]["ring_bits"]["maximum"],
            64
        );
        let dp = &defs["DpConfig"];
        assert_eq!(dp["additionalProperties"], false);
        assert!(dp["properties"].get("noise_seed").is_none());
        assert!(dp["properties"].get("clip_norm").is_some());
        assert!(
            dp["properties"]["delta"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("(ε, δ)")),
            "{}",
            dp["properties"]["delta"]
        );
        // Every serialised field, and nothing else, is in the schema.
        let defaults = serde_json::to_value(FedAvgParams::default()).unwrap();
        let mut fields: Vec<&String> = defaults.as_object().unwrap().keys().collect();
        let mut in_schema: Vec<&String> = props.as_object().unwrap().keys().collect();
        fields.sort();
        in_schema.sort();
        assert_eq!(fields, in_schema);
    }

    #[test]
    fn range_checks_need_no_roster_and_the_client_count_checks_come_on_top() {
        let sa = FedAvgParams {
            secure_aggregation: Some(SecureAggregation::default()),
            ..FedAvgParams::default()
        };
        assert!(sa.validate_ranges().is_ok());
        let err = sa.validate(1).unwrap_err().to_string();
        assert!(err.contains("at least 2 clients"), "{err}");
        assert!(sa.validate(3).is_ok());
        let threshold_one = FedAvgParams {
            secure_aggregation: Some(SecureAggregation {
                threshold: Some(1),
                ..SecureAggregation::default()
            }),
            ..FedAvgParams::default()
        };
        let err = threshold_one.validate_ranges().unwrap_err().to_string();
        assert!(err.contains("threshold 1"), "{err}");
        let threshold_five = FedAvgParams {
            secure_aggregation: Some(SecureAggregation {
                threshold: Some(5),
                ..SecureAggregation::default()
            }),
            ..FedAvgParams::default()
        };
        assert!(threshold_five.validate_ranges().is_ok());
        assert!(threshold_five.validate(3).is_err());
        let no_rounds = FedAvgParams {
            rounds: 0,
            ..FedAvgParams::default()
        };
        assert!(no_rounds.validate_ranges().is_err());
        assert!(FedAvgParams::default().validate(0).is_err());
    }

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

    fn with_noise(stages: &[(usize, f64)], fraction: f64, rounds: usize) -> FedAvgParams {
        use crate::dp::{NoiseSchedule, NoiseStage};
        FedAvgParams {
            rounds,
            selection: ClientSelection {
                fraction,
                mode: SelectionMode::Poisson,
            },
            dp: Some(DpConfig {
                clip_norm: 0.5,
                noise: NoiseSchedule {
                    stages: stages
                        .iter()
                        .map(|&(from_round, noise_multiplier)| NoiseStage {
                            from_round,
                            noise_multiplier,
                        })
                        .collect(),
                },
                delta: 1e-5,
                epsilon_budget: None,
                noise_seed: None,
            }),
            ..FedAvgParams::default()
        }
    }

    /// The rule is σ < fraction × clients: 10 clients at rate 0.3 expect 3 per round.
    #[test]
    fn noise_at_or_above_the_expected_participants_is_refused() {
        assert!(with_noise(&[(1, 2.9)], 0.3, 10).validate(10).is_ok());
        let err = with_noise(&[(1, 3.0)], 0.3, 10)
            .validate(10)
            .unwrap_err()
            .to_string();
        for part in [
            "swamp",
            "noise multiplier 3",
            "dp.clip_norm = 0.5",
            "standard deviation 3 × dp.clip_norm = 1.5",
            "selection.fraction 0.3 × 10 clients",
            "below 3",
        ] {
            assert!(err.contains(part), "'{part}' missing: {err}");
        }
        // Fewer clients make the same noise too much.
        assert!(with_noise(&[(1, 2.9)], 0.3, 10).validate(9).is_err());
        // A later stage is checked once it falls within the job's rounds, and named.
        let staged = with_noise(&[(1, 1.0), (5, 4.0)], 0.3, 4);
        assert!(staged.validate(10).is_ok());
        let err = FedAvgParams {
            rounds: 5,
            ..staged
        }
        .validate(10)
        .unwrap_err()
        .to_string();
        assert!(err.contains("from round 5"), "{err}");
        // No noise is no guarantee (ε = ∞, reported so), not swamped updates.
        assert!(with_noise(&[(1, 0.0)], 0.3, 10).validate(2).is_ok());
    }

    /// `noise_seed` would let every party regenerate and subtract the noise: a job's
    /// parameters cannot carry it, in either direction.
    #[test]
    fn a_noise_seed_in_job_parameters_is_refused() {
        let mut params = with_noise(&[(1, 1.0)], 1.0, 3);
        let json = serde_json::to_value(&params).unwrap();
        assert!(json["dp"].get("noise_seed").is_none());
        let back: FedAvgParams = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, params);

        let mut seeded = json.clone();
        seeded["dp"]["noise_seed"] = serde_json::json!(7);
        let err = serde_json::from_value::<FedAvgParams>(seeded)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `noise_seed`"), "{err}");

        // Set in code it works, and does not reach the serialised form or the fingerprint.
        let fingerprint = params.fingerprint();
        params.dp = params.dp.map(|d| d.with_noise_seed(7));
        assert_eq!(params.dp.as_ref().unwrap().noise_seed, Some(7));
        assert!(
            !serde_json::to_string(&params)
                .unwrap()
                .contains("noise_seed")
        );
        assert_eq!(params.fingerprint(), fingerprint);
    }
}
