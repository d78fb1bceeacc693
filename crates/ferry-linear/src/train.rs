//! The training protocol for every role (see the crate docs for the message flow).

use crate::checkpoint::{PartyState, fingerprint};
use crate::data::{LocalData, PackedColumns, Quadratic, quantise_residuals};
use crate::error::LinearError;
use crate::messages::*;
use crate::model::{MODEL_FORMAT, MODEL_FORMAT_VERSION, ModelPart};
use crate::msm::multi_exp;
use crate::optim::OptimizerState;
use crate::params::{LinearParams, ResolvedMode, Task};
use crate::plan::epoch_batches;
use crate::report::{EpochRecord, OpCounter, TrainReport};
use ferry_context::{Context, PartyId, Role};
use ferry_crypto::random::{fork_rng, random_bits};
use ferry_crypto::{HePublicKey, HeSecretKey, OuSecretKey, PaillierSecretKey, SchemeKind};
use ferry_data::Dataset;
use ferry_ml::{CheckpointError, Checkpoints};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use rug::Integer;
use sha2::{Digest, Sha256};
use std::time::Instant;

/// Statistical security parameter `κ` of the arbiter's masks.
///
/// A data party whose packed gradient `V` satisfies `|V| < 2^b` (`b` = the packed width of the
/// ciphertext: its columns times the slot width) has the arbiter decrypt `V + R`,
/// with `R` uniform on `[0, 2^(b+κ))`. Shifting a uniform distribution by `V` moves at most
/// `|V| / 2^(b+κ) < 2^-κ` of its mass, so whatever `V` is, what the arbiter sees is within
/// statistical distance `2^-κ` of `R` alone.
///
/// Why 80: the arbiter sees one masked value per data party, ciphertext column and batch —
/// tens of thousands in a long job — and the distances add up. At the former 40 bits,
/// `2^16` values already allow `2^-24`, which is not negligible; 80 bits is the usual
/// statistical security parameter when masks are reused across a whole computation and leaves
/// `2^-56` even after `2^24` decryptions.
///
/// What it costs: the packing sizes its slots within `plaintext_bits − κ − 1` bits, so
/// `|V + R| < 2^(b+κ+1) ≤ 2^plaintext_bits` and the masked value decrypts without wrapping
/// around the modulus. At the default precision and 5,000-row batches (74-bit slots)
/// Paillier-2048 packs 26 columns per ciphertext instead of 27 at 40 bits, and OU-2048
/// (680-bit plaintexts) 8 either way.
pub const MASK_STATISTICAL_BITS: u32 = 80;

const _: () = assert!(
    MASK_STATISTICAL_BITS >= 80,
    "the arbiter's masks must be at least 80 bits wider than the masked value"
);

/// Most ciphertexts one row may need (keeps what peers may announce bounded).
const MAX_CIPHERTEXTS_PER_ROW: usize = 64;

/// A party's trained model part and its report.
#[derive(Clone, Debug)]
pub struct Trained {
    pub model: ModelPart,
    pub report: TrainReport,
}

/// Trains hetero linear/logistic regression; returns this party's model part.
///
/// * guest: `data` = its training rows with labels;
/// * host: `data` = its training rows (features only);
/// * arbiter: `data` = `None` (it never sees data).
///
/// Every data party's rows must already be aligned (same ids, same order: the output of
/// PSI). `validation`, when given, must be given at every data party and be aligned too; it
/// enables early stopping and the validation loss in the report.
pub fn train(
    ctx: &Context,
    data: Option<&Dataset>,
    params: &LinearParams,
    validation: Option<&Dataset>,
) -> Result<ModelPart, LinearError> {
    fit(ctx, data, params, validation).map(|t| t.model)
}

/// [`train`], also returning the [`TrainReport`].
pub fn fit(
    ctx: &Context,
    data: Option<&Dataset>,
    params: &LinearParams,
    validation: Option<&Dataset>,
) -> Result<Trained, LinearError> {
    fit_with_checkpoints(ctx, data, params, validation, Checkpoints::NONE)
}

/// [`fit`] with checkpoints: every data party saves its state into `checkpoints.save` after
/// every epoch; with `checkpoints.resume_from` (at every data party; the arbiter keeps no
/// state and needs none) training continues from the last epoch all data parties have there,
/// and the model equals that of an uninterrupted run. `max_epochs` may be raised for the
/// resumed run; every other parameter and the rows must be the same.
pub fn fit_with_checkpoints(
    ctx: &Context,
    data: Option<&Dataset>,
    params: &LinearParams,
    validation: Option<&Dataset>,
    checkpoints: Checkpoints<'_>,
) -> Result<Trained, LinearError> {
    params.validate()?;
    let mode = params.mode.resolve(ctx.has_arbiter())?;
    match params.he.scheme {
        SchemeKind::Paillier => {
            fit_with::<PaillierSecretKey>(ctx, data, params, validation, mode, checkpoints)
        }
        SchemeKind::OkamotoUchiyama => {
            fit_with::<OuSecretKey>(ctx, data, params, validation, mode, checkpoints)
        }
    }
}

/// A party's checked training rows and, if given, validation rows.
type LocalSets = (LocalData, Option<LocalData>);

/// Who is who in this job.
#[derive(Clone, Debug)]
struct Parties {
    me: PartyId,
    guest: PartyId,
    hosts: Vec<PartyId>,
    arbiter: Option<PartyId>,
    /// Guest first, then hosts in roster order.
    data: Vec<PartyId>,
}

impl Parties {
    fn of(ctx: &Context, mode: ResolvedMode) -> Result<Self, LinearError> {
        let guest = ctx.guest()?;
        let hosts = ctx.hosts();
        if hosts.is_empty() {
            return Err(LinearError::InvalidParams(
                "hetero linear regression needs at least one host besides the guest".into(),
            ));
        }
        let arbiter = match mode {
            ResolvedMode::WithArbiter => Some(ctx.arbiter()?),
            ResolvedMode::WithoutThirdParty => None,
        };
        let mut data = vec![guest.clone()];
        data.extend(hosts.iter().cloned());
        Ok(Parties {
            me: ctx.me().clone(),
            guest,
            hosts,
            arbiter,
            data,
        })
    }

    /// Everyone the guest talks to: hosts and, with one, the arbiter.
    fn guest_peers(&self) -> Vec<PartyId> {
        let mut v = self.hosts.clone();
        v.extend(self.arbiter.iter().cloned());
        v
    }

    fn other_data(&self) -> Vec<PartyId> {
        self.data
            .iter()
            .filter(|p| **p != self.me)
            .cloned()
            .collect()
    }

    /// Without an arbiter, the party that sums the encrypted parts of `target`'s gradient so
    /// that `target` only ever decrypts their total.
    fn aggregator_for(&self, target: &PartyId) -> &PartyId {
        if *target == self.guest {
            &self.hosts[0]
        } else {
            &self.guest
        }
    }
}

fn make_rng(params: &LinearParams, me: &PartyId) -> ChaCha20Rng {
    match params.insecure_test_rng_seed {
        Some(seed) => {
            let mut h = Sha256::new();
            h.update(seed.to_le_bytes());
            h.update(me.as_str().as_bytes());
            ChaCha20Rng::from_seed(h.finalize().into())
        }
        None => fork_rng(&mut rand::rng()),
    }
}

fn fit_with<S: HeSecretKey>(
    ctx: &Context,
    data: Option<&Dataset>,
    params: &LinearParams,
    validation: Option<&Dataset>,
    mode: ResolvedMode,
    checkpoints: Checkpoints<'_>,
) -> Result<Trained, LinearError> {
    let start = Instant::now();
    let role = ctx.role();
    if role == Role::Arbiter && mode == ResolvedMode::WithoutThirdParty {
        // The arbiter is in the roster but this protocol does not use it.
        return Ok(Trained {
            model: empty_part(ctx, params, mode, 0),
            report: empty_report(ctx, params, mode, start),
        });
    }
    let parties = Parties::of(ctx, mode)?;
    let ctx = ctx.sub("hetero-linear");
    let mut rng = make_rng(params, &parties.me);
    let ops = OpCounter::default();
    match role {
        Role::Arbiter => arbiter_main::<S>(&ctx, &parties, params, mode, &mut rng, &ops, start),
        Role::Guest | Role::Host => {
            let data = data.ok_or_else(|| {
                LinearError::Data(format!(
                    "the {role} must bring its training data (only the arbiter passes None)"
                ))
            })?;
            data_party_main::<S>(
                &ctx,
                &parties,
                data,
                validation,
                params,
                mode,
                &mut rng,
                &ops,
                start,
                checkpoints,
            )
        }
    }
}

