//! `feature_selection`: keeps the features worth modelling, by IV (threshold or top-k),
//! missing rate, distinct values, variance, and correlation within a party.
//!
//! The guest decides on host features from their IV alone (it has them from
//! `feature_binning`); each host runs its local checks (missing rate, distinct values,
//! variance, correlation among its own columns) and sends the guest only which features pass
//! and which pairs are correlated — never values. The guest's decision reaches each host as a
//! list of its kept features. Columns that were not binned are kept as they are.

use super::disclosure::protocol;
use super::feature_binning::{load_binning, read_table};
use super::{
    Artifact, ArtifactKind, Component, Outputs, Params, Slot, TaskEnv, TaskError, parse_struct,
    schema_of,
};
use super::{TaskDisclosure, TaskFacts};
use ferry_context::Role;
use ferry_feature::selection::{Candidate, SelectionParams, federated_selection};
use ferry_feature::table::ColumnValues;
use serde_json::{Value, json};

pub struct FeatureSelection;

impl Component for FeatureSelection {
    fn name(&self) -> &'static str {
        "feature_selection"
    }
    fn summary(&self) -> &'static str {
        "Keeps features by IV (threshold or top-k), missing rate, distinct values, variance and correlation; host values never cross."
    }
    fn inputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[
            Slot::required("data", ArtifactKind::Dataset),
            Slot::required("binning", ArtifactKind::Model),
        ];
        SLOTS
    }
    fn outputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[
            Slot::required("data", ArtifactKind::Dataset),
            Slot::required("report", ArtifactKind::Report),
        ];
        SLOTS
    }
    fn params_schema(&self) -> Value {
        schema_of::<SelectionParams>(&[])
    }
    fn validate(&self, params: &Params, _role: Role) -> Result<(), String> {
        parse_struct::<SelectionParams>(params, &[])?.validate()
    }
    /// SECURITY.md's feature selection row for the guest and each host.
    fn disclosure(&self, facts: &TaskFacts<'_>) -> Option<TaskDisclosure> {
        let mut d = TaskDisclosure::protocol(protocol::FEATURE_SELECTION);
        let guest = facts.guest()?;
        for host in facts.hosts() {
            d.reveal(
                &host,
                &guest,
                "which of its features failed its local checks and which pairs of its features \
                 are correlated above its threshold (indices, no values)",
            );
            d.reveal(
                &guest,
                &host,
                "which of the host's features the guest keeps",
            );
        }
        Some(d)
    }
    fn run(&self, env: &TaskEnv) -> Result<Outputs, TaskError> {
        let params: SelectionParams = parse_struct(&env.params, &[]).map_err(TaskError::new)?;
        let role = env.role();
        if role == Role::Arbiter {
            return Ok(vec![("data", None), ("report", None)]);
        }
        let name = env
            .input_dataset("data")?
            .ok_or_else(|| TaskError::shared("no data to select from at this party"))?;
        let binning = load_binning(env, "binning")?
            .ok_or_else(|| TaskError::shared("no binning at this party"))?;
        let table = read_table(env, &name)?;
        // Text columns are judged by their bin index (a code per category group).
        let codes: Vec<(String, Vec<f64>)> = binning
            .features
            .iter()
            .map(|c| {
                let col = table
                    .require_column(&c.binning.feature)
                    .map_err(|e| TaskError::new(e.to_string()))?;
                let values = match &col.values {
                    ColumnValues::Numeric(v) => v.clone(),
                    ColumnValues::Text(v) => c
                        .binning
                        .bin_texts(v)
                        .into_iter()
                        .map(|b| {
                            if b as usize == c.binning.missing_bin() {
                                f64::NAN
                            } else {
                                f64::from(b)
                            }
                        })
                        .collect(),
                };
                Ok((c.binning.feature.clone(), values))
            })
            .collect::<Result<_, TaskError>>()?;
        let me = env.ctx.me().as_str().to_string();
        let own: Vec<Candidate<'_>> = binning
            .features
            .iter()
            .zip(&codes)
            .map(|(c, (n, v))| Candidate {
                name: n.clone(),
                party: me.clone(),
                iv: c.iv,
                values: Some(v.as_slice()),
            })
            .collect();
        let outcome = federated_selection(env.ctx, &own, &binning.woe_outcome(role), &params)
            .map_err(|e| TaskError::new(e.to_string()))?;
        // This party's columns: the kept binned ones and every column that was not binned.
        let binned: Vec<&str> = codes.iter().map(|(n, _)| n.as_str()).collect();
        let rec = env.store.dataset(&name)?;
        let mut keep: Vec<String> = rec.id_columns.clone();
        keep.extend(rec.label.iter().cloned());
        for c in &rec.columns {
            let n = c.name.as_str();
            if keep.iter().any(|k| k == n) {
                continue;
            }
            if !binned.contains(&n) || outcome.kept.iter().any(|k| k == n) {
                keep.push(n.to_string());
            }
        }
        std::fs::create_dir_all(&env.work_dir)?;
        let output = env.work_dir.join(format!("{}.csv", env.task.name));
        ferry_data::select_csv_columns(
            env.store.source(&rec.path),
            &keep,
            env.store.source(&output),
        )?;
        let kept_here = keep.len() - rec.id_columns.len() - usize::from(rec.label.is_some());
        env.ctx.log(&format!(
            "kept {kept_here} of {} feature columns of '{name}'",
            rec.columns.len() - rec.id_columns.len() - usize::from(rec.label.is_some())
        ));
        let derived = env.register(
            output,
            rec.id_columns.clone(),
            rec.label.clone(),
            rec.label_kind.unwrap_or_default(),
            vec![name],
            "features kept by feature_selection",
        )?;
        let report = json!({
            "kept": outcome.kept,
            "dropped": outcome
                .dropped
                .iter()
                .map(|(f, why)| json!({"feature": f, "reason": why.to_string()}))
                .collect::<Vec<_>>(),
        });
        Ok(vec![
            (
                "data",
                Some(Artifact::dataset_with(derived, json!({"kept": kept_here}))),
            ),
            ("report", Some(Artifact::Report { report })),
        ])
    }
}
