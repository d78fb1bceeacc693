//! Scheduled jobs: a job spec with a cron expression, approved once by the job's partners,
//! whose runs are ordinary jobs linked to it.
//!
//! Every node of a schedule keeps its own record under the same id: the guest (the party that
//! created it and submits its runs) with the fire times, and each partner with the spec it
//! approved. `schedule_parties` holds each party's decision as this node knows it (on a
//! partner, its own decision is the one that counts for its runs); `schedule_runs` links each
//! run (a job, or a fire time that was skipped) to the schedule (migration 7).

use crate::time::now_utc;
use crate::{Store, StoreError, to_u64, validate_label, validate_name};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

/// Prefix of every schedule id.
pub const SCHEDULE_ID_PREFIX: &str = "sched-";

/// Longest reason kept with a schedule or a party's decision (a partner's reason is cut).
pub const MAX_SCHEDULE_REASON: usize = 2000;

text_enum!(
    /// Where a schedule stands on this node.
    ScheduleStatus, "schedule status" {
        /// Waiting for partners' approval (guest) or for this node's (partner).
        PendingApproval => "pending_approval",
        /// Fires (guest); its runs are accepted without a new approval (partner).
        Active => "active",
        /// Paused by the guest: no runs until resumed.
        Paused => "paused",
        /// A partner refused it (guest), or this node did (partner).
        Rejected => "rejected",
        /// This partner withdrew its approval (its runs are refused).
        Revoked => "revoked",
        /// Deleted by the guest; kept, with its runs, for the record.
        Deleted => "deleted",
    }
);

text_enum!(
    /// A party's word on a schedule.
    PartyDecision, "schedule decision" {
        Pending => "pending",
        Approved => "approved",
        Rejected => "rejected",
        Revoked => "revoked",
    }
);

text_enum!(
    /// What became of one fire time (guest) or one run proposal (partner).
    RunOutcome, "schedule run outcome" {
        /// The run was submitted as a job (guest).
        Submitted => "submitted",
        /// Not run: the previous run was still going, or submitting failed (guest).
        Skipped => "skipped",
        /// Accepted without a new approval: the schedule is approved here and the spec is
        /// the approved one (partner).
        Accepted => "accepted",
        /// Sent to ordinary approval: the spec differs from the approved one, or the schedule
        /// is not active here (partner).
        NeedsApproval => "needs_approval",
        /// Refused: this node rejected or revoked the schedule (partner).
        Refused => "refused",
    }
);

/// Schedule ids come from partners and are stored and shown, so they are held to a strict
/// pattern: `sched-` followed by 1 to 60 characters from `A-Z a-z 0-9 _ -`.
pub fn validate_schedule_id(id: &str) -> Result<(), StoreError> {
    let rest = id.strip_prefix(SCHEDULE_ID_PREFIX).unwrap_or("");
    let ok = !rest.is_empty()
        && rest.len() <= 60
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if !ok {
        return Err(StoreError::invalid(format!(
            "invalid schedule id '{}': a schedule id is '{SCHEDULE_ID_PREFIX}' followed by 1 to 60 characters from A-Z a-z 0-9 _ -",
            id.escape_debug()
        )));
    }
    Ok(())
}

/// One party's decision on a schedule, as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleParty {
    pub party: String,
    pub decision: PartyDecision,
    pub reason: Option<String>,
    pub updated_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    pub id: String,
    pub name: String,
    /// The job spec every run submits (canonical JSON, stored verbatim).
    pub spec_json: String,
    /// The five-field cron expression.
    pub cron: String,
    /// Fixed offset from UTC the expression is evaluated at, in minutes.
    pub utc_offset_minutes: i32,
    /// The party that created the schedule and submits its runs.
    pub guest: String,
    pub status: ScheduleStatus,
    pub reason: Option<String>,
    /// Who created it: a local principal (`user:…`, `token:…`) on the guest, `party:<guest>`
    /// on a partner.
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// The next fire time (guest, while active).
    pub next_run: Option<String>,
    /// When the last run was submitted or received.
    pub last_run: Option<String>,
    pub last_job_id: Option<String>,
    /// Runs submitted (guest) or received (partner).
    pub run_count: u64,
    /// Every party of the spec, by name.
    pub parties: Vec<ScheduleParty>,
}

