//! `feature_binning`: bins every feature of every party and computes WOE and IV, the first
//! step of a joint scorecard.
//!
//! Each party bins its own columns (quantile, equal width, or optimal = monotonic bad rate;
//! text columns get a bin per category with rare ones merged; missing values get a bin of
//! their own). WOE and IV of a host's features use the guest's labels under homomorphic
//! encryption ([`ferry_feature::woe::federated_woe`]): the guest encrypts each aligned row's
//! label, the host sums ciphertexts per bin, the guest decrypts per-bin counts.
//!
//! What each party learns (semi-honest parties): the host learns nothing about labels, except
//! the WOE of its own bins when the guest sends it (`send_woe_to_host`, needed to
//! WOE-transform host features); the guest learns per-bin counts of host features, and the
//! host's column names only if the host allows it (`share_feature_names`, a host-side
//! setting); with `method: optimal` the guest also sends each host which of its adjacent fine
//! bins to merge.
//!
//! Outputs: `binning`, a model part per party (its binnings and WOE, and at the guest the IV
//! table of every feature) that `feature_selection`, `feature_transform` and `scorecard`
//! read; `report`, the IV table (guest) or the party's own bins (host).

use super::disclosure::protocol;
use super::{
    Artifact, ArtifactKind, Claims, Component, MODEL_KEYS, Outputs, Params, Slot, TaskEnv,
    TaskError, parse_struct, schema_of,
};
use super::{TaskDisclosure, TaskFacts};
use ferry_context::Role;
use ferry_crypto::HeSettings;
use ferry_feature::binning::{
    BinMethod, BinningParams, FeatureBinning, fit_categorical, fit_numeric,
};
use ferry_feature::table::{ColumnValues, Table};
use ferry_feature::woe::{
    BinnedFeature, FeatureWoe, GuestWoe, HostFeatureWoe, HostWoe, MergeOutcome, WoeOutcome,
    WoeParams, WoeReport, federated_merge, federated_woe,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub struct FeatureBinningComponent;

/// The model kind of a stored binning.
pub const KIND: &str = "feature_binning";
const FORMAT: &str = "ferry-binning";
const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureBinningParams {
    /// How to cut the features.
    pub binning: BinningParams,
    /// Guest: the scheme and key size it encrypts labels with. Host: the smallest key it
    /// accepts.
    pub he: HeSettings,
    /// Host: let the guest see the real names of its features (otherwise `<host>:feature_<j>`).
    pub share_feature_names: bool,
    /// Guest: send each host the WOE of its own bins (discloses each host bin's bad rate to
    /// that host; needed to WOE-transform host features). Default: true.
    pub send_woe_to_host: Option<bool>,
    /// Feature columns to bin (default: all of this party's features).
    pub columns: Option<Vec<String>>,
}

impl FeatureBinningParams {
    fn woe_params(&self, policy: &crate::policy::SecurityPolicy) -> WoeParams {
        let mut he = self.he.clone();
        he.allow_insecure_key_bits = policy.allows_key(he.scheme, he.key_bits);
        WoeParams {
            he,
            share_feature_names: self.share_feature_names,
            send_woe_to_host: self.send_woe_to_host.unwrap_or(true),
            ..WoeParams::default()
        }
    }
}

/// One of this party's binned features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinnedColumn {
    pub binning: FeatureBinning,
    /// WOE per bin (`None` at a host the guest sent no WOE).
    pub woe: Option<Vec<f64>>,
    /// IV (the guest's own features only).
    pub iv: Option<f64>,
    /// The name the guest knows a host feature by.
    pub shared_as: Option<String>,
}

/// What a party stores for a `feature_binning` task (model kind [`KIND`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinningModel {
    pub format: String,
    pub version: u32,
    /// This party's features, in the order they went into the WOE exchange.
    pub features: Vec<BinnedColumn>,
    /// Guest: WOE and IV of every feature (own, then each host's by the name the guest knows).
    pub iv_table: Vec<FeatureWoe>,
}

