//! `POST /api/v1/jobs/validate`: the checks of `POST /api/v1/jobs` without submitting.
//!
//! The console's job builder sends the spec it is editing here (debounced) and marks each
//! problem on the node and the field it belongs to, so the answer locates every error by
//! task *name* rather than position: `tasks.train.params.max_depth`,
//! `tasks.eval.inputs.data`, `parties.guest`. Body: the YAML or JSON spec, or
//! `{"spec": "<text>"}`, as for submission. Answer (always 200 when the checks ran):
//!
//! ```json
//! {"valid": false, "errors": [{"message": "...", "code": "spec", "field": "tasks.train.params.max_depth"}]}
//! ```
//!
//! `code`: `parse` (not YAML/JSON or not a job spec; `field` is null, the message names the
//! line), `spec` (the DSL's and the components' checks), `guest` (this node is not the job's
//! guest), `policy` (this node's `[policy]`), `local` (datasets, models and the project on
//! this node).

use super::{ApiResult, blocking, to_json};
use crate::dsl::{JobSpec, SpecErrors};
use crate::node::{Node, NodeError};
use axum::extract::State;
use ferry_api::{JobValidation, SpecProblem, SpecProblemCode};
use serde_json::Value;
use std::sync::Arc;

/// The spec in a request body: the spec itself (YAML or JSON) or `{"spec": "<text>"}`.
pub(super) fn spec_text(body: String) -> String {
    match serde_json::from_str::<Value>(&body) {
        Ok(Value::Object(m)) if m.len() == 1 && m.get("spec").is_some_and(Value::is_string) => {
            m["spec"].as_str().unwrap_or_default().to_string()
        }
        _ => body,
    }
}

pub(super) async fn validate(State(node): State<Arc<Node>>, body: String) -> ApiResult {
    blocking(move || {
        let errors = check(&node, &spec_text(body));
        to_json(JobValidation {
            valid: errors.is_empty(),
            errors,
        })
    })
    .await
}

/// Everything submission checks, as located errors. The job id is never stored: it only
/// names the job in grant checks, which submission makes before the job exists as well.
pub(crate) fn check(node: &Node, text: &str) -> Vec<SpecProblem> {
    let spec = match JobSpec::parse(text) {
        Ok(spec) => spec,
        Err(SpecErrors(errors)) => {
            return errors
                .into_iter()
                .map(|e| SpecProblem {
                    message: e.to_string(),
                    code: SpecProblemCode::Parse,
                    field: None,
                })
                .collect();
        }
    };
    match node.check_submission(&spec, "job-validate") {
        Ok(_) => Vec::new(),
        Err(NodeError::Spec(SpecErrors(errors))) => errors
            .into_iter()
            .map(|e| SpecProblem {
                field: Some(by_name(&spec, &e.location)),
                message: e.message,
                code: SpecProblemCode::Spec,
            })
            .collect(),
        Err(e) => node_problems(node, &spec, &e.to_string()),
    }
}

/// `tasks[2].params.x` → `tasks.<name of task 2>.params.x`; other locations as they are.
fn by_name(spec: &JobSpec, location: &str) -> String {
    let Some(rest) = location.strip_prefix("tasks[") else {
        return location.to_string();
    };
    let Some((index, tail)) = rest.split_once(']') else {
        return location.to_string();
    };
    match index.parse::<usize>().ok().and_then(|i| spec.tasks.get(i)) {
        Some(task) => format!("tasks.{}{tail}", task.name),
        None => location.to_string(),
    }
}

/// The node's own checks (guest, policy, datasets, models, project) report one text with
/// problems joined by "; ", each task's introduced as `tasks[i] (name)`; split and locate them.
fn node_problems(node: &Node, spec: &JobSpec, text: &str) -> Vec<SpecProblem> {
    if text.starts_with("jobs are submitted by their guest") {
        return vec![SpecProblem {
            message: text.to_string(),
            code: SpecProblemCode::Guest,
            field: Some("parties.guest".into()),
        }];
    }
    let (code, body) = match text.strip_prefix("refused by this node's security policy: ") {
        Some(rest) => (SpecProblemCode::Policy, rest),
        None => (SpecProblemCode::Local, text),
    };
    body.split("; ")
        .map(|part| SpecProblem {
            field: locate_problem(node, spec, part),
            message: if code == SpecProblemCode::Policy {
                format!("refused by this node's security policy: {part}")
            } else {
                part.to_string()
            },
            code,
        })
        .collect()
}

/// The task a problem names (`tasks[i] (name)` anywhere in it) and, when the problem names one
/// of the parameters this node runs that task with, where that parameter is set.
fn locate_problem(node: &Node, spec: &JobSpec, problem: &str) -> Option<String> {
    if problem.contains("project '") && !problem.contains("tasks[") {
        return Some("project".into());
    }
    let start = problem.find("tasks[")?;
    let rest = &problem[start + "tasks[".len()..];
    let (index, _) = rest.split_once(']')?;
    let task = spec.tasks.get(index.parse::<usize>().ok()?)?;
    let me = node.party().as_str();
    let role = spec.roster().ok()?.role_of(node.party())?;
    let merged = spec.params_for(task, me, role);
    let Some(key) = merged.keys().find(|k| crate::dsl::mentions(problem, k)) else {
        return Some(format!("tasks.{}", task.name));
    };
    let level = if task
        .party_params
        .get(me)
        .is_some_and(|m| m.contains_key(key))
    {
        format!("party_params.{me}")
    } else if task
        .role_params
        .get(&role)
        .is_some_and(|m| m.contains_key(key))
    {
        format!("role_params.{role}")
    } else {
        "params".to_string()
    };
    Some(format!("tasks.{}.{level}.{key}", task.name))
}
