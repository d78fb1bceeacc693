//! The REST API a node offers its local users (JSON over HTTP, meant for loopback or a
//! protected internal network; the federation endpoint between nodes is the TLS one).
//!
//! Every route except `GET /api/v1/health`, `GET /api/v1/openapi.json` and
//! `POST /api/v1/session` needs credentials:
//! `Authorization: Bearer <token>` (`ferry token create`), or the console's session cookie
//! from signing in (`POST /api/v1/session` with `{name, password}`), in which case every
//! state-changing request must also send the session's `csrf_token` in `X-CSRF-Token`. What a
//! principal may call follows its role: [`crate::access`] lists the permission of every route,
//! and a refusal names the permission, the principal and its roles.
//!
//! Requests and answers are the types of the `ferry-api` crate, which the CLI reads back too.
//! Every error, whether a handler, the authentication layer or axum itself refused the
//! request, is `{"error": "<message>", "code": "<code>", "field": "<where>"?}`
//! ([`ferry_api::ApiErrorBody`]; the code follows the status: `invalid_input`, `unauthorized`,
//! `forbidden`, `not_found`, `conflict`, `too_large`, `integrity_failed`, `locked_out`,
//! `internal`, `partner_failed`, `partner_timeout`; `field` locates a job spec's problem or a
//! dataset's column). `GET /api/v1/openapi.json` is an OpenAPI 3.1 document generated from
//! [`access::ROUTES`] and those types, with every component's parameter schema
//! ([`openapi`]); `GET /api/v1/events` streams jobs' and services' changes as server-sent
//! events (`api/events.rs`).
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | /api/v1/health | party name and version (no token) |
//! | GET | /api/v1/openapi.json | the OpenAPI 3.1 document of this API (no token; [`openapi`]) |
//! | GET | /api/v1/events?job= | live updates of jobs and services as server-sent events (`api/events.rs`) |
//! | GET | /api/v1/node | party, federation address, pinned peers |
//! | GET, POST | /api/v1/partners `{name, addr, cert_pem}` ; POST /api/v1/partners/{name}/rotate `{cert_pem, overlap_hours?, addr?}` ; DELETE /api/v1/partners/{name} `{reason?}` | partners at run time ([`crate::partners`]) |
//! | GET, POST | /api/v1/datasets | list; register a file on the node's machine `{name, path, id_columns?, label?, label_kind?, description?, replace?}` (only under `[datasets] import_dirs` of `ferry.toml`, never inside the node directory: [`crate::import`]) |
//! | POST | /api/v1/datasets/{name}/upload?id_columns=a,b&label=&label_kind=&description=&replace=&file_name= | register the request body (the file's bytes, streamed; at most [`DEFAULT_MAX_UPLOAD_BYTES`], else 413) |
//! | GET, DELETE | /api/v1/datasets/{name} | record and statistics; delete |
//! | POST, DELETE | /api/v1/datasets/{name}/grants | `{party}` or `{job}` |
//! | GET | /api/v1/datasets/{name}/download | the dataset's file, streamed (needs `export_data`: [`crate::export`]) |
//! | GET, POST | /api/v1/jobs | list; submit (body: the YAML or JSON spec) |
//! | POST | /api/v1/jobs/validate | submission's checks without submitting: `{valid, errors: [{message, code, field}]}` ([`job_validate`]) |
//! | GET | /api/v1/jobs/{id} | job, tasks, every party's status, the schedule it is a run of |
//! | GET | /api/v1/jobs/{id}/logs?task= , /metrics?task= , /audit | |
//! | GET | /api/v1/jobs/{id}/privacy | the job's privacy report ([`crate::privacy`]) |
//! | GET | /api/v1/approvals | what waits on a person here: partners' proposals, their security settings, when they expire |
//! | GET, POST | /api/v1/schedules ; GET, DELETE /api/v1/schedules/{id} ; POST /schedules/{id}/pause , /resume , /approve , /reject , /revoke | scheduled jobs ([`schedule_routes`], [`crate::schedules`]) |
//! | POST | /api/v1/jobs/{id}/approve , /reject `{reason}` , /cancel `{reason?}` , /rerun `{from}` , /resume | |
//! | GET, POST | /api/v1/services ; GET, DELETE /api/v1/services/{name} ; POST /services/{name}/switch , /approve , /reject , /predict | model services: deploy, list, show, undeploy, switch version, a partner's deployment decided, online prediction ([`service_routes`], [`crate::serving`]; a deployment's id also works with /jobs/{id}/approve and /reject) |
//! | GET | /api/v1/models , /api/v1/models/{name}?version= | list; record (signature checked) |
//! | DELETE | /api/v1/models/{name}?version= | |
//! | GET, POST | /api/v1/query-services | provider: list; publish `{name, dataset, key_columns, value_columns, description?, wait?}` ([`crate::query`]) |
//! | GET, DELETE | /api/v1/query-services/{name} | the service, the partners granted its dataset, what each was served (counts and times) |
//! | POST | /api/v1/query-services/{name}/refresh?wait=true | build the next table version from the dataset as it is now |
//! | GET, POST | /api/v1/queries | querier: list; run `{provider, service, ids: ["x", ...] or [["a","b"], ...]}` (answers in the order asked) |
//! | GET | /api/v1/queries/{id} , /api/v1/queries/{id}/result | the record; the result as CSV (key columns, `found`, value columns) |
//! | GET, POST | /api/v1/tokens `{name, role?, user?}` ; DELETE /api/v1/tokens/{name} | with `user`: a personal token that acts as that user |
//! | GET, POST | /api/v1/users `{name, roles, password}` ; POST /api/v1/users/{name}/roles , /password , /disable | named users |
//! | POST, GET, DELETE | /api/v1/session | sign in (sets the cookie; answers the CSRF token); who am I; sign out |
//! | GET | /api/v1/audit , /audit/verify , /audit/export , /audit/checkpoints ; POST /audit/checkpoint | the action log ([`audit_log`]) |
//!
//! Every request that is not a read (and every sign-in) is recorded in the node's action log
//! once authenticated: actor, method and route, object, client address, status and error
//! ([`crate::audit`]).
//!
//! Dataset names starting with `job-` are reserved for the outputs of jobs; both registration
//! routes refuse them.

mod audit_log;
mod events;
mod guard;
mod job_validate;
pub mod openapi;
mod schedule_routes;
mod service_routes;

