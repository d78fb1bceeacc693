//! Requests and answers, route by route (the paths are under `/api/v1`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

// ------------------------------------------------------------------------------------------
// The node.

/// `GET /health` (no credentials).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    pub party: String,
    /// The `ferry` version the node runs.
    pub version: String,
    /// Always `ok` when the node answers.
    pub status: String,
}

/// `GET /node`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeInfo {
    pub party: String,
    pub federation_listen: String,
    pub api_listen: String,
    pub auto_approve: bool,
    /// The partners this node has pinned.
    pub peers: Vec<Partner>,
    /// The transport's counters, as text (for people).
    pub transport: String,
}

/// A partner (`GET /partners`, and the answer of adding or rotating one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Partner {
    pub name: String,
    /// Its federation address.
    pub addr: String,
    /// SHA-256 fingerprint of its pinned certificate.
    pub fingerprint: String,
    /// Whether the running transport has it pinned.
    pub pinned: bool,
    /// The certificate being rotated out, while the overlap lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<String>,
    /// Seconds since anything last came from the partner; `None` if nothing has since this
    /// node started.
    #[serde(default)]
    pub last_heard_secs: Option<f64>,
    /// Heard from within the liveness window (`[liveness] window_secs`) and not failing the
    /// node's keep-alive: idle partners are probed every `[liveness] heartbeat_secs`, so a
    /// reachable partner is connected with or without shared work.
    #[serde(default)]
    pub connected: bool,
    /// Why the last keep-alive probe failed (e.g. connection refused, certificate mismatch),
    /// while nothing has been heard from the partner since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable_error: Option<String>,
}

/// `POST /partners`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPartner {
    pub name: String,
    pub addr: String,
    pub cert_pem: String,
}

/// `POST /partners/{name}/rotate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotatePartner {
    pub cert_pem: String,
    /// How long the old certificate stays pinned beside the new one.
    #[serde(default)]
    pub overlap_hours: Option<f64>,
    #[serde(default)]
    pub addr: Option<String>,
}

/// `DELETE /partners/{name}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PartnerRemoved {
    pub removed: String,
    pub fingerprint: String,
    /// This node's unfinished jobs with the partner, cancelled by the removal.
    pub cancelled_jobs: Vec<String>,
}

/// The body of decisions that take an optional reason (`reject`, `cancel`, `decline`, removing
/// a partner, undeploying a service).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReasonBody {
    #[serde(default)]
    pub reason: Option<String>,
}

/// The answer of deleting a named object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Deleted {
    pub deleted: String,
}

// ------------------------------------------------------------------------------------------
// Datasets.

/// How a stored dataset file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    Csv,
    Parquet,
}

/// What a label column must contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LabelKind {
    /// 0 or 1.
    Binary,
    /// 0, 1, ..., k-1.
    Multiclass,
    /// Any finite number.
    Continuous,
}

/// A column's inferred type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Integer,
    Float,
    String,
    Bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub dtype: ColumnType,
    /// Some value is missing.
    pub nullable: bool,
}

/// Where a derived dataset came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DatasetLineage {
    pub job_id: String,
    pub task: String,
    #[serde(default)]
    pub inputs: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// A registered dataset (`GET /datasets` lists these; registering answers one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Dataset {
    /// Random 128-bit hex id.
    pub id: String,
    pub name: String,
    /// Path of the stored copy on the node's machine.
    pub path: String,
    pub format: DataFormat,
    pub id_columns: Vec<String>,
    pub label: Option<String>,
    /// Set exactly when `label` is.
    pub label_kind: Option<LabelKind>,
    pub columns: Vec<Column>,
    pub rows: u64,
    pub bytes: u64,
    /// SHA-256 (hex) of the stored file.
    pub sha256: String,
    pub created_at: String,
    pub description: String,
    pub lineage: Option<DatasetLineage>,
}

/// Percentiles of a numeric column.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Quantiles {
    pub p1: f64,
    pub p5: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p95: f64,
    pub p99: f64,
}

/// One column's statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ColumnStats {
    pub name: String,
    #[serde(rename = "type")]
    pub dtype: ColumnType,
    pub count: u64,
    pub missing: u64,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub quantiles: Option<Quantiles>,
    /// False when the quantiles come from a uniform sample.
    pub quantiles_exact: bool,
    pub distinct: u64,
    /// False when `distinct` is an estimate.
    pub distinct_exact: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DatasetStats {
    pub dataset: String,
    pub rows: u64,
    pub sha256: String,
    pub computed_at: String,
    pub columns: Vec<ColumnStats>,
}

