//! Anonymous query (匿踪查询): the provider's query services and what they served, and the
//! querier's record of every query it ran.
//!
//! What each side keeps follows what it may know. A **provider** keeps, per service, the
//! built table versions and per session only the partner, the table version, how many ids
//! were asked and when: it never learns which ids, and nothing here could hold them. A
//! **querier** keeps every query it ran (who asked, which provider and service, how many ids,
//! how many were found, and the result file with the ids and values, which are its own data).

use crate::datasets::{from_json, to_json};
use crate::time::now_utc;
use crate::{Store, StoreError, validate_name};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

text_enum!(
    /// Where a service's current table stands.
    ServiceStatus, "service status" {
        /// A table is being built (the previous version, if any, still serves).
        Building => "building",
        /// The current version serves.
        Ready => "ready",
        /// The last build failed (`error` says why); an earlier version, if any, still serves.
        Failed => "failed",
    }
);

/// A query service a provider offers over one of its datasets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryServiceRecord {
    pub name: String,
    pub dataset: String,
    pub key_columns: Vec<String>,
    pub value_columns: Vec<String>,
    pub description: String,
    pub status: ServiceStatus,
    pub error: Option<String>,
    /// Version of the table that serves (0: none built yet).
    pub version: u64,
    /// File of that version, relative to the data directory.
    pub table_file: Option<String>,
    /// The PIR table's public id (hex) of that version.
    pub table_id: Option<String>,
    /// SHA-256 of the dataset file that version was built from.
    pub dataset_sha256: Option<String>,
    pub rows: u64,
    /// Bytes of the longest encoded value (all values are padded to it).
    pub value_len: u64,
    pub built_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A new service (no table yet).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewQueryService {
    pub name: String,
    pub dataset: String,
    pub key_columns: Vec<String>,
    pub value_columns: Vec<String>,
    #[serde(default)]
    pub description: String,
}

/// A built table version, recorded once its file is in place.
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltTable {
    pub version: u64,
    pub table_file: String,
    pub table_id: String,
    pub dataset_sha256: String,
    pub rows: u64,
    pub value_len: u64,
}

/// One session a provider served: counts and time, nothing about the ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServedSession {
    pub service: String,
    pub partner: String,
    pub version: u64,
    pub ids: u64,
    /// `served`, or why the session failed or was refused.
    pub outcome: String,
    pub seconds: f64,
    pub served_at: String,
}

/// Totals of a service's sessions, per partner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceUsage {
    pub partner: String,
    pub sessions: u64,
    pub ids: u64,
    pub last_served_at: String,
}

text_enum!(
    /// Where a querier's query stands.
    QueryStatus, "query status" {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
);

/// A query this node ran against a partner's service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryRecord {
    pub id: String,
    pub provider: String,
    pub service: String,
    /// The API token (or user) that asked.
    pub requested_by: String,
    pub ids: u64,
    pub found: u64,
    pub status: QueryStatus,
    pub error: Option<String>,
    /// The provider's table version the query ran on.
    pub table_id: Option<String>,
    pub table_rows: Option<u64>,
    pub hint_downloaded: bool,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub seconds: f64,
    /// The result (CSV: key columns, `found`, value columns), relative to the data directory.
    pub result_file: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// How a finished query ended.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryFinish {
    pub found: u64,
    pub error: Option<String>,
    pub table_id: Option<String>,
    pub table_rows: Option<u64>,
    pub hint_downloaded: bool,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub seconds: f64,
    pub result_file: Option<String>,
}

const SERVICE_COLUMNS: &str = "name, dataset, key_columns_json, value_columns_json, description, \
     status, error, version, table_file, table_id, dataset_sha256, row_count, value_len, built_at, \
     created_at, updated_at";

const QUERY_COLUMNS: &str = "id, provider, service, requested_by, id_count, found, status, error, \
     table_id, table_rows, hint_downloaded, bytes_sent, bytes_received, seconds, result_file, \
     started_at, finished_at";

