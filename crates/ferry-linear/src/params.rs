//! Training parameters: what the user configures, with defaults and validation.
//!
//! Every party of a job is given the same [`LinearParams`]; the guest sends its copy to the
//! others at the start of training and every party refuses to go on if its own copy differs
//! (a misconfigured job fails at once with the differing field named, instead of training a
//! model whose parts do not fit together). The exception is `task`, which the others take from
//! the guest: the guest's label may have chosen it.

use crate::error::LinearError;
use ferry_crypto::HeSettings;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Binary classification, labels 0/1, sigmoid link. The federated gradient uses the
    /// second-order Taylor expansion of the logistic loss around 0 (see the crate docs).
    Logistic,
    /// Least-squares regression, identity link (exact, no approximation).
    Linear,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Logistic => "logistic",
            Task::Linear => "linear",
        }
    }
}

/// Gradient step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Optimizer {
    /// `w ← w − lr · g`.
    Sgd {
        /// Step size, a finite number above 0.
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        lr: f64,
    },
    /// Adam (Kingma & Ba, 2015) with bias correction.
    Adam {
        /// Step size, a finite number above 0.
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        lr: f64,
        /// Decay of the first-moment estimate, in [0, 1).
        #[serde(default = "default_beta1")]
        #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
        beta1: f64,
        /// Decay of the second-moment estimate, in [0, 1).
        #[serde(default = "default_beta2")]
        #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
        beta2: f64,
        /// Added to the denominator, a finite number above 0.
        #[serde(default = "default_epsilon")]
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        epsilon: f64,
    },
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_epsilon() -> f64 {
    1e-8
}

impl Optimizer {
    pub fn lr(&self) -> f64 {
        match *self {
            Optimizer::Sgd { lr } | Optimizer::Adam { lr, .. } => lr,
        }
    }
}

/// Regularisation of the weights (never of the intercept).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Penalty {
    /// No regularisation.
    None,
    /// `alpha · Σ|w|`, applied as a proximal (soft-threshold) step after each update.
    L1 {
        /// Strength, a finite number ≥ 0.
        #[schemars(range(min = 0.0))]
        alpha: f64,
    },
    /// `alpha/2 · Σw²`, added to the gradient.
    L2 {
        /// Strength, a finite number ≥ 0.
        #[schemars(range(min = 0.0))]
        alpha: f64,
    },
}

/// Which protocol to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// With an arbiter when the roster has one, otherwise between the data parties alone.
    Auto,
    /// The arbiter holds the only secret key and decrypts masked gradients.
    WithArbiter,
    /// No third party: every data party holds its own key.
    WithoutThirdParty,
}

/// The protocol actually run, once [`Mode::Auto`] is resolved against the roster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedMode {
    WithArbiter,
    WithoutThirdParty,
}

impl Mode {
    /// Resolves `Auto`; fails when an arbiter is required but absent.
    pub fn resolve(self, roster_has_arbiter: bool) -> Result<ResolvedMode, LinearError> {
        match (self, roster_has_arbiter) {
            (Mode::Auto, true) | (Mode::WithArbiter, true) => Ok(ResolvedMode::WithArbiter),
            (Mode::Auto, false) | (Mode::WithoutThirdParty, _) => {
                Ok(ResolvedMode::WithoutThirdParty)
            }
            (Mode::WithArbiter, false) => Err(LinearError::InvalidParams(
                "mode 'with_arbiter' needs an arbiter in the job's roster: add a party with \
                 role arbiter, or use mode 'without_third_party' or 'auto'"
                    .into(),
            )),
        }
    }
}

/// Fixed-point precision of the values that enter homomorphic arithmetic.
///
/// Features are quantised per column to `feature_bits` signed bits relative to the column's
/// largest magnitude; residual shares become integers with `residual_frac_bits` fractional bits
/// and must stay below `2^residual_int_bits` in magnitude. Larger values cost plaintext space
/// (and, for the residual, time: the encrypted gradient costs about one ciphertext addition per
/// row and residual bit).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Precision {
    /// Signed bits of each quantised feature value, relative to its column's largest magnitude.
    #[schemars(range(min = 8, max = 48))]
    pub feature_bits: u32,
    /// Fractional bits of the quantised residual shares.
    #[schemars(range(min = 8, max = 40))]
    pub residual_frac_bits: u32,
    /// Residual shares must stay below `2^residual_int_bits` in magnitude.
    #[schemars(range(min = 2, max = 30))]
    pub residual_int_bits: u32,
}

