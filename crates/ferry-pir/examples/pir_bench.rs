//! Keyword PIR benchmark: both parties in this process (threads over the in-memory backend,
//! sharing the machine's cores and one rayon pool), on a synthetic table of phone numbers.
//!
//! ```text
//! cargo run --release -p ferry-pir --example pir_bench -- [--rows 1000000] [--value-bytes 64]
//!     [--batch 1000] [--bucket-load 64] [--seed 1] [--repeat 5]
//! ```
//!
//! Prints the CPU features and the kernel in use, the layout, preprocessing time (with its
//! parts), one query end to end with a cold cache (hint download included) and with a warm
//! one (the online cost), a batch of ids (half present, half absent), bytes per query up and
//! down, the hint size, and the provider's CPU seconds per query (process CPU time around
//! `ProviderTable::answer` alone). Every result is checked against the table.

use ferry_context::{LocalCluster, Role, Roster};
use ferry_pir::{
    HintCache, PirParams, ProviderTable, QueryLimits, QueryOutcome, ServeLimits, ServeReport,
    matrix, query_with, serve,
};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

struct Args {
    rows: usize,
    value_bytes: u32,
    batch: usize,
    bucket_load: u32,
    seed: u64,
    repeat: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        rows: 1_000_000,
        value_bytes: 64,
        batch: 1000,
        bucket_load: PirParams::default().bucket_load,
        seed: 1,
        repeat: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        let number = |s: String, name: &str| -> f64 {
            s.parse::<f64>()
                .unwrap_or_else(|_| panic!("{name}: a number like 1e6"))
        };
        match a.as_str() {
            "--rows" => args.rows = number(value("--rows"), "--rows") as usize,
            "--value-bytes" => {
                args.value_bytes = number(value("--value-bytes"), "--value-bytes") as u32
            }
            "--batch" => args.batch = number(value("--batch"), "--batch") as usize,
            "--bucket-load" => {
                args.bucket_load = number(value("--bucket-load"), "--bucket-load") as u32
            }
            "--seed" => args.seed = number(value("--seed"), "--seed") as u64,
            "--repeat" => args.repeat = number(value("--repeat"), "--repeat") as usize,
            other => panic!(
                "unknown argument {other}; use --rows --value-bytes --batch --bucket-load --seed --repeat"
            ),
        }
    }
    args
}

/// CPU seconds of this process so far (all threads; /proc/self/stat utime + stime, in
/// USER_HZ = 100 ticks per second).
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the ')'.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn cpu_features() -> String {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, on) in [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
            (
                "avx512ifma",
                std::arch::is_x86_feature_detected!("avx512ifma"),
            ),
        ] {
            out.push(format!("{name}={}", if on { "yes" } else { "no" }));
        }
    }
    out.join(" ")
}

fn roster() -> Roster {
    Roster::of(&[("bank", Role::Guest), ("telco", Role::Host)])
}

enum Side {
    Served(ServeReport),
    Queried(QueryOutcome),
}

/// One in-process session; returns (wall seconds, provider report, querier outcome).
fn session(
    table: &ProviderTable,
    ids: &[Vec<u8>],
    cache: &Mutex<Option<HintCache>>,
    seed: u64,
) -> (f64, ServeReport, QueryOutcome) {
    let start = Instant::now();
    let outcomes = LocalCluster::new(roster()).run_ok(|ctx| -> Result<Side, ferry_pir::PirError> {
        if ctx.me().as_str() == "telco" {
            serve(&ctx, table, &ServeLimits::default()).map(Side::Served)
        } else {
            let mut cache = cache.lock().expect("cache lock");
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            query_with(&ctx, ids, &mut cache, &QueryLimits::default(), &mut rng).map(Side::Queried)
        }
    });
    let wall = start.elapsed().as_secs_f64();
    let mut served = None;
    let mut queried = None;
    for o in outcomes {
        match o.unwrap() {
            Side::Served(r) => served = Some(r),
            Side::Queried(q) => queried = Some(q),
        }
    }
    (
        wall,
        served.expect("provider ran"),
        queried.expect("querier ran"),
    )
}

