//! A Ferry node's persistent state: metadata in an embedded SQLite database, dataset and model
//! files under the node's data directory.
//!
//! [`Store`] is the only thing the node service needs: open it once per process with
//! [`Store::open`] and share it (`Arc<Store>`; it is `Send + Sync`). At start-up call
//! [`Store::fail_unfinished_jobs`] (no job stays "running" after a crash) and
//! [`Store::sweep_orphan_files`] (no file outlives its record).
//!
//! # File layout
//!
//! ```text
//! <node>/state/ferry.db                     SQLite database (WAL mode: also ferry.db-wal, -shm)
//! <node>/data/datasets/<id>/<file name>     one directory per dataset; <id> is 32 random hex digits
//! <node>/data/models/<name>/v<version>.bin  one file per model version (this party's part)
//! ```
//!
//! Paths in the database are relative to the data directory (`/`-separated), so a node
//! directory can be moved. Dataset and model names are 1–128 characters from
//! `A-Z a-z 0-9 . _ -` starting with a letter or digit ([`validate_name`]): always a single
//! path component.
//!
//! # Atomicity
//!
//! - **Files** are written to a temporary name in the destination directory (a leading dot
//!   and a `.partial` suffix), fsynced, renamed into place, and the directory fsynced. A crash
//!   leaves either the whole file or a `.partial` leftover, never a half file under a final name.
//! - **Records** are written in a single transaction each (`BEGIN IMMEDIATE`, so concurrent
//!   writers queue instead of failing), with `synchronous = FULL`: a call that returned has
//!   reached the disk.
//! - **Order**: a new file is complete before its record commits; a record is deleted before
//!   its file. A crash in between leaves at worst an unreferenced file, which
//!   [`Store::sweep_orphan_files`] removes; a record never points at a missing or partial file.
//! - **Registration** copies the source into a fresh `datasets/<id>/` directory and scans the
//!   copy (so what was validated is what is stored). Any failure removes that directory and
//!   leaves no record. `replace` commits the new record (taking over the old one's grants) before
//!   removing the old directory. Each dataset owns its directory alone, so deleting one never
//!   deletes a file another dataset uses.
//! - **Model versions** are `1 + the highest version ever stored under the name` (a
//!   `model_names` counter survives deletions, so a version number always means one model).
//!   The payload is written and fsynced before the database lock is taken; under the lock the
//!   version is chosen, the file renamed to `v<version>.bin`, and the record committed.
//! - Long file work (copying, scanning, hashing) runs outside the database lock, so a large
//!   registration does not stall status updates.
//!
//! # Model signatures
//!
//! Each model record carries the SHA-256 of its payload and an ECDSA P-256 / SHA-256 signature
//! (ASN.1 DER, stored as hex) made with the node's identity key ([`ModelSigner`], the PKCS#8
//! key in `identity/key.pem`) over this statement (UTF-8, every line ending in `\n`); under
//! the GM suite ([`ModelSigner::with_sm2`]) the signature is SM2 with SM3, stored as `sm2:` and
//! hex, and the prefix tells verification which key to use:
//!
//! ```text
//! ferry-model-statement/1
//! name=<name>
//! version=<version, decimal>
//! kind=<kind>
//! role=<role>
//! sha256=<payload SHA-256, lower-case hex>
//! created_at=<ISO-8601 UTC, as stored>
//! lineage_sha256=<SHA-256 of the stored lineage JSON text>
//! metrics_sha256=<SHA-256 of the stored metrics JSON text>
//! ```
//!
//! Name, kind and role are validated identifiers (no `=` or newline), so the encoding is
//! unambiguous. [`Store::load_model`] rebuilds the statement from the stored row, verifies the
//! signature with the node's public key, then hashes the file and compares; any mismatch
//! (a flipped byte in the file; an edited hash, signature, lineage, metrics or file pointer in
//! the database; a model signed by another node's key) is refused with
//! [`StoreError::TamperedModel`] and logged with `tracing::warn!`. The statement format
//! version is stored with the record ([`STATEMENT_VERSION`]) and checked on load.
//!
//! What this protects against: anyone who can change files in the data directory or rows in
//! the database but does not hold the node's private key. It does not protect against someone
//! who holds the key (they can sign anything), nor against rolling a model back to an older,
//! validly signed version by deleting newer records. Rotating the node key makes the models
//! signed with the old key unloadable (they must be re-trained or re-signed).
//!
//! # API tokens
//!
//! A secret is `fry_` followed by 32 random bytes in unpadded base64url (47 characters),
//! returned once by [`Store::create_token`]. The database keeps only the SHA-256 of the whole
//! secret; [`Store::verify_token`] compares the presented hash with every live token's hash
//! in constant time. Revoked tokens stay listed with their revocation time.
//!
//! # Schema (migration 1)
//!
//! All SQL sticks to what SQLite and PostgreSQL both accept (see `schema.rs`): `TEXT`,
//! `BIGINT`, `DOUBLE PRECISION`, JSON as `TEXT`, hashes and signatures as hex `TEXT`,
//! timestamps as ISO-8601 UTC `TEXT` (`2024-05-01T12:34:56.789Z`, fixed width so text order
//! is time order), `INSERT ... ON CONFLICT ... DO UPDATE`, no `AUTOINCREMENT` (per-job
//! sequence numbers are assigned inside the inserting transaction). A port to PostgreSQL
//! changes the `PRAGMA`s in [`Store::open`] and the `?N` placeholders (`$N`), nothing else.
//!
//! | table | columns (primary key first) |
//! |---|---|
//! | `schema_migrations` | `version`, `name`, `applied_at` |
//! | `api_tokens` | `name`, `role` (`admin`/`user`/`read_only`), `secret_sha256` (unique), `created_at`, `revoked_at` |
//! | `datasets` | `id`, `name` (unique), `file` (relative path), `format` (`csv`/`parquet`), `id_columns_json`, `label`, `label_kind`, `columns_json` (name, type, nullable), `row_count`, `byte_count`, `sha256`, `description`, `lineage_json`, `stats_json` (describe cache), `created_at` |
//! | `dataset_grants` | (`dataset_id` → datasets, `target_kind` (`party`/`job`), `target`), `created_at` |
//! | `model_names` | `name`, `last_version` (never decreases) |
//! | `models` | (`name`, `version`), `kind`, `party_role`, `file`, `byte_count`, `sha256`, `lineage_json`, `metrics_json`, `statement_version`, `signature`, `created_at` |
//! | `jobs` | `id`, `spec_json`, `initiator`, `my_role`, `status`, `reason`, `created_at`, `updated_at` (index on `status`) |
//! | `tasks` | (`job_id` → jobs, `task`), `status`, `progress`, `error`, `outputs_json`, `updated_at` |
//! | `job_parties` | (`job_id` → jobs, `party`), `status`, `reason`, `updated_at` |
//! | `job_logs` | (`job_id` → jobs, `seq`), `task`, `logged_at`, `line` |
//! | `job_metrics` | (`job_id` → jobs, `task`, `name`, `step`), `metric` (NULL for a non-finite value), `recorded_at` |
//! | `job_audit` | (`job_id` → jobs, `seq`), `task`, `direction` (`sent`/`received`), `peer`, `tag`, `byte_count`, `payload_type`, `occurred_at` |
//!
//! Migration 4 adds the action log ([`actions`]): `audit_actions` (`seq`, `occurred_at`,
//! `actor`, `action`, `object`, `address`, `outcome`, `status`, `detail`, `prev_hash`,
//! `hash`), this node's signed checkpoints `audit_checkpoints` (`seq`, `party`, `hash`,
//! `signed_at`, `signature`) and partners' `audit_partner_checkpoints` ((`partner`, `seq`,
//! `hash`), `signed_at`, `signature`, `received_at`).
//!
//! Migration 5 adds projects ([`projects`](crate::ProjectRecord)): `projects` (`name`,
//! `description`, `created_by`, `created_at`), `project_members` ((`project` → projects,
//! `party`), `status` (`invited`/`joined`/`declined`), `invited_at`, `decided_at`), and
//! rebuilds `dataset_grants` (rows copied) so that `target_kind` may also be `project`.
//!
//! Migration 7 adds scheduled jobs ([`ScheduleRecord`]): `schedules` (`id`, `name`,
//! `spec_json`, `cron`, `utc_offset_minutes`, `guest`, `status`, `reason`, `created_by`,
//! `created_at`, `updated_at`, `next_run`, `last_run`, `last_job_id`, `run_count`),
//! `schedule_parties` ((`schedule_id` → schedules, `party`), `decision`, `reason`,
//! `updated_at`) and `schedule_runs` ((`schedule_id` → schedules, `seq`), `fire_time`,
//! `job_id` (the link from a run's job to its schedule; none for a skipped fire time),
//! `outcome`, `detail`, `recorded_at`).
//!
//! Migration 9 adds deployed models (`serving.rs`, [`ModelServiceRecord`]): `model_services`
//! (`name`, `role`, `guest`, `deployment_id`, `model`, `version`, `pending_version`, `kind`,
//! `status`, `reason`, `dataset`, `detail_json`, `created_by`, `created_at`, `updated_at`,
//! counters `requests`, `ids`, `errors`, `last_request_at`) and the guest's request log
//! `model_service_requests` (`request_id`, `service`, `actor`, `ids`, `outcome`, `millis`,
//! `at`).
//!
//! Migrations are numbered, each runs once inside its own transaction and is recorded in
//! `schema_migrations`; a database with a higher number than this build knows is refused
//! ([`StoreError::SchemaTooNew`]) instead of being misread.
//!
//! # Datasets
//!
//! Registration detects the format from the content (Parquet starts with `PAR1`, anything else
//! is CSV with a header row), infers each column's type ([`ColumnType`]: `integer`, `float`,
//! `bool`, `string`, and whether any value is missing — empty, `NA`, `NaN`, `null`, `None`,
//! `?`), checks the declared id columns exist and have no empty value, checks the label column
//! exists and its values fit the declared [`LabelKind`], and counts rows. Errors name the file
//! given (not the internal copy), the row (CSV: the header is row 1) and the column.
//! [`Store::describe_dataset`] computes per-column statistics on first request ([`ColumnStats`]:
//! exact mean, sample standard deviation, min and max; quantiles exact up to 200,000 values and
//! from a seeded uniform sample beyond; distinct counts exact up to 100,000, then a
//! k-minimum-values estimate, flagged) and caches them in `stats_json`. It also re-hashes the
//! file and refuses one that changed since registration.
//!
//! Grants: a dataset may be used in a federated job by a party named in a
//! [`GrantTarget::Party`] grant (any job) or by anyone in the job of a [`GrantTarget::Job`]
//! grant, or by a job naming a project of a [`GrantTarget::Project`] grant whose initiator is a
//! joined member of that project. [`Store::check_granted`] returns [`StoreError::NotGranted`] with a message meant for
//! both the host's log and the initiator.
//!
//! # Jobs
//!
//! The scheduler owns the job state machine; the store keeps jobs, tasks (status, progress,
//! error, outputs), what partners reported, logs, metrics and the message audit trail (sizes
//! and tags, never content). [`Store::fail_unfinished_jobs`] marks every `queued` or
//! `running` job failed with the given reason (jobs awaiting approval are left alone), and
//! every `pending` or `running` task of a job not awaiting approval failed, in one
//! transaction.