impl Default for Precision {
    fn default() -> Self {
        Precision {
            feature_bits: 24,
            residual_frac_bits: 20,
            residual_int_bits: 16,
        }
    }
}

/// Stop when the validation loss has not improved for `patience` epochs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// Epochs without improvement before training stops.
    #[schemars(range(min = 1))]
    pub patience: u32,
    /// Improvements smaller than this do not count.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub min_delta: f64,
    /// Keep the weights of the best validation epoch (otherwise the last epoch's).
    #[serde(default = "default_true")]
    pub restore_best: bool,
}

fn default_true() -> bool {
    true
}

/// Everything that configures hetero linear/logistic regression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LinearParams {
    /// `logistic` (labels 0/1) or `linear` (least squares). Left out, it follows the guest's
    /// label: a continuous label trains linear regression; hosts and the arbiter take the
    /// guest's task.
    pub task: Task,
    /// `{method: sgd, lr}` or `{method: adam, lr, beta1, beta2, epsilon}`.
    pub optimizer: Optimizer,
    /// `{kind: none}`, `{kind: l1, alpha}` or `{kind: l2, alpha}`; never on the intercept.
    pub penalty: Penalty,
    /// Rows per mini-batch; `None` uses the whole training set in every step.
    #[schemars(range(min = 1))]
    pub batch_size: Option<usize>,
    /// Passes over the training data.
    #[schemars(range(min = 1))]
    pub max_epochs: usize,
    /// Stop when the training loss changes by less than this between epochs (0 disables).
    #[schemars(range(min = 0.0))]
    pub tolerance: f64,
    /// Needs a validation set at every party.
    pub early_stopping: Option<EarlyStopping>,
    /// The guest learns an intercept.
    pub fit_intercept: bool,
    /// Visit rows in a new random order every epoch (all parties derive it from `seed`).
    pub shuffle: bool,
    /// Seeds the batch order. Cryptographic randomness never comes from this seed.
    pub seed: u64,
    /// Homomorphic encryption of every key in the job: `{scheme: paillier | ou, key_bits}`.
    pub he: HeSettings,
    /// `auto` (with an arbiter when the roster has one), `with_arbiter` or
    /// `without_third_party`.
    pub mode: Mode,
    /// Fixed-point widths of the values that enter homomorphic arithmetic.
    pub precision: Precision,
    /// Seeds keys, masks and encryption randomness (tests only: makes runs bit-for-bit
    /// reproducible, and every secret predictable). Cannot be set from a configuration file.
    #[serde(skip)]
    #[schemars(skip)]
    pub insecure_test_rng_seed: Option<u64>,
}

impl Default for LinearParams {
    fn default() -> Self {
        LinearParams {
            task: Task::Logistic,
            optimizer: Optimizer::Sgd { lr: 0.15 },
            penalty: Penalty::None,
            batch_size: None,
            max_epochs: 20,
            tolerance: 1e-4,
            early_stopping: None,
            fit_intercept: true,
            shuffle: true,
            seed: 0,
            he: HeSettings::default(),
            mode: Mode::Auto,
            precision: Precision::default(),
            insecure_test_rng_seed: None,
        }
    }
}

fn bad(msg: impl Into<String>) -> LinearError {
    LinearError::InvalidParams(msg.into())
}

fn finite_positive(name: &str, v: f64) -> Result<(), LinearError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(bad(format!(
            "{name} must be a positive finite number, got {v}"
        )))
    }
}

impl LinearParams {
    /// The same parameters with `key_bits` keys, accepted even below 2048 bits: for tests and
    /// benchmarks only (see [`HeSettings::allow_insecure_key_bits`]).
    pub fn with_insecure_key_bits(mut self, key_bits: u32) -> Self {
        self.he.key_bits = key_bits;
        self.he.allow_insecure_key_bits = true;
        self
    }

    /// Reads parameters from JSON (unknown fields are an error, missing ones take defaults)
    /// and validates them.
    pub fn from_json(json: &str) -> Result<Self, LinearError> {
        let p: LinearParams = serde_json::from_str(json)
            .map_err(|e| bad(format!("cannot read hetero linear parameters: {e}")))?;
        p.validate()?;
        Ok(p)
    }