fn empty_part(
    ctx: &Context,
    params: &LinearParams,
    mode: ResolvedMode,
    epochs: usize,
) -> ModelPart {
    ModelPart {
        format: MODEL_FORMAT.into(),
        version: MODEL_FORMAT_VERSION,
        task: params.task,
        role: ctx.role(),
        party: ctx.me().to_string(),
        mode,
        feature_names: Vec::new(),
        weights: Vec::new(),
        intercept: None,
        epochs,
    }
}

fn empty_report(
    ctx: &Context,
    params: &LinearParams,
    mode: ResolvedMode,
    start: Instant,
) -> TrainReport {
    let counters = ctx.counters();
    TrainReport {
        role: ctx.role(),
        mode,
        scheme: params.he.scheme.name().into(),
        key_bits: params.he.key_bits,
        epochs: Vec::new(),
        setup_seconds: 0.0,
        total_seconds: start.elapsed().as_secs_f64(),
        converged: false,
        stopped_early: false,
        model_epoch: 0,
        he_ops: Default::default(),
        bytes_sent: counters.bytes_sent(),
        bytes_received: counters.bytes_received(),
        messages_sent: counters.messages_sent(),
    }
}

// ---------------------------------------------------------------------------------------
// Set-up: agree on parameters and rows before anything secret moves.

/// The guest's side of the handshake. Returns the local data or the reason to stop.
fn guest_handshake(
    ctx: &Context,
    parties: &Parties,
    params: &LinearParams,
    local: Result<LocalSets, LinearError>,
    latest: Option<Result<u64, CheckpointError>>,
) -> Result<(LocalSets, Option<u64>), LinearError> {
    // A guest asked to resume without a usable checkpoint cannot take part.
    let (local, latest) = match (local, latest) {
        (Err(e), _) => (Err(e), None),
        (Ok(_), Some(Err(e))) => (Err(LinearError::Checkpoint(e)), None),
        (Ok(l), Some(Ok(t))) => (Ok(l), Some(t)),
        (Ok(l), None) => (Ok(l), None),
    };
    let setup = Setup {
        protocol_version: PROTOCOL_VERSION,
        params_json: serde_json::to_string(params).unwrap_or_default(),
        train_rows: local
            .as_ref()
            .map(|(l, _)| l.rows)
            .unwrap_or(RowsFingerprint {
                rows: 0,
                ids_sha256: [0; 32],
            }),
        validation_rows: local
            .as_ref()
            .ok()
            .and_then(|(_, v)| v.as_ref().map(|v| v.rows)),
        problem: local.as_ref().err().map(LinearError::for_peers),
    };
    let peers = parties.guest_peers();
    ctx.broadcast(&parties.hosts, "setup", &setup)?;
    if let Some(arbiter) = &parties.arbiter {
        // The arbiter needs the row count (for the batch plan) but not the ids' digest.
        let mut for_arbiter = setup.clone();
        for_arbiter.train_rows.ids_sha256 = [0; 32];
        for_arbiter.validation_rows = None;
        ctx.send(arbiter, "setup", &for_arbiter)?;
    }
    let replies: Vec<SetupReply> = ctx.gather(&peers, "setup-reply")?;
    let mut problems: Vec<String> = Vec::new();
    if let Err(e) = &local {
        // Peers hear that the guest cannot take part; the guest itself returns the full error.
        problems.push(format!("the guest cannot take part: {}", e.for_peers()));
    }
    for (p, r) in peers.iter().zip(&replies) {
        if let Some(reason) = &r.problem {
            problems.push(format!("party '{p}' cannot take part: {reason}"));
        }
    }
    // Resuming: the last epoch every data party has a checkpoint of. Every data party resumes
    // or none does; the arbiter keeps no state.
    let mut resume = latest;
    if problems.is_empty() {
        for (p, r) in peers.iter().zip(&replies) {
            let is_host = parties.hosts.contains(p);
            match (latest, r.resume) {
                (_, Some(_)) if !is_host => {
                    problems.push(format!("party '{p}' offered a checkpoint but keeps none"));
                }
                (Some(_), None) if is_host => problems.push(format!(
                    "the guest resumes from a checkpoint but party '{p}' trains from scratch"
                )),
                (None, Some(_)) => problems.push(format!(
                    "party '{p}' resumes from a checkpoint but the guest trains from scratch"
                )),
                (Some(_), Some(t)) => resume = resume.map(|r| r.min(t)),
                _ => {}
            }
        }
    }
    if let Some(r) = resume
        && r as usize > params.max_epochs
    {
        problems.push(format!(
            "the checkpoints hold {r} epochs, more than max_epochs = {}",
            params.max_epochs
        ));
    }
    let problem = (!problems.is_empty()).then(|| problems.join("; "));
    ctx.broadcast(
        &peers,
        "go",
        &Go {
            problem: problem.clone(),
            resume,
        },
    )?;
    let local = local?;
    match problem {
        Some(p) => Err(LinearError::Aborted(p)),
        None => Ok((local, resume)),
    }
}

/// What a host or the arbiter agreed to in the handshake.
struct Agreed {
    setup: Setup,
    /// This party's parameters with the guest's `task`, which the guest's label may have
    /// chosen (`FederatedModel::follow_labels`); every other field must be equal.
    params: LinearParams,
    local: Option<LocalSets>,
    /// Resuming: the epoch every party continues from.
    resume: Option<u64>,
}

/// A host's or the arbiter's side of the handshake. `local` is `None` for the arbiter.
///
/// Parties other than the guest adopt the guest's `task`: only the guest has labels, so only
/// it can pick linear regression for a continuous label when the job left the task out, and
/// hosts need the task for their residual shares. Either task is safe for a host to run (its
/// share is `c·u_k`, with `c` = ¼ or 1); any other difference stops the job.
fn peer_handshake(
    ctx: &Context,
    parties: &Parties,
    params: &LinearParams,
    local: Option<Result<LocalSets, LinearError>>,
    latest: Option<Result<u64, CheckpointError>>,
) -> Result<Agreed, LinearError> {
    let setup: Setup = ctx.recv(&parties.guest, "setup")?;
    let me = parties.me.as_str();
    let (local, mut mine) = match local {
        None => (None, None),
        Some(Ok(l)) => (Some(l), None),
        Some(Err(e)) => (None, Some(e)),
    };
    let latest = match latest {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            mine = mine.or(Some(LinearError::Checkpoint(e)));
            None
        }
    };
    if setup.protocol_version != PROTOCOL_VERSION {
        mine = Some(LinearError::Aborted(format!(
            "the guest speaks hetero-linear protocol version {} but party '{me}' speaks \
             version {PROTOCOL_VERSION}; upgrade the older node",
            setup.protocol_version
        )));
    }
    let mut agreed = params.clone();
    if mine.is_none() {
        match serde_json::from_str::<LinearParams>(&setup.params_json) {
            Ok(theirs) => {
                agreed.task = theirs.task;
                let diffs = agreed.differences(&theirs);
                if !diffs.is_empty() {
                    mine = Some(LinearError::ParamsMismatch(diffs.join("; ")));
                }
            }
            Err(e) => {
                mine = Some(LinearError::protocol(
                    &parties.guest,
                    format!("sent unreadable parameters: {e}"),
                ))
            }
        }
    }
    if let (None, None, Some((train, valid))) = (&mine, &setup.problem, &local) {
        mine = if let Some(m) = setup.train_rows.mismatch(&train.rows, "training", me) {
            Some(LinearError::Misaligned(m))
        } else {
            match (&setup.validation_rows, valid) {
                (Some(g), Some(v)) => g
                    .mismatch(&v.rows, "validation", me)
                    .map(LinearError::Misaligned),
                (None, None) => None,
                (Some(_), None) => Some(LinearError::Data(format!(
                    "the guest has a validation set but party '{me}' has none; give every \
                     data party its validation rows"
                ))),
                (None, Some(_)) => Some(LinearError::Data(format!(
                    "party '{me}' has a validation set but the guest has none"
                ))),
            }
        };
    }
    ctx.send(
        &parties.guest,
        "setup-reply",
        &SetupReply {
            problem: mine.as_ref().map(LinearError::for_peers),
            resume: latest,
        },
    )?;
    let go: Go = ctx.recv(&parties.guest, "go")?;
    if let Some(e) = mine {
        return Err(e);
    }
    if let Some(p) = go.problem {
        return Err(LinearError::Aborted(p));
    }
    // The guest's choice must be a checkpoint this party has: at most its latest (a data
    // party), and only when it resumes at all.
    match (go.resume, latest, local.is_some()) {
        (Some(r), Some(t), true) if r > t => {
            return Err(LinearError::protocol(
                &parties.guest,
                format!("resumes after epoch {r}, but this party's latest checkpoint is {t}"),
            ));
        }
        (Some(_), None, true) | (None, Some(_), _) => {
            return Err(LinearError::protocol(
                &parties.guest,
                "disagrees with this party on resuming from a checkpoint",
            ));
        }
        (Some(r), _, false) if r as usize > params.max_epochs => {
            return Err(LinearError::protocol(
                &parties.guest,
                format!("resumes after epoch {r}, beyond max_epochs"),
            ));
        }
        _ => {}
    }
    if agreed.task != params.task {
        ctx.log(&format!(
            "hetero linear: training the guest's task '{}' (this party's parameters say '{}')",
            agreed.task.name(),
            params.task.name()
        ));
    }
    Ok(Agreed {
        setup,
        params: agreed,
        local,
        resume: go.resume,
    })
}

