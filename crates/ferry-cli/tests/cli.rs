//! The `ferry` binary end to end: real processes, real TLS, real SQLite files.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn launcher_runs_protocols_as_separate_processes() {
    let out = ok(ferry().args([
        "launch",
        "all-gather",
        "--parties",
        "bank:guest,telco:host,insurer:host",
        "--json",
    ]));
    let parties: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(parties.len(), 3);
    for p in &parties {
        assert_eq!(p["ok"], true, "{p}");
        let values: Vec<u64> = p["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["value"].as_u64().unwrap())
            .collect();
        assert_eq!(values, [4, 5, 7]);
        assert!(p["peak_rss_kib"].as_u64().unwrap() > 0);
    }
    let out = ok(ferry().args([
        "launch",
        "ping-pong",
        "--params",
        r#"{"rounds": 30, "bytes": 2000}"#,
        "--json",
    ]));
    let parties: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(parties[0]["result"]["rounds"], 30);
    assert!(parties[0]["bytes_sent"].as_u64().unwrap() >= 60_000);
    // An unknown protocol fails every party with a clear message, and the launcher says so.
    let out = run(ferry().args(["launch", "no-such-protocol"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown protocol 'no-such-protocol'"));
}

/// A party that fails tells the others: a peer blocked waiting for it stops at once (not
/// after the launcher's grace period) and names it.
#[test]
fn a_failing_party_stops_its_peers_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let telco_file = tmp.path().join("telco.csv");
    std::fs::write(&telco_file, "id,x\n1,2\n").unwrap();
    let params = serde_json::json!({
        "files": {"bank": tmp.path().join("missing.csv"), "telco": telco_file},
        "keys": ["id"],
        "out_dir": tmp.path(),
    });
    let start = std::time::Instant::now();
    let out = run(ferry()
        .args([
            "launch",
            "psi",
            "--json",
            "--timeout-secs",
            "120",
            "--params",
        ])
        .arg(params.to_string()));
    let elapsed = start.elapsed();
    assert!(!out.status.success());
    let parties: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let telco = parties.iter().find(|p| p["party"] == "telco").unwrap();
    let err = telco["error"].as_str().unwrap();
    assert!(
        err.contains("party 'bank'") && err.contains("stopped with an error"),
        "{err}"
    );
    assert!(
        !err.contains("missing.csv"),
        "bank's reason stays with bank: {err}"
    );
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
}

#[test]
fn init_and_peer_add_pin_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let bank = tmp.path().join("bank");
    let telco = tmp.path().join("telco");
    let out = ok(ferry()
        .args(["init", "--party", "bank", "--dir"])
        .arg(&bank));
    assert!(out.contains("fingerprint"));
    ok(ferry()
        .args(["init", "--party", "telco", "--dir"])
        .arg(&telco));
    // A second init never overwrites an identity.
    let again = run(ferry()
        .args(["init", "--party", "bank", "--dir"])
        .arg(&bank));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already a node"));
    let out = ok(ferry()
        .args(["peer", "add", "telco", "--addr", "127.0.0.1:7002", "--cert"])
        .arg(telco.join("identity/cert.pem"))
        .arg("--dir")
        .arg(&bank));
    assert!(out.contains("pinned 'telco'"));
    let list = ok(ferry().args(["peer", "list", "--dir"]).arg(&bank));
    assert!(list.contains("telco") && list.contains("127.0.0.1:7002"));
    let bad = run(ferry()
        .args(["peer", "add", "telco", "--addr", "nowhere", "--cert"])
        .arg(telco.join("identity/cert.pem"))
        .arg("--dir")
        .arg(&bank));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a host:port address"));
}

#[test]
fn the_demo_runs_psi_secureboost_and_evaluation_between_real_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = ok(ferry()
        .args(["demo", "--two", "--rows", "1500", "--dir"])
        .arg(&dir));
    assert!(out.contains("PSI intersection"), "{out}");
    assert!(
        out.contains("held out"),
        "the models are scored on held-out rows: {out}"
    );
    let auc_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("SecureBoost"))
        .expect("SecureBoost results");
    let auc: f64 = auc_line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(auc > 0.7, "{auc_line}");
    // The nodes were stopped, the state is on disk: models signed on both sides.
    for party in ["bank", "telco"] {
        assert!(
            dir.join("nodes")
                .join(party)
                .join("data/models/demo_secureboost/v1.bin")
                .exists()
        );
    }
    // Running the demo again replaces the previous demo directory, but never another directory.
    let other = tmp.path().join("mine");
    std::fs::create_dir_all(&other).unwrap();
    let out = run(ferry().args(["demo", "--two", "--dir"]).arg(&other));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Ferry demo directory"));
}

