//! The REST API a node offers its local users (JSON over HTTP, meant for loopback or a
//! protected internal network; the federation endpoint between nodes is the TLS one).
//!
//! Every route except `GET /api/v1/health` needs `Authorization: Bearer <token>`
//! (`ferry token create`). Read-only tokens may only `GET`; token management needs an admin
//! token. Errors are `{"error": "..."}` with a fitting status code.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | /api/v1/health | party name and version (no token) |
//! | GET | /api/v1/node | party, federation address, pinned peers |
//! | GET, POST | /api/v1/datasets | list; register `{name, path, id_columns?, label?, label_kind?, description?, replace?}` |
//! | GET, DELETE | /api/v1/datasets/{name} | record and statistics; delete |
//! | POST, DELETE | /api/v1/datasets/{name}/grants | `{party}` or `{job}` |
//! | GET, POST | /api/v1/jobs | list; submit (body: the YAML or JSON spec) |
//! | GET | /api/v1/jobs/{id} | job, tasks, every party's status |
//! | GET | /api/v1/jobs/{id}/logs?task= , /metrics?task= , /audit | |
//! | POST | /api/v1/jobs/{id}/approve , /cancel `{reason?}` , /rerun `{from}` | |
//! | GET | /api/v1/models , /api/v1/models/{name}?version= | list; record (signature checked) |
//! | DELETE | /api/v1/models/{name}?version= | |
//! | GET, POST | /api/v1/tokens ; DELETE /api/v1/tokens/{name} | admin only |

use crate::node::{Node, NodeError};
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_store::{GrantTarget, LabelKind, RegisterDataset, StoreError, TokenRole};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// An error as the API reports it.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::AlreadyExists { .. } => StatusCode::CONFLICT,
            StoreError::InvalidInput { .. } | StoreError::NotGranted { .. } => {
                StatusCode::BAD_REQUEST
            }
            StoreError::TamperedModel { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Store(s) => s.into(),
            NodeError::NoSuchJob(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
            NodeError::Transport(_) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            _ => ApiError(StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// Runs store work off the async threads.
async fn blocking<F>(f: F) -> ApiResult
where
    F: FnOnce() -> Result<Value, ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map(Json),
        Err(e) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("request handler failed: {e}"),
        )),
    }
}

fn to_json<T: serde::Serialize>(v: T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// The router with authentication.
pub fn router(node: Arc<Node>) -> Router {
    let api = Router::new()
        .route("/node", get(node_info))
        .route("/datasets", get(list_datasets).post(add_dataset))
        .route("/datasets/{name}", get(show_dataset).delete(delete_dataset))
        .route("/datasets/{name}/grants", post(grant).delete(revoke))
        .route("/jobs", get(list_jobs).post(submit_job))
        .route("/jobs/{id}", get(show_job))
        .route("/jobs/{id}/logs", get(job_logs))
        .route("/jobs/{id}/metrics", get(job_metrics))
        .route("/jobs/{id}/audit", get(job_audit))
        .route("/jobs/{id}/approve", post(approve_job))
        .route("/jobs/{id}/cancel", post(cancel_job))
        .route("/jobs/{id}/rerun", post(rerun_job))
        .route("/models", get(list_models))
        .route("/models/{name}", get(show_model).delete(delete_model))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{name}", axum::routing::delete(revoke_token))
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            authenticate,
        ));
    Router::new()
        .route("/api/v1/health", get(health))
        .nest("/api/v1", api)
        .with_state(node)
}

async fn authenticate(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    let secret = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let Some(secret) = secret else {
        return ApiError(StatusCode::UNAUTHORIZED, "missing API token: send 'Authorization: Bearer <token>' (create one with `ferry token create`)".into()).into_response();
    };
    let store = node.store().clone();
    let info = tokio::task::spawn_blocking(move || store.verify_token(&secret)).await;
    let role = match info {
        Ok(Ok(Some(info))) => info.role,
        Ok(Ok(None)) => {
            return ApiError(
                StatusCode::UNAUTHORIZED,
                "invalid or revoked API token".into(),
            )
            .into_response();
        }
        _ => {
            return ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot check the token".into(),
            )
            .into_response();
        }
    };
    let path = req.uri().path();
    if role == TokenRole::ReadOnly && req.method() != Method::GET {
        return ApiError(StatusCode::FORBIDDEN, "this token is read-only".into()).into_response();
    }
    if path.contains("/tokens") && role != TokenRole::Admin {
        return ApiError(
            StatusCode::FORBIDDEN,
            "managing tokens needs an admin token".into(),
        )
        .into_response();
    }
    next.run(req).await
}

async fn health(State(node): State<Arc<Node>>) -> Json<Value> {
    Json(json!({"party": node.party(), "version": env!("CARGO_PKG_VERSION"), "status": "ok"}))
}