use crate::access::{self, Credential, Principal};
use crate::import::{DatasetImportSettings, check_import_path_protecting};
use crate::node::{Node, NodeError};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_api::{self as api, ApiErrorBody, ErrorCode};
use ferry_store::{
    GrantTarget, LabelKind, NewQueryService, RegisterDataset, StoreError, TokenRole, UserRole,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The largest dataset one upload may carry by default. Uploads are streamed to disk, so the
/// limit is about disk space, not memory; 16 GiB is far above the tabular data Ferry trains on
/// and keeps one request from filling the node's disk. Larger files are registered from an
/// import directory.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 16 << 30;

/// Directory under the node's data directory holding uploads in progress.
pub const UPLOAD_DIR: &str = "uploads";

/// Longest file name (in characters) an upload keeps; longer ones are shortened.
const MAX_UPLOAD_FILE_NAME: usize = 100;

/// Limits of the API that code (tests, embedders) may set; nothing a partner or a request can
/// change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    /// The most bytes an upload may carry ([`DEFAULT_MAX_UPLOAD_BYTES`]).
    pub max_upload_bytes: u64,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
        }
    }
}

/// Largest body of `POST /api/v1/queries` (a batch of ids): 100,000 ids of up to ~600 bytes.
const MAX_QUERY_BODY_BYTES: usize = 64 << 20;

/// An error as the API reports it: a status, and the body every error has
/// ([`ferry_api::ApiErrorBody`]: `{"error", "code", "field"?}`; the code follows the status).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: String) -> Self {
        ApiError {
            status,
            message,
            field: None,
        }
    }

    /// The same error, located at `field` of the request (a spec location, a column).
    pub fn at(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The body the client receives.
    pub fn body(&self) -> ApiErrorBody {
        ApiErrorBody {
            error: self.message.clone(),
            code: ErrorCode::of_status(self.status.as_u16()),
            field: self.field.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
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
        // A registration's problem points at the column, else at the file.
        let field = match &e {
            StoreError::InvalidInput {
                column: Some(c), ..
            } => Some(format!("columns.{c}")),
            StoreError::InvalidInput { file: Some(_), .. } => Some("file".to_string()),
            _ => None,
        };
        let error = ApiError::new(code, e.to_string());
        match field {
            Some(f) => error.at(f),
            None => error,
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Store(s) => s.into(),
            NodeError::NoSuchJob(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            NodeError::Transport(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            // The message lists every problem; `field` points at the first one's location.
            NodeError::Spec(ref errors) => {
                let first = errors.0.first().map(|p| p.location.clone());
                let error = ApiError::new(StatusCode::BAD_REQUEST, e.to_string());
                match first {
                    Some(location) if !location.is_empty() => error.at(location),
                    _ => error,
                }
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
}

type ApiResult<T = Value> = Result<Json<T>, ApiError>;

/// Runs store work off the async threads.
async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map(Json),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("request handler failed: {e}"),
        )),
    }
}

fn to_json<T: serde::Serialize>(v: T) -> Result<Value, ApiError> {
    serde_json::to_value(v)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// A store or node record as its [`ferry_api`] type. The two have the same JSON shape by
/// design (the API crate cannot name the store's types); going through it checks that they
/// still do on every answer, and a drift is an internal error naming the type, which the
/// route tests catch.
fn recast<A: serde::Serialize, B: serde::de::DeserializeOwned>(a: A) -> Result<B, ApiError> {
    serde_json::to_value(a)
        .and_then(serde_json::from_value)
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot answer as {}: {e}", std::any::type_name::<B>()),
            )
        })
}

/// [`recast`] for handlers outside this module.
pub(crate) fn answer_as<A: serde::Serialize, B: serde::de::DeserializeOwned>(
    a: A,
) -> Result<B, ApiError> {
    recast(a)
}

/// How the answer to a path under `/api/` that no route serves begins.
pub const NO_ROUTE: &str = "no such route";

/// Errors axum answers by itself (a body that is not the JSON a route takes, a method a route
/// does not have, a path under `/api/` that does not exist) come as plain text; this gives
/// them the one error shape of the API.
async fn json_errors(req: Request, next: Next) -> Response {
    let under_api = req.uri().path().starts_with("/api/");
    let asked = format!("{} {}", req.method(), req.uri().path());
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !under_api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    // An empty 404 is the router's: no route matched.
    let message = if text.is_empty() && status == StatusCode::NOT_FOUND {
        format!("{NO_ROUTE}: {asked}")
    } else if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let code = match status.as_u16() {
        // Rejections of the request itself, not a stored model's integrity.
        405 | 415 | 422 => ErrorCode::InvalidInput,
        other => ErrorCode::of_status(other),
    };
    let body = ApiErrorBody {
        error: message,
        code,
        field: None,
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    let json = serde_json::to_vec(&body).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(json))
}

/// The router with authentication.
pub fn router(node: Arc<Node>) -> Router {
    router_with_limits(node, ApiLimits::default())
}

