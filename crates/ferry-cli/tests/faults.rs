//! Fault injection on real processes: two `ferry serve` nodes talk through loopback proxies the
//! test controls (cut every connection, or go silent while keeping them open), and a host is
//! killed with SIGKILL and restarted at a seeded random moment of PSI, SecureBoost and hetero
//! LR. Every run must end with both nodes agreeing on how the job ended (nothing left
//! "running"), within the liveness window when a partner is gone, and a new run must succeed.

mod common;

use common::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASS: u8 = 0;
/// Connections stay open, nothing is forwarded: a partner that hangs, or a network that
/// blackholes, as opposed to one that resets.
const SILENT: u8 = 1;

/// A TCP proxy in front of one node's federation endpoint.
struct Proxy {
    addr: String,
    mode: Arc<AtomicU8>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mode = Arc::new(AtomicU8::new(PASS));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (m, o) = (mode.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                {
                    let mut all = o.lock().unwrap();
                    all.push(client.try_clone().unwrap());
                    all.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let m = m.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            // Silent: read and drop, so the sender's writes succeed and
                            // nothing arrives (no reset, no error: only silence).
                            if m.load(Ordering::SeqCst) == SILENT {
                                continue;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, mode, open }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    /// Resets every connection through the proxy (both ends see them closed).
    fn cut(&self) {
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn append(dir: &Path, text: &str) {
    let path = dir.join("ferry.toml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(text);
    std::fs::write(&path, config).unwrap();
}

/// Bank, telco and insurer (the arbiter), each reaching the others through the proxy in front
/// of them; a short liveness window on all three.
struct Pair {
    _tmp: tempfile::TempDir,
    bank: PathBuf,
    telco: PathBuf,
    insurer: PathBuf,
    /// In front of the telco (what the others dial to reach it), and so on.
    to_telco: Proxy,
    to_bank: Proxy,
    _to_insurer: Proxy,
}

fn pair() -> Pair {
    let tmp = tempfile::tempdir().unwrap();
    // Every partner but the bank (which proposes) approves automatically.
    let bank = init_node(tmp.path(), "bank", false);
    let telco = init_node(tmp.path(), "telco", true);
    let insurer = init_node(tmp.path(), "insurer", true);
    let to_telco = Proxy::start(fed_addr(&telco));
    let to_bank = Proxy::start(fed_addr(&bank));
    let to_insurer = Proxy::start(fed_addr(&insurer));
    let nodes = [
        ("bank", &bank, &to_bank),
        ("telco", &telco, &to_telco),
        ("insurer", &insurer, &to_insurer),
    ];
    for (me_name, me, _) in nodes {
        for (name, other, proxy) in nodes {
            if name == me_name {
                continue;
            }
            ok(ferry()
                .args(["peer", "add", name, "--addr", &proxy.addr, "--cert"])
                .arg(other.join("identity/cert.pem"))
                .arg("--dir")
                .arg(me));
        }
        append(
            me,
            "\n[liveness]\nwindow_secs = 3\nheartbeat_secs = 0.5\n\n[policy]\nmin_paillier_bits = 1024\nmin_ou_bits = 1024\n",
        );
    }
    // Data from outside the node directories: vertical (the bank's labels and features, the
    // telco's features) and horizontal (both with labels, different people).
    let mut guest = String::from("id,y,a,b\n");
    let mut host = String::from("id,c,d\n");
    let mut rows_a = String::from("id,y,a,b\n");
    let mut rows_b = String::from("id,y,a,b\n");
    for i in 0..1500 {
        let x = (i as f64 * 0.37).sin();
        guest += &format!("u{i},{},{x},{}\n", (x > 0.1) as u8, i % 7);
        host += &format!("u{i},{},{}\n", (i as f64 * 0.11).cos(), x * 2.0);
        let row = format!("u{i},{},{x},{}\n", (x > 0.1) as u8, (i % 7) as f64 / 7.0);
        if i % 2 == 0 {
            rows_a += &row;
        } else {
            rows_b += &row;
        }
    }
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("guest.csv"), guest).unwrap();
    std::fs::write(data.join("host.csv"), host).unwrap();
    std::fs::write(data.join("rows_a.csv"), rows_a).unwrap();
    std::fs::write(data.join("rows_b.csv"), rows_b).unwrap();
    Pair {
        _tmp: tmp,
        bank,
        telco,
        insurer,
        to_telco,
        to_bank,
        _to_insurer: to_insurer,
    }
}

impl Pair {
    fn register(&self) {
        let data = self._tmp.path().join("data");
        for (dir, name, file, label) in [
            (&self.bank, "customers", "guest.csv", true),
            (&self.telco, "usage", "host.csv", false),
            (&self.bank, "rows", "rows_a.csv", true),
            (&self.telco, "rows", "rows_b.csv", true),
        ] {
            let mut cmd = ferry();
            cmd.args(["dataset", "add", name]);
            if label {
                cmd.args(["--label", "y"]);
            }
            ok(cmd.arg("--file").arg(data.join(file)).arg("--dir").arg(dir));
        }
        for name in ["usage", "rows"] {
            ok(ferry()
                .args(["dataset", "grant", name, "--party", "bank", "--dir"])
                .arg(&self.telco));
        }
    }

    fn submit_spec(&self, text: &str) -> String {
        let spec = self._tmp.path().join("job.yaml");
        std::fs::write(&spec, text).unwrap();
        let out = ok(ferry()
            .args(["job", "submit", "--dir"])
            .arg(&self.bank)
            .arg(&spec));
        out.trim().rsplit(' ').next().unwrap().to_string()
    }

    /// A vertical job between the bank and the telco: PSI, then `train` if given.
    fn submit(&self, train: &str) -> String {
        self.submit_spec(&vertical(train))
    }
}

fn vertical(train: &str) -> String {
    format!(
        r#"
parties: {{guest: bank, hosts: [telco]}}
tasks:
  - {{name: read, component: reader, party_params: {{bank: {{dataset: customers}}, telco: {{dataset: usage}}}}}}
  - {{name: intersect, component: psi, inputs: {{data: read}}}}
{train}"#
    )
}

/// Hetero LR coordinated by the insurer as arbiter.
const LR_WITH_ARBITER: &str = r#"
parties: {guest: bank, hosts: [telco], arbiter: insurer}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: customers}, telco: {dataset: usage}}}
  - {name: intersect, component: psi, inputs: {data: read}}
  - {name: train, component: hetero_lr, inputs: {train: intersect}, params: {max_epochs: 5, he: {key_bits: 1024}}}
"#;

/// FedAvg of the bank and the telco with the insurer as server.
const FEDAVG: &str = r#"
parties: {guest: bank, hosts: [telco], arbiter: insurer}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: rows}, telco: {dataset: rows}}}
  - {name: fed, component: fedavg, inputs: {train: read}, params: {rounds: 30, secure_aggregation: {}}}
