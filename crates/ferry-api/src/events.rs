//! The live updates of `GET /api/v1/events` (server-sent events). Each SSE message has an
//! `event:` name (`job` or `service`) and one of these as its JSON `data:`.

use crate::types::{JobStatus, PartyStatus, ServiceStatus, TaskStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// SSE event name of a [`JobEvent`].
pub const JOB_EVENT: &str = "job";
/// SSE event name of a [`ServiceEvent`].
pub const SERVICE_EVENT: &str = "service";

/// A task as a job event carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskState {
    pub task: String,
    pub status: TaskStatus,
    /// 0 to 1.
    pub progress: f64,
    pub error: Option<String>,
}

/// A job's whole current state, sent on connect and whenever the job, one of its tasks or one
/// of its parties changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobEvent {
    pub id: String,
    pub status: JobStatus,
    pub reason: Option<String>,
    pub updated_at: String,
    pub tasks: Vec<TaskState>,
    pub parties: Vec<PartyStatus>,
}

/// A model service's state and counters, sent on connect and when its status or counters
/// change (counters move with every prediction, so a busy service sends about one event per
/// poll interval: the throughput summary).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceEvent {
    pub name: String,
    pub status: ServiceStatus,
    pub reason: Option<String>,
    pub version: u32,
    /// Requests answered, ids scored and errors since deployment.
    pub requests: u64,
    pub ids: u64,
    pub errors: u64,
    pub last_request_at: Option<String>,
}