impl ScheduleRecord {
    /// The decision of `party`, `None` if it is no party of the schedule.
    pub fn decision_of(&self, party: &str) -> Option<PartyDecision> {
        self.parties
            .iter()
            .find(|p| p.party == party)
            .map(|p| p.decision)
    }
}

/// A schedule to record. Start from [`NewSchedule::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSchedule {
    pub id: String,
    pub name: String,
    pub spec_json: String,
    pub cron: String,
    pub utc_offset_minutes: i32,
    pub guest: String,
    pub status: ScheduleStatus,
    pub reason: Option<String>,
    pub created_by: String,
    pub next_run: Option<String>,
    /// Every party with its decision (the guest included).
    pub parties: Vec<(String, PartyDecision)>,
}

impl NewSchedule {
    pub fn new(id: &str, name: &str, spec_json: &str, cron: &str, guest: &str) -> Self {
        NewSchedule {
            id: id.to_string(),
            name: name.to_string(),
            spec_json: spec_json.to_string(),
            cron: cron.to_string(),
            utc_offset_minutes: 0,
            guest: guest.to_string(),
            status: ScheduleStatus::PendingApproval,
            reason: None,
            created_by: format!("party:{guest}"),
            next_run: None,
            parties: Vec::new(),
        }
    }
}

/// One run of a schedule: a job, or a fire time that was skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRun {
    pub seq: u64,
    /// The fire time (guest) or when the run's proposal arrived (partner).
    pub fire_time: String,
    pub job_id: Option<String>,
    pub outcome: RunOutcome,
    pub detail: Option<String>,
    /// The job's status on this node now (`None` for a skipped fire time or a job this node
    /// does not have).
    pub job_status: Option<String>,
    pub recorded_at: String,
}

fn cut(reason: Option<&str>) -> Option<String> {
    reason.map(|r| r.chars().take(MAX_SCHEDULE_REASON).collect())
}

const SCHEDULE_COLUMNS: &str = "id, name, spec_json, cron, utc_offset_minutes, guest, status, \
     reason, created_by, created_at, updated_at, next_run, last_run, last_job_id, run_count";

fn not_found(conn: &Connection, id: &str) -> StoreError {
    let known = conn
        .prepare("SELECT id FROM schedules WHERE status <> 'deleted' ORDER BY created_at, id")
        .and_then(|mut s| {
            s.query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()
        })
        .unwrap_or_default();
    StoreError::NotFound {
        kind: "schedule",
        name: id.to_string(),
        known,
    }
}

fn parties_of(conn: &Connection, id: &str) -> Result<Vec<ScheduleParty>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT party, decision, reason, updated_at FROM schedule_parties \
         WHERE schedule_id = ?1 ORDER BY party",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    rows.map(|r| {
        let (party, decision, reason, updated_at) = r?;
        Ok(ScheduleParty {
            party,
            decision: decision.parse()?,
            reason,
            updated_at,
        })
    })
    .collect()
}

type RawSchedule = (
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);

fn raw_schedule(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawSchedule> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
        r.get(14)?,
    ))
}

fn finish(conn: &Connection, raw: RawSchedule) -> Result<ScheduleRecord, StoreError> {
    let (
        id,
        name,
        spec_json,
        cron,
        offset,
        guest,
        status,
        reason,
        created_by,
        created_at,
        updated_at,
        next_run,
        last_run,
        last_job_id,
        run_count,
    ) = raw;
    let utc_offset_minutes = i32::try_from(offset).map_err(|_| {
        StoreError::Db(format!(
            "stored offset {offset} of schedule '{id}' is out of range (corrupt row)"
        ))
    })?;
    let parties = parties_of(conn, &id)?;
    Ok(ScheduleRecord {
        name,
        spec_json,
        cron,
        utc_offset_minutes,
        guest,
        status: status.parse()?,
        reason,
        created_by,
        created_at,
        updated_at,
        next_run,
        last_run,
        last_job_id,
        run_count: to_u64(run_count, "run count")?,
        parties,
        id,
    })
}

fn get(conn: &Connection, id: &str) -> Result<Option<ScheduleRecord>, StoreError> {
    let raw = conn
        .query_row(
            &format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ?1"),
            [id],
            raw_schedule,
        )
        .optional()?;
    raw.map(|r| finish(conn, r)).transpose()
}