fn prepare_local(
    role: Role,
    data: &Dataset,
    validation: Option<&Dataset>,
    params: &LinearParams,
) -> Result<LocalSets, LinearError> {
    let guest = role == Role::Guest;
    let train = LocalData::prepare(data, guest, params.task, "training")?;
    let valid = validation
        .map(|v| LocalData::prepare(v, guest, params.task, "validation"))
        .transpose()?;
    if let Some(v) = &valid
        && v.feature_names != train.feature_names
    {
        return Err(LinearError::Data(format!(
            "the validation data's features ({}) differ from the training data's ({})",
            v.feature_names.join(", "),
            train.feature_names.join(", ")
        )));
    }
    if params.early_stopping.is_some() && valid.is_none() {
        return Err(LinearError::Data(
            "early_stopping needs a validation set at every data party".into(),
        ));
    }
    if role == Role::Host && train.d == 0 {
        return Err(LinearError::Data(
            "a host must bring at least one feature column".into(),
        ));
    }
    Ok((train, valid))
}

fn check_key<K: HePublicKey>(
    key: &K,
    params: &LinearParams,
    from: &PartyId,
) -> Result<(), LinearError> {
    if key.key_bits() != params.he.key_bits {
        return Err(LinearError::protocol(
            from,
            format!(
                "sent a {}-bit key but the job uses {}-bit keys",
                key.key_bits(),
                params.he.key_bits
            ),
        ));
    }
    Ok(())
}

/// Bits of plaintext the packing may fill. With an arbiter the masked value `V + R` must fit
/// too: `R` is [`MASK_STATISTICAL_BITS`] wider than `V`, and one more bit covers the sum's
/// carry. Without an arbiter nothing is masked. A key too small for the mask leaves no room,
/// which [`PackedColumns::new`] reports as a key too small for the precision.
pub(crate) fn packing_budget(mode: ResolvedMode, plaintext_bits: u32) -> u32 {
    match mode {
        ResolvedMode::WithArbiter => plaintext_bits.saturating_sub(MASK_STATISTICAL_BITS + 1),
        ResolvedMode::WithoutThirdParty => plaintext_bits,
    }
}

/// One statistically hiding mask per ciphertext column of a row: uniform over
/// [`MASK_STATISTICAL_BITS`] more bits than the column's packed value can take.
pub(crate) fn draw_masks(columns: &PackedColumns, rng: &mut ChaCha20Rng) -> Vec<Integer> {
    (0..columns.ciphertexts_per_row)
        .map(|k| random_bits(rng, columns.packed_bits(k) + MASK_STATISTICAL_BITS))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The arbiter.

/// How many ciphertexts the arbiter decrypts for each data party per batch, in
/// `Parties::data` order.
///
/// The arbiter holds the only secret key, and every data party holds the others' rows
/// encrypted under it; a decryption service that decrypted whatever it is sent would hand out
/// features and labels. So each data party tells the arbiter, before any decryption, how many
/// ciphertexts it knows every data party's masked gradient takes: its own packing, and the
/// `ciphertexts_per_row` each other party announced with its encrypted rows (the number of
/// ciphertexts in every part sent to that party). The arbiter accepts a count for a party only
/// if all data parties agree on it, and then, per batch, decrypts exactly that many from that
/// party and nothing else.
fn agree_decryption_plan(ctx: &Context, parties: &Parties) -> Result<Vec<usize>, LinearError> {
    let n = parties.data.len();
    let mut plans: Vec<Vec<u32>> = Vec::with_capacity(n);
    for q in &parties.data {
        let plan: DecryptionPlan = ctx.recv(q, "decryption-plan")?;
        if plan.ciphertexts_per_row.len() != n {
            return Err(LinearError::protocol(
                q,
                format!(
                    "sent a decryption plan for {} data parties; the job has {n}",
                    plan.ciphertexts_per_row.len()
                ),
            ));
        }
        plans.push(plan.ciphertexts_per_row);
    }
    parties
        .data
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let own = plans[i][i];
            if own == 0 || own as usize > MAX_CIPHERTEXTS_PER_ROW {
                return Err(LinearError::protocol(
                    p,
                    format!(
                        "announced {own} ciphertexts per gradient (1 to {MAX_CIPHERTEXTS_PER_ROW})"
                    ),
                ));
            }
            if plans.iter().any(|plan| plan[i] != own) {
                let said: Vec<String> = parties
                    .data
                    .iter()
                    .zip(&plans)
                    .map(|(q, plan)| format!("'{q}' says {}", plan[i]))
                    .collect();
                return Err(LinearError::protocol(
                    p,
                    format!(
                        "the data parties disagree on how many ciphertexts the gradient of '{p}' \
                         takes ({}); the arbiter decrypts nothing",
                        said.join(", ")
                    ),
                ));
            }
            Ok(own as usize)
        })
        .collect()
}

fn arbiter_main<S: HeSecretKey>(
    ctx: &Context,
    parties: &Parties,
    params: &LinearParams,
    mode: ResolvedMode,
    rng: &mut ChaCha20Rng,
    ops: &OpCounter,
    start: Instant,
) -> Result<Trained, LinearError> {
    let Agreed {
        setup,
        params,
        resume,
        ..
    } = peer_handshake(ctx, parties, params, None, None)?;
    let params = &params;
    let sk = S::generate(params.he.key_bits, rng)?;
    ctx.broadcast(&parties.data, "public-key", sk.public())?;
    let plan = agree_decryption_plan(ctx, parties)?;
    let n_rows = usize::try_from(setup.train_rows.rows)
        .map_err(|_| LinearError::protocol(&parties.guest, "row count does not fit in memory"))?;
    let setup_seconds = start.elapsed().as_secs_f64();
    let capacity = sk.public().plaintext_bits() + 1;
    let mut epochs = Vec::new();
    // A resumed job continues at the data parties' common epoch; the arbiter has no state.
    let first_epoch = resume.unwrap_or(0) as usize;
    let mut epochs_run = first_epoch;
    for epoch in first_epoch..params.max_epochs {
        let t0 = Instant::now();
        let ectx = ctx.sub(format!("e{epoch}"));
        let batches = epoch_batches(
            n_rows,
            params.batch_size,
            params.shuffle,
            params.seed,
            epoch,
        );
        for b in 0..batches.len() {
            ctx.check_cancelled()?;
            let bctx = ectx.sub(format!("b{b}"));
            // The step names each data party in turn, and what it may ask for: one masked
            // gradient of exactly its agreed size. Anything else is refused before a single
            // decryption; extra messages (another request in this batch, or for a batch that
            // does not exist) are never read, hence never decrypted.
            for (p, &expected) in parties.data.iter().zip(&plan) {
                let refuse = |asked: usize| {
                    LinearError::protocol(
                        p,
                        format!(
                            "asked the arbiter to decrypt {asked} ciphertexts in epoch {epoch}, \
                             batch {b} (its masked gradient), but that step calls for exactly \
                             {expected}; the arbiter decrypted nothing for it"
                        ),
                    )
                };
                let masked: EncryptedGradient = bctx.recv(p, "masked")?;
                if masked.columns.len() != expected {
                    return Err(refuse(masked.columns.len()));
                }
                let cts = sk
                    .public()
                    .decode_batch(&masked.columns)
                    .map_err(|e| LinearError::protocol(p, format!("bad masked gradient: {e}")))?;
                if cts.len() != expected {
                    return Err(refuse(cts.len()));
                }
                let values = sk.decrypt_many(&cts);
                ops.decrypt(values.len() as u64);
                debug_assert!(values.iter().all(|v| v.significant_bits() <= capacity));
                bctx.send(
                    p,
                    "unmasked",
                    &MaskedPlaintexts {
                        values: values.iter().map(WireInteger::from_integer).collect(),
                    },
                )?;
            }
        }
        let control: EpochControl = ectx.recv(&parties.guest, "control")?;
        epochs_run = epoch + 1;
        epochs.push(EpochRecord {
            epoch,
            loss: None,
            validation_loss: None,
            seconds: t0.elapsed().as_secs_f64(),
        });
        ctx.progress(
            epochs_run as f64 / params.max_epochs as f64,
            "hetero linear: epoch done",
        );
        if control.stop {
            break;
        }
    }
    ctx.flush()?;
    let mut report = empty_report(ctx, params, mode, start);
    report.epochs = epochs;
    report.setup_seconds = setup_seconds;
    report.he_ops = ops.snapshot();
    Ok(Trained {
        model: empty_part(ctx, params, mode, epochs_run),
        report,
    })
}

