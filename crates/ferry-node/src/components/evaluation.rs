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
            let roc = metrics::roc_curve(&scores, y)?;
            let table = metrics::score_bin_table(&scores, y, params.score_bins)?;
            let lift = metrics::lift(&scores, y, params.lift_fraction)?;
            let curves = plot_curves(&scores, y, &roc);
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
                "roc": curves.roc,
                "roc_exact": curves.roc_exact,
                "ks_curve": curves.ks_curve,
                "lift_curve": curves.lift_curve,
                "score_distribution": curves.score_distribution,
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

/// Most ROC/KS points kept for plotting. Below it the plotted ROC is the full curve with only
/// collinear points left out, so its trapezoid area is the reported AUC; above it (very many
/// rows with mixed labels) it is thinned by rank and `roc_exact` says so.
const MAX_CURVE_POINTS: usize = 2000;
/// Points of the cumulative lift/gains curve: one per 5 % of rows, the usual gains chart.
const LIFT_CURVE_POINTS: usize = 20;
/// Equal-width score bins of the score distribution (histogram by label).
const SCORE_HISTOGRAM_BINS: usize = 20;

/// What the console plots for a binary evaluation, computed from the same scores and labels as
/// the headline figures so the plots and the figures agree.
struct PlotCurves {
    roc: Value,
    roc_exact: bool,
    ks_curve: Value,
    lift_curve: Value,
    score_distribution: Value,
}

fn plot_curves(scores: &[f64], labels: &[f64], roc: &[metrics::RocPoint]) -> PlotCurves {
    let mut keep = roc_corners(roc);
    let roc_exact = keep.len() <= MAX_CURVE_POINTS;
    if !roc_exact {
        let step = keep.len().div_ceil(MAX_CURVE_POINTS);
        let last = keep.last().copied();
        keep = keep.into_iter().step_by(step).collect();
        // The KS statistic is read at the point of largest TPR - FPR; keep it on the plot.
        let ks_at = (0..roc.len())
            .max_by(|&a, &b| (roc[a].tpr - roc[a].fpr).total_cmp(&(roc[b].tpr - roc[b].fpr)));
        keep.extend(last.into_iter().chain(ks_at));
        keep.sort_unstable();
        keep.dedup();
    }
    // The first point's threshold is +inf, which JSON cannot carry: it is written as null.
    let point = |i: usize| {
        let p = &roc[i];
        let threshold = p.threshold.is_finite().then_some(p.threshold);
        json!({"fpr": p.fpr, "tpr": p.tpr, "threshold": threshold})
    };
    let curve: Vec<Value> = keep.iter().map(|&i| point(i)).collect();
    PlotCurves {
        roc: Value::Array(curve.clone()),
        roc_exact,
        ks_curve: Value::Array(curve),
        lift_curve: lift_curve(scores, labels),
        score_distribution: score_distribution(scores, labels),
    }
}

/// Indices of the ROC points where the curve changes direction (plus both ends). A point in
/// the middle of a horizontal or vertical run adds nothing to the drawing or the area.
fn roc_corners(roc: &[metrics::RocPoint]) -> Vec<usize> {
    let mut keep = Vec::new();
    for i in 0..roc.len() {
        let interior = i > 0 && i + 1 < roc.len();
        if interior {
            let (a, b, c) = (&roc[i - 1], &roc[i], &roc[i + 1]);
            let flat = a.tpr == b.tpr && b.tpr == c.tpr;
            let upright = a.fpr == b.fpr && b.fpr == c.fpr;
            if flat || upright {
                continue;
            }
        }
        keep.push(i);
    }
    keep
}

