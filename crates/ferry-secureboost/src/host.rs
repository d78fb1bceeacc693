//! The host side of training: encrypted histograms over its own bins, split bookkeeping, and
//! answers to prediction queries.

use crate::checkpoint::{HostState, fingerprint};
use crate::error::SecureBoostError;
use crate::model::{HostModel, HostSplit, local_goes_left};
use crate::params::SecureBoostParams;
use crate::protocol::*;
use crate::report::{OpCounter, TrainReport};
use ferry_context::{Context, PartyId};
use ferry_crypto::HePublicKey;
use ferry_crypto::packing::PackingLayout;
use ferry_data::Dataset;
use ferry_ml::Checkpoints;
use ferry_ml::binning::{BinnedMatrix, Binning};
use rayon::prelude::*;
use std::time::Instant;

/// Deliberate misbehaviour, for tests of the guest's input checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum Tamper {
    #[default]
    Honest,
    /// One ciphertext too few in the first histogram.
    ShortHistogram,
    /// Histograms of encrypted garbage (valid ciphertexts, nonsense sums).
    GarbageHistogram,
    /// A partition bit set of the wrong length.
    ShortPartition,
    /// Every split gets the same id.
    RepeatedSplitId,
}

/// Sends `Err(reason)` to the guest so it reports the host's reason, then returns the error.
fn refuse<T: serde::Serialize>(
    ctx: &Context,
    guest: &PartyId,
    tag: &str,
    reason: String,
) -> SecureBoostError {
    // If even this send fails, the guest sees the connection drop; the local error is what
    // matters here.
    let _ = ctx.send(guest, tag, &Reply::<T>::Err(reason.clone()));
    SecureBoostError::bad_guest(reason)
}

