//! The answer of `POST /api/v1/jobs/validate`: every problem submission would refuse a job
//! spec for, each located by task name so that an editor (the console's job builder) can mark
//! the task, the port or the field.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `{valid, errors}`; `valid` is true exactly when `errors` is empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JobValidation {
    pub valid: bool,
    pub errors: Vec<SpecProblem>,
}

/// One problem with a job spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SpecProblem {
    /// What is wrong, in the words submission uses.
    pub message: String,
    pub code: SpecProblemCode,
    /// Where: `tasks.<task>.params.<parameter>` (or `.role_params.<role>.`,
    /// `.party_params.<party>.`), `tasks.<task>.inputs.<input>`, `tasks.<task>.component`,
    /// `parties.guest`, `parties.hosts[1]`, `project`; null when the text does not parse.
    pub field: Option<String>,
}

/// Which check found the problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpecProblemCode {
    /// The text is not YAML or JSON, or not shaped like a job spec (the message names the line).
    Parse,
    /// The DSL's and the components' checks: names, inputs, parameters, roles, cycles.
    Spec,
    /// This node is not the job's guest (jobs are submitted by their guest).
    Guest,
    /// This node's `[policy]` refuses a setting (key sizes, components, DP budget...).
    Policy,
    /// This node's own state: a dataset, a model or the project the job names.
    Local,
}
