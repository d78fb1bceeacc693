//! Model deployment and online federated inference (issue 14).
//!
//! A **model service** answers predictions for one id (or a batch) at a time with a deployed
//! vertical model — SecureBoost (`hetero_secureboost`) or hetero LR (`hetero_lr`) — whose parts
//! stay with the parties that trained them.
//!
//! * **Deployment.** Only the guest (the party holding the model's guest part) deploys:
//!   `deploy` loads its part (signature checked by the store), finds the hosts from the
//!   model's lineage (the training job's roster) and sends each [`ServingMsg::Propose`]
//!   naming the model by *lineage* (model name, training job, task), never by a version number
//!   (each party numbers its own versions). A host vets the proposal before storing anything:
//!   the sender is the guest of that job on this node's record, this node holds a host part
//!   from that job (loaded with its signature checked), its policy allows `predict`, it has no
//!   live service of that name (a partner never replaces this node's services, nor a
//!   service of another guest), and a dataset the proposal names is granted to the guest.
//!   Approval is automatic under `auto_approve` when the proposal names a granted dataset;
//!   otherwise it waits in the approvals list (kind `deployment`) and the approver picks the
//!   dataset. The host then loads its part and builds its feature table and answers
//!   [`ServingMsg::Decision`]; the service answers once every host approved.
//! * **Version switch** (and rollback, the same operation): the guest loads the new part and
//!   sends [`ServingMsg::Switch`] with a new *generation*; each host loads its part of that
//!   lineage next to the serving one and answers `SwitchReady`; when all are ready the guest
//!   makes the new generation the one that answers and tells the hosts (`Activate`). Until
//!   then the old generation answers, so there is no gap. A host accepts a switch without a
//!   new approval only to a part of the *same model name* trained by a job whose guest is the
//!   same partner (the approval was for serving that model to that guest).
//! * **Online inference** ([`online`]): per (service, host) the guest keeps one long-lived
//!   federated session, opened with `Open` → `Ready`/`Refused` on the control plane; requests
//!   and answers then flow on that session (no job per request).
//! * **Feature tables** ([`table`]): each party's dataset for the service, in memory, rebuilt
//!   in the background when the dataset is registered again and swapped atomically.
//!
//! What a host learns: the ids the guest asks about (and when, and how many); it answers only
//! its own part (SecureBoost: one bit per split it owns; LR: its partial score `w·x`, or that
//! it has no complete row for the id). The guest learns those bits or partial scores. Hosts
//! count requests and ids per service; the guest logs request ids for `[serving]
//! request_log_days`. Neither stores the ids asked or feature values.

pub mod online;
pub mod table;

use crate::node::{Control, Node, NodeError};
use ferry_context::{PartyId, Role};
use ferry_feature::transform::FittedTransform;
use ferry_store::{ModelRecord, ModelServiceRecord, ModelServiceStatus, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use table::{FeatureTable, TableLimits};

pub const SECUREBOOST_KIND: &str = "hetero_secureboost";
pub const LR_KIND: &str = "hetero_lr";
/// Prefix of deployment ids (also the id of a deployment in the approvals list).
pub const DEPLOYMENT_PREFIX: &str = "deploy-";
/// Longest reason a partner may send (cut beyond).
const MAX_REASON: usize = 2000;
/// Longest name (model, job, task, dataset, service) a partner may send.
const MAX_NAME: usize = 128;

/// `[serving]` of `ferry.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServingSettings {
    /// Most rows of one online feature table.
    pub max_table_rows: u64,
    /// Most memory of one online feature table, in MiB (see [`table`] for what is counted).
    pub max_table_mb: u64,
    /// Most ids in one prediction request (the guest refuses more; a host refuses a partner's
    /// request with more).
    pub max_batch: usize,
    /// How long the guest waits for a host's answer unless the service sets its own.
    pub default_timeout_ms: u64,
    /// Days the guest keeps its log of prediction requests.
    pub request_log_days: f64,
    /// A host ends a serving session idle this long (the guest opens a new one first).
    pub idle_session_secs: u64,
    /// Most serving sessions one partner may hold open on this node.
    pub max_sessions_per_partner: usize,
}

impl Default for ServingSettings {
    fn default() -> Self {
        ServingSettings {
            max_table_rows: 5_000_000,
            max_table_mb: 2048,
            max_batch: 1000,
            default_timeout_ms: 3000,
            request_log_days: 30.0,
            idle_session_secs: 600,
            max_sessions_per_partner: 16,
        }
    }
}

impl ServingSettings {
    pub fn from_config(tables: &toml::Table) -> Result<ServingSettings, String> {
        let s: ServingSettings = match tables.get("serving") {
            None => ServingSettings::default(),
            Some(t) => t
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| format!("[serving]: {e}"))?,
        };
        if s.max_batch == 0 || s.max_batch > 100_000 {
            return Err(format!(
                "[serving] max_batch = {} is outside 1..=100000",
                s.max_batch
            ));
        }
        if s.default_timeout_ms == 0 || s.idle_session_secs < 2 || s.max_sessions_per_partner == 0 {
            return Err("[serving] default_timeout_ms, max_sessions_per_partner must be positive and idle_session_secs at least 2".into());
        }
        if !(s.request_log_days > 0.0 && s.request_log_days <= 3650.0) {
            return Err(format!(
                "[serving] request_log_days = {} is outside (0, 3650]",
                s.request_log_days
            ));
        }
        Ok(s)
    }

    fn limits(&self) -> TableLimits {
        TableLimits {
            max_rows: self.max_table_rows,
            max_bytes: self.max_table_mb.saturating_mul(1 << 20),
        }
    }
}

/// Which part of a model: this party's version of `model` trained by `job_id`'s `task`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    pub model: String,
    pub job_id: String,
    pub task: String,
}

impl PartRef {
    fn of(rec: &ModelRecord) -> PartRef {
        PartRef {
            model: rec.name.clone(),
            job_id: rec.lineage.job_id.clone(),
            task: rec.lineage.task.clone(),
        }
    }

    fn check(&self) -> Result<(), String> {
        for (what, v) in [
            ("model", &self.model),
            ("job", &self.job_id),
            ("task", &self.task),
        ] {
            if v.is_empty() || v.len() > MAX_NAME || v.chars().any(char::is_control) {
                return Err(format!("malformed {what} name"));
            }
        }
        Ok(())
    }
}

/// Control-plane messages of model services (inside [`Control::Serving`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum ServingMsg {
    /// Guest → host: serve your part of this model in `service`.
    Propose {
        service: String,
        deployment: String,
        kind: String,
        part: PartRef,
        transform: Option<PartRef>,
        dataset: Option<String>,
        generation: u32,
    },
    /// Host → guest: approved (loaded and serving) or refused.
    Decision {
        service: String,
        deployment: String,
        approved: bool,
        reason: Option<String>,
    },
    /// Guest → host: load the part of another training of the same model as `generation`.
    Switch {
        service: String,
        deployment: String,
        generation: u32,
        part: PartRef,
    },
    /// Host → guest: the switch's part is loaded (`problem`: why not).
    SwitchReady {
        service: String,
        deployment: String,
        generation: u32,
        problem: Option<String>,
    },
    /// Guest → host: `generation` answers from now on; drop the others but the previous.
    Activate {
        service: String,
        deployment: String,
        generation: u32,
    },
    /// Either side: the service ends (guest: undeployed; host: withdrawn).
    Undeploy {
        service: String,
        deployment: String,
        reason: String,
    },
    /// Guest → host: open a serving session (`session` is its scope).
    Open {
        service: String,
        deployment: String,
        session: String,
    },
    Ready {
        session: String,
    },
    Refused {
        session: String,
        reason: String,
    },
    /// Guest → host: the guest gave up on this session.
    Close {
        session: String,
    },
}

