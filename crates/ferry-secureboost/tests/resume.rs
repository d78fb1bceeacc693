//! Checkpoints and resume: a training interrupted after some trees and resumed from the
//! parties' checkpoints gives exactly the model of an uninterrupted run with the same seed.

mod common;

use common::*;
use ferry_context::{LocalCluster, PartyOutcome, Role};
use ferry_ml::checkpoint::{CheckpointError, CheckpointStore, Checkpoints, MemoryCheckpoints};
use ferry_secureboost::{
    GuestModel, HostModel, ModelPart, Objective, SecureBoostParams, TrainReport,
    train_with_checkpoints,
};

/// A store that fails to save one step: the party stops there, as if its node died.
struct FailAt {
    inner: MemoryCheckpoints,
    fail_at: Option<u64>,
}

impl CheckpointStore for FailAt {
    fn save(&self, step: u64, state: &[u8]) -> Result<(), CheckpointError> {
        if Some(step) == self.fail_at {
            return Err(CheckpointError(format!("injected failure at step {step}")));
        }
        self.inner.save(step, state)
    }
    fn steps(&self) -> Result<Vec<u64>, CheckpointError> {
        self.inner.steps()
    }
    fn load(&self, step: u64) -> Result<Vec<u8>, CheckpointError> {
        self.inner.load(step)
    }
}

fn store(fail_at: Option<u64>) -> FailAt {
    FailAt {
        inner: MemoryCheckpoints::new(),
        fail_at,
    }
}

/// Trains with one save store and one resume store per party (by roster position).
fn run(
    parties: &[Party],
    params: &SecureBoostParams,
    save: &[&dyn CheckpointStore],
    resume: Option<&[&dyn CheckpointStore]>,
) -> Vec<PartyOutcome<(ModelPart, TrainReport)>> {
    LocalCluster::new(roster(parties)).run(|ctx| {
        let i = parties
            .iter()
            .position(|p| p.name == ctx.me().as_str())
            .expect("party in roster");
        let me = &parties[i];
        let checkpoints = Checkpoints {
            save: Some(save[i]),
            resume_from: resume.map(|r| r[i]),
        };
        train_with_checkpoints(&ctx, &me.train, params, me.valid.as_ref(), checkpoints)
    })
}

/// The parts with the random model id blanked, so that two runs compare byte for byte.
fn normalised(
    outcomes: Vec<PartyOutcome<(ModelPart, TrainReport)>>,
) -> (GuestModel, TrainReport, Vec<HostModel>) {
    let (mut g, r, hosts) = split_parts(outcomes);
    g.model_id.clear();
    let hosts = hosts
        .into_iter()
        .map(|(_, mut h)| {
            h.model_id.clear();
            h
        })
        .collect();
    (g, r, hosts)
}

fn parties(objective: Objective, n: usize, seed: u64, validation: bool) -> Vec<Party> {
    let joined = synthetic(n, 7, objective, seed);
    let valid = validation.then(|| synthetic(80, 7, objective, seed + 100));
    vec![
        Party {
            name: "bank",
            role: Role::Guest,
            train: columns(&joined, 0..3, true),
            valid: valid.as_ref().map(|v| columns(v, 0..3, true)),
        },
        Party {
            name: "telco",
            role: Role::Host,
            train: columns(&joined, 3..5, false),
            valid: valid.as_ref().map(|v| columns(v, 3..5, false)),
        },
        Party {
            name: "isp",
            role: Role::Host,
            train: columns(&joined, 5..7, false),
            valid: valid.as_ref().map(|v| columns(v, 5..7, false)),
        },
    ]
}

/// Interrupts training when the guest saves step `fail_at` (the hosts may already have saved
/// that tree), resumes from the checkpoints and compares with an uninterrupted run.
fn check_resume_equals_uninterrupted(parties: &[Party], params: &SecureBoostParams, fail_at: u64) {
    let plain: Vec<FailAt> = parties.iter().map(|_| store(None)).collect();
    let refs: Vec<&dyn CheckpointStore> = plain.iter().map(|s| s as &dyn CheckpointStore).collect();
    let (want, want_report, want_hosts) = normalised(run(parties, params, &refs, None));

    let first: Vec<FailAt> = parties
        .iter()
        .map(|p| store((p.role == Role::Guest).then_some(fail_at)))
        .collect();
    let refs: Vec<&dyn CheckpointStore> = first.iter().map(|s| s as &dyn CheckpointStore).collect();
    let out = run(parties, params, &refs, None);
    let guest_error = out[0].result.as_ref().err().cloned().unwrap_or_default();
    assert!(guest_error.contains("injected failure"), "{guest_error}");
    let k = params.objective.n_outputs() as u64;
    assert_eq!(first[0].inner.steps().unwrap().last(), Some(&(fail_at - k)));

    let second: Vec<FailAt> = parties.iter().map(|_| store(None)).collect();
    let save: Vec<&dyn CheckpointStore> =
        second.iter().map(|s| s as &dyn CheckpointStore).collect();
    let resume: Vec<&dyn CheckpointStore> =
        first.iter().map(|s| s as &dyn CheckpointStore).collect();
    let (got, got_report, got_hosts) = normalised(run(parties, params, &save, Some(&resume)));

    assert_eq!(got.trees.len(), want.trees.len());
    assert_eq!(got, want, "resumed guest part differs");
    assert_eq!(got_hosts, want_hosts, "resumed host parts differ");
    // The stored files are the same bytes.
    assert_eq!(
        ModelPart::Guest(got).to_json(),
        ModelPart::Guest(want).to_json()
    );
    let metrics = |r: &TrainReport| -> Vec<(Option<f64>, Option<f64>)> {
        r.trees
            .iter()
            .map(|t| (t.train_metric, t.validation_metric))
            .collect()
    };
    assert_eq!(metrics(&got_report), metrics(&want_report));
    assert_eq!(got_report.best_round, want_report.best_round);
    // The resumed run saved its own checkpoints, from the resume point on.
    let resumed_steps = second[0].inner.steps().unwrap();
    assert_eq!(resumed_steps.first(), Some(&fail_at));
}

