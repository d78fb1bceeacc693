//! `data_split`: splits each party's rows into train and test by id, with no message: a row's
//! side follows from a hash of its id, so aligned parties split alike.

use super::{Artifact, ArtifactKind, Component, Outputs, Params, Slot, TaskEnv, TaskError};
use super::{parse_struct, schema_of};
use ferry_context::Role;
use ferry_data::LabelKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub struct DataSplit;

/// Share of rows `data_split` puts in the test set unless told otherwise.
const DEFAULT_TEST_FRACTION: f64 = 0.2;
/// Seed of `data_split` unless told otherwise: any fixed value, the same at every party.
const DEFAULT_SPLIT_SEED: u64 = 42;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SplitParams {
    /// Share of rows held out for testing, strictly between 0 and 1.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub test_fraction: f64,
    /// Seed of the id hash; every party must use the same one.
    pub seed: u64,
}

impl Default for SplitParams {
    fn default() -> Self {
        SplitParams {
            test_fraction: DEFAULT_TEST_FRACTION,
            seed: DEFAULT_SPLIT_SEED,
        }
    }
}

impl Component for DataSplit {
    fn name(&self) -> &'static str {
        "data_split"
    }
    fn summary(&self) -> &'static str {
        "Splits every party's rows into train and test by id, so aligned parties split alike without a message."
    }
    fn inputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("data", ArtifactKind::Dataset)];
        SLOTS
    }
    fn outputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[
            Slot::required("train", ArtifactKind::Dataset),
            Slot::required("test", ArtifactKind::Dataset),
        ];
        SLOTS
    }
    fn params_schema(&self) -> serde_json::Value {
        schema_of::<SplitParams>(&[])
    }
    fn validate(&self, params: &Params, _role: Role) -> Result<(), String> {
        let p: SplitParams = parse_struct(params, &[])?;
        if !(p.test_fraction > 0.0 && p.test_fraction < 1.0) {
            return Err(format!(
                "'test_fraction' must be a number between 0 and 1, got {}",
                p.test_fraction
            ));
        }
        Ok(())
    }
    /// Runs on each party's own data; nothing crosses the wire.
    fn disclosure(&self, _facts: &super::TaskFacts<'_>) -> Option<super::TaskDisclosure> {
        Some(super::TaskDisclosure::local())
    }
    fn run(&self, env: &TaskEnv) -> Result<Outputs, TaskError> {
        let params: SplitParams = parse_struct(&env.params, &[]).map_err(TaskError::new)?;
        split(env, &params)
    }
}

/// Splits this party's rows into train and test by id (see `ferry_data::split_csv_by_id`).
fn split(env: &TaskEnv, params: &SplitParams) -> Result<Outputs, TaskError> {
    let Some(name) = env.input_dataset("data")? else {
        return Ok(vec![("train", None), ("test", None)]);
    };
    let (fraction, seed) = (params.test_fraction, params.seed);
    let rec = env.csv_dataset(&name)?;
    std::fs::create_dir_all(&env.work_dir)?;
    let train = env.work_dir.join(format!("{}-train.csv", env.task.name));
    let test = env.work_dir.join(format!("{}-test.csv", env.task.name));
    let counts = ferry_data::split_csv_by_id(
        env.store.source(&rec.path),
        &rec.id_columns,
        fraction,
        seed,
        env.store.source(&train),
        env.store.source(&test),
    )?;
    env.ctx.log(&format!(
        "split '{name}' by id (seed {seed}): {} train rows, {} test rows",
        counts.train, counts.test
    ));
    if counts.train == 0 || counts.test == 0 {
        return Err(TaskError::shared(format!(
            "the split left no {} rows ({} rows in all); use more data or another test_fraction",
            if counts.train == 0 { "train" } else { "test" },
            counts.train + counts.test
        )));
    }
    let kind = rec.label_kind.unwrap_or(LabelKind::Continuous);
    let mut out = Vec::new();
    for (side, path, rows) in [("train", train, counts.train), ("test", test, counts.test)] {
        let derived = env.register_as(
            &format!("{}-{side}", env.derived_name()),
            path,
            rec.id_columns.clone(),
            rec.label.clone(),
            kind,
            vec![name.clone()],
            &format!("{side} rows of a split by id (test fraction {fraction}, seed {seed})"),
        )?;
        out.push((
            side,
            Some(Artifact::dataset_with(derived, json!({"rows": rows}))),
        ));
    }
    Ok(out)
}