fn wait_status(dir: &Path, job: &str, want: &[&str], timeout: Duration) -> Value {
    let start = Instant::now();
    loop {
        let out = run(ferry()
            .args(["job", "status", job, "--json", "--dir"])
            .arg(dir));
        if out.status.success() {
            let v = json_of(String::from_utf8_lossy(&out.stdout).into_owned());
            if want.contains(&v["job"]["status"].as_str().unwrap_or("")) {
                return v;
            }
        }
        assert!(
            start.elapsed() < timeout,
            "job {job} not in {want:?} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sets `[liveness]` in a node's ferry.toml.
fn set_liveness(dir: &Path, window_secs: f64, heartbeat_secs: f64) {
    let path = dir.join("ferry.toml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(&format!(
        "\n[liveness]\nwindow_secs = {window_secs}\nheartbeat_secs = {heartbeat_secs}\n"
    ));
    std::fs::write(&path, config).unwrap();
}

#[test]
fn a_partner_busy_computing_is_not_taken_for_a_dead_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (bank, telco) = two_nodes(tmp.path());
    // A window shorter than the job's silent stretch (the guest generating a 4096-bit Paillier
    // key while the host waits, over a second here; without heartbeats this job fails):
    // only heartbeats keep the job alive.
    set_liveness(&bank, 1.0, 0.2);
    set_liveness(&telco, 1.0, 0.2);
    let _bank_node = serve(&bank);
    let _telco_node = serve(&telco);
    wait_api(&bank);
    wait_api(&telco);
    let gfile = write_data(&tmp.path().join("bank-data"), true, 500);
    let hfile = write_data(&tmp.path().join("telco-data"), false, 500);
    ok(ferry()
        .args(["dataset", "add", "customers", "--label", "y", "--file"])
        .arg(&gfile)
        .arg("--dir")
        .arg(&bank));
    ok(ferry()
        .args(["dataset", "add", "usage", "--file"])
        .arg(&hfile)
        .arg("--dir")
        .arg(&telco));
    ok(ferry()
        .args(["dataset", "grant", "usage", "--party", "bank", "--dir"])
        .arg(&telco));
    let job = tmp.path().join("job.yaml");
    std::fs::write(&job, r#"
name: busy
parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: customers}, telco: {dataset: usage}}}
  - {name: intersect, component: psi, inputs: {data: read}}
  - {name: train, component: hetero_secureboost, inputs: {train: intersect}, params: {num_trees: 1, max_depth: 2, he: {key_bits: 4096}}}
"#).unwrap();
    let out = ok(ferry()
        .args(["job", "submit", "--dir"])
        .arg(&bank)
        .arg(&job));
    let id = out.trim().rsplit(' ').next().unwrap().to_string();
    let v = wait_status(
        &bank,
        &id,
        &["succeeded", "failed"],
        Duration::from_secs(180),
    );
    assert_eq!(v["job"]["status"], "succeeded", "{v}");
}

