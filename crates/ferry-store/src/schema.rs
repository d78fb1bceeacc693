//! Numbered migrations. Each runs once, in its own transaction, and is recorded in
//! `schema_migrations`; a database written by a newer ferry (a higher number) is refused
//! rather than guessed at.
//!
//! The SQL is kept to what SQLite and PostgreSQL both accept: `TEXT`, `BIGINT`,
//! `DOUBLE PRECISION` (PostgreSQL's `REAL` is single precision), no `BLOB` (hashes and
//! signatures are hex text), no `AUTOINCREMENT` (sequence numbers are assigned by the store
//! inside the inserting transaction), JSON as `TEXT`, timestamps as ISO-8601 UTC `TEXT`.

use crate::StoreError;
use crate::time::now_utc;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        sql: r#"
CREATE TABLE api_tokens (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT
);

CREATE TABLE datasets (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    file            TEXT NOT NULL,
    format          TEXT NOT NULL,
    id_columns_json TEXT NOT NULL,
    label           TEXT,
    label_kind      TEXT,
    columns_json    TEXT NOT NULL,
    row_count       BIGINT NOT NULL,
    byte_count      BIGINT NOT NULL,
    sha256          TEXT NOT NULL,
    description     TEXT NOT NULL,
    lineage_json    TEXT,
    stats_json      TEXT,
    created_at      TEXT NOT NULL
);

CREATE TABLE dataset_grants (
    dataset_id  TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    target_kind TEXT NOT NULL CHECK (target_kind IN ('party', 'job')),
    target      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (dataset_id, target_kind, target)
);

CREATE TABLE model_names (
    name         TEXT PRIMARY KEY,
    last_version BIGINT NOT NULL
);