// ---------------------------------------------------------------------------------------
// Guest and hosts.

/// Another data party's rows, encrypted under `key`: `cts[k][i]` is ciphertext column `k`
/// of row `i`.
struct Remote<K: HePublicKey> {
    party: PartyId,
    key: K,
    cts: Vec<Vec<K::Ciphertext>>,
}

struct Keys<S: HeSecretKey> {
    /// This party's own key (no arbiter).
    own: Option<S>,
    /// The key this party's rows are encrypted under (its own, or the arbiter's).
    mine: S::Public,
    /// The key each other data party's rows are encrypted under, in `Parties::other_data`
    /// order.
    others: Vec<(PartyId, S::Public)>,
}

fn exchange_keys<S: HeSecretKey>(
    ctx: &Context,
    parties: &Parties,
    params: &LinearParams,
    rng: &mut ChaCha20Rng,
) -> Result<Keys<S>, LinearError> {
    let others = parties.other_data();
    if let Some(arbiter) = &parties.arbiter {
        let pk: S::Public = ctx.recv(arbiter, "public-key")?;
        check_key(&pk, params, arbiter)?;
        Ok(Keys {
            own: None,
            others: others.iter().map(|p| (p.clone(), pk.clone())).collect(),
            mine: pk,
        })
    } else {
        let sk = S::generate(params.he.key_bits, rng)?;
        ctx.broadcast(&others, "public-key", sk.public())?;
        let mut keys = Vec::new();
        for p in &others {
            let pk: S::Public = ctx.recv(p, "public-key")?;
            check_key(&pk, params, p)?;
            if pk.fingerprint() == sk.public().fingerprint() {
                return Err(LinearError::protocol(
                    p,
                    "sent this party's own public key back",
                ));
            }
            keys.push((p.clone(), pk));
        }
        Ok(Keys {
            mine: sk.public().clone(),
            own: Some(sk),
            others: keys,
        })
    }
}

/// Encrypts this party's packed rows and swaps encrypted rows with every other data party.
///
/// Transfers happen one ordered pair at a time in the same global order at every party, so
/// even a transport that blocks senders until the receiver reads cannot deadlock.
#[allow(clippy::too_many_arguments)]
fn exchange_features<S: HeSecretKey>(
    ctx: &Context,
    parties: &Parties,
    keys: &Keys<S>,
    packed: Vec<Vec<Integer>>,
    n_rows: usize,
    rng: &mut ChaCha20Rng,
    ops: &OpCounter,
) -> Result<Vec<Remote<S::Public>>, LinearError> {
    let mine: Vec<Vec<<S::Public as HePublicKey>::Ciphertext>> = packed
        .iter()
        .map(|col| {
            ops.encrypt(col.len() as u64);
            // The key owner encrypts with its secret key, which picks the faster path per
            // machine (through the CRT without IFMA: 1.7 times the public rate for Paillier,
            // 1.05 for OU, bench/results/peers-2048.json; the public path for OU with IFMA).
            // With an arbiter the key is the arbiter's, and the public key is all a data party
            // has.
            match &keys.own {
                Some(sk) => sk.encrypt_many(col, rng),
                None => keys.mine.encrypt_many(col, rng),
            }
        })
        .collect::<Result<_, _>>()?;
    let per_row = mine.len();
    drop(packed);
    let chunks = n_rows.div_ceil(FEATURE_CHUNK_ROWS);
    // Wire form once, on all cores, for every receiver.
    let messages: Vec<FeatureChunk> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let range = c * FEATURE_CHUNK_ROWS..((c + 1) * FEATURE_CHUNK_ROWS).min(n_rows);
            FeatureChunk {
                first_row: range.start as u64,
                columns: mine
                    .iter()
                    .map(|col| keys.mine.encode_batch(&col[range.clone()]))
                    .collect(),
            }
        })
        .collect();
    drop(mine);
    let mut remotes = Vec::new();
    for src in &parties.data {
        for dst in &parties.data {
            if src == dst {
                continue;
            }
            if *src == parties.me {
                ctx.send(
                    dst,
                    "features",
                    &FeatureHeader {
                        rows: n_rows as u64,
                        ciphertexts_per_row: per_row as u32,
                        chunks: chunks as u32,
                    },
                )?;
                for chunk in &messages {
                    ctx.send(dst, "features", chunk)?;
                }
            } else if *dst == parties.me {
                let key = keys
                    .others
                    .iter()
                    .find(|(p, _)| p == src)
                    .map(|(_, k)| k.clone())
                    .ok_or_else(|| LinearError::protocol(src, "no key for this party"))?;
                remotes.push(receive_features(ctx, src, key, n_rows)?);
            }
        }
    }
    Ok(remotes)
}

fn receive_features<K: HePublicKey>(
    ctx: &Context,
    src: &PartyId,
    key: K,
    n_rows: usize,
) -> Result<Remote<K>, LinearError> {
    let header: FeatureHeader = ctx.recv(src, "features")?;
    let per_row = header.ciphertexts_per_row as usize;
    let chunks = n_rows.div_ceil(FEATURE_CHUNK_ROWS);
    if header.rows != n_rows as u64 || header.chunks as usize != chunks {
        return Err(LinearError::protocol(
            src,
            format!(
                "announced {} rows in {} chunks, expected {n_rows} rows",
                header.rows, header.chunks
            ),
        ));
    }
    if per_row == 0 || per_row > MAX_CIPHERTEXTS_PER_ROW {
        return Err(LinearError::protocol(
            src,
            format!("announced {per_row} ciphertexts per row"),
        ));
    }
    let raw: Vec<FeatureChunk> = (0..chunks)
        .map(|_| ctx.recv::<FeatureChunk>(src, "features"))
        .collect::<Result<_, _>>()?;
    let decoded: Vec<Vec<Vec<K::Ciphertext>>> = raw
        .par_iter()
        .enumerate()
        .map(|(c, chunk)| {
            let range = c * FEATURE_CHUNK_ROWS..((c + 1) * FEATURE_CHUNK_ROWS).min(n_rows);
            if chunk.first_row != range.start as u64 || chunk.columns.len() != per_row {
                return Err(LinearError::protocol(
                    src,
                    format!("feature chunk {c} is malformed"),
                ));
            }
            chunk
                .columns
                .iter()
                .map(|batch| {
                    let cts = key.decode_batch(batch).map_err(|e| {
                        LinearError::protocol(src, format!("bad encrypted features: {e}"))
                    })?;
                    if cts.len() != range.len() {
                        return Err(LinearError::protocol(
                            src,
                            format!("feature chunk {c} has the wrong size"),
                        ));
                    }
                    Ok(cts)
                })
                .collect()
        })
        .collect::<Result<_, _>>()?;
    let mut cts: Vec<Vec<K::Ciphertext>> =
        (0..per_row).map(|_| Vec::with_capacity(n_rows)).collect();
    for chunk in decoded {
        for (k, col) in chunk.into_iter().enumerate() {
            cts[k].extend(col);
        }
    }
    Ok(Remote {
        party: src.clone(),
        key,
        cts,
    })
}

/// Working state of a guest or host during training.
struct DataParty<'a, S: HeSecretKey> {
    ctx: &'a Context,
    parties: &'a Parties,
    params: &'a LinearParams,
    is_guest: bool,
    local: LocalData,
    valid: Option<LocalData>,
    columns: PackedColumns,
    keys: Keys<S>,
    remotes: Vec<Remote<S::Public>>,
    quad: Quadratic,
    /// Feature weights, then (guest with intercept) the intercept.
    weights: Vec<f64>,
    opt: OptimizerState,
    rng: &'a mut ChaCha20Rng,
    ops: &'a OpCounter,
}

