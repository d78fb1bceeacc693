//! This node's crypto suite and encryption at rest: the `[crypto]` table of `ferry.toml`.
//!
//! ```toml
//! [crypto]
//! suite = "gm"                 # "default" (Ristretto255, ECDSA P-256) or "gm" (国密: SM2, SM3, SM4)
//! # accept_suites = ["default", "gm"]   # job suites accepted; absent: see below
//! encrypt_at_rest = false      # SM4-GCM for the node's model and data files (identity/at-rest.key)
//! ```
//!
//! What the suite changes on this node:
//!
//! * **Model signatures.** Under `gm` the node signs model records with SM2 (SM3,
//!   `identity/sm2-key.hex`, mode 0600, created at `ferry init --suite gm` or on the first
//!   start), recorded as `sm2:` + hex; records signed before keep verifying with the identity
//!   key ([`ferry_store::ModelSigner`]). Partners never check this node's model signatures
//!   (each node loads only its own model parts), so the public key stays on the node.
//! * **Jobs.** A job spec may say `suite: gm`; the `psi` component's `suite` parameter follows
//!   it unless a task sets it (and may not contradict it: [`crate::dsl`]). A job this node
//!   submits without a suite gets the node's ([`CryptoSettings::fill_job_suite`]), so under
//!   `gm` PSI runs over SM2 by default.
//! * **Agreement.** Every party checks the suites a job uses when it is submitted and when it
//!   is proposed ([`CryptoSettings::check_job`]): each must be one this node accepts. A `gm`
//!   node accepts only `gm` jobs — a partner's proposal can never lower the suite — and the
//!   refusal names the suite, the setting and this party; a `default` node accepts both
//!   (national algorithms are not weaker) unless `accept_suites` says otherwise.
//!
//! * **The action log.** Under `gm` new entries of the hash chain are hashed with SM3 (stored
//!   as `sm3:` + hex; entries from before keep SHA-256 and verify as they are:
//!   [`ferry_store::actions`]), and checkpoints are signed with the SM2 key, carrying the SM2
//!   public key bound to the identity key that partners pin ([`crate::audit`]).
//!
//! What it does not change: transport (TLS 1.3 with ECDSA P-256 certificates; rustls has no
//! TLCP), HE (Paillier / Okamoto–Uchiyama) and KKRT PSI (AES-128, SHA-256). See SECURITY.md,
//! "The GM suite".

use crate::dsl::JobSpec;
use ferry_crypto::Suite;
use ferry_transport::config::NodeDir;
use serde::{Deserialize, Serialize};

/// Name of the table in `ferry.toml`.
pub const CRYPTO_TABLE: &str = "crypto";

/// The `[crypto]` table of `ferry.toml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CryptoSettings {
    /// This node's suite: its model signatures and the suite of the jobs it submits.
    pub suite: Suite,
    /// Suites of partners' (and this node's) jobs this node accepts; absent: both under
    /// `default`, only `gm` under `gm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_suites: Option<Vec<Suite>>,
    /// Whether the files the node writes — models, stored and derived datasets, query-service
    /// tables and query results — are encrypted with SM4-GCM under `identity/at-rest.key`
    /// (see `ferry_store::DataFiles`; files written before stay readable as they are).
    pub encrypt_at_rest: bool,
}

