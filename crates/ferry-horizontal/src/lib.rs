//! Horizontal federated learning: clients hold the same columns for different rows, a server
//! (the job's arbiter) coordinates FedAvg (McMahan et al., AISTATS 2017) and never sees data.
//!
//! # Roles
//!
//! * **Server** = the `Role::Arbiter` party. Holds no training data (optionally a test file).
//! * **Clients** = the guest and every host. Each holds labelled rows with the same feature
//!   columns in the same order.
//!
//! # Protocol (per job)
//!
//! 1. Each client sends `Hello` (protocol version, a fingerprint of the job parameters, its
//!    feature names, its number of training rows). The server refuses mismatches and
//!    initialises the model (seeded).
//! 2. For each round `r = 1..R`:
//!    1. The server picks clients ([`ClientSelection`]: a fixed fraction without replacement, or
//!       Poisson sampling) and sends each selected client the global model; the others are told
//!       to idle. A client learns only whether it was selected itself, never who else was.
//!    2. A selected client evaluates the global model on its held-out rows and test file, trains
//!       `E` local epochs of mini-batch SGD, and sends statistics: its training-sample count, its
//!       mean training loss, the evaluations, and (contribution weighting) the validation quality
//!       of its local model.
//!    3. The server computes raw weights `w_i` ([`AggregationWeighting`]) and sends each client its
//!       relative weight `ω_i ∈ (0, 1]`: `w_i / max_j w_j` over the round's clients, or under DP
//!       `min(w_i / ŵ_max, 1)` against a reference fixed at the start (below). With secure
//!       aggregation it also sends the number of clients invited to it (not their names).
//!    4. Each client forms its contribution `v_i = ω_i · clip_S(sparsify(Δ_i))`, where
//!       `Δ_i = w_local − w_global`, and sends it in the clear or through secure aggregation.
//!    5. The server obtains `Σ v_i` over the clients that delivered (plus DP noise), and sets
//!       `w ← w + η_s · Σ v_i / D`: without DP `D = Σ ω_i` over those clients; under DP the
//!       fixed normaliser below. The shares `ω_i / D` are reported per round
//!       (`ctx.metric("weight/<party>")`, [`RoundReport::weights`], [`RoundReport::normaliser`]).
//! 3. The server sends the final model to every client; clients evaluate it and report back.
//!
//! Per-round metrics through `ctx.metric`: `train_loss`, `weight/<party>`, `epsilon`, `bytes`,
//! `update_bytes`, `dense_update_bytes`, `test_loss`/`test_accuracy`/`test_auc` (server test
//! file), `holdout_loss/<party>`, `holdout_accuracy/<party>`, `test_loss/<party>` (clients'
//! evaluations, step = rounds the evaluated model has seen). Clients report `local_train_loss`,
//! `holdout_*`, `test_*` and, with DP, the `update_norm` before clipping.
//!
//! # Models
//!
//! [`ModelSpec`]: logistic regression, linear regression, softmax regression and a multilayer
//! perceptron (ReLU hidden layers; sigmoid, identity or softmax output). All are one
//! feed-forward network over a flat `f64` parameter vector, trained by plain mini-batch SGD.
//! Models without hidden layers start at zero; MLPs start Glorot-uniform from the job seed.
//! [`Model::to_json`] / [`Model::from_json`] carry a format name and version checked on load.
//! [`Model`] implements [`ferry_ml::FederatedModel`] (`KIND` `fedavg`; every client needs its
//! label, the server none); its `validate` is [`FedAvgParams::validate_ranges`], the checks
//! that need no roster, and [`FedAvgParams::validate`] adds those against the client count.
//! [`predict`] and [`evaluate`] apply a model to a dataset (columns matched by name).
//!
//! # Checkpoints and resume
//!
//! [`train_with_checkpoints`] (and `FederatedModel::fit_with_checkpoints`) saves every party's
//! state after every round (the server: global model, RDP accountant, round reports; a client:
//! its last global model and top-k residual; see `checkpoint.rs`). Resumed, each client names
//! the rounds it has in `Hello`, the server picks the last round common to all and announces
//! it (`Control::Resume`), and the run continues to the model an uninterrupted run with the
//! same seeds gives. A client that had dropped out while the others went on may have no round
//! in common with them any more (stores keep the latest few): the server then resumes after
//! its own latest round and that client rejoins from its own last state. Secure aggregation's keys and masks are never checkpointed: a resumed
//! round draws new ones from operating-system entropy.
//!
//! # Secure aggregation
//!
//! With [`FedAvgParams::secure_aggregation`] the contributions go through `ferry-secagg`
//! (Bonawitz et al. 2017, semi-honest, dropout-tolerant; see that crate for the protocol and its
//! threat model). Each `v_i` is clipped per coordinate to `±clip` and encoded in fixed point with
//! `frac_bits` fractional bits in a `ring_bits`-bit ring; validation checks that a sum over all
//! clients cannot wrap. **The server learns only `Σ v_i` over the clients whose masked input
//! arrived**, plus what is sent in the clear: each client's sample count, training loss,
//! evaluation metrics and (contribution weighting) validation quality — scalars needed for the
//! weights and the per-round report. The threshold is a strict majority of the round's
//! participants by default; with fewer survivors the round fails with an error naming the stage.
//! A client that drops after sending its masked input is still in the sum.
//! The server gives each stage of the protocol [`SecureAggregation::stage_timeout_seconds`]
//! (default 60 s) for all clients' messages; a client that is later is dropped from the round
//! and from the rest of the job, without waiting for the session's receive timeout.
//!
//! Top-k sparsification is refused with secure aggregation (the chosen coordinates differ per
//! client and would be revealed); random-k, whose coordinates are drawn from the job seed and the
//! same for every client, works with it and reduces the masked vector.
//!
//! # Differential privacy
//!
//! Client-level DP in the style of DP-FedAvg (McMahan et al., ICLR 2018): the unit of privacy is
//! a client's entire contribution in a round.
//!
//! * **Clipping**: each client clips its (sparsified) update to L2 norm `S`; since `ω_i ≤ 1`,
//!   `‖v_i‖ ≤ S`, so adding or removing one client changes `Σ v_i` by at most `S` — provided no
//!   other client's contribution changes with it. Hence, under DP:
//! * **Weights and a fixed normaliser**: a client's weight depends on its own statistics only,
//!   `ω_i = min(w_i / ŵ_max, 1)`, where `ŵ_j` is client `j`'s weight at full quality (its
//!   sample count from `Hello`, or 1 for uniform weighting) and `ŵ_max` the largest over the
//!   clients that joined; a client must report the same sample count every round. The sum is
//!   divided by `D = q · Σ_j ŵ_j / ŵ_max` over every client that joined — the expected total
//!   weight of a round, `q` the selection fraction (DP-FedAvg's fixed-denominator estimator,
//!   McMahan et al. 2018) — instead of the realised `Σ ω_i`, which depends on who took part,
//!   would let one client's presence rescale everybody's contribution, and would reveal the
//!   secret sample's weight. `D` does not shrink when clients drop out: their rounds move the
//!   model less, never more. With full participation and no dropouts, `D = Σ ω_i` exactly.
//! * **Signal above noise**: the noise's standard deviation on one coordinate of the sum,
//!   `σ·S`, must stay below the most the `m = fraction · clients` expected participants can
//!   move that coordinate together, `m·S`; a schedule with `σ ≥ m` in any stage that starts
//!   within the job's rounds is refused with the numbers (`S` cancels, so the rule is `σ < m`;
//!   the normaliser scales signal and noise alike).
//! * **Noise**: Gaussian, standard deviation `σ_r · S` on the sum, `σ_r` from a staged
//!   [`NoiseSchedule`].
//!     * *With* secure aggregation the noise is **distributed**: each participant adds
//!       `N(0, σ_r² S² / t)` to its own contribution (`t` = the secure-aggregation threshold),
//!       so any sum of at least `t` survivors — the only sums the protocol releases — carries
//!       variance at least `σ_r² S²`, and the server never sees an un-noised value. Clients that
//!       collude with the server can subtract their own noise shares; the guarantee assumes
//!       fewer than `t` colluders, matching the secure-aggregation threat model.
//!     * *Without* secure aggregation the server sees each `v_i`, so noise is **central**: the
//!       server adds `N(0, σ_r² S²)` to the sum. This protects the released models against the
//!       clients and outsiders, not against the server.
//! * **Accounting**: an RDP accountant ([`RdpAccountant`]) composes the rounds' Rényi DP and
//!   converts with `ε = min_α RDP(α) + ln(1/δ)/(α−1)` over [`RDP_ORDERS`]. Each round is the
//!   sampled Gaussian mechanism with rate `q` ([`FedAvgParams::accounted_sampling_rate`]):
//!   `q = 1` (RDP `α/(2σ²)`) with full participation, and also under secure aggregation;
//!   `q = fraction` with Poisson selection and no secure aggregation (Mironov et al. 2019,
//!   integer orders). Fixed-size selection with `fraction < 1` is refused under DP because that
//!   bound assumes independent sampling. Skipped rounds are still charged (conservative). `ε` is
//!   reported after every round (`ctx.metric("epsilon")`, [`RoundReport::epsilon`]).
//! * **Subsampling amplification needs a secret sample.** It holds only against someone who
//!   does not know whether the protected client took part. Under DP the server therefore draws
//!   the Poisson sample from operating-system randomness (a sample drawn from the job seed could
//!   be recomputed by every party), and a client learns only its own selection: the round and
//!   weight messages carry no participant list. Without secure aggregation that makes the
//!   amplified bound hold against the clients and outsiders (the server sees every update
//!   under central noise and is not protected anyway). Secure aggregation cannot keep the
//!   sample from the round's participants — its key directory names them to each other, and
//!   the weight message tells each how many were invited — and its distributed noise is meant
//!   to protect against the server, which drew the sample; so there each round is charged at
//!   `q = 1`, however clients were selected. Which bound was used, and why, is in
//!   [`PrivacyReport`].
//! * **Budget**: before each round the server computes `ε` as it would be after that round; if it
//!   exceeds [`DpConfig::epsilon_budget`] training stops with the model so far and
//!   [`StopReason::PrivacyBudget`] explaining the numbers (an error if not even round 1 fits).
//! * **Assumptions**: the weights (sample counts, qualities) are treated as public — they are
//!   sent in the clear — and the DP guarantee covers the update vectors given them. Everything a
//!   client sends in the clear is listed by [`FedAvgParams::cleartext_statistics`] and, under
//!   DP, in [`FedAvgOutcome::privacy`] (a serialisable [`PrivacyReport`] with `ε`, `δ`, the
//!   accounted rate and the noise placement, on every party): its feature names and sample
//!   count at the start; each round it takes part in its sample count, mean training loss, the
//!   global model's metrics on its held-out rows and test file (row counts included),
//!   contribution weighting's validation quality, and, without secure aggregation, its clipped
//!   weighted update itself (top-k: with the coordinates' indices); with secure aggregation its
//!   participation, visible to the server and the round's other participants. Timing (when a
//!   selected client's messages arrive) is not hidden. [`DpConfig::noise_seed`] exists for
//!   in-process tests only and cannot be set from job parameters. Noise is
//!   drawn in floating point (Box–Muller over ChaCha20) and rounded to fixed point under secure
//!   aggregation, which ignores the floating-point attacks on the Gaussian mechanism's low-order
//!   bits; the clients' local data selection and shuffling are not part of the guarantee.
//! * With `σ = 0` and a clip norm no update reaches, the training is bit-for-bit plain FedAvg.
//!
//! # Communication reduction
//!
//! [`Sparsification::TopK`] sends the `⌈fraction·P⌉` largest-magnitude coordinates of
//! `Δ_i + e_i` as (index, value) pairs; `e_i`, the error-feedback residual, keeps what was not
//! sent for the next round. [`Sparsification::RandomK`] uses a coordinate set shared by all
//! clients, drawn from the job seed without replacement across rounds (every coordinate at
//! least once per `⌈1/fraction⌉` rounds), and clients *train only those coordinates* in that
//! round — a structured update (Konečný et al. 2016, "Federated learning: strategies for
//! improving communication efficiency"): the update is zero elsewhere, so nothing is held back
//! and there is no residual. Error feedback is deliberately not used with random-k: a FedAvg update is a
//! whole local-training displacement, and a coordinate that waits `1/fraction` rounds on
//! average would accumulate that displacement once per round and overshoot by that factor when
//! its turn comes (logistic regression on default_credit_homo diverged to test loss 1.9 in 10
//! rounds that way, with or without secure aggregation). Random-k converges more slowly than
//! dense FedAvg — each round moves only its share of the coordinates.
//!
//! [`RoundReport::bytes`] is the round's measured traffic (`ctx.counters()` on the server,
//! through which all messages pass); [`RoundReport::update_bytes`] the update phase alone and
//! [`RoundReport::dense_update_bytes`] what dense `f64` updates would have cost.
//!
//! # Evaluation
//!
//! Clients hold out [`FedAvgParams::validation_fraction`] of their rows (seeded, per party) and
//! evaluate every global model they receive on them and on their own test file; the server
//! evaluates on its test file after every round. Metrics come from `ferry_ml::metrics`
//! (log loss, accuracy, AUC; RMSE, R²; multi-class accuracy and cross-entropy).
//! [`train_centralised`] trains the same model on pooled data for the baseline.

mod checkpoint;
mod dp;
mod error;
mod fedavg;
mod federated_model;
mod model;
mod params;
mod sparse;
mod train;

pub use checkpoint::CHECKPOINT_VERSION;
pub use dp::{
    ClearStatistic, DpConfig, NoisePlacement, NoiseSchedule, NoiseStage, PrivacyReport, RDP_ORDERS,
    RdpAccountant, clip_l2, rdp_gaussian,
};
pub use error::HflError;
pub use fedavg::{
    Contribution, Evaluation, FedAvgOutcome, PROTOCOL_VERSION, RoundReport, Split, StopReason,
    clients_of, train, train_with_checkpoints,
};
pub use model::{Model, ModelSpec, Task, predict};
pub use params::{
    AggregationWeighting, ClientSelection, FedAvgParams, SecureAggregation, SelectionMode,
};
pub use sparse::Sparsification;
pub use train::{EvalMetrics, LocalTraining, evaluate, train_centralised};
