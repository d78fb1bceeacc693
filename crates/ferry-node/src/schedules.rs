//! Scheduled jobs: a job spec with a cron expression ([`crate::cron`]), approved once by the
//! job's partners, whose every run is an ordinary job listed under the schedule.
//!
//! 1. A user of the guest creates a schedule ([`Node::create_schedule`]). The spec is checked
//!    exactly as `ferry job submit` checks a job ([`Node::check_submission`]), recorded
//!    `pending_approval`, and proposed once to every partner of the spec
//!    ([`Control::ScheduleProposal`]).
//! 2. Each partner vets it as it vets a job proposal (spec, its policy, its datasets, grants
//!    and models) and records it. It then waits in the partner's approvals list (kind
//!    `schedule`) for `ferry schedule approve|reject` (or the node's `auto_approve`); the
//!    partner's checks run again at approval. The answer ([`Control::ScheduleDecision`])
//!    reaches the guest; when every partner approved, the schedule is `active` there.
//! 3. At each fire time the guest submits the spec as an ordinary job whose proposal names the
//!    schedule ([`Node::run_due_schedules`], from the control loop's 2-second tick). A partner
//!    accepts such a run without a new approval only if the schedule is active on its side and
//!    the run's spec is byte for byte the approved one; a run with another spec, or of a
//!    schedule it does not have active, goes to ordinary approval; a run of a schedule it
//!    rejected or whose approval it revoked is refused with that reason. Every run is still
//!    vetted like any proposal (policy, grants), so a grant withdrawn since refuses it.
//! 4. A run does not start while the previous run of the schedule is unfinished (pending
//!    approval, queued or running): the fire time is recorded as skipped. Fire times missed
//!    while the node was down are not made up one by one: the first tick after the start runs
//!    the schedule once, and the next fire time is counted from then.
//! 5. The guest pauses, resumes and deletes ([`Control::ScheduleState`], told to the
//!    partners); a partner may revoke its approval at any time (the guest is told, and the
//!    partner refuses every later run).
//!
//! Partners are authenticated, not trusted: a proposal's id, name, cron and spec are checked
//! and size-limited before anything is stored, decisions count only from the schedule's own
//! partners and state changes only from its guest, and a refusal sent back names only what
//! the proposal named.

use crate::cron::{Cron, format_offset, parse_offset, store_time};
use crate::dsl::JobSpec;
use crate::node::{Control, Node, NodeError, Refusal, vet_proposal};
use ferry_context::{PartyId, Roster};
use ferry_store::{
    NewAction, NewSchedule, PartyDecision, RunOutcome, SCHEDULE_ID_PREFIX, ScheduleRecord,
    ScheduleRun, ScheduleStatus,
};
use serde::{Deserialize, Serialize};

/// Largest spec a schedule proposal may carry (a partner's message is bounded before it is
/// parsed; job specs are a few kilobytes).
pub const MAX_SCHEDULE_SPEC_BYTES: usize = 1 << 20;

/// How many coming fire times a schedule's view lists.
const UPCOMING: usize = 3;

/// The job id a schedule's checks use for grants to a job: none can match it (a real job id
/// has a timestamp), so only grants to the guest or to a project count, as for any run.
const CHECK_JOB_ID: &str = "job-schedule-check";

/// Seconds since 1970 now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn new_schedule_id() -> String {
    use rand::RngExt;
    let suffix: u32 = rand::rng().random();
    format!(
        "{SCHEDULE_ID_PREFIX}{}-{:06x}",
        unix_now(),
        suffix & 0xff_ffff
    )
}

/// What `GET /api/v1/schedules/{id}` shows: the record, where the expression is evaluated,
/// this node's part in it, the next fire times (guest, while active) and every run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScheduleView {
    #[serde(flatten)]
    pub schedule: ScheduleRecord,
    /// `UTC` or `UTC+08:00`: the clock the cron expression reads.
    pub timezone: String,
    /// `guest` (this node submits the runs) or `partner`.
    pub role: String,
    pub upcoming: Vec<String>,
    pub runs: Vec<ScheduleRun>,
}

/// What a user asks for when creating a schedule.
#[derive(Clone, Debug, Default)]
pub struct ScheduleRequest {
    /// The job spec (YAML or JSON), as for `ferry job submit`.
    pub spec: String,
    pub cron: String,
    /// Defaults to the spec's `name`, else `schedule`.
    pub name: Option<String>,
    /// A fixed offset from UTC (`+08:00`); UTC when absent.
    pub timezone: Option<String>,
    /// Who asks (`user:…`, `token:…`), for the record and the action log.
    pub actor: String,
}

