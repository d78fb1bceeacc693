//! Projects between two nodes: invitation, the approvals to-do list, joining and declining,
//! grants to a project used by a job of the project, and the refusals around them.

mod common;

use axum::http::StatusCode;
use common::Cluster;
use ferry_node::Node;
use ferry_store::{MemberStatus, NewProject, TokenRole};
use serde_json::{Value, json};
use std::time::Duration;

fn cluster() -> Cluster {
    let c = Cluster::pinned(&["bank", "telco"], true, Some(&common::test_policy()));
    common::register_data(&c, 300);
    c
}

/// A job reading each party's `mydata`, training a small model; `project` line if given.
fn job(project: Option<&str>) -> String {
    let project = project
        .map(|p| format!("project: {p}\n"))
        .unwrap_or_default();
    format!(
        r#"
name: project-job
{project}parties: {{guest: bank, hosts: [telco]}}
timeout_secs: 60
tasks:
  - {{name: read, component: reader, party_params: {{bank: {{dataset: mydata}}, telco: {{dataset: mydata}}}}}}
  - {{name: intersect, component: psi, inputs: {{data: read}}}}
  - name: train
    component: hetero_secureboost
    inputs: {{train: intersect}}
    params: {{num_trees: 1, max_depth: 2, he: {{key_bits: 1024}}, model_name: risk_sb}}
"#
    )
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    common::wait_for(what, Duration::from_secs(20), || ok().then_some(()));
}

fn wait_done(node: &Node, job: &str) -> ferry_store::JobRow {
    common::wait_done(node, job, Duration::from_secs(120))
}

fn status(node: &Node, project: &str, party: &str) -> Option<MemberStatus> {
    node.store().project(project).ok()?.status_of(party)
}

fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    common::call(router, method, uri, Some(token), body)
}

