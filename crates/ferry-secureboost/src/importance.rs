//! Feature importance of a trained model, as the guest can compute it: how often each feature
//! was split on and the total gain of those splits.
//!
//! The guest knows every split's gain (it chose the split) and, for a host split, the index of
//! the host feature it uses (it asked the host to split on it) — never the host's column names.
//! Host features are therefore named `<host party>:feature_<index>`, the index counting the
//! host's columns in its own order.

use crate::model::{GuestModel, ModelPart, Node, SplitRule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Importance of one feature over every tree of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureImportance {
    /// The guest's column name, or `<host party>:feature_<index>` for a host's feature.
    pub feature: String,
    /// The host owning the feature; `None` for the guest's own features (and for every
    /// feature of a complete, e.g. centralised, model).
    pub party: Option<String>,
    /// Split nodes using the feature.
    pub splits: usize,
    /// Sum of the gains of those splits.
    pub gain: f64,
}

/// Which feature a split uses: `(party, index)`, party `None` for a local feature.
type FeatureKey = (Option<String>, usize);

impl GuestModel {
    /// Split count and total gain of every feature used by at least one split, by total gain
    /// (largest first; ties by split count, then name). Features never split on are left out
    /// (the guest does not know how many features a host has).
    pub fn feature_importance(&self) -> Vec<FeatureImportance> {
        let mut acc: BTreeMap<FeatureKey, (usize, f64)> = BTreeMap::new();
        for tree in &self.trees {
            for node in &tree.nodes {
                let Node::Split { rule, gain, .. } = node else {
                    continue;
                };
                let key = match rule {
                    SplitRule::Local { feature, .. } => (None, *feature),
                    SplitRule::Host { party, feature, .. } => (Some(party.clone()), *feature),
                };
                let entry = acc.entry(key).or_insert((0, 0.0));
                entry.0 += 1;
                entry.1 += gain;
            }
        }
        let mut out: Vec<FeatureImportance> = acc
            .into_iter()
            .map(|((party, index), (splits, gain))| FeatureImportance {
                feature: match &party {
                    None => self
                        .feature_names
                        .get(index)
                        .cloned()
                        .unwrap_or_else(|| format!("feature_{index}")),
                    Some(host) => format!("{host}:feature_{index}"),
                },
                party,
                splits,
                gain,
            })
            .collect();
        out.sort_by(|a, b| {
            b.gain
                .total_cmp(&a.gain)
                .then(b.splits.cmp(&a.splits))
                .then_with(|| a.feature.cmp(&b.feature))
        });
        out
    }
}

impl ModelPart {
    /// [`GuestModel::feature_importance`] for the guest's part; empty for a host's part (a
    /// host knows which of its features were split on, but not the gains).
    pub fn feature_importance(&self) -> Vec<FeatureImportance> {
        match self {
            ModelPart::Guest(m) => m.feature_importance(),
            ModelPart::Host(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tree;
    use crate::params::Objective;

    fn split(rule: SplitRule, left: usize, right: usize, gain: f64) -> Node {
        Node::Split {
            rule,
            left,
            right,
            gain,
        }
    }

    fn local(feature: usize) -> SplitRule {
        SplitRule::Local {
            feature,
            threshold: 0.5,
            bin: 1,
            missing_left: false,
        }
    }

    fn host(feature: usize, split_id: u32) -> SplitRule {
        SplitRule::Host {
            party: "telco".into(),
            split_id,
            feature,
        }
    }

    #[test]
    fn counts_and_gains_add_up_per_feature_and_host_features_stay_anonymous() {
        let leaf = || Node::Leaf { value: 0.1 };
        let model = GuestModel {
            model_id: "m".into(),
            objective: Objective::BinaryLogistic,
            base_scores: vec![0.0],
            feature_names: vec!["age".into(), "income".into()],
            hosts: vec!["telco".into()],
            trees: vec![
                Tree {
                    nodes: vec![
                        split(host(3, 0), 1, 2, 4.0),
                        split(local(1), 3, 4, 1.5),
                        leaf(),
                        leaf(),
                        leaf(),
                    ],
                },
                Tree {
                    nodes: vec![
                        split(local(1), 1, 2, 2.0),
                        split(host(3, 1), 3, 4, 0.25),
                        leaf(),
                        leaf(),
                        leaf(),
                    ],
                },
                Tree {
                    nodes: vec![split(local(0), 1, 2, 0.75), leaf(), leaf()],
                },
            ],
        };
        let imp = ModelPart::Guest(model).feature_importance();
        let got: Vec<(&str, Option<&str>, usize, f64)> = imp
            .iter()
            .map(|f| (f.feature.as_str(), f.party.as_deref(), f.splits, f.gain))
            .collect();
        assert_eq!(
            got,
            vec![
                ("telco:feature_3", Some("telco"), 2, 4.25),
                ("income", None, 2, 3.5),
                ("age", None, 1, 0.75),
            ]
        );
        let host_part = ModelPart::Host(crate::model::HostModel {
            model_id: "m".into(),
            guest: "bank".into(),
            feature_names: vec!["secret_column".into()],
            splits: Vec::new(),
        });
        assert!(host_part.feature_importance().is_empty());
    }
}