fn invalid(e: impl ToString) -> NodeError {
    NodeError::Invalid(e.to_string())
}

fn trimmed_reason(reason: Option<&str>) -> Option<String> {
    reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| r.chars().take(ferry_store::MAX_SCHEDULE_REASON).collect())
}

/// The approval view of a schedule: the job's security settings, then what approving means.
pub fn schedule_security_view(record: &ScheduleRecord) -> Vec<String> {
    let mut lines = match JobSpec::parse(&record.spec_json).and_then(|s| {
        let roster = s.roster()?;
        Ok(crate::policy::security_settings(&s, &roster))
    }) {
        Ok(lines) => lines,
        Err(e) => vec![format!("the spec does not read: {e}")],
    };
    lines.push(format!(
        "SCHEDULE '{}': runs at cron '{}' ({}), each submitted by '{}'",
        record.name,
        record.cron,
        format_offset(record.utc_offset_minutes),
        record.guest
    ));
    lines.push(
        "approving accepts every run whose spec is exactly this one without asking again \
         (until revoked: ferry schedule revoke); a changed spec goes to ordinary approval"
            .into(),
    );
    lines
}

impl Node {
    fn audit_schedule(
        &self,
        actor: String,
        action: &str,
        object: String,
        result: Result<String, String>,
    ) {
        let address = if actor.starts_with("party:") {
            "federation"
        } else {
            "local"
        };
        let entry = NewAction::ok(actor, action, object, address);
        self.record_action(&match result {
            Ok(note) => entry.with_detail(note),
            Err(reason) => entry.failed(reason),
        });
    }

    /// Creates a schedule with this node as its guest and proposes it to every partner of the
    /// spec. A job of the guest alone is active at once.
    pub fn create_schedule(&self, req: &ScheduleRequest) -> Result<ScheduleRecord, NodeError> {
        let offset = match req.timezone.as_deref() {
            Some(tz) => parse_offset(tz).map_err(NodeError::Invalid)?,
            None => 0,
        };
        let cron = Cron::parse(&req.cron, offset).map_err(invalid)?;
        let mut spec = JobSpec::parse(&req.spec)?;
        // Its runs keep the suite it was created under (`[crypto] suite` when it names none).
        self.crypto().fill_job_suite(&mut spec);
        let roster = self.check_submission(&spec, CHECK_JOB_ID)?;
        let name = req
            .name
            .clone()
            .or_else(|| spec.name.clone())
            .unwrap_or_else(|| "schedule".into());
        ferry_store::validate_name("schedule", &name)?;
        let spec_json = spec.to_json();
        if spec_json.len() > MAX_SCHEDULE_SPEC_BYTES {
            return Err(NodeError::Invalid(format!(
                "the spec is {} bytes as JSON; a schedule's spec may have at most {MAX_SCHEDULE_SPEC_BYTES}",
                spec_json.len()
            )));
        }
        let partners: Vec<PartyId> = roster
            .parties()
            .map(|(p, _)| p.clone())
            .filter(|p| p != self.party())
            .collect();
        let id = new_schedule_id();
        let mut new = NewSchedule::new(&id, &name, &spec_json, cron.text(), self.party().as_str());
        new.utc_offset_minutes = offset;
        new.created_by = req.actor.clone();
        new.parties = std::iter::once((self.party().to_string(), PartyDecision::Approved))
            .chain(
                partners
                    .iter()
                    .map(|p| (p.to_string(), PartyDecision::Pending)),
            )
            .collect();
        if partners.is_empty() {
            new.status = ScheduleStatus::Active;
            new.next_run = cron.next_after(unix_now()).map(store_time);
        } else {
            new.reason = Some(crate::node::waiting_for_approval(&partners));
        }
        let record = self.store().insert_schedule(&new)?;
        for p in &partners {
            self.send(
                p,
                &Control::ScheduleProposal {
                    schedule: id.clone(),
                    name: name.clone(),
                    spec_json: spec_json.clone(),
                    cron: cron.text().to_string(),
                    utc_offset_minutes: offset,
                },
            );
        }
        self.audit_schedule(
            req.actor.clone(),
            "schedule.create",
            format!("schedule={id}; name={name}"),
            Ok(format!(
                "cron '{}' ({})",
                cron.text(),
                format_offset(offset)
            )),
        );
        Ok(record)
    }

