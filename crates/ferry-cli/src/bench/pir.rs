//! `ferry bench pir`: keyword PIR (issue 15) between a querier and a provider, each its own
//! `ferry run-party` process over loopback mutual TLS.
//!
//! The provider generates a seeded synthetic table (ids are decimal strings, values exactly
//! `--value-bytes` random bytes, both functions of the seed and the row number), builds it
//! ([`ProviderTable::build`]) and reports the preprocessing time; then it serves three
//! phases, and the querier, which generates the same rows on demand, checks every value it
//! gets back:
//!
//! 1. **first**: one session with one id, which downloads the hint;
//! 2. **online**: `--repeat` one-id sessions with the hint cached ([`query_with`] and a
//!    [`HintCache`]), alternately a present and an absent id; the median is the online figure;
//! 3. **batch**: one session with `--ids` ids, half present and half absent.
//!
//! Per phase: wall time at the querier (end to end), bytes up and down (messages as counted by
//! the context; TLS and HTTP/2 framing not included), hint bytes, the provider's process CPU
//! seconds (all its threads, transport included) per id, its OPRF and answer time. The
//! same-run baseline is one plain pass over as many bytes as the database holds, in memory, on
//! as many threads as the provider's pool, in the provider process before the build: a
//! memory-bandwidth floor for an answer, which reads the whole database once per
//! [`matrix::GROUP`] ids.
//!
//! The targets (10^6 rows of 64 bytes: preprocessing ≤ 60 s, one id online ≤ 1 s,
//! 1000 ids ≤ 60 s) are printed with ✓/✗ for that size only, as goals, never asserted.
//! Figures not measured in the run (Ferry's earlier in-process run) are printed apart, with
//! their source, date and machine, and no ratio is formed with them.
//!
//! Everything random (the table, the provider's OPRF key and bucket salt, the querier's choice
//! of ids and its LWE secrets) comes from `--seed`: this is a benchmark on synthetic data, and
//! a run can be repeated exactly.

use super::machine::Machine;
use super::reference::{self, Reference};
use crate::launch::PartyOutput;
use anyhow::{Context as _, bail, ensure};
use clap::Args;
use ferry_context::{Context, PartyId, Role};
use ferry_pir::{
    HintCache, PirParams, ProviderTable, QueryLimits, ServeLimits, TableLayout, matrix, query_with,
    serve,
};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Instant;

/// The protocol name the launcher runs (dispatched in `federated::run_protocol`).
pub const PROTOCOL: &str = "bench-pir";

/// The targets, for 10^6 rows of 64-byte values and a batch of 1000 ids.
const TARGET_ROWS: u64 = 1_000_000;
const TARGET_VALUE_BYTES: u32 = 64;
const TARGET_BATCH_IDS: usize = 1000;
const TARGET_PREPROCESSING_SECONDS: f64 = 60.0;
const TARGET_ONLINE_SECONDS: f64 = 1.0;
const TARGET_BATCH_SECONDS: f64 = 60.0;

/// The first generated id: ids are 11-digit decimal strings, like phone numbers.
const ID_BASE: u64 = 13_000_000_000;

/// Separate random streams derived from `--seed`.
const STREAM_VALUES: u64 = 0x7661_6c75_6573; // "values"
const STREAM_PROVIDER: u64 = 0x7072_6f76; // "prov"
const STREAM_PICK: u64 = 0x7069_636b; // "pick"
const STREAM_QUERIER: u64 = 0x7175_6572; // "quer"

/// Timed passes of the memory baseline (after one untimed); the fastest counts.
const BASELINE_PASSES: usize = 5;

/// `/proc/self/stat` reports CPU time in clock ticks of USER_HZ, 100 on Linux.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

#[derive(Args)]
pub struct PirBenchArgs {
    /// Rows of the provider's table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Bytes of every value.
    #[arg(long, default_value_t = 64)]
    value_bytes: u32,
    /// Ids of the batch session: half present in the table, half absent.
    #[arg(long, default_value_t = 1000)]
    ids: usize,
    /// One-id sessions with the hint cached; the online figure is their median.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Average rows per bucket (database column) of the table.
    #[arg(long, default_value_t = PirParams::default().bucket_load)]
    bucket_load: u32,
    /// Seed of the synthetic table, the provider's keys and the querier's choices and secrets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    json: bool,
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

/// What both party processes are told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PirBenchParams {
    pub rows: u64,
    pub value_bytes: u32,
    pub ids: usize,
    pub repeat: usize,
    pub bucket_load: u32,
    pub seed: u64,
}

impl PirBenchParams {
    fn pir_params(&self) -> PirParams {
        PirParams {
            value_len: self.value_bytes,
            bucket_load: self.bucket_load,
            ..PirParams::default()
        }
    }

    /// Checks what the parties will need, and returns the table's layout.
    fn check(&self) -> anyhow::Result<TableLayout> {
        ensure!(self.rows >= 1, "--rows must be at least 1");
        ensure!(self.ids >= 1, "--ids must be at least 1");
        ensure!(self.repeat >= 1, "--repeat must be at least 1");
        ensure!(
            self.ids.div_ceil(2) as u64 <= self.rows,
            "--ids {} asks for {} present ids, more than the {} rows",
            self.ids,
            self.ids.div_ceil(2),
            self.rows
        );
        let params = self.pir_params();
        params
            .validate()
            .context("--value-bytes or --bucket-load")?;
        TableLayout::for_rows(self.rows, &params).context("table layout")
    }
}

// ---------------------------------------------------------------------------------------
// The synthetic table, generated the same way by both parties.

/// The id of generated row `i` (rows `0..rows` are in the table; `rows..` are absent).
pub fn row_id(i: u64) -> String {
    (ID_BASE + i).to_string()
}

/// The value of generated row `i`: `len` bytes of ChaCha20 keyed by the seed and `i`.
pub fn row_value(seed: u64, i: u64, len: usize) -> Vec<u8> {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&i.to_le_bytes());
    key[16..24].copy_from_slice(&STREAM_VALUES.to_le_bytes());
    let mut value = vec![0u8; len];
    ChaCha20Rng::from_seed(key).fill_bytes(&mut value);
    value
}

