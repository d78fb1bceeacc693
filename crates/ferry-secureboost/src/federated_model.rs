//! SecureBoost as a [`FederatedModel`]: the interface the node's training component,
//! prediction path, model store and benchmarks use for every algorithm.

use crate::error::SecureBoostError;
use crate::model::{ModelError, ModelPart};
use crate::params::{Objective, SecureBoostParams};
use crate::report::TrainReport;
use ferry_context::{Context, Role};
use ferry_crypto::HeSettings;
use ferry_data::{Dataset, LabelKind};
use ferry_ml::{Checkpoints, FederatedModel, Fitted, LabelFacts};
use serde_json::json;

impl FederatedModel for ModelPart {
    const KIND: &'static str = "hetero_secureboost";
    type Params = SecureBoostParams;
    type Error = SecureBoostError;

    fn validate(params: &SecureBoostParams) -> Result<(), String> {
        params.validate().map_err(|e| e.to_string())
    }

    fn he_settings(params: &mut SecureBoostParams) -> Option<&mut HeSettings> {
        Some(&mut params.he)
    }

    /// Without an `objective` in the job: a continuous label trains squared error, a
    /// multi-class label softmax over its distinct values, a binary label logistic loss.
    /// Only the guest has labels, and only the guest uses the objective (hosts see neither
    /// gradients nor the number of outputs), so hosts keep the default.
    fn follow_labels(
        params: &mut SecureBoostParams,
        set: &serde_json::Map<String, serde_json::Value>,
        labels: LabelFacts,
    ) {
        if set.contains_key("objective") {
            return;
        }
        params.objective = match labels.kind {
            LabelKind::Binary => Objective::BinaryLogistic,
            LabelKind::Continuous => Objective::SquaredError,
            // A label with too few or too many classes is refused by `validate` with the
            // number in the message.
            LabelKind::Multiclass => Objective::MultiSoftmax {
                num_class: labels.distinct,
            },
        };
    }

    fn fit(
        ctx: &Context,
        train: Option<&Dataset>,
        params: &SecureBoostParams,
        validation: Option<&Dataset>,
    ) -> Result<Fitted<Self>, SecureBoostError> {
        Self::fit_with_checkpoints(ctx, train, params, validation, Checkpoints::NONE)
    }

    const CHECKPOINTS: bool = true;

    fn fit_with_checkpoints(
        ctx: &Context,
        train: Option<&Dataset>,
        params: &SecureBoostParams,
        validation: Option<&Dataset>,
        checkpoints: Checkpoints<'_>,
    ) -> Result<Fitted<Self>, SecureBoostError> {
        let train = match (ctx.role(), train) {
            (Role::Arbiter, _) => return Err(SecureBoostError::UnsupportedRole(Role::Arbiter)),
            (_, Some(data)) => data,
            (role, None) => {
                return Err(SecureBoostError::Data(format!(
                    "the {role} must bring its training data"
                )));
            }
        };
        let (model, report) =
            crate::train_with_checkpoints(ctx, train, params, validation, checkpoints)?;
        let summary = summary(&model, &report);
        let report = serde_json::to_value(&report).unwrap_or(serde_json::Value::Null);
        Ok(Fitted {
            model,
            summary,
            report,
        })
    }

    fn predict(
        &self,
        ctx: &Context,
        data: Option<&Dataset>,
    ) -> Result<Option<Vec<f64>>, SecureBoostError> {
        let data = data.ok_or_else(|| {
            SecureBoostError::Data(format!(
                "the {} must bring the rows to score (guest and hosts take part in prediction)",
                ctx.role()
            ))
        })?;
        Ok(crate::predict(ctx, self, data)?.map(|p| p.outputs))
    }

    fn to_bytes(&self) -> Result<Vec<u8>, SecureBoostError> {
        Ok(self.to_json().into_bytes())
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, SecureBoostError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| ModelError::NotAModel(format!("not UTF-8 text: {e}")))?;
        Ok(ModelPart::from_json(text)?)
    }
}

