//! Federated training gives the same trees as the centralised trainer on the joined table.

mod common;

use common::*;
use ferry_context::Role;
use ferry_crypto::{HeSettings, SchemeKind};
use ferry_secureboost::centralized::train_centralized;
use ferry_secureboost::model::compare_models;
use ferry_secureboost::{GuestModel, Node, Objective, SecureBoostParams, SplitRule};

/// Split nodes owned by the guest and by hosts.
fn split_owners(model: &GuestModel) -> (usize, usize) {
    let mut guest = 0;
    let mut host = 0;
    for tree in &model.trees {
        for node in &tree.nodes {
            match node {
                Node::Split {
                    rule: SplitRule::Local { .. },
                    ..
                } => guest += 1,
                Node::Split {
                    rule: SplitRule::Host { .. },
                    ..
                } => host += 1,
                Node::Leaf { .. } => {}
            }
        }
    }
    (guest, host)
}

/// The federated guest's feature importance, with host features named `telco:feature_<j>`,
/// is the centralised model's: same features, same split counts, same gains. `joined` are the
/// joined table's column names (guest columns first, then the host's).
fn assert_same_importance(guest: &GuestModel, host: &str, joined: &[String], central: &GuestModel) {
    let federated = guest.feature_importance();
    assert!(!federated.is_empty());
    let host_prefix = format!("{host}:feature_");
    let mut as_joined: Vec<(String, usize, f64)> = federated
        .iter()
        .map(|f| {
            let name = match f.feature.strip_prefix(&host_prefix) {
                Some(j) => {
                    assert_eq!(f.party.as_deref(), Some(host));
                    let j: usize = j.parse().expect("host feature index");
                    joined[guest.feature_names.len() + j].clone()
                }
                None => {
                    assert_eq!(f.party, None, "{f:?}");
                    assert!(guest.feature_names.contains(&f.feature), "{f:?}");
                    f.feature.clone()
                }
            };
            (name, f.splits, f.gain)
        })
        .collect();
    let mut reference: Vec<(String, usize, f64)> = central
        .feature_importance()
        .into_iter()
        .map(|f| (f.feature, f.splits, f.gain))
        .collect();
    as_joined.sort_by(|a, b| a.0.cmp(&b.0));
    reference.sort_by(|a, b| a.0.cmp(&b.0));
    let counts = |v: &[(String, usize, f64)]| -> Vec<(String, usize)> {
        v.iter().map(|(n, s, _)| (n.clone(), *s)).collect()
    };
    assert_eq!(counts(&as_joined), counts(&reference));
    for ((name, _, fed), (_, _, cen)) in as_joined.iter().zip(&reference) {
        assert!(
            (fed - cen).abs() <= 1e-9 * cen.abs().max(1.0),
            "gain of {name}: {fed} federated vs {cen} centralised"
        );
    }
    // Both parties' features were split on, and the ordering is by gain.
    assert!(federated.iter().any(|f| f.party.is_some()));
    assert!(federated.iter().any(|f| f.party.is_none()));
    assert!(federated.windows(2).all(|w| w[0].gain >= w[1].gain));
}

fn assert_lossless(
    params: &SecureBoostParams,
    n: usize,
    guest_features: usize,
    d: usize,
    seed: u64,
) {
    let joined = synthetic(n, d, params.objective, seed);
    let parties = [
        Party {
            name: "bank",
            role: Role::Guest,
            train: columns(&joined, 0..guest_features, true),
            valid: None,
        },
        Party {
            name: "telco",
            role: Role::Host,
            train: columns(&joined, guest_features..d, false),
            valid: None,
        },
    ];
    let (guest, report, hosts) = split_parts(run_training(&parties, params, false));
    let (guest_splits, host_splits) = split_owners(&guest);
    assert!(
        guest_splits > 0 && host_splits > 0,
        "both parties should own splits: {guest_splits} / {host_splits}"
    );
    let host_refs: Vec<(&str, &ferry_secureboost::HostModel)> =
        hosts.iter().map(|(n, h)| (n.as_str(), h)).collect();
    let resolved = guest.resolve(&host_refs).unwrap();
    let central = train_centralized(&joined, params, None).unwrap();
    compare_models(&resolved, &central.model, 1e-6).unwrap();
    assert_same_importance(&guest, "telco", &joined.feature_names, &central.model);
    assert_eq!(
        guest.trees.len(),
        params.num_trees * params.objective.n_outputs()
    );
    // Same per-round training metric as the reference.
    for (f, c) in report.trees.iter().zip(&central.trees) {
        assert_eq!(f.train_metric, c.train_metric);
    }
    assert!(report.ops.encryptions > 0 && report.total_ops().additions > 0);
}

