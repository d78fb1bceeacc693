//! Training parameters, their defaults and their validation.

use ferry_crypto::SchemeKind;
use ferry_ml::binning::MAX_BINS;
use serde::{Deserialize, Serialize};

/// The loss the trees minimise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Objective {
    /// Binary classification, labels 0/1, logistic loss. One tree per round.
    BinaryLogistic,
    /// Regression with squared error. One tree per round.
    SquaredError,
    /// Multi-class classification with softmax cross-entropy, labels `0..num_class`.
    /// One tree per class per round.
    MultiSoftmax { num_class: usize },
}

impl Objective {
    /// Number of scores per row (and of trees per boosting round).
    pub fn n_outputs(&self) -> usize {
        match self {
            Objective::MultiSoftmax { num_class } => *num_class,
            _ => 1,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Objective::BinaryLogistic => "binary_logistic",
            Objective::SquaredError => "squared_error",
            Objective::MultiSoftmax { .. } => "multi_softmax",
        }
    }
}

/// Parameters of a SecureBoost job. Every party passes the same parameters; a host uses the
/// binning and key settings and checks the key the guest sends against them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecureBoostParams {
    pub objective: Objective,
    /// Boosting rounds (each adds one tree, or `num_class` trees for multi-class).
    pub num_trees: usize,
    /// Depth of the deepest leaf (the root has depth 0).
    pub max_depth: usize,
    /// Shrinkage applied to every leaf value.
    pub learning_rate: f64,
    /// Smallest hessian sum a child may have.
    pub min_child_weight: f64,
    /// L2 regularisation of leaf values.
    pub lambda: f64,
    /// Smallest loss reduction a split must achieve (same scale as XGBoost's `gamma`).
    pub gamma: f64,
    /// Fraction of rows used for each tree (Bernoulli sampling, like XGBoost).
    pub subsample: f64,
    /// Fraction of features (over all parties) considered for each tree.
    pub colsample: f64,
    /// Bins per feature for non-missing values (a missing-value bin comes on top).
    pub max_bin: usize,
    /// Stop when the validation metric has not improved for this many rounds; the model keeps
    /// the rounds up to the best one. Needs a validation set.
    pub early_stopping_rounds: Option<usize>,
    /// Seed of row and feature sampling (keys and encryption always use OS randomness).
    pub seed: u64,
    pub he_scheme: SchemeKind,
    pub key_bits: u32,
    /// Keys below 2048 bits are refused unless this is set (tests and experiments only).
    /// Never read from a job spec or any JSON (`serde(skip)`): a proposer could otherwise make
    /// every party accept keys small enough to factor. Code sets it — tests, benchmarks, and a
    /// node whose own local policy allows smaller keys.
    #[serde(skip)]
    pub allow_insecure_key_size: bool,
    /// Gradients and hessians are quantised to signed integers of this many bits (relative to
    /// the largest magnitude of the tree) before encryption; the centralised reference uses the
    /// same quantisation, which is what makes federated training lossless.
    pub precision_bits: u32,
}

impl Default for SecureBoostParams {
    fn default() -> Self {
        SecureBoostParams {
            objective: Objective::BinaryLogistic,
            num_trees: 10,
            max_depth: 3,
            learning_rate: 0.3,
            min_child_weight: 1.0,
            lambda: 1.0,
            gamma: 0.0,
            subsample: 1.0,
            colsample: 1.0,
            max_bin: 32,
            early_stopping_rounds: None,
            seed: 42,
            he_scheme: SchemeKind::Paillier,
            key_bits: 2048,
            allow_insecure_key_size: false,
            precision_bits: 32,
        }
    }
}

/// A parameter outside its allowed range.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid SecureBoost parameter '{name}': {reason}")]
pub struct ParamError {
    pub name: &'static str,
    pub reason: String,
}

/// Largest supported depth: node ids and per-level messages stay small.
pub const MAX_DEPTH: usize = 20;

fn err(name: &'static str, reason: impl Into<String>) -> ParamError {
    ParamError {
        name,
        reason: reason.into(),
    }
}

fn fraction(name: &'static str, v: f64) -> Result<(), ParamError> {
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(())
    } else {
        Err(err(name, format!("must be in (0, 1], got {v}")))
    }
}

fn non_negative(name: &'static str, v: f64) -> Result<(), ParamError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(err(name, format!("must be a finite number ≥ 0, got {v}")))
    }
}

