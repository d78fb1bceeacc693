//! Registered datasets, their statistics and who may use them.

use crate::fsutil::{copy_sealed, create_dir, random_hex, remove_path};
use crate::time::now_utc;
use crate::{LabelKind, Store, StoreError, scan, to_i64, to_u64, validate_label, validate_name};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file format of a dataset (detected from the file's content: Parquet files start with
/// `PAR1`, anything else is read as CSV).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    Csv,
    Parquet,
}

impl DataFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DataFormat::Csv => "csv",
            DataFormat::Parquet => "parquet",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "csv" => Ok(DataFormat::Csv),
            "parquet" => Ok(DataFormat::Parquet),
            other => Err(StoreError::Db(format!(
                "unknown stored dataset format '{other}'"
            ))),
        }
    }
}

/// A column's inferred type. Cells that are empty or one of ferry-data's missing markers
/// (`NA`, `NaN`, `null`, `None`, `?`, any case) are missing and do not vote. A column is
/// `integer` if every present value is an `i64`, `float` if every one is a finite number,
/// `bool` if every one is `true`/`false`, and `string` otherwise (including a column with no
/// present value at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Integer,
    Float,
    String,
    Bool,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Integer => "integer",
            ColumnType::Float => "float",
            ColumnType::String => "string",
            ColumnType::Bool => "bool",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub dtype: ColumnType,
    /// Some value is missing.
    pub nullable: bool,
}

/// Where a derived dataset came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    pub job_id: String,
    pub task: String,
    /// Names of the datasets (or models) it was computed from.
    #[serde(default)]
    pub inputs: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// A registration request. Start from [`RegisterDataset::new`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegisterDataset {
    pub name: String,
    /// The file to copy in; it is left untouched.
    pub source: PathBuf,
    /// Empty: `id` if the header has it, else the first column.
    pub id_columns: Vec<String>,
    pub label: Option<String>,
    /// How the label is checked (ignored without a label).
    pub label_kind: LabelKind,
    pub description: String,
    pub lineage: Option<Lineage>,
    /// Replace a dataset of the same name instead of failing.
    pub replace: bool,
}

impl RegisterDataset {
    pub fn new(name: &str, source: impl Into<PathBuf>) -> Self {
        RegisterDataset {
            name: name.to_string(),
            source: source.into(),
            ..RegisterDataset::default()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// Random 128-bit hex id; also the name of the dataset's directory.
    pub id: String,
    pub name: String,
    /// Absolute path of the stored copy.
    pub path: PathBuf,
    pub format: DataFormat,
    pub id_columns: Vec<String>,
    pub label: Option<String>,
    /// `Some` exactly when `label` is.
    pub label_kind: Option<LabelKind>,
    pub columns: Vec<ColumnInfo>,
    pub rows: u64,
    pub bytes: u64,
    /// SHA-256 (hex) of the stored file.
    pub sha256: String,
    pub created_at: String,
    pub description: String,
    pub lineage: Option<Lineage>,
}

/// The 1st, 5th, 25th, 50th, 75th, 95th and 99th percentiles, by linear interpolation between
/// closest ranks (NumPy's default): quantile p of n sorted values is at position (n-1)p.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    pub p1: f64,
    pub p5: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p95: f64,
    pub p99: f64,
}

/// One column's statistics. Numeric statistics cover `integer`, `float` and `bool` columns
/// (`bool` as 0/1, without quantiles); `std` is the sample standard deviation (n-1), `None`
/// with fewer than two values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    pub name: String,
    #[serde(rename = "type")]
    pub dtype: ColumnType,
    /// Present (non-missing) values.
    pub count: u64,
    pub missing: u64,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub quantiles: Option<Quantiles>,
    /// False when the column has more values than the quantile sample holds (200,000), so the
    /// quantiles come from a uniform sample.
    pub quantiles_exact: bool,
    /// Distinct present values (numbers compared as numbers, text as trimmed text).
    pub distinct: u64,
    /// False when the count passed 100,000 and `distinct` is an estimate (about 1.6% error).
    pub distinct_exact: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetStats {
    pub dataset: String,
    pub rows: u64,
    /// SHA-256 of the file the statistics were computed from (always the registered one).
    pub sha256: String,
    pub computed_at: String,
    pub columns: Vec<ColumnStats>,
}

/// Who may use a dataset in federated jobs: a partner in any job, any partner in one job, or
/// a job of a project whose initiator is a joined member of the project (see
/// [`Store::is_granted_in`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantTarget {
    Party(String),
    Job(String),
    Project(String),
}

