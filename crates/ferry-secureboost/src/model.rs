//! Trained models: the guest part (tree structure, leaf values, split gains, its own thresholds
//! and, at host nodes, only `(host, split id, host feature index)`), the host part (its split
//! table), and their versioned files.

use crate::params::Objective;
use serde::{Deserialize, Serialize};

/// Name written into every model file.
pub const MODEL_FORMAT: &str = "ferry-secureboost-model";
/// Version of the model file layout; loading any other version is an error.
///
/// 2: split nodes carry their `gain`, and host splits the host's feature index (for feature
/// importance).
pub const MODEL_FORMAT_VERSION: u32 = 2;

/// Why a model file could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    #[error("not a SecureBoost model file: {0}")]
    NotAModel(String),
    #[error(
        "model format version {found} is not supported (this build reads version {supported}): \
         retrain the model or use a matching Ferry version"
    )]
    UnsupportedVersion { found: u64, supported: u32 },
    #[error("the model file is corrupt: {0}")]
    Corrupt(String),
}

/// How a split node routes a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "owner", rename_all = "snake_case")]
pub enum SplitRule {
    /// A split on one of the guest's features (or, in a centralised/resolved model, on any
    /// feature of the joined table): `value ≤ threshold` goes left, missing goes left iff
    /// `missing_left`. `bin` is the training bin the threshold closes.
    Local {
        feature: usize,
        threshold: f64,
        bin: u16,
        missing_left: bool,
    },
    /// A split owned by a host: the guest knows which host, the host's split id and which of
    /// the host's features (by index in the host's column order, never its name or threshold)
    /// the split uses — the guest chose it, from the host's histograms.
    Host {
        party: String,
        split_id: u32,
        feature: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Node {
    /// A leaf; `value` already includes the learning rate.
    Leaf { value: f64 },
    Split {
        rule: SplitRule,
        left: usize,
        right: usize,
        /// Loss reduction of the split when it was chosen (XGBoost's scale without the ½),
        /// for feature importance.
        gain: f64,
    },
}

/// One tree; node 0 is the root and children always come after their parent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Depth of the deepest leaf.
    pub fn depth(&self) -> usize {
        fn walk(t: &Tree, i: usize) -> usize {
            match &t.nodes[i] {
                Node::Leaf { .. } => 0,
                Node::Split { left, right, .. } => 1 + walk(t, *left).max(walk(t, *right)),
            }
        }
        if self.nodes.is_empty() {
            0
        } else {
            walk(self, 0)
        }
    }

    pub fn n_leaves(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n, Node::Leaf { .. }))
            .count()
    }
}

/// The guest's part of a model, or — with only [`SplitRule::Local`] rules and no hosts — a
/// complete model (centralised training, or a federated model resolved for testing).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuestModel {
    /// Random identifier shared by all parts of one trained model.
    pub model_id: String,
    pub objective: Objective,
    /// Initial raw score per output.
    pub base_scores: Vec<f64>,
    pub feature_names: Vec<String>,
    /// Hosts of the job, in roster order (empty for a complete model).
    pub hosts: Vec<String>,
    /// Trees in boosting order; tree `t` adds to output `t % n_outputs`.
    pub trees: Vec<Tree>,
}

/// One entry of a host's split table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostSplit {
    pub feature: usize,
    /// `value ≤ threshold` goes left.
    pub threshold: f64,
    pub bin: u16,
    pub missing_left: bool,
    /// The tree the split belongs to.
    pub tree: usize,
}

/// A host's part of a model: its split table. Its thresholds never leave the host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostModel {
    pub model_id: String,
    pub guest: String,
    pub feature_names: Vec<String>,
    /// Indexed by split id.
    pub splits: Vec<HostSplit>,
}

/// What one party stores after training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ModelPart {
    Guest(GuestModel),
    Host(HostModel),
}

#[derive(Serialize)]
struct StoredRef<'a> {
    format: &'static str,
    version: u32,
    part: &'a ModelPart,
}

#[derive(Deserialize)]
struct Stored {
    part: ModelPart,
}

