//! Clients dropping out mid-training, with and without secure aggregation, and the metrics the
//! server reports through its observer.

mod common;

use common::{roster, three_clients};
use ferry_context::{Context, MemoryNetwork, Observer, RecordingObserver};
use ferry_data::Dataset;
use ferry_horizontal::{
    DpConfig, FedAvgOutcome, FedAvgParams, LocalTraining, ModelSpec, NoiseSchedule,
    SecureAggregation, train,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Takes its party offline (cancels its session) when it reports `metric` at `step`.
struct GoOfflineAt {
    metric: &'static str,
    step: u64,
    offline: Arc<AtomicBool>,
}

impl Observer for GoOfflineAt {
    fn metric(&self, name: &str, step: u64, _value: f64) {
        if name == self.metric && step == self.step {
            self.offline.store(true, Ordering::SeqCst);
        }
    }
}

/// Runs the server and one client per dataset; the last client goes offline at (`metric`, `step`). Returns the results
/// and the server's recorded metrics.
fn run_with_dropout(
    data: &[Dataset],
    params: &FedAvgParams,
    metric: &'static str,
    step: u64,
) -> (Vec<Result<FedAvgOutcome, String>>, Arc<RecordingObserver>) {
    let roster = roster(data.len());
    let net = MemoryNetwork::new();
    let server_observer = Arc::new(RecordingObserver::default());
    let parties: Vec<_> = roster.parties().map(|(p, _)| p.clone()).collect();
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = parties
            .iter()
            .enumerate()
            .map(|(i, party)| {
                let offline = Arc::new(AtomicBool::new(false));
                let observer: Arc<dyn Observer> = if i == 0 {
                    server_observer.clone()
                } else if i == data.len() {
                    Arc::new(GoOfflineAt {
                        metric,
                        step,
                        offline: offline.clone(),
                    })
                } else {
                    Arc::new(RecordingObserver::default())
                };
                let ctx = Context::builder(
                    party.clone(),
                    roster.clone(),
                    "dropout-test",
                    net.endpoint(party.clone()),
                )
                .timeout(Duration::from_secs(60))
                .observer(observer)
                .cancel_flag(offline)
                .build()
                .unwrap();
                let net = net.clone();
                scope.spawn(move || {
                    let result = if i == 0 {
                        train(&ctx, None, params, None)
                    } else {
                        train(&ctx, Some(&data[i - 1]), params, None)
                    };
                    if result.is_err() {
                        net.mark_failed(ctx.me());
                    }
                    result.map_err(|e| e.to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (results, server_observer)
}

fn params() -> FedAvgParams {
    FedAvgParams {
        model: ModelSpec::Logistic,
        rounds: 3,
        local: LocalTraining {
            epochs: 1,
            batch_size: 16,
            learning_rate: 0.05,
            l2: 0.0,
        },
        ..FedAvgParams::default()
    }
}

/// A client lost before sending its round-2 statistics is left out from then on; the others
/// finish with renormalised weights, and the server reports weights per round as metrics.
#[test]
fn training_continues_without_a_client_that_went_offline() {
    let data = three_clients();
    let (results, observer) = run_with_dropout(&data, &params(), "local_train_loss", 2);
    let server = results[0].as_ref().unwrap();
    assert!(results[3].as_ref().unwrap_err().contains("cancelled"));
    assert_eq!(server.rounds_completed, 3);
    let included: Vec<usize> = server.rounds.iter().map(|r| r.included.len()).collect();
    assert_eq!(included, vec![3, 2, 2]);
    for r in &server.rounds {
        let total: f64 = r.weights.iter().map(|(_, w)| w).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }
    for client in &results[1..3] {
        assert_eq!(client.as_ref().unwrap().model, server.model);
    }
    let metrics = observer.metrics.lock().unwrap();
    let weights_c: Vec<u64> = metrics
        .iter()
        .filter(|(name, _, _)| name == "weight/client-c")
        .map(|(_, step, _)| *step)
        .collect();
    assert_eq!(weights_c, vec![1], "client-c is weighted only in round 1");
    let weights_a = metrics
        .iter()
        .filter(|(name, _, _)| name == "weight/client-a")
        .count();
    assert_eq!(weights_a, 3);
    assert!(
        metrics
            .iter()
            .any(|(n, s, v)| n == "bytes" && *s == 3 && *v > 0.0)
    );
}

/// Under secure aggregation, a client that dropped after the weights were fixed (so it was
/// invited to the aggregation) is recovered from by the protocol: the round completes with the
/// two survivors. DP is on, so the step is divided by the fixed normaliser of all three
/// clients, not renormalised over the survivors: who took part does not change it.
#[test]
fn secure_aggregation_round_survives_a_client_dropping_mid_round() {
    let data = three_clients();
    let p = FedAvgParams {
        secure_aggregation: Some(SecureAggregation::default()),
        // DP with no noise and a clip nothing reaches changes nothing, but makes clients report
        // their update norm right before the secure aggregation starts: the drop point.
        dp: Some(DpConfig {
            clip_norm: 1e9,
            noise: NoiseSchedule::constant(0.0),
            delta: 1e-5,
            epsilon_budget: None,
            noise_seed: Some(1),
        }),
        ..params()
    };
    let (results, _) = run_with_dropout(&data, &p, "update_norm", 2);
    let server = results[0].as_ref().unwrap_or_else(|e| panic!("{e}"));
    let round2 = &server.rounds[1];
    assert_eq!(
        round2.contributions.len(),
        3,
        "it sent statistics and got a weight"
    );
    let names: Vec<&str> = round2.included.iter().map(|p| p.as_str()).collect();
    assert_eq!(names, vec!["client-a", "client-b"]);
    // Sample-count weighting against the largest client: the normaliser is Σ n_j / max n over
    // the three clients that joined, in every round, whoever is included.
    let n: Vec<f64> = data.iter().map(|d| d.n_rows() as f64).collect();
    let n_max = n.iter().cloned().fold(0.0, f64::max);
    let expected: f64 = n.iter().map(|x| x / n_max).sum();
    let normalisers: Vec<Option<f64>> = server.rounds.iter().map(|r| r.normaliser).collect();
    assert_eq!(normalisers, vec![Some(expected); 3]);
    assert_eq!(server.rounds[0].included.len(), 3);
    assert_eq!(server.rounds[2].included.len(), 2);
    // The survivors' shares are their own weights over that fixed normaliser; they no longer
    // add up to 1 once a client is missing.
    for (party, share) in &round2.weights {
        let i = ["client-a", "client-b"]
            .iter()
            .position(|p| *p == party.as_str())
            .unwrap();
        assert_eq!(*share, n[i] / n_max / expected);
    }
    let total: f64 = round2.weights.iter().map(|(_, w)| w).sum();
    assert!(total < 1.0 - 1e-3, "{total}");
    assert_eq!(server.rounds[2].selected.len(), 2);
    assert!(results[3].is_err());
    assert_eq!(results[1].as_ref().unwrap().model, server.model);
}

/// With two clients under secure aggregation, losing one leaves a "sum" of one update: the
/// server skips the aggregation rather than reveal it, and training ends without change.
#[test]
fn secure_aggregation_never_aggregates_a_single_update() {
    let [a, b, _] = three_clients();
    let p = FedAvgParams {
        secure_aggregation: Some(SecureAggregation::default()),
        ..params()
    };
    let (results, _) = run_with_dropout(&[a, b], &p, "local_train_loss", 2);
    let server = results[0].as_ref().unwrap_or_else(|e| panic!("{e}"));
    let skipped: Vec<bool> = server.rounds.iter().map(|r| r.skipped).collect();
    assert_eq!(skipped, vec![false, true, true]);
    assert!(server.rounds[1].included.is_empty());
    // The surviving client's round-2 statistics arrived, but no update did.
    let survivor = results[1].as_ref().unwrap();
    assert_eq!(survivor.model, server.model);
    assert_eq!(server.rounds_completed, 3);
}
