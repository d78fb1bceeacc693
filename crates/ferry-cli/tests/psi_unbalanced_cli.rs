//! Unbalanced PSI from the command line, two processes over loopback TLS each time:
//! `ferry bench psi --protocol unbalanced` on small sizes, and `ferry psi --protocol
//! unbalanced` on two CSV files, where a second run reuses the provider's filter and the
//! querier's cached copy.

use serde_json::Value;
use std::process::Command;

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

/// Runs `cmd`, which must fail; its standard error.
fn refused(cmd: &mut Command) -> String {
    let out = cmd.output().expect("ferry runs");
    assert!(!out.status.success(), "{cmd:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("ferry runs");
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_benchmark_reports_preprocessing_and_checked_online_runs() {
    let out = ok(ferry().args([
        "bench",
        "psi",
        "--protocol",
        "unbalanced",
        "--size",
        "300",
        "--provider-size",
        "2000",
        "--runs",
        "2",
        "--json",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["expected_intersection"], 150);
    assert_eq!(v["preprocessing"]["unique_tags"], 2000);
    assert_eq!(v["preprocessing"]["tag_bits"], 56);
    let runs = v["online_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs[0]["filter_downloaded_bytes"].as_u64().unwrap() > 2000 * 7);
    assert_eq!(
        runs[1]["filter_downloaded_bytes"], 0,
        "the second run uses the cache"
    );
    for r in runs {
        assert_eq!(r["intersection"], 150);
    }
}

#[test]
fn ferry_psi_unbalanced_writes_the_querier_rows_and_reuses_state() {
    let tmp = tempfile::tempdir().unwrap();
    let bank = tmp.path().join("bank.csv");
    let telco = tmp.path().join("telco.csv");
    std::fs::write(&bank, "id,x\n1,a\n2,b\n3,c\n3,dup\n,empty\n5,e\n").unwrap();
    let mut subscribers = String::from("phone,plan\n");
    for i in 3..500 {
        subscribers.push_str(&format!("{i},p\n"));
    }
    std::fs::write(&telco, subscribers).unwrap();
    let out_dir = tmp.path().join("out");
    let run = || -> Vec<Value> {
        let out = ok(ferry()
            .args(["psi", "--protocol", "unbalanced", "--json", "--input"])
            .arg(format!("bank={}", bank.display()))
            .arg("--input")
            .arg(format!("telco={}", telco.display()))
            .args(["--key-for", "telco=phone", "--out-dir"])
            .arg(&out_dir));
        serde_json::from_str(&out).unwrap()
    };
    let first = run();
    let q = first.iter().find(|p| p["party"] == "bank").unwrap();
    let p = first.iter().find(|p| p["party"] == "telco").unwrap();
    assert_eq!(q["result"]["intersection_size"], 2);
    assert_eq!(q["result"]["duplicates_dropped"], 1);
    assert!(q["result"]["filter_downloaded_bytes"].as_u64().unwrap() > 0);
    assert_eq!(
        p["result"]["query_size"], 4,
        "the provider learns the distinct ids asked"
    );
    assert!(
        !p["result"]["preprocessing"].is_null(),
        "first run builds the filter"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("bank.intersection.csv")).unwrap(),
        "id,x\n3,c\n5,e\n"
    );
    assert!(
        !out_dir.join("telco.intersection.csv").exists(),
        "only the querier learns"
    );

    let second = run();
    let q = second.iter().find(|p| p["party"] == "bank").unwrap();
    let p = second.iter().find(|p| p["party"] == "telco").unwrap();
    assert_eq!(q["result"]["intersection_size"], 2);
    assert_eq!(q["result"]["filter_downloaded_bytes"], 0);
    assert!(
        p["result"]["preprocessing"].is_null(),
        "same data: the filter is reused"
    );

    // Under the gm suite it is refused rather than run over Ristretto255 after all.
    let err = refused(
        ferry()
            .args([
                "psi",
                "--protocol",
                "unbalanced",
                "--suite",
                "gm",
                "--input",
            ])
            .arg(format!("bank={}", bank.display()))
            .arg("--input")
            .arg(format!("telco={}", telco.display()))
            .args(["--key-for", "telco=phone", "--out-dir"])
            .arg(tmp.path().join("gm")),
    );
    assert!(err.contains("not available with --suite gm"), "{err}");
}
