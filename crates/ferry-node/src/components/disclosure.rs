//! What a task reveals, and to whom: each component's statement for the job's privacy report
//! ([`crate::privacy`]).
//!
//! A component states, for the parties and parameters of one task, which protocols of
//! SECURITY.md's table "What each protocol reveals" the task runs ([`protocol`]: the report
//! quotes the row), and one [`Disclosure`] per thing a party reveals to another party beyond
//! the agreed result, in the words of that row applied to the job's parties. Settings that bear
//! on privacy (key sizes, PSI receivers and key mode, the secure-aggregation threshold, DP) are
//! listed with them; what a task recorded about its privacy (the DP budget spent) is read from
//! the task's metrics on this node.
//!
//! A component that sends nothing says so with [`TaskDisclosure::local`]; one that says nothing
//! (the trait's default) is shown as "not stated", and a test keeps every registered component
//! out of that state.

use super::{Params, parse_struct};
use crate::dsl::{JobSpec, TaskSpec};
use ferry_context::{PartyId, Role, Roster};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The first words of the rows of SECURITY.md's table "What each protocol reveals"; the
/// privacy report quotes the row a task's component names.
pub mod protocol {
    pub const PSI: &str = "ECDH-PSI";
    pub const PSI_KKRT: &str = "KKRT-PSI";
    pub const SECUREBOOST: &str = "SecureBoost";
    pub const HETERO_LR: &str = "hetero LR";
    pub const FEDAVG: &str = "FedAvg";
    pub const SECURE_AGGREGATION: &str = "secure aggregation";
    pub const WOE_BINNING: &str = "WOE binning";
    pub const FEATURE_SELECTION: &str = "feature selection";
    pub const SCORECARD: &str = "scorecard";
    pub const PREDICTION: &str = "prediction";
    pub const ANONYMOUS_QUERY: &str = "anonymous query";

    /// Every row a component may name.
    pub const ALL: &[&str] = &[
        PSI,
        PSI_KKRT,
        SECUREBOOST,
        HETERO_LR,
        FEDAVG,
        SECURE_AGGREGATION,
        WOE_BINNING,
        FEATURE_SELECTION,
        SCORECARD,
        PREDICTION,
        ANONYMOUS_QUERY,
    ];
}

/// One thing a party reveals to another in a task, beyond the agreed result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disclosure {
    /// The party whose data it is about.
    pub from: String,
    /// The party that learns it.
    pub to: String,
    pub what: String,
}

/// What a component states about one task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskDisclosure {
    /// The rows of SECURITY.md's table the task runs ([`protocol`]); empty: nothing crosses
    /// the wire.
    pub protocols: Vec<String>,
    pub disclosures: Vec<Disclosure>,
    /// Settings that bear on privacy, as `name: value` lines, beyond each party's line of the
    /// approval view.
    pub settings: Vec<String>,
    /// What the task recorded about its privacy on this node (FedAvg: the DP accounting).
    pub recorded: Option<Value>,
}

impl TaskDisclosure {
    /// A task that runs on each party's own data and sends nothing.
    pub fn local() -> Self {
        TaskDisclosure::default()
    }

    /// A task that runs the protocol of SECURITY.md's row `name`.
    pub fn protocol(name: &str) -> Self {
        TaskDisclosure {
            protocols: vec![name.to_string()],
            ..TaskDisclosure::default()
        }
    }

    /// `from` reveals `what` to `to`.
    pub fn reveal(&mut self, from: &PartyId, to: &PartyId, what: impl Into<String>) {
        self.disclosures.push(Disclosure {
            from: from.to_string(),
            to: to.to_string(),
            what: what.into(),
        });
    }

    pub fn setting(&mut self, line: impl Into<String>) {
        self.settings.push(line.into());
    }

    /// Whether the task sends anything at all.
    pub fn is_local(&self) -> bool {
        self.protocols.is_empty() && self.disclosures.is_empty()
    }
}

/// What the privacy report knows of a task when it asks the task's component.
pub struct TaskFacts<'a> {
    pub task: &'a TaskSpec,
    pub roster: &'a Roster,
    /// Each party's merged parameters, in roster order.
    pub params: Vec<(PartyId, Role, Params)>,
    /// For a task that uses a model (`predict`): the model's kind, the name of the component
    /// that trained it.
    pub model_kind: Option<String>,
    /// The task's metrics on this node: the last value of each.
    pub metrics: BTreeMap<String, f64>,
}

impl<'a> TaskFacts<'a> {
    /// The facts the job spec alone gives (no model kind, no metrics).
    pub fn from_spec(spec: &JobSpec, task: &'a TaskSpec, roster: &'a Roster) -> Self {
        TaskFacts {
            task,
            roster,
            params: roster
                .parties()
                .map(|(p, r)| (p.clone(), r, spec.params_for(task, p.as_str(), r)))
                .collect(),
            model_kind: None,
            metrics: BTreeMap::new(),
        }
    }

    /// `party`'s merged parameters (empty for a party not in the roster).
    pub fn params_of(&self, party: &PartyId) -> Params {
        self.params
            .iter()
            .find(|(p, _, _)| p == party)
            .map(|(_, _, params)| params.clone())
            .unwrap_or_default()
    }

    /// `party`'s parameters as `T` (the defaults where they do not parse: the task was
    /// validated at submission, so that happens only to a spec of an older version).
    pub fn typed<T: Default + Serialize + DeserializeOwned>(
        &self,
        party: &PartyId,
        extra: &[&str],
    ) -> T {
        parse_struct(&self.params_of(party), extra).unwrap_or_default()
    }

    pub fn guest(&self) -> Option<PartyId> {
        self.roster.guest()
    }

    pub fn hosts(&self) -> Vec<PartyId> {
        self.roster.hosts()
    }

    pub fn arbiter(&self) -> Option<PartyId> {
        self.roster.arbiter()
    }

    /// The parties that hold data: the guest, then the hosts.
    pub fn data_parties(&self) -> Vec<PartyId> {
        self.guest().into_iter().chain(self.hosts()).collect()
    }

    /// Whether the task connects input slot `slot`.
    pub fn has_input(&self, slot: &str) -> bool {
        self.task.inputs.contains_key(slot)
    }

    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).copied()
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// The facts of one task of `spec` (YAML), with no metrics.
    pub fn facts_of(spec: &str, task: &str, f: impl FnOnce(&TaskFacts<'_>)) {
        let spec = JobSpec::parse(spec).expect("test spec");
        let roster = spec.roster().expect("test roster");
        let t = spec.task(task).expect("test task");
        f(&TaskFacts::from_spec(&spec, t, &roster));
    }

    /// The lines `from → to: what` of a statement, for assertions.
    pub fn lines(d: &TaskDisclosure) -> Vec<String> {
        d.disclosures
            .iter()
            .map(|x| format!("{} → {}: {}", x.from, x.to, x.what))
            .collect()
    }
}
