//! Online scoring (each host's partial score of one row, combined at the guest) equals
//! offline federated prediction for seeded random models and datasets, one and two hosts,
//! logistic and linear.

mod common;

use common::*;
use ferry_context::LocalCluster;
use ferry_linear::{Mode, ModelPart, Task, predict};

fn check(task: Task, d_hosts: &[usize], seed: u64) {
    let (guest_data, hosts, _) = synthetic(120, 2, d_hosts, task, seed);
    let mut params = test_params(Mode::Auto);
    params.task = task;
    params.max_epochs = 2;
    let outcomes = run_fit(
        LocalCluster::new(roster(hosts.len(), false)),
        &guest_data,
        &hosts,
        &params,
        None,
    );
    let parts: Vec<ModelPart> = outcomes.into_iter().map(|o| o.unwrap().model).collect();
    let (test_guest, test_hosts, _) = synthetic(50, 2, d_hosts, task, seed + 1000);
    let offline = LocalCluster::new(roster(hosts.len(), false))
        .run(|ctx| {
            let (data, part) = match ctx.hosts().iter().position(|h| h == ctx.me()) {
                Some(k) => (&test_hosts[k], &parts[k + 1]),
                None => (&test_guest, &parts[0]),
            };
            predict(&ctx, part, data)
        })
        .into_iter()
        .find_map(|o| o.result.ok().flatten())
        .expect("guest predictions");
    for (i, expected) in offline.iter().enumerate() {
        let partials: Vec<f64> = test_hosts
            .iter()
            .zip(&parts[1..])
            .map(|(h, p)| p.partial_score_row(h.row(i)).unwrap())
            .collect();
        let own = parts[0].partial_score_row(test_guest.row(i)).unwrap();
        assert_eq!(
            parts[0].combine_online(own, &partials),
            *expected,
            "row {i}, seed {seed}"
        );
    }
    assert_eq!(offline.len(), test_guest.n_rows());
    // A missing value is refused, naming the feature, as offline.
    let mut row = test_hosts[0].row(0).to_vec();
    row[0] = f64::NAN;
    let e = parts[1].partial_score_row(&row).unwrap_err().to_string();
    assert!(e.contains("h0_0"), "{e}");
}

#[test]
fn online_scores_equal_offline_prediction_for_seeded_models() {
    for seed in 0..2 {
        check(Task::Logistic, &[3], 70 + seed);
    }
    check(Task::Logistic, &[2, 3], 80);
    check(Task::Linear, &[2], 90);
}
