//! `ferry bench woe`: federated binning and WOE/IV of every feature of a vertical dataset
//! (default_credit: the guest's 13 columns and labels, the host's 10 columns, 30,000 rows),
//! guest and host in one process over a [`LocalCluster`].
//!
//! What runs, as in the scorecard workflow ([`ferry_feature::woe`]):
//! * binning, local to each party: the guest fits optimal (monotonic) bins with its labels;
//!   the host fits fine quantile bins without labels (`--binning quantile`: both parties fit
//!   quantile bins);
//! * [`federated_woe`]: the guest generates a key pair, encrypts every label and sends the
//!   ciphertexts in chunks; the host adds them per (feature, bin), packs, re-randomises and
//!   returns the sums; the guest decrypts and computes WOE/IV of every feature;
//! * [`federated_merge`] (optimal binning): the guest turns the host's fine-bin counts into
//!   merge plans, the host applies them.
//!
//! Phases are the guest's [`ferry_feature::woe::WoeReport`] (key generation, label
//! encryption, decryption) and times taken here around each step. The host adds each chunk's
//! ciphertexts while the guest encrypts the next ones, so "host sums" is the part of the
//! guest's protocol time that is none of the guest's own phases: the host's additions after
//! the last chunk, packing, re-randomisation and the messages.
//!
//! Baselines measured in the same run: the centralised twin (the same binning functions and
//! WOE/IV with every column and the labels in one place, which also checks that the federated
//! IVs are exact), and the crypto floor (the protocol's encryptions, ciphertext additions and
//! decryptions at single-core rates measured now, spread over the cores). The target,
//! at most 10 s for default_credit with Paillier-2048, is printed as a target, never asserted.

use super::machine::{Arithmetic, Floor, Machine, insecure_key_warning, parallel_workers};
use super::median_rate;
use anyhow::{Context as _, bail};
use clap::Args;
use ferry_context::{Context, LocalCluster, Role, Roster};
use ferry_crypto::packing::PackingLayout;
use ferry_crypto::rug::Integer;
use ferry_crypto::{
    HePublicKey, HeSecretKey, HeSettings, OuSecretKey, PaillierSecretKey, SchemeKind,
};
use ferry_data::{Dataset, DatasetSpec, LabelKind};
use ferry_feature::binning::{BinMethod, BinningParams, FeatureBinning, fit_numeric};
use ferry_feature::woe::{
    BinnedFeature, FeatureWoe, MergeOutcome, WoeOutcome, WoeParams, WoeReport, bin_stats,
    federated_merge, federated_woe, synthetic, woe_iv,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

/// The speed target for default_credit with Paillier-2048, on the machine it runs on.
pub const TARGET_SECONDS: f64 = 10.0;

/// Keys below this many bits are only for benchmarks and tests.
const SECURE_KEY_BITS: u32 = 2048;

const GUEST: &str = "bank";
const HOST: &str = "telco";

#[derive(Args)]
pub struct WoeBenchArgs {
    /// Folder holding NAME_hetero_guest.csv (with the label `y`) and NAME_hetero_host.csv.
    /// Default: $FERRY_SHARED_DATASETS, else ../shared/datasets (as the other benchmarks).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The vertical dataset in --data-dir.
    #[arg(long, default_value = "default_credit")]
    dataset: String,
    /// Use only the first ROWS rows both parties hold (default: all of them).
    #[arg(long)]
    rows: Option<usize>,
    /// Seeded synthetic data of this many rows (guest 13 features, host 10) instead of a file.
    #[arg(long, conflicts_with_all = ["data_dir", "rows"])]
    synthetic: Option<usize>,
    /// optimal (guest with its labels, host by merge plans) or quantile.
    #[arg(long, default_value = "optimal")]
    binning: String,
    /// Most value bins per feature.
    #[arg(long, default_value_t = 10)]
    max_bins: usize,
    /// paillier or ou.
    #[arg(long, default_value = "paillier")]
    scheme: String,
    #[arg(long, default_value_t = 2048)]
    key_bits: u32,
    #[arg(long)]
    json: bool,
}

/// `$FERRY_SHARED_DATASETS`, else `../shared/datasets`: where every benchmark looks.
fn default_data_dir() -> PathBuf {
    std::env::var_os("FERRY_SHARED_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/datasets"))
}