/// Cumulative lift and gains at every 1/[`LIFT_CURVE_POINTS`] of rows, highest scores first.
/// Rows are ranked exactly as [`metrics::lift`] ranks them (stable sort, descending), so the
/// curve at the job's `lift_fraction` is the headline lift when that fraction is on the grid.
fn lift_curve(scores: &[f64], labels: &[f64]) -> Value {
    let n = scores.len();
    let positives: f64 = labels.iter().sum();
    if n == 0 || positives == 0.0 {
        return Value::Array(Vec::new());
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let base_rate = positives / n as f64;
    let points = (1..=LIFT_CURVE_POINTS)
        .map(|k| {
            let fraction = k as f64 / LIFT_CURVE_POINTS as f64;
            let top = ((n as f64 * fraction).ceil() as usize).clamp(1, n);
            let hits: f64 = order[..top].iter().map(|&i| labels[i]).sum();
            json!({
                "fraction": fraction,
                "rows": top,
                "lift": hits / top as f64 / base_rate,
                "gain": hits / positives,
            })
        })
        .collect();
    Value::Array(points)
}

/// Histogram of the scores by label: [`SCORE_HISTOGRAM_BINS`] equal-width bins from the lowest
/// to the highest score (the last bin includes the highest).
fn score_distribution(scores: &[f64], labels: &[f64]) -> Value {
    let finite = || scores.iter().copied().filter(|s| s.is_finite());
    let (Some(lo), Some(hi)) = (
        finite().min_by(f64::total_cmp),
        finite().max_by(f64::total_cmp),
    ) else {
        return json!({"edges": [], "positive": [], "negative": []});
    };
    let bins = if hi > lo { SCORE_HISTOGRAM_BINS } else { 1 };
    let width = (hi - lo) / bins as f64;
    let mut positive = vec![0u64; bins];
    let mut negative = vec![0u64; bins];
    for (s, l) in scores.iter().zip(labels) {
        if !s.is_finite() {
            continue;
        }
        let b = if width > 0.0 {
            (((s - lo) / width) as usize).min(bins - 1)
        } else {
            0
        };
        if *l == 1.0 {
            positive[b] += 1;
        } else {
            negative[b] += 1;
        }
    }
    let edges: Vec<f64> = (0..=bins)
        .map(|i| if i == bins { hi } else { lo + width * i as f64 })
        .collect();
    json!({"edges": edges, "positive": positive, "negative": negative})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores of a middling model: the label is 1 with a probability rising with the score,
    /// from a fixed linear congruential generator (no test depends on a random seed).
    fn scored(n: usize, distinct: bool) -> (Vec<f64>, Vec<f64>) {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut scores = Vec::with_capacity(n);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let s = next();
            // Coarse scores make ties (tied groups give diagonal ROC segments).
            let s = if distinct {
                s
            } else {
                (s * 40.0).floor() / 40.0
            };
            let y = if next() < 0.15 + 0.7 * s { 1.0 } else { 0.0 };
            scores.push(s);
            labels.push(y);
        }
        (scores, labels)
    }

    fn area(points: &[Value]) -> f64 {
        points
            .windows(2)
            .map(|w| {
                let f = |p: &Value, k: &str| p[k].as_f64().unwrap();
                (f(&w[1], "fpr") - f(&w[0], "fpr")) * (f(&w[1], "tpr") + f(&w[0], "tpr")) / 2.0
            })
            .sum()
    }

    #[test]
    fn the_plotted_roc_has_the_reported_auc_and_the_ks_point() {
        for (n, distinct) in [(12, true), (700, true), (3000, false)] {
            let (scores, labels) = scored(n, distinct);
            let roc = metrics::roc_curve(&scores, &labels).unwrap();
            let report = metrics::BinaryReport::compute_at(&scores, &labels, 0.5).unwrap();
            let curves = plot_curves(&scores, &labels, &roc);
            assert!(curves.roc_exact, "{n} rows fit the plot unthinned");
            let points = curves.roc.as_array().unwrap();
            assert!(points.len() <= roc.len());
            assert!(
                (area(points) - report.auc).abs() < 1e-9,
                "{n} rows: plotted area {} vs AUC {}",
                area(points),
                report.auc
            );
            // Starts at (0, 0), ends at (1, 1), never goes back.
            assert_eq!(
                (points[0]["fpr"].as_f64(), points[0]["tpr"].as_f64()),
                (Some(0.0), Some(0.0))
            );
            let last = points.last().unwrap();
            assert_eq!(
                (last["fpr"].as_f64(), last["tpr"].as_f64()),
                (Some(1.0), Some(1.0))
            );
            assert!(
                points
                    .windows(2)
                    .all(|w| w[1]["fpr"].as_f64() >= w[0]["fpr"].as_f64()
                        && w[1]["tpr"].as_f64() >= w[0]["tpr"].as_f64())
            );
            let ks = curves
                .ks_curve
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["tpr"].as_f64().unwrap() - p["fpr"].as_f64().unwrap())
                .fold(f64::MIN, f64::max);
            assert!(
                (ks - report.ks).abs() < 1e-12,
                "{n} rows: KS {ks} vs {}",
                report.ks
            );
        }
    }

    #[test]
    fn a_thinned_roc_says_so_and_keeps_the_ks_point() {
        let (scores, labels) = scored(40_000, true);
        let roc = metrics::roc_curve(&scores, &labels).unwrap();
        let report = metrics::BinaryReport::compute_at(&scores, &labels, 0.5).unwrap();
        let curves = plot_curves(&scores, &labels, &roc);
        assert!(!curves.roc_exact);
        let points = curves.roc.as_array().unwrap();
        assert!(points.len() <= MAX_CURVE_POINTS + 2, "{}", points.len());
        // Close to the AUC all the same (the curve is drawn, not integrated, from here).
        assert!((area(points) - report.auc).abs() < 1e-3);
        let ks = points
            .iter()
            .map(|p| p["tpr"].as_f64().unwrap() - p["fpr"].as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert!((ks - report.ks).abs() < 1e-12);
    }

    #[test]
    fn the_lift_curve_matches_the_headline_lift_and_ends_at_one() {
        let (scores, labels) = scored(997, true);
        let curve = lift_curve(&scores, &labels);
        let points = curve.as_array().unwrap();
        assert_eq!(points.len(), LIFT_CURVE_POINTS);
        for p in points {
            let fraction = p["fraction"].as_f64().unwrap();
            let headline = metrics::lift(&scores, &labels, fraction).unwrap();
            assert!(
                (p["lift"].as_f64().unwrap() - headline).abs() < 1e-12,
                "at {fraction}"
            );
        }
        let last = points.last().unwrap();
        assert_eq!(last["rows"].as_u64(), Some(997));
        assert!((last["lift"].as_f64().unwrap() - 1.0).abs() < 1e-12);
        assert!((last["gain"].as_f64().unwrap() - 1.0).abs() < 1e-12);
        // A model better than chance captures more than its share of positives early.
        assert!(points[1]["gain"].as_f64().unwrap() > 0.1);
    }

    #[test]
    fn the_score_distribution_counts_every_row_by_label() {
        let (scores, labels) = scored(1234, false);
        let d = score_distribution(&scores, &labels);
        let sum = |k: &str| {
            d[k].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .sum::<u64>()
        };
        let positives = labels.iter().filter(|&&l| l == 1.0).count() as u64;
        assert_eq!(sum("positive"), positives);
        assert_eq!(sum("negative"), 1234 - positives);
        let edges = d["edges"].as_array().unwrap();
        assert_eq!(edges.len(), SCORE_HISTOGRAM_BINS + 1);
        let lo = scores.iter().copied().fold(f64::MAX, f64::min);
        let hi = scores.iter().copied().fold(f64::MIN, f64::max);
        assert_eq!(edges[0].as_f64(), Some(lo));
        assert_eq!(edges[SCORE_HISTOGRAM_BINS].as_f64(), Some(hi));
        // One score for every row: a single bin holding everything.
        let flat = score_distribution(&[0.3; 5], &[1.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!(flat["positive"], json!([2]));
        assert_eq!(flat["negative"], json!([3]));
    }
}