/// A Rust enum stored as text: `as_str`, `FromStr` (naming the kind and every accepted value
/// in its error) and `Display`, with serde using the same snake_case names. Defined before the
/// modules so that every one of them can use it.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::StoreError;
            fn from_str(s: &str) -> Result<Self, $crate::StoreError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::StoreError::invalid(format!(
                        concat!("unknown ", $what, " '{}' (expected one of: {})"),
                        other,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod actions;
mod at_rest;
mod backup;
mod crash;
mod datasets;
mod error;
mod fsutil;
mod jobs;
mod local_approvals;
mod models;
mod projects;
mod queries;
mod scan;
mod schedules;
mod schema;
mod serving;
mod signer;
pub mod time;
mod tokens;
mod users;

pub use actions::{
    ActionEntry, ActionQuery, ChainProblem, ChainReport, ChainVerifier, Checkpoint, HeldCheckpoint,
    NewAction, Outcome, ProblemKind, Receipt, ReceivedCheckpoint, Sm2KeyBinding,
};
pub use at_rest::{AT_REST_KEY_FILE, DataFiles, SealedWrite, load_or_create_at_rest_key};
pub use crash::{CRASH_ENV, crash_point};
pub use datasets::{
    ColumnInfo, ColumnStats, ColumnType, DataFormat, DatasetRecord, DatasetStats, GrantTarget,
    Lineage, Quantiles, RegisterDataset,
};
pub use error::StoreError;
pub use ferry_data::LabelKind;
pub use jobs::{AuditEntry, Direction, JobRow, JobStatus, LogLine, MetricRow, TaskRow, TaskStatus};
pub use local_approvals::{LocalApproval, LocalDecision};
pub use models::{ModelLineage, ModelRecord, STATEMENT_VERSION, StoreModel};
pub use projects::{
    MAX_PROJECT_DESCRIPTION, MemberStatus, NewProject, ProjectMember, ProjectRecord,
};
pub use queries::{
    BuiltTable, NewQueryService, QueryFinish, QueryRecord, QueryServiceRecord, QueryStatus,
    ServedSession, ServiceStatus, ServiceUsage,
};
pub use schedules::{
    MAX_SCHEDULE_REASON, NewSchedule, PartyDecision, RunOutcome, SCHEDULE_ID_PREFIX, ScheduleParty,
    ScheduleRecord, ScheduleRun, ScheduleStatus, validate_schedule_id,
};
pub use serving::{ModelServiceRecord, ModelServiceStatus, ServiceRequestLog};
pub use signer::{ModelSigner, SM2_KEY_FILE, SM2_SIGNATURE_PREFIX, SignatureAlgorithm};
pub use tokens::{TokenInfo, TokenRole};
pub use users::{MIN_PASSWORD_CHARS, PASSWORD_PARAMS, SessionInfo, UserInfo, UserRole};

use rusqlite::Connection;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The database file inside the state directory.
pub const DB_FILE: &str = "ferry.db";

/// A node's persistent state: one SQLite database plus the dataset and model files.
///
/// `Send + Sync`: share it behind an `Arc`. Database work is serialised through one connection;
/// long file work (copying, scanning, hashing) happens outside that lock.
pub struct Store {
    conn: Mutex<Connection>,
    db_path: PathBuf,
    data_dir: PathBuf,
    signer: ModelSigner,
    /// How data and model files are written and read: sealed under the at-rest key with
    /// `[crypto] encrypt_at_rest`, as they are otherwise.
    files: DataFiles,
    /// The hash of new action-log entries (SM3 under the GM suite).
    chain_hash: actions::ChainHash,
    /// Paths being written by this process right now, which the orphan sweep must not touch.
    in_flight: Mutex<HashSet<PathBuf>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("db_path", &self.db_path)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
}

/// What [`Store::sweep_orphan_files`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SweepReport {
    /// Files and directories under the data directory that no record refers to.
    pub removed: Vec<PathBuf>,
    /// Records whose file is missing (kept: deleting metadata is for a person to decide).
    pub missing_files: Vec<String>,
}

impl Store {
    /// Opens (creating if needed) `state_dir/ferry.db` and `data_dir`, and applies pending
    /// migrations.
    pub fn open(
        state_dir: &Path,
        data_dir: &Path,
        signer: ModelSigner,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| StoreError::io(state_dir, "cannot create the state directory", e))?;
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::io(data_dir, "cannot create the data directory", e))?;
        let data_dir = std::fs::canonicalize(data_dir)
            .map_err(|e| StoreError::io(data_dir, "cannot resolve the data directory", e))?;
        let db_path = state_dir.join(DB_FILE);
        let mut conn = Connection::open(&db_path)
            .map_err(|e| StoreError::io(&db_path, "cannot open the database", e))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // WAL: readers do not block the writer. synchronous=FULL: a commit is on disk before
        // the call returns, so a file removed after a committed delete can never reappear as
        // a record pointing at nothing after a power loss.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %db_path.display(), mode, "database is not in WAL mode");
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        schema::migrate(&mut conn, &db_path)?;
        Ok(Store {
            conn: Mutex::new(conn),
            db_path,
            data_dir,
            signer,
            files: DataFiles::plain(),
            chain_hash: actions::ChainHash::default(),
            in_flight: Mutex::new(HashSet::new()),
        })
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// The (absolute) data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The key models are signed with.
    pub fn signer(&self) -> &ModelSigner {
        &self.signer
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get::<_, Option<i64>>(0)
            })?
            .unwrap_or(0))
    }

    /// Removes files and directories under the data directory that no record refers to
    /// (leftovers of a crash between writing a file and committing its record, or between
    /// committing a delete and removing the file), and reports records whose file is
    /// missing. Holds the database lock throughout, so no registration can commit meanwhile;
    /// writes in progress in this process are skipped. Call it at start-up, with
    /// [`Store::fail_unfinished_jobs`]; another process writing into the same node directory
    /// at that moment is not supported.
    pub fn sweep_orphan_files(&self) -> Result<SweepReport, StoreError> {
        let conn = self.conn();
        let mut report = SweepReport::default();
        let mut dataset_files: HashSet<String> = HashSet::new();
        let mut dataset_dirs: HashSet<String> = HashSet::new();
        {
            let mut stmt = conn.prepare("SELECT id, name, file FROM datasets")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (id, name, file) = row?;
                if !self.stored_path(&file).is_file() {
                    report
                        .missing_files
                        .push(format!("dataset '{name}': {file}"));
                }
                dataset_dirs.insert(id);
                dataset_files.insert(file);
            }
        }
        let mut model_files: HashSet<String> = HashSet::new();
        {
            let mut stmt = conn.prepare("SELECT name, version, file FROM models")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (name, version, file) = row?;
                if !self.stored_path(&file).is_file() {
                    report
                        .missing_files
                        .push(format!("model '{name}' v{version}: {file}"));
                }
                model_files.insert(file);
            }
        }
        // data/datasets/<id>/<file>
        for (dir_name, dir) in list_dir(&self.data_dir.join("datasets"))? {
            if self.is_in_flight(&dir) {
                continue;
            }
            if !dataset_dirs.contains(&dir_name) || !dir.is_dir() {
                fsutil::remove_path(&dir)?;
                report.removed.push(dir);
                continue;
            }
            for (file_name, file) in list_dir(&dir)? {
                if !dataset_files.contains(&format!("datasets/{dir_name}/{file_name}")) {
                    fsutil::remove_path(&file)?;
                    report.removed.push(file);
                }
            }
        }
        // data/models/<name>/v<version>.bin
        for (model_name, dir) in list_dir(&self.data_dir.join("models"))? {
            if !dir.is_dir() {
                fsutil::remove_path(&dir)?;
                report.removed.push(dir);
                continue;
            }
            for (file_name, file) in list_dir(&dir)? {
                if self.is_in_flight(&file) {
                    continue;
                }
                if !model_files.contains(&format!("models/{model_name}/{file_name}")) {
                    fsutil::remove_path(&file)?;
                    report.removed.push(file);
                }
            }
            let _ = std::fs::remove_dir(&dir); // only if now empty
        }
        if !report.removed.is_empty() || !report.missing_files.is_empty() {
            tracing::warn!(
                removed = report.removed.len(),
                missing = ?report.missing_files,
                "swept the data directory"
            );
        }
        Ok(report)
    }

    /// Absolute path of a stored relative path (`/`-separated, relative to the data
    /// directory). Components that could leave the data directory (`..`, `.`, empty, with a
    /// backslash) are dropped: the store never writes them, so they only appear in an altered
    /// database.
    pub(crate) fn stored_path(&self, rel: &str) -> PathBuf {
        rel.split('/')
            .filter(|part| !matches!(*part, "" | "." | "..") && !part.contains('\\'))
            .fold(self.data_dir.clone(), |p, part| p.join(part))
    }

    /// A poisoned lock only means another thread panicked while holding it; SQLite rolled back
    /// its open transaction when the transaction guard was dropped, so the connection is sound.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn mark_in_flight(&self, path: &Path) -> InFlight<'_> {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_path_buf());
        InFlight {
            store: self,
            path: path.to_path_buf(),
        }
    }

    pub(crate) fn is_in_flight(&self, path: &Path) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(path)
    }
}

