//! Training parameters, their defaults and their validation.

use ferry_crypto::HeSettings;
use ferry_ml::binning::MAX_BINS;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most classes a multi-class objective may have: every boosting round grows one tree per
/// class, so the bound keeps a job's work (and a label column mistaken for classes) in check.
pub const MAX_NUM_CLASS: usize = 1000;

/// The loss the trees minimise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Objective {
    /// Binary classification, labels 0/1, logistic loss. One tree per round.
    BinaryLogistic,
    /// Regression with squared error. One tree per round.
    SquaredError,
    /// Multi-class classification with softmax cross-entropy, labels `0..num_class`.
    /// One tree per class per round.
    MultiSoftmax {
        /// Number of classes (labels `0..num_class`).
        #[schemars(range(min = 2, max = MAX_NUM_CLASS))]
        num_class: usize,
    },
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
/// binning and key settings and checks the key the guest sends against them. The objective
/// matters only at the guest (hosts never see gradients or labels), so a guest whose label
/// chose the objective trains with hosts that kept the default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SecureBoostParams {
    /// The loss: `{kind: binary_logistic}`, `{kind: squared_error}` or
    /// `{kind: multi_softmax, num_class: K}`. Left out, it follows the guest's label
    /// (continuous: squared error, multi-class: softmax, binary: logistic).
    pub objective: Objective,
    /// Boosting rounds (each adds one tree, or `num_class` trees for multi-class).
    #[schemars(range(min = 1))]
    pub num_trees: usize,
    /// Depth of the deepest leaf (the root has depth 0).
    #[schemars(range(min = 1, max = MAX_DEPTH))]
    pub max_depth: usize,
    /// Shrinkage applied to every leaf value (a finite number above 0).
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub learning_rate: f64,
    /// Smallest hessian sum a child may have.
    #[schemars(range(min = 0.0))]
    pub min_child_weight: f64,
    /// L2 regularisation of leaf values.
    #[schemars(range(min = 0.0))]
    pub lambda: f64,
    /// Smallest loss reduction a split must achieve (same scale as XGBoost's `gamma`).
    #[schemars(range(min = 0.0))]
    pub gamma: f64,
    /// Fraction of rows used for each tree (Bernoulli sampling, like XGBoost), in (0, 1].
    #[schemars(range(max = 1.0), extend("exclusiveMinimum" = 0.0))]
    pub subsample: f64,
    /// Fraction of features (over all parties) considered for each tree, in (0, 1].
    #[schemars(range(max = 1.0), extend("exclusiveMinimum" = 0.0))]
    pub colsample: f64,
    /// Bins per feature for non-missing values (a missing-value bin comes on top).
    #[schemars(range(min = 2, max = MAX_BINS))]
    pub max_bin: usize,
    /// Stop when the validation metric has not improved for this many rounds; the model keeps
    /// the rounds up to the best one. Needs a validation set.
    #[schemars(range(min = 1))]
    pub early_stopping_rounds: Option<usize>,
    /// Seed of row and feature sampling (keys and encryption always use OS randomness).
    pub seed: u64,
    /// Homomorphic encryption: `{scheme: paillier | ou, key_bits: 2048}`. The guest generates
    /// the key; every host checks it against its own copy of these settings.
    pub he: HeSettings,
    /// Gradients and hessians are quantised to signed integers of this many bits (relative to
    /// the largest magnitude of the tree) before encryption; the centralised reference uses the
    /// same quantisation, which is what makes federated training lossless.
    #[schemars(range(min = 8, max = 40))]
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
            he: HeSettings::default(),
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
            && !(2..=MAX_NUM_CLASS).contains(&num_class)
        {
            return Err(err(
                "objective.num_class",
                format!("multi-class needs between 2 and {MAX_NUM_CLASS} classes, got {num_class}"),
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
        self.he
            .validate()
            .map_err(|reason| err("he", format!("he.{reason}")))?;
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
    use ferry_crypto::SchemeKind;

    #[test]
    fn defaults_are_valid_and_match_the_issue_setting() {
        let p = SecureBoostParams::default();
        p.validate().unwrap();
        assert_eq!((p.max_depth, p.max_bin, p.learning_rate), (3, 32, 0.3));
        assert_eq!(p.he, HeSettings::default());
        assert_eq!(p.he.scheme, SchemeKind::Paillier);
        assert_eq!(p.he.key_bits, 2048);
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
            ("he", Box::new(|p| p.he.key_bits = 1024)),
            ("he", Box::new(|p| p.he.key_bits = 2049)),
            ("precision_bits", Box::new(|p| p.precision_bits = 60)),
            (
                "objective.num_class",
                Box::new(|p| p.objective = Objective::MultiSoftmax { num_class: 1 }),
            ),
            (
                "objective.num_class",
                Box::new(|p| {
                    p.objective = Objective::MultiSoftmax {
                        num_class: MAX_NUM_CLASS + 1,
                    }
                }),
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
        let mut p = SecureBoostParams::default();
        p.he.key_bits = 512;
        let e = p.validate().unwrap_err();
        assert!(e.to_string().contains("he.key_bits"), "{e}");
        p.he.allow_insecure_key_bits = true;
        p.validate().unwrap();
        let p = SecureBoostParams {
            he: HeSettings::insecure_for_tests(SchemeKind::OkamotoUchiyama, 512),
            ..SecureBoostParams::default()
        };
        p.validate().unwrap();
    }

    #[test]
    fn params_read_from_json_with_defaults_and_reject_typos() {
        let p: SecureBoostParams = serde_json::from_str(
            r#"{"num_trees": 5, "objective": {"kind": "multi_softmax", "num_class": 4},
                "he": {"scheme": "ou"}}"#,
        )
        .unwrap();
        assert_eq!(p.num_trees, 5);
        assert_eq!(p.objective, Objective::MultiSoftmax { num_class: 4 });
        assert_eq!(p.he.scheme, SchemeKind::OkamotoUchiyama);
        assert_eq!(p.he.key_bits, 2048);
        assert_eq!(p.max_depth, 3);
        assert!(serde_json::from_str::<SecureBoostParams>(r#"{"num_tree": 5}"#).is_err());
        // The flat fields of earlier versions are refused, not silently ignored.
        for old in [r#"{"he_scheme": "ou"}"#, r#"{"key_bits": 3072}"#] {
            let e = serde_json::from_str::<SecureBoostParams>(old).unwrap_err();
            assert!(e.to_string().contains("unknown field"), "{old}: {e}");
        }
    }

    #[test]
    fn the_insecure_key_permission_cannot_come_from_json() {
        let e = serde_json::from_str::<SecureBoostParams>(
            r#"{"he": {"key_bits": 512, "allow_insecure_key_bits": true}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("allow_insecure_key_bits"), "{e}");
        let p: SecureBoostParams = serde_json::from_str(r#"{"he": {"key_bits": 1024}}"#).unwrap();
        assert!(!p.he.allow_insecure_key_bits);
        assert!(p.validate().is_err());
        let v = serde_json::to_value(SecureBoostParams {
            he: HeSettings::insecure_for_tests(SchemeKind::Paillier, 512),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            v["he"],
            serde_json::json!({"scheme": "paillier", "key_bits": 512})
        );
    }

    #[test]
    fn the_schema_describes_job_parameters_only() {
        let schema = serde_json::to_value(schemars::schema_for!(SecureBoostParams)).unwrap();
        let text = schema.to_string();
        assert!(!text.contains("allow_insecure_key_bits"), "{text}");
        assert!(!text.contains("allow_insecure_key_size"), "{text}");
        let props = &schema["properties"];
        assert_eq!(props["num_trees"]["default"], 10);
        assert_eq!(props["max_depth"]["default"], 3);
        assert_eq!(props["max_depth"]["minimum"], 1);
        assert_eq!(props["max_depth"]["maximum"], MAX_DEPTH);
        assert_eq!(props["precision_bits"]["maximum"], 40);
        assert_eq!(
            props["he"]["default"],
            serde_json::json!({"scheme": "paillier", "key_bits": 2048})
        );
        assert!(
            props["max_depth"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("deepest leaf")),
            "{}",
            props["max_depth"]
        );
        // Every field of the struct, and nothing else, is in the schema.
        let defaults = serde_json::to_value(SecureBoostParams::default()).unwrap();
        let mut fields: Vec<&String> = defaults.as_object().unwrap().keys().collect();
        let mut in_schema: Vec<&String> = props.as_object().unwrap().keys().collect();
        fields.sort();
        in_schema.sort();
        assert_eq!(fields, in_schema);
    }
}
