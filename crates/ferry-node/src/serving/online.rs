//! Online inference: the guest's long-lived sessions with the hosts, the hosts' serving loop,
//! and the combination of the parts' answers into scores.
//!
//! Per (service, host) the guest keeps one federated session (scope `serve-<random>`, session
//! `<scope>/online`), opened over the control plane (`Open` → `Ready` / `Refused`). On it
//! each request is one message on tag `q` (`seq`, generation, ids) and its answer one on tag
//! `a<seq>`, so concurrent requests share the session and answers find their caller. A host
//! serves a session on one thread, in order; it ends the session after `[serving]
//! idle_session_secs` without a request (the guest opens a new one before that). Any error on
//! a session — a timeout, a host restart, a malformed answer — fails that request with an
//! error naming the host and drops the session; the next request opens a new one, which is
//! how the service resumes when a stopped host is back.

use super::{Live, Loaded, Part, Serving, ServingMsg, lock};
use crate::node::Node;
use ferry_context::{Context, FederationError, PartyId, Role, Roster, SessionConfig, Transport};
use ferry_store::{ServiceRequestLog, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Prefix of serving session scopes.
pub const SESSION_PREFIX: &str = "serve-";
/// Longest id accepted (guest request or partner message).
pub const MAX_ID_BYTES: usize = 256;
/// Largest serving message either side accepts (1,000 ids of 256 bytes fit many times over).
const MAX_MESSAGE_BYTES: usize = 8 << 20;
/// How often counters and the request log are written to the store.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often old request-log entries are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// A request on a serving session.
#[derive(Debug, Serialize, Deserialize)]
struct OnlineRequest {
    seq: u64,
    generation: u32,
    ids: Vec<String>,
}

/// A host's answer.
#[derive(Debug, Serialize, Deserialize)]
enum OnlineAnswer {
    /// SecureBoost: per id, one bit per split the host owns.
    Decisions(Vec<Vec<u8>>),
    /// LR: per id, the partial score, `None` when the host has no complete row.
    Partials(Vec<Option<f64>>),
    Refused(String),
}

/// A prediction request (`POST /api/v1/services/{name}/predict`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    /// The guest's features of `id` (single requests only), by column name: numbers, text
    /// for text columns, `null` for missing. Raw values: the service's transform is applied.
    #[serde(default)]
    pub features: Option<Map<String, Value>>,
}

/// One id's prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub id: String,
    /// Probability of class 1 (binary), the value (regression); `None` for multi-class.
    pub score: Option<f64>,
    /// Every output (class probabilities for multi-class).
    pub scores: Vec<f64>,
    pub class: Option<usize>,
    /// Why this id has no score (e.g. the guest has no row for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PredictResponse {
    pub request_id: String,
    pub service: String,
    pub model: String,
    pub version: u32,
    pub predictions: Vec<Prediction>,
}

/// Why a prediction failed (the API maps each to its status).
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 400
    #[error("{0}")]
    Invalid(String),
    /// 409
    #[error("{0}")]
    Unavailable(String),
    /// 504
    #[error(
        "host '{party}' did not answer within {millis} ms (the service's timeout): is it running \
         and connected? No score was computed"
    )]
    Timeout { party: PartyId, millis: u128 },
    /// 502
    #[error("host '{party}' could not answer: {reason}. No score was computed")]
    Host { party: PartyId, reason: String },
    /// 500
    #[error("{0}")]
    Internal(String),
}

/// One open session with a host.
struct Link {
    host: PartyId,
    scope: String,
    ctx: Context,
    /// Held while a request is numbered and sent, so requests leave in `seq` order.
    next: Mutex<u64>,
    broken: AtomicBool,
    opened: Instant,
}

/// A host-side session.
struct HostSession {
    partner: PartyId,
    cancel: Arc<AtomicBool>,
}

#[derive(Default)]
struct Counts {
    requests: u64,
    ids: u64,
    errors: u64,
    last: String,
}

/// The guest's session slot with one host of one service (locked while it is being opened).
type LinkSlot = Arc<Mutex<Option<Arc<Link>>>>;
/// Who a session being opened is with, and where its `Ready` / `Refused` goes.
type Opening = (PartyId, mpsc::SyncSender<Result<(), String>>);

