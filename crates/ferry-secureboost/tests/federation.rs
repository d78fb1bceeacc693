//! Multi-host equivalence, federated prediction, stored models, privacy of the transcript and
//! clear errors on bad input.

mod common;

use common::*;
use ferry_context::{Direction, LocalCluster, Role, Roster};
use ferry_crypto::wire::CiphertextBatch;
use ferry_data::Dataset;
use ferry_secureboost::centralized::train_centralized;
use ferry_secureboost::model::compare_models;
use ferry_secureboost::protocol::{LevelMsg, PredictMsg, Reply, Setup, SplitRequest, TreeMsg};
use ferry_secureboost::split::GradScale;
use ferry_secureboost::{
    HostModel, ModelPart, Objective, SecureBoostParams, predict, train, train_with_report,
};

fn two_party(joined: &Dataset, guest_features: usize) -> Vec<Party> {
    let d = joined.n_features();
    vec![
        Party {
            name: "bank",
            role: Role::Guest,
            train: columns(joined, 0..guest_features, true),
            valid: None,
        },
        Party {
            name: "telco",
            role: Role::Host,
            train: columns(joined, guest_features..d, false),
            valid: None,
        },
    ]
}

fn refs(hosts: &[(String, HostModel)]) -> Vec<(&str, &HostModel)> {
    hosts.iter().map(|(n, h)| (n.as_str(), h)).collect()
}

#[test]
fn two_hosts_give_the_same_model_as_one_host_with_both_column_sets() {
    let params = SecureBoostParams {
        colsample: 0.8,
        num_trees: 4,
        ..test_params(Objective::BinaryLogistic)
    };
    let joined = synthetic(300, 9, params.objective, 21);
    let three = [
        Party {
            name: "bank",
            role: Role::Guest,
            train: columns(&joined, 0..3, true),
            valid: None,
        },
        Party {
            name: "telco",
            role: Role::Host,
            train: columns(&joined, 3..6, false),
            valid: None,
        },
        Party {
            name: "retail",
            role: Role::Host,
            train: columns(&joined, 6..9, false),
            valid: None,
        },
    ];
    let (g3, report3, hosts3) = split_parts(run_training(&three, &params, false));
    let (g2, _, hosts2) = split_parts(run_training(&two_party(&joined, 3), &params, false));
    // Both hosts must own splits, or the test would not exercise the multi-host path.
    for (name, h) in &hosts3 {
        assert!(!h.splits.is_empty(), "host {name} owns no split");
    }
    assert_eq!(report3.host_ops.len(), 2);
    let m3 = g3.resolve(&refs(&hosts3)).unwrap();
    let m2 = g2.resolve(&refs(&hosts2)).unwrap();
    compare_models(&m3, &m2, 1e-6).unwrap();
    let central = train_centralized(&joined, &params, None).unwrap();
    compare_models(&m3, &central.model, 1e-6).unwrap();
}

#[test]
fn federated_prediction_matches_the_joined_model_in_one_message_per_level() {
    let params = test_params(Objective::MultiSoftmax { num_class: 3 });
    let joined = synthetic(240, 6, params.objective, 31);
    let test_joined = synthetic(90, 6, params.objective, 32);
    let (guest, _, hosts) = split_parts(run_training(&two_party(&joined, 3), &params, false));
    let resolved = guest.resolve(&refs(&hosts)).unwrap();
    let test_guest = columns(&test_joined, 0..3, false);
    let test_host = columns(&test_joined, 3..6, false);
    // Store and reload both parts: prediction runs from what the parties saved.
    let guest_json = ModelPart::Guest(guest.clone()).to_json();
    let host_json = ModelPart::Host(hosts[0].1.clone()).to_json();
    let roster = Roster::of(&[("bank", Role::Guest), ("telco", Role::Host)]);
    let outcomes = LocalCluster::new(roster).run(|ctx| {
        let (json, data) = if ctx.role() == Role::Guest {
            (&guest_json, &test_guest)
        } else {
            (&host_json, &test_host)
        };
        let part = ModelPart::from_json(json).map_err(|e| e.to_string())?;
        predict(&ctx, &part, data).map_err(|e| e.to_string())
    });
    let host_messages = outcomes[1].counters.messages_received();
    let predictions = outcomes
        .into_iter()
        .find_map(|o| o.result.ok().flatten())
        .expect("guest predictions");
    let rows: Vec<&[f64]> = (0..test_joined.n_rows())
        .map(|i| test_joined.row(i))
        .collect();
    assert_eq!(predictions.raw, resolved.predict_raw_local(&rows));
    assert_eq!(predictions.outputs.len(), 90 * 3);
    let sums: Vec<f64> = predictions
        .outputs
        .chunks(3)
        .map(|r| r.iter().sum())
        .collect();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-12));
    assert_eq!(predictions.classes().unwrap().len(), 90);
    // Start, at most one query per level of the deepest tree, and "done": never per row.
    let max_depth = guest.trees.iter().map(|t| t.depth()).max().unwrap();
    assert!(
        host_messages <= 1 + max_depth as u64 + 1,
        "{host_messages} messages for depth {max_depth}"
    );
}

