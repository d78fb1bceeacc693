//! `POST /api/v1/jobs/validate`: the checks of submission, located by task name and field,
//! without submitting anything (the console's job builder marks errors in place with them).

mod common;

use axum::http::StatusCode;
use common::{Cluster, call, register_data};
use ferry_store::TokenRole;
use serde_json::{Value, json};

const GOOD: &str = r#"
name: credit
parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}
  - {name: intersect, component: psi, inputs: {data: read}}
  - {name: sbt, component: hetero_secureboost, inputs: {train: intersect}, params: {num_trees: 2, max_depth: 2}}
  - {name: score, component: predict, inputs: {model: sbt, data: intersect}}
  - {name: eval, component: evaluation, inputs: {data: score}}
"#;

struct Setup {
    _cluster: Cluster,
    router: axum::Router,
    token: String,
    viewer: String,
}

fn setup() -> Setup {
    let c = Cluster::pinned(&["bank", "telco"], true, None);
    register_data(&c, 40);
    let node = c.nodes[0].clone();
    let (_, token) = node
        .store()
        .create_token("modeller", TokenRole::User)
        .unwrap();
    let (_, viewer) = node
        .store()
        .create_token("viewer", TokenRole::ReadOnly)
        .unwrap();
    Setup {
        router: ferry_node::api::router(node),
        _cluster: c,
        token,
        viewer,
    }
}

fn validate(s: &Setup, spec: &str) -> Value {
    let (code, body) = call(
        &s.router,
        "POST",
        "/api/v1/jobs/validate",
        Some(&s.token),
        Some(json!({"spec": spec})),
    );
    assert_eq!(code, StatusCode::OK, "{body}");
    body
}

/// The errors' fields, each with its code.
fn fields(answer: &Value) -> Vec<(String, String)> {
    answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or("<none>").to_string(),
                e["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn has(answer: &Value, field: &str, code: &str) -> bool {
    answer["valid"] == false && fields(answer).iter().any(|(f, c)| f == field && c == code)
}

#[test]
fn validate_locates_each_problem_by_task_name_and_field_and_submits_nothing() {
    let s = setup();
    let ok = validate(&s, GOOD);
    assert_eq!(ok, json!({"valid": true, "errors": []}));

    let bad_param = validate(&s, &GOOD.replace("max_depth: 2", "max_depth: 99"));
    assert!(
        has(&bad_param, "tasks.sbt.params.max_depth", "spec"),
        "{bad_param}"
    );
    let message = bad_param["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("max_depth"), "{message}");

    let dangling = validate(&s, &GOOD.replace("{data: score}", "{data: scores}"));
    assert!(
        has(&dangling, "tasks.eval.inputs.data", "spec"),
        "{dangling}"
    );
    assert!(
        dangling["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no task named 'scores' (did you mean 'score'?)"),
        "{dangling}"
    );

    let unknown = validate(
        &s,
        &GOOD.replace("component: evaluation", "component: evaluate"),
    );
    assert!(has(&unknown, "tasks.eval.component", "spec"), "{unknown}");

    // A per-party parameter is located at that party's override.
    let party = validate(
        &s,
        &GOOD.replace("telco: {dataset: mydata}", "telco: {datset: mydata}"),
    );
    assert!(
        has(&party, "tasks.read.party_params.telco.datset", "spec"),
        "{party}"
    );

    // The node's own checks run too: a dataset this node does not have.
    let local = validate(
        &s,
        &GOOD.replace("bank: {dataset: mydata}", "bank: {dataset: nodata}"),
    );
    assert!(
        has(&local, "tasks.read.party_params.bank.dataset", "local"),
        "{local}"
    );
    // ... and this node must be the guest.
    let guest = validate(
        &s,
        &GOOD.replace(
            "{guest: bank, hosts: [telco]}",
            "{guest: telco, hosts: [bank]}",
        ),
    );
    assert!(has(&guest, "parties.guest", "guest"), "{guest}");

    let syntax = validate(&s, "parties: {guest: bank\ntasks: [");
    assert_eq!(
        fields(&syntax),
        [("<none>".to_string(), "parse".to_string())]
    );

    // Nothing was submitted, and reading alone does not allow validating.
    let (_, jobs) = call(&s.router, "GET", "/api/v1/jobs", Some(&s.token), None);
    assert_eq!(jobs, json!([]));
    let (code, _) = call(
        &s.router,
        "POST",
        "/api/v1/jobs/validate",
        Some(&s.viewer),
        Some(json!({"spec": GOOD})),
    );
    assert_eq!(code, StatusCode::FORBIDDEN);
}