impl BinningModel {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TaskError> {
        let m: BinningModel = serde_json::from_slice(bytes)
            .map_err(|e| TaskError::new(format!("not a stored binning: {e}")))?;
        if m.format != FORMAT || m.version != FORMAT_VERSION {
            return Err(TaskError::new(format!(
                "stored binning has format {} v{}; this node reads {FORMAT} v{FORMAT_VERSION}",
                m.format, m.version
            )));
        }
        for f in &m.features {
            f.binning
                .validate()
                .map_err(|e| TaskError::new(e.to_string()))?;
        }
        Ok(m)
    }

    /// The WOE outcome this binning came from, as `federated_selection` takes it.
    pub fn woe_outcome(&self, role: Role) -> WoeOutcome {
        match role {
            Role::Guest => WoeOutcome::Guest(GuestWoe {
                features: self.iv_table.clone(),
                ordered: self
                    .iv_table
                    .iter()
                    .map(|f| {
                        self.features
                            .iter()
                            .find(|c| c.binning.feature == f.feature)
                            .is_none_or(|c| c.binning.is_numeric())
                    })
                    .collect(),
                report: WoeReport::default(),
            }),
            _ => WoeOutcome::Host(HostWoe {
                features: self
                    .features
                    .iter()
                    .map(|c| HostFeatureWoe {
                        name: c.binning.feature.clone(),
                        shared_as: c.shared_as.clone().unwrap_or_default(),
                        n_bins: c.binning.n_bins(),
                        woe: c.woe.clone(),
                    })
                    .collect(),
            }),
        }
    }
}

/// SECURITY.md's WOE binning row for the job's guest and each host.
fn disclosure(facts: &TaskFacts<'_>) -> TaskDisclosure {
    let mut d = TaskDisclosure::protocol(protocol::WOE_BINNING);
    let Some(guest) = facts.guest() else {
        return d;
    };
    let g: FeatureBinningParams = facts.typed(&guest, MODEL_KEYS);
    d.setting(format!(
        "keys: {}-{} generated by the guest ({guest}) for the labels",
        g.he.scheme.name(),
        g.he.key_bits
    ));
    let send_woe = g.send_woe_to_host.unwrap_or(true);
    d.setting(format!(
        "send_woe_to_host: {send_woe}; method: {}",
        serde_json::to_value(g.binning.method)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    ));
    for host in facts.hosts() {
        let h: FeatureBinningParams = facts.typed(&host, MODEL_KEYS);
        d.setting(format!(
            "{host}: share_feature_names: {}",
            h.share_feature_names
        ));
        d.reveal(
            &host,
            &guest,
            format!(
                "per feature: the number of bins, each bin's row and bad counts (hence WOE and \
                 IV) and whether it is numeric; {}; never edges, categories, values or which \
                 row is in which bin",
                if h.share_feature_names {
                    "its column names (share_feature_names)"
                } else {
                    "not its column names"
                }
            ),
        );
        d.reveal(
            &guest,
            &host,
            "each aligned row's label, only Paillier-encrypted under the guest's key",
        );
        if send_woe {
            d.reveal(
                &guest,
                &host,
                "the WOE of the host's own bins, and so their bad counts (send_woe_to_host)",
            );
        }
        if g.binning.method == BinMethod::Optimal {
            d.reveal(
                &guest,
                &host,
                "which of the host's adjacent fine bins the guest merges (method: optimal)",
            );
        }
    }
    d
}

/// Reads a party's dataset as a [`Table`] (text columns kept); the label only at the guest.
pub(crate) fn read_table(env: &TaskEnv, name: &str) -> Result<Table, TaskError> {
    let rec = env.csv_dataset(name)?;
    let mut table = Table::read_csv(
        env.store.source(&rec.path),
        &rec.id_columns,
        rec.label.as_deref(),
    )
    .map_err(|e| TaskError::new(e.to_string()))?;
    if env.role() != Role::Guest {
        table.labels = None;
        table.label_name = None;
    }
    Ok(table)
}