pub(crate) fn train_host(
    ctx: &Context,
    data: &Dataset,
    params: &SecureBoostParams,
    validation: Option<&Dataset>,
    tamper: Tamper,
    checkpoints: Checkpoints<'_>,
) -> Result<(HostModel, TrainReport), SecureBoostError> {
    let start = Instant::now();
    params.validate()?;
    let guest = ctx.guest()?;
    let root = ctx.sub("secureboost");
    let n = data.n_rows();
    let d = data.n_features();
    let print = fingerprint(params, data, validation);
    // The latest checkpoint when resuming; a host asked to resume without one cannot.
    let resumed = match checkpoints.resume_from {
        None => Ok(None),
        Some(store) => checkpoints.resume_latest().and_then(|step| {
            let step = step.unwrap_or_default();
            let state = HostState::decode(&store.load(step)?, &print)?;
            if state.trees != step {
                return Err(ferry_ml::CheckpointError(format!(
                    "the checkpoint of step {step} says it holds {} trees",
                    state.trees
                )));
            }
            Ok(Some(state))
        }),
    };
    let problem = validation
        .filter(|v| v.feature_names != data.feature_names)
        .map(|_| {
            format!(
                "host '{}': the validation set must have the same feature columns as the \
                 training set",
                ctx.me()
            )
        });
    // Peers learn that the checkpoint is unusable, not the local reason (it names files).
    let (problem, resumed) = match (problem, resumed) {
        (Some(p), _) => (Some(p), None),
        (None, Err(e)) => {
            let shared = format!(
                "host '{}' cannot resume: its checkpoint is missing or unusable",
                ctx.me()
            );
            let _ = root.send(
                &guest,
                "hello",
                &HostHello {
                    version: PROTOCOL_VERSION,
                    problem: Some(shared),
                    n_rows: n as u64,
                    n_validation_rows: validation.map(|v| v.n_rows() as u64),
                    value_bins: Vec::new(),
                    resume: None,
                },
            );
            return Err(SecureBoostError::Checkpoint(e));
        }
        (None, Ok(state)) => (None, state),
    };
    let binning = Binning::fit(&data.features, n, d, params.max_bin)?;
    let binned = binning.transform(&data.features, n)?;
    root.send(
        &guest,
        "hello",
        &HostHello {
            version: PROTOCOL_VERSION,
            problem: problem.clone(),
            n_rows: n as u64,
            n_validation_rows: validation.map(|v| v.n_rows() as u64),
            value_bins: binning
                .features()
                .iter()
                .map(|f| f.n_bins() as u32)
                .collect(),
            resume: resumed.as_ref().map(|s| s.trees),
        },
    )?;
    if let Some(reason) = problem {
        return Err(SecureBoostError::Data(reason));
    }
    let setup = match root.recv::<Reply<Setup>>(&guest, "setup")? {
        Ok(s) => s,
        Err(reason) => return Err(SecureBoostError::GuestAborted { reason }),
    };
    let check = || -> Result<(), String> {
        if setup.version != PROTOCOL_VERSION {
            return Err(format!(
                "guest speaks SecureBoost protocol version {}, this host version {PROTOCOL_VERSION}",
                setup.version
            ));
        }
        let (scheme, bits) = match &setup.key {
            PublicKeyMsg::Paillier(k) => (k.scheme(), k.key_bits()),
            PublicKeyMsg::Ou(k) => (k.scheme(), k.key_bits()),
        };
        if scheme != params.he.scheme || bits != params.he.key_bits {
            return Err(format!(
                "guest sent a {}-{bits} key but this host is configured for {}-{}",
                scheme.name(),
                params.he.scheme.name(),
                params.he.key_bits
            ));
        }
        Ok(())
    };
    // Where to continue: the guest chose the common checkpoint; it must be one this host has
    // (at most its latest) and of the same model, with the split count the guest's trees show.
    let resume_check = || -> Result<(u64, Vec<HostSplit>), String> {
        match (&resumed, setup.resume) {
            (None, None) => Ok((0, Vec::new())),
            (Some(_), None) => Err("the guest did not resume but this host was asked to".into()),
            (None, Some(_)) => Err("the guest resumes but this host was not asked to".into()),
            (Some(state), Some(point)) => {
                if point.trees > state.trees {
                    return Err(format!(
                        "the guest resumes after tree {} but this host's checkpoint has {}",
                        point.trees, state.trees
                    ));
                }
                if setup.model_id != state.model.model_id {
                    return Err("the guest's checkpoint belongs to another model than this \
                                host's"
                        .into());
                }
                let splits = state.splits_before(point.trees);
                if splits.len() as u64 != point.splits {
                    return Err(format!(
                        "the guest's trees use {} of this host's splits, its checkpoint has {}",
                        point.splits,
                        splits.len()
                    ));
                }
                Ok((point.trees, splits))
            }
        }
    };
    let resume_at = check().and_then(|()| resume_check());
    let (first_tree, splits) = match resume_at {
        Ok(r) => r,
        Err(reason) => return Err(refuse::<()>(&root, &guest, "ready", reason)),
    };
    if first_tree > 0 {
        ctx.log(&format!(
            "SecureBoost: resuming after tree {first_tree} from the checkpoint"
        ));
    }
    root.send(&guest, "ready", &Reply::<()>::Ok(()))?;
    let mut session = HostSession {
        ctx: root,
        guest,
        data,
        validation,
        binning: &binning,
        binned: &binned,
        splits,
        ops: OpCounter::default(),
        tamper,
        checkpoints,
        fingerprint: print,
        model_id: setup.model_id.clone(),
    };
    match &setup.key {
        PublicKeyMsg::Paillier(pk) => session.run(pk, first_tree as usize)?,
        PublicKeyMsg::Ou(pk) => session.run(pk, first_tree as usize)?,
    };
    let counters = ctx.counters();
    let report = TrainReport {
        metric: String::new(),
        total_seconds: start.elapsed().as_secs_f64(),
        ops: session.ops.snapshot(),
        bytes_sent: counters.bytes_sent(),
        bytes_received: counters.bytes_received(),
        rounds: counters.rounds,
        ..TrainReport::default()
    };
    Ok((
        HostModel {
            model_id: setup.model_id,
            guest: session.guest.to_string(),
            feature_names: data.feature_names.clone(),
            splits: session.splits,
        },
        report,
    ))
}