type Ct<S> = <<S as HeSecretKey>::Public as HePublicKey>::Ciphertext;

#[allow(clippy::too_many_arguments)]
fn data_party_main<S: HeSecretKey>(
    ctx: &Context,
    parties: &Parties,
    data: &Dataset,
    validation: Option<&Dataset>,
    params: &LinearParams,
    mode: ResolvedMode,
    rng: &mut ChaCha20Rng,
    ops: &OpCounter,
    start: Instant,
    checkpoints: Checkpoints<'_>,
) -> Result<Trained, LinearError> {
    let role = ctx.role();
    let is_guest = role == Role::Guest;
    let latest = checkpoints
        .resume_from
        .is_some()
        .then(|| checkpoints.resume_latest().map(Option::unwrap_or_default));
    // A host's labels are not read, so the task (which it may still adopt from the guest)
    // does not change what it prepares.
    let local = prepare_local(role, data, validation, params);
    let (params, (local, valid), resume) = if is_guest {
        let (sets, resume) = guest_handshake(ctx, parties, params, local, latest)?;
        (params.clone(), sets, resume)
    } else {
        let agreed = peer_handshake(ctx, parties, params, Some(local), latest)?;
        let local = agreed
            .local
            .ok_or_else(|| LinearError::Data("missing local data".into()))?;
        (agreed.params, local, agreed.resume)
    };
    let print = fingerprint(
        &params,
        &local.rows,
        valid.as_ref().map(|v| &v.rows),
        &local.feature_names,
    );
    let params = &params;
    ctx.progress(0.0, "hetero linear: exchanging keys and encrypted rows");
    let keys = exchange_keys::<S>(ctx, parties, params, rng)?;
    let fit_intercept = is_guest && params.fit_intercept;
    let quad = Quadratic::of(params.task);

    // Columns that go into the encrypted rows: the features, then at the guest the intercept's
    // constant 1 and the loss coefficient b(y) (used only to compute the training loss).
    let n = local.n;
    let d = local.d;
    let labels = local.labels.clone();
    let value = |i: usize, j: usize| -> f64 {
        if j < d {
            local.x[i * d + j]
        } else if fit_intercept && j == d {
            1.0
        } else {
            labels.as_ref().map_or(0.0, |y| quad.b(y[i]))
        }
    };
    let n_columns = d + if is_guest {
        1 + usize::from(fit_intercept)
    } else {
        0
    };
    let max_abs: Vec<f64> = (0..n_columns)
        .map(|j| (0..n).map(|i| value(i, j).abs()).fold(0.0, f64::max))
        .collect();
    let budget = packing_budget(mode, keys.mine.plaintext_bits());
    // A party's cross term sums one batch of products from every other data party.
    let max_terms = params.effective_batch(n) * (parties.data.len() - 1);
    let columns = PackedColumns::new(&max_abs, &params.precision, max_terms, budget)?;
    let packed = columns.pack_rows(n, &value)?;
    let remotes = exchange_features(ctx, parties, &keys, packed, n, rng, ops)?;
    if let Some(arbiter) = &parties.arbiter {
        let ciphertexts_per_row = parties
            .data
            .iter()
            .map(|p| {
                let count = if *p == parties.me {
                    columns.ciphertexts_per_row
                } else {
                    remotes
                        .iter()
                        .find(|r| r.party == *p)
                        .map(|r| r.cts.len())
                        .ok_or_else(|| LinearError::protocol(p, "sent no encrypted rows"))?
                };
                // Bounded by MAX_CIPHERTEXTS_PER_ROW when announced and when packed.
                Ok(count as u32)
            })
            .collect::<Result<_, LinearError>>()?;
        ctx.send(
            arbiter,
            "decryption-plan",
            &DecryptionPlan {
                ciphertexts_per_row,
            },
        )?;
    }
    let setup_seconds = start.elapsed().as_secs_f64();

    let n_weights = d + usize::from(fit_intercept);
    let mut penalised = vec![true; d];
    if fit_intercept {
        penalised.push(false);
    }
    let mut party = DataParty::<S> {
        ctx,
        parties,
        params,
        is_guest,
        local,
        valid,
        columns,
        keys,
        remotes,
        quad,
        weights: vec![0.0; n_weights],
        opt: OptimizerState::new(params.optimizer, params.penalty, penalised),
        rng,
        ops,
    };
    let restored = match (resume, checkpoints.resume_from) {
        (Some(epoch), Some(store)) => {
            let state = PartyState::decode(&store.load(epoch)?, &print, n_weights, epoch)?;
            party.weights.clone_from(&state.weights);
            party
                .opt
                .restore(state.opt_m.clone(), state.opt_v.clone(), state.opt_steps)
                .map_err(CheckpointError)?;
            ctx.log(&format!(
                "hetero linear: resuming after epoch {epoch} from the checkpoint"
            ));
            Some(state)
        }
        _ => None,
    };
    let outcome = party.run_epochs(restored, checkpoints, &print)?;
    ctx.flush()?;

    let mut report = empty_report(ctx, params, mode, start);
    report.setup_seconds = setup_seconds;
    report.epochs = outcome.epochs;
    report.converged = outcome.converged;
    report.stopped_early = outcome.stopped_early;
    report.model_epoch = outcome.model_epoch;
    report.he_ops = ops.snapshot();
    let (weights, intercept) = if fit_intercept {
        let mut w = outcome.weights;
        let b = w.pop();
        (w, b)
    } else {
        (outcome.weights, None)
    };
    let model = ModelPart {
        format: MODEL_FORMAT.into(),
        version: MODEL_FORMAT_VERSION,
        task: params.task,
        role,
        party: parties.me.to_string(),
        mode,
        feature_names: party.local.feature_names.clone(),
        weights,
        intercept,
        epochs: report.epochs.len(),
    };
    Ok(Trained { model, report })
}

struct Outcome {
    epochs: Vec<EpochRecord>,
    weights: Vec<f64>,
    model_epoch: usize,
    converged: bool,
    stopped_early: bool,
}

