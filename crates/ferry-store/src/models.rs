//! The model library: versioned, signed model payloads.

use crate::datasets::{from_json, to_json};
use crate::fsutil::{create_dir, fsync_dir, random_hex, remove_path, write_atomic};
use crate::time::now_utc;
use crate::{Store, StoreError, sha256_hex, to_i64, to_u64, validate_name};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Version of the signed statement format (see the crate docs). A record with another
/// version is refused on load.
pub const STATEMENT_VERSION: u32 = 1;

/// Where a model came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelLineage {
    pub job_id: String,
    pub task: String,
    /// Names of the datasets it was trained on (this party's).
    #[serde(default)]
    pub datasets: Vec<String>,
    /// Training parameters.
    #[serde(default)]
    pub params: serde_json::Value,
}

/// A model to store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreModel {
    pub name: String,
    /// Algorithm, e.g. `hetero_secureboost`.
    pub kind: String,
    /// This party's role in the job, e.g. `guest`, `host`, `arbiter`.
    pub role: String,
    /// This party's part of the model, usually JSON; the algorithm crate defines and
    /// versions its content.
    #[serde(skip)]
    pub payload: Vec<u8>,
    pub lineage: ModelLineage,
    #[serde(default)]
    pub metrics: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub name: String,
    pub version: u32,
    pub kind: String,
    pub role: String,
    /// Absolute path of the payload file.
    pub path: PathBuf,
    pub bytes: u64,
    /// SHA-256 (hex) of the payload.
    pub sha256: String,
    /// The node's signature over the statement: ECDSA P-256 (ASN.1 DER, hex), or under the GM
    /// suite `sm2:` and the hex of an SM2 signature (see [`crate::ModelSigner`]).
    pub signature: String,
    pub statement_version: u32,
    pub lineage: ModelLineage,
    pub metrics: serde_json::Value,
    pub created_at: String,
}

const MODEL_COLUMNS: &str = "name, version, kind, party_role, file, byte_count, sha256, \
     lineage_json, metrics_json, statement_version, signature, created_at";

/// A model row as stored: the statement is rebuilt from these exact texts.
struct RawModel {
    name: String,
    version: i64,
    kind: String,
    role: String,
    file: String,
    bytes: i64,
    sha256: String,
    lineage_json: String,
    metrics_json: String,
    statement_version: i64,
    signature: String,
    created_at: String,
}

fn raw_model(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawModel> {
    Ok(RawModel {
        name: r.get(0)?,
        version: r.get(1)?,
        kind: r.get(2)?,
        role: r.get(3)?,
        file: r.get(4)?,
        bytes: r.get(5)?,
        sha256: r.get(6)?,
        lineage_json: r.get(7)?,
        metrics_json: r.get(8)?,
        statement_version: r.get(9)?,
        signature: r.get(10)?,
        created_at: r.get(11)?,
    })
}

/// The fields the node signs for a model.
struct Statement<'a> {
    name: &'a str,
    version: i64,
    kind: &'a str,
    role: &'a str,
    sha256: &'a str,
    created_at: &'a str,
    lineage_json: &'a str,
    metrics_json: &'a str,
}

impl Statement<'_> {
    /// The text that is signed. One `key=value` line each, in this order; every value is
    /// either a validated identifier (no `=` or newline), a number, a timestamp or hex, so the
    /// encoding is unambiguous. Lineage and metrics enter through the SHA-256 of their stored
    /// JSON text.
    fn text(&self) -> String {
        format!(
            "ferry-model-statement/{STATEMENT_VERSION}\nname={}\nversion={}\nkind={}\nrole={}\nsha256={}\ncreated_at={}\nlineage_sha256={}\nmetrics_sha256={}\n",
            self.name,
            self.version,
            self.kind,
            self.role,
            self.sha256,
            self.created_at,
            sha256_hex(self.lineage_json.as_bytes()),
            sha256_hex(self.metrics_json.as_bytes()),
        )
    }
}

fn model_file(name: &str, version: i64) -> String {
    format!("models/{name}/v{version}.bin")
}

impl Store {
    fn model_record(&self, raw: RawModel) -> Result<ModelRecord, StoreError> {
        Ok(ModelRecord {
            version: u32::try_from(raw.version).map_err(|_| {
                StoreError::Db(format!(
                    "stored model version {} is out of range",
                    raw.version
                ))
            })?,
            path: self
                .data_dir
                .join("models")
                .join(&raw.name)
                .join(format!("v{}.bin", raw.version)),
            bytes: to_u64(raw.bytes, "model size")?,
            statement_version: u32::try_from(raw.statement_version).unwrap_or(u32::MAX),
            lineage: from_json(&raw.lineage_json, "model lineage")?,
            metrics: from_json(&raw.metrics_json, "model metrics")?,
            name: raw.name,
            kind: raw.kind,
            role: raw.role,
            sha256: raw.sha256,
            signature: raw.signature,
            created_at: raw.created_at,
        })
    }

    fn model_names(conn: &Connection) -> Result<Vec<String>, StoreError> {
        let mut stmt = conn.prepare("SELECT DISTINCT name FROM models ORDER BY name")?;
        let names = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(names)
    }

