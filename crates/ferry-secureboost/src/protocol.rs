//! Messages between the guest and the hosts. Everything a host receives is listed here: the
//! public key, per-tree ciphertexts and feature selection, row lists of nodes, split decisions
//! and prediction queries — never a plaintext gradient, hessian or label.

use crate::report::HeOpCounts;
use ferry_crypto::wire::CiphertextBatch;
use ferry_crypto::{OuPublicKey, PaillierPublicKey};
use serde::{Deserialize, Serialize};

/// Version of this message set; parties with different versions refuse to start.
///
/// 2: the hello and the setup carry the resume point of a resumed training.
pub const PROTOCOL_VERSION: u32 = 2;

/// Ciphertexts per gradient message: small enough that the host validates one chunk (on any
/// free core) while the guest still encrypts later ones, and far below any size limit.
pub const GH_CHUNK: usize = 1024;

/// A reply that may carry the sender's reason for giving up instead of the payload, so the
/// other side reports the real cause rather than a dropped connection.
pub type Reply<T> = Result<T, String>;

/// Host → guest, first message of training.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostHello {
    pub version: u32,
    /// Set when the host cannot take part (e.g. bad local data); the guest stops the job.
    pub problem: Option<String>,
    pub n_rows: u64,
    pub n_validation_rows: Option<u64>,
    /// Number of value bins of each feature (a missing-value bin comes on top of each).
    pub value_bins: Vec<u32>,
    /// Resuming: the number of trees of this host's latest checkpoint (it can continue from
    /// that or any earlier tree count). `None` when training from scratch.
    pub resume: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PublicKeyMsg {
    Paillier(PaillierPublicKey),
    Ou(OuPublicKey),
}

/// Guest → host, answer to [`HostHello`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Setup {
    pub version: u32,
    pub model_id: String,
    pub key: PublicKeyMsg,
    /// Resuming: where every party continues from.
    pub resume: Option<ResumePoint>,
}

/// The checkpoint common to all parties, chosen by the guest: the minimum over the parties'
/// latest ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// Trees completed; the next tree has this index.
    pub trees: u64,
    /// Splits of this host in those trees: the host's table must have exactly as many once
    /// later trees' splits are dropped (a check that both checkpoints belong together).
    pub splits: u64,
}

/// Guest → host at the start of each tree (or the end of training).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TreeMsg {
    Start(TreeStart),
    /// Training is over; trees from `trees_kept` on were dropped by early stopping.
    Finish {
        trees_kept: u64,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TreeStart {
    pub tree: u64,
    /// Packing: quantised values have at most `value_bits` bits and at most `max_terms` are
    /// summed into one slot.
    pub value_bits: u32,
    pub max_terms: u64,
    /// Rows with an encrypted (g, h), ascending; `None` means every row.
    pub sampled_rows: Option<Vec<u32>>,
    /// This host's features used by the tree (ascending).
    pub features: Vec<u32>,
    /// Number of ciphertext chunks that follow (tags `gh-0`, `gh-1`, ...).
    pub chunks: u32,
}

/// Guest → host at the start of each level of a tree.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LevelMsg {
    /// Build the histogram of each listed row set (the smaller child of each split, or the
    /// root); rows are sampled rows of the node.
    Build { nodes: Vec<Vec<u32>> },
    /// The tree is complete.
    End,
}

/// Host → guest: every requested node's histogram, packed. Node `i` occupies
/// `⌈bins / bins_per_ciphertext⌉` consecutive ciphertexts, bins ordered by feature then bin.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistogramMsg {
    pub packed: CiphertextBatch,
}

/// Guest → host: the splits of this level that this host won.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SplitRequest {
    pub splits: Vec<SplitOrder>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SplitOrder {
    /// Index into the tree's feature list of this host.
    pub feature: u32,
    pub bin: u32,
    pub missing_left: bool,
    /// Every row of the node (sampled or not), which the host must partition.
    pub rows: Vec<u32>,
}

/// Host → guest: one entry per [`SplitOrder`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartitionMsg {
    pub results: Vec<Partition>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Partition {
    pub split_id: u32,
    /// Bit `i` set: the `i`-th row of the order goes left.
    pub left: ferry_context::Blob,
}

/// Guest → host during prediction (and validation): one message per level.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PredictMsg {
    Query { queries: Vec<PredictQuery> },
    Done,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PredictQuery {
    pub split_id: u32,
    pub rows: Vec<u32>,
}

/// Host → guest: one bit set per query.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PredictAnswer {
    pub left: Vec<ferry_context::Blob>,
}

/// Host → guest before federated prediction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PredictHello {
    pub version: u32,
    /// Set when the host cannot take part (e.g. its data does not match its model part).
    pub problem: Option<String>,
    pub model_id: String,
    pub n_rows: u64,
}

/// Host → guest at the end of training.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostSummary {
    pub ops: HeOpCounts,
}

/// Packs booleans into bytes, bit `i % 8` of byte `i / 8`.
pub fn pack_bits(bits: impl ExactSizeIterator<Item = bool>) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, b) in bits.enumerate() {
        if b {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// Unpacks `n` booleans, refusing a wrong length or set padding bits.
pub fn unpack_bits(bytes: &[u8], n: usize) -> Result<Vec<bool>, String> {
    if bytes.len() != n.div_ceil(8) {
        return Err(format!(
            "bit set has {} bytes for {n} rows (expected {})",
            bytes.len(),
            n.div_ceil(8)
        ));
    }
    if !n.is_multiple_of(8) && bytes[n / 8] >> (n % 8) != 0 {
        return Err("bit set has bits set beyond its rows".into());
    }
    Ok((0..n).map(|i| bytes[i / 8] >> (i % 8) & 1 == 1).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_sets_round_trip_and_reject_malformed_input() {
        let bits = vec![
            true, false, true, true, false, false, false, false, true, true,
        ];
        let packed = pack_bits(bits.iter().copied());
        assert_eq!(packed.len(), 2);
        assert_eq!(unpack_bits(&packed, 10).unwrap(), bits);
        assert!(unpack_bits(&packed, 17).is_err());
        assert!(unpack_bits(&[0b1000_0000], 3).is_err());
        assert_eq!(unpack_bits(&[], 0).unwrap(), Vec::<bool>::new());
    }
}
