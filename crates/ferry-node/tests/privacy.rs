//! The privacy report of real jobs between nodes: what each task's protocol revealed to whom,
//! the settings that bear on it, and the bytes per peer, which must be the job's audit records
//! summed.

mod common;

use axum::http::StatusCode;
use common::Cluster;
use ferry_node::Node;
use ferry_node::privacy::{PeerBytes, PrivacyReport, TaskPrivacy, job_report};
use ferry_store::{Direction, GrantTarget, LabelKind, TokenRole};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

fn cluster(names: &[&str]) -> Cluster {
    let policy: toml::Table = toml::from_str("min_paillier_bits = 1024\n").unwrap();
    Cluster::pinned(names, true, Some(&policy))
}

fn wait_done(node: &Node, job: &str) {
    common::wait_succeeded(node, job, Duration::from_secs(180));
}

fn report(node: &Node, job: &str) -> PrivacyReport {
    job_report(node.store(), node.party().as_str(), job).unwrap()
}

fn task<'a>(r: &'a PrivacyReport, name: &str) -> &'a TaskPrivacy {
    r.tasks.iter().find(|t| t.task == name).unwrap()
}

fn lines(t: &TaskPrivacy) -> Vec<String> {
    t.disclosures
        .iter()
        .map(|d| {
            format!(
                "{} ({}) → {} ({}): {}",
                d.from, d.from_role, d.to, d.to_role, d.what
            )
        })
        .collect()
}

/// The job's audit records on `node`, summed per task and peer, independently of the report.
fn audit_sums(node: &Node, job: &str) -> BTreeMap<(String, String), PeerBytes> {
    let mut out: BTreeMap<(String, String), PeerBytes> = BTreeMap::new();
    for e in node.store().audit(job).unwrap() {
        let b = out.entry((e.task.clone(), e.peer.clone())).or_default();
        b.peer = e.peer.clone();
        match e.direction {
            Direction::Sent => {
                b.bytes_sent += e.bytes;
                b.messages_sent += 1;
            }
            Direction::Received => {
                b.bytes_received += e.bytes;
                b.messages_received += 1;
            }
        }
    }
    out
}

const JOB: &str = r#"
name: privacy-job
parties: {guest: bank, hosts: [telco]}
timeout_secs: 120
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: loans}, telco: {dataset: loans}}}
  - {name: intersect, component: psi, inputs: {data: read}}
  - {name: stats, component: statistics, inputs: {data: intersect}}
  - name: train
    component: hetero_secureboost
    inputs: {train: intersect}
    params: {num_trees: 2, max_depth: 2, he: {key_bits: 1024}}
  - {name: score, component: predict, inputs: {model: train, data: intersect}}
  - {name: eval, component: evaluation, inputs: {data: score}}
"#;

