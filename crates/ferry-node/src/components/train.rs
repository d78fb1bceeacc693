//! Training components: one generic component over [`FederatedModel`], instantiated once per
//! algorithm (`hetero_secureboost`, `hetero_lr` here; `fedavg` in its own file for its
//! policy checks). The same type scores data for `predict` through [`ModelKind`].

use super::{
    ArtifactKind, Claims, Component, MODEL_KEYS, Outputs, Params, Slot, TaskEnv, TaskError,
    parse_struct, schema_of,
};
use crate::policy::SecurityPolicy;
use ferry_context::{Context, Role, Roster};
use ferry_data::Dataset;
use ferry_ml::{FederatedModel, LabelFacts};
use serde_json::Value;
use std::marker::PhantomData;

/// Scoring with a stored model part of one kind.
pub trait ModelKind: Sync {
    /// The kind stored with the model (the training component's name).
    fn kind(&self) -> &'static str;
    /// Scores `data` (`None` at a party without data) with the stored `payload`; `Some` at
    /// the parties that learn the scores.
    fn predict(
        &self,
        ctx: &Context,
        payload: &[u8],
        data: Option<&Dataset>,
    ) -> Result<Option<Vec<f64>>, TaskError>;
    /// Whether a party in `role` scores with its label column kept (the label holder, so that
    /// evaluation can follow).
    fn label_holder(&self, role: Role) -> bool;
}

/// A training component for algorithm `M`.
pub struct Train<M: FederatedModel> {
    pub summary: &'static str,
    pub inputs: &'static [Slot],
    /// The optional second dataset slot (validation or test data).
    pub holdout_slot: &'static str,
    pub roster: fn(&Roster) -> Result<(), String>,
    /// Whether an arbiter in the roster takes part (hetero LR's coordinator, FedAvg's server)
    /// or sits this task out (SecureBoost).
    pub arbiter_takes_part: bool,
    /// Checks of the node's policy beyond the key size.
    pub policy: fn(&M::Params, &SecurityPolicy, usize) -> Result<(), String>,
    /// The approval view's line; `None`: the HE settings, if any.
    pub security_line: fn(&M::Params) -> Option<String>,
    pub _model: PhantomData<fn() -> M>,
}

fn needs_guest_and_host(r: &Roster) -> Result<(), String> {
    if r.hosts().is_empty() {
        return Err("needs at least one host besides the guest".into());
    }
    Ok(())
}

fn no_policy<P>(_: &P, _: &SecurityPolicy, _: usize) -> Result<(), String> {
    Ok(())
}

fn no_line<P>(_: &P) -> Option<String> {
    None
}

const TRAIN_AND_VALIDATE: &[Slot] = &[
    Slot::required("train", ArtifactKind::Dataset),
    Slot::optional("validate", ArtifactKind::Dataset),
];

pub static SECUREBOOST: Train<ferry_secureboost::ModelPart> = Train {
    summary: "SecureBoost: gradient-boosted trees over vertically split data; hosts see only encrypted gradients.",
    inputs: TRAIN_AND_VALIDATE,
    holdout_slot: "validate",
    roster: needs_guest_and_host,
    arbiter_takes_part: false,
    policy: no_policy,
    security_line: no_line,
    _model: PhantomData,
};

pub static HETERO_LR: Train<ferry_linear::ModelPart> = Train {
    summary: "Hetero logistic/linear regression over vertically split data, with or without an arbiter.",
    inputs: TRAIN_AND_VALIDATE,
    holdout_slot: "validate",
    roster: needs_guest_and_host,
    arbiter_takes_part: true,
    policy: no_policy,
    security_line: no_line,
    _model: PhantomData,
};

pub use super::fedavg::FEDAVG;

impl<M: FederatedModel> Train<M> {
    /// The parameters with the key-size permission this node's policy gives (never the job's).
    fn params(
        &self,
        params: &Params,
        policy: Option<&SecurityPolicy>,
    ) -> Result<M::Params, String> {
        let mut p: M::Params = parse_struct(params, MODEL_KEYS)?;
        if let Some(he) = M::he_settings(&mut p) {
            // At submission the key size is the policy's decision (checked separately), so
            // the algorithm's own floor is lifted for the range checks alone.
            he.allow_insecure_key_bits = match policy {
                Some(policy) => policy.allows_key(he.scheme, he.key_bits),
                None => true,
            };
        }
        Ok(p)
    }
}