/// [`router`] with other limits.
pub fn router_with_limits(node: Arc<Node>, limits: ApiLimits) -> Router {
    let settings = access::UserSettings::from_config(&node.dir().config.other).unwrap_or_default();
    let failures = Arc::new(guard::FailureGuard::new(
        settings.max_failed_attempts,
        std::time::Duration::from_secs(settings.lockout_minutes.saturating_mul(60)),
    ));
    let api = Router::new()
        .route("/node", get(node_info))
        .route("/components", get(list_components))
        .route("/templates", get(list_templates))
        .route("/datasets", get(list_datasets).post(add_dataset))
        .route(
            "/datasets/{name}/upload",
            // The body is streamed to disk under its own limit, not axum's 2 MB default.
            post(upload_dataset)
                .route_layer(DefaultBodyLimit::disable())
                .route_layer(Extension(limits)),
        )
        .route("/datasets/{name}", get(show_dataset).delete(delete_dataset))
        .route("/datasets/{name}/grants", post(grant).delete(revoke))
        .route(
            "/datasets/{name}/download",
            get(crate::export::api_download_dataset),
        )
        .route("/jobs", get(list_jobs).post(submit_job))
        .route("/jobs/validate", post(job_validate::validate))
        .route("/jobs/{id}", get(show_job))
        .route("/jobs/{id}/logs", get(job_logs))
        .route("/jobs/{id}/metrics", get(job_metrics))
        .route("/jobs/{id}/audit", get(job_audit))
        .route("/jobs/{id}/privacy", get(crate::privacy::api_job_privacy))
        .route("/approvals", get(list_approvals))
        .route("/events", get(events::stream))
        .route("/jobs/{id}/approve", post(approve_job))
        .route("/jobs/{id}/reject", post(reject_job))
        .route("/jobs/{id}/cancel", post(cancel_job))
        .route("/jobs/{id}/rerun", post(rerun_job))
        .route("/jobs/{id}/resume", post(resume_job))
        .route("/projects", get(list_projects).post(create_project))
        .route("/projects/{name}", get(show_project))
        .route("/projects/{name}/approve", post(approve_project))
        .route("/projects/{name}/decline", post(decline_project))
        .route(
            "/schedules",
            get(schedule_routes::list).post(schedule_routes::create),
        )
        .route(
            "/schedules/{id}",
            get(schedule_routes::show).delete(schedule_routes::delete),
        )
        .route("/schedules/{id}/pause", post(schedule_routes::pause))
        .route("/schedules/{id}/resume", post(schedule_routes::resume))
        .route("/schedules/{id}/approve", post(schedule_routes::approve))
        .route("/schedules/{id}/reject", post(schedule_routes::reject))
        .route("/schedules/{id}/revoke", post(schedule_routes::revoke))
        .route(
            "/services",
            get(service_routes::list).post(service_routes::deploy),
        )
        .route(
            "/services/{name}",
            get(service_routes::show).delete(service_routes::undeploy),
        )
        .route("/services/{name}/switch", post(service_routes::switch))
        .route("/services/{name}/approve", post(service_routes::approve))
        .route("/services/{name}/reject", post(service_routes::reject))
        .route("/services/{name}/predict", post(service_routes::predict))
        .route("/services/{name}/requests", get(service_routes::requests))
        .route("/partners", get(list_partners).post(add_partner))
        .route("/partners/{name}/rotate", post(rotate_partner))
        .route("/partners/{name}", axum::routing::delete(remove_partner))
        .route("/models", get(list_models))
        .route("/models/{name}", get(show_model).delete(delete_model))
        .route(
            "/query-services",
            get(list_query_services).post(publish_query_service),
        )
        .route(
            "/query-services/{name}",
            get(show_query_service).delete(delete_query_service),
        )
        .route(
            "/query-services/{name}/refresh",
            post(refresh_query_service),
        )
        .route(
            "/queries",
            get(list_queries)
                .post(run_query)
                .route_layer(DefaultBodyLimit::max(MAX_QUERY_BODY_BYTES)),
        )
        .route("/queries/{id}", get(show_query))
        .route("/queries/{id}/result", get(query_result))
        .route("/users", get(list_users).post(add_user))
        .route("/users/{name}/roles", post(set_user_roles))
        .route("/users/{name}/password", post(set_user_password))
        .route("/users/{name}/disable", post(disable_user))
        .route("/session", get(who_am_i).delete(sign_out))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{name}", axum::routing::delete(revoke_token))
        .route("/audit", get(audit_log::list))
        .route("/audit/verify", get(audit_log::verify))
        .route("/audit/export", get(audit_log::export))
        .route("/audit/checkpoints", get(audit_log::checkpoints))
        .route("/audit/checkpoint", post(audit_log::checkpoint_now))
        // Runs after `authenticate` (layers run outermost first), so the actor is known.
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            audit_log::record_actions,
        ))
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            guard::lockout,
        ))
        .layer(Extension(failures.clone()));
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route(
            "/api/v1/session",
            post(sign_in)
                .route_layer(axum::middleware::from_fn_with_state(
                    node.clone(),
                    audit_log::record_actions,
                ))
                .route_layer(axum::middleware::from_fn_with_state(
                    node.clone(),
                    guard::lockout,
                ))
                .route_layer(Extension(failures)),
        )
        .nest("/api/v1", api)
        .merge(crate::console::router())
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(node)
}

/// Name of the console's session cookie.
pub const SESSION_COOKIE: &str = "ferry_session";
/// Header a browser echoes the session's CSRF token in, on every state-changing request.
pub const CSRF_HEADER: &str = "x-csrf-token";

fn bearer(req: &Request) -> Option<String> {
    req.headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Who presents this token or session cookie (`Err`: the API error to answer with).
fn principal_of(
    node: &Node,
    token: Option<String>,
    cookie: Option<String>,
) -> Result<Principal, ApiError> {
    let store = node.store();
    let internal = |e: StoreError| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot check the credentials: {e}"),
        )
    };
    if let Some(secret) = token {
        let Some(info) = store.verify_token(&secret).map_err(internal)? else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid or revoked API token".into(),
            ));
        };
        return match store.token_owner(&info.name).map_err(internal)? {
            None => Ok(Principal::Token {
                name: info.name,
                role: info.role,
            }),
            Some(owner) => {
                let user = store.user(&owner).map_err(internal)?;
                if user.disabled_at.is_some() {
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "invalid or revoked API token".into(),
                    ));
                }
                Ok(Principal::User {
                    name: user.name,
                    roles: user.roles,
                    credential: Credential::Token(info.name),
                })
            }
        };
    }
    if let Some(secret) = cookie {
        let Some(session) = store.session(&secret).map_err(internal)? else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the session has expired or ended: sign in again".into(),
            ));
        };
        return Ok(Principal::User {
            name: session.user.name,
            roles: session.user.roles,
            credential: Credential::Session {
                csrf_token: session.csrf_token,
            },
        });
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "missing credentials: send 'Authorization: Bearer <token>' (create one with `ferry token create`) or sign in (POST /api/v1/session)".into(),
    ))
}

/// Authenticates every request (token or session cookie), checks the session's CSRF token on
/// state-changing requests, and checks the permission the route needs ([`access::ROUTES`]).
async fn authenticate(
    State(node): State<Arc<Node>>,
    Extension(failures): Extension<Arc<guard::FailureGuard>>,
    req: Request,
    next: Next,
) -> Response {
    let attempt = guard::Attempt::of(&req);
    let ip = attempt.addr.map(|a| a.ip());
    let method = req.method().clone();
    let route = attempt.route.clone();
    let token = bearer(&req);
    let cookie = if token.is_none() {
        session_cookie(req.headers())
    } else {
        None
    };
    let found = {
        let node = node.clone();
        tokio::task::spawn_blocking(move || principal_of(&node, token, cookie)).await
    };
    let principal = match found {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            if e.status() == StatusCode::UNAUTHORIZED {
                failures.failed(ip);
                guard::record_refusal(node, None, &attempt, 401, e.message()).await;
            }
            return e.into_response();
        }
        Err(e) => {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot check the credentials: {e}"),
            )
            .into_response();
        }
    };
    if let Principal::User {
        credential: Credential::Session { csrf_token },
        ..
    } = &principal
        && method != Method::GET
        && method != Method::HEAD
    {
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let same =
            sent.len() == csrf_token.len() && subtle_eq(sent.as_bytes(), csrf_token.as_bytes());
        if !same {
            let why = format!(
                "missing or wrong CSRF token: a request signed in with a session must send the session's csrf_token in the {CSRF_HEADER} header"
            );
            guard::record_refusal(node, Some(principal.actor()), &attempt, 403, &why).await;
            return ApiError::new(StatusCode::FORBIDDEN, why).into_response();
        }
    }
    let route_in_api = route.strip_prefix("/api/v1").unwrap_or(&route);
    let needed = access::required(method.as_str(), route_in_api);
    if !principal.permissions().contains(&needed) {
        let why = format!(
            "{method} {route_in_api} needs the '{}' permission, which {} ({}) does not have",
            needed.as_str(),
            principal.actor(),
            principal.role_names().join(", ")
        );
        guard::record_refusal(node, Some(principal.actor()), &attempt, 403, &why).await;
        return ApiError::new(StatusCode::FORBIDDEN, why).into_response();
    }
    // Handlers that record who acted (audit, queries) read the principal from here.
    let mut req = req;
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Constant-time equality of two byte strings of the same length.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who made an authenticated request, as audit records and query records name them
/// (`token:<name>` for a service-account token, `user:<name>` for a user). Set by the
/// authentication layer; `None` before it.
pub fn actor_of<B>(req: &axum::http::Request<B>) -> Option<String> {
    req.extensions().get::<Principal>().map(Principal::actor)
}

