//! Weight of evidence (WOE) and information value (IV) per bin, computed centrally from labels
//! or, for a host's features, federated under additively homomorphic encryption.
//!
//! # Definitions
//! For a feature with bins `i`, `bad_i` rows labelled 1 and `good_i` rows labelled 0, and
//! `B = Σ bad_i`, `G = Σ good_i`, `N = B + G`:
//!
//! ```text
//!     WOE_i = ln( (bad_i / B) / (good_i / G) )
//!     IV_i  = (bad_i / B − good_i / G) · WOE_i        IV = Σ IV_i
//! ```
//!
//! A bin with no bad or no good row would have an infinite WOE. Such a bin (only such a bin:
//! bins with both classes are exact) gets [`WOE_SMOOTHING`] pseudo-rows split at the overall
//! bad rate: `bad_i + α·B/N` and `good_i + α·G/N`. Then `WOE_i > 0` exactly when the bin's bad
//! rate is above the overall one, `< 0` when below, an empty bin has `WOE = 0`, and every
//! `IV_i ≥ 0` (it is `(p − q)·ln(p/q)`). WOE needs both classes: labels that are all 0 or all 1
//! are an error.
//!
//! # Federated WOE ([`federated_woe`]) — vertical FL, rows already aligned by PSI
//! * The **guest** holds the 0/1 labels of the aligned rows (and may bring its own binned
//!   features, which it handles locally); each **host** holds, for each of its features, the
//!   bin index of every aligned row.
//! * The guest generates a key pair ([`WoeParams::he`]: scheme and key size), encrypts every
//!   row's label with fresh randomness (in parallel) and sends the public key, then the
//!   ciphertexts in chunks of [`LABEL_CHUNK_ROWS`] rows, to every host.
//! * Each host adds, per (feature, bin), the ciphertexts of the bin's rows — one modular
//!   multiplication per row and feature — and counts the rows per bin in plaintext. It packs
//!   the encrypted bad counts several per ciphertext ([`ferry_crypto::packing`]),
//!   re-randomises the packed ciphertexts, and sends them back with the plain totals.
//! * The guest decrypts, checks the counts against its own labels (every feature's bad counts
//!   must add up to the guest's number of bad rows and every bin's total to the row count), and
//!   computes WOE and IV of every host feature.
//!
//! ## What each party learns (semi-honest parties)
//! * The **guest** learns, for every host feature, the number of bins and the (total, bad)
//!   count of every bin — hence its WOE and IV — but not the bins' edges or categories, nor
//!   which row is in which bin. It learns the host's real feature names only when the host sets
//!   `share_feature_names` (its own setting); otherwise it sees `<host>:feature_<j>`. It also
//!   learns whether each host feature is numeric (ordered bins) or categorical, which the merge
//!   plans of optimal binning need.
//! * A **host** learns nothing about the labels from the protocol itself: it only sees
//!   ciphertexts under the guest's key (IND-CPA) and the number of rows, which it already knew.
//!   With the guest's `send_woe_to_host` (default true), the guest sends each host the WOE of
//!   every bin of the host's own features, so that the host can WOE-transform its columns
//!   locally. **That discloses the bad rates of the host's bins**: with the bin totals it knows,
//!   a host can solve the WOE values for the per-bin bad counts (and so the overall bad count).
//!   Turn it off when that is too much; the host then cannot apply WOE itself.
//! * Every message is validated: key scheme and size (at least the receiving party's own
//!   `he.key_bits`), row counts, chunk positions, bin counts, ciphertext shapes; failures are
//!   errors that name the peer.
//!
//! Optimal binning of host features ([`federated_merge`]): after [`federated_woe`] on the
//! host's *fine* quantile bins, the guest computes a [`crate::binning::MergePlan`] per host feature from the
//! counts and sends the host only the plans (see [`crate::binning`] for what a plan reveals).

use crate::binning::{BinningParams, FeatureBinning, apply_merge_plan, merge_plan};
use ferry_context::{Context, FederationError, PartyId, Role};
use ferry_crypto::packing::PackingLayout;
use ferry_crypto::wire::CiphertextBatch;
use ferry_crypto::{
    HeError, HePublicKey, HeSecretKey, HeSettings, KeyGenError, OuSecretKey, PaillierSecretKey,
    SchemeKind,
};
use messages::{
    HostFeature, HostHeader, HostSums, LabelChunk, MergeMsg, PROTOCOL_VERSION, PublicKeyMsg, Reply,
    Setup, WoeValues,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use rug::Integer;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Instant;

/// Pseudo-rows given to a bin that has no bad or no good row, split between bad and good at
/// the overall bad rate (see the module documentation). Half a row is the usual continuity
/// correction: small enough not to move well-populated bins, enough to keep WOE finite.
pub const WOE_SMOOTHING: f64 = 0.5;

/// Rows per label message: 4096 Paillier-2048 ciphertexts are 2 MiB, well under every
/// message limit, and hosts start adding while later chunks are encrypted.
pub const LABEL_CHUNK_ROWS: usize = 4096;

/// Largest chunk a host accepts (the guest's own choice is [`LABEL_CHUNK_ROWS`]).
pub const MAX_CHUNK_ROWS: u32 = 1 << 16;

/// Most features a host may announce.
pub const MAX_HOST_FEATURES: usize = 100_000;

/// Most bins per feature (the missing bin included) accepted from a peer.
pub const MAX_BINS_PER_FEATURE: usize = 100_000;

/// Most bins over all of one host's features.
pub const MAX_TOTAL_BINS: usize = 1 << 22;

/// Longest feature name accepted from a peer, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Rows a host sums per parallel task (then the partial sums are added).
const ROWS_PER_TASK: usize = 1024;

/// Counts of one bin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinStats {
    pub total: u64,
    pub bad: u64,
}

impl BinStats {
    pub fn good(&self) -> u64 {
        self.total.saturating_sub(self.bad)
    }

    /// `bad / total`, `None` for an empty bin.
    pub fn bad_rate(&self) -> Option<f64> {
        (self.total > 0).then(|| self.bad as f64 / self.total as f64)
    }
}

/// WOE and IV of one feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureWoe {
    /// The feature's name as this party knows it (`<host>:<name>` for a host's feature).
    pub feature: String,
    /// The party that holds the feature.
    pub party: String,
    pub bins: Vec<BinStats>,
    pub woe: Vec<f64>,
    pub iv_per_bin: Vec<f64>,
    pub iv: f64,
    /// Human-readable bins (`"bin <i>"` for a host's feature: its edges stay with the host).
    pub labels: Vec<String>,
}

