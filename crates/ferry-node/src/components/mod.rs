//! The components a job's tasks run: one trait, one file per component, one registry.
//!
//! | component | inputs | outputs | parties |
//! |---|---|---|---|
//! | `reader` | — | `data` | guest and hosts name a registered dataset (`dataset`), optionally keeping only some feature columns (`columns`) or leaving some out (`exclude_columns`) |
//! | `statistics` | `data` | `stats` | each party describes its own data, locally |
//! | `psi` | `data` | `data` | every party with data; output = its rows in the intersection |
//! | `data_split` | `data` | `train`, `test` | every party with data, locally: a row's side follows from its id (`test_fraction`, `seed`), so aligned parties split alike without a message |
//! | `hetero_secureboost` | `train`, `validate`? | `model` | guest (labels) + hosts |
//! | `hetero_lr` | `train`, `validate`? | `model` | guest + hosts (+ arbiter) |
//! | `fedavg` | `train`, `test`? | `model` | clients (guest, hosts) + server (arbiter) |
//! | `predict` | `model` (or param `model`), `data` | `data` | as the model's training |
//! | `evaluation` | `data` (predictions) | `metrics` | guest computes, others skip |
//! | `feature_binning` | `data` | `binning`, `report` | guest + hosts: bins and WOE/IV, host WOE under HE |
//! | `feature_selection` | `data`, `binning` | `data`, `report` | guest decides by IV, hosts run local checks |
//! | `feature_transform` | `data`, `binning`?, `transform`? | `data`, `transform` | every party with data, locally |
//! | `scorecard` | `model` (hetero LR), `binning`, `data` | `data`, `report` | hosts send partial scores to the guest |
//! | `stability` | `expected`, `actual` | `report` | every party on its own columns, locally |
//!
//! Adding a component: write a file implementing [`Component`] and add one line to
//! [`REGISTRY`]. Everything else — the DSL's checks, the policy, the approval view, the
//! scheduler, `GET /api/v1/components`, the privacy report — reads the registry. A component
//! that sends anything states what each party reveals to whom ([`Component::disclosure`],
//! [`disclosure`]); a test keeps every registered one stating it. A training algorithm is
//! [`train::Train`] over its crate's [`ferry_ml::FederatedModel`].

use crate::policy::SecurityPolicy;
use ferry_context::{Role, Roster};
use ferry_crypto::HeSettings;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub mod artifact;
pub mod checkpoints;
pub mod data_split;
pub mod disclosure;
pub mod env;
pub mod evaluation;
pub mod feature_binning;
pub mod feature_selection;
pub mod feature_transform;
pub mod fedavg;
pub mod predict;
pub mod psi;
pub mod reader;
pub mod scorecard;
pub mod stability;
pub mod statistics;
pub mod train;

pub use artifact::{Artifact, ArtifactKind};
pub use disclosure::{Disclosure, TaskDisclosure, TaskFacts};
pub use env::{TaskEnv, TaskError, check_dataset_access};
pub use psi::PsiParams;

/// A task's merged parameters, as the job spec gives them (JSON object).
pub type Params = Map<String, Value>;

/// A task's outputs by slot; `None` where this party holds nothing (the arbiter's data, a
/// party that does not receive a PSI result).
pub type Outputs = Vec<(&'static str, Option<Artifact>)>;

/// An input or output slot of a component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Slot {
    pub name: &'static str,
    pub kind: ArtifactKind,
    /// Inputs only: whether a job must connect it.
    pub required: bool,
}

impl Slot {
    pub const fn required(name: &'static str, kind: ArtifactKind) -> Slot {
        Slot {
            name,
            kind,
            required: true,
        }
    }
    pub const fn optional(name: &'static str, kind: ArtifactKind) -> Slot {
        Slot {
            name,
            kind,
            required: false,
        }
    }
}

/// What one party's parameters of a task ask of its node: data it reads, models it uses or
/// writes, keys it generates. The node checks grants, model ownership and its policy against
/// these on submission and on every proposal, and shows them to whoever approves the job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claims {
    /// A registered dataset the task reads by name.
    pub reads_dataset: Option<String>,
    /// A stored model (and version; `None` = newest) the task uses by name.
    pub uses_model: Option<(String, Option<u32>)>,
    /// A model name the task adds a version to.
    pub writes_model: Option<String>,
    /// Homomorphic-encryption settings (checked against the node's minimum key sizes).
    pub he: Option<HeSettings>,
    /// One line for the approval view about what bears on security and privacy.
    pub security: Option<String>,
}

/// One kind of task a job can run.
pub trait Component: Sync {
    /// The name a job spec uses (`component: hetero_lr`).
    fn name(&self) -> &'static str;
    /// One sentence for people choosing a component (CLI, console).
    fn summary(&self) -> &'static str;
    fn inputs(&self) -> &'static [Slot];
    fn outputs(&self) -> &'static [Slot];

    /// Whether the job's parties can run this component at all (needs a host, an arbiter...).
    fn check_roster(&self, _roster: &Roster) -> Result<(), String> {
        Ok(())
    }

