//! Benchmarks of the federated protocols as separate processes over loopback TLS
//! (`ferry bench psi|secureboost|hetero-lr|fedavg`), and the per-party protocols they launch.
//!
//! Every party is its own `ferry run-party` process with its own identity; the figures come
//! from the parties' outputs (wall time, peak RSS, bytes) and the algorithms' reports.

use super::machine::{Arithmetic, Floor, Machine, insecure_key_warning, parallel_workers};
use super::median_rate;
use super::reference::{self, Reference};
use crate::launch::{Launch, PartyOutput, launch, parse_roster};
use anyhow::{Context as _, bail};
use clap::Args;
use ferry_context::{Context, Role};
use ferry_data::synthetic::{VerticalSpec, vertical};
use ferry_data::{Dataset, DatasetSpec, LabelKind};
use ferry_ml::FederatedModel;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn shared_datasets() -> PathBuf {
    std::env::var_os("FERRY_SHARED_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/datasets"))
}

pub(super) fn run_launch(
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

fn parties_table(outputs: &[PartyOutput]) -> String {
    let mut s = format!(
        "{:<10} {:<8} {:>9} {:>13} {:>13} {:>11}\n",
        "party", "role", "wall s", "sent MB", "received MB", "peak RSS"
    );
    for o in outputs {
        s.push_str(&format!(
            "{:<10} {:<8} {:>9.2} {:>13.2} {:>13.2} {:>7.0} MiB\n",
            o.party,
            o.role,
            o.wall_secs,
            o.bytes_sent as f64 / 1e6,
            o.bytes_received as f64 / 1e6,
            mib(o.peak_rss_kib)
        ));
    }
    s
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
            let config = ferry_psi::PsiConfig {
                protocol: params
                    .get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or("ecdh")
                    .parse()?,
                group: ferry_psi::GroupKind::of_suite(
                    params
                        .get("suite")
                        .and_then(Value::as_str)
                        .unwrap_or("default")
                        .parse()
                        .map_err(anyhow::Error::msg)?,
                ),
                ..ferry_psi::PsiConfig::default()
            };
            let start = Instant::now();
            let out = ferry_psi::intersect_ids(ctx, &ids, &config)?;
            let secs = start.elapsed().as_secs_f64();
            let found = out.rows.as_ref().map(|r| r.len());
            Ok(
                json!({"seconds": secs, "intersection": found, "expected": ferry_psi::synthetic_overlap_count(size, overlap)}),
            )
        }
        "bench-secureboost" => {
            let data = party_data(ctx, &params["data"])?.context("this party has no data")?;
            bench_fit::<ferry_secureboost::ModelPart>(ctx, params, Some(&data), false)
        }
        "bench-hetero-lr" => {
            let data = party_data(ctx, &params["data"])?;
            bench_fit::<ferry_linear::ModelPart>(ctx, params, data.as_ref(), true)
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
        super::pir::PROTOCOL => super::pir::run_party(ctx, params),
        super::unbalanced_psi::PROTOCOL => super::unbalanced_psi::run_party(ctx, params),
        other => bail!("unknown benchmark protocol '{other}'"),
    }
}

