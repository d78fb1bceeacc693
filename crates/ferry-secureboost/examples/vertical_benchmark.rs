//! In-process SecureBoost on a vertically split dataset (guest + one host as threads over the
//! in-memory backend), reporting time per tree, AUC, traffic and the crypto floor.
//!
//! ```text
//! cargo run --release -p ferry-secureboost --example vertical_benchmark -- \
//!     [--data default_credit|breast] [--scheme paillier|ou] [--key-bits 2048] \
//!     [--trees 10] [--depth 3] [--bins 32] [--lr 0.3] [--synthetic ROWS]
//! ```
//! Prints one JSON object. The crypto floor is the run's homomorphic operation counts divided
//! by per-core rates measured in the same run, with the run's key size
//! ([`CryptoRates::measure`]).

use ferry_context::{LocalCluster, Role, Roster};
use ferry_crypto::{HeSettings, SchemeKind};
use ferry_data::{Dataset, DatasetSpec, LabelKind};
use ferry_secureboost::{
    CryptoRates, ModelPart, Objective, SecureBoostParams, TrainReport, predict, train_with_report,
};
use rand::{RngExt, SeedableRng};
use std::path::PathBuf;
use std::time::Instant;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn load(name: &str) -> (Dataset, Dataset) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    let guest = Dataset::read_csv(
        dir.join(format!("{name}_hetero_guest.csv")),
        &DatasetSpec::with_label("y", LabelKind::Binary),
    )
    .expect("guest data");
    let host = Dataset::read_csv(
        dir.join(format!("{name}_hetero_host.csv")),
        &DatasetSpec::features_only(),
    )
    .expect("host data")
    .align_to(&guest.ids)
    .expect("host rows match guest ids");
    (guest, host)
}

/// Synthetic binary data shaped like default_credit: 13 guest and 10 host features.
fn synthetic(rows: usize) -> (Dataset, Dataset) {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let (dg, dh) = (13, 10);
    let mut gf = Vec::with_capacity(rows * dg);
    let mut hf = Vec::with_capacity(rows * dh);
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let g: Vec<f64> = (0..dg).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
        let h: Vec<f64> = (0..dh).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
        let s = g[0] - h[0] + 0.5 * g[1] * h[1] + 0.3 * rng.random::<f64>();
        labels.push(f64::from(u8::from(s > 0.0)));
        gf.extend(g);
        hf.extend(h);
    }
    let ids: Vec<String> = (0..rows).map(|i| i.to_string()).collect();
    let guest = Dataset::from_parts(
        ids.clone(),
        (0..dg).map(|j| format!("g{j}")).collect(),
        gf,
        Some("y".into()),
        Some(labels),
    )
    .expect("shapes");
    let host = Dataset::from_parts(
        ids,
        (0..dh).map(|j| format!("h{j}")).collect(),
        hf,
        None,
        None,
    )
    .expect("shapes");
    (guest, host)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// User + system CPU seconds of this process so far (both parties: they are threads here).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which is in parentheses and may contain spaces).
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = arg(&args, "--data").unwrap_or_else(|| "default_credit".into());
    let scheme: SchemeKind = arg(&args, "--scheme")
        .unwrap_or_else(|| "paillier".into())
        .parse()
        .expect("scheme");
    let params = SecureBoostParams {
        objective: Objective::BinaryLogistic,
        num_trees: arg(&args, "--trees").map_or(10, |v| v.parse().expect("trees")),
        max_depth: arg(&args, "--depth").map_or(3, |v| v.parse().expect("depth")),
        max_bin: arg(&args, "--bins").map_or(32, |v| v.parse().expect("bins")),
        learning_rate: arg(&args, "--lr").map_or(0.3, |v| v.parse().expect("lr")),
        he: HeSettings::insecure_for_tests(
            scheme,
            arg(&args, "--key-bits").map_or(2048, |v| v.parse().expect("key bits")),
        ),
        ..SecureBoostParams::default()
    };
    let (guest_data, host_data, label) = match arg(&args, "--synthetic") {
        Some(rows) => {
            let (g, h) = synthetic(rows.parse().expect("rows"));
            (g, h, format!("synthetic-{rows}"))
        }
        None => {
            let (g, h) = load(&data);
            (g, h, data.clone())
        }
    };
    let roster = Roster::of(&[("guest", Role::Guest), ("host", Role::Host)]);
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let outcomes = LocalCluster::new(roster.clone()).run(|ctx| {
        let data = if ctx.role() == Role::Guest {
            &guest_data
        } else {
            &host_data
        };
        train_with_report(&ctx, data, &params, None)
    });
    let fit_seconds = start.elapsed().as_secs_f64();
    let fit_cpu_seconds = cpu_seconds() - cpu_start;
    let mut parts: Vec<(ModelPart, TrainReport)> = Vec::new();
    for o in outcomes {
        match o.result {
            Ok(v) => parts.push(v),
            Err(e) => panic!("{} failed: {e}", o.party),
        }
    }
    let predict_start = Instant::now();
    let predictions = LocalCluster::new(roster).run(|ctx| {
        let (data, part) = if ctx.role() == Role::Guest {
            (&guest_data, &parts[0].0)
        } else {
            (&host_data, &parts[1].0)
        };
        predict(&ctx, part, data)
    });
    let predict_seconds = predict_start.elapsed().as_secs_f64();
    let probs = predictions
        .into_iter()
        .find_map(|o| o.result.ok().flatten())
        .expect("guest predictions")
        .outputs;
    let labels = guest_data.labels().expect("labels");
    let auc = ferry_ml::metrics::auc(&probs, labels).expect("auc");
    let report = &parts[0].1;
    let host_report = &parts[1].1;
    let ops = report.total_ops();
    // Rates measured now, on this machine, with the run's key size.
    let rates = CryptoRates::measure(scheme, params.he.key_bits).expect("key generation");
    let floor = ops.floor_seconds(&rates);
    let tree_seconds: Vec<f64> = report.trees.iter().map(|t| t.seconds).collect();
    let out = serde_json::json!({
        "data": label,
        "rows": guest_data.n_rows(),
        "guest_features": guest_data.n_features(),
        "host_features": host_data.n_features(),
        "scheme": scheme.name(),
        "key_bits": params.he.key_bits,
        "trees": params.num_trees,
        "depth": params.max_depth,
        "bins": params.max_bin,
        "learning_rate": params.learning_rate,
        "threads": rayon::current_num_threads(),
        "fit_seconds": fit_seconds,
        "fit_cpu_seconds": fit_cpu_seconds,
        "keygen_seconds": report.keygen_seconds,
        "load_average": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "mean_tree_seconds": tree_seconds.iter().sum::<f64>() / tree_seconds.len().max(1) as f64,
        "tree_seconds": tree_seconds,
        "train_auc": auc,
        "train_auc_from_report": report.trees.last().and_then(|t| t.train_metric),
        "predict_seconds": predict_seconds,
        "bytes_guest_to_host": report.bytes_sent,
        "bytes_host_to_guest": host_report.bytes_sent,
        "rounds_guest": report.rounds,
        "ops": ops,
        "crypto_floor_core_seconds": floor,
        "crypto_floor_seconds_on_threads": floor / rayon::current_num_threads() as f64,
        "fit_over_floor": fit_seconds / (floor / rayon::current_num_threads() as f64),
        "fit_cpu_over_floor": fit_cpu_seconds / floor,
        "peak_rss_mib_both_parties": peak_rss_mib(),
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
}
