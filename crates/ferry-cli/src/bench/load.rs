//! `ferry bench load`: many small jobs across three nodes, each a `ferry serve` process on
//! loopback TLS, kept `--concurrency` at a time until `--jobs` have run: jobs per minute, the
//! failures, and each node's resident memory — its peak, and its size after the first tenth of
//! the jobs against the end, so a leak shows as growth over the soak.
//!
//! The jobs alternate between two-party PSI (bank, telco) and three-party PSI (bank, telco,
//! insurer) on `--rows` ids; the hosts approve automatically.

use crate::bench::machine::Machine;
use crate::client::ApiClient;
use anyhow::{Context, bail};
use clap::Args;
use ferry_context::PartyId;
use ferry_store::{GrantTarget, RegisterDataset};
use ferry_transport::NodeDir;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct LoadBenchArgs {
    /// Jobs to run in all.
    #[arg(long, default_value_t = 300)]
    jobs: usize,
    /// Jobs in flight at once.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Ids per party in each job.
    #[arg(long, default_value_t = 1000)]
    rows: usize,
    #[arg(long)]
    json: bool,
}

const PARTIES: [&str; 3] = ["bank", "telco", "insurer"];

/// A node process, killed when dropped.
struct Node {
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident set size and its peak (`VmRSS`, `VmHWM`) of a process, in bytes (Linux).
fn memory_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Three node directories pinned to each other, each with its dataset `ids` (the hosts grant
/// theirs to the bank), the hosts approving automatically.
fn prepare(root: &Path, rows: usize) -> anyhow::Result<Vec<PathBuf>> {
    let parties = PARTIES
        .iter()
        .map(|p| PartyId::new(*p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut dirs = Vec::new();
    for (party, dir) in crate::launch::pinned_nodes(root, &parties)? {
        let mut node = NodeDir::open(&dir)?;
        node.config.auto_approve = party.as_str() != "bank";
        node.save()?;
        crate::node_cmds::create_admin_token(&dir)?;
        dirs.push(dir);
    }
    let data = root.join("input");
    std::fs::create_dir_all(&data)?;
    for (i, dir) in dirs.iter().enumerate() {
        // Overlapping ranges: every party has most ids, each misses some.
        let file = data.join(format!("{}.csv", PARTIES[i]));
        let mut text = String::from("id,x\n");
        for r in (i * rows / 10)..(rows + i * rows / 10) {
            text += &format!("u{r},{}\n", r % 7);
        }
        std::fs::write(&file, text)?;
        let (_, store) = crate::node_cmds::open_store(dir)?;
        let mut req = RegisterDataset::new("ids", &file);
        req.id_columns = vec!["id".into()];
        store.register_dataset(req)?;
        if i > 0 {
            store.grant("ids", GrantTarget::Party("bank".into()))?;
        }
    }
    Ok(dirs)
}

fn spec(three: bool) -> String {
    let (hosts, params) = if three {
        (
            "[telco, insurer]",
            "bank: {dataset: ids}, telco: {dataset: ids}, insurer: {dataset: ids}",
        )
    } else {
        ("[telco]", "bank: {dataset: ids}, telco: {dataset: ids}")
    };
    format!(
        "parties: {{guest: bank, hosts: {hosts}}}\ntimeout_secs: 300\ntasks:\n  - {{name: read, component: reader, party_params: {{{params}}}}}\n  - {{name: intersect, component: psi, inputs: {{data: read}}}}\n"
    )
}

pub fn run(args: LoadBenchArgs) -> anyhow::Result<()> {
    if args.jobs == 0 || args.concurrency == 0 {
        bail!("--jobs and --concurrency must be at least 1");
    }
    let machine = Machine::detect();
    let tmp = tempfile::tempdir()?;
    let dirs = prepare(tmp.path(), args.rows)?;
    let exe = std::env::current_exe().context("cannot find the ferry binary")?;
    let mut nodes = Vec::new();
    for dir in &dirs {
        let log = std::fs::File::create(dir.join("serve.log"))?;
        let child = Command::new(&exe)
            .arg("serve")
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start a node")?;
        nodes.push(Node { child });
    }
    let clients: Vec<ApiClient> = dirs
        .iter()
        .map(|d| ApiClient::for_node(d, None, None))
        .collect::<anyhow::Result<_>>()?;
    for c in &clients {
        c.wait_ready(Duration::from_secs(30))?;
    }
    let pids: Vec<u32> = nodes.iter().map(|n| n.child.id()).collect();

    // Memory sampled while the jobs run: after the first tenth of them, and at the end.
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let early: Arc<Mutex<Option<Vec<u64>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (done, early, stop, pids) = (done.clone(), early.clone(), stop.clone(), pids.clone());
        let tenth = args.jobs.div_ceil(10);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if done.load(Ordering::SeqCst) >= tenth {
                    let mut e = early.lock().unwrap_or_else(|p| p.into_inner());
                    if e.is_none() {
                        *e = Some(
                            pids.iter()
                                .map(|p| memory_of(*p).map(|m| m.0).unwrap_or(0))
                                .collect(),
                        );
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.min(args.jobs))
        .map(|_| {
            let (next, done, failed) = (next.clone(), done.clone(), failed.clone());
            let client = ApiClient::for_node(&dirs[0], None, None);
            let jobs = args.jobs;
            std::thread::spawn(move || -> anyhow::Result<()> {
                let client = client?;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= jobs {
                        return Ok(());
                    }
                    let answer =
                        client.post_json("/api/v1/jobs", &json!({"spec": spec(i % 2 == 1)}))?;
                    let id = answer["job_id"].as_str().unwrap_or_default().to_string();
                    loop {
                        let v: Value = client.get(&format!("/api/v1/jobs/{id}"))?;
                        match v["job"]["status"].as_str() {
                            Some("succeeded") => break,
                            Some("failed" | "cancelled") => {
                                failed
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push(format!(
                                        "{id}: {}",
                                        v["job"]["reason"].as_str().unwrap_or("")
                                    ));
                                break;
                            }
                            _ => std::thread::sleep(Duration::from_millis(50)),
                        }
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("a load worker panicked"))??;
    }
    let wall = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let _ = sampler.join();
    let early = early
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default();
    let failed = failed.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let per_node: Vec<Value> = pids
        .iter()
        .enumerate()
        .map(|(i, pid)| {
            let (rss, peak) = memory_of(*pid).unwrap_or((0, 0));
            let after_tenth = early.get(i).copied().unwrap_or(0);
            json!({
                "party": PARTIES[i],
                "peak_rss_mib": peak as f64 / (1 << 20) as f64,
                "rss_after_first_tenth_mib": after_tenth as f64 / (1 << 20) as f64,
                "rss_at_end_mib": rss as f64 / (1 << 20) as f64,
                "growth_over_soak": if after_tenth > 0 { rss as f64 / after_tenth as f64 } else { 0.0 },
            })
        })
        .collect();
    let jobs_per_minute = args.jobs as f64 / wall * 60.0;
    let report = json!({
        "benchmark": "load",
        "jobs": args.jobs,
        "concurrency": args.concurrency,
        "rows": args.rows,
        "wall_s": wall,
        "jobs_per_minute": jobs_per_minute,
        "failed": failed.len(),
        "failures": failed.iter().take(5).collect::<Vec<_>>(),
        "nodes": per_node,
        "machine": machine,
    });
    drop(nodes);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", machine.render());
        println!(
            "{} jobs (two- and three-party PSI on {} ids), {} at a time, three nodes as processes over loopback TLS",
            args.jobs, args.rows, args.concurrency
        );
        println!(
            "  {:.1} s wall, {:.0} jobs/minute, {} failed",
            wall,
            jobs_per_minute,
            failed.len()
        );
        for n in &per_node {
            println!(
                "  {:<8} peak RSS {:>7.1} MiB; RSS after the first tenth {:>7.1} MiB, at the end {:>7.1} MiB (x{:.2})",
                n["party"].as_str().unwrap_or(""),
                n["peak_rss_mib"].as_f64().unwrap_or(0.0),
                n["rss_after_first_tenth_mib"].as_f64().unwrap_or(0.0),
                n["rss_at_end_mib"].as_f64().unwrap_or(0.0),
                n["growth_over_soak"].as_f64().unwrap_or(0.0),
            );
        }
        for f in failed.iter().take(5) {
            println!("  failed: {f}");
        }
    }
    if !failed.is_empty() {
        bail!("{} of {} jobs failed", failed.len(), args.jobs);
    }
    Ok(())
}
