//! The guest side of training: gradients, encryption, split finding over all parties, tree
//! bookkeeping, validation and early stopping.

use crate::checkpoint::{GuestState, fingerprint};
use crate::error::SecureBoostError;
use crate::model::{GuestModel, Node, SplitRule, Tree};
use crate::objective::{self, metric_spec};
use crate::params::SecureBoostParams;
use crate::predict::route_rows;
use crate::protocol::*;
use crate::report::{HeOpCounts, OpCounter, TrainReport, TreeReport};
use crate::sampling::Sampler;
use crate::split::{
    FeatureSplit, GradPair, GradScale, SplitParams, feature_histogram, goes_left, max_sum, total_of,
};
use ferry_context::{Context, PartyId};
use ferry_crypto::packing::PackingLayout;
use ferry_crypto::rug::Integer;
use ferry_crypto::{HePublicKey, HeSecretKey, OuSecretKey, PaillierSecretKey, SchemeKind};
use ferry_data::Dataset;
use ferry_ml::Checkpoints;
use ferry_ml::binning::{BinnedMatrix, Binning};
use rand::RngExt;
use rayon::prelude::*;
use std::collections::HashSet;
use std::time::Instant;

/// What the guest knows about a host after the hello.
struct HostInfo {
    id: PartyId,
    /// Value bins per feature (the missing bin comes on top).
    value_bins: Vec<usize>,
}

/// Per-party histograms of one node: `[party][selected feature][bin]`, party 0 the guest.
type NodeHist = Vec<Vec<Vec<GradPair>>>;

fn abort_all(ctx: &Context, hosts: &[PartyId], tag: &str, reason: &str) {
    for h in hosts {
        // Best effort: the host learns why; the guest's own error is returned either way.
        let _ = ctx.send(h, tag, &Reply::<Setup>::Err(reason.to_string()));
    }
}

pub(crate) fn train_guest(
    ctx: &Context,
    data: &Dataset,
    params: &SecureBoostParams,
    validation: Option<&Dataset>,
    checkpoints: Checkpoints<'_>,
) -> Result<(GuestModel, TrainReport), SecureBoostError> {
    let start = Instant::now();
    params.validate()?;
    let root = ctx.sub("secureboost");
    let host_ids = ctx.hosts();
    // Checks that need no peer come first, but the hosts are told about any failure so they do
    // not wait for a job that will never start.
    let local_checks = || -> Result<(), SecureBoostError> {
        if host_ids.is_empty() {
            return Err(SecureBoostError::Data(
                "SecureBoost needs at least one host; train locally instead".into(),
            ));
        }
        let labels = data.labels().ok_or_else(|| {
            SecureBoostError::Data("the guest's training data has no label column".into())
        })?;
        objective::check_labels(&params.objective, labels)?;
        if let Some(v) = validation {
            let vl = v.labels().ok_or_else(|| {
                SecureBoostError::Data("the guest's validation data has no label column".into())
            })?;
            objective::check_labels(&params.objective, vl)?;
            if v.feature_names != data.feature_names {
                return Err(SecureBoostError::Data(
                    "the validation set must have the same feature columns as the training set"
                        .into(),
                ));
            }
        }
        if params.early_stopping_rounds.is_some() && validation.is_none() {
            return Err(SecureBoostError::Data(
                "early_stopping_rounds needs a validation set".into(),
            ));
        }
        Ok(())
    };
    let hellos: Vec<HostHello> = root.gather(&host_ids, "hello")?;
    if let Err(e) = local_checks() {
        abort_all(&root, &host_ids, "setup", &e.for_peers());
        return Err(e);
    }
    let resume = match resume_point(
        ctx,
        data,
        params,
        validation,
        checkpoints,
        &host_ids,
        &hellos,
    ) {
        Ok(r) => r,
        Err(e) => {
            abort_all(&root, &host_ids, "setup", &e.for_peers());
            return Err(e);
        }
    };
    let mut hosts = Vec::new();
    for (id, hello) in host_ids.iter().zip(hellos) {
        let problem = if let Some(reason) = &hello.problem {
            Some(SecureBoostError::HostFailed {
                host: id.clone(),
                reason: reason.clone(),
            })
        } else if hello.version != PROTOCOL_VERSION {
            Some(SecureBoostError::bad_host(
                id,
                format!(
                    "speaks SecureBoost protocol version {}, the guest version {PROTOCOL_VERSION}",
                    hello.version
                ),
            ))
        } else if hello.n_rows != data.n_rows() as u64 {
            Some(SecureBoostError::RowMismatch {
                me: ctx.me().clone(),
                party: id.clone(),
                ours: data.n_rows(),
                theirs: hello.n_rows as usize,
            })
        } else if hello.n_validation_rows != validation.map(|v| v.n_rows() as u64) {
            Some(SecureBoostError::Data(format!(
                "the guest has {} validation rows but host '{id}' has {}: pass the same aligned \
                 validation rows to every party, or none",
                validation.map_or("no".to_string(), |v| v.n_rows().to_string()),
                hello
                    .n_validation_rows
                    .map_or("none".to_string(), |r| r.to_string())
            )))
        } else if hello
            .value_bins
            .iter()
            .any(|&b| b == 0 || b as usize > params.max_bin)
        {
            Some(SecureBoostError::bad_host(
                id,
                format!(
                    "bin counts must be between 1 and max_bin = {}",
                    params.max_bin
                ),
            ))
        } else {
            None
        };
        if let Some(e) = problem {
            abort_all(&root, &host_ids, "setup", &e.for_peers());
            return Err(e);
        }
        hosts.push(HostInfo {
            id: id.clone(),
            value_bins: hello.value_bins.iter().map(|&b| b as usize).collect(),
        });
    }
    let n = data.n_rows();
    let binning = Binning::fit(&data.features, n, data.n_features(), params.max_bin)?;
    let binned = binning.transform(&data.features, n)?;
    // A resumed model keeps its id: the hosts' split tables of the earlier trees belong to it.
    let model_id = match &resume {
        Some(state) => state.model.model_id.clone(),
        None => format!("{:016x}", rand::rng().random::<u64>()),
    };
    let keygen_start = Instant::now();
    let mut os_rng = rand::rng();
    let session = |key: PublicKeyMsg| GuestSession {
        ctx: ctx.clone(),
        root: root.clone(),
        params,
        split: SplitParams::from(params),
        hosts: &hosts,
        data,
        binning: &binning,
        binned: &binned,
        validation,
        ops: OpCounter::default(),
        model_id: model_id.clone(),
        key,
        seen_split_ids: hosts.iter().map(|_| HashSet::new()).collect(),
        checkpoints,
        fingerprint: fingerprint(params, data, validation),
        resume: resume.clone(),
    };
    let (model, mut report) = match params.he.scheme {
        SchemeKind::Paillier => {
            let sk = PaillierSecretKey::generate(params.he.key_bits, &mut os_rng)?;
            let keygen = keygen_start.elapsed().as_secs_f64();
            let mut s = session(PublicKeyMsg::Paillier(sk.public().clone()));
            let mut out = s.run(&sk)?;
            out.1.keygen_seconds = keygen;
            out
        }
        SchemeKind::OkamotoUchiyama => {
            let sk = OuSecretKey::generate(params.he.key_bits, &mut os_rng)?;
            let keygen = keygen_start.elapsed().as_secs_f64();
            let mut s = session(PublicKeyMsg::Ou(sk.public().clone()));
            let mut out = s.run(&sk)?;
            out.1.keygen_seconds = keygen;
            out
        }
    };
    let counters = ctx.counters();
    report.total_seconds = start.elapsed().as_secs_f64();
    report.bytes_sent = counters.bytes_sent();
    report.bytes_received = counters.bytes_received();
    report.rounds = counters.rounds;
    Ok((model, report))
}

