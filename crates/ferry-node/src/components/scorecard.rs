//! `scorecard`: turns a hetero logistic regression trained on WOE features into points per
//! bin (base score, points to double the odds, base odds), scores rows, and reports the score
//! distribution.
//!
//! Each party builds the points of its own features from its own part of the model and its
//! own bins, and keeps them. To score the aligned rows, each host sends the guest one partial
//! score per row (its features' points summed) — the same disclosure as hetero LR prediction,
//! where a host sends its share of the logit; the guest adds its base points and its own.

use super::disclosure::protocol;
use super::feature_binning::{load_binning, read_table};
use super::{
    Artifact, ArtifactKind, Component, Outputs, Params, Slot, TaskEnv, TaskError, parse_struct,
    schema_of,
};
use super::{TaskDisclosure, TaskFacts};
use ferry_context::Role;
use ferry_data::{Dataset, LabelKind};
use ferry_feature::scorecard::{
    PartyScorecard, ScorecardFeature, ScorecardParams, score_distribution, total_scores,
};
use ferry_feature::transform::WoeColumn;
use ferry_linear::ModelPart;
use ferry_ml::FederatedModel;
use serde_json::{Value, json};

pub struct Scorecard;

const PARTIAL_TAG: &str = "scorecard/partial";

impl Component for Scorecard {
    fn name(&self) -> &'static str {
        "scorecard"
    }
    fn summary(&self) -> &'static str {
        "Points per bin from a hetero LR on WOE features (base score, PDO, base odds); scores rows and reports the score distribution."
    }
    fn inputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[
            Slot::required("model", ArtifactKind::Model),
            Slot::required("binning", ArtifactKind::Model),
            Slot::required("data", ArtifactKind::Dataset),
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
        schema_of::<ScorecardParams>(&[])
    }
    fn validate(&self, params: &Params, _role: Role) -> Result<(), String> {
        parse_struct::<ScorecardParams>(params, &[])?
            .validate()
            .map_err(|e| e.to_string())
    }
    /// SECURITY.md's scorecard row: each host's partial scores go to the guest.
    fn disclosure(&self, facts: &TaskFacts<'_>) -> Option<TaskDisclosure> {
        let mut d = TaskDisclosure::protocol(protocol::SCORECARD);
        let guest = facts.guest()?;
        for host in facts.hosts() {
            d.reveal(
                &host,
                &guest,
                "one partial score per aligned row (the sum of its features' points), the same \
                 as its share of the logit in hetero LR prediction",
            );
        }
        Some(d)
    }
    fn run(&self, env: &TaskEnv) -> Result<Outputs, TaskError> {
        let params: ScorecardParams = parse_struct(&env.params, &[]).map_err(TaskError::new)?;
        let role = env.role();
        if role == Role::Arbiter {
            return Ok(vec![("data", None), ("report", None)]);
        }
        let (model_name, version) = env
            .input_model("model")?
            .ok_or_else(|| TaskError::shared("no model part at this party"))?;
        let (_, text) = env.load_model_of_kind(&model_name, Some(version), ModelPart::KIND)?;
        let lr = ModelPart::from_json(&text)?;
        let binning = load_binning(env, "binning")?
            .ok_or_else(|| TaskError::shared("no binning at this party"))?;
        let mut features = Vec::with_capacity(lr.feature_names.len());
        let mut binnings = Vec::with_capacity(lr.feature_names.len());
        for (name, weight) in lr.feature_names.iter().zip(&lr.weights) {
            let column = binning
                .features
                .iter()
                .find(|c| &c.binning.feature == name)
                .ok_or_else(|| {
                    TaskError::new(format!(
                        "the model uses feature '{name}', which the binning does not have; \
                         train the model on WOE features of the same binning"
                    ))
                })?;
            let woe = column.woe.clone().ok_or_else(|| {
                TaskError::new(format!(
                    "feature '{name}' has no WOE at this party (the guest did not send it: \
                     send_woe_to_host)"
                ))
            })?;
            features.push(ScorecardFeature::from_woe_column(
                &WoeColumn {
                    name: name.clone(),
                    binning: column.binning.clone(),
                    woe,
                },
                *weight,
            ));
            binnings.push(column.binning.clone());
        }
        let card = PartyScorecard::build(&params, role, lr.intercept, &features)
            .map_err(|e| TaskError::new(e.to_string()))?;
        let name = env
            .input_dataset("data")?
            .ok_or_else(|| TaskError::shared("no data to score at this party"))?;
        let table = read_table(env, &name)?;
        let partial = card
            .score_table(&table, &binnings)
            .map_err(|e| TaskError::new(e.to_string()))?;
        let ctx = env.ctx;
        if role == Role::Host {
            let guest = ctx
                .roster()
                .guest()
                .ok_or_else(|| TaskError::shared("the job has no guest"))?;
            ctx.send(&guest, PARTIAL_TAG, &partial)?;
            return Ok(vec![
                ("data", None),
                (
                    "report",
                    Some(Artifact::Report {
                        report: json!({"card": card}),
                    }),
                ),
            ]);
        }
        let mut parts = vec![partial];
        for host in ctx.hosts() {
            let p: Vec<f64> = ctx.recv(&host, PARTIAL_TAG)?;
            if p.len() != table.n_rows() {
                return Err(TaskError::shared(format!(
                    "'{host}' sent {} partial scores for {} aligned rows; score the same \
                     aligned data (a PSI output) at every party",
                    p.len(),
                    table.n_rows()
                )));
            }
            if let Some(bad) = p.iter().find(|x| !x.is_finite()) {
                return Err(TaskError::shared(format!(
                    "'{host}' sent a partial score that is not a finite number ({bad})"
                )));
            }
            parts.push(p);
        }
        let scores = total_scores(&parts).map_err(|e| TaskError::new(e.to_string()))?;
        let distribution = score_distribution(&scores, table.labels.as_deref(), params.pdo)
            .map_err(|e| TaskError::new(e.to_string()))?;
        // The probability of the positive (bad) class the points stand for, next to the
        // points, so that evaluation scores the card as it scores any model.
        let mut columns = Vec::with_capacity(scores.len() * 2);
        for s in &scores {
            let logit = (params.offset() - s) / params.factor();
            columns.push(1.0 / (1.0 + (-logit).exp()));
            columns.push(*s);
        }
        let out = Dataset::from_parts(
            table.ids.clone(),
            vec!["probability".into(), "points".into()],
            columns,
            table.label_name.clone(),
            table.labels.clone(),
        )
        .map_err(TaskError::new)?;
        std::fs::create_dir_all(&env.work_dir)?;
        let path = env.work_dir.join(format!("{}.csv", env.task.name));
        out.write_csv(env.store.source(&path))?;
        let rec = env.store.dataset(&name)?;
        let derived = env.register(
            path,
            vec!["id".into()],
            out.label_name.clone(),
            rec.label_kind.unwrap_or(LabelKind::Binary),
            vec![name, format!("{model_name} v{version}")],
            "scorecard points",
        )?;
        env.ctx.log(&format!(
            "scored {} rows: mean {:.1} points",
            out.n_rows(),
            distribution.mean
        ));
        Ok(vec![
            ("data", Some(Artifact::dataset(derived))),
            (
                "report",
                Some(Artifact::Report {
                    report: json!({"card": card, "distribution": distribution, "params": params}),
                }),
            ),
        ])
    }
}