fn stream(seed: u64, label: u64) -> ChaCha20Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[16..24].copy_from_slice(&label.to_le_bytes());
    ChaCha20Rng::from_seed(key)
}

// ---------------------------------------------------------------------------------------
// Measurements inside a party process.

/// CPU seconds of this process so far, all threads (`/proc/self/stat`: utime + stime); NaN
/// where that file does not exist.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // The command name (field 2) is in parentheses and may hold spaces; field 3 is the first
    // after the last ')', so utime (field 14) and stime (field 15) are the 12th and 13th.
    let Some((_, after)) = stat.rsplit_once(')') else {
        return f64::NAN;
    };
    let mut fields = after.split_whitespace().skip(11);
    let mut ticks = || fields.next().and_then(|f| f.parse::<f64>().ok());
    match (ticks(), ticks()) {
        (Some(user), Some(system)) => (user + system) / CLOCK_TICKS_PER_SECOND,
        _ => f64::NAN,
    }
}

/// One plain pass over `bytes` bytes in memory, split over `threads` threads: the fastest of
/// [`BASELINE_PASSES`] timed passes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryPass {
    pub bytes: u64,
    pub threads: usize,
    pub seconds: f64,
}

impl MemoryPass {
    fn gb_per_second(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e9
    }
}

fn memory_pass(bytes: u64, threads: usize) -> MemoryPass {
    let words = (bytes / 8).max(1) as usize;
    let threads = threads.max(1);
    // A non-zero fill touches every page, so the passes read memory, not the zero page.
    let data = vec![0x0101_0101_0101_0101u64; words];
    let per_thread = words.div_ceil(threads);
    let pass = || -> u64 {
        std::thread::scope(|s| {
            let workers: Vec<_> = data
                .chunks(per_thread)
                .map(|part| s.spawn(move || part.iter().fold(0u64, |a, &w| a.wrapping_add(w))))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or(0))
                .fold(0u64, u64::wrapping_add)
        })
    };
    std::hint::black_box(pass());
    let mut best = f64::INFINITY;
    for _ in 0..BASELINE_PASSES {
        let start = Instant::now();
        std::hint::black_box(pass());
        best = best.min(start.elapsed().as_secs_f64());
    }
    MemoryPass {
        bytes: words as u64 * 8,
        threads,
        seconds: best,
    }
}

// ---------------------------------------------------------------------------------------
// The two parties.

/// The provider's preprocessing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Generating the synthetic rows (not part of preprocessing).
    pub generate_seconds: f64,
    pub wall_seconds: f64,
    /// Process CPU seconds of the build (all threads).
    pub cpu_seconds: f64,
    pub input_seconds: f64,
    pub oprf_seconds: f64,
    pub layout_seconds: f64,
    pub hint_seconds: f64,
    pub salt_attempts: u32,
}

