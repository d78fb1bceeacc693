//! Anonymous query (匿踪查询) between nodes: a provider offers a **query service** over one of
//! its datasets, and a querier looks up ids in it without the provider learning which.
//!
//! The protocol is `ferry-pir` (an OPRF over Ristretto255 plus SimplePIR; its crate docs state
//! what each side learns). This module is what a node adds around it:
//!
//! * **Provider.** `publish` records a service (dataset, key column(s), value columns) and
//!   builds its PIR table in the background; the table file holds the OPRF key, so it is
//!   written 0600 under `data/query-services/<name>/v<version>.pir`. Re-registering the dataset
//!   (or `refresh`) builds the next version; sessions already running keep the version they
//!   started on (they hold it in memory), new sessions get the new one. A partner may query
//!   exactly when it holds a party grant on the dataset (`ferry dataset grant`), checked at
//!   every session, so revoking the grant stops it at once. The provider records per session
//!   only the partner, the table version, how many ids and when: it is never told the ids.
//! * **Querier.** `run_query` asks a pinned partner's service for a list of ids (each a tuple of
//!   the service's key columns), keeps the provider's hint per (provider, service) in memory so
//!   later queries skip the one-time download, and records every query with its result (a CSV:
//!   key columns, `found`, value columns) under `data/queries/<id>.csv`.
//!
//! Opening a session takes one control round trip: `query_open` (service name) → the provider
//! admits the session `<query id>/pir` for that partner only and answers `query_ready` (the
//! table version and the column names) or `query_refused` (a reason that names only what the
//! querier named). Then the PIR messages flow on that session.
//!
//! Values are the value columns' cells, each as a 2-byte little-endian length and its UTF-8
//! bytes ([`encode_values`]); every value of a table is padded to the longest, so all entries
//! look alike. A table whose values would exceed `[query] max_value_bytes` is refused, naming
//! the row.

use crate::node::{Control, Node, NodeError};
use ferry_context::{PartyId, Role, Roster, Transcript, Transport};
use ferry_pir::{HintCache, PirParams, ProviderTable, QueryLimits, ServeLimits, key_of};
use ferry_store::{
    BuiltTable, DataFormat, DatasetRecord, GrantTarget, NewQueryService, QueryFinish, QueryRecord,
    QueryServiceRecord, ServedSession, ServiceStatus, ServiceUsage, Store,
};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Directory (under the data directory) of the services' tables.
pub const SERVICE_DIR: &str = "query-services";
/// Directory (under the data directory) of the querier's results.
pub const RESULT_DIR: &str = "queries";
/// Prefix of every query id (and of its session).
pub const QUERY_ID_PREFIX: &str = "query-";
/// How long a querier waits for the provider to accept or refuse a session.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// `[query]` of `ferry.toml`: this node's limits as a provider and as a querier. Nothing a
/// partner sends can change them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuerySettings {
    /// Most rows a service's table may have; a larger dataset fails the build, naming the
    /// limit, and the serving version (if any) stays.
    pub max_rows: u64,
    /// Most bytes of a row's encoded value columns (2 bytes per column plus the text).
    pub max_value_bytes: u32,
    /// Average rows per PIR bucket (see `ferry_pir::PirParams::bucket_load`).
    pub bucket_load: u32,
    /// Most ids a partner may ask in one session: every id is one OPRF evaluation, which is
    /// what lets a querier test an id, so this is the limit on guessing.
    pub max_ids_per_session: u64,
    /// Most sessions one partner may have open at once on this node.
    pub max_sessions_per_partner: usize,
    /// Longest wait for one message of a session, on either side.
    pub session_timeout_secs: u64,
    /// Largest hint this node downloads as a querier.
    pub max_hint_bytes: u64,
}

impl Default for QuerySettings {
    fn default() -> Self {
        QuerySettings {
            max_rows: 10_000_000,
            max_value_bytes: 1024,
            bucket_load: PirParams::default().bucket_load,
            max_ids_per_session: ServeLimits::default().max_ids,
            max_sessions_per_partner: 4,
            session_timeout_secs: 300,
            max_hint_bytes: QueryLimits::default().max_hint_bytes,
        }
    }
}

