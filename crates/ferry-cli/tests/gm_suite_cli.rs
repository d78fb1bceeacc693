//! The GM suite (国密) between served nodes: two `ferry init --suite gm` nodes run a PSI job
//! over SM2 and sign the model it trains with SM2, one of them encrypting its model files at
//! rest with SM4-GCM, and its dataset files (the upload, the PSI intersection, the job's
//! derived dataset) too, which it still reads, describes and exports; a default-suite node's
//! proposal to a gm node is refused, naming the suite, on both nodes; a gm node's action log
//! is an SM3 chain that verifies, and its audit checkpoints are SM2-signed with the key bound
//! to its identity, kept by a gm and a default partner; a backup keeps the SM2 and at-rest
//! keys private.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `ferry init` of `party`, approving partners' jobs itself, with extra arguments
/// (`--suite gm`, `--encrypt-at-rest`).
fn init_with(root: &Path, party: &str, extra: &[&str]) -> PathBuf {
    let args: Vec<&str> = ["--auto-approve"].iter().chain(extra).copied().collect();
    let (dir, out) = init_node_with(root, party, &args);
    if extra.contains(&"gm") {
        assert!(out.contains("crypto suite: gm"), "{out}");
    }
    dir
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Waits for the job's final status on `dir`; returns its JSON.
fn wait_job(dir: &Path, job: &str) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let v = json_of(ok(ferry()
            .args(["job", "status", job, "--json", "--dir"])
            .arg(dir)));
        if matches!(
            v["job"]["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "{v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A job of `guest` with telco: read each party's `ids`, intersect them.
fn read_psi(guest: &str) -> String {
    format!(
        "parties: {{guest: {guest}, hosts: [telco]}}\ntimeout_secs: 60\ntasks:\n  \
         - {{name: read, component: reader, party_params: {{{guest}: {{dataset: ids}}, telco: {{dataset: ids}}}}}}\n  \
         - {{name: psi, component: psi, inputs: {{data: read}}}}\n"
    )
}

/// The models of `ferry model list --json`.
fn models(dir: &Path) -> Vec<serde_json::Value> {
    let list = json_of(ok(ferry()
        .args(["model", "list", "--json", "--dir"])
        .arg(dir)));
    list.as_array()
        .or(list["models"].as_array())
        .unwrap_or_else(|| panic!("no model list: {list}"))
        .clone()
}

#[test]
fn gm_nodes_run_psi_over_sm2_sign_models_with_sm2_and_refuse_a_default_proposal() {
    let tmp = tempfile::tempdir().unwrap();
    let bank = init_with(tmp.path(), "bank", &["--suite", "gm", "--encrypt-at-rest"]);
    let telco = init_with(tmp.path(), "telco", &["--suite", "gm"]);
    let shop = init_with(tmp.path(), "shop", &[]);
    pin(&bank, &telco, "telco");
    pin(&telco, &bank, "bank");
    pin(&shop, &telco, "telco");
    pin(&telco, &shop, "shop");
    let toml = std::fs::read_to_string(bank.join("ferry.toml")).unwrap();
    assert!(
        toml.contains("[crypto]")
            && toml.contains("suite = \"gm\"")
            && toml.contains("encrypt_at_rest = true"),
        "{toml}"
    );
    // The keys exist from `ferry init`, private.
    #[cfg(unix)]
    {
        assert_eq!(mode(&bank.join("identity/sm2-key.hex")), 0o600);
        assert_eq!(mode(&bank.join("identity/at-rest.key")), 0o600);
        assert_eq!(mode(&telco.join("identity/sm2-key.hex")), 0o600);
    }
    assert!(!telco.join("identity/at-rest.key").exists());
    assert!(!shop.join("identity/sm2-key.hex").exists());

    let nodes = [serve(&bank), serve(&telco), serve(&shop)];
    for dir in [&bank, &telco, &shop] {
        wait_api(dir);
    }
    let files = [
        ("bank", &bank, 0..300usize),
        ("telco", &telco, 100..500),
        ("shop", &shop, 150..250),
    ];
    for (name, dir, ids) in files {
        let file = tmp.path().join(format!("{name}.csv"));
        write_ids(&file, ids);
        ok(ferry()
            .args(["dataset", "add", "ids", "--id", "id", "--file"])
            .arg(&file)
            .arg("--dir")
            .arg(dir));
    }
    for partner in ["bank", "shop"] {
        ok(ferry()
            .args(["dataset", "grant", "ids", "--party", partner, "--dir"])
            .arg(&telco));
    }

    // gm with gm: the spec names no suite; bank's is filled in, so PSI runs over SM2, and
    // each party fits a transform on the intersection and stores it as a model.
    let spec = tmp.path().join("gm.yaml");
    std::fs::write(
        &spec,
        format!(
            "{}  - {{name: scale, component: feature_transform, inputs: {{data: psi}}, \
             params: {{steps: [{{kind: min_max_scale}}]}}}}\n",
            read_psi("bank")
        ),
    )
    .unwrap();
    let submitted = json_of(ok(ferry()
        .args(["job", "submit", "--json", "--dir"])
        .arg(&bank)
        .arg(&spec)));
    let job = submitted["job_id"].as_str().unwrap().to_string();
    let done = wait_job(&bank, &job);
    assert_eq!(done["job"]["status"], "succeeded", "{done}");
    // The approval view (security settings) says what ran.
    let shown = ok(ferry()
        .args(["job", "status", &job, "--json", "--dir"])
        .arg(&telco));
    assert!(
        shown.contains("SM2 with SM3 (suite gm)") && shown.contains("crypto suite: gm"),
        "{shown}"
    );
    // 200 common ids (100..300) at both parties (`dataset show` computes the statistics from
    // the stored file, checking its SHA-256).
    let mut psi_files = Vec::new();
    for dir in [&bank, &telco] {
        let ds = json_of(ok(ferry()
            .args(["dataset", "show", &format!("{job}-psi"), "--json", "--dir"])
            .arg(dir)));
        assert_eq!(ds["dataset"]["rows"], 200, "{ds}");
        psi_files.push(PathBuf::from(ds["dataset"]["path"].as_str().unwrap()));
    }
    // Bank encrypts its dataset files at rest: the upload, the PSI intersection and the scaled
    // output are SM4-GCM on disk with no id in the clear; telco's PSI output is plain.
    let known_id = b"u150,";
    let has_id = |bytes: &[u8]| bytes.windows(known_id.len()).any(|w| w == known_id);
    let stored: Vec<PathBuf> = std::fs::read_dir(bank.join("data/datasets"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .collect();
    assert_eq!(stored.len(), 3, "ids, psi, scale: {stored:?}");
    assert!(stored.contains(&psi_files[0]), "{stored:?}");
    for f in &stored {
        let on_disk = std::fs::read(f).unwrap();
        assert!(on_disk.starts_with(b"FRYSM4G1"), "{}", f.display());
        assert!(
            !has_id(&on_disk),
            "{} holds an id in the clear",
            f.display()
        );
    }
    let telco_psi = std::fs::read(&psi_files[1]).unwrap();
    assert!(!telco_psi.starts_with(b"FRYSM4G1") && has_id(&telco_psi));
    // An export is the plaintext, checked by the CLI against the recorded SHA-256.
    let exported = tmp.path().join("bank-psi.csv");
    ok(ferry()
        .args(["dataset", "export", &format!("{job}-psi"), "--out"])
        .arg(&exported)
        .arg("--dir")
        .arg(&bank));
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(
        text.starts_with("id,x\n") && has_id(text.as_bytes()),
        "{text}"
    );
    assert_eq!(text.lines().count(), 201);

    // Both models are SM2-signed and verify when shown (hash and signature checked).
    for dir in [&bank, &telco] {
        let models = models(dir);
        assert_eq!(models.len(), 1, "{models:?}");
        let name = models[0]["name"].as_str().unwrap();
        let shown = json_of(ok(ferry()
            .args(["model", "show", name, "--json", "--dir"])
            .arg(dir)));
        assert_eq!(shown["verified"], true, "{shown}");
        let sig = shown["model"]["signature"].as_str().unwrap();
        assert!(
            sig.starts_with("sm2:") && sig.len() == 4 + 128,
            "not an SM2 signature: {sig}"
        );
        // On bank the file is SM4-GCM ciphertext; on telco (no encryption at rest) it is not.
        let path = PathBuf::from(shown["model"]["path"].as_str().unwrap());
        let on_disk = std::fs::read(&path).unwrap();
        let encrypted = on_disk.starts_with(b"FRYSM4G1");
        assert_eq!(encrypted, dir == &bank, "{}", path.display());
        let text_column = b"\"x\"";
        assert_eq!(
            on_disk.windows(text_column.len()).any(|w| w == text_column),
            !encrypted,
            "the transform names column x in its payload, in the clear only without encryption"
        );
        if encrypted {
            // A changed byte is caught by the record's tag, naming the file.
            let mut altered = on_disk.clone();
            let at = altered.len() - 20;
            altered[at] ^= 1;
            std::fs::write(&path, &altered).unwrap();
            let err = refused(ferry().args(["model", "show", name, "--dir"]).arg(dir));
            assert!(
                err.contains(&path.display().to_string())
                    && err.contains("SM4-GCM authentication failed"),
                "{err}"
            );
            std::fs::write(&path, &on_disk).unwrap();
            ok(ferry().args(["model", "show", name, "--dir"]).arg(dir));
        }
    }

    // default → gm: shop proposes a default-suite job to telco, which refuses it naming the
    // suite and its setting; shop shows telco's reason.
    let spec = tmp.path().join("default.yaml");
    std::fs::write(&spec, read_psi("shop")).unwrap();
    let submitted = json_of(ok(ferry()
        .args(["job", "submit", "--json", "--dir"])
        .arg(&shop)
        .arg(&spec)));
    let refused_job = submitted["job_id"].as_str().unwrap().to_string();
    let done = wait_job(&shop, &refused_job);
    assert_eq!(done["job"]["status"], "failed", "{done}");
    let reason = done["job"]["reason"].as_str().unwrap_or_default();
    for want in [
        "party 'telco' refused the job",
        "uses suite 'default'",
        "[crypto] suite = \"gm\" on 'telco'",
        "suite: gm",
    ] {
        assert!(reason.contains(want), "'{want}' missing from: {reason}");
    }
    let on_telco = wait_job(&telco, &refused_job);
    let reason = on_telco["job"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("refused") && reason.contains("uses suite 'default'"),
        "{reason}"
    );
    // The same job with `suite: gm` is accepted by telco (a default node may run gm jobs).
    std::fs::write(&spec, format!("suite: gm\n{}", read_psi("shop"))).unwrap();
    let submitted = json_of(ok(ferry()
        .args(["job", "submit", "--json", "--dir"])
        .arg(&shop)
        .arg(&spec)));
    let gm_job = submitted["job_id"].as_str().unwrap().to_string();
    let done = wait_job(&shop, &gm_job);
    assert_eq!(done["job"]["status"], "succeeded", "{done}");

    // The gm node's checkpoints are SM2-signed, carrying its SM2 key bound to its identity
    // key; the gm and the default partner both keep them after checking the binding against
    // the certificate they pinned. The default node's stay ECDSA P-256.
    let sent = json_of(ok(ferry()
        .args(["audit", "checkpoint", "--json", "--dir"])
        .arg(&telco)));
    let cp = &sent["checkpoint"];
    assert_eq!(cp["algorithm"], "sm2-sm3", "{sent}");
    assert_eq!(cp["signature"].as_str().map(str::len), Some(128), "{sent}");
    let shown = ok(ferry().args(["audit", "checkpoint", "--dir"]).arg(&telco));
    assert!(shown.contains("with sm2-sm3"), "{shown}");
    let kept_by = |dir: &Path, partner: &str, seq: &serde_json::Value| {
        let start = Instant::now();
        loop {
            let all = json_of(ok(ferry()
                .args([
                    "audit",
                    "checkpoints",
                    "--partner",
                    partner,
                    "--json",
                    "--dir",
                ])
                .arg(dir)));
            if let Some(kept) = all["received"]
                .as_array()
                .and_then(|r| r.iter().find(|c| &c["seq"] == seq))
            {
                return kept.clone();
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{all}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    for dir in [&bank, &shop] {
        let kept = kept_by(dir, "telco", &cp["seq"]);
        assert_eq!(kept["algorithm"], "sm2-sm3", "{kept}");
        assert_eq!(kept["sm2_key"]["public_key"], cp["sm2_key"]["public_key"]);
        assert_eq!(kept["signature"], cp["signature"]);
    }
    let listed = ok(ferry()
        .args(["audit", "checkpoints", "--partner", "telco", "--dir"])
        .arg(&shop));
    assert!(listed.contains("sm2-sm3"), "{listed}");
    let sent = json_of(ok(ferry()
        .args(["audit", "checkpoint", "--json", "--dir"])
        .arg(&shop)));
    assert_eq!(
        sent["checkpoint"]["algorithm"], "ecdsa-p256-sha256",
        "{sent}"
    );
    assert!(sent["checkpoint"].get("sm2_key").is_none(), "{sent}");
    let kept = kept_by(&telco, "shop", &sent["checkpoint"]["seq"]);
    assert_eq!(kept["algorithm"], "ecdsa-p256-sha256", "{kept}");
    // The copies shop kept check telco's chain, their bindings against telco's certificate.
    let held = tmp.path().join("telco-checkpoints.json");
    ok(ferry()
        .args(["audit", "checkpoints", "--partner", "telco", "--out"])
        .arg(&held)
        .arg("--dir")
        .arg(&shop));
    let verified = ok(ferry()
        .args(["audit", "verify", "--checkpoints"])
        .arg(&held)
        .arg("--dir")
        .arg(&telco));
    assert_eq!(verified.matches("OK:").count(), 2, "{verified}");

    // The gm nodes' action logs are SM3 chains (from `ferry peer add` on), the default node's
    // SHA-256; both verify, with a checkpoint of the SM3 head.
    for (dir, sm3) in [(&telco, true), (&shop, false)] {
        let list = json_of(ok(ferry()
            .args(["audit", "list", "--json", "--dir"])
            .arg(dir)));
        let entries = list.as_array().unwrap();
        assert!(entries.len() > 3, "{list}");
        for e in entries {
            let hash = e["hash"].as_str().unwrap();
            assert_eq!(hash.starts_with("sm3:"), sm3, "{e}");
        }
        let verified = ok(ferry().args(["audit", "verify", "--dir"]).arg(dir));
        assert!(verified.contains("OK:"), "{verified}");
    }
    drop(nodes);

    // A backup keeps both keys private when restored, and the restored node reads its
    // encrypted model.
    let backup = tmp.path().join("backup");
    ok(ferry()
        .args(["backup", "--out"])
        .arg(&backup)
        .arg("--dir")
        .arg(&bank));
    let restored = tmp.path().join("restored");
    ok(ferry()
        .args(["restore", "--from"])
        .arg(&backup)
        .arg("--dir")
        .arg(&restored));
    #[cfg(unix)]
    {
        assert_eq!(mode(&restored.join("identity/sm2-key.hex")), 0o600);
        assert_eq!(mode(&restored.join("identity/at-rest.key")), 0o600);
    }
    let _restored_node = serve(&restored);
    wait_api(&restored);
    let name = models(&restored)[0]["name"].as_str().unwrap().to_string();
    let shown = json_of(ok(ferry()
        .args(["model", "show", &name, "--json", "--dir"])
        .arg(&restored)));
    assert_eq!(shown["verified"], true, "{shown}");
}