/// One session as the provider saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Served {
    pub phase: String,
    pub ids: u64,
    pub hint_sent: bool,
    /// Process CPU seconds during the session (all threads, transport included).
    pub cpu_seconds: f64,
    pub oprf_seconds: f64,
    pub answer_seconds: f64,
    pub seconds: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// One session as the querier saw it, after checking every value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Queried {
    pub phase: String,
    pub ids: u64,
    pub present: u64,
    pub absent: u64,
    pub found: u64,
    /// From the call to the outcome, at the querier: the end-to-end time.
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    /// Generating the public matrix A after a hint download.
    pub setup_seconds: f64,
    pub hint_downloaded: bool,
    pub hint_bytes: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderResult {
    pub kernel: String,
    #[serde(default)]
    pub kernel_forced: Option<String>,
    pub layout: TableLayout,
    pub preprocessing: Preprocessing,
    pub baseline: MemoryPass,
    pub sessions: Vec<Served>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuerierResult {
    pub sessions: Vec<Queried>,
}

const PHASE_FIRST: &str = "first";
const PHASE_ONLINE: &str = "online";
const PHASE_BATCH: &str = "batch";
const TAG_READY: &str = "ready";

/// The sessions of a run, in order, with the number of ids of each.
fn schedule(p: &PirBenchParams) -> Vec<(String, usize)> {
    let mut s = vec![(PHASE_FIRST.to_string(), 1)];
    s.extend((0..p.repeat).map(|_| (PHASE_ONLINE.to_string(), 1)));
    s.push((PHASE_BATCH.to_string(), p.ids));
    s
}

fn only_peer(ctx: &Context) -> anyhow::Result<PartyId> {
    match ctx.others().as_slice() {
        [peer] => Ok(peer.clone()),
        others => bail!(
            "the PIR benchmark runs between two parties, this roster has {}",
            others.len() + 1
        ),
    }
}

/// One party of `ferry bench pir`: the host provides, the guest queries.
pub fn run_party(ctx: &Context, params: &Value) -> anyhow::Result<Value> {
    let p: PirBenchParams =
        serde_json::from_value(params.clone()).context("PIR benchmark parameters")?;
    let layout = p.check()?;
    let peer = only_peer(ctx)?;
    let ctx = ctx.sub(PROTOCOL);
    match ctx.role() {
        Role::Host => Ok(serde_json::to_value(provide(&ctx, &peer, &p, layout)?)?),
        Role::Guest => Ok(serde_json::to_value(ask(&ctx, &peer, &p)?)?),
        other => {
            bail!("the PIR benchmark has a guest (querier) and a host (provider), not {other}")
        }
    }
}

fn provide(
    ctx: &Context,
    querier: &PartyId,
    p: &PirBenchParams,
    layout: TableLayout,
) -> anyhow::Result<ProviderResult> {
    // The baseline first, while the table does not exist yet: its buffer (as large as the
    // database) is freed before the build and does not raise the peak memory.
    let threads = Machine::detect().threads_per_process;
    let baseline = memory_pass(layout.matrix_bytes(), threads);

    let len = p.value_bytes as usize;
    let start = Instant::now();
    let rows: Vec<(String, Vec<u8>)> = (0..p.rows)
        .map(|i| (row_id(i), row_value(p.seed, i, len)))
        .collect();
    let generate_seconds = start.elapsed().as_secs_f64();

    let mut rng = stream(p.seed, STREAM_PROVIDER);
    let cpu = process_cpu_seconds();
    let start = Instant::now();
    let table = ProviderTable::build(
        rows.iter()
            .map(|(id, value)| (id.as_str(), value.as_slice())),
        &p.pir_params(),
        &mut rng,
    )
    .context("building the PIR table")?;
    let wall_seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds() - cpu;
    drop(rows);
    ensure!(
        *table.layout() == layout,
        "the built table's layout {:?} differs from the expected {layout:?}",
        table.layout()
    );
    let parts = table.build_report().cloned().unwrap_or_default();
    let preprocessing = Preprocessing {
        generate_seconds,
        wall_seconds,
        cpu_seconds,
        input_seconds: parts.input_seconds,
        oprf_seconds: parts.oprf_seconds,
        layout_seconds: parts.layout_seconds,
        hint_seconds: parts.hint_seconds,
        salt_attempts: parts.salt_attempts,
    };

    // The querier starts its clock only after this, so no session includes the build.
    ctx.send(querier, TAG_READY, &table.len())?;
    let limits = ServeLimits {
        max_ids: p.ids.max(1) as u64,
    };
    let mut sessions = Vec::new();
    for (i, (phase, _)) in schedule(p).into_iter().enumerate() {
        let cpu = process_cpu_seconds();
        let r = serve(&ctx.sub(format!("session-{i}")), &table, &limits)
            .with_context(|| format!("serving the {phase} session"))?;
        sessions.push(Served {
            phase,
            ids: r.ids,
            hint_sent: r.hint_sent,
            cpu_seconds: process_cpu_seconds() - cpu,
            oprf_seconds: r.oprf_seconds,
            answer_seconds: r.answer_seconds,
            seconds: r.seconds,
            bytes_sent: r.bytes_sent,
            bytes_received: r.bytes_received,
        });
    }
    Ok(ProviderResult {
        kernel: matrix::kernel().name().to_string(),
        kernel_forced: std::env::var("FERRY_PIR_KERNEL").ok(),
        layout,
        preprocessing,
        baseline,
        sessions,
    })
}

/// An id the querier asks, and what it must get back.
struct Asked {
    id: String,
    /// The generated row, or `None` for an id outside the table.
    row: Option<u64>,
}

impl Asked {
    fn present(i: u64) -> Asked {
        Asked {
            id: row_id(i),
            row: Some(i),
        }
    }

    fn absent(rows: u64, j: u64) -> Asked {
        Asked {
            id: row_id(rows + j),
            row: None,
        }
    }
}

/// The ids of each session: one present id first; the online sessions alternate present and
/// absent ids; the batch interleaves distinct present rows with absent ids.
fn ids_for(
    p: &PirBenchParams,
    phase: &str,
    n: usize,
    index: usize,
    pick: &mut ChaCha20Rng,
) -> Vec<Asked> {
    match phase {
        PHASE_BATCH => {
            let present = rand::seq::index::sample(pick, p.rows as usize, n.div_ceil(2));
            let mut present = present.into_iter();
            (0..n)
                .map(|k| {
                    // Even places take the sampled rows (exactly as many as there are).
                    let row = if k.is_multiple_of(2) {
                        present.next()
                    } else {
                        None
                    };
                    match row {
                        Some(i) => Asked::present(i as u64),
                        None => Asked::absent(p.rows, k as u64),
                    }
                })
                .collect()
        }
        PHASE_ONLINE if index.is_multiple_of(2) => vec![Asked::absent(p.rows, index as u64)],
        _ => vec![Asked::present(pick.random_range(0..p.rows))],
    }
}

fn ask(ctx: &Context, provider: &PartyId, p: &PirBenchParams) -> anyhow::Result<QuerierResult> {
    let rows: u64 = ctx
        .recv(provider, TAG_READY)
        .context("waiting for the provider's table")?;
    ensure!(
        rows == p.rows,
        "the provider built {rows} rows, the benchmark asked for {}",
        p.rows
    );
    let mut pick = stream(p.seed, STREAM_PICK);
    let mut secrets = stream(p.seed, STREAM_QUERIER);
    let mut cache: Option<HintCache> = None;
    let limits = QueryLimits::default();
    let len = p.value_bytes as usize;
    let mut sessions = Vec::new();
    for (i, (phase, n)) in schedule(p).into_iter().enumerate() {
        let asked = ids_for(p, &phase, n, i, &mut pick);
        let ids: Vec<&[u8]> = asked.iter().map(|a| a.id.as_bytes()).collect();
        let cpu = process_cpu_seconds();
        let start = Instant::now();
        let outcome = query_with(
            &ctx.sub(format!("session-{i}")),
            &ids,
            &mut cache,
            &limits,
            &mut secrets,
        )
        .with_context(|| format!("querying in the {phase} session"))?;
        let wall_seconds = start.elapsed().as_secs_f64();
        let cpu_seconds = process_cpu_seconds() - cpu;
        ensure!(
            outcome.values.len() == asked.len(),
            "the {phase} session returned {} results for {} ids",
            outcome.values.len(),
            asked.len()
        );
        for (a, got) in asked.iter().zip(&outcome.values) {
            match (a.row, got) {
                (Some(i), Some(v)) if *v == row_value(p.seed, i, len) => {}
                (Some(i), Some(v)) => bail!(
                    "WRONG VALUE in the {phase} session: id {} (row {i}) came back as {} bytes that differ from the generated value",
                    a.id,
                    v.len()
                ),
                (Some(i), None) => bail!(
                    "WRONG RESULT in the {phase} session: id {} (row {i}) is in the table but came back absent",
                    a.id
                ),
                (None, Some(v)) => bail!(
                    "WRONG RESULT in the {phase} session: id {} is not in the table but came back with {} bytes",
                    a.id,
                    v.len()
                ),
                (None, None) => {}
            }
        }
        let r = &outcome.report;
        let expect_download = i == 0;
        ensure!(
            r.hint_downloaded == expect_download,
            "the {phase} session {} the hint",
            if r.hint_downloaded {
                "downloaded"
            } else {
                "did not download"
            }
        );
        let present = asked.iter().filter(|a| a.row.is_some()).count() as u64;
        sessions.push(Queried {
            phase,
            ids: asked.len() as u64,
            present,
            absent: asked.len() as u64 - present,
            found: r.found,
            wall_seconds,
            cpu_seconds,
            setup_seconds: r.setup_seconds,
            hint_downloaded: r.hint_downloaded,
            hint_bytes: r.hint_bytes,
            bytes_sent: r.bytes_sent,
            bytes_received: r.bytes_received,
        });
    }
    Ok(QuerierResult { sessions })
}

// ---------------------------------------------------------------------------------------
// ferry bench pir: launch, combine, print.

/// One phase, combined from both parties' sessions of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Phase {
    pub sessions: usize,
    /// Ids per session.
    pub ids: u64,
    pub present: u64,
    pub absent: u64,
    pub found: u64,
    /// End to end at the querier: the median over the sessions.
    pub wall_seconds: f64,
    pub wall_seconds_min: f64,
    /// Per session (the mean over the sessions).
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub hint_downloaded: bool,
    pub hint_bytes: u64,
    pub querier_cpu_seconds: f64,
    /// Generating A after the hint download (the first session only), mean over the sessions.
    pub querier_setup_seconds: f64,
    /// Mean over the sessions of the provider's process CPU seconds.
    pub provider_cpu_seconds: f64,
    /// Medians over the sessions.
    pub provider_answer_seconds: f64,
    pub provider_oprf_seconds: f64,
    /// Passes over the database the answers need at least: one per `matrix::GROUP` ids.
    pub database_passes: u64,
}

