//! In-process two-party ECDH-PSI benchmark: both parties as threads of this process over the
//! in-memory backend, sharing this machine's cores (and one rayon pool), on synthetic ids.
//!
//! ```text
//! cargo run --release -p ferry-psi --example psi_inprocess -- [SIZE ...] [--overlap 0.5]
//!     [--chunk 8192] [--seed 1] [--parties 2] [--json] [--csv]
//! ```
//!
//! With `--csv` each party's ids are first written to a CSV file (id plus two data columns,
//! in a temporary directory) and the run goes through `run_psi`: reading the key column,
//! the protocol, and writing the rows in the intersection; `files s` is the time outside the
//! protocol (the slowest party's wall time minus its protocol time).
//!
//! Prints, per size: wall time, elements/s (ids of all parties / wall), bytes exchanged, peak
//! RSS of the process (both parties together), and the floor: the time the 4·N group
//! operations of a two-party run take at the per-core rates measured at the start of the same
//! run, spread over all cores. The rates are per CPU second of the measuring thread, so the
//! floor is what an otherwise idle machine would need; `CPU s` is the process's CPU time
//! for the run and `CPU/fl` its ratio to the floor's CPU time (the protocol's overhead,
//! which other processes competing for the cores do not inflate).

use ferry_context::{LocalCluster, Role, Roster};
use ferry_crypto::ecdh::{EcdhGroup, Ristretto255};
use ferry_psi::{
    IdList, PsiConfig, PsiError, PsiInput, intersect_ids, peak_rss_bytes, run_psi, synthetic_ids,
    synthetic_overlap_count,
};
use std::io::Write;
use std::time::{Duration, Instant};

struct Args {
    sizes: Vec<usize>,
    overlap: f64,
    chunk: usize,
    seed: u64,
    parties: usize,
    json: bool,
    csv: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        sizes: Vec::new(),
        overlap: 0.5,
        chunk: ferry_psi::DEFAULT_CHUNK_SIZE,
        seed: 1,
        parties: 2,
        json: false,
        csv: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match a.as_str() {
            "--overlap" => args.overlap = value("--overlap").parse().expect("--overlap: a number"),
            "--chunk" => args.chunk = value("--chunk").parse().expect("--chunk: an integer"),
            "--seed" => args.seed = value("--seed").parse().expect("--seed: an integer"),
            "--parties" => args.parties = value("--parties").parse().expect("--parties: 2..4"),
            "--json" => args.json = true,
            "--csv" => args.csv = true,
            size => args
                .sizes
                .push(size.parse::<f64>().expect("sizes are numbers like 1e6") as usize),
        }
    }
    if args.sizes.is_empty() {
        args.sizes = vec![100_000, 1_000_000];
    }
    assert!((2..=4).contains(&args.parties), "--parties: 2 to 4");
    args
}

/// CPU time of the calling thread in seconds (/proc/thread-self/schedstat, nanoseconds), so
/// the per-core rates are right even when other processes compete for the cores.
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// Operations per second on one core: (hash+mul+compress, decompress+mul+compress), per CPU
/// second of this thread (per wall second where the OS does not report thread CPU time).
fn per_core_rates() -> (f64, f64) {
    let mut rng = rand::rng();
    let key = Ristretto255::random_key(&mut rng);
    let ids: Vec<String> = (0..5000).map(|i| format!("rate-{i:012}")).collect();
    let wall = Instant::now();
    let clock = || thread_cpu_seconds().unwrap_or_else(|| wall.elapsed().as_secs_f64());
    let start = clock();
    let blinded: Vec<[u8; 32]> = ids
        .iter()
        .map(|id| Ristretto255::blind(&key, id.as_bytes()))
        .collect();
    let blind_rate = ids.len() as f64 / (clock() - start);
    let start = clock();
    for e in &blinded {
        std::hint::black_box(Ristretto255::reblind(&key, e));
    }
    let reblind_rate = blinded.len() as f64 / (clock() - start);
    (blind_rate, reblind_rate)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat (ticks of 1/100 s,
/// Linux's USER_HZ).
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command name start at field 3 (state); utime is 14, stime 15.
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(14) + ticks(15)) / 100.0
}

/// `id,score,segment`.
fn write_csv(path: &std::path::Path, ids: &IdList) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create CSV"));
    writeln!(w, "id,score,segment").expect("write CSV");
    for i in 0..ids.len() {
        let id = std::str::from_utf8(ids.get(i)).expect("synthetic ids are text");
        writeln!(w, "{id},{:.3},s{}", (i % 1000) as f64 / 7.0, i % 13).expect("write CSV");
    }
    w.flush().expect("write CSV");
}