/// One party's side of a training benchmark for any algorithm: fit (keys below 2048 bits only
/// when the launching bench allowed them), then, with `score`, the training AUC of the model.
fn bench_fit<M: FederatedModel>(
    ctx: &Context,
    params: &Value,
    data: Option<&Dataset>,
    score: bool,
) -> anyhow::Result<Value> {
    let (mut p, insecure_keys): (M::Params, bool) = algorithm_params(params)?;
    if let Some(he) = M::he_settings(&mut p) {
        he.allow_insecure_key_bits = insecure_keys;
    }
    let start = Instant::now();
    let fitted = M::fit(ctx, data, &p, None)?;
    let fit_seconds = start.elapsed().as_secs_f64();
    let auc = if score {
        let scores = fitted.model.predict(&ctx.sub("predict"), data)?;
        match (&scores, data.and_then(|d| d.labels())) {
            (Some(s), Some(y)) => Some(ferry_ml::metrics::auc(s, y)?),
            _ => None,
        }
    } else {
        None
    };
    Ok(json!({
        "report": fitted.report,
        "summary": fitted.summary,
        "train_metric": fitted.summary.get("train_metric"),
        "fit_seconds": fit_seconds,
        "train_auc": auc,
    }))
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
    /// ecdh, kkrt (two parties; ECDH runs on the same ids afterwards as the baseline), or
    /// unbalanced (--size is the querier's set, --provider-size the provider's).
    #[arg(long, default_value = "ecdh")]
    protocol: String,
    /// With --protocol unbalanced: the provider's set size (preprocessed once).
    #[arg(long, default_value_t = 1_000_000)]
    provider_size: usize,
    /// With --protocol unbalanced: online runs (the first downloads the filter).
    #[arg(long, default_value_t = 2)]
    runs: usize,
    /// Crypto suite of the ECDH run: default (Ristretto255) or gm (SM2 with SM3; the
    /// default suite's ECDH then runs on the same ids afterwards as the baseline).
    #[arg(long, default_value = "default")]
    suite: ferry_crypto::Suite,
    /// With --protocol kkrt or --suite gm: skip the baseline run.
    #[arg(long)]
    no_baseline: bool,
    #[arg(long)]
    json: bool,
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

/// One launch of the `bench-psi` protocol: the intersection is checked against the
/// generated overlap. Returns (wall s, slowest party's protocol s, intersection, outputs).
fn launch_psi(
    roster: &str,
    args: &PsiBenchArgs,
    protocol: &str,
) -> anyhow::Result<(f64, f64, Value, Value, Vec<PartyOutput>)> {
    launch_psi_in(roster, args, protocol, ferry_crypto::Suite::Default)
}

/// [`launch_psi`] under a crypto suite.
fn launch_psi_in(
    roster: &str,
    args: &PsiBenchArgs,
    protocol: &str,
    suite: ferry_crypto::Suite,
) -> anyhow::Result<(f64, f64, Value, Value, Vec<PartyOutput>)> {
    let start = Instant::now();
    let outputs = run_launch(
        roster,
        "bench-psi",
        json!({"size": args.size, "overlap": args.overlap, "protocol": protocol, "suite": suite}),
        &args.work_dir,
        3600,
    )?;
    let wall = start.elapsed().as_secs_f64();
    let protocol_seconds = outputs
        .iter()
        .filter_map(|o| o.result.get("seconds").and_then(Value::as_f64))
        .fold(0.0, f64::max);
    let expected = outputs[0]
        .result
        .get("expected")
        .cloned()
        .unwrap_or(Value::Null);
    let intersection = outputs[0]
        .result
        .get("intersection")
        .cloned()
        .unwrap_or(Value::Null);
    if intersection != expected {
        bail!(
            "{protocol}: intersection size {intersection} differs from the generated overlap {expected}"
        );
    }
    Ok((wall, protocol_seconds, intersection, expected, outputs))
}

pub fn psi(args: PsiBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.parties >= 2, "PSI needs at least two parties");
    if args.protocol == "unbalanced" {
        return super::unbalanced_psi::run(&super::unbalanced_psi::UnbalancedBench {
            querier_size: args.size,
            provider_size: args.provider_size,
            overlap: args.overlap,
            runs: args.runs,
            json: args.json,
            work_dir: args.work_dir.clone(),
        });
    }
    let protocol: ferry_psi::PsiProtocol = args.protocol.parse()?;
    if protocol == ferry_psi::PsiProtocol::Kkrt && args.suite == ferry_crypto::Suite::Gm {
        bail!("--protocol kkrt is not available with --suite gm: use --protocol ecdh");
    }
    if protocol == ferry_psi::PsiProtocol::Kkrt {
        anyhow::ensure!(
            args.parties == 2,
            "--protocol kkrt runs between two parties; use --protocol ecdh for {}",
            args.parties
        );
        return kkrt_bench(&args);
    }
    let names = ["bank", "telco", "insurer", "retailer", "hospital"];
    anyhow::ensure!(
        args.parties <= names.len(),
        "at most {} parties",
        names.len()
    );
    let machine = Machine::detect();
    let roster: Vec<String> = (0..args.parties)
        .map(|i| format!("{}:{}", names[i], if i == 0 { "guest" } else { "host" }))
        .collect();
    // Per-core group-operation rates, measured now, give the floor of this run.
    let (blind_rate, reblind_rate) = match args.suite {
        ferry_crypto::Suite::Default => group_rates::<ferry_crypto::ecdh::Ristretto255>(),
        ferry_crypto::Suite::Gm => group_rates::<ferry_crypto::ecdh::Sm2Sm3>(),
    };
    let (wall, protocol_seconds, intersection, expected, outputs) =
        launch_psi_in(&roster.join(","), &args, "ecdh", args.suite)?;
    // Under gm, the default suite on the same ids right after: the figure to compare with.
    let baseline = if args.suite == ferry_crypto::Suite::Default || args.no_baseline {
        None
    } else {
        let (wall, protocol_seconds, _, _, outputs) = launch_psi(&roster.join(","), &args, "ecdh")?;
        Some(PsiBaseline {
            wall_seconds: wall,
            protocol_seconds,
            bytes_exchanged: outputs.iter().map(|o| o.bytes_sent).sum(),
        })
    };
    let workers = parallel_workers(machine.cores, args.parties, machine.threads_per_process);
    let run = PsiRun {
        size: args.size,
        overlap: args.overlap,
        parties: args.parties,
        wall_seconds: wall,
        protocol_seconds,
        intersection,
        expected,
        bytes_exchanged: outputs.iter().map(|o| o.bytes_sent).sum(),
        blind_rate,
        reblind_rate,
        floor: psi_floor(args.size, args.parties, blind_rate, reblind_rate, workers),
        outputs,
        suite: args.suite,
        baseline,
    };
    let references = reference::psi(args.parties);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&psi_json(&run, &machine, &references))?
        );
    } else {
        print!("{}", render_psi(&run, &machine, &references));
    }
    Ok(())
}

/// Blind and re-blind rates of one group on one core.
fn group_rates<G: ferry_crypto::ecdh::EcdhGroup>() -> (f64, f64) {
    let key = G::random_key(&mut rand::rng());
    let mut c = 0u64;
    let blind_rate = median_rate(3, 0.3, || {
        c += 1;
        std::hint::black_box(G::blind(&key, &c.to_le_bytes()));
    });
    let element = G::blind(&key, b"x");
    let reblind_rate = median_rate(3, 0.3, || {
        std::hint::black_box(G::reblind(&key, &element));
    });
    (blind_rate, reblind_rate)
}

/// `ferry bench psi --protocol kkrt`: KKRT between two processes, then ECDH on the same ids
/// as the baseline (unless `--no-baseline`).
fn kkrt_bench(args: &PsiBenchArgs) -> anyhow::Result<()> {
    let machine = Machine::detect();
    let roster = "bank:guest,telco:host";
    let (wall, protocol_seconds, intersection, expected, outputs) =
        launch_psi(roster, args, "kkrt")?;
    let baseline = if args.no_baseline {
        None
    } else {
        let (wall, protocol_seconds, _, _, outputs) = launch_psi(roster, args, "ecdh")?;
        Some(PsiBaseline {
            wall_seconds: wall,
            protocol_seconds,
            bytes_exchanged: outputs.iter().map(|o| o.bytes_sent).sum(),
        })
    };
    let run = KkrtRun {
        size: args.size,
        overlap: args.overlap,
        wall_seconds: wall,
        protocol_seconds,
        intersection,
        expected,
        bytes_exchanged: outputs.iter().map(|o| o.bytes_sent).sum(),
        outputs,
        baseline,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&kkrt_json(&run, &machine))?
        );
    } else {
        print!("{}", render_kkrt(&run, &machine));
    }
    Ok(())
}

/// ECDH-PSI on the same ids in the same invocation: the baseline of a KKRT run.
pub struct PsiBaseline {
    pub wall_seconds: f64,
    pub protocol_seconds: f64,
    pub bytes_exchanged: u64,
}

/// What one `ferry bench psi --protocol kkrt` run measured.
pub struct KkrtRun {
    pub size: usize,
    pub overlap: f64,
    pub wall_seconds: f64,
    pub protocol_seconds: f64,
    pub intersection: Value,
    pub expected: Value,
    pub bytes_exchanged: u64,
    pub outputs: Vec<PartyOutput>,
    pub baseline: Option<PsiBaseline>,
}

