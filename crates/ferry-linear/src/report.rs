//! What a training run reports: losses, timings, homomorphic operation counts, traffic.

use crate::params::ResolvedMode;
use ferry_context::Role;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// Homomorphic operations performed by one party.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeOps {
    pub encryptions: u64,
    pub decryptions: u64,
    /// Ciphertext additions (each a multiplication modulo n² for Paillier, n for OU).
    pub additions: u64,
    /// Ciphertext doublings (squarings) joining multi-exponentiation windows.
    pub doublings: u64,
    pub rerandomizations: u64,
    /// Multi-exponentiations (one per encrypted gradient part computed for another party).
    pub multi_exps: u64,
}

/// Thread-safe counters behind [`HeOps`].
#[derive(Debug, Default)]
pub(crate) struct OpCounter {
    encryptions: AtomicU64,
    decryptions: AtomicU64,
    additions: AtomicU64,
    doublings: AtomicU64,
    rerandomizations: AtomicU64,
    multi_exps: AtomicU64,
}

impl OpCounter {
    pub(crate) fn add(&self, n: u64) {
        self.additions.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn square(&self, n: u64) {
        self.doublings.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn encrypt(&self, n: u64) {
        self.encryptions.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn decrypt(&self, n: u64) {
        self.decryptions.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn rerandomize(&self, n: u64) {
        self.rerandomizations.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn multi_exp(&self, n: u64) {
        self.multi_exps.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn snapshot(&self) -> HeOps {
        HeOps {
            encryptions: self.encryptions.load(Ordering::Relaxed),
            decryptions: self.decryptions.load(Ordering::Relaxed),
            additions: self.additions.load(Ordering::Relaxed),
            doublings: self.doublings.load(Ordering::Relaxed),
            rerandomizations: self.rerandomizations.load(Ordering::Relaxed),
            multi_exps: self.multi_exps.load(Ordering::Relaxed),
        }
    }
}

/// One epoch as seen by one party.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    /// Mean training loss over the epoch's batches, penalty included (guest only). For
    /// logistic regression this is the Taylor-approximated loss the protocol optimises.
    pub loss: Option<f64>,
    /// Validation loss (guest only, when a validation set is given): log loss for logistic
    /// regression, mean squared error / 2 for linear regression.
    pub validation_loss: Option<f64>,
    pub seconds: f64,
}

/// Everything one party can say about its training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub role: Role,
    pub mode: ResolvedMode,
    pub scheme: String,
    pub key_bits: u32,
    pub epochs: Vec<EpochRecord>,
    /// Key generation, key exchange, feature encryption and exchange.
    pub setup_seconds: f64,
    pub total_seconds: f64,
    /// Training stopped because the loss changed by less than the tolerance.
    pub converged: bool,
    /// Training stopped because the validation loss stopped improving.
    pub stopped_early: bool,
    /// Epoch whose weights the model holds (0-based).
    pub model_epoch: usize,
    pub he_ops: HeOps,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub messages_sent: u64,
}
