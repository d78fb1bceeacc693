//! What tasks hand each other: typed artifacts instead of ad-hoc JSON maps.
//!
//! A task's outputs are recorded (per node, in the store) as JSON of these types, so a later
//! task, a re-run that reuses outputs, the CLI and the console all read the same shape. Each
//! party's artifact names things in *its own* store: the guest's `data` output of a PSI task
//! is the guest's dataset, the host's is the host's.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The type of an artifact, as slots declare it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    Dataset,
    Model,
    Metrics,
    Report,
}

/// One output of a task on one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "artifact", rename_all = "snake_case")]
pub enum Artifact {
    /// A dataset registered in this node's store, with what the producing task reports about
    /// it (rows, kept columns, the PSI report ...).
    Dataset {
        dataset: String,
        #[serde(flatten)]
        details: Map<String, Value>,
    },
    /// A version of a model stored (and signed) by this node.
    Model {
        model: String,
        version: u32,
        kind: String,
    },
    /// Evaluation results: the headline figures of their kind (AUC and KS, RMSE and R², ...)
    /// for tables, and everything else (curves, tables) in `details`.
    Metrics {
        kind: String,
        headline: BTreeMap<String, f64>,
        details: Value,
    },
    /// A component's report (dataset statistics, binning and IV, selection decisions ...).
    Report { report: Value },
}

impl Artifact {
    pub fn kind(&self) -> ArtifactKind {
        match self {
            Artifact::Dataset { .. } => ArtifactKind::Dataset,
            Artifact::Model { .. } => ArtifactKind::Model,
            Artifact::Metrics { .. } => ArtifactKind::Metrics,
            Artifact::Report { .. } => ArtifactKind::Report,
        }
    }

    pub fn dataset(name: impl Into<String>) -> Artifact {
        Artifact::Dataset {
            dataset: name.into(),
            details: Map::new(),
        }
    }

    /// A dataset artifact with details (`details` must be a JSON object; anything else is
    /// kept under `"details"`).
    pub fn dataset_with(name: impl Into<String>, details: Value) -> Artifact {
        let details = match details {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => Map::from_iter([("details".to_string(), other)]),
        };
        Artifact::Dataset {
            dataset: name.into(),
            details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn artifacts_round_trip_and_keep_the_field_names_readers_use() {
        let cases = [
            Artifact::dataset_with("job-x-psi", json!({"report": {"intersection_size": 3}})),
            Artifact::Model {
                model: "m".into(),
                version: 2,
                kind: "hetero_lr".into(),
            },
            Artifact::Metrics {
                kind: "regression".into(),
                headline: BTreeMap::from([("rmse".into(), 1.5)]),
                details: json!({"report": {}}),
            },
            Artifact::Report {
                report: json!({"rows": 3}),
            },
        ];
        for a in cases {
            let v = serde_json::to_value(&a).unwrap();
            assert_eq!(serde_json::from_value::<Artifact>(v.clone()).unwrap(), a);
            if let Artifact::Dataset { .. } = a {
                assert_eq!(v["dataset"], "job-x-psi");
                assert_eq!(v["report"]["intersection_size"], 3);
            }
        }
        let bad = serde_json::from_value::<Artifact>(json!({"artifact": "tensor"}));
        assert!(bad.is_err());
    }
}