/// Why WOE could not be computed or exchanged.
#[derive(Debug, thiserror::Error)]
pub enum WoeError {
    #[error("WOE parameters: {0}")]
    Params(String),
    #[error("label of row {row} is {value}; WOE needs 0 (good) or 1 (bad)")]
    BadLabel { row: usize, value: f64 },
    #[error("{bins} bin indices but {labels} labels")]
    LengthMismatch { bins: usize, labels: usize },
    #[error("row {row} is in bin {bin}, but there are {n_bins} bins")]
    BinOutOfRange { row: usize, bin: u32, n_bins: usize },
    #[error("feature '{feature}': {reason}")]
    Feature { feature: String, reason: String },
    #[error("WOE needs both classes, but there are {bad} bad and {good} good rows")]
    SingleClass { bad: u64, good: u64 },
    #[error("party '{party}' refused: {reason}")]
    Refused { party: PartyId, reason: String },
    #[error("party '{party}' sent an invalid {what}: {reason}")]
    Peer {
        party: PartyId,
        what: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Federation(#[from] FederationError),
    #[error("key generation failed: {0}")]
    KeyGen(#[from] KeyGenError),
    #[error("encryption failed: {0}")]
    Encrypt(#[from] HeError),
}

impl WoeError {
    fn feature(feature: &str, reason: impl Into<String>) -> Self {
        WoeError::Feature {
            feature: feature.to_string(),
            reason: reason.into(),
        }
    }

    fn peer(party: &PartyId, what: &'static str, reason: impl Into<String>) -> Self {
        WoeError::Peer {
            party: party.clone(),
            what,
            reason: reason.into(),
        }
    }
}

fn check_labels(labels: &[f64]) -> Result<(), WoeError> {
    match labels
        .iter()
        .enumerate()
        .find(|(_, y)| **y != 0.0 && **y != 1.0)
    {
        Some((row, &value)) => Err(WoeError::BadLabel { row, value }),
        None => Ok(()),
    }
}

/// Per-bin (total, bad) counts of a binned column with 0/1 labels (1 = bad).
pub fn bin_stats(bins: &[u32], labels: &[f64], n_bins: usize) -> Result<Vec<BinStats>, WoeError> {
    if bins.len() != labels.len() {
        return Err(WoeError::LengthMismatch {
            bins: bins.len(),
            labels: labels.len(),
        });
    }
    check_labels(labels)?;
    let mut out = vec![BinStats::default(); n_bins];
    for (row, (&b, &y)) in bins.iter().zip(labels).enumerate() {
        let s = out.get_mut(b as usize).ok_or(WoeError::BinOutOfRange {
            row,
            bin: b,
            n_bins,
        })?;
        s.total += 1;
        s.bad += (y == 1.0) as u64;
    }
    Ok(out)
}

/// WOE and IV from per-bin counts. `labels` names the bins (empty: `"bin <i>"`).
pub fn woe_iv(
    feature: &str,
    party: &str,
    stats: &[BinStats],
    labels: &[String],
) -> Result<FeatureWoe, WoeError> {
    if !labels.is_empty() && labels.len() != stats.len() {
        return Err(WoeError::feature(
            feature,
            format!("{} bin labels for {} bins", labels.len(), stats.len()),
        ));
    }
    if let Some(i) = stats.iter().position(|s| s.bad > s.total) {
        return Err(WoeError::feature(
            feature,
            format!("bin {i} has more bad rows than rows"),
        ));
    }
    let bad: u64 = stats.iter().map(|s| s.bad).sum();
    let good: u64 = stats.iter().map(|s| s.good()).sum();
    if bad == 0 || good == 0 {
        return Err(WoeError::SingleClass { bad, good });
    }
    let (b_all, g_all) = (bad as f64, good as f64);
    let n = b_all + g_all;
    let (woe, iv_per_bin): (Vec<f64>, Vec<f64>) = stats
        .iter()
        .map(|s| {
            let (mut b, mut g) = (s.bad as f64, s.good() as f64);
            if s.bad == 0 || s.good() == 0 {
                b += WOE_SMOOTHING * b_all / n;
                g += WOE_SMOOTHING * g_all / n;
            }
            let (p, q) = (b / b_all, g / g_all);
            let w = (p / q).ln();
            (w, (p - q) * w)
        })
        .unzip();
    Ok(FeatureWoe {
        feature: feature.to_string(),
        party: party.to_string(),
        bins: stats.to_vec(),
        iv: iv_per_bin.iter().sum(),
        woe,
        iv_per_bin,
        labels: if labels.is_empty() {
            (0..stats.len()).map(|i| format!("bin {i}")).collect()
        } else {
            labels.to_vec()
        },
    })
}

/// One binned column: what [`federated_woe`] takes from each party.
#[derive(Clone, Debug, PartialEq)]
pub struct BinnedFeature {
    pub name: String,
    /// Number of bins (the missing bin included).
    pub n_bins: usize,
    /// Bin index per aligned row.
    pub bins: Vec<u32>,
    /// Human-readable bins (may be empty); they never leave the party.
    pub bin_labels: Vec<String>,
    /// Numeric (ordered bins) or categorical; disclosed to the guest for merge plans.
    pub ordered: bool,
}

impl BinnedFeature {
    /// A numeric column through its binning.
    pub fn numeric(binning: &FeatureBinning, values: &[f64]) -> Self {
        BinnedFeature {
            name: binning.feature.clone(),
            n_bins: binning.n_bins(),
            bins: binning.bin_numbers(values),
            bin_labels: binning.bin_labels(),
            ordered: binning.is_numeric(),
        }
    }

    /// A text column through its binning.
    pub fn text<S: AsRef<str>>(binning: &FeatureBinning, values: &[Option<S>]) -> Self {
        BinnedFeature {
            name: binning.feature.clone(),
            n_bins: binning.n_bins(),
            bins: binning.bin_texts(values),
            bin_labels: binning.bin_labels(),
            ordered: binning.is_numeric(),
        }
    }

    fn check(&self, rows: usize) -> Result<(), WoeError> {
        if self.name.is_empty() || self.name.len() > MAX_NAME_BYTES {
            return Err(WoeError::feature(
                &self.name,
                format!("names must have 1 to {MAX_NAME_BYTES} bytes"),
            ));
        }
        if self.n_bins == 0 || self.n_bins > MAX_BINS_PER_FEATURE {
            return Err(WoeError::feature(
                &self.name,
                format!(
                    "{} bins; 1 to {MAX_BINS_PER_FEATURE} are allowed",
                    self.n_bins
                ),
            ));
        }
        if self.bins.len() != rows {
            return Err(WoeError::feature(
                &self.name,
                format!(
                    "{} rows, but there are {rows} aligned rows",
                    self.bins.len()
                ),
            ));
        }
        if let Some((row, b)) = self
            .bins
            .iter()
            .enumerate()
            .find(|(_, b)| **b as usize >= self.n_bins)
        {
            return Err(WoeError::feature(
                &self.name,
                format!(
                    "row {row} is in bin {b}, but there are {} bins",
                    self.n_bins
                ),
            ));
        }
        if !self.bin_labels.is_empty() && self.bin_labels.len() != self.n_bins {
            return Err(WoeError::feature(
                &self.name,
                format!(
                    "{} bin labels for {} bins",
                    self.bin_labels.len(),
                    self.n_bins
                ),
            ));
        }
        Ok(())
    }
}

fn check_features(features: &[BinnedFeature], rows: usize) -> Result<(), WoeError> {
    let mut names = HashSet::new();
    for f in features {
        f.check(rows)?;
        if !names.insert(f.name.as_str()) {
            return Err(WoeError::feature(&f.name, "appears twice"));
        }
    }
    Ok(())
}

/// Settings of [`federated_woe`]; every party passes its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WoeParams {
    /// Guest: the scheme and key size it generates. Host: the scheme it accepts and the
    /// smallest key size (`key_bits`) it accepts from the guest.
    pub he: HeSettings,
    /// Host: send the guest the real names of its features (otherwise `feature_<j>`, shown as
    /// `<host>:feature_<j>`).
    pub share_feature_names: bool,
    /// Guest: send each host the WOE of its own bins, so that it can WOE-transform its
    /// features. Discloses the per-bin bad counts of the host's bins to the host.
    pub send_woe_to_host: bool,
    /// Seeds keys and encryption randomness (tests only: makes every secret predictable).
    /// Cannot be set from a configuration file.
    #[serde(skip)]
    #[schemars(skip)]
    pub insecure_test_rng_seed: Option<u64>,
}

impl Default for WoeParams {
    fn default() -> Self {
        WoeParams {
            he: HeSettings::default(),
            share_feature_names: false,
            send_woe_to_host: true,
            insecure_test_rng_seed: None,
        }
    }
}

impl WoeParams {
    pub fn validate(&self) -> Result<(), String> {
        self.he.validate().map_err(|e| format!("he.{e}"))
    }
}

/// What [`federated_woe`] returns to each party.
#[derive(Clone, Debug)]
pub enum WoeOutcome {
    Guest(GuestWoe),
    Host(HostWoe),
}

/// The guest's result: its own features first, then each host's, host by host.
#[derive(Clone, Debug)]
pub struct GuestWoe {
    pub features: Vec<FeatureWoe>,
    /// Per entry of `features`: whether its bins are ordered (numeric).
    pub ordered: Vec<bool>,
    pub report: WoeReport,
}

/// A host's result.
#[derive(Clone, Debug)]
pub struct HostWoe {
    pub features: Vec<HostFeatureWoe>,
}

/// One of a host's features after [`federated_woe`].
#[derive(Clone, Debug, PartialEq)]
pub struct HostFeatureWoe {
    /// The host's own name of the feature.
    pub name: String,
    /// The name the guest knows it by (`<host>:<name>` or `<host>:feature_<j>`).
    pub shared_as: String,
    pub n_bins: usize,
    /// WOE per bin, when the guest sends it (`send_woe_to_host`).
    pub woe: Option<Vec<f64>>,
}

/// Timings and traffic of the guest's run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WoeReport {
    pub rows: usize,
    pub host_features: usize,
    pub keygen_seconds: f64,
    pub encrypt_seconds: f64,
    pub decrypt_seconds: f64,
    pub total_seconds: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl WoeOutcome {
    pub fn guest(&self) -> Option<&GuestWoe> {
        match self {
            WoeOutcome::Guest(g) => Some(g),
            WoeOutcome::Host(_) => None,
        }
    }

    pub fn host(&self) -> Option<&HostWoe> {
        match self {
            WoeOutcome::Host(h) => Some(h),
            WoeOutcome::Guest(_) => None,
        }
    }
}

/// The messages of [`federated_woe`] and [`federated_merge`] (public so that tests and other
/// implementations can speak the protocol). Tags live under the `woe/` namespace.
pub mod messages {
    use ferry_context::Blob;
    use ferry_crypto::wire::CiphertextBatch;
    use ferry_crypto::{OuPublicKey, PaillierPublicKey};
    use serde::{Deserialize, Serialize};

    /// Version of the messages below.
    pub const PROTOCOL_VERSION: u32 = 1;

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub enum PublicKeyMsg {
        Paillier(PaillierPublicKey),
        Ou(OuPublicKey),
    }

    /// Guest → host, `setup`.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct Setup {
        pub version: u32,
        pub key: PublicKeyMsg,
        /// Aligned rows.
        pub rows: u64,
        /// Rows per [`LabelChunk`] (the last one may hold fewer).
        pub chunk_rows: u32,
        /// Whether [`WoeValues`] follow the sums.
        pub send_woe: bool,
    }

    /// An answer that may be a refusal with its reason.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub enum Reply<T> {
        Ok(T),
        Refused(String),
    }

    /// Host → guest, `header`.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct HostHeader {
        pub features: Vec<HostFeature>,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct HostFeature {
        /// The real name, or `feature_<j>`.
        pub name: String,
        /// Bins, the missing bin included.
        pub n_bins: u32,
        pub ordered: bool,
    }

    /// Guest → host, `labels`, `⌈rows / chunk_rows⌉` times.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct LabelChunk {
        pub first_row: u64,
        pub labels: WireBatch,
    }

