//! Jobs, tasks, partner statuses, logs, metrics and the message audit trail. The scheduler
//! owns the state machine; the store keeps what it decides.

use crate::datasets::{from_json, to_json};
use crate::time::now_utc;
use crate::{Store, StoreError, to_i64, to_u64, validate_label};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

text_enum!(
    /// A job's state on this node (or as a partner reported it).
    JobStatus, "job status" {
        PendingApproval => "pending_approval",
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

text_enum!(
    /// A task's state within a job.
    TaskStatus, "task status" {
        Pending => "pending",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
        Skipped => "skipped",
    }
);

text_enum!(
    /// Which way a message went.
    Direction, "direction" {
        Sent => "sent",
        Received => "received",
    }
);

impl JobStatus {
    /// Succeeded, failed or cancelled: nothing more will happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl TaskStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, TaskStatus::Pending | TaskStatus::Running)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRow {
    pub id: String,
    /// The job's specification as submitted (JSON text, stored verbatim).
    pub spec_json: String,
    /// The party that started the job.
    pub initiator: String,
    /// This node's role in the job.
    pub my_role: String,
    pub status: JobStatus,
    pub reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl JobRow {
    /// A row stamped now.
    pub fn new(
        id: &str,
        spec_json: &str,
        initiator: &str,
        my_role: &str,
        status: JobStatus,
    ) -> Self {
        let now = now_utc();
        JobRow {
            id: id.to_string(),
            spec_json: spec_json.to_string(),
            initiator: initiator.to_string(),
            my_role: my_role.to_string(),
            status,
            reason: None,
            created_at: now.clone(),
            updated_at: now,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRow {
    pub job_id: String,
    pub task: String,
    pub status: TaskStatus,
    /// 0 to 1.
    pub progress: f64,
    pub error: Option<String>,
    /// What the task produced (dataset and model references), as set by the scheduler.
    pub outputs: Option<serde_json::Value>,
    pub updated_at: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Order within the job, from 1.
    pub seq: u64,
    pub task: String,
    pub at: String,
    pub line: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub task: String,
    pub name: String,
    pub step: u64,
    /// NaN when the recorded value was not finite (stored as NULL).
    pub value: f64,
    pub at: String,
}

/// One protocol message, as the transport saw it (never its content).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub job_id: String,
    pub task: String,
    pub direction: Direction,
    pub peer: String,
    pub tag: String,
    pub bytes: u64,
    pub payload_type: String,
    pub at: String,
}

const JOB_COLUMNS: &str =
    "id, spec_json, initiator, my_role, status, reason, created_at, updated_at";

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(JobRow, String)> {
    let status: String = r.get(4)?;
    Ok((
        JobRow {
            id: r.get(0)?,
            spec_json: r.get(1)?,
            initiator: r.get(2)?,
            my_role: r.get(3)?,
            status: JobStatus::Queued, // replaced below from the text
            reason: r.get(5)?,
            created_at: r.get(6)?,
            updated_at: r.get(7)?,
        },
        status,
    ))
}

fn finish_job((mut row, status): (JobRow, String)) -> Result<JobRow, StoreError> {
    row.status = status.parse().map_err(|_| {
        StoreError::Db(format!(
            "job '{}' has unknown stored status '{status}'",
            row.id
        ))
    })?;
    Ok(row)
}

fn require_job(conn: &Connection, id: &str) -> Result<(), StoreError> {
    let exists = conn
        .query_row("SELECT 1 FROM jobs WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some();
    if exists {
        return Ok(());
    }
    let mut stmt = conn.prepare("SELECT id FROM jobs ORDER BY created_at DESC LIMIT 20")?;
    let known = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Err(StoreError::NotFound {
        kind: "job",
        name: id.to_string(),
        known,
    })
}

/// The next sequence number of a per-job append-only table, inside the inserting transaction.
fn next_seq(tx: &Transaction<'_>, table: &str, job_id: &str) -> Result<i64, StoreError> {
    let max: Option<i64> = tx.query_row(
        &format!("SELECT MAX(seq) FROM {table} WHERE job_id = ?1"),
        [job_id],
        |r| r.get(0),
    )?;
    Ok(max.unwrap_or(0) + 1)
}

fn check_progress(progress: f64) -> Result<f64, StoreError> {
    if !(0.0..=1.0).contains(&progress) {
        return Err(StoreError::invalid(format!(
            "task progress {progress} is not between 0 and 1"
        )));
    }
    Ok(progress)
}

impl Store {
    /// Records a new job (the id must be new). Empty timestamps are filled with now.
    pub fn insert_job(&self, job: &JobRow) -> Result<(), StoreError> {
        crate::validate_job_id(&job.id)?;
        let now = now_utc();
        let created = if job.created_at.is_empty() {
            &now
        } else {
            &job.created_at
        };
        let updated = if job.updated_at.is_empty() {
            &now
        } else {
            &job.updated_at
        };
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists = tx
            .query_row("SELECT 1 FROM jobs WHERE id = ?1", [&job.id], |_| Ok(()))
            .optional()?
            .is_some();
        if exists {
            return Err(StoreError::AlreadyExists {
                kind: "job",
                name: job.id.clone(),
                hint: "job ids must be unique".into(),
            });
        }
        tx.execute(
            &format!("INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
            params![
                job.id,
                job.spec_json,
                job.initiator,
                job.my_role,
                job.status.as_str(),
                job.reason,
                created,
                updated
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Keeps what a job reuses from an earlier job (JSON, the node's `Reuse`), so that a job
    /// waiting for approval can be rebuilt after a restart.
    pub fn set_job_reuse(&self, job_id: &str, reuse_json: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        require_job(&conn, job_id)?;
        conn.execute(
            "INSERT INTO job_reuse (job_id, reuse_json) VALUES (?1, ?2) \
             ON CONFLICT (job_id) DO UPDATE SET reuse_json = excluded.reuse_json",
            params![job_id, reuse_json],
        )?;
        Ok(())
    }

    /// What [`Store::set_job_reuse`] kept for a job (`None`: it reuses nothing).
    pub fn job_reuse(&self, job_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT reuse_json FROM job_reuse WHERE job_id = ?1",
                [job_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Sets a job's status and reason (the reason is replaced, also by `None`).
    pub fn update_job_status(
        &self,
        id: &str,
        status: JobStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        #[cfg(debug_assertions)] // the name is formatted only where crash points exist
        crate::crash_point(&format!("job-status-{}", status.as_str()));
        let conn = self.conn();
        let changed = conn.execute(
            "UPDATE jobs SET status = ?1, reason = ?2, updated_at = ?3 WHERE id = ?4",
            params![status.as_str(), reason, now_utc(), id],
        )?;
        if changed == 0 {
            require_job(&conn, id)?;
        }
        Ok(())
    }

    pub fn job(&self, id: &str) -> Result<JobRow, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                job_row,
            )
            .optional()?;
        match row {
            Some(r) => finish_job(r),
            None => {
                require_job(&conn, id)?;
                Err(StoreError::Db(format!(
                    "job '{id}' vanished while being read"
                )))
            }
        }
    }

    /// Every job, newest first.
    pub fn list_jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at DESC, id"
        ))?;
        let rows = stmt.query_map([], job_row)?;
        rows.map(|r| finish_job(r?)).collect()
    }

    /// Creates or updates a task's status, progress (0 to 1) and error; outputs are kept.
    pub fn upsert_task(
        &self,
        job_id: &str,
        task: &str,
        status: TaskStatus,
        progress: f64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        validate_label("task name", task)?;
        let progress = check_progress(progress)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_job(&tx, job_id)?;
        tx.execute(
            "INSERT INTO tasks (job_id, task, status, progress, error, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (job_id, task) DO UPDATE SET status = excluded.status, progress = excluded.progress, \
             error = excluded.error, updated_at = excluded.updated_at",
            params![job_id, task, status.as_str(), progress, error, now_utc()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The job's tasks, by name.
    pub fn tasks(&self, job_id: &str) -> Result<Vec<TaskRow>, StoreError> {
        let conn = self.conn();
        require_job(&conn, job_id)?;
        let mut stmt = conn.prepare(
            "SELECT task, status, progress, error, outputs_json, updated_at FROM tasks WHERE job_id = ?1 ORDER BY task",
        )?;
        let rows = stmt.query_map([job_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, f64>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        rows.map(|r| {
            let (task, status, progress, error, outputs, updated_at) = r?;
            Ok(TaskRow {
                job_id: job_id.to_string(),
                status: status.parse().map_err(|_| {
                    StoreError::Db(format!(
                        "task '{task}' has unknown stored status '{status}'"
                    ))
                })?,
                outputs: outputs
                    .as_deref()
                    .map(|o| from_json(o, "task outputs"))
                    .transpose()?,
                task,
                progress,
                error,
                updated_at,
            })
        })
        .collect()
    }

    /// Records what a task produced (references to datasets and models), so part of a DAG
    /// can be re-run from it. The task must exist.
    pub fn set_task_outputs(
        &self,
        job_id: &str,
        task: &str,
        outputs: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let json = to_json(outputs)?;
        let conn = self.conn();
        let changed = conn.execute(
            "UPDATE tasks SET outputs_json = ?1, updated_at = ?2 WHERE job_id = ?3 AND task = ?4",
            params![json, now_utc(), job_id, task],
        )?;
        if changed == 0 {
            require_job(&conn, job_id)?;
            let mut stmt =
                conn.prepare("SELECT task FROM tasks WHERE job_id = ?1 ORDER BY task")?;
            let known = stmt
                .query_map([job_id], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            return Err(StoreError::NotFound {
                kind: "task",
                name: format!("{task} (job {job_id})"),
                known,
            });
        }
        Ok(())
    }

    /// Records the status a partner reported for a job.
    pub fn set_party_status(
        &self,
        job_id: &str,
        party: &str,
        status: JobStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        validate_label("party", party)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_job(&tx, job_id)?;
        tx.execute(
            "INSERT INTO job_parties (job_id, party, status, reason, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (job_id, party) DO UPDATE SET status = excluded.status, reason = excluded.reason, \
             updated_at = excluded.updated_at",
            params![job_id, party, status.as_str(), reason, now_utc()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// (party, status, reason) for every partner that reported, by party.
    pub fn party_statuses(
        &self,
        job_id: &str,
    ) -> Result<Vec<(String, JobStatus, Option<String>)>, StoreError> {
        let conn = self.conn();
        require_job(&conn, job_id)?;
        let mut stmt = conn.prepare(
            "SELECT party, status, reason FROM job_parties WHERE job_id = ?1 ORDER BY party",
        )?;
        let rows = stmt.query_map([job_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        rows.map(|r| {
            let (party, status, reason) = r?;
            let status = status.parse().map_err(|_| {
                StoreError::Db(format!(
                    "party '{party}' has unknown stored status '{status}'"
                ))
            })?;
            Ok((party, status, reason))
        })
        .collect()
    }

    /// Appends a log line to a job (one durable transaction per call: use
    /// [`Store::append_logs`] for bursts).
    pub fn append_log(&self, job_id: &str, task: &str, line: &str) -> Result<(), StoreError> {
        self.append_logs(job_id, task, &[line])
    }

    /// Appends several lines in one transaction.
    pub fn append_logs(&self, job_id: &str, task: &str, lines: &[&str]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_job(&tx, job_id)?;
        let mut seq = next_seq(&tx, "job_logs", job_id)?;
        let at = now_utc();
        {
            let mut stmt = tx.prepare(
                "INSERT INTO job_logs (job_id, seq, task, logged_at, line) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for line in lines {
                stmt.execute(params![job_id, seq, task, at, line])?;
                seq += 1;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The job's log in order, optionally of one task.
    pub fn logs(&self, job_id: &str, task: Option<&str>) -> Result<Vec<LogLine>, StoreError> {
        let conn = self.conn();
        require_job(&conn, job_id)?;
        let mut stmt = conn.prepare(
            "SELECT seq, task, logged_at, line FROM job_logs WHERE job_id = ?1 AND (?2 IS NULL OR task = ?2) ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![job_id, task], |r| {
            Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        rows.map(|r| {
            let (seq, task, at, line) = r?;
            Ok(LogLine {
                seq: to_u64(seq, "log sequence number")?,
                task,
                at,
                line,
            })
        })
        .collect()
    }

    /// Records a metric value at a step; recording the same (task, name, step) again replaces it.
    pub fn record_metric(
        &self,
        job_id: &str,
        task: &str,
        name: &str,
        step: u64,
        value: f64,
    ) -> Result<(), StoreError> {
        validate_label("metric name", name)?;
        let step = to_i64(step, "metric step")?;
        let stored = value.is_finite().then_some(value);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_job(&tx, job_id)?;
        tx.execute(
            "INSERT INTO job_metrics (job_id, task, name, step, metric, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (job_id, task, name, step) DO UPDATE SET metric = excluded.metric, recorded_at = excluded.recorded_at",
            params![job_id, task, name, step, stored, now_utc()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The job's metrics by task, name and step, optionally of one task.
    pub fn metrics(&self, job_id: &str, task: Option<&str>) -> Result<Vec<MetricRow>, StoreError> {
        let conn = self.conn();
        require_job(&conn, job_id)?;
        let mut stmt = conn.prepare(
            "SELECT task, name, step, metric, recorded_at FROM job_metrics WHERE job_id = ?1 AND (?2 IS NULL OR task = ?2) \
             ORDER BY task, name, step",
        )?;
        let rows = stmt.query_map(params![job_id, task], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<f64>>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        rows.map(|r| {
            let (task, name, step, value, at) = r?;
            Ok(MetricRow {
                task,
                name,
                step: to_u64(step, "metric step")?,
                value: value.unwrap_or(f64::NAN),
                at,
            })
        })
        .collect()
    }

    /// Records one message of the audit trail.
    pub fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.record_audits(std::slice::from_ref(entry))
    }

    /// Records several messages in one transaction (they may belong to different jobs).
    pub fn record_audits(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO job_audit (job_id, seq, task, direction, peer, tag, byte_count, payload_type, occurred_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut next: Option<(&str, i64)> = None;
            for e in entries {
                let seq = match next {
                    Some((job, seq)) if job == e.job_id => seq,
                    _ => {
                        require_job(&tx, &e.job_id)?;
                        next_seq(&tx, "job_audit", &e.job_id)?
                    }
                };
                let at = if e.at.is_empty() {
                    now_utc()
                } else {
                    e.at.clone()
                };
                stmt.execute(params![
                    e.job_id,
                    seq,
                    e.task,
                    e.direction.as_str(),
                    e.peer,
                    e.tag,
                    to_i64(e.bytes, "message size")?,
                    e.payload_type,
                    at
                ])?;
                next = Some((&e.job_id, seq + 1));
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The job's audit trail in order.
    pub fn audit(&self, job_id: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        require_job(&conn, job_id)?;
        let mut stmt = conn.prepare(
            "SELECT task, direction, peer, tag, byte_count, payload_type, occurred_at FROM job_audit \
             WHERE job_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([job_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        rows.map(|r| {
            let (task, direction, peer, tag, bytes, payload_type, at) = r?;
            Ok(AuditEntry {
                job_id: job_id.to_string(),
                task,
                direction: direction.parse().map_err(|_| {
                    StoreError::Db(format!("unknown stored direction '{direction}'"))
                })?,
                peer,
                tag,
                bytes: to_u64(bytes, "message size")?,
                payload_type,
                at,
            })
        })
        .collect()
    }

    /// After a restart: every job that was queued or running becomes failed with `reason`, and
    /// every pending or running task of a job not awaiting approval becomes failed with
    /// `reason` as its error. One transaction; returns how many jobs changed.
    pub fn fail_unfinished_jobs(&self, reason: &str) -> Result<usize, StoreError> {
        let now = now_utc();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let jobs = tx.execute(
            "UPDATE jobs SET status = 'failed', reason = ?1, updated_at = ?2 WHERE status IN ('queued', 'running')",
            params![reason, now],
        )?;
        let tasks = tx.execute(
            "UPDATE tasks SET status = 'failed', error = ?1, updated_at = ?2 WHERE status IN ('pending', 'running') \
             AND job_id IN (SELECT id FROM jobs WHERE status <> 'pending_approval')",
            params![reason, now],
        )?;
        tx.commit()?;
        if jobs > 0 || tasks > 0 {
            tracing::warn!(
                jobs,
                tasks,
                reason,
                "marked unfinished jobs and tasks failed"
            );
        }
        Ok(jobs)
    }
}