impl ModelPart {
    pub fn model_id(&self) -> &str {
        match self {
            ModelPart::Guest(m) => &m.model_id,
            ModelPart::Host(m) => &m.model_id,
        }
    }

    pub fn as_guest(&self) -> Option<&GuestModel> {
        match self {
            ModelPart::Guest(m) => Some(m),
            ModelPart::Host(_) => None,
        }
    }

    pub fn as_host(&self) -> Option<&HostModel> {
        match self {
            ModelPart::Host(m) => Some(m),
            ModelPart::Guest(_) => None,
        }
    }

    /// The versioned JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&StoredRef {
            format: MODEL_FORMAT,
            version: MODEL_FORMAT_VERSION,
            part: self,
        })
        .expect("model parts contain only finite numbers and strings")
    }

    /// Parses a stored model part, checking the format name, the version and the structure.
    pub fn from_json(text: &str) -> Result<ModelPart, ModelError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ModelError::NotAModel(e.to_string()))?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(MODEL_FORMAT) => {}
            Some(other) => return Err(ModelError::NotAModel(format!("format is '{other}'"))),
            None => return Err(ModelError::NotAModel("no 'format' field".into())),
        }
        let version = value
            .get("version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| ModelError::NotAModel("no numeric 'version' field".into()))?;
        if version != MODEL_FORMAT_VERSION as u64 {
            return Err(ModelError::UnsupportedVersion {
                found: version,
                supported: MODEL_FORMAT_VERSION,
            });
        }
        let stored: Stored =
            serde_json::from_value(value).map_err(|e| ModelError::Corrupt(e.to_string()))?;
        stored.part.validate()?;
        Ok(stored.part)
    }

    /// Structural checks: node references in range and acyclic, finite numbers, known features.
    pub fn validate(&self) -> Result<(), ModelError> {
        match self {
            ModelPart::Guest(m) => m.validate(),
            ModelPart::Host(m) => m.validate(),
        }
    }
}

fn corrupt(msg: String) -> ModelError {
    ModelError::Corrupt(msg)
}

impl GuestModel {
    pub fn n_outputs(&self) -> usize {
        self.objective.n_outputs()
    }