impl GrantTarget {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            GrantTarget::Party(p) => ("party", p),
            GrantTarget::Job(j) => ("job", j),
            GrantTarget::Project(p) => ("project", p),
        }
    }
}

impl std::fmt::Display for GrantTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, target) = self.parts();
        write!(f, "{kind} '{target}'")
    }
}

const DATASET_COLUMNS: &str = "id, name, file, format, id_columns_json, label, label_kind, \
     columns_json, row_count, byte_count, sha256, created_at, description, lineage_json";

struct RawDataset {
    id: String,
    name: String,
    file: String,
    format: String,
    id_columns_json: String,
    label: Option<String>,
    label_kind: Option<String>,
    columns_json: String,
    rows: i64,
    bytes: i64,
    sha256: String,
    created_at: String,
    description: String,
    lineage_json: Option<String>,
}

fn raw_dataset(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawDataset> {
    Ok(RawDataset {
        id: r.get(0)?,
        name: r.get(1)?,
        file: r.get(2)?,
        format: r.get(3)?,
        id_columns_json: r.get(4)?,
        label: r.get(5)?,
        label_kind: r.get(6)?,
        columns_json: r.get(7)?,
        rows: r.get(8)?,
        bytes: r.get(9)?,
        sha256: r.get(10)?,
        created_at: r.get(11)?,
        description: r.get(12)?,
        lineage_json: r.get(13)?,
    })
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Db(format!("corrupt stored {what}: {e}")))
}

pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::invalid(format!("cannot encode as JSON: {e}")))
}

fn label_kind_str(kind: LabelKind) -> &'static str {
    match kind {
        LabelKind::Binary => "binary",
        LabelKind::Multiclass => "multiclass",
        LabelKind::Continuous => "continuous",
    }
}

fn parse_label_kind(s: &str) -> Result<LabelKind, StoreError> {
    match s {
        "binary" => Ok(LabelKind::Binary),
        "multiclass" => Ok(LabelKind::Multiclass),
        "continuous" => Ok(LabelKind::Continuous),
        other => Err(StoreError::Db(format!(
            "unknown stored label kind '{other}'"
        ))),
    }
}