    /// Every schedule this node knows (deleted ones only if asked).
    pub fn list_schedules(&self, include_deleted: bool) -> Result<Vec<ScheduleRecord>, NodeError> {
        Ok(self.store().list_schedules(include_deleted)?)
    }

    /// A schedule with its next fire times and its runs.
    pub fn schedule_view(&self, id: &str) -> Result<ScheduleView, NodeError> {
        let schedule = self.store().schedule(id)?;
        let runs = self.store().schedule_runs(id)?;
        let guest = schedule.guest == self.party().as_str();
        let mut upcoming = Vec::new();
        if guest
            && schedule.status == ScheduleStatus::Active
            && let Ok(cron) = Cron::parse(&schedule.cron, schedule.utc_offset_minutes)
        {
            let mut t = schedule
                .next_run
                .as_deref()
                .and_then(crate::cron::parse_store_time)
                .map(|n| n - 1)
                .unwrap_or_else(unix_now);
            while upcoming.len() < UPCOMING {
                let Some(n) = cron.next_after(t) else { break };
                upcoming.push(store_time(n));
                t = n;
            }
        }
        Ok(ScheduleView {
            timezone: format_offset(schedule.utc_offset_minutes),
            role: if guest { "guest" } else { "partner" }.into(),
            upcoming,
            runs,
            schedule,
        })
    }

    /// The schedule `id` if this node is its guest.
    fn own_schedule(&self, id: &str) -> Result<(ScheduleRecord, Vec<PartyId>), NodeError> {
        let s = self.store().schedule(id)?;
        if s.guest != self.party().as_str() {
            return Err(NodeError::Invalid(format!(
                "schedule {id} belongs to '{}', which submits its runs; this node can approve, \
                 reject or revoke it (ferry schedule approve|reject|revoke {id})",
                s.guest
            )));
        }
        let partners = s
            .parties
            .iter()
            .filter(|p| p.party != s.guest)
            .filter_map(|p| PartyId::new(&p.party).ok())
            .collect();
        Ok((s, partners))
    }

    fn tell_partners(
        &self,
        id: &str,
        partners: &[PartyId],
        status: ScheduleStatus,
        reason: Option<&str>,
    ) {
        for p in partners {
            self.send(
                p,
                &Control::ScheduleState {
                    schedule: id.to_string(),
                    status,
                    reason: reason.map(str::to_string),
                },
            );
        }
    }

    /// Stops an active schedule's runs until it is resumed (a run in progress goes on).
    pub fn pause_schedule(&self, id: &str) -> Result<ScheduleRecord, NodeError> {
        let (s, partners) = self.own_schedule(id)?;
        if s.status != ScheduleStatus::Active {
            return Err(NodeError::Invalid(format!(
                "schedule {id} is {}; only an active schedule can be paused",
                s.status
            )));
        }
        self.store().set_schedule_status(
            id,
            ScheduleStatus::Paused,
            Some("paused on the guest"),
            None,
        )?;
        self.tell_partners(id, &partners, ScheduleStatus::Paused, None);
        Ok(self.store().schedule(id)?)
    }

    /// Resumes a paused schedule: the next fire time is counted from now (fire times that
    /// passed while it was paused are not made up).
    pub fn resume_schedule(&self, id: &str) -> Result<ScheduleRecord, NodeError> {
        let (s, partners) = self.own_schedule(id)?;
        if s.status != ScheduleStatus::Paused {
            return Err(NodeError::Invalid(format!(
                "schedule {id} is {}; only a paused schedule can be resumed",
                s.status
            )));
        }
        let cron = Cron::parse(&s.cron, s.utc_offset_minutes).map_err(invalid)?;
        let next = cron.next_after(unix_now()).map(store_time);
        self.store()
            .set_schedule_status(id, ScheduleStatus::Active, None, next.as_deref())?;
        self.tell_partners(id, &partners, ScheduleStatus::Active, None);
        Ok(self.store().schedule(id)?)
    }

