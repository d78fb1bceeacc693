//! Online scoring, one id at a time, for a deployed model (the node's serving module carries
//! the messages; nothing here touches a context or the network).
//!
//! * A **host** answers, for one id's row of its own features, the decision of every split it
//!   owns ([`host_decisions`]): one bit per split in split-id order (the splits of a tree are
//!   contiguous, so this is the concatenation of a bit vector per tree), set when the row goes
//!   left. An id the host does not have is scored as a row of missing values, so every split
//!   sends it the split's missing direction — the rule the model applies to a missing value.
//!   The host reveals one bit per split it owns, which is what offline prediction reveals
//!   for the same row (the guest asks there only about the nodes on the row's path, so the
//!   online answer says a little more: the decisions off the path too).
//! * The **guest** walks every tree with its own row and the hosts' bits ([`guest_score`]) and
//!   adds the leaf values to the base scores in the same order as offline [`crate::predict()`],
//!   so the raw score, the output and the class are bit-identical to it.

use crate::error::SecureBoostError;
use crate::model::{GuestModel, HostModel, Node, SplitRule, local_goes_left};
use crate::objective;
use crate::params::Objective;
use crate::protocol::pack_bits;
use ferry_context::PartyId;
use serde::{Deserialize, Serialize};

/// Most split decisions a guest accepts from one host for one row (a bound on what a partner
/// may send, far above any model: 10,000 trees of depth 6 have 630,000 nodes).
pub const MAX_HOST_SPLITS: usize = 1 << 22;

/// The score of one row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnlineScore {
    /// Raw score (margin) per output.
    pub raw: Vec<f64>,
    /// Probability of class 1 (binary), the value (regression) or class probabilities.
    pub outputs: Vec<f64>,
    /// Most likely class (classification objectives), as [`crate::Predictions::classes`].
    pub class: Option<usize>,
}

/// The host's answer for one row given in its model part's column order (`None`: the host has
/// no row for the id). One bit per split of `model.splits`, set when the row goes left.
pub fn host_decisions(model: &HostModel, row: Option<&[f64]>) -> Result<Vec<u8>, SecureBoostError> {
    if let Some(row) = row
        && row.len() != model.feature_names.len()
    {
        return Err(SecureBoostError::Data(format!(
            "the row has {} values but the host's model part has {} features ({})",
            row.len(),
            model.feature_names.len(),
            model.feature_names.join(", ")
        )));
    }
    Ok(pack_bits(model.splits.iter().map(|s| {
        let v = row.map_or(f64::NAN, |r| r[s.feature]);
        local_goes_left(v, s.threshold, s.missing_left)
    })))
}