fn write_data(dir: &Path, guest: bool, rows: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("data.csv");
    let mut text = if guest {
        "id,y,a,b\n".to_string()
    } else {
        "id,c,d,e\n".to_string()
    };
    for i in 0..rows {
        let x = (i as f64 * 0.37).sin();
        if guest {
            text += &format!("u{i},{},{x},{}\n", (x > 0.1) as u8, (i % 7) as f64);
        } else {
            text += &format!(
                "u{i},{},{},{}\n",
                (i as f64 * 0.11).cos(),
                x * 2.0,
                (i % 3) as f64
            );
        }
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_killed_node_fails_the_job_instead_of_leaving_it_running() {
    let tmp = tempfile::tempdir().unwrap();
    let (bank, telco) = two_nodes(tmp.path());
    // A short liveness window; the job's receive timeout stays at 600 s, so only liveness can
    // notice the dead partner in time.
    set_liveness(&bank, 3.0, 0.5);
    let bank_node = serve(&bank);
    let mut telco_node = serve(&telco);
    // Wait for both APIs.
    let start = Instant::now();
    while !run(ferry().args(["dataset", "list", "--dir"]).arg(&bank))
        .status
        .success()
        || !run(ferry().args(["dataset", "list", "--dir"]).arg(&telco))
            .status
            .success()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nodes did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Data comes from outside the node directories (files inside them are refused).
    let gfile = write_data(&tmp.path().join("bank-data"), true, 3000);
    let hfile = write_data(&tmp.path().join("telco-data"), false, 3000);
    ok(ferry()
        .args(["dataset", "add", "customers", "--label", "y", "--file"])
        .arg(&gfile)
        .arg("--dir")
        .arg(&bank));
    ok(ferry()
        .args(["dataset", "add", "usage", "--file"])
        .arg(&hfile)
        .arg("--dir")
        .arg(&telco));
    ok(ferry()
        .args(["dataset", "grant", "usage", "--party", "bank", "--dir"])
        .arg(&telco));
    let shown = ok(ferry()
        .args(["dataset", "show", "customers", "--dir"])
        .arg(&bank));
    assert!(shown.contains("3000 rows"), "{shown}");

    // A spec that sets a test-only knob is refused at submission, naming the field.
    let knob = tmp.path().join("knob.yaml");
    std::fs::write(&knob, r#"
parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: customers}, telco: {dataset: usage}}}
  - {name: train, component: hetero_secureboost, inputs: {train: read}, params: {he: {key_bits: 1024, allow_insecure_key_bits: true}}}
"#).unwrap();
    let out = run(ferry()
        .args(["job", "submit", "--dir"])
        .arg(&bank)
        .arg(&knob));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'he.allow_insecure_key_bits' is a test-only setting"),
        "{err}"
    );

    // Many trees with 2048-bit keys: long enough to kill telco in the middle.
    let job = tmp.path().join("job.yaml");
    std::fs::write(&job, r#"
name: killed
parties: {guest: bank, hosts: [telco]}
timeout_secs: 600
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: customers}, telco: {dataset: usage}}}
  - {name: intersect, component: psi, inputs: {data: read}}
  - {name: train, component: hetero_secureboost, inputs: {train: intersect}, params: {num_trees: 200, max_depth: 4}}
"#).unwrap();
    let out = ok(ferry()
        .args(["job", "submit", "--dir"])
        .arg(&bank)
        .arg(&job));
    let id = out.trim().rsplit(' ').next().unwrap().to_string();
    wait_status(&bank, &id, &["running"], Duration::from_secs(30));
    // Let training start, then kill telco without warning.
    let start = Instant::now();
    loop {
        let v = wait_status(
            &bank,
            &id,
            &["running", "failed", "succeeded"],
            Duration::from_secs(30),
        );
        let train_running = v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["task"] == "train" && t["status"] == "running");
        if train_running || start.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    telco_node.0.kill().unwrap();
    telco_node.0.wait().unwrap();
    let killed_at = Instant::now();
    let v = wait_status(&bank, &id, &["failed"], Duration::from_secs(60));
    assert!(
        killed_at.elapsed() < Duration::from_secs(40),
        "failed within the timeout, not stuck"
    );
    let reason = v["job"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("telco unreachable since"),
        "the reason names the silent party: {reason}"
    );
    // The bank records the telco's end too: nothing stays "running".
    let parties = v["parties"].to_string();
    assert!(!parties.contains("\"running\""), "{v}");

    // telco comes back: the job it left running is failed, with the reason.
    drop(telco_node);
    let _telco_again = serve(&telco);
    let v = wait_status(&telco, &id, &["failed"], Duration::from_secs(30));
    assert!(
        v["job"]["reason"].as_str().unwrap().contains("restarted"),
        "{v}"
    );
    // Bad tokens are refused by the API.
    let out = run(ferry()
        .args(["job", "list", "--token", "fry_wrong", "--dir"])
        .arg(&bank));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid or revoked API token"));
    drop(bank_node);
}

