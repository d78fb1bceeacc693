#![allow(dead_code)]

use ferry_context::{LocalCluster, PartyOutcome, Role, Roster};
use ferry_data::{Dataset, DatasetSpec, LabelKind};
use ferry_horizontal::{FedAvgOutcome, FedAvgParams, HflError, train};

/// `test-data/datasets/<file>`; panics naming the file when it is missing.
#[allow(unused_imports)] // not every test binary that includes this module reads a dataset
pub use ferry_testdata::dataset;

/// A test-data file with every column but `id` and the label `y` as features.
pub fn load(file: &str, kind: LabelKind) -> Dataset {
    Dataset::read_csv(dataset(file), &DatasetSpec::with_label("y", kind))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// default_credit_homo: three clients of 8,000 rows (guest, host_1, host_2) and a test set of
/// 6,000. Those files are the rows of the joined default_credit_hetero table (guest columns,
/// then host columns) in file order, cut at 8,000, 16,000 and 24,000, with the same numbers up to
/// printing (1.5e-14); the repository ships only the hetero pair and rebuilds the split here
/// (test-data/datasets/README.md).
pub fn default_credit_homo() -> (Vec<Dataset>, Dataset) {
    let guest = load("default_credit_hetero_guest.csv", LabelKind::Binary);
    let host = Dataset::read_csv(
        dataset("default_credit_hetero_host.csv"),
        &DatasetSpec::features_only(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let joined = guest.hstack(&host).unwrap();
    assert_eq!((joined.n_rows(), joined.n_features()), (30_000, 23));
    let rows = |r: std::ops::Range<usize>| joined.select_rows(&r.collect::<Vec<_>>());
    let clients = vec![rows(0..8_000), rows(8_000..16_000), rows(16_000..24_000)];
    (clients, rows(24_000..30_000))
}

/// The rows of several datasets with the same columns, one after another.
pub fn union(parts: &[&Dataset]) -> Dataset {
    let first = parts[0];
    let mut ids = Vec::new();
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for p in parts {
        assert_eq!(p.feature_names, first.feature_names);
        ids.extend(p.ids.iter().cloned());
        features.extend_from_slice(&p.features);
        labels.extend_from_slice(p.labels().unwrap());
    }
    Dataset::from_parts(
        ids,
        first.feature_names.clone(),
        features,
        first.label_name.clone(),
        Some(labels),
    )
    .unwrap()
}

/// A roster with a server and one client per dataset (the first is the guest).
pub fn roster(n_clients: usize) -> Roster {
    let names = ["client-a", "client-b", "client-c", "client-d"];
    let mut parties = vec![("server", Role::Arbiter)];
    for (i, name) in names.iter().take(n_clients).enumerate() {
        parties.push((name, if i == 0 { Role::Guest } else { Role::Host }));
    }
    Roster::of(&parties)
}

/// Runs FedAvg with client `i` holding `data[i]`; the server evaluates on `test`.
pub fn run_fedavg(
    data: &[Dataset],
    test: Option<&Dataset>,
    params: &FedAvgParams,
    capture: bool,
) -> Vec<PartyOutcome<FedAvgOutcome>> {
    let mut cluster = LocalCluster::new(roster(data.len()));
    if capture {
        cluster = cluster.capture_transcripts();
    }
    cluster.run(|ctx| -> Result<FedAvgOutcome, HflError> {
        let position = ctx
            .roster()
            .parties()
            .position(|(p, _)| p == ctx.me())
            .unwrap();
        if position == 0 {
            train(&ctx, None, params, test)
        } else {
            train(&ctx, Some(&data[position - 1]), params, None)
        }
    })
}

pub fn server(outcomes: &[PartyOutcome<FedAvgOutcome>]) -> &FedAvgOutcome {
    outcomes[0]
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("server failed: {e}"))
}

/// Three clients from breast_homo: the guest file split in two halves, and the host file.
pub fn three_clients() -> [Dataset; 3] {
    let a = load("breast_homo_guest.csv", LabelKind::Binary);
    let b = load("breast_homo_host.csv", LabelKind::Binary);
    let half = a.n_rows() / 2;
    let first: Vec<usize> = (0..half).collect();
    let second: Vec<usize> = (half..a.n_rows()).collect();
    [a.select_rows(&first), a.select_rows(&second), b]
}
