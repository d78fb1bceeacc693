//! Vertical (hetero) federated logistic and linear regression.
//!
//! The guest holds the labels and some feature columns of a set of rows; each host holds other
//! columns of the same rows (already aligned by PSI: same ids, same order). Together they fit
//! `u = w_g·x_g + b + Σ_k w_k·x_k` without any party seeing another's columns, the labels
//! (hosts) or another party's gradient. Two protocols share one code path:
//!
//! * **with an arbiter** ([`ResolvedMode::WithArbiter`]): the arbiter generates the only
//!   Paillier (or OU) key pair and decrypts masked gradients;
//! * **without a third party** ([`ResolvedMode::WithoutThirdParty`]): every data party has its
//!   own key pair; works for guest + one host and guest + several hosts.
//!
//! Entry points: [`train()`] / [`fit`] (every role), [`predict()`], [`ModelPart`] (versioned JSON),
//! [`LinearParams`], and [`reference::train_pooled`], the centralised model the federated one
//! is checked against. Poisson regression is not offered: its residual `e^u − y` is not a sum
//! of per-party terms, so it does not fit the additive sharing below.
//!
//! # The loss as a quadratic
//! Both tasks use a per-row loss that is quadratic in the score, `ℓ(u) = a + b·u + c/2·u²`,
//! with residual `r = ℓ'(u) = b + c·u`:
//!
//! | task | a | b | c | |
//! |---|---|---|---|---|
//! | linear | y²/2 | −y | 1 | exact least squares |
//! | logistic (y ∈ {0,1}) | ln 2 | ½ − y | ¼ | 2nd-order Taylor expansion of `log(1+e^u) − y·u` at 0 |
//!
//! The Taylor residual is the one FATE's hetero LR uses. Because `r` is linear in `u`, it is a
//! sum of per-party shares that need no communication: the guest holds
//! `r_g = b(y) + c·u_g` (labels stay at the guest) and host `k` holds `r_k = c·u_k`.
//! The gradient sum of party `P` over a batch is
//!
//! ```text
//!     g_P = X_P^T·r = X_P^T·r_P  +  Σ_{Q≠P} X_P^T·r_Q
//!                     (local)       (cross terms: P's columns, Q's share)
//! ```
//!
//! # Encrypted rows, computed once
//! Instead of encrypting residuals in every batch, every data party encrypts its own rows
//! **once**, before training: row `i` becomes one ciphertext (or a few) whose plaintext packs
//! the row's quantised columns into slots ([`ferry_crypto::packing`]). The guest's rows carry
//! two extra columns: the constant 1 (intercept) and `b(y_i)` (needed only for the training
//! loss). Each party sends its encrypted rows to every other data party. In every batch, party
//! `Q` computes the cross term for every other party `P` as one multi-exponentiation
//! `Σ_i e_i·[[x_P,i]]` with the integer-quantised share `e_i ≈ 2^f·r_Q,i` as scalar; the
//! slots of the result hold `Σ_i r_Q,i·x_P,i,j` for every column `j` at once. The bucket
//! method (module `msm`) makes that about `⌈bits/w⌉·(rows + 2^(w+1))` ciphertext additions, a few
//! milliseconds per batch. Per batch nothing is encrypted and each party decrypts one or two
//! ciphertexts.
//!
//! Fixed point: column `j` of party `P` is scaled by its own power of two so its largest
//! magnitude uses `feature_bits` bits; residual shares get `residual_frac_bits` fractional
//! bits and must stay below `2^residual_int_bits` ([`Precision`]); slots have room for the sum
//! of a whole batch of such products from every other data party, so packed sums never overflow (checked by construction,
//! and a residual beyond the bound stops training with [`LinearError::ResidualOutOfRange`]).
//!
//! # Message flow
//! Set-up (both modes): the guest sends the parameters and a fingerprint of its rows (count and
//! SHA-256 of the ids in order) to every other party; each replies whether it can take part
//! (same parameters, same rows); the guest sends go or the reason to stop to everyone. Then:
//!
//! *With an arbiter A:* A generates the key pair and sends the public key to the data parties.
//! Every data party encrypts its packed rows under A's key and sends them to the other data
//! parties (never to A). Per batch, at every data party `P`:
//! 1. compute `u_P`, the share `r_P`, and for each other data party `Q` the encrypted cross
//!    term `[[X_Q^T·r_P]]`, sent to `Q`;
//! 2. add up the cross terms received for itself, add a random mask `R` that is 40 bits longer
//!    than the packed value (statistically hiding), re-randomise, send to A;
//! 3. A decrypts and returns `V + R`; `P` subtracts `R`, unpacks its cross terms, adds its
//!    local term, and updates its own weights;
//! 4. hosts send `w_k·g_k` and their penalty to the guest (for the loss, below).
//!
//! *Without a third party:* every data party generates its own key pair and sends the public
//! key to the others, encrypts its packed rows under its own key and sends them to the other
//! data parties. Per batch, at every data party `P`:
//! 1. compute `u_P`, `r_P`, and for every other data party `Q` the encrypted cross term
//!    `[[X_Q^T·r_P]]_Q` (under `Q`'s key);
//! 2. send it to `Q`'s aggregator (the first host for the guest, the guest for every host);
//!    the aggregator adds up all parts for `Q` (including its own), re-randomises the total
//!    and sends it to `Q`. With one host the aggregator is simply the other party;
//! 3. `P` decrypts its total with its own key, unpacks, adds its local term, updates;
//! 4. hosts send `w_k·g_k` and their penalty to the guest.
//!
//! At the end of every epoch, hosts send their validation partial scores to the guest (only if
//! a validation set is used), and the guest sends every party "stop / go on" and "these weights
//! are the best so far".
//!
//! *Training loss at the guest:* with `u_h = Σ_k u_k`, `G = c·Σ u_g·u_h` (its weights dotted
//! with its decrypted cross terms), `B = c·Σ b(y)·u_h` (the extra `b` slot) and
//! `H = Σ_k w_k·g_k = Σ u_h·r`, the batch loss is
//! `Σ(a + b·u_g + c/2·u_g²) + (B/c + G + H)/2`, exact for the quadratic loss.
//!
//! # Security model and what each party learns
//! Semi-honest (honest-but-curious) parties; with an arbiter, the arbiter does not collude
//! with a data party. Paillier/OU are IND-CPA, so ciphertexts reveal nothing to parties without
//! the secret key. Every encrypted gradient part is re-randomised by the party that computed
//! it (and sums again by the aggregator): the owner of the row ciphertexts knows their
//! randomness, and without fresh randomness could test guesses of the other party's residual
//! shares against the part's randomiser.
//!
//! What crosses the wire, and what each party can compute from it:
//!
//! * **Guest** learns: its own gradient sum `g_g = X_g^T·r` per batch (hence `X_g^T·u_h`, as in
//!   FATE's hetero LR, where the guest also sees its gradient); the scalars `Σ b(y)·u_h`
//!   (through the `b` slot), and `w_k·g_k` of each host per batch (together exactly what the
//!   training loss needs: one scalar more than the loss itself); with a validation set, each
//!   host's partial scores `u_k` on the validation rows; the hosts' row counts and id digests
//!   (they equal its own). It never receives a host's features, weights or gradient in
//!   plaintext.
//! * **Host** learns: its own gradient sum `g_k = X_k^T·r` per batch (hence `X_k^T·r_g`, as in
//!   FATE); the parameters and the guest's row fingerprint; "stop / best" per epoch. It never
//!   receives labels (`b(y)` travels only encrypted under the guest's or the arbiter's key),
//!   residuals, the guest's or another host's gradient, or the loss.
//! * **Arbiter** learns: the parameters, the row count (not the ids' digest), per batch one
//!   masked packed value per data party and ciphertext column (`V + R`, within statistical
//!   distance `2^-40` of uniform noise), and "stop / best" per epoch. It never receives
//!   features, labels, weights or unmasked gradients, and never sees the encrypted rows.
//!
//! In neither mode does a party receive another party's plaintext gradient: every gradient is
//! assembled only at its owner. Without an arbiter no party ever decrypts anything for
//! somebody else, so there is nothing to mask; each party decrypts only the (re-randomised)
//! total of its own cross terms.
//!
//! *Collusion* (outside the model): the arbiter together with a data party could decrypt the
//! other parties' encrypted rows, i.e. their features and the guest's labels. FATE's
//! coordinated LR has the same weakness (it leaks residuals, hence labels). Without an
//! arbiter, two hosts together learn nothing more about the guest than each learns alone;
//! the guest together with one host learns the other host's `X^T·r` gradient information.
//!
//! *Prediction* ([`predict()`]): each host sends its partial scores `w_k·x` for the requested
//! rows to the guest, which adds them up (the same as FATE). Model parts never leave their
//! owners.

mod data;
pub mod error;
mod messages;
pub mod model;
mod msm;
pub mod optim;
pub mod params;
pub mod plan;
pub mod predict;
pub mod reference;
pub mod report;
pub mod train;

pub use error::LinearError;
pub use model::{MODEL_FORMAT, MODEL_FORMAT_VERSION, ModelPart};
pub use params::{
    EarlyStopping, HeParams, LinearParams, Mode, Optimizer, Penalty, Precision, ResolvedMode, Task,
};
pub use predict::predict;
pub use report::{EpochRecord, HeOps, TrainReport};
pub use train::{MASK_STATISTICAL_BITS, Trained, fit, train};
