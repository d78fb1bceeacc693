//! `psi`: private set intersection (ECDH-PSI, or KKRT16 between two parties); each party's
//! output is its own rows in the intersection.

use super::disclosure::protocol;
use super::{Artifact, ArtifactKind, Claims, Component, Outputs, Params, Slot, TaskEnv, TaskError};
use super::{TaskDisclosure, TaskFacts, parse_struct, schema_of};
use crate::policy::SecurityPolicy;
use ferry_context::Role;
use ferry_crypto::Suite;
use ferry_data::LabelKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub struct Psi;

/// PSI parameters as the DSL spells them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PsiParams {
    /// `kkrt` (OT-extension PSI, two parties only, much faster on large sets) or `ecdh`
    /// (any number of parties; the only one with `cached_key`). Default: `kkrt` for two data
    /// parties without `cached_key`, else `ecdh`. Every party must use the same protocol.
    pub protocol: Option<String>,
    /// Key columns; default: the dataset's id column(s).
    pub key_columns: Option<Vec<String>>,
    /// `all` (default) or the name of the one party that learns the intersection.
    pub receivers: Option<String>,
    /// Reuse this node's long-term PSI key for this party set (kept under `state/`). Makes
    /// runs linkable; a node's policy may forbid it.
    pub cached_key: bool,
    /// Crypto suite: `default` (ECDH over Ristretto255, or KKRT) or `gm`, the Chinese national
    /// suite (国密): ECDH-PSI over SM2 with SM3, the default protocol then being `ecdh` for
    /// any number of parties (KKRT is refused: its OT extension uses AES-128 and
    /// Ristretto255). Every party must use the same suite; the protocol's first message
    /// checks it.
    pub suite: Option<ferry_crypto::Suite>,
    /// Elements per message (ECDH only; KKRT's message sizes are fixed).
    #[schemars(range(min = 1))]
    pub chunk_size: Option<usize>,
}

impl Component for Psi {
    fn name(&self) -> &'static str {
        "psi"
    }
    fn summary(&self) -> &'static str {
        "Private set intersection: aligns the parties' rows by id without revealing ids outside the intersection."
    }
    fn inputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("data", ArtifactKind::Dataset)];
        SLOTS
    }
    fn outputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("data", ArtifactKind::Dataset)];
        SLOTS
    }
    fn params_schema(&self) -> serde_json::Value {
        schema_of::<PsiParams>(&[])
    }
    fn validate(&self, params: &Params, _role: Role) -> Result<(), String> {
        let p: PsiParams = parse_struct(params, &[])?;
        if protocol_of(&p, 2)? == ferry_psi::PsiProtocol::Kkrt && suite_of(&p) == Suite::Gm {
            return Err(
                "protocol 'kkrt' is not available under suite 'gm' (its OT extension uses AES-128 \
                 and Ristretto255): use protocol 'ecdh', or leave 'protocol' out"
                    .into(),
            );
        }
        if protocol_of(&p, 2)? == ferry_psi::PsiProtocol::Kkrt && p.cached_key {
            return Err(
                "'cached_key' needs protocol 'ecdh': protocol 'kkrt' has no long-term key".into(),
            );
        }
        if p.chunk_size == Some(0) {
            return Err("'chunk_size' must be at least 1".into());
        }
        if let Some(cols) = &p.key_columns
            && (cols.is_empty() || cols.iter().any(String::is_empty))
        {
            return Err("'key_columns' must be a non-empty list of column names".into());
        }
        Ok(())
    }
    fn claims(&self, params: &Params) -> Claims {
        let line = parse_struct::<PsiParams>(params, &[]).ok().map(|p| {
            format!(
                "{}, result to {}, {}",
                match p.protocol.as_deref() {
                    _ if suite_of(&p) == Suite::Gm => "ECDH-PSI over SM2 with SM3 (suite gm)",
                    Some("kkrt") => "KKRT16 PSI (OT extension)",
                    Some("ecdh") => "ECDH-PSI",
                    _ if p.cached_key => "ECDH-PSI",
                    _ => "KKRT16 PSI for two parties (ECDH-PSI for more)",
                },
                p.receivers.unwrap_or_else(|| "all".into()),
                if p.cached_key {
                    "CACHED long-term keys (runs linkable)"
                } else {
                    "fresh keys"
                }
            )
        });
        Claims {
            security: line,
            ..Claims::default()
        }
    }
    fn check_policy(
        &self,
        params: &Params,
        policy: &SecurityPolicy,
        _clients: usize,
    ) -> Result<(), String> {
        let p: PsiParams = parse_struct(params, &[])?;
        if p.cached_key && !policy.allow_cached_psi_keys {
            return Err(
                "cached_key makes PSI runs linkable and is not allowed on this \
                        node (policy.allow_cached_psi_keys in ferry.toml)"
                    .into(),
            );
        }
        Ok(())
    }
    fn run(&self, env: &TaskEnv) -> Result<Outputs, TaskError> {
        Ok(vec![("data", psi(env)?)])
    }
    fn disclosure(&self, facts: &TaskFacts<'_>) -> Option<TaskDisclosure> {
        Some(disclosure(facts))
    }
}