impl KkrtRun {
    /// ECDH's protocol time over KKRT's (both measured in this run).
    fn speedup(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .map(|b| b.protocol_seconds / self.protocol_seconds)
    }
}

/// The AES implementation the `aes` crate picks at run time on this CPU (it does not report
/// its choice; this follows its detection order).
fn aes_backend(machine: &Machine) -> &'static str {
    if machine.has("vaes") && machine.has("avx512f") {
        "VAES, 512-bit"
    } else if machine.has("vaes") && machine.has("avx2") {
        "VAES, 256-bit"
    } else if machine.has("aes") {
        "AES-NI"
    } else {
        "software (constant-time bitsliced)"
    }
}

pub fn render_kkrt(run: &KkrtRun, machine: &Machine) -> String {
    let mut s = format!(
        "ferry bench psi — KKRT16 PSI (OT extension, AES-128; base OTs on Ristretto255), 2 parties x {} IDs, overlap {}, one process per party over loopback TLS\n",
        run.size, run.overlap
    );
    s.push_str(&machine.render());
    s.push_str(&format!(
        "\naes         {} (chosen at run time by the aes crate)\n\n",
        aes_backend(machine)
    ));
    s.push_str(&parties_table(&run.outputs));
    s.push('\n');
    s.push_str(&format!(
        "intersection          {} (expected {})\n",
        run.intersection, run.expected
    ));
    s.push_str(&format!(
        "protocol time         {:.2} s   (launch + identities + process start: {:.2} s)\n",
        run.protocol_seconds, run.wall_seconds
    ));
    s.push_str(&format!(
        "elements/s            {:.0} (both parties' IDs / protocol time)\n",
        (2 * run.size) as f64 / run.protocol_seconds
    ));
    s.push_str(&format!(
        "bytes exchanged       {:.1} MB\n",
        run.bytes_exchanged as f64 / 1e6
    ));
    match (&run.baseline, run.speedup()) {
        (Some(b), Some(speedup)) => s.push_str(&format!(
            "ECDH-PSI, same IDs    {:.2} s protocol time, {:.1} MB (measured in this run): KKRT is {:.1}x faster with {:.2}x the bytes\n",
            b.protocol_seconds,
            b.bytes_exchanged as f64 / 1e6,
            speedup,
            run.bytes_exchanged as f64 / b.bytes_exchanged.max(1) as f64
        )),
        _ => s.push_str("ECDH-PSI baseline      not run (--no-baseline)\n"),
    }
    s
}

pub fn kkrt_json(run: &KkrtRun, machine: &Machine) -> Value {
    json!({
        "machine": machine,
        "protocol": "kkrt",
        "aes_backend": aes_backend(machine),
        "size": run.size, "overlap": run.overlap, "parties": 2,
        "wall_seconds": run.wall_seconds, "protocol_seconds": run.protocol_seconds,
        "elements_per_second": (2 * run.size) as f64 / run.protocol_seconds,
        "bytes_exchanged": run.bytes_exchanged, "intersection": run.intersection,
        "outputs": run.outputs,
        "ecdh_baseline": run.baseline.as_ref().map(|b| json!({
            "wall_seconds": b.wall_seconds,
            "protocol_seconds": b.protocol_seconds,
            "bytes_exchanged": b.bytes_exchanged,
        })),
        "speedup_over_ecdh": run.speedup(),
    })
}

/// What one `ferry bench psi` run measured.
pub struct PsiRun {
    pub size: usize,
    pub overlap: f64,
    pub parties: usize,
    pub wall_seconds: f64,
    pub protocol_seconds: f64,
    pub intersection: Value,
    pub expected: Value,
    pub bytes_exchanged: u64,
    /// Per-core rates measured in this run.
    pub blind_rate: f64,
    pub reblind_rate: f64,
    pub floor: Floor,
    pub outputs: Vec<PartyOutput>,
    /// The crypto suite of this run (its group: Ristretto255 or SM2).
    pub suite: ferry_crypto::Suite,
    /// Under `--suite gm`: the default suite's ECDH-PSI on the same ids, same invocation.
    pub baseline: Option<PsiBaseline>,
}

impl PsiRun {
    fn group_operations(&self) -> f64 {
        2.0 * (self.parties * self.size) as f64
    }

    fn elements_per_second(&self) -> f64 {
        (self.parties * self.size) as f64 / self.protocol_seconds
    }
}

/// ECDH-PSI with every party holding `size` ids: each party blinds its own set, and every
/// set is re-blinded once by another party (two parties: each re-blinds the other's; more:
/// the leader re-blinds the hosts' sets, the helper the leader's), so `parties × size`
/// blinds and as many re-blinds, at the per-core rates measured in this run, on `workers`
/// threads at once (each party spreads its batches over its thread pool).
pub fn psi_floor(
    size: usize,
    parties: usize,
    blind_rate: f64,
    reblind_rate: f64,
    workers: usize,
) -> Floor {
    let n = (parties * size) as f64;
    Floor::new(n / blind_rate + n / reblind_rate, workers)
}

pub fn render_psi(run: &PsiRun, machine: &Machine, references: &[Reference]) -> String {
    let group = match run.suite {
        ferry_crypto::Suite::Default => "Ristretto255",
        ferry_crypto::Suite::Gm => "SM2 with SM3 (suite gm)",
    };
    let mut s = format!(
        "ferry bench psi — ECDH-PSI on {group}, {} parties x {} IDs, overlap {}, one process per party over loopback TLS\n",
        run.parties, run.size, run.overlap
    );
    s.push_str(&machine.render());
    s.push_str(&match run.suite {
        ferry_crypto::Suite::Default => format!(
            "\ngroup ops   curve25519-dalek, {} backend (chosen at run time from the CPU features)\n\n",
            machine.curve_backend()
        ),
        ferry_crypto::Suite::Gm => "\ngroup ops   RustCrypto sm2 (fiat-crypto field arithmetic), sm3\n\n".into(),
    });
    s.push_str(&parties_table(&run.outputs));
    s.push('\n');
    s.push_str(&format!(
        "intersection          {} (expected {})\n",
        run.intersection, run.expected
    ));
    s.push_str(&format!(
        "protocol time         {:.2} s   (launch + identities + process start: {:.2} s)\n",
        run.protocol_seconds, run.wall_seconds
    ));
    s.push_str(&format!(
        "elements/s            {:.0} (all parties' IDs / protocol time)\n",
        run.elements_per_second()
    ));
    s.push_str(&format!(
        "bytes exchanged       {:.1} MB\n",
        run.bytes_exchanged as f64 / 1e6
    ));
    s.push_str(&format!(
        "floor                 {:.2} s = {} group operations ({:.2} core-s) {} at {:.0} blind/s and {:.0} re-blind/s per core (measured in this run); protocol/floor = {:.2}\n",
        run.floor.wall_seconds,
        run.group_operations(),
        run.floor.core_seconds,
        run.floor.on_cores(),
        run.blind_rate,
        run.reblind_rate,
        run.protocol_seconds / run.floor.wall_seconds
    ));
    if let Some(b) = &run.baseline {
        s.push_str(&format!(
            "baseline              Ristretto255 ECDH-PSI on the same IDs, this invocation: {:.2} s protocol, {:.1} MB; SM2 takes {:.2}x its time\n",
            b.protocol_seconds,
            b.bytes_exchanged as f64 / 1e6,
            run.protocol_seconds / b.protocol_seconds
        ));
    }
    push_references(&mut s, references);
    s
}