type RawService = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<String>,
    String,
    String,
);

fn service_row(r: &Row<'_>) -> rusqlite::Result<RawService> {
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
        r.get(15)?,
    ))
}

fn finish_service(raw: RawService) -> Result<QueryServiceRecord, StoreError> {
    let (
        name,
        dataset,
        keys,
        values,
        description,
        status,
        error,
        version,
        table_file,
        table_id,
        dataset_sha256,
        rows,
        value_len,
        built_at,
        created_at,
        updated_at,
    ) = raw;
    Ok(QueryServiceRecord {
        name,
        dataset,
        key_columns: from_json(&keys, "service key columns")?,
        value_columns: from_json(&values, "service value columns")?,
        description,
        status: status.parse::<ServiceStatus>()?,
        error,
        version: version.max(0) as u64,
        table_file,
        table_id,
        dataset_sha256,
        rows: rows.max(0) as u64,
        value_len: value_len.max(0) as u64,
        built_at,
        created_at,
        updated_at,
    })
}

fn query_row(r: &Row<'_>) -> rusqlite::Result<Result<QueryRecord, StoreError>> {
    let status: String = r.get(6)?;
    let status = match status.parse::<QueryStatus>() {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(QueryRecord {
        id: r.get(0)?,
        provider: r.get(1)?,
        service: r.get(2)?,
        requested_by: r.get(3)?,
        ids: r.get::<_, i64>(4)?.max(0) as u64,
        found: r.get::<_, i64>(5)?.max(0) as u64,
        status,
        error: r.get(7)?,
        table_id: r.get(8)?,
        table_rows: r.get::<_, Option<i64>>(9)?.map(|v| v.max(0) as u64),
        hint_downloaded: r.get::<_, i64>(10)? != 0,
        bytes_sent: r.get::<_, i64>(11)?.max(0) as u64,
        bytes_received: r.get::<_, i64>(12)?.max(0) as u64,
        seconds: r.get(13)?,
        result_file: r.get(14)?,
        started_at: r.get(15)?,
        finished_at: r.get(16)?,
    }))
}

fn not_found_service(conn: &rusqlite::Connection, name: &str) -> StoreError {
    let known = conn
        .prepare("SELECT name FROM query_services ORDER BY name")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .unwrap_or_default();
    StoreError::NotFound {
        kind: "query service",
        name: name.to_string(),
        known,
    }
}