/// The online part of [`Serving`]'s state.
#[derive(Default)]
pub struct OnlineState {
    /// Guest: per (service, host), the session (the inner lock is held while opening).
    links: Mutex<HashMap<(String, PartyId), LinkSlot>>,
    /// Guest: sessions being opened, waiting for `Ready` / `Refused`.
    opening: Mutex<HashMap<String, Opening>>,
    /// Host: sessions served, by scope.
    host_sessions: Mutex<HashMap<String, HostSession>>,
    counts: Mutex<HashMap<String, Counts>>,
    log: Mutex<Vec<ServiceRequestLog>>,
    request_seq: AtomicU64,
    /// Held for a whole flush, so that a reader who flushes first sees every count taken
    /// by a flush already under way (the background one) in the store.
    flushing: Mutex<()>,
}

impl OnlineState {
    /// `Ready` / `Refused` from `from` for a session this node is opening.
    pub(super) fn opened(&self, from: &PartyId, session: &str, outcome: Result<(), String>) {
        let pending = lock(&self.opening);
        match pending.get(session) {
            Some((host, tx)) if host == from => {
                let _ = tx.try_send(outcome);
            }
            _ => tracing::warn!(
                "ignoring a serving reply from '{from}' for session {}, which this node did not open",
                session.escape_debug()
            ),
        }
    }

    pub(super) fn close_host_session(&self, from: &PartyId, session: &str) {
        if let Some(s) = lock(&self.host_sessions).get(session)
            && s.partner == *from
        {
            s.cancel.store(true, Ordering::SeqCst);
        }
    }

    /// Drops the guest's sessions of a service (undeployed).
    pub(super) fn forget_service(&self, service: &str) {
        let mut links = lock(&self.links);
        links.retain(|(s, _), slot| {
            if s == service {
                if let Some(l) = lock(slot).take() {
                    l.broken.store(true, Ordering::SeqCst);
                }
                false
            } else {
                true
            }
        });
    }

    fn count(&self, service: &str, ids: u64, error: bool) {
        let mut counts = lock(&self.counts);
        let c = counts.entry(service.to_string()).or_default();
        c.requests += 1;
        c.ids += ids;
        c.errors += u64::from(error);
        c.last = ferry_store::time::now_utc();
    }

    /// Writes the counters and the request log.
    pub(super) fn flush(&self, store: &Store) {
        let _one_at_a_time = lock(&self.flushing);
        let counts = std::mem::take(&mut *lock(&self.counts));
        for (service, c) in counts {
            if let Err(e) =
                store.add_model_service_counts(&service, c.requests, c.ids, c.errors, &c.last)
            {
                tracing::warn!("model service '{service}': counters not written: {e}");
            }
        }
        let log = std::mem::take(&mut *lock(&self.log));
        if !log.is_empty()
            && let Err(e) = store.log_service_requests(&log)
        {
            tracing::warn!("the request log was not written: {e}");
        }
    }
}

/// Writes counters and the request log every second and prunes the log, until the node's
/// serving state is dropped.
pub(super) fn spawn_flusher(serving: &Arc<Serving>) {
    let weak: Weak<Serving> = Arc::downgrade(serving);
    let _ = std::thread::Builder::new()
        .name("ferry-serving-flush".into())
        .spawn(move || {
            let mut last_prune: Option<Instant> = None;
            loop {
                std::thread::sleep(FLUSH_EVERY);
                let Some(s) = weak.upgrade() else {
                    return;
                };
                s.online.flush(&s.store);
                if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                    last_prune = Some(Instant::now());
                    let keep_ms = (s.settings.request_log_days * 86_400_000.0) as i64;
                    let now_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0);
                    let before = ferry_store::time::format_unix_millis(now_ms - keep_ms);
                    if let Err(e) = s.store.prune_service_requests(&before) {
                        tracing::warn!("the request log was not pruned: {e}");
                    }
                }
            }
        });
}

fn new_scope() -> String {
    use rand::RngExt;
    let n: u128 = rand::rng().random();
    format!("{SESSION_PREFIX}{n:032x}")
}