/// Who may use a dataset in federated jobs: `{"party": P}` (any job), `{"job": J}` (any
/// partner in that job) or `{"project": P}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    Party(String),
    Job(String),
    Project(String),
}

/// `GET /datasets/{name}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DatasetDetail {
    pub dataset: Dataset,
    pub stats: DatasetStats,
    pub grants: Vec<Grant>,
}

/// `POST /datasets`: register a file already on the node's machine (under an import
/// directory).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterDataset {
    pub name: String,
    pub path: String,
    /// Empty: `id` if the header has it, else the first column.
    #[serde(default)]
    pub id_columns: Vec<String>,
    #[serde(default)]
    pub label: Option<String>,
    /// Default: `binary` with a label.
    #[serde(default)]
    pub label_kind: Option<LabelKind>,
    #[serde(default)]
    pub description: String,
    /// Replace a dataset of the same name instead of failing.
    #[serde(default)]
    pub replace: bool,
}

/// The query of `POST /datasets/{name}/upload` (the body is the file's bytes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    /// Comma separated.
    #[serde(default)]
    pub id_columns: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub label_kind: Option<LabelKind>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub replace: bool,
    /// The file's name on the user's machine.
    #[serde(default)]
    pub file_name: Option<String>,
}

/// `POST` and `DELETE /datasets/{name}/grants`: exactly one of the three.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// The answer of granting (`granted`) or revoking (`revoked`) a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GrantChange {
    pub dataset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted: Option<Grant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Grant>,
}

// ------------------------------------------------------------------------------------------
// Jobs.

/// A job's state on this node (or as a partner reported it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    PendingApproval,
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::PendingApproval => "pending_approval",
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Succeeded, failed or cancelled: nothing more will happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// A task's state within a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Skipped,
}

/// One job of `GET /jobs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobSummary {
    pub id: String,
    /// The spec's `name`, if it has one.
    pub name: Option<String>,
    /// The spec's `project`, if it names one.
    pub project: Option<String>,
    pub initiator: String,
    /// This node's role in the job.
    pub role: String,
    pub status: JobStatus,
    pub reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The job part of [`JobDetail`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobInfo {
    pub id: String,
    pub initiator: String,
    pub role: String,
    pub status: JobStatus,
    pub reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The job spec as submitted (see `ferry job` and the job DSL).
    pub spec: Value,
}

/// One task of a job, with its place in the task graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Task {
    pub job_id: String,
    pub task: String,
    pub status: TaskStatus,
    /// 0 to 1.
    pub progress: f64,
    pub error: Option<String>,
    /// What the task produced (dataset, model, metrics references), once it has.
    pub outputs: Option<Value>,
    pub updated_at: String,
    /// The tasks whose outputs this one reads (its edges in the graph).
    #[serde(default)]
    pub depends_on: Vec<String>,
}

/// A party's status in a job, as it reported it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PartyStatus {
    pub party: String,
    pub status: JobStatus,
    pub reason: Option<String>,
}

/// `GET /jobs/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobDetail {
    pub job: JobInfo,
    /// In the order the task graph runs them.
    pub tasks: Vec<Task>,
    pub parties: Vec<PartyStatus>,
    /// The job's directory on the node's machine.
    pub files: Option<String>,
    /// Every security-relevant setting, as the approval view lists them.
    pub security: Vec<String>,
    /// The schedule this job is a run of.
    pub schedule: Option<String>,
}

/// `POST /jobs` with a JSON body: the spec (YAML or JSON) as text. The body may also be the
/// spec itself, as YAML or JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    pub spec: String,
}

/// The answer of `POST /jobs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Submitted {
    pub job_id: String,
}

/// One line of `GET /jobs/{id}/logs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogLine {
    /// Order within the job, from 1.
    pub seq: u64,
    pub task: String,
    pub at: String,
    pub line: String,
}

/// One value of `GET /jobs/{id}/metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metric {
    pub task: String,
    pub name: String,
    pub step: u64,
    /// `null` when the value was not finite.
    pub value: Option<f64>,
    pub at: String,
}