async fn health(State(node): State<Arc<Node>>) -> Json<api::Health> {
    Json(api::Health {
        party: node.party().as_str().to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        status: "ok".to_string(),
    })
}

async fn node_info(State(node): State<Arc<Node>>) -> ApiResult<api::NodeInfo> {
    let cfg = &node.dir().config;
    Ok(Json(api::NodeInfo {
        party: node.party().as_str().to_string(),
        federation_listen: cfg.federation_listen.to_string(),
        api_listen: cfg.api_listen.to_string(),
        auto_approve: cfg.auto_approve,
        peers: recast(node.partner_list()?)?,
        transport: format!("{:?}", node.transport().stats()),
    }))
}

/// Every component with its slots and the JSON Schema of its parameters (the console's job
/// builder draws its forms from it). Components this node's policy does not allow are marked.
async fn list_components(State(node): State<Arc<Node>>) -> ApiResult<Vec<api::Component>> {
    let mut all: Vec<api::Component> = recast(crate::components::describe_all())?;
    for c in &mut all {
        c.allowed = node.policy().allows_component(&c.name);
    }
    Ok(Json(all))
}

/// The job templates this binary ships, with their placeholders unfilled.
async fn list_templates() -> ApiResult<Vec<api::Template>> {
    Ok(Json(
        crate::templates::TEMPLATES
            .iter()
            .map(|t| api::Template {
                name: t.name.into(),
                title: api::Title {
                    en: t.title_en.into(),
                    zh: t.title_zh.into(),
                },
                description: t.description.into(),
                spec: t.spec.into(),
            })
            .collect(),
    ))
}

async fn list_datasets(State(node): State<Arc<Node>>) -> ApiResult<Vec<api::Dataset>> {
    blocking(move || recast(node.store().list_datasets()?)).await
}

/// Refuses names in the namespace of job outputs.
fn check_dataset_name(name: &str) -> Result<(), ApiError> {
    if ferry_store::is_derived_dataset_name(name) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "dataset name '{name}': names starting with 'job-' are reserved for the outputs \
                 of jobs; choose another name"
            ),
        ));
    }
    ferry_store::validate_name("dataset", name)?;
    Ok(())
}

/// What both registration routes take besides the file.
struct DatasetOptions {
    id_columns: Vec<String>,
    label: Option<String>,
    label_kind: Option<LabelKind>,
    description: String,
    replace: bool,
}

fn registration(name: &str, source: PathBuf, o: DatasetOptions) -> RegisterDataset {
    let mut req = RegisterDataset::new(name, source);
    req.id_columns = o.id_columns;
    req.label_kind = o.label_kind.unwrap_or(if o.label.is_some() {
        LabelKind::Binary
    } else {
        LabelKind::Continuous
    });
    req.label = o.label;
    req.description = o.description;
    req.replace = o.replace;
    req
}

async fn add_dataset(
    State(node): State<Arc<Node>>,
    Json(body): Json<api::RegisterDataset>,
) -> ApiResult<api::Dataset> {
    blocking(move || {
        check_dataset_name(&body.name)?;
        let dir = node.dir();
        let settings = DatasetImportSettings::load(dir)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
        let protected = crate::import::node_owned_paths(dir);
        let source = check_import_path_protecting(
            dir.root(),
            &protected,
            &settings.import_dirs,
            std::path::Path::new(&body.path),
        )
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e))?;
        let options = DatasetOptions {
            id_columns: body.id_columns,
            label: body.label,
            label_kind: body.label_kind.map(recast).transpose()?,
            description: body.description,
            replace: body.replace,
        };
        let rec = node
            .store()
            .register_dataset(registration(&body.name, source, options))?;
        node.queries().dataset_changed(&rec.name);
        node.serving().dataset_changed(&rec.name);
        recast(rec)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadParams {
    /// Comma separated.
    #[serde(default)]
    id_columns: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    label_kind: Option<LabelKind>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    replace: bool,
    /// The file's name on the user's machine (kept, made safe, as the stored file's name).
    #[serde(default)]
    file_name: Option<String>,
}

/// A single safe path component from a user's file name: the last component of what was
/// given, letters, digits, `.`, `_` and `-` (anything else becomes `_`), no leading dot, at most
/// [`MAX_UPLOAD_FILE_NAME`] characters keeping the extension; `upload` when nothing is left.
fn safe_file_name(given: Option<&str>) -> String {
    let last = given.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() {
        return "upload".to_string();
    }
    let chars: Vec<char> = cleaned.chars().collect();
    if chars.len() <= MAX_UPLOAD_FILE_NAME {
        return cleaned.to_string();
    }
    let ext: String = match cleaned.rfind('.') {
        Some(i) if cleaned.len() - i <= 16 => cleaned[i..].to_string(),
        _ => String::new(),
    };
    let keep = MAX_UPLOAD_FILE_NAME - ext.chars().count();
    chars[..keep].iter().collect::<String>() + &ext
}

/// An upload on disk: `<data dir>/uploads/.upload-<random>/<file name>`. The directory is
/// removed when this is dropped: after registration (the store keeps its own copy), on every
/// error, and when the client goes away in the middle (axum drops the handler).
struct TempUpload {
    dir: PathBuf,
    file: PathBuf,
}

impl TempUpload {
    async fn create(data_dir: &std::path::Path, file_name: &str) -> Result<TempUpload, ApiError> {
        use rand::RngExt;
        let parent = data_dir.join(UPLOAD_DIR);
        let io_err = |what: &str, p: &std::path::Path, e: std::io::Error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{what} {}: {e}", p.display()),
            )
        };
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(|e| io_err("cannot create", &parent, e))?;
        let suffix: u128 = rand::rng().random();
        let dir = parent.join(format!(".upload-{suffix:032x}"));
        let mut builder = tokio::fs::DirBuilder::new();
        #[cfg(unix)]
        builder.mode(0o700);
        builder
            .create(&dir)
            .await
            .map_err(|e| io_err("cannot create", &dir, e))?;
        let file = dir.join(file_name);
        Ok(TempUpload { dir, file })
    }
}

