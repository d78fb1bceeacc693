//! A running node: the store, the federation transport, the control plane that agrees on jobs
//! with partner nodes, and the scheduler that runs each job's tasks.
//!
//! # Job lifecycle across nodes
//! 1. The guest's user submits a job. The guest validates it, stores it as
//!    `pending_approval`, and sends `propose` to every partner (control session
//!    [`CONTROL_SESSION`]).
//! 2. Each partner validates the job on its side — the spec, that it plays a role in it, and
//!    that every dataset it is asked to read exists and is granted to the guest (or the job).
//!    It answers `reject` with the reason, or `accept` (at once with `auto_approve`, else after
//!    `ferry job approve`).
//! 3. When every partner accepted, the guest sends `start`; every node runs the DAG in the same
//!    topological order, one federated session per task (`<job>/<task>`).
//! 4. Every status change (running, succeeded, failed with its reason, cancelled) is sent to
//!    the other participants, so `ferry job status` shows every party on every node. A node
//!    that learns a partner failed stops its own run with that reason.
//!
//! Restart safety: when a node starts, every job it had left unfinished is marked failed
//! ("node restarted while the job was running") and the partners are told.

use crate::components::{Artifact, TaskEnv, run_task};
use crate::dsl::{JobSpec, SpecErrors};
use crate::policy::SecurityPolicy;
use ferry_context::{FederationError, Observer, PartyId, Role, Roster, Transcript, Transport};
use ferry_store::{AuditEntry, Direction, JobRow, JobStatus, Store, TaskStatus};
use ferry_transport::{
    FederationTransport, NodeDir, SessionAdmission, TransportConfig, session_context,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Session every node reads control messages from.
pub const CONTROL_SESSION: &str = "ferry-control";
/// Most job ids in one `StatusRequest` (a partner's request beyond it is ignored).
pub const MAX_STATUS_REQUEST_JOBS: usize = 500;
/// Who asks when the node's own API is not involved (tests, the node itself).
pub const LOCAL_ACTOR: &str = "local";
const CONTROL_TAG: &str = "control";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Spec(#[from] SpecErrors),
    #[error(transparent)]
    Store(#[from] ferry_store::StoreError),
    #[error(transparent)]
    Transport(#[from] ferry_transport::TransportError),
    #[error("{0}")]
    Invalid(String),
    #[error("no job {0} on this node")]
    NoSuchJob(String),
}

/// Control-plane messages between nodes (JSON, so operators can read captures).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// "I am alive": sent to each partner in a running job every `[liveness] heartbeat_secs`
    /// ([`crate::liveness`]); carries nothing, its arrival is what counts.
    Heartbeat,
    /// "How did these jobs end for you?": sent at start-up for jobs that ended here while
    /// this node still shows the recipient as not finished; answered with one `Status` each.
    StatusRequest {
        job_ids: Vec<String>,
    },
    Propose {
        job_id: String,
        spec_json: String,
        reuse: Option<Reuse>,
        /// The schedule this job is a run of ([`crate::schedules`]): a partner that approved
        /// the schedule accepts the run without a new approval if its spec is the approved one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schedule: Option<String>,
    },
    Accept {
        job_id: String,
    },
    Reject {
        job_id: String,
        reason: String,
    },
    Start {
        job_id: String,
    },
    Status {
        job_id: String,
        status: JobStatus,
        reason: Option<String>,
    },
    Cancel {
        job_id: String,
        reason: String,
    },
    /// A querier opens a session on one of the provider's query services ([`crate::query`]).
    QueryOpen {
        query_id: String,
        service: String,
    },
    /// The provider admitted the session; the PIR messages follow on `<query_id>/pir`.
    QueryReady {
        query_id: String,
        columns: crate::query::ServiceColumns,
    },
    QueryRefused {
        query_id: String,
        reason: String,
    },
    /// A signed checkpoint of the sender's action log ([`crate::audit`]).
    AuditCheckpoint {
        checkpoint: ferry_store::Checkpoint,
    },
    /// The sender created `project` and invites this node ([`crate::projects`]).
    ProjectInvite {
        project: String,
        description: String,
        members: Vec<String>,
    },
    /// The sender accepted the invitation to `project`.
    ProjectJoin {
        project: String,
    },
    /// The sender declined the invitation to `project` (or leaves it).
    ProjectDecline {
        project: String,
        reason: Option<String>,
    },
    /// The project's creator tells its joined members who is in it now.
    ProjectMembers {
        project: String,
        members: Vec<(String, ferry_store::MemberStatus)>,
    },
    /// The guest proposes a scheduled job to the spec's partners, once for all its runs
    /// ([`crate::schedules`]).
    ScheduleProposal {
        schedule: String,
        name: String,
        spec_json: String,
        cron: String,
        utc_offset_minutes: i32,
    },
    /// A partner's word on a schedule: approved, rejected or revoked (with the reason).
    ScheduleDecision {
        schedule: String,
        decision: ferry_store::PartyDecision,
        reason: Option<String>,
    },
    /// Deployment and online inference of model services ([`crate::serving`]).
    Serving {
        msg: crate::serving::ServingMsg,
    },
    /// The guest paused, resumed or deleted a schedule.
    ScheduleState {
        schedule: String,
        status: ferry_store::ScheduleStatus,
        reason: Option<String>,
    },
}

/// Re-running part of a DAG: these tasks' outputs are taken from an earlier job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reuse {
    pub from_job: String,
    pub tasks: Vec<String>,
}

struct JobState {
    spec: JobSpec,
    roster: Roster,
    initiator: PartyId,
    accepted: BTreeSet<PartyId>,
    reuse: Option<Reuse>,
    cancel: Arc<AtomicBool>,
    /// Why the run was stopped from outside (a partner failed, or a user cancelled).
    abort: Arc<Mutex<Option<(JobStatus, String)>>>,
    started: bool,
    /// When the job's scheduler started on this node (the liveness window counts from it).
    started_at: Option<Instant>,
}

/// A running node.
pub struct Node {
    dir: NodeDir,
    party: PartyId,
    store: Arc<Store>,
    transport: Arc<FederationTransport>,
    jobs: Mutex<HashMap<String, JobState>>,
    stopping: AtomicBool,
    policy: SecurityPolicy,
    /// `[crypto]`: the node's suite, the job suites it accepts, encryption at rest.
    crypto: crate::crypto::CryptoSettings,
    queries: Arc<crate::query::QueryServices>,
    serving: Arc<crate::serving::Serving>,
    audit: crate::audit::AuditTrail,
    heartbeats: crate::liveness::Heartbeats,
}

/// Why a job failed on this node: the full reason, recorded here, and what partners are told
/// (the same unless the reason concerns this party's own data; see `TaskError`).
struct JobFailure {
    local: String,
    shared: String,
}

/// Errors outside any task (the job's own bookkeeping) are told to partners only as such.
impl From<String> for JobFailure {
    fn from(local: String) -> Self {
        JobFailure {
            local,
            shared: "the node could not run the job (the reason is in its log)".into(),
        }
    }
}

impl From<&str> for JobFailure {
    fn from(reason: &str) -> Self {
        JobFailure {
            local: reason.to_string(),
            shared: reason.to_string(),
        }
    }
}

/// The reason a proposal shows while `parties` have not approved it yet.
pub(crate) fn waiting_for_approval<P: std::fmt::Display>(parties: &[P]) -> String {
    let names: Vec<String> = parties.iter().map(|p| p.to_string()).collect();
    format!("waiting for {} to approve", names.join(", "))
}

/// Decodes a control message as a partner sent it (untrusted bytes).
pub fn decode_control(bytes: &[u8]) -> Result<Control, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("malformed control message: {e}"))
}

/// The checks of a proposal that need no node state: the job id's pattern, the spec's syntax
/// and validation (parameters of every component included), the roster, and `policy`. What a
/// node does first with a partner's proposal; also the fuzz target's entry point.
pub fn vet_proposal(
    job_id: &str,
    spec_json: &str,
    policy: &SecurityPolicy,
) -> Result<(JobSpec, Roster), String> {
    ferry_store::validate_job_id(job_id).map_err(|e| e.to_string())?;
    let spec = JobSpec::parse(spec_json).map_err(|e| e.to_string())?;
    spec.validate().map_err(|e| e.to_string())?;
    let roster = spec.roster().map_err(|e| e.to_string())?;
    policy.check(&spec, &roster)?;
    Ok((spec, roster))
}

/// Why this node refuses a proposal: the full reason, recorded here, and what the proposer is
/// told (only what its own proposal named; never lists of this node's datasets, models or jobs).
pub(crate) struct Refusal {
    pub(crate) local: String,
    pub(crate) shared: String,
}

impl Refusal {
    /// A reason about the proposal itself, which the proposer may read in full.
    pub(crate) fn same(reason: String) -> Self {
        Refusal {
            local: reason.clone(),
            shared: reason,
        }
    }
}

fn new_job_id() -> String {
    use rand::RngExt;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let suffix: u32 = rand::rng().random();
    format!("job-{secs}-{:06x}", suffix & 0xff_ffff)
}

