//! `psi`: private set intersection (ECDH-PSI); each party's output is its own rows in the
//! intersection.

use super::{Artifact, ArtifactKind, Claims, Component, Outputs, Params, Slot, TaskEnv, TaskError};
use super::{parse_struct, schema_of};
use crate::policy::SecurityPolicy;
use ferry_context::Role;
use ferry_data::LabelKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub struct Psi;

/// PSI parameters as the DSL spells them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PsiParams {
    /// Key columns; default: the dataset's id column(s).
    pub key_columns: Option<Vec<String>>,
    /// `all` (default) or the name of the one party that learns the intersection.
    pub receivers: Option<String>,
    /// Reuse this node's long-term PSI key for this party set (kept under `state/`). Makes
    /// runs linkable; a node's policy may forbid it.
    pub cached_key: bool,
    /// Elements per message.
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
                "ECDH-PSI, result to {}, {}",
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
}

fn psi(env: &TaskEnv) -> Result<Option<Artifact>, TaskError> {
    let Some(name) = env.input_dataset("data")? else {
        return Err(TaskError::shared(
            "PSI needs data at every party; this party has none",
        ));
    };
    let params: PsiParams = parse_struct(&env.params, &[]).map_err(TaskError::new)?;
    let rec = env.store.dataset(&name)?;
    let key_columns = params
        .key_columns
        .clone()
        .unwrap_or_else(|| rec.id_columns.clone());
    std::fs::create_dir_all(&env.work_dir)?;
    let output = env.work_dir.join(format!("{}.csv", env.task.name));
    let input = ferry_psi::PsiInput {
        path: rec.path.clone(),
        key_columns: key_columns.clone(),
        format: None,
        output: Some(output.clone()),
    };
    let mut config = ferry_psi::PsiConfig::default();
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