pub fn psi_json(run: &PsiRun, machine: &Machine, references: &[Reference]) -> Value {
    json!({
        "machine": machine,
        "curve_backend": machine.curve_backend(),
        "size": run.size, "overlap": run.overlap, "parties": run.parties,
        "wall_seconds": run.wall_seconds, "protocol_seconds": run.protocol_seconds,
        "elements_per_second": run.elements_per_second(),
        "blind_per_second_per_core": run.blind_rate,
        "reblind_per_second_per_core": run.reblind_rate,
        "floor": run.floor, "floor_seconds": run.floor.wall_seconds,
        "bytes_exchanged": run.bytes_exchanged, "intersection": run.intersection,
        "outputs": run.outputs,
        "suite": run.suite,
        "baseline": run.baseline.as_ref().map(|b| json!({
            "suite": "default", "protocol_seconds": b.protocol_seconds,
            "wall_seconds": b.wall_seconds, "bytes_exchanged": b.bytes_exchanged,
        })),
        "reference": reference::json(references),
    })
}

/// A blank line and the reference block, when there is one.
fn push_references(s: &mut String, references: &[Reference]) {
    if !references.is_empty() {
        s.push('\n');
        s.push_str(&reference::render(references));
    }
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
    let machine = Machine::detect();
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
    let insecure_keys = args.key_bits < SECURE_KEY_BITS;
    // Checked here, with the permission the parties will get, before any process starts.
    let params = ferry_secureboost::SecureBoostParams {
        objective,
        num_trees: args.trees,
        max_depth: args.depth,
        max_bin: args.bins,
        learning_rate: args.learning_rate,
        he: ferry_crypto::HeSettings {
            scheme,
            key_bits: args.key_bits,
            allow_insecure_key_bits: insecure_keys,
        },
        ..Default::default()
    };
    params.validate()?;
    if insecure_keys {
        eprintln!("{}", insecure_key_warning(args.key_bits));
    }
    if !args.json {
        eprintln!(
            "measuring {}-{} rates for the crypto floor...",
            scheme.name(),
            args.key_bits
        );
    }
    // Single-core rates measured now, for the crypto floor.
    let rates = ferry_secureboost::CryptoRates::measure(scheme, args.key_bits)?;
    if !args.json {
        eprintln!(
            "training on {label} ({} trees, depth {}, {} bins) as two processes over TLS...",
            args.trees, args.depth, args.bins
        );
    }
    let outputs = run_launch(
        "bank:guest,telco:host",
        "bench-secureboost",
        bench_params(data, &params, insecure_keys)?,
        &args.work_dir,
        7200,
    )?;
    let guest = &outputs[0].result;
    let report: ferry_secureboost::TrainReport = serde_json::from_value(guest["report"].clone())?;
    let ops = report.total_ops();
    let workers = parallel_workers(machine.cores, 2, machine.threads_per_process);
    let run = SecureBoostRun {
        data: label,
        trees: args.trees,
        depth: args.depth,
        bins: args.bins,
        learning_rate: args.learning_rate,
        scheme: scheme.name(),
        key_bits: args.key_bits,
        objective: serde_json::to_value(params.objective)?,
        fit_seconds: report.total_seconds,
        trees_built: report.trees.len(),
        metric_name,
        metric: guest["train_metric"].as_f64(),
        ops,
        rates,
        floor: Floor::new(ops.floor_seconds(&rates), workers),
        arithmetic: Arithmetic::for_key(scheme, args.key_bits),
        outputs,
    };
    let references = if args.synthetic.is_some() {
        Vec::new()
    } else {
        reference::secureboost(&args.dataset, args.trees, args.depth)
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&secureboost_json(&run, &machine, &references))?
        );
    } else {
        print!("{}", render_secureboost(&run, &machine, &references));
    }
    Ok(())
}

/// Keys below this many bits are only for benchmarks and tests.
const SECURE_KEY_BITS: u32 = 2048;

/// The parameters every party process gets: the data, the algorithm's parameters, and
/// separately whether keys below 2048 bits are allowed. That permission is not part of the
/// algorithms' parameters on the wire (a job spec must not be able to set it): the party
/// sets it in code after reading them (see [`algorithm_params`]).
fn bench_params(
    data: Value,
    params: &impl serde::Serialize,
    insecure_keys: bool,
) -> anyhow::Result<Value> {
    let mut params = serde_json::to_value(params)?;
    strip_insecure_key_flags(&mut params);
    Ok(json!({"data": data, "params": params, INSECURE_KEYS: insecure_keys}))
}

/// The bench's own field carrying the permission for keys below 2048 bits.
const INSECURE_KEYS: &str = "allow_insecure_keys_for_benchmark";

/// Removes the algorithms' own insecure-key field (`he.allow_insecure_key_bits`, set in code by
/// each party) from serialised parameters, so the parameters deserialise whether or not that
/// field is still accepted from JSON.
fn strip_insecure_key_flags(params: &mut Value) {
    if let Some(he) = params.get_mut("he").and_then(Value::as_object_mut) {
        he.remove("allow_insecure_key_bits");
    }
}