/// One protocol message of `GET /jobs/{id}/audit` (sizes and tags, never content).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MessageAudit {
    pub job_id: String,
    pub task: String,
    /// `sent` or `received`.
    pub direction: String,
    pub peer: String,
    pub tag: String,
    pub bytes: u64,
    pub payload_type: String,
    pub at: String,
}

/// `POST /jobs/{id}/rerun`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RerunBody {
    /// The first task to run again.
    pub from: String,
}

/// The answer of `POST /jobs/{id}/approve`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Approved {
    pub approved: String,
}

/// The answer of `POST /jobs/{id}/reject`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Rejected {
    pub job_id: String,
    /// The reason given.
    pub rejected: String,
}

/// The answer of `POST /jobs/{id}/cancel`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cancelled {
    pub cancelled: String,
}

/// The answer of `POST /jobs/{id}/rerun`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Rerun {
    pub job_id: String,
    pub rerun_of: String,
    pub from: String,
}

/// The answer of `POST /jobs/{id}/resume`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resumed {
    pub job_id: String,
    pub resume_of: String,
    /// The training task it continues from.
    pub task: String,
}

/// One item of `GET /approvals`: what waits on a person of this node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Approval {
    /// `job`, `own_job`, `project`, `schedule` or `deployment`.
    pub kind: String,
    pub id: String,
    pub requested_by: String,
    pub requested_at: String,
    pub expires_at: String,
    /// Every security-relevant setting of the request.
    pub security: Vec<String>,
}

// ------------------------------------------------------------------------------------------
// Models.

/// Where a model came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelLineage {
    pub job_id: String,
    pub task: String,
    #[serde(default)]
    pub datasets: Vec<String>,
    /// Training parameters.
    #[serde(default)]
    pub params: Value,
}

/// One stored model version (`GET /models`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Model {
    pub name: String,
    pub version: u32,
    /// Algorithm, e.g. `hetero_secureboost`.
    pub kind: String,
    /// This party's role in the training job.
    pub role: String,
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    /// The node's signature over the model's statement (ECDSA P-256 hex, or `sm2:` + hex).
    pub signature: String,
    pub statement_version: u32,
    pub lineage: ModelLineage,
    pub metrics: Value,
    pub created_at: String,
}

/// `GET /models/{name}`: the record, after its hash and signature were checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelDetail {
    pub model: Model,
    /// Always true: a model that fails its check is answered `integrity_failed`.
    pub verified: bool,
    pub payload_bytes: u64,
}

// ------------------------------------------------------------------------------------------
// Model services.

/// Where a model service stands on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    PendingApproval,
    Active,
    Rejected,
    Failed,
    Undeployed,
}

/// A model service as this node records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Service {
    pub name: String,
    /// `guest` (answers predictions) or `host`.
    pub role: String,
    pub guest: String,
    pub deployment_id: String,
    pub model: String,
    /// The version that answers.
    pub version: u32,
    /// The version being loaded during a switch.
    pub pending_version: Option<u32>,
    pub kind: String,
    pub status: ServiceStatus,
    pub reason: Option<String>,
    pub dataset: Option<String>,
    /// The role's state (hosts and their decisions, the transform, timeouts).
    pub detail: Value,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub requests: u64,
    pub ids: u64,
    pub errors: u64,
    pub last_request_at: Option<String>,
}

/// `GET /services/{name}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceDetail {
    pub service: Service,
    /// Rows in this node's feature table (`null`: none loaded).
    pub table_rows: Option<u64>,
    /// What each party learns from a prediction.
    pub privacy: Vec<String>,
}

/// `POST /services`: deploy a model (guest).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    pub name: String,
    pub model: String,
    /// Default: the newest.
    #[serde(default)]
    pub version: Option<u32>,
    /// The guest's feature dataset (none: features come inline with each request).
    #[serde(default)]
    pub dataset: Option<String>,
    /// Per host, the dataset to propose.
    #[serde(default)]
    pub host_datasets: BTreeMap<String, String>,
    #[serde(default)]
    pub transform: Option<String>,
    #[serde(default)]
    pub transform_version: Option<u32>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Answer once the hosts decided, waiting at most this long (at most 120).
    #[serde(default)]
    pub wait_secs: Option<u64>,
}