    /// Deletes a schedule: no more runs; the record and its runs stay listed
    /// (`?deleted=true`). Partners are told.
    pub fn delete_schedule(&self, id: &str) -> Result<ScheduleRecord, NodeError> {
        let (s, partners) = self.own_schedule(id)?;
        if s.status == ScheduleStatus::Deleted {
            return Err(NodeError::Invalid(format!(
                "schedule {id} is deleted already"
            )));
        }
        self.store().set_schedule_status(
            id,
            ScheduleStatus::Deleted,
            Some("deleted on the guest"),
            None,
        )?;
        self.tell_partners(id, &partners, ScheduleStatus::Deleted, None);
        Ok(self.store().schedule(id)?)
    }

    /// A partner's schedule this node may decide on, with its guest.
    fn partner_schedule(&self, id: &str) -> Result<(ScheduleRecord, PartyId), NodeError> {
        let s = self.store().schedule(id)?;
        if s.guest == self.party().as_str() {
            return Err(NodeError::Invalid(format!(
                "schedule {id} is this node's own; pause, resume or delete it instead"
            )));
        }
        let guest = PartyId::new(&s.guest).map_err(invalid)?;
        Ok((s, guest))
    }

    /// The checks of a job proposal, for a schedule's spec proposed by `guest`.
    fn vet_schedule_spec(
        &self,
        guest: &PartyId,
        spec_json: &str,
    ) -> Result<(JobSpec, Roster), Refusal> {
        let (spec, roster) =
            vet_proposal(CHECK_JOB_ID, spec_json, self.policy()).map_err(Refusal::same)?;
        if spec.parties.guest != guest.as_str() {
            return Err(Refusal::same(format!(
                "the job's guest is '{}' but the schedule was proposed by '{guest}'",
                spec.parties.guest
            )));
        }
        if roster.role_of(self.party()).is_none() {
            return Err(Refusal::same(format!(
                "party '{}' has no role in it",
                self.party()
            )));
        }
        self.check_local(&spec, &roster, guest, CHECK_JOB_ID, None)?;
        Ok((spec, roster))
    }

    /// Approves a partner's schedule: its runs with the approved spec are accepted without
    /// asking again. This node's policy and grants are checked again now.
    pub fn approve_schedule(&self, id: &str) -> Result<(), NodeError> {
        let (s, guest) = self.partner_schedule(id)?;
        if s.status != ScheduleStatus::PendingApproval {
            return Err(NodeError::Invalid(format!(
                "schedule {id} is {} and does not wait for this node's approval",
                s.status
            )));
        }
        self.vet_schedule_spec(&guest, &s.spec_json).map_err(|r| {
            NodeError::Invalid(format!(
                "schedule {id} cannot be approved on this node: {}",
                r.local
            ))
        })?;
        self.store().set_schedule_party(
            id,
            self.party().as_str(),
            PartyDecision::Approved,
            None,
        )?;
        self.store().set_schedule_status(
            id,
            ScheduleStatus::Active,
            Some("approved on this node"),
            None,
        )?;
        self.send(
            &guest,
            &Control::ScheduleDecision {
                schedule: id.to_string(),
                decision: PartyDecision::Approved,
                reason: None,
            },
        );
        Ok(())
    }

    /// Refuses a partner's schedule that waits for this node's approval; the reason reaches
    /// the guest.
    pub fn reject_schedule(&self, id: &str, reason: &str) -> Result<(), NodeError> {
        let (s, guest) = self.partner_schedule(id)?;
        if s.status != ScheduleStatus::PendingApproval {
            return Err(NodeError::Invalid(format!(
                "schedule {id} is {} and does not wait for this node's approval",
                s.status
            )));
        }
        let reason = trimmed_reason(Some(reason)).ok_or_else(|| {
            NodeError::Invalid(
                "give a reason: it is sent to the party that proposed the schedule".into(),
            )
        })?;
        self.decide(
            id,
            &guest,
            PartyDecision::Rejected,
            ScheduleStatus::Rejected,
            &reason,
        )
    }

    /// Withdraws this node's approval of a partner's schedule: every later run is refused with
    /// the reason. The guest is told.
    pub fn revoke_schedule(&self, id: &str, reason: &str) -> Result<(), NodeError> {
        let (s, guest) = self.partner_schedule(id)?;
        if s.decision_of(self.party().as_str()) != Some(PartyDecision::Approved)
            || s.status == ScheduleStatus::Deleted
        {
            return Err(NodeError::Invalid(format!(
                "schedule {id} is {} and has no approval of this node to revoke",
                s.status
            )));
        }
        let reason = trimmed_reason(Some(reason)).ok_or_else(|| {
            NodeError::Invalid(
                "give a reason: it is sent to the party that runs the schedule".into(),
            )
        })?;
        self.decide(
            id,
            &guest,
            PartyDecision::Revoked,
            ScheduleStatus::Revoked,
            &reason,
        )
    }

