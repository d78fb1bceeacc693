//! Running one task of a job on this node.
//!
//! A task gets its merged parameters, the outputs of the tasks it reads from (as recorded on
//! *this* node: dataset and model names in the local store), and a [`Context`] for the task's
//! session. It returns its outputs by name: `{"dataset": name}`, `{"model": name, "version":
//! v}`, metrics as JSON, or `null` when this party holds nothing for that output (the arbiter's
//! data, a party that does not receive a PSI result).

use super::PsiParams;
use crate::dsl::TaskSpec;
use ferry_context::{Context, Role};
use ferry_data::{Dataset, DatasetSpec, LabelKind};
use ferry_store::{DataFormat, Lineage, ModelLineage, RegisterDataset, Store, StoreModel};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Why a task failed on this node; the message is what users see in `ferry job status`.
///
/// Partners are told that the task failed, but the message itself only when it is
/// `shareable`: errors about this party's data name its files, rows, columns and even cell
/// values, which must not leave the node. Protocol errors (timeouts, a partner's failure) and
/// the messages marked with [`TaskError::shared`] are shareable.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TaskError {
    pub message: String,
    pub shareable: bool,
}

impl TaskError {
    /// A failure whose message stays on this node.
    pub fn new(msg: impl Into<String>) -> Self {
        TaskError {
            message: msg.into(),
            shareable: false,
        }
    }

    /// A failure whose message says nothing about this party's data, so partners see it too.
    pub fn shared(msg: impl Into<String>) -> Self {
        TaskError {
            message: msg.into(),
            shareable: true,
        }
    }
}

impl From<ferry_context::FederationError> for TaskError {
    fn from(e: ferry_context::FederationError) -> Self {
        TaskError::shared(e.to_string())
    }
}

macro_rules! impl_from {
    ($($t:ty),*) => {$(
        impl From<$t> for TaskError {
            fn from(e: $t) -> Self { TaskError::new(e.to_string()) }
        }
    )*};
}
impl_from!(
    ferry_store::StoreError,
    ferry_data::DataError,
    ferry_psi::PsiError,
    ferry_secureboost::SecureBoostError,
    ferry_secureboost::ModelError,
    ferry_linear::LinearError,
    ferry_horizontal::HflError,
    ferry_ml::metrics::MetricError,
    serde_json::Error,
    std::io::Error
);

/// Everything a task needs on this node.
pub struct TaskEnv<'a> {
    pub ctx: &'a Context,
    pub store: &'a Store,
    pub job_id: &'a str,
    /// The party that proposed the job (grants are checked against it).
    pub initiator: &'a str,
    pub task: &'a TaskSpec,
    pub params: Map<String, Value>,
    /// Input slot → the producing task's output value on this node.
    pub inputs: BTreeMap<String, Value>,
    /// Scratch and output directory of the job on this node.
    pub work_dir: PathBuf,
    /// This node's security policy: decides, in code, whether small test keys are allowed.
    pub policy: &'a crate::policy::SecurityPolicy,
}