/// `POST /services/{name}/switch`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchService {
    pub version: u32,
    #[serde(default)]
    pub wait_secs: Option<u64>,
}

/// `POST /services/{name}/approve` (host).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveService {
    /// The dataset this node feeds the service from (when the proposal named none).
    #[serde(default)]
    pub dataset: Option<String>,
}

/// `POST /services/{name}/predict`: `id` (with optional `features`) or `ids`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    /// The guest's features of `id` by column: numbers, text, `null` for missing.
    #[serde(default)]
    pub features: Option<serde_json::Map<String, Value>>,
}

/// One id's prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Prediction {
    pub id: String,
    /// Probability of class 1 (binary) or the value (regression); `null` for multi-class.
    pub score: Option<f64>,
    pub scores: Vec<f64>,
    pub class: Option<u64>,
    /// Why this id has no score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer of a prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PredictResponse {
    pub request_id: String,
    pub service: String,
    pub model: String,
    pub version: u32,
    pub predictions: Vec<Prediction>,
}

// ------------------------------------------------------------------------------------------
// Users, tokens, the session.

/// The roles of a named user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    Admin,
    DataSteward,
    Modeller,
    Approver,
    Auditor,
}

/// A user (never the password hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct User {
    pub name: String,
    pub roles: Vec<UserRole>,
    pub created_at: String,
    pub disabled_at: Option<String>,
}

/// `POST /users`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NewUser {
    pub name: String,
    /// A list of roles (one name is also accepted).
    pub roles: Vec<UserRole>,
    pub password: String,
}

/// `POST /users/{name}/roles`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetRoles {
    pub roles: Vec<UserRole>,
}

/// `POST /users/{name}/password`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetPassword {
    pub password: String,
}

/// The role of a service-account token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    Admin,
    User,
    ReadOnly,
}

/// A token (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Token {
    pub name: String,
    pub role: TokenRole,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// `POST /tokens`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NewToken {
    pub name: String,
    /// Default `user`.
    #[serde(default)]
    pub role: Option<TokenRole>,
    /// A personal token acting as this user.
    #[serde(default)]
    pub user: Option<String>,
}

/// The answer of `POST /tokens`: the secret is shown this once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreatedToken {
    pub token: Token,
    pub user: Option<String>,
    pub secret: String,
}

/// `POST /session`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub name: String,
    pub password: String,
}

/// The answer of signing in (the cookie comes in `Set-Cookie`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    pub user: User,
    /// Echo it in `X-CSRF-Token` on every state-changing request.
    pub csrf_token: String,
    pub expires_at: String,
}

/// `GET /session`: who the caller is and what it may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WhoAmI {
    /// `token:<name>` or `user:<name>`.
    pub actor: String,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    /// The session's CSRF token when the caller signed in with a session (a console that
    /// reloads reads it here); absent for a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// The answer of `DELETE /session`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignedOut {
    pub signed_out: bool,
}

// ------------------------------------------------------------------------------------------
// Scheduled jobs.

/// Where a schedule stands on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleStatus {
    PendingApproval,
    Active,
    Paused,
    Rejected,
    Revoked,
    Deleted,
}

/// A party's decision on a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleDecision {
    Pending,
    Approved,
    Rejected,
    Revoked,
}

/// One party of a schedule and its decision, as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleParty {
    pub party: String,
    pub decision: ScheduleDecision,
    pub reason: Option<String>,
    pub updated_at: String,
}

/// A scheduled job: a job spec and a cron expression (`GET /schedules`, and the answer of
/// creating, pausing, resuming or deleting one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Schedule {
    pub id: String,
    pub name: String,
    /// The job spec every run submits (canonical JSON text).
    pub spec_json: String,
    /// The five-field cron expression.
    pub cron: String,
    /// Fixed offset from UTC the expression is evaluated at, in minutes.
    pub utc_offset_minutes: i32,
    /// The party that created the schedule and submits its runs.
    pub guest: String,
    pub status: ScheduleStatus,
    pub reason: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// The next fire time (guest, while active).
    pub next_run: Option<String>,
    pub last_run: Option<String>,
    pub last_job_id: Option<String>,
    /// Runs submitted (guest) or received (partner).
    pub run_count: u64,
    pub parties: Vec<ScheduleParty>,
}