    /// Host → guest, `sums`.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct HostSums {
        /// Rows per bin, per feature.
        pub totals: Vec<Vec<u64>>,
        /// Encrypted bad counts of every (feature, bin) in order, packed
        /// (`PackingLayout::new(plaintext_bits, bits(rows), 1)`, the first bin in the lowest
        /// slot) and re-randomised.
        pub bad_sums: WireBatch,
    }

    /// Guest → host, `values`: WOE per bin of each of the host's features.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct WoeValues {
        pub woe: Vec<Vec<f64>>,
    }

    /// Guest → host, `merge`: a merge plan per host feature, and the merged bins' WOE when the
    /// guest sends WOE to hosts.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct MergeMsg {
        pub plans: Vec<crate::binning::MergePlan>,
        pub woe: Option<Vec<Vec<f64>>>,
    }

    /// A [`CiphertextBatch`] whose bytes travel as one blob (same bytes on the wire).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct WireBatch {
        pub version: u16,
        pub scheme: u8,
        pub key_fingerprint: [u8; 8],
        pub element_bytes: u32,
        pub data: Blob,
    }

    impl From<CiphertextBatch> for WireBatch {
        fn from(b: CiphertextBatch) -> Self {
            WireBatch {
                version: b.version,
                scheme: b.scheme,
                key_fingerprint: b.key_fingerprint,
                element_bytes: b.element_bytes,
                data: Blob(b.data),
            }
        }
    }

    impl From<WireBatch> for CiphertextBatch {
        fn from(b: WireBatch) -> Self {
            CiphertextBatch {
                version: b.version,
                scheme: b.scheme,
                key_fingerprint: b.key_fingerprint,
                element_bytes: b.element_bytes,
                data: b.data.0,
            }
        }
    }
}

