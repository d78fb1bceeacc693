//! Checkpoints and resume: a FedAvg run interrupted after some rounds (each party's store cut
//! back to where it had got, parties one round apart) and resumed gives, bit for bit, the model
//! of an uninterrupted run with the same seeds, with top-k error feedback (client state carried
//! between rounds) and with secure aggregation under seeded distributed DP noise (fresh masks).

mod common;

use common::{roster, three_clients};
use ferry_context::LocalCluster;
use ferry_data::Dataset;
use ferry_horizontal::{
    ClientSelection, DpConfig, FedAvgOutcome, FedAvgParams, HflError, LocalTraining, ModelSpec,
    NoiseSchedule, SecureAggregation, SelectionMode, Sparsification, train_with_checkpoints,
};
use ferry_ml::checkpoint::MemoryCheckpoints;
use ferry_ml::{CheckpointStore, Checkpoints};

const ROUNDS: usize = 6;

/// Runs every party (the server first) with its own stores; `resume[i]` is party i's store to
/// resume from.
fn run(
    data: &[Dataset],
    params: &FedAvgParams,
    save: &[MemoryCheckpoints],
    resume: Option<&[MemoryCheckpoints]>,
) -> Vec<Result<FedAvgOutcome, String>> {
    LocalCluster::new(roster(data.len()))
        .run(|ctx| -> Result<FedAvgOutcome, HflError> {
            let i = ctx
                .roster()
                .parties()
                .position(|(p, _)| p == ctx.me())
                .unwrap_or_default();
            let checkpoints = Checkpoints {
                save: Some(&save[i]),
                resume_from: resume.map(|r| &r[i] as &dyn CheckpointStore),
            };
            let rows = i.checked_sub(1).map(|c| &data[c]);
            train_with_checkpoints(&ctx, rows, params, None, checkpoints)
        })
        .into_iter()
        .map(|o| o.result.map_err(|e| format!("{}: {e}", o.party)))
        .collect()
}

/// The stores of one uninterrupted run.
fn whole_stores(data: &[Dataset], params: &FedAvgParams) -> Vec<MemoryCheckpoints> {
    let saved = stores(data.len() + 1);
    for r in run(data, params, &saved, None) {
        r.unwrap_or_else(|e| panic!("{e}"));
    }
    saved
}

fn stores(n: usize) -> Vec<MemoryCheckpoints> {
    (0..n).map(|_| MemoryCheckpoints::new()).collect()
}

fn params() -> FedAvgParams {
    FedAvgParams {
        model: ModelSpec::Logistic,
        rounds: ROUNDS,
        local: LocalTraining {
            epochs: 1,
            batch_size: 16,
            learning_rate: 0.05,
            l2: 0.0,
        },
        seed: 23,
        ..FedAvgParams::default()
    }
}

fn model_bits(o: &FedAvgOutcome) -> Vec<u64> {
    o.model.params.iter().map(|v| v.to_bits()).collect()
}

/// The uninterrupted run, then one whose stores stop at `stopped_after` (per party, server
/// first) and a resume from them; returns both runs' outcomes and the resumed run's stores.
fn interrupted_and_resumed(
    params: &FedAvgParams,
    stopped_after: &[u64],
) -> (
    Vec<FedAvgOutcome>,
    Vec<FedAvgOutcome>,
    Vec<MemoryCheckpoints>,
) {
    let data = three_clients();
    let n = data.len() + 1;
    let first = stores(n);
    let whole: Vec<FedAvgOutcome> = run(&data, params, &first, None)
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    for (store, &step) in first.iter().zip(stopped_after) {
        assert_eq!(
            store.steps().unwrap(),
            (1..=ROUNDS as u64).collect::<Vec<_>>(),
            "every party saves after every round"
        );
        store.truncate_after(step);
    }
    let second = stores(n);
    let resumed: Vec<FedAvgOutcome> = run(&data, params, &second, Some(&first))
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    (whole, resumed, second)
}

fn assert_same_models(whole: &[FedAvgOutcome], resumed: &[FedAvgOutcome], common: u64) {
    for (w, r) in whole.iter().zip(resumed) {
        assert_eq!(model_bits(w), model_bits(r));
        assert_eq!(r.rounds_completed, ROUNDS);
    }
    // The server's report covers every round, the resumed ones and those before.
    assert_eq!(resumed[0].rounds.len(), ROUNDS);
    assert_eq!(resumed[0].rounds, {
        // Timing and byte counts differ between runs; the rest must not.
        let mut w = whole[0].rounds.clone();
        for (a, b) in w.iter_mut().zip(&resumed[0].rounds) {
            if a.round > common as usize {
                a.seconds = b.seconds;
                a.bytes = b.bytes;
                a.update_bytes = b.update_bytes;
            } else {
                assert_eq!(a, b, "round {} comes from the checkpoint", a.round);
            }
        }
        w
    });
}

