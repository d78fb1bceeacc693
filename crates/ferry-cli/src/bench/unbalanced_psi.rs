//! `ferry bench psi --protocol unbalanced --size Q --provider-size P`: unbalanced PSI, a
//! provider with P ids and a querier with Q.
//!
//! 1. Preprocessing, in this process (the provider's one-off work): P synthetic ids, the OPRF
//!    on each (parallel over every core), sorting, the filter written to the work directory
//!    with the provider's key. Timed in parts.
//! 2. The online runs, the querier (`bank`) and the provider (`telco`) each a `ferry
//!    run-party` process over loopback TLS: run 1 finds the querier's cache empty and
//!    downloads the filter; runs 2.. reuse the cached copy (the steady state, what the target
//!    "online ≤ 10 s" is about). The intersection is checked against the generated overlap.

use super::federated::run_launch;
use super::machine::Machine;
use anyhow::{Context as _, bail, ensure};
use ferry_context::Context;
use ferry_psi::unbalanced::{self, Filter, OprfKey, Provider, Querier};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Instant;

/// The protocol the launcher runs (dispatched in `federated::run_protocol`).
pub const PROTOCOL: &str = "bench-psi-unbalanced";

const DATASET_VERSION: &str = "bench-synthetic-v1";

/// What `ferry bench psi --protocol unbalanced` is asked to do.
pub struct UnbalancedBench {
    pub querier_size: usize,
    pub provider_size: usize,
    pub overlap: f64,
    /// Online runs (the first downloads the filter).
    pub runs: usize,
    pub json: bool,
    pub work_dir: Option<PathBuf>,
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn run(b: &UnbalancedBench) -> anyhow::Result<()> {
    ensure!(b.runs >= 1, "--runs must be at least 1");
    let expected = ferry_psi::synthetic_overlap_count(b.querier_size, b.overlap);
    ensure!(
        expected <= b.provider_size,
        "the overlap ({expected} ids) does not fit in --provider-size {}",
        b.provider_size
    );
    let machine = Machine::detect();
    let tmp = tempfile::tempdir()?;
    let work = b
        .work_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&work)?;
    let key_file = work.join("provider.oprf-key");
    let filter_file = work.join("provider.filter");
    let cache_dir = work.join("querier-cache");
    // A fresh cache every invocation, so run 1 measures the download.
    let _ = std::fs::remove_dir_all(&cache_dir);

    // Preprocessing. The provider's synthetic ids all come from the shared stream of
    // `synthetic_ids`, so they contain the querier's shared part exactly.
    let load_before = load_average();
    let started = Instant::now();
    let key = OprfKey::rotate(&key_file)?;
    let t = Instant::now();
    let ids = ferry_psi::synthetic_ids(b.provider_size, 1.0, 42, 1);
    let generate_seconds = t.elapsed().as_secs_f64();
    let (filter, report) = Filter::build(&key, &ids, DATASET_VERSION)?;
    drop(ids);
    let t = Instant::now();
    filter.write(&filter_file)?;
    let write_seconds = t.elapsed().as_secs_f64();
    drop(filter);
    let preprocessing_seconds = started.elapsed().as_secs_f64();
    let load_after_preprocessing = load_average();

    let outputs = run_launch(
        "bank:guest,telco:host",
        PROTOCOL,
        json!({
            "querier_size": b.querier_size,
            "overlap": b.overlap,
            "runs": b.runs,
            "max_query": b.querier_size,
            "key": key_file,
            "filter": filter_file,
            "cache": cache_dir,
        }),
        &Some(work.clone()),
        3600,
    )?;
    let load_after_online = load_average();
    let querier = outputs
        .iter()
        .find(|o| o.party == "bank")
        .context("no output from the querier")?;
    let provider = outputs
        .iter()
        .find(|o| o.party == "telco")
        .context("no output from the provider")?;
    let runs = querier.result["runs"]
        .as_array()
        .context("the querier reported no runs")?;
    for (i, r) in runs.iter().enumerate() {
        if r["intersection"].as_u64() != Some(expected as u64) {
            bail!(
                "online run {}: intersection {} differs from the generated overlap {expected}",
                i + 1,
                r["intersection"]
            );
        }
    }
    let steady: Vec<f64> = runs
        .iter()
        .skip(1)
        .filter_map(|r| r["online_seconds"].as_f64())
        .collect();
    let result = json!({
        "machine": machine,
        "protocol": "unbalanced",
        "querier_size": b.querier_size,
        "provider_size": b.provider_size,
        "overlap": b.overlap,
        "expected_intersection": expected,
        "preprocessing": {
            "seconds": preprocessing_seconds,
            "generate_ids_seconds": generate_seconds,
            "oprf_seconds": report.oprf_seconds,
            "sort_seconds": report.sort_seconds,
            "write_seconds": write_seconds,
            "tag_bits": report.tag_bits,
            "unique_tags": report.unique_tags,
            "filter_bytes": report.filter_bytes,
            "ids_per_second": b.provider_size as f64 / report.oprf_seconds,
        },
        "online_runs": runs,
        "provider": provider.result,
        "steady_online_seconds": steady,
        "load_average": {
            "before": load_before,
            "after_preprocessing": load_after_preprocessing,
            "after_online": load_after_online,
        },
        "outputs": outputs,
    });
    if b.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", render(&result, &machine));
    }
    Ok(())
}