#[test]
fn hosts_receive_no_plaintext_gradients_and_the_guest_no_thresholds() {
    let params = SecureBoostParams {
        num_trees: 2,
        ..test_params(Objective::BinaryLogistic)
    };
    let joined = synthetic(200, 6, params.objective, 41);
    let valid = synthetic(50, 6, params.objective, 42);
    let mut parties = two_party(&joined, 3);
    parties[0].valid = Some(columns(&valid, 0..3, true));
    parties[1].valid = Some(columns(&valid, 3..6, false));
    let outcomes = run_training(&parties, &params, true);
    let guest_transcript = outcomes[0].transcript.clone().unwrap();
    let host_transcript = outcomes[1].transcript.clone().unwrap();
    let (_, _, hosts) = split_parts(outcomes);

    // The first tree's gradients and hessians, in the clear and quantised.
    let labels = parties[0].train.labels().unwrap();
    let p0 = labels.iter().sum::<f64>() / labels.len() as f64;
    let g: Vec<f64> = labels.iter().map(|y| p0 - y).collect();
    let h: Vec<f64> = labels.iter().map(|_| p0 * (1.0 - p0)).collect();
    let all: Vec<u32> = (0..labels.len() as u32).collect();
    let scale = GradScale::fit(&g, &h, &all, params.precision_bits);
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for i in 0..3 {
        let q = scale.quantize(g[i], h[i]);
        secrets.push(g[i].to_le_bytes().to_vec());
        secrets.push(q.g.to_le_bytes().to_vec());
        secrets.push(q.h.to_le_bytes().to_vec());
    }
    secrets.push(h[0].to_le_bytes().to_vec());

    let received = host_transcript.received();
    assert!(!received.is_empty());
    let mut ciphertext_batches = 0;
    for entry in &received {
        let last = entry.tag.rsplit('/').next().unwrap();
        let understood = match last {
            "setup" => entry.decode::<Reply<Setup>>().is_some(),
            "start" => entry.decode::<TreeMsg>().is_some(),
            "build" => entry.decode::<LevelMsg>().is_some(),
            "split" => entry.decode::<SplitRequest>().is_some(),
            t if t.starts_with("gh-") => {
                ciphertext_batches += 1;
                entry
                    .decode::<CiphertextBatch>()
                    .is_some_and(|b| b.element_bytes == 128 && !b.is_empty())
            }
            t if t.starts_with('q') => entry.decode::<PredictMsg>().is_some(),
            _ => false,
        };
        assert!(
            understood,
            "unexpected message to the host: {} ({})",
            entry.tag, entry.payload_type
        );
        for s in &secrets {
            assert!(
                !entry.payload_contains(s),
                "plaintext gradient in {}",
                entry.tag
            );
        }
    }
    assert_eq!(ciphertext_batches, params.num_trees);

    // The guest never sees a host threshold or a raw host value.
    let mut host_secrets: Vec<Vec<u8>> = hosts[0]
        .1
        .splits
        .iter()
        .filter(|s| s.threshold != f64::MAX)
        .map(|s| s.threshold.to_le_bytes().to_vec())
        .collect();
    assert!(!host_secrets.is_empty());
    host_secrets.extend(
        parties[1].train.features[..30]
            .iter()
            .map(|v| v.to_le_bytes().to_vec()),
    );
    for entry in guest_transcript.entries() {
        if entry.direction != Direction::Received {
            continue;
        }
        for s in &host_secrets {
            assert!(!entry.payload_contains(s), "host value in {}", entry.tag);
        }
    }
}

