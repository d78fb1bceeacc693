//! `reader`: names the registered dataset a party brings to the job, optionally keeping
//! only some feature columns.

use super::{Artifact, ArtifactKind, Claims, Component, Outputs, Params, Slot, TaskEnv, TaskError};
use super::{check_dataset_access, parse_struct, schema_of};
use ferry_context::Role;
use ferry_data::LabelKind;
use ferry_store::DataFormat;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub struct Reader;

/// Parameters of `reader`, usually given per party (`party_params`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReaderParams {
    /// The registered dataset this party brings (every guest and host; never the arbiter).
    pub dataset: Option<String>,
    /// Feature columns to keep (id and label are always kept).
    pub columns: Option<Vec<String>>,
    /// Feature columns to leave out.
    pub exclude_columns: Option<Vec<String>>,
}

impl ReaderParams {
    fn check(&self, role: Role) -> Result<(), String> {
        for (key, list) in [
            ("columns", &self.columns),
            ("exclude_columns", &self.exclude_columns),
        ] {
            if let Some(names) = list {
                if names.is_empty() {
                    return Err(format!("'{key}' must be a non-empty list of column names"));
                }
                if names.iter().any(String::is_empty) {
                    return Err(format!("'{key}' must be a list of column names (text)"));
                }
            }
        }
        if self.columns.is_some() && self.exclude_columns.is_some() {
            return Err(
                "give either 'columns' (the features to keep) or 'exclude_columns', not both"
                    .into(),
            );
        }
        if role == Role::Arbiter && (self.columns.is_some() || self.exclude_columns.is_some()) {
            return Err("the arbiter holds no data; remove the column selection for it".into());
        }
        match (role, self.dataset.as_deref()) {
            (Role::Arbiter, None) => Ok(()),
            (Role::Arbiter, Some(_)) => {
                Err("the arbiter holds no data; remove 'dataset' for it".into())
            }
            (_, Some(s)) if !s.is_empty() => Ok(()),
            (_, Some(_)) => Err("'dataset' must be the name of a registered dataset".into()),
            (role, None) => Err(format!(
                "every {role} needs 'dataset' (set it in party_params)"
            )),
        }
    }
}

impl Component for Reader {
    fn name(&self) -> &'static str {
        "reader"
    }
    fn summary(&self) -> &'static str {
        "Brings a registered dataset of each party into the job, optionally keeping only some feature columns."
    }
    fn inputs(&self) -> &'static [Slot] {
        &[]
    }
    fn outputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("data", ArtifactKind::Dataset)];
        SLOTS
    }
    fn params_schema(&self) -> serde_json::Value {
        schema_of::<ReaderParams>(&[])
    }
    fn validate(&self, params: &Params, role: Role) -> Result<(), String> {
        parse_struct::<ReaderParams>(params, &[])?.check(role)
    }
    fn claims(&self, params: &Params) -> Claims {
        let dataset = parse_struct::<ReaderParams>(params, &[])
            .ok()
            .and_then(|p| p.dataset);
        Claims {
            security: dataset.as_ref().map(|d| format!("reads dataset '{d}'")),
            reads_dataset: dataset,
            ..Claims::default()
        }
    }
    /// Runs on each party's own data; nothing crosses the wire.
    fn disclosure(&self, _facts: &super::TaskFacts<'_>) -> Option<super::TaskDisclosure> {
        Some(super::TaskDisclosure::local())
    }
    fn run(&self, env: &TaskEnv) -> Result<Outputs, TaskError> {
        let params: ReaderParams = parse_struct(&env.params, &[]).map_err(TaskError::new)?;
        Ok(vec![("data", read(env, &params)?)])
    }
}

fn read(env: &TaskEnv, params: &ReaderParams) -> Result<Option<Artifact>, TaskError> {
    let Some(name) = params.dataset.as_deref() else {
        return Ok(None);
    };
    check_dataset_access(
        env.store,
        name,
        env.initiator,
        env.ctx.me().as_str(),
        env.job_id,
    )?;
    let rec = env.store.dataset(name)?;
    env.ctx.log(&format!(
        "reading dataset '{name}' ({} rows, {} columns)",
        rec.rows,
        rec.columns.len()
    ));
    let Some(kept) = selected_columns(params, &rec)? else {
        return Ok(Some(Artifact::dataset(name)));
    };
    // The selection becomes a derived dataset (CSV), so every later task sees only it.
    std::fs::create_dir_all(&env.work_dir)?;
    let output = env.work_dir.join(format!("{}.csv", env.task.name));
    let rows = match rec.format {
        DataFormat::Csv => ferry_data::select_csv_columns(
            env.store.source(&rec.path),
            &kept,
            env.store.source(&output),
        )?,
        DataFormat::Parquet => ferry_data::select_parquet_columns_to_csv(
            env.store.source(&rec.path),
            &kept,
            env.store.source(&output),
        )?,
    };
    env.ctx.log(&format!(
        "kept {} of {} columns of '{name}' ({rows} rows): {}",
        kept.len(),
        rec.columns.len(),
        kept.join(", ")
    ));
    let derived = env.register(
        output,
        rec.id_columns.clone(),
        rec.label.clone(),
        rec.label_kind.unwrap_or(LabelKind::Continuous),
        vec![name.to_string()],
        "columns selected by the reader",
    )?;
    Ok(Some(Artifact::dataset_with(
        derived,
        json!({"columns": kept}),
    )))
}

/// The columns the reader's `columns` / `exclude_columns` keep, id and label first, or
/// `None` when the task selects nothing. Names are checked against the dataset, with a hint.
fn selected_columns(
    params: &ReaderParams,
    rec: &ferry_store::DatasetRecord,
) -> Result<Option<Vec<String>>, TaskError> {
    let (keep, exclude) = (params.columns.clone(), params.exclude_columns.clone());
    if keep.is_none() && exclude.is_none() {
        return Ok(None);
    }
    let all: Vec<&str> = rec.columns.iter().map(|c| c.name.as_str()).collect();
    let fixed: Vec<String> = rec
        .id_columns
        .iter()
        .chain(rec.label.iter())
        .cloned()
        .collect();
    for name in keep.iter().chain(exclude.iter()).flatten() {
        if !all.contains(&name.as_str()) {
            let hint = crate::dsl::suggest(name, all.iter().copied())
                .map(|s| format!(" (did you mean '{s}'?)"))
                .unwrap_or_default();
            return Err(TaskError::new(format!(
                "dataset '{}' has no column '{name}'{hint}; its columns are: {}",
                rec.name,
                all.join(", ")
            )));
        }
    }
    if let Some(ex) = &exclude
        && let Some(f) = ex.iter().find(|c| fixed.contains(c))
    {
        return Err(TaskError::new(format!(
            "'{f}' is the id or label column of dataset '{}' and cannot be excluded",
            rec.name
        )));
    }
    let mut kept = fixed.clone();
    let features: Vec<String> = match (keep, exclude) {
        (Some(k), _) => k.into_iter().filter(|c| !fixed.contains(c)).collect(),
        (None, Some(ex)) => all
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !fixed.contains(c) && !ex.contains(c))
            .collect(),
        (None, None) => unreachable!("handled above"),
    };
    for f in features {
        if !kept.contains(&f) {
            kept.push(f);
        }
    }
    Ok(Some(kept))
}