#[test]
fn a_two_node_job_reports_leakage_key_sizes_and_the_bytes_of_its_audit_records() {
    let c = cluster(&["bank", "telco"]);
    let parts = common::vertical_parts(300, &[3, 3], 0.9, 5);
    c.register_parts("loans", &parts, LabelKind::Binary);
    c.nodes[1]
        .store()
        .grant("loans", GrantTarget::Party("bank".into()))
        .unwrap();
    let job = c.nodes[0].submit(JOB).unwrap();
    wait_done(&c.nodes[0], &job);
    wait_done(&c.nodes[1], &job);

    let reports: Vec<PrivacyReport> = c.nodes.iter().map(|n| report(n, &job)).collect();
    for (node, r) in c.nodes.iter().zip(&reports) {
        assert_eq!(r.party, node.party().as_str());
        assert_eq!(r.status, "succeeded");
        assert_eq!(r.job_name.as_deref(), Some("privacy-job"));

        // PSI: SECURITY.md's row, set sizes both ways, the intersection to both receivers.
        let psi = task(r, "intersect");
        assert_eq!(psi.kind, "protocol");
        assert_eq!(psi.protocols[0].protocol, "KKRT-PSI");
        let statement = psi.protocols[0].statement.as_deref().unwrap();
        assert!(
            statement.starts_with("set sizes to every party"),
            "{statement}"
        );
        let l = lines(psi);
        for line in [
            "bank (guest) → telco (host): its set size (distinct non-empty keys)",
            "telco (host) → bank (guest): its set size (distinct non-empty keys)",
        ] {
            assert!(l.contains(&line.to_string()), "{l:?}");
        }
        assert!(l.iter().any(|x| {
            x.starts_with("telco (host) → bank (guest): which of the receiver's own rows")
        }));
        assert!(
            psi.settings.contains(&"result to: all".to_string()),
            "{:?}",
            psi.settings
        );
        assert!(psi.settings.iter().any(|s| s.starts_with("keys: fresh")));
        assert!(
            psi.recorded.as_ref().unwrap()["intersection_size"]
                .as_f64()
                .unwrap()
                > 0.0
        );

        // SecureBoost: instance space to the host, per-bin sums to the guest, the key size.
        let train = task(r, "train");
        assert_eq!(train.protocols[0].protocol, "SecureBoost");
        assert!(
            train.protocols[0]
                .statement
                .as_deref()
                .unwrap()
                .starts_with("hosts learn the instance space")
        );
        let l = lines(train);
        assert!(
            l.iter().any(|x| x.starts_with(
                "telco (host) → bank (guest): per-bin sums of gradients and hessians"
            )),
            "{l:?}"
        );
        assert!(
            l.iter()
                .any(|x| x.starts_with("bank (guest) → telco (host): the instance space")),
            "{l:?}"
        );
        assert!(
            train
                .settings
                .contains(&"bank: paillier-1024 keys".to_string()),
            "{:?}",
            train.settings
        );
        assert!(
            train
                .settings
                .iter()
                .any(|s| s.starts_with("keys: paillier-1024 generated by the guest (bank)"))
        );

        // Prediction with the SecureBoost model trained upstream.
        let score = task(r, "score");
        assert_eq!(score.protocols[0].protocol, "prediction");
        assert!(
            lines(score)
                .iter()
                .any(|x| x.starts_with("telco (host) → bank (guest): for every scored row"))
        );

        // Local tasks: nothing stated, nothing exchanged.
        for local in ["read", "stats", "eval"] {
            let t = task(r, local);
            assert_eq!(t.kind, "local", "{local}");
            assert!(
                t.disclosures.is_empty() && t.bytes.is_empty(),
                "{local}: {t:?}"
            );
            assert!(t.notes.is_empty(), "{local}: {:?}", t.notes);
        }

        // Bytes per peer: nonzero for the protocol tasks, and exactly the audit records summed.
        let sums = audit_sums(node, &job);
        let peer = if r.party == "bank" { "telco" } else { "bank" };
        for name in ["intersect", "train", "score"] {
            let t = task(r, name);
            assert_eq!(t.status.as_deref(), Some("succeeded"));
            assert_eq!(t.bytes.len(), 1, "{name}: {:?}", t.bytes);
            let b = &t.bytes[0];
            assert_eq!(b.peer, peer);
            assert!(b.bytes_sent > 0 && b.bytes_received > 0, "{name}: {b:?}");
            assert_eq!(b, &sums[&(name.to_string(), peer.to_string())], "{name}");
        }
        let total: u64 = sums.values().map(|b| b.bytes_sent).sum();
        assert_eq!(r.totals.len(), 1);
        assert_eq!(r.totals[0].bytes_sent, total);

        // The text the CLI prints carries the same lines.
        let text = r.to_text();
        assert!(
            text.contains("KKRT-PSI (SECURITY.md): set sizes to every party"),
            "{text}"
        );
        assert!(text.contains("  recorded: intersection_size: "), "{text}");
        assert!(text.contains(&format!(
            "with {peer}: sent {} B",
            task(r, "train").bytes[0].bytes_sent
        )));

        // Computed from stored records only: the same report every time.
        assert_eq!(&report(node, &job), r);
    }
    // What one node sent is what the other received.
    for name in ["intersect", "train", "score"] {
        let (bank, telco) = (
            &task(&reports[0], name).bytes[0],
            &task(&reports[1], name).bytes[0],
        );
        assert_eq!(bank.bytes_sent, telco.bytes_received, "{name}");
        assert_eq!(bank.messages_received, telco.messages_sent, "{name}");
    }

    // Served by the API to any principal that may read jobs.
    let router = ferry_node::api::router(c.nodes[0].clone());
    let (_, token) = c.nodes[0]
        .store()
        .create_token("reader", TokenRole::ReadOnly)
        .unwrap();
    let (status, body) = get(&router, &format!("/api/v1/jobs/{job}/privacy"), &token);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::to_value(&reports[0]).unwrap());
    let (status, body) = get(&router, "/api/v1/jobs/job-nope/privacy", &token);
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("job-nope"),
        "{body}"
    );
}