#[test]
fn partners_join_by_approval_and_a_job_of_the_project_uses_its_grants() {
    let c = cluster();
    let (bank, telco) = (&c.nodes[0], &c.nodes[1]);
    let bank_api = ferry_node::api::router(bank.clone());
    let telco_api = ferry_node::api::router(telco.clone());
    let bank_token = bank.store().create_token("t", TokenRole::Admin).unwrap().1;
    let telco_token = telco.store().create_token("t", TokenRole::Admin).unwrap().1;

    // telco grants its part only to the project (through the API).
    let (st, body) = call(
        &telco_api,
        "POST",
        "/api/v1/datasets/mydata/grants",
        &telco_token,
        Some(json!({"project": "risk"})),
    );
    assert_eq!(st, StatusCode::OK, "{body}");

    // bank creates the project and invites telco.
    let (st, body) = call(
        &bank_api,
        "POST",
        "/api/v1/projects",
        &bank_token,
        Some(json!({"name": "risk", "description": "joint risk model", "partners": ["telco"]})),
    );
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(status(bank, "risk", "bank"), Some(MemberStatus::Joined));
    assert_eq!(status(bank, "risk", "telco"), Some(MemberStatus::Invited));
    let err = bank
        .create_project("x", "", &["insurer".to_string()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("'insurer' is not a pinned partner"), "{err}");

    // The invitation waits in telco's to-do list.
    wait_for("the invitation on telco", || {
        status(telco, "risk", "telco") == Some(MemberStatus::Invited)
    });
    let todo = telco.pending_approvals().unwrap();
    assert_eq!(todo.len(), 1, "{todo:?}");
    assert_eq!(
        (
            todo[0].kind.as_str(),
            todo[0].id.as_str(),
            todo[0].requested_by.as_str()
        ),
        ("project", "risk", "bank")
    );
    assert!(
        todo[0]
            .security
            .iter()
            .any(|l| l.contains("joint risk model"))
    );
    assert!(!todo[0].expires_at.is_empty());

    // Before telco joins, a job of the project is refused at submission.
    let err = bank.submit(&job(Some("risk"))).unwrap_err().to_string();
    assert!(
        err.contains("project 'risk'") && err.contains("'telco' (invited)"),
        "{err}"
    );

    // telco approves; both nodes record it.
    let (st, body) = call(
        &telco_api,
        "POST",
        "/api/v1/projects/risk/approve",
        &telco_token,
        None,
    );
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(status(telco, "risk", "telco"), Some(MemberStatus::Joined));
    wait_for("bank to record telco joined", || {
        status(bank, "risk", "telco") == Some(MemberStatus::Joined)
    });
    assert!(telco.pending_approvals().unwrap().is_empty());
    let (st, _) = call(
        &telco_api,
        "POST",
        "/api/v1/projects/risk/approve",
        &telco_token,
        None,
    );
    assert_eq!(st, StatusCode::BAD_REQUEST, "nothing waits any more");

    // A job of the project reads the dataset granted only to the project.
    let id = bank.submit(&job(Some("risk"))).unwrap();
    let row = wait_done(bank, &id);
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);

    let (st, view) = call(
        &telco_api,
        "GET",
        "/api/v1/projects/risk",
        &telco_token,
        None,
    );
    assert_eq!(st, StatusCode::OK, "{view}");
    assert_eq!(view["created_by"], "bank");
    assert_eq!(view["datasets"], json!(["mydata"]));
    assert_eq!(view["jobs"][0]["id"], json!(id));
    wait_for("telco's model", || {
        telco.project_view("risk").unwrap().models.len() == 1
    });
    let bank_view = bank.project_view("risk").unwrap();
    assert_eq!(bank_view.models[0].name, "risk_sb");
    assert_eq!(bank_view.models[0].job_id, id);
    let (_, jobs) = call(&bank_api, "GET", "/api/v1/jobs", &bank_token, None);
    assert_eq!(jobs[0]["project"], "risk");
    let (_, list) = call(&bank_api, "GET", "/api/v1/projects", &bank_token, None);
    assert_eq!(list[0]["name"], "risk");

    // The same job without the project is refused by telco: its grant is to the project.
    let id = bank.submit(&job(None)).unwrap();
    let row = wait_done(bank, &id);
    let reason = row.reason.unwrap_or_default();
    assert_eq!(row.status.as_str(), "failed");
    assert!(
        reason.contains("dataset 'mydata'") && reason.contains("not granted to 'bank'"),
        "{reason}"
    );
    assert!(
        !reason.contains("risk"),
        "the project was not named by bank: {reason}"
    );
    let local = wait_done(telco, &id).reason.unwrap_or_default();
    assert!(local.contains("granted to project 'risk'"), "{local}");

    // A project telco does not know: refused by telco naming only that project.
    let mut ghost = NewProject::new("ghost", "bank");
    ghost.members = vec![
        ("bank".into(), MemberStatus::Joined),
        ("telco".into(), MemberStatus::Joined),
    ];
    bank.store().insert_project(&ghost).unwrap();
    let id = bank.submit(&job(Some("ghost"))).unwrap();
    let reason = wait_done(bank, &id).reason.unwrap_or_default();
    let unknown_text = "the job names project 'ghost', which is unknown on 'telco' or of which not every party of the job is a joined member there";
    assert!(reason.contains(unknown_text), "{reason}");
    let local = wait_done(telco, &id).reason.unwrap_or_default();
    assert!(local.contains("which this node does not have"), "{local}");

    // An initiator that is not a joined member on telco's record (it left the project there):
    // the project's grant no longer lets it in.
    telco
        .store()
        .set_member_status("risk", "bank", MemberStatus::Declined)
        .unwrap();
    let id = bank.submit(&job(Some("risk"))).unwrap();
    let reason = wait_done(bank, &id).reason.unwrap_or_default();
    assert!(
        reason.contains("project 'risk'")
            && reason.contains("which is unknown on 'telco' or of which not every party of the job is a joined member there")
            && reason.contains("not granted to 'bank' in project 'risk'"),
        "{reason}"
    );
    let local = wait_done(telco, &id).reason.unwrap_or_default();
    assert!(
        local.contains("party 'bank' (declined) is not a joined member"),
        "{local}"
    );
}

#[test]
fn a_declined_invitation_is_recorded_on_both_nodes_and_keeps_the_partner_out() {
    let c = cluster();
    let (bank, telco) = (&c.nodes[0], &c.nodes[1]);
    bank.create_project("marketing", "", &["telco".to_string()])
        .unwrap();
    wait_for("the invitation on telco", || {
        status(telco, "marketing", "telco") == Some(MemberStatus::Invited)
    });
    telco.decline_project("marketing", "not this year").unwrap();
    assert_eq!(
        status(telco, "marketing", "telco"),
        Some(MemberStatus::Declined)
    );
    wait_for("bank to record the decline", || {
        status(bank, "marketing", "telco") == Some(MemberStatus::Declined)
    });
    assert!(telco.pending_approvals().unwrap().is_empty());
    assert!(
        telco.approve_project("marketing").is_err(),
        "decided already"
    );
    let err = bank
        .submit(&job(Some("marketing")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("'telco' (declined)"), "{err}");
    // The decline, with its reason, is in bank's action log.
    let entries = bank
        .store()
        .actions(&ferry_store::ActionQuery::default())
        .unwrap();
    assert!(
        entries.iter().any(|e| e.action == "project.decline"
            && e.actor == "party:telco"
            && e.detail
                .as_deref()
                .is_some_and(|d| d.contains("not this year"))),
        "{entries:?}"
    );
}