impl CryptoSettings {
    /// The `[crypto]` table among the tables of `ferry.toml` the transport's configuration
    /// keeps for other layers; defaults where it says nothing.
    pub fn from_config(tables: &toml::Table) -> Result<CryptoSettings, String> {
        let settings: CryptoSettings = match tables.get(CRYPTO_TABLE) {
            None => CryptoSettings::default(),
            Some(table) => table
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| format!("[crypto]: {e}"))?,
        };
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), String> {
        let Some(list) = &self.accept_suites else {
            return Ok(());
        };
        if !list.contains(&self.suite) {
            return Err(format!(
                "[crypto] accept_suites must include the node's own suite '{}'",
                self.suite
            ));
        }
        if self.suite == Suite::Gm && list.contains(&Suite::Default) {
            return Err(
                "[crypto] suite = \"gm\" accepts only gm jobs: remove \"default\" from \
                 accept_suites (or set suite = \"default\", which accepts both)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The suites this node accepts in a job.
    pub fn accepted(&self) -> Vec<Suite> {
        match (&self.accept_suites, self.suite) {
            (Some(list), _) => list.clone(),
            (None, Suite::Default) => Suite::ALL.to_vec(),
            (None, Suite::Gm) => vec![Suite::Gm],
        }
    }

    /// Gives a job this node submits the node's suite when the spec names none (a `default`
    /// node leaves it unset, which means `default`).
    pub fn fill_job_suite(&self, spec: &mut JobSpec) {
        if spec.suite.is_none() && self.suite != Suite::Default {
            spec.suite = Some(self.suite);
        }
    }

    /// Whether `party` (this node) accepts the suites `spec` uses: the job's suite and every
    /// task's `suite` parameter for every party. The error names the suite, the setting and
    /// the party; it says nothing about this node beyond its suite, so it is shared with the
    /// proposer as is.
    pub fn check_job(&self, spec: &JobSpec, party: &str) -> Result<(), String> {
        let accepted = self.accepted();
        let names: Vec<&str> = accepted.iter().map(|s| s.as_str()).collect();
        let setting = match &self.accept_suites {
            Some(_) => format!("[crypto] accept_suites = {names:?}"),
            None => format!("[crypto] suite = \"{}\"", self.suite),
        };
        for (suite, at) in job_suites(spec) {
            if !accepted.contains(&suite) {
                // One sentence without ';' (the job validation API splits reasons there).
                let hint = if accepted.contains(&Suite::Gm) {
                    ": propose it with `suite: gm`"
                } else {
                    ""
                };
                return Err(format!(
                    "crypto suite: {at} uses suite '{suite}', which party '{party}' does not \
                     accept ({setting} on '{party}' accepts only {}, and a partner's job cannot \
                     lower it){hint}",
                    names.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Writes `suite` and `encrypt_at_rest` into the tables of a `ferry.toml`
    /// (`ferry init --suite`).
    pub fn write_to(&self, tables: &mut toml::Table) -> Result<(), String> {
        let value = toml::Value::try_from(self).map_err(|e| e.to_string())?;
        tables.insert(CRYPTO_TABLE.into(), value);
        Ok(())
    }

    /// The node's model signer: the identity key, and under `gm` the SM2 key (created in the
    /// identity directory on first use).
    pub fn model_signer(&self, dir: &NodeDir) -> Result<ferry_store::ModelSigner, String> {
        let identity = dir.identity().map_err(|e| e.to_string())?;
        let signer =
            ferry_store::ModelSigner::from_pem(&identity.key_pem).map_err(|e| e.to_string())?;
        if self.suite != Suite::Gm {
            return Ok(signer);
        }
        let key = ferry_store::ModelSigner::load_or_create_sm2_key(&identity_dir(dir))
            .map_err(|e| e.to_string())?;
        Ok(signer.with_sm2(key))
    }

    /// The store with this node's signer and, under `encrypt_at_rest`, its at-rest key
    /// (created in the identity directory on first use).
    pub fn open_store(&self, dir: &NodeDir) -> Result<ferry_store::Store, String> {
        let signer = self.model_signer(dir)?;
        let mut store = ferry_store::Store::open(
            &dir.path(&dir.config.state_dir),
            &dir.path(&dir.config.data_dir),
            signer,
        )
        .map_err(|e| e.to_string())?;
        if self.suite == Suite::Gm {
            store.set_chain_hash(ferry_store::actions::ChainHash::Sm3);
        }
        if self.encrypt_at_rest {
            let key = ferry_store::load_or_create_at_rest_key(&identity_dir(dir))
                .map_err(|e| e.to_string())?;
            store.set_at_rest_key(key);
        }
        Ok(store)
    }

    /// Creates the keys the settings call for (at `ferry init`, so that they exist before the
    /// first start and are in the first backup).
    pub fn create_keys(&self, dir: &NodeDir) -> Result<(), String> {
        if self.suite == Suite::Gm {
            ferry_store::ModelSigner::load_or_create_sm2_key(&identity_dir(dir))
                .map_err(|e| e.to_string())?;
        }
        if self.encrypt_at_rest {
            ferry_store::load_or_create_at_rest_key(&identity_dir(dir))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The directory of the node's private keys (that of `identity/key.pem`).
pub fn identity_dir(dir: &NodeDir) -> std::path::PathBuf {
    let key = dir.path(&dir.config.key_file);
    key.parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| dir.root().join("identity"))
}

/// The suites a job uses, each with where: the job's own (`default` when unset), and every
/// task parameter `suite` that any party runs with.
pub fn job_suites(spec: &JobSpec) -> Vec<(Suite, String)> {
    let mut out = vec![(
        spec.suite.unwrap_or_default(),
        match spec.suite {
            Some(_) => "the job".to_string(),
            None => "the job (no `suite`, so the default suite)".to_string(),
        },
    )];
    let Ok(roster) = spec.roster() else {
        return out;
    };
    for task in &spec.tasks {
        for (party, role) in roster.parties() {
            let params = spec.params_for(task, party.as_str(), role);
            let Some(suite) = params
                .get("suite")
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse::<Suite>().ok())
            else {
                continue;
            };
            let at = format!("task '{}'", task.name);
            if !out.iter().any(|(s, a)| *s == suite && *a == at) {
                out.push((suite, at));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Result<CryptoSettings, String> {
        CryptoSettings::from_config(&toml::from_str(text).unwrap())
    }

    fn spec(text: &str) -> JobSpec {
        JobSpec::parse(text).unwrap()
    }

    const PSI: &str = "parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: a}, telco: {dataset: b}}}
  - {name: psi, component: psi, inputs: {data: read}, params: {protocol: ecdh}}
";

    #[test]
    fn the_table_reads_with_defaults_and_refuses_contradictions() {
        assert_eq!(settings("").unwrap(), CryptoSettings::default());
        let gm = settings("[crypto]\nsuite = \"gm\"\nencrypt_at_rest = true").unwrap();
        assert_eq!(gm.suite, Suite::Gm);
        assert!(gm.encrypt_at_rest);
        assert_eq!(gm.accepted(), vec![Suite::Gm]);
        assert_eq!(settings("").unwrap().accepted(), Suite::ALL.to_vec());
        let e = settings("[crypto]\nsuite = \"gm\"\naccept_suites = [\"default\", \"gm\"]")
            .unwrap_err();
        assert!(e.contains("accepts only gm jobs"), "{e}");
        let e = settings("[crypto]\naccept_suites = [\"gm\"]").unwrap_err();
        assert!(e.contains("own suite 'default'"), "{e}");
        let e = settings("[crypto]\nsuite = \"sm\"").unwrap_err();
        assert!(e.contains("[crypto]"), "{e}");
        let e = settings("[crypto]\nsuites = \"gm\"").unwrap_err();
        assert!(e.contains("suites"), "{e}");
        // Written by `ferry init --suite gm` and read back the same.
        let mut tables = toml::Table::new();
        gm.write_to(&mut tables).unwrap();
        assert_eq!(CryptoSettings::from_config(&tables).unwrap(), gm);
    }

    #[test]
    fn a_gm_node_refuses_default_jobs_and_a_default_node_accepts_gm_ones() {
        let gm = settings("[crypto]\nsuite = \"gm\"").unwrap();
        let default = CryptoSettings::default();
        let plain = spec(PSI);
        let e = gm.check_job(&plain, "telco").unwrap_err();
        assert!(
            e.contains("uses suite 'default'")
                && e.contains("party 'telco'")
                && e.contains("[crypto] suite = \"gm\"")
                && e.contains("suite: gm"),
            "{e}"
        );
        let national = spec(&format!("suite: gm\n{PSI}"));
        assert_eq!(gm.check_job(&national, "telco"), Ok(()));
        assert_eq!(default.check_job(&national, "telco"), Ok(()));
        assert_eq!(default.check_job(&plain, "telco"), Ok(()));
        // A default node may opt out of gm jobs.
        let only_default = settings("[crypto]\naccept_suites = [\"default\"]").unwrap();
        let e = only_default.check_job(&national, "bank").unwrap_err();
        assert!(e.contains("accept_suites") && e.contains("'gm'"), "{e}");
        // A task's own suite counts too: a default job whose PSI runs gm on one party.
        let mixed = spec(&PSI.replace("{protocol: ecdh}", "{protocol: ecdh, suite: gm}"));
        let e = only_default.check_job(&mixed, "bank").unwrap_err();
        assert!(e.contains("task 'psi' uses suite 'gm'"), "{e}");
    }

    #[test]
    fn a_gm_node_gives_its_jobs_its_suite_and_psi_follows() {
        let gm = settings("[crypto]\nsuite = \"gm\"").unwrap();
        let mut s = spec(PSI);
        gm.fill_job_suite(&mut s);
        assert_eq!(s.suite, Some(Suite::Gm));
        let psi = s.task("psi").unwrap();
        let params = s.params_for(psi, "telco", ferry_context::Role::Host);
        assert_eq!(params["suite"], "gm");
        assert!(s.validate().is_ok());
        let mut d = spec(PSI);
        CryptoSettings::default().fill_job_suite(&mut d);
        assert_eq!(d.suite, None);
        // An explicit suite is kept (and then checked).
        let mut explicit = spec(&format!("suite: default\n{PSI}"));
        gm.fill_job_suite(&mut explicit);
        assert_eq!(explicit.suite, Some(Suite::Default));
        assert!(gm.check_job(&explicit, "bank").is_err());
        // A task may repeat the job's suite but not contradict it.
        let contradicting = spec(&format!(
            "suite: gm\n{}",
            PSI.replace("{protocol: ecdh}", "{protocol: ecdh, suite: default}")
        ));
        let e = contradicting.validate().unwrap_err().to_string();
        assert!(
            e.contains("tasks[1].params.suite")
                && e.contains("suite 'default' (for 'bank') contradicts the job's suite 'gm'"),
            "{e}"
        );
        let repeating = spec(&format!(
            "suite: gm\n{}",
            PSI.replace("{protocol: ecdh}", "{protocol: ecdh, suite: gm}")
        ));
        assert!(repeating.validate().is_ok());
    }
}