struct GuestSession<'a> {
    ctx: Context,
    root: Context,
    params: &'a SecureBoostParams,
    split: SplitParams,
    hosts: &'a [HostInfo],
    data: &'a Dataset,
    binning: &'a Binning,
    binned: &'a BinnedMatrix,
    validation: Option<&'a Dataset>,
    ops: OpCounter,
    model_id: String,
    key: PublicKeyMsg,
    seen_split_ids: Vec<HashSet<u32>>,
    checkpoints: Checkpoints<'a>,
    fingerprint: String,
    /// The guest's state at the common checkpoint when resuming.
    resume: Option<GuestState>,
}

/// When resuming: the guest's state at the last checkpoint every party has — the minimum of
/// the parties' latest ones (a host can go back to any earlier tree count; the guest keeps its
/// last few rounds). Every party must be resuming, or none.
fn resume_point(
    ctx: &Context,
    data: &Dataset,
    params: &SecureBoostParams,
    validation: Option<&Dataset>,
    checkpoints: Checkpoints<'_>,
    host_ids: &[PartyId],
    hellos: &[HostHello],
) -> Result<Option<GuestState>, SecureBoostError> {
    let Some(store) = checkpoints.resume_from else {
        if let Some((id, _)) = host_ids
            .iter()
            .zip(hellos)
            .find(|(_, h)| h.resume.is_some())
        {
            return Err(SecureBoostError::bad_host(
                id,
                "it resumes from a checkpoint but the guest trains from scratch",
            ));
        }
        return Ok(None);
    };
    let mine = checkpoints.resume_latest()?.unwrap_or_default();
    let mut common = mine;
    for (id, hello) in host_ids.iter().zip(hellos) {
        if hello.problem.is_some() {
            // Reported with the host's reason by the hello checks.
            return Ok(None);
        }
        match hello.resume {
            Some(t) => common = common.min(t),
            None => {
                return Err(SecureBoostError::bad_host(
                    id,
                    "the guest resumes from a checkpoint but this host trains from scratch",
                ));
            }
        }
    }
    let k = params.trees_per_round() as u64;
    // The guest saves whole rounds only; a host may be a tree ahead within a round.
    let common = common - common % k;
    let steps = store.steps()?;
    if !steps.contains(&common) {
        return Err(SecureBoostError::Checkpoint(ferry_ml::CheckpointError(
            format!(
                "no checkpoint common to all parties: the parties' latest go back to tree                  {common}, the guest has checkpoints after trees {steps:?}"
            ),
        )));
    }
    let state = GuestState::decode(
        &store.load(common)?,
        &fingerprint(params, data, validation),
        data.n_rows(),
        validation.map_or(0, |v| v.n_rows()),
    )?;
    if state.model.trees.len() as u64 != common {
        return Err(SecureBoostError::Checkpoint(ferry_ml::CheckpointError(
            format!(
                "the checkpoint after tree {common} holds {} trees",
                state.model.trees.len()
            ),
        )));
    }
    let host_names: Vec<String> = host_ids.iter().map(|h| h.to_string()).collect();
    if state.model.hosts != host_names {
        return Err(SecureBoostError::Checkpoint(ferry_ml::CheckpointError(
            format!(
                "the checkpoint was written with hosts {:?}, this job has {host_names:?}",
                state.model.hosts
            ),
        )));
    }
    if common > (params.num_trees as u64) * k {
        return Err(SecureBoostError::Checkpoint(ferry_ml::CheckpointError(
            format!(
                "the checkpoint holds {} rounds, more than num_trees = {}",
                common / k,
                params.num_trees
            ),
        )));
    }
    ctx.log(&format!(
        "SecureBoost: resuming after tree {common} (the guest's latest checkpoint is after \
         tree {mine})"
    ));
    Ok(Some(state))
}

