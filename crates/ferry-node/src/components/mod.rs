//! The components a job's tasks run, and what each accepts.
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

use ferry_context::{Role, Roster};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub mod run;

/// Static description of a component, used by validation and the scheduler.
pub struct ComponentDef {
    pub name: &'static str,
    /// Input slots and whether each is required.
    pub inputs: &'static [(&'static str, bool)],
    pub outputs: &'static [&'static str],
    pub check_roster: fn(&Roster) -> Result<(), String>,
    /// Checks one party's merged parameters.
    pub check_params: fn(&Map<String, Value>, Role) -> Result<(), String>,
    /// Whether a required input may be left out because a parameter replaces it.
    pub input_optional_with_param: fn(&str, &Map<String, Value>) -> bool,
}

pub const ALL: &[ComponentDef] = &[
    ComponentDef {
        name: "reader",
        inputs: &[],
        outputs: &["data"],
        check_roster: |_| Ok(()),
        check_params: check_reader,
        input_optional_with_param: |_, _| false,
    },
    ComponentDef {
        name: "statistics",
        inputs: &[("data", true)],
        outputs: &["stats"],
        check_roster: |_| Ok(()),
        check_params: |p, _| only_keys(p, &[]),
        input_optional_with_param: |_, _| false,
    },
    ComponentDef {
        name: "psi",
        inputs: &[("data", true)],
        outputs: &["data"],
        check_roster: |_| Ok(()),
        check_params: check_psi,
        input_optional_with_param: |_, _| false,
    },
    ComponentDef {
        name: "data_split",
        inputs: &[("data", true)],
        outputs: &["train", "test"],
        check_roster: |_| Ok(()),
        check_params: check_split,
        input_optional_with_param: |_, _| false,
    },
    ComponentDef {
        name: "hetero_secureboost",
        inputs: &[("train", true), ("validate", false)],
        outputs: &["model"],
        check_roster: needs_guest_and_host,
        check_params: check_secureboost,
        input_optional_with_param: |_, _| false,
    },
    ComponentDef {
        name: "hetero_lr",
        inputs: &[("train", true), ("validate", false)],
        outputs: &["model"],
        check_roster: needs_guest_and_host,
        check_params: check_hetero_lr,
        input_optional_with_param: |_, _| false,
    },
    ComponentDef {
        name: "fedavg",
        inputs: &[("train", true), ("test", false)],
        outputs: &["model"],
        check_roster: |r| {
            if r.arbiter().is_none() {
                return Err("needs an arbiter (the aggregation server)".into());
            }
            Ok(())
        },
        check_params: |p, _| check_struct::<ferry_horizontal::FedAvgParams>(p, MODEL_KEYS),
        input_optional_with_param: |_, _| false,
    },
    ComponentDef {
        name: "predict",
        inputs: &[("model", true), ("data", true)],
        outputs: &["data"],
        check_roster: |_| Ok(()),
        check_params: check_predict,
        input_optional_with_param: |slot, params| slot == "model" && params.contains_key("model"),
    },
    ComponentDef {
        name: "evaluation",
        inputs: &[("data", true)],
        outputs: &["metrics"],
        check_roster: |_| Ok(()),
        check_params: check_evaluation,
        input_optional_with_param: |_, _| false,
    },
];

/// Parameters every model-producing component accepts on top of its algorithm's.
pub const MODEL_KEYS: &[&str] = &["model_name"];

pub fn find(name: &str) -> Option<&'static ComponentDef> {
    ALL.iter().find(|c| c.name == name)
}

fn needs_guest_and_host(r: &Roster) -> Result<(), String> {
    if r.hosts().is_empty() {
        return Err("needs at least one host besides the guest".into());
    }
    Ok(())
}

