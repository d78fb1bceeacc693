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
//! is checked against. [`ModelPart`] implements [`ferry_ml::FederatedModel`] (`KIND`
//! `hetero_lr`). Poisson regression is not offered: its residual `e^u − y` is not a sum
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
//! (same parameters, same rows); the guest sends go or the reason to stop to everyone. The one
//! parameter a party takes from the guest instead of comparing it is `task`: only the guest
//! has labels, so only it can choose linear regression for a continuous label when the job
//! left the task out (protocol version 3). Then:
//!
//! *With an arbiter A:* A generates the key pair and sends the public key to the data parties.
//! Every data party encrypts its packed rows under A's key and sends them to the other data
//! parties (never to A). Each data party then sends A its *decryption plan*: how many
//! ciphertexts each data party's gradient takes — its own, and every other party's as
//! announced with that party's encrypted rows. A accepts a party's count only if every data
//! party gives the same one (and it is at most 64). Per batch, at every data party `P`:
//! 1. compute `u_P`, the share `r_P`, and for each other data party `Q` the encrypted cross
//!    term `[[X_Q^T·r_P]]`, sent to `Q`;
//! 2. add up the cross terms received for itself, add a random mask `R` that is
//!    [`MASK_STATISTICAL_BITS`] = 80 bits longer than the packed value (statistically hiding;
//!    the packing leaves room so `V + R` never wraps), re-randomise, send to A;
//! 3. A decrypts and returns `V + R`; `P` subtracts `R`, unpacks its cross terms, adds its
//!    local term, and updates its own weights;
//! 4. hosts send `w_k·g_k` and their penalty to the guest (for the loss, below).
//!
//! A's decryption service follows the step: in each batch it reads one request from each data
//! party in turn (guest, then hosts) and decrypts it only if it holds exactly the agreed number
//! of ciphertexts; any other count stops training with a protocol error naming the party, the
//! epoch and the batch, before anything of that request is decrypted. Requests the step does
//! not call for (a second one in a batch, one for a batch that does not exist, one from the
//! wrong party) are never read. This bounds what A decrypts; it cannot tell a masked gradient
//! from any other ciphertext under its key, so a party that breaks the protocol could still
//! substitute, within its agreed count and at the cost of its own gradient, ciphertexts of
//! another party's encrypted rows (semi-honest security does not cover such a party; proofs
//! of correct masking or the mode without a third party would).
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
//! it, and every sum again by the aggregator: the owner of the row ciphertexts knows their
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
//! * **Arbiter** learns: the parameters, the row count (not the ids' digest), how many
//!   ciphertexts each data party's gradient takes (roughly its column count, which the size of
//!   its requests shows anyway), per batch one masked packed value per data party and
//!   ciphertext column (`V + R`, within statistical distance `2^-80` of the mask alone), and
//!   "stop / best" per epoch. It never receives features, labels, weights or unmasked
//!   gradients, and never sees the encrypted rows.
//!
//! In neither mode does a party receive another party's plaintext gradient: every gradient is
//! assembled only at its owner. Without an arbiter no party ever decrypts anything for
//! somebody else, so there is nothing to mask; each party decrypts only the (re-randomised)
//! total of its own cross terms.
//!
//! *Collusion* (outside the model): the arbiter together with a data party could decrypt the
//! other parties' encrypted rows, i.e. their features and the guest's labels. FATE's
//! coordinated LR has the same weakness (it leaks residuals, hence labels). Without an
//! arbiter, colluding hosts learn the union of what each learns (their columns times the
//! guest's share, `X_k^T·r_g`), nothing of the guest's features or labels beyond that; the
//! guest together with one host learns `X_g^T·u_k` of another host `k`, which is what the guest
//! alone learns in a two-party job.
//!
//! *Prediction* ([`predict()`]): each host sends its partial scores `w_k·x` for the requested
//! rows to the guest, which adds them up (the same as FATE). Model parts never leave their
//! owners.
//!
//! # Parameters
//! [`LinearParams`] (JSON, unknown fields refused, every field defaulted and validated): `task`
//! (`logistic` / `linear`), `optimizer` (`sgd` with `lr`, or `adam` with `lr`, `beta1`,
//! `beta2`, `epsilon`), `penalty` (`none` / `l1` / `l2` with `alpha`; L1 as a proximal step;
//! the intercept is never penalised), `batch_size` (null: full batch), `max_epochs`,
//! `tolerance` (stop when the epoch's training loss changes by less), `early_stopping`
//! (`patience`, `min_delta`, `restore_best`; needs validation sets), `fit_intercept`,
//! `shuffle` and `seed` (the batch order, derived identically at every party), `he`
//! ([`ferry_crypto::HeSettings`]: `scheme` paillier / ou, `key_bits` of at least 2048), `mode`
//! (`auto` / `with_arbiter` / `without_third_party`) and `precision` (fixed-point widths). The arbiter calls [`train()`]
//! with `data = None`. Two knobs are for tests and benchmarks only and cannot come from a job's
//! parameters (they are neither read nor written as JSON): `he.allow_insecure_key_bits`
//! (accept keys below 2048 bits, [`LinearParams::with_insecure_key_bits`]) and
//! `insecure_test_rng_seed`; each party sets them in its own code.
//!
//! # Cost
//! Set-up: each data party encrypts `rows × ⌈columns / slots⌉` plaintexts once (one per row
//! for Paillier-2048 up to 27 columns, 26 with an arbiter's masks) and decodes as many from
//! every other data party; this dominates short runs. Per batch and party: one
//! multi-exponentiation per other data party (about 12,000 ciphertext additions for 5,000
//! rows), one or two decryptions, a handful of small messages. Traffic: the encrypted rows once (512 bytes per row and ciphertext for
//! Paillier-2048), then a few ciphertexts per batch.
//!
//! Measured on this 2-core machine (shared with other work while measuring), default_credit
//! (30,000 rows; guest 13 columns, host 10), 3 epochs, batch 5,000, SGD lr 0.15,
//! Paillier-2048, guest and host as two processes: about 5 CPU-seconds in all (2.5 per party,
//! of which 1.2 s is the one-time encryption of the party's rows), 2.5 s wall time when the
//! machine was otherwise idle (2.9 to 5.1 s while other builds ran; the same with an arbiter
//! as a third process), 31 MB exchanged, AUC 0.7050
//! (pooled logistic regression with the same optimiser and iterations: 0.7046). Trained to
//! convergence the model approaches least squares on the labels (the Taylor loss's minimiser):
//! AUC 0.718 against 0.724 for pooled logistic regression.
//!
//! # Failures
//! Set-up problems (bad data, rows that do not line up, different parameters, an old protocol
//! version) stop every party with the same explanation before anything is encrypted. A party
//! that fails later (e.g. a diverging model, [`LinearError::ResidualOutOfRange`]) returns its
//! error; the others see the transport's error for the next message they wait for.
//!
//! # Checkpoints and resume
//! [`fit_with_checkpoints`] saves each data party's state after every epoch into a
//! [`ferry_ml::CheckpointStore`] the caller provides: weights, the optimiser's moments and step
//! count, early-stopping and tolerance bookkeeping, as raw `f64` bits. Resuming, each data
//! party's setup reply names its latest checkpoint, the guest's go the minimum over the data
//! parties; everyone (the arbiter too, which keeps no state) continues at that epoch after a
//! fresh key setup. Batches come from `(seed, epoch)` and keys and masks never change a
//! decrypted fixed-point value, so the resumed model equals an uninterrupted run's bit for bit.

mod checkpoint;
mod data;
pub mod error;
mod federated_model;
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
    EarlyStopping, LinearParams, Mode, Optimizer, Penalty, Precision, ResolvedMode, Task,
};
pub use predict::predict;
pub use report::{EpochRecord, HeOps, TrainReport};
pub use train::{MASK_STATISTICAL_BITS, Trained, fit, fit_with_checkpoints, train};