/// How a schedule's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Submitted,
    Skipped,
    Accepted,
    NeedsApproval,
    Refused,
}

/// One run of a schedule: a job, or a fire time that was skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleRun {
    pub seq: u64,
    /// The fire time (guest) or when the run's proposal arrived (partner).
    pub fire_time: String,
    pub job_id: Option<String>,
    pub outcome: RunOutcome,
    pub detail: Option<String>,
    /// The job's status on this node now.
    pub job_status: Option<String>,
    pub recorded_at: String,
}

/// `GET /schedules/{id}`: the schedule's fields, the clock it reads, this node's part, the
/// next fire times and every run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleDetail {
    #[serde(flatten)]
    pub schedule: Schedule,
    /// `UTC` or `UTC+08:00`.
    pub timezone: String,
    /// `guest` (this node submits the runs) or `partner`.
    pub role: String,
    pub upcoming: Vec<String>,
    pub runs: Vec<ScheduleRun>,
}

/// `POST /schedules`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// The job spec's YAML or JSON text.
    pub spec: String,
    pub cron: String,
    #[serde(default)]
    pub name: Option<String>,
    /// A fixed offset such as `+08:00`; UTC when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// The answer of `POST /schedules/{id}/reject`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleRejected {
    pub schedule: String,
    /// The reason given.
    pub rejected: String,
}

/// The answer of `POST /schedules/{id}/revoke`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleRevoked {
    pub schedule: String,
    /// The reason given.
    pub revoked: String,
}

// ------------------------------------------------------------------------------------------
// Anonymous query: a provider's query services, a querier's queries.

/// Where a query service's current table stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueryServiceStatus {
    Building,
    Ready,
    Failed,
}

/// A query service this node (the provider) offers over one of its datasets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueryService {
    pub name: String,
    pub dataset: String,
    pub key_columns: Vec<String>,
    pub value_columns: Vec<String>,
    pub description: String,
    pub status: QueryServiceStatus,
    pub error: Option<String>,
    /// Version of the table that serves (0: none built yet).
    pub version: u64,
    pub table_file: Option<String>,
    /// The PIR table's public id (hex).
    pub table_id: Option<String>,
    pub dataset_sha256: Option<String>,
    pub rows: u64,
    pub value_len: u64,
    pub built_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// What a query service served one partner: counts and times, nothing about the ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueryServiceUsage {
    pub partner: String,
    pub sessions: u64,
    pub ids: u64,
    pub last_served_at: String,
}

/// `GET /query-services/{name}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueryServiceDetail {
    pub service: QueryService,
    /// Parties holding a grant on the dataset: those that may query.
    pub partners: Vec<String>,
    pub usage: Vec<QueryServiceUsage>,
}

/// `POST /query-services`: publish a service (provider).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishQueryService {
    pub name: String,
    pub dataset: String,
    pub key_columns: Vec<String>,
    #[serde(default)]
    pub value_columns: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// Answer once the first table is built (or failed) instead of at once.
    #[serde(default)]
    pub wait: bool,
}

/// Where a querier's query stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueryStatus {
    Running,
    Succeeded,
    Failed,
}

/// A query this node ran against a partner's service (`GET /queries`, `/queries/{id}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueryRecord {
    pub id: String,
    pub provider: String,
    pub service: String,
    pub requested_by: String,
    pub ids: u64,
    pub found: u64,
    pub status: QueryStatus,
    pub error: Option<String>,
    pub table_id: Option<String>,
    pub table_rows: Option<u64>,
    pub hint_downloaded: bool,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub seconds: f64,
    /// The result CSV, relative to the data directory.
    pub result_file: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// An id as `POST /queries` takes it: one cell, or one cell per key column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum QueryId {
    One(String),
    Many(Vec<String>),
}

/// `POST /queries`: run a query against a partner's service (querier).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    pub provider: String,
    pub service: String,
    pub ids: Vec<QueryId>,
}

/// One id's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QueryAnswer {
    /// The id as asked (one cell per key column).
    pub key: Vec<String>,
    pub found: bool,
    /// One cell per value column (empty when not found).
    pub values: Vec<String>,
}

/// The answer of `POST /queries`, in the order the ids were asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueryResult {
    pub query: QueryRecord,
    pub key_columns: Vec<String>,
    pub value_columns: Vec<String>,
    pub answers: Vec<QueryAnswer>,
}

