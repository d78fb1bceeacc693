//! `ferry psi`: private set intersection of files held by two or more parties, each party a
//! separate process over loopback TLS (the launcher), writing each receiver's rows in the
//! intersection and a report. Between configured nodes, PSI runs as the `psi` job component.

use crate::launch::{Launch, launch, parse_roster};
use anyhow::{Context as _, bail};
use clap::Args;
use ferry_context::Context;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `--protocol unbalanced` (a file of its own: its roles and state differ from the others).
#[path = "psi_unbalanced.rs"]
pub(crate) mod unbalanced;

#[derive(Args)]
pub struct PsiArgs {
    /// Parties and roles, e.g. bank:guest,telco:host.
    #[arg(long, default_value = "bank:guest,telco:host")]
    parties: String,
    /// Each party's input file (CSV or Parquet): party=path, once per party.
    #[arg(long = "input", value_name = "PARTY=FILE", required = true)]
    inputs: Vec<String>,
    /// Key column(s); several form a composite key.
    #[arg(long = "key", default_value = "id")]
    keys: Vec<String>,
    /// One party's key column(s) when its file names them differently, e.g.
    /// `--key-for telco=phone_hash` or `--key-for bank=branch,account`; overrides --key.
    #[arg(long = "key-for", value_name = "PARTY=COLUMNS")]
    keys_for: Vec<String>,
    /// Who learns the intersection: all, or one party's name.
    #[arg(long, default_value = "all")]
    receivers: String,
    /// kkrt (OT-extension PSI, two parties), ecdh (any number of parties), or auto: kkrt for
    /// two parties, ecdh for more.
    /// Or unbalanced: the querier (the --receivers party, default the guest) asks the
    /// provider, whose filter is built once per file version under <out-dir>/<provider>.upsi.
    #[arg(long, default_value = "auto")]
    protocol: String,
    /// Crypto suite: default (Ristretto255 with SHA-512) or gm (the Chinese national suite:
    /// ECDH-PSI over SM2 with SM3; auto then means ecdh, and kkrt is refused).
    #[arg(long, default_value = "default")]
    suite: ferry_crypto::Suite,
    /// Directory for the output files (<party>.intersection.csv) and reports.
    #[arg(long, default_value = "psi-output")]
    out_dir: PathBuf,
    #[arg(long)]
    json: bool,
}

/// The `psi` protocol of the launcher: this party's file, key columns, output path.
pub fn run_protocol(ctx: &Context, params: &Value) -> anyhow::Result<Value> {
    let me = ctx.me().as_str();
    let file = params["files"][me]
        .as_str()
        .with_context(|| format!("no input file for party '{me}'"))?;
    let keys: Vec<String> = match params.get("keys_by_party").and_then(|k| k.get(me)) {
        Some(mine) => serde_json::from_value(mine.clone())?,
        None => serde_json::from_value(params["keys"].clone())?,
    };
    let out_dir = PathBuf::from(params["out_dir"].as_str().context("no output directory")?);
    let data_parties = ctx
        .roster()
        .parties()
        .filter(|(_, r)| *r != ferry_context::Role::Arbiter)
        .count();
    let suite: ferry_crypto::Suite = params["suite"]
        .as_str()
        .unwrap_or("default")
        .parse()
        .map_err(anyhow::Error::msg)?;
    let protocol = match params["protocol"].as_str().unwrap_or("auto") {
        "auto" => ferry_psi::PsiProtocol::default_for_suite(suite, data_parties, false),
        named => named.parse()?,
    };
    let mut config = ferry_psi::PsiConfig {
        protocol,
        group: ferry_psi::GroupKind::of_suite(suite),
        ..ferry_psi::PsiConfig::default()
    };
    if let Some(r) = params["receivers"].as_str().filter(|r| *r != "all") {
        config.receivers = ferry_psi::Receivers::Party(ferry_context::PartyId::new(r)?);
    }
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let input = ferry_psi::PsiInput::new(file, &key_refs)
        .with_output(out_dir.join(format!("{me}.intersection.csv")));
    let outcome = ferry_psi::run_psi(ctx, &input, &config)?;
    Ok(serde_json::to_value(outcome.report)?)
}