impl Drop for TempUpload {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove an upload's temporary files");
        }
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the upload is larger than {limit} bytes ({:.1} GiB), the most this node accepts in \
             one request; put larger files in an import directory ([datasets] import_dirs in \
             ferry.toml) and register them with `ferry dataset add NAME --server-path P`",
            limit as f64 / (1u64 << 30) as f64
        ),
    )
}

async fn upload_dataset(
    State(node): State<Arc<Node>>,
    Extension(limits): Extension<ApiLimits>,
    Path(name): Path<String>,
    Query(q): Query<UploadParams>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<api::Dataset> {
    use futures_util::StreamExt;
    check_dataset_name(&name)?;
    let limit = limits.max_upload_bytes;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    // Refuse a name that is taken before receiving the file (the store checks again).
    if !q.replace {
        let store = node.store().clone();
        let taken_name = name.clone();
        let taken = tokio::task::spawn_blocking(move || store.dataset(&taken_name).is_ok())
            .await
            .unwrap_or(false);
        if taken {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("dataset '{name}' already exists (replace it with replace=true)"),
            ));
        }
    }
    let file_name = safe_file_name(q.file_name.as_deref());
    let upload = TempUpload::create(node.store().data_dir(), &file_name).await?;
    let write_err = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the upload to {}: {e}", upload.file.display()),
        )
    };
    // The file is written on a blocking thread through the store's seam, so that on a node
    // that encrypts its files at rest the upload is sealed from its first byte.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<axum::body::Bytes>(8);
    let files = node.store().data_files().clone();
    let path = upload.file.clone();
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = std::io::BufWriter::with_capacity(1 << 16, opts.open(&path)?);
        let mut out = files.writer(file).map_err(std::io::Error::other)?;
        while let Some(chunk) = rx.blocking_recv() {
            out.write_all(&chunk)?;
        }
        out.finish()?.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    });
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    let receiving = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("the upload was interrupted after {received} bytes: {e}"),
                )
            })?;
            received = received.saturating_add(chunk.len() as u64);
            if received > limit {
                return Err(too_large(limit));
            }
            if tx.send(chunk).await.is_err() {
                // The writer stopped: its error is reported below.
                break;
            }
        }
        Ok(())
    }
    .await;
    // The writer is done with the file before anything returns (and the directory goes).
    drop(tx);
    let written = writer.await;
    receiving?;
    written
        .map_err(|e| write_err(std::io::Error::other(e)))?
        .map_err(write_err)?;
    if received == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the upload is empty: send the file's bytes as the request body".into(),
        ));
    }
    let ids = q.id_columns.unwrap_or_default();
    let options = DatasetOptions {
        id_columns: ids
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect(),
        label: q.label.filter(|l| !l.is_empty()),
        label_kind: q.label_kind,
        description: q.description,
        replace: q.replace,
    };
    blocking(move || {
        // Dropped at the end of this closure: the temporary file goes once the store has its copy.
        let upload = upload;
        let req = registration(&name, upload.file.clone(), options);
        let rec = node.store().register_dataset(req).map_err(|e| {
            // Errors name the uploaded file as the user knows it, not its temporary path.
            let error = ApiError::from(e);
            let shown = format!("upload '{file_name}'");
            let message = error
                .message()
                .replace(&upload.file.display().to_string(), &shown);
            ApiError { message, ..error }
        })?;
        node.queries().dataset_changed(&rec.name);
        node.serving().dataset_changed(&rec.name);
        recast(rec)
    })
    .await
}

async fn show_dataset(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> ApiResult<api::DatasetDetail> {
    blocking(move || {
        let store = node.store();
        Ok(api::DatasetDetail {
            dataset: recast(store.dataset(&name)?)?,
            stats: recast(store.describe_dataset(&name)?)?,
            grants: recast(store.grants(&name)?)?,
        })
    })
    .await
}

async fn delete_dataset(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> ApiResult<api::Deleted> {
    blocking(move || {
        node.store().delete_dataset(&name)?;
        Ok(api::Deleted { deleted: name })
    })
    .await
}

fn grant_target(body: api::GrantBody) -> Result<GrantTarget, ApiError> {
    match (body.party, body.job, body.project) {
        (Some(p), None, None) => Ok(GrantTarget::Party(p)),
        (None, Some(j), None) => Ok(GrantTarget::Job(j)),
        (None, None, Some(p)) => Ok(GrantTarget::Project(p)),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "give exactly one of 'party', 'job' or 'project'".into(),
        )),
    }
}

async fn grant(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(body): Json<api::GrantBody>,
) -> ApiResult<api::GrantChange> {
    blocking(move || {
        let target = grant_target(body)?;
        node.store().grant(&name, target.clone())?;
        Ok(api::GrantChange {
            dataset: name,
            granted: Some(recast(target)?),
            revoked: None,
        })
    })
    .await
}

async fn revoke(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(body): Json<api::GrantBody>,
) -> ApiResult<api::GrantChange> {
    blocking(move || {
        let target = grant_target(body)?;
        node.store().revoke_grant(&name, &target)?;
        Ok(api::GrantChange {
            dataset: name,
            granted: None,
            revoked: Some(recast(target)?),
        })
    })
    .await
}

