//! The FedAvg protocol between the server (arbiter) and the clients (guest and hosts).

use crate::checkpoint::{ClientCheckpoint, ServerCheckpoint};
use crate::dp::{PrivacyReport, RdpAccountant, add_gaussian, clip_l2};
use crate::error::HflError;
use crate::model::{Model, Prepared, prepare};
use crate::params::{AggregationWeighting, FedAvgParams, SelectionMode};
use crate::sparse::{ErrorFeedback, Sparsification, random_k_indices, top_k_indices};
use crate::train::{EvalMetrics, evaluate_prepared, sgd};
use bincode::Options;
use ferry_context::{Context, FederationError, PartyId, Role};
use ferry_data::Dataset;
use ferry_ml::{CheckpointError, Checkpoints};
use rand::seq::SliceRandom;
use rand::seq::index::sample;
use rand::{RngExt, SeedableRng};
use rand_chacha::{ChaCha8Rng, ChaCha20Rng};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Version of the messages below; the server refuses clients that speak another.
///
/// 2: random-k clients train only the round's coordinates, drawn without replacement across
/// rounds (version 1 drew them independently and kept an error-feedback residual).
/// 3: a client learns only whether it was selected (no participant list in the round or the
/// weight message; with secure aggregation only the number of clients invited), and reports
/// its training-sample count in `Hello` (the fixed normaliser under DP needs every client's).
/// 4: resume from checkpoints: a client names the rounds it can resume from in `Hello`, and
/// the server answers `Control::Resume` with the last round every party has.
pub const PROTOCOL_VERSION: u32 = 4;

const TAG_HELLO: &str = "hfl/hello";
const TAG_CONTROL: &str = "hfl/control";
const TAG_STATS: &str = "stats";
const TAG_WEIGHT: &str = "weight";
const TAG_UPDATE: &str = "update";
const TAG_FINAL: &str = "hfl/final-evaluation";

/// Client → server, once: who it is and what its data looks like.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Hello {
    version: u32,
    params_fingerprint: u64,
    feature_names: Vec<String>,
    /// Training rows after the hold-out split; under DP the server fixes the round's normaliser
    /// from every client's count, and a client must report the same count every round.
    n_train: u64,
    /// When resuming: the rounds after which this client has a checkpoint (empty otherwise).
    checkpoints: Vec<u64>,
}

/// Server → client, on one ordered tag so a client waiting for a round also sees the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Control {
    /// Train from `model` this round. Who else was selected is deliberately not said: under
    /// DP the accountant's subsampling amplification needs the sample to stay secret.
    Round {
        round: usize,
        model: Vec<f64>,
    },
    /// Not selected this round.
    Idle {
        round: usize,
    },
    /// Sent before any round when the job resumes: the server continues after `round`, and
    /// this client from its own state after round `from` (0: none). `from` equals `round`
    /// when every party has that round; it is earlier for a client that had dropped out while
    /// the others went on, which rejoins as a client back from a dropout does.
    Resume {
        round: usize,
        from: usize,
    },
    Finish {
        model: Vec<f64>,
        rounds_completed: usize,
        stop: StopReason,
        epsilon: Option<f64>,
    },
    Abort {
        reason: String,
    },
}

/// Client → server after local training.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ClientStats {
    n_train: u64,
    train_loss: f64,
    /// Validation quality of the local model (contribution weighting only).
    quality: Option<f64>,
    /// The global model (before this round) on the client's held-out rows and test file.
    holdout: Option<EvalMetrics>,
    test: Option<EvalMetrics>,
}

/// Server → client after the statistics: contribute with a relative weight, or skip the
/// aggregation (too few clients left for secure aggregation to hide an individual update).
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Decision {
    Contribute {
        omega: f64,
        /// With secure aggregation only: how many clients are invited to it, from which a
        /// client derives the protocol's threshold and so its share of the distributed noise.
        /// Secure aggregation's key directory names them to each other anyway; without it the
        /// count would tell a client something about who else was sampled, so it is `None`.
        secagg_clients: Option<u32>,
    },
    Skip {
        reason: String,
    },
}

/// Client → server without secure aggregation: the weighted, possibly sparse, update.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Update {
    Dense(Vec<f64>),
    Sparse { indices: Vec<u32>, values: Vec<f64> },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct FinalStats {
    holdout: Option<EvalMetrics>,
    test: Option<EvalMetrics>,
}

/// Why training ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StopReason {
    /// All configured rounds ran.
    Completed,
    /// The next round would have exceeded the privacy budget; the message says by how much.
    PrivacyBudget(String),
}

/// Which data an evaluation used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// The client's held-out rows.
    Holdout,
    /// A test file passed as `eval`.
    Test,
}

/// The global model after `step` rounds, evaluated by `party`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub party: PartyId,
    pub step: usize,
    pub split: Split,
    pub metrics: EvalMetrics,
}

/// One client's weighting inputs in a round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub party: PartyId,
    pub n_train: u64,
    /// Validation quality of its local model (contribution weighting only).
    pub quality: Option<f64>,
    /// `w_i` before normalisation.
    pub raw_weight: f64,
}

/// What happened in one round (server view).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundReport {
    pub round: usize,
    pub selected: Vec<PartyId>,
    /// Clients whose update is in the aggregate.
    pub included: Vec<PartyId>,
    /// Each included client's share of the step, `ω_i / normaliser`. Without DP the normaliser
    /// is `Σ ω` over the included clients and the shares sum to 1; under DP it is fixed (see
    /// [`RoundReport::normaliser`]) and they sum to 1 only on average.
    pub weights: Vec<(PartyId, f64)>,
    /// What the summed contributions were divided by: `Σ ω_i` over the included clients
    /// without DP; under DP the fixed `q · Σ_j ω̂_j` over every client that joined (the
    /// expected total weight of a round), which does not depend on who took part. `None` when
    /// the round aggregated nothing.
    pub normaliser: Option<f64>,
    /// What the weights were computed from, for every client that responded.
    pub contributions: Vec<Contribution>,
    /// Sample-weighted mean of the clients' local training losses.
    pub train_loss: f64,
    pub noise_multiplier: Option<f64>,
    /// `ε` spent so far (for the configured `δ`), when DP is on.
    pub epsilon: Option<f64>,
    /// All traffic of the round through the server (sent + received), from `ctx.counters()`.
    pub bytes: u64,
    /// The traffic of the update phase alone (with secure aggregation: the whole protocol).
    pub update_bytes: u64,
    /// What the update phase would cost with dense `f64` updates and no secure aggregation.
    pub dense_update_bytes: u64,
    pub seconds: f64,
    /// The round changed nothing: too few clients were selected (Poisson selection) or, under
    /// secure aggregation, fewer than 2 responded.
    pub skipped: bool,
}