struct HostSession<'a> {
    ctx: Context,
    guest: PartyId,
    data: &'a Dataset,
    validation: Option<&'a Dataset>,
    binning: &'a Binning,
    binned: &'a BinnedMatrix,
    splits: Vec<HostSplit>,
    ops: OpCounter,
    tamper: Tamper,
    checkpoints: Checkpoints<'a>,
    fingerprint: String,
    model_id: String,
}

/// One tree's encrypted gradients as the host holds them.
struct TreeState<C> {
    tree: usize,
    layout: PackingLayout,
    /// Position of each row's ciphertext in `gh`, `u32::MAX` for rows not sampled.
    position: Vec<u32>,
    gh: Vec<C>,
    features: Vec<usize>,
}

impl HostSession<'_> {
    fn run<P: HePublicKey>(
        &mut self,
        pk: &P,
        first_tree: usize,
    ) -> Result<usize, SecureBoostError> {
        for t in first_tree.. {
            let tctx = self.ctx.sub(format!("tree-{t}"));
            self.ctx.check_cancelled()?;
            match tctx.recv::<TreeMsg>(&self.guest, "start")? {
                TreeMsg::Finish { trees_kept } => {
                    self.splits.retain(|s| (s.tree as u64) < trees_kept);
                    self.ctx.send(
                        &self.guest,
                        "summary",
                        &HostSummary {
                            ops: self.ops.snapshot(),
                        },
                    )?;
                    return Ok(t);
                }
                TreeMsg::Start(start) => {
                    let state = self.receive_tree(&tctx, pk, start, t)?;
                    self.grow_tree(&tctx, pk, &state)?;
                    if let Some(v) = self.validation {
                        serve_queries(&tctx.sub("valid"), &self.guest, &self.splits, v)?;
                    }
                    self.checkpoints.save(t as u64 + 1, || {
                        HostState {
                            fingerprint: self.fingerprint.clone(),
                            trees: t as u64 + 1,
                            model: HostModel {
                                model_id: self.model_id.clone(),
                                guest: self.guest.to_string(),
                                feature_names: self.data.feature_names.clone(),
                                splits: self.splits.clone(),
                            },
                        }
                        .encode()
                    })?;
                }
            }
        }
        unreachable!("the tree loop only ends by returning")
    }

    fn receive_tree<P: HePublicKey>(
        &self,
        tctx: &Context,
        pk: &P,
        start: TreeStart,
        t: usize,
    ) -> Result<TreeState<P::Ciphertext>, SecureBoostError> {
        let n = self.data.n_rows();
        let d = self.data.n_features();
        let bad = |r: String| SecureBoostError::bad_guest(format!("tree {t}: {r}"));
        if start.tree != t as u64 {
            return Err(bad(format!("tree number {} out of sequence", start.tree)));
        }
        if start.value_bits == 0 || start.value_bits > 64 {
            return Err(bad(format!(
                "value_bits {} outside 1..=64",
                start.value_bits
            )));
        }
        if start.max_terms == 0 || start.max_terms > n as u64 {
            return Err(bad(format!("max_terms {} for {n} rows", start.max_terms)));
        }
        let layout = PackingLayout::new(pk.plaintext_bits(), start.value_bits, start.max_terms)?;
        if layout.slots() < 2 {
            return Err(bad(
                "the key is too small to hold a gradient and a hessian".into()
            ));
        }
        let mut position = vec![u32::MAX; n];
        let count = match &start.sampled_rows {
            None => {
                for (i, p) in position.iter_mut().enumerate() {
                    *p = i as u32;
                }
                n
            }
            Some(rows) => {
                for (i, &r) in rows.iter().enumerate() {
                    if r as usize >= n || (i > 0 && rows[i - 1] >= r) {
                        return Err(bad("sampled rows must be ascending and in range".into()));
                    }
                    position[r as usize] = i as u32;
                }
                rows.len()
            }
        };
        if start
            .features
            .iter()
            .enumerate()
            .any(|(i, &f)| f as usize >= d || (i > 0 && start.features[i - 1] >= f))
        {
            return Err(bad(format!(
                "feature list must be ascending indices below {d}"
            )));
        }
        if start.chunks as usize != count.div_ceil(GH_CHUNK) {
            return Err(bad(format!("{} chunks for {count} rows", start.chunks)));
        }
        // Chunks are validated on the thread pool as they arrive, so decoding overlaps with the
        // guest's encryption of later chunks. This thread only receives: it never blocks a
        // pool thread that the guest (in-process) or the histogram code may need.
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..start.chunks as usize {
            let batch: ferry_crypto::wire::CiphertextBatch =
                tctx.recv(&self.guest, &format!("gh-{i}"))?;
            let (pk, tx) = (pk.clone(), tx.clone());
            rayon::spawn(move || {
                let _ = tx.send((i, pk.decode_batch(&batch).map_err(|e| e.to_string())));
            });
        }
        drop(tx);
        let mut decoded: Vec<Option<Vec<P::Ciphertext>>> =
            (0..start.chunks).map(|_| None).collect();
        for (i, result) in rx {
            decoded[i] = Some(result.map_err(|e| bad(format!("gradient chunk {i}: {e}")))?);
        }
        let mut gh = Vec::with_capacity(count);
        for cts in decoded.into_iter().flatten() {
            OpCounter::bump(&self.ops.ciphertexts_received, cts.len() as u64);
            gh.extend(cts);
        }
        if gh.len() != count {
            return Err(bad(format!(
                "{} encrypted gradients for {count} sampled rows",
                gh.len()
            )));
        }
        Ok(TreeState {
            tree: t,
            layout,
            position,
            gh,
            features: start.features.iter().map(|&f| f as usize).collect(),
        })
    }

    fn grow_tree<P: HePublicKey>(
        &mut self,
        tctx: &Context,
        pk: &P,
        state: &TreeState<P::Ciphertext>,
    ) -> Result<(), SecureBoostError> {
        let n = self.data.n_rows();
        for level in 0.. {
            let lctx = tctx.sub(format!("L{level}"));
            let nodes = match lctx.recv::<LevelMsg>(&self.guest, "build")? {
                LevelMsg::End => return Ok(()),
                LevelMsg::Build { nodes } => nodes,
            };
            for rows in &nodes {
                if let Some(&r) = rows
                    .iter()
                    .find(|&&r| r as usize >= n || state.position[r as usize] == u32::MAX)
                {
                    return Err(refuse::<HistogramMsg>(
                        &lctx,
                        &self.guest,
                        "hist",
                        format!("histogram request names row {r}, which is not a sampled row"),
                    ));
                }
            }
            let mut packed = self.histograms(pk, state, &nodes);
            match self.tamper {
                Tamper::ShortHistogram => {
                    packed.pop();
                }
                Tamper::GarbageHistogram => {
                    let mut rng = rand::rng();
                    // The largest value a slot holds: far above any true sum of the node.
                    let junk = (ferry_crypto::rug::Integer::from(1)
                        << (state.layout.slot_bits() - 1))
                        - 1u32;
                    for c in packed.iter_mut() {
                        *c = pk.encrypt(&junk, &mut rng)?;
                    }
                }
                _ => {}
            }
            lctx.send(
                &self.guest,
                "hist",
                &Reply::Ok(HistogramMsg {
                    packed: pk.encode_batch(&packed),
                }),
            )?;
            let request: SplitRequest = lctx.recv(&self.guest, "split")?;
            let mut results = Vec::with_capacity(request.splits.len());
            for order in &request.splits {
                match self.partition(state, order) {
                    Ok(p) => results.push(p),
                    Err(reason) => {
                        return Err(refuse::<PartitionMsg>(&lctx, &self.guest, "part", reason));
                    }
                }
            }
            lctx.send(&self.guest, "part", &Reply::Ok(PartitionMsg { results }))?;
        }
        Ok(())
    }

    /// Packed, re-randomised histograms of every requested node.
    fn histograms<P: HePublicKey>(
        &self,
        pk: &P,
        state: &TreeState<P::Ciphertext>,
        nodes: &[Vec<u32>],
    ) -> Vec<P::Ciphertext> {
        let per_ct = state.layout.slots() / 2;
        let shift = 2 * state.layout.slot_bits();
        let jobs: Vec<(usize, usize)> = (0..nodes.len())
            .flat_map(|node| state.features.iter().map(move |&f| (node, f)))
            .collect();
        let per_feature: Vec<Vec<Option<P::Ciphertext>>> = jobs
            .par_iter()
            .map(|&(node, f)| {
                let column = self.binned.column(f);
                let mut acc: Vec<Option<P::Ciphertext>> =
                    vec![None; self.binning.feature(f).n_bins_with_missing()];
                let mut additions = 0u64;
                for &r in &nodes[node] {
                    let c = &state.gh[state.position[r as usize] as usize];
                    match &mut acc[column[r as usize] as usize] {
                        Some(a) => {
                            pk.add_assign(a, c);
                            additions += 1;
                        }
                        slot @ None => *slot = Some(c.clone()),
                    }
                }
                OpCounter::bump(&self.ops.additions, additions);
                acc
            })
            .collect();
        let nf = state.features.len();
        let groups: Vec<Vec<&Option<P::Ciphertext>>> = (0..nodes.len())
            .flat_map(|node| {
                let bins: Vec<&Option<P::Ciphertext>> = per_feature[node * nf..(node + 1) * nf]
                    .iter()
                    .flatten()
                    .collect();
                bins.chunks(per_ct).map(|c| c.to_vec()).collect::<Vec<_>>()
            })
            .collect();
        let packed: Vec<P::Ciphertext> = groups
            .par_iter()
            .map(|group| {
                // Horner's rule from the top bin down; empty bins are zeros, so a run of empty
                // bins at the top needs no shifting at all.
                let mut acc: Option<P::Ciphertext> = None;
                let (mut shifts, mut additions) = (0u64, 0u64);
                for bin in group.iter().rev() {
                    if let Some(a) = acc.as_mut() {
                        *a = pk.shift_left(a, shift);
                        shifts += 1;
                        if let Some(c) = bin {
                            pk.add_assign(a, c);
                            additions += 1;
                        }
                    } else {
                        acc = (*bin).clone();
                    }
                }
                OpCounter::bump(&self.ops.shifts, shifts);
                OpCounter::bump(&self.ops.shift_bits, shifts * shift as u64);
                OpCounter::bump(&self.ops.additions, additions);
                acc.unwrap_or_else(|| pk.zero())
            })
            .collect();
        // Without fresh randomness the guest could recognise a bin holding a single row as
        // its own ciphertext, and so learn that row's bin.
        OpCounter::bump(&self.ops.rerandomizations, packed.len() as u64);
        ferry_crypto::batch::rerandomize_many(pk, &packed, &mut rand::rng())
    }

    fn partition<C>(
        &mut self,
        state: &TreeState<C>,
        order: &SplitOrder,
    ) -> Result<Partition, String> {
        let (feature, bin) =
            check_split_order(&state.features, self.binning, self.data.n_rows(), order)?;
        let bins = self.binning.feature(feature);
        let column = self.binned.column(feature);
        let left = pack_bits(order.rows.iter().map(|&r| {
            crate::split::goes_left(
                column[r as usize] as usize,
                bins.missing_bin(),
                bin,
                order.missing_left,
            )
        }));
        let split_id = match self.tamper {
            Tamper::RepeatedSplitId => 0,
            _ => self.splits.len() as u32,
        };
        self.splits.push(HostSplit {
            feature,
            threshold: bins.upper_edge(bin).unwrap_or(f64::MAX),
            bin: bin as u16,
            missing_left: order.missing_left,
            tree: state.tree,
        });
        let mut left = left;
        if self.tamper == Tamper::ShortPartition {
            left.pop();
        }
        Ok(Partition {
            split_id,
            left: left.into(),
        })
    }
}