impl Phase {
    fn combine(queried: &[&Queried], served: &[&Served]) -> anyhow::Result<Phase> {
        ensure!(
            !queried.is_empty() && queried.len() == served.len(),
            "{} querier and {} provider sessions",
            queried.len(),
            served.len()
        );
        let n = queried.len();
        let mean_u64 =
            |f: &dyn Fn(&Queried) -> u64| queried.iter().map(|q| f(q)).sum::<u64>() / n as u64;
        let ids = queried[0].ids;
        Ok(Phase {
            sessions: n,
            ids,
            present: queried.iter().map(|q| q.present).sum(),
            absent: queried.iter().map(|q| q.absent).sum(),
            found: queried.iter().map(|q| q.found).sum(),
            wall_seconds: median(queried.iter().map(|q| q.wall_seconds)),
            wall_seconds_min: queried
                .iter()
                .map(|q| q.wall_seconds)
                .fold(f64::INFINITY, f64::min),
            bytes_up: mean_u64(&|q| q.bytes_sent),
            bytes_down: mean_u64(&|q| q.bytes_received),
            hint_downloaded: queried.iter().any(|q| q.hint_downloaded),
            hint_bytes: queried.iter().map(|q| q.hint_bytes).max().unwrap_or(0),
            querier_cpu_seconds: queried.iter().map(|q| q.cpu_seconds).sum::<f64>() / n as f64,
            querier_setup_seconds: queried.iter().map(|q| q.setup_seconds).sum::<f64>() / n as f64,
            provider_cpu_seconds: served.iter().map(|s| s.cpu_seconds).sum::<f64>() / n as f64,
            provider_answer_seconds: median(served.iter().map(|s| s.answer_seconds)),
            provider_oprf_seconds: median(served.iter().map(|s| s.oprf_seconds)),
            database_passes: ids.div_ceil(matrix::GROUP as u64),
        })
    }

    fn per_id(&self, x: f64) -> f64 {
        x / self.ids.max(1) as f64
    }

    /// The provider's answer time over the same number of plain passes over the database.
    fn answer_over_baseline(&self, baseline: &MemoryPass) -> f64 {
        self.provider_answer_seconds / (self.database_passes as f64 * baseline.seconds)
    }

    fn json(&self, baseline: &MemoryPass) -> Value {
        json!({
            "sessions": self.sessions, "ids": self.ids,
            "present": self.present, "absent": self.absent, "found": self.found,
            "wall_seconds": self.wall_seconds, "wall_seconds_min": self.wall_seconds_min,
            "bytes_up": self.bytes_up, "bytes_down": self.bytes_down,
            "bytes_up_per_id": self.per_id(self.bytes_up as f64),
            "bytes_down_per_id": self.per_id(self.bytes_down as f64),
            "hint_downloaded": self.hint_downloaded, "hint_bytes": self.hint_bytes,
            "querier_cpu_seconds": self.querier_cpu_seconds,
            "querier_setup_seconds": self.querier_setup_seconds,
            "provider_cpu_seconds": self.provider_cpu_seconds,
            "provider_cpu_seconds_per_id": self.per_id(self.provider_cpu_seconds),
            "provider_answer_seconds": self.provider_answer_seconds,
            "provider_oprf_seconds": self.provider_oprf_seconds,
            "database_passes": self.database_passes,
            "answer_over_baseline": self.answer_over_baseline(baseline),
        })
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What one `ferry bench pir` run measured.
pub struct PirRun {
    pub params: PirBenchParams,
    pub kernel: String,
    pub kernel_forced: Option<String>,
    pub layout: TableLayout,
    pub preprocessing: Preprocessing,
    pub baseline: MemoryPass,
    pub first: Phase,
    pub online: Phase,
    pub batch: Phase,
    pub outputs: Vec<PartyOutput>,
}

/// A target of the issue, and whether this run met it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Target {
    pub what: &'static str,
    pub limit_seconds: f64,
    pub measured_seconds: f64,
    pub met: bool,
}

impl PirRun {
    fn from_outputs(params: PirBenchParams, outputs: Vec<PartyOutput>) -> anyhow::Result<PirRun> {
        let result_of = |role: &str| -> anyhow::Result<Value> {
            outputs
                .iter()
                .find(|o| o.role == role)
                .map(|o| o.result.clone())
                .with_context(|| format!("no {role} in the run's outputs"))
        };
        let provider: ProviderResult =
            serde_json::from_value(result_of("host")?).context("the provider's result")?;
        let querier: QuerierResult =
            serde_json::from_value(result_of("guest")?).context("the querier's result")?;
        let phase = |name: &str| -> anyhow::Result<Phase> {
            let q: Vec<&Queried> = querier
                .sessions
                .iter()
                .filter(|s| s.phase == name)
                .collect();
            let s: Vec<&Served> = provider
                .sessions
                .iter()
                .filter(|s| s.phase == name)
                .collect();
            Phase::combine(&q, &s).with_context(|| format!("the {name} phase"))
        };
        Ok(PirRun {
            first: phase(PHASE_FIRST)?,
            online: phase(PHASE_ONLINE)?,
            batch: phase(PHASE_BATCH)?,
            params,
            kernel: provider.kernel,
            kernel_forced: provider.kernel_forced,
            layout: provider.layout,
            preprocessing: provider.preprocessing,
            baseline: provider.baseline,
            outputs,
        })
    }