/// The aligned columns of both parties.
struct Columns {
    name: String,
    labels: Vec<f64>,
    guest: Vec<(String, Vec<f64>)>,
    host: Vec<(String, Vec<f64>)>,
}

fn columns_of(d: &Dataset) -> Vec<(String, Vec<f64>)> {
    (0..d.n_features())
        .map(|j| (d.feature_names[j].clone(), d.column(j)))
        .collect()
}

/// Reads both files and keeps the rows whose id both hold (sorted by id, the first `rows`).
fn load(dir: &std::path::Path, dataset: &str, rows: Option<usize>) -> anyhow::Result<Columns> {
    let file = |suffix: &str| -> anyhow::Result<PathBuf> {
        let p = dir.join(format!("{dataset}_hetero_{suffix}.csv"));
        if !p.is_file() {
            bail!(
                "{} not found: pass --data-dir, set FERRY_SHARED_DATASETS to the datasets \
                 folder, or use --synthetic ROWS",
                p.display()
            );
        }
        Ok(p)
    };
    let guest = Dataset::read_csv(
        file("guest")?,
        &DatasetSpec::with_label("y", LabelKind::Binary),
    )?;
    let host = Dataset::read_csv(file("host")?, &DatasetSpec::features_only())?;
    let host_ids: HashSet<&str> = host.ids.iter().map(String::as_str).collect();
    let mut common: Vec<String> = guest
        .ids
        .iter()
        .filter(|id| host_ids.contains(id.as_str()))
        .cloned()
        .collect();
    common.sort();
    if let Some(n) = rows {
        if n == 0 || n > common.len() {
            bail!(
                "--rows {n}: the parties hold {} common ids; ask for 1 to {}",
                common.len(),
                common.len()
            );
        }
        common.truncate(n);
    }
    let guest = guest.align_to(&common).map_err(anyhow::Error::msg)?;
    let host = host.align_to(&common).map_err(anyhow::Error::msg)?;
    Ok(Columns {
        name: dataset.to_string(),
        labels: guest
            .labels()
            .context("the guest's file has no labels")?
            .to_vec(),
        guest: columns_of(&guest),
        host: columns_of(&host),
    })
}

/// What the federated run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Phases {
    pub binning_guest_seconds: f64,
    pub binning_host_seconds: f64,
    pub keygen_seconds: f64,
    pub encrypt_seconds: f64,
    /// The guest's protocol time outside its own phases (see the module docs).
    pub host_sums_seconds: f64,
    pub decrypt_seconds: f64,
    pub merge_seconds: f64,
}

/// One party's part of the run.
enum PartyRun {
    Guest {
        binning_seconds: f64,
        merge_seconds: f64,
        report: WoeReport,
        /// Every feature's final WOE/IV: the guest's, then the host's.
        features: Vec<FeatureWoe>,
    },
    Host {
        binning_seconds: f64,
        /// Wall time of the host's federated_woe call (waits for the guest included).
        woe_seconds: f64,
        /// The host's final binnings.
        binnings: Vec<FeatureBinning>,
        /// Bins per feature in the WOE protocol (the fine bins when binning is optimal).
        protocol_bins: Vec<usize>,
    },
}

fn fine(binning: &BinningParams) -> BinningParams {
    BinningParams {
        method: BinMethod::Quantile,
        max_bins: binning.fine_bins,
        ..binning.clone()
    }
}