    fn raw_model(&self, name: &str, version: Option<u32>) -> Result<RawModel, StoreError> {
        let conn = self.conn();
        let found = match version {
            Some(v) => conn
                .query_row(
                    &format!("SELECT {MODEL_COLUMNS} FROM models WHERE name = ?1 AND version = ?2"),
                    params![name, i64::from(v)],
                    raw_model,
                )
                .optional()?,
            None => conn
                .query_row(
                    &format!(
                        "SELECT {MODEL_COLUMNS} FROM models WHERE name = ?1 ORDER BY version DESC LIMIT 1"
                    ),
                    [name],
                    raw_model,
                )
                .optional()?,
        };
        match found {
            Some(raw) => Ok(raw),
            None => Err(self.model_not_found(&conn, name, version)?),
        }
    }

    fn model_not_found(
        &self,
        conn: &Connection,
        name: &str,
        version: Option<u32>,
    ) -> Result<StoreError, StoreError> {
        Ok(match version {
            Some(v) => {
                let mut stmt =
                    conn.prepare("SELECT version FROM models WHERE name = ?1 ORDER BY version")?;
                let versions = stmt
                    .query_map([name], |r| r.get::<_, i64>(0))?
                    .map(|v| v.map(|v| format!("{name} v{v}")))
                    .collect::<Result<Vec<_>, _>>()?;
                let known = if versions.is_empty() {
                    Self::model_names(conn)?
                } else {
                    versions
                };
                StoreError::NotFound {
                    kind: "model",
                    name: format!("{name} v{v}"),
                    known,
                }
            }
            None => StoreError::NotFound {
                kind: "model",
                name: name.to_string(),
                known: Self::model_names(conn)?,
            },
        })
    }

    /// Stores a new version (1 + the highest version ever stored under this name, so a
    /// deleted version number is never reused) of a model: the payload goes to
    /// `data/models/<name>/v<version>.bin` atomically, the record with its hash and the
    /// node's signature in one transaction.
    pub fn store_model(&self, req: StoreModel) -> Result<ModelRecord, StoreError> {
        validate_name("model", &req.name)?;
        validate_name("model kind", &req.kind)?;
        validate_name("model role", &req.role)?;
        let lineage_json = to_json(&req.lineage)?;
        let metrics_json = to_json(&req.metrics)?;
        let sha256 = sha256_hex(&req.payload);
        let bytes = req.payload.len() as u64;
        let dir = self.data_dir.join("models").join(&req.name);
        create_dir(&dir)?;
        // The payload is written and synced before the database lock is taken, so a large
        // model does not stall other requests; the lock covers only a rename and an insert.
        let staged = dir.join(format!(".staged-{}.bin", random_hex(8)?));
        let _guard = self.mark_in_flight(&staged);
        write_atomic(&staged, &self.seal_for_disk(&req.payload)?)?;
        let result = self.commit_model(
            &req,
            &dir,
            &staged,
            &sha256,
            bytes,
            &lineage_json,
            &metrics_json,
        );
        let _ = remove_path(&staged); // already renamed on success
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_model(
        &self,
        req: &StoreModel,
        dir: &Path,
        staged: &Path,
        sha256: &str,
        bytes: u64,
        lineage_json: &str,
        metrics_json: &str,
    ) -> Result<ModelRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last_named: Option<i64> = tx
            .query_row(
                "SELECT last_version FROM model_names WHERE name = ?1",
                [&req.name],
                |r| r.get(0),
            )
            .optional()?;
        let last_stored: Option<i64> = tx.query_row(
            "SELECT MAX(version) FROM models WHERE name = ?1",
            [&req.name],
            |r| r.get(0),
        )?;
        let version = last_named.unwrap_or(0).max(last_stored.unwrap_or(0)) + 1;
        if version > i64::from(u32::MAX) {
            return Err(StoreError::invalid(format!(
                "model '{}' has run out of version numbers",
                req.name
            )));
        }
        let created_at = now_utc();
        let text = Statement {
            name: &req.name,
            version,
            kind: &req.kind,
            role: &req.role,
            sha256,
            created_at: &created_at,
            lineage_json,
            metrics_json,
        }
        .text();
        let signature = self.signer.sign_record(text.as_bytes())?;
        let rel = model_file(&req.name, version);
        let path = dir.join(format!("v{version}.bin"));
        // Any file already at this name is an orphan of a crash between rename and commit
        // (its version was never committed), so replacing it loses nothing.
        std::fs::rename(staged, &path)
            .map_err(|e| StoreError::io(&path, "cannot move the model into place", e))?;
        crate::crash_point("model-after-rename");
        let committed = (|| {
            fsync_dir(dir)?;
            tx.execute(
                &format!(
                    "INSERT INTO models ({MODEL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    req.name,
                    version,
                    req.kind,
                    req.role,
                    rel,
                    to_i64(bytes, "model size")?,
                    sha256,
                    lineage_json,
                    metrics_json,
                    i64::from(STATEMENT_VERSION),
                    signature,
                    created_at,
                ],
            )?;
            tx.execute(
                "INSERT INTO model_names (name, last_version) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET last_version = excluded.last_version",
                params![req.name, version],
            )?;
            tx.commit()?;
            Ok::<_, StoreError>(())
        })();
        if let Err(e) = committed {
            let _ = remove_path(&path);
            return Err(e);
        }
        tracing::info!(model = %req.name, version, kind = %req.kind, "stored model");
        Ok(ModelRecord {
            name: req.name.clone(),
            version: version as u32,
            kind: req.kind.clone(),
            role: req.role.clone(),
            path,
            bytes,
            sha256: sha256.to_string(),
            signature,
            statement_version: STATEMENT_VERSION,
            lineage: req.lineage.clone(),
            metrics: req.metrics.clone(),
            created_at,
        })
    }