    /// JSON Schema of the parameters, generated from their type.
    fn params_schema(&self) -> Value;

    /// Checks one party's merged parameters: names, types and ranges. Runs at submission and
    /// on every proposal, on every node, so a mistake never waits until the task starts.
    fn validate(&self, params: &Params, role: Role) -> Result<(), String>;

    /// Whether required input `slot` may be left unconnected because a parameter replaces it.
    fn input_replaced_by_param(&self, _slot: &str, _params: &Params) -> bool {
        false
    }

    /// What the (already validated) parameters ask of a node.
    fn claims(&self, _params: &Params) -> Claims {
        Claims::default()
    }

    /// Component-specific checks against a node's policy, besides the key size of
    /// [`Claims::he`] (which the policy checks for every component). `clients`: parties
    /// other than the arbiter.
    fn check_policy(
        &self,
        _params: &Params,
        _policy: &SecurityPolicy,
        _clients: usize,
    ) -> Result<(), String> {
        Ok(())
    }

    /// Runs the task on this node.
    fn run(&self, env: &TaskEnv) -> Result<Outputs, TaskError>;

    /// What the task reveals to whom, for the job's privacy report: the protocols it runs
    /// (rows of SECURITY.md's table), each party's disclosures to each other party, and the
    /// settings that bear on them. `None`: the component does not say (shown as such; every
    /// registered component says, see the tests).
    fn disclosure(&self, _facts: &TaskFacts<'_>) -> Option<TaskDisclosure> {
        None
    }

    /// The prediction side, for components that train a model of this kind.
    fn as_model(&self) -> Option<&dyn train::ModelKind> {
        None
    }

    /// Whether the task saves checkpoints and can continue from an earlier job's
    /// ([`train::RESUME_KEY`], `Node::resume`).
    fn resumable(&self) -> bool {
        false
    }
}

/// Every component this build knows. Adding one: one file, one line here.
pub static REGISTRY: &[&dyn Component] = &[
    &reader::Reader,
    &statistics::Statistics,
    &psi::Psi,
    &data_split::DataSplit,
    &train::SECUREBOOST,
    &train::HETERO_LR,
    &train::FEDAVG,
    &predict::Predict,
    &evaluation::Evaluation,
    &feature_binning::FeatureBinningComponent,
    &feature_selection::FeatureSelection,
    &feature_transform::FeatureTransform,
    &scorecard::Scorecard,
    &stability::Stability,
];

pub fn find(name: &str) -> Option<&'static dyn Component> {
    REGISTRY.iter().copied().find(|c| c.name() == name)
}

/// The component that trains models of `kind` (the kind stored with every model version).
pub fn model_kind(kind: &str) -> Option<&'static dyn train::ModelKind> {
    find(kind).and_then(|c| c.as_model())
}

/// Runs `env.task` and returns its outputs as the JSON object the store records.
pub fn run_task(env: &TaskEnv) -> Result<Map<String, Value>, TaskError> {
    let component = find(&env.task.component).ok_or_else(|| {
        TaskError::new(format!(
            "component '{}' cannot run on this node",
            env.task.component
        ))
    })?;
    let mut out = Map::new();
    for (slot, artifact) in component.run(env)? {
        out.insert(slot.to_string(), serde_json::to_value(artifact)?);
    }
    Ok(out)
}

/// The description `GET /api/v1/components` serves: name, summary, slots and the JSON Schema
/// of the parameters of every component.
pub fn describe_all() -> Value {
    Value::Array(
        REGISTRY
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name(),
                    "summary": c.summary(),
                    "inputs": c.inputs(),
                    "outputs": c.outputs(),
                    "params": c.params_schema(),
                })
            })
            .collect(),
    )
}

// ------------------------------------------------------------------------------------------
// Typed parameters.

/// Parameters every model-producing component accepts on top of its algorithm's.
pub const MODEL_KEYS: &[&str] = &["model_name"];

pub(crate) fn only_keys(p: &Params, allowed: &[&str]) -> Result<(), String> {
    for k in p.keys() {
        if !allowed.contains(&k.as_str()) {
            let hint = crate::dsl::suggest(k, allowed.iter().copied())
                .map(|s| format!(" (did you mean '{s}'?)"))
                .unwrap_or_else(|| {
                    if allowed.is_empty() {
                        " (it takes no parameters)".into()
                    } else {
                        format!(" (known: {})", allowed.join(", "))
                    }
                });
            return Err(format!("unknown parameter '{k}'{hint}"));
        }
    }
    Ok(())
}