/// The stored binning an input slot refers to.
pub(crate) fn load_binning(env: &TaskEnv, slot: &str) -> Result<Option<BinningModel>, TaskError> {
    let Some((name, version)) = env.input_model(slot)? else {
        return Ok(None);
    };
    let (_, text) = env.load_model_of_kind(&name, Some(version), KIND)?;
    BinningModel::from_bytes(text.as_bytes()).map(Some)
}

impl Component for FeatureBinningComponent {
    fn name(&self) -> &'static str {
        KIND
    }
    fn summary(&self) -> &'static str {
        "Bins every party's features and computes WOE and IV; a host's WOE uses the guest's labels under homomorphic encryption."
    }
    fn inputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("data", ArtifactKind::Dataset)];
        SLOTS
    }
    fn outputs(&self) -> &'static [Slot] {
        const SLOTS: &[Slot] = &[
            Slot::required("binning", ArtifactKind::Model),
            Slot::required("report", ArtifactKind::Report),
        ];
        SLOTS
    }
    fn params_schema(&self) -> Value {
        schema_of::<FeatureBinningParams>(&[(
            "model_name",
            "Name of the stored binning (default: job-<id>-<task>).",
        )])
    }
    fn validate(&self, params: &Params, _role: Role) -> Result<(), String> {
        let mut p: FeatureBinningParams = parse_struct(params, MODEL_KEYS)?;
        p.binning.validate()?;
        // The key size is the policy's decision; the rest of the HE settings are checked here.
        p.he.allow_insecure_key_bits = true;
        p.he.validate().map_err(|e| format!("he.{e}"))?;
        if let Some(cols) = &p.columns
            && (cols.is_empty() || cols.iter().any(String::is_empty))
        {
            return Err("'columns' must be a non-empty list of column names".into());
        }
        Ok(())
    }
    fn claims(&self, params: &Params) -> Claims {
        let p: FeatureBinningParams = parse_struct(params, MODEL_KEYS).unwrap_or_default();
        Claims {
            he: Some(p.he.clone()),
            writes_model: params
                .get("model_name")
                .and_then(Value::as_str)
                .map(str::to_string),
            security: Some(format!(
                "{}-{} keys for labels; host names {}; WOE {} to hosts",
                p.he.scheme.name(),
                p.he.key_bits,
                if p.share_feature_names {
                    "SHARED with the guest"
                } else {
                    "hidden from the guest"
                },
                if p.send_woe_to_host.unwrap_or(true) {
                    "SENT"
                } else {
                    "not sent"
                }
            )),
            ..Claims::default()
        }
    }
    fn disclosure(&self, facts: &TaskFacts<'_>) -> Option<TaskDisclosure> {
        Some(disclosure(facts))
    }
    fn run(&self, env: &TaskEnv) -> Result<Outputs, TaskError> {
        let params: FeatureBinningParams =
            parse_struct(&env.params, MODEL_KEYS).map_err(TaskError::new)?;
        let role = env.role();
        if role == Role::Arbiter {
            return Ok(vec![("binning", None), ("report", None)]);
        }
        let name = env
            .input_dataset("data")?
            .ok_or_else(|| TaskError::shared("no data to bin at this party"))?;
        let table = read_table(env, &name)?;
        let labels = table.labels.as_deref();
        if role == Role::Guest && labels.is_none() {
            return Err(TaskError::new(format!(
                "dataset '{name}' has no label column; the guest's WOE needs its labels"
            )));
        }
        let binnings = fit_columns(&table, &params, labels)?;
        let binned: Vec<BinnedFeature> = binnings
            .iter()
            .map(|b| binned_feature(&table, b))
            .collect::<Result<_, _>>()?;
        let woe_params = params.woe_params(env.policy);
        let outcome = federated_woe(env.ctx, &binned, labels, &woe_params)
            .map_err(|e| TaskError::new(e.to_string()))?;
        let model = if params.binning.method == BinMethod::Optimal {
            // Host features were cut into fine bins; merge them by the guest's counts.
            let host_fine: Vec<FeatureBinning> = if role == Role::Host {
                binnings.clone()
            } else {
                Vec::new()
            };
            let merged =
                federated_merge(env.ctx, &outcome, &host_fine, &params.binning, &woe_params)
                    .map_err(|e| TaskError::new(e.to_string()))?;
            build_model(env, &binnings, outcome, Some(merged))
        } else {
            build_model(env, &binnings, outcome, None)
        };
        let report = report_of(&model, role);
        env.ctx.log(&format!(
            "binned {} features of '{name}' ({} rows)",
            model.features.len(),
            table.n_rows()
        ));
        let payload = serde_json::to_vec(&model)?;
        let artifact = env.store_model(
            KIND,
            payload,
            vec![name],
            json!({"features": model.features.len(), "iv": top_iv(&model)}),
        )?;
        Ok(vec![
            ("binning", Some(artifact)),
            ("report", Some(Artifact::Report { report })),
        ])
    }
}