impl<M: FederatedModel + 'static> Component for Train<M> {
    fn name(&self) -> &'static str {
        M::KIND
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn inputs(&self) -> &'static [Slot] {
        self.inputs
    }
    fn outputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("model", ArtifactKind::Model)];
        SLOTS
    }
    fn check_roster(&self, roster: &Roster) -> Result<(), String> {
        (self.roster)(roster)
    }
    fn params_schema(&self) -> Value {
        schema_of::<M::Params>(&[(
            "model_name",
            "Name of the stored model (default: job-<id>-<task>); a new version is added if it exists.",
        )])
    }
    fn validate(&self, params: &Params, _role: Role) -> Result<(), String> {
        if let Some(name) = params.get("model_name") {
            let name = name
                .as_str()
                .ok_or("'model_name' must be text (the name of the stored model)")?;
            ferry_store::validate_name("model", name).map_err(|e| e.to_string())?;
        }
        let p = self.params(params, None)?;
        M::validate(&p)
    }
    fn claims(&self, params: &Params) -> Claims {
        let Ok(mut p) = self.params(params, None) else {
            return Claims::default();
        };
        let he = M::he_settings(&mut p).map(|h| h.clone());
        let security = (self.security_line)(&p).or_else(|| {
            he.as_ref()
                .map(|h| format!("{}-{} keys", h.scheme.name(), h.key_bits))
        });
        Claims {
            writes_model: params
                .get("model_name")
                .and_then(Value::as_str)
                .map(str::to_string),
            he,
            security,
            ..Claims::default()
        }
    }
    fn check_policy(
        &self,
        params: &Params,
        policy: &SecurityPolicy,
        clients: usize,
    ) -> Result<(), String> {
        let p = self.params(params, None)?;
        (self.policy)(&p, policy, clients)
    }
    fn run(&self, env: &TaskEnv) -> Result<Outputs, TaskError> {
        let mut params = self
            .params(&env.params, Some(env.policy))
            .map_err(TaskError::new)?;
        let role = env.role();
        if role == Role::Arbiter && !self.arbiter_takes_part {
            return Ok(vec![("model", None)]);
        }
        let with_label = M::needs_label(role);
        let train_name = env.input_dataset("train")?;
        let train = train_name
            .as_deref()
            .map(|n| env.load(n, with_label))
            .transpose()?;
        if role != Role::Arbiter && train.is_none() {
            return Err(TaskError::shared("no training data at this party"));
        }
        if let (Some(name), Some(labels)) = (&train_name, train.as_ref().and_then(|d| d.labels())) {
            let kind = env.store.dataset(name)?.label_kind.unwrap_or_default();
            let facts = LabelFacts {
                kind,
                distinct: distinct_values(labels),
            };
            M::follow_labels(&mut params, &env.params, facts);
        }
        let holdout = env
            .input_dataset(self.holdout_slot)?
            .map(|n| env.load(&n, with_label))
            .transpose()?;
        let fitted = M::fit(env.ctx, train.as_ref(), &params, holdout.as_ref())
            .map_err(|e| TaskError::new(e.to_string()))?;
        let payload = fitted
            .model
            .to_bytes()
            .map_err(|e| TaskError::new(e.to_string()))?;
        let artifact = env.store_model(
            M::KIND,
            payload,
            train_name.into_iter().collect(),
            fitted.summary,
        )?;
        Ok(vec![("model", Some(artifact))])
    }
    fn as_model(&self) -> Option<&dyn ModelKind> {
        Some(self)
    }
}

impl<M: FederatedModel + 'static> ModelKind for Train<M> {
    fn kind(&self) -> &'static str {
        M::KIND
    }
    fn predict(
        &self,
        ctx: &Context,
        payload: &[u8],
        data: Option<&Dataset>,
    ) -> Result<Option<Vec<f64>>, TaskError> {
        let model = M::from_bytes(payload).map_err(|e| TaskError::new(e.to_string()))?;
        model
            .predict(ctx, data)
            .map_err(|e| TaskError::new(e.to_string()))
    }
    fn label_holder(&self, role: Role) -> bool {
        M::needs_label(role)
    }
}

/// Distinct values among `labels` (bounded work: labels are already validated numbers).
fn distinct_values(labels: &[f64]) -> usize {
    let mut v: Vec<u64> = labels.iter().map(|x| x.to_bits()).collect();
    v.sort_unstable();
    v.dedup();
    v.len()
}
