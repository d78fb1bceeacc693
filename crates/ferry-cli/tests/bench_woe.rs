//! `ferry bench woe` on a small slice of default_credit with test-size keys: the JSON report
//! has every phase, the same-run baselines, and IVs equal to the centralised ones.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

/// The repository's test data (`test-data/datasets`); panics naming the file when missing.
fn data_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test-data/datasets");
    for f in [
        "default_credit_hetero_guest.csv",
        "default_credit_hetero_host.csv",
    ] {
        assert!(
            dir.join(f).is_file(),
            "test data file {} is missing (see test-data/datasets/README.md)",
            dir.join(f).display()
        );
    }
    dir
}

fn run(args: &[&str]) -> Output {
    ferry()
        .args(["bench", "woe", "--data-dir"])
        .arg(data_dir())
        .args(args)
        .output()
        .expect("ferry runs")
}

#[test]
fn a_small_run_reports_every_phase_and_exact_ivs() {
    let out = run(&["--rows", "2000", "--key-bits", "1024", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(
        stderr.contains("1024-bit keys are below the 2048-bit minimum"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["data"], "default_credit");
    assert_eq!(report["rows"], 2000);
    assert_eq!(report["guest_features"], 13);
    assert_eq!(report["host_features"], 10);
    assert_eq!(report["key_bits"], 1024);
    assert_eq!(report["insecure_key_size"], true);
    assert_eq!(report["binning"]["method"], "optimal");
    assert_eq!(report["target_seconds"], 10.0);
    assert_eq!(report["max_iv_difference"], 0.0);
    let wall = report["wall_seconds"].as_f64().unwrap();
    assert!(wall > 0.0);
    for phase in [
        "binning_guest_seconds",
        "binning_host_seconds",
        "keygen_seconds",
        "encrypt_seconds",
        "host_sums_seconds",
        "decrypt_seconds",
        "merge_seconds",
    ] {
        let s = report["phases"][phase].as_f64().unwrap();
        assert!((0.0..=wall).contains(&s), "{phase}: {s} of {wall}");
    }
    assert!(report["phases"]["encrypt_seconds"].as_f64().unwrap() > 0.0);
    // Every label encrypted once, one addition per row and host feature.
    assert_eq!(report["he_operations"]["encryptions"], 2000);
    assert_eq!(report["he_operations"]["additions"], 20_000);
    assert!(report["baseline"]["seconds"].as_f64().unwrap() > 0.0);
    assert!(report["baseline"]["ratio"].as_f64().unwrap() > 1.0);
    assert!(report["crypto_floor"]["wall_seconds"].as_f64().unwrap() > 0.0);
    let iv = report["iv"].as_array().unwrap();
    assert_eq!(iv.len(), 23);
    assert!(iv.iter().all(|f| f["iv"].as_f64().unwrap() >= 0.0));
    // Host features reach the guest under neutral names (share_feature_names is off).
    assert_eq!(iv[13]["feature"], "telco:feature_0");
    let bins = report["host_value_bins"].as_array().unwrap();
    assert_eq!(bins.len(), 10);
    assert!(bins.iter().all(|b| (1..=10).contains(&b.as_u64().unwrap())));
}

#[test]
fn bad_arguments_are_named() {
    let out = run(&["--rows", "40000", "--key-bits", "1024"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--rows 40000"), "{stderr}");

    let out = run(&["--binning", "chimerge", "--key-bits", "1024"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown binning 'chimerge'"), "{stderr}");

    let out = ferry()
        .args([
            "bench",
            "woe",
            "--data-dir",
            "/nonexistent",
            "--key-bits",
            "1024",
        ])
        .output()
        .expect("ferry runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/default_credit_hetero_guest.csv not found"),
        "{stderr}"
    );
}
