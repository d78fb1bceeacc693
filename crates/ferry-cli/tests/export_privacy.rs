//! `ferry job privacy` and `ferry dataset export` against two served nodes: a PSI job's report
//! as text and JSON, and its derived dataset exported byte for byte.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
        "KKRT-PSI (SECURITY.md): set sizes to every party",
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
