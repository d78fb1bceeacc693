//! Prediction: every party scores its own columns; the guest adds the scores up.

use crate::error::LinearError;
use crate::messages::{PROTOCOL_VERSION, PredictReply, PredictRequest, RowsFingerprint};
use crate::model::ModelPart;
use crate::params::Task;
use crate::train::sigmoid;
use ferry_context::{Context, Role};
use ferry_data::Dataset;

/// Scores `data` with a trained hetero model. Every data party calls it with its own model part
/// and its rows of the same ids in the same order; the guest gets the predictions
/// (probabilities of class 1 for logistic regression, values for linear regression), hosts
/// and the arbiter get `None`. The arbiter takes no part and returns at once.
///
/// Each host reveals its partial scores `w_k·x` for the requested rows to the guest (and
/// nothing else); see the crate docs.
pub fn predict(
    ctx: &Context,
    model: &ModelPart,
    data: &Dataset,
) -> Result<Option<Vec<f64>>, LinearError> {
    model.check()?;
    let role = ctx.role();
    if model.role != role {
        return Err(LinearError::Model(format!(
            "this model part was trained by a {}, but party '{}' is the {role} of this job",
            model.role,
            ctx.me()
        )));
    }
    let ctx = ctx.sub("hetero-linear-predict");
    match role {
        Role::Arbiter => Ok(None),
        Role::Guest => {
            let local = model.partial_scores(data);
            let rows = RowsFingerprint::of(&data.ids);
            let hosts = ctx.hosts();
            ctx.broadcast(
                &hosts,
                "request",
                &PredictRequest {
                    protocol_version: PROTOCOL_VERSION,
                    task: model.task,
                    rows,
                    problem: local.as_ref().err().map(LinearError::for_peers),
                },
            )?;
            let replies: Vec<PredictReply> = ctx.gather(&hosts, "reply")?;
            let mut scores = local?;
            let mut problems = Vec::new();
            for (h, r) in hosts.iter().zip(&replies) {
                if let Some(p) = &r.problem {
                    problems.push(format!("party '{h}' cannot predict: {p}"));
                } else if r.scores.len() != scores.len() || r.scores.iter().any(|v| !v.is_finite())
                {
                    return Err(LinearError::protocol(h, "sent malformed partial scores"));
                }
            }
            if !problems.is_empty() {
                return Err(LinearError::Aborted(problems.join("; ")));
            }
            for r in &replies {
                for (s, h) in scores.iter_mut().zip(&r.scores) {
                    *s += h;
                }
            }
            if model.task == Task::Logistic {
                scores.iter_mut().for_each(|s| *s = sigmoid(*s));
            }
            Ok(Some(scores))
        }
        Role::Host => {
            let guest = ctx.guest()?;
            let local = model.partial_scores(data);
            let request: PredictRequest = ctx.recv(&guest, "request")?;
            let me = ctx.me().to_string();
            let problem: Option<LinearError> = if request.protocol_version != PROTOCOL_VERSION {
                Some(LinearError::Aborted(format!(
                    "the guest speaks hetero-linear protocol version {} but party '{me}' \
                     speaks version {PROTOCOL_VERSION}",
                    request.protocol_version
                )))
            } else if request.task != model.task {
                Some(LinearError::Model(format!(
                    "the guest's model is {} regression but this host's part is {}",
                    request.task.name(),
                    model.task.name()
                )))
            } else if request.problem.is_some() {
                None
            } else {
                match &local {
                    Err(e) => Some(LinearError::Data(e.to_string())),
                    Ok(_) => request
                        .rows
                        .mismatch(&RowsFingerprint::of(&data.ids), "prediction", &me)
                        .map(LinearError::Misaligned),
                }
            };
            let reply = match (&problem, &local) {
                (None, Ok(s)) if request.problem.is_none() => PredictReply {
                    problem: None,
                    scores: s.clone(),
                },
                _ => PredictReply {
                    problem: Some(
                        problem
                            .as_ref()
                            .map(LinearError::for_peers)
                            .unwrap_or_else(|| "the guest stopped".into()),
                    ),
                    scores: Vec::new(),
                },
            };
            ctx.send(&guest, "reply", &reply)?;
            ctx.flush()?;
            if let Some(e) = problem {
                return Err(e);
            }
            if let Some(p) = request.problem {
                return Err(LinearError::Aborted(format!(
                    "the guest cannot predict: {p}"
                )));
            }
            Ok(None)
        }
    }
}