fn only_keys(p: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
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

/// Checks the keys against `T`'s fields (and `extra`), then the values by deserialising.
pub fn check_struct<T: Default + Serialize + DeserializeOwned>(
    p: &Map<String, Value>,
    extra: &[&str],
) -> Result<(), String> {
    parse_struct::<T>(p, extra).map(|_| ())
}

/// `T` from the parameters minus the component's own `extra` keys.
pub fn parse_struct<T: Default + Serialize + DeserializeOwned>(
    p: &Map<String, Value>,
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
    let rest: Map<String, Value> = p
        .iter()
        .filter(|(k, _)| !extra.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::from_value(Value::Object(rest)).map_err(|e| format!("invalid parameters: {e}"))
}

/// Settings that exist for tests and benchmarks only. They are not deserialised from
/// parameters at all (`serde(skip)` in their crates); naming them here gives the user a clear
/// reason instead of "unknown parameter".
pub const TEST_ONLY_KNOBS: &[&str] = &[
    "allow_insecure_key_size",
    "allow_insecure_key_bits",
    "noise_seed",
];

/// The dotted path of the first test-only setting anywhere in `p` (nested tables included).
fn find_test_only_knob(p: &Map<String, Value>, prefix: &str) -> Option<String> {
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

/// SecureBoost's parameters with their ranges (`max_depth`, `learning_rate`, ...), so that a
/// mistake is refused at submission on every node rather than when the task starts. The key
/// size is left to the node's policy (`policy::SecurityPolicy`), so the algorithm's own
/// "tests only" permission is granted here for this check alone.
fn check_secureboost(p: &Map<String, Value>, _role: Role) -> Result<(), String> {
    let mut params: ferry_secureboost::SecureBoostParams = parse_struct(p, MODEL_KEYS)?;
    params.allow_insecure_key_size = true;
    params.validate().map_err(|e| e.to_string())
}

/// Hetero LR's parameters with their ranges, as for SecureBoost.
fn check_hetero_lr(p: &Map<String, Value>, _role: Role) -> Result<(), String> {
    let mut params: ferry_linear::LinearParams = parse_struct(p, MODEL_KEYS)?;
    params.he.allow_insecure_key_bits = true;
    params.validate().map_err(|e| e.to_string())
}

fn check_reader(p: &Map<String, Value>, role: Role) -> Result<(), String> {
    only_keys(p, &["dataset", "columns", "exclude_columns"])?;
    for key in ["columns", "exclude_columns"] {
        if let Some(v) = p.get(key) {
            let names = v
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| format!("'{key}' must be a non-empty list of column names"))?;
            if names.iter().any(|n| n.as_str().is_none_or(str::is_empty)) {
                return Err(format!("'{key}' must be a list of column names (text)"));
            }
        }
    }
    if p.contains_key("columns") && p.contains_key("exclude_columns") {
        return Err(
            "give either 'columns' (the features to keep) or 'exclude_columns', not both".into(),
        );
    }
    if role == Role::Arbiter && (p.contains_key("columns") || p.contains_key("exclude_columns")) {
        return Err("the arbiter holds no data; remove the column selection for it".into());
    }
    match (role, p.get("dataset")) {
        (Role::Arbiter, None) => Ok(()),
        (Role::Arbiter, Some(_)) => {
            Err("the arbiter holds no data; remove 'dataset' for it".into())
        }
        (_, Some(Value::String(s))) if !s.is_empty() => Ok(()),
        (_, Some(_)) => Err("'dataset' must be the name of a registered dataset".into()),
        (role, None) => Err(format!(
            "every {role} needs 'dataset' (set it in party_params)"
        )),
    }
}

fn check_split(p: &Map<String, Value>, _role: Role) -> Result<(), String> {
    only_keys(p, &["test_fraction", "seed"])?;
    if let Some(v) = p.get("test_fraction") {
        match v.as_f64() {
            Some(f) if f > 0.0 && f < 1.0 => {}
            _ => {
                return Err(format!(
                    "'test_fraction' must be a number between 0 and 1, got {v}"
                ));
            }
        }
    }
    if let Some(v) = p.get("seed")
        && v.as_u64().is_none()
    {
        return Err(format!("'seed' must be a non-negative integer, got {v}"));
    }
    Ok(())
}

/// PSI parameters as the DSL spells them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PsiParams {
    /// Key columns; default: the dataset's id column(s).
    pub key_columns: Option<Vec<String>>,
    /// `all` (default) or the name of the one party that learns the intersection.
    pub receivers: Option<String>,
    /// Reuse this node's long-term PSI key for this party set (kept under `state/`).
    pub cached_key: bool,
    pub chunk_size: Option<usize>,
}

fn check_psi(p: &Map<String, Value>, _role: Role) -> Result<(), String> {
    check_struct::<PsiParams>(p, &[])
}

fn check_predict(p: &Map<String, Value>, _role: Role) -> Result<(), String> {
    only_keys(p, &["model", "version"])?;
    if let Some(m) = p.get("model")
        && !m.is_string()
    {
        return Err("'model' must be the name of a stored model".into());
    }
    if let Some(v) = p.get("version")
        && !v.is_u64()
    {
        return Err("'version' must be a positive integer".into());
    }
    Ok(())
}

fn check_evaluation(p: &Map<String, Value>, _role: Role) -> Result<(), String> {
    only_keys(p, &["kind", "threshold"])?;
    if let Some(k) = p.get("kind")
        && !matches!(k.as_str(), Some("binary" | "regression" | "multiclass"))
    {
        return Err("'kind' must be binary, regression or multiclass".into());
    }
    if let Some(t) = p.get("threshold")
        && !t.as_f64().is_some_and(|t| (0.0..=1.0).contains(&t))
    {
        return Err("'threshold' must be a number between 0 and 1".into());
    }
    Ok(())
}
