//! The same boosting algorithm on one party's joined table, in the clear.
//!
//! This is the reference federated training is checked against: it bins every column the way
//! each party bins its own, samples rows and features from the same seeded generator, quantises
//! gradients and hessians the same way and evaluates splits with the same functions
//! ([`crate::split`]). It grows each tree recursively and computes every histogram directly (no
//! sibling subtraction, no packing, no encryption), so agreement with the federated trainer
//! checks the protocol machinery, not a shared copy of it.

use crate::error::SecureBoostError;
use crate::model::{GuestModel, Node, SplitRule, Tree};
use crate::objective::{self, metric_spec};
use crate::params::SecureBoostParams;
use crate::report::TreeReport;
use crate::sampling::Sampler;
use crate::split::{GradPair, GradScale, SplitParams, feature_histogram, goes_left, total_of};
use ferry_data::Dataset;
use ferry_ml::binning::{BinnedMatrix, Binning};

/// What centralised training returns: a complete model and a record per tree.
pub struct CentralizedOutcome {
    pub model: GuestModel,
    pub trees: Vec<TreeReport>,
    pub best_round: Option<usize>,
}

struct Grower<'a> {
    split: SplitParams,
    scale: GradScale,
    binned: &'a BinnedMatrix,
    binning: &'a Binning,
    selected: &'a [bool],
    quantized: &'a [GradPair],
    is_sampled: &'a [bool],
}

impl Grower<'_> {
    /// Grows the subtree of `rows` and returns its node index.
    fn grow(
        &self,
        rows: Vec<u32>,
        depth: usize,
        nodes: &mut Vec<Node>,
        leaf_of: &mut [f64],
    ) -> usize {
        let sampled: Vec<u32> = rows
            .iter()
            .copied()
            .filter(|&r| self.is_sampled[r as usize])
            .collect();
        let total = total_of(self.quantized, &sampled);
        let index = nodes.len();
        nodes.push(Node::Leaf { value: 0.0 });
        let mut best: Option<(usize, crate::split::FeatureSplit)> = None;
        if self
            .split
            .may_split(depth, sampled.len(), &self.scale, total)
        {
            for j in 0..self.binned.n_features() {
                if !self.selected[j] {
                    continue;
                }
                let bins = self.binning.feature(j);
                let hist = feature_histogram(
                    self.binned.column(j),
                    self.quantized,
                    &sampled,
                    bins.n_bins_with_missing(),
                );
                if let Some(c) = self.split.best_split_of_feature(&self.scale, &hist, total)
                    && best.is_none_or(|(_, b)| c.gain > b.gain)
                {
                    best = Some((j, c));
                }
            }
        }
        match best {
            Some((j, c)) if self.split.accept(c.gain) => {
                let bins = self.binning.feature(j);
                let column = self.binned.column(j);
                let (left, right): (Vec<u32>, Vec<u32>) = rows.iter().partition(|&&r| {
                    goes_left(
                        column[r as usize] as usize,
                        bins.missing_bin(),
                        c.bin,
                        c.missing_left,
                    )
                });
                let l = self.grow(left, depth + 1, nodes, leaf_of);
                let r = self.grow(right, depth + 1, nodes, leaf_of);
                nodes[index] = Node::Split {
                    rule: SplitRule::Local {
                        feature: j,
                        threshold: bins.upper_edge(c.bin).unwrap_or(f64::MAX),
                        bin: c.bin as u16,
                        missing_left: c.missing_left,
                    },
                    left: l,
                    right: r,
                    gain: c.gain,
                };
            }
            _ => {
                let value = self.split.leaf_value(&self.scale, total);
                nodes[index] = Node::Leaf { value };
                for &r in &rows {
                    leaf_of[r as usize] = value;
                }
            }
        }
        index
    }
}