    /// Checks every field; the error names the field and the accepted range.
    pub fn validate(&self) -> Result<(), LinearError> {
        match self.optimizer {
            Optimizer::Sgd { lr } => finite_positive("optimizer.lr", lr)?,
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                epsilon,
            } => {
                finite_positive("optimizer.lr", lr)?;
                for (name, b) in [("optimizer.beta1", beta1), ("optimizer.beta2", beta2)] {
                    if !(0.0..1.0).contains(&b) {
                        return Err(bad(format!("{name} must be in [0, 1), got {b}")));
                    }
                }
                finite_positive("optimizer.epsilon", epsilon)?;
            }
        }
        match self.penalty {
            Penalty::None => {}
            Penalty::L1 { alpha } | Penalty::L2 { alpha } => {
                if !(alpha.is_finite() && alpha >= 0.0) {
                    return Err(bad(format!(
                        "penalty.alpha must be a non-negative finite number, got {alpha}"
                    )));
                }
            }
        }
        if let Some(b) = self.batch_size
            && b == 0
        {
            return Err(bad(
                "batch_size must be at least 1 (or null for full-batch training)",
            ));
        }
        if self.max_epochs == 0 {
            return Err(bad("max_epochs must be at least 1"));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(bad(format!(
                "tolerance must be a non-negative finite number, got {}",
                self.tolerance
            )));
        }
        if let Some(es) = &self.early_stopping {
            if es.patience == 0 {
                return Err(bad("early_stopping.patience must be at least 1"));
            }
            if !(es.min_delta.is_finite() && es.min_delta >= 0.0) {
                return Err(bad(
                    "early_stopping.min_delta must be a non-negative number",
                ));
            }
        }
        self.he.validate().map_err(|e| bad(format!("he.{e}")))?;
        let p = &self.precision;
        if !(8..=48).contains(&p.feature_bits) {
            return Err(bad(format!(
                "precision.feature_bits must be in 8..=48, got {}",
                p.feature_bits
            )));
        }
        if !(8..=40).contains(&p.residual_frac_bits) {
            return Err(bad(format!(
                "precision.residual_frac_bits must be in 8..=40, got {}",
                p.residual_frac_bits
            )));
        }
        if !(2..=30).contains(&p.residual_int_bits) {
            return Err(bad(format!(
                "precision.residual_int_bits must be in 2..=30, got {}",
                p.residual_int_bits
            )));
        }
        Ok(())
    }

    /// The differences between two parties' parameters, as `field: ours vs theirs` lines
    /// (empty when they agree).
    pub(crate) fn differences(&self, theirs: &LinearParams) -> Vec<String> {
        let a = serde_json::to_value(self).unwrap_or_default();
        let b = serde_json::to_value(theirs).unwrap_or_default();
        let mut out = Vec::new();
        diff_values("", &a, &b, &mut out);
        out
    }

    /// Largest number of rows one step sums over, for `n` training rows.
    pub(crate) fn effective_batch(&self, n: usize) -> usize {
        self.batch_size.map_or(n, |b| b.min(n)).max(1)
    }
}

