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

fn init(root: &Path, party: &str) -> PathBuf {
    let dir = root.join(party);
    let mut cmd = ferry();
    cmd.args(["init", "--party", party, "--dir"])
        .arg(&dir)
        .args([
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--api",
            &format!("127.0.0.1:{}", free_port()),
        ]);
    if party == "telco" {
        cmd.arg("--auto-approve");
    }
    ok(&mut cmd);
    dir
}

fn fed_addr(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("ferry.toml")).unwrap();
    text.lines()
        .find(|l| l.starts_with("federation_listen"))
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_string()
}

fn append(dir: &Path, text: &str) {
    let path = dir.join("ferry.toml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(text);
    std::fs::write(&path, config).unwrap();
}

/// Bank and telco, each reaching the other through a proxy; a short liveness window.
struct Pair {
    _tmp: tempfile::TempDir,
    bank: PathBuf,
    telco: PathBuf,
    /// In front of the telco (what the bank dials) and in front of the bank.
    to_telco: Proxy,
    to_bank: Proxy,
}

fn pair() -> Pair {
    let tmp = tempfile::tempdir().unwrap();
    let bank = init(tmp.path(), "bank");
    let telco = init(tmp.path(), "telco");
    let to_telco = Proxy::start(fed_addr(&telco));
    let to_bank = Proxy::start(fed_addr(&bank));
    for (me, name, other, proxy) in [
        (&bank, "telco", &telco, &to_telco),
        (&telco, "bank", &bank, &to_bank),
    ] {
        ok(ferry()
            .args(["peer", "add", name, "--addr", &proxy.addr, "--cert"])
            .arg(other.join("identity/cert.pem"))
            .arg("--dir")
            .arg(me));
        append(
            me,
            "\n[liveness]\nwindow_secs = 3\nheartbeat_secs = 0.5\n\n[policy]\nmin_paillier_bits = 1024\nmin_ou_bits = 1024\n",
        );
    }
    // Data from outside the node directories.
    let mut guest = String::from("id,y,a,b\n");
    let mut host = String::from("id,c,d\n");
    for i in 0..1500 {
        let x = (i as f64 * 0.37).sin();
        guest += &format!("u{i},{},{x},{}\n", (x > 0.1) as u8, i % 7);
        host += &format!("u{i},{},{}\n", (i as f64 * 0.11).cos(), x * 2.0);
    }
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("guest.csv"), guest).unwrap();
    std::fs::write(data.join("host.csv"), host).unwrap();
    Pair {
        _tmp: tmp,
        bank,
        telco,
        to_telco,
        to_bank,
    }
}

impl Pair {
    fn register(&self) {
        let data = self._tmp.path().join("data");
        ok(ferry()
            .args(["dataset", "add", "customers", "--label", "y", "--file"])
            .arg(data.join("guest.csv"))
            .arg("--dir")
            .arg(&self.bank));
        ok(ferry()
            .args(["dataset", "add", "usage", "--file"])
            .arg(data.join("host.csv"))
            .arg("--dir")
            .arg(&self.telco));
        ok(ferry()
            .args(["dataset", "grant", "usage", "--party", "bank", "--dir"])
            .arg(&self.telco));
    }

    fn submit(&self, train: &str) -> String {
        let spec = self._tmp.path().join("job.yaml");
        std::fs::write(
            &spec,
            format!(
                r#"
parties: {{guest: bank, hosts: [telco]}}
tasks:
  - {{name: read, component: reader, party_params: {{bank: {{dataset: customers}}, telco: {{dataset: usage}}}}}}
  - {{name: intersect, component: psi, inputs: {{data: read}}}}
{train}"#
            ),
        )
        .unwrap();
        let out = ok(ferry()
            .args(["job", "submit", "--dir"])
            .arg(&self.bank)
            .arg(&spec));
        out.trim().rsplit(' ').next().unwrap().to_string()
    }
}

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

#[test]
fn a_host_killed_at_a_random_moment_and_restarted_leaves_both_nodes_agreeing() {
    let p = pair();
    let bank = serve(&p.bank);
    let mut telco = serve(&p.telco);
    wait_api(&p.bank);
    wait_api(&p.telco);
    p.register();
    let mut rng = ChaCha20Rng::seed_from_u64(18);
    for (name, train) in [
        ("psi", ""),
        ("secureboost", SECUREBOOST),
        ("hetero_lr", HETERO_LR),
    ] {
        let job = p.submit(train);
        wait_until("the job to run", Duration::from_secs(60), || {
            matches!(
                job_status(&p.bank, &job).as_str(),
                "running" | "succeeded" | "failed"
            )
        });
        // A seeded random moment of the run (the job may even have ended by then).
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1500)));
        telco.0.kill().unwrap();
        telco.0.wait().unwrap();
        wait_until("the bank to end the job", Duration::from_secs(30), || {
            matches!(job_status(&p.bank, &job).as_str(), "succeeded" | "failed")
        });
        let ended = job_status(&p.bank, &job);
        if ended == "failed" {
            let v = status(&p.bank, &job).unwrap();
            let reason = v["job"]["reason"].as_str().unwrap_or("");
            assert!(reason.contains("telco"), "{name}: {reason}");
        }
        // The telco comes back: it records how the job ended for it, and both agree.
        drop(telco);
        telco = serve(&p.telco);
        wait_api(&p.telco);
        let (telco_dir, job_id) = (p.telco.clone(), job.clone());
        wait_until_with(
            move || {
                format!(
                    "the telco's record to be final: {:?}",
                    status(&telco_dir, &job_id)
                )
            },
            Duration::from_secs(30),
            || {
                matches!(
                    job_status(&p.telco, &job).as_str(),
                    "succeeded" | "failed" | "cancelled"
                ) && parties_final(&p.telco, &job)
            },
        );
        wait_until(
            "the bank's record to be final",
            Duration::from_secs(30),
            || parties_final(&p.bank, &job),
        );
        let (on_bank, on_telco) = (job_status(&p.bank, &job), job_status(&p.telco, &job));
        assert_eq!(
            on_bank == "succeeded",
            on_telco == "succeeded",
            "{name}: bank {on_bank}, telco {on_telco}"
        );
        // A new run succeeds.
        let again = p.submit(train);
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
    drop(bank);
}
