//! A job's privacy report: for each task, what each party revealed to whom, the settings that
//! bear on it, and the bytes this node exchanged with each peer.
//!
//! Built on demand from what the node keeps with the job, so it is the same every time once
//! the job has ended:
//!
//! * the job spec → each task's component states its disclosures for the job's parties and
//!   parameters ([`crate::components::Component::disclosure`]) and names the rows of
//!   SECURITY.md's table "What each protocol reveals" it runs; the report quotes those rows
//!   from SECURITY.md itself, compiled into the binary, so the table and the report cannot
//!   drift apart (a test checks that every row a component names exists);
//! * each party's line of the approval view (key sizes, PSI receivers and key mode, secure
//!   aggregation, DP), as [`crate::components::Claims::security`] gives it;
//! * the task's metrics on this node (FedAvg's DP budget spent: `epsilon_spent`, recorded by
//!   every party when training ends, and the server's `epsilon` per round);
//! * the job's audit records on this node: per peer, the bytes and messages sent and
//!   received. A node sees only its own links, so these are this node's figures; each party's
//!   report has its own.
//!
//! A task whose outputs were reused from an earlier job sent nothing in this job; the report
//! says so and points to that job. Served at `GET /api/v1/jobs/{id}/privacy`, printed by
//! `ferry job privacy ID [--json]`. Anonymous queries are not jobs: a query's record
//! (`ferry query show`) is its account.

use crate::api::ApiError;
use crate::components::{self, Disclosure, TaskDisclosure, TaskFacts};
use crate::dsl::{JobSpec, TaskSpec};
use crate::node::Node;
use axum::Json;
use axum::extract::{Path, State};
use ferry_context::Roster;
use ferry_store::{Direction, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// SECURITY.md, whose table "What each protocol reveals" the report quotes.
const SECURITY_MD: &str = include_str!("../../../SECURITY.md");

/// The heading of the table in SECURITY.md.
const TABLE_HEADING: &str = "## What each protocol reveals";

/// The statement of SECURITY.md's row whose first cell starts with `protocol` (one of
/// [`components::disclosure::protocol`]), as written there.
pub fn protocol_statement(protocol: &str) -> Option<&'static str> {
    let start = SECURITY_MD.find(TABLE_HEADING)? + TABLE_HEADING.len();
    let section = &SECURITY_MD[start..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section.lines().find_map(|line| {
        let cells: Vec<&str> = line
            .strip_prefix('|')?
            .strip_suffix('|')?
            .splitn(2, " | ")
            .collect();
        match cells.as_slice() {
            [name, statement] if name.trim().starts_with(protocol) => Some(statement.trim()),
            _ => None,
        }
    })
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrivacyReport {
    pub job_id: String,
    pub job_name: Option<String>,
    /// The node whose records the byte counts are.
    pub party: String,
    pub status: String,
    pub parties: Vec<PartyRole>,
    pub tasks: Vec<TaskPrivacy>,
    /// This node's bytes per peer over every task.
    pub totals: Vec<PeerBytes>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyRole {
    pub party: String,
    pub role: String,
}

/// A row of SECURITY.md's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolStatement {
    pub protocol: String,
    /// The row's text; `None` if SECURITY.md has no such row (a build whose SECURITY.md lost
    /// it; the tests forbid that).
    pub statement: Option<String>,
}

/// One task of the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskPrivacy {
    pub task: String,
    pub component: String,
    /// The task's status on this node (`None` before it was scheduled here).
    pub status: Option<String>,
    /// `protocol` (something crosses the wire), `local` (nothing does) or `not_stated` (the
    /// component does not say; a component this build does not know).
    pub kind: String,
    pub protocols: Vec<ProtocolStatement>,
    pub disclosures: Vec<PartyDisclosure>,
    /// Settings that bear on privacy: each party's line of the approval view, then the
    /// component's own.
    pub settings: Vec<String>,
    /// What the task recorded about its privacy on this node (FedAvg: the DP accounting).
    pub recorded: Option<Value>,
    /// This node's bytes per peer in this task (from the audit records).
    pub bytes: Vec<PeerBytes>,
    pub notes: Vec<String>,
}

/// A [`Disclosure`] with the parties' roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyDisclosure {
    pub from: String,
    pub from_role: String,
    pub to: String,
    pub to_role: String,
    pub what: String,
}