/// What is kept with a trained part. The guest's metrics are those of the model it keeps (the
/// best round under early stopping, else the last).
fn summary(model: &ModelPart, report: &TrainReport) -> serde_json::Value {
    match model {
        ModelPart::Guest(m) => {
            let kept = m.trees.len();
            let last = kept.checked_sub(1).and_then(|t| report.trees.get(t));
            json!({
                "metric": report.metric,
                "train_metric": last.and_then(|t| t.train_metric),
                "validation_metric": last.and_then(|t| t.validation_metric),
                "trees": kept,
                "trees_built": report.trees.len(),
                "best_round": report.best_round,
                "seconds": report.total_seconds,
                "feature_importance": m.feature_importance(),
            })
        }
        ModelPart::Host(m) => json!({
            "splits": m.splits.len(),
            "seconds": report.total_seconds,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_context::{LocalCluster, Roster};
    use ferry_crypto::SchemeKind;

    fn facts(kind: LabelKind, distinct: usize) -> LabelFacts {
        LabelFacts { kind, distinct }
    }

    fn set(json: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        json.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_objective_follows_the_label_only_when_the_job_left_it_out() {
        let follow = |spec: serde_json::Value, labels: LabelFacts| {
            let mut p: SecureBoostParams = serde_json::from_value(spec.clone()).unwrap();
            ModelPart::follow_labels(&mut p, &set(spec), labels);
            p.objective
        };
        let none = json!({"num_trees": 3});
        assert_eq!(
            follow(none.clone(), facts(LabelKind::Continuous, 500)),
            Objective::SquaredError
        );
        assert_eq!(
            follow(none.clone(), facts(LabelKind::Binary, 2)),
            Objective::BinaryLogistic
        );
        assert_eq!(
            follow(none.clone(), facts(LabelKind::Multiclass, 4)),
            Objective::MultiSoftmax { num_class: 4 }
        );
        // An explicit objective is the job's decision, even when the label looks different.
        let explicit = json!({"objective": {"kind": "binary_logistic"}});
        assert_eq!(
            follow(explicit, facts(LabelKind::Continuous, 500)),
            Objective::BinaryLogistic
        );
        let explicit = json!({"objective": {"kind": "multi_softmax", "num_class": 3}});
        assert_eq!(
            follow(explicit, facts(LabelKind::Multiclass, 7)),
            Objective::MultiSoftmax { num_class: 3 }
        );
        // A "multi-class" label with one value gives parameters that validation refuses.
        let mut p = SecureBoostParams::default();
        ModelPart::follow_labels(&mut p, &set(none), facts(LabelKind::Multiclass, 1));
        let e = <ModelPart as FederatedModel>::validate(&p).unwrap_err();
        assert!(e.contains("objective.num_class"), "{e}");
    }

    #[test]
    fn he_settings_are_the_params_he_field() {
        let mut p = SecureBoostParams::default();
        let he = ModelPart::he_settings(&mut p).expect("SecureBoost encrypts");
        *he = HeSettings::insecure_for_tests(SchemeKind::OkamotoUchiyama, 512);
        assert_eq!(p.he.key_bits, 512);
        assert!(<ModelPart as FederatedModel>::validate(&p).is_ok());
        p.he.allow_insecure_key_bits = false;
        let e = <ModelPart as FederatedModel>::validate(&p).unwrap_err();
        assert!(e.contains("he.key_bits"), "{e}");
    }

    /// Regression rows: the guest holds `a` and the label, the host `b`.
    fn regression_data(n: usize) -> (Dataset, Dataset) {
        let (mut ga, mut hb, mut y) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let a = ((i * 37) % 101) as f64 / 101.0;
            let b = ((i * 53) % 97) as f64 / 97.0;
            ga.push(a);
            hb.push(b);
            y.push(3.0 * a + 10.0 * b * b + 0.1 * ((i % 7) as f64));
        }
        let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
        (
            Dataset::from_parts(ids.clone(), vec!["a".into()], ga, Some("y".into()), Some(y))
                .unwrap(),
            Dataset::from_parts(ids, vec!["b".into()], hb, None, None).unwrap(),
        )
    }

    /// The guest's continuous label turns its objective into squared error; the host keeps the
    /// default binary objective (it has no label) and the two train and predict together.
    #[test]
    fn a_host_with_the_default_objective_trains_with_a_regression_guest() {
        let (guest_data, host_data) = regression_data(150);
        let base = SecureBoostParams {
            num_trees: 4,
            max_depth: 3,
            he: HeSettings::insecure_for_tests(SchemeKind::Paillier, 512),
            ..SecureBoostParams::default()
        };
        let mut guest_params = base.clone();
        ModelPart::follow_labels(
            &mut guest_params,
            &set(json!({"num_trees": 4, "max_depth": 3})),
            facts(LabelKind::Continuous, 150),
        );
        assert_eq!(guest_params.objective, Objective::SquaredError);
        assert_eq!(base.objective, Objective::BinaryLogistic);
        let roster = Roster::of(&[("bank", Role::Guest), ("telco", Role::Host)]);
        let out = LocalCluster::new(roster).run(|ctx| {
            let (data, params) = match ctx.role() {
                Role::Guest => (&guest_data, &guest_params),
                _ => (&host_data, &base),
            };
            let fitted = ModelPart::fit(&ctx, Some(data), params, None)?;
            let stored = ModelPart::from_bytes(&fitted.model.to_bytes()?)?;
            let scores = stored.predict(&ctx.sub("predict"), Some(data))?;
            Ok::<_, SecureBoostError>((stored, fitted.summary, scores))
        });
        let mut results = out.into_iter().map(|o| o.result.map_err(|e| e.to_string()));
        let (guest_model, summary, scores) = results.next().unwrap().unwrap();
        let (host_model, host_summary, host_scores) = results.next().unwrap().unwrap();
        let guest = guest_model.as_guest().expect("guest part");
        assert_eq!(guest.objective, Objective::SquaredError);
        assert_eq!(summary["metric"], "rmse");
        assert_eq!(summary["trees"], 4);
        let rmse = summary["train_metric"].as_f64().expect("train rmse");
        let labels = guest_data.labels().unwrap();
        let mean = labels.iter().sum::<f64>() / labels.len() as f64;
        let spread =
            (labels.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / labels.len() as f64).sqrt();
        assert!(rmse < 0.5 * spread, "rmse {rmse} vs label spread {spread}");
        // Predictions are values on the label's scale, with the training RMSE.
        let scores = scores.expect("the guest learns the scores");
        assert_eq!(scores.len(), labels.len());
        let predicted_rmse = (scores
            .iter()
            .zip(labels)
            .map(|(p, y)| (p - y).powi(2))
            .sum::<f64>()
            / labels.len() as f64)
            .sqrt();
        assert!(
            (predicted_rmse - rmse).abs() < 1e-9,
            "{predicted_rmse} vs {rmse}"
        );
        // The host's feature carries most of the signal: it was split on, under its
        // anonymous name.
        let importance = summary["feature_importance"].as_array().unwrap();
        assert!(
            importance
                .iter()
                .any(|f| f["feature"] == "telco:feature_0" && f["splits"].as_u64() > Some(0)),
            "{importance:?}"
        );
        assert!(!summary.to_string().contains("\"b\""), "{summary}");
        assert!(host_model.as_host().is_some_and(|h| !h.splits.is_empty()));
        assert!(host_summary["splits"].as_u64() > Some(0));
        assert_eq!(host_scores, None);
    }
}
