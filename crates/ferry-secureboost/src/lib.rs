//! Vertical SecureBoost: gradient-boosted decision trees over features split between a *guest*
//! (labels and some features, holder of the homomorphic key) and one or more *hosts* (features
//! only), after Cheng et al., "SecureBoost: A Lossless Federated Learning Framework" (2019).
//!
//! The model is **lossless**: it is exactly the model the same algorithm
//! ([`centralized::train_centralized`]) learns on the joined table. Gradients and hessians are
//! quantised to integers before anything happens (both trainers do this), so the guest
//! decrypts the very integer sums the centralised trainer adds up in the clear, and both make
//! bit-identical decisions.
//!
//! # Entry points
//! * [`train`] / [`train_with_report`]: every party calls it with its own rows (aligned on ids,
//!   same order everywhere); the function dispatches on `ctx.role()`. The guest passes labelled
//!   data, hosts pass features. Each party gets its own [`ModelPart`]; store it with
//!   [`ModelPart::to_json`] and load it with [`ModelPart::from_json`] (versioned, checked).
//! * [`train_with_checkpoints`]: the same, saving each party's state after every boosting
//!   round (guest) or tree (hosts) into a [`CheckpointStore`] the caller provides, and resuming
//!   from the last checkpoint all parties have; the resumed model equals an uninterrupted run's
//!   (what is saved and why nothing else is needed: [`checkpoint`]).
//! * [`predict()`]: federated prediction; the guest gets [`Predictions`], hosts `None`.
//! * [`centralized::train_centralized`]: the same algorithm in the clear on a joined table (the
//!   reference for tests and audits); [`model::compare_models`] compares two complete models,
//!   and [`GuestModel::resolve`] turns a federated model into a complete one when all parts are
//!   in one place.
//!
//! # Algorithm
//! XGBoost-style second-order boosting with histogram split finding:
//! * Objectives ([`Objective`]): binary logistic, squared error, multi-class softmax (one tree
//!   per class per round). Base score: log-odds of the positive rate, the mean target, or log
//!   class priors.
//! * Binning: every party bins its own features with exact quantiles ([`ferry_ml::binning`],
//!   at most `max_bin` value bins plus a missing-value bin).
//! * Split gain `G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)` (XGBoost's scale, without the ½); a
//!   split needs gain above `gamma` and above 1e-6, and both children need a hessian sum of at
//!   least `min_child_weight`. Missing values try both directions; the better one is the
//!   node's default. Leaf value `−η·G/(H+λ)`.
//! * Per tree: Bernoulli row sampling (`subsample`) and a feature subset over the joined
//!   feature list (`colsample`), both from the seeded generator.
//! * Quantisation: per tree, `g` and `h` get power-of-two scales so the largest magnitude maps
//!   to `2^precision_bits` (32 by default, finer than XGBoost's float32 gradients).
//! * Early stopping on the validation metric (AUC, RMSE or multi-class log loss) after
//!   `early_stopping_rounds` rounds without improvement; the model keeps the best round.
//!
//! # Protocol
//! Setup (once): each host sends its row count and the number of bins of each feature; the
//! guest checks the row counts, generates a key pair (Paillier or Okamoto–Uchiyama,
//! `he.key_bits`) and sends the public key; hosts check the key matches their configuration
//! and confirm. When resuming, each host's hello names its latest checkpoint (a tree count); the
//! guest picks the minimum over all parties (rounded down to a whole round), sends it with the
//! count of each host's splits in the kept trees and keeps the earlier model id; each host checks
//! both against its checkpoint, drops later trees' splits, and both continue at that tree.
//!
//! Per tree:
//! 1. Guest → hosts: the tree's sampled rows and the host's selected features, then the
//!    encrypted `(g, h)` of every sampled row — both packed into *one* plaintext
//!    (`q_g + q_h·2^s`, slot width `s` from the precision and the row count) and encrypted by
//!    the key owner (CRT-accelerated), in chunks of [`protocol::GH_CHUNK`] ciphertexts.
//! 2. Per level (two round trips, whatever the number of nodes):
//!    * Guest → hosts: the sampled rows of each node whose histogram is needed — the root, or
//!      the child with fewer rows of each split node. Each host adds up the ciphertexts of
//!      every (node, feature, bin) in parallel across features, packs as many bins as fit into
//!      one ciphertext (homomorphic shifts, Horner's rule), re-randomises the packed
//!      ciphertexts and sends them back. The guest decrypts and derives the larger sibling's
//!      histogram by subtracting in the clear from the parent's (cheaper than subtracting
//!      ciphertexts on the host, and it reveals nothing the guest could not compute itself).
//!    * The guest finds every node's best split over all parties (its own histograms are
//!      plaintext). Guest → each host: the splits it won, as (feature position, bin, missing
//!      direction) and the node's rows; the host stores the threshold under a new *split id*
//!      and answers with the split id and a bit set of the rows that go left.
//! 3. Guest → hosts: "tree done". With a validation set, the guest then routes the validation
//!    rows through the new tree (one query round per level that has host splits).
//!
//! End: guest → hosts: the number of trees kept; hosts drop splits of later trees and report
//! their homomorphic operation counts.
//!
//! Prediction ([`predict()`]): hosts send their model id and row count; the guest walks all
//! trees at once, resolves its own splits locally and, per level, sends each host one message
//! with every (split id, rows) it needs; the host answers one bit per row.
//!
//! # What each party learns (semi-honest model)
//! * **Hosts** receive only ciphertexts under the guest's key, their own selected feature
//!   indices, row lists, split decisions on their own features and routing queries. They
//!   learn the instance space of every node (which rows are together in a node — standard
//!   SecureBoost leakage), hence the tree structure, and which of their splits were chosen.
//!   They never see gradients, hessians, labels, leaf values or the guest's splits' features.
//! * **The guest** learns, for every node and every host feature, the per-bin sums of
//!   gradients and hessians (standard SecureBoost leakage), the number of bins of each host
//!   feature, which host feature index and bin each chosen host split uses, and for every row
//!   on a path the outcome of host splits. It never learns host thresholds or raw host values.
//!   Packed histograms are re-randomised so the guest cannot match a single-row bin to the
//!   ciphertext it produced.
//! * Not protected: a malicious party. A host can send wrong histograms or partitions (the
//!   guest checks that every feature's histogram adds up to the node totals, that partitions
//!   agree with histogram sums, and that ids and lengths are valid, but it cannot detect a
//!   consistent lie); the guest can ask for arbitrary partitions and so learn host feature
//!   orderings. The key schemes are IND-CPA; the guest never returns decryptions to a host.
//!
//! # Efficiency
//! Encryptions: one per sampled row per tree. Ciphertext additions: about
//! `rows × host features` for the root and at most half that per further level. Decryptions:
//! one per packed ciphertext (tens per level). Rounds: 2 per level plus one per tree.
//! [`TrainReport`] counts every homomorphic operation so benchmarks can compute the
//! "crypto floor" ([`HeOpCounts::floor_seconds`]). Measured numbers (default_credit, 10 trees,
//! depth 3, Paillier-2048: 13 s in-process on 2 cores, 1.7× the floor) and how to reproduce
//! them: `bench/README.md` and `examples/vertical_benchmark.rs`.
//!
//! # Parameters
//! See [`SecureBoostParams`]: `num_trees`, `max_depth`, `learning_rate`, `min_child_weight`,
//! `lambda`, `gamma`, `subsample`, `colsample`, `max_bin`, `early_stopping_rounds`, `seed`,
//! `he` ([`ferry_crypto::HeSettings`]: `scheme` Paillier by default, or OU; `key_bits` 2048,
//! smaller only with `he.allow_insecure_key_bits`, which code sets and JSON cannot),
//! `precision_bits`. All parties pass the same parameters, except that the objective matters
//! only at the guest: through [`ferry_ml::FederatedModel::follow_labels`] a guest's label may
//! choose it while the hosts keep the default.
//!
//! # Feature importance
//! [`ModelPart::feature_importance`] (guest part): split count and total gain per feature; host
//! features appear as `<host>:feature_<index>`, since the guest never learns their names. The
//! [`ferry_ml::FederatedModel`] implementation (`KIND` `hetero_secureboost`) puts it into the
//! training summary.

