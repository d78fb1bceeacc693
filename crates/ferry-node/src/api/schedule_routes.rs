//! The API of scheduled jobs ([`crate::schedules`]).
//!
//! | method | path | what |
//! |---|---|---|
//! | GET, POST | /api/v1/schedules?deleted=true | list (deleted ones too if asked); create `{spec, cron, name?, timezone?}` (`spec`: the job spec's YAML or JSON text; `timezone`: a fixed offset such as `+08:00`, UTC when absent) |
//! | GET, DELETE | /api/v1/schedules/{id} | the schedule, its next fire times and its runs; delete (guest) |
//! | POST | /api/v1/schedules/{id}/pause , /resume | guest |
//! | POST | /api/v1/schedules/{id}/approve , /reject `{reason}` , /revoke `{reason}` | partner (also `POST /api/v1/jobs/{id}/approve` and `/reject` with a schedule's id) |

use super::{ApiError, ApiResult, blocking, reason_in, recast};
use crate::access::Principal;
use crate::node::Node;
use crate::schedules::ScheduleRequest;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use ferry_api as api;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

pub(super) async fn create(
    State(node): State<Arc<Node>>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<api::NewSchedule>,
) -> ApiResult<api::Schedule> {
    blocking(move || {
        let record = node.create_schedule(&ScheduleRequest {
            spec: body.spec,
            cron: body.cron,
            name: body.name,
            timezone: body.timezone,
            actor: principal.actor(),
        })?;
        recast(record)
    })
    .await
}

pub(super) async fn list(
    State(node): State<Arc<Node>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Vec<api::Schedule>> {
    let deleted = match q.get("deleted").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("'deleted' = '{}': use true or false", other.escape_debug()),
            ));
        }
    };
    blocking(move || recast(node.list_schedules(deleted)?)).await
}

pub(super) async fn show(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<api::ScheduleDetail> {
    blocking(move || recast(node.schedule_view(&id)?)).await
}

pub(super) async fn pause(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<api::Schedule> {
    blocking(move || recast(node.pause_schedule(&id)?)).await
}

pub(super) async fn resume(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<api::Schedule> {
    blocking(move || recast(node.resume_schedule(&id)?)).await
}

pub(super) async fn delete(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<api::Schedule> {
    blocking(move || recast(node.delete_schedule(&id)?)).await
}

pub(super) async fn approve(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<api::Approved> {
    blocking(move || {
        node.approve_schedule(&id)?;
        Ok(api::Approved { approved: id })
    })
    .await
}

pub(super) async fn reject(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    body: Option<Json<Value>>,
) -> ApiResult<api::ScheduleRejected> {
    blocking(move || {
        let reason = reason_in(body.as_deref(), "");
        node.reject_schedule(&id, &reason)?;
        Ok(api::ScheduleRejected {
            schedule: id,
            rejected: reason,
        })
    })
    .await
}

pub(super) async fn revoke(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    body: Option<Json<Value>>,
) -> ApiResult<api::ScheduleRevoked> {
    blocking(move || {
        let reason = reason_in(body.as_deref(), "");
        node.revoke_schedule(&id, &reason)?;
        Ok(api::ScheduleRevoked {
            schedule: id,
            revoked: reason,
        })
    })
    .await
}