pub fn run(args: PsiArgs) -> anyhow::Result<()> {
    if args.protocol == "unbalanced" {
        // Unbalanced PSI's OPRF is over Ristretto255 only: running it under gm would silently
        // not be what was asked.
        if args.suite == ferry_crypto::Suite::Gm {
            bail!(
                "--protocol unbalanced is not available with --suite gm (its OPRF runs over Ristretto255): use --protocol ecdh under gm"
            );
        }
        return unbalanced::run(&args);
    }
    let roster = parse_roster(&args.parties)?;
    if args.protocol != "auto" {
        let protocol = args.protocol.parse::<ferry_psi::PsiProtocol>()?;
        if protocol == ferry_psi::PsiProtocol::Kkrt && args.suite == ferry_crypto::Suite::Gm {
            bail!(
                "--protocol kkrt is not available with --suite gm (its OT extension uses AES-128 \
                 and Ristretto255): use --protocol ecdh or auto"
            );
        }
    }
    let mut files = BTreeMap::new();
    for item in &args.inputs {
        let (party, path) = item
            .split_once('=')
            .with_context(|| format!("--input '{item}' is not PARTY=FILE"))?;
        let path = std::fs::canonicalize(path).with_context(|| format!("{path}: no such file"))?;
        files.insert(party.to_string(), json!(path));
    }
    for (p, _) in roster.parties() {
        if !files.contains_key(p.as_str()) {
            bail!("no --input for party '{p}'");
        }
    }
    let mut keys_by_party = BTreeMap::new();
    for item in &args.keys_for {
        let (party, columns) = item
            .split_once('=')
            .with_context(|| format!("--key-for '{item}' is not PARTY=COLUMNS"))?;
        if !files.contains_key(party) {
            bail!(
                "--key-for names '{party}', which is not one of the parties ({})",
                args.parties
            );
        }
        let columns: Vec<&str> = columns.split(',').map(str::trim).collect();
        if columns.iter().any(|c| c.is_empty()) {
            bail!("--key-for '{item}': empty column name");
        }
        keys_by_party.insert(party.to_string(), columns);
    }
    // Every file is local here: refuse a missing column or an empty file before any party
    // starts (and waits for the others).
    for (party, file) in &files {
        let keys: Vec<&str> = match keys_by_party.get(party) {
            Some(k) => k.clone(),
            None => args.keys.iter().map(String::as_str).collect(),
        };
        let path = file.as_str().expect("paths are strings");
        ferry_psi::PsiInput::new(path, &keys)
            .check()
            .with_context(|| format!("party '{party}'"))?;
    }
    std::fs::create_dir_all(&args.out_dir)?;
    let out_dir = std::fs::canonicalize(&args.out_dir)?;
    let tmp = tempfile::tempdir()?;
    let outputs = launch(&Launch {
        roster,
        protocol: "psi".into(),
        params: json!({
            "files": files, "keys": args.keys, "keys_by_party": keys_by_party,
            "receivers": args.receivers, "out_dir": out_dir, "protocol": args.protocol,
            "suite": args.suite.as_str(),
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
        println!(
            "{:<10} {:>10} {:>10} {:>10} {:>7} {:>13} {:>8} {:>10}  output",
            "party", "rows", "unique", "dupes", "empty", "intersection", "wall s", "sent MB"
        );
        for o in &outputs {
            let r = &o.result;
            if !o.ok {
                println!("{:<10} {:>10}", o.party, "failed");
                continue;
            }
            println!(
                "{:<10} {:>10} {:>10} {:>10} {:>7} {:>13} {:>8.2} {:>10.2}  {}",
                o.party,
                r["input_rows"].to_string(),
                r["unique_keys"].to_string(),
                r["duplicates_dropped"].to_string(),
                r["empty_keys"].to_string(),
                r["intersection_size"]
                    .as_u64()
                    .map(|v| v.to_string())
                    .unwrap_or("-".into()),
                o.wall_secs,
                o.bytes_sent as f64 / 1e6,
                r["output_file"].as_str().unwrap_or("-")
            );
        }
        for o in outputs.iter().filter(|o| !o.ok) {
            println!(
                "{}: error: {}",
                o.party,
                o.error.clone().unwrap_or_default()
            );
        }
        println!("reports: {}", out_dir.join("reports.json").display());
    }
    if outputs.iter().any(|o| !o.ok) {
        bail!("PSI failed");
    }
    Ok(())
}
