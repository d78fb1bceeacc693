//! Projects across nodes: a project names its partners, the datasets granted to it, and its
//! jobs and models; partners join by approval.
//!
//! 1. A user creates a project on one node ([`Node::create_project`]) naming its partners.
//!    The node records it (itself `joined`, each partner `invited`) and sends each partner
//!    [`Control::ProjectInvite`].
//! 2. The partner records the project (its creator `joined`, itself and the other partners
//!    `invited`); the invitation waits in the approvals to-do list (kind `project`) until a
//!    person approves or declines it ([`Node::approve_project`], [`Node::decline_project`]),
//!    or until it expires (`[approvals] expire_hours`, declined on this node's behalf).
//! 3. The answer ([`Control::ProjectJoin`] / [`Control::ProjectDecline`]) reaches the creator,
//!    which records the member's status and tells the joined members the new list
//!    ([`Control::ProjectMembers`]). Only the creator's word changes other members' statuses,
//!    and only the member itself answers for itself.
//!
//! A job spec may name `project: P`. Then every party of the job must be a joined member of P
//! on this node's record (checked when the guest submits and by every node on the proposal),
//! and datasets granted to P ([`ferry_store::GrantTarget::Project`]) become usable by the job
//! when its initiator is a joined member. A refusal sent to a partner names only the project
//! and the parties its proposal named.

use crate::dsl::JobSpec;
use crate::node::{Control, Node, NodeError};
use ferry_context::{PartyId, Roster};
use ferry_store::{
    MAX_PROJECT_DESCRIPTION, MemberStatus, NewAction, NewProject, ProjectRecord, Store, StoreError,
};
use serde::{Deserialize, Serialize};

/// Most members a project may have (bounds what a partner's invitation may list).
pub const MAX_PROJECT_MEMBERS: usize = 64;

