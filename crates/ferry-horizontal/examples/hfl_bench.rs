//! Rounds per second and bytes per round of FedAvg on default_credit_homo with 3 clients
//! in-process (LocalCluster), for LR and an MLP, with and without secure aggregation and
//! sparsification.
//!
//! Run: `cargo run --release -p ferry-horizontal --example hfl_bench [rounds]`
//! (needs ../shared/datasets). Bytes are the server's `ctx.counters()` per round: every message
//! of the job goes through the server.

use ferry_context::{LocalCluster, Role, Roster};
use ferry_data::{Dataset, DatasetSpec, LabelKind};
use ferry_horizontal::{
    FedAvgOutcome, FedAvgParams, HflError, LocalTraining, ModelSpec, SecureAggregation,
    Sparsification, Task, evaluate, train,
};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    if !dir.is_dir() {
        eprintln!("shared datasets not found at {}", dir.display());
        return;
    }
    let spec = DatasetSpec::with_label("y", LabelKind::Binary);
    let load = |f: &str| Dataset::read_csv(dir.join(f), &spec).unwrap_or_else(|e| panic!("{e}"));
    let clients = [
        load("default_credit_homo_guest.csv"),
        load("default_credit_homo_host_1.csv"),
        load("default_credit_homo_host_2.csv"),
    ];
    let test = load("default_credit_homo_test.csv");
    let roster = Roster::of(&[
        ("server", Role::Arbiter),
        ("bank_a", Role::Guest),
        ("bank_b", Role::Host),
        ("bank_c", Role::Host),
    ]);

    println!(
        "default_credit_homo, 3 clients x 8000 rows, {rounds} rounds, 1 local epoch, batch 64, in-process"
    );
    println!(
        "{:<10} {:<8} {:<14} {:>9} {:>9} {:>11} {:>14} {:>16} {:>9}",
        "model",
        "secagg",
        "sparsify",
        "rounds/s",
        "ms/round",
        "bytes/round",
        "update B/round",
        "dense upd B/round",
        "test acc"
    );
    for (name, model) in [
        ("LR", ModelSpec::Logistic),
        (
            "MLP-32-16",
            ModelSpec::Mlp {
                hidden: vec![32, 16],
                task: Task::Binary,
            },
        ),
    ] {
        for secure in [false, true] {
            let sparsifications = if secure {
                [
                    Sparsification::None,
                    Sparsification::RandomK { fraction: 0.1 },
                ]
            } else {
                [Sparsification::None, Sparsification::TopK { fraction: 0.1 }]
            };
            for sparsification in sparsifications {
                let params = FedAvgParams {
                    model: model.clone(),
                    rounds,
                    local: LocalTraining {
                        epochs: 1,
                        batch_size: 64,
                        learning_rate: 0.05,
                        l2: 0.0,
                    },
                    secure_aggregation: secure.then(SecureAggregation::default),
                    sparsification,
                    ..FedAvgParams::default()
                };
                // Three runs; the median wall time is reported (the first run of a process also
                // pays for warming caches).
                let mut runs: Vec<(f64, FedAvgOutcome)> = (0..3)
                    .map(|_| {
                        let started = Instant::now();
                        let outcomes = LocalCluster::new(roster.clone()).run(
                            |ctx| -> Result<FedAvgOutcome, HflError> {
                                match ctx.me().as_str() {
                                    "server" => train(&ctx, None, &params, None),
                                    "bank_a" => train(&ctx, Some(&clients[0]), &params, None),
                                    "bank_b" => train(&ctx, Some(&clients[1]), &params, None),
                                    _ => train(&ctx, Some(&clients[2]), &params, None),
                                }
                            },
                        );
                        let elapsed = started.elapsed().as_secs_f64();
                        match outcomes.into_iter().next().map(|o| o.result) {
                            Some(Ok(o)) => (elapsed, o),
                            Some(Err(e)) => panic!("server failed: {e}"),
                            None => panic!("no server outcome"),
                        }
                    })
                    .collect();
                runs.sort_by(|a, b| a.0.total_cmp(&b.0));
                let (elapsed, server) = &runs[1];
                let n = server.rounds.len() as f64;
                let round_ms = server.rounds.iter().map(|r| r.seconds).sum::<f64>() / n * 1e3;
                let avg = |f: &dyn Fn(&ferry_horizontal::RoundReport) -> u64| {
                    server.rounds.iter().map(f).sum::<u64>() as f64 / n
                };
                let accuracy = evaluate(&server.model, &test)
                    .ok()
                    .and_then(|m| m.accuracy)
                    .unwrap_or(f64::NAN);
                let sparse_name = match sparsification {
                    Sparsification::None => "none".to_string(),
                    Sparsification::TopK { fraction } => format!("top-{:.0}%", fraction * 100.0),
                    Sparsification::RandomK { fraction } => {
                        format!("random-{:.0}%", fraction * 100.0)
                    }
                };
                println!(
                    "{:<10} {:<8} {:<14} {:>9.2} {:>9.1} {:>11.0} {:>14.0} {:>16.0} {:>9.4}",
                    name,
                    if secure { "on" } else { "off" },
                    sparse_name,
                    n / elapsed,
                    round_ms,
                    avg(&|r| r.bytes),
                    avg(&|r| r.update_bytes),
                    avg(&|r| r.dense_update_bytes),
                    accuracy
                );
            }
        }
    }
}