fn party(
    ctx: &Context,
    data: &Columns,
    binning: &BinningParams,
    params: &WoeParams,
) -> Result<PartyRun, String> {
    let optimal = binning.method == BinMethod::Optimal;
    let guest = ctx.role() == Role::Guest;
    let (cols, labels, bin_params) = if guest {
        (&data.guest, Some(data.labels.as_slice()), binning.clone())
    } else if optimal {
        (&data.host, None, fine(binning))
    } else {
        (&data.host, None, binning.clone())
    };
    let t = Instant::now();
    let binnings = cols
        .iter()
        .map(|(name, v)| fit_numeric(name, v, labels, &bin_params))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let binned: Vec<BinnedFeature> = binnings
        .iter()
        .zip(cols)
        .map(|(b, (_, v))| BinnedFeature::numeric(b, v))
        .collect();
    let binning_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let woe = federated_woe(ctx, &binned, labels, params).map_err(|e| e.to_string())?;
    let woe_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let merged = if optimal {
        let host_fine = if guest { &[][..] } else { &binnings[..] };
        Some(federated_merge(ctx, &woe, host_fine, binning, params).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let merge_seconds = t.elapsed().as_secs_f64();
    match (woe, merged) {
        (WoeOutcome::Guest(g), merged) => {
            let features = match merged {
                Some(MergeOutcome::Guest(host)) => {
                    let mut f = g.features[..binned.len()].to_vec();
                    f.extend(host);
                    f
                }
                None => g.features,
                Some(MergeOutcome::Host(_)) => return Err("a host's merge at the guest".into()),
            };
            Ok(PartyRun::Guest {
                binning_seconds,
                merge_seconds,
                report: g.report,
                features,
            })
        }
        (WoeOutcome::Host(_), merged) => Ok(PartyRun::Host {
            binning_seconds,
            woe_seconds,
            protocol_bins: binned.iter().map(|f| f.n_bins).collect(),
            binnings: match merged {
                Some(MergeOutcome::Host(m)) => m.into_iter().map(|m| m.binning).collect(),
                None => binnings,
                Some(MergeOutcome::Guest(_)) => return Err("the guest's merge at a host".into()),
            },
        }),
    }
}

/// The federated run's results.
struct Federated {
    wall_seconds: f64,
    phases: Phases,
    report: WoeReport,
    host_woe_seconds: f64,
    features: Vec<FeatureWoe>,
    host_value_bins: Vec<usize>,
    host_protocol_bins: Vec<usize>,
}

fn federated(data: &Columns, binning: &BinningParams, he: HeSettings) -> anyhow::Result<Federated> {
    let params = WoeParams {
        he,
        ..WoeParams::default()
    };
    let start = Instant::now();
    let outcomes = LocalCluster::new(Roster::of(&[(GUEST, Role::Guest), (HOST, Role::Host)]))
        .run(|ctx| party(&ctx, data, binning, &params));
    let wall_seconds = start.elapsed().as_secs_f64();
    let mut phases = Phases::default();
    let (mut guest, mut host) = (None, None);
    for o in outcomes {
        match o.result {
            Ok(PartyRun::Guest {
                binning_seconds,
                merge_seconds,
                report,
                features,
            }) => {
                phases.binning_guest_seconds = binning_seconds;
                phases.merge_seconds = merge_seconds;
                guest = Some((report, features));
            }
            Ok(PartyRun::Host {
                binning_seconds,
                woe_seconds,
                binnings,
                protocol_bins,
            }) => {
                phases.binning_host_seconds = binning_seconds;
                host = Some((woe_seconds, binnings, protocol_bins));
            }
            Err(e) => bail!("{}: {e}", o.party),
        }
    }
    let ((report, features), (host_woe_seconds, host_binnings, host_protocol_bins)) =
        guest.zip(host).context("a party returned no result")?;
    phases.keygen_seconds = report.keygen_seconds;
    phases.encrypt_seconds = report.encrypt_seconds;
    phases.decrypt_seconds = report.decrypt_seconds;
    phases.host_sums_seconds = (report.total_seconds
        - report.keygen_seconds
        - report.encrypt_seconds
        - report.decrypt_seconds)
        .max(0.0);
    Ok(Federated {
        wall_seconds,
        phases,
        report,
        host_woe_seconds,
        features,
        host_value_bins: host_binnings.iter().map(|b| b.n_value_bins()).collect(),
        host_protocol_bins,
    })
}

/// The centralised twin: every column binned with the labels in hand (optimal bins of a host
/// column equal the ones its merge plans give), then WOE/IV. Returns IVs in the federated
/// order (guest's columns, then the host's).
fn centralised(data: &Columns, binning: &BinningParams) -> anyhow::Result<Vec<f64>> {
    data.guest
        .iter()
        .chain(&data.host)
        .map(|(name, v)| {
            let b = fit_numeric(name, v, Some(&data.labels), binning)?;
            let stats = bin_stats(&b.bin_numbers(v), &data.labels, b.n_bins())?;
            Ok(woe_iv(name, "pooled", &stats, &[])?.iv)
        })
        .collect()
}

/// Single-core rates of the operations the protocol spends its time in.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Rates {
    /// Encryptions by the key owner per second (the guest encrypts its labels so).
    pub encrypt: f64,
    pub add: f64,
    pub decrypt: f64,
}

/// The rates, and the plaintext bits of the scheme at this key size (what the host packs its
/// counts into).
fn rates<S: HeSecretKey>(key_bits: u32) -> anyhow::Result<(Rates, u32)> {
    let mut rng = ChaCha20Rng::seed_from_u64(2048);
    let sk = S::generate(key_bits, &mut rng)?;
    let pk = sk.public();
    let one = Integer::from(1);
    let c = sk.encrypt(&one, &mut rng)?;
    let mut acc = c.clone();
    let budget = 0.3;
    let rates = Rates {
        encrypt: median_rate(3, budget, || {
            std::hint::black_box(sk.encrypt(&one, &mut rng).ok());
        }),
        add: median_rate(3, budget, || pk.add_assign(&mut acc, &c)),
        decrypt: median_rate(3, budget, || {
            std::hint::black_box(sk.decrypt(&c));
        }),
    };
    Ok((rates, pk.plaintext_bits()))
}

/// The homomorphic operations of one run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Operations {
    pub encryptions: u64,
    pub additions: u64,
    pub decryptions: u64,
}