/// Bins each selected column. A host cuts fine quantile bins for optimal binning (it has no
/// labels); the guest's counts merge them afterwards.
fn fit_columns(
    table: &Table,
    params: &FeatureBinningParams,
    labels: Option<&[f64]>,
) -> Result<Vec<FeatureBinning>, TaskError> {
    let names: Vec<String> = match &params.columns {
        Some(cols) => {
            for c in cols {
                table
                    .require_column(c)
                    .map_err(|e| TaskError::new(e.to_string()))?;
            }
            cols.clone()
        }
        None => table.columns.iter().map(|c| c.name.clone()).collect(),
    };
    let fine = BinningParams {
        method: BinMethod::Quantile,
        max_bins: params.binning.fine_bins.max(params.binning.max_bins),
        ..params.binning.clone()
    };
    let bp = if params.binning.method == BinMethod::Optimal && labels.is_none() {
        &fine
    } else {
        &params.binning
    };
    names
        .iter()
        .map(|n| {
            let col = table
                .require_column(n)
                .map_err(|e| TaskError::new(e.to_string()))?;
            match &col.values {
                ColumnValues::Numeric(v) => fit_numeric(n, v, labels, bp),
                ColumnValues::Text(v) => fit_categorical(n, v, labels, bp),
            }
            .map_err(|e| TaskError::new(e.to_string()))
        })
        .collect()
}

fn binned_feature(table: &Table, b: &FeatureBinning) -> Result<BinnedFeature, TaskError> {
    let col = table
        .require_column(&b.feature)
        .map_err(|e| TaskError::new(e.to_string()))?;
    Ok(match &col.values {
        ColumnValues::Numeric(v) => BinnedFeature::numeric(b, v),
        ColumnValues::Text(v) => BinnedFeature::text(b, v),
    })
}