#[test]
fn a_resumed_run_with_top_k_feedback_equals_the_uninterrupted_run() {
    let params = FedAvgParams {
        sparsification: Sparsification::TopK { fraction: 0.4 },
        ..params()
    };
    // The server and one client stopped after round 3, the others after round 4.
    let (whole, resumed, second) = interrupted_and_resumed(&params, &[3, 4, 3, 4]);
    assert_same_models(&whole, &resumed, 3);
    // It resumed, not restarted: the new stores hold round 3 (the state continued from) and
    // the rounds after it, nothing before.
    for store in &second {
        assert_eq!(
            store.steps().unwrap(),
            (3..=ROUNDS as u64).collect::<Vec<_>>()
        );
    }
    // A client's checkpoint is checked against the round the server resumes after: client
    // a's round-1 state stored as its round 3 is refused, naming the round.
    let data = three_clients();
    let patched = stores(4);
    for (i, s) in whole_stores(&data, &params).iter().enumerate() {
        for step in s.steps().unwrap().into_iter().filter(|s| *s <= 3) {
            let bytes = s.load(if i == 1 && step == 3 { 1 } else { step }).unwrap();
            patched[i].save(step, &bytes).unwrap();
        }
    }
    let out = run(&data, &params, &stores(4), Some(&patched));
    let e = out[1]
        .clone()
        .expect_err("a checkpoint of another round must be refused");
    assert!(e.contains("round 3"), "{e}");
}

#[test]
fn a_resumed_run_under_secure_aggregation_and_seeded_dp_equals_the_uninterrupted_run() {
    let params = FedAvgParams {
        selection: ClientSelection {
            fraction: 1.0,
            mode: SelectionMode::Fixed,
        },
        secure_aggregation: Some(SecureAggregation::default()),
        dp: Some(
            DpConfig {
                clip_norm: 1.0,
                noise: NoiseSchedule::constant(0.3),
                delta: 1e-5,
                epsilon_budget: None,
                noise_seed: None,
            }
            .with_noise_seed(9),
        ),
        ..params()
    };
    let (whole, resumed, _) = interrupted_and_resumed(&params, &[2, 2, 3, 2]);
    assert_same_models(&whole, &resumed, 2);
    // The accountant continued: the same ε after all rounds.
    assert_eq!(whole[0].epsilon, resumed[0].epsilon);
    assert!(resumed[0].epsilon.is_some_and(|e| e > 0.0));
}

#[test]
fn a_client_behind_the_others_rejoins_and_without_server_state_the_run_starts_afresh() {
    let data = three_clients();
    let params = params();
    let first = stores(4);
    let whole = run(&data, &params, &first, None);
    // Copies of the first run's stores: party i keeps the rounds in `kept[i]` (as a node's
    // store keeps only the latest few).
    // `(first, last)`; `NOTHING` keeps no round.
    const NOTHING: (u64, u64) = (1, 0);
    let copy = |kept: [(u64, u64); 4]| {
        let c = stores(4);
        for (i, s) in first.iter().enumerate() {
            for step in s
                .steps()
                .unwrap()
                .into_iter()
                .filter(|s| (kept[i].0..=kept[i].1).contains(s))
            {
                c[i].save(step, &s.load(step).unwrap()).unwrap();
            }
        }
        c
    };
    let check = |resume: &[MemoryCheckpoints], first_step: u64| {
        let saved = stores(4);
        let again = run(&data, &params, &saved, Some(resume));
        for (w, a) in whole.iter().zip(&again) {
            let (w, a) = (
                w.as_ref().unwrap(),
                a.as_ref().unwrap_or_else(|e| panic!("{e}")),
            );
            // Without top-k a client carries no state the model depends on, so even a client
            // that rejoins from nothing leaves the model as the uninterrupted run's.
            assert_eq!(model_bits(w), model_bits(a));
        }
        assert_eq!(saved[0].steps().unwrap().first(), Some(&first_step));
    };
    // Client c has nothing (it dropped out before its first checkpoint while the others went
    // on): the server resumes after its own latest round, 4, and client c starts fresh.
    check(&copy([(1, 4), (1, 4), (1, 4), NOTHING]), 4);
    // Client b two rounds behind, round 2 still kept everywhere: the common round wins.
    check(&copy([(1, 4), (1, 4), (1, 2), (1, 4)]), 2);
    // The others keep only rounds 3 and 4 by now: b rejoins from its round 2.
    check(&copy([(3, 4), (3, 4), (1, 2), (3, 4)]), 4);
    // The server has nothing: training starts from round 1.
    check(&copy([NOTHING, (1, 4), (1, 4), (1, 4)]), 1);
    // Another learning rate: the server refuses its checkpoint and tells the clients.
    let other = FedAvgParams {
        local: LocalTraining {
            learning_rate: 0.06,
            ..params.local.clone()
        },
        ..params
    };
    let out = run(&data, &other, &stores(4), Some(&first));
    let server = out[0].clone().expect_err("the server refuses");
    assert!(server.contains("other parameters"), "{server}");
    assert!(out[1].is_err());
}