impl Operations {
    fn core_seconds(&self, r: &Rates) -> f64 {
        self.encryptions as f64 / r.encrypt
            + self.additions as f64 / r.add
            + self.decryptions as f64 / r.decrypt
    }
}

/// Labels encrypted once; each host feature adds one ciphertext per row; the guest decrypts
/// the packed bin sums (the host's bins, several counts per plaintext).
fn operations(rows: usize, host_bins: &[usize], plaintext_bits: u32) -> Operations {
    let count_bits = (64 - (rows as u64).leading_zeros()).max(1);
    let slots = PackingLayout::new(plaintext_bits, count_bits, 1)
        .map(|l| l.slots())
        .unwrap_or(1)
        .max(1);
    let total_bins: usize = host_bins.iter().sum();
    Operations {
        encryptions: rows as u64,
        additions: (rows * host_bins.len()) as u64,
        decryptions: total_bins.div_ceil(slots) as u64,
    }
}

/// Everything one `ferry bench woe` run measured.
pub struct WoeRun {
    pub data: String,
    pub rows: usize,
    pub guest_features: usize,
    pub host_features: usize,
    pub binning: BinningParams,
    pub scheme: &'static str,
    pub key_bits: u32,
    pub wall_seconds: f64,
    pub phases: Phases,
    pub report: WoeReport,
    pub host_woe_seconds: f64,
    pub host_value_bins: Vec<usize>,
    pub central_seconds: f64,
    pub max_iv_difference: f64,
    pub operations: Operations,
    pub rates: Rates,
    pub floor: Floor,
    pub iv: Vec<(String, f64)>,
    pub arithmetic: Arithmetic,
}

impl WoeRun {
    fn ratio_to_central(&self) -> f64 {
        self.wall_seconds / self.central_seconds
    }

    fn target_met(&self) -> bool {
        self.wall_seconds <= TARGET_SECONDS
    }

    fn binning_text(&self) -> String {
        match self.binning.method {
            BinMethod::Optimal => format!(
                "optimal bins (at most {}; the host's from {} fine quantile bins by merge plans)",
                self.binning.max_bins, self.binning.fine_bins
            ),
            _ => format!("quantile bins (at most {})", self.binning.max_bins),
        }
    }
}

