//! Hetero logistic regression on default_credit, all parties in this process (LocalCluster),
//! next to the pooled reference trained with the same optimiser and iterations.
//!
//! ```text
//! cargo run --release -p ferry-linear --example hetero_lr_default_credit -- \
//!     [--arbiter] [--scheme paillier|ou] [--key-bits 2048] [--epochs 3] [--batch 5000] \
//!     [--lr 0.15] [--adam] [--tolerance 0] [--data DIR] [--json]
//! ```
//!
//! Prints wall time, AUC (federated, pooled with the same loss approximation, pooled exact
//! logistic regression), bytes exchanged and homomorphic operation counts.

use ferry_context::{LocalCluster, Role, Roster};
use ferry_crypto::SchemeKind;
use ferry_data::{Dataset, DatasetSpec, LabelKind};
use ferry_linear::reference::{ReferenceLoss, train_pooled};
use ferry_linear::{LinearParams, Mode, Optimizer, fit, predict};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let dir = value("--data").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets")
    });
    let guest_file = dir.join("default_credit_hetero_guest.csv");
    if !guest_file.exists() {
        eprintln!("{} not found; pass --data DIR", guest_file.display());
        std::process::exit(2);
    }
    let guest = Dataset::read_csv(
        &guest_file,
        &DatasetSpec::with_label("y", LabelKind::Binary),
    )
    .expect("guest data");
    let host = Dataset::read_csv(
        dir.join("default_credit_hetero_host.csv"),
        &DatasetSpec::features_only(),
    )
    .expect("host data");

    let mut params = LinearParams {
        max_epochs: value("--epochs").map_or(3, |v| v.parse().expect("--epochs N")),
        batch_size: Some(value("--batch").map_or(5000, |v| v.parse().expect("--batch N"))),
        ..LinearParams::default()
    };
    let lr: f64 = value("--lr").map_or(0.15, |v| v.parse().expect("--lr X"));
    params.optimizer = if flag("--adam") {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    } else {
        Optimizer::Sgd { lr }
    };
    params.tolerance = value("--tolerance").map_or(0.0, |v| v.parse().expect("--tolerance X"));
    params.shuffle = !flag("--no-shuffle");
    params.he.key_bits = value("--key-bits").map_or(2048, |v| v.parse().expect("--key-bits N"));
    params.he.allow_insecure_key_bits = params.he.key_bits < 2048;
    params.he.scheme =
        value("--scheme").map_or(SchemeKind::Paillier, |v| v.parse().expect("--scheme"));
    let with_arbiter = flag("--arbiter");
    params.mode = if with_arbiter {
        Mode::WithArbiter
    } else {
        Mode::WithoutThirdParty
    };

    let mut roster = vec![("guest", Role::Guest), ("host", Role::Host)];
    if with_arbiter {
        roster.push(("arbiter", Role::Arbiter));
    }
    let cluster = LocalCluster::new(Roster::of(&roster));
    let t0 = Instant::now();
    let outcomes = cluster.run_ok(|ctx| {
        let data = match ctx.role() {
            Role::Guest => Some(&guest),
            Role::Host => Some(&host),
            Role::Arbiter => None,
        };
        fit(&ctx, data, &params, None)
    });
    let train_seconds = t0.elapsed().as_secs_f64();
    let trained: Vec<_> = outcomes
        .into_iter()
        .map(|o| (o.counters.clone(), o.unwrap()))
        .collect();

    let t1 = Instant::now();
    let models: Vec<_> = trained.iter().map(|(_, t)| t.model.clone()).collect();
    let scores = LocalCluster::new(Roster::of(&roster[..2])).run_ok(|ctx| {
        let (model, data) = match ctx.role() {
            Role::Guest => (&models[0], &guest),
            _ => (&models[1], &host),
        };
        predict(&ctx, model, data)
    });
    let predict_seconds = t1.elapsed().as_secs_f64();
    let probs = scores
        .into_iter()
        .next()
        .and_then(|o| o.unwrap())
        .expect("guest predictions");
    let labels = guest.labels().expect("labels");
    let auc = ferry_ml::metrics::auc(&probs, labels).expect("auc");

    let pooled = guest.hstack(&host).expect("aligned data");
    let t2 = Instant::now();
    let taylor = train_pooled(&pooled, &params, ReferenceLoss::Taylor).expect("pooled");
    let exact = train_pooled(&pooled, &params, ReferenceLoss::Exact).expect("pooled");
    let pooled_seconds = t2.elapsed().as_secs_f64();
    let auc_taylor = ferry_ml::metrics::auc(&taylor.predict(&pooled), labels).expect("auc");
    let auc_exact = ferry_ml::metrics::auc(&exact.predict(&pooled), labels).expect("auc");

    let bytes: u64 = trained.iter().map(|(c, _)| c.bytes_sent()).sum();
    if flag("--json") {
        let reports: Vec<_> = trained.iter().map(|(_, t)| &t.report).collect();
        println!(
            "{}",
            serde_json::json!({
                "mode": if with_arbiter { "with_arbiter" } else { "without_third_party" },
                "scheme": params.he.scheme.name(), "key_bits": params.he.key_bits,
                "epochs": params.max_epochs, "batch": params.batch_size,
                "train_seconds": train_seconds, "predict_seconds": predict_seconds,
                "auc": auc, "auc_pooled_same_loss": auc_taylor, "auc_pooled_exact": auc_exact,
                "bytes_exchanged": bytes, "reports": reports,
            })
        );
        return;
    }
    println!(
        "hetero LR, default_credit ({} rows), {} mode, {}-{}, {} epochs, batch {:?}, {:?}",
        guest.n_rows(),
        if with_arbiter { "arbiter" } else { "two-party" },
        params.he.scheme.name(),
        params.he.key_bits,
        params.max_epochs,
        params.batch_size,
        params.optimizer
    );
    println!("  training wall time  {train_seconds:.2} s (prediction {predict_seconds:.2} s)");
    println!("  AUC federated       {auc:.4}");
    println!("  AUC pooled, Taylor  {auc_taylor:.4}   (same loss approximation)");
    println!(
        "  AUC pooled, exact   {auc_exact:.4}   (plain logistic regression, {pooled_seconds:.2} s for both)"
    );
    println!("  bytes exchanged     {:.1} MB", bytes as f64 / 1e6);
    for (counters, t) in &trained {
        let r = &t.report;
        println!(
            "  {:<8} setup {:.2} s, epochs {:?} s, sent {:.1} MB, ops {:?}",
            r.role.as_str(),
            r.setup_seconds,
            r.epochs
                .iter()
                .map(|e| (e.seconds * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            counters.bytes_sent() as f64 / 1e6,
            r.he_ops
        );
        if let Some(l) = r.epochs.last().and_then(|e| e.loss) {
            println!("           final training loss (Taylor) {l:.5}");
        }
    }
    let max_w = trained[0]
        .1
        .model
        .weights
        .iter()
        .zip(&taylor.weights)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!("  max |w_guest − w_pooled(Taylor)| = {max_w:.2e}");
}