#[test]
fn resumed_binary_model_with_sampling_and_validation_equals_uninterrupted() {
    let params = SecureBoostParams {
        num_trees: 4,
        subsample: 0.8,
        colsample: 0.7,
        early_stopping_rounds: Some(10),
        seed: 11,
        ..test_params(Objective::BinaryLogistic)
    };
    check_resume_equals_uninterrupted(
        &parties(Objective::BinaryLogistic, 200, 21, true),
        &params,
        3,
    );
}

#[test]
fn resumed_multiclass_model_equals_uninterrupted() {
    // Three trees per round: the guest saves whole rounds, hosts every tree, so the hosts'
    // latest checkpoints can be ahead of the guest's within a round.
    let objective = Objective::MultiSoftmax { num_class: 3 };
    let params = SecureBoostParams {
        num_trees: 3,
        max_depth: 2,
        ..test_params(objective)
    };
    check_resume_equals_uninterrupted(&parties(objective, 150, 22, false), &params, 6);
}

#[test]
fn resume_refuses_missing_foreign_and_damaged_checkpoints() {
    let params = SecureBoostParams {
        num_trees: 2,
        max_depth: 2,
        ..test_params(Objective::BinaryLogistic)
    };
    let ps = parties(Objective::BinaryLogistic, 120, 23, false);
    let first: Vec<FailAt> = ps.iter().map(|_| store(None)).collect();
    let refs: Vec<&dyn CheckpointStore> = first.iter().map(|s| s as &dyn CheckpointStore).collect();
    split_parts(run(&ps, &params, &refs, None));
    let fresh: Vec<FailAt> = ps.iter().map(|_| store(None)).collect();
    let save: Vec<&dyn CheckpointStore> = fresh.iter().map(|s| s as &dyn CheckpointStore).collect();
    let errors = |out: Vec<PartyOutcome<(ModelPart, TrainReport)>>| -> Vec<String> {
        out.into_iter()
            .map(|o| o.result.err().unwrap_or_default())
            .collect()
    };

    // A host without checkpoints cannot resume: every party stops, the guest naming it.
    let empty = MemoryCheckpoints::new();
    let resume: Vec<&dyn CheckpointStore> = vec![&first[0], &first[1], &empty];
    let e = errors(run(&ps, &params, &save, Some(&resume)));
    assert!(
        e[0].contains("isp") && e[0].contains("cannot resume"),
        "{e:?}"
    );
    assert!(e[2].contains("no checkpoint to resume from"), "{e:?}");

    // Other parameters: the checkpoint belongs to another training.
    let other = SecureBoostParams {
        max_depth: 3,
        ..params.clone()
    };
    let resume: Vec<&dyn CheckpointStore> =
        first.iter().map(|s| s as &dyn CheckpointStore).collect();
    let e = errors(run(&ps, &other, &save, Some(&resume)));
    // Each party refuses its own checkpoint; the guest reports the host that stopped first.
    assert!(e[1].contains("other parameters or data"), "{e:?}");
    assert!(e[0].contains("cannot resume"), "{e:?}");

    // A damaged (truncated) guest checkpoint is an error, never a panic or a wrong model.
    let damaged = MemoryCheckpoints::new();
    let bytes = first[0].inner.load(2).unwrap();
    damaged.save(2, &bytes[..bytes.len() - 5]).unwrap();
    let resume: Vec<&dyn CheckpointStore> = vec![&damaged, &first[1], &first[2]];
    let e = errors(run(&ps, &params, &save, Some(&resume)));
    assert!(e[0].contains("truncated"), "{e:?}");

    // Resuming with fewer trees than the checkpoint holds is refused.
    let fewer = SecureBoostParams {
        num_trees: 1,
        ..params.clone()
    };
    let resume: Vec<&dyn CheckpointStore> =
        first.iter().map(|s| s as &dyn CheckpointStore).collect();
    let e = errors(run(&ps, &fewer, &save, Some(&resume)));
    assert!(e[0].contains("more than num_trees"), "{e:?}");
}