fn build_model(
    env: &TaskEnv,
    binnings: &[FeatureBinning],
    outcome: WoeOutcome,
    merged: Option<MergeOutcome>,
) -> BinningModel {
    let me = env.ctx.me().as_str().to_string();
    match outcome {
        WoeOutcome::Guest(g) => {
            let mut iv_table = g.features;
            if let Some(MergeOutcome::Guest(host_merged)) = merged {
                // Host entries follow the guest's own, in the same order.
                let own = iv_table.iter().filter(|f| f.party == me).count();
                iv_table.truncate(own);
                iv_table.extend(host_merged);
            }
            let features = binnings
                .iter()
                .map(|b| {
                    let entry = iv_table
                        .iter()
                        .find(|f| f.party == me && f.feature == b.feature);
                    BinnedColumn {
                        binning: b.clone(),
                        woe: entry.map(|f| f.woe.clone()),
                        iv: entry.map(|f| f.iv),
                        shared_as: None,
                    }
                })
                .collect();
            BinningModel {
                format: FORMAT.into(),
                version: FORMAT_VERSION,
                features,
                iv_table,
            }
        }
        WoeOutcome::Host(h) => {
            let features = match merged {
                Some(MergeOutcome::Host(m)) => m
                    .into_iter()
                    .zip(&h.features)
                    .map(|(m, f)| BinnedColumn {
                        binning: m.binning,
                        woe: m.woe,
                        iv: None,
                        shared_as: Some(f.shared_as.clone()),
                    })
                    .collect(),
                _ => binnings
                    .iter()
                    .zip(h.features)
                    .map(|(b, f)| BinnedColumn {
                        binning: b.clone(),
                        woe: f.woe,
                        iv: None,
                        shared_as: Some(f.shared_as),
                    })
                    .collect(),
            };
            BinningModel {
                format: FORMAT.into(),
                version: FORMAT_VERSION,
                features,
                iv_table: Vec::new(),
            }
        }
    }
}

/// Features by IV, highest first (the guest's view).
fn top_iv(model: &BinningModel) -> Value {
    let mut v: Vec<(&str, f64)> = model
        .iv_table
        .iter()
        .map(|f| (f.feature.as_str(), f.iv))
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    json!(
        v.iter()
            .map(|(f, iv)| json!({"feature": f, "iv": iv}))
            .collect::<Vec<_>>()
    )
}

fn report_of(model: &BinningModel, role: Role) -> Value {
    if role == Role::Guest {
        let mut rows: Vec<&FeatureWoe> = model.iv_table.iter().collect();
        rows.sort_by(|a, b| b.iv.total_cmp(&a.iv));
        json!({
            "features": rows.iter().map(|f| json!({
                "feature": f.feature,
                "party": f.party,
                "iv": f.iv,
                "bins": f.labels.iter().zip(&f.bins).zip(&f.woe).map(|((label, s), w)| json!({
                    "bin": label, "rows": s.total, "bad": s.bad, "bad_rate": s.bad_rate(), "woe": w,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    } else {
        json!({
            "features": model.features.iter().map(|c| json!({
                "feature": c.binning.feature,
                "shared_as": c.shared_as,
                "bins": c.binning.bin_labels(),
                "woe": c.woe,
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod disclosure_tests {
    use super::super::disclosure::testing::{facts_of, lines};
    use super::*;

    #[test]
    fn host_names_woe_and_merges_follow_the_settings() {
        let spec = "parties: {guest: bank, hosts: [telco, insurer]}\ntasks:\n  - name: bin\n    component: feature_binning\n    params: {he: {key_bits: 1024}, binning: {method: optimal}}\n    party_params: {telco: {share_feature_names: true}, bank: {send_woe_to_host: false}}\n";
        facts_of(spec, "bin", |f| {
            let d = disclosure(f);
            assert_eq!(d.protocols, ["WOE binning"]);
            let l = lines(&d);
            assert!(l.iter().any(|x| x.starts_with("telco → bank:")
                && x.contains("its column names (share_feature_names)")));
            assert!(l.iter().any(|x| x.starts_with("insurer → bank:") && x.contains("not its column names")));
            assert!(
                !l.iter()
                    .any(|x| x.contains("the WOE of the host's own bins")),
                "{l:?}"
            );
            assert!(
                l.iter().any(
                    |x| x.starts_with("bank → insurer: which of the host's adjacent fine bins")
                )
            );
            assert!(l.iter().any(|x| {
                x.starts_with("bank → telco: each aligned row's label, only Paillier-encrypted")
            }));
            assert!(
                d.settings
                    .contains(&"send_woe_to_host: false; method: optimal".to_string()),
                "{:?}",
                d.settings
            );
        });
    }
}
