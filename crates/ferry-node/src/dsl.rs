//! The job DSL: who takes part, and a DAG of tasks (component, inputs, parameters per role or
//! party). Written in YAML or JSON; both parse to the same [`JobSpec`].
//!
//! ```yaml
//! name: credit-risk
//! parties: {guest: bank, hosts: [telco]}
//! tasks:
//!   - {name: read, component: reader,
//!      party_params: {bank: {dataset: bank_customers}, telco: {dataset: telco_usage}}}
//!   - {name: intersect, component: psi, inputs: {data: read}}
//!   - {name: train, component: hetero_secureboost, inputs: {train: intersect},
//!      params: {num_trees: 10, max_depth: 3}}
//!   - {name: score, component: predict, inputs: {model: train, data: intersect}}
//!   - {name: eval, component: evaluation, inputs: {data: score}}
//! ```
//!
//! An input refers to another task's output as `task` (its first output) or `task.output`.
//! A task's parameters are `params` (everyone), overridden by `role_params.<role>`, overridden
//! by `party_params.<party>`.
//!
//! [`JobSpec::validate`] checks everything that does not need a node's local state and
//! reports every problem with its location (`tasks[2].params`): unknown component or
//! parameter, cycles, missing or unknown inputs, roles or parties that are not in the job.

use crate::components::{self, Component};
use ferry_context::{PartyId, Role, Roster};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Who plays which role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartiesSpec {
    pub guest: String,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub arbiter: Option<String>,
}

/// One node of the DAG.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub name: String,
    pub component: String,
    /// Input slot → `task` or `task.output`.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    #[serde(default)]
    pub params: Map<String, Value>,
    #[serde(default)]
    pub role_params: BTreeMap<Role, Map<String, Value>>,
    #[serde(default)]
    pub party_params: BTreeMap<String, Map<String, Value>>,
}

/// A whole job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    #[serde(default)]
    pub name: Option<String>,
    pub parties: PartiesSpec,
    pub tasks: Vec<TaskSpec>,
    /// Seconds a task may wait for a peer's message before it fails (default 600).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// The project the job belongs to: every party must be a joined member of it, and datasets
    /// granted to the project become usable by the job (`crate::projects`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The job's crypto suite (`default` or `gm`, 国密). Every party checks it against its
    /// `[crypto]` settings when the job is proposed (`crate::crypto`); components with a
    /// `suite` parameter ([`SUITE_FOLLOWING_COMPONENTS`]) run with it unless a task sets
    /// one, which may not contradict it. Absent: `default`, or the submitting node's suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<ferry_crypto::Suite>,
}

/// Components whose `suite` parameter follows the job's `suite` when a task does not set it.
pub const SUITE_FOLLOWING_COMPONENTS: &[&str] = &["psi"];

/// One problem in a job specification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecError {
    /// Where: `parties.hosts[1]`, `tasks[2].inputs.model`, ...
    pub location: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// All problems found, displayed one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        write!(f, "invalid job specification:\n  {}", lines.join("\n  "))
    }
}

fn err(location: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        location: location.into(),
        message: message.into(),
    }
}

