//! Federated prediction: the guest walks every tree, resolving its own splits locally and
//! asking hosts, one message per host per level for the whole dataset and all trees at once,
//! which rows go left at their splits.

use crate::error::SecureBoostError;
use crate::host::serve_queries;
use crate::model::{GuestModel, HostModel, ModelPart, Node, SplitRule, Tree, local_goes_left};
use crate::objective;
use crate::params::Objective;
use crate::protocol::*;
use ferry_context::{Context, PartyId, Role};
use ferry_data::Dataset;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the guest gets from [`crate::predict`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Predictions {
    pub objective: Objective,
    pub n_rows: usize,
    /// Scores per row (1, or the number of classes).
    pub n_outputs: usize,
    /// Raw scores (margins), `n_rows × n_outputs`, row-major.
    pub raw: Vec<f64>,
    /// Probability of class 1 (binary), predicted value (regression), or class probabilities
    /// (multi-class, row-major).
    pub outputs: Vec<f64>,
}

impl Predictions {
    /// Most likely class per row (binary: probability ≥ 0.5), for classification objectives.
    pub fn classes(&self) -> Option<Vec<usize>> {
        match self.objective {
            Objective::BinaryLogistic => Some(
                self.outputs
                    .iter()
                    .map(|&p| usize::from(p >= 0.5))
                    .collect(),
            ),
            Objective::SquaredError => None,
            Objective::MultiSoftmax { num_class } => Some(
                self.outputs
                    .chunks_exact(num_class)
                    .map(ferry_ml::metrics::argmax)
                    .collect(),
            ),
        }
    }
}

/// Guest side of routing: the leaf every row reaches in every tree. Hosts run
/// [`serve_queries`] on the same context.
pub(crate) fn route_rows(
    ctx: &Context,
    hosts: &[PartyId],
    trees: &[&Tree],
    data: &Dataset,
) -> Result<Vec<Vec<usize>>, SecureBoostError> {
    let n = data.n_rows();
    let mut position: Vec<Vec<usize>> = trees.iter().map(|_| vec![0; n]).collect();
    for level in 0.. {
        // Local splits need no one else: walk them as far as they go.
        for (t, tree) in trees.iter().enumerate() {
            for (i, pos) in position[t].iter_mut().enumerate() {
                while let Node::Split {
                    rule:
                        SplitRule::Local {
                            feature,
                            threshold,
                            missing_left,
                            ..
                        },
                    left,
                    right,
                    ..
                } = &tree.nodes[*pos]
                {
                    let v = data.value(i, *feature);
                    *pos = if local_goes_left(v, *threshold, *missing_left) {
                        *left
                    } else {
                        *right
                    };
                }
            }
        }
        // Rows waiting at host splits, grouped per host, then per (tree, node).
        let mut pending: Vec<BTreeMap<(usize, usize), Vec<u32>>> =
            hosts.iter().map(|_| BTreeMap::new()).collect();
        for (t, tree) in trees.iter().enumerate() {
            for (i, &pos) in position[t].iter().enumerate() {
                if let Node::Split {
                    rule: SplitRule::Host { party, .. },
                    ..
                } = &tree.nodes[pos]
                {
                    let h = hosts
                        .iter()
                        .position(|p| p.as_str() == party)
                        .ok_or_else(|| {
                            SecureBoostError::Data(format!(
                                "the model needs host '{party}', which is not part of this job"
                            ))
                        })?;
                    pending[h].entry((t, pos)).or_default().push(i as u32);
                }
            }
        }
        let q = format!("q{level}");
        if pending.iter().all(|p| p.is_empty()) {
            ctx.broadcast(hosts, &q, &PredictMsg::Done)?;
            break;
        }
        for (h, host) in hosts.iter().enumerate() {
            let queries = pending[h]
                .iter()
                .map(|(&(t, pos), rows)| {
                    let Node::Split {
                        rule: SplitRule::Host { split_id, .. },
                        ..
                    } = &trees[t].nodes[pos]
                    else {
                        unreachable!("pending holds host splits only")
                    };
                    PredictQuery {
                        split_id: *split_id,
                        rows: rows.clone(),
                    }
                })
                .collect();
            ctx.send(host, &q, &PredictMsg::Query { queries })?;
        }
        let a = format!("a{level}");
        for (h, host) in hosts.iter().enumerate() {
            let answer = match ctx.recv::<Reply<PredictAnswer>>(host, &a)? {
                Ok(answer) => answer,
                Err(reason) => {
                    return Err(SecureBoostError::HostFailed {
                        host: host.clone(),
                        reason,
                    });
                }
            };
            if answer.left.len() != pending[h].len() {
                return Err(SecureBoostError::bad_host(
                    host,
                    format!(
                        "{} answers to {} routing queries",
                        answer.left.len(),
                        pending[h].len()
                    ),
                ));
            }
            for ((&(t, pos), rows), bits) in pending[h].iter().zip(&answer.left) {
                let bits = unpack_bits(bits, rows.len()).map_err(|e| {
                    SecureBoostError::bad_host(host, format!("routing answer: {e}"))
                })?;
                let Node::Split { left, right, .. } = &trees[t].nodes[pos] else {
                    unreachable!("pending holds splits only")
                };
                for (&r, goes_left) in rows.iter().zip(bits) {
                    position[t][r as usize] = if goes_left { *left } else { *right };
                }
            }
        }
    }
    Ok(position)
}

pub(crate) fn predict_guest(
    ctx: &Context,
    model: &GuestModel,
    data: &Dataset,
) -> Result<Predictions, SecureBoostError> {
    let root = ctx.sub("secureboost-predict");
    let hosts = ctx.hosts();
    let hellos: Vec<PredictHello> = root.gather(&hosts, "hello")?;
    let mut problem = None;
    if data.feature_names != model.feature_names {
        problem = Some(SecureBoostError::Data(format!(
            "prediction data has columns [{}] but the model was trained on [{}]",
            data.feature_names.join(", "),
            model.feature_names.join(", ")
        )));
    }
    for needed in &model.hosts {
        if problem.is_none() && !hosts.iter().any(|h| h.as_str() == needed) {
            problem = Some(SecureBoostError::Data(format!(
                "the model needs host '{needed}', which is not part of this job"
            )));
        }
    }
    for (id, hello) in hosts.iter().zip(&hellos) {
        if problem.is_some() {
            break;
        }
        if let Some(reason) = &hello.problem {
            problem = Some(SecureBoostError::HostFailed {
                host: id.clone(),
                reason: reason.clone(),
            });
        } else if hello.version != PROTOCOL_VERSION {
            problem = Some(SecureBoostError::bad_host(
                id,
                format!("speaks protocol version {}", hello.version),
            ));
        } else if hello.model_id != model.model_id {
            problem = Some(SecureBoostError::Data(format!(
                "host '{id}' loaded the part of model {} but the guest's part is model {}: \
                 load the parts saved by the same training job",
                hello.model_id, model.model_id
            )));
        } else if hello.n_rows != data.n_rows() as u64 {
            problem = Some(SecureBoostError::RowMismatch {
                me: ctx.me().clone(),
                party: id.clone(),
                ours: data.n_rows(),
                theirs: hello.n_rows as usize,
            });
        }
    }
    if let Some(e) = problem {
        for h in &hosts {
            let _ = root.send(h, "start", &Reply::<()>::Err(e.to_string()));
        }
        return Err(e);
    }
    for h in &hosts {
        root.send(h, "start", &Reply::<()>::Ok(()))?;
    }
    let trees: Vec<&Tree> = model.trees.iter().collect();
    let leaves = route_rows(&root, &hosts, &trees, data)?;
    let k = model.n_outputs();
    let n = data.n_rows();
    let mut raw: Vec<f64> = (0..n)
        .flat_map(|_| model.base_scores.iter().copied())
        .collect();
    for (t, tree) in model.trees.iter().enumerate() {
        for (i, &leaf) in leaves[t].iter().enumerate() {
            if let Node::Leaf { value } = tree.nodes[leaf] {
                raw[i * k + t % k] += value;
            }
        }
    }
    root.flush()?;
    Ok(Predictions {
        objective: model.objective,
        n_rows: n,
        n_outputs: k,
        outputs: objective::transform(&model.objective, &raw),
        raw,
    })
}

pub(crate) fn predict_host(
    ctx: &Context,
    model: &HostModel,
    data: &Dataset,
) -> Result<(), SecureBoostError> {
    let root = ctx.sub("secureboost-predict");
    let guest = ctx.guest()?;
    let problem = (data.feature_names != model.feature_names).then(|| {
        format!(
            "host '{}' has prediction columns [{}] but its model part was trained on [{}]",
            ctx.me(),
            data.feature_names.join(", "),
            model.feature_names.join(", ")
        )
    });
    root.send(
        &guest,
        "hello",
        &PredictHello {
            version: PROTOCOL_VERSION,
            problem: problem.clone(),
            model_id: model.model_id.clone(),
            n_rows: data.n_rows() as u64,
        },
    )?;
    if let Some(reason) = problem {
        return Err(SecureBoostError::Data(reason));
    }
    if let Err(reason) = root.recv::<Reply<()>>(&guest, "start")? {
        return Err(SecureBoostError::GuestAborted { reason });
    }
    serve_queries(&root, &guest, &model.splits, data)?;
    root.flush()?;
    Ok(())
}

/// Dispatches on the party's role: the guest gets predictions, hosts `None`.
pub fn predict(
    ctx: &Context,
    model: &ModelPart,
    data: &Dataset,
) -> Result<Option<Predictions>, SecureBoostError> {
    match (ctx.role(), model) {
        (Role::Guest, ModelPart::Guest(m)) => predict_guest(ctx, m, data).map(Some),
        (Role::Host, ModelPart::Host(m)) => predict_host(ctx, m, data).map(|_| None),
        (Role::Arbiter, _) => Err(SecureBoostError::UnsupportedRole(Role::Arbiter)),
        (role, ModelPart::Guest(_)) => Err(SecureBoostError::WrongModelPart {
            part: "guest",
            role,
        }),
        (role, ModelPart::Host(_)) => Err(SecureBoostError::WrongModelPart { part: "host", role }),
    }
}
