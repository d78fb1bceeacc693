//! Checkpoints of SecureBoost training: what each party needs to continue after a completed
//! boosting round, in a versioned, length-checked binary form.
//!
//! * **Guest** (after every round: one tree, or one tree per class): the model so far (trees,
//!   base scores, model id), the raw score of every training and validation row, the early
//!   stopping state and the per-tree reports. Scores are stored as raw `f64` bits, so the
//!   resumed run adds to exactly the numbers the interrupted one had.
//! * **Host** (after every tree): its split table so far. A host can continue from any
//!   earlier tree count by dropping the splits of later trees (split ids are handed out in
//!   tree order), so it needs only its latest checkpoint.
//!
//! Nothing else is needed: row and feature sampling is replayed from the seed (see
//! `guest.rs`), and keys, encryption randomness and re-randomisation masks never change a
//! decrypted sum, so a fresh key for the resumed run yields the same trees.
//!
//! Both parts record a fingerprint of the parameters (all but `num_trees`, which a resumed run
//! may raise) and of the party's data shape; a checkpoint of another job is refused.

use crate::model::{GuestModel, HostModel, ModelPart};
use crate::params::SecureBoostParams;
use crate::report::TreeReport;
use ferry_data::Dataset;
use ferry_ml::checkpoint::{CheckpointError, Reader, Writer};
use serde::{Deserialize, Serialize};

const GUEST_MAGIC: &[u8; 8] = b"FSBGUEST";
const HOST_MAGIC: &[u8; 8] = b"FSBHOST\0";
/// Version of the checkpoint layout; any other is refused (a checkpoint only lives as long as
/// a job, so there is no migration).
pub const CHECKPOINT_VERSION: u64 = 1;

fn err(msg: impl Into<String>) -> CheckpointError {
    CheckpointError(msg.into())
}

/// What identifies "the same training": parameters except `num_trees`, the data's shape and
/// a digest (FNV-1a, against accidents, not adversaries) of the row ids in order.
pub(crate) fn fingerprint(
    params: &SecureBoostParams,
    data: &Dataset,
    validation: Option<&Dataset>,
) -> String {
    let mut p = params.clone();
    p.num_trees = 0;
    // The scores are per row: rows in another order (another PSI run) are another training.
    let ids = data.ids.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, id| {
        (id.len() as u64)
            .to_le_bytes()
            .iter()
            .chain(id.as_bytes())
            .fold(h, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
    });
    serde_json::json!({
        "params": p,
        "rows": data.n_rows(),
        "ids_fnv1a": format!("{ids:016x}"),
        "features": data.feature_names,
        "validation_rows": validation.map(|v| v.n_rows()),
    })
    .to_string()
}

/// The guest's state after a completed round.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GuestState {
    pub fingerprint: String,
    pub model: GuestModel,
    pub reports: Vec<TreeReport>,
    /// Early stopping: the best round so far and its metric.
    pub best: Option<(usize, f64)>,
    pub scores: Vec<f64>,
    pub valid_scores: Vec<f64>,
}

#[derive(Serialize, Deserialize)]
struct GuestHeader {
    fingerprint: String,
    model: GuestModel,
    reports: Vec<TreeReport>,
    best: Option<(usize, f64)>,
}

impl GuestState {
    pub fn encode(&self) -> Vec<u8> {
        let header = GuestHeader {
            fingerprint: self.fingerprint.clone(),
            model: self.model.clone(),
            reports: self.reports.clone(),
            best: self.best,
        };
        let mut w = Writer::default();
        w.out.extend_from_slice(GUEST_MAGIC);
        w.u64(CHECKPOINT_VERSION);
        // Metrics may be NaN (JSON has no NaN): such a checkpoint fails to load and the job is
        // re-run instead of resumed, never resumed wrongly.
        w.bytes(&serde_json::to_vec(&header).unwrap_or_default());
        w.u64(self.scores.len() as u64);
        w.f64s(&self.scores);
        w.u64(self.valid_scores.len() as u64);
        w.f64s(&self.valid_scores);
        w.out
    }