#[test]
fn psi_command_intersects_files_between_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.csv");
    let b = tmp.path().join("b.csv");
    std::fs::write(&a, "id,x\n1,a\n2,b\n3,c\n3,dup\n,empty\n5,e\n").unwrap();
    std::fs::write(&b, "id,y\n5,q\n3,r\n9,s\n").unwrap();
    let out_dir = tmp.path().join("out");
    let out = ok(ferry()
        .args(["psi", "--json", "--input"])
        .arg(format!("bank={}", a.display()))
        .arg("--input")
        .arg(format!("telco={}", b.display()))
        .arg("--out-dir")
        .arg(&out_dir));
    let parties: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(parties[0]["result"]["intersection_size"], 2);
    assert_eq!(parties[0]["result"]["duplicates_dropped"], 1);
    assert_eq!(parties[0]["result"]["empty_keys"], 1);
    let bank_rows = std::fs::read_to_string(out_dir.join("bank.intersection.csv")).unwrap();
    let telco_rows = std::fs::read_to_string(out_dir.join("telco.intersection.csv")).unwrap();
    let ids = |text: &str| {
        text.lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&bank_rows),
        ids(&telco_rows),
        "both parties write the intersection in the same order"
    );
    let mut sorted = ids(&bank_rows);
    sorted.sort();
    assert_eq!(sorted, ["3", "5"]);
    // Two parties run KKRT by default; ECDH on request finds the same rows.
    assert_eq!(parties[0]["result"]["protocol"], "kkrt-psi-2p");
    let out = ok(ferry()
        .args(["psi", "--json", "--protocol", "ecdh", "--input"])
        .arg(format!("bank={}", a.display()))
        .arg("--input")
        .arg(format!("telco={}", b.display()))
        .arg("--out-dir")
        .arg(&out_dir));
    let parties: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(parties[1]["result"]["protocol"], "ecdh-psi-2p");
    let mut by_ecdh =
        ids(&std::fs::read_to_string(out_dir.join("telco.intersection.csv")).unwrap());
    by_ecdh.sort();
    assert_eq!(by_ecdh, ["3", "5"]);
    let out = run(ferry()
        .args(["psi", "--protocol", "rr22", "--input"])
        .arg(format!("bank={}", a.display()))
        .arg("--input")
        .arg(format!("telco={}", b.display())));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown PSI protocol 'rr22'"));
    // A missing key column is named with its file.
    let out = run(ferry()
        .args(["psi", "--key", "customer", "--input"])
        .arg(format!("bank={}", a.display()))
        .arg("--input")
        .arg(format!("telco={}", b.display()))
        .arg("--out-dir")
        .arg(&out_dir));
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("party 'bank'") && text.contains("customer") && text.contains("a.csv"),
        "{text}"
    );

    // Each party may name its key column differently.
    let c = tmp.path().join("c.csv");
    std::fs::write(
        &c,
        "phone,z
9,u
5,v
",
    )
    .unwrap();
    let out = ok(ferry()
        .args(["psi", "--json", "--key-for", "telco=phone", "--input"])
        .arg(format!("bank={}", a.display()))
        .arg("--input")
        .arg(format!("telco={}", c.display()))
        .arg("--out-dir")
        .arg(&out_dir));
    let parties: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(parties[1]["result"]["intersection_size"], 1);
    let telco_rows = std::fs::read_to_string(out_dir.join("telco.intersection.csv")).unwrap();
    assert_eq!(telco_rows, "phone,z\n5,v\n");
    let out = run(ferry()
        .args(["psi", "--key-for", "insurer=x", "--input"])
        .arg(format!("bank={}", a.display()))
        .arg("--input")
        .arg(format!("telco={}", c.display())));
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("'insurer'"), "{text}");
}

#[test]
fn dataset_add_uploads_and_refuses_the_node_s_own_files() {
    let tmp = tempfile::tempdir().unwrap();
    let bank = tmp.path().join("bank");
    ok(ferry()
        .args(["init", "--party", "bank", "--dir"])
        .arg(&bank)
        .args([
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--api",
            &format!("127.0.0.1:{}", free_port()),
        ]));
    let _node = serve(&bank);
    let start = Instant::now();
    while !run(ferry().args(["dataset", "list", "--dir"]).arg(&bank))
        .status
        .success()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "node did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = |cmd: &mut Command| {
        let out = run(cmd);
        assert!(!out.status.success(), "{cmd:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let key = bank.join("identity/key.pem");
    // The node's private key is not a dataset: the CLI knows the node directory and refuses.
    let err = refused(
        ferry()
            .args(["dataset", "add", "x", "--file"])
            .arg(&key)
            .arg("--dir")
            .arg(&bank),
    );
    assert!(
        err.contains("belongs to the node 'bank'") && err.contains("never registered"),
        "{err}"
    );
    // Nor by its path on the node's machine: the node refuses.
    let err = refused(
        ferry()
            .args(["dataset", "add", "x", "--server-path"])
            .arg(std::fs::canonicalize(&key).unwrap())
            .arg("--dir")
            .arg(&bank),
    );
    assert!(err.contains("inside the node directory"), "{err}");
    // A file outside any import directory is refused by path, naming the setting.
    let data = write_data(&tmp.path().join("exports"), true, 50);
    let err = refused(
        ferry()
            .args(["dataset", "add", "x", "--server-path"])
            .arg(std::fs::canonicalize(&data).unwrap())
            .arg("--dir")
            .arg(&bank),
    );
    assert!(err.contains("[datasets] import_dirs"), "{err}");
    // --file and --server-path exclude each other; one is needed.
    let err = refused(
        ferry()
            .args(["dataset", "add", "x", "--file"])
            .arg(&data)
            .arg("--server-path")
            .arg(&data)
            .arg("--dir")
            .arg(&bank),
    );
    assert!(err.contains("cannot be used with"), "{err}");
    refused(ferry().args(["dataset", "add", "x", "--dir"]).arg(&bank));
    // Names of job outputs are reserved.
    let err = refused(
        ferry()
            .args(["dataset", "add", "job-x", "--file"])
            .arg(&data)
            .arg("--dir")
            .arg(&bank),
    );
    assert!(err.contains("reserved"), "{err}");
    // An upload registers the file.
    let out = ok(ferry()
        .args(["dataset", "add", "customers", "--label", "y", "--file"])
        .arg(&data)
        .arg("--dir")
        .arg(&bank));
    assert_eq!(
        out.trim(),
        "registered 'customers': 50 rows, 4 columns (csv)",
        "{out}"
    );
    let list = json_of(ok(ferry()
        .args(["dataset", "list", "--json", "--dir"])
        .arg(&bank)));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["customers"]);
    let uploads = bank.join("data/uploads");
    assert!(
        std::fs::read_dir(&uploads).map_or(true, |mut d| d.next().is_none()),
        "temporary uploads are removed"
    );
}