/// What this node exchanged with one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerBytes {
    pub peer: String,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
}

/// The log line the scheduler writes for a task whose outputs an earlier job produced.
const REUSED_PREFIX: &str = "outputs reused from job ";

/// The privacy report of `job_id` from `store`, the store of node `party`.
pub fn job_report(store: &Store, party: &str, job_id: &str) -> Result<PrivacyReport, StoreError> {
    let row = store.job(job_id)?;
    let spec = JobSpec::parse(&row.spec_json).map_err(|e| {
        StoreError::Db(format!("job {job_id}: the stored spec does not parse: {e}"))
    })?;
    let roster = spec
        .roster()
        .map_err(|e| StoreError::Db(format!("job {job_id}: the stored parties: {e}")))?;
    let task_rows = store.tasks(job_id)?;
    let metrics = store.metrics(job_id, None)?;
    let audit = store.audit(job_id)?;
    let logs = store.logs(job_id, None)?;

    let mut tasks = Vec::with_capacity(spec.tasks.len());
    for task in &spec.tasks {
        let mut facts = TaskFacts::from_spec(&spec, task, &roster);
        facts.model_kind = model_kind_of(store, &spec, task, party);
        // Rows come ordered by step: the last one of a name is its final value.
        for m in metrics.iter().filter(|m| m.task == task.name) {
            if m.value.is_finite() {
                facts.metrics.insert(m.name.clone(), m.value);
            }
        }
        let mut t = task_privacy(task, &roster, &facts);
        t.status = task_rows
            .iter()
            .find(|r| r.task == task.name)
            .map(|r| r.status.as_str().to_string());
        t.bytes = bytes_per_peer(audit.iter().filter(|a| a.task == task.name));
        if let Some(from) = logs
            .iter()
            .filter(|l| l.task == task.name)
            .find_map(|l| l.line.strip_prefix(REUSED_PREFIX))
        {
            t.notes.push(format!(
                "outputs reused from job {from}: nothing crossed the wire for this task in this \
                 job; the disclosures happened in that job"
            ));
        }
        if t.kind == "local" && !t.bytes.is_empty() {
            t.notes.push(
                "the component states that nothing crosses the wire, yet this node recorded \
                 messages for the task (see `ferry job audit`)"
                    .into(),
            );
        }
        tasks.push(t);
    }
    Ok(PrivacyReport {
        job_id: job_id.to_string(),
        job_name: spec.name.clone(),
        party: party.to_string(),
        status: row.status.as_str().to_string(),
        parties: roster
            .parties()
            .map(|(p, r)| PartyRole {
                party: p.to_string(),
                role: r.to_string(),
            })
            .collect(),
        tasks,
        totals: bytes_per_peer(audit.iter()),
    })
}

/// One task's statement from its component, with the approval view's lines.
fn task_privacy(task: &TaskSpec, roster: &Roster, facts: &TaskFacts<'_>) -> TaskPrivacy {
    let component = components::find(&task.component);
    let stated: Option<TaskDisclosure> = component.and_then(|c| c.disclosure(facts));
    let mut settings: Vec<String> = match component {
        Some(c) => facts
            .params
            .iter()
            .filter_map(|(p, _, params)| c.claims(params).security.map(|l| format!("{p}: {l}")))
            .collect(),
        None => Vec::new(),
    };
    let role_of = |name: &str| {
        roster
            .parties()
            .find(|(p, _)| p.as_str() == name)
            .map(|(_, r)| r.to_string())
            .unwrap_or_default()
    };
    let (kind, stated) = match stated {
        None => ("not_stated", TaskDisclosure::default()),
        Some(d) if d.is_local() => ("local", d),
        Some(d) => ("protocol", d),
    };
    settings.extend(stated.settings);
    TaskPrivacy {
        task: task.name.clone(),
        component: task.component.clone(),
        status: None,
        kind: kind.to_string(),
        protocols: stated
            .protocols
            .iter()
            .map(|p| ProtocolStatement {
                protocol: p.clone(),
                statement: protocol_statement(p).map(str::to_string),
            })
            .collect(),
        disclosures: stated
            .disclosures
            .into_iter()
            .map(|Disclosure { from, to, what }| PartyDisclosure {
                from_role: role_of(&from),
                to_role: role_of(&to),
                from,
                to,
                what,
            })
            .collect(),
        settings,
        recorded: stated.recorded,
        bytes: Vec::new(),
        notes: Vec::new(),
    }
}

