//! `ferry psi --protocol unbalanced`: unbalanced PSI between two parties' files, each party a
//! process over loopback TLS. The querier is the `--receivers` party (default: the guest), the
//! provider the other. The provider's key and filter live in `<out-dir>/<provider>.upsi/`
//! (built once per dataset version: the SHA-256 of its file), the querier's cached filter in
//! `<out-dir>/<querier>.upsi-cache/`; a second run on unchanged data reuses both.

use super::PsiArgs;
use crate::launch::{Launch, launch, parse_roster};
use anyhow::{Context as _, bail, ensure};
use ferry_context::{Context, PartyId, Role};
use ferry_psi::unbalanced::{self, ProviderState, Querier};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The launcher's protocol name (registered in `crate::protocols`).
pub const PROTOCOL: &str = "psi-unbalanced";

pub fn run(args: &PsiArgs) -> anyhow::Result<()> {
    let roster = parse_roster(&args.parties)?;
    let data: Vec<(PartyId, Role)> = roster
        .parties()
        .filter(|(_, r)| *r != Role::Arbiter)
        .map(|(p, r)| (p.clone(), r))
        .collect();
    ensure!(
        data.len() == 2,
        "--protocol unbalanced runs between two parties (a provider and a querier); --parties \
         names {}",
        data.len()
    );
    let querier = if args.receivers == "all" {
        data.iter()
            .find(|(_, r)| *r == Role::Guest)
            .unwrap_or(&data[0])
            .0
            .clone()
    } else {
        let q = PartyId::new(args.receivers.clone())?;
        ensure!(
            data.iter().any(|(p, _)| *p == q),
            "--receivers '{q}' is not one of the parties ({})",
            args.parties
        );
        q
    };
    let provider = data
        .iter()
        .map(|(p, _)| p)
        .find(|p| **p != querier)
        .expect("two parties")
        .clone();
    let mut files = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for item in &args.inputs {
        let (party, path) = item
            .split_once('=')
            .with_context(|| format!("--input '{item}' is not PARTY=FILE"))?;
        let path = std::fs::canonicalize(path).with_context(|| format!("{path}: no such file"))?;
        files.insert(party.to_string(), path);
    }
    for item in &args.keys_for {
        let (party, columns) = item
            .split_once('=')
            .with_context(|| format!("--key-for '{item}' is not PARTY=COLUMNS"))?;
        let columns: Vec<String> = columns.split(',').map(|c| c.trim().to_string()).collect();
        ensure!(
            columns.iter().all(|c| !c.is_empty()),
            "--key-for '{item}': empty column name"
        );
        keys.insert(party.to_string(), columns);
    }
    for p in [&querier, &provider] {
        let file = files
            .get(p.as_str())
            .with_context(|| format!("no --input for party '{p}'"))?;
        let columns = keys
            .entry(p.to_string())
            .or_insert_with(|| args.keys.clone());
        let refs: Vec<&str> = columns.iter().map(String::as_str).collect();
        ferry_psi::PsiInput::new(file, &refs)
            .check()
            .with_context(|| format!("party '{p}'"))?;
    }
    std::fs::create_dir_all(&args.out_dir)?;
    let out_dir = std::fs::canonicalize(&args.out_dir)?;
    let tmp = tempfile::tempdir()?;
    let outputs = launch(&Launch {
        roster,
        protocol: PROTOCOL.into(),
        params: json!({
            "files": files, "keys": keys, "out_dir": out_dir,
            "querier": querier, "provider": provider,
        }),
        work_dir: tmp.path().to_path_buf(),
        timeout: Duration::from_secs(3600),
        binary: std::env::current_exe()?,
    })?;
    std::fs::write(
        out_dir.join("reports.json"),
        serde_json::to_vec_pretty(&outputs)?,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outputs)?);
    } else {
        for o in &outputs {
            match (&o.error, o.party == querier.as_str()) {
                (Some(e), _) => println!("{}: error: {e}", o.party),
                (None, true) => println!(
                    "{} (querier): {} distinct ids, intersection {}, online {:.2} s, filter \
                     downloaded {:.1} MB, output {}",
                    o.party,
                    o.result["unique_ids"],
                    o.result["intersection_size"],
                    o.result["online_seconds"].as_f64().unwrap_or(f64::NAN),
                    o.result["filter_downloaded_bytes"].as_f64().unwrap_or(0.0) / 1e6,
                    o.result["output_file"].as_str().unwrap_or("-"),
                ),
                (None, false) => println!(
                    "{} (provider): {} ids in the filter ({}), {}; answered {} queries in {:.2} s",
                    o.party,
                    o.result["filter_ids"],
                    o.result["filter"]["dataset_version"]
                        .as_str()
                        .unwrap_or("?"),
                    if o.result["preprocessing"].is_null() {
                        "filter reused".to_string()
                    } else {
                        format!(
                            "filter built in {:.1} s",
                            o.result["preprocessing_seconds"]
                                .as_f64()
                                .unwrap_or(f64::NAN)
                        )
                    },
                    o.result["query_size"],
                    o.result["seconds"].as_f64().unwrap_or(f64::NAN),
                ),
            }
        }
        println!("reports: {}", out_dir.join("reports.json").display());
    }
    if outputs.iter().any(|o| !o.ok) {
        bail!("PSI failed");
    }
    Ok(())
}

/// One party of `ferry psi --protocol unbalanced`.
pub fn run_protocol(ctx: &Context, params: &Value) -> anyhow::Result<Value> {
    let me = ctx.me().as_str();
    let file = params["files"][me]
        .as_str()
        .with_context(|| format!("no input file for party '{me}'"))?;
    let keys: Vec<String> = serde_json::from_value(params["keys"][me].clone())?;
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let out_dir = PathBuf::from(params["out_dir"].as_str().context("no output directory")?);
    if params["provider"].as_str() == Some(me) {
        let started = Instant::now();
        let state = ProviderState {
            dir: out_dir.join(format!("{me}.upsi")),
        };
        let input = ferry_psi::PsiInput::new(file, &refs);
        let (key, filter, built) = state.prepare(&input, None)?;
        let preprocessing_seconds = started.elapsed().as_secs_f64();
        let stats = unbalanced::serve(
            ctx,
            &unbalanced::Provider {
                key: &key,
                filter: &filter,
                max_query: unbalanced::DEFAULT_MAX_QUERY,
            },
        )?;
        return Ok(json!({
            "protocol": stats.protocol, "filter": stats.filter, "filter_ids": filter.len(),
            "query_size": stats.query_size, "filter_sent": stats.filter_sent,
            "seconds": stats.seconds, "preprocessing": built,
            "preprocessing_seconds": preprocessing_seconds,
        }));
    }
    let output = out_dir.join(format!("{me}.intersection.csv"));
    let input = ferry_psi::PsiInput::new(file, &refs).with_output(&output);
    let querier = Querier::new(out_dir.join(format!("{me}.upsi-cache")));
    let (o, rows) = unbalanced::query_file(ctx, &input, &querier)?;
    let stats = &o.result.stats;
    Ok(json!({
        "protocol": stats.protocol, "filter": o.filter, "input_ids": stats.input_ids,
        "unique_ids": stats.unique_ids, "duplicates_dropped": stats.duplicates_dropped,
        "peer_set_sizes": stats.peer_set_sizes, "intersection_size": stats.intersection_size,
        "output_rows": rows.len(), "output_file": output,
        "filter_downloaded_bytes": o.filter_downloaded_bytes,
        "download_seconds": o.download_seconds, "online_seconds": o.online_seconds,
    }))
}