async fn node_info(State(node): State<Arc<Node>>) -> ApiResult {
    let cfg = &node.dir().config;
    Ok(Json(json!({
        "party": node.party(),
        "federation_listen": cfg.federation_listen,
        "api_listen": cfg.api_listen,
        "auto_approve": cfg.auto_approve,
        "peers": cfg.peers,
        "transport": format!("{:?}", node.transport().stats()),
    })))
}

async fn list_datasets(State(node): State<Arc<Node>>) -> ApiResult {
    blocking(move || to_json(node.store().list_datasets()?)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddDataset {
    name: String,
    path: String,
    #[serde(default)]
    id_columns: Vec<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    label_kind: Option<LabelKind>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    replace: bool,
}

async fn add_dataset(State(node): State<Arc<Node>>, Json(body): Json<AddDataset>) -> ApiResult {
    blocking(move || {
        let mut req = RegisterDataset::new(&body.name, &body.path);
        req.id_columns = body.id_columns;
        req.label_kind = body.label_kind.unwrap_or(if body.label.is_some() {
            LabelKind::Binary
        } else {
            LabelKind::Continuous
        });
        req.label = body.label;
        req.description = body.description;
        req.replace = body.replace;
        to_json(node.store().register_dataset(req)?)
    })
    .await
}

async fn show_dataset(State(node): State<Arc<Node>>, Path(name): Path<String>) -> ApiResult {
    blocking(move || {
        let store = node.store();
        let record = store.dataset(&name)?;
        let stats = store.describe_dataset(&name)?;
        let grants = store.grants(&name)?;
        Ok(json!({"dataset": record, "stats": stats, "grants": grants}))
    })
    .await
}

async fn delete_dataset(State(node): State<Arc<Node>>, Path(name): Path<String>) -> ApiResult {
    blocking(move || {
        node.store().delete_dataset(&name)?;
        Ok(json!({"deleted": name}))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    party: Option<String>,
    job: Option<String>,
}

fn grant_target(body: GrantBody) -> Result<GrantTarget, ApiError> {
    match (body.party, body.job) {
        (Some(p), None) => Ok(GrantTarget::Party(p)),
        (None, Some(j)) => Ok(GrantTarget::Job(j)),
        _ => Err(ApiError(
            StatusCode::BAD_REQUEST,
            "give exactly one of 'party' or 'job'".into(),
        )),
    }
}

async fn grant(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(body): Json<GrantBody>,
) -> ApiResult {
    blocking(move || {
        let target = grant_target(body)?;
        node.store().grant(&name, target.clone())?;
        Ok(json!({"dataset": name, "granted": target}))
    })
    .await
}

async fn revoke(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(body): Json<GrantBody>,
) -> ApiResult {
    blocking(move || {
        let target = grant_target(body)?;
        node.store().revoke_grant(&name, &target)?;
        Ok(json!({"dataset": name, "revoked": target}))
    })
    .await
}

async fn list_jobs(State(node): State<Arc<Node>>) -> ApiResult {
    blocking(move || {
        let jobs: Vec<Value> = node
            .store()
            .list_jobs()?
            .into_iter()
            .map(|j| {
                let name = serde_json::from_str::<Value>(&j.spec_json).ok().and_then(|s| s.get("name").cloned()).unwrap_or(Value::Null);
                json!({"id": j.id, "name": name, "initiator": j.initiator, "role": j.my_role, "status": j.status, "reason": j.reason, "created_at": j.created_at, "updated_at": j.updated_at})
            })
            .collect();
        Ok(Value::Array(jobs))
    })
    .await
}

async fn submit_job(State(node): State<Arc<Node>>, body: String) -> ApiResult {
    blocking(move || {
        // Accept the spec itself (YAML or JSON) or {"spec": "<text>"}.
        let text = match serde_json::from_str::<Value>(&body) {
            Ok(Value::Object(m)) if m.len() == 1 && m.get("spec").is_some_and(Value::is_string) => {
                m["spec"].as_str().unwrap_or_default().to_string()
            }
            _ => body,
        };
        let id = node.submit(&text)?;
        Ok(json!({"job_id": id}))
    })
    .await
}

async fn show_job(State(node): State<Arc<Node>>, Path(id): Path<String>) -> ApiResult {
    blocking(move || {
        let store = node.store();
        let job = store.job(&id)?;
        let mut tasks = store.tasks(&id)?;
        // Tasks in the order the DAG runs them.
        if let Ok(order) = crate::dsl::JobSpec::parse(&job.spec_json).and_then(|s| s.topological_order()) {
            tasks.sort_by_key(|t| order.iter().position(|n| *n == t.task).unwrap_or(usize::MAX));
        }
        let parties: Vec<Value> = store.party_statuses(&id)?.into_iter().map(|(p, s, r)| json!({"party": p, "status": s, "reason": r})).collect();
        let spec: Value = serde_json::from_str(&job.spec_json).unwrap_or(Value::Null);
        Ok(json!({"job": {
            "id": job.id, "initiator": job.initiator, "role": job.my_role, "status": job.status, "reason": job.reason,
            "created_at": job.created_at, "updated_at": job.updated_at, "spec": spec,
        }, "tasks": tasks, "parties": parties, "files": node.job_dir(&id)}))
    })
    .await
}

async fn job_logs(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    blocking(move || {
        node.store().job(&id)?;
        to_json(node.store().logs(&id, q.get("task").map(String::as_str))?)
    })
    .await
}

async fn job_metrics(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    blocking(move || {
        node.store().job(&id)?;
        let rows = node.store().metrics(&id, q.get("task").map(String::as_str))?;
        // NaN is not JSON; report it as null.
        let rows: Vec<Value> = rows
            .into_iter()
            .map(|m| json!({"task": m.task, "name": m.name, "step": m.step, "value": if m.value.is_finite() { json!(m.value) } else { Value::Null }, "at": m.at}))
            .collect();
        Ok(Value::Array(rows))
    })
    .await
}

async fn job_audit(State(node): State<Arc<Node>>, Path(id): Path<String>) -> ApiResult {
    blocking(move || {
        node.store().job(&id)?;
        to_json(node.store().audit(&id)?)
    })
    .await
}

async fn approve_job(State(node): State<Arc<Node>>, Path(id): Path<String>) -> ApiResult {
    blocking(move || {
        node.approve(&id)?;
        Ok(json!({"approved": id}))
    })
    .await
}

async fn cancel_job(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    body: Option<Json<Value>>,
) -> ApiResult {
    blocking(move || {
        let reason = body
            .as_ref()
            .and_then(|b| b.get("reason"))
            .and_then(Value::as_str)
            .unwrap_or("by a user")
            .to_string();
        node.cancel(&id, &reason)?;
        Ok(json!({"cancelled": id}))
    })
    .await
}

async fn rerun_job(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    blocking(move || {
        let from = body.get("from").and_then(Value::as_str).ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                "give 'from': the first task to run again".into(),
            )
        })?;
        let new_id = node.rerun(&id, from)?;
        Ok(json!({"job_id": new_id, "rerun_of": id, "from": from}))
    })
    .await
}

async fn list_models(State(node): State<Arc<Node>>) -> ApiResult {
    blocking(move || to_json(node.store().list_models()?)).await
}

fn version(q: &HashMap<String, String>) -> Result<Option<u32>, ApiError> {
    q.get("version")
        .map(|v| {
            v.parse::<u32>().map_err(|_| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("version '{v}' is not a number"),
                )
            })
        })
        .transpose()
}