async fn list_jobs(State(node): State<Arc<Node>>) -> ApiResult<Vec<api::JobSummary>> {
    blocking(move || {
        node.store()
            .list_jobs()?
            .into_iter()
            .map(|j| {
                let spec = serde_json::from_str::<Value>(&j.spec_json).ok();
                let text = |k: &str| {
                    spec.as_ref()
                        .and_then(|s| s.get(k))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                Ok(api::JobSummary {
                    name: text("name"),
                    project: text("project"),
                    status: recast(j.status)?,
                    id: j.id,
                    initiator: j.initiator,
                    role: j.my_role,
                    reason: j.reason,
                    created_at: j.created_at,
                    updated_at: j.updated_at,
                })
            })
            .collect()
    })
    .await
}

async fn submit_job(
    State(node): State<Arc<Node>>,
    Extension(principal): Extension<Principal>,
    body: String,
) -> ApiResult {
    blocking(move || {
        let id = node.submit_as(&job_validate::spec_text(body), &principal.actor())?;
        Ok(json!({"job_id": id}))
    })
    .await
}

async fn show_job(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<api::JobDetail> {
    blocking(move || {
        let store = node.store();
        let job = store.job(&id)?;
        let tasks = job_tasks(&node, &job)?;
        let parties = store
            .party_statuses(&id)?
            .into_iter()
            .map(|(party, status, reason)| {
                Ok(api::PartyStatus {
                    party,
                    status: recast(status)?,
                    reason,
                })
            })
            .collect::<Result<_, ApiError>>()?;
        let spec: Value = serde_json::from_str(&job.spec_json).unwrap_or(Value::Null);
        Ok(api::JobDetail {
            tasks,
            parties,
            files: node.job_dir(&id).ok().map(|p| p.display().to_string()),
            security: node.security_view(&id).unwrap_or_default(),
            schedule: store.schedule_of_job(&id).ok().flatten(),
            job: api::JobInfo {
                status: recast(job.status)?,
                id: job.id,
                initiator: job.initiator,
                role: job.my_role,
                reason: job.reason,
                created_at: job.created_at,
                updated_at: job.updated_at,
                spec,
            },
        })
    })
    .await
}

/// A job's tasks in the order the task graph runs them, each with the tasks it reads from.
pub(crate) fn job_tasks(
    node: &Node,
    job: &ferry_store::JobRow,
) -> Result<Vec<api::Task>, ApiError> {
    let spec = crate::dsl::JobSpec::parse(&job.spec_json).ok();
    let order = spec.as_ref().and_then(|s| s.topological_order().ok());
    let mut tasks = node.store().tasks(&job.id)?;
    if let Some(order) = &order {
        tasks.sort_by_key(|t| {
            order
                .iter()
                .position(|n| *n == t.task)
                .unwrap_or(usize::MAX)
        });
    }
    tasks
        .into_iter()
        .map(|t| {
            // An input names `task` or `task.output`.
            let mut depends_on: Vec<String> = spec
                .as_ref()
                .and_then(|s| s.tasks.iter().find(|d| d.name == t.task))
                .map(|d| {
                    d.inputs
                        .values()
                        .map(|r| r.split('.').next().unwrap_or(r).to_string())
                        .collect()
                })
                .unwrap_or_default();
            depends_on.sort();
            depends_on.dedup();
            Ok(api::Task {
                status: recast(t.status)?,
                job_id: t.job_id,
                task: t.task,
                progress: t.progress,
                error: t.error,
                outputs: t.outputs,
                updated_at: t.updated_at,
                depends_on,
            })
        })
        .collect()
}

async fn job_logs(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Vec<api::LogLine>> {
    blocking(move || {
        node.store().job(&id)?;
        recast(node.store().logs(&id, q.get("task").map(String::as_str))?)
    })
    .await
}

async fn job_metrics(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Vec<api::Metric>> {
    blocking(move || {
        node.store().job(&id)?;
        let rows = node
            .store()
            .metrics(&id, q.get("task").map(String::as_str))?;
        // NaN is not JSON; report it as null.
        Ok(rows
            .into_iter()
            .map(|m| api::Metric {
                task: m.task,
                name: m.name,
                step: m.step,
                value: m.value.is_finite().then_some(m.value),
                at: m.at,
            })
            .collect())
    })
    .await
}

async fn job_audit(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<Vec<api::MessageAudit>> {
    blocking(move || {
        node.store().job(&id)?;
        recast(node.store().audit(&id)?)
    })
    .await
}

async fn list_projects(State(node): State<Arc<Node>>) -> ApiResult<Vec<api::Project>> {
    blocking(move || recast(node.store().list_projects()?)).await
}

async fn create_project(
    State(node): State<Arc<Node>>,
    Json(body): Json<api::NewProject>,
) -> ApiResult<api::Project> {
    blocking(move || {
        let record = node.create_project(&body.name, &body.description, &body.partners)?;
        recast(record)
    })
    .await
}

async fn show_project(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> ApiResult<api::ProjectDetail> {
    blocking(move || recast(node.project_view(&name)?)).await
}

async fn approve_project(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> ApiResult<api::ProjectDecision> {
    blocking(move || {
        node.approve_project(&name)?;
        Ok(api::ProjectDecision {
            project: name,
            joined: Some(true),
            declined: None,
        })
    })
    .await
}

async fn decline_project(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    body: Option<Json<Value>>,
) -> ApiResult<api::ProjectDecision> {
    blocking(move || {
        let reason = reason_in(body.as_deref(), "");
        node.decline_project(&name, &reason)?;
        Ok(api::ProjectDecision {
            project: name,
            joined: None,
            declined: Some(true),
        })
    })
    .await
}

async fn list_partners(State(node): State<Arc<Node>>) -> ApiResult<Vec<api::Partner>> {
    blocking(move || recast(node.partner_list()?)).await
}

async fn add_partner(
    State(node): State<Arc<Node>>,
    Json(body): Json<api::AddPartner>,
) -> ApiResult<api::Partner> {
    blocking(move || {
        node.add_partner(&body.name, &body.addr, &body.cert_pem)?;
        // The partner as the list shows it (pinned, fingerprint), as rotating answers.
        let view = node
            .partner_list()?
            .into_iter()
            .find(|p| p.name == body.name)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("partner '{}' was added but is not listed", body.name),
                )
            })?;
        recast(view)
    })
    .await
}

async fn rotate_partner(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(body): Json<api::RotatePartner>,
) -> ApiResult<api::Partner> {
    blocking(move || {
        node.rotate_partner(
            &name,
            &body.cert_pem,
            body.overlap_hours,
            body.addr.as_deref(),
        )?;
        let view = node
            .partner_list()?
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no partner '{name}'")))?;
        recast(view)
    })
    .await
}

async fn remove_partner(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    body: Option<Json<Value>>,
) -> ApiResult<api::PartnerRemoved> {
    blocking(move || {
        let reason = reason_in(body.as_deref(), "");
        if !node.partner_list()?.iter().any(|p| p.name == name) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("'{name}' is not a partner of this node"),
            ));
        }
        let (entry, cancelled) = node.remove_partner(&name, &reason)?;
        Ok(api::PartnerRemoved {
            removed: entry.name.as_str().to_string(),
            fingerprint: entry.fingerprint.to_string(),
            cancelled_jobs: cancelled,
        })
    })
    .await
}

/// The `reason` of a decision's JSON body, or `default` when there is none.
fn reason_in(body: Option<&Value>, default: &str) -> String {
    body.and_then(|b| b.get("reason"))
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_string()
}

async fn list_approvals(State(node): State<Arc<Node>>) -> ApiResult<Vec<api::Approval>> {
    blocking(move || recast(node.pending_approvals()?)).await
}

async fn reject_job(
    State(node): State<Arc<Node>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<api::Rejected> {
    blocking(move || {
        let reason = reason_in(Some(&body), "");
        // A partner's schedule waits in the same to-do list and is decided the same way.
        if id.starts_with(ferry_store::SCHEDULE_ID_PREFIX) {
            node.reject_schedule(&id, &reason)?;
        } else if id.starts_with(crate::serving::DEPLOYMENT_PREFIX) {
            node.reject_deployment(&id, &reason)?;
        } else {
            node.reject_as(&id, &reason, &principal.actor())?;
        }
        Ok(api::Rejected {
            job_id: id,
            rejected: reason,
        })
    })
    .await
}

async fn approve_job(
    State(node): State<Arc<Node>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<api::Approved> {
    blocking(move || {
        if id.starts_with(ferry_store::SCHEDULE_ID_PREFIX) {
            node.approve_schedule(&id)?;
        } else if id.starts_with(crate::serving::DEPLOYMENT_PREFIX) {
            node.approve_deployment(&id, None, &principal.actor())?;
        } else {
            node.approve_as(&id, &principal.actor())?;
        }
        Ok(api::Approved { approved: id })
    })
    .await
}

async fn cancel_job(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    body: Option<Json<Value>>,
) -> ApiResult<api::Cancelled> {
    blocking(move || {
        let reason = reason_in(body.as_deref(), "by a user");
        node.cancel(&id, &reason)?;
        Ok(api::Cancelled { cancelled: id })
    })
    .await
}

async fn rerun_job(
    State(node): State<Arc<Node>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<api::Rerun> {
    blocking(move || {
        let from = body.get("from").and_then(Value::as_str).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "give 'from': the first task to run again".into(),
            )
        })?;
        let new_id = node.rerun_as(&id, from, &principal.actor())?;
        Ok(api::Rerun {
            job_id: new_id,
            rerun_of: id,
            from: from.to_string(),
        })
    })
    .await
}

/// A failed or cancelled job continued from its interrupted training task's checkpoints (a
/// re-run from that task; partners approve it as such).
async fn resume_job(
    State(node): State<Arc<Node>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<api::Resumed> {
    blocking(move || {
        let (new_id, task) = node.resume_as(&id, &principal.actor())?;
        Ok(api::Resumed {
            job_id: new_id,
            resume_of: id,
            task,
        })
    })
    .await
}

async fn list_models(State(node): State<Arc<Node>>) -> ApiResult<Vec<api::Model>> {
    blocking(move || recast(node.store().list_models()?)).await
}

fn version(q: &HashMap<String, String>) -> Result<Option<u32>, ApiError> {
    q.get("version")
        .map(|v| {
            v.parse::<u32>().map_err(|_| {
                ApiError::new(
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
) -> ApiResult<api::ModelDetail> {
    blocking(move || {
        // Loading checks the content hash and the signature; a tampered model is refused here too.
        let (record, payload) = node.store().load_model(&name, version(&q)?)?;
        Ok(api::ModelDetail {
            model: recast(record)?,
            verified: true,
            payload_bytes: payload.len() as u64,
        })
    })
    .await
}

async fn delete_model(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<api::Deleted> {
    blocking(move || {
        node.store().delete_model(&name, version(&q)?)?;
        Ok(api::Deleted { deleted: name })
    })
    .await
}

async fn list_tokens(State(node): State<Arc<Node>>) -> ApiResult<Vec<api::Token>> {
    blocking(move || recast(node.store().list_tokens()?)).await
}

async fn create_token(
    State(node): State<Arc<Node>>,
    Json(body): Json<Value>,
) -> ApiResult<api::CreatedToken> {
    blocking(move || {
        let name = body.get("name").and_then(Value::as_str).ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, "give the token a 'name'".into())
        })?;
        let role: TokenRole = match body.get("role").and_then(Value::as_str) {
            None => TokenRole::User,
            Some(r) => r.parse().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("unknown role '{r}' (admin, user, read_only)"),
                )
            })?,
        };
        let owner = body.get("user").and_then(Value::as_str);
        if let Some(user) = owner {
            // A personal token acts as its user: the user must exist and be active.
            let u = node.store().user(user)?;
            if u.disabled_at.is_some() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("user '{user}' is disabled"),
                ));
            }
        }
        let (info, secret) = node.store().create_token(name, role)?;
        if let Some(user) = owner {
            node.store().set_token_owner(name, user)?;
        }
        Ok(api::CreatedToken {
            token: recast(info)?,
            user: owner.map(str::to_string),
            secret,
        })
    })
    .await
}