/// A loaded model part.
pub(crate) enum Part {
    SbGuest(ferry_secureboost::GuestModel),
    SbHost(ferry_secureboost::HostModel),
    LrGuest(ferry_linear::ModelPart),
    LrHost(ferry_linear::ModelPart),
}

impl Part {
    fn parse(kind: &str, payload: &[u8], role: Role) -> Result<Part, String> {
        use ferry_ml::FederatedModel;
        match kind {
            SECUREBOOST_KIND => {
                let part =
                    ferry_secureboost::ModelPart::from_bytes(payload).map_err(|e| e.to_string())?;
                match (part, role) {
                    (ferry_secureboost::ModelPart::Guest(g), Role::Guest) => Ok(Part::SbGuest(g)),
                    (ferry_secureboost::ModelPart::Host(h), Role::Host) => Ok(Part::SbHost(h)),
                    _ => Err(format!("the stored part is not a {role} part")),
                }
            }
            LR_KIND => {
                let part =
                    ferry_linear::ModelPart::from_bytes(payload).map_err(|e| e.to_string())?;
                if part.role != role {
                    return Err(format!(
                        "the stored part is a {} part, not a {role} part",
                        part.role
                    ));
                }
                Ok(if role == Role::Guest {
                    Part::LrGuest(part)
                } else {
                    Part::LrHost(part)
                })
            }
            other => Err(format!(
                "model kind '{other}' cannot be served online (only {SECUREBOOST_KIND} and {LR_KIND})"
            )),
        }
    }

    /// The columns the part reads, in its order.
    fn columns(&self) -> &[String] {
        match self {
            Part::SbGuest(m) => &m.feature_names,
            Part::SbHost(m) => &m.feature_names,
            Part::LrGuest(m) | Part::LrHost(m) => &m.feature_names,
        }
    }

    /// What the host reveals per id, for the privacy statement.
    fn host_reveals(kind: &str) -> &'static str {
        if kind == SECUREBOOST_KIND {
            "for each id asked, one bit per split it owns in the model (left or right; an id it \
             does not have goes each split's missing direction, so its absence is not revealed)"
        } else {
            "for each id asked, its partial score w·x over its own columns, or that it has no \
             complete row for the id"
        }
    }
}

/// One generation (version) of a service at this party.
pub(crate) struct Loaded {
    pub generation: u32,
    /// This party's version number of the model.
    pub version: u32,
    pub part: Part,
    pub transform: Option<Arc<FittedTransform>>,
    /// `None` on a guest that takes its features inline only.
    pub table: RwLock<Option<Arc<FeatureTable>>>,
}