/// The algorithm parameters of a bench protocol, and whether the launching bench allowed
/// keys below 2048 bits.
fn algorithm_params<T: serde::de::DeserializeOwned>(params: &Value) -> anyhow::Result<(T, bool)> {
    let mut p = params["params"].clone();
    strip_insecure_key_flags(&mut p);
    let parsed = serde_json::from_value(p).context("benchmark parameters")?;
    let insecure = params
        .get(INSECURE_KEYS)
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((parsed, insecure))
}

/// What one `ferry bench secureboost` run measured.
pub struct SecureBoostRun {
    pub data: String,
    pub trees: usize,
    pub depth: usize,
    pub bins: usize,
    pub learning_rate: f64,
    pub scheme: &'static str,
    pub key_bits: u32,
    pub objective: Value,
    pub fit_seconds: f64,
    pub trees_built: usize,
    pub metric_name: &'static str,
    pub metric: Option<f64>,
    pub ops: ferry_secureboost::HeOpCounts,
    /// Per-core rates of this scheme and key size, measured in this run.
    pub rates: ferry_secureboost::CryptoRates,
    pub floor: Floor,
    pub arithmetic: Arithmetic,
    pub outputs: Vec<PartyOutput>,
}

impl SecureBoostRun {
    fn seconds_per_tree(&self) -> f64 {
        self.fit_seconds / self.trees_built.max(1) as f64
    }
}

pub fn render_secureboost(
    run: &SecureBoostRun,
    machine: &Machine,
    references: &[Reference],
) -> String {
    let mut s = format!(
        "ferry bench secureboost — {}, {} trees, depth {}, {} bins, lr {}, {}-{}, guest + host as two processes over TLS\n",
        run.data, run.trees, run.depth, run.bins, run.learning_rate, run.scheme, run.key_bits
    );
    s.push_str(&machine.render());
    s.push('\n');
    s.push_str(&run.arithmetic.render());
    s.push('\n');
    if run.key_bits < SECURE_KEY_BITS {
        s.push_str(&insecure_key_warning(run.key_bits));
        s.push('\n');
    }
    s.push('\n');
    s.push_str(&parties_table(&run.outputs));
    s.push('\n');
    s.push_str(&format!(
        "fit time            {:.2} s  ({:.2} s per tree)\n",
        run.fit_seconds,
        run.seconds_per_tree()
    ));
    s.push_str(&format!(
        "{:<20}{}\n",
        run.metric_name,
        run.metric.map(|a| format!("{a:.5}")).unwrap_or("-".into())
    ));
    s.push_str(&format!(
        "crypto floor        {:.2} s {} ({:.2} core-s) from {} encryptions, {} decryptions, {} additions and shift bits, {} re-randomisations at {:.0}/{:.0}/{:.0}/{:.0} per s per core ({}-{}, measured in this run); fit/floor = {:.2}\n",
        run.floor.wall_seconds,
        run.floor.on_cores(),
        run.floor.core_seconds,
        run.ops.encryptions,
        run.ops.decryptions,
        run.ops.additions + run.ops.subtractions + run.ops.shift_bits,
        run.ops.rerandomizations,
        run.rates.owner_encrypt,
        run.rates.decrypt,
        run.rates.add,
        run.rates.encrypt,
        run.scheme,
        run.key_bits,
        run.fit_seconds / run.floor.wall_seconds
    ));
    push_references(&mut s, references);
    s
}

pub fn secureboost_json(
    run: &SecureBoostRun,
    machine: &Machine,
    references: &[Reference],
) -> Value {
    json!({
        "machine": machine, "arithmetic": run.arithmetic,
        "data": run.data, "scheme": run.scheme, "key_bits": run.key_bits,
        "insecure_key_size": run.key_bits < SECURE_KEY_BITS,
        "fit_seconds": run.fit_seconds,
        "objective": run.objective, "seconds_per_tree": run.seconds_per_tree(),
        "train_metric_name": run.metric_name, "train_metric": run.metric,
        "train_auc": if run.metric_name == "train AUC" { run.metric } else { None },
        "he_operations": run.ops, "rates": run.rates,
        "crypto_floor": run.floor,
        "crypto_floor_core_seconds": run.floor.core_seconds,
        "crypto_floor_wall_seconds": run.floor.wall_seconds,
        "outputs": run.outputs,
        "reference": reference::json(references),
    })
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
    let machine = Machine::detect();
    let (data, label) = vertical_data(&args.dataset, "y", None, args.synthetic)?;
    let mut params = serde_json::to_value(ferry_linear::LinearParams::default())?;
    params["max_epochs"] = json!(args.epochs);
    params["batch_size"] = json!(args.batch);
    params["optimizer"] = json!({"method": "sgd", "lr": args.learning_rate});
    params["he"]["scheme"] = json!(args.scheme);
    params["he"]["key_bits"] = json!(args.key_bits);
    let insecure_keys = args.key_bits < SECURE_KEY_BITS;
    // Check the parameters here, with a clear message and the permission the parties will
    // get, before starting processes.
    let (mut lp, _): (ferry_linear::LinearParams, bool) =
        algorithm_params(&json!({"params": params}))?;
    lp.he.allow_insecure_key_bits = insecure_keys;
    lp.validate()?;
    if insecure_keys {
        eprintln!("{}", insecure_key_warning(args.key_bits));
    }
    let roster = if args.arbiter {
        "bank:guest,telco:host,coordinator:arbiter"
    } else {
        "bank:guest,telco:host"
    };
    let outputs = run_launch(
        roster,
        "bench-hetero-lr",
        bench_params(data, &params, insecure_keys)?,
        &args.work_dir,
        3600,
    )?;
    let guest = &outputs[0].result;
    let run = LinearRun {
        data: label,
        epochs: args.epochs,
        batch: args.batch,
        learning_rate: args.learning_rate,
        scheme: lp.he.scheme.name(),
        key_bits: args.key_bits,
        arbiter: args.arbiter,
        fit_seconds: guest["fit_seconds"].as_f64().unwrap_or(f64::NAN),
        train_auc: guest["train_auc"].as_f64(),
        arithmetic: Arithmetic::for_key(lp.he.scheme, args.key_bits),
        outputs,
    };
    let references = if args.synthetic.is_some() {
        Vec::new()
    } else {
        reference::hetero_lr(&args.dataset, args.epochs, args.batch)
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&hetero_lr_json(&run, &machine, &references))?
        );
    } else {
        print!("{}", render_hetero_lr(&run, &machine, &references));
    }
    Ok(())
}