impl QuerySettings {
    /// The `[query]` table of the node's configuration (defaults without one).
    pub fn from_config(tables: &toml::Table) -> Result<QuerySettings, String> {
        let settings: QuerySettings = match tables.get("query") {
            None => QuerySettings::default(),
            Some(table) => table
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| format!("[query]: {e}"))?,
        };
        settings
            .pir_params(0)
            .validate()
            .map_err(|e| format!("[query]: {e}"))?;
        if settings.max_value_bytes > ferry_pir::params::MAX_VALUE_LEN {
            return Err(format!(
                "[query] max_value_bytes = {} is above {}",
                settings.max_value_bytes,
                ferry_pir::params::MAX_VALUE_LEN
            ));
        }
        if settings.max_sessions_per_partner == 0 || settings.session_timeout_secs == 0 {
            return Err(
                "[query] max_sessions_per_partner and session_timeout_secs must be positive".into(),
            );
        }
        Ok(settings)
    }

    fn pir_params(&self, value_len: u32) -> PirParams {
        PirParams {
            value_len,
            bucket_load: self.bucket_load,
            max_rows: self.max_rows,
            ..PirParams::default()
        }
    }

    fn session_timeout(&self) -> Duration {
        Duration::from_secs(self.session_timeout_secs)
    }
}

/// A service's columns as the provider tells a querier that opens a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceColumns {
    pub version: u64,
    pub key_columns: Vec<String>,
    pub value_columns: Vec<String>,
}

/// One id's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryAnswer {
    /// The id as asked (one cell per key column).
    pub key: Vec<String>,
    pub found: bool,
    /// One cell per value column (empty when not found).
    pub values: Vec<String>,
}

/// What a querier gets back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub query: QueryRecord,
    pub key_columns: Vec<String>,
    pub value_columns: Vec<String>,
    pub answers: Vec<QueryAnswer>,
}

/// A service as `show` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    pub service: QueryServiceRecord,
    /// Parties holding a grant on the dataset: those that may query.
    pub partners: Vec<String>,
    pub usage: Vec<ServiceUsage>,
}

/// Encodes a row's value cells: per cell a 2-byte little-endian length and its bytes.
pub fn encode_values(cells: &[&str]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(cells.iter().map(|c| c.len() + 2).sum());
    for (i, cell) in cells.iter().enumerate() {
        let len = u16::try_from(cell.len())
            .map_err(|_| format!("value column {i} has {} bytes (at most 65535)", cell.len()))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(cell.as_bytes());
    }
    Ok(out)
}

/// Decodes what [`encode_values`] wrote, expecting `columns` cells that exactly fill `bytes`.
pub fn decode_values(bytes: &[u8], columns: usize) -> Result<Vec<String>, String> {
    let mut cells = Vec::with_capacity(columns);
    let mut rest = bytes;
    for i in 0..columns {
        let [a, b, tail @ ..] = rest else {
            return Err(format!("value column {i}: the length is cut off"));
        };
        let len = u16::from_le_bytes([*a, *b]) as usize;
        if tail.len() < len {
            return Err(format!(
                "value column {i}: {len} bytes announced, {} left",
                tail.len()
            ));
        }
        let text = std::str::from_utf8(&tail[..len])
            .map_err(|_| format!("value column {i} is not UTF-8"))?;
        cells.push(text.to_string());
        rest = &tail[len..];
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes after the {columns} value columns",
            rest.len()
        ));
    }
    Ok(cells)
}

/// A table row as the PIR table takes it: the key and the encoded value columns.
type KeyValue = (Vec<u8>, Vec<u8>);
/// What a query returns per id: the encoded value columns, or `None` if absent.
type FoundValue = Option<Vec<u8>>;

/// A version of a service's table, in memory, as sessions use it.
pub struct ServingTable {
    pub version: u64,
    pub dataset: String,
    pub key_columns: Vec<String>,
    pub value_columns: Vec<String>,
    pub table: ProviderTable,
}

/// A reply to `query_open`, routed from the control loop to the waiting querier.
enum OpenReply {
    Ready(ServiceColumns),
    Refused(String),
}

struct Pending {
    provider: PartyId,
    reply: mpsc::SyncSender<OpenReply>,
}

/// The node's query state: serving tables (provider), hints and sessions being opened
/// (querier).
pub struct QueryServices {
    store: Arc<Store>,
    settings: QuerySettings,
    serving: Mutex<HashMap<String, Arc<ServingTable>>>,
    /// One build at a time: builds are CPU-bound and use every core.
    build_lock: Mutex<()>,
    open_sessions: Mutex<HashMap<PartyId, usize>>,
    hints: Mutex<HashMap<(PartyId, String), HintCache>>,
    pending: Mutex<HashMap<String, Pending>>,
}

/// Counts a partner's open session until dropped.
struct SessionSlot {
    services: Arc<QueryServices>,
    partner: PartyId,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.services.open_sessions);
        if let Some(n) = open.get_mut(&self.partner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.partner);
            }
        }
    }
}

/// A poisoned lock only means a thread panicked while holding it; the maps stay consistent
/// (every update is a single insert or remove).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn table_file(service: &str, version: u64) -> String {
    format!("{SERVICE_DIR}/{service}/v{version}.pir")
}