impl Loaded {
    pub fn table(&self) -> Option<Arc<FeatureTable>> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A service as it is held in memory.
pub(crate) struct Live {
    pub name: String,
    pub deployment: String,
    pub role: Role,
    pub guest: PartyId,
    /// Guest: the hosts, in the training job's order (the order LR adds partial scores).
    pub hosts: Vec<PartyId>,
    pub timeout: Duration,
    pub dataset: Option<String>,
    /// Answering (guest: once every host approved).
    pub active: RwLock<Option<Arc<Loaded>>>,
    /// Guest: the generation being switched to. Host: that one and the previous one.
    pub others: Mutex<Vec<Arc<Loaded>>>,
}

impl Live {
    pub fn active(&self) -> Option<Arc<Loaded>> {
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn generation(&self, g: u32) -> Option<Arc<Loaded>> {
        if let Some(a) = self.active().filter(|a| a.generation == g) {
            return Some(a);
        }
        lock(&self.others)
            .iter()
            .find(|l| l.generation == g)
            .cloned()
    }

    fn all_loaded(&self) -> Vec<Arc<Loaded>> {
        let mut v: Vec<_> = self.active().into_iter().collect();
        v.extend(lock(&self.others).iter().cloned());
        v
    }
}

/// What the node keeps with a service record (`detail` in the store).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Detail {
    /// The generation that answers.
    pub generation: u32,
    /// The part that answers.
    pub part: Option<PartRef>,
    /// This party's transform (its model name and version), if the service has one.
    pub transform: Option<(String, u32)>,
    /// The transform as the guest's proposal named it (lineage).
    pub transform_ref: Option<PartRef>,
    /// Guest: each host's decision.
    #[serde(default)]
    pub hosts: Vec<HostState>,
    pub timeout_ms: u64,
    /// A switch under way.
    pub switching: Option<Switching>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    pub party: String,
    /// The dataset the proposal named for this host (`None`: the host's approver picks).
    pub dataset: Option<String>,
    /// `pending`, `approved` or `rejected`.
    pub decision: String,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Switching {
    pub generation: u32,
    pub version: u32,
    pub part: PartRef,
    /// Hosts that loaded it.
    pub ready: Vec<String>,
}

fn detail_of(rec: &ModelServiceRecord) -> Detail {
    serde_json::from_value(rec.detail.clone()).unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn cut(reason: &str) -> String {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

/// A deployment request (API and CLI).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The service's name.
    pub name: String,
    pub model: String,
    /// Default: the newest.
    #[serde(default)]
    pub version: Option<u32>,
    /// The guest's feature dataset (none: features come inline with each request).
    #[serde(default)]
    pub dataset: Option<String>,
    /// Per host, the dataset to propose (it must be granted to this node there); a host not
    /// named here picks its dataset when it approves.
    #[serde(default)]
    pub host_datasets: HashMap<String, String>,
    /// A stored `feature_transform` model (this node's part; each host uses its part of the
    /// same training).
    #[serde(default)]
    pub transform: Option<String>,
    #[serde(default)]
    pub transform_version: Option<u32>,
    /// How long to wait for a host's answer to a prediction (default `[serving]
    /// default_timeout_ms`).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// A service as `show` reports it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceView {
    pub service: ModelServiceRecord,
    /// Rows in this node's feature table of the answering version (`None`: none loaded).
    pub table_rows: Option<usize>,
    /// What each party learns from a prediction.
    pub privacy: Vec<String>,
}

/// The node's model services.
pub struct Serving {
    store: Arc<Store>,
    settings: ServingSettings,
    live: RwLock<HashMap<String, Arc<Live>>>,
    pub(crate) online: online::OnlineState,
}

impl Serving {
    /// Loads every active service of the store (parts and feature tables); one that fails to
    /// load is marked failed with the reason.
    pub fn open(store: Arc<Store>, config: &toml::Table) -> Result<Arc<Serving>, NodeError> {
        let settings = ServingSettings::from_config(config).map_err(NodeError::Invalid)?;
        let serving = Arc::new(Serving {
            store,
            settings,
            live: RwLock::new(HashMap::new()),
            online: online::OnlineState::default(),
        });
        for mut rec in serving.store.list_model_services()? {
            if rec.status != ModelServiceStatus::Active {
                continue;
            }
            match serving.restore(&rec) {
                Ok(live) => {
                    serving.insert_live(live);
                }
                Err(e) => {
                    tracing::warn!("model service '{}' could not be loaded: {e}", rec.name);
                    rec.status = ModelServiceStatus::Failed;
                    rec.reason = Some(format!("not loaded at start-up: {e}"));
                    let _ = serving.store.update_model_service(&rec);
                }
            }
        }
        online::spawn_flusher(&serving);
        Ok(serving)
    }

    pub fn settings(&self) -> &ServingSettings {
        &self.settings
    }

    pub(crate) fn live(&self, name: &str) -> Option<Arc<Live>> {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn insert_live(&self, live: Live) -> Arc<Live> {
        let live = Arc::new(live);
        self.live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(live.name.clone(), live.clone());
        live
    }

    fn remove_live(&self, name: &str) {
        self.live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.online.forget_service(name);
    }

    /// Loads an active service from its record.
    fn restore(&self, rec: &ModelServiceRecord) -> Result<Live, String> {
        let d = detail_of(rec);
        let role = if rec.role == "guest" {
            Role::Guest
        } else {
            Role::Host
        };
        let (mrec, payload) = match (&d.part, role) {
            (Some(r), Role::Host) => find_part(&self.store, r)?,
            _ => self
                .store
                .load_model(&rec.model, Some(rec.version))
                .map_err(|e| e.to_string())?,
        };
        let transform = match &d.transform {
            Some((name, v)) => Some(Arc::new(load_transform(&self.store, name, Some(*v))?.1)),
            None => None,
        };
        let loaded = self.load(
            &rec.kind,
            role,
            d.generation,
            &mrec,
            &payload,
            transform,
            rec.dataset.as_deref(),
        )?;
        Ok(Live {
            name: rec.name.clone(),
            deployment: rec.deployment_id.clone(),
            role,
            guest: PartyId::new(&rec.guest).map_err(|e| e.to_string())?,
            hosts: d
                .hosts
                .iter()
                .filter_map(|h| PartyId::new(&h.party).ok())
                .collect(),
            timeout: Duration::from_millis(d.timeout_ms.max(1)),
            dataset: rec.dataset.clone(),
            active: RwLock::new(Some(Arc::new(loaded))),
            others: Mutex::new(Vec::new()),
        })
    }

    /// Parses a part and builds its feature table.
    #[allow(clippy::too_many_arguments)]
    fn load(
        &self,
        kind: &str,
        role: Role,
        generation: u32,
        mrec: &ModelRecord,
        payload: &[u8],
        transform: Option<Arc<FittedTransform>>,
        dataset: Option<&str>,
    ) -> Result<Loaded, String> {
        let part = Part::parse(kind, payload, role)
            .map_err(|e| format!("model '{}' v{}: {e}", mrec.name, mrec.version))?;
        let table = match dataset {
            Some(d) => {
                let drec = self.store.dataset(d).map_err(|e| e.to_string())?;
                Some(Arc::new(FeatureTable::build(
                    self.store.data_files(),
                    &drec,
                    part.columns(),
                    transform.as_deref(),
                    self.settings.limits(),
                )?))
            }
            None => None,
        };
        Ok(Loaded {
            generation,
            version: mrec.version,
            part,
            transform,
            table: RwLock::new(table),
        })
    }

    /// A dataset was registered again: every service reading it rebuilds its tables in the
    /// background; requests keep using the old table until the new one is swapped in.
    pub fn dataset_changed(self: &Arc<Self>, dataset: &str) {
        let affected: Vec<Arc<Live>> = self
            .live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|l| l.dataset.as_deref() == Some(dataset))
            .cloned()
            .collect();
        for live in affected {
            let serving = self.clone();
            let dataset = dataset.to_string();
            std::thread::spawn(move || {
                for loaded in live.all_loaded() {
                    let built = serving
                        .store
                        .dataset(&dataset)
                        .map_err(|e| e.to_string())
                        .and_then(|drec| {
                            FeatureTable::build(
                                serving.store.data_files(),
                                &drec,
                                loaded.part.columns(),
                                loaded.transform.as_deref(),
                                serving.settings.limits(),
                            )
                        });
                    match built {
                        Ok(t) => {
                            tracing::info!(
                                "model service '{}': feature table rebuilt from '{dataset}' ({} rows)",
                                live.name,
                                t.len()
                            );
                            *loaded.table.write().unwrap_or_else(|p| p.into_inner()) =
                                Some(Arc::new(t));
                        }
                        Err(e) => tracing::warn!(
                            "model service '{}': the feature table of '{dataset}' was not rebuilt \
                             (the previous one keeps answering): {e}",
                            live.name
                        ),
                    }
                }
            });
        }
    }

    /// Every service, by name (counters flushed first).
    pub fn list(&self) -> Result<Vec<ModelServiceRecord>, NodeError> {
        self.online.flush(&self.store);
        Ok(self.store.list_model_services()?)
    }

    pub fn show(&self, name: &str) -> Result<ServiceView, NodeError> {
        self.online.flush(&self.store);
        let service = self.store.model_service(name)?;
        let table_rows = self
            .live(name)
            .and_then(|l| l.active())
            .and_then(|a| a.table())
            .map(|t| t.len());
        let privacy = privacy_statement(&service);
        Ok(ServiceView {
            service,
            table_rows,
            privacy,
        })
    }

    /// Host records waiting for this node's approval.
    pub fn pending_deployments(&self) -> Result<Vec<ModelServiceRecord>, NodeError> {
        Ok(self
            .store
            .list_model_services()?
            .into_iter()
            .filter(|s| s.role == "host" && s.status == ModelServiceStatus::PendingApproval)
            .collect())
    }
}

/// The approval view's lines for a partner's deployment.
pub fn deployment_security_view(rec: &ModelServiceRecord) -> Vec<String> {
    let d = detail_of(rec);
    let mut v = vec![format!(
        "serves this node's part of model '{}' ({}, trained by job {}) to '{}' for online \
         prediction as service '{}'",
        rec.model,
        rec.kind,
        d.part.as_ref().map(|p| p.job_id.as_str()).unwrap_or("?"),
        rec.guest,
        rec.name
    )];
    v.push(match &rec.dataset {
        Some(ds) => format!("feature dataset: '{ds}' (granted to '{}')", rec.guest),
        None => "feature dataset: not named; the approver picks one (POST \
                 /api/v1/services/{name}/approve {\"dataset\": ...})"
            .into(),
    });
    if let Some(t) = &d.transform_ref {
        v.push(format!(
            "feature transform: this node's part of '{}' (job {})",
            t.model, t.job_id
        ));
    }
    v.extend(privacy_statement(rec));
    v
}

/// What each party learns, for the service's privacy report.
pub fn privacy_statement(rec: &ModelServiceRecord) -> Vec<String> {
    vec![
        format!(
            "each host learns the ids the guest '{}' asks about, when, and how many (not the \
             guest's features or the scores)",
            rec.guest
        ),
        format!(
            "each host reveals to the guest {}",
            Part::host_reveals(&rec.kind)
        ),
        "hosts count requests and ids per service; the guest logs request ids (who asked, how \
         many ids, outcome), never the ids asked, features or scores"
            .into(),
    ]
}

/// This party's part of `r` (the newest version of `r.model` trained by that job and task),
/// with its signature checked.
fn find_part(store: &Store, r: &PartRef) -> Result<(ModelRecord, Vec<u8>), String> {
    let version = store
        .list_models()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|m| m.name == r.model && m.lineage.job_id == r.job_id && m.lineage.task == r.task)
        .map(|m| m.version)
        .max()
        .ok_or_else(|| {
            format!(
                "this node has no part of model '{}' trained by job {} (task {})",
                r.model, r.job_id, r.task
            )
        })?;
    store
        .load_model(&r.model, Some(version))
        .map_err(|e| e.to_string())
}

fn load_transform(
    store: &Store,
    name: &str,
    version: Option<u32>,
) -> Result<(ModelRecord, FittedTransform), String> {
    let (rec, payload) = store.load_model(name, version).map_err(|e| e.to_string())?;
    parse_transform(rec, &payload)
}

fn parse_transform(
    rec: ModelRecord,
    payload: &[u8],
) -> Result<(ModelRecord, FittedTransform), String> {
    if rec.kind != crate::components::feature_transform::KIND {
        return Err(format!(
            "model '{}' is a {}, not a feature_transform",
            rec.name, rec.kind
        ));
    }
    let text = std::str::from_utf8(payload).map_err(|e| e.to_string())?;
    let t = FittedTransform::from_json(text).map_err(|e| e.to_string())?;
    Ok((rec, t))
}

fn new_deployment_id() -> String {
    use rand::RngExt;
    let n: u128 = rand::rng().random();
    format!("{DEPLOYMENT_PREFIX}{n:032x}")
}

fn valid_deployment_id(id: &str) -> bool {
    id.strip_prefix(DEPLOYMENT_PREFIX)
        .is_some_and(|r| r.len() == 32 && r.chars().all(|c| c.is_ascii_hexdigit()))
}

impl Node {
    /// Model services (deployment and online inference).
    pub fn serving(&self) -> &Arc<Serving> {
        self.serving_state()
    }