async fn show_model(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    blocking(move || {
        // Loading checks the content hash and the signature; a tampered model is refused here too.
        let (record, payload) = node.store().load_model(&name, version(&q)?)?;
        Ok(json!({"model": record, "verified": true, "payload_bytes": payload.len()}))
    })
    .await
}

async fn delete_model(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    blocking(move || {
        node.store().delete_model(&name, version(&q)?)?;
        Ok(json!({"deleted": name}))
    })
    .await
}

async fn list_tokens(State(node): State<Arc<Node>>) -> ApiResult {
    blocking(move || to_json(node.store().list_tokens()?)).await
}

async fn create_token(State(node): State<Arc<Node>>, Json(body): Json<Value>) -> ApiResult {
    blocking(move || {
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "give the token a 'name'".into()))?;
        let role: TokenRole = match body.get("role").and_then(Value::as_str) {
            None => TokenRole::User,
            Some(r) => r.parse().map_err(|_| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("unknown role '{r}' (admin, user, read_only)"),
                )
            })?,
        };
        let (info, secret) = node.store().create_token(name, role)?;
        Ok(json!({"token": info, "secret": secret}))
    })
    .await
}

async fn revoke_token(State(node): State<Arc<Node>>, Path(name): Path<String>) -> ApiResult {
    blocking(move || {
        node.store().revoke_token(&name)?;
        Ok(json!({"revoked": name}))
    })
    .await
}

/// Binds the API's address (before the node starts, so a taken port fails at once).
pub async fn bind(listen: &str) -> Result<tokio::net::TcpListener, NodeError> {
    tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        NodeError::Invalid(format!(
            "cannot listen on {listen} for the API: {e} (is another node or program using \
             it? change api_listen in ferry.toml)"
        ))
    })
}

/// Runs the API on `listener` until `shutdown` resolves.
pub async fn serve(
    node: Arc<Node>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    axum::serve(listener, router(node))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| NodeError::Invalid(format!("API server stopped: {e}")))
}
