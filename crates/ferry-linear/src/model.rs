//! A party's part of a trained model, and its versioned serialised form.

use crate::error::LinearError;
use crate::params::{ResolvedMode, Task};
use ferry_context::Role;
use serde::{Deserialize, Serialize};

/// Identifies serialised model parts of this crate.
pub const MODEL_FORMAT: &str = "ferry-hetero-linear";
/// Current version of the serialised form; [`ModelPart::from_json`] refuses others.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// The part of a hetero linear model that one party owns. Nothing in it is secret from its
/// owner; nothing of another party is in it.
///
/// * guest: the weights of its features and the intercept;
/// * host: the weights of its features;
/// * arbiter: no weights, only metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelPart {
    pub format: String,
    pub version: u32,
    pub task: Task,
    pub role: Role,
    /// The party that trained this part.
    pub party: String,
    pub mode: ResolvedMode,
    /// The owner's feature columns, in the order of `weights`.
    pub feature_names: Vec<String>,
    pub weights: Vec<f64>,
    /// The guest's intercept (`None` for hosts, the arbiter, or `fit_intercept: false`).
    pub intercept: Option<f64>,
    /// Epochs trained.
    pub epochs: usize,
}

impl ModelPart {
    /// The serialised form (JSON with format name and version).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a model part always serialises")
    }

    /// Reads and checks a serialised model part.
    pub fn from_json(json: &str) -> Result<Self, LinearError> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let header: Header = serde_json::from_str(json)
            .map_err(|e| LinearError::Model(format!("not a hetero linear model part: {e}")))?;
        if header.format != MODEL_FORMAT {
            return Err(LinearError::Model(format!(
                "format '{}' is not a hetero linear model part ('{MODEL_FORMAT}')",
                header.format
            )));
        }
        if header.version != MODEL_FORMAT_VERSION {
            return Err(LinearError::Model(format!(
                "model format version {} is not supported (this build reads version \
                 {MODEL_FORMAT_VERSION}); retrain or convert the model",
                header.version
            )));
        }
        let model: ModelPart = serde_json::from_str(json)
            .map_err(|e| LinearError::Model(format!("corrupt hetero linear model part: {e}")))?;
        model.check()?;
        Ok(model)
    }

    pub(crate) fn check(&self) -> Result<(), LinearError> {
        if self.weights.len() != self.feature_names.len() {
            return Err(LinearError::Model(format!(
                "{} weights for {} features",
                self.weights.len(),
                self.feature_names.len()
            )));
        }
        if self
            .weights
            .iter()
            .chain(&self.intercept)
            .any(|w| !w.is_finite())
        {
            return Err(LinearError::Model("a weight is not a finite number".into()));
        }
        if self.role != Role::Guest && self.intercept.is_some() {
            return Err(LinearError::Model(format!(
                "a {} part cannot hold an intercept",
                self.role
            )));
        }
        if self.role == Role::Arbiter && !self.weights.is_empty() {
            return Err(LinearError::Model(
                "an arbiter part holds no weights".into(),
            ));
        }
        Ok(())
    }

    /// Online scoring: this party's partial score `w·x (+ intercept)` of one row given in the
    /// part's column order (`feature_names`), added up in the same order as
    /// [`ModelPart::partial_scores`], so that it is bit-identical to the offline score. A
    /// missing value is an error naming the feature, as offline.
    pub fn partial_score_row(&self, row: &[f64]) -> Result<f64, LinearError> {
        if row.len() != self.weights.len() {
            return Err(LinearError::Data(format!(
                "the row has {} values but the model part has {} features ({})",
                row.len(),
                self.weights.len(),
                self.feature_names.join(", ")
            )));
        }
        let mut s = self.intercept.unwrap_or(0.0);
        for ((x, w), name) in row.iter().zip(&self.weights).zip(&self.feature_names) {
            if x.is_nan() {
                return Err(LinearError::Data(format!(
                    "feature '{name}' is missing; impute missing values before prediction"
                )));
            }
            s += w * x;
        }
        Ok(s)
    }

    /// Online scoring at the guest: its own partial score plus the hosts' (in the order of
    /// the offline job's hosts, for bit-identical sums), through the link of the task (the
    /// probability of class 1 for logistic regression, the value for linear regression).
    pub fn combine_online(&self, guest_partial: f64, host_partials: &[f64]) -> f64 {
        let mut s = guest_partial;
        for h in host_partials {
            s += h;
        }
        if self.task == Task::Logistic {
            crate::train::sigmoid(s)
        } else {
            s
        }
    }

    /// This party's partial score `w·x (+ intercept)` of every row of `data`.
    pub fn partial_scores(&self, data: &ferry_data::Dataset) -> Result<Vec<f64>, LinearError> {
        let columns = self
            .feature_names
            .iter()
            .map(|name| {
                data.feature_names
                    .iter()
                    .position(|f| f == name)
                    .ok_or_else(|| {
                        LinearError::Data(format!(
                            "the model uses feature '{name}' but the data has no such column \
                             (columns: {})",
                            data.feature_names.join(", ")
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let b = self.intercept.unwrap_or(0.0);
        (0..data.n_rows())
            .map(|i| {
                let row = data.row(i);
                let mut s = b;
                for (&j, w) in columns.iter().zip(&self.weights) {
                    let x = row[j];
                    if x.is_nan() {
                        return Err(LinearError::Data(format!(
                            "row '{}' has a missing value in feature '{}'; impute missing \
                             values before prediction",
                            data.ids[i], data.feature_names[j]
                        )));
                    }
                    s += w * x;
                }
                Ok(s)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part() -> ModelPart {
        ModelPart {
            format: MODEL_FORMAT.into(),
            version: MODEL_FORMAT_VERSION,
            task: Task::Logistic,
            role: Role::Guest,
            party: "bank".into(),
            mode: ResolvedMode::WithoutThirdParty,
            feature_names: vec!["a".into(), "b".into()],
            weights: vec![0.5, -1.0],
            intercept: Some(0.25),
            epochs: 3,
        }
    }

    #[test]
    fn round_trips_and_checks_version() {
        let p = part();
        assert_eq!(ModelPart::from_json(&p.to_json()).unwrap(), p);
        let future = p.to_json().replace("\"version\": 1", "\"version\": 2");
        let err = ModelPart::from_json(&future).unwrap_err().to_string();
        assert!(err.contains("version 2"), "{err}");
        let other = p.to_json().replace(MODEL_FORMAT, "ferry-secureboost");
        assert!(ModelPart::from_json(&other).is_err());
        let mut bad = p.clone();
        bad.weights.pop();
        assert!(ModelPart::from_json(&bad.to_json()).is_err());
    }

    #[test]
    fn partial_scores_select_columns_by_name() {
        let data = ferry_data::Dataset::from_parts(
            vec!["x".into(), "y".into()],
            vec!["b".into(), "z".into(), "a".into()],
            vec![1.0, 9.0, 2.0, 0.0, 9.0, -2.0],
            None,
            None,
        )
        .unwrap();
        let s = part().partial_scores(&data).unwrap();
        assert_eq!(s, vec![0.25 + 0.5 * 2.0 - 1.0, 0.25 - 1.0]);
        let missing = ferry_data::Dataset::from_parts(
            vec!["x".into()],
            vec!["a".into()],
            vec![1.0],
            None,
            None,
        )
        .unwrap();
        let err = part().partial_scores(&missing).unwrap_err().to_string();
        assert!(err.contains("'b'"), "{err}");
    }
}