/// What one `ferry bench hetero-lr` run measured.
pub struct LinearRun {
    pub data: String,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub scheme: &'static str,
    pub key_bits: u32,
    pub arbiter: bool,
    pub fit_seconds: f64,
    pub train_auc: Option<f64>,
    pub arithmetic: Arithmetic,
    pub outputs: Vec<PartyOutput>,
}

pub fn render_hetero_lr(run: &LinearRun, machine: &Machine, references: &[Reference]) -> String {
    let mut s = format!(
        "ferry bench hetero-lr — {}, {} epochs, batch {}, SGD lr {}, {}-{}, {} over TLS\n",
        run.data,
        run.epochs,
        run.batch,
        run.learning_rate,
        run.scheme,
        run.key_bits,
        if run.arbiter {
            "guest + host + arbiter as three processes"
        } else {
            "guest + host as two processes"
        }
    );
    s.push_str(&machine.render());
    s.push('\n');
    s.push_str(&run.arithmetic.render());
    s.push('\n');
    if run.key_bits < SECURE_KEY_BITS {
        s.push_str(&insecure_key_warning(run.key_bits));
        s.push('\n');
    }
    s.push('\n');
    s.push_str(&parties_table(&run.outputs));
    s.push('\n');
    s.push_str(&format!("fit time    {:.2} s\n", run.fit_seconds));
    s.push_str(&format!(
        "train AUC   {}\n",
        run.train_auc
            .map(|a| format!("{a:.4}"))
            .unwrap_or("-".into())
    ));
    push_references(&mut s, references);
    s
}