fn valid_scope(s: &str) -> bool {
    s.strip_prefix(SESSION_PREFIX)
        .is_some_and(|r| r.len() == 32 && r.chars().all(|c| c.is_ascii_hexdigit()))
}

fn check_ids(ids: &[String], max: usize) -> Result<(), String> {
    if ids.is_empty() {
        return Err("no ids: give \"id\" or a non-empty \"ids\"".into());
    }
    if ids.len() > max {
        return Err(format!(
            "{} ids in one request; at most {max} ([serving] max_batch)",
            ids.len()
        ));
    }
    if let Some((i, _)) = ids
        .iter()
        .enumerate()
        .find(|(_, id)| id.is_empty() || id.len() > MAX_ID_BYTES)
    {
        return Err(format!(
            "id {} is empty or longer than {MAX_ID_BYTES} bytes",
            i + 1
        ));
    }
    Ok(())
}

impl Node {
    /// Host: the guest opens a serving session.
    pub(super) fn on_serving_open(
        self: &Arc<Self>,
        from: &PartyId,
        service: &str,
        deployment: &str,
        session: &str,
    ) {
        if !valid_scope(session) {
            tracing::warn!(
                "ignoring a serving session from '{from}' with a malformed id {}",
                session.escape_debug()
            );
            return;
        }
        let serving = self.serving().clone();
        let refuse = |reason: String| {
            self.send_serving(
                from,
                ServingMsg::Refused {
                    session: session.to_string(),
                    reason,
                },
            )
        };
        let Some(live) = self.host_live(from, service, deployment) else {
            return refuse(format!(
                "party '{}' serves no service '{}' for '{from}'",
                self.party(),
                service.escape_debug()
            ));
        };
        let cancel = Arc::new(AtomicBool::new(false));
        {
            let mut sessions = lock(&serving.online.host_sessions);
            let open = sessions.values().filter(|s| s.partner == *from).count();
            if open >= serving.settings.max_sessions_per_partner {
                drop(sessions);
                return refuse(format!(
                    "party '{from}' already has {open} serving sessions open on '{}' (the limit)",
                    self.party()
                ));
            }
            sessions.insert(
                session.to_string(),
                HostSession {
                    partner: from.clone(),
                    cancel: cancel.clone(),
                },
            );
        }
        self.transport().admit_session(from, session);
        let node = self.clone();
        let partner = from.clone();
        let scope = session.to_string();
        let spawned = std::thread::Builder::new()
            .name("ferry-serving".into())
            .spawn(move || node.serve_session(&live, &partner, &scope, cancel));
        if spawned.is_err() {
            lock(&serving.online.host_sessions).remove(session);
            self.transport().revoke_session(from, session);
            return;
        }
        self.send_serving(
            from,
            ServingMsg::Ready {
                session: session.to_string(),
            },
        );
    }

