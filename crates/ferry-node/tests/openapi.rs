//! `GET /api/v1/openapi.json`: every route the router serves is in it with exactly the methods
//! it serves, every `$ref` resolves, and real answers of a test node validate against the
//! schemas the document gives them.

mod common;
mod schema_check;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Cluster, bearer, call, send, wait_succeeded};
use ferry_node::access::ROUTES;
use ferry_node::api::openapi::PUBLIC_ROUTES;
use ferry_store::{GrantTarget, RegisterDataset, TokenRole, UserRole};
use schema_check::{answer_schema, check, refs, resolve};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tower::ServiceExt;

/// Whether the router serves `method` on `uri` (neither 405 nor the no-route 404), without
/// reading a streamed answer's body.
fn serves(router: &axum::Router, method: &str, uri: &str, token: &str) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        match resp.status() {
            StatusCode::METHOD_NOT_ALLOWED => false,
            StatusCode::NOT_FOUND => {
                let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                !body["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with(ferry_node::api::NO_ROUTE))
            }
            _ => true,
        }
    })
}

#[test]
fn the_document_has_every_route_with_its_methods_and_every_ref_resolves() {
    let c = Cluster::pinned(&["bank", "telco"], false, None);
    let node = &c.nodes[0];
    let router = ferry_node::api::router(node.clone());
    let (_, admin) = node
        .store()
        .create_token("admin", TokenRole::Admin)
        .unwrap();

    // No credentials needed.
    let a = send(&router, "GET", "/api/v1/openapi.json", &[], None);
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let doc = a.body;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();

    // Every rule of the permission table and every public route, with its permission.
    for (method, path, permission) in ROUTES {
        let op = &doc["paths"][format!("/api/v1{path}")][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} missing");
        // Every JSON answer has a ferry-api type: none falls back to "any JSON".
        assert!(
            !op["description"]
                .as_str()
                .unwrap_or_default()
                .contains("no ferry-api type"),
            "{method} {path} answers untyped JSON"
        );
        assert_eq!(
            op["x-ferry-permission"],
            permission.as_str(),
            "{method} {path}"
        );
        assert!(
            op["description"]
                .as_str()
                .unwrap()
                .contains(permission.as_str())
        );
        assert!(op["responses"]["default"]["$ref"].is_string());
    }
    for (method, path, _) in PUBLIC_ROUTES {
        let op = &doc["paths"][format!("/api/v1{path}")][method.to_ascii_lowercase()];
        assert_eq!(op["security"], json!([]), "{method} {path} is public");
    }

    // Each documented path is served with exactly the documented methods.
    let mut probed = 0;
    for (path, item) in paths {
        let documented: BTreeSet<String> = item.as_object().unwrap().keys().cloned().collect();
        let uri = path
            .replace("{name}", "nothing-here")
            .replace("{id}", "job-0-000000");
        let served: BTreeSet<String> = ["GET", "POST", "PUT", "DELETE", "PATCH"]
            .into_iter()
            .filter(|m| serves(&router, m, &uri, &admin))
            .map(str::to_ascii_lowercase)
            .collect();
        assert_eq!(served, documented, "{path}");
        probed += 1;
    }
    assert_eq!(probed, paths.len());
    assert!(
        paths.contains_key("/api/v1/events") && paths.contains_key("/api/v1/health"),
        "{:?}",
        paths.keys()
    );

    // Every $ref resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 50, "{} refs", all.len());
    for r in &all {
        assert!(resolve(&doc, r).is_some(), "unresolved {r}");
    }

    // The error schema and every component's parameters are there.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("ApiErrorBody"));
    assert!(schemas.contains_key("JobEvent") && schemas.contains_key("ServiceEvent"));
    for comp in ferry_node::components::describe_all().as_array().unwrap() {
        let name = comp["name"].as_str().unwrap();
        let key = format!("ComponentParams_{name}");
        assert!(schemas.contains_key(&key), "{key} missing");
        assert!(schemas[&key].get("$schema").is_none());
    }
    let error = json!({"error": "no job x", "code": "not_found"});
    let error_schema =
        &doc["components"]["responses"]["Error"]["content"]["application/json"]["schema"];
    check(&doc, error_schema, &error, "error").unwrap();
    assert!(
        check(
            &doc,
            error_schema,
            &json!({"error": "x", "code": "nope"}),
            "e"
        )
        .is_err()
    );
}