pub fn hetero_lr_json(run: &LinearRun, machine: &Machine, references: &[Reference]) -> Value {
    json!({
        "machine": machine, "arithmetic": run.arithmetic,
        "data": run.data, "arbiter": run.arbiter, "scheme": run.scheme, "key_bits": run.key_bits,
        "insecure_key_size": run.key_bits < SECURE_KEY_BITS,
        "epochs": run.epochs, "batch_size": run.batch,
        "fit_seconds": run.fit_seconds, "train_auc": run.train_auc, "outputs": run.outputs,
        "reference": reference::json(references),
    })
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
    let machine = Machine::detect();
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
                &json!({"machine": machine, "model": args.model, "secure_aggregation": args.secure_aggregation, "sparsify": args.sparsify, "rounds_per_second": rounds as f64 / secs, "bytes_per_round": bytes_per_round, "outputs": outputs})
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
    println!("{}", machine.render());
    println!();
    print!("{}", parties_table(&outputs));
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

    // -----------------------------------------------------------------------------------
    // Report rendering from synthetic results.

    use crate::bench::machine::FEATURES;

    fn machine(cores: usize) -> Machine {
        Machine {
            cpu_model: "Synthetic CPU 9000".into(),
            cores,
            threads_per_process: cores,
            features: FEATURES.iter().map(|&f| (f, f != "avx512ifma")).collect(),
            load_average: Some(0.5),
        }
    }

    fn party(name: &str, role: &str) -> PartyOutput {
        PartyOutput {
            party: name.into(),
            role: role.into(),
            ok: true,
            result: Value::Null,
            error: None,
            wall_secs: 3.5,
            peak_rss_kib: 40_960,
            bytes_sent: 12_000_000,
            bytes_received: 11_000_000,
            messages_sent: 40,
            rounds: 0,
        }
    }

    fn psi_run(cores: usize) -> (PsiRun, Machine) {
        let m = machine(cores);
        let workers = parallel_workers(m.cores, 2, m.threads_per_process);
        let run = PsiRun {
            size: 100_000,
            overlap: 0.5,
            parties: 2,
            wall_seconds: 8.25,
            protocol_seconds: 7.25,
            intersection: json!(50_000),
            expected: json!(50_000),
            bytes_exchanged: 23_000_000,
            blind_rate: 30_000.0,
            reblind_rate: 40_000.0,
            floor: psi_floor(100_000, 2, 30_000.0, 40_000.0, workers),
            outputs: vec![party("bank", "guest"), party("telco", "host")],
            suite: ferry_crypto::Suite::Default,
            baseline: None,
        };
        (run, m)
    }

    #[test]
    fn a_gm_psi_report_names_sm2_and_its_ristretto_baseline() {
        let (mut run, m) = psi_run(2);
        assert!(render_psi(&run, &m, &[]).contains("ECDH-PSI on Ristretto255, 2 parties"));
        assert!(!render_psi(&run, &m, &[]).contains("baseline"));
        run.suite = ferry_crypto::Suite::Gm;
        run.baseline = Some(PsiBaseline {
            wall_seconds: 3.0,
            protocol_seconds: 2.9,
            bytes_exchanged: 22_000_000,
        });
        let text = render_psi(&run, &m, &[]);
        assert!(
            text.contains("ECDH-PSI on SM2 with SM3 (suite gm), 2 parties"),
            "{text}"
        );
        assert!(
            text.contains("Ristretto255 ECDH-PSI on the same IDs, this invocation: 2.90 s protocol, 22.0 MB; SM2 takes 2.50x its time"),
            "{text}"
        );
        let j = psi_json(&run, &m, &[]);
        assert_eq!(j["suite"], "gm");
        assert_eq!(j["baseline"]["protocol_seconds"], 2.9);
    }

    fn secureboost_run(cores: usize, key_bits: u32) -> (SecureBoostRun, Machine) {
        let m = machine(cores);
        let ops = ferry_secureboost::HeOpCounts {
            encryptions: 300_000,
            decryptions: 2_000,
            additions: 9_000_000,
            shift_bits: 1_000_000,
            rerandomizations: 3_000,
            ..Default::default()
        };
        let rates = ferry_secureboost::CryptoRates {
            encrypt: 20_000.0,
            owner_encrypt: 25_000.0,
            decrypt: 1_000.0,
            add: 500_000.0,
        };
        let workers = parallel_workers(m.cores, 2, m.threads_per_process);
        let run = SecureBoostRun {
            data: "default_credit".into(),
            trees: 10,
            depth: 3,
            bins: 32,
            learning_rate: 0.3,
            scheme: "paillier",
            key_bits,
            objective: json!({"kind": "binary_logistic"}),
            fit_seconds: 33.3,
            trees_built: 10,
            metric_name: "train AUC",
            metric: Some(0.78173),
            ops,
            rates,
            floor: Floor::new(ops.floor_seconds(&rates), workers),
            arithmetic: Arithmetic::for_key(ferry_crypto::SchemeKind::Paillier, key_bits),
            outputs: vec![party("bank", "guest"), party("telco", "host")],
        };
        (run, m)
    }

    fn lr_run(key_bits: u32) -> (LinearRun, Machine) {
        let run = LinearRun {
            data: "default_credit".into(),
            epochs: 3,
            batch: 5000,
            learning_rate: 0.15,
            scheme: "paillier",
            key_bits,
            arbiter: false,
            fit_seconds: 4.75,
            train_auc: Some(0.7049),
            arithmetic: Arithmetic::for_key(ferry_crypto::SchemeKind::Paillier, key_bits),
            outputs: vec![party("bank", "guest"), party("telco", "host")],
        };
        (run, machine(4))
    }

    /// (a) every figure not measured in the run is in the reference block, each line with its
    /// source, date and machine; (b) no ratio is formed with one of them.
    fn assert_references_are_annotated_and_unratioed(
        text: &str,
        measured_seconds: f64,
        refs: &[Reference],
    ) {
        assert!(!refs.is_empty(), "the test needs reference figures");
        let (measured, block) = text
            .split_once(reference::HEADING)
            .unwrap_or_else(|| panic!("no reference heading in\n{text}"));
        for r in refs {
            let line = r.render();
            assert!(block.contains(&line), "missing {line} in\n{text}");
            for part in [r.source, r.date, r.machine] {
                assert!(line.contains(part), "{line}");
            }
            let shown = line
                .split(": ")
                .nth(1)
                .unwrap()
                .split("  [")
                .next()
                .unwrap();
            assert!(
                !measured.contains(shown),
                "reference figure '{shown}' among the measured ones:\n{measured}"
            );
            for ratio in [measured_seconds / r.seconds, r.seconds / measured_seconds] {
                for shown in [
                    format!("{ratio:.0}x"),
                    format!("{ratio:.1}x"),
                    format!("{ratio:.2}x"),
                    format!("{ratio:.0}×"),
                    format!("{ratio:.1}×"),
                    format!("{ratio:.2}×"),
                    format!("= {ratio:.2}"),
                ] {
                    assert!(!text.contains(&shown), "ratio {shown} in\n{text}");
                }
            }
        }
        for line in block.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                line.contains("source:") && line.contains("date:") && line.contains("machine:"),
                "unannotated line in the reference block: {line}"
            );
        }
        for word in ["faster", "same machine", "peers ("] {
            assert!(!text.contains(word), "'{word}' in\n{text}");
        }
    }

    fn assert_json_keeps_references_apart(v: &Value, refs: &[Reference]) {
        let figures = v["reference"]["figures"].as_array().unwrap();
        assert_eq!(figures.len(), refs.len());
        for f in figures {
            for k in ["source", "date", "machine"] {
                assert!(f[k].as_str().is_some_and(|s| !s.is_empty()), "{f}");
            }
        }
        // No measured field holds a reference figure, and nothing names a peer ratio.
        let mut measured = v.clone();
        measured.as_object_mut().unwrap().remove("reference");
        fn numbers(v: &Value, out: &mut Vec<f64>) {
            match v {
                Value::Number(n) => out.extend(n.as_f64()),
                Value::Array(a) => a.iter().for_each(|x| numbers(x, out)),
                Value::Object(o) => o.values().for_each(|x| numbers(x, out)),
                _ => {}
            }
        }
        let mut measured_numbers = Vec::new();
        numbers(&measured, &mut measured_numbers);
        for r in refs {
            assert!(
                !measured_numbers.contains(&r.seconds),
                "reference figure {} among the measured fields",
                r.seconds
            );
        }
        let text = measured.to_string();
        for word in ["faster", "speedup", "peer"] {
            assert!(!text.contains(word), "{word} in {text}");
        }
    }

    #[test]
    fn psi_report_prints_the_machine_and_keeps_references_apart() {
        let (run, m) = psi_run(2);
        let refs = reference::psi(2);
        let text = render_psi(&run, &m, &refs);
        assert!(text.contains("Synthetic CPU 9000, 2 cores"), "{text}");
        assert!(text.contains("absent: avx512ifma"), "{text}");
        assert!(text.contains("avx2 backend"), "{text}");
        assert_references_are_annotated_and_unratioed(&text, run.protocol_seconds, &refs);
        assert_json_keeps_references_apart(&psi_json(&run, &m, &refs), &refs);
        // Other party counts have no reference figures, and then no block at all.
        let text = render_psi(&run, &m, &reference::psi(3));
        assert!(!text.contains(reference::HEADING), "{text}");
    }

    #[test]
    fn kkrt_report_names_the_aes_backend_and_the_ratio_to_ecdh() {
        let m = machine(2);
        let mut run = KkrtRun {
            size: 1_000_000,
            overlap: 0.5,
            wall_seconds: 6.0,
            protocol_seconds: 5.0,
            intersection: json!(500_000),
            expected: json!(500_000),
            bytes_exchanged: 120_000_000,
            outputs: vec![party("bank", "guest"), party("telco", "host")],
            baseline: Some(PsiBaseline {
                wall_seconds: 61.0,
                protocol_seconds: 60.0,
                bytes_exchanged: 96_000_000,
            }),
        };
        let text = render_kkrt(&run, &m);
        assert!(text.contains("Synthetic CPU 9000, 2 cores"), "{text}");
        assert!(text.contains("aes         VAES, 512-bit"), "{text}");
        assert!(
            text.contains("60.00 s protocol time, 96.0 MB (measured in this run): KKRT is 12.0x faster with 1.25x the bytes"),
            "{text}"
        );
        let j = kkrt_json(&run, &m);
        assert_eq!(j["speedup_over_ecdh"], 12.0);
        assert_eq!(j["ecdh_baseline"]["bytes_exchanged"], 96_000_000);
        run.baseline = None;
        assert!(render_kkrt(&run, &m).contains("not run (--no-baseline)"));
        assert!(kkrt_json(&run, &m)["speedup_over_ecdh"].is_null());
    }

    #[test]
    fn the_psi_floor_scales_with_the_cores_used() {
        let (two, m2) = psi_run(2);
        let (eight, m8) = psi_run(8);
        // 2 × 2 × 1e5 group operations at 30k and 40k per core-second.
        let core_seconds = 200_000.0 / 30_000.0 + 200_000.0 / 40_000.0;
        assert!((two.floor.core_seconds - core_seconds).abs() < 1e-9);
        assert_eq!(two.floor.core_seconds, eight.floor.core_seconds);
        assert!((two.floor.wall_seconds - core_seconds / 2.0).abs() < 1e-9);
        assert!((eight.floor.wall_seconds - core_seconds / 8.0).abs() < 1e-9);
        let text = render_psi(&eight, &m8, &[]);
        assert!(text.contains("on 8 cores"), "{text}");
        assert!(
            text.contains(&format!("{:.2} s = 400000", core_seconds / 8.0)),
            "{text}"
        );
        assert!(!text.contains("on 2 cores"), "{text}");
        assert!(render_psi(&two, &m2, &[]).contains("on 2 cores"));
        // One core: the floor is all of the work; threads limited by RAYON_NUM_THREADS=1 in
        // each of 2 processes on 8 cores: 2 at once.
        assert_eq!(
            psi_floor(100_000, 2, 30_000.0, 40_000.0, 1).wall_seconds,
            core_seconds
        );
        assert_eq!(parallel_workers(8, 2, 1), 2);
    }

    #[test]
    fn secureboost_report_keeps_references_apart_and_its_floor_follows_the_cores() {
        let (run, m) = secureboost_run(2, 2048);
        let refs = reference::secureboost("default_credit", 10, 3);
        let text = render_secureboost(&run, &m, &refs);
        assert!(text.contains("Synthetic CPU 9000, 2 cores"), "{text}");
        assert!(text.contains("arithmetic"), "{text}");
        assert!(!text.contains("WARNING"), "{text}");
        assert_references_are_annotated_and_unratioed(&text, run.fit_seconds, &refs);
        assert_json_keeps_references_apart(&secureboost_json(&run, &m, &refs), &refs);

        let core_seconds = 300_000.0 / 25_000.0
            + 2_000.0 / 1_000.0
            + 10_000_000.0 / 500_000.0
            + 3_000.0 / 20_000.0;
        assert!((run.floor.core_seconds - core_seconds).abs() < 1e-9);
        for cores in [1, 2, 4, 16] {
            let (run, m) = secureboost_run(cores, 2048);
            assert!((run.floor.wall_seconds - core_seconds / cores as f64).abs() < 1e-9);
            let text = render_secureboost(&run, &m, &[]);
            let on = if cores == 1 {
                "on 1 core".to_string()
            } else {
                format!("on {cores} cores")
            };
            assert!(
                text.contains(&format!("{:.2} s {on}", core_seconds / cores as f64)),
                "{text}"
            );
            let v = secureboost_json(&run, &m, &[]);
            assert_eq!(v["crypto_floor"]["workers"], json!(cores));
        }
    }

    #[test]
    fn hetero_lr_report_keeps_references_apart_and_warns_about_small_keys() {
        let (run, m) = lr_run(2048);
        let refs = reference::hetero_lr("default_credit", 3, 5000);
        let text = render_hetero_lr(&run, &m, &refs);
        assert_references_are_annotated_and_unratioed(&text, run.fit_seconds, &refs);
        assert_json_keeps_references_apart(&hetero_lr_json(&run, &m, &refs), &refs);
        assert!(!text.contains("WARNING"), "{text}");

        let (run, m) = lr_run(1024);
        let text = render_hetero_lr(&run, &m, &[]);
        assert!(text.contains(&insecure_key_warning(1024)), "{text}");
        assert_eq!(
            hetero_lr_json(&run, &m, &[])["insecure_key_size"],
            json!(true)
        );
        let (run, m) = secureboost_run(2, 1024);
        assert!(render_secureboost(&run, &m, &[]).contains(&insecure_key_warning(1024)));
    }

    // -----------------------------------------------------------------------------------
    // The permission for small keys reaches the parties outside the algorithms' parameters.

    #[test]
    fn small_keys_are_allowed_in_code_not_through_the_algorithms_json() {
        let sb = ferry_secureboost::SecureBoostParams {
            he: ferry_crypto::HeSettings::insecure_for_tests(
                ferry_crypto::SchemeKind::Paillier,
                1024,
            ),
            ..Default::default()
        };
        let sent = bench_params(json!({}), &sb, true).unwrap();
        assert!(
            sent["params"]["he"]
                .get("allow_insecure_key_bits")
                .is_none(),
            "{sent}"
        );
        assert_eq!(sent["params"]["he"]["key_bits"], json!(1024));
        assert_eq!(sent[INSECURE_KEYS], json!(true));
        let (mut got, insecure): (ferry_secureboost::SecureBoostParams, bool) =
            algorithm_params(&sent).unwrap();
        assert!(insecure);
        assert!(
            got.validate().is_err(),
            "a 1024-bit key needs the permission"
        );
        got.he.allow_insecure_key_bits = insecure;
        got.validate().unwrap();

        let mut lr = serde_json::to_value(ferry_linear::LinearParams::default()).unwrap();
        lr["he"]["key_bits"] = json!(1024);
        // Even when the serialised parameters carry the old field, it is not sent.
        lr["he"]["allow_insecure_key_bits"] = json!(true);
        let sent = bench_params(json!({}), &lr, true).unwrap();
        assert!(
            sent["params"]["he"]
                .get("allow_insecure_key_bits")
                .is_none(),
            "{sent}"
        );
        let (mut got, insecure): (ferry_linear::LinearParams, bool) =
            algorithm_params(&sent).unwrap();
        assert!(insecure);
        assert!(got.validate().is_err());
        got.he.allow_insecure_key_bits = insecure;
        got.validate().unwrap();

        // Without the bench's permission a small key stays refused.
        let sent = bench_params(json!({}), &lr, false).unwrap();
        let (got, insecure): (ferry_linear::LinearParams, bool) = algorithm_params(&sent).unwrap();
        assert!(!insecure && got.validate().is_err());
    }
}