    /// Host: one serving session, until idle, closed or broken.
    fn serve_session(
        &self,
        live: &Arc<Live>,
        guest: &PartyId,
        scope: &str,
        cancel: Arc<AtomicBool>,
    ) {
        let serving = self.serving().clone();
        let idle = Duration::from_secs(serving.settings.idle_session_secs);
        let session = format!("{scope}/online");
        let ctx = Roster::new(vec![
            (guest.clone(), Role::Guest),
            (self.party().clone(), Role::Host),
        ])
        .map_err(|e| e.to_string())
        .and_then(|roster| {
            ferry_transport::session_context(self.transport(), roster, session.clone())
                .config(SessionConfig {
                    timeout: idle,
                    max_message_bytes: MAX_MESSAGE_BYTES,
                })
                .cancel_flag(cancel)
                .build()
                .map_err(|e| e.to_string())
        });
        match ctx {
            Ok(ctx) => loop {
                let req: OnlineRequest = match ctx.recv(guest, "q") {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!("serving session {scope} of '{guest}' ends: {e}");
                        break;
                    }
                };
                let seq = req.seq;
                let answer = self.answer(live, &req);
                if ctx.send(guest, &format!("a{seq}"), &answer).is_err() {
                    break;
                }
            },
            Err(e) => tracing::warn!("serving session {scope} of '{guest}': {e}"),
        }
        lock(&serving.online.host_sessions).remove(scope);
        self.transport().revoke_session(guest, scope);
        self.transport().close_session(&session);
    }

    /// Host: this node's part of the answer for `req`.
    fn answer(&self, live: &Arc<Live>, req: &OnlineRequest) -> OnlineAnswer {
        let serving = self.serving();
        // The service may have been undeployed since the session opened.
        let current = serving
            .live(&live.name)
            .is_some_and(|l| Arc::ptr_eq(&l, live));
        let refused = |reason: String| {
            serving.online.count(&live.name, 0, true);
            OnlineAnswer::Refused(reason)
        };
        if !current {
            return refused(format!(
                "service '{}' is no longer served by '{}'",
                live.name,
                self.party()
            ));
        }
        if let Err(e) = check_ids(&req.ids, serving.settings.max_batch) {
            return refused(e);
        }
        let Some(loaded) = live.generation(req.generation) else {
            return refused(format!(
                "'{}' has no version {} of service '{}' loaded",
                self.party(),
                req.generation,
                live.name
            ));
        };
        let Some(table) = loaded.table() else {
            return refused(format!("'{}' has no feature table", self.party()));
        };
        serving
            .online
            .count(&live.name, req.ids.len() as u64, false);
        match &loaded.part {
            Part::SbHost(m) => {
                let mut out = Vec::with_capacity(req.ids.len());
                for id in &req.ids {
                    match ferry_secureboost::online::host_decisions(m, table.row(id)) {
                        Ok(bits) => out.push(bits),
                        Err(e) => return OnlineAnswer::Refused(e.to_string()),
                    }
                }
                OnlineAnswer::Decisions(out)
            }
            Part::LrHost(m) => OnlineAnswer::Partials(
                req.ids
                    .iter()
                    .map(|id| table.row(id).and_then(|r| m.partial_score_row(r).ok()))
                    .collect(),
            ),
            _ => OnlineAnswer::Refused("this node holds a guest part".into()),
        }
    }

    /// Guest: scores the ids of `req` with service `name`. `actor` is who asked (logged with
    /// the request id).
    pub fn predict_online(
        &self,
        name: &str,
        req: PredictRequest,
        actor: &str,
    ) -> Result<PredictResponse, PredictError> {
        let serving = self.serving().clone();
        let start = Instant::now();
        let n = serving.online.request_seq.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("req-{:x}-{n}", std::process::id());
        let (result, ids) = self.predict_inner(name, req, &request_id);
        if let Some(live) = serving.live(name).filter(|l| l.role == Role::Guest) {
            serving
                .online
                .count(&live.name, ids as u64, result.is_err());
            lock(&serving.online.log).push(ServiceRequestLog {
                request_id,
                service: name.to_string(),
                actor: actor.to_string(),
                ids: ids as u64,
                outcome: match &result {
                    Ok(_) => "ok".into(),
                    Err(e) => super::cut(&e.to_string()),
                },
                millis: start.elapsed().as_secs_f64() * 1000.0,
                at: ferry_store::time::now_utc(),
            });
        }
        result
    }

    fn predict_inner(
        &self,
        name: &str,
        req: PredictRequest,
        request_id: &str,
    ) -> (Result<PredictResponse, PredictError>, usize) {
        let ids = match (req.id, req.ids) {
            (Some(id), None) => vec![id],
            (None, Some(ids)) => ids,
            (Some(_), Some(_)) => {
                return (
                    Err(PredictError::Invalid(
                        "give either \"id\" or \"ids\", not both".into(),
                    )),
                    0,
                );
            }
            (None, None) => {
                return (
                    Err(PredictError::Invalid("give \"id\" or \"ids\"".into())),
                    0,
                );
            }
        };
        let n = ids.len();
        (self.score(name, ids, req.features, request_id), n)
    }

    fn score(
        &self,
        name: &str,
        ids: Vec<String>,
        features: Option<Map<String, Value>>,
        request_id: &str,
    ) -> Result<PredictResponse, PredictError> {
        let serving = self.serving().clone();
        check_ids(&ids, serving.settings.max_batch).map_err(PredictError::Invalid)?;
        let live = serving
            .live(name)
            .filter(|l| l.role == Role::Guest)
            .ok_or_else(|| match serving.store.find_model_service(name) {
                Ok(Some(rec)) if rec.role == "guest" => PredictError::Unavailable(format!(
                    "service '{name}' is {}{}",
                    rec.status,
                    rec.reason.map(|r| format!(": {r}")).unwrap_or_default()
                )),
                Ok(Some(rec)) => PredictError::Invalid(format!(
                    "service '{name}' is served here for '{}': predictions are asked on the guest",
                    rec.guest
                )),
                _ => PredictError::NotFound(format!("no model service '{name}' on this node")),
            })?;
        let Some(loaded) = live.active() else {
            return Err(PredictError::Unavailable(format!(
                "service '{name}' is waiting for its hosts' approval"
            )));
        };
        // The guest's rows (in its part's column order), or why an id has none.
        let own: Vec<Result<Vec<f64>, String>> = match features {
            Some(f) => {
                if ids.len() != 1 {
                    return Err(PredictError::Invalid(
                        "\"features\" goes with a single \"id\"".into(),
                    ));
                }
                vec![Ok(
                    inline_row(&loaded, &ids[0], &f).map_err(PredictError::Invalid)?
                )]
            }
            None => {
                let table = loaded.table().ok_or_else(|| {
                    PredictError::Invalid(format!(
                        "service '{name}' has no feature table on this node: send the features \
                         inline (\"features\")"
                    ))
                })?;
                ids.iter()
                    .map(|id| {
                        table.row(id).map(<[f64]>::to_vec).ok_or_else(|| {
                            format!(
                                "id '{id}' is not in this node's feature table ('{}')",
                                table.dataset
                            )
                        })
                    })
                    .collect()
            }
        };
        // Hosts are asked only about ids the guest can score: an id it has no row for would
        // tell them an id for nothing.
        let asked: Vec<String> = ids
            .iter()
            .zip(&own)
            .filter(|(_, r)| r.is_ok())
            .map(|(id, _)| id.clone())
            .collect();
        let hosts: &[PartyId] = if asked.is_empty() { &[] } else { &live.hosts };
        // Ask every host first, then collect: the hosts work in parallel.
        let mut sent = Vec::with_capacity(hosts.len());
        for host in hosts {
            let link = self.link(&live, host)?;
            let seq = {
                let mut next = lock(&link.next);
                let seq = *next;
                *next += 1;
                let req = OnlineRequest {
                    seq,
                    generation: loaded.generation,
                    ids: asked.clone(),
                };
                if let Err(e) = link.ctx.send(host, "q", &req) {
                    drop(next);
                    self.drop_link(&live, &link);
                    return Err(host_error(host, &live, e));
                }
                seq
            };
            sent.push((host, link, seq));
        }
        let mut answers = Vec::with_capacity(sent.len());
        for (host, link, seq) in sent {
            match link.ctx.recv::<OnlineAnswer>(host, &format!("a{seq}")) {
                Ok(OnlineAnswer::Refused(reason)) => {
                    return Err(PredictError::Host {
                        party: host.clone(),
                        reason: super::cut(&reason),
                    });
                }
                Ok(a) => answers.push((host, a)),
                Err(e) => {
                    self.drop_link(&live, &link);
                    return Err(host_error(host, &live, e));
                }
            }
        }
        let predictions = combine(&loaded, &ids, own, asked.len(), &answers)?;
        let rec_version = loaded.version;
        Ok(PredictResponse {
            request_id: request_id.to_string(),
            service: name.to_string(),
            model: serving
                .store
                .find_model_service(name)
                .ok()
                .flatten()
                .map(|r| r.model)
                .unwrap_or_default(),
            version: rec_version,
            predictions,
        })
    }

    /// The open session with `host` for `live`, opening one if there is none, it broke, or it
    /// is close to the host's idle limit.
    fn link(&self, live: &Arc<Live>, host: &PartyId) -> Result<Arc<Link>, PredictError> {
        let serving = self.serving().clone();
        let slot = lock(&serving.online.links)
            .entry((live.name.clone(), host.clone()))
            .or_default()
            .clone();
        let mut slot = lock(&slot);
        let fresh = Duration::from_secs(serving.settings.idle_session_secs / 2);
        if let Some(l) = slot.as_ref()
            && !l.broken.load(Ordering::SeqCst)
            && l.opened.elapsed() < fresh
        {
            return Ok(l.clone());
        }
        if let Some(old) = slot.take() {
            self.close_link(&old);
        }
        let link = Arc::new(self.open_link(live, host)?);
        *slot = Some(link.clone());
        Ok(link)
    }

    fn open_link(&self, live: &Arc<Live>, host: &PartyId) -> Result<Link, PredictError> {
        let serving = self.serving().clone();
        let scope = new_scope();
        let (tx, rx) = mpsc::sync_channel(1);
        lock(&serving.online.opening).insert(scope.clone(), (host.clone(), tx));
        self.transport().admit_session(host, &scope);
        self.send_serving(
            host,
            ServingMsg::Open {
                service: live.name.clone(),
                deployment: live.deployment.clone(),
                session: scope.clone(),
            },
        );
        let reply = rx.recv_timeout(live.timeout);
        lock(&serving.online.opening).remove(&scope);
        let fail = |e: PredictError| {
            self.transport().revoke_session(host, &scope);
            e
        };
        match reply {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                return Err(fail(PredictError::Host {
                    party: host.clone(),
                    reason: format!("it refused the session: {reason}"),
                }));
            }
            Err(_) => {
                return Err(fail(PredictError::Timeout {
                    party: host.clone(),
                    millis: live.timeout.as_millis(),
                }));
            }
        }
        let roster = Roster::new(vec![
            (self.party().clone(), Role::Guest),
            (host.clone(), Role::Host),
        ])
        .map_err(|e| fail(PredictError::Internal(e.to_string())))?;
        let ctx =
            ferry_transport::session_context(self.transport(), roster, format!("{scope}/online"))
                .config(SessionConfig {
                    timeout: live.timeout,
                    max_message_bytes: MAX_MESSAGE_BYTES,
                })
                .build()
                .map_err(|e| fail(PredictError::Internal(e.to_string())))?;
        Ok(Link {
            host: host.clone(),
            scope,
            ctx,
            next: Mutex::new(0),
            broken: AtomicBool::new(false),
            opened: Instant::now(),
        })
    }

    /// A request on `link` failed: the session is dropped (the next request opens another).
    fn drop_link(&self, live: &Arc<Live>, link: &Arc<Link>) {
        link.broken.store(true, Ordering::SeqCst);
        if let Some(slot) = lock(&self.serving().online.links)
            .get(&(live.name.clone(), link.host.clone()))
            .cloned()
        {
            let mut slot = lock(&slot);
            if slot.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
                slot.take();
            }
        }
        self.close_link(link);
    }

    fn close_link(&self, link: &Link) {
        self.send_serving(
            &link.host,
            ServingMsg::Close {
                session: link.scope.clone(),
            },
        );
        self.transport().revoke_session(&link.host, &link.scope);
        self.transport()
            .close_session(&format!("{}/online", link.scope));
    }
}