CREATE TABLE models (
    name              TEXT NOT NULL,
    version           BIGINT NOT NULL,
    kind              TEXT NOT NULL,
    party_role        TEXT NOT NULL,
    file              TEXT NOT NULL,
    byte_count        BIGINT NOT NULL,
    sha256            TEXT NOT NULL,
    lineage_json      TEXT NOT NULL,
    metrics_json      TEXT NOT NULL,
    statement_version BIGINT NOT NULL,
    signature         TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE jobs (
    id         TEXT PRIMARY KEY,
    spec_json  TEXT NOT NULL,
    initiator  TEXT NOT NULL,
    my_role    TEXT NOT NULL,
    status     TEXT NOT NULL,
    reason     TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX jobs_by_status ON jobs (status);

CREATE TABLE tasks (
    job_id       TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    task         TEXT NOT NULL,
    status       TEXT NOT NULL,
    progress     DOUBLE PRECISION NOT NULL,
    error        TEXT,
    outputs_json TEXT,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (job_id, task)
);

CREATE TABLE job_parties (
    job_id     TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    party      TEXT NOT NULL,
    status     TEXT NOT NULL,
    reason     TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (job_id, party)
);

CREATE TABLE job_logs (
    job_id    TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL,
    task      TEXT NOT NULL,
    logged_at TEXT NOT NULL,
    line      TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE job_metrics (
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    task        TEXT NOT NULL,
    name        TEXT NOT NULL,
    step        BIGINT NOT NULL,
    metric      DOUBLE PRECISION,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (job_id, task, name, step)
);

CREATE TABLE job_audit (
    job_id       TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    task         TEXT NOT NULL,
    direction    TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
    peer         TEXT NOT NULL,
    tag          TEXT NOT NULL,
    byte_count   BIGINT NOT NULL,
    payload_type TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
"#,
    },
    Migration {
        version: 2,
        name: "anonymous query services and query records",
        sql: r#"
CREATE TABLE query_services (
    name               TEXT PRIMARY KEY,
    dataset            TEXT NOT NULL,
    key_columns_json   TEXT NOT NULL,
    value_columns_json TEXT NOT NULL,
    description        TEXT NOT NULL,
    status             TEXT NOT NULL,
    error              TEXT,
    version            BIGINT NOT NULL,
    table_file         TEXT,
    table_id           TEXT,
    dataset_sha256     TEXT,
    row_count          BIGINT NOT NULL,
    value_len          BIGINT NOT NULL,
    built_at           TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);

CREATE TABLE query_service_sessions (
    service    TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    partner    TEXT NOT NULL,
    version    BIGINT NOT NULL,
    id_count   BIGINT NOT NULL,
    outcome    TEXT NOT NULL,
    seconds    DOUBLE PRECISION NOT NULL,
    served_at  TEXT NOT NULL,
    PRIMARY KEY (service, seq)
);

CREATE TABLE queries (
    id              TEXT PRIMARY KEY,
    provider        TEXT NOT NULL,
    service         TEXT NOT NULL,
    requested_by    TEXT NOT NULL,
    id_count        BIGINT NOT NULL,
    found           BIGINT NOT NULL,
    status          TEXT NOT NULL,
    error           TEXT,
    table_id        TEXT,
    table_rows      BIGINT,
    hint_downloaded BIGINT NOT NULL,
    bytes_sent      BIGINT NOT NULL,
    bytes_received  BIGINT NOT NULL,
    seconds         DOUBLE PRECISION NOT NULL,
    result_file     TEXT,
    started_at      TEXT NOT NULL,
    finished_at     TEXT
);
CREATE INDEX queries_by_start ON queries (started_at);
"#,
    },
    Migration {
        version: 3,
        name: "named users, their roles and console sessions; personal tokens",
        sql: r#"
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    roles_json    TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    disabled_at   TEXT
);

CREATE TABLE user_sessions (
    secret_sha256 TEXT PRIMARY KEY,
    user_name     TEXT NOT NULL,
    csrf_token    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_ms    BIGINT NOT NULL
);

ALTER TABLE api_tokens ADD COLUMN owner TEXT;
"#,
    },
    Migration {
        version: 4,
        name: "action log as a hash chain; own and partners' signed checkpoints",
        sql: r#"
CREATE TABLE audit_actions (
    seq         BIGINT PRIMARY KEY,
    occurred_at TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object      TEXT NOT NULL,
    address     TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    status      BIGINT,
    detail      TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_actions_by_time ON audit_actions (occurred_at);

CREATE TABLE audit_checkpoints (
    seq       BIGINT PRIMARY KEY,
    party     TEXT NOT NULL,
    hash      TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    signature TEXT NOT NULL
);

CREATE TABLE audit_partner_checkpoints (
    partner     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    signed_at   TEXT NOT NULL,
    signature   TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (partner, seq, hash)
);
"#,
    },
    Migration {
        version: 5,
        name: "projects, their members, and grants to a project",
        // A CHECK constraint cannot be altered in SQLite, so dataset_grants is rebuilt with
        // 'project' allowed, its rows copied (the same statements work on PostgreSQL).
        sql: r#"
CREATE TABLE projects (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE project_members (
    project    TEXT NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
    party      TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('invited', 'joined', 'declined')),
    invited_at TEXT NOT NULL,
    decided_at TEXT,
    PRIMARY KEY (project, party)
);

CREATE TABLE dataset_grants_v5 (
    dataset_id  TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    target_kind TEXT NOT NULL CHECK (target_kind IN ('party', 'job', 'project')),
    target      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (dataset_id, target_kind, target)
);
INSERT INTO dataset_grants_v5 (dataset_id, target_kind, target, created_at)
    SELECT dataset_id, target_kind, target, created_at FROM dataset_grants;
DROP TABLE dataset_grants;
ALTER TABLE dataset_grants_v5 RENAME TO dataset_grants;
"#,
    },
    Migration {
        version: 6,
        name: "what a job proposal reuses, kept so a pending job survives a restart",
        sql: r#"
CREATE TABLE job_reuse (
    job_id     TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    reuse_json TEXT NOT NULL
);
"#,
    },
    Migration {
        version: 7,
        name: "scheduled jobs: schedules, each party's decision, and the runs linked to them",
        // Runs link to jobs through schedule_runs rather than a column on jobs, so a fire
        // time that was skipped (no job) is listed under the schedule too.
        sql: r#"
CREATE TABLE schedules (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    spec_json          TEXT NOT NULL,
    cron               TEXT NOT NULL,
    utc_offset_minutes BIGINT NOT NULL,
    guest              TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN
        ('pending_approval', 'active', 'paused', 'rejected', 'revoked', 'deleted')),
    reason             TEXT,
    created_by         TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    next_run           TEXT,
    last_run           TEXT,
    last_job_id        TEXT,
    run_count          BIGINT NOT NULL
);
CREATE INDEX schedules_by_next_run ON schedules (status, next_run);

CREATE TABLE schedule_parties (
    schedule_id TEXT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    party       TEXT NOT NULL,
    decision    TEXT NOT NULL CHECK (decision IN ('pending', 'approved', 'rejected', 'revoked')),
    reason      TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (schedule_id, party)
);

CREATE TABLE schedule_runs (
    schedule_id TEXT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    fire_time   TEXT NOT NULL,
    job_id      TEXT,
    outcome     TEXT NOT NULL,
    detail      TEXT,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (schedule_id, seq)
);
CREATE INDEX schedule_runs_by_job ON schedule_runs (job_id);
"#,
    },
    Migration {
        version: 8,
        name: "requests of this node's users that wait for a second person, and their decisions",
        sql: r#"
CREATE TABLE local_approvals (
    kind         TEXT NOT NULL,
    id           TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    decided_by   TEXT,
    decided_at   TEXT,
    decision     TEXT CHECK (decision IN ('approved', 'rejected')),
    reason       TEXT,
    PRIMARY KEY (kind, id)
);
"#,
    },
    Migration {
        version: 9,
        name: "deployed models (model services) and the guest's log of prediction requests",
        sql: r#"
CREATE TABLE model_services (
    name            TEXT PRIMARY KEY,
    role            TEXT NOT NULL CHECK (role IN ('guest', 'host')),
    guest           TEXT NOT NULL,
    deployment_id   TEXT NOT NULL,
    model           TEXT NOT NULL,
    version         BIGINT NOT NULL,
    pending_version BIGINT,
    kind            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN
        ('pending_approval', 'active', 'rejected', 'failed', 'undeployed')),
    reason          TEXT,
    dataset         TEXT,
    detail_json     TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    requests        BIGINT NOT NULL,
    ids             BIGINT NOT NULL,
    errors          BIGINT NOT NULL,
    last_request_at TEXT
);

CREATE TABLE model_service_requests (
    request_id TEXT PRIMARY KEY,
    service    TEXT NOT NULL,
    actor      TEXT NOT NULL,
    ids        BIGINT NOT NULL,
    outcome    TEXT NOT NULL,
    millis     DOUBLE PRECISION NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX model_service_requests_by_time ON model_service_requests (at);
CREATE INDEX model_service_requests_by_service ON model_service_requests (service, at);
"#,
    },
    Migration {
        version: 10,
        name: "audit checkpoints record their signature algorithm, and SM2 ones their key and key binding",
        sql: r#"
ALTER TABLE audit_checkpoints ADD COLUMN algorithm TEXT NOT NULL DEFAULT 'ecdsa-p256-sha256';
ALTER TABLE audit_checkpoints ADD COLUMN sm2_public_key TEXT;
ALTER TABLE audit_checkpoints ADD COLUMN key_binding TEXT;
ALTER TABLE audit_partner_checkpoints ADD COLUMN algorithm TEXT NOT NULL DEFAULT 'ecdsa-p256-sha256';
ALTER TABLE audit_partner_checkpoints ADD COLUMN sm2_public_key TEXT;
ALTER TABLE audit_partner_checkpoints ADD COLUMN key_binding TEXT;
"#,
    },
];

/// The highest migration this build knows.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// Applies every migration not yet recorded; returns how many ran.
pub(crate) fn migrate(conn: &mut Connection, db_path: &Path) -> Result<usize, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TEXT NOT NULL
         );",
    )?;
    let mut applied = 0;
    for m in MIGRATIONS {
        // IMMEDIATE takes the write lock first, so two processes opening the same database
        // cannot both decide a migration is pending.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: i64 = tx
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get::<_, Option<i64>>(0)
            })?
            .unwrap_or(0);
        if current > latest_version() {
            return Err(StoreError::SchemaTooNew {
                path: db_path.to_path_buf(),
                found: current,
                supported: latest_version(),
            });
        }
        let done = tx
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [m.version],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .is_some();
        if done {
            continue;
        }
        tx.execute_batch(m.sql).map_err(|e| {
            StoreError::Db(format!(
                "migration {} ({}) failed on {}: {e}",
                m.version,
                m.name,
                db_path.display()
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version, m.name, now_utc()],
        )?;
        tx.commit()?;
        applied += 1;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied database migration"
        );
    }
    Ok(applied)
}
