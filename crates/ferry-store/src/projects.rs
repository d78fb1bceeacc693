//! Projects: a named group of partners that datasets can be granted to and jobs can belong to.
//!
//! A project is created on one node (its `created_by` party, a joined member from the start);
//! every other partner is invited and joins or declines. Each node keeps its own record of a
//! project and of its members' statuses. A dataset granted to a project
//! ([`crate::GrantTarget::Project`]) may be used by a job that names the project (the `project`
//! field of its spec) and whose initiator is a joined member on this node's record
//! ([`Store::is_granted_in`]).

use crate::time::now_utc;
use crate::{Store, StoreError, validate_label, validate_name};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

/// Longest project description kept.
pub const MAX_PROJECT_DESCRIPTION: usize = 2000;

text_enum!(
    /// Where a member stands.
    MemberStatus, "member status" {
        Invited => "invited",
        Joined => "joined",
        Declined => "declined",
    }
);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectMember {
    pub party: String,
    pub status: MemberStatus,
    pub invited_at: String,
    /// When the member joined or declined.
    pub decided_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRecord {
    pub name: String,
    pub description: String,
    /// The party whose node created the project.
    pub created_by: String,
    pub created_at: String,
    /// By party name.
    pub members: Vec<ProjectMember>,
}

impl ProjectRecord {
    /// The member's status, `None` if the party is no member.
    pub fn status_of(&self, party: &str) -> Option<MemberStatus> {
        self.members
            .iter()
            .find(|m| m.party == party)
            .map(|m| m.status)
    }
}

/// A project to record. Start from [`NewProject::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewProject {
    pub name: String,
    pub description: String,
    pub created_by: String,
    /// Every member with its status (the creator included).
    pub members: Vec<(String, MemberStatus)>,
}

impl NewProject {
    pub fn new(name: &str, created_by: &str) -> Self {
        NewProject {
            name: name.to_string(),
            description: String::new(),
            created_by: created_by.to_string(),
            members: Vec::new(),
        }
    }
}

fn not_found(conn: &Connection, name: &str) -> StoreError {
    let known = conn
        .prepare("SELECT name FROM projects ORDER BY name")
        .and_then(|mut s| {
            s.query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()
        })
        .unwrap_or_default();
    StoreError::NotFound {
        kind: "project",
        name: name.to_string(),
        known,
    }
}

fn members_of(conn: &Connection, name: &str) -> Result<Vec<ProjectMember>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT party, status, invited_at, decided_at FROM project_members \
         WHERE project = ?1 ORDER BY party",
    )?;
    let rows = stmt.query_map([name], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    rows.map(|r| {
        let (party, status, invited_at, decided_at) = r?;
        Ok(ProjectMember {
            party,
            status: status.parse::<MemberStatus>()?,
            invited_at,
            decided_at,
        })
    })
    .collect()
}

impl Store {
    /// Records a project and its members in one transaction. Refused if a project of that
    /// name exists already.
    pub fn insert_project(&self, project: &NewProject) -> Result<ProjectRecord, StoreError> {
        validate_name("project", &project.name)?;
        validate_label("party", &project.created_by)?;
        if project.description.chars().count() > MAX_PROJECT_DESCRIPTION {
            return Err(StoreError::invalid(format!(
                "the description of project '{}' is longer than {MAX_PROJECT_DESCRIPTION} characters",
                project.name
            )));
        }
        for (party, _) in &project.members {
            validate_label("party", party)?;
        }
        let now = now_utc();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists = tx
            .query_row(
                "SELECT 1 FROM projects WHERE name = ?1",
                [&project.name],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if exists {
            return Err(StoreError::AlreadyExists {
                kind: "project",
                name: project.name.clone(),
                hint: "choose another name".into(),
            });
        }
        tx.execute(
            "INSERT INTO projects (name, description, created_by, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![project.name, project.description, project.created_by, now],
        )?;
        for (party, status) in &project.members {
            let decided = (*status != MemberStatus::Invited).then_some(&now);
            tx.execute(
                "INSERT INTO project_members (project, party, status, invited_at, decided_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (project, party) DO NOTHING",
                params![project.name, party, status.as_str(), now, decided],
            )?;
        }
        let record = ProjectRecord {
            name: project.name.clone(),
            description: project.description.clone(),
            created_by: project.created_by.clone(),
            created_at: now,
            members: members_of(&tx, &project.name)?,
        };
        tx.commit()?;
        tracing::info!(project = %record.name, "recorded project");
        Ok(record)
    }

    /// The project named `name`; the error lists the known names.
    pub fn project(&self, name: &str) -> Result<ProjectRecord, StoreError> {
        let conn = self.conn();
        let row: Option<(String, String, String)> = conn
            .query_row(
                "SELECT description, created_by, created_at FROM projects WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let (description, created_by, created_at) = row.ok_or_else(|| not_found(&conn, name))?;
        Ok(ProjectRecord {
            name: name.to_string(),
            description,
            created_by,
            created_at,
            members: members_of(&conn, name)?,
        })
    }

    /// Every project, by name.
    pub fn list_projects(&self) -> Result<Vec<ProjectRecord>, StoreError> {
        let names: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT name FROM projects ORDER BY name")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        names.iter().map(|n| self.project(n)).collect()
    }

    /// Sets a member's status (adding the member if the project does not list it yet);
    /// `decided_at` is set when the status is not `invited`.
    pub fn set_member_status(
        &self,
        project: &str,
        party: &str,
        status: MemberStatus,
    ) -> Result<(), StoreError> {
        validate_label("party", party)?;
        let now = now_utc();
        let decided = (status != MemberStatus::Invited).then_some(&now);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists = tx
            .query_row("SELECT 1 FROM projects WHERE name = ?1", [project], |_| {
                Ok(())
            })
            .optional()?
            .is_some();
        if !exists {
            return Err(not_found(&tx, project));
        }
        tx.execute(
            "INSERT INTO project_members (project, party, status, invited_at, decided_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (project, party) DO UPDATE SET status = excluded.status, \
             decided_at = excluded.decided_at",
            params![project, party, status.as_str(), now, decided],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The project a stored job names in its spec (`project`), `None` for a job of no project
    /// or a job this node does not have.
    pub fn project_of_job(&self, job_id: &str) -> Result<Option<String>, StoreError> {
        let spec: Option<String> = self
            .conn()
            .query_row("SELECT spec_json FROM jobs WHERE id = ?1", [job_id], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(spec) = spec else {
            return Ok(None);
        };
        let value: serde_json::Value = crate::datasets::from_json(&spec, "job spec")?;
        Ok(value
            .get("project")
            .and_then(|p| p.as_str())
            .map(str::to_string))
    }

    /// Names of the datasets granted to `project`, by name.
    pub fn datasets_granted_to_project(&self, project: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT d.name FROM dataset_grants g JOIN datasets d ON d.id = g.dataset_id \
             WHERE g.target_kind = 'project' AND g.target = ?1 ORDER BY d.name",
        )?;
        let names = stmt
            .query_map([project], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(names)
    }
}