#[test]
fn anonymous_query_one_id_and_a_batch_file_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let (bank, telco) = two_nodes(tmp.path());
    let _bank_node = serve(&bank);
    let _telco_node = serve(&telco);
    wait_api(&bank);
    wait_api(&telco);

    let subscribers = tmp.path().join("subscribers.csv");
    let mut text = "phone,tenure,plan\n".to_string();
    for i in 0..200 {
        text += &format!("1380000{i:04},{},plan-{}\n", i % 37, i % 5);
    }
    std::fs::write(&subscribers, text).unwrap();
    ok(ferry()
        .args(["dataset", "add", "subscribers", "--id", "phone", "--file"])
        .arg(&subscribers)
        .arg("--dir")
        .arg(&telco));
    let published = ok(ferry()
        .args([
            "query",
            "publish",
            "attrs",
            "--dataset",
            "subscribers",
            "--key",
            "phone",
            "--values",
            "tenure,plan",
            "--dir",
        ])
        .arg(&telco));
    assert!(
        published.contains("serves version 1 (200 rows)"),
        "{published}"
    );

    // Not granted yet: refused, and the refusal says so.
    let out = run(ferry()
        .args([
            "query",
            "run",
            "attrs",
            "--provider",
            "telco",
            "--id",
            "13800000042",
            "--dir",
        ])
        .arg(&bank));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("offers no query service 'attrs' to party 'bank'"),
        "{err}"
    );

    ok(ferry()
        .args([
            "dataset",
            "grant",
            "subscribers",
            "--party",
            "bank",
            "--dir",
        ])
        .arg(&telco));
    let one = ok(ferry()
        .args([
            "query",
            "run",
            "attrs",
            "--provider",
            "telco",
            "--id",
            "13800000042",
            "--dir",
        ])
        .arg(&bank));
    assert!(one.contains("phone=13800000042: found"), "{one}");
    assert!(
        one.contains("tenure = 5") && one.contains("plan = plan-2"),
        "{one}"
    );

    let ids = tmp.path().join("ids.csv");
    std::fs::write(
        &ids,
        "customer,phone\nann,13800000007\nbob,19999999999\ncyd,13800000199\n",
    )
    .unwrap();
    let result = tmp.path().join("result.csv");
    let batch = ok(ferry()
        .args([
            "query",
            "run",
            "attrs",
            "--provider",
            "telco",
            "--column",
            "phone",
            "--ids",
        ])
        .arg(&ids)
        .arg("--out")
        .arg(&result)
        .arg("--dir")
        .arg(&bank));
    assert!(batch.contains("2 of 3 ids found"), "{batch}");
    assert_eq!(
        std::fs::read_to_string(&result).unwrap(),
        "phone,found,tenure,plan\n13800000007,true,7,plan-2\n19999999999,false,,\n13800000199,true,14,plan-4\n"
    );

    // The bank's record lists both queries; the telco's service shows counts only.
    let queries = json_of(ok(ferry()
        .args(["query", "list", "--json", "--dir"])
        .arg(&bank)));
    let queries = queries.as_array().unwrap();
    assert_eq!(queries.len(), 3, "the refused query is recorded too");
    assert_eq!(
        queries
            .iter()
            .filter(|q| q["status"] == "succeeded")
            .count(),
        2
    );
    let service = ok(ferry()
        .args(["query", "service", "attrs", "--dir"])
        .arg(&telco));
    assert!(service.contains("partners     bank"), "{service}");
    let usage = json_of(ok(ferry()
        .args(["query", "service", "attrs", "--json", "--dir"])
        .arg(&telco)));
    assert_eq!(usage["usage"][0]["ids"], 4);
    assert_eq!(usage["usage"][0]["sessions"], 2);
}