#[test]
fn binary_logistic_is_lossless() {
    let params = test_params(Objective::BinaryLogistic);
    assert_lossless(&params, 300, 3, 7, 1);
}

#[test]
fn binary_with_row_and_feature_sampling_is_lossless() {
    let params = SecureBoostParams {
        subsample: 0.7,
        colsample: 0.75,
        num_trees: 4,
        lambda: 0.5,
        min_child_weight: 2.0,
        seed: 9,
        ..test_params(Objective::BinaryLogistic)
    };
    assert_lossless(&params, 300, 3, 8, 2);
}

#[test]
fn squared_error_is_lossless() {
    let params = SecureBoostParams {
        gamma: 0.5,
        ..test_params(Objective::SquaredError)
    };
    assert_lossless(&params, 250, 2, 6, 3);
}

#[test]
fn multiclass_softmax_is_lossless() {
    let params = SecureBoostParams {
        num_trees: 2,
        ..test_params(Objective::MultiSoftmax { num_class: 3 })
    };
    assert_lossless(&params, 240, 3, 6, 4);
}

#[test]
fn okamoto_uchiyama_is_lossless() {
    let params = SecureBoostParams {
        he: HeSettings::insecure_for_tests(SchemeKind::OkamotoUchiyama, 768),
        num_trees: 2,
        ..test_params(Objective::BinaryLogistic)
    };
    assert_lossless(&params, 200, 3, 7, 5);
}

#[test]
fn early_stopping_keeps_the_same_rounds_as_the_reference() {
    let params = SecureBoostParams {
        num_trees: 12,
        max_depth: 2,
        learning_rate: 1.0,
        early_stopping_rounds: Some(2),
        ..test_params(Objective::SquaredError)
    };
    let joined = synthetic(260, 6, params.objective, 6);
    let valid_joined = synthetic(60, 6, params.objective, 60);
    let parties = [
        Party {
            name: "bank",
            role: Role::Guest,
            train: columns(&joined, 0..3, true),
            valid: Some(columns(&valid_joined, 0..3, true)),
        },
        Party {
            name: "telco",
            role: Role::Host,
            train: columns(&joined, 3..6, false),
            valid: Some(columns(&valid_joined, 3..6, false)),
        },
    ];
    let (guest, report, hosts) = split_parts(run_training(&parties, &params, false));
    let central = train_centralized(&joined, &params, Some(&valid_joined)).unwrap();
    assert_eq!(report.best_round, central.best_round);
    let resolved = guest.resolve(&[("telco", &hosts[0].1)]).unwrap();
    compare_models(&resolved, &central.model, 1e-6).unwrap();
    // Importance counts only the trees kept.
    assert_same_importance(&guest, "telco", &joined.feature_names, &central.model);
    for (f, c) in report.trees.iter().zip(&central.trees) {
        assert_eq!(f.validation_metric, c.validation_metric);
    }
    // Early stopping must actually have triggered for this test to mean anything, and the
    // host must have dropped the splits of discarded trees.
    let best = report.best_round.expect("stopped early");
    assert!(report.trees.len() > guest.trees.len());
    assert_eq!(guest.trees.len(), best + 1);
    assert!(hosts[0].1.splits.iter().all(|s| s.tree <= best));
}