/// Closest known name within edit distance 2, for "did you mean" hints.
pub(crate) fn suggest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                cur.push(
                    (prev[j] + usize::from(ca != *cb))
                        .min(prev[j + 1] + 1)
                        .min(cur[j] + 1),
                );
            }
            prev = cur;
        }
        prev[b.len()]
    }
    known
        .into_iter()
        .map(|k| (distance(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn hint(name: &str, known: &[&str]) -> String {
    match suggest(name, known.iter().copied()) {
        Some(s) => format!(" (did you mean '{s}'?)"),
        None => format!(" (known: {})", known.join(", ")),
    }
}

/// A resolved input: which task and which of its outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputRef {
    pub task: String,
    pub output: String,
}

impl JobSpec {
    /// Parses YAML (a superset of JSON, so JSON works too). Syntax errors carry the line.
    pub fn parse(text: &str) -> Result<JobSpec, SpecErrors> {
        serde_yaml::from_str(text).map_err(|e| {
            let location = e
                .location()
                .map(|l| format!("line {}, column {}", l.line(), l.column()))
                .unwrap_or_else(|| "job".into());
            SpecErrors(vec![err(location, e.to_string())])
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a job spec always serialises")
    }

    /// The job's roster: the guest, then hosts in order, then the arbiter.
    pub fn roster(&self) -> Result<Roster, SpecErrors> {
        let mut parties = Vec::new();
        let mut errors = Vec::new();
        let mut add = |loc: String, name: &str, role: Role| match PartyId::new(name) {
            Ok(p) => parties.push((p, role)),
            Err(e) => errors.push(err(loc, e.to_string())),
        };
        add("parties.guest".into(), &self.parties.guest, Role::Guest);
        for (i, h) in self.parties.hosts.iter().enumerate() {
            add(format!("parties.hosts[{i}]"), h, Role::Host);
        }
        if let Some(a) = &self.parties.arbiter {
            add("parties.arbiter".into(), a, Role::Arbiter);
        }
        if !errors.is_empty() {
            return Err(SpecErrors(errors));
        }
        Roster::new(parties).map_err(|e| SpecErrors(vec![err("parties", e.to_string())]))
    }

    pub fn task(&self, name: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// Resolves `task` / `task.output` against the DAG.
    pub fn resolve_input(&self, reference: &str) -> Option<InputRef> {
        let (task, output) = match reference.split_once('.') {
            Some((t, o)) => (t, Some(o)),
            None => (reference, None),
        };
        let def = components::find(&self.task(task)?.component)?;
        let output = match output {
            Some(o) => def.outputs().iter().find(|s| s.name == o)?.name,
            None => def.outputs().first()?.name,
        };
        Some(InputRef {
            task: task.to_string(),
            output: output.to_string(),
        })
    }

    /// The parameters `party` (playing `role`) runs a task with.
    pub fn params_for(&self, task: &TaskSpec, party: &str, role: Role) -> Map<String, Value> {
        let mut merged = task.params.clone();
        if let Some(r) = task.role_params.get(&role) {
            merged.extend(r.clone());
        }
        if let Some(p) = task.party_params.get(party) {
            merged.extend(p.clone());
        }
        if let Some(suite) = self.suite
            && SUITE_FOLLOWING_COMPONENTS.contains(&task.component.as_str())
            && !merged.contains_key("suite")
        {
            merged.insert("suite".into(), Value::from(suite.as_str()));
        }
        merged
    }

    /// Task names in an order that respects every input (Kahn's algorithm; ties keep the
    /// order of the file). Fails on a cycle, naming the tasks in it.
    pub fn topological_order(&self) -> Result<Vec<String>, SpecErrors> {
        let mut indegree: HashMap<&str, usize> =
            self.tasks.iter().map(|t| (t.name.as_str(), 0)).collect();
        for t in &self.tasks {
            for r in t.inputs.values() {
                if let Some(i) = self.resolve_input(r)
                    && indegree.contains_key(i.task.as_str())
                {
                    *indegree.get_mut(t.name.as_str()).expect("task is known") += 1;
                }
            }
        }
        let mut order = Vec::new();
        let mut done: Vec<bool> = vec![false; self.tasks.len()];
        loop {
            let next = self
                .tasks
                .iter()
                .enumerate()
                .find(|(i, t)| !done[*i] && indegree[t.name.as_str()] == 0);
            let Some((i, t)) = next else { break };
            done[i] = true;
            order.push(t.name.clone());
            for other in &self.tasks {
                for r in other.inputs.values() {
                    if self.resolve_input(r).is_some_and(|x| x.task == t.name) {
                        *indegree
                            .get_mut(other.name.as_str())
                            .expect("task is known") -= 1;
                    }
                }
            }
        }
        if order.len() < self.tasks.len() {
            let stuck: Vec<&str> = self
                .tasks
                .iter()
                .enumerate()
                .filter(|(i, _)| !done[*i])
                .map(|(_, t)| t.name.as_str())
                .collect();
            return Err(SpecErrors(vec![err(
                "tasks",
                format!("the inputs form a cycle through tasks {}", stuck.join(", ")),
            )]));
        }
        Ok(order)
    }

    /// Every check that needs no local state. Returns all problems at once.
    pub fn validate(&self) -> Result<(), SpecErrors> {
        let mut errors = Vec::new();
        let roster = match self.roster() {
            Ok(r) => Some(r),
            Err(SpecErrors(e)) => {
                errors.extend(e);
                None
            }
        };
        if self.tasks.is_empty() {
            errors.push(err("tasks", "a job needs at least one task"));
        }
        if let Some(p) = &self.project
            && let Err(e) = ferry_store::validate_name("project", p)
        {
            errors.push(err("project", e.to_string()));
        }
        let known_components: Vec<&str> = components::REGISTRY.iter().map(|c| c.name()).collect();
        for (i, t) in self.tasks.iter().enumerate() {
            let loc = format!("tasks[{i}]");
            let valid_name = !t.name.is_empty()
                && t.name.len() <= 64
                && t.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_name {
                errors.push(err(
                    format!("{loc}.name"),
                    format!(
                        "'{}' is not a task name (letters, digits, '_', '-')",
                        t.name
                    ),
                ));
            }
            if self.tasks[..i].iter().any(|o| o.name == t.name) {
                errors.push(err(
                    format!("{loc}.name"),
                    format!("task '{}' is defined twice", t.name),
                ));
            }
            let Some(def) = components::find(&t.component) else {
                errors.push(err(
                    format!("{loc}.component"),
                    format!(
                        "unknown component '{}'{}",
                        t.component,
                        hint(&t.component, &known_components)
                    ),
                ));
                continue;
            };
            self.check_inputs(i, t, def, &mut errors);
            if let (Some(job_suite), Some(roster)) = (self.suite, &roster) {
                // A task may repeat the job's suite, never run another.
                for (party, role) in roster.parties() {
                    let set = self.params_for(t, party.as_str(), role);
                    let own = set.get("suite").and_then(Value::as_str);
                    if let Some(own) = own.filter(|s| *s != job_suite.as_str()) {
                        errors.push(err(
                            format!("{loc}.params.suite"),
                            format!(
                                "suite '{own}' (for '{party}') contradicts the job's suite \
                                 '{job_suite}'"
                            ),
                        ));
                        break;
                    }
                }
            }
            if let Some(roster) = &roster {
                self.check_params(i, t, def, roster, &mut errors);
                if let Err(reason) = def.check_roster(roster) {
                    errors.push(err(
                        format!("{loc}.component"),
                        format!("{} {reason}", def.name()),
                    ));
                }
            }
        }
        if errors.is_empty()
            && let Err(SpecErrors(e)) = self.topological_order()
        {
            errors.extend(e);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SpecErrors(errors))
        }
    }

    fn check_inputs(
        &self,
        i: usize,
        t: &TaskSpec,
        def: &dyn Component,
        errors: &mut Vec<SpecError>,
    ) {
        let loc = format!("tasks[{i}].inputs");
        let slots: Vec<&str> = def.inputs().iter().map(|s| s.name).collect();
        for (slot, reference) in &t.inputs {
            if !slots.contains(&slot.as_str()) {
                let known = if slots.is_empty() {
                    " (it takes no inputs)".to_string()
                } else {
                    hint(slot, &slots)
                };
                errors.push(err(
                    format!("{loc}.{slot}"),
                    format!("{} has no input '{slot}'{known}", def.name()),
                ));
                continue;
            }
            let task_name = reference.split('.').next().unwrap_or_default();
            match self.task(task_name) {
                None => {
                    let names: Vec<&str> = self.tasks.iter().map(|t| t.name.as_str()).collect();
                    errors.push(err(
                        format!("{loc}.{slot}"),
                        format!("no task named '{task_name}'{}", hint(task_name, &names)),
                    ));
                }
                Some(_) if task_name == t.name => errors.push(err(
                    format!("{loc}.{slot}"),
                    "a task cannot use its own output",
                )),
                Some(src) => {
                    if self.resolve_input(reference).is_none() {
                        let outputs = components::find(&src.component)
                            .map(|d| {
                                d.outputs()
                                    .iter()
                                    .map(|s| s.name)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            })
                            .unwrap_or_default();
                        errors.push(err(format!("{loc}.{slot}"), format!("task '{task_name}' has no output '{reference}' (outputs: {outputs})")));
                    } else if let (Some(r), Some(src_def), Some(want)) = (
                        self.resolve_input(reference),
                        components::find(&src.component),
                        def.inputs().iter().find(|s| s.name == slot),
                    ) && let Some(have) =
                        src_def.outputs().iter().find(|s| s.name == r.output)
                        && have.kind != want.kind
                    {
                        errors.push(err(
                            format!("{loc}.{slot}"),
                            format!(
                                "{} input '{slot}' takes a {:?}, but '{reference}' is a {:?}",
                                def.name(),
                                want.kind,
                                have.kind
                            ),
                        ));
                    }
                }
            }
        }
        for slot in def.inputs() {
            if slot.required
                && !t.inputs.contains_key(slot.name)
                && !def.input_replaced_by_param(slot.name, &t.params)
            {
                errors.push(err(
                    format!("{loc}.{}", slot.name),
                    format!("{} needs input '{}'", def.name(), slot.name),
                ));
            }
        }
    }

    fn check_params(
        &self,
        i: usize,
        t: &TaskSpec,
        def: &dyn Component,
        roster: &Roster,
        errors: &mut Vec<SpecError>,
    ) {
        let loc = format!("tasks[{i}]");
        for role in t.role_params.keys() {
            if roster.with_role(*role).is_empty() {
                errors.push(err(
                    format!("{loc}.role_params.{role}"),
                    format!("the job has no {role}"),
                ));
            }
        }
        for party in t.party_params.keys() {
            if PartyId::new(party)
                .ok()
                .and_then(|p| roster.role_of(&p))
                .is_none()
            {
                let names: Vec<String> = roster.parties().map(|(p, _)| p.to_string()).collect();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                errors.push(err(
                    format!("{loc}.party_params.{party}"),
                    format!("party '{party}' is not in the job{}", hint(party, &refs)),
                ));
            }
        }
        // Check the merged parameters of every party that takes part.
        let mut seen = Vec::new();
        for (party, role) in roster.parties() {
            let merged = self.params_for(t, party.as_str(), role);
            if let Err(message) = def.validate(&merged, role) {
                if seen.contains(&message) {
                    continue;
                }
                let level = if t.party_params.contains_key(party.as_str()) {
                    format!("{loc}.party_params.{party}")
                } else if t.role_params.contains_key(&role) {
                    format!("{loc}.role_params.{role}")
                } else {
                    format!("{loc}.params")
                };
                // The location names the parameter where one is to blame, at the level
                // (party, role or everyone) that set it, so an editor can mark the field.
                let at = match culprit(def, &merged, role, &message) {
                    Some(key)
                        if t.party_params
                            .get(party.as_str())
                            .is_some_and(|m| m.contains_key(&key)) =>
                    {
                        format!("{loc}.party_params.{party}.{key}")
                    }
                    Some(key)
                        if t.role_params
                            .get(&role)
                            .is_some_and(|m| m.contains_key(&key)) =>
                    {
                        format!("{loc}.role_params.{role}.{key}")
                    }
                    Some(key) if t.params.contains_key(&key) => format!("{loc}.params.{key}"),
                    Some(key) => format!("{level}.{key}"),
                    None => level,
                };
                errors.push(err(at, format!("{}: {message}", def.name())));
                seen.push(message);
            }
        }
    }
}

/// Whether `message` names `word` as a whole word (not inside a longer identifier).
pub(crate) fn mentions(message: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    message.match_indices(word).any(|(at, _)| {
        let before = message[..at].chars().next_back();
        let after = message[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// The parameter a failed [`Component::validate`] is about. Components report a message,
/// not a field; the parameter whose removal makes that message go away is the one at fault
/// (preferring one the message names), and a parameter the message names that is not set
/// (a missing one) otherwise.
fn culprit(
    def: &dyn Component,
    merged: &Map<String, Value>,
    role: Role,
    message: &str,
) -> Option<String> {
    let changes: Vec<&String> = merged
        .keys()
        .filter(|k| {
            let mut without = merged.clone();
            without.remove(k.as_str());
            def.validate(&without, role).err().as_deref() != Some(message)
        })
        .collect();
    if let Some(k) = changes
        .iter()
        .find(|k| mentions(message, k))
        .or(changes.first())
    {
        return Some((*k).clone());
    }
    let schema = def.params_schema();
    let properties = schema.get("properties").and_then(Value::as_object)?;
    properties
        .keys()
        .find(|k| message.contains(&format!("'{k}'")))
        .cloned()
}

#[cfg(test)]
mod tests;
