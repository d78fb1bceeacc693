//! Hetero linear/logistic regression as a [`FederatedModel`]: the interface the node's
//! training component, prediction path, model store and benchmarks use for every algorithm.

use crate::error::LinearError;
use crate::model::ModelPart;
use crate::params::{LinearParams, Task};
use crate::train::Trained;
use ferry_context::{Context, Role};
use ferry_crypto::HeSettings;
use ferry_data::{Dataset, LabelKind};
use ferry_ml::{Checkpoints, FederatedModel, Fitted, LabelFacts};
use serde_json::json;

impl FederatedModel for ModelPart {
    const KIND: &'static str = "hetero_lr";
    type Params = LinearParams;
    type Error = LinearError;

    fn validate(params: &LinearParams) -> Result<(), String> {
        params.validate().map_err(|e| e.to_string())
    }

    fn he_settings(params: &mut LinearParams) -> Option<&mut HeSettings> {
        Some(&mut params.he)
    }

    /// Without a `task` in the job, a continuous label trains linear regression (binary and
    /// multi-class labels keep logistic regression; a multi-class label is then refused with
    /// the row). Hosts and the arbiter have no label and keep the default: they take the
    /// guest's task in the training handshake.
    fn follow_labels(
        params: &mut LinearParams,
        set: &serde_json::Map<String, serde_json::Value>,
        labels: LabelFacts,
    ) {
        if !set.contains_key("task") && labels.kind == LabelKind::Continuous {
            params.task = Task::Linear;
        }
    }

    fn fit(
        ctx: &Context,
        train: Option<&Dataset>,
        params: &LinearParams,
        validation: Option<&Dataset>,
    ) -> Result<Fitted<Self>, LinearError> {
        Self::fit_with_checkpoints(ctx, train, params, validation, Checkpoints::NONE)
    }

    const CHECKPOINTS: bool = true;

    fn fit_with_checkpoints(
        ctx: &Context,
        train: Option<&Dataset>,
        params: &LinearParams,
        validation: Option<&Dataset>,
        checkpoints: Checkpoints<'_>,
    ) -> Result<Fitted<Self>, LinearError> {
        let Trained { model, report } =
            crate::train::fit_with_checkpoints(ctx, train, params, validation, checkpoints)?;
        let summary = json!({
            "task": model.task.name(),
            "mode": report.mode,
            "epochs": report.epochs.len(),
            "final_epoch": report.epochs.last(),
            "model_epoch": report.model_epoch,
            "converged": report.converged,
            "stopped_early": report.stopped_early,
            "setup_seconds": report.setup_seconds,
            "seconds": report.total_seconds,
        });
        let report = serde_json::to_value(&report).unwrap_or(serde_json::Value::Null);
        Ok(Fitted {
            model,
            summary,
            report,
        })
    }

    /// The guest gets one score per row (a probability for logistic regression); hosts and
    /// the arbiter get `None`. The arbiter takes no part and passes no data.
    fn predict(
        &self,
        ctx: &Context,
        data: Option<&Dataset>,
    ) -> Result<Option<Vec<f64>>, LinearError> {
        match (data, ctx.role()) {
            (Some(data), _) => crate::predict::predict(ctx, self, data),
            (None, Role::Arbiter) if self.role == Role::Arbiter => Ok(None),
            (None, role) => Err(LinearError::Data(format!(
                "the {role} must bring the rows to score (only the arbiter passes none)"
            ))),
        }
    }

    fn to_bytes(&self) -> Result<Vec<u8>, LinearError> {
        Ok(self.to_json().into_bytes())
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, LinearError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| LinearError::Model(format!("not a hetero linear model part: {e}")))?;
        ModelPart::from_json(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_crypto::SchemeKind;

    fn follow(spec: serde_json::Value, kind: LabelKind) -> Task {
        let mut p: LinearParams = serde_json::from_value(spec.clone()).unwrap();
        let set = spec.as_object().cloned().unwrap_or_default();
        ModelPart::follow_labels(&mut p, &set, LabelFacts { kind, distinct: 2 });
        p.task
    }

    #[test]
    fn the_task_follows_a_continuous_label_only_when_the_job_left_it_out() {
        assert_eq!(follow(json!({}), LabelKind::Continuous), Task::Linear);
        assert_eq!(
            follow(json!({"max_epochs": 3}), LabelKind::Binary),
            Task::Logistic
        );
        assert_eq!(follow(json!({}), LabelKind::Multiclass), Task::Logistic);
        // Set explicitly, the task is the job's decision.
        assert_eq!(
            follow(json!({"task": "logistic"}), LabelKind::Continuous),
            Task::Logistic
        );
        assert_eq!(
            follow(json!({"task": "linear"}), LabelKind::Binary),
            Task::Linear
        );
    }

    #[test]
    fn he_settings_are_the_params_he_field_and_validation_names_it() {
        let mut p = LinearParams::default();
        *ModelPart::he_settings(&mut p).expect("hetero LR encrypts") =
            HeSettings::insecure_for_tests(SchemeKind::OkamotoUchiyama, 512);
        assert_eq!(p.he.scheme, SchemeKind::OkamotoUchiyama);
        assert!(<ModelPart as FederatedModel>::validate(&p).is_ok());
        p.he.allow_insecure_key_bits = false;
        let e = <ModelPart as FederatedModel>::validate(&p).unwrap_err();
        assert!(e.contains("he.key_bits"), "{e}");
    }
}