impl QueryServices {
    /// Loads every service's serving table, removes table files no record refers to, fails
    /// queries an unclean stop left running, and rebuilds (in the background) the services
    /// whose dataset changed or whose build was interrupted.
    pub fn open(store: Arc<Store>, settings: QuerySettings) -> Result<Arc<Self>, NodeError> {
        let services = Arc::new(QueryServices {
            store,
            settings,
            serving: Mutex::new(HashMap::new()),
            build_lock: Mutex::new(()),
            open_sessions: Mutex::new(HashMap::new()),
            hints: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        });
        services
            .store
            .fail_unfinished_queries("the node stopped while the query was running")?;
        let records = services.store.list_query_services()?;
        let mut stale = Vec::new();
        for rec in &records {
            if let Some(file) = &rec.table_file {
                match services.load(rec, file) {
                    Ok(t) => {
                        lock(&services.serving).insert(rec.name.clone(), Arc::new(t));
                    }
                    Err(e) => {
                        tracing::warn!("query service '{}': {e}; rebuilding it", rec.name);
                        stale.push(rec.name.clone());
                        continue;
                    }
                }
            }
            let dataset_changed = services
                .store
                .dataset(&rec.dataset)
                .is_ok_and(|d| rec.dataset_sha256.as_deref() != Some(d.sha256.as_str()));
            if rec.status == ServiceStatus::Building || rec.table_file.is_none() || dataset_changed
            {
                stale.push(rec.name.clone());
            }
        }
        services.remove_stray_files(&records);
        for name in stale {
            services.spawn_build(&name);
        }
        Ok(services)
    }

    pub fn settings(&self) -> &QuerySettings {
        &self.settings
    }

    fn load(&self, rec: &QueryServiceRecord, file: &str) -> Result<ServingTable, String> {
        let path = self.store.data_path(file);
        // Encrypted at rest when the node encrypts its files (the table holds the OPRF key).
        let bytes = self
            .store
            .read_file_plain(&path)
            .map_err(|e| e.to_string())?;
        let params = self.settings.pir_params(rec.value_len as u32);
        let table = ProviderTable::from_bytes(&bytes, &params)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(ServingTable {
            version: rec.version,
            dataset: rec.dataset.clone(),
            key_columns: rec.key_columns.clone(),
            value_columns: rec.value_columns.clone(),
            table,
        })
    }