    fn decide(
        &self,
        id: &str,
        guest: &PartyId,
        decision: PartyDecision,
        status: ScheduleStatus,
        reason: &str,
    ) -> Result<(), NodeError> {
        let why = format!("{decision} by {}: {reason}", self.party());
        self.store()
            .set_schedule_party(id, self.party().as_str(), decision, Some(reason))?;
        self.store()
            .set_schedule_status(id, status, Some(&why), None)?;
        self.send(
            guest,
            &Control::ScheduleDecision {
                schedule: id.to_string(),
                decision,
                reason: Some(reason.to_string()),
            },
        );
        Ok(())
    }

    /// Partners' schedules waiting for this node's decision.
    pub(crate) fn pending_schedule_approvals(&self) -> Result<Vec<ScheduleRecord>, NodeError> {
        Ok(self
            .store()
            .list_schedules(false)?
            .into_iter()
            .filter(|s| {
                s.status == ScheduleStatus::PendingApproval && s.guest != self.party().as_str()
            })
            .collect())
    }

    // ------------------------------------------------------------------------------------
    // The guest's tick.

    /// Runs every active schedule of this node whose next fire time is at or before `now`
    /// (seconds since 1970, UTC): once, however many fire times it missed; the next fire
    /// time is the first after `now`. Called by the control loop every 2 seconds; tests call
    /// it with a time of their choosing. Returns, per schedule run, the job id or why the
    /// fire time was skipped.
    pub fn run_due_schedules(&self, now: i64) -> Vec<(String, Result<String, String>)> {
        let due = match self.store().due_schedules(&store_time(now)) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("cannot read the due schedules: {e}");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for s in due {
            if s.guest != self.party().as_str() {
                continue;
            }
            let Some(fire) = s.next_run.clone() else {
                continue;
            };
            let next = match Cron::parse(&s.cron, s.utc_offset_minutes) {
                Ok(c) => c.next_after(now).map(store_time),
                Err(e) => {
                    // Only an edited database gets here: stop the schedule, with the reason.
                    let reason = format!("paused: the stored cron expression does not parse: {e}");
                    let _ = self.store().set_schedule_status(
                        &s.id,
                        ScheduleStatus::Paused,
                        Some(&reason),
                        None,
                    );
                    out.push((s.id.clone(), Err(reason)));
                    continue;
                }
            };
            // Whoever moves the fire time owns it; a concurrent tick finds it moved.
            match self
                .store()
                .claim_schedule_fire(&s.id, &fire, next.as_deref())
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!("cannot claim fire time {fire} of schedule {}: {e}", s.id);
                    continue;
                }
            }
            let result = self.fire(&s, &fire);
            let (outcome, job, detail) = match &result {
                Ok(job) => (RunOutcome::Submitted, Some(job.as_str()), None),
                Err(why) => (RunOutcome::Skipped, None, Some(why.as_str())),
            };
            if let Err(e) = self
                .store()
                .record_schedule_run(&s.id, &fire, job, outcome, detail)
            {
                tracing::warn!("cannot record the run of schedule {} at {fire}: {e}", s.id);
            }
            self.audit_schedule(
                "node".into(),
                "schedule.run",
                format!(
                    "schedule={}; fire_time={fire}{}",
                    s.id,
                    job.map(|j| format!("; job={j}")).unwrap_or_default()
                ),
                match &result {
                    Ok(_) => Ok("submitted".into()),
                    Err(why) => Err(format!("skipped: {why}")),
                },
            );
            out.push((s.id.clone(), result));
        }
        out
    }

    /// Submits one run of `s`, unless its previous run is unfinished.
    fn fire(&self, s: &ScheduleRecord, fire: &str) -> Result<String, String> {
        if let Some(last) = s.last_job_id.as_deref()
            && let Ok(row) = self.store().job(last)
            && !row.status.is_terminal()
        {
            return Err(format!(
                "the previous run {last} is still {}; a run does not start while the last one is unfinished",
                row.status
            ));
        }
        let spec = JobSpec::parse(&s.spec_json)
            .map_err(|e| format!("the stored spec does not read: {e}"))?;
        let job = self
            .submit_spec(spec, None, Some(&s.id))
            .map_err(|e| format!("submitting the run failed: {e}"))?;
        tracing::info!("schedule {}: fire time {fire}, submitted job {job}", s.id);
        Ok(job)
    }

    // ------------------------------------------------------------------------------------
    // Control messages.

    /// A partner proposes a schedule with this node as one of its parties.
    pub(crate) fn on_schedule_proposal(
        &self,
        from: &PartyId,
        id: &str,
        name: &str,
        spec_json: &str,
        cron: &str,
        offset: i32,
    ) {
        let object = format!("schedule={}", id.escape_debug());
        let refuse = |reason: String| {
            self.audit_schedule(
                format!("party:{from}"),
                "schedule.propose",
                object.clone(),
                Err(format!("refused: {reason}")),
            );
            tracing::warn!(
                "refused schedule {} from '{from}': {reason}",
                id.escape_debug()
            );
        };
        // What must hold before anything is stored (the id, name and size come from a peer).
        let basic = (|| -> Result<Cron, String> {
            ferry_store::validate_schedule_id(id).map_err(|e| e.to_string())?;
            ferry_store::validate_name("schedule", name).map_err(|e| e.to_string())?;
            if spec_json.len() > MAX_SCHEDULE_SPEC_BYTES {
                return Err(format!(
                    "the spec is larger than {MAX_SCHEDULE_SPEC_BYTES} bytes"
                ));
            }
            Cron::parse(cron, offset).map_err(|e| e.to_string())
        })();
        let cron = match basic {
            Ok(c) => c,
            Err(reason) => {
                refuse(reason.clone());
                self.answer_schedule(from, id, PartyDecision::Rejected, Some(reason));
                return;
            }
        };
        if matches!(self.store().find_schedule(id), Ok(Some(_)) | Err(_)) {
            let reason = format!("'{}' already has a schedule with this id", self.party());
            refuse(reason.clone());
            self.answer_schedule(from, id, PartyDecision::Rejected, Some(reason));
            return;
        }
        let vetted = self.vet_schedule_spec(from, spec_json);
        let mut new = NewSchedule::new(id, name, spec_json, cron.text(), from.as_str());
        new.utc_offset_minutes = offset;
        new.parties = JobSpec::parse(spec_json)
            .ok()
            .and_then(|s| s.roster().ok())
            .map(|r| {
                r.parties()
                    .map(|(p, _)| {
                        let d = if p == from {
                            PartyDecision::Approved
                        } else {
                            PartyDecision::Pending
                        };
                        (p.to_string(), d)
                    })
                    .collect()
            })
            .unwrap_or_default();
        match vetted {
            Err(refusal) => {
                new.status = ScheduleStatus::Rejected;
                new.reason = Some(format!("refused: {}", refusal.local));
                let _ = self.store().insert_schedule(&new);
                let _ = self.store().set_schedule_party(
                    id,
                    self.party().as_str(),
                    PartyDecision::Rejected,
                    Some(&refusal.local),
                );
                refuse(refusal.local);
                self.answer_schedule(from, id, PartyDecision::Rejected, Some(refusal.shared));
            }
            Ok(_) => {
                let auto = self.dir().config.auto_approve;
                new.reason = Some(if auto {
                    "approved automatically".into()
                } else {
                    format!("waiting for approval on this node (ferry schedule approve {id})")
                });
                if auto {
                    new.status = ScheduleStatus::Active;
                    for (p, d) in new.parties.iter_mut() {
                        if p == self.party().as_str() {
                            *d = PartyDecision::Approved;
                        }
                    }
                }
                if let Err(e) = self.store().insert_schedule(&new) {
                    tracing::warn!("cannot record schedule {id} from '{from}': {e}");
                    return;
                }
                self.audit_schedule(
                    format!("party:{from}"),
                    "schedule.propose",
                    object,
                    Ok(if auto {
                        "approved automatically".into()
                    } else {
                        "waiting for approval on this node".into()
                    }),
                );
                if auto {
                    self.answer_schedule(from, id, PartyDecision::Approved, None);
                }
            }
        }
    }

    fn answer_schedule(
        &self,
        to: &PartyId,
        id: &str,
        decision: PartyDecision,
        reason: Option<String>,
    ) {
        self.send(
            to,
            &Control::ScheduleDecision {
                schedule: id.to_string(),
                decision,
                reason,
            },
        );
    }

    /// A partner's decision on a schedule of this node.
    pub(crate) fn on_schedule_decision(
        &self,
        from: &PartyId,
        id: &str,
        decision: PartyDecision,
        reason: Option<&str>,
    ) {
        let Ok(Some(s)) = self.store().find_schedule(id) else {
            tracing::warn!(
                "ignoring a decision on unknown schedule {} from '{from}'",
                id.escape_debug()
            );
            return;
        };
        // Only the schedule's own partners answer, each for itself, and only to its guest.
        if s.guest != self.party().as_str()
            || from.as_str() == s.guest
            || s.decision_of(from.as_str()).is_none()
        {
            tracing::warn!(
                "ignoring a decision on schedule {id} from '{from}', which is not one of its partners"
            );
            return;
        }
        let reason = trimmed_reason(reason);
        let current = s.decision_of(from.as_str());
        let allowed = match decision {
            PartyDecision::Approved | PartyDecision::Rejected => {
                current == Some(PartyDecision::Pending)
            }
            PartyDecision::Revoked => current == Some(PartyDecision::Approved),
            PartyDecision::Pending => false,
        };
        if !allowed {
            tracing::warn!(
                "ignoring '{decision}' on schedule {id} from '{from}' (it is {current:?} here)"
            );
            return;
        }
        let _ = self
            .store()
            .set_schedule_party(id, from.as_str(), decision, reason.as_deref());
        self.audit_schedule(
            format!("party:{from}"),
            &format!("schedule.{decision}"),
            format!("schedule={id}"),
            match (decision, reason.as_deref()) {
                (PartyDecision::Approved, _) => Ok("approved".into()),
                (_, r) => Err(format!("{decision}: {}", r.unwrap_or("no reason given"))),
            },
        );
        let Ok(s) = self.store().schedule(id) else {
            return;
        };
        match decision {
            PartyDecision::Approved => {
                let waiting: Vec<&str> = s
                    .parties
                    .iter()
                    .filter(|p| p.decision != PartyDecision::Approved)
                    .map(|p| p.party.as_str())
                    .collect();
                if s.status != ScheduleStatus::PendingApproval {
                    return;
                }
                if waiting.is_empty() {
                    let next = Cron::parse(&s.cron, s.utc_offset_minutes)
                        .ok()
                        .and_then(|c| c.next_after(unix_now()))
                        .map(store_time);
                    let _ = self.store().set_schedule_status(
                        id,
                        ScheduleStatus::Active,
                        Some("every party approved"),
                        next.as_deref(),
                    );
                } else {
                    let _ = self.store().set_schedule_status(
                        id,
                        ScheduleStatus::PendingApproval,
                        Some(&crate::node::waiting_for_approval(&waiting)),
                        None,
                    );
                }
            }
            PartyDecision::Rejected => {
                let why = format!(
                    "party '{from}' rejected the schedule: {}",
                    reason.as_deref().unwrap_or("no reason given")
                );
                let _ = self.store().set_schedule_status(
                    id,
                    ScheduleStatus::Rejected,
                    Some(&why),
                    None,
                );
                // The other partners drop it too: it will never run.
                let others: Vec<PartyId> = s
                    .parties
                    .iter()
                    .filter(|p| p.party != s.guest && p.party != from.as_str())
                    .filter_map(|p| PartyId::new(&p.party).ok())
                    .collect();
                self.tell_partners(id, &others, ScheduleStatus::Deleted, Some(&why));
            }
            // The schedule goes on firing: the partner refuses each run with its reason, which
            // its job shows; the guest's users see the revocation on the schedule.
            PartyDecision::Revoked | PartyDecision::Pending => {}
        }
    }

    /// The guest paused, resumed or deleted a schedule this node is a partner of.
    pub(crate) fn on_schedule_state(
        &self,
        from: &PartyId,
        id: &str,
        status: ScheduleStatus,
        reason: Option<&str>,
    ) {
        let Ok(Some(s)) = self.store().find_schedule(id) else {
            return;
        };
        if s.guest != from.as_str() || s.guest == self.party().as_str() {
            tracing::warn!(
                "ignoring a state of schedule {id} from '{from}', which is not its guest"
            );
            return;
        }
        let reason = trimmed_reason(reason);
        let new = match (s.status, status) {
            (ScheduleStatus::Active, ScheduleStatus::Paused) => Some(ScheduleStatus::Paused),
            (ScheduleStatus::Paused, ScheduleStatus::Active) => Some(ScheduleStatus::Active),
            (current, ScheduleStatus::Deleted) if current != ScheduleStatus::Deleted => {
                Some(ScheduleStatus::Deleted)
            }
            _ => None,
        };
        let Some(new) = new else { return };
        let why = format!(
            "{new} by '{from}'{}",
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        );
        let _ = self.store().set_schedule_status(id, new, Some(&why), None);
        self.audit_schedule(
            format!("party:{from}"),
            "schedule.state",
            format!("schedule={id}"),
            Ok(why),
        );
    }

    /// Whether a run `job_id` of schedule `id`, proposed by `from` with `spec_json`, is
    /// accepted without a new approval (`Ok(true)`), goes to ordinary approval (`Ok(false)`)
    /// or is refused (`Err`, the reason the proposer is told). The run is listed under the
    /// schedule when `from` is its guest.
    pub(crate) fn admit_scheduled_run(
        &self,
        from: &PartyId,
        id: &str,
        job_id: &str,
        spec_json: &str,
    ) -> Result<bool, String> {
        let Ok(Some(s)) = self.store().find_schedule(id) else {
            // Unknown here (or a malformed id): an ordinary proposal.
            return Ok(false);
        };
        if s.guest != from.as_str() || s.guest == self.party().as_str() {
            return Ok(false);
        }
        let own_reason = s
            .parties
            .iter()
            .find(|p| p.party == self.party().as_str())
            .and_then(|p| p.reason.clone())
            .unwrap_or_else(|| "no reason given".into());
        let (result, outcome, detail) = match s.status {
            ScheduleStatus::Revoked => {
                let r = format!(
                    "'{}' revoked its approval of schedule {id}: {own_reason}",
                    self.party()
                );
                (Err(r.clone()), RunOutcome::Refused, r)
            }
            ScheduleStatus::Rejected => {
                let r = format!("'{}' rejected schedule {id}: {own_reason}", self.party());
                (Err(r.clone()), RunOutcome::Refused, r)
            }
            ScheduleStatus::Active if s.spec_json == spec_json => (
                Ok(true),
                RunOutcome::Accepted,
                "the approved spec; accepted without a new approval".to_string(),
            ),
            ScheduleStatus::Active => (
                Ok(false),
                RunOutcome::NeedsApproval,
                "the spec differs from the approved one; it waits for an ordinary approval".into(),
            ),
            other => (
                Ok(false),
                RunOutcome::NeedsApproval,
                format!("the schedule is {other} here; the run waits for an ordinary approval"),
            ),
        };
        let now = store_time(unix_now());
        if let Err(e) =
            self.store()
                .record_schedule_run(id, &now, Some(job_id), outcome, Some(&detail))
        {
            tracing::warn!("cannot list run {job_id} under schedule {id}: {e}");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_ids_follow_the_store_pattern() {
        for _ in 0..10 {
            let id = new_schedule_id();
            assert!(ferry_store::validate_schedule_id(&id).is_ok(), "{id}");
        }
    }

    #[test]
    fn the_approval_view_says_what_approving_means() {
        let spec = "parties: {guest: bank, hosts: [telco]}\ntasks:\n  - {name: read, component: reader, params: {dataset: d}}\n";
        let spec_json = JobSpec::parse(spec).unwrap().to_json();
        let mut new = NewSchedule::new("sched-1", "nightly", &spec_json, "0 2 * * *", "bank");
        new.utc_offset_minutes = 480;
        let record = ScheduleRecord {
            id: new.id,
            name: new.name,
            spec_json: new.spec_json,
            cron: new.cron,
            utc_offset_minutes: 480,
            guest: new.guest,
            status: ScheduleStatus::PendingApproval,
            reason: None,
            created_by: new.created_by,
            created_at: "2026-12-04T00:00:00.000Z".into(),
            updated_at: "2026-12-04T00:00:00.000Z".into(),
            next_run: None,
            last_run: None,
            last_job_id: None,
            run_count: 0,
            parties: Vec::new(),
        };
        let view = schedule_security_view(&record);
        assert!(
            view.iter()
                .any(|l| l.contains("cron '0 2 * * *' (UTC+08:00)") && l.contains("'bank'")),
            "{view:?}"
        );
        assert!(
            view.iter().any(|l| l.contains("exactly this one")),
            "{view:?}"
        );
    }
}