/// A node of the level being grown.
struct LiveNode {
    index: usize,
    rows: Vec<u32>,
    sampled: Vec<u32>,
    total: GradPair,
    hist: Option<NodeHist>,
}

/// Siblings (or the root alone) and their parent's histograms.
struct Group {
    members: Vec<LiveNode>,
    parent_hist: Option<NodeHist>,
}

/// The winner of a node's split search.
#[derive(Clone, Copy)]
struct Winner {
    /// 0 for the guest, `h + 1` for host `h`.
    party: usize,
    /// Position in that party's selected features for this tree.
    position: usize,
    split: FeatureSplit,
}

/// Everything fixed for one tree.
struct TreeCtx<'a> {
    scale: GradScale,
    quantized: &'a [GradPair],
    is_sampled: &'a [bool],
    /// Selected features per party (party 0 the guest), as local indices.
    selected: Vec<Vec<usize>>,
    layout: PackingLayout,
}

impl GuestSession<'_> {
    fn run<S: HeSecretKey>(
        &mut self,
        sk: &S,
    ) -> Result<(GuestModel, TrainReport), SecureBoostError> {
        let params = self.params;
        // Split ids of the resumed trees are taken; the resume point tells each host how
        // many of its splits those trees use.
        let resumed_trees: &[Tree] = self.resume.as_ref().map_or(&[], |s| &s.model.trees);
        for tree in resumed_trees {
            for node in &tree.nodes {
                if let Node::Split {
                    rule:
                        SplitRule::Host {
                            party, split_id, ..
                        },
                    ..
                } = node
                    && let Some(h) = self.hosts.iter().position(|h| h.id.as_str() == party)
                    && !self.seen_split_ids[h].insert(*split_id)
                {
                    return Err(SecureBoostError::Checkpoint(ferry_ml::CheckpointError(
                        format!("split id {split_id} of host '{party}' is used twice"),
                    )));
                }
            }
        }
        for (h, host) in self.hosts.iter().enumerate() {
            let setup = Setup {
                version: PROTOCOL_VERSION,
                model_id: self.model_id.clone(),
                key: self.key.clone(),
                resume: self.resume.as_ref().map(|s| ResumePoint {
                    trees: s.model.trees.len() as u64,
                    splits: self.seen_split_ids[h].len() as u64,
                }),
            };
            self.root.send(&host.id, "setup", &Reply::Ok(setup))?;
        }
        for h in self.hosts {
            if let Err(reason) = self.root.recv::<Reply<()>>(&h.id, "ready")? {
                return Err(SecureBoostError::HostFailed {
                    host: h.id.clone(),
                    reason,
                });
            }
        }
        let labels = self.data.labels().unwrap_or_default();
        let n = self.data.n_rows();
        let k = params.objective.n_outputs();
        let base = objective::base_scores(&params.objective, labels);
        let mut scores: Vec<f64> = (0..n).flat_map(|_| base.iter().copied()).collect();
        let mut valid_scores: Vec<f64> = self
            .validation
            .map(|v| (0..v.n_rows()).flat_map(|_| base.iter().copied()).collect())
            .unwrap_or_default();
        let total_features =
            self.data.n_features() + self.hosts.iter().map(|h| h.value_bins.len()).sum::<usize>();
        let spec = metric_spec(&params.objective);
        let mut sampler = Sampler::new(params.seed);
        let mut trees: Vec<Tree> = Vec::new();
        let mut reports: Vec<TreeReport> = Vec::new();
        let mut best: Option<(usize, f64)> = None;
        let mut stopped_at = None;
        if let Some(state) = self.resume.take() {
            if state.model.base_scores != base {
                return Err(SecureBoostError::Checkpoint(ferry_ml::CheckpointError(
                    "the checkpoint's base scores differ from this data's".into(),
                )));
            }
            // The sampler is one stream over the trees (the centralised trainer draws the
            // same), so the resumed run replays the draws of the trees it skips: cheap next
            // to a tree, and it keeps the random stream — hence every model trained before
            // checkpoints existed — unchanged.
            for _ in 0..state.model.trees.len() {
                sampler.rows(n, params.subsample);
                sampler.features(total_features, params.colsample);
            }
            scores = state.scores;
            valid_scores = state.valid_scores;
            trees = state.model.trees;
            reports = state.reports;
            best = state.best;
        }
        let first_round = trees.len() / k;
        for round in first_round..params.num_trees {
            let grads: Vec<(Vec<f64>, Vec<f64>)> = (0..k)
                .map(|c| objective::gradients(&params.objective, &scores, labels, c))
                .collect();
            for (class, (g, h)) in grads.iter().enumerate() {
                self.ctx.check_cancelled()?;
                let tree_start = Instant::now();
                let t = trees.len();
                let tctx = self.root.sub(format!("tree-{t}"));
                let rows = sampler.rows(n, params.subsample);
                let selected = sampler.features(total_features, params.colsample);
                let scale = GradScale::fit(g, h, &rows, params.precision_bits);
                let quantized: Vec<GradPair> = (0..n).map(|i| scale.quantize(g[i], h[i])).collect();
                let (tree, leaf_of) =
                    self.build_tree(sk, &tctx, t, &rows, &selected, scale, &quantized)?;
                for i in 0..n {
                    scores[i * k + class] += leaf_of[i];
                }
                if let Some(v) = self.validation {
                    let ids: Vec<PartyId> = self.hosts.iter().map(|h| h.id.clone()).collect();
                    let leaves = route_rows(&tctx.sub("valid"), &ids, &[&tree], v)?;
                    for (i, &leaf) in leaves[0].iter().enumerate() {
                        if let Node::Leaf { value } = tree.nodes[leaf] {
                            valid_scores[i * k + class] += value;
                        }
                    }
                }
                reports.push(TreeReport {
                    tree: t,
                    seconds: tree_start.elapsed().as_secs_f64(),
                    train_metric: None,
                    validation_metric: None,
                    leaves: tree.n_leaves(),
                    depth: tree.depth(),
                });
                trees.push(tree);
            }
            let last = reports.len() - 1;
            let train_metric = objective::evaluate(&params.objective, &scores, labels);
            reports[last].train_metric = train_metric;
            if let Some(m) = train_metric {
                self.ctx
                    .metric(&format!("train_{}", spec.name), round as u64, m);
            }
            if let Some(v) = self.validation {
                let vl = v.labels().unwrap_or_default();
                let m = objective::evaluate(&params.objective, &valid_scores, vl);
                reports[last].validation_metric = m;
                if let Some(m) = m {
                    self.ctx
                        .metric(&format!("validation_{}", spec.name), round as u64, m);
                    if let Some(patience) = params.early_stopping_rounds {
                        let better = best
                            .is_none_or(|(_, b)| if spec.higher_is_better { m > b } else { m < b });
                        if better {
                            best = Some((round, m));
                        } else if best.is_some_and(|(r, _)| round - r >= patience) {
                            stopped_at = best.map(|(r, _)| r);
                        }
                    }
                }
            }
            self.ctx.progress(
                (round + 1) as f64 / params.num_trees as f64,
                &format!(
                    "SecureBoost: round {} of {} done",
                    round + 1,
                    params.num_trees
                ),
            );
            if stopped_at.is_some() {
                self.ctx.log(&format!(
                    "SecureBoost: early stopping after round {round}; keeping rounds up to {}",
                    stopped_at.unwrap_or_default()
                ));
                break;
            }
            self.checkpoints.save(trees.len() as u64, || {
                GuestState {
                    fingerprint: self.fingerprint.clone(),
                    model: GuestModel {
                        model_id: self.model_id.clone(),
                        objective: params.objective,
                        base_scores: base.clone(),
                        feature_names: self.data.feature_names.clone(),
                        hosts: self.hosts.iter().map(|h| h.id.to_string()).collect(),
                        trees: trees.clone(),
                    },
                    reports: reports.clone(),
                    best,
                    scores: scores.clone(),
                    valid_scores: valid_scores.clone(),
                }
                .encode()
            })?;
        }
        let built = trees.len();
        if let Some(r) = stopped_at {
            trees.truncate((r + 1) * k);
        }
        let finish = TreeMsg::Finish {
            trees_kept: trees.len() as u64,
        };
        let fctx = self.root.sub(format!("tree-{built}"));
        for h in self.hosts {
            fctx.send(&h.id, "start", &finish)?;
        }
        let mut host_ops = Vec::new();
        for h in self.hosts {
            let summary: HostSummary = self.root.recv(&h.id, "summary")?;
            host_ops.push((h.id.to_string(), summary.ops));
        }
        self.ctx.flush()?;
        let model = GuestModel {
            model_id: self.model_id.clone(),
            objective: params.objective,
            base_scores: base,
            feature_names: self.data.feature_names.clone(),
            hosts: self.hosts.iter().map(|h| h.id.to_string()).collect(),
            trees,
        };
        let mut ops: HeOpCounts = self.ops.snapshot();
        ops.subtractions = 0;
        Ok((
            model,
            TrainReport {
                metric: spec.name.to_string(),
                trees: reports,
                best_round: stopped_at,
                ops,
                host_ops,
                ..TrainReport::default()
            },
        ))
    }

    /// Grows one tree; returns it and the leaf value of every training row.
    #[allow(clippy::too_many_arguments)]
    fn build_tree<S: HeSecretKey>(
        &mut self,
        sk: &S,
        tctx: &Context,
        t: usize,
        rows: &[u32],
        selected: &[bool],
        scale: GradScale,
        quantized: &[GradPair],
    ) -> Result<(Tree, Vec<f64>), SecureBoostError> {
        let n = self.data.n_rows();
        let pk = sk.public();
        let value_bits = scale.value_bits();
        let max_terms = rows.len().max(1) as u64;
        let layout = PackingLayout::new(pk.plaintext_bits(), value_bits, max_terms)?;
        if layout.slots() < 2 {
            return Err(SecureBoostError::Data(format!(
                "a {}-bit key cannot hold a gradient and a hessian of {} bits summed over {} \
                 rows: use a larger key or fewer precision_bits",
                pk.key_bits(),
                value_bits,
                rows.len()
            )));
        }
        // Features of this tree per party, from the selection over the joined feature list.
        let mut selected_per_party = Vec::new();
        let mut offset = 0;
        for count in std::iter::once(self.data.n_features())
            .chain(self.hosts.iter().map(|h| h.value_bins.len()))
        {
            selected_per_party.push(
                (0..count)
                    .filter(|&j| selected[offset + j])
                    .collect::<Vec<usize>>(),
            );
            offset += count;
        }
        let chunks = rows.len().div_ceil(GH_CHUNK);
        for (h, host) in self.hosts.iter().enumerate() {
            let start = TreeStart {
                tree: t as u64,
                value_bits,
                max_terms,
                sampled_rows: (rows.len() != n).then(|| rows.to_vec()),
                features: selected_per_party[h + 1]
                    .iter()
                    .map(|&j| j as u32)
                    .collect(),
                chunks: chunks as u32,
            };
            tctx.send(&host.id, "start", &TreeMsg::Start(start))?;
        }
        let host_ids: Vec<PartyId> = self.hosts.iter().map(|h| h.id.clone()).collect();
        let mut rng = rand::rng();
        // Encrypt in groups of several messages (good use of every core), then encode the
        // messages of a group in parallel and send them in order.
        const CHUNKS_PER_GROUP: usize = 8;
        for (g, group) in rows.chunks(GH_CHUNK * CHUNKS_PER_GROUP).enumerate() {
            let plaintexts = group
                .iter()
                .map(|&r| {
                    let q = quantized[r as usize];
                    layout.pack(&[Integer::from(q.g), Integer::from(q.h)])
                })
                .collect::<Result<Vec<_>, _>>()?;
            let cts = sk.encrypt_many(&plaintexts, &mut rng)?;
            OpCounter::bump(&self.ops.encryptions, cts.len() as u64);
            let batches: Vec<_> = cts
                .par_chunks(GH_CHUNK)
                .map(|c| pk.encode_batch(c))
                .collect();
            for (j, batch) in batches.iter().enumerate() {
                let i = g * CHUNKS_PER_GROUP + j;
                tctx.broadcast(&host_ids, &format!("gh-{i}"), batch)?;
            }
        }
        let mut is_sampled = vec![false; n];
        for &r in rows {
            is_sampled[r as usize] = true;
        }
        let tc = TreeCtx {
            scale,
            quantized,
            is_sampled: &is_sampled,
            selected: selected_per_party,
            layout,
        };
        let root_total = total_of(quantized, rows);
        let mut tree = Tree {
            nodes: vec![Node::Leaf { value: 0.0 }],
        };
        let mut leaf_of = vec![0.0; n];
        let mut groups = vec![Group {
            members: vec![LiveNode {
                index: 0,
                rows: (0..n as u32).collect(),
                sampled: rows.to_vec(),
                total: root_total,
                hist: None,
            }],
            parent_hist: None,
        }];
        // Each level either ends the tree (telling the hosts) or yields the next level.
        let mut level = 0;
        while let Some(next) = {
            let lctx = tctx.sub(format!("L{level}"));
            self.grow_level(sk, &lctx, &tc, level, groups, &mut tree, &mut leaf_of)?
        } {
            groups = next;
            level += 1;
        }
        Ok((tree, leaf_of))
    }

    fn make_leaf(&self, tc: &TreeCtx, node: &LiveNode, tree: &mut Tree, leaf_of: &mut [f64]) {
        let value = self.split.leaf_value(&tc.scale, node.total);
        tree.nodes[node.index] = Node::Leaf { value };
        for &r in &node.rows {
            leaf_of[r as usize] = value;
        }
    }

    /// One level: histograms, split search, partitions. Returns the next level's groups, or
    /// `None` when the tree is complete (every remaining node has become a leaf and the hosts
    /// were told).
    #[allow(clippy::too_many_arguments)]
    fn grow_level<S: HeSecretKey>(
        &mut self,
        sk: &S,
        lctx: &Context,
        tc: &TreeCtx,
        depth: usize,
        mut groups: Vec<Group>,
        tree: &mut Tree,
        leaf_of: &mut [f64],
    ) -> Result<Option<Vec<Group>>, SecureBoostError> {
        // Which nodes may split, and whose histogram to build: the root, or the child with
        // fewer sampled rows (its sibling follows by subtraction from the parent).
        let mut splittable: Vec<Vec<bool>> = Vec::new();
        let mut build: Vec<(usize, usize)> = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            let flags: Vec<bool> = group
                .members
                .iter()
                .map(|m| {
                    self.split
                        .may_split(depth, m.sampled.len(), &tc.scale, m.total)
                })
                .collect();
            if flags.iter().any(|&f| f) {
                let smaller = (0..group.members.len())
                    .min_by_key(|&i| group.members[i].sampled.len())
                    .unwrap_or(0);
                build.push((g, smaller));
            }
            splittable.push(flags);
        }
        let host_ids: Vec<PartyId> = self.hosts.iter().map(|h| h.id.clone()).collect();
        if build.is_empty() {
            for group in &groups {
                for m in &group.members {
                    self.make_leaf(tc, m, tree, leaf_of);
                }
            }
            lctx.broadcast(&host_ids, "build", &LevelMsg::End)?;
            return Ok(None);
        }
        let node_rows: Vec<Vec<u32>> = build
            .iter()
            .map(|&(g, i)| groups[g].members[i].sampled.clone())
            .collect();
        lctx.broadcast(
            &host_ids,
            "build",
            &LevelMsg::Build {
                nodes: node_rows.clone(),
            },
        )?;
        // The guest's own histograms while the hosts compute theirs.
        let guest_hists: Vec<Vec<Vec<GradPair>>> = node_rows
            .par_iter()
            .map(|rows| {
                tc.selected[0]
                    .iter()
                    .map(|&f| {
                        feature_histogram(
                            self.binned.column(f),
                            tc.quantized,
                            rows,
                            self.binning.feature(f).n_bins_with_missing(),
                        )
                    })
                    .collect()
            })
            .collect();
        let mut built: Vec<NodeHist> = guest_hists.into_iter().map(|g| vec![g]).collect();
        for (h, host) in self.hosts.iter().enumerate() {
            let msg = match lctx.recv::<Reply<HistogramMsg>>(&host.id, "hist")? {
                Ok(m) => m,
                Err(reason) => {
                    return Err(SecureBoostError::HostFailed {
                        host: host.id.clone(),
                        reason,
                    });
                }
            };
            let totals: Vec<(GradPair, usize)> = build
                .iter()
                .map(|&(g, i)| {
                    let m = &groups[g].members[i];
                    (m.total, m.sampled.len())
                })
                .collect();
            let hists = self.decrypt_histograms(sk, tc, h, &msg, &totals)?;
            for (node, hist) in built.iter_mut().zip(hists) {
                node.push(hist);
            }
        }
        for (&(g, i), hist) in build.iter().zip(built) {
            let group = &mut groups[g];
            if group.members.len() == 2 {
                let other = 1 - i;
                if splittable[g][other] {
                    let parent = group.parent_hist.as_ref().ok_or_else(|| {
                        SecureBoostError::Data("internal: split node without histogram".into())
                    })?;
                    group.members[other].hist = Some(subtract(parent, &hist));
                }
            }
            group.members[i].hist = Some(hist);
        }
        // Split search over every party's features, in the joined order.
        let mut winners: Vec<Vec<Option<Winner>>> = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            let mut w = Vec::new();
            for (i, m) in group.members.iter().enumerate() {
                let found = match (&m.hist, splittable[g][i]) {
                    (Some(hist), true) => self.best_split(tc, hist, m.total),
                    _ => None,
                };
                w.push(found.filter(|w| self.split.accept(w.split.gain)));
            }
            winners.push(w);
        }
        // Partitions: guest splits locally, host splits by request (one message per host).
        let mut orders: Vec<Vec<(usize, usize, SplitOrder)>> =
            self.hosts.iter().map(|_| Vec::new()).collect();
        let mut lefts: Vec<Vec<Option<Vec<bool>>>> =
            groups.iter().map(|g| vec![None; g.members.len()]).collect();
        let mut rules: Vec<Vec<Option<SplitRule>>> =
            groups.iter().map(|g| vec![None; g.members.len()]).collect();
        for (g, group) in groups.iter().enumerate() {
            for (i, m) in group.members.iter().enumerate() {
                let Some(w) = winners[g][i] else { continue };
                if w.party == 0 {
                    let f = tc.selected[0][w.position];
                    let bins = self.binning.feature(f);
                    let column = self.binned.column(f);
                    lefts[g][i] = Some(
                        m.rows
                            .iter()
                            .map(|&r| {
                                goes_left(
                                    column[r as usize] as usize,
                                    bins.missing_bin(),
                                    w.split.bin,
                                    w.split.missing_left,
                                )
                            })
                            .collect(),
                    );
                    rules[g][i] = Some(SplitRule::Local {
                        feature: f,
                        threshold: bins.upper_edge(w.split.bin).unwrap_or(f64::MAX),
                        bin: w.split.bin as u16,
                        missing_left: w.split.missing_left,
                    });
                } else {
                    orders[w.party - 1].push((
                        g,
                        i,
                        SplitOrder {
                            feature: w.position as u32,
                            bin: w.split.bin as u32,
                            missing_left: w.split.missing_left,
                            rows: m.rows.clone(),
                        },
                    ));
                }
            }
        }
        for (h, host) in self.hosts.iter().enumerate() {
            let request = SplitRequest {
                splits: orders[h].iter().map(|(_, _, o)| o.clone()).collect(),
            };
            lctx.send(&host.id, "split", &request)?;
        }
        for (h, host) in self.hosts.iter().enumerate() {
            let msg = match lctx.recv::<Reply<PartitionMsg>>(&host.id, "part")? {
                Ok(m) => m,
                Err(reason) => {
                    return Err(SecureBoostError::HostFailed {
                        host: host.id.clone(),
                        reason,
                    });
                }
            };
            if msg.results.len() != orders[h].len() {
                return Err(SecureBoostError::bad_host(
                    &host.id,
                    format!(
                        "{} partitions for {} split requests",
                        msg.results.len(),
                        orders[h].len()
                    ),
                ));
            }
            for ((g, i, order), p) in orders[h].iter().zip(msg.results) {
                if !self.seen_split_ids[h].insert(p.split_id) {
                    return Err(SecureBoostError::bad_host(
                        &host.id,
                        format!("split id {} was used twice", p.split_id),
                    ));
                }
                let bits = unpack_bits(&p.left, order.rows.len())
                    .map_err(|e| SecureBoostError::bad_host(&host.id, format!("partition: {e}")))?;
                lefts[*g][*i] = Some(bits);
                rules[*g][*i] = Some(SplitRule::Host {
                    party: host.id.to_string(),
                    split_id: p.split_id,
                    // The guest chose the position from its own list of this tree's features.
                    feature: tc.selected[h + 1][order.feature as usize],
                });
            }
        }
        // Children, and leaves for everything not split.
        let mut next = Vec::new();
        for (g, group) in groups.into_iter().enumerate() {
            for (i, m) in group.members.into_iter().enumerate() {
                let (Some(w), Some(left_bits), Some(rule)) =
                    (winners[g][i], lefts[g][i].take(), rules[g][i].take())
                else {
                    self.make_leaf(tc, &m, tree, leaf_of);
                    continue;
                };
                let (mut left_rows, mut right_rows) = (Vec::new(), Vec::new());
                for (&r, &l) in m.rows.iter().zip(&left_bits) {
                    if l {
                        left_rows.push(r);
                    } else {
                        right_rows.push(r);
                    }
                }
                let sampled = |rows: &[u32]| -> Vec<u32> {
                    rows.iter()
                        .copied()
                        .filter(|&r| tc.is_sampled[r as usize])
                        .collect()
                };
                let (ls, rs) = (sampled(&left_rows), sampled(&right_rows));
                let (lt, rt) = (total_of(tc.quantized, &ls), total_of(tc.quantized, &rs));
                if lt != w.split.left || rt != w.split.right {
                    let owner = match &rule {
                        SplitRule::Host { party, .. } => party.clone(),
                        SplitRule::Local { .. } => "guest".into(),
                    };
                    return Err(SecureBoostError::BadHostMessage {
                        host: PartyId::new(owner.clone()).unwrap_or_else(|_| self.ctx.me().clone()),
                        reason: "its partition of a node disagrees with its histogram \
                                 (inconsistent data or binning between training steps)"
                            .into(),
                    });
                }
                let li = tree.nodes.len();
                tree.nodes.push(Node::Leaf { value: 0.0 });
                tree.nodes.push(Node::Leaf { value: 0.0 });
                tree.nodes[m.index] = Node::Split {
                    rule,
                    left: li,
                    right: li + 1,
                    gain: w.split.gain,
                };
                next.push(Group {
                    members: vec![
                        LiveNode {
                            index: li,
                            rows: left_rows,
                            sampled: ls,
                            total: lt,
                            hist: None,
                        },
                        LiveNode {
                            index: li + 1,
                            rows: right_rows,
                            sampled: rs,
                            total: rt,
                            hist: None,
                        },
                    ],
                    parent_hist: m.hist,
                });
            }
        }
        Ok(Some(next))
    }

    /// Best split of a node over every party's features, in the joined order (guest first,
    /// then hosts in roster order); a later feature wins only with a strictly larger gain.
    fn best_split(&self, tc: &TreeCtx, hist: &NodeHist, total: GradPair) -> Option<Winner> {
        let mut best: Option<Winner> = None;
        for (party, features) in hist.iter().enumerate() {
            for (position, fh) in features.iter().enumerate() {
                if let Some(split) = self.split.best_split_of_feature(&tc.scale, fh, total)
                    && best.is_none_or(|b| split.gain > b.split.gain)
                {
                    best = Some(Winner {
                        party,
                        position,
                        split,
                    });
                }
            }
        }
        best
    }

    /// Decrypts, unpacks and checks host `h`'s histograms of every built node.
    fn decrypt_histograms<S: HeSecretKey>(
        &self,
        sk: &S,
        tc: &TreeCtx,
        h: usize,
        msg: &HistogramMsg,
        totals: &[(GradPair, usize)],
    ) -> Result<Vec<Vec<Vec<GradPair>>>, SecureBoostError> {
        let host = &self.hosts[h];
        let bad = |r: String| SecureBoostError::bad_host(&host.id, r);
        let pk = sk.public();
        let features = &tc.selected[h + 1];
        let widths: Vec<usize> = features.iter().map(|&f| host.value_bins[f] + 1).collect();
        let bins_per_node: usize = widths.iter().sum();
        let per_ct = tc.layout.slots() / 2;
        let cts_per_node = bins_per_node.div_ceil(per_ct);
        let cts = pk
            .decode_batch(&msg.packed)
            .map_err(|e| bad(format!("histogram ciphertexts: {e}")))?;
        OpCounter::bump(&self.ops.ciphertexts_received, cts.len() as u64);
        if cts.len() != cts_per_node * totals.len() {
            return Err(bad(format!(
                "{} histogram ciphertexts, expected {} ({} nodes × {cts_per_node})",
                cts.len(),
                cts_per_node * totals.len(),
                totals.len()
            )));
        }
        let plain = sk.decrypt_many(&cts);
        OpCounter::bump(&self.ops.decryptions, cts.len() as u64);
        let mut out = Vec::with_capacity(totals.len());
        for (node, &(total, count)) in totals.iter().enumerate() {
            let limit = max_sum(count, tc.scale.precision_bits);
            let mut flat: Vec<GradPair> = Vec::with_capacity(bins_per_node);
            for (j, m) in plain[node * cts_per_node..(node + 1) * cts_per_node]
                .iter()
                .enumerate()
            {
                let in_this = per_ct.min(bins_per_node - j * per_ct);
                let slots = tc.layout.unpack(m, 2 * in_this);
                for pair in slots.chunks_exact(2) {
                    let (Some(g), Some(hh)) = (pair[0].to_i64(), pair[1].to_i64()) else {
                        return Err(bad("histogram value out of range".into()));
                    };
                    if (g as i128).abs() > limit || hh < 0 || hh as i128 > limit {
                        return Err(bad(format!(
                            "histogram sums ({g}, {hh}) impossible for a node of {count} rows"
                        )));
                    }
                    flat.push(GradPair { g, h: hh });
                }
            }
            let mut per_feature = Vec::with_capacity(widths.len());
            let mut at = 0;
            for (pos, &w) in widths.iter().enumerate() {
                let fh = flat[at..at + w].to_vec();
                at += w;
                let sum = fh.iter().fold(GradPair::ZERO, |a, &b| a + b);
                if sum != total {
                    return Err(bad(format!(
                        "histogram of its feature {} does not add up to the node's totals \
                         (inconsistent rows or a corrupted message)",
                        features[pos]
                    )));
                }
                per_feature.push(fh);
            }
            out.push(per_feature);
        }
        Ok(out)
    }
}

