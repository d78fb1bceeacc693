//! `predict`: scores a dataset with a stored model, jointly with the parties that hold the
//! model's other parts. Works for every kind of model a training component produces.

use super::disclosure::protocol;
use super::{
    Artifact, ArtifactKind, Claims, Component, Outputs, Params, Slot, TaskEnv, TaskError,
    model_kind, parse_struct, schema_of,
};
use super::{TaskDisclosure, TaskFacts};
use ferry_context::Role;
use ferry_data::{Dataset, LabelKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub struct Predict;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PredictParams {
    /// A stored model to use instead of the `model` input (every party names its own part).
    pub model: Option<String>,
    /// Its version; default: the newest.
    #[schemars(range(min = 1))]
    pub version: Option<u32>,
}

impl Component for Predict {
    fn name(&self) -> &'static str {
        "predict"
    }
    fn summary(&self) -> &'static str {
        "Scores a dataset with a trained or stored model; every party uses its own part of the model."
    }
    fn inputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[
            Slot::required("model", ArtifactKind::Model),
            Slot::required("data", ArtifactKind::Dataset),
        ];
        SLOTS
    }
    fn outputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("data", ArtifactKind::Dataset)];
        SLOTS
    }
    fn params_schema(&self) -> serde_json::Value {
        schema_of::<PredictParams>(&[])
    }
    fn validate(&self, params: &Params, _role: Role) -> Result<(), String> {
        let p: PredictParams = parse_struct(params, &[])?;
        if p.version == Some(0) {
            return Err("'version' must be a positive integer".into());
        }
        if p.version.is_some() && p.model.is_none() {
            return Err("'version' needs 'model' (the stored model it is a version of)".into());
        }
        Ok(())
    }
    fn input_replaced_by_param(&self, slot: &str, params: &Params) -> bool {
        slot == "model" && params.contains_key("model")
    }
    fn claims(&self, params: &Params) -> Claims {
        let p: PredictParams = parse_struct(params, &[]).unwrap_or_default();
        Claims {
            security: p.model.as_ref().map(|m| format!("uses stored model '{m}'")),
            uses_model: p.model.map(|m| (m, p.version)),
            ..Claims::default()
        }
    }
    /// What scoring with the model reveals depends on its kind (SECURITY.md's prediction
    /// row); `facts.model_kind` is the training task's component or the stored model's kind.
    fn disclosure(&self, facts: &TaskFacts<'_>) -> Option<TaskDisclosure> {
        match facts.model_kind.as_deref().and_then(model_kind) {
            Some(kind) => Some(kind.prediction_disclosure(facts)),
            None => {
                let mut d = TaskDisclosure::protocol(protocol::PREDICTION);
                d.setting(format!(
                    "model kind: {} (what crosses depends on it)",
                    facts
                        .model_kind
                        .as_deref()
                        .unwrap_or("not known on this node")
                ));
                Some(d)
            }
        }
    }
    fn run(&self, env: &TaskEnv) -> Result<Outputs, TaskError> {
        Ok(vec![("data", predict(env)?)])
    }
}

fn predict(env: &TaskEnv) -> Result<Option<Artifact>, TaskError> {
    let params: PredictParams = parse_struct(&env.params, &[]).map_err(TaskError::new)?;
    let (name, version) = match (params.model, env.input_model("model")?) {
        (Some(name), _) => (name, params.version),
        (None, Some((name, version))) => (name, Some(version)),
        // This party holds no part of the model (an arbiter that sat training out).
        (None, None) => return Ok(None),
    };
    let (record, payload) = env.store.load_model(&name, version)?;
    let kind = model_kind(&record.kind).ok_or_else(|| {
        TaskError::new(format!(
            "model '{name}' has kind '{}', which this node cannot score with",
            record.kind
        ))
    })?;
    let role = env.role();
    let data_name = env.input_dataset("data")?;
    if data_name.is_none() && role != Role::Arbiter {
        return Err(TaskError::shared("no data to predict at this party"));
    }
    // The label holder keeps its label (if any) next to the scores, for evaluation.
    let data = match &data_name {
        Some(n) => {
            let rec = env.store.dataset(n)?;
            let keep_label = kind.label_holder(role) && rec.label.is_some();
            Some((env.load(n, keep_label)?, keep_label, rec.label_kind))
        }
        None => None,
    };
    let scores = kind.predict(env.ctx, &payload, data.as_ref().map(|(d, _, _)| d))?;
    let (Some(scores), Some((d, keep_label, label_kind))) = (scores, data) else {
        return Ok(None);
    };
    // One score per row (binary/regression) or per class (row-major).
    let per_row = scores.len() / d.n_rows().max(1);
    let names: Vec<String> = if per_row == 1 {
        vec!["score".into()]
    } else {
        (0..per_row).map(|k| format!("score_{k}")).collect()
    };
    let out = Dataset::from_parts(
        d.ids.clone(),
        names,
        scores,
        d.label_name.clone(),
        d.labels.clone(),
    )
    .map_err(TaskError::new)?;
    std::fs::create_dir_all(&env.work_dir)?;
    let path = env.work_dir.join(format!("{}.csv", env.task.name));
    out.write_csv(env.store.source(&path))?;
    let label = if keep_label {
        d.label_name.clone()
    } else {
        None
    };
    let derived = env.register(
        path,
        vec!["id".into()],
        label,
        // The label keeps its kind, so that evaluation knows what to compute.
        label_kind.unwrap_or(LabelKind::Continuous),
        vec![
            data_name.unwrap_or_default(),
            format!("{name} v{}", record.version),
        ],
        "predictions",
    )?;
    Ok(Some(Artifact::dataset_with(
        derived,
        json!({"model": name, "version": record.version, "scores_per_row": per_row}),
    )))
}
