//! What a training run did: time and metrics per tree, homomorphic operation counts, traffic.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of homomorphic operations, to compare a run with its "crypto floor" (the time these
/// operations alone take at the per-core rates of `ferry bench crypto`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeOpCounts {
    /// Owner encryptions by the guest (one per sampled row and tree).
    pub encryptions: u64,
    pub decryptions: u64,
    /// Ciphertext additions (histogram accumulation, packing).
    pub additions: u64,
    /// Ciphertext subtractions (sibling histograms; 0 with guest-side plaintext subtraction).
    pub subtractions: u64,
    /// Homomorphic shifts for packing bins into one ciphertext...
    pub shifts: u64,
    /// ...and their total number of bits: each bit is one modular squaring.
    pub shift_bits: u64,
    /// Re-randomisations of packed histograms before they go to the guest (each costs about
    /// one public-key encryption).
    pub rerandomizations: u64,
    /// Ciphertexts decoded (and validated) from the wire.
    pub ciphertexts_received: u64,
}

impl HeOpCounts {
    pub fn add(&mut self, o: &HeOpCounts) {
        self.encryptions += o.encryptions;
        self.decryptions += o.decryptions;
        self.additions += o.additions;
        self.subtractions += o.subtractions;
        self.shifts += o.shifts;
        self.shift_bits += o.shift_bits;
        self.rerandomizations += o.rerandomizations;
        self.ciphertexts_received += o.ciphertexts_received;
    }

    /// Seconds of one core these operations take at the given rates (operations per second of
    /// one core); a shift bit counts as one addition (both are one modular multiplication).
    pub fn floor_seconds(&self, rates: &CryptoRates) -> f64 {
        self.encryptions as f64 / rates.owner_encrypt
            + self.decryptions as f64 / rates.decrypt
            + (self.additions + self.subtractions + self.shift_bits) as f64 / rates.add
            + self.rerandomizations as f64 / rates.encrypt
    }
}

/// Per-core operation rates of a scheme (from `ferry bench crypto`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CryptoRates {
    pub encrypt: f64,
    pub owner_encrypt: f64,
    pub decrypt: f64,
    pub add: f64,
}

impl CryptoRates {
    /// Single-core rates of `scheme` with a fresh `key_bits` key, measured now on this machine
    /// (median of three runs of about 0.2 s per operation). Floors are computed from rates
    /// measured in the same run, never from another machine's.
    pub fn measure(
        scheme: ferry_crypto::SchemeKind,
        key_bits: u32,
    ) -> Result<Self, ferry_crypto::KeyGenError> {
        use ferry_crypto::{HePublicKey, HeSecretKey};
        fn rates<S: HeSecretKey>(sk: &S) -> CryptoRates {
            let pk = sk.public();
            let mut rng = rand::rng();
            let m = rug::Integer::from(123_456_789u64);
            let c = pk
                .encrypt(&m, &mut rng)
                .expect("a small plaintext is in range");
            let mut acc = c.clone();
            CryptoRates {
                encrypt: median_rate(|| {
                    std::hint::black_box(pk.encrypt(&m, &mut rng).expect("in range"));
                }),
                owner_encrypt: median_rate(|| {
                    std::hint::black_box(sk.encrypt(&m, &mut rand::rng()).expect("in range"));
                }),
                decrypt: median_rate(|| {
                    std::hint::black_box(sk.decrypt(&c));
                }),
                add: median_rate(|| pk.add_assign(&mut acc, &c)),
            }
        }
        let mut rng = rand::rng();
        Ok(match scheme {
            ferry_crypto::SchemeKind::Paillier => rates(
                &ferry_crypto::PaillierSecretKey::generate(key_bits, &mut rng)?,
            ),
            ferry_crypto::SchemeKind::OkamotoUchiyama => {
                rates(&ferry_crypto::OuSecretKey::generate(key_bits, &mut rng)?)
            }
        })
    }
}

/// Operations per second of `op`: the median of three runs of about 0.2 s each.
fn median_rate(mut op: impl FnMut()) -> f64 {
    let mut rates: Vec<f64> = (0..3)
        .map(|_| {
            let start = std::time::Instant::now();
            let mut n = 0u64;
            while start.elapsed().as_secs_f64() < 0.2 {
                op();
                n += 1;
            }
            n as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    rates[1]
}

/// Thread-safe counters behind [`HeOpCounts`].
#[derive(Default)]
pub(crate) struct OpCounter {
    pub encryptions: AtomicU64,
    pub decryptions: AtomicU64,
    pub additions: AtomicU64,
    pub shifts: AtomicU64,
    pub shift_bits: AtomicU64,
    pub rerandomizations: AtomicU64,
    pub ciphertexts_received: AtomicU64,
}

impl OpCounter {
    pub fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HeOpCounts {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HeOpCounts {
            encryptions: r(&self.encryptions),
            decryptions: r(&self.decryptions),
            additions: r(&self.additions),
            subtractions: 0,
            shifts: r(&self.shifts),
            shift_bits: r(&self.shift_bits),
            rerandomizations: r(&self.rerandomizations),
            ciphertexts_received: r(&self.ciphertexts_received),
        }
    }
}

/// One boosting tree's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TreeReport {
    pub tree: usize,
    /// Wall time of the tree on the guest (gradients, encryption, all levels, validation).
    pub seconds: f64,
    pub train_metric: Option<f64>,
    pub validation_metric: Option<f64>,
    pub leaves: usize,
    pub depth: usize,
}

/// Everything the guest (or a host, for its own share) measured during training.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Name of the metric in `trees` ("auc", "rmse" or "mlogloss").
    pub metric: String,
    pub trees: Vec<TreeReport>,
    pub total_seconds: f64,
    /// Seconds spent generating the key pair (guest).
    pub keygen_seconds: f64,
    /// Boosting round kept by early stopping (0-based), when it stopped early.
    pub best_round: Option<usize>,
    /// This party's homomorphic operations.
    pub ops: HeOpCounts,
    /// Each host's operations as it reported them at the end (guest only).
    pub host_ops: Vec<(String, HeOpCounts)>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub rounds: u64,
}

impl TrainReport {
    /// Operations of every party together.
    pub fn total_ops(&self) -> HeOpCounts {
        let mut t = self.ops;
        for (_, o) in &self.host_ops {
            t.add(o);
        }
        t
    }
}