    /// Table files (and directories) of versions or services no record refers to.
    fn remove_stray_files(&self, records: &[QueryServiceRecord]) {
        let current: HashSet<std::path::PathBuf> = records
            .iter()
            .filter_map(|r| r.table_file.as_deref())
            .map(|f| self.store.data_path(f))
            .collect();
        let root = self.store.data_path(SERVICE_DIR);
        let Ok(dirs) = std::fs::read_dir(&root) else {
            return;
        };
        for dir in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                if !current.contains(&path) && std::fs::remove_file(&path).is_ok() {
                    tracing::warn!("removed {} (no query service uses it)", path.display());
                }
            }
            let _ = std::fs::remove_dir(dir.path()); // only if now empty
        }
    }

    /// Records a service and builds its first table (waiting for it with `wait`).
    pub fn publish(
        self: &Arc<Self>,
        new: NewQueryService,
        wait: bool,
    ) -> Result<QueryServiceRecord, NodeError> {
        let dataset = self.store.dataset(&new.dataset)?;
        check_columns(&dataset, &new.key_columns, &new.value_columns)?;
        self.store.create_query_service(&new)?;
        let build = self.spawn_build(&new.name);
        if wait {
            let _ = build.join();
        }
        Ok(self.store.query_service(&new.name)?)
    }

    /// Builds the next version of a service's table from its dataset as it is now.
    pub fn refresh(
        self: &Arc<Self>,
        name: &str,
        wait: bool,
    ) -> Result<QueryServiceRecord, NodeError> {
        self.store.query_service(name)?;
        let build = self.spawn_build(name);
        if wait {
            let _ = build.join();
        }
        Ok(self.store.query_service(name)?)
    }

    /// A dataset was registered again: every service over it builds its next version.
    pub fn dataset_changed(self: &Arc<Self>, dataset: &str) {
        let Ok(records) = self.store.list_query_services() else {
            return;
        };
        for rec in records.into_iter().filter(|r| r.dataset == dataset) {
            self.spawn_build(&rec.name);
        }
    }

    /// Deletes a service: new sessions are refused at once, running ones finish.
    pub fn delete(&self, name: &str) -> Result<(), NodeError> {
        let file = self.store.delete_query_service(name)?;
        lock(&self.serving).remove(name);
        if let Some(file) = file {
            let _ = std::fs::remove_file(self.store.data_path(&file));
        }
        let _ = std::fs::remove_dir(self.store.data_path(&format!("{SERVICE_DIR}/{name}")));
        Ok(())
    }

    pub fn show(&self, name: &str) -> Result<ServiceView, NodeError> {
        let service = self.store.query_service(name)?;
        let partners = self
            .store
            .grants(&service.dataset)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|g| match g {
                GrantTarget::Party(p) => Some(p),
                // Query services follow party grants only: a job or project grant is for jobs.
                _ => None,
            })
            .collect();
        let usage = self.store.service_usage(name)?;
        Ok(ServiceView {
            service,
            partners,
            usage,
        })
    }

    fn spawn_build(self: &Arc<Self>, name: &str) -> std::thread::JoinHandle<()> {
        let services = self.clone();
        let name = name.to_string();
        std::thread::spawn(move || {
            let _one_at_a_time = lock(&services.build_lock);
            if let Err(e) = services.build(&name) {
                tracing::warn!("query service '{name}': {e}");
                let _ =
                    services
                        .store
                        .set_query_service_status(&name, ServiceStatus::Failed, Some(&e));
            }
        })
    }

    fn build(&self, name: &str) -> Result<(), String> {
        let rec = self.store.query_service(name).map_err(|e| e.to_string())?;
        self.store
            .set_query_service_status(name, ServiceStatus::Building, None)
            .map_err(|e| e.to_string())?;
        let dataset = self
            .store
            .dataset(&rec.dataset)
            .map_err(|e| e.to_string())?;
        check_columns(&dataset, &rec.key_columns, &rec.value_columns).map_err(|e| e.to_string())?;
        let rows = read_rows(&self.store, &dataset, &rec, &self.settings)?;
        let value_len = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0) as u32;
        let params = self.settings.pir_params(value_len);
        let table = ProviderTable::build(rows, &params, &mut rand::rng())
            .map_err(|e| format!("dataset '{}': {e}", rec.dataset))?;
        let version = rec.version + 1;
        let file = table_file(name, version);
        self.store
            .write_private_data_file(&file, &table.to_bytes())
            .map_err(|e| e.to_string())?;
        let built = BuiltTable {
            version,
            table_file: file.clone(),
            table_id: table.id().to_string(),
            dataset_sha256: dataset.sha256.clone(),
            rows: table.len(),
            value_len: value_len as u64,
        };
        let old = match self.store.set_query_service_table(name, &built) {
            Ok(old) => old,
            Err(e) => {
                // Deleted while building: the new file belongs to nothing.
                let _ = std::fs::remove_file(self.store.data_path(&file));
                return Err(e.to_string());
            }
        };
        lock(&self.serving).insert(
            name.to_string(),
            Arc::new(ServingTable {
                version,
                dataset: rec.dataset.clone(),
                key_columns: rec.key_columns.clone(),
                value_columns: rec.value_columns.clone(),
                table,
            }),
        );
        // Sessions on the old version hold it in memory; its file is no longer needed.
        if let Some(old) = old.filter(|o| *o != file) {
            let _ = std::fs::remove_file(self.store.data_path(&old));
        }
        tracing::info!(
            "query service '{name}': version {version} serves {} rows",
            built.rows
        );
        Ok(())
    }

    /// The provider's checks when `partner` opens a session on `service`. The error goes back
    /// to the partner, so it names only what the partner named; the precise reason is logged.
    fn admit(
        self: &Arc<Self>,
        partner: &PartyId,
        service: &str,
    ) -> Result<(Arc<ServingTable>, SessionSlot), String> {
        let not_offered =
            || format!("this node offers no query service '{service}' to party '{partner}'");
        let Ok(rec) = self.store.query_service(service) else {
            tracing::warn!(
                "party '{partner}' asked for query service '{}', which does not exist",
                service.escape_debug()
            );
            return Err(not_offered());
        };
        let granted = self
            .store
            .grants(&rec.dataset)
            .unwrap_or_default()
            .contains(&GrantTarget::Party(partner.to_string()));
        if !granted {
            tracing::warn!(
                "party '{partner}' asked for query service '{service}', but dataset '{}' is not granted to it",
                rec.dataset
            );
            return Err(not_offered());
        }
        let Some(table) = lock(&self.serving).get(service).cloned() else {
            return Err(format!(
                "query service '{service}' has no table yet (it is being built); try again later"
            ));
        };
        let mut open = lock(&self.open_sessions);
        let n = open.entry(partner.clone()).or_insert(0);
        if *n >= self.settings.max_sessions_per_partner {
            return Err(format!(
                "party '{partner}' already has {n} query sessions open on this node (the limit)"
            ));
        }
        *n += 1;
        drop(open);
        Ok((
            table,
            SessionSlot {
                services: self.clone(),
                partner: partner.clone(),
            },
        ))
    }

    fn record_session(
        &self,
        service: &str,
        partner: &PartyId,
        version: u64,
        ids: u64,
        outcome: String,
        seconds: f64,
    ) {
        let _ = self.store.record_served_session(&ServedSession {
            service: service.to_string(),
            partner: partner.to_string(),
            version,
            ids,
            outcome,
            seconds,
            served_at: ferry_store::time::now_utc(),
        });
    }
}

