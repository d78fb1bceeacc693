//! Benchmarks of the federated protocols as separate processes over loopback TLS
//! (`ferry bench psi|secureboost|hetero-lr|fedavg`), and the per-party protocols they launch.
//!
//! Every party is its own `ferry run-party` process with its own identity; the figures come
//! from the parties' outputs (wall time, peak RSS, bytes) and the algorithms' reports.

use super::median_rate;
use crate::launch::{Launch, PartyOutput, launch, parse_roster};
use anyhow::{Context as _, bail};
use clap::Args;
use ferry_context::{Context, Role};
use ferry_data::synthetic::{VerticalSpec, vertical};
use ferry_data::{Dataset, DatasetSpec, LabelKind};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn shared_datasets() -> PathBuf {
    std::env::var_os("FERRY_SHARED_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/datasets"))
}

fn run_launch(
    roster: &str,
    protocol: &str,
    params: Value,
    work_dir: &Option<PathBuf>,
    timeout: u64,
) -> anyhow::Result<Vec<PartyOutput>> {
    let tmp = tempfile::tempdir()?;
    let work = work_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let outputs = launch(&Launch {
        roster: parse_roster(roster)?,
        protocol: protocol.to_string(),
        params,
        work_dir: work,
        timeout: Duration::from_secs(timeout),
        binary: std::env::current_exe()?,
    })?;
    let failures: Vec<String> = outputs
        .iter()
        .filter_map(|o| o.error.as_ref().map(|e| format!("{}: {e}", o.party)))
        .collect();
    if !failures.is_empty() {
        bail!("the run failed:\n  {}", failures.join("\n  "));
    }
    Ok(outputs)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_parties(outputs: &[PartyOutput]) {
    println!(
        "{:<10} {:<8} {:>9} {:>13} {:>13} {:>11}",
        "party", "role", "wall s", "sent MB", "received MB", "peak RSS"
    );
    for o in outputs {
        println!(
            "{:<10} {:<8} {:>9.2} {:>13.2} {:>13.2} {:>7.0} MiB",
            o.party,
            o.role,
            o.wall_secs,
            o.bytes_sent as f64 / 1e6,
            o.bytes_received as f64 / 1e6,
            mib(o.peak_rss_kib)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Data loading shared by the protocols: a party reads its own file, or generates its own part
// of a seeded synthetic table.

/// `{"files": {"bank": "...csv", ...}, "label": "y"}` or `{"synthetic": {rows, seed, features}}`.
fn party_data(ctx: &Context, spec: &Value) -> anyhow::Result<Option<Dataset>> {
    if ctx.role() == Role::Arbiter {
        return Ok(None);
    }
    let me = ctx.me().as_str();
    if let Some(files) = spec.get("files") {
        let Some(path) = files.get(me).and_then(Value::as_str) else {
            return Ok(None);
        };
        let label = spec.get("label").and_then(Value::as_str).unwrap_or("y");
        let label_kind: LabelKind = match spec.get("label_kind") {
            Some(k) => serde_json::from_value(k.clone())?,
            None => LabelKind::Binary,
        };
        let mut id_columns: Vec<String> = Vec::new();
        if let Some(id) = spec.get("id").and_then(Value::as_str) {
            id_columns.push(id.to_string());
        }
        let ds = if ctx.role() == Role::Guest
            || spec
                .get("horizontal")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        {
            Dataset::read_csv(
                path,
                &DatasetSpec {
                    id_columns: id_columns.clone(),
                    ..DatasetSpec::with_label(label, label_kind)
                },
            )?
        } else {
            Dataset::read_csv(
                path,
                &DatasetSpec {
                    id_columns,
                    ..DatasetSpec::features_only()
                },
            )?
        };
        // Vertical benchmark files hold the same ids at every party (already aligned by
        // PSI); sorting by id puts every party's rows in the same order.
        let mut ids = ds.ids.clone();
        ids.sort();
        return Ok(Some(
            if spec
                .get("horizontal")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                ds
            } else {
                ds.align_to(&ids).map_err(anyhow::Error::msg)?
            },
        ));
    }
    let syn = spec
        .get("synthetic")
        .context("data spec needs 'files' or 'synthetic'")?;
    let rows = syn
        .get("rows")
        .and_then(Value::as_u64)
        .context("synthetic data needs 'rows'")? as usize;
    let seed = syn.get("seed").and_then(Value::as_u64).unwrap_or(7);
    let features: Vec<usize> = syn
        .get("features")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_u64)
                .map(|v| v as usize)
                .collect()
        })
        .unwrap_or_else(|| vec![13, 10]);
    let index = ctx
        .roster()
        .parties()
        .filter(|(_, r)| *r != Role::Arbiter)
        .position(|(p, _)| p == ctx.me())
        .context("party not in roster")?;
    let spec = VerticalSpec {
        rows,
        features,
        coverage: 1.0,
        missing: 0.0,
        seed,
    };
    Ok(vertical(&spec).into_iter().nth(index))
}