impl SecureBoostParams {
    /// Checks every parameter; the message names the parameter and the allowed range.
    pub fn validate(&self) -> Result<(), ParamError> {
        if let Objective::MultiSoftmax { num_class } = self.objective
            && num_class < 2
        {
            return Err(err(
                "objective.num_class",
                format!("multi-class needs at least 2 classes, got {num_class}"),
            ));
        }
        if self.num_trees == 0 {
            return Err(err("num_trees", "must be at least 1"));
        }
        if !(1..=MAX_DEPTH).contains(&self.max_depth) {
            return Err(err(
                "max_depth",
                format!("must be between 1 and {MAX_DEPTH}, got {}", self.max_depth),
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(err(
                "learning_rate",
                format!("must be a finite number > 0, got {}", self.learning_rate),
            ));
        }
        non_negative("min_child_weight", self.min_child_weight)?;
        non_negative("lambda", self.lambda)?;
        non_negative("gamma", self.gamma)?;
        fraction("subsample", self.subsample)?;
        fraction("colsample", self.colsample)?;
        if !(2..=MAX_BINS).contains(&self.max_bin) {
            return Err(err(
                "max_bin",
                format!("must be between 2 and {MAX_BINS}, got {}", self.max_bin),
            ));
        }
        if self.early_stopping_rounds == Some(0) {
            return Err(err(
                "early_stopping_rounds",
                "must be at least 1 (or absent to train every round)",
            ));
        }
        let min_bits = if self.allow_insecure_key_size {
            ferry_crypto::params::MIN_KEY_BITS
        } else {
            ferry_crypto::params::DEFAULT_KEY_BITS
        };
        if self.key_bits < min_bits || self.key_bits > ferry_crypto::params::MAX_KEY_BITS {
            return Err(err(
                "key_bits",
                format!(
                    "must be between {min_bits} and {} bits, got {} \
                     (smaller keys are for tests only and cannot be asked for in parameters)",
                    ferry_crypto::params::MAX_KEY_BITS,
                    self.key_bits
                ),
            ));
        }
        if !self.key_bits.is_multiple_of(2) {
            return Err(err("key_bits", "must be even"));
        }
        if !(8..=40).contains(&self.precision_bits) {
            return Err(err(
                "precision_bits",
                format!("must be between 8 and 40, got {}", self.precision_bits),
            ));
        }
        Ok(())
    }

    /// Trees per boosting round.
    pub fn trees_per_round(&self) -> usize {
        self.objective.n_outputs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_issue_setting() {
        let p = SecureBoostParams::default();
        p.validate().unwrap();
        assert_eq!((p.max_depth, p.max_bin, p.learning_rate), (3, 32, 0.3));
        assert_eq!(p.he_scheme, SchemeKind::Paillier);
        assert_eq!(p.key_bits, 2048);
    }

    #[test]
    fn each_bad_parameter_is_named() {
        type Mutation = Box<dyn Fn(&mut SecureBoostParams)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("num_trees", Box::new(|p| p.num_trees = 0)),
            ("max_depth", Box::new(|p| p.max_depth = 0)),
            ("max_depth", Box::new(|p| p.max_depth = 99)),
            ("learning_rate", Box::new(|p| p.learning_rate = 0.0)),
            ("learning_rate", Box::new(|p| p.learning_rate = f64::NAN)),
            ("lambda", Box::new(|p| p.lambda = -1.0)),
            ("gamma", Box::new(|p| p.gamma = f64::INFINITY)),
            ("min_child_weight", Box::new(|p| p.min_child_weight = -0.5)),
            ("subsample", Box::new(|p| p.subsample = 0.0)),
            ("colsample", Box::new(|p| p.colsample = 1.5)),
            ("max_bin", Box::new(|p| p.max_bin = 1)),
            (
                "early_stopping_rounds",
                Box::new(|p| p.early_stopping_rounds = Some(0)),
            ),
            ("key_bits", Box::new(|p| p.key_bits = 1024)),
            ("precision_bits", Box::new(|p| p.precision_bits = 60)),
            (
                "objective.num_class",
                Box::new(|p| p.objective = Objective::MultiSoftmax { num_class: 1 }),
            ),
        ];
        for (name, mutate) in cases {
            let mut p = SecureBoostParams::default();
            mutate(&mut p);
            let e = p.validate().unwrap_err();
            assert_eq!(e.name, name, "{e}");
            assert!(e.to_string().contains(name));
        }
    }

    #[test]
    fn small_keys_need_the_explicit_flag() {
        let mut p = SecureBoostParams {
            key_bits: 512,
            ..SecureBoostParams::default()
        };
        assert!(p.validate().is_err());
        p.allow_insecure_key_size = true;
        p.validate().unwrap();
    }

    #[test]
    fn params_read_from_json_with_defaults_and_reject_typos() {
        let p: SecureBoostParams = serde_json::from_str(
            r#"{"num_trees": 5, "objective": {"kind": "multi_softmax", "num_class": 4},
                "he_scheme": "ou"}"#,
        )
        .unwrap();
        assert_eq!(p.num_trees, 5);
        assert_eq!(p.objective, Objective::MultiSoftmax { num_class: 4 });
        assert_eq!(p.he_scheme, SchemeKind::OkamotoUchiyama);
        assert_eq!(p.max_depth, 3);
        assert!(serde_json::from_str::<SecureBoostParams>(r#"{"num_tree": 5}"#).is_err());
    }

    #[test]
    fn the_insecure_key_permission_cannot_come_from_json() {
        let e = serde_json::from_str::<SecureBoostParams>(
            r#"{"key_bits": 512, "allow_insecure_key_size": true}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("allow_insecure_key_size"), "{e}");
        let p: SecureBoostParams = serde_json::from_str(r#"{"key_bits": 1024}"#).unwrap();
        assert!(!p.allow_insecure_key_size);
        assert!(p.validate().is_err());
        let v = serde_json::to_value(SecureBoostParams {
            allow_insecure_key_size: true,
            ..Default::default()
        })
        .unwrap();
        assert!(v.get("allow_insecure_key_size").is_none());
    }
}
