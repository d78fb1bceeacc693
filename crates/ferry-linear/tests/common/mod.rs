//! Helpers shared by the integration tests: synthetic vertically split data, rosters, runs.
#![allow(dead_code)]

use ferry_context::{LocalCluster, PartyOutcome, Role, Roster};
use ferry_crypto::{HeSettings, SchemeKind};
use ferry_data::{Dataset, DatasetSpec, LabelKind};
use ferry_linear::{LinearParams, Mode, Optimizer, Task, Trained, fit};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// `test-data/datasets/<file>`; panics naming the file when it is missing.
#[allow(unused_imports)] // not every test binary that includes this module reads a dataset
pub use ferry_testdata::dataset;

/// `<name>_hetero_guest.csv` (label `y`) and `<name>_hetero_host.csv` from the test data.
pub fn read_hetero(name: &str) -> (Dataset, Dataset) {
    let guest = Dataset::read_csv(
        dataset(&format!("{name}_hetero_guest.csv")),
        &DatasetSpec::with_label("y", LabelKind::Binary),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let host = Dataset::read_csv(
        dataset(&format!("{name}_hetero_host.csv")),
        &DatasetSpec::features_only(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (guest, host)
}

fn uniform(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A vertically split table: the guest has `d_guest` columns and the labels, host `k` has
/// `d_hosts[k]` columns. Columns have different scales (0.1 to 4) so per-column fixed point
/// matters. Labels follow a logistic (or linear, with noise) model of all columns.
pub fn synthetic(
    n: usize,
    d_guest: usize,
    d_hosts: &[usize],
    task: Task,
    seed: u64,
) -> (Dataset, Vec<Dataset>, Dataset) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let d_total = d_guest + d_hosts.iter().sum::<usize>();
    let scale = |j: usize| [0.1, 1.0, 4.0][j % 3];
    let truth: Vec<f64> = (0..d_total)
        .map(|j| (uniform(&mut rng) * 2.0 - 1.0) * 1.5 / scale(j))
        .collect();
    let mut all = Vec::with_capacity(n * d_total);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let row: Vec<f64> = (0..d_total)
            .map(|j| (uniform(&mut rng) * 2.0 - 1.0) * scale(j))
            .collect();
        let u: f64 = row.iter().zip(&truth).map(|(x, w)| x * w).sum::<f64>() + 0.3;
        labels.push(match task {
            Task::Logistic => f64::from(uniform(&mut rng) < 1.0 / (1.0 + (-u).exp())),
            Task::Linear => u + 0.2 * (uniform(&mut rng) - 0.5),
        });
        all.extend(row);
    }
    let ids: Vec<String> = (0..n).map(|i| format!("row{i}")).collect();
    let columns = |from: usize, count: usize, prefix: &str| {
        let mut values = Vec::with_capacity(n * count);
        for i in 0..n {
            values.extend_from_slice(&all[i * d_total + from..i * d_total + from + count]);
        }
        let names = (0..count).map(|j| format!("{prefix}{j}")).collect();
        (names, values)
    };
    let (names, values) = columns(0, d_guest, "g");
    let guest = Dataset::from_parts(ids.clone(), names, values, Some("y".into()), Some(labels))
        .expect("guest");
    let mut hosts = Vec::new();
    let mut from = d_guest;
    for (k, &d) in d_hosts.iter().enumerate() {
        let (names, values) = columns(from, d, &format!("h{k}_"));
        hosts.push(Dataset::from_parts(ids.clone(), names, values, None, None).expect("host"));
        from += d;
    }
    let mut pooled = guest.clone();
    for h in &hosts {
        pooled = pooled.hstack(h).expect("same ids");
    }
    (guest, hosts, pooled)
}

/// Fast, reproducible parameters: 512-bit keys (insecure, same code path), seeded RNG.
pub fn test_params(mode: Mode) -> LinearParams {
    LinearParams {
        mode,
        he: HeSettings::insecure_for_tests(SchemeKind::Paillier, 512),
        optimizer: Optimizer::Sgd { lr: 0.15 },
        batch_size: Some(64),
        max_epochs: 4,
        tolerance: 0.0,
        seed: 11,
        insecure_test_rng_seed: Some(5),
        ..LinearParams::default()
    }
}

/// Guest "bank", hosts "telco", "insurer", …, and optionally arbiter "coordinator".
pub fn roster(n_hosts: usize, arbiter: bool) -> Roster {
    let names = ["telco", "insurer", "retailer"];
    let mut parties = vec![("bank", Role::Guest)];
    for name in names.iter().take(n_hosts) {
        parties.push((*name, Role::Host));
    }
    if arbiter {
        parties.push(("coordinator", Role::Arbiter));
    }
    Roster::of(&parties)
}

/// Runs training at every party of `roster` (guest first, then hosts, then arbiter).
pub fn run_fit(
    cluster: LocalCluster,
    guest: &Dataset,
    hosts: &[Dataset],
    params: &LinearParams,
    validation: Option<(&Dataset, &[Dataset])>,
) -> Vec<PartyOutcome<Trained>> {
    cluster.run(|ctx| {
        let host_index = ctx.hosts().iter().position(|h| h == ctx.me());
        let (data, valid) = match ctx.role() {
            Role::Guest => (Some(guest), validation.map(|v| v.0)),
            Role::Host => {
                let k = host_index.expect("host in roster");
                (Some(&hosts[k]), validation.map(|v| &v.1[k]))
            }
            Role::Arbiter => (None, None),
        };
        fit(&ctx, data, params, valid)
    })
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Largest `|a - b| / (1 + |b|)`: absolute near zero, relative for large values.
pub fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f64::max)
}
