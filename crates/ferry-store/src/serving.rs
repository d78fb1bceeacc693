//! Deployed models ("model services") and the guest's log of online prediction requests
//! (migration 9).
//!
//! Every party of a service keeps its own record under the service's name: the guest (which
//! proposed it and answers predictions) with every host's decision in `detail_json`, and each
//! host with the dataset it feeds the service from. Counters (requests answered, ids scored,
//! errors) are per service and party; feature values are never stored. The guest's request log
//! (`model_service_requests`) keeps one row per prediction request — its id, who asked, how
//! many ids, the outcome and the time — for `[serving] request_log_days`; not the ids asked
//! about, nor any score.

use crate::time::now_utc;
use crate::{Store, StoreError, to_u64, validate_label, validate_name};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

text_enum!(
    /// Where a model service stands on this node.
    ModelServiceStatus, "model service status" {
        /// Waiting for the hosts (guest) or for this node's approval (host).
        PendingApproval => "pending_approval",
        /// Answers predictions.
        Active => "active",
        /// A host refused it (guest), or this node did (host).
        Rejected => "rejected",
        /// Loading failed (a part, a feature table); the reason says which.
        Failed => "failed",
        /// Undeployed; the record stays, with its counters.
        Undeployed => "undeployed",
    }
);

impl ModelServiceStatus {
    /// A service in this state answers nothing and may be replaced by a new deployment of the
    /// same name (from the same guest).
    pub fn is_ended(self) -> bool {
        matches!(
            self,
            ModelServiceStatus::Rejected
                | ModelServiceStatus::Failed
                | ModelServiceStatus::Undeployed
        )
    }
}

/// One model service as this node records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelServiceRecord {
    pub name: String,
    /// `guest` (this node answers predictions) or `host`.
    pub role: String,
    pub guest: String,
    /// Changes with every deployment of the name: a partner's message about an older
    /// deployment is told apart from the current one.
    pub deployment_id: String,
    pub model: String,
    /// The version that answers (this party's own version number of the model).
    pub version: u32,
    /// The version being loaded during a switch (answers once every party has it).
    pub pending_version: Option<u32>,
    pub kind: String,
    pub status: ModelServiceStatus,
    pub reason: Option<String>,
    /// This party's feature dataset (`None` on a guest that takes features inline only, or on
    /// a host that has not approved yet).
    pub dataset: Option<String>,
    /// Everything else the role needs (hosts and their decisions, the transform, timeouts),
    /// as JSON the node reads.
    pub detail: serde_json::Value,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub requests: u64,
    pub ids: u64,
    pub errors: u64,
    pub last_request_at: Option<String>,
}

/// One prediction request in the guest's log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceRequestLog {
    pub request_id: String,
    pub service: String,
    pub actor: String,
    pub ids: u64,
    /// `ok`, or the error.
    pub outcome: String,
    pub millis: f64,
    pub at: String,
}

const COLUMNS: &str = "name, role, guest, deployment_id, model, version, pending_version, kind, \
     status, reason, dataset, detail_json, created_by, created_at, updated_at, requests, ids, \
     errors, last_request_at";

/// Longest reason kept (a partner's reason is cut).
const MAX_REASON: usize = 2000;

fn cut(reason: Option<&str>) -> Option<String> {
    reason.map(|r| {
        let mut end = r.len().min(MAX_REASON);
        while !r.is_char_boundary(end) {
            end -= 1;
        }
        r[..end].to_string()
    })
}

fn read(row: &Row) -> rusqlite::Result<(ModelServiceRecord, i64, Option<i64>, String, String)> {
    let status: String = row.get(8)?;
    let detail: String = row.get(11)?;
    let requests: i64 = row.get(15)?;
    let ids: i64 = row.get(16)?;
    let errors: i64 = row.get(17)?;
    Ok((
        ModelServiceRecord {
            name: row.get(0)?,
            role: row.get(1)?,
            guest: row.get(2)?,
            deployment_id: row.get(3)?,
            model: row.get(4)?,
            version: 0,
            pending_version: None,
            kind: row.get(7)?,
            status: ModelServiceStatus::PendingApproval,
            reason: row.get(9)?,
            dataset: row.get(10)?,
            detail: serde_json::Value::Null,
            created_by: row.get(12)?,
            created_at: row.get(13)?,
            updated_at: row.get(14)?,
            requests: requests.max(0) as u64,
            ids: ids.max(0) as u64,
            errors: errors.max(0) as u64,
            last_request_at: row.get(18)?,
        },
        row.get(5)?,
        row.get(6)?,
        status,
        detail,
    ))
}