/// Trains on a joined, labelled table (the guest's columns followed by every host's).
pub fn train_centralized(
    data: &Dataset,
    params: &SecureBoostParams,
    validation: Option<&Dataset>,
) -> Result<CentralizedOutcome, SecureBoostError> {
    params.validate()?;
    let labels = data
        .labels()
        .ok_or_else(|| SecureBoostError::Data("centralised training needs labels".into()))?;
    objective::check_labels(&params.objective, labels)?;
    let n = data.n_rows();
    let d = data.n_features();
    let binning = Binning::fit(&data.features, n, d, params.max_bin)?;
    let binned = binning.transform(&data.features, n)?;
    let k = params.objective.n_outputs();
    let base = objective::base_scores(&params.objective, labels);
    let mut scores: Vec<f64> = (0..n).flat_map(|_| base.iter().copied()).collect();
    let valid = match validation {
        Some(v) => {
            let vl = v
                .labels()
                .ok_or_else(|| SecureBoostError::Data("the validation set needs labels".into()))?;
            objective::check_labels(&params.objective, vl)?;
            if v.n_features() != d {
                return Err(SecureBoostError::Data(
                    "validation and training data have different columns".into(),
                ));
            }
            Some((v, vl))
        }
        None => None,
    };
    let mut valid_scores: Vec<f64> = valid
        .map(|(v, _)| (0..v.n_rows()).flat_map(|_| base.iter().copied()).collect())
        .unwrap_or_default();
    let split = SplitParams::from(params);
    let spec = metric_spec(&params.objective);
    let mut sampler = Sampler::new(params.seed);
    let mut trees = Vec::new();
    let mut reports = Vec::new();
    let mut best: Option<(usize, f64)> = None;
    let mut stopped_at = None;
    for round in 0..params.num_trees {
        let grads: Vec<(Vec<f64>, Vec<f64>)> = (0..k)
            .map(|c| objective::gradients(&params.objective, &scores, labels, c))
            .collect();
        for (class, (g, h)) in grads.iter().enumerate() {
            let start = std::time::Instant::now();
            let rows = sampler.rows(n, params.subsample);
            let selected = sampler.features(d, params.colsample);
            let scale = GradScale::fit(g, h, &rows, params.precision_bits);
            let mut is_sampled = vec![false; n];
            for &r in &rows {
                is_sampled[r as usize] = true;
            }
            let quantized: Vec<GradPair> = (0..n).map(|i| scale.quantize(g[i], h[i])).collect();
            let grower = Grower {
                split,
                scale,
                binned: &binned,
                binning: &binning,
                selected: &selected,
                quantized: &quantized,
                is_sampled: &is_sampled,
            };
            let mut nodes = Vec::new();
            let mut leaf_of = vec![0.0; n];
            grower.grow((0..n as u32).collect(), 0, &mut nodes, &mut leaf_of);
            for i in 0..n {
                scores[i * k + class] += leaf_of[i];
            }
            let tree = Tree { nodes };
            if let Some((v, _)) = valid {
                let rows: Vec<&[f64]> = (0..v.n_rows()).map(|i| v.row(i)).collect();
                let add = predict_one_tree(&tree, &rows);
                for (i, a) in add.iter().enumerate() {
                    valid_scores[i * k + class] += a;
                }
            }
            reports.push(TreeReport {
                tree: trees.len(),
                seconds: start.elapsed().as_secs_f64(),
                train_metric: None,
                validation_metric: None,
                leaves: tree.n_leaves(),
                depth: tree.depth(),
            });
            trees.push(tree);
        }
        let last = reports.len() - 1;
        reports[last].train_metric = objective::evaluate(&params.objective, &scores, labels);
        if let Some((_, vl)) = valid {
            let m = objective::evaluate(&params.objective, &valid_scores, vl);
            reports[last].validation_metric = m;
            if let (Some(m), Some(patience)) = (m, params.early_stopping_rounds) {
                let better =
                    best.is_none_or(|(_, b)| if spec.higher_is_better { m > b } else { m < b });
                if better {
                    best = Some((round, m));
                } else if best.is_some_and(|(r, _)| round - r >= patience) {
                    stopped_at = best.map(|(r, _)| r);
                    break;
                }
            }
        }
    }
    if let Some(r) = stopped_at {
        trees.truncate((r + 1) * k);
    }
    Ok(CentralizedOutcome {
        model: GuestModel {
            model_id: "centralized".into(),
            objective: params.objective,
            base_scores: base,
            feature_names: data.feature_names.clone(),
            hosts: Vec::new(),
            trees,
        },
        trees: reports,
        best_round: stopped_at,
    })
}

fn predict_one_tree(tree: &Tree, rows: &[&[f64]]) -> Vec<f64> {
    let one = GuestModel {
        model_id: String::new(),
        objective: crate::params::Objective::SquaredError,
        base_scores: vec![0.0],
        feature_names: Vec::new(),
        hosts: Vec::new(),
        trees: vec![tree.clone()],
    };
    one.predict_raw_local(rows)
}