fn render(r: &Value, machine: &Machine) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let pre = &r["preprocessing"];
    let mut s = format!(
        "ferry bench psi — unbalanced PSI (2HashDH OPRF on Ristretto255, filter of {}-bit tags), provider {} IDs, querier {} IDs, overlap {}\n",
        pre["tag_bits"], r["provider_size"], r["querier_size"], r["overlap"]
    );
    s.push_str(&machine.render());
    s.push_str(&format!(
        "\nload average          {} before, {} after preprocessing, {} after the online runs\n\n",
        r["load_average"]["before"],
        r["load_average"]["after_preprocessing"],
        r["load_average"]["after_online"]
    ));
    s.push_str(&format!(
        "preprocessing         {:.1} s in all (in this process, every core): ids {:.1} s, OPRF {:.1} s ({:.0} ids/s), sort {:.1} s, write {:.1} s\n",
        f(&pre["seconds"]),
        f(&pre["generate_ids_seconds"]),
        f(&pre["oprf_seconds"]),
        f(&pre["ids_per_second"]),
        f(&pre["sort_seconds"]),
        f(&pre["write_seconds"]),
    ));
    s.push_str(&format!(
        "filter                {:.1} MB ({} tags)\n\n",
        f(&pre["filter_bytes"]) / 1e6,
        pre["unique_tags"]
    ));
    s.push_str("run  download s  online s  intersection  querier sent MB  querier received MB\n");
    if let Some(runs) = r["online_runs"].as_array() {
        for (i, run) in runs.iter().enumerate() {
            s.push_str(&format!(
                "{:<4} {:>10.2} {:>9.2} {:>13} {:>16.2} {:>20.2}\n",
                i + 1,
                f(&run["download_seconds"]),
                f(&run["online_seconds"]),
                run["intersection"],
                f(&run["bytes_sent"]) / 1e6,
                f(&run["bytes_received"]) / 1e6,
            ));
        }
    }
    s.push_str(&format!(
        "\nonline (cached filter) {}   expected intersection {}\n",
        r["steady_online_seconds"], r["expected_intersection"]
    ));
    s
}

fn path_param(params: &Value, name: &str) -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(
        params[name].as_str().with_context(|| format!("'{name}'"))?,
    ))
}

/// One party of the online runs: `telco` serves, `bank` queries.
pub fn run_party(ctx: &Context, params: &Value) -> anyhow::Result<Value> {
    let runs = params["runs"].as_u64().context("'runs'")? as usize;
    if ctx.me().as_str() == "telco" {
        let t = Instant::now();
        let key = OprfKey::load(&path_param(params, "key")?)?;
        let filter = Filter::read(&path_param(params, "filter")?)?;
        let load_seconds = t.elapsed().as_secs_f64();
        let provider = Provider {
            key: &key,
            filter: &filter,
            max_query: params["max_query"].as_u64().context("'max_query'")?,
        };
        let mut served = Vec::new();
        for i in 0..runs {
            let stats = unbalanced::serve(&ctx.sub(format!("run{i}")), &provider)?;
            served.push(serde_json::to_value(stats)?);
        }
        return Ok(json!({"filter_load_seconds": load_seconds, "runs": served}));
    }
    let size = params["querier_size"].as_u64().context("'querier_size'")? as usize;
    let overlap = params["overlap"].as_f64().context("'overlap'")?;
    let ids = ferry_psi::synthetic_ids(size, overlap, 42, 0);
    let querier = Querier::new(path_param(params, "cache")?);
    let mut out = Vec::new();
    for i in 0..runs {
        let before = ctx.counters();
        let o = unbalanced::query(&ctx.sub(format!("run{i}")), &ids, &querier)?;
        let after = ctx.counters();
        out.push(json!({
            "download_seconds": o.download_seconds,
            "online_seconds": o.online_seconds,
            "intersection": o.result.stats.intersection_size,
            "filter_downloaded_bytes": o.filter_downloaded_bytes,
            "bytes_sent": after.bytes_sent() - before.bytes_sent(),
            "bytes_received": after.bytes_received() - before.bytes_received(),
        }));
    }
    Ok(json!({"runs": out, "cache": querier.cache_file(&"telco".parse()?).exists()}))
}
