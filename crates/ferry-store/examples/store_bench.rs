//! Timings of the store's main operations on this machine's disk, each beside a baseline
//! measured in the same run (what the operation cannot be faster than).
//!
//! `cargo run --release -p ferry-store --example store_bench [-- <csv file>]`
//! Without an argument it uses shared/datasets/default_credit_hetero_guest.csv, or a
//! synthetic 30,000-row file if that is absent.

use ferry_store::{
    JobRow, JobStatus, LabelKind, ModelLineage, ModelSigner, RegisterDataset, Store, StoreModel,
    TokenRole,
};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Under the working directory (a real disk), not a RAM-backed /tmp.
    let root = tempfile::tempdir_in(".")?;
    let signer = ModelSigner::generate()?;
    let store = Store::open(
        &root.path().join("state"),
        &root.path().join("data"),
        signer,
    )?;

    let source: PathBuf = match std::env::args().nth(1) {
        Some(p) => p.into(),
        None => {
            let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/datasets/default_credit_hetero_guest.csv");
            if shared.is_file() {
                shared
            } else {
                let p = root.path().join("synthetic.csv");
                let mut f = std::io::BufWriter::new(File::create(&p)?);
                writeln!(
                    f,
                    "id,y,{}",
                    (0..12)
                        .map(|j| format!("x{j}"))
                        .collect::<Vec<_>>()
                        .join(",")
                )?;
                for i in 0..30_000u64 {
                    let xs: Vec<String> = (0..12)
                        .map(|j| format!("{:.4}", ((i * 31 + j * 17) % 997) as f64 / 97.0))
                        .collect();
                    writeln!(f, "{i},{},{}", i % 2, xs.join(","))?;
                }
                f.flush()?;
                p
            }
        }
    };
    let size = std::fs::metadata(&source)?.len();
    println!(
        "dataset: {} ({:.1} MB)",
        source.display(),
        size as f64 / 1e6
    );

    // Durable write floor: write + fsync of a small file.
    let floor_path = root.path().join("floor");
    let t = Instant::now();
    let n_floor = 100;
    for i in 0..n_floor {
        let mut f = File::create(&floor_path)?;
        f.write_all(format!("{i}").as_bytes())?;
        f.sync_all()?;
    }
    let fsync_ms = ms(t) / n_floor as f64;
    println!("baseline: small file write + fsync            {fsync_ms:8.3} ms");

    // Registration vs copying the file and reading it with ferry-data.
    let t = Instant::now();
    std::fs::copy(&source, root.path().join("copy.csv"))?;
    let copy_ms = ms(t);
    let t = Instant::now();
    let spec = ferry_data::DatasetSpec::with_label("y", LabelKind::Binary);
    let parsed = ferry_data::Dataset::read_csv(&source, &spec)?;
    let parse_ms = ms(t);
    let mut req = RegisterDataset::new("credit", &source);
    req.label = Some("y".into());
    req.label_kind = LabelKind::Binary;
    let t = Instant::now();
    let rec = store.register_dataset(req)?;
    let register_ms = ms(t);
    assert_eq!(rec.rows as usize, parsed.n_rows());
    println!("baseline: fs::copy                            {copy_ms:8.1} ms");
    println!("baseline: ferry_data::Dataset::read_csv       {parse_ms:8.1} ms");
    println!(
        "register_dataset ({} rows, {} cols)      {register_ms:8.1} ms",
        rec.rows,
        rec.columns.len()
    );
    let t = Instant::now();
    store.describe_dataset("credit")?;
    println!(
        "describe_dataset (first, computed)            {:8.1} ms",
        ms(t)
    );
    let t = Instant::now();
    store.describe_dataset("credit")?;
    println!(
        "describe_dataset (cached)                     {:8.3} ms",
        ms(t)
    );

    // Models: 1 MB payload.
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let t = Instant::now();
    {
        let mut f = File::create(root.path().join("raw.bin"))?;
        f.write_all(&payload)?;
        f.sync_all()?;
    }
    println!(
        "baseline: 1 MB write + fsync                  {:8.2} ms",
        ms(t)
    );
    let req = StoreModel {
        name: "m".into(),
        kind: "hetero_secureboost".into(),
        role: "guest".into(),
        payload: payload.clone(),
        lineage: ModelLineage::default(),
        metrics: serde_json::json!({"auc": 0.8}),
    };
    let t = Instant::now();
    store.store_model(req)?;
    println!(
        "store_model (1 MB)                            {:8.2} ms",
        ms(t)
    );
    let t = Instant::now();
    let _ = std::fs::read(root.path().join("raw.bin"))?;
    println!(
        "baseline: 1 MB read                           {:8.2} ms",
        ms(t)
    );
    let t = Instant::now();
    store.load_model("m", None)?;
    println!(
        "load_model (1 MB, hash + signature checked)   {:8.2} ms",
        ms(t)
    );

    // Logs: one durable transaction per line vs a batch.
    store.insert_job(&JobRow::new(
        "job",
        "{}",
        "bank",
        "guest",
        JobStatus::Running,
    ))?;
    let n = 200;
    let t = Instant::now();
    for i in 0..n {
        store.append_log("job", "train", &format!("line {i}"))?;
    }
    let single = ms(t) / n as f64;
    let lines: Vec<String> = (0..n).map(|i| format!("batched {i}")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let t = Instant::now();
    store.append_logs("job", "train", &refs)?;
    let batch = ms(t);
    println!("append_log, one call per line                 {single:8.3} ms/line");
    println!("append_logs, {n} lines in one call           {batch:8.3} ms total");

    // Token check (per API request).
    for i in 0..20 {
        store.create_token(&format!("t{i}"), TokenRole::User)?;
    }
    let (_, secret) = store.create_token("bench", TokenRole::Admin)?;
    let t = Instant::now();
    let m = 1000;
    for _ in 0..m {
        assert!(store.verify_token(&secret)?.is_some());
    }
    println!(
        "verify_token (21 live tokens)                 {:8.4} ms",
        ms(t) / m as f64
    );
    Ok(())
}