#[test]
fn non_binary_labels_are_refused_with_the_row() {
    let params = test_params(Objective::BinaryLogistic);
    let joined = synthetic(60, 4, Objective::SquaredError, 51);
    let outcomes = run_training(&two_party(&joined, 2), &params, false);
    let guest_err = outcomes[0].result.as_ref().expect_err("guest fails");
    assert!(guest_err.contains("label of row 1"), "{guest_err}");
    // The host learns that the guest stopped, not which row has which label.
    let host_err = outcomes[1].result.as_ref().expect_err("host fails");
    assert!(
        host_err.contains("guest stopped") && host_err.contains("stay with that party"),
        "{host_err}"
    );
    assert!(
        !host_err.contains("row 1"),
        "a guest label reached the host: {host_err}"
    );
}

#[test]
fn parties_with_different_row_counts_are_refused() {
    let params = test_params(Objective::BinaryLogistic);
    let joined = synthetic(80, 4, params.objective, 61);
    let mut parties = two_party(&joined, 2);
    let first: Vec<usize> = (0..70).collect();
    parties[1].train = parties[1].train.select_rows(&first);
    let outcomes = run_training(&parties, &params, false);
    let guest_err = outcomes[0].result.as_ref().expect_err("guest fails");
    assert!(
        guest_err.contains("has 70 rows") && guest_err.contains("has 80"),
        "{guest_err}"
    );
    let host_err = outcomes[1].result.as_ref().expect_err("host fails");
    assert!(host_err.contains("70 rows"), "{host_err}");
}

#[test]
fn mismatched_model_parts_and_wrong_roles_are_refused_at_prediction() {
    let params = SecureBoostParams {
        num_trees: 2,
        ..test_params(Objective::BinaryLogistic)
    };
    let joined = synthetic(150, 6, params.objective, 71);
    let (guest_a, _, hosts_a) = split_parts(run_training(&two_party(&joined, 3), &params, false));
    let (_, _, hosts_b) = split_parts(run_training(&two_party(&joined, 3), &params, false));
    let test_guest = columns(&joined, 0..3, false);
    let test_host = columns(&joined, 3..6, false);
    let roster = Roster::of(&[("bank", Role::Guest), ("telco", Role::Host)]);
    let run = |guest: &ModelPart, host: &ModelPart| {
        LocalCluster::new(roster.clone()).run(|ctx| {
            let (part, data) = if ctx.role() == Role::Guest {
                (guest, &test_guest)
            } else {
                (host, &test_host)
            };
            predict(&ctx, part, data).map(|_| ())
        })
    };
    // Parts of two different trainings.
    let out = run(
        &ModelPart::Guest(guest_a.clone()),
        &ModelPart::Host(hosts_b[0].1.clone()),
    );
    let e = out[0].result.as_ref().unwrap_err();
    assert!(e.contains("same training job"), "{e}");
    assert!(out[1].result.is_err());
    // A host whose split table lost entries: it names the unknown split id.
    let mut truncated = hosts_a[0].1.clone();
    truncated.splits.truncate(0);
    let out = run(
        &ModelPart::Guest(guest_a.clone()),
        &ModelPart::Host(truncated),
    );
    let e = out[0].result.as_ref().unwrap_err();
    assert!(
        e.contains("split id") && e.contains("do not belong together"),
        "{e}"
    );
    // A party holding the other role's part.
    let out = run(
        &ModelPart::Host(hosts_a[0].1.clone()),
        &ModelPart::Guest(guest_a),
    );
    let e = out[0].result.as_ref().unwrap_err();
    assert!(e.contains("belongs to a host"), "{e}");
}

#[test]
fn validation_and_training_columns_must_agree() {
    let params = test_params(Objective::BinaryLogistic);
    let joined = synthetic(80, 4, params.objective, 81);
    let mut parties = two_party(&joined, 2);
    parties[0].valid = Some(columns(&joined, 0..2, true));
    // The host's validation set has the wrong columns.
    parties[1].valid = Some(columns(&joined, 0..2, false));
    let outcomes = run_training(&parties, &params, false);
    let e = outcomes[0].result.as_ref().unwrap_err();
    assert!(
        e.contains("telco") && e.contains("same feature columns"),
        "{e}"
    );
}

#[test]
fn arbiters_do_not_take_part() {
    let params = test_params(Objective::BinaryLogistic);
    let joined = synthetic(20, 2, params.objective, 91);
    let roster = Roster::of(&[("bank", Role::Guest), ("hub", Role::Arbiter)]);
    let out = LocalCluster::new(roster).run(|ctx| {
        if ctx.role() == Role::Arbiter {
            train(&ctx, &joined, &params, None).map(|_| ())
        } else {
            Ok(())
        }
    });
    let e = out[1].result.as_ref().unwrap_err();
    assert!(e.contains("arbiter role does not take part"), "{e}");
    let _ = train_with_report;
}