/// The namespace of every tag of this module.
const NAMESPACE: &str = "woe";

fn make_rng(params: &WoeParams, me: &PartyId) -> ChaCha20Rng {
    match params.insecure_test_rng_seed {
        Some(seed) => {
            // FNV-1a of the party name: each party its own stream.
            let h = me.as_str().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
            });
            ChaCha20Rng::seed_from_u64(seed ^ h)
        }
        None => ferry_crypto::random::fork_rng(&mut rand::rng()),
    }
}

/// Bits needed for a count of at most `rows`.
fn count_bits(rows: u64) -> u32 {
    (64 - rows.leading_zeros()).max(1)
}

/// The packing both sides derive from the key and the row count.
fn layout(plaintext_bits: u32, rows: u64) -> Result<PackingLayout, String> {
    PackingLayout::new(plaintext_bits, count_bits(rows), 1)
        .map_err(|e| format!("the key is too small to carry counts of {rows} rows: {e}"))
}

/// Federated WOE/IV (see the module documentation for the protocol and what each party
/// learns). Every party calls it with its own features and parameters:
///
/// * the guest with `labels` (0/1, one per aligned row) and its own binned features (may be
///   empty): it gets WOE/IV of its features and of every host's;
/// * each host with `labels = None` and its binned features (at least one); it gets the names
///   the guest knows its features by and, if the guest sends them, their WOE values.
pub fn federated_woe(
    ctx: &Context,
    features: &[BinnedFeature],
    labels: Option<&[f64]>,
    params: &WoeParams,
) -> Result<WoeOutcome, WoeError> {
    let valid = params.validate().map_err(WoeError::Params);
    let ctx = ctx.sub(NAMESPACE);
    match (ctx.role(), labels) {
        // A host answers the guest's setup even when its own parameters are wrong, so that
        // the guest learns why instead of waiting.
        (Role::Host, None) => host_woe(&ctx, features, params, valid).map(WoeOutcome::Host),
        (Role::Guest, Some(labels)) => {
            valid?;
            match params.he.scheme {
                SchemeKind::Paillier => {
                    guest_woe::<PaillierSecretKey>(&ctx, features, labels, params, |pk| {
                        PublicKeyMsg::Paillier(pk.clone())
                    })
                }
                SchemeKind::OkamotoUchiyama => {
                    guest_woe::<OuSecretKey>(&ctx, features, labels, params, |pk| {
                        PublicKeyMsg::Ou(pk.clone())
                    })
                }
            }
            .map(WoeOutcome::Guest)
        }
        (Role::Guest, None) => Err(WoeError::Params(
            "the guest must pass the labels of the aligned rows".into(),
        )),
        (Role::Host, Some(_)) => Err(WoeError::Params("a host holds no labels; pass None".into())),
        (role, _) => Err(WoeError::Params(format!(
            "federated WOE runs between a guest and hosts, not the {role}"
        ))),
    }
}

fn guest_woe<S: HeSecretKey>(
    ctx: &Context,
    features: &[BinnedFeature],
    labels: &[f64],
    params: &WoeParams,
    key_msg: impl Fn(&S::Public) -> PublicKeyMsg,
) -> Result<GuestWoe, WoeError> {
    let start = Instant::now();
    let n = labels.len();
    check_labels(labels)?;
    check_features(features, n)?;
    let me = ctx.me().clone();
    let mut out = Vec::new();
    let mut ordered = Vec::new();
    for f in features {
        let stats = bin_stats(&f.bins, labels, f.n_bins)?;
        out.push(woe_iv(&f.name, me.as_str(), &stats, &f.bin_labels)?);
        ordered.push(f.ordered);
    }
    let total_bad = labels.iter().filter(|y| **y == 1.0).count() as u64;
    if total_bad == 0 || total_bad == n as u64 {
        return Err(WoeError::SingleClass {
            bad: total_bad,
            good: n as u64 - total_bad,
        });
    }
    let hosts = ctx.hosts();
    let mut report = WoeReport {
        rows: n,
        ..WoeReport::default()
    };
    if hosts.is_empty() {
        report.total_seconds = start.elapsed().as_secs_f64();
        return Ok(GuestWoe {
            features: out,
            ordered,
            report,
        });
    }

    let mut rng = make_rng(params, &me);
    let t = Instant::now();
    let sk = S::generate(params.he.key_bits, &mut rng)?;
    report.keygen_seconds = t.elapsed().as_secs_f64();
    let pk = sk.public();
    let pack = layout(pk.plaintext_bits(), n as u64).map_err(WoeError::Params)?;
    ctx.broadcast(
        &hosts,
        "setup",
        &Setup {
            version: PROTOCOL_VERSION,
            key: key_msg(pk),
            rows: n as u64,
            chunk_rows: LABEL_CHUNK_ROWS as u32,
            send_woe: params.send_woe_to_host,
        },
    )?;
    let mut headers = Vec::with_capacity(hosts.len());
    for h in &hosts {
        match ctx.recv::<Reply<HostHeader>>(h, "header")? {
            Reply::Ok(header) => {
                check_header(h, &header)?;
                headers.push(header);
            }
            Reply::Refused(reason) => {
                return Err(WoeError::Refused {
                    party: h.clone(),
                    reason,
                });
            }
        }
    }

    for (c, chunk) in labels.chunks(LABEL_CHUNK_ROWS).enumerate() {
        ctx.check_cancelled()?;
        let t = Instant::now();
        let ms: Vec<Integer> = chunk.iter().map(|&y| Integer::from(y as u8)).collect();
        let cts = sk.encrypt_many(&ms, &mut rng)?;
        let batch = pk.encode_batch(&cts);
        report.encrypt_seconds += t.elapsed().as_secs_f64();
        ctx.broadcast(
            &hosts,
            "labels",
            &LabelChunk {
                first_row: (c * LABEL_CHUNK_ROWS) as u64,
                labels: batch.into(),
            },
        )?;
        ctx.progress(
            ((c + 1) * LABEL_CHUNK_ROWS).min(n) as f64 / n as f64 * 0.9,
            "labels encrypted and sent",
        );
    }

    let mut host_woe = Vec::with_capacity(hosts.len());
    for (h, header) in hosts.iter().zip(&headers) {
        let sums = match ctx.recv::<Reply<HostSums>>(h, "sums")? {
            Reply::Ok(s) => s,
            Reply::Refused(reason) => {
                return Err(WoeError::Refused {
                    party: h.clone(),
                    reason,
                });
            }
        };
        let t = Instant::now();
        let stats = open_sums(&sk, &pack, h, header, sums, n as u64, total_bad)?;
        report.decrypt_seconds += t.elapsed().as_secs_f64();
        let mut values = Vec::with_capacity(stats.len());
        for (f, s) in header.features.iter().zip(&stats) {
            let w = woe_iv(&format!("{h}:{}", f.name), h.as_str(), s, &[])?;
            values.push(w.woe.clone());
            out.push(w);
            ordered.push(f.ordered);
            report.host_features += 1;
        }
        host_woe.push(values);
    }
    if params.send_woe_to_host {
        for (h, woe) in hosts.iter().zip(host_woe) {
            ctx.send(h, "values", &WoeValues { woe })?;
        }
    }
    let counters = ctx.counters();
    report.bytes_sent = counters.bytes_sent();
    report.bytes_received = counters.bytes_received();
    report.total_seconds = start.elapsed().as_secs_f64();
    ctx.progress(1.0, "WOE computed");
    Ok(GuestWoe {
        features: out,
        ordered,
        report,
    })
}

