//! This node's security policy: the settings a job may not go below, whoever proposes it.
//!
//! A partner is authenticated, not trusted. Its proposal names key sizes, PSI key modes and
//! privacy settings; the policy is how the operator of *this* node says what it accepts. It is
//! read from the `[policy]` table of `ferry.toml` and enforced twice: when this node submits a
//! job, and when it receives a partner's proposal (the refusal names the policy line). Every
//! party's merged parameters are checked, not only this node's, because a weak setting for any
//! party (the guest's key size, say) exposes this node's data too.
//!
//! ```toml
//! [policy]
//! min_paillier_bits = 2048        # smallest Paillier key a job may use (floor 1024)
//! min_ou_bits = 2048              # smallest Okamoto–Uchiyama key
//! allow_cached_psi_keys = false   # may a job reuse long-term PSI keys (runs become linkable)
//! require_secure_aggregation = false   # fedavg must aggregate securely
//! min_secagg_threshold = 2        # smallest Shamir threshold secure aggregation may use (above
//!                                 # 2 a job must set one: a majority of a round of 2 or 3 is 2)
//! max_dp_epsilon = 8.0            # fedavg must use DP with a budget at most this (absent: no rule)
//! allowed_components = ["reader", "psi", "statistics", "data_split", "hetero_secureboost",
//!                       "hetero_lr", "predict", "evaluation"]   # absent: all
//! ```
//!
//! Keys below 2048 bits are for tests only. A node accepts them only when its own policy
//! lowers the minimum; a job spec can never ask for the permission itself.

use crate::dsl::JobSpec;
use ferry_context::Roster;
use ferry_crypto::SchemeKind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Smallest key a policy may allow at all: below it keys are factored in minutes, whatever
/// the operator writes. 1024 bits is already only for tests and demos.
pub const POLICY_KEY_BITS_FLOOR: u32 = 1024;
/// The minimum key size when the policy says nothing (NIST SP 800-57: 2048-bit factoring
/// moduli give 112-bit security).
pub const DEFAULT_MIN_KEY_BITS: u32 = 2048;

/// The `[policy]` table of `ferry.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityPolicy {
    pub min_paillier_bits: u32,
    pub min_ou_bits: u32,
    pub allow_cached_psi_keys: bool,
    pub require_secure_aggregation: bool,
    pub min_secagg_threshold: usize,
    pub max_dp_epsilon: Option<f64>,
    pub allowed_components: Option<Vec<String>>,
}

impl Default for SecurityPolicy {
    fn default() -> Self {
        SecurityPolicy {
            min_paillier_bits: DEFAULT_MIN_KEY_BITS,
            min_ou_bits: DEFAULT_MIN_KEY_BITS,
            allow_cached_psi_keys: false,
            require_secure_aggregation: false,
            min_secagg_threshold: 2,
            max_dp_epsilon: None,
            allowed_components: None,
        }
    }
}