impl Store {
    /// Records a schedule and its parties' decisions in one transaction. Refused if a
    /// schedule with that id exists already.
    pub fn insert_schedule(&self, s: &NewSchedule) -> Result<ScheduleRecord, StoreError> {
        validate_schedule_id(&s.id)?;
        validate_name("schedule", &s.name)?;
        validate_label("party", &s.guest)?;
        validate_label("creator", &s.created_by)?;
        for (party, _) in &s.parties {
            validate_label("party", party)?;
        }
        let now = now_utc();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists = tx
            .query_row("SELECT 1 FROM schedules WHERE id = ?1", [&s.id], |_| Ok(()))
            .optional()?
            .is_some();
        if exists {
            return Err(StoreError::AlreadyExists {
                kind: "schedule",
                name: s.id.clone(),
                hint: "schedule ids are never reused".into(),
            });
        }
        tx.execute(
            &format!(
                "INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, NULL, NULL, 0)"
            ),
            params![
                s.id,
                s.name,
                s.spec_json,
                s.cron,
                i64::from(s.utc_offset_minutes),
                s.guest,
                s.status.as_str(),
                cut(s.reason.as_deref()),
                s.created_by,
                now,
                s.next_run,
            ],
        )?;
        for (party, decision) in &s.parties {
            tx.execute(
                "INSERT INTO schedule_parties (schedule_id, party, decision, reason, updated_at) \
                 VALUES (?1, ?2, ?3, NULL, ?4) ON CONFLICT (schedule_id, party) DO NOTHING",
                params![s.id, party, decision.as_str(), now],
            )?;
        }
        let record = get(&tx, &s.id)?
            .ok_or_else(|| StoreError::Db(format!("schedule '{}' vanished", s.id)))?;
        tx.commit()?;
        tracing::info!(schedule = %s.id, "recorded schedule");
        Ok(record)
    }

    /// The schedule `id`; the error lists the known ids.
    pub fn schedule(&self, id: &str) -> Result<ScheduleRecord, StoreError> {
        let conn = self.conn();
        get(&conn, id)?.ok_or_else(|| not_found(&conn, id))
    }

