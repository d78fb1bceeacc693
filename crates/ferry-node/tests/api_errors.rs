//! Every error of the API has one shape: `{"error": message, "code": snake_case, "field"?}`,
//! whether a handler, the authentication layer or axum itself refused the request.

mod common;

use axum::http::StatusCode;
use common::{call, send};
use ferry_api::{ApiErrorBody, ErrorCode};
use ferry_node::Node;
use ferry_store::TokenRole;
use ferry_transport::NodeDir;
use serde_json::{Value, json};

fn one_node() -> (tempfile::TempDir, std::sync::Arc<Node>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = common::pinned_node_dirs(tmp.path(), &["bank", "telco"], false, None);
    let node = Node::start(NodeDir::open(&dirs[0]).unwrap()).unwrap();
    let (_, token) = node
        .store()
        .create_token("admin", TokenRole::Admin)
        .unwrap();
    (tmp, node, token)
}

/// The body as the shared error type, asserting it is exactly that shape.
fn error_of(status: StatusCode, body: &Value, want: ErrorCode) -> ApiErrorBody {
    let parsed: ApiErrorBody = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("not the error shape ({e}): {body}"));
    assert_eq!(parsed.code, want, "{body}");
    // axum's own rejections keep their statuses (405, 415, 422) under `invalid_input`.
    let framework = want == ErrorCode::InvalidInput && [405, 415, 422].contains(&status.as_u16());
    assert!(
        framework || status.as_u16() == want.http_status(),
        "{status} {body}"
    );
    assert!(!parsed.error.is_empty());
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert!(
        keys.iter()
            .all(|k| ["error", "code", "field"].contains(&k.as_str())),
        "{body}"
    );
    parsed
}

#[test]
fn handler_auth_and_framework_errors_share_one_shape() {
    let (_tmp, node, token) = one_node();
    let router = ferry_node::api::router(node.clone());
    let t = Some(token.as_str());

    let (s, b) = call(&router, "GET", "/api/v1/jobs/nope", t, None);
    let e = error_of(s, &b, ErrorCode::NotFound);
    assert!(e.error.contains("nope"), "{e}");

    let (s, b) = call(&router, "GET", "/api/v1/jobs", None, None);
    error_of(s, &b, ErrorCode::Unauthorized);

    let (_, read_only) = node
        .store()
        .create_token("ro", TokenRole::ReadOnly)
        .unwrap();
    let (s, b) = call(
        &router,
        "DELETE",
        "/api/v1/datasets/x",
        Some(&read_only),
        None,
    );
    let e = error_of(s, &b, ErrorCode::Forbidden);
    assert!(e.error.contains("manage_data"), "{e}");

    // A body axum cannot read as the route's type (a plain-text rejection before).
    let (s, b) = call(
        &router,
        "POST",
        "/api/v1/partners",
        t,
        Some(json!({"name": 3})),
    );
    error_of(s, &b, ErrorCode::InvalidInput);

    // No such route under /api/v1.
    let (s, b) = call(&router, "GET", "/api/v1/no-such-thing", t, None);
    error_of(s, &b, ErrorCode::NotFound);

    // A method the route does not have.
    let a = send(
        &router,
        "PUT",
        "/api/v1/jobs",
        &common::bearer(&token),
        None,
    );
    error_of(a.status, &a.body, ErrorCode::InvalidInput);
}

#[test]
fn a_job_spec_error_points_at_its_location() {
    let (_tmp, node, token) = one_node();
    let router = ferry_node::api::router(node);
    let spec = json!({
        "name": "bad",
        "parties": {"guest": "bank", "hosts": ["telco"]},
        "tasks": [{"name": "t", "component": "no_such_component"}]
    });
    let (s, b) = call(&router, "POST", "/api/v1/jobs", Some(&token), Some(spec));
    let e = error_of(s, &b, ErrorCode::InvalidInput);
    let field = e.field.expect("a spec error has a field");
    assert!(field.starts_with("tasks"), "{field}");
    assert!(e.error.contains("no_such_component"), "{}", e.error);
}

#[test]
fn a_dataset_registration_error_names_the_column() {
    let (tmp, node, token) = one_node();
    let router = ferry_node::api::router(node);
    let file = tmp.path().join("d.csv");
    std::fs::write(&file, "id,x,y\na,1,0\nb,2,7\n").unwrap();
    // A binary label with a 7 in it: the store names the label column.
    let req = common::request(
        "POST",
        "/api/v1/datasets/d/upload?label=y",
        &common::bearer(&token),
        None,
    );
    let (parts, _) = req.into_parts();
    let req = axum::http::Request::from_parts(
        parts,
        axum::body::Body::from(std::fs::read(&file).unwrap()),
    );
    let a = common::oneshot(&router, req);
    let e = error_of(a.status, &a.body, ErrorCode::InvalidInput);
    assert_eq!(e.field.as_deref(), Some("columns.y"), "{e}");
}