// ------------------------------------------------------------------------------------------
// The action log.

/// Whether a logged action succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionOutcome {
    Ok,
    Error,
}

/// One entry of the action log (`GET /audit`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ActionEntry {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub address: String,
    pub outcome: ActionOutcome,
    /// The HTTP status of an API action.
    pub status: Option<u16>,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// What kind of mismatch verification found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChainProblemKind {
    Missing,
    Modified,
    Unlinked,
    OutOfOrder,
    CheckpointMismatch,
    Truncated,
    /// A checkpoint of the node's own whose signature (or an SM2 one's key binding) does not
    /// verify with the node's key: it was forged or edited.
    BadSignature,
}

/// One mismatch, naming the first entry it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChainProblem {
    pub seq: u64,
    pub kind: ChainProblemKind,
    pub message: String,
}

/// `GET /audit/verify`: the hash chain and checkpoints checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChainReport {
    /// True when no problem was found.
    pub ok: bool,
    pub entries: u64,
    pub head_seq: Option<u64>,
    pub head_hash: Option<String>,
    pub checkpoints_checked: u64,
    pub last_matching_checkpoint: Option<u64>,
    pub first_problem: Option<ChainProblem>,
    pub problems: Vec<ChainProblem>,
    pub more_problems: u64,
}

/// The algorithm of a checkpoint's signature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CheckpointAlgorithm {
    /// ECDSA P-256 with SHA-256 by the node's identity key (the default suite, and every
    /// checkpoint from before SM2 checkpoints).
    #[default]
    EcdsaP256Sha256,
    /// SM2 with SM3 (GB/T 32918.2) by the node's SM2 key (the `gm` suite).
    Sm2Sm3,
}

/// An SM2 checkpoint's key and its binding to the node's identity key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Sm2KeyBinding {
    /// Hex uncompressed SEC1 SM2 public key (65 bytes).
    pub public_key: String,
    /// Hex ECDSA P-256 / SHA-256 signature by the node's identity key (the key of the TLS
    /// certificate partners pin) over "party P's SM2 checkpoint key is `public_key`".
    pub signature: String,
}

/// A signed statement of the log's head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Checkpoint {
    pub party: String,
    pub seq: u64,
    pub hash: String,
    pub signed_at: String,
    /// What `signature` is (absent: `ecdsa-p256-sha256`).
    #[serde(default)]
    pub algorithm: CheckpointAlgorithm,
    /// Hex: ASN.1 DER ECDSA, or SM2 `r ‖ s`.
    pub signature: String,
    /// With `sm2-sm3`: the SM2 public key and its key binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm2_key: Option<Sm2KeyBinding>,
}

/// A partner's checkpoint as this node received it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReceivedCheckpoint {
    #[serde(flatten)]
    pub checkpoint: Checkpoint,
    pub received_at: String,
}

/// `GET /audit/checkpoints?partner=`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Checkpoints {
    pub party: String,
    pub own: Vec<Checkpoint>,
    pub received: Vec<ReceivedCheckpoint>,
}

/// A checkpoint this node signed and the partners it was sent to (`POST /audit/checkpoint`
/// answers it, or `null` when the log is empty).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SentCheckpoint {
    pub checkpoint: Checkpoint,
    pub sent_to: Vec<String>,
}

// ------------------------------------------------------------------------------------------
// Projects.

/// Where a project's member stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Invited,
    Joined,
    Declined,
}

/// A member of a project, as this node records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProjectMember {
    pub party: String,
    pub status: MemberStatus,
    pub invited_at: String,
    /// When the member joined or declined.
    pub decided_at: Option<String>,
}

/// A project: a named group of partners (`GET /projects`, the answer of `POST /projects`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Project {
    pub name: String,
    pub description: String,
    /// The party whose node created the project.
    pub created_by: String,
    pub created_at: String,
    pub members: Vec<ProjectMember>,
}

/// A job that belongs to a project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProjectJob {
    pub id: String,
    pub initiator: String,
    pub status: String,
    pub created_at: String,
}

/// A model trained by a job of a project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProjectModel {
    pub name: String,
    pub version: u32,
    pub kind: String,
    pub job_id: String,
}

