//! `ferry model deploy` and `ferry service ...` against two served nodes: a SecureBoost model
//! trained by a job is deployed (the telco approves automatically), scored online, listed and
//! shown on both nodes (the telco's counters), switched to the same version, and undeployed.

mod common;

use common::*;
use std::fmt::Write as _;

/// A guest table (`id,a,b,y`) and a host table (`id,c,d`) of `n` rows whose label depends on
/// both parties' columns.
fn write_tables(bank: &std::path::Path, telco: &std::path::Path, n: usize) {
    let (mut g, mut h) = (String::from("id,a,b,y\n"), String::from("id,c,d\n"));
    for i in 0..n {
        let (a, b, c, d) = (i % 7, (i * 3) % 11, (i * 5) % 13, i % 4);
        let y = u8::from(a + c > 9);
        writeln!(g, "u{i},{a},{b},{y}").unwrap();
        writeln!(h, "u{i},{c},{d}").unwrap();
    }
    std::fs::write(bank, g).unwrap();
    std::fs::write(telco, h).unwrap();
}

#[test]
fn a_model_is_deployed_scored_shown_switched_and_undeployed() {
    let tmp = tempfile::tempdir().unwrap();
    let (bank, telco) = two_nodes(tmp.path());
    for dir in [&bank, &telco] {
        let toml = dir.join("ferry.toml");
        let mut text = std::fs::read_to_string(&toml).unwrap();
        text += "\n[policy]\nmin_paillier_bits = 1024\nmin_ou_bits = 1024\n";
        std::fs::write(&toml, text).unwrap();
    }
    let _b = serve(&bank);
    let _t = serve(&telco);
    wait_api(&bank);
    wait_api(&telco);
    let (bf, tf) = (tmp.path().join("b.csv"), tmp.path().join("t.csv"));
    write_tables(&bf, &tf, 120);
    ok(ferry()
        .args(["dataset", "add", "d", "--label", "y", "--file"])
        .arg(&bf)
        .arg("--dir")
        .arg(&bank));
    ok(ferry()
        .args(["dataset", "add", "d", "--file"])
        .arg(&tf)
        .arg("--dir")
        .arg(&telco));
    ok(ferry()
        .args(["dataset", "grant", "d", "--party", "bank", "--dir"])
        .arg(&telco));
    let spec = tmp.path().join("train.yaml");
    std::fs::write(
        &spec,
        "parties: {guest: bank, hosts: [telco]}\ntasks:\n  \
         - {name: read, component: reader, params: {dataset: d}}\n  \
         - {name: psi, component: psi, inputs: {data: read}}\n  \
         - {name: sb, component: hetero_secureboost, inputs: {train: psi}, \
            params: {num_trees: 2, max_depth: 2, he: {key_bits: 1024}, model_name: sb}}\n",
    )
    .unwrap();
    ok(ferry()
        .args(["job", "submit", "--wait", "--dir"])
        .arg(&bank)
        .arg(&spec));

    let out = ok(ferry()
        .args([
            "model",
            "deploy",
            "sb",
            "--version",
            "1",
            "--service",
            "scoring",
            "--dataset",
            "d",
            "--host-dataset",
            "telco=d",
            "--wait",
            "30",
            "--dir",
        ])
        .arg(&bank));
    assert!(
        out.contains("service 'scoring': model 'sb' v1, active"),
        "{out}"
    );

    let out = ok(ferry()
        .args([
            "service", "predict", "scoring", "u1", "u2", "nobody", "--dir",
        ])
        .arg(&bank));
    assert!(out.contains("u1") && out.contains("u2"), "{out}");
    assert!(
        out.contains("id 'nobody' is not in this node's feature table"),
        "{out}"
    );
    let v = json_of(ok(ferry()
        .args(["service", "predict", "scoring", "u3", "--json", "--dir"])
        .arg(&bank)));
    let p = v["predictions"][0]["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p), "{v}");

    let list = ok(ferry().args(["service", "list", "--dir"]).arg(&bank));
    assert!(
        list.contains("scoring") && list.contains("guest") && list.contains("active"),
        "{list}"
    );
    let show = ok(ferry()
        .args(["service", "show", "scoring", "--dir"])
        .arg(&telco));
    assert!(
        show.contains("(host here)")
            && show.contains("answered    2 requests, 3 ids")
            && show.contains("learns the ids"),
        "{show}"
    );
    let show = ok(ferry()
        .args(["service", "show", "scoring", "--dir"])
        .arg(&bank));
    assert!(show.contains("telco (approved)"), "{show}");

    // Only the guest switches; the same version switches in place.
    let err = refused(
        ferry()
            .args(["service", "switch", "scoring", "--version", "1", "--dir"])
            .arg(&telco),
    );
    assert!(err.contains("only the guest switches"), "{err}");
    let out = ok(ferry()
        .args(["service", "switch", "scoring", "--version", "1", "--dir"])
        .arg(&bank));
    assert!(out.contains("answers with version 1"), "{out}");

    let out = ok(ferry()
        .args(["service", "undeploy", "scoring", "--dir"])
        .arg(&bank));
    assert!(out.contains("undeployed service 'scoring'"), "{out}");
    let err = refused(
        ferry()
            .args(["service", "predict", "scoring", "u1", "--dir"])
            .arg(&bank),
    );
    assert!(err.contains("undeployed"), "{err}");
}