fn check(map: &HashMap<Vec<u8>, Vec<u8>>, ids: &[Vec<u8>], got: &QueryOutcome) {
    for (id, v) in ids.iter().zip(&got.values) {
        assert_eq!(
            v.as_ref(),
            map.get(id),
            "wrong result for id {}",
            String::from_utf8_lossy(id)
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args = parse_args();
    println!(
        "CPU: {} threads, {}; PIR kernel: {}",
        rayon::current_num_threads(),
        cpu_features(),
        matrix::kernel().name()
    );

    // Synthetic table: 11-digit phone numbers, random values.
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let mut map: HashMap<Vec<u8>, Vec<u8>> = HashMap::with_capacity(args.rows);
    while map.len() < args.rows {
        let key = format!("1{:010}", rng.random_range(0..10_000_000_000u64)).into_bytes();
        let mut value = vec![0u8; args.value_bytes as usize];
        rng.fill_bytes(&mut value);
        map.insert(key, value);
    }
    let params = PirParams {
        value_len: args.value_bytes,
        bucket_load: args.bucket_load,
        ..PirParams::default()
    };

    let cpu0 = process_cpu_seconds();
    let t = Instant::now();
    let table = ProviderTable::build(map.iter(), &params, &mut rng).expect("table builds");
    let build_wall = t.elapsed().as_secs_f64();
    let build_cpu = process_cpu_seconds() - cpu0;
    let l = *table.layout();
    let r = table.build_report().expect("built here");
    println!(
        "table: {} rows x {} value bytes; {} buckets x {} slots of {} bytes; matrix {} x {} = {:.1} MB; \
         overflow bound 2^{:.1}, decryption failure bound 2^{:.0}",
        l.rows,
        l.value_len,
        l.buckets,
        l.capacity,
        l.entry_len(),
        l.matrix_rows(),
        l.matrix_columns(),
        l.matrix_bytes() as f64 / 1e6,
        l.overflow_log2(),
        l.correctness_log2()
    );
    println!(
        "preprocessing: {build_wall:.2} s wall, {build_cpu:.1} CPU s (input {:.2} s, OPRF + encryption {:.2} s, \
         buckets + matrix {:.2} s, hint {:.2} s; salts tried {})",
        r.input_seconds, r.oprf_seconds, r.layout_seconds, r.hint_seconds, r.salt_attempts
    );

    let keys: Vec<Vec<u8>> = map.keys().take(args.batch.max(1)).cloned().collect();
    let cache = Mutex::new(None);

    // One query, cold: downloads the hint.
    let one = vec![keys[0].clone()];
    let (cold, _, out) = session(&table, &one, &cache, args.seed + 1);
    check(&map, &one, &out);
    println!(
        "one query, cold (hint download + A from seed included): {cold:.3} s; hint {:.1} MB",
        l.hint_bytes() as f64 / 1e6
    );

    // One query, warm: the online cost.
    let mut walls = Vec::new();
    let mut last = None;
    for i in 0..args.repeat.max(1) {
        let ids = if i % 2 == 0 {
            vec![keys[i % keys.len()].clone()]
        } else {
            vec![format!("absent-{i}").into_bytes()]
        };
        let (wall, served, out) = session(&table, &ids, &cache, args.seed + 10 + i as u64);
        check(&map, &ids, &out);
        assert!(!out.report.hint_downloaded);
        walls.push(wall);
        last = Some((served, out));
    }
    let (served, out) = last.expect("at least one repeat");
    println!(
        "one query, online (warm hint), end to end: median {:.3} s of {} (min {:.3} s); \
         provider answer {:.3} s",
        median(walls.clone()),
        walls.len(),
        walls.iter().copied().fold(f64::INFINITY, f64::min),
        served.answer_seconds
    );
    println!(
        "bytes per one-id session (messages included): up {}, down {}; payload: up 32 + 4·buckets = {}, \
         down 32 + 4·matrix_rows = {}",
        out.report.bytes_sent,
        out.report.bytes_received,
        32 + l.query_bytes(),
        32 + l.answer_bytes()
    );

    // A batch: half present, half absent.
    let batch: Vec<Vec<u8>> = (0..args.batch)
        .map(|i| {
            if i % 2 == 0 {
                keys[i % keys.len()].clone()
            } else {
                format!("absent-{i}").into_bytes()
            }
        })
        .collect();
    let cpu0 = process_cpu_seconds();
    let (wall, served, out) = session(&table, &batch, &cache, args.seed + 100);
    let cpu = process_cpu_seconds() - cpu0;
    check(&map, &batch, &out);
    println!(
        "batch of {} ids (found {}): {wall:.2} s end to end, {cpu:.1} CPU s (both parties); provider: \
         OPRF {:.3} s, answers {:.2} s; up {:.1} MB, down {:.1} MB",
        batch.len(),
        out.report.found,
        served.oprf_seconds,
        served.answer_seconds,
        out.report.bytes_sent as f64 / 1e6,
        out.report.bytes_received as f64 / 1e6
    );

    // Provider CPU per query: `answer` alone on random query vectors.
    let m = l.matrix_columns();
    let mut qrng = ChaCha20Rng::seed_from_u64(args.seed + 1000);
    for count in [1usize, 8, 64] {
        let queries: Vec<u32> = (0..count * m).map(|_| qrng.next_u32()).collect();
        let reps = if count == 1 { 10 } else { 2 };
        let cpu0 = process_cpu_seconds();
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(table.answer(&queries).expect("answers"));
        }
        let wall = t.elapsed().as_secs_f64() / (reps * count) as f64;
        let cpu = (process_cpu_seconds() - cpu0) / (reps * count) as f64;
        println!(
            "provider answer, {count} quer{} per call: {:.4} s wall and {:.4} CPU s per query \
             (database read at {:.1} GB/s, {:.1} G multiply-adds/s)",
            if count == 1 { "y" } else { "ies" },
            wall,
            cpu,
            // One pass over the database per group of 8 queries.
            count.div_ceil(8) as f64 * l.matrix_bytes() as f64 / (wall * count as f64) / 1e9,
            l.matrix_bytes() as f64 / wall / 1e9
        );
    }
    println!("peak RSS of the process: {:.0} MB", peak_rss_mb());
}