/// `T` from the parameters minus the component's own `extra` keys. Unknown keys are refused
/// with a suggestion; test-only settings with the reason they cannot be set.
pub fn parse_struct<T: Default + Serialize + DeserializeOwned>(
    p: &Params,
    extra: &[&str],
) -> Result<T, String> {
    if let Some(path) = find_test_only_knob(p, "") {
        return Err(format!(
            "'{path}' is a test-only setting and cannot be set in a job spec (a node's \
             [policy] in ferry.toml decides the smallest key it accepts; DP noise always comes \
             from fresh randomness)"
        ));
    }
    let known_value = serde_json::to_value(T::default()).map_err(|e| e.to_string())?;
    let mut known: Vec<String> = known_value
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    known.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = known.iter().map(String::as_str).collect();
    only_keys(p, &refs)?;
    let rest: Params = p
        .iter()
        .filter(|(k, _)| !extra.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::from_value(Value::Object(rest.clone())).map_err(|e| {
        // serde names the expected type but not the field; find the parameter that fails on
        // its own (over the defaults) so the message names it.
        let culprit = rest.iter().find(|(k, v)| {
            let mut one = known_value.as_object().cloned().unwrap_or_default();
            one.insert((*k).clone(), (*v).clone());
            serde_json::from_value::<T>(Value::Object(one)).is_err()
        });
        match culprit {
            Some((k, v)) => format!("invalid value {v} for parameter '{k}': {e}"),
            None => format!("invalid parameters: {e}"),
        }
    })
}

/// The JSON Schema of `T`, with `extra` string properties (such as `model_name`) added.
pub fn schema_of<T: JsonSchema>(extra: &[(&str, &str)]) -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null);
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (name, description) in extra {
            props.insert(
                name.to_string(),
                serde_json::json!({"type": "string", "description": description}),
            );
        }
    }
    schema
}

/// Settings that exist for tests and benchmarks only. They are not deserialised from
/// parameters at all (`serde(skip)` in their crates); naming them here gives the user a clear
/// reason instead of "unknown parameter".
pub const TEST_ONLY_KNOBS: &[&str] = &[
    "allow_insecure_key_size",
    "allow_insecure_key_bits",
    "noise_seed",
    "insecure_test_rng_seed",
];

/// The dotted path of the first test-only setting anywhere in `p` (nested tables included).
fn find_test_only_knob(p: &Params, prefix: &str) -> Option<String> {
    for (k, v) in p {
        let path = format!("{prefix}{k}");
        if TEST_ONLY_KNOBS.contains(&k.as_str()) {
            return Some(path);
        }
        if let Value::Object(inner) = v
            && let Some(found) = find_test_only_knob(inner, &format!("{path}."))
        {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_schema_is_an_object_schema() {
        let mut names: Vec<&str> = REGISTRY.iter().map(|c| c.name()).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "two components share a name");
        for c in REGISTRY {
            let schema = c.params_schema();
            assert_eq!(schema["type"], "object", "{}: {schema}", c.name());
            assert!(!c.summary().is_empty());
            let mut names = Vec::new();
            property_names(&schema, &mut names);
            for knob in TEST_ONLY_KNOBS {
                assert!(
                    !names.iter().any(|n| n == knob),
                    "{} schema offers {knob}",
                    c.name()
                );
            }
        }
    }

    /// Every property name anywhere in a schema (nested definitions included).
    fn property_names(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Object(props)) = m.get("properties") {
                    out.extend(props.keys().cloned());
                }
                m.values().for_each(|x| property_names(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| property_names(x, out)),
            _ => {}
        }
    }

    #[test]
    fn an_invalid_value_is_reported_with_its_parameter_name() {
        let p: Params = serde_json::from_str(r#"{"test_fraction": 0.3, "seed": -1}"#).unwrap();
        let e = parse_struct::<data_split::SplitParams>(&p, &[]).unwrap_err();
        assert!(e.contains("'seed'") && e.contains("-1"), "{e}");
        let p: Params = serde_json::from_str(r#"{"he": {"key_bits": "big"}}"#).unwrap();
        let e = parse_struct::<ferry_linear::LinearParams>(&p, &[]).unwrap_err();
        assert!(e.contains("'he'"), "{e}");
    }

    #[test]
    fn every_component_states_what_it_discloses() {
        let spec = crate::dsl::JobSpec::parse(
            "parties: {guest: bank, hosts: [telco], arbiter: hub}\ntasks: []\n",
        )
        .unwrap();
        let roster = spec.roster().unwrap();
        for c in REGISTRY {
            let task: crate::dsl::TaskSpec =
                serde_json::from_value(serde_json::json!({"name": "t", "component": c.name()}))
                    .unwrap();
            let facts = TaskFacts::from_spec(&spec, &task, &roster);
            let d = c.disclosure(&facts);
            assert!(d.is_some(), "{} states no disclosure", c.name());
            for p in &d.unwrap().protocols {
                assert!(
                    disclosure::protocol::ALL.contains(&p.as_str()),
                    "{}: unknown protocol row '{p}'",
                    c.name()
                );
            }
        }
    }

    #[test]
    fn training_components_are_model_kinds() {
        for kind in ["hetero_secureboost", "hetero_lr", "fedavg"] {
            assert_eq!(model_kind(kind).map(|m| m.kind()), Some(kind));
        }
        assert!(model_kind("reader").is_none());
    }
}
