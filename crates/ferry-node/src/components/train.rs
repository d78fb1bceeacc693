//! Training components: one generic component over [`FederatedModel`], instantiated once per
//! algorithm (`hetero_secureboost`, `hetero_lr` here; `fedavg` in its own file for its
//! policy checks). The same type scores data for `predict` through [`ModelKind`].

use super::checkpoints::FileCheckpoints;
use super::disclosure::protocol;
use super::{
    ArtifactKind, Claims, Component, Outputs, Params, Slot, TaskDisclosure, TaskEnv, TaskError,
    TaskFacts, parse_struct, schema_of,
};
use crate::policy::SecurityPolicy;
use ferry_context::{Context, Role, Roster};
use ferry_data::Dataset;
use ferry_ml::{CheckpointStore, Checkpoints, FederatedModel, LabelFacts};
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
    /// What scoring with a model of this kind reveals to whom (the `predict` task's part of
    /// the job's privacy report).
    fn prediction_disclosure(&self, facts: &TaskFacts<'_>) -> TaskDisclosure;
}

/// The metric a training task records with the differential-privacy budget its model spent
/// (the training summary's `epsilon`), on every party, for the job's privacy report.
pub const EPSILON_SPENT_METRIC: &str = "epsilon_spent";

/// The parameter that makes a training task continue from the checkpoints of an earlier,
/// interrupted job (set by `Node::resume`, the task's name being the same in both jobs).
pub const RESUME_KEY: &str = "resume_from_job";