    /// The schedule `id`, `None` if there is none (for ids a partner names: the answer must
    /// not list this node's schedules).
    pub fn find_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        get(&self.conn(), id)
    }

    /// Every schedule, oldest first; deleted ones only if `include_deleted`.
    pub fn list_schedules(&self, include_deleted: bool) -> Result<Vec<ScheduleRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY created_at, id"
        ))?;
        let raws = stmt
            .query_map([], raw_schedule)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter()
            .map(|r| finish(&conn, r))
            .filter(|r| {
                r.as_ref().map_or(true, |s| {
                    include_deleted || s.status != ScheduleStatus::Deleted
                })
            })
            .collect()
    }

    /// Sets a schedule's status, reason and next fire time.
    pub fn set_schedule_status(
        &self,
        id: &str,
        status: ScheduleStatus,
        reason: Option<&str>,
        next_run: Option<&str>,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE schedules SET status = ?2, reason = ?3, next_run = ?4, updated_at = ?5 WHERE id = ?1",
            params![id, status.as_str(), cut(reason), next_run, now_utc()],
        )?;
        if n == 0 {
            return Err(not_found(&conn, id));
        }
        Ok(())
    }

    /// Records a party's decision (adding the party if the schedule does not list it yet).
    pub fn set_schedule_party(
        &self,
        id: &str,
        party: &str,
        decision: PartyDecision,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        validate_label("party", party)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if get(&tx, id)?.is_none() {
            return Err(not_found(&tx, id));
        }
        tx.execute(
            "INSERT INTO schedule_parties (schedule_id, party, decision, reason, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (schedule_id, party) DO UPDATE SET \
             decision = excluded.decision, reason = excluded.reason, updated_at = excluded.updated_at",
            params![id, party, decision.as_str(), cut(reason), now_utc()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Active schedules whose next fire time is at or before `now` (store time format), oldest
    /// fire time first.
    pub fn due_schedules(&self, now: &str) -> Result<Vec<ScheduleRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE status = 'active' \
             AND next_run IS NOT NULL AND next_run <= ?1 ORDER BY next_run, id"
        ))?;
        let raws = stmt
            .query_map([now], raw_schedule)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(|r| finish(&conn, r)).collect()
    }

    /// Moves an active schedule's next fire time from `expected` to `next`, if it still is
    /// `expected`: whoever gets `true` owns the fire time (two ticks never both run it).
    pub fn claim_schedule_fire(
        &self,
        id: &str,
        expected: &str,
        next: Option<&str>,
    ) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE schedules SET next_run = ?3, updated_at = ?4 \
             WHERE id = ?1 AND status = 'active' AND next_run = ?2",
            params![id, expected, next, now_utc()],
        )?;
        Ok(n == 1)
    }

    /// Records a run (or a skipped fire time) under the schedule; a run with a job becomes
    /// the schedule's last run and counts. Returns its sequence number.
    pub fn record_schedule_run(
        &self,
        id: &str,
        fire_time: &str,
        job_id: Option<&str>,
        outcome: RunOutcome,
        detail: Option<&str>,
    ) -> Result<u64, StoreError> {
        if let Some(j) = job_id {
            crate::validate_job_id(j)?;
        }
        let now = now_utc();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if get(&tx, id)?.is_none() {
            return Err(not_found(&tx, id));
        }
        let seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM schedule_runs WHERE schedule_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO schedule_runs (schedule_id, seq, fire_time, job_id, outcome, detail, recorded_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id, seq, fire_time, job_id, outcome.as_str(), cut(detail), now],
        )?;
        if job_id.is_some() {
            tx.execute(
                "UPDATE schedules SET last_run = ?2, last_job_id = ?3, run_count = run_count + 1, \
                 updated_at = ?4 WHERE id = ?1",
                params![id, fire_time, job_id, now],
            )?;
        }
        tx.commit()?;
        to_u64(seq, "run sequence number")
    }

    /// The schedule's runs, oldest first, each with its job's status on this node.
    pub fn schedule_runs(&self, id: &str) -> Result<Vec<ScheduleRun>, StoreError> {
        let conn = self.conn();
        if get(&conn, id)?.is_none() {
            return Err(not_found(&conn, id));
        }
        let mut stmt = conn.prepare(
            "SELECT r.seq, r.fire_time, r.job_id, r.outcome, r.detail, j.status, r.recorded_at \
             FROM schedule_runs r LEFT JOIN jobs j ON j.id = r.job_id \
             WHERE r.schedule_id = ?1 ORDER BY r.seq",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        rows.map(|r| {
            let (seq, fire_time, job_id, outcome, detail, job_status, recorded_at) = r?;
            Ok(ScheduleRun {
                seq: to_u64(seq, "run sequence number")?,
                fire_time,
                job_id,
                outcome: outcome.parse()?,
                detail,
                job_status,
                recorded_at,
            })
        })
        .collect()
    }

    /// The schedule a job is a run of, `None` for a job of no schedule.
    pub fn schedule_of_job(&self, job_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT schedule_id FROM schedule_runs WHERE job_id = ?1 LIMIT 1",
                [job_id],
                |r| r.get(0),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JobRow, JobStatus, ModelSigner};

    fn store() -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let signer = ModelSigner::generate().unwrap();
        let store =
            Store::open(&tmp.path().join("state"), &tmp.path().join("data"), signer).unwrap();
        (tmp, store)
    }

    fn new_schedule(id: &str) -> NewSchedule {
        let mut s = NewSchedule::new(id, "nightly-psi", "{\"x\":1}", "0 2 * * *", "bank");
        s.created_by = "user:alice".into();
        s.parties = vec![
            ("bank".into(), PartyDecision::Approved),
            ("telco".into(), PartyDecision::Pending),
        ];
        s
    }

    #[test]
    fn a_schedule_is_recorded_with_its_parties_and_found_by_id() {
        let (_tmp, store) = store();
        let rec = store.insert_schedule(&new_schedule("sched-1")).unwrap();
        assert_eq!(rec.status, ScheduleStatus::PendingApproval);
        assert_eq!(rec.created_by, "user:alice");
        assert_eq!(rec.decision_of("telco"), Some(PartyDecision::Pending));
        assert_eq!(rec.decision_of("insurer"), None);
        assert_eq!(rec.run_count, 0);
        assert_eq!(store.schedule("sched-1").unwrap(), rec);
        // Ids are never reused.
        let e = store.insert_schedule(&new_schedule("sched-1")).unwrap_err();
        assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e}");
        // An unknown id names the known ones locally; find_schedule answers None.
        let e = store.schedule("sched-2").unwrap_err().to_string();
        assert!(
            e.contains("no schedule named 'sched-2'") && e.contains("sched-1"),
            "{e}"
        );
        assert!(store.find_schedule("sched-2").unwrap().is_none());
        for bad in [
            "sched-",
            "job-1",
            "sched-a/b",
            "sched-../x",
            &format!("sched-{}", "a".repeat(61)),
        ] {
            assert!(store.insert_schedule(&new_schedule(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn decisions_statuses_and_deleted_schedules() {
        let (_tmp, store) = store();
        store.insert_schedule(&new_schedule("sched-1")).unwrap();
        store
            .set_schedule_party(
                "sched-1",
                "telco",
                PartyDecision::Revoked,
                Some(&"x".repeat(5000)),
            )
            .unwrap();
        let rec = store.schedule("sched-1").unwrap();
        assert_eq!(rec.decision_of("telco"), Some(PartyDecision::Revoked));
        let reason = rec
            .parties
            .iter()
            .find(|p| p.party == "telco")
            .unwrap()
            .reason
            .clone();
        assert_eq!(reason.unwrap().len(), MAX_SCHEDULE_REASON);
        store
            .set_schedule_status("sched-1", ScheduleStatus::Deleted, Some("by alice"), None)
            .unwrap();
        assert!(store.list_schedules(false).unwrap().is_empty());
        assert_eq!(store.list_schedules(true).unwrap().len(), 1);
        assert!(
            store
                .set_schedule_status("sched-9", ScheduleStatus::Active, None, None)
                .is_err()
        );
    }

    #[test]
    fn due_schedules_and_a_fire_time_is_claimed_once() {
        let (_tmp, store) = store();
        let mut s = new_schedule("sched-1");
        s.status = ScheduleStatus::Active;
        s.next_run = Some("2026-12-05T02:00:00.000Z".into());
        store.insert_schedule(&s).unwrap();
        let mut paused = new_schedule("sched-2");
        paused.status = ScheduleStatus::Paused;
        paused.next_run = Some("2026-12-05T02:00:00.000Z".into());
        store.insert_schedule(&paused).unwrap();
        assert!(
            store
                .due_schedules("2026-12-05T01:59:59.999Z")
                .unwrap()
                .is_empty()
        );
        let due = store.due_schedules("2026-12-05T02:00:00.000Z").unwrap();
        assert_eq!(
            due.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["sched-1"]
        );
        let (t, next) = ("2026-12-05T02:00:00.000Z", "2026-12-06T02:00:00.000Z");
        assert!(store.claim_schedule_fire("sched-1", t, Some(next)).unwrap());
        // The second claimant of the same fire time loses.
        assert!(!store.claim_schedule_fire("sched-1", t, Some(next)).unwrap());
        assert!(!store.claim_schedule_fire("sched-2", t, Some(next)).unwrap());
        assert_eq!(
            store.schedule("sched-1").unwrap().next_run.as_deref(),
            Some(next)
        );
    }

    #[test]
    fn runs_link_jobs_to_their_schedule() {
        let (_tmp, store) = store();
        store.insert_schedule(&new_schedule("sched-1")).unwrap();
        store
            .insert_job(&JobRow::new(
                "job-1",
                "{}",
                "bank",
                "guest",
                JobStatus::Running,
            ))
            .unwrap();
        let t1 = "2026-12-05T02:00:00.000Z";
        assert_eq!(
            store
                .record_schedule_run("sched-1", t1, Some("job-1"), RunOutcome::Submitted, None)
                .unwrap(),
            1
        );
        let t2 = "2026-12-06T02:00:00.000Z";
        store
            .record_schedule_run(
                "sched-1",
                t2,
                None,
                RunOutcome::Skipped,
                Some("job-1 is still running"),
            )
            .unwrap();
        let rec = store.schedule("sched-1").unwrap();
        // A skipped fire time is listed but is not a run.
        assert_eq!(
            (
                rec.run_count,
                rec.last_job_id.as_deref(),
                rec.last_run.as_deref()
            ),
            (1, Some("job-1"), Some(t1))
        );
        let runs = store.schedule_runs("sched-1").unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].job_status.as_deref(), Some("running"));
        assert_eq!(
            (runs[1].seq, runs[1].outcome, runs[1].job_id.clone()),
            (2, RunOutcome::Skipped, None)
        );
        assert_eq!(
            store.schedule_of_job("job-1").unwrap().as_deref(),
            Some("sched-1")
        );
        assert_eq!(store.schedule_of_job("job-2").unwrap(), None);
        assert!(
            store
                .record_schedule_run("sched-1", t1, Some("../x"), RunOutcome::Submitted, None)
                .is_err()
        );
    }
}