    fn targets(&self) -> Vec<Target> {
        if self.params.rows != TARGET_ROWS || self.params.value_bytes != TARGET_VALUE_BYTES {
            return Vec::new();
        }
        let target = |what, limit_seconds: f64, measured_seconds: f64| Target {
            what,
            limit_seconds,
            measured_seconds,
            met: measured_seconds <= limit_seconds,
        };
        let mut t = vec![
            target(
                "preprocessing",
                TARGET_PREPROCESSING_SECONDS,
                self.preprocessing.wall_seconds,
            ),
            target(
                "one id online, end to end",
                TARGET_ONLINE_SECONDS,
                self.online.wall_seconds,
            ),
        ];
        if self.params.ids == TARGET_BATCH_IDS {
            t.push(target(
                "batch of 1000 ids",
                TARGET_BATCH_SECONDS,
                self.batch.wall_seconds,
            ));
        }
        t
    }

    fn checked_ids(&self) -> (u64, u64, u64) {
        let phases = [&self.first, &self.online, &self.batch];
        let ids = phases.iter().map(|p| p.ids * p.sessions as u64).sum();
        let present = phases.iter().map(|p| p.present).sum();
        let absent = phases.iter().map(|p| p.absent).sum();
        (ids, present, absent)
    }
}

/// Ferry's earlier in-process run, recorded in the ferry-pir crate docs, for the size it was
/// measured at.
pub fn references(rows: u64, value_bytes: u32, ids: usize) -> Vec<Reference> {
    if rows != TARGET_ROWS || value_bytes != TARGET_VALUE_BYTES {
        return Vec::new();
    }
    const SYSTEM: &str =
        "Ferry (earlier run), both parties in one process over the in-memory backend";
    const SOURCE: &str =
        "ferry-pir crate docs (crates/ferry-pir/src/lib.rs, examples/pir_bench.rs), commit 5be83f9";
    const DATE: &str = "2026-12-04 (commit date)";
    const MACHINE: &str = "2-core AMD EPYC with AVX-512, otherwise idle (the development machine, per the crate docs)";
    let earlier = |workload, seconds| Reference {
        system: SYSTEM,
        workload,
        seconds,
        metric: None,
        source: SOURCE,
        date: DATE,
        machine: MACHINE,
    };
    let mut refs = vec![
        earlier("preprocessing, 1e6 rows × 64 B", 16.7),
        earlier("one id, first session (hint download)", 0.13),
        earlier("one id online, hint cached (recorded as 12–13 ms)", 0.013),
    ];
    if ids == TARGET_BATCH_IDS {
        refs.push(earlier("batch of 1000 ids", 3.6));
    }
    refs
}

pub fn run(args: PirBenchArgs) -> anyhow::Result<()> {
    let machine = Machine::detect();
    let params = PirBenchParams {
        rows: args.rows,
        value_bytes: args.value_bytes,
        ids: args.ids,
        repeat: args.repeat,
        bucket_load: args.bucket_load,
        seed: args.seed,
    };
    let layout = params.check()?;
    if !args.json {
        eprintln!(
            "building a {}-row table ({} buckets, a {:.1} MB database) in the provider process, then querying over TLS...",
            params.rows,
            layout.buckets,
            layout.matrix_bytes() as f64 / 1e6
        );
    }
    let outputs = super::federated::run_launch(
        "bank:guest,telco:host",
        PROTOCOL,
        serde_json::to_value(&params)?,
        &args.work_dir,
        3600,
    )?;
    let run = PirRun::from_outputs(params, outputs)?;
    let refs = references(run.params.rows, run.params.value_bytes, run.params.ids);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&pir_json(&run, &machine, &refs))?
        );
    } else {
        print!("{}", render(&run, &machine, &refs));
    }
    Ok(())
}

/// `29.79 s`, `0.0166 s`: two decimals from a second up, four below.
fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.4} s")
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn peak_rss_mib(run: &PirRun, role: &str) -> Option<f64> {
    run.outputs
        .iter()
        .find(|o| o.role == role)
        .map(|o| o.peak_rss_kib as f64 / 1024.0)
}