/// The protocols behind the benchmarks (registered in `crate::protocols`).
pub fn run_protocol(name: &str, ctx: &Context, params: &Value) -> anyhow::Result<Value> {
    match name {
        "bench-psi" => {
            let size = params
                .get("size")
                .and_then(Value::as_u64)
                .context("'size'")? as usize;
            let overlap = params.get("overlap").and_then(Value::as_f64).unwrap_or(0.5);
            let index = ctx
                .roster()
                .parties()
                .position(|(p, _)| p == ctx.me())
                .unwrap_or(0);
            let ids = ferry_psi::synthetic_ids(size, overlap, 42, index);
            let start = Instant::now();
            let out = ferry_psi::intersect_ids(ctx, &ids, &ferry_psi::PsiConfig::default())?;
            let secs = start.elapsed().as_secs_f64();
            let found = out.rows.as_ref().map(|r| r.len());
            Ok(
                json!({"seconds": secs, "intersection": found, "expected": ferry_psi::synthetic_overlap_count(size, overlap)}),
            )
        }
        "bench-secureboost" => {
            let data = party_data(ctx, &params["data"])?.context("this party has no data")?;
            let sb: ferry_secureboost::SecureBoostParams =
                serde_json::from_value(params["params"].clone())?;
            let (_model, report) = ferry_secureboost::train_with_report(ctx, &data, &sb, None)?;
            let metric = report.trees.last().and_then(|t| t.train_metric);
            Ok(json!({"report": report, "train_metric": metric}))
        }
        "bench-hetero-lr" => {
            let data = party_data(ctx, &params["data"])?;
            let lp: ferry_linear::LinearParams = serde_json::from_value(params["params"].clone())?;
            let trained = ferry_linear::fit(ctx, data.as_ref(), &lp, None)?;
            let fit_seconds = trained.report.total_seconds;
            let scores = match &data {
                Some(d) => ferry_linear::predict(&ctx.sub("predict"), &trained.model, d)?,
                None => None,
            };
            let auc = match (&scores, data.as_ref().and_then(|d| d.labels())) {
                (Some(s), Some(y)) => Some(ferry_ml::metrics::auc(s, y)?),
                _ => None,
            };
            Ok(json!({"report": trained.report, "fit_seconds": fit_seconds, "train_auc": auc}))
        }
        "bench-fedavg" => {
            let data = party_data(ctx, &params["data"])?;
            let fp: ferry_horizontal::FedAvgParams =
                serde_json::from_value(params["params"].clone())?;
            let test = match params.get("test").and_then(Value::as_str) {
                Some(p) if ctx.role() == Role::Arbiter => Some(Dataset::read_csv(
                    p,
                    &DatasetSpec::with_label("y", LabelKind::Binary),
                )?),
                _ => None,
            };
            let start = Instant::now();
            let outcome = ferry_horizontal::train(ctx, data.as_ref(), &fp, test.as_ref())?;
            let secs = start.elapsed().as_secs_f64();
            let test_acc = match (&test, ctx.role()) {
                (Some(t), Role::Arbiter) => Some(ferry_horizontal::evaluate(&outcome.model, t)?),
                _ => None,
            };
            Ok(json!({"seconds": secs, "rounds": outcome.rounds_completed, "test": test_acc}))
        }
        other => bail!("unknown benchmark protocol '{other}'"),
    }
}