fn check_header(host: &PartyId, header: &HostHeader) -> Result<(), WoeError> {
    let bad = |reason: String| WoeError::peer(host, "feature header", reason);
    if header.features.is_empty() || header.features.len() > MAX_HOST_FEATURES {
        return Err(bad(format!(
            "{} features; 1 to {MAX_HOST_FEATURES} are allowed",
            header.features.len()
        )));
    }
    let mut names = HashSet::new();
    let mut total = 0usize;
    for (j, f) in header.features.iter().enumerate() {
        if f.name.is_empty() || f.name.len() > MAX_NAME_BYTES {
            return Err(bad(format!(
                "the name of feature {j} has {} bytes (1 to {MAX_NAME_BYTES} allowed)",
                f.name.len()
            )));
        }
        if !names.insert(f.name.as_str()) {
            return Err(bad(format!("feature name '{}' appears twice", f.name)));
        }
        let bins = f.n_bins as usize;
        if bins == 0 || bins > MAX_BINS_PER_FEATURE {
            return Err(bad(format!(
                "feature '{}' has {bins} bins (1 to {MAX_BINS_PER_FEATURE} allowed)",
                f.name
            )));
        }
        total += bins;
    }
    if total > MAX_TOTAL_BINS {
        return Err(bad(format!(
            "{total} bins in all, above the limit of {MAX_TOTAL_BINS}"
        )));
    }
    Ok(())
}

/// Checks a host's sums against its header and the guest's labels, decrypts and unpacks them.
fn open_sums<S: HeSecretKey>(
    sk: &S,
    pack: &PackingLayout,
    host: &PartyId,
    header: &HostHeader,
    sums: HostSums,
    rows: u64,
    total_bad: u64,
) -> Result<Vec<Vec<BinStats>>, WoeError> {
    let bad = |reason: String| WoeError::peer(host, "bin counts", reason);
    if sums.totals.len() != header.features.len() {
        return Err(bad(format!(
            "counts for {} features, but it announced {}",
            sums.totals.len(),
            header.features.len()
        )));
    }
    for (f, t) in header.features.iter().zip(&sums.totals) {
        if t.len() != f.n_bins as usize {
            return Err(bad(format!(
                "{} bin counts for feature '{}', which it announced with {} bins",
                t.len(),
                f.name,
                f.n_bins
            )));
        }
        let sum = t.iter().try_fold(0u64, |acc, &x| acc.checked_add(x));
        if sum != Some(rows) {
            return Err(bad(format!(
                "the bins of feature '{}' hold {} rows, but there are {rows} aligned rows",
                f.name,
                sum.map_or("more than 2^64".to_string(), |s| s.to_string())
            )));
        }
    }
    let n_values: usize = sums.totals.iter().map(Vec::len).sum();
    let per_pack = pack.slots();
    let expected = n_values.div_ceil(per_pack);
    let batch: CiphertextBatch = sums.bad_sums.into();
    let cts = sk
        .public()
        .decode_batch(&batch)
        .map_err(|e| bad(format!("encrypted counts: {e}")))?;
    if cts.len() != expected {
        return Err(bad(format!(
            "{} packed ciphertexts, expected {expected} for {n_values} bins",
            cts.len()
        )));
    }
    let plain = sk.decrypt_many(&cts);
    let mut values: Vec<Integer> = Vec::with_capacity(n_values);
    for (k, x) in plain.iter().enumerate() {
        let count = per_pack.min(n_values - k * per_pack);
        values.extend(pack.unpack(x, count));
    }
    let mut it = values.into_iter();
    let mut out = Vec::with_capacity(sums.totals.len());
    for (f, totals) in header.features.iter().zip(&sums.totals) {
        let mut stats = Vec::with_capacity(totals.len());
        let mut feature_bad = 0u64;
        for (b, &total) in totals.iter().enumerate() {
            let Some(v) = it.next().and_then(|v| v.to_u64()) else {
                return Err(bad(format!(
                    "bin {b} of feature '{}' decrypts to a negative or oversized count",
                    f.name
                )));
            };
            if v > total {
                return Err(bad(format!(
                    "bin {b} of feature '{}' decrypts to {v} bad rows out of {total}",
                    f.name
                )));
            }
            feature_bad += v;
            stats.push(BinStats { total, bad: v });
        }
        if feature_bad != total_bad {
            return Err(bad(format!(
                "the bins of feature '{}' hold {feature_bad} bad rows, but the labels have \
                 {total_bad}",
                f.name
            )));
        }
        out.push(stats);
    }
    Ok(out)
}

/// What the host tells the guest when its own data fails a check: the details stay in the
/// host's error.
const DATA_REFUSAL: &str = "its data failed a local check (the details are in its own log)";

