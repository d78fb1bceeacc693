//! `fedavg`: horizontal federated averaging (clients = guest and hosts, server = arbiter),
//! with the node-policy checks that only it has: secure aggregation and the DP budget.

use super::disclosure::protocol;
use super::train::{EPSILON_SPENT_METRIC, Train};
use super::{ArtifactKind, MODEL_KEYS, Slot, TaskDisclosure, TaskFacts};
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
    disclosure,
    prediction_disclosure: |_| TaskDisclosure::local(),
    _model: PhantomData,
};

fn needs_arbiter(r: &Roster) -> Result<(), String> {
    if r.arbiter().is_none() {
        return Err("needs an arbiter (the aggregation server)".into());
    }
    Ok(())
}

/// The threshold secure aggregation falls to when the job sets none: a strict majority of a
/// round's clients, and a round may have only 2 (client selection, dropouts).
const MAJORITY_OF_THE_SMALLEST_ROUND: usize = 2;

/// The policy checks of fedavg's parameters. The secure-aggregation threshold is checked as
/// the rounds will use it: a threshold the job sets is fixed (a round with fewer clients
/// fails), while without one each round takes a majority of *its* clients, so the whole job
/// can count only on [`MAJORITY_OF_THE_SMALLEST_ROUND`], however many clients it names.
fn check_policy(p: &FedAvgParams, policy: &SecurityPolicy, _clients: usize) -> Result<(), String> {
    let min = policy.min_secagg_threshold;
    match &p.secure_aggregation {
        None if policy.require_secure_aggregation => {
            return Err("this node requires secure aggregation for fedavg \
                        (policy.require_secure_aggregation in ferry.toml)"
                .into());
        }
        None => {}
        Some(sa) => match sa.threshold {
            Some(t) if t < min => {
                return Err(format!(
                    "secure aggregation threshold {t} is below this node's minimum of {min} \
                     (policy.min_secagg_threshold in ferry.toml)"
                ));
            }
            Some(_) => {}
            None if MAJORITY_OF_THE_SMALLEST_ROUND < min => {
                return Err(format!(
                    "secure aggregation without a threshold uses a strict majority of each \
                     round's clients, which is {MAJORITY_OF_THE_SMALLEST_ROUND} when client \
                     selection or dropouts leave 2 or 3 clients in a round, below this node's \
                     minimum of {min} (policy.min_secagg_threshold in ferry.toml); set \
                     secure_aggregation.threshold to at least {min}"
                ));
            }
            None => {}
        },
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

/// SECURITY.md's FedAvg row (and the secure-aggregation row when the job uses it): what each
/// client sends the server in the clear ([`FedAvgParams::cleartext_statistics`]), what the
/// server sends back, and the DP accounting with the budget this node recorded as spent.
fn disclosure(facts: &TaskFacts<'_>) -> TaskDisclosure {
    let mut d = TaskDisclosure::protocol(protocol::FEDAVG);
    let Some(server) = facts.arbiter() else {
        return d;
    };
    let p: FedAvgParams = facts.typed(&server, MODEL_KEYS);
    let clients = facts.data_parties();
    match &p.secure_aggregation {
        Some(sa) => {
            d.protocols.push(protocol::SECURE_AGGREGATION.into());
            d.setting(format!(
                "secure aggregation: threshold {}",
                sa.threshold
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "a strict majority of each round's clients".into())
            ));
        }
        None => d.setting("secure aggregation: none (the server sees each client's update)"),
    }
    for stat in p.cleartext_statistics() {
        for client in &clients {
            let what = format!("{}: {} ({})", stat.name, stat.description, stat.when);
            d.reveal(client, &server, what.clone());
            if stat.recipients.contains("other participants") {
                for other in clients.iter().filter(|c| *c != client) {
                    d.reveal(client, other, what.clone());
                }
            }
        }
    }
    if p.secure_aggregation.is_some() {
        for client in &clients {
            d.reveal(
                client,
                &server,
                "its update only inside the round's sum (secure aggregation): the server learns \
                 the sum and who dropped out when",
            );
        }
    }
    let noised = if p.dp.is_some() { ", noised" } else { "" };
    for client in &clients {
        d.reveal(
            &server,
            client,
            format!(
                "the global model after every round it takes part in, hence the sum of the \
                 other clients' updates{noised}"
            ),
        );
    }
    match &p.dp {
        None => d.setting("differential privacy: none"),
        Some(dp) => {
            d.setting(format!(
                "differential privacy: clip norm {}, δ = {:e}, budget {}",
                dp.clip_norm,
                dp.delta,
                dp.epsilon_budget
                    .map(|e| format!("ε ≤ {e}"))
                    .unwrap_or_else(|| "none".into())
            ));
            // Every party records the ε its model reports; the server also each round's.
            let spent = facts
                .metric(EPSILON_SPENT_METRIC)
                .or_else(|| facts.metric("epsilon"));
            d.setting(match spent {
                Some(e) => format!("DP ε spent: {e:.4} (δ = {:e})", dp.delta),
                None => "DP ε spent: not recorded on this node (the task has not finished \
                         here, or its noise gives no finite guarantee)"
                    .into(),
            });
            d.recorded = p
                .privacy_report(spent)
                .and_then(|r| serde_json::to_value(r).ok());
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_horizontal::{
        ClientSelection, DpConfig, NoiseSchedule, SecureAggregation, SelectionMode,
    };

    fn params(threshold: Option<Option<usize>>, epsilon: Option<f64>) -> FedAvgParams {
        FedAvgParams {
            secure_aggregation: threshold.map(|threshold| SecureAggregation {
                threshold,
                ..Default::default()
            }),
            dp: epsilon.map(|e| DpConfig {
                clip_norm: 1.0,
                noise: NoiseSchedule::constant(0.5),
                delta: 1e-5,
                epsilon_budget: Some(e),
                noise_seed: None,
            }),
            ..Default::default()
        }
    }

    fn policy(min_secagg_threshold: usize, max_dp_epsilon: Option<f64>) -> SecurityPolicy {
        SecurityPolicy {
            min_secagg_threshold,
            max_dp_epsilon,
            ..Default::default()
        }
    }

    #[test]
    fn the_disclosure_lists_cleartext_statistics_the_threshold_and_the_epsilon_spent() {
        use super::super::disclosure::testing::lines;
        let spec = crate::dsl::JobSpec::parse(
            "parties: {guest: bank, hosts: [telco], arbiter: hub}\n\
             tasks:\n  - name: fit\n    component: fedavg\n    params:\n      \
             secure_aggregation: {threshold: 2}\n      \
             dp: {clip_norm: 1.0, noise: {stages: [{from_round: 1, noise_multiplier: 1.1}]}, delta: 0.00001, epsilon_budget: 4.0}\n",
        )
        .unwrap();
        let roster = spec.roster().unwrap();
        let task = spec.task("fit").unwrap();
        let mut facts = TaskFacts::from_spec(&spec, task, &roster);
        facts.metrics.insert(EPSILON_SPENT_METRIC.into(), 1.25);
        let d = disclosure(&facts);
        assert_eq!(d.protocols, ["FedAvg", "secure aggregation"]);
        let l = lines(&d);
        assert!(
            l.iter().any(|x| x.starts_with("bank → hub: sample_count:")),
            "{l:?}"
        );
        assert!(
            l.iter()
                .any(|x| x.starts_with("telco → bank: participation:")),
            "{l:?}"
        );
        assert!(
            l.iter()
                .any(|x| x.starts_with("hub → telco: the global model"))
        );
        assert!(!l.iter().any(|x| x.contains(": update:")), "{l:?}");
        assert!(
            d.settings
                .contains(&"secure aggregation: threshold 2".to_string())
        );
        assert!(
            d.settings
                .contains(&"DP ε spent: 1.2500 (δ = 1e-5)".to_string()),
            "{:?}",
            d.settings
        );
        let recorded = d.recorded.unwrap();
        assert_eq!(recorded["epsilon"], 1.25);
        assert_eq!(recorded["noise"], "distributed");
    }

    #[test]
    fn a_set_threshold_is_checked_against_the_minimum() {
        let e = check_policy(&params(Some(Some(2)), None), &policy(3, None), 5).unwrap_err();
        assert_eq!(
            e,
            "secure aggregation threshold 2 is below this node's minimum of 3 \
             (policy.min_secagg_threshold in ferry.toml)"
        );
        check_policy(&params(Some(Some(3)), None), &policy(3, None), 5).unwrap();
        check_policy(&params(Some(Some(2)), None), &policy(2, None), 2).unwrap();
    }

    #[test]
    fn without_a_threshold_only_a_minimum_of_two_can_be_met() {
        // A majority of 5 clients is 3; a round of 3 of them (fraction 0.6, or 2 dropouts)
        // takes a majority of 3, which is 2.
        for selection in [
            ClientSelection::default(),
            ClientSelection {
                fraction: 0.6,
                mode: SelectionMode::Poisson,
            },
        ] {
            let p = FedAvgParams {
                selection,
                ..params(Some(None), None)
            };
            let e = check_policy(&p, &policy(3, None), 5).unwrap_err();
            assert!(
                e.contains("policy.min_secagg_threshold")
                    && e.contains("set secure_aggregation.threshold to at least 3"),
                "{e}"
            );
            check_policy(&p, &policy(2, None), 5).unwrap();
        }
    }

    #[test]
    fn the_dp_budget_may_reach_the_maximum_but_not_exceed_it() {
        check_policy(&params(None, Some(4.0)), &policy(2, Some(4.0)), 3).unwrap();
        let e = check_policy(&params(None, Some(4.5)), &policy(2, Some(4.0)), 3).unwrap_err();
        assert_eq!(
            e,
            "DP budget ε = 4.5 is above this node's maximum of 4 \
             (policy.max_dp_epsilon in ferry.toml)"
        );
        let e = check_policy(&params(None, None), &policy(2, Some(4.0)), 3).unwrap_err();
        assert!(e.contains("policy.max_dp_epsilon"), "{e}");
        // No maximum: no rule.
        check_policy(&params(None, Some(100.0)), &policy(2, None), 3).unwrap();
        check_policy(&params(None, None), &policy(2, None), 3).unwrap();
    }
}