impl Store {
    /// Records a new query service (status `building`, no table yet). The dataset must exist;
    /// its columns are checked by whoever builds the table.
    pub fn create_query_service(
        &self,
        new: &NewQueryService,
    ) -> Result<QueryServiceRecord, StoreError> {
        validate_name("query service", &new.name)?;
        if new.key_columns.is_empty() {
            return Err(StoreError::invalid("a query service needs a key column"));
        }
        self.dataset(&new.dataset)?;
        let now = now_utc();
        {
            let conn = self.conn();
            let exists = conn
                .query_row(
                    "SELECT 1 FROM query_services WHERE name = ?1",
                    [&new.name],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if exists {
                return Err(StoreError::AlreadyExists {
                    kind: "query service",
                    name: new.name.clone(),
                    hint: "refresh it, or delete it first".into(),
                });
            }
            conn.execute(
                &format!(
                    "INSERT INTO query_services ({SERVICE_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, NULL, 0, NULL, NULL, NULL, 0, 0, NULL, ?7, ?7)"
                ),
                params![
                    new.name,
                    new.dataset,
                    to_json(&new.key_columns)?,
                    to_json(&new.value_columns)?,
                    new.description,
                    ServiceStatus::Building.as_str(),
                    now
                ],
            )?;
        }
        self.query_service(&new.name)
    }

    pub fn query_service(&self, name: &str) -> Result<QueryServiceRecord, StoreError> {
        let conn = self.conn();
        let raw = conn
            .query_row(
                &format!("SELECT {SERVICE_COLUMNS} FROM query_services WHERE name = ?1"),
                [name],
                service_row,
            )
            .optional()?;
        match raw {
            Some(raw) => finish_service(raw),
            None => Err(not_found_service(&conn, name)),
        }
    }

    pub fn list_query_services(&self) -> Result<Vec<QueryServiceRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SERVICE_COLUMNS} FROM query_services ORDER BY name"
        ))?;
        let rows = stmt.query_map([], service_row)?;
        rows.map(|r| finish_service(r?)).collect()
    }

    /// Sets a service's status (and error, replaced also by `None`) without touching its
    /// serving version.
    pub fn set_query_service_status(
        &self,
        name: &str,
        status: ServiceStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        let changed = conn.execute(
            "UPDATE query_services SET status = ?1, error = ?2, updated_at = ?3 WHERE name = ?4",
            params![status.as_str(), error, now_utc(), name],
        )?;
        if changed == 0 {
            return Err(not_found_service(&conn, name));
        }
        Ok(())
    }

    /// Makes `built` the serving version (status `ready`). Returns the file of the version it
    /// replaced, for the caller to remove once no session uses it. Refuses a version that is
    /// not newer than the current one.
    pub fn set_query_service_table(
        &self,
        name: &str,
        built: &BuiltTable,
    ) -> Result<Option<String>, StoreError> {
        let current = self.query_service(name)?;
        if built.version <= current.version {
            return Err(StoreError::invalid(format!(
                "query service '{name}': version {} is not newer than {}",
                built.version, current.version
            )));
        }
        let now = now_utc();
        let conn = self.conn();
        conn.execute(
            "UPDATE query_services SET status = ?1, error = NULL, version = ?2, table_file = ?3, \
             table_id = ?4, dataset_sha256 = ?5, row_count = ?6, value_len = ?7, built_at = ?8, \
             updated_at = ?8 WHERE name = ?9",
            params![
                ServiceStatus::Ready.as_str(),
                built.version as i64,
                built.table_file,
                built.table_id,
                built.dataset_sha256,
                built.rows as i64,
                built.value_len as i64,
                now,
                name
            ],
        )?;
        Ok(current.table_file)
    }

    /// Removes a service's record (its served-session counts stay: they are the audit of
    /// what it served). Returns its table file, for the caller to remove.
    pub fn delete_query_service(&self, name: &str) -> Result<Option<String>, StoreError> {
        let current = self.query_service(name)?;
        self.conn()
            .execute("DELETE FROM query_services WHERE name = ?1", [name])?;
        Ok(current.table_file)
    }

    /// Records one session a provider served (or refused).
    pub fn record_served_session(&self, session: &ServedSession) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM query_service_sessions WHERE service = ?1",
            [&session.service],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO query_service_sessions \
             (service, seq, partner, version, id_count, outcome, seconds, served_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                session.service,
                seq,
                session.partner,
                session.version as i64,
                session.ids as i64,
                session.outcome,
                session.seconds,
                session.served_at
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The sessions a service served, oldest first.
    pub fn served_sessions(&self, service: &str) -> Result<Vec<ServedSession>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT service, partner, version, id_count, outcome, seconds, served_at \
             FROM query_service_sessions WHERE service = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([service], |r| {
            Ok(ServedSession {
                service: r.get(0)?,
                partner: r.get(1)?,
                version: r.get::<_, i64>(2)?.max(0) as u64,
                ids: r.get::<_, i64>(3)?.max(0) as u64,
                outcome: r.get(4)?,
                seconds: r.get(5)?,
                served_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Per partner: sessions served, ids answered, the last time (refused sessions excluded).
    pub fn service_usage(&self, service: &str) -> Result<Vec<ServiceUsage>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT partner, COUNT(*), COALESCE(SUM(id_count), 0), MAX(served_at) \
             FROM query_service_sessions WHERE service = ?1 AND outcome = 'served' \
             GROUP BY partner ORDER BY partner",
        )?;
        let rows = stmt.query_map([service], |r| {
            Ok(ServiceUsage {
                partner: r.get(0)?,
                sessions: r.get::<_, i64>(1)?.max(0) as u64,
                ids: r.get::<_, i64>(2)?.max(0) as u64,
                last_served_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Records a query this node starts (status `running`).
    pub fn insert_query(
        &self,
        id: &str,
        provider: &str,
        service: &str,
        requested_by: &str,
        ids: u64,
    ) -> Result<(), StoreError> {
        validate_name("query", id)?;
        self.conn().execute(
            &format!(
                "INSERT INTO queries ({QUERY_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, 0, ?6, NULL, NULL, NULL, 0, 0, 0, 0, NULL, ?7, NULL)"
            ),
            params![
                id,
                provider,
                service,
                requested_by,
                ids as i64,
                QueryStatus::Running.as_str(),
                now_utc()
            ],
        )?;
        Ok(())
    }

    /// Records how a query ended: `succeeded` without an error, else `failed`.
    pub fn finish_query(&self, id: &str, finish: &QueryFinish) -> Result<(), StoreError> {
        let status = if finish.error.is_none() {
            QueryStatus::Succeeded
        } else {
            QueryStatus::Failed
        };
        let changed = self.conn().execute(
            "UPDATE queries SET status = ?1, found = ?2, error = ?3, table_id = ?4, \
             table_rows = ?5, hint_downloaded = ?6, bytes_sent = ?7, bytes_received = ?8, \
             seconds = ?9, result_file = ?10, finished_at = ?11 WHERE id = ?12",
            params![
                status.as_str(),
                finish.found as i64,
                finish.error,
                finish.table_id,
                finish.table_rows.map(|v| v as i64),
                finish.hint_downloaded as i64,
                finish.bytes_sent as i64,
                finish.bytes_received as i64,
                finish.seconds,
                finish.result_file,
                now_utc(),
                id
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "query",
                name: id.to_string(),
                known: Vec::new(),
            });
        }
        Ok(())
    }

    pub fn query(&self, id: &str) -> Result<QueryRecord, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                &format!("SELECT {QUERY_COLUMNS} FROM queries WHERE id = ?1"),
                [id],
                query_row,
            )
            .optional()?;
        match row {
            Some(r) => r,
            None => Err(StoreError::NotFound {
                kind: "query",
                name: id.to_string(),
                known: Vec::new(),
            }),
        }
    }

    /// Queries this node ran, newest first.
    pub fn list_queries(&self) -> Result<Vec<QueryRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {QUERY_COLUMNS} FROM queries ORDER BY started_at DESC, id"
        ))?;
        let rows = stmt.query_map([], query_row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        Ok(out)
    }

    /// Queries left `running` by an unclean stop become `failed` with `reason`.
    pub fn fail_unfinished_queries(&self, reason: &str) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "UPDATE queries SET status = ?1, error = ?2, finished_at = ?3 WHERE status = ?4",
            params![
                QueryStatus::Failed.as_str(),
                reason,
                now_utc(),
                QueryStatus::Running.as_str()
            ],
        )?)
    }

    /// Writes a file under the data directory atomically, readable by the node's user only
    /// (`rel` is `/`-separated; its directories are created), sealed under the at-rest key
    /// when the node has one (read it back with [`Store::read_file_plain`]). Used for query
    /// tables, which hold the OPRF key and the served values, and query results, which hold
    /// the ids asked.
    pub fn write_private_data_file(
        &self,
        rel: &str,
        bytes: &[u8],
    ) -> Result<std::path::PathBuf, StoreError> {
        let path = self.stored_path(rel);
        if let Some(dir) = path.parent() {
            crate::fsutil::create_dir(dir)?;
        }
        crate::fsutil::write_atomic_private(&path, &self.seal_for_disk(bytes)?)?;
        Ok(path)
    }

    /// The absolute path of a stored relative path (see [`Store::write_private_data_file`]).
    pub fn data_path(&self, rel: &str) -> std::path::PathBuf {
        self.stored_path(rel)
    }
}