fn host_woe(
    ctx: &Context,
    features: &[BinnedFeature],
    params: &WoeParams,
    valid: Result<(), WoeError>,
) -> Result<HostWoe, WoeError> {
    let guest = ctx.guest()?;
    let setup: Setup = ctx.recv(&guest, "setup")?;
    let refuse = |reason: String, local: WoeError| -> WoeError {
        // Best effort: the guest is waiting for the header.
        let _ = ctx.send(&guest, "header", &Reply::<HostHeader>::Refused(reason));
        local
    };
    if let Err(e) = valid {
        return Err(refuse(e.to_string(), e));
    }
    if features.is_empty() {
        let e = WoeError::Params("a host must bring at least one binned feature".into());
        return Err(refuse(e.to_string(), e));
    }
    let rows = features[0].bins.len();
    if let Err(e) = check_features(features, rows) {
        return Err(refuse(DATA_REFUSAL.into(), e));
    }
    let protocol = |reason: String| refuse(reason.clone(), WoeError::peer(&guest, "setup", reason));
    if setup.version != PROTOCOL_VERSION {
        return Err(protocol(format!(
            "speaks WOE protocol version {}, this host version {PROTOCOL_VERSION}",
            setup.version
        )));
    }
    if setup.rows != rows as u64 {
        return Err(protocol(format!(
            "announces {} aligned rows, but this host has {rows}",
            setup.rows
        )));
    }
    if setup.chunk_rows == 0 || setup.chunk_rows > MAX_CHUNK_ROWS {
        return Err(protocol(format!(
            "chunks of {} rows (1 to {MAX_CHUNK_ROWS} allowed)",
            setup.chunk_rows
        )));
    }
    let (scheme, bits) = match &setup.key {
        PublicKeyMsg::Paillier(k) => (k.scheme(), k.key_bits()),
        PublicKeyMsg::Ou(k) => (k.scheme(), k.key_bits()),
    };
    if scheme != params.he.scheme || bits < params.he.key_bits {
        return Err(protocol(format!(
            "sent a {}-{bits} key, but this host requires {} with at least {} bits",
            scheme.name(),
            params.he.scheme.name(),
            params.he.key_bits
        )));
    }
    let plaintext_bits = match &setup.key {
        PublicKeyMsg::Paillier(k) => k.plaintext_bits(),
        PublicKeyMsg::Ou(k) => k.plaintext_bits(),
    };
    let pack = layout(plaintext_bits, rows as u64).map_err(&protocol)?;
    let me = ctx.me().clone();
    let shared: Vec<String> = features
        .iter()
        .enumerate()
        .map(|(j, f)| {
            if params.share_feature_names {
                f.name.clone()
            } else {
                format!("feature_{j}")
            }
        })
        .collect();
    let header = HostHeader {
        features: features
            .iter()
            .zip(&shared)
            .map(|(f, name)| HostFeature {
                name: name.clone(),
                n_bins: f.n_bins as u32,
                ordered: f.ordered,
            })
            .collect(),
    };
    ctx.send(&guest, "header", &Reply::Ok(header))?;
    let sums = match &setup.key {
        PublicKeyMsg::Paillier(pk) => host_sums(ctx, &guest, pk, &setup, features, &pack, params),
        PublicKeyMsg::Ou(pk) => host_sums(ctx, &guest, pk, &setup, features, &pack, params),
    };
    let sums = match sums {
        Ok(s) => s,
        Err(e) => {
            let reason = match &e {
                WoeError::Peer { reason, what, .. } => format!("invalid {what}: {reason}"),
                other => other.to_string(),
            };
            let _ = ctx.send(&guest, "sums", &Reply::<HostSums>::Refused(reason));
            return Err(e);
        }
    };
    ctx.send(&guest, "sums", &Reply::Ok(sums))?;
    let woe = if setup.send_woe {
        let values: WoeValues = ctx.recv(&guest, "values")?;
        check_woe_values(&guest, &values.woe, features.iter().map(|f| f.n_bins))?;
        Some(values.woe)
    } else {
        None
    };
    let mut woe = woe.map(|w| w.into_iter());
    Ok(HostWoe {
        features: features
            .iter()
            .zip(shared)
            .map(|(f, s)| HostFeatureWoe {
                name: f.name.clone(),
                shared_as: format!("{me}:{s}"),
                n_bins: f.n_bins,
                woe: woe.as_mut().and_then(|w| w.next()),
            })
            .collect(),
    })
}

fn check_woe_values(
    guest: &PartyId,
    woe: &[Vec<f64>],
    n_bins: impl ExactSizeIterator<Item = usize>,
) -> Result<(), WoeError> {
    let bad = |reason: String| WoeError::peer(guest, "WOE values", reason);
    if woe.len() != n_bins.len() {
        return Err(bad(format!(
            "{} features, this host has {}",
            woe.len(),
            n_bins.len()
        )));
    }
    for (j, (w, bins)) in woe.iter().zip(n_bins).enumerate() {
        if w.len() != bins {
            return Err(bad(format!(
                "{} values for feature {j}, which has {bins} bins",
                w.len()
            )));
        }
        if w.iter().any(|x| !x.is_finite()) {
            return Err(bad(format!("a value of feature {j} is not finite")));
        }
    }
    Ok(())
}

/// Receives the encrypted labels and returns the packed, re-randomised bad counts and the
/// plain totals.
fn host_sums<K: HePublicKey>(
    ctx: &Context,
    guest: &PartyId,
    pk: &K,
    setup: &Setup,
    features: &[BinnedFeature],
    pack: &PackingLayout,
    params: &WoeParams,
) -> Result<HostSums, WoeError> {
    let rows = setup.rows as usize;
    let chunk_rows = setup.chunk_rows as usize;
    let mut acc: Vec<Vec<Option<K::Ciphertext>>> =
        features.iter().map(|f| vec![None; f.n_bins]).collect();
    for c in 0..rows.div_ceil(chunk_rows) {
        ctx.check_cancelled()?;
        let chunk: LabelChunk = ctx.recv(guest, "labels")?;
        let first = c * chunk_rows;
        let count = chunk_rows.min(rows - first);
        if chunk.first_row != first as u64 {
            return Err(WoeError::peer(
                guest,
                "label chunk",
                format!(
                    "chunk {c} starts at row {}, expected {first}",
                    chunk.first_row
                ),
            ));
        }
        let batch: CiphertextBatch = chunk.labels.into();
        let cts = pk
            .decode_batch(&batch)
            .map_err(|e| WoeError::peer(guest, "label chunk", format!("chunk {c}: {e}")))?;
        if cts.len() != count {
            return Err(WoeError::peer(
                guest,
                "label chunk",
                format!("chunk {c} holds {} labels, expected {count}", cts.len()),
            ));
        }
        accumulate(pk, &mut acc, features, first, &cts);
    }
    let flat: Vec<K::Ciphertext> = acc
        .into_iter()
        .flatten()
        .map(|c| c.unwrap_or_else(|| pk.zero()))
        .collect();
    let packed = flat
        .par_chunks(pack.slots())
        .map(|group| pack.pack_ciphertexts(pk, group, 1))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WoeError::Params(format!("packing the bin counts: {e}")))?;
    let mut rng = make_rng(params, ctx.me());
    let packed = ferry_crypto::batch::rerandomize_many(pk, &packed, &mut rng);
    Ok(HostSums {
        totals: features
            .iter()
            .map(|f| {
                let mut t = vec![0u64; f.n_bins];
                for &b in &f.bins {
                    t[b as usize] += 1;
                }
                t
            })
            .collect(),
        bad_sums: pk.encode_batch(&packed).into(),
    })
}

/// Adds the label ciphertexts of rows `first..first + cts.len()` into their (feature, bin)
/// sums: tasks of [`ROWS_PER_TASK`] rows of one feature run in parallel, then their partial
/// sums are added.
fn accumulate<K: HePublicKey>(
    pk: &K,
    acc: &mut [Vec<Option<K::Ciphertext>>],
    features: &[BinnedFeature],
    first: usize,
    cts: &[K::Ciphertext],
) {
    let add = |slot: &mut Option<K::Ciphertext>, c: &K::Ciphertext| match slot {
        Some(s) => pk.add_assign(s, c),
        None => *slot = Some(c.clone()),
    };
    let pieces = cts.len().div_ceil(ROWS_PER_TASK);
    let partials: Vec<(usize, Vec<Option<K::Ciphertext>>)> = (0..features.len() * pieces)
        .into_par_iter()
        .map(|task| {
            let (f, p) = (task / pieces, task % pieces);
            let lo = p * ROWS_PER_TASK;
            let hi = (lo + ROWS_PER_TASK).min(cts.len());
            let bins = &features[f].bins[first + lo..first + hi];
            let mut part: Vec<Option<K::Ciphertext>> = vec![None; features[f].n_bins];
            for (c, &b) in cts[lo..hi].iter().zip(bins) {
                add(&mut part[b as usize], c);
            }
            (f, part)
        })
        .collect();
    for (f, part) in partials {
        for (slot, p) in acc[f].iter_mut().zip(part) {
            if let Some(p) = p {
                add(slot, &p);
            }
        }
    }
}