impl Store {
    /// The directory of a dataset id. Ids are made by the store (32 hex digits); anything else
    /// read from the database is refused rather than turned into a path to delete.
    fn dataset_dir(&self, id: &str) -> Result<PathBuf, StoreError> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Db(format!(
                "stored dataset id '{id}' is malformed"
            )));
        }
        Ok(self.data_dir.join("datasets").join(id))
    }

    fn dataset_record(&self, raw: RawDataset) -> Result<DatasetRecord, StoreError> {
        Ok(DatasetRecord {
            path: self.stored_path(&raw.file),
            format: DataFormat::parse(&raw.format)?,
            id_columns: from_json(&raw.id_columns_json, "id columns")?,
            label_kind: raw
                .label_kind
                .as_deref()
                .map(parse_label_kind)
                .transpose()?,
            columns: from_json(&raw.columns_json, "columns")?,
            rows: to_u64(raw.rows, "row count")?,
            bytes: to_u64(raw.bytes, "byte count")?,
            lineage: raw
                .lineage_json
                .as_deref()
                .map(|l| from_json(l, "lineage"))
                .transpose()?,
            id: raw.id,
            name: raw.name,
            label: raw.label,
            sha256: raw.sha256,
            created_at: raw.created_at,
            description: raw.description,
        })
    }

    fn dataset_names(conn: &Connection) -> Result<Vec<String>, StoreError> {
        let mut stmt = conn.prepare("SELECT name FROM datasets ORDER BY name")?;
        let names = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(names)
    }

    fn not_found_dataset(conn: &Connection, name: &str) -> StoreError {
        StoreError::NotFound {
            kind: "dataset",
            name: name.to_string(),
            known: Self::dataset_names(conn).unwrap_or_default(),
        }
    }

    fn dataset_id(conn: &Connection, name: &str) -> Result<String, StoreError> {
        conn.query_row("SELECT id FROM datasets WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?
        .ok_or_else(|| Self::not_found_dataset(conn, name))
    }

    /// Copies `req.source` into `data/datasets/<id>/`, infers its schema from the copy,
    /// validates the declared id and label columns, and records it. Nothing is left behind on
    /// failure; with `replace`, the old dataset's file is removed only after the new record is
    /// committed, and its grants carry over.
    pub fn register_dataset(&self, req: RegisterDataset) -> Result<DatasetRecord, StoreError> {
        validate_name("dataset", &req.name)?;
        if let Some(l) = &req.lineage {
            validate_label("lineage job id", &l.job_id)?;
            validate_label("lineage task", &l.task)?;
        }
        let source = &req.source;
        match std::fs::metadata(source) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(StoreError::invalid_file(source, "is not a regular file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::invalid_file(
                    source,
                    "does not exist (give the path of a CSV or Parquet file readable by the node)",
                ));
            }
            Err(e) => return Err(StoreError::io(source, "cannot read", e)),
        }
        let file_name = source
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| StoreError::invalid_file(source, "the file name is not valid UTF-8"))?
            .to_string();
        if !req.replace {
            let conn = self.conn();
            let exists = conn
                .query_row(
                    "SELECT 1 FROM datasets WHERE name = ?1",
                    [&req.name],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if exists {
                return Err(dataset_exists(&req.name));
            }
        }

        let id = random_hex(16)?;
        let dir = self.dataset_dir(&id)?;
        let _guard = self.mark_in_flight(&dir);
        create_dir(&dir)?;
        let result = self.register_into(&req, &id, &dir, &file_name);
        if result.is_err()
            && let Err(e) = remove_path(&dir)
        {
            tracing::warn!(error = %e, "cannot clean up after a failed registration");
        }
        let (record, replaced_dir) = result?;
        if let Some(old) = replaced_dir {
            // The new record is committed; the old file is unreferenced now.
            if let Err(e) = remove_path(&old) {
                tracing::warn!(error = %e, "replaced dataset's old files were not removed; the orphan sweep will retry");
            }
        }
        Ok(record)
    }

    fn register_into(
        &self,
        req: &RegisterDataset,
        id: &str,
        dir: &Path,
        file_name: &str,
    ) -> Result<(DatasetRecord, Option<PathBuf>), StoreError> {
        let dest = dir.join(file_name);
        // Sealed under the at-rest key when the node has one; size and hash of the plaintext.
        let (bytes, sha256) = copy_sealed(&self.files, &req.source, &dest)?;
        if bytes == 0 {
            return Err(StoreError::invalid_file(
                &req.source,
                "the file is empty (no header row)",
            ));
        }
        let format = scan::detect_format(self.source(&dest))?;
        let label = req.label.as_deref().map(|l| (l, req.label_kind));
        // Scanning the copy validates exactly what is stored; errors name the source file.
        let inferred = scan::infer(self.source(&dest), format, &req.id_columns, label)
            .map_err(|e| rename_file_in_error(e, &dest, &req.source))?;
        let created_at = now_utc();
        let rel = format!("datasets/{id}/{file_name}");
        let lineage_json = req.lineage.as_ref().map(to_json).transpose()?;
        crate::crash_point("dataset-before-commit");

        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old: Option<(String, String)> = tx
            .query_row(
                "SELECT id, file FROM datasets WHERE name = ?1",
                [&req.name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let mut carried_grants: Vec<(String, String, String)> = Vec::new();
        if let Some((old_id, _)) = &old {
            if !req.replace {
                return Err(dataset_exists(&req.name));
            }
            let mut stmt = tx.prepare(
                "SELECT target_kind, target, created_at FROM dataset_grants WHERE dataset_id = ?1",
            )?;
            carried_grants = stmt
                .query_map([old_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            drop(stmt);
            tx.execute("DELETE FROM dataset_grants WHERE dataset_id = ?1", [old_id])?;
            tx.execute("DELETE FROM datasets WHERE id = ?1", [old_id])?;
        }
        tx.execute(
            &format!(
                "INSERT INTO datasets ({DATASET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            ),
            params![
                id,
                req.name,
                rel,
                format.as_str(),
                to_json(&inferred.id_columns)?,
                req.label,
                req.label.as_ref().map(|_| label_kind_str(req.label_kind)),
                to_json(&inferred.columns)?,
                to_i64(inferred.rows, "row count")?,
                to_i64(bytes, "byte count")?,
                sha256,
                created_at,
                req.description,
                lineage_json,
            ],
        )?;
        for (kind, target, at) in &carried_grants {
            tx.execute(
                "INSERT INTO dataset_grants (dataset_id, target_kind, target, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![id, kind, target, at],
            )?;
        }
        tx.commit()?;
        let old_dir = old
            .map(|(old_id, _)| self.dataset_dir(&old_id))
            .transpose()?;
        let record = DatasetRecord {
            id: id.to_string(),
            name: req.name.clone(),
            path: dest,
            format,
            id_columns: inferred.id_columns,
            label: req.label.clone(),
            label_kind: req.label.as_ref().map(|_| req.label_kind),
            columns: inferred.columns,
            rows: inferred.rows,
            bytes,
            sha256,
            created_at,
            description: req.description.clone(),
            lineage: req.lineage.clone(),
        };
        tracing::info!(dataset = %record.name, id = %record.id, rows = record.rows, "registered dataset");
        Ok((record, old_dir))
    }

    /// The dataset named `name`; the error lists the known names.
    pub fn dataset(&self, name: &str) -> Result<DatasetRecord, StoreError> {
        let raw = {
            let conn = self.conn();
            conn.query_row(
                &format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE name = ?1"),
                [name],
                raw_dataset,
            )
            .optional()?
            .ok_or_else(|| Self::not_found_dataset(&conn, name))?
        };
        self.dataset_record(raw)
    }

    /// Every dataset, by name.
    pub fn list_datasets(&self) -> Result<Vec<DatasetRecord>, StoreError> {
        let raws = {
            let conn = self.conn();
            let mut stmt = conn.prepare(&format!(
                "SELECT {DATASET_COLUMNS} FROM datasets ORDER BY name"
            ))?;
            stmt.query_map([], raw_dataset)?
                .collect::<Result<Vec<_>, _>>()?
        };
        raws.into_iter().map(|r| self.dataset_record(r)).collect()
    }

    /// Removes the record, its grants and cached statistics (one transaction), then its
    /// directory. Each dataset owns its directory alone, so no other dataset's file goes.
    pub fn delete_dataset(&self, name: &str) -> Result<(), StoreError> {
        let id = {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id = Self::dataset_id(&tx, name)?;
            let prefix = format!("datasets/{id}/");
            let shared: i64 = tx.query_row(
                "SELECT COUNT(*) FROM datasets WHERE id <> ?1 AND substr(file, 1, length(?2)) = ?2",
                params![id, prefix],
                |r| r.get(0),
            )?;
            tx.execute("DELETE FROM dataset_grants WHERE dataset_id = ?1", [&id])?;
            tx.execute("DELETE FROM datasets WHERE id = ?1", [&id])?;
            tx.commit()?;
            if shared > 0 {
                tracing::warn!(dataset = name, "directory shared with another record; kept");
                return Ok(());
            }
            id
        };
        remove_path(&self.dataset_dir(&id)?)?;
        tracing::info!(dataset = name, "deleted dataset");
        Ok(())
    }

    /// Statistics of every column (see [`ColumnStats`]), computed on first request from the
    /// stored file (whose SHA-256 must still match the record) and cached in the database.
    pub fn describe_dataset(&self, name: &str) -> Result<DatasetStats, StoreError> {
        let (raw, cached): (RawDataset, Option<String>) = {
            let conn = self.conn();
            conn.query_row(
                &format!("SELECT {DATASET_COLUMNS}, stats_json FROM datasets WHERE name = ?1"),
                [name],
                |r| Ok((raw_dataset(r)?, r.get(14)?)),
            )
            .optional()?
            .ok_or_else(|| Self::not_found_dataset(&conn, name))?
        };
        if let Some(json) = cached {
            return from_json(&json, "dataset statistics");
        }
        let record = self.dataset_record(raw)?;
        let (rows, columns, sha) =
            scan::describe(self.source(&record.path), record.format, &record.columns)?;
        if sha != record.sha256 {
            return Err(StoreError::Io {
                path: record.path.clone(),
                reason: format!(
                    "the file changed since it was registered (SHA-256 {sha}, recorded {}); delete and re-register the dataset",
                    record.sha256
                ),
            });
        }
        let stats = DatasetStats {
            dataset: record.name.clone(),
            rows,
            sha256: sha,
            computed_at: now_utc(),
            columns,
        };
        let json = to_json(&stats)?;
        // The record may have been replaced meanwhile; the id pins the statistics to the file
        // they describe.
        self.conn().execute(
            "UPDATE datasets SET stats_json = ?1 WHERE id = ?2",
            params![json, record.id],
        )?;
        Ok(stats)
    }

    /// Allows `to` to use `dataset` (idempotent).
    pub fn grant(&self, dataset: &str, to: GrantTarget) -> Result<(), StoreError> {
        let (kind, target) = to.parts();
        validate_label(kind, target)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = Self::dataset_id(&tx, dataset)?;
        tx.execute(
            "INSERT INTO dataset_grants (dataset_id, target_kind, target, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (dataset_id, target_kind, target) DO NOTHING",
            params![id, kind, target, now_utc()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Withdraws a grant; the error lists the grants the dataset has.
    pub fn revoke_grant(&self, dataset: &str, to: &GrantTarget) -> Result<(), StoreError> {
        let (kind, target) = to.parts();
        let conn = self.conn();
        let id = Self::dataset_id(&conn, dataset)?;
        let changed = conn.execute(
            "DELETE FROM dataset_grants WHERE dataset_id = ?1 AND target_kind = ?2 AND target = ?3",
            params![id, kind, target],
        )?;
        if changed == 0 {
            let known = Self::grants_of(&conn, &id)?
                .iter()
                .map(ToString::to_string)
                .collect();
            return Err(StoreError::NotFound {
                kind: "grant",
                name: format!("{to} on dataset '{dataset}'"),
                known,
            });
        }
        Ok(())
    }

    /// Whether `party` may use `dataset` in job `job_id`: a grant to the party or to the job,
    /// or — when the job belongs to a project — a grant to that project, provided `party` is a
    /// joined member of it on this node's record. The job's project is read from its stored
    /// spec (`project` field); a job not stored yet belongs to none (use
    /// [`Store::is_granted_in`] while vetting a proposal). Unknown datasets are an error, not
    /// `false`, so the refusal can say so.
    pub fn is_granted(&self, dataset: &str, party: &str, job_id: &str) -> Result<bool, StoreError> {
        let project = self.project_of_job(job_id)?;
        self.is_granted_in(dataset, party, job_id, project.as_deref())
    }

    /// [`Store::is_granted`] for a job of `project` (`None`: of no project).
    pub fn is_granted_in(
        &self,
        dataset: &str,
        party: &str,
        job_id: &str,
        project: Option<&str>,
    ) -> Result<bool, StoreError> {
        let conn = self.conn();
        let id = Self::dataset_id(&conn, dataset)?;
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM dataset_grants WHERE dataset_id = ?1 AND \
             ((target_kind = 'party' AND target = ?2) OR (target_kind = 'job' AND target = ?3))",
            params![id, party, job_id],
            |r| r.get(0),
        )?;
        if n > 0 {
            return Ok(true);
        }
        let Some(project) = project else {
            return Ok(false);
        };
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM dataset_grants g JOIN project_members m \
             ON m.project = g.target AND m.party = ?3 AND m.status = 'joined' \
             WHERE g.dataset_id = ?1 AND g.target_kind = 'project' AND g.target = ?2",
            params![id, project, party],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// [`Store::is_granted`] as a check whose error explains the refusal and the fix, for a
    /// host to send back to the initiator.
    pub fn check_granted(
        &self,
        dataset: &str,
        party: &str,
        job_id: &str,
    ) -> Result<(), StoreError> {
        let project = self.project_of_job(job_id)?;
        self.check_granted_in(dataset, party, job_id, project.as_deref())
    }

    /// [`Store::is_granted_in`] as a check (see [`Store::check_granted`]).
    pub fn check_granted_in(
        &self,
        dataset: &str,
        party: &str,
        job_id: &str,
        project: Option<&str>,
    ) -> Result<(), StoreError> {
        if self.is_granted_in(dataset, party, job_id, project)? {
            return Ok(());
        }
        // Which projects the dataset is granted to, so the owner's log says what would have
        // allowed it (never sent to a partner: the node's refusal to a peer is its own text).
        let projects: Vec<String> = self
            .grants(dataset)?
            .into_iter()
            .filter_map(|g| match g {
                GrantTarget::Project(p) => Some(p),
                _ => None,
            })
            .collect();
        Err(StoreError::NotGranted {
            dataset: dataset.to_string(),
            party: party.to_string(),
            job_id: job_id.to_string(),
            project: project.map(str::to_string),
            granted_projects: projects,
        })
    }

    fn grants_of(conn: &Connection, id: &str) -> Result<Vec<GrantTarget>, StoreError> {
        let mut stmt = conn.prepare(
            "SELECT target_kind, target FROM dataset_grants WHERE dataset_id = ?1 ORDER BY target_kind, target",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.map(|r| {
            let (kind, target) = r?;
            match kind.as_str() {
                "party" => Ok(GrantTarget::Party(target)),
                "job" => Ok(GrantTarget::Job(target)),
                "project" => Ok(GrantTarget::Project(target)),
                other => Err(StoreError::Db(format!(
                    "unknown stored grant kind '{other}'"
                ))),
            }
        })
        .collect()
    }

    /// The dataset's grants, parties first.
    pub fn grants(&self, dataset: &str) -> Result<Vec<GrantTarget>, StoreError> {
        let conn = self.conn();
        let id = Self::dataset_id(&conn, dataset)?;
        Self::grants_of(&conn, &id)
    }
}

fn dataset_exists(name: &str) -> StoreError {
    StoreError::AlreadyExists {
        kind: "dataset",
        name: name.to_string(),
        hint: "choose another name, delete it first, or register with replace".into(),
    }
}

/// Errors from scanning the stored copy name the file the user gave.
fn rename_file_in_error(e: StoreError, copy: &Path, source: &Path) -> StoreError {
    match e {
        StoreError::InvalidInput {
            file: Some(f),
            row,
            column,
            reason,
        } if f == copy => StoreError::InvalidInput {
            file: Some(source.to_path_buf()),
            row,
            column,
            reason,
        },
        other => other,
    }
}