pub fn run(args: WoeBenchArgs) -> anyhow::Result<()> {
    let machine = Machine::detect();
    let scheme: SchemeKind = args.scheme.parse().map_err(anyhow::Error::msg)?;
    let method = match args.binning.as_str() {
        "optimal" => BinMethod::Optimal,
        "quantile" => BinMethod::Quantile,
        other => bail!("unknown binning '{other}' (optimal or quantile)"),
    };
    let defaults = BinningParams::default();
    let binning = BinningParams {
        method,
        max_bins: args.max_bins,
        fine_bins: defaults.fine_bins.max(args.max_bins),
        ..defaults
    };
    binning.validate().map_err(anyhow::Error::msg)?;
    let insecure_keys = args.key_bits < SECURE_KEY_BITS;
    let he = HeSettings {
        scheme,
        key_bits: args.key_bits,
        allow_insecure_key_bits: insecure_keys,
    };
    he.validate()
        .map_err(|e| anyhow::anyhow!("--key-bits: {e}"))?;
    if insecure_keys {
        eprintln!("{}", insecure_key_warning(args.key_bits));
    }
    let log = |msg: &str| {
        if !args.json {
            eprintln!("{msg}");
        }
    };
    let data = match args.synthetic {
        Some(rows) => {
            let s = synthetic(rows, 13, &[10], 7);
            Columns {
                name: "synthetic, seed 7".to_string(),
                labels: s.labels,
                guest: s.guest,
                host: s.hosts.into_iter().next().unwrap_or_default(),
            }
        }
        None => load(
            &args.data_dir.clone().unwrap_or_else(default_data_dir),
            &args.dataset,
            args.rows,
        )?,
    };
    let rows = data.labels.len();
    log(&format!(
        "federated binning and WOE/IV of {} rows, {} + {} features, {}-{}, in-process...",
        rows,
        data.guest.len(),
        data.host.len(),
        scheme.name(),
        args.key_bits
    ));
    let fed = federated(&data, &binning, he)?;

    log("centralised twin (same bins, same WOE/IV, labels in one place)...");
    let mut central = Vec::new();
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        central = centralised(&data, &binning)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let central_seconds = times[times.len() / 2];
    if central.len() != fed.features.len() {
        bail!(
            "the federated run reported {} features, the centralised one {}",
            fed.features.len(),
            central.len()
        );
    }
    let max_iv_difference = fed
        .features
        .iter()
        .zip(&central)
        .map(|(f, c)| (f.iv - c).abs())
        .fold(0.0, f64::max);

    log(&format!(
        "measuring {}-{} rates for the crypto floor...",
        scheme.name(),
        args.key_bits
    ));
    let (rates, plaintext_bits) = match scheme {
        SchemeKind::Paillier => rates::<PaillierSecretKey>(args.key_bits)?,
        SchemeKind::OkamotoUchiyama => rates::<OuSecretKey>(args.key_bits)?,
    };
    let operations = operations(rows, &fed.host_protocol_bins, plaintext_bits);
    let workers = parallel_workers(machine.cores, 1, machine.threads_per_process);
    let floor = Floor::new(operations.core_seconds(&rates), workers);
    let run = WoeRun {
        data: data.name.clone(),
        rows,
        guest_features: data.guest.len(),
        host_features: data.host.len(),
        binning,
        scheme: scheme.name(),
        key_bits: args.key_bits,
        wall_seconds: fed.wall_seconds,
        phases: fed.phases,
        report: fed.report,
        host_woe_seconds: fed.host_woe_seconds,
        host_value_bins: fed.host_value_bins,
        central_seconds,
        max_iv_difference,
        operations,
        rates,
        floor,
        iv: fed
            .features
            .iter()
            .map(|f| (f.feature.clone(), f.iv))
            .collect(),
        arithmetic: Arithmetic::for_key(scheme, args.key_bits),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&woe_json(&run, &machine))?
        );
    } else {
        print!("{}", render(&run, &machine));
    }
    if max_iv_difference > 1e-9 {
        bail!("the federated IVs differ from the centralised ones by up to {max_iv_difference}");
    }
    Ok(())
}