fn main() {
    let args = parse_args();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (blind_rate, reblind_rate) = per_core_rates();
    const NAMES: [&str; 4] = ["bank", "telco", "shop", "insurer"];
    let roster = Roster::of(
        &(0..args.parties)
            .map(|i| (NAMES[i], if i == 0 { Role::Guest } else { Role::Host }))
            .collect::<Vec<_>>(),
    );
    if !args.json {
        println!(
            "per core (per CPU second): hash+mul+compress {blind_rate:.0}/s, decompress+mul+compress {reblind_rate:.0}/s; {cores} cores; {} parties, overlap {}, chunk {}; load average {}",
            args.parties,
            args.overlap,
            args.chunk,
            load_average()
        );
        println!(
            "{:>10} {:>9} {:>9} {:>8} {:>9} {:>8} {:>8} {:>13} {:>11} {:>12}",
            "ids/party",
            "wall s",
            "floor s",
            "wall/fl",
            "CPU s",
            "CPU/fl",
            "files s",
            "elements/s",
            "MB moved",
            "peak RSS MB"
        );
    }
    for &n in &args.sizes {
        let sets: Vec<IdList> = (0..args.parties)
            .map(|p| synthetic_ids(n, args.overlap, args.seed, p))
            .collect();
        let config = PsiConfig {
            chunk_size: args.chunk,
            ..PsiConfig::default()
        };
        let dir = std::env::temp_dir().join(format!("ferry-psi-bench-{}", std::process::id()));
        let inputs: Vec<PsiInput> = if args.csv {
            std::fs::create_dir_all(&dir).expect("temporary directory");
            sets.iter()
                .enumerate()
                .map(|(p, ids)| {
                    let path = dir.join(format!("party{p}.csv"));
                    write_csv(&path, ids);
                    PsiInput::new(&path, &["id"]).with_output(dir.join(format!("out{p}.csv")))
                })
                .collect()
        } else {
            Vec::new()
        };
        let cpu_start = process_cpu_seconds();
        let start = Instant::now();
        let outcomes = LocalCluster::new(roster.clone())
            .timeout(Duration::from_secs(3600))
            .run_ok(|ctx| -> Result<(Option<usize>, f64), PsiError> {
                let i = NAMES
                    .iter()
                    .position(|x| *x == ctx.me().as_str())
                    .expect("known party");
                if args.csv {
                    let out = run_psi(&ctx, &inputs[i], &config)?;
                    let outside = out.report.wall_seconds - out.report.protocol_seconds;
                    Ok((out.rows.map(|r| r.len()), outside))
                } else {
                    let r = intersect_ids(&ctx, &sets[i], &config)?;
                    Ok((r.rows.map(|r| r.len()), 0.0))
                }
            });
        let wall = start.elapsed().as_secs_f64();
        let cpu = process_cpu_seconds() - cpu_start;
        let bytes: u64 = outcomes.iter().map(|o| o.counters.bytes_sent()).sum();
        let want = synthetic_overlap_count(n, args.overlap);
        let mut files_s: f64 = 0.0;
        for o in &outcomes {
            let (got, outside) = *o.result.as_ref().expect("checked by run_ok");
            assert_eq!(got, Some(want), "{}: wrong intersection size", o.party);
            files_s = files_s.max(outside);
        }
        drop(outcomes);
        if args.csv {
            let _ = std::fs::remove_dir_all(&dir);
        }
        drop(sets);
        // Group operations of the run: every party blinds its set; in the two-party protocol
        // each also re-blinds the other's; with more parties the leader re-blinds every host
        // set and the helper the leader's set.
        let parties = args.parties as f64;
        let n_f = n as f64;
        let (blinds, reblinds) = if args.parties == 2 {
            (2.0 * n_f, 2.0 * n_f)
        } else {
            (parties * n_f, parties * n_f)
        };
        let floor = (blinds / blind_rate + reblinds / reblind_rate) / cores as f64;
        let elements_per_s = parties * n_f / wall;
        let rss = peak_rss_bytes().unwrap_or(0);
        if args.json {
            println!(
                "{{\"ids_per_party\":{n},\"parties\":{},\"overlap\":{},\"wall_s\":{wall:.3},\"floor_s\":{floor:.3},\"cpu_s\":{cpu:.2},\"files_s\":{files_s:.2},\"elements_per_s\":{elements_per_s:.0},\"bytes_exchanged\":{bytes},\"peak_rss_bytes\":{rss},\"blind_per_core_s\":{blind_rate:.0},\"reblind_per_core_s\":{reblind_rate:.0},\"cores\":{cores}}}",
                args.parties, args.overlap
            );
        } else {
            println!(
                "{n:>10} {wall:>9.2} {floor:>9.2} {:>8.3} {cpu:>9.2} {:>8.3} {files_s:>8.2} {elements_per_s:>13.0} {:>11.1} {:>12.1}",
                wall / floor,
                cpu / (floor * cores as f64),
                bytes as f64 / 1e6,
                rss as f64 / 1e6
            );
        }
    }
}
