//! Checkpoints and resume across nodes: a SecureBoost job cancelled after some trees, and a
//! FedAvg job cancelled after some rounds, resumed with `Node::resume`, give the model an
//! uninterrupted job with the same seed gives.

mod common;

use axum::http::StatusCode;
use common::{Cluster, call, register_data, test_policy, wait_done, wait_for};
use ferry_secureboost::ModelPart;
use ferry_store::{GrantTarget, TokenRole};
use std::path::PathBuf;
use std::time::Duration;

const JOB: &str = r#"
name: resumable
parties: {guest: bank, hosts: [telco]}
timeout_secs: 60
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}
  - {name: intersect, component: psi, inputs: {data: read}}
  - name: train
    component: hetero_secureboost
    inputs: {train: intersect}
    params: {num_trees: 16, max_depth: 2, subsample: 0.8, seed: 5, he: {key_bits: 1024}, model_name: sb}
"#;

fn checkpoint_dir(c: &Cluster, node: usize, job: &str) -> PathBuf {
    c.nodes[node]
        .store()
        .data_dir()
        .join("jobs")
        .join(job)
        .join("checkpoints")
        .join("train")
}

/// A stored model part with its random model id blanked (independent runs draw their own).
fn part(c: &Cluster, node: usize, version: u32) -> ModelPart {
    let (_, bytes) = c.nodes[node]
        .store()
        .load_model("sb", Some(version))
        .unwrap();
    let mut part = ModelPart::from_json(std::str::from_utf8(&bytes).unwrap()).unwrap();
    match &mut part {
        ModelPart::Guest(g) => g.model_id.clear(),
        ModelPart::Host(h) => h.model_id.clear(),
    }
    part
}

#[test]
fn a_cancelled_secureboost_job_resumes_to_the_uninterrupted_model() {
    let c = Cluster::pinned(&["bank", "telco"], true, Some(&test_policy()));
    register_data(&c, 300);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let timeout = Duration::from_secs(180);

    // The job, cancelled once every party has checkpoints of two trees.
    let cut = c.nodes[0].submit(JOB).unwrap();
    wait_for("two trees checkpointed on both nodes", timeout, || {
        (0..2)
            .all(|n| saved_at_least(&checkpoint_dir(&c, n, &cut), 2))
            .then_some(())
    });
    c.nodes[0].cancel(&cut, "interrupted by the test").unwrap();
    for node in &c.nodes {
        let row = wait_done(node, &cut, timeout);
        assert_eq!(row.status.as_str(), "cancelled", "{:?}", row.reason);
    }
    assert!(c.nodes[0].store().model("sb", None).is_err());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = checkpoint_dir(&c, 1, &cut).join("step-2.ckpt");
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The uninterrupted reference: the same job re-run from its training task, on the same
    // intersection (another PSI run may order the rows differently, and the model with them).
    // Model version 1 on each node.
    let whole = c.nodes[0].rerun(&cut, "train").unwrap();
    let row = wait_done(&c.nodes[0], &whole, timeout);
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
    wait_done(&c.nodes[1], &whole, timeout);
    let router = ferry_node::api::router(c.nodes[0].clone());
    let (_, admin) = c.nodes[0]
        .store()
        .create_token("ops", TokenRole::Admin)
        .unwrap();
    let (_, viewer) = c.nodes[0]
        .store()
        .create_token("viewer", TokenRole::ReadOnly)
        .unwrap();
    let resume = |job: &str, token: &str| {
        call(
            &router,
            "POST",
            &format!("/api/v1/jobs/{job}/resume"),
            Some(token),
            None,
        )
    };
    let (code, body) = resume(&whole, &admin);
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("every task"),
        "{body}"
    );
    // Resuming runs a job: a read-only token may not.
    assert_eq!(resume(&cut, &viewer).0, StatusCode::FORBIDDEN);

    // Resumed: a re-run from the training task, continuing from the checkpoints (version 2).
    let (code, body) = resume(&cut, &admin);
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["task"], "train");
    assert_eq!(body["resume_of"], cut.as_str());
    let resumed = body["job_id"].as_str().unwrap().to_string();
    let row = wait_done(&c.nodes[0], &resumed, timeout);
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
    wait_done(&c.nodes[1], &resumed, timeout);
    // It continued after the trees checkpointed before the cancel, not from the start.
    let logs = c.nodes[0].store().logs(&resumed, Some("train")).unwrap();
    let after: Vec<u64> = logs
        .iter()
        .filter_map(|l| {
            let rest = l.line.split("resuming after tree ").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect();
    assert!(
        after.first().is_some_and(|&t| t >= 2),
        "{:?}",
        logs.iter().map(|l| &l.line).collect::<Vec<_>>()
    );
    for node in 0..2 {
        assert_eq!(part(&c, node, 2), part(&c, node, 1), "node {node}");
    }
    // Once a model is stored its task's checkpoints are gone; the cancelled job keeps its own.
    for node in 0..2 {
        assert!(!checkpoint_dir(&c, node, &resumed).exists());
        assert!(checkpoint_dir(&c, node, &cut).exists());
    }

    // Only a job with the same initiator, parties and reuse may be resumed from: a spec that
    // names the checkpoints of another job without re-running it is refused by the partner.
    let forged = JOB.replace("seed: 5,", &format!("seed: 5, resume_from_job: {cut},"));
    let job = c.nodes[0].submit(&forged).unwrap();
    let row = wait_done(&c.nodes[0], &job, timeout);
    let reason = row.reason.unwrap_or_default();
    assert_ne!(row.status.as_str(), "succeeded");
    assert!(reason.contains("does not re-run that job"), "{reason}");
}

/// FedAvg over three nodes (two clients, the server), top-k so that clients carry state from
/// round to round; enough rounds that the cancel lands mid-training.
const FEDAVG_JOB: &str = r#"
name: fed-resumable
parties: {guest: clinic_a, hosts: [clinic_b], arbiter: server}
timeout_secs: 60
tasks:
  - {name: read, component: reader, party_params: {clinic_a: {dataset: patients}, clinic_b: {dataset: patients}}}
  - name: fed
    component: fedavg
    inputs: {train: read}
    params: {rounds: 150, seed: 8, sparsification: {kind: top_k, fraction: 0.5}, model_name: fm}
"#;

/// Whether `dir` holds a checkpoint of step `step` or later. Only the latest few steps are
/// kept, so waiting for one step's file to exist on every party at once races with the
/// parties that have moved on and deleted it (seen under load).
fn saved_at_least(dir: &std::path::Path, step: u64) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| {
                    n.strip_prefix("step-")?
                        .strip_suffix(".ckpt")?
                        .parse::<u64>()
                        .ok()
                })
                .is_some_and(|n| n >= step)
        })
    })
}

