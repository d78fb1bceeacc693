//! `statistics`: each party describes its own data (counts, missing values, ranges), locally.

use super::{Artifact, ArtifactKind, Component, Outputs, Params, Slot, TaskEnv, TaskError};
use super::{only_keys, schema_of};
use ferry_context::Role;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub struct Statistics;

/// `statistics` takes no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl Component for Statistics {
    fn name(&self) -> &'static str {
        "statistics"
    }
    fn summary(&self) -> &'static str {
        "Describes each party's own data (rows, missing values, ranges, label balance), locally."
    }
    fn inputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("data", ArtifactKind::Dataset)];
        SLOTS
    }
    fn outputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("stats", ArtifactKind::Report)];
        SLOTS
    }
    fn params_schema(&self) -> serde_json::Value {
        schema_of::<NoParams>(&[])
    }
    fn validate(&self, params: &Params, _role: Role) -> Result<(), String> {
        only_keys(params, &[])
    }
    /// Runs on each party's own data; nothing crosses the wire.
    fn disclosure(&self, _facts: &super::TaskFacts<'_>) -> Option<super::TaskDisclosure> {
        Some(super::TaskDisclosure::local())
    }
    fn run(&self, env: &TaskEnv) -> Result<Outputs, TaskError> {
        let stats = match env.input_dataset("data")? {
            Some(name) => Some(Artifact::Report {
                report: serde_json::to_value(env.store.describe_dataset(&name)?)?,
            }),
            None => None,
        };
        Ok(vec![("stats", stats)])
    }
}