fn diff_values(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_values(
                    &p,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push(format!("{path}: {a} here vs {b} at the guest")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_crypto::SchemeKind;

    #[test]
    fn the_schema_describes_job_parameters_only() {
        let schema = serde_json::to_value(schemars::schema_for!(LinearParams)).unwrap();
        let text = schema.to_string();
        assert!(!text.contains("insecure_test_rng_seed"), "{text}");
        assert!(!text.contains("allow_insecure_key_bits"), "{text}");
        let props = &schema["properties"];
        assert_eq!(props["max_epochs"]["default"], 20);
        assert_eq!(props["max_epochs"]["minimum"], 1);
        assert_eq!(props["task"]["default"], "logistic");
        assert_eq!(
            props["he"]["default"],
            serde_json::json!({"scheme": "paillier", "key_bits": 2048})
        );
        assert_eq!(
            props["optimizer"]["default"],
            serde_json::json!({"method": "sgd", "lr": 0.15})
        );
        assert!(
            props["batch_size"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("mini-batch")),
            "{}",
            props["batch_size"]
        );
        let precision = &schema["$defs"]["Precision"]["properties"];
        assert_eq!(precision["feature_bits"]["minimum"], 8);
        assert_eq!(precision["feature_bits"]["maximum"], 48);
        // Every serialised field, and nothing else, is in the schema.
        let defaults = serde_json::to_value(LinearParams::default()).unwrap();
        let mut fields: Vec<&String> = defaults.as_object().unwrap().keys().collect();
        let mut in_schema: Vec<&String> = props.as_object().unwrap().keys().collect();
        fields.sort();
        in_schema.sort();
        assert_eq!(fields, in_schema);
    }

    #[test]
    fn defaults_are_valid_and_round_trip_through_json() {
        let p = LinearParams::default();
        p.validate().unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(LinearParams::from_json(&json).unwrap(), p);
    }

    #[test]
    fn json_with_partial_fields_takes_defaults() {
        let p = LinearParams::from_json(
            r#"{"task":"linear","optimizer":{"method":"adam","lr":0.01},
                "penalty":{"kind":"l2","alpha":0.1},"batch_size":64,"he":{"scheme":"ou"}}"#,
        )
        .unwrap();
        assert_eq!(p.task, Task::Linear);
        assert_eq!(
            p.optimizer,
            Optimizer::Adam {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8
            }
        );
        assert_eq!(p.penalty, Penalty::L2 { alpha: 0.1 });
        assert_eq!(p.batch_size, Some(64));
        assert_eq!(p.he.scheme, SchemeKind::OkamotoUchiyama);
        assert_eq!(p.he.key_bits, 2048);
        assert_eq!(p.max_epochs, 20);
    }

    #[test]
    fn invalid_values_are_rejected_with_the_field_named() {
        let cases: Vec<(&str, &str)> = vec![
            (r#"{"optimizer":{"method":"sgd","lr":-1}}"#, "optimizer.lr"),
            (
                r#"{"optimizer":{"method":"adam","lr":0.1,"beta1":1.0}}"#,
                "optimizer.beta1",
            ),
            (r#"{"batch_size":0}"#, "batch_size"),
            (r#"{"max_epochs":0}"#, "max_epochs"),
            (r#"{"penalty":{"kind":"l1","alpha":-0.5}}"#, "penalty.alpha"),
            (r#"{"he":{"key_bits":1024}}"#, "he.key_bits"),
            (r#"{"he":{"key_bits":1025}}"#, "he.key_bits"),
            (r#"{"tolerance":-1}"#, "tolerance"),
            (r#"{"early_stopping":{"patience":0}}"#, "patience"),
            (r#"{"precision":{"feature_bits":4}}"#, "feature_bits"),
            (r#"{"learning_rate":0.1}"#, "learning_rate"),
            (r#"{"task":"poisson"}"#, "poisson"),
        ];
        for (json, field) in cases {
            let err = LinearParams::from_json(json).unwrap_err().to_string();
            assert!(
                err.contains(field),
                "{json}: error '{err}' should name {field}"
            );
        }
        let small = LinearParams::from_json(r#"{"he":{"key_bits":1024}}"#)
            .unwrap_err()
            .to_string();
        assert!(small.contains("tests only"), "{small}");
    }

    /// A job spec cannot make the parties accept breakable keys: the knob is refused in JSON,
    /// never written out, and only code can set it.
    #[test]
    fn insecure_key_bits_cannot_come_from_json() {
        for json in [
            r#"{"he":{"key_bits":1024,"allow_insecure_key_bits":true}}"#,
            r#"{"he":{"allow_insecure_key_bits":false}}"#,
        ] {
            let err = LinearParams::from_json(json).unwrap_err().to_string();
            assert!(
                err.contains("unknown field `allow_insecure_key_bits`"),
                "{json}: {err}"
            );
        }
        let small = LinearParams::default().with_insecure_key_bits(512);
        small.validate().unwrap();
        let json = serde_json::to_string(&small).unwrap();
        assert!(!json.contains("allow_insecure_key_bits"), "{json}");
        // Read back, the parameters are the same job but not the permission, which the
        // reading party must grant itself.
        let back = serde_json::from_str::<LinearParams>(&json).unwrap();
        assert!(!back.he.allow_insecure_key_bits);
        assert!(back.validate().is_err());
        assert!(small.differences(&back).is_empty());
    }

    #[test]
    fn mode_resolution_follows_the_roster() {
        assert_eq!(Mode::Auto.resolve(true).unwrap(), ResolvedMode::WithArbiter);
        assert_eq!(
            Mode::Auto.resolve(false).unwrap(),
            ResolvedMode::WithoutThirdParty
        );
        assert_eq!(
            Mode::WithoutThirdParty.resolve(true).unwrap(),
            ResolvedMode::WithoutThirdParty
        );
        let err = Mode::WithArbiter.resolve(false).unwrap_err().to_string();
        assert!(err.contains("arbiter"), "{err}");
    }

    #[test]
    fn differences_name_the_fields() {
        let a = LinearParams::default();
        let mut b = a.clone();
        b.batch_size = Some(10);
        b.he.key_bits = 3072;
        let d = a.differences(&b);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("batch_size"), "{d:?}");
        assert!(d[1].starts_with("he.key_bits"), "{d:?}");
        assert!(a.differences(&a.clone()).is_empty());
    }
}