fn subtract(parent: &NodeHist, child: &NodeHist) -> NodeHist {
    parent
        .iter()
        .zip(child)
        .map(|(pp, cp)| {
            pp.iter()
                .zip(cp)
                .map(|(pf, cf)| pf.iter().zip(cf).map(|(&a, &b)| a - b).collect())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! A host that breaks the protocol in specific ways: the guest must stop with an error that
    //! names the host and the problem, never panic or build a wrong model.

    use crate::host::{Tamper, train_host};
    use crate::params::{Objective, SecureBoostParams};
    use ferry_context::{LocalCluster, Role, Roster};
    use ferry_data::Dataset;

    fn data(n: usize) -> (Dataset, Dataset) {
        let mut gf = Vec::new();
        let mut hf = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let a = ((i * 37) % 101) as f64 / 101.0;
            let b = ((i * 53) % 97) as f64 / 97.0;
            gf.push(a);
            hf.push(b);
            y.push(f64::from(u8::from(a + 2.0 * b > 1.4)));
        }
        let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        (
            Dataset::from_parts(ids.clone(), vec!["a".into()], gf, Some("y".into()), Some(y))
                .unwrap(),
            Dataset::from_parts(ids, vec!["b".into()], hf, None, None).unwrap(),
        )
    }

    fn run_with(tamper: Tamper) -> (String, String) {
        let params = SecureBoostParams {
            objective: Objective::BinaryLogistic,
            num_trees: 2,
            he: ferry_crypto::HeSettings::insecure_for_tests(
                ferry_crypto::SchemeKind::Paillier,
                512,
            ),
            ..SecureBoostParams::default()
        };
        let (guest, host) = data(120);
        let roster = Roster::of(&[("bank", Role::Guest), ("telco", Role::Host)]);
        let out = LocalCluster::new(roster).run(|ctx| {
            if ctx.role() == Role::Guest {
                super::train_guest(&ctx, &guest, &params, None, Default::default()).map(|_| ())
            } else {
                train_host(&ctx, &host, &params, None, tamper, Default::default()).map(|_| ())
            }
        });
        let err = |i: usize| out[i].result.clone().err().unwrap_or_default();
        (err(0), err(1))
    }

    #[test]
    fn honest_host_trains() {
        let (guest, host) = run_with(Tamper::Honest);
        assert_eq!((guest.as_str(), host.as_str()), ("", ""));
    }

    #[test]
    fn short_histogram_is_refused() {
        let (guest, _) = run_with(Tamper::ShortHistogram);
        assert!(guest.contains("host 'telco'"), "{guest}");
        assert!(guest.contains("histogram ciphertexts, expected"), "{guest}");
    }

    #[test]
    fn garbage_histogram_is_refused() {
        let (guest, _) = run_with(Tamper::GarbageHistogram);
        assert!(guest.contains("host 'telco'"), "{guest}");
        assert!(guest.contains("impossible for a node"), "{guest}");
    }

    #[test]
    fn malformed_partition_is_refused() {
        let (guest, _) = run_with(Tamper::ShortPartition);
        assert!(guest.contains("partition: bit set has"), "{guest}");
    }

    #[test]
    fn repeated_split_ids_are_refused() {
        let (guest, _) = run_with(Tamper::RepeatedSplitId);
        assert!(guest.contains("split id 0 was used twice"), "{guest}");
    }
}