    /// The model's record and payload (latest version when `version` is `None`), after
    /// checking the record's signature with the node key and the payload's SHA-256 against
    /// the record. A failed check returns [`StoreError::TamperedModel`] and logs the reason.
    pub fn load_model(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<(ModelRecord, Vec<u8>), StoreError> {
        let raw = self.raw_model(name, version)?;
        let (model_name, model_version) = (raw.name.clone(), raw.version);
        let refuse = |reason: String| {
            tracing::warn!(model = %model_name, version = model_version, %reason, "refusing to load model");
            StoreError::TamperedModel {
                name: model_name.clone(),
                version: u32::try_from(model_version).unwrap_or(u32::MAX),
                reason,
            }
        };
        if raw.statement_version != i64::from(STATEMENT_VERSION) {
            return Err(refuse(format!(
                "record has signed-statement format {}, this ferry reads format {STATEMENT_VERSION}",
                raw.statement_version
            )));
        }
        let expected_file = model_file(&raw.name, raw.version);
        if raw.file != expected_file {
            return Err(refuse(format!(
                "record points at '{}' instead of '{expected_file}'",
                raw.file
            )));
        }
        let text = Statement {
            name: &raw.name,
            version: raw.version,
            kind: &raw.kind,
            role: &raw.role,
            sha256: &raw.sha256,
            created_at: &raw.created_at,
            lineage_json: &raw.lineage_json,
            metrics_json: &raw.metrics_json,
        }
        .text();
        if let Err(why) = self.signer.verify_record(text.as_bytes(), &raw.signature) {
            return Err(refuse(format!(
                "{why}: its name, version, kind, role, hash, time, lineage or metrics were altered, or it was signed by another node key"
            )));
        }
        let record = self.model_record(raw)?;
        // Decrypted (each record authenticated) when the node encrypts at rest.
        let payload = self.read_file_plain(&record.path)?;
        let actual = sha256_hex(&payload);
        if actual != record.sha256 {
            return Err(refuse(format!(
                "the file's SHA-256 {actual} differs from the signed {} ({}): the file was altered",
                record.sha256,
                record.path.display()
            )));
        }
        Ok((record, payload))
    }

    /// The record only (no file read, no verification); latest version when `None`.
    pub fn model(&self, name: &str, version: Option<u32>) -> Result<ModelRecord, StoreError> {
        let raw = self.raw_model(name, version)?;
        self.model_record(raw)
    }

    /// Every version of every model, by name then version.
    pub fn list_models(&self) -> Result<Vec<ModelRecord>, StoreError> {
        let raws = {
            let conn = self.conn();
            let mut stmt = conn.prepare(&format!(
                "SELECT {MODEL_COLUMNS} FROM models ORDER BY name, version"
            ))?;
            stmt.query_map([], raw_model)?
                .collect::<Result<Vec<_>, _>>()?
        };
        raws.into_iter().map(|r| self.model_record(r)).collect()
    }

    /// Deletes one version, or with `None` every version of the model. Records go first (one
    /// transaction), files after.
    pub fn delete_model(&self, name: &str, version: Option<u32>) -> Result<(), StoreError> {
        let versions: Vec<i64> = {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let versions: Vec<i64> = match version {
                Some(v) => tx
                    .query_row(
                        "SELECT version FROM models WHERE name = ?1 AND version = ?2",
                        params![name, i64::from(v)],
                        |r| r.get(0),
                    )
                    .optional()?
                    .into_iter()
                    .collect(),
                None => tx
                    .prepare("SELECT version FROM models WHERE name = ?1")?
                    .query_map([name], |r| r.get(0))?
                    .collect::<Result<Vec<i64>, _>>()?,
            };
            if versions.is_empty() {
                return Err(self.model_not_found(&tx, name, version)?);
            }
            for v in &versions {
                tx.execute(
                    "DELETE FROM models WHERE name = ?1 AND version = ?2",
                    params![name, v],
                )?;
            }
            tx.commit()?;
            versions
        };
        let dir = self.data_dir.join("models").join(name);
        for v in versions {
            remove_path(&dir.join(format!("v{v}.bin")))?;
        }
        // Leaves the directory if a version remains or a store is in progress.
        let _ = std::fs::remove_dir(&dir);
        tracing::info!(model = name, ?version, "deleted model");
        Ok(())
    }
}
