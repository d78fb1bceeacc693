//! Requests made on this node that wait for a second person of this node (the "four eyes"
//! rule of `[approvals] own_jobs_need_approval`): who asked, and who decided what and when.
//!
//! A row is created when the request is made and decided once; a decided row is never changed
//! again, so the table is the record of who approved each of the node's own jobs.

use crate::time::now_utc;
use crate::{Store, StoreError};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

text_enum!(
    /// What the second person decided.
    LocalDecision, "local decision" {
        Approved => "approved",
        Rejected => "rejected",
    }
);

/// One request and, once made, its decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalApproval {
    /// What waits: `job` (a job this node's user submitted).
    pub kind: String,
    pub id: String,
    /// Who asked (`user:<name>`, `token:<name>`, or `local` for the node's own calls).
    pub requested_by: String,
    pub requested_at: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub decision: Option<LocalDecision>,
    pub reason: Option<String>,
}

const COLUMNS: &str =
    "kind, id, requested_by, requested_at, decided_by, decided_at, decision, reason";

fn from_row(r: &Row<'_>) -> rusqlite::Result<LocalApproval> {
    let decision: Option<String> = r.get(6)?;
    Ok(LocalApproval {
        kind: r.get(0)?,
        id: r.get(1)?,
        requested_by: r.get(2)?,
        requested_at: r.get(3)?,
        decided_by: r.get(4)?,
        decided_at: r.get(5)?,
        decision: decision
            .map(|d| d.parse::<LocalDecision>())
            .transpose()
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    6,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
        reason: r.get(7)?,
    })
}

impl Store {
    /// Records that `kind` `id` waits for a second person; `requested_by` asked.
    pub fn request_local_approval(
        &self,
        kind: &str,
        id: &str,
        requested_by: &str,
    ) -> Result<LocalApproval, StoreError> {
        let now = now_utc();
        let conn = self.conn();
        let inserted = conn.execute(
            "INSERT OR IGNORE INTO local_approvals (kind, id, requested_by, requested_at) \
             VALUES (?1, ?2, ?3, ?4)",
            params![kind, id, requested_by, now],
        )?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists {
                kind: "approval request",
                name: format!("{kind} {id}"),
                hint: "it was requested before".into(),
            });
        }
        Ok(LocalApproval {
            kind: kind.into(),
            id: id.into(),
            requested_by: requested_by.into(),
            requested_at: now,
            decided_by: None,
            decided_at: None,
            decision: None,
            reason: None,
        })
    }

    /// The request for `kind` `id`, decided or not.
    pub fn local_approval(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<LocalApproval>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM local_approvals WHERE kind = ?1 AND id = ?2"),
                params![kind, id],
                from_row,
            )
            .optional()?)
    }

    /// Requests not decided yet, oldest first.
    pub fn pending_local_approvals(&self) -> Result<Vec<LocalApproval>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM local_approvals WHERE decision IS NULL \
             ORDER BY requested_at, kind, id"
        ))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Decides a request once. Refused if there is none or it was decided already (two
    /// approvers acting at once: the second is told who was first).
    pub fn decide_local_approval(
        &self,
        kind: &str,
        id: &str,
        decided_by: &str,
        decision: LocalDecision,
        reason: Option<&str>,
    ) -> Result<LocalApproval, StoreError> {
        let now = now_utc();
        let conn = self.conn();
        let changed = conn.execute(
            "UPDATE local_approvals SET decided_by = ?3, decided_at = ?4, decision = ?5, \
             reason = ?6 WHERE kind = ?1 AND id = ?2 AND decision IS NULL",
            params![kind, id, decided_by, now, decision.as_str(), reason],
        )?;
        drop(conn);
        let current = self.local_approval(kind, id)?;
        match (changed, current) {
            (1, Some(row)) => Ok(row),
            (_, None) => Err(StoreError::NotFound {
                kind: "approval request",
                name: format!("{kind} {id}"),
                known: Vec::new(),
            }),
            (_, Some(row)) => Err(StoreError::invalid(format!(
                "{kind} {id} was already {} by {}",
                row.decision.map(|d| d.as_str()).unwrap_or("decided"),
                row.decided_by.as_deref().unwrap_or("someone")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelSigner;

    fn open_temp_store() -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let signer = ModelSigner::generate().unwrap();
        let store =
            Store::open(&tmp.path().join("state"), &tmp.path().join("data"), signer).unwrap();
        (tmp, store)
    }

    #[test]
    fn a_request_is_decided_once_and_the_decision_is_kept() {
        let (_tmp, store) = open_temp_store();
        store
            .request_local_approval("job", "job-1", "user:mia")
            .unwrap();
        assert!(
            store
                .request_local_approval("job", "job-1", "user:mia")
                .is_err(),
            "a second request for the same job"
        );
        store
            .request_local_approval("job", "job-2", "token:ops")
            .unwrap();
        let pending = store.pending_local_approvals().unwrap();
        assert_eq!(
            pending.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["job-1", "job-2"]
        );

        let decided = store
            .decide_local_approval("job", "job-1", "user:ana", LocalDecision::Approved, None)
            .unwrap();
        assert_eq!(decided.decided_by.as_deref(), Some("user:ana"));
        assert_eq!(decided.decision, Some(LocalDecision::Approved));
        let again = store
            .decide_local_approval(
                "job",
                "job-1",
                "user:bob",
                LocalDecision::Rejected,
                Some("no"),
            )
            .unwrap_err();
        assert!(
            again.to_string().contains("already approved by user:ana"),
            "{again}"
        );
        assert_eq!(
            store
                .local_approval("job", "job-1")
                .unwrap()
                .unwrap()
                .decided_by
                .as_deref(),
            Some("user:ana"),
            "the first decision stands"
        );
        assert!(matches!(
            store.decide_local_approval("job", "nope", "user:ana", LocalDecision::Approved, None),
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(store.pending_local_approvals().unwrap().len(), 1);
    }
}