/// The guest's score of one row: `row` in the guest part's column order, `decisions` each
/// host's answer from [`host_decisions`] (every host the model names must be there).
pub fn guest_score(
    model: &GuestModel,
    row: &[f64],
    decisions: &[(&PartyId, &[u8])],
) -> Result<OnlineScore, SecureBoostError> {
    if row.len() != model.feature_names.len() {
        return Err(SecureBoostError::Data(format!(
            "the row has {} values but the guest's model part has {} features ({})",
            row.len(),
            model.feature_names.len(),
            model.feature_names.join(", ")
        )));
    }
    for (host, bits) in decisions {
        if bits.len() > MAX_HOST_SPLITS / 8 {
            return Err(SecureBoostError::bad_host(
                host,
                format!("{} bytes of split decisions for one row", bits.len()),
            ));
        }
    }
    let bits_of = |party: &str| {
        decisions
            .iter()
            .find(|(h, _)| h.as_str() == party)
            .map(|(h, b)| (*h, *b))
            .ok_or_else(|| {
                SecureBoostError::Data(format!(
                    "the model needs the decisions of host '{party}', which did not answer"
                ))
            })
    };
    let k = model.n_outputs();
    let mut raw = model.base_scores.clone();
    for (t, tree) in model.trees.iter().enumerate() {
        let mut pos = 0usize;
        // Children come after their parent (checked when the model was loaded), so the walk
        // ends; the bound is a second guard against a corrupt part.
        for _ in 0..=tree.nodes.len() {
            let Some(node) = tree.nodes.get(pos) else {
                return Err(SecureBoostError::Data(format!(
                    "tree {t} has no node {pos}: the guest's model part is corrupt"
                )));
            };
            match node {
                Node::Leaf { value } => {
                    raw[t % k] += value;
                    break;
                }
                Node::Split {
                    rule, left, right, ..
                } => {
                    let goes_left = match rule {
                        SplitRule::Local {
                            feature,
                            threshold,
                            missing_left,
                            ..
                        } => {
                            let v = row.get(*feature).copied().ok_or_else(|| {
                                SecureBoostError::Data(format!(
                                    "tree {t} uses guest feature {feature}, beyond the row"
                                ))
                            })?;
                            local_goes_left(v, *threshold, *missing_left)
                        }
                        SplitRule::Host {
                            party, split_id, ..
                        } => {
                            let (host, bits) = bits_of(party)?;
                            let i = *split_id as usize;
                            let byte = bits.get(i / 8).ok_or_else(|| {
                                SecureBoostError::bad_host(
                                    host,
                                    format!(
                                        "{} split decisions, but the model uses its split {i}: \
                                         the host serves another model part",
                                        bits.len() * 8
                                    ),
                                )
                            })?;
                            byte >> (i % 8) & 1 == 1
                        }
                    };
                    pos = if goes_left { *left } else { *right };
                }
            }
        }
    }
    let outputs = objective::transform(&model.objective, &raw);
    let class = match model.objective {
        Objective::BinaryLogistic => Some(usize::from(outputs[0] >= 0.5)),
        Objective::SquaredError => None,
        Objective::MultiSoftmax { .. } => Some(ferry_ml::metrics::argmax(&outputs)),
    };
    Ok(OnlineScore {
        raw,
        outputs,
        class,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HostSplit, Tree};

    fn host() -> HostModel {
        HostModel {
            model_id: "m".into(),
            guest: "bank".into(),
            feature_names: vec!["a".into(), "b".into()],
            splits: vec![
                HostSplit {
                    feature: 1,
                    threshold: 0.5,
                    bin: 1,
                    missing_left: false,
                    tree: 0,
                },
                HostSplit {
                    feature: 0,
                    threshold: 2.0,
                    bin: 1,
                    missing_left: true,
                    tree: 0,
                },
            ],
        }
    }

    #[test]
    fn an_absent_id_takes_every_split_missing_direction() {
        let h = host();
        assert_eq!(host_decisions(&h, Some(&[3.0, 0.0])).unwrap(), vec![0b01]);
        assert_eq!(host_decisions(&h, Some(&[1.0, 9.0])).unwrap(), vec![0b10]);
        assert_eq!(host_decisions(&h, None).unwrap(), vec![0b10]);
        assert!(host_decisions(&h, Some(&[1.0])).is_err());
    }

    #[test]
    fn the_guest_refuses_short_or_missing_answers_naming_the_host() {
        let guest = GuestModel {
            model_id: "m".into(),
            objective: Objective::SquaredError,
            base_scores: vec![1.0],
            feature_names: vec!["x".into()],
            hosts: vec!["telco".into()],
            trees: vec![Tree {
                nodes: vec![
                    Node::Split {
                        rule: SplitRule::Host {
                            party: "telco".into(),
                            split_id: 9,
                            feature: 0,
                        },
                        left: 1,
                        right: 2,
                        gain: 1.0,
                    },
                    Node::Leaf { value: 2.0 },
                    Node::Leaf { value: -2.0 },
                ],
            }],
        };
        let e = guest_score(&guest, &[0.0], &[]).unwrap_err().to_string();
        assert!(e.contains("'telco'"), "{e}");
        let telco = PartyId::new("telco").unwrap();
        let e = guest_score(&guest, &[0.0], &[(&telco, &[0xff])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("telco") && e.contains("split 9"), "{e}");
        let s = guest_score(&guest, &[0.0], &[(&telco, &[0, 0b10])]).unwrap();
        assert_eq!((s.raw, s.class), (vec![3.0], None));
        let s = guest_score(&guest, &[0.0], &[(&telco, &[0, 0])]).unwrap();
        assert_eq!(s.outputs, vec![-1.0]);
    }
}