pub fn render(run: &PirRun, machine: &Machine, references: &[Reference]) -> String {
    let p = &run.params;
    let l = &run.layout;
    let mut s = format!(
        "ferry bench pir — keyword PIR (OPRF over Ristretto255 + SimplePIR), {} rows × {}-byte values, querier (bank) and provider (telco) as two processes over loopback TLS\n",
        p.rows, p.value_bytes
    );
    s.push_str(&machine.render());
    s.push_str(&format!(
        "\nPIR kernel  {} (in the provider process{})\n",
        run.kernel,
        match &run.kernel_forced {
            Some(k) => format!("; FERRY_PIR_KERNEL={k}"),
            None => String::new(),
        }
    ));
    s.push_str(&format!(
        "table       {} buckets × {} slots of {} bytes: database {:.1} MB, hint {:.1} MB; per id a {} B query and a {} B answer (+ 32 B OPRF each way); overflow bound 2^{:.1}, decryption failure bound 2^{:.0}; seed {}\n\n",
        l.buckets,
        l.capacity,
        l.entry_len(),
        mb(l.matrix_bytes()),
        mb(l.hint_bytes()),
        l.query_bytes(),
        l.answer_bytes(),
        l.overflow_log2(),
        l.correctness_log2(),
        p.seed
    ));

    s.push_str(&format!(
        "{:<10} {:<8} {:>9} {:>12} {:>13} {:>12}\n",
        "party", "role", "wall s", "sent MB", "received MB", "peak RSS"
    ));
    for o in &run.outputs {
        s.push_str(&format!(
            "{:<10} {:<8} {:>9.2} {:>12.2} {:>13.2} {:>8.0} MiB\n",
            o.party,
            if o.role == "host" {
                "provider"
            } else {
                "querier"
            },
            o.wall_secs,
            mb(o.bytes_sent),
            mb(o.bytes_received),
            o.peak_rss_kib as f64 / 1024.0
        ));
    }

    let pre = &run.preprocessing;
    s.push_str(&format!(
        "\npreprocessing   {:.2} s wall, {:.1} CPU s (input {:.2} s, OPRF + encryption {:.2} s, buckets + matrix {:.2} s, hint {:.2} s; salts tried {}); generating the rows took {:.2} s more\n\n",
        pre.wall_seconds,
        pre.cpu_seconds,
        pre.input_seconds,
        pre.oprf_seconds,
        pre.layout_seconds,
        pre.hint_seconds,
        pre.salt_attempts,
        pre.generate_seconds
    ));

    s.push_str(&format!(
        "{:<42} {:>10} {:>11} {:>12} {:>10} {:>13} {:>11} {:>9}\n",
        "phase (wall at the querier)",
        "wall s",
        "up B/id",
        "down B/id",
        "hint MB",
        "prov. CPU/id",
        "answer s",
        "/baseline"
    ));
    let rows = [
        ("first session, 1 id, hint download".to_string(), &run.first),
        (
            format!(
                "online, 1 id, hint cached (median of {})",
                run.online.sessions
            ),
            &run.online,
        ),
        (
            format!("batch, {} ids ({} absent)", run.batch.ids, run.batch.absent),
            &run.batch,
        ),
    ];
    for (name, ph) in rows {
        s.push_str(&format!(
            "{:<42} {:>10.4} {:>11.0} {:>12.0} {:>10} {:>11.4} s {:>11.4} {:>8.2}×\n",
            name,
            ph.wall_seconds,
            ph.per_id(ph.bytes_up as f64),
            ph.per_id(ph.bytes_down as f64),
            if ph.hint_downloaded {
                format!("{:.1}", mb(ph.hint_bytes))
            } else {
                "cached".to_string()
            },
            ph.per_id(ph.provider_cpu_seconds),
            ph.provider_answer_seconds,
            ph.answer_over_baseline(&run.baseline)
        ));
    }
    s.push_str(&format!(
        "\nalso            online fastest {:.4} s; provider OPRF {:.4} s for the batch; querier CPU {:.2} s for the batch, {:.2} s for the first session (A from its seed: {:.3} s)\n",
        run.online.wall_seconds_min,
        run.batch.provider_oprf_seconds,
        run.batch.querier_cpu_seconds,
        run.first.querier_cpu_seconds,
        run.first.querier_setup_seconds
    ));

    let b = &run.baseline;
    s.push_str(&format!(
        "\nbaseline        one plain pass over {:.1} MB in memory (the database's size), {} thread{}, in the provider process, measured in this run: {:.4} s ({:.1} GB/s, fastest of {BASELINE_PASSES})\n",
        mb(b.bytes),
        b.threads,
        if b.threads == 1 { "" } else { "s" },
        b.seconds,
        b.gb_per_second()
    ));
    s.push_str(&format!(
        "/baseline       the provider's answer time over as many passes as it needs at least (one per {} ids: {} for one id, {} for the batch)\n",
        matrix::GROUP,
        run.online.database_passes,
        run.batch.database_passes
    ));
    let (ids, present, absent) = run.checked_ids();
    s.push_str(&format!(
        "checked         every result against the generator: {ids} ids, {present} present and found with the right value, {absent} absent and reported absent\n"
    ));
    s.push_str(&format!(
        "peak RSS        provider {:.0} MiB, querier {:.0} MiB\n",
        peak_rss_mib(run, "host").unwrap_or(f64::NAN),
        peak_rss_mib(run, "guest").unwrap_or(f64::NAN)
    ));

    let targets = run.targets();
    if targets.is_empty() {
        s.push_str(&format!(
            "\ntargets         issue 15's targets are for {TARGET_ROWS} rows × {TARGET_VALUE_BYTES}-byte values; none printed for this size\n"
        ));
    } else {
        s.push_str("\ntargets (issue 15, on this machine; goals, not asserted):\n");
        for t in &targets {
            s.push_str(&format!(
                "  {} {:<28} ≤ {:>4.0} s   measured {}\n",
                if t.met { "✓" } else { "✗" },
                t.what,
                t.limit_seconds,
                seconds(t.measured_seconds)
            ));
        }
    }
    if !references.is_empty() {
        s.push('\n');
        s.push_str(&reference::render(references));
    }
    s
}