/// Every key and value column exists in the dataset, and none is listed twice.
fn check_columns(
    dataset: &DatasetRecord,
    keys: &[String],
    values: &[String],
) -> Result<(), NodeError> {
    if keys.is_empty() {
        return Err(NodeError::Invalid(
            "a query service needs at least one key column (--key)".into(),
        ));
    }
    let mut seen = HashSet::new();
    for c in keys.iter().chain(values) {
        if !dataset.columns.iter().any(|k| k.name == *c) {
            let have: Vec<&str> = dataset.columns.iter().map(|k| k.name.as_str()).collect();
            return Err(NodeError::Invalid(format!(
                "dataset '{}' has no column '{c}' (it has: {})",
                dataset.name,
                have.join(", ")
            )));
        }
        if !seen.insert(c) {
            return Err(NodeError::Invalid(format!(
                "column '{c}' is listed twice among the key and value columns"
            )));
        }
    }
    Ok(())
}

/// The (key, encoded value) pairs of a service's dataset. Rows with an empty key cell are
/// skipped (no id can ask for them); a duplicate key or an oversized value is an error naming
/// the rows.
fn read_rows(
    store: &Store,
    dataset: &DatasetRecord,
    rec: &QueryServiceRecord,
    settings: &QuerySettings,
) -> Result<Vec<KeyValue>, String> {
    let columns: Vec<String> = rec
        .key_columns
        .iter()
        .chain(&rec.value_columns)
        .cloned()
        .collect();
    let k = rec.key_columns.len();
    let file = dataset.path.display().to_string();
    let mut rows = Vec::new();
    let mut first_row_of: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut skipped = 0u64;
    let mut take = |row: u64, cells: &[&str]| -> Result<(), String> {
        if cells[..k].iter().any(|c| c.is_empty()) {
            skipped += 1;
            return Ok(());
        }
        if rows.len() as u64 >= settings.max_rows {
            return Err(format!(
                "{file}: more than {} rows ([query] max_rows); nothing was built",
                settings.max_rows
            ));
        }
        let key = key_of(&cells[..k]);
        let value = encode_values(&cells[k..]).map_err(|e| format!("{file}, row {row}: {e}"))?;
        if value.len() > settings.max_value_bytes as usize {
            return Err(format!(
                "{file}, row {row}: the value columns take {} bytes encoded, above [query] \
                 max_value_bytes = {}",
                value.len(),
                settings.max_value_bytes
            ));
        }
        if let Some(first) = first_row_of.insert(key.clone(), row) {
            return Err(format!(
                "{file}: rows {first} and {row} have the same key ({}); a query service needs \
                 unique keys",
                rec.key_columns.join(", ")
            ));
        }
        rows.push((key, value));
        Ok(())
    };
    match dataset.format {
        DataFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(
                store
                    .source(&dataset.path)
                    .stream()
                    .map_err(|e| e.to_string())?,
            );
            let header = reader
                .headers()
                .map_err(|e| format!("{file}: {e}"))?
                .clone();
            let index: Vec<usize> = columns
                .iter()
                .map(|c| {
                    header
                        .iter()
                        .position(|h| h == c)
                        .ok_or_else(|| format!("{file}: no column '{c}'"))
                })
                .collect::<Result<_, _>>()?;
            let mut record = csv::StringRecord::new();
            let mut row = 1u64;
            loop {
                row += 1;
                match reader.read_record(&mut record) {
                    Ok(false) => break,
                    Ok(true) => {}
                    Err(e) => return Err(format!("{file}, row {row}: {e}")),
                }
                let cells: Vec<&str> = index.iter().map(|&i| record.get(i).unwrap_or("")).collect();
                take(row, &cells)?;
            }
        }
        DataFormat::Parquet => {
            let mut reader = ferry_data::parquet::ParquetRows::open_columns(
                store.source(&dataset.path),
                &columns,
            )
            .map_err(|e| e.to_string())?;
            let mut cells: Vec<Option<String>> = Vec::new();
            let mut row = 0u64;
            while reader.next_row(&mut cells).map_err(|e| e.to_string())? {
                row += 1;
                let texts: Vec<&str> = cells.iter().map(|c| c.as_deref().unwrap_or("")).collect();
                take(row, &texts)?;
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(
            "query service '{}': skipped {skipped} rows with an empty key",
            rec.name
        );
    }
    Ok(rows)
}

fn new_query_id() -> String {
    use rand::RngExt;
    let n: u128 = rand::rng().random();
    format!("{QUERY_ID_PREFIX}{n:032x}")
}

impl Node {
    /// Provider: a partner opens a session on one of this node's services.
    pub(crate) fn on_query_open(self: &Arc<Self>, from: &PartyId, query_id: &str, service: &str) {
        let services = self.queries().clone();
        let valid_id = query_id.starts_with(QUERY_ID_PREFIX)
            && query_id.len() <= 64
            && ferry_store::validate_name("query", query_id).is_ok();
        if !valid_id {
            tracing::warn!(
                "ignoring a query from '{from}' with a malformed id {}",
                query_id.escape_debug()
            );
            return;
        }
        let (table, slot) = match services.admit(from, service) {
            Ok(admitted) => admitted,
            Err(reason) => {
                services.record_session(service, from, 0, 0, format!("refused: {reason}"), 0.0);
                self.send(
                    from,
                    &Control::QueryRefused {
                        query_id: query_id.to_string(),
                        reason,
                    },
                );
                return;
            }
        };
        self.transport().admit_session(from, query_id);
        self.send(
            from,
            &Control::QueryReady {
                query_id: query_id.to_string(),
                columns: ServiceColumns {
                    version: table.version,
                    key_columns: table.key_columns.clone(),
                    value_columns: table.value_columns.clone(),
                },
            },
        );
        let node = self.clone();
        let from = from.clone();
        let query_id = query_id.to_string();
        let service = service.to_string();
        std::thread::spawn(move || {
            let _slot = slot;
            let start = Instant::now();
            let roster = Roster::new(vec![
                (from.clone(), Role::Guest),
                (node.party().clone(), Role::Host),
            ]);
            let limits = ServeLimits {
                max_ids: services.settings.max_ids_per_session,
            };
            let session = format!("{query_id}/pir");
            let outcome = roster
                .map_err(|e| e.to_string())
                .and_then(|roster| {
                    ferry_transport::session_context(node.transport(), roster, session.clone())
                        .timeout(services.settings.session_timeout())
                        .build()
                        .map_err(|e| e.to_string())
                })
                .and_then(|ctx| {
                    let served =
                        ferry_pir::serve(&ctx, &table.table, &limits).map_err(|e| e.to_string());
                    // The last answers are acknowledged before the session is closed.
                    served.and_then(|r| ctx.flush().map(|_| r).map_err(|e| e.to_string()))
                });
            node.transport().revoke_session(&from, &query_id);
            // Closing frees the transport's per-session state (one session per query).
            node.transport().close_session(&session);
            let seconds = start.elapsed().as_secs_f64();
            match outcome {
                Ok(report) => services.record_session(
                    &service,
                    &from,
                    table.version,
                    report.ids,
                    "served".into(),
                    seconds,
                ),
                Err(e) => {
                    tracing::warn!("query session {query_id} of '{from}' on '{service}': {e}");
                    services.record_session(
                        &service,
                        &from,
                        table.version,
                        0,
                        format!("failed: {e}"),
                        seconds,
                    )
                }
            }
        });
    }

    /// Querier: the provider's answer to `query_open`.
    pub(crate) fn on_query_reply(
        &self,
        from: &PartyId,
        query_id: &str,
        reply: Result<ServiceColumns, String>,
    ) {
        let pending = lock(&self.queries().pending);
        match pending.get(query_id) {
            Some(p) if p.provider == *from => {
                let _ = p.reply.try_send(match reply {
                    Ok(columns) => OpenReply::Ready(columns),
                    Err(reason) => OpenReply::Refused(reason),
                });
            }
            _ => tracing::warn!(
                "ignoring a query reply from '{from}' for {}, which this node did not ask it",
                query_id.escape_debug()
            ),
        }
    }

    /// Querier: looks `ids` up in `provider`'s service `service` (each id one cell per key
    /// column of the service), records the query (`requested_by` is the token or user that
    /// asked) and its result file, and returns the answers in the order asked.
    pub fn run_query(
        self: &Arc<Self>,
        provider: &str,
        service: &str,
        ids: Vec<Vec<String>>,
        requested_by: &str,
    ) -> Result<QueryResult, NodeError> {
        let provider =
            PartyId::new(provider).map_err(|e| NodeError::Invalid(format!("provider: {e}")))?;
        if provider == *self.party() {
            return Err(NodeError::Invalid(
                "a node cannot query its own services".into(),
            ));
        }
        if !self.is_partner(&provider) {
            let known = self.partner_names();
            return Err(NodeError::Invalid(format!(
                "'{provider}' is not a partner of this node (partners: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        if ids.is_empty() {
            return Err(NodeError::Invalid("no ids to query".into()));
        }
        let arity = ids[0].len();
        if let Some((i, _)) = ids
            .iter()
            .enumerate()
            .find(|(_, id)| id.len() != arity || id.is_empty())
        {
            return Err(NodeError::Invalid(format!(
                "id {} has {} parts, the first has {arity}: every id needs one cell per key column",
                i + 1,
                ids[i].len()
            )));
        }
        let query_id = new_query_id();
        self.store().insert_query(
            &query_id,
            provider.as_str(),
            service,
            requested_by,
            ids.len() as u64,
        )?;
        let start = Instant::now();
        let mut finish = QueryFinish::default();
        let outcome = self.query_session(&query_id, &provider, service, &ids, &mut finish);
        finish.seconds = start.elapsed().as_secs_f64();
        let answers = match outcome {
            Ok((columns, values)) => match self.write_result(&query_id, &columns, &ids, &values) {
                Ok((file, answers)) => {
                    finish.result_file = Some(file);
                    finish.found = answers.iter().filter(|a| a.found).count() as u64;
                    Ok((columns, answers))
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match answers {
            Ok((columns, answers)) => {
                self.store().finish_query(&query_id, &finish)?;
                Ok(QueryResult {
                    query: self.store().query(&query_id)?,
                    key_columns: columns.key_columns,
                    value_columns: columns.value_columns,
                    answers,
                })
            }
            Err(e) => {
                finish.error = Some(e.clone());
                self.store().finish_query(&query_id, &finish)?;
                Err(NodeError::Invalid(format!("query {query_id}: {e}")))
            }
        }
    }

    /// One PIR session: the provider's columns and the raw value of every id.
    fn query_session(
        &self,
        query_id: &str,
        provider: &PartyId,
        service: &str,
        ids: &[Vec<String>],
        finish: &mut QueryFinish,
    ) -> Result<(ServiceColumns, Vec<FoundValue>), String> {
        let services = self.queries();
        let (tx, rx) = mpsc::sync_channel(1);
        lock(&services.pending).insert(
            query_id.to_string(),
            Pending {
                provider: provider.clone(),
                reply: tx,
            },
        );
        self.transport().admit_session(provider, query_id);
        let result = (|| {
            self.send(
                provider,
                &Control::QueryOpen {
                    query_id: query_id.to_string(),
                    service: service.to_string(),
                },
            );
            let columns = match rx.recv_timeout(OPEN_TIMEOUT) {
                Ok(OpenReply::Ready(columns)) => columns,
                Ok(OpenReply::Refused(reason)) => {
                    return Err(format!("party '{provider}' refused the query: {reason}"));
                }
                Err(_) => {
                    return Err(format!(
                        "party '{provider}' did not answer within {} s (is it running and connected?)",
                        OPEN_TIMEOUT.as_secs()
                    ));
                }
            };
            if columns.key_columns.len() != ids[0].len() {
                return Err(format!(
                    "service '{service}' of '{provider}' is keyed by {} column(s) ({}), but the ids \
                     have {} part(s)",
                    columns.key_columns.len(),
                    columns.key_columns.join(", "),
                    ids[0].len()
                ));
            }
            let roster = Roster::new(vec![
                (self.party().clone(), Role::Guest),
                (provider.clone(), Role::Host),
            ])
            .map_err(|e| e.to_string())?;
            let ctx = ferry_transport::session_context(
                self.transport(),
                roster,
                format!("{query_id}/pir"),
            )
            .timeout(services.settings.session_timeout())
            .transcript(Arc::new(Transcript::metadata_only()))
            .build()
            .map_err(|e| e.to_string())?;
            let keys: Vec<Vec<u8>> = ids
                .iter()
                .map(|id| key_of(&id.iter().map(String::as_str).collect::<Vec<_>>()))
                .collect();
            let cache_key = (provider.clone(), service.to_string());
            let mut cache = lock(&services.hints).remove(&cache_key);
            let limits = QueryLimits {
                max_hint_bytes: services.settings.max_hint_bytes,
                ..QueryLimits::default()
            };
            let outcome = ferry_pir::query_with(&ctx, &keys, &mut cache, &limits, &mut rand::rng())
                .map_err(|e| e.to_string())?;
            if let Some(cache) = cache {
                lock(&services.hints).insert(cache_key, cache);
            }
            let r = &outcome.report;
            finish.table_id = r.table_id.map(|t| t.to_string());
            finish.table_rows = Some(r.table_rows);
            finish.hint_downloaded = r.hint_downloaded;
            finish.bytes_sent = r.bytes_sent;
            finish.bytes_received = r.bytes_received;
            Ok((columns, outcome.values))
        })();
        self.transport().revoke_session(provider, query_id);
        self.transport().close_session(&format!("{query_id}/pir"));
        lock(&services.pending).remove(query_id);
        result
    }

    /// Decodes the values and writes the result CSV (private to the node's user).
    fn write_result(
        &self,
        query_id: &str,
        columns: &ServiceColumns,
        ids: &[Vec<String>],
        values: &[Option<Vec<u8>>],
    ) -> Result<(String, Vec<QueryAnswer>), String> {
        let mut answers = Vec::with_capacity(ids.len());
        for (i, (id, value)) in ids.iter().zip(values).enumerate() {
            let (found, cells) = match value {
                None => (false, Vec::new()),
                Some(bytes) => (
                    true,
                    decode_values(bytes, columns.value_columns.len())
                        .map_err(|e| format!("the value of id {} does not decode: {e}", i + 1))?,
                ),
            };
            answers.push(QueryAnswer {
                key: id.clone(),
                found,
                values: cells,
            });
        }
        let mut out = csv::Writer::from_writer(Vec::new());
        let header: Vec<&str> = columns
            .key_columns
            .iter()
            .map(String::as_str)
            .chain(["found"])
            .chain(columns.value_columns.iter().map(String::as_str))
            .collect();
        let write_err = |e: csv::Error| format!("cannot write the result: {e}");
        out.write_record(&header).map_err(write_err)?;
        let blanks = vec![String::new(); columns.value_columns.len()];
        for a in &answers {
            let cells = if a.found { &a.values } else { &blanks };
            let found = if a.found { "true" } else { "false" };
            out.write_record(
                a.key
                    .iter()
                    .map(String::as_str)
                    .chain([found])
                    .chain(cells.iter().map(String::as_str)),
            )
            .map_err(write_err)?;
        }
        let bytes = out
            .into_inner()
            .map_err(|e| format!("cannot write the result: {e}"))?;
        let file = format!("{RESULT_DIR}/{query_id}.csv");
        self.store()
            .write_private_data_file(&file, &bytes)
            .map_err(|e| e.to_string())?;
        Ok((file, answers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_with_every_byte_of_utf8_and_empty_cells() {
        let cells = ["", "a,b\"c", "中文", "\u{0}\u{7f}", &"x".repeat(300)];
        let bytes = encode_values(&cells).unwrap();
        assert_eq!(
            bytes.len(),
            cells.iter().map(|c| c.len() + 2).sum::<usize>()
        );
        assert_eq!(decode_values(&bytes, cells.len()).unwrap(), cells);
        assert_eq!(
            decode_values(&encode_values(&[]).unwrap(), 0).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn malformed_values_are_errors_naming_the_column() {
        let bytes = encode_values(&["ab", "cd"]).unwrap();
        assert!(
            decode_values(&bytes, 3)
                .unwrap_err()
                .contains("value column 2")
        );
        assert!(
            decode_values(&bytes, 1)
                .unwrap_err()
                .contains("after the 1 value columns")
        );
        assert!(
            decode_values(&bytes[..5], 2)
                .unwrap_err()
                .contains("value column 1")
        );
        assert!(
            decode_values(&[5, 0, b'a'], 1)
                .unwrap_err()
                .contains("5 bytes announced")
        );
        assert!(
            decode_values(&[1, 0, 0xff], 1)
                .unwrap_err()
                .contains("not UTF-8")
        );
        assert!(encode_values(&[&"x".repeat(70_000)]).is_err());
    }

    #[test]
    fn settings_come_from_the_query_table_and_are_checked() {
        let t: toml::Table =
            toml::from_str("[query]\nmax_rows = 5\nmax_ids_per_session = 7\n").unwrap();
        let s = QuerySettings::from_config(&t).unwrap();
        assert_eq!((s.max_rows, s.max_ids_per_session), (5, 7));
        assert_eq!(s.max_value_bytes, QuerySettings::default().max_value_bytes);
        for bad in [
            "[query]\nmax_value_bytes = 100000\n",
            "[query]\nbucket_load = 0\n",
            "[query]\nmax_sessions_per_partner = 0\n",
            "[query]\nnoise_seed = 1\n",
        ] {
            let t: toml::Table = toml::from_str(bad).unwrap();
            let e = QuerySettings::from_config(&t).unwrap_err();
            assert!(e.contains("[query]"), "{bad}: {e}");
        }
        assert_eq!(
            QuerySettings::from_config(&toml::Table::new()).unwrap(),
            QuerySettings::default()
        );
    }
}
