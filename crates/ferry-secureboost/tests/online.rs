//! Online scoring (one id at a time, host answers as split-decision bits) equals offline
//! federated prediction, for seeded random models and datasets, every objective, one and two
//! hosts, and ids a host does not have (the missing direction of each split).

mod common;

use common::*;
use ferry_context::{LocalCluster, PartyId, Role, Roster};
use ferry_data::Dataset;
use ferry_secureboost::online::{guest_score, host_decisions};
use ferry_secureboost::{Objective, SecureBoostParams, predict};

fn parties(joined: &Dataset, cuts: &[usize]) -> Vec<Party> {
    let names = ["bank", "telco", "retail"];
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(joined.n_features());
    bounds
        .windows(2)
        .enumerate()
        .map(|(i, w)| Party {
            name: names[i],
            role: if i == 0 { Role::Guest } else { Role::Host },
            train: columns(joined, w[0]..w[1], i == 0),
            valid: None,
        })
        .collect()
}

/// Trains, predicts `test` offline over the in-memory cluster, then scores every row online;
/// `absent` rows are treated as missing at every host in both paths (offline: all-NaN host
/// rows, which is what an id a host does not have means).
fn check(objective: Objective, cuts: &[usize], seed: u64) {
    let params = SecureBoostParams {
        num_trees: 4,
        ..test_params(objective)
    };
    let joined = synthetic(160, 6, objective, seed);
    let trained = run_training(&parties(&joined, cuts), &params, false);
    let (guest, _, hosts) = split_parts(trained);
    assert!(
        hosts.iter().any(|(_, h)| !h.splits.is_empty()),
        "no host owns a split: the test would not exercise host decisions"
    );
    let mut test = synthetic(60, 6, objective, seed + 1000);
    // Every 7th id is unknown to the hosts: their columns are all missing offline.
    let absent = |i: usize| i % 7 == 3;
    let d = test.n_features();
    for i in (0..test.n_rows()).filter(|&i| absent(i)) {
        for j in cuts[0]..d {
            test.features[i * d + j] = f64::NAN;
        }
    }
    let test_parties = parties(&test, cuts);
    let roster = Roster::of(
        &test_parties
            .iter()
            .map(|p| (p.name, p.role))
            .collect::<Vec<_>>(),
    );
    let guest_part = ferry_secureboost::ModelPart::Guest(guest.clone());
    let host_parts: Vec<_> = hosts
        .iter()
        .map(|(_, h)| ferry_secureboost::ModelPart::Host(h.clone()))
        .collect();
    let outcomes = LocalCluster::new(roster).run(|ctx| {
        let i = test_parties
            .iter()
            .position(|p| p.name == ctx.me().as_str())
            .expect("party");
        let part = if i == 0 {
            &guest_part
        } else {
            &host_parts[i - 1]
        };
        predict(&ctx, part, &test_parties[i].train)
    });
    let offline = outcomes
        .into_iter()
        .find_map(|o| o.result.ok().flatten())
        .expect("guest predictions");
    let classes = offline.classes();
    let k = offline.n_outputs;
    for i in 0..test.n_rows() {
        let answers: Vec<(PartyId, Vec<u8>)> = hosts
            .iter()
            .zip(&test_parties[1..])
            .map(|((name, h), p)| {
                let row = (!absent(i)).then(|| p.train.row(i));
                (PartyId::new(name).unwrap(), host_decisions(h, row).unwrap())
            })
            .collect();
        let refs: Vec<(&PartyId, &[u8])> = answers.iter().map(|(p, b)| (p, b.as_slice())).collect();
        let online = guest_score(&guest, test_parties[0].train.row(i), &refs).unwrap();
        assert_eq!(
            online.raw,
            offline.raw[i * k..(i + 1) * k],
            "row {i}, seed {seed}"
        );
        assert_eq!(
            online.outputs,
            offline.outputs[i * k..(i + 1) * k],
            "row {i}"
        );
        assert_eq!(online.class, classes.as_ref().map(|c| c[i]), "row {i}");
    }
}

#[test]
fn online_scores_equal_offline_prediction_for_seeded_models() {
    for seed in 0..3 {
        check(Objective::BinaryLogistic, &[3], 500 + seed);
    }
    check(Objective::SquaredError, &[2, 4], 600);
    check(Objective::MultiSoftmax { num_class: 3 }, &[3], 700);
}
