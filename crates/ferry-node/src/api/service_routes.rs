//! The API of model services ([`crate::serving`]).
//!
//! | method | path | what |
//! |---|---|---|
//! | GET, POST | /api/v1/services | list; deploy (guest) `{name, model, version?, dataset?, host_datasets?: {party: dataset}, transform?, transform_version?, timeout_ms?, wait_secs?}` |
//! | GET, DELETE | /api/v1/services/{name} | the service, its counters and privacy statement; undeploy `{reason?}` (guest: the service; host: this node's part) |
//! | POST | /api/v1/services/{name}/switch `{version, wait_secs?}` | guest: switch to another version (rollback: the same) |
//! | POST | /api/v1/services/{name}/approve `{dataset?}` , /reject `{reason}` | host: decide a partner's deployment (also `POST /api/v1/jobs/{deployment id}/approve`) |
//! | POST | /api/v1/services/{name}/predict `{id}` or `{ids: [...]}`, optionally `features` | guest: scores (502/504 naming a host that failed or timed out) |
//! | GET | /api/v1/services/{name}/requests?limit= | guest: the request log, newest first (who asked, how many ids, outcome, milliseconds) |
//!
//! Prediction needs only the `read` permission, so an application scores with a read-only
//! token; each request is in the guest's request log (not the action log, which would grow
//! by one hash-chained entry per scored request).

use super::{ApiError, ApiResult, blocking, reason_in, recast};
use crate::access::Principal;
use crate::node::Node;
use crate::serving::DeployRequest;
use crate::serving::online::{PredictError, PredictRequest};
use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use ferry_api as api;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Longest a deploy or switch request waits for the hosts.
const MAX_WAIT_SECS: u64 = 120;

pub(super) async fn deploy(
    State(node): State<Arc<Node>>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<Value>,
) -> ApiResult<api::Service> {
    // `DeployRequest` refuses unknown fields; `wait_secs` is taken out first.
    let mut body = body;
    let wait = body
        .as_object_mut()
        .and_then(|o| o.remove("wait_secs"))
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
        .min(MAX_WAIT_SECS);
    let request: DeployRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("deployment request: {e}")))?;
    blocking(move || {
        let rec = node.deploy_model(&request, &principal.actor())?;
        let deadline = std::time::Instant::now() + Duration::from_secs(wait);
        let mut rec = rec;
        while rec.status == ferry_store::ModelServiceStatus::PendingApproval
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
            rec = node.store().model_service(&rec.name)?;
        }
        recast(rec)
    })
    .await
}

pub(super) async fn list(State(node): State<Arc<Node>>) -> ApiResult<Vec<api::Service>> {
    blocking(move || recast(node.serving().list()?)).await
}

pub(super) async fn show(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> ApiResult<api::ServiceDetail> {
    blocking(move || recast(node.serving().show(&name)?)).await
}

pub(super) async fn undeploy(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    body: Option<Json<Value>>,
) -> ApiResult<api::Service> {
    blocking(move || {
        let reason = reason_in(body.as_deref(), "undeployed by a user");
        recast(node.undeploy_service(&name, &reason)?)
    })
    .await
}

pub(super) async fn switch(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(body): Json<api::SwitchService>,
) -> ApiResult<api::Service> {
    blocking(move || {
        let wait = Duration::from_secs(body.wait_secs.unwrap_or(30).min(MAX_WAIT_SECS));
        recast(node.switch_service(&name, body.version, wait)?)
    })
    .await
}

pub(super) async fn approve(
    State(node): State<Arc<Node>>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Option<Json<api::ApproveService>>,
) -> ApiResult<api::Service> {
    blocking(move || {
        let dataset = body.and_then(|b| b.0.dataset);
        recast(node.approve_deployment(&name, dataset.as_deref(), &principal.actor())?)
    })
    .await
}

pub(super) async fn reject(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    body: Option<Json<Value>>,
) -> ApiResult<api::Service> {
    blocking(move || {
        let reason = reason_in(body.as_deref(), "rejected by a user");
        recast(node.reject_deployment(&name, &reason)?)
    })
    .await
}

pub(super) async fn predict(
    State(node): State<Arc<Node>>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<PredictRequest>,
) -> ApiResult<api::PredictResponse> {
    blocking(move || {
        node.predict_online(&name, body, &principal.actor())
            .map_err(|e| {
                let status = match &e {
                    PredictError::NotFound(_) => StatusCode::NOT_FOUND,
                    PredictError::Invalid(_) => StatusCode::BAD_REQUEST,
                    PredictError::Unavailable(_) => StatusCode::CONFLICT,
                    PredictError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                    PredictError::Host { .. } => StatusCode::BAD_GATEWAY,
                    PredictError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                };
                ApiError::new(status, e.to_string())
            })
            .and_then(recast)
    })
    .await
}

/// Entries of the request log `GET /services/{name}/requests` answers when not told how many.
const DEFAULT_REQUEST_LOG_ENTRIES: u64 = 200;
/// The most it answers at once (the console draws latency over these).
const MAX_REQUEST_LOG_ENTRIES: u64 = 5000;

/// The guest's request log of a service, newest first (`?limit=`, default
/// [`DEFAULT_REQUEST_LOG_ENTRIES`], at most [`MAX_REQUEST_LOG_ENTRIES`]): who asked, how many
/// ids, the outcome and the time taken, never the ids or scores. The console plots latency
/// over time from it.
pub(super) async fn requests(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Vec<ferry_api::ServiceRequest>> {
    blocking(move || {
        let limit = match q.get("limit") {
            None => DEFAULT_REQUEST_LOG_ENTRIES,
            Some(v) => v.parse::<u64>().map_err(|_| {
                crate::node::NodeError::Invalid(format!(
                    "limit: expected a whole number of entries, got '{v}'"
                ))
            })?,
        };
        // Unknown services are a 404; `show` also writes out the counters and log entries
        // still in memory, so the answer includes the latest requests.
        node.serving().show(&name)?;
        super::recast(
            node.store()
                .service_requests(&name, limit.clamp(1, MAX_REQUEST_LOG_ENTRIES))?,
        )
    })
    .await
}