    /// Decodes and checks a guest checkpoint against the run that continues it.
    pub fn decode(
        bytes: &[u8],
        fingerprint: &str,
        n_rows: usize,
        n_valid: usize,
    ) -> Result<GuestState, CheckpointError> {
        let mut r = Reader::new(bytes);
        check_magic(&mut r, GUEST_MAGIC, "guest")?;
        let header: GuestHeader = serde_json::from_slice(r.bytes()?)
            .map_err(|e| err(format!("damaged guest state: {e}")))?;
        let n = r.u64()?;
        let scores = r.f64s(n)?;
        let n = r.u64()?;
        let valid_scores = r.f64s(n)?;
        r.finish()?;
        if header.fingerprint != fingerprint {
            return Err(err(
                "it was written by a training with other parameters or data",
            ));
        }
        ModelPart::Guest(header.model.clone())
            .validate()
            .map_err(|e| err(e.to_string()))?;
        let k = header.model.n_outputs();
        if scores.len() != n_rows * k || valid_scores.len() != n_valid * k {
            return Err(err(format!(
                "{} training and {} validation scores for {n_rows} and {n_valid} rows × {k} \
                 outputs",
                scores.len(),
                valid_scores.len()
            )));
        }
        if scores.iter().chain(&valid_scores).any(|s| !s.is_finite()) {
            return Err(err("a score is not finite"));
        }
        let trees = header.model.trees.len();
        if !trees.is_multiple_of(k) || header.reports.len() != trees {
            return Err(err(format!(
                "{trees} trees and {} reports do not make whole rounds of {k}",
                header.reports.len()
            )));
        }
        if header
            .best
            .is_some_and(|(r, m)| r >= trees / k || !m.is_finite())
        {
            return Err(err("early stopping state names a round not trained"));
        }
        Ok(GuestState {
            fingerprint: header.fingerprint,
            model: header.model,
            reports: header.reports,
            best: header.best,
            scores,
            valid_scores,
        })
    }
}

/// A host's state after a completed tree.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HostState {
    pub fingerprint: String,
    /// Trees completed.
    pub trees: u64,
    pub model: HostModel,
}

#[derive(Serialize, Deserialize)]
struct HostHeader {
    fingerprint: String,
    trees: u64,
    model: HostModel,
}

impl HostState {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.out.extend_from_slice(HOST_MAGIC);
        w.u64(CHECKPOINT_VERSION);
        let header = HostHeader {
            fingerprint: self.fingerprint.clone(),
            trees: self.trees,
            model: self.model.clone(),
        };
        w.bytes(&serde_json::to_vec(&header).unwrap_or_default());
        w.out
    }

    pub fn decode(bytes: &[u8], fingerprint: &str) -> Result<HostState, CheckpointError> {
        let mut r = Reader::new(bytes);
        check_magic(&mut r, HOST_MAGIC, "host")?;
        let header: HostHeader = serde_json::from_slice(r.bytes()?)
            .map_err(|e| err(format!("damaged host state: {e}")))?;
        r.finish()?;
        if header.fingerprint != fingerprint {
            return Err(err(
                "it was written by a training with other parameters or data",
            ));
        }
        ModelPart::Host(header.model.clone())
            .validate()
            .map_err(|e| err(e.to_string()))?;
        let splits = &header.model.splits;
        if splits.windows(2).any(|w| w[0].tree > w[1].tree)
            || splits.iter().any(|s| s.tree as u64 >= header.trees)
        {
            return Err(err("split table is not in tree order"));
        }
        Ok(HostState {
            fingerprint: header.fingerprint,
            trees: header.trees,
            model: header.model,
        })
    }

    /// The splits of the first `trees` trees (`trees` at most the checkpoint's).
    pub fn splits_before(&self, trees: u64) -> Vec<crate::model::HostSplit> {
        self.model
            .splits
            .iter()
            .filter(|s| (s.tree as u64) < trees)
            .cloned()
            .collect()
    }
}

fn check_magic(r: &mut Reader, magic: &[u8; 8], whose: &str) -> Result<(), CheckpointError> {
    if r.take(8)? != magic {
        return Err(err(format!("not a SecureBoost {whose} checkpoint")));
    }
    let version = r.u64()?;
    if version != CHECKPOINT_VERSION {
        return Err(err(format!(
            "checkpoint version {version} (this build reads {CHECKPOINT_VERSION})"
        )));
    }
    Ok(())
}