/// Unmarks a path when the write that owns it ends, however it ends.
pub(crate) struct InFlight<'a> {
    store: &'a Store,
    path: PathBuf,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.store
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.path);
    }
}

/// (name, path) of each entry of a directory that may not exist.
fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(dir, "cannot list", e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, "cannot list", e))?;
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    out.sort();
    Ok(out)
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Parses lower- or upper-case hex; `None` for anything else.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// Names that become file or directory names (datasets, models) and token names: 1 to 128
/// characters from `A-Z a-z 0-9 . _ -`, starting with a letter or digit. This keeps every
/// name a single, portable path component that cannot climb out of its directory.
pub fn validate_name(kind: &str, name: &str) -> Result<(), StoreError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 128 || !ok_chars || !ok_start {
        return Err(StoreError::invalid(format!(
            "invalid {kind} name '{name}': use 1 to 128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"
        )));
    }
    Ok(())
}

/// Prefix of every job id. Dataset names with this prefix are reserved for the outputs jobs
/// derive (`<job id>-<task>`), so a user's dataset and a job's output can never share a name.
pub const JOB_ID_PREFIX: &str = "job-";

/// Job ids come from partners (in a proposal) and become directory names (the job's work
/// directory) and prefixes of derived dataset names, so they are held to a strict pattern:
/// `job-` followed by 1 to 60 characters from `A-Z a-z 0-9 _ -`. No `/`, `.` or `..` can
/// appear, so a job id is always one path component below the jobs directory.
pub fn validate_job_id(id: &str) -> Result<(), StoreError> {
    let rest = id.strip_prefix(JOB_ID_PREFIX).unwrap_or("");
    let ok = !rest.is_empty()
        && rest.len() <= 60
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if !ok {
        return Err(StoreError::invalid(format!(
            "invalid job id '{}': a job id is 'job-' followed by 1 to 60 characters from A-Z a-z 0-9 _ -",
            id.escape_debug()
        )));
    }
    Ok(())
}

/// Whether a dataset name lies in the namespace reserved for job outputs.
pub fn is_derived_dataset_name(name: &str) -> bool {
    name.starts_with(JOB_ID_PREFIX)
}

/// Free-text identifiers that are stored but never become paths (job ids, task names, parties):
/// non-empty, at most 256 bytes, no control characters.
pub(crate) fn validate_label(kind: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
        return Err(StoreError::invalid(format!(
            "invalid {kind} '{}': must be 1 to 256 bytes without control characters",
            value.escape_debug()
        )));
    }
    Ok(())
}

pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::invalid(format!("{what} {value} is too large")))
}

pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value)
        .map_err(|_| StoreError::Db(format!("stored {what} {value} is negative (corrupt row)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&bytes), "0001abff");
        assert_eq!(unhex("0001ABff").unwrap(), bytes);
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }

    #[test]
    fn names() {
        for good in ["a", "loans-2024", "m.v1", "A_b"] {
            assert!(validate_name("dataset", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "..",
            "a b",
            "é",
            &"x".repeat(129),
        ] {
            assert!(validate_name("dataset", bad).is_err(), "{bad}");
        }
    }
}