async fn revoke_token(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> ApiResult<api::TokenRevoked> {
    blocking(move || {
        node.store().revoke_token(&name)?;
        Ok(api::TokenRevoked { revoked: name })
    })
    .await
}

// ------------------------------------------------------------------------------------------
// Users and sessions.

fn user_settings(node: &Node) -> Result<access::UserSettings, ApiError> {
    access::UserSettings::from_config(&node.dir().config.other)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
}

fn roles_of(body: &Value) -> Result<Vec<UserRole>, ApiError> {
    let roles: Vec<String> = match body.get("roles") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "give 'roles': a list of admin, data_steward, modeller, approver, auditor".into(),
            ));
        }
    };
    access::parse_roles(&roles.join(",")).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))
}

fn password_of(body: &Value) -> Result<String, ApiError> {
    body.get("password")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "give a 'password'".into()))
}

async fn list_users(State(node): State<Arc<Node>>) -> ApiResult<Vec<api::User>> {
    blocking(move || recast(node.store().list_users()?)).await
}

async fn add_user(State(node): State<Arc<Node>>, Json(body): Json<Value>) -> ApiResult {
    blocking(move || {
        let name = body.get("name").and_then(Value::as_str).ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, "give the user a 'name'".into())
        })?;
        let roles = roles_of(&body)?;
        user_settings(&node)?
            .check_roles(&roles)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
        to_json(
            node.store()
                .create_user(name, &roles, &password_of(&body)?)?,
        )
    })
    .await
}

async fn set_user_roles(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    blocking(move || {
        let roles = roles_of(&body)?;
        user_settings(&node)?
            .check_roles(&roles)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
        to_json(node.store().set_user_roles(&name, &roles)?)
    })
    .await
}