impl TaskEnv<'_> {
    fn role(&self) -> Role {
        self.ctx.role()
    }

    /// The dataset name an input slot refers to (`None`: this party has no data there).
    fn input_dataset(&self, slot: &str) -> Result<Option<String>, TaskError> {
        match self.inputs.get(slot) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .get("dataset")
                .and_then(Value::as_str)
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| {
                    TaskError::new(format!(
                        "input '{slot}' of task '{}' is not a dataset",
                        self.task.name
                    ))
                }),
        }
    }

    fn derived_name(&self) -> String {
        format!("{}-{}", self.job_id, self.task.name)
    }

    fn lineage(&self, inputs: Vec<String>, note: &str) -> Lineage {
        Lineage {
            job_id: self.job_id.to_string(),
            task: self.task.name.clone(),
            inputs,
            note: Some(note.to_string()),
        }
    }

    /// Reads a registered dataset for training or prediction. `with_label`: keep the label
    /// (and require one); otherwise the label column, if the dataset has one, is dropped.
    fn load(&self, name: &str, with_label: bool) -> Result<Dataset, TaskError> {
        let rec = self.store.dataset(name)?;
        if rec.format != DataFormat::Csv {
            return Err(TaskError::new(format!(
                "dataset '{name}' is {:?}; this component reads CSV datasets (PSI outputs are CSV)",
                rec.format
            )));
        }
        let label = if with_label {
            Some(rec.label.clone().ok_or_else(|| {
                TaskError::new(format!("dataset '{name}' has no label column; register it with a label to train on it as guest"))
            })?)
        } else {
            None
        };
        let spec = DatasetSpec {
            id_columns: rec.id_columns.clone(),
            label,
            label_kind: if with_label {
                rec.label_kind.unwrap_or(LabelKind::Continuous)
            } else {
                LabelKind::Continuous
            },
            features: None,
            exclude: if with_label {
                vec![]
            } else {
                rec.label.clone().into_iter().collect()
            },
        };
        Ok(Dataset::read_csv(&rec.path, &spec)?)
    }

    /// Registers a file this task produced as a derived dataset.
    fn register(
        &self,
        path: PathBuf,
        id_columns: Vec<String>,
        label: Option<String>,
        label_kind: LabelKind,
        inputs: Vec<String>,
        note: &str,
    ) -> Result<String, TaskError> {
        let name = self.derived_name();
        self.register_as(&name, path, id_columns, label, label_kind, inputs, note)
    }

    /// Registers a file this task produced as the derived dataset `name`.
    #[allow(clippy::too_many_arguments)]
    fn register_as(
        &self,
        name: &str,
        path: PathBuf,
        id_columns: Vec<String>,
        label: Option<String>,
        label_kind: LabelKind,
        inputs: Vec<String>,
        note: &str,
    ) -> Result<String, TaskError> {
        let name = name.to_string();
        let mut req = RegisterDataset::new(&name, &path);
        req.id_columns = id_columns;
        req.label = label;
        req.label_kind = label_kind;
        req.description = format!("{note} (job {}, task {})", self.job_id, self.task.name);
        req.lineage = Some(self.lineage(inputs, note));
        // Never replace: a derived name that is taken (by a user's dataset or another job's
        // output) fails the task instead of overwriting what the node owns.
        req.replace = false;
        self.store.register_dataset(req)?;
        // The registered copy is the one that counts; the scratch file can go.
        let _ = std::fs::remove_file(&path);
        Ok(name)
    }

    fn store_model(
        &self,
        kind: &str,
        payload: Vec<u8>,
        datasets: Vec<String>,
        metrics: Value,
    ) -> Result<Value, TaskError> {
        let name = self
            .params
            .get("model_name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| self.derived_name());
        // Checked at proposal too; again here, right before the version is added.
        if let Some(owner_problem) = model_owner_problem(self.store, &name, self.initiator) {
            return Err(TaskError::shared(format!(
                "model_name '{name}' is taken by models '{}' did not create ({owner_problem}); choose another name",
                self.initiator
            )));
        }
        let mut params = self.params.clone();
        params.remove("model_name");
        let rec = self.store.store_model(StoreModel {
            name: name.clone(),
            kind: kind.to_string(),
            role: self.role().to_string(),
            payload,
            lineage: ModelLineage {
                job_id: self.job_id.to_string(),
                task: self.task.name.clone(),
                datasets,
                params: Value::Object(params),
            },
            metrics,
        })?;
        Ok(json!({"model": rec.name, "version": rec.version, "kind": kind}))
    }
}

/// Runs `env.task` and returns its outputs by name.
pub fn run_task(env: &TaskEnv) -> Result<Map<String, Value>, TaskError> {
    let mut out = Map::new();
    match env.task.component.as_str() {
        "reader" => {
            out.insert("data".into(), reader(env)?);
        }
        "statistics" => {
            let stats = match env.input_dataset("data")? {
                Some(name) => serde_json::to_value(env.store.describe_dataset(&name)?)?,
                None => Value::Null,
            };
            out.insert("stats".into(), stats);
        }
        "psi" => {
            out.insert("data".into(), psi(env)?);
        }
        "data_split" => {
            let (train, test) = data_split(env)?;
            out.insert("train".into(), train);
            out.insert("test".into(), test);
        }
        "hetero_secureboost" => {
            out.insert("model".into(), secureboost(env)?);
        }
        "hetero_lr" => {
            out.insert("model".into(), hetero_lr(env)?);
        }
        "fedavg" => {
            out.insert("model".into(), fedavg(env)?);
        }
        "predict" => {
            out.insert("data".into(), predict(env)?);
        }
        "evaluation" => {
            out.insert("metrics".into(), evaluation(env)?);
        }
        other => {
            return Err(TaskError::new(format!(
                "component '{other}' cannot run on this node"
            )));
        }
    }
    Ok(out)
}