impl<S: HeSecretKey> DataParty<'_, S> {
    fn d(&self) -> usize {
        self.local.d
    }

    fn intercept(&self) -> f64 {
        if self.weights.len() > self.d() {
            self.weights[self.d()]
        } else {
            0.0
        }
    }

    /// The epoch loop, from the start or from a restored checkpoint; saves a checkpoint
    /// after every epoch that does not end training.
    fn run_epochs(
        &mut self,
        restored: Option<PartyState>,
        checkpoints: Checkpoints<'_>,
        fingerprint: &str,
    ) -> Result<Outcome, LinearError> {
        let params = self.params;
        let mut epochs = Vec::new();
        let mut best_weights = self.weights.clone();
        let mut model_epoch = 0;
        let mut best_validation = f64::INFINITY;
        let mut since_best = 0u32;
        let mut previous_loss: Option<f64> = None;
        let (mut converged, mut stopped_early) = (false, false);
        let mut first_epoch = 0;
        if let Some(s) = restored {
            first_epoch = s.epoch as usize;
            epochs = s.records;
            best_weights = s.best_weights;
            model_epoch = s.model_epoch;
            best_validation = s.best_validation;
            since_best = s.since_best;
            previous_loss = s.previous_loss;
        }
        for epoch in first_epoch..params.max_epochs {
            let t0 = Instant::now();
            let ectx = self.ctx.sub(format!("e{epoch}"));
            let batches = epoch_batches(
                self.local.n,
                params.batch_size,
                params.shuffle,
                params.seed,
                epoch,
            );
            let mut loss_sum = 0.0;
            for (b, rows) in batches.iter().enumerate() {
                self.ctx.check_cancelled()?;
                let bctx = ectx.sub(format!("b{b}"));
                if let Some(loss) = self.step(&bctx, rows)? {
                    loss_sum += loss * rows.len() as f64;
                }
            }
            let loss = self.is_guest.then(|| loss_sum / self.local.n as f64);
            let validation_loss = self.validation_loss(&ectx)?;
            let control = if self.is_guest {
                let mut best = true;
                let mut stop = epoch + 1 == params.max_epochs;
                if let (Some(es), Some(v)) = (&params.early_stopping, validation_loss) {
                    let improved = v < best_validation - es.min_delta;
                    if improved {
                        best_validation = v;
                        since_best = 0;
                    } else {
                        since_best += 1;
                    }
                    best = improved || !es.restore_best;
                    if since_best >= es.patience {
                        stop = true;
                        stopped_early = true;
                    }
                }
                if let (Some(prev), Some(cur)) = (previous_loss, loss)
                    && params.tolerance > 0.0
                    && (prev - cur).abs() < params.tolerance
                {
                    stop = true;
                    converged = true;
                }
                previous_loss = loss;
                let control = EpochControl { best, stop };
                ectx.broadcast(&self.parties.guest_peers(), "control", &control)?;
                if let Some(l) = loss {
                    self.ctx.metric("loss", epoch as u64, l);
                }
                if let Some(v) = validation_loss {
                    self.ctx.metric("validation_loss", epoch as u64, v);
                }
                control
            } else {
                ectx.recv::<EpochControl>(&self.parties.guest, "control")?
            };
            if control.best {
                best_weights.clone_from(&self.weights);
                model_epoch = epoch;
            }
            epochs.push(EpochRecord {
                epoch,
                loss,
                validation_loss,
                seconds: t0.elapsed().as_secs_f64(),
            });
            self.ctx.progress(
                (epoch + 1) as f64 / params.max_epochs as f64,
                &format!("hetero linear: epoch {}/{}", epoch + 1, params.max_epochs),
            );
            if control.stop {
                if !self.is_guest {
                    // Hosts learn that training stopped, not why.
                    converged = false;
                    stopped_early = false;
                }
                break;
            }
            checkpoints.save(epoch as u64 + 1, || {
                let (m, v, steps) = self.opt.moments();
                PartyState {
                    fingerprint: fingerprint.to_string(),
                    epoch: epoch as u64 + 1,
                    records: epochs.clone(),
                    weights: self.weights.clone(),
                    best_weights: best_weights.clone(),
                    model_epoch,
                    best_validation,
                    since_best,
                    previous_loss,
                    opt_m: m.to_vec(),
                    opt_v: v.to_vec(),
                    opt_steps: steps,
                }
                .encode()
            })?;
        }
        Ok(Outcome {
            epochs,
            weights: best_weights,
            model_epoch,
            converged,
            stopped_early,
        })
    }

    /// Hosts send their validation partial scores; the guest returns the validation loss.
    fn validation_loss(&self, ectx: &Context) -> Result<Option<f64>, LinearError> {
        let Some(valid) = &self.valid else {
            return Ok(None);
        };
        let d = self.d();
        let mut scores = valid.scores(0..valid.n, &self.weights[..d], self.intercept());
        if !self.is_guest {
            ectx.send(&self.parties.guest, "validation-scores", &scores)?;
            return Ok(None);
        }
        for h in &self.parties.hosts {
            let s: Vec<f64> = ectx.recv(h, "validation-scores")?;
            if s.len() != valid.n || s.iter().any(|v| !v.is_finite()) {
                return Err(LinearError::protocol(h, "sent malformed validation scores"));
            }
            for (a, b) in scores.iter_mut().zip(&s) {
                *a += b;
            }
        }
        let y = valid.labels.as_deref().unwrap_or_default();
        Ok(Some(validation_loss(self.params.task, &scores, y)))
    }

    /// One mini-batch. Returns the batch's mean training loss at the guest.
    fn step(&mut self, bctx: &Context, rows: &[usize]) -> Result<Option<f64>, LinearError> {
        let d = self.d();
        let n_b = rows.len();
        let c = self.quad.c;
        let u = self
            .local
            .scores(rows.iter().copied(), &self.weights[..d], self.intercept());
        // This party's additive share of the residual d_i = b(y_i) + c·(u_guest + Σ u_host).
        let share: Vec<f64> = match &self.local.labels {
            Some(y) if self.is_guest => rows
                .iter()
                .zip(&u)
                .map(|(&i, &ui)| self.quad.b(y[i]) + c * ui)
                .collect(),
            _ => u.iter().map(|ui| c * ui).collect(),
        };
        let exps = quantise_residuals(&share, &self.params.precision)?;

        // Encrypted cross terms X_Q^T·share for every other data party Q.
        let ops = self.ops;
        // Each part is re-randomised before it leaves: the party that made the row
        // ciphertexts knows their randomness and could otherwise test guesses of this party's
        // residual shares against the part's randomiser (and an all-zero share would travel
        // as the fixed encryption of zero).
        let seed = fork_rng(&mut *self.rng);
        let contributions: Vec<(PartyId, Vec<Ct<S>>)> = self
            .remotes
            .par_iter()
            .enumerate()
            .map(|(t, r)| {
                let cts: Vec<Ct<S>> = r
                    .cts
                    .par_iter()
                    .enumerate()
                    .map(|(k, col)| {
                        let part = multi_exp(&r.key, col, rows, &exps, ops);
                        let mut rng = seed.clone();
                        rng.set_stream(((t as u64) << 32) | k as u64);
                        r.key.rerandomize(&part, &mut rng)
                    })
                    .collect();
                ops.multi_exp(cts.len() as u64);
                ops.rerandomize(cts.len() as u64);
                (r.party.clone(), cts)
            })
            .collect();
        let plaintexts = if self.parties.arbiter.is_some() {
            self.through_arbiter(bctx, contributions)?
        } else {
            self.through_aggregator(bctx, contributions)?
        };
        let cross = self
            .columns
            .decode(&plaintexts, self.params.precision.residual_frac_bits);

        // Gradient sums: own rows times own share (plaintext) plus the decrypted cross terms.
        let mut grad = vec![0.0; self.weights.len()];
        for (&i, s) in rows.iter().zip(&share) {
            for (g, x) in grad.iter_mut().zip(self.local.row(i)) {
                *g += x * s;
            }
            if self.weights.len() > d {
                grad[d] += s;
            }
        }
        for (g, x) in grad.iter_mut().zip(&cross) {
            *g += x;
        }

        let penalty = self.opt.penalty_value(&self.weights);
        let batch_loss = if self.is_guest {
            // cross = X_g^T·c·u_h (features, intercept) and, last, Σ b(y)·c·u_h.
            let cross_b = cross.last().copied().unwrap_or(0.0);
            let g_term: f64 = self.weights.iter().zip(&cross).map(|(w, x)| w * x).sum();
            let mut h_term = 0.0;
            let mut host_penalties = 0.0;
            for h in &self.parties.hosts {
                let t: HostLossTerm = bctx.recv(h, "loss")?;
                if !t.weights_dot_gradient.is_finite() || !t.penalty.is_finite() {
                    return Err(LinearError::protocol(h, "sent a non-finite loss term"));
                }
                h_term += t.weights_dot_gradient;
                host_penalties += t.penalty;
            }
            let y = self.local.labels.as_deref().unwrap_or_default();
            let local: f64 = rows
                .iter()
                .zip(&u)
                .map(|(&i, &ui)| self.quad.a(y[i]) + self.quad.b(y[i]) * ui + 0.5 * c * ui * ui)
                .sum();
            let loss_sum = local + 0.5 * (cross_b / c + g_term + h_term);
            Some(loss_sum / n_b as f64 + penalty + host_penalties)
        } else {
            let term = HostLossTerm {
                weights_dot_gradient: self.weights.iter().zip(&grad).map(|(w, g)| w * g).sum(),
                penalty,
            };
            bctx.send(&self.parties.guest, "loss", &term)?;
            None
        };

        for g in grad.iter_mut() {
            *g /= n_b as f64;
        }
        self.opt.step(&mut self.weights, &grad);
        if self.weights.iter().any(|w| !w.is_finite()) {
            return Err(LinearError::ResidualOutOfRange {
                value: f64::INFINITY,
                bound_bits: self.params.precision.residual_int_bits,
            });
        }
        Ok(batch_loss)
    }

    /// Decodes an encrypted gradient part that `from` sent under `key`, for `target`.
    fn decode_part(
        &self,
        key: &S::Public,
        msg: &EncryptedGradient,
        from: &PartyId,
        expected: usize,
    ) -> Result<Vec<Ct<S>>, LinearError> {
        if msg.columns.len() != expected {
            return Err(LinearError::protocol(
                from,
                format!(
                    "sent {} ciphertexts, expected {expected}",
                    msg.columns.len()
                ),
            ));
        }
        key.decode_batch(&msg.columns)
            .map_err(|e| LinearError::protocol(from, format!("bad encrypted gradient: {e}")))
    }

    /// With an arbiter: parts go straight to their target, which adds them up, masks the sum
    /// and has the arbiter decrypt it.
    fn through_arbiter(
        &mut self,
        bctx: &Context,
        contributions: Vec<(PartyId, Vec<Ct<S>>)>,
    ) -> Result<Vec<Integer>, LinearError> {
        let key = self.keys.mine.clone();
        for (target, cts) in &contributions {
            bctx.send(
                target,
                "part",
                &EncryptedGradient {
                    columns: key.encode_batch(cts),
                },
            )?;
        }
        let per_row = self.columns.ciphertexts_per_row;
        let mut sum: Vec<Ct<S>> = vec![key.zero(); per_row];
        for p in self.parties.other_data() {
            let msg: EncryptedGradient = bctx.recv(&p, "part")?;
            for (acc, c) in sum
                .iter_mut()
                .zip(self.decode_part(&key, &msg, &p, per_row)?)
            {
                key.add_assign(acc, &c);
            }
        }
        self.ops
            .add((per_row * self.parties.other_data().len()) as u64);
        let masks = draw_masks(&self.columns, &mut *self.rng);
        let masked: Vec<Ct<S>> = sum
            .iter()
            .zip(&masks)
            .map(|(c, m)| {
                let c = key.add_plain(c, m)?;
                Ok(key.rerandomize(&c, &mut *self.rng))
            })
            .collect::<Result<_, LinearError>>()?;
        self.ops.rerandomize(per_row as u64);
        let arbiter = self
            .parties
            .arbiter
            .clone()
            .ok_or_else(|| LinearError::InvalidParams("no arbiter".into()))?;
        bctx.send(
            &arbiter,
            "masked",
            &EncryptedGradient {
                columns: key.encode_batch(&masked),
            },
        )?;
        let reply: MaskedPlaintexts = bctx.recv(&arbiter, "unmasked")?;
        if reply.values.len() != per_row {
            return Err(LinearError::protocol(
                &arbiter,
                "returned the wrong number of values",
            ));
        }
        reply
            .values
            .iter()
            .zip(&masks)
            .map(|(v, m)| {
                let v = v.to_integer(key.plaintext_bits() + 1).ok_or_else(|| {
                    LinearError::protocol(&arbiter, "returned an oversized value")
                })?;
                Ok(v - m)
            })
            .collect()
    }

    /// Without an arbiter: every part of a party's gradient is encrypted under that party's
    /// own key; one other party adds the parts up and re-randomises the total, which the
    /// owner decrypts.
    fn through_aggregator(
        &mut self,
        bctx: &Context,
        contributions: Vec<(PartyId, Vec<Ct<S>>)>,
    ) -> Result<Vec<Integer>, LinearError> {
        let parties = self.parties;
        let me = &parties.me;
        let mut held: Vec<(PartyId, Vec<Ct<S>>)> = Vec::new();
        for (target, cts) in contributions {
            let aggregator = parties.aggregator_for(&target);
            if aggregator == me {
                held.push((target, cts));
            } else {
                let key = self.remote_key(&target)?;
                bctx.send(
                    aggregator,
                    &format!("part-for-{target}"),
                    &EncryptedGradient {
                        columns: key.encode_batch(&cts),
                    },
                )?;
            }
        }
        for (target, mut sum) in held {
            let key = self.remote_key(&target)?;
            let expected = sum.len();
            for p in &parties.data {
                if p == me || *p == target {
                    continue;
                }
                let msg: EncryptedGradient = bctx.recv(p, &format!("part-for-{target}"))?;
                for (acc, c) in sum
                    .iter_mut()
                    .zip(self.decode_part(&key, &msg, p, expected)?)
                {
                    key.add_assign(acc, &c);
                }
                self.ops.add(expected as u64);
            }
            // Fresh randomness so the owner, who made the row ciphertexts, cannot trace the
            // contributors' scalars through the randomisers.
            let sum: Vec<Ct<S>> = sum
                .iter()
                .map(|c| key.rerandomize(c, &mut *self.rng))
                .collect();
            self.ops.rerandomize(sum.len() as u64);
            bctx.send(
                &target,
                "cross",
                &EncryptedGradient {
                    columns: key.encode_batch(&sum),
                },
            )?;
        }
        let aggregator = parties.aggregator_for(me).clone();
        let msg: EncryptedGradient = bctx.recv(&aggregator, "cross")?;
        let per_row = self.columns.ciphertexts_per_row;
        let cts = self.decode_part(&self.keys.mine, &msg, &aggregator, per_row)?;
        let sk = self
            .keys
            .own
            .as_ref()
            .ok_or_else(|| LinearError::InvalidParams("no own key".into()))?;
        let values = sk.decrypt_many(&cts);
        self.ops.decrypt(values.len() as u64);
        Ok(values)
    }

    fn remote_key(&self, party: &PartyId) -> Result<S::Public, LinearError> {
        self.remotes
            .iter()
            .find(|r| r.party == *party)
            .map(|r| r.key.clone())
            .ok_or_else(|| LinearError::protocol(party, "no encrypted rows from this party"))
    }
}

