//! `evaluation`: the label holder scores predictions against its labels; other parties skip.
//! The kind (binary, regression, multi-class) follows the label unless the job sets it.

use super::{Artifact, ArtifactKind, Component, Outputs, Params, Slot, TaskEnv, TaskError};
use super::{parse_struct, schema_of};
use ferry_context::Role;
use ferry_data::LabelKind;
use ferry_ml::metrics;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub struct Evaluation;

/// What the predictions are scored as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvalKind {
    Binary,
    Regression,
    Multiclass,
}

impl EvalKind {
    fn name(self) -> &'static str {
        match self {
            EvalKind::Binary => "binary",
            EvalKind::Regression => "regression",
            EvalKind::Multiclass => "multiclass",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationParams {
    /// Default: from the label's kind (binary 0/1, multi-class, continuous → regression).
    pub kind: Option<EvalKind>,
    /// Binary only: scores at or above it count as positive (default 0.5).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub threshold: Option<f64>,
    /// Binary only: groups of the KS (score-bin) table; 10 gives deciles.
    #[schemars(range(min = 2, max = 100))]
    pub score_bins: usize,
    /// Binary only: the share of highest-scored rows the lift is reported for.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub lift_fraction: f64,
}

impl Default for EvaluationParams {
    fn default() -> Self {
        EvaluationParams {
            kind: None,
            threshold: None,
            score_bins: metrics::DEFAULT_SCORE_BINS,
            lift_fraction: DEFAULT_LIFT_FRACTION,
        }
    }
}

/// Lift is reported for the top 10 % of scores unless told otherwise (the usual marketing
/// cut).
const DEFAULT_LIFT_FRACTION: f64 = 0.1;

impl EvaluationParams {
    fn check(&self) -> Result<(), String> {
        if let Some(t) = self.threshold
            && !(0.0..=1.0).contains(&t)
        {
            return Err(format!(
                "'threshold' must be a number between 0 and 1, got {t}"
            ));
        }
        if !(2..=100).contains(&self.score_bins) {
            return Err(format!(
                "'score_bins' must be between 2 and 100, got {}",
                self.score_bins
            ));
        }
        if !(self.lift_fraction > 0.0 && self.lift_fraction <= 1.0) {
            return Err(format!(
                "'lift_fraction' must be in (0, 1], got {}",
                self.lift_fraction
            ));
        }
        Ok(())
    }
}

impl Component for Evaluation {
    fn name(&self) -> &'static str {
        "evaluation"
    }
    fn summary(&self) -> &'static str {
        "Scores predictions against the label holder's labels: AUC, KS table, F1, lift; RMSE and R²; accuracy."
    }
    fn inputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("data", ArtifactKind::Dataset)];
        SLOTS
    }
    fn outputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("metrics", ArtifactKind::Metrics)];
        SLOTS
    }
    fn params_schema(&self) -> Value {
        schema_of::<EvaluationParams>(&[])
    }
    fn validate(&self, params: &Params, _role: Role) -> Result<(), String> {
        parse_struct::<EvaluationParams>(params, &[])?.check()
    }
    /// Runs on each party's own data; nothing crosses the wire.
    fn disclosure(&self, _facts: &super::TaskFacts<'_>) -> Option<super::TaskDisclosure> {
        Some(super::TaskDisclosure::local())
    }
    fn run(&self, env: &TaskEnv) -> Result<Outputs, TaskError> {
        let params: EvaluationParams = parse_struct(&env.params, &[]).map_err(TaskError::new)?;
        Ok(vec![("metrics", evaluate(env, &params)?)])
    }
}

fn evaluate(env: &TaskEnv, params: &EvaluationParams) -> Result<Option<Artifact>, TaskError> {
    let Some(name) = env.input_dataset("data")? else {
        return Ok(None);
    };
    let rec = env.store.dataset(&name)?;
    if rec.label.is_none() {
        // Only the label holder evaluates.
        return Ok(None);
    }
    let d = env.load(&name, true)?;
    let Some(y) = d.labels() else {
        return Ok(None);
    };
    // Per-class scores are `score_0`, `score_1`, ... (predict's multi-class output).
    let per_class = d.feature_names.iter().any(|n| n == "score_0");
    let kind = params.kind.unwrap_or(match rec.label_kind {
        _ if per_class => EvalKind::Multiclass,
        Some(LabelKind::Binary) => EvalKind::Binary,
        Some(LabelKind::Multiclass) => EvalKind::Multiclass,
        Some(LabelKind::Continuous) | None => EvalKind::Regression,
    });
    let mut headline = BTreeMap::new();
    let details = match kind {
        EvalKind::Binary => {
            // A scorecard's output has points and the probability of the positive class;
            // the probability is what rises with the label.
            let column = ["probability", "score"]
                .iter()
                .find_map(|c| d.feature_names.iter().position(|n| n == c))
                .unwrap_or(0);
            let scores = d.column(column);
            let threshold = params.threshold.unwrap_or(metrics::DEFAULT_THRESHOLD);
            let report = metrics::BinaryReport::compute_at(&scores, y, threshold)?;
            let (_, ks_curve) = metrics::ks(&scores, y)?;
            let roc = metrics::roc_curve(&scores, y)?;
            let table = metrics::score_bin_table(&scores, y, params.score_bins)?;
            let lift = metrics::lift(&scores, y, params.lift_fraction)?;
            headline.extend([
                ("auc".to_string(), report.auc),
                ("ks".to_string(), report.ks),
                ("accuracy".to_string(), report.accuracy),
                ("f1".to_string(), report.f1),
                ("lift".to_string(), lift),
            ]);
            json!({
                "report": report,
                "threshold": threshold,
                "lift": {"fraction": params.lift_fraction, "lift": lift},
                "score_bins": table,
                "roc": thin(&roc),
                "ks_curve": thin(&ks_curve),
            })
        }
        EvalKind::Regression => {
            let report = metrics::RegressionReport::compute(&d.column(0), y)?;
            headline.extend([
                ("rmse".to_string(), report.rmse),
                ("mae".to_string(), report.mae),
                ("r2".to_string(), report.r2),
            ]);
            json!({ "report": report })
        }
        EvalKind::Multiclass => {
            let k = d.n_features();
            let acc = metrics::multiclass_accuracy(&d.features, k, y)?;
            headline.insert("accuracy".to_string(), acc);
            json!({ "report": {"accuracy": acc, "classes": k} })
        }
    };
    for (k, v) in &headline {
        env.ctx.metric(k, 0, *v);
    }
    let line: Vec<String> = headline
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect();
    env.ctx.log(&format!(
        "evaluation ({}): {}",
        kind.name(),
        line.join(", ")
    ));
    Ok(Some(Artifact::Metrics {
        kind: kind.name().to_string(),
        headline,
        details,
    }))
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