fn reader(env: &TaskEnv) -> Result<Value, TaskError> {
    let Some(name) = env.params.get("dataset").and_then(Value::as_str) else {
        return Ok(Value::Null);
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
    let Some(kept) = selected_columns(env, &rec)? else {
        return Ok(json!({"dataset": name}));
    };
    // The selection becomes a derived dataset (CSV), so every later task sees only it.
    std::fs::create_dir_all(&env.work_dir)?;
    let output = env.work_dir.join(format!("{}.csv", env.task.name));
    let rows = match rec.format {
        DataFormat::Csv => ferry_data::select_csv_columns(&rec.path, &kept, &output)?,
        DataFormat::Parquet => {
            ferry_data::select_parquet_columns_to_csv(&rec.path, &kept, &output)?
        }
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
    Ok(json!({"dataset": derived, "columns": kept}))
}

/// The columns the reader's `columns` / `exclude_columns` keep, id and label first, or
/// `None` when the task selects nothing. Names are checked against the dataset, with a hint.
fn selected_columns(
    env: &TaskEnv,
    rec: &ferry_store::DatasetRecord,
) -> Result<Option<Vec<String>>, TaskError> {
    let list = |key: &str| -> Option<Vec<String>> {
        env.params.get(key).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
    };
    let (keep, exclude) = (list("columns"), list("exclude_columns"));
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

/// Splits this party's rows into train and test by id (see `ferry_data::split_csv_by_id`).
fn data_split(env: &TaskEnv) -> Result<(Value, Value), TaskError> {
    let Some(name) = env.input_dataset("data")? else {
        return Ok((Value::Null, Value::Null));
    };
    let fraction = env
        .params
        .get("test_fraction")
        .and_then(Value::as_f64)
        .unwrap_or(DEFAULT_TEST_FRACTION);
    let seed = env
        .params
        .get("seed")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_SPLIT_SEED);
    let rec = env.store.dataset(&name)?;
    if rec.format != DataFormat::Csv {
        return Err(TaskError::new(format!(
            "dataset '{name}' is {:?}; data_split reads CSV datasets (PSI and reader selections \
             produce CSV)",
            rec.format
        )));
    }
    std::fs::create_dir_all(&env.work_dir)?;
    let train = env.work_dir.join(format!("{}-train.csv", env.task.name));
    let test = env.work_dir.join(format!("{}-test.csv", env.task.name));
    let counts =
        ferry_data::split_csv_by_id(&rec.path, &rec.id_columns, fraction, seed, &train, &test)?;
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
        out.push(json!({"dataset": derived, "rows": rows}));
    }
    let test_out = out.pop().expect("two sides");
    let train_out = out.pop().expect("two sides");
    Ok((train_out, test_out))
}

/// Share of rows `data_split` puts in the test set unless told otherwise.
const DEFAULT_TEST_FRACTION: f64 = 0.2;
/// Seed of `data_split` unless told otherwise: any fixed value, the same at every party.
const DEFAULT_SPLIT_SEED: u64 = 42;

fn psi(env: &TaskEnv) -> Result<Value, TaskError> {
    let Some(name) = env.input_dataset("data")? else {
        return Err(TaskError::shared(
            "PSI needs data at every party; this party has none",
        ));
    };
    let params: PsiParams = super::parse_struct(&env.params, &[]).map_err(TaskError::new)?;
    let rec = env.store.dataset(&name)?;
    let key_columns = params
        .key_columns
        .clone()
        .unwrap_or_else(|| rec.id_columns.clone());
    std::fs::create_dir_all(&env.work_dir)?;
    let output = env.work_dir.join(format!("{}.csv", env.task.name));
    let input = ferry_psi::PsiInput {
        path: rec.path.clone(),
        key_columns: key_columns.clone(),
        format: None,
        output: Some(output.clone()),
    };
    let mut config = ferry_psi::PsiConfig::default();
    if let Some(r) = params.receivers.as_deref().filter(|r| *r != "all") {
        config.receivers = ferry_psi::Receivers::Party(
            ferry_context::PartyId::new(r).map_err(|e| TaskError::new(e.to_string()))?,
        );
    }
    if params.cached_key {
        if !env.policy.allow_cached_psi_keys {
            return Err(TaskError::shared(
                "cached_key is not allowed by this node's policy (policy.allow_cached_psi_keys in ferry.toml)",
            ));
        }
        let parties: Vec<String> = env
            .ctx
            .roster()
            .parties()
            .map(|(p, _)| p.to_string())
            .collect();
        let dir = env.store.data_dir().join("psi-keys");
        std::fs::create_dir_all(&dir)?;
        config.keys = ferry_psi::KeyMode::Cached {
            file: dir.join(format!("{}.key", parties.join("+"))),
        };
    }
    if let Some(c) = params.chunk_size {
        config.chunk_size = c;
    }
    let outcome = ferry_psi::run_psi(env.ctx, &input, &config)?;
    let report = serde_json::to_value(&outcome.report)?;
    env.ctx.log(&format!("PSI report: {report}"));
    if let Some(size) = outcome.report.intersection_size {
        env.ctx.metric("intersection_size", 0, size as f64);
    }
    if outcome.report.intersection_size == Some(0) {
        return Err(TaskError::shared(
            "the intersection is empty: the parties have no id in common, so there is nothing to train on",
        ));
    }
    if !output.exists() {
        // This party does not receive the result.
        return Ok(Value::Null);
    }
    let label_kind = rec.label_kind.unwrap_or(LabelKind::Continuous);
    let derived = env.register(
        output,
        rec.id_columns.clone(),
        rec.label.clone(),
        label_kind,
        vec![name],
        "rows in the PSI intersection",
    )?;
    Ok(json!({"dataset": derived, "report": report}))
}

fn secureboost(env: &TaskEnv) -> Result<Value, TaskError> {
    let mut params: ferry_secureboost::SecureBoostParams =
        super::parse_struct(&env.params, super::MODEL_KEYS).map_err(TaskError::new)?;
    // Only this node's policy may allow keys below 2048 bits, never the job's parameters.
    params.allow_insecure_key_size = env.policy.allows_key(params.he_scheme, params.key_bits);
    if env.role() == Role::Arbiter {
        return Ok(Value::Null);
    }
    let train_name = env
        .input_dataset("train")?
        .ok_or_else(|| TaskError::shared("no training data at this party"))?;
    let guest = env.role() == Role::Guest;
    let train = env.load(&train_name, guest)?;
    let validation = env
        .input_dataset("validate")?
        .map(|n| env.load(&n, guest))
        .transpose()?;
    let (model, report) =
        ferry_secureboost::train_with_report(env.ctx, &train, &params, validation.as_ref())?;
    let metrics = json!({
        "train_metric": report.trees.last().and_then(|t| t.train_metric),
        "validation_metric": report.trees.last().and_then(|t| t.validation_metric),
        "trees": report.trees.len(),
        "seconds": report.total_seconds,
    });
    env.store_model(
        "hetero_secureboost",
        model.to_json().into_bytes(),
        vec![train_name],
        metrics,
    )
}

fn hetero_lr(env: &TaskEnv) -> Result<Value, TaskError> {
    let mut params: ferry_linear::LinearParams =
        super::parse_struct(&env.params, super::MODEL_KEYS).map_err(TaskError::new)?;
    // Only this node's policy may allow keys below 2048 bits, never the job's parameters.
    params.he.allow_insecure_key_bits = env.policy.allows_key(params.he.scheme, params.he.key_bits);
    let guest = env.role() == Role::Guest;
    let train_name = env.input_dataset("train")?;
    let train = train_name
        .as_deref()
        .map(|n| env.load(n, guest))
        .transpose()?;
    if env.role() != Role::Arbiter && train.is_none() {
        return Err(TaskError::shared("no training data at this party"));
    }
    let validation = env
        .input_dataset("validate")?
        .map(|n| env.load(&n, guest))
        .transpose()?;
    let trained = ferry_linear::fit(env.ctx, train.as_ref(), &params, validation.as_ref())?;
    let metrics = json!({
        "final_loss": trained.report.epochs.last().map(|e| serde_json::to_value(e).unwrap_or(Value::Null)),
        "epochs": trained.report.epochs.len(),
        "seconds": trained.report.total_seconds,
    });
    env.store_model(
        "hetero_lr",
        trained.model.to_json().into_bytes(),
        train_name.into_iter().collect(),
        metrics,
    )
}

fn fedavg(env: &TaskEnv) -> Result<Value, TaskError> {
    let params: ferry_horizontal::FedAvgParams =
        super::parse_struct(&env.params, super::MODEL_KEYS).map_err(TaskError::new)?;
    let train_name = env.input_dataset("train")?;
    let train = train_name
        .as_deref()
        .map(|n| env.load(n, true))
        .transpose()?;
    let test = env
        .input_dataset("test")?
        .map(|n| env.load(&n, true))
        .transpose()?;
    let outcome = ferry_horizontal::train(env.ctx, train.as_ref(), &params, test.as_ref())?;
    // What clients disclosed: under DP the accounting choice and the statistics sent in the
    // clear; otherwise the cleartext list alone. Kept with the model and logged with the job.
    let privacy = match &outcome.privacy {
        Some(report) => serde_json::to_value(report)?,
        None => json!({"cleartext": params.cleartext_statistics()}),
    };
    env.ctx.log(&format!("privacy report: {privacy}"));
    let metrics = json!({"rounds": outcome.rounds_completed, "epsilon": outcome.epsilon, "stop": format!("{:?}", outcome.stop), "privacy": privacy});
    env.store_model(
        "fedavg",
        outcome.model.to_json()?.into_bytes(),
        train_name.into_iter().collect(),
        metrics,
    )
}

/// Which stored model a predict task uses: its `model` input, or the `model`/`version` params.
fn model_ref(env: &TaskEnv) -> Result<(String, Option<u32>), TaskError> {
    if let Some(name) = env.params.get("model").and_then(Value::as_str) {
        let version = env
            .params
            .get("version")
            .and_then(Value::as_u64)
            .map(|v| v as u32);
        return Ok((name.to_string(), version));
    }
    match env.inputs.get("model") {
        Some(v) if v.get("model").is_some() => Ok((
            v["model"].as_str().unwrap_or_default().to_string(),
            v.get("version").and_then(Value::as_u64).map(|v| v as u32),
        )),
        _ => Err(TaskError::new(
            "this party holds no model for the predict task",
        )),
    }
}

fn predict(env: &TaskEnv) -> Result<Value, TaskError> {
    let (name, version) = model_ref(env)?;
    let (record, payload) = env.store.load_model(&name, version)?;
    let text = String::from_utf8(payload)
        .map_err(|_| TaskError::new(format!("model '{name}' is not UTF-8 JSON")))?;
    let data_name = env.input_dataset("data")?;
    let guest = env.role() == Role::Guest;
    // The guest keeps its label (if any) next to the scores, for evaluation.
    let data = match &data_name {
        Some(n) => {
            let has_label = env.store.dataset(n)?.label.is_some();
            Some((env.load(n, guest && has_label)?, has_label))
        }
        None => None,
    };
    let scores: Option<Vec<f64>> = match record.kind.as_str() {
        "hetero_secureboost" => {
            let part = ferry_secureboost::ModelPart::from_json(&text)?;
            let d = data
                .as_ref()
                .map(|(d, _)| d)
                .ok_or_else(|| TaskError::shared("no data to predict at this party"))?;
            ferry_secureboost::predict(env.ctx, &part, d)?.map(|p| p.outputs)
        }
        "hetero_lr" => {
            let part = ferry_linear::ModelPart::from_json(&text)?;
            match data.as_ref() {
                Some((d, _)) => ferry_linear::predict(env.ctx, &part, d)?,
                None => None,
            }
        }
        "fedavg" => {
            let model = ferry_horizontal::Model::from_json(&text)?;
            match data.as_ref() {
                Some((d, _)) => Some(ferry_horizontal::predict(&model, d)?),
                None => None,
            }
        }
        other => {
            return Err(TaskError::new(format!(
                "model '{name}' has kind '{other}', which predict does not know"
            )));
        }
    };
    let (Some(scores), Some((d, has_label))) = (scores, data) else {
        return Ok(Value::Null);
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
    out.write_csv(&path)?;
    let label = if has_label {
        d.label_name.clone()
    } else {
        None
    };
    let derived = env.register(
        path,
        vec!["id".into()],
        label,
        LabelKind::Continuous,
        vec![
            data_name.unwrap_or_default(),
            format!("{name} v{}", record.version),
        ],
        "predictions",
    )?;
    Ok(json!({"dataset": derived}))
}

fn evaluation(env: &TaskEnv) -> Result<Value, TaskError> {
    let Some(name) = env.input_dataset("data")? else {
        return Ok(Value::Null);
    };
    let rec = env.store.dataset(&name)?;
    if rec.label.is_none() {
        // Only the label holder evaluates.
        return Ok(Value::Null);
    }
    let d = env.load(&name, true)?;
    let y = d.labels().expect("loaded with its label");
    let kind = env
        .params
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("binary");
    let metrics = match kind {
        "binary" => {
            let scores = d.column(0);
            let threshold = env
                .params
                .get("threshold")
                .and_then(Value::as_f64)
                .unwrap_or(ferry_ml::metrics::DEFAULT_THRESHOLD);
            let report = ferry_ml::metrics::BinaryReport::compute_at(&scores, y, threshold)?;
            let (_, ks_curve) = ferry_ml::metrics::ks(&scores, y)?;
            let roc = ferry_ml::metrics::roc_curve(&scores, y)?;
            for (k, v) in [
                ("auc", report.auc),
                ("ks", report.ks),
                ("accuracy", report.accuracy),
                ("f1", report.f1),
            ] {
                env.ctx.metric(k, 0, v);
            }
            json!({"kind": "binary", "report": report, "roc": thin(&roc), "ks_curve": thin(&ks_curve)})
        }
        "regression" => {
            let report = ferry_ml::metrics::RegressionReport::compute(&d.column(0), y)?;
            env.ctx.metric("rmse", 0, report.rmse);
            env.ctx.metric("r2", 0, report.r2);
            json!({"kind": "regression", "report": report})
        }
        _ => {
            let k = d.n_features();
            let acc = ferry_ml::metrics::multiclass_accuracy(&d.features, k, y)?;
            env.ctx.metric("accuracy", 0, acc);
            json!({"kind": "multiclass", "accuracy": acc})
        }
    };
    env.ctx.log(&format!(
        "evaluation: {}",
        metrics.get("report").unwrap_or(&metrics)
    ));
    Ok(metrics)
}

/// At most ~200 curve points, enough to plot.
fn thin<T: serde::Serialize>(points: &[T]) -> Value {
    let step = points.len().div_ceil(200).max(1);
    let mut kept: Vec<&T> = points.iter().step_by(step).collect();
    if let Some(last) = points.last()
        && points.len() % step != 1
    {
        kept.push(last);
    }
    serde_json::to_value(kept).unwrap_or(Value::Null)
}

/// Whether this node lets the job read `dataset`: it must exist, and a job proposed by a
/// partner may read only what the owner granted to that partner or to that job. Checked when a
/// job is proposed and again when the reader task runs.
pub fn check_dataset_access(
    store: &Store,
    dataset: &str,
    initiator: &str,
    me: &str,
    job_id: &str,
) -> Result<(), ferry_store::StoreError> {
    store.dataset(dataset)?;
    if initiator != me {
        store.check_granted(dataset, initiator, job_id)?;
    }
    Ok(())
}

/// Why a job of `initiator` may not add a version to model `name`: some stored version was
/// created by another party's job (or by no job on record). `None` when it may.
pub(crate) fn model_owner_problem(store: &Store, name: &str, initiator: &str) -> Option<String> {
    let models = match store.list_models() {
        Ok(m) => m,
        Err(e) => return Some(e.to_string()),
    };
    models.into_iter().filter(|m| m.name == name).find_map(|m| {
        let owner = store.job(&m.lineage.job_id).ok().map(|j| j.initiator);
        (owner.as_deref() != Some(initiator)).then(|| {
            format!(
                "v{} comes from job {} of {}",
                m.version,
                m.lineage.job_id,
                owner
                    .map(|o| format!("'{o}'"))
                    .unwrap_or_else(|| "nobody on record".into())
            )
        })
    })
}