fn host_error(host: &PartyId, live: &Live, e: FederationError) -> PredictError {
    match e {
        FederationError::Timeout { .. } => PredictError::Timeout {
            party: host.clone(),
            millis: live.timeout.as_millis(),
        },
        other => PredictError::Host {
            party: host.clone(),
            reason: other.to_string(),
        },
    }
}

/// The guest's row from inline features: a one-row table with the given columns, through the
/// service's transform, then in the part's column order.
fn inline_row(loaded: &Loaded, id: &str, f: &Map<String, Value>) -> Result<Vec<f64>, String> {
    use ferry_feature::table::{Column, Table};
    if f.len() > 10_000 {
        return Err("more than 10000 features".into());
    }
    let mut columns = Vec::with_capacity(f.len());
    for (name, v) in f {
        columns.push(match v {
            Value::Number(x) => Column::numeric(name, vec![x.as_f64().unwrap_or(f64::NAN)]),
            Value::Null => Column::numeric(name, vec![f64::NAN]),
            Value::String(s) => Column::text(name, vec![Some(s.clone())]),
            other => {
                return Err(format!(
                    "feature '{name}' is {other}: give a number, a text or null"
                ));
            }
        });
    }
    let table = Table {
        ids: vec![id.to_string()],
        id_columns: vec!["id".into()],
        label_name: None,
        labels: None,
        columns,
    };
    let data = match &loaded.transform {
        Some(t) => super::table::transform_table(t, &table)?,
        None => table.to_dataset().map_err(|e| e.to_string())?,
    };
    loaded
        .part
        .columns()
        .iter()
        .map(|c| {
            data.feature_names
                .iter()
                .position(|n| n == c)
                .map(|j| data.row(0)[j])
                .ok_or_else(|| format!("\"features\" has no '{c}', which the model uses"))
        })
        .collect()
}

