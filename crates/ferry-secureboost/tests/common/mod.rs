//! Shared helpers of the integration tests: seeded synthetic data split between parties and a
//! runner for guest + hosts over the in-memory cluster.
#![allow(dead_code)]

use ferry_context::{LocalCluster, PartyOutcome, Role, Roster};
use ferry_crypto::{HeSettings, SchemeKind};
use ferry_data::Dataset;
use ferry_secureboost::{
    GuestModel, HostModel, ModelPart, Objective, SecureBoostParams, TrainReport, train_with_report,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Joined synthetic table: `n` rows, `d` features (about 5% missing), labels for `objective`
/// that depend on features of every party (columns 0, d/2 and d-1).
pub fn synthetic(n: usize, d: usize, objective: Objective, seed: u64) -> Dataset {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut features = Vec::with_capacity(n * d);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let row: Vec<f64> = (0..d)
            .map(|_| {
                if rng.random::<f64>() < 0.05 {
                    f64::NAN
                } else {
                    // Rounded to 2 decimals so some features have ties and few distinct values.
                    (rng.random::<f64>() * 4.0 - 2.0)
                        .mul_add(100.0, 0.0)
                        .round()
                        / 100.0
                }
            })
            .collect();
        let v = |j: usize| if row[j].is_nan() { 0.5 } else { row[j] };
        let signal = 1.5 * v(0) - 2.0 * v(d / 2) + v(d - 1) * v(d - 1) - 1.0;
        let noise = rng.random::<f64>() - 0.5;
        labels.push(match objective {
            Objective::BinaryLogistic => f64::from(u8::from(signal + noise > 0.0)),
            Objective::SquaredError => 10.0 * signal + noise,
            Objective::MultiSoftmax { num_class } => {
                let s = (signal + noise + 3.0).max(0.0);
                (s as usize).min(num_class - 1) as f64
            }
        });
        features.extend(row);
    }
    Dataset::from_parts(
        (0..n).map(|i| format!("r{i}")).collect(),
        (0..d).map(|j| format!("f{j}")).collect(),
        features,
        Some("y".into()),
        Some(labels),
    )
    .expect("consistent shapes")
}

/// Columns `range` of a joined table; labels only when `keep_labels`.
pub fn columns(data: &Dataset, range: std::ops::Range<usize>, keep_labels: bool) -> Dataset {
    let d = data.n_features();
    let mut features = Vec::new();
    for i in 0..data.n_rows() {
        features.extend_from_slice(&data.features[i * d + range.start..i * d + range.end]);
    }
    Dataset::from_parts(
        data.ids.clone(),
        data.feature_names[range].to_vec(),
        features,
        keep_labels.then(|| "y".to_string()),
        keep_labels.then(|| data.labels.clone()).flatten(),
    )
    .expect("consistent shapes")
}

/// Small keys and few trees: the protocol is the same as with 2048-bit keys, only faster.
pub fn test_params(objective: Objective) -> SecureBoostParams {
    SecureBoostParams {
        objective,
        num_trees: 3,
        max_depth: 3,
        max_bin: 16,
        he: HeSettings::insecure_for_tests(SchemeKind::Paillier, 512),
        ..SecureBoostParams::default()
    }
}

/// A party's share of a job: name, role, training rows, validation rows.
pub struct Party {
    pub name: &'static str,
    pub role: Role,
    pub train: Dataset,
    pub valid: Option<Dataset>,
}

pub fn roster(parties: &[Party]) -> Roster {
    let pairs: Vec<(&str, Role)> = parties.iter().map(|p| (p.name, p.role)).collect();
    Roster::of(&pairs)
}

/// Trains on every party; outcomes in roster order.
pub fn run_training(
    parties: &[Party],
    params: &SecureBoostParams,
    capture: bool,
) -> Vec<PartyOutcome<(ModelPart, TrainReport)>> {
    let mut cluster = LocalCluster::new(roster(parties));
    if capture {
        cluster = cluster.capture_transcripts();
    }
    cluster.run(|ctx| {
        let me = parties
            .iter()
            .find(|p| p.name == ctx.me().as_str())
            .expect("party in roster");
        train_with_report(&ctx, &me.train, params, me.valid.as_ref())
    })
}

/// The guest's model and every host's model (with its name), panicking on any failure.
pub fn split_parts(
    outcomes: Vec<PartyOutcome<(ModelPart, TrainReport)>>,
) -> (GuestModel, TrainReport, Vec<(String, HostModel)>) {
    let errors: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(|e| format!("{}: {e}", o.party)))
        .collect();
    assert!(errors.is_empty(), "parties failed:\n{}", errors.join("\n"));
    let mut guest = None;
    let mut hosts = Vec::new();
    for o in outcomes {
        let name = o.party.to_string();
        let (part, report) = o.unwrap();
        match part {
            ModelPart::Guest(g) => guest = Some((g, report)),
            ModelPart::Host(h) => hosts.push((name, h)),
        }
    }
    let (g, r) = guest.expect("a guest outcome");
    (g, r, hosts)
}

/// `test-data/datasets/<file>`; panics naming the file when it is missing.
#[allow(unused_imports)] // not every test binary that includes this module reads a dataset
pub use ferry_testdata::dataset;