async fn set_user_password(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<api::PasswordChanged> {
    blocking(move || {
        node.store()
            .set_user_password(&name, &password_of(&body)?)?;
        Ok(api::PasswordChanged {
            user: name,
            password: "changed; the user's sessions ended".into(),
        })
    })
    .await
}

async fn disable_user(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> ApiResult<api::UserDisabled> {
    blocking(move || {
        node.store().disable_user(&name)?;
        Ok(api::UserDisabled { disabled: name })
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    name: String,
    password: String,
}

/// Signs a user in: a session cookie (HttpOnly, SameSite=Strict, Secure unless `[users]
/// secure_cookies = false`) and, in the body, the CSRF token to echo on state-changing requests.
async fn sign_in(
    State(node): State<Arc<Node>>,
    Extension(failures): Extension<Arc<guard::FailureGuard>>,
    connect: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    Json(body): Json<SignIn>,
) -> Result<Response, ApiError> {
    // A locked-out address never gets here (guard::lockout): it costs no Argon2 hash.
    let ip = connect.map(|c| c.0.0.ip());
    let answer = tokio::task::spawn_blocking(
        move || -> Result<(String, api::Session, access::UserSettings), ApiError> {
            let settings = user_settings(&node)?;
            let Some(user) = node.store().check_password(&body.name, &body.password)? else {
                tracing::warn!("refused a sign-in as '{}'", body.name.escape_debug());
                failures.failed(ip);
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "wrong user name or password".into(),
                ));
            };
            failures.succeeded(ip);
            let ttl = std::time::Duration::from_secs(settings.session_hours * 3600);
            let (secret, session) = node.store().create_session(&user.name, ttl)?;
            Ok((secret, recast(session)?, settings))
        },
    )
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let (secret, session, settings) = answer;
    let cookie = format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        settings.session_hours * 3600,
        if settings.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    Ok(([(axum::http::header::SET_COOKIE, cookie)], Json(session)).into_response())
}

/// Who the caller is; a session also gets its CSRF token back, so that a console that reloads
/// (and lost the sign-in answer) can keep sending `X-CSRF-Token`. The token is no secret from
/// the session's own holder, and a cross-site page cannot read this answer (same-origin policy).
async fn who_am_i(Extension(principal): Extension<Principal>) -> ApiResult<api::WhoAmI> {
    let permissions = principal
        .permissions()
        .into_iter()
        .map(|p| p.as_str().to_string())
        .collect();
    let csrf_token = match &principal {
        Principal::User {
            credential: Credential::Session { csrf_token },
            ..
        } => Some(csrf_token.clone()),
        _ => None,
    };
    Ok(Json(api::WhoAmI {
        actor: principal.actor(),
        roles: principal.role_names(),
        permissions,
        csrf_token,
    }))
}

async fn sign_out(State(node): State<Arc<Node>>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(secret) = session_cookie(&headers) {
        let store = node.store().clone();
        tokio::task::spawn_blocking(move || store.end_session(&secret))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    }
    let expired = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok((
        [(axum::http::header::SET_COOKIE, expired)],
        Json(api::SignedOut { signed_out: true }),
    )
        .into_response())
}

// ------------------------------------------------------------------------------------------
// Anonymous query: provider's services and querier's queries.

async fn list_query_services(State(node): State<Arc<Node>>) -> ApiResult<Vec<api::QueryService>> {
    blocking(move || recast(node.store().list_query_services()?)).await
}

async fn publish_query_service(
    State(node): State<Arc<Node>>,
    Json(body): Json<api::PublishQueryService>,
) -> ApiResult<api::QueryService> {
    blocking(move || {
        let new = NewQueryService {
            name: body.name,
            dataset: body.dataset,
            key_columns: body.key_columns,
            value_columns: body.value_columns,
            description: body.description,
        };
        recast(node.queries().publish(new, body.wait)?)
    })
    .await
}

async fn show_query_service(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> ApiResult<api::QueryServiceDetail> {
    blocking(move || recast(node.queries().show(&name)?)).await
}

async fn delete_query_service(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> ApiResult<api::Deleted> {
    blocking(move || {
        node.queries().delete(&name)?;
        Ok(api::Deleted { deleted: name })
    })
    .await
}

async fn refresh_query_service(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<api::QueryService> {
    let wait = q.get("wait").is_some_and(|w| w == "true" || w == "1");
    blocking(move || recast(node.queries().refresh(&name, wait)?)).await
}

async fn run_query(
    State(node): State<Arc<Node>>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<api::RunQuery>,
) -> ApiResult<api::QueryResult> {
    blocking(move || {
        let ids = body
            .ids
            .into_iter()
            .map(|id| match id {
                api::QueryId::One(cell) => vec![cell],
                api::QueryId::Many(cells) => cells,
            })
            .collect();
        let requested_by = principal.actor();
        recast(node.run_query(&body.provider, &body.service, ids, &requested_by)?)
    })
    .await
}

async fn list_queries(State(node): State<Arc<Node>>) -> ApiResult<Vec<api::QueryRecord>> {
    blocking(move || recast(node.store().list_queries()?)).await
}

async fn show_query(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<api::QueryRecord> {
    blocking(move || recast(node.store().query(&id)?)).await
}

async fn query_result(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let text = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let record = node.store().query(&id)?;
        let Some(file) = record.result_file else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "query {id} has no result ({}{})",
                    record.status.as_str(),
                    record.error.map(|e| format!(": {e}")).unwrap_or_default()
                ),
            ));
        };
        let path = node.store().data_path(&file);
        node.store().read_file_plain(&path).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the result of query {id}: {e}"),
            )
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        text,
    )
        .into_response())
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
    // The client's address reaches the action log through `ConnectInfo`.
    let app = router(node).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| NodeError::Invalid(format!("API server stopped: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_file_names_become_one_safe_component() {
        assert_eq!(safe_file_name(Some("data.csv")), "data.csv");
        assert_eq!(safe_file_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(safe_file_name(Some("C:\\data\\x.parquet")), "x.parquet");
        assert_eq!(safe_file_name(Some("..")), "upload");
        assert_eq!(safe_file_name(Some(".hidden.csv")), "hidden.csv");
        assert_eq!(safe_file_name(Some("a b;$(x).csv")), "a_b___x_.csv");
        assert_eq!(safe_file_name(None), "upload");
        let long = format!("{}.csv", "x".repeat(300));
        let short = safe_file_name(Some(&long));
        assert_eq!(short.chars().count(), MAX_UPLOAD_FILE_NAME);
        assert!(short.ends_with(".csv"));
    }
}
