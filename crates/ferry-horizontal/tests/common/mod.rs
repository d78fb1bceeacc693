#![allow(dead_code)]

use ferry_context::{LocalCluster, PartyOutcome, Role, Roster};
use ferry_data::{Dataset, DatasetSpec, LabelKind};
use ferry_horizontal::{FedAvgOutcome, FedAvgParams, HflError, train};
use std::path::{Path, PathBuf};

/// `../shared/datasets`, or `None` (with a printed reason) when it is absent.
pub fn datasets() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: shared datasets not found at {}", dir.display());
        None
    }
}

pub fn load(dir: &Path, file: &str, kind: LabelKind) -> Dataset {
    Dataset::read_csv(dir.join(file), &DatasetSpec::with_label("y", kind))
        .unwrap_or_else(|e| panic!("{e}"))
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
pub fn three_clients() -> Option<[Dataset; 3]> {
    let dir = datasets()?;
    let a = load(&dir, "breast_homo_guest.csv", LabelKind::Binary);
    let b = load(&dir, "breast_homo_host.csv", LabelKind::Binary);
    let half = a.n_rows() / 2;
    let first: Vec<usize> = (0..half).collect();
    let second: Vec<usize> = (half..a.n_rows()).collect();
    Some([a.select_rows(&first), a.select_rows(&second), b])
}
