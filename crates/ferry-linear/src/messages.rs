//! Everything the parties send each other, and the checks applied to what arrives.

use crate::params::Task;
use ferry_crypto::wire::CiphertextBatch;
use rug::Integer;
use rug::integer::Order;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the message formats below; parties with another version refuse to start.
///
/// 2: with an arbiter, data parties send it a [`DecryptionPlan`] before training, and masks
/// are 80 bits wider than the masked value (40 before), which changes the packing.
/// 3: hosts and the arbiter take the `task` from the guest's [`Setup`] parameters instead of
/// refusing a different one (the guest's label may have chosen it).
/// 4: the setup reply and the go carry the epoch a resumed training continues from.
pub(crate) const PROTOCOL_VERSION: u32 = 4;

/// Rows per feature-exchange message (about 1 MB with Paillier-2048).
pub(crate) const FEATURE_CHUNK_ROWS: usize = 2048;

/// Row count and a digest of the ids in order: lets parties check their rows line up without
/// revealing anything beyond the (already shared) intersection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RowsFingerprint {
    pub rows: u64,
    pub ids_sha256: [u8; 32],
}

impl RowsFingerprint {
    pub(crate) fn of(ids: &[String]) -> Self {
        let mut h = Sha256::new();
        for id in ids {
            h.update((id.len() as u64).to_le_bytes());
            h.update(id.as_bytes());
        }
        RowsFingerprint {
            rows: ids.len() as u64,
            ids_sha256: h.finalize().into(),
        }
    }

    /// Why `theirs` does not line up with `self` (the guest's), if it does not.
    pub(crate) fn mismatch(
        &self,
        theirs: &RowsFingerprint,
        what: &str,
        party: &str,
    ) -> Option<String> {
        if self.rows != theirs.rows {
            Some(format!(
                "the guest has {} {what} rows but party '{party}' has {}",
                self.rows, theirs.rows
            ))
        } else if self.ids_sha256 != theirs.ids_sha256 {
            Some(format!(
                "the guest and party '{party}' have the same number of {what} rows ({}) but \
                 different ids or a different order",
                self.rows
            ))
        } else {
            None
        }
    }
}

/// Guest → every other party, first message of training.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Setup {
    pub protocol_version: u32,
    /// The guest's parameters as JSON (their tagged enums need a self-describing format).
    pub params_json: String,
    pub train_rows: RowsFingerprint,
    pub validation_rows: Option<RowsFingerprint>,
    /// Set when the guest itself cannot take part (bad data); everyone stops.
    pub problem: Option<String>,
}

/// Every other party → guest: whether it can take part.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SetupReply {
    pub problem: Option<String>,
    /// Resuming: the epochs of this data party's latest checkpoint (`None` from the arbiter,
    /// which keeps no state, and when training from scratch).
    pub resume: Option<u64>,
}

/// Guest → every other party: start, or stop because of the named problem.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Go {
    pub problem: Option<String>,
    /// Resuming: the epoch every party continues from (the minimum over the data parties'
    /// latest checkpoints).
    pub resume: Option<u64>,
}

/// Announces a party's encrypted feature rows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FeatureHeader {
    pub rows: u64,
    pub ciphertexts_per_row: u32,
    pub chunks: u32,
}

/// Rows `first_row ..` of a party's encrypted features: one batch per ciphertext column.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FeatureChunk {
    pub first_row: u64,
    pub columns: Vec<CiphertextBatch>,
}

/// An encrypted (partial) cross gradient: one ciphertext per ciphertext column of the target.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct EncryptedGradient {
    pub columns: CiphertextBatch,
}

/// Data party → arbiter, once before training: how many ciphertexts each data party's masked
/// gradient takes, as this party knows it (in the guest-then-hosts order of the roster): its
/// own, and every other party's from the header of that party's encrypted rows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DecryptionPlan {
    pub ciphertexts_per_row: Vec<u32>,
}

/// Arbiter → data party: the decrypted masked values, in the order they were sent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MaskedPlaintexts {
    pub values: Vec<WireInteger>,
}

/// Host → guest, per batch: what the guest needs to compute the training loss.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct HostLossTerm {
    /// `w_k · g_k`: the host's weights dotted with its gradient sum of this batch.
    pub weights_dot_gradient: f64,
    /// The host's penalty term.
    pub penalty: f64,
}

/// Guest → everyone, at the end of every epoch.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct EpochControl {
    /// The current weights are the best so far (by validation loss, or simply the latest).
    pub best: bool,
    pub stop: bool,
}

/// Guest → hosts: prediction request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PredictRequest {
    pub protocol_version: u32,
    pub task: Task,
    pub rows: RowsFingerprint,
    pub problem: Option<String>,
}

/// Host → guest: partial scores `w_k · x` of every requested row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PredictReply {
    pub problem: Option<String>,
    pub scores: Vec<f64>,
}

/// A signed integer on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireInteger {
    pub negative: bool,
    pub magnitude: Vec<u8>,
}

impl WireInteger {
    pub(crate) fn from_integer(v: &Integer) -> Self {
        WireInteger {
            negative: *v < 0,
            magnitude: v.as_abs().to_digits::<u8>(Order::Msf),
        }
    }

    /// The value, if it has at most `max_bits` bits.
    pub(crate) fn to_integer(&self, max_bits: u32) -> Option<Integer> {
        if self.magnitude.len() > (max_bits as usize).div_ceil(8) + 1 {
            return None;
        }
        let mut v = Integer::from_digits(&self.magnitude, Order::Msf);
        if v.significant_bits() > max_bits {
            return None;
        }
        if self.negative {
            v = -v;
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_integers_round_trip_and_are_bounded() {
        for v in [
            Integer::from(0),
            Integer::from(-5),
            Integer::from(1) << 300u32,
            -(Integer::from(3) << 100u32),
        ] {
            let w = WireInteger::from_integer(&v);
            assert_eq!(w.to_integer(400).unwrap(), v);
        }
        let big = WireInteger::from_integer(&(Integer::from(1) << 500u32));
        assert!(big.to_integer(400).is_none());
    }

    #[test]
    fn fingerprints_detect_count_and_order() {
        let a = RowsFingerprint::of(&["1".into(), "2".into()]);
        let b = RowsFingerprint::of(&["2".into(), "1".into()]);
        let c = RowsFingerprint::of(&["1".into()]);
        let ab = RowsFingerprint::of(&["12".into()]);
        assert!(a.mismatch(&a, "training", "h").is_none());
        assert!(a.mismatch(&b, "training", "h").unwrap().contains("order"));
        assert!(a.mismatch(&c, "training", "h").unwrap().contains("has 1"));
        assert_ne!(c.ids_sha256, ab.ids_sha256);
    }
}
