//! Fault injection on real processes: two `ferry serve` nodes talk through loopback proxies the
//! test controls (cut every connection, go silent while keeping them open, delay every chunk,
//! or drop connections mid-stream again and again), and a host is killed with SIGKILL and
//! restarted at a seeded random moment of PSI, SecureBoost and hetero LR. Every run must end
//! with both nodes agreeing on how the job ended (nothing left "running"), within the liveness
//! window when a partner is gone, and a new run (or a resume from checkpoints) must succeed.
//!
//! Durability of a node's own state: a node killed during an upload or a registration, or
//! stopped at a crash point (`FERRY_TEST_CRASH_AT`, read only by debug builds: see
//! `ferry_store::crash_point`) between a model file's rename and its record, or while a job's
//! status changes, restarts with a sound database (`PRAGMA integrity_check`), no record without
//! its complete file, no leftover temporary file, and registers or trains again.

mod common;

use common::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

const PASS: u8 = 0;
/// Connections stay open, nothing is forwarded: a partner that hangs, or a network that
/// blackholes, as opposed to one that resets.
const SILENT: u8 = 1;

/// Every chunk is forwarded [`Proxy::delay`] late (latency, not a bandwidth limit: chunks
/// stay pipelined and in order).
const DELAY: u8 = 2;
/// Each connection is reset after a seeded number of bytes, mid-stream, again and again: every
/// new connection is cut in turn.
const DROP: u8 = 3;