#[test]
fn a_fedavg_job_reports_secure_aggregation_and_the_dp_budget_spent_at_every_party() {
    let c = cluster(&["clinic_a", "clinic_b", "server"]);
    let parts = common::vertical_parts(600, &[4], 1.0, 9);
    c.register_halves("patients", &parts[0]);
    let spec = r#"
parties: {guest: clinic_a, hosts: [clinic_b], arbiter: server}
timeout_secs: 120
tasks:
  - {name: read, component: reader, party_params: {clinic_a: {dataset: patients}, clinic_b: {dataset: patients}}}
  - name: fed
    component: fedavg
    inputs: {train: read}
    params:
      rounds: 3
      secure_aggregation: {threshold: 2}
      dp: {clip_norm: 1.0, noise: {stages: [{from_round: 1, noise_multiplier: 1.0}]}, delta: 0.00001, epsilon_budget: 100.0}
"#;
    let job = c.nodes[0].submit(spec).unwrap();
    for node in &c.nodes {
        wait_done(node, &job);
    }
    let server_epsilon = c.nodes[2]
        .store()
        .metrics(&job, Some("fed"))
        .unwrap()
        .into_iter()
        .filter(|m| m.name == "epsilon")
        .max_by_key(|m| m.step)
        .unwrap()
        .value;
    assert!(server_epsilon > 0.0 && server_epsilon.is_finite());
    for node in &c.nodes {
        let r = report(node, &job);
        let fed = task(&r, "fed");
        assert_eq!(fed.protocols.len(), 2);
        assert_eq!(fed.protocols[1].protocol, "secure aggregation");
        assert!(fed.protocols.iter().all(|p| p.statement.is_some()));
        assert!(
            fed.settings
                .contains(&"secure aggregation: threshold 2".to_string()),
            "{:?}",
            fed.settings
        );
        let spent = format!("DP ε spent: {server_epsilon:.4} (δ = 1e-5)");
        assert!(
            fed.settings.contains(&spent),
            "{}: {:?}",
            r.party,
            fed.settings
        );
        let recorded = fed.recorded.as_ref().unwrap();
        assert!((recorded["epsilon"].as_f64().unwrap() - server_epsilon).abs() < 1e-12);
        assert_eq!(recorded["noise"], "distributed");
        let l = lines(fed);
        assert!(
            l.iter()
                .any(|x| x.starts_with("clinic_b (host) → server (arbiter): sample_count:")),
            "{l:?}"
        );
        assert!(
            l.iter()
                .any(|x| x.starts_with("server (arbiter) → clinic_a (guest): the global model")),
            "{l:?}"
        );
        assert!(
            fed.bytes
                .iter()
                .all(|b| b.bytes_sent + b.bytes_received > 0)
        );
        assert!(!fed.bytes.is_empty());
        let text = r.to_text();
        assert!(text.contains("  recorded: noise: distributed"), "{text}");
        assert!(!text.contains("recorded: cleartext"), "{text}");
    }
}

fn get(router: &axum::Router, uri: &str, token: &str) -> (StatusCode, Value) {
    common::call(router, "GET", uri, Some(token), None)
}