/// Parameters of a training task besides the algorithm's.
const TRAIN_KEYS: &[&str] = &["model_name", RESUME_KEY];

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
    /// What training reveals to whom (the job's privacy report).
    pub disclosure: fn(&TaskFacts<'_>) -> TaskDisclosure,
    /// What scoring with the trained model reveals to whom.
    pub prediction_disclosure: fn(&TaskFacts<'_>) -> TaskDisclosure,
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
    disclosure: secureboost_disclosure,
    prediction_disclosure: secureboost_prediction_disclosure,
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
    disclosure: hetero_lr_disclosure,
    prediction_disclosure: hetero_lr_prediction_disclosure,
    _model: PhantomData,
};

pub use super::fedavg::FEDAVG;

/// SECURITY.md's SecureBoost row for the job's guest and hosts (the arbiter sits it out).
fn secureboost_disclosure(facts: &TaskFacts<'_>) -> TaskDisclosure {
    let mut d = TaskDisclosure::protocol(protocol::SECUREBOOST);
    let Some(guest) = facts.guest() else {
        return d;
    };
    let p: ferry_secureboost::SecureBoostParams = facts.typed(&guest, TRAIN_KEYS);
    d.setting(format!(
        "keys: {}-{} generated by the guest ({guest}); hosts see gradients and hessians only \
         encrypted under it",
        p.he.scheme.name(),
        p.he.key_bits
    ));
    for host in facts.hosts() {
        d.reveal(
            &host,
            &guest,
            "per-bin sums of gradients and hessians of its features at every node, the number \
             of bins of each feature, the index (not the name) of the feature each of its \
             chosen splits uses, and the outcome of its splits (which rows go left); never its \
             thresholds or values",
        );
        d.reveal(
            &guest,
            &host,
            "the instance space of every node (which of its rows go left or right), hence the \
             tree structure, and which of its own splits were chosen; never gradients, \
             hessians, labels or leaf values",
        );
    }
    d
}

/// Scoring with a SecureBoost model: the guest walks the trees and asks each host which way
/// rows go at the host's splits.
fn secureboost_prediction_disclosure(facts: &TaskFacts<'_>) -> TaskDisclosure {
    let mut d = TaskDisclosure::protocol(protocol::PREDICTION);
    let Some(guest) = facts.guest() else {
        return d;
    };
    for host in facts.hosts() {
        d.reveal(
            &host,
            &guest,
            "for every scored row that reaches one of its splits, which way it goes (one bit \
             per row and split); never its thresholds or values",
        );
        d.reveal(
            &guest,
            &host,
            "the number of rows scored and which of them reach each of its splits",
        );
    }
    d
}

/// SECURITY.md's hetero LR row, in the mode the job runs (with an arbiter when the roster has
/// one, unless the parameters say otherwise).
fn hetero_lr_disclosure(facts: &TaskFacts<'_>) -> TaskDisclosure {
    use ferry_linear::Mode;
    let mut d = TaskDisclosure::protocol(protocol::HETERO_LR);
    let Some(guest) = facts.guest() else {
        return d;
    };
    let p: ferry_linear::LinearParams = facts.typed(&guest, TRAIN_KEYS);
    let keys = format!("{}-{}", p.he.scheme.name(), p.he.key_bits);
    let arbiter = match p.mode {
        Mode::WithoutThirdParty => None,
        Mode::Auto | Mode::WithArbiter => facts.arbiter(),
    };
    match &arbiter {
        Some(a) => {
            d.setting(format!(
                "mode: with the arbiter {a}, which generates the only key pair ({keys} keys)"
            ));
            for party in facts.data_parties() {
                d.reveal(
                    &party,
                    a,
                    format!(
                        "the row count, how many ciphertexts its gradient takes (about its \
                         column count) and, per batch, one masked value per such ciphertext \
                         (masks {} bits wider than the value); never features, labels, weights \
                         or unmasked gradients",
                        ferry_linear::MASK_STATISTICAL_BITS
                    ),
                );
            }
        }
        None => d.setting(format!(
            "mode: without a third party; every data party generates its own key pair ({keys} keys)"
        )),
    }
    let validation = if facts.has_input("validate") {
        ", and its partial scores on the validation rows"
    } else {
        ""
    };
    for host in facts.hosts() {
        d.reveal(
            &host,
            &guest,
            format!(
                "through the guest's own gradient, the guest's columns times the hosts' summed \
                 partial scores (X_g^T·u_h) per batch; its w_k·g_k per batch (what the training \
                 loss needs){validation}; never its features, weights or gradient"
            ),
        );
        d.reveal(
            &guest,
            &host,
            "through the host's own gradient, the host's columns times the guest's residual \
             share (X_k^T·r_g) per batch, and whether training stops; never labels or residuals",
        );
    }
    d
}

/// Scoring with a hetero LR model: each host sends the guest its share of the logit.
fn hetero_lr_prediction_disclosure(facts: &TaskFacts<'_>) -> TaskDisclosure {
    let mut d = TaskDisclosure::protocol(protocol::PREDICTION);
    if let Some(guest) = facts.guest() {
        for host in facts.hosts() {
            d.reveal(
                &host,
                &guest,
                "its partial score w_k·x (its share of the logit) for every scored row",
            );
        }
    }
    d
}

impl<M: FederatedModel> Train<M> {
    /// The parameters with the key-size permission this node's policy gives (never the job's).
    fn params(
        &self,
        params: &Params,
        policy: Option<&SecurityPolicy>,
    ) -> Result<M::Params, String> {
        let mut p: M::Params = parse_struct(params, TRAIN_KEYS)?;
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
        let mut extra = vec![(
            "model_name",
            "Name of the stored model (default: job-<id>-<task>); a new version is added if it exists.",
        )];
        if M::CHECKPOINTS {
            extra.push((
                RESUME_KEY,
                "Continue from this party's checkpoints of the same task in an earlier, \
                 interrupted job of the same initiator and parties (set by `ferry job resume`).",
            ));
        }
        schema_of::<M::Params>(&extra)
    }
    fn validate(&self, params: &Params, _role: Role) -> Result<(), String> {
        if let Some(name) = params.get("model_name") {
            let name = name
                .as_str()
                .ok_or("'model_name' must be text (the name of the stored model)")?;
            ferry_store::validate_name("model", name).map_err(|e| e.to_string())?;
        }
        if let Some(job) = params.get(RESUME_KEY) {
            if !M::CHECKPOINTS {
                return Err(format!(
                    "'{RESUME_KEY}': {} keeps no checkpoints; re-run the job instead",
                    M::KIND
                ));
            }
            let job = job
                .as_str()
                .ok_or_else(|| format!("'{RESUME_KEY}' must be the id of an earlier job"))?;
            ferry_store::validate_job_id(job).map_err(|e| format!("'{RESUME_KEY}': {e}"))?;
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
        // Checkpoints go into this job's work directory; a resumed task reads the earlier
        // job's (checked first: the same initiator and parties, and finished).
        let save = M::CHECKPOINTS.then(|| FileCheckpoints::of_task(&env.work_dir, &env.task.name));
        let resume = match env.params.get(RESUME_KEY) {
            Some(job) if M::CHECKPOINTS => Some(resume_source(env, job)?),
            Some(_) => {
                return Err(TaskError::shared(format!(
                    "{} keeps no checkpoints to resume from",
                    M::KIND
                )));
            }
            None => None,
        };
        let checkpoints = Checkpoints {
            save: save.as_ref().map(|s| s as &dyn CheckpointStore),
            resume_from: resume.as_ref().map(|s| s as &dyn CheckpointStore),
        };
        let fitted = M::fit_with_checkpoints(
            env.ctx,
            train.as_ref(),
            &params,
            holdout.as_ref(),
            checkpoints,
        )
        .map_err(|e| TaskError::new(e.to_string()))?;
        if let Some(epsilon) = fitted.summary.get("epsilon").and_then(Value::as_f64) {
            env.ctx.metric(EPSILON_SPENT_METRIC, 0, epsilon);
        }
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
        // The model is stored: a later failure resumes downstream of this task, so its
        // checkpoints (at the guest a score per row) only take space now.
        if let Some(save) = &save
            && let Err(e) = save.remove()
        {
            env.ctx
                .log(&format!("could not remove the task's checkpoints: {e}"));
        }
        Ok(vec![("model", Some(artifact))])
    }
    fn as_model(&self) -> Option<&dyn ModelKind> {
        Some(self)
    }
    fn resumable(&self) -> bool {
        M::CHECKPOINTS
    }
    fn disclosure(&self, facts: &TaskFacts<'_>) -> Option<TaskDisclosure> {
        Some((self.disclosure)(facts))
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
    fn prediction_disclosure(&self, facts: &TaskFacts<'_>) -> TaskDisclosure {
        (self.prediction_disclosure)(facts)
    }
}

/// The checkpoints of this task in the earlier job `job` named by [`RESUME_KEY`]: only of a
/// finished job on this node that the same initiator ran with the same parties in the same
/// roles (what a re-run's reuse requires), never of this job itself.
fn resume_source(env: &TaskEnv, job: &Value) -> Result<FileCheckpoints, TaskError> {
    let job = job
        .as_str()
        .ok_or_else(|| TaskError::shared(format!("'{RESUME_KEY}' must be a job id")))?;
    ferry_store::validate_job_id(job).map_err(|e| TaskError::shared(e.to_string()))?;
    let refuse = |why: String| TaskError::shared(format!("cannot resume from job {job}: {why}"));
    if job == env.job_id {
        return Err(refuse("it is this job".into()));
    }
    let old = env
        .store
        .job(job)
        .map_err(|_| refuse("no such job on this node".into()))?;
    if old.initiator != env.initiator {
        return Err(refuse(format!(
            "it was started by '{}', not by '{}'",
            old.initiator, env.initiator
        )));
    }
    if !old.status.is_terminal() {
        return Err(refuse("it has not finished".into()));
    }
    let parties = |spec_json: &str| -> Result<Vec<(String, Role)>, TaskError> {
        let spec = crate::dsl::JobSpec::parse(spec_json).map_err(|e| refuse(e.to_string()))?;
        let roster = spec.roster().map_err(|e| refuse(e.to_string()))?;
        let mut v: Vec<(String, Role)> =
            roster.parties().map(|(p, r)| (p.to_string(), r)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    };
    let this = env.store.job(env.job_id)?;
    if parties(&old.spec_json)? != parties(&this.spec_json)? {
        return Err(refuse("it had other parties or roles".into()));
    }
    // The work directory of a job is `jobs/<id>` (`Node::job_dir`); ids are one path
    // component, checked above.
    let jobs = env
        .work_dir
        .parent()
        .ok_or_else(|| TaskError::new("the job's work directory has no parent"))?;
    env.ctx.log(&format!(
        "resuming task '{}' from the checkpoints of job {job}",
        env.task.name
    ));
    Ok(FileCheckpoints::of_task(&jobs.join(job), &env.task.name))
}

/// Distinct values among `labels` (bounded work: labels are already validated numbers).
fn distinct_values(labels: &[f64]) -> usize {
    let mut v: Vec<u64> = labels.iter().map(|x| x.to_bits()).collect();
    v.sort_unstable();
    v.dedup();
    v.len()
}

#[cfg(test)]
mod tests {
    use super::super::disclosure::testing::{facts_of, lines};
    use super::*;

    fn spec(component: &str, parties: &str, params: &str) -> String {
        format!(
            "parties: {parties}\ntasks:\n  - {{name: fit, component: {component}, inputs: {{train: fit}}, params: {params}}}\n"
        )
    }

    #[test]
    fn secureboost_hosts_learn_the_instance_space_and_the_guest_per_bin_sums() {
        let s = spec(
            "hetero_secureboost",
            "{guest: bank, hosts: [telco, insurer], arbiter: hub}",
            "{he: {key_bits: 1024}}",
        );
        facts_of(&s, "fit", |f| {
            let d = SECUREBOOST.disclosure(f).unwrap();
            assert_eq!(d.protocols, ["SecureBoost"]);
            let l = lines(&d);
            assert_eq!(l.len(), 4, "{l:?}");
            assert!(
                l.iter()
                    .any(|x| x.starts_with("telco → bank: per-bin sums"))
            );
            assert!(
                l.iter()
                    .any(|x| x.starts_with("bank → insurer: the instance space"))
            );
            assert!(
                !l.iter().any(|x| x.contains("hub")),
                "the arbiter sits it out: {l:?}"
            );
            assert!(d.settings[0].starts_with("keys: paillier-1024 generated by the guest"));
        });
    }

    #[test]
    fn hetero_lr_states_the_mode_the_roster_and_parameters_give() {
        let with = spec(
            "hetero_lr",
            "{guest: bank, hosts: [telco], arbiter: hub}",
            "{he: {key_bits: 1024}}",
        );
        facts_of(&with, "fit", |f| {
            let d = HETERO_LR.disclosure(f).unwrap();
            assert!(
                d.settings[0].starts_with("mode: with the arbiter hub"),
                "{:?}",
                d.settings
            );
            let l = lines(&d);
            assert!(l.iter().any(|x| x.starts_with("bank → hub: the row count")));
            assert!(
                l.iter()
                    .any(|x| x.starts_with("telco → hub:") && x.contains("80 bits"))
            );
        });
        let without = spec(
            "hetero_lr",
            "{guest: bank, hosts: [telco], arbiter: hub}",
            "{mode: without_third_party}",
        );
        facts_of(&without, "fit", |f| {
            let d = HETERO_LR.disclosure(f).unwrap();
            assert!(d.settings[0].starts_with("mode: without a third party"));
            let l = lines(&d);
            assert!(!l.iter().any(|x| x.contains("hub")), "{l:?}");
            assert!(
                l.iter()
                    .any(|x| x.starts_with("telco → bank: through the guest's own"))
            );
            assert!(!l.iter().any(|x| x.contains("validation rows")));
        });
    }

    #[test]
    fn prediction_follows_the_model_kind() {
        let s = "parties: {guest: bank, hosts: [telco]}\ntasks:\n  - {name: score, component: predict, params: {model: m}}\n";
        let predict = super::super::find("predict").unwrap();
        for (kind, expected) in [
            (
                Some("hetero_secureboost"),
                Some("telco → bank: for every scored row"),
            ),
            (Some("hetero_lr"), Some("telco → bank: its partial score")),
            (Some("fedavg"), None),
            (None, None),
        ] {
            let spec = crate::dsl::JobSpec::parse(s).unwrap();
            let roster = spec.roster().unwrap();
            let task = spec.task("score").unwrap();
            let mut facts = TaskFacts::from_spec(&spec, task, &roster);
            facts.model_kind = kind.map(str::to_string);
            let d = predict.disclosure(&facts).unwrap();
            let l = lines(&d);
            match expected {
                Some(prefix) => assert!(l.iter().any(|x| x.starts_with(prefix)), "{kind:?}: {l:?}"),
                None => assert!(l.is_empty(), "{kind:?}: {l:?}"),
            }
            // A FedAvg model scores locally; an unknown kind still names the prediction row.
            assert_eq!(d.is_local(), kind == Some("fedavg"), "{kind:?}");
        }
    }
}