/// A TCP proxy in front of one node's federation endpoint.
struct Proxy {
    addr: String,
    mode: Arc<AtomicU8>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    delay_ms: Arc<AtomicU64>,
    /// Connections cut in DROP mode so far.
    drops: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mode = Arc::new(AtomicU8::new(PASS));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let (m, o, d, dr) = (mode.clone(), open.clone(), delay_ms.clone(), drops.clone());
        std::thread::spawn(move || {
            for (n, client) in listener.incoming().flatten().enumerate() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                {
                    let mut all = o.lock().unwrap();
                    all.push(client.try_clone().unwrap());
                    all.push(server.try_clone().unwrap());
                }
                // DROP: this connection is reset once it has carried this many bytes (both
                // directions), a seeded size between 4 and 32 KiB: some in the TLS handshake,
                // most in the middle of the messages.
                let limit =
                    ChaCha20Rng::seed_from_u64(1800 + n as u64).random_range(4u64 << 10..32 << 10);
                let carried = Arc::new(AtomicU64::new(0));
                for (mut from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let (m, d, dr, carried) = (m.clone(), d.clone(), dr.clone(), carried.clone());
                    let to_cut = to.try_clone().unwrap();
                    // The writer sends each chunk at the time the reader set for it, so a
                    // delay is latency and the order is kept.
                    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
                    let mut to = to;
                    std::thread::spawn(move || {
                        for (at, bytes) in rx {
                            let now = Instant::now();
                            if at > now {
                                std::thread::sleep(at - now);
                            }
                            if to.write_all(&bytes).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            let mut at = Instant::now();
                            match m.load(Ordering::SeqCst) {
                                // Silent: read and drop, so the sender's writes succeed and
                                // nothing arrives (no reset, no error: only silence).
                                SILENT => continue,
                                DELAY => at += Duration::from_millis(d.load(Ordering::SeqCst)),
                                DROP => {
                                    let total = carried.fetch_add(n as u64, Ordering::SeqCst);
                                    if total + n as u64 >= limit {
                                        dr.fetch_add(1, Ordering::SeqCst);
                                        let _ = from.shutdown(Shutdown::Both);
                                        let _ = to_cut.shutdown(Shutdown::Both);
                                        break;
                                    }
                                }
                                _ => {}
                            }
                            if tx.send((at, buf[..n].to_vec())).is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        });
        Proxy {
            addr,
            mode,
            open,
            delay_ms,
            drops,
        }
    }

    fn delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
        self.set(DELAY);
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
    to_insurer: Proxy,
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
        to_insurer,
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

/// `ferry serve` with one more environment variable (a test-only crash point).
fn serve_with_env(dir: &Path, key: &str, value: &str) -> Served {
    let log = std::fs::File::create(dir.join("serve-crash.log")).unwrap();
    Served(
        ferry()
            .arg("serve")
            .arg("--dir")
            .arg(dir)
            .env(key, value)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// FedAvg with secure aggregation over `rounds` rounds, the model stored as `model`.
fn fedavg(rounds: usize, model: &str) -> String {
    format!(
        r#"
parties: {{guest: bank, hosts: [telco], arbiter: insurer}}
tasks:
  - {{name: read, component: reader, party_params: {{bank: {{dataset: rows}}, telco: {{dataset: rows}}}}}}
  - {{name: fed, component: fedavg, inputs: {{train: read}}, params: {{rounds: {rounds}, seed: 4, secure_aggregation: {{}}, model_name: {model}}}}}
"#
    )
}

/// All three nodes of the pair, serving, with data registered.
fn three_serving(p: &Pair) -> [Served; 3] {
    let served = [serve(&p.bank), serve(&p.telco), serve(&p.insurer)];
    wait_api(&p.bank);
    wait_api(&p.telco);
    wait_api(&p.insurer);
    p.register();
    served
}

fn wait_end(dir: &Path, job: &str, timeout: Duration) -> String {
    let (d, j) = (dir.to_path_buf(), job.to_string());
    wait_until_with(
        move || format!("job {j} to end on {}: {:?}", d.display(), status(&d, &j)),
        timeout,
        || {
            matches!(
                job_status(dir, job).as_str(),
                "succeeded" | "failed" | "cancelled"
            ) && parties_final(dir, job)
        },
    );
    job_status(dir, job)
}

/// The highest checkpoint step of `task` in `job` on the node in `dir`.
fn checkpoint_step(dir: &Path, job: &str, task: &str) -> u64 {
    let ckpts = dir
        .join("data/jobs")
        .join(job)
        .join("checkpoints")
        .join(task);
    std::fs::read_dir(ckpts)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("step-")?
                        .strip_suffix(".ckpt")?
                        .parse::<u64>()
                        .ok()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Alive but slow is never dead: every chunk between the three nodes arrives 200 ms late
/// (far beyond a heartbeat interval of 0.5 s, within the 3 s window); the job succeeds on
/// every node and no party is ever declared unreachable.
#[test]
fn a_network_delaying_every_chunk_slows_the_job_but_no_party_is_declared_dead() {
    let p = pair();
    let _served = three_serving(&p);
    for proxy in [&p.to_bank, &p.to_telco, &p.to_insurer] {
        proxy.delay(200);
    }
    let started = Instant::now();
    let job = p.submit_spec(&fedavg(4, "slow"));
    for dir in [&p.bank, &p.telco, &p.insurer] {
        assert_eq!(
            wait_end(dir, &job, Duration::from_secs(180)),
            "succeeded",
            "{}: {:?}",
            dir.display(),
            status(dir, &job)
        );
    }
    let took = started.elapsed();
    eprintln!("fedavg, 4 rounds, 200 ms per chunk: {took:?}");
    // The delay was there: far longer than the window, with every message 200 ms late.
    assert!(took > Duration::from_secs(3), "{took:?}");
    for dir in [&p.bank, &p.telco, &p.insurer] {
        let logs = ok(ferry().args(["job", "logs", &job, "--dir"]).arg(dir));
        assert!(!logs.contains("unreachable"), "{}: {logs}", dir.display());
    }
}

/// Connections dropped mid-stream again and again while FedAvg trains: the transport
/// reconnects (the job succeeds) or the job fails with a reason on every node; either way all
/// nodes agree within the liveness window, and a failed job resumes to success.
#[test]
fn connections_dropped_mid_stream_repeatedly_end_in_agreement_then_success_or_a_resume() {
    let p = pair();
    let _served = three_serving(&p);
    // Enough rounds that training outlasts the 4 s of drops.
    let job = p.submit_spec(&fedavg(150, "dropped"));
    wait_until("training to start", Duration::from_secs(60), || {
        task_running(&p.bank, &job, "fed") || job_status(&p.bank, &job) != "running"
    });
    let proxies = [&p.to_bank, &p.to_telco, &p.to_insurer];
    for proxy in proxies {
        proxy.set(DROP);
    }
    std::thread::sleep(Duration::from_secs(4));
    for proxy in proxies {
        proxy.set(PASS);
    }
    let drops: usize = proxies.iter().map(|p| p.drops.load(Ordering::SeqCst)).sum();
    assert!(drops >= 3, "the proxies cut only {drops} connections");
    let dirs = [&p.bank, &p.telco, &p.insurer];
    let first = wait_end(&p.bank, &job, Duration::from_secs(120));
    let first_at = Instant::now();
    let outcomes: Vec<String> = dirs
        .iter()
        .map(|d| wait_end(d, &job, Duration::from_secs(30)))
        .collect();
    let agreed_in = first_at.elapsed();
    eprintln!("{drops} connections dropped; outcome {outcomes:?}, agreed within {agreed_in:?}");
    assert!(
        outcomes.iter().all(|o| *o == first),
        "the nodes disagree: {outcomes:?}"
    );
    // Within the liveness window (3 s) after the first node ended, plus polling.
    assert!(agreed_in < Duration::from_secs(6), "{agreed_in:?}");
    if first == "failed" {
        for dir in dirs {
            let v = status(dir, &job).unwrap();
            let reason = v["job"]["reason"].as_str().unwrap_or("");
            assert!(!reason.is_empty(), "{}: no reason: {v}", dir.display());
        }
        let out = ok(ferry()
            .args(["job", "resume", &job, "--wait", "--dir"])
            .arg(&p.bank));
        assert!(out.contains("resumed at task 'fed'"), "{out}");
    } else {
        assert_eq!(first, "succeeded");
    }
}

/// A client killed mid-FedAvg (SIGKILL, after every node saved a few rounds): the others fail
/// the job naming it, every node agrees once it is back, and `ferry job resume` continues
/// from the last round all have to a successful end.
#[test]
fn fedavg_killed_mid_training_resumes_from_its_checkpoints() {
    let p = pair();
    let mut served = three_serving(&p);
    let job = p.submit_spec(&fedavg(80, "resumed"));
    let dirs = [&p.bank, &p.telco, &p.insurer];
    wait_until(
        "every node to save two rounds",
        Duration::from_secs(120),
        || {
            dirs.iter().all(|d| checkpoint_step(d, &job, "fed") >= 2)
                || matches!(
                    job_status(&p.bank, &job).as_str(),
                    "succeeded" | "failed" | "cancelled"
                )
        },
    );
    served[1].0.kill().unwrap();
    served[1].0.wait().unwrap();
    let killed_at = Instant::now();
    assert_eq!(job_status(&p.bank, &job), "running", "it ended too soon");
    for dir in [&p.bank, &p.insurer] {
        wait_until(
            "a survivor to fail the job",
            Duration::from_secs(30),
            || job_status(dir, &job) == "failed",
        );
    }
    eprintln!(
        "survivors failed the job {:?} after the kill",
        killed_at.elapsed()
    );
    served[1] = serve(&p.telco);
    wait_api(&p.telco);
    for dir in dirs {
        assert_eq!(wait_end(dir, &job, Duration::from_secs(30)), "failed");
    }
    let saved: Vec<u64> = dirs
        .iter()
        .map(|d| checkpoint_step(d, &job, "fed"))
        .collect();
    let common = *saved.iter().min().unwrap();
    assert!(common >= 2, "{saved:?}");
    let started = Instant::now();
    let out = ok(ferry()
        .args(["job", "resume", &job, "--wait", "--dir"])
        .arg(&p.bank));
    eprintln!("resumed in {:?}: {out}", started.elapsed());
    let resumed = out
        .split_whitespace()
        .nth(2)
        .map(|s| s.trim_end_matches(':').to_string())
        .unwrap();
    for dir in dirs {
        assert_eq!(
            wait_end(dir, &resumed, Duration::from_secs(30)),
            "succeeded"
        );
    }
    // It continued after a round every node had, not from round 1.
    let logs = ok(ferry()
        .args(["job", "logs", &resumed, "--dir"])
        .arg(&p.insurer));
    let after: u64 = logs
        .split("resuming after round ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the server did not resume: {logs}"));
    assert!(
        after >= common && after <= *saved.iter().max().unwrap(),
        "{after} {saved:?}"
    );
    let logs = ok(ferry()
        .args(["job", "logs", &resumed, "--dir"])
        .arg(&p.telco));
    assert!(
        logs.contains(&format!(
            "resuming after round {after} from this client's state"
        )),
        "{logs}"
    );
    let show = ok(ferry()
        .args(["model", "show", "resumed", "--dir"])
        .arg(&p.bank));
    assert!(show.contains("signature verified"), "{show}");
}

/// What must hold for a node's own state after any crash: the database is sound, every
/// dataset and model record has its complete file (sizes and hashes as recorded), and no
/// temporary file or unreferenced dataset directory is left for the node to trust.
fn check_state(dir: &Path) {
    use sha2::{Digest, Sha256};
    let db = rusqlite::Connection::open_with_flags(
        dir.join("state/ferry.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", dir.display());
    let data = dir.join("data");
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut referenced = Vec::new();
    for table in ["datasets", "models"] {
        let mut stmt = db
            .prepare(&format!("SELECT file, byte_count, sha256 FROM {table}"))
            .unwrap();
        let rows: Vec<(String, i64, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (file, bytes, sha) in rows {
            let content = std::fs::read(data.join(&file))
                .unwrap_or_else(|e| panic!("{table} record without its file {file}: {e}"));
            assert_eq!(content.len() as i64, bytes, "{file}");
            assert_eq!(hex(&Sha256::digest(&content)), sha, "{file}");
            referenced.push(file);
        }
    }
    // Every file under datasets/ and models/ belongs to a record; nothing half-written.
    for sub in ["datasets", "models"] {
        let Ok(entries) = std::fs::read_dir(data.join(sub)) else {
            continue;
        };
        for d in entries.flatten() {
            for f in std::fs::read_dir(d.path()).unwrap().flatten() {
                let rel = format!(
                    "{sub}/{}/{}",
                    d.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                );
                assert!(referenced.contains(&rel), "an unreferenced file: {rel}");
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(data.join("uploads")) {
        let left: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "uploads left behind: {left:?}");
    }
}

fn rows_of(dir: &Path, dataset: &str) -> u64 {
    let v = json_of(ok(ferry()
        .args(["dataset", "show", dataset, "--json", "--dir"])
        .arg(dir)));
    v["dataset"]["rows"]
        .as_u64()
        .unwrap_or_else(|| panic!("no row count in {v}"))
}

/// A node killed (SIGKILL) while a large replacement of a dataset is uploading, while it is
/// being copied and scanned, and stopped at the crash point just before its record commits,
/// comes back with the old dataset intact and nothing of the new one; it registers again.
#[test]
fn a_node_killed_during_dataset_registration_keeps_the_old_dataset_and_registers_again() {
    let tmp = tempfile::tempdir().unwrap();
    let bank = init_node(tmp.path(), "bank", false);
    let small = tmp.path().join("small.csv");
    std::fs::write(&small, "id,x\na,1\nb,2\n").unwrap();
    // About 40 MB: big enough that uploading and scanning take a while.
    let big = tmp.path().join("big.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        writeln!(w, "id,x,y,z").unwrap();
        for i in 0..1_000_000u64 {
            writeln!(w, "row{i},{},{}.25,{}", i % 977, i % 13, i * 7 % 1000).unwrap();
        }
    }
    let mut node = serve(&bank);
    wait_api(&bank);
    ok(ferry()
        .args(["dataset", "add", "tx", "--file"])
        .arg(&small)
        .arg("--dir")
        .arg(&bank));
    let datasets = bank.join("data/datasets");
    let count = |d: &Path| std::fs::read_dir(d).map(|e| e.count()).unwrap_or(0);
    let uploading =
        |d: &Path| std::fs::read_dir(d.join("data/uploads")).is_ok_and(|mut e| e.next().is_some());
    for moment in ["upload", "registration", "crash point"] {
        if moment == "crash point" {
            drop(node);
            node = serve_with_env(&bank, "FERRY_TEST_CRASH_AT", "dataset-before-commit");
            wait_api(&bank);
        }
        let before = count(&datasets);
        let mut add = ferry()
            .args(["dataset", "add", "tx", "--replace", "--file"])
            .arg(&big)
            .arg("--dir")
            .arg(&bank)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        match moment {
            "upload" => wait_until("the upload to start", Duration::from_secs(60), || {
                uploading(&bank)
            }),
            "registration" => wait_until("the copy to start", Duration::from_secs(120), || {
                count(&datasets) > before
            }),
            _ => wait_until("the node to abort", Duration::from_secs(120), || {
                node.0.try_wait().unwrap().is_some()
            }),
        }
        let _ = node.0.kill();
        node.0.wait().unwrap();
        let _ = add.kill();
        add.wait().unwrap();
        node = serve(&bank);
        wait_api(&bank);
        check_state(&bank);
        assert_eq!(rows_of(&bank, "tx"), 2, "{moment}: the old dataset is kept");
    }
    ok(ferry()
        .args(["dataset", "add", "tx", "--replace", "--file"])
        .arg(&big)
        .arg("--dir")
        .arg(&bank));
    assert_eq!(rows_of(&bank, "tx"), 1_000_000);
    check_state(&bank);
}

/// The guest stopped at crash points while it stores a FedAvg model (the file renamed into
/// place, its record not committed) and while it records the job's success: after a restart
/// the state is whole (no model record without its file, no orphan file), every node agrees
/// on how the job ended, and the next run stores a model whose signature verifies.
#[test]
fn a_node_stopped_while_storing_a_model_or_changing_a_job_status_keeps_a_whole_state() {
    let p = pair();
    let mut served = three_serving(&p);
    let dirs = [&p.bank, &p.telco, &p.insurer];
    for point in ["model-after-rename", "job-status-succeeded"] {
        // The running bank stops first: the next one needs its ports.
        served[0].0.kill().unwrap();
        served[0].0.wait().unwrap();
        served[0] = serve_with_env(&p.bank, "FERRY_TEST_CRASH_AT", point);
        wait_api(&p.bank);
        let job = p.submit_spec(&fedavg(3, "crashy"));
        wait_until(
            &format!("the bank to stop at {point}"),
            Duration::from_secs(120),
            || served[0].0.try_wait().unwrap().is_some(),
        );
        served[0] = serve(&p.bank);
        wait_api(&p.bank);
        check_state(&p.bank);
        let outcomes: Vec<String> = dirs
            .iter()
            .map(|d| wait_end(d, &job, Duration::from_secs(30)))
            .collect();
        eprintln!("{point}: {outcomes:?}");
        assert!(
            outcomes.iter().all(|o| *o == outcomes[0]),
            "{point}: the nodes disagree: {outcomes:?}"
        );
        let models = ok(ferry().args(["model", "list", "--dir"]).arg(&p.bank));
        if point == "model-after-rename" {
            // The file was in place, its record not: the model is not there (and check_state
            // found no orphan file).
            assert!(!models.contains("crashy"), "{point}: {models}");
        } else {
            // The model was stored before the status changed: whole and signed.
            let show = ok(ferry()
                .args(["model", "show", "crashy", "--dir"])
                .arg(&p.bank));
            assert!(show.contains("signature verified"), "{point}: {show}");
        }
    }
    let job = p.submit_spec(&fedavg(3, "crashy"));
    assert_eq!(
        wait_end(&p.bank, &job, Duration::from_secs(120)),
        "succeeded"
    );
    let show = ok(ferry()
        .args(["model", "show", "crashy", "--dir"])
        .arg(&p.bank));
    assert!(show.contains("signature verified"), "{show}");
    check_state(&p.bank);
}
