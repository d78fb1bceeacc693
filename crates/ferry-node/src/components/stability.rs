//! `stability`: the population stability index (PSI) of each column between two datasets of
//! the same party, e.g. the training sample (`expected`) and this month's applicants or their
//! predictions (`actual`). Every party compares its own columns, locally: no message is sent.
//!
//! The columns compared are the `columns` parameter, or every numeric feature column the two
//! datasets share (so a prediction output's `score` is compared too). PSI, its conventional
//! reading and the bins come from [`ferry_ml::stability::psi`] (quantile bins of the
//! expected sample plus a missing-value bin).

use super::{Artifact, ArtifactKind, Component, Outputs, Params, Slot, TaskEnv, TaskError};
use super::{parse_struct, schema_of};
use ferry_context::Role;
use ferry_data::{Dataset, DatasetSpec, LabelKind};
use ferry_ml::stability::{DEFAULT_PSI_BINS, PSI_SIGNIFICANT_ABOVE, PsiReading, psi};
use ferry_store::{ColumnType, DatasetRecord};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub struct Stability;

/// Fewest and most quantile bins per column.
const MIN_BINS: usize = 2;
const MAX_BINS: usize = 100;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StabilityParams {
    /// Columns to compare; each must be a numeric column of both datasets. Default: every
    /// numeric feature column the two datasets share (a prediction output's `score`
    /// included).
    pub columns: Option<Vec<String>>,
    /// Quantile bins of the expected sample per column (a bin for missing values comes on
    /// top when either sample has any).
    #[schemars(range(min = 2, max = 100))]
    pub bins: usize,
}

impl Default for StabilityParams {
    fn default() -> Self {
        StabilityParams {
            columns: None,
            bins: DEFAULT_PSI_BINS,
        }
    }
}

impl StabilityParams {
    fn check(&self) -> Result<(), String> {
        if !(MIN_BINS..=MAX_BINS).contains(&self.bins) {
            return Err(format!(
                "'bins' must be between {MIN_BINS} and {MAX_BINS}, got {}",
                self.bins
            ));
        }
        if let Some(names) = &self.columns {
            if names.is_empty() {
                return Err(
                    "'columns' must be a non-empty list of column names (leave it out to \
                     compare every numeric column the datasets share)"
                        .into(),
                );
            }
            for (j, c) in names.iter().enumerate() {
                if c.trim().is_empty() {
                    return Err("'columns' holds an empty column name".into());
                }
                if names[..j].contains(c) {
                    return Err(format!("'columns' names column '{c}' twice"));
                }
            }
        }
        Ok(())
    }
}

impl Component for Stability {
    fn name(&self) -> &'static str {
        "stability"
    }
    fn summary(&self) -> &'static str {
        "Population stability index (PSI) of each column between an expected and an actual dataset, each party on its own columns, locally."
    }
    fn inputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[
            Slot::required("expected", ArtifactKind::Dataset),
            Slot::required("actual", ArtifactKind::Dataset),
        ];
        SLOTS
    }
    fn outputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("report", ArtifactKind::Report)];
        SLOTS
    }
    fn params_schema(&self) -> Value {
        schema_of::<StabilityParams>(&[])
    }
    fn validate(&self, params: &Params, _role: Role) -> Result<(), String> {
        parse_struct::<StabilityParams>(params, &[])?.check()
    }
    /// Runs on each party's own data; nothing crosses the wire.
    fn disclosure(&self, _facts: &super::TaskFacts<'_>) -> Option<super::TaskDisclosure> {
        Some(super::TaskDisclosure::local())
    }
    fn run(&self, env: &TaskEnv) -> Result<Outputs, TaskError> {
        let params: StabilityParams = parse_struct(&env.params, &[]).map_err(TaskError::new)?;
        params.check().map_err(TaskError::shared)?;
        Ok(vec![("report", stability(env, &params)?)])
    }
}

/// The feature columns of a dataset (neither id nor label), with whether they are numeric.
fn feature_columns(rec: &DatasetRecord) -> impl Iterator<Item = (&str, bool)> {
    rec.columns
        .iter()
        .filter(|c| !rec.id_columns.contains(&c.name) && rec.label.as_ref() != Some(&c.name))
        .map(|c| (c.name.as_str(), c.dtype != ColumnType::String))
}

/// Every numeric feature column of `expected` that `actual` has as a numeric feature column
/// too, in `expected`'s order.
fn shared_numeric_columns(expected: &DatasetRecord, actual: &DatasetRecord) -> Vec<String> {
    let in_actual: Vec<&str> = feature_columns(actual)
        .filter(|(_, numeric)| *numeric)
        .map(|(n, _)| n)
        .collect();
    feature_columns(expected)
        .filter(|(n, numeric)| *numeric && in_actual.contains(n))
        .map(|(n, _)| n.to_string())
        .collect()
}