    fn send_serving(&self, to: &PartyId, msg: ServingMsg) {
        self.send(to, &Control::Serving { msg });
    }

    /// Guest: deploys `req.model` as service `req.name` and proposes it to the hosts.
    pub fn deploy_model(
        self: &Arc<Self>,
        req: &DeployRequest,
        actor: &str,
    ) -> Result<ModelServiceRecord, NodeError> {
        let serving = self.serving().clone();
        let store = serving.store.clone();
        ferry_store::validate_name("service", &req.name)?;
        if let Some(existing) = store.find_model_service(&req.name)?
            && !existing.status.is_ended()
        {
            return Err(NodeError::Invalid(format!(
                "service '{}' already exists ({}): undeploy it first, or switch its version \
                 (ferry service switch)",
                req.name, existing.status
            )));
        }
        let (mrec, payload) = store.load_model(&req.model, req.version)?;
        if mrec.role != "guest" {
            return Err(NodeError::Invalid(format!(
                "model '{}' v{} is this node's {} part: only the guest deploys a model (the node \
                 that holds its guest part)",
                mrec.name, mrec.version, mrec.role
            )));
        }
        let hosts = self.model_hosts(&mrec, &payload)?;
        for party in req.host_datasets.keys() {
            if !hosts.iter().any(|h| h.as_str() == party) {
                return Err(NodeError::Invalid(format!(
                    "'{party}' (in host_datasets) holds no part of model '{}'; its hosts are: {}",
                    mrec.name,
                    hosts
                        .iter()
                        .map(|h| h.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        if let Some(d) = &req.dataset {
            store.dataset(d)?;
        }
        let (transform, transform_ref, fitted) = match &req.transform {
            Some(name) => {
                let (trec, t) = load_transform(&store, name, req.transform_version)
                    .map_err(NodeError::Invalid)?;
                (
                    Some((trec.name.clone(), trec.version)),
                    Some(PartRef::of(&trec)),
                    Some(Arc::new(t)),
                )
            }
            None => (None, None, None),
        };
        let timeout_ms = req
            .timeout_ms
            .unwrap_or(serving.settings.default_timeout_ms)
            .clamp(1, 600_000);
        let generation = 1;
        let loaded = serving
            .load(
                &mrec.kind,
                Role::Guest,
                generation,
                &mrec,
                &payload,
                fitted,
                req.dataset.as_deref(),
            )
            .map_err(NodeError::Invalid)?;
        let deployment = new_deployment_id();
        let detail = Detail {
            generation,
            part: Some(PartRef::of(&mrec)),
            transform,
            transform_ref: transform_ref.clone(),
            hosts: hosts
                .iter()
                .map(|h| HostState {
                    party: h.to_string(),
                    dataset: req.host_datasets.get(h.as_str()).cloned(),
                    decision: "pending".into(),
                    reason: None,
                })
                .collect(),
            timeout_ms,
            switching: None,
        };
        let status = if hosts.is_empty() {
            ModelServiceStatus::Active
        } else {
            ModelServiceStatus::PendingApproval
        };
        let rec = ModelServiceRecord {
            name: req.name.clone(),
            role: "guest".into(),
            guest: self.party().to_string(),
            deployment_id: deployment.clone(),
            model: mrec.name.clone(),
            version: mrec.version,
            pending_version: None,
            kind: mrec.kind.clone(),
            status,
            reason: None,
            dataset: req.dataset.clone(),
            detail: serde_json::to_value(&detail).expect("detail serialises"),
            created_by: actor.to_string(),
            created_at: String::new(),
            updated_at: String::new(),
            requests: 0,
            ids: 0,
            errors: 0,
            last_request_at: None,
        };
        store.put_model_service(&rec)?;
        let loaded = Arc::new(loaded);
        serving.insert_live(Live {
            name: req.name.clone(),
            deployment: deployment.clone(),
            role: Role::Guest,
            guest: self.party().clone(),
            hosts: hosts.clone(),
            timeout: Duration::from_millis(timeout_ms),
            dataset: req.dataset.clone(),
            // Answers only once every host approved.
            active: RwLock::new(hosts.is_empty().then(|| loaded.clone())),
            others: Mutex::new(if hosts.is_empty() {
                Vec::new()
            } else {
                vec![loaded]
            }),
        });
        for h in &hosts {
            self.send_serving(
                h,
                ServingMsg::Propose {
                    service: req.name.clone(),
                    deployment: deployment.clone(),
                    kind: mrec.kind.clone(),
                    part: PartRef::of(&mrec),
                    transform: transform_ref.clone(),
                    dataset: req.host_datasets.get(h.as_str()).cloned(),
                    generation,
                },
            );
        }
        Ok(store.model_service(&req.name)?)
    }

    /// The hosts of a guest part, in the training job's roster order.
    fn model_hosts(&self, mrec: &ModelRecord, payload: &[u8]) -> Result<Vec<PartyId>, NodeError> {
        let job = self.store().job(&mrec.lineage.job_id).map_err(|_| {
            NodeError::Invalid(format!(
                "model '{}' v{} was trained by job {}, which this node has no record of: the \
                 hosts of a deployment come from the training job",
                mrec.name, mrec.version, mrec.lineage.job_id
            ))
        })?;
        let roster = crate::dsl::JobSpec::parse(&job.spec_json)?.roster()?;
        let hosts = roster.hosts();
        if mrec.kind == SECUREBOOST_KIND
            && let Ok(Part::SbGuest(g)) = Part::parse(&mrec.kind, payload, Role::Guest)
        {
            // Only hosts that own splits are needed, but all of the job's are asked so that an
            // id's decisions never depend on which hosts happen to be reachable.
            for needed in &g.hosts {
                if !hosts.iter().any(|h| h.as_str() == needed) {
                    return Err(NodeError::Invalid(format!(
                        "model '{}' needs host '{needed}', which is not in job {}",
                        mrec.name, mrec.lineage.job_id
                    )));
                }
            }
        }
        Ok(hosts)
    }

    /// Guest: switches `name` to `version` of its model (rollback: the same with an older
    /// version). The current version answers until every host has loaded the new one; waits
    /// up to `wait` for that.
    pub fn switch_service(
        self: &Arc<Self>,
        name: &str,
        version: u32,
        wait: Duration,
    ) -> Result<ModelServiceRecord, NodeError> {
        let serving = self.serving().clone();
        let store = serving.store.clone();
        let mut rec = store.model_service(name)?;
        if rec.role != "guest" {
            return Err(NodeError::Invalid(format!(
                "service '{name}' is served here for '{}': only the guest switches versions",
                rec.guest
            )));
        }
        if rec.status != ModelServiceStatus::Active {
            return Err(NodeError::Invalid(format!(
                "service '{name}' is {}: only an active service switches versions",
                rec.status
            )));
        }
        let live = serving
            .live(name)
            .ok_or_else(|| NodeError::Invalid(format!("service '{name}' is not loaded")))?;
        let (mrec, payload) = store.load_model(&rec.model, Some(version))?;
        if mrec.kind != rec.kind || mrec.role != "guest" {
            return Err(NodeError::Invalid(format!(
                "model '{}' v{version} is a {} {} part; the service serves {} guest parts",
                rec.model, mrec.kind, mrec.role, rec.kind
            )));
        }
        let hosts = self.model_hosts(&mrec, &payload)?;
        if hosts != live.hosts {
            return Err(NodeError::Invalid(format!(
                "model '{}' v{version} was trained with hosts [{}] but the service's hosts are \
                 [{}]: deploy it as a new service",
                rec.model,
                hosts
                    .iter()
                    .map(|h| h.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                live.hosts
                    .iter()
                    .map(|h| h.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut d = detail_of(&rec);
        let transform = match &d.transform {
            Some((n, v)) => Some(Arc::new(
                load_transform(&store, n, Some(*v))
                    .map_err(NodeError::Invalid)?
                    .1,
            )),
            None => None,
        };
        let generation = d
            .generation
            .max(d.switching.as_ref().map_or(0, |s| s.generation))
            + 1;
        let loaded = Arc::new(
            serving
                .load(
                    &rec.kind,
                    Role::Guest,
                    generation,
                    &mrec,
                    &payload,
                    transform,
                    rec.dataset.as_deref(),
                )
                .map_err(NodeError::Invalid)?,
        );
        {
            let mut others = lock(&live.others);
            others.clear();
            others.push(loaded.clone());
        }
        let part = PartRef::of(&mrec);
        d.switching = Some(Switching {
            generation,
            version,
            part: part.clone(),
            ready: Vec::new(),
        });
        rec.pending_version = Some(version);
        rec.reason = None;
        rec.detail = serde_json::to_value(&d).expect("detail serialises");
        store.update_model_service(&rec)?;
        if live.hosts.is_empty() {
            self.complete_switch(&live, generation);
        }
        for h in &live.hosts {
            self.send_serving(
                h,
                ServingMsg::Switch {
                    service: name.to_string(),
                    deployment: live.deployment.clone(),
                    generation,
                    part: part.clone(),
                },
            );
        }
        let deadline = std::time::Instant::now() + wait;
        loop {
            let now = store.model_service(name)?;
            if now.pending_version.is_none() || std::time::Instant::now() >= deadline {
                return Ok(now);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Guest: every host loaded `generation`: it answers from now on.
    fn complete_switch(&self, live: &Arc<Live>, generation: u32) {
        let store = self.store();
        let Ok(mut rec) = store.model_service(&live.name) else {
            return;
        };
        let mut d = detail_of(&rec);
        let Some(sw) = d.switching.take().filter(|s| s.generation == generation) else {
            return;
        };
        let next = lock(&live.others)
            .iter()
            .find(|l| l.generation == generation)
            .cloned();
        let Some(next) = next else {
            return;
        };
        *live.active.write().unwrap_or_else(|p| p.into_inner()) = Some(next);
        lock(&live.others).clear();
        d.generation = generation;
        d.part = Some(sw.part);
        rec.version = sw.version;
        rec.pending_version = None;
        rec.detail = serde_json::to_value(&d).expect("detail serialises");
        let _ = store.update_model_service(&rec);
        tracing::info!(
            "model service '{}' answers with version {} now",
            live.name,
            sw.version
        );
        for h in &live.hosts {
            self.send_serving(
                h,
                ServingMsg::Activate {
                    service: live.name.clone(),
                    deployment: live.deployment.clone(),
                    generation,
                },
            );
        }
    }

    /// Undeploys a service. On the guest: it stops answering and the hosts are told. On a
    /// host: this node withdraws its part (the guest is told; its predictions then fail).
    pub fn undeploy_service(
        &self,
        name: &str,
        reason: &str,
    ) -> Result<ModelServiceRecord, NodeError> {
        let serving = self.serving().clone();
        let mut rec = serving.store.model_service(name)?;
        if rec.status.is_ended() {
            return Err(NodeError::Invalid(format!(
                "service '{name}' is already {}",
                rec.status
            )));
        }
        let hosts: Vec<PartyId> = detail_of(&rec)
            .hosts
            .iter()
            .filter_map(|h| PartyId::new(&h.party).ok())
            .collect();
        rec.status = ModelServiceStatus::Undeployed;
        rec.reason = Some(cut(reason));
        rec.pending_version = None;
        serving.store.update_model_service(&rec)?;
        serving.remove_live(name);
        let msg = |_| ServingMsg::Undeploy {
            service: name.to_string(),
            deployment: rec.deployment_id.clone(),
            reason: cut(reason),
        };
        if rec.role == "guest" {
            for h in &hosts {
                self.send_serving(h, msg(()));
            }
        } else if let Ok(g) = PartyId::new(&rec.guest) {
            self.send_serving(&g, msg(()));
        }
        Ok(rec)
    }

    /// Host: approves a partner's deployment (by service name or deployment id), with the
    /// dataset that feeds it (needed if the proposal named none).
    pub fn approve_deployment(
        &self,
        id: &str,
        dataset: Option<&str>,
        actor: &str,
    ) -> Result<ModelServiceRecord, NodeError> {
        let rec = self.pending_deployment(id)?;
        let dataset = match (dataset, &rec.dataset) {
            (Some(d), _) => d.to_string(),
            (None, Some(d)) => d.clone(),
            (None, None) => {
                return Err(NodeError::Invalid(format!(
                    "the deployment of service '{}' names no dataset of this node: approve it \
                     with the dataset that feeds it ({{\"dataset\": \"...\"}}, --dataset)",
                    rec.name
                )));
            }
        };
        self.store().dataset(&dataset)?;
        tracing::info!("{actor} approves the deployment of service '{}'", rec.name);
        let name = rec.name.clone();
        self.activate_host_service(rec, &dataset);
        Ok(self.store().model_service(&name)?)
    }

    fn pending_deployment(&self, id: &str) -> Result<ModelServiceRecord, NodeError> {
        let rec = if valid_deployment_id(id) {
            self.store()
                .list_model_services()?
                .into_iter()
                .find(|s| s.deployment_id == id)
                .ok_or_else(|| NodeError::Invalid(format!("no deployment {id} on this node")))?
        } else {
            self.store().model_service(id)?
        };
        if rec.role != "host" || rec.status != ModelServiceStatus::PendingApproval {
            return Err(NodeError::Invalid(format!(
                "service '{}' is not a partner's deployment waiting for approval (it is {} here)",
                rec.name, rec.status
            )));
        }
        Ok(rec)
    }

    /// Host: refuses a partner's deployment; the guest is told the reason.
    pub fn reject_deployment(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<ModelServiceRecord, NodeError> {
        let mut rec = self.pending_deployment(id)?;
        rec.status = ModelServiceStatus::Rejected;
        rec.reason = Some(cut(reason));
        self.store().update_model_service(&rec)?;
        if let Ok(g) = PartyId::new(&rec.guest) {
            self.send_serving(
                &g,
                ServingMsg::Decision {
                    service: rec.name.clone(),
                    deployment: rec.deployment_id.clone(),
                    approved: false,
                    reason: Some(cut(reason)),
                },
            );
        }
        Ok(rec)
    }

    /// Host: loads the part and the table, marks the service active and tells the guest.
    fn activate_host_service(&self, mut rec: ModelServiceRecord, dataset: &str) {
        let serving = self.serving().clone();
        let d = detail_of(&rec);
        let outcome = (|| -> Result<Live, String> {
            let part = d.part.as_ref().ok_or("the record names no model part")?;
            let (mrec, payload) = find_part(&serving.store, part)?;
            let transform = match &d.transform {
                Some((n, v)) => Some(Arc::new(load_transform(&serving.store, n, Some(*v))?.1)),
                None => None,
            };
            let loaded = serving.load(
                &rec.kind,
                Role::Host,
                d.generation,
                &mrec,
                &payload,
                transform,
                Some(dataset),
            )?;
            rec.version = mrec.version;
            Ok(Live {
                name: rec.name.clone(),
                deployment: rec.deployment_id.clone(),
                role: Role::Host,
                guest: PartyId::new(&rec.guest).map_err(|e| e.to_string())?,
                hosts: Vec::new(),
                timeout: Duration::from_millis(serving.settings.default_timeout_ms),
                dataset: Some(dataset.to_string()),
                active: RwLock::new(Some(Arc::new(loaded))),
                others: Mutex::new(Vec::new()),
            })
        })();
        rec.dataset = Some(dataset.to_string());
        let (approved, reason) = match outcome {
            Ok(live) => {
                serving.insert_live(live);
                rec.status = ModelServiceStatus::Active;
                rec.reason = None;
                (true, None)
            }
            Err(e) => {
                tracing::warn!("model service '{}' could not be loaded: {e}", rec.name);
                rec.status = ModelServiceStatus::Failed;
                rec.reason = Some(cut(&e));
                // The guest learns that loading failed, not this node's details.
                (
                    false,
                    Some(format!(
                        "party '{}' could not load its part or its feature table (the reason is \
                         in its service record)",
                        self.party()
                    )),
                )
            }
        };
        if let Err(e) = self.store().update_model_service(&rec) {
            tracing::warn!("model service '{}': {e}", rec.name);
        }
        if let Ok(g) = PartyId::new(&rec.guest) {
            self.send_serving(
                &g,
                ServingMsg::Decision {
                    service: rec.name.clone(),
                    deployment: rec.deployment_id.clone(),
                    approved,
                    reason,
                },
            );
        }
    }

    /// A partner's model-service message.
    pub(crate) fn on_serving(self: &Arc<Self>, from: &PartyId, msg: ServingMsg) {
        match msg {
            ServingMsg::Propose {
                service,
                deployment,
                kind,
                part,
                transform,
                dataset,
                generation,
            } => {
                if let Err(reason) = self.on_deploy_proposal(
                    from,
                    &service,
                    &deployment,
                    &kind,
                    &part,
                    transform.as_ref(),
                    dataset.as_deref(),
                    generation,
                ) {
                    tracing::warn!(
                        "refused the deployment of service {} from '{from}': {reason}",
                        service.escape_debug()
                    );
                    if valid_deployment_id(&deployment) && service.len() <= MAX_NAME {
                        self.send_serving(
                            from,
                            ServingMsg::Decision {
                                service,
                                deployment,
                                approved: false,
                                reason: Some(reason),
                            },
                        );
                    }
                }
            }
            ServingMsg::Decision {
                service,
                deployment,
                approved,
                reason,
            } => self.on_deploy_decision(from, &service, &deployment, approved, reason),
            ServingMsg::Switch {
                service,
                deployment,
                generation,
                part,
            } => {
                let problem = self
                    .on_switch(from, &service, &deployment, generation, &part)
                    .err();
                if let Some(p) = &problem {
                    tracing::warn!(
                        "switch of service {} from '{from}' refused: {p}",
                        service.escape_debug()
                    );
                }
                if valid_deployment_id(&deployment) && service.len() <= MAX_NAME {
                    self.send_serving(
                        from,
                        ServingMsg::SwitchReady {
                            service,
                            deployment,
                            generation,
                            problem,
                        },
                    );
                }
            }
            ServingMsg::SwitchReady {
                service,
                deployment,
                generation,
                problem,
            } => self.on_switch_ready(from, &service, &deployment, generation, problem),
            ServingMsg::Activate {
                service,
                deployment,
                generation,
            } => {
                if let Some(live) = self.host_live(from, &service, &deployment)
                    && let Some(next) = live.generation(generation)
                {
                    let previous = live.active();
                    *live.active.write().unwrap_or_else(|p| p.into_inner()) = Some(next.clone());
                    // The previous generation stays for requests already in flight.
                    *lock(&live.others) = previous
                        .into_iter()
                        .filter(|p| p.generation != generation)
                        .collect();
                    if let Ok(mut rec) = self.store().model_service(&service) {
                        let mut d = detail_of(&rec);
                        if let Some(sw) = d.switching.take().filter(|s| s.generation == generation)
                        {
                            d.part = Some(sw.part);
                            rec.version = sw.version;
                        }
                        d.generation = generation;
                        rec.pending_version = None;
                        rec.detail = serde_json::to_value(&d).expect("detail serialises");
                        let _ = self.store().update_model_service(&rec);
                    }
                }
            }
            ServingMsg::Undeploy {
                service,
                deployment,
                reason,
            } => self.on_undeploy(from, &service, &deployment, &reason),
            ServingMsg::Open {
                service,
                deployment,
                session,
            } => self.on_serving_open(from, &service, &deployment, &session),
            ServingMsg::Ready { session } => self.serving().online.opened(from, &session, Ok(())),
            ServingMsg::Refused { session, reason } => {
                self.serving()
                    .online
                    .opened(from, &session, Err(cut(&reason)))
            }
            ServingMsg::Close { session } => {
                self.serving().online.close_host_session(from, &session)
            }
        }
    }

    /// The live host-side service `service` of guest `from` and deployment `deployment`.
    fn host_live(&self, from: &PartyId, service: &str, deployment: &str) -> Option<Arc<Live>> {
        self.serving()
            .live(service)
            .filter(|l| l.role == Role::Host && l.guest == *from && l.deployment == deployment)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_deploy_proposal(
        &self,
        from: &PartyId,
        service: &str,
        deployment: &str,
        kind: &str,
        part: &PartRef,
        transform: Option<&PartRef>,
        dataset: Option<&str>,
        generation: u32,
    ) -> Result<(), String> {
        let store = self.store().clone();
        if !valid_deployment_id(deployment) {
            return Err("malformed deployment id".into());
        }
        ferry_store::validate_name("service", service).map_err(|e| e.to_string())?;
        part.check()?;
        if let Some(t) = transform {
            t.check()?;
        }
        if kind != SECUREBOOST_KIND && kind != LR_KIND {
            return Err(format!(
                "model kind '{}' cannot be served online",
                kind.escape_debug()
            ));
        }
        if !self.policy().allows_component("predict") {
            return Err(format!(
                "party '{}' does not allow prediction ([policy] allowed_components)",
                self.party()
            ));
        }
        if let Some(existing) = store
            .find_model_service(service)
            .map_err(|e| e.to_string())?
            && (existing.role != "host"
                || existing.guest != from.as_str()
                || !existing.status.is_ended())
        {
            return Err(format!(
                "party '{}' already has a service named '{service}'",
                self.party()
            ));
        }
        // The model must come from a job this node took part in as a host, with the sender as
        // its guest, on this node's own record.
        let roster = store
            .job(&part.job_id)
            .ok()
            .and_then(|j| crate::dsl::JobSpec::parse(&j.spec_json).ok())
            .and_then(|s| s.roster().ok());
        let Some(roster) = roster else {
            return Err(format!(
                "party '{}' has no record of job {}",
                self.party(),
                part.job_id
            ));
        };
        if roster.role_of(from) != Some(Role::Guest)
            || roster.role_of(self.party()) != Some(Role::Host)
        {
            return Err(format!(
                "in job {} '{from}' is not the guest and '{}' not a host",
                part.job_id,
                self.party()
            ));
        }
        let (mrec, payload) = find_part(&store, part)?;
        if mrec.kind != kind {
            return Err(format!(
                "party '{}' holds a {} part of model '{}', not {kind}",
                self.party(),
                mrec.kind,
                part.model
            ));
        }
        Part::parse(kind, &payload, Role::Host)
            .map_err(|e| format!("party '{}': {e}", self.party()))?;
        let transform_own = match transform {
            Some(t) => {
                let (trec, payload) = find_part(&store, t)?;
                let (trec, _) = parse_transform(trec, &payload)?;
                Some((trec.name, trec.version))
            }
            None => None,
        };
        if let Some(ds) = dataset {
            let granted = store
                .grants(ds)
                .map(|g| g.contains(&ferry_store::GrantTarget::Party(from.to_string())))
                .unwrap_or(false);
            if !granted {
                return Err(format!(
                    "dataset '{ds}' is not granted to '{from}' on party '{}'",
                    self.party()
                ));
            }
        }
        let detail = Detail {
            generation,
            part: Some(part.clone()),
            transform: transform_own,
            transform_ref: transform.cloned(),
            hosts: Vec::new(),
            timeout_ms: self.serving().settings.default_timeout_ms,
            switching: None,
        };
        let rec = ModelServiceRecord {
            name: service.to_string(),
            role: "host".into(),
            guest: from.to_string(),
            deployment_id: deployment.to_string(),
            model: part.model.clone(),
            version: mrec.version,
            pending_version: None,
            kind: kind.to_string(),
            status: ModelServiceStatus::PendingApproval,
            reason: None,
            dataset: dataset.map(str::to_string),
            detail: serde_json::to_value(&detail).expect("detail serialises"),
            created_by: format!("partner:{from}"),
            created_at: String::new(),
            updated_at: String::new(),
            requests: 0,
            ids: 0,
            errors: 0,
            last_request_at: None,
        };
        store.put_model_service(&rec).map_err(|e| e.to_string())?;
        if self.dir().config.auto_approve
            && let Some(ds) = dataset
        {
            let rec = store.model_service(service).map_err(|e| e.to_string())?;
            self.activate_host_service(rec, ds);
        } else {
            tracing::info!(
                "the deployment of service '{service}' from '{from}' waits for approval ({deployment})"
            );
        }
        Ok(())
    }

    fn on_deploy_decision(
        &self,
        from: &PartyId,
        service: &str,
        deployment: &str,
        approved: bool,
        reason: Option<String>,
    ) {
        let Ok(Some(mut rec)) = self.store().find_model_service(service) else {
            return;
        };
        if rec.role != "guest" || rec.deployment_id != deployment {
            return;
        }
        let mut d = detail_of(&rec);
        let Some(h) = d.hosts.iter_mut().find(|h| h.party == from.as_str()) else {
            return;
        };
        h.decision = if approved { "approved" } else { "rejected" }.into();
        h.reason = reason.as_deref().map(cut);
        let all = d.hosts.iter().all(|h| h.decision == "approved");
        let live = self.serving().live(service);
        if !approved {
            rec.status = ModelServiceStatus::Rejected;
            rec.reason = Some(format!(
                "party '{from}' refused: {}",
                cut(reason.as_deref().unwrap_or("no reason given"))
            ));
            self.serving().remove_live(service);
            for other in d.hosts.iter().filter(|h| h.party != from.as_str()) {
                if let Ok(p) = PartyId::new(&other.party) {
                    self.send_serving(
                        &p,
                        ServingMsg::Undeploy {
                            service: service.to_string(),
                            deployment: deployment.to_string(),
                            reason: format!("party '{from}' refused the deployment"),
                        },
                    );
                }
            }
        } else if all && rec.status == ModelServiceStatus::PendingApproval {
            rec.status = ModelServiceStatus::Active;
            if let Some(live) = live {
                let first = lock(&live.others).pop();
                *live.active.write().unwrap_or_else(|p| p.into_inner()) = first;
            }
            tracing::info!("model service '{service}' is active");
        }
        rec.detail = serde_json::to_value(&d).expect("detail serialises");
        let _ = self.store().update_model_service(&rec);
    }

    fn on_switch(
        &self,
        from: &PartyId,
        service: &str,
        deployment: &str,
        generation: u32,
        part: &PartRef,
    ) -> Result<(), String> {
        part.check()?;
        let live = self.host_live(from, service, deployment).ok_or_else(|| {
            format!(
                "party '{}' serves no service '{service}' for '{from}'",
                self.party()
            )
        })?;
        let store = self.store().clone();
        let mut rec = store.model_service(service).map_err(|e| e.to_string())?;
        if part.model != rec.model {
            return Err(format!(
                "the service serves model '{}'; a switch to model '{}' needs a new deployment",
                rec.model, part.model
            ));
        }
        let roster = store
            .job(&part.job_id)
            .ok()
            .and_then(|j| crate::dsl::JobSpec::parse(&j.spec_json).ok())
            .and_then(|s| s.roster().ok())
            .ok_or_else(|| {
                format!(
                    "party '{}' has no record of job {}",
                    self.party(),
                    part.job_id
                )
            })?;
        if roster.role_of(from) != Some(Role::Guest) {
            return Err(format!("'{from}' is not the guest of job {}", part.job_id));
        }
        let (mrec, payload) = find_part(&store, part)?;
        let d = detail_of(&rec);
        let transform = match &d.transform {
            Some((n, v)) => Some(Arc::new(load_transform(&store, n, Some(*v))?.1)),
            None => None,
        };
        let loaded = self.serving().load(
            &rec.kind,
            Role::Host,
            generation,
            &mrec,
            &payload,
            transform,
            live.dataset.as_deref(),
        )?;
        {
            let mut others = lock(&live.others);
            others.retain(|l| l.generation != generation);
            others.push(Arc::new(loaded));
        }
        let mut d = d;
        d.switching = Some(Switching {
            generation,
            version: mrec.version,
            part: part.clone(),
            ready: Vec::new(),
        });
        rec.pending_version = Some(mrec.version);
        rec.detail = serde_json::to_value(&d).expect("detail serialises");
        store
            .update_model_service(&rec)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn on_switch_ready(
        &self,
        from: &PartyId,
        service: &str,
        deployment: &str,
        generation: u32,
        problem: Option<String>,
    ) {
        let Some(live) = self
            .serving()
            .live(service)
            .filter(|l| l.role == Role::Guest && l.deployment == deployment)
        else {
            return;
        };
        if !live.hosts.contains(from) {
            return;
        }
        let Ok(mut rec) = self.store().model_service(service) else {
            return;
        };
        let mut d = detail_of(&rec);
        let Some(sw) = d.switching.as_mut().filter(|s| s.generation == generation) else {
            return;
        };
        if let Some(p) = problem {
            // The switch is abandoned: the current version keeps answering.
            rec.reason = Some(format!(
                "switch to version {} failed: party '{from}': {}",
                sw.version,
                cut(&p)
            ));
            d.switching = None;
            rec.pending_version = None;
            lock(&live.others).clear();
            rec.detail = serde_json::to_value(&d).expect("detail serialises");
            let _ = self.store().update_model_service(&rec);
            let current = d.generation;
            for h in &live.hosts {
                self.send_serving(
                    h,
                    ServingMsg::Activate {
                        service: service.to_string(),
                        deployment: deployment.to_string(),
                        generation: current,
                    },
                );
            }
            return;
        }
        if !sw.ready.iter().any(|r| r == from.as_str()) {
            sw.ready.push(from.to_string());
        }
        let done = live
            .hosts
            .iter()
            .all(|h| sw.ready.iter().any(|r| r == h.as_str()));
        rec.detail = serde_json::to_value(&d).expect("detail serialises");
        let _ = self.store().update_model_service(&rec);
        if done {
            self.complete_switch(&live, generation);
        }
    }

    fn on_undeploy(&self, from: &PartyId, service: &str, deployment: &str, reason: &str) {
        let Ok(Some(mut rec)) = self.store().find_model_service(service) else {
            return;
        };
        if rec.deployment_id != deployment || rec.status.is_ended() {
            return;
        }
        let allowed = if rec.role == "host" {
            rec.guest == from.as_str()
        } else {
            detail_of(&rec)
                .hosts
                .iter()
                .any(|h| h.party == from.as_str())
        };
        if !allowed {
            return;
        }
        if rec.role == "host" {
            rec.status = ModelServiceStatus::Undeployed;
            rec.reason = Some(format!("undeployed by '{from}': {}", cut(reason)));
        } else {
            rec.status = ModelServiceStatus::Failed;
            rec.reason = Some(format!("party '{from}' withdrew its part: {}", cut(reason)));
        }
        self.serving().remove_live(service);
        let _ = self.store().update_model_service(&rec);
    }

    /// Approvals-list items for partners' deployments.
    pub(crate) fn pending_deployment_approvals(
        &self,
    ) -> Result<Vec<(ModelServiceRecord, Vec<String>)>, NodeError> {
        Ok(self
            .serving()
            .pending_deployments()?
            .into_iter()
            .map(|r| {
                let view = deployment_security_view(&r);
                (r, view)
            })
            .collect())
    }
}

/// For the API: the JSON of a list of records.
pub fn records_json(records: &[ModelServiceRecord]) -> serde_json::Value {
    json!(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_the_serving_table_and_are_checked() {
        let t: toml::Table = toml::from_str("[serving]\nmax_batch = 50\n").unwrap();
        let s = ServingSettings::from_config(&t).unwrap();
        assert_eq!(s.max_batch, 50);
        assert_eq!(s.max_table_rows, ServingSettings::default().max_table_rows);
        for bad in [
            "[serving]\nmax_batch = 0\n",
            "[serving]\nrequest_log_days = 0\n",
            "[serving]\nidle_session_secs = 1\n",
            "[serving]\nmax_rows = 1\n",
        ] {
            let t: toml::Table = toml::from_str(bad).unwrap();
            let e = ServingSettings::from_config(&t).unwrap_err();
            assert!(e.contains("[serving]"), "{bad}: {e}");
        }
    }

    #[test]
    fn deployment_ids_are_checked() {
        let id = new_deployment_id();
        assert!(valid_deployment_id(&id));
        assert!(!valid_deployment_id("deploy-xyz"));
        assert!(!valid_deployment_id(&id.replace("deploy-", "job-")));
        assert!(!valid_deployment_id(&format!("{id}0")));
    }
}