fn fed_checkpoints(c: &Cluster, node: usize, job: &str) -> PathBuf {
    c.nodes[node]
        .store()
        .data_dir()
        .join("jobs")
        .join(job)
        .join("checkpoints")
        .join("fed")
}

#[test]
fn a_cancelled_fedavg_job_resumes_to_the_uninterrupted_model_on_every_node() {
    let c = Cluster::pinned(
        &["clinic_a", "clinic_b", "server"],
        true,
        Some(&test_policy()),
    );
    let parts = common::vertical_parts(600, &[5], 1.0, 3);
    c.register_halves("patients", &parts[0]);
    let timeout = Duration::from_secs(180);

    // Cancelled once every node has saved three rounds.
    let cut = c.nodes[0].submit(FEDAVG_JOB).unwrap();
    wait_for("three rounds checkpointed on every node", timeout, || {
        (0..3)
            .all(|n| saved_at_least(&fed_checkpoints(&c, n, &cut), 3))
            .then_some(())
    });
    c.nodes[0].cancel(&cut, "interrupted by the test").unwrap();
    for node in &c.nodes {
        let row = wait_done(node, &cut, timeout);
        assert_eq!(row.status.as_str(), "cancelled", "{:?}", row.reason);
    }
    assert!(c.nodes[0].store().model("fm", None).is_err());

    // The uninterrupted reference (model version 1), then the resumed run (version 2).
    let whole = c.nodes[0].rerun(&cut, "fed").unwrap();
    for node in &c.nodes {
        let row = wait_done(node, &whole, timeout);
        assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
    }
    let (resumed, task) = c.nodes[0].resume(&cut).unwrap();
    assert_eq!(task, "fed");
    for node in &c.nodes {
        let row = wait_done(node, &resumed, timeout);
        assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
    }
    // The server continued after a saved round, not from round 1.
    let logs = c.nodes[2].store().logs(&resumed, Some("fed")).unwrap();
    let after: Option<u64> = logs.iter().find_map(|l| {
        let rest = l.line.split("resuming after round ").nth(1)?;
        rest.split(|ch: char| !ch.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    });
    assert!(
        after.is_some_and(|r| r >= 3),
        "{:?}",
        logs.iter().map(|l| &l.line).collect::<Vec<_>>()
    );
    // Every node's model, the server's included, is the uninterrupted run's, byte for byte.
    for (n, node) in c.nodes.iter().enumerate() {
        let (_, v1) = node.store().load_model("fm", Some(1)).unwrap();
        let (_, v2) = node.store().load_model("fm", Some(2)).unwrap();
        assert_eq!(v1, v2, "node {n}");
    }
}