fn finish(
    (mut rec, version, pending, status, detail): (
        ModelServiceRecord,
        i64,
        Option<i64>,
        String,
        String,
    ),
) -> Result<ModelServiceRecord, StoreError> {
    let v = |x: i64| {
        u32::try_from(x)
            .map_err(|_| StoreError::Db(format!("stored model version {x} is out of range")))
    };
    rec.version = v(version)?;
    rec.pending_version = pending.map(v).transpose()?;
    rec.status = status.parse::<ModelServiceStatus>()?;
    rec.detail = serde_json::from_str(&detail)
        .map_err(|e| StoreError::Db(format!("model service '{}': detail: {e}", rec.name)))?;
    Ok(rec)
}

impl Store {
    /// Records a new service, or replaces an ended one of the same name (see
    /// [`ModelServiceStatus::is_ended`]); a service that has not ended is never replaced.
    /// The caller checks who may replace what (a host: only the same guest's).
    pub fn put_model_service(&self, s: &ModelServiceRecord) -> Result<(), StoreError> {
        validate_name("service", &s.name)?;
        validate_name("model", &s.model)?;
        validate_label("party", &s.guest)?;
        validate_label("creator", &s.created_by)?;
        validate_label("deployment id", &s.deployment_id)?;
        if let Some(d) = &s.dataset {
            validate_name("dataset", d)?;
        }
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT status FROM model_services WHERE name = ?1",
                [&s.name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(status) = existing {
            if !status.parse::<ModelServiceStatus>()?.is_ended() {
                return Err(StoreError::AlreadyExists {
                    kind: "model service",
                    name: s.name.clone(),
                    hint: "undeploy it first, or switch its version".into(),
                });
            }
            tx.execute("DELETE FROM model_services WHERE name = ?1", [&s.name])?;
        }
        let now = now_utc();
        tx.execute(
            &format!(
                "INSERT INTO model_services ({COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, 0, 0, 0, NULL)"
            ),
            params![
                s.name,
                s.role,
                s.guest,
                s.deployment_id,
                s.model,
                i64::from(s.version),
                s.pending_version.map(i64::from),
                s.kind,
                s.status.as_str(),
                cut(s.reason.as_deref()),
                s.dataset,
                s.detail.to_string(),
                s.created_by,
                now,
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Writes a service's state (version, pending version, status, reason, dataset, detail);
    /// the counters are kept.
    pub fn update_model_service(&self, s: &ModelServiceRecord) -> Result<(), StoreError> {
        if let Some(d) = &s.dataset {
            validate_name("dataset", d)?;
        }
        let n = self.conn().execute(
            "UPDATE model_services SET version = ?2, pending_version = ?3, status = ?4, \
             reason = ?5, dataset = ?6, detail_json = ?7, updated_at = ?8 WHERE name = ?1",
            params![
                s.name,
                i64::from(s.version),
                s.pending_version.map(i64::from),
                s.status.as_str(),
                cut(s.reason.as_deref()),
                s.dataset,
                s.detail.to_string(),
                now_utc(),
            ],
        )?;
        if n == 0 {
            return Err(self.service_not_found(&s.name));
        }
        Ok(())
    }

    fn service_not_found(&self, name: &str) -> StoreError {
        let known = self
            .list_model_services()
            .map(|l| l.into_iter().map(|s| s.name).collect())
            .unwrap_or_default();
        StoreError::NotFound {
            kind: "model service",
            name: name.to_string(),
            known,
        }
    }

    /// The service `name`, `None` if there is none (for names a partner sends).
    pub fn find_model_service(&self, name: &str) -> Result<Option<ModelServiceRecord>, StoreError> {
        let conn = self.conn();
        let raw = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM model_services WHERE name = ?1"),
                [name],
                read,
            )
            .optional()?;
        raw.map(finish).transpose()
    }

    /// The service `name`; not found names the services there are.
    pub fn model_service(&self, name: &str) -> Result<ModelServiceRecord, StoreError> {
        self.find_model_service(name)?
            .ok_or_else(|| self.service_not_found(name))
    }

    /// Every service, by name.
    pub fn list_model_services(&self) -> Result<Vec<ModelServiceRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM model_services ORDER BY name"
        ))?;
        let raws = stmt.query_map([], read)?.collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(finish).collect()
    }