// ---------------------------------------------------------------------------------------
// ferry bench psi

#[derive(Args)]
pub struct PsiBenchArgs {
    /// IDs per party.
    #[arg(long, default_value_t = 100_000)]
    size: usize,
    /// Fraction of each party's IDs that all parties share.
    #[arg(long, default_value_t = 0.5)]
    overlap: f64,
    /// Number of parties (2 or more).
    #[arg(long, default_value_t = 2)]
    parties: usize,
    #[arg(long)]
    json: bool,
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

pub fn psi(args: PsiBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.parties >= 2, "PSI needs at least two parties");
    let names = ["bank", "telco", "insurer", "retailer", "hospital"];
    anyhow::ensure!(
        args.parties <= names.len(),
        "at most {} parties",
        names.len()
    );
    let roster: Vec<String> = (0..args.parties)
        .map(|i| format!("{}:{}", names[i], if i == 0 { "guest" } else { "host" }))
        .collect();
    // Per-core group-operation rates, measured now, give the floor of this run.
    use ferry_crypto::ecdh::{EcdhGroup, Ristretto255};
    let key = Ristretto255::random_key(&mut rand::rng());
    let mut c = 0u64;
    let blind_rate = median_rate(3, 0.3, || {
        c += 1;
        std::hint::black_box(Ristretto255::blind(&key, &c.to_le_bytes()));
    });
    let element = Ristretto255::blind(&key, b"x");
    let reblind_rate = median_rate(3, 0.3, || {
        std::hint::black_box(Ristretto255::reblind(&key, &element));
    });
    let start = Instant::now();
    let outputs = run_launch(
        &roster.join(","),
        "bench-psi",
        json!({"size": args.size, "overlap": args.overlap}),
        &args.work_dir,
        3600,
    )?;
    let wall = start.elapsed().as_secs_f64();
    let n = args.size as f64;
    let parties = args.parties as f64;
    // Two-party ECDH-PSI: each party blinds its own set and re-blinds the other's.
    let floor = parties * n * (1.0 / blind_rate + 1.0 / reblind_rate) / 2.0;
    let protocol_secs = outputs
        .iter()
        .filter_map(|o| o.result.get("seconds").and_then(Value::as_f64))
        .fold(0.0, f64::max);
    let expected = outputs[0]
        .result
        .get("expected")
        .cloned()
        .unwrap_or(Value::Null);
    let found = outputs[0]
        .result
        .get("intersection")
        .cloned()
        .unwrap_or(Value::Null);
    if found != expected {
        bail!("intersection size {found} differs from the generated overlap {expected}");
    }
    let bytes: u64 = outputs.iter().map(|o| o.bytes_sent).sum();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "size": args.size, "overlap": args.overlap, "parties": args.parties,
                "wall_seconds": wall, "protocol_seconds": protocol_secs, "elements_per_second": n * parties / protocol_secs,
                "floor_seconds": floor, "bytes_exchanged": bytes, "intersection": found, "outputs": outputs,
            }))?
        );
        return Ok(());
    }
    println!(
        "ferry bench psi — ECDH-PSI on Ristretto255, {} parties x {} IDs, overlap {}, one process per party over loopback TLS",
        args.parties, args.size, args.overlap
    );
    println!();
    print_parties(&outputs);
    println!();
    println!("intersection          {found} (expected {expected})");
    println!(
        "protocol time         {protocol_secs:.2} s   (launch + identities + process start: {wall:.2} s)"
    );
    println!(
        "elements/s            {:.0} (all parties' IDs / protocol time)",
        n * parties / protocol_secs
    );
    println!("bytes exchanged       {:.1} MB", bytes as f64 / 1e6);
    println!(
        "floor                 {floor:.2} s = {} group operations on 2 cores at {blind_rate:.0} blind/s and {reblind_rate:.0} re-blind/s per core (measured now); protocol/floor = {:.2}",
        2.0 * parties * n,
        protocol_secs / floor
    );
    println!(
        "peers (same machine)  openmined-psi 2.0.6: 31.5 s (1e5), 300.7 s (1e6); FATE 2.2 curve25519: 19.4 s (1e5), 204 s (1e6)"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// ferry bench secureboost

#[derive(Args)]
pub struct SecureBoostBenchArgs {
    /// A vertical dataset in ../shared/datasets: NAME_hetero_guest.csv (with the label) and
    /// NAME_hetero_host.csv (e.g. default_credit, breast, vehicle_scale, motor); ignored with
    /// --synthetic.
    #[arg(long, default_value = "default_credit")]
    dataset: String,
    /// Label column in the guest's file.
    #[arg(long, default_value = "y")]
    label: String,
    /// Id column (default: `id`, else the first column).
    #[arg(long)]
    id: Option<String>,
    /// binary, multiclass or regression (default: inferred from the label column: 0/1 is
    /// binary, small non-negative integers are classes, anything else is regression).
    #[arg(long)]
    objective: Option<String>,
    /// Synthetic rows instead of a public dataset (guest 13 features, host 10).
    #[arg(long)]
    synthetic: Option<usize>,
    #[arg(long, default_value_t = 10)]
    trees: usize,
    #[arg(long, default_value_t = 3)]
    depth: usize,
    #[arg(long, default_value_t = 32)]
    bins: usize,
    #[arg(long, default_value_t = 0.3)]
    learning_rate: f64,
    /// paillier or ou.
    #[arg(long, default_value = "paillier")]
    scheme: String,
    #[arg(long, default_value_t = 2048)]
    key_bits: u32,
    #[arg(long)]
    json: bool,
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

/// Single-core rates of the scheme, measured now (for the crypto floor).
fn crypto_rates(
    scheme: ferry_crypto::SchemeKind,
    bits: u32,
) -> anyhow::Result<ferry_secureboost::CryptoRates> {
    use ferry_crypto::{HePublicKey, HeSecretKey};
    fn rates<S: HeSecretKey>(sk: &S) -> ferry_secureboost::CryptoRates {
        let pk = sk.public();
        let mut rng = rand::rng();
        let m = ferry_crypto::rug::Integer::from(123_456_789u64);
        let c = pk.encrypt(&m, &mut rng).expect("in range");
        let mut acc = c.clone();
        ferry_secureboost::CryptoRates {
            encrypt: median_rate(3, 0.2, || {
                std::hint::black_box(pk.encrypt(&m, &mut rng).expect("in range"));
            }),
            owner_encrypt: median_rate(3, 0.2, || {
                std::hint::black_box(sk.encrypt(&m, &mut rand::rng()).expect("in range"));
            }),
            decrypt: median_rate(3, 0.2, || {
                std::hint::black_box(sk.decrypt(&c));
            }),
            add: median_rate(3, 0.2, || pk.add_assign(&mut acc, &c)),
        }
    }
    let mut rng = rand::rng();
    Ok(match scheme {
        ferry_crypto::SchemeKind::Paillier => {
            rates(&ferry_crypto::PaillierSecretKey::generate(bits, &mut rng)?)
        }
        ferry_crypto::SchemeKind::OkamotoUchiyama => {
            rates(&ferry_crypto::OuSecretKey::generate(bits, &mut rng)?)
        }
    })
}

fn vertical_data(
    dataset: &str,
    label: &str,
    id: Option<&str>,
    synthetic: Option<usize>,
) -> anyhow::Result<(Value, String)> {
    if let Some(rows) = synthetic {
        return Ok((
            json!({"synthetic": {"rows": rows, "seed": 7}}),
            format!("synthetic, {rows} rows"),
        ));
    }
    let dir = shared_datasets();
    let guest = dir.join(format!("{dataset}_hetero_guest.csv"));
    let host = dir.join(format!("{dataset}_hetero_host.csv"));
    if !guest.exists() {
        bail!(
            "{} not found: set FERRY_SHARED_DATASETS to the datasets folder, or use --synthetic ROWS",
            guest.display()
        );
    }
    let abs = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p).display().to_string();
    let mut spec = json!({"files": {"bank": abs(guest), "telco": abs(host)}, "label": label});
    if let Some(id) = id {
        spec["id"] = json!(id);
    }
    Ok((spec, dataset.to_string()))
}

/// The objective for `--objective`, or inferred from the guest's label column.
fn secureboost_objective(
    data: &Value,
    label: &str,
    id: Option<&str>,
    asked: Option<&str>,
) -> anyhow::Result<(ferry_secureboost::Objective, LabelKind)> {
    use ferry_secureboost::Objective;
    let labels = match data["files"]["bank"].as_str() {
        Some(path) => {
            let spec = DatasetSpec {
                id_columns: id.map(|i| vec![i.to_string()]).unwrap_or_default(),
                ..DatasetSpec::with_label(label, LabelKind::Continuous)
            };
            Dataset::read_csv(path, &spec)?
                .labels()
                .map(<[f64]>::to_vec)
                .unwrap_or_default()
        }
        // Synthetic data has binary labels.
        None => vec![0.0, 1.0],
    };
    let classes = || -> usize { labels.iter().fold(0.0f64, |m, &y| m.max(y)) as usize + 1 };
    let integral = labels.iter().all(|&y| y >= 0.0 && y.fract() == 0.0);
    let kind = match asked {
        Some("binary") => "binary",
        Some("multiclass") => "multiclass",
        Some("regression") => "regression",
        Some(other) => bail!("unknown objective '{other}' (binary, multiclass or regression)"),
        None if labels.iter().all(|&y| y == 0.0 || y == 1.0) => "binary",
        None if integral && classes() <= MAX_INFERRED_CLASSES => "multiclass",
        None => "regression",
    };
    Ok(match kind {
        "binary" => (Objective::BinaryLogistic, LabelKind::Binary),
        "multiclass" => (
            Objective::MultiSoftmax {
                num_class: classes().max(2),
            },
            LabelKind::Multiclass,
        ),
        _ => (Objective::SquaredError, LabelKind::Continuous),
    })
}

/// Above this many distinct integer labels a column is taken for a regression target.
const MAX_INFERRED_CLASSES: usize = 32;

pub fn secureboost(args: SecureBoostBenchArgs) -> anyhow::Result<()> {
    let scheme: ferry_crypto::SchemeKind = args.scheme.parse().map_err(anyhow::Error::msg)?;
    let (mut data, label) = vertical_data(
        &args.dataset,
        &args.label,
        args.id.as_deref(),
        args.synthetic,
    )?;
    let (objective, label_kind) = secureboost_objective(
        &data,
        &args.label,
        args.id.as_deref(),
        args.objective.as_deref(),
    )?;
    data["label_kind"] = serde_json::to_value(label_kind)?;
    let metric_name = match objective {
        ferry_secureboost::Objective::BinaryLogistic => "train AUC",
        ferry_secureboost::Objective::SquaredError => "train RMSE",
        ferry_secureboost::Objective::MultiSoftmax { .. } => "train log loss",
    };
    let params = ferry_secureboost::SecureBoostParams {
        objective,
        num_trees: args.trees,
        max_depth: args.depth,
        max_bin: args.bins,
        learning_rate: args.learning_rate,
        he_scheme: scheme,
        key_bits: args.key_bits,
        allow_insecure_key_size: args.key_bits < 2048,
        ..Default::default()
    };
    if !args.json {
        eprintln!(
            "measuring {}-{} rates for the crypto floor...",
            scheme.name(),
            args.key_bits
        );
    }
    let rates = crypto_rates(scheme, args.key_bits)?;
    if !args.json {
        eprintln!(
            "training on {label} ({} trees, depth {}, {} bins) as two processes over TLS...",
            args.trees, args.depth, args.bins
        );
    }
    let outputs = run_launch(
        "bank:guest,telco:host",
        "bench-secureboost",
        json!({"data": data, "params": params}),
        &args.work_dir,
        7200,
    )?;
    let guest = &outputs[0].result;
    let report: ferry_secureboost::TrainReport = serde_json::from_value(guest["report"].clone())?;
    let fit = report.total_seconds;
    let floor = report.total_ops().floor_seconds(&rates);
    let metric = guest["train_metric"].as_f64();
    let per_tree = fit / report.trees.len().max(1) as f64;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "data": label, "scheme": scheme.name(), "key_bits": args.key_bits, "fit_seconds": fit,
                "objective": params.objective, "seconds_per_tree": per_tree,
                "train_metric_name": metric_name, "train_metric": metric,
                "train_auc": if metric_name == "train AUC" { metric } else { None },
                "crypto_floor_core_seconds": floor,
                "crypto_floor_wall_seconds_2_cores": floor / 2.0, "rates": rates, "outputs": outputs,
            }))?
        );
        return Ok(());
    }
    println!(
        "ferry bench secureboost — {label}, {} trees, depth {}, {} bins, lr {}, {}-{}, guest + host as two processes over TLS",
        args.trees,
        args.depth,
        args.bins,
        args.learning_rate,
        scheme.name(),
        args.key_bits
    );
    println!();
    print_parties(&outputs);
    println!();
    println!("fit time            {fit:.2} s  ({per_tree:.2} s per tree)");
    println!(
        "{metric_name:<20}{}",
        metric.map(|a| format!("{a:.5}")).unwrap_or("-".into())
    );
    println!(
        "crypto floor        {floor:.2} core-s ({:.2} s on 2 cores) from {} encryptions, {} decryptions, {} additions at {:.0}/{:.0}/{:.0} per s per core (measured now); fit / 2-core floor = {:.2}",
        floor / 2.0,
        report.total_ops().encryptions,
        report.total_ops().decryptions,
        report.total_ops().additions + report.total_ops().shift_bits,
        rates.owner_encrypt,
        rates.decrypt,
        rates.add,
        fit / (floor / 2.0)
    );
    if label == "default_credit" && args.trees == 10 && args.depth == 3 {
        println!(
            "peers (same machine)  FATE 2.2 Paillier-1024: 668.7 s, AUC 0.7798 -> {:.0}x faster; XGBoost pooled 1 thread: 0.078 s, AUC 0.7788 -> {:.0}x XGBoost's time",
            668.7 / fit,
            fit / 0.078
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// ferry bench hetero-lr

#[derive(Args)]
pub struct LinearBenchArgs {
    #[arg(long, default_value = "default_credit")]
    dataset: String,
    #[arg(long)]
    synthetic: Option<usize>,
    /// Run with a third party (the arbiter holds the key).
    #[arg(long)]
    arbiter: bool,
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    #[arg(long, default_value_t = 0.15)]
    learning_rate: f64,
    #[arg(long, default_value = "paillier")]
    scheme: String,
    #[arg(long, default_value_t = 2048)]
    key_bits: u32,
    #[arg(long)]
    json: bool,
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

pub fn hetero_lr(args: LinearBenchArgs) -> anyhow::Result<()> {
    let (data, label) = vertical_data(&args.dataset, "y", None, args.synthetic)?;
    let mut params = serde_json::to_value(ferry_linear::LinearParams::default())?;
    params["max_epochs"] = json!(args.epochs);
    params["batch_size"] = json!(args.batch);
    params["optimizer"] = json!({"method": "sgd", "lr": args.learning_rate});
    params["he"]["scheme"] = json!(args.scheme);
    params["he"]["key_bits"] = json!(args.key_bits);
    params["he"]["allow_insecure_key_bits"] = json!(args.key_bits < 2048);
    // Check the parameters here, with a clear message, before starting processes.
    let lp: ferry_linear::LinearParams =
        serde_json::from_value(params.clone()).context("benchmark parameters")?;
    lp.validate()?;
    let roster = if args.arbiter {
        "bank:guest,telco:host,coordinator:arbiter"
    } else {
        "bank:guest,telco:host"
    };
    let outputs = run_launch(
        roster,
        "bench-hetero-lr",
        json!({"data": data, "params": params}),
        &args.work_dir,
        3600,
    )?;
    let guest = &outputs[0].result;
    let fit = guest["fit_seconds"].as_f64().unwrap_or(f64::NAN);
    let auc = guest["train_auc"].as_f64();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"data": label, "arbiter": args.arbiter, "fit_seconds": fit, "train_auc": auc, "outputs": outputs})
            )?
        );
        return Ok(());
    }
    println!(
        "ferry bench hetero-lr — {label}, {} epochs, batch {}, SGD lr {}, {}-{}, {} over TLS",
        args.epochs,
        args.batch,
        args.learning_rate,
        args.scheme,
        args.key_bits,
        if args.arbiter {
            "guest + host + arbiter as three processes"
        } else {
            "guest + host as two processes"
        }
    );
    println!();
    print_parties(&outputs);
    println!();
    println!("fit time    {fit:.2} s");
    println!(
        "train AUC   {}",
        auc.map(|a| format!("{a:.4}")).unwrap_or("-".into())
    );
    if label == "default_credit" && args.epochs == 3 && args.batch == 5000 {
        println!(
            "peers (same machine)  FATE 2.2 coordinated LR, Paillier-1024: 98.9 s -> {:.0}x faster; SSHE-LR: 214.8 s; scikit-learn pooled: 0.24 s, AUC 0.7242",
            98.9 / fit
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// ferry bench fedavg

#[derive(Args)]
pub struct FedAvgBenchArgs {
    /// lr or mlp.
    #[arg(long, default_value = "lr")]
    model: String,
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Secure aggregation on.
    #[arg(long)]
    secure_aggregation: bool,
    /// Keep this fraction of update coordinates (top-k with error feedback; random-k with
    /// secure aggregation).
    #[arg(long)]
    sparsify: Option<f64>,
    #[arg(long)]
    json: bool,
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

pub fn fedavg(args: FedAvgBenchArgs) -> anyhow::Result<()> {
    let dir = shared_datasets();
    let file = |n: &str| -> anyhow::Result<String> {
        let p = dir.join(n);
        anyhow::ensure!(
            p.exists(),
            "{} not found: set FERRY_SHARED_DATASETS to the datasets folder",
            p.display()
        );
        Ok(std::fs::canonicalize(&p)?.display().to_string())
    };
    let data = json!({"horizontal": true, "label": "y", "files": {
        "bank_a": file("default_credit_homo_guest.csv")?,
        "bank_b": file("default_credit_homo_host_1.csv")?,
        "bank_c": file("default_credit_homo_host_2.csv")?,
    }});
    let mut params = serde_json::to_value(ferry_horizontal::FedAvgParams::default())?;
    params["rounds"] = json!(args.rounds);
    params["model"] = match args.model.as_str() {
        "lr" => json!({"kind": "logistic"}),
        "mlp" => json!({"kind": "mlp", "hidden": [32, 16], "task": {"kind": "binary"}}),
        other => bail!("unknown model '{other}' (lr or mlp)"),
    };
    if args.secure_aggregation {
        params["secure_aggregation"] =
            serde_json::to_value(ferry_horizontal::SecureAggregation::default())?;
    }
    if let Some(f) = args.sparsify {
        params["sparsification"] = if args.secure_aggregation {
            json!({"kind": "random_k", "fraction": f})
        } else {
            json!({"kind": "top_k", "fraction": f})
        };
    }
    let fp: ferry_horizontal::FedAvgParams =
        serde_json::from_value(params.clone()).context("benchmark parameters")?;
    let _ = fp;
    let outputs = run_launch(
        "server:arbiter,bank_a:guest,bank_b:host,bank_c:host",
        "bench-fedavg",
        json!({"data": data, "params": params, "test": file("default_credit_homo_test.csv")?}),
        &args.work_dir,
        3600,
    )?;
    let server = &outputs[0];
    let secs = server.result["seconds"].as_f64().unwrap_or(f64::NAN);
    let rounds = server.result["rounds"].as_u64().unwrap_or(0);
    let bytes_per_round = (server.bytes_sent + server.bytes_received) as f64 / rounds.max(1) as f64;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"model": args.model, "secure_aggregation": args.secure_aggregation, "sparsify": args.sparsify, "rounds_per_second": rounds as f64 / secs, "bytes_per_round": bytes_per_round, "outputs": outputs})
            )?
        );
        return Ok(());
    }
    println!(
        "ferry bench fedavg — default_credit_homo, 3 clients + server as four processes over TLS; model {}, secure aggregation {}, sparsification {}",
        args.model,
        if args.secure_aggregation { "on" } else { "off" },
        args.sparsify
            .map(|f| format!("{f}"))
            .unwrap_or("off".into())
    );
    println!();
    print_parties(&outputs);
    println!();
    println!(
        "rounds/s        {:.2} ({rounds} rounds in {secs:.2} s)",
        rounds as f64 / secs
    );
    println!("bytes/round     {bytes_per_round:.0} (everything the server sent and received)");
    println!("test metrics    {}", server.result["test"]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_secureboost::Objective;

    fn guest_file(dir: &std::path::Path, labels: &[&str]) -> Value {
        let path = dir.join(format!("g{}.csv", labels.join("_").replace('.', "p")));
        let mut text = String::from("id,x,y\n");
        for (i, y) in labels.iter().enumerate() {
            text.push_str(&format!("r{i},{i},{y}\n"));
        }
        std::fs::write(&path, text).unwrap();
        json!({"files": {"bank": path.display().to_string()}})
    }

    #[test]
    fn the_objective_follows_the_label_column_unless_given() {
        let dir = tempfile::tempdir().unwrap();
        let infer = |labels: &[&str], asked: Option<&str>| {
            secureboost_objective(&guest_file(dir.path(), labels), "y", None, asked)
        };
        let (o, k) = infer(&["0", "1", "1"], None).unwrap();
        assert_eq!((o, k), (Objective::BinaryLogistic, LabelKind::Binary));
        let (o, k) = infer(&["0", "3", "2", "1"], None).unwrap();
        assert_eq!(
            (o, k),
            (
                Objective::MultiSoftmax { num_class: 4 },
                LabelKind::Multiclass
            )
        );
        let (o, _) = infer(&["0.5", "1.25", "3"], None).unwrap();
        assert_eq!(o, Objective::SquaredError);
        // Too many distinct integers for classes: a count or an amount.
        let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(infer(&many, None).unwrap().0, Objective::SquaredError);
        // Asked for explicitly.
        let (o, k) = infer(&["0", "1"], Some("regression")).unwrap();
        assert_eq!((o, k), (Objective::SquaredError, LabelKind::Continuous));
        let e = infer(&["0", "1"], Some("poisson")).unwrap_err().to_string();
        assert!(e.contains("unknown objective 'poisson'"), "{e}");
    }
}