/// The kind of the model a task uses: the component of the training task its `model` input
/// comes from, else the kind of the stored model its parameters name on this node.
fn model_kind_of(store: &Store, spec: &JobSpec, task: &TaskSpec, party: &str) -> Option<String> {
    if let Some(reference) = task.inputs.get("model") {
        let upstream = spec.task(&spec.resolve_input(reference)?.task)?;
        return components::model_kind(&upstream.component).map(|k| k.kind().to_string());
    }
    let roster = spec.roster().ok()?;
    let (_, role) = roster.parties().find(|(p, _)| p.as_str() == party)?;
    let params = spec.params_for(task, party, role);
    let name = params.get("model")?.as_str()?;
    let version = params
        .get("version")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok());
    store.model(name, version).ok().map(|m| m.kind)
}

/// Sums audit records per peer, peers in name order.
fn bytes_per_peer<'a>(
    entries: impl Iterator<Item = &'a ferry_store::AuditEntry>,
) -> Vec<PeerBytes> {
    let mut by_peer: BTreeMap<&str, PeerBytes> = BTreeMap::new();
    for e in entries {
        let b = by_peer.entry(e.peer.as_str()).or_insert_with(|| PeerBytes {
            peer: e.peer.clone(),
            ..PeerBytes::default()
        });
        match e.direction {
            Direction::Sent => {
                b.bytes_sent += e.bytes;
                b.messages_sent += 1;
            }
            Direction::Received => {
                b.bytes_received += e.bytes;
                b.messages_received += 1;
            }
        }
    }
    by_peer.into_values().collect()
}

impl PrivacyReport {
    /// The report as text, for the CLI.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let party = |name: &str, role: &str| {
            if role.is_empty() {
                name.to_string()
            } else {
                format!("{name} ({role})")
            }
        };
        let _ = writeln!(
            out,
            "privacy report of job {}{} ({}), bytes as recorded by {}",
            self.job_id,
            self.job_name
                .as_deref()
                .map(|n| format!(" '{n}'"))
                .unwrap_or_default(),
            self.status,
            self.party
        );
        let _ = writeln!(
            out,
            "parties: {}",
            self.parties
                .iter()
                .map(|p| party(&p.party, &p.role))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for t in &self.tasks {
            let _ = writeln!(
                out,
                "\n{} ({}){}",
                t.task,
                t.component,
                t.status
                    .as_deref()
                    .map(|s| format!(" — {s}"))
                    .unwrap_or_default()
            );
            match t.kind.as_str() {
                "local" => {
                    let _ = writeln!(out, "  runs on each party's own data; nothing crosses");
                }
                "not_stated" => {
                    let _ = writeln!(out, "  the component does not state what it discloses");
                }
                _ => {}
            }
            for p in &t.protocols {
                let _ = writeln!(
                    out,
                    "  {} (SECURITY.md): {}",
                    p.protocol,
                    p.statement
                        .as_deref()
                        .unwrap_or("(no statement in this build)")
                );
            }
            for d in &t.disclosures {
                let _ = writeln!(
                    out,
                    "  {} → {}: {}",
                    party(&d.from, &d.from_role),
                    party(&d.to, &d.to_role),
                    d.what
                );
            }
            for s in &t.settings {
                let _ = writeln!(out, "  setting: {s}");
            }
            if let Some(Value::Object(recorded)) = &t.recorded {
                // The cleartext statistics are already the disclosures above.
                for (k, v) in recorded.iter().filter(|(k, _)| *k != "cleartext") {
                    let v = match v {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    let _ = writeln!(out, "  recorded: {k}: {v}");
                }
            }
            for b in &t.bytes {
                let _ = writeln!(out, "  {}", bytes_line(b));
            }
            for n in &t.notes {
                let _ = writeln!(out, "  note: {n}");
            }
        }
        if !self.totals.is_empty() {
            let _ = writeln!(out, "\nall tasks");
            for b in &self.totals {
                let _ = writeln!(out, "  {}", bytes_line(b));
            }
        }
        out
    }
}