#[test]
fn real_answers_validate_against_their_schemas() {
    let c = Cluster::pinned(&["bank", "telco"], true, Some(&common::test_policy()));
    let (bank, telco) = (&c.nodes[0], &c.nodes[1]);
    let router = ferry_node::api::router(bank.clone());
    let (_, admin) = bank
        .store()
        .create_token("admin", TokenRole::Admin)
        .unwrap();
    let doc = send(&router, "GET", "/api/v1/openapi.json", &[], None).body;
    for (i, node) in [bank, telco].into_iter().enumerate() {
        let file = c.dirs[i].join("loans.csv");
        std::fs::write(&file, "id,x,y\nc1,1.5,1\nc2,2.5,0\nc3,0.5,1\nc4,3.0,0\n").unwrap();
        node.store()
            .register_dataset(RegisterDataset::new("loans", &file))
            .unwrap();
    }
    telco
        .store()
        .grant("loans", GrantTarget::Party("bank".into()))
        .unwrap();
    let spec = "parties: {guest: bank, hosts: [telco]}\ntimeout_secs: 60\ntasks:\n  \
                - {name: read, component: reader, party_params: {bank: {dataset: loans}, telco: {dataset: loans}}}\n  \
                - {name: psi, component: psi, inputs: {data: read}}\n";
    let a = send(
        &router,
        "POST",
        "/api/v1/jobs",
        &bearer(&admin),
        Some(json!({"spec": spec})),
    );
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    check(
        &doc,
        answer_schema(&doc, "POST", "/api/v1/jobs"),
        &a.body,
        "submit",
    )
    .unwrap();
    let job = a.body["job_id"].as_str().unwrap().to_string();
    wait_succeeded(bank, &job, Duration::from_secs(60));

    let grant = call(
        &router,
        "POST",
        "/api/v1/datasets/loans/grants",
        Some(&admin),
        Some(json!({"job": "job-x"})),
    );
    assert_eq!(grant.0, StatusCode::OK, "{}", grant.1);
    check(
        &doc,
        answer_schema(&doc, "POST", "/api/v1/datasets/{name}/grants"),
        &grant.1,
        "grant",
    )
    .unwrap();

    let gets = [
        ("/api/v1/health", "/api/v1/health"),
        ("/api/v1/node", "/api/v1/node"),
        ("/api/v1/partners", "/api/v1/partners"),
        ("/api/v1/datasets", "/api/v1/datasets"),
        ("/api/v1/datasets/loans", "/api/v1/datasets/{name}"),
        ("/api/v1/jobs", "/api/v1/jobs"),
        (&format!("/api/v1/jobs/{job}"), "/api/v1/jobs/{id}"),
        (
            &format!("/api/v1/jobs/{job}/logs"),
            "/api/v1/jobs/{id}/logs",
        ),
        (
            &format!("/api/v1/jobs/{job}/metrics"),
            "/api/v1/jobs/{id}/metrics",
        ),
        (
            &format!("/api/v1/jobs/{job}/privacy"),
            "/api/v1/jobs/{id}/privacy",
        ),
        ("/api/v1/approvals", "/api/v1/approvals"),
        ("/api/v1/models", "/api/v1/models"),
        ("/api/v1/services", "/api/v1/services"),
        ("/api/v1/tokens", "/api/v1/tokens"),
        ("/api/v1/users", "/api/v1/users"),
        ("/api/v1/session", "/api/v1/session"),
        ("/api/v1/components", "/api/v1/components"),
        ("/api/v1/templates", "/api/v1/templates"),
    ];
    let mut answers = std::collections::HashMap::new();
    for (uri, path) in gets {
        let (status, body) = call(&router, "GET", uri, Some(&admin), None);
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        check(&doc, answer_schema(&doc, "GET", path), &body, uri)
            .unwrap_or_else(|e| panic!("{e}\n{body}"));
        answers.insert(path, body);
    }
    // The answers hold what the job did: tasks in graph order with their edges, both parties.
    let detail = &answers["/api/v1/jobs/{id}"];
    assert_eq!(detail["job"]["status"], "succeeded");
    assert_eq!(detail["tasks"][0]["task"], "read");
    assert_eq!(detail["tasks"][1]["depends_on"], json!(["read"]));
    assert_eq!(detail["parties"].as_array().unwrap().len(), 2, "{detail}");
    assert!(answers["/api/v1/datasets/{name}"]["stats"]["columns"].is_array());
    let components = answers["/api/v1/components"].as_array().unwrap();
    assert!(
        components
            .iter()
            .any(|c| c["name"] == "psi" && c["allowed"] == true && c["params"].is_object()),
        "{components:?}"
    );
    assert!(!answers["/api/v1/templates"].as_array().unwrap().is_empty());

    // A session's who-am-I carries its CSRF token (a token's does not).
    assert!(answers["/api/v1/session"].get("csrf_token").is_none());
    bank.store()
        .create_user("sam", &[UserRole::Modeller], "a long enough password")
        .unwrap();
    let signed = send(
        &router,
        "POST",
        "/api/v1/session",
        &[],
        Some(json!({"name": "sam", "password": "a long enough password"})),
    );
    assert_eq!(signed.status, StatusCode::OK);
    check(
        &doc,
        answer_schema(&doc, "POST", "/api/v1/session"),
        &signed.body,
        "sign-in",
    )
    .unwrap();
    let cookie = signed.set_cookie.unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let me = send(
        &router,
        "GET",
        "/api/v1/session",
        &[("Cookie", cookie)],
        None,
    );
    assert_eq!(me.body["csrf_token"], signed.body["csrf_token"]);
    check(
        &doc,
        answer_schema(&doc, "GET", "/api/v1/session"),
        &me.body,
        "me",
    )
    .unwrap();

    // Schedules, query services and queries, and the action log answer their types as well.
    let telco_router = ferry_node::api::router(telco.clone());
    let (_, telco_admin) = telco
        .store()
        .create_token("admin", TokenRole::Admin)
        .unwrap();
    let sched = answered(
        &doc,
        &router,
        &admin,
        ("POST", "/api/v1/schedules", "/api/v1/schedules"),
        Some(json!({"spec": spec, "cron": "0 3 1 1 *", "timezone": "+08:00"})),
    );
    assert_eq!(sched["status"], "pending_approval", "{sched}");
    let sid = sched["id"].as_str().unwrap().to_string();
    let list = answered(
        &doc,
        &router,
        &admin,
        ("GET", "/api/v1/schedules", "/api/v1/schedules"),
        None,
    );
    assert_eq!(list[0]["id"], sid.as_str());
    let shown = answered(
        &doc,
        &router,
        &admin,
        (
            "GET",
            &format!("/api/v1/schedules/{sid}"),
            "/api/v1/schedules/{id}",
        ),
        None,
    );
    assert_eq!(
        (&shown["role"], &shown["timezone"], &shown["cron"]),
        (&json!("guest"), &json!("UTC+08:00"), &json!("0 3 1 1 *")),
        "{shown}"
    );
    let deleted = answered(
        &doc,
        &router,
        &admin,
        (
            "DELETE",
            &format!("/api/v1/schedules/{sid}"),
            "/api/v1/schedules/{id}",
        ),
        None,
    );
    assert_eq!(deleted["status"], "deleted");

    let published = answered(
        &doc,
        &telco_router,
        &telco_admin,
        ("POST", "/api/v1/query-services", "/api/v1/query-services"),
        Some(
            json!({"name": "lookup", "dataset": "loans", "key_columns": ["id"], "value_columns": ["x"], "wait": true}),
        ),
    );
    assert_eq!(
        (&published["status"], &published["rows"]),
        (&json!("ready"), &json!(4)),
        "{published}"
    );
    answered(
        &doc,
        &telco_router,
        &telco_admin,
        ("GET", "/api/v1/query-services", "/api/v1/query-services"),
        None,
    );
    let result = answered(
        &doc,
        &router,
        &admin,
        ("POST", "/api/v1/queries", "/api/v1/queries"),
        Some(json!({"provider": "telco", "service": "lookup", "ids": ["c2", ["nobody"]]})),
    );
    assert_eq!(
        result["answers"],
        json!([{"key": ["c2"], "found": true, "values": ["2.5"]}, {"key": ["nobody"], "found": false, "values": []}]),
        "{result}"
    );
    let qid = result["query"]["id"].as_str().unwrap().to_string();
    answered(
        &doc,
        &router,
        &admin,
        ("GET", "/api/v1/queries", "/api/v1/queries"),
        None,
    );
    let query = answered(
        &doc,
        &router,
        &admin,
        (
            "GET",
            &format!("/api/v1/queries/{qid}"),
            "/api/v1/queries/{id}",
        ),
        None,
    );
    assert_eq!(
        (&query["status"], &query["found"]),
        (&json!("succeeded"), &json!(1))
    );
    let usage = answered(
        &doc,
        &telco_router,
        &telco_admin,
        (
            "GET",
            "/api/v1/query-services/lookup",
            "/api/v1/query-services/{name}",
        ),
        None,
    );
    assert_eq!(usage["usage"][0]["partner"], "bank", "{usage}");

    let log = answered(
        &doc,
        &router,
        &admin,
        ("GET", "/api/v1/audit", "/api/v1/audit"),
        None,
    );
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "POST /api/v1/schedules"),
        "{log}"
    );
    answered(
        &doc,
        &router,
        &admin,
        (
            "POST",
            "/api/v1/audit/checkpoint",
            "/api/v1/audit/checkpoint",
        ),
        None,
    );
    let cps = answered(
        &doc,
        &router,
        &admin,
        (
            "GET",
            "/api/v1/audit/checkpoints",
            "/api/v1/audit/checkpoints",
        ),
        None,
    );
    assert_eq!(cps["party"], "bank");
    assert!(!cps["own"].as_array().unwrap().is_empty(), "{cps}");
    let verified = answered(
        &doc,
        &router,
        &admin,
        ("GET", "/api/v1/audit/verify", "/api/v1/audit/verify"),
        None,
    );
    assert_eq!(verified["ok"], true, "{verified}");

    let project = answered(
        &doc,
        &router,
        &admin,
        ("POST", "/api/v1/projects", "/api/v1/projects"),
        Some(json!({"name": "risk", "description": "joint risk model", "partners": ["telco"]})),
    );
    assert_eq!(project["members"].as_array().unwrap().len(), 2, "{project}");
    answered(
        &doc,
        &router,
        &admin,
        ("GET", "/api/v1/projects", "/api/v1/projects"),
        None,
    );
    let shown = answered(
        &doc,
        &router,
        &admin,
        ("GET", "/api/v1/projects/risk", "/api/v1/projects/{name}"),
        None,
    );
    assert_eq!(
        (&shown["name"], &shown["jobs"]),
        (&json!("risk"), &json!([]))
    );

    // Changing a user and revoking a token answer their types too.
    answered(
        &doc,
        &router,
        &admin,
        (
            "POST",
            "/api/v1/users/sam/password",
            "/api/v1/users/{name}/password",
        ),
        Some(json!({"password": "another long password"})),
    );
    let disabled = answered(
        &doc,
        &router,
        &admin,
        (
            "POST",
            "/api/v1/users/sam/disable",
            "/api/v1/users/{name}/disable",
        ),
        None,
    );
    assert_eq!(disabled["disabled"], "sam");
    bank.store()
        .create_token("spare", TokenRole::ReadOnly)
        .unwrap();
    let revoked = answered(
        &doc,
        &router,
        &admin,
        ("DELETE", "/api/v1/tokens/spare", "/api/v1/tokens/{name}"),
        None,
    );
    assert_eq!(revoked["revoked"], "spare");

    // The checker can fail: a job detail without its status, a task with an unknown status.
    let mut broken = detail.clone();
    broken["job"].as_object_mut().unwrap().remove("status");
    assert!(
        check(
            &doc,
            answer_schema(&doc, "GET", "/api/v1/jobs/{id}"),
            &broken,
            "b"
        )
        .is_err()
    );
    let mut broken = detail.clone();
    broken["tasks"][0]["status"] = json!("exploded");
    assert!(
        check(
            &doc,
            answer_schema(&doc, "GET", "/api/v1/jobs/{id}"),
            &broken,
            "b"
        )
        .is_err()
    );
}

/// `method uri` answered 200 with `body`, and the answer validates against the document's
/// schema for `method path`.
fn answered(
    doc: &Value,
    router: &axum::Router,
    token: &str,
    (method, uri, path): (&str, &str, &str),
    body: Option<Value>,
) -> Value {
    let (status, answer) = call(router, method, uri, Some(token), body);
    assert_eq!(status, StatusCode::OK, "{method} {uri}: {answer}");
    check(doc, answer_schema(doc, method, path), &answer, uri)
        .unwrap_or_else(|e| panic!("{method} {uri}: {e}\n{answer}"));
    answer
}