/// Validates a split order from the guest: the feature position must name one of this tree's
/// features, the bin one of its value bins, and the rows must exist. Returns (feature, bin).
fn check_split_order(
    tree_features: &[usize],
    binning: &Binning,
    n_rows: usize,
    order: &SplitOrder,
) -> Result<(usize, usize), String> {
    let feature = *tree_features.get(order.feature as usize).ok_or_else(|| {
        format!(
            "split on feature position {} but this tree uses {} of this host's features",
            order.feature,
            tree_features.len()
        )
    })?;
    let bins = binning.feature(feature);
    let bin = order.bin as usize;
    if bin >= bins.n_bins() {
        return Err(format!(
            "split at bin {bin} but feature {feature} has {} bins",
            bins.n_bins()
        ));
    }
    if let Some(&r) = order.rows.iter().find(|&&r| r as usize >= n_rows) {
        return Err(format!(
            "split names row {r} but this host has {n_rows} rows"
        ));
    }
    Ok((feature, bin))
}

/// Answers the guest's routing queries (one message per level) until it says it is done.
pub(crate) fn serve_queries(
    ctx: &Context,
    guest: &PartyId,
    splits: &[HostSplit],
    data: &Dataset,
) -> Result<(), SecureBoostError> {
    let n = data.n_rows();
    for level in 0.. {
        let queries = match ctx.recv::<PredictMsg>(guest, &format!("q{level}"))? {
            PredictMsg::Done => return Ok(()),
            PredictMsg::Query { queries } => queries,
        };
        let tag = format!("a{level}");
        let mut left = Vec::with_capacity(queries.len());
        for q in &queries {
            let Some(s) = splits.get(q.split_id as usize) else {
                return Err(refuse::<PredictAnswer>(
                    ctx,
                    guest,
                    &tag,
                    format!(
                        "split id {} is not in this host's model ({} splits): the guest and host \
                         model parts do not belong together",
                        q.split_id,
                        splits.len()
                    ),
                ));
            };
            if let Some(&r) = q.rows.iter().find(|&&r| r as usize >= n) {
                return Err(refuse::<PredictAnswer>(
                    ctx,
                    guest,
                    &tag,
                    format!("query names row {r} but this host has {n} rows"),
                ));
            }
            left.push(
                pack_bits(q.rows.iter().map(|&r| {
                    local_goes_left(
                        data.value(r as usize, s.feature),
                        s.threshold,
                        s.missing_left,
                    )
                }))
                .into(),
            );
        }
        ctx.send(guest, &tag, &Reply::Ok(PredictAnswer { left }))?;
    }
    unreachable!("the query loop only ends by returning")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_orders_from_the_guest_are_checked() {
        // Two features with 4 and 2 value bins; the tree uses only feature 1.
        let values = [0.0, 1.0, 1.0, 2.0, 2.0, 1.0, 3.0, 2.0];
        let binning = Binning::fit(&values, 4, 2, 8).unwrap();
        let order = |feature: u32, bin: u32, rows: Vec<u32>| SplitOrder {
            feature,
            bin,
            missing_left: false,
            rows,
        };
        assert_eq!(
            check_split_order(&[1], &binning, 4, &order(0, 0, vec![0, 3])),
            Ok((1, 0))
        );
        let e = check_split_order(&[1], &binning, 4, &order(1, 0, vec![0])).unwrap_err();
        assert!(e.contains("feature position 1"), "{e}");
        let e = check_split_order(&[1], &binning, 4, &order(0, 2, vec![0])).unwrap_err();
        assert!(e.contains("bin 2") && e.contains("has 2 bins"), "{e}");
        let e = check_split_order(&[1], &binning, 4, &order(0, 0, vec![4])).unwrap_err();
        assert!(e.contains("row 4"), "{e}");
    }
}