/// `GET /projects/{name}`: the project's fields, the datasets granted to it, its jobs and
/// models.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProjectDetail {
    #[serde(flatten)]
    pub project: Project,
    pub datasets: Vec<String>,
    pub jobs: Vec<ProjectJob>,
    pub models: Vec<ProjectModel>,
}

/// `POST /projects`: create a project and invite partners.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub partners: Vec<String>,
}

/// The answer of `POST /projects/{name}/approve` (`joined: true`) and `/decline`
/// (`declined: true`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProjectDecision {
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declined: Option<bool>,
}

// ------------------------------------------------------------------------------------------
// Components, templates, a service's request log.

/// An input or output slot of a component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ComponentSlot {
    pub name: String,
    /// The kind of artifact it carries (`data`, `model`, ...).
    pub kind: String,
    /// Inputs only: whether a job must connect it.
    pub required: bool,
}

/// One item of `GET /components`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Component {
    pub name: String,
    pub summary: String,
    pub inputs: Vec<ComponentSlot>,
    pub outputs: Vec<ComponentSlot>,
    /// The JSON Schema of its parameters (also `components.schemas.ComponentParams_<name>`
    /// of the OpenAPI document).
    pub params: Value,
    /// Whether this node's policy allows it.
    #[serde(default)]
    pub allowed: bool,
}

/// A title in English and Chinese.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Title {
    pub en: String,
    pub zh: String,
}

/// One item of `GET /templates`: a job template with its placeholders unfilled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Template {
    pub name: String,
    pub title: Title,
    pub description: String,
    /// The job spec with `{{guest}}`, `{{hosts}}`, `{{datasets}}` and `{{scheme}}`.
    pub spec: String,
}

/// One prediction request in a model service's log (`GET /services/{name}/requests`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceRequest {
    pub request_id: String,
    pub service: String,
    pub actor: String,
    pub ids: u64,
    /// `ok`, or the error.
    pub outcome: String,
    pub millis: f64,
    pub at: String,
}

// ------------------------------------------------------------------------------------------
// Tokens and users: the answers of revoking and changing.

/// The answer of `DELETE /tokens/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenRevoked {
    pub revoked: String,
}

/// The answer of `POST /users/{name}/password`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PasswordChanged {
    pub user: String,
    /// What happened, in words (the user's sessions ended).
    pub password: String,
}

/// The answer of `POST /users/{name}/disable`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UserDisabled {
    pub disabled: String,
}

// ------------------------------------------------------------------------------------------
// A job's privacy report.

/// `GET /jobs/{id}/privacy`: what each task of a job let each party learn, from this node's
/// records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PrivacyReport {
    pub job_id: String,
    pub job_name: Option<String>,
    /// The node whose records the byte counts are.
    pub party: String,
    pub status: String,
    pub parties: Vec<PartyRole>,
    pub tasks: Vec<TaskPrivacy>,
    /// This node's bytes per peer over every task.
    pub totals: Vec<PeerBytes>,
}

/// A party of a job and its role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PartyRole {
    pub party: String,
    pub role: String,
}

/// What the security documentation states about one protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProtocolStatement {
    pub protocol: String,
    pub statement: Option<String>,
}

/// One task of a privacy report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskPrivacy {
    pub task: String,
    pub component: String,
    /// The task's status on this node (`null` before it was scheduled here).
    pub status: Option<String>,
    /// `protocol`, `local` or `not_stated`.
    pub kind: String,
    pub protocols: Vec<ProtocolStatement>,
    pub disclosures: Vec<PartyDisclosure>,
    /// Settings that bear on privacy.
    pub settings: Vec<String>,
    /// What the task recorded about its privacy on this node (FedAvg: the DP accounting).
    pub recorded: Option<Value>,
    /// This node's bytes per peer in this task.
    pub bytes: Vec<PeerBytes>,
    pub notes: Vec<String>,
}

/// What one party learns from another in a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PartyDisclosure {
    pub from: String,
    pub from_role: String,
    pub to: String,
    pub to_role: String,
    pub what: String,
}

/// What this node exchanged with one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PeerBytes {
    pub peer: String,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_status_names_are_the_serialised_ones() {
        use JobStatus::*;
        for s in [
            PendingApproval,
            Queued,
            Running,
            Succeeded,
            Failed,
            Cancelled,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!(Cancelled.is_terminal() && !Running.is_terminal());
    }
}
