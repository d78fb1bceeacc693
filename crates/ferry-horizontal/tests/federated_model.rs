//! FedAvg through the `FederatedModel` interface: fit, summary, storage and local prediction.

mod common;

use common::*;
use ferry_context::{LocalCluster, Role};
use ferry_data::Dataset;
use ferry_horizontal::{
    DpConfig, FedAvgParams, HflError, LocalTraining, Model, NoiseSchedule, SelectionMode, predict,
};
use ferry_ml::FederatedModel;

type PartyResult = (Model, serde_json::Value, Option<Vec<f64>>);

/// Every party fits through the trait (clients on their rows, the server on nothing), stores
/// and reloads the model, and scores its own rows (the server scores nothing).
fn run(data: &[Dataset], params: &FedAvgParams) -> Vec<PartyResult> {
    LocalCluster::new(roster(data.len()))
        .run(|ctx| -> Result<PartyResult, HflError> {
            let position = ctx
                .roster()
                .parties()
                .position(|(p, _)| p == ctx.me())
                .unwrap_or_default();
            let rows = position.checked_sub(1).map(|i| &data[i]);
            assert_eq!(Model::needs_label(ctx.role()), rows.is_some());
            let fitted = Model::fit(&ctx, rows, params, None)?;
            let model = Model::from_bytes(&fitted.model.to_bytes()?)?;
            assert_eq!(model, fitted.model);
            let scores = model.predict(&ctx, rows)?;
            Ok((model, fitted.summary, scores))
        })
        .into_iter()
        .map(|o| {
            let party = o.party.clone();
            o.result.unwrap_or_else(|e| panic!("{party}: {e}"))
        })
        .collect()
}

fn params() -> FedAvgParams {
    FedAvgParams {
        rounds: 3,
        local: LocalTraining {
            epochs: 1,
            batch_size: 32,
            learning_rate: 0.05,
            l2: 0.0,
        },
        ..FedAvgParams::default()
    }
}

#[test]
fn fit_summarises_the_run_and_every_party_scores_locally() {
    let data = three_clients();
    let results = run(&data, &params());
    let (server_model, summary, server_scores) = &results[0];
    assert_eq!(server_scores, &None);
    assert_eq!(summary["rounds"], 3);
    assert_eq!(summary["stop"], "completed");
    assert_eq!(summary["epsilon"], serde_json::Value::Null);
    assert!(
        summary["train_loss"].as_f64().is_some_and(|l| l > 0.0),
        "{summary}"
    );
    // Without DP, the summary still lists what the clients sent in the clear.
    let cleartext = summary["privacy"]["cleartext"]
        .as_array()
        .expect("cleartext");
    assert!(
        cleartext.iter().any(|s| s["name"] == "sample_count"),
        "{summary}"
    );
    assert!(cleartext.iter().any(|s| s["name"] == "update"), "{summary}");
    for (i, (model, client_summary, scores)) in results[1..].iter().enumerate() {
        // The same final model everywhere; each client's scores are its own rows'.
        assert_eq!(model, server_model);
        assert_eq!(client_summary["rounds"], 3);
        let scores = scores.as_ref().expect("a client scores its rows");
        assert_eq!(scores, &predict(model, &data[i]).unwrap());
        assert!(scores.iter().all(|p| (0.0..=1.0).contains(p)));
    }
    assert!(!Model::needs_label(Role::Arbiter));
}

#[test]
fn under_dp_the_summary_carries_the_privacy_report() {
    let data = three_clients();
    let params = FedAvgParams {
        selection: ferry_horizontal::ClientSelection {
            fraction: 1.0,
            mode: SelectionMode::Fixed,
        },
        dp: Some(
            DpConfig {
                clip_norm: 1.0,
                noise: NoiseSchedule::constant(0.5),
                delta: 1e-5,
                epsilon_budget: None,
                noise_seed: None,
            }
            .with_noise_seed(3),
        ),
        ..params()
    };
    let results = run(&data, &params);
    for (_, summary, _) in &results {
        let epsilon = summary["epsilon"].as_f64().expect("ε is reported");
        assert!(epsilon > 0.0 && epsilon.is_finite());
        assert_eq!(summary["privacy"]["epsilon"], summary["epsilon"]);
        assert_eq!(summary["privacy"]["delta"], 1e-5);
        assert_eq!(summary["privacy"]["noise"], "central");
        assert!(summary["privacy"]["cleartext"].as_array().is_some());
    }
}

#[test]
fn validate_checks_ranges_without_a_roster() {
    assert!(Model::validate(&FedAvgParams::default()).is_ok());
    let bad = FedAvgParams {
        rounds: 0,
        ..FedAvgParams::default()
    };
    let e = Model::validate(&bad).unwrap_err();
    assert!(e.contains("rounds"), "{e}");
    let mut p = FedAvgParams::default();
    assert!(Model::he_settings(&mut p).is_none());
    assert_eq!(Model::KIND, "fedavg");
}
