//! Checkpoints of hetero LR training: a data party's state after a completed epoch, in a
//! versioned, length-checked binary form.
//!
//! The state is the party's weights, its optimiser's moments and step count, and the loop's
//! bookkeeping (best weights and epoch for early stopping, the last training loss for the
//! tolerance test, the per-epoch records); every number is stored as raw `f64` bits. Nothing
//! else is needed to continue exactly: batches are derived from `(seed, epoch)`
//! ([`crate::plan::epoch_batches`]), and keys, encryption randomness and masks never change a
//! decrypted fixed-point value, so the fresh keys of a resumed run give the same updates. The
//! arbiter keeps no state between epochs and saves nothing.
//!
//! A fingerprint of the parameters (all but `max_epochs`, which a resumed run may raise) and
//! of the party's rows (count and digest of the ids) refuses a checkpoint of another job.

use crate::messages::RowsFingerprint;
use crate::params::LinearParams;
use crate::report::EpochRecord;
use ferry_ml::checkpoint::{CheckpointError, Reader, Writer};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"FLRSTATE";
/// Version of the checkpoint layout; any other is refused.
pub const CHECKPOINT_VERSION: u64 = 1;

fn err(msg: impl Into<String>) -> CheckpointError {
    CheckpointError(msg.into())
}

/// What identifies "the same training" for one data party.
pub(crate) fn fingerprint(
    params: &LinearParams,
    train: &RowsFingerprint,
    validation: Option<&RowsFingerprint>,
    features: &[String],
) -> String {
    let mut p = params.clone();
    p.max_epochs = 0;
    serde_json::json!({
        "params": p,
        "train": train,
        "validation": validation,
        "features": features,
    })
    .to_string()
}

/// A data party's state after `epoch` completed epochs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PartyState {
    pub fingerprint: String,
    pub epoch: u64,
    pub records: Vec<EpochRecord>,
    pub weights: Vec<f64>,
    pub best_weights: Vec<f64>,
    pub model_epoch: usize,
    pub best_validation: f64,
    pub since_best: u32,
    pub previous_loss: Option<f64>,
    pub opt_m: Vec<f64>,
    pub opt_v: Vec<f64>,
    pub opt_steps: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    fingerprint: String,
    epoch: u64,
    records: Vec<EpochRecord>,
    model_epoch: usize,
    since_best: u32,
    opt_steps: u64,
}

impl PartyState {
    pub fn encode(&self) -> Vec<u8> {
        let header = Header {
            fingerprint: self.fingerprint.clone(),
            epoch: self.epoch,
            records: self.records.clone(),
            model_epoch: self.model_epoch,
            since_best: self.since_best,
            opt_steps: self.opt_steps,
        };
        let mut w = Writer::default();
        w.out.extend_from_slice(MAGIC);
        w.u64(CHECKPOINT_VERSION);
        // A record with a non-finite loss cannot be written as JSON; such a checkpoint fails
        // to load and the job is re-run, never resumed wrongly.
        w.bytes(&serde_json::to_vec(&header).unwrap_or_default());
        for v in [&self.weights, &self.best_weights, &self.opt_m, &self.opt_v] {
            w.u64(v.len() as u64);
            w.f64s(v);
        }
        w.f64s(&[self.best_validation]);
        w.u64(u64::from(self.previous_loss.is_some()));
        w.f64s(&[self.previous_loss.unwrap_or(0.0)]);
        w.out
    }

    /// Decodes and checks a checkpoint against the run that continues it: same fingerprint,
    /// `n_weights` weights, the epoch it was asked for.
    pub fn decode(
        bytes: &[u8],
        fingerprint: &str,
        n_weights: usize,
        epoch: u64,
    ) -> Result<PartyState, CheckpointError> {
        let mut r = Reader::new(bytes);
        if r.take(8)? != MAGIC {
            return Err(err("not a hetero LR checkpoint"));
        }
        let version = r.u64()?;
        if version != CHECKPOINT_VERSION {
            return Err(err(format!(
                "checkpoint version {version} (this build reads {CHECKPOINT_VERSION})"
            )));
        }
        let header: Header =
            serde_json::from_slice(r.bytes()?).map_err(|e| err(format!("damaged state: {e}")))?;
        let mut vectors = Vec::with_capacity(4);
        for _ in 0..4 {
            let n = r.u64()?;
            vectors.push(r.f64s(n)?);
        }
        let best_validation = r.f64s(1)?[0];
        let has_previous = r.u64()?;
        let previous = r.f64s(1)?[0];
        r.finish()?;
        if header.fingerprint != fingerprint {
            return Err(err(
                "it was written by a training with other parameters or data",
            ));
        }
        if header.epoch != epoch || header.records.len() as u64 != epoch {
            return Err(err(format!(
                "asked for the state after epoch {epoch}, it holds {} ({} records)",
                header.epoch,
                header.records.len()
            )));
        }
        if vectors.iter().any(|v| v.len() != n_weights) {
            return Err(err(format!(
                "weights or optimiser state of the wrong length (this party has {n_weights} \
                 weights)"
            )));
        }
        if vectors.iter().flatten().any(|x| !x.is_finite())
            || best_validation.is_nan()
            || (has_previous == 1 && !previous.is_finite())
            || has_previous > 1
        {
            return Err(err("a stored number is not finite"));
        }
        if header.model_epoch as u64 >= epoch.max(1) {
            return Err(err("the best epoch is one not trained"));
        }
        let opt_v = vectors.pop().unwrap_or_default();
        let opt_m = vectors.pop().unwrap_or_default();
        let best_weights = vectors.pop().unwrap_or_default();
        let weights = vectors.pop().unwrap_or_default();
        Ok(PartyState {
            fingerprint: header.fingerprint,
            epoch: header.epoch,
            records: header.records,
            weights,
            best_weights,
            model_epoch: header.model_epoch,
            best_validation,
            since_best: header.since_best,
            previous_loss: (has_previous == 1).then_some(previous),
            opt_m,
            opt_v,
            opt_steps: header.opt_steps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> PartyState {
        PartyState {
            fingerprint: "fp".into(),
            epoch: 2,
            records: (0..2)
                .map(|epoch| EpochRecord {
                    epoch,
                    loss: Some(0.5),
                    validation_loss: None,
                    seconds: 0.1,
                })
                .collect(),
            weights: vec![0.1, -0.2],
            best_weights: vec![0.0, 1e-300],
            model_epoch: 1,
            best_validation: f64::INFINITY,
            since_best: 0,
            previous_loss: Some(0.25),
            opt_m: vec![1.0, 2.0],
            opt_v: vec![3.0, 4.0],
            opt_steps: 7,
        }
    }

    #[test]
    fn states_round_trip_and_damage_is_refused() {
        let s = state();
        let bytes = s.encode();
        assert_eq!(PartyState::decode(&bytes, "fp", 2, 2).unwrap(), s);
        let e = |b: &[u8], fp: &str, n: usize, epoch: u64| {
            PartyState::decode(b, fp, n, epoch).unwrap_err().0
        };
        assert!(e(&bytes, "other", 2, 2).contains("other parameters"));
        assert!(e(&bytes, "fp", 3, 2).contains("wrong length"));
        assert!(e(&bytes, "fp", 2, 1).contains("after epoch 1"));
        assert!(e(&bytes[..bytes.len() - 3], "fp", 2, 2).contains("truncated"));
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(e(&bad, "fp", 2, 2).contains("not a hetero LR checkpoint"));
    }
}
