//! `ferry bench pir` on a small table, end to end: two processes over loopback TLS, every
//! returned value checked by the querier, and a JSON report with every phase.

use serde_json::Value;
use std::process::Command;

#[test]
fn a_small_run_reports_every_phase_with_checked_results() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "bench",
            "pir",
            "--rows",
            "2000",
            "--value-bytes",
            "16",
            "--ids",
            "10",
            "--repeat",
            "2",
            "--seed",
            "5",
            "--json",
        ])
        .output()
        .expect("ferry runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["benchmark"], "pir");
    assert_eq!(v["rows"], 2000);
    assert_eq!(v["value_bytes"], 16);
    assert!(v["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(v["kernel"].as_str().is_some_and(|k| !k.is_empty()));

    let hint = v["layout"]["hint_bytes"].as_u64().unwrap();
    assert!(hint > 0);
    let first = &v["phases"]["first"];
    assert_eq!(first["ids"], 1);
    assert_eq!(first["found"], 1);
    assert_eq!(first["hint_downloaded"], true);
    assert_eq!(first["hint_bytes"].as_u64(), Some(hint));
    // The hint is part of the first session's download.
    assert!(first["bytes_down"].as_u64().unwrap() > hint);

    let online = &v["phases"]["online"];
    assert_eq!(online["sessions"], 2);
    assert_eq!(online["hint_downloaded"], false);
    // One present and one absent id.
    assert_eq!(online["present"], 1);
    assert_eq!(online["absent"], 1);
    assert_eq!(online["found"], 1);
    let query = v["layout"]["query_bytes"].as_u64().unwrap();
    let answer = v["layout"]["answer_bytes"].as_u64().unwrap();
    assert!(online["bytes_up_per_id"].as_f64().unwrap() > query as f64);
    let down = online["bytes_down_per_id"].as_f64().unwrap();
    assert!(down > answer as f64 && down < hint as f64, "{online}");

    let batch = &v["phases"]["batch"];
    assert_eq!(batch["ids"], 10);
    assert_eq!(batch["present"], 5);
    assert_eq!(batch["absent"], 5);
    assert_eq!(batch["found"], 5);
    assert_eq!(batch["hint_downloaded"], false);
    assert_eq!(batch["database_passes"], 2);
    for phase in ["first", "online", "batch"] {
        let p = &v["phases"][phase];
        for k in [
            "wall_seconds",
            "bytes_up",
            "bytes_down",
            "provider_answer_seconds",
            "answer_over_baseline",
        ] {
            assert!(p[k].as_f64().is_some_and(|x| x > 0.0), "{phase}.{k}: {p}");
        }
        assert!(p["provider_cpu_seconds_per_id"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(v["checked"]["ids"], 1 + 2 + 10);
    assert_eq!(v["checked"]["present"], 1 + 1 + 5);
    assert_eq!(v["checked"]["absent"], 1 + 5);
    assert!(v["preprocessing"]["wall_seconds"].as_f64().unwrap() > 0.0);
    assert!(v["baseline"]["seconds"].as_f64().unwrap() > 0.0);
    assert!(v["peak_rss_mib"]["provider"].as_f64().unwrap() > 0.0);
    assert!(v["peak_rss_mib"]["querier"].as_f64().unwrap() > 0.0);
    // Not the size: no targets and no reference figures.
    assert_eq!(v["targets"].as_array().map(Vec::len), Some(0));
    assert_eq!(v["reference"]["figures"].as_array().map(Vec::len), Some(0));
}
