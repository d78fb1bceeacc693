//! `fedavg`: horizontal federated averaging (clients = guest and hosts, server = arbiter),
//! with the node-policy checks that only it has: secure aggregation and the DP budget.

use super::train::Train;
use super::{ArtifactKind, Slot};
use crate::policy::SecurityPolicy;
use ferry_context::Roster;
use ferry_horizontal::FedAvgParams;
use std::marker::PhantomData;

pub static FEDAVG: Train<ferry_horizontal::Model> = Train {
    summary: "FedAvg: horizontal federated learning of linear models and small networks, with secure aggregation and differential privacy.",
    inputs: &[
        Slot::required("train", ArtifactKind::Dataset),
        Slot::optional("test", ArtifactKind::Dataset),
    ],
    holdout_slot: "test",
    roster: needs_arbiter,
    arbiter_takes_part: true,
    policy: check_policy,
    security_line,
    _model: PhantomData,
};

fn needs_arbiter(r: &Roster) -> Result<(), String> {
    if r.arbiter().is_none() {
        return Err("needs an arbiter (the aggregation server)".into());
    }
    Ok(())
}

fn check_policy(p: &FedAvgParams, policy: &SecurityPolicy, clients: usize) -> Result<(), String> {
    match &p.secure_aggregation {
        None if policy.require_secure_aggregation => {
            return Err("this node requires secure aggregation for fedavg \
                        (policy.require_secure_aggregation in ferry.toml)"
                .into());
        }
        None => {}
        Some(sa) => {
            // No threshold: a strict majority of the clients.
            let t = sa.threshold.unwrap_or(clients / 2 + 1);
            if t < policy.min_secagg_threshold {
                return Err(format!(
                    "secure aggregation threshold {t} is below this node's minimum of {} \
                     (policy.min_secagg_threshold in ferry.toml)",
                    policy.min_secagg_threshold
                ));
            }
        }
    }
    if let Some(max) = policy.max_dp_epsilon {
        match p.dp.as_ref().and_then(|d| d.epsilon_budget) {
            Some(e) if e <= max => {}
            Some(e) => {
                return Err(format!(
                    "DP budget ε = {e} is above this node's maximum of {max} \
                     (policy.max_dp_epsilon in ferry.toml)"
                ));
            }
            None => {
                return Err(format!(
                    "this node requires differential privacy with a budget of at most \
                     ε = {max} (set dp.epsilon_budget; policy.max_dp_epsilon in ferry.toml)"
                ));
            }
        }
    }
    Ok(())
}

fn security_line(p: &FedAvgParams) -> Option<String> {
    let sa = match &p.secure_aggregation {
        Some(sa) => format!(
            "secure aggregation (threshold {})",
            sa.threshold
                .map(|t| t.to_string())
                .unwrap_or_else(|| "majority".into())
        ),
        None => "NO secure aggregation (the server sees each update)".into(),
    };
    let dp = match &p.dp {
        Some(d) => format!(
            "DP clip {} δ {} budget {}",
            d.clip_norm,
            d.delta,
            d.epsilon_budget
                .map(|e| format!("ε ≤ {e}"))
                .unwrap_or_else(|| "none".into())
        ),
        None => "NO differential privacy".into(),
    };
    Some(format!("{sa}, {dp}"))
}