impl SecurityPolicy {
    /// The `[policy]` table among the tables of `ferry.toml` the transport's configuration
    /// keeps for other layers (`NodeConfig::other`); defaults where it says nothing.
    pub fn from_config(tables: &toml::Table) -> Result<SecurityPolicy, String> {
        let policy: SecurityPolicy = match tables.get("policy") {
            None => SecurityPolicy::default(),
            Some(table) => table
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| format!("[policy]: {e}"))?,
        };
        policy.validate()?;
        Ok(policy)
    }

    /// The `[policy]` of a `ferry.toml` text.
    pub fn from_toml(text: &str) -> Result<SecurityPolicy, String> {
        Self::from_config(&toml::from_str(text).map_err(|e| e.to_string())?)
    }

    fn validate(&self) -> Result<(), String> {
        for (key, bits) in [
            ("min_paillier_bits", self.min_paillier_bits),
            ("min_ou_bits", self.min_ou_bits),
        ] {
            if bits < POLICY_KEY_BITS_FLOOR {
                return Err(format!(
                    "[policy] {key} = {bits} is below {POLICY_KEY_BITS_FLOOR}, which no node may \
                     accept (such keys are factored quickly)"
                ));
            }
        }
        if let Some(e) = self.max_dp_epsilon
            && !(e.is_finite() && e > 0.0)
        {
            return Err(format!(
                "[policy] max_dp_epsilon = {e} must be a positive number"
            ));
        }
        if let Some(list) = &self.allowed_components {
            for c in list {
                if crate::components::find(c).is_none() {
                    return Err(format!(
                        "[policy] allowed_components names '{c}', which is not a component"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The smallest key this node accepts for `scheme`, and the policy line that says so.
    pub fn min_key_bits(&self, scheme: SchemeKind) -> (u32, &'static str) {
        match scheme {
            SchemeKind::Paillier => (self.min_paillier_bits, "min_paillier_bits"),
            SchemeKind::OkamotoUchiyama => (self.min_ou_bits, "min_ou_bits"),
        }
    }

    /// Whether this node's policy lets jobs run `component`.
    pub fn allows_component(&self, component: &str) -> bool {
        self.allowed_components
            .as_ref()
            .is_none_or(|list| list.iter().any(|c| c == component))
    }

    /// Whether a job may use `bits`-bit keys of `scheme` on this node. Below 2048 bits the
    /// algorithms refuse unless told in code; this is where a node tells them.
    pub fn allows_key(&self, scheme: SchemeKind, bits: u32) -> bool {
        bits >= self.min_key_bits(scheme).0
    }

    /// Checks every task of `spec`, for every party's merged parameters. The error names the
    /// task, the party, the setting and the policy line.
    pub fn check(&self, spec: &JobSpec, roster: &Roster) -> Result<(), String> {
        let mut problems = Vec::new();
        let clients = roster.parties().count() - usize::from(roster.arbiter().is_some());
        for (i, task) in spec.tasks.iter().enumerate() {
            let at = format!("tasks[{i}] ({})", task.name);
            if !self.allows_component(&task.component) {
                problems.push(format!(
                    "{at}: component '{}' is not allowed on this node (policy.allowed_components in ferry.toml)",
                    task.component
                ));
                continue;
            }
            for (party, role) in roster.parties() {
                let params = spec.params_for(task, party.as_str(), role);
                if let Err(e) = self.check_task(&task.component, &params, clients) {
                    problems.push(format!("{at}, parameters for '{party}': {e}"));
                }
            }
        }
        problems.dedup();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "refused by this node's security policy: {}",
                problems.join("; ")
            ))
        }
    }

    fn check_key(&self, scheme: SchemeKind, bits: u32) -> Result<(), String> {
        let (min, line) = self.min_key_bits(scheme);
        if bits < min {
            return Err(format!(
                "{} keys of {bits} bits are below this node's minimum of {min} (policy.{line} in ferry.toml)",
                scheme.name()
            ));
        }
        Ok(())
    }

    /// One party's parameters of one task: the key size of any HE settings, then the
    /// component's own checks (cached PSI keys, secure aggregation, DP budget ...).
    fn check_task(
        &self,
        component: &str,
        params: &Map<String, Value>,
        clients: usize,
    ) -> Result<(), String> {
        let Some(c) = crate::components::find(component) else {
            return Ok(()); // the spec's validation names unknown components
        };
        if let Some(he) = c.claims(params).he {
            self.check_key(he.scheme, he.key_bits)?;
        }
        c.check_policy(params, self, clients)
    }
}

/// The settings of a job that bear on security and privacy, one line each, for whoever
/// approves it (`ferry job show`, the API). Lists every party's value where they differ.
pub fn security_settings(spec: &JobSpec, roster: &Roster) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(suite) = spec.suite {
        out.push(format!(
            "crypto suite: {suite} (the job's; every party checks it against its [crypto] settings)"
        ));
    }
    for task in &spec.tasks {
        let Some(component) = crate::components::find(&task.component) else {
            continue;
        };
        let lines: Vec<String> = roster
            .parties()
            .filter_map(|(party, role)| {
                let params = spec.params_for(task, party.as_str(), role);
                component
                    .claims(&params)
                    .security
                    .map(|l| format!("{party}: {l}"))
            })
            .collect();
        if !lines.is_empty() {
            out.push(format!(
                "{} ({}): {}",
                task.name,
                task.component,
                lines.join("; ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> (JobSpec, Roster) {
        let s = JobSpec::parse(text).unwrap();
        let r = s.roster().unwrap();
        (s, r)
    }

    const SB: &str = r#"
parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: a}, telco: {dataset: b}}}
  - {name: train, component: hetero_secureboost, inputs: {train: read}, params: {he: {key_bits: 1024}}}
"#;

    #[test]
    fn small_keys_are_refused_unless_this_node_lowers_its_minimum() {
        let (s, r) = spec(SB);
        let e = SecurityPolicy::default().check(&s, &r).unwrap_err();
        assert!(e.contains("policy.min_paillier_bits"), "{e}");
        assert!(e.contains("1024"), "{e}");
        let lowered = SecurityPolicy::from_toml("[policy]\nmin_paillier_bits = 1024\n").unwrap();
        lowered.check(&s, &r).unwrap();
        assert!(lowered.allows_key(SchemeKind::Paillier, 1024));
        assert!(!SecurityPolicy::default().allows_key(SchemeKind::Paillier, 1024));
    }

    #[test]
    fn a_weak_setting_for_any_party_is_refused() {
        // The guest generates the key: a small key for it alone exposes the hosts' data.
        let (s, r) = spec(
            r#"
parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: train, component: hetero_lr, party_params: {bank: {he: {key_bits: 1024}}}}
"#,
        );
        let e = SecurityPolicy::default().check(&s, &r).unwrap_err();
        assert!(
            e.contains("'bank'") && e.contains("min_paillier_bits"),
            "{e}"
        );
    }

    #[test]
    fn a_policy_cannot_go_below_the_floor_and_names_its_line() {
        let e = SecurityPolicy::from_toml("[policy]\nmin_ou_bits = 512\n").unwrap_err();
        assert!(e.contains("min_ou_bits = 512"), "{e}");
        let e = SecurityPolicy::from_toml("[policy]\nmin_key = 4096\n").unwrap_err();
        assert!(e.contains("min_key"), "{e}");
        // Other tables are not the policy's business.
        let p = SecurityPolicy::from_toml("party = 'bank'\n[limits]\ntimeout_secs = 5\n").unwrap();
        assert_eq!(p, SecurityPolicy::default());
    }

    #[test]
    fn cached_psi_keys_secure_aggregation_dp_and_components_follow_the_policy() {
        let (s, r) = spec(
            r#"
parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: a}, telco: {dataset: b}}}
  - {name: psi, component: psi, inputs: {data: read}, params: {cached_key: true}}
"#,
        );
        let e = SecurityPolicy::default().check(&s, &r).unwrap_err();
        assert!(e.contains("policy.allow_cached_psi_keys"), "{e}");
        let p = SecurityPolicy {
            allow_cached_psi_keys: true,
            ..Default::default()
        };
        p.check(&s, &r).unwrap();
        let only_reader = SecurityPolicy {
            allow_cached_psi_keys: true,
            allowed_components: Some(vec!["reader".into()]),
            ..Default::default()
        };
        let e = only_reader.check(&s, &r).unwrap_err();
        assert!(
            e.contains("policy.allowed_components") && e.contains("'psi'"),
            "{e}"
        );

        let (s, r) = spec(
            r#"
parties: {guest: a, hosts: [b, c], arbiter: s}
tasks:
  - {name: read, component: reader, party_params: {a: {dataset: x}, b: {dataset: x}, c: {dataset: x}}}
  - {name: fl, component: fedavg, inputs: {train: read}}
"#,
        );
        SecurityPolicy::default().check(&s, &r).unwrap();
        let strict = SecurityPolicy {
            require_secure_aggregation: true,
            ..Default::default()
        };
        let e = strict.check(&s, &r).unwrap_err();
        assert!(e.contains("policy.require_secure_aggregation"), "{e}");
        let dp = SecurityPolicy {
            max_dp_epsilon: Some(4.0),
            ..Default::default()
        };
        let e = dp.check(&s, &r).unwrap_err();
        assert!(e.contains("policy.max_dp_epsilon"), "{e}");
    }

    #[test]
    fn the_approval_view_lists_key_sizes_and_psi_modes() {
        let (s, r) = spec(SB);
        let lines = security_settings(&s, &r);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("paillier-1024 keys") || l.contains("Paillier-1024 keys")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("reads dataset 'b'")),
            "{lines:?}"
        );
    }
}