pub fn render(run: &WoeRun, machine: &Machine) -> String {
    let mut s = format!(
        "ferry bench woe — {}, {} aligned rows, {} guest + {} host features, {}, {}-{}, guest + \
         host in one process (LocalCluster)\n",
        run.data,
        run.rows,
        run.guest_features,
        run.host_features,
        run.binning_text(),
        run.scheme,
        run.key_bits
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
    let p = &run.phases;
    let host_binning = match run.binning.method {
        BinMethod::Optimal => "fine quantile",
        _ => "quantile",
    };
    let guest_binning = match run.binning.method {
        BinMethod::Optimal => "optimal",
        _ => "quantile",
    };
    let mut rows: Vec<(String, f64)> = vec![
        (
            format!("binning, guest ({guest_binning}, local)"),
            p.binning_guest_seconds,
        ),
        (
            format!("binning, host ({host_binning}, local)"),
            p.binning_host_seconds,
        ),
        ("key generation (guest)".into(), p.keygen_seconds),
        ("label encryption (guest)".into(), p.encrypt_seconds),
        ("host sums and transfer".into(), p.host_sums_seconds),
        ("decryption (guest)".into(), p.decrypt_seconds),
    ];
    if run.binning.method == BinMethod::Optimal {
        rows.push(("merge plans (optimal host bins)".into(), p.merge_seconds));
    }
    s.push_str(&format!("{:<40} {:>9}\n", "phase", "seconds"));
    for (name, secs) in rows {
        s.push_str(&format!("{name:<40} {secs:>9.3}\n"));
    }
    s.push_str(&format!(
        "{:<40} {:>9.3}   target ≤ {TARGET_SECONDS:.0} s on this machine (a goal, not \
         asserted): {}\n",
        "total wall",
        run.wall_seconds,
        if run.target_met() { "met" } else { "not met" }
    ));
    s.push_str(
        "  (host sums: the guest's protocol time outside its own phases; the host adds each \
         chunk while the guest encrypts the next)\n\n",
    );
    s.push_str(&format!(
        "host        federated_woe wall {:.2} s (waiting for the guest included); value bins \
         per feature {:?}\n",
        run.host_woe_seconds, run.host_value_bins
    ));
    s.push_str(&format!(
        "traffic     guest sent {:.1} MB, received {:.1} kB\n",
        run.report.bytes_sent as f64 / 1e6,
        run.report.bytes_received as f64 / 1e3
    ));
    s.push_str(&format!(
        "baseline    centralised binning + WOE/IV of the same columns (labels in one place), \
         measured in this run: {:.3} s; federated/centralised = {:.0}×\n",
        run.central_seconds,
        run.ratio_to_central()
    ));
    s.push_str(&format!(
        "crypto floor {:.2} s {} ({:.2} core-s) from {} encryptions, {} additions, {} \
         decryptions at {:.0}/{:.0}/{:.0} per s per core ({}-{}, measured in this run); \
         wall/floor = {:.2}\n",
        run.floor.wall_seconds,
        run.floor.on_cores(),
        run.floor.core_seconds,
        run.operations.encryptions,
        run.operations.additions,
        run.operations.decryptions,
        run.rates.encrypt,
        run.rates.add,
        run.rates.decrypt,
        run.scheme,
        run.key_bits,
        run.wall_seconds / run.floor.wall_seconds
    ));
    s.push_str(&format!(
        "check       federated IVs equal the centralised ones: largest difference {:.1e}\n",
        run.max_iv_difference
    ));
    let mut iv = run.iv.clone();
    iv.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = iv
        .iter()
        .take(5)
        .map(|(n, v)| format!("{n} {v:.3}"))
        .collect();
    s.push_str(&format!("highest IV  {}\n", top.join(", ")));
    s
}

pub fn woe_json(run: &WoeRun, machine: &Machine) -> Value {
    json!({
        "machine": machine, "arithmetic": run.arithmetic,
        "data": run.data, "rows": run.rows,
        "guest_features": run.guest_features, "host_features": run.host_features,
        "binning": run.binning,
        "scheme": run.scheme, "key_bits": run.key_bits,
        "insecure_key_size": run.key_bits < SECURE_KEY_BITS,
        "wall_seconds": run.wall_seconds,
        "phases": run.phases,
        "target_seconds": TARGET_SECONDS, "target_met": run.target_met(),
        "guest_report": run.report,
        "host_woe_seconds": run.host_woe_seconds,
        "host_value_bins": run.host_value_bins,
        "baseline": {
            "what": "centralised binning + WOE/IV of the same columns, measured in this run",
            "seconds": run.central_seconds,
            "ratio": run.ratio_to_central(),
        },
        "he_operations": run.operations, "rates": run.rates, "crypto_floor": run.floor,
        "max_iv_difference": run.max_iv_difference,
        "iv": run.iv.iter().map(|(f, v)| json!({"feature": f, "iv": v})).collect::<Vec<_>>(),
    })
}