    /// Adds to a service's counters (the node batches them; see the serving module).
    pub fn add_model_service_counts(
        &self,
        name: &str,
        requests: u64,
        ids: u64,
        errors: u64,
        last_request_at: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE model_services SET requests = requests + ?2, ids = ids + ?3, \
             errors = errors + ?4, last_request_at = ?5 WHERE name = ?1",
            params![
                name,
                crate::to_i64(requests, "requests")?,
                crate::to_i64(ids, "ids")?,
                crate::to_i64(errors, "errors")?,
                last_request_at
            ],
        )?;
        Ok(())
    }

    /// Appends prediction requests to the guest's log (one transaction).
    pub fn log_service_requests(&self, entries: &[ServiceRequestLog]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for e in entries {
            tx.execute(
                "INSERT OR IGNORE INTO model_service_requests \
                 (request_id, service, actor, ids, outcome, millis, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    e.request_id,
                    e.service,
                    e.actor,
                    crate::to_i64(e.ids, "ids")?,
                    cut(Some(&e.outcome)),
                    e.millis,
                    e.at
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes log entries older than `before` (a store timestamp); returns how many.
    pub fn prune_service_requests(&self, before: &str) -> Result<u64, StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM model_service_requests WHERE at < ?1", [before])?;
        Ok(n as u64)
    }

    /// The newest `limit` log entries of a service, newest first.
    pub fn service_requests(
        &self,
        service: &str,
        limit: u64,
    ) -> Result<Vec<ServiceRequestLog>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT request_id, service, actor, ids, outcome, millis, at \
             FROM model_service_requests WHERE service = ?1 ORDER BY at DESC, request_id LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![service, crate::to_i64(limit, "limit")?], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, f64>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(request_id, service, actor, ids, outcome, millis, at)| {
                Ok(ServiceRequestLog {
                    request_id,
                    service,
                    actor,
                    ids: to_u64(ids, "ids")?,
                    outcome,
                    millis,
                    at,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let signer = crate::ModelSigner::generate().unwrap();
        let store =
            Store::open(&tmp.path().join("state"), &tmp.path().join("data"), signer).unwrap();
        (tmp, store)
    }

    fn record(name: &str) -> ModelServiceRecord {
        ModelServiceRecord {
            name: name.into(),
            role: "guest".into(),
            guest: "bank".into(),
            deployment_id: "dep-1".into(),
            model: "sbt".into(),
            version: 1,
            pending_version: None,
            kind: "hetero_secureboost".into(),
            status: ModelServiceStatus::PendingApproval,
            reason: None,
            dataset: Some("applicants".into()),
            detail: serde_json::json!({"hosts": ["telco"]}),
            created_by: "user:alice".into(),
            created_at: String::new(),
            updated_at: String::new(),
            requests: 0,
            ids: 0,
            errors: 0,
            last_request_at: None,
        }
    }

    #[test]
    fn services_are_kept_replaced_only_once_ended_and_counted() {
        let (_dir, store) = store();
        let mut s = record("scoring");
        store.put_model_service(&s).unwrap();
        let e = store.put_model_service(&s).unwrap_err().to_string();
        assert!(e.contains("scoring"), "{e}");
        s.status = ModelServiceStatus::Active;
        s.pending_version = Some(2);
        store.update_model_service(&s).unwrap();
        store
            .add_model_service_counts("scoring", 3, 250, 1, "2026-12-04T10:00:00.000Z")
            .unwrap();
        let got = store.model_service("scoring").unwrap();
        assert_eq!(got.status, ModelServiceStatus::Active);
        assert_eq!((got.requests, got.ids, got.errors), (3, 250, 1));
        assert_eq!(got.pending_version, Some(2));
        assert_eq!(got.detail, s.detail);
        s.status = ModelServiceStatus::Undeployed;
        store.update_model_service(&s).unwrap();
        s.deployment_id = "dep-2".into();
        s.status = ModelServiceStatus::PendingApproval;
        store.put_model_service(&s).unwrap();
        let got = store.model_service("scoring").unwrap();
        assert_eq!((got.deployment_id.as_str(), got.requests), ("dep-2", 0));
        assert!(store.find_model_service("other").unwrap().is_none());
        let e = store.model_service("other").unwrap_err().to_string();
        assert!(e.contains("scoring"), "{e}");
    }

    #[test]
    fn the_request_log_is_pruned_by_time() {
        let (_dir, store) = store();
        let entry = |id: &str, at: &str| ServiceRequestLog {
            request_id: id.into(),
            service: "scoring".into(),
            actor: "token:app".into(),
            ids: 1,
            outcome: "ok".into(),
            millis: 1.5,
            at: at.into(),
        };
        store
            .log_service_requests(&[
                entry("r1", "2026-12-01T00:00:00.000Z"),
                entry("r2", "2026-12-03T00:00:00.000Z"),
            ])
            .unwrap();
        assert_eq!(
            store
                .prune_service_requests("2026-12-02T00:00:00.000Z")
                .unwrap(),
            1
        );
        let left = store.service_requests("scoring", 10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].request_id, "r2");
    }
}