    /// Whether every split is local (no host is needed to predict).
    pub fn is_complete(&self) -> bool {
        self.trees.iter().all(|t| {
            t.nodes.iter().all(|n| {
                !matches!(
                    n,
                    Node::Split {
                        rule: SplitRule::Host { .. },
                        ..
                    }
                )
            })
        })
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        if self.base_scores.len() != self.n_outputs() {
            return Err(corrupt(format!(
                "{} base scores for {} outputs",
                self.base_scores.len(),
                self.n_outputs()
            )));
        }
        if self.base_scores.iter().any(|b| !b.is_finite()) {
            return Err(corrupt("a base score is not finite".into()));
        }
        for (t, tree) in self.trees.iter().enumerate() {
            if tree.nodes.is_empty() {
                return Err(corrupt(format!("tree {t} has no nodes")));
            }
            for (i, node) in tree.nodes.iter().enumerate() {
                match node {
                    Node::Leaf { value } if !value.is_finite() => {
                        return Err(corrupt(format!("tree {t} node {i}: leaf value not finite")));
                    }
                    Node::Leaf { .. } => {}
                    Node::Split {
                        rule,
                        left,
                        right,
                        gain,
                    } => {
                        if !(gain.is_finite() && *gain >= 0.0) {
                            return Err(corrupt(format!(
                                "tree {t} node {i}: split gain {gain} is not a finite number ≥ 0"
                            )));
                        }
                        // Children after the parent: no cycles, every walk ends at a leaf.
                        for c in [left, right] {
                            if *c <= i || *c >= tree.nodes.len() {
                                return Err(corrupt(format!(
                                    "tree {t} node {i}: child {c} out of range"
                                )));
                            }
                        }
                        match rule {
                            SplitRule::Local {
                                feature, threshold, ..
                            } => {
                                if *feature >= self.feature_names.len() {
                                    return Err(corrupt(format!(
                                        "tree {t} node {i}: feature {feature} but the model has {}",
                                        self.feature_names.len()
                                    )));
                                }
                                if threshold.is_nan() {
                                    return Err(corrupt(format!(
                                        "tree {t} node {i}: threshold is NaN"
                                    )));
                                }
                            }
                            SplitRule::Host { party, .. } => {
                                if !self.hosts.contains(party) {
                                    return Err(corrupt(format!(
                                        "tree {t} node {i}: unknown host '{party}'"
                                    )));
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Raw scores (`n × k`, row-major) of a complete model on rows given as feature slices.
    ///
    /// Panics if the model has host splits; callers check [`GuestModel::is_complete`].
    pub fn predict_raw_local(&self, rows: &[&[f64]]) -> Vec<f64> {
        let k = self.n_outputs();
        let mut out: Vec<f64> = rows
            .iter()
            .flat_map(|_| self.base_scores.iter().copied())
            .collect();
        for (t, tree) in self.trees.iter().enumerate() {
            let class = t % k;
            for (i, row) in rows.iter().enumerate() {
                out[i * k + class] += leaf_value_local(tree, row);
            }
        }
        out
    }

    /// Replaces every host split by the host's rule on the joined table (guest features, then
    /// each host's features in `hosts` order). For tests and model audits where all parts are
    /// available in one place.
    pub fn resolve(&self, hosts: &[(&str, &HostModel)]) -> Result<GuestModel, String> {
        let mut offsets = Vec::new();
        let mut names = self.feature_names.clone();
        for (party, model) in hosts {
            if model.model_id != self.model_id {
                return Err(format!("host part of '{party}' belongs to another model"));
            }
            offsets.push((party.to_string(), names.len(), *model));
            names.extend(model.feature_names.iter().cloned());
        }
        let mut trees = self.trees.clone();
        for tree in &mut trees {
            for node in &mut tree.nodes {
                if let Node::Split {
                    rule: rule @ SplitRule::Host { .. },
                    ..
                } = node
                {
                    let SplitRule::Host {
                        party,
                        split_id,
                        feature,
                    } = &*rule
                    else {
                        unreachable!()
                    };
                    let (_, offset, model) = offsets
                        .iter()
                        .find(|(p, _, _)| p == party)
                        .ok_or_else(|| format!("no host part for '{party}'"))?;
                    let s = model
                        .splits
                        .get(*split_id as usize)
                        .ok_or_else(|| format!("host '{party}' has no split {split_id}"))?;
                    if s.feature != *feature {
                        return Err(format!(
                            "host '{party}' split {split_id} is on its feature {} but the guest \
                             recorded feature {feature}",
                            s.feature
                        ));
                    }
                    *rule = SplitRule::Local {
                        feature: offset + s.feature,
                        threshold: s.threshold,
                        bin: s.bin,
                        missing_left: s.missing_left,
                    };
                }
            }
        }
        Ok(GuestModel {
            model_id: self.model_id.clone(),
            objective: self.objective,
            base_scores: self.base_scores.clone(),
            feature_names: names,
            hosts: Vec::new(),
            trees,
        })
    }
}

pub(crate) fn local_goes_left(value: f64, threshold: f64, missing_left: bool) -> bool {
    if value.is_nan() {
        missing_left
    } else {
        value <= threshold
    }
}

fn leaf_value_local(tree: &Tree, row: &[f64]) -> f64 {
    let mut i = 0;
    loop {
        match &tree.nodes[i] {
            Node::Leaf { value } => return *value,
            Node::Split {
                rule:
                    SplitRule::Local {
                        feature,
                        threshold,
                        missing_left,
                        ..
                    },
                left,
                right,
                ..
            } => {
                i = if local_goes_left(row[*feature], *threshold, *missing_left) {
                    *left
                } else {
                    *right
                };
            }
            Node::Split {
                rule: SplitRule::Host { .. },
                ..
            } => panic!("predict_raw_local on a model with host splits"),
        }
    }
}

impl HostModel {
    pub fn validate(&self) -> Result<(), ModelError> {
        for (id, s) in self.splits.iter().enumerate() {
            if s.feature >= self.feature_names.len() {
                return Err(corrupt(format!(
                    "split {id}: feature {} but the host has {}",
                    s.feature,
                    self.feature_names.len()
                )));
            }
            if s.threshold.is_nan() {
                return Err(corrupt(format!("split {id}: threshold is NaN")));
            }
        }
        Ok(())
    }
}

/// Compares two complete models: same tree structure and split rules, leaf values and base
/// scores within `tolerance`. The error describes the first difference.
pub fn compare_models(a: &GuestModel, b: &GuestModel, tolerance: f64) -> Result<(), String> {
    if a.objective != b.objective {
        return Err("objectives differ".into());
    }
    if a.trees.len() != b.trees.len() {
        return Err(format!("{} trees vs {}", a.trees.len(), b.trees.len()));
    }
    for (x, y) in a.base_scores.iter().zip(&b.base_scores) {
        if (x - y).abs() > tolerance {
            return Err(format!("base scores differ: {x} vs {y}"));
        }
    }
    fn walk(
        t: usize,
        a: &Tree,
        i: usize,
        b: &Tree,
        j: usize,
        tol: f64,
        path: &str,
    ) -> Result<(), String> {
        match (&a.nodes[i], &b.nodes[j]) {
            (Node::Leaf { value: x }, Node::Leaf { value: y }) => {
                if (x - y).abs() > tol {
                    return Err(format!("tree {t} at '{path}': leaf {x} vs {y}"));
                }
                Ok(())
            }
            (
                Node::Split {
                    rule: ra,
                    left: la,
                    right: rra,
                    ..
                },
                Node::Split {
                    rule: rb,
                    left: lb,
                    right: rrb,
                    ..
                },
            ) => {
                let key = |r: &SplitRule| match r {
                    SplitRule::Local {
                        feature,
                        bin,
                        missing_left,
                        threshold,
                    } => Ok((*feature, *bin, *missing_left, *threshold)),
                    SplitRule::Host { .. } => Err(format!("tree {t} at '{path}': host split")),
                };
                let (ka, kb) = (key(ra)?, key(rb)?);
                if ka != kb {
                    return Err(format!(
                        "tree {t} at '{path}': split (feature, bin, missing_left, threshold) \
                         {ka:?} vs {kb:?}"
                    ));
                }
                walk(t, a, *la, b, *lb, tol, &format!("{path}L"))?;
                walk(t, a, *rra, b, *rrb, tol, &format!("{path}R"))
            }
            _ => Err(format!("tree {t} at '{path}': leaf vs split")),
        }
    }
    for (t, (ta, tb)) in a.trees.iter().zip(&b.trees).enumerate() {
        walk(t, ta, 0, tb, 0, tolerance, "")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_guest() -> ModelPart {
        ModelPart::Guest(GuestModel {
            model_id: "m1".into(),
            objective: Objective::BinaryLogistic,
            base_scores: vec![0.1],
            feature_names: vec!["a".into()],
            hosts: vec!["telco".into()],
            trees: vec![Tree {
                nodes: vec![
                    Node::Split {
                        rule: SplitRule::Host {
                            party: "telco".into(),
                            split_id: 0,
                            feature: 1,
                        },
                        left: 1,
                        right: 2,
                        gain: 2.5,
                    },
                    Node::Leaf { value: -0.2 },
                    Node::Split {
                        rule: SplitRule::Local {
                            feature: 0,
                            threshold: 1.5,
                            bin: 3,
                            missing_left: true,
                        },
                        left: 3,
                        right: 4,
                        gain: 0.5,
                    },
                    Node::Leaf { value: 0.1 },
                    Node::Leaf { value: 0.3 },
                ],
            }],
        })
    }

    #[test]
    fn model_parts_round_trip_through_json() {
        let guest = small_guest();
        assert_eq!(ModelPart::from_json(&guest.to_json()).unwrap(), guest);
        let host = ModelPart::Host(HostModel {
            model_id: "m1".into(),
            guest: "bank".into(),
            feature_names: vec!["x".into()],
            splits: vec![HostSplit {
                feature: 0,
                threshold: f64::MAX,
                bin: 31,
                missing_left: false,
                tree: 0,
            }],
        });
        assert_eq!(ModelPart::from_json(&host.to_json()).unwrap(), host);
    }

    #[test]
    fn wrong_version_or_format_is_refused() {
        let json = small_guest().to_json();
        // A newer file, and a file of version 1 (no split gains): both refused by name.
        for other in [MODEL_FORMAT_VERSION + 1, 1] {
            let changed = json.replace(
                &format!("\"version\": {MODEL_FORMAT_VERSION}"),
                &format!("\"version\": {other}"),
            );
            assert_ne!(changed, json);
            assert_eq!(
                ModelPart::from_json(&changed),
                Err(ModelError::UnsupportedVersion {
                    found: other as u64,
                    supported: MODEL_FORMAT_VERSION
                })
            );
        }
        let renamed = json.replace(MODEL_FORMAT, "something-else");
        assert!(matches!(
            ModelPart::from_json(&renamed),
            Err(ModelError::NotAModel(_))
        ));
        assert!(matches!(
            ModelPart::from_json("{\"format\": 3"),
            Err(ModelError::NotAModel(_))
        ));
    }

    #[test]
    fn tampered_structure_is_refused() {
        // A child pointing back to the root would loop forever at prediction time.
        let json = small_guest().to_json();
        let looped = json.replacen("\"left\": 3", "\"left\": 0", 1);
        assert_ne!(looped, json);
        assert!(matches!(
            ModelPart::from_json(&looped),
            Err(ModelError::Corrupt(_))
        ));
        let unknown_host = json.replace("\"party\": \"telco\"", "\"party\": \"mallory\"");
        assert!(matches!(
            ModelPart::from_json(&unknown_host),
            Err(ModelError::Corrupt(_))
        ));
        let bad_feature = json.replace("\"feature\": 0", "\"feature\": 7");
        assert!(matches!(
            ModelPart::from_json(&bad_feature),
            Err(ModelError::Corrupt(_))
        ));
        let negative_gain = json.replace("\"gain\": 0.5", "\"gain\": -0.5");
        assert_ne!(negative_gain, json);
        assert!(matches!(
            ModelPart::from_json(&negative_gain),
            Err(ModelError::Corrupt(_))
        ));
    }

    #[test]
    fn resolve_maps_host_splits_to_joined_features() {
        let ModelPart::Guest(g) = small_guest() else {
            unreachable!()
        };
        let host = HostModel {
            model_id: "m1".into(),
            guest: "bank".into(),
            feature_names: vec!["x".into(), "y".into()],
            splits: vec![HostSplit {
                feature: 1,
                threshold: 0.5,
                bin: 2,
                missing_left: false,
                tree: 0,
            }],
        };
        let full = g.resolve(&[("telco", &host)]).unwrap();
        assert!(full.is_complete());
        assert_eq!(full.feature_names, vec!["a", "x", "y"]);
        // Row: a = 2.0 (right at the local split), y = 0.7 (right at the host split).
        let raw = full.predict_raw_local(&[&[2.0, 0.0, 0.7], &[0.0, 0.0, 0.1]]);
        assert!((raw[0] - (0.1 + 0.3)).abs() < 1e-15);
        assert!((raw[1] - (0.1 - 0.2)).abs() < 1e-15);
        // The host's table and the guest's record of the split's feature must agree.
        let mut other_feature = host.clone();
        other_feature.splits[0].feature = 0;
        let e = g.resolve(&[("telco", &other_feature)]).unwrap_err();
        assert!(e.contains("guest recorded feature 1"), "{e}");
        let wrong = HostModel {
            model_id: "other".into(),
            ..host
        };
        assert!(g.resolve(&[("telco", &wrong)]).is_err());
    }
}