#[test]
fn users_get_roles_and_personal_tokens_act_with_them() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let bank = tmp.path().join("bank");
    ok(ferry()
        .args(["init", "--party", "bank", "--dir"])
        .arg(&bank)
        .args([
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--api",
            &format!("127.0.0.1:{}", free_port()),
        ]));
    let add = |name: &str, role: &str, password: &str| {
        let mut child = ferry()
            .args(["user", "add", name, "--role", role, "--dir"])
            .arg(&bank)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A refused request (two roles, say) may exit before reading the password: the
        // write then fails with a broken pipe, and the exit status tells the outcome.
        let _ = writeln!(child.stdin.take().unwrap(), "{password}");
        child.wait_with_output().unwrap()
    };
    let out = add("mia", "modeller", "a long enough password");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        printed.contains("user 'mia' created (modeller)"),
        "{printed}"
    );
    // Separation of duties by default; short passwords refused.
    let two = add("max", "modeller,approver", "a long enough password");
    assert!(String::from_utf8_lossy(&two.stderr).contains("allow_multiple_roles = false"));
    let short = add("max", "approver", "short");
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12"));

    // The command the CLI printed works as printed, and the token acts as mia.
    let token = ok(ferry()
        .args([
            "token", "create", "--name", "mia-cli", "--user", "mia", "--dir",
        ])
        .arg(&bank))
    .trim()
    .to_string();
    let _node = serve(&bank);
    wait_api(&bank);
    let jobs = run(ferry()
        .args(["job", "list", "--token", &token, "--dir"])
        .arg(&bank));
    assert!(
        jobs.status.success(),
        "{}",
        String::from_utf8_lossy(&jobs.stderr)
    );
    let data = tmp.path().join("d.csv");
    std::fs::write(&data, "id,x\n1,2\n").unwrap();
    let refused = run(ferry()
        .args(["dataset", "add", "d", "--token", &token, "--file"])
        .arg(&data)
        .arg("--dir")
        .arg(&bank));
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("needs the 'manage_data' permission, which user:mia (modeller) does not have"),
        "{err}"
    );
    let users = ok(ferry().args(["user", "list", "--dir"]).arg(&bank));
    assert!(
        users.contains("mia") && users.contains("modeller"),
        "{users}"
    );
    ok(ferry().args(["user", "disable", "mia", "--dir"]).arg(&bank));
    let after = run(ferry()
        .args(["job", "list", "--token", &token, "--dir"])
        .arg(&bank));
    assert!(
        !after.status.success(),
        "a disabled user's token stops working"
    );
    // What was done on the node directory is in the action log too, under the OS account.
    let exported = tmp.path().join("actions.jsonl");
    ok(ferry()
        .args(["audit", "export", "--format", "jsonl", "--out"])
        .arg(&exported)
        .arg("--dir")
        .arg(&bank));
    let log = std::fs::read_to_string(&exported).unwrap();
    let actions: Vec<(String, String, String)> = log
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["actor"].as_str().unwrap().to_string(),
                v["action"].as_str().unwrap().to_string(),
                v["object"].as_str().unwrap().to_string(),
            )
        })
        .filter(|(actor, _, _)| actor.starts_with("cli:"))
        .collect();
    let done: Vec<(&str, &str)> = actions
        .iter()
        .map(|(_, a, o)| (a.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        done,
        [
            ("user.add", "user=mia; roles=modeller"),
            ("token.create", "name=mia-cli; role=user; user=mia"),
            ("user.disable", "user=mia"),
        ],
        "{log}"
    );
}