pub fn pir_json(run: &PirRun, machine: &Machine, references: &[Reference]) -> Value {
    let l = &run.layout;
    let (ids, present, absent) = run.checked_ids();
    json!({
        "benchmark": "pir",
        "machine": machine,
        "kernel": run.kernel,
        "kernel_forced": run.kernel_forced,
        "rows": run.params.rows, "value_bytes": run.params.value_bytes,
        "ids": run.params.ids, "repeat": run.params.repeat,
        "bucket_load": run.params.bucket_load, "seed": run.params.seed,
        "layout": {
            "buckets": l.buckets, "capacity": l.capacity, "entry_bytes": l.entry_len(),
            "matrix_rows": l.matrix_rows(), "database_bytes": l.matrix_bytes(),
            "hint_bytes": l.hint_bytes(), "query_bytes": l.query_bytes(),
            "answer_bytes": l.answer_bytes(), "overflow_log2": l.overflow_log2(),
            "correctness_log2": l.correctness_log2(),
        },
        "preprocessing": run.preprocessing,
        "baseline": {
            "what": "one plain pass over the database's size in memory, provider process",
            "bytes": run.baseline.bytes, "threads": run.baseline.threads,
            "seconds": run.baseline.seconds, "gb_per_second": run.baseline.gb_per_second(),
        },
        "phases": {
            "first": run.first.json(&run.baseline),
            "online": run.online.json(&run.baseline),
            "batch": run.batch.json(&run.baseline),
        },
        "checked": {"ids": ids, "present": present, "absent": absent},
        "targets": run.targets(),
        "peak_rss_mib": {
            "provider": peak_rss_mib(run, "host"),
            "querier": peak_rss_mib(run, "guest"),
        },
        "outputs": run.outputs,
        "reference": reference::json(references),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::machine::FEATURES;

    fn machine() -> Machine {
        Machine {
            cpu_model: "Synthetic CPU 9000".into(),
            cores: 2,
            threads_per_process: 2,
            features: FEATURES.iter().map(|&f| (f, f != "avx512ifma")).collect(),
            load_average: Some(0.25),
        }
    }

    fn params(rows: u64, value_bytes: u32, ids: usize) -> PirBenchParams {
        PirBenchParams {
            rows,
            value_bytes,
            ids,
            repeat: 3,
            bucket_load: 64,
            seed: 9,
        }
    }

    fn queried(phase: &str, ids: u64, present: u64, wall: f64, hint: bool) -> Queried {
        Queried {
            phase: phase.into(),
            ids,
            present,
            absent: ids - present,
            found: present,
            wall_seconds: wall,
            cpu_seconds: 0.75,
            setup_seconds: if hint { 0.05 } else { 0.0 },
            hint_downloaded: hint,
            hint_bytes: if hint { 43_646_976 } else { 0 },
            bytes_sent: 62_639 * ids,
            bytes_received: 42_845 * ids + if hint { 43_646_976 } else { 0 },
        }
    }

    fn served(phase: &str, ids: u64, answer: f64) -> Served {
        Served {
            phase: phase.into(),
            ids,
            hint_sent: false,
            cpu_seconds: 0.021 * ids as f64,
            oprf_seconds: 0.0004 * ids as f64,
            answer_seconds: answer,
            seconds: answer + 0.01,
            bytes_sent: 42_845 * ids,
            bytes_received: 62_639 * ids,
        }
    }

    fn party(name: &str, role: &str) -> PartyOutput {
        PartyOutput {
            party: name.into(),
            role: role.into(),
            ok: true,
            result: Value::Null,
            error: None,
            wall_secs: 21.5,
            peak_rss_kib: 700 * 1024,
            bytes_sent: 48_000_000,
            bytes_received: 63_000_000,
            messages_sent: 90,
            rounds: 20,
        }
    }

    fn run(rows: u64, value_bytes: u32, ids: usize, online: f64) -> PirRun {
        let p = params(rows, value_bytes, ids);
        let layout = TableLayout::for_rows(rows, &p.pir_params()).unwrap();
        let batch = ids as u64;
        let q = [
            queried(PHASE_FIRST, 1, 1, 0.21, true),
            queried(PHASE_ONLINE, 1, 1, online, false),
            queried(PHASE_ONLINE, 1, 0, online * 2.0, false),
            queried(PHASE_ONLINE, 1, 1, online / 2.0, false),
            queried(PHASE_BATCH, batch, batch.div_ceil(2), 4.25, false),
        ];
        let s = [
            served(PHASE_FIRST, 1, 0.011),
            served(PHASE_ONLINE, 1, 0.009),
            served(PHASE_ONLINE, 1, 0.008),
            served(PHASE_ONLINE, 1, 0.010),
            served(PHASE_BATCH, batch, 3.3),
        ];
        let phase = |name: &str| {
            let q: Vec<&Queried> = q.iter().filter(|x| x.phase == name).collect();
            let s: Vec<&Served> = s.iter().filter(|x| x.phase == name).collect();
            Phase::combine(&q, &s).unwrap()
        };
        PirRun {
            kernel: "avx512".into(),
            kernel_forced: None,
            layout,
            preprocessing: Preprocessing {
                generate_seconds: 0.6,
                wall_seconds: 19.25,
                cpu_seconds: 37.5,
                input_seconds: 0.4,
                oprf_seconds: 15.5,
                layout_seconds: 0.5,
                hint_seconds: 2.75,
                salt_attempts: 1,
            },
            baseline: MemoryPass {
                bytes: layout.matrix_bytes(),
                threads: 2,
                seconds: 0.0075,
            },
            first: phase(PHASE_FIRST),
            online: phase(PHASE_ONLINE),
            batch: phase(PHASE_BATCH),
            params: p,
            outputs: vec![party("bank", "guest"), party("telco", "host")],
        }
    }

    #[test]
    fn the_report_prints_machine_phases_targets_and_keeps_references_apart() {
        let r = run(1_000_000, 64, 1000, 0.0125);
        let refs = references(1_000_000, 64, 1000);
        assert_eq!(refs.len(), 4);
        let text = render(&r, &machine(), &refs);
        assert!(text.contains("Synthetic CPU 9000, 2 cores"), "{text}");
        assert!(text.contains("absent: avx512ifma"), "{text}");
        assert!(text.contains("PIR kernel  avx512"), "{text}");
        for phrase in [
            "first session, 1 id, hint download",
            "online, 1 id, hint cached (median of 3)",
            "batch, 1000 ids (500 absent)",
            "preprocessing   19.25 s wall, 37.5 CPU s",
            "baseline        one plain pass over",
        ] {
            assert!(text.contains(phrase), "'{phrase}' missing from\n{text}");
        }
        // The online figure is the median of the three sessions.
        assert_eq!(r.online.wall_seconds, 0.0125);
        assert_eq!(r.online.wall_seconds_min, 0.00625);
        // 1 + 3 one-id sessions and 1000 batch ids, all checked.
        assert!(
            text.contains("1004 ids, 503 present and found with the right value, 501 absent"),
            "{text}"
        );
        // Targets: each with its mark.
        assert!(text.contains("✓ preprocessing"), "{text}");
        assert!(text.contains("✓ one id online, end to end"), "{text}");
        assert!(text.contains("✓ batch of 1000 ids"), "{text}");
        // The batch's answers against 125 passes of the baseline.
        let batch_ratio = 3.3 / (125.0 * 0.0075);
        assert!(text.contains(&format!("{batch_ratio:.2}×")), "{text}");

        // References: after everything measured, each with source, date and machine, and no
        // figure of theirs among the measured ones nor divided into them.
        let (measured, block) = text.split_once(reference::HEADING).unwrap();
        for rf in &refs {
            let line = rf.render();
            assert!(block.contains(&line), "{line} missing from\n{block}");
            for part in [rf.source, rf.date, rf.machine] {
                assert!(line.contains(part), "{line}");
            }
            let figure = format!("{} s", rf.seconds);
            assert!(!measured.contains(&figure), "{figure} among\n{measured}");
            for m in [
                r.preprocessing.wall_seconds,
                r.online.wall_seconds,
                r.batch.wall_seconds,
            ] {
                for ratio in [m / rf.seconds, rf.seconds / m] {
                    assert!(
                        !text.contains(&format!("{ratio:.2}×")),
                        "{ratio} in\n{text}"
                    );
                }
            }
        }
        for word in ["faster", "same machine", "SealPIR", "SimplePIR 2023"] {
            assert!(!text.contains(word), "'{word}' in\n{text}");
        }
    }

    #[test]
    fn the_json_has_every_phase_with_numbers_and_references_apart() {
        let r = run(1_000_000, 64, 1000, 0.0125);
        let refs = references(1_000_000, 64, 1000);
        let v = pir_json(&r, &machine(), &refs);
        assert_eq!(v["machine"]["cpu_model"], "Synthetic CPU 9000");
        assert_eq!(v["rows"], 1_000_000);
        for phase in ["first", "online", "batch"] {
            let ph = &v["phases"][phase];
            for k in [
                "wall_seconds",
                "bytes_up_per_id",
                "bytes_down_per_id",
                "provider_cpu_seconds_per_id",
                "provider_answer_seconds",
                "answer_over_baseline",
            ] {
                assert!(
                    ph[k].as_f64().is_some_and(|x| x > 0.0),
                    "{phase}.{k} in {ph}"
                );
            }
        }
        assert_eq!(v["phases"]["first"]["hint_downloaded"], true);
        assert_eq!(v["phases"]["first"]["hint_bytes"], 43_646_976);
        assert_eq!(v["phases"]["online"]["hint_downloaded"], false);
        assert_eq!(v["phases"]["online"]["sessions"], 3);
        assert_eq!(v["phases"]["batch"]["found"], 500);
        assert_eq!(v["phases"]["batch"]["absent"], 500);
        assert_eq!(v["phases"]["batch"]["database_passes"], 125);
        assert_eq!(v["phases"]["batch"]["bytes_up_per_id"], 62_639.0);
        assert_eq!(v["baseline"]["seconds"], 0.0075);
        assert_eq!(v["preprocessing"]["wall_seconds"], 19.25);
        let targets = v["targets"].as_array().unwrap();
        assert_eq!(targets.len(), 3);
        assert!(targets.iter().all(|t| t["met"] == true));
        assert_eq!(v["peak_rss_mib"]["provider"], 700.0);

        let figures = v["reference"]["figures"].as_array().unwrap();
        assert_eq!(figures.len(), refs.len());
        for f in figures {
            for k in ["source", "date", "machine"] {
                assert!(f[k].as_str().is_some_and(|s| !s.is_empty()), "{f}");
            }
        }
        let mut measured = v.clone();
        measured.as_object_mut().unwrap().remove("reference");
        let text = measured.to_string();
        for rf in &refs {
            assert!(
                !text.contains(&format!(":{}", rf.seconds)),
                "{} among the measured fields",
                rf.seconds
            );
        }
        for word in ["faster", "speedup", "peer"] {
            assert!(!text.contains(word), "{word} in {text}");
        }
    }

    #[test]
    fn targets_and_references_only_for_the_size_they_are_for() {
        let missed = run(1_000_000, 64, 1000, 1.5);
        let text = render(&missed, &machine(), &[]);
        assert!(text.contains("✗ one id online, end to end"), "{text}");
        assert!(text.contains("✓ preprocessing"), "{text}");
        assert!(!text.contains(reference::HEADING), "{text}");

        let small = run(2000, 16, 10, 0.004);
        assert!(small.targets().is_empty());
        let text = render(&small, &machine(), &references(2000, 16, 10));
        assert!(text.contains("none printed for this size"), "{text}");
        assert!(!text.contains('✓') && !text.contains('✗'), "{text}");
        assert!(!text.contains(reference::HEADING), "{text}");
        // Another batch size: no batch target and no batch reference.
        let other = run(1_000_000, 64, 200, 0.0125);
        assert_eq!(other.targets().len(), 2);
        assert_eq!(references(1_000_000, 64, 200).len(), 3);
    }

    #[test]
    fn the_generator_is_a_function_of_seed_and_row() {
        assert_eq!(row_id(0), "13000000000");
        assert_eq!(row_id(42), "13000000042");
        let v = row_value(7, 3, 64);
        assert_eq!(v.len(), 64);
        assert_eq!(v, row_value(7, 3, 64));
        assert_ne!(v, row_value(7, 4, 64));
        assert_ne!(v, row_value(8, 3, 64));
        assert_eq!(row_value(7, 3, 0), Vec::<u8>::new());
        // The batch asks distinct present rows and ids outside the table.
        let p = params(50, 16, 21);
        let mut pick = stream(p.seed, STREAM_PICK);
        let asked = ids_for(&p, PHASE_BATCH, 21, 4, &mut pick);
        assert_eq!(asked.len(), 21);
        let present: Vec<u64> = asked.iter().filter_map(|a| a.row).collect();
        assert_eq!(present.len(), 11);
        let mut distinct = present.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 11);
        assert!(present.iter().all(|&i| i < 50));
        for a in asked.iter().filter(|a| a.row.is_none()) {
            let n: u64 = a.id.parse().unwrap();
            assert!(n >= ID_BASE + 50, "{}", a.id);
        }
    }

    #[test]
    fn parameters_are_checked_before_any_process_starts() {
        assert!(params(2000, 16, 10).check().is_ok());
        let e = params(4, 16, 10).check().unwrap_err().to_string();
        assert!(e.contains("5 present ids, more than the 4 rows"), "{e}");
        let e = params(2000, 20_000, 10).check().unwrap_err();
        assert!(format!("{e:#}").contains("value_len"), "{e:#}");
        let mut p = params(2000, 16, 10);
        p.repeat = 0;
        assert!(p.check().is_err());
    }

    #[test]
    fn a_memory_pass_reads_the_bytes_it_is_given() {
        let pass = memory_pass(1 << 20, 2);
        assert_eq!(pass.bytes, 1 << 20);
        assert_eq!(pass.threads, 2);
        assert!(pass.seconds > 0.0 && pass.gb_per_second() > 0.0);
        assert!(process_cpu_seconds() >= 0.0 || process_cpu_seconds().is_nan());
    }
}
