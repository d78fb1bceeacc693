//! `[approvals] own_jobs_need_approval`: a job a modeller submits waits for a second person of
//! the same node before any partner hears of it; the submitter may not approve it; a rejection
//! keeps its reason and who decided; a held job survives a restart.

mod common;

use axum::http::StatusCode;
use common::{Cluster, call};
use ferry_node::Node;
use ferry_store::{GrantTarget, JobStatus, LocalDecision, TokenRole, UserRole};
use ferry_transport::NodeDir;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const JOB: &str = r#"
name: four-eyes
parties: {guest: bank, hosts: [telco]}
timeout_secs: 60
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}
  - {name: intersect, component: psi, inputs: {data: read}}
"#;

fn cluster() -> Cluster {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = common::pinned_node_dirs(
        tmp.path(),
        &["bank", "telco"],
        true,
        Some(&common::test_policy()),
    );
    let mut bank = NodeDir::open(&dirs[0]).unwrap();
    let approvals: toml::Table = toml::from_str("own_jobs_need_approval = true").unwrap();
    bank.config
        .other
        .insert("approvals".into(), approvals.into());
    bank.save().unwrap();
    let c = Cluster::start(tmp, dirs);
    common::register_data(&c, 200);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    c
}

/// A personal token of a new user with `roles`.
fn user_token(node: &Node, name: &str, roles: &[UserRole]) -> String {
    node.store()
        .create_user(name, roles, "a long enough password")
        .unwrap();
    let (_, secret) = node
        .store()
        .create_token(&format!("{name}-t"), TokenRole::User)
        .unwrap();
    node.store()
        .set_token_owner(&format!("{name}-t"), name)
        .unwrap();
    secret
}

fn api(
    router: &axum::Router,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call(router, method, uri, Some(token), body)
}

fn submit(router: &axum::Router, token: &str) -> String {
    let (status, answer) = api(
        router,
        "POST",
        "/api/v1/jobs",
        token,
        Some(json!({"spec": JOB})),
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["job_id"].as_str().unwrap().to_string()
}

#[test]
fn a_submitted_job_waits_for_a_second_person_before_any_partner_hears_of_it() {
    let c = cluster();
    let (bank, telco) = (c.nodes[0].clone(), c.nodes[1].clone());
    let router = ferry_node::api::router(bank.clone());
    let mia = user_token(&bank, "mia", &[UserRole::Modeller]);
    let ana = user_token(&bank, "ana", &[UserRole::Approver]);
    let (_, ops) = bank.store().create_token("ops", TokenRole::Admin).unwrap();

    // Mia submits: the job is held on the bank, and the telco is not told.
    let job = submit(&router, &mia);
    let row = bank.store().job(&job).unwrap();
    assert_eq!(row.status, JobStatus::PendingApproval);
    assert!(
        row.reason
            .as_deref()
            .unwrap()
            .contains("submitted by user:mia"),
        "{:?}",
        row.reason
    );
    let (_, todo) = api(&router, "GET", "/api/v1/approvals", &ana, None);
    let item = todo
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == json!(job))
        .unwrap_or_else(|| panic!("{todo}"));
    assert_eq!(item["kind"], "own_job");
    assert_eq!(item["requested_by"], "user:mia");
    assert!(!item["security"].as_array().unwrap().is_empty(), "{item}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        telco.store().job(&job).is_err(),
        "the partner heard of a job no second person approved"
    );

    // Mia may not approve (no permission); an admin token may, but not its own submission.
    let (status, _) = api(
        &router,
        "POST",
        &format!("/api/v1/jobs/{job}/approve"),
        &mia,
        None,
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    let own = submit(&router, &ops);
    let (status, err) = api(
        &router,
        "POST",
        &format!("/api/v1/jobs/{own}/approve"),
        &ops,
        None,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("separation of duties"),
        "{err}"
    );
    assert_eq!(
        bank.store().job(&own).unwrap().status,
        JobStatus::PendingApproval,
        "the refused approval changed nothing"
    );

    // Ana approves Mia's job: now it is proposed, the telco (auto-approve) runs it, it succeeds.
    let (status, answer) = api(
        &router,
        "POST",
        &format!("/api/v1/jobs/{job}/approve"),
        &ana,
        None,
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    let done = common::wait_done(&bank, &job, Duration::from_secs(60));
    assert_eq!(done.status, JobStatus::Succeeded, "{:?}", done.reason);
    assert!(telco.store().job(&job).is_ok());
    let record = bank.store().local_approval("job", &job).unwrap().unwrap();
    assert_eq!(
        (
            record.requested_by.as_str(),
            record.decided_by.as_deref(),
            record.decision
        ),
        ("user:mia", Some("user:ana"), Some(LocalDecision::Approved))
    );
    // Approving twice: it no longer waits.
    let (status, _) = api(
        &router,
        "POST",
        &format!("/api/v1/jobs/{job}/approve"),
        &ana,
        None,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Ana rejects the admin's job with a reason: failed, the reason and who decided kept.
    let (status, _) = api(
        &router,
        "POST",
        &format!("/api/v1/jobs/{own}/reject"),
        &ana,
        Some(json!({"reason": "not this quarter"})),
    );
    assert_eq!(status, StatusCode::OK);
    let row = bank.store().job(&own).unwrap();
    assert_eq!(row.status, JobStatus::Failed);
    assert_eq!(
        row.reason.as_deref(),
        Some("rejected by user:ana on bank: not this quarter")
    );
    assert!(telco.store().job(&own).is_err());

    // A re-run is held the same way.
    let (status, answer) = api(
        &router,
        "POST",
        &format!("/api/v1/jobs/{job}/rerun"),
        &mia,
        Some(json!({"from": "intersect"})),
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    let rerun = answer["job_id"].as_str().unwrap().to_string();
    assert_eq!(
        bank.store().job(&rerun).unwrap().status,
        JobStatus::PendingApproval
    );
    assert!(
        bank.store()
            .local_approval("job", &rerun)
            .unwrap()
            .is_some()
    );
}

#[test]
fn a_held_job_survives_a_restart_and_is_proposed_when_approved_afterwards() {
    let c = cluster();
    let router = ferry_node::api::router(c.nodes[0].clone());
    let mia = user_token(&c.nodes[0], "mia", &[UserRole::Modeller]);
    let ana = user_token(&c.nodes[0], "ana", &[UserRole::Approver]);
    let job = submit(&router, &mia);

    let Cluster { tmp, nodes, dirs } = c;
    nodes[0].shutdown();
    let telco: Arc<Node> = nodes[1].clone();
    drop(nodes);
    let bank = Node::start(NodeDir::open(&dirs[0]).unwrap()).unwrap();
    assert_eq!(
        bank.store().job(&job).unwrap().status,
        JobStatus::PendingApproval,
        "still held after the restart"
    );
    let router = ferry_node::api::router(bank.clone());
    let (status, answer) = api(
        &router,
        "POST",
        &format!("/api/v1/jobs/{job}/approve"),
        &ana,
        None,
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    let done = common::wait_done(&bank, &job, Duration::from_secs(60));
    assert_eq!(done.status, JobStatus::Succeeded, "{:?}", done.reason);
    assert!(telco.store().job(&job).is_ok());
    drop(tmp);
}