/// What [`federated_merge`] returns.
#[derive(Clone, Debug)]
pub enum MergeOutcome {
    /// The guest: WOE/IV of every host feature after merging, in the order of
    /// [`GuestWoe::features`] (host features only).
    Guest(Vec<FeatureWoe>),
    /// A host: its merged binnings, and their WOE if the guest sends WOE to hosts.
    Host(Vec<MergedHostFeature>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct MergedHostFeature {
    pub binning: FeatureBinning,
    pub woe: Option<Vec<f64>>,
}

/// Optimal binning of host features from their fine bins' counts, after [`federated_woe`] on
/// those fine bins.
///
/// * Guest (`woe` is its [`WoeOutcome::Guest`]): computes [`merge_plan`] for every host feature
///   with its own `binning` parameters and sends each host only its plans (plus the merged
///   bins' WOE when `params.send_woe_to_host`); returns the merged WOE/IV.
/// * Host (`woe` is its [`WoeOutcome::Host`], `host_binnings` the fine binnings in the order of
///   the features it passed to [`federated_woe`]): applies the plans and returns the merged
///   binnings.
pub fn federated_merge(
    ctx: &Context,
    woe: &WoeOutcome,
    host_binnings: &[FeatureBinning],
    binning: &BinningParams,
    params: &WoeParams,
) -> Result<MergeOutcome, WoeError> {
    let ctx = ctx.sub(NAMESPACE);
    match woe {
        WoeOutcome::Guest(g) => {
            binning.validate().map_err(WoeError::Params)?;
            let me = ctx.me().as_str().to_string();
            let mut merged = Vec::new();
            for h in ctx.hosts() {
                let mut plans = Vec::new();
                let mut values = Vec::new();
                for (f, &ordered) in g.features.iter().zip(&g.ordered) {
                    if f.party != h.as_str() || f.party == me {
                        continue;
                    }
                    let plan = merge_plan(&f.bins, ordered, binning);
                    let stats = plan
                        .merged_stats(&f.bins)
                        .map_err(|r| WoeError::feature(&f.feature, r))?;
                    let w = woe_iv(&f.feature, &f.party, &stats, &[])?;
                    values.push(w.woe.clone());
                    merged.push(w);
                    plans.push(plan);
                }
                let msg = MergeMsg {
                    plans,
                    woe: params.send_woe_to_host.then_some(values),
                };
                ctx.send(&h, "merge", &msg)?;
            }
            Ok(MergeOutcome::Guest(merged))
        }
        WoeOutcome::Host(hw) => {
            let guest = ctx.guest()?;
            if host_binnings.len() != hw.features.len() {
                return Err(WoeError::Params(format!(
                    "{} fine binnings for {} features",
                    host_binnings.len(),
                    hw.features.len()
                )));
            }
            for (b, f) in host_binnings.iter().zip(&hw.features) {
                if b.feature != f.name || b.n_bins() != f.n_bins {
                    return Err(WoeError::feature(
                        &f.name,
                        format!(
                            "the fine binning given ('{}', {} bins) is not the one WOE was \
                             computed on ({} bins)",
                            b.feature,
                            b.n_bins(),
                            f.n_bins
                        ),
                    ));
                }
            }
            let msg: MergeMsg = ctx.recv(&guest, "merge")?;
            if msg.plans.len() != host_binnings.len() {
                return Err(WoeError::peer(
                    &guest,
                    "merge plans",
                    format!(
                        "{} plans for {} features",
                        msg.plans.len(),
                        host_binnings.len()
                    ),
                ));
            }
            let merged = host_binnings
                .iter()
                .zip(&msg.plans)
                .map(|(b, p)| {
                    apply_merge_plan(b, p)
                        .map_err(|e| WoeError::peer(&guest, "merge plan", e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(w) = &msg.woe {
                check_woe_values(&guest, w, merged.iter().map(|b| b.n_bins()))?;
            }
            let mut woe = msg.woe.map(|w| w.into_iter());
            Ok(MergeOutcome::Host(
                merged
                    .into_iter()
                    .map(|binning| MergedHostFeature {
                        binning,
                        woe: woe.as_mut().and_then(|w| w.next()),
                    })
                    .collect(),
            ))
        }
    }
}

/// Synthetic data for benchmarks and tests: see [`synthetic`].
#[derive(Clone, Debug)]
pub struct SyntheticData {
    /// 0/1 labels, about 12% bad.
    pub labels: Vec<f64>,
    /// The guest's columns (name, values).
    pub guest: Vec<(String, Vec<f64>)>,
    /// Each host's columns.
    pub hosts: Vec<Vec<(String, Vec<f64>)>>,
}

fn unit(rng: &mut ChaCha20Rng) -> f64 {
    use rand::Rng;
    // 53 random bits in [0, 1), never exactly 0 after the shift below.
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

fn normal(rng: &mut ChaCha20Rng) -> f64 {
    let (u, v) = (unit(rng), unit(rng));
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A vertically split scorecard table drawn from `seed`: a latent risk `z ~ N(0, 1)` drives
/// the label (`P(bad) = 1 / (1 + exp(2.3 − 1.2 z))`) and, with different strengths and noise,
/// every column. Every third column has 80% zeros (heavy ties), every fourth 10% missing
/// values, every fifth is pure noise.
pub fn synthetic(
    rows: usize,
    guest_features: usize,
    host_features: &[usize],
    seed: u64,
) -> SyntheticData {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let z: Vec<f64> = (0..rows).map(|_| normal(&mut rng)).collect();
    let labels: Vec<f64> = z
        .iter()
        .map(|&z| f64::from(unit(&mut rng) < 1.0 / (1.0 + (2.3 - 1.2 * z).exp())))
        .collect();
    let column = |j: usize, rng: &mut ChaCha20Rng| -> Vec<f64> {
        let strength = if j % 5 == 4 {
            0.0
        } else {
            0.3 + 0.15 * (j % 4) as f64
        };
        let sign = if j.is_multiple_of(2) { 1.0 } else { -1.0 };
        z.iter()
            .map(|&z| {
                let x = sign * strength * z + normal(rng);
                if j % 4 == 3 && unit(rng) < 0.1 {
                    f64::NAN
                } else if j % 3 == 2 && unit(rng) < 0.8 {
                    0.0
                } else if j % 3 == 2 {
                    (x * 100.0).abs().round()
                } else {
                    x
                }
            })
            .collect()
    };
    let guest = (0..guest_features)
        .map(|j| (format!("bank_x{j}"), column(j, &mut rng)))
        .collect();
    let mut next = guest_features;
    let hosts = host_features
        .iter()
        .enumerate()
        .map(|(h, &d)| {
            (0..d)
                .map(|j| {
                    next += 1;
                    (format!("host{h}_secret_col{j}"), column(next - 1, &mut rng))
                })
                .collect()
        })
        .collect();
    SyntheticData {
        labels,
        guest,
        hosts,
    }
}

/// Result of [`bench_local`].
#[derive(Clone, Debug)]
pub struct WoeBench {
    /// Wall time of the federated run (key generation included), all parties in-process.
    pub seconds: f64,
    pub report: WoeReport,
    /// IV per feature as the guest computed it.
    pub iv: Vec<(String, f64)>,
}

/// Times [`federated_woe`] on [`synthetic`] data, the guest (`bank`) and one host per entry
/// of `host_features` (`host0`, `host1`, …) running in-process over a
/// [`ferry_context::LocalCluster`]; every column is binned with `binning` first (not timed).
/// `seed` fixes the data and, when `Some`, the keys and encryption randomness too.
pub fn bench_local(
    rows: usize,
    guest_features: usize,
    host_features: &[usize],
    binning: &BinningParams,
    he: HeSettings,
    seed: u64,
    seeded_keys: bool,
) -> Result<WoeBench, String> {
    use crate::binning::fit_numeric;
    use ferry_context::{LocalCluster, Roster};
    let data = synthetic(rows, guest_features, host_features, seed);
    let bin = |cols: &[(String, Vec<f64>)], labels: Option<&[f64]>| {
        cols.iter()
            .map(|(name, v)| {
                fit_numeric(name, v, labels, binning)
                    .map(|b| BinnedFeature::numeric(&b, v))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let guest = bin(&data.guest, Some(&data.labels))?;
    let host_binning = BinningParams {
        method: match binning.method {
            crate::binning::BinMethod::Optimal => crate::binning::BinMethod::Quantile,
            m => m,
        },
        ..binning.clone()
    };
    let hosts = data
        .hosts
        .iter()
        .map(|cols| {
            cols.iter()
                .map(|(name, v)| {
                    fit_numeric(name, v, None, &host_binning)
                        .map(|b| BinnedFeature::numeric(&b, v))
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = (0..hosts.len()).map(|h| format!("host{h}")).collect();
    let mut parties = vec![("bank", Role::Guest)];
    parties.extend(names.iter().map(|n| (n.as_str(), Role::Host)));
    let params = WoeParams {
        he,
        insecure_test_rng_seed: seeded_keys.then_some(seed),
        ..WoeParams::default()
    };
    let start = Instant::now();
    let outcomes = LocalCluster::new(Roster::of(&parties)).run(|ctx| {
        let me = ctx.me().as_str().to_string();
        match names.iter().position(|n| *n == me) {
            Some(h) => federated_woe(&ctx, &hosts[h], None, &params),
            None => federated_woe(&ctx, &guest, Some(&data.labels), &params),
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let mut guest_result = None;
    for o in outcomes {
        match o.result {
            Ok(WoeOutcome::Guest(g)) => guest_result = Some(g),
            Ok(WoeOutcome::Host(_)) => {}
            Err(e) => return Err(format!("{}: {e}", o.party)),
        }
    }
    let g = guest_result.ok_or("the guest returned no result")?;
    Ok(WoeBench {
        seconds,
        iv: g
            .features
            .iter()
            .map(|f| (f.feature.clone(), f.iv))
            .collect(),
        report: g.report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(total: u64, bad: u64) -> BinStats {
        BinStats { total, bad }
    }

    #[test]
    fn woe_and_iv_by_hand() {
        // B = 30, G = 70. Bin 0: 20 bad / 30 good; bin 1: 10 bad / 40 good.
        let w = woe_iv("x", "bank", &[s(50, 20), s(50, 10)], &[]).unwrap();
        let (p0, q0): (f64, f64) = (20.0 / 30.0, 30.0 / 70.0);
        let (p1, q1): (f64, f64) = (10.0 / 30.0, 40.0 / 70.0);
        assert!((w.woe[0] - (p0 / q0).ln()).abs() < 1e-12);
        assert!((w.woe[1] - (p1 / q1).ln()).abs() < 1e-12);
        let iv = (p0 - q0) * (p0 / q0).ln() + (p1 - q1) * (p1 / q1).ln();
        assert!((w.iv - iv).abs() < 1e-12);
        assert_eq!(w.labels, ["bin 0", "bin 1"]);
    }

    #[test]
    fn empty_and_pure_bins_are_smoothed_at_the_overall_rate() {
        // B = 10, G = 90, N = 100; bin 1 has no bad row; bin 2 is empty.
        let w = woe_iv("x", "bank", &[s(60, 10), s(40, 0), s(0, 0)], &[]).unwrap();
        let b: f64 = 0.5 * 10.0 / 100.0;
        let g: f64 = 40.0 + 0.5 * 90.0 / 100.0;
        assert!((w.woe[1] - ((b / 10.0) / (g / 90.0)).ln()).abs() < 1e-12);
        assert!(w.woe[1] < 0.0);
        assert_eq!(w.woe[2], 0.0);
        assert_eq!(w.iv_per_bin[2], 0.0);
    }

    #[test]
    fn one_class_is_an_error() {
        assert!(matches!(
            woe_iv("x", "bank", &[s(5, 0), s(5, 0)], &[]),
            Err(WoeError::SingleClass { bad: 0, good: 10 })
        ));
    }

    #[test]
    fn bin_stats_checks_its_input() {
        assert_eq!(
            bin_stats(&[0, 1, 1], &[1.0, 0.0, 1.0], 2).unwrap(),
            vec![s(1, 1), s(2, 1)]
        );
        assert_eq!(
            bin_stats(&[0, 2], &[1.0, 0.0], 2).unwrap_err().to_string(),
            "row 1 is in bin 2, but there are 2 bins"
        );
        assert_eq!(
            bin_stats(&[0, 1], &[1.0, 0.5], 2).unwrap_err().to_string(),
            "label of row 1 is 0.5; WOE needs 0 (good) or 1 (bad)"
        );
    }

    #[test]
    fn count_bits_and_layout() {
        assert_eq!(count_bits(1), 1);
        assert_eq!(count_bits(30_000), 15);
        let l = layout(2046, 30_000).unwrap();
        assert_eq!(l.slot_bits(), 16);
        assert_eq!(l.slots(), 127);
    }
}