"#;

const SECUREBOOST: &str = "  - {name: train, component: hetero_secureboost, inputs: {train: intersect}, params: {num_trees: 40, max_depth: 3, he: {key_bits: 1024}}}\n";
const HETERO_LR: &str = "  - {name: train, component: hetero_lr, inputs: {train: intersect}, params: {max_epochs: 5, he: {key_bits: 1024}}}\n";

fn status(dir: &Path, job: &str) -> Option<Value> {
    let out = run(ferry()
        .args(["job", "status", job, "--json", "--dir"])
        .arg(dir));
    out.status
        .success()
        .then(|| json_of(String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_until_with(what: impl Fn() -> String, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {}",
            what()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn job_status(dir: &Path, job: &str) -> String {
    status(dir, job)
        .map(|v| v["job"]["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Every party's status on `dir`'s record of `job` is final.
fn parties_final(dir: &Path, job: &str) -> bool {
    status(dir, job).is_some_and(|v| {
        v["parties"].as_array().is_some_and(|ps| {
            !ps.is_empty()
                && ps.iter().all(|p| {
                    matches!(
                        p["status"].as_str(),
                        Some("succeeded" | "failed" | "cancelled")
                    )
                })
        })
    })
}

fn task_running(dir: &Path, job: &str, task: &str) -> bool {
    status(dir, job).is_some_and(|v| {
        v["tasks"].as_array().is_some_and(|ts| {
            ts.iter()
                .any(|t| t["task"] == task && t["status"] == "running")
        })
    })
}

#[test]
fn connections_cut_mid_training_are_reconnected_and_the_job_succeeds() {
    let p = pair();
    let _bank = serve(&p.bank);
    let _telco = serve(&p.telco);
    wait_api(&p.bank);
    wait_api(&p.telco);
    p.register();
    let job = p.submit(SECUREBOOST);
    wait_until("training to start", Duration::from_secs(60), || {
        task_running(&p.bank, &job, "train") || job_status(&p.bank, &job) == "succeeded"
    });
    // Every connection between the two is reset three times during training.
    for _ in 0..3 {
        p.to_telco.cut();
        p.to_bank.cut();
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_until("the job to end", Duration::from_secs(120), || {
        matches!(job_status(&p.bank, &job).as_str(), "succeeded" | "failed")
    });
    assert_eq!(
        job_status(&p.bank, &job),
        "succeeded",
        "{:?}",
        status(&p.bank, &job)
    );
    wait_until("the telco to agree", Duration::from_secs(30), || {
        job_status(&p.telco, &job) == "succeeded"
    });
}

#[test]
fn a_silent_network_fails_the_job_on_both_nodes_within_the_window_and_a_new_run_succeeds() {
    let p = pair();
    let _bank = serve(&p.bank);
    let _telco = serve(&p.telco);
    wait_api(&p.bank);
    wait_api(&p.telco);
    p.register();
    let job = p.submit(SECUREBOOST);
    wait_until("training to start", Duration::from_secs(60), || {
        task_running(&p.bank, &job, "train")
    });
    // Both directions go silent: connections stay open, nothing arrives.
    p.to_telco.set(SILENT);
    p.to_bank.set(SILENT);
    for (dir, other) in [(&p.bank, "telco"), (&p.telco, "bank")] {
        wait_until("the job to fail", Duration::from_secs(30), || {
            job_status(dir, &job) == "failed"
        });
        let v = status(dir, &job).unwrap();
        let reason = v["job"]["reason"].as_str().unwrap_or("");
        assert!(
            reason.contains(&format!("{other} unreachable since")),
            "{}: {reason}",
            dir.display()
        );
        assert!(parties_final(dir, &job), "{v}");
    }
    // The network heals: a new run succeeds.
    p.to_telco.set(PASS);
    p.to_bank.set(PASS);
    p.to_telco.cut();
    p.to_bank.cut();
    let again = p.submit(SECUREBOOST);
    wait_until("the new run to end", Duration::from_secs(120), || {
        matches!(job_status(&p.bank, &again).as_str(), "succeeded" | "failed")
    });
    assert_eq!(
        job_status(&p.bank, &again),
        "succeeded",
        "{:?}",
        status(&p.bank, &again)
    );
}

/// Kills node `victim` (SIGKILL) at a seeded random moment of `job`, restarts it, and checks
/// that every node of the job ends with final statuses that agree, then that a new run of the
/// same spec succeeds.
fn kill_during(
    p: &Pair,
    served: &mut [Served; 3],
    victim: usize,
    spec: &str,
    name: &str,
    rng: &mut ChaCha20Rng,
) {
    let dirs = [&p.bank, &p.telco, &p.insurer];
    let parties = ["bank", "telco", "insurer"];
    let in_job: Vec<usize> = (0..3)
        .filter(|i| *i == 0 || spec.contains(parties[*i]))
        .collect();
    let job = p.submit_spec(spec);
    wait_until("the job to run", Duration::from_secs(60), || {
        matches!(
            job_status(&p.bank, &job).as_str(),
            "running" | "succeeded" | "failed"
        )
    });
    // A seeded random moment of the run (the job may even have ended by then).
    std::thread::sleep(Duration::from_millis(rng.random_range(0..1500)));
    served[victim].0.kill().unwrap();
    served[victim].0.wait().unwrap();
    // The others end the job (the victim's silence is noticed within the window).
    for &i in in_job.iter().filter(|&&i| i != victim) {
        wait_until("a survivor to end the job", Duration::from_secs(30), || {
            matches!(job_status(dirs[i], &job).as_str(), "succeeded" | "failed")
        });
        if job_status(dirs[i], &job) == "failed" {
            let v = status(dirs[i], &job).unwrap();
            let reason = v["job"]["reason"].as_str().unwrap_or("").to_string();
            assert!(
                reason.contains(parties[victim]) || reason.contains("unreachable"),
                "{name}: {} says {reason}",
                parties[i]
            );
        }
    }
    // The victim comes back; every node's record becomes final, and they agree.
    served[victim] = serve(dirs[victim]);
    wait_api(dirs[victim]);
    for &i in &in_job {
        let (dir, job_id) = (dirs[i].clone(), job.clone());
        wait_until_with(
            move || {
                format!(
                    "{name}: a final record on {}: {:?}",
                    dir.display(),
                    status(&dir, &job_id)
                )
            },
            Duration::from_secs(30),
            || {
                matches!(
                    job_status(dirs[i], &job).as_str(),
                    "succeeded" | "failed" | "cancelled"
                ) && parties_final(dirs[i], &job)
            },
        );
    }
    let outcomes: Vec<bool> = in_job
        .iter()
        .map(|&i| job_status(dirs[i], &job) == "succeeded")
        .collect();
    assert!(
        outcomes.iter().all(|o| *o == outcomes[0]),
        "{name}: the nodes disagree: {outcomes:?}"
    );
    // A new run succeeds.
    let again = p.submit_spec(spec);
    wait_until("the new run to end", Duration::from_secs(120), || {
        matches!(job_status(&p.bank, &again).as_str(), "succeeded" | "failed")
    });
    assert_eq!(
        job_status(&p.bank, &again),
        "succeeded",
        "{name}: {:?}",
        status(&p.bank, &again)
    );
}

#[test]
fn any_role_killed_at_a_random_moment_and_restarted_leaves_every_node_agreeing() {
    let p = pair();
    let mut served = [serve(&p.bank), serve(&p.telco), serve(&p.insurer)];
    wait_api(&p.bank);
    wait_api(&p.telco);
    wait_api(&p.insurer);
    p.register();
    let mut rng = ChaCha20Rng::seed_from_u64(18);
    let (host, guest, arbiter) = (1, 0, 2);
    for (victim, spec, name) in [
        (host, vertical(""), "psi, host killed"),
        (host, vertical(SECUREBOOST), "secureboost, host killed"),
        (host, vertical(HETERO_LR), "hetero_lr, host killed"),
        (guest, vertical(SECUREBOOST), "secureboost, guest killed"),
        (
            arbiter,
            LR_WITH_ARBITER.to_string(),
            "hetero_lr, arbiter killed",
        ),
        (arbiter, FEDAVG.to_string(), "fedavg, arbiter killed"),
        (host, FEDAVG.to_string(), "fedavg, client killed"),
    ] {
        kill_during(&p, &mut served, victim, &spec, name, &mut rng);
    }
}