fn bytes_line(b: &PeerBytes) -> String {
    format!(
        "with {}: sent {} B in {} messages, received {} B in {} messages",
        b.peer, b.bytes_sent, b.messages_sent, b.bytes_received, b.messages_received
    )
}

/// `GET /api/v1/jobs/{id}/privacy`.
pub async fn api_job_privacy(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<Json<ferry_api::PrivacyReport>, ApiError> {
    let party = node.party().to_string();
    let store = node.store().clone();
    let report = tokio::task::spawn_blocking(move || job_report(&store, &party, &id))
        .await
        .map_err(|e| StoreError::Db(format!("privacy report: {e}")))??;
    crate::api::answer_as(report).map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use components::disclosure::protocol;

    #[test]
    fn every_protocol_a_component_may_name_has_a_row_in_security_md() {
        for p in protocol::ALL {
            let s = protocol_statement(p).unwrap_or_else(|| panic!("SECURITY.md has no row '{p}'"));
            assert!(s.len() > 40, "{p}: {s}");
        }
        assert!(
            protocol_statement(protocol::PSI)
                .unwrap()
                .starts_with("set sizes to every party")
        );
        assert_eq!(protocol_statement("no such protocol"), None);
    }

    #[test]
    fn bytes_are_summed_per_peer_and_direction() {
        let entry = |peer: &str, direction, bytes| ferry_store::AuditEntry {
            job_id: "job-1".into(),
            task: "t".into(),
            direction,
            peer: peer.into(),
            tag: "x".into(),
            bytes,
            payload_type: "blob".into(),
            at: String::new(),
        };
        let entries = [
            entry("telco", Direction::Sent, 10),
            entry("telco", Direction::Sent, 5),
            entry("telco", Direction::Received, 7),
            entry("hub", Direction::Received, 1),
        ];
        let b = bytes_per_peer(entries.iter());
        assert_eq!(
            b,
            [
                PeerBytes {
                    peer: "hub".into(),
                    bytes_received: 1,
                    messages_received: 1,
                    ..Default::default()
                },
                PeerBytes {
                    peer: "telco".into(),
                    bytes_sent: 15,
                    bytes_received: 7,
                    messages_sent: 2,
                    messages_received: 1,
                },
            ]
        );
    }

    #[test]
    fn a_task_report_carries_the_statement_the_approval_lines_and_the_roles() {
        let spec = JobSpec::parse(
            "parties: {guest: bank, hosts: [telco]}\ntasks:\n  \
             - {name: read, component: reader, party_params: {bank: {dataset: a}, telco: {dataset: b}}}\n  \
             - {name: fit, component: hetero_secureboost, inputs: {train: read}, params: {he: {key_bits: 1024}}}\n  \
             - {name: odd, component: no_such_component}\n",
        )
        .unwrap();
        let roster = spec.roster().unwrap();
        let t = |name: &str| {
            let task = spec.task(name).unwrap();
            task_privacy(task, &roster, &TaskFacts::from_spec(&spec, task, &roster))
        };
        let fit = t("fit");
        assert_eq!(fit.kind, "protocol");
        assert_eq!(fit.protocols[0].protocol, "SecureBoost");
        assert!(
            fit.protocols[0]
                .statement
                .as_deref()
                .unwrap()
                .starts_with("hosts learn the instance space")
        );
        assert!(
            fit.settings
                .contains(&"bank: paillier-1024 keys".to_string()),
            "{:?}",
            fit.settings
        );
        let d = &fit.disclosures[0];
        assert_eq!(
            (
                d.from.as_str(),
                d.from_role.as_str(),
                d.to.as_str(),
                d.to_role.as_str()
            ),
            ("telco", "host", "bank", "guest")
        );
        assert_eq!(t("read").kind, "local");
        assert_eq!(t("odd").kind, "not_stated");
    }
}
