//! `ferry psi --suite gm`: ECDH-PSI over SM2 with SM3 between real processes over loopback
//! TLS, finding the rows the default suite finds.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn psi_with_the_gm_suite_intersects_files_like_the_default_suite() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.csv");
    let b = tmp.path().join("b.csv");
    std::fs::write(&a, "id,x\n1,a\n2,b\n3,c\n3,dup\n,empty\n5,e\n").unwrap();
    std::fs::write(&b, "id,y\n5,q\n3,r\n9,s\n").unwrap();
    let rows = |out_dir: &std::path::Path, party: &str| -> Vec<String> {
        std::fs::read_to_string(out_dir.join(format!("{party}.intersection.csv")))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect()
    };
    let mut by_suite = Vec::new();
    for suite in ["gm", "default"] {
        let out_dir = tmp.path().join(suite);
        let out = ok(ferry()
            .args([
                "psi",
                "--json",
                "--protocol",
                "auto",
                "--suite",
                suite,
                "--input",
            ])
            .arg(format!("bank={}", a.display()))
            .arg("--input")
            .arg(format!("telco={}", b.display()))
            .arg("--out-dir")
            .arg(&out_dir));
        let parties: Vec<Value> = serde_json::from_str(&out).unwrap();
        for p in &parties {
            assert_eq!(p["result"]["intersection_size"], 2, "{p}");
        }
        if suite == "gm" {
            // Under gm, auto means ECDH over SM2 (KKRT is not part of the suite).
            assert_eq!(parties[0]["result"]["protocol"], "ecdh-psi-2p");
            assert_eq!(parties[0]["result"]["group"], "sm2");
        }
        let bank = rows(&out_dir, "bank");
        assert_eq!(bank, rows(&out_dir, "telco"), "same order at both parties");
        let mut sorted = bank;
        sorted.sort();
        by_suite.push(sorted);
    }
    assert_eq!(by_suite[0], ["3", "5"]);
    assert_eq!(by_suite[0], by_suite[1]);

    let out = run(ferry()
        .args(["psi", "--suite", "gm", "--protocol", "kkrt", "--input"])
        .arg(format!("bank={}", a.display()))
        .arg("--input")
        .arg(format!("telco={}", b.display())));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--protocol kkrt is not available with --suite gm"),
        "{err}"
    );
    let out = run(ferry()
        .args(["psi", "--suite", "sm4", "--input"])
        .arg(format!("bank={}", a.display()))
        .arg("--input")
        .arg(format!("telco={}", b.display())));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown crypto suite 'sm4'"), "{err}");
}