/// Combines the guest's rows and the hosts' answers into predictions.
fn combine(
    loaded: &Loaded,
    ids: &[String],
    own: Vec<Result<Vec<f64>, String>>,
    asked: usize,
    answers: &[(&PartyId, OnlineAnswer)],
) -> Result<Vec<Prediction>, PredictError> {
    let bad = |host: &PartyId, reason: String| PredictError::Host {
        party: host.clone(),
        reason,
    };
    for (host, a) in answers {
        let n = match a {
            OnlineAnswer::Decisions(d) => d.len(),
            OnlineAnswer::Partials(p) => p.len(),
            OnlineAnswer::Refused(_) => 0,
        };
        if n != asked {
            return Err(bad(host, format!("{n} answers to {asked} ids")));
        }
    }
    let failed = |id: &str, error: String| Prediction {
        id: id.to_string(),
        score: None,
        scores: Vec::new(),
        class: None,
        error: Some(error),
    };
    let mut out = Vec::with_capacity(ids.len());
    // `i`: the position of the id among those the hosts were asked about.
    let mut next = 0usize;
    for (id, row) in ids.iter().zip(own) {
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                out.push(failed(id, e));
                continue;
            }
        };
        let i = next;
        next += 1;
        match &loaded.part {
            Part::SbGuest(m) => {
                let mut decisions = Vec::with_capacity(answers.len());
                for (host, a) in answers {
                    let OnlineAnswer::Decisions(d) = a else {
                        return Err(bad(host, "answered partial scores to a tree model".into()));
                    };
                    decisions.push((*host, d[i].as_slice()));
                }
                let s = ferry_secureboost::online::guest_score(m, &row, &decisions).map_err(
                    |e| match e {
                        ferry_secureboost::SecureBoostError::BadHostMessage { host, reason } => {
                            PredictError::Host {
                                party: host,
                                reason,
                            }
                        }
                        other => PredictError::Internal(other.to_string()),
                    },
                )?;
                out.push(Prediction {
                    id: id.clone(),
                    score: (s.outputs.len() == 1).then(|| s.outputs[0]),
                    scores: s.outputs,
                    class: s.class,
                    error: None,
                });
            }
            Part::LrGuest(m) => {
                let own = match m.partial_score_row(&row) {
                    Ok(s) => s,
                    Err(e) => {
                        out.push(failed(id, format!("the guest's row: {e}")));
                        continue;
                    }
                };
                let mut partials = Vec::with_capacity(answers.len());
                let mut missing = None;
                for (host, a) in answers {
                    let OnlineAnswer::Partials(p) = a else {
                        return Err(bad(
                            host,
                            "answered tree decisions to a linear model".into(),
                        ));
                    };
                    match p[i] {
                        Some(x) if x.is_finite() => partials.push(x),
                        Some(_) => return Err(bad(host, "a partial score is not finite".into())),
                        None => {
                            missing = Some(format!(
                                "host '{host}' has no complete row for id '{id}' (a linear model \
                                 has no missing-value rule)"
                            ));
                            break;
                        }
                    }
                }
                if let Some(e) = missing {
                    out.push(failed(id, e));
                    continue;
                }
                let score = m.combine_online(own, &partials);
                let class =
                    (m.task == ferry_linear::Task::Logistic).then_some(usize::from(score >= 0.5));
                out.push(Prediction {
                    id: id.clone(),
                    score: Some(score),
                    scores: vec![score],
                    class,
                    error: None,
                });
            }
            _ => {
                return Err(PredictError::Internal(
                    "the service holds a host part on the guest".into(),
                ));
            }
        }
    }
    Ok(out)
}