/// What `GET /api/v1/projects/{name}` shows: the record, the datasets this node granted to
/// the project, the project's jobs on this node and the models they produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProjectView {
    #[serde(flatten)]
    pub project: ProjectRecord,
    pub datasets: Vec<String>,
    pub jobs: Vec<ProjectJob>,
    pub models: Vec<ProjectModel>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProjectJob {
    pub id: String,
    pub initiator: String,
    pub status: String,
    pub created_at: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProjectModel {
    pub name: String,
    pub version: u32,
    pub kind: String,
    pub job_id: String,
}

/// Whether this node lets a job (of `project`, if any) read `dataset`: as
/// [`crate::components::check_dataset_access`], with grants to the job's project counted.
pub fn check_dataset_access(
    store: &Store,
    dataset: &str,
    initiator: &str,
    me: &str,
    job_id: &str,
    project: Option<&str>,
) -> Result<(), StoreError> {
    store.dataset(dataset)?;
    if initiator != me {
        store.check_granted_in(dataset, initiator, job_id, project)?;
    }
    Ok(())
}

/// Why a job naming `project` may not run with `roster` on a node whose record is `record`
/// (`None`: no such project here): `(local, shared)` texts, the shared one naming only the
/// project (and the same for an unknown project and a party that is not a joined member).
pub(crate) fn check_job_project(
    me: &PartyId,
    project: &str,
    record: Option<&ProjectRecord>,
    roster: &Roster,
) -> Result<(), (String, String)> {
    // What the proposer is told is the same whether the project is unknown here or a party
    // is not a joined member, so a partner cannot probe which projects this node has.
    let shared = format!(
        "the job names project '{project}', which is unknown on '{me}' or of which not every party of the job is a joined member there"
    );
    let Some(record) = record else {
        return Err((
            format!("the job names project '{project}', which this node does not have"),
            shared,
        ));
    };
    let outsiders: Vec<String> = roster
        .parties()
        .filter(|(p, _)| record.status_of(p.as_str()) != Some(MemberStatus::Joined))
        .map(|(p, _)| {
            let status = record
                .status_of(p.as_str())
                .map(MemberStatus::as_str)
                .unwrap_or("not a member");
            format!("'{p}' ({status})")
        })
        .collect();
    if outsiders.is_empty() {
        return Ok(());
    }
    Err((
        format!(
            "the job names project '{project}', but party {} is not a joined member of it on this node",
            outsiders.join(", ")
        ),
        shared,
    ))
}

fn bad_name(kind: &str, name: &str) -> Result<(), String> {
    ferry_store::validate_name(kind, name).map_err(|e| e.to_string())
}

impl Node {
    /// Partners pinned now (added or removed at run time included).
    fn pinned_partners(&self) -> Vec<String> {
        self.partner_names()
    }

    /// Creates a project with this node as its creator (a joined member) and invites each
    /// partner, which must be pinned. Returns the record.
    pub fn create_project(
        &self,
        name: &str,
        description: &str,
        partners: &[String],
    ) -> Result<ProjectRecord, NodeError> {
        bad_name("project", name).map_err(NodeError::Invalid)?;
        let mut invited: Vec<String> = Vec::new();
        let pinned = self.pinned_partners();
        for p in partners {
            let p = p.trim();
            if p == self.party().as_str() {
                return Err(NodeError::Invalid(format!(
                    "'{p}' is this node; name the partners to invite"
                )));
            }
            if !pinned.iter().any(|k| k == p) {
                return Err(NodeError::Invalid(format!(
                    "'{p}' is not a pinned partner of this node (pinned: {})",
                    if pinned.is_empty() {
                        "none".to_string()
                    } else {
                        pinned.join(", ")
                    }
                )));
            }
            if !invited.iter().any(|k| k == p) {
                invited.push(p.to_string());
            }
        }
        if invited.is_empty() {
            return Err(NodeError::Invalid(
                "a project needs at least one partner (--partner NAME)".into(),
            ));
        }
        if invited.len() + 1 > MAX_PROJECT_MEMBERS {
            return Err(NodeError::Invalid(format!(
                "a project has at most {MAX_PROJECT_MEMBERS} members"
            )));
        }
        let mut project = NewProject::new(name, self.party().as_str());
        project.description = description.trim().to_string();
        project.members = std::iter::once((self.party().to_string(), MemberStatus::Joined))
            .chain(invited.iter().map(|p| (p.clone(), MemberStatus::Invited)))
            .collect();
        let record = self.store().insert_project(&project)?;
        let members: Vec<String> = record.members.iter().map(|m| m.party.clone()).collect();
        for p in &invited {
            let to = PartyId::new(p).map_err(|e| NodeError::Invalid(e.to_string()))?;
            self.send(
                &to,
                &Control::ProjectInvite {
                    project: name.to_string(),
                    description: record.description.clone(),
                    members: members.clone(),
                },
            );
        }
        Ok(record)
    }

    /// The project as this node records it, with its datasets, jobs and models.
    pub fn project_view(&self, name: &str) -> Result<ProjectView, NodeError> {
        let project = self.store().project(name)?;
        let datasets = self.store().datasets_granted_to_project(name)?;
        let mut jobs = Vec::new();
        for job in self.store().list_jobs()? {
            let of_project = JobSpec::parse(&job.spec_json)
                .ok()
                .and_then(|s| s.project)
                .is_some_and(|p| p == name);
            if of_project {
                jobs.push(ProjectJob {
                    id: job.id,
                    initiator: job.initiator,
                    status: job.status.as_str().to_string(),
                    created_at: job.created_at,
                });
            }
        }
        let models = self
            .store()
            .list_models()?
            .into_iter()
            .filter(|m| jobs.iter().any(|j| j.id == m.lineage.job_id))
            .map(|m| ProjectModel {
                name: m.name,
                version: m.version,
                kind: m.kind,
                job_id: m.lineage.job_id,
            })
            .collect();
        Ok(ProjectView {
            project,
            datasets,
            jobs,
            models,
        })
    }

    /// The invitation to `name` this node waits on, with its creator.
    fn invitation(&self, name: &str) -> Result<(ProjectRecord, PartyId), NodeError> {
        let record = self.store().project(name)?;
        let me = self.party().as_str();
        if record.created_by == me || record.status_of(me) != Some(MemberStatus::Invited) {
            return Err(NodeError::Invalid(format!(
                "project '{name}' has no invitation waiting for this node's decision ({})",
                if record.created_by == me {
                    "this node created it".to_string()
                } else {
                    format!(
                        "this node is {}",
                        record
                            .status_of(me)
                            .map(MemberStatus::as_str)
                            .unwrap_or("not a member")
                    )
                }
            )));
        }
        let creator =
            PartyId::new(&record.created_by).map_err(|e| NodeError::Invalid(e.to_string()))?;
        Ok((record, creator))
    }

    /// Joins a project this node was invited to, and tells its creator.
    pub fn approve_project(&self, name: &str) -> Result<(), NodeError> {
        let (_, creator) = self.invitation(name)?;
        self.store()
            .set_member_status(name, self.party().as_str(), MemberStatus::Joined)?;
        self.send(
            &creator,
            &Control::ProjectJoin {
                project: name.to_string(),
            },
        );
        Ok(())
    }

    /// Declines an invitation; the reason (if any) reaches the creator.
    pub fn decline_project(&self, name: &str, reason: &str) -> Result<(), NodeError> {
        let (_, creator) = self.invitation(name)?;
        self.store()
            .set_member_status(name, self.party().as_str(), MemberStatus::Declined)?;
        let reason = reason.trim();
        self.send(
            &creator,
            &Control::ProjectDecline {
                project: name.to_string(),
                reason: (!reason.is_empty()).then(|| reason.to_string()),
            },
        );
        Ok(())
    }

    fn audit_project(
        &self,
        from: &PartyId,
        action: &str,
        project: &str,
        result: Result<&str, &str>,
    ) {
        let entry = NewAction::ok(
            format!("party:{from}"),
            action,
            format!("project={}", project.escape_debug()),
            "federation",
        );
        self.record_action(&match result {
            Ok(note) => entry.with_detail(note),
            Err(reason) => entry.failed(format!("refused: {reason}")),
        });
    }

    /// A partner invites this node to a project it created.
    pub(crate) fn on_project_invite(
        &self,
        from: &PartyId,
        project: &str,
        description: &str,
        members: &[String],
    ) {
        let checked = (|| -> Result<Vec<String>, String> {
            bad_name("project", project)?;
            if description.chars().count() > MAX_PROJECT_DESCRIPTION {
                return Err(format!(
                    "the description is longer than {MAX_PROJECT_DESCRIPTION} characters"
                ));
            }
            if members.len() > MAX_PROJECT_MEMBERS {
                return Err(format!("more than {MAX_PROJECT_MEMBERS} members"));
            }
            for m in members {
                PartyId::new(m).map_err(|e| format!("member '{}': {e}", m.escape_debug()))?;
            }
            if !members.iter().any(|m| m == self.party().as_str()) {
                return Err(format!("'{}' is not among its members", self.party()));
            }
            let mut others: Vec<String> = members
                .iter()
                .filter(|m| *m != from.as_str() && *m != self.party().as_str())
                .cloned()
                .collect();
            others.sort();
            others.dedup();
            Ok(others)
        })();
        let others = match checked {
            Ok(o) => o,
            Err(reason) => {
                tracing::warn!("refused an invitation from '{from}': {reason}");
                self.audit_project(from, "project.invite", project, Err(&reason));
                return;
            }
        };
        if let Ok(existing) = self.store().project(project) {
            if existing.created_by == from.as_str() {
                return; // the same invitation again
            }
            let reason = format!("'{}' already has a project of this name", self.party());
            self.audit_project(from, "project.invite", project, Err(&reason));
            self.send(
                from,
                &Control::ProjectDecline {
                    project: project.to_string(),
                    reason: Some(reason),
                },
            );
            return;
        }
        let mut record = NewProject::new(project, from.as_str());
        record.description = description.to_string();
        record.members = [
            (from.to_string(), MemberStatus::Joined),
            (self.party().to_string(), MemberStatus::Invited),
        ]
        .into_iter()
        .chain(others.into_iter().map(|p| (p, MemberStatus::Invited)))
        .collect();
        match self.store().insert_project(&record) {
            Ok(_) => self.audit_project(
                from,
                "project.invite",
                project,
                Ok("waiting for approval on this node"),
            ),
            Err(e) => tracing::warn!("cannot record the invitation to '{project}': {e}"),
        }
    }

    /// A member answers this node's invitation (`joined`: approved; else declined).
    pub(crate) fn on_project_answer(
        &self,
        from: &PartyId,
        project: &str,
        joined: bool,
        reason: Option<&str>,
    ) {
        let Ok(record) = self.store().project(project) else {
            tracing::warn!("ignoring an answer from '{from}' about an unknown project");
            return;
        };
        let now = record.status_of(from.as_str());
        let allowed = record.created_by == self.party().as_str()
            && match now {
                Some(MemberStatus::Invited) => true,
                // A joined member may leave; nobody re-joins without a new invitation.
                Some(MemberStatus::Joined) => !joined,
                _ => false,
            };
        if !allowed {
            tracing::warn!(
                "ignoring an answer from '{from}' about project '{project}', which did not invite it or is not this node's"
            );
            return;
        }
        let status = if joined {
            MemberStatus::Joined
        } else {
            MemberStatus::Declined
        };
        if let Err(e) = self
            .store()
            .set_member_status(project, from.as_str(), status)
        {
            tracing::warn!("cannot record '{from}' in project '{project}': {e}");
            return;
        }
        let note = match reason {
            Some(r) => format!(
                "{}: {}",
                status.as_str(),
                r.chars().take(500).collect::<String>()
            ),
            None => status.as_str().to_string(),
        };
        self.audit_project(
            from,
            if joined {
                "project.join"
            } else {
                "project.decline"
            },
            project,
            Ok(&note),
        );
        self.send_members(project);
    }

    /// Tells every joined member (but this node) the project's member list.
    fn send_members(&self, project: &str) {
        let Ok(record) = self.store().project(project) else {
            return;
        };
        let members: Vec<(String, MemberStatus)> = record
            .members
            .iter()
            .map(|m| (m.party.clone(), m.status))
            .collect();
        for m in &record.members {
            if m.status != MemberStatus::Joined || m.party == self.party().as_str() {
                continue;
            }
            if let Ok(to) = PartyId::new(&m.party) {
                self.send(
                    &to,
                    &Control::ProjectMembers {
                        project: project.to_string(),
                        members: members.clone(),
                    },
                );
            }
        }
    }

    /// The creator of a project this node joined tells who is in it now. Only the creator's
    /// word counts, and it never changes this node's own status.
    pub(crate) fn on_project_members(
        &self,
        from: &PartyId,
        project: &str,
        members: &[(String, MemberStatus)],
    ) {
        let Ok(record) = self.store().project(project) else {
            return;
        };
        if record.created_by != from.as_str()
            || record.status_of(self.party().as_str()) != Some(MemberStatus::Joined)
            || members.len() > MAX_PROJECT_MEMBERS
        {
            tracing::warn!("ignoring a member list of project '{project}' from '{from}'");
            return;
        }
        for (party, status) in members {
            if party == self.party().as_str() || party == from.as_str() {
                continue;
            }
            if PartyId::new(party).is_err() {
                continue;
            }
            if let Err(e) = self.store().set_member_status(project, party, *status) {
                tracing::warn!("cannot record '{party}' in project '{project}': {e}");
            }
        }
    }

    /// Invitations waiting for this node's decision: `(record, invited_at)`.
    pub(crate) fn pending_invitations(&self) -> Result<Vec<(ProjectRecord, String)>, NodeError> {
        let me = self.party().as_str();
        Ok(self
            .store()
            .list_projects()?
            .into_iter()
            .filter(|p| p.created_by != me)
            .filter_map(|p| {
                let m = p.members.iter().find(|m| m.party == me)?;
                let at = (m.status == MemberStatus::Invited).then(|| m.invited_at.clone())?;
                Some((p, at))
            })
            .collect())
    }
}

/// The approval view's lines for an invitation.
pub(crate) fn invitation_view(p: &ProjectRecord) -> Vec<String> {
    let mut out = vec![format!(
        "project '{}' created by '{}'",
        p.name, p.created_by
    )];
    if !p.description.is_empty() {
        out.push(format!("description: {}", p.description));
    }
    out.push(format!(
        "members: {}",
        p.members
            .iter()
            .map(|m| format!("{} ({})", m.party, m.status.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.push(
        "joining lets jobs of the project use datasets this node grants to the project".into(),
    );
    out
}