/// The protocol a party's parameters name, or the default for `data_parties` parties under
/// its suite.
fn protocol_of(p: &PsiParams, data_parties: usize) -> Result<ferry_psi::PsiProtocol, String> {
    match p.protocol.as_deref() {
        Some(s) => s.parse().map_err(|e: ferry_psi::PsiError| e.to_string()),
        None => Ok(ferry_psi::PsiProtocol::default_for_suite(
            suite_of(p),
            data_parties,
            p.cached_key,
        )),
    }
}

fn suite_of(p: &PsiParams) -> Suite {
    p.suite.unwrap_or_default()
}

/// The ECDH group's name for the privacy report.
fn group_title(p: &PsiParams) -> &'static str {
    match suite_of(p) {
        Suite::Default => "Ristretto255",
        Suite::Gm => "SM2 with SM3 (suite gm)",
    }
}

/// What PSI reveals among the job's data parties (the arbiter takes no part): see the
/// crate docs of `ferry-psi`, sections "What is revealed" of the two- and n-party protocols.
fn disclosure(facts: &TaskFacts<'_>) -> TaskDisclosure {
    let parties = facts.data_parties();
    let Some(first) = parties.first() else {
        return TaskDisclosure::protocol(protocol::PSI);
    };
    // The parties agree on the receivers and the protocol (the protocol's hello checks it).
    let params: PsiParams = facts.typed(first, &[]);
    let kkrt = protocol_of(&params, parties.len()) == Ok(ferry_psi::PsiProtocol::Kkrt);
    let mut d = TaskDisclosure::protocol(if kkrt {
        protocol::PSI_KKRT
    } else {
        protocol::PSI
    });
    let receivers: Vec<_> = match params.receivers.as_deref().filter(|r| *r != "all") {
        Some(r) => parties
            .iter()
            .filter(|p| p.as_str() == r)
            .cloned()
            .collect(),
        None => parties.clone(),
    };
    d.setting(format!(
        "result to: {}",
        if receivers.len() == parties.len() {
            "all".to_string()
        } else {
            receivers
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    const INTERSECTION: &str =
        "which of the receiver's own rows it also holds (the intersection), hence its size";
    if let [a, b] = parties.as_slice() {
        // KKRT reveals the same as two-party ECDH: set sizes, and the result to receivers.
        d.setting(if kkrt {
            "protocol: two-party KKRT16 PSI (OT extension with AES-128, base OTs over \
             Ristretto255)"
                .to_string()
        } else {
            format!("protocol: two-party ECDH-PSI over {}", group_title(&params))
        });
        for (x, y) in [(a, b), (b, a)] {
            d.reveal(x, y, "its set size (distinct non-empty keys)");
            if receivers.contains(y) {
                d.reveal(x, y, INTERSECTION);
            }
        }
    } else if let [leader, helper, ..] = parties.as_slice() {
        d.setting(format!(
            "protocol: n-party ECDH-PSI over {}, leader {leader}, helper {helper} \
             (secure while the leader colludes with no host)",
            group_title(&params)
        ));
        for host in &parties[1..] {
            d.reveal(
                host,
                leader,
                "its set size and how many of its ids each group of other parties also holds \
                 (every region of the sets' Venn diagram, pairwise intersection sizes \
                 included), never which ids",
            );
        }
        d.reveal(leader, helper, "its set size");
        if receivers.contains(leader) {
            d.reveal(
                leader,
                helper,
                "the intersection size (the number of keys it asks the helper to locate)",
            );
        }
        for receiver in &receivers {
            for other in parties.iter().filter(|p| *p != receiver) {
                d.reveal(
                    other,
                    receiver,
                    "which of the receiver's own rows are in the intersection of all sets",
                );
            }
        }
    }
    let cached: Vec<_> = parties
        .iter()
        .filter(|p| facts.typed::<PsiParams>(p, &[]).cached_key)
        .collect();
    if cached.is_empty() {
        d.setting("keys: fresh for this run (runs cannot be linked)");
    }
    for x in cached {
        d.setting(format!(
            "keys: {x} uses its CACHED long-term key (runs linkable)"
        ));
        for y in parties.iter().filter(|p| *p != x) {
            d.reveal(
                x,
                y,
                "across runs under the same cached key, which of its ids stayed, came or went \
                 (not the ids themselves)",
            );
        }
    }
    if let Some(n) = facts.metric("intersection_size") {
        d.recorded = Some(json!({ "intersection_size": n }));
    }
    d
}

fn psi(env: &TaskEnv) -> Result<Option<Artifact>, TaskError> {
    // The arbiter, if the job has one, takes no part in PSI: it has no ids to align, and the
    // tasks after it (hetero LR's coordinator, FedAvg's server) read no data either.
    if env.role() == Role::Arbiter {
        return Ok(None);
    }
    let Some(name) = env.input_dataset("data")? else {
        return Err(TaskError::shared(
            "PSI needs data at every party; this party has none",
        ));
    };
    let params: PsiParams = parse_struct(&env.params, &[]).map_err(TaskError::new)?;
    // The arbiter, if the job has one, takes no part in PSI.
    let data_parties = env
        .ctx
        .roster()
        .parties()
        .filter(|(_, r)| *r != Role::Arbiter)
        .count();
    let rec = env.store.dataset(&name)?;
    let key_columns = params
        .key_columns
        .clone()
        .unwrap_or_else(|| rec.id_columns.clone());
    std::fs::create_dir_all(&env.work_dir)?;
    let output = env.work_dir.join(format!("{}.csv", env.task.name));
    let input = ferry_psi::PsiInput {
        path: rec.path.clone(),
        // The stored copy may be encrypted at rest: read it through the store.
        opener: std::sync::Arc::new(env.store.data_files().clone()),
        key_columns: key_columns.clone(),
        format: None,
        output: Some(output.clone()),
    };
    let mut config = ferry_psi::PsiConfig {
        protocol: protocol_of(&params, data_parties).map_err(TaskError::new)?,
        group: ferry_psi::GroupKind::of_suite(suite_of(&params)),
        ..ferry_psi::PsiConfig::default()
    };
    if let Some(r) = params.receivers.as_deref().filter(|r| *r != "all") {
        config.receivers = ferry_psi::Receivers::Party(
            ferry_context::PartyId::new(r).map_err(|e| TaskError::new(e.to_string()))?,
        );
    }
    if params.cached_key {
        if !env.policy.allow_cached_psi_keys {
            return Err(TaskError::shared(
                "cached_key is not allowed by this node's policy (policy.allow_cached_psi_keys in ferry.toml)",
            ));
        }
        let parties: Vec<String> = env
            .ctx
            .roster()
            .parties()
            .map(|(p, _)| p.to_string())
            .collect();
        let dir = env.store.data_dir().join("psi-keys");
        std::fs::create_dir_all(&dir)?;
        config.keys = ferry_psi::KeyMode::Cached {
            file: dir.join(format!("{}.key", parties.join("+"))),
        };
    }
    if let Some(c) = params.chunk_size {
        config.chunk_size = c;
    }
    let outcome = ferry_psi::run_psi(env.ctx, &input, &config)?;
    let report = serde_json::to_value(&outcome.report)?;
    env.ctx.log(&format!("PSI report: {report}"));
    if let Some(size) = outcome.report.intersection_size {
        env.ctx.metric("intersection_size", 0, size as f64);
    }
    if outcome.report.intersection_size == Some(0) {
        return Err(TaskError::shared(
            "the intersection is empty: the parties have no id in common, so there is nothing to train on",
        ));
    }
    if !output.exists() {
        // This party does not receive the result.
        return Ok(None);
    }
    let label_kind = rec.label_kind.unwrap_or(LabelKind::Continuous);
    let derived = env.register(
        output,
        rec.id_columns.clone(),
        rec.label.clone(),
        label_kind,
        vec![name],
        "rows in the PSI intersection",
    )?;
    Ok(Some(Artifact::dataset_with(
        derived,
        json!({ "report": report }),
    )))
}

#[cfg(test)]
mod tests {
    use super::super::disclosure::testing::{facts_of, lines};
    use super::*;

    #[test]
    fn two_parties_reveal_set_sizes_and_only_receivers_learn_the_intersection() {
        let spec = |params: &str| {
            format!(
                "parties: {{guest: bank, hosts: [telco], arbiter: hub}}\n\
                 tasks:\n  - {{name: psi, component: psi, params: {params}}}\n"
            )
        };
        facts_of(&spec("{}"), "psi", |f| {
            let d = disclosure(f);
            // Two data parties (the arbiter takes no part) run KKRT by default.
            assert_eq!(d.protocols, ["KKRT-PSI"]);
            assert!(d.settings.iter().any(|s| s.contains("two-party KKRT16")));
            let l = lines(&d);
            assert_eq!(l.len(), 4, "{l:?}");
            assert!(l.contains(&"bank → telco: its set size (distinct non-empty keys)".into()));
            assert!(
                l.iter()
                    .any(|x| x.starts_with("telco → bank: which of the receiver"))
            );
            // The arbiter takes no part.
            assert!(!l.iter().any(|x| x.contains("hub")), "{l:?}");
            assert!(d.settings.contains(&"result to: all".to_string()));
            assert!(d.settings.iter().any(|s| s.starts_with("keys: fresh")));
        });
        facts_of(&spec("{protocol: ecdh}"), "psi", |f| {
            let d = disclosure(f);
            assert_eq!(d.protocols, ["ECDH-PSI"]);
            assert_eq!(lines(&d).len(), 4);
        });
        facts_of(&spec("{receivers: bank, cached_key: true}"), "psi", |f| {
            let d = disclosure(f);
            // A cached key means ECDH (KKRT has no long-term key).
            assert_eq!(d.protocols, ["ECDH-PSI"]);
            let l = lines(&d);
            assert!(
                l.iter()
                    .any(|x| x.starts_with("telco → bank: which of the receiver"))
            );
            assert!(
                !l.iter().any(|x| x.starts_with("bank → telco: which")),
                "{l:?}"
            );
            assert!(l.iter().any(|x| x.starts_with("bank → telco: across runs")));
            assert!(d.settings.contains(&"result to: bank".to_string()));
            assert!(
                d.settings
                    .iter()
                    .any(|s| s.contains("bank uses its CACHED"))
            );
        });
    }

    #[test]
    fn with_three_parties_the_leader_learns_the_venn_diagram_sizes() {
        let spec = "parties: {guest: bank, hosts: [telco, insurer]}\n\
                    tasks:\n  - {name: psi, component: psi}\n";
        facts_of(spec, "psi", |f| {
            assert_eq!(disclosure(f).protocols, ["ECDH-PSI"]);
            let l = lines(&disclosure(f));
            for host in ["telco", "insurer"] {
                assert!(
                    l.iter()
                        .any(|x| x.starts_with(&format!("{host} → bank: its set size and")))
                );
            }
            assert!(
                l.contains(&"bank → telco: its set size".to_string()),
                "{l:?}"
            );
            assert!(
                !l.contains(&"bank → insurer: its set size".to_string()),
                "{l:?}"
            );
            assert!(
                l.iter()
                    .any(|x| x.starts_with("bank → telco: the intersection size"))
            );
        });
    }

    #[test]
    fn the_gm_suite_runs_ecdh_over_sm2_and_refuses_kkrt() {
        let spec = |params: &str| {
            format!(
                "parties: {{guest: bank, hosts: [telco]}}\n\
                 tasks:\n  - {{name: psi, component: psi, params: {params}}}\n"
            )
        };
        facts_of(&spec("{suite: gm}"), "psi", |f| {
            let d = disclosure(f);
            // Two parties, no protocol named: ECDH, not KKRT, under gm.
            assert_eq!(d.protocols, ["ECDH-PSI"]);
            assert!(
                d.settings
                    .iter()
                    .any(|s| s == "protocol: two-party ECDH-PSI over SM2 with SM3 (suite gm)"),
                "{:?}",
                d.settings
            );
        });
        let params = |json: serde_json::Value| -> Params { serde_json::from_value(json).unwrap() };
        let e = Psi
            .validate(
                &params(json!({"suite": "gm", "protocol": "kkrt"})),
                Role::Guest,
            )
            .unwrap_err();
        assert!(
            e.contains("'kkrt' is not available under suite 'gm'"),
            "{e}"
        );
        assert!(
            Psi.validate(&params(json!({"suite": "gm"})), Role::Host)
                .is_ok()
        );
        let e = Psi
            .validate(&params(json!({"suite": "sm"})), Role::Host)
            .unwrap_err();
        assert!(e.contains("suite") && e.contains("gm"), "{e}");
        let line = Psi
            .claims(&params(json!({"suite": "gm"})))
            .security
            .unwrap();
        assert!(
            line.starts_with("ECDH-PSI over SM2 with SM3 (suite gm)"),
            "{line}"
        );
    }
}
