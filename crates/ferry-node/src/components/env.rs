//! What a task gets on this node, and the helpers every component uses.
//!
//! A task gets its merged parameters, the artifacts of the tasks it reads from (as recorded on
//! *this* node: dataset and model names in the local store), and a [`Context`] for the task's
//! session.

use super::Artifact;
use crate::dsl::TaskSpec;
use ferry_context::{Context, Role};
use ferry_data::{Dataset, DatasetSpec, LabelKind};
use ferry_store::{
    DataFormat, DatasetRecord, Lineage, ModelLineage, ModelRecord, RegisterDataset, Store,
    StoreModel,
};
use serde_json::{Map, Value};
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
    /// Input slot → the producing task's artifact on this node (`None`: this party holds
    /// nothing there).
    pub inputs: BTreeMap<String, Option<Artifact>>,
    /// Scratch and output directory of the job on this node.
    pub work_dir: PathBuf,
    /// This node's security policy: decides, in code, whether small test keys are allowed.
    pub policy: &'a crate::policy::SecurityPolicy,
}

impl TaskEnv<'_> {
    pub fn role(&self) -> Role {
        self.ctx.role()
    }

    /// The dataset name an input slot refers to (`None`: this party has no data there).
    pub fn input_dataset(&self, slot: &str) -> Result<Option<String>, TaskError> {
        match self.inputs.get(slot) {
            None | Some(None) => Ok(None),
            Some(Some(Artifact::Dataset { dataset, .. })) => Ok(Some(dataset.clone())),
            Some(Some(other)) => Err(TaskError::new(format!(
                "input '{slot}' of task '{}' is a {:?}, not a dataset",
                self.task.name,
                other.kind()
            ))),
        }
    }

    /// The stored model (name, version) an input slot refers to.
    pub fn input_model(&self, slot: &str) -> Result<Option<(String, u32)>, TaskError> {
        match self.inputs.get(slot) {
            None | Some(None) => Ok(None),
            Some(Some(Artifact::Model { model, version, .. })) => {
                Ok(Some((model.clone(), *version)))
            }
            Some(Some(other)) => Err(TaskError::new(format!(
                "input '{slot}' of task '{}' is a {:?}, not a model",
                self.task.name,
                other.kind()
            ))),
        }
    }

    /// Loads version `version` (`None`: the latest) of the stored model `name`, which must be
    /// of `kind` and hold UTF-8 text (the components' own models are JSON). Returns the record
    /// of the version loaded and the text.
    pub fn load_model_of_kind(
        &self,
        name: &str,
        version: Option<u32>,
        kind: &str,
    ) -> Result<(ModelRecord, String), TaskError> {
        let (record, payload) = self.store.load_model(name, version)?;
        if record.kind != kind {
            return Err(TaskError::new(format!(
                "model '{name}' v{} is of kind '{}', not '{kind}'",
                record.version, record.kind
            )));
        }
        let text = String::from_utf8(payload).map_err(|_| {
            TaskError::new(format!(
                "model '{name}' v{} ({kind}) is not UTF-8",
                record.version
            ))
        })?;
        Ok((record, text))
    }

    pub fn derived_name(&self) -> String {
        format!("{}-{}", self.job_id, self.task.name)
    }

    pub fn lineage(&self, inputs: Vec<String>, note: &str) -> Lineage {
        Lineage {
            job_id: self.job_id.to_string(),
            task: self.task.name.clone(),
            inputs,
            note: Some(note.to_string()),
        }
    }

    /// The record of the registered dataset `name`, which must be CSV: the components read
    /// only CSV files (see [`TaskEnv::require_csv`]).
    pub fn csv_dataset(&self, name: &str) -> Result<DatasetRecord, TaskError> {
        let rec = self.store.dataset(name)?;
        self.require_csv(&rec)?;
        Ok(rec)
    }

    /// Fails unless the dataset `rec` is CSV; the message names the dataset, its format and
    /// this task's component, and says how a job turns Parquet into CSV.
    pub fn require_csv(&self, rec: &DatasetRecord) -> Result<(), TaskError> {
        if rec.format == DataFormat::Csv {
            return Ok(());
        }
        Err(TaskError::new(format!(
            "dataset '{}' is {:?}; {} reads CSV datasets (PSI outputs are CSV, and so is a \
             reader's selection: a reader with 'columns' or 'exclude_columns' turns Parquet \
             into CSV)",
            rec.name, rec.format, self.task.component
        )))
    }

    /// Reads a registered dataset for training or prediction. `with_label`: keep the label
    /// (and require one); otherwise the label column, if the dataset has one, is dropped.
    pub fn load(&self, name: &str, with_label: bool) -> Result<Dataset, TaskError> {
        let rec = self.csv_dataset(name)?;
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
        Ok(Dataset::read_csv(self.store.source(&rec.path), &spec)?)
    }

    /// Registers a file this task produced as a derived dataset.
    pub fn register(
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
    pub fn register_as(
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

    pub fn store_model(
        &self,
        kind: &str,
        payload: Vec<u8>,
        datasets: Vec<String>,
        metrics: Value,
    ) -> Result<Artifact, TaskError> {
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
        Ok(Artifact::Model {
            model: rec.name,
            version: rec.version,
            kind: kind.to_string(),
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_context::{MemoryNetwork, PartyId, Roster};
    use serde_json::json;

    /// A store in a temporary directory and what a task of component `component` needs.
    struct Fixture {
        dir: tempfile::TempDir,
        ctx: Context,
        store: Store,
        task: TaskSpec,
        policy: crate::policy::SecurityPolicy,
    }

    impl Fixture {
        fn new(component: &str) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(
                &dir.path().join("state"),
                &dir.path().join("data"),
                ferry_store::ModelSigner::generate().unwrap(),
            )
            .unwrap();
            let me = PartyId::new("bank").unwrap();
            let ctx = Context::builder(
                me.clone(),
                Roster::of(&[("bank", Role::Guest)]),
                "job-1",
                MemoryNetwork::new().endpoint(me),
            )
            .build()
            .unwrap();
            let task = TaskSpec {
                name: "t".into(),
                component: component.into(),
                inputs: BTreeMap::new(),
                params: Map::new(),
                role_params: BTreeMap::new(),
                party_params: BTreeMap::new(),
            };
            Fixture {
                dir,
                ctx,
                store,
                task,
                policy: Default::default(),
            }
        }

        fn env(&self) -> TaskEnv<'_> {
            TaskEnv {
                ctx: &self.ctx,
                store: &self.store,
                job_id: "job-1",
                initiator: "bank",
                task: &self.task,
                params: Map::new(),
                inputs: BTreeMap::new(),
                work_dir: self.dir.path().join("work"),
                policy: &self.policy,
            }
        }

        fn store_model(&self, name: &str, kind: &str, payload: &[u8]) {
            self.store
                .store_model(StoreModel {
                    name: name.into(),
                    kind: kind.into(),
                    role: "guest".into(),
                    payload: payload.to_vec(),
                    lineage: ModelLineage {
                        job_id: "job-0".into(),
                        task: "fit".into(),
                        datasets: vec![],
                        params: json!({}),
                    },
                    metrics: json!({}),
                })
                .unwrap();
        }
    }

    #[test]
    fn a_stored_model_loads_only_as_its_kind_and_as_text() {
        let f = Fixture::new("scorecard");
        f.store_model("lr", "hetero_lr", b"{\"v\": 1}");
        f.store_model("lr", "hetero_lr", b"{\"v\": 2}");
        f.store_model("binary", "feature_transform", &[0xff, 0xfe]);
        let env = f.env();

        let (record, text) = env.load_model_of_kind("lr", None, "hetero_lr").unwrap();
        assert_eq!((record.version, text.as_str()), (2, "{\"v\": 2}"));
        let (record, text) = env.load_model_of_kind("lr", Some(1), "hetero_lr").unwrap();
        assert_eq!((record.version, text.as_str()), (1, "{\"v\": 1}"));

        let e = env
            .load_model_of_kind("lr", Some(1), "feature_binning")
            .unwrap_err();
        assert_eq!(
            e.message,
            "model 'lr' v1 is of kind 'hetero_lr', not 'feature_binning'"
        );
        assert!(!e.shareable);
        let e = env
            .load_model_of_kind("binary", None, "feature_transform")
            .unwrap_err();
        assert_eq!(
            e.message,
            "model 'binary' v1 (feature_transform) is not UTF-8"
        );
        assert!(env.load_model_of_kind("absent", None, "hetero_lr").is_err());
    }

    #[test]
    fn the_components_read_csv_datasets_only() {
        let f = Fixture::new("data_split");
        let env = f.env();
        let csv = f.dir.path().join("loans.csv");
        std::fs::write(&csv, "id,x\n1,0.5\n2,1.5\n").unwrap();
        f.store
            .register_dataset(RegisterDataset::new("loans", &csv))
            .unwrap();
        assert_eq!(env.csv_dataset("loans").unwrap().name, "loans");
        assert!(env.csv_dataset("absent").is_err());

        let mut parquet = env.csv_dataset("loans").unwrap();
        parquet.name = "loans_pq".into();
        parquet.format = DataFormat::Parquet;
        let e = env.require_csv(&parquet).unwrap_err();
        assert!(
            e.message
                .starts_with("dataset 'loans_pq' is Parquet; data_split reads CSV datasets"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("turns Parquet into CSV"),
            "{}",
            e.message
        );
        assert!(!e.shareable);
    }
}