/// What someone with write access to a node's database (but not its key) does to hide an
/// action: edits entry `from`, recomputes every later hash so the chain is consistent in
/// itself, and deletes the node's own checkpoints.
fn rewrite_action_log(db: &Path, from: i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut rows: Vec<ferry_store::ActionEntry> = {
        let mut stmt = conn
            .prepare(
                "SELECT seq, occurred_at, actor, action, object, address, outcome, status, detail, prev_hash, hash \
                 FROM audit_actions ORDER BY seq",
            )
            .unwrap();
        stmt.query_map([], |r| {
            let outcome: String = r.get(6)?;
            Ok(ferry_store::ActionEntry {
                seq: r.get::<_, i64>(0)? as u64,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                object: r.get(4)?,
                address: r.get(5)?,
                outcome: if outcome == "ok" {
                    ferry_store::Outcome::Ok
                } else {
                    ferry_store::Outcome::Error
                },
                status: r.get::<_, Option<i64>>(7)?.map(|s| s as u16),
                detail: r.get(8)?,
                prev_hash: r.get(9)?,
                hash: r.get(10)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut prev = [0u8; 32];
    for e in rows.iter_mut() {
        if e.seq as i64 == from {
            e.actor = "token:someone-else".into();
        }
        e.prev_hash = hex(&prev);
        prev = e.chained_hash(&prev);
        e.hash = hex(&prev);
        conn.execute(
            "UPDATE audit_actions SET actor = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![e.actor, e.prev_hash, e.hash, e.seq as i64],
        )
        .unwrap();
    }
    conn.execute("DELETE FROM audit_checkpoints", []).unwrap();
}

#[test]
fn the_audit_log_records_cli_actions_and_a_partner_s_checkpoints_expose_a_rewrite() {
    let tmp = tempfile::tempdir().unwrap();
    let (bank, telco) = two_nodes(tmp.path());
    // The bank signs a checkpoint after every entry.
    let mut config = std::fs::read_to_string(bank.join("ferry.toml")).unwrap();
    config.push_str("\n[audit]\ncheckpoint_every_entries = 1\n");
    std::fs::write(bank.join("ferry.toml"), config).unwrap();
    let bank_node = serve(&bank);
    let _telco_node = serve(&telco);
    wait_api(&bank);
    wait_api(&telco);

    let data = write_data(&tmp.path().join("in"), true, 20);
    ok(ferry()
        .args(["dataset", "add", "customers", "--id", "id", "--file"])
        .arg(&data)
        .arg("--dir")
        .arg(&bank));
    ok(ferry()
        .args(["dataset", "grant", "customers", "--party", "telco", "--dir"])
        .arg(&bank));
    assert!(
        !run(ferry()
            .args(["dataset", "grant", "missing", "--party", "telco", "--dir"])
            .arg(&bank))
        .status
        .success()
    );
    let signed = ok(ferry().args(["audit", "checkpoint", "--dir"]).arg(&bank));
    assert!(
        signed.contains("signed entry 4") && signed.contains("sent to telco"),
        "{signed}"
    );

    let list = json_of(ok(ferry()
        .args(["audit", "list", "--json", "--dir"])
        .arg(&bank)));
    let entries = list.as_array().unwrap();
    assert_eq!(entries.len(), 5, "{list:#}");
    // `ferry peer add` ran on the node directory before the node started: recorded under the
    // operating-system account.
    assert_eq!(entries[0]["action"], "partner.add", "{list:#}");
    assert!(
        entries[0]["actor"].as_str().unwrap().starts_with("cli:"),
        "{list:#}"
    );
    let entries = &entries[1..];
    for e in entries {
        assert_eq!(e["actor"], "token:admin", "{e}");
        assert!(
            e["address"].as_str().unwrap().starts_with("127.0.0.1:"),
            "the client's address: {e}"
        );
    }
    assert_eq!(entries[0]["action"], "POST /api/v1/datasets/{name}/upload");
    assert_eq!(entries[2]["outcome"], "error");
    assert_eq!(entries[2]["status"], 404);
    assert_eq!(entries[3]["action"], "POST /api/v1/audit/checkpoint");

    // The telco kept a checkpoint of each of the bank's entries; it hands them to the auditor.
    let held = tmp.path().join("bank-checkpoints.json");
    let start = Instant::now();
    loop {
        ok(ferry()
            .args(["audit", "checkpoints", "--partner", "bank", "--out"])
            .arg(&held)
            .arg("--dir")
            .arg(&telco));
        let kept: Value = serde_json::from_str(&std::fs::read_to_string(&held).unwrap()).unwrap();
        // A checkpoint of every entry made while the bank ran (2 to 5).
        let seqs: Vec<u64> = kept
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["seq"].as_u64())
            .collect();
        if (2..=5).all(|s| seqs.contains(&s)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the telco holds {kept:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let verified = ok(ferry()
        .args(["audit", "verify", "--checkpoints"])
        .arg(&held)
        .arg("--dir")
        .arg(&bank));
    assert_eq!(verified.matches("OK:").count(), 2, "{verified}");

    let csv = tmp.path().join("audit.csv");
    ok(ferry()
        .args([
            "audit",
            "export",
            "--format",
            "csv",
            "--from",
            "2000-01-01",
            "--out",
        ])
        .arg(&csv)
        .arg("--dir")
        .arg(&bank));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.starts_with(
            "seq,at,actor,action,object,address,outcome,status,detail,prev_hash,hash\n"
        )
    );
    assert!(
        text.contains("POST /api/v1/datasets/{name}/grants,name=missing; party=telco"),
        "{text}"
    );
    let jsonl = tmp.path().join("audit.jsonl");
    ok(ferry()
        .args(["audit", "export", "--out"])
        .arg(&jsonl)
        .arg("--dir")
        .arg(&bank));
    assert_eq!(std::fs::read_to_string(&jsonl).unwrap().lines().count(), 5);

    // Someone rewrites the bank's log while it is stopped: entry 3 names another actor, the
    // chain is recomputed, the bank's own checkpoints are gone. The bank alone sees nothing …
    drop(bank_node);
    rewrite_action_log(&bank.join("state/ferry.db"), 3);
    let _bank_node = serve(&bank);
    wait_api(&bank);
    let alone = ok(ferry().args(["audit", "verify", "--dir"]).arg(&bank));
    assert!(alone.contains("OK:"), "{alone}");
    // … the checkpoints the telco holds name the entry.
    let out = run(ferry()
        .args(["audit", "verify", "--checkpoints"])
        .arg(&held)
        .arg("--dir")
        .arg(&bank));
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAILED at entry 3"), "{stdout}");
    assert!(stdout.contains("from 3 to 3"), "{stdout}");
}

#[test]
fn the_approvals_list_shows_a_partner_s_proposal_and_the_printed_commands_decide_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (bank, telco) = two_nodes(tmp.path());
    // The telco approves by hand in this test.
    let config = telco.join("ferry.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("auto_approve = true", "auto_approve = false");
    std::fs::write(&config, text).unwrap();
    let _b = serve(&bank);
    let _t = serve(&telco);
    wait_api(&bank);
    wait_api(&telco);
    let guest = write_data(&tmp.path().join("g"), true, 40);
    let host = write_data(&tmp.path().join("h"), false, 40);
    ok(ferry()
        .args(["dataset", "add", "d", "--label", "y", "--file"])
        .arg(&guest)
        .arg("--dir")
        .arg(&bank));
    ok(ferry()
        .args(["dataset", "add", "d", "--file"])
        .arg(&host)
        .arg("--dir")
        .arg(&telco));
    ok(ferry()
        .args(["dataset", "grant", "d", "--party", "bank", "--dir"])
        .arg(&telco));
    let spec = tmp.path().join("job.yaml");
    std::fs::write(
        &spec,
        "name: t\nparties: {guest: bank, hosts: [telco]}\ntasks:\n  - {name: read, component: reader, party_params: {bank: {dataset: d}, telco: {dataset: d}}}\n  - {name: intersect, component: psi, inputs: {data: read}}\n",
    )
    .unwrap();
    let submitted = json_of(ok(ferry()
        .args(["job", "submit", "--json"])
        .arg(&spec)
        .arg("--dir")
        .arg(&bank)));
    let job = submitted["job_id"].as_str().unwrap().to_string();
    let start = Instant::now();
    let listing = loop {
        let out = ok(ferry().args(["approvals", "--dir"]).arg(&telco));
        if out.contains(&job) {
            break out;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{out}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        listing.contains("from 'bank'") && listing.contains("expires"),
        "{listing}"
    );
    // The printed reject command works as printed (quotes aside).
    let line = listing
        .lines()
        .find(|l| l.contains("ferry job reject"))
        .unwrap();
    let printed = line.split("or").nth(1).unwrap().trim();
    let mut words: Vec<String> = printed.split_whitespace().map(str::to_string).collect();
    assert_eq!(words[0], "ferry");
    let reason_at = words.iter().position(|w| w == "--reason").unwrap();
    words[reason_at + 1] = "not covered by our agreement".into();
    ok(ferry().args(&words[1..]));
    let v = wait_status(&bank, &job, &["failed"], Duration::from_secs(30));
    assert!(
        v["job"]["reason"]
            .as_str()
            .unwrap()
            .contains("not covered by our agreement"),
        "{v}"
    );
    assert!(ok(ferry().args(["approvals", "--dir"]).arg(&telco)).contains("nothing waits"));
}