/// Validation loss from full scores: log loss (logistic) or half mean squared error (linear).
pub(crate) fn validation_loss(task: Task, scores: &[f64], y: &[f64]) -> f64 {
    let n = scores.len().max(1) as f64;
    match task {
        Task::Logistic => {
            scores
                .iter()
                .zip(y)
                .map(|(&u, &y)| softplus(u) - y * u)
                .sum::<f64>()
                / n
        }
        Task::Linear => {
            scores
                .iter()
                .zip(y)
                .map(|(u, y)| 0.5 * (u - y) * (u - y))
                .sum::<f64>()
                / n
        }
    }
}

/// `log(1 + e^u)` without overflow.
pub(crate) fn softplus(u: f64) -> f64 {
    if u > 0.0 {
        u + (-u).exp().ln_1p()
    } else {
        u.exp().ln_1p()
    }
}

pub(crate) fn sigmoid(u: f64) -> f64 {
    if u >= 0.0 {
        1.0 / (1.0 + (-u).exp())
    } else {
        let e = u.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    //! The arbiter's decryption service against data parties that deviate from the protocol,
    //! and the width of its masks. The data parties here are scripts speaking the wire
    //! messages directly, so they can ask for what an honest party never would.

    use super::*;
    use crate::messages::{Go, RowsFingerprint, Setup, SetupReply};
    use crate::params::Mode;
    use ferry_context::{LocalCluster, PartyOutcome, Roster, TranscriptEntry};
    use ferry_crypto::PaillierPublicKey;
    use std::time::Duration;

    const ROWS: u64 = 10;

    fn params() -> LinearParams {
        LinearParams {
            mode: Mode::WithArbiter,
            max_epochs: 1,
            batch_size: None,
            insecure_test_rng_seed: Some(9),
            ..LinearParams::default()
        }
        .with_insecure_key_bits(512)
    }

    /// What a scripted data party does; `None` leaves the step out.
    #[derive(Clone, Default)]
    struct Script {
        /// Ciphertexts per gradient it claims for (guest, host) in its decryption plan.
        plan: Option<[u32; 2]>,
        /// Ciphertexts in its masked request of epoch 0, batch 0.
        request: usize,
        /// Further requests nobody asked for: (tag under `hetero-linear`, ciphertexts).
        extra: Vec<(&'static str, usize)>,
    }

    fn honest() -> Script {
        Script {
            plan: Some([1, 1]),
            request: 1,
            extra: Vec::new(),
        }
    }

    fn encrypted(pk: &PaillierPublicKey, count: usize, rng: &mut ChaCha20Rng) -> EncryptedGradient {
        let cts: Vec<_> = (0..count)
            .map(|i| pk.encrypt(&Integer::from(1000 + i), rng))
            .collect::<Result<_, _>>()
            .expect("encrypt");
        EncryptedGradient {
            columns: pk.encode_batch(&cts),
        }
    }

    fn scripted_party(ctx: &Context, script: &Script) -> Result<Option<Trained>, LinearError> {
        let ctx = ctx.sub("hetero-linear");
        let arbiter = ctx.arbiter()?;
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        if ctx.role() == Role::Guest {
            let setup = Setup {
                protocol_version: PROTOCOL_VERSION,
                params_json: serde_json::to_string(&params()).expect("params"),
                train_rows: RowsFingerprint {
                    rows: ROWS,
                    ids_sha256: [0; 32],
                },
                validation_rows: None,
                problem: None,
            };
            ctx.send(&arbiter, "setup", &setup)?;
            let reply: SetupReply = ctx.recv(&arbiter, "setup-reply")?;
            assert_eq!(reply.problem, None);
            ctx.send(
                &arbiter,
                "go",
                &Go {
                    problem: None,
                    resume: None,
                },
            )?;
        }
        let pk: PaillierPublicKey = ctx.recv(&arbiter, "public-key")?;
        if let Some(plan) = script.plan {
            let plan = DecryptionPlan {
                ciphertexts_per_row: plan.to_vec(),
            };
            ctx.send(&arbiter, "decryption-plan", &plan)?;
        }
        let bctx = ctx.sub("e0").sub("b0");
        bctx.send(
            &arbiter,
            "masked",
            &encrypted(&pk, script.request, &mut rng),
        )?;
        for (tag, count) in &script.extra {
            ctx.send(&arbiter, tag, &encrypted(&pk, *count, &mut rng))?;
        }
        let _: MaskedPlaintexts = bctx.recv(&arbiter, "unmasked")?;
        if ctx.role() == Role::Guest {
            let stop = EpochControl {
                best: true,
                stop: true,
            };
            ctx.sub("e0").send(&arbiter, "control", &stop)?;
        }
        ctx.flush()?;
        Ok(None)
    }

    /// Runs the real arbiter against a scripted guest ("bank") and host ("telco").
    fn against_arbiter(guest: Script, host: Script) -> Vec<PartyOutcome<Option<Trained>>> {
        let roster = Roster::of(&[
            ("bank", Role::Guest),
            ("telco", Role::Host),
            ("coordinator", Role::Arbiter),
        ]);
        LocalCluster::new(roster)
            .timeout(Duration::from_secs(20))
            .capture_transcripts()
            .run(|ctx| -> Result<Option<Trained>, LinearError> {
                match ctx.role() {
                    Role::Arbiter => fit(&ctx, None, &params(), None).map(Some),
                    Role::Guest => scripted_party(&ctx, &guest),
                    Role::Host => scripted_party(&ctx, &host),
                }
            })
    }

    /// The arbiter's decryption replies, by recipient.
    fn replies_to(arbiter: &PartyOutcome<Option<Trained>>, party: &str) -> Vec<TranscriptEntry> {
        arbiter
            .transcript
            .as_ref()
            .expect("transcript")
            .sent()
            .into_iter()
            .filter(|e| e.tag.ends_with("unmasked") && e.peer.as_str() == party)
            .collect()
    }

    #[test]
    fn honest_requests_are_each_decrypted_once() {
        let out = against_arbiter(honest(), honest());
        let arbiter = out[2].result.as_ref().expect("arbiter").as_ref().unwrap();
        assert_eq!(arbiter.report.he_ops.decryptions, 2);
        assert_eq!(replies_to(&out[2], "bank").len(), 1);
        assert_eq!(replies_to(&out[2], "telco").len(), 1);
    }

    /// A host that asks for more ciphertexts than its gradient takes (say, the guest's
    /// encrypted rows after its own masked value) is refused, naming it and the step, and
    /// nothing of its request is decrypted.
    #[test]
    fn a_request_for_extra_ciphertexts_is_refused_without_decrypting() {
        for asked in [2, 0] {
            let greedy = Script {
                request: asked,
                ..honest()
            };
            let out = against_arbiter(honest(), greedy);
            let err = out[2].result.as_ref().unwrap_err();
            assert!(
                err.contains("party 'telco'")
                    && err.contains(&format!("decrypt {asked} ciphertexts"))
                    && err.contains("epoch 0, batch 0")
                    && err.contains("calls for exactly 1")
                    && err.contains("decrypted nothing"),
                "{err}"
            );
            assert!(replies_to(&out[2], "telco").is_empty());
            // The guest, earlier in the step, was served as usual.
            assert_eq!(replies_to(&out[2], "bank").len(), 1);
        }
    }

    /// Requests the step does not call for — a second one in the same batch (as if on behalf
    /// of another party), or for batches and epochs the job does not have — are never read:
    /// the arbiter decrypts exactly one gradient per party and finishes normally.
    #[test]
    fn requests_out_of_turn_are_never_decrypted() {
        let sneaky = Script {
            extra: vec![
                ("e0/b0/masked", 1),
                ("e0/b1/masked", 1),
                ("e1/b0/masked", 1),
            ],
            ..honest()
        };
        let guest_too = Script {
            extra: vec![("e0/b0/masked", 1)],
            ..honest()
        };
        let out = against_arbiter(guest_too, sneaky);
        let arbiter = out[2].result.as_ref().expect("arbiter").as_ref().unwrap();
        assert_eq!(arbiter.report.he_ops.decryptions, 2);
        assert_eq!(replies_to(&out[2], "telco").len(), 1);
        assert_eq!(replies_to(&out[2], "bank").len(), 1);
    }

    /// A host that tells the arbiter its gradient is larger than it told its partners is
    /// caught before any decryption, as is a plan that is missing or malformed.
    #[test]
    fn a_plan_the_parties_disagree_on_is_refused_before_any_decryption() {
        let inflated = Script {
            plan: Some([1, 3]),
            request: 3,
            ..honest()
        };
        let out = against_arbiter(honest(), inflated);
        let err = out[2].result.as_ref().unwrap_err();
        assert!(
            err.contains("party 'telco'")
                && err.contains("disagree")
                && err.contains("'bank' says 1")
                && err.contains("'telco' says 3"),
            "{err}"
        );
        assert!(replies_to(&out[2], "bank").is_empty());
        assert!(replies_to(&out[2], "telco").is_empty());

        let too_many = Script {
            plan: Some([1, MAX_CIPHERTEXTS_PER_ROW as u32 + 1]),
            ..honest()
        };
        let err = against_arbiter(too_many.clone(), too_many)[2]
            .result
            .as_ref()
            .unwrap_err()
            .clone();
        assert!(
            err.contains("party 'telco'") && err.contains("announced 65"),
            "{err}"
        );
    }

    /// The mask is drawn [`MASK_STATISTICAL_BITS`] wider than the packed value, and the masked
    /// value still decrypts exactly: the packing left room for it.
    #[test]
    fn masks_are_80_bits_wider_than_the_value_and_fit_the_plaintext() {
        // (That the constant is at least 80 is checked at compile time, next to it.)
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let sk = PaillierSecretKey::generate(512, &mut rng).expect("key");
        let pk = sk.public();
        let precision = crate::params::Precision::default();
        let budget = packing_budget(ResolvedMode::WithArbiter, pk.plaintext_bits());
        // 9 columns summed over 64 rows from 2 parties: two ciphertexts at 512 bits.
        let columns = PackedColumns::new(&[1.0; 9], &precision, 128, budget).expect("layout");
        assert_eq!(columns.ciphertexts_per_row, 2);
        let mut widest = vec![0; columns.ciphertexts_per_row];
        for _ in 0..64 {
            for (k, m) in draw_masks(&columns, &mut rng).iter().enumerate() {
                let width = columns.packed_bits(k) + MASK_STATISTICAL_BITS;
                assert!(*m >= 0 && m.significant_bits() <= width);
                widest[k] = widest[k].max(m.significant_bits());
            }
        }
        for (k, w) in widest.iter().enumerate() {
            // 64 uniform draws all miss the top 4 bits with probability 2^-256.
            assert!(
                *w + 4 > columns.packed_bits(k) + MASK_STATISTICAL_BITS,
                "{k}: {w}"
            );
        }
        // The extreme packed values plus the widest mask decrypt without wrapping.
        for k in 0..columns.ciphertexts_per_row {
            let b = columns.packed_bits(k);
            let mask = (Integer::from(1) << (b + MASK_STATISTICAL_BITS)) - 1u32;
            for v in [
                (Integer::from(1) << b) - 1u32,
                -((Integer::from(1) << b) - 1u32),
            ] {
                let ct = pk.encrypt(&v, &mut rng).expect("encrypt");
                let masked = pk.add_plain(&ct, &mask).expect("add");
                let plain = sk.decrypt(&masked);
                assert_eq!(plain, Integer::from(&v + &mask));
                assert!(plain.significant_bits() >= v.significant_bits() + MASK_STATISTICAL_BITS);
            }
        }
        // Paillier-2048 at the default precision and 5,000-row batches from two parties keeps
        // 26 of the 27 columns a 40-bit mask allowed per ciphertext.
        let wide = PackedColumns::new(
            &[1.0; 26],
            &precision,
            5000,
            packing_budget(ResolvedMode::WithArbiter, 2046),
        )
        .expect("layout");
        assert_eq!((wide.layout.slots(), wide.ciphertexts_per_row), (26, 1));
    }
}
