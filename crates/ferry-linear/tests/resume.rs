//! Checkpoints and resume: a training interrupted after some epochs and resumed from the
//! parties' checkpoints gives exactly the model of an uninterrupted run. Keys, encryption
//! randomness and masks come from the OS here (no test seed), so the resumed run has other
//! keys than the first: the weights are equal bit for bit all the same, because every
//! decrypted value is an exact fixed-point integer and the rest is deterministic arithmetic.

mod common;

use common::*;
use ferry_context::{LocalCluster, PartyOutcome, Role};
use ferry_data::Dataset;
use ferry_linear::{
    EarlyStopping, LinearParams, Mode, Optimizer, Penalty, Task, Trained, fit_with_checkpoints,
};
use ferry_ml::checkpoint::{CheckpointError, CheckpointStore, Checkpoints, MemoryCheckpoints};

/// A store that fails to save one step: the party stops there, as if its node died.
#[derive(Default)]
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

struct Job<'a> {
    n_hosts: usize,
    arbiter: bool,
    guest: &'a Dataset,
    hosts: &'a [Dataset],
    valid: Option<(&'a Dataset, &'a [Dataset])>,
    params: &'a LinearParams,
}

/// Runs every party with its own stores, indexed by roster position.
fn run(
    job: &Job,
    save: &[&dyn CheckpointStore],
    resume: Option<&[&dyn CheckpointStore]>,
) -> Vec<PartyOutcome<Trained>> {
    let roster = roster(job.n_hosts, job.arbiter);
    let names: Vec<String> = roster.parties().map(|(p, _)| p.to_string()).collect();
    LocalCluster::new(roster).run(|ctx| {
        let i = names
            .iter()
            .position(|n| n == ctx.me().as_str())
            .expect("in roster");
        let checkpoints = Checkpoints {
            save: Some(save[i]),
            resume_from: resume.map(|r| r[i]),
        };
        let (data, valid) = match ctx.role() {
            Role::Guest => (Some(job.guest), job.valid.map(|v| v.0)),
            Role::Host => (Some(&job.hosts[i - 1]), job.valid.map(|v| &v.1[i - 1])),
            Role::Arbiter => (None, None),
        };
        fit_with_checkpoints(&ctx, data, job.params, valid, checkpoints)
    })
}

fn parts(outcomes: Vec<PartyOutcome<Trained>>) -> Vec<Trained> {
    outcomes
        .into_iter()
        .map(|o| {
            let party = o.party.clone();
            o.result.unwrap_or_else(|e| panic!("{party}: {e}"))
        })
        .collect()
}

fn as_dyn(s: &[FailAt]) -> Vec<&dyn CheckpointStore> {
    s.iter().map(|s| s as &dyn CheckpointStore).collect()
}

fn check_resume_equals_uninterrupted(job: &Job, fail_at: u64) {
    let n = 1 + job.n_hosts + usize::from(job.arbiter);
    let stores = |fail: Option<u64>| -> Vec<FailAt> {
        (0..n)
            .map(|i| FailAt {
                inner: MemoryCheckpoints::new(),
                fail_at: if i == 0 { fail } else { None },
            })
            .collect()
    };
    let plain = stores(None);
    let want = parts(run(job, &as_dyn(&plain), None));

    let first = stores(Some(fail_at));
    let out = run(job, &as_dyn(&first), None);
    let e = out[0].result.as_ref().err().cloned().unwrap_or_default();
    assert!(e.contains("injected failure"), "{e}");
    assert_eq!(first[0].inner.steps().unwrap().last(), Some(&(fail_at - 1)));
    // The arbiter keeps no state.
    if job.arbiter {
        assert!(first[n - 1].inner.steps().unwrap().is_empty());
    }

    let second = stores(None);
    let got = parts(run(job, &as_dyn(&second), Some(&as_dyn(&first))));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.model, w.model, "party {}", w.model.party);
        let losses = |t: &Trained| -> Vec<(usize, Option<f64>, Option<f64>)> {
            t.report
                .epochs
                .iter()
                .map(|e| (e.epoch, e.loss, e.validation_loss))
                .collect()
        };
        // The arbiter reports only the epochs it took part in.
        if w.model.role != Role::Arbiter {
            assert_eq!(losses(g), losses(w));
        }
        assert_eq!(g.report.model_epoch, w.report.model_epoch);
    }
    assert_eq!(second[0].inner.steps().unwrap().first(), Some(&fail_at));
}

#[test]
fn resumed_lr_with_an_arbiter_adam_and_early_stopping_equals_uninterrupted() {
    let (guest, hosts, _) = synthetic(240, 2, &[3], Task::Logistic, 31);
    let (vguest, vhosts, _) = synthetic(60, 2, &[3], Task::Logistic, 32);
    let params = LinearParams {
        optimizer: Optimizer::Adam {
            lr: 0.05,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        },
        penalty: Penalty::L2 { alpha: 0.01 },
        max_epochs: 5,
        early_stopping: Some(EarlyStopping {
            patience: 10,
            min_delta: 0.0,
            restore_best: true,
        }),
        insecure_test_rng_seed: None,
        ..test_params(Mode::WithArbiter)
    };
    let job = Job {
        n_hosts: 1,
        arbiter: true,
        guest: &guest,
        hosts: &hosts,
        valid: Some((&vguest, &vhosts)),
        params: &params,
    };
    check_resume_equals_uninterrupted(&job, 3);
}

#[test]
fn resumed_lr_without_a_third_party_and_two_hosts_equals_uninterrupted() {
    let (guest, hosts, _) = synthetic(200, 2, &[2, 2], Task::Linear, 33);
    let params = LinearParams {
        task: Task::Linear,
        max_epochs: 4,
        insecure_test_rng_seed: None,
        ..test_params(Mode::WithoutThirdParty)
    };
    let job = Job {
        n_hosts: 2,
        arbiter: false,
        guest: &guest,
        hosts: &hosts,
        valid: None,
        params: &params,
    };
    check_resume_equals_uninterrupted(&job, 2);
}

#[test]
fn lr_resume_refuses_a_party_without_checkpoints_and_other_parameters() {
    let (guest, hosts, _) = synthetic(120, 2, &[2], Task::Logistic, 34);
    let params = LinearParams {
        max_epochs: 2,
        ..test_params(Mode::WithoutThirdParty)
    };
    let job = Job {
        n_hosts: 1,
        arbiter: false,
        guest: &guest,
        hosts: &hosts,
        valid: None,
        params: &params,
    };
    let first = [MemoryCheckpoints::new(), MemoryCheckpoints::new()];
    let refs: Vec<&dyn CheckpointStore> = first.iter().map(|s| s as &dyn CheckpointStore).collect();
    parts(run(&job, &refs, None));
    assert_eq!(first[1].steps().unwrap(), vec![1]);
    let errors = |out: Vec<PartyOutcome<Trained>>| -> Vec<String> {
        out.into_iter()
            .map(|o| o.result.err().unwrap_or_default())
            .collect()
    };

    let empty = MemoryCheckpoints::new();
    let e = errors(run(&job, &refs, Some(&[&first[0], &empty])));
    assert!(e[0].contains("party 'telco' cannot take part"), "{e:?}");
    assert!(e[1].contains("no checkpoint to resume from"), "{e:?}");

    let other = LinearParams {
        seed: 12,
        ..params.clone()
    };
    let job = Job {
        params: &other,
        ..job
    };
    let e = errors(run(&job, &refs, Some(&refs)));
    assert!(
        e.iter().any(|e| e.contains("other parameters or data")),
        "{e:?}"
    );
}
