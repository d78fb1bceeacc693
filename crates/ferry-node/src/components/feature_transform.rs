//! `feature_transform`: fits transforms on each party's own data — WOE, min-max and standard
//! scaling, one-hot and ordinal encoding of text columns, imputation, outlier clipping — and
//! applies them. The fitted transform is stored as a model part, so that a later task (its
//! `transform` input: the held-out rows) or a later job (`model: <name>`, batch prediction)
//! applies exactly the same transform.
//!
//! Local to each party: no message crosses. A `woe` step needs the `binning` input (the
//! party's bins and the WOE of each bin; a host has WOE only when the guest sent it).

use super::feature_binning::{load_binning, read_table};
use super::{
    Artifact, ArtifactKind, Claims, Component, MODEL_KEYS, Outputs, Params, Slot, TaskEnv,
    TaskError, parse_struct, schema_of,
};
use ferry_context::Role;
use ferry_feature::transform::{FittedTransform, TransformParams, TransformStep, WoeInput};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub struct FeatureTransform;

/// The model kind of a stored transform.
pub const KIND: &str = "feature_transform";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureTransformParams {
    /// Steps in order, each fitted on the output of the previous ones. Usually given per
    /// party (`party_params`), since every party transforms its own columns.
    pub steps: Vec<TransformStep>,
    /// Apply this stored transform instead of fitting one (batch prediction).
    pub model: Option<String>,
    /// Its version; default: the newest.
    #[schemars(range(min = 1))]
    pub version: Option<u32>,
}

impl Component for FeatureTransform {
    fn name(&self) -> &'static str {
        KIND
    }
    fn summary(&self) -> &'static str {
        "Fits and applies WOE, scaling, one-hot/ordinal encoding, imputation and clipping on each party's own columns; stored for prediction."
    }
    fn inputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[
            Slot::required("data", ArtifactKind::Dataset),
            Slot::optional("binning", ArtifactKind::Model),
            Slot::optional("transform", ArtifactKind::Model),
        ];
        SLOTS
    }
    fn outputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[
            Slot::required("data", ArtifactKind::Dataset),
            Slot::required("transform", ArtifactKind::Model),
        ];
        SLOTS
    }
    fn params_schema(&self) -> Value {
        schema_of::<FeatureTransformParams>(&[(
            "model_name",
            "Name of the stored transform (default: job-<id>-<task>).",
        )])
    }
    fn validate(&self, params: &Params, _role: Role) -> Result<(), String> {
        let p: FeatureTransformParams = parse_struct(params, MODEL_KEYS)?;
        if p.model.is_some() && !p.steps.is_empty() {
            return Err(
                "give either 'steps' (fit a transform) or 'model' (apply a stored one), not both"
                    .into(),
            );
        }
        if p.version.is_some() && p.model.is_none() {
            return Err("'version' needs 'model'".into());
        }
        if p.version == Some(0) {
            return Err("'version' must be a positive integer".into());
        }
        TransformParams { steps: p.steps }
            .validate()
            .map_err(|e| e.to_string())
    }
    fn claims(&self, params: &Params) -> Claims {
        let p: FeatureTransformParams = parse_struct(params, MODEL_KEYS).unwrap_or_default();
        Claims {
            uses_model: p.model.clone().map(|m| (m, p.version)),
            writes_model: params
                .get("model_name")
                .and_then(Value::as_str)
                .map(str::to_string),
            security: p.model.map(|m| format!("uses stored transform '{m}'")),
            ..Claims::default()
        }
    }
    /// Runs on each party's own data; nothing crosses the wire.
    fn disclosure(&self, _facts: &super::TaskFacts<'_>) -> Option<super::TaskDisclosure> {
        Some(super::TaskDisclosure::local())
    }
    fn run(&self, env: &TaskEnv) -> Result<Outputs, TaskError> {
        let params: FeatureTransformParams =
            parse_struct(&env.params, MODEL_KEYS).map_err(TaskError::new)?;
        if env.role() == Role::Arbiter {
            return Ok(vec![("data", None), ("transform", None)]);
        }
        let name = env
            .input_dataset("data")?
            .ok_or_else(|| TaskError::shared("no data to transform at this party"))?;
        let table = read_table(env, &name)?;
        let stored_ref = match (&params.model, env.input_model("transform")?) {
            (Some(model), _) => Some((model.clone(), params.version)),
            (None, Some((model, version))) => Some((model, Some(version))),
            (None, None) => None,
        };
        if stored_ref.is_some() && !params.steps.is_empty() {
            return Err(TaskError::shared(
                "this task applies a stored transform (its 'transform' input or 'model'), so it \
                 takes no 'steps'",
            ));
        }
        let (fitted, stored) = match &stored_ref {
            Some((model, version)) => {
                let (record, text) = env.load_model_of_kind(model, *version, KIND)?;
                let fitted =
                    FittedTransform::from_json(&text).map_err(|e| TaskError::new(e.to_string()))?;
                let artifact = Artifact::Model {
                    model: record.name,
                    version: record.version,
                    kind: KIND.into(),
                };
                (fitted, Some(artifact))
            }
            None => {
                let woe = match load_binning(env, "binning")? {
                    Some(b) => Some(
                        b.features
                            .iter()
                            .filter_map(|c| {
                                c.woe.as_ref().map(|w| WoeInput {
                                    binning: c.binning.clone(),
                                    woe: w.clone(),
                                })
                            })
                            .collect::<Vec<_>>(),
                    ),
                    None => None,
                };
                let tp = TransformParams {
                    steps: params.steps.clone(),
                };
                let fitted = FittedTransform::fit(&table, &tp, woe.as_deref())
                    .map_err(|e| TaskError::new(e.to_string()))?;
                (fitted, None)
            }
        };
        let out = fitted
            .apply(&table)
            .map_err(|e| TaskError::new(e.to_string()))?;
        std::fs::create_dir_all(&env.work_dir)?;
        let path = env.work_dir.join(format!("{}.csv", env.task.name));
        out.write_csv(env.store.source(&path))
            .map_err(|e| TaskError::new(e.to_string()))?;
        let rec = env.store.dataset(&name)?;
        let kinds: Vec<&str> = fitted.steps().iter().map(|s| s.kind()).collect();
        env.ctx.log(&format!(
            "transformed '{name}' ({} rows) with {}",
            out.n_rows(),
            if kinds.is_empty() {
                "no steps".to_string()
            } else {
                kinds.join(", ")
            }
        ));
        let derived = env.register(
            path,
            out.id_columns.clone(),
            out.label_name.clone(),
            rec.label_kind.unwrap_or_default(),
            vec![name.clone()],
            "transformed by feature_transform",
        )?;
        let transform = match stored {
            Some(a) => a,
            None => env.store_model(
                KIND,
                fitted.to_json().into_bytes(),
                vec![name],
                json!({"steps": kinds}),
            )?,
        };
        Ok(vec![
            (
                "data",
                Some(Artifact::dataset_with(
                    derived,
                    json!({"columns": out.column_names()}),
                )),
            ),
            ("transform", Some(transform)),
        ])
    }
}