/// Checks that `column` is a numeric feature column of `rec` (the `which` input).
fn check_column(rec: &DatasetRecord, which: &str, column: &str) -> Result<(), String> {
    let named = |what: &str| {
        format!(
            "column '{column}' of the {which} dataset '{}' {what}",
            rec.name
        )
    };
    if rec.id_columns.iter().any(|c| c == column) {
        return Err(named("is its id column"));
    }
    if rec.label.as_deref() == Some(column) {
        return Err(named("is its label column"));
    }
    match feature_columns(rec).find(|(n, _)| *n == column) {
        Some((_, true)) => Ok(()),
        Some((_, false)) => Err(named("holds text; PSI compares numbers")),
        None => {
            let numeric: Vec<&str> = feature_columns(rec)
                .filter(|(_, numeric)| *numeric)
                .map(|(n, _)| n)
                .collect();
            Err(format!(
                "the {which} dataset '{}' has no column '{column}' (its numeric feature \
                 columns: {})",
                rec.name,
                if numeric.is_empty() {
                    "none".to_string()
                } else {
                    numeric.join(", ")
                }
            ))
        }
    }
}

/// The named columns of a registered dataset (CSV), without its label.
fn read_columns(
    env: &TaskEnv,
    rec: &DatasetRecord,
    columns: &[String],
) -> Result<Dataset, TaskError> {
    env.require_csv(rec)?;
    let spec = DatasetSpec {
        id_columns: rec.id_columns.clone(),
        label: None,
        label_kind: LabelKind::Continuous,
        features: Some(columns.to_vec()),
        exclude: Vec::new(),
    };
    Ok(Dataset::read_csv(env.store.source(&rec.path), &spec)?)
}

fn stability(env: &TaskEnv, params: &StabilityParams) -> Result<Option<Artifact>, TaskError> {
    let (expected_name, actual_name) =
        match (env.input_dataset("expected")?, env.input_dataset("actual")?) {
            (None, None) => return Ok(None),
            (Some(e), Some(a)) => (e, a),
            (Some(_), None) | (None, Some(_)) => {
                return Err(TaskError::shared(
                    "this party has data on only one of the inputs 'expected' and 'actual'; \
                     PSI compares two datasets of the same party",
                ));
            }
        };
    let expected_rec = env.store.dataset(&expected_name)?;
    let actual_rec = env.store.dataset(&actual_name)?;
    let columns = match &params.columns {
        Some(names) => {
            for c in names {
                check_column(&expected_rec, "expected", c).map_err(TaskError::new)?;
                check_column(&actual_rec, "actual", c).map_err(TaskError::new)?;
            }
            names.clone()
        }
        None => shared_numeric_columns(&expected_rec, &actual_rec),
    };
    if columns.is_empty() {
        return Err(TaskError::new(format!(
            "the expected dataset '{expected_name}' and the actual dataset '{actual_name}' \
             share no numeric feature column"
        )));
    }
    let expected = read_columns(env, &expected_rec, &columns)?;
    let actual = read_columns(env, &actual_rec, &columns)?;
    let mut per_column = Vec::with_capacity(columns.len());
    let mut shifted = Vec::new();
    let mut largest: Option<(f64, &str)> = None;
    for (j, c) in columns.iter().enumerate() {
        let r = psi(&expected.column(j), &actual.column(j), params.bins)
            .map_err(|e| TaskError::new(format!("column '{c}': {e}")))?;
        env.ctx.log(&format!(
            "{c}: PSI {:.4} ({})",
            r.psi,
            reading_name(r.reading)
        ));
        if r.reading == PsiReading::SignificantShift {
            shifted.push(c.clone());
        }
        if largest.is_none_or(|(p, _)| r.psi > p) {
            largest = Some((r.psi, c));
        }
        per_column.push(json!({
            "column": c,
            "psi": r.psi,
            "reading": r.reading,
            "bins": r.bins,
        }));
    }
    Ok(Some(Artifact::Report {
        report: json!({
            "expected": expected_name,
            "actual": actual_name,
            "expected_rows": expected.n_rows(),
            "actual_rows": actual.n_rows(),
            "bins": params.bins,
            "columns": per_column,
            "max_psi": largest.map(|(p, _)| p),
            "max_psi_column": largest.map(|(_, c)| c),
            "significant_shift_above": PSI_SIGNIFICANT_ABOVE,
            "shifted_columns": shifted,
        }),
    }))
}

