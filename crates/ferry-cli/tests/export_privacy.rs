//! `ferry job privacy` and `ferry dataset export` against two served nodes: a PSI job's report
//! as text and JSON, and its derived dataset exported byte for byte.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("ferry runs")
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "command failed: {:?}\nstdout: {}\nstderr: {}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(!out.status.success(), "{cmd:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path) -> Served {
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    Served(
        ferry()
            .arg("serve")
            .arg("--dir")
            .arg(dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn wait_api(dir: &Path) {
    let start = Instant::now();
    while !run(ferry().args(["dataset", "list", "--dir"]).arg(dir))
        .status
        .success()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "node at {} did not start",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `bank` and `telco` initialised and pinned to each other; telco approves jobs itself.
fn two_nodes(root: &Path) -> (PathBuf, PathBuf) {
    let port = || ferry_transport::unused_loopback_port().unwrap();
    let bank = root.join("bank");
    let telco = root.join("telco");
    for (party, dir) in [("bank", &bank), ("telco", &telco)] {
        let mut cmd = ferry();
        cmd.args(["init", "--party", party, "--dir"])
            .arg(dir)
            .args([
                "--listen",
                &format!("127.0.0.1:{}", port()),
                "--api",
                &format!("127.0.0.1:{}", port()),
            ]);
        if party == "telco" {
            cmd.arg("--auto-approve");
        }
        ok(&mut cmd);
    }
    let addr = |dir: &Path| {
        let text = std::fs::read_to_string(dir.join("ferry.toml")).unwrap();
        text.lines()
            .find(|l| l.starts_with("federation_listen"))
            .unwrap()
            .split('"')
            .nth(1)
            .unwrap()
            .to_string()
    };
    for (me, peer, name) in [(&bank, &telco, "telco"), (&telco, &bank, "bank")] {
        ok(ferry()
            .args(["peer", "add", name, "--addr", &addr(peer), "--cert"])
            .arg(peer.join("identity/cert.pem"))
            .arg("--dir")
            .arg(me));
    }
    (bank, telco)
}

fn write_ids(path: &Path, ids: impl Iterator<Item = usize>) {
    let mut text = String::from("id,x\n");
    for i in ids {
        text += &format!("u{i},{}\n", i % 10);
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_job_s_privacy_report_and_its_psi_result_come_out_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let (bank, telco) = two_nodes(tmp.path());
    let _bank_node = serve(&bank);
    let _telco_node = serve(&telco);
    wait_api(&bank);
    wait_api(&telco);
    let bank_file = tmp.path().join("bank.csv");
    let telco_file = tmp.path().join("telco.csv");
    write_ids(&bank_file, 0..400);
    write_ids(&telco_file, (200..700).step_by(2));
    for (dir, file) in [(&bank, &bank_file), (&telco, &telco_file)] {
        ok(ferry()
            .args(["dataset", "add", "ids", "--file"])
            .arg(file)
            .arg("--dir")
            .arg(dir));
    }
    ok(ferry()
        .args(["dataset", "grant", "ids", "--party", "bank", "--dir"])
        .arg(&telco));
    let spec = tmp.path().join("psi.yaml");
    std::fs::write(
        &spec,
        "parties: {guest: bank, hosts: [telco]}\ntimeout_secs: 60\ntasks:\n  \
         - {name: read, component: reader, party_params: {bank: {dataset: ids}, telco: {dataset: ids}}}\n  \
         - {name: psi, component: psi, inputs: {data: read}, params: {receivers: bank}}\n",
    )
    .unwrap();
    let submitted = json_of(ok(ferry()
        .args(["job", "submit", "--json", "--dir"])
        .arg(&bank)
        .arg(&spec)));
    let job = submitted["job_id"].as_str().unwrap().to_string();
    let start = Instant::now();
    loop {
        let v = json_of(ok(ferry()
            .args(["job", "status", &job, "--json", "--dir"])
            .arg(&bank)));
        match v["job"]["status"].as_str().unwrap() {
            "succeeded" => break,
            "failed" | "cancelled" => panic!("{v}"),
            _ => {}
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{v}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The report, as text and as the API's JSON.
    let text = ok(ferry().args(["job", "privacy", &job, "--dir"]).arg(&bank));
    for expected in [
        "ECDH-PSI (SECURITY.md): set sizes to every party",
        "bank (guest) → telco (host): its set size (distinct non-empty keys)",
        "telco (host) → bank (guest): which of the receiver's own rows it also holds",
        "setting: result to: bank",
        "with telco: sent ",
        "runs on each party's own data; nothing crosses",
    ] {
        assert!(text.contains(expected), "missing '{expected}' in:\n{text}");
    }
    assert!(
        !text.contains("bank (guest) → telco (host): which of the receiver"),
        "telco does not receive the result:\n{text}"
    );
    let report = json_of(ok(ferry()
        .args(["job", "privacy", &job, "--json", "--dir"])
        .arg(&bank)));
    let psi = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "psi")
        .unwrap();
    assert!(psi["bytes"][0]["bytes_sent"].as_u64().unwrap() > 0, "{psi}");

    // The PSI result, exported: the node's file, byte for byte.
    let derived = format!("{job}-psi");
    let shown = json_of(ok(ferry()
        .args(["dataset", "show", &derived, "--json", "--dir"])
        .arg(&bank)));
    let stored = PathBuf::from(shown["dataset"]["path"].as_str().unwrap());
    let out = tmp.path().join("out").join("matches.csv");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let said = ok(ferry()
        .args(["dataset", "export", &derived, "--out"])
        .arg(&out)
        .arg("--dir")
        .arg(&bank));
    assert!(
        said.contains(shown["dataset"]["sha256"].as_str().unwrap()),
        "{said}"
    );
    let exported = std::fs::read(&out).unwrap();
    assert_eq!(exported, std::fs::read(&stored).unwrap());
    // 100 common ids (the even ones from 200 to 398) and the header.
    assert_eq!(String::from_utf8(exported).unwrap().lines().count(), 101);

    // An existing file is kept unless --force; an unknown dataset is named.
    let err = refused(
        ferry()
            .args(["dataset", "export", &derived, "--out"])
            .arg(&out)
            .arg("--dir")
            .arg(&bank),
    );
    assert!(err.contains("--force"), "{err}");
    ok(ferry()
        .args(["dataset", "export", "ids", "--force", "--out"])
        .arg(&out)
        .arg("--dir")
        .arg(&bank));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&bank_file).unwrap()
    );
    let err = refused(
        ferry()
            .args(["dataset", "export", "nothing_here", "--out"])
            .arg(tmp.path().join("x.csv"))
            .arg("--dir")
            .arg(&bank),
    );
    assert!(
        err.contains("'nothing_here'") && err.contains("HTTP 404"),
        "{err}"
    );
    assert!(!tmp.path().join("x.csv").exists());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn json_of(out: String) -> Value {
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}