pub mod centralized;
pub mod checkpoint;
mod error;
mod federated_model;
mod guest;
mod host;
pub mod importance;
pub mod model;
mod objective;
pub mod online;
pub mod params;
mod predict;
pub mod protocol;
pub mod report;
mod sampling;
pub mod split;

pub use error::SecureBoostError;
pub use importance::FeatureImportance;
pub use model::{GuestModel, HostModel, HostSplit, ModelError, ModelPart, Node, SplitRule, Tree};
pub use params::{MAX_NUM_CLASS, Objective, ParamError, SecureBoostParams};
pub use predict::{Predictions, predict};
pub use report::{CryptoRates, HeOpCounts, TrainReport, TreeReport};

use ferry_context::{Context, Role};
use ferry_data::Dataset;
pub use ferry_ml::checkpoint::{CheckpointStore, Checkpoints, MemoryCheckpoints};

/// Trains a SecureBoost model; every party calls this with its own (aligned) rows and gets its
/// own model part. The guest's `data` must carry labels; hosts' labels are ignored.
pub fn train(
    ctx: &Context,
    data: &Dataset,
    params: &SecureBoostParams,
    validation: Option<&Dataset>,
) -> Result<ModelPart, SecureBoostError> {
    train_with_report(ctx, data, params, validation).map(|(model, _)| model)
}

/// [`train`], also returning what the run measured (per-tree time and metrics, operation
/// counts, traffic). The guest's report includes every host's operation counts.
pub fn train_with_report(
    ctx: &Context,
    data: &Dataset,
    params: &SecureBoostParams,
    validation: Option<&Dataset>,
) -> Result<(ModelPart, TrainReport), SecureBoostError> {
    train_with_checkpoints(ctx, data, params, validation, Checkpoints::NONE)
}

/// [`train_with_report`] with checkpoints: every party saves its state into `checkpoints.save`
/// after every boosting round (guest) or tree (hosts); with `checkpoints.resume_from` (on every
/// party) training continues from the last checkpoint all parties have there, and the model
/// equals that of an uninterrupted run with the same parameters and seed. `num_trees` may be
/// raised for the resumed run; every other parameter and the data must be the same.
pub fn train_with_checkpoints(
    ctx: &Context,
    data: &Dataset,
    params: &SecureBoostParams,
    validation: Option<&Dataset>,
    checkpoints: Checkpoints<'_>,
) -> Result<(ModelPart, TrainReport), SecureBoostError> {
    match ctx.role() {
        Role::Guest => guest::train_guest(ctx, data, params, validation, checkpoints)
            .map(|(m, r)| (ModelPart::Guest(m), r)),
        Role::Host => host::train_host(
            ctx,
            data,
            params,
            validation,
            host::Tamper::Honest,
            checkpoints,
        )
        .map(|(m, r)| (ModelPart::Host(m), r)),
        Role::Arbiter => Err(SecureBoostError::UnsupportedRole(Role::Arbiter)),
    }
}