fn reading_name(r: PsiReading) -> &'static str {
    match r {
        PsiReading::Stable => "stable",
        PsiReading::SomeShift => "some shift",
        PsiReading::SignificantShift => "significant shift",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_store::{ColumnInfo, DataFormat};
    use std::path::PathBuf;

    fn record(name: &str, label: Option<&str>, columns: &[(&str, ColumnType)]) -> DatasetRecord {
        DatasetRecord {
            id: "0".into(),
            name: name.into(),
            path: PathBuf::from("/nonexistent"),
            format: DataFormat::Csv,
            id_columns: vec!["id".into()],
            label: label.map(str::to_string),
            label_kind: label.map(|_| LabelKind::Binary),
            columns: std::iter::once(("id", ColumnType::Integer))
                .chain(label.map(|l| (l, ColumnType::Integer)))
                .chain(columns.iter().copied())
                .map(|(n, t)| ColumnInfo {
                    name: n.into(),
                    dtype: t,
                    nullable: false,
                })
                .collect(),
            rows: 10,
            bytes: 100,
            sha256: String::new(),
            created_at: String::new(),
            description: String::new(),
            lineage: None,
        }
    }

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn default_columns_are_the_shared_numeric_features_score_included() {
        let train = record(
            "train",
            Some("y"),
            &[
                ("income", ColumnType::Float),
                ("city", ColumnType::String),
                ("age", ColumnType::Integer),
                ("score", ColumnType::Float),
                ("only_here", ColumnType::Float),
            ],
        );
        // The actual side: no label, `age` as text, the rest numeric.
        let now = record(
            "now",
            None,
            &[
                ("score", ColumnType::Float),
                ("age", ColumnType::String),
                ("income", ColumnType::Integer),
                ("city", ColumnType::String),
                ("y", ColumnType::Integer),
            ],
        );
        assert_eq!(shared_numeric_columns(&train, &now), ["income", "score"]);
        // Two prediction outputs: `score` (the label is the label, not a feature).
        let a = record("pred-a", Some("y"), &[("score", ColumnType::Float)]);
        let b = record("pred-b", None, &[("score", ColumnType::Float)]);
        assert_eq!(shared_numeric_columns(&a, &b), ["score"]);
    }

    #[test]
    fn a_bad_column_is_named_with_what_is_wrong() {
        let d = record(
            "train",
            Some("y"),
            &[("income", ColumnType::Float), ("city", ColumnType::String)],
        );
        assert!(check_column(&d, "expected", "income").is_ok());
        let e = check_column(&d, "expected", "incme").unwrap_err();
        assert_eq!(
            e,
            "the expected dataset 'train' has no column 'incme' (its numeric feature \
             columns: income)"
        );
        let e = check_column(&d, "actual", "city").unwrap_err();
        assert_eq!(
            e,
            "column 'city' of the actual dataset 'train' holds text; PSI compares numbers"
        );
        let e = check_column(&d, "expected", "y").unwrap_err();
        assert!(e.ends_with("is its label column"), "{e}");
        let e = check_column(&d, "expected", "id").unwrap_err();
        assert!(e.ends_with("is its id column"), "{e}");
    }

    #[test]
    fn parameters_are_checked_and_defaulted() {
        let s = Stability;
        assert!(s.validate(&params("{}"), Role::Guest).is_ok());
        assert!(
            s.validate(
                &params(r#"{"columns": ["a", "b"], "bins": 20}"#),
                Role::Host
            )
            .is_ok()
        );
        let e = s
            .validate(&params(r#"{"bins": 1}"#), Role::Guest)
            .unwrap_err();
        assert!(e.contains("'bins' must be between 2 and 100, got 1"), "{e}");
        let e = s
            .validate(&params(r#"{"bins": 101}"#), Role::Guest)
            .unwrap_err();
        assert!(e.contains("got 101"), "{e}");
        let e = s
            .validate(&params(r#"{"columns": []}"#), Role::Guest)
            .unwrap_err();
        assert!(e.contains("non-empty"), "{e}");
        let e = s
            .validate(&params(r#"{"columns": ["a", "a"]}"#), Role::Guest)
            .unwrap_err();
        assert!(e.contains("'a' twice"), "{e}");
        let e = s
            .validate(&params(r#"{"bin": 5}"#), Role::Guest)
            .unwrap_err();
        assert!(
            e.contains("unknown parameter 'bin'") && e.contains("bins"),
            "{e}"
        );
        let e = s
            .validate(&params(r#"{"bins": "ten"}"#), Role::Guest)
            .unwrap_err();
        assert!(e.contains("'bins'"), "{e}");
        assert_eq!(StabilityParams::default().bins, DEFAULT_PSI_BINS);
        let schema = s.params_schema();
        assert_eq!(schema["properties"]["bins"]["minimum"], 2);
        assert_eq!(schema["properties"]["bins"]["maximum"], 100);
    }
}