impl Node {
    /// Opens the node directory, recovers from an unclean stop, starts the federation endpoint
    /// and the control plane.
    pub fn start(dir: NodeDir) -> Result<Arc<Node>, NodeError> {
        let party = dir.party();
        let policy = SecurityPolicy::from_config(&dir.config.other).map_err(|e| {
            NodeError::Invalid(format!(
                "{}: {e}",
                dir.root()
                    .join(ferry_transport::config::CONFIG_FILE)
                    .display()
            ))
        })?;
        let query_settings =
            crate::query::QuerySettings::from_config(&dir.config.other).map_err(|e| {
                NodeError::Invalid(format!(
                    "{}: {e}",
                    dir.root()
                        .join(ferry_transport::config::CONFIG_FILE)
                        .display()
                ))
            })?;
        crate::access::UserSettings::from_config(&dir.config.other).map_err(NodeError::Invalid)?;
        crate::approvals::ApprovalSettings::from_config(&dir.config.other)
            .map_err(NodeError::Invalid)?;
        let audit_settings = crate::audit::AuditSettings::from_config(&dir.config.other)
            .map_err(NodeError::Invalid)?;
        // A mistake in [datasets] is reported now, not at the first registration by path.
        crate::import::DatasetImportSettings::load(&dir).map_err(NodeError::Invalid)?;
        // The model signer (SM2 under the gm suite) and the at-rest key, created on the first
        // start of a node whose settings ask for them.
        let crypto = crate::crypto::CryptoSettings::from_config(&dir.config.other)
            .map_err(NodeError::Invalid)?;
        let store = Arc::new(crypto.open_store(&dir).map_err(NodeError::Invalid)?);
        // Restart safety: jobs this node left running are failed (and partners told below).
        let unfinished: Vec<JobRow> = store
            .list_jobs()?
            .into_iter()
            .filter(|j| !j.status.is_terminal() && j.status != JobStatus::PendingApproval)
            .collect();
        let reason = "node restarted while the job was running";
        store.fail_unfinished_jobs(reason)?;
        // Files left by a crash between writing and recording them go; records whose file is
        // missing are reported, not deleted (a person decides).
        let sweep = store.sweep_orphan_files()?;
        for path in &sweep.removed {
            tracing::warn!(
                "removed {} (written but never recorded before an unclean stop)",
                path.display()
            );
        }
        for missing in &sweep.missing_files {
            tracing::warn!("the file of {missing} is missing");
        }
        // Uploads cut off by an unclean stop were never registered: nothing refers to them.
        let uploads = store.data_dir().join(crate::api::UPLOAD_DIR);
        if let Ok(entries) = std::fs::read_dir(&uploads) {
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_name().to_string_lossy().starts_with(".upload-")
                    && std::fs::remove_dir_all(&path).is_ok()
                {
                    tracing::warn!(
                        "removed {} (an upload cut off by an unclean stop)",
                        path.display()
                    );
                }
            }
        }
        let queries = crate::query::QueryServices::open(store.clone(), query_settings)?;
        let serving = crate::serving::Serving::open(store.clone(), &dir.config.other)?;
        // Partners may write only to the control session and to the sessions of jobs they
        // take part in, admitted when this node proposes or accepts a job.
        let mut transport_config = TransportConfig::from_node_dir(&dir)?;
        transport_config.session_admission = SessionAdmission::Restricted {
            always: vec![CONTROL_SESSION.to_string()],
        };
        let transport = FederationTransport::start(transport_config)?;
        let node = Arc::new(Node {
            dir,
            party,
            store,
            transport,
            jobs: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            policy,
            crypto,
            queries,
            serving,
            audit: crate::audit::AuditTrail::new(audit_settings),
            heartbeats: crate::liveness::Heartbeats::default(),
        });
        for job in unfinished {
            node.audit_job_end(&job.id, JobStatus::Failed, Some(reason));
            // This node's own line among the job's parties ends too (no party stays running).
            let _ = node.store.set_party_status(
                &job.id,
                node.party.as_str(),
                JobStatus::Failed,
                Some(reason),
            );
            if let Ok(spec) = JobSpec::parse(&job.spec_json)
                && let Ok(roster) = spec.roster()
            {
                node.broadcast(
                    &roster,
                    &Control::Status {
                        job_id: job.id.clone(),
                        status: JobStatus::Failed,
                        reason: Some(format!("{}: {reason}", node.party)),
                    },
                );
            }
        }
        node.restore_pending_jobs()?;
        node.ask_for_final_statuses();
        let control = node.clone();
        std::thread::Builder::new()
            .name("ferry-control".into())
            .spawn(move || control.control_loop())
            .map_err(|e| NodeError::Invalid(format!("cannot start the control thread: {e}")))?;
        crate::audit::spawn_checkpoint_timer(&node)?;
        Ok(node)
    }

    /// The start-up sweep of the invariant "no party stays running or waiting once a job has
    /// ended": for every ended job where this node still shows a partner as not finished (its
    /// final status was lost, say in a crash), the partner is asked how the job ended for it.
    fn ask_for_final_statuses(&self) {
        let Ok(jobs) = self.store.list_jobs() else {
            return;
        };
        let mut asks: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for job in jobs.iter().filter(|j| j.status.is_terminal()) {
            let Ok(parties) = self.store.party_statuses(&job.id) else {
                continue;
            };
            for (party, status, _) in parties {
                if party != self.party.as_str() && !status.is_terminal() {
                    asks.entry(party).or_default().push(job.id.clone());
                }
            }
        }
        for (party, mut job_ids) in asks {
            let Ok(to) = PartyId::new(&party) else {
                continue;
            };
            for chunk in job_ids.chunks_mut(MAX_STATUS_REQUEST_JOBS) {
                self.send(
                    &to,
                    &Control::StatusRequest {
                        job_ids: chunk.to_vec(),
                    },
                );
            }
        }
    }

    /// A partner asks how jobs ended here: one `Status` per job it is a party of (a job this
    /// node has no record of ended here as far as anyone can tell: failed, "no record").
    fn on_status_request(&self, from: &PartyId, job_ids: &[String]) {
        if job_ids.len() > MAX_STATUS_REQUEST_JOBS {
            tracing::warn!(
                "ignoring a status request from '{from}' for {} jobs (at most {MAX_STATUS_REQUEST_JOBS})",
                job_ids.len()
            );
            return;
        }
        for job_id in job_ids {
            if ferry_store::validate_job_id(job_id).is_err() {
                continue;
            }
            let (status, reason) = match self.store.job(job_id) {
                Err(_) => (
                    JobStatus::Failed,
                    Some(format!("{}: no record of this job", self.party)),
                ),
                Ok(_) if !self.is_party_of(job_id, from) => continue,
                Ok(row) => {
                    let mine =
                        self.store.party_statuses(job_id).ok().and_then(|ps| {
                            ps.into_iter().find(|(p, _, _)| p == self.party.as_str())
                        });
                    match mine {
                        Some((_, status, reason)) => {
                            (status, reason.map(|r| format!("{}: {r}", self.party)))
                        }
                        None => (row.status, row.reason),
                    }
                }
            };
            // Only final answers: a job still running here tells its end when it ends.
            if status.is_terminal() {
                self.send(
                    from,
                    &Control::Status {
                        job_id: job_id.clone(),
                        status,
                        reason,
                    },
                );
            }
        }
    }

    /// Keeps a job's reuse in the store (see [`Node::restore_pending_jobs`]).
    fn keep_reuse(&self, job_id: &str, reuse: Option<&Reuse>) -> Result<(), NodeError> {
        if let Some(r) = reuse {
            let json = serde_json::to_string(r)
                .map_err(|e| NodeError::Invalid(format!("cannot keep the job's reuse: {e}")))?;
            self.store.set_job_reuse(job_id, &json)?;
        }
        Ok(())
    }

    /// Rebuilds the in-memory state of jobs that wait for approval (a partner's proposal
    /// waiting for a person here, or this node's job waiting for partners), so that an
    /// approval or an accept after a restart still starts the job. Jobs whose stored spec
    /// or reuse no longer reads are failed with the reason.
    fn restore_pending_jobs(&self) -> Result<(), NodeError> {
        for row in self.store.list_jobs()? {
            // A job held for a second person of this node was never proposed: nothing to
            // rebuild until it is approved.
            if row.status != JobStatus::PendingApproval || self.awaits_local_approval(&row.id) {
                continue;
            }
            let restored = (|| -> Result<JobState, String> {
                let spec = JobSpec::parse(&row.spec_json).map_err(|e| e.to_string())?;
                let roster = spec.roster().map_err(|e| e.to_string())?;
                let initiator = PartyId::new(&row.initiator).map_err(|e| e.to_string())?;
                let reuse = match self.store.job_reuse(&row.id).map_err(|e| e.to_string())? {
                    None => None,
                    Some(json) => Some(serde_json::from_str(&json).map_err(|e| e.to_string())?),
                };
                let accepted = if initiator == self.party {
                    self.store
                        .party_statuses(&row.id)
                        .map_err(|e| e.to_string())?
                        .into_iter()
                        .filter(|(p, s, _)| *p != self.party.as_str() && *s == JobStatus::Queued)
                        .filter_map(|(p, _, _)| PartyId::new(&p).ok())
                        .collect()
                } else {
                    BTreeSet::new()
                };
                Ok(JobState {
                    spec,
                    roster,
                    initiator,
                    accepted,
                    reuse,
                    cancel: Arc::new(AtomicBool::new(false)),
                    abort: Arc::new(Mutex::new(None)),
                    started: false,
                    started_at: None,
                })
            })();
            match restored {
                Ok(state) => {
                    if state.initiator == self.party {
                        self.admit_job(&state.roster, &row.id);
                    }
                    self.jobs
                        .lock()
                        .expect("jobs lock")
                        .insert(row.id.clone(), state);
                }
                Err(e) => {
                    let reason = format!("cannot restore the job after a restart: {e}");
                    self.store
                        .update_job_status(&row.id, JobStatus::Failed, Some(&reason))?;
                }
            }
        }
        Ok(())
    }

    pub fn party(&self) -> &PartyId {
        &self.party
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn dir(&self) -> &NodeDir {
        &self.dir
    }

    pub(crate) fn heartbeats(&self) -> &crate::liveness::Heartbeats {
        &self.heartbeats
    }

    /// The jobs whose scheduler runs on this node, with their partners.
    pub(crate) fn running_jobs(&self) -> Vec<crate::liveness::RunningJob> {
        self.jobs
            .lock()
            .expect("jobs lock")
            .iter()
            .filter_map(|(id, state)| {
                let started_at = state.started_at?;
                Some(crate::liveness::RunningJob {
                    id: id.clone(),
                    partners: self.partners(&state.roster).cloned().collect(),
                    started_at,
                })
            })
            .collect()
    }

    /// Fails a running job from outside its scheduler (a partner went silent): recorded at
    /// once, and the scheduler stops at its next message and tells the partners.
    pub(crate) fn fail_running_job(&self, job_id: &str, reason: &str) {
        let _ = self
            .store
            .update_job_status(job_id, JobStatus::Failed, Some(reason));
        let _ = self.store.set_party_status(
            job_id,
            self.party.as_str(),
            JobStatus::Failed,
            Some(reason),
        );
        self.stop_job(job_id, JobStatus::Failed, reason);
    }

    /// The action log's checkpoint bookkeeping ([`crate::audit`]).
    pub fn audit(&self) -> &crate::audit::AuditTrail {
        &self.audit
    }

    pub fn transport(&self) -> &Arc<FederationTransport> {
        &self.transport
    }

    /// This node's security policy (`[policy]` in `ferry.toml`).
    pub fn policy(&self) -> &SecurityPolicy {
        &self.policy
    }

    /// This node's crypto suite and encryption at rest (`[crypto]` in `ferry.toml`).
    pub fn crypto(&self) -> &crate::crypto::CryptoSettings {
        &self.crypto
    }

    /// Anonymous-query services (provider) and queries (querier).
    pub fn queries(&self) -> &Arc<crate::query::QueryServices> {
        &self.queries
    }

    pub(crate) fn serving_state(&self) -> &Arc<crate::serving::Serving> {
        &self.serving
    }

    /// Lets the job's other parties send to its task sessions (`<job>/<task>`).
    fn admit_job(&self, roster: &Roster, job_id: &str) {
        for p in self.partners(roster) {
            self.transport.admit_session(p, job_id);
        }
    }

    /// Stops accepting messages for the job's sessions (it ended on this node).
    fn revoke_job(&self, roster: &Roster, job_id: &str) {
        for p in self.partners(roster) {
            self.transport.revoke_session(p, job_id);
        }
    }

    /// Stops the control plane and the transport (acknowledging what was received).
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.audit.stop();
        for state in self.jobs.lock().expect("jobs lock").values() {
            state.cancel.store(true, Ordering::SeqCst);
        }
        self.transport.shutdown(Duration::from_secs(5));
    }

    pub(crate) fn send(&self, to: &PartyId, msg: &Control) {
        let bytes = serde_json::to_vec(msg).expect("control messages serialise");
        if let Err(e) = self.transport.send(CONTROL_SESSION, to, CONTROL_TAG, bytes) {
            tracing::warn!("cannot send a control message to '{to}': {e}");
        }
    }

    /// The job's parties other than this node.
    fn partners<'r>(&self, roster: &'r Roster) -> impl Iterator<Item = &'r PartyId> {
        roster
            .parties()
            .map(|(p, _)| p)
            .filter(move |p| **p != self.party)
    }

    fn broadcast(&self, roster: &Roster, msg: &Control) {
        for p in self.partners(roster) {
            self.send(p, msg);
        }
    }

    // ------------------------------------------------------------------------------------
    // What users do (API and CLI).

    /// Submits a job as its guest. Returns the job id.
    pub fn submit(&self, spec_text: &str) -> Result<String, NodeError> {
        self.submit_as(spec_text, LOCAL_ACTOR)
    }

    /// Submits a job as its guest on behalf of `actor` (who asked: `user:<name>`,
    /// `token:<name>`). Under `[approvals] own_jobs_need_approval` the job waits for a second
    /// person of this node before it is proposed to the partners.
    pub fn submit_as(&self, spec_text: &str, actor: &str) -> Result<String, NodeError> {
        let spec = JobSpec::parse(spec_text)?;
        self.submit_requested(spec, None, actor)
    }

    fn submit_requested(
        &self,
        spec: JobSpec,
        reuse: Option<Reuse>,
        actor: &str,
    ) -> Result<String, NodeError> {
        // A job without a suite runs under this node's (`[crypto] suite`).
        let mut spec = spec;
        self.crypto.fill_job_suite(&mut spec);
        if !self.approval_settings().own_jobs_need_approval {
            return self.submit_spec(spec, reuse, None);
        }
        let job_id = new_job_id();
        self.check_submission(&spec, &job_id)?;
        let mut row = JobRow::new(
            &job_id,
            &spec.to_json(),
            self.party.as_str(),
            "guest",
            JobStatus::PendingApproval,
        );
        row.reason = Some(format!(
            "waiting for a second person on {} to approve (submitted by {actor})",
            self.party
        ));
        self.store.insert_job(&row)?;
        self.keep_reuse(&job_id, reuse.as_ref())?;
        self.store.set_party_status(
            &job_id,
            self.party.as_str(),
            JobStatus::PendingApproval,
            None,
        )?;
        self.store.request_local_approval("job", &job_id, actor)?;
        Ok(job_id)
    }

    /// Whether `job_id` is one of this node's own jobs waiting for a second person.
    pub(crate) fn awaits_local_approval(&self, job_id: &str) -> bool {
        self.store
            .local_approval("job", job_id)
            .ok()
            .flatten()
            .is_some_and(|a| a.decision.is_none())
    }

    /// Approves one of this node's own jobs held for a second person, then proposes it.
    fn approve_own(&self, row: &JobRow, actor: &str) -> Result<(), NodeError> {
        let Some(request) = self.store.local_approval("job", &row.id)? else {
            return Err(NodeError::Invalid(format!(
                "job {} does not wait for an approval on this node",
                row.id
            )));
        };
        if request.requested_by == actor && !self.approval_settings().allow_self_approval {
            return Err(NodeError::Invalid(format!(
                "separation of duties: {actor} submitted job {} and may not approve it as well; another approver must ([approvals] allow_self_approval = false)",
                row.id
            )));
        }
        // Checked again: the policy, the grants or the data may have changed since.
        let spec = JobSpec::parse(&row.spec_json)?;
        let roster = self.check_submission(&spec, &row.id)?;
        let reuse: Option<Reuse> = match self.store.job_reuse(&row.id)? {
            None => None,
            Some(json) => Some(serde_json::from_str(&json).map_err(|e| {
                NodeError::Invalid(format!("job {}: stored reuse unreadable: {e}", row.id))
            })?),
        };
        self.store.decide_local_approval(
            "job",
            &row.id,
            actor,
            ferry_store::LocalDecision::Approved,
            None,
        )?;
        self.propose_own(&row.id, spec, roster, reuse, None, true)?;
        Ok(())
    }

    /// Rejects one of this node's own jobs held for a second person.
    fn reject_own(&self, row: &JobRow, actor: &str, reason: &str) -> Result<(), NodeError> {
        self.store.decide_local_approval(
            "job",
            &row.id,
            actor,
            ferry_store::LocalDecision::Rejected,
            Some(reason),
        )?;
        let why = format!("rejected by {actor} on {}: {reason}", self.party);
        self.store
            .update_job_status(&row.id, JobStatus::Failed, Some(&why))?;
        self.store
            .set_party_status(&row.id, self.party.as_str(), JobStatus::Failed, Some(&why))?;
        Ok(())
    }

    /// The checks of a job this node submits as its guest: the spec, the guest, this node's
    /// policy, and its own datasets, models and grants (`job_id` for grants to a job).
    /// Schedules are checked with the same ([`crate::schedules`]).
    pub(crate) fn check_submission(
        &self,
        spec: &JobSpec,
        job_id: &str,
    ) -> Result<Roster, NodeError> {
        spec.validate()?;
        let roster = spec.roster()?;
        if spec.parties.guest != self.party.as_str() {
            return Err(NodeError::Invalid(format!(
                "jobs are submitted by their guest; this node is '{}' but the job's guest is '{}'",
                self.party, spec.parties.guest
            )));
        }
        self.policy
            .check(spec, &roster)
            .map_err(NodeError::Invalid)?;
        self.check_local(spec, &roster, &self.party, job_id, None)
            .map_err(|e| NodeError::Invalid(e.local))?;
        Ok(roster)
    }

    /// Submits `spec` as its guest; `schedule` names the schedule it is a run of.
    pub(crate) fn submit_spec(
        &self,
        spec: JobSpec,
        reuse: Option<Reuse>,
        schedule: Option<&str>,
    ) -> Result<String, NodeError> {
        let job_id = new_job_id();
        let roster = self.check_submission(&spec, &job_id)?;
        self.propose_own(&job_id, spec, roster, reuse, schedule, false)?;
        Ok(job_id)
    }

    /// Records `job_id` as waiting for the partners and proposes it to them. `recorded`: the
    /// job's row exists already (held for a second person of this node until now).
    fn propose_own(
        &self,
        job_id: &str,
        spec: JobSpec,
        roster: Roster,
        reuse: Option<Reuse>,
        schedule: Option<&str>,
        recorded: bool,
    ) -> Result<(), NodeError> {
        let job_id = job_id.to_string();
        let spec_json = spec.to_json();
        let partners: Vec<PartyId> = self.partners(&roster).cloned().collect();
        let waiting = waiting_for_approval(&partners);
        if recorded {
            self.store
                .update_job_status(&job_id, JobStatus::PendingApproval, Some(&waiting))?;
        } else {
            let mut row = JobRow::new(
                &job_id,
                &spec_json,
                self.party.as_str(),
                "guest",
                JobStatus::PendingApproval,
            );
            row.reason = Some(waiting);
            self.store.insert_job(&row)?;
            self.keep_reuse(&job_id, reuse.as_ref())?;
        }
        for p in &partners {
            self.store
                .set_party_status(&job_id, p.as_str(), JobStatus::PendingApproval, None)?;
        }
        self.store
            .set_party_status(&job_id, self.party.as_str(), JobStatus::Queued, None)?;
        self.jobs.lock().expect("jobs lock").insert(
            job_id.clone(),
            JobState {
                spec,
                roster: roster.clone(),
                initiator: self.party.clone(),
                accepted: BTreeSet::new(),
                reuse: reuse.clone(),
                cancel: Arc::new(AtomicBool::new(false)),
                abort: Arc::new(Mutex::new(None)),
                started: false,
                started_at: None,
            },
        );
        self.admit_job(&roster, &job_id);
        self.broadcast(
            &roster,
            &Control::Propose {
                job_id: job_id.clone(),
                spec_json,
                reuse,
                schedule: schedule.map(str::to_string),
            },
        );
        Ok(())
    }

    /// Re-runs `job_id` from `from_task` (that task and everything downstream of it run again;
    /// the other tasks' outputs are reused). Returns the new job id.
    pub fn rerun(&self, job_id: &str, from_task: &str) -> Result<String, NodeError> {
        self.rerun_as(job_id, from_task, LOCAL_ACTOR)
    }

    /// [`Node::rerun`] on behalf of `actor` (held for a second person like a submission).
    pub fn rerun_as(
        &self,
        job_id: &str,
        from_task: &str,
        actor: &str,
    ) -> Result<String, NodeError> {
        let row = self.store.job(job_id)?;
        let spec = JobSpec::parse(&row.spec_json)?;
        self.rerun_spec(job_id, spec, from_task, actor)
    }

    /// Continues `job_id` (failed or cancelled) from its interrupted training task: a re-run
    /// from that task (same approvals, same reuse checks) whose task resumes from every
    /// party's checkpoints of the old job. Returns the new job id and the task.
    pub fn resume(&self, job_id: &str) -> Result<(String, String), NodeError> {
        self.resume_as(job_id, LOCAL_ACTOR)
    }

    /// [`Node::resume`] on behalf of `actor`.
    pub fn resume_as(&self, job_id: &str, actor: &str) -> Result<(String, String), NodeError> {
        use crate::components::train::RESUME_KEY;
        let row = self.store.job(job_id)?;
        if !row.status.is_terminal() {
            return Err(NodeError::Invalid(format!(
                "job {job_id} is {}: resume it once it has stopped (cancel it first)",
                row.status.as_str()
            )));
        }
        let mut spec = JobSpec::parse(&row.spec_json)?;
        let done = self.succeeded_tasks(job_id)?;
        let task = spec
            .topological_order()?
            .into_iter()
            .find(|n| !done.contains(n))
            .ok_or_else(|| NodeError::Invalid(format!("every task of job {job_id} succeeded")))?;
        let t = spec
            .tasks
            .iter_mut()
            .find(|t| t.name == task)
            .ok_or_else(|| NodeError::Invalid(format!("job {job_id} has no task '{task}'")))?;
        if !crate::components::find(&t.component).is_some_and(|c| c.resumable()) {
            return Err(NodeError::Invalid(format!(
                "task '{task}' ({}) of job {job_id} keeps no checkpoints; re-run the job from \
                 it instead",
                t.component
            )));
        }
        // The old job's id replaces any earlier one (a resumed job can be resumed again), and
        // role or party parameters must not override it.
        t.params
            .insert(RESUME_KEY.into(), serde_json::Value::String(job_id.into()));
        for p in t
            .role_params
            .values_mut()
            .chain(t.party_params.values_mut())
        {
            p.remove(RESUME_KEY);
        }
        let id = self.rerun_spec(job_id, spec, &task, actor)?;
        Ok((id, task))
    }

    fn rerun_spec(
        &self,
        job_id: &str,
        spec: JobSpec,
        from_task: &str,
        actor: &str,
    ) -> Result<String, NodeError> {
        if spec.task(from_task).is_none() {
            return Err(NodeError::Invalid(format!(
                "job {job_id} has no task '{from_task}'"
            )));
        }
        // Downstream closure of from_task.
        let mut rerun: BTreeSet<String> = BTreeSet::from([from_task.to_string()]);
        for name in spec.topological_order()? {
            let t = spec.task(&name).expect("task from the order");
            if t.inputs.values().any(|r| {
                spec.resolve_input(r)
                    .is_some_and(|i| rerun.contains(&i.task))
            }) {
                rerun.insert(name.clone());
            }
        }
        let done = self.succeeded_tasks(job_id)?;
        let reused: Vec<String> = spec
            .tasks
            .iter()
            .map(|t| t.name.clone())
            .filter(|n| !rerun.contains(n))
            .collect();
        if let Some(missing) = reused.iter().find(|n| !done.contains(*n)) {
            return Err(NodeError::Invalid(format!(
                "task '{missing}' of job {job_id} did not succeed, so its outputs cannot be reused; re-run from it"
            )));
        }
        self.submit_requested(
            spec,
            Some(Reuse {
                from_job: job_id.to_string(),
                tasks: reused,
            }),
            actor,
        )
    }

    /// Approves a job a partner proposed (when this node does not approve automatically).
    pub fn approve(&self, job_id: &str) -> Result<(), NodeError> {
        self.approve_as(job_id, LOCAL_ACTOR)
    }

    /// Approves, as `actor`, a job a partner proposed or one of this node's own jobs held for
    /// a second person.
    pub fn approve_as(&self, job_id: &str, actor: &str) -> Result<(), NodeError> {
        let row = self.store.job(job_id)?;
        if row.status == JobStatus::PendingApproval
            && row.initiator == self.party.as_str()
            && self.awaits_local_approval(job_id)
        {
            return self.approve_own(&row, actor);
        }
        if row.status != JobStatus::PendingApproval || row.initiator == self.party.as_str() {
            return Err(NodeError::Invalid(format!(
                "job {job_id} is {} and does not wait for this node's approval",
                row.status.as_str()
            )));
        }
        let initiator =
            PartyId::new(&row.initiator).map_err(|e| NodeError::Invalid(e.to_string()))?;
        let roster = JobSpec::parse(&row.spec_json)?.roster()?;
        self.admit_job(&roster, job_id);
        self.store.update_job_status(
            job_id,
            JobStatus::Queued,
            Some("approved; waiting for the guest to start"),
        )?;
        self.store
            .set_party_status(job_id, self.party.as_str(), JobStatus::Queued, None)?;
        self.send(
            &initiator,
            &Control::Accept {
                job_id: job_id.to_string(),
            },
        );
        Ok(())
    }

    /// Refuses a partner's proposal that waits for this node's approval; the reason reaches
    /// the proposer.
    pub fn reject(&self, job_id: &str, reason: &str) -> Result<(), NodeError> {
        self.reject_as(job_id, reason, LOCAL_ACTOR)
    }

    /// [`Node::reject`] as `actor`; also rejects one of this node's own jobs held for a
    /// second person.
    pub fn reject_as(&self, job_id: &str, reason: &str, actor: &str) -> Result<(), NodeError> {
        let row = self.store.job(job_id)?;
        if row.status == JobStatus::PendingApproval
            && row.initiator == self.party.as_str()
            && self.awaits_local_approval(job_id)
        {
            let reason = reason.trim();
            if reason.is_empty() {
                return Err(NodeError::Invalid(
                    "give a reason: it is recorded with the job for the person who submitted it"
                        .into(),
                ));
            }
            return self.reject_own(&row, actor, reason);
        }
        if row.status != JobStatus::PendingApproval || row.initiator == self.party.as_str() {
            return Err(NodeError::Invalid(format!(
                "job {job_id} is {} and does not wait for this node's approval",
                row.status.as_str()
            )));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(NodeError::Invalid(
                "give a reason: it is sent to the party that proposed the job".into(),
            ));
        }
        let initiator =
            PartyId::new(&row.initiator).map_err(|e| NodeError::Invalid(e.to_string()))?;
        let why = format!("rejected by {}: {reason}", self.party);
        self.store
            .update_job_status(job_id, JobStatus::Failed, Some(&why))?;
        self.store
            .set_party_status(job_id, self.party.as_str(), JobStatus::Failed, Some(&why))?;
        self.jobs.lock().expect("jobs lock").remove(job_id);
        self.send(
            &initiator,
            &Control::Reject {
                job_id: job_id.to_string(),
                reason: reason.to_string(),
            },
        );
        Ok(())
    }

    /// Cancels a job on this node and tells the partners.
    pub fn cancel(&self, job_id: &str, reason: &str) -> Result<(), NodeError> {
        let row = self.store.job(job_id)?;
        if row.status.is_terminal() {
            return Err(NodeError::Invalid(format!(
                "job {job_id} already {}",
                row.status.as_str()
            )));
        }
        let reason = format!("cancelled by {}: {reason}", self.party);
        let roster = JobSpec::parse(&row.spec_json)?.roster()?;
        self.stop_job(job_id, JobStatus::Cancelled, &reason);
        self.broadcast(
            &roster,
            &Control::Cancel {
                job_id: job_id.to_string(),
                reason,
            },
        );
        Ok(())
    }

    /// Marks a job stopped; a running scheduler thread notices and stops at the next message.
    fn stop_job(&self, job_id: &str, status: JobStatus, reason: &str) {
        let running = {
            let jobs = self.jobs.lock().expect("jobs lock");
            match jobs.get(job_id) {
                Some(state) if state.started => {
                    *state.abort.lock().expect("abort lock") = Some((status, reason.to_string()));
                    state.cancel.store(true, Ordering::SeqCst);
                    true
                }
                _ => false,
            }
        };
        if !running {
            let _ = self.store.update_job_status(job_id, status, Some(reason));
            self.audit_job_end(job_id, status, Some(reason));
            let _ = self
                .store
                .set_party_status(job_id, self.party.as_str(), status, Some(reason));
            // A job that never started here (pending approval, queued) has no scheduler thread
            // to report how it ended: tell the partners now, so no node goes on showing this
            // party as waiting.
            if let Some(roster) = self.recorded_roster(job_id) {
                self.broadcast(
                    &roster,
                    &Control::Status {
                        job_id: job_id.to_string(),
                        status,
                        reason: Some(format!("{}: {reason}", self.party)),
                    },
                );
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // Control plane.

    fn control_loop(self: Arc<Self>) {
        let mut last_sweep = Instant::now();
        while !self.stopping.load(Ordering::SeqCst) {
            // Stale proposals are refused within a few seconds of expiring.
            if last_sweep.elapsed() >= Duration::from_secs(2) {
                last_sweep = Instant::now();
                if let Err(e) = self.expire_stale_approvals() {
                    tracing::warn!("cannot expire stale proposals: {e}");
                }
                // Scheduled jobs whose fire time came (at start-up: once for every schedule
                // that missed fire times while the node was down).
                self.run_due_schedules(crate::schedules::unix_now());
            }
            self.liveness_tick();
            let Some((from, _tag, bytes)) = self
                .transport
                .recv_any(CONTROL_SESSION, Duration::from_millis(200))
            else {
                continue;
            };
            match decode_control(&bytes) {
                Ok(msg) => self.handle(&from, msg),
                Err(e) => tracing::warn!("ignoring a control message from '{from}': {e}"),
            }
        }
    }

    fn handle(self: &Arc<Self>, from: &PartyId, msg: Control) {
        match msg {
            // Its arrival was noted by the transport; nothing else to do.
            Control::Heartbeat => {}
            Control::StatusRequest { job_ids } => self.on_status_request(from, &job_ids),
            Control::Propose {
                job_id,
                spec_json,
                reuse,
                schedule,
            } => self.on_propose(from, &job_id, &spec_json, reuse, schedule.as_deref()),
            Control::Accept { job_id } => self.on_accept(from, &job_id),
            Control::Reject { job_id, reason } => {
                // Only a party of the job may refuse it: an outsider must not fail our jobs.
                if self.is_initiator_of(&job_id) && self.is_party_of(&job_id, from) {
                    let reason = format!("party '{from}' refused the job: {reason}");
                    let _ = self.store.set_party_status(
                        &job_id,
                        from.as_str(),
                        JobStatus::Failed,
                        Some(&reason),
                    );
                    let roster = self
                        .jobs
                        .lock()
                        .expect("jobs lock")
                        .get(&job_id)
                        .map(|s| s.roster.clone());
                    self.stop_job(&job_id, JobStatus::Failed, &reason);
                    if let Some(roster) = roster {
                        self.broadcast(&roster, &Control::Cancel { job_id, reason });
                    }
                }
            }
            Control::Start { job_id } => {
                let ok = self
                    .jobs
                    .lock()
                    .expect("jobs lock")
                    .get(&job_id)
                    .is_some_and(|s| s.initiator == *from);
                if ok {
                    self.launch(&job_id);
                }
            }
            Control::Status {
                job_id,
                status,
                reason,
            } => {
                // Status comes only from the job's own parties; anyone else is ignored (and
                // logged), so an outsider cannot fail or cancel jobs it has no part in.
                if !self.is_party_of(&job_id, from) {
                    tracing::warn!(
                        "ignoring a status for job {} from '{from}', which is not one of its parties",
                        job_id.escape_debug()
                    );
                    return;
                }
                let _ =
                    self.store
                        .set_party_status(&job_id, from.as_str(), status, reason.as_deref());
                if status == JobStatus::Failed || status == JobStatus::Cancelled {
                    let why = format!(
                        "party '{from}' {}: {}",
                        status.as_str(),
                        reason.unwrap_or_default()
                    );
                    match self.store.job(&job_id) {
                        // A partner's cancellation cancels the job here too; anything else
                        // that ended a partner early fails it.
                        Ok(row) if !row.status.is_terminal() => {
                            self.stop_job(&job_id, status, &why)
                        }
                        // The partner lost its part after this node's had succeeded (it was
                        // killed before it recorded its own end, say while storing its model):
                        // the job did not succeed for every party, and every node says so.
                        Ok(row)
                            if row.status == JobStatus::Succeeded
                                && status == JobStatus::Failed =>
                        {
                            let _ = self.store.update_job_status(
                                &job_id,
                                JobStatus::Failed,
                                Some(&why),
                            );
                            self.audit_job_end(&job_id, JobStatus::Failed, Some(&why));
                        }
                        _ => {}
                    }
                }
            }
            Control::QueryOpen { query_id, service } => {
                self.on_query_open(from, &query_id, &service)
            }
            Control::QueryReady { query_id, columns } => {
                self.on_query_reply(from, &query_id, Ok(columns))
            }
            Control::QueryRefused { query_id, reason } => {
                self.on_query_reply(from, &query_id, Err(reason))
            }
            Control::AuditCheckpoint { checkpoint } => self.on_audit_checkpoint(from, checkpoint),
            Control::ProjectInvite {
                project,
                description,
                members,
            } => self.on_project_invite(from, &project, &description, &members),
            Control::ProjectJoin { project } => self.on_project_answer(from, &project, true, None),
            Control::ProjectDecline { project, reason } => {
                self.on_project_answer(from, &project, false, reason.as_deref())
            }
            Control::ProjectMembers { project, members } => {
                self.on_project_members(from, &project, &members)
            }
            Control::ScheduleProposal {
                schedule,
                name,
                spec_json,
                cron,
                utc_offset_minutes,
            } => self.on_schedule_proposal(
                from,
                &schedule,
                &name,
                &spec_json,
                &cron,
                utc_offset_minutes,
            ),
            Control::ScheduleDecision {
                schedule,
                decision,
                reason,
            } => self.on_schedule_decision(from, &schedule, decision, reason.as_deref()),
            Control::ScheduleState {
                schedule,
                status,
                reason,
            } => self.on_schedule_state(from, &schedule, status, reason.as_deref()),
            Control::Serving { msg } => self.on_serving(from, msg),
            Control::Cancel { job_id, reason } => {
                if self.is_party_of(&job_id, from)
                    && self
                        .store
                        .job(&job_id)
                        .is_ok_and(|r| !r.status.is_terminal())
                {
                    self.stop_job(&job_id, JobStatus::Cancelled, &reason);
                }
            }
        }
    }

    /// The roster of `job_id` as this node recorded it (`None`: no such job, or its stored
    /// spec does not parse).
    fn recorded_roster(&self, job_id: &str) -> Option<Roster> {
        let row = self.store.job(job_id).ok()?;
        JobSpec::parse(&row.spec_json).ok()?.roster().ok()
    }

    /// Whether `party` plays a role in `job_id` as this node recorded it.
    fn is_party_of(&self, job_id: &str, party: &PartyId) -> bool {
        self.recorded_roster(job_id)
            .is_some_and(|r| r.role_of(party).is_some())
    }

    /// Names of the tasks of `job_id` that succeeded on this node.
    fn succeeded_tasks(&self, job_id: &str) -> Result<BTreeSet<String>, ferry_store::StoreError> {
        Ok(self
            .store
            .tasks(job_id)?
            .into_iter()
            .filter(|t| t.status == TaskStatus::Succeeded)
            .map(|t| t.task)
            .collect())
    }

    fn is_initiator_of(&self, job_id: &str) -> bool {
        self.jobs
            .lock()
            .expect("jobs lock")
            .get(job_id)
            .is_some_and(|s| s.initiator == self.party)
    }

    /// Checks what only this node can check: its datasets exist and are granted, stored
    /// models referenced by name exist and may be used by the initiator, models the job would
    /// add versions to were created by the initiator, and reused outputs come from a job the
    /// initiator ran with the same parties and the same upstream tasks.
    ///
    /// The refusal has two texts: the full one stays here; the one a partner gets names only
    /// what its own proposal named (never this node's other datasets, models or jobs).
    pub(crate) fn check_local(
        &self,
        spec: &JobSpec,
        roster: &Roster,
        initiator: &PartyId,
        job_id: &str,
        reuse: Option<&Reuse>,
    ) -> Result<(), Refusal> {
        let role = roster.role_of(&self.party).ok_or_else(|| {
            Refusal::same(format!("party '{}' has no role in this job", self.party))
        })?;
        // The suites the job uses must be ones this node accepts, whoever proposed it. A job
        // of this node's own is checked as it will be proposed: with the node's suite filled
        // in (so that validating a spec answers what submitting it would).
        let own_filled;
        let suite_spec = if initiator == &self.party && spec.suite.is_none() {
            let mut filled = spec.clone();
            self.crypto.fill_job_suite(&mut filled);
            own_filled = filled;
            &own_filled
        } else {
            spec
        };
        self.crypto
            .check_job(suite_spec, self.party.as_str())
            .map_err(Refusal::same)?;
        let mut local = Vec::new();
        let mut shared = Vec::new();
        if let Some(p) = spec.project.as_deref() {
            let record = self.store.project(p).ok();
            if let Err((l, s)) =
                crate::projects::check_job_project(&self.party, p, record.as_ref(), roster)
            {
                local.push(l);
                shared.push(s);
            }
        }
        for (i, task) in spec.tasks.iter().enumerate() {
            let at = format!("tasks[{i}] ({})", task.name);
            let params = spec.params_for(task, self.party.as_str(), role);
            // Resuming reads the checkpoints of an earlier job: only of the job whose outputs
            // the new one reuses, so that the reuse checks (same initiator, same parties)
            // cover it. A partner's proposal carries its reuse; the guest's own submission is
            // checked before its reuse is attached (and its training task checks the old job
            // again before reading a file).
            let own_submission = *initiator == self.party && reuse.is_none();
            if let Some(old) = params.get(crate::components::train::RESUME_KEY)
                && !own_submission
                && reuse.is_none_or(|r| old.as_str() != Some(r.from_job.as_str()))
            {
                let e = format!(
                    "{at}: it resumes from job {old} but does not re-run that job (resume with \
                     `ferry job resume`)"
                );
                local.push(e.clone());
                shared.push(e);
            }
            let claims = crate::components::find(&task.component)
                .map(|c| c.claims(&params))
                .unwrap_or_default();
            if let Some(name) = claims.reads_dataset.as_deref()
                && let Err(e) = crate::projects::check_dataset_access(
                    &self.store,
                    name,
                    initiator.as_str(),
                    self.party.as_str(),
                    job_id,
                    spec.project.as_deref(),
                )
            {
                local.push(format!("{at}: {e}"));
                shared.push(format!(
                    "{at}: dataset '{name}' does not exist on '{}' or is not granted to '{initiator}'{}",
                    self.party,
                    spec.project
                        .as_deref()
                        .map(|p| format!(" in project '{p}'"))
                        .unwrap_or_default()
                ));
            }
            if let Some((name, version)) = &claims.uses_model {
                let (name, version) = (name.as_str(), *version);
                if let Err(e) = self.check_model_use(name, version, initiator) {
                    local.push(format!("{at}: {e}"));
                    shared.push(format!(
                        "{at}: model '{name}' does not exist on '{}' or was not trained with '{initiator}'",
                        self.party
                    ));
                }
            }
            if let Some(name) = claims.writes_model.as_deref()
                && let Err(e) = self.check_model_owner(name, initiator)
            {
                local.push(format!("{at}: {e}"));
                shared.push(format!(
                    "{at}: model_name '{name}' is taken on '{}' by models '{initiator}' did not create; choose another name",
                    self.party
                ));
            }
        }
        if let Some(r) = reuse
            && let Err(e) = self.check_reuse(spec, roster, initiator, r)
        {
            local.push(format!("reuse of job {}: {e}", r.from_job));
            shared.push(format!(
                "'{}' cannot reuse outputs of job {} for this job: {}",
                self.party,
                r.from_job,
                "it must be a job the same initiator ran on this node with the same parties and the same reused tasks, all succeeded"
            ));
        }
        if local.is_empty() {
            Ok(())
        } else {
            Err(Refusal {
                local: local.join("; "),
                shared: shared.join("; "),
            })
        }
    }

    /// A stored model may be used by a job only if the job's initiator took part in the job
    /// that trained it (each party holds its own part; a partner must not score with parts of
    /// a model trained with somebody else).
    fn check_model_use(
        &self,
        name: &str,
        version: Option<u32>,
        initiator: &PartyId,
    ) -> Result<(), String> {
        let rec = self.store.model(name, version).map_err(|e| e.to_string())?;
        if *initiator == self.party {
            return Ok(());
        }
        if self.is_party_of(&rec.lineage.job_id, initiator) {
            Ok(())
        } else {
            Err(format!(
                "model '{name}' v{} was trained in job {}, in which '{initiator}' took no part",
                rec.version, rec.lineage.job_id
            ))
        }
    }

    /// A job may add versions to an existing model name only if every stored version was
    /// created by a job of the same initiator; otherwise a partner could slip a version of its
    /// choosing under a name this node's users rely on (predict without a version takes the
    /// newest).
    fn check_model_owner(&self, name: &str, initiator: &PartyId) -> Result<(), String> {
        match crate::components::env::model_owner_problem(&self.store, name, initiator.as_str()) {
            None => Ok(()),
            Some(p) => Err(format!(
                "model '{name}' has versions '{initiator}' did not create: {p}"
            )),
        }
    }

    /// Outputs of an earlier job may be reused only if that job was started by the same
    /// initiator with the same parties in the same roles, every reused task succeeded there,
    /// the reused tasks are closed under their inputs, and each is specified exactly as in the
    /// new job. Grants are checked on the new job as for any other (by `check_local`).
    fn check_reuse(
        &self,
        spec: &JobSpec,
        roster: &Roster,
        initiator: &PartyId,
        reuse: &Reuse,
    ) -> Result<(), String> {
        ferry_store::validate_job_id(&reuse.from_job).map_err(|e| e.to_string())?;
        let old = self
            .store
            .job(&reuse.from_job)
            .map_err(|_| format!("no job {} on this node", reuse.from_job))?;
        if old.initiator != initiator.as_str() {
            return Err(format!(
                "job {} was started by '{}', not by '{initiator}'",
                reuse.from_job, old.initiator
            ));
        }
        let old_spec = JobSpec::parse(&old.spec_json).map_err(|e| e.to_string())?;
        let old_roster = old_spec.roster().map_err(|e| e.to_string())?;
        let parties = |r: &Roster| {
            let mut v: Vec<(String, Role)> =
                r.parties().map(|(p, role)| (p.to_string(), role)).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        if parties(&old_roster) != parties(roster) {
            return Err(format!("job {} had other parties or roles", reuse.from_job));
        }
        let done = self
            .succeeded_tasks(&reuse.from_job)
            .map_err(|e| e.to_string())?;
        for name in &reuse.tasks {
            let new_task = spec
                .task(name)
                .ok_or_else(|| format!("the new job has no task '{name}'"))?;
            let old_task = old_spec
                .task(name)
                .ok_or_else(|| format!("job {} has no task '{name}'", reuse.from_job))?;
            if !done.contains(name) {
                return Err(format!(
                    "task '{name}' did not succeed in job {}",
                    reuse.from_job
                ));
            }
            let as_json = |t: &crate::dsl::TaskSpec| serde_json::to_value(t).ok();
            if as_json(new_task) != as_json(old_task) {
                return Err(format!(
                    "task '{name}' is specified differently from job {}",
                    reuse.from_job
                ));
            }
            for reference in new_task.inputs.values() {
                let upstream = spec
                    .resolve_input(reference)
                    .map(|r| r.task)
                    .unwrap_or_default();
                if !reuse.tasks.contains(&upstream) {
                    return Err(format!(
                        "task '{name}' is reused but its input task '{upstream}' is not"
                    ));
                }
            }
        }
        Ok(())
    }

    fn on_propose(
        self: &Arc<Self>,
        from: &PartyId,
        job_id: &str,
        spec_json: &str,
        reuse: Option<Reuse>,
        schedule: Option<&str>,
    ) {
        // A malformed job id is refused by `vet_proposal` below, and the store records no job
        // under it (`insert_job` checks the same pattern), so nothing is kept of it.
        if self.store.job(job_id).is_ok() {
            // Never overwrite or mix with a job this node already has.
            tracing::warn!("refused a proposal from '{from}': job {job_id} already exists here");
            self.audit_proposal(from, job_id, Err("a job with this id already exists here"));
            self.send(
                from,
                &Control::Reject {
                    job_id: job_id.to_string(),
                    reason: format!("'{}' already has a job with this id", self.party),
                },
            );
            return;
        }
        let checked = (|| -> Result<(JobSpec, Roster, bool), Refusal> {
            let (spec, roster) =
                vet_proposal(job_id, spec_json, &self.policy).map_err(Refusal::same)?;
            if spec.parties.guest != from.as_str() {
                return Err(Refusal::same(format!(
                    "the job's guest is '{}' but it was proposed by '{from}'",
                    spec.parties.guest
                )));
            }
            if roster.role_of(&self.party).is_none() {
                return Err(Refusal::same(format!(
                    "party '{}' has no role in it",
                    self.party
                )));
            }
            self.check_local(&spec, &roster, from, job_id, reuse.as_ref())?;
            // A run of a schedule approved here, with the approved spec, needs no new approval.
            let admitted = match schedule {
                Some(s) => self
                    .admit_scheduled_run(from, s, job_id, spec_json)
                    .map_err(Refusal::same)?,
                None => false,
            };
            Ok((spec, roster, admitted))
        })();
        let role = JobSpec::parse(spec_json)
            .ok()
            .and_then(|s| s.roster().ok())
            .and_then(|r| r.role_of(&self.party))
            .map(|r| r.to_string())
            .unwrap_or_else(|| "none".into());
        match checked {
            Err(refusal) => {
                let mut row =
                    JobRow::new(job_id, spec_json, from.as_str(), &role, JobStatus::Failed);
                row.reason = Some(format!("refused: {}", refusal.local));
                let _ = self.store.insert_job(&row);
                self.audit_proposal(from, job_id, Err(&refusal.local));
                tracing::warn!(
                    "refused job {} from '{from}': {}",
                    job_id.escape_debug(),
                    refusal.local
                );
                self.send(
                    from,
                    &Control::Reject {
                        job_id: job_id.to_string(),
                        reason: refusal.shared,
                    },
                );
            }
            Ok((spec, roster, admitted)) => {
                let auto = self.dir.config.auto_approve || admitted;
                let status = if auto {
                    JobStatus::Queued
                } else {
                    JobStatus::PendingApproval
                };
                let mut row = JobRow::new(job_id, spec_json, from.as_str(), &role, status);
                row.reason = Some(if admitted {
                    format!(
                        "a run of schedule {}, approved on this node; waiting for the guest to start",
                        schedule.unwrap_or_default()
                    )
                } else if auto {
                    "approved automatically; waiting for the guest to start".into()
                } else {
                    format!("waiting for approval on this node (ferry job approve {job_id})")
                });
                // The job's in-memory state is in place before its row is visible, so
                // whoever reads the row (the approval view, `approve`) finds it. A second
                // proposal under a known id never replaces the first one's state.
                let mut jobs = self.jobs.lock().expect("jobs lock");
                if jobs.contains_key(job_id) {
                    return;
                }
                jobs.insert(
                    job_id.to_string(),
                    JobState {
                        spec,
                        roster: roster.clone(),
                        initiator: from.clone(),
                        accepted: BTreeSet::new(),
                        reuse,
                        cancel: Arc::new(AtomicBool::new(false)),
                        abort: Arc::new(Mutex::new(None)),
                        started: false,
                        started_at: None,
                    },
                );
                drop(jobs);
                let reuse_kept = self
                    .jobs
                    .lock()
                    .expect("jobs lock")
                    .get(job_id)
                    .and_then(|st| st.reuse.clone());
                if self.store.insert_job(&row).is_err()
                    || self.keep_reuse(job_id, reuse_kept.as_ref()).is_err()
                {
                    self.jobs.lock().expect("jobs lock").remove(job_id);
                    return;
                }
                self.audit_proposal(
                    from,
                    job_id,
                    Ok(if admitted {
                        "accepted as a run of an approved schedule"
                    } else if auto {
                        "accepted automatically"
                    } else {
                        "waiting for approval on this node"
                    }),
                );
                for (p, _) in roster.parties() {
                    let _ = self.store.set_party_status(
                        job_id,
                        p.as_str(),
                        if *p == self.party {
                            status
                        } else {
                            JobStatus::Queued
                        },
                        None,
                    );
                }
                if auto {
                    self.admit_job(&roster, job_id);
                }
                if auto {
                    self.send(
                        from,
                        &Control::Accept {
                            job_id: job_id.to_string(),
                        },
                    );
                }
            }
        }
    }

    fn on_accept(self: &Arc<Self>, from: &PartyId, job_id: &str) {
        let ready = {
            let mut jobs = self.jobs.lock().expect("jobs lock");
            let Some(state) = jobs.get_mut(job_id) else {
                return;
            };
            if state.initiator != self.party || state.roster.role_of(from).is_none() {
                return;
            }
            state.accepted.insert(from.clone());
            let partners = self.partners(&state.roster).count();
            (state.accepted.len() == partners && !state.started).then(|| state.roster.clone())
        };
        let _ = self
            .store
            .set_party_status(job_id, from.as_str(), JobStatus::Queued, None);
        if let Some(roster) = ready {
            let _ = self.store.update_job_status(
                job_id,
                JobStatus::Queued,
                Some("every party approved"),
            );
            self.broadcast(
                &roster,
                &Control::Start {
                    job_id: job_id.to_string(),
                },
            );
            self.launch(job_id);
        }
    }

    /// Starts the scheduler thread of a job on this node.
    fn launch(self: &Arc<Self>, job_id: &str) {
        {
            let mut jobs = self.jobs.lock().expect("jobs lock");
            let Some(state) = jobs.get_mut(job_id) else {
                return;
            };
            if state.started {
                return;
            }
            state.started = true;
            state.started_at = Some(Instant::now());
        }
        if self.store.job(job_id).is_ok_and(|r| r.status.is_terminal()) {
            return;
        }
        let node = self.clone();
        let id = job_id.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("job-{job_id}"))
            .spawn(move || node.run_job(&id));
        if let Err(e) = spawned {
            let _ = self.store.update_job_status(
                job_id,
                JobStatus::Failed,
                Some(&format!("cannot start a thread: {e}")),
            );
        }
    }

    // ------------------------------------------------------------------------------------
    // Scheduler.

    fn run_job(self: Arc<Self>, job_id: &str) {
        let (spec, roster, initiator, reuse, cancel, abort) = {
            let jobs = self.jobs.lock().expect("jobs lock");
            let s = jobs.get(job_id).expect("launched jobs are known");
            (
                s.spec.clone(),
                s.roster.clone(),
                s.initiator.clone(),
                s.reuse.clone(),
                s.cancel.clone(),
                s.abort.clone(),
            )
        };
        let _ = self
            .store
            .update_job_status(job_id, JobStatus::Running, None);
        let _ = self
            .store
            .set_party_status(job_id, self.party.as_str(), JobStatus::Running, None);
        self.broadcast(
            &roster,
            &Control::Status {
                job_id: job_id.to_string(),
                status: JobStatus::Running,
                reason: None,
            },
        );
        let result = self.run_tasks(job_id, &spec, &roster, &initiator, reuse.as_ref(), &cancel);
        // `reason` is recorded here; `shared_reason` is what partners are told.
        let (status, reason, shared_reason) = match result {
            Ok(()) => (JobStatus::Succeeded, None, None),
            Err(e) => match abort.lock().expect("abort lock").clone() {
                // Stopped by a partner or a user: that reason is already shareable.
                Some((status, why)) => (status, Some(why.clone()), Some(why)),
                None => (JobStatus::Failed, Some(e.local), Some(e.shared)),
            },
        };
        let _ = self
            .store
            .update_job_status(job_id, status, reason.as_deref());
        self.audit_job_end(job_id, status, reason.as_deref());
        let _ = self
            .store
            .set_party_status(job_id, self.party.as_str(), status, reason.as_deref());
        // Partners always hear how this party ended, so every node shows every party's final
        // status (a partner that stopped us must not go on showing us as running). Echoing a
        // stop back cannot loop: a node only acts on a failure while its job is not finished.
        self.broadcast(
            &roster,
            &Control::Status {
                job_id: job_id.to_string(),
                status,
                reason: shared_reason.map(|r| format!("{}: {r}", self.party)),
            },
        );
        self.revoke_job(&roster, job_id);
        self.jobs.lock().expect("jobs lock").remove(job_id);
    }

    fn run_tasks(
        &self,
        job_id: &str,
        spec: &JobSpec,
        roster: &Roster,
        initiator: &PartyId,
        reuse: Option<&Reuse>,
        cancel: &Arc<AtomicBool>,
    ) -> Result<(), JobFailure> {
        let order = spec.topological_order().map_err(|e| e.to_string())?;
        let role = roster
            .role_of(&self.party)
            .ok_or("this party has no role in the job")?;
        let timeout = Duration::from_secs(spec.timeout_secs.unwrap_or(600));
        let work_dir = self.job_dir(job_id).map_err(|e| e.to_string())?;
        for name in &order {
            let _ = self
                .store
                .upsert_task(job_id, name, TaskStatus::Pending, 0.0, None);
        }
        let mut outputs: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
        for (index, name) in order.iter().enumerate() {
            if cancel.load(Ordering::SeqCst) {
                return Err("cancelled".into());
            }
            let task = spec.task(name).expect("task from the order");
            if let Some(r) = reuse.filter(|r| r.tasks.contains(name)) {
                let previous = self.store.tasks(&r.from_job).map_err(|e| e.to_string())?;
                let out = previous
                    .into_iter()
                    .find(|t| t.task == *name)
                    .and_then(|t| t.outputs)
                    .unwrap_or(Value::Null);
                let _ = self.store.append_log(
                    job_id,
                    name,
                    &format!("outputs reused from job {}", r.from_job),
                );
                let _ = self.store.set_task_outputs(job_id, name, &out);
                let _ = self
                    .store
                    .upsert_task(job_id, name, TaskStatus::Succeeded, 1.0, None);
                outputs.insert(name.clone(), out.as_object().cloned().unwrap_or_default());
                continue;
            }
            let mut inputs = BTreeMap::new();
            for (slot, reference) in &task.inputs {
                let r = spec.resolve_input(reference).ok_or_else(|| {
                    format!("task '{name}': input '{reference}' does not resolve")
                })?;
                let value = outputs
                    .get(&r.task)
                    .and_then(|o| o.get(&r.output))
                    .cloned()
                    .unwrap_or(Value::Null);
                let artifact: Option<Artifact> = serde_json::from_value(value).map_err(|e| {
                    format!(
                        "task '{name}': the output '{reference}' recorded on this node is not an \
                         artifact this version of Ferry reads ({e}); re-run the job from that task"
                    )
                })?;
                inputs.insert(slot.clone(), artifact);
            }
            let _ = self
                .store
                .upsert_task(job_id, name, TaskStatus::Running, 0.0, None);
            let observer = Arc::new(TaskObserver {
                store: self.store.clone(),
                job_id: job_id.to_string(),
                task: name.clone(),
                last_progress: Mutex::new(Instant::now()),
            });
            let transcript = Arc::new(Transcript::metadata_only());
            let session = format!("{job_id}/{name}");
            let ctx = session_context(&self.transport, roster.clone(), &session)
                .timeout(timeout)
                .observer(observer.clone())
                .cancel_flag(cancel.clone())
                .transcript(transcript.clone())
                .build()
                .map_err(|e| e.to_string())?;
            let env = TaskEnv {
                ctx: &ctx,
                store: &self.store,
                job_id,
                initiator: initiator.as_str(),
                task,
                params: spec.params_for(task, self.party.as_str(), role),
                inputs,
                work_dir: work_dir.clone(),
                policy: &self.policy,
            };
            let started = Instant::now();
            let result = run_task(&env).and_then(|out| {
                ctx.flush()?;
                Ok(out)
            });
            if result.is_err() {
                // Partners blocked in this task's protocol stop at once; the control plane
                // then tells them (and their users) how the job ended.
                ctx.abort();
            }
            self.record_audit(job_id, name, &transcript);
            self.transport.close_session(&session);
            match result {
                Ok(out) => {
                    let value = Value::Object(out.clone());
                    let _ = self.store.set_task_outputs(job_id, name, &value);
                    let _ = self.store.append_log(
                        job_id,
                        name,
                        &format!("done in {:.2} s", started.elapsed().as_secs_f64()),
                    );
                    let _ = self
                        .store
                        .upsert_task(job_id, name, TaskStatus::Succeeded, 1.0, None);
                    outputs.insert(name.clone(), out);
                    tracing::info!(
                        "job {job_id}: task {name} ({}/{}) succeeded",
                        index + 1,
                        order.len()
                    );
                }
                Err(e) => {
                    let cancelled =
                        matches!(ctx.check_cancelled(), Err(FederationError::Cancelled(_)));
                    let status = if cancelled {
                        TaskStatus::Cancelled
                    } else {
                        TaskStatus::Failed
                    };
                    let _ = self.store.append_log(job_id, name, &format!("failed: {e}"));
                    let _ = self
                        .store
                        .upsert_task(job_id, name, status, 0.0, Some(&e.to_string()));
                    for rest in &order[index + 1..] {
                        let _ =
                            self.store
                                .upsert_task(job_id, rest, TaskStatus::Skipped, 0.0, None);
                    }
                    let local = format!("task '{name}' failed: {e}");
                    let shared = if e.shareable {
                        local.clone()
                    } else {
                        format!(
                            "task '{name}' failed; the reason concerns this party's own data \
                             and stays on its node (`ferry job status {job_id}` there)"
                        )
                    };
                    return Err(JobFailure { local, shared });
                }
            }
        }
        Ok(())
    }

    fn record_audit(&self, job_id: &str, task: &str, transcript: &Transcript) {
        let at = ferry_store::time::now_utc();
        let entries: Vec<AuditEntry> = transcript
            .entries()
            .into_iter()
            .map(|e| AuditEntry {
                job_id: job_id.to_string(),
                task: task.to_string(),
                direction: match e.direction {
                    ferry_context::Direction::Sent => Direction::Sent,
                    ferry_context::Direction::Received => Direction::Received,
                },
                peer: e.peer.to_string(),
                tag: e.tag,
                bytes: e.bytes as u64,
                payload_type: e.payload_type.to_string(),
                at: at.clone(),
            })
            .collect();
        if let Err(e) = self.store.record_audits(&entries) {
            tracing::warn!("cannot record the audit trail of {job_id}/{task}: {e}");
        }
    }

    /// The settings of a job that bear on security and privacy, for whoever approves it:
    /// key sizes, PSI key mode, secure aggregation, DP, datasets and models read, and outputs
    /// reused from an earlier job.
    pub fn security_view(&self, job_id: &str) -> Result<Vec<String>, NodeError> {
        let row = self.store.job(job_id)?;
        let spec = JobSpec::parse(&row.spec_json)?;
        let roster = spec.roster()?;
        let mut lines = crate::policy::security_settings(&spec, &roster);
        if let Some(r) = self
            .jobs
            .lock()
            .expect("jobs lock")
            .get(job_id)
            .and_then(|s| s.reuse.clone())
        {
            lines.push(format!(
                "REUSES outputs of job {} for tasks: {}",
                r.from_job,
                r.tasks.join(", ")
            ));
        }
        Ok(lines)
    }

    /// Where the job's files of this node live: one directory per job under `data/jobs/`.
    /// The id is checked against the strict pattern, so the path cannot leave that directory.
    pub fn job_dir(&self, job_id: &str) -> Result<PathBuf, ferry_store::StoreError> {
        ferry_store::validate_job_id(job_id)?;
        let jobs = self.store.data_dir().join("jobs");
        let dir = jobs.join(job_id);
        debug_assert!(dir.parent() == Some(jobs.as_path()));
        Ok(dir)
    }
}

/// Stores a task's logs and metrics; progress writes are throttled.
struct TaskObserver {
    store: Arc<Store>,
    job_id: String,
    task: String,
    last_progress: Mutex<Instant>,
}

impl Observer for TaskObserver {
    fn progress(&self, fraction: f64, _message: &str) {
        let mut last = self.last_progress.lock().expect("progress lock");
        if last.elapsed() >= Duration::from_millis(250) || fraction >= 1.0 {
            *last = Instant::now();
            let _ = self.store.upsert_task(
                &self.job_id,
                &self.task,
                TaskStatus::Running,
                fraction,
                None,
            );
        }
    }

    fn metric(&self, name: &str, step: u64, value: f64) {
        let _ = self
            .store
            .record_metric(&self.job_id, &self.task, name, step, value);
    }

    fn log(&self, message: &str) {
        let _ = self.store.append_log(&self.job_id, &self.task, message);
    }
}