/// The result of [`train`] on any party.
#[derive(Clone, Debug)]
pub struct FedAvgOutcome {
    /// The final global model (the same on every party).
    pub model: Model,
    /// Per-round reports (server only; empty on clients).
    pub rounds: Vec<RoundReport>,
    /// On the server: every evaluation the clients reported and its own test evaluations. On a
    /// client: its own.
    pub evaluations: Vec<Evaluation>,
    pub rounds_completed: usize,
    pub stop: StopReason,
    pub epsilon: Option<f64>,
    /// Under DP (on every party): how the job was accounted and which per-client values were
    /// sent in the clear, outside the guarantee — for the job's privacy report.
    pub privacy: Option<PrivacyReport>,
}

/// A 64-bit seed derived from `seed`, a label and a value (FNV-1a then a SplitMix64 finaliser).
pub(crate) fn mix(seed: u64, label: &str, value: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in seed
        .to_le_bytes()
        .iter()
        .chain(label.as_bytes())
        .chain(&value.to_le_bytes())
    {
        h = (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn name_hash(party: &PartyId) -> u64 {
    mix(0, party.as_str(), 0)
}

fn is_dropout(e: &FederationError) -> bool {
    matches!(
        e,
        FederationError::Timeout { .. }
            | FederationError::PeerFailed { .. }
            | FederationError::Unreachable { .. }
    )
}

/// The clients of a job: the guest and the hosts, in roster order.
pub fn clients_of(ctx: &Context) -> Vec<PartyId> {
    ctx.roster()
        .parties()
        .filter(|(_, r)| *r != Role::Arbiter)
        .map(|(p, _)| p.clone())
        .collect()
}

/// Runs FedAvg on this party.
///
/// * Server (`Role::Arbiter`): `data` must be `None`; `eval`, if given, is a labelled test file
///   the global model is evaluated on after every round.
/// * Client (guest or host): `data` is its labelled training data (the held-out split is taken
///   from it); `eval`, if given, is a labelled test file of its own.
///
/// Every party passes the same `params`. Returns the final model on every party.
pub fn train(
    ctx: &Context,
    data: Option<&Dataset>,
    params: &FedAvgParams,
    eval: Option<&Dataset>,
) -> Result<FedAvgOutcome, HflError> {
    train_with_checkpoints(ctx, data, params, eval, Checkpoints::NONE)
}

/// [`train`] with checkpoints: every party saves its state into `checkpoints.save` after every
/// round (see [`crate::checkpoint`]); with `checkpoints.resume_from` on every party, the run
/// continues after the last round all of them have there (from round 1 when there is none)
/// and ends with the model an uninterrupted run with the same seeds gives (DP noise and the DP
/// client sample come from operating-system entropy in a real job and differ, as they would
/// between any two runs). Parameters and training rows must be those of the interrupted run.
pub fn train_with_checkpoints(
    ctx: &Context,
    data: Option<&Dataset>,
    params: &FedAvgParams,
    eval: Option<&Dataset>,
    checkpoints: Checkpoints<'_>,
) -> Result<FedAvgOutcome, HflError> {
    match ctx.role() {
        Role::Arbiter => {
            if data.is_some() {
                return Err(HflError::Config(
                    "the arbiter is the FedAvg server and trains on no data; pass None (a test file goes in `eval`)".into(),
                ));
            }
            run_server(ctx, params, eval, checkpoints)
        }
        Role::Guest | Role::Host => {
            let data = data.ok_or_else(|| {
                HflError::Config(format!(
                    "client '{}' needs its labelled training data",
                    ctx.me()
                ))
            })?;
            run_client(ctx, data, params, eval, checkpoints)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

struct ClientState<'a> {
    ctx: &'a Context,
    server: PartyId,
    params: &'a FedAvgParams,
    train: Prepared,
    holdout: Option<Prepared>,
    test: Option<Prepared>,
    model: Model,
    feedback: ErrorFeedback,
    evaluations: Vec<Evaluation>,
}

impl ClientState<'_> {
    fn checkpoint(&self, round: usize) -> Vec<u8> {
        ClientCheckpoint {
            fingerprint: self.params.fingerprint(),
            party: self.ctx.me().to_string(),
            n_train: self.train.n as u64,
            round: round as u64,
            model: self.model.params.clone(),
            residual: self.feedback.residual().to_vec(),
            evaluations: self.evaluations.clone(),
        }
        .encode()
    }

    fn evaluate(
        &mut self,
        step: usize,
    ) -> Result<(Option<EvalMetrics>, Option<EvalMetrics>), HflError> {
        let holdout = match &self.holdout {
            Some(h) => Some(evaluate_prepared(&self.model, h)?),
            None => None,
        };
        let test = match &self.test {
            Some(t) => Some(evaluate_prepared(&self.model, t)?),
            None => None,
        };
        for (split, m) in [(Split::Holdout, &holdout), (Split::Test, &test)] {
            if let Some(m) = m {
                let name = match split {
                    Split::Holdout => "holdout",
                    Split::Test => "test",
                };
                self.ctx
                    .metric(&format!("{name}_loss"), step as u64, m.loss);
                if let Some(a) = m.accuracy {
                    self.ctx.metric(&format!("{name}_accuracy"), step as u64, a);
                }
                self.evaluations.push(Evaluation {
                    party: self.ctx.me().clone(),
                    step,
                    split,
                    metrics: m.clone(),
                });
            }
        }
        Ok((holdout, test))
    }

    fn round(&mut self, round: usize, global: Vec<f64>) -> Result<(), HflError> {
        let ctx = self.ctx;
        let params = self.params;
        if global.len() != self.model.params.len() || global.iter().any(|v| !v.is_finite()) {
            return Err(HflError::protocol(
                &self.server,
                format!(
                    "round {round} model has {} parameters (expected {}) or non-finite values",
                    global.len(),
                    self.model.params.len()
                ),
            ));
        }
        self.model.params = global;
        let (holdout, test) = self.evaluate(round - 1)?;

        let mut local = self.model.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(mix(
            params.seed,
            "local",
            mix(round as u64, ctx.me().as_str(), 0),
        ));
        // Random-k: this round's shared coordinates are the only ones trained, so the update
        // is exactly what is sent and there is no residual to carry over.
        let n_params = local.params.len();
        let random_k = match params.sparsification {
            s @ Sparsification::RandomK { .. } => Some(random_k_indices(
                params.seed,
                round,
                n_params,
                s.kept(n_params),
            )),
            _ => None,
        };
        let train_loss = sgd(
            &mut local,
            &self.train,
            &params.local,
            params.local.epochs,
            &mut rng,
            random_k.as_deref(),
        );
        ctx.metric("local_train_loss", round as u64, train_loss);
        let quality = match (&params.weighting, &self.holdout) {
            (AggregationWeighting::Contribution { .. }, Some(h)) => {
                Some(evaluate_prepared(&local, h)?.quality())
            }
            _ => None,
        };
        let delta: Vec<f64> = local
            .params
            .iter()
            .zip(&self.model.params)
            .map(|(l, g)| l - g)
            .collect();

        let rctx = ctx.sub(format!("round-{round}"));
        rctx.send(
            &self.server,
            TAG_STATS,
            &ClientStats {
                n_train: self.train.n as u64,
                train_loss,
                quality,
                holdout,
                test,
            },
        )?;
        let (omega, secagg_clients) = match rctx.recv::<Decision>(&self.server, TAG_WEIGHT)? {
            Decision::Contribute {
                omega,
                secagg_clients,
            } => (omega, secagg_clients),
            Decision::Skip { reason } => {
                ctx.log(&format!("round {round}: no aggregation ({reason})"));
                return Ok(());
            }
        };
        if !(omega > 0.0 && omega <= 1.0) {
            return Err(HflError::protocol(
                &self.server,
                format!("invalid weight {omega}"),
            ));
        }
        // The count is sent exactly when secure aggregation needs it, and must be a possible
        // number of clients: it sets this client's share of the distributed noise.
        let n_clients = clients_of(ctx).len();
        let secagg_clients = match (&params.secure_aggregation, secagg_clients) {
            (Some(_), Some(m)) if (2..=n_clients).contains(&(m as usize)) => Some(m as usize),
            (None, None) => None,
            (_, m) => {
                return Err(HflError::protocol(
                    &self.server,
                    format!(
                        "announced {m:?} secure-aggregation clients (of {n_clients}, secure aggregation {})",
                        if params.secure_aggregation.is_some() {
                            "on"
                        } else {
                            "off"
                        }
                    ),
                ));
            }
        };

        // Which coordinates go out: top-k with error feedback for what does not; random-k
        // trained nothing else.
        let (indices, mut values): (Option<Vec<u32>>, Vec<f64>) = match random_k {
            Some(idx) => {
                let v = idx.iter().map(|&i| delta[i as usize]).collect();
                (Some(idx), v)
            }
            None => match params.sparsification {
                s @ Sparsification::TopK { .. } => {
                    let u = self.feedback.accumulate(&delta);
                    let idx = top_k_indices(u, s.kept(n_params));
                    let v = self.feedback.take(&idx);
                    (Some(idx), v)
                }
                _ => (None, delta),
            },
        };
        if let Some(dp) = &params.dp {
            let norm = clip_l2(&mut values, dp.clip_norm);
            ctx.metric("update_norm", round as u64, norm);
        }
        for v in values.iter_mut() {
            *v *= omega;
        }

        match &params.secure_aggregation {
            None => {
                let update = match indices {
                    None => Update::Dense(values),
                    Some(indices) => Update::Sparse { indices, values },
                };
                rctx.send(&self.server, TAG_UPDATE, &update)?;
            }
            Some(sa) => {
                if let Some(dp) = &params.dp {
                    // Distributed noise: each participant adds variance (σS)²/t, so the sum of
                    // any t or more survivors carries at least (σS)².
                    let invited = secagg_clients.ok_or_else(|| {
                        HflError::protocol(&self.server, "no secure-aggregation client count")
                    })?;
                    let t = sa.protocol().threshold_for(invited)?;
                    let sigma = dp.noise.multiplier_at(round);
                    let std = sigma * dp.clip_norm / (t as f64).sqrt();
                    let mut noise_rng = noise_rng(dp.noise_seed, round, ctx.me());
                    add_gaussian(&mut values, std, &mut noise_rng);
                }
                let encoding = sa.encoding()?;
                let (encoded, clipped) = encoding.encode(&values)?;
                if clipped > 0 {
                    ctx.log(&format!(
                        "round {round}: {clipped} update values exceeded the secure-aggregation clip {} and were clamped",
                        sa.clip
                    ));
                }
                // Fresh masks in every run of a round, resumed or not: the key pairs the
                // pairwise masks are agreed from and the self-mask seed are drawn here from
                // operating-system entropy, never from the job seed, the round number or a
                // checkpoint (checkpoints hold no key or mask material). A round that ran in an
                // interrupted job and runs again after a resume, with another input (fresh DP
                // noise, say), is therefore masked with new, independent masks: no mask seed is
                // ever used for two different inputs, so the server cannot subtract two masked
                // inputs to learn their difference. The resumed job is also a new session, so
                // none of the interrupted round's messages can be replayed into it.
                let mut key_rng = ChaCha20Rng::from_rng(&mut rand::rng());
                ferry_secagg::run_client(
                    &rctx.sub("secagg"),
                    &self.server,
                    &encoded,
                    &sa.protocol(),
                    &mut key_rng,
                )?;
            }
        }
        Ok(())
    }
}

fn noise_rng(seed: Option<u64>, round: usize, party: &PartyId) -> ChaCha20Rng {
    match seed {
        Some(s) => {
            ChaCha20Rng::seed_from_u64(mix(s, "dp-noise", mix(round as u64, party.as_str(), 0)))
        }
        None => ChaCha20Rng::from_rng(&mut rand::rng()),
    }
}

/// Splits rows into (train, held-out) with a per-party seeded shuffle.
fn split_holdout(
    data: Prepared,
    fraction: f64,
    seed: u64,
    party: &PartyId,
) -> Result<(Prepared, Option<Prepared>), HflError> {
    let n_hold = (fraction * data.n as f64).floor() as usize;
    if n_hold == 0 {
        return Ok((data, None));
    }
    if n_hold >= data.n {
        return Err(HflError::Data(format!(
            "client '{party}' has {} rows, too few to hold out {fraction} of them",
            data.n
        )));
    }
    let mut order: Vec<usize> = (0..data.n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(
        seed,
        "holdout",
        name_hash(party),
    )));
    let holdout = data.select(&order[..n_hold]);
    let train = data.select(&order[n_hold..]);
    Ok((train, Some(holdout)))
}

fn run_client(
    ctx: &Context,
    data: &Dataset,
    params: &FedAvgParams,
    eval: Option<&Dataset>,
    checkpoints: Checkpoints<'_>,
) -> Result<FedAvgOutcome, HflError> {
    let server = ctx.arbiter()?;
    params.validate(clients_of(ctx).len())?;
    let task = params.model.task();
    let feature_names = data.feature_names.clone();
    let prepared = prepare(data, &feature_names, task)?;
    if prepared.n == 0 {
        return Err(HflError::Data(format!("client '{}' has no rows", ctx.me())));
    }
    let (train_rows, holdout) =
        split_holdout(prepared, params.validation_fraction, params.seed, ctx.me())?;
    let test = match eval {
        Some(e) => Some(prepare(e, &feature_names, task)?),
        None => None,
    };
    ctx.send(
        &server,
        TAG_HELLO,
        &Hello {
            version: PROTOCOL_VERSION,
            params_fingerprint: params.fingerprint(),
            feature_names: feature_names.clone(),
            n_train: train_rows.n as u64,
            checkpoints: match checkpoints.resume_from {
                Some(store) => store.steps()?,
                None => Vec::new(),
            },
        },
    )?;
    let model = Model::init(params.model.clone(), feature_names, params.seed)?;
    let mut state = ClientState {
        ctx,
        server: server.clone(),
        params,
        train: train_rows,
        holdout,
        test,
        model,
        feedback: ErrorFeedback::default(),
        evaluations: Vec::new(),
    };
    let mut last_round = 0;
    let mut started = false;
    loop {
        ctx.check_cancelled()?;
        let control = ctx.recv::<Control>(&server, TAG_CONTROL)?;
        let first = !started;
        started = true;
        match control {
            Control::Resume { round, from } => {
                let asked = checkpoints
                    .resume_from
                    .filter(|_| first && round >= 1 && from <= round);
                let Some(store) = asked else {
                    return Err(HflError::protocol(
                        &server,
                        format!(
                            "asked to resume after round {round}, but this client {}",
                            if first {
                                "was not asked to resume"
                            } else {
                                "has already started"
                            }
                        ),
                    ));
                };
                if from > 0 {
                    let saved = ClientCheckpoint::decode(
                        &store.load(from as u64)?,
                        params.fingerprint(),
                        ctx.me().as_str(),
                        state.train.n as u64,
                        state.model.params.len(),
                        from as u64,
                    )
                    .map_err(|e| CheckpointError(format!("round {from}: {}", e.0)))?;
                    state.model.params = saved.model;
                    state.feedback = ErrorFeedback::with_residual(saved.residual);
                    state.evaluations = saved.evaluations;
                }
                last_round = round;
                ctx.log(&format!(
                    "resuming after round {round} from this client's state after round {from}"
                ));
                // The resumed job's own store starts with the state it continues from, so that
                // it can be resumed in turn even if it fails before its first round ends.
                checkpoints.save(round as u64, || state.checkpoint(round))?;
            }
            Control::Round { round, model } => {
                if round <= last_round {
                    return Err(HflError::protocol(
                        &server,
                        format!("round {round} after round {last_round}"),
                    ));
                }
                last_round = round;
                ctx.progress(
                    round as f64 / params.rounds as f64,
                    &format!("round {round}"),
                );
                state.round(round, model)?;
                checkpoints.save(round as u64, || state.checkpoint(round))?;
            }
            Control::Idle { round } => {
                if round <= last_round {
                    return Err(HflError::protocol(
                        &server,
                        format!("round {round} after round {last_round}"),
                    ));
                }
                last_round = round;
                checkpoints.save(round as u64, || state.checkpoint(round))?;
            }
            Control::Finish {
                model,
                rounds_completed,
                stop,
                epsilon,
            } => {
                if model.len() != state.model.params.len() {
                    return Err(HflError::protocol(&server, "final model of the wrong size"));
                }
                state.model.params = model;
                state.model.check()?;
                let (holdout, test) = state.evaluate(rounds_completed)?;
                ctx.send(&server, TAG_FINAL, &FinalStats { holdout, test })?;
                ctx.flush()?;
                if let StopReason::PrivacyBudget(msg) = &stop {
                    ctx.log(msg);
                }
                return Ok(FedAvgOutcome {
                    model: state.model,
                    rounds: Vec::new(),
                    evaluations: state.evaluations,
                    rounds_completed,
                    stop,
                    epsilon,
                    privacy: params.privacy_report(epsilon),
                });
            }
            Control::Abort { reason } => {
                return Err(HflError::protocol(
                    &server,
                    format!("the server stopped the job: {reason}"),
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

fn total_bytes(ctx: &Context) -> u64 {
    let c = ctx.counters();
    c.bytes_sent() + c.bytes_received()
}

fn abort(ctx: &Context, clients: &[PartyId], reason: &str) {
    for c in clients {
        // Best effort: the job fails anyway.
        let _ = ctx.send(
            c,
            TAG_CONTROL,
            &Control::Abort {
                reason: reason.to_string(),
            },
        );
    }
}

struct Server<'a> {
    ctx: &'a Context,
    params: &'a FedAvgParams,
    alive: Vec<PartyId>,
    model: Model,
    test: Option<Prepared>,
    evaluations: Vec<Evaluation>,
    accountant: RdpAccountant,
    /// Under DP: the reference the weights are measured against, fixed at the start.
    dp_weights: Option<DpWeights>,
}

/// Under DP, weights and the normaliser must not depend on who takes part in a round: with
/// `ω_i = w_i / max over the round's clients` and a step divided by `Σ ω` over them, adding
/// or removing one client rescales every other contribution, so the sum moves by more than the
/// clip norm and the sensitivity analysis fails (and the normaliser depends on the secret
/// sample). Instead each client's weight is measured against a job-wide reference
/// `ŵ_max` (`ω_i = min(w_i / ŵ_max, 1)`, depending on its own statistics only), and the sum is
/// divided by the expected total weight `q · Σ_j ŵ_j / ŵ_max` over every client that joined —
/// the fixed-denominator estimator of DP-FedAvg (McMahan et al., ICLR 2018, §2).
struct DpWeights {
    /// Every joined client's training-sample count from its `Hello`; a client must report the
    /// same count in every round (a larger one would raise its weight past the reference).
    n_train: Vec<(PartyId, u64)>,
    /// `ŵ_max`: the largest reference weight among the clients that joined.
    scale: f64,
    /// `q · Σ_j ŵ_j / ŵ_max`.
    normaliser: f64,
}

impl DpWeights {
    fn new(params: &FedAvgParams, n_train: Vec<(PartyId, u64)>) -> Self {
        // A client's reference weight is its raw weight at quality 1, the most it can have:
        // contribution weighting only ever scales the sample count down.
        let reference = |n: u64| match params.weighting {
            AggregationWeighting::Uniform => 1.0,
            AggregationWeighting::SampleCount | AggregationWeighting::Contribution { .. } => {
                n as f64
            }
        };
        let scale = n_train
            .iter()
            .map(|(_, n)| reference(*n))
            .fold(0.0, f64::max);
        let total: f64 = n_train.iter().map(|(_, n)| reference(*n) / scale).sum();
        DpWeights {
            normaliser: params.selection.fraction * total,
            scale,
            n_train,
        }
    }
}

impl Server<'_> {
    fn drop_client(&mut self, party: &PartyId, e: &FederationError) {
        self.ctx.log(&format!("client '{party}' dropped out: {e}"));
        self.alive.retain(|p| p != party);
    }

    fn record_client_eval(
        &mut self,
        party: &PartyId,
        step: usize,
        holdout: Option<EvalMetrics>,
        test: Option<EvalMetrics>,
    ) {
        for (split, m) in [(Split::Holdout, holdout), (Split::Test, test)] {
            if let Some(m) = m {
                let name = match split {
                    Split::Holdout => "holdout",
                    Split::Test => "test",
                };
                self.ctx
                    .metric(&format!("{name}_loss/{party}"), step as u64, m.loss);
                if let Some(a) = m.accuracy {
                    self.ctx
                        .metric(&format!("{name}_accuracy/{party}"), step as u64, a);
                }
                self.evaluations.push(Evaluation {
                    party: party.clone(),
                    step,
                    split,
                    metrics: m,
                });
            }
        }
    }

    fn evaluate_test(&mut self, step: usize) -> Result<Option<EvalMetrics>, HflError> {
        let Some(test) = &self.test else {
            return Ok(None);
        };
        let m = evaluate_prepared(&self.model, test)?;
        self.ctx.metric("test_loss", step as u64, m.loss);
        if let Some(a) = m.accuracy {
            self.ctx.metric("test_accuracy", step as u64, a);
        }
        if let Some(a) = m.auc {
            self.ctx.metric("test_auc", step as u64, a);
        }
        self.evaluations.push(Evaluation {
            party: self.ctx.me().clone(),
            step,
            split: Split::Test,
            metrics: m.clone(),
        });
        Ok(Some(m))
    }

    /// This round's clients, in roster order.
    fn select(&self, round: usize) -> Vec<PartyId> {
        let sel = &self.params.selection;
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.params.seed, "select", round as u64));
        let n = self.alive.len();
        let poisson = |rng: &mut dyn rand::Rng| -> Vec<PartyId> {
            self.alive
                .iter()
                .filter(|_| rng.random::<f64>() < sel.fraction)
                .cloned()
                .collect()
        };
        match sel.mode {
            // Every party knows the job seed and could recompute a sample drawn from it; the
            // accountant's subsampling amplification needs the sample secret, so under DP it
            // comes from the operating system's entropy (through the thread's CSPRNG).
            SelectionMode::Poisson if sel.fraction < 1.0 && self.params.dp.is_some() => {
                poisson(&mut rand::rng())
            }
            // Without DP a seeded sample keeps runs reproducible.
            SelectionMode::Poisson if sel.fraction < 1.0 => poisson(&mut rng),
            _ => {
                let min = if self.params.secure_aggregation.is_some() {
                    2
                } else {
                    1
                };
                let m = ((sel.fraction * n as f64).ceil() as usize).max(min).min(n);
                let mut picked: Vec<usize> = sample(&mut rng, n, m).into_iter().collect();
                picked.sort_unstable();
                picked.into_iter().map(|i| self.alive[i].clone()).collect()
            }
        }
    }

    fn sampling_rate(&self) -> f64 {
        // Validated: DP with fixed-size selection requires fraction 1.
        self.params.accounted_sampling_rate()
    }

    /// Checks a plain update and returns it dense.
    fn dense_update(
        &self,
        party: &PartyId,
        update: Update,
        round: usize,
    ) -> Result<Vec<f64>, HflError> {
        let p = self.model.params.len();
        let dense = match update {
            Update::Dense(v) => {
                if v.len() != p {
                    return Err(HflError::protocol(
                        party,
                        format!("update of {} values, expected {p}", v.len()),
                    ));
                }
                v
            }
            Update::Sparse { indices, values } => {
                let kept = self.params.sparsification.kept(p);
                let ok = indices.len() == values.len()
                    && indices.len() <= kept
                    && indices.windows(2).all(|w| w[0] < w[1])
                    && indices.last().is_none_or(|&i| (i as usize) < p);
                if !ok || matches!(self.params.sparsification, Sparsification::None) {
                    return Err(HflError::protocol(party, "malformed sparse update"));
                }
                if let Sparsification::RandomK { .. } = self.params.sparsification
                    && indices != random_k_indices(self.params.seed, round, p, kept)
                {
                    return Err(HflError::protocol(
                        party,
                        "random-k update on other coordinates than this round's",
                    ));
                }
                let mut v = vec![0.0; p];
                for (i, x) in indices.into_iter().zip(values) {
                    v[i as usize] = x;
                }
                v
            }
        };
        if dense.iter().any(|x| !x.is_finite()) {
            return Err(HflError::protocol(party, "update has non-finite values"));
        }
        Ok(dense)
    }

    fn run_round(&mut self, round: usize, sigma: Option<f64>) -> Result<RoundReport, HflError> {
        let ctx = self.ctx;
        let params = self.params;
        let started = Instant::now();
        let bytes_before = total_bytes(ctx);
        let selected = self.select(round);
        let min_clients = if params.secure_aggregation.is_some() {
            2
        } else {
            1
        };
        let mut report = RoundReport {
            round,
            selected: selected.clone(),
            included: Vec::new(),
            weights: Vec::new(),
            contributions: Vec::new(),
            normaliser: None,
            train_loss: f64::NAN,
            noise_multiplier: sigma,
            epsilon: None,
            bytes: 0,
            update_bytes: 0,
            dense_update_bytes: 0,
            seconds: 0.0,
            skipped: false,
        };
        let skip = selected.len() < min_clients;
        for c in self.alive.clone() {
            let msg = if !skip && selected.contains(&c) {
                Control::Round {
                    round,
                    model: self.model.params.clone(),
                }
            } else {
                Control::Idle { round }
            };
            ctx.send(&c, TAG_CONTROL, &msg)?;
        }
        if skip {
            ctx.log(&format!("round {round}: {} clients selected, fewer than {min_clients}; the round is skipped", selected.len()));
            report.skipped = true;
            report.bytes = total_bytes(ctx) - bytes_before;
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }

        let rctx = ctx.sub(format!("round-{round}"));
        let mut responders: Vec<(PartyId, ClientStats)> = Vec::new();
        for c in &selected {
            match rctx.recv::<ClientStats>(c, TAG_STATS) {
                Ok(s) => {
                    let ok = s.n_train >= 1
                        && s.train_loss.is_finite()
                        && s.quality.is_none_or(|q| (0.0..=1.0).contains(&q));
                    if !ok {
                        return Err(HflError::protocol(c, "invalid round statistics"));
                    }
                    if let Some(dw) = &self.dp_weights {
                        let announced = dw.n_train.iter().find(|(p, _)| p == c).map(|(_, n)| *n);
                        if announced != Some(s.n_train) {
                            return Err(HflError::protocol(
                                c,
                                format!(
                                    "reported {} training rows in round {round}, but {announced:?} at the start; under DP a client's weight is fixed by the count it announced",
                                    s.n_train
                                ),
                            ));
                        }
                    }
                    responders.push((c.clone(), s));
                }
                Err(e) if is_dropout(&e) => self.drop_client(c, &e),
                Err(e) => return Err(e.into()),
            }
        }
        for (c, s) in &responders {
            self.record_client_eval(c, round - 1, s.holdout.clone(), s.test.clone());
        }
        if responders.is_empty() {
            return Err(HflError::NoClients(format!(
                "none of the clients selected for round {round} responded"
            )));
        }
        let raw: Vec<f64> = responders
            .iter()
            .map(|(_, s)| match params.weighting {
                AggregationWeighting::SampleCount => s.n_train as f64,
                AggregationWeighting::Uniform => 1.0,
                AggregationWeighting::Contribution { min_quality } => {
                    s.n_train as f64 * s.quality.unwrap_or(0.0).max(min_quality)
                }
            })
            .collect();
        report.contributions = responders
            .iter()
            .zip(&raw)
            .map(|((p, s), &w)| Contribution {
                party: p.clone(),
                n_train: s.n_train,
                quality: s.quality,
                raw_weight: w,
            })
            .collect();
        let omega: Vec<f64> = match &self.dp_weights {
            // Against the job-wide reference: a client's weight depends on its own statistics.
            Some(dw) => raw.iter().map(|w| (w / dw.scale).min(1.0)).collect(),
            None => {
                let max_w = raw.iter().cloned().fold(0.0, f64::max);
                raw.iter().map(|w| w / max_w).collect()
            }
        };
        let total_n: f64 = responders.iter().map(|(_, s)| s.n_train as f64).sum();
        report.train_loss = responders
            .iter()
            .map(|(_, s)| s.train_loss * s.n_train as f64)
            .sum::<f64>()
            / total_n;
        let participants: Vec<PartyId> = responders.iter().map(|(p, _)| p.clone()).collect();
        if params.secure_aggregation.is_some() && participants.len() < 2 {
            // A "sum" of one update is that update: better no aggregation than revealing it.
            let reason = format!(
                "only {} client responded; secure aggregation needs at least 2",
                participants.len()
            );
            for c in &participants {
                rctx.send(
                    c,
                    TAG_WEIGHT,
                    &Decision::Skip {
                        reason: reason.clone(),
                    },
                )?;
            }
            ctx.log(&format!("round {round}: {reason}; the model is unchanged"));
            report.skipped = true;
            report.bytes = total_bytes(ctx) - bytes_before;
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        for ((c, _), &w) in responders.iter().zip(&omega) {
            rctx.send(
                c,
                TAG_WEIGHT,
                &Decision::Contribute {
                    omega: w,
                    secagg_clients: params.secure_aggregation.map(|_| participants.len() as u32),
                },
            )?;
        }

        let p = self.model.params.len();
        let dense_size = bincode::DefaultOptions::new()
            .serialized_size(&Update::Dense(vec![0.0; p]))
            .unwrap_or(8 * p as u64);
        let update_start = total_bytes(ctx);
        let mut sum = vec![0.0; p];
        let mut included: Vec<PartyId> = Vec::new();
        match &params.secure_aggregation {
            None => {
                for c in &participants {
                    match rctx.recv::<Update>(c, TAG_UPDATE) {
                        Ok(u) => {
                            let v = self.dense_update(c, u, round)?;
                            for (s, x) in sum.iter_mut().zip(&v) {
                                *s += x;
                            }
                            included.push(c.clone());
                        }
                        Err(e) if is_dropout(&e) => self.drop_client(c, &e),
                        Err(e) => return Err(e.into()),
                    }
                }
                if let (Some(dp), Some(sigma)) = (&params.dp, sigma) {
                    // Central noise: the server sees individual updates anyway (no secure
                    // aggregation), so it adds N(0, (σS)²) once to the sum.
                    let mut rng = noise_rng(dp.noise_seed, round, ctx.me());
                    add_gaussian(&mut sum, sigma * dp.clip_norm, &mut rng);
                }
            }
            Some(sa) => {
                let coords: Option<Vec<u32>> = match params.sparsification {
                    Sparsification::RandomK { .. } => Some(random_k_indices(
                        params.seed,
                        round,
                        p,
                        params.sparsification.kept(p),
                    )),
                    _ => None,
                };
                let len = coords.as_ref().map_or(p, |c| c.len());
                let agg = ferry_secagg::aggregate(
                    &rctx.sub("secagg"),
                    &participants,
                    len,
                    &sa.protocol(),
                )?;
                let values = sa.encoding()?.decode_sum(&agg.sum, agg.included.len())?;
                match coords {
                    None => sum = values,
                    Some(idx) => {
                        for (i, v) in idx.into_iter().zip(values) {
                            sum[i as usize] = v;
                        }
                    }
                }
                for d in &agg.dropped {
                    self.alive.retain(|p| p != d);
                }
                included = agg.included;
            }
        }
        report.update_bytes = total_bytes(ctx) - update_start;
        report.dense_update_bytes = dense_size * included.len() as u64;

        let omega_of = |c: &PartyId| {
            participants
                .iter()
                .position(|p| p == c)
                .map(|i| omega[i])
                .unwrap_or(0.0)
        };
        let normaliser = match &self.dp_weights {
            Some(dw) => dw.normaliser,
            None => included.iter().map(omega_of).sum(),
        };
        if normaliser > 0.0 && !included.is_empty() {
            let step = params.server_learning_rate / normaliser;
            for (w, s) in self.model.params.iter_mut().zip(&sum) {
                *w += step * s;
            }
            report.normaliser = Some(normaliser);
            report.weights = included
                .iter()
                .map(|c| (c.clone(), omega_of(c) / normaliser))
                .collect();
        }
        for (c, w) in &report.weights {
            ctx.metric(&format!("weight/{c}"), round as u64, *w);
        }
        report.included = included;
        if self.model.params.iter().any(|v| !v.is_finite()) {
            return Err(HflError::Model(format!(
                "the global model diverged in round {round} (non-finite parameters): lower the learning rate"
            )));
        }
        report.bytes = total_bytes(ctx) - bytes_before;
        report.seconds = started.elapsed().as_secs_f64();
        ctx.metric("train_loss", round as u64, report.train_loss);
        ctx.metric("bytes", round as u64, report.bytes as f64);
        ctx.metric("update_bytes", round as u64, report.update_bytes as f64);
        ctx.metric(
            "dense_update_bytes",
            round as u64,
            report.dense_update_bytes as f64,
        );
        Ok(report)
    }
}

/// Where a resumed run continues: the round the server resumes after and, per client (in
/// the order of `client_steps`), the round of the client's own state it starts from.
///
/// Normally the last round the server and every client that joined have a checkpoint of,
/// for all: parties stop at most a round apart, and the run then equals an uninterrupted
/// one. But the server goes on without a client that drops out (a node killed mid-job), so
/// the others may be many rounds past that client's last checkpoint and stores keep only the
/// latest few. Then the server resumes after its own latest round and each client from its
/// latest state at or before it (none: a fresh client), as a client back from a dropout
/// rejoins; the rounds the others ran without it stand. `(0, _)`: start afresh.
fn resume_point(
    ctx: &Context,
    params: &FedAvgParams,
    checkpoints: Checkpoints<'_>,
    client_steps: &[Vec<u64>],
) -> Result<(usize, Vec<usize>), HflError> {
    let Some(store) = checkpoints.resume_from else {
        return Ok((0, Vec::new()));
    };
    let server_steps: Vec<u64> = store
        .steps()?
        .into_iter()
        .filter(|s| *s as usize <= params.rounds)
        .collect();
    let common = server_steps
        .iter()
        .copied()
        .filter(|s| client_steps.iter().all(|c| c.contains(s)))
        .max();
    if let Some(k) = common {
        return Ok((k as usize, vec![k as usize; client_steps.len()]));
    }
    let Some(latest) = server_steps.iter().copied().max() else {
        ctx.log("the server has no checkpoint: training starts from round 1");
        return Ok((0, Vec::new()));
    };
    let from: Vec<usize> = client_steps
        .iter()
        .map(|c| {
            c.iter()
                .copied()
                .filter(|s| *s <= latest)
                .max()
                .unwrap_or(0) as usize
        })
        .collect();
    ctx.log(&format!(
        "no round every party has a checkpoint of (a client had dropped out): resuming after \
         the server's round {latest}, each client from its latest state before it"
    ));
    Ok((latest as usize, from))
}

fn run_server(
    ctx: &Context,
    params: &FedAvgParams,
    eval: Option<&Dataset>,
    checkpoints: Checkpoints<'_>,
) -> Result<FedAvgOutcome, HflError> {
    let clients = clients_of(ctx);
    if let Err(e) = params.validate(clients.len()) {
        abort(ctx, &clients, &e.to_string());
        return Err(e);
    }
    // Setup: every client's schema and parameters must match.
    let mut alive = Vec::new();
    let mut n_train = Vec::new();
    let mut client_steps = Vec::new();
    let mut feature_names: Option<Vec<String>> = None;
    for c in &clients {
        let hello = match ctx.recv::<Hello>(c, TAG_HELLO) {
            Ok(h) => h,
            Err(e) if is_dropout(&e) => {
                ctx.log(&format!("client '{c}' did not join: {e}"));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let problem = if hello.version != PROTOCOL_VERSION {
            Some(format!(
                "client '{c}' speaks protocol version {} (server: {PROTOCOL_VERSION})",
                hello.version
            ))
        } else if hello.params_fingerprint != params.fingerprint() {
            Some(format!(
                "client '{c}' runs with different parameters than the server; give every party the same job parameters"
            ))
        } else if hello.n_train == 0 {
            Some(format!("client '{c}' announced no training rows"))
        } else if feature_names
            .as_ref()
            .is_some_and(|f| *f != hello.feature_names)
        {
            Some(format!(
                "client '{c}' has other feature columns than the first client; horizontal FL needs the same columns in the same order on every client"
            ))
        } else {
            None
        };
        if let Some(reason) = problem {
            abort(ctx, &clients, &reason);
            return Err(HflError::Config(reason));
        }
        feature_names.get_or_insert(hello.feature_names);
        alive.push(c.clone());
        n_train.push((c.clone(), hello.n_train));
        client_steps.push(hello.checkpoints);
    }
    let Some(feature_names) = feature_names else {
        return Err(HflError::NoClients("no client joined the job".into()));
    };
    if alive.len() < clients.len() {
        // The checks that depend on the number of clients (secure aggregation's encoding, the
        // DP noise against the expected participants) now hold for fewer.
        if let Err(e) = params.validate(alive.len()) {
            abort(ctx, &alive, &e.to_string());
            return Err(e);
        }
    }
    let dp_weights = params.dp.as_ref().map(|_| DpWeights::new(params, n_train));
    let model = Model::init(params.model.clone(), feature_names.clone(), params.seed)?;
    let test = match eval {
        Some(e) => Some(prepare(e, &feature_names, params.model.task())?),
        None => None,
    };
    let mut server = Server {
        ctx,
        params,
        alive,
        model,
        test,
        evaluations: Vec::new(),
        accountant: RdpAccountant::new(),
        dp_weights,
    };
    let (resume_after, clients_from) = resume_point(ctx, params, checkpoints, &client_steps)?;
    let fingerprint = params.fingerprint();
    let mut rounds = Vec::new();
    match checkpoints.resume_from {
        Some(store) if resume_after > 0 => {
            let restored = store.load(resume_after as u64).and_then(|bytes| {
                ServerCheckpoint::decode(
                    &bytes,
                    fingerprint,
                    server.model.params.len(),
                    resume_after as u64,
                )
            });
            let (saved, accountant) = match restored {
                Ok(r) => r,
                Err(e) => {
                    let reason =
                        format!("the server cannot resume after round {resume_after}: {e}");
                    abort(ctx, &server.alive, &reason);
                    return Err(HflError::Checkpoint(CheckpointError(reason)));
                }
            };
            server.model.params = saved.model;
            server.accountant = accountant;
            server.evaluations = saved.evaluations;
            rounds = saved.rounds;
            ctx.log(&format!("resuming after round {resume_after}"));
            // `client_steps` and so `clients_from` follow `alive`, both in order of joining.
            for (c, &from) in server.alive.iter().zip(&clients_from) {
                ctx.send(
                    c,
                    TAG_CONTROL,
                    &Control::Resume {
                        round: resume_after,
                        from,
                    },
                )?;
            }
            // As on the clients: the resumed job's store starts with the state it continues.
            checkpoints.save(resume_after as u64, || {
                ServerCheckpoint::new(
                    fingerprint,
                    resume_after,
                    &server.model.params,
                    &server.accountant,
                    &rounds,
                    &server.evaluations,
                )
                .encode()
            })?;
        }
        _ => {
            server.evaluate_test(0)?;
        }
    }

    let mut stop = StopReason::Completed;
    for round in resume_after + 1..=params.rounds {
        ctx.check_cancelled()?;
        let mut sigma = None;
        if let Some(dp) = &params.dp {
            let s = dp.noise.multiplier_at(round);
            let q = server.sampling_rate();
            if let Some(budget) = dp.epsilon_budget {
                let next = server.accountant.epsilon_after(s, q, dp.delta);
                if next > budget {
                    let spent = server.accountant.epsilon(dp.delta).0;
                    let message = format!(
                        "privacy budget reached: round {round} would raise ε from {spent:.4} to {next:.4}, above the budget ε = {budget} (δ = {:e}); training stopped after {} rounds",
                        dp.delta,
                        round - 1
                    );
                    if round == 1 {
                        let reason = format!(
                            "{message}. Raise the budget or the noise multiplier (σ = {s}) to train at all"
                        );
                        abort(ctx, &server.alive, &reason);
                        return Err(HflError::PrivacyBudget(reason));
                    }
                    ctx.log(&message);
                    stop = StopReason::PrivacyBudget(message);
                    break;
                }
            }
            sigma = Some(s);
        }
        if server.alive.is_empty() {
            return Err(HflError::NoClients(format!(
                "all clients dropped out before round {round}"
            )));
        }
        ctx.progress(
            (round - 1) as f64 / params.rounds as f64,
            &format!("round {round}"),
        );
        let mut report = server.run_round(round, sigma)?;
        if let (Some(dp), Some(s)) = (&params.dp, sigma) {
            server.accountant.step(s, server.sampling_rate());
            let eps = server.accountant.epsilon(dp.delta).0;
            report.epsilon = Some(eps);
            if eps.is_finite() {
                ctx.metric("epsilon", round as u64, eps);
            }
        }
        server.evaluate_test(round)?;
        rounds.push(report);
        checkpoints.save(round as u64, || {
            ServerCheckpoint::new(
                fingerprint,
                round,
                &server.model.params,
                &server.accountant,
                &rounds,
                &server.evaluations,
            )
            .encode()
        })?;
    }
    let rounds_completed = rounds.len();
    let epsilon = params
        .dp
        .as_ref()
        .map(|dp| server.accountant.epsilon(dp.delta).0);
    let alive = server.alive.clone();
    for c in &alive {
        ctx.send(
            c,
            TAG_CONTROL,
            &Control::Finish {
                model: server.model.params.clone(),
                rounds_completed,
                stop: stop.clone(),
                epsilon,
            },
        )?;
    }
    for c in &alive {
        match ctx.recv::<FinalStats>(c, TAG_FINAL) {
            Ok(f) => server.record_client_eval(c, rounds_completed, f.holdout, f.test),
            Err(e) if is_dropout(&e) => ctx.log(&format!(
                "client '{c}' left before its final evaluation: {e}"
            )),
            Err(e) => return Err(e.into()),
        }
    }
    ctx.progress(1.0, "done");
    ctx.flush()?;
    Ok(FedAvgOutcome {
        model: server.model,
        rounds,
        evaluations: server.evaluations,
        rounds_completed,
        stop,
        epsilon,
        privacy: params.privacy_report(epsilon),
    })
}
