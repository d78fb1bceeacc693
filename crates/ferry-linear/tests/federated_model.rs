//! Hetero LR through the `FederatedModel` interface: the guest's label chooses the task, the
//! hosts and the arbiter adopt it in the handshake, and the model is the pooled one.

mod common;

use common::*;
use ferry_context::{LocalCluster, Role};
use ferry_data::{Dataset, LabelKind};
use ferry_linear::reference::{ReferenceLoss, train_pooled};
use ferry_linear::{LinearError, LinearParams, Mode, ModelPart, Task};
use ferry_ml::{FederatedModel, LabelFacts};

type PartyResult = (ModelPart, serde_json::Value, Option<Vec<f64>>);

/// Every party fits through the trait with its own parameters (`guest` for the guest, `others`
/// for hosts and the arbiter), stores and reloads its part, and predicts on its training rows.
fn fit_and_predict(
    arbiter: bool,
    guest_data: &Dataset,
    hosts: &[Dataset],
    guest: &LinearParams,
    others: &LinearParams,
) -> Vec<Result<PartyResult, String>> {
    LocalCluster::new(roster(hosts.len(), arbiter))
        .run(|ctx| {
            let k = ctx.hosts().iter().position(|h| h == ctx.me());
            let (data, params) = match ctx.role() {
                Role::Guest => (Some(guest_data), guest),
                Role::Host => (k.map(|k| &hosts[k]), others),
                Role::Arbiter => (None, others),
            };
            let fitted = ModelPart::fit(&ctx, data, params, None)?;
            let part = ModelPart::from_bytes(&fitted.model.to_bytes()?)?;
            let scores = part.predict(&ctx, data)?;
            Ok::<_, LinearError>((part, fitted.summary, scores))
        })
        .into_iter()
        .map(|o| o.result.map_err(|e| format!("{}: {e}", o.party)))
        .collect()
}

#[test]
fn hosts_with_the_default_task_train_linear_regression_with_a_continuous_label_guest() {
    let (guest_data, hosts, pooled) = synthetic(200, 2, &[3], Task::Linear, 41);
    let mut defaults = test_params(Mode::Auto);
    defaults.max_epochs = 5;
    let mut guest = defaults.clone();
    let set = serde_json::json!({"max_epochs": 5});
    ModelPart::follow_labels(
        &mut guest,
        set.as_object().unwrap(),
        LabelFacts {
            kind: LabelKind::Continuous,
            distinct: 200,
        },
    );
    assert_eq!(guest.task, Task::Linear);
    assert_eq!(defaults.task, Task::Logistic);
    let reference = train_pooled(&pooled, &guest, ReferenceLoss::Exact).unwrap();
    for arbiter in [false, true] {
        let results = fit_and_predict(arbiter, &guest_data, &hosts, &guest, &defaults);
        let results: Vec<PartyResult> = results
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("arbiter {arbiter}: {e}"));
        // Every part, the arbiter's included, was trained for the guest's task.
        for (part, _, _) in &results {
            assert_eq!(part.task, Task::Linear, "{}", part.party);
        }
        let (g, summary, scores) = &results[0];
        let (h, _, host_scores) = &results[1];
        let mut weights = g.weights.clone();
        weights.extend(&h.weights);
        assert!(
            max_rel_diff(&weights, &reference.weights) < 1e-6,
            "{weights:?} vs {:?}",
            reference.weights
        );
        // The guest's scores are values on the label's scale, the pooled model's.
        let scores = scores.as_ref().expect("the guest learns the scores");
        assert!(max_rel_diff(scores, &reference.predict(&pooled)) < 1e-6);
        assert!(
            scores.iter().any(|s| !(0.0..=1.0).contains(s)),
            "not probabilities"
        );
        assert_eq!(host_scores, &None);
        assert_eq!(summary["task"], "linear");
        assert_eq!(summary["epochs"], 5);
        assert_eq!(summary["final_epoch"]["epoch"], 4);
        assert!(
            summary["final_epoch"]["loss"].as_f64().is_some(),
            "{summary}"
        );
        assert!(summary["seconds"].as_f64().is_some_and(|s| s > 0.0));
        if arbiter {
            assert_eq!(results[2].2, None);
        }
    }
}

/// Adopting the guest's task does not make a host accept other differences.
#[test]
fn a_host_still_refuses_any_other_difference() {
    let (guest_data, hosts, _) = synthetic(60, 2, &[2], Task::Linear, 42);
    let mut guest = test_params(Mode::Auto);
    guest.task = Task::Linear;
    let mut host = test_params(Mode::Auto);
    host.max_epochs = guest.max_epochs + 1;
    let results = fit_and_predict(false, &guest_data, &hosts, &guest, &host);
    let e = results[1].as_ref().expect_err("the host refuses");
    assert!(e.contains("max_epochs"), "{e}");
    assert!(!e.contains("task"), "{e}");
    assert!(results[0].is_err());
}
